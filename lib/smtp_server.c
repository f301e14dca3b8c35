/* The SMTP server engine's frame (see smtp_server.h): the server object
 * and its settings, each session's lifetime (creation on an accepted
 * connection, teardown once the connection, the two libuv handles and the
 * policy are all done with it), the connection callbacks, the input pump
 * that feeds the line reader or the DATA reader and stops while a policy
 * request is outstanding or the output is blocked, request bookkeeping
 * with its timer, reply formatting, and the accessors. What each command
 * does lives in smtp_session.c. */
#include "smtp_server_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "error.h"
#include "listener.h"
#include "log.h"
#include "mem.h"
#include "tls.h"

#define TIMEOUT_INITIAL_MS 300000
#define TIMEOUT_COMMAND_MS 300000
#define TIMEOUT_DATA_BLOCK_MS 180000
#define TIMEOUT_DATA_END_MS 600000
#define DEADLINE_MS 3600000
/* RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted. */
#define MAX_RECIPIENTS 100
#define MAX_BAD_COMMANDS 20

static const char *const state_names[] = {
        "connect", "refused", "greeted", "ready", "mail",
        "rcpt",    "data",    "auth",    "tls",   "closing",
};

static const char *const req_names[] = {
        "none", "connect",    "helo",     "mail",
        "rcpt", "data_start", "data_end", "auth",
};

/* ---- settings ------------------------------------------------------------ */

void
mc_smtp_server_settings_init(struct mc_smtp_server_settings *set)
{
	memset(set, 0, sizeof(*set));
	set->extensions = MC_SMTP_EXT_DEFAULT;
	set->max_message = MC_SMTP_MESSAGE_DEFAULT;
	set->max_recipients = MAX_RECIPIENTS;
	set->max_bad_commands = MAX_BAD_COMMANDS;
	set->max_line = MC_SMTP_LINE_DEFAULT;
	set->timeouts.initial_ms = TIMEOUT_INITIAL_MS;
	set->timeouts.command_ms = TIMEOUT_COMMAND_MS;
	set->timeouts.data_block_ms = TIMEOUT_DATA_BLOCK_MS;
	set->timeouts.data_end_ms = TIMEOUT_DATA_END_MS;
	set->deadline_ms = DEADLINE_MS;
}

static uint64_t
or_default(uint64_t v, uint64_t def)
{
	return v != 0 ? v : def;
}

/* A host name for replies: printable ASCII without blanks. */
static bool
hostname_valid(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (name[i] <= ' ' || name[i] >= 127)
			return false;
	}
	return true;
}

static int
resolve_settings(const struct mc_smtp_server_settings *in,
                 struct mc_smtp_server_settings *out, const char **error_r)
{
	struct mc_smtp_timeouts *t = &out->timeouts;

	*out = *in;
	if (!hostname_valid(in->hostname)) {
		*error_r = "smtp server: hostname must be 1-255 printable "
		           "characters without blanks";
		return -1;
	}
	if (in->implicit_tls && in->tls == NULL) {
		*error_r = "smtp server: implicit TLS needs a TLS context";
		return -1;
	}
	out->max_message = or_default(in->max_message, MC_SMTP_MESSAGE_DEFAULT);
	out->max_recipients =
	        in->max_recipients ? in->max_recipients : MAX_RECIPIENTS;
	out->max_bad_commands =
	        in->max_bad_commands ? in->max_bad_commands : MAX_BAD_COMMANDS;
	out->max_line = in->max_line ? in->max_line : MC_SMTP_LINE_DEFAULT;
	t->initial_ms = or_default(t->initial_ms, TIMEOUT_INITIAL_MS);
	t->command_ms = or_default(t->command_ms, TIMEOUT_COMMAND_MS);
	t->data_block_ms = or_default(t->data_block_ms, TIMEOUT_DATA_BLOCK_MS);
	t->data_end_ms = or_default(t->data_end_ms, TIMEOUT_DATA_END_MS);
	out->deadline_ms = or_default(in->deadline_ms, DEADLINE_MS);
	/* LMTP servers must offer both (RFC 2033 4.1). */
	if (in->mode == MC_SMTP_MODE_LMTP)
		out->extensions |= MC_SMTP_EXT_PIPELINING |
		                   MC_SMTP_EXT_ENHANCEDSTATUSCODES;
	return 0;
}

int
mc_smtp_server_new(uv_loop_t *loop, const struct mc_smtp_server_settings *set,
                   const struct mc_smtp_policy *policy, void *ctx,
                   struct mc_smtp_server **server_r, const char **error_r)
{
	struct mc_smtp_server *server;
	struct mc_smtp_server_settings resolved;

	if (resolve_settings(set, &resolved, error_r) < 0)
		return -1;
	server = mc_malloc(sizeof(*server));
	server->loop = loop;
	server->set = resolved;
	server->hostname = mc_strdup(set->hostname);
	server->set.hostname = server->hostname;
	if (set->auth_mechanisms != NULL) {
		server->auth_mechanisms = mc_strdup(set->auth_mechanisms);
		server->set.auth_mechanisms = server->auth_mechanisms;
	}
	if (policy != NULL)
		server->policy = *policy;
	server->ctx = ctx;
	*server_r = server;
	return 0;
}

void
mc_smtp_server_set_tls(struct mc_smtp_server *server, struct mc_tls_ctx *tls)
{
	server->set.tls = tls;
}

unsigned
mc_smtp_server_sessions(const struct mc_smtp_server *server)
{
	return server->count;
}

static void
server_free(struct mc_smtp_server *server)
{
	mc_smtp_server_close_cb *cb = server->close_cb;
	void *ctx = server->close_ctx;

	/* Freed once the last session and the listener are gone. */
	if (server->count > 0 || server->listener_closing)
		return;

	free(server->hostname);
	free(server->auth_mechanisms);
	free(server);
	if (cb != NULL)
		cb(ctx);
}

static void
listener_closed(void *arg)
{
	struct mc_smtp_server *server = arg;

	server->listener_closing = false;
	server_free(server);
}

static void
listener_accept(struct mc_listener *listener, struct mc_conn *conn, void *ctx)
{
	(void)listener;
	mc_smtp_server_accept(ctx, conn);
}

int
mc_smtp_server_listen(struct mc_smtp_server *server, const char *host,
                      uint16_t port, unsigned max_conns, const char **error_r)
{
	struct mc_listener_settings ls = {
	        .host = host, .port = port, .max_conns = max_conns};

	if (server->listener != NULL || server->closing) {
		*error_r = "the server is already listening or closing";
		return -1;
	}
	return mc_listener_new(server->loop, &ls, listener_accept, server,
	                       &server->listener, error_r);
}

const char *
mc_smtp_server_address(const struct mc_smtp_server *server)
{
	return server->listener != NULL ? mc_listener_address(server->listener) : NULL;
}

void
mc_smtp_server_close(struct mc_smtp_server *server, mc_smtp_server_close_cb *cb,
                     void *ctx)
{
	struct mc_smtp_session *s, *next;

	server->closing = true;
	server->close_cb = cb;
	server->close_ctx = ctx;
	if (server->listener != NULL) {
		server->listener_closing = true;
		mc_listener_close(server->listener, listener_closed);
		server->listener = NULL;
	}
	if (server->count == 0) {
		server_free(server);
		return;
	}
	for (s = server->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->state == SMTP_S_CLOSING)
			continue;
		if (s->req != SMTP_REQ_NONE) {
			s->close_pending = true;
			s->late_reply = (struct smtp_late_reply){
			        421, "4.3.2", "Service shutting down"};
			continue;
		}
		smtp_close(s, 421, "4.3.2", "Service shutting down");
	}
}

/* ---- session lifetime ---------------------------------------------------- */

static void
session_unref(struct mc_smtp_session *s)
{
	struct mc_smtp_server *server = s->server;

	if (--s->refs > 0)
		return;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		server->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	mc_smtp_lines_fini(&s->lines);
	free(s->cmd_line);
	free(s->auth_mech);
	free(s->helo);
	free(s);
	if (--server->count == 0 && server->closing)
		server_free(server);
}

static void
handle_closed(uv_handle_t *handle)
{
	session_unref(handle->data);
}

static void
conn_closed(void *ctx)
{
	session_unref(ctx);
}

static void kick_cb(uv_idle_t *handle);

/* The policy's part of the teardown, from the loop (never inside a call
 * the policy made) once closing and no request is outstanding. */
static void
policy_finish(struct mc_smtp_session *s)
{
	struct mc_smtp_server *server = s->server;

	if (s->policy_done || s->req != SMTP_REQ_NONE)
		return;
	s->policy_done = true;
	if (s->txn != NULL)
		smtp_txn_end(s, MC_SMTP_TXN_CLOSED);
	mc_info("smtp session=%s peer=%s closed messages=%" PRIu64, s->id,
	        s->peer_ip, s->messages);
	if (server->policy.closed != NULL)
		server->policy.closed(s, server->ctx);
	uv_close((uv_handle_t *)&s->kick, handle_closed);
	session_unref(s);
}

void
smtp_close(struct mc_smtp_session *s, unsigned code, const char *enhanced,
           const char *text)
{
	char buf[SMTP_REPLY_MAX];

	if (s->state == SMTP_S_CLOSING)
		return;
	if (code != 0) {
		snprintf(buf, sizeof(buf), "%s %s", s->server->hostname, text);
		smtp_reply(s, code, enhanced, buf);
	}
	if (s->state == SMTP_S_CLOSING) /* the write failed */
		return;
	smtp_set_state(s, SMTP_S_CLOSING);
	uv_close((uv_handle_t *)&s->req_timer, handle_closed);
	mc_conn_close(s->conn, conn_closed);
	uv_idle_start(&s->kick, kick_cb); /* policy_finish */
}

/* Random, so that ids from restarted or parallel daemons do not collide
 * in logs and Received headers. */
static void
make_id(char id[17])
{
	static uint64_t counter;
	uint64_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = uv_hrtime() ^ (++counter << 40);
	snprintf(id, 17, "%016" PRIx64, v);
}

static void on_read(struct mc_conn *conn, void *ctx, const char *data,
                    size_t len);
static void on_event(struct mc_conn *conn, void *ctx, enum mc_conn_event ev,
                     const char *error);

static const struct mc_conn_callbacks conn_callbacks = {
        .read = on_read,
        .event = on_event,
};

static struct mc_smtp_session *
session_new(struct mc_smtp_server *server, struct mc_conn *conn)
{
	struct mc_smtp_session *s = mc_malloc(sizeof(*s));

	s->server = server;
	s->conn = conn;
	s->state = SMTP_S_CONNECT;
	s->refs = 4;
	make_id(s->id);
	snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", mc_conn_peer_ip(conn));
	snprintf(s->local_ip, sizeof(s->local_ip), "%s",
	         mc_conn_local_ip(conn));
	s->peer_port = mc_conn_peer_port(conn);
	s->local_port = mc_conn_local_port(conn);
	mc_smtp_limits_default(&s->limits);
	s->limits.max_line = server->set.max_line;
	s->limits.max_message = server->set.max_message;
	mc_smtp_lines_init(&s->lines, &s->limits);
	s->cmd_line = mc_malloc(s->lines.max_line + 1);
	uv_idle_init(server->loop, &s->kick);
	uv_timer_init(server->loop, &s->req_timer);
	s->kick.data = s;
	s->req_timer.data = s;
	s->next = server->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	server->sessions = s;
	server->count++;
	return s;
}

void
mc_smtp_server_accept(struct mc_smtp_server *server, struct mc_conn *conn)
{
	struct mc_conn_settings cs = server->set.conn;
	struct mc_smtp_session *s;
	const char *error;

	if (server->closing) {
		mc_error("mc_smtp_server_accept: server is closing");
		abort();
	}
	cs.idle_timeout_ms = server->set.timeouts.command_ms;
	cs.deadline_ms = server->set.deadline_ms;
	s = session_new(server, conn);
	if (mc_conn_start(conn, &cs, &conn_callbacks, s, &error) < 0) {
		mc_error("smtp session=%s peer=%s: %s", s->id, s->peer_ip,
		         error);
		smtp_close(s, 0, NULL, NULL);
		return;
	}
	mc_info("smtp session=%s peer=%s port=%u %s connected", s->id,
	        mc_conn_peer(conn), s->local_port,
	        server->set.mode == MC_SMTP_MODE_LMTP ? "lmtp" : "smtp");
	smtp_session_start(s);
}

/* ---- state and requests -------------------------------------------------- */

const char *
smtp_state_name(enum smtp_state state)
{
	return state_names[state];
}

void
smtp_set_state(struct mc_smtp_session *s, enum smtp_state state)
{
	const struct mc_smtp_timeouts *t = &s->server->set.timeouts;

	/* Nothing leaves CLOSING: a reply that failed to write closes the
	 * session under a handler that goes on to set its next state. */
	if (state == s->state || s->state == SMTP_S_CLOSING)
		return;
	mc_debug("smtp session=%s state=%s->%s", s->id, state_names[s->state],
	         state_names[state]);
	/* RFC 5321 4.5.3.2: a DATA block timeout differs from the
	 * command timeout. */
	if (state == SMTP_S_DATA)
		mc_conn_set_idle_timeout(s->conn, t->data_block_ms);
	else if (s->state == SMTP_S_DATA && state != SMTP_S_CLOSING)
		mc_conn_set_idle_timeout(s->conn, t->command_ms);
	s->state = state;
}

static void
req_timeout_cb(uv_timer_t *timer)
{
	struct mc_smtp_session *s = timer->data;

	mc_warn("smtp session=%s policy did not answer request=%s", s->id,
	        req_names[s->req]);
	smtp_close(s, 421, "4.3.0", "Local processing timeout");
}

void
smtp_request_begin(struct mc_smtp_session *s, enum smtp_req req,
                   unsigned replies)
{
	const struct mc_smtp_timeouts *t = &s->server->set.timeouts;
	uint64_t ms = req == SMTP_REQ_CONNECT    ? t->initial_ms
	              : req == SMTP_REQ_DATA_END ? t->data_end_ms
	                                         : t->command_ms;

	s->req = req;
	s->req_left = replies;
	uv_timer_start(&s->req_timer, req_timeout_cb, ms, 0);
}

static unsigned
sane_code(struct mc_smtp_session *s, unsigned code)
{
	if (code == 0 || (code >= 200 && code <= 599))
		return code;
	mc_error("smtp session=%s policy replied invalid code %u", s->id, code);
	return 451;
}

void
mc_smtp_session_reply(struct mc_smtp_session *s, unsigned code,
                      const char *enhanced, const char *text)
{
	enum smtp_req req = s->req;
	bool last;

	if (req == SMTP_REQ_NONE || s->req_left == 0) {
		mc_error("mc_smtp_session_reply: session=%s has no request "
		         "outstanding",
		         s->id);
		abort();
	}
	code = sane_code(s, code);
	last = --s->req_left == 0;
	if (last) {
		s->req = SMTP_REQ_NONE;
		if (s->state != SMTP_S_CLOSING)
			uv_timer_stop(&s->req_timer);
	}
	if (s->state == SMTP_S_CLOSING) {
		/* The client is gone; only the bookkeeping is left. A
		 * message made durable still counts as done. */
		if (last && req == SMTP_REQ_DATA_END && s->txn != NULL)
			smtp_txn_end(s, MC_SMTP_TXN_DONE);
		if (last)
			uv_idle_start(&s->kick, kick_cb); /* policy_finish */
		return;
	}
	smtp_session_complete(s, req, last, code, enhanced, text);
	if (!last || s->state == SMTP_S_CLOSING)
		return;
	if (s->close_pending) {
		smtp_close(s, s->late_reply.code, s->late_reply.enhanced,
		           s->late_reply.text);
		return;
	}
	if (!s->running)
		uv_idle_start(&s->kick, kick_cb);
}

void
mc_smtp_session_accept(struct mc_smtp_session *s)
{
	mc_smtp_session_reply(s, 0, NULL, NULL);
}

/* ---- transactions -------------------------------------------------------- */

const char *
mc_smtp_txn_end_name(enum mc_smtp_txn_end how)
{
	static const char *const names[] = {"done", "reset", "refused",
	                                    "too_big", "closed"};

	return (unsigned)how < sizeof(names) / sizeof(names[0]) ? names[how]
	                                                        : "?";
}

/* The transaction lives in its own pool. */
void
smtp_txn_free(struct smtp_txn *txn)
{
	struct mc_pool *pool = txn->pool;

	mc_pool_free(&pool);
}

void
smtp_txn_end(struct mc_smtp_session *s, enum mc_smtp_txn_end how)
{
	struct mc_smtp_server *server = s->server;
	struct smtp_txn *txn = s->txn;

	if (txn == NULL)
		return;
	mc_debug("smtp session=%s transaction end=%s", s->id,
	         mc_smtp_txn_end_name(how));
	if (how == MC_SMTP_TXN_DONE)
		s->messages++;
	if (server->policy.txn_end != NULL)
		server->policy.txn_end(s, server->ctx, how);
	s->txn = NULL;
	smtp_txn_free(txn);
}

/* ---- replies ------------------------------------------------------------- */

static void
session_write(struct mc_smtp_session *s, const char *data, size_t len)
{
	const char *error;

	if (s->state == SMTP_S_CLOSING)
		return;
	if (mc_conn_write(s->conn, data, len, &error) < 0) {
		mc_warn("smtp session=%s write: %s", s->id, error);
		smtp_close(s, 0, NULL, NULL);
	}
}

/* RFC 3463: class.subject.detail, class matching the reply code. */
static bool
enhanced_valid(unsigned code, const char *e)
{
	int parts = 0;

	if (e == NULL || e[0] != (char)('0' + code / 100) || e[1] != '.')
		return false;
	for (e += 2;; e++) {
		size_t digits = 0;

		while (*e >= '0' && *e <= '9') {
			e++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			return false;
		if (++parts == 2)
			return *e == '\0';
		if (*e != '.')
			return false;
	}
}

void
smtp_reply_line(struct mc_smtp_session *s, unsigned code, bool more,
                const char *enhanced, const char *text)
{
	char buf[SMTP_REPLY_MAX];
	size_t n;

	n = (size_t)snprintf(buf, sizeof(buf), "%03u%c", code,
	                     more ? '-' : ' ');
	if (enhanced != NULL && code / 100 != 3 &&
	    (s->server->set.extensions & MC_SMTP_EXT_ENHANCEDSTATUSCODES)) {
		char def[6] = {(char)('0' + code / 100), '.', '0', '.', '0', 0};

		if (!enhanced_valid(code, enhanced))
			enhanced = def;
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s ",
		                      enhanced);
	}
	/* Policy text may come from anywhere (a remote LMTP reply): no
	 * control characters, and the line must stay within 512 octets. */
	for (; text != NULL && *text != '\0' && n < sizeof(buf) - 2; text++) {
		unsigned char c = (unsigned char)*text;

		buf[n++] = c < 32 || c == 127 ? '?' : (char)c;
	}
	while (n > 4 && buf[n - 1] == ' ')
		n--;
	buf[n++] = '\r';
	buf[n++] = '\n';
	session_write(s, buf, n);
}

void
smtp_reply(struct mc_smtp_session *s, unsigned code, const char *enhanced,
           const char *text)
{
	smtp_reply_line(s, code, false, enhanced, text);
}

void
smtp_bad_command(struct mc_smtp_session *s, unsigned code, const char *enhanced,
                 const char *text)
{
	smtp_reply(s, code, enhanced, text);
	if (++s->bad_commands >= s->server->set.max_bad_commands) {
		mc_info("smtp session=%s too many errors (%u)", s->id,
		        s->bad_commands);
		smtp_close(s, 421, "4.7.0", "Error: too many errors");
	}
}

/* ---- input pump ---------------------------------------------------------- */

const char *
smtp_input(struct mc_smtp_session *s, size_t *len_r)
{
	*len_r = s->in != NULL ? s->in_len - s->in_off : 0;
	return *len_r > 0 ? s->in + s->in_off : NULL;
}

void
smtp_input_consume(struct mc_smtp_session *s, size_t n)
{
	s->in_off += n;
	mc_conn_consume(s->conn, n);
}

size_t
smtp_input_discard(struct mc_smtp_session *s)
{
	size_t n = mc_smtp_lines_pending(&s->lines);

	mc_smtp_lines_discard(&s->lines);
	if (s->in != NULL)
		s->in_off = s->in_len;
	return n + mc_conn_discard_input(s->conn);
}

/* Move conn input into the line reader. Returns bytes moved. */
static size_t
feed_lines(struct mc_smtp_session *s)
{
	size_t len, n;
	const char *in = smtp_input(s, &len);

	if (in == NULL)
		return 0;
	n = mc_smtp_lines_feed(&s->lines, in, len);
	smtp_input_consume(s, n);
	return n;
}

/* DATA: bytes still in the line reader come first, then conn input
 * straight from its buffer (no copy). */
static bool
step_data(struct mc_smtp_session *s)
{
	size_t len, used = 0;
	const void *p = mc_smtp_lines_peek(&s->lines, &len);

	if (len > 0) {
		smtp_session_data(s, p, len, &used);
		mc_smtp_lines_skip(&s->lines, used);
		return true;
	}
	if ((p = smtp_input(s, &len)) == NULL)
		return false;
	smtp_session_data(s, p, len, &used);
	if (s->state != SMTP_S_CLOSING)
		smtp_input_consume(s, used);
	return true;
}

/* One unit of progress; false when more input is needed. */
static bool
step(struct mc_smtp_session *s)
{
	struct mc_smtp_line line;
	const struct mc_smtp_reply *err;
	int r;

	if (s->state == SMTP_S_DATA)
		return step_data(s);
	r = mc_smtp_lines_next(&s->lines, &line, &err);
	if (r == 0)
		return feed_lines(s) > 0;
	if (r < 0)
		smtp_bad_command(s, err->code, err->enhanced, err->text);
	else
		smtp_session_line(s, &line);
	return true;
}

static bool
can_run(const struct mc_smtp_session *s)
{
	return s->req == SMTP_REQ_NONE && s->state != SMTP_S_CLOSING &&
	       s->state != SMTP_S_TLS && s->state != SMTP_S_CONNECT &&
	       !mc_conn_output_blocked(s->conn);
}

/* Handle buffered commands in order until input runs out, a request is
 * outstanding or the client stops reading its replies. */
void
smtp_run(struct mc_smtp_session *s)
{
	if (s->running)
		return;
	s->running = true;
	while (can_run(s) && step(s))
		;
	s->running = false;
	if (s->state == SMTP_S_CLOSING)
		return;
	/* While the policy works, stop reading: the idle timer stops too
	 * (the client waits for us) and the request timer runs. */
	if (s->req != SMTP_REQ_NONE && !s->paused) {
		s->paused = true;
		mc_conn_pause(s->conn);
	} else if (s->req == SMTP_REQ_NONE && s->paused) {
		s->paused = false;
		mc_conn_resume(s->conn);
	}
}

static void
kick_cb(uv_idle_t *handle)
{
	struct mc_smtp_session *s = handle->data;

	uv_idle_stop(handle);
	if (s->state == SMTP_S_CLOSING)
		policy_finish(s);
	else
		smtp_run(s);
}

static void
on_read(struct mc_conn *conn, void *ctx, const char *data, size_t len)
{
	struct mc_smtp_session *s = ctx;

	(void)conn;
	s->in = data;
	s->in_len = len;
	s->in_off = 0;
	smtp_run(s);
	s->in = NULL;
	s->in_len = s->in_off = 0;
}

static void
on_event(struct mc_conn *conn, void *ctx, enum mc_conn_event ev,
         const char *error)
{
	struct mc_smtp_session *s = ctx;

	(void)conn;
	if (s->state == SMTP_S_CLOSING)
		return;
	switch (ev) {
	case MC_CONN_EOF:
	case MC_CONN_ERROR:
		mc_info("smtp session=%s lost connection in state=%s%s%s",
		        s->id, state_names[s->state], error ? ": " : "",
		        error ? error : "");
		smtp_close(s, 0, NULL, NULL);
		break;
	case MC_CONN_IDLE_TIMEOUT:
		mc_info("smtp session=%s timeout in state=%s", s->id,
		        state_names[s->state]);
		smtp_close(s, 421, "4.4.2", "Error: timeout exceeded");
		break;
	case MC_CONN_DEADLINE:
		mc_info("smtp session=%s deadline in state=%s", s->id,
		        state_names[s->state]);
		if (s->req != SMTP_REQ_NONE) {
			s->close_pending = true;
			s->late_reply = (struct smtp_late_reply){
			        421, "4.4.2", "Error: session time limit"};
			break;
		}
		smtp_close(s, 421, "4.4.2", "Error: session time limit");
		break;
	case MC_CONN_DRAIN:
		uv_idle_start(&s->kick, kick_cb);
		break;
	default:
		break;
	}
}

/* ---- accessors ----------------------------------------------------------- */

void
mc_smtp_session_set_user(struct mc_smtp_session *s, void *user)
{
	s->user = user;
}

void *
mc_smtp_session_user(const struct mc_smtp_session *s)
{
	return s->user;
}

const char *
mc_smtp_session_id(const struct mc_smtp_session *s)
{
	return s->id;
}

const char *
mc_smtp_session_peer_ip(const struct mc_smtp_session *s)
{
	return s->peer_ip;
}

uint16_t
mc_smtp_session_peer_port(const struct mc_smtp_session *s)
{
	return s->peer_port;
}

const char *
mc_smtp_session_local_ip(const struct mc_smtp_session *s)
{
	return s->local_ip;
}

uint16_t
mc_smtp_session_local_port(const struct mc_smtp_session *s)
{
	return s->local_port;
}

enum mc_smtp_mode
mc_smtp_session_mode(const struct mc_smtp_session *s)
{
	return s->server->set.mode;
}

const char *
mc_smtp_session_helo(const struct mc_smtp_session *s)
{
	return s->helo;
}

const char *
mc_smtp_session_protocol(const struct mc_smtp_session *s)
{
	static const char *const names[2][4] = {
	        {"ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA"},
	        {"LMTP", "LMTPA", "LMTPS", "LMTPSA"},
	};
	bool lmtp = s->server->set.mode == MC_SMTP_MODE_LMTP;

	if (!lmtp && !s->esmtp)
		return "SMTP";
	return names[lmtp][(s->tls ? 2 : 0) + (s->authenticated ? 1 : 0)];
}

bool
mc_smtp_session_tls(const struct mc_smtp_session *s)
{
	return s->tls;
}

const char *
mc_smtp_session_tls_version(const struct mc_smtp_session *s)
{
	return s->tls ? s->tls_version : NULL;
}

const char *
mc_smtp_session_tls_cipher(const struct mc_smtp_session *s)
{
	return s->tls ? s->tls_cipher : NULL;
}

int
mc_smtp_session_tls_bits(const struct mc_smtp_session *s)
{
	return s->tls ? s->tls_bits : 0;
}

bool
mc_smtp_session_authenticated(const struct mc_smtp_session *s)
{
	return s->authenticated;
}

const struct mc_smtp_txn *
mc_smtp_session_txn(const struct mc_smtp_session *s)
{
	return s->txn != NULL ? &s->txn->pub : NULL;
}

bool
mc_smtp_session_gone(const struct mc_smtp_session *s)
{
	return s->state == SMTP_S_CLOSING;
}
