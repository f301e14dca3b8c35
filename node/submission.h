/* Message submission on a mailbox node (RFC 6409, RFC 8314): a STARTTLS
 * listener (587-style) and an implicit-TLS listener (465-style) on the
 * SMTP engine (lib/smtp_server). Policy, in short (docs/submission.md
 * has the reasons):
 * - AUTH PLAIN, LOGIN and SCRAM-SHA-256 (RFC 4954) only over TLS, checked by node_auth
 *   (full address or unambiguous local part, growing delays on failure);
 *   MAIL before AUTH is refused 530 5.7.0.
 * - The envelope sender and every address of the From and Sender header
 *   fields must be the account's own address or an alias (not a
 *   catch-all) resolving to it: else 553 5.7.1. <> is refused too.
 * - Missing Date and Message-ID header fields are added, with a Received
 *   field for the client (and Return-Path for local copies).
 * - Recipients of the cluster's domains are resolved (accounts, aliases,
 *   catch-alls); accounts whose shard this node holds are delivered here
 *   (node/deliver.h) FIRST, idempotently (the delivery id is derived from
 *   the client's bytes, so a client retrying after a 451 does not get a
 *   second local copy); everything else (other shards' accounts, alias
 *   destinations outside the cluster, foreign recipients) goes LAST, in
 *   one SMTP transaction, to the relay's egress listener
 *   (submission_relay). 250 only when every local copy is committed and
 *   the relay answered 250 for all the rest; any failure on the way is a
 *   451 (retry) or, for a permanent refusal, a 5xx.
 *
 * Loop thread only. */
#ifndef NODE_SUBMISSION_H
#define NODE_SUBMISSION_H

#include <stdint.h>

#include <uv.h>

#include "auth.h"
#include "blob.h"
#include "cfgsync.h"
#include "store_pool.h"

struct node_submission;

struct node_submission_settings {
	const char *listen;     /* "ip:port" with STARTTLS, or NULL */
	const char *listen_tls; /* "ip:port" implicit TLS, or NULL */
	const char *cert_file, *key_file; /* required */
	const char *hostname;   /* banner, Received, Message-ID */
	unsigned max_sessions;  /* per listener; 0: 200 */
	uint64_t max_message;   /* SIZE; 0: the engine's default */
	/* The relay's egress listener, "host:port" (an IP literal or a
	 * name, resolved for every message), or NULL: only local
	 * recipients of shards held here are accepted. */
	const char *relay;
	/* "none" (NULL too), "starttls" or "implicit"; with TLS the relay's
	 * certificate is verified against relay_ca_file (NULL: the system's
	 * trust store) and the relay's host, and relay_cert_file /
	 * relay_key_file (may be NULL) prove who we are (mutual TLS). */
	const char *relay_tls;
	const char *relay_cert_file, *relay_key_file, *relay_ca_file;
	/* Borrowed, must outlive the service. */
	struct mc_cfgsync *sync;
	struct mc_blob *blob;
	struct node_store_pool *store;
	struct node_auth *auth;
	/* Called after a message was stored for account_id (may be NULL). */
	void (*delivered)(uint64_t account_id, void *ctx);
	void *delivered_ctx;
};

/* Bind the listeners and start serving. -1 with error_r for bad
 * settings (no listener, no certificate, bad relay settings) or an
 * address that cannot be bound; nothing is left behind then. */
int node_submission_start(uv_loop_t *loop, const struct node_submission_settings *set,
                          struct node_submission **sub_r, const char **error_r);
/* Stop listening, abort relay handoffs in flight (their clients get a
 * 451) and end every session (421); done(arg) runs once all are gone and
 * the service is freed. */
void node_submission_close(struct node_submission *sub, void (*done)(void *arg),
                           void *arg);

#endif
