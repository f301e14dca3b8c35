/* The mailbox node's LMTP service (RFC 2033): relays deliver here. Policy
 * on top of the SMTP engine (lib/smtp_server): a recipient is accepted
 * when it is an account of the published directory whose shard this node
 * holds a live lease for; at the end of data the message goes to the blob
 * store and, per recipient, into the mailbox store in one fenced
 * transaction; each recipient gets its own reply (250 once stored, 4xx
 * when anything on the way failed, so the relay keeps it and retries).
 *
 * The stored message is "Return-Path: <sender>" followed by the content
 * exactly as received; the content's relay trace (Received) is the
 * relay's. That makes the blob deterministic, and a redelivery of the same
 * message to the same account (the relay retrying after losing our reply)
 * is recognised by its delivery id (blob hash + account) and stored once.
 *
 * Loop thread only. */
#ifndef NODE_LMTP_H
#define NODE_LMTP_H

#include <stdint.h>

#include <uv.h>

#include "blob.h"
#include "cfgsync.h"
#include "store_pool.h"

struct node_lmtp;

struct node_lmtp_settings {
	const char *host;     /* listen address (IP literal) */
	uint16_t port;
	const char *hostname; /* our name in replies */
	uint64_t max_message; /* 0: the engine's default */
	/* Borrowed, must outlive the service. */
	struct mc_cfgsync *sync;
	struct mc_blob *blob;
	struct node_store_pool *store;
	/* Called after a message was stored for account_id (may be NULL). */
	void (*delivered)(uint64_t account_id, void *ctx);
	void *delivered_ctx;
};

int node_lmtp_start(uv_loop_t *loop, const struct node_lmtp_settings *set,
                    struct node_lmtp **lmtp_r, const char **error_r);
/* The bound "host:port" (port 0 in the settings picks one). */
const char *node_lmtp_address(const struct node_lmtp *lmtp);
/* Stop listening and end every session; done(arg) runs once all are gone
 * and the service is freed. */
void node_lmtp_close(struct node_lmtp *lmtp, void (*done)(void *arg), void *arg);

#endif
