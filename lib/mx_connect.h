/* Connecting to a mail server known by name: the MX hosts of a domain
 * (already sorted, from mc_dns_mx) or a smarthost. Each host's AAAA and A
 * records are resolved (lib/dns.h) when its turn comes, and its addresses
 * are tried one after the other with mc_conn_connect (lib/conn.h), each
 * attempt bounded by its own timeout, until one connects: an IPv6 address
 * with no route, refused or silent falls back to IPv4 and the other way
 * round (a smarthost name on a host without IPv6 still gets its A record,
 * one of the problems in DESIGN.md). Every error met is kept, in order,
 * for the queue's last_error, and the result says which address won.
 *
 * Address order within a host: the two families interleaved, preferred
 * family first (RFC 8305 section 4), each family in the order of the
 * answer: [v6 1, v4 1, v6 2, v4 2, ...]. A dead IPv6 path thus costs one
 * attempt, not one per address. Hosts are taken in the given order; a
 * host may be "name", "name:port", an IP literal or "[v6]:port".
 *
 * The connection is handed over, never re-made: every attempt is created
 * with the owner's conn callbacks and context (set.cb, set.cb_ctx), so the
 * conn that connects needs no change of hands. The price is a small duty
 * for the owner: until the done callback has run, its event callback
 * passes each event to mc_mx_connect_event first and ignores the event
 * when that returns true. (No read callback comes before the winning
 * conn is handed over: nothing is read before MC_CONN_CONNECTED.)
 *
 *     static void on_event(struct mc_conn *conn, void *ctx, ...)
 *     {
 *         struct owner *o = ctx;
 *         if (o->mx != NULL && mc_mx_connect_event(o->mx, conn, ev, error))
 *             return;
 *         ...
 *     }
 *
 * Loop thread only. */
#ifndef MC_MX_CONNECT_H
#define MC_MX_CONNECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "conn.h"

struct mc_dns;
struct mc_mx_connect;

/* Hosts in one call, at most (MC_DNS_MX_MAX). */
#define MC_MX_CONNECT_HOSTS_MAX 32
/* The error list is cut (ending in "...") beyond this. */
#define MC_MX_CONNECT_ERRORS_MAX 2048

enum mc_mx_connect_family {
	MC_MX_CONNECT_PREFER_IPV6 = 0,
	MC_MX_CONNECT_PREFER_IPV4,
	MC_MX_CONNECT_IPV6_ONLY,
	MC_MX_CONNECT_IPV4_ONLY,
};

struct mc_mx_connect_settings {
	/* Resolves the names; borrowed until done. May be NULL when every
	 * host is an IP literal. */
	struct mc_dns *dns;
	/* In order of preference; copied. 1..MC_MX_CONNECT_HOSTS_MAX. */
	const char *const *hosts;
	size_t host_count;
	uint16_t port; /* for hosts without one; 0: 25 */
	enum mc_mx_connect_family family;
	/* One connection attempt; 0: 30 000 ms (Postfix's
	 * smtp_connect_timeout). */
	uint64_t attempt_timeout_ms;
	/* Addresses tried in all, over every host; 0: 10. */
	unsigned max_attempts;
	/* The settings of the conn handed over. Its idle timeout applies
	 * from MC_CONN_CONNECTED on; the deadline counts from the
	 * attempt's start. */
	struct mc_conn_settings conn;
	/* The owner's conn callbacks and context: see the top. */
	const struct mc_conn_callbacks *cb;
	void *cb_ctx;
	/* Put in log lines as id=...; may be NULL. Copied. */
	const char *log_id;
};

struct mc_mx_connect_result {
	/* The connected conn, now the owner's (its callbacks, its close);
	 * NULL when every attempt failed. */
	struct mc_conn *conn;
	/* The host and address it belongs to ("" when failed). */
	const char *host;
	size_t host_index;
	const char *ip;
	uint16_t port;
	/* Every error met, in order, "; " between them: resolution
	 * ("mx1.example.test AAAA: timed out") and attempts
	 * ("[2001:db8::1]:25 (mx1.example.test): connection refused");
	 * "" when the first attempt connected. Cut at
	 * MC_MX_CONNECT_ERRORS_MAX. */
	const char *errors;
	unsigned attempts; /* connection attempts made */
	/* Failed, and asking again will not help: no host has an address
	 * (each name NXDOMAIN or without A/AAAA, or only addresses of the
	 * family excluded) and nothing failed temporarily. */
	bool permanent;
};

/* result and its strings are valid during the call only. The struct
 * mc_mx_connect is freed once this returns. */
typedef void mc_mx_connect_done_cb(const struct mc_mx_connect_result *result,
                                   void *ctx);

/* Start. -1 with error_r, nothing started and no callback, for invalid
 * settings (no hosts, a host that is neither a valid name nor a literal,
 * a name without dns, no callbacks). Otherwise done runs exactly once
 * from the loop, never from inside this call, unless cancelled. */
int mc_mx_connect_start(uv_loop_t *loop,
                        const struct mc_mx_connect_settings *set,
                        mc_mx_connect_done_cb *done, void *ctx,
                        struct mc_mx_connect **mx_r, const char **error_r);

/* For the owner's event callback (see the top): true when conn is this
 * connector's attempt and the event was taken (done may run inside this
 * call, and mx is then freed); false for any other conn. */
bool mc_mx_connect_event(struct mc_mx_connect *mx, struct mc_conn *conn,
                         enum mc_conn_event ev, const char *error);

/* Stop before done: the attempt in flight is reset, the lookup dropped,
 * done never runs and mx is freed. */
void mc_mx_connect_cancel(struct mc_mx_connect *mx);

#endif
