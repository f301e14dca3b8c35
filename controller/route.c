/* Admin handlers for outbound routes, the transport map of the cluster:
 * route add / list / rm / default and route rule add / rm, plus the
 * loaders the snapshot and the publisher share. A route is a smarthost
 * (host, port, TLS mode, optional AUTH whose secret is a reference to an
 * environment variable or a file on the relay, never the secret) or
 * direct MX delivery. A rule sends mail for one recipient domain over a
 * route; other mail takes the default route, or goes directly to the
 * recipient's MX when no route is the default. Every change is one
 * transaction recorded in the change log, so relays apply it live. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "ctrl.h"
#include "directory.h"
#include "mem.h"

#define EPOCH(col) "extract(epoch FROM " col ")::bigint"
#define CTRL_AUTH_USER_MAX 255

/* base, filtered by id when ids is set, then order. */
static PGresult *
load(struct ctrl_req *r, const char *base, const char *by_ids,
     const char *order, const char *ids)
{
	char sql[1024];

	if (ids == NULL) {
		snprintf(sql, sizeof(sql), "%s %s", base, order);
		return ctrl_query(r, sql, 0);
	}
	snprintf(sql, sizeof(sql), "%s WHERE %s %s", base, by_ids, order);
	return ctrl_query(r, sql, 1, ids);
}

int
ctrl_load_routes(struct ctrl_req *r, const char *ids, Mc__Route ***out_r)
{
	PGresult *res = load(
	        r,
	        "SELECT id, name, kind, host, port, tls, auth_user, secret_env,"
	        " secret_file, is_default, " EPOCH("created_at") " FROM routes",
	        "id = ANY($1::bigint[])", "ORDER BY name", ids);
	Mc__Route **out;
	int n;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	out = mc_pool_alloc(r->pool, sizeof(*out) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		Mc__Route *m = mc_pool_alloc(r->pool, sizeof(*m));

		mc__route__init(m);
		m->id = ctrl_row_u64(res, i, 0);
		m->name = ctrl_row_str(r, res, i, 1);
		m->kind = (Mc__RouteKind)ctrl_row_u64(res, i, 2);
		m->host = ctrl_row_str(r, res, i, 3);
		m->port = (uint32_t)ctrl_row_u64(res, i, 4);
		m->tls = (Mc__RouteTls)ctrl_row_u64(res, i, 5);
		m->auth_user = ctrl_row_str(r, res, i, 6);
		m->secret_env = ctrl_row_str(r, res, i, 7);
		m->secret_file = ctrl_row_str(r, res, i, 8);
		m->is_default = PQgetvalue(res, i, 9)[0] == 't';
		m->created_at = (int64_t)ctrl_row_u64(res, i, 10);
		out[i] = m;
	}
	PQclear(res);
	*out_r = out;
	return n;
}

int
ctrl_load_route_rules(struct ctrl_req *r, const char *ids,
                      Mc__RouteRule ***out_r)
{
	PGresult *res = load(
	        r,
	        "SELECT rr.id, rr.domain, rr.route_id, ro.name, " EPOCH(
	                "rr.created_at") " FROM route_rules rr JOIN routes ro "
	                                 "ON ro.id = rr.route_id",
	        "rr.id = ANY($1::bigint[])", "ORDER BY rr.domain", ids);
	Mc__RouteRule **out;
	int n;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	out = mc_pool_alloc(r->pool, sizeof(*out) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		Mc__RouteRule *m = mc_pool_alloc(r->pool, sizeof(*m));

		mc__route_rule__init(m);
		m->id = ctrl_row_u64(res, i, 0);
		m->domain = ctrl_row_str(r, res, i, 1);
		m->route_id = ctrl_row_u64(res, i, 2);
		m->route = ctrl_row_str(r, res, i, 3);
		m->created_at = (int64_t)ctrl_row_u64(res, i, 4);
		out[i] = m;
	}
	PQclear(res);
	*out_r = out;
	return n;
}

static bool
auth_user_valid(const char *user)
{
	size_t len = strlen(user);

	if (len == 0 || len > CTRL_AUTH_USER_MAX)
		return false;
	for (const char *p = user; *p != '\0'; p++)
		if (!isgraph((unsigned char)*p))
			return false;
	return true;
}

/* The route request as the rules in directory.h and the TLS policy
 * allow: AUTH only over TLS, a secret reference exactly when AUTH is
 * used, nothing but the name for direct MX. Returns 0 or -1 (INVALID). */
static int
route_check(struct ctrl_req *r, const Mc__RouteAddReq *q)
{
	bool env = q->secret_env[0] != '\0', file = q->secret_file[0] != '\0';

	if (!mc_directory_route_name_valid(q->name))
		return ctrl_fail(
		        r, MC__STATUS__STATUS_INVALID,
		        "route name must be 1-%d characters of a-z 0-9 . - _ "
		        "starting with a letter or digit",
		        MC_DIR_ROUTE_NAME_MAX);
	if (q->kind == MC__ROUTE_KIND__ROUTE_KIND_MX) {
		if (q->host[0] != '\0' || q->port != 0 ||
		    q->auth_user[0] != '\0' || env || file ||
		    q->tls != MC__ROUTE_TLS__ROUTE_TLS_NONE)
			return ctrl_fail(
			        r, MC__STATUS__STATUS_INVALID,
			        "a direct MX route takes no host, port, TLS "
			        "mode or AUTH");
		return 0;
	}
	if (q->kind != MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST)
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "unknown route kind");
	if (!mc_directory_route_host_valid(q->host) || q->port == 0 ||
	    q->port > 65535)
		return ctrl_fail(
		        r, MC__STATUS__STATUS_INVALID,
		        "smarthost needs a host name or IP address and a "
		        "port 1-65535");
	if (q->tls != MC__ROUTE_TLS__ROUTE_TLS_NONE &&
	    q->tls != MC__ROUTE_TLS__ROUTE_TLS_STARTTLS &&
	    q->tls != MC__ROUTE_TLS__ROUTE_TLS_IMPLICIT)
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "unknown TLS mode");
	if (q->auth_user[0] == '\0')
		return env || file ? ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                               "a secret reference needs an "
		                               "AUTH user")
		                   : 0;
	if (!auth_user_valid(q->auth_user))
		return ctrl_fail(
		        r, MC__STATUS__STATUS_INVALID,
		        "AUTH user must be 1-%d printable characters without "
		        "spaces",
		        CTRL_AUTH_USER_MAX);
	if (q->tls == MC__ROUTE_TLS__ROUTE_TLS_NONE)
		return ctrl_fail(
		        r, MC__STATUS__STATUS_INVALID,
		        "AUTH needs TLS (starttls or implicit): a password "
		        "must not cross the network in clear");
	if (env == file)
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "AUTH needs exactly one secret reference: an "
		                 "environment variable or a file on the relay");
	if (env && !mc_directory_env_name_valid(q->secret_env))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "secret environment variable must match "
		                 "[A-Za-z_][A-Za-z0-9_]* (at most %d)",
		                 MC_DIR_ENV_NAME_MAX);
	if (file && !mc_directory_secret_path_valid(q->secret_file))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "secret file must be an absolute path without "
		                 "spaces, '.' or '..' components (at most %d)",
		                 MC_DIR_SECRET_PATH_MAX);
	return 0;
}

/* Load route id (just written) into the reply. */
static int
reply_route(struct ctrl_req *r, uint64_t id)
{
	Mc__Route **routes;

	if (ctrl_load_routes(r, ctrl_id_array(r, id), &routes) != 1)
		return -1;
	r->resp->body_case = MC__RESPONSE__BODY_ROUTE;
	r->resp->route = routes[0];
	return 0;
}

int
ctrl_route_add(struct ctrl_req *r)
{
	Mc__RouteAddReq q = *r->req->route_add;
	char kind[4], tls[4], port[8];
	PGresult *res;
	uint64_t id;

	q.name = mc_addr_lower(mc_pool_strdup(r->pool, q.name));
	q.host = mc_addr_lower(mc_pool_strdup(r->pool, q.host));
	if (route_check(r, &q) < 0)
		return -1;
	snprintf(kind, sizeof(kind), "%d", (int)q.kind);
	snprintf(tls, sizeof(tls), "%d", (int)q.tls);
	snprintf(port, sizeof(port), "%u", q.port);
	if (ctrl_exec(r, "BEGIN", 0) < 0)
		return -1;
	res = ctrl_query(
	        r,
	        "INSERT INTO routes (name, kind, host, port, tls, auth_user,"
	        " secret_env, secret_file) VALUES ($1, $2, $3, $4, $5, $6,"
	        " $7, $8) RETURNING id",
	        8, q.name, kind, q.host, port, tls, q.auth_user, q.secret_env,
	        q.secret_file);
	if (res == NULL) {
		if (strcmp(r->sqlstate, "23505") == 0)
			return ctrl_fail(r, MC__STATUS__STATUS_EXISTS,
			                 "route %s already exists", q.name);
		return -1;
	}
	id = ctrl_row_u64(res, 0, 0);
	PQclear(res);
	if (ctrl_change(r, CTRL_KIND_ROUTE, id, MC__CHANGE__OP__UPSERT) < 0 ||
	    reply_route(r, id) < 0 || ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	return 0;
}

int
ctrl_route_list(struct ctrl_req *r)
{
	Mc__RouteList *l = mc_pool_alloc(r->pool, sizeof(*l));
	int n;

	mc__route_list__init(l);
	if ((n = ctrl_load_routes(r, NULL, &l->routes)) < 0)
		return -1;
	l->n_routes = (size_t)n;
	if ((n = ctrl_load_route_rules(r, NULL, &l->rules)) < 0)
		return -1;
	l->n_rules = (size_t)n;
	r->resp->body_case = MC__RESPONSE__BODY_ROUTES;
	r->resp->routes = l;
	return 0;
}

/* The route named name, locked for the transaction. 1 found, 0 not
 * (NOT_FOUND set), -1 database error. */
static int
route_lock(struct ctrl_req *r, const char *name, uint64_t *id_r,
           bool *is_default_r)
{
	PGresult *res =
	        ctrl_query(r,
	                   "SELECT id, is_default FROM routes WHERE name = $1"
	                   " FOR UPDATE",
	                   1, name);

	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		ctrl_fail(r, MC__STATUS__STATUS_NOT_FOUND,
		          "route %s does not exist", name);
		return 0;
	}
	*id_r = ctrl_row_u64(res, 0, 0);
	if (is_default_r != NULL)
		*is_default_r = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	return 1;
}

/* Record a change for every id in res's first column. */
static int
changes_of(struct ctrl_req *r, PGresult *res, enum ctrl_kind kind,
           Mc__Change__Op op)
{
	int n = PQntuples(res);

	for (int i = 0; i < n; i++)
		if (ctrl_change(r, kind, ctrl_row_u64(res, i, 0), op) < 0)
			return -1;
	return 0;
}

int
ctrl_route_rm(struct ctrl_req *r)
{
	const Mc__RouteRmReq *q = r->req->route_rm;
	char *name = mc_addr_lower(mc_pool_strdup(r->pool, q->name));
	const char *id_s;
	bool is_default = false;
	uint64_t id;
	PGresult *res;
	int rules, rv;

	if (ctrl_exec(r, "BEGIN", 0) < 0 ||
	    route_lock(r, name, &id, &is_default) <= 0)
		return -1;
	id_s = ctrl_u64(r, id);
	res = ctrl_query(
	        r,
	        "SELECT count(*), coalesce(string_agg(domain, ', ' ORDER BY"
	        " domain), '') FROM route_rules WHERE route_id = $1",
	        1, id_s);
	if (res == NULL)
		return -1;
	rules = (int)ctrl_row_u64(res, 0, 0);
	if ((is_default || rules > 0) && !q->force) {
		const char *domains = PQgetvalue(res, 0, 1);

		if (rules == 0)
			rv = ctrl_fail(
			        r, MC__STATUS__STATUS_CONFLICT,
			        "route %s is the default route; use --force to "
			        "remove it (mail without a rule then goes "
			        "directly to MX)",
			        name);
		else
			rv = ctrl_fail(
			        r, MC__STATUS__STATUS_CONFLICT,
			        "route %s %sis used by %d rule%s (%.200s); use "
			        "--force to remove it with them",
			        name,
			        is_default ? "is the default route and " : "",
			        rules, rules == 1 ? "" : "s", domains);
		PQclear(res);
		return rv;
	}
	PQclear(res);
	res = ctrl_query(
	        r, "DELETE FROM route_rules WHERE route_id = $1 RETURNING id",
	        1, id_s);
	if (res == NULL)
		return -1;
	rv = changes_of(r, res, CTRL_KIND_ROUTE_RULE, MC__CHANGE__OP__DELETE);
	PQclear(res);
	if (rv < 0 ||
	    ctrl_exec(r, "DELETE FROM routes WHERE id = $1", 1, id_s) < 0 ||
	    ctrl_change(r, CTRL_KIND_ROUTE, id, MC__CHANGE__OP__DELETE) < 0 ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	return 0;
}

int
ctrl_route_default(struct ctrl_req *r)
{
	char *name = mc_addr_lower(
	        mc_pool_strdup(r->pool, r->req->route_default->name));
	bool is_default = false;
	PGresult *res;
	uint64_t id;
	int rv;

	if (ctrl_exec(r, "BEGIN", 0) < 0 ||
	    route_lock(r, name, &id, &is_default) <= 0)
		return -1;
	if (is_default) /* nothing changes: no new version */
		return reply_route(r, id) < 0 || ctrl_exec(r, "COMMIT", 0) < 0
		               ? -1
		               : 0;
	/* Clear the old default first: the unique index allows one. */
	res = ctrl_query(r,
	                 "UPDATE routes SET is_default = false WHERE is_default"
	                 " RETURNING id",
	                 0);
	if (res == NULL)
		return -1;
	rv = changes_of(r, res, CTRL_KIND_ROUTE, MC__CHANGE__OP__UPSERT);
	PQclear(res);
	if (rv < 0 ||
	    ctrl_exec(r, "UPDATE routes SET is_default = true WHERE id = $1", 1,
	              ctrl_u64(r, id)) < 0 ||
	    ctrl_change(r, CTRL_KIND_ROUTE, id, MC__CHANGE__OP__UPSERT) < 0 ||
	    reply_route(r, id) < 0 || ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	return 0;
}

int
ctrl_route_rule_add(struct ctrl_req *r)
{
	const Mc__RouteRuleAddReq *q = r->req->route_rule_add;
	char *domain = mc_addr_lower(mc_pool_strdup(r->pool, q->domain));
	char *name = mc_addr_lower(mc_pool_strdup(r->pool, q->route));
	Mc__RouteRule **rules;
	PGresult *res;
	uint64_t route_id, id;

	if (!mc_addr_domain_valid(domain))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "invalid domain '%s'", q->domain);
	if (ctrl_exec(r, "BEGIN", 0) < 0 ||
	    route_lock(r, name, &route_id, NULL) <= 0)
		return -1;
	/* One rule per domain: adding replaces the route in place, so mail
	 * for the domain never falls back to the default in between. */
	res = ctrl_query(
	        r,
	        "INSERT INTO route_rules (domain, route_id) VALUES ($1, $2)"
	        " ON CONFLICT (domain) DO UPDATE SET route_id ="
	        " EXCLUDED.route_id RETURNING id",
	        2, domain, ctrl_u64(r, route_id));
	if (res == NULL)
		return -1;
	id = ctrl_row_u64(res, 0, 0);
	PQclear(res);
	if (ctrl_change(r, CTRL_KIND_ROUTE_RULE, id, MC__CHANGE__OP__UPSERT) <
	            0 ||
	    ctrl_load_route_rules(r, ctrl_id_array(r, id), &rules) != 1 ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	r->resp->body_case = MC__RESPONSE__BODY_ROUTE_RULE;
	r->resp->route_rule = rules[0];
	return 0;
}

int
ctrl_route_rule_rm(struct ctrl_req *r)
{
	char *domain = mc_addr_lower(
	        mc_pool_strdup(r->pool, r->req->route_rule_rm->domain));
	PGresult *res;
	uint64_t id;

	if (ctrl_exec(r, "BEGIN", 0) < 0)
		return -1;
	res = ctrl_query(
	        r, "DELETE FROM route_rules WHERE domain = $1 RETURNING id", 1,
	        domain);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctrl_fail(r, MC__STATUS__STATUS_NOT_FOUND,
		                 "no route rule for %s", domain);
	}
	id = ctrl_row_u64(res, 0, 0);
	PQclear(res);
	if (ctrl_change(r, CTRL_KIND_ROUTE_RULE, id, MC__CHANGE__OP__DELETE) <
	            0 ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	return 0;
}
