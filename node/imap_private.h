/* Inside the IMAP service of a mailbox node: the session object shared by
 * the files that implement command groups (imap_session.c: connection,
 * command loop, output, untagged updates; imap_auth.c: the
 * not-authenticated state and session-wide commands; imap_mailbox.c:
 * mailbox commands; imap_fetch.c, imap_message.c: commands on the
 * selected mailbox's messages).
 *
 * One command runs at a time per session. A command handler either
 * answers at once, or starts asynchronous work (a store pool job, blob
 * reads) with imap_job_start and answers from its done callback; the
 * session reads no further input until imap_command_done. While a job
 * runs on a worker thread it may read the session's selected view (the
 * loop does not change it then: the session is busy); everything else
 * about the session is loop-thread only. */
#ifndef NODE_IMAP_PRIVATE_H
#define NODE_IMAP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "auth.h"
#include "blob.h"
#include "cfgsync.h"
#include "conn.h"
#include "imap.h"
#include "imap_parser.h"
#include "pool.h"
#include "store_imap.h"
#include "store_pool.h"
#include "strbuf.h"
#include "tls.h"

/* Pipelined output is flushed to the connection in pieces of this size;
 * a command producing more waits for the client to read (DRAIN). */
#define IMAP_FLUSH_CHUNK (64u * 1024)
/* Longest raw line in IDLE and AUTHENTICATE exchanges. */
#define IMAP_RAW_LINE_MAX 8192u
/* Failed logins on one connection before it is closed. */
#define IMAP_AUTH_FAILURES_MAX 3u
/* Sequence-set ranges in one command. */
#define IMAP_MAX_RANGES 10000u

struct node_imap {
	uv_loop_t *loop;
	struct node_imap_settings set;
	struct mc_tls_ctx *tls;
	struct mc_listener *listener, *listener_tls;
	struct imap_sess *sessions; /* linked by next/prev */
	unsigned session_count;
	uint64_t next_id;
	bool closing;
	void (*done)(void *arg);
	void *done_arg;
	unsigned pending_closes; /* listeners not yet closed */
};

enum imap_state {
	IMAP_NOTAUTH,
	IMAP_AUTH,
	IMAP_SELECTED,
	IMAP_LOGOUT,
};

/* Raw-line modes: input that is not an IMAP command. */
enum imap_raw {
	IMAP_RAW_NONE,
	IMAP_RAW_IDLE,         /* waiting for DONE */
	IMAP_RAW_AUTHENTICATE, /* waiting for a SASL response line */
};

/* One message of the selected mailbox (index + 1 is its number). */
struct imap_msg {
	uint32_t uid;
	uint64_t modseq;
	char *flags; /* heap, space-separated */
};

struct imap_view {
	struct node_mailbox mb; /* id, name, uidvalidity; highestmodseq =
	                           what this session has seen */
	struct imap_msg *msgs;
	size_t count, cap;
	bool readonly;
};

/* A command's asynchronous work. */
struct imap_job;
typedef void imap_job_work_fn(struct imap_job *job, struct node_store *store,
                              const char *error);
typedef void imap_job_done_fn(struct imap_job *job);

struct imap_job {
	struct imap_sess *s;
	imap_job_work_fn *work;
	imap_job_done_fn *done;
	void *arg;             /* the command's own state */
	enum node_store_result result;
	char error[256];       /* when result != OK */
	/* Filled by the worker when sync is set: what changed in the
	 * selected mailbox since the session's view. */
	bool sync;
	struct node_mailbox sync_mb;
	struct node_msg_list sync_changed;
	uint32_t *sync_expunged;
	size_t sync_expunged_count;
	enum node_store_result sync_result;
};

struct imap_sess {
	struct node_imap *imap;
	struct imap_sess *next, *prev;
	struct mc_conn *conn;
	struct mc_imap_reader reader;
	uint64_t id;
	enum imap_state state;
	enum imap_raw raw;
	bool tls;
	bool busy;       /* a command is running */
	bool closing;    /* close requested: no more commands */
	bool conn_gone;  /* the conn was freed */
	unsigned pending; /* jobs and blob reads in flight */
	unsigned auth_failures;
	bool condstore, qresync, utf8; /* ENABLEd (or implied) */
	struct mc_strbuf out;  /* output not yet handed to the conn */
	void (*drained)(struct imap_sess *s); /* continue once out is sent */
	struct mc_pool *pool;  /* per command */
	char tag[65];          /* of the command running */
	char cmd[24];
	bool uid_cmd;

	/* After login. */
	uint64_t account_id;
	uint32_t shard;
	char *user; /* the account's address */

	struct imap_view view; /* IMAP_SELECTED */

	uv_timer_t idle_timer; /* IDLE: polls the mailbox */
	bool idle_timer_init;
	bool idle_polling;
	struct node_auth_request *auth_req; /* password check in flight */
	struct mc_scram_server *scram;      /* AUTHENTICATE SCRAM-SHA-256 */
	unsigned scram_step;
	uint64_t scram_account;
	/* The FETCH or SEARCH being answered across loop iterations. */
	struct fetch_req *fetch;
	struct search_req *search;
	struct imap_job *idle_job; /* IDLE poll in flight */
	struct imap_zstream *z;     /* COMPRESS=DEFLATE active */
	struct mc_strbuf zplain;    /* inflated input not taken yet */
	bool zbusy;                 /* zplain is being taken */
	bool idle_done;            /* DONE arrived during a poll */
};

/* ---- imap_session.c ---------------------------------------------------- */

/* Append to the session's output (flushed when the command yields). */
void imap_out(struct imap_sess *s, const void *data, size_t len);
void imap_outs(struct imap_sess *s, const char *str);
void imap_outf(struct imap_sess *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Hand buffered output to the conn as far as it takes it. When then
 * is not NULL it runs once everything buffered has been handed over
 * (at once or after DRAIN events). */
void imap_flush(struct imap_sess *s, void (*then)(struct imap_sess *s));
/* The tagged reply of the running command, then the next command.
 * status "OK"/"NO"/"BAD"; code without brackets or NULL. */
void imap_command_done(struct imap_sess *s, const char *status, const char *code,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Worker side: store is NULL (no connection): record TEMPFAIL with
 * error and return true. */
bool imap_job_no_store(struct imap_job *job, struct node_store *store,
                       const char *error);
/* Worker side: keep err as the job's error text when it failed. */
void imap_job_error(struct imap_job *job, const char *err);
/* Loop side: the tagged NO for a failed job (NONEXISTENT, ALREADYEXISTS,
 * OVERQUOTA, UNAVAILABLE...), what naming the command. */
void imap_job_failed(struct imap_sess *s, struct imap_job *job, const char *what);
/* Start job on the store pool; the session is busy until done has run. */
void imap_job_start(struct imap_sess *s, struct imap_job *job);
/* Apply the changes a job collected (job->sync): untagged EXPUNGE,
 * EXISTS, FETCH FLAGS. allow_expunge false (FETCH, STORE, SEARCH by
 * sequence numbers) keeps everything for later instead. */
void imap_sync_apply(struct imap_sess *s, struct imap_job *job, bool allow_expunge);
/* Worker side of a sync: fill job's sync_* from the store. */
void imap_sync_collect(struct imap_job *job, struct node_store *store);
/* Start a job that only syncs, then answers OK with text (NOOP, CHECK). */
void imap_sync_command(struct imap_sess *s, const char *text);
/* STARTTLS accepted: reply, drop pipelined input, start the handshake. */
void imap_session_starttls(struct imap_sess *s);
/* End the running command without a tagged reply (it was written by
 * the handler) and go on with the next. */
void imap_session_command_end(struct imap_sess *s);
/* Logged in: the reader's post-authentication limits. */
void imap_session_logged_in(struct imap_sess *s);
/* Account for asynchronous work the session waited for (s->pending was
 * raised when it started). Returns false when the session is closing:
 * the caller drops its result (and must not touch s again, which may be
 * freed by this call). */
bool imap_pending_release(struct imap_sess *s);
/* Close the session (after flushing what is buffered). */
void imap_session_close(struct imap_sess *s);

/* Selected view helpers. */
void imap_view_clear(struct imap_view *v);
/* Index of uid in the view, or -1. */
long imap_view_find(const struct imap_view *v, uint32_t uid);
void imap_view_append(struct imap_view *v, uint32_t uid, uint64_t modseq,
                      const char *flags);
void imap_view_remove(struct imap_view *v, size_t index);
uint32_t imap_view_max_uid(const struct imap_view *v);
/* Resolve a sequence set (numbers, or UIDs when uid) to ascending view
 * indexes (no duplicates). -1 with *error_r for a bad set; message
 * numbers out of range are an error, UIDs not present are skipped. */
int imap_view_resolve(const struct imap_view *v, const char *set, size_t len,
                      bool uid, size_t **idx_r, size_t *count_r,
                      const char **error_r);
/* The UIDs of idx[0..n). Heap. */
uint32_t *imap_view_uids(const struct imap_view *v, const size_t *idx, size_t n);

/* Leases: may this node write the session's shard now? */
bool imap_epoch(struct imap_sess *s, uint64_t *epoch_r);
/* Parse "(\Seen $x)" or a single flag token into canonical flags
 * (system flags in canonical case, keywords as given). -1 with
 * *error_r for a bad flag. Pointers into the tokens. */
int imap_parse_flags(const struct mc_imap_token *t, unsigned avail,
                     const char ***flags_r, size_t *n_r, unsigned *used_r,
                     struct mc_pool *pool, const char **error_r);
/* "dd-Mon-yyyy hh:mm:ss +0000". */
void imap_format_date(char buf[64], int64_t t);
/* An astring/mailbox argument as a C string (pool); NULL if not one. */
const char *imap_arg_string(struct imap_sess *s, const struct mc_imap_token *t);
/* Mailbox name as stored: INBOX in any case -> "INBOX". */
const char *imap_mailbox_name(const char *name);

/* ---- imap_compress.c ---- */

/* Inflated input kept before the session stops inflating more. */
#define IMAP_ZPLAIN_MAX (256u * 1024)
void imap_cmd_compress(struct imap_sess *s, const struct mc_imap_command *cmd);
/* Inflate data into s->zplain. -1 with *error_r on a broken stream. */
int imap_compress_inflate(struct imap_sess *s, const char *data, size_t len,
                          const char **error_r);
/* Deflate data (sync flush) and write it to the conn. */
int imap_compress_write(struct imap_sess *s, const char *data, size_t len,
                        const char **error_r);
void imap_compress_free(struct imap_sess *s);

/* ---- command groups ---------------------------------------------------- */

typedef void imap_cmd_fn(struct imap_sess *s, const struct mc_imap_command *cmd);

/* imap_auth.c */
imap_cmd_fn imap_cmd_capability, imap_cmd_noop, imap_cmd_logout,
        imap_cmd_starttls, imap_cmd_login, imap_cmd_authenticate, imap_cmd_id,
        imap_cmd_enable, imap_cmd_namespace;
void imap_authenticate_line(struct imap_sess *s, const char *line, size_t len);
void imap_capabilities(struct imap_sess *s, struct mc_strbuf *b);

/* imap_mailbox.c */
imap_cmd_fn imap_cmd_select, imap_cmd_create, imap_cmd_delete,
        imap_cmd_rename, imap_cmd_subscribe, imap_cmd_list, imap_cmd_status,
        imap_cmd_append, imap_cmd_getquotaroot, imap_cmd_getquota,
        imap_cmd_setquota, imap_cmd_close, imap_cmd_unselect, imap_cmd_check;

/* imap_fetch.c */
imap_cmd_fn imap_cmd_fetch;
/* Free a FETCH still being answered (the session is going away). */
void imap_fetch_abort(struct imap_sess *s);

/* imap_message.c */
imap_cmd_fn imap_cmd_store, imap_cmd_copy, imap_cmd_expunge,
        imap_cmd_search, imap_cmd_idle;
void imap_idle_line(struct imap_sess *s, const char *line, size_t len);
/* Something changed for the session's account: an idling session looks. */
void imap_idle_poke(struct imap_sess *s);
void imap_search_abort(struct imap_sess *s);

#endif
