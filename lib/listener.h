/* A listening TCP socket that accepts connections as struct mc_conn (see
 * conn.h), with a per-listener limit on live connections. One listener
 * binds one address: an IPv4 or IPv6 literal ("0.0.0.0" and "::" for all
 * addresses; an IPv6 listener is IPv6-only, so "::" and "0.0.0.0" can be
 * bound side by side on the same port). Port 0 lets the kernel choose,
 * and mc_listener_port tells which (tests).
 *
 * Each accepted connection is handed to on_accept, which must call
 * mc_conn_start (or mc_conn_close) on it before returning; a conn left
 * unclaimed is closed. A connection arriving while max_conns are alive is
 * accepted and closed at once, so the peer (an MTA) retries later rather
 * than waiting in the kernel's backlog; mc_listener_refused counts them.
 * Connections live on independently after mc_listener_close.
 *
 * Loop thread only. */
#ifndef MC_LISTENER_H
#define MC_LISTENER_H

#include <stdint.h>

#include <uv.h>

struct mc_conn;
struct mc_listener;

struct mc_listener_settings {
	const char *host;   /* IPv4 or IPv6 literal, required */
	uint16_t port;      /* 0: any free port */
	unsigned max_conns; /* 0: 1000 */
	int backlog;        /* 0: 511 */
};

typedef void mc_listener_accept_cb(struct mc_listener *listener,
                                   struct mc_conn *conn, void *ctx);
typedef void mc_listener_close_cb(void *ctx);

/* Bind and listen. -1 with error_r ("listen on [::1]:25: address already
 * in use") when the address is not a literal or cannot be bound. */
int mc_listener_new(uv_loop_t *loop, const struct mc_listener_settings *set,
                    mc_listener_accept_cb *on_accept, void *ctx,
                    struct mc_listener **listener_r, const char **error_r);
/* The bound port and "host:port" / "[v6]:port" text. */
uint16_t mc_listener_port(const struct mc_listener *listener);
const char *mc_listener_address(const struct mc_listener *listener);
/* Connections accepted here that are not yet freed. */
unsigned mc_listener_conns(const struct mc_listener *listener);
/* Connections closed at once because of max_conns. */
uint64_t mc_listener_refused(const struct mc_listener *listener);

/* Stop accepting and close the socket; cb (may be NULL) runs once it is
 * closed. The listener memory lives until its last connection is freed,
 * but the pointer must not be used after this call. */
void mc_listener_close(struct mc_listener *listener, mc_listener_close_cb *cb);

#endif
