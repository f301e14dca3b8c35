/* Internals shared by the mailbox store's files (store.c: delivery and
 * defaults; for the IMAP server, store_mailbox.c: mailboxes, and
 * store_imap.c: their messages): the connection, the query helpers, the
 * fenced write transaction and the locked mailbox row. Not for callers
 * of the store; same thread rules as store.h. */
#ifndef NODE_STORE_PRIVATE_H
#define NODE_STORE_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store.h"

/* Statements prepared on the current connection, by the address and text
 * of their SQL (every statement is a string constant): the hot ones
 * (FETCH, SEARCH, delivery) are parsed and planned once per connection,
 * not at every call. */
#define NODE_STORE_PREPARED_MAX 64

struct node_store_prepared {
	const char *sql; /* the caller's constant */
	char *text;      /* a copy, to tell a reused address from the same */
};

struct node_store {
	PGconn *pg;
	char *conninfo;
	struct node_store_prepared prepared[NODE_STORE_PREPARED_MAX];
	size_t nprepared;
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

/* ---- store_imap.c and store_mailbox.c ---- */

struct node_mailbox;

/* The columns node_store_read_mailbox reads, in its order. */
#define NODE_STORE_MAILBOX_COLS                                                \
	"id, name, special_use, subscribed, uidvalidity, uidnext,"             \
	" highestmodseq"

/* A mailbox a write transaction changes, locked. */
struct node_store_locked {
	char id[24];
	uint64_t uidnext;
	uint64_t modseq; /* the one this write gives: highestmodseq + 1 */
	uint32_t uidvalidity;
};

/* store_imap.c. v in decimal, written into buf; returns buf. */
const char *node_store_num(char buf[24], uint64_t v);
/* The value at (row, col) as an unsigned number (0 when it is not one). */
uint64_t node_store_u64(const PGresult *res, int row, int col);
/* A heap copy of the value at (row, col) (free() it), NULL for SQL NULL. */
char *node_store_str_or_null(const PGresult *res, int row, int col);

/* store_imap.c. One read statement outside a transaction: OK with
 * *res_r (PQclear it); NOTFOUND ("mailbox <what> does not exist" in
 * error_r) when it returned no row, unless what is NULL; TEMPFAIL. */
enum node_store_result node_store_read1(struct node_store *st, const char *sql,
                                        int n, const char *const *params,
                                        const char *what, PGresult **res_r,
                                        const char **error_r);

/* store_imap.c. Inside a fenced transaction: remove every message of the
 * locked mailbox, each recorded as expunged with l->modseq, which the
 * mailbox gets when any went. */
enum node_store_result
node_store_empty_mailbox(struct node_store *st,
                         const struct node_store_locked *l,
                         const char **error_r);

/* store_mailbox.c. The NODE_STORE_MAILBOX_COLS of row into mb (its
 * strings heap copies: node_mailbox_fini). */
void node_store_read_mailbox(const PGresult *res, int row,
                             struct node_mailbox *mb);

/* store_mailbox.c. Inside a fenced transaction: lock mailbox id
 * (checking it belongs to account_id unless that is 0) into *l. NOTFOUND
 * when there is none, TEMPFAIL. */
enum node_store_result node_store_lock_mailbox(struct node_store *st,
                                               uint64_t id, uint64_t account_id,
                                               struct node_store_locked *l,
                                               const char **error_r);

/* store_mailbox.c. Give the locked mailbox its new HIGHESTMODSEQ
 * (l->modseq) and move its UIDNEXT past added new UIDs. */
enum node_store_result node_store_bump(struct node_store *st,
                                       const struct node_store_locked *l,
                                       size_t added, const char **error_r);

#endif
