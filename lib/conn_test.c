/* Connections and listeners on a real libuv loop over loopback: a small
 * line server (echo; STARTTLS; PAUSE; QUIT; BLAST for back-pressure)
 * behind an mc_listener on 127.0.0.1 port 0, and mc_conn clients. Covers
 * plaintext echo, peer addresses, STARTTLS with injected bytes,
 * implicit TLS, idle timeout and deadline, the output high-water mark,
 * pause/resume with a deferred EOF, input overflow, peer reset mid-TLS,
 * closes during handshakes, connection limits, connect errors and many
 * connections opened and closed (the loop must end with no handle left). */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include <uv.h>

#include "conn.h"
#include "listener.h"
#include "mem.h"
#include "test.h"
#include "test_loop.h"
#include "tls.h"

#define HOST "mail.example.test"
#define BLAST_CHUNK (64 * 1024)

static char *srv_cert, *srv_key;
static struct mc_tls_ctx *server_tls, *client_tls;


struct text {
	char *data;
	size_t len, cap;
};

static void
text_add(struct text *t, const void *data, size_t len)
{
	if (t->len + len + 1 > t->cap) {
		t->cap = (t->len + len + 1) * 2;
		t->data = mc_realloc(t->data, t->cap);
	}
	memcpy(t->data + t->len, data, len);
	t->len += len;
	t->data[t->len] = '\0';
}

static bool
text_has(const struct text *t, const char *s)
{
	return t->data != NULL && strstr(t->data, s) != NULL;
}

static void
text_free(struct text *t)
{
	free(t->data);
	memset(t, 0, sizeof(*t));
}

/* --- The test server ---------------------------------------------------- */

struct server {
	struct mc_listener *listener;
	struct mc_conn_settings set;
	bool implicit_tls;
	bool listener_closed;
	int sessions, ev[MC_CONN_ERROR + 1];
	int tls_ok, tls_failed, accepted;
	size_t discarded;
	size_t blast_limit, blasted, max_pending;
	bool write_limit_hit;
	struct text lines, errors, tls_info, eof_notes;
};

struct session {
	struct server *srv;
	struct mc_conn *conn;
	uv_timer_t timer; /* PAUSE resume, BLAST pacing */
	bool closing;
	int parts; /* conn and timer still open */
};

static void
session_part_closed(struct session *s)
{
	if (--s->parts == 0) {
		s->srv->sessions--;
		free(s);
	}
}

static void
session_timer_closed(uv_handle_t *handle)
{
	session_part_closed(handle->data);
}

static void
session_conn_closed(void *ctx)
{
	session_part_closed(ctx);
}

static void
session_close(struct session *s)
{
	if (s->closing)
		return;
	s->closing = true;
	uv_close((uv_handle_t *)&s->timer, session_timer_closed);
	mc_conn_close(s->conn, session_conn_closed);
}

static void
say(struct session *s, const char *text)
{
	const char *error;

	if (mc_conn_write(s->conn, text, strlen(text), &error) < 0)
		text_add(&s->srv->errors, error, strlen(error));
}

static void
blast(struct session *s)
{
	static char chunk[BLAST_CHUNK];
	struct server *srv = s->srv;
	const char *error;

	while (!mc_conn_output_blocked(s->conn) &&
	       srv->blasted < srv->blast_limit) {
		for (size_t i = 0; i < sizeof(chunk); i++)
			chunk[i] = (char)('a' + (srv->blasted + i) % 26);
		if (mc_conn_write(s->conn, chunk, sizeof(chunk), &error) < 0)
			break;
		srv->blasted += sizeof(chunk);
	}
	if (mc_conn_output_pending(s->conn) > srv->max_pending)
		srv->max_pending = mc_conn_output_pending(s->conn);
}

static void
blast_cb(uv_timer_t *timer)
{
	blast(timer->data);
}

static void
resume_cb(uv_timer_t *timer)
{
	struct session *s = timer->data;

	say(s, "resumed\r\n");
	mc_conn_resume(s->conn);
}

static void
server_tls_done(struct mc_conn *conn, void *ctx, int status, const char *error)
{
	struct session *s = ctx;
	const struct mc_tls *tls = mc_conn_tls(conn);
	char info[128];

	if (status < 0) {
		s->srv->tls_failed++;
		text_add(&s->srv->errors, error, strlen(error));
		text_add(&s->srv->errors, "\n", 1);
		session_close(s);
		return;
	}
	s->srv->tls_ok++;
	snprintf(info, sizeof(info), "%s %s;", mc_tls_version(tls),
	         mc_tls_cipher(tls));
	text_add(&s->srv->tls_info, info, strlen(info));
}

static void
server_starttls(struct session *s)
{
	const char *error;

	/* Whatever was pipelined after STARTTLS must go first. */
	if (mc_conn_start_tls(s->conn, server_tls, NULL, server_tls_done,
	                      &error) == 0)
		return;
	text_add(&s->srv->errors, error, strlen(error));
	text_add(&s->srv->errors, "\n", 1);
	s->srv->discarded += mc_conn_discard_input(s->conn);
	say(s, "220 ready\r\n");
	if (mc_conn_start_tls(s->conn, server_tls, NULL, server_tls_done,
	                      &error) < 0) {
		text_add(&s->srv->errors, error, strlen(error));
		session_close(s);
	}
}

/* Returns false to stop processing input. */
static bool
server_line(struct session *s, const char *line)
{
	if (strcmp(line, "STARTTLS") == 0) {
		server_starttls(s);
		return false;
	}
	if (strcmp(line, "PAUSE") == 0) {
		mc_conn_pause(s->conn);
		uv_timer_start(&s->timer, resume_cb, 100, 0);
		return false;
	}
	if (strcmp(line, "QUIT") == 0) {
		say(s, "221 bye\r\n");
		session_close(s);
		return false;
	}
	if (strcmp(line, "BLAST") == 0) {
		blast(s);
		uv_timer_start(&s->timer, blast_cb, 1, 1);
		return true;
	}
	say(s, line);
	say(s, "\r\n");
	return true;
}

static void
server_read(struct mc_conn *conn, void *ctx, const char *data, size_t len)
{
	struct session *s = ctx;
	size_t off = 0;

	while (off < len && !mc_conn_output_blocked(conn)) {
		const char *nl = memchr(data + off, '\n', len - off);
		char line[4096];
		size_t n;

		if (nl == NULL)
			break;
		n = (size_t)(nl - (data + off)) + 1;
		snprintf(line, sizeof(line), "%.*s", (int)n, data + off);
		line[strcspn(line, "\r\n")] = '\0';
		mc_conn_consume(conn, n);
		off += n;
		text_add(&s->srv->lines, line, strlen(line));
		text_add(&s->srv->lines, "|", 1);
		if (!server_line(s, line))
			break;
	}
}

static void
server_event(struct mc_conn *conn, void *ctx, enum mc_conn_event ev,
             const char *error)
{
	struct session *s = ctx;

	(void)conn;
	s->srv->ev[ev]++;
	switch (ev) {
	case MC_CONN_IDLE_TIMEOUT:
		say(s, "421 idle\r\n");
		session_close(s);
		break;
	case MC_CONN_DEADLINE:
		say(s, "421 deadline\r\n");
		session_close(s);
		break;
	case MC_CONN_EOF:
		text_add(&s->srv->eof_notes, error ? error : "clean",
		         strlen(error ? error : "clean"));
		text_add(&s->srv->eof_notes, ";", 1);
		session_close(s);
		break;
	case MC_CONN_ERROR:
		text_add(&s->srv->errors, error, strlen(error));
		text_add(&s->srv->errors, "\n", 1);
		session_close(s);
		break;
	case MC_CONN_DRAIN:
		blast(s);
		break;
	default:
		break;
	}
}

static const struct mc_conn_callbacks server_callbacks = {
        .read = server_read,
        .event = server_event,
};

static void
server_accept(struct mc_listener *listener, struct mc_conn *conn, void *ctx)
{
	struct server *srv = ctx;
	struct session *s = mc_malloc(sizeof(*s));
	const char *error;

	(void)listener;
	s->srv = srv;
	s->conn = conn;
	s->parts = 2;
	uv_timer_init(&loop, &s->timer);
	s->timer.data = s;
	srv->sessions++;
	srv->accepted++;
	if (mc_conn_start(conn, &srv->set, &server_callbacks, s, &error) < 0) {
		text_add(&srv->errors, error, strlen(error));
		session_close(s);
		return;
	}
	if (srv->implicit_tls) {
		if (mc_conn_start_tls(conn, server_tls, NULL, server_tls_done,
		                      &error) < 0) {
			text_add(&srv->errors, error, strlen(error));
			session_close(s);
			return;
		}
		say(s, "220 greeting\r\n"); /* held until the handshake ends */
	}
}

static uint16_t
server_start(struct server *srv, const char *host, unsigned max_conns)
{
	struct mc_listener_settings set = {.host = host,
	                                   .max_conns = max_conns};
	const char *error;

	if (mc_listener_new(&loop, &set, server_accept, srv, &srv->listener,
	                    &error) < 0) {
		fprintf(stderr, "listener: %s\n", error);
		return 0;
	}
	return mc_listener_port(srv->listener);
}

static void
listener_closed(void *ctx)
{
	struct server *srv = ctx;

	srv->listener_closed = true;
}

/* Close the listener, wait for every session to end, free the texts. */
static void
server_stop(struct server *srv)
{
	if (srv->listener != NULL)
		mc_listener_close(srv->listener, listener_closed);
	WAIT(srv->sessions == 0 && srv->listener_closed, 5000);
	CHECK(srv->sessions == 0);
	text_free(&srv->lines);
	text_free(&srv->errors);
	text_free(&srv->tls_info);
	text_free(&srv->eof_notes);
}

/* --- Test clients ------------------------------------------------------- */

struct client {
	struct mc_conn *conn;
	int ev[MC_CONN_ERROR + 1];
	int tls_status; /* 0 pending, 1 ok, -1 failed */
	bool closed;
	bool pause_on_connect;
	bool tls_on_connect;
	const char *peer_name;
	struct text in, errors;
};

static void
client_read(struct mc_conn *conn, void *ctx, const char *data, size_t len)
{
	struct client *c = ctx;

	text_add(&c->in, data, len);
	mc_conn_consume(conn, len);
}

static void client_tls_done(struct mc_conn *conn, void *ctx, int status,
                            const char *error);

static void
client_event(struct mc_conn *conn, void *ctx, enum mc_conn_event ev,
             const char *error)
{
	struct client *c = ctx;

	c->ev[ev]++;
	if (error != NULL) {
		text_add(&c->errors, error, strlen(error));
		text_add(&c->errors, "\n", 1);
	}
	if (ev == MC_CONN_CONNECTED && c->pause_on_connect)
		mc_conn_pause(conn);
	if (ev == MC_CONN_CONNECTED && c->tls_on_connect) {
		const char *err;

		if (mc_conn_start_tls(conn, client_tls, c->peer_name,
		                      client_tls_done, &err) < 0)
			text_add(&c->errors, err, strlen(err));
	}
}

static const struct mc_conn_callbacks client_callbacks = {
        .read = client_read,
        .event = client_event,
};

static void
client_tls_done(struct mc_conn *conn, void *ctx, int status, const char *error)
{
	struct client *c = ctx;

	(void)conn;
	c->tls_status = status == 0 ? 1 : -1;
	if (error != NULL) {
		text_add(&c->errors, error, strlen(error));
		text_add(&c->errors, "\n", 1);
	}
}

static void
client_closed(void *ctx)
{
	struct client *c = ctx;

	c->closed = true;
}

static bool
client_connect(struct client *c, const char *ip, uint16_t port,
               const struct mc_conn_settings *set)
{
	const char *error;

	if (mc_conn_connect(&loop, ip, port, set, &client_callbacks, c,
	                    &c->conn, &error) < 0) {
		fprintf(stderr, "connect: %s\n", error);
		return false;
	}
	return true;
}

static void
client_send(struct client *c, const char *text)
{
	const char *error;

	if (mc_conn_write(c->conn, text, strlen(text), &error) < 0)
		fprintf(stderr, "client write: %s\n", error);
}

static void
client_close(struct client *c)
{
	if (c->conn != NULL && !c->closed)
		mc_conn_close(c->conn, client_closed);
	WAIT(c->closed, 5000);
	CHECK(c->closed);
	text_free(&c->in);
	text_free(&c->errors);
}

/* --- Tests -------------------------------------------------------------- */

static void
test_plain_echo(void)
{
	struct server srv = {0};
	struct client c = {0};
	uint16_t port = server_start(&srv, "127.0.0.1", 0);

	CHECK(port != 0);
	CHECK(srv.listener != NULL && strncmp(mc_listener_address(srv.listener),
	                                      "127.0.0.1:", 10) == 0);
	CHECK(client_connect(&c, "127.0.0.1", port, NULL));
	client_send(&c, "hello\r\n"); /* queued before the connection is up */
	WAIT(text_has(&c.in, "hello\r\n"), 2000);
	CHECK(c.ev[MC_CONN_CONNECTED] == 1);
	CHECK_STR(c.in.data, "hello\r\n");
	CHECK_STR(mc_conn_peer_ip(c.conn), "127.0.0.1");
	CHECK(mc_conn_peer_port(c.conn) == port);
	CHECK_STR(mc_conn_local_ip(c.conn), "127.0.0.1");
	CHECK(mc_conn_local_port(c.conn) != 0);
	CHECK(strncmp(mc_conn_peer(c.conn), "127.0.0.1:", 10) == 0);
	CHECK(mc_conn_tls(c.conn) == NULL);
	CHECK(mc_listener_conns(srv.listener) == 1);
	/* Pipelined lines split at odd places. */
	client_send(&c, "one\r\ntw");
	client_send(&c, "o\r\nthree\r");
	client_send(&c, "\nQUIT\r\n");
	WAIT(c.ev[MC_CONN_EOF] == 1, 2000);
	CHECK_STR(c.in.data, "hello\r\none\r\ntwo\r\nthree\r\n221 bye\r\n");
	CHECK_STR(srv.lines.data, "hello|one|two|three|QUIT|");
	CHECK(c.ev[MC_CONN_EOF] == 1);
	CHECK(c.ev[MC_CONN_ERROR] == 0);
	client_close(&c);
	WAIT(mc_listener_conns(srv.listener) == 0, 2000);
	CHECK(mc_listener_conns(srv.listener) == 0);
	server_stop(&srv);
}

static void
test_ipv6(void)
{
	struct server srv = {0};
	struct mc_listener_settings set = {.host = "::1"};
	struct client c = {0};
	const char *error;

	if (mc_listener_new(&loop, &set, server_accept, &srv, &srv.listener,
	                    &error) < 0) {
		printf("skipping IPv6: %s\n", error);
		return;
	}
	CHECK(strncmp(mc_listener_address(srv.listener), "[::1]:", 6) == 0);
	CHECK(client_connect(&c, "::1", mc_listener_port(srv.listener), NULL));
	client_send(&c, "six\r\n");
	WAIT(text_has(&c.in, "six\r\n"), 2000);
	CHECK_STR(c.in.data, "six\r\n");
	CHECK_STR(mc_conn_peer_ip(c.conn), "::1");
	CHECK(strncmp(mc_conn_peer(c.conn), "[::1]:", 6) == 0);
	client_close(&c);
	server_stop(&srv);
}

static void
test_starttls(void)
{
	struct server srv = {0};
	struct client c = {.peer_name = HOST};
	uint16_t port = server_start(&srv, "127.0.0.1", 0);
	const struct mc_tls *tls;
	const char *error;

	CHECK(client_connect(&c, "127.0.0.1", port, NULL));
	client_send(&c, "EHLO x\r\n");
	WAIT(text_has(&c.in, "EHLO x\r\n"), 2000);
	/* A man in the middle appends a command to STARTTLS. */
	client_send(&c, "STARTTLS\r\nINJECTED\r\n");
	WAIT(text_has(&c.in, "220 ready\r\n"), 2000);
	CHECK(srv.discarded == 10);
	CHECK(text_has(&srv.errors, "10 bytes received before TLS"));
	CHECK(mc_conn_start_tls(c.conn, client_tls, HOST, client_tls_done,
	                        &error) == 0);
	/* A second switch is refused; so is writing nothing... */
	CHECK(mc_conn_start_tls(c.conn, client_tls, HOST, client_tls_done,
	                        &error) < 0);
	CHECK_STR(error, "TLS is already active");
	client_send(&c, "over tls\r\n"); /* held until the handshake ends */
	WAIT(text_has(&c.in, "over tls\r\n"), 5000);
	CHECK(c.tls_status == 1);
	CHECK(srv.tls_ok == 1);
	CHECK(!text_has(&srv.lines, "INJECTED"));
	CHECK_STR(srv.lines.data, "EHLO x|STARTTLS|over tls|");
	tls = mc_conn_tls(c.conn);
	CHECK(tls != NULL && mc_tls_peer_verified(tls, NULL));
	CHECK(tls != NULL && strcmp(mc_tls_version(tls), "TLSv1.3") == 0);
	CHECK(text_has(&srv.tls_info, "TLSv1.3 TLS_"));
	/* The client closes with close_notify: a clean EOF. */
	client_close(&c);
	WAIT(srv.ev[MC_CONN_EOF] == 1, 2000);
	CHECK_STR(srv.eof_notes.data, "clean;");
	server_stop(&srv);
}

static void
test_implicit_tls(void)
{
	struct server srv = {.implicit_tls = true};
	struct client c = {.peer_name = HOST, .tls_on_connect = true};
	struct client bad = {.peer_name = "wrong.example.test",
	                     .tls_on_connect = true};
	uint16_t port = server_start(&srv, "127.0.0.1", 0);

	CHECK(client_connect(&c, "127.0.0.1", port, NULL));
	WAIT(text_has(&c.in, "220 greeting\r\n"), 5000);
	CHECK(c.tls_status == 1);
	CHECK_STR(c.in.data, "220 greeting\r\n");
	client_send(&c, "ping\r\n");
	WAIT(text_has(&c.in, "ping\r\n"), 2000);
	client_send(&c, "QUIT\r\n");
	WAIT(c.ev[MC_CONN_EOF] == 1, 2000);
	CHECK(text_has(&c.in, "221 bye\r\n"));
	CHECK(c.ev[MC_CONN_ERROR] == 0);
	CHECK(c.errors.data == NULL); /* the server sent close_notify */
	client_close(&c);

	/* Wrong name: the client's handshake fails, the server hears of
	 * it through its own handshake callback. */
	CHECK(client_connect(&bad, "127.0.0.1", port, NULL));
	WAIT(bad.tls_status != 0 && srv.tls_failed == 1, 5000);
	CHECK(bad.tls_status == -1);
	CHECK(text_has(&bad.errors, "hostname mismatch"));
	CHECK(srv.tls_failed == 1);
	CHECK(!text_has(&bad.in, "greeting"));
	client_close(&bad);
	server_stop(&srv);
}

static void
test_tls_handshake_failures(void)
{
	struct server srv = {.implicit_tls = true,
	                     .set = {.idle_timeout_ms = 150}};
	struct client plain = {0}, silent = {0};
	struct client quitter = {.peer_name = HOST};
	uint16_t port = server_start(&srv, "127.0.0.1", 0);
	const char *error;

	/* Plaintext SMTP to a TLS port. */
	CHECK(client_connect(&plain, "127.0.0.1", port, NULL));
	client_send(&plain, "EHLO plain\r\n");
	WAIT(plain.ev[MC_CONN_EOF] + plain.ev[MC_CONN_ERROR] > 0, 2000);
	CHECK(srv.tls_failed == 1);
	CHECK(text_has(&srv.errors, "TLS handshake: "));
	client_close(&plain);

	/* A client that never sends its ClientHello: the handshake times
	 * out on the server, which closes. */
	CHECK(client_connect(&silent, "127.0.0.1", port, NULL));
	WAIT(silent.ev[MC_CONN_EOF] > 0, 2000);
	CHECK(srv.tls_failed == 2);
	CHECK(text_has(&srv.errors, "TLS handshake: timed out"));
	client_close(&silent);

	/* The client closes right after starting its handshake. */
	CHECK(client_connect(&quitter, "127.0.0.1", port, NULL));
	WAIT(quitter.ev[MC_CONN_CONNECTED] == 1, 2000);
	CHECK(mc_conn_start_tls(quitter.conn, client_tls, HOST, client_tls_done,
	                        &error) == 0);
	mc_conn_close(quitter.conn, client_closed);
	WAIT(quitter.closed && srv.tls_failed == 3, 2000);
	CHECK(quitter.closed);
	CHECK(quitter.tls_status == 0); /* no callback after close */
	CHECK(srv.tls_failed == 3);
	text_free(&quitter.in);
	text_free(&quitter.errors);
	server_stop(&srv);
}

static void
test_timeouts(void)
{
	struct server srv = {.set = {.idle_timeout_ms = 100}};
	struct client c = {0}, busy = {0};
	uint16_t port = server_start(&srv, "127.0.0.1", 0);
	uint64_t start = uv_now(&loop);

	CHECK(client_connect(&c, "127.0.0.1", port, NULL));
	WAIT(c.ev[MC_CONN_EOF] == 1, 2000);
	CHECK(uv_now(&loop) - start >= 90);
	CHECK(srv.ev[MC_CONN_IDLE_TIMEOUT] == 1);
	CHECK_STR(c.in.data, "421 idle\r\n");
	client_close(&c);
	server_stop(&srv);

	/* Busy but past the deadline. */
	memset(&srv, 0, sizeof(srv));
	srv.set.idle_timeout_ms = 100;
	srv.set.deadline_ms = 300;
	port = server_start(&srv, "127.0.0.1", 0);
	CHECK(client_connect(&busy, "127.0.0.1", port, NULL));
	start = uv_now(&loop);
	while (busy.ev[MC_CONN_EOF] == 0 && uv_now(&loop) - start < 2000) {
		client_send(&busy, "tick\r\n");
		WAIT(busy.ev[MC_CONN_EOF] > 0, 40);
	}
	CHECK(srv.ev[MC_CONN_DEADLINE] == 1);
	CHECK(srv.ev[MC_CONN_IDLE_TIMEOUT] == 0);
	CHECK(uv_now(&loop) - start >= 280);
	CHECK(text_has(&busy.in, "tick\r\n421 deadline\r\n"));
	client_close(&busy);
	server_stop(&srv);
}

static void
test_high_water(void)
{
	struct server srv = {.set = {.output_max = 2 * 1024 * 1024,
	                             .output_high = 256 * 1024},
	                     .blast_limit = 16 * 1024 * 1024};
	struct mc_conn_settings small = {.input_max = 16 * 1024};
	struct client c = {.pause_on_connect = true};
	uint16_t port = server_start(&srv, "127.0.0.1", 0);
	size_t blasted;
	bool same = true;
	int drains;

	CHECK(client_connect(&c, "127.0.0.1", port, &small));
	client_send(&c, "BLAST\r\n");
	/* The client reads nothing: the kernel buffers fill up, then ours
	 * reaches the high-water mark and stays there. */
	WAIT(false, 1500);
	blasted = srv.blasted;
	WAIT(false, 300);
	CHECK(srv.blasted == blasted);
	printf("blocked after %zu bytes, max pending %zu\n", blasted,
	       srv.max_pending);
	CHECK(blasted < srv.blast_limit);
	CHECK(srv.max_pending > 256 * 1024);
	CHECK(srv.max_pending <= 2 * 1024 * 1024);
	/* Reading stopped too: this line is not answered while blocked. */
	drains = srv.ev[MC_CONN_DRAIN];
	client_send(&c, "later\r\n");
	WAIT(false, 200);
	CHECK(!text_has(&srv.lines, "later"));
	CHECK(srv.ev[MC_CONN_DRAIN] == drains);
	/* The client starts reading: drain events, everything arrives. */
	mc_conn_resume(c.conn);
	WAIT(c.in.len >= srv.blast_limit + 7, 60000);
	CHECK(srv.blasted == srv.blast_limit);
	CHECK(srv.ev[MC_CONN_DRAIN] > drains);
	CHECK(c.in.len == srv.blast_limit + 7);
	for (size_t i = 0; i < srv.blast_limit && i < c.in.len; i++)
		same &= c.in.data[i] == (char)('a' + i % 26);
	CHECK(same);
	CHECK(text_has(&srv.lines, "later"));
	CHECK(c.in.len >= 7 &&
	      memcmp(c.in.data + c.in.len - 7, "later\r\n", 7) == 0);
	client_close(&c);
	server_stop(&srv);
}

static void
test_output_max(void)
{
	struct server srv = {0};
	struct mc_conn_settings set = {.output_max = 1000, .output_high = 500};
	struct client c = {0};
	uint16_t port = server_start(&srv, "127.0.0.1", 0);
	char big[1001];
	const char *error = NULL;

	memset(big, 'x', sizeof(big));
	CHECK(client_connect(&c, "127.0.0.1", port, &set));
	/* Nothing leaves before the connection is up. */
	CHECK(mc_conn_write(c.conn, big, 1001, &error) < 0);
	CHECK(error != NULL && strstr(error, "output buffer full") != NULL);
	CHECK(mc_conn_write(c.conn, big, 600, &error) == 0);
	CHECK(mc_conn_output_blocked(c.conn));
	CHECK(mc_conn_write(c.conn, big, 401, &error) < 0);
	CHECK(mc_conn_write(c.conn, "\r\n", 2, &error) == 0);
	WAIT(c.in.len >= 602, 2000);
	CHECK(c.in.len == 602);
	CHECK(!mc_conn_output_blocked(c.conn));
	CHECK(c.ev[MC_CONN_DRAIN] == 1);
	client_close(&c);
	server_stop(&srv);
}

static void
test_pause_and_eof(void)
{
	struct server srv = {0};
	struct client c = {0};
	uint16_t port = server_start(&srv, "127.0.0.1", 0);
	uint64_t start;

	CHECK(client_connect(&c, "127.0.0.1", port, NULL));
	WAIT(c.ev[MC_CONN_CONNECTED] == 1, 2000);
	start = uv_now(&loop);
	/* Everything at once, then the client's FIN: the server is paused
	 * when the FIN arrives, yet processes the rest before the EOF. */
	client_send(&c, "PAUSE\r\na\r\nb\r\nQUIT\r\n");
	mc_conn_close(c.conn, client_closed);
	WAIT(c.closed && srv.sessions == 0, 2000);
	CHECK(uv_now(&loop) - start >= 90);
	CHECK_STR(srv.lines.data, "PAUSE|a|b|QUIT|");
	CHECK(srv.ev[MC_CONN_EOF] == 0); /* QUIT closed first */
	text_free(&c.in);
	text_free(&c.errors);
	server_stop(&srv);
}

static void
test_input_full(void)
{
	struct server srv = {.set = {.input_max = 1024}};
	struct client c = {0};
	uint16_t port = server_start(&srv, "127.0.0.1", 0);
	char line[3000];

	memset(line, 'y', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	CHECK(client_connect(&c, "127.0.0.1", port, NULL));
	client_send(&c, "short\r\n");
	client_send(&c, line);
	WAIT(srv.ev[MC_CONN_ERROR] == 1, 2000);
	CHECK(text_has(&srv.errors, "input buffer full (1024 bytes"));
	CHECK_STR(srv.lines.data, "short|");
	client_close(&c);
	server_stop(&srv);
}

static void
test_peer_reset_mid_tls(void)
{
	struct server srv = {.implicit_tls = true};
	struct client c = {.peer_name = HOST, .tls_on_connect = true};
	uint16_t port = server_start(&srv, "127.0.0.1", 0);

	CHECK(client_connect(&c, "127.0.0.1", port, NULL));
	WAIT(text_has(&c.in, "220 greeting"), 5000);
	CHECK(c.tls_status == 1);
	mc_conn_abort(c.conn, client_closed);
	WAIT(srv.ev[MC_CONN_ERROR] + srv.ev[MC_CONN_EOF] > 0, 2000);
	CHECK(srv.ev[MC_CONN_ERROR] == 1);
	CHECK(text_has(&srv.errors, "reset"));
	if (srv.errors.data != NULL)
		printf("server after reset: %s", srv.errors.data);
	WAIT(c.closed, 2000);
	CHECK(c.closed);
	text_free(&c.in);
	text_free(&c.errors);
	server_stop(&srv);
}

static void
test_connect_errors(void)
{
	struct server srv = {0}, dup = {0};
	struct client c = {0};
	struct mc_conn_settings bad = {.output_max = 100, .output_high = 100};
	struct mc_listener_settings lset = {.host = "127.0.0.1"};
	struct mc_listener *l;
	struct mc_conn *conn;
	const char *error;
	uint16_t port = server_start(&srv, "127.0.0.1", 0);

	/* The port is in use. */
	lset.port = port;
	CHECK(mc_listener_new(&loop, &lset, server_accept, &dup, &l, &error) <
	      0);
	CHECK(strstr(error, "address already in use") != NULL);
	lset.host = "localhost";
	CHECK(mc_listener_new(&loop, &lset, server_accept, &dup, &l, &error) <
	      0);
	CHECK(strstr(error, "not an IP address") != NULL);
	CHECK(mc_conn_connect(&loop, "mail.example", 25, NULL,
	                      &client_callbacks, &c, &conn, &error) < 0);
	CHECK(mc_conn_connect(&loop, "127.0.0.1", port, &bad, &client_callbacks,
	                      &c, &conn, &error) < 0);
	server_stop(&srv);

	/* Nobody listens there any more. */
	CHECK(client_connect(&c, "127.0.0.1", port, NULL));
	WAIT(c.ev[MC_CONN_ERROR] == 1, 2000);
	CHECK(c.ev[MC_CONN_CONNECTED] == 0);
	CHECK(text_has(&c.errors, "connection refused"));
	client_close(&c);
}

static void
test_many_connections(void)
{
	enum { N = 200, TLS_N = 10 };
	struct server srv = {0};
	struct client *cs = mc_calloc(N, sizeof(*cs));
	uint16_t port = server_start(&srv, "127.0.0.1", 0);
	int done = 0;

	for (int i = 0; i < N; i++) {
		client_connect(&cs[i], "127.0.0.1", port, NULL);
		client_send(&cs[i], "hi\r\nQUIT\r\n");
	}
	for (int i = 0; i < N; i++) {
		WAIT(cs[i].ev[MC_CONN_EOF] == 1, 5000);
		done += strcmp(cs[i].in.data ? cs[i].in.data : "",
		               "hi\r\n221 bye\r\n") == 0;
		mc_conn_close(cs[i].conn, client_closed);
	}
	CHECK(done == N);
	for (int i = 0; i < N; i++) {
		WAIT(cs[i].closed, 5000);
		text_free(&cs[i].in);
		text_free(&cs[i].errors);
	}
	WAIT(srv.sessions == 0, 5000);
	CHECK(srv.accepted == N);
	CHECK(mc_listener_conns(srv.listener) == 0);

	/* A few over TLS, all at once, closed from the client side. */
	memset(cs, 0, N * sizeof(*cs));
	srv.implicit_tls = true;
	for (int i = 0; i < TLS_N; i++) {
		cs[i].peer_name = HOST;
		cs[i].tls_on_connect = true;
		client_connect(&cs[i], "127.0.0.1", port, NULL);
	}
	done = 0;
	for (int i = 0; i < TLS_N; i++) {
		WAIT(text_has(&cs[i].in, "220 greeting"), 10000);
		done += cs[i].tls_status == 1;
		client_close(&cs[i]);
	}
	CHECK(done == TLS_N);
	WAIT(srv.sessions == 0, 5000);
	CHECK(mc_listener_conns(srv.listener) == 0);
	free(cs);
	server_stop(&srv);
}

static void
test_connection_limit(void)
{
	enum { N = 8, MAX = 5 };
	struct server srv = {0};
	struct client cs[N];
	uint16_t port = server_start(&srv, "127.0.0.1", MAX);
	int answered = 0, refused = 0;

	memset(cs, 0, sizeof(cs));
	for (int i = 0; i < N; i++) {
		client_connect(&cs[i], "127.0.0.1", port, NULL);
		client_send(&cs[i], "hello\r\n");
	}
	for (int i = 0; i < N; i++)
		WAIT(text_has(&cs[i].in, "hello") ||
		             cs[i].ev[MC_CONN_EOF] + cs[i].ev[MC_CONN_ERROR] >
		                     0,
		     3000);
	for (int i = 0; i < N; i++) {
		answered += text_has(&cs[i].in, "hello");
		refused +=
		        cs[i].ev[MC_CONN_EOF] + cs[i].ev[MC_CONN_ERROR] > 0 &&
		        !text_has(&cs[i].in, "hello");
	}
	CHECK(answered == MAX);
	CHECK(refused == N - MAX);
	CHECK(mc_listener_refused(srv.listener) == N - MAX);
	for (int i = 0; i < N; i++)
		client_close(&cs[i]);
	server_stop(&srv);
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

	test_plain_echo();
	test_ipv6();
	test_starttls();
	test_implicit_tls();
	test_tls_handshake_failures();
	test_timeouts();
	test_high_water();
	test_output_max();
	test_pause_and_eof();
	test_input_full();
	test_peer_reset_mid_tls();
	test_connect_errors();
	test_many_connections();
	test_connection_limit();

	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0); /* no handle left behind */
	mc_tls_ctx_free(&server_tls);
	mc_tls_ctx_free(&client_tls);
	mc_wipe(srv_key, strlen(srv_key));
	free(srv_key);
	free(srv_cert);
	return mc_test_done();
}
