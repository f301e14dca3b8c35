/* The published directory as a daemon holds it in memory: domains,
 * accounts and aliases, shard owners, outbound routes and DKIM keys, kept
 * at one config version, with lookups for the mail services (is this a
 * local domain, which accounts does an address deliver to, which route
 * and keys does outbound mail take). Built from a Snapshot and advanced
 * by Deltas.
 *
 * Secrets (password hashes, SCRAM verifiers, DKIM private keys) are
 * wiped from memory when their object is freed.
 *
 * Objects are keyed by their immutable id; name indexes are kept beside.
 * Applying an UPSERT whose name is held by another id replaces that other
 * object (the controller deleted and recreated it), so a stale object can
 * never shadow the new one.
 *
 * Not thread-safe: owned and used by the daemon's loop thread. */
#ifndef MC_DIRECTORY_H
#define MC_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mc.pb-c.h"

struct mc_directory;

/* Read-only views handed to callers; valid until the next load/apply/free. */
struct mc_dir_account {
	uint64_t id;
	uint64_t domain_id;
	const char *address;       /* local@domain, as created */
	const char *password_hash; /* "" on relays */
	/* SCRAM-SHA-256 verifier (lib/scram.h); "" on relays and for
	 * accounts without one. */
	const char *scram_sha256;
	uint32_t shard;
	uint64_t quota_bytes;
};

struct mc_dir_alias {
	uint64_t id;
	uint64_t domain_id;
	const char *address;       /* local@domain or *@domain */
	const char *const *destinations;
	size_t destination_count;
};

/* Who owns a shard (from the controller's leases): where relays deliver. */
struct mc_dir_shard {
	uint32_t shard;
	uint64_t node_id;
	uint64_t epoch;
	const char *node_name;
	const char *lmtp_address; /* host:port, "" when the node has none */
};

/* Shard numbers are below this whatever a peer sends (the controller's
 * shard_count is at most 65536). */
#define MC_DIRECTORY_MAX_SHARDS 65536

/* Outbound routes, published to relays only (mailbox nodes hand every
 * outbound message to a relay). A route's AUTH secret is a reference: the
 * relay reads the environment variable or the file when it connects. */
enum mc_dir_route_kind { MC_DIR_ROUTE_SMARTHOST = 1, MC_DIR_ROUTE_MX = 2 };
enum mc_dir_route_tls {
	MC_DIR_ROUTE_TLS_NONE = 0,
	MC_DIR_ROUTE_TLS_STARTTLS = 1,
	MC_DIR_ROUTE_TLS_IMPLICIT = 2,
};

struct mc_dir_route {
	uint64_t id;
	const char *name;
	enum mc_dir_route_kind kind;
	const char *host;        /* smarthost: name or IP literal; "" for MX */
	uint16_t port;           /* smarthost port */
	enum mc_dir_route_tls tls;
	const char *auth_user;   /* "" = no AUTH */
	const char *secret_env;  /* "" or an environment variable name */
	const char *secret_file; /* "" or an absolute path on the relay */
};

/* DKIM keys of the cluster's domains. Private keys reach relays only:
 * private_pem is "" on mailbox nodes and for inactive keys. */
enum mc_dir_dkim_alg { MC_DIR_DKIM_RSA = 1, MC_DIR_DKIM_ED25519 = 2 };

struct mc_dir_dkim_key {
	uint64_t id;
	const char *domain, *selector; /* lower-case */
	enum mc_dir_dkim_alg alg;
	const char *private_pem; /* "" except on relays */
	const char *public_b64;
	bool active;
};

/* Field rules shared by the controller (which enforces them), mailctl
 * (which checks before sending anything) and the directory.json loader.
 * - route name: 1..64 of a-z 0-9 . - _, starting with a letter or digit;
 * - route host: an IPv4 or IPv6 literal (no brackets), or a host name of
 *   one or more labels of letters, digits and '-' (not at either end),
 *   at most 253 characters;
 * - environment variable name: [A-Za-z_][A-Za-z0-9_]*, at most 128;
 * - secret file: an absolute path of printable ASCII without spaces, no
 *   "." or ".." component, at most 1024 characters;
 * - DKIM selector: dot-separated labels of letters, digits and '-' (not
 *   at either end of a label, RFC 6376 3.1), at most 63 characters. */
#define MC_DIR_ROUTE_NAME_MAX 64
#define MC_DIR_ENV_NAME_MAX 128
#define MC_DIR_SECRET_PATH_MAX 1024
#define MC_DIR_SELECTOR_MAX 63
bool mc_directory_route_name_valid(const char *name);
bool mc_directory_route_host_valid(const char *host);
bool mc_directory_env_name_valid(const char *name);
bool mc_directory_secret_path_valid(const char *path);
bool mc_directory_dkim_selector_valid(const char *selector);

struct mc_directory *mc_directory_new(void);
void mc_directory_free(struct mc_directory **dir);

uint64_t mc_directory_version(const struct mc_directory *dir);
uint32_t mc_directory_shard_count(const struct mc_directory *dir);
size_t mc_directory_domain_count(const struct mc_directory *dir);
size_t mc_directory_account_count(const struct mc_directory *dir);
size_t mc_directory_alias_count(const struct mc_directory *dir);
size_t mc_directory_shard_owner_count(const struct mc_directory *dir);
size_t mc_directory_route_count(const struct mc_directory *dir);
size_t mc_directory_route_rule_count(const struct mc_directory *dir);
size_t mc_directory_dkim_key_count(const struct mc_directory *dir);

/* Replace the whole content with snap (copied; snap stays the caller's). */
void mc_directory_load_snapshot(struct mc_directory *dir, const Mc__Snapshot *snap);

/* Apply a delta. Returns 1 when applied (version is now to_version),
 * 0 when it is old news (to_version <= version: ignored), -1 when there is
 * a gap (from_version > version): nothing is changed and the caller must
 * fetch a snapshot. Within a delta, DELETEs are applied before UPSERTs. */
int mc_directory_apply_delta(struct mc_directory *dir, const Mc__Delta *delta);

/* Lookups; address matching is case-insensitive. NULL when absent. */
bool mc_directory_has_domain(const struct mc_directory *dir, const char *domain);
const struct mc_dir_account *mc_directory_account(const struct mc_directory *dir,
                                                  const char *address);
/* The account a user logs in as: a full address, or a local part that
 * names exactly one account across all domains (case-insensitive). NULL
 * when none matches, or when the local part is ambiguous
 * (*ambiguous_r set). */
const struct mc_dir_account *mc_directory_login(const struct mc_directory *dir,
                                                const char *name,
                                                bool *ambiguous_r);
const struct mc_dir_alias *mc_directory_alias(const struct mc_directory *dir,
                                              const char *address);
/* The owner of shard, NULL when none is known. */
const struct mc_dir_shard *mc_directory_shard(const struct mc_directory *dir,
                                              uint32_t shard);

/* The route for mail to domain: its rule's route, else the default
 * route, else NULL (deliver directly to the domain's MX). Matching is
 * exact and case-insensitive: a rule for example.org does not cover
 * sub.example.org. */
const struct mc_dir_route *mc_directory_route_for(const struct mc_directory *dir,
                                                  const char *domain);
/* The route named name (case-insensitive), NULL when absent. */
const struct mc_dir_route *mc_directory_route(const struct mc_directory *dir,
                                              const char *name);

/* The active keys of domain (at most max, RSA and Ed25519 both when
 * present); returns the count. At most one key per algorithm, the newest
 * active one, RSA first. Case-insensitive. */
size_t mc_directory_dkim_keys(const struct mc_directory *dir, const char *domain,
                              const struct mc_dir_dkim_key **keys_r, size_t max);

/* Resolve a recipient address to the local accounts it delivers to:
 * an account with that address; else an alias with that address (its
 * destinations resolved recursively, at most 8 levels, duplicates removed,
 * loops cut); else the domain's catch-all alias. Foreign destinations of
 * an alias (domains not in the directory) are returned in foreign_r.
 * Fills at most max entries of each array; returns the number of local
 * accounts found (0: unknown recipient) and sets *foreign_count_r.
 * Returned pointers follow the view lifetime above. */
size_t mc_directory_resolve(const struct mc_directory *dir, const char *address,
                            const struct mc_dir_account **accounts_r, size_t max,
                            const char **foreign_r, size_t foreign_max,
                            size_t *foreign_count_r);

/* Export the whole content as a newly allocated Snapshot (to persist it or
 * hand it on); free with mc_directory_snapshot_free. */
Mc__Snapshot *mc_directory_to_snapshot(const struct mc_directory *dir);
void mc_directory_snapshot_free(Mc__Snapshot **snap);

/* Persist to / load from a JSON file (see docs/state-files.md). Save writes
 * path.tmp with mode 0600, fsyncs it and renames it over path. Load
 * replaces the content; on error the directory is unchanged. */
int mc_directory_save(const struct mc_directory *dir, const char *path,
                      const char **error_r);
/* The same from a snapshot of it (mc_directory_to_snapshot): safe on any
 * thread, so the daemons write their file off the event loop. */
int mc_directory_save_snapshot(const Mc__Snapshot *snap, const char *path,
                               const char **error_r);
int mc_directory_load(struct mc_directory *dir, const char *path,
                      const char **error_r);

#endif
