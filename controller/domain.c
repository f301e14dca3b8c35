/* Admin handlers for domains: add, list, rm (rm --force also removes the
 * domain's accounts and aliases, each recorded in the change log so nodes
 * drop them too; its DKIM keys always go with it). `domain dns` is in
 * dns.c. */
#include <string.h>

#include "addr.h"
#include "ctrl.h"
#include "mem.h"

int
ctrl_domain_add(struct ctrl_req *r)
{
	const Mc__DomainAddReq *q = r->req->domain_add;
	char *name = mc_pool_strdup(r->pool, q->name);
	PGresult *res;
	Mc__Domain *d;

	mc_addr_lower(name);
	if (!mc_addr_domain_valid(name))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "invalid domain name '%s'", q->name);
	if (ctrl_exec(r, "BEGIN", 0) < 0)
		return -1;
	res = ctrl_query(r, "INSERT INTO domains (name) VALUES ($1) "
	                    "RETURNING id, extract(epoch FROM created_at)::bigint",
	                 1, name);
	if (res == NULL) {
		if (strcmp(r->sqlstate, "23505") == 0)
			return ctrl_fail(r, MC__STATUS__STATUS_EXISTS,
			                 "domain %s already exists", name);
		return -1;
	}
	d = mc_pool_alloc(r->pool, sizeof(*d));
	mc__domain__init(d);
	d->id = ctrl_row_u64(res, 0, 0);
	d->created_at = (int64_t)ctrl_row_u64(res, 0, 1);
	d->name = name;
	PQclear(res);
	if (ctrl_change(r, CTRL_KIND_DOMAIN, d->id, MC__CHANGE__OP__UPSERT) < 0 ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	r->resp->body_case = MC__RESPONSE__BODY_DOMAIN;
	r->resp->domain = d;
	return 0;
}

int
ctrl_domain_list(struct ctrl_req *r)
{
	Mc__DomainList *l = mc_pool_alloc(r->pool, sizeof(*l));
	int n;

	mc__domain_list__init(l);
	if ((n = ctrl_load_domains(r, CTRL_ALL, NULL, &l->domains)) < 0)
		return -1;
	l->n_domains = (size_t)n;
	r->resp->body_case = MC__RESPONSE__BODY_DOMAINS;
	r->resp->domains = l;
	return 0;
}

/* Delete every row of table in the domain, recording each deletion. */
static int
delete_members(struct ctrl_req *r, const char *sql, enum ctrl_kind kind,
               const char *domain_id)
{
	PGresult *res = ctrl_query(r, sql, 1, domain_id);
	int n;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		if (ctrl_change(r, kind, ctrl_row_u64(res, i, 0),
		                MC__CHANGE__OP__DELETE) < 0) {
			PQclear(res);
			return -1;
		}
	}
	PQclear(res);
	return 0;
}

int
ctrl_domain_rm(struct ctrl_req *r)
{
	const Mc__DomainRmReq *q = r->req->domain_rm;
	char *name = mc_pool_strdup(r->pool, q->name);
	const char *id_s;
	uint64_t id, accounts, aliases;
	PGresult *res;
	int found;

	mc_addr_lower(name);
	if (ctrl_exec(r, "BEGIN", 0) < 0)
		return -1;
	if ((found = ctrl_domain_lock(r, name, &id)) <= 0)
		return -1;
	id_s = ctrl_u64(r, id);
	res = ctrl_query(r, "SELECT (SELECT count(*) FROM accounts WHERE domain_id = $1),"
	                    " (SELECT count(*) FROM aliases WHERE domain_id = $1)",
	                 1, id_s);
	if (res == NULL)
		return -1;
	accounts = ctrl_row_u64(res, 0, 0);
	aliases = ctrl_row_u64(res, 0, 1);
	PQclear(res);
	if ((accounts > 0 || aliases > 0) && !q->force)
		return ctrl_fail(r, MC__STATUS__STATUS_CONFLICT,
		                 "domain %s still has %llu accounts and %llu aliases; "
		                 "remove them first or use --force", name,
		                 (unsigned long long)accounts,
		                 (unsigned long long)aliases);
	/* The domain's DKIM keys go with it, whatever --force says: they
	 * sign for nothing without it. */
	if (delete_members(r, "DELETE FROM dkim_keys WHERE domain_id = $1 RETURNING id",
	                   CTRL_KIND_DKIM_KEY, id_s) < 0 ||
	    delete_members(r, "DELETE FROM aliases WHERE domain_id = $1 RETURNING id",
	                   CTRL_KIND_ALIAS, id_s) < 0 ||
	    delete_members(r, "DELETE FROM accounts WHERE domain_id = $1 RETURNING id",
	                   CTRL_KIND_ACCOUNT, id_s) < 0 ||
	    ctrl_exec(r, "DELETE FROM domains WHERE id = $1", 1, id_s) < 0 ||
	    ctrl_change(r, CTRL_KIND_DOMAIN, id, MC__CHANGE__OP__DELETE) < 0 ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	return 0;
}
