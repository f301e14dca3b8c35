/* The server side of the IMAP command wire format (RFC 3501 section 9,
 * RFC 9051, RFC 7888 LITERAL+/LITERAL-, RFC 3516 literal8), as a pure,
 * resumable reader with no I/O and no libuv, for the IMAP server to drive:
 *
 * - mc_imap_reader: the input buffer. Bytes from the socket (or TLS) go in;
 *   it frames whole commands, literals included, and hands back one parsed
 *   command at a time: tag, command name (upper-cased, with the UID prefix
 *   split off) and the arguments as a generic token tree (atoms, quoted
 *   strings, literals, lists, flags, NIL). The command-specific grammar
 *   (what SEARCH or FETCH take) is the server's, built on these tokens and
 *   on the helpers at the end (numbers, sequence sets).
 * - It tells the server exactly when a synchronising literal {n} needs the
 *   "+ OK" continuation, and refuses an oversized one before a byte of it
 *   is read, so a client can never make the server buffer what it would
 *   not accept.
 * - Every limit violation and syntax error comes back as a static reply
 *   (status, optional response code, text) for the command's tag, after
 *   which the reader has resynchronised at the next command.
 *
 * Typical server loop (one session, all on the session's loop thread):
 *
 *	buf = mc_imap_reader_space(&r, &n);   -- read or SSL_read into buf
 *	mc_imap_reader_commit(&r, nread);
 *	while ((ret = mc_imap_reader_next(&r, &cmd, &err)) != 0) {
 *		if (ret < 0) { send(cmd.tag ? cmd.tag : "*", err); continue; }
 *		dispatch(&cmd);       -- tokens valid until the next call
 *	}
 *	if (mc_imap_reader_continuation(&r)) send("+ OK\r\n");
 *
 * Memory: one buffer per reader, grown by doubling (never per byte) up to
 * what one command may legitimately need (max_line plus max_command
 * literal octets), and one token array of max_tokens entries allocated at
 * init. Tokens point into the buffer. None of it is thread-safe; a reader
 * belongs to one session. */
#ifndef MC_IMAP_PARSER_H
#define MC_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_IMAP_LINE_DEFAULT (64u * 1024)
#define MC_IMAP_LITERAL_DEFAULT (64ull * 1024 * 1024)
/* Before authentication a literal only ever carries a password. */
#define MC_IMAP_LITERAL_PREAUTH (16u * 1024)
/* RFC 7888 LITERAL-: non-synchronising literals of at most 4096 octets. */
#define MC_IMAP_LITERAL_MINUS 4096u
#define MC_IMAP_TOKENS_DEFAULT 10000u
#define MC_IMAP_DEPTH_DEFAULT 16u

struct mc_imap_limits {
	size_t max_line;      /* command octets outside literals, summed
	                         over all lines of the command, incl. CRLFs */
	uint64_t max_literal; /* octets of one synchronising literal */
	uint64_t max_nonsync; /* octets of one {n+} literal: max_literal
	                         for LITERAL+, MC_IMAP_LITERAL_MINUS for
	                         LITERAL-; 0 refuses all but {0+} */
	uint64_t max_command; /* literal octets in one command, summed */
	unsigned max_tokens;  /* tokens per command (lists count one) */
	unsigned max_depth;   /* list nesting */
};

/* Fill *limits with the defaults above (post-authentication values). */
void mc_imap_limits_default(struct mc_imap_limits *limits);

/* A reply the server sends as "<tag> <status> [<code>] <text>", with "*"
 * for the tag when the command's tag is NULL. Static: never freed. */
struct mc_imap_reply {
	const char *status; /* "BAD" or "NO" */
	const char *code;   /* response code without brackets, or NULL */
	const char *text;   /* short, no CRLF */
};

enum mc_imap_token_type {
	MC_IMAP_ATOM = 1, /* also sequence sets, numbers, list-mailbox
	                     wildcards and BODY[...]<...> fetch items */
	MC_IMAP_QUOTED,   /* unescaped */
	MC_IMAP_LITERAL,  /* {n}, {n+}, {n-} */
	MC_IMAP_LITERAL8, /* ~{n}: may contain NUL */
	MC_IMAP_NIL,      /* the atom NIL, any case */
	MC_IMAP_FLAG,     /* \Seen, \* : text includes the backslash */
	MC_IMAP_LIST,     /* ( ... ): the next `count` tokens are inside */
};

struct mc_imap_token {
	enum mc_imap_token_type type;
	/* ATOM/NIL/FLAG/QUOTED/LITERAL*: the text, NUL-terminated (a NUL
	 * inside a literal8 is data: use len). Points into the reader's
	 * buffer. Atoms are as sent (not case-folded). */
	const char *text;
	size_t len;
	/* LIST: the tokens inside, all levels (skip them with i += count);
	 * items: the direct children. 0 for other types. */
	unsigned count, items;
	bool sync;     /* literal: was synchronising */
	bool wildcard; /* atom holds '*' or '%' */
	bool bracket;  /* atom holds a [...] section */
};

struct mc_imap_command {
	const char *tag;  /* NULL when there was no valid tag */
	const char *name; /* upper-cased ("FETCH"); NULL if missing */
	bool uid;         /* "UID FETCH": name is "FETCH" */
	const struct mc_imap_token *args; /* top level and nested, in order */
	unsigned nargs;                   /* entries in args (all levels) */
	uint64_t literal_octets;          /* summed, for logs and quotas */
};

/* Caller's storage; fields are private. */
struct mc_imap_reader {
	struct mc_imap_limits limits;
	char *buf;
	size_t cap, tail;   /* buffered bytes: buf[0..tail) */
	size_t scan;        /* framed up to here */
	size_t taken;       /* bytes of the command handed out last */
	size_t seg;         /* start of the current line segment */
	size_t line_octets; /* command octets outside literals */
	uint64_t literal_octets;
	uint64_t remaining; /* literal or skip octets still to come */
	int state;
	bool in_quote, escape;
	bool cont_pending;                   /* a sync literal waits for "+ " */
	const struct mc_imap_reply *pending; /* error once the command ends */
	struct mc_imap_token *tokens;
	char skip_tail[32]; /* last octets of a line being skipped */
	size_t skip_len;
	char tag[65]; /* tag of a command dropped while framing */
};

/* Allocate the buffer and the token array. */
void mc_imap_reader_init(struct mc_imap_reader *r,
                         const struct mc_imap_limits *limits);
void mc_imap_reader_fini(struct mc_imap_reader *r);
/* New limits (e.g. after LOGIN), from the next command on; buffered bytes
 * are kept. max_tokens may not change after init. */
void mc_imap_reader_limits(struct mc_imap_reader *r,
                           const struct mc_imap_limits *limits);

/* Free space to read into. *len_r is 0 when the buffer is full of
 * complete, pipelined commands the server has not taken yet (call next()
 * first: that is the back-pressure). After next() returned 0 there is
 * always space: the buffer grows for a command within the limits. */
void *mc_imap_reader_space(struct mc_imap_reader *r, size_t *len_r);
void mc_imap_reader_commit(struct mc_imap_reader *r, size_t n);
/* Copying variant: returns the bytes taken (may be < len). */
size_t mc_imap_reader_feed(struct mc_imap_reader *r, const void *data,
                           size_t len);

/* The next command.
 * 1: *cmd_r holds it; its strings are valid until the next call.
 * 0: need more bytes. Then check mc_imap_reader_continuation().
 * -1: the command (or what was read of it) is consumed and refused;
 *     *reply_r is the answer, cmd_r->tag its tag (NULL: answer "*"),
 *     cmd_r->name the command when known. The reader goes on with the
 *     next command:
 *     - BAD: syntax (no tag, no command, bad quoting, unbalanced or too
 *       deep parentheses, 8-bit or controls in an atom, NUL outside a
 *       literal8, bad literal size) or too many tokens; the whole command
 *       including its literals has been read.
 *     - BAD "[TOOBIG]" line too long: reported as soon as the octets
 *       outside literals pass max_line. The rest of that command is
 *       dropped as it arrives: up to the line end, and past every {n+}
 *       literal announced at a line end (a {n} one will not be sent,
 *       since no continuation was given).
 *     - NO [TOOBIG]: a synchronising literal over max_literal (or over
 *       max_command in total). Reported when its {n} line ends, before
 *       the continuation: the client does not send the literal, and the
 *       next line is a new command. Any other error found
 *       before a {n} (e.g. a NUL byte) is reported the same way with its
 *       own reply: the command is refused without reading the literal.
 *     - BAD [TOOBIG]: a non-synchronising literal over max_nonsync.
 *       Reported at its {n+} line end; the client sends the octets
 *       anyway, so the reader consumes and discards exactly n octets
 *       without buffering them, then the rest of the command as for an
 *       overlong line. RFC 7888 allows closing the connection instead;
 *       the server decides (bound the time, not the octets).
 * Lines end in CRLF; a bare LF is accepted as a line end. Blank lines
 * between commands are ignored. */
int mc_imap_reader_next(struct mc_imap_reader *r, struct mc_imap_command *cmd_r,
                        const struct mc_imap_reply **reply_r);

/* After next() returned 0: true exactly once per synchronising literal,
 * when the reader waits for its octets and the server must now send a
 * continuation request ("+ OK\r\n"). False if the client sent the octets
 * without waiting. */
bool mc_imap_reader_continuation(struct mc_imap_reader *r);

/* ---- helpers for command grammars --------------------------------------- */

/* Case-insensitive comparison of an atom-like token with a keyword. */
bool mc_imap_token_is(const struct mc_imap_token *t, const char *word);
/* astring: ATOM, NIL (as the string "NIL"), QUOTED or LITERAL. */
bool mc_imap_token_astring(const struct mc_imap_token *t);
/* number / number64 (RFC 9051): digits only, overflow-checked. */
bool mc_imap_parse_u32(const char *s, size_t len, uint32_t *v_r);
bool mc_imap_parse_u64(const char *s, size_t len, uint64_t *v_r);

/* "*" in a sequence set: the largest number in use (resolve below). */
#define MC_IMAP_SEQ_STAR UINT32_MAX

struct mc_imap_range {
	uint32_t lo, hi; /* lo <= hi; MC_IMAP_SEQ_STAR for "*" */
};

/* Parse a sequence-set ("1:*,4,10:12") into at most max ranges, in the
 * order given, each with lo <= hi ("5:2" is 2:5). Zero, empty elements,
 * trailing commas, more than max ranges or overflow: -1 with *error_r.
 * Returns 0 and *n_r. */
int mc_imap_seqset_parse(const char *s, size_t len,
                         struct mc_imap_range *ranges, size_t max, size_t *n_r,
                         const char **error_r);
/* Replace "*" by largest (the mailbox's highest number or UID) and
 * reorder each range, in place. With largest 0 every range is 0:0. */
void mc_imap_seqset_resolve(struct mc_imap_range *ranges, size_t n,
                            uint32_t largest);

#endif
