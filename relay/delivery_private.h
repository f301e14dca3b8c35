/* Internals shared by the delivery scheduler's files: delivery.c (the
 * scheduler: message list, timer, worker jobs, start/add/kick/close),
 * delivery_route.c (where a recipient goes now), delivery_attempt.c (a
 * message's due recipients grouped into sessions, applying their
 * outcomes), delivery_egress.c (SMTP sessions out: smarthost or MX,
 * DNS, AUTH secrets) and bounce.c (building and queueing DSNs on a worker
 * thread). Not for other modules. */
#ifndef RELAY_DELIVERY_PRIVATE_H
#define RELAY_DELIVERY_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "delivery.h"
#include "hostport.h"
#include "smtp_client.h"

/* Route notes kept in rcpt->route (opaque to the queue):
 * "lmtp:host:port", "smarthost:<name>#<id>:<digest of its settings>",
 * "mx:<domain>" or "wait:<why>". A pending recipient is tried again at
 * once by relay_delivery_kick when the directory now gives it a
 * different note. */
#define DL_ROUTE_WAIT "wait:"
/* "lmtp:host:port", "smarthost:<id>", "mx:<domain>" */
#define DL_DEST_SIZE (MC_HOST_MAX + 16)

/* Sessions running to one destination (a route's dest). */
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

/* Where one recipient goes at this attempt (delivery_route.c). */
enum dl_route_kind {
	DL_ROUTE_NODE,    /* LMTP to ip:port */
	DL_ROUTE_EGRESS,  /* SMTP out: smarthost route or MX */
	DL_ROUTE_GONE,    /* no such account any more: 5.1.1 */
	DL_ROUTE_WAITING, /* no route now: temporary */
};

struct dl_route {
	enum dl_route_kind kind;
	char note[RELAY_QUEUE_ROUTE_MAX + 1]; /* stored in rcpt->route */
	char dest[DL_DEST_SIZE]; /* sessions and slots are per dest */
	/* NODE */
	char ip[MC_HOST_MAX + 1];
	uint16_t port;
	const char *node_name; /* the directory's, valid during the call */
	uint64_t epoch;        /* the owner's lease epoch */
	/* EGRESS: the recipient's domain (in the address) and its route as
	 * the directory has it now (NULL: none, direct MX); valid during
	 * the call only: a session copies what it needs. */
	const char *domain;
	const struct mc_dir_route *route;
	/* GONE, WAITING */
	const char *enhanced;
	char text[200];
	bool long_retry; /* retry_max_ms, not backoff */
};

struct dl_egress;
struct dl_held;
struct mc_dns;
struct mc_tls_ctx;

/* One session: some recipients of one message to one destination, over
 * LMTP to a node or SMTP out (egress != NULL). */
struct dl_session {
	struct dl_session *next;
	struct dl_msg *m;
	struct dl_node *node; /* its slot */
	char *note;           /* the route note of its recipients */
	/* LMTP */
	char ip[MC_HOST_MAX + 1];
	uint16_t port;
	char *node_name;
	/* SMTP out: delivery_egress.c's */
	struct dl_egress *egress;
	size_t *idx; /* recipients (indexes into env->rcpts) */
	size_t count;
	struct mc_smtp_client *client; /* NULL when none runs */
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
	/* Egress (foreign recipients); false: they wait. */
	bool egress;
	struct mc_tls_ctx *smarthost_tls, *mx_tls;
	struct mc_dns *dns;
	uint16_t mx_port;

	struct dl_msg *head, *tail; /* oldest first */
	struct dl_node *nodes;
	/* SMTP connections kept open between messages, per route note
	 * (delivery_egress.c). */
	struct dl_held *held;
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

/* ---- delivery_route.c ---- */

/* Route one recipient with dir as it is now (dir may be NULL). */
void dl_route_rcpt(const struct relay_delivery *d, const struct mc_directory *dir,
                   const char *address, struct dl_route *r);
/* After a kick: pending recipients of m whose route would now differ
 * from their last one (an owner appeared, moved, or got an address; a
 * route changed) become due. */
void dl_rekick(struct dl_msg *m);

/* ---- delivery_attempt.c ---- */

/* Route m's due recipients and start its sessions, or record what
 * routing decided. m is idle and has due recipients. Returns false when
 * nothing could be done now for want of session slots. */
bool dl_attempt(struct dl_msg *m, int64_t now);
/* Earliest next_attempt of m's pending recipients (0: now), INT64_MAX
 * when none is pending. */
int64_t dl_msg_due(const struct dl_msg *m);
/* The session's outcome: every recipient's result (res->rcpts in the
 * order of s->idx) is applied, then the session ends. */
void dl_session_result(struct dl_session *s,
                       const struct mc_smtp_client_result *res);
/* The message of s for lib/smtp_client (envelope, its recipients in
 * rcpts, s->count of them, content fd); pointers borrowed from m. */
void dl_session_message(const struct dl_session *s,
                        struct mc_smtp_client_rcpt *rcpts,
                        struct mc_smtp_client_message *msg);
/* Every recipient of s gets the same outcome decided here (no reply):
 * the session could not run (a secret, DNS). remote may be NULL. Then
 * the session ends. */
void dl_session_local(struct dl_session *s, enum mc_smtp_client_outcome outcome,
                      const char *enhanced, const char *text,
                      const char *remote);
/* relay_delivery_close: abort m's running sessions. */
void dl_abort_sessions(struct dl_msg *m);
/* Free the bounces of m. */
void dl_bounces_free(struct dl_msg *m);
/* A log-safe copy of s ('"' and '\\' replaced) into buf. */
const char *dl_logsafe(const char *s, char *buf, size_t size);

/* ---- delivery_egress.c ---- */

/* What an egress session needs of its route, copied at the attempt. */
struct dl_egress *dl_egress_new(const struct relay_delivery *d,
                                 const struct dl_route *rt);
/* NULL-safe; wipes the secret. */
void dl_egress_free(struct dl_egress **eg);
/* Worker thread, before the session starts: read the route's AUTH
 * secret from its environment variable or file (never logged). */
void dl_egress_prepare(struct dl_egress *eg);
/* Loop: run the session (resolve, connect, SMTP); it ends with
 * dl_session_result or dl_session_local, never inside this call. */
void dl_egress_start(struct dl_session *s);
/* relay_delivery_close / delete: stop it (it still ends as above). */
void dl_egress_abort(struct dl_session *s);
/* relay_delivery_close: reset every connection kept for reuse. */
void dl_egress_drop_held(struct relay_delivery *d);

/* ---- bounce.c (worker thread) ---- */

/* Build the DSN for the bounces of m and commit it to the queue: a new
 * message from <> to m's sender. *dsn_env_r is the committed envelope. */
int dl_bounce_commit(struct relay_queue *q, const char *hostname,
                     const struct relay_queue_envelope *env,
                     const struct dl_bounce *bounces, size_t count,
                     struct relay_queue_envelope **dsn_env_r,
                     const char **error_r);

#endif
