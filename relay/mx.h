/* The relay's MX listener: inbound SMTP from the Internet (RFC 5321) on
 * top of the SMTP engine. Policy: a recipient is accepted when its domain
 * is one of the cluster's and the address resolves (account, alias or
 * catch-all) in the published directory the relay holds - which it keeps
 * serving while the controller is away; unknown local users get 550 5.1.1,
 * other domains 554 5.7.1 (the MX never relays). Aliases are expanded
 * here: the queued envelope names the final recipients. The message is
 * written to the durable queue as it arrives and "250" is sent only after
 * relay_queue_commit made it survive a crash; then the envelope is handed
 * to the delivery scheduler.
 *
 * Loop thread only. Queue work that may wait on the disk (begin, and
 * commit with its fsyncs) runs on worker threads; appends are page-cache
 * writes and an abort is an unlink, done inline. */
#ifndef RELAY_MX_H
#define RELAY_MX_H

#include <stdint.h>

#include <uv.h>

#include "directory.h"
#include "queue.h"

struct relay_mx;
struct mc_tls_ctx;

struct relay_mx_settings {
	const char *host; /* listen address (IP literal) */
	uint16_t port;
	const char *hostname;     /* banner, Received "by" */
	uint64_t max_message;     /* SIZE; 0: the engine's default */
	unsigned max_expanded;    /* final recipients per message; 0: 1000 */
	struct mc_tls_ctx *tls;   /* STARTTLS; NULL: not offered. Borrowed. */
	struct relay_queue *queue; /* borrowed */
	/* The directory as the relay holds it now. */
	const struct mc_directory *(*directory)(void *ctx);
	/* A message was committed: takes ownership of env. */
	void (*committed)(struct relay_queue_envelope *env, void *ctx);
	void *ctx;
};

int relay_mx_start(uv_loop_t *loop, const struct relay_mx_settings *set,
                   struct relay_mx **mx_r, const char **error_r);
const char *relay_mx_address(const struct relay_mx *mx);
/* Stop listening, end sessions (a message being committed still gets its
 * reply); done(arg) once everything is freed. */
void relay_mx_close(struct relay_mx *mx, void (*done)(void *arg), void *arg);

#endif
