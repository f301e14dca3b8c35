/* How a struct mc_conn comes to exist: accepted from a listening socket
 * (mc_conn_accept, then mc_conn_start) or dialled (mc_conn_connect), with
 * its settings resolved against the defaults, its socket options, and the
 * peer and local addresses as text. Everything after that is conn.c. */
#include "conn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_private.h"
#include "error.h"
#include "log.h"
#include "mem.h"

static uint64_t conn_next_id = 1;

static int
resolve_settings(const struct mc_conn_settings *in,
                 struct mc_conn_settings *out, const char **error_r)
{
	*out = in != NULL ? *in : (struct mc_conn_settings){0};
	if (out->input_max == 0)
		out->input_max = CONN_INPUT_MAX;
	if (out->output_max == 0)
		out->output_max = CONN_OUTPUT_MAX;
	if (out->output_high == 0)
		out->output_high = out->output_max / 4;
	if (out->idle_timeout_ms == 0)
		out->idle_timeout_ms = CONN_IDLE_MS;
	if (out->deadline_ms == 0)
		out->deadline_ms = CONN_DEADLINE_MS;
	if (out->close_timeout_ms == 0)
		out->close_timeout_ms = CONN_CLOSE_MS;
	/* uv_buf_t lengths are unsigned int: stay far below. */
	if (out->output_high >= out->output_max ||
	    out->output_max > (1u << 30) || out->input_max > (1u << 30)) {
		*error_r = "connection settings: need output_high < output_max "
		           "<= 1 GiB and input_max <= 1 GiB";
		return -1;
	}
	return 0;
}

static void
check_callbacks(const struct mc_conn_callbacks *cb)
{
	if (cb == NULL || cb->read == NULL || cb->event == NULL) {
		mc_error("mc_conn: read and event callbacks are required");
		abort();
	}
}

static struct mc_conn *
conn_new(uv_loop_t *loop)
{
	struct mc_conn *conn = mc_malloc(sizeof(*conn));

	conn->loop = loop;
	conn->id = conn_next_id++;
	/* Without flags these only fail for bad arguments. */
	uv_tcp_init(loop, &conn->tcp);
	uv_timer_init(loop, &conn->idle_timer);
	uv_timer_init(loop, &conn->deadline_timer);
	uv_idle_init(loop, &conn->kick);
	conn->handles_open = CONN_HANDLES;
	conn->tcp.data = conn;
	conn->idle_timer.data = conn;
	conn->deadline_timer.data = conn;
	conn->kick.data = conn;
	conn->write_req.data = conn;
	conn->shutdown_req.data = conn;
	conn->connect_req.data = conn;
	strcpy(conn->peer, "-");
	return conn;
}

static void
addr_text(const struct sockaddr_storage *ss, char *ip, size_t size,
          uint16_t *port_r)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, (socklen_t)size);
		*port_r = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], ip,
			          (socklen_t)size);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, ip,
			          (socklen_t)size);
		*port_r = ntohs(sin6->sin6_port);
	} else {
		snprintf(ip, size, "?");
		*port_r = 0;
	}
}

static void
set_peer(struct mc_conn *conn, const struct sockaddr_storage *ss)
{
	addr_text(ss, conn->peer_ip, sizeof(conn->peer_ip), &conn->peer_port);
	snprintf(conn->peer, sizeof(conn->peer),
	         strchr(conn->peer_ip, ':') ? "[%s]:%u" : "%s:%u",
	         conn->peer_ip, conn->peer_port);
}

static void
set_local(struct mc_conn *conn)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (uv_tcp_getsockname(&conn->tcp, (struct sockaddr *)&ss, &len) == 0)
		addr_text(&ss, conn->local_ip, sizeof(conn->local_ip),
		          &conn->local_port);
}

int
mc_conn_accept(uv_stream_t *server, void (*on_free)(void *arg), void *arg,
               struct mc_conn **conn_r, const char **error_r)
{
	struct mc_conn *conn = conn_new(server->loop);
	struct sockaddr_storage ss;
	int len = sizeof(ss), r;

	memset(&ss, 0, sizeof(ss));
	if ((r = uv_accept(server, (uv_stream_t *)&conn->tcp)) < 0 ||
	    (r = uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len)) <
	            0) {
		/* E.g. the peer reset the connection before we got to it. */
		*error_r = mc_errorf("accept: %s", uv_strerror(r));
		conn_close_handles(conn, false);
		return -1;
	}
	set_peer(conn, &ss);
	set_local(conn);
	conn->on_free = on_free;
	conn->free_arg = arg;
	*conn_r = conn;
	return 0;
}

bool
mc_conn_unclaimed(const struct mc_conn *conn)
{
	return conn->state == CONN_NEW;
}

static void
keep_socket_options(struct mc_conn *conn)
{
	/* Replies go out as soon as they are written (pipelined SMTP, IMAP
	 * responses); keepalive notices peers that vanished behind NAT. */
	uv_tcp_nodelay(&conn->tcp, 1);
	uv_tcp_keepalive(&conn->tcp, 1, 120);
}

int
mc_conn_start(struct mc_conn *conn, const struct mc_conn_settings *set,
              const struct mc_conn_callbacks *cb, void *ctx,
              const char **error_r)
{
	if (conn->state != CONN_NEW) {
		mc_error("mc_conn_start: conn=%" PRIu64 " is %s", conn->id,
		         conn_state_name(conn->state));
		abort();
	}
	check_callbacks(cb);
	if (resolve_settings(set, &conn->set, error_r) < 0)
		return -1;
	conn->cb = *cb;
	conn->ctx = ctx;
	keep_socket_options(conn);
	conn_set_state(conn, CONN_OPEN);
	conn_start_timers(conn);
	conn_update_reading(conn);
	return 0;
}

static void
connect_cb(uv_connect_t *req, int status)
{
	struct mc_conn *conn = req->data;

	if (status == UV_ECANCELED || conn->state != CONN_CONNECTING)
		return;
	if (status < 0) {
		conn_io_fail(conn, mc_errorf("connect to %s", conn->peer),
		             status);
		return;
	}
	set_local(conn);
	keep_socket_options(conn);
	conn_set_state(conn, CONN_OPEN);
	conn_touch(conn);
	conn->cb.event(conn, conn->ctx, MC_CONN_CONNECTED, NULL);
	/* Whatever the owner did meanwhile (write, start TLS, close). */
	conn_flush(conn);
	conn_update_reading(conn);
}

int
mc_conn_connect(uv_loop_t *loop, const char *ip, uint16_t port,
                const struct mc_conn_settings *set,
                const struct mc_conn_callbacks *cb, void *ctx,
                struct mc_conn **conn_r, const char **error_r)
{
	struct mc_conn_settings resolved;
	struct sockaddr_storage ss;
	struct mc_conn *conn;
	int r;

	check_callbacks(cb);
	memset(&ss, 0, sizeof(ss));
	if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss) != 0) {
		*error_r = mc_errorf("connect: '%s' is not an IP address", ip);
		return -1;
	}
	if (resolve_settings(set, &resolved, error_r) < 0)
		return -1;
	conn = conn_new(loop);
	conn->set = resolved;
	conn->cb = *cb;
	conn->ctx = ctx;
	set_peer(conn, &ss);
	r = uv_tcp_connect(&conn->connect_req, &conn->tcp,
	                   (const struct sockaddr *)&ss, connect_cb);
	if (r < 0) {
		*error_r = mc_errorf("connect to %s: %s", conn->peer,
		                     uv_strerror(r));
		conn_close_handles(conn, false);
		return -1;
	}
	conn_set_state(conn, CONN_CONNECTING);
	conn_start_timers(conn);
	*conn_r = conn;
	return 0;
}

uint64_t
mc_conn_id(const struct mc_conn *conn)
{
	return conn->id;
}

const char *
mc_conn_peer(const struct mc_conn *conn)
{
	return conn->peer;
}

const char *
mc_conn_peer_ip(const struct mc_conn *conn)
{
	return conn->peer_ip;
}

uint16_t
mc_conn_peer_port(const struct mc_conn *conn)
{
	return conn->peer_port;
}

const char *
mc_conn_local_ip(const struct mc_conn *conn)
{
	return conn->local_ip;
}

uint16_t
mc_conn_local_port(const struct mc_conn *conn)
{
	return conn->local_port;
}
