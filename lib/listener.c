/* Listening sockets that produce struct mc_conn; see listener.h. Owns the
 * uv_tcp_t of the listening socket and the count of live connections,
 * which outlives the socket: the struct is freed when it is both closed
 * and without connections. */
#include "listener.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "error.h"
#include "log.h"
#include "mem.h"

#define LISTENER_MAX_CONNS 1000
#define LISTENER_BACKLOG 511

struct mc_listener {
	uv_tcp_t tcp;
	mc_listener_accept_cb *on_accept;
	mc_listener_close_cb *on_close;
	void *ctx;
	unsigned max_conns, conns;
	uint64_t refused;
	bool closed;     /* mc_listener_close was called */
	bool tcp_closed; /* ... and the handle is closed */
	uint16_t port;
	char address[64];
};

static void
maybe_free(struct mc_listener *l)
{
	if (l->tcp_closed && l->conns == 0)
		free(l);
}

static void
conn_freed(void *arg)
{
	struct mc_listener *l = arg;

	l->conns--;
	maybe_free(l);
}

static void
refused_closed(void *ctx)
{
	(void)ctx;
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct mc_listener *l = server->data;
	struct mc_conn *conn;
	const char *error;

	if (l->closed)
		return;
	if (status < 0) {
		mc_warn("listener=%s accept error=\"%s\"", l->address,
		        uv_strerror(status));
		return;
	}
	if (mc_conn_accept(server, conn_freed, l, &conn, &error) < 0) {
		mc_debug("listener=%s error=\"%s\"", l->address, error);
		return;
	}
	l->conns++;
	if (l->conns > l->max_conns) {
		l->refused++;
		mc_debug("listener=%s peer=%s refused=over max_conns=%u",
		         l->address, mc_conn_peer(conn), l->max_conns);
		mc_conn_close(conn, refused_closed);
		return;
	}
	l->on_accept(l, conn, l->ctx);
	if (mc_conn_unclaimed(conn)) {
		mc_error("listener=%s conn=%" PRIu64 " was not started by "
		         "on_accept; closing it",
		         l->address, mc_conn_id(conn));
		mc_conn_close(conn, NULL);
	}
}

static int
parse_host(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (host != NULL &&
	    uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
		return AF_INET;
	if (host != NULL &&
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
		return AF_INET6;
	return -1;
}

static void
fill_address(struct mc_listener *l, const char *host, int family)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) == 0)
		l->port = ntohs(
		        family == AF_INET
		                ? ((struct sockaddr_in *)&ss)->sin_port
		                : ((struct sockaddr_in6 *)&ss)->sin6_port);
	snprintf(l->address, sizeof(l->address),
	         family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, l->port);
}

static void
free_on_close(uv_handle_t *handle)
{
	free(handle->data);
}

int
mc_listener_new(uv_loop_t *loop, const struct mc_listener_settings *set,
                mc_listener_accept_cb *on_accept, void *ctx,
                struct mc_listener **listener_r, const char **error_r)
{
	struct sockaddr_storage ss;
	struct mc_listener *l;
	int family = parse_host(set->host, set->port, &ss), r;

	if (family < 0) {
		*error_r = mc_errorf("listen: '%s' is not an IP address",
		                     set->host ? set->host : "(null)");
		return -1;
	}
	l = mc_malloc(sizeof(*l));
	l->on_accept = on_accept;
	l->ctx = ctx;
	l->max_conns = set->max_conns ? set->max_conns : LISTENER_MAX_CONNS;
	l->tcp.data = l;
	snprintf(l->address, sizeof(l->address),
	         family == AF_INET6 ? "[%s]:%u" : "%s:%u", set->host,
	         set->port);
	uv_tcp_init(loop, &l->tcp);
	/* bind() may defer EADDRINUSE to listen(): report both alike. */
	r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss,
	                family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&l->tcp,
		              set->backlog > 0 ? set->backlog
		                               : LISTENER_BACKLOG,
		              on_connection);
	if (r < 0) {
		*error_r = mc_errorf("listen on %s: %s", l->address,
		                     uv_strerror(r));
		uv_close((uv_handle_t *)&l->tcp, free_on_close);
		return -1;
	}
	fill_address(l, set->host, family);
	mc_debug("listener=%s listening max_conns=%u", l->address,
	         l->max_conns);
	*listener_r = l;
	return 0;
}

uint16_t
mc_listener_port(const struct mc_listener *l)
{
	return l->port;
}

const char *
mc_listener_address(const struct mc_listener *l)
{
	return l->address;
}

unsigned
mc_listener_conns(const struct mc_listener *l)
{
	return l->conns;
}

uint64_t
mc_listener_refused(const struct mc_listener *l)
{
	return l->refused;
}

static void
listener_closed(uv_handle_t *handle)
{
	struct mc_listener *l = handle->data;
	mc_listener_close_cb *cb = l->on_close;
	void *ctx = l->ctx;

	l->tcp_closed = true;
	maybe_free(l);
	if (cb != NULL)
		cb(ctx);
}

void
mc_listener_close(struct mc_listener *l, mc_listener_close_cb *cb)
{
	if (l->closed) {
		mc_error("listener=%s closed twice", l->address);
		abort();
	}
	l->closed = true;
	l->on_close = cb;
	uv_close((uv_handle_t *)&l->tcp, listener_closed);
}
