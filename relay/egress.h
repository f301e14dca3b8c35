/* The relay's egress listener (egress_listen): SMTP from the cluster's
 * mailbox nodes handing over outbound mail, never from the world. A peer
 * is let in when its address is in the trusted networks, or when it
 * completes STARTTLS with a client certificate issued by the configured
 * CA (mutual TLS; until then MAIL gets 530 5.7.0); anyone else is refused
 * at the banner. A listener with neither is refused at start.
 *
 * Policy: any recipient is accepted (the node already authenticated its
 * user and checked the envelope): recipients in the cluster's domains are
 * resolved like the MX does (accounts, aliases, catch-alls; unknown 550
 * 5.1.1), any other is queued as given. The message goes to the durable
 * queue as it arrives; at the end of data it is DKIM-signed with the
 * active keys of its From domain (none: logged, sent unsigned), the
 * DKIM-Signature fields are put in front of it, the envelope is committed
 * marked outbound, and only then is 250 sent and the envelope handed to
 * delivery. Signing and the queue's fsyncs run on worker threads.
 *
 * Loop thread only. */
#ifndef RELAY_EGRESS_H
#define RELAY_EGRESS_H

#include <stdint.h>

#include <uv.h>

#include "directory.h"
#include "queue.h"
#include "signer.h"
#include "trusted.h"

struct relay_egress;
struct mc_tls_ctx;

struct relay_egress_settings {
	const char *host; /* listen address (IP literal) */
	uint16_t port;
	const char *hostname;  /* banner, Received "by" */
	uint64_t max_message;  /* SIZE; 0: the engine's default */
	unsigned max_expanded; /* final recipients per message; 0: 1000 */
	/* STARTTLS with mutual TLS: a server context made with a CA file,
	 * so a handshake only completes with a client certificate from that
	 * CA (lib/tls.h). NULL: no TLS. Borrowed. */
	struct mc_tls_ctx *mtls;
	/* Peers let in without TLS; NULL or empty: none. Copied. */
	const struct relay_trusted *trusted;
	struct relay_queue *queue;   /* borrowed */
	struct relay_signer *signer; /* borrowed */
	/* The directory as the relay holds it now. */
	const struct mc_directory *(*directory)(void *ctx);
	/* A message was committed: takes ownership of env. */
	void (*committed)(struct relay_queue_envelope *env, void *ctx);
	void *ctx;
};

/* -1 with error_r for settings that would open the listener to anyone
 * (neither mtls nor trusted networks) or an address that cannot be
 * bound. */
int relay_egress_start(uv_loop_t *loop, const struct relay_egress_settings *set,
                       struct relay_egress **eg_r, const char **error_r);
const char *relay_egress_address(const struct relay_egress *eg);
/* Stop listening, end sessions (a message being committed still gets its
 * reply); done(arg) once everything is freed. */
void relay_egress_close(struct relay_egress *eg, void (*done)(void *arg),
                        void *arg);

#endif
