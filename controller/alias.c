/* Admin handlers for aliases: add, list, rm. An alias maps one address of
 * a local domain (or "*@domain", the catch-all) to one or more
 * destinations, local or foreign. An address is either an account or an
 * alias, never both. */
#include <string.h>

#include "addr.h"
#include "ctrl.h"
#include "mem.h"

#define CTRL_ALIAS_MAX_DESTINATIONS 100

/* Validate destinations into one Postgres array literal
 * of normalised addresses ({a@b,c@d}: validated addresses need no quoting
 * since atext has no ',', '{', '}', '"', '\\' or space). */
static const char *
destinations_literal(struct ctrl_req *r, const Mc__AliasAddReq *q,
                     const char *self_key, const char *self_domain)
{
	size_t cap = 3;
	char *lit, *p;

	if (q->n_destinations == 0 || q->n_destinations > CTRL_ALIAS_MAX_DESTINATIONS) {
		ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		          "an alias needs 1 to %d destinations",
		          CTRL_ALIAS_MAX_DESTINATIONS);
		return NULL;
	}
	for (size_t i = 0; i < q->n_destinations; i++)
		cap += strlen(q->destinations[i]) + 1;
	p = lit = mc_pool_alloc(r->pool, cap);
	*p++ = '{';
	for (size_t i = 0; i < q->n_destinations; i++) {
		char *local, *key, *domain;

		if (ctrl_parse_address(r, q->destinations[i], false, &local, &key,
		                       &domain) < 0)
			return NULL;
		if (strcmp(key, self_key) == 0 && strcmp(domain, self_domain) == 0) {
			ctrl_fail(r, MC__STATUS__STATUS_INVALID,
			          "an alias cannot deliver to itself");
			return NULL;
		}
		if (i > 0)
			*p++ = ',';
		p += sprintf(p, "%s@%s", local, domain);
	}
	*p++ = '}';
	*p = '\0';
	return lit;
}

int
ctrl_alias_add(struct ctrl_req *r)
{
	const Mc__AliasAddReq *q = r->req->alias_add;
	char *local, *key, *domain;
	const char *dests, *domain_id_s;
	uint64_t domain_id, id;
	Mc__Alias **al;
	PGresult *res;
	int found;

	if (ctrl_parse_address(r, q->address, true, &local, &key, &domain) < 0 ||
	    (dests = destinations_literal(r, q, key, domain)) == NULL ||
	    ctrl_exec(r, "BEGIN", 0) < 0 ||
	    (found = ctrl_domain_lock(r, domain, &domain_id)) <= 0)
		return -1;
	domain_id_s = ctrl_u64(r, domain_id);
	res = ctrl_query(r, "SELECT 1 FROM accounts WHERE domain_id = $1 AND local_key = $2",
	                 2, domain_id_s, key);
	if (res == NULL)
		return -1;
	found = PQntuples(res);
	PQclear(res);
	if (found > 0)
		return ctrl_fail(r, MC__STATUS__STATUS_EXISTS,
		                 "an account %s@%s already exists", key, domain);
	res = ctrl_query(r, "INSERT INTO aliases (domain_id, local_part, local_key,"
	                    " destinations) VALUES ($1, $2, $3, $4) RETURNING id",
	                 4, domain_id_s, local, key, dests);
	if (res == NULL) {
		if (strcmp(r->sqlstate, "23505") == 0)
			return ctrl_fail(r, MC__STATUS__STATUS_EXISTS,
			                 "alias %s@%s already exists", local, domain);
		return -1;
	}
	id = ctrl_row_u64(res, 0, 0);
	PQclear(res);
	if (ctrl_change(r, CTRL_KIND_ALIAS, id, MC__CHANGE__OP__UPSERT) < 0 ||
	    ctrl_load_aliases(r, CTRL_BY_IDS,
	                      ctrl_id_array(r, id), &al) != 1 ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	r->resp->body_case = MC__RESPONSE__BODY_ALIAS;
	r->resp->alias = al[0];
	return 0;
}

int
ctrl_alias_list(struct ctrl_req *r)
{
	char *domain = mc_addr_lower(mc_pool_strdup(r->pool, r->req->alias_list->domain));
	Mc__AliasList *l = mc_pool_alloc(r->pool, sizeof(*l));
	int n;

	mc__alias_list__init(l);
	n = *domain == '\0' ? ctrl_load_aliases(r, CTRL_ALL, NULL, &l->aliases)
	                    : ctrl_load_aliases(r, CTRL_BY_DOMAIN, domain, &l->aliases);
	if (n < 0)
		return -1;
	l->n_aliases = (size_t)n;
	r->resp->body_case = MC__RESPONSE__BODY_ALIASES;
	r->resp->aliases = l;
	return 0;
}

int
ctrl_alias_rm(struct ctrl_req *r)
{
	const char *address = r->req->alias_rm->address;
	char *local, *key, *domain;
	uint64_t domain_id, id;
	PGresult *res;
	int found;

	if (ctrl_parse_address(r, address, true, &local, &key, &domain) < 0 ||
	    ctrl_exec(r, "BEGIN", 0) < 0 ||
	    (found = ctrl_domain_lock(r, domain, &domain_id)) <= 0)
		return -1;
	res = ctrl_query(r, "DELETE FROM aliases WHERE domain_id = $1 AND "
	                    "local_key = $2 RETURNING id",
	                 2, ctrl_u64(r, domain_id), key);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctrl_fail(r, MC__STATUS__STATUS_NOT_FOUND,
		                 "alias %s does not exist", address);
	}
	id = ctrl_row_u64(res, 0, 0);
	PQclear(res);
	if (ctrl_change(r, CTRL_KIND_ALIAS, id, MC__CHANGE__OP__DELETE) < 0 ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	return 0;
}
