/* Config sync client: keeps a daemon's directory at the cluster version
 * over nng REQ (register, heartbeat, snapshot) and SUB (deltas); see
 * cfgsync.h.
 *
 * All logic runs on the loop thread. The two nng aios (one for the REQ
 * context, one for the SUB socket) complete on nng threads; their
 * callbacks only set a bit under the lock and wake the loop with
 * uv_async_send. That bridge is the only shared state. Each aio has at
 * most one operation outstanding and is restarted by the loop thread only,
 * so once the loop has taken a completion bit it owns the aio until it
 * starts the next operation.
 *
 * One request is in flight at a time; sync_pump picks the next one by
 * priority: register (no node id), snapshot (behind or gap), heartbeat. A
 * failed request puts the client "offline" and pauses requests for
 * SYNC_RETRY_MS; state changes (and a changed error while offline) are
 * logged, retries are not. */
#include "cfgsync.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "addr.h"
#include "daemon.h"
#include "error.h"
#include "log.h"
#include "mem.h"
#include "pool.h"
#include "shard_grants.h"

#include <openssl/rand.h>

#define SYNC_TIMEOUT_DEFAULT_MS 2000
#define SYNC_RETRY_MS 1000
#define SYNC_SUB_RETRY_MS 100
#define SYNC_HEARTBEAT_DEFAULT_MS 1000
/* A heartbeat interval outside this range is a controller bug; clamp it
 * rather than hammer the controller or go silent. */
#define SYNC_HEARTBEAT_MIN_MS 50
#define SYNC_HEARTBEAT_MAX_MS 600000
/* Every commit bumps the version by one and is published on its own, so a
 * delta spanning more versions than this is garbage, not a batch. It
 * matters: a bogus to_version near UINT64_MAX would make every later
 * delta look like old news. */
#define SYNC_MAX_DELTA_SPAN 1000000
/* Public addresses a relay registers: a few per host is the real use. */
#define SYNC_MAX_PUBLIC_ADDRESSES 16
/* Published garbage is logged at most once per this many ms. */
#define SYNC_GARBAGE_LOG_MS 1000

#define DONE_REQ 1u
#define DONE_SUB 2u

enum sync_state {
	ST_STARTING,
	ST_REGISTERING, /* no node id yet (or the controller forgot us) */
	ST_SYNCING,     /* registered, fetching a snapshot */
	ST_SYNCED,      /* registered, following deltas */
	ST_OFFLINE,     /* requests failing; serving the last directory */
	ST_CLOSED,
};

static const char *const state_names[] = {
        "starting", "registering", "syncing", "synced", "offline", "closed",
};

enum sync_req { REQ_NONE, REQ_REGISTER, REQ_HEARTBEAT, REQ_SNAPSHOT };

static const char *const req_names[] = {
        "none",
        "register",
        "heartbeat",
        "snapshot",
};

struct mc_cfgsync {
	uv_loop_t *loop;
	char *name;
	char *token;
	char *state_path;
	char *lmtp_address;   /* "" for relays */
	char *public_name;    /* relays, "" for none */
	char **public_addresses; /* relays; NULL-terminated */
	size_t n_public_addresses;
	char instance[33];    /* random hex, new at every start */
	struct mc_shard_grants *grants; /* mailbox nodes: writable shards */
	uint64_t hb_sent_ms;  /* monotonic send time of the heartbeat in flight */
	Mc__NodeKind kind;
	char topic;
	unsigned timeout_ms;
	void (*on_change)(const struct mc_directory *dir, void *ctx);
	void *ctx;

	struct mc_directory *dir;

	nng_socket req_sock;
	nng_socket sub_sock;
	nng_ctx req_ctx;
	nng_aio *req_aio;
	nng_aio *sub_aio;

	/* The nng -> loop bridge. */
	pthread_mutex_t lock;
	bool lock_ready;
	unsigned done; /* DONE_* bits, under lock */
	uv_async_t async;

	uv_timer_t hb_timer;    /* periodic heartbeat once registered */
	uv_timer_t retry_timer; /* request pause after a failure */
	uv_timer_t gap_timer;   /* behind the cluster: wait one heartbeat */
	uv_timer_t sub_timer;   /* re-arm the SUB receive after an error */
	int open_handles;

	enum sync_state state;
	char *last_error; /* last error logged while offline */
	enum sync_req inflight;
	bool recv_phase;   /* inflight request sent, awaiting reply */
	uint64_t deadline; /* loop ms by which the reply must be in */
	bool backoff;      /* retry_timer running: no requests */
	bool need_snapshot;
	bool need_heartbeat;
	bool notify_pending; /* saved directory loaded: tell the daemon */
	bool closing;
	/* directory.json is written on a worker, one write at a time, the
	 * latest content when changes came meanwhile. Heartbeats report the
	 * version saved, so `mailctl --wait` means applied and kept. */
	uv_work_t save_work;
	Mc__Snapshot *save_snap;
	char *save_error;
	uint64_t save_version, save_started;
	bool saving, save_again;
	uint64_t saved_version;
	uint64_t node_id;         /* 0 = not registered */
	uint64_t cluster_version; /* as last reported by the controller */
	uint64_t gap_target;      /* version the gap timer waits for */
	unsigned heartbeat_ms;
	bool hash_warned;
	bool dkim_warned;
	bool garbage_logged;
	uint64_t garbage_logged_at;
	uint64_t garbage_dropped;
};

static void sync_pump(struct mc_cfgsync *s);
static void drop_aio_msg(nng_aio *aio, bool done, bool want_result_ok);

/* ---- nng threads: the bridge ---- */

static void
bridge_done(struct mc_cfgsync *s, unsigned bit)
{
	pthread_mutex_lock(&s->lock);
	s->done |= bit;
	pthread_mutex_unlock(&s->lock);
	uv_async_send(&s->async);
}

static void
req_aio_cb(void *arg)
{
	bridge_done(arg, DONE_REQ);
}

static void
sub_aio_cb(void *arg)
{
	bridge_done(arg, DONE_SUB);
}

/* ---- state and logging ---- */

/* Move to state st. error (may be NULL) is the reason for going offline;
 * while offline only a different error is logged again. */
static void
set_state(struct mc_cfgsync *s, enum sync_state st, const char *error)
{
	bool same_error = error != NULL && s->last_error != NULL &&
	                  strcmp(error, s->last_error) == 0;

	if (s->state == ST_CLOSED ||
	    (st == s->state && (error == NULL || same_error)))
		return;
	if (st != s->state && error != NULL)
		mc_warn("cfgsync state %s -> %s error=\"%s\"",
		        state_names[s->state], state_names[st], error);
	else if (st != s->state)
		mc_info("cfgsync state %s -> %s version=%llu",
		        state_names[s->state], state_names[st],
		        (unsigned long long)mc_directory_version(s->dir));
	else
		mc_warn("cfgsync still %s error=\"%s\"", state_names[st],
		        error);
	free(s->last_error);
	s->last_error = error != NULL ? mc_strdup(error) : NULL;
	s->state = st;
	if (st == ST_SYNCED) /* startup or a catch-up is over */
		mc_mem_trim();
}

/* After a successful exchange: the state follows from what is known. */
static void
settle_state(struct mc_cfgsync *s)
{
	enum sync_state st = s->node_id == 0    ? ST_REGISTERING
	                     : s->need_snapshot ? ST_SYNCING
	                                        : ST_SYNCED;

	set_state(s, st, NULL);
}

static void
want_snapshot(struct mc_cfgsync *s)
{
	s->need_snapshot = true;
	if (s->state != ST_OFFLINE)
		settle_state(s);
}

static void
garbage(struct mc_cfgsync *s, const char *reason)
{
	uint64_t now = uv_now(s->loop);

	mc_debug("cfgsync ignoring published message reason=\"%s\"", reason);
	s->garbage_dropped++;
	if (s->garbage_logged &&
	    now - s->garbage_logged_at < SYNC_GARBAGE_LOG_MS)
		return;
	mc_warn("cfgsync ignoring published message reason=\"%s\" dropped=%llu",
	        reason, (unsigned long long)s->garbage_dropped);
	s->garbage_logged = true;
	s->garbage_logged_at = now;
	s->garbage_dropped = 0;
}

/* Wipe a secret string in place (it becomes ""); true when it had one. */
static bool
wipe_str(char *secret)
{
	if (secret == NULL || secret[0] == '\0')
		return false;
	mc_wipe(secret, strlen(secret));
	return true;
}

/* Relays never keep password hashes or SCRAM verifiers: wipe any in
 * place. Returns true when there was one. */
static bool
drop_hash(struct mc_cfgsync *s, Mc__Account *a)
{
	bool had;

	if (s->kind != MC__NODE_KIND__NODE_KIND_RELAY || a == NULL)
		return false;
	had = wipe_str(a->password_hash);
	had = wipe_str(a->scram_sha256) || had;
	if (!had)
		return false;
	if (!s->hash_warned) {
		mc_warn("cfgsync dropped password secrets sent to a relay");
		s->hash_warned = true;
	}
	return true;
}

/* Mailbox nodes never keep DKIM private keys (only relays sign): wipe
 * any in place. Returns true when there was one. */
static bool
drop_dkim(struct mc_cfgsync *s, Mc__DkimKey *k)
{
	if (s->kind != MC__NODE_KIND__NODE_KIND_MAILBOX || k == NULL ||
	    !wipe_str(k->private_pem))
		return false;
	if (!s->dkim_warned) {
		mc_warn("cfgsync dropped DKIM private keys sent to a mailbox node");
		s->dkim_warned = true;
	}
	return true;
}

/* Everything this kind of node must not hold, wiped from snap. */
static size_t
drop_secrets(struct mc_cfgsync *s, Mc__Snapshot *snap)
{
	size_t dropped = 0;

	for (size_t i = 0; i < snap->n_accounts; i++)
		dropped += drop_hash(s, snap->accounts[i]);
	for (size_t i = 0; i < snap->n_dkim_keys; i++)
		dropped += drop_dkim(s, snap->dkim_keys[i]);
	return dropped;
}

/* ---- directory changes ---- */

static void save_start(struct mc_cfgsync *s);
static void sync_free(struct mc_cfgsync *s);

/* Worker thread: only the job's snapshot, path and error are touched. */
static void
save_work_cb(uv_work_t *w)
{
	struct mc_cfgsync *s = w->data;
	const char *error;

	if (mc_directory_save_snapshot(s->save_snap, s->state_path, &error) <
	    0)
		s->save_error = mc_strdup(error);
}

static void
save_done_cb(uv_work_t *w, int status)
{
	struct mc_cfgsync *s = w->data;
	const char *error;

	(void)status;
	mc_directory_snapshot_free(&s->save_snap);
	if (s->save_error != NULL)
		mc_error("cfgsync cannot save directory path=%s error=\"%s\"",
		         s->state_path, s->save_error);
	else
		mc_info("cfgsync directory saved version=%llu ms=%llu",
		        (unsigned long long)s->save_version,
		        (unsigned long long)(uv_now(s->loop) - s->save_started));
	free(s->save_error);
	s->save_error = NULL;
	s->saving = false;
	mc_mem_trim(); /* the file's JSON text and tree are freed */
	/* Reported even when the write failed: the directory is applied,
	 * and a daemon that cannot write its state folder says so above. */
	s->saved_version = s->save_version;
	if (s->closing) {
		/* The last change before shutdown is kept, on the loop. */
		if (s->save_again &&
		    mc_directory_save(s->dir, s->state_path, &error) < 0)
			mc_error("cfgsync cannot save directory path=%s "
			         "error=\"%s\"",
			         s->state_path, error);
		if (--s->open_handles == 0)
			sync_free(s);
		return;
	}
	s->open_handles--;
	if (s->save_again) {
		s->save_again = false;
		save_start(s);
		return;
	}
	/* Tell the controller at once: mailctl --wait waits for this. */
	s->need_heartbeat = true;
	sync_pump(s);
}

/* Write directory.json off the loop (a 100,000-account directory is tens
 * of MB of JSON and an fsync: seconds the loop must not stall for). */
static void
save_start(struct mc_cfgsync *s)
{
	if (s->saving) {
		s->save_again = true;
		return;
	}
	s->saving = true;
	s->save_snap = mc_directory_to_snapshot(s->dir);
	s->save_version = mc_directory_version(s->dir);
	s->save_started = uv_now(s->loop);
	s->save_work.data = s;
	s->open_handles++;
	if (uv_queue_work(s->loop, &s->save_work, save_work_cb,
	                  save_done_cb) != 0)
		abort(); /* only for a NULL callback */
}

static void
directory_changed(struct mc_cfgsync *s)
{
	save_start(s);
	if (mc_directory_version(s->dir) >= s->gap_target)
		uv_timer_stop(&s->gap_timer);
	if (s->on_change != NULL)
		s->on_change(s->dir, s->ctx);
}

static void
load_saved(struct mc_cfgsync *s)
{
	struct stat st;
	const char *error;

	if (stat(s->state_path, &st) < 0) {
		if (errno == ENOENT)
			mc_info("cfgsync no saved directory path=%s",
			        s->state_path);
		else
			mc_warn("cfgsync cannot read saved directory path=%s "
			        "error=\"%s\"",
			        s->state_path, strerror(errno));
		return;
	}
	if (mc_directory_load(s->dir, s->state_path, &error) < 0) {
		mc_warn("cfgsync ignoring saved directory path=%s error=\"%s\"",
		        s->state_path, error);
		return;
	}
	{
		Mc__Snapshot *snap = mc_directory_to_snapshot(s->dir);
		size_t dropped = drop_secrets(s, snap);

		if (dropped > 0) {
			mc_directory_load_snapshot(s->dir, snap);
			if (mc_directory_save(s->dir, s->state_path, &error) <
			    0)
				mc_error(
				        "cfgsync cannot save directory path=%s "
				        "error=\"%s\"",
				        s->state_path, error);
		}
		mc_directory_snapshot_free(&snap);
	}
	s->saved_version = mc_directory_version(s->dir);
	mc_info("cfgsync loaded saved directory path=%s version=%llu",
	        s->state_path,
	        (unsigned long long)mc_directory_version(s->dir));
	s->notify_pending = true;
}

/* ---- published deltas ---- */

static bool
delta_valid(const Mc__Delta *d, const char **reason_r)
{
	if (d->to_version <= d->from_version) {
		*reason_r = "to_version not after from_version";
		return false;
	}
	if (d->to_version - d->from_version > SYNC_MAX_DELTA_SPAN) {
		*reason_r = "absurd version span";
		return false;
	}
	for (size_t i = 0; i < d->n_changes; i++) {
		const Mc__Change *c = d->changes[i];
		uint64_t id = 0;

		if (c == NULL || (c->op != MC__CHANGE__OP__UPSERT &&
		                  c->op != MC__CHANGE__OP__DELETE)) {
			*reason_r = "bad change op";
			return false;
		}
		if (c->object_case == MC__CHANGE__OBJECT_DOMAIN &&
		    c->domain != NULL)
			id = c->domain->id;
		else if (c->object_case == MC__CHANGE__OBJECT_ACCOUNT &&
		         c->account != NULL)
			id = c->account->id;
		else if (c->object_case == MC__CHANGE__OBJECT_ALIAS &&
		         c->alias != NULL)
			id = c->alias->id;
		else if (c->object_case == MC__CHANGE__OBJECT_ROUTE &&
		         c->route != NULL)
			id = c->route->id;
		else if (c->object_case == MC__CHANGE__OBJECT_ROUTE_RULE &&
		         c->route_rule != NULL)
			id = c->route_rule->id;
		else if (c->object_case == MC__CHANGE__OBJECT_DKIM_KEY &&
		         c->dkim_key != NULL)
			id = c->dkim_key->id;
		else if (c->object_case == MC__CHANGE__OBJECT_SHARD &&
		         c->shard != NULL)
			continue; /* keyed by shard number; 0 is a shard */
		if (id == 0) {
			*reason_r = "change without object or id";
			return false;
		}
	}
	return true;
}

static void
apply_delta(struct mc_cfgsync *s, Mc__Delta *d)
{
	uint64_t old = mc_directory_version(s->dir);
	int rv;

	for (size_t i = 0; i < d->n_changes; i++) {
		if (d->changes[i]->object_case == MC__CHANGE__OBJECT_ACCOUNT)
			drop_hash(s, d->changes[i]->account);
		else if (d->changes[i]->object_case == MC__CHANGE__OBJECT_DKIM_KEY)
			drop_dkim(s, d->changes[i]->dkim_key);
	}
	rv = mc_directory_apply_delta(s->dir, d);
	if (rv == 0) {
		mc_debug("cfgsync old delta ignored version=%llu to=%llu",
		         (unsigned long long)old,
		         (unsigned long long)d->to_version);
		return;
	}
	if (rv < 0) {
		if (!s->need_snapshot)
			mc_info("cfgsync delta gap version=%llu from=%llu "
			        "to=%llu, "
			        "fetching snapshot",
			        (unsigned long long)old,
			        (unsigned long long)d->from_version,
			        (unsigned long long)d->to_version);
		want_snapshot(s);
		return;
	}
	if (d->to_version > s->cluster_version)
		s->cluster_version = d->to_version;
	mc_info("cfgsync delta applied version=%llu -> %llu changes=%zu",
	        (unsigned long long)old, (unsigned long long)d->to_version,
	        d->n_changes);
	directory_changed(s);
}

static void
handle_published(struct mc_cfgsync *s, const uint8_t *data, size_t len)
{
	struct mc_pool *pool;
	Mc__Delta *d;
	const char *reason;

	if (len < 1 || data[0] != (uint8_t)s->topic) {
		garbage(s, "wrong topic");
		return;
	}
	pool = mc_pool_new();
	d = mc__delta__unpack(mc_pool_protobuf_allocator(pool), len - 1,
	                      data + 1);
	if (d == NULL)
		garbage(s, "malformed delta");
	else if (!delta_valid(d, &reason))
		garbage(s, reason);
	else
		apply_delta(s, d);
	mc_pool_free(&pool);
}

static void
sub_timer_cb(uv_timer_t *t)
{
	struct mc_cfgsync *s = t->data;

	nng_recv_aio(s->sub_sock, s->sub_aio);
}

static void
sub_done(struct mc_cfgsync *s)
{
	int rv = nng_aio_result(s->sub_aio);
	nng_msg *msg;

	if (rv != 0) {
		/* Not expected outside shutdown; do not spin on it. */
		mc_warn("cfgsync publish receive error=\"%s\"",
		        nng_strerror(rv));
		uv_timer_start(&s->sub_timer, sub_timer_cb, SYNC_SUB_RETRY_MS,
		               0);
		return;
	}
	msg = nng_aio_get_msg(s->sub_aio);
	nng_aio_set_msg(s->sub_aio, NULL);
	handle_published(s, nng_msg_body(msg), nng_msg_len(msg));
	nng_msg_free(msg);
	/* on_change may have closed us. */
	if (!s->closing)
		nng_recv_aio(s->sub_sock, s->sub_aio);
}

/* ---- requests ---- */

static void
req_send(struct mc_cfgsync *s, enum sync_req kind, Mc__Request *req)
{
	req->token = s->token;
	s->inflight = kind;
	s->recv_phase = false;
	s->deadline = uv_now(s->loop) + s->timeout_ms;
	nng_aio_set_msg(s->req_aio, mc_rpc_pack_request(req));
	nng_aio_set_timeout(s->req_aio, (nng_duration)s->timeout_ms);
	nng_ctx_send(s->req_ctx, s->req_aio);
}

static void
send_register(struct mc_cfgsync *s)
{
	Mc__Request req = MC__REQUEST__INIT;
	Mc__RegisterReq reg = MC__REGISTER_REQ__INIT;

	reg.name = s->name;
	reg.kind = s->kind;
	reg.applied_version = mc_directory_version(s->dir);
	reg.pid = (uint32_t)getpid();
	reg.software = (char *)MC_SOFTWARE;
	reg.instance = s->instance;
	reg.lmtp_address = s->lmtp_address;
	reg.public_name = s->public_name;
	reg.public_addresses = s->public_addresses;
	reg.n_public_addresses = s->n_public_addresses;
	req.body_case = MC__REQUEST__BODY_REGISTER;
	req.register_ = &reg;
	if (s->state == ST_STARTING)
		set_state(s, ST_REGISTERING, NULL);
	req_send(s, REQ_REGISTER, &req);
}

static void
send_snapshot(struct mc_cfgsync *s)
{
	Mc__Request req = MC__REQUEST__INIT;
	Mc__SnapshotReq snap = MC__SNAPSHOT_REQ__INIT;

	snap.node_id = s->node_id;
	req.body_case = MC__REQUEST__BODY_SNAPSHOT;
	req.snapshot = &snap;
	req_send(s, REQ_SNAPSHOT, &req);
}

static void
send_heartbeat(struct mc_cfgsync *s)
{
	Mc__Request req = MC__REQUEST__INIT;
	Mc__HeartbeatReq hb = MC__HEARTBEAT_REQ__INIT;

	hb.node_id = s->node_id;
	hb.applied_version = s->saved_version;
	hb.instance = s->instance;
	s->hb_sent_ms = uv_hrtime() / 1000000;
	req.body_case = MC__REQUEST__BODY_HEARTBEAT;
	req.heartbeat = &hb;
	s->need_heartbeat = false;
	req_send(s, REQ_HEARTBEAT, &req);
}

static void
sync_pump(struct mc_cfgsync *s)
{
	if (s->closing || s->inflight != REQ_NONE || s->backoff)
		return;
	if (s->node_id == 0)
		send_register(s);
	else if (s->need_snapshot)
		send_snapshot(s);
	else if (s->need_heartbeat)
		send_heartbeat(s);
}

static void
retry_cb(uv_timer_t *t)
{
	struct mc_cfgsync *s = t->data;

	s->backoff = false;
	sync_pump(s);
}

static void
req_failed(struct mc_cfgsync *s, enum sync_req kind, const char *error)
{
	const char *e = mc_errorf("%s: %s", req_names[kind], error);

	s->inflight = REQ_NONE;
	set_state(s, ST_OFFLINE, e);
	s->backoff = true;
	uv_timer_start(&s->retry_timer, retry_cb, SYNC_RETRY_MS, 0);
}

static void
hb_cb(uv_timer_t *t)
{
	struct mc_cfgsync *s = t->data;

	s->need_heartbeat = true;
	sync_pump(s);
}

static void
gap_cb(uv_timer_t *t)
{
	struct mc_cfgsync *s = t->data;

	if (mc_directory_version(s->dir) >= s->gap_target || s->need_snapshot)
		return;
	mc_info("cfgsync no delta reached version=%llu within a heartbeat, "
	        "version=%llu, fetching snapshot",
	        (unsigned long long)s->gap_target,
	        (unsigned long long)mc_directory_version(s->dir));
	want_snapshot(s);
	sync_pump(s);
}

static int
on_register(struct mc_cfgsync *s, const Mc__Response *resp,
            const char **error_r)
{
	const Mc__RegisterResp *r = resp->register_;
	unsigned hb;

	if (resp->body_case != MC__RESPONSE__BODY_REGISTER || r == NULL ||
	    r->node_id == 0) {
		*error_r = "malformed reply";
		return -1;
	}
	hb = r->heartbeat_ms == 0 ? SYNC_HEARTBEAT_DEFAULT_MS : r->heartbeat_ms;
	if (hb < SYNC_HEARTBEAT_MIN_MS)
		hb = SYNC_HEARTBEAT_MIN_MS;
	if (hb > SYNC_HEARTBEAT_MAX_MS)
		hb = SYNC_HEARTBEAT_MAX_MS;
	s->node_id = r->node_id;
	s->cluster_version = r->version;
	s->heartbeat_ms = hb;
	uv_timer_start(&s->hb_timer, hb_cb, hb, hb);
	/* A directory that never saw a snapshot lacks the shard count, even
	 * at the cluster version (a fresh node in a fresh cluster). */
	if (r->version != mc_directory_version(s->dir) ||
	    mc_directory_shard_count(s->dir) == 0)
		s->need_snapshot = true;
	mc_info("cfgsync registered node_id=%llu cluster_version=%llu "
	        "version=%llu heartbeat_ms=%u",
	        (unsigned long long)r->node_id, (unsigned long long)r->version,
	        (unsigned long long)mc_directory_version(s->dir), hb);
	return 0;
}

/* Record the shards this heartbeat granted; log when the count moves. */
static void
grants_update(struct mc_cfgsync *s, const Mc__HeartbeatResp *hb)
{
	uint64_t now = uv_hrtime() / 1000000;
	size_t before = mc_shard_grants_count(s->grants, now), after;

	mc_shard_grants_update(s->grants, hb->leases, hb->n_leases, s->hb_sent_ms,
	                       hb->lease_ttl_ms);
	after = mc_shard_grants_count(s->grants, now);
	if (after != before)
		mc_info("cfgsync shard leases held=%zu (was %zu) ttl_ms=%u", after,
		        before, hb->lease_ttl_ms);
}

static int
on_heartbeat(struct mc_cfgsync *s, const Mc__Response *resp,
             const char **error_r)
{
	const Mc__HeartbeatResp *hb = resp->heartbeat;

	if (resp->body_case != MC__RESPONSE__BODY_HEARTBEAT || hb == NULL) {
		*error_r = "malformed reply";
		return -1;
	}
	if (!hb->known) {
		mc_warn("cfgsync controller does not know node_id=%llu, "
		        "registering again",
		        (unsigned long long)s->node_id);
		s->node_id = 0;
		mc_shard_grants_clear(s->grants);
		uv_timer_stop(&s->hb_timer);
		uv_timer_stop(&s->gap_timer);
		return 0;
	}
	if (s->kind == MC__NODE_KIND__NODE_KIND_MAILBOX)
		grants_update(s, hb);
	s->cluster_version = hb->version;
	/* Usually the delta is on its way: give it one heartbeat. */
	if (hb->version > mc_directory_version(s->dir) &&
	    !uv_is_active((uv_handle_t *)&s->gap_timer)) {
		s->gap_target = hb->version;
		uv_timer_start(&s->gap_timer, gap_cb, s->heartbeat_ms, 0);
	}
	return 0;
}

static int
on_snapshot(struct mc_cfgsync *s, const Mc__Response *resp,
            const char **error_r)
{
	Mc__Snapshot *snap = resp->snapshot;
	uint64_t old = mc_directory_version(s->dir);

	if (resp->body_case != MC__RESPONSE__BODY_SNAPSHOT || snap == NULL) {
		*error_r = "malformed reply";
		return -1;
	}
	s->need_snapshot = false;
	/* Older than what deltas already gave us: a race, unless the
	 * controller itself says the cluster went back (restored database). */
	if (snap->version < old && s->cluster_version >= old) {
		mc_info("cfgsync stale snapshot ignored snapshot_version=%llu "
		        "version=%llu",
		        (unsigned long long)snap->version,
		        (unsigned long long)old);
		return 0;
	}
	drop_secrets(s, snap);
	mc_directory_load_snapshot(s->dir, snap);
	if (snap->version > s->cluster_version || snap->version < old)
		s->cluster_version = snap->version;
	mc_info("cfgsync snapshot loaded version=%llu -> %llu domains=%zu "
	        "accounts=%zu aliases=%zu",
	        (unsigned long long)old, (unsigned long long)snap->version,
	        snap->n_domains, snap->n_accounts, snap->n_aliases);
	directory_changed(s);
	return 0;
}

static void
handle_reply(struct mc_cfgsync *s, enum sync_req kind, nng_msg *msg)
{
	struct mc_pool *pool = mc_pool_new();
	Mc__Response *resp;
	const char *error = NULL;
	int rv = -1;

	resp = mc__response__unpack(mc_pool_protobuf_allocator(pool),
	                            nng_msg_len(msg), nng_msg_body(msg));
	if (resp == NULL)
		error = "malformed reply";
	else if (resp->status != MC__STATUS__STATUS_OK)
		error = mc_errorf("%s: %s", mc_rpc_status_str(resp->status),
		                  resp->error);
	else if (kind == REQ_REGISTER)
		rv = on_register(s, resp, &error);
	else if (kind == REQ_HEARTBEAT)
		rv = on_heartbeat(s, resp, &error);
	else
		rv = on_snapshot(s, resp, &error);
	s->inflight = REQ_NONE;
	if (!s->closing) { /* on_change may have closed us */
		if (rv < 0)
			req_failed(s, kind, error);
		else
			settle_state(s);
	}
	mc_pool_free(&pool);
}

static void
req_done(struct mc_cfgsync *s)
{
	int rv = nng_aio_result(s->req_aio);
	nng_msg *msg = nng_aio_get_msg(s->req_aio);
	uint64_t now = uv_now(s->loop);

	nng_aio_set_msg(s->req_aio, NULL);
	if (!s->recv_phase) {
		if (rv != 0) {
			/* A failed send leaves the message with us. */
			if (msg != NULL)
				nng_msg_free(msg);
			req_failed(s, s->inflight,
			           rv == NNG_ETIMEDOUT
			                   ? "controller unreachable (timeout)"
			                   : nng_strerror(rv));
			return;
		}
		s->recv_phase = true;
		nng_aio_set_timeout(s->req_aio,
		                    s->deadline > now
		                            ? (nng_duration)(s->deadline - now)
		                            : 1);
		nng_ctx_recv(s->req_ctx, s->req_aio);
		return;
	}
	if (rv != 0) {
		req_failed(s, s->inflight,
		           rv == NNG_ETIMEDOUT ? "no reply in time"
		                               : nng_strerror(rv));
		return;
	}
	handle_reply(s, s->inflight, msg);
	nng_msg_free(msg);
}

/* ---- the loop side of the bridge ---- */

static void
async_cb(uv_async_t *a)
{
	struct mc_cfgsync *s = a->data;
	unsigned done;

	if (s->closing)
		return;
	pthread_mutex_lock(&s->lock);
	done = s->done;
	s->done = 0;
	pthread_mutex_unlock(&s->lock);
	if (done & DONE_REQ)
		req_done(s);
	/* on_change (called under req_done) may close us: the SUB message
	 * taken from the bridge is then ours to free. */
	if ((done & DONE_SUB) && s->closing)
		drop_aio_msg(s->sub_aio, true, true);
	else if (done & DONE_SUB)
		sub_done(s);
	if (s->closing)
		return;
	if (s->notify_pending) {
		s->notify_pending = false;
		if (s->on_change != NULL)
			s->on_change(s->dir, s->ctx);
	}
	sync_pump(s);
}

/* ---- start and teardown ---- */

static void
close_sockets(struct mc_cfgsync *s)
{
	if (nng_ctx_id(s->req_ctx) > 0)
		nng_ctx_close(s->req_ctx);
	if (nng_socket_id(s->req_sock) > 0)
		nng_close(s->req_sock);
	if (nng_socket_id(s->sub_sock) > 0)
		nng_close(s->sub_sock);
	s->req_ctx = (nng_ctx)NNG_CTX_INITIALIZER;
	s->req_sock = (nng_socket)NNG_SOCKET_INITIALIZER;
	s->sub_sock = (nng_socket)NNG_SOCKET_INITIALIZER;
}

static void
sync_free(struct mc_cfgsync *s)
{
	close_sockets(s);
	if (s->req_aio != NULL)
		nng_aio_free(s->req_aio);
	if (s->sub_aio != NULL)
		nng_aio_free(s->sub_aio);
	if (s->lock_ready)
		pthread_mutex_destroy(&s->lock);
	mc_directory_free(&s->dir);
	mc_secret_free(&s->token);
	free(s->name);
	free(s->lmtp_address);
	free(s->public_name);
	for (size_t i = 0; i < s->n_public_addresses; i++)
		free(s->public_addresses[i]);
	free(s->public_addresses);
	mc_shard_grants_free(&s->grants);
	free(s->state_path);
	free(s->last_error);
	free(s);
}

/* 128 random bits in hex: unique per process start. */
static void
new_instance(char out[33])
{
	unsigned char r[16];

	if (RAND_bytes(r, sizeof(r)) != 1)
		abort(); /* no entropy at startup: nothing sane to do */
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* Split "a, b,c" into s->public_addresses; every one an IP literal. */
static int
parse_public_addresses(struct mc_cfgsync *s, const char *list,
                       const char **error_r)
{
	char *copy = mc_strdup(list != NULL ? list : ""), *save = NULL, *tok;
	int ret = 0;

	s->public_addresses =
	        mc_calloc(SYNC_MAX_PUBLIC_ADDRESSES + 1, sizeof(char *));
	for (tok = strtok_r(copy, ", \t", &save); tok != NULL;
	     tok = strtok_r(NULL, ", \t", &save)) {
		unsigned char addr[16];

		if (inet_pton(AF_INET, tok, addr) != 1 &&
		    inet_pton(AF_INET6, tok, addr) != 1) {
			*error_r = mc_errorf("public_addresses: '%s' is not an IPv4 "
			                     "or IPv6 address", tok);
			ret = -1;
			break;
		}
		if (s->n_public_addresses == SYNC_MAX_PUBLIC_ADDRESSES) {
			*error_r = mc_errorf("public_addresses: more than %d",
			                     SYNC_MAX_PUBLIC_ADDRESSES);
			ret = -1;
			break;
		}
		s->public_addresses[s->n_public_addresses++] = mc_strdup(tok);
	}
	free(copy);
	return ret;
}

static int
check_settings(const struct mc_cfgsync_settings *set, const char **error_r)
{
	if (set->name == NULL || *set->name == '\0')
		*error_r = "name is not set";
	else if (set->kind != MC__NODE_KIND__NODE_KIND_MAILBOX &&
	         set->kind != MC__NODE_KIND__NODE_KIND_RELAY)
		*error_r = "node kind must be mailbox or relay";
	else if (set->control_url == NULL || *set->control_url == '\0')
		*error_r = "control_url is not set";
	else if (set->publish_url == NULL || *set->publish_url == '\0')
		*error_r = "publish_url is not set";
	else if (set->token == NULL || *set->token == '\0')
		*error_r = "node token is empty";
	else if (set->state_dir == NULL || *set->state_dir == '\0')
		*error_r = "state_dir is not set";
	else if (set->public_name != NULL && *set->public_name != '\0' &&
	         !mc_addr_domain_valid(set->public_name))
		*error_r = mc_errorf("public_name '%s' is not a domain name",
		                     set->public_name);
	else
		return 0;
	return -1;
}

static int
prepare_state_dir(const char *dir, const char **error_r)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*error_r = mc_errorf("state_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*error_r = mc_errorf("state_dir %s: not a directory", dir);
		return -1;
	}
	return 0;
}

/* Sockets, contexts and aios; the dialers retry in the background. */
static int
open_sockets(struct mc_cfgsync *s, const struct mc_cfgsync_settings *set,
             const char **error_r)
{
	int rv;

	if ((rv = nng_req0_open(&s->req_sock)) != 0 ||
	    (rv = nng_ctx_open(&s->req_ctx, s->req_sock)) != 0 ||
	    (rv = nng_sub0_open(&s->sub_sock)) != 0 ||
	    (rv = nng_socket_set(s->sub_sock, NNG_OPT_SUB_SUBSCRIBE, &s->topic,
	                         1)) != 0 ||
	    (rv = nng_aio_alloc(&s->req_aio, req_aio_cb, s)) != 0 ||
	    (rv = nng_aio_alloc(&s->sub_aio, sub_aio_cb, s)) != 0) {
		*error_r = mc_errorf("nng: %s", nng_strerror(rv));
		return -1;
	}
	if (mc_rpc_dial(s->req_sock, set->control_url, &set->tls, true,
	                error_r) < 0 ||
	    mc_rpc_dial(s->sub_sock, set->publish_url, &set->tls, true,
	                error_r) < 0)
		return -1;
	return 0;
}

static void
init_timer(struct mc_cfgsync *s, uv_timer_t *t)
{
	uv_timer_init(s->loop, t);
	t->data = s;
	s->open_handles++;
}

int
mc_cfgsync_configure(const struct mc_daemon *d, struct mc_cfgsync_settings *set,
                     char **token_r, const char **error_r)
{
	const struct {
		const char *key;
		const char **value_r;
	} required[] = {
	        {"name", &set->name},
	        {"control_url", &set->control_url},
	        {"publish_url", &set->publish_url},
	        {"state_dir", &set->state_dir},
	};

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (mc_daemon_require(d, required[i].key, required[i].value_r,
		                      error_r) < 0)
			return -1;
	if (mc_daemon_tls_files(d, &set->tls, error_r) < 0 ||
	    mc_daemon_secret(d, "node_token_file", token_r, error_r) < 0)
		return -1;
	set->token = *token_r;
	return 0;
}

int
mc_cfgsync_start(uv_loop_t *loop, const struct mc_cfgsync_settings *set,
                 struct mc_cfgsync **sync_r, const char **error_r)
{
	struct mc_cfgsync *s;

	if (check_settings(set, error_r) < 0 ||
	    prepare_state_dir(set->state_dir, error_r) < 0)
		return -1;
	s = mc_malloc(sizeof(*s));
	s->loop = loop;
	s->name = mc_strdup(set->name);
	s->token = mc_strdup(set->token);
	s->lmtp_address = mc_strdup(set->lmtp_address != NULL ? set->lmtp_address : "");
	s->public_name = mc_addr_lower(
	        mc_strdup(set->public_name != NULL ? set->public_name : ""));
	s->grants = mc_shard_grants_new();
	new_instance(s->instance);
	s->kind = set->kind;
	s->topic = set->kind == MC__NODE_KIND__NODE_KIND_RELAY
	                   ? MC_TOPIC_RELAY
	                   : MC_TOPIC_MAILBOX;
	s->timeout_ms = set->request_timeout_ms != 0 ? set->request_timeout_ms
	                                             : SYNC_TIMEOUT_DEFAULT_MS;
	s->heartbeat_ms = SYNC_HEARTBEAT_DEFAULT_MS;
	s->on_change = set->on_change;
	s->ctx = set->ctx;
	s->state_path = mc_asprintf("%s/directory.json", set->state_dir);
	s->dir = mc_directory_new();
	if (parse_public_addresses(s, set->public_addresses, error_r) < 0 ||
	    open_sockets(s, set, error_r) < 0) {
		sync_free(s);
		return -1;
	}
	if (pthread_mutex_init(&s->lock, NULL) != 0)
		abort();
	s->lock_ready = true;
	load_saved(s);
	/* Nothing below can fail: from here on teardown is asynchronous. */
	uv_async_init(loop, &s->async, async_cb);
	s->async.data = s;
	s->open_handles++;
	init_timer(s, &s->hb_timer);
	init_timer(s, &s->retry_timer);
	init_timer(s, &s->gap_timer);
	init_timer(s, &s->sub_timer);
	mc_info("cfgsync starting name=%s kind=%s control_url=%s "
	        "publish_url=%s",
	        s->name, s->topic == MC_TOPIC_RELAY ? "relay" : "mailbox",
	        set->control_url, set->publish_url);
	nng_recv_aio(s->sub_sock, s->sub_aio);
	sync_pump(s);
	if (s->notify_pending)
		uv_async_send(&s->async);
	*sync_r = s;
	return 0;
}

bool
mc_cfgsync_shard_epoch(const struct mc_cfgsync *sync, uint32_t shard,
                       uint64_t *epoch_r)
{
	return mc_shard_grants_check(sync->grants, shard, uv_hrtime() / 1000000,
	                             epoch_r);
}

const struct mc_directory *
mc_cfgsync_directory(const struct mc_cfgsync *sync)
{
	return sync->dir;
}

static void
close_cb(uv_handle_t *h)
{
	struct mc_cfgsync *s = h->data;

	if (--s->open_handles == 0)
		sync_free(s);
}

/* Free a message a completed but unprocessed operation left in an aio. */
static void
drop_aio_msg(nng_aio *aio, bool done, bool want_result_ok)
{
	nng_msg *msg;

	if (!done || (nng_aio_result(aio) == 0) != want_result_ok)
		return;
	msg = nng_aio_get_msg(aio);
	nng_aio_set_msg(aio, NULL);
	if (msg != NULL)
		nng_msg_free(msg);
}

/* A stopping mailbox node gives its shard leases back so other nodes (or
 * its own restart) take the shards over at once instead of waiting for
 * the leases to expire. One request on a fresh context of the connected
 * REQ socket, bounded to a second: a short wait at shutdown only, and
 * skipped when the controller is not reachable now. */
static void
release_leases(struct mc_cfgsync *s)
{
	Mc__Request req = MC__REQUEST__INIT;
	Mc__HeartbeatReq hb = MC__HEARTBEAT_REQ__INIT;
	nng_ctx ctx;
	nng_aio *aio;

	if (s->kind != MC__NODE_KIND__NODE_KIND_MAILBOX || s->node_id == 0 ||
	    s->state != ST_SYNCED || nng_ctx_open(&ctx, s->req_sock) != 0)
		return;
	if (nng_aio_alloc(&aio, NULL, NULL) != 0) {
		nng_ctx_close(ctx);
		return;
	}
	hb.node_id = s->node_id;
	hb.applied_version = mc_directory_version(s->dir);
	hb.instance = s->instance;
	hb.releasing = true;
	req.token = s->token;
	req.body_case = MC__REQUEST__BODY_HEARTBEAT;
	req.heartbeat = &hb;
	mc_shard_grants_clear(s->grants); /* stop writing before asking */
	nng_aio_set_msg(aio, mc_rpc_pack_request(&req));
	nng_aio_set_timeout(aio, 1000);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0) {
		nng_msg_free(nng_aio_get_msg(aio));
	} else {
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) == 0) {
			nng_msg_free(nng_aio_get_msg(aio));
			mc_info("cfgsync shard leases released");
		}
	}
	nng_aio_free(aio);
	nng_ctx_close(ctx);
}

void
mc_cfgsync_close(struct mc_cfgsync **syncp)
{
	struct mc_cfgsync *s = *syncp;
	unsigned done;

	if (s == NULL)
		return;
	*syncp = NULL;
	release_leases(s);
	s->closing = true;
	/* Cancel and wait for callbacks in progress: none can run after
	 * this, so the async handle may be closed. */
	nng_aio_stop(s->req_aio);
	nng_aio_stop(s->sub_aio);
	pthread_mutex_lock(&s->lock);
	done = s->done;
	pthread_mutex_unlock(&s->lock);
	/* A send that did not complete leaves its message in the aio; a
	 * receive that did completes with one. */
	drop_aio_msg(s->req_aio, (done & DONE_REQ) != 0, s->recv_phase);
	drop_aio_msg(s->sub_aio, (done & DONE_SUB) != 0, true);
	close_sockets(s);
	set_state(s, ST_CLOSED, NULL);
	uv_close((uv_handle_t *)&s->async, close_cb);
	uv_close((uv_handle_t *)&s->hb_timer, close_cb);
	uv_close((uv_handle_t *)&s->retry_timer, close_cb);
	uv_close((uv_handle_t *)&s->gap_timer, close_cb);
	uv_close((uv_handle_t *)&s->sub_timer, close_cb);
}
