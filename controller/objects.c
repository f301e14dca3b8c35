/* Reading domains, accounts and aliases out of Postgres into protobuf
 * messages allocated from the request pool. One loader per kind serves the
 * list commands, the snapshot and the delta builder, so every path
 * publishes objects in exactly the same shape. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "ctrl.h"
#include "mem.h"

#define EPOCH(col) "extract(epoch FROM " col ")::bigint"

/* Run base + the WHERE clause for the filter + order. BY_ADDRESS splits
 * the address into its lower-cased local part and domain. */
static PGresult *
load(struct ctrl_req *r, const char *base, const char *by_ids,
     const char *by_domain, const char *by_address, const char *order,
     enum ctrl_filter f, const char *arg)
{
	char sql[1024];
	char local[MC_LOCAL_MAX + 2], domain[MC_DOMAIN_MAX + 1];
	const char *err;

	switch (f) {
	case CTRL_ALL:
		snprintf(sql, sizeof(sql), "%s %s", base, order);
		return ctrl_query(r, sql, 0);
	case CTRL_BY_IDS:
		snprintf(sql, sizeof(sql), "%s WHERE %s %s", base, by_ids, order);
		return ctrl_query(r, sql, 1, arg);
	case CTRL_BY_DOMAIN:
		snprintf(sql, sizeof(sql), "%s WHERE %s %s", base, by_domain, order);
		return ctrl_query(r, sql, 1, arg);
	case CTRL_BY_ADDRESS:
		if (mc_addr_parse(arg, true, local, domain, &err) < 0) {
			ctrl_fail(r, MC__STATUS__STATUS_INVALID, "%s", err);
			return NULL;
		}
		mc_addr_lower(local);
		snprintf(sql, sizeof(sql), "%s WHERE %s %s", base, by_address, order);
		return ctrl_query(r, sql, 2, domain, local);
	}
	abort();
}

int
ctrl_load_domains(struct ctrl_req *r, enum ctrl_filter f, const char *arg,
                  Mc__Domain ***out_r)
{
	PGresult *res = load(r,
	        "SELECT id, name, " EPOCH("created_at") " FROM domains",
	        "id = ANY($1::bigint[])", "name = $1", "name = $1", "ORDER BY name",
	        f, arg);
	int n;
	Mc__Domain **out;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	out = mc_pool_alloc(r->pool, sizeof(*out) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		Mc__Domain *d = mc_pool_alloc(r->pool, sizeof(*d));

		mc__domain__init(d);
		d->id = ctrl_row_u64(res, i, 0);
		d->name = ctrl_row_str(r, res, i, 1);
		d->created_at = (int64_t)ctrl_row_u64(res, i, 2);
		out[i] = d;
	}
	PQclear(res);
	*out_r = out;
	return n;
}

int
ctrl_load_accounts(struct ctrl_req *r, enum ctrl_filter f, const char *arg,
                   bool with_hash, Mc__Account ***out_r)
{
	PGresult *res = load(r,
	        "SELECT a.id, a.domain_id, a.local_part, d.name, a.password_hash,"
	        " a.shard, a.quota_bytes, " EPOCH("a.created_at") ", a.scram_sha256"
	        " FROM accounts a JOIN domains d ON d.id = a.domain_id",
	        "a.id = ANY($1::bigint[])", "d.name = $1",
	        "d.name = $1 AND a.local_key = $2", "ORDER BY d.name, a.local_key",
	        f, arg);
	int n;
	Mc__Account **out;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	out = mc_pool_alloc(r->pool, sizeof(*out) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		Mc__Account *a = mc_pool_alloc(r->pool, sizeof(*a));

		mc__account__init(a);
		a->id = ctrl_row_u64(res, i, 0);
		a->domain_id = ctrl_row_u64(res, i, 1);
		a->local_part = ctrl_row_str(r, res, i, 2);
		a->domain = ctrl_row_str(r, res, i, 3);
		/* Secrets (the hash and the SCRAM verifier) go to mailbox
		 * nodes only: never in lists, never to relays. */
		if (with_hash) {
			a->password_hash = ctrl_row_str(r, res, i, 4);
			a->scram_sha256 = ctrl_row_str(r, res, i, 8);
		}
		a->shard = (uint32_t)ctrl_row_u64(res, i, 5);
		a->quota_bytes = ctrl_row_u64(res, i, 6);
		a->created_at = (int64_t)ctrl_row_u64(res, i, 7);
		out[i] = a;
	}
	PQclear(res);
	*out_r = out;
	return n;
}

/* Destinations come back space-separated: validated addresses never
 * contain a space. */
static void
split_destinations(struct ctrl_req *r, Mc__Alias *al, const char *text)
{
	size_t count = 1;
	char *copy = mc_pool_strdup(r->pool, text);
	char *save = NULL;

	for (const char *p = text; *p != '\0'; p++)
		if (*p == ' ')
			count++;
	al->destinations = mc_pool_alloc(r->pool, sizeof(char *) * count);
	for (char *t = strtok_r(copy, " ", &save); t != NULL;
	     t = strtok_r(NULL, " ", &save))
		al->destinations[al->n_destinations++] = t;
}

int
ctrl_load_aliases(struct ctrl_req *r, enum ctrl_filter f, const char *arg,
                  Mc__Alias ***out_r)
{
	PGresult *res = load(r,
	        "SELECT al.id, al.domain_id, al.local_part, d.name,"
	        " array_to_string(al.destinations, ' '), " EPOCH("al.created_at")
	        " FROM aliases al JOIN domains d ON d.id = al.domain_id",
	        "al.id = ANY($1::bigint[])", "d.name = $1",
	        "d.name = $1 AND al.local_key = $2", "ORDER BY d.name, al.local_key",
	        f, arg);
	int n;
	Mc__Alias **out;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	out = mc_pool_alloc(r->pool, sizeof(*out) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		Mc__Alias *al = mc_pool_alloc(r->pool, sizeof(*al));

		mc__alias__init(al);
		al->id = ctrl_row_u64(res, i, 0);
		al->domain_id = ctrl_row_u64(res, i, 1);
		al->local_part = ctrl_row_str(r, res, i, 2);
		al->domain = ctrl_row_str(r, res, i, 3);
		split_destinations(r, al, PQgetvalue(res, i, 4));
		al->created_at = (int64_t)ctrl_row_u64(res, i, 5);
		out[i] = al;
	}
	PQclear(res);
	*out_r = out;
	return n;
}

int
ctrl_domain_lock(struct ctrl_req *r, const char *domain, uint64_t *id_r)
{
	PGresult *res = ctrl_query(r, "SELECT id FROM domains WHERE name = $1 "
	                              "FOR UPDATE", 1, domain);

	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		ctrl_fail(r, MC__STATUS__STATUS_NOT_FOUND, "domain %s does not exist",
		          domain);
		return 0;
	}
	*id_r = ctrl_row_u64(res, 0, 0);
	PQclear(res);
	return 1;
}

int
ctrl_parse_address(struct ctrl_req *r, const char *address, bool wildcard,
              char **local_r, char **key_r, char **domain_r)
{
	char local[MC_LOCAL_MAX + 2], domain[MC_DOMAIN_MAX + 1];
	const char *err;

	if (mc_addr_parse(address, wildcard, local, domain, &err) < 0)
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID, "invalid address '%s': %s",
		                 address, err);
	*local_r = mc_pool_strdup(r->pool, local);
	*key_r = mc_addr_lower(mc_pool_strdup(r->pool, local));
	*domain_r = mc_pool_strdup(r->pool, domain);
	return 0;
}

