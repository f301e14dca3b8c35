/* cfgsync against an in-process fake controller (REP + PUB on ipc://, in
 * a thread): registration, snapshot, deltas, a gap, garbage on the SUB
 * socket, a forgotten node, hash stripping on relays, the state file and
 * a clean close. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>

#include "cfgsync.h"
#include "log.h"
#include "mem.h"
#include "test.h"

struct fake {
	nng_socket rep, pub;
	pthread_t thread;
	atomic_bool stop;
	pthread_mutex_t lock;
	uint64_t version; /* cluster version reported */
	bool forget;      /* next heartbeat: known = false */
	unsigned registers, snapshots, heartbeats;
	uint64_t last_applied;
	char token_seen[64];
};

static struct fake fake;

#define FAKE_SCRAM                                                             \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"                         \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                        \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

/* Snapshot content: one domain, one account with a hash and a SCRAM
 * verifier. */
static void
fake_snapshot(Mc__Snapshot *snap, Mc__Domain *dom, Mc__Account *acc,
              Mc__Domain **doms, Mc__Account **accs)
{
	dom->id = 1;
	dom->name = "example.org";
	acc->id = 2;
	acc->domain_id = 1;
	acc->local_part = "alice";
	acc->domain = "example.org";
	acc->password_hash = "$argon2id$fake";
	acc->scram_sha256 = FAKE_SCRAM;
	doms[0] = dom;
	accs[0] = acc;
	snap->version = fake.version;
	snap->shard_count = 16;
	snap->domains = doms;
	snap->n_domains = 1;
	snap->accounts = accs;
	snap->n_accounts = 1;
}

static void
fake_answer(nng_msg *msg)
{
	Mc__Request *req =
	        mc_rpc_unpack_request(nng_msg_body(msg), nng_msg_len(msg));
	Mc__Response resp = MC__RESPONSE__INIT;
	Mc__RegisterResp reg = MC__REGISTER_RESP__INIT;
	Mc__HeartbeatResp hb = MC__HEARTBEAT_RESP__INIT;
	Mc__Snapshot snap = MC__SNAPSHOT__INIT;
	Mc__Domain dom = MC__DOMAIN__INIT, *doms[1];
	Mc__Account acc = MC__ACCOUNT__INIT, *accs[1];

	nng_msg_free(msg);
	if (req == NULL)
		return;
	pthread_mutex_lock(&fake.lock);
	snprintf(fake.token_seen, sizeof(fake.token_seen), "%s", req->token);
	if (req->body_case == MC__REQUEST__BODY_REGISTER) {
		fake.registers++;
		reg.node_id = 7;
		reg.version = fake.version;
		reg.heartbeat_ms = 100;
		resp.body_case = MC__RESPONSE__BODY_REGISTER;
		resp.register_ = &reg;
	} else if (req->body_case == MC__REQUEST__BODY_HEARTBEAT) {
		fake.heartbeats++;
		fake.last_applied = req->heartbeat->applied_version;
		hb.known = !fake.forget;
		fake.forget = false;
		hb.version = fake.version;
		resp.body_case = MC__RESPONSE__BODY_HEARTBEAT;
		resp.heartbeat = &hb;
	} else if (req->body_case == MC__REQUEST__BODY_SNAPSHOT) {
		fake.snapshots++;
		fake_snapshot(&snap, &dom, &acc, doms, accs);
		resp.body_case = MC__RESPONSE__BODY_SNAPSHOT;
		resp.snapshot = &snap;
	}
	msg = mc_rpc_pack_response(&resp);
	pthread_mutex_unlock(&fake.lock);
	if (nng_sendmsg(fake.rep, msg, 0) != 0)
		nng_msg_free(msg);
	mc__request__free_unpacked(req, NULL);
}

static void *
fake_run(void *arg)
{
	nng_socket_set_ms(fake.rep, NNG_OPT_RECVTIMEO, 50);
	while (!atomic_load(&fake.stop)) {
		nng_msg *msg;

		if (nng_recvmsg(fake.rep, &msg, 0) == 0)
			fake_answer(msg);
	}
	return NULL;
}

static void
publish_raw(const void *data, size_t len)
{
	nng_send(fake.pub, (void *)data, len, 0);
}

/* Publish a one-domain delta on topic. */
static void
publish_domain(char topic, uint64_t from, uint64_t to, uint64_t id,
               const char *name)
{
	Mc__Domain dom = MC__DOMAIN__INIT;
	Mc__Change ch = MC__CHANGE__INIT, *chs[1] = {&ch};
	Mc__Delta d = MC__DELTA__INIT;
	uint8_t buf[256];

	dom.id = id;
	dom.name = (char *)name;
	ch.object_case = MC__CHANGE__OBJECT_DOMAIN;
	ch.domain = &dom;
	d.from_version = from;
	d.to_version = to;
	d.changes = chs;
	d.n_changes = 1;
	buf[0] = (uint8_t)topic;
	publish_raw(buf, 1 + mc__delta__pack(&d, buf + 1));
}

/* Publish an account upsert carrying a hash (what a relay must drop). */
static void
publish_account(char topic, uint64_t from, uint64_t to)
{
	Mc__Account acc = MC__ACCOUNT__INIT;
	Mc__Change ch = MC__CHANGE__INIT, *chs[1] = {&ch};
	Mc__Delta d = MC__DELTA__INIT;
	uint8_t buf[512];

	acc.id = 50;
	acc.domain_id = 1;
	acc.local_part = "bob";
	acc.domain = "example.org";
	acc.password_hash = "$argon2id$bob";
	acc.scram_sha256 = FAKE_SCRAM;
	ch.object_case = MC__CHANGE__OBJECT_ACCOUNT;
	ch.account = &acc;
	d.from_version = from;
	d.to_version = to;
	d.changes = chs;
	d.n_changes = 1;
	buf[0] = (uint8_t)topic;
	publish_raw(buf, 1 + mc__delta__pack(&d, buf + 1));
}

static unsigned changes;

static void
on_change(const struct mc_directory *dir, void *ctx)
{
	changes++;
}

static void
timeout_cb(uv_timer_t *t)
{
}

/* Run the loop until dir reaches version (or 5 s pass). */
static bool
run_until_version(uv_loop_t *loop, const struct mc_directory *dir,
                  uint64_t version)
{
	uv_timer_t t;
	uint64_t end = uv_now(loop) + 5000;

	uv_timer_init(loop, &t);
	uv_timer_start(&t, timeout_cb, 20, 20);
	while (mc_directory_version(dir) != version && uv_now(loop) < end)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return mc_directory_version(dir) == version;
}

/* Run the loop until path exists (directory.json is written on a
 * worker after the change is applied) or 5 s pass. */
static bool
run_until_file(uv_loop_t *loop, const char *path)
{
	uv_timer_t t;
	uint64_t end = uv_now(loop) + 5000;
	struct stat st;

	uv_timer_init(loop, &t);
	uv_timer_start(&t, timeout_cb, 5, 5);
	while (stat(path, &st) < 0 && uv_now(loop) < end)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return stat(path, &st) == 0;
}

/* Run the loop for ms milliseconds. */
static void
run_for(uv_loop_t *loop, uint64_t ms)
{
	uv_timer_t t;
	uint64_t end = uv_now(loop) + ms;

	uv_timer_init(loop, &t);
	uv_timer_start(&t, timeout_cb, 20, 20);
	while (uv_now(loop) < end)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

static void
test_sync(uv_loop_t *loop, const char *dir_path, const char *ctl_url,
          const char *pub_url, Mc__NodeKind kind)
{
	char topic = kind == MC__NODE_KIND__NODE_KIND_RELAY ? 'R' : 'M';
	struct mc_cfgsync_settings set = {
	        .name = "n1",
	        .kind = kind,
	        .control_url = ctl_url,
	        .publish_url = pub_url,
	        .token = "tok",
	        .state_dir = dir_path,
	        .request_timeout_ms = 500,
	        .on_change = on_change,
	};
	struct mc_cfgsync *sync = NULL;
	const struct mc_directory *dir;
	const struct mc_dir_account *acc;
	const char *error;
	char *path = mc_asprintf("%s/directory.json", dir_path);
	struct stat st;

	fake.version = 3;
	CHECK(mc_cfgsync_start(loop, &set, &sync, &error) == 0);
	dir = mc_cfgsync_directory(sync);
	/* register, then a snapshot since 0 != 3 */
	CHECK(run_until_version(loop, dir, 3));
	CHECK(mc_directory_shard_count(dir) == 16);
	CHECK_STR(fake.token_seen, "tok");
	acc = mc_directory_account(dir, "alice@example.org");
	CHECK(acc != NULL);
	if (kind == MC__NODE_KIND__NODE_KIND_RELAY)
		CHECK(acc != NULL && acc->password_hash[0] == '\0' &&
		      acc->scram_sha256[0] == '\0');
	else
		CHECK(acc != NULL &&
		      strcmp(acc->password_hash, "$argon2id$fake") == 0 &&
		      strcmp(acc->scram_sha256, FAKE_SCRAM) == 0);
	CHECK(run_until_file(loop, path));
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	/* deltas (repeated until the SUB socket has joined: old news is
	 * ignored), then garbage, which must change nothing */
	pthread_mutex_lock(&fake.lock);
	fake.version = 4;
	pthread_mutex_unlock(&fake.lock);
	for (int i = 0; i < 50 && mc_directory_version(dir) != 4; i++) {
		publish_domain(topic, 3, 4, 10, "two.org");
		run_for(loop, 20);
	}
	CHECK(mc_directory_version(dir) == 4);
	CHECK(mc_directory_has_domain(dir, "two.org"));
	publish_raw("", 0);
	publish_raw(topic == 'M' ? "M\xff\xff\xff" : "R\xff\xff\xff", 4);
	publish_domain(topic, 4, 4, 11, "bad.org");          /* to <= from */
	publish_domain(topic, 4, UINT64_MAX, 12, "bad.org"); /* absurd span */
	publish_domain(topic, 4, 5, 0, "bad.org");           /* id 0 */
	publish_domain(topic == 'M' ? 'R' : 'M', 4, 5, 13, "bad.org");
	run_for(loop, 150);
	CHECK(mc_directory_version(dir) == 4);
	CHECK(!mc_directory_has_domain(dir, "bad.org"));

	/* relays drop hashes that arrive in deltas */
	pthread_mutex_lock(&fake.lock);
	fake.version = 5;
	pthread_mutex_unlock(&fake.lock);
	publish_account(topic, 4, 5);
	CHECK(run_until_version(loop, dir, 5));
	acc = mc_directory_account(dir, "bob@example.org");
	CHECK(acc != NULL);
	if (acc != NULL && kind == MC__NODE_KIND__NODE_KIND_RELAY)
		CHECK(acc->password_hash[0] == '\0' &&
		      acc->scram_sha256[0] == '\0');
	else if (acc != NULL)
		CHECK(strcmp(acc->scram_sha256, FAKE_SCRAM) == 0);

	/* a gap: the next delta does not fit, so a snapshot (version 9) */
	pthread_mutex_lock(&fake.lock);
	fake.version = 9;
	pthread_mutex_unlock(&fake.lock);
	publish_domain(topic, 8, 9, 20, "nine.org");
	CHECK(run_until_version(loop, dir, 9));
	run_for(loop, 250);
	pthread_mutex_lock(&fake.lock);
	CHECK(fake.last_applied == 9); /* heartbeats report it */
	/* forgotten: re-register */
	fake.forget = true;
	fake.registers = 0;
	pthread_mutex_unlock(&fake.lock);
	run_for(loop, 400);
	pthread_mutex_lock(&fake.lock);
	CHECK(fake.registers == 1);
	pthread_mutex_unlock(&fake.lock);
	CHECK(changes >= 4);

	mc_cfgsync_close(&sync);
	CHECK(sync == NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	free(path);
}

int
main(void)
{
	char dir_path[] = "/tmp/cfgsync_test.XXXXXX";
	char *ctl_url, *pub_url, *state;
	uv_loop_t loop;
	const char *error;
	struct mc_cfgsync *sync = NULL;
	struct mc_cfgsync_settings bad = {.name = "x"};

	mc_log_init("cfgsync_test", MC_LOG_WARN);
	if (mkdtemp(dir_path) == NULL)
		return 1;
	ctl_url = mc_asprintf("ipc://%s/ctl.sock", dir_path);
	pub_url = mc_asprintf("ipc://%s/pub.sock", dir_path);
	uv_loop_init(&loop);
	CHECK(mc_cfgsync_start(&loop, &bad, &sync, &error) == -1);
	CHECK(sync == NULL);

	pthread_mutex_init(&fake.lock, NULL);
	CHECK(nng_rep0_open(&fake.rep) == 0 && nng_pub0_open(&fake.pub) == 0);
	CHECK(nng_listen(fake.rep, ctl_url, NULL, 0) == 0);
	CHECK(nng_listen(fake.pub, pub_url, NULL, 0) == 0);
	pthread_create(&fake.thread, NULL, fake_run, NULL);

	state = mc_asprintf("%s/mailbox", dir_path);
	test_sync(&loop, state, ctl_url, pub_url,
	          MC__NODE_KIND__NODE_KIND_MAILBOX);
	free(state);
	state = mc_asprintf("%s/relay", dir_path);
	test_sync(&loop, state, ctl_url, pub_url,
	          MC__NODE_KIND__NODE_KIND_RELAY);
	free(state);

	atomic_store(&fake.stop, true);
	pthread_join(fake.thread, NULL);
	nng_close(fake.rep);
	nng_close(fake.pub);
	CHECK(uv_loop_close(&loop) == 0);
	nng_fini();
	free(ctl_url);
	free(pub_url);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir_path);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir_path);
	}
	return mc_test_done();
}
