/* Admin handlers for accounts: add, list, show, rm, passwd. Password
 * hashes arrive already hashed (mailctl hashes with argon2id; imported
 * sha512-crypt and bcrypt hashes are accepted), SCRAM-SHA-256 verifiers
 * already computed (by mailctl, from the same password); both are stored
 * as given and are only ever published to mailbox nodes. */
#include <ctype.h>
#include <string.h>

#include "addr.h"
#include "ctrl.h"
#include "mem.h"
#include "scram.h"

#define CTRL_HASH_MAX 512

static bool
hash_acceptable(const char *h)
{
	static const char *const schemes[] = {"$argon2id$", "$argon2i$", "$6$",
	                                      "$2b$", "$2y$", "$2a$"};
	size_t len = strlen(h);
	bool known = false;

	if (len < 16 || len > CTRL_HASH_MAX)
		return false;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(h, schemes[i], strlen(schemes[i])) == 0)
			known = true;
	for (const char *p = h; *p != '\0'; p++)
		if (!isgraph((unsigned char)*p))
			return false;
	return known;
}

/* "" (no verifier: no SCRAM logins for the account) or a well-formed
 * verifier with a sane iteration count. */
static bool
scram_acceptable(const char *v)
{
	return v[0] == '\0' || mc_scram_verifier_valid(v);
}

#define SCRAM_INVALID                                                          \
	"SCRAM-SHA-256 verifier must be SCRAM-SHA-256$<iterations "            \
	"4096-10000000>:<salt>$<StoredKey>:<ServerKey> (base64) or empty"

/* FNV-1a of the lower-cased address: stable, cheap, spreads well. */
static uint32_t
shard_of(const char *local_key, const char *domain, uint32_t shard_count)
{
	uint32_t h = 2166136261u;

	for (const char *p = local_key; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ '@') * 16777619u;
	for (const char *p = domain; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % shard_count;
}

int
ctrl_account_add(struct ctrl_req *r)
{
	const Mc__AccountAddReq *q = r->req->account_add;
	char *local, *key, *domain, shard_s[16];
	uint64_t domain_id;
	PGresult *res;
	int found;

	if (ctrl_parse_address(r, q->address, false, &local, &key, &domain) < 0)
		return -1;
	if (!hash_acceptable(q->password_hash))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "password hash must be argon2id, argon2i, sha512-crypt "
		                 "or bcrypt");
	if (!scram_acceptable(q->scram_sha256))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID, SCRAM_INVALID);
	if (q->quota_bytes > INT64_MAX)
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID, "quota too large");
	if (ctrl_exec(r, "BEGIN", 0) < 0)
		return -1;
	if ((found = ctrl_domain_lock(r, domain, &domain_id)) <= 0)
		return -1;
	res = ctrl_query(r, "SELECT 1 FROM aliases WHERE domain_id = $1 AND local_key = $2",
	                 2, ctrl_u64(r, domain_id), key);
	if (res == NULL)
		return -1;
	found = PQntuples(res);
	PQclear(res);
	if (found > 0)
		return ctrl_fail(r, MC__STATUS__STATUS_EXISTS,
		                 "an alias %s@%s already exists", key, domain);
	snprintf(shard_s, sizeof(shard_s), "%u",
	         shard_of(key, domain, r->ctrl->shard_count));
	res = ctrl_query(r, "INSERT INTO accounts (domain_id, local_part, local_key,"
	                    " password_hash, shard, quota_bytes, scram_sha256)"
	                    " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
	                 7, ctrl_u64(r, domain_id), local, key, q->password_hash,
	                 shard_s, ctrl_u64(r, q->quota_bytes), q->scram_sha256);
	if (res == NULL) {
		if (strcmp(r->sqlstate, "23505") == 0)
			return ctrl_fail(r, MC__STATUS__STATUS_EXISTS,
			                 "account %s@%s already exists", local, domain);
		return -1;
	}
	{
		uint64_t id = ctrl_row_u64(res, 0, 0);
		Mc__Account **a;

		PQclear(res);
		if (ctrl_change(r, CTRL_KIND_ACCOUNT, id, MC__CHANGE__OP__UPSERT) < 0 ||
		    ctrl_load_accounts(r, CTRL_BY_IDS,
		                       ctrl_id_array(r, id), false,
		                       &a) != 1 ||
		    ctrl_exec(r, "COMMIT", 0) < 0)
			return -1;
		r->resp->body_case = MC__RESPONSE__BODY_ACCOUNT;
		r->resp->account = a[0];
	}
	return 0;
}

int
ctrl_account_list(struct ctrl_req *r)
{
	const Mc__AccountListReq *q = r->req->account_list;
	Mc__AccountList *l = mc_pool_alloc(r->pool, sizeof(*l));
	char *domain = mc_addr_lower(mc_pool_strdup(r->pool, q->domain));
	int n;

	mc__account_list__init(l);
	n = *domain == '\0'
	            ? ctrl_load_accounts(r, CTRL_ALL, NULL, false, &l->accounts)
	            : ctrl_load_accounts(r, CTRL_BY_DOMAIN, domain, false, &l->accounts);
	if (n < 0)
		return -1;
	l->n_accounts = (size_t)n;
	r->resp->body_case = MC__RESPONSE__BODY_ACCOUNTS;
	r->resp->accounts = l;
	return 0;
}

int
ctrl_account_show(struct ctrl_req *r)
{
	const char *address = r->req->account_show->address;
	Mc__AccountInfo *info = mc_pool_alloc(r->pool, sizeof(*info));
	Mc__Account **a;
	PGresult *res;
	int n;

	mc__account_info__init(info);
	if ((n = ctrl_load_accounts(r, CTRL_BY_ADDRESS, address, false, &a)) < 0)
		return -1;
	if (n == 0)
		return ctrl_fail(r, MC__STATUS__STATUS_NOT_FOUND,
		                 "account %s does not exist", address);
	info->account = a[0];
	/* Aliases that name this account among their destinations. */
	res = ctrl_query(r, "SELECT '{' || coalesce(string_agg(id::text, ','), '') || '}'"
	                    " FROM aliases WHERE EXISTS (SELECT 1 FROM"
	                    " unnest(destinations) dst WHERE lower(dst) = lower($1))",
	                 1, mc_pool_strdup(r->pool, address));
	if (res == NULL)
		return -1;
	n = ctrl_load_aliases(r, CTRL_BY_IDS, ctrl_row_str(r, res, 0, 0),
	                      &info->aliases);
	PQclear(res);
	if (n < 0)
		return -1;
	info->n_aliases = (size_t)n;
	{
		const char *err = NULL;

		if (ctrl_store_mailboxes(r, info->account->id, &info->mailboxes,
		                         &info->n_mailboxes, &err) < 0)
			info->mailbox_error = mc_pool_strdup(r->pool, err);
	}
	r->resp->body_case = MC__RESPONSE__BODY_ACCOUNT_INFO;
	r->resp->account_info = info;
	return 0;
}

/* Find the account's id under the domain lock; NOT_FOUND when absent. */
static int
account_lock(struct ctrl_req *r, const char *address, uint64_t *id_r)
{
	char *local, *key, *domain;
	uint64_t domain_id;
	PGresult *res;
	int found;

	if (ctrl_parse_address(r, address, false, &local, &key, &domain) < 0)
		return -1;
	if ((found = ctrl_domain_lock(r, domain, &domain_id)) <= 0)
		return -1;
	res = ctrl_query(r, "SELECT id FROM accounts WHERE domain_id = $1 AND "
	                    "local_key = $2", 2, ctrl_u64(r, domain_id), key);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctrl_fail(r, MC__STATUS__STATUS_NOT_FOUND,
		                 "account %s does not exist", address);
	}
	*id_r = ctrl_row_u64(res, 0, 0);
	PQclear(res);
	return 0;
}

int
ctrl_account_rm(struct ctrl_req *r)
{
	uint64_t id;

	if (ctrl_exec(r, "BEGIN", 0) < 0 ||
	    account_lock(r, r->req->account_rm->address, &id) < 0 ||
	    ctrl_exec(r, "DELETE FROM accounts WHERE id = $1", 1, ctrl_u64(r, id)) < 0 ||
	    ctrl_change(r, CTRL_KIND_ACCOUNT, id, MC__CHANGE__OP__DELETE) < 0 ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	return 0;
}

int
ctrl_account_passwd(struct ctrl_req *r)
{
	const Mc__AccountPasswdReq *q = r->req->account_passwd;
	uint64_t id;

	if (!hash_acceptable(q->password_hash))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "password hash must be argon2id, argon2i, sha512-crypt "
		                 "or bcrypt");
	if (!scram_acceptable(q->scram_sha256))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID, SCRAM_INVALID);
	/* The verifier is replaced even when empty: one left from the old
	 * password would still open the account. */
	if (ctrl_exec(r, "BEGIN", 0) < 0 || account_lock(r, q->address, &id) < 0 ||
	    ctrl_exec(r, "UPDATE accounts SET password_hash = $2,"
	                 " scram_sha256 = $3 WHERE id = $1", 3,
	              ctrl_u64(r, id), q->password_hash, q->scram_sha256) < 0 ||
	    ctrl_change(r, CTRL_KIND_ACCOUNT, id, MC__CHANGE__OP__UPSERT) < 0 ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	return 0;
}
