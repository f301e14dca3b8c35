/* Checking and copying what mc_smtp_client_start is given (see
 * smtp_client_private.h): addresses and DSN parameters without control
 * characters or spaces where a command line would take them as syntax
 * (no command injection through an address), bounded lengths, a usable
 * TLS context, credentials only with TLS, timeouts with their RFC 5321
 * defaults; then copies of every string in the session's pool, so that
 * the caller's message struct may go away at once (the content itself is
 * borrowed), and of the credentials in heap memory that is wiped. Also
 * connecting by name: the session's side of lib/mx_connect.h. */
#include "smtp_client_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "mem.h"
#include "pool.h"
#include "tls.h"

/* No control characters (no command injection), bounded. */
static bool
text_ok(const char *s, size_t max, bool allow_space)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		unsigned char ch = (unsigned char)s[n];

		if (ch < 0x20 || ch == 0x7f || (ch == ' ' && !allow_space))
			return false;
	}
	return n <= max;
}

const char *
mc_smtp_client_check_message(const struct mc_smtp_client_message *msg)
{
	if (msg->sender == NULL ||
	    !text_ok(msg->sender, MC_SMTP_CLIENT_ADDR_MAX, true))
		return "invalid sender";
	if (msg->rcpt_count == 0 || msg->rcpt_count > MC_SMTP_CLIENT_MAX_RCPTS)
		return "recipient count out of range";
	for (size_t i = 0; i < msg->rcpt_count; i++) {
		const struct mc_smtp_client_rcpt *r = &msg->rcpts[i];

		if (r->address == NULL || r->address[0] == '\0' ||
		    !text_ok(r->address, MC_SMTP_CLIENT_ADDR_MAX, true))
			return mc_errorf("invalid recipient %zu", i);
		if (r->orcpt != NULL && !text_ok(r->orcpt, 500, false))
			return mc_errorf("invalid ORCPT of recipient %zu", i);
	}
	if (msg->envid != NULL && !text_ok(msg->envid, 100, false))
		return "invalid ENVID";
	if (msg->ret != NULL && msg->ret[0] != '\0' &&
	    strcasecmp(msg->ret, "FULL") != 0 &&
	    strcasecmp(msg->ret, "HDRS") != 0)
		return "RET must be FULL or HDRS";
	if (!msg->use_fd && msg->data == NULL && msg->size > 0)
		return "no content";
	if (msg->use_fd && msg->fd < 0)
		return "invalid content fd";
	return NULL;
}

static const char *
check_auth(const struct mc_smtp_client_settings *set)
{
	const char *u = set->auth_username, *p = set->auth_password;

	if (u == NULL && p == NULL)
		return NULL;
	if (u == NULL || p == NULL)
		return "AUTH needs both a username and a password";
	if (set->tls == MC_SMTP_CLIENT_TLS_NONE)
		return "AUTH needs TLS: credentials are never sent in clear "
		       "text";
	if (u[0] == '\0' || !text_ok(u, MC_SMTP_CLIENT_AUTH_CRED_MAX, true))
		return "invalid AUTH username";
	if (p[0] == '\0' || strlen(p) > MC_SMTP_CLIENT_AUTH_CRED_MAX)
		return "invalid AUTH password length";
	if (set->auth_mechs &
	    ~(MC_SMTP_CLIENT_AUTH_PLAIN | MC_SMTP_CLIENT_AUTH_LOGIN |
	      MC_SMTP_CLIENT_AUTH_SCRAM_SHA_256))
		return "unknown AUTH mechanism";
	return NULL;
}

static const char *
check_settings(const struct mc_smtp_client_settings *set)
{
	const char *why;

	if (set->hosts != NULL || set->host_count > 0) {
		if (set->ip != NULL)
			return "either ip or hosts, not both";
		if (set->hosts == NULL || set->host_count == 0 ||
		    set->host_count > MC_MX_CONNECT_HOSTS_MAX)
			return "host count out of range";
		for (size_t i = 0; i < set->host_count; i++)
			if (set->hosts[i] == NULL ||
			    !text_ok(set->hosts[i], 300, false))
				return "invalid host";
	} else if (set->ip == NULL || set->port == 0) {
		return "server address and port are required";
	}
	if ((why = check_auth(set)) != NULL)
		return why;
	if (set->helo_name == NULL || set->helo_name[0] == '\0' ||
	    !text_ok(set->helo_name, 255, false))
		return "invalid helo_name";
	if (set->tls != MC_SMTP_CLIENT_TLS_NONE &&
	    (set->tls_ctx == NULL ||
	     mc_tls_ctx_role(set->tls_ctx) != MC_TLS_CLIENT))
		return "TLS needs a client TLS context";
	if ((unsigned)set->protocol > MC_SMTP_CLIENT_LMTP ||
	    (unsigned)set->tls > MC_SMTP_CLIENT_TLS_IMPLICIT)
		return "invalid protocol or TLS mode";
	return NULL;
}

static uint64_t
or_default(uint64_t v, uint64_t def)
{
	return v != 0 ? v : def;
}

static void
resolve_timeouts(const struct mc_smtp_client_timeouts *in,
                 struct mc_smtp_client_timeouts *out)
{
	out->connect = or_default(in->connect, 30000);
	out->greeting = or_default(in->greeting, 300000);
	out->command = or_default(in->command, 300000);
	out->tls = or_default(in->tls, 60000);
	out->mail = or_default(in->mail, 300000);
	out->rcpt = or_default(in->rcpt, 300000);
	out->data_init = or_default(in->data_init, 120000);
	out->data_block = or_default(in->data_block, 180000);
	out->data_end = or_default(in->data_end, 600000);
	out->quit = or_default(in->quit, 30000);
	out->session = or_default(in->session, 3600000);
	out->idle = or_default(in->idle, 5000);
}

static char *
pool_dup(struct mc_pool *pool, const char *s)
{
	return s != NULL && s[0] != '\0' ? mc_pool_strdup(pool, s) : NULL;
}

void
mc_smtp_client_copy_message(struct mc_smtp_client *c,
                            const struct mc_smtp_client_message *m)
{
	struct mc_pool *mp;

	mc_pool_free(&c->mpool);
	mp = c->mpool = mc_pool_new();
	c->sender = mc_pool_strdup(mp, m->sender);
	c->envid = pool_dup(mp, m->envid);
	c->ret = pool_dup(mp, m->ret);
	c->rcpt_count = m->rcpt_count;
	c->rcpts = mc_pool_alloc(mp, m->rcpt_count * sizeof(*c->rcpts));
	for (size_t i = 0; i < m->rcpt_count; i++) {
		c->rcpts[i].address = mc_pool_strdup(mp, m->rcpts[i].address);
		c->rcpts[i].orcpt = pool_dup(mp, m->rcpts[i].orcpt);
		c->rcpts[i].notify = m->rcpts[i].notify & 0xfu;
	}
	c->results = mc_pool_alloc(mp, m->rcpt_count * sizeof(*c->results));
	c->rstate = mc_pool_alloc(mp, m->rcpt_count);
	c->flags = m->flags;
	c->data = m->data;
	c->size = m->size;
	c->use_fd = m->use_fd;
	c->fd = m->fd;
}

static void
copy_settings(struct mc_smtp_client *c, const struct mc_smtp_client_settings *s)
{
	c->set = *s;
	c->set.ip = pool_dup(c->pool, s->ip);
	c->set.helo_name = mc_pool_strdup(c->pool, s->helo_name);
	c->set.remote_name = pool_dup(c->pool, s->remote_name);
	c->set.tls_peer_name = pool_dup(c->pool, s->tls_peer_name);
	c->set.log_id = pool_dup(c->pool, s->log_id);
	if (s->host_count > 0) {
		const char **hosts =
		        mc_pool_alloc(c->pool, s->host_count * sizeof(*hosts));

		for (size_t i = 0; i < s->host_count; i++)
			hosts[i] = mc_pool_strdup(c->pool, s->hosts[i]);
		c->set.hosts = hosts;
	}
	c->host = "";
	c->connect_errors = "";
	/* Credentials: heap copies wiped after AUTH; none kept in set. */
	if (s->auth_username != NULL) {
		c->auth_user = mc_strdup(s->auth_username);
		c->auth_pass = mc_strdup(s->auth_password);
	}
	c->auth_mechs = s->auth_mechs != 0
	                        ? s->auth_mechs
	                        : MC_SMTP_CLIENT_AUTH_PLAIN |
	                                  MC_SMTP_CLIENT_AUTH_LOGIN |
	                                  MC_SMTP_CLIENT_AUTH_SCRAM_SHA_256;
	c->set.auth_username = c->set.auth_password = NULL;
	c->remote = c->set.remote_name != NULL ? c->set.remote_name
	            : c->set.ip != NULL        ? c->set.ip
	                                       : c->set.hosts[0];
	c->log_id = c->set.log_id != NULL ? c->set.log_id : "-";
	c->tls_mode = s->tls;
	resolve_timeouts(&s->timeouts, &c->to);
}

const char *
mc_smtp_client_check(const struct mc_smtp_client_settings *set,
                     const struct mc_smtp_client_message *msg)
{
	const char *why = check_settings(set);

	return why != NULL ? why : mc_smtp_client_check_message(msg);
}

void
mc_smtp_client_copy(struct mc_smtp_client *c,
                    const struct mc_smtp_client_settings *set,
                    const struct mc_smtp_client_message *msg)
{
	copy_settings(c, set);
	mc_smtp_client_copy_message(c, msg);
}

/* ---- Connecting by name ------------------------------------------------ */

static void
mx_done(const struct mc_mx_connect_result *r, void *ctx)
{
	struct mc_smtp_client *c = ctx;

	c->mx = NULL;
	c->connect_errors = mc_pool_strdup(c->pool, r->errors);
	if (r->conn == NULL) {
		size_t n = strlen(r->errors) + 64;
		char *text = mc_pool_alloc(c->pool, n);

		/* No address at all (NXDOMAIN, no A/AAAA): RFC 3463 5.4.4,
		 * "unable to route"; else a connection failure, retried. */
		snprintf(text, n, "no connection to %s: %s", c->remote,
		         r->errors);
		mc_smtp_client_end(c, MC_SMTP_CLIENT_ERR_CONNECT,
		                   r->permanent ? MC_SMTP_CLIENT_PERMFAIL
		                                : MC_SMTP_CLIENT_TEMPFAIL,
		                   r->permanent ? "5.4.4" : "4.4.1", text,
		                   false);
		mc_smtp_client_settle(c);
		return;
	}
	c->conn = r->conn;
	c->conns_open++;
	c->set.ip = mc_pool_strdup(c->pool, r->ip);
	c->set.port = r->port;
	c->host = mc_pool_strdup(c->pool, r->host);
	if (c->set.remote_name == NULL)
		c->remote = c->host;
	mc_smtp_client_connected(c);
}

int
mc_smtp_client_mx_start(struct mc_smtp_client *c,
                        const struct mc_conn_callbacks *cb,
                        const struct mc_conn_settings *cs, const char **error_r)
{
	struct mc_mx_connect_settings ms = {
	        .dns = c->set.dns,
	        .hosts = c->set.hosts,
	        .host_count = c->set.host_count,
	        .port = c->set.port,
	        .family = c->set.family,
	        .attempt_timeout_ms = c->to.connect,
	        .max_attempts = c->set.max_attempts,
	        .conn = *cs,
	        .cb = cb,
	        .cb_ctx = c,
	        .log_id = c->log_id,
	};

	return mc_mx_connect_start(c->loop, &ms, mx_done, c, &c->mx, error_r);
}

static void
abort_timer_closed(uv_handle_t *h)
{
	struct mc_smtp_client *c = h->data;

	/* Counted like a connection: the client lives until it is closed. */
	c->conns_open--;
	mc_smtp_client_end(c, MC_SMTP_CLIENT_ERR_LOCAL, MC_SMTP_CLIENT_TEMPFAIL,
	                   "4.3.0", "delivery aborted", false);
	mc_smtp_client_settle(c);
}

static void
abort_timer_cb(uv_timer_t *t)
{
	uv_close((uv_handle_t *)t, abort_timer_closed);
}

void
mc_smtp_client_mx_abort(struct mc_smtp_client *c)
{
	mc_mx_connect_cancel(c->mx);
	c->mx = NULL;
	uv_timer_init(c->loop, &c->abort_timer);
	c->abort_timer.data = c;
	c->conns_open++;
	uv_timer_start(&c->abort_timer, abort_timer_cb, 0, 0);
}
