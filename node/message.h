/* What a mailbox node computes once per stored message, whichever way it
 * arrives (LMTP delivery, IMAP APPEND): the blob key (SHA-256) and the
 * envelope and MIME structure as JSON, which IMAP answers FETCH from
 * without reading the blob. Pure CPU work: callers run it on a worker
 * thread. */
#ifndef NODE_MESSAGE_H
#define NODE_MESSAGE_H

#include <stddef.h>

#include "blob.h"

/* The header fields kept with each message for SEARCH (node_search_fields:
 * Subject, From, To, Cc, Bcc; NULL-terminated): a search whose text keys
 * are only on these fields is answered without reading the blob. */
extern const char *const node_search_fields[];

/* What node_message_analyze computes; the strings are on the heap. */
struct node_message_meta {
	char key[MC_BLOB_KEY_LEN + 1];
	char *envelope_json, *bodystructure_json;
	/* The formatted IMAP ENVELOPE; NULL when it is not UTF-8 text (FETCH
	 * then formats it from envelope_json). */
	char *imap_envelope;
	/* The node_search_fields lines as they are in the message, then an
	 * empty line; NULL when they are not UTF-8 text (raw 8-bit bytes,
	 * NUL), which SEARCH then reads from the blob. */
	char *search_headers;
};

void node_message_analyze(const char *data, size_t len,
                          struct node_message_meta *meta_r);
/* Free the strings (the struct is the caller's); idempotent. */
void node_message_meta_fini(struct node_message_meta *meta);

#endif
