/* SMTP/LMTP client sessions against the scripted server of
 * smtp_client_test_server.c on 127.0.0.1, all in one libuv loop: LMTP with
 * mixed per-recipient replies, SMTP with and without pipelining, the HELO
 * fallback, multiline replies, DSN parameters, a server that drops the
 * connection mid-DATA or between LMTP replies, stage timeouts, hostile
 * replies (huge, too many lines, garbage), dot-stuffing and a missing
 * final CRLF, STARTTLS (required, refused, not offered, verified,
 * opportunistic with fallback, clear-text injection), implicit TLS, a
 * several-MiB message to a slow reader (from memory and from a file),
 * missing extensions and SIZE, refusals at greeting, MAIL and DATA,
 * connection failure, abort and argument checks; AUTH (SCRAM-SHA-256,
 * PLAIN, LOGIN; refusals by code, a lying SCRAM server, no TLS, nothing
 * in common; no credential in any log line, debug included); connecting
 * by name through lib/mx_connect.h with the fake DNS server of
 * dns_test_server.c. The loop must end with no handle left (valgrind
 * checks the rest). */
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <uv.h>

#include "conn.h"
#include "dns.h"
#include "dns_test_server.h"
#include "listener.h"
#include "log.h"
#include "mem.h"
#include "smtp_client.h"
#include "smtp_client_test_server.h"
#include "test.h"
#include "test_loop.h"
#include "tls.h"

#define HOST "mx.example.test"
#define HELO "relay.example.test"

static struct mc_tls_ctx *server_tls, *client_opp, *client_verify;


/* ---- Client side ------------------------------------------------------- */

#define MAX_RCPTS 8

struct run {
	bool done;
	enum mc_smtp_client_status status;
	char error[512];
	size_t n, delivered, tempfail, permfail;
	struct {
		enum mc_smtp_client_outcome outcome;
		unsigned code;
		char enhanced[16], text[512], command[32];
	} r[MAX_RCPTS];
	char tls_version[32], remote[64], auth[MC_SMTP_CLIENT_AUTH_SIZE];
	char auth_mech[32], ip[64], host[64], connect_errors[1024];
	bool tls, tls_verified;
	unsigned ext;
	uint64_t size_max;
};

static void
done_cb(const struct mc_smtp_client_result *res, void *ctx)
{
	struct run *run = ctx;

	run->done = true;
	run->status = res->status;
	snprintf(run->error, sizeof(run->error), "%s",
	         res->error ? res->error : "");
	run->n = res->rcpt_count;
	run->delivered = res->delivered;
	run->tempfail = res->tempfail;
	run->permfail = res->permfail;
	for (size_t i = 0; i < res->rcpt_count && i < MAX_RCPTS; i++) {
		run->r[i].outcome = res->rcpts[i].outcome;
		run->r[i].code = res->rcpts[i].code;
		snprintf(run->r[i].enhanced, sizeof(run->r[i].enhanced), "%s",
		         res->rcpts[i].enhanced);
		snprintf(run->r[i].text, sizeof(run->r[i].text), "%s",
		         res->rcpts[i].text);
		snprintf(run->r[i].command, sizeof(run->r[i].command), "%s",
		         res->rcpts[i].command);
	}
	run->tls = res->tls_version != NULL;
	snprintf(run->tls_version, sizeof(run->tls_version), "%s",
	         res->tls_version ? res->tls_version : "");
	run->tls_verified = res->tls_verified;
	snprintf(run->remote, sizeof(run->remote), "%s", res->remote);
	run->ext = res->caps->ext;
	run->size_max = res->caps->size_max;
	snprintf(run->auth, sizeof(run->auth), "%s", res->caps->auth);
	snprintf(run->auth_mech, sizeof(run->auth_mech), "%s",
	         res->auth_mech != NULL ? res->auth_mech : "");
	snprintf(run->ip, sizeof(run->ip), "%s", res->ip);
	snprintf(run->host, sizeof(run->host), "%s", res->host);
	snprintf(run->connect_errors, sizeof(run->connect_errors), "%s",
	         res->connect_errors);
}

static struct test_server srv;

static struct mc_smtp_client_settings
settings(enum mc_smtp_client_protocol protocol)
{
	struct mc_smtp_client_settings set = {
	        .protocol = protocol,
	        .ip = "127.0.0.1",
	        .port = srv.port,
	        .helo_name = HELO,
	        .remote_name = HOST,
	        .log_id = "t1",
	};
	uint64_t *t = &set.timeouts.connect;

	/* Short everywhere: a stuck test fails fast. */
	for (size_t i = 0; i < sizeof(set.timeouts) / sizeof(*t); i++)
		t[i] = 3000;
	return set;
}

static struct mc_smtp_client_rcpt rcpts[MAX_RCPTS] = {
        {.address = "a@x.test"}, {.address = "b@x.test"},
        {.address = "c@x.test"}, {.address = "d@x.test"},
        {.address = "e@x.test"},
};

static struct mc_smtp_client_message
message(size_t n, const char *content)
{
	return (struct mc_smtp_client_message){
	        .sender = "s@y.test",
	        .rcpts = rcpts,
	        .rcpt_count = n,
	        .data = content,
	        .size = strlen(content),
	};
}

/* Run one session with the server on script, wait until both ends are
 * gone. */
static void
run_session(const struct mc_smtp_client_settings *set,
            const struct mc_smtp_client_message *msg, struct run *run)
{
	struct mc_smtp_client *client;
	const char *error;

	memset(run, 0, sizeof(*run));
	if (mc_smtp_client_start(&loop, set, msg, done_cb, run, &client,
	                         &error) < 0) {
		fprintf(stderr, "start: %s\n", error);
		CHECK(false);
		return;
	}
	CHECK(!run->done); /* never from inside start */
	WAIT(run->done, 60000);
	CHECK(run->done);
	WAIT(srv.live == 0, 10000);
	CHECK(srv.live == 0);
	/* Let the client's own close finish. */
	for (int i = 0; i < 5; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	if (srv.problems.len > 0)
		fprintf(stderr, "server: %s", srv.problems.data);
}

static void
prepare(const struct test_step *script)
{
	test_server_reset(&srv);
	srv.script = script;
	srv.script2 = NULL;
	srv.implicit_tls = false;
	srv.reply_delay_ms = 0;
	srv.slow = 0;
	srv.drop_after = 0;
	srv.keep_raw = false;
	srv.auth_user = srv.auth_pass = srv.auth_reply = NULL;
	srv.scram_lie = false;
}

static bool
rcpt_is(const struct run *run, size_t i, enum mc_smtp_client_outcome outcome,
        unsigned code, const char *enhanced, const char *command)
{
	bool ok = run->r[i].outcome == outcome && run->r[i].code == code &&
	          strcmp(run->r[i].enhanced, enhanced) == 0 &&
	          strcmp(run->r[i].command, command) == 0;

	if (!ok)
		fprintf(stderr, "rcpt %zu: %s %u %s '%s' (%s)\n", i,
		        mc_smtp_client_outcome_name(run->r[i].outcome),
		        run->r[i].code, run->r[i].enhanced, run->r[i].command,
		        run->r[i].text);
	return ok;
}

/* clang-format off */
#define GREETING {NULL, "220 " HOST " ESMTP\r\n"}
#define EHLO_PLAIN {"EHLO " HELO, "250-" HOST "\r\n250 8BITMIME\r\n"}
#define EHLO_PIPE                                                              \
	{"EHLO " HELO, "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n" \
	               "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"}
#define EHLO_TLS                                                               \
	{"EHLO " HELO, "250-" HOST "\r\n250-PIPELINING\r\n250 STARTTLS\r\n"}
#define EHLO_AFTER {"EHLO " HELO, "250-" HOST "\r\n250 PIPELINING\r\n"}
#define MAIL_OK {"MAIL FROM:<s@y.test>", "250 2.1.0 ok\r\n"}
#define RCPT_OK(a) {"RCPT TO:<" a ">", "250 2.1.5 ok\r\n"}
#define DATA_OK {"DATA", "354 go ahead\r\n"}
#define DOT_OK {".", "250 2.0.0 queued as X\r\n"}
/* clang-format on */

static const char body[] = "Subject: hi\r\n\r\nhello\r\n";

/* ---- Tests ------------------------------------------------------------- */

static void
test_lmtp_mixed(void)
{
	static const struct test_step script[] = {
	        {NULL, "220 node.test LMTP ready\r\n"},
	        {"LHLO " HELO, "250-node.test\r\n250-PIPELINING\r\n"
	                       "250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n"},
	        MAIL_OK,
	        RCPT_OK("a@x.test"),
	        RCPT_OK("b@x.test"),
	        {"RCPT TO:<c@x.test>",
	         "550 5.1.1 <c@x.test>: no such user\r\n"},
	        {"RCPT TO:<d@x.test>", "452 4.5.3 too many recipients\r\n"},
	        RCPT_OK("e@x.test"),
	        DATA_OK,
	        {".", "250 2.0.0 <a@x.test> delivered\r\n"
	              "452 4.2.2 <b@x.test> mailbox full\r\n"
	              "550 5.2.1 <e@x.test> disabled\r\n"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_LMTP);
	struct mc_smtp_client_message msg = message(5, body);
	struct run run;

	prepare(script);
	srv.reply_delay_ms = 5;
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK);
	CHECK(run.n == 5 && run.delivered == 1 && run.tempfail == 2 &&
	      run.permfail == 2);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_DELIVERED, 250, "2.0.0",
	              "end of DATA"));
	CHECK(rcpt_is(&run, 1, MC_SMTP_CLIENT_TEMPFAIL, 452, "4.2.2",
	              "end of DATA"));
	CHECK(rcpt_is(&run, 2, MC_SMTP_CLIENT_PERMFAIL, 550, "5.1.1",
	              "RCPT TO"));
	CHECK(rcpt_is(&run, 3, MC_SMTP_CLIENT_TEMPFAIL, 452, "4.5.3",
	              "RCPT TO"));
	CHECK(rcpt_is(&run, 4, MC_SMTP_CLIENT_PERMFAIL, 550, "5.2.1",
	              "end of DATA"));
	CHECK_STR(run.r[1].text, "<b@x.test> mailbox full");
	CHECK_STR(run.remote, HOST);
	CHECK(srv.pipelined > 0);
	CHECK(srv.quits == 1 && srv.problems.len == 0);
	CHECK(srv.content.len == strlen(body) &&
	      memcmp(srv.content.data, body, srv.content.len) == 0);
	CHECK(test_text_has(&srv.lines, "|RCPT TO:<a@x.test>|"));
}

/* More recipients than the pipelining window: the client keeps at most
 * 100 commands unanswered and refills as replies come. */
static void
test_many_rcpts(void)
{
	enum { N = 150 };
	static struct mc_smtp_client_rcpt many[N];
	static char addrs[N][16], dot[N * 20 + 1];
	static struct test_step script[N + 7];
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_LMTP);
	struct mc_smtp_client_message msg = message(N, body);
	struct run run;
	size_t k = 0;

	script[k++] = (struct test_step){NULL, "220 node LMTP\r\n"};
	script[k++] = (struct test_step){"LHLO", "250 node\r\n"};
	script[k++] = (struct test_step)MAIL_OK;
	for (int i = 0; i < N; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "r%03d@x.test", i);
		many[i].address = addrs[i];
		script[k++] = (struct test_step){"RCPT TO:<r", "250 ok\r\n"};
		strcat(dot, i % 50 == 7 ? "452 4.2.2 full\r\n"
		                        : "250 2.0.0 ok\r\n");
	}
	script[k++] = (struct test_step)DATA_OK;
	script[k++] = (struct test_step){".", dot};
	script[k] = (struct test_step)TEST_STEP_END;
	msg.rcpts = many;
	prepare(script);
	srv.reply_delay_ms = 1;
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK);
	CHECK(run.delivered == N - 3 && run.tempfail == 3);
	CHECK(rcpt_is(&run, 7, MC_SMTP_CLIENT_TEMPFAIL, 452, "4.2.2",
	              "end of DATA"));
	/* MAIL and 99 RCPTs at most, then one more per reply. */
	CHECK(srv.max_backlog > 50 && srv.max_backlog <= 100);
	CHECK(srv.quits == 1 && srv.problems.len == 0);
}

static void
test_smtp_pipelining(void)
{
	static const struct test_step script[] = {
	        GREETING,
	        {"EHLO " HELO, "250-" HOST "\r\n250-PIPELINING\r\n"
	                       "250-SIZE 1000000\r\n250-8BITMIME\r\n"
	                       "250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n"},
	        MAIL_OK,
	        RCPT_OK("a@x.test"),
	        RCPT_OK("b@x.test"),
	        DATA_OK,
	        DOT_OK,
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(2, body);
	char mail[200];
	struct run run;

	msg.flags = MC_SMTP_CLIENT_NEED_8BITMIME;
	msg.envid = "ENV+2B1";
	msg.ret = "HDRS";
	rcpts[0].orcpt = "rfc822;a@x.test";
	rcpts[0].notify = 0x4u | 0x8u; /* FAILURE, DELAY */
	prepare(script);
	srv.reply_delay_ms = 5;
	run_session(&set, &msg, &run);
	rcpts[0].orcpt = NULL;
	rcpts[0].notify = 0;
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 2);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_DELIVERED, 250, "2.0.0",
	              "end of DATA"));
	CHECK(rcpt_is(&run, 1, MC_SMTP_CLIENT_DELIVERED, 250, "2.0.0",
	              "end of DATA"));
	CHECK(srv.pipelined > 0);
	snprintf(mail, sizeof(mail),
	         "|MAIL FROM:<s@y.test> SIZE=%zu BODY=8BITMIME RET=HDRS "
	         "ENVID=ENV+2B1|",
	         strlen(body));
	CHECK(test_text_has(&srv.lines, mail));
	CHECK(test_text_has(&srv.lines, "|RCPT TO:<a@x.test> NOTIFY=FAILURE,"
	                                "DELAY ORCPT=rfc822;a@x.test|"));
	CHECK(test_text_has(&srv.lines, "|RCPT TO:<b@x.test>|"));
	CHECK(run.ext & MC_SMTP_CLIENT_EXT_DSN);
	CHECK(run.size_max == 1000000);
	CHECK(srv.quits == 1 && srv.problems.len == 0);
}

static void
test_smtp_no_pipelining(void)
{
	static const struct test_step script[] = {
	        GREETING,
	        {"EHLO " HELO, "250-" HOST "\r\n250 SIZE\r\n"},
	        MAIL_OK,
	        RCPT_OK("a@x.test"),
	        {"RCPT TO:<b@x.test>", "550 5.1.1 unknown\r\n"},
	        RCPT_OK("c@x.test"),
	        DATA_OK,
	        {".", "451 4.3.0 try later\r\n"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(3, body);
	struct run run;

	/* DSN parameters are not sent to a server without DSN. */
	msg.envid = "X";
	rcpts[0].notify = 0x4u;
	prepare(script);
	srv.reply_delay_ms = 5;
	run_session(&set, &msg, &run);
	rcpts[0].notify = 0;
	CHECK(run.status == MC_SMTP_CLIENT_OK);
	CHECK(srv.pipelined == 0);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 451, "4.3.0",
	              "end of DATA"));
	CHECK(rcpt_is(&run, 1, MC_SMTP_CLIENT_PERMFAIL, 550, "5.1.1",
	              "RCPT TO"));
	CHECK(rcpt_is(&run, 2, MC_SMTP_CLIENT_TEMPFAIL, 451, "4.3.0",
	              "end of DATA"));
	CHECK(test_text_has(&srv.lines, "|RCPT TO:<a@x.test>|"));
	CHECK(!test_text_has(&srv.lines, "ENVID"));
	CHECK(test_text_has(&srv.lines, " SIZE="));
	CHECK(srv.quits == 1 && srv.problems.len == 0);
}

static void
test_helo_fallback(void)
{
	static const struct test_step script[] = {
	        GREETING,
	        {"EHLO " HELO, "502 5.5.1 what is EHLO\r\n"},
	        {"HELO " HELO, "250 " HOST "\r\n"},
	        {"MAIL FROM:<s@y.test>", "250 ok\r\n"},
	        {"RCPT TO:<a@x.test>", "250 ok\r\n"},
	        {"DATA", "354 go\r\n"},
	        {".", "250 ok\r\n"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct run run;

	prepare(script);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	/* No enhanced code from the server: synthesised from the class. */
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_DELIVERED, 250, "2.0.0",
	              "end of DATA"));
	CHECK(test_text_has(&srv.lines, "|MAIL FROM:<s@y.test>|"));
	CHECK(run.ext == 0);
	CHECK(srv.quits == 1 && srv.problems.len == 0);

	/* LMTP has no HELO: a refused LHLO ends the session. */
	static const struct test_step lmtp[] = {
	        GREETING,
	        {"LHLO " HELO, "500 5.5.1 no\r\n"},
	        TEST_STEP_END,
	};
	set = settings(MC_SMTP_CLIENT_LMTP);
	prepare(lmtp);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_REFUSED);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_PERMFAIL, 500, "5.5.1", "LHLO"));
	CHECK(srv.quits == 1 && srv.problems.len == 0);
}

static void
test_multiline(void)
{
	static const struct test_step script[] = {
	        {NULL, "220-" HOST " ESMTP\r\n220-no UCE\r\n220 welcome\r\n"},
	        {"EHLO " HELO, "250-" HOST " hello\r\n250-AUTH PLAIN login\r\n"
	                       "250-SIZE 52428800\r\n250-STARTTLS\r\n"
	                       "250 SMTPUTF8\r\n"},
	        MAIL_OK,
	        RCPT_OK("a@x.test"),
	        DATA_OK,
	        {".", "250-2.0.0 first\r\n250 2.0.0 second\r\n"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct run run;

	msg.flags = MC_SMTP_CLIENT_NEED_SMTPUTF8;
	prepare(script);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	CHECK_STR(run.r[0].text, "first second");
	CHECK_STR(run.auth, "PLAIN LOGIN");
	CHECK(run.size_max == 52428800);
	CHECK(run.ext ==
	      (MC_SMTP_CLIENT_EXT_AUTH | MC_SMTP_CLIENT_EXT_SIZE |
	       MC_SMTP_CLIENT_EXT_STARTTLS | MC_SMTP_CLIENT_EXT_SMTPUTF8));
	CHECK(test_text_has(&srv.lines, " SMTPUTF8|"));
	CHECK(!run.tls); /* tls NONE ignores STARTTLS */
	CHECK(srv.quits == 1 && srv.problems.len == 0);
}

static char *
big_message(size_t size)
{
	char *m = mc_malloc(size + 1);
	size_t i = 0, line = 0;

	while (i < size) {
		int n = snprintf(m + i, size + 1 - i,
		                 line % 10 == 0 ? ".line %zu with a dot\r\n"
		                                : "line %zu of the message, "
		                                  "some text to fill it\r\n",
		                 line);

		i += (size_t)n;
		line++;
	}
	m[size] = '\0'; /* the last line may be cut: no final CRLF */
	return m;
}

static void
test_drops(void)
{
	static const struct test_step mid_data[] = {
	        GREETING,
	        EHLO_AFTER,
	        MAIL_OK,
	        RCPT_OK("a@x.test"),
	        {"RCPT TO:<b@x.test>", "550 5.1.1 unknown\r\n"},
	        DATA_OK,
	        DOT_OK,
	        TEST_STEP_END,
	};
	static const struct test_step lmtp[] = {
	        GREETING,
	        {"LHLO", "250-node\r\n250 ENHANCEDSTATUSCODES\r\n"},
	        MAIL_OK,
	        RCPT_OK("a@x.test"),
	        RCPT_OK("b@x.test"),
	        DATA_OK,
	        {".", "250 2.0.0 ok\r\n!reset"},
	        TEST_STEP_END,
	};
	static const struct test_step before[] = {{NULL, "!close"},
	                                          TEST_STEP_END};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	char *big = big_message(8u << 20);
	struct mc_smtp_client_message msg;
	struct run run;

	/* 8 MiB cannot all sit in socket buffers: the client is still
	 * sending when the server resets. */
	msg = message(2, big);
	prepare(mid_data);
	srv.slow = 16 * 1024;
	srv.drop_after = 50000;
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_CLOSED);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.4.2", ""));
	CHECK(rcpt_is(&run, 1, MC_SMTP_CLIENT_PERMFAIL, 550, "5.1.1",
	              "RCPT TO"));
	CHECK(strstr(run.error, "sending the message") != NULL);
	free(big);

	/* LMTP: the first reply counts, the second never came. */
	set = settings(MC_SMTP_CLIENT_LMTP);
	msg = message(2, body);
	prepare(lmtp);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_CLOSED);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_DELIVERED, 250, "2.0.0",
	              "end of DATA"));
	CHECK(rcpt_is(&run, 1, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.4.2", ""));

	/* Closed before the greeting. */
	prepare(before);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_CLOSED);
	CHECK(run.tempfail == 2);
	CHECK(strstr(run.error, "greeting") != NULL);
}

static void
test_timeouts(void)
{
	static const struct test_step hang[] = {{NULL, "!hang"}, TEST_STEP_END};
	static const struct test_step dot_hang[] = {
	        GREETING, EHLO_PIPE,      MAIL_OK,       RCPT_OK("a@x.test"),
	        DATA_OK,  {".", "!hang"}, TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct run run;
	uint64_t start;

	set.timeouts.greeting = 200;
	prepare(hang);
	start = uv_now(&loop);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_TIMEOUT);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.4.2", ""));
	CHECK(strstr(run.error, "greeting") != NULL);
	CHECK(uv_now(&loop) - start >= 190);

	set = settings(MC_SMTP_CLIENT_SMTP);
	set.timeouts.data_end = 200;
	prepare(dot_hang);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_TIMEOUT);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.4.2", ""));
	CHECK(strstr(run.error, "end of DATA") != NULL);

	/* The session deadline bounds everything. */
	set = settings(MC_SMTP_CLIENT_SMTP);
	set.timeouts.session = 300;
	prepare(hang);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_TIMEOUT);
	CHECK(strstr(run.error, "deadline") != NULL);
}

static void
test_bad_replies(void)
{
	static char many[150 * 9 + 32];
	static const struct test_step flood[] = {{NULL, "!flood"},
	                                         TEST_STEP_END};
	static const struct test_step garbage[] = {{NULL, "hello there\r\n"},
	                                           TEST_STEP_END};
	static const struct test_step long_ehlo[] = {
	        GREETING, {"EHLO", many}, TEST_STEP_END};
	static const struct test_step dot3[] = {
	        GREETING,      EHLO_PIPE,
	        MAIL_OK,       RCPT_OK("a@x.test"),
	        DATA_OK,       {".", "354 again\r\n"},
	        TEST_STEP_END,
	};
	static const struct test_step codes[] = {
	        GREETING, {"EHLO", "250-a\r\n251 b\r\n"}, TEST_STEP_END};
	const struct test_step *scripts[] = {flood, garbage, long_ehlo, dot3,
	                                     codes};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct run run;

	strcpy(many, "250-x\r\n");
	for (int i = 0; i < 150; i++)
		strcat(many, "250-AAA\r\n");
	strcat(many, "250 end\r\n");
	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
		prepare(scripts[i]);
		run_session(&set, &msg, &run);
		CHECK(run.status == MC_SMTP_CLIENT_ERR_PROTOCOL);
		CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.5.0",
		              ""));
	}
}

static void
test_dot_stuffing(void)
{
	static const struct test_step script[] = {
	        GREETING, EHLO_PIPE, MAIL_OK,       RCPT_OK("a@x.test"),
	        DATA_OK,  DOT_OK,    TEST_STEP_END,
	};
	static const char content[] =
	        ".leading\r\nmid\r\n..two\r\n.\r\nlast without crlf";
	static const char wire[] = "..leading\r\nmid\r\n...two\r\n..\r\n"
	                           "last without crlf\r\n.\r\n";
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, content);
	struct run run;

	prepare(script);
	srv.keep_raw = true;
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	CHECK(srv.raw.len == strlen(wire) &&
	      memcmp(srv.raw.data, wire, srv.raw.len) == 0);
	CHECK(srv.content.len == strlen(content) + 2 &&
	      memcmp(srv.content.data, content, strlen(content)) == 0);

	/* Bare LF becomes CRLF; empty content is just the dot. */
	msg = message(1, "a\nb");
	prepare(script);
	srv.keep_raw = true;
	run_session(&set, &msg, &run);
	CHECK(run.delivered == 1);
	CHECK_STR(srv.raw.data, "a\r\nb\r\n.\r\n");
	msg = message(1, "");
	prepare(script);
	srv.keep_raw = true;
	run_session(&set, &msg, &run);
	CHECK(run.delivered == 1);
	CHECK_STR(srv.raw.data, ".\r\n");
	CHECK(srv.content.len == 0);
}

/* ---- TLS --------------------------------------------------------------- */

static void
test_starttls_missing(void)
{
	static const struct test_step no_tls[] = {GREETING, EHLO_PIPE,
	                                          TEST_STEP_END};
	static const struct test_step refused[] = {
	        GREETING,
	        EHLO_TLS,
	        {"STARTTLS", "454 4.7.0 not now\r\n"},
	        TEST_STEP_END};
	static const struct test_step refused_ok[] = {
	        GREETING,
	        EHLO_TLS,
	        {"STARTTLS", "454 4.7.0 not now\r\n"},
	        MAIL_OK,
	        RCPT_OK("a@x.test"),
	        DATA_OK,
	        DOT_OK,
	        TEST_STEP_END};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct run run;

	set.tls = MC_SMTP_CLIENT_TLS_REQUIRED;
	set.tls_ctx = client_opp;
	prepare(no_tls);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_TLS);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.7.4", ""));
	CHECK(strstr(run.error, "not offered") != NULL);
	CHECK(srv.quits == 1 && !test_text_has(&srv.lines, "MAIL"));

	prepare(refused);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_TLS);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.7.4", ""));
	CHECK(srv.quits == 1 && srv.problems.len == 0);

	/* Opportunistic: carry on in clear text. */
	set.tls = MC_SMTP_CLIENT_TLS_OPPORTUNISTIC;
	prepare(refused_ok);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	CHECK(!run.tls && srv.problems.len == 0);
}

static void
test_starttls(void)
{
	static const struct test_step script[] = {
	        GREETING,   EHLO_TLS, {"STARTTLS", "!starttls"},
	        EHLO_AFTER, MAIL_OK,  RCPT_OK("a@x.test"),
	        DATA_OK,    DOT_OK,   TEST_STEP_END,
	};
	static const struct test_step inject[] = {
	        GREETING,   EHLO_TLS, {"STARTTLS", "!inject"},
	        EHLO_AFTER, MAIL_OK,  RCPT_OK("a@x.test"),
	        DATA_OK,    DOT_OK,   TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct run run;

	/* Self-signed certificate, not verified (opportunistic context). */
	set.tls = MC_SMTP_CLIENT_TLS_REQUIRED;
	set.tls_ctx = client_opp;
	prepare(script);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	CHECK(run.tls && !run.tls_verified && srv.tls_ok == 1);
	CHECK(run.ext == MC_SMTP_CLIENT_EXT_PIPELINING); /* EHLO again */
	CHECK(srv.problems.len == 0);

	/* Verified against the certificate as CA, with the right name. */
	set.tls_ctx = client_verify;
	set.tls_peer_name = HOST;
	prepare(script);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.tls && run.tls_verified);

	/* A clear-text reply pipelined behind the 220 is thrown away. */
	prepare(inject);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	CHECK(srv.problems.len == 0);

	/* Wrong name with TLS required: a temporary TLS failure. */
	set.tls_peer_name = "other.example.test";
	prepare(script);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_TLS);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.7.5", ""));
	CHECK(!test_text_has(&srv.lines, "MAIL"));
}

static void
test_starttls_fallback(void)
{
	static const struct test_step first[] = {
	        GREETING, EHLO_TLS, {"STARTTLS", "!starttls"}, TEST_STEP_END};
	static const struct test_step second[] = {
	        GREETING, EHLO_TLS, MAIL_OK,       RCPT_OK("a@x.test"),
	        DATA_OK,  DOT_OK,   TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct run run;

	set.tls = MC_SMTP_CLIENT_TLS_OPPORTUNISTIC;
	set.tls_ctx = client_verify;
	set.tls_peer_name = "other.example.test";
	prepare(first);
	srv.script2 = second;
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	CHECK(!run.tls && srv.accepted == 2);
	CHECK(srv.problems.len == 0);
}

static void
test_implicit_tls(void)
{
	static const struct test_step script[] = {
	        GREETING, EHLO_PIPE, MAIL_OK,       RCPT_OK("a@x.test"),
	        DATA_OK,  DOT_OK,    TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct run run;

	set.tls = MC_SMTP_CLIENT_TLS_IMPLICIT;
	set.tls_ctx = client_verify;
	set.tls_peer_name = HOST;
	prepare(script);
	srv.implicit_tls = true;
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	CHECK(run.tls && run.tls_verified && srv.problems.len == 0);
}

/* ---- Big messages ------------------------------------------------------ */

static void
test_large_slow(void)
{
	static const struct test_step big_ok[] = {
	        GREETING,      {"EHLO", "250-" HOST "\r\n250 PIPELINING\r\n"},
	        MAIL_OK,       RCPT_OK("a@x.test"),
	        DATA_OK,       DOT_OK,
	        TEST_STEP_END,
	};
	const size_t size = 6u << 20;
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	char *m = big_message(size), path[] = "/tmp/smtp_client_testXXXXXX";
	struct mc_smtp_client_message msg = message(1, m);
	struct run run;
	int fd;

	set.timeouts.data_block = 20000;
	prepare(big_ok);
	srv.slow = 64 * 1024;
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	CHECK(srv.pauses > 20);
	CHECK(srv.content.len == size + 2 &&
	      memcmp(srv.content.data, m, size) == 0);

	/* The same from a file, read through the thread pool. */
	fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(write(fd, m, size) == (ssize_t)size);
		unlink(path);
		msg.data = NULL;
		msg.size = 0; /* from fstat */
		msg.use_fd = true;
		msg.fd = fd;
		prepare(big_ok);
		srv.slow = 64 * 1024;
		run_session(&set, &msg, &run);
		CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
		CHECK(srv.content.len == size + 2 &&
		      memcmp(srv.content.data, m, size) == 0);
		close(fd);
	}
	free(m);
}

/* ---- Refusals ---------------------------------------------------------- */

static void
test_client_refusals(void)
{
	static const struct test_step plain[] = {GREETING, EHLO_PLAIN,
	                                         TEST_STEP_END};
	static const struct test_step small[] = {
	        GREETING,
	        {"EHLO", "250-" HOST "\r\n250 SIZE 10\r\n"},
	        TEST_STEP_END};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(2, body);
	struct run run;

	msg.flags = MC_SMTP_CLIENT_NEED_SMTPUTF8;
	prepare(plain);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_UNSUPPORTED);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_PERMFAIL, 0, "5.6.7", ""));
	CHECK(rcpt_is(&run, 1, MC_SMTP_CLIENT_PERMFAIL, 0, "5.6.7", ""));
	CHECK(srv.quits == 1 && !test_text_has(&srv.lines, "MAIL"));

	msg.flags = MC_SMTP_CLIENT_NEED_8BITMIME;
	prepare(small);
	run_session(&set, &msg, &run);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_PERMFAIL, 0, "5.6.3", ""));

	msg.flags = 0;
	prepare(small);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_UNSUPPORTED);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_PERMFAIL, 0, "5.3.4", ""));
	CHECK(strstr(run.error, "exceeds the size limit 10") != NULL);
}

static void
test_server_refusals(void)
{
	static const struct test_step greet[] = {
	        {NULL, "554 5.7.1 go away\r\n"}, TEST_STEP_END};
	static const struct test_step mail[] = {
	        GREETING,
	        EHLO_PIPE,
	        {"MAIL", "550 5.7.1 sender rejected\r\n"},
	        {"RCPT TO:<a@x.test>", "503 5.5.1 need MAIL\r\n"},
	        {"RCPT TO:<b@x.test>", "503 5.5.1 need MAIL\r\n"},
	        TEST_STEP_END,
	};
	static const struct test_step rcpts_no[] = {
	        GREETING,
	        EHLO_PIPE,
	        MAIL_OK,
	        {"RCPT TO:<a@x.test>", "550 5.1.1 no\r\n"},
	        {"RCPT TO:<b@x.test>", "450 4.2.1 later\r\n"},
	        TEST_STEP_END,
	};
	static const struct test_step data[] = {
	        GREETING,
	        EHLO_PIPE,
	        MAIL_OK,
	        RCPT_OK("a@x.test"),
	        {"RCPT TO:<b@x.test>", "550 5.1.1 no\r\n"},
	        {"DATA", "554 5.5.1 no valid recipients\r\n"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(2, body);
	struct run run;

	prepare(greet);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_REFUSED);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_PERMFAIL, 554, "5.7.1",
	              "greeting"));
	CHECK(srv.quits == 1);

	prepare(mail);
	srv.reply_delay_ms = 5;
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_REFUSED);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_PERMFAIL, 550, "5.7.1",
	              "MAIL FROM"));
	CHECK(rcpt_is(&run, 1, MC_SMTP_CLIENT_PERMFAIL, 550, "5.7.1",
	              "MAIL FROM"));
	CHECK(srv.quits == 1 && srv.problems.len == 0);

	prepare(rcpts_no);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_PERMFAIL, 550, "5.1.1",
	              "RCPT TO"));
	CHECK(rcpt_is(&run, 1, MC_SMTP_CLIENT_TEMPFAIL, 450, "4.2.1",
	              "RCPT TO"));
	CHECK(srv.quits == 1 && !test_text_has(&srv.lines, "DATA"));

	prepare(data);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_REFUSED);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_PERMFAIL, 554, "5.5.1", "DATA"));
	CHECK(rcpt_is(&run, 1, MC_SMTP_CLIENT_PERMFAIL, 550, "5.1.1",
	              "RCPT TO"));
	CHECK(srv.quits == 1 && srv.problems.len == 0);
}

static void
refuse_conn(struct mc_listener *listener, struct mc_conn *conn, void *ctx)
{
	(void)listener;
	(void)ctx;
	mc_conn_close(conn, NULL);
}

static void
test_connect_and_abort(void)
{
	static const struct test_step hang[] = {{NULL, "!hang"}, TEST_STEP_END};
	struct mc_listener_settings ls = {.host = "127.0.0.1"};
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct mc_listener *l;
	struct mc_smtp_client *client;
	const char *error;
	struct run run;

	/* A port nobody listens on. */
	CHECK(mc_listener_new(&loop, &ls, refuse_conn, NULL, &l, &error) == 0);
	set.port = mc_listener_port(l);
	mc_listener_close(l, NULL);
	WAIT(false, 20);
	prepare(hang);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_CONNECT);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.4.1", ""));

	/* Abort while waiting for the greeting. */
	set = settings(MC_SMTP_CLIENT_SMTP);
	prepare(hang);
	memset(&run, 0, sizeof(run));
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) == 0);
	WAIT(srv.accepted == 1, 2000);
	mc_smtp_client_abort(client);
	CHECK(!run.done);
	WAIT(run.done, 2000);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_LOCAL);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.3.0", ""));
	WAIT(srv.live == 0, 2000);
}

static void
test_bad_arguments(void)
{
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct mc_smtp_client_rcpt bad = {.address = "a@x.test>\r\nDATA"};
	struct mc_smtp_client *client;
	const char *error;
	struct run run;

	set.ip = "not-an-ip";
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	set = settings(MC_SMTP_CLIENT_SMTP);
	set.tls = MC_SMTP_CLIENT_TLS_REQUIRED;
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	set.tls_ctx = server_tls; /* wrong role */
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	set = settings(MC_SMTP_CLIENT_SMTP);
	msg.rcpts = &bad;
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	CHECK(strstr(error, "recipient") != NULL);
	msg = message(0, body);
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	msg = message(1, body);
	msg.sender = "a\nb";
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	msg = message(1, body);
	msg.ret = "ALL";
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	msg = message(1, body);
	msg.envid = "a b";
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	set.helo_name = "";
	msg = message(1, body);
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
}

/* ---- AUTH ---------------------------------------------------------------- */

/* ',' and '=' in the name: SCRAM's saslname escapes them. */
#define AUTH_USER "re,lay=1@example.test"
#define AUTH_PASS "correct horse,battery=staple"

/* clang-format off */
#define EHLO_AUTH(mechs)                                                       \
	{"EHLO " HELO, "250-" HOST "\r\n250-PIPELINING\r\n250 AUTH " mechs "\r\n"}
#define AUTH_SCRIPT(mechs)                                                     \
	{GREETING, EHLO_TLS, {"STARTTLS", "!starttls"}, EHLO_AUTH(mechs),      \
	 MAIL_OK, RCPT_OK("a@x.test"), RCPT_OK("b@x.test"), DATA_OK, DOT_OK,   \
	 TEST_STEP_END}
/* The session ends after AUTH (QUIT is answered past the script). */
#define AUTH_ONLY(mechs)                                                       \
	{GREETING, EHLO_TLS, {"STARTTLS", "!starttls"}, EHLO_AUTH(mechs),      \
	 TEST_STEP_END}
/* clang-format on */

static struct mc_smtp_client_settings
auth_settings(unsigned mechs)
{
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);

	set.tls = MC_SMTP_CLIENT_TLS_REQUIRED;
	set.tls_ctx = client_opp;
	set.auth_username = AUTH_USER;
	set.auth_password = AUTH_PASS;
	set.auth_mechs = mechs;
	return set;
}

static void
auth_server(const struct test_step *script, const char *pass)
{
	prepare(script);
	srv.auth_user = AUTH_USER;
	srv.auth_pass = pass;
}

static void
test_auth_mechanisms(void)
{
	static const struct test_step all[] =
	        AUTH_SCRIPT("LOGIN PLAIN SCRAM-SHA-256");
	static const struct test_step old[] = AUTH_SCRIPT("LOGIN PLAIN");
	static const struct test_step implicit[] = {
	        GREETING,      EHLO_AUTH("PLAIN"),
	        MAIL_OK,       RCPT_OK("a@x.test"),
	        DATA_OK,       DOT_OK,
	        TEST_STEP_END,
	};
	static const char *const names[] = {"SCRAM-SHA-256", "PLAIN", "LOGIN"};
	static const unsigned bits[] = {0, MC_SMTP_CLIENT_AUTH_PLAIN,
	                                MC_SMTP_CLIENT_AUTH_LOGIN};
	struct mc_smtp_client_message msg = message(2, body);
	struct mc_smtp_client_settings set;
	char user[64], pass[64];
	struct run run;

	/* The best offered and allowed: SCRAM, else as restricted. */
	for (int i = 0; i < 3; i++) {
		set = auth_settings(bits[i]);
		auth_server(all, AUTH_PASS);
		run_session(&set, &msg, &run);
		CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 2);
		CHECK_STR(run.auth_mech, names[i]);
		CHECK(srv.auth_ok == 1 && srv.auth_530 == 0);
		CHECK(srv.problems.len == 0);
		CHECK(test_text_has(&srv.lines, "|AUTH "));
		CHECK(test_text_has(&srv.lines, names[i]));
		CHECK(strstr(srv.lines.data, "|MAIL FROM") >
		      strstr(srv.lines.data, "|AUTH "));
	}
	/* No SCRAM offered: PLAIN before LOGIN. */
	set = auth_settings(0);
	auth_server(old, AUTH_PASS);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK);
	CHECK_STR(run.auth_mech, "PLAIN");

	/* A password outside printable ASCII: no SCRAM (no SASLprep). */
	snprintf(pass, sizeof(pass), "p\xc3\xa4ssword");
	set = auth_settings(0);
	set.auth_password = pass;
	auth_server(all, pass);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK);
	CHECK_STR(run.auth_mech, "PLAIN");

	/* The caller's copies may be wiped once start has returned. */
	snprintf(user, sizeof(user), "%s", AUTH_USER);
	snprintf(pass, sizeof(pass), "%s", AUTH_PASS);
	set = auth_settings(MC_SMTP_CLIENT_AUTH_LOGIN);
	set.auth_username = user;
	set.auth_password = pass;
	auth_server(all, AUTH_PASS);
	{
		struct mc_smtp_client *client;
		const char *error;

		memset(&run, 0, sizeof(run));
		CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run,
		                           &client, &error) == 0);
		mc_wipe(user, sizeof(user));
		mc_wipe(pass, sizeof(pass));
		WAIT(run.done && srv.live == 0, 10000);
		CHECK(run.status == MC_SMTP_CLIENT_OK && srv.auth_ok == 1);
	}

	/* Implicit TLS. */
	set = auth_settings(0);
	set.tls = MC_SMTP_CLIENT_TLS_IMPLICIT;
	auth_server(implicit, AUTH_PASS);
	srv.implicit_tls = true;
	msg = message(1, body);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	CHECK_STR(run.auth_mech, "PLAIN");
}

/* Every recipient with the same outcome, code and enhanced code. */
static bool
all_are(const struct run *run, enum mc_smtp_client_outcome outcome,
        unsigned code, const char *enhanced, const char *command)
{
	bool ok = run->n > 0;

	for (size_t i = 0; i < run->n; i++)
		ok = rcpt_is(run, i, outcome, code, enhanced, command) && ok;
	return ok;
}

static void
test_auth_refused(void)
{
	static const struct test_step all[] =
	        AUTH_ONLY("LOGIN PLAIN SCRAM-SHA-256");
	static const unsigned bits[] = {MC_SMTP_CLIENT_AUTH_SCRAM_SHA_256,
	                                MC_SMTP_CLIENT_AUTH_PLAIN,
	                                MC_SMTP_CLIENT_AUTH_LOGIN};
	struct mc_smtp_client_message msg = message(2, body);
	struct mc_smtp_client_settings set;
	struct run run;

	/* A wrong password: 535 5.7.8 decides every recipient, for good. */
	for (int i = 0; i < 3; i++) {
		set = auth_settings(bits[i]);
		auth_server(all, "another password");
		run_session(&set, &msg, &run);
		CHECK(run.status == MC_SMTP_CLIENT_ERR_AUTH);
		CHECK(all_are(&run, MC_SMTP_CLIENT_PERMFAIL, 535, "5.7.8",
		              "AUTH"));
		CHECK(strstr(run.error, "AUTH refused by " HOST ": 535") !=
		      NULL);
		CHECK(srv.auth_failed == 1 && srv.quits == 1);
		CHECK(!test_text_has(&srv.lines, "MAIL"));
		CHECK(srv.problems.len == 0);
	}
	/* A temporary refusal: retried later. */
	set = auth_settings(MC_SMTP_CLIENT_AUTH_PLAIN);
	auth_server(all, AUTH_PASS);
	srv.auth_reply = "454 4.7.0 Temporary authentication failure\r\n";
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_AUTH);
	CHECK(all_are(&run, MC_SMTP_CLIENT_TEMPFAIL, 454, "4.7.0", "AUTH"));

	/* A SCRAM server that cannot prove it knows the password: the
	 * client stops before MAIL, whatever the server says next. */
	set = auth_settings(0);
	auth_server(all, AUTH_PASS);
	srv.scram_lie = true;
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_AUTH);
	CHECK(all_are(&run, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.7.0", ""));
	CHECK(strstr(run.error, "signature") != NULL);
	CHECK(srv.auth_ok == 0 && !test_text_has(&srv.lines, "MAIL"));
	CHECK_STR(mc_smtp_client_status_name(run.status), "auth");
}

static void
test_auth_impossible(void)
{
	static const struct test_step no_auth[] = {GREETING,
	                                           EHLO_TLS,
	                                           {"STARTTLS", "!starttls"},
	                                           EHLO_AFTER,
	                                           TEST_STEP_END};
	static const struct test_step cram[] = AUTH_ONLY("CRAM-MD5");
	static const struct test_step clear[] = {
	        GREETING,
	        {"EHLO " HELO, "250-" HOST "\r\n250 AUTH PLAIN LOGIN\r\n"},
	        TEST_STEP_END};
	static const struct test_step refused[] = {
	        GREETING,
	        {"EHLO " HELO,
	         "250-" HOST "\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"},
	        {"STARTTLS", "454 4.7.0 not now\r\n"},
	        TEST_STEP_END};
	static const struct test_step tls_fails[] = {
	        GREETING, EHLO_TLS, {"STARTTLS", "!starttls"}, TEST_STEP_END};
	static const struct test_step wants_auth[] = {
	        GREETING,
	        {"EHLO " HELO, "250-" HOST "\r\n250 AUTH PLAIN\r\n"},
	        TEST_STEP_END};
	struct mc_smtp_client_message msg = message(2, body);
	struct mc_smtp_client_settings set;
	struct run run;

	/* AUTH not offered: never sent without it. */
	set = auth_settings(0);
	prepare(no_auth);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_AUTH);
	CHECK(all_are(&run, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.7.0", ""));
	CHECK(strstr(run.error, "does not offer AUTH") != NULL);
	CHECK(!test_text_has(&srv.lines, "MAIL") && srv.quits == 1);

	/* Nothing in common. */
	set = auth_settings(0);
	auth_server(cram, AUTH_PASS);
	run_session(&set, &msg, &run);
	CHECK(all_are(&run, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.7.0", ""));
	CHECK(strstr(run.error, "in common") != NULL);
	CHECK(strstr(run.error, "CRAM-MD5") != NULL);
	CHECK(!test_text_has(&srv.lines, "AUTH"));

	/* Opportunistic TLS and no STARTTLS, or STARTTLS refused: the
	 * credentials stay home, whatever the server offers in clear. */
	set = auth_settings(0);
	set.tls = MC_SMTP_CLIENT_TLS_OPPORTUNISTIC;
	auth_server(clear, AUTH_PASS);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_AUTH);
	CHECK(all_are(&run, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.7.11", ""));
	CHECK(strstr(run.error, "without TLS") != NULL);
	CHECK(!test_text_has(&srv.lines, "AUTH") && srv.quits == 1);
	auth_server(refused, AUTH_PASS);
	run_session(&set, &msg, &run);
	CHECK(all_are(&run, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.7.11", ""));
	CHECK(!test_text_has(&srv.lines, "AUTH"));

	/* A failed opportunistic handshake does not fall back to clear
	 * text when there are credentials. */
	set.tls_ctx = client_verify;
	set.tls_peer_name = "other.example.test";
	auth_server(tls_fails, AUTH_PASS);
	srv.script2 = clear;
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_TLS);
	CHECK(all_are(&run, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.7.5", ""));
	CHECK(srv.accepted == 1);

	/* No credentials for a server that wants them: its 530 to MAIL. */
	set = settings(MC_SMTP_CLIENT_SMTP);
	auth_server(wants_auth, AUTH_PASS);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_REFUSED);
	CHECK(all_are(&run, MC_SMTP_CLIENT_PERMFAIL, 530, "5.7.0",
	              "MAIL FROM"));
	CHECK(srv.auth_530 == 1);
}

static void
test_auth_arguments(void)
{
	struct mc_smtp_client_message msg = message(1, body);
	struct mc_smtp_client_settings set;
	struct mc_smtp_client *client;
	const char *error;
	char long_pass[300];
	struct run run;

	set = auth_settings(0);
	set.tls = MC_SMTP_CLIENT_TLS_NONE;
	set.tls_ctx = NULL;
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	CHECK(strstr(error, "TLS") != NULL);
	set = auth_settings(0);
	set.auth_password = NULL;
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	set = auth_settings(0);
	set.auth_username = "user\r\nMAIL FROM:<x>";
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	set = auth_settings(0);
	set.auth_password = "";
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	memset(long_pass, 'x', sizeof(long_pass) - 1);
	long_pass[sizeof(long_pass) - 1] = '\0';
	set.auth_password = long_pass;
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	set = auth_settings(0x80);
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);
	/* None of the errors shows the secret. */
	CHECK(strstr(error, AUTH_PASS) == NULL);
}

/* Does the file hold s? */
static bool
file_has(const char *path, const char *s)
{
	FILE *f = fopen(path, "r");
	static char buf[4 << 20];
	size_t n;

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return memmem(buf, n, s, strlen(s)) != NULL;
}

/* The test's own complaints, which went to the log file with it. */
static void
show_failures(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "20", 2) != 0) /* not a log line */
			fputs(line, stderr);
	fclose(f);
}

static void
b64(const char *in, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in,
	                (int)len);
}

/* Everything AUTH does, with the log at debug level into a file that is
 * then searched for the credentials in every form they take on the wire. */
static void
test_auth(void)
{
	char path[] = "/tmp/smtp_client_test_log.XXXXXX", enc[1024], plain[600];
	static const char *const secrets[] = {
	        AUTH_PASS, AUTH_USER, "correct horse", "p\xc3\xa4ssword"};
	int fd = mkstemp(path), saved = dup(2);
	size_t ulen = strlen(AUTH_USER);

	CHECK(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	mc_log_init("smtp_client_test", MC_LOG_DEBUG);

	test_auth_mechanisms();
	test_auth_refused();
	test_auth_impossible();
	test_auth_arguments();

	mc_log_init("smtp_client_test", MC_LOG_INFO);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	show_failures(path);
	CHECK(file_has(path, "auth=SCRAM-SHA-256 ok")); /* logs were kept */
	CHECK(file_has(path, "AUTH PLAIN, step 0, hidden"));
	for (size_t i = 0; i < sizeof(secrets) / sizeof(*secrets); i++) {
		CHECK(!file_has(path, secrets[i]));
		b64(secrets[i], strlen(secrets[i]), enc);
		CHECK(!file_has(path, enc));
	}
	plain[0] = '\0';
	memcpy(plain + 1, AUTH_USER, ulen + 1);
	memcpy(plain + 2 + ulen, AUTH_PASS, strlen(AUTH_PASS));
	b64(plain, 2 + ulen + strlen(AUTH_PASS), enc);
	CHECK(!file_has(path, enc));
	CHECK(!file_has(path, "re=2Clay=3D1")); /* SCRAM's saslname */
	unlink(path);
}

/* ---- Connecting by name ------------------------------------------------ */

static void
dns_closed(void *arg)
{
	*(bool *)arg = true;
}

static void
test_hosts(void)
{
	static const struct test_dns_entry table[] = {
	        {"mx.test", TEST_DNS_AAAA, 0, "::1"},
	        {"mx.test", TEST_DNS_A, 0, "127.0.0.1"},
	        {"silent.test", 0, TEST_DNS_DROP, NULL},
	        {NULL, 0, 0, NULL},
	};
	static const struct test_step script[] = {
	        GREETING, EHLO_PIPE, MAIL_OK,       RCPT_OK("a@x.test"),
	        DATA_OK,  DOT_OK,    TEST_STEP_END,
	};
	static const struct test_step hang[] = {{NULL, "!hang"}, TEST_STEP_END};
	static struct test_dns_server fake; /* closed from the loop */
	struct mc_dns *dns;
	struct mc_smtp_client_settings set = settings(MC_SMTP_CLIENT_SMTP);
	struct mc_smtp_client_message msg = message(1, body);
	struct mc_smtp_client *client;
	const char *hosts[2], *error;
	bool closed = false;
	struct run run;

	memset(&fake, 0, sizeof(fake));
	if (test_dns_start(&loop, &fake, table) < 0 ||
	    mc_dns_new(&loop,
	               &(struct mc_dns_settings){
	                       .servers = (const char *[]){fake.address},
	                       .server_count = 1,
	                       .timeout_ms = 200,
	                       .tries = 1},
	               &dns, &error) < 0) {
		CHECK(false);
		return;
	}
	/* [::1] refuses on the server's port, 127.0.0.1 answers. */
	set.ip = NULL;
	set.dns = dns;
	set.hosts = hosts;
	set.host_count = 1;
	set.remote_name = NULL;
	hosts[0] = "mx.test";
	prepare(script);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_OK && run.delivered == 1);
	CHECK_STR(run.ip, "127.0.0.1");
	CHECK_STR(run.host, "mx.test");
	CHECK_STR(run.remote, "mx.test");
	CHECK(strstr(run.connect_errors, "mx.test: connect to [::1]:") != NULL);

	/* No such domain for every host: permanent (5.4.4). */
	hosts[0] = "nx.test";
	hosts[1] = "nx2.test";
	set.host_count = 2;
	prepare(hang);
	run_session(&set, &msg, &run);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_CONNECT);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_PERMFAIL, 0, "5.4.4", ""));
	CHECK(strstr(run.error, "nx2.test A: no such domain") != NULL);
	CHECK(srv.accepted == 0);

	/* Abort while resolving: done follows from the loop. */
	hosts[0] = "silent.test";
	set.host_count = 1;
	memset(&run, 0, sizeof(run));
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) == 0);
	WAIT(false, 20);
	mc_smtp_client_abort(client);
	CHECK(!run.done);
	WAIT(run.done, 2000);
	CHECK(run.status == MC_SMTP_CLIENT_ERR_LOCAL);
	CHECK(rcpt_is(&run, 0, MC_SMTP_CLIENT_TEMPFAIL, 0, "4.3.0", ""));

	/* Both ip and hosts, or neither. */
	set.ip = "127.0.0.1";
	CHECK(mc_smtp_client_start(&loop, &set, &msg, done_cb, &run, &client,
	                           &error) < 0);

	mc_dns_close(dns, dns_closed, &closed);
	WAIT(closed, 2000);
	test_dns_stop(&fake);
}

static int
setup_tls(void)
{
	char *cert = NULL, *key = NULL;
	const char *error = "";
	int r = -1;

	if (mc_tls_self_signed(HOST, 30, &cert, &key, &error) < 0)
		goto fail;
	if (mc_tls_ctx_new(
	            MC_TLS_SERVER,
	            &(struct mc_tls_settings){.cert_pem = cert, .key_pem = key},
	            &server_tls, &error) < 0 ||
	    mc_tls_ctx_new(MC_TLS_CLIENT,
	                   &(struct mc_tls_settings){.opportunistic = true},
	                   &client_opp, &error) < 0 ||
	    mc_tls_ctx_new(MC_TLS_CLIENT,
	                   &(struct mc_tls_settings){.ca_pem = cert},
	                   &client_verify, &error) < 0)
		goto fail;
	r = 0;
fail:
	if (r < 0)
		fprintf(stderr, "tls setup: %s\n", error);
	if (key != NULL)
		mc_wipe(key, strlen(key));
	free(cert);
	free(key);
	return r;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	uv_timer_init(&loop, &tick);
	if (setup_tls() < 0 || test_server_start(&loop, &srv) < 0)
		return 1;
	srv.tls = server_tls;

	test_lmtp_mixed();
	test_many_rcpts();
	test_smtp_pipelining();
	test_smtp_no_pipelining();
	test_helo_fallback();
	test_multiline();
	test_drops();
	test_timeouts();
	test_bad_replies();
	test_dot_stuffing();
	test_starttls_missing();
	test_starttls();
	test_starttls_fallback();
	test_implicit_tls();
	test_large_slow();
	test_client_refusals();
	test_server_refusals();
	test_connect_and_abort();
	test_bad_arguments();
	test_auth();
	test_hosts();

	test_server_stop(&srv);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0);
	mc_tls_ctx_free(&server_tls);
	mc_tls_ctx_free(&client_opp);
	mc_tls_ctx_free(&client_verify);
	return mc_test_done();
}
