/* Unit tests of egress delivery (relay/delivery_egress.c and the egress
 * routing of delivery_route.c): the real scheduler on a real queue in a
 * temporary directory, lib/dns against lib/dns_test_server (a DNS server
 * on 127.0.0.1), fake SMTP servers (lib/smtp_server on 127.0.0.1, port 0)
 * and a directory with routes loaded from JSON, changed between
 * attempts. Covers: a smarthost by IP and by a name whose AAAA address
 * refuses (IPv4 takes over); direct MX with the first MX host
 * unreachable; NXDOMAIN and null MX failing for good; a 451 leaving the
 * recipient pending with its last error, then a changed route (new host
 * under the same name and a new id) delivering at once after a kick; a
 * rule for one domain; a route whose AUTH secret cannot be read; AUTH
 * PLAIN over STARTTLS with the secret from the environment and from a
 * file read again at every attempt; the per-destination session limit;
 * local accounts of an outbound message still over LMTP; connection
 * reuse (messages to one route over one connection, a changed route on
 * a new one, an idle connection the server ends). */
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delivery.h"
#include "directory.h"
#include "dns.h"
#include "dns_test_server.h"
#include "listener.h"
#include "log.h"
#include "mem.h"
#include "mime_decode.h"
#include "queue.h"
#include "smtp_server.h"
#include "test.h"
#include "tls.h"

static uv_loop_t loop;
static char spool[128];
static struct relay_queue *queue;
static struct mc_directory *dir;
static uint64_t dir_version;
static struct mc_dns *dns;
static struct mc_tls_ctx *client_tls, *mx_tls, *server_tls;
static struct test_dns_server dns_server;
static struct test_dns_entry dns_table[16];

/* ---- loop ------------------------------------------------------------------
 */

static bool timed_out;

static void
timeout_cb(uv_timer_t *t)
{
	(void)t;
	timed_out = true;
}

static bool
run_until(bool (*cond)(void *), void *arg, unsigned ms)
{
	uv_timer_t t;
	bool ok;

	uv_timer_init(&loop, &t);
	uv_update_time(&loop);
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

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

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

/* ---- the directory ----------------------------------------------------------
 */

/* example.com with account a@ (shard 0, owner lmtp or none); routes
 * (JSON array text), rules (JSON array text). */
static void
dir_set(const char *lmtp, const char *routes, const char *rules)
{
	char shards[256] = "", path[256], *json;
	const char *error;
	FILE *f;

	if (lmtp != NULL)
		snprintf(shards, sizeof(shards),
		         "{\"shard\":0,\"node_id\":1,\"epoch\":1,"
		         "\"node_name\":\"node1\",\"lmtp_address\":\"%s\"}",
		         lmtp);
	json = mc_asprintf(
	        "{\"version\":%llu,\"shard_count\":8,\"domains\":[{\"id\":1,"
	        "\"name\":\"example.com\",\"created_at\":1}],\"accounts\":["
	        "{\"id\":10,\"domain_id\":1,\"address\":\"a@example.com\","
	        "\"shard\":0,\"quota_bytes\":0}],\"aliases\":[],"
	        "\"shards\":[%s],\"routes\":[%s],\"route_rules\":[%s],"
	        "\"dkim_keys\":[]}",
	        (unsigned long long)++dir_version, shards,
	        routes != NULL ? routes : "", rules != NULL ? rules : "");
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

/* A route's JSON. */
static char *
route_tls(unsigned id, const char *name, const char *kind, const char *host,
          unsigned port, const char *tls, const char *auth_user,
          const char *secret_env, const char *secret_file, bool is_default)
{
	return mc_asprintf("{\"id\":%u,\"name\":\"%s\",\"kind\":\"%s\","
	                   "\"host\":\"%s\",\"port\":%u,\"tls\":\"%s\","
	                   "\"auth_user\":\"%s\",\"secret_env\":\"%s\","
	                   "\"secret_file\":\"%s\",\"default\":%s,"
	                   "\"created_at\":1}",
	                   id, name, kind, host, port, tls, auth_user,
	                   secret_env, secret_file,
	                   is_default ? "true" : "false");
}

static char *
route(unsigned id, const char *name, const char *kind, const char *host,
      unsigned port, const char *auth_user, const char *secret_env,
      bool is_default)
{
	return route_tls(id, name, kind, host, port, "none", auth_user,
	                 secret_env, "", is_default);
}

static const struct mc_directory *
test_directory(void *ctx)
{
	(void)ctx;
	return dir;
}

/* ---- fake SMTP servers --------------------------------------------------- */

struct fake {
	struct mc_listener *listener;
	struct mc_smtp_server *smtp;
	enum mc_smtp_mode mode;
	uint16_t port;
	char addr[64];
	unsigned txns, sessions, in_txn, max_in_txn;
	unsigned code; /* 0/250, 451, 550 */
	bool hold;
	struct mc_smtp_session *held;
	char rcpts[512];
	char login[128]; /* "user:password" of the last AUTH PLAIN */
	bool tls_seen;   /* the last transaction ran over TLS */
	bool listener_closed, smtp_closed;
};

static void
f_connect(struct mc_smtp_session *s, void *ctx)
{
	((struct fake *)ctx)->sessions++;
	mc_smtp_session_accept(s);
}

static void
f_data_start(struct mc_smtp_session *s, void *ctx)
{
	struct fake *f = ctx;

	if (++f->in_txn > f->max_in_txn)
		f->max_in_txn = f->in_txn;
	mc_smtp_session_accept(s);
}

static void
f_reply(struct fake *f, struct mc_smtp_session *s)
{
	const struct mc_smtp_txn *txn = mc_smtp_session_txn(s);
	size_t n = f->mode == MC_SMTP_MODE_LMTP ? txn->rcpt_count : 1;

	f->in_txn--;
	for (size_t i = 0; i < n; i++) {
		if (f->code == 451)
			mc_smtp_session_reply(s, 451, "4.3.0", "busy, later");
		else if (f->code == 550)
			mc_smtp_session_reply(s, 550, "5.7.1", "refused");
		else
			mc_smtp_session_reply(s, 250, "2.0.0", "ok");
	}
}

static void
f_data_end(struct mc_smtp_session *s, void *ctx)
{
	struct fake *f = ctx;
	const struct mc_smtp_txn *txn = mc_smtp_session_txn(s);
	size_t n = 0;

	f->txns++;
	f->tls_seen = mc_smtp_session_tls(s);
	f->rcpts[0] = '\0';
	for (size_t i = 0; i < txn->rcpt_count; i++)
		n += (size_t)snprintf(f->rcpts + n, sizeof(f->rcpts) - n,
		                      "%s%s", i > 0 ? "," : "",
		                      txn->rcpts[i].mailbox);
	if (f->hold) {
		f->held = s;
		return;
	}
	f_reply(f, s);
}

static void
f_accept(struct mc_listener *l, struct mc_conn *conn, void *ctx)
{
	(void)l;
	mc_smtp_server_accept(((struct fake *)ctx)->smtp, conn);
}

/* AUTH PLAIN with an initial response: "\0user\0password". */
static void
f_auth(struct mc_smtp_session *s, void *ctx, const char *mechanism,
       const char *response)
{
	struct fake *f = ctx;
	struct mc_strbuf raw = {0};
	const char *user, *pass;

	if (mechanism == NULL || strcmp(mechanism, "PLAIN") != 0 ||
	    response == NULL) {
		mc_smtp_session_reply(s, 504, "5.5.4", "PLAIN only, please");
		return;
	}
	mc_mime_decode_base64(&raw, response, strlen(response));
	mc_strbuf_addc(&raw, '\0');
	user = raw.data != NULL ? memchr(raw.data, '\0', raw.len) : NULL;
	pass = user != NULL ? user + strlen(user + 1) + 2 : NULL;
	if (user != NULL && pass < raw.data + raw.len) {
		snprintf(f->login, sizeof(f->login), "%s:%s", user + 1, pass);
		mc_smtp_session_reply(s, 235, "2.7.0", "ok");
	} else {
		mc_smtp_session_reply(s, 535, "5.7.8", "bad");
	}
	mc_strbuf_fini(&raw);
}

static const struct mc_smtp_policy fake_policy = {
        .connect = f_connect,
        .data_start = f_data_start,
        .data_end = f_data_end,
};

static const struct mc_smtp_policy fake_auth_policy = {
        .connect = f_connect,
        .data_start = f_data_start,
        .data_end = f_data_end,
        .auth = f_auth,
};

/* The fakes' wait for a command (0: the default). */
static uint64_t fake_command_ms;

/* With auth: STARTTLS (server_tls) and AUTH PLAIN, required by nothing
 * but recorded. */
static void
fake_start_tls(struct fake *f, enum mc_smtp_mode mode, bool auth)
{
	struct mc_smtp_server_settings set;
	struct mc_listener_settings ls = {.host = "127.0.0.1"};
	const char *error;

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	mc_smtp_server_settings_init(&set);
	set.hostname = "fake.test";
	set.mode = mode;
	set.timeouts.command_ms = fake_command_ms;
	if (auth) {
		set.tls = server_tls;
		set.auth_mechanisms = "PLAIN";
	}
	if (mc_smtp_server_new(&loop, &set,
	                       auth ? &fake_auth_policy : &fake_policy, f,
	                       &f->smtp, &error) < 0 ||
	    mc_listener_new(&loop, &ls, f_accept, f, &f->listener, &error) <
	            0) {
		fprintf(stderr, "fake: %s\n", error);
		exit(1);
	}
	f->port = mc_listener_port(f->listener);
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", (unsigned)f->port);
}

static void
fake_start(struct fake *f, enum mc_smtp_mode mode)
{
	fake_start_tls(f, mode, false);
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

static void
fake_stop(struct fake *f)
{
	mc_listener_close(f->listener, fake_listener_closed);
	mc_smtp_server_close(f->smtp, fake_smtp_closed, f);
	CHECK(run_until(fake_gone, f, 5000));
}

/* ---- messages and the scheduler
 * ---------------------------------------------- */

static const char content[] = "From: a@example.com\r\nTo: x@far.test\r\n"
                              "Subject: egress\r\n\r\nHello.\r\n";

/* An outbound message from sender to rcpt (and rcpt2); its id. */
static void
commit(const char *sender, const char *rcpt, const char *rcpt2,
       char id_r[RELAY_QUEUE_ID_SIZE])
{
	struct relay_queue_envelope *env = relay_queue_envelope_new();
	struct relay_queue_msg *msg;
	const char *error;

	env->outbound = true;
	relay_queue_str_set(&env->sender, sender);
	relay_queue_envelope_add_rcpt(env, rcpt);
	if (rcpt2 != NULL)
		relay_queue_envelope_add_rcpt(env, rcpt2);
	relay_queue_str_set(&env->client.proto, "ESMTP");
	if (relay_queue_begin(queue, &msg, &error) < 0 ||
	    relay_queue_append(msg, content, sizeof(content) - 1, &error) < 0 ||
	    relay_queue_commit(&msg, env, &error) < 0) {
		fprintf(stderr, "commit: %s\n", error);
		exit(1);
	}
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

struct rcpt_wait {
	const char *id;
	uint32_t attempts;
};

static bool
attempts_reached(void *arg)
{
	struct rcpt_wait *w = arg;
	struct relay_queue_envelope *env = load(w->id);
	bool ok = env != NULL && env->rcpts[0].attempts >= w->attempts;

	relay_queue_envelope_free(&env);
	return ok;
}

static struct relay_delivery *
start(unsigned per_dest, uint16_t mx_port)
{
	struct relay_delivery_settings set = {
	        .queue = queue,
	        .directory = test_directory,
	        .hostname = "relay.test",
	        .retry_base_ms = 60000,
	        .retry_max_ms = 600000,
	        .max_sessions_per_node = per_dest,
	        .egress = true,
	        .dns = dns,
	        .smarthost_tls = client_tls,
	        .mx_tls = mx_tls,
	        .mx_port = mx_port,
	};
	struct relay_delivery *d = NULL;
	const char *error;

	if (relay_delivery_start(&loop, &set, &d, &error) < 0) {
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
	CHECK(run_until(flag_set, &done, 10000));
}

static void
spool_new(void)
{
	const char *error;

	snprintf(spool, sizeof(spool), "/tmp/mc-egress-delivery-test-XXXXXX");
	if (mkdtemp(spool) == NULL ||
	    relay_queue_open(spool, NULL, &queue, &error) < 0) {
		perror("spool");
		exit(1);
	}
	dir = mc_directory_new();
}

static void
spool_rm(void)
{
	relay_queue_close(&queue);
	mc_directory_free(&dir);
	nftw(spool, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
dns_set(size_t i, const char *name, uint16_t type, enum test_dns_kind kind,
        const char *data)
{
	dns_table[i] = (struct test_dns_entry){name, type, kind, data};
	dns_table[i + 1] = (struct test_dns_entry){NULL, 0, 0, NULL};
}

/* ---- tests ----------------------------------------------------------------
 */

/* The default route is a smarthost by IP: delivered; an account of the
 * same outbound message goes over LMTP. */
static void
test_smarthost_ip(void)
{
	struct fake sh, node;
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE], *r;

	spool_new();
	fake_start(&sh, MC_SMTP_MODE_SMTP);
	fake_start(&node, MC_SMTP_MODE_LMTP);
	r = route(1, "sh", "smarthost", "127.0.0.1", sh.port, "", "", true);
	dir_set(node.addr, r, NULL);
	free(r);
	commit("a@example.com", "x@far.test", "a@example.com", id);
	d = start(0, 0);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(sh.txns == 1 && strcmp(sh.rcpts, "x@far.test") == 0);
	CHECK(node.txns == 1 && strcmp(node.rcpts, "a@example.com") == 0);
	stop(d);
	fake_stop(&sh);
	fake_stop(&node);
	spool_rm();
}

/* A smarthost by name: AAAA ::1 refuses (the fake listens on IPv4 only),
 * A 127.0.0.1 takes it. */
static void
test_smarthost_name_fallback(void)
{
	struct fake sh;
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE], *r;

	spool_new();
	fake_start(&sh, MC_SMTP_MODE_SMTP);
	dns_set(0, "smart.test", TEST_DNS_AAAA, TEST_DNS_RECORD, "::1");
	dns_set(1, "smart.test", TEST_DNS_A, TEST_DNS_RECORD, "127.0.0.1");
	r = route(1, "sh", "smarthost", "smart.test", sh.port, "", "", true);
	dir_set(NULL, r, NULL);
	free(r);
	commit("a@example.com", "x@far.test", NULL, id);
	d = start(0, 0);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(sh.txns == 1);
	stop(d);
	fake_stop(&sh);
	spool_rm();
}

/* No route: the MX hosts by preference; the first (127.0.0.2) refuses. */
static void
test_mx(void)
{
	struct fake mx;
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE];

	spool_new();
	fake_start(&mx, MC_SMTP_MODE_SMTP);
	dns_set(0, "far.test", TEST_DNS_MX, TEST_DNS_RECORD, "10 mx1.far.test");
	dns_set(1, "far.test", TEST_DNS_MX, TEST_DNS_RECORD, "20 mx2.far.test");
	dns_set(2, "mx1.far.test", TEST_DNS_A, TEST_DNS_RECORD, "127.0.0.2");
	dns_set(3, "mx2.far.test", TEST_DNS_A, TEST_DNS_RECORD, "127.0.0.1");
	dir_set(NULL, NULL, NULL);
	commit("a@example.com", "x@far.test", NULL, id);
	d = start(0, mx.port);
	CHECK(run_until(queue_empty, NULL, 8000));
	CHECK(mx.txns == 1 && strcmp(mx.rcpts, "x@far.test") == 0);
	stop(d);
	fake_stop(&mx);
	spool_rm();
}

/* NXDOMAIN and null MX: failed for good (null sender: no DSN). */
static void
test_dns_permanent(void)
{
	struct relay_delivery *d;
	struct relay_queue_envelope *env;
	char id1[RELAY_QUEUE_ID_SIZE];

	spool_new();
	dns_set(0, "nomail.test", TEST_DNS_MX, TEST_DNS_RECORD, "0 .");
	dir_set(NULL, NULL, NULL);
	commit("", "x@nosuch.test", "y@nomail.test", id1);
	d = start(0, 0);
	CHECK(run_until(queue_empty, NULL, 8000));
	stop(d);
	env = load(id1);
	CHECK(env == NULL); /* removed: nothing pending */
	relay_queue_envelope_free(&env);
	spool_rm();
}

/* 451 from the smarthost: pending, last error, next attempt later. The
 * route is then recreated under the same name with a new id and another
 * host: a kick delivers there at once. */
static void
test_tempfail_then_route_change(void)
{
	struct fake busy, good;
	struct relay_delivery *d;
	struct relay_queue_envelope *env;
	struct rcpt_wait w = {.attempts = 1};
	char id[RELAY_QUEUE_ID_SIZE], *r;

	spool_new();
	fake_start(&busy, MC_SMTP_MODE_SMTP);
	fake_start(&good, MC_SMTP_MODE_SMTP);
	busy.code = 451;
	r = route(1, "sh", "smarthost", "127.0.0.1", busy.port, "", "", true);
	dir_set(NULL, r, NULL);
	free(r);
	commit("a@example.com", "x@far.test", NULL, id);
	w.id = id;
	d = start(0, 0);
	CHECK(run_until(attempts_reached, &w, 5000));
	env = load(id);
	CHECK(env != NULL && env->rcpts[0].state == RELAY_QUEUE_PENDING);
	CHECK(env != NULL &&
	      strcmp(env->rcpts[0].last_error, "451 4.3.0 busy, later") == 0);
	CHECK(env != NULL && env->rcpts[0].next_attempt > time(NULL) + 30);
	CHECK(env != NULL &&
	      strncmp(env->rcpts[0].route, "smarthost:sh#1:", 15) == 0);
	relay_queue_envelope_free(&env);
	/* deleted and recreated: same name, new id, new host */
	r = route(2, "sh", "smarthost", "127.0.0.1", good.port, "", "", true);
	dir_set(NULL, r, NULL);
	free(r);
	relay_delivery_kick(d);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(busy.txns == 1 && good.txns == 1);
	stop(d);
	fake_stop(&busy);
	fake_stop(&good);
	spool_rm();
}

/* A rule sends one domain elsewhere; the AUTH secret of a route that
 * cannot be read: a temporary failure that names the variable only. */
static void
test_rule_and_secret(void)
{
	struct fake a, b;
	struct relay_delivery *d;
	struct relay_queue_envelope *env;
	struct rcpt_wait w = {.attempts = 1};
	char id[RELAY_QUEUE_ID_SIZE], id2[RELAY_QUEUE_ID_SIZE], *r1, *r2,
	        *routes;

	spool_new();
	fake_start(&a, MC_SMTP_MODE_SMTP);
	fake_start(&b, MC_SMTP_MODE_SMTP);
	r1 = route(1, "one", "smarthost", "127.0.0.1", a.port, "", "", true);
	r2 = route(2, "two", "smarthost", "127.0.0.1", b.port, "", "", false);
	routes = mc_asprintf("%s,%s", r1, r2);
	dir_set(NULL, routes,
	        "{\"id\":5,\"domain\":\"ruled.test\",\"route_id\":2,"
	        "\"route\":\"two\",\"created_at\":1}");
	free(routes);
	free(r1);
	free(r2);
	commit("a@example.com", "x@ruled.test", NULL, id);
	commit("a@example.com", "x@other.test", NULL, id2);
	d = start(0, 0);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(a.txns == 1 && strcmp(a.rcpts, "x@other.test") == 0);
	CHECK(b.txns == 1 && strcmp(b.rcpts, "x@ruled.test") == 0);
	/* AUTH with a missing environment variable */
	unsetenv("MC_EGRESS_TEST_NO_SUCH_SECRET");
	r1 = route(3, "auth", "smarthost", "127.0.0.1", a.port, "user",
	           "MC_EGRESS_TEST_NO_SUCH_SECRET", true);
	dir_set(NULL, r1, NULL);
	free(r1);
	stop(d);
	commit("a@example.com", "x@far.test", NULL, id);
	d = start(0, 0);
	w.id = id;
	CHECK(run_until(attempts_reached, &w, 5000));
	env = load(id);
	CHECK(env != NULL && env->rcpts[0].state == RELAY_QUEUE_PENDING);
	CHECK(env != NULL && strstr(env->rcpts[0].last_error,
	                            "4.7.0 cannot read the AUTH secret "
	                            "of route auth: environment "
	                            "variable "
	                            "MC_EGRESS_TEST_NO_SUCH_SECRET is "
	                            "not set") != NULL);
	relay_queue_envelope_free(&env);
	CHECK(a.txns == 1);
	stop(d);
	fake_stop(&a);
	fake_stop(&b);
	spool_rm();
}

/* AUTH over STARTTLS with the secret from the environment, then from a
 * file rewritten between attempts (read at every attempt). */
static void
test_auth(void)
{
	struct fake sh;
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE], *r, path[256];
	FILE *f;

	spool_new();
	fake_start_tls(&sh, MC_SMTP_MODE_SMTP, true);
	setenv("MC_EGRESS_TEST_SECRET", "s3cret-env", 1);
	r = route_tls(1, "sh", "smarthost", "127.0.0.1", sh.port, "starttls",
	              "relay", "MC_EGRESS_TEST_SECRET", "", true);
	dir_set(NULL, r, NULL);
	free(r);
	commit("a@example.com", "x@far.test", NULL, id);
	d = start(0, 0);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(sh.txns == 1 && sh.tls_seen);
	CHECK(strcmp(sh.login, "relay:s3cret-env") == 0);
	stop(d);
	snprintf(path, sizeof(path), "%s/secret", spool);
	f = fopen(path, "w");
	fputs("from-the-file\n", f);
	fclose(f);
	r = route_tls(2, "sh", "smarthost", "127.0.0.1", sh.port, "starttls",
	              "relay", "", path, true);
	dir_set(NULL, r, NULL);
	free(r);
	commit("a@example.com", "y@far.test", NULL, id);
	d = start(0, 0);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(sh.txns == 2 && strcmp(sh.login, "relay:from-the-file") == 0);
	f = fopen(path, "w");
	fputs("rotated\n", f);
	fclose(f);
	commit("a@example.com", "z@far.test", NULL, id);
	stop(d);
	d = start(0, 0);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(sh.txns == 3 && strcmp(sh.login, "relay:rotated") == 0);
	stop(d);
	unsetenv("MC_EGRESS_TEST_SECRET");
	fake_stop(&sh);
	spool_rm();
}

static bool
two_held(void *arg)
{
	struct fake *f = arg;

	return f->held != NULL;
}

/* At most one session at once to one destination: the second message
 * waits for the first's session to end. */
static void
test_destination_limit(void)
{
	struct fake sh;
	struct relay_delivery *d;
	char id1[RELAY_QUEUE_ID_SIZE], id2[RELAY_QUEUE_ID_SIZE], *r;

	spool_new();
	fake_start(&sh, MC_SMTP_MODE_SMTP);
	sh.hold = true;
	r = route(1, "sh", "smarthost", "127.0.0.1", sh.port, "", "", true);
	dir_set(NULL, r, NULL);
	free(r);
	commit("a@example.com", "x@far.test", NULL, id1);
	commit("a@example.com", "y@far.test", NULL, id2);
	d = start(1, 0);
	CHECK(run_until(two_held, &sh, 5000));
	run_until(never, NULL, 300);
	CHECK(sh.txns == 1 && sh.max_in_txn == 1);
	sh.hold = false;
	f_reply(&sh, sh.held);
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(sh.txns == 2 && sh.max_in_txn == 1);
	stop(d);
	fake_stop(&sh);
	spool_rm();
}

/* Commit a message to the running scheduler. */
static void
commit_add(struct relay_delivery *d, const char *rcpt)
{
	char id[RELAY_QUEUE_ID_SIZE];
	struct relay_queue_envelope *env;

	commit("a@example.com", rcpt, NULL, id);
	if ((env = load(id)) != NULL)
		relay_delivery_add(d, env);
	CHECK(env != NULL);
}

/* Three messages to one smarthost: one connection. A changed route (a new
 * note) does not take the old connection; a held connection the server
 * ends (its idle timeout) is dropped and the next message connects anew. */
static void
test_reuse(void)
{
	struct fake sh, quick;
	struct relay_delivery *d;
	char id[RELAY_QUEUE_ID_SIZE], *r;

	spool_new();
	fake_start(&sh, MC_SMTP_MODE_SMTP);
	fake_command_ms = 200;
	fake_start(&quick, MC_SMTP_MODE_SMTP);
	fake_command_ms = 0;
	r = route(1, "sh", "smarthost", "127.0.0.1", sh.port, "", "", true);
	dir_set(NULL, r, NULL);
	free(r);
	commit("a@example.com", "x@far.test", NULL, id);
	commit("a@example.com", "y@far.test", NULL, id);
	d = start(1, 0);
	CHECK(run_until(queue_empty, NULL, 5000));
	commit_add(d, "z@far.test");
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(sh.txns == 3 && sh.sessions == 1);

	/* same host, new route id: another note, another connection */
	r = route(2, "sh", "smarthost", "127.0.0.1", sh.port, "", "", true);
	dir_set(NULL, r, NULL);
	free(r);
	commit_add(d, "w@far.test");
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(sh.txns == 4 && sh.sessions == 2);

	/* a server that ends idle sessions after 200 ms (421, close) */
	r = route(3, "q", "smarthost", "127.0.0.1", quick.port, "", "", true);
	dir_set(NULL, r, NULL);
	free(r);
	commit_add(d, "v@far.test");
	CHECK(run_until(queue_empty, NULL, 5000));
	run_until(never, NULL, 600);
	commit_add(d, "u@far.test");
	CHECK(run_until(queue_empty, NULL, 5000));
	CHECK(quick.txns == 2 && quick.sessions == 2);
	stop(d);
	fake_stop(&sh);
	fake_stop(&quick);
	spool_rm();
}

int
main(void)
{
	struct mc_dns_settings ds = {0};
	const char *servers[1], *error;
	char *cert = NULL, *key = NULL;

	mc_log_init("delivery_egress_test", getenv("MC_TEST_VERBOSE")
	                                            ? MC_LOG_DEBUG
	                                            : MC_LOG_ERROR + 1);
	uv_loop_init(&loop);
	dns_table[0].name = NULL;
	if (test_dns_start(&loop, &dns_server, dns_table) < 0) {
		fprintf(stderr, "dns server\n");
		return 1;
	}
	servers[0] = dns_server.address;
	ds.servers = servers;
	ds.server_count = 1;
	ds.timeout_ms = 500;
	ds.tries = 1;
	if (mc_tls_self_signed("127.0.0.1", 2, &cert, &key, &error) < 0 ||
	    mc_tls_ctx_new(
	            MC_TLS_SERVER,
	            &(struct mc_tls_settings){.cert_pem = cert, .key_pem = key},
	            &server_tls, &error) < 0 ||
	    mc_dns_new(&loop, &ds, &dns, &error) < 0 ||
	    mc_tls_ctx_new(MC_TLS_CLIENT,
	                   &(struct mc_tls_settings){.ca_pem = cert},
	                   &client_tls, &error) < 0 ||
	    mc_tls_ctx_new(MC_TLS_CLIENT,
	                   &(struct mc_tls_settings){.opportunistic = true},
	                   &mx_tls, &error) < 0) {
		fprintf(stderr, "setup: %s\n", error);
		return 1;
	}
	test_smarthost_ip();
	test_smarthost_name_fallback();
	test_mx();
	test_dns_permanent();
	test_tempfail_then_route_change();
	test_rule_and_secret();
	test_destination_limit();
	test_auth();
	test_reuse();
	mc_dns_close(dns, NULL, NULL);
	test_dns_stop(&dns_server);
	mc_tls_ctx_free(&client_tls);
	mc_tls_ctx_free(&mx_tls);
	mc_tls_ctx_free(&server_tls);
	mc_wipe(key, strlen(key));
	free(key);
	free(cert);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0);
	uv_library_shutdown();
	return mc_test_done();
}
