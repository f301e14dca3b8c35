/* Internals of the directory shared by its files: the struct itself
 * (directory.c owns domains, accounts, aliases and shard owners;
 * directory_egress.c owns routes, route rules and DKIM keys) and the
 * hooks through which directory.c hands the egress objects their part of
 * loading, applying, cascading, exporting and freeing. Not a public API:
 * only lib/directory*.c include it. */
#ifndef MC_DIRECTORY_PRIVATE_H
#define MC_DIRECTORY_PRIVATE_H

#include "directory.h"
#include "hash.h"

struct mc_directory {
	uint64_t version;
	uint32_t shard_count;
	struct mc_hash *domains_by_id, *domains_by_name;
	struct mc_hash *accounts_by_id, *accounts_by_addr;
	struct mc_hash *aliases_by_id, *aliases_by_addr;
	struct mc_hash *shards; /* shard number -> struct dir_shard */
	/* directory_egress.c */
	struct mc_hash *routes_by_id, *routes_by_name;
	struct mc_hash *rules_by_id, *rules_by_domain;
	/* by id; by "selector._domainkey.domain"; by domain -> key set */
	struct mc_hash *dkim_by_id, *dkim_by_name, *dkim_by_domain;
};

/* directory.c helpers for the other files. */
const char *mc_directory_str(const char *s); /* NULL -> "" */
/* The domain name for an object: its denormalised name, or its
 * domain_id's when empty ("" when unknown). */
const char *mc_directory_domain_name(const struct mc_directory *dir,
                                     const char *domain, uint64_t domain_id);
/* The values of an id-first table sorted by id; free the array. */
void **mc_directory_sorted_values(const struct mc_hash *h, size_t *n_r);
/* free() a snapshot string unless it is protobuf-c's shared "". */
void mc_directory_free_str(char *s);
/* Wipe and free a snapshot string. */
void mc_directory_free_secret(char *s);

/* directory_egress.c, called by directory.c. */
void mc_directory_egress_init(struct mc_directory *dir);
void mc_directory_egress_clear(struct mc_directory *dir);
void mc_directory_egress_fini(struct mc_directory *dir);
/* Drop the DKIM keys of a domain that is being removed. */
void mc_directory_egress_domain_gone(struct mc_directory *dir,
                                     uint64_t domain_id);
/* Snapshot content (after the domains). */
void mc_directory_egress_load(struct mc_directory *dir,
                              const Mc__Snapshot *snap);
/* A DELETE of an egress kind: true when c was one (applied or absent). */
bool mc_directory_egress_delete(struct mc_directory *dir, const Mc__Change *c);
/* An UPSERT of an egress kind, if pass is the pass of its kind (passes
 * MC_DIRECTORY_EGRESS_PASS_FIRST.. after domains, accounts, aliases and
 * shard owners). */
#define MC_DIRECTORY_EGRESS_PASS_FIRST 4
#define MC_DIRECTORY_EGRESS_PASS_END 7
void mc_directory_egress_upsert(struct mc_directory *dir, const Mc__Change *c,
                                int pass);
/* Fill snap's routes, route_rules and dkim_keys (sorted by id). */
void mc_directory_egress_export(const struct mc_directory *dir,
                                Mc__Snapshot *snap);
/* Free what mc_directory_egress_export (or the JSON loader) put there. */
void mc_directory_egress_snapshot_free(Mc__Snapshot *snap);

#endif
