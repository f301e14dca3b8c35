/* Internals of the SMTP/LMTP client shared by its files: smtp_client.c
 * (the session: state machine, outcomes, lifetime), smtp_client_content.c
 * (the content pump), smtp_client_setup.c (checking and copying what
 * mc_smtp_client_start is given, connecting through lib/mx_connect.h)
 * and smtp_client_auth.c (AUTH). Not for use outside them. */
#ifndef MC_SMTP_CLIENT_PRIVATE_H
#define MC_SMTP_CLIENT_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "conn.h"
#include "smtp_client.h"

struct mc_conn;
struct mc_mx_connect;
struct mc_pool;
struct smtp_client_scram;

/* Content is read and stuffed this much at a time; stuffing at most
 * doubles it, so one write stays far below the conn's output_max even
 * when it starts just under the high-water mark. */
#define SMTP_CLIENT_CHUNK (32 * 1024)

enum smtp_client_state {
	SC_CONNECTING,
	SC_GREETING,
	SC_EHLO,
	SC_HELO,
	SC_STARTTLS,
	SC_HANDSHAKE,
	SC_AUTH,     /* an AUTH exchange (smtp_client_auth.c) */
	SC_ENVELOPE, /* MAIL and RCPTs, pipelined or one by one */
	SC_DATA,     /* waiting for the 354 */
	SC_CONTENT,  /* sending the message */
	SC_DOT,      /* waiting for the reply or replies to the end */
	SC_IDLE,     /* after a transaction, kept for the next message */
	SC_RSET,     /* the next message: waiting for the reply to RSET */
	SC_QUIT,
	SC_CLOSED,
};

enum smtp_client_rcpt_state {
	R_PENDING,  /* no reply yet */
	R_ACCEPTED, /* RCPT answered 2xx, waiting for DATA */
	R_DECIDED,
};

struct mc_smtp_client {
	uv_loop_t *loop;
	struct mc_pool *pool;  /* the connection's: settings, TLS, host */
	struct mc_pool *mpool; /* the message's: envelope, results, texts */
	struct mc_conn *conn; /* the current connection; NULL once closed */
	int conns_open;       /* connections not yet freed */
	enum smtp_client_state state;
	struct mc_smtp_client_settings set; /* strings in pool */
	struct mc_smtp_client_timeouts to;  /* resolved */
	enum mc_smtp_client_tls_mode tls_mode;
	const char *remote, *log_id;

	/* the message (strings in pool; content borrowed) */
	const char *sender, *envid, *ret;
	struct mc_smtp_client_rcpt *rcpts;
	size_t rcpt_count;
	unsigned flags;
	const unsigned char *data;
	uint64_t size;
	bool use_fd;
	int fd;

	/* connecting by name (set.hosts; strings in pool) */
	struct mc_mx_connect *mx; /* while connecting */
	const char *host;         /* the host connected to, or "" */
	const char *connect_errors;
	uv_timer_t abort_timer; /* abort while mx connects: done from it */

	/* AUTH: heap copies, wiped and freed as soon as AUTH is over */
	char *auth_user, *auth_pass;
	unsigned auth_mechs;
	const char *auth_mech; /* the mechanism in use or used */
	unsigned auth_step;
	struct smtp_client_scram *scram;

	struct mc_smtp_client_reply_parser parser;
	struct mc_smtp_client_caps caps;
	bool tls_active, tls_verified;
	const char *tls_version, *tls_cipher;

	/* envelope: command 0 is MAIL, command i + 1 is RCPT i */
	size_t cmd_sent, cmd_answered, accepted, dot_next;
	bool mail_failed;

	/* content */
	struct mc_smtp_client_stuffer stuffer;
	uint64_t offset; /* content bytes stuffed (and, for fd, read) */
	char *rbuf;      /* fd: [roff, rlen) read and not yet stuffed */
	size_t rlen, roff;
	bool eof, fs_pending;
	uv_fs_t fs_req;
	char *wbuf;

	/* result */
	struct mc_smtp_client_rcpt_result *results;
	unsigned char *rstate;
	enum mc_smtp_client_status status;
	const char *error;
	bool final, reported, aborted;
	mc_smtp_client_done_cb *done;
	void *ctx;

	/* reuse (smtp_client_reuse.c) */
	uint64_t connected_at; /* uv_now when the connection came up */
	unsigned messages;     /* transactions begun on this connection */
	bool reusable, held;
	mc_smtp_client_closed_cb *closed;
	void *closed_ctx;
};

/* smtp_client.c */
void mc_smtp_client_set_state(struct mc_smtp_client *c,
                              enum smtp_client_state st);
/* The session broke: every recipient the server did not decide is a
 * temporary failure with the client's enhanced code and text. */
void mc_smtp_client_fail(struct mc_smtp_client *c,
                         enum mc_smtp_client_status status,
                         const char *enhanced, const char *text);
/* Every recipient not decided gets outcome with the client's code and
 * text; the session ends with QUIT when polite, else a reset. */
void mc_smtp_client_end(struct mc_smtp_client *c,
                        enum mc_smtp_client_status status,
                        enum mc_smtp_client_outcome outcome,
                        const char *enhanced, const char *text, bool polite);
/* The server refused the session as a whole with reply: every recipient
 * not decided gets it; the caller says QUIT or resets. */
void mc_smtp_client_refuse(struct mc_smtp_client *c,
                           const struct mc_smtp_client_reply *reply,
                           const char *command,
                           enum mc_smtp_client_status status);
void mc_smtp_client_quit(struct mc_smtp_client *c);
void mc_smtp_client_protocol_error(struct mc_smtp_client *c, const char *what,
                                   const struct mc_smtp_client_reply *reply);
/* After AUTH (or without it): MAIL, RCPTs. */
void mc_smtp_client_begin_transaction(struct mc_smtp_client *c);
/* The connection is up: greeting or implicit TLS. */
void mc_smtp_client_connected(struct mc_smtp_client *c);
void mc_smtp_client_write_failed(struct mc_smtp_client *c, const char *error);
/* Report the result and free the client when nothing holds it. */
void mc_smtp_client_settle(struct mc_smtp_client *c);

int mc_smtp_client_send_line(struct mc_smtp_client *c, const char **error_r,
                             const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Close the connection now (reset) or after its pending output. */
void mc_smtp_client_close_conn(struct mc_smtp_client *c, bool reset);

/* smtp_client_reuse.c */
/* The transaction is over and every recipient decided by replies: may
 * the connection carry another message? */
bool mc_smtp_client_reusable(const struct mc_smtp_client *c);
/* A reply or connection event while held (SC_IDLE or not yet held after
 * a reusable result): the connection ends, closed is called if held. */
void mc_smtp_client_idle_event(struct mc_smtp_client *c, bool polite);
/* SC_RSET: the reply to RSET. */
void mc_smtp_client_rset_reply(struct mc_smtp_client *c,
                               const struct mc_smtp_client_reply *reply);

/* smtp_client_content.c: stuff and write content while the connection
 * takes it; the end of data moves the session to SC_DOT. */
void mc_smtp_client_pump_content(struct mc_smtp_client *c);

/* smtp_client_setup.c: check set and msg (NULL, or why they are unfit)
 * and copy them into c (strings into c->pool, credentials to the heap). */
const char *mc_smtp_client_check(const struct mc_smtp_client_settings *set,
                                 const struct mc_smtp_client_message *msg);
const char *
mc_smtp_client_check_message(const struct mc_smtp_client_message *msg);
/* The message alone, into c->mpool (emptied first). */
void mc_smtp_client_copy_message(struct mc_smtp_client *c,
                                 const struct mc_smtp_client_message *msg);
void mc_smtp_client_copy(struct mc_smtp_client *c,
                         const struct mc_smtp_client_settings *set,
                         const struct mc_smtp_client_message *msg);
/* Connect through lib/mx_connect.h (set.hosts) with the session's conn
 * callbacks; the result comes to mc_smtp_client_connected or ends the
 * session. -1 with error_r when it cannot start. */
int mc_smtp_client_mx_start(struct mc_smtp_client *c,
                            const struct mc_conn_callbacks *cb,
                            const struct mc_conn_settings *cs,
                            const char **error_r);
/* Abort while mx connects: done follows from a zero timer. */
void mc_smtp_client_mx_abort(struct mc_smtp_client *c);

/* smtp_client_auth.c */
/* After the EHLO (TLS active or not): AUTH if credentials were given,
 * then the transaction. */
void mc_smtp_client_auth_start(struct mc_smtp_client *c);
void mc_smtp_client_auth_reply(struct mc_smtp_client *c,
                               const struct mc_smtp_client_reply *reply);
/* Wipe and free the credentials and any exchange state (idempotent). */
void mc_smtp_client_auth_wipe(struct mc_smtp_client *c);

#endif
