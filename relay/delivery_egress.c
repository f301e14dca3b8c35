/* SMTP sessions out (delivery_private.h): the recipients of one message
 * for one egress destination, over a smarthost route (its host and port,
 * TLS mode and AUTH with the secret it references) or to the recipient
 * domain's MX. Everything about the route was copied from the directory
 * when the attempt began; the AUTH secret is read on a worker thread at
 * every attempt and wiped when the session ends.
 *
 * The way to a server: the hosts to try (the smarthost; or the domain's
 * MX hosts by preference, its implicit MX without records), each host's
 * addresses from lib/dns (IPv6 first, then IPv4), and for each address a
 * lib/smtp_client session. An address that cannot be reached (refused,
 * unreachable, timed out, lost before the server said anything) or a
 * server that refuses the connection with a 4xx greeting passes the turn
 * to the next address, then to the next host (RFC 5321 5.1); every such
 * failure is kept for the last error. The first server that decides
 * anything about the message (a reply to MAIL, RCPT or DATA) decides
 * for the attempt. Permanent DNS answers for the recipient domain (no
 * such domain, null MX) fail the recipients for good. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "delivery_private.h"
#include "dns.h"
#include "error.h"
#include "log.h"
#include "mem.h"

/* MX hosts tried per attempt (Postfix tries 5 by default): a domain
 * with dozens of MX records does not make one attempt last forever. */
#define EG_MAX_HOSTS 5
/* Addresses tried per host. */
#define EG_MAX_ADDRS 4
/* The failures kept for last_error ("host [ip]: reason; ..."). */
#define EG_ERRORS_SIZE 400

struct dl_egress {
	bool smarthost;      /* else MX */
	char *route;         /* route name, "" without one */
	char *host;          /* smarthost host; MX: the recipient domain */
	uint16_t port;
	enum mc_dir_route_tls tls;
	char *auth_user;     /* "" = no AUTH */
	char *secret_env, *secret_file;
	char *secret;        /* read by dl_egress_prepare; wiped */
	char *secret_error;  /* why it could not be read */

	/* The attempt. */
	struct mc_dns_lookup *lookup;
	char *hosts[EG_MAX_HOSTS];
	size_t host_count, host_next;
	struct mc_dns_addr addrs[EG_MAX_ADDRS];
	size_t addr_count, addr_next;
	const char *current; /* hosts[host_next - 1] */
	char errors[EG_ERRORS_SIZE];
	bool dns_tempfail; /* some lookup failed temporarily */
};

struct dl_egress *
dl_egress_new(const struct relay_delivery *d, const struct dl_route *rt)
{
	struct dl_egress *eg = mc_malloc(sizeof(*eg));
	const struct mc_dir_route *r = rt->route;

	eg->smarthost = r != NULL && r->kind == MC_DIR_ROUTE_SMARTHOST;
	eg->route = mc_strdup(r != NULL ? r->name : "");
	eg->host = mc_strdup(eg->smarthost ? r->host : rt->domain);
	eg->port = eg->smarthost ? r->port : d->mx_port;
	eg->tls = eg->smarthost ? r->tls : MC_DIR_ROUTE_TLS_STARTTLS;
	eg->auth_user = mc_strdup(eg->smarthost ? r->auth_user : "");
	eg->secret_env = mc_strdup(eg->smarthost ? r->secret_env : "");
	eg->secret_file = mc_strdup(eg->smarthost ? r->secret_file : "");
	return eg;
}

static void
hosts_clear(struct dl_egress *eg)
{
	for (size_t i = 0; i < eg->host_count; i++)
		free(eg->hosts[i]);
	eg->host_count = eg->host_next = 0;
	eg->current = NULL;
}

void
dl_egress_free(struct dl_egress **egp)
{
	struct dl_egress *eg = *egp;

	if (eg == NULL)
		return;
	if (eg->lookup != NULL)
		mc_dns_cancel(eg->lookup);
	hosts_clear(eg);
	mc_secret_free(&eg->secret);
	free(eg->secret_error);
	free(eg->route);
	free(eg->host);
	free(eg->auth_user);
	free(eg->secret_env);
	free(eg->secret_file);
	free(eg);
	*egp = NULL;
}

void
dl_egress_prepare(struct dl_egress *eg)
{
	const char *error = NULL, *v;

	mc_secret_free(&eg->secret);
	free(eg->secret_error);
	eg->secret_error = NULL;
	if (eg->auth_user[0] == '\0')
		return;
	if (eg->secret_file[0] != '\0') {
		if (mc_secret_read_file(eg->secret_file, &eg->secret, &error) < 0)
			eg->secret_error = mc_strdup(error);
	} else if (eg->secret_env[0] != '\0') {
		/* The environment is never changed after start: reading it
		 * on a worker thread is safe. */
		if ((v = getenv(eg->secret_env)) == NULL || v[0] == '\0')
			eg->secret_error = mc_strdup(
			        mc_errorf("environment variable %s is not set",
			                  eg->secret_env));
		else
			eg->secret = mc_strdup(v);
	} else {
		eg->secret_error = mc_strdup("the route names no secret");
	}
}

/* ---- ending -------------------------------------------------------------- */

/* The session ends with one outcome for every recipient. */
static void
egress_local(struct dl_session *s, enum mc_smtp_client_outcome outcome,
             const char *enhanced, const char *text)
{
	struct dl_egress *eg = s->egress;

	mc_secret_free(&eg->secret);
	dl_session_local(s, outcome, enhanced, text, eg->current);
}

/* Keep a failure for last_error: "host [ip]: reason". */
static void
note_error(struct dl_egress *eg, const char *what)
{
	size_t n = strlen(eg->errors);

	if (n + 3 >= sizeof(eg->errors))
		return;
	snprintf(eg->errors + n, sizeof(eg->errors) - n, "%s%s",
	         n > 0 ? "; " : "", what);
}

/* Nothing is left to try: a temporary failure with what happened. */
static void
exhausted(struct dl_session *s)
{
	struct dl_egress *eg = s->egress;

	egress_local(s, MC_SMTP_CLIENT_TEMPFAIL,
	             eg->dns_tempfail ? "4.4.3" : "4.4.1",
	             eg->errors[0] != '\0' ? eg->errors
	                                   : "no server could be reached");
}

/* Calls that end a session must not run inside dl_egress_abort (the
 * caller walks the message's sessions): a one-shot timer defers them. */
static void
deferred_cb(uv_timer_t *t)
{
	struct dl_session *s = t->data;

	uv_close((uv_handle_t *)t, (uv_close_cb)free);
	egress_local(s, MC_SMTP_CLIENT_TEMPFAIL, "4.3.0", "aborted");
}

/* ---- connecting ------------------------------------------------------------ */

static void next_host(struct dl_session *s);

static enum mc_smtp_client_tls_mode
tls_mode(const struct dl_egress *eg)
{
	if (!eg->smarthost)
		return MC_SMTP_CLIENT_TLS_OPPORTUNISTIC;
	switch (eg->tls) {
	case MC_DIR_ROUTE_TLS_NONE:
		return MC_SMTP_CLIENT_TLS_NONE;
	case MC_DIR_ROUTE_TLS_IMPLICIT:
		return MC_SMTP_CLIENT_TLS_IMPLICIT;
	case MC_DIR_ROUTE_TLS_STARTTLS:
	default:
		return MC_SMTP_CLIENT_TLS_REQUIRED;
	}
}

/* Did the server decide anything about the message? If not (no
 * connection, lost or timed out before a reply, a 4xx greeting), the next
 * address may take it. */
static bool
undecided(const struct mc_smtp_client_result *res)
{
	for (size_t i = 0; i < res->rcpt_count; i++) {
		const struct mc_smtp_client_rcpt_result *r = &res->rcpts[i];

		if (r->outcome != MC_SMTP_CLIENT_TEMPFAIL)
			return false;
		if (r->code != 0 && strcmp(r->command, "greeting") != 0)
			return false;
	}
	return res->status != MC_SMTP_CLIENT_OK &&
	       res->status != MC_SMTP_CLIENT_ERR_UNSUPPORTED &&
	       res->status != MC_SMTP_CLIENT_ERR_LOCAL;
}

static void next_addr(struct dl_session *s);

static void
client_done(const struct mc_smtp_client_result *res, void *ctx)
{
	struct dl_session *s = ctx;
	struct dl_egress *eg = s->egress;
	const struct mc_dns_addr *a = &eg->addrs[eg->addr_next - 1];

	s->client = NULL;
	if (!s->aborted && undecided(res)) {
		const char *what = res->error != NULL ? res->error : "failed";

		mc_info("egress next address id=%s dest=%s host=%s ip=%s "
		        "error=\"%s\"",
		        s->m->env->id, s->node->dest, eg->current, a->ip, what);
		note_error(eg, mc_errorf("%s [%s]: %s", eg->current, a->ip, what));
		next_addr(s);
		return;
	}
	mc_secret_free(&eg->secret);
	dl_session_result(s, res);
}

/* The next address of the current host, else the next host. */
static void
next_addr(struct dl_session *s)
{
	struct dl_egress *eg = s->egress;
	struct relay_delivery *d = s->m->d;
	struct mc_smtp_client_rcpt *rcpts;
	struct mc_smtp_client_message msg;
	const struct mc_dns_addr *a;
	struct mc_smtp_client_settings set = {
	        .protocol = MC_SMTP_CLIENT_SMTP,
	        .port = eg->port,
	        .helo_name = d->hostname,
	        .remote_name = eg->current,
	        .tls = tls_mode(eg),
	        .tls_ctx = eg->smarthost ? d->smarthost_tls : d->mx_tls,
	        .tls_peer_name = eg->current,
	        .log_id = s->m->env->id,
	};
	const char *error;
	int rc;

	if (eg->addr_next >= eg->addr_count) {
		next_host(s);
		return;
	}
	a = &eg->addrs[eg->addr_next++];
	set.ip = a->ip;
	mc_debug("egress id=%s dest=%s host=%s ip=%s port=%u", s->m->env->id,
	         s->node->dest, eg->current, a->ip, (unsigned)eg->port);
	rcpts = mc_calloc(s->count, sizeof(*rcpts));
	dl_session_message(s, rcpts, &msg);
	rc = mc_smtp_client_start(d->loop, &set, &msg, client_done, s,
	                          &s->client, &error);
	free(rcpts);
	if (rc < 0) {
		s->client = NULL;
		note_error(eg, mc_errorf("%s [%s]: %s", eg->current, a->ip, error));
		next_addr(s);
	}
}

static void
addrs_done(const struct mc_dns_result *res, void *ctx)
{
	struct dl_session *s = ctx;
	struct dl_egress *eg = s->egress;

	eg->lookup = NULL;
	if (res->status == MC_DNS_TEMPFAIL)
		eg->dns_tempfail = true;
	if (res->status != MC_DNS_OK) {
		note_error(eg, mc_errorf("%s: %s", eg->current,
		                         res->error != NULL
		                                 ? res->error
		                                 : mc_dns_status_name(res->status)));
		next_host(s);
		return;
	}
	eg->addr_count = eg->addr_next = 0;
	/* AAAA answers first, then A: IPv6 is tried first and IPv4 takes
	 * over when it fails (a host without IPv6 connectivity). */
	for (size_t i = 0; i < res->addr_count && eg->addr_count < EG_MAX_ADDRS; i++)
		eg->addrs[eg->addr_count++] = res->addrs[i];
	next_addr(s);
}

/* Resolve and try the next host, or give up. */
static void
next_host(struct dl_session *s)
{
	struct dl_egress *eg = s->egress;
	unsigned char buf[16];
	const char *error;
	int family;

	if (eg->host_next >= eg->host_count) {
		exhausted(s);
		return;
	}
	eg->current = eg->hosts[eg->host_next++];
	eg->addr_count = eg->addr_next = 0;
	family = inet_pton(AF_INET, eg->current, buf) == 1    ? AF_INET
	         : inet_pton(AF_INET6, eg->current, buf) == 1 ? AF_INET6
	                                                      : 0;
	if (family != 0) { /* an IP literal: nothing to resolve */
		eg->addrs[0].family = family;
		snprintf(eg->addrs[0].ip, sizeof(eg->addrs[0].ip), "%s", eg->current);
		eg->addr_count = 1;
		next_addr(s);
		return;
	}
	if (mc_dns_addrs(s->m->d->dns, eg->current, MC_DNS_A | MC_DNS_AAAA,
	                 addrs_done, s, &eg->lookup, &error) < 0) {
		note_error(eg, mc_errorf("%s: %s", eg->current, error));
		next_host(s);
	}
}

static void
mx_done(const struct mc_dns_result *res, void *ctx)
{
	struct dl_session *s = ctx;
	struct dl_egress *eg = s->egress;

	eg->lookup = NULL;
	switch (res->status) {
	case MC_DNS_OK:
		break;
	case MC_DNS_NULL_MX:
		egress_local(s, MC_SMTP_CLIENT_PERMFAIL, "5.1.10",
		             mc_errorf("%s accepts no mail (null MX)", eg->host));
		return;
	case MC_DNS_NXDOMAIN:
	case MC_DNS_NODATA:
		egress_local(s, MC_SMTP_CLIENT_PERMFAIL, "5.1.2",
		             mc_errorf("domain %s does not exist", eg->host));
		return;
	case MC_DNS_TEMPFAIL:
	default:
		eg->dns_tempfail = true;
		egress_local(s, MC_SMTP_CLIENT_TEMPFAIL, "4.4.3",
		             mc_errorf("MX lookup for %s: %s", eg->host,
		                       res->error != NULL ? res->error
		                                          : "temporary failure"));
		return;
	}
	for (size_t i = 0; i < res->mx_count && eg->host_count < EG_MAX_HOSTS; i++)
		eg->hosts[eg->host_count++] = mc_strdup(res->mx[i].host);
	next_host(s);
}

void
dl_egress_start(struct dl_session *s)
{
	struct dl_egress *eg = s->egress;
	const char *error;

	eg->errors[0] = '\0';
	eg->dns_tempfail = false;
	hosts_clear(eg);
	if (eg->secret_error != NULL) {
		egress_local(s, MC_SMTP_CLIENT_TEMPFAIL, "4.7.0",
		             mc_errorf("cannot read the AUTH secret of route "
		                       "%s: %s",
		                       eg->route, eg->secret_error));
		return;
	}
	if (eg->auth_user[0] != '\0') {
		/* lib/smtp_client has no AUTH yet: sending without it would
		 * have the smarthost refuse (and the sender get a bounce). */
		egress_local(s, MC_SMTP_CLIENT_TEMPFAIL, "4.7.0",
		             mc_errorf("route %s needs AUTH, which this relay "
		                       "cannot do yet",
		                       eg->route));
		return;
	}
	if (eg->smarthost) {
		eg->hosts[eg->host_count++] = mc_strdup(eg->host);
		next_host(s);
		return;
	}
	if (mc_dns_mx(s->m->d->dns, eg->host, mx_done, s, &eg->lookup, &error) < 0)
		egress_local(s, MC_SMTP_CLIENT_PERMFAIL, "5.1.2",
		             mc_errorf("%s is not a domain: %s", eg->host, error));
}

void
dl_egress_abort(struct dl_session *s)
{
	struct dl_egress *eg = s->egress;
	uv_timer_t *t;

	if (s->client != NULL) {
		mc_smtp_client_abort(s->client); /* its done callback ends it */
		return;
	}
	if (eg->lookup != NULL) {
		mc_dns_cancel(eg->lookup);
		eg->lookup = NULL;
		t = mc_malloc(sizeof(*t));
		uv_timer_init(s->m->d->loop, t);
		t->data = s;
		uv_timer_start(t, deferred_cb, 0, 0);
	}
}
