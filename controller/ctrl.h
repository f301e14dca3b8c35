/* mail-controller internals shared by its files: the controller state,
 * the per-request context handed to handlers, and the database helpers
 * handlers use. Not a public API: only controller/ includes it.
 *
 * Threading: requests arrive on nng threads, are queued to the libuv loop
 * (server.c) and run one at a time on a libuv worker thread, so handlers,
 * the database connection, the publisher and every field below marked
 * "worker" are only ever touched by one thread at a time. */
#ifndef CTRL_H
#define CTRL_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <nng/nng.h>
#include <uv.h>

#include "mc.pb-c.h"
#include "pool.h"
#include "rpc.h"

struct ctrl_server;
struct mc_secretbox;

struct ctrl {
	uv_loop_t *loop;
	char *conninfo;
	PGconn *pg;                 /* worker; NULL while disconnected */
	char *store_conninfo;       /* mailbox store, NULL = not configured */
	PGconn *store_pg;           /* worker; NULL while disconnected */
	char *admin_token;
	char *node_token;
	uint32_t shard_count;       /* as stored in the cluster row */
	uint32_t heartbeat_ms;
	uint32_t node_timeout_ms;
	uint32_t lease_ttl_ms;
	bool fault_injection;
	/* Seals DKIM private keys at rest (secrets_key_file); NULL when not
	 * configured: then no key can be created, and stored ones cannot be
	 * published. Only read after startup. */
	struct mc_secretbox *secrets;
	uint64_t published_version; /* worker: last version sent as a delta */
	/* worker: the last snapshot reply to a mailbox node, packed, and its
	 * version. Every mailbox node asking at that version gets these bytes:
	 * after a bulk change each node fetches a snapshot, and one of 100,000
	 * accounts is built once, not once per node (heartbeats wait behind
	 * each build). Freed by the next change. Relays' snapshots carry
	 * decrypted DKIM keys and are never kept. */
	uint8_t *snap_cache;
	size_t snap_cache_len;
	uint64_t snap_cache_version;
	uint32_t drop_deltas;       /* worker: fault injection counter */
	nng_socket pub;
	struct ctrl_server *server;
};

/* Kinds recorded in change_log.kind. */
enum ctrl_kind {
	CTRL_KIND_DOMAIN = 1,
	CTRL_KIND_ACCOUNT = 2,
	CTRL_KIND_ALIAS = 3,
	CTRL_KIND_SHARD = 4, /* object_id is the shard number */
	CTRL_KIND_ROUTE = 5,
	CTRL_KIND_ROUTE_RULE = 6,
	CTRL_KIND_DKIM_KEY = 7,
};
#define CTRL_KIND_LAST CTRL_KIND_DKIM_KEY

/* One request being handled. Everything allocated for the response comes
 * from pool, which dies after the reply is packed. */
struct ctrl_req {
	struct ctrl *ctrl;
	struct mc_pool *pool;
	const Mc__Request *req;
	Mc__Response *resp;
	uint64_t new_version; /* set by the first ctrl_change of a mutation */
	const char *sqlstate; /* of the last failed query, "" if none */
	/* Pool strings holding secrets (decrypted DKIM keys), wiped by
	 * ctrl_secrets_wipe once the reply or delta is packed and sent. */
	char **secrets;
	size_t n_secrets, cap_secrets;
	/* A handler that answers with c->snap_cache sets packed; one whose
	 * reply may be kept there sets cache_reply. */
	const uint8_t *packed;
	size_t packed_len;
	bool cache_reply;
};

/* Handler contract: fill r->resp and return 0, or return -1 after setting
 * the status and error with ctrl_fail (ctrl_query does it for database
 * failures). An open transaction is rolled back by the caller on -1. */
typedef int ctrl_handler_fn(struct ctrl_req *r);

int ctrl_fail(struct ctrl_req *r, Mc__Status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Run sql with n text parameters (const char *, NULL = SQL NULL). Returns
 * the result (caller PQclears it) or NULL after setting r->resp to
 * UNAVAILABLE (connection lost) or INTERNAL, and r->sqlstate. */
PGresult *ctrl_query(struct ctrl_req *r, const char *sql, int n, ...);
/* ctrl_query for statements whose result is not needed. */
int ctrl_exec(struct ctrl_req *r, const char *sql, int n, ...);
/* Decimal text of v in the request pool. */
const char *ctrl_u64(struct ctrl_req *r, uint64_t v);
/* "{v}": a one-element bigint[] literal for the CTRL_BY_IDS filter. */
const char *ctrl_id_array(struct ctrl_req *r, uint64_t v);
uint64_t ctrl_row_u64(const PGresult *res, int row, int col);
char *ctrl_row_str(struct ctrl_req *r, const PGresult *res, int row, int col);

/* Remember s (a pool string) as a secret; wipe every remembered one. */
void ctrl_secret_track(struct ctrl_req *r, char *s);
void ctrl_secrets_wipe(struct ctrl_req *r);

/* Record that object (kind, id) changed in the current transaction. The
 * first call of a request bumps the cluster version. */
int ctrl_change(struct ctrl_req *r, enum ctrl_kind kind, uint64_t id,
                Mc__Change__Op op);

/* db.c: connect (or reconnect) on the worker thread. */
int ctrl_db_connect(struct ctrl *c, const char **error_r);
void ctrl_db_close(struct ctrl *c);

/* db.c: mailboxes of one account from the mailbox store (store_pg), with
 * message counts and sizes. -1 with error_r when the store is not
 * configured or cannot be reached. */
int ctrl_store_mailboxes(struct ctrl_req *r, uint64_t account_id,
                         Mc__MailboxInfo ***out_r, size_t *n_r,
                         const char **error_r);

/* schema.c: apply pending migrations and initialise the cluster row. */
int ctrl_schema_migrate(struct ctrl *c, uint32_t shard_count,
                        const char **error_r);

/* objects.c: read objects into pool-allocated protobuf messages. filter is
 * one of the CTRL_BY_* values with its argument. Returns the count or -1. */
enum ctrl_filter { CTRL_ALL, CTRL_BY_IDS, CTRL_BY_DOMAIN, CTRL_BY_ADDRESS };
int ctrl_load_domains(struct ctrl_req *r, enum ctrl_filter f, const char *arg,
                      Mc__Domain ***out_r);
int ctrl_load_accounts(struct ctrl_req *r, enum ctrl_filter f, const char *arg,
                       bool with_hash, Mc__Account ***out_r);
int ctrl_load_aliases(struct ctrl_req *r, enum ctrl_filter f, const char *arg,
                      Mc__Alias ***out_r);
/* Resolve a lower-case domain name to its id, locking the row FOR UPDATE
 * so concurrent mutations of the domain serialise. Returns 1 when found,
 * 0 when not (NOT_FOUND already set in the response), -1 on a database
 * error. */
int ctrl_domain_lock(struct ctrl_req *r, const char *domain, uint64_t *id_r);

/* Validate an address (wildcard: allow "*@domain") into pool strings: the
 * local part as given, its lower-case key and the lower-case domain.
 * Returns 0, or -1 with an INVALID response. */
int ctrl_parse_address(struct ctrl_req *r, const char *address, bool wildcard,
                       char **local_r, char **key_r, char **domain_r);

/* route.c: routes and rules, all or those in ids (a bigint[] literal,
 * NULL = all). */
int ctrl_load_routes(struct ctrl_req *r, const char *ids, Mc__Route ***out_r);
int ctrl_load_route_rules(struct ctrl_req *r, const char *ids,
                          Mc__RouteRule ***out_r);

/* dkim.c: DKIM keys (filter CTRL_ALL, CTRL_BY_IDS or CTRL_BY_DOMAIN).
 * with_private: the PEM of active keys, decrypted, for relays only (the
 * strings are tracked with ctrl_secret_track); otherwise "". */
int ctrl_load_dkim_keys(struct ctrl_req *r, enum ctrl_filter f, const char *arg,
                        bool with_private, Mc__DkimKey ***out_r);

/* Handlers, one file per noun. */
ctrl_handler_fn ctrl_domain_add, ctrl_domain_list, ctrl_domain_rm;
ctrl_handler_fn ctrl_domain_dns;
ctrl_handler_fn ctrl_route_add, ctrl_route_list, ctrl_route_rm, ctrl_route_default,
	ctrl_route_rule_add, ctrl_route_rule_rm;
ctrl_handler_fn ctrl_dkim_create, ctrl_dkim_list, ctrl_dkim_rotate, ctrl_dkim_rm;
ctrl_handler_fn ctrl_account_add, ctrl_account_list, ctrl_account_show,
	ctrl_account_rm, ctrl_account_passwd;
ctrl_handler_fn ctrl_alias_add, ctrl_alias_list, ctrl_alias_rm;
ctrl_handler_fn ctrl_node_register, ctrl_node_heartbeat, ctrl_node_snapshot,
	ctrl_node_list, ctrl_status;
ctrl_handler_fn ctrl_debug_drop_deltas;

/* leases.c: place shards, renew/acquire the node's shard leases inside
 * its heartbeat (own transaction) and fill hr's grants. */
int ctrl_leases_heartbeat(struct ctrl_req *r, uint64_t node_id,
                          const char *instance, Mc__HeartbeatResp *hr);
/* 1 when another process instance of node_name holds live leases, 0 when
 * not, -1 on a database error. */
int ctrl_leases_held_elsewhere(struct ctrl_req *r, const char *node_name,
                               const char *instance);
/* Shard owners, all or those in ids (an int[] literal, NULL = all). */
int ctrl_load_shards(struct ctrl_req *r, const char *ids, Mc__ShardOwner ***out_r);

/* publish.c */
int ctrl_publish_open(struct ctrl *c, const char *url,
                      const struct mc_tls_files *tls, const char **error_r);
/* After a committed mutation: publish everything from published_version to
 * the current version as one delta on both topics: 'M' with password
 * hashes and verifiers, without routes and DKIM private keys; 'R' with
 * routes and the private keys of active DKIM keys, without hashes. */
void ctrl_publish(struct ctrl_req *r);
void ctrl_publish_close(struct ctrl *c);

/* server.c: REP socket, loop bridge, worker serialisation, dispatch. */
int ctrl_server_start(struct ctrl *c, const char *url,
                      const struct mc_tls_files *tls, const char **error_r);
/* Stop accepting requests; on_done runs on the loop once nothing is in
 * flight and every handle is closed. */
void ctrl_server_stop(struct ctrl *c, void (*on_done)(struct ctrl *c));

#endif
