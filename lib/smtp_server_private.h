/* Internals shared by the two halves of the SMTP server engine:
 * smtp_server.c (server object, session lifetime, connection callbacks,
 * the input pump, request bookkeeping, reply formatting) and
 * smtp_session.c (the command table, request completions, DATA, STARTTLS
 * and AUTH). Not for use outside lib/smtp_server*.c and
 * lib/smtp_session.c. */
#ifndef MC_SMTP_SERVER_PRIVATE_H
#define MC_SMTP_SERVER_PRIVATE_H

#include "pool.h"
#include "smtp_server.h"

/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with its CRLF. */
#define SMTP_REPLY_MAX 512

enum smtp_state {
	SMTP_S_CONNECT, /* before the banner (connect request, implicit TLS) */
	SMTP_S_REFUSED, /* 554 banner sent: 503 to all but QUIT */
	SMTP_S_GREETED, /* banner sent, no HELO yet */
	SMTP_S_READY,   /* HELO/EHLO/LHLO accepted, no transaction */
	SMTP_S_MAIL,    /* MAIL accepted, no recipient yet */
	SMTP_S_RCPT,    /* at least one recipient accepted */
	SMTP_S_DATA,    /* receiving content */
	SMTP_S_AUTH,    /* SASL exchange: the next line is a response */
	SMTP_S_TLS,     /* TLS handshake in progress */
	SMTP_S_CLOSING, /* closed or closing; waiting for teardown */
};

/* Outstanding policy request. */
enum smtp_req {
	SMTP_REQ_NONE,
	SMTP_REQ_CONNECT,
	SMTP_REQ_HELO,
	SMTP_REQ_MAIL,
	SMTP_REQ_RCPT,
	SMTP_REQ_DATA_START,
	SMTP_REQ_DATA_END,
	SMTP_REQ_AUTH,
};

struct smtp_txn {
	struct mc_pool *pool; /* everything below lives in it */
	struct mc_smtp_txn pub;
	struct mc_smtp_rcpt *rcpts;
	size_t rcpt_cap;
};

struct mc_listener;

struct mc_smtp_server {
	uv_loop_t *loop;
	struct mc_smtp_server_settings set; /* defaults resolved */
	char *hostname;
	char *auth_mechanisms;
	struct mc_smtp_policy policy;
	void *ctx;
	struct mc_smtp_session *sessions; /* doubly linked, live ones */
	unsigned count;
	bool closing;
	struct mc_listener *listener; /* from mc_smtp_server_listen, or NULL */
	bool listener_closing;        /* its close callback has not run yet */
	mc_smtp_server_close_cb *close_cb;
	void *close_ctx;
};

/* A reply kept for later: shutdown or deadline during a request. */
struct smtp_late_reply {
	unsigned code;
	const char *enhanced, *text; /* static */
};

struct mc_smtp_session {
	struct mc_smtp_server *server;
	struct mc_smtp_session *prev, *next;
	struct mc_conn *conn; /* not used once state is SMTP_S_CLOSING */
	uv_idle_t kick;       /* resume input processing from the loop */
	uv_timer_t req_timer; /* bounds the policy's answer */
	int refs;             /* conn, kick, req_timer, policy */

	enum smtp_state state;
	enum smtp_req req;
	unsigned req_left; /* replies still due for req */
	bool running;      /* smtp_run is on the stack */
	bool paused;       /* mc_conn_pause in force */
	bool policy_done;  /* closed() delivered */
	bool esmtp;        /* EHLO/LHLO rather than HELO */
	bool authenticated;
	bool tls;
	bool banner_sent;
	bool close_pending; /* send late_reply and close after req */
	struct smtp_late_reply late_reply;
	unsigned bad_commands;
	uint64_t messages; /* completed transactions, for the log */

	struct mc_smtp_limits limits;
	struct mc_smtp_lines lines;
	struct mc_smtp_data data;
	/* Input presented by the conn's read callback, while it runs. */
	const char *in;
	size_t in_len, in_off;
	/* The command being handled: a copy of its line, parsed in place,
	 * so its strings survive until the request is completed. */
	char *cmd_line;
	struct mc_smtp_cmd cmd;
	char *auth_mech; /* AUTH in progress */

	struct smtp_txn *txn;
	char *helo;
	void *user;
	char id[17];
	char peer_ip[48], local_ip[48];
	uint16_t peer_port, local_port;
	char tls_version[32], tls_cipher[96];
	int tls_bits;
};

/* smtp_server.c */
void smtp_set_state(struct mc_smtp_session *s, enum smtp_state state);
const char *smtp_state_name(enum smtp_state state);
/* One reply line; more: "250-" rather than "250 ". enhanced NULL: none.
 * Enhanced codes are dropped when ENHANCEDSTATUSCODES is off. */
void smtp_reply_line(struct mc_smtp_session *s, unsigned code, bool more,
                     const char *enhanced, const char *text);
void smtp_reply(struct mc_smtp_session *s, unsigned code, const char *enhanced,
                const char *text);
/* Reply to a protocol error of the client's and count it; past the limit
 * "421 4.7.0" and close. */
void smtp_bad_command(struct mc_smtp_session *s, unsigned code,
                      const char *enhanced, const char *text);
/* Send "code <host> text" (if code != 0) and close the session. */
void smtp_close(struct mc_smtp_session *s, unsigned code, const char *enhanced,
                const char *text);
/* Mark a request outstanding (replies answers due) and bound it. */
void smtp_request_begin(struct mc_smtp_session *s, enum smtp_req req,
                        unsigned replies);
/* Input bytes for DATA from the conn's read callback (NULL when none). */
const char *smtp_input(struct mc_smtp_session *s, size_t *len_r);
void smtp_input_consume(struct mc_smtp_session *s, size_t n);
/* Drop every buffered input byte (STARTTLS). Returns how many. */
size_t smtp_input_discard(struct mc_smtp_session *s);
void smtp_txn_end(struct mc_smtp_session *s, enum mc_smtp_txn_end how);
void smtp_txn_free(struct smtp_txn *txn);
/* Handle buffered input until it runs out or must wait; adjusts pause. */
void smtp_run(struct mc_smtp_session *s);

/* smtp_session.c */
void smtp_session_start(struct mc_smtp_session *s);
void smtp_session_line(struct mc_smtp_session *s,
                       const struct mc_smtp_line *line);
/* Feed DATA input; *used_r counts what was taken (up to the end). */
void smtp_session_data(struct mc_smtp_session *s, const void *in, size_t len,
                       size_t *used_r);
void smtp_session_complete(struct mc_smtp_session *s, enum smtp_req req,
                           bool last, unsigned code, const char *enhanced,
                           const char *text);

#endif
