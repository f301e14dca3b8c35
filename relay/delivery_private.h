/* Internals shared by the delivery scheduler's files: delivery.c (the
 * scheduler: message list, timer, worker jobs, start/add/kick/close),
 * delivery_attempt.c (routing a message's due recipients, its LMTP
 * sessions, applying their outcomes) and bounce.c (building and queueing
 * DSNs on a worker thread). Not for other modules. */
#ifndef RELAY_DELIVERY_PRIVATE_H
#define RELAY_DELIVERY_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "delivery.h"
#include "hostport.h"
#include "smtp_client.h"

/* Route notes kept in rcpt->route (opaque to the queue): "lmtp:host:port"
 * or "wait:<why>". A pending recipient is tried again at once by
 * relay_delivery_kick when the directory now gives it a different note. */
#define DL_ROUTE_WAIT "wait:"
/* "lmtp:" + "host:port" */
#define DL_DEST_SIZE (MC_HOST_MAX + 16)

/* Sessions running to one destination ("host:port"). */
struct dl_node {
	struct dl_node *next;
	char *dest;
	unsigned sessions;
};

/* A failed recipient waiting for its DSN (strings on the heap). */
struct dl_bounce {
	char *address, *orcpt, *status, *remote, *diagnostic, *command;
	unsigned code;
	int64_t last_attempt;
};

/* One LMTP session: some recipients of one message to one node. */
struct dl_session {
	struct dl_session *next;
	struct dl_msg *m;
	struct dl_node *node; /* its slot */
	char ip[MC_HOST_MAX + 1];
	uint16_t port;
	char *node_name;
	size_t *idx; /* recipients (indexes into env->rcpts) */
	size_t count;
	struct mc_smtp_client *client; /* NULL once done */
	bool aborted;                  /* by relay_delivery_close */
};

enum dl_phase {
	DL_IDLE,      /* nothing in flight; the scheduler may start work */
	DL_OPENING,   /* worker: opening the content */
	DL_SENDING,   /* sessions running */
	DL_FINISHING, /* worker: DSN, then update or remove */
	DL_DELETING,  /* worker: removal asked by relay_delivery_delete */
};

struct dl_msg {
	struct relay_delivery *d;
	struct dl_msg *prev, *next;
	struct relay_queue_envelope *env;
	enum dl_phase phase;
	bool dirty;     /* env differs from its file */
	bool kicked;    /* a kick came while busy */
	bool retry_now; /* relay_delivery_retry came while busy */
	/* relay_delivery_delete: done once idle and removed. */
	void (*delete_done)(int status, const char *error, void *arg);
	void *delete_arg;
	int64_t retry_write; /* a failed write-back is retried then */
	struct dl_session *sessions;
	unsigned running; /* sessions not done */
	int fd;           /* content, while sessions run; -1 */
	struct dl_bounce *bounces;
	size_t bounce_count;
	/* Per recipient: the shard owner's lease epoch when it was last sent
	 * to a node (0 = never). A new epoch means a new owner or a restart:
	 * dl_rekick makes the recipient due at once (memory only). */
	uint64_t *epochs;
	uv_work_t work;
	/* Results of the worker job, read back on the loop. */
	int work_rc;
	bool work_gone; /* the message no longer exists (removed) */
	char *work_error;
	struct relay_queue_envelope *dsn_env; /* a DSN just committed */
};

struct relay_delivery {
	uv_loop_t *loop;
	struct relay_queue *queue;
	const struct mc_directory *(*directory)(void *ctx);
	void *ctx;
	char *hostname;
	uint64_t retry_base_ms, retry_max_ms, give_up_s;
	unsigned max_sessions, max_sessions_per_node;

	struct dl_msg *head, *tail; /* oldest first */
	struct dl_node *nodes;
	unsigned sessions; /* running, all messages */
	unsigned jobs;     /* worker jobs in flight */
	uint64_t rand;     /* jitter */

	uv_timer_t timer;
	bool scanning, closing, timer_closing;
	bool pumping, repump; /* dl_schedule while the scheduler runs */
	uv_work_t scan_work;
	struct relay_queue_envelope **scanned;
	size_t scanned_count, scanned_cap;
	struct relay_queue_scan_stats scan_stats;
	char *scan_error;
	void (*done)(void *arg);
	void *done_arg;
};

/* ---- delivery.c ---- */

/* Run the scheduler soon (from the loop, not inside this call). */
void dl_schedule(struct relay_delivery *d);
/* m's attempt is over: write back what changed (and queue its DSN), or
 * remove it when nothing is pending, on a worker; else make it idle. */
void dl_finish(struct dl_msg *m);
/* m has nothing in flight any more. */
void dl_idle(struct dl_msg *m);
/* Queue work for m on a worker (m->phase is set by the caller). */
void dl_job(struct dl_msg *m, uv_work_cb work, uv_after_work_cb after);
/* Unix seconds. */
int64_t dl_now(void);

/* ---- delivery_attempt.c ---- */

/* Route m's due recipients and start its sessions, or record what
 * routing decided. m is idle and has due recipients. Returns false when
 * nothing could be done now for want of session slots. */
bool dl_attempt(struct dl_msg *m, int64_t now);
/* Earliest next_attempt of m's pending recipients (0: now), INT64_MAX
 * when none is pending. */
int64_t dl_msg_due(const struct dl_msg *m);
/* After a kick: pending recipients of m whose route would now differ
 * from their last one (an owner appeared, moved, or got an address)
 * become due. */
void dl_rekick(struct dl_msg *m);
/* relay_delivery_close: abort m's running sessions. */
void dl_abort_sessions(struct dl_msg *m);
/* Free the bounces of m. */
void dl_bounces_free(struct dl_msg *m);
/* A log-safe copy of s ('"' and '\\' replaced) into buf. */
const char *dl_logsafe(const char *s, char *buf, size_t size);

/* ---- bounce.c (worker thread) ---- */

/* Build the DSN for the bounces of m and commit it to the queue: a new
 * message from <> to m's sender. *dsn_env_r is the committed envelope. */
int dl_bounce_commit(struct relay_queue *q, const char *hostname,
                     const struct relay_queue_envelope *env,
                     const struct dl_bounce *bounces, size_t count,
                     struct relay_queue_envelope **dsn_env_r,
                     const char **error_r);

#endif
