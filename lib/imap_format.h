/* What an IMAP server sends about a stored message (RFC 3501 7.4.2,
 * RFC 9051 7.5.2): strings in IMAP syntax, the ENVELOPE and the
 * BODY/BODYSTRUCTURE built from the JSON kept beside each message
 * (lib/imf.h mc_imf_envelope_to_json, lib/mime.h mc_mime_to_json), and
 * the FETCH BODY[section]<partial> items: their grammar and the bytes
 * they name inside a message.
 *
 * Pure functions: no I/O, no global state. Output goes to a caller's
 * struct mc_strbuf and is appended; on failure nothing usable was
 * appended (the caller resets its buffer or falls back). */
#ifndef MC_IMAP_FORMAT_H
#define MC_IMAP_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mime.h"
#include "pool.h"
#include "strbuf.h"

/* ---- strings -------------------------------------------------------- */

/* An IMAP string for s (len octets): a quoted string when s holds only
 * 7-bit text without CR, LF or NUL and is at most 1024 octets, else a
 * literal {len}CRLF<octets>. s == NULL gives NIL. Backslash and quote
 * are escaped inside a quoted string. */
void mc_imap_nstring(struct mc_strbuf *b, const char *s, size_t len);
/* The same, with 8-bit text allowed inside quotes (UTF8=ACCEPT). */
void mc_imap_nstring_utf8(struct mc_strbuf *b, const char *s, size_t len);
/* An astring: an atom when s is a non-empty atom (and not "NIL"),
 * otherwise as mc_imap_nstring. For mailbox names and flags. */
void mc_imap_astring(struct mc_strbuf *b, const char *s);

/* ---- ENVELOPE / BODY / BODYSTRUCTURE ---------------------------------- */

/* The parenthesised ENVELOPE from its stored JSON (the form of
 * mc_imf_envelope_to_json). json == NULL or broken JSON gives an envelope
 * of NILs (and returns -1 only for broken JSON, with *error_r). */
int mc_imap_format_envelope(struct mc_strbuf *b, const char *json,
                            const char **error_r);
/* The ENVELOPE as above in a new string when it is valid UTF-8 without
 * NUL (so it can be kept as text); NULL otherwise. Free it. */
char *mc_imap_envelope_text(const char *json);
/* len bytes are valid UTF-8 without NUL (storable as Postgres text). */
bool mc_imap_text_ok(const char *s, size_t len);
/* BODY (extended = false) or BODYSTRUCTURE (extended = true) from the
 * stored MIME JSON (the form of mc_mime_to_json). -1 with *error_r when
 * the JSON is not of that form (nothing appended). */
int mc_imap_format_body(struct mc_strbuf *b, const char *json, bool extended,
                        const char **error_r);

/* ---- BODY[section]<partial> -------------------------------------------- */

enum mc_imap_section_kind {
	MC_IMAP_SECTION_ALL,               /* BODY[] or BODY[1.2] */
	MC_IMAP_SECTION_HEADER,            /* BODY[HEADER], BODY[1.HEADER] */
	MC_IMAP_SECTION_HEADER_FIELDS,     /* BODY[HEADER.FIELDS (A B)] */
	MC_IMAP_SECTION_HEADER_FIELDS_NOT, /* BODY[HEADER.FIELDS.NOT (A)] */
	MC_IMAP_SECTION_TEXT,              /* BODY[TEXT], BODY[1.TEXT] */
	MC_IMAP_SECTION_MIME,              /* BODY[1.MIME] */
};

/* One BODY[...] / BODY.PEEK[...] / BINARY[...] / BINARY.PEEK[...] /
 * BINARY.SIZE[...] fetch item, also RFC822, RFC822.HEADER, RFC822.TEXT
 * (as BODY[], BODY.PEEK[HEADER], BODY[TEXT]). */
struct mc_imap_section {
	bool peek;   /* .PEEK, or RFC822.HEADER: does not set \Seen */
	bool binary; /* BINARY[...]: content transfer decoding applied */
	bool binary_size; /* BINARY.SIZE[...] */
	const char *part; /* "1.2.3" or "" for the message itself (pool) */
	enum mc_imap_section_kind kind;
	const char **fields; /* HEADER.FIELDS(.NOT): names as sent (pool) */
	size_t field_count;
	bool partial;          /* <offset.length> given */
	uint64_t offset, length;
	/* What the response names the item, e.g. "BODY[HEADER.FIELDS (FROM
	 * TO)]<0>" (RFC 3501: the origin octet only, no length; .PEEK
	 * dropped), or "RFC822.HEADER" for the RFC822 forms (pool). */
	const char *name;
};

/* Parse a fetch item atom (the whole "BODY.PEEK[1.HEADER.FIELDS (A B)]<0.10>"
 * as the IMAP reader gives it; also "RFC822", "RFC822.HEADER",
 * "RFC822.TEXT"). Returns 1 with *sec_r filled (strings in pool) when
 * item is such an item, 0 when it is some other item (FLAGS, UID...),
 * -1 with *error_r for a malformed one (bad part number, unknown section
 * text, MIME without a part number, HEADER.FIELDS without names, bad
 * partial). Case-insensitive. */
int mc_imap_section_parse(const char *item, size_t len, struct mc_pool *pool,
                          struct mc_imap_section *sec_r, const char **error_r);

/* Append the item's response: name, a space, then the content as a
 * literal (or "" / NIL as RFC 3501 says for a part that does not exist:
 * an empty string). For binary_size: name, space, the decoded size.
 * msg/len is the whole message; mime its parsed structure (mc_mime_parse
 * of the same bytes). The partial window is applied after extraction
 * (and after decoding for BINARY). BINARY of a part whose encoding cannot
 * be decoded (unknown CTE) returns -1 with *error_r ("UNKNOWN-CTE"),
 * nothing appended. HEADER.FIELDS matching is case-insensitive and keeps
 * the message's order and folding; the result ends with the empty line
 * as RFC 3501 requires. */
int mc_imap_section_fetch(struct mc_strbuf *b, const struct mc_imap_section *sec,
                          const char *msg, size_t len,
                          const struct mc_mime_message *mime,
                          const char **error_r);

#endif
