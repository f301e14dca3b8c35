/* The mailbox store of a mailbox node: mailboxes and message metadata in
 * Postgres (the bytes are in the blob store, referenced by SHA-256).
 *
 * One struct node_store is one database connection. Calls are blocking
 * libpq and must run off the loop (a worker thread per connection); a
 * store is used by one thread at a time.
 *
 * Fencing: every write names the shard it touches and the lease epoch the
 * node holds for it. The write transaction first raises the shard's fence
 * to that epoch, or finds it already higher and aborts with
 * NODE_STORE_FENCED: a node whose lease was taken over can never write,
 * however late it wakes up. */
#ifndef NODE_STORE_H
#define NODE_STORE_H

#include <stdbool.h>
#include <stdint.h>

struct node_store;

enum node_store_result {
	NODE_STORE_OK,
	NODE_STORE_DUPLICATE, /* delivery_id seen before: *uid_r is the first */
	NODE_STORE_FENCED,    /* a newer owner holds the shard: do not retry here */
	NODE_STORE_TEMPFAIL,  /* database trouble: retry later (4xx) */
	NODE_STORE_NOTFOUND,  /* no such mailbox (or message) */
	NODE_STORE_EXISTS,    /* the mailbox name is taken */
	NODE_STORE_OVERQUOTA, /* the account's quota would be exceeded */
};

/* A message to deliver into one account's mailbox. Strings are borrowed. */
struct node_delivery {
	uint64_t account_id;
	uint32_t shard;
	uint64_t epoch;           /* the lease epoch held for shard */
	const char *mailbox;      /* "INBOX" */
	const char *blob_sha256;  /* 64 lower-case hex digits, already stored */
	uint64_t size;
	int64_t internaldate;     /* unix seconds */
	const char *delivery_id;  /* e.g. "<queue id>/<recipient>", NULL = none */
	const char *envelope_json; /* parsed header fields, NULL = none */
	const char *bodystructure_json; /* MIME structure, NULL = none */
	const char *imap_envelope;  /* node/message.h, NULL = none */
	const char *search_headers; /* node/message.h, NULL = none */
	const char *flags;        /* space-separated flags to store, NULL = none */
	bool no_create;           /* APPEND: NOTFOUND unless the mailbox exists */
	uint64_t quota_bytes;     /* 0 = unlimited; else OVERQUOTA when the
	                           * account's stored size plus this message
	                           * would exceed it */
};

/* Connect and apply the store's migrations. */
int node_store_open(const char *conninfo, struct node_store **store_r,
                    const char **error_r);
void node_store_close(struct node_store **store);

/* Make sure the account has its default mailboxes: INBOX and Sent,
 * Drafts, Trash, Junk, Archive with their SPECIAL-USE roles. Fenced. */
enum node_store_result node_store_ensure_mailboxes(struct node_store *store,
                                                   uint64_t account_id,
                                                   uint32_t shard,
                                                   uint64_t epoch,
                                                   const char **error_r);

/* Add a message: allocates the next UID and MODSEQ of the mailbox (created
 * with the defaults if the account has none yet, unless no_create: then
 * NOTFOUND). Fenced, idempotent by delivery_id (DUPLICATE, checked before
 * the quota). *uid_r and *uidvalidity_r (may be NULL) are set on OK and
 * DUPLICATE: the message's UID and its mailbox's UIDVALIDITY (APPENDUID).
 * The quota is checked in the same transaction, so concurrent deliveries
 * to one account cannot pass it together. */
enum node_store_result node_store_deliver(struct node_store *store,
                                          const struct node_delivery *d,
                                          uint64_t *uid_r,
                                          uint32_t *uidvalidity_r,
                                          const char **error_r);

/* Message count and total size of one mailbox (for mailctl and quotas). */
int node_store_mailbox_stats(struct node_store *store, uint64_t account_id,
                             const char *mailbox, uint64_t *count_r,
                             uint64_t *bytes_r, const char **error_r);

#endif
