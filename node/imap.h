/* The mailbox node's IMAP service (RFC 3501 / RFC 9051 and the extensions
 * clients rely on): a STARTTLS listener (143-style, LOGINDISABLED until
 * TLS) and an implicit-TLS listener (993-style). Sessions log in with an
 * account's full address or an unambiguous local part, and read and
 * change the mailboxes of accounts whose shard this node holds a lease
 * for (mailbox store + blob store).
 *
 * Loop thread only. */
#ifndef NODE_IMAP_H
#define NODE_IMAP_H

#include <stdint.h>

#include <uv.h>

#include "auth.h"
#include "blob.h"
#include "cfgsync.h"
#include "store_pool.h"

struct node_imap;

struct node_imap_settings {
	const char *listen;     /* "host:port" with STARTTLS, or NULL */
	const char *listen_tls; /* "host:port" implicit TLS, or NULL */
	const char *cert_file, *key_file; /* required */
	const char *hostname;   /* in the greeting */
	unsigned max_sessions;  /* per listener; 0: 1000 */
	uint64_t max_append;    /* largest APPEND literal (octets) */
	/* Borrowed, must outlive the service. */
	struct mc_cfgsync *sync;
	struct mc_blob *blob;
	struct node_store_pool *store;
	struct node_auth *auth;
};

int node_imap_start(uv_loop_t *loop, const struct node_imap_settings *set,
                    struct node_imap **imap_r, const char **error_r);
/* Stop listening and end every session (BYE); done(arg) runs once all are
 * gone and the service is freed. */
void node_imap_close(struct node_imap *imap, void (*done)(void *arg), void *arg);
/* A mailbox of account_id changed on this node (delivery, another
 * session): sessions with it selected and idling look at once. */
void node_imap_notify(struct node_imap *imap, uint64_t account_id);

#endif
