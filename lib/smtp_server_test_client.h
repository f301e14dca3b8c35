/* The scripted client of smtp_server_test.c: a raw non-blocking socket
 * (with an mc_tls session once STARTTLS or implicit TLS starts) driven
 * from the test's own thread, turning the test's libuv loop while it
 * waits so the server under test makes progress; plus a growable text
 * buffer. Header-only test code (static inline); include once, after
 * test.h. The test defines HOST (the server's certificate name) first and
 * creates client_tls. */
#ifndef MC_SMTP_SERVER_TEST_CLIENT_H
#define MC_SMTP_SERVER_TEST_CLIENT_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "mem.h"
#include "test.h"
#include "test_loop.h"
#include "tls.h"

#define LONG_WAIT 20000 /* generous: valgrind is slow */

static struct mc_tls_ctx *client_tls;

struct text {
	char *data;
	size_t len, cap;
};

static inline void
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

static inline void
text_addf(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

static inline bool
text_has(const struct text *t, const char *s)
{
	return t->data != NULL && strstr(t->data, s) != NULL;
}

static inline const char *
text_str(const struct text *t)
{
	return t->data != NULL ? t->data : "";
}

static inline void
text_free(struct text *t)
{
	free(t->data);
	memset(t, 0, sizeof(*t));
}

/* --- Scripted client ----------------------------------------------------- */

struct client {
	int fd;
	struct mc_tls *tls;
	struct text in;
	bool eof;
};

static inline void
client_connect(struct client *c, uint16_t port, int rcvbuf)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons(port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (rcvbuf > 0)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		           sizeof(rcvbuf));
	/* The kernel completes it from the listen backlog. */
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		perror("connect");
		exit(1);
	}
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

/* Write all of it, turning the loop while the socket is full. Returns
 * false if it could not within ms. */
static inline bool
raw_send(struct client *c, const void *data, size_t len, uint64_t ms)
{
	uint64_t end = uv_now(&loop) + ms;
	size_t off = 0;

	uv_timer_start(&tick, tick_cb, 2, 2);
	while (off < len && uv_now(&loop) < end) {
		ssize_t n = send(c->fd, (const char *)data + off, len - off,
		                 MSG_NOSIGNAL);

		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			break;
		else
			uv_run(&loop, UV_RUN_ONCE);
	}
	uv_timer_stop(&tick);
	return off == len;
}

static inline void
tls_flush(struct client *c)
{
	char buf[16384];
	size_t n;

	while ((n = mc_tls_net_out(c->tls, buf, sizeof(buf))) > 0)
		raw_send(c, buf, n, 5000);
}

static inline void
client_send(struct client *c, const char *text)
{
	const char *error;

	if (c->tls == NULL) {
		CHECK(raw_send(c, text, strlen(text), LONG_WAIT));
		return;
	}
	CHECK(mc_tls_write(c->tls, text, strlen(text), &error) == 0);
	tls_flush(c);
}

/* Take what arrived; returns true (for WAIT conditions) when the
 * condition is met elsewhere. */
static inline void
client_pump(struct client *c)
{
	char buf[16384];
	ssize_t n;

	while ((n = recv(c->fd, buf, sizeof(buf), 0)) > 0) {
		if (c->tls == NULL) {
			text_add(&c->in, buf, (size_t)n);
			continue;
		}
		mc_tls_net_in(c->tls, buf, (size_t)n);
	}
	if (n == 0)
		c->eof = true;
	if (c->tls != NULL && mc_tls_handshake_done(c->tls)) {
		const char *error;
		size_t got;
		enum mc_tls_read_result r;

		while ((r = mc_tls_read(c->tls, buf, sizeof(buf), &got,
		                        &error)) == MC_TLS_READ_DATA)
			text_add(&c->in, buf, got);
		tls_flush(c);
	}
}

static inline bool
client_wait(struct client *c, const char *s)
{
	WAIT((client_pump(c), text_has(&c->in, s) || c->eof), LONG_WAIT);
	client_pump(c);
	if (!text_has(&c->in, s))
		fprintf(stderr, "waited for '%s', have '%s'\n", s,
		        text_str(&c->in));
	return text_has(&c->in, s);
}

static inline bool
client_wait_eof(struct client *c)
{
	WAIT((client_pump(c), c->eof), LONG_WAIT);
	return c->eof;
}

/* Everything received so far, then forget it. */
static char *taken;

static inline char *
client_take(struct client *c)
{
	free(taken);
	taken = mc_strdup(text_str(&c->in));
	text_free(&c->in);
	return taken;
}

static inline bool
client_handshake(struct client *c)
{
	const char *error;
	int r;

	CHECK(mc_tls_new(client_tls, HOST, &c->tls, &error) == 0);
	for (int i = 0; i < 5000; i++) {
		r = mc_tls_handshake(c->tls, &error);
		tls_flush(c);
		if (r != 0)
			return r == 1;
		WAIT(false, 2);
		client_pump(c);
	}
	return false;
}

static inline void
client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	mc_tls_free(&c->tls);
	text_free(&c->in);
}

static inline void
client_abort(struct client *c)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	client_close(c);
}

#endif
