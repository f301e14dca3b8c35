/* The in-memory published directory; see directory.h. Owns every domain,
 * account and alias object (all strings copied out of the protobuf
 * messages), indexed twice: by immutable id and by lower-cased name or
 * address, both through lib/hash.h so lookups stay O(1) for directories of
 * hundreds of thousands of accounts. Every object is in exactly both of its
 * kind's tables or in neither; all removals go through *_remove so that
 * invariant holds. Routes, route rules and DKIM keys live in
 * directory_egress.c, persistence to directory.json in directory_file.c.
 *
 * Only the loop thread touches a directory. */
#include "directory.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <jansson.h>

#include "addr.h"
#include "directory_private.h"
#include "error.h"
#include "hash.h"
#include "mem.h"

/* Alias levels followed by mc_directory_resolve (the header's contract). */
#define MC_RESOLVE_DEPTH 8

struct dir_domain {
	uint64_t id; /* first: see cmp_id */
	char *name;  /* lower-case; key of domains_by_name */
	int64_t created_at;
};

struct dir_account {
	struct mc_dir_account view; /* view.id first: see cmp_id */
	char *address;              /* as created */
	char *key;                  /* lower-cased address */
	char *password_hash;
	char *scram_sha256;
};

struct dir_alias {
	struct mc_dir_alias view;
	char *address;
	char *key;
	char **destinations;
};

struct dir_shard {
	uint64_t key; /* the shard number, key of shards */
	struct mc_dir_shard view;
	char *node_name;
	char *lmtp_address;
};

_Static_assert(offsetof(struct dir_domain, id) == 0, "id first");
_Static_assert(offsetof(struct dir_account, view.id) == 0, "id first");
_Static_assert(offsetof(struct dir_alias, view.id) == 0, "id first");

static const char *
str(const char *s)
{
	return s != NULL ? s : "";
}

const char *
mc_directory_str(const char *s)
{
	return str(s);
}

/* Lower-cased copy of s into buf; false when it does not fit (such a name
 * cannot be in the directory's valid namespace anyway). */
static bool
lower_key(const char *s, char *buf, size_t size)
{
	size_t n = strnlen(s, size);

	if (n >= size)
		return false;
	memcpy(buf, s, n + 1);
	mc_addr_lower(buf);
	return true;
}

/* ---- object lifetime ---- */

static void
domain_free(struct dir_domain *dom)
{
	free(dom->name);
	free(dom);
}

static void
account_free(struct dir_account *acc)
{
	free(acc->address);
	free(acc->key);
	if (acc->password_hash != NULL)
		mc_wipe(acc->password_hash, strlen(acc->password_hash));
	free(acc->password_hash);
	if (acc->scram_sha256 != NULL)
		mc_wipe(acc->scram_sha256, strlen(acc->scram_sha256));
	free(acc->scram_sha256);
	free(acc);
}

static void
alias_free(struct dir_alias *al)
{
	size_t i;

	for (i = 0; i < al->view.destination_count; i++)
		free(al->destinations[i]);
	free(al->destinations);
	free(al->address);
	free(al->key);
	free(al);
}

static void
shard_free(struct dir_shard *sh)
{
	free(sh->node_name);
	free(sh->lmtp_address);
	free(sh);
}

static void
account_remove(struct mc_directory *dir, struct dir_account *acc)
{
	if (mc_hash_get(dir->accounts_by_id, &acc->view.id) == acc)
		mc_hash_remove(dir->accounts_by_id, &acc->view.id);
	if (mc_hash_get(dir->accounts_by_addr, acc->key) == acc)
		mc_hash_remove(dir->accounts_by_addr, acc->key);
	account_free(acc);
}

static void
alias_remove(struct mc_directory *dir, struct dir_alias *al)
{
	if (mc_hash_get(dir->aliases_by_id, &al->view.id) == al)
		mc_hash_remove(dir->aliases_by_id, &al->view.id);
	if (mc_hash_get(dir->aliases_by_addr, al->key) == al)
		mc_hash_remove(dir->aliases_by_addr, al->key);
	alias_free(al);
}

/* Remove a domain from the indexes; with cascade also its accounts and
 * aliases (a deleted domain takes them along; the controller sends their
 * deletes too, which then find nothing). */
static void
domain_remove(struct mc_directory *dir, struct dir_domain *dom, bool cascade)
{
	size_t pos = 0, n = 0, i;
	void **doomed, *v;

	if (cascade) {
		doomed = mc_calloc(mc_hash_count(dir->accounts_by_id) + 1,
		                   sizeof(*doomed));
		while (mc_hash_next(dir->accounts_by_id, &pos, &v))
			if (((struct dir_account *)v)->view.domain_id ==
			    dom->id)
				doomed[n++] = v;
		for (i = 0; i < n; i++)
			account_remove(dir, doomed[i]);
		free(doomed);
		doomed = mc_calloc(mc_hash_count(dir->aliases_by_id) + 1,
		                   sizeof(*doomed));
		pos = n = 0;
		while (mc_hash_next(dir->aliases_by_id, &pos, &v))
			if (((struct dir_alias *)v)->view.domain_id == dom->id)
				doomed[n++] = v;
		for (i = 0; i < n; i++)
			alias_remove(dir, doomed[i]);
		free(doomed);
		mc_directory_egress_domain_gone(dir, dom->id);
	}
	if (mc_hash_get(dir->domains_by_id, &dom->id) == dom)
		mc_hash_remove(dir->domains_by_id, &dom->id);
	if (mc_hash_get(dir->domains_by_name, dom->name) == dom)
		mc_hash_remove(dir->domains_by_name, dom->name);
	domain_free(dom);
}

static void
clear(struct mc_directory *dir)
{
	size_t pos = 0;
	void *v;

	while (mc_hash_next(dir->domains_by_id, &pos, &v))
		domain_free(v);
	pos = 0;
	while (mc_hash_next(dir->accounts_by_id, &pos, &v))
		account_free(v);
	pos = 0;
	while (mc_hash_next(dir->aliases_by_id, &pos, &v))
		alias_free(v);
	pos = 0;
	while (mc_hash_next(dir->shards, &pos, &v))
		shard_free(v);
	mc_hash_clear(dir->shards);
	mc_hash_clear(dir->domains_by_id);
	mc_hash_clear(dir->domains_by_name);
	mc_hash_clear(dir->accounts_by_id);
	mc_hash_clear(dir->accounts_by_addr);
	mc_hash_clear(dir->aliases_by_id);
	mc_hash_clear(dir->aliases_by_addr);
	mc_directory_egress_clear(dir);
}

struct mc_directory *
mc_directory_new(void)
{
	struct mc_directory *dir = mc_malloc(sizeof(*dir));

	dir->domains_by_id = mc_hash_new(MC_HASH_U64);
	dir->domains_by_name = mc_hash_new(MC_HASH_STR);
	dir->accounts_by_id = mc_hash_new(MC_HASH_U64);
	dir->accounts_by_addr = mc_hash_new(MC_HASH_STR);
	dir->aliases_by_id = mc_hash_new(MC_HASH_U64);
	dir->aliases_by_addr = mc_hash_new(MC_HASH_STR);
	dir->shards = mc_hash_new(MC_HASH_U64);
	mc_directory_egress_init(dir);
	return dir;
}

void
mc_directory_free(struct mc_directory **dir)
{
	if (*dir == NULL)
		return;
	clear(*dir);
	mc_hash_free(&(*dir)->domains_by_id);
	mc_hash_free(&(*dir)->domains_by_name);
	mc_hash_free(&(*dir)->accounts_by_id);
	mc_hash_free(&(*dir)->accounts_by_addr);
	mc_hash_free(&(*dir)->aliases_by_id);
	mc_hash_free(&(*dir)->aliases_by_addr);
	mc_hash_free(&(*dir)->shards);
	mc_directory_egress_fini(*dir);
	free(*dir);
	*dir = NULL;
}

uint64_t
mc_directory_version(const struct mc_directory *dir)
{
	return dir->version;
}

uint32_t
mc_directory_shard_count(const struct mc_directory *dir)
{
	return dir->shard_count;
}

size_t
mc_directory_domain_count(const struct mc_directory *dir)
{
	return mc_hash_count(dir->domains_by_id);
}

size_t
mc_directory_account_count(const struct mc_directory *dir)
{
	return mc_hash_count(dir->accounts_by_id);
}

size_t
mc_directory_alias_count(const struct mc_directory *dir)
{
	return mc_hash_count(dir->aliases_by_id);
}

size_t
mc_directory_shard_owner_count(const struct mc_directory *dir)
{
	return mc_hash_count(dir->shards);
}

const struct mc_dir_shard *
mc_directory_shard(const struct mc_directory *dir, uint32_t shard)
{
	uint64_t key = shard;
	const struct dir_shard *sh = mc_hash_get(dir->shards, &key);

	return sh != NULL ? &sh->view : NULL;
}

/* ---- upserts and deletes ---- */

/* The domain part for an account or alias: the message's denormalised
 * name, or the name of its domain_id when the sender left it empty. */
const char *
mc_directory_domain_name(const struct mc_directory *dir, const char *domain,
                         uint64_t domain_id)
{
	const struct dir_domain *dom;

	if (domain != NULL && *domain != '\0')
		return domain;
	dom = mc_hash_get(dir->domains_by_id, &domain_id);
	return dom != NULL ? dom->name : "";
}

static void
domain_upsert(struct mc_directory *dir, const Mc__Domain *d)
{
	struct dir_domain *dom = mc_malloc(sizeof(*dom)), *old;

	dom->id = d->id;
	dom->name = mc_addr_lower(mc_strdup(str(d->name)));
	dom->created_at = d->created_at;
	/* Same id: an update, its accounts stay. */
	if ((old = mc_hash_get(dir->domains_by_id, &dom->id)) != NULL)
		domain_remove(dir, old, false);
	/* Same name, other id: deleted and recreated, the old one goes
	 * with everything it held. */
	if ((old = mc_hash_get(dir->domains_by_name, dom->name)) != NULL)
		domain_remove(dir, old, true);
	mc_hash_put(dir->domains_by_id, &dom->id, dom);
	mc_hash_put(dir->domains_by_name, dom->name, dom);
}

static void
account_upsert(struct mc_directory *dir, const Mc__Account *a)
{
	struct dir_account *acc = mc_malloc(sizeof(*acc)), *old;

	acc->address = mc_asprintf("%s@%s", str(a->local_part),
	                           mc_directory_domain_name(dir, a->domain, a->domain_id));
	acc->key = mc_addr_lower(mc_strdup(acc->address));
	acc->password_hash = mc_strdup(str(a->password_hash));
	acc->scram_sha256 = mc_strdup(str(a->scram_sha256));
	acc->view.id = a->id;
	acc->view.domain_id = a->domain_id;
	acc->view.address = acc->address;
	acc->view.password_hash = acc->password_hash;
	acc->view.scram_sha256 = acc->scram_sha256;
	acc->view.shard = a->shard;
	acc->view.quota_bytes = a->quota_bytes;
	if ((old = mc_hash_get(dir->accounts_by_id, &acc->view.id)) != NULL)
		account_remove(dir, old);
	if ((old = mc_hash_get(dir->accounts_by_addr, acc->key)) != NULL)
		account_remove(dir, old);
	mc_hash_put(dir->accounts_by_id, &acc->view.id, acc);
	mc_hash_put(dir->accounts_by_addr, acc->key, acc);
}

static void
alias_upsert(struct mc_directory *dir, const Mc__Alias *a)
{
	struct dir_alias *al = mc_malloc(sizeof(*al)), *old;
	size_t i;

	al->address = mc_asprintf("%s@%s", str(a->local_part),
	                          mc_directory_domain_name(dir, a->domain, a->domain_id));
	al->key = mc_addr_lower(mc_strdup(al->address));
	al->destinations =
	        mc_calloc(a->n_destinations + 1, sizeof(*al->destinations));
	for (i = 0; i < a->n_destinations; i++)
		al->destinations[i] = mc_strdup(str(a->destinations[i]));
	al->view.id = a->id;
	al->view.domain_id = a->domain_id;
	al->view.address = al->address;
	al->view.destinations = (const char *const *)al->destinations;
	al->view.destination_count = a->n_destinations;
	if ((old = mc_hash_get(dir->aliases_by_id, &al->view.id)) != NULL)
		alias_remove(dir, old);
	if ((old = mc_hash_get(dir->aliases_by_addr, al->key)) != NULL)
		alias_remove(dir, old);
	mc_hash_put(dir->aliases_by_id, &al->view.id, al);
	mc_hash_put(dir->aliases_by_addr, al->key, al);
}

/* A shard owner replaces the previous one; owners are never deleted. */
static void
shard_upsert(struct mc_directory *dir, const Mc__ShardOwner *o)
{
	struct dir_shard *sh, *old;

	if (o->shard >= MC_DIRECTORY_MAX_SHARDS)
		return;
	sh = mc_malloc(sizeof(*sh));
	sh->key = o->shard;
	sh->node_name = mc_strdup(str(o->node_name));
	sh->lmtp_address = mc_strdup(str(o->lmtp_address));
	sh->view.shard = o->shard;
	sh->view.node_id = o->node_id;
	sh->view.epoch = o->epoch;
	sh->view.node_name = sh->node_name;
	sh->view.lmtp_address = sh->lmtp_address;
	if ((old = mc_hash_put(dir->shards, &sh->key, sh)) != NULL)
		shard_free(old);
}

/* Deletes are idempotent: deleting an absent id does nothing. */
static void
change_delete(struct mc_directory *dir, const Mc__Change *c)
{
	void *obj;

	if (c->object_case == MC__CHANGE__OBJECT_DOMAIN && c->domain != NULL) {
		obj = mc_hash_get(dir->domains_by_id, &c->domain->id);
		if (obj != NULL)
			domain_remove(dir, obj, true);
	} else if (c->object_case == MC__CHANGE__OBJECT_ACCOUNT &&
	           c->account != NULL) {
		obj = mc_hash_get(dir->accounts_by_id, &c->account->id);
		if (obj != NULL)
			account_remove(dir, obj);
	} else if (c->object_case == MC__CHANGE__OBJECT_ALIAS &&
	           c->alias != NULL) {
		obj = mc_hash_get(dir->aliases_by_id, &c->alias->id);
		if (obj != NULL)
			alias_remove(dir, obj);
	} else {
		/* Routes, rules and DKIM keys; anything else (a kind from a
		 * newer controller) is skipped. */
		mc_directory_egress_delete(dir, c);
	}
}

/* One UPSERT, if it is of the kind this pass handles (see apply_delta). */
static void
change_upsert(struct mc_directory *dir, const Mc__Change *c, int pass)
{
	if (pass == 0 && c->object_case == MC__CHANGE__OBJECT_DOMAIN &&
	    c->domain != NULL)
		domain_upsert(dir, c->domain);
	else if (pass == 1 && c->object_case == MC__CHANGE__OBJECT_ACCOUNT &&
	         c->account != NULL)
		account_upsert(dir, c->account);
	else if (pass == 2 && c->object_case == MC__CHANGE__OBJECT_ALIAS &&
	         c->alias != NULL)
		alias_upsert(dir, c->alias);
	else if (pass == 3 && c->object_case == MC__CHANGE__OBJECT_SHARD &&
	         c->shard != NULL)
		shard_upsert(dir, c->shard);
	else if (pass >= MC_DIRECTORY_EGRESS_PASS_FIRST)
		mc_directory_egress_upsert(dir, c, pass);
}

void
mc_directory_load_snapshot(struct mc_directory *dir, const Mc__Snapshot *snap)
{
	size_t i;

	clear(dir);
	dir->version = snap->version;
	dir->shard_count = snap->shard_count;
	/* Domains first so accounts without a denormalised domain name can
	 * borrow it from their domain_id. */
	for (i = 0; i < snap->n_domains; i++)
		if (snap->domains[i] != NULL)
			domain_upsert(dir, snap->domains[i]);
	for (i = 0; i < snap->n_accounts; i++)
		if (snap->accounts[i] != NULL)
			account_upsert(dir, snap->accounts[i]);
	for (i = 0; i < snap->n_aliases; i++)
		if (snap->aliases[i] != NULL)
			alias_upsert(dir, snap->aliases[i]);
	for (i = 0; i < snap->n_shards; i++)
		if (snap->shards[i] != NULL)
			shard_upsert(dir, snap->shards[i]);
	mc_directory_egress_load(dir, snap);
}

int
mc_directory_apply_delta(struct mc_directory *dir, const Mc__Delta *delta)
{
	size_t i;
	int pass;

	if (delta->to_version <= dir->version)
		return 0;
	if (delta->from_version > dir->version)
		return -1;
	for (i = 0; i < delta->n_changes; i++) {
		const Mc__Change *c = delta->changes[i];

		if (c != NULL && c->op == MC__CHANGE__OP__DELETE)
			change_delete(dir, c);
	}
	/* Upserts by kind, domains first (see load_snapshot); the order
	 * within a kind is kept. */
	for (pass = 0; pass < MC_DIRECTORY_EGRESS_PASS_END; pass++) {
		for (i = 0; i < delta->n_changes; i++) {
			const Mc__Change *c = delta->changes[i];

			if (c != NULL && c->op == MC__CHANGE__OP__UPSERT)
				change_upsert(dir, c, pass);
		}
	}
	dir->version = delta->to_version;
	return 1;
}

/* ---- lookups ---- */

bool
mc_directory_has_domain(const struct mc_directory *dir, const char *domain)
{
	char key[MC_DOMAIN_MAX + 1];

	return domain != NULL && lower_key(domain, key, sizeof(key)) &&
	       mc_hash_get(dir->domains_by_name, key) != NULL;
}

static const struct dir_account *
account_get(const struct mc_directory *dir, const char *address)
{
	char key[MC_ADDR_MAX + 1];

	if (address == NULL || !lower_key(address, key, sizeof(key)))
		return NULL;
	return mc_hash_get(dir->accounts_by_addr, key);
}

static const struct dir_alias *
alias_get(const struct mc_directory *dir, const char *address)
{
	char key[MC_ADDR_MAX + 1];

	if (address == NULL || !lower_key(address, key, sizeof(key)))
		return NULL;
	return mc_hash_get(dir->aliases_by_addr, key);
}

/* The catch-all alias of address's domain, if any. */
static const struct dir_alias *
catchall_get(const struct mc_directory *dir, const char *address)
{
	const char *at = strrchr(address, '@');
	char key[MC_ADDR_MAX + 1];

	if (at == NULL || at[1] == '\0' ||
	    (size_t)snprintf(key, sizeof(key), "*@%s", at + 1) >= sizeof(key))
		return NULL;
	return mc_hash_get(dir->aliases_by_addr, mc_addr_lower(key));
}

const struct mc_dir_account *
mc_directory_account(const struct mc_directory *dir, const char *address)
{
	const struct dir_account *acc = account_get(dir, address);

	return acc != NULL ? &acc->view : NULL;
}

const struct mc_dir_account *
mc_directory_login(const struct mc_directory *dir, const char *name,
                   bool *ambiguous_r)
{
	const struct dir_account *found = NULL;
	size_t len = strlen(name), pos = 0;
	void *v;

	*ambiguous_r = false;
	if (strchr(name, '@') != NULL)
		return mc_directory_account(dir, name);
	/* A bare local part: scan (logins are rare next to deliveries). */
	while (mc_hash_next(dir->accounts_by_id, &pos, &v)) {
		const struct dir_account *acc = v;

		if (strncasecmp(acc->address, name, len) != 0 || acc->address[len] != '@')
			continue;
		if (found != NULL) {
			*ambiguous_r = true;
			return NULL;
		}
		found = acc;
	}
	return found != NULL ? &found->view : NULL;
}

const struct mc_dir_alias *
mc_directory_alias(const struct mc_directory *dir, const char *address)
{
	const struct dir_alias *al = alias_get(dir, address);

	return al != NULL ? &al->view : NULL;
}

/* ---- resolve ---- */

/* Breadth-first expansion: each alias is reached at its smallest depth and
 * expanded once (the seen set), which cuts loops and keeps diamond-shaped
 * alias graphs linear. */
struct resolve {
	const struct mc_directory *dir;
	const struct mc_dir_account **accounts;
	size_t max, count;
	const char **foreign;
	size_t foreign_max, foreign_count;
	const struct dir_alias **queue;
	unsigned *depths;
	size_t queue_len, queue_cap;
	struct mc_hash *seen_aliases, *seen_accounts;
};

static void
resolve_push(struct resolve *r, const struct dir_alias *al, unsigned depth)
{
	if (depth > MC_RESOLVE_DEPTH)
		return;
	if (r->seen_aliases == NULL)
		r->seen_aliases = mc_hash_new(MC_HASH_U64);
	if (mc_hash_get(r->seen_aliases, &al->view.id) != NULL)
		return;
	mc_hash_put(r->seen_aliases, &al->view.id, (void *)al);
	if (r->queue_len == r->queue_cap) {
		r->queue_cap = r->queue_cap != 0 ? r->queue_cap * 2 : 8;
		r->queue =
		        mc_realloc(r->queue, r->queue_cap * sizeof(*r->queue));
		r->depths = mc_realloc(r->depths,
		                       r->queue_cap * sizeof(*r->depths));
	}
	r->queue[r->queue_len] = al;
	r->depths[r->queue_len] = depth;
	r->queue_len++;
}

static void
resolve_account(struct resolve *r, const struct dir_account *acc)
{
	if (r->seen_accounts == NULL)
		r->seen_accounts = mc_hash_new(MC_HASH_U64);
	if (mc_hash_get(r->seen_accounts, &acc->view.id) != NULL)
		return;
	mc_hash_put(r->seen_accounts, &acc->view.id, (void *)acc);
	if (r->count < r->max)
		r->accounts[r->count++] = &acc->view;
}

static void
resolve_foreign(struct resolve *r, const char *address)
{
	size_t i;

	for (i = 0; i < r->foreign_count; i++)
		if (strcasecmp(r->foreign[i], address) == 0)
			return;
	if (r->foreign_count < r->foreign_max)
		r->foreign[r->foreign_count++] = address;
}

/* One destination of an alias expanded at depth: same precedence as the
 * top level (account, alias, catch-all), or foreign. A local address that
 * matches nothing delivers nowhere. */
static void
resolve_destination(struct resolve *r, const char *dest, unsigned depth)
{
	const struct dir_account *acc;
	const struct dir_alias *al;
	const char *at = strrchr(dest, '@');

	if ((acc = account_get(r->dir, dest)) != NULL) {
		resolve_account(r, acc);
		return;
	}
	if ((al = alias_get(r->dir, dest)) != NULL) {
		resolve_push(r, al, depth + 1);
		return;
	}
	if (at == NULL || at[1] == '\0')
		return; /* not an address: nothing to deliver to */
	if (!mc_directory_has_domain(r->dir, at + 1)) {
		resolve_foreign(r, dest);
		return;
	}
	if ((al = catchall_get(r->dir, dest)) != NULL)
		resolve_push(r, al, depth + 1);
}

size_t
mc_directory_resolve(const struct mc_directory *dir, const char *address,
                     const struct mc_dir_account **accounts_r, size_t max,
                     const char **foreign_r, size_t foreign_max,
                     size_t *foreign_count_r)
{
	struct resolve r = {
	        .dir = dir,
	        .accounts = accounts_r,
	        .max = max,
	        .foreign = foreign_r,
	        .foreign_max = foreign_max,
	};
	const struct dir_account *acc;
	const struct dir_alias *al;
	size_t head, i;

	*foreign_count_r = 0;
	if (address == NULL)
		return 0;
	if ((acc = account_get(dir, address)) != NULL) {
		if (max == 0)
			return 0;
		accounts_r[0] = &acc->view;
		return 1;
	}
	al = alias_get(dir, address);
	if (al == NULL)
		al = catchall_get(dir, address);
	if (al == NULL)
		return 0;
	resolve_push(&r, al, 1);
	for (head = 0; head < r.queue_len; head++) {
		const struct dir_alias *cur = r.queue[head];

		for (i = 0; i < cur->view.destination_count; i++)
			resolve_destination(&r, cur->destinations[i],
			                    r.depths[head]);
	}
	free(r.queue);
	free(r.depths);
	mc_hash_free(&r.seen_aliases);
	mc_hash_free(&r.seen_accounts);
	*foreign_count_r = r.foreign_count;
	return r.count;
}

/* ---- export ---- */

static int
cmp_id(const void *a, const void *b)
{
	uint64_t x = **(const uint64_t *const *)a;
	uint64_t y = **(const uint64_t *const *)b;

	return x < y ? -1 : x > y;
}

/* The values of an id table, sorted by id (so files are stable and
 * diffable); free the array. */
void **
mc_directory_sorted_values(const struct mc_hash *h, size_t *n_r)
{
	size_t pos = 0, n = 0;
	void **v = mc_calloc(mc_hash_count(h) + 1, sizeof(*v));

	while (mc_hash_next(h, &pos, &v[n]))
		n++;
	qsort(v, n, sizeof(*v), cmp_id);
	*n_r = n;
	return v;
}

/* Split "local@domain" at the last '@' into new heap strings. */
static void
split_address(const char *address, char **local_r, char **domain_r)
{
	const char *at = strrchr(address, '@');

	if (at == NULL) {
		*local_r = mc_strdup(address);
		*domain_r = mc_strdup("");
		return;
	}
	*local_r = mc_strndup(address, (size_t)(at - address));
	*domain_r = mc_strdup(at + 1);
}

static Mc__Account *
account_export(const struct dir_account *acc)
{
	Mc__Account *a = mc_malloc(sizeof(*a));

	mc__account__init(a);
	a->id = acc->view.id;
	a->domain_id = acc->view.domain_id;
	split_address(acc->address, &a->local_part, &a->domain);
	a->password_hash = mc_strdup(acc->password_hash);
	a->scram_sha256 = mc_strdup(acc->scram_sha256);
	a->shard = acc->view.shard;
	a->quota_bytes = acc->view.quota_bytes;
	return a;
}

static Mc__Alias *
alias_export(const struct dir_alias *al)
{
	Mc__Alias *a = mc_malloc(sizeof(*a));
	size_t i;

	mc__alias__init(a);
	a->id = al->view.id;
	a->domain_id = al->view.domain_id;
	split_address(al->address, &a->local_part, &a->domain);
	a->n_destinations = al->view.destination_count;
	a->destinations =
	        mc_calloc(a->n_destinations + 1, sizeof(*a->destinations));
	for (i = 0; i < a->n_destinations; i++)
		a->destinations[i] = mc_strdup(al->destinations[i]);
	return a;
}

Mc__Snapshot *
mc_directory_to_snapshot(const struct mc_directory *dir)
{
	Mc__Snapshot *snap = mc_malloc(sizeof(*snap));
	void **v;
	size_t i;

	mc__snapshot__init(snap);
	snap->version = dir->version;
	snap->shard_count = dir->shard_count;
	v = mc_directory_sorted_values(dir->domains_by_id, &snap->n_domains);
	snap->domains = mc_calloc(snap->n_domains + 1, sizeof(*snap->domains));
	for (i = 0; i < snap->n_domains; i++) {
		const struct dir_domain *dom = v[i];
		Mc__Domain *d = mc_malloc(sizeof(*d));

		mc__domain__init(d);
		d->id = dom->id;
		d->name = mc_strdup(dom->name);
		d->created_at = dom->created_at;
		snap->domains[i] = d;
	}
	free(v);
	v = mc_directory_sorted_values(dir->accounts_by_id, &snap->n_accounts);
	snap->accounts =
	        mc_calloc(snap->n_accounts + 1, sizeof(*snap->accounts));
	for (i = 0; i < snap->n_accounts; i++)
		snap->accounts[i] = account_export(v[i]);
	free(v);
	v = mc_directory_sorted_values(dir->aliases_by_id, &snap->n_aliases);
	snap->aliases = mc_calloc(snap->n_aliases + 1, sizeof(*snap->aliases));
	for (i = 0; i < snap->n_aliases; i++)
		snap->aliases[i] = alias_export(v[i]);
	free(v);
	v = mc_directory_sorted_values(dir->shards, &snap->n_shards);
	snap->shards = mc_calloc(snap->n_shards + 1, sizeof(*snap->shards));
	for (i = 0; i < snap->n_shards; i++) {
		const struct dir_shard *sh = v[i];
		Mc__ShardOwner *o = mc_malloc(sizeof(*o));

		mc__shard_owner__init(o);
		o->shard = sh->view.shard;
		o->node_id = sh->view.node_id;
		o->epoch = sh->view.epoch;
		o->node_name = mc_strdup(sh->node_name);
		o->lmtp_address = mc_strdup(sh->lmtp_address);
		snap->shards[i] = o;
	}
	free(v);
	mc_directory_egress_export(dir, snap);
	return snap;
}

/* Strings in our snapshots are our own heap copies, except the shared
 * empty string that mc__*__init leaves in a field not yet filled (load
 * below may stop half-way through a message). */
void
mc_directory_free_str(char *s)
{
	if (s != NULL && s != protobuf_c_empty_string)
		free(s);
}

void
mc_directory_free_secret(char *s)
{
	if (s != NULL && s != protobuf_c_empty_string) {
		mc_wipe(s, strlen(s));
		free(s);
	}
}

/* Frees snapshots built by mc_directory_to_snapshot and by load below. */
void
mc_directory_snapshot_free(Mc__Snapshot **snapp)
{
	Mc__Snapshot *snap = *snapp;
	size_t i, j;

	if (snap == NULL)
		return;
	for (i = 0; i < snap->n_domains; i++) {
		if (snap->domains[i] == NULL)
			continue;
		mc_directory_free_str(snap->domains[i]->name);
		free(snap->domains[i]);
	}
	for (i = 0; i < snap->n_accounts; i++) {
		Mc__Account *a = snap->accounts[i];

		if (a == NULL)
			continue;
		mc_directory_free_str(a->local_part);
		mc_directory_free_str(a->domain);
		mc_directory_free_secret(a->password_hash);
		mc_directory_free_secret(a->scram_sha256);
		free(a);
	}
	for (i = 0; i < snap->n_aliases; i++) {
		Mc__Alias *a = snap->aliases[i];

		if (a == NULL)
			continue;
		mc_directory_free_str(a->local_part);
		mc_directory_free_str(a->domain);
		for (j = 0; j < a->n_destinations; j++)
			mc_directory_free_str(a->destinations[j]);
		free(a->destinations);
		free(a);
	}
	for (i = 0; i < snap->n_shards; i++) {
		Mc__ShardOwner *o = snap->shards[i];

		if (o == NULL)
			continue;
		mc_directory_free_str(o->node_name);
		mc_directory_free_str(o->lmtp_address);
		free(o);
	}
	mc_directory_egress_snapshot_free(snap);
	free(snap->domains);
	free(snap->accounts);
	free(snap->aliases);
	free(snap->shards);
	free(snap);
	*snapp = NULL;
}
