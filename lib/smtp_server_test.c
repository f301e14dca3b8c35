/* The SMTP/LMTP server engine on a real libuv loop over loopback: an
 * mc_listener on 127.0.0.1 port 0 feeds mc_smtp_server, a fake policy
 * records every callback, and a scripted client on a raw non-blocking
 * socket (with an mc_tls session for STARTTLS and implicit TLS) runs in
 * the same thread, turning the loop while it waits. Covers a full
 * transaction, a whole transaction pipelined in one write, sequencing
 * errors, RSET, SIZE at MAIL and at the end of data, the recipient limit,
 * timeouts, the bad-command limit, STARTTLS with an injected command,
 * LMTP per-recipient replies, SMTP smuggling, asynchronous policy
 * answers, a client that never reads its replies, connections lost mid
 * DATA and during an outstanding request, a refused connect, AUTH, and a
 * server shutdown. The loop must end with no handle left. */
#include <signal.h>
#include <stdlib.h>

#include <uv.h>

#define HOST "mx.example.test"
#include "listener.h"
#include "mem.h"
#include "smtp_server.h"
#include "smtp_server_test_client.h"
#include "test.h"
#include "tls.h"

/* Enough "HELP" replies (~75 octets each) to overflow the socket buffers
 * many times over. */
#define BACKPRESSURE_COMMANDS 60000

static char *srv_cert, *srv_key;
static struct mc_tls_ctx *server_tls;

/* --- The fake policy ----------------------------------------------------- */

struct pending {
	unsigned code;
	const char *enhanced, *text;
};

static struct fake {
	struct text log, content;
	int connects, closed;
	unsigned connect_code; /* 0 accept, else refuse with it */
	bool async;            /* answer from a timer */
	bool hold;             /* answer only when the test says so */
	struct mc_smtp_session *session;
	struct pending pend[8];
	size_t npend;
	uv_timer_t timer;
	char info[256], dsn[256];
	int auth_step;
} F;

static void
fake_flush(void)
{
	struct mc_smtp_session *s = F.session;
	size_t n = F.npend;

	F.npend = 0;
	F.session = NULL;
	for (size_t i = 0; i < n; i++)
		mc_smtp_session_reply(s, F.pend[i].code, F.pend[i].enhanced,
		                      F.pend[i].text);
}

static void
fake_timer_cb(uv_timer_t *timer)
{
	(void)timer;
	fake_flush();
}

/* Reply now, later (async) or when released (hold). */
static void
answer(struct mc_smtp_session *s, unsigned code, const char *enhanced,
       const char *text)
{
	if (!F.async && !F.hold) {
		mc_smtp_session_reply(s, code, enhanced, text);
		return;
	}
	F.session = s;
	F.pend[F.npend++] = (struct pending){code, enhanced, text};
	if (F.async)
		uv_timer_start(&F.timer, fake_timer_cb, 5, 0);
}

static void
p_connect(struct mc_smtp_session *s, void *ctx)
{
	(void)ctx;
	F.connects++;
	text_addf(&F.log, "connect|");
	answer(s, F.connect_code, NULL, F.connect_code ? "go away" : NULL);
}

static void
p_helo(struct mc_smtp_session *s, void *ctx, const char *name)
{
	(void)ctx;
	text_addf(&F.log, "helo:");
	text_addf(&F.log, name);
	text_addf(&F.log, "|");
	answer(s, 0, NULL, NULL);
}

static void
p_mail(struct mc_smtp_session *s, void *ctx, const struct mc_smtp_path *from,
       const struct mc_smtp_params *params)
{
	(void)ctx;
	(void)params;
	text_addf(&F.log, "mail:");
	text_addf(&F.log, from->mailbox);
	text_addf(&F.log, "|");
	if (strncmp(from->mailbox, "reject@", 7) == 0)
		answer(s, 550, "5.7.1", "Sender refused");
	else
		answer(s, 0, NULL, NULL);
}

static void
p_rcpt(struct mc_smtp_session *s, void *ctx, const struct mc_smtp_path *to,
       const struct mc_smtp_params *params)
{
	(void)ctx;
	(void)params;
	text_addf(&F.log, "rcpt:");
	text_addf(&F.log, to->mailbox);
	text_addf(&F.log, "|");
	if (strncmp(to->mailbox, "bad", 3) == 0)
		answer(s, 550, "5.1.1", "User unknown");
	else if (strncmp(to->mailbox, "close", 5) == 0)
		answer(s, 421, "4.7.0", "Too busy, closing");
	else
		answer(s, 250, "2.1.5", "Recipient ok");
}

static void
p_data_start(struct mc_smtp_session *s, void *ctx)
{
	(void)ctx;
	snprintf(F.info, sizeof(F.info), "%s %s %s %s %s",
	         mc_smtp_session_protocol(s), mc_smtp_session_helo(s),
	         mc_smtp_session_peer_ip(s),
	         mc_smtp_session_tls(s) ? mc_smtp_session_tls_version(s) : "-",
	         mc_smtp_session_txn(s)->mail_from);
	{
		const struct mc_smtp_txn *t = mc_smtp_session_txn(s);
		const struct mc_smtp_rcpt *r = &t->rcpts[0];

		snprintf(F.dsn, sizeof(F.dsn),
		         "ret=%d envid=%s body=%d utf8=%d n=%zu notify=%u "
		         "orcpt=%s;%s domain=%s",
		         (int)t->ret, t->envid ? t->envid : "-", (int)t->body,
		         t->smtputf8, t->rcpt_count, r->notify,
		         r->orcpt_type ? r->orcpt_type : "-",
		         r->orcpt ? r->orcpt : "-", r->domain);
	}
	text_addf(&F.log, "data|");
	answer(s, 0, NULL, NULL);
}

static void
p_data_content(struct mc_smtp_session *s, void *ctx, const void *data,
               size_t len)
{
	(void)s;
	(void)ctx;
	text_add(&F.content, data, len);
}

/* SMTP: one reply; LMTP: one per recipient, "full" ones temp-fail. */
static void
p_data_end(struct mc_smtp_session *s, void *ctx)
{
	const struct mc_smtp_txn *t = mc_smtp_session_txn(s);

	(void)ctx;
	text_addf(&F.log, "end|");
	if (mc_smtp_session_mode(s) == MC_SMTP_MODE_SMTP) {
		answer(s, 250, "2.0.0", "Ok: queued as 1234");
		return;
	}
	/* Decide first: the last reply ends the transaction (and frees
	 * t). */
	bool full[8];
	size_t n = t->rcpt_count;

	for (size_t i = 0; i < n && i < 8; i++)
		full[i] = strstr(t->rcpts[i].mailbox, "full") != NULL;
	for (size_t i = 0; i < n && i < 8; i++) {
		if (full[i])
			answer(s, 452, "4.2.2", "Mailbox full");
		else
			answer(s, 250, "2.0.0", "Delivered");
	}
}

static void
p_txn_end(struct mc_smtp_session *s, void *ctx, enum mc_smtp_txn_end how)
{
	(void)s;
	(void)ctx;
	text_addf(&F.log, "txn:");
	text_addf(&F.log, mc_smtp_txn_end_name(how));
	text_addf(&F.log, "|");
}

static void
p_closed(struct mc_smtp_session *s, void *ctx)
{
	(void)s;
	(void)ctx;
	F.closed++;
	text_addf(&F.log, "closed|");
}

/* PLAIN accepts "\0user\0secret" (AGB1c2VyAHNlY3JldA==); LOGIN asks
 * twice. */
static void
p_auth(struct mc_smtp_session *s, void *ctx, const char *mech,
       const char *response)
{
	(void)ctx;
	if (mech != NULL && strcmp(mech, "PLAIN") == 0) {
		if (response != NULL &&
		    strcmp(response, "AGB1c2VyAHNlY3JldA==") == 0)
			answer(s, 235, "2.7.0", NULL);
		else
			answer(s, 535, "5.7.8", "Authentication failed");
		return;
	}
	if (mech != NULL && strcmp(mech, "LOGIN") == 0) {
		F.auth_step = 1;
		answer(s, 334, NULL, "VXNlcm5hbWU6");
		return;
	}
	if (mech == NULL && F.auth_step == 1) {
		F.auth_step = 2;
		answer(s, 334, NULL, "UGFzc3dvcmQ6");
		return;
	}
	answer(s, 535, "5.7.8", "Authentication failed");
}

static const struct mc_smtp_policy fake_policy = {
        .connect = p_connect,
        .helo = p_helo,
        .mail = p_mail,
        .rcpt = p_rcpt,
        .data_start = p_data_start,
        .data_content = p_data_content,
        .data_end = p_data_end,
        .txn_end = p_txn_end,
        .closed = p_closed,
};

static void
fake_reset(void)
{
	text_free(&F.log);
	text_free(&F.content);
	F.connects = F.closed = 0;
	F.connect_code = 0;
	F.async = F.hold = false;
	F.npend = 0;
	F.session = NULL;
	F.auth_step = 0;
	F.info[0] = F.dsn[0] = '\0';
}

/* --- Server -------------------------------------------------------------- */

struct server {
	struct mc_listener *listener;
	struct mc_smtp_server *smtp;
	bool listener_closed, smtp_closed;
};

static void
on_accept(struct mc_listener *listener, struct mc_conn *conn, void *ctx)
{
	struct server *srv = ctx;

	(void)listener;
	mc_smtp_server_accept(srv->smtp, conn);
}

static uint16_t
server_start(struct server *srv, struct mc_smtp_server_settings *set,
             const struct mc_smtp_policy *policy)
{
	struct mc_listener_settings ls = {.host = "127.0.0.1"};
	const char *error;

	memset(srv, 0, sizeof(*srv));
	fake_reset();
	set->hostname = HOST;
	if (mc_smtp_server_new(&loop, set, policy, NULL, &srv->smtp, &error) <
	            0 ||
	    mc_listener_new(&loop, &ls, on_accept, srv, &srv->listener,
	                    &error) < 0) {
		fprintf(stderr, "server: %s\n", error);
		exit(1);
	}
	return mc_listener_port(srv->listener);
}

static void
listener_closed(void *ctx)
{
	((struct server *)ctx)->listener_closed = true;
}

static void
smtp_closed(void *ctx)
{
	((struct server *)ctx)->smtp_closed = true;
}

static void
server_stop(struct server *srv)
{
	mc_listener_close(srv->listener, listener_closed);
	mc_smtp_server_close(srv->smtp, smtp_closed, srv);
	WAIT(srv->listener_closed && srv->smtp_closed, LONG_WAIT);
	CHECK(srv->smtp_closed);
	CHECK(F.closed == F.connects);
}

/* --- Tests --------------------------------------------------------------- */

static const char ehlo_reply[] = "250-" HOST "\r\n"
                                 "250-PIPELINING\r\n"
                                 "250-SIZE 10000\r\n"
                                 "250-8BITMIME\r\n"
                                 "250-SMTPUTF8\r\n"
                                 "250 ENHANCEDSTATUSCODES\r\n";

static void
settings(struct mc_smtp_server_settings *set)
{
	mc_smtp_server_settings_init(set);
	set->max_message = 10000;
}

static void
test_transaction(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;

	settings(&set);
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	CHECK(client_wait(&c, "\r\n"));
	CHECK_STR(client_take(&c), "220 " HOST " ESMTP ready\r\n");
	client_send(&c, "EHLO client.example\r\n");
	CHECK(client_wait(&c, "250 ENH"));
	CHECK_STR(client_take(&c), ehlo_reply);
	client_send(&c, "MAIL FROM:<alice@example.org> SIZE=100 "
	                "BODY=8BITMIME\r\n");
	CHECK(client_wait(&c, "\r\n"));
	CHECK_STR(client_take(&c), "250 2.1.0 Ok\r\n");
	client_send(&c, "RCPT TO:<bob@example.test>\r\n");
	CHECK(client_wait(&c, "\r\n"));
	CHECK_STR(client_take(&c), "250 2.1.5 Recipient ok\r\n");
	client_send(&c, "DATA\r\n");
	CHECK(client_wait(&c, "\r\n"));
	CHECK_STR(client_take(&c), "354 End data with <CR><LF>.<CR><LF>\r\n");
	CHECK_STR(F.info, "ESMTP client.example 127.0.0.1 - alice@example.org");
	client_send(&c, "Subject: hi\r\n\r\n..dot\r\nline\r\n.\r\n");
	CHECK(client_wait(&c, "\r\n"));
	CHECK_STR(client_take(&c), "250 2.0.0 Ok: queued as 1234\r\n");
	CHECK_STR(text_str(&F.content), "Subject: hi\r\n\r\n.dot\r\nline\r\n");
	client_send(&c, "QUIT\r\n");
	CHECK(client_wait_eof(&c));
	CHECK_STR(client_take(&c), "221 2.0.0 " HOST " Bye\r\n");
	WAIT(F.closed == 1, LONG_WAIT);
	CHECK_STR(text_str(&F.log),
	          "connect|helo:client.example|mail:alice@example.org|"
	          "rcpt:bob@example.test|data|end|txn:done|closed|");
	client_close(&c);
	server_stop(&srv);
}

static const char pipelined[] = "EHLO p.example\r\n"
                                "MAIL FROM:<a@example.org>\r\n"
                                "RCPT TO:<x@example.test>\r\n"
                                "RCPT TO:<bad@example.test>\r\n"
                                "RCPT TO:<y@example.test>\r\n"
                                "DATA\r\n"
                                "From: a\r\n\r\nbody\r\n.\r\n"
                                "MAIL FROM:<b@example.org>\r\n"
                                "RCPT TO:<z@example.test>\r\n"
                                "RSET\r\n"
                                "NOOP\r\n"
                                "QUIT\r\n";

static const char pipelined_replies[] =
        "220 " HOST " ESMTP ready\r\n"
        "250-" HOST "\r\n"
        "250-PIPELINING\r\n"
        "250-SIZE 10000\r\n"
        "250-8BITMIME\r\n"
        "250-SMTPUTF8\r\n"
        "250 ENHANCEDSTATUSCODES\r\n"
        "250 2.1.0 Ok\r\n"
        "250 2.1.5 Recipient ok\r\n"
        "550 5.1.1 User unknown\r\n"
        "250 2.1.5 Recipient ok\r\n"
        "354 End data with <CR><LF>.<CR><LF>\r\n"
        "250 2.0.0 Ok: queued as 1234\r\n"
        "250 2.1.0 Ok\r\n"
        "250 2.1.5 Recipient ok\r\n"
        "250 2.0.0 Ok\r\n"
        "250 2.0.0 Ok\r\n"
        "221 2.0.0 " HOST " Bye\r\n";

static const char pipelined_log[] =
        "connect|helo:p.example|mail:a@example.org|rcpt:x@example.test|"
        "rcpt:bad@example.test|rcpt:y@example.test|data|end|txn:done|"
        "mail:b@example.org|rcpt:z@example.test|txn:reset|closed|";

/* The whole session in one write, answered in order; synchronous and
 * asynchronous policies give the same bytes. */
static void
test_pipelining(bool async)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;

	settings(&set);
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	F.async = async;
	client_send(&c, pipelined);
	CHECK(client_wait_eof(&c));
	CHECK_STR(client_take(&c), pipelined_replies);
	WAIT(F.closed == 1, LONG_WAIT);
	CHECK_STR(text_str(&F.log), pipelined_log);
	CHECK_STR(text_str(&F.content), "From: a\r\n\r\nbody\r\n");
	client_close(&c);
	server_stop(&srv);
}

/* ESMTP parameters: DSN ones only when DSN is offered, UTF-8 recipients
 * only after MAIL ... SMTPUTF8; the transaction keeps what was given. A
 * policy 421 closes the session. */
static void
test_params(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;
	uint16_t port;

	settings(&set);
	set.extensions |= MC_SMTP_EXT_DSN;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	client_send(&c, "EHLO x\r\n"
	                "MAIL FROM:<a@example.org> RET=HDRS ENVID=q+2B1 "
	                "BODY=7BIT\r\n"
	                "RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE "
	                "ORCPT=rfc822;b@example.test\r\n"
	                "RCPT TO:<\xc3\xbc@example.test>\r\n"
	                "DATA\r\n");
	CHECK(client_wait(&c, "354 "));
	CHECK(text_has(&c.in, "250 DSN\r\n"));
	CHECK(text_has(&c.in, "250 2.1.0 Ok\r\n250 2.1.5 Recipient ok\r\n"
	                      "553 5.6.7 Non-ASCII address requires "
	                      "SMTPUTF8\r\n354 "));
	CHECK_STR(F.dsn, "ret=2 envid=q+2B1 body=1 utf8=0 n=1 notify=6 "
	                 "orcpt=rfc822;b@example.test domain=example.test");
	client_close(&c);
	server_stop(&srv);

	settings(&set);
	port = server_start(&srv, &set, &fake_policy);
	client_connect(&c, port, 0);
	client_send(&c, "EHLO x\r\n"
	                "MAIL FROM:<a@example.org> RET=FULL\r\n"
	                "MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n"
	                "MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8 "
	                "BODY=8BITMIME\r\n"
	                "RCPT TO:<c@example.test> NOTIFY=NEVER\r\n"
	                "RCPT TO:<\xc3\xbc@example.test>\r\n"
	                "RCPT TO:<Postmaster>\r\n"
	                "DATA\r\n");
	CHECK(client_wait(&c, "354 "));
	CHECK(!text_has(&c.in, "250 DSN"));
	CHECK(text_has(&c.in, "555 5.5.4 DSN not supported\r\n"
	                      "555 5.5.4 BODY=BINARYMIME not supported\r\n"
	                      "250 2.1.0 Ok\r\n"
	                      "555 5.5.4 DSN not supported\r\n"
	                      "250 2.1.5 Recipient ok\r\n"
	                      "250 2.1.5 Recipient ok\r\n354 "));
	CHECK(strstr(F.dsn, "body=2 utf8=1 n=2 notify=0") != NULL);
	CHECK(text_has(&F.log, "rcpt:Postmaster|"));
	client_close(&c);
	/* The policy ends a session with 421. */
	client_connect(&c, port, 0);
	client_send(&c, "EHLO x\r\nMAIL FROM:<a@example.org>\r\n"
	                "RCPT TO:<close@example.test>\r\nNOOP\r\n");
	CHECK(client_wait_eof(&c));
	CHECK(text_has(&c.in, "250 2.1.0 Ok\r\n421 4.7.0 Too busy, "
	                      "closing\r\n"));
	CHECK(!text_has(&c.in, "250 2.0.0 Ok"));
	client_close(&c);
	server_stop(&srv);
}

static void
test_sequencing(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;

	settings(&set);
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	client_send(&c, "MAIL FROM:<a@example.org>\r\n"
	                "RCPT TO:<b@example.test>\r\n"
	                "DATA\r\n"
	                "HELO h.example\r\n"
	                "MAIL FROM:<a@example.org> SIZE=10\r\n"
	                "MAIL FROM:<a@example.org>\r\n"
	                "MAIL FROM:<a@example.org>\r\n"
	                "DATA\r\n"
	                "RCPT TO:<bad@example.test>\r\n"
	                "DATA\r\n"
	                "STARTTLS\r\n"
	                "RSET\r\n"
	                "RCPT TO:<b@example.test>\r\n"
	                "VRFY root\r\n"
	                "EXPN staff\r\n"
	                "HELP\r\n"
	                "BDAT 10 LAST\r\n"
	                "AUTH PLAIN AGB1c2VyAHNlY3JldA==\r\n"
	                "FOO bar\r\n"
	                "MAIL TO:<x@y>\r\n"
	                "LHLO x\r\n"
	                "MAIL FROM:<reject@example.org>\r\n"
	                "RCPT TO:<b@example.test>\r\n"
	                "QUIT\r\n");
	CHECK(client_wait_eof(&c));
	CHECK_STR(client_take(&c),
	          "220 " HOST " ESMTP ready\r\n"
	          "503 5.5.1 Error: send HELO/EHLO first\r\n"
	          "503 5.5.1 Error: need MAIL command\r\n"
	          "503 5.5.1 Error: need MAIL command\r\n"
	          "250 " HOST "\r\n"
	          "555 5.5.4 Parameters need EHLO\r\n"
	          "250 2.1.0 Ok\r\n"
	          "503 5.5.1 Error: nested MAIL command\r\n"
	          "554 5.5.1 Error: no valid recipients\r\n"
	          "550 5.1.1 User unknown\r\n"
	          "554 5.5.1 Error: no valid recipients\r\n"
	          "454 4.7.0 TLS not available\r\n"
	          "250 2.0.0 Ok\r\n"
	          "503 5.5.1 Error: need MAIL command\r\n"
	          "252 2.1.5 Cannot VRFY user, but will accept message and "
	          "attempt delivery\r\n"
	          "502 5.5.1 Error: command not implemented\r\n"
	          "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP "
	          "QUIT VRFY STARTTLS\r\n"
	          "502 5.5.1 Error: command not implemented\r\n"
	          "502 5.5.1 Error: command not implemented\r\n"
	          "500 5.5.1 Command unrecognized\r\n"
	          "501 5.5.2 Syntax: MAIL FROM:<address>\r\n"
	          "500 5.5.1 Command unrecognized\r\n"
	          "550 5.7.1 Sender refused\r\n"
	          "503 5.5.1 Error: need MAIL command\r\n"
	          "221 2.0.0 " HOST " Bye\r\n");
	WAIT(F.closed == 1, LONG_WAIT);
	CHECK_STR(text_str(&F.log),
	          "connect|helo:h.example|mail:a@example.org|"
	          "rcpt:bad@example.test|txn:reset|mail:reject@example.org|"
	          "closed|");
	client_close(&c);

	/* STARTTLS without a TLS context. */
	client_connect(&c, mc_listener_port(srv.listener), 0);
	client_send(&c, "EHLO x\r\nSTARTTLS\r\nQUIT\r\n");
	CHECK(client_wait_eof(&c));
	CHECK(text_has(&c.in, "\r\n454 4.7.0 TLS not available\r\n221 "));
	client_close(&c);
	server_stop(&srv);
}

static void
test_size(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;
	char *big = mc_malloc(12000);

	settings(&set);
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	client_send(&c, "EHLO x\r\nMAIL FROM:<a@example.org> SIZE=10001\r\n");
	CHECK(client_wait(&c, "552 "));
	CHECK(text_has(&c.in, "\r\n552 5.3.4 Message size exceeds fixed "
	                      "maximum message size\r\n"));
	client_take(&c);
	/* Declared small, sent big: 552 after the end of data, and the
	 * session goes on. */
	memset(big, 'a', 11000);
	memcpy(big + 11000, "\r\n.\r\n", 6);
	client_send(&c, "MAIL FROM:<a@example.org> SIZE=100\r\n"
	                "RCPT TO:<b@example.test>\r\nDATA\r\n");
	CHECK(client_wait(&c, "354 "));
	client_send(&c, big);
	CHECK(client_wait(&c, "552 "));
	CHECK_STR(client_take(&c), "250 2.1.0 Ok\r\n250 2.1.5 Recipient ok\r\n"
	                           "354 End data with <CR><LF>.<CR><LF>\r\n"
	                           "552 5.3.4 Message size exceeds fixed "
	                           "maximum message size\r\n");
	CHECK(F.content.len <= 10000);
	CHECK(text_has(&F.log, "data|txn:too_big|"));
	CHECK(!text_has(&F.log, "end|"));
	client_send(&c, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>"
	                "\r\nDATA\r\n");
	CHECK(client_wait(&c, "354 "));
	client_send(&c, "small\r\n.\r\nQUIT\r\n");
	CHECK(client_wait_eof(&c));
	CHECK(text_has(&c.in, "250 2.0.0 Ok: queued as 1234\r\n221 "));
	free(big);
	client_close(&c);
	server_stop(&srv);
}

static void
test_recipient_limit(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;

	settings(&set);
	set.max_recipients = 2;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	client_send(&c, "EHLO x\r\nMAIL FROM:<a@example.org>\r\n"
	                "RCPT TO:<r1@example.test>\r\n"
	                "RCPT TO:<bad@example.test>\r\n"
	                "RCPT TO:<r2@example.test>\r\n"
	                "RCPT TO:<r3@example.test>\r\nQUIT\r\n");
	CHECK(client_wait_eof(&c));
	CHECK(text_has(&c.in, "250 2.1.5 Recipient ok\r\n"
	                      "550 5.1.1 User unknown\r\n"
	                      "250 2.1.5 Recipient ok\r\n"
	                      "452 4.5.3 Error: too many recipients\r\n221 "));
	CHECK(!text_has(&F.log, "r3@"));
	client_close(&c);
	server_stop(&srv);
}

static void
test_timeouts(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;
	uint64_t start;

	/* Waiting for a command. */
	settings(&set);
	set.timeouts.command_ms = 150;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	start = uv_now(&loop);
	CHECK(client_wait_eof(&c));
	CHECK(uv_now(&loop) - start >= 140);
	CHECK_STR(client_take(&c), "220 " HOST " ESMTP ready\r\n"
	                           "421 4.4.2 " HOST " Error: timeout "
	                           "exceeded\r\n");
	client_close(&c);
	server_stop(&srv);

	/* In DATA: its own block timeout; the transaction is closed. */
	settings(&set);
	set.timeouts.command_ms = 10000;
	set.timeouts.data_block_ms = 150;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	client_send(&c, "EHLO x\r\nMAIL FROM:<a@example.org>\r\n"
	                "RCPT TO:<b@example.test>\r\nDATA\r\npart");
	CHECK(client_wait_eof(&c));
	CHECK(text_has(&c.in,
	               "354 End data with <CR><LF>.<CR><LF>\r\n"
	               "421 4.4.2 " HOST " Error: timeout exceeded\r\n"));
	WAIT(F.closed == 1, LONG_WAIT);
	CHECK(text_has(&F.log, "data|txn:closed|closed|"));
	CHECK_STR(text_str(&F.content), "part");
	client_close(&c);
	server_stop(&srv);

	/* The policy does not answer in time: 421, and its late answer is
	 * only bookkeeping. */
	settings(&set);
	set.timeouts.command_ms = 150;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	client_send(&c, "EHLO x\r\nMAIL FROM:<a@example.org>\r\n");
	CHECK(client_wait(&c, "250 2.1.0"));
	F.hold = true;
	client_send(&c, "RCPT TO:<b@example.test>\r\n");
	CHECK(client_wait_eof(&c));
	CHECK(text_has(&c.in, "421 4.3.0 " HOST " Local processing "
	                      "timeout\r\n"));
	CHECK(F.closed == 0 && F.npend == 1);
	fake_flush();
	CHECK(F.closed == 0); /* from the loop, not inside the reply */
	WAIT(F.closed == 1, LONG_WAIT);
	CHECK(F.closed == 1);
	CHECK(text_has(&F.log, "rcpt:b@example.test|txn:closed|closed|"));
	client_close(&c);
	server_stop(&srv);

	/* The session deadline. */
	settings(&set);
	set.deadline_ms = 200;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	start = uv_now(&loop);
	while (!c.eof && uv_now(&loop) - start < 3000) {
		raw_send(&c, "NOOP\r\n", 6, 100);
		WAIT((client_pump(&c), c.eof), 30);
	}
	CHECK(text_has(&c.in, "421 4.4.2 " HOST " Error: session time "
	                      "limit\r\n"));
	client_close(&c);
	server_stop(&srv);
}

static void
test_bad_commands(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;
	char line[3000];

	settings(&set);
	set.max_bad_commands = 4;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	memset(line, 'x', sizeof(line) - 3);
	memcpy(line + sizeof(line) - 3, "\r\n", 3);
	client_send(&c, "junk\r\nMAIL\r\n");
	client_send(&c, line);
	client_send(&c, "EHLO x\r\nNOOP\r\nJUNK\r\nNOOP\r\n");
	CHECK(client_wait_eof(&c));
	CHECK_STR(client_take(&c),
	          "220 " HOST " ESMTP ready\r\n"
	          "500 5.5.1 Command unrecognized\r\n"
	          "501 5.5.2 Syntax: MAIL FROM:<address>\r\n"
	          "500 5.5.6 Line too long\r\n"
	          "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 10000\r\n"
	          "250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n"
	          "250 2.0.0 Ok\r\n"
	          "500 5.5.1 Command unrecognized\r\n"
	          "421 4.7.0 " HOST " Error: too many errors\r\n");
	client_close(&c);
	server_stop(&srv);
}

static void
test_starttls(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;

	settings(&set);
	set.tls = server_tls;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	client_send(&c, "EHLO before.example\r\n");
	CHECK(client_wait(&c, "250 STARTTLS"));
	CHECK(text_has(&c.in, "250-STARTTLS\r\n") ||
	      text_has(&c.in, "250 STARTTLS\r\n"));
	client_take(&c);
	/* A man in the middle appends commands to STARTTLS. */
	client_send(&c, "STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n"
	                "RCPT TO:<evil@example.test>\r\n");
	CHECK(client_wait(&c, "\r\n"));
	CHECK_STR(client_take(&c), "220 2.0.0 Ready to start TLS\r\n");
	CHECK(client_handshake(&c));
	/* The injected MAIL was never executed: RCPT is out of sequence,
	 * and EHLO is needed again (RFC 3207). */
	client_send(&c, "RCPT TO:<b@example.test>\r\nMAIL FROM:<a@x.example>"
	                "\r\nEHLO after.example\r\n");
	CHECK(client_wait(&c, "250 ENH"));
	CHECK_STR(client_take(&c), "503 5.5.1 Error: need MAIL command\r\n"
	                           "503 5.5.1 Error: send HELO/EHLO first\r\n"
	                           "250-" HOST "\r\n250-PIPELINING\r\n"
	                           "250-SIZE 10000\r\n250-8BITMIME\r\n"
	                           "250-SMTPUTF8\r\n"
	                           "250 ENHANCEDSTATUSCODES\r\n");
	client_send(&c, "STARTTLS\r\nMAIL FROM:<a@example.org>\r\n"
	                "RCPT TO:<b@example.test>\r\nDATA\r\n");
	CHECK(client_wait(&c, "354 "));
	CHECK_STR(client_take(&c), "503 5.5.1 Error: TLS already active\r\n"
	                           "250 2.1.0 Ok\r\n250 2.1.5 Recipient ok\r\n"
	                           "354 End data with <CR><LF>.<CR><LF>\r\n");
	CHECK_STR(F.info, "ESMTPS after.example 127.0.0.1 TLSv1.3 "
	                  "a@example.org");
	client_send(&c, "over tls\r\n.\r\nQUIT\r\n");
	CHECK(client_wait(&c, "221 "));
	CHECK_STR(text_str(&F.content), "over tls\r\n");
	CHECK(!text_has(&F.log, "evil"));
	client_close(&c);
	server_stop(&srv);

	/* Implicit TLS: the banner comes over TLS. */
	settings(&set);
	set.tls = server_tls;
	set.implicit_tls = true;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	CHECK(client_handshake(&c));
	CHECK(client_wait(&c, "220 "));
	client_send(&c, "EHLO x\r\n");
	CHECK(client_wait(&c, "250 ENH"));
	CHECK(!text_has(&c.in, "STARTTLS"));
	client_send(&c, "STARTTLS\r\nQUIT\r\n");
	CHECK(client_wait(&c, "221 "));
	CHECK(text_has(&c.in, "503 5.5.1 Error: TLS already active\r\n"));
	client_close(&c);
	server_stop(&srv);
}

static void
test_lmtp(bool async)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;

	settings(&set);
	set.mode = MC_SMTP_MODE_LMTP;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	F.async = async;
	CHECK(client_wait(&c, "\r\n"));
	CHECK_STR(client_take(&c), "220 " HOST " LMTP ready\r\n");
	client_send(&c, "EHLO x\r\nHELO x\r\nLHLO relay.example\r\n"
	                "MAIL FROM:<a@example.org>\r\n"
	                "RCPT TO:<one@example.test>\r\n"
	                "RCPT TO:<bad@example.test>\r\n"
	                "RCPT TO:<full@example.test>\r\n"
	                "DATA\r\n");
	CHECK(client_wait(&c, "354 "));
	CHECK_STR(client_take(&c),
	          "500 5.5.1 Command unrecognized\r\n"
	          "500 5.5.1 Command unrecognized\r\n"
	          "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 10000\r\n"
	          "250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n"
	          "250 2.1.0 Ok\r\n"
	          "250 2.1.5 Recipient ok\r\n"
	          "550 5.1.1 User unknown\r\n"
	          "250 2.1.5 Recipient ok\r\n"
	          "354 End data with <CR><LF>.<CR><LF>\r\n");
	CHECK_STR(F.info, "LMTP relay.example 127.0.0.1 - a@example.org");
	client_send(&c, "hello\r\n.\r\n");
	CHECK(client_wait(&c, "452 "));
	CHECK_STR(client_take(&c), "250 2.0.0 Delivered\r\n"
	                           "452 4.2.2 Mailbox full\r\n");
	/* No valid recipient: 503 in LMTP (RFC 2033 4.2). */
	client_send(&c, "MAIL FROM:<a@example.org>\r\nRCPT TO:<bad@x.test>\r\n"
	                "DATA\r\nQUIT\r\n");
	CHECK(client_wait_eof(&c));
	CHECK_STR(client_take(&c), "250 2.1.0 Ok\r\n550 5.1.1 User unknown\r\n"
	                           "503 5.5.1 Error: no valid recipients\r\n"
	                           "221 2.0.0 " HOST " Bye\r\n");
	WAIT(F.closed == 1, LONG_WAIT);
	CHECK(text_has(&F.log, "end|txn:done|"));
	client_close(&c);
	server_stop(&srv);
}

/* <LF>.<LF>, <LF>.<CR><LF> and <CR><LF>.<LF> do not end the data: the
 * "MAIL" after them is content, not a command. */
static void
test_smuggling(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;

	settings(&set);
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	client_send(&c, "EHLO x\r\nMAIL FROM:<a@example.org>\r\n"
	                "RCPT TO:<b@example.test>\r\nDATA\r\n");
	CHECK(client_wait(&c, "354 "));
	client_take(&c);
	client_send(&c, "one\n.\nMAIL FROM:<s1@evil.example>\r\n"
	                "two\r\n.\nMAIL FROM:<s2@evil.example>\r\n"
	                "three\n.\r\nMAIL FROM:<s3@evil.example>\r\n"
	                ".\r\nQUIT\r\n");
	CHECK(client_wait_eof(&c));
	CHECK_STR(client_take(&c), "250 2.0.0 Ok: queued as 1234\r\n"
	                           "221 2.0.0 " HOST " Bye\r\n");
	CHECK_STR(text_str(&F.content),
	          "one\r\n\r\nMAIL FROM:<s1@evil.example>\r\n"
	          "two\r\n\r\nMAIL FROM:<s2@evil.example>\r\n"
	          "three\r\n\r\nMAIL FROM:<s3@evil.example>\r\n");
	CHECK(!text_has(&F.log, "evil"));
	client_close(&c);
	server_stop(&srv);
}

/* A client that pipelines without reading: the server must stop reading
 * rather than buffer replies beyond output_max (which would fail the
 * connection), and every reply must arrive once the client reads. */
static void
test_backpressure(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;
	size_t n = BACKPRESSURE_COMMANDS, got = 0;
	char *buf = mc_malloc(n * 6);
	const char *p;

	settings(&set);
	set.conn.output_max = 64 * 1024;
	set.conn.output_high = 16 * 1024;
	client_connect(&c, server_start(&srv, &set, &fake_policy), 4096);
	for (size_t i = 0; i < n; i++)
		memcpy(buf + i * 6, "HELP\r\n", 6);
	/* ~75 reply bytes per 6 command bytes, far more than the socket
	 * buffers and output_max hold: without back-pressure the server
	 * would fail the connection. */
	uv_timer_start(&tick, tick_cb, 2, 2);
	for (size_t off = 0; off < n * 6;) {
		ssize_t r = send(c.fd, buf + off, n * 6 - off, MSG_NOSIGNAL);

		if (r > 0)
			off += (size_t)r;
		uv_run(&loop, UV_RUN_ONCE);
		if (r <= 0 && off < n * 6)
			client_pump(&c); /* the kernel is full: read */
	}
	uv_timer_stop(&tick);
	WAIT(false, 500);
	CHECK(mc_smtp_server_sessions(srv.smtp) == 1);
	client_send(&c, "QUIT\r\n");
	CHECK(client_wait_eof(&c));
	for (p = text_str(&c.in); (p = strstr(p, "\r\n214 2.0.0")) != NULL; p++)
		got++;
	CHECK(got == n);
	CHECK(text_has(&c.in, "221 2.0.0 " HOST " Bye\r\n"));
	free(buf);
	client_close(&c);
	server_stop(&srv);
}

static void
test_lost_connections(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;

	/* Mid DATA: the policy hears of it, nothing leaks. */
	settings(&set);
	client_connect(&c, server_start(&srv, &set, &fake_policy), 0);
	client_send(&c, "EHLO x\r\nMAIL FROM:<a@example.org>\r\n"
	                "RCPT TO:<b@example.test>\r\nDATA\r\n");
	CHECK(client_wait(&c, "354 "));
	client_send(&c, "half a mess");
	WAIT(F.content.len == 11, LONG_WAIT);
	client_abort(&c);
	WAIT(F.closed == 1, LONG_WAIT);
	CHECK(text_has(&F.log, "data|txn:closed|closed|"));
	CHECK(mc_smtp_server_sessions(srv.smtp) == 0);

	/* During an outstanding data_end: closed comes after the answer,
	 * and the transaction counts as done (the message is durable). */
	client_connect(&c, mc_listener_port(srv.listener), 0);
	client_send(&c, "EHLO x\r\nMAIL FROM:<a@example.org>\r\n"
	                "RCPT TO:<b@example.test>\r\nDATA\r\n");
	CHECK(client_wait(&c, "354 "));
	F.hold = true;
	client_send(&c, "x\r\n.\r\n");
	WAIT(F.npend == 1, LONG_WAIT);
	client_abort(&c);
	WAIT(false, 300); /* nothing happens: the request is outstanding */
	CHECK(mc_smtp_server_sessions(srv.smtp) == 1);
	CHECK(F.closed == 1);
	/* Paused while the policy works, the session learns of the lost
	 * client only after the answer. */
	fake_flush();
	WAIT(F.closed == 2, LONG_WAIT);
	CHECK(F.closed == 2);
	CHECK(text_has(&F.log, "end|txn:done|closed|"));
	server_stop(&srv);
}

static void
test_refused(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client c;
	uint16_t port;

	settings(&set);
	port = server_start(&srv, &set, &fake_policy);
	F.connect_code = 554;
	client_connect(&c, port, 0);
	client_send(&c, "EHLO x\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n");
	CHECK(client_wait_eof(&c));
	CHECK_STR(client_take(&c),
	          "554 " HOST " go away\r\n"
	          "503 5.5.1 Error: service refused, please QUIT\r\n"
	          "503 5.5.1 Error: service refused, please QUIT\r\n"
	          "221 2.0.0 " HOST " Bye\r\n");
	client_close(&c);
	F.connect_code = 421;
	F.async = true;
	client_connect(&c, port, 0);
	CHECK(client_wait_eof(&c));
	CHECK_STR(client_take(&c), "421 " HOST " go away\r\n");
	client_close(&c);
	WAIT(F.closed == 2, LONG_WAIT);
	CHECK(!text_has(&F.log, "helo"));
	server_stop(&srv);
}

static void
test_auth(void)
{
	struct mc_smtp_server_settings set;
	struct mc_smtp_policy policy = fake_policy;
	struct server srv;
	struct client c;

	settings(&set);
	set.auth_mechanisms = "PLAIN LOGIN";
	set.tls = server_tls;
	policy.auth = p_auth;
	client_connect(&c, server_start(&srv, &set, &policy), 0);
	client_send(&c, "EHLO x\r\nAUTH PLAIN AGB1c2VyAHNlY3JldA==\r\n");
	CHECK(client_wait(&c, "530 "));
	CHECK(!text_has(&c.in, "AUTH"));
	CHECK(text_has(&c.in, "530 5.7.0 Must issue a STARTTLS command "
	                      "first\r\n"));
	client_take(&c);
	client_send(&c, "STARTTLS\r\n");
	CHECK(client_wait(&c, "220 "));
	client_take(&c);
	CHECK(client_handshake(&c));
	client_send(&c, "EHLO x\r\nAUTH LOGIN\r\ndXNlcg==\r\nd3Jvbmc=\r\n"
	                "AUTH LOGIN\r\n*\r\n"
	                "AUTH PLAIN AGB1c2VyAHNlY3JldA==\r\n"
	                "AUTH PLAIN AGB1c2VyAHNlY3JldA==\r\nQUIT\r\n");
	CHECK(client_wait(&c, "221 "));
	CHECK_STR(client_take(&c),
	          "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 10000\r\n"
	          "250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n"
	          "250 AUTH PLAIN LOGIN\r\n"
	          "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
	          "535 5.7.8 Authentication failed\r\n"
	          "334 VXNlcm5hbWU6\r\n501 5.0.0 Authentication cancelled\r\n"
	          "235 2.7.0 Authentication successful\r\n"
	          "503 5.5.1 Error: already authenticated\r\n"
	          "221 2.0.0 " HOST " Bye\r\n");
	client_close(&c);
	server_stop(&srv);
}

/* Shutdown with one idle session and one waiting for its policy. */
static void
test_shutdown(void)
{
	struct mc_smtp_server_settings set;
	struct server srv;
	struct client idle, busy;

	settings(&set);
	client_connect(&idle, server_start(&srv, &set, &fake_policy), 0);
	client_connect(&busy, mc_listener_port(srv.listener), 0);
	CHECK(client_wait(&idle, "220 "));
	CHECK(client_wait(&busy, "220 "));
	client_send(&busy, "EHLO x\r\nMAIL FROM:<a@example.org>\r\n");
	CHECK(client_wait(&busy, "250 2.1.0"));
	F.hold = true;
	client_send(&busy, "RCPT TO:<b@example.test>\r\n");
	WAIT(F.npend == 1, LONG_WAIT);
	mc_listener_close(srv.listener, listener_closed);
	mc_smtp_server_close(srv.smtp, smtp_closed, &srv);
	CHECK(client_wait_eof(&idle));
	CHECK(text_has(&idle.in, "421 4.3.2 " HOST " Service shutting "
	                         "down\r\n"));
	CHECK(!busy.eof && !srv.smtp_closed);
	fake_flush();
	CHECK(client_wait_eof(&busy));
	CHECK(text_has(&busy.in, "250 2.1.5 Recipient ok\r\n421 4.3.2 "));
	/* The server waits (briefly) for the clients' EOF. */
	client_close(&idle);
	client_close(&busy);
	WAIT(srv.smtp_closed && srv.listener_closed, LONG_WAIT);
	CHECK(srv.smtp_closed);
	CHECK(F.closed == 2);
}

static void
test_settings(void)
{
	struct mc_smtp_server_settings set;
	struct mc_smtp_server *server;
	const char *error;

	mc_smtp_server_settings_init(&set);
	CHECK(mc_smtp_server_new(&loop, &set, NULL, NULL, &server, &error) < 0);
	set.hostname = "bad host";
	CHECK(mc_smtp_server_new(&loop, &set, NULL, NULL, &server, &error) < 0);
	set.hostname = HOST;
	set.implicit_tls = true;
	CHECK(mc_smtp_server_new(&loop, &set, NULL, NULL, &server, &error) < 0);
	CHECK(strstr(error, "implicit TLS") != NULL);
}

static void
make_contexts(void)
{
	const char *error;

	if (mc_tls_self_signed(HOST, 30, &srv_cert, &srv_key, &error) < 0 ||
	    mc_tls_ctx_new(MC_TLS_SERVER,
	                   &(struct mc_tls_settings){.cert_pem = srv_cert,
	                                             .key_pem = srv_key},
	                   &server_tls, &error) < 0 ||
	    mc_tls_ctx_new(MC_TLS_CLIENT,
	                   &(struct mc_tls_settings){.ca_pem = srv_cert},
	                   &client_tls, &error) < 0) {
		fprintf(stderr, "TLS setup: %s\n", error);
		exit(1);
	}
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	make_contexts();
	uv_loop_init(&loop);
	uv_timer_init(&loop, &tick);
	uv_timer_init(&loop, &F.timer);

	test_settings();
	test_transaction();
	test_pipelining(false);
	test_pipelining(true);
	test_params();
	test_sequencing();
	test_size();
	test_recipient_limit();
	test_timeouts();
	test_bad_commands();
	test_starttls();
	test_lmtp(false);
	test_lmtp(true);
	test_smuggling();
	test_backpressure();
	test_lost_connections();
	test_refused();
	test_auth();
	test_shutdown();

	fake_reset();
	uv_close((uv_handle_t *)&tick, NULL);
	uv_close((uv_handle_t *)&F.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0); /* no handle left behind */
	free(taken);
	mc_tls_ctx_free(&server_tls);
	mc_tls_ctx_free(&client_tls);
	mc_wipe(srv_key, strlen(srv_key));
	free(srv_key);
	free(srv_cert);
	return mc_test_done();
}
