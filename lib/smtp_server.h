/* The SMTP/LMTP server engine: the mechanism shared by the relay's MX
 * listener, the mailbox node's LMTP listener and (later) submission. It
 * speaks the protocol - RFC 5321 with EHLO/HELO, MAIL, RCPT, DATA, RSET,
 * NOOP, VRFY, EXPN, HELP, QUIT; RFC 2033 LMTP (LHLO, one reply per
 * recipient after DATA); STARTTLS (RFC 3207, discarding anything pipelined
 * before the handshake); PIPELINING (RFC 2920); SIZE (RFC 1870); 8BITMIME
 * (RFC 6152); ENHANCEDSTATUSCODES (RFC 2034); SMTPUTF8 (RFC 6531); DSN
 * parameters (RFC 3461) when enabled - with per-state timeouts, line,
 * message, recipient and error limits, and output back-pressure. Every
 * decision about mail (who may connect, which sender and recipients are
 * acceptable, where the content goes, when it is durable) belongs to the
 * daemon's POLICY, asked through the callbacks of struct mc_smtp_policy.
 *
 * Requests and replies. connect, helo, mail, rcpt, data_start, data_end
 * and auth are requests: the engine stops reading commands until the
 * policy completes the request with mc_smtp_session_reply (or
 * mc_smtp_session_accept for the default positive reply), either inside
 * the callback or later from any loop callback (a lookup, an fsync). Every
 * request must be completed exactly once - also after the client went
 * away, when the reply is simply dropped (see closed below). In LMTP mode
 * data_end takes one reply per accepted recipient, in RCPT order. Replies
 * are sent in command order, so pipelined clients see them in sequence.
 *
 * Notifications (data_content, txn_end, closed) need no reply. Content
 * arrives dot-unstuffed with CRLF line ends; the sink cannot fail the
 * stream: a policy that fails to store content remembers it and answers
 * data_end with a 4xx. txn_end tells that a transaction (begun by an
 * accepted MAIL) ended and why: after the data_end replies, RSET, a new
 * EHLO, a refused DATA, an oversized message, or the connection ending.
 * closed is the last callback for a session: it runs from the loop (never
 * inside an mc_smtp_* call) once the connection is gone and no request is
 * outstanding (also for a session whose connect was never asked, when the
 * connection failed at once); the session pointer is invalid after it
 * returns. The transaction (mc_smtp_session_txn) is gone once the last
 * data_end reply was given: read what you need from it before replying.
 * While a request is outstanding the connection is not read, so a client
 * that vanished is noticed only after the reply.
 *
 * The relay must not answer data_end with 2xx before the message is
 * durable (queue file fsynced): the engine never sends a positive reply
 * to the end of data on its own.
 *
 * Thread affinity: everything here runs on the loop's thread, including
 * every callback; mc_smtp_session_reply must be called on it too. */
#ifndef MC_SMTP_SERVER_H
#define MC_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "conn.h"
#include "smtp_parser.h"

struct mc_smtp_server;
struct mc_smtp_session;
struct mc_tls_ctx;

enum mc_smtp_mode {
	MC_SMTP_MODE_SMTP = 0, /* HELO/EHLO, one reply after DATA */
	MC_SMTP_MODE_LMTP,     /* LHLO only, one reply per recipient */
};

/* Extensions to advertise in the EHLO/LHLO reply. SIZE is always
 * advertised (with the limit), STARTTLS whenever a TLS context is set and
 * the session is not yet in TLS, AUTH when the policy has an auth hook
 * (see auth_mechanisms). CHUNKING/BINARYMIME are not implemented: BDAT is
 * answered 502. */
#define MC_SMTP_EXT_PIPELINING 0x01u
#define MC_SMTP_EXT_8BITMIME 0x02u
#define MC_SMTP_EXT_SMTPUTF8 0x04u
#define MC_SMTP_EXT_ENHANCEDSTATUSCODES 0x08u
#define MC_SMTP_EXT_DSN 0x10u /* the policy then honours NOTIFY/RET */
#define MC_SMTP_EXT_DEFAULT                                                    \
	(MC_SMTP_EXT_PIPELINING | MC_SMTP_EXT_8BITMIME |                       \
	 MC_SMTP_EXT_SMTPUTF8 | MC_SMTP_EXT_ENHANCEDSTATUSCODES)

/* RFC 5321 4.5.3.2. Zero picks the default in the comment. */
struct mc_smtp_timeouts {
	uint64_t initial_ms;    /* 300 000: the policy's connect answer */
	uint64_t command_ms;    /* 300 000: waiting for a command; also
	                           bounds the policy's HELO/MAIL/RCPT/DATA
	                           and AUTH answers */
	uint64_t data_block_ms; /* 180 000: between two reads in DATA */
	uint64_t data_end_ms;   /* 600 000: the policy's data_end answers */
};

/* Start from mc_smtp_server_settings_init(); zero in a numeric member
 * then also picks its default. */
struct mc_smtp_server_settings {
	/* Our name in the banner, EHLO reply and 421 replies; copied. */
	const char *hostname;
	enum mc_smtp_mode mode;
	/* Offered with STARTTLS (or used from the first byte with
	 * implicit_tls); NULL: no TLS. Borrowed: it must outlive the server
	 * or be replaced with mc_smtp_server_set_tls first. */
	struct mc_tls_ctx *tls;
	bool implicit_tls;
	unsigned extensions;       /* MC_SMTP_EXT_*; init: _DEFAULT */
	uint64_t max_message;      /* SIZE; MC_SMTP_MESSAGE_DEFAULT */
	unsigned max_recipients;   /* per transaction; 100 (RFC 5321
	                              4.5.3.1.8's minimum); above: 452 */
	unsigned max_bad_commands; /* protocol errors; 20; then 421 */
	size_t max_line;           /* MC_SMTP_LINE_DEFAULT */
	struct mc_smtp_timeouts timeouts;
	uint64_t deadline_ms; /* whole session; 3 600 000 */
	/* Buffer sizes for each connection (its timeouts are replaced by
	 * the ones above). Zero members: conn.h defaults. */
	struct mc_conn_settings conn;
	/* SASL mechanisms advertised as "AUTH <list>" when the policy has
	 * an auth hook, e.g. "PLAIN"; only over TLS unless
	 * auth_without_tls. */
	const char *auth_mechanisms;
	bool auth_without_tls;
};

/* Fill *set with the defaults (hostname NULL: the caller sets it). */
void mc_smtp_server_settings_init(struct mc_smtp_server_settings *set);

/* How a transaction ended (txn_end). */
enum mc_smtp_txn_end {
	MC_SMTP_TXN_DONE,    /* data_end was answered (whatever the codes) */
	MC_SMTP_TXN_RESET,   /* RSET, a new HELO/EHLO/LHLO */
	MC_SMTP_TXN_REFUSED, /* data_start refused */
	MC_SMTP_TXN_TOO_BIG, /* content over max_message: 552 sent */
	MC_SMTP_TXN_CLOSED,  /* connection ended, timeout, shutdown */
};

const char *mc_smtp_txn_end_name(enum mc_smtp_txn_end how);

/* An accepted recipient. Strings live as long as the transaction. */
struct mc_smtp_rcpt {
	const char *mailbox; /* "local@domain" as sent; "Postmaster" */
	const char *domain;  /* after the '@'; "" for Postmaster */
	unsigned notify;     /* MC_SMTP_NOTIFY_*, 0 when absent */
	const char *orcpt_type, *orcpt; /* xtext as sent, or NULL */
	bool utf8;
};

/* The current transaction, read-only for the policy; valid from the
 * accepted MAIL until txn_end returns. */
struct mc_smtp_txn {
	const char *mail_from; /* "local@domain", "" for the null path */
	bool null_sender;
	bool has_size;
	uint64_t declared_size;           /* MAIL SIZE= */
	enum mc_smtp_body body;           /* MAIL BODY= */
	bool smtputf8;                    /* MAIL SMTPUTF8 */
	enum mc_smtp_ret ret;             /* DSN RET= */
	const char *envid;                /* DSN ENVID= xtext, or NULL */
	const char *auth;                 /* MAIL AUTH= xtext, or NULL */
	const struct mc_smtp_rcpt *rcpts; /* accepted, in RCPT order */
	size_t rcpt_count;
	/* After the end of data (data_end and later): */
	uint64_t size;    /* content octets (unstuffed, CRLF line ends) */
	uint64_t bare_lf; /* bare LFs normalised to CRLF */
	bool eightbit;    /* a byte >= 0x80 in the content */
	bool nul;         /* a NUL byte in the content */
};

/* Every callback gets the session and the ctx given to
 * mc_smtp_server_new. A NULL request callback accepts; a NULL
 * notification is skipped. Parsed strings (name, path, params) are valid
 * until the request is completed; the transaction's copies
 * (mc_smtp_session_txn) live longer. */
struct mc_smtp_policy {
	/* Request. accept: the banner "220 <host> ESMTP"; a 5xx becomes
	 * "554 <host> <text>" and then every command but QUIT gets 503
	 * (RFC 5321 3.1); a 4xx becomes "421 <host> <text>" and a close. */
	void (*connect)(struct mc_smtp_session *s, void *ctx);
	/* Request: HELO/EHLO/LHLO name (not validated: that is policy).
	 * accept: the engine sends the greeting and extension list. */
	void (*helo)(struct mc_smtp_session *s, void *ctx, const char *name);
	/* Request: MAIL FROM, after the engine's own checks (sequence,
	 * SIZE limit, advertised parameters). accept: 250 2.1.0 Ok. */
	void (*mail)(struct mc_smtp_session *s, void *ctx,
	             const struct mc_smtp_path *from,
	             const struct mc_smtp_params *params);
	/* Request: RCPT TO, after the recipient limit. A 2xx adds it to
	 * the transaction. accept: 250 2.1.5 Ok. */
	void (*rcpt)(struct mc_smtp_session *s, void *ctx,
	             const struct mc_smtp_path *to,
	             const struct mc_smtp_params *params);
	/* Request: DATA with at least one accepted recipient. A 2xx/3xx
	 * (accept) sends 354; anything else ends the transaction. The
	 * policy opens its spool here (and may write trace headers). */
	void (*data_start)(struct mc_smtp_session *s, void *ctx);
	/* Notification: content, data valid during the call only. */
	void (*data_content)(struct mc_smtp_session *s, void *ctx,
	                     const void *data, size_t len);
	/* Request: the end of data, content within the size limit (else
	 * the engine answered 552 5.3.4 itself). SMTP: one reply; LMTP:
	 * one per accepted recipient, in RCPT order. Reply 2xx only once
	 * the message is durable. accept: 250 2.0.0 Ok. */
	void (*data_end)(struct mc_smtp_session *s, void *ctx);
	/* Request, only when set: AUTH mechanism [initial-response]
	 * (mechanism upper-cased, response as sent, "=" for empty), then
	 * once per client line after a 334 reply (mechanism NULL, response
	 * the line; "*" is answered 501 5.0.0 by the engine). Reply 334
	 * with a base64 challenge as text to continue, 235 2.7.0 on
	 * success (the session is then authenticated), 535 5.7.8 or 504
	 * 5.5.4 to fail. Never log the responses: they carry secrets. */
	void (*auth)(struct mc_smtp_session *s, void *ctx,
	             const char *mechanism, const char *response);
	/* Notification: the transaction ended (see enum mc_smtp_txn_end);
	 * the policy drops its per-transaction state (spool file). Called
	 * only for transactions whose MAIL was accepted. */
	void (*txn_end)(struct mc_smtp_session *s, void *ctx,
	                enum mc_smtp_txn_end how);
	/* Notification, last: see the top of this file. */
	void (*closed)(struct mc_smtp_session *s, void *ctx);
};

/* ---- server ------------------------------------------------------------ */

/* Create a server (no socket: connections come from a listener through
 * mc_smtp_server_accept). -1 with error_r for bad settings (no hostname,
 * implicit TLS without a context). policy is copied; ctx is passed to
 * every callback. */
int mc_smtp_server_new(uv_loop_t *loop,
                       const struct mc_smtp_server_settings *set,
                       const struct mc_smtp_policy *policy, void *ctx,
                       struct mc_smtp_server **server_r, const char **error_r);

/* Serve an accepted connection (call from the listener's accept
 * callback). The session owns conn from here on; on failure it is
 * closed. Not after mc_smtp_server_close. */
void mc_smtp_server_accept(struct mc_smtp_server *server, struct mc_conn *conn);

/* Listen on host (an IP literal) and port (0: any) and serve every
 * connection accepted there, at most max_conns at once (0: the listener's
 * default); the listener is closed with the server. One per server. -1
 * with error_r when the address cannot be bound. */
int mc_smtp_server_listen(struct mc_smtp_server *server, const char *host,
                          uint16_t port, unsigned max_conns,
                          const char **error_r);
/* The bound "host:port" ("[v6]:port"), or NULL when not listening. */
const char *mc_smtp_server_address(const struct mc_smtp_server *server);

/* Replace the TLS context for sessions that start TLS from now on
 * (reload); NULL stops offering STARTTLS. Borrowed like settings.tls. */
void mc_smtp_server_set_tls(struct mc_smtp_server *server,
                            struct mc_tls_ctx *tls);

/* Sessions alive (including those waiting for a request to complete). */
unsigned mc_smtp_server_sessions(const struct mc_smtp_server *server);

typedef void mc_smtp_server_close_cb(void *ctx);
/* Shut down: every session is sent "421 4.3.2 <host> Service shutting
 * down" and closed - at once when idle, after the outstanding request
 * otherwise (a message being made durable still gets its reply), and the
 * listener (mc_smtp_server_listen) is closed. cb (may be NULL) runs once
 * the last session and the listener are freed, then the server is freed;
 * with no session alive and no listener that happens before this
 * returns. The
 * server pointer must not be used after this call. */
void mc_smtp_server_close(struct mc_smtp_server *server,
                          mc_smtp_server_close_cb *cb, void *ctx);

/* ---- session: completing requests -------------------------------------- */

/* Complete the outstanding request with "code enhanced text". enhanced
 * (e.g. "5.1.1") may be NULL for the class default ("5.0.0"); a code that
 * does not match it is corrected. text may be NULL for the engine's
 * default text; control characters are replaced and the line is cut to
 * 512 octets. For connect and helo a positive code sends the engine's own
 * banner/greeting; a 421 reply also closes the session. Calling it with no
 * request outstanding is a programming error (abort). */
void mc_smtp_session_reply(struct mc_smtp_session *s, unsigned code,
                           const char *enhanced, const char *text);
/* The default positive reply for the outstanding request. */
void mc_smtp_session_accept(struct mc_smtp_session *s);

/* ---- session: what the policy may look at ------------------------------ */

/* The policy's per-session pointer (NULL at first); set it in connect. */
void mc_smtp_session_set_user(struct mc_smtp_session *s, void *user);
void *mc_smtp_session_user(const struct mc_smtp_session *s);

/* 16 hex digits, unique, for logs and Received headers ("id ..."). Every
 * string below lives as long as the session. */
const char *mc_smtp_session_id(const struct mc_smtp_session *s);
const char *mc_smtp_session_peer_ip(const struct mc_smtp_session *s);
uint16_t mc_smtp_session_peer_port(const struct mc_smtp_session *s);
const char *mc_smtp_session_local_ip(const struct mc_smtp_session *s);
uint16_t mc_smtp_session_local_port(const struct mc_smtp_session *s);
enum mc_smtp_mode mc_smtp_session_mode(const struct mc_smtp_session *s);
/* The name given in the last accepted HELO/EHLO/LHLO, or NULL. */
const char *mc_smtp_session_helo(const struct mc_smtp_session *s);
/* RFC 3848 "with" keyword for Received: SMTP, ESMTP, ESMTPS, ESMTPA,
 * ESMTPSA, LMTP, LMTPS, LMTPA, LMTPSA. */
const char *mc_smtp_session_protocol(const struct mc_smtp_session *s);
/* TLS in use: version ("TLSv1.3") and cipher names, secret bits; NULL/0
 * without TLS. */
bool mc_smtp_session_tls(const struct mc_smtp_session *s);
const char *mc_smtp_session_tls_version(const struct mc_smtp_session *s);
const char *mc_smtp_session_tls_cipher(const struct mc_smtp_session *s);
int mc_smtp_session_tls_bits(const struct mc_smtp_session *s);
bool mc_smtp_session_authenticated(const struct mc_smtp_session *s);
/* The transaction, or NULL outside one (before an accepted MAIL). */
const struct mc_smtp_txn *mc_smtp_session_txn(const struct mc_smtp_session *s);
/* True once the client is gone: a policy finishing slow work may skip it
 * (it must still complete the request). */
bool mc_smtp_session_gone(const struct mc_smtp_session *s);

#endif
