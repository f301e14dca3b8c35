/* Unit tests of the egress listener (relay/egress.h): the real listener
 * on 127.0.0.1 with a real queue in a temporary directory and a directory
 * loaded from JSON (with DKIM keys made by lib/dkim), driven by
 * lib/smtp_client. Covers: refusing to start open to the world; a
 * trusted peer's message queued outbound with RSA and Ed25519
 * signatures in front of it (and the body hash checked), local
 * recipients resolved and unknown ones refused; a From domain without
 * keys queued unsigned; mutual TLS (MAIL before STARTTLS refused 530, a
 * client without a certificate failing the handshake, one with a
 * certificate from the CA accepted); an untrusted peer refused at the
 * banner; a relay without a directory yet answering 451. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dkim.h"
#include "egress.h"
#include "log.h"
#include "mem.h"
#include "smtp_client.h"
#include "test.h"
#include "tls.h"

static uv_loop_t loop;
static char spool[128];
static struct relay_queue *queue;
static struct mc_directory *dir;
static struct relay_signer *signer;
static struct relay_queue_envelope *committed[8];
static size_t ncommitted;

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
	uv_update_time(&loop); /* key generation may have taken long */
	timed_out = false;
	uv_timer_start(&t, timeout_cb, ms, 0);
	while (!cond(arg) && !timed_out)
		uv_run(&loop, UV_RUN_ONCE);
	ok = cond(arg);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	return ok;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The directory: domain example.com with account a@ and an alias
 * list@ -> a@, x@elsewhere.test; DKIM keys (RSA and Ed25519) for
 * example.com; other.example with no keys. */
static void
dir_load(void)
{
	char *rsa_pem = NULL, *rsa_pub = NULL, *ed_pem = NULL, *ed_pub = NULL;
	char path[256], *json;
	const char *error;
	FILE *f;

	if (mc_dkim_keygen(MC_DKIM_RSA_SHA256, 2048, &rsa_pem, &rsa_pub,
	                   &error) < 0 ||
	    mc_dkim_keygen(MC_DKIM_ED25519_SHA256, 0, &ed_pem, &ed_pub,
	                   &error) < 0) {
		fprintf(stderr, "keygen: %s\n", error);
		exit(1);
	}
	/* PEM newlines as JSON escapes. */
	for (char **p = (char *[]){rsa_pem, ed_pem, NULL}; *p != NULL; p++) {
		char *out = mc_malloc(2 * strlen(*p) + 1), *o = out;

		for (const char *c = *p; *c != '\0'; c++) {
			if (*c == '\n') {
				*o++ = '\\';
				*o++ = 'n';
			} else {
				*o++ = *c;
			}
		}
		if (*p == rsa_pem) {
			free(rsa_pem);
			rsa_pem = out;
		} else {
			free(ed_pem);
			ed_pem = out;
		}
	}
	json = mc_asprintf(
	        "{\"version\":1,\"shard_count\":8,\"domains\":["
	        "{\"id\":1,\"name\":\"example.com\",\"created_at\":1},"
	        "{\"id\":2,\"name\":\"other.example\",\"created_at\":1}],"
	        "\"accounts\":[{\"id\":10,\"domain_id\":1,"
	        "\"address\":\"a@example.com\",\"shard\":0,\"quota_bytes\":0},"
	        "{\"id\":11,\"domain_id\":2,"
	        "\"address\":\"o@other.example\",\"shard\":0,\"quota_bytes\":0}"
	        "],"
	        "\"aliases\":[{\"id\":20,\"domain_id\":1,"
	        "\"address\":\"list@example.com\",\"destinations\":"
	        "[\"a@example.com\",\"x@elsewhere.test\"]}],\"shards\":[],"
	        "\"routes\":[],\"route_rules\":[],\"dkim_keys\":["
	        "{\"id\":30,\"domain_id\":1,\"domain\":\"example.com\","
	        "\"selector\":\"r1\",\"alg\":\"rsa\",\"bits\":2048,"
	        "\"private_pem\":\"%s\",\"public_b64\":\"%s\",\"active\":true,"
	        "\"created_at\":1},"
	        "{\"id\":31,\"domain_id\":1,\"domain\":\"example.com\","
	        "\"selector\":\"e1\",\"alg\":\"ed25519\",\"bits\":0,"
	        "\"private_pem\":\"%s\",\"public_b64\":\"%s\",\"active\":true,"
	        "\"created_at\":1}]}",
	        rsa_pem, rsa_pub, ed_pem, ed_pub);
	snprintf(path, sizeof(path), "%s/directory.json", spool);
	f = fopen(path, "w");
	fputs(json, f);
	fclose(f);
	mc_wipe(json, strlen(json));
	free(json);
	dir = mc_directory_new();
	if (mc_directory_load(dir, path, &error) < 0) {
		fprintf(stderr, "directory: %s\n", error);
		exit(1);
	}
	unlink(path);
	mc_wipe(rsa_pem, strlen(rsa_pem));
	mc_wipe(ed_pem, strlen(ed_pem));
	free(rsa_pem);
	free(rsa_pub);
	free(ed_pem);
	free(ed_pub);
}

static const struct mc_directory *
test_directory(void *ctx)
{
	(void)ctx;
	return dir;
}

static void
on_committed(struct relay_queue_envelope *env, void *ctx)
{
	(void)ctx;
	if (ncommitted < 8)
		committed[ncommitted++] = env;
	else
		relay_queue_envelope_free(&env);
}

static void
committed_clear(void)
{
	for (size_t i = 0; i < ncommitted; i++)
		relay_queue_envelope_free(&committed[i]);
	ncommitted = 0;
}

/* The committed content of a message (heap, NUL-terminated). */
static char *
content_of(const char *id)
{
	const char *error;
	char *buf = mc_malloc(1 << 20);
	ssize_t n;
	int fd;

	if (relay_queue_content_open(queue, id, &fd, &error) < 0)
		return buf;
	n = read(fd, buf, (1 << 20) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* ---- the egress ---------------------------------------------------------- */

static struct relay_egress *
egress_start(const char *trusted, struct mc_tls_ctx *mtls)
{
	struct relay_trusted nets = {.count = 0};
	struct relay_egress_settings set = {
	        .host = "127.0.0.1",
	        .hostname = "relay.test",
	        .mtls = mtls,
	        .trusted = &nets,
	        .queue = queue,
	        .signer = signer,
	        .directory = test_directory,
	        .committed = on_committed,
	};
	struct relay_egress *eg = NULL;
	const char *error;

	if (trusted != NULL &&
	    relay_trusted_parse(trusted, &nets, &error) < 0) {
		fprintf(stderr, "trusted: %s\n", error);
		exit(1);
	}
	if (relay_egress_start(&loop, &set, &eg, &error) < 0) {
		fprintf(stderr, "egress: %s\n", error);
		exit(1);
	}
	return eg;
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
egress_stop(struct relay_egress *eg)
{
	bool done = false;

	relay_egress_close(eg, closed_cb, &done);
	CHECK(run_until(flag_set, &done, 5000));
}

static uint16_t
egress_port(const struct relay_egress *eg)
{
	const char *addr = relay_egress_address(eg);

	return (uint16_t)atoi(strrchr(addr, ':') + 1);
}

/* ---- the client ---------------------------------------------------------- */

struct sent {
	bool done;
	enum mc_smtp_client_status status;
	enum mc_smtp_client_outcome outcome[4];
	unsigned code[4];
	char enhanced[4][MC_SMTP_CLIENT_ENHANCED_SIZE];
};

static void
sent_cb(const struct mc_smtp_client_result *res, void *ctx)
{
	struct sent *s = ctx;

	s->status = res->status;
	for (size_t i = 0; i < res->rcpt_count && i < 4; i++) {
		s->outcome[i] = res->rcpts[i].outcome;
		s->code[i] = res->rcpts[i].code;
		snprintf(s->enhanced[i], sizeof(s->enhanced[i]), "%s",
		         res->rcpts[i].enhanced);
	}
	s->done = true;
}

static bool
sent_done(void *arg)
{
	return ((struct sent *)arg)->done;
}

static void
send_msg(uint16_t port, struct mc_tls_ctx *tls, const char *data,
         const char *const *rcpts, size_t n, struct sent *out)
{
	struct mc_smtp_client_rcpt r[4];
	struct mc_smtp_client_settings set = {
	        .protocol = MC_SMTP_CLIENT_SMTP,
	        .ip = "127.0.0.1",
	        .port = port,
	        .helo_name = "node.test",
	        .tls = tls != NULL ? MC_SMTP_CLIENT_TLS_REQUIRED
	                           : MC_SMTP_CLIENT_TLS_NONE,
	        .tls_ctx = tls,
	        .tls_peer_name = "127.0.0.1",
	        .timeouts = {.connect = 20000},
	};
	struct mc_smtp_client_message msg = {
	        .sender = "a@example.com",
	        .rcpts = r,
	        .rcpt_count = n,
	        .data = data,
	        .size = strlen(data),
	};
	struct mc_smtp_client *c;
	const char *error;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		r[i] = (struct mc_smtp_client_rcpt){.address = rcpts[i]};
	if (mc_smtp_client_start(&loop, &set, &msg, sent_cb, out, &c, &error) <
	    0) {
		fprintf(stderr, "client: %s\n", error);
		exit(1);
	}
	CHECK(run_until(sent_done, out, 10000));
}

static const char message[] = "From: A <a@example.com>\r\n"
                              "To: x@elsewhere.test\r\n"
                              "Subject: egress test\r\n"
                              "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                              "Message-ID: <e1@example.com>\r\n"
                              "\r\n"
                              "Hello,\r\n.dot\r\n";

/* ---- tests --------------------------------------------------------------- */

static void
test_refuse_open(void)
{
	struct relay_egress_settings set = {
	        .host = "127.0.0.1",
	        .hostname = "relay.test",
	        .queue = queue,
	        .signer = signer,
	        .directory = test_directory,
	        .committed = on_committed,
	};
	struct relay_trusted none = {.count = 0};
	struct relay_egress *eg = NULL;
	const char *error = NULL;

	CHECK(relay_egress_start(&loop, &set, &eg, &error) < 0 && eg == NULL);
	CHECK(error != NULL && strstr(error, "never be open") != NULL);
	set.trusted = &none;
	CHECK(relay_egress_start(&loop, &set, &eg, &error) < 0 && eg == NULL);
}

/* A trusted peer: recipients resolved, signed by both keys, outbound. */
static void
test_trusted_signed(void)
{
	static const char *const rcpts[] = {
	        "x@elsewhere.test", "list@example.com", "nobody@example.com",
	        "o@other.example"};
	struct relay_egress *eg = egress_start("127.0.0.0/8", NULL);
	const struct relay_queue_envelope *env;
	struct sent s;
	char *body, *at, bh[MC_DKIM_BODY_HASH_LEN + 1], want[80];

	send_msg(egress_port(eg), NULL, message, rcpts, 4, &s);
	CHECK(s.outcome[0] == MC_SMTP_CLIENT_DELIVERED);
	CHECK(s.outcome[1] == MC_SMTP_CLIENT_DELIVERED);
	CHECK(s.outcome[2] == MC_SMTP_CLIENT_PERMFAIL && s.code[2] == 550 &&
	      strcmp(s.enhanced[2], "5.1.1") == 0);
	CHECK(s.outcome[3] == MC_SMTP_CLIENT_DELIVERED);
	CHECK(ncommitted == 1);
	if (ncommitted != 1)
		goto out;
	env = committed[0];
	CHECK(env->outbound);
	CHECK_STR(env->sender, "a@example.com");
	CHECK(env->rcpt_count == 3);
	CHECK_STR(env->rcpts[0].address, "x@elsewhere.test");
	CHECK_STR(env->rcpts[1].address, "a@example.com"); /* the alias */
	CHECK_STR(env->rcpts[2].address, "o@other.example");
	body = content_of(env->id);
	/* RSA first, then Ed25519, then our Received, then the message. */
	CHECK(strncmp(body, "DKIM-Signature: v=1; a=rsa-sha256;", 34) == 0);
	at = strstr(body, "\r\nDKIM-Signature: v=1; a=ed25519-sha256;");
	CHECK(at != NULL);
	CHECK(strstr(body, "d=example.com") != NULL &&
	      strstr(body, "s=r1") != NULL && strstr(body, "s=e1") != NULL);
	at = strstr(body, "\r\nReceived: from node.test ([127.0.0.1])");
	CHECK(at != NULL && strstr(at, message) != NULL);
	mc_dkim_body_hash("Hello,\r\n.dot\r\n", 14, bh);
	snprintf(want, sizeof(want), "bh=%s", bh);
	CHECK(strstr(body, want) != NULL);
	free(body);
out:
	committed_clear();
	egress_stop(eg);
}

/* From a domain without keys: queued, unsigned. */
static void
test_unsigned(void)
{
	static const char *const rcpts[] = {"y@elsewhere.test"};
	static const char msg[] =
	        "From: o@other.example\r\nSubject: x\r\n\r\nhi\r\n";
	struct relay_egress *eg = egress_start("127.0.0.1", NULL);
	struct sent s;
	char *body;

	send_msg(egress_port(eg), NULL, msg, rcpts, 1, &s);
	CHECK(s.outcome[0] == MC_SMTP_CLIENT_DELIVERED);
	CHECK(ncommitted == 1);
	if (ncommitted == 1) {
		body = content_of(committed[0]->id);
		CHECK(strncmp(body, "Received: ", 10) == 0 &&
		      strstr(body, "DKIM-Signature") == NULL);
		free(body);
	}
	committed_clear();
	egress_stop(eg);
}

/* Mutual TLS: no TLS -> 530; TLS without a client certificate fails;
 * with one from the CA -> queued. */
static void
test_mutual_tls(void)
{
	static const char *const rcpts[] = {"z@elsewhere.test"};
	char *srv_cert, *srv_key, *cli_cert, *cli_key;
	struct mc_tls_ctx *server = NULL, *client = NULL, *anon = NULL;
	struct relay_egress *eg;
	const char *error;
	struct sent s;

	if (mc_tls_self_signed("127.0.0.1", 2, &srv_cert, &srv_key, &error) <
	            0 ||
	    mc_tls_self_signed("node-1", 2, &cli_cert, &cli_key, &error) < 0 ||
	    mc_tls_ctx_new(MC_TLS_SERVER,
	                   &(struct mc_tls_settings){.cert_pem = srv_cert,
	                                             .key_pem = srv_key,
	                                             .ca_pem = cli_cert},
	                   &server, &error) < 0 ||
	    mc_tls_ctx_new(MC_TLS_CLIENT,
	                   &(struct mc_tls_settings){.cert_pem = cli_cert,
	                                             .key_pem = cli_key,
	                                             .ca_pem = srv_cert},
	                   &client, &error) < 0 ||
	    mc_tls_ctx_new(MC_TLS_CLIENT,
	                   &(struct mc_tls_settings){.ca_pem = srv_cert}, &anon,
	                   &error) < 0) {
		fprintf(stderr, "tls: %s\n", error);
		exit(1);
	}
	eg = egress_start(NULL, server);
	send_msg(egress_port(eg), NULL, message, rcpts, 1, &s);
	CHECK(s.outcome[0] == MC_SMTP_CLIENT_PERMFAIL && s.code[0] == 530);
	send_msg(egress_port(eg), anon, message, rcpts, 1, &s);
	/* TLS 1.3: the client's handshake ends before the server checks
	 * the certificate; the server's alert then ends the session. */
	CHECK(s.outcome[0] == MC_SMTP_CLIENT_TEMPFAIL && s.code[0] == 0);
	CHECK(ncommitted == 0);
	send_msg(egress_port(eg), client, message, rcpts, 1, &s);
	CHECK(s.outcome[0] == MC_SMTP_CLIENT_DELIVERED);
	CHECK(ncommitted == 1);
	if (ncommitted == 1)
		CHECK(strcmp(committed[0]->client.tls, "") != 0);
	committed_clear();
	egress_stop(eg);
	mc_tls_ctx_free(&server);
	mc_tls_ctx_free(&client);
	mc_tls_ctx_free(&anon);
	mc_wipe(srv_key, strlen(srv_key));
	mc_wipe(cli_key, strlen(cli_key));
	free(srv_cert);
	free(srv_key);
	free(cli_cert);
	free(cli_key);
}

/* Not in the trusted list and no mutual TLS: 554 at the banner. */
static void
test_untrusted(void)
{
	static const char *const rcpts[] = {"z@elsewhere.test"};
	struct relay_egress *eg = egress_start("10.0.0.0/8, ::1", NULL);
	struct sent s;

	send_msg(egress_port(eg), NULL, message, rcpts, 1, &s);
	CHECK(s.outcome[0] == MC_SMTP_CLIENT_PERMFAIL && s.code[0] == 554);
	CHECK(ncommitted == 0);
	egress_stop(eg);
}

/* Before its first directory the relay has no keys: 451, not unsigned. */
static void
test_no_directory_yet(void)
{
	static const char *const rcpts[] = {"z@elsewhere.test"};
	struct mc_directory *saved = dir;
	struct relay_egress *eg;
	struct sent s;

	dir = mc_directory_new();
	eg = egress_start("127.0.0.1", NULL);
	send_msg(egress_port(eg), NULL, message, rcpts, 1, &s);
	CHECK(s.outcome[0] == MC_SMTP_CLIENT_TEMPFAIL && s.code[0] == 451);
	CHECK(ncommitted == 0);
	egress_stop(eg);
	mc_directory_free(&dir);
	dir = saved;
}

int
main(void)
{
	const char *error;

	mc_log_init("egress_test", getenv("MC_TEST_VERBOSE")
	                                   ? MC_LOG_DEBUG
	                                   : MC_LOG_ERROR + 1);
	uv_loop_init(&loop);
	snprintf(spool, sizeof(spool), "/tmp/mc-egress-test-XXXXXX");
	if (mkdtemp(spool) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (relay_queue_open(spool, NULL, &queue, &error) < 0) {
		fprintf(stderr, "queue: %s\n", error);
		return 1;
	}
	dir_load();
	signer = relay_signer_new();
	test_refuse_open();
	test_trusted_signed();
	test_unsigned();
	test_mutual_tls();
	test_untrusted();
	test_no_directory_yet();
	relay_signer_free(&signer);
	mc_directory_free(&dir);
	relay_queue_close(&queue);
	nftw(spool, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0);
	uv_library_shutdown();
	return mc_test_done();
}
