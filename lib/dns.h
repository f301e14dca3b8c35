/* Asynchronous DNS on the libuv loop, for direct MX delivery: MX lookups
 * (sorted, with RFC 5321's implicit MX and RFC 7505's null MX) and A/AAAA
 * lookups, answered by callback on the loop. Built on c-ares (Debian's
 * libc-ares-dev, a well-kept resolver: no hand-written DNS parsing of
 * hostile answers here); its sockets are watched with uv_poll and its
 * retransmission timeouts run on a uv_timer, so nothing blocks the loop.
 *
 * Name servers: the settings' list (tests, or a local resolver chosen by
 * the operator), else those of /etc/resolv.conf as c-ares reads them
 * (with its "options timeout: attempts:"). Names are queried as given,
 * never through the search list: a mail domain is always absolute.
 *
 * What the statuses mean for mail (RFC 5321 5.1):
 * - NXDOMAIN: the name does not exist. For a recipient domain's MX lookup
 *   that is a permanent failure (5.1.2); for an MX host it is that host's
 *   permanent failure.
 * - NODATA (address lookups only): the name exists with no record of the
 *   asked type. An MX lookup never says NODATA: a domain without MX
 *   records is its own implicit MX (preference 0), whose A/AAAA records
 *   the caller then resolves.
 * - NULL_MX: the domain publishes RFC 7505's "MX 0 ." and accepts no
 *   mail: a permanent failure (5.1.10), distinct from NXDOMAIN.
 * - TEMPFAIL: SERVFAIL, REFUSED, a timeout, no reachable server, an
 *   answer that cannot be parsed: try again later. Never a bounce.
 *
 * Lifetime: a lookup's callback runs exactly once, from the loop, never
 * from inside the call that started it, unless the lookup is cancelled
 * first (then never). mc_dns_close drops every pending lookup without its
 * callback. Loop thread only. */
#ifndef MC_DNS_H
#define MC_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct mc_dns;
struct mc_dns_lookup;

/* Name servers in the settings, at most. */
#define MC_DNS_SERVERS_MAX 8
/* Longest name queried (RFC 1035: 253 octets as text, no trailing dot). */
#define MC_DNS_NAME_MAX 253
/* MX records kept after sorting, and addresses kept per family: far
 * above what any mail domain publishes; the rest of a huge answer is
 * dropped (a delivery tries a few addresses at most anyway). */
#define MC_DNS_MX_MAX 32
#define MC_DNS_ADDRS_MAX 32
/* An IPv6 address as text and its NUL (INET6_ADDRSTRLEN). */
#define MC_DNS_IP_SIZE 46

struct mc_dns_settings {
	/* "ip", "ip:port" or "[ipv6]:port" (port 53 when absent); NULL or
	 * server_count 0: the name servers of /etc/resolv.conf. Copied. */
	const char *const *servers;
	size_t server_count;
	/* Milliseconds per try and tries per server; 0: resolv.conf's
	 * "options timeout: attempts:", else c-ares's defaults. */
	uint64_t timeout_ms;
	unsigned tries;
};

enum mc_dns_status {
	MC_DNS_OK = 0,
	MC_DNS_NXDOMAIN, /* permanent: the name does not exist */
	MC_DNS_NODATA,   /* permanent: no record of that type */
	MC_DNS_NULL_MX,  /* permanent: RFC 7505, no mail for this domain */
	MC_DNS_TEMPFAIL, /* try again later */
};

/* Address families for mc_dns_addrs. */
#define MC_DNS_A 0x1u
#define MC_DNS_AAAA 0x2u

struct mc_dns_mx {
	const char *host; /* as published, without the trailing dot */
	unsigned preference;
};

struct mc_dns_addr {
	int family;              /* AF_INET or AF_INET6 */
	char ip[MC_DNS_IP_SIZE]; /* text, as mc_conn_connect takes it */
};

struct mc_dns_result {
	enum mc_dns_status status;
	const char *name; /* as asked */
	/* NULL when every query asked succeeded; otherwise why the others
	 * did not, one line for logs and a queue's last_error ("example.test
	 * AAAA: timed out"). With status OK (addresses of one family) it
	 * names only a family that failed temporarily: a family without
	 * records is normal then. */
	const char *error;

	/* mc_dns_mx, status OK: by ascending preference; hosts of equal
	 * preference in random order (RFC 5321 5.1 asks senders to spread
	 * the load that way). A null MX published next to real ones is
	 * skipped. */
	const struct mc_dns_mx *mx;
	size_t mx_count;
	/* No MX records at all: mx is the name itself, preference 0 (RFC
	 * 5321 5.1 implicit MX); resolve its addresses next. */
	bool implicit_mx;

	/* mc_dns_addrs, status OK: the AAAA answers, then the A answers,
	 * each in the order the server gave them (the caller orders them
	 * for connecting). */
	const struct mc_dns_addr *addrs;
	size_t addr_count;
	/* Per family, for the families asked (MC_DNS_OK otherwise). */
	enum mc_dns_status status_a, status_aaaa;
};

/* result and everything it points to are valid during the call only. The
 * lookup handle is dead from this call on. The callback may start new
 * lookups, cancel others and close the resolver. */
typedef void mc_dns_cb(const struct mc_dns_result *result, void *ctx);

/* A resolver (one c-ares channel) on loop. -1 with error_r for invalid
 * settings (a server that is not an IP literal with an optional port) or
 * when c-ares cannot be set up (no /etc/resolv.conf is fine: c-ares then
 * asks 127.0.0.1). */
int mc_dns_new(uv_loop_t *loop, const struct mc_dns_settings *set,
               struct mc_dns **dns_r, const char **error_r);

/* Stop: pending lookups are dropped without their callbacks (cancel the
 * ones you track before, or just forget them), sockets and timers are
 * closed, and done(arg) (may be NULL) runs from the loop once all is
 * freed. The pointer is invalid from this call on. */
void mc_dns_close(struct mc_dns *dns, void (*done)(void *arg), void *arg);

/* MX records of domain (ASCII: A-labels for internationalised names; a
 * trailing dot is accepted). -1 with error_r, no lookup and no callback,
 * for a name that cannot be a domain (empty, too long, an empty or
 * over-long label, bytes outside printable ASCII, spaces): for a
 * recipient domain that is a permanent failure. lookup_r (may be NULL)
 * receives a handle for mc_dns_cancel, valid until the callback. */
int mc_dns_mx(struct mc_dns *dns, const char *domain, mc_dns_cb *cb, void *ctx,
              struct mc_dns_lookup **lookup_r, const char **error_r);

/* A and/or AAAA records of name (families: MC_DNS_A | MC_DNS_AAAA), the
 * queries run in parallel and answer once together. The combined status
 * is OK when any address came back; otherwise TEMPFAIL if any family
 * failed temporarily (an answer may yet come), else NXDOMAIN if the name
 * does not exist, else NODATA. CNAMEs are followed (by the server).
 * Errors as for mc_dns_mx. */
int mc_dns_addrs(struct mc_dns *dns, const char *name, unsigned families,
                 mc_dns_cb *cb, void *ctx, struct mc_dns_lookup **lookup_r,
                 const char **error_r);

/* Forget a pending lookup: its callback will not run. Not from inside its
 * own callback. */
void mc_dns_cancel(struct mc_dns_lookup *lookup);

/* Could the name be a domain we may query (the checks mc_dns_mx makes)? */
bool mc_dns_name_valid(const char *name);

/* "ok", "nxdomain", "nodata", "null-mx", "tempfail". */
const char *mc_dns_status_name(enum mc_dns_status status);
/* NXDOMAIN, NODATA and NULL_MX: asking again will not help. */
bool mc_dns_status_permanent(enum mc_dns_status status);

#endif
