/* The asynchronous resolver of dns.h: owns struct mc_dns (one c-ares
 * channel, a uv_poll per c-ares socket, a uv_timer for c-ares's
 * retransmissions and timeouts, a second timer that delivers results and
 * tears down outside of calls) and struct mc_dns_lookup (one or two
 * c-ares queries and the answers gathered for one callback).
 *
 * c-ares tells which sockets it wants watched through its socket-state
 * callback; each becomes a uv_poll started for the events asked, and
 * whatever the loop sees on it goes to ares_process_fd. After every call
 * into c-ares the timer is re-armed to ares_timeout, which is how lost
 * datagrams get retransmitted and queries time out without a thread. */
#include "dns.h"

#include <arpa/inet.h>
#include <ares.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "hostport.h"
#include "log.h"
#include "mem.h"

/* DNS class and types (RFC 1035, RFC 3596). */
#define CLASS_IN 1
#define TYPE_A 1
#define TYPE_MX 15
#define TYPE_AAAA 28

/* Error text of one lookup: two failures with the name fit easily. */
#define ERROR_MAX 640

struct dns_sock {
	struct mc_dns *dns;
	struct dns_sock *next;
	uv_poll_t poll;
	ares_socket_t fd;
};

enum lookup_kind { LK_MX, LK_ADDRS };

struct mc_dns_lookup {
	struct mc_dns *dns;
	struct mc_dns_lookup *prev, *next;
	enum lookup_kind kind;
	char name[MC_DNS_NAME_MAX + 1];
	unsigned families;
	unsigned pending; /* c-ares queries not answered yet */
	bool cancelled;
	bool starting; /* inside the mc_dns_* call that started it */
	bool ready;    /* answered while starting: delivered from defer */
	mc_dns_cb *cb;
	void *ctx;

	enum mc_dns_status st_mx, st_a, st_aaaa;
	/* why the MX query, the A query, the AAAA query failed */
	char err_mx[ERROR_MAX / 2], err_a[ERROR_MAX / 2],
	        err_aaaa[ERROR_MAX / 2];
	char error[ERROR_MAX]; /* what the result reports */
	struct mc_dns_mx *mx;  /* hosts are heap strings */
	size_t mx_count;
	bool implicit_mx;
	/* AAAA answers in [0, n6), A answers in [MC_DNS_ADDRS_MAX, + n4) */
	struct mc_dns_addr addrs[2 * MC_DNS_ADDRS_MAX];
	size_t n4, n6;
};

struct mc_dns {
	uv_loop_t *loop;
	ares_channel channel;
	uv_timer_t timer; /* c-ares timeouts */
	uv_timer_t defer; /* deliveries outside calls; teardown */
	int handles_open;
	struct dns_sock *socks;
	struct mc_dns_lookup *lookups; /* every lookup not yet freed */
	bool closing, torn_down;
	void (*close_done)(void *arg);
	void *close_arg;
	uint64_t rng;
};

static void update_timer(struct mc_dns *dns);
static void timer_cb(uv_timer_t *t);
static void defer_cb(uv_timer_t *t);

/* ---- Names and statuses ------------------------------------------------ */

bool
mc_dns_name_valid(const char *name)
{
	size_t len, label = 0;

	if (name == NULL)
		return false;
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > MC_DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		/* Letters, digits, hyphen, and the underscore some hosts
		 * carry: nothing c-ares would read as an escape. */
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

const char *
mc_dns_status_name(enum mc_dns_status status)
{
	switch (status) {
	case MC_DNS_OK:
		return "ok";
	case MC_DNS_NXDOMAIN:
		return "nxdomain";
	case MC_DNS_NODATA:
		return "nodata";
	case MC_DNS_NULL_MX:
		return "null-mx";
	case MC_DNS_TEMPFAIL:
		return "tempfail";
	}
	return "?";
}

bool
mc_dns_status_permanent(enum mc_dns_status status)
{
	return status == MC_DNS_NXDOMAIN || status == MC_DNS_NODATA ||
	       status == MC_DNS_NULL_MX;
}

/* c-ares status -> ours, with a text for the error line. */
static enum mc_dns_status
map_status(int status, const char **text_r)
{
	switch (status) {
	case ARES_ENOTFOUND:
		*text_r = "no such domain (NXDOMAIN)";
		return MC_DNS_NXDOMAIN;
	case ARES_ENODATA:
		*text_r = "no record of this type";
		return MC_DNS_NODATA;
	case ARES_ESERVFAIL:
		*text_r = "server failure (SERVFAIL)";
		return MC_DNS_TEMPFAIL;
	case ARES_EREFUSED:
		*text_r = "query refused (REFUSED)";
		return MC_DNS_TEMPFAIL;
	case ARES_ETIMEOUT:
		*text_r = "timed out";
		return MC_DNS_TEMPFAIL;
	case ARES_ECONNREFUSED:
		/* c-ares 1.18 moves on to the next server after SERVFAIL,
		 * REFUSED or an ICMP refusal, and says this when none is
		 * left, without telling which it was. */
		*text_r = "no usable answer from the name servers (SERVFAIL, "
		          "REFUSED or unreachable)";
		return MC_DNS_TEMPFAIL;
	case ARES_EFORMERR:
	case ARES_EBADRESP:
		*text_r = "malformed answer";
		return MC_DNS_TEMPFAIL;
	default:
		*text_r = ares_strerror(status);
		return MC_DNS_TEMPFAIL;
	}
}

static void
note_error(struct mc_dns_lookup *lk, const char *type, const char *text)
{
	char *buf = type[0] == 'M'    ? lk->err_mx
	            : type[1] == '\0' ? lk->err_a
	                              : lk->err_aaaa;

	snprintf(buf, ERROR_MAX / 2, "%s %s: %s", lk->name, type, text);
}

/* The result's error: every failure, except that a family without
 * records is no error when the other family answered. */
static void
compose_error(struct mc_dns_lookup *lk, enum mc_dns_status status)
{
	const char *parts[2] = {lk->err_aaaa, lk->err_a};
	enum mc_dns_status st[2] = {lk->st_aaaa, lk->st_a};
	size_t n = 0;

	if (lk->kind == LK_MX) {
		snprintf(lk->error, sizeof(lk->error), "%s", lk->err_mx);
		return;
	}
	lk->error[0] = '\0';
	for (int i = 0; i < 2; i++) {
		if (parts[i][0] == '\0' ||
		    (status == MC_DNS_OK && st[i] != MC_DNS_TEMPFAIL))
			continue;
		n += (size_t)snprintf(lk->error + n, sizeof(lk->error) - n,
		                      "%s%s", n > 0 ? "; " : "", parts[i]);
	}
}

static uint64_t
rng_next(struct mc_dns *dns)
{
	/* xorshift64*: only shuffles MX ties, nothing secret. */
	dns->rng ^= dns->rng >> 12;
	dns->rng ^= dns->rng << 25;
	dns->rng ^= dns->rng >> 27;
	return dns->rng * 2685821657736338717ull;
}

/* ---- Lookups: delivery and lifetime ------------------------------------ */

static void
lookup_unlink(struct mc_dns_lookup *lk)
{
	struct mc_dns *dns = lk->dns;

	if (lk->prev != NULL)
		lk->prev->next = lk->next;
	else
		dns->lookups = lk->next;
	if (lk->next != NULL)
		lk->next->prev = lk->prev;
	lk->prev = lk->next = NULL;
}

static void
lookup_free(struct mc_dns_lookup *lk)
{
	lookup_unlink(lk);
	for (size_t i = 0; i < lk->mx_count; i++)
		free((char *)lk->mx[i].host);
	free(lk->mx);
	free(lk);
}

static enum mc_dns_status
addrs_status(const struct mc_dns_lookup *lk)
{
	bool a = lk->families & MC_DNS_A, aaaa = lk->families & MC_DNS_AAAA;

	if (lk->n4 + lk->n6 > 0)
		return MC_DNS_OK;
	if ((a && lk->st_a == MC_DNS_TEMPFAIL) ||
	    (aaaa && lk->st_aaaa == MC_DNS_TEMPFAIL))
		return MC_DNS_TEMPFAIL;
	if ((a && lk->st_a == MC_DNS_NXDOMAIN) ||
	    (aaaa && lk->st_aaaa == MC_DNS_NXDOMAIN))
		return MC_DNS_NXDOMAIN;
	return MC_DNS_NODATA;
}

static void
deliver(struct mc_dns_lookup *lk)
{
	struct mc_dns_result r;

	memset(&r, 0, sizeof(r));
	r.name = lk->name;
	if (lk->kind == LK_MX) {
		r.status = lk->st_mx;
		r.mx = lk->mx;
		r.mx_count = lk->mx_count;
		r.implicit_mx = lk->implicit_mx;
	} else {
		memmove(&lk->addrs[lk->n6], &lk->addrs[MC_DNS_ADDRS_MAX],
		        lk->n4 * sizeof(lk->addrs[0]));
		r.status = addrs_status(lk);
		r.addrs = lk->addrs;
		r.addr_count = lk->n4 + lk->n6;
		r.status_a = lk->st_a;
		r.status_aaaa = lk->st_aaaa;
	}
	compose_error(lk, r.status);
	r.error = lk->error[0] != '\0' ? lk->error : NULL;
	mc_debug("dns name=%s lookup=%s status=%s mx=%zu addrs=%zu "
	         "error=\"%s\"",
	         lk->name, lk->kind == LK_MX ? "mx" : "addrs",
	         mc_dns_status_name(r.status), r.mx_count, r.addr_count,
	         r.error != NULL ? r.error : "");
	lookup_unlink(lk);
	lk->cb(&r, lk->ctx);
	for (size_t i = 0; i < lk->mx_count; i++)
		free((char *)lk->mx[i].host);
	free(lk->mx);
	free(lk);
}

/* One of the lookup's queries finished. */
static void
query_done(struct mc_dns_lookup *lk)
{
	struct mc_dns *dns = lk->dns;

	if (--lk->pending > 0)
		return;
	if (lk->cancelled || dns->closing) {
		lookup_free(lk);
		return;
	}
	if (lk->starting) {
		lk->ready = true;
		uv_timer_start(&dns->defer, defer_cb, 0, 0);
		return;
	}
	deliver(lk);
}

/* ---- Answers ----------------------------------------------------------- */

struct mx_sort {
	const char *host;
	unsigned preference;
	uint64_t key; /* random: shuffles equal preferences */
};

static int
mx_cmp(const void *a, const void *b)
{
	const struct mx_sort *x = a, *y = b;

	if (x->preference != y->preference)
		return x->preference < y->preference ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

static void
take_mx(struct mc_dns_lookup *lk, const struct ares_mx_reply *list)
{
	struct mx_sort *v;
	size_t n = 0, nulls = 0;

	for (const struct ares_mx_reply *m = list; m != NULL; m = m->next)
		n++;
	v = mc_calloc(n, sizeof(*v));
	n = 0;
	for (const struct ares_mx_reply *m = list; m != NULL; m = m->next) {
		/* RFC 7505: the root name ("." here as "") is "no mail". */
		if (m->host == NULL || m->host[0] == '\0' ||
		    strcmp(m->host, ".") == 0) {
			nulls++;
			continue;
		}
		v[n].host = m->host;
		v[n].preference = m->priority;
		v[n].key = rng_next(lk->dns);
		n++;
	}
	if (n == 0) {
		lk->st_mx = nulls > 0 ? MC_DNS_NULL_MX : MC_DNS_TEMPFAIL;
		note_error(lk, "MX",
		           nulls > 0 ? "null MX: the domain accepts no mail "
		                       "(RFC 7505)"
		                     : "empty answer");
		free(v);
		return;
	}
	qsort(v, n, sizeof(*v), mx_cmp);
	if (n > MC_DNS_MX_MAX)
		n = MC_DNS_MX_MAX;
	lk->mx = mc_calloc(n, sizeof(*lk->mx));
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i].host);

		if (len > 0 && v[i].host[len - 1] == '.')
			len--;
		lk->mx[i].host = mc_strndup(v[i].host, len);
		lk->mx[i].preference = v[i].preference;
	}
	lk->mx_count = n;
	lk->st_mx = MC_DNS_OK;
	free(v);
}

static void
mx_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mc_dns_lookup *lk = arg;
	struct ares_mx_reply *mx = NULL;
	const char *text;

	(void)timeouts;
	if (!lk->cancelled && !lk->dns->closing) {
		if (status == ARES_SUCCESS)
			status = ares_parse_mx_reply(abuf, alen, &mx);
		if (status == ARES_ENODATA) {
			/* RFC 5321 5.1: no MX, the domain is its own. */
			lk->mx = mc_calloc(1, sizeof(*lk->mx));
			lk->mx[0].host = mc_strdup(lk->name);
			lk->mx_count = 1;
			lk->implicit_mx = true;
			lk->st_mx = MC_DNS_OK;
		} else if (status == ARES_SUCCESS) {
			take_mx(lk, mx);
		} else {
			lk->st_mx = map_status(status, &text);
			note_error(lk, "MX", text);
		}
	}
	if (mx != NULL)
		ares_free_data(mx);
	query_done(lk);
}

static void
add_addr(struct mc_dns_lookup *lk, int family, const void *bin)
{
	size_t *n = family == AF_INET ? &lk->n4 : &lk->n6;
	struct mc_dns_addr *a =
	        &lk->addrs[(family == AF_INET ? MC_DNS_ADDRS_MAX : 0) + *n];

	if (*n >= MC_DNS_ADDRS_MAX)
		return;
	a->family = family;
	if (inet_ntop(family, bin, a->ip, sizeof(a->ip)) != NULL)
		(*n)++;
}

/* Parse an A or AAAA answer into the lookup; the status of the family. */
static enum mc_dns_status
take_addrs(struct mc_dns_lookup *lk, int family, int status,
           const unsigned char *abuf, int alen)
{
	struct ares_addrttl v4[MC_DNS_ADDRS_MAX];
	struct ares_addr6ttl v6[MC_DNS_ADDRS_MAX];
	struct hostent *he = NULL;
	int n = MC_DNS_ADDRS_MAX;
	const char *text;

	if (status == ARES_SUCCESS)
		status = family == AF_INET
		                 ? ares_parse_a_reply(abuf, alen, &he, v4, &n)
		                 : ares_parse_aaaa_reply(abuf, alen, &he, v6,
		                                         &n);
	if (he != NULL)
		ares_free_hostent(he);
	if (status == ARES_SUCCESS && n <= 0)
		status = ARES_ENODATA;
	if (status != ARES_SUCCESS) {
		enum mc_dns_status st = map_status(status, &text);

		note_error(lk, family == AF_INET ? "A" : "AAAA", text);
		return st;
	}
	for (int i = 0; i < n; i++)
		add_addr(lk, family,
		         family == AF_INET ? (const void *)&v4[i].ipaddr
		                           : (const void *)&v6[i].ip6addr);
	return MC_DNS_OK;
}

static void
a_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mc_dns_lookup *lk = arg;

	(void)timeouts;
	if (!lk->cancelled && !lk->dns->closing)
		lk->st_a = take_addrs(lk, AF_INET, status, abuf, alen);
	query_done(lk);
}

static void
aaaa_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mc_dns_lookup *lk = arg;

	(void)timeouts;
	if (!lk->cancelled && !lk->dns->closing)
		lk->st_aaaa = take_addrs(lk, AF_INET6, status, abuf, alen);
	query_done(lk);
}

/* ---- Starting lookups -------------------------------------------------- */

static struct mc_dns_lookup *
lookup_new(struct mc_dns *dns, enum lookup_kind kind, const char *name,
           mc_dns_cb *cb, void *ctx)
{
	struct mc_dns_lookup *lk = mc_malloc(sizeof(*lk));
	size_t len = strlen(name);

	if (name[len - 1] == '.')
		len--;
	memcpy(lk->name, name, len);
	lk->name[len] = '\0';
	lk->dns = dns;
	lk->kind = kind;
	lk->cb = cb;
	lk->ctx = ctx;
	lk->next = dns->lookups;
	if (dns->lookups != NULL)
		dns->lookups->prev = lk;
	dns->lookups = lk;
	return lk;
}

static int
check_start(struct mc_dns *dns, const char *name, mc_dns_cb *cb,
            const char **error_r)
{
	if (dns->closing || cb == NULL) {
		mc_error("dns: lookup after close or without a callback");
		abort();
	}
	if (!mc_dns_name_valid(name)) {
		*error_r = mc_errorf("'%s' is not a valid domain name",
		                     name != NULL ? name : "(null)");
		return -1;
	}
	return 0;
}

int
mc_dns_mx(struct mc_dns *dns, const char *domain, mc_dns_cb *cb, void *ctx,
          struct mc_dns_lookup **lookup_r, const char **error_r)
{
	struct mc_dns_lookup *lk;

	if (check_start(dns, domain, cb, error_r) < 0)
		return -1;
	lk = lookup_new(dns, LK_MX, domain, cb, ctx);
	lk->starting = true;
	lk->pending = 1;
	ares_query(dns->channel, lk->name, CLASS_IN, TYPE_MX, mx_answer, lk);
	lk->starting = false;
	update_timer(dns);
	if (lookup_r != NULL)
		*lookup_r = lk;
	return 0;
}

int
mc_dns_addrs(struct mc_dns *dns, const char *name, unsigned families,
             mc_dns_cb *cb, void *ctx, struct mc_dns_lookup **lookup_r,
             const char **error_r)
{
	struct mc_dns_lookup *lk;

	if (check_start(dns, name, cb, error_r) < 0)
		return -1;
	families &= MC_DNS_A | MC_DNS_AAAA;
	if (families == 0) {
		*error_r = "dns: no address family asked";
		return -1;
	}
	lk = lookup_new(dns, LK_ADDRS, name, cb, ctx);
	lk->families = families;
	lk->starting = true;
	/* Both counted first: a synchronous answer must not finish it. */
	lk->pending = (families & MC_DNS_A ? 1u : 0u) +
	              (families & MC_DNS_AAAA ? 1u : 0u);
	if (families & MC_DNS_AAAA)
		ares_query(dns->channel, lk->name, CLASS_IN, TYPE_AAAA,
		           aaaa_answer, lk);
	if (families & MC_DNS_A)
		ares_query(dns->channel, lk->name, CLASS_IN, TYPE_A, a_answer,
		           lk);
	lk->starting = false;
	update_timer(dns);
	if (lookup_r != NULL)
		*lookup_r = lk;
	return 0;
}

void
mc_dns_cancel(struct mc_dns_lookup *lookup)
{
	if (lookup != NULL)
		lookup->cancelled = true;
}

/* ---- Loop integration -------------------------------------------------- */

static void
handles_dec(struct mc_dns *dns)
{
	void (*done)(void *);
	void *arg;

	if (--dns->handles_open > 0)
		return;
	done = dns->close_done;
	arg = dns->close_arg;
	ares_library_cleanup();
	free(dns);
	if (done != NULL)
		done(arg);
}

static void
handle_closed(uv_handle_t *h)
{
	handles_dec(h->data);
}

static void
sock_closed(uv_handle_t *h)
{
	struct dns_sock *s = h->data;
	struct mc_dns *dns = s->dns;

	free(s);
	handles_dec(dns);
}

static void
update_timer(struct mc_dns *dns)
{
	struct timeval tv, *tvp;
	uint64_t ms;

	if (dns->closing)
		return;
	tvp = ares_timeout(dns->channel, NULL, &tv);
	if (tvp == NULL) {
		uv_timer_stop(&dns->timer);
		return;
	}
	ms = (uint64_t)tvp->tv_sec * 1000 +
	     ((uint64_t)tvp->tv_usec + 999) / 1000;
	uv_timer_start(&dns->timer, timer_cb, ms, 0);
}

static void
timer_cb(uv_timer_t *t)
{
	struct mc_dns *dns = t->data;

	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	update_timer(dns);
}

static void
poll_cb(uv_poll_t *h, int status, int events)
{
	struct dns_sock *s = h->data;
	struct mc_dns *dns = s->dns;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	/* An error on the socket: let c-ares read and write to find out. */
	if (status < 0 || (events & UV_READABLE))
		rfd = s->fd;
	if (status < 0 || (events & UV_WRITABLE))
		wfd = s->fd;
	/* May close this very poll (sock_state_cb): s is not used after. */
	ares_process_fd(dns->channel, rfd, wfd);
	update_timer(dns);
}

static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct mc_dns *dns = data;
	struct dns_sock *s, **pp;
	int r;

	for (pp = &dns->socks; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->fd == fd)
			break;
	s = *pp;
	if (!readable && !writable) {
		if (s == NULL)
			return;
		*pp = s->next; /* a new socket may reuse the fd at once */
		uv_poll_stop(&s->poll);
		uv_close((uv_handle_t *)&s->poll, sock_closed);
		return;
	}
	if (s == NULL) {
		s = mc_malloc(sizeof(*s));
		s->dns = dns;
		s->fd = fd;
		if ((r = uv_poll_init_socket(dns->loop, &s->poll, fd)) < 0) {
			/* The query then times out through the timer. */
			mc_warn("dns: cannot watch socket %d: %s", (int)fd,
			        uv_strerror(r));
			free(s);
			return;
		}
		s->poll.data = s;
		dns->handles_open++;
		s->next = dns->socks;
		dns->socks = s;
	}
	uv_poll_start(&s->poll,
	              (readable ? UV_READABLE : 0) |
	                      (writable ? UV_WRITABLE : 0),
	              poll_cb);
}

/* Close everything: c-ares first (its callbacks free the lookups still
 * waiting for answers, its socket-state callback closes the polls), then
 * the lookups that were ready, then our timers. */
static void
teardown(struct mc_dns *dns)
{
	if (dns->torn_down)
		return;
	dns->torn_down = true;
	ares_destroy(dns->channel);
	while (dns->socks != NULL) /* c-ares closed its fds already */
		sock_state_cb(dns, dns->socks->fd, 0, 0);
	while (dns->lookups != NULL)
		lookup_free(dns->lookups);
	uv_close((uv_handle_t *)&dns->timer, handle_closed);
	uv_close((uv_handle_t *)&dns->defer, handle_closed);
}

static void
defer_cb(uv_timer_t *t)
{
	struct mc_dns *dns = t->data;
	struct mc_dns_lookup *lk;

	while (!dns->closing) {
		for (lk = dns->lookups; lk != NULL; lk = lk->next)
			if (lk->ready)
				break;
		if (lk == NULL)
			return;
		if (lk->cancelled)
			lookup_free(lk);
		else
			deliver(lk); /* may close the resolver */
	}
	teardown(dns);
}

/* ---- Resolver ------------------------------------------------------------ */

/* "ip", "ip:port", "[ip6]:port" -> c-ares's "ip:port" / "[ip6]:port". */
static int
server_csv(const struct mc_dns_settings *set, char *out, size_t size,
           const char **error_r)
{
	unsigned char bin[16];
	char host[MC_HOST_MAX + 1];
	size_t n = 0;

	if (set->server_count > MC_DNS_SERVERS_MAX) {
		*error_r = mc_errorf("dns: at most %d servers",
		                     MC_DNS_SERVERS_MAX);
		return -1;
	}
	out[0] = '\0';
	for (size_t i = 0; i < set->server_count; i++) {
		const char *s = set->servers[i], *err;
		uint16_t port = 53;
		bool v6;

		if (s == NULL) {
			*error_r = "dns: a server is NULL";
			return -1;
		}
		if (strlen(s) <= MC_HOST_MAX &&
		    (inet_pton(AF_INET, s, bin) == 1 ||
		     inet_pton(AF_INET6, s, bin) == 1))
			snprintf(host, sizeof(host), "%s", s);
		else if (mc_hostport_parse(s, host, &port, &err) < 0) {
			*error_r = mc_errorf("dns: server %s", err);
			return -1;
		}
		v6 = inet_pton(AF_INET6, host, bin) == 1;
		if (!v6 && inet_pton(AF_INET, host, bin) != 1) {
			*error_r = mc_errorf("dns: server '%s' is not an IP "
			                     "address",
			                     s);
			return -1;
		}
		n += (size_t)snprintf(out + n, size - n,
		                      v6 ? "%s[%s]:%u" : "%s%s:%u",
		                      n > 0 ? "," : "", host, port);
	}
	return 0;
}

int
mc_dns_new(uv_loop_t *loop, const struct mc_dns_settings *set,
           struct mc_dns **dns_r, const char **error_r)
{
	static const struct mc_dns_settings defaults = {0};
	struct ares_options opt;
	char csv[MC_DNS_SERVERS_MAX * 64];
	struct mc_dns *dns;
	int mask = ARES_OPT_SOCK_STATE_CB, r;

	if (set == NULL)
		set = &defaults;
	if (server_csv(set, csv, sizeof(csv), error_r) < 0)
		return -1;
	if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		*error_r = mc_errorf("dns: %s", ares_strerror(r));
		return -1;
	}
	dns = mc_malloc(sizeof(*dns));
	memset(&opt, 0, sizeof(opt));
	opt.sock_state_cb = sock_state_cb;
	opt.sock_state_cb_data = dns;
	if (set->timeout_ms > 0) {
		opt.timeout = set->timeout_ms > 600000 ? 600000
		                                       : (int)set->timeout_ms;
		mask |= ARES_OPT_TIMEOUTMS;
	}
	if (set->tries > 0) {
		opt.tries = set->tries > 20 ? 20 : (int)set->tries;
		mask |= ARES_OPT_TRIES;
	}
	if ((r = ares_init_options(&dns->channel, &opt, mask)) !=
	    ARES_SUCCESS) {
		*error_r = mc_errorf("dns: %s", ares_strerror(r));
		goto fail;
	}
	if (csv[0] != '\0' && (r = ares_set_servers_ports_csv(
	                               dns->channel, csv)) != ARES_SUCCESS) {
		*error_r =
		        mc_errorf("dns: servers %s: %s", csv, ares_strerror(r));
		ares_destroy(dns->channel);
		goto fail;
	}
	dns->loop = loop;
	dns->rng = uv_hrtime() ^ ((uint64_t)(uintptr_t)dns << 16) ^
	           0x9e3779b97f4a7c15ull;
	uv_timer_init(loop, &dns->timer);
	uv_timer_init(loop, &dns->defer);
	dns->timer.data = dns;
	dns->defer.data = dns;
	dns->handles_open = 2;
	*dns_r = dns;
	return 0;
fail:
	free(dns);
	ares_library_cleanup();
	return -1;
}

void
mc_dns_close(struct mc_dns *dns, void (*done)(void *arg), void *arg)
{
	if (dns == NULL)
		return;
	if (dns->closing) {
		mc_error("dns: closed twice");
		abort();
	}
	dns->closing = true;
	dns->close_done = done;
	dns->close_arg = arg;
	uv_timer_stop(&dns->timer);
	uv_timer_start(&dns->defer, defer_cb, 0, 0);
}
