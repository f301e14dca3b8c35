/* SMTP sessions out (delivery_private.h): the recipients of one message
 * for one egress destination, over a smarthost route (its host and port,
 * TLS mode and AUTH with the secret it references) or to the recipient
 * domain's MX. Everything about the route was copied from the directory
 * when the attempt began; the AUTH secret is read on a worker thread at
 * every attempt, handed to lib/smtp_client (which keeps its own copy
 * until AUTH is over) and wiped right after.
 *
 * The way to a server: lib/smtp_client resolves and connects through
 * lib/mx_connect (each host's AAAA and A, IPv6 and IPv4 falling back to
 * each other, every error kept). For direct MX this file looks up the
 * domain's MX hosts first (lib/dns: sorted, implicit MX), so that the
 * domain's own permanent answers - no such domain, null MX - fail the
 * recipients for good, and hands the client the hosts by preference. A
 * host that connects but decides nothing about the message (a 4xx
 * greeting, a TLS or protocol failure, a connection lost before MAIL)
 * passes the turn to the next MX host (RFC 5321 5.1); the first server
 * that answers the transaction decides the attempt.
 *
 * Connection reuse: a session whose transaction ended cleanly leaves its
 * connection held (lib/smtp_client "Connection reuse") under its route
 * note, which names the destination and, for a smarthost, a digest of the
 * route's settings: the next message for the same note goes over it (RSET,
 * then the transaction) without DNS, connect, TLS or AUTH. At most
 * max_sessions_per_node connections are held per note, each for the
 * client's idle time (5 s). A held connection that turns out dead before
 * any reply decided the message costs nothing: the message takes another
 * held connection or a new one at once. */
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
/* The failures kept for last_error ("host: reason; ..."). */
#define EG_ERRORS_SIZE 400

/* A connection kept for the next message to the same route note. */
struct dl_held {
	struct dl_held *next;
	struct relay_delivery *d;
	char *note;
	struct mc_smtp_client *client;
};

struct dl_egress {
	bool smarthost; /* else MX */
	char *route;    /* route name, "" without one */
	char *host;     /* smarthost host; MX: the recipient domain */
	uint16_t port;
	enum mc_dir_route_tls tls;
	char *auth_user; /* "" = no AUTH */
	char *secret_env, *secret_file;
	char *secret;       /* read by dl_egress_prepare; wiped */
	char *secret_error; /* why it could not be read */

	/* The attempt. */
	struct mc_dns_lookup *lookup;
	char *hosts[EG_MAX_HOSTS];
	size_t host_count, host_next;
	char errors[EG_ERRORS_SIZE];
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
		if (mc_secret_read_file(eg->secret_file, &eg->secret, &error) <
		    0)
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
	mc_secret_free(&s->egress->secret);
	dl_session_local(s, outcome, enhanced, text, NULL);
}

/* Keep a failure for last_error. */
static void
note_error(struct dl_egress *eg, const char *what)
{
	size_t n = strlen(eg->errors);

	if (n + 3 >= sizeof(eg->errors))
		return;
	snprintf(eg->errors + n, sizeof(eg->errors) - n, "%s%s",
	         n > 0 ? "; " : "", what);
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

/* ---- held connections ---------------------------------------------------- */

static void
held_unlink_free(struct dl_held *h)
{
	struct dl_held **pp = &h->d->held;

	while (*pp != h)
		pp = &(*pp)->next;
	*pp = h->next;
	free(h->note);
	free(h);
}

/* The held connection ended on its own (idle time, server close). */
static void
held_closed(void *ctx)
{
	held_unlink_free(ctx);
}

/* Keep client (its result is reusable; inside its done callback). */
static void
held_put(struct relay_delivery *d, const char *note,
         struct mc_smtp_client *client)
{
	struct dl_held *h;
	unsigned n = 0;

	for (h = d->held; h != NULL; h = h->next)
		if (strcmp(h->note, note) == 0)
			n++;
	if (d->closing || n >= d->max_sessions_per_node)
		return; /* not held: it says QUIT */
	h = mc_malloc(sizeof(*h));
	h->d = d;
	h->note = mc_strdup(note);
	h->client = client;
	h->next = d->held;
	d->held = h;
	mc_smtp_client_hold(client, held_closed, h);
}

static struct mc_smtp_client *
held_take(struct relay_delivery *d, const char *note)
{
	struct mc_smtp_client *client;
	struct dl_held *h;

	for (h = d->held; h != NULL; h = h->next)
		if (strcmp(h->note, note) == 0)
			break;
	if (h == NULL)
		return NULL;
	client = h->client;
	held_unlink_free(h);
	return client;
}

void
dl_egress_drop_held(struct relay_delivery *d)
{
	while (d->held != NULL) {
		struct mc_smtp_client *client = d->held->client;

		held_unlink_free(d->held);
		mc_smtp_client_release(client, true);
	}
}

/* ---- the SMTP session ------------------------------------------------------
 */

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

/* A host connected but decided nothing about the message (no reply to
 * MAIL, RCPT or DATA): the next MX host may take it. */
static bool
undecided(const struct mc_smtp_client_result *res)
{
	if (res->host == NULL || res->host[0] == '\0')
		return false; /* nothing connected: every host was tried */
	for (size_t i = 0; i < res->rcpt_count; i++) {
		const struct mc_smtp_client_rcpt_result *r = &res->rcpts[i];

		if (r->outcome != MC_SMTP_CLIENT_TEMPFAIL)
			return false;
		if (r->code != 0 && strcmp(r->command, "greeting") != 0)
			return false;
	}
	return res->status != MC_SMTP_CLIENT_OK &&
	       res->status != MC_SMTP_CLIENT_ERR_UNSUPPORTED &&
	       res->status != MC_SMTP_CLIENT_ERR_LOCAL &&
	       res->status != MC_SMTP_CLIENT_ERR_AUTH;
}

static void run_client(struct dl_session *s);
static bool run_held(struct dl_session *s);
static void connect_fresh(struct dl_session *s);

/* Some recipient was decided by a server reply. */
static bool
decided_by_reply(const struct mc_smtp_client_result *res)
{
	for (size_t i = 0; i < res->rcpt_count; i++)
		if (res->rcpts[i].code != 0)
			return true;
	return false;
}

static void
client_done(const struct mc_smtp_client_result *res, void *ctx)
{
	struct dl_session *s = ctx;
	struct dl_egress *eg = s->egress;
	struct mc_smtp_client *client = s->client;
	size_t i;

	s->client = NULL;
	if (res->reused && !s->aborted && !decided_by_reply(res)) {
		/* A held connection the server had dropped: no attempt. */
		mc_info("egress id=%s dest=%s reused connection failed, "
		        "reconnecting: %s",
		        s->m->env->id, s->node->dest,
		        res->error != NULL ? res->error : "");
		if (!run_held(s))
			connect_fresh(s);
		return;
	}
	if (res->reusable && !s->aborted)
		held_put(s->m->d, s->note, client);
	if (res->connect_errors != NULL && res->connect_errors[0] != '\0')
		mc_info("egress id=%s dest=%s connect_errors=\"%s\"",
		        s->m->env->id, s->node->dest, res->connect_errors);
	if (!s->aborted && !eg->smarthost && undecided(res)) {
		/* The hosts after the one that answered, if any. */
		for (i = eg->host_next; i < eg->host_count; i++)
			if (strcmp(eg->hosts[i], res->host) == 0)
				break;
		if (i + 1 < eg->host_count) {
			note_error(eg,
			           mc_errorf("%s: %s", res->host,
			                     res->error != NULL ? res->error
			                                        : "failed"));
			mc_info("egress next host id=%s dest=%s host=%s "
			        "error=\"%s\"",
			        s->m->env->id, s->node->dest, res->host,
			        res->error != NULL ? res->error : "");
			eg->host_next = i + 1;
			run_client(s);
			return;
		}
	}
	mc_secret_free(&eg->secret);
	dl_session_result(s, res);
}

/* One lib/smtp_client session over the hosts left. */
static void
run_client(struct dl_session *s)
{
	struct dl_egress *eg = s->egress;
	struct relay_delivery *d = s->m->d;
	struct mc_smtp_client_rcpt *rcpts;
	struct mc_smtp_client_message msg;
	struct mc_smtp_client_settings set = {
	        .protocol = MC_SMTP_CLIENT_SMTP,
	        .port = eg->port,
	        .dns = d->dns,
	        .hosts = (const char *const *)eg->hosts + eg->host_next,
	        .host_count = eg->host_count - eg->host_next,
	        .helo_name = d->hostname,
	        .tls = tls_mode(eg),
	        .tls_ctx = eg->smarthost ? d->smarthost_tls : d->mx_tls,
	        .log_id = s->m->env->id,
	        .reuse = true,
	};
	const char *error;
	int rc;

	if (eg->secret != NULL) {
		set.auth_username = eg->auth_user;
		set.auth_password = eg->secret;
	}
	rcpts = mc_calloc(s->count, sizeof(*rcpts));
	dl_session_message(s, rcpts, &msg);
	rc = mc_smtp_client_start(d->loop, &set, &msg, client_done, s,
	                          &s->client, &error);
	free(rcpts);
	/* The client keeps its own copy until AUTH is over. */
	mc_secret_free(&eg->secret);
	if (rc < 0) {
		s->client = NULL;
		note_error(eg, error);
		egress_local(s, MC_SMTP_CLIENT_TEMPFAIL, "4.4.1", eg->errors);
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
		egress_local(
		        s, MC_SMTP_CLIENT_PERMFAIL, "5.1.10",
		        mc_errorf("%s accepts no mail (null MX)", eg->host));
		return;
	case MC_DNS_NXDOMAIN:
	case MC_DNS_NODATA:
		egress_local(s, MC_SMTP_CLIENT_PERMFAIL, "5.1.2",
		             mc_errorf("domain %s does not exist", eg->host));
		return;
	case MC_DNS_TEMPFAIL:
	default:
		egress_local(s, MC_SMTP_CLIENT_TEMPFAIL, "4.4.3",
		             mc_errorf("MX lookup for %s: %s", eg->host,
		                       res->error != NULL
		                               ? res->error
		                               : "temporary failure"));
		return;
	}
	for (size_t i = 0; i < res->mx_count && eg->host_count < EG_MAX_HOSTS;
	     i++)
		eg->hosts[eg->host_count++] = mc_strdup(res->mx[i].host);
	run_client(s);
}

/* The message over a connection held for its note, if one still takes
 * it. */
static bool
run_held(struct dl_session *s)
{
	struct mc_smtp_client *client;
	struct mc_smtp_client_rcpt *rcpts;
	struct mc_smtp_client_message msg;
	const char *error;
	int rc;

	while ((client = held_take(s->m->d, s->note)) != NULL) {
		rcpts = mc_calloc(s->count, sizeof(*rcpts));
		dl_session_message(s, rcpts, &msg);
		rc = mc_smtp_client_next(client, &msg, s->m->env->id,
		                         client_done, s, &error);
		free(rcpts);
		if (rc == 0) {
			s->client = client;
			return true;
		}
		mc_info("egress id=%s dest=%s held connection unusable: %s",
		        s->m->env->id, s->node->dest, error);
	}
	return false;
}

/* A new connection: the smarthost, or the domain's MX hosts. */
static void
connect_fresh(struct dl_session *s)
{
	struct dl_egress *eg = s->egress;
	const char *error;

	if (eg->smarthost) {
		eg->hosts[eg->host_count++] = mc_strdup(eg->host);
		run_client(s);
		return;
	}
	if (mc_dns_mx(s->m->d->dns, eg->host, mx_done, s, &eg->lookup, &error) <
	    0)
		egress_local(
		        s, MC_SMTP_CLIENT_PERMFAIL, "5.1.2",
		        mc_errorf("%s is not a domain: %s", eg->host, error));
}

void
dl_egress_start(struct dl_session *s)
{
	struct dl_egress *eg = s->egress;

	eg->errors[0] = '\0';
	hosts_clear(eg);
	if (eg->secret_error != NULL) {
		egress_local(s, MC_SMTP_CLIENT_TEMPFAIL, "4.7.0",
		             mc_errorf("cannot read the AUTH secret of route "
		                       "%s: %s",
		                       eg->route, eg->secret_error));
		return;
	}
	if (!run_held(s))
		connect_fresh(s);
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
