/* The relay's durable mail queue: messages the relay accepted (inbound
 * from the MX, later outbound from submission) stay here until every
 * recipient is delivered or has permanently failed. The relay answers
 * "250" to a DATA only after relay_queue_commit returned 0. Layout, file
 * formats and the crash-safety argument are in docs/queue.md.
 *
 * A message is two files in <spool>/queue/: <id>.msg (the message bytes
 * exactly as received after dot-unstuffing, nothing added) and <id>.env
 * (the envelope, JSON). The envelope is the commit marker: a message
 * exists exactly when its <id>.env exists, and <id>.msg is then complete.
 *
 * This module is storage only, in the manner of OpenSMTPD's queue
 * backends: it keeps no in-memory index. The delivery scheduler loads
 * every envelope once at startup (relay_queue_scan), keeps them in memory,
 * and writes each change back (relay_queue_update, relay_queue_remove).
 *
 * Threads: every function here does blocking file I/O and most fsync, so
 * the relay calls them on a worker thread (uv_queue_work), never on the
 * loop thread. A struct relay_queue may be shared by threads: it holds
 * only directory fds and an atomic id clock. Calls on different messages
 * may run concurrently; calls on the same message must be serialised by
 * the caller (the scheduler owns each message while it works on it).
 * relay_queue_open and relay_queue_close must not overlap any other call. */
#ifndef RELAY_QUEUE_H
#define RELAY_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Queue ids: 11 base32 digits of the microsecond clock and 8 random base32
 * digits, e.g. "0c9s4x7k2m1hq3z8r5w" (lower-case, sortable by time, safe
 * as a file name). RELAY_QUEUE_ID_SIZE includes the NUL. */
#define RELAY_QUEUE_ID_LEN 19
#define RELAY_QUEUE_ID_SIZE (RELAY_QUEUE_ID_LEN + 1)

#define RELAY_QUEUE_DEFAULT_MAX_SIZE (50u * 1024 * 1024)

/* Envelope limits, checked when an envelope is written and when it is
 * loaded (lengths in bytes, without the NUL). Addresses allow SMTPUTF8 and
 * quoted local parts beyond RFC 5321's 254 octets of a plain address. */
#define RELAY_QUEUE_MAX_RCPTS 10000
#define RELAY_QUEUE_ADDR_MAX 512
#define RELAY_QUEUE_ENVID_MAX 100 /* RFC 3461 section 4.4 */
#define RELAY_QUEUE_ORCPT_MAX 500 /* RFC 3461 section 4.2 */
#define RELAY_QUEUE_ROUTE_MAX 255
#define RELAY_QUEUE_CLIENT_MAX 255 /* each client field */
#define RELAY_QUEUE_ERROR_MAX 512  /* last_error, truncated on write */
#define RELAY_QUEUE_ATTEMPTS_MAX 1000000
/* An envelope file larger than this is corrupt (10000 recipients at the
 * field limits stay well below it). */
#define RELAY_QUEUE_ENVELOPE_FILE_MAX (16u * 1024 * 1024)

struct relay_queue;
struct relay_queue_msg;

struct relay_queue_settings {
	/* Largest message accepted by relay_queue_append; 0 means
	 * RELAY_QUEUE_DEFAULT_MAX_SIZE. The SMTP layer announces its own
	 * SIZE and enforces it first; this is the backstop. */
	uint64_t max_message_size;
	/* Wall clock in microseconds since the epoch; NULL means
	 * CLOCK_REALTIME. Tests inject a clock that jumps back. */
	int64_t (*clock_us)(void);
};

enum relay_queue_rcpt_state {
	RELAY_QUEUE_PENDING,
	RELAY_QUEUE_DELIVERED,
	RELAY_QUEUE_FAILED, /* permanently */
};

enum relay_queue_body {
	RELAY_QUEUE_BODY_7BIT,
	RELAY_QUEUE_BODY_8BITMIME,
};

/* DSN RET (RFC 3461 section 4.3); NONE when MAIL FROM had no RET. */
enum relay_queue_dsn_ret {
	RELAY_QUEUE_RET_NONE,
	RELAY_QUEUE_RET_FULL,
	RELAY_QUEUE_RET_HDRS,
};

/* DSN NOTIFY bits (RFC 3461 section 4.1); 0 means RCPT had no NOTIFY
 * (the default: failure and, at the MTA's option, delay). NEVER is never
 * combined with another bit. */
#define RELAY_QUEUE_NOTIFY_NEVER 0x1u
#define RELAY_QUEUE_NOTIFY_SUCCESS 0x2u
#define RELAY_QUEUE_NOTIFY_FAILURE 0x4u
#define RELAY_QUEUE_NOTIFY_DELAY 0x8u

/* Every string below is a NUL-terminated heap string owned by the
 * envelope (never NULL in an envelope from this module; a NULL written by
 * a caller counts as ""). Replace one with relay_queue_str_set. "" means
 * absent for the optional ones. Text must be UTF-8.
 *
 * "Strict" strings (addresses, orcpt, envid, route) must hold no control
 * characters and fit their limit, or a write fails: they come from the
 * SMTP layer, which has validated them. "Free text" (client fields,
 * last_error) comes from peers: a write replaces control characters and
 * invalid UTF-8 with '?' and truncates it to its limit, in the file only. */
struct relay_queue_rcpt {
	char *address; /* strict, 1..RELAY_QUEUE_ADDR_MAX */
	enum relay_queue_rcpt_state state;
	uint32_t attempts;    /* delivery attempts so far */
	int64_t next_attempt; /* unix seconds; 0 = as soon as possible */
	char *last_error;     /* free text: the last failure, "" if none */
	char *route;          /* strict: opaque to the queue, for delivery */
	unsigned notify;      /* RELAY_QUEUE_NOTIFY_* bits */
	char *orcpt;          /* strict: DSN ORCPT "type;xtext", "" if none */
};

/* Who handed us the message, for the Received header added later. */
struct relay_queue_client {
	char *helo;  /* EHLO/HELO argument */
	char *addr;  /* IP address literal */
	char *rdns;  /* verified reverse name, "" if none */
	char *proto; /* "SMTP", "ESMTP", "ESMTPS", "ESMTPSA", ... */
	char *tls;   /* e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384", "" if none */
	char *auth;  /* authenticated user (submission), "" if none */
};

struct relay_queue_envelope {
	/* id, size and sha256 are set by relay_queue_commit. */
	char id[RELAY_QUEUE_ID_SIZE];
	uint64_t size;    /* bytes in <id>.msg */
	char sha256[65];  /* of <id>.msg, lower-case hex */
	int64_t received; /* unix seconds; commit sets it if 0 */
	char *sender;     /* strict; "" is the null sender <> */
	struct relay_queue_client client;
	enum relay_queue_body body;
	bool smtputf8;
	enum relay_queue_dsn_ret dsn_ret;
	char *dsn_envid;   /* strict, "" if none */
	/* Submitted by a mailbox node through the egress listener (signed
	 * there): delivery routes each recipient by its domain, a local
	 * account over LMTP, any other domain out through egress. Written
	 * as envelope format 2; false in format 1 files. */
	bool outbound;
	size_t rcpt_count; /* 1..RELAY_QUEUE_MAX_RCPTS to be written */
	struct relay_queue_rcpt *rcpts;
};

/* ---- envelopes (pure data; no I/O, any thread) ---- */

/* A new envelope with every string "" and no recipients. */
struct relay_queue_envelope *relay_queue_envelope_new(void);
/* NULL-safe; frees every string and sets *env to NULL. */
void relay_queue_envelope_free(struct relay_queue_envelope **env);
/* Append a pending recipient (a copy of address, all else zero/""). The
 * returned pointer, like every rcpts pointer, is valid until the next
 * add. */
struct relay_queue_rcpt *
relay_queue_envelope_add_rcpt(struct relay_queue_envelope *env,
                              const char *address);
/* Number of recipients still pending. */
size_t relay_queue_envelope_pending(const struct relay_queue_envelope *env);
/* Free *field and store a copy of value (NULL stores ""). */
void relay_queue_str_set(char **field, const char *value);

/* The envelope as one line of JSON ending in "\n" (heap string, caller
 * frees), after the write checks above; NULL with error_r if they fail. */
char *relay_queue_envelope_format(const struct relay_queue_envelope *env,
                                  const char **error_r);
/* Parse and strictly validate an envelope file's bytes (any bytes: a
 * corrupt file yields -1 with the reason, never a crash). On success
 * *env_r is a new envelope the caller frees. */
int relay_queue_envelope_parse(const char *buf, size_t len,
                               struct relay_queue_envelope **env_r,
                               const char **error_r);

/* True when id has the queue id syntax (lets callers check ids that came
 * from mailctl before they reach a file name). */
bool relay_queue_id_valid(const char *id);

/* ---- the spool (blocking I/O: worker threads only) ---- */

/* Open the spool at dir, creating dir (its parent must exist) and its
 * incoming/, queue/ and corrupt/ folders (mode 0700), and take an
 * exclusive flock on dir/lock: a second opener, in this process or
 * another, fails with "spool ... is in use (pid N)". Then recover: every
 * file in incoming/ is deleted (never acknowledged), as is every
 * <id>.msg in queue/ without an <id>.env (a commit or a removal that did
 * not finish) and every update's temporary file. settings may be NULL. */
int relay_queue_open(const char *dir,
                     const struct relay_queue_settings *settings,
                     struct relay_queue **q_r, const char **error_r);
/* Release the lock and free; NULL-safe, sets *q to NULL. Every message
 * begun must have been committed or aborted. */
void relay_queue_close(struct relay_queue **q);

/* A new unique id (see RELAY_QUEUE_ID_LEN): strictly greater than every
 * id this queue issued before and than every id found in the spool at
 * open, even if the clock went back. Thread-safe. */
int relay_queue_id_new(struct relay_queue *q, char id_r[RELAY_QUEUE_ID_SIZE],
                       const char **error_r);

/* Start receiving a message: creates incoming/<id>.msg. *msg_r is owned
 * by the caller until relay_queue_commit or relay_queue_abort. */
int relay_queue_begin(struct relay_queue *q, struct relay_queue_msg **msg_r,
                      const char **error_r);
/* The message's queue id (valid while msg lives; copy it for later). */
const char *relay_queue_msg_id(const struct relay_queue_msg *msg);
/* Append message bytes (buffered). Fails when the message would exceed
 * max_message_size (relay_queue_msg_too_big then says so: answer 552, not
 * 451) or on a write error; after a failure the message can only be
 * aborted. */
int relay_queue_append(struct relay_queue_msg *msg, const void *data,
                       size_t len, const char **error_r);
bool relay_queue_msg_too_big(const struct relay_queue_msg *msg);
/* Read back what was appended so far (buffered bytes are written
 * first): a new read-only fd of the content file, to mmap or read; the
 * caller closes it. Appending may continue. For a policy that must see
 * the whole message before it is committed (the egress signs it). */
int relay_queue_msg_content_open(struct relay_queue_msg *msg, int *fd_r,
                                 const char **error_r);
/* Put len bytes in front of the content (DKIM-Signature fields computed
 * over the whole message): the content is copied once behind them into a
 * new file, which replaces the old (so an fd from content_open still
 * reads the old bytes). Counts toward the size limit like an append. On
 * -1 the message can only be aborted. */
int relay_queue_msg_prepend(struct relay_queue_msg *msg, const void *data,
                            size_t len, const char **error_r);
/* Drop a message being received; NULL-safe, sets *msg to NULL. */
void relay_queue_abort(struct relay_queue_msg **msg);
/* Make the message durable. Fills env's id, size, sha256 (and received
 * when 0), checks env (at least one recipient), fsyncs the content,
 * writes and fsyncs the envelope, renames both into queue/ (content
 * first) and fsyncs queue/ after each rename. Returns 0 only when the
 * message survives a crash or power loss; then, and only then, the relay
 * may answer 250. On -1 nothing was committed and the files are gone.
 * Consumes *msg either way (sets it to NULL). */
int relay_queue_commit(struct relay_queue_msg **msg,
                       struct relay_queue_envelope *env, const char **error_r);

/* Rewrite a committed message's envelope (recipient states, attempts,
 * errors...) durably: temporary file, fsync, rename over <id>.env, fsync
 * queue/. Fails if the message does not exist. Caller serialises calls
 * per message. */
int relay_queue_update(struct relay_queue *q,
                       const struct relay_queue_envelope *env,
                       const char **error_r);
/* Remove a message (the caller decides when: delivery when no recipient
 * is pending, mailctl queue delete at will). The envelope goes first and
 * that is made durable, then the content. -1 with errno ENOENT when no
 * such message exists. */
int relay_queue_remove(struct relay_queue *q, const char *id,
                       const char **error_r);

/* Open the content for reading (O_RDONLY; read or mmap it). The caller
 * closes *fd_r. The fd stays readable even if the message is removed. */
int relay_queue_content_open(struct relay_queue *q, const char *id, int *fd_r,
                             const char **error_r);
/* Read the whole content and compare its size and SHA-256 with env.
 * Fails with the difference when they do not match. */
int relay_queue_verify(struct relay_queue *q,
                       const struct relay_queue_envelope *env,
                       const char **error_r);

/* Load one message's envelope (read-only, for mailctl queue show). The
 * content must exist and have the envelope's size. -1 with errno ENOENT
 * when absent, EINVAL when the id is not an id or the envelope is
 * corrupt. */
int relay_queue_load(struct relay_queue *q, const char *id,
                     struct relay_queue_envelope **env_r, const char **error_r);

struct relay_queue_scan_stats {
	size_t loaded;   /* passed to the callback */
	size_t corrupt;  /* moved to corrupt/ */
	size_t finished; /* had no pending recipient: removed */
	size_t skipped;  /* unreadable now (I/O error): left in place */
};

/* Startup load: every committed message, in id order (oldest first), is
 * passed to cb, which takes ownership of env. An envelope that fails
 * validation, or whose content is missing or of the wrong size, is moved
 * to corrupt/ with its content and logged; a message with no pending
 * recipient has its removal finished. Call once after relay_queue_open,
 * before the scheduler updates anything. stats_r may be NULL. */
int relay_queue_scan(struct relay_queue *q,
                     void (*cb)(struct relay_queue_envelope *env, void *ctx),
                     void *ctx, struct relay_queue_scan_stats *stats_r,
                     const char **error_r);
/* The same walk without any repair, for mailctl queue list: safe while
 * the relay runs. Messages that cannot be loaded are skipped. */
int relay_queue_list(struct relay_queue *q,
                     void (*cb)(struct relay_queue_envelope *env, void *ctx),
                     void *ctx, const char **error_r);

#endif
