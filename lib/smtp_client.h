/* The client side of SMTP and LMTP: one session that connects to one
 * server and offers it one message (an envelope sender, N recipients and
 * the content), on the libuv loop, over lib/conn.h. The relay uses it in
 * LMTP mode to hand queued mail to the mailbox node that owns each
 * recipient (RFC 2033: one reply per accepted recipient after DATA) and,
 * later, in SMTP mode for egress to a smarthost or an MX (EHLO, falling
 * back to HELO).
 *
 * What a session does: greeting, EHLO/LHLO (capabilities parsed),
 * STARTTLS when asked for (then EHLO again), AUTH when given credentials
 * (RFC 4954; only over TLS), MAIL FROM with SIZE= / BODY=8BITMIME / SMTPUTF8 /
 * DSN parameters as the server offers and the message needs, RCPT TO for each
 * recipient (pipelined when the server offers PIPELINING, always in
 * LMTP), DATA if at least one recipient was accepted, the content
 * dot-stuffed and CRLF-normalised as it is sent (never copied whole: it
 * is read in 32 KiB chunks and sent while the connection's output is not
 * blocked), the final reply or replies, QUIT. Every wait has its own
 * timeout (RFC 5321 section 4.5.3.2, client side).
 *
 * Outcome rules (what the caller's queue does with them is its policy):
 * - a recipient gets the outcome of the reply that decided it: 2xx
 *   delivered, 4xx temporary failure, 5xx permanent failure. That reply is
 *   its RCPT reply when that refused it, else (SMTP) the reply to the end
 *   of DATA, or (LMTP) its own reply after the end of DATA; or the reply
 *   that refused the whole session or transaction (greeting, EHLO/HELO,
 *   MAIL, DATA);
 * - anything else that stops a session (connect failure, TLS failure,
 *   timeout, connection lost, protocol error) leaves every recipient the
 *   server had not decided a temporary failure;
 * - the client's own checks give permanent failures (5.6.7 SMTPUTF8 not
 *   offered, 5.6.3 8BITMIME not offered, 5.3.4 message bigger than the
 *   server's SIZE) or temporary ones (4.7.4 STARTTLS required but not
 *   offered or refused, 4.7.5 TLS handshake failed with TLS required,
 *   4.7.11 credentials but no TLS, 4.7.0 AUTH not offered or no common
 *   mechanism, 4.7.0 a SCRAM server that could not prove itself);
 * - a refused AUTH (535, 454...) decides every recipient by its code;
 * - with hosts to resolve (see the settings), no address reachable is a
 *   temporary failure (4.4.1), and no address at all a permanent one
 *   (5.4.4: every name NXDOMAIN or without A/AAAA).
 *
 * This header also exposes the pure pieces the session is built from, so
 * that they can be tested and fuzzed alone: the reply parser, EHLO
 * capability parsing and the dot-stuffer (smtp_client_wire.c).
 *
 * Thread affinity: everything here runs on the loop's thread; the pure
 * pieces have no global state and may be used on any thread. */
#ifndef MC_SMTP_CLIENT_H
#define MC_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "mx_connect.h"

struct mc_dns;
struct mc_tls_ctx;
struct mc_smtp_client;

/* ---- Replies ----------------------------------------------------------- */

/* RFC 5321 4.5.3.1.5 allows reply lines of 512 octets, but real servers
 * send longer rejection texts, so the default is 2048 (as Postfix reads
 * them). 100 lines is far more than any EHLO or rejection needs. A reply
 * beyond either limit is a protocol error: bounded, never a crash. */
#define MC_SMTP_CLIENT_REPLY_LINE_DEFAULT 2048
#define MC_SMTP_CLIENT_REPLY_LINES_DEFAULT 100
/* Smallest max_line accepted (values below are raised). */
#define MC_SMTP_CLIENT_REPLY_LINE_MIN 512
/* "5.123.123" and its NUL, with room to spare. */
#define MC_SMTP_CLIENT_ENHANCED_SIZE 12

struct mc_smtp_client_reply_limits {
	size_t max_line;  /* octets of one line including CRLF; 0: default */
	size_t max_lines; /* lines of one reply; 0: default */
};

/* One complete reply. Every line's text follows its code and separator;
 * an enhanced status code (RFC 2034/3463) whose class matches the reply
 * code is removed from the start of each line and the first one is kept
 * in enhanced. Bytes outside printable ASCII are replaced by '?'. */
struct mc_smtp_client_reply {
	unsigned code;                               /* 200..599 */
	char enhanced[MC_SMTP_CLIENT_ENHANCED_SIZE]; /* "5.1.1", or "" */
	const char *text; /* the lines' texts joined by '\n', NUL-terminated */
	size_t lines;
};

/* Caller's storage; fields are private. */
struct mc_smtp_client_reply_parser {
	size_t max_line, max_lines;
	char *line; /* the line being received, max_line bytes */
	size_t line_len;
	char *text; /* texts of the lines so far */
	size_t text_len, text_cap;
	unsigned code;
	size_t lines;
	bool failed;
	const char *error;
	struct mc_smtp_client_reply reply;
};

/* limits may be NULL (defaults). Allocates the line buffer. */
void
mc_smtp_client_reply_init(struct mc_smtp_client_reply_parser *p,
                          const struct mc_smtp_client_reply_limits *limits);
void mc_smtp_client_reply_fini(struct mc_smtp_client_reply_parser *p);
/* Forget a partial reply (after STARTTLS, nothing received in clear text
 * may be taken as a reply received over TLS). */
void mc_smtp_client_reply_reset(struct mc_smtp_client_reply_parser *p);

/* Consume bytes from the server up to the end of at most one reply.
 * 1: a reply is complete; *reply_r is valid until the next call on p;
 *    *used_r bytes were consumed (the rest belongs to the next reply).
 * 0: all len bytes consumed (*used_r == len), the reply is incomplete.
 * -1: protocol error (bad code, codes differing between lines, line or
 *    reply too long); *error_r says which. Sticky: p stays failed.
 * A line ends at LF; a CR before it is dropped. Same result whatever the
 * chunking of the input. */
int mc_smtp_client_reply_parse(struct mc_smtp_client_reply_parser *p,
                               const void *data, size_t len, size_t *used_r,
                               const struct mc_smtp_client_reply **reply_r,
                               const char **error_r);

/* The reply as one line for logs and results: texts joined by spaces,
 * at most size - 1 octets (cut, not failed), NUL-terminated. */
void mc_smtp_client_reply_oneline(const struct mc_smtp_client_reply *reply,
                                  char *buf, size_t size);

/* ---- EHLO capabilities ------------------------------------------------- */

#define MC_SMTP_CLIENT_EXT_PIPELINING 0x001u
#define MC_SMTP_CLIENT_EXT_SIZE 0x002u
#define MC_SMTP_CLIENT_EXT_8BITMIME 0x004u
#define MC_SMTP_CLIENT_EXT_SMTPUTF8 0x008u
#define MC_SMTP_CLIENT_EXT_STARTTLS 0x010u
#define MC_SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES 0x020u
#define MC_SMTP_CLIENT_EXT_AUTH 0x040u
#define MC_SMTP_CLIENT_EXT_DSN 0x080u
#define MC_SMTP_CLIENT_EXT_CHUNKING 0x100u

#define MC_SMTP_CLIENT_AUTH_SIZE 256

struct mc_smtp_client_caps {
	unsigned ext;      /* MC_SMTP_CLIENT_EXT_* */
	uint64_t size_max; /* SIZE's argument; 0: none announced */
	/* AUTH mechanisms, upper-case, one space between, cut to fit. */
	char auth[MC_SMTP_CLIENT_AUTH_SIZE];
};

/* Parse the lines after the first of a 2xx EHLO/LHLO reply. Keywords are
 * case-insensitive; unknown ones are ignored; "AUTH=..." (old servers) is
 * read like AUTH. Never fails. */
void mc_smtp_client_caps_parse(const struct mc_smtp_client_reply *ehlo,
                               struct mc_smtp_client_caps *caps_r);

/* ---- Dot-stuffing ------------------------------------------------------ */

/* Content -> DATA wire form: a '.' starting a line is doubled and a bare
 * LF becomes CRLF (a bare CR is passed through: it ends no line, here or
 * at a strict server). Caller's storage; zero it before the content. */
struct mc_smtp_client_stuffer {
	bool mid_line; /* the last byte was not an LF */
	bool cr;       /* the last byte was a CR */
};

/* Stuff from in into out; returns the bytes written, *used_r the bytes of
 * in consumed. Every input byte gives at most two output bytes, so
 * out_size >= 2 * len consumes everything. */
size_t mc_smtp_client_stuff(struct mc_smtp_client_stuffer *s, const void *in,
                            size_t len, size_t *used_r, char *out,
                            size_t out_size);
/* The end of data: a CRLF if the content did not end with a line end,
 * then ".\r\n". out has room for MC_SMTP_CLIENT_STUFF_END bytes. */
#define MC_SMTP_CLIENT_STUFF_END 5
size_t mc_smtp_client_stuff_end(struct mc_smtp_client_stuffer *s, char *out);

/* ---- Sessions ---------------------------------------------------------- */

enum mc_smtp_client_protocol {
	MC_SMTP_CLIENT_SMTP = 0, /* EHLO, HELO fallback; one DATA reply */
	MC_SMTP_CLIENT_LMTP,     /* LHLO; one DATA reply per recipient */
};

enum mc_smtp_client_tls_mode {
	MC_SMTP_CLIENT_TLS_NONE = 0,
	/* STARTTLS when offered. If the handshake fails, the session
	 * reconnects once and runs in clear text (RFC 7435): a broken TLS
	 * stack must not keep mail queued forever. */
	MC_SMTP_CLIENT_TLS_OPPORTUNISTIC,
	/* STARTTLS or nothing: not offered, refused or a failed handshake
	 * is a temporary failure of every recipient (4.7.4 / 4.7.5). */
	MC_SMTP_CLIENT_TLS_REQUIRED,
	/* TLS from the first byte (port 465 smarthosts, RFC 8314). */
	MC_SMTP_CLIENT_TLS_IMPLICIT,
};

/* Milliseconds; 0 picks the default in the comment (RFC 5321 4.5.3.2
 * where it gives one). Tests use short ones. */
struct mc_smtp_client_timeouts {
	uint64_t connect;    /* 30 000 */
	uint64_t greeting;   /* 300 000: the initial 220 */
	uint64_t command;    /* 300 000: EHLO, LHLO, HELO, STARTTLS */
	uint64_t tls;        /* 60 000: the TLS handshake */
	uint64_t mail;       /* 300 000 */
	uint64_t rcpt;       /* 300 000 */
	uint64_t data_init;  /* 120 000: the 354 */
	uint64_t data_block; /* 180 000: no progress sending content */
	uint64_t data_end;   /* 600 000: each reply after the final dot */
	uint64_t quit;       /* 30 000: the 221 (after the result) */
	uint64_t session;    /* 3 600 000: the whole connection */
	uint64_t idle;       /* 5 000: held, waiting for the next message */
};

/* AUTH mechanisms (settings.auth_mechs); the client picks the first of
 * SCRAM-SHA-256, PLAIN, LOGIN that is allowed and offered by the server.
 * SCRAM-SHA-256 (RFC 5802/7677, no channel binding) never shows the
 * password to the server and checks the server's proof; it is skipped
 * for a password outside printable ASCII (no SASLprep, as lib/scram.h). */
#define MC_SMTP_CLIENT_AUTH_PLAIN 0x1u /* RFC 4616, initial response */
#define MC_SMTP_CLIENT_AUTH_LOGIN 0x2u /* the old two-prompt exchange */
#define MC_SMTP_CLIENT_AUTH_SCRAM_SHA_256 0x4u
/* Longest username and password accepted, in octets. */
#define MC_SMTP_CLIENT_AUTH_CRED_MAX 255

struct mc_smtp_client_settings {
	enum mc_smtp_client_protocol protocol;
	/* Where to connect: either ip, an IPv4 or IPv6 literal, with port;
	 * or hosts (below). */
	const char *ip;
	uint16_t port; /* with hosts: their default port; 0: 25 */
	/* Or names to resolve and connect to through lib/mx_connect.h: the
	 * MX hosts of a domain in order (mc_dns_mx), or a smarthost
	 * ("name", "name:port", "[v6]:port"), each one's AAAA and A tried
	 * in turn, IPv6 and IPv4 falling back to each other. dns is
	 * borrowed until the done callback; hosts are copied. The result
	 * tells which address was used and every connection error met. */
	struct mc_dns *dns;
	const char *const *hosts;
	size_t host_count;
	enum mc_mx_connect_family family; /* prefer IPv6 by default */
	unsigned max_attempts;            /* addresses tried; 0: 10 */
	const char *helo_name;            /* our host name for EHLO/LHLO/HELO */
	/* The server's name for logs and results (DSN Remote-MTA); NULL: the
	 * host connected to, else the IP address. */
	const char *remote_name;
	enum mc_smtp_client_tls_mode tls;
	/* A client-role context from mc_tls_ctx_new; required unless tls is
	 * NONE. Whether the certificate is verified is the context's choice
	 * (mc_tls_settings.opportunistic). Borrowed: keep it until the done
	 * callback. */
	struct mc_tls_ctx *tls_ctx;
	/* Name checked against the certificate and sent as SNI; NULL:
	 * remote_name, else the host connected to, else the IP. */
	const char *tls_peer_name;
	struct mc_smtp_client_timeouts timeouts;
	struct mc_smtp_client_reply_limits reply_limits;
	/* Put in every log line as id=... (the queue id); may be NULL. */
	const char *log_id;
	/* SMTP AUTH (RFC 4954) with these credentials after the EHLO that
	 * follows TLS, before MAIL; both NULL: no AUTH. Only over TLS:
	 * tls must not be NONE; a session that ends up in clear text
	 * (OPPORTUNISTIC, STARTTLS not offered or refused) stops before
	 * AUTH with a temporary failure (4.7.11), and an OPPORTUNISTIC
	 * handshake failure does not fall back to clear text. A server
	 * that offers no AUTH, or no allowed mechanism, is a temporary
	 * failure (4.7.0): mail is never sent unauthenticated to a server
	 * that was meant to get credentials.
	 * Borrowed only during mc_smtp_client_start, which copies both into
	 * memory of its own that is wiped as soon as AUTH is over (and when
	 * the session ends): the caller may wipe its copy once start has
	 * returned. 1..MC_SMTP_CLIENT_AUTH_CRED_MAX octets each, the username
	 * without control characters. Never logged, nor anything derived
	 * from them. */
	const char *auth_username;
	const char *auth_password;
	unsigned auth_mechs; /* MC_SMTP_CLIENT_AUTH_*; 0: all three */
	/* The connection may carry more messages after this one (see
	 * "Connection reuse" below); false: QUIT after the first. */
	bool reuse;
};

/* More recipients than this in one session are refused by
 * mc_smtp_client_start (RFC 5321 servers take at least 100; those
 * answering 452 to the excess get them as temporary failures). */
#define MC_SMTP_CLIENT_MAX_RCPTS 10000
/* Longest address (SMTPUTF8 and quoted local parts included). */
#define MC_SMTP_CLIENT_ADDR_MAX 512

struct mc_smtp_client_rcpt {
	const char *address; /* without angle brackets */
	/* DSN parameters (RFC 3461), sent only when the server offers DSN:
	 * ORCPT as "addr-type;xtext" (NULL or "": none) and NOTIFY bits with
	 * the values of MC_SMTP_NOTIFY_* in smtp_parser.h (0: none). */
	const char *orcpt;
	unsigned notify;
};

/* The message needs an extension: refused (permanent failure) by a
 * server that does not offer it. */
#define MC_SMTP_CLIENT_NEED_8BITMIME 0x1u /* sends BODY=8BITMIME */
#define MC_SMTP_CLIENT_NEED_SMTPUTF8 0x2u /* sends SMTPUTF8 */

struct mc_smtp_client_message {
	const char *sender; /* "" is the null sender <> */
	const struct mc_smtp_client_rcpt *rcpts;
	size_t rcpt_count; /* 1..MC_SMTP_CLIENT_MAX_RCPTS */
	unsigned flags;    /* MC_SMTP_CLIENT_NEED_* */
	/* DSN (RFC 3461), sent only when the server offers DSN: ENVID as
	 * xtext, RET as "FULL" or "HDRS"; NULL or "": none. */
	const char *envid;
	const char *ret;
	/* The content, as stored (CRLF line ends expected; bare LF is
	 * fixed on the way): either a buffer (data may be an mmap of the
	 * queue file) or, with use_fd, a file descriptor read from offset 0
	 * to its end with uv_fs_read on libuv's thread pool. Both are
	 * borrowed until the done callback; the client never closes fd.
	 * size is the SIZE= estimate (and, for a buffer, its length); 0 with
	 * use_fd takes it from fstat. */
	const void *data;
	uint64_t size;
	bool use_fd;
	int fd;
};

enum mc_smtp_client_outcome {
	MC_SMTP_CLIENT_DELIVERED,
	MC_SMTP_CLIENT_TEMPFAIL,
	MC_SMTP_CLIENT_PERMFAIL,
};

struct mc_smtp_client_rcpt_result {
	enum mc_smtp_client_outcome outcome;
	/* The reply that decided it; 0 when the client decided (connect
	 * failure, timeout, TLS, its own checks). */
	unsigned code;
	/* The reply's enhanced code, else "X.0.0" from its class; the
	 * client's own code when code is 0. Always set. */
	char enhanced[MC_SMTP_CLIENT_ENHANCED_SIZE];
	/* The reply text (one line, printable ASCII) or the client's reason,
	 * and the command it answered: "greeting", "EHLO", "MAIL FROM",
	 * "RCPT TO", "DATA", "end of DATA", or "" for client decisions. */
	const char *text;
	const char *command;
};

/* Why a session ended early; MC_SMTP_CLIENT_OK when it ran its course
 * (every outcome then comes from a reply, whatever it was). */
enum mc_smtp_client_status {
	MC_SMTP_CLIENT_OK = 0,
	MC_SMTP_CLIENT_ERR_CONNECT,     /* no connection */
	MC_SMTP_CLIENT_ERR_TLS,         /* required TLS missing or failed */
	MC_SMTP_CLIENT_ERR_TIMEOUT,     /* a stage timeout or the deadline */
	MC_SMTP_CLIENT_ERR_CLOSED,      /* the server went away */
	MC_SMTP_CLIENT_ERR_PROTOCOL,    /* a reply we cannot use */
	MC_SMTP_CLIENT_ERR_REFUSED,     /* greeting/EHLO/MAIL/DATA refused */
	MC_SMTP_CLIENT_ERR_UNSUPPORTED, /* needed extension, SIZE */
	MC_SMTP_CLIENT_ERR_LOCAL,       /* reading content, aborted */
	MC_SMTP_CLIENT_ERR_AUTH,        /* AUTH impossible or refused */
};

struct mc_smtp_client_result {
	enum mc_smtp_client_status status;
	const char *error; /* NULL when OK, else what happened */
	/* In the order of the message's recipients. */
	const struct mc_smtp_client_rcpt_result *rcpts;
	size_t rcpt_count;
	size_t delivered, tempfail, permfail;
	const char *remote; /* remote_name or the IP, for Remote-MTA */
	/* The last EHLO/LHLO answer (ext 0 after HELO or before EHLO). */
	const struct mc_smtp_client_caps *caps;
	/* NULL without TLS. */
	const char *tls_version, *tls_cipher;
	bool tls_verified;
	/* The mechanism that authenticated ("PLAIN"...), else NULL. */
	const char *auth_mech;
	/* settings.reuse: the transaction ended cleanly and the connection
	 * may carry another message (mc_smtp_client_hold). */
	bool reusable;
	/* This message went over a held connection (mc_smtp_client_next):
	 * a failure that no reply decided may only mean the server dropped
	 * an idle connection; the caller tries a new one at once. */
	bool reused;
	/* The address connected to ("" if none). With hosts: which host
	 * and every connection or resolution error met before (or, when
	 * none connected, all of them), for the queue's last_error. */
	const char *ip;
	uint16_t port;
	const char *host;
	const char *connect_errors;
};

/* Called once, on the loop thread, as soon as every recipient's outcome
 * is known. result and everything it points to are valid during the
 * call only. The client then finishes on its own (QUIT, close) and frees
 * itself: the struct mc_smtp_client pointer is invalid from this call
 * on, unless the callback holds it (mc_smtp_client_hold), which keeps the
 * TLS context borrowed until the held client ends. The buffer or fd is
 * no longer used. */
typedef void mc_smtp_client_done_cb(const struct mc_smtp_client_result *result,
                                    void *ctx);

/* Connect and run the session. set and msg are copied (strings too),
 * except the content, tls_ctx and dns (see above); the credentials are
 * copied into wiped memory. -1 with error_r, nothing
 * started and no callback, for invalid settings or message (a caller's
 * bug or configuration error) or when the connect cannot even be
 * attempted (the caller then treats it as a connection failure).
 * Otherwise done is called exactly once, never from inside this call. */
int mc_smtp_client_start(uv_loop_t *loop,
                         const struct mc_smtp_client_settings *set,
                         const struct mc_smtp_client_message *msg,
                         mc_smtp_client_done_cb *done, void *ctx,
                         struct mc_smtp_client **client_r,
                         const char **error_r);

/* Stop a session whose done callback has not run yet (daemon shutdown):
 * the connection is reset and done follows from the loop with every
 * undecided recipient a temporary failure (MC_SMTP_CLIENT_ERR_LOCAL). */
void mc_smtp_client_abort(struct mc_smtp_client *client);

/* ---- Connection reuse ---------------------------------------------------
 *
 * With settings.reuse, a session whose transaction ended cleanly (every
 * recipient decided by the server's replies, the connection healthy, fewer
 * than MC_SMTP_CLIENT_REUSE_MAX messages and MC_SMTP_CLIENT_REUSE_AGE_MS
 * since it connected) reports result.reusable. Only during that done
 * callback, the caller may keep it with mc_smtp_client_hold; otherwise the
 * client says QUIT and frees itself as without reuse. A held client waits
 * (timeouts.idle) for mc_smtp_client_next, which runs the next message on
 * it (RSET first, which also proves the connection still works), or
 * mc_smtp_client_release. If the idle connection ends first (the server
 * closes it or says anything, the idle time passes), closed is called
 * once and the client frees itself. Settings, TLS and AUTH stay those of
 * the first session: a caller keeps held clients per destination and
 * settings (the relay: per route note). */
#define MC_SMTP_CLIENT_REUSE_MAX 100
#define MC_SMTP_CLIENT_REUSE_AGE_MS (300 * 1000)

typedef void mc_smtp_client_closed_cb(void *ctx);

/* Only inside the done callback of a result with reusable. */
void mc_smtp_client_hold(struct mc_smtp_client *client,
                         mc_smtp_client_closed_cb *closed, void *ctx);
/* Send msg over a held client (copied as by start; log_id may be NULL).
 * 0: done is called exactly once, never inside this call, and closed is
 * no longer; the client is not held any more. -1 with error_r: msg is
 * invalid, or the connection could not be written to; the client is
 * gone (closed without callbacks): start a new session. */
int mc_smtp_client_next(struct mc_smtp_client *client,
                        const struct mc_smtp_client_message *msg,
                        const char *log_id, mc_smtp_client_done_cb *done,
                        void *ctx, const char **error_r);
/* QUIT and free a held client; no callback follows. With reset (daemon
 * shutdown) the connection is reset instead. */
void mc_smtp_client_release(struct mc_smtp_client *client, bool reset);

/* "delivered", "tempfail", "permfail"; "ok", "connect", "tls", ...,
 * "auth". */
const char *mc_smtp_client_outcome_name(enum mc_smtp_client_outcome outcome);
const char *mc_smtp_client_status_name(enum mc_smtp_client_status status);

#endif
