/* One TCP connection on libuv with optional TLS; see conn.h. This file
 * owns the connection state machine (new, connecting, open, TLS handshake,
 * TLS, failed, closing, closed) once a conn exists: its four libuv handles
 * (the socket, the idle and deadline timers, and an idle handle that
 * defers work to the next loop iteration so no callback runs inside an API
 * call), the input buffer and the two output buffers (one being written by
 * libuv, one collecting), the glue between socket reads/writes and a
 * memory-BIO mc_tls session, and teardown. Failures are recorded with their
 * text and reported from the deferred-work handle. Creation (accept,
 * connect, settings, addresses) is in conn_open.c. */
#include "conn.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conn_private.h"
#include "error.h"
#include "log.h"
#include "mem.h"
#include "tls.h"

static const char *const state_names[] = {
        "new", "connecting", "open",    "handshake",
        "tls", "failed",     "closing", "closed",
};

const char *
conn_state_name(enum conn_state state)
{
	return state_names[state];
}

static void deliver(struct mc_conn *conn);
static void kick_cb(uv_idle_t *handle);

/* --- Small helpers ------------------------------------------------------ */

void
conn_set_state(struct mc_conn *conn, enum conn_state state)
{
	mc_debug("conn=%" PRIu64 " peer=%s state=%s->%s", conn->id, conn->peer,
	         state_names[conn->state], state_names[state]);
	conn->state = state;
}

static void
buf_reserve(struct conn_buf *b, size_t extra)
{
	size_t need = b->len + extra, cap = b->cap ? b->cap : 4096;

	if (need <= b->cap)
		return;
	while (cap < need)
		cap *= 2;
	b->data = mc_realloc(b->data, cap);
	b->cap = cap;
}

static void
buf_append(struct conn_buf *b, const void *data, size_t len)
{
	buf_reserve(b, len);
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

/* Idle connections should not keep big buffers. */
static void
buf_trim(struct conn_buf *b)
{
	if (b->len == 0 && b->cap > CONN_BUF_KEEP) {
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
}

static void
buf_free(struct conn_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static size_t
unconsumed(const struct mc_conn *conn)
{
	return conn->in.len - conn->in_off;
}

/* Move unconsumed input to the front; not while the owner holds a pointer
 * into the buffer. */
static void
compact_input(struct mc_conn *conn)
{
	if (conn->in_callback || conn->in_off == 0)
		return;
	memmove(conn->in.data, conn->in.data + conn->in_off, unconsumed(conn));
	conn->in.len -= conn->in_off;
	conn->in_off = 0;
	buf_trim(&conn->in);
}

static size_t
output_size(const struct mc_conn *conn)
{
	return conn->plain.len + conn->wq.len + conn->wf.len;
}

static bool
is_open(const struct mc_conn *conn)
{
	return conn->state == CONN_OPEN || conn->state == CONN_TLS;
}

/* Whether the owner may be shown input now. */
static bool
can_present(const struct mc_conn *conn)
{
	return is_open(conn) && !conn->paused && !conn->output_high &&
	       !conn->deadline_hit;
}

void
conn_touch(struct mc_conn *conn)
{
	conn->last_activity = uv_now(conn->loop);
}

/* Run kick_cb on the next loop iteration. */
static void
schedule(struct mc_conn *conn)
{
	if (conn->state != CONN_CLOSED)
		uv_idle_start(&conn->kick, kick_cb);
}

static void
arm(uv_timer_t *timer, uint64_t ms, uv_timer_cb cb)
{
	if (ms == MC_CONN_NO_TIMEOUT)
		uv_timer_stop(timer);
	else
		uv_timer_start(timer, cb, ms, 0);
}

/* Record a fatal error; the owner hears of it from kick_cb. The first
 * error wins. While closing, any error just ends the close. */
static void
fail(struct mc_conn *conn, const char *error)
{
	if (conn->state == CONN_CLOSING) {
		conn_close_handles(conn, false);
		return;
	}
	if (conn->state == CONN_FAILED || conn->state == CONN_CLOSED)
		return;
	mc_debug("conn=%" PRIu64 " peer=%s error=\"%s\"", conn->id, conn->peer,
	         error);
	conn_set_state(conn, CONN_FAILED);
	conn->error = mc_strdup(error);
	conn->failure_pending = true;
	conn->plain.len = 0;
	if (conn->reading) {
		uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->reading = false;
	}
	schedule(conn);
}

void
conn_io_fail(struct mc_conn *conn, const char *what, int uverr)
{
	conn->io_broken = true;
	fail(conn, mc_errorf("%s: %s", what, uv_strerror(uverr)));
}

/* --- Output --------------------------------------------------------------- */

static void start_shutdown(struct mc_conn *conn);

static void write_cb(uv_write_t *req, int status);

/* Hand the collected bytes to libuv unless a write is in flight. */
void
conn_flush(struct mc_conn *conn)
{
	struct conn_buf swap;
	uv_buf_t b;
	int r;

	if (conn->writing || conn->wq.len == 0 || conn->io_broken ||
	    conn->state == CONN_NEW || conn->state == CONN_CONNECTING ||
	    conn->state == CONN_CLOSED)
		return;
	swap = conn->wf;
	conn->wf = conn->wq;
	conn->wq = swap;
	b = uv_buf_init(conn->wf.data, (unsigned int)conn->wf.len);
	r = uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, &b, 1,
	             write_cb);
	if (r < 0) {
		conn->wf.len = 0;
		conn_io_fail(conn, "write", r);
		return;
	}
	conn->writing = true;
}

/* Move the session's pending ciphertext to the wire queue. */
static void
flush_tls(struct mc_conn *conn)
{
	size_t n = mc_tls_net_out_pending(conn->tls);

	if (n > 0) {
		buf_reserve(&conn->wq, n);
		conn->wq.len += mc_tls_net_out(conn->tls,
		                               conn->wq.data + conn->wq.len, n);
	}
	conn_flush(conn);
}

static void
check_high(struct mc_conn *conn)
{
	if (!conn->output_high && output_size(conn) > conn->set.output_high) {
		conn->output_high = true;
		conn_update_reading(conn);
	}
}

static void
check_low(struct mc_conn *conn)
{
	if (!conn->output_high || output_size(conn) > conn->set.output_high / 2)
		return;
	conn->output_high = false;
	if (is_open(conn))
		conn->cb.event(conn, conn->ctx, MC_CONN_DRAIN, NULL);
	if (is_open(conn))
		schedule(conn); /* present what waited */
}

static void
write_cb(uv_write_t *req, int status)
{
	struct mc_conn *conn = req->data;

	conn->writing = false;
	conn->wf.len = 0;
	buf_trim(&conn->wf);
	if (status == UV_ECANCELED || conn->state == CONN_CLOSED)
		return;
	if (status < 0) {
		conn_io_fail(conn, "write", status);
		return;
	}
	conn_touch(conn);
	conn_flush(conn);
	if (conn->state == CONN_CLOSING) {
		if (!conn->writing)
			start_shutdown(conn);
		return;
	}
	check_low(conn);
}

/* --- Input ---------------------------------------------------------------- */

static void
alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	/* Ciphertext (and bytes discarded while closing) pass through here
	 * on their way into the TLS session: libuv calls read_cb right after
	 * this, before any other connection can reuse it. */
	static _Thread_local char scratch[CONN_READ_CHUNK];
	struct mc_conn *conn = handle->data;
	size_t room;

	(void)suggested;
	if (conn->state != CONN_OPEN) {
		*buf = uv_buf_init(scratch, sizeof(scratch));
		return;
	}
	compact_input(conn);
	room = conn->set.input_max - unconsumed(conn);
	if (room > CONN_READ_CHUNK)
		room = CONN_READ_CHUNK;
	buf_reserve(&conn->in, room);
	*buf = uv_buf_init(conn->in.data + conn->in.len, (unsigned int)room);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Read from the socket exactly when input can go somewhere. */
void
conn_update_reading(struct mc_conn *conn)
{
	bool want;
	int r;

	switch (conn->state) {
	case CONN_HANDSHAKE:
		want = !conn->eof_seen;
		break;
	case CONN_OPEN:
	case CONN_TLS:
		want = !conn->eof_seen && can_present(conn) &&
		       unconsumed(conn) < conn->set.input_max;
		break;
	case CONN_CLOSING:
		want = conn->lingering;
		break;
	default:
		want = false;
		break;
	}
	if (want == conn->reading)
		return;
	if (want) {
		r = uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
		if (r < 0) {
			conn_io_fail(conn, "read", r);
			return;
		}
	} else {
		uv_read_stop((uv_stream_t *)&conn->tcp);
	}
	conn->reading = want;
}

/* Decrypt into the input buffer while it has room. */
static void
decrypt(struct mc_conn *conn)
{
	enum mc_tls_read_result r;
	const char *error;
	size_t room, n;

	compact_input(conn);
	while (!conn->tls_closed &&
	       (room = conn->set.input_max - unconsumed(conn)) > 0) {
		if (room > CONN_READ_CHUNK)
			room = CONN_READ_CHUNK;
		buf_reserve(&conn->in, room);
		r = mc_tls_read(conn->tls, conn->in.data + conn->in.len, room,
		                &n, &error);
		if (r == MC_TLS_READ_DATA) {
			conn->in.len += n;
			continue;
		}
		if (r == MC_TLS_READ_CLOSED) /* close_notify: a clean end */
			conn->eof_seen = conn->tls_closed = true;
		if (r == MC_TLS_READ_ERROR) {
			flush_tls(conn); /* the alert */
			fail(conn, error);
			return;
		}
		break;
	}
	flush_tls(conn);
}

/* Present buffered input to the owner until it stops consuming, then
 * report a pending EOF and adjust reading. */
static void
deliver(struct mc_conn *conn)
{
	if (conn->delivering)
		return;
	conn->delivering = true;
	while (can_present(conn) && unconsumed(conn) > 0) {
		size_t before = conn->in_off, avail = unconsumed(conn);

		conn->in_callback = true;
		conn->cb.read(conn, conn->ctx, conn->in.data + before, avail);
		conn->in_callback = false;
		if (conn->in_off != before) {
			if (conn->state == CONN_TLS)
				decrypt(conn);
			continue;
		}
		if (can_present(conn) && avail >= conn->set.input_max) {
			conn->delivering = false;
			fail(conn, mc_errorf("input buffer full (%zu bytes not "
			                     "consumed)",
			                     avail));
			return;
		}
		break;
	}
	conn->delivering = false;
	compact_input(conn);
	if (conn->eof_seen && !conn->eof_reported && can_present(conn)) {
		conn->eof_reported = true;
		conn->cb.event(conn, conn->ctx, MC_CONN_EOF, conn->eof_note);
	}
	conn_update_reading(conn);
}

static void
handshake_finished(struct mc_conn *conn)
{
	mc_conn_tls_cb *cb = conn->tls_cb;
	const char *error;

	conn_set_state(conn, CONN_TLS);
	conn->tls_cb = NULL;
	if (conn->plain.len > 0) {
		if (mc_tls_write(conn->tls, conn->plain.data, conn->plain.len,
		                 &error) < 0) {
			conn->tls_cb = cb;
			fail(conn, error);
			return;
		}
		conn->plain.len = 0;
		buf_trim(&conn->plain);
		flush_tls(conn);
	}
	cb(conn, conn->ctx, 0, NULL);
}

/* Advance the handshake, then decrypt and present. */
static void
tls_progress(struct mc_conn *conn)
{
	const char *error;
	int r;

	if (conn->state == CONN_HANDSHAKE) {
		r = mc_tls_handshake(conn->tls, &error);
		flush_tls(conn);
		if (r < 0)
			fail(conn, error);
		if (r <= 0 || conn->state != CONN_HANDSHAKE) {
			conn_update_reading(conn);
			return;
		}
		handshake_finished(conn);
	}
	if (conn->state != CONN_TLS)
		return;
	decrypt(conn);
	if (conn->state == CONN_TLS)
		deliver(conn);
}

static void
got_eof(struct mc_conn *conn)
{
	conn->eof_seen = true;
	if (conn->state == CONN_HANDSHAKE) {
		fail(conn, "TLS handshake: connection closed by peer");
		return;
	}
	if (conn->state == CONN_TLS) {
		conn->eof_note = "connection closed without TLS close_notify";
		tls_progress(conn); /* whatever complete records remain */
		return;
	}
	deliver(conn);
}

static void
read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct mc_conn *conn = stream->data;

	if (nread == 0)
		return;
	if (nread == UV_ENOBUFS) { /* the input buffer is full */
		conn_update_reading(conn);
		return;
	}
	if (conn->state == CONN_CLOSING) {
		/* Lingering: discard until the peer's EOF. */
		if (nread < 0)
			conn_close_handles(conn, false);
		return;
	}
	if (nread < 0) {
		if (nread == UV_EOF)
			got_eof(conn);
		else
			conn_io_fail(conn, "read", (int)nread);
		return;
	}
	conn_touch(conn);
	if (conn->state == CONN_OPEN) {
		conn->in.len += (size_t)nread;
		deliver(conn);
	} else if (conn->state == CONN_HANDSHAKE || conn->state == CONN_TLS) {
		mc_tls_net_in(conn->tls, buf->base, (size_t)nread);
		tls_progress(conn);
	}
}

/* --- Deferred work and timers --------------------------------------------- */

static void
report_failure(struct mc_conn *conn)
{
	mc_conn_tls_cb *tls_cb = conn->tls_cb;

	if (!conn->failure_pending)
		return;
	conn->failure_pending = false;
	conn->tls_cb = NULL;
	if (tls_cb != NULL)
		tls_cb(conn, conn->ctx, -1, conn->error);
	else if (conn->cb.event != NULL)
		conn->cb.event(conn, conn->ctx, MC_CONN_ERROR, conn->error);
}

static void
kick_cb(uv_idle_t *handle)
{
	struct mc_conn *conn = handle->data;

	uv_idle_stop(handle);
	switch (conn->state) {
	case CONN_FAILED:
		report_failure(conn);
		break;
	case CONN_HANDSHAKE:
	case CONN_TLS:
		tls_progress(conn);
		break;
	case CONN_OPEN:
		deliver(conn);
		break;
	default:
		break;
	}
}

static void
idle_cb(uv_timer_t *timer)
{
	struct mc_conn *conn = timer->data;
	uint64_t now = uv_now(conn->loop), idle = conn->set.idle_timeout_ms;

	/* While the owner paused reading, the peer is waiting for us. */
	if (conn->paused && is_open(conn))
		conn->last_activity = now;
	if (now - conn->last_activity < idle) {
		uv_timer_start(timer, idle_cb,
		               idle - (now - conn->last_activity), 0);
		return;
	}
	switch (conn->state) {
	case CONN_CONNECTING:
		fail(conn, mc_errorf("connect to %s: timed out", conn->peer));
		break;
	case CONN_HANDSHAKE:
		fail(conn, "TLS handshake: timed out");
		break;
	case CONN_OPEN:
	case CONN_TLS:
		conn->last_activity = now;
		uv_timer_start(timer, idle_cb, idle, 0);
		conn->cb.event(conn, conn->ctx, MC_CONN_IDLE_TIMEOUT, NULL);
		break;
	default:
		break;
	}
}

static void
deadline_cb(uv_timer_t *timer)
{
	struct mc_conn *conn = timer->data;

	switch (conn->state) {
	case CONN_CLOSING: /* the close timeout */
		conn_close_handles(conn, false);
		break;
	case CONN_CONNECTING:
		fail(conn,
		     mc_errorf("connect to %s: deadline reached", conn->peer));
		break;
	case CONN_HANDSHAKE:
		fail(conn, "TLS handshake: deadline reached");
		break;
	case CONN_OPEN:
	case CONN_TLS:
		conn->deadline_hit = true;
		conn_update_reading(conn);
		conn->cb.event(conn, conn->ctx, MC_CONN_DEADLINE, NULL);
		break;
	default:
		break;
	}
}

void
conn_start_timers(struct mc_conn *conn)
{
	conn_touch(conn);
	arm(&conn->idle_timer, conn->set.idle_timeout_ms, idle_cb);
	arm(&conn->deadline_timer, conn->set.deadline_ms, deadline_cb);
}

/* Text for an address; IPv4-mapped IPv6 shows as IPv4. */

/* --- Owner calls ---------------------------------------------------------- */

void
mc_conn_consume(struct mc_conn *conn, size_t n)
{
	if (n > unconsumed(conn)) {
		mc_error("mc_conn_consume: %zu > %zu pending", n,
		         unconsumed(conn));
		abort();
	}
	conn->in_off += n;
}

size_t
mc_conn_discard_input(struct mc_conn *conn)
{
	size_t n = unconsumed(conn);

	conn->in_off = conn->in.len;
	return n;
}

size_t
mc_conn_input_pending(const struct mc_conn *conn)
{
	return unconsumed(conn);
}

void
mc_conn_pause(struct mc_conn *conn)
{
	if (conn->paused)
		return;
	conn->paused = true;
	conn_update_reading(conn);
}

void
mc_conn_resume(struct mc_conn *conn)
{
	if (!conn->paused)
		return;
	conn->paused = false;
	conn_touch(conn);
	schedule(conn);
}

int
mc_conn_write(struct mc_conn *conn, const void *data, size_t len,
              const char **error_r)
{
	const char *error;
	size_t used = output_size(conn);

	switch (conn->state) {
	case CONN_NEW:
		*error_r = "connection not started";
		return -1;
	case CONN_FAILED:
		*error_r = mc_errorf("connection failed: %s", conn->error);
		return -1;
	case CONN_CLOSING:
	case CONN_CLOSED:
		*error_r = "connection closing";
		return -1;
	default:
		break;
	}
	if (used >= conn->set.output_max || len > conn->set.output_max - used) {
		*error_r = mc_errorf("output buffer full (%zu bytes pending)",
		                     used);
		return -1;
	}
	if (conn->state == CONN_HANDSHAKE) {
		buf_append(&conn->plain, data, len);
	} else if (conn->state == CONN_TLS) {
		if (mc_tls_write(conn->tls, data, len, &error) < 0) {
			fail(conn, error);
			*error_r = error;
			return -1;
		}
		flush_tls(conn);
	} else {
		buf_append(&conn->wq, data, len);
		conn_flush(conn);
	}
	check_high(conn);
	return 0;
}

bool
mc_conn_output_blocked(const struct mc_conn *conn)
{
	return conn->output_high;
}

size_t
mc_conn_output_pending(const struct mc_conn *conn)
{
	return output_size(conn);
}

int
mc_conn_start_tls(struct mc_conn *conn, struct mc_tls_ctx *ctx,
                  const char *peer_name, mc_conn_tls_cb *cb,
                  const char **error_r)
{
	if (cb == NULL) {
		mc_error("mc_conn_start_tls: a callback is required");
		abort();
	}
	if (conn->state != CONN_OPEN) {
		*error_r =
		        conn->state == CONN_HANDSHAKE || conn->state == CONN_TLS
		                ? "TLS is already active"
		                : mc_errorf("connection is %s, not open",
		                            state_names[conn->state]);
		return -1;
	}
	if (unconsumed(conn) > 0) {
		*error_r = mc_errorf("%zu bytes received before TLS must be "
		                     "discarded first",
		                     unconsumed(conn));
		return -1;
	}
	if (conn->eof_seen) {
		*error_r = "peer closed the connection";
		return -1;
	}
	if (mc_tls_new(ctx, peer_name, &conn->tls, error_r) < 0)
		return -1;
	conn->tls_cb = cb;
	conn_set_state(conn, CONN_HANDSHAKE);
	conn_update_reading(conn);
	schedule(conn); /* a client's ClientHello */
	return 0;
}

const struct mc_tls *
mc_conn_tls(const struct mc_conn *conn)
{
	return conn->tls != NULL && mc_tls_handshake_done(conn->tls) ? conn->tls
	                                                             : NULL;
}

void
mc_conn_set_idle_timeout(struct mc_conn *conn, uint64_t ms)
{
	conn->set.idle_timeout_ms = ms != 0 ? ms : CONN_IDLE_MS;
	if (conn->state == CONN_NEW || conn->state >= CONN_FAILED)
		return;
	conn_touch(conn);
	arm(&conn->idle_timer, conn->set.idle_timeout_ms, idle_cb);
}

void
mc_conn_set_deadline(struct mc_conn *conn, uint64_t ms)
{
	conn->set.deadline_ms = ms != 0 ? ms : CONN_DEADLINE_MS;
	if (conn->state == CONN_NEW || conn->state >= CONN_FAILED)
		return;
	arm(&conn->deadline_timer, conn->set.deadline_ms, deadline_cb);
	if (conn->deadline_hit) {
		conn->deadline_hit = false;
		schedule(conn);
	}
}

/* --- Teardown ------------------------------------------------------------- */

static void
handle_closed(uv_handle_t *handle)
{
	struct mc_conn *conn = handle->data;
	mc_conn_close_cb *cb = conn->close_cb;
	void (*on_free)(void *arg) = conn->on_free;
	void *ctx = conn->ctx, *arg = conn->free_arg;

	if (--conn->handles_open > 0)
		return;
	mc_debug("conn=%" PRIu64 " peer=%s freed", conn->id, conn->peer);
	mc_tls_free(&conn->tls);
	buf_free(&conn->in);
	buf_free(&conn->plain);
	buf_free(&conn->wq);
	buf_free(&conn->wf);
	free(conn->error);
	free(conn);
	if (on_free != NULL)
		on_free(arg);
	if (cb != NULL)
		cb(ctx);
}

/* Close every handle; the conn is freed in the last close callback. */
void
conn_close_handles(struct mc_conn *conn, bool reset)
{
	if (conn->state == CONN_CLOSED)
		return;
	conn_set_state(conn, CONN_CLOSED);
	conn->reading = false;
	if (!reset || conn->io_broken ||
	    uv_tcp_close_reset(&conn->tcp, handle_closed) != 0)
		uv_close((uv_handle_t *)&conn->tcp, handle_closed);
	uv_close((uv_handle_t *)&conn->idle_timer, handle_closed);
	uv_close((uv_handle_t *)&conn->deadline_timer, handle_closed);
	uv_close((uv_handle_t *)&conn->kick, handle_closed);
}

static void
shutdown_cb(uv_shutdown_t *req, int status)
{
	struct mc_conn *conn = req->data;

	if (conn->state != CONN_CLOSING)
		return;
	if (status < 0 || conn->eof_seen) {
		conn_close_handles(conn, false);
		return;
	}
	/* Read to the peer's EOF: closing with unread data would send a
	 * reset that can destroy our last reply in flight. */
	conn->lingering = true;
	conn_update_reading(conn);
}

static void
start_shutdown(struct mc_conn *conn)
{
	if (uv_shutdown(&conn->shutdown_req, (uv_stream_t *)&conn->tcp,
	                shutdown_cb) < 0)
		conn_close_handles(conn, false);
}

static void
begin_close(struct mc_conn *conn, mc_conn_close_cb *cb)
{
	if (conn->state == CONN_CLOSING || conn->state == CONN_CLOSED) {
		mc_error("mc_conn: conn=%" PRIu64 " closed twice", conn->id);
		abort();
	}
	conn->close_cb = cb;
	conn->tls_cb = NULL;
	conn->failure_pending = false;
	conn->plain.len = 0;
}

void
mc_conn_close(struct mc_conn *conn, mc_conn_close_cb *cb)
{
	enum conn_state prev = conn->state;
	const char *error;

	begin_close(conn, cb);
	if (prev == CONN_NEW || prev == CONN_CONNECTING || conn->io_broken) {
		conn_close_handles(conn, false);
		return;
	}
	conn_set_state(conn, CONN_CLOSING);
	uv_idle_stop(&conn->kick);
	uv_timer_stop(&conn->idle_timer);
	conn_update_reading(conn);
	if (prev == CONN_TLS && mc_tls_shutdown(conn->tls, &error) == 0)
		flush_tls(conn);
	arm(&conn->deadline_timer, conn->set.close_timeout_ms, deadline_cb);
	conn_flush(conn);
	if (conn->state == CONN_CLOSING && !conn->writing)
		start_shutdown(conn);
}

void
mc_conn_abort(struct mc_conn *conn, mc_conn_close_cb *cb)
{
	begin_close(conn, cb);
	conn_close_handles(conn, conn->state != CONN_CONNECTING);
}
