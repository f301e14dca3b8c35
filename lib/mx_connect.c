/* The connector of mx_connect.h: owns struct mc_mx_connect, which walks
 * the hosts in order, resolves each one's addresses when its turn comes
 * (one mc_dns_addrs lookup at a time: no query for the backup MX while
 * the primary answers), orders them (families interleaved), and makes
 * one connection attempt at a time until one connects, the hosts run out
 * or max_attempts is reached. Work starts from a zero timer, so the done
 * callback never runs inside mc_mx_connect_start; the same timer's close
 * callback frees the struct. */
#include "mx_connect.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "error.h"
#include "hostport.h"
#include "log.h"
#include "mem.h"

#define ATTEMPT_TIMEOUT_MS 30000
#define MAX_ATTEMPTS 10
#define DEFAULT_PORT 25

struct mx_host {
	char *name; /* name or IP literal, without brackets or port */
	uint16_t port;
	int literal; /* AF_INET, AF_INET6, or 0 for a name */
};

struct mc_mx_connect {
	uv_loop_t *loop;
	struct mc_dns *dns;
	struct mx_host *hosts;
	size_t host_count;
	size_t host; /* the host being tried; host_count before the first */
	enum mc_mx_connect_family family;
	uint64_t attempt_timeout;
	unsigned max_attempts, attempts;
	struct mc_conn_settings conn_set;
	struct mc_conn_callbacks cb;
	void *cb_ctx;
	char *log_id;
	mc_mx_connect_done_cb *done;
	void *ctx;

	struct mc_dns_lookup *lookup;                   /* pending, or NULL */
	struct mc_dns_addr addrs[2 * MC_DNS_ADDRS_MAX]; /* of this host */
	size_t addr_count, addr_next;
	struct mc_conn *attempt; /* in flight, or NULL */
	char attempt_ip[MC_DNS_IP_SIZE];
	bool temporary; /* something failed that may work later */
	bool finished;
	char errors[MC_MX_CONNECT_ERRORS_MAX];
	size_t errors_len;
	uv_timer_t kick;
};

/* ---- Errors and the end ------------------------------------------------ */

static void note(struct mc_mx_connect *mx, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
note(struct mc_mx_connect *mx, const char *fmt, ...)
{
	size_t room = sizeof(mx->errors) - mx->errors_len;
	va_list ap;
	int n;

	if (room <= 4) /* full, "..." written */
		return;
	if (mx->errors_len > 0) {
		n = snprintf(mx->errors + mx->errors_len, room, "; ");
		mx->errors_len += (size_t)n < room ? (size_t)n : room - 1;
		room = sizeof(mx->errors) - mx->errors_len;
	}
	va_start(ap, fmt);
	n = vsnprintf(mx->errors + mx->errors_len, room, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < room - 4) {
		mx->errors_len += (size_t)n;
		return;
	}
	/* Cut: end with "..." and take nothing more. */
	memcpy(mx->errors + sizeof(mx->errors) - 4, "...", 4);
	mx->errors_len = sizeof(mx->errors) - 1;
}

static void
mx_free(uv_handle_t *h)
{
	struct mc_mx_connect *mx = h->data;

	for (size_t i = 0; i < mx->host_count; i++)
		free(mx->hosts[i].name);
	free(mx->hosts);
	free(mx->log_id);
	free(mx);
}

static void
finish(struct mc_mx_connect *mx, struct mc_conn *conn)
{
	struct mc_mx_connect_result r;
	const struct mx_host *h =
	        mx->host < mx->host_count ? &mx->hosts[mx->host] : NULL;

	memset(&r, 0, sizeof(r));
	r.conn = conn;
	r.host = conn != NULL ? h->name : "";
	r.host_index = conn != NULL ? mx->host : 0;
	r.ip = conn != NULL ? mx->attempt_ip : "";
	r.port = conn != NULL ? h->port : 0;
	r.errors = mx->errors;
	r.attempts = mx->attempts;
	r.permanent = conn == NULL && !mx->temporary && mx->attempts == 0;
	if (conn != NULL)
		mc_info("mx_connect id=%s host=%s ip=%s port=%u attempts=%u "
		        "connected errors=\"%s\"",
		        mx->log_id, r.host, r.ip, r.port, r.attempts,
		        mx->errors);
	else
		mc_info("mx_connect id=%s attempts=%u failed permanent=%s "
		        "errors=\"%s\"",
		        mx->log_id, r.attempts, r.permanent ? "yes" : "no",
		        mx->errors);
	mx->finished = true;
	mx->attempt = NULL;
	mx->done(&r, mx->ctx);
	uv_close((uv_handle_t *)&mx->kick, mx_free);
}

/* ---- Walking hosts and addresses --------------------------------------- */

static bool
family_allowed(const struct mc_mx_connect *mx, int family)
{
	return family == AF_INET6 ? mx->family != MC_MX_CONNECT_IPV4_ONLY
	                          : mx->family != MC_MX_CONNECT_IPV6_ONLY;
}

/* The allowed addresses of a lookup, families interleaved, the preferred
 * one first. */
static void
order_addrs(struct mc_mx_connect *mx, const struct mc_dns_result *r)
{
	const struct mc_dns_addr *v6[2 * MC_DNS_ADDRS_MAX],
	        *v4[2 * MC_DNS_ADDRS_MAX];
	size_t n6 = 0, n4 = 0, i6 = 0, i4 = 0;
	bool six = mx->family != MC_MX_CONNECT_PREFER_IPV4 &&
	           mx->family != MC_MX_CONNECT_IPV4_ONLY;

	for (size_t i = 0; i < r->addr_count; i++) {
		if (!family_allowed(mx, r->addrs[i].family))
			continue;
		if (r->addrs[i].family == AF_INET6)
			v6[n6++] = &r->addrs[i];
		else
			v4[n4++] = &r->addrs[i];
	}
	mx->addr_count = mx->addr_next = 0;
	while (i6 < n6 || i4 < n4) {
		if (six ? i6 < n6 : i4 >= n4)
			mx->addrs[mx->addr_count++] = *v6[i6++];
		else
			mx->addrs[mx->addr_count++] = *v4[i4++];
		if ((six && i4 < n4) || (!six && i6 < n6))
			six = !six;
	}
}

static void next(struct mc_mx_connect *mx);

/* "name: " before an attempt's error; nothing for a literal, whose
 * error names it already. */
static const char *
who(const struct mx_host *h)
{
	return h->literal != 0 ? "" : mc_errorf("%s: ", h->name);
}

static void
dns_done(const struct mc_dns_result *r, void *ctx)
{
	struct mc_mx_connect *mx = ctx;

	mx->lookup = NULL;
	if (r->error != NULL)
		note(mx, "%s", r->error);
	if (r->status == MC_DNS_TEMPFAIL || r->status_a == MC_DNS_TEMPFAIL ||
	    r->status_aaaa == MC_DNS_TEMPFAIL)
		mx->temporary = true;
	order_addrs(mx, r);
	if (r->status == MC_DNS_OK && mx->addr_count == 0)
		note(mx, "%s: no address of the allowed family", r->name);
	next(mx);
}

/* Start the attempt on the current address; false if it failed at once. */
static bool
try_addr(struct mc_mx_connect *mx)
{
	const struct mx_host *h = &mx->hosts[mx->host];
	const struct mc_dns_addr *a = &mx->addrs[mx->addr_next++];
	struct mc_conn_settings cs = mx->conn_set;
	const char *error;

	cs.idle_timeout_ms = mx->attempt_timeout;
	snprintf(mx->attempt_ip, sizeof(mx->attempt_ip), "%s", a->ip);
	mx->attempts++;
	mc_debug("mx_connect id=%s host=%s ip=%s port=%u attempt=%u",
	         mx->log_id, h->name, a->ip, h->port, mx->attempts);
	if (mc_conn_connect(mx->loop, a->ip, h->port, &cs, &mx->cb, mx->cb_ctx,
	                    &mx->attempt, &error) < 0) {
		/* No route (ENETUNREACH) may be known at once. */
		mx->attempt = NULL;
		mx->temporary = true;
		note(mx, "%s%s", who(h), error);
		return false;
	}
	return true;
}

/* Move on: the next address of this host, else the next host. */
static void
next(struct mc_mx_connect *mx)
{
	const char *error;

	for (;;) {
		struct mx_host *h;

		if (mx->host < mx->host_count &&
		    mx->addr_next < mx->addr_count) {
			if (mx->attempts >= mx->max_attempts) {
				note(mx, "gave up after %u connection attempts",
				     mx->attempts);
				finish(mx, NULL);
				return;
			}
			if (try_addr(mx))
				return;
			continue;
		}
		mx->host = mx->host == mx->host_count ? 0 : mx->host + 1;
		if (mx->host >= mx->host_count) {
			mx->host = mx->host_count;
			finish(mx, NULL);
			return;
		}
		h = &mx->hosts[mx->host];
		mx->addr_count = mx->addr_next = 0;
		if (h->literal != 0) {
			if (family_allowed(mx, h->literal)) {
				snprintf(mx->addrs[0].ip,
				         sizeof(mx->addrs[0].ip), "%s",
				         h->name);
				mx->addrs[0].family = h->literal;
				mx->addr_count = 1;
			} else {
				note(mx, "%s: address family not allowed",
				     h->name);
			}
			continue;
		}
		if (mc_dns_addrs(mx->dns, h->name,
		                 mx->family == MC_MX_CONNECT_IPV4_ONLY
		                         ? MC_DNS_A
		                 : mx->family == MC_MX_CONNECT_IPV6_ONLY
		                         ? MC_DNS_AAAA
		                         : MC_DNS_A | MC_DNS_AAAA,
		                 dns_done, mx, &mx->lookup, &error) == 0)
			return;
		note(mx, "%s: %s", h->name, error); /* checked at start */
	}
}

static void
kick_cb(uv_timer_t *t)
{
	next(t->data);
}

bool
mc_mx_connect_event(struct mc_mx_connect *mx, struct mc_conn *conn,
                    enum mc_conn_event ev, const char *error)
{
	const struct mx_host *h;

	if (mx == NULL || mx->finished || conn != mx->attempt)
		return false;
	h = &mx->hosts[mx->host];
	switch (ev) {
	case MC_CONN_CONNECTED:
		mc_conn_set_idle_timeout(conn, mx->conn_set.idle_timeout_ms);
		finish(mx, conn);
		return true;
	case MC_CONN_DRAIN:
		return true;
	case MC_CONN_IDLE_TIMEOUT: /* conn reports it as an error today */
		note(mx, "%sconnect to %s: timed out", who(h), mx->attempt_ip);
		break;
	case MC_CONN_DEADLINE:
		note(mx, "%sconnect to %s: deadline reached", who(h),
		     mx->attempt_ip);
		break;
	default:
		note(mx, "%s%s", who(h),
		     error != NULL ? error : "connection closed");
		break;
	}
	mx->temporary = true;
	mx->attempt = NULL;
	mc_conn_abort(conn, NULL);
	if (ev == MC_CONN_DEADLINE)
		finish(mx, NULL);
	else
		next(mx);
	return true;
}

/* ---- Starting and cancelling ------------------------------------------- */

static int
parse_host(const char *s, uint16_t port, struct mx_host *h,
           const char **error_r)
{
	char buf[MC_HOST_MAX + 1];
	unsigned char bin[16];
	size_t len = s != NULL ? strlen(s) : 0;
	const char *err;

	if (len == 0 || len > MC_HOST_MAX + 8) {
		*error_r = "empty or overlong host";
		return -1;
	}
	if (inet_pton(AF_INET6, s, bin) == 1 ||
	    (s[0] != '[' && strchr(s, ':') == NULL)) {
		if (len > MC_HOST_MAX) {
			*error_r = "overlong host";
			return -1;
		}
		memcpy(buf, s, len + 1);
	} else if (s[0] == '[' && s[len - 1] == ']' && len - 2 <= MC_HOST_MAX) {
		memcpy(buf, s + 1, len - 2);
		buf[len - 2] = '\0';
	} else if (mc_hostport_parse(s, buf, &port, &err) < 0) {
		*error_r = err;
		return -1;
	}
	h->port = port;
	h->literal = inet_pton(AF_INET, buf, bin) == 1    ? AF_INET
	             : inet_pton(AF_INET6, buf, bin) == 1 ? AF_INET6
	                                                  : 0;
	if (h->literal == 0 && !mc_dns_name_valid(buf)) {
		*error_r = mc_errorf("'%s' is neither an IP address nor a host "
		                     "name",
		                     s);
		return -1;
	}
	h->name = mc_strdup(buf);
	return 0;
}

static const char *
check_settings(const struct mc_mx_connect_settings *set)
{
	if (set->host_count == 0 || set->host_count > MC_MX_CONNECT_HOSTS_MAX ||
	    set->hosts == NULL)
		return mc_errorf("between 1 and %d hosts are needed",
		                 MC_MX_CONNECT_HOSTS_MAX);
	if (set->cb == NULL || set->cb->read == NULL || set->cb->event == NULL)
		return "the owner's conn callbacks are required";
	if ((unsigned)set->family > MC_MX_CONNECT_IPV4_ONLY)
		return "invalid address family";
	return NULL;
}

int
mc_mx_connect_start(uv_loop_t *loop, const struct mc_mx_connect_settings *set,
                    mc_mx_connect_done_cb *done, void *ctx,
                    struct mc_mx_connect **mx_r, const char **error_r)
{
	struct mc_mx_connect *mx;
	const char *why = check_settings(set), *err;
	uint16_t port = set->port != 0 ? set->port : DEFAULT_PORT;

	if (why != NULL || done == NULL) {
		*error_r = mc_errorf("mx_connect: %s",
		                     why != NULL ? why : "no done callback");
		return -1;
	}
	mx = mc_malloc(sizeof(*mx));
	mx->hosts = mc_calloc(set->host_count, sizeof(*mx->hosts));
	for (size_t i = 0; i < set->host_count; i++, mx->host_count++) {
		if (parse_host(set->hosts[i], port, &mx->hosts[i], &err) < 0) {
			*error_r =
			        mc_errorf("mx_connect: host %zu: %s", i, err);
			goto fail;
		}
		if (mx->hosts[i].literal == 0 && set->dns == NULL) {
			*error_r = mc_errorf("mx_connect: host %s needs a "
			                     "resolver",
			                     mx->hosts[i].name);
			mx->host_count++;
			goto fail;
		}
	}
	mx->loop = loop;
	mx->dns = set->dns;
	mx->host = mx->host_count;
	mx->family = set->family;
	mx->attempt_timeout = set->attempt_timeout_ms != 0
	                              ? set->attempt_timeout_ms
	                              : ATTEMPT_TIMEOUT_MS;
	mx->max_attempts =
	        set->max_attempts != 0 ? set->max_attempts : MAX_ATTEMPTS;
	mx->conn_set = set->conn;
	mx->cb = *set->cb;
	mx->cb_ctx = set->cb_ctx;
	mx->log_id = mc_strdup(set->log_id != NULL ? set->log_id : "-");
	mx->done = done;
	mx->ctx = ctx;
	uv_timer_init(loop, &mx->kick);
	mx->kick.data = mx;
	uv_timer_start(&mx->kick, kick_cb, 0, 0);
	*mx_r = mx;
	return 0;
fail:
	for (size_t i = 0; i < mx->host_count; i++)
		free(mx->hosts[i].name);
	free(mx->hosts);
	free(mx);
	return -1;
}

void
mc_mx_connect_cancel(struct mc_mx_connect *mx)
{
	if (mx == NULL || mx->finished)
		return;
	mx->finished = true;
	if (mx->attempt != NULL)
		mc_conn_abort(mx->attempt, NULL);
	mx->attempt = NULL;
	if (mx->lookup != NULL)
		mc_dns_cancel(mx->lookup);
	mx->lookup = NULL;
	uv_close((uv_handle_t *)&mx->kick, mx_free);
}
