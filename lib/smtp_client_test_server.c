/* The scripted server behind smtp_client_test.c (see
 * smtp_client_test_server.h): sessions on mc_conn, command lines queued
 * and answered in order (optionally after a delay, which is how the test
 * sees pipelining: a line that arrives before the previous reply was sent
 * was pipelined), DATA read with the real server's reader from
 * smtp_parser.h so that the client's dot-stuffing is checked against it,
 * optionally slowly (pausing the conn) to exercise back-pressure. AUTH,
 * when configured, is answered by its own small state machine. */
#include "smtp_client_test_server.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "listener.h"
#include "mem.h"
#include "scram.h"
#include "smtp_parser.h"
#include "tls.h"

struct session {
	struct test_server *srv;
	struct mc_conn *conn;
	const struct test_step *script;
	size_t step;
	bool in_data, closing, tls_started;
	struct mc_smtp_data data;
	struct test_text queue; /* received lines, '\n' after each */
	size_t queue_off;
	char *pending; /* a delayed reply */
	uv_timer_t reply_timer, slow_timer;
	int parts;
	/* AUTH */
	enum {
		A_NONE,
		A_PLAIN,
		A_LOGIN_USER,
		A_LOGIN_PASS,
		A_SCRAM_FIRST,
		A_SCRAM_FINAL,
		A_SCRAM_ACK
	} auth;
	bool authed;
	char login_user[2048];
	struct mc_scram_server *scram;
};

void
test_text_add(struct test_text *t, const void *data, size_t len)
{
	if (t->len + len + 1 > t->cap) {
		t->cap = (t->len + len + 1) * 2;
		t->data = mc_realloc(t->data, t->cap);
	}
	memcpy(t->data + t->len, data, len);
	t->len += len;
	t->data[t->len] = '\0';
}

bool
test_text_has(const struct test_text *t, const char *s)
{
	return t->data != NULL && strstr(t->data, s) != NULL;
}

void
test_text_free(struct test_text *t)
{
	free(t->data);
	memset(t, 0, sizeof(*t));
}

static void problem(struct test_server *srv, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
problem(struct test_server *srv, const char *fmt, ...)
{
	char buf[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	test_text_add(&srv->problems, buf, strlen(buf));
	test_text_add(&srv->problems, "\n", 1);
}

/* ---- Session lifetime -------------------------------------------------- */

static void
part_closed(struct session *s)
{
	if (--s->parts > 0)
		return;
	s->srv->live--;
	mc_scram_server_free(&s->scram);
	free(s->pending);
	test_text_free(&s->queue);
	free(s);
}

static void
timer_closed(uv_handle_t *h)
{
	part_closed(h->data);
}

static void
conn_closed(void *ctx)
{
	part_closed(ctx);
}

static void
session_close(struct session *s, bool reset)
{
	if (s->closing)
		return;
	s->closing = true;
	uv_close((uv_handle_t *)&s->reply_timer, timer_closed);
	uv_close((uv_handle_t *)&s->slow_timer, timer_closed);
	if (reset)
		mc_conn_abort(s->conn, conn_closed);
	else
		mc_conn_close(s->conn, conn_closed);
}

static void
say(struct session *s, const char *text, size_t len)
{
	const char *error;

	if (len > 0 && mc_conn_write(s->conn, text, len, &error) < 0)
		problem(s->srv, "write: %s", error);
}

/* ---- Replies ----------------------------------------------------------- */

static void
sink(void *ctx, const void *data, size_t len)
{
	struct session *s = ctx;

	test_text_add(&s->srv->content, data, len);
}

static void
tls_done(struct mc_conn *conn, void *ctx, int status, const char *error)
{
	struct session *s = ctx;

	(void)conn;
	if (status < 0) {
		s->srv->tls_failed++;
		session_close(s, false);
		return;
	}
	s->srv->tls_ok++;
	s->tls_started = false;
	if (s->srv->implicit_tls && s->step == 0 &&
	    s->script[0].expect == NULL) {
		s->step = 1;
		say(s, s->script[0].reply, strlen(s->script[0].reply));
	}
}

static void
start_tls(struct session *s, bool inject)
{
	static const char ready[] = "220 2.0.0 ready\r\n";
	static const char injected[] = "220 2.0.0 ready\r\n250 injected\r\n";
	const char *error;

	mc_conn_discard_input(s->conn);
	s->queue.len = s->queue_off = 0;
	if (inject)
		say(s, injected, sizeof(injected) - 1);
	else
		say(s, ready, sizeof(ready) - 1);
	s->tls_started = true;
	if (mc_conn_start_tls(s->conn, s->srv->tls, NULL, tls_done, &error) <
	    0) {
		problem(s->srv, "start_tls: %s", error);
		session_close(s, true);
	}
}

static void
send_reply(struct session *s, const char *reply)
{
	const char *bang = strchr(reply, '!');
	size_t len = bang != NULL ? (size_t)(bang - reply) : strlen(reply);
	struct mc_smtp_limits lim;

	say(s, reply, len);
	if (strncmp(reply, "354", 3) == 0) {
		mc_smtp_limits_default(&lim);
		lim.max_message = 1u << 30;
		mc_smtp_data_init(&s->data, &lim, sink, s);
		s->srv->content.len = 0;
		s->srv->raw.len = 0;
		s->in_data = true;
	}
	if (bang == NULL || strcmp(bang, "!hang") == 0)
		return;
	if (strcmp(bang, "!close") == 0 || strcmp(bang, "!reset") == 0) {
		session_close(s, bang[1] == 'r');
	} else if (strcmp(bang, "!starttls") == 0 ||
	           strcmp(bang, "!inject") == 0) {
		start_tls(s, bang[1] == 'i');
	} else if (strcmp(bang, "!flood") == 0) {
		char *junk = mc_malloc(100000);

		memset(junk, 'x', 100000);
		say(s, junk, 100000);
		free(junk);
	} else {
		problem(s->srv, "bad action %s", bang);
	}
}

static void process(struct session *s);

static void
reply_timer_cb(uv_timer_t *t)
{
	struct session *s = t->data;
	char *reply = s->pending;

	s->pending = NULL;
	send_reply(s, reply);
	free(reply);
	process(s);
}

static void
answer(struct session *s, const char *reply)
{
	if (s->srv->reply_delay_ms == 0 || reply[0] == '!') {
		send_reply(s, reply);
		return;
	}
	s->pending = mc_strdup(reply);
	uv_timer_start(&s->reply_timer, reply_timer_cb, s->srv->reply_delay_ms,
	               0);
}

/* ---- AUTH ---------------------------------------------------------------- */

static void
say_str(struct session *s, const char *text)
{
	say(s, text, strlen(text));
}

static int
b64_decode(const char *in, char *out, size_t size, size_t *len_r)
{
	size_t len = strlen(in), pad = 0;
	int n;

	if (len % 4 != 0 || len / 4 * 3 >= size)
		return -1;
	n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in,
	                    (int)len);
	if (n < 0)
		return -1;
	pad = (len > 0 && in[len - 1] == '=') + (len > 1 && in[len - 2] == '=');
	*len_r = (size_t)n - pad;
	out[*len_r] = '\0';
	return 0;
}

static void
say_b64(struct session *s, const char *msg, size_t len)
{
	char line[2048];
	int n = EVP_EncodeBlock((unsigned char *)line + 4,
	                        (const unsigned char *)msg, (int)len);

	memcpy(line, "334 ", 4);
	memcpy(line + 4 + n, "\r\n", 2);
	say(s, line, (size_t)n + 6);
}

static void
verdict(struct session *s, bool ok)
{
	struct test_server *srv = s->srv;
	const char *r = srv->auth_reply;

	s->auth = A_NONE;
	mc_scram_server_free(&s->scram);
	if (r == NULL)
		r = ok ? "235 2.7.0 authenticated\r\n"
		       : "535 5.7.8 authentication credentials invalid\r\n";
	if (r[0] == '2') {
		s->authed = true;
		srv->auth_ok++;
	} else {
		srv->auth_failed++;
	}
	say_str(s, r);
}

static void
scram_step(struct session *s, const char *msg, size_t len)
{
	const char *out, *error;
	char *v, *lie;
	size_t olen;

	if (s->auth == A_SCRAM_FIRST) {
		if (mc_scram_verifier_new(
		            s->srv->auth_pass, strlen(s->srv->auth_pass),
		            MC_SCRAM_ITERATIONS_MIN, &v, &error) < 0 ||
		    mc_scram_server_first(s->scram, msg, len, &error) < 0 ||
		    mc_scram_server_challenge(s->scram, v, &out, &olen,
		                              &error) < 0) {
			problem(s->srv, "scram: %s", error);
			verdict(s, false);
			return;
		}
		free(v);
		s->auth = A_SCRAM_FINAL;
		say_b64(s, out, olen);
		return;
	}
	if (mc_scram_server_final(s->scram, msg, len, &out, &olen, &error) <
	    0) {
		verdict(s, false);
		return;
	}
	lie = mc_strdup(out);
	if (s->srv->scram_lie) /* "v=..." with another signature */
		lie[2] = lie[2] == 'A' ? 'B' : 'A';
	s->auth = A_SCRAM_ACK;
	say_b64(s, lie, olen);
	free(lie);
}

/* A response line of the exchange in progress. */
static void
auth_continue(struct session *s, const char *line)
{
	struct test_server *srv = s->srv;
	char msg[2048];
	size_t len;

	if (strcmp(line, "*") == 0) {
		s->auth = A_NONE;
		say_str(s, "501 5.7.0 cancelled\r\n");
		return;
	}
	if (s->auth == A_SCRAM_ACK) {
		verdict(s, line[0] == '\0');
		return;
	}
	if (b64_decode(line, msg, sizeof(msg), &len) < 0) {
		s->auth = A_NONE;
		say_str(s, "501 5.5.2 bad base64\r\n");
		return;
	}
	switch (s->auth) {
	case A_PLAIN: {
		const char *u = memchr(msg, '\0', len), *p;

		p = u != NULL ? memchr(u + 1, '\0', len - (size_t)(u + 1 - msg))
		              : NULL;
		verdict(s, u != NULL && p != NULL && msg[0] == '\0' &&
		                   strcmp(u + 1, srv->auth_user) == 0 &&
		                   (size_t)(p + 1 - msg) +
		                                   strlen(srv->auth_pass) ==
		                           len &&
		                   strcmp(p + 1, srv->auth_pass) == 0);
		break;
	}
	case A_LOGIN_USER:
		snprintf(s->login_user, sizeof(s->login_user), "%s", msg);
		s->auth = A_LOGIN_PASS;
		say_str(s, "334 UGFzc3dvcmQ6\r\n");
		break;
	case A_LOGIN_PASS:
		verdict(s, strcmp(s->login_user, srv->auth_user) == 0 &&
		                   strcmp(msg, srv->auth_pass) == 0);
		break;
	default:
		scram_step(s, msg, len);
		break;
	}
}

static void
auth_begin(struct session *s, const char *rest)
{
	struct test_server *srv = s->srv;
	const char *sp = strchr(rest, ' ');
	size_t mlen = sp != NULL ? (size_t)(sp - rest) : strlen(rest);

	test_text_add(&srv->lines, "AUTH ", 5);
	test_text_add(&srv->lines, rest, mlen);
	test_text_add(&srv->lines, "|", 1);
	if (s->authed) {
		say_str(s, "503 5.5.1 already authenticated\r\n");
		return;
	}
	if (mlen == 5 && strncasecmp(rest, "PLAIN", 5) == 0) {
		s->auth = A_PLAIN;
	} else if (mlen == 5 && strncasecmp(rest, "LOGIN", 5) == 0) {
		s->auth = A_LOGIN_USER;
		if (sp == NULL) {
			say_str(s, "334 VXNlcm5hbWU6\r\n");
			return;
		}
	} else if (mlen == 13 && strncasecmp(rest, "SCRAM-SHA-256", 13) == 0) {
		s->auth = A_SCRAM_FIRST;
		s->scram = mc_scram_server_new();
	} else {
		say_str(s, "504 5.5.4 unrecognized mechanism\r\n");
		return;
	}
	if (sp != NULL)
		auth_continue(s, sp + 1);
	else
		say_str(s, "334 \r\n");
}

/* True when the line belonged to AUTH (answered here). */
static bool
auth_line(struct session *s, const char *line)
{
	if (s->srv->auth_user == NULL)
		return false;
	if (s->auth != A_NONE) {
		auth_continue(s, line);
		return true;
	}
	if (strncasecmp(line, "AUTH ", 5) == 0) {
		auth_begin(s, line + 5);
		return true;
	}
	if (strncasecmp(line, "MAIL", 4) == 0 && !s->authed) {
		s->srv->auth_530++;
		test_text_add(&s->srv->lines, line, strlen(line));
		test_text_add(&s->srv->lines, "|", 1);
		say_str(s, "530 5.7.0 authentication required\r\n");
		return true;
	}
	return false;
}

static void
handle_line(struct session *s, const char *line)
{
	const struct test_step *st = &s->script[s->step];

	if (auth_line(s, line))
		return;
	if (strcmp(line, ".") != 0) {
		test_text_add(&s->srv->lines, line, strlen(line));
		test_text_add(&s->srv->lines, "|", 1);
	}
	if (st->expect == NULL && st->reply == NULL) {
		if (strcasecmp(line, "QUIT") == 0) {
			s->srv->quits++;
			say(s, "221 2.0.0 bye\r\n", 15);
			session_close(s, false);
			return;
		}
		problem(s->srv, "past the script: '%s'", line);
		say(s, "500 5.5.1 no script\r\n", 21);
		return;
	}
	if (st->expect == NULL || strncmp(line, st->expect, strlen(st->expect)))
		problem(s->srv, "expected '%s', got '%s'",
		        st->expect ? st->expect : "(greeting)", line);
	s->step++;
	answer(s, st->reply);
}

/* Answer queued lines in order, one reply at a time. */
static void
process(struct session *s)
{
	while (!s->closing && !s->in_data && !s->tls_started &&
	       s->pending == NULL && s->queue_off < s->queue.len) {
		char *line = s->queue.data + s->queue_off;
		char *nl = strchr(line, '\n');

		*nl = '\0';
		s->queue_off = (size_t)(nl + 1 - s->queue.data);
		handle_line(s, line);
	}
	if (s->queue_off == s->queue.len)
		s->queue.len = s->queue_off = 0;
}

/* ---- Input ------------------------------------------------------------- */

static void
slow_cb(uv_timer_t *t)
{
	struct session *s = t->data;

	mc_conn_resume(s->conn);
}

/* Returns false when the session stopped taking input. */
static bool
read_data(struct session *s, const char *data, size_t len, size_t *used_r)
{
	struct test_server *srv = s->srv;
	size_t n = srv->slow != 0 && len > srv->slow ? srv->slow : len;
	int r = mc_smtp_data_parse(&s->data, data, n, used_r);

	if (srv->keep_raw)
		test_text_add(&srv->raw, data, *used_r);
	mc_conn_consume(s->conn, *used_r);
	if (srv->drop_after != 0 && s->data.size >= srv->drop_after) {
		session_close(s, true);
		return false;
	}
	if (r == 1) {
		s->in_data = false;
		handle_line(s, ".");
		return true;
	}
	if (srv->slow != 0) {
		srv->pauses++;
		mc_conn_pause(s->conn);
		uv_timer_start(&s->slow_timer, slow_cb, 1, 0);
		return false;
	}
	return true;
}

/* Count the lines not yet answered, the new one included. */
static void
backlog(struct session *s)
{
	int n = s->pending != NULL ? 2 : 1;

	for (size_t i = s->queue_off; i < s->queue.len; i++)
		if (s->queue.data[i] == '\n')
			n++;
	if (n > s->srv->max_backlog)
		s->srv->max_backlog = n;
}

static void
on_read(struct mc_conn *conn, void *ctx, const char *data, size_t len)
{
	struct session *s = ctx;
	size_t off = 0, used;

	while (off < len && !s->closing && !s->tls_started) {
		const char *nl;
		size_t n;

		if (s->in_data) {
			if (!read_data(s, data + off, len - off, &used))
				return;
			off += used;
			continue;
		}
		if ((nl = memchr(data + off, '\n', len - off)) == NULL)
			return;
		n = (size_t)(nl - (data + off));
		mc_conn_consume(conn, n + 1);
		if (s->pending != NULL || s->queue_off < s->queue.len)
			s->srv->pipelined++;
		backlog(s);
		test_text_add(&s->queue, data + off,
		              n > 0 && data[off + n - 1] == '\r' ? n - 1 : n);
		test_text_add(&s->queue, "\n", 1);
		off += n + 1;
		process(s);
	}
}

static void
on_event(struct mc_conn *conn, void *ctx, enum mc_conn_event ev,
         const char *error)
{
	struct session *s = ctx;

	(void)conn;
	(void)error;
	if (ev == MC_CONN_DRAIN || ev == MC_CONN_CONNECTED)
		return;
	session_close(s, false);
}

static void
on_accept(struct mc_listener *listener, struct mc_conn *conn, void *ctx)
{
	static const struct mc_conn_callbacks cb = {
	        .read = on_read,
	        .event = on_event,
	};
	struct test_server *srv = ctx;
	struct session *s = mc_malloc(sizeof(*s));
	struct mc_conn_settings set = {.idle_timeout_ms = 20000};
	const char *error;

	(void)listener;
	s->srv = srv;
	s->conn = conn;
	s->script = srv->accepted > 0 && srv->script2 != NULL ? srv->script2
	                                                      : srv->script;
	s->parts = 3;
	uv_timer_init(srv->loop, &s->reply_timer);
	uv_timer_init(srv->loop, &s->slow_timer);
	s->reply_timer.data = s;
	s->slow_timer.data = s;
	srv->accepted++;
	srv->live++;
	if (mc_conn_start(conn, &set, &cb, s, &error) < 0) {
		problem(srv, "start: %s", error);
		session_close(s, true);
		return;
	}
	if (srv->implicit_tls) {
		if (mc_conn_start_tls(conn, srv->tls, NULL, tls_done, &error) <
		    0) {
			problem(srv, "implicit tls: %s", error);
			session_close(s, true);
		}
		return;
	}
	if (s->script[0].expect == NULL && s->script[0].reply != NULL) {
		s->step = 1;
		answer(s, s->script[0].reply);
	}
}

int
test_server_start(uv_loop_t *loop, struct test_server *srv)
{
	struct mc_listener_settings set = {.host = "127.0.0.1"};
	const char *error;

	srv->loop = loop;
	if (mc_listener_new(loop, &set, on_accept, srv, &srv->listener,
	                    &error) < 0) {
		fprintf(stderr, "test server: %s\n", error);
		return -1;
	}
	srv->port = mc_listener_port(srv->listener);
	return 0;
}

void
test_server_reset(struct test_server *srv)
{
	srv->accepted = srv->tls_ok = srv->tls_failed = 0;
	srv->quits = srv->pauses = srv->pipelined = srv->max_backlog = 0;
	srv->auth_ok = srv->auth_failed = srv->auth_530 = 0;
	test_text_free(&srv->lines);
	test_text_free(&srv->content);
	test_text_free(&srv->raw);
	test_text_free(&srv->problems);
}

void
test_server_stop(struct test_server *srv)
{
	if (srv->listener != NULL)
		mc_listener_close(srv->listener, NULL);
	srv->listener = NULL;
	test_text_free(&srv->lines);
	test_text_free(&srv->content);
	test_text_free(&srv->raw);
	test_text_free(&srv->problems);
}
