/* One SMTP/LMTP client session (see smtp_client.h): this file owns struct
 * mc_smtp_client (defined in smtp_client_private.h), its state machine
 * (connecting, greeting, EHLO/HELO, STARTTLS and handshake, envelope,
 * DATA, content, final replies, QUIT), the per-recipient outcomes and the
 * session's lifetime: it frees itself once the result was reported, every
 * connection it opened is closed and no file read is in flight. The
 * content pump is in smtp_client_content.c, argument checks, copies and
 * connecting by name in smtp_client_setup.c, AUTH in smtp_client_auth.c,
 * the wire details (replies, capabilities, stuffing) in
 * smtp_client_wire.c. */
#include "smtp_client_private.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conn.h"
#include "error.h"
#include "log.h"
#include "mem.h"
#include "pool.h"
#include "tls.h"

/* Result texts (one line) and command lines. */
#define TEXT_MAX 512
#define CMD_MAX 1200
/* Commands in flight when pipelining (RFC 2920 leaves it to the client;
 * replies are read as they come, so this only bounds our own buffer). */
#define PIPELINE_WINDOW 100

static const char *const state_names[] = {
        "connecting", "greeting", "ehlo",     "helo", "starttls",
        "handshake",  "auth",     "envelope", "data", "content",
        "dot",        "idle",     "rset",     "quit",
        "closed",
};

/* For "timed out <what>" and "connection lost <what>". */
static const char *const state_what[] = {
        "while connecting",
        "waiting for the greeting",
        "waiting for the reply to EHLO",
        "waiting for the reply to HELO",
        "waiting for the reply to STARTTLS",
        "during the TLS handshake",
        "waiting for the reply to AUTH",
        "waiting for the reply to MAIL FROM or RCPT TO",
        "waiting for the reply to DATA",
        "while sending the message",
        "waiting for the reply to the end of DATA",
        "while idle",
        "waiting for the reply to RSET",
        "after QUIT",
        "after the session",
};

static void on_read(struct mc_conn *conn, void *ctx, const char *data,
                    size_t len);
static void on_event(struct mc_conn *conn, void *ctx, enum mc_conn_event ev,
                     const char *error);
static void quit(struct mc_smtp_client *c);
static void end_all(struct mc_smtp_client *c, enum mc_smtp_client_status status,
                    enum mc_smtp_client_outcome outcome, const char *enhanced,
                    const char *text, bool polite);

/* ---- State, output, teardown ------------------------------------------- */

static uint64_t
state_timeout(const struct mc_smtp_client *c, enum smtp_client_state st)
{
	switch (st) {
	case SC_CONNECTING:
		return c->to.connect;
	case SC_GREETING:
		return c->to.greeting;
	case SC_HANDSHAKE:
		return c->to.tls;
	case SC_ENVELOPE:
		return c->to.mail;
	case SC_DATA:
		return c->to.data_init;
	case SC_CONTENT:
		return c->to.data_block;
	case SC_DOT:
		return c->to.data_end;
	case SC_QUIT:
		return c->to.quit;
	case SC_IDLE:
		return c->to.idle;
	default:
		return c->to.command;
	}
}

static void
set_state(struct mc_smtp_client *c, enum smtp_client_state st)
{
	mc_debug("smtp_client id=%s remote=%s state=%s->%s", c->log_id,
	         c->remote, state_names[c->state], state_names[st]);
	c->state = st;
	if (c->conn != NULL && st != SC_CLOSED)
		mc_conn_set_idle_timeout(c->conn, state_timeout(c, st));
}

int
mc_smtp_client_send_line(struct mc_smtp_client *c, const char **error_r,
                         const char *fmt, ...)
{
	char line[CMD_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		*error_r = "command line too long"; /* checked at start */
		return -1;
	}
	mc_debug("smtp_client id=%s remote=%s send=\"%.*s\"", c->log_id,
	         c->remote, n - 2, line);
	return mc_conn_write(c->conn, line, (size_t)n, error_r);
}

static void on_closed(void *ctx);

static void
close_conn(struct mc_smtp_client *c, bool reset)
{
	struct mc_conn *conn = c->conn;

	if (conn == NULL)
		return;
	set_state(c, SC_CLOSED);
	c->conn = NULL;
	if (reset)
		mc_conn_abort(conn, on_closed);
	else
		mc_conn_close(conn, on_closed);
}

static void
client_free(struct mc_smtp_client *c)
{
	mc_smtp_client_auth_wipe(c);
	mc_smtp_client_reply_fini(&c->parser);
	mc_pool_free(&c->mpool);
	free(c->rbuf);
	free(c->wbuf);
	mc_pool_free(&c->pool);
	free(c);
}

static void
maybe_free(struct mc_smtp_client *c)
{
	if (c->reported && c->conns_open == 0 && !c->fs_pending)
		client_free(c);
}

static void
maybe_report(struct mc_smtp_client *c)
{
	struct mc_smtp_client_result r;

	if (!c->final || c->reported || c->fs_pending)
		return;
	c->reported = true;
	memset(&r, 0, sizeof(r));
	r.status = c->status;
	r.error = c->error;
	r.rcpts = c->results;
	r.rcpt_count = c->rcpt_count;
	for (size_t i = 0; i < c->rcpt_count; i++) {
		if (c->results[i].outcome == MC_SMTP_CLIENT_DELIVERED)
			r.delivered++;
		else if (c->results[i].outcome == MC_SMTP_CLIENT_TEMPFAIL)
			r.tempfail++;
		else
			r.permfail++;
	}
	r.remote = c->remote;
	r.caps = &c->caps;
	r.tls_version = c->tls_version;
	r.tls_cipher = c->tls_cipher;
	r.tls_verified = c->tls_verified;
	r.auth_mech = c->auth_mech;
	r.ip = c->set.ip != NULL ? c->set.ip : "";
	r.port = c->set.ip != NULL ? c->set.port : 0;
	r.host = c->host;
	r.connect_errors = c->connect_errors;
	r.reusable = c->reusable;
	r.reused = c->messages > 1;
	mc_info("smtp_client id=%s remote=%s ip=%s status=%s delivered=%zu "
	        "tempfail=%zu permfail=%zu tls=%s auth=%s error=\"%s\"",
	        c->log_id, c->remote, r.ip,
	        mc_smtp_client_status_name(r.status), r.delivered, r.tempfail,
	        r.permfail, c->tls_version != NULL ? c->tls_version : "no",
	        c->auth_mech != NULL ? c->auth_mech : "no",
	        c->error != NULL ? c->error : "");
	c->done(&r, c->ctx);
	if (c->state == SC_IDLE && !c->held) /* not kept: as without reuse */
		quit(c);
}

static void
on_closed(void *ctx)
{
	struct mc_smtp_client *c = ctx;

	c->conns_open--;
	if (c->aborted && !c->final)
		end_all(c, MC_SMTP_CLIENT_ERR_LOCAL, MC_SMTP_CLIENT_TEMPFAIL,
		        "4.3.0", "delivery aborted", false);
	maybe_report(c);
	maybe_free(c);
}

/* ---- Outcomes ------------------------------------------------------------ */

static void
decide(struct mc_smtp_client *c, size_t i, enum mc_smtp_client_outcome outcome,
       unsigned code, const char *enhanced, const char *text,
       const char *command)
{
	struct mc_smtp_client_rcpt_result *r = &c->results[i];

	c->rstate[i] = R_DECIDED;
	r->outcome = outcome;
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	r->text = mc_pool_strdup(c->mpool, text);
	r->command = command;
	/* Debug: the caller logs each recipient's result with its reply
	 * (the relay's "delivery ... result=" line); info has the summary. */
	mc_debug("smtp_client id=%s remote=%s rcpt=<%s> outcome=%s code=%u "
	        "enhanced=%s command=\"%s\" text=\"%s\"",
	        c->log_id, c->remote, c->rcpts[i].address,
	        mc_smtp_client_outcome_name(outcome), code, r->enhanced,
	        command, r->text);
}

static void
decide_reply(struct mc_smtp_client *c, size_t i,
             const struct mc_smtp_client_reply *reply, const char *command)
{
	char text[TEXT_MAX], enhanced[MC_SMTP_CLIENT_ENHANCED_SIZE];
	unsigned cls = reply->code / 100;

	mc_smtp_client_reply_oneline(reply, text, sizeof(text));
	if (reply->enhanced[0] != '\0')
		snprintf(enhanced, sizeof(enhanced), "%s", reply->enhanced);
	else
		snprintf(enhanced, sizeof(enhanced), "%c.0.0",
		         (char)('0' + cls % 10));
	decide(c, i,
	       cls == 2   ? MC_SMTP_CLIENT_DELIVERED
	       : cls == 4 ? MC_SMTP_CLIENT_TEMPFAIL
	                  : MC_SMTP_CLIENT_PERMFAIL,
	       reply->code, enhanced, text, command);
}

/* Say QUIT and close after its reply (or on any trouble with it). */
static void
quit(struct mc_smtp_client *c)
{
	const char *error;

	if (c->conn == NULL)
		return;
	if (mc_smtp_client_send_line(c, &error, "QUIT\r\n") < 0) {
		close_conn(c, true);
		return;
	}
	set_state(c, SC_QUIT);
}

/* Every recipient the server has not decided gets outcome with the
 * client's own enhanced code and text; the session ends, politely (QUIT)
 * when the server did nothing wrong. */
static void
end_all(struct mc_smtp_client *c, enum mc_smtp_client_status status,
        enum mc_smtp_client_outcome outcome, const char *enhanced,
        const char *text, bool polite)
{
	if (!c->final) {
		c->status = status;
		c->error = mc_pool_strdup(c->mpool, text);
		for (size_t i = 0; i < c->rcpt_count; i++)
			if (c->rstate[i] != R_DECIDED)
				decide(c, i, outcome, 0, enhanced, c->error,
				       "");
		c->final = true;
	}
	if (polite)
		quit(c);
	else
		close_conn(c, true);
	maybe_report(c);
}

/* The session broke: whatever the server did not decide is retried. */
static void
fail_session(struct mc_smtp_client *c, enum mc_smtp_client_status status,
             const char *enhanced, const char *text)
{
	end_all(c, status, MC_SMTP_CLIENT_TEMPFAIL, enhanced, text, false);
}

static void
protocol_error(struct mc_smtp_client *c, const char *what,
               const struct mc_smtp_client_reply *reply)
{
	char text[TEXT_MAX] = "";

	if (reply != NULL)
		mc_smtp_client_reply_oneline(reply, text, sizeof(text));
	fail_session(c, MC_SMTP_CLIENT_ERR_PROTOCOL, "4.5.0",
	             reply != NULL
	                     ? mc_errorf("protocol error from %s: %s: "
	                                 "%u %s",
	                                 c->remote, what, reply->code, text)
	                     : mc_errorf("protocol error from %s: %s",
	                                 c->remote, what));
}

/* All results are in: report, then QUIT, or keep the connection for
 * the next message when the caller holds it. */
static void
finish(struct mc_smtp_client *c)
{
	c->final = true;
	c->reusable = mc_smtp_client_reusable(c);
	if (c->reusable)
		set_state(c, SC_IDLE);
	else
		quit(c);
	maybe_report(c);
}

/* The server refused the session or the transaction as a whole: every
 * recipient it has not decided gets this reply. The caller says QUIT. */
static void
refuse(struct mc_smtp_client *c, const struct mc_smtp_client_reply *reply,
       const char *command, enum mc_smtp_client_status status)
{
	char text[TEXT_MAX];

	mc_smtp_client_reply_oneline(reply, text, sizeof(text));
	c->status = status;
	c->error = mc_pool_strdup(c->mpool,
	                          mc_errorf("%s refused by %s: %u %s", command,
	                                    c->remote, reply->code, text));
	for (size_t i = 0; i < c->rcpt_count; i++)
		if (c->rstate[i] != R_DECIDED)
			decide_reply(c, i, reply, command);
	c->final = true;
	maybe_report(c);
}

static void
write_failed(struct mc_smtp_client *c, const char *error)
{
	fail_session(c, MC_SMTP_CLIENT_ERR_CLOSED, "4.4.2",
	             mc_errorf("writing to %s: %s", c->remote, error));
}

/* For the other files of the client (smtp_client_private.h). */
void
mc_smtp_client_set_state(struct mc_smtp_client *c, enum smtp_client_state st)
{
	set_state(c, st);
}

void
mc_smtp_client_fail(struct mc_smtp_client *c, enum mc_smtp_client_status status,
                    const char *enhanced, const char *text)
{
	fail_session(c, status, enhanced, text);
}

void
mc_smtp_client_write_failed(struct mc_smtp_client *c, const char *error)
{
	write_failed(c, error);
}

void
mc_smtp_client_settle(struct mc_smtp_client *c)
{
	maybe_report(c);
	maybe_free(c);
}

void
mc_smtp_client_end(struct mc_smtp_client *c, enum mc_smtp_client_status status,
                   enum mc_smtp_client_outcome outcome, const char *enhanced,
                   const char *text, bool polite)
{
	end_all(c, status, outcome, enhanced, text, polite);
}

void
mc_smtp_client_refuse(struct mc_smtp_client *c,
                      const struct mc_smtp_client_reply *reply,
                      const char *command, enum mc_smtp_client_status status)
{
	refuse(c, reply, command, status);
}

void
mc_smtp_client_quit(struct mc_smtp_client *c)
{
	quit(c);
}

void
mc_smtp_client_close_conn(struct mc_smtp_client *c, bool reset)
{
	close_conn(c, reset);
}

void
mc_smtp_client_protocol_error(struct mc_smtp_client *c, const char *what,
                              const struct mc_smtp_client_reply *reply)
{
	protocol_error(c, what, reply);
}

/* ---- Connection and greeting ------------------------------------------- */

static int
session_connect(struct mc_smtp_client *c, const char **error_r)
{
	static const struct mc_conn_callbacks cb = {
	        .read = on_read,
	        .event = on_event,
	};
	struct mc_conn_settings cs = {
	        .idle_timeout_ms = c->to.connect,
	        .deadline_ms = c->to.session,
	};

	c->tls_active = false;
	memset(&c->caps, 0, sizeof(c->caps));
	mc_smtp_client_reply_reset(&c->parser);
	set_state(c, SC_CONNECTING);
	/* By name the first time; a reconnection (TLS fallback) goes to
	 * the address that answered. */
	if (c->set.ip == NULL)
		return mc_smtp_client_mx_start(c, &cb, &cs, error_r);
	if (mc_conn_connect(c->loop, c->set.ip, c->set.port, &cs, &cb, c,
	                    &c->conn, error_r) < 0)
		return -1;
	c->conns_open++;
	return 0;
}

static void
send_hello(struct mc_smtp_client *c, bool helo)
{
	const char *verb = helo                                     ? "HELO"
	                   : c->set.protocol == MC_SMTP_CLIENT_LMTP ? "LHLO"
	                                                            : "EHLO";
	const char *error;

	memset(&c->caps, 0, sizeof(c->caps));
	if (mc_smtp_client_send_line(c, &error, "%s %s\r\n", verb, c->set.helo_name) < 0) {
		write_failed(c, error);
		return;
	}
	set_state(c, helo ? SC_HELO : SC_EHLO);
}

static void on_tls(struct mc_conn *conn, void *ctx, int status,
                   const char *error);

static void
start_tls(struct mc_smtp_client *c)
{
	const char *peer = c->set.tls_peer_name, *error;

	if (peer == NULL)
		peer = c->remote;
	set_state(c, SC_HANDSHAKE);
	/* Nothing the server sent in clear text after its 220 may be read
	 * as if it came over TLS. */
	mc_conn_discard_input(c->conn);
	mc_smtp_client_reply_reset(&c->parser);
	if (mc_conn_start_tls(c->conn, c->set.tls_ctx, peer, on_tls, &error) <
	    0)
		fail_session(c, MC_SMTP_CLIENT_ERR_TLS, "4.7.5",
		             mc_errorf("TLS with %s: %s", c->remote, error));
}

static void
tls_failed(struct mc_smtp_client *c, const char *error)
{
	const char *cerr;

	/* Credentials are never sent in clear text: no fallback then. */
	if (c->tls_mode != MC_SMTP_CLIENT_TLS_OPPORTUNISTIC ||
	    c->auth_user != NULL) {
		fail_session(c, MC_SMTP_CLIENT_ERR_TLS, "4.7.5",
		             mc_errorf("TLS handshake with %s failed: %s",
		                       c->remote, error));
		return;
	}
	mc_warn("smtp_client id=%s remote=%s tls=failed error=\"%s\" "
	        "retrying without TLS",
	        c->log_id, c->remote, error);
	close_conn(c, true);
	c->tls_mode = MC_SMTP_CLIENT_TLS_NONE;
	if (session_connect(c, &cerr) < 0)
		fail_session(c, MC_SMTP_CLIENT_ERR_CONNECT, "4.4.1", cerr);
}

static void
on_tls(struct mc_conn *conn, void *ctx, int status, const char *error)
{
	struct mc_smtp_client *c = ctx;
	const struct mc_tls *tls = mc_conn_tls(conn);
	const char *reason = "";

	if (status < 0) {
		tls_failed(c, error);
		return;
	}
	c->tls_active = true;
	c->tls_version = mc_pool_strdup(c->pool, mc_tls_version(tls));
	c->tls_cipher = mc_pool_strdup(c->pool, mc_tls_cipher(tls));
	c->tls_verified = mc_tls_peer_verified(tls, &reason);
	mc_info("smtp_client id=%s remote=%s tls=%s cipher=%s verified=%s%s%s",
	        c->log_id, c->remote, c->tls_version, c->tls_cipher,
	        c->tls_verified ? "yes" : "no",
	        c->tls_verified ? "" : " reason=",
	        c->tls_verified ? "" : reason);
	if (c->tls_mode == MC_SMTP_CLIENT_TLS_IMPLICIT)
		set_state(c, SC_GREETING);
	else
		send_hello(c, false); /* RFC 3207: forget what came before */
}

/* ---- Envelope ------------------------------------------------------------ */

static bool
offered(const struct mc_smtp_client *c, unsigned ext)
{
	return (c->caps.ext & ext) != 0;
}

static const char *
notify_text(unsigned notify, char *buf, size_t size)
{
	static const char *const names[] = {"NEVER", "SUCCESS", "FAILURE",
	                                    "DELAY"};
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned b = 0; b < 4; b++)
		if (notify & (1u << b))
			n += (size_t)snprintf(buf + n, size - n, "%s%s",
			                      n > 0 ? "," : "", names[b]);
	return buf;
}

static int
send_mail(struct mc_smtp_client *c, const char **error_r)
{
	bool dsn = offered(c, MC_SMTP_CLIENT_EXT_DSN);
	char size[40] = "";

	if (offered(c, MC_SMTP_CLIENT_EXT_SIZE))
		snprintf(size, sizeof(size), " SIZE=%" PRIu64, c->size);
	return mc_smtp_client_send_line(
	        c, error_r, "MAIL FROM:<%s>%s%s%s%s%s%s%s\r\n", c->sender, size,
	        c->flags & MC_SMTP_CLIENT_NEED_8BITMIME ? " BODY=8BITMIME" : "",
	        c->flags & MC_SMTP_CLIENT_NEED_SMTPUTF8 ? " SMTPUTF8" : "",
	        dsn && c->ret != NULL ? " RET=" : "",
	        dsn && c->ret != NULL ? c->ret : "",
	        dsn && c->envid != NULL ? " ENVID=" : "",
	        dsn && c->envid != NULL ? c->envid : "");
}

static int
send_rcpt(struct mc_smtp_client *c, size_t i, const char **error_r)
{
	const struct mc_smtp_client_rcpt *r = &c->rcpts[i];
	bool dsn = offered(c, MC_SMTP_CLIENT_EXT_DSN);
	char notify[64];

	return mc_smtp_client_send_line(c, error_r, "RCPT TO:<%s>%s%s%s%s\r\n", r->address,
	                 dsn && r->notify != 0 ? " NOTIFY=" : "",
	                 dsn ? notify_text(r->notify, notify, sizeof(notify))
	                     : "",
	                 dsn && r->orcpt != NULL ? " ORCPT=" : "",
	                 dsn && r->orcpt != NULL ? r->orcpt : "");
}

/* Send MAIL and RCPTs within the window (1 without pipelining). */
static void
pump_envelope(struct mc_smtp_client *c)
{
	bool pipelining = offered(c, MC_SMTP_CLIENT_EXT_PIPELINING) ||
	                  c->set.protocol == MC_SMTP_CLIENT_LMTP;
	size_t window = pipelining ? PIPELINE_WINDOW : 1;
	const char *error;

	while (c->state == SC_ENVELOPE && !c->mail_failed &&
	       c->cmd_sent < c->rcpt_count + 1 &&
	       c->cmd_sent - c->cmd_answered < window &&
	       !mc_conn_output_blocked(c->conn)) {
		int r = c->cmd_sent == 0
		                ? send_mail(c, &error)
		                : send_rcpt(c, c->cmd_sent - 1, &error);

		if (r < 0) {
			write_failed(c, error);
			return;
		}
		c->cmd_sent++;
	}
}

/* The checks a server cannot make for us. */
static const char *
transaction_refusal(struct mc_smtp_client *c, const char **enhanced_r)
{
	if ((c->flags & MC_SMTP_CLIENT_NEED_SMTPUTF8) &&
	    !offered(c, MC_SMTP_CLIENT_EXT_SMTPUTF8)) {
		*enhanced_r = "5.6.7";
		return mc_errorf("SMTPUTF8 is required, but was not offered "
		                 "by %s",
		                 c->remote);
	}
	if ((c->flags & MC_SMTP_CLIENT_NEED_8BITMIME) &&
	    !offered(c, MC_SMTP_CLIENT_EXT_8BITMIME)) {
		*enhanced_r = "5.6.3";
		return mc_errorf("8BITMIME is required, but was not offered "
		                 "by %s",
		                 c->remote);
	}
	if (offered(c, MC_SMTP_CLIENT_EXT_SIZE) && c->caps.size_max > 0 &&
	    c->size > c->caps.size_max) {
		*enhanced_r = "5.3.4";
		return mc_errorf("message size %" PRIu64 " exceeds the size "
		                 "limit %" PRIu64 " of %s",
		                 c->size, c->caps.size_max, c->remote);
	}
	return NULL;
}

void
mc_smtp_client_begin_transaction(struct mc_smtp_client *c)
{
	const char *enhanced, *why = transaction_refusal(c, &enhanced);

	if (why != NULL) {
		end_all(c, MC_SMTP_CLIENT_ERR_UNSUPPORTED,
		        MC_SMTP_CLIENT_PERMFAIL, enhanced, why, true);
		return;
	}
	c->cmd_sent = c->cmd_answered = c->accepted = 0;
	c->mail_failed = false;
	set_state(c, SC_ENVELOPE);
	pump_envelope(c);
}

static void
after_hello(struct mc_smtp_client *c)
{
	const char *error;

	if (!c->tls_active &&
	    (c->tls_mode == MC_SMTP_CLIENT_TLS_OPPORTUNISTIC ||
	     c->tls_mode == MC_SMTP_CLIENT_TLS_REQUIRED)) {
		if (offered(c, MC_SMTP_CLIENT_EXT_STARTTLS)) {
			if (mc_smtp_client_send_line(c, &error, "STARTTLS\r\n") < 0) {
				write_failed(c, error);
				return;
			}
			set_state(c, SC_STARTTLS);
			return;
		}
		if (c->tls_mode == MC_SMTP_CLIENT_TLS_REQUIRED) {
			end_all(c, MC_SMTP_CLIENT_ERR_TLS,
			        MC_SMTP_CLIENT_TEMPFAIL, "4.7.4",
			        mc_errorf("TLS is required, but was not "
			                  "offered by %s",
			                  c->remote),
			        true);
			return;
		}
	}
	mc_smtp_client_auth_start(c);
}

/* ---- Replies ------------------------------------------------------------- */

static void
envelope_done(struct mc_smtp_client *c)
{
	const char *error;

	if (c->accepted == 0) { /* nothing to send the message to */
		finish(c);
		return;
	}
	if (mc_smtp_client_send_line(c, &error, "DATA\r\n") < 0) {
		write_failed(c, error);
		return;
	}
	set_state(c, SC_DATA);
}

static void
envelope_reply(struct mc_smtp_client *c,
               const struct mc_smtp_client_reply *reply)
{
	size_t k = c->cmd_answered++;
	unsigned cls = reply->code / 100;

	if (k >= c->cmd_sent || cls == 3) {
		protocol_error(c, "unexpected reply", reply);
		return;
	}
	if (k == 0 && cls == 2) {
		mc_conn_set_idle_timeout(c->conn, c->to.rcpt);
	} else if (k == 0) {
		/* Pipelined RCPT replies still come; they change nothing. */
		c->mail_failed = true;
		refuse(c, reply, "MAIL FROM", MC_SMTP_CLIENT_ERR_REFUSED);
	} else if (!c->mail_failed && cls == 2) {
		c->rstate[k - 1] = R_ACCEPTED;
		c->accepted++;
	} else if (!c->mail_failed) {
		decide_reply(c, k - 1, reply, "RCPT TO");
	}
	if (c->cmd_answered == c->cmd_sent &&
	    (c->mail_failed || c->cmd_sent == c->rcpt_count + 1)) {
		if (c->mail_failed)
			quit(c);
		else
			envelope_done(c);
		return;
	}
	pump_envelope(c);
}

static void
dot_reply(struct mc_smtp_client *c, const struct mc_smtp_client_reply *reply)
{
	size_t i;

	if (reply->code / 100 == 3) {
		protocol_error(c, "unexpected reply to the end of DATA", reply);
		return;
	}
	if (c->set.protocol == MC_SMTP_CLIENT_SMTP) {
		for (i = 0; i < c->rcpt_count; i++)
			if (c->rstate[i] == R_ACCEPTED)
				decide_reply(c, i, reply, "end of DATA");
		finish(c);
		return;
	}
	/* LMTP: one reply per accepted recipient, in RCPT order. */
	for (i = c->dot_next; i < c->rcpt_count; i++)
		if (c->rstate[i] == R_ACCEPTED)
			break;
	if (i == c->rcpt_count) { /* cannot happen: we finish first */
		protocol_error(c, "too many replies to the end of DATA", reply);
		return;
	}
	decide_reply(c, i, reply, "end of DATA");
	c->dot_next = i + 1;
	for (i = c->dot_next; i < c->rcpt_count; i++)
		if (c->rstate[i] == R_ACCEPTED)
			return;
	finish(c);
}

static void
hello_reply(struct mc_smtp_client *c, const struct mc_smtp_client_reply *reply)
{
	unsigned cls = reply->code / 100;

	if (cls == 2) {
		if (c->state == SC_EHLO)
			mc_smtp_client_caps_parse(reply, &c->caps);
		after_hello(c);
	} else if (cls == 5 && c->state == SC_EHLO &&
	           c->set.protocol == MC_SMTP_CLIENT_SMTP) {
		send_hello(c, true); /* RFC 5321 3.2: an old server */
	} else if (cls == 3) {
		protocol_error(c, "unexpected reply to EHLO", reply);
	} else {
		refuse(c, reply,
		       c->state == SC_HELO                      ? "HELO"
		       : c->set.protocol == MC_SMTP_CLIENT_LMTP ? "LHLO"
		                                                : "EHLO",
		       MC_SMTP_CLIENT_ERR_REFUSED);
		quit(c);
	}
}

static void
starttls_reply(struct mc_smtp_client *c,
               const struct mc_smtp_client_reply *reply)
{
	char text[TEXT_MAX];

	if (reply->code / 100 == 2) {
		start_tls(c);
		return;
	}
	if (c->tls_mode == MC_SMTP_CLIENT_TLS_REQUIRED) {
		mc_smtp_client_reply_oneline(reply, text, sizeof(text));
		end_all(c, MC_SMTP_CLIENT_ERR_TLS, MC_SMTP_CLIENT_TEMPFAIL,
		        "4.7.4",
		        mc_errorf("TLS is required, but %s answered STARTTLS "
		                  "with %u %s",
		                  c->remote, reply->code, text),
		        true);
		return;
	}
	/* Opportunistic: carry on in clear text (AUTH refuses to). */
	mc_smtp_client_auth_start(c);
}

static void
on_reply(struct mc_smtp_client *c, const struct mc_smtp_client_reply *reply)
{
	switch (c->state) {
	case SC_GREETING:
		if (reply->code / 100 == 2) {
			send_hello(c, false);
		} else if (reply->code / 100 == 3) {
			protocol_error(c, "unexpected greeting", reply);
		} else {
			refuse(c, reply, "greeting",
			       MC_SMTP_CLIENT_ERR_REFUSED);
			quit(c);
		}
		break;
	case SC_EHLO:
	case SC_HELO:
		hello_reply(c, reply);
		break;
	case SC_STARTTLS:
		starttls_reply(c, reply);
		break;
	case SC_AUTH:
		mc_smtp_client_auth_reply(c, reply);
		break;
	case SC_ENVELOPE:
		envelope_reply(c, reply);
		break;
	case SC_DATA:
		if (reply->code / 100 == 3) {
			set_state(c, SC_CONTENT);
			mc_smtp_client_pump_content(c);
		} else if (reply->code / 100 == 2) {
			protocol_error(c, "DATA answered without 354", reply);
		} else {
			refuse(c, reply, "DATA", MC_SMTP_CLIENT_ERR_REFUSED);
			quit(c);
		}
		break;
	case SC_DOT:
		dot_reply(c, reply);
		break;
	case SC_IDLE: /* unasked: 421 or garbage; either way it ends */
		mc_smtp_client_idle_event(c, false);
		break;
	case SC_RSET:
		mc_smtp_client_rset_reply(c, reply);
		break;
	case SC_QUIT:
		close_conn(c, false);
		break;
	default: /* content: a server must not talk now */
		protocol_error(c, "reply while sending the message", reply);
		break;
	}
}

static void
on_read(struct mc_conn *conn, void *ctx, const char *data, size_t len)
{
	struct mc_smtp_client *c = ctx;
	const struct mc_smtp_client_reply *reply;
	const char *error;
	size_t used;
	int r;

	while (len > 0 && c->conn == conn && c->state != SC_HANDSHAKE) {
		r = mc_smtp_client_reply_parse(&c->parser, data, len, &used,
		                               &reply, &error);
		mc_conn_consume(conn, used);
		data += used;
		len -= used;
		if (r < 0) {
			if (c->state == SC_QUIT)
				close_conn(c, true);
			else
				protocol_error(c, error, NULL);
			return;
		}
		if (r == 0)
			return;
		mc_debug("smtp_client id=%s remote=%s reply=%u lines=%zu",
		         c->log_id, c->remote, reply->code, reply->lines);
		on_reply(c, reply);
	}
}

static void
on_event(struct mc_conn *conn, void *ctx, enum mc_conn_event ev,
         const char *error)
{
	struct mc_smtp_client *c = ctx;
	const char *what = state_what[c->state];

	if (c->mx != NULL && mc_mx_connect_event(c->mx, conn, ev, error))
		return;
	if (c->state == SC_QUIT && ev != MC_CONN_DRAIN) {
		close_conn(c, ev != MC_CONN_EOF);
		return;
	}
	if (c->state == SC_IDLE) {
		if (ev != MC_CONN_DRAIN)
			mc_smtp_client_idle_event(c,
			                          ev == MC_CONN_IDLE_TIMEOUT);
		return;
	}
	switch (ev) {
	case MC_CONN_CONNECTED:
		mc_smtp_client_connected(c);
		break;
	case MC_CONN_DRAIN:
		if (c->state == SC_ENVELOPE)
			pump_envelope(c);
		else if (c->state == SC_CONTENT)
			mc_smtp_client_pump_content(c);
		break;
	case MC_CONN_EOF:
		fail_session(c, MC_SMTP_CLIENT_ERR_CLOSED, "4.4.2",
		             mc_errorf("connection closed by %s %s", c->remote,
		                       what));
		break;
	case MC_CONN_IDLE_TIMEOUT:
		fail_session(
		        c, MC_SMTP_CLIENT_ERR_TIMEOUT, "4.4.2",
		        mc_errorf("timed out %s from %s", what, c->remote));
		break;
	case MC_CONN_DEADLINE:
		fail_session(c, MC_SMTP_CLIENT_ERR_TIMEOUT, "4.4.2",
		             mc_errorf("session deadline reached %s with %s",
		                       what, c->remote));
		break;
	case MC_CONN_ERROR:
		if (c->state == SC_CONNECTING)
			fail_session(c, MC_SMTP_CLIENT_ERR_CONNECT, "4.4.1",
			             error);
		else
			fail_session(c, MC_SMTP_CLIENT_ERR_CLOSED, "4.4.2",
			             mc_errorf("connection to %s lost %s: %s",
			                       c->remote, what, error));
		break;
	}
}

/* ---- Starting ------------------------------------------------------------ */

void
mc_smtp_client_connected(struct mc_smtp_client *c)
{
	c->connected_at = uv_now(c->loop);
	c->messages = 1;
	if (c->tls_mode == MC_SMTP_CLIENT_TLS_IMPLICIT)
		start_tls(c);
	else
		set_state(c, SC_GREETING);
}

int
mc_smtp_client_start(uv_loop_t *loop, const struct mc_smtp_client_settings *set,
                     const struct mc_smtp_client_message *msg,
                     mc_smtp_client_done_cb *done, void *ctx,
                     struct mc_smtp_client **client_r, const char **error_r)
{
	struct mc_smtp_client *c;
	const char *why;
	struct stat st;

	if (loop == NULL || set == NULL || msg == NULL || done == NULL) {
		*error_r = "smtp client: loop, settings, message and callback "
		           "are required";
		return -1;
	}
	if ((why = mc_smtp_client_check(set, msg)) != NULL) {
		*error_r = mc_errorf("smtp client: %s", why);
		return -1;
	}
	c = mc_malloc(sizeof(*c));
	c->loop = loop;
	c->pool = mc_pool_new();
	c->done = done;
	c->ctx = ctx;
	mc_smtp_client_copy(c, set, msg);
	if (c->use_fd && c->size == 0 && fstat(c->fd, &st) == 0)
		c->size = (uint64_t)st.st_size;
	mc_smtp_client_reply_init(&c->parser, &set->reply_limits);
	c->wbuf = mc_malloc(2 * SMTP_CLIENT_CHUNK);
	if (c->use_fd)
		c->rbuf = mc_malloc(SMTP_CLIENT_CHUNK);
	if (session_connect(c, error_r) < 0) {
		client_free(c);
		return -1;
	}
	mc_debug("smtp_client id=%s remote=%s port=%u hosts=%zu protocol=%s "
	        "rcpts=%zu size=%" PRIu64 " start",
	        c->log_id, c->remote, set->port, set->host_count,
	        set->protocol == MC_SMTP_CLIENT_LMTP ? "lmtp" : "smtp",
	        c->rcpt_count, c->size);
	*client_r = c;
	return 0;
}

void
mc_smtp_client_abort(struct mc_smtp_client *client)
{
	if (client->held) {
		mc_smtp_client_release(client, true);
		return;
	}
	client->aborted = true;
	if (client->mx != NULL)
		mc_smtp_client_mx_abort(client);
	else
		close_conn(client, true);
}
