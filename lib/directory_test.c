/* Unit tests for the in-memory directory: snapshot load and lookups, delta
 * apply (versions, gaps, deletes before upserts, delete-and-recreate under
 * one name), resolve (aliases, loops, depth, catch-all, foreign), the
 * directory.json round trip and its rejection of malformed files, and a
 * 100,000-account directory. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "directory.h"
#include "mem.h"
#include "test.h"

/* ---- message builders (heap, freed by the *_release helpers) ---- */

static Mc__Domain *
mk_domain(uint64_t id, const char *name)
{
	Mc__Domain *d = calloc(1, sizeof(*d));

	mc__domain__init(d);
	d->id = id;
	d->name = strdup(name);
	d->created_at = 1700000000 + (int64_t)id;
	return d;
}

static Mc__Account *
mk_account(uint64_t id, uint64_t domain_id, const char *local,
           const char *domain, const char *hash, uint32_t shard)
{
	Mc__Account *a = calloc(1, sizeof(*a));

	mc__account__init(a);
	a->id = id;
	a->domain_id = domain_id;
	a->local_part = strdup(local);
	a->domain = strdup(domain);
	a->password_hash = strdup(hash);
	/* A SCRAM verifier beside each argon2id hash, "" beside none. */
	a->scram_sha256 = strncmp(hash, "$argon2id$", 10) == 0
	                          ? mc_asprintf("SCRAM-SHA-256$%s", hash + 10)
	                          : strdup("");
	a->shard = shard;
	a->quota_bytes = id * 1000;
	return a;
}

/* dests: comma-separated list */
static Mc__Alias *
mk_alias(uint64_t id, uint64_t domain_id, const char *local,
         const char *domain, const char *dests)
{
	Mc__Alias *a = calloc(1, sizeof(*a));
	char *copy = strdup(dests), *save = NULL, *tok;

	mc__alias__init(a);
	a->id = id;
	a->domain_id = domain_id;
	a->local_part = strdup(local);
	a->domain = strdup(domain);
	a->destinations = calloc(16, sizeof(*a->destinations));
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save))
		a->destinations[a->n_destinations++] = strdup(tok);
	free(copy);
	return a;
}

static void
domain_release(Mc__Domain *d)
{
	free(d->name);
	free(d);
}

static void
account_release(Mc__Account *a)
{
	free(a->local_part);
	free(a->domain);
	free(a->password_hash);
	free(a->scram_sha256);
	free(a);
}

static void
alias_release(Mc__Alias *a)
{
	for (size_t i = 0; i < a->n_destinations; i++)
		free(a->destinations[i]);
	free(a->destinations);
	free(a->local_part);
	free(a->domain);
	free(a);
}

static Mc__Snapshot *
snap_new(uint64_t version, size_t cap)
{
	Mc__Snapshot *s = calloc(1, sizeof(*s));

	mc__snapshot__init(s);
	s->version = version;
	s->shard_count = 64;
	s->domains = calloc(cap, sizeof(*s->domains));
	s->accounts = calloc(cap, sizeof(*s->accounts));
	s->aliases = calloc(cap, sizeof(*s->aliases));
	return s;
}

static void
snap_release(Mc__Snapshot *s)
{
	for (size_t i = 0; i < s->n_domains; i++)
		domain_release(s->domains[i]);
	for (size_t i = 0; i < s->n_accounts; i++)
		account_release(s->accounts[i]);
	for (size_t i = 0; i < s->n_aliases; i++)
		alias_release(s->aliases[i]);
	free(s->domains);
	free(s->accounts);
	free(s->aliases);
	free(s);
}

static Mc__Delta *
delta_new(uint64_t from, uint64_t to)
{
	Mc__Delta *d = calloc(1, sizeof(*d));

	mc__delta__init(d);
	d->from_version = from;
	d->to_version = to;
	d->changes = calloc(32, sizeof(*d->changes));
	return d;
}

static Mc__Change *
delta_add(Mc__Delta *d, Mc__Change__Op op)
{
	Mc__Change *c = calloc(1, sizeof(*c));

	mc__change__init(c);
	c->op = op;
	d->changes[d->n_changes++] = c;
	return c;
}

#define UPSERT MC__CHANGE__OP__UPSERT
#define DELETE MC__CHANGE__OP__DELETE

static void
add_domain(Mc__Delta *d, Mc__Change__Op op, Mc__Domain *dom)
{
	Mc__Change *c = delta_add(d, op);

	c->object_case = MC__CHANGE__OBJECT_DOMAIN;
	c->domain = dom;
}

static void
add_account(Mc__Delta *d, Mc__Change__Op op, Mc__Account *a)
{
	Mc__Change *c = delta_add(d, op);

	c->object_case = MC__CHANGE__OBJECT_ACCOUNT;
	c->account = a;
}

static void
add_alias(Mc__Delta *d, Mc__Change__Op op, Mc__Alias *a)
{
	Mc__Change *c = delta_add(d, op);

	c->object_case = MC__CHANGE__OBJECT_ALIAS;
	c->alias = a;
}

/* A DELETE carries only the id. */
static void
del_account(Mc__Delta *d, uint64_t id)
{
	add_account(d, DELETE, mk_account(id, 0, "", "", "", 0));
}

static void
del_alias(Mc__Delta *d, uint64_t id)
{
	add_alias(d, DELETE, mk_alias(id, 0, "", "", ""));
}

static void
del_domain(Mc__Delta *d, uint64_t id)
{
	add_domain(d, DELETE, mk_domain(id, ""));
}

static void
delta_release(Mc__Delta *d)
{
	for (size_t i = 0; i < d->n_changes; i++) {
		Mc__Change *c = d->changes[i];

		if (c->object_case == MC__CHANGE__OBJECT_DOMAIN)
			domain_release(c->domain);
		else if (c->object_case == MC__CHANGE__OBJECT_ACCOUNT)
			account_release(c->account);
		else if (c->object_case == MC__CHANGE__OBJECT_ALIAS)
			alias_release(c->alias);
		free(c);
	}
	free(d->changes);
	free(d);
}

/* Apply and release; returns apply's result. */
static int
apply(struct mc_directory *dir, Mc__Delta *d)
{
	int ret = mc_directory_apply_delta(dir, d);

	delta_release(d);
	return ret;
}

/* The standard fixture at version 5:
 * example.com (1): alice (10), Bob (11); info -> alice (20)
 * example.org (2): carol (12); *@example.org -> Bob@example.com (21) */
static struct mc_directory *
fixture(void)
{
	struct mc_directory *dir = mc_directory_new();
	Mc__Snapshot *s = snap_new(5, 8);

	s->domains[s->n_domains++] = mk_domain(1, "example.com");
	s->domains[s->n_domains++] = mk_domain(2, "Example.ORG");
	s->accounts[s->n_accounts++] =
	        mk_account(10, 1, "alice", "example.com", "$argon2id$a", 3);
	s->accounts[s->n_accounts++] =
	        mk_account(11, 1, "Bob", "example.com", "$argon2id$b", 4);
	s->accounts[s->n_accounts++] =
	        mk_account(12, 2, "carol", "example.org", "", 5);
	s->aliases[s->n_aliases++] =
	        mk_alias(20, 1, "info", "example.com", "alice@example.com");
	s->aliases[s->n_aliases++] =
	        mk_alias(21, 2, "*", "example.org", "Bob@example.com");
	mc_directory_load_snapshot(dir, s);
	snap_release(s);
	return dir;
}

static uint64_t
account_id(const struct mc_directory *dir, const char *address)
{
	const struct mc_dir_account *a = mc_directory_account(dir, address);

	return a != NULL ? a->id : 0;
}

static uint64_t
alias_id(const struct mc_directory *dir, const char *address)
{
	const struct mc_dir_alias *a = mc_directory_alias(dir, address);

	return a != NULL ? a->id : 0;
}

/* ---- tests ---- */

static void
test_snapshot_lookups(void)
{
	struct mc_directory *dir = fixture();
	const struct mc_dir_account *a;
	const struct mc_dir_alias *al;
	char longaddr[400];
	Mc__Snapshot *s;

	CHECK(mc_directory_version(dir) == 5);
	CHECK(mc_directory_shard_count(dir) == 64);
	CHECK(mc_directory_domain_count(dir) == 2);
	CHECK(mc_directory_account_count(dir) == 3);
	CHECK(mc_directory_alias_count(dir) == 2);
	CHECK(mc_directory_has_domain(dir, "example.com"));
	CHECK(mc_directory_has_domain(dir, "EXAMPLE.org"));
	CHECK(!mc_directory_has_domain(dir, "example.net"));
	CHECK(!mc_directory_has_domain(dir, ""));

	a = mc_directory_account(dir, "ALICE@Example.COM");
	CHECK(a != NULL && a->id == 10 && a->domain_id == 1 && a->shard == 3 &&
	      a->quota_bytes == 10000);
	if (a != NULL) {
		CHECK_STR(a->address, "alice@example.com");
		CHECK_STR(a->password_hash, "$argon2id$a");
		CHECK_STR(a->scram_sha256, "SCRAM-SHA-256$a");
	}
	a = mc_directory_account(dir, "bob@example.com");
	CHECK(a != NULL && a->id == 11);
	if (a != NULL)
		CHECK_STR(a->address, "Bob@example.com"); /* as created */
	a = mc_directory_account(dir, "carol@example.org");
	CHECK(a != NULL && a->password_hash != NULL && a->password_hash[0] == 0);
	CHECK(a != NULL && a->scram_sha256 != NULL && a->scram_sha256[0] == 0);
	CHECK(mc_directory_account(dir, "info@example.com") == NULL);
	CHECK(mc_directory_account(dir, "nobody@example.com") == NULL);
	CHECK(mc_directory_account(dir, "alice") == NULL);

	/* Logins: a full address, or a local part naming one account. */
	{
		bool amb = true;

		a = mc_directory_login(dir, "ALICE", &amb);
		CHECK(a != NULL && a->id == 10 && !amb);
		a = mc_directory_login(dir, "bob", &amb);
		CHECK(a != NULL && a->id == 11);
		a = mc_directory_login(dir, "carol@EXAMPLE.org", &amb);
		CHECK(a != NULL && a->id == 12 && !amb);
		CHECK(mc_directory_login(dir, "ali", &amb) == NULL && !amb);
		CHECK(mc_directory_login(dir, "nobody", &amb) == NULL && !amb);
		CHECK(mc_directory_login(dir, "", &amb) == NULL);
	}

	al = mc_directory_alias(dir, "Info@example.com");
	CHECK(al != NULL && al->id == 20 && al->destination_count == 1);
	if (al != NULL)
		CHECK_STR(al->destinations[0], "alice@example.com");
	CHECK(alias_id(dir, "*@EXAMPLE.ORG") == 21);
	CHECK(mc_directory_alias(dir, "alice@example.com") == NULL);

	memset(longaddr, 'a', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = '\0';
	CHECK(mc_directory_account(dir, longaddr) == NULL);
	CHECK(!mc_directory_has_domain(dir, longaddr));

	/* A second snapshot replaces everything. */
	s = snap_new(9, 4);
	s->domains[s->n_domains++] = mk_domain(3, "other.test");
	s->accounts[s->n_accounts++] =
	        mk_account(40, 3, "dave", "other.test", "", 0);
	mc_directory_load_snapshot(dir, s);
	snap_release(s);
	CHECK(mc_directory_version(dir) == 9);
	CHECK(mc_directory_domain_count(dir) == 1);
	CHECK(mc_directory_account_count(dir) == 1);
	CHECK(mc_directory_alias_count(dir) == 0);
	CHECK(!mc_directory_has_domain(dir, "example.com"));
	CHECK(account_id(dir, "alice@example.com") == 0);
	CHECK(account_id(dir, "dave@other.test") == 40);
	{
		bool amb = false;

		s = snap_new(10, 4);
		s->domains[s->n_domains++] = mk_domain(3, "other.test");
		s->domains[s->n_domains++] = mk_domain(4, "two.test");
		s->accounts[s->n_accounts++] = mk_account(40, 3, "dave", "other.test", "", 0);
		s->accounts[s->n_accounts++] = mk_account(41, 4, "Dave", "two.test", "", 0);
		mc_directory_load_snapshot(dir, s);
		snap_release(s);
		CHECK(mc_directory_login(dir, "dave", &amb) == NULL && amb);
		CHECK(mc_directory_login(dir, "dave@two.test", &amb) != NULL && !amb);
	}
	mc_directory_free(&dir);
	CHECK(dir == NULL);
	mc_directory_free(&dir); /* NULL-safe */
}

static void
test_delta_versions(void)
{
	struct mc_directory *dir = fixture();
	Mc__Delta *d;

	/* old news */
	d = delta_new(3, 5);
	del_account(d, 10);
	CHECK(apply(dir, d) == 0);
	CHECK(account_id(dir, "alice@example.com") == 10);
	d = delta_new(4, 4);
	del_account(d, 10);
	CHECK(apply(dir, d) == 0);

	/* gap: nothing changes */
	d = delta_new(6, 7);
	del_account(d, 10);
	add_domain(d, UPSERT, mk_domain(3, "new.test"));
	CHECK(apply(dir, d) == -1);
	CHECK(mc_directory_version(dir) == 5);
	CHECK(account_id(dir, "alice@example.com") == 10);
	CHECK(!mc_directory_has_domain(dir, "new.test"));

	/* an overlapping delta (from <= v < to) applies */
	d = delta_new(4, 6);
	add_domain(d, UPSERT, mk_domain(3, "new.test"));
	CHECK(apply(dir, d) == 1);
	CHECK(mc_directory_version(dir) == 6);
	CHECK(mc_directory_has_domain(dir, "new.test"));

	/* an empty delta still moves the version */
	d = delta_new(6, 7);
	CHECK(apply(dir, d) == 1);
	CHECK(mc_directory_version(dir) == 7);
	mc_directory_free(&dir);
}

static void
test_delta_changes(void)
{
	struct mc_directory *dir = fixture();
	const struct mc_dir_account *a;
	Mc__Delta *d;

	/* upsert of each kind, delete of account and alias */
	d = delta_new(5, 6);
	add_alias(d, UPSERT, mk_alias(22, 3, "sales", "new.test",
	                              "dave@new.test,alice@example.com"));
	add_account(d, UPSERT, mk_account(13, 3, "dave", "new.test", "h", 7));
	add_domain(d, UPSERT, mk_domain(3, "new.test"));
	del_account(d, 11);
	del_alias(d, 20);
	CHECK(apply(dir, d) == 1);
	CHECK(mc_directory_version(dir) == 6);
	CHECK(mc_directory_domain_count(dir) == 3);
	CHECK(mc_directory_account_count(dir) == 3);
	CHECK(mc_directory_alias_count(dir) == 2);
	CHECK(account_id(dir, "dave@new.test") == 13);
	CHECK(account_id(dir, "bob@example.com") == 0);
	CHECK(alias_id(dir, "info@example.com") == 0);
	CHECK(alias_id(dir, "sales@new.test") == 22);

	/* update in place: same id, new attributes */
	d = delta_new(6, 7);
	add_account(d, UPSERT, mk_account(10, 1, "alice", "example.com",
	                                  "$argon2id$new", 9));
	CHECK(apply(dir, d) == 1);
	a = mc_directory_account(dir, "alice@example.com");
	CHECK(a != NULL && a->id == 10 && a->shard == 9);
	if (a != NULL)
		CHECK_STR(a->password_hash, "$argon2id$new");
	if (a != NULL)
		CHECK_STR(a->scram_sha256, "SCRAM-SHA-256$new");
	CHECK(mc_directory_account_count(dir) == 3);

	/* same id, new address: the old address no longer resolves */
	d = delta_new(7, 8);
	add_account(d, UPSERT, mk_account(10, 1, "alicia", "example.com", "", 9));
	CHECK(apply(dir, d) == 1);
	CHECK(account_id(dir, "alice@example.com") == 0);
	CHECK(account_id(dir, "alicia@example.com") == 10);
	CHECK(mc_directory_account_count(dir) == 3);

	/* deleting a domain takes its accounts and aliases; the explicit
	 * deletes that follow (and deletes of unknown ids) are harmless */
	d = delta_new(8, 9);
	del_domain(d, 3);
	CHECK(apply(dir, d) == 1);
	CHECK(!mc_directory_has_domain(dir, "new.test"));
	CHECK(account_id(dir, "dave@new.test") == 0);
	CHECK(alias_id(dir, "sales@new.test") == 0);
	CHECK(mc_directory_domain_count(dir) == 2);
	CHECK(mc_directory_account_count(dir) == 2);
	CHECK(mc_directory_alias_count(dir) == 1);
	d = delta_new(9, 10);
	del_account(d, 13);
	del_alias(d, 22);
	del_domain(d, 3);
	del_account(d, 999);
	CHECK(apply(dir, d) == 1);
	CHECK(mc_directory_account_count(dir) == 2);
	CHECK(account_id(dir, "alicia@example.com") == 10);

	/* a change with no object set is skipped */
	d = delta_new(10, 11);
	delta_add(d, UPSERT);
	delta_add(d, DELETE);
	CHECK(apply(dir, d) == 1);
	CHECK(mc_directory_account_count(dir) == 2);
	mc_directory_free(&dir);
}

static void
test_recreate(void)
{
	struct mc_directory *dir = fixture();
	Mc__Delta *d;

	/* one delta: the upsert is listed first, the delete still goes
	 * first, and the new id wins */
	d = delta_new(5, 6);
	add_account(d, UPSERT, mk_account(30, 1, "alice", "example.com", "", 1));
	del_account(d, 10);
	CHECK(apply(dir, d) == 1);
	CHECK(account_id(dir, "alice@example.com") == 30);
	CHECK(mc_directory_account_count(dir) == 3);

	/* across deltas */
	d = delta_new(6, 7);
	del_account(d, 30);
	CHECK(apply(dir, d) == 1);
	CHECK(account_id(dir, "alice@example.com") == 0);
	d = delta_new(7, 8);
	add_account(d, UPSERT, mk_account(31, 1, "alice", "example.com", "", 1));
	CHECK(apply(dir, d) == 1);
	CHECK(account_id(dir, "alice@example.com") == 31);

	/* an upsert whose name another id holds replaces it (any case) */
	d = delta_new(8, 9);
	add_account(d, UPSERT, mk_account(32, 1, "ALICE", "example.com", "", 1));
	CHECK(apply(dir, d) == 1);
	CHECK(account_id(dir, "alice@example.com") == 32);
	CHECK(mc_directory_account_count(dir) == 3);
	/* and a late delete of the replaced id does not touch the new one */
	d = delta_new(9, 10);
	del_account(d, 31);
	CHECK(apply(dir, d) == 1);
	CHECK(account_id(dir, "alice@example.com") == 32);

	/* aliases too */
	d = delta_new(10, 11);
	add_alias(d, UPSERT, mk_alias(40, 1, "info", "example.com",
	                              "Bob@example.com"));
	CHECK(apply(dir, d) == 1);
	CHECK(alias_id(dir, "info@example.com") == 40);
	CHECK(mc_directory_alias_count(dir) == 2);

	/* a domain recreated under its name takes the old one's objects */
	d = delta_new(11, 12);
	add_domain(d, UPSERT, mk_domain(50, "EXAMPLE.com"));
	add_account(d, UPSERT, mk_account(51, 50, "alice", "example.com", "", 2));
	CHECK(apply(dir, d) == 1);
	CHECK(mc_directory_has_domain(dir, "example.com"));
	CHECK(mc_directory_domain_count(dir) == 2);
	CHECK(account_id(dir, "alice@example.com") == 51);
	CHECK(account_id(dir, "bob@example.com") == 0);
	CHECK(alias_id(dir, "info@example.com") == 0);
	CHECK(account_id(dir, "carol@example.org") == 12);
	CHECK(mc_directory_account_count(dir) == 2);
	CHECK(mc_directory_alias_count(dir) == 1);
	mc_directory_free(&dir);
}

struct resolved {
	size_t n, nf;
	const struct mc_dir_account *acc[8];
	const char *foreign[8];
};

static struct resolved
resolve(const struct mc_directory *dir, const char *address)
{
	struct resolved r;

	memset(&r, 0, sizeof(r));
	r.n = mc_directory_resolve(dir, address, r.acc, 8, r.foreign, 8, &r.nf);
	return r;
}

static bool
has_account(const struct resolved *r, uint64_t id)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->acc[i]->id == id)
			return true;
	return false;
}

static void
test_resolve(void)
{
	struct mc_directory *dir = fixture();
	const struct mc_dir_account *acc[2];
	const char *foreign[1];
	struct resolved r;
	size_t nf = 99;
	char name[32], dest[32];
	Mc__Delta *d = delta_new(5, 6);

	add_alias(d, UPSERT, mk_alias(30, 1, "chain1", "example.com",
	                              "chain2@example.com"));
	add_alias(d, UPSERT, mk_alias(31, 1, "chain2", "example.com",
	                              "Chain3@Example.com"));
	add_alias(d, UPSERT, mk_alias(32, 1, "chain3", "example.com",
	                              "bob@example.com"));
	add_alias(d, UPSERT, mk_alias(33, 1, "loop1", "example.com",
	                              "loop2@example.com"));
	add_alias(d, UPSERT, mk_alias(34, 1, "loop2", "example.com",
	                              "loop1@example.com,alice@example.com"));
	add_alias(d, UPSERT, mk_alias(35, 1, "dups", "example.com",
	                              "alice@example.com,ALICE@example.com,"
	                              "info@example.com,bob@example.com"));
	add_alias(d, UPSERT, mk_alias(36, 1, "fwd", "example.com",
	                              "x@gmail.com,Y@Other.net,X@GMAIL.com,"
	                              "alice@example.com,ghost@example.com"));
	add_alias(d, UPSERT, mk_alias(37, 1, "away", "example.com",
	                              "x@gmail.com"));
	add_alias(d, UPSERT, mk_alias(38, 2, "carol", "example.org",
	                              "alice@example.com"));
	add_alias(d, UPSERT, mk_alias(39, 1, "via-catchall", "example.com",
	                              "someone@example.org"));
	add_alias(d, UPSERT, mk_alias(40, 1, "self", "example.com",
	                              "self@example.com"));
	/* depth: d1 -> d2 -> ... -> d9 -> alice */
	for (int i = 1; i <= 9; i++) {
		snprintf(name, sizeof(name), "d%d", i);
		snprintf(dest, sizeof(dest), i < 9 ? "d%d@example.com"
		                                   : "alice@example.com",
		         i + 1);
		add_alias(d, UPSERT, mk_alias(100 + (uint64_t)i, 1, name,
		                              "example.com", dest));
	}
	CHECK(apply(dir, d) == 1);

	r = resolve(dir, "alice@example.com");
	CHECK(r.n == 1 && r.acc[0]->id == 10 && r.nf == 0);
	r = resolve(dir, "ALICE@EXAMPLE.COM");
	CHECK(r.n == 1 && r.acc[0]->id == 10);
	r = resolve(dir, "info@example.com");
	CHECK(r.n == 1 && r.acc[0]->id == 10);
	r = resolve(dir, "CHAIN1@example.com");
	CHECK(r.n == 1 && r.acc[0]->id == 11);
	r = resolve(dir, "loop1@example.com");
	CHECK(r.n == 1 && r.acc[0]->id == 10);
	r = resolve(dir, "self@example.com");
	CHECK(r.n == 0 && r.nf == 0);
	r = resolve(dir, "dups@example.com");
	CHECK(r.n == 2 && has_account(&r, 10) && has_account(&r, 11));
	/* foreign destinations, deduplicated case-insensitively; a local
	 * address that matches nothing delivers nowhere */
	r = resolve(dir, "fwd@example.com");
	CHECK(r.n == 1 && r.acc[0]->id == 10 && r.nf == 2);
	if (r.nf == 2) {
		CHECK_STR(r.foreign[0], "x@gmail.com");
		CHECK_STR(r.foreign[1], "Y@Other.net");
	}
	r = resolve(dir, "away@example.com");
	CHECK(r.n == 0 && r.nf == 1);
	/* catch-all only when nothing matches exactly */
	r = resolve(dir, "whoever@Example.org");
	CHECK(r.n == 1 && r.acc[0]->id == 11);
	r = resolve(dir, "carol@example.org");
	CHECK(r.n == 1 && r.acc[0]->id == 12); /* the account, not the alias */
	r = resolve(dir, "via-catchall@example.com");
	CHECK(r.n == 1 && r.acc[0]->id == 11);
	r = resolve(dir, "nobody@example.com");
	CHECK(r.n == 0 && r.nf == 0);
	/* a foreign recipient is not ours, and is not reported as foreign */
	r = resolve(dir, "alice@gmail.com");
	CHECK(r.n == 0 && r.nf == 0);
	r = resolve(dir, "no-at-sign");
	CHECK(r.n == 0 && r.nf == 0);
	/* depth: d2 is 8 alias levels from alice, d1 is 9 */
	r = resolve(dir, "d2@example.com");
	CHECK(r.n == 1 && r.acc[0]->id == 10);
	r = resolve(dir, "d1@example.com");
	CHECK(r.n == 0);
	/* the arrays are never overrun */
	CHECK(mc_directory_resolve(dir, "dups@example.com", acc, 1, foreign, 1,
	                           &nf) == 1);
	CHECK(nf == 0);
	CHECK(mc_directory_resolve(dir, "fwd@example.com", acc, 2, foreign, 1,
	                           &nf) == 1);
	CHECK(nf == 1);
	CHECK(mc_directory_resolve(dir, "alice@example.com", acc, 0, foreign, 0,
	                           &nf) == 0);
	mc_directory_free(&dir);
}

static void
test_catchall_loop(void)
{
	struct mc_directory *dir = fixture();
	struct resolved r;
	Mc__Delta *d = delta_new(5, 6);

	/* the catch-all points at an unknown local address, which falls back
	 * to the catch-all again: cut, no result */
	add_alias(d, UPSERT, mk_alias(21, 2, "*", "example.org",
	                              "nobody@example.org"));
	CHECK(apply(dir, d) == 1);
	r = resolve(dir, "x@example.org");
	CHECK(r.n == 0 && r.nf == 0);
	mc_directory_free(&dir);
}

/* ---- persistence ---- */

static char tmpdir[] = "/tmp/mc_directory_test.XXXXXX";

/* A path in tmpdir; a ring of buffers so a few can be held at once. */
static const char *
tmp_path(const char *name)
{
	static char ring[4][256];
	static unsigned next;
	char *buf = ring[next++ % 4];

	snprintf(buf, sizeof(ring[0]), "%s/%s", tmpdir, name);
	return buf;
}

static bool
snapshots_equal(const struct mc_directory *a, const struct mc_directory *b)
{
	Mc__Snapshot *sa = mc_directory_to_snapshot(a);
	Mc__Snapshot *sb = mc_directory_to_snapshot(b);
	size_t la = mc__snapshot__get_packed_size(sa);
	size_t lb = mc__snapshot__get_packed_size(sb);
	uint8_t *pa = malloc(la + 1), *pb = malloc(lb + 1);
	bool eq;

	mc__snapshot__pack(sa, pa);
	mc__snapshot__pack(sb, pb);
	eq = la == lb && memcmp(pa, pb, la) == 0;
	free(pa);
	free(pb);
	mc_directory_snapshot_free(&sa);
	mc_directory_snapshot_free(&sb);
	return eq;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 16);

	if (f != NULL) {
		size_t n = fread(buf, 1, (1 << 16) - 1, f);

		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

static void
spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

static void
test_save_load(void)
{
	struct mc_directory *dir = fixture(), *back = mc_directory_new();
	const char *path = tmp_path("directory.json"), *err = NULL;
	Mc__Snapshot *snap;
	struct stat st;
	char *text;

	/* a stale, too-open tmp file must not leak its mode */
	spit(tmp_path("directory.json.tmp"), "junk");
	chmod(tmp_path("directory.json.tmp"), 0644);
	CHECK(mc_directory_save(dir, path, &err) == 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(access(tmp_path("directory.json.tmp"), F_OK) == -1);

	text = slurp(path);
	CHECK(strstr(text, "\"password_hash\":\"$argon2id$a\"") != NULL);
	CHECK(strstr(text, "\"scram_sha256\":\"SCRAM-SHA-256$a\"") != NULL);
	CHECK(strstr(text, "\"address\":\"carol@example.org\"") != NULL);
	/* carol has no hash: no key at all (as on a relay) */
	CHECK(strstr(text, "\"address\":\"carol@example.org\",\"password_hash\"") ==
	      NULL);
	CHECK(strstr(text, "\"address\":\"carol@example.org\",\"scram_sha256\"") ==
	      NULL);
	CHECK(strstr(text, "\"address\":\"carol@example.org\",\"shard\"") != NULL);
	CHECK(strstr(text, "\"address\":\"*@example.org\"") != NULL);
	free(text);

	CHECK(mc_directory_load(back, path, &err) == 0);
	CHECK(mc_directory_version(back) == 5);
	CHECK(mc_directory_shard_count(back) == 64);
	CHECK(snapshots_equal(dir, back));
	CHECK(account_id(back, "BOB@example.com") == 11);
	snap = mc_directory_to_snapshot(back);
	CHECK(snap->n_domains == 2 && snap->domains[0]->created_at == 1700000001);
	CHECK(snap->n_accounts == 3 && snap->accounts[2]->password_hash[0] == 0);
	CHECK(snap->n_accounts == 3 && snap->accounts[2]->scram_sha256[0] == 0);
	CHECK(snap->n_accounts == 3 &&
	      strcmp(snap->accounts[0]->scram_sha256, "SCRAM-SHA-256$a") == 0);
	mc_directory_snapshot_free(&snap);
	CHECK(snap == NULL);

	/* Files from before SCRAM: accounts without "scram_sha256" load,
	 * with none. */
	spit(path, "{\"version\":2,\"shard_count\":64,\"domains\":[{\"id\":1,"
	           "\"name\":\"b.c\",\"created_at\":0}],\"accounts\":[{\"id\":1,"
	           "\"domain_id\":1,\"address\":\"a@b.c\",\"password_hash\":"
	           "\"$argon2id$old\",\"shard\":0,\"quota_bytes\":0}],"
	           "\"aliases\":[]}");
	{
		struct mc_directory *old = mc_directory_new();
		const struct mc_dir_account *a;

		CHECK(mc_directory_load(old, path, &err) == 0);
		a = mc_directory_account(old, "a@b.c");
		CHECK(a != NULL && strcmp(a->password_hash, "$argon2id$old") == 0 &&
		      a->scram_sha256 != NULL && a->scram_sha256[0] == '\0');
		mc_directory_free(&old);
	}

	/* save again over an existing file, through a relative-free path */
	CHECK(mc_directory_save(back, path, &err) == 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	/* errors */
	errno = 0;
	CHECK(mc_directory_load(back, tmp_path("missing.json"), &err) == -1);
	CHECK(errno == ENOENT);
	CHECK(err != NULL && strstr(err, "missing.json") != NULL);
	CHECK(mc_directory_save(dir, tmp_path("no/such/dir.json"), &err) == -1);
	CHECK(err != NULL && strstr(err, "no/such") != NULL);
	CHECK(snapshots_equal(dir, back));
	mc_directory_free(&dir);
	mc_directory_free(&back);
}

/* Shard owners: from a snapshot, replaced by deltas, never deleted,
 * persisted, and bounded whatever a peer sends. */
static void
test_shards(void)
{
	struct mc_directory *dir = fixture(), *back = mc_directory_new();
	Mc__ShardOwner o1 = MC__SHARD_OWNER__INIT, o2 = MC__SHARD_OWNER__INIT,
	               bad = MC__SHARD_OWNER__INIT;
	Mc__Change c1 = MC__CHANGE__INIT, c2 = MC__CHANGE__INIT, c3 = MC__CHANGE__INIT;
	Mc__Change *cs[3] = {&c1, &c2, &c3};
	Mc__Delta d = MC__DELTA__INIT;
	const struct mc_dir_shard *sh;
	const char *path = tmp_path("shards.json"), *err = NULL;

	CHECK(mc_directory_shard(dir, 3) == NULL);
	o1.shard = 3;
	o1.node_id = 7;
	o1.node_name = "node-1";
	o1.epoch = 1;
	o1.lmtp_address = "127.0.0.1:2400";
	o2 = o1;
	o2.node_id = 8;
	o2.node_name = "node-2";
	o2.epoch = 2;
	o2.lmtp_address = "[::1]:2401";
	bad = o1;
	bad.shard = MC_DIRECTORY_MAX_SHARDS; /* hostile: ignored */
	c1.object_case = c2.object_case = c3.object_case = MC__CHANGE__OBJECT_SHARD;
	c1.shard = &o1;
	c2.shard = &o2; /* same shard, later in the delta: wins */
	c3.shard = &bad;
	d.from_version = 5;
	d.to_version = 6;
	d.changes = cs;
	d.n_changes = 3;
	CHECK(mc_directory_apply_delta(dir, &d) == 1);
	sh = mc_directory_shard(dir, 3);
	CHECK(sh != NULL && sh->node_id == 8 && sh->epoch == 2);
	CHECK_STR(sh ? sh->lmtp_address : NULL, "[::1]:2401");
	CHECK_STR(sh ? sh->node_name : NULL, "node-2");
	CHECK(mc_directory_shard_owner_count(dir) == 1);
	/* A DELETE of a shard is not a thing: the owner stays. */
	c1.op = MC__CHANGE__OP__DELETE;
	d.from_version = 6;
	d.to_version = 7;
	d.n_changes = 1;
	CHECK(mc_directory_apply_delta(dir, &d) == 1);
	CHECK(mc_directory_shard(dir, 3) != NULL);

	CHECK(mc_directory_save(dir, path, &err) == 0);
	CHECK(mc_directory_load(back, path, &err) == 0);
	CHECK(snapshots_equal(dir, back));
	sh = mc_directory_shard(back, 3);
	CHECK(sh != NULL && sh->node_id == 8 && sh->epoch == 2);
	/* Files from before leases have no "shards": still loadable. */
	spit(path, "{\"version\":1,\"shard_count\":64,\"domains\":[],"
	           "\"accounts\":[],\"aliases\":[]}");
	CHECK(mc_directory_load(back, path, &err) == 0);
	CHECK(mc_directory_shard_owner_count(back) == 0);
	spit(path, "{\"version\":1,\"shard_count\":64,\"domains\":[],"
	           "\"accounts\":[],\"aliases\":[],\"shards\":[{\"shard\":70000,"
	           "\"node_id\":1,\"epoch\":1,\"node_name\":\"n\",\"lmtp_address\":\"\"}]}");
	CHECK(mc_directory_load(back, path, &err) == -1);
	unlink(path);
	mc_directory_free(&dir);
	mc_directory_free(&back);
}

static void
test_load_malformed(void)
{
	static const char *const bad[] = {
		"",
		"not json",
		"{\"version\":1,",
		"[]",
		"{}",
		"{\"version\":\"1\",\"shard_count\":64,\"domains\":[],"
		"\"accounts\":[],\"aliases\":[]}",
		"{\"version\":-1,\"shard_count\":64,\"domains\":[],"
		"\"accounts\":[],\"aliases\":[]}",
		"{\"version\":1.5,\"shard_count\":64,\"domains\":[],"
		"\"accounts\":[],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":4294967296,\"domains\":[],"
		"\"accounts\":[],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":{},"
		"\"accounts\":[],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[],"
		"\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[1],"
		"\"accounts\":[],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[{\"id\":1,"
		"\"name\":\"a.b\"}],\"accounts\":[],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[{\"id\":1,"
		"\"name\":7,\"created_at\":0}],\"accounts\":[],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[],\"accounts\":"
		"[{\"id\":1,\"domain_id\":1,\"shard\":0,\"quota_bytes\":0}],"
		"\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[],\"accounts\":"
		"[{\"id\":1,\"domain_id\":1,\"address\":\"noat\",\"shard\":0,"
		"\"quota_bytes\":0}],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[],\"accounts\":"
		"[{\"id\":1,\"domain_id\":1,\"address\":\"a@b.c\",\"shard\":0,"
		"\"quota_bytes\":0,\"password_hash\":5}],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[],\"accounts\":"
		"[{\"id\":1,\"domain_id\":1,\"address\":\"a@b.c\",\"shard\":0,"
		"\"quota_bytes\":0,\"scram_sha256\":[]}],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[],\"accounts\":"
		"[{\"id\":1,\"domain_id\":1,\"address\":\"a@b.c\",\"shard\":"
		"4294967296,\"quota_bytes\":0}],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[],\"accounts\":"
		"[{\"id\":1,\"domain_id\":1,\"address\":\"a\\u0000x@b.c\","
		"\"shard\":0,\"quota_bytes\":0}],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[],\"accounts\":[],"
		"\"aliases\":[{\"id\":1,\"domain_id\":1,\"address\":\"a@b.c\"}]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[],\"accounts\":[],"
		"\"aliases\":[{\"id\":1,\"domain_id\":1,\"address\":\"a@b.c\","
		"\"destinations\":[\"x@y.z\",3]}]}",
		"{\"version\":1,\"version\":2,\"shard_count\":64,\"domains\":[],"
		"\"accounts\":[],\"aliases\":[]}",
		"{\"version\":1,\"shard_count\":64,\"domains\":[],"
		"\"accounts\":[],\"aliases\":[]} trailing",
	};
	struct mc_directory *dir = fixture(), *ref = fixture();
	const char *path = tmp_path("bad.json");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *err = NULL;

		spit(path, bad[i]);
		CHECK(mc_directory_load(dir, path, &err) == -1);
		CHECK(err != NULL && strstr(err, "bad.json") != NULL);
		if (err == NULL || strstr(err, "bad.json") == NULL)
			fprintf(stderr, "case %zu: %s\n", i, err ? err : "-");
	}
	CHECK(snapshots_equal(dir, ref));
	CHECK(account_id(dir, "alice@example.com") == 10);

	/* the minimal valid file (what a relay at version 0 could hold) */
	spit(path, "{\"version\":0,\"shard_count\":0,\"domains\":[],"
	           "\"accounts\":[],\"aliases\":[],\"future_key\":true}");
	{
		const char *err = NULL;

		CHECK(mc_directory_load(dir, path, &err) == 0);
		CHECK(mc_directory_account_count(dir) == 0);
	}
	mc_directory_free(&dir);
	mc_directory_free(&ref);
}

/* ---- scale ---- */

#define BIG_ACCOUNTS 100000
#define BIG_DOMAINS 10

static void
test_large(void)
{
	struct mc_directory *dir = mc_directory_new(), *back = mc_directory_new();
	Mc__Snapshot *s = snap_new(42, BIG_ACCOUNTS);
	const char *path = tmp_path("big.json"), *err = NULL;
	char local[32], domain[32], addr[64];
	size_t ok = 0, i;
	Mc__Delta *d;
	struct resolved r;

	for (i = 0; i < BIG_DOMAINS; i++) {
		snprintf(domain, sizeof(domain), "d%zu.example", i);
		s->domains[s->n_domains++] = mk_domain(i + 1, domain);
	}
	for (i = 0; i < BIG_ACCOUNTS; i++) {
		snprintf(local, sizeof(local), "user%zu", i);
		snprintf(domain, sizeof(domain), "d%zu.example", i % BIG_DOMAINS);
		s->accounts[s->n_accounts++] =
		        mk_account(1000 + i, i % BIG_DOMAINS + 1, local, domain,
		                   "", (uint32_t)(i % 64));
	}
	s->aliases[s->n_aliases++] = mk_alias(
	        7, 1, "*", "d0.example", "user1@d1.example,user99999@D9.example");
	mc_directory_load_snapshot(dir, s);
	snap_release(s);
	CHECK(mc_directory_account_count(dir) == BIG_ACCOUNTS);

	for (i = 0; i < BIG_ACCOUNTS; i++) {
		const struct mc_dir_account *acc;

		snprintf(addr, sizeof(addr), "USER%zu@d%zu.example", i,
		         i % BIG_DOMAINS);
		acc = NULL;
		if (mc_directory_resolve(dir, addr, &acc, 1, NULL, 0,
		                         &r.nf) == 1 &&
		    acc->id == 1000 + i)
			ok++;
	}
	CHECK(ok == BIG_ACCOUNTS);
	r = resolve(dir, "unknown@d0.example");
	CHECK(r.n == 2 && has_account(&r, 1001) && has_account(&r, 1000 + 99999));

	/* delete one domain (a tenth of the accounts) through a delta */
	d = delta_new(42, 43);
	del_domain(d, 10);
	CHECK(apply(dir, d) == 1);
	CHECK(mc_directory_account_count(dir) == BIG_ACCOUNTS - BIG_ACCOUNTS / 10);
	CHECK(account_id(dir, "user9@d9.example") == 0);
	CHECK(account_id(dir, "user8@d8.example") == 1008);

	CHECK(mc_directory_save(dir, path, &err) == 0);
	CHECK(mc_directory_load(back, path, &err) == 0);
	CHECK(snapshots_equal(dir, back));
	unlink(path);
	mc_directory_free(&dir);
	mc_directory_free(&back);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_snapshot_lookups();
	test_delta_versions();
	test_delta_changes();
	test_recreate();
	test_resolve();
	test_catchall_loop();
	test_save_load();
	test_shards();
	test_load_malformed();
	test_large();
	unlink(tmp_path("directory.json"));
	unlink(tmp_path("bad.json"));
	rmdir(tmpdir);
	return mc_test_done();
}
