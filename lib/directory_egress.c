/* The directory's outbound objects (see directory.h): routes, the rules
 * that pick a route per recipient domain, and DKIM keys, with the field
 * rules shared by the controller and mailctl. Like the other objects they
 * are keyed by immutable id with a name index beside (route name, rule
 * domain, "selector._domainkey.domain"); an UPSERT whose name another id
 * holds replaces that object. DKIM keys are also grouped per domain so a
 * relay finds the keys for a message without scanning. Private keys are
 * wiped when their object goes.
 *
 * Only the loop thread touches a directory. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "directory_private.h"
#include "mem.h"

struct dir_route {
	struct mc_dir_route view; /* view.id first: see sorted_values */
	char *name, *host, *auth_user, *secret_env, *secret_file;
	bool is_default;
	int64_t created_at;
};

struct dir_rule {
	uint64_t id;  /* first */
	char *domain; /* lower-case; key of rules_by_domain */
	uint64_t route_id;
	char *route_name; /* as published, for export only */
	int64_t created_at;
};

struct dir_dkim {
	struct mc_dir_dkim_key view; /* view.id first */
	uint64_t domain_id;
	char *domain, *selector, *private_pem, *public_b64;
	char *name; /* selector._domainkey.domain, key of dkim_by_name */
	uint32_t bits;
	int64_t created_at;
};

/* The keys of one domain, for mc_directory_dkim_keys. */
struct dkim_set {
	char *domain; /* key of dkim_by_domain */
	struct dir_dkim **keys;
	size_t n, cap;
};

_Static_assert(offsetof(struct dir_route, view.id) == 0, "id first");
_Static_assert(offsetof(struct dir_rule, id) == 0, "id first");
_Static_assert(offsetof(struct dir_dkim, view.id) == 0, "id first");

/* ---- field rules ---- */

bool
mc_directory_route_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > MC_DIR_ROUTE_NAME_MAX ||
	    !(islower((unsigned char)name[0]) ||
	      isdigit((unsigned char)name[0])))
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!islower((unsigned char)*p) &&
		    !isdigit((unsigned char)*p) && *p != '-' && *p != '_' &&
		    *p != '.')
			return false;
	return true;
}

/* Dot-separated labels of letters, digits and '-' (not at either end),
 * each 1..63, the whole at most max. */
static bool
labels_valid(const char *s, size_t max)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && !(c == '-' && label > 0))
			return false;
		label++;
	}
	return true;
}

bool
mc_directory_route_host_valid(const char *host)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1)
		return true;
	return labels_valid(host, MC_DOMAIN_MAX);
}

bool
mc_directory_env_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > MC_DIR_ENV_NAME_MAX ||
	    isdigit((unsigned char)name[0]))
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

bool
mc_directory_secret_path_valid(const char *path)
{
	size_t len = strlen(path);

	if (len < 2 || len > MC_DIR_SECRET_PATH_MAX || path[0] != '/' ||
	    path[len - 1] == '/')
		return false;
	for (const char *p = path; *p != '\0'; p++)
		if (!isgraph((unsigned char)*p))
			return false;
	/* Every component non-empty and neither "." nor "..": the path
	 * names the file the operator meant, not one next to it. */
	for (const char *p = path; *p != '\0';) {
		const char *c = p + 1, *end = strchr(c, '/');
		size_t n = end != NULL ? (size_t)(end - c) : strlen(c);

		if (n == 0 || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		p = c + n;
	}
	return true;
}

bool
mc_directory_dkim_selector_valid(const char *selector)
{
	return labels_valid(selector, MC_DIR_SELECTOR_MAX);
}

/* ---- lifetime ---- */

static void
route_free(struct dir_route *r)
{
	free(r->name);
	free(r->host);
	free(r->auth_user);
	free(r->secret_env);
	free(r->secret_file);
	free(r);
}

static void
rule_free(struct dir_rule *r)
{
	free(r->domain);
	free(r->route_name);
	free(r);
}

static void
dkim_free(struct dir_dkim *k)
{
	free(k->domain);
	free(k->selector);
	mc_wipe(k->private_pem, strlen(k->private_pem));
	free(k->private_pem);
	free(k->public_b64);
	free(k->name);
	free(k);
}

static void
set_free(struct dkim_set *set)
{
	free(set->domain);
	free(set->keys);
	free(set);
}

void
mc_directory_egress_init(struct mc_directory *dir)
{
	dir->routes_by_id = mc_hash_new(MC_HASH_U64);
	dir->routes_by_name = mc_hash_new(MC_HASH_STR);
	dir->rules_by_id = mc_hash_new(MC_HASH_U64);
	dir->rules_by_domain = mc_hash_new(MC_HASH_STR);
	dir->dkim_by_id = mc_hash_new(MC_HASH_U64);
	dir->dkim_by_name = mc_hash_new(MC_HASH_STR);
	dir->dkim_by_domain = mc_hash_new(MC_HASH_STR);
}

void
mc_directory_egress_clear(struct mc_directory *dir)
{
	size_t pos = 0;
	void *v;

	while (mc_hash_next(dir->routes_by_id, &pos, &v))
		route_free(v);
	pos = 0;
	while (mc_hash_next(dir->rules_by_id, &pos, &v))
		rule_free(v);
	pos = 0;
	while (mc_hash_next(dir->dkim_by_id, &pos, &v))
		dkim_free(v);
	pos = 0;
	while (mc_hash_next(dir->dkim_by_domain, &pos, &v))
		set_free(v);
	mc_hash_clear(dir->routes_by_id);
	mc_hash_clear(dir->routes_by_name);
	mc_hash_clear(dir->rules_by_id);
	mc_hash_clear(dir->rules_by_domain);
	mc_hash_clear(dir->dkim_by_id);
	mc_hash_clear(dir->dkim_by_name);
	mc_hash_clear(dir->dkim_by_domain);
}

void
mc_directory_egress_fini(struct mc_directory *dir)
{
	mc_directory_egress_clear(dir);
	mc_hash_free(&dir->routes_by_id);
	mc_hash_free(&dir->routes_by_name);
	mc_hash_free(&dir->rules_by_id);
	mc_hash_free(&dir->rules_by_domain);
	mc_hash_free(&dir->dkim_by_id);
	mc_hash_free(&dir->dkim_by_name);
	mc_hash_free(&dir->dkim_by_domain);
}

size_t
mc_directory_route_count(const struct mc_directory *dir)
{
	return mc_hash_count(dir->routes_by_id);
}

size_t
mc_directory_route_rule_count(const struct mc_directory *dir)
{
	return mc_hash_count(dir->rules_by_id);
}

size_t
mc_directory_dkim_key_count(const struct mc_directory *dir)
{
	return mc_hash_count(dir->dkim_by_id);
}

/* ---- removal (both indexes, or neither) ---- */

static void
route_remove(struct mc_directory *dir, struct dir_route *r)
{
	if (mc_hash_get(dir->routes_by_id, &r->view.id) == r)
		mc_hash_remove(dir->routes_by_id, &r->view.id);
	if (mc_hash_get(dir->routes_by_name, r->name) == r)
		mc_hash_remove(dir->routes_by_name, r->name);
	route_free(r);
}

static void
rule_remove(struct mc_directory *dir, struct dir_rule *r)
{
	if (mc_hash_get(dir->rules_by_id, &r->id) == r)
		mc_hash_remove(dir->rules_by_id, &r->id);
	if (mc_hash_get(dir->rules_by_domain, r->domain) == r)
		mc_hash_remove(dir->rules_by_domain, r->domain);
	rule_free(r);
}

static void
dkim_remove(struct mc_directory *dir, struct dir_dkim *k)
{
	struct dkim_set *set = mc_hash_get(dir->dkim_by_domain, k->domain);

	if (mc_hash_get(dir->dkim_by_id, &k->view.id) == k)
		mc_hash_remove(dir->dkim_by_id, &k->view.id);
	if (mc_hash_get(dir->dkim_by_name, k->name) == k)
		mc_hash_remove(dir->dkim_by_name, k->name);
	for (size_t i = 0; set != NULL && i < set->n; i++) {
		if (set->keys[i] != k)
			continue;
		set->keys[i] = set->keys[--set->n];
		if (set->n == 0) {
			mc_hash_remove(dir->dkim_by_domain, set->domain);
			set_free(set);
		}
		break;
	}
	dkim_free(k);
}

void
mc_directory_egress_domain_gone(struct mc_directory *dir, uint64_t domain_id)
{
	size_t pos = 0, n = 0;
	void **doomed =
	        mc_calloc(mc_hash_count(dir->dkim_by_id) + 1, sizeof(*doomed));
	void *v;

	while (mc_hash_next(dir->dkim_by_id, &pos, &v))
		if (((struct dir_dkim *)v)->domain_id == domain_id)
			doomed[n++] = v;
	for (size_t i = 0; i < n; i++)
		dkim_remove(dir, doomed[i]);
	free(doomed);
}

/* ---- upserts ---- */

static void
route_upsert(struct mc_directory *dir, const Mc__Route *m)
{
	struct dir_route *r = mc_malloc(sizeof(*r)), *old;

	r->name = mc_addr_lower(mc_strdup(mc_directory_str(m->name)));
	r->host = mc_strdup(mc_directory_str(m->host));
	r->auth_user = mc_strdup(mc_directory_str(m->auth_user));
	r->secret_env = mc_strdup(mc_directory_str(m->secret_env));
	r->secret_file = mc_strdup(mc_directory_str(m->secret_file));
	r->is_default = m->is_default;
	r->created_at = m->created_at;
	r->view.id = m->id;
	r->view.name = r->name;
	/* A kind or mode from a newer controller: the safest reading. */
	r->view.kind = m->kind == MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST
	                       ? MC_DIR_ROUTE_SMARTHOST
	                       : MC_DIR_ROUTE_MX;
	r->view.host = r->host;
	r->view.port = m->port <= 65535 ? (uint16_t)m->port : 0;
	r->view.tls = m->tls == MC__ROUTE_TLS__ROUTE_TLS_NONE
	                      ? MC_DIR_ROUTE_TLS_NONE
	              : m->tls == MC__ROUTE_TLS__ROUTE_TLS_IMPLICIT
	                      ? MC_DIR_ROUTE_TLS_IMPLICIT
	                      : MC_DIR_ROUTE_TLS_STARTTLS;
	r->view.auth_user = r->auth_user;
	r->view.secret_env = r->secret_env;
	r->view.secret_file = r->secret_file;
	if ((old = mc_hash_get(dir->routes_by_id, &r->view.id)) != NULL)
		route_remove(dir, old);
	if ((old = mc_hash_get(dir->routes_by_name, r->name)) != NULL)
		route_remove(dir, old);
	mc_hash_put(dir->routes_by_id, &r->view.id, r);
	mc_hash_put(dir->routes_by_name, r->name, r);
}

static void
rule_upsert(struct mc_directory *dir, const Mc__RouteRule *m)
{
	struct dir_rule *r = mc_malloc(sizeof(*r)), *old;

	r->id = m->id;
	r->domain = mc_addr_lower(mc_strdup(mc_directory_str(m->domain)));
	r->route_id = m->route_id;
	r->route_name = mc_strdup(mc_directory_str(m->route));
	r->created_at = m->created_at;
	if ((old = mc_hash_get(dir->rules_by_id, &r->id)) != NULL)
		rule_remove(dir, old);
	if ((old = mc_hash_get(dir->rules_by_domain, r->domain)) != NULL)
		rule_remove(dir, old);
	mc_hash_put(dir->rules_by_id, &r->id, r);
	mc_hash_put(dir->rules_by_domain, r->domain, r);
}

static void
dkim_upsert(struct mc_directory *dir, const Mc__DkimKey *m)
{
	struct dir_dkim *k = mc_malloc(sizeof(*k)), *old;
	struct dkim_set *set;

	k->domain_id = m->domain_id;
	k->domain = mc_addr_lower(mc_strdup(
	        mc_directory_domain_name(dir, m->domain, m->domain_id)));
	k->selector = mc_addr_lower(mc_strdup(mc_directory_str(m->selector)));
	k->private_pem = mc_strdup(mc_directory_str(m->private_pem));
	k->public_b64 = mc_strdup(mc_directory_str(m->public_b64));
	k->name = mc_asprintf("%s._domainkey.%s", k->selector, k->domain);
	k->bits = m->bits;
	k->created_at = m->created_at;
	k->view.id = m->id;
	k->view.domain = k->domain;
	k->view.selector = k->selector;
	k->view.alg = m->alg == MC__DKIM_ALG__DKIM_ALG_ED25519
	                      ? MC_DIR_DKIM_ED25519
	                      : MC_DIR_DKIM_RSA;
	k->view.private_pem = k->private_pem;
	k->view.public_b64 = k->public_b64;
	/* A key of an algorithm this build does not know never signs. */
	k->view.active =
	        m->active && (m->alg == MC__DKIM_ALG__DKIM_ALG_RSA ||
	                      m->alg == MC__DKIM_ALG__DKIM_ALG_ED25519);
	if ((old = mc_hash_get(dir->dkim_by_id, &k->view.id)) != NULL)
		dkim_remove(dir, old);
	if ((old = mc_hash_get(dir->dkim_by_name, k->name)) != NULL)
		dkim_remove(dir, old);
	mc_hash_put(dir->dkim_by_id, &k->view.id, k);
	mc_hash_put(dir->dkim_by_name, k->name, k);
	if ((set = mc_hash_get(dir->dkim_by_domain, k->domain)) == NULL) {
		set = mc_malloc(sizeof(*set));
		set->domain = mc_strdup(k->domain);
		mc_hash_put(dir->dkim_by_domain, set->domain, set);
	}
	if (set->n == set->cap) {
		set->cap = set->cap != 0 ? set->cap * 2 : 4;
		set->keys =
		        mc_realloc(set->keys, set->cap * sizeof(*set->keys));
	}
	set->keys[set->n++] = k;
}

void
mc_directory_egress_load(struct mc_directory *dir, const Mc__Snapshot *snap)
{
	for (size_t i = 0; i < snap->n_routes; i++)
		if (snap->routes[i] != NULL)
			route_upsert(dir, snap->routes[i]);
	for (size_t i = 0; i < snap->n_route_rules; i++)
		if (snap->route_rules[i] != NULL)
			rule_upsert(dir, snap->route_rules[i]);
	for (size_t i = 0; i < snap->n_dkim_keys; i++)
		if (snap->dkim_keys[i] != NULL)
			dkim_upsert(dir, snap->dkim_keys[i]);
}

bool
mc_directory_egress_delete(struct mc_directory *dir, const Mc__Change *c)
{
	void *obj;

	if (c->object_case == MC__CHANGE__OBJECT_ROUTE && c->route != NULL) {
		if ((obj = mc_hash_get(dir->routes_by_id, &c->route->id)) !=
		    NULL)
			route_remove(dir, obj);
	} else if (c->object_case == MC__CHANGE__OBJECT_ROUTE_RULE &&
	           c->route_rule != NULL) {
		if ((obj = mc_hash_get(dir->rules_by_id, &c->route_rule->id)) !=
		    NULL)
			rule_remove(dir, obj);
	} else if (c->object_case == MC__CHANGE__OBJECT_DKIM_KEY &&
	           c->dkim_key != NULL) {
		if ((obj = mc_hash_get(dir->dkim_by_id, &c->dkim_key->id)) !=
		    NULL)
			dkim_remove(dir, obj);
	} else {
		return false;
	}
	return true;
}

void
mc_directory_egress_upsert(struct mc_directory *dir, const Mc__Change *c,
                           int pass)
{
	if (pass == 4 && c->object_case == MC__CHANGE__OBJECT_ROUTE &&
	    c->route != NULL)
		route_upsert(dir, c->route);
	else if (pass == 5 && c->object_case == MC__CHANGE__OBJECT_ROUTE_RULE &&
	         c->route_rule != NULL)
		rule_upsert(dir, c->route_rule);
	else if (pass == 6 && c->object_case == MC__CHANGE__OBJECT_DKIM_KEY &&
	         c->dkim_key != NULL)
		dkim_upsert(dir, c->dkim_key);
}

/* ---- lookups ---- */

/* Lower-cased copy of s without one trailing dot; false when too long. */
static bool
domain_key(const char *s, char buf[MC_DOMAIN_MAX + 2])
{
	size_t n;

	if (s == NULL ||
	    (n = strnlen(s, MC_DOMAIN_MAX + 2)) > MC_DOMAIN_MAX + 1)
		return false;
	memcpy(buf, s, n + 1);
	if (n > 0 && buf[n - 1] == '.')
		buf[n - 1] = '\0';
	mc_addr_lower(buf);
	return true;
}

const struct mc_dir_route *
mc_directory_route(const struct mc_directory *dir, const char *name)
{
	char key[MC_DIR_ROUTE_NAME_MAX + 1];
	const struct dir_route *r;
	size_t n;

	if (name == NULL || (n = strnlen(name, sizeof(key))) >= sizeof(key))
		return NULL;
	memcpy(key, name, n + 1);
	r = mc_hash_get(dir->routes_by_name, mc_addr_lower(key));
	return r != NULL ? &r->view : NULL;
}

const struct mc_dir_route *
mc_directory_route_for(const struct mc_directory *dir, const char *domain)
{
	char key[MC_DOMAIN_MAX + 2];
	const struct dir_rule *rule;
	const struct dir_route *r;
	size_t pos = 0;
	void *v;

	if (domain_key(domain, key) &&
	    (rule = mc_hash_get(dir->rules_by_domain, key)) != NULL &&
	    (r = mc_hash_get(dir->routes_by_id, &rule->route_id)) != NULL)
		return &r->view;
	/* Routes are few: the default is found by looking. */
	while (mc_hash_next(dir->routes_by_id, &pos, &v))
		if (((const struct dir_route *)v)->is_default)
			return &((const struct dir_route *)v)->view;
	return NULL;
}

size_t
mc_directory_dkim_keys(const struct mc_directory *dir, const char *domain,
                       const struct mc_dir_dkim_key **keys_r, size_t max)
{
	static const enum mc_dir_dkim_alg order[] = {MC_DIR_DKIM_RSA,
	                                             MC_DIR_DKIM_ED25519};
	char key[MC_DOMAIN_MAX + 2];
	const struct dkim_set *set;
	size_t count = 0;

	if (!domain_key(domain, key) ||
	    (set = mc_hash_get(dir->dkim_by_domain, key)) == NULL)
		return 0;
	for (size_t a = 0; a < sizeof(order) / sizeof(order[0]) && count < max;
	     a++) {
		const struct dir_dkim *best = NULL;

		for (size_t i = 0; i < set->n; i++) {
			const struct dir_dkim *k = set->keys[i];

			if (k->view.active && k->view.alg == order[a] &&
			    (best == NULL || k->view.id > best->view.id))
				best = k;
		}
		if (best != NULL)
			keys_r[count++] = &best->view;
	}
	return count;
}

/* ---- export ---- */

void
mc_directory_egress_export(const struct mc_directory *dir, Mc__Snapshot *snap)
{
	void **v;
	size_t i;

	v = mc_directory_sorted_values(dir->routes_by_id, &snap->n_routes);
	snap->routes = mc_calloc(snap->n_routes + 1, sizeof(*snap->routes));
	for (i = 0; i < snap->n_routes; i++) {
		const struct dir_route *r = v[i];
		Mc__Route *m = mc_malloc(sizeof(*m));

		mc__route__init(m);
		m->id = r->view.id;
		m->name = mc_strdup(r->name);
		m->kind = r->view.kind == MC_DIR_ROUTE_SMARTHOST
		                  ? MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST
		                  : MC__ROUTE_KIND__ROUTE_KIND_MX;
		m->host = mc_strdup(r->host);
		m->port = r->view.port;
		m->tls = (Mc__RouteTls)r->view.tls;
		m->auth_user = mc_strdup(r->auth_user);
		m->secret_env = mc_strdup(r->secret_env);
		m->secret_file = mc_strdup(r->secret_file);
		m->is_default = r->is_default;
		m->created_at = r->created_at;
		snap->routes[i] = m;
	}
	free(v);
	v = mc_directory_sorted_values(dir->rules_by_id, &snap->n_route_rules);
	snap->route_rules =
	        mc_calloc(snap->n_route_rules + 1, sizeof(*snap->route_rules));
	for (i = 0; i < snap->n_route_rules; i++) {
		const struct dir_rule *r = v[i];
		Mc__RouteRule *m = mc_malloc(sizeof(*m));

		mc__route_rule__init(m);
		m->id = r->id;
		m->domain = mc_strdup(r->domain);
		m->route_id = r->route_id;
		m->route = mc_strdup(r->route_name);
		m->created_at = r->created_at;
		snap->route_rules[i] = m;
	}
	free(v);
	v = mc_directory_sorted_values(dir->dkim_by_id, &snap->n_dkim_keys);
	snap->dkim_keys =
	        mc_calloc(snap->n_dkim_keys + 1, sizeof(*snap->dkim_keys));
	for (i = 0; i < snap->n_dkim_keys; i++) {
		const struct dir_dkim *k = v[i];
		Mc__DkimKey *m = mc_malloc(sizeof(*m));

		mc__dkim_key__init(m);
		m->id = k->view.id;
		m->domain_id = k->domain_id;
		m->domain = mc_strdup(k->domain);
		m->selector = mc_strdup(k->selector);
		m->alg = (Mc__DkimAlg)k->view.alg;
		m->private_pem = mc_strdup(k->private_pem);
		m->public_b64 = mc_strdup(k->public_b64);
		m->active = k->view.active;
		m->bits = k->bits;
		m->created_at = k->created_at;
		snap->dkim_keys[i] = m;
	}
	free(v);
}

void
mc_directory_egress_snapshot_free(Mc__Snapshot *snap)
{
	for (size_t i = 0; i < snap->n_routes; i++) {
		Mc__Route *m = snap->routes[i];

		if (m == NULL)
			continue;
		mc_directory_free_str(m->name);
		mc_directory_free_str(m->host);
		mc_directory_free_str(m->auth_user);
		mc_directory_free_str(m->secret_env);
		mc_directory_free_str(m->secret_file);
		free(m);
	}
	for (size_t i = 0; i < snap->n_route_rules; i++) {
		Mc__RouteRule *m = snap->route_rules[i];

		if (m == NULL)
			continue;
		mc_directory_free_str(m->domain);
		mc_directory_free_str(m->route);
		free(m);
	}
	for (size_t i = 0; i < snap->n_dkim_keys; i++) {
		Mc__DkimKey *m = snap->dkim_keys[i];

		if (m == NULL)
			continue;
		mc_directory_free_str(m->domain);
		mc_directory_free_str(m->selector);
		mc_directory_free_secret(m->private_pem);
		mc_directory_free_str(m->public_b64);
		free(m);
	}
	free(snap->routes);
	free(snap->route_rules);
	free(snap->dkim_keys);
	snap->routes = NULL;
	snap->route_rules = NULL;
	snap->dkim_keys = NULL;
	snap->n_routes = snap->n_route_rules = snap->n_dkim_keys = 0;
}
