/* The server side of the SMTP/LMTP wire format, as three pure, resumable
 * pieces with no I/O and no libuv, for the SMTP server engine to drive:
 *
 * - mc_smtp_lines: the command-phase input buffer and line reader. Bytes
 *   from the socket (or from TLS) go into its bounded buffer; it hands back
 *   one complete command line at a time, reports overlong lines and NUL
 *   bytes once and resynchronises, and lets the server see and throw away
 *   what is buffered (the STARTTLS injection defence) or hand it to the
 *   DATA reader.
 * - mc_smtp_data: the DATA-phase reader. Dot-unstuffs the content into a
 *   sink callback, ends ONLY at <CRLF>.<CRLF> (the SMTP smuggling defence),
 *   normalises bare LF to CRLF, enforces the message size limit without
 *   losing sync, and leaves the bytes after the end for the line reader.
 * - mc_smtp_cmd_parse: one command line -> verb, path, ESMTP parameters,
 *   or the classic error reply (code, enhanced status, text) to send.
 *
 * Typical server loop (one session, all on the session's loop thread):
 *
 *	buf = mc_smtp_lines_space(&lines, &n);  -- read or SSL_read into buf
 *	mc_smtp_lines_commit(&lines, nread);
 *	while ((ret = mc_smtp_lines_next(&lines, &line, &err)) != 0) {
 *		if (ret < 0) { reply(err); continue; }
 *		if (mc_smtp_cmd_parse(&cmd, line.text, flags, &err) < 0) ...
 *		DATA: reply 354, mc_smtp_data_init(), then repeatedly
 *		      p = mc_smtp_lines_peek(&lines, &n);
 *		      ret = mc_smtp_data_parse(&data, p, n, &used);
 *		      mc_smtp_lines_skip(&lines, used);   -- until ret == 1
 *		STARTTLS: reply 220, mc_smtp_lines_discard(&lines), handshake
 *	}
 *
 * Nothing here allocates per command or per byte: the line reader owns one
 * buffer sized at init, the DATA reader passes runs of the input straight
 * to the sink, and parsed strings point into the line itself. None of the
 * objects is thread-safe; each belongs to one session. */
#ifndef MC_SMTP_PARSER_H
#define MC_SMTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.4: servers must accept command lines of at least 512
 * octets including the CRLF. 2048 leaves room for ESMTP parameters (a
 * 256-octet path plus ORCPT, ENVID, AUTH=) before authentication; raise it
 * for AUTH exchanges (RFC 4954 suggests 12288) with mc_smtp_lines_limits. */
#define MC_SMTP_LINE_MIN 512
#define MC_SMTP_LINE_DEFAULT 2048
/* Buffered input: room for a burst of pipelined commands in one read. */
#define MC_SMTP_BUFFER_DEFAULT 8192
/* Message content after unstuffing; the server sets its own (SIZE). */
#define MC_SMTP_MESSAGE_DEFAULT (25u * 1024 * 1024)
/* RFC 5321 4.5.3.1.3, including the angle brackets. */
#define MC_SMTP_PATH_MAX 256

struct mc_smtp_limits {
	size_t max_line;      /* command line octets including CRLF;
	                         values below MC_SMTP_LINE_MIN are raised */
	size_t buffer_size;   /* input buffer; raised to max_line + 1 */
	uint64_t max_message; /* DATA content octets the sink may receive */
};

/* Fill *limits with the defaults above. */
void mc_smtp_limits_default(struct mc_smtp_limits *limits);

/* A reply the server can send as is: "<code> <enhanced> <text>". Errors
 * from this module are static replies (they stand in for error_r): never
 * freed, valid for the life of the process. */
struct mc_smtp_reply {
	unsigned code;        /* 500, 501, 553, 555 */
	const char *enhanced; /* RFC 3463 status, e.g. "5.5.2" */
	const char *text;     /* short, no CRLF */
};

/* ---- command-phase line reader ---------------------------------------- */

/* Caller's storage; fields are private. */
struct mc_smtp_lines {
	char *buf;
	size_t cap, head, tail; /* unconsumed bytes are buf[head..tail) */
	size_t scan;            /* bytes after head known to hold no LF */
	size_t max_line;
	bool skipping; /* dropping the rest of an overlong line */
};

/* A complete command line. text is NUL-terminated, without its line end,
 * and writable: mc_smtp_cmd_parse parses it in place. It points into the
 * reader's buffer and stays valid until the next call on the reader. */
struct mc_smtp_line {
	char *text;
	size_t len;
	bool bare_lf; /* ended in LF without CR (for logs or strict policy) */
};

/* Allocate the buffer (the only allocation the reader makes). */
void mc_smtp_lines_init(struct mc_smtp_lines *r,
                        const struct mc_smtp_limits *limits);
void mc_smtp_lines_fini(struct mc_smtp_lines *r);
/* Change max_line (and grow the buffer if needed) without losing buffered
 * bytes, e.g. a longer line for the AUTH exchange after STARTTLS. */
void mc_smtp_lines_limits(struct mc_smtp_lines *r,
                          const struct mc_smtp_limits *limits);

/* Free space to read into, compacting first. *len_r is 0 when the buffer
 * is full (of pipelined lines the server has not taken yet): the server
 * stops reading until it has called mc_smtp_lines_next, which is the
 * back-pressure on pipelining clients. Once mc_smtp_lines_next has
 * returned 0 there is always space. */
void *mc_smtp_lines_space(struct mc_smtp_lines *r, size_t *len_r);
/* Account for n bytes written into the space; n <= the space's length. */
void mc_smtp_lines_commit(struct mc_smtp_lines *r, size_t n);
/* Copying variant of space + commit: returns the bytes taken (may be less
 * than len when the buffer is full; feed the rest after taking lines). */
size_t mc_smtp_lines_feed(struct mc_smtp_lines *r, const void *data,
                          size_t len);

/* The next command line.
 * 1: *line_r holds a line.
 * 0: need more bytes (the partial line stays buffered).
 * -1: an error, already consumed; *reply_r says what to answer and the
 *     reader carries on with the next line:
 *     - line too long (500 5.5.6): reported once, when the line has grown
 *       past max_line (including its line end); the rest of it, up to and
 *       including its LF, is dropped as it arrives.
 *     - NUL byte in a command (500 5.5.2): the whole line is dropped.
 * A line ends at LF, with or without a CR before it. Bare LF is accepted
 * here because plenty of sloppy clients and scripts send it and, in the
 * command phase, a line end is a line end: there is nothing to smuggle.
 * The smuggling risk is where two parsers disagree on where DATA ends,
 * and mc_smtp_data is strict there. */
int mc_smtp_lines_next(struct mc_smtp_lines *r, struct mc_smtp_line *line_r,
                       const struct mc_smtp_reply **reply_r);

/* Bytes buffered and not yet handed out as lines. After the STARTTLS line
 * this must be 0: anything else was pipelined in clear text before the
 * handshake and must not be executed afterwards (CVE-2011-0411). */
size_t mc_smtp_lines_pending(const struct mc_smtp_lines *r);
/* Drop everything buffered, including a partial or overlong line. */
void mc_smtp_lines_discard(struct mc_smtp_lines *r);
/* Raw access to the pending bytes, to hand them to mc_smtp_data (or any
 * other consumer). Use at a line boundary: right after next() returned 1
 * (the DATA line) or after discard(). The pointer is valid until the next
 * call on the reader; skip(n) consumes n <= *len_r of them. */
const void *mc_smtp_lines_peek(const struct mc_smtp_lines *r, size_t *len_r);
void mc_smtp_lines_skip(struct mc_smtp_lines *r, size_t n);

/* ---- DATA reader ------------------------------------------------------- */

/* Receives message content. data points into the caller's input (or to a
 * static "\r\n"/"\r") and is only valid during the call. The content is
 * exactly the message: dot-unstuffed, every line ending in CRLF, without
 * the terminating ".". The sink cannot fail the parse: a server that fails
 * to store content notes it, keeps consuming and answers after the end. */
typedef void mc_smtp_data_sink(void *ctx, const void *data, size_t len);

/* Caller's storage; init per message. Fields below "results" may be read
 * at any time; the rest is private. */
struct mc_smtp_data {
	int state;
	uint64_t max_message;
	mc_smtp_data_sink *sink;
	void *ctx;
	/* results */
	uint64_t size;    /* content octets, counted on past the limit */
	uint64_t bare_lf; /* bare LFs normalised to CRLF */
	bool too_big;     /* size > max_message: answer 552 5.3.4 at the end */
	bool eightbit;    /* a byte >= 0x80 was seen */
	bool nul;         /* a NUL byte was seen (passed through) */
};

void mc_smtp_data_init(struct mc_smtp_data *d,
                       const struct mc_smtp_limits *limits,
                       mc_smtp_data_sink *sink, void *ctx);

/* Consume content bytes (whatever came after the 354 reply).
 * 1: the end of data was found; *consumed_r counts the bytes up to and
 *    including the final <CRLF>.<CRLF>; the rest of the input is the next
 *    command (pipelining) and belongs to the line reader again.
 * 0: all len bytes consumed, need more.
 * The end is ONLY <CRLF>.<CRLF> (the data's start counts as after a CRLF):
 * <LF>.<LF>, <LF>.<CRLF>, <CRLF>.<LF> and <CR>.<CR> are content, so a
 * message cannot end earlier here than at a downstream server that reads
 * it strictly (SMTP smuggling). A bare LF is written as CRLF, like
 * Postfix's smtpd_forbid_bare_newline=normalize. A line starting with "."
 * loses that dot ("..x" -> ".x"; a lone "." that is not the end becomes
 * an empty line). Past max_message nothing more reaches the sink (what
 * it got is a truncated prefix, to be thrown away) and too_big is set,
 * but parsing continues to the real end. Bare CR is content. Never
 * fails; once it returned 1, further calls consume 0. The server bounds
 * the time a client may take (a deadline), not the bytes it sends. */
int mc_smtp_data_parse(struct mc_smtp_data *d, const void *in, size_t len,
                       size_t *consumed_r);

/* ---- command parser ---------------------------------------------------- */

enum mc_smtp_verb {
	MC_SMTP_UNKNOWN = 0,
	MC_SMTP_HELO,
	MC_SMTP_EHLO,
	MC_SMTP_LHLO,
	MC_SMTP_MAIL,
	MC_SMTP_RCPT,
	MC_SMTP_DATA,
	MC_SMTP_BDAT, /* parsed; the server may refuse it (no CHUNKING) */
	MC_SMTP_RSET,
	MC_SMTP_NOOP,
	MC_SMTP_QUIT,
	MC_SMTP_VRFY,
	MC_SMTP_EXPN,
	MC_SMTP_HELP,
	MC_SMTP_STARTTLS,
	MC_SMTP_AUTH,
};

/* Verb name ("MAIL"; "UNKNOWN"), for logs. */
const char *mc_smtp_verb_name(enum mc_smtp_verb verb);

/* A reverse-path (MAIL) or forward-path (RCPT), source route dropped. */
struct mc_smtp_path {
	/* "local@domain" as sent (a quoted local part keeps its quotes),
	 * "" for the null path <>, "Postmaster" (as sent) for <Postmaster>. */
	const char *mailbox;
	size_t local_len;   /* octets of mailbox before the '@' */
	const char *domain; /* points into mailbox after the '@'; "" if none;
	                       an address literal keeps its brackets */
	bool null;          /* <> (MAIL only) */
	bool postmaster;    /* <Postmaster> without a domain (RCPT only) */
	bool quoted;        /* local part is a quoted-string */
	bool literal;       /* domain is an address literal */
	bool utf8;          /* non-ASCII (valid UTF-8) somewhere in it */
};

enum mc_smtp_body {
	MC_SMTP_BODY_NONE = 0,
	MC_SMTP_BODY_7BIT,
	MC_SMTP_BODY_8BITMIME,
	MC_SMTP_BODY_BINARYMIME,
};

enum mc_smtp_ret {
	MC_SMTP_RET_NONE = 0,
	MC_SMTP_RET_FULL,
	MC_SMTP_RET_HDRS,
};

/* NOTIFY bits (RFC 3461); 0 when the parameter is absent. */
#define MC_SMTP_NOTIFY_NEVER 0x1u
#define MC_SMTP_NOTIFY_SUCCESS 0x2u
#define MC_SMTP_NOTIFY_FAILURE 0x4u
#define MC_SMTP_NOTIFY_DELAY 0x8u

/* ESMTP parameters. MAIL takes SIZE BODY SMTPUTF8 RET ENVID AUTH; RCPT
 * takes NOTIFY ORCPT. Keywords and the BODY/RET/NOTIFY values are
 * case-insensitive. Strings point into the line; NULL when absent. xtext
 * values (ENVID, ORCPT, AUTH) are syntax-checked but left encoded: they
 * are relayed as they came. Whether an extension was advertised (and so
 * may be used) is the server's check, not the parser's. */
struct mc_smtp_params {
	bool has_size;
	uint64_t size;
	enum mc_smtp_body body;
	bool smtputf8;
	enum mc_smtp_ret ret;
	const char *envid;      /* xtext, <= 100 chars decoded (RFC 3461) */
	unsigned notify;        /* MC_SMTP_NOTIFY_* */
	const char *orcpt_type; /* addr-type, e.g. "rfc822" */
	const char *orcpt;      /* xtext, <= 500 chars decoded (RFC 3461) */
	const char *auth;       /* RFC 4954: xtext mailbox or "<>" */
};

struct mc_smtp_cmd {
	enum mc_smtp_verb verb;
	/* HELO/EHLO/LHLO: the client's name (not checked against DNS
	 * syntax: that is policy); VRFY/EXPN: the string; HELP/NOOP: the
	 * optional argument; AUTH: the mechanism (upper-cased in place).
	 * NULL when absent. Trailing blanks are trimmed. */
	const char *arg;
	const char *auth_initial;     /* AUTH initial response, or NULL */
	struct mc_smtp_path path;     /* MAIL, RCPT */
	struct mc_smtp_params params; /* MAIL, RCPT */
	uint64_t bdat_size;
	bool bdat_last;
};

/* Parse flag: the transaction declared SMTPUTF8, so RCPT may carry a
 * UTF-8 path. */
#define MC_SMTP_PARSE_UTF8 0x1u

/* Parse one command line (NUL-terminated, no line end, as given by
 * mc_smtp_lines_next), in place: NULs are written into line and every
 * string in *cmd_r points into it, so they live as long as the line.
 * Returns 0, or -1 with *reply_r the reply to send:
 *   500 5.5.1 unknown verb; 500 5.5.2 control characters in the line;
 *   501 5.5.2 syntax error; 501 5.5.4 arguments where none are allowed;
 *   501 5.1.7 (MAIL) / 5.1.3 (RCPT) bad address or path over 256 octets;
 *   553 5.6.7 non-ASCII address without SMTPUTF8 (RFC 6531);
 *   555 5.5.4 unknown, misplaced, duplicate or malformed parameter.
 * cmd_r->verb is set even on error when the verb was recognised. UTF-8 in
 * a path is accepted on MAIL with SMTPUTF8 among its parameters, and on
 * RCPT when flags has MC_SMTP_PARSE_UTF8. */
int mc_smtp_cmd_parse(struct mc_smtp_cmd *cmd_r, char *line, unsigned flags,
                      const struct mc_smtp_reply **reply_r);

#endif
