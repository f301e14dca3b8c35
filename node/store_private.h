/* Internals shared by the mailbox store's files (store.c: delivery and
 * defaults, store_imap.c: what the IMAP server needs): the connection,
 * the query helpers and the fenced write transaction. Not for callers of
 * the store; same thread rules as store.h. */
#ifndef NODE_STORE_PRIVATE_H
#define NODE_STORE_PRIVATE_H

#include <stdint.h>

#include <libpq-fe.h>

#include "store.h"

struct node_store {
	PGconn *pg;
	char *conninfo;
};

/* A new mailbox's UIDVALIDITY, from a sequence that started at the clock
 * (node/migrations/0003_imap.sql): a mailbox deleted and recreated gets a
 * new one, so clients drop their cached UIDs. Fits in 32 bits and is never
 * 0 (RFC 3501). */
#define NODE_STORE_UIDVALIDITY_SQL                                             \
	"(nextval('uidvalidity_seq') % 4294967295 + 1)"

/* (Re)connect when there is no healthy connection. */
int node_store_connect(struct node_store *st, const char **error_r);

/* Run one statement with text parameters (NULL = SQL NULL). Returns the
 * result (PQclear it), or NULL with error_r; inside a transaction the
 * caller then ends it through node_store_finish. */
PGresult *node_store_q(struct node_store *st, const char *sql, int n,
                       const char *const *params, const char **error_r);
int node_store_exec0(struct node_store *st, const char *sql,
                     const char **error_r);

/* Start a write transaction on shard under epoch: OK, FENCED when a newer
 * epoch has claimed the shard, TEMPFAIL. Always end it with
 * node_store_finish. */
enum node_store_result node_store_begin_fenced(struct node_store *st,
                                               uint32_t shard, uint64_t epoch,
                                               const char **error_r);

/* Commit when r is OK or DUPLICATE (TEMPFAIL if the commit fails), roll
 * back otherwise; drops a broken connection so the next call reconnects.
 * Returns the final result. */
enum node_store_result node_store_finish(struct node_store *st,
                                         enum node_store_result r,
                                         const char **error_r);

/* Inside a fenced transaction: OVERQUOTA (with error_r) when the
 * account's stored octets plus adding would pass quota_bytes (0: no
 * quota). The fence row lock orders the shard's writers, so the usage read
 * cannot change before the caller commits. */
enum node_store_result node_store_check_quota(struct node_store *st,
                                              uint64_t account_id,
                                              uint64_t adding,
                                              uint64_t quota_bytes,
                                              const char **error_r);

#endif
