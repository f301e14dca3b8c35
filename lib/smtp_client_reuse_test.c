/* Connection reuse of lib/smtp_client (smtp_client.h, "Connection reuse")
 * against the scripted server of smtp_client_test_server.c: two and three
 * messages over one connection (RSET between them, one greeting, one
 * QUIT), a result not held quits as without reuse, reuse off, a held
 * connection that idles out (QUIT, closed callback) or that the server
 * closes (closed callback), RSET refused on a reused connection (decided
 * by no reply: result.reused tells the caller to try a new one), a
 * transaction whose recipients were all refused is reused after RSET,
 * release, abort of a held client and an invalid next message. The loop
 * must end with no handle left and nothing leaked. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "smtp_client.h"
#include "smtp_client_test_server.h"
#include "test.h"
#include "test_loop.h"

#define HOST "mx.example.test"
#define HELO "relay.example.test"

static struct test_server srv;


/* What a done callback saw, and whether it held the client. */
struct run {
	bool done, hold, reusable, reused;
	enum mc_smtp_client_status status;
	size_t delivered, tempfail, permfail;
	unsigned code0; /* the first recipient's deciding reply, 0: none */
	struct mc_smtp_client *client;
	int closed;
};

static void
closed_cb(void *ctx)
{
	struct run *run = ctx;

	run->closed++;
}

static void
done_cb(const struct mc_smtp_client_result *res, void *ctx)
{
	struct run *run = ctx;

	run->done = true;
	run->status = res->status;
	run->reusable = res->reusable;
	run->reused = res->reused;
	run->delivered = res->delivered;
	run->tempfail = res->tempfail;
	run->permfail = res->permfail;
	run->code0 = res->rcpts[0].code;
	if (run->hold && res->reusable)
		mc_smtp_client_hold(run->client, closed_cb, run);
}

static const struct mc_smtp_client_rcpt rcpt_a = {.address = "a@x.test"},
                                        rcpt_b = {.address = "b@x.test"};
static const char body[] = "Subject: hi\r\n\r\nhello\r\n";

static struct mc_smtp_client_message
message(const struct mc_smtp_client_rcpt *rcpt)
{
	return (struct mc_smtp_client_message){
	        .sender = "s@y.test",
	        .rcpts = rcpt,
	        .rcpt_count = 1,
	        .data = body,
	        .size = sizeof(body) - 1,
	};
}

static struct mc_smtp_client_settings
settings(bool reuse, uint64_t idle_ms)
{
	struct mc_smtp_client_settings set = {
	        .protocol = MC_SMTP_CLIENT_SMTP,
	        .ip = "127.0.0.1",
	        .port = srv.port,
	        .helo_name = HELO,
	        .remote_name = HOST,
	        .log_id = "r1",
	        .reuse = reuse,
	};
	uint64_t *t = &set.timeouts.connect;

	for (size_t i = 0; i < sizeof(set.timeouts) / sizeof(*t); i++)
		t[i] = 3000;
	set.timeouts.idle = idle_ms;
	return set;
}

static void
prepare(const struct test_step *script)
{
	test_server_reset(&srv);
	srv.script = script;
}

/* Start the first message; wait for its result. */
static bool
first(const struct mc_smtp_client_settings *set, struct run *run, bool hold)
{
	struct mc_smtp_client_message msg = message(&rcpt_a);
	const char *error;

	memset(run, 0, sizeof(*run));
	run->hold = hold;
	if (mc_smtp_client_start(&loop, set, &msg, done_cb, run, &run->client,
	                         &error) < 0) {
		fprintf(stderr, "start: %s\n", error);
		return false;
	}
	WAIT(run->done, 10000);
	return run->done;
}

/* The next message over the client run1 holds, into run2. */
static bool
next(struct run *run1, struct run *run2, bool hold)
{
	struct mc_smtp_client_message msg = message(&rcpt_b);
	const char *error;

	memset(run2, 0, sizeof(*run2));
	run2->hold = hold;
	run2->client = run1->client;
	if (mc_smtp_client_next(run1->client, &msg, "r2", done_cb, run2,
	                        &error) < 0) {
		fprintf(stderr, "next: %s\n", error);
		return false;
	}
	if (run2->done)
		return false; /* never from inside next */
	WAIT(run2->done, 10000);
	return run2->done;
}

static void
settle(void)
{
	WAIT(srv.live == 0, 10000);
	CHECK(srv.live == 0);
	for (int i = 0; i < 5; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	if (srv.problems.len > 0)
		fprintf(stderr, "server: %s", srv.problems.data);
	CHECK(srv.problems.len == 0);
}

/* clang-format off */
#define GREETING {NULL, "220 " HOST " ESMTP\r\n"}
#define EHLO_PIPE                                                              \
	{"EHLO " HELO, "250-" HOST "\r\n250-PIPELINING\r\n"                    \
	               "250 ENHANCEDSTATUSCODES\r\n"}
#define TRANSACTION(a)                                                         \
	{"MAIL FROM:<s@y.test>", "250 2.1.0 ok\r\n"},                          \
	{"RCPT TO:<" a ">", "250 2.1.5 ok\r\n"},                               \
	{"DATA", "354 go ahead\r\n"}
#define RSET_OK {"RSET", "250 2.0.0 ok\r\n"}
/* clang-format on */

static void
test_three_messages(void)
{
	static const struct test_step script[] = {
	        GREETING,  EHLO_PIPE,           TRANSACTION("a@x.test"),
	        {".", "250 2.0.0 queued as 1\r\n"},
	        RSET_OK,   TRANSACTION("b@x.test"),
	        {".", "250 2.0.0 queued as 2\r\n"},
	        RSET_OK,   TRANSACTION("b@x.test"),
	        {".", "250 2.0.0 queued as 3\r\n"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(true, 3000);
	struct run r1, r2, r3;

	prepare(script);
	CHECK(first(&set, &r1, true));
	CHECK(r1.status == MC_SMTP_CLIENT_OK && r1.delivered == 1);
	CHECK(r1.reusable && !r1.reused);
	CHECK(next(&r1, &r2, true));
	CHECK(r2.status == MC_SMTP_CLIENT_OK && r2.delivered == 1);
	CHECK(r2.reusable && r2.reused && r2.code0 == 250);
	CHECK(next(&r2, &r3, false)); /* not held: QUIT */
	CHECK(r3.delivered == 1 && r3.reused);
	settle();
	CHECK(srv.accepted == 1 && srv.quits == 1);
	CHECK(r1.closed == 0 && r2.closed == 0);
	CHECK(test_text_has(&srv.lines, "|RSET|MAIL FROM:<s@y.test>"));
	CHECK(srv.content.len == sizeof(body) - 1);
}

/* Reusable but not held, and reuse off: one message, then QUIT. */
static void
test_not_held(void)
{
	static const struct test_step script[] = {
	        GREETING,
	        EHLO_PIPE,
	        TRANSACTION("a@x.test"),
	        {".", "250 2.0.0 queued\r\n"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(true, 3000);
	struct run r1;

	prepare(script);
	CHECK(first(&set, &r1, false));
	CHECK(r1.delivered == 1 && r1.reusable);
	settle();
	CHECK(srv.accepted == 1 && srv.quits == 1);

	set = settings(false, 3000);
	prepare(script);
	CHECK(first(&set, &r1, true));
	CHECK(r1.delivered == 1 && !r1.reusable);
	settle();
	CHECK(srv.quits == 1 && r1.closed == 0);
}

/* A held connection nobody uses: QUIT after the idle time, closed once. */
static void
test_idle_timeout(void)
{
	static const struct test_step script[] = {
	        GREETING,
	        EHLO_PIPE,
	        TRANSACTION("a@x.test"),
	        {".", "250 2.0.0 queued\r\n"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(true, 150);
	struct run r1;

	prepare(script);
	CHECK(first(&set, &r1, true));
	CHECK(r1.reusable);
	WAIT(r1.closed > 0, 5000);
	CHECK(r1.closed == 1);
	settle();
	CHECK(srv.quits == 1);
}

/* The server closes the idle connection: closed once, freed. */
static void
test_server_closes(void)
{
	static const struct test_step script[] = {
	        GREETING,
	        EHLO_PIPE,
	        TRANSACTION("a@x.test"),
	        {".", "250 2.0.0 queued\r\n!close"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(true, 3000);
	struct run r1;

	prepare(script);
	CHECK(first(&set, &r1, true));
	WAIT(r1.closed > 0, 5000);
	CHECK(r1.closed == 1);
	settle();
}

/* RSET answered 421: the message is decided by no reply, so the caller
 * knows to try a new connection. */
static void
test_rset_refused(void)
{
	static const struct test_step script[] = {
	        GREETING,
	        EHLO_PIPE,
	        TRANSACTION("a@x.test"),
	        {".", "250 2.0.0 queued\r\n"},
	        {"RSET", "421 4.4.2 idle too long\r\n!close"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(true, 3000);
	struct run r1, r2;

	prepare(script);
	CHECK(first(&set, &r1, true));
	CHECK(next(&r1, &r2, true));
	CHECK(r2.tempfail == 1 && r2.reused && !r2.reusable);
	CHECK(r2.status == MC_SMTP_CLIENT_ERR_CLOSED && r2.code0 == 0);
	settle();
	CHECK(r1.closed == 0 && r2.closed == 0);
}

/* Every recipient refused (no DATA): the transaction is cleared by the
 * RSET of the next message. */
static void
test_after_refused_rcpts(void)
{
	static const struct test_step script[] = {
	        GREETING,
	        EHLO_PIPE,
	        {"MAIL FROM:<s@y.test>", "250 2.1.0 ok\r\n"},
	        {"RCPT TO:<a@x.test>", "550 5.1.1 no such user\r\n"},
	        RSET_OK,
	        TRANSACTION("b@x.test"),
	        {".", "250 2.0.0 queued\r\n"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(true, 3000);
	struct run r1, r2;

	prepare(script);
	CHECK(first(&set, &r1, true));
	CHECK(r1.permfail == 1 && r1.reusable);
	CHECK(next(&r1, &r2, false));
	CHECK(r2.delivered == 1 && r2.reused);
	settle();
	CHECK(srv.accepted == 1 && srv.quits == 1);
}

/* Release (QUIT), abort (reset) and an invalid next message (QUIT, -1):
 * no callback after any of them. */
static void
test_release_abort_invalid(void)
{
	static const struct test_step script[] = {
	        GREETING,
	        EHLO_PIPE,
	        TRANSACTION("a@x.test"),
	        {".", "250 2.0.0 queued\r\n"},
	        TEST_STEP_END,
	};
	struct mc_smtp_client_settings set = settings(true, 3000);
	struct mc_smtp_client_message bad = message(&rcpt_b);
	struct run r1;
	const char *error = NULL;

	prepare(script);
	CHECK(first(&set, &r1, true));
	mc_smtp_client_release(r1.client, false);
	settle();
	CHECK(srv.quits == 1 && r1.closed == 0);

	prepare(script);
	CHECK(first(&set, &r1, true));
	mc_smtp_client_abort(r1.client);
	settle();
	CHECK(srv.quits == 0 && r1.closed == 0);

	prepare(script);
	CHECK(first(&set, &r1, true));
	bad.rcpt_count = 0;
	r1.done = false;
	CHECK(mc_smtp_client_next(r1.client, &bad, NULL, done_cb, &r1,
	                          &error) < 0);
	CHECK(error != NULL && strstr(error, "recipient") != NULL);
	settle();
	CHECK(srv.quits == 1 && !r1.done && r1.closed == 0);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	uv_timer_init(&loop, &tick);
	if (test_server_start(&loop, &srv) < 0)
		return 1;

	test_three_messages();
	test_not_held();
	test_idle_timeout();
	test_server_closes();
	test_rset_refused();
	test_after_refused_rcpts();
	test_release_abort_invalid();

	test_server_stop(&srv);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0);
	return mc_test_done();
}
