/* Unit tests of the delivery scheduler (relay/delivery.h): the real
 * scheduler and a real queue in a temporary directory, fake mailbox
 * nodes (lib/smtp_server in LMTP mode on 127.0.0.1, port 0, deciding
 * per recipient) and a directory injected through the settings' callback
 * (loaded from JSON). Covers delivery and removal, sessions per node,
 * retries after 4xx and after a refused connection, 5xx with a DSN that
 * is itself delivered, no DSN for the null sender, routing (no shard
 * owner then a kick, a deleted account, a foreign domain), the give-up
 * age, session limits, the startup scan after a restart, and closing
 * while a session runs. */
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delivery.h"
#include "directory.h"
#include "listener.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "smtp_server.h"
#include "test.h"

static uv_loop_t loop;
static char spool[128];
static struct relay_queue *queue;
static struct mc_directory *dir;
static uint64_t dir_version;

/* ---- helpers: loop, spool ---------------------------------------------- */

static bool timed_out;

static void
timeout_cb(uv_timer_t *t)
{
	(void)t;
	timed_out = true;
}

/* Run the loop until cond(arg) or ms passed; returns cond(arg). */
static bool
run_until(bool (*cond)(void *), void *arg, unsigned ms)
{
	uv_timer_t t;
	bool ok;

	uv_timer_init(&loop, &t);
	timed_out = false;
	uv_timer_start(&t, timeout_cb, ms, 0);
	while (!cond(arg) && !timed_out)
		uv_run(&loop, UV_RUN_ONCE);
	ok = cond(arg);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	return ok;
}

static bool
never(void *arg)
{
	(void)arg;
	return false;
}

static void
run_for(unsigned ms)
{
	run_until(never, NULL, ms);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
spool_open(void)
{
	const char *error;

	if (relay_queue_open(spool, NULL, &queue, &error) < 0) {
		fprintf(stderr, "queue: %s\n", error);
		exit(1);
	}
}

static void
spool_new(void)
{
	snprintf(spool, sizeof(spool), "/tmp/mc-delivery-test-XXXXXX");
	if (mkdtemp(spool) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	spool_open();
	dir = mc_directory_new();
}

static void
spool_rm(void)
{
	relay_queue_close(&queue);
	mc_directory_free(&dir);
	nftw(spool, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Committed messages still in the queue. */
static size_t
queued(void)
{
	char path[256];
	struct dirent *de;
	size_t n = 0;
	DIR *dd;

	snprintf(path, sizeof(path), "%s/queue", spool);
	if ((dd = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(dd)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len > 4 && strcmp(de->d_name + len - 4, ".env") == 0)
			n++;
	}
	closedir(dd);
	return n;
}

static bool
queue_empty(void *arg)
{
	(void)arg;
	return queued() == 0;
}

/* ---- the directory ------------------------------------------------------ */

/* Accounts of example.com: a (shard 0), b (shard 1), s (shard 1), w
 * (shard 2); each shard's owner is the LMTP address given, NULL: none. */
static void
dir_set(const char *shard0, const char *shard1, const char *shard2)
{
	const char *owners[3] = {shard0, shard1, shard2};
	char shards[1024] = "", path[256], *json;
	const char *error;
	size_t n = 0;
	FILE *f;

	for (unsigned i = 0; i < 3; i++) {
		if (owners[i] == NULL)
			continue;
		n += (size_t)snprintf(
		        shards + n, sizeof(shards) - n,
		        "%s{\"shard\":%u,\"node_id\":%u,\"epoch\":1,"
		        "\"node_name\":\"node%u\","
		        "\"lmtp_address\":\"%s\"}",
		        n > 0 ? "," : "", i, i + 1, i, owners[i]);
	}
	json = mc_asprintf(
	        "{\"version\":%llu,\"shard_count\":8,\"domains\":[{\"id\":1,"
	        "\"name\":\"example.com\",\"created_at\":1}],\"accounts\":["
	        "{\"id\":10,\"domain_id\":1,\"address\":\"a@example.com\","
	        "\"shard\":0,\"quota_bytes\":0},"
	        "{\"id\":11,\"domain_id\":1,\"address\":\"b@example.com\","
	        "\"shard\":1,\"quota_bytes\":0},"
	        "{\"id\":12,\"domain_id\":1,\"address\":\"s@example.com\","
	        "\"shard\":1,\"quota_bytes\":0},"
	        "{\"id\":13,\"domain_id\":1,\"address\":\"w@example.com\","
	        "\"shard\":2,\"quota_bytes\":0}],"
	        "\"aliases\":[],\"shards\":[%s]}",
	        (unsigned long long)++dir_version, shards);
	snprintf(path, sizeof(path), "%s/directory.json", spool);
	f = fopen(path, "w");
	fputs(json, f);
	fclose(f);
	free(json);
	if (mc_directory_load(dir, path, &error) < 0) {
		fprintf(stderr, "directory: %s\n", error);
		exit(1);
	}
}

static const struct mc_directory *
test_directory(void *ctx)
{
	(void)ctx;
	return dir;
}

/* ---- fake mailbox nodes ------------------------------------------------- */

#define FAKE_MAX_GOT 16

struct got {
	char *sender, *rcpts; /* rcpts joined by ',' */
	char *content;
};

struct fake {
	struct mc_listener *listener;
	struct mc_smtp_server *smtp;
	char addr[64];
	unsigned sessions, txns;
	unsigned in_txn, max_in_txn; /* between DATA and its replies */
	unsigned code;       /* for every recipient: 250 (0), 451, 550 */
	unsigned fail_first; /* answer this many transactions with 451 */
	bool hold;           /* keep the data_end replies */
	struct mc_smtp_session *held;
	size_t held_count;
	struct got got[FAKE_MAX_GOT];
	size_t ngot;
	char *buf;
	size_t len;
	bool listener_closed, smtp_closed;
};

static void
f_connect(struct mc_smtp_session *s, void *ctx)
{
	struct fake *f = ctx;

	f->sessions++;
	mc_smtp_session_accept(s);
}

static void
f_data_start(struct mc_smtp_session *s, void *ctx)
{
	struct fake *f = ctx;

	free(f->buf);
	f->buf = NULL;
	f->len = 0;
	if (++f->in_txn > f->max_in_txn)
		f->max_in_txn = f->in_txn;
	mc_smtp_session_accept(s);
}

static void
f_data_content(struct mc_smtp_session *s, void *ctx, const void *data,
               size_t len)
{
	struct fake *f = ctx;

	(void)s;
	f->buf = mc_realloc(f->buf, f->len + len + 1);
	memcpy(f->buf + f->len, data, len);
	f->len += len;
	f->buf[f->len] = '\0';
}

static void
f_reply_all(struct fake *f, struct mc_smtp_session *s, size_t n)
{
	unsigned code = f->code ? f->code : 250;

	f->in_txn--;
	if (f->fail_first > 0) {
		f->fail_first--;
		code = 451;
	}
	for (size_t i = 0; i < n; i++) {
		if (code == 250)
			mc_smtp_session_reply(s, 250, "2.0.0", "stored");
		else if (code == 451)
			mc_smtp_session_reply(s, 451, "4.3.0",
			                      "try again later");
		else
			mc_smtp_session_reply(s, 550, "5.1.1",
			                      "no such user here");
	}
}

static void
f_data_end(struct mc_smtp_session *s, void *ctx)
{
	struct fake *f = ctx;
	const struct mc_smtp_txn *txn = mc_smtp_session_txn(s);
	struct got *g;
	char rcpts[1024] = "";
	size_t n = 0;

	f->txns++;
	for (size_t i = 0; i < txn->rcpt_count; i++)
		n += (size_t)snprintf(rcpts + n, sizeof(rcpts) - n, "%s%s",
		                      i > 0 ? "," : "", txn->rcpts[i].mailbox);
	if (f->ngot < FAKE_MAX_GOT) {
		g = &f->got[f->ngot++];
		g->sender = mc_strdup(txn->mail_from);
		g->rcpts = mc_strdup(rcpts);
		g->content = mc_strdup(f->buf != NULL ? f->buf : "");
	}
	if (f->hold) {
		f->held = s;
		f->held_count = txn->rcpt_count;
		return;
	}
	f_reply_all(f, s, txn->rcpt_count);
}

static void
f_accept(struct mc_listener *listener, struct mc_conn *conn, void *ctx)
{
	(void)listener;
	mc_smtp_server_accept(((struct fake *)ctx)->smtp, conn);
}

static const struct mc_smtp_policy fake_policy = {
        .connect = f_connect,
        .data_start = f_data_start,
        .data_content = f_data_content,
        .data_end = f_data_end,
};

static void
fake_start(struct fake *f)
{
	struct mc_smtp_server_settings set;
	struct mc_listener_settings ls = {.host = "127.0.0.1"};
	const char *error;

	memset(f, 0, sizeof(*f));
	mc_smtp_server_settings_init(&set);
	set.hostname = "node.test";
	set.mode = MC_SMTP_MODE_LMTP;
	if (mc_smtp_server_new(&loop, &set, &fake_policy, f, &f->smtp, &error) <
	            0 ||
	    mc_listener_new(&loop, &ls, f_accept, f, &f->listener, &error) <
	            0) {
		fprintf(stderr, "fake node: %s\n", error);
		exit(1);
	}
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u",
	         (unsigned)mc_listener_port(f->listener));
}

static void
fake_listener_closed(void *ctx)
{
	((struct fake *)ctx)->listener_closed = true;
}

static void
fake_smtp_closed(void *ctx)
{
	((struct fake *)ctx)->smtp_closed = true;
}

static bool
fake_gone(void *arg)
{
	struct fake *f = arg;

	return f->listener_closed && f->smtp_closed;
}

/* Close the listener only: the port then refuses connections. */
static void
fake_stop_listening(struct fake *f)
{
	mc_listener_close(f->listener, fake_listener_closed);
	f->listener = NULL;
}

static void
fake_stop(struct fake *f)
{
	if (f->listener != NULL)
		fake_stop_listening(f);
	mc_smtp_server_close(f->smtp, fake_smtp_closed, f);
	CHECK(run_until(fake_gone, f, 5000));
	for (size_t i = 0; i < f->ngot; i++) {
		free(f->got[i].sender);
		free(f->got[i].rcpts);
		free(f->got[i].content);
	}
	free(f->buf);
}

static bool
fake_txns(void *arg)
{
	struct fake *f = arg;

	return f->txns >= 1;
}

static bool
fake_two_txns(void *arg)
{
	return ((struct fake *)arg)->txns >= 2;
}

/* ---- messages and the scheduler ----------------------------------------- */

static const char content[] = "From: Sender <s@example.com>\r\n"
                              "To: a@example.com\r\n"
                              "Subject: delivery test\r\n"
                              "\r\n"
                              "Hello.\r\n"
                              ".leading dot\r\n";

/* Commit a message; returns its envelope (the caller hands it to
 * relay_delivery_add or frees it). received 0: now. */
static struct relay_queue_envelope *
commit(const char *sender, const char *rcpt1, const char *rcpt2,
       int64_t received)
{
	struct relay_queue_envelope *env = relay_queue_envelope_new();
	struct relay_queue_msg *msg;
	const char *error;

	relay_queue_str_set(&env->sender, sender);
	relay_queue_envelope_add_rcpt(env, rcpt1);
	if (rcpt2 != NULL)
		relay_queue_envelope_add_rcpt(env, rcpt2);
	relay_queue_str_set(&env->client.helo, "mx.remote.test");
	relay_queue_str_set(&env->client.addr, "192.0.2.1");
	relay_queue_str_set(&env->client.proto, "ESMTP");
	env->received = received;
	if (relay_queue_begin(queue, &msg, &error) < 0 ||
	    relay_queue_append(msg, content, sizeof(content) - 1, &error) < 0 ||
	    relay_queue_commit(&msg, env, &error) < 0) {
		fprintf(stderr, "commit: %s\n", error);
		exit(1);
	}
	return env;
}

static void
commit_free(const char *sender, const char *rcpt1, const char *rcpt2,
            int64_t received, char id_r[RELAY_QUEUE_ID_SIZE])
{
	struct relay_queue_envelope *env =
	        commit(sender, rcpt1, rcpt2, received);

	if (id_r != NULL)
		memcpy(id_r, env->id, RELAY_QUEUE_ID_SIZE);
	relay_queue_envelope_free(&env);
}

static struct relay_queue_envelope *
load(const char *id)
{
	struct relay_queue_envelope *env = NULL;
	const char *error;

	if (relay_queue_load(queue, id, &env, &error) < 0)
		return NULL;
	return env;
}

static struct relay_delivery_settings
settings(void)
{
	return (struct relay_delivery_settings){
	        .queue = queue,
	        .directory = test_directory,
	        .hostname = "relay.test",
	        .retry_base_ms = 100,
	        .retry_max_ms = 400,
	};
}

static struct relay_delivery *
start(const struct relay_delivery_settings *set)
{
	struct relay_delivery *d = NULL;
	const char *error;

	if (relay_delivery_start(&loop, set, &d, &error) < 0) {
		fprintf(stderr, "start: %s\n", error);
		exit(1);
	}
	return d;
}

static void
closed_cb(void *arg)
{
	*(bool *)arg = true;
}

static bool
flag_set(void *arg)
{
	return *(bool *)arg;
}

static void
stop(struct relay_delivery *d)
{
	bool done = false;

	relay_delivery_close(d, closed_cb, &done);
	CHECK(!done); /* from the loop, not inside close */
	CHECK(run_until(flag_set, &done, 10000));
}

/* A pending recipient's state on disk. */
struct rcpt_wait {
	const char *id;
	size_t rcpt;
	uint32_t attempts;
};

static bool
attempts_reached(void *arg)
{
	struct rcpt_wait *w = arg;
	struct relay_queue_envelope *env = load(w->id);
	bool ok = env != NULL && env->rcpts[w->rcpt].attempts >= w->attempts;

	relay_queue_envelope_free(&env);
	return ok;
}

/* ---- tests --------------------------------------------------------------- */

/* A message committed before start: scanned, delivered, removed. */
static void
test_delivered(void)
{
	struct relay_delivery_settings set;
	struct relay_delivery *d;
	struct fake n0;

	spool_new();
	fake_start(&n0);
	dir_set(n0.addr, NULL, NULL);
	commit_free("x@remote.test", "a@example.com", NULL, 0, NULL);
	set = settings();
	d = start(&set);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(n0.txns == 1);
	CHECK(n0.ngot == 1 && strcmp(n0.got[0].content, content) == 0);
	CHECK(n0.ngot == 1 && strcmp(n0.got[0].sender, "x@remote.test") == 0);
	CHECK(n0.ngot == 1 && strcmp(n0.got[0].rcpts, "a@example.com") == 0);
	stop(d);
	fake_stop(&n0);
	spool_rm();
}

/* Two recipients on two nodes: one session each; added after start. */
static void
test_two_nodes(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_delivery *d;
	struct fake n0, n1;

	spool_new();
	fake_start(&n0);
	fake_start(&n1);
	dir_set(n0.addr, n1.addr, NULL);
	set.queue = queue;
	d = start(&set);
	run_for(50);
	relay_delivery_add(d, commit("x@remote.test", "a@example.com",
	                             "b@example.com", 0));
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(n0.sessions == 1 && n0.txns == 1);
	CHECK(n1.sessions == 1 && n1.txns == 1);
	CHECK(n0.ngot == 1 && strcmp(n0.got[0].rcpts, "a@example.com") == 0);
	CHECK(n1.ngot == 1 && strcmp(n1.got[0].rcpts, "b@example.com") == 0);
	stop(d);
	fake_stop(&n0);
	fake_stop(&n1);
	spool_rm();
}

/* 451, then 250 on the retry; the failure was written to the envelope. */
static void
test_retry(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_queue_envelope *env;
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE];
	struct rcpt_wait w = {.id = id, .rcpt = 0, .attempts = 1};
	struct fake n0;
	int64_t t0 = (int64_t)time(NULL);

	spool_new();
	fake_start(&n0);
	n0.fail_first = 1;
	dir_set(n0.addr, NULL, NULL);
	commit_free("x@remote.test", "a@example.com", NULL, 0, id);
	set.queue = queue;
	d = start(&set);
	CHECK(run_until(attempts_reached, &w, 5000));
	env = load(id);
	CHECK(env != NULL && env->rcpts[0].state == RELAY_QUEUE_PENDING);
	CHECK(env != NULL && strcmp(env->rcpts[0].last_error,
	                            "451 4.3.0 try again later") == 0);
	CHECK(env != NULL && env->rcpts[0].next_attempt > t0 &&
	      env->rcpts[0].next_attempt <= t0 + 3);
	CHECK(env != NULL && strncmp(env->rcpts[0].route, "lmtp:", 5) == 0);
	relay_queue_envelope_free(&env);
	CHECK(run_until(queue_empty, NULL, 8000));
	CHECK(n0.txns == 2);
	CHECK(n0.sessions == 2);
	stop(d);
	fake_stop(&n0);
	spool_rm();
}

static bool
dsn_check(const struct got *g, const char *failed, const char *status)
{
	char line[256];

	snprintf(line, sizeof(line), "Final-Recipient: rfc822; %s", failed);
	return strcmp(g->sender, "") == 0 &&
	       strcmp(g->rcpts, "s@example.com") == 0 &&
	       strstr(g->content, "multipart/report") != NULL &&
	       strstr(g->content, "report-type=delivery-status") != NULL &&
	       strstr(g->content, line) != NULL &&
	       strstr(g->content, "Action: failed") != NULL &&
	       strstr(g->content, status) != NULL &&
	       strstr(g->content, "Reporting-MTA: dns; relay.test") != NULL &&
	       strstr(g->content, "Subject: delivery test") != NULL;
}

/* 550: failed, and a DSN from <> to the (local) sender is queued and
 * delivered to the sender's node; both messages leave the queue. */
static void
test_permfail_dsn(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_delivery *d;
	struct fake n0, n1;

	spool_new();
	fake_start(&n0);
	fake_start(&n1);
	n0.code = 550;
	dir_set(n0.addr, n1.addr, NULL);
	commit_free("s@example.com", "a@example.com", NULL, 0, NULL);
	set.queue = queue;
	d = start(&set);
	CHECK(run_until(fake_txns, &n1, 5000));
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(n0.txns == 1);
	CHECK(n1.txns == 1);
	CHECK(n1.ngot == 1 &&
	      dsn_check(&n1.got[0], "a@example.com", "Status: 5.1.1"));
	CHECK(n1.ngot == 1 &&
	      strstr(n1.got[0].content, "no such user here") != NULL);
	stop(d);
	fake_stop(&n0);
	fake_stop(&n1);
	spool_rm();
}

/* The null sender never gets a DSN; NOTIFY=NEVER neither. */
static void
test_no_dsn(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_queue_envelope *env;
	struct relay_queue_msg *msg;
	struct relay_delivery *d;
	const char *error;
	struct fake n0, n1;

	spool_new();
	fake_start(&n0);
	fake_start(&n1);
	n0.code = 550;
	dir_set(n0.addr, n1.addr, NULL);
	commit_free("", "a@example.com", NULL, 0, NULL);
	set.queue = queue;
	d = start(&set);
	CHECK(run_until(queue_empty, NULL, 5000));
	env = relay_queue_envelope_new();
	relay_queue_str_set(&env->sender, "s@example.com");
	relay_queue_envelope_add_rcpt(env, "a@example.com")->notify =
	        RELAY_QUEUE_NOTIFY_NEVER;
	CHECK(relay_queue_begin(queue, &msg, &error) == 0 &&
	      relay_queue_append(msg, content, sizeof(content) - 1, &error) ==
	              0 &&
	      relay_queue_commit(&msg, env, &error) == 0);
	relay_delivery_add(d, env);
	CHECK(run_until(fake_two_txns, &n0, 5000));
	CHECK(run_until(queue_empty, NULL, 5000));
	run_for(300);
	CHECK(n0.txns == 2);
	CHECK(n1.txns == 0);
	CHECK(queued() == 0);
	stop(d);
	fake_stop(&n0);
	fake_stop(&n1);
	spool_rm();
}

/* No owner for shard 2: the recipient waits (written with its reason);
 * a kick after the owner appears delivers it at once, although its
 * backoff has not passed. */
static void
test_no_owner_kick(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_queue_envelope *env;
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE];
	struct rcpt_wait w = {.id = id, .rcpt = 0, .attempts = 1};
	struct fake n0;

	spool_new();
	fake_start(&n0);
	dir_set(n0.addr, NULL, NULL);
	commit_free("x@remote.test", "w@example.com", NULL, 0, id);
	set.queue = queue;
	set.retry_base_ms = 60000;
	set.retry_max_ms = 60000;
	d = start(&set);
	CHECK(run_until(attempts_reached, &w, 5000));
	env = load(id);
	CHECK(env != NULL && env->rcpts[0].state == RELAY_QUEUE_PENDING);
	CHECK(env != NULL &&
	      strcmp(env->rcpts[0].last_error,
	             "4.4.0 no mailbox node serves shard 2 yet") == 0);
	CHECK(env != NULL && strcmp(env->rcpts[0].route, "wait:shard:2") == 0);
	CHECK(env != NULL && env->rcpts[0].next_attempt >= time(NULL) + 50);
	relay_queue_envelope_free(&env);
	/* A kick without a change does nothing. */
	relay_delivery_kick(d);
	run_for(300);
	CHECK(queued() == 1 && n0.txns == 0);
	dir_set(n0.addr, NULL, n0.addr);
	relay_delivery_kick(d);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(n0.txns == 1);
	CHECK(n0.ngot == 1 && strcmp(n0.got[0].rcpts, "w@example.com") == 0);
	stop(d);
	fake_stop(&n0);
	spool_rm();
}

/* A deleted account fails with 5.1.1 (DSN to the local sender); a
 * foreign domain waits with the long retry when egress is off. */
static void
test_routing(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_queue_envelope *env;
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE];
	struct fake n0, n1;

	spool_new();
	fake_start(&n0);
	fake_start(&n1);
	dir_set(n0.addr, n1.addr, NULL);
	commit_free("s@example.com", "gone@example.com", "x@elsewhere.test", 0,
	            id);
	set.queue = queue;
	set.retry_max_ms = 600000;
	d = start(&set);
	CHECK(run_until(fake_txns, &n1, 5000));
	run_for(200);
	env = load(id);
	CHECK(env != NULL && env->rcpts[0].state == RELAY_QUEUE_FAILED);
	CHECK(env != NULL && strcmp(env->rcpts[0].last_error,
	                            "5.1.1 mailbox no longer exists") == 0);
	CHECK(env != NULL && env->rcpts[1].state == RELAY_QUEUE_PENDING);
	CHECK(env != NULL &&
	      strcmp(env->rcpts[1].last_error,
	             "4.4.0 outbound delivery is not configured") == 0);
	CHECK(env != NULL && strcmp(env->rcpts[1].route, "wait:egress") == 0);
	CHECK(env != NULL && env->rcpts[1].next_attempt >= time(NULL) + 500);
	relay_queue_envelope_free(&env);
	CHECK(n0.txns == 0);
	CHECK(n1.ngot == 1 &&
	      dsn_check(&n1.got[0], "gone@example.com", "Status: 5.1.1"));
	CHECK(queued() == 1);
	stop(d);
	fake_stop(&n0);
	fake_stop(&n1);
	spool_rm();
}

/* The node is down (connection refused): retried with backoff; the
 * shard then moves to a live node and a kick delivers at once. */
static void
test_node_down(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_queue_envelope *env;
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE];
	struct rcpt_wait w = {.id = id, .rcpt = 0, .attempts = 2};
	struct fake dead, n0;

	spool_new();
	fake_start(&dead);
	fake_stop_listening(&dead);
	fake_start(&n0);
	dir_set(dead.addr, NULL, NULL);
	commit_free("x@remote.test", "a@example.com", NULL, 0, id);
	set.queue = queue;
	d = start(&set);
	CHECK(run_until(attempts_reached, &w, 8000));
	env = load(id);
	CHECK(env != NULL && env->rcpts[0].state == RELAY_QUEUE_PENDING);
	CHECK(env != NULL &&
	      strncmp(env->rcpts[0].last_error, "4.4.1 ", 6) == 0);
	relay_queue_envelope_free(&env);
	/* The shard moves to a live node: the kick retries at once. */
	dir_set(n0.addr, NULL, NULL);
	relay_delivery_kick(d);
	CHECK(run_until(queue_empty, NULL, 8000));
	CHECK(n0.txns == 1);
	stop(d);
	fake_stop(&dead);
	fake_stop(&n0);
	spool_rm();
}

/* The owner answers 451 (it lost the shard); the shard moves and the
 * kick retries at once, long before the backoff. */
static void
test_moved(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE];
	struct rcpt_wait w = {.id = id, .rcpt = 0, .attempts = 1};
	struct fake old, n0;

	spool_new();
	fake_start(&old);
	fake_start(&n0);
	old.code = 451;
	dir_set(old.addr, NULL, NULL);
	commit_free("x@remote.test", "a@example.com", NULL, 0, id);
	set.queue = queue;
	set.retry_base_ms = 60000;
	set.retry_max_ms = 60000;
	d = start(&set);
	CHECK(run_until(attempts_reached, &w, 5000));
	dir_set(n0.addr, NULL, NULL);
	relay_delivery_kick(d);
	CHECK(run_until(queue_empty, NULL, 3000));
	CHECK(old.txns == 1 && n0.txns == 1);
	stop(d);
	fake_stop(&old);
	fake_stop(&n0);
	spool_rm();
}

/* A recipient older than give_up_s that fails temporarily fails for
 * good, with its 4xx status in the DSN. */
static void
test_give_up(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_delivery *d;
	struct fake n0, n1;

	spool_new();
	fake_start(&n0);
	fake_start(&n1);
	n0.code = 451;
	dir_set(n0.addr, n1.addr, NULL);
	commit_free("s@example.com", "a@example.com", NULL,
	            (int64_t)time(NULL) - 6 * 86400, NULL);
	set.queue = queue;
	d = start(&set);
	CHECK(run_until(fake_txns, &n1, 5000));
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(n0.txns == 1);
	CHECK(n1.ngot == 1 &&
	      dsn_check(&n1.got[0], "a@example.com", "Status: 4.3.0"));
	stop(d);
	fake_stop(&n0);
	fake_stop(&n1);
	spool_rm();
}

/* max_sessions 1: five messages to one node, never two transactions
 * at once (a session's slot is free once its replies are in, while its
 * QUIT may still be on the way), all delivered. */
static void
test_limits(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_delivery *d;
	struct fake n0;

	spool_new();
	fake_start(&n0);
	dir_set(n0.addr, NULL, NULL);
	for (int i = 0; i < 5; i++)
		commit_free("x@remote.test", "a@example.com", NULL, 0, NULL);
	set.queue = queue;
	set.max_sessions = 1;
	d = start(&set);
	CHECK(run_until(queue_empty, NULL, 8000));
	CHECK(n0.txns == 5);
	CHECK(n0.max_in_txn == 1);
	stop(d);
	fake_stop(&n0);
	spool_rm();
}

/* A restart: a message waiting for a route and one committed while the
 * relay was down are both scanned and delivered at once when the
 * directory has their route. */
static void
test_restart(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE];
	struct rcpt_wait w = {.id = id, .rcpt = 0, .attempts = 1};
	struct fake n0;

	spool_new();
	fake_start(&n0);
	dir_set(n0.addr, NULL, NULL);
	commit_free("x@remote.test", "w@example.com", NULL, 0, id);
	set.queue = queue;
	set.retry_base_ms = 60000;
	set.retry_max_ms = 60000;
	d = start(&set);
	CHECK(run_until(attempts_reached, &w, 5000));
	stop(d);
	relay_queue_close(&queue);
	spool_open();
	commit_free("x@remote.test", "a@example.com", NULL, 0, NULL);
	dir_set(n0.addr, NULL, n0.addr);
	set.queue = queue;
	d = start(&set);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(n0.txns == 2);
	stop(d);
	fake_stop(&n0);
	spool_rm();
}

/* Closing while a node holds its replies: the session is aborted, the
 * close completes, the recipient keeps its state (no attempt counted)
 * and is delivered after the restart. */
static void
test_close_during_session(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_queue_envelope *env;
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE];
	struct fake n0;

	spool_new();
	fake_start(&n0);
	n0.hold = true;
	dir_set(n0.addr, NULL, NULL);
	commit_free("x@remote.test", "a@example.com", NULL, 0, id);
	set.queue = queue;
	d = start(&set);
	CHECK(run_until(fake_txns, &n0, 5000));
	CHECK(n0.held != NULL);
	stop(d);
	env = load(id);
	CHECK(env != NULL && env->rcpts[0].state == RELAY_QUEUE_PENDING);
	CHECK(env != NULL && env->rcpts[0].attempts == 0);
	relay_queue_envelope_free(&env);
	/* The node answers late: nobody listens any more. */
	f_reply_all(&n0, n0.held, n0.held_count);
	n0.hold = false;
	run_for(100);
	d = start(&set);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(n0.txns == 2);
	stop(d);
	fake_stop(&n0);
	spool_rm();
}

static size_t count_cb_n;

static void
count_cb(const struct relay_queue_envelope *env, void *ctx)
{
	(void)env;
	(void)ctx;
	count_cb_n++;
}

struct deleted {
	bool done;
	int status;
};

static void
deleted_cb(int status, const char *error, void *arg)
{
	struct deleted *del = arg;

	(void)error;
	del->done = true;
	del->status = status;
}

static bool
deleted_done(void *arg)
{
	return ((struct deleted *)arg)->done;
}

/* mailctl queue list/show/retry/delete through the scheduler. */
static void
test_admin(void)
{
	struct relay_delivery_settings set = settings();
	struct relay_delivery *d;
	char id1[RELAY_QUEUE_ID_SIZE], id2[RELAY_QUEUE_ID_SIZE];
	char id3[RELAY_QUEUE_ID_SIZE];
	struct rcpt_wait w1 = {.id = id1, .rcpt = 0, .attempts = 1};
	struct rcpt_wait w2 = {.id = id2, .rcpt = 0, .attempts = 1};
	struct relay_queue_envelope *env;
	struct deleted del = {0}, del3 = {0};
	struct fake n0;

	spool_new();
	fake_start(&n0);
	n0.hold = true;
	dir_set(n0.addr, NULL, NULL);
	commit_free("x@remote.test", "w@example.com", NULL, 0, id1);
	commit_free("x@remote.test", "w@example.com", NULL, 0, id2);
	set.queue = queue;
	set.retry_base_ms = 60000;
	set.retry_max_ms = 60000;
	d = start(&set);
	CHECK(run_until(attempts_reached, &w1, 5000));
	CHECK(run_until(attempts_reached, &w2, 5000));
	count_cb_n = 0;
	relay_delivery_foreach(d, count_cb, NULL);
	CHECK(count_cb_n == 2);
	CHECK(relay_delivery_find(d, id1) != NULL &&
	      strcmp(relay_delivery_find(d, id1)->id, id1) == 0);
	CHECK(relay_delivery_find(d, "nope") == NULL);
	/* retry one, then all: each is tried again (still no owner) */
	CHECK(relay_delivery_retry(d, "nope") < 0);
	CHECK(relay_delivery_retry(d, id1) == 0);
	w1.attempts = 2;
	CHECK(run_until(attempts_reached, &w1, 5000));
	env = load(id2);
	CHECK(env != NULL && env->rcpts[0].attempts == 1);
	relay_queue_envelope_free(&env);
	CHECK(relay_delivery_retry(d, NULL) == 0);
	w2.attempts = 2;
	CHECK(run_until(attempts_reached, &w2, 5000));
	/* delete an idle message */
	CHECK(relay_delivery_delete(d, "nope", deleted_cb, &del) < 0);
	CHECK(relay_delivery_delete(d, id1, deleted_cb, &del) == 0);
	CHECK(!del.done);
	CHECK(run_until(deleted_done, &del, 5000) && del.status == 0);
	CHECK(relay_delivery_find(d, id1) == NULL);
	CHECK(queued() == 1);
	/* delete a message whose session is running: aborted, removed */
	env = commit("x@remote.test", "a@example.com", NULL, 0);
	memcpy(id3, env->id, RELAY_QUEUE_ID_SIZE);
	relay_delivery_add(d, env);
	CHECK(run_until(fake_txns, &n0, 5000));
	CHECK(n0.held != NULL);
	CHECK(relay_delivery_delete(d, id3, deleted_cb, &del3) == 0);
	CHECK(relay_delivery_delete(d, id3, deleted_cb, &del3) < 0);
	CHECK(run_until(deleted_done, &del3, 5000) && del3.status == 0);
	CHECK(relay_delivery_find(d, id3) == NULL);
	CHECK(queued() == 1);
	f_reply_all(&n0, n0.held, n0.held_count);
	n0.hold = false;
	run_for(100);
	stop(d);
	fake_stop(&n0);
	spool_rm();
}

static void
test_settings(void)
{
	struct relay_delivery_settings set = {0};
	struct relay_delivery *d = NULL;
	const char *error = NULL;

	CHECK(relay_delivery_start(&loop, &set, &d, &error) < 0 &&
	      error != NULL);
	spool_new();
	set = settings();
	set.hostname = "bad host";
	CHECK(relay_delivery_start(&loop, &set, &d, &error) < 0);
	set.hostname = NULL;
	CHECK(relay_delivery_start(&loop, &set, &d, &error) < 0);
	set = settings();
	set.directory = NULL;
	CHECK(relay_delivery_start(&loop, &set, &d, &error) < 0);
	CHECK(d == NULL);
	spool_rm();
}

int
main(void)
{
	mc_log_init("delivery_test",
	            getenv("MC_TEST_VERBOSE") ? MC_LOG_DEBUG : MC_LOG_WARN);
	uv_loop_init(&loop);
	test_settings();
	test_delivered();
	test_two_nodes();
	test_retry();
	test_permfail_dsn();
	test_no_dsn();
	test_no_owner_kick();
	test_routing();
	test_node_down();
	test_moved();
	test_give_up();
	test_limits();
	test_restart();
	test_close_during_session();
	test_admin();
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0);
	/* Join libuv's worker threads now, while OpenSSL can still run
	 * their thread-exit cleanup (DSN boundaries use RAND_bytes there):
	 * from its own atexit handler it would be too late. */
	uv_library_shutdown();
	return mc_test_done();
}
