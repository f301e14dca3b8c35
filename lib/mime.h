/* MIME structure of a stored message (RFC 2045, 2046, 2231) as the IMAP
 * server needs it for BODY, BODYSTRUCTURE (RFC 3501 7.4.2) and
 * BODY[section]<partial>: a tree of parts, each with its Content-* fields
 * parsed and the byte offsets of its header and body inside the message,
 * so any section can be cut out of the blob without parsing it again.
 * The tree is also given as JSON, kept beside the message.
 *
 * Built on lib/imf: each part's header block is split by
 * mc_imf_header_parse, message/rfc822 parts carry the ENVELOPE of the
 * message they enclose.
 *
 * Nothing here fails on bad input: any bytes give a tree (best effort).
 * A multipart without a usable boundary, without any delimiter line or
 * without any part, and a multipart or message/rfc822 past max_depth or
 * max_parts, becomes an application/octet-stream leaf covering its bytes
 * (`repaired` is set); a missing close delimiter ends the last part at
 * the end of the enclosing part. Everything returned is allocated from the
 * caller's pool and never points into the caller's message. No I/O, no
 * global state; callers on different threads use different pools. */
#ifndef MC_MIME_H
#define MC_MIME_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "imf.h"
#include "pool.h"

/* 20 levels is more than any real message nests (Dovecot uses 100 for
 * its hard limit, forwarded-of-forwarded chains stay under 10); 5000
 * parts covers digests of mailing lists. Scanning is linear in the
 * message size per nesting level, so these bound the total work. */
#define MC_MIME_MAX_DEPTH_DEFAULT 20u
#define MC_MIME_MAX_PARTS_DEFAULT 5000u
/* Hard cap on max_depth whatever the caller asks: parsing recurses. */
#define MC_MIME_MAX_DEPTH_HARD 100u
/* Parameters read from one Content-Type/Content-Disposition field. */
#define MC_MIME_MAX_PARAMS 256u

struct mc_mime_limits {
	size_t max_depth; /* nesting of multipart and message/rfc822 */
	size_t max_parts; /* parts in the whole tree, the root included */
	struct mc_imf_limits imf; /* for each part's header block */
};

/* What a limit cut short (bits of mc_mime_message.truncated). */
#define MC_MIME_TRUNC_DEPTH 0x1u
#define MC_MIME_TRUNC_PARTS 0x2u
#define MC_MIME_TRUNC_HEADER 0x4u /* some part's header hit an imf limit */

/* Fill *limits with the defaults. Functions taking limits accept NULL for
 * the defaults; a 0 member means its default. */
void mc_mime_limits_default(struct mc_mime_limits *limits);

/* One parameter. name is lower-cased ASCII. value is unquoted and
 * unescaped; for RFC 2231 parameters (name*, name*0*, name*1 ...) the
 * sections are joined and %XX decoded, and charset/language are the ones
 * from the first section (NULL when not given, and for plain
 * parameters). value holds no NUL (NUL -> 0x80) and may be 8-bit in
 * whatever charset the sender used. */
struct mc_mime_param {
	const char *name;
	const char *value;
	const char *charset;
	const char *language;
};

struct mc_mime_part {
	const char *type;             /* lower-cased, "text" by default */
	const char *subtype;          /* lower-cased, "plain" by default */
	struct mc_mime_param *params; /* Content-Type parameters, in order */
	size_t param_count;
	const char *id;          /* Content-ID value or NULL */
	const char *description; /* Content-Description or NULL */
	const char *encoding;    /* Content-Transfer-Encoding token,
	                            upper-cased, "7BIT" by default */
	const char *md5;         /* Content-MD5 or NULL */
	const char *disposition; /* lower-cased token or NULL */
	struct mc_mime_param *disp_params;
	size_t disp_param_count;
	const char **languages; /* Content-Language tags, NULL if absent */
	size_t language_count;
	const char *location; /* Content-Location or NULL */

	/* Where the part lies in the message, in octets from its start.
	 * The header includes the empty line ending it; body_offset ==
	 * header_offset + header_size. For a part of a multipart, the
	 * CRLF before the next delimiter line belongs to the delimiter
	 * (RFC 2046 5.1.1), not to the body. */
	size_t header_offset, header_size;
	size_t body_offset, body_size;
	/* Lines of the body (LF count, plus 1 for a last line without LF)
	 * for text (any subtype) and message/rfc822, 0 otherwise. */
	size_t lines;

	struct mc_imf_header header; /* the part's fields */
	bool repaired; /* made a leaf: could not be split, or a limit */

	/* multipart (any subtype): its parts (child_count >= 1), linked by
	 * next. message/rfc822: the enclosed message as one child, whose header
	 * is the message's header, and its envelope. Leaves: none. */
	struct mc_mime_part *children;
	size_t child_count;
	struct mc_mime_part *next;
	struct mc_mime_part *parent;
	struct mc_imf_envelope *envelope; /* message/rfc822 only */
};

struct mc_mime_message {
	struct mc_mime_part *root; /* never NULL after parse */
	size_t part_count;
	unsigned truncated; /* MC_MIME_TRUNC_* */
};

/* Parse msg (a whole message, CRLF or LF line ends) into *msg_r. Never
 * fails; the tree lives in pool. */
void mc_mime_parse(struct mc_mime_message *msg_r, struct mc_pool *pool,
                   const void *msg, size_t len,
                   const struct mc_mime_limits *limits);

/* The part for an IMAP section number ("1", "1.2.3"; "" is the root) as
 * RFC 3501 6.4.5 numbers them: within a message/rfc822 part the numbers
 * go on into the enclosed message's parts, and "1" of a message that is
 * not multipart is its body. NULL when there is no such part. */
const struct mc_mime_part *mc_mime_find(const struct mc_mime_message *msg,
                                        const char *section);

/* The parameter name (lower-case) of a list, or NULL. */
const struct mc_mime_param *mc_mime_param_find(const struct mc_mime_param *p,
                                               size_t count, const char *name);

/* ---- JSON ------------------------------------------------------------- */

/* The tree as JSON:
 *   {"truncated": N, "root": P}
 * P, one part:
 *   {"type": S, "subtype": S, "params": L,
 *    "id": S|null, "description": S|null, "encoding": S, "md5": S|null,
 *    "disposition": null | {"type": S, "params": L},
 *    "language": null | [S, ...], "location": S|null,
 *    "header_offset": N, "header_size": N,
 *    "body_offset": N, "body_size": N,
 *    "lines": N,               (text (any subtype) and message/rfc822 only)
 *    "repaired": true,         (only when set)
 *    "parts": [P, ...],        (multipart only, at least one)
 *    "envelope": E, "message": P}  (message/rfc822 only; E as in imf.h)
 * L is an array of parameters, each [name, value], or
 * [name, value, charset, language] (charset/language S|null) for an
 * RFC 2231 parameter. S is a string, or {"base64": ...} for a value that
 * is not valid UTF-8 (the lossless convention of imf.h). Caller owns the
 * reference (json_decref); aborts on out-of-memory like mc_malloc. */
json_t *mc_mime_to_json(const struct mc_mime_message *msg);

#endif
