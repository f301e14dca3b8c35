/* What a mailbox node computes once per stored message, whichever way it
 * arrives (LMTP delivery, IMAP APPEND): the blob key (SHA-256) and the
 * envelope and MIME structure as JSON, which IMAP answers FETCH from
 * without reading the blob. Pure CPU work: callers run it on a worker
 * thread. */
#ifndef NODE_MESSAGE_H
#define NODE_MESSAGE_H

#include <stddef.h>

#include "blob.h"

/* *envelope_json_r and *bodystructure_json_r are heap strings (free()). */
void node_message_analyze(const char *data, size_t len,
                          char key_r[MC_BLOB_KEY_LEN + 1],
                          char **envelope_json_r, char **bodystructure_json_r);

#endif
