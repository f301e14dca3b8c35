/* Local delivery: one message stored for N accounts of this node, the
 * steps LMTP (relays delivering inbound mail) and submission (clients
 * sending to local recipients) share:
 *   1. worker thread: SHA-256 of the bytes (the blob key), the parsed
 *      envelope (lib/imf) and MIME structure (lib/mime) IMAP answers
 *      FETCH from;
 *   2. loop: the blob store put (write-once, content-addressed);
 *   3. loop: each account's shard lease is checked again (the epoch to
 *      fence with is the one held now, not the one held when the
 *      recipient was accepted);
 *   4. store pool: one fenced transaction per account
 *      (node_store_deliver), idempotent by delivery id;
 *   5. loop: done, with every target's result filled in.
 *
 * What to answer the sender is the caller's policy.
 *
 * Loop thread only (the steps above hop to workers internally). */
#ifndef NODE_DELIVER_H
#define NODE_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "blob.h"
#include "cfgsync.h"
#include "store_pool.h"

/* Where messages go. Borrowed, must outlive every delivery. */
struct node_deliver_services {
	struct mc_cfgsync *sync;
	struct mc_blob *blob;
	struct node_store_pool *store;
};

/* One account to store the message for. The caller fills the first
 * members; node_deliver_start fills the results before done runs. */
struct node_deliver_target {
	char *address; /* the account's address, for logs; the caller's */
	uint64_t account_id;
	uint32_t shard;
	uint64_t quota_bytes; /* 0: unlimited */
	/* Results: */
	enum node_store_result result;
	uint64_t uid;     /* OK and DUPLICATE */
	char error[200];  /* why, for the other results */
	uint64_t epoch;   /* the epoch it was fenced with; 0: lease lost */
};

struct node_deliver_request {
	/* The message as it is stored (trace headers included). Borrowed
	 * until done. */
	const char *data;
	size_t len;
	/* Borrowed until done; their results are written in place. */
	struct node_deliver_target *targets;
	size_t target_count;
	/* Each target's delivery id is "<id_base>/<account id>" (a second
	 * delivery with the same id is recognised and stored once); NULL:
	 * the blob key, so the very same bytes are stored once per account.
	 * Copied. */
	const char *id_base;
	int64_t internaldate; /* unix seconds */
	const char *log_id;   /* session id for logs; copied */
};

/* The message's way ended. error is NULL when each target has its own
 * result; otherwise nothing was stored for any target and error says
 * why (the blob store failed or refused). key is the blob key (64 hex
 * digits), "" when it was never computed. Both valid during the call. */
typedef void node_deliver_done_cb(void *arg, const char *key, const char *error);

/* Start storing req's message; done(arg, ...) runs exactly once, on the
 * loop, never from inside this call. */
void node_deliver_start(uv_loop_t *loop, const struct node_deliver_services *svc,
                        const struct node_deliver_request *req,
                        node_deliver_done_cb *done, void *arg);

#endif
