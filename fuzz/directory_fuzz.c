/* Fuzz target: bytes from the publisher's socket as a node receives them.
 * The first byte picks the message type (Delta or Snapshot), the rest is
 * unpacked with protobuf-c and applied to a directory that already holds
 * a small domain; then a few lookups run. Nothing here may crash, leak or
 * read out of bounds, whatever the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"

static const char *const probes[] = {
	"a@x.test", "b@x.test", "nobody@x.test", "A@X.TEST", "x@y.test", "*@x.test",
};

static struct mc_directory *
seeded(void)
{
	struct mc_directory *dir = mc_directory_new();
	Mc__Snapshot s = MC__SNAPSHOT__INIT;
	Mc__Domain d = MC__DOMAIN__INIT, *dp = &d;
	Mc__Account a = MC__ACCOUNT__INIT, *ap = &a;
	Mc__Alias al = MC__ALIAS__INIT, *alp = &al;
	char *dest[] = {"a@x.test", "z@foreign.test"};

	d.id = 1;
	d.name = "x.test";
	a.id = 2;
	a.domain_id = 1;
	a.local_part = "a";
	a.domain = "x.test";
	al.id = 3;
	al.domain_id = 1;
	al.local_part = "b";
	al.domain = "x.test";
	al.destinations = dest;
	al.n_destinations = 2;
	s.version = 5;
	s.shard_count = 64;
	s.domains = &dp;
	s.n_domains = 1;
	s.accounts = &ap;
	s.n_accounts = 1;
	s.aliases = &alp;
	s.n_aliases = 1;
	mc_directory_load_snapshot(dir, &s);
	return dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_directory *dir;

	if (size < 1)
		return 0;
	dir = seeded();
	if (data[0] & 1) {
		Mc__Snapshot *s = mc__snapshot__unpack(NULL, size - 1, data + 1);

		if (s != NULL) {
			mc_directory_load_snapshot(dir, s);
			mc__snapshot__free_unpacked(s, NULL);
		}
	} else {
		Mc__Delta *d = mc__delta__unpack(NULL, size - 1, data + 1);

		if (d != NULL) {
			mc_directory_apply_delta(dir, d);
			mc__delta__free_unpacked(d, NULL);
		}
	}
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		const struct mc_dir_account *acc[8];
		const char *foreign[8];
		size_t nf;

		mc_directory_resolve(dir, probes[i], acc, 8, foreign, 8, &nf);
		mc_directory_has_domain(dir, "x.test");
	}
	mc_directory_free(&dir);
	return 0;
}

/* Seeds: a delta with every kind and op, and a snapshot. */
static uint8_t seed_buf[2][1024];
static const uint8_t *seed_ptrs[2];
static size_t seed_sizes[2];

size_t mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r);

size_t
mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r)
{
	Mc__Delta d = MC__DELTA__INIT;
	Mc__Change c[4] = {MC__CHANGE__INIT, MC__CHANGE__INIT, MC__CHANGE__INIT,
	                   MC__CHANGE__INIT};
	Mc__Change *cp[4] = {&c[0], &c[1], &c[2], &c[3]};
	Mc__Domain dom = MC__DOMAIN__INIT;
	Mc__Account acc = MC__ACCOUNT__INIT, del = MC__ACCOUNT__INIT;
	Mc__Alias al = MC__ALIAS__INIT;
	char *dest[] = {"a@x.test", "c@x.test"};
	Mc__Snapshot s = MC__SNAPSHOT__INIT;
	Mc__Domain *dp = &dom;
	Mc__Account *ap = &acc;
	Mc__Alias *alp = &al;

	dom.id = 1;
	dom.name = "x.test";
	del.id = 2;
	acc.id = 4;
	acc.domain_id = 1;
	acc.local_part = "c";
	acc.domain = "x.test";
	acc.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
	al.id = 5;
	al.domain_id = 1;
	al.local_part = "*";
	al.domain = "x.test";
	al.destinations = dest;
	al.n_destinations = 2;
	c[0].op = MC__CHANGE__OP__DELETE;
	c[0].object_case = MC__CHANGE__OBJECT_ACCOUNT;
	c[0].account = &del;
	c[1].object_case = MC__CHANGE__OBJECT_DOMAIN;
	c[1].domain = &dom;
	c[2].object_case = MC__CHANGE__OBJECT_ACCOUNT;
	c[2].account = &acc;
	c[3].object_case = MC__CHANGE__OBJECT_ALIAS;
	c[3].alias = &al;
	d.from_version = 5;
	d.to_version = 6;
	d.changes = cp;
	d.n_changes = 4;
	seed_buf[0][0] = 0;
	seed_sizes[0] = 1 + mc__delta__pack(&d, seed_buf[0] + 1);
	s.version = 9;
	s.shard_count = 64;
	s.domains = &dp;
	s.n_domains = 1;
	s.accounts = &ap;
	s.n_accounts = 1;
	s.aliases = &alp;
	s.n_aliases = 1;
	seed_buf[1][0] = 1;
	seed_sizes[1] = 1 + mc__snapshot__pack(&s, seed_buf[1] + 1);
	seed_ptrs[0] = seed_buf[0];
	seed_ptrs[1] = seed_buf[1];
	*seeds_r = seed_ptrs;
	*sizes_r = seed_sizes;
	return 2;
}
