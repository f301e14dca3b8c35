/* The relay's delivery scheduler: takes the messages of the durable queue
 * (relay/queue.h) and hands each pending recipient over LMTP (RFC 2033)
 * to the mailbox node that owns its account's shard now, or - for other
 * domains - over SMTP to the smarthost of its domain's route or to its
 * domain's MX (egress, docs/egress.md), retrying
 * temporary failures with exponential backoff and turning permanent ones
 * (and recipients older than give_up_s) into failed recipients with a
 * DSN (RFC 3464) queued back to the sender. See docs/delivery.md.
 *
 * Envelopes live in memory (the queue keeps no index); every change of a
 * recipient is written back with relay_queue_update before anything
 * relies on it, and a message with no pending recipient is removed.
 * Delivery is at least once: a crash between a node's 250 and the update
 * delivers the message again after the restart (the node deduplicates).
 *
 * Thread affinity: every function here is for the loop's thread. The
 * queue calls (which block on the disk) run on libuv's worker threads,
 * at most one at a time per message. */
#ifndef RELAY_DELIVERY_H
#define RELAY_DELIVERY_H

#include <stdint.h>

#include <uv.h>

#include "directory.h"
#include "queue.h"

struct mc_dns;
struct mc_tls_ctx;

struct relay_delivery;

struct relay_delivery_settings {
	/* Open, and not yet scanned: relay_delivery_start scans it.
	 * Borrowed; it must stay open until the close callback. */
	struct relay_queue *queue;
	/* The directory as the relay holds it now (accounts, shard owners),
	 * looked up at every attempt on the loop thread; the result is used
	 * during the call only. In mail-relay a wrapper around
	 * mc_cfgsync_directory; tests inject their own. Required. */
	const struct mc_directory *(*directory)(void *ctx);
	void *ctx;
	const char *hostname;   /* LHLO name, DSN Reporting-MTA; copied */
	uint64_t retry_base_ms; /* first retry delay; 0: 60000; doubles */
	uint64_t retry_max_ms;  /* cap of the delay; 0: 3600000 */
	uint64_t give_up_s;     /* age after which a pending recipient
	                           fails; 0: 5 days */
	unsigned max_sessions;  /* sessions at once, LMTP and SMTP; 0: 20 */
	/* Sessions at once to one destination: a node, a smarthost route,
	 * a recipient domain's MX; 0: 5. */
	unsigned max_sessions_per_node;
	/* Egress: recipients outside the cluster's domains go out by the
	 * route of their domain (a smarthost) or to its MX. false: they
	 * wait, and fail at give_up_s. */
	bool egress;
	/* For MX lookups and smarthost names; borrowed. Required with
	 * egress. */
	struct mc_dns *dns;
	/* Client contexts, borrowed: smarthost_tls verifies the smarthost's
	 * certificate against its name (STARTTLS or implicit TLS routes);
	 * mx_tls is opportunistic (MX STARTTLS when offered). Required with
	 * egress. */
	struct mc_tls_ctx *smarthost_tls, *mx_tls;
	/* The port of MX hosts; 0: 25. Tests use another. */
	uint16_t mx_port;
};

/* Validate settings, start the startup scan of the queue
 * (relay_queue_scan on a worker thread, taking every envelope) and
 * schedule once it is done. Messages added meanwhile wait for the scan.
 * -1 with error_r for bad settings (nothing started). */
int relay_delivery_start(uv_loop_t *loop,
                         const struct relay_delivery_settings *set,
                         struct relay_delivery **d_r, const char **error_r);

/* A message the MX (or anyone) just committed: takes ownership of env
 * and tries it at once. After relay_delivery_close began, env is just
 * freed (it is durable: the next start scans it). */
void relay_delivery_add(struct relay_delivery *d,
                        struct relay_queue_envelope *env);

/* The directory changed (e.g. a shard has a new owner): pending
 * recipients whose route now differs from their last attempt's - those
 * waiting for a route (no owner for their shard, a domain not in the
 * directory) and those whose shard moved to another node - are tried
 * again now, whatever their backoff. Cheap when nothing changed: no I/O. */
void relay_delivery_kick(struct relay_delivery *d);

/* ---- for mailctl queue (relay/admin.c) ----------------------------- */

/* cb for every message held (oldest first; none before the startup scan
 * finished). env is read-only and valid during the call only. */
void relay_delivery_foreach(struct relay_delivery *d,
                            void (*cb)(const struct relay_queue_envelope *env,
                                       void *ctx),
                            void *ctx);
/* The message with this id, NULL when none is held. Read-only, valid
 * until control returns to the loop. */
const struct relay_queue_envelope *relay_delivery_find(struct relay_delivery *d,
                                                       const char *id);
/* Make the pending recipients of the message (id NULL: of every message)
 * due now, whatever their backoff (kept in memory until the attempt
 * writes its outcome). -1 when id names no message held. */
int relay_delivery_retry(struct relay_delivery *d, const char *id);
/* Remove the message from the queue and forget it, without a DSN:
 * running sessions of it are aborted first, work on it finishes. Then
 * done(0, NULL, arg), or done(-1, error, arg) when the removal failed
 * (it stays held), from the loop. -1 (done is not called) when id names
 * no message held or one already being deleted. */
int relay_delivery_delete(struct relay_delivery *d, const char *id,
                          void (*done)(int status, const char *error,
                                       void *arg),
                          void *arg);

/* Stop scheduling, abort running sessions (recipients a node already
 * accepted stay delivered; the others keep their state and count no
 * attempt), write back every envelope change, free everything, then
 * done(arg) from the loop. d is invalid from this call on. */
void relay_delivery_close(struct relay_delivery *d, void (*done)(void *arg),
                          void *arg);

#endif
