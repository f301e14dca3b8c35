/* Internet Message Format (RFC 5322) headers as a mailbox store needs them:
 * the header block of a stored message split into fields, address lists
 * parsed into IMAP's address structure, and the IMAP ENVELOPE (RFC 3501
 * 7.4.2) built from them and kept as JSON beside the message, so FETCH
 * ENVELOPE never has to read the blob again.
 *
 * Three layers, each usable alone:
 * - mc_imf_header_parse: message bytes (CRLF or LF line ends) -> the list
 *   of fields of its header block, unfolded, plus where the body starts.
 *   The MIME body-structure parser (issue 4) runs it again on each part's
 *   bytes and looks up Content-* fields with mc_imf_header_find.
 * - mc_imf_addr_parse: one address-list field value -> IMAP addresses.
 * - mc_imf_envelope_*: the ENVELOPE, its JSON form and back.
 *
 * Nothing here fails on bad input: any bytes give a result, broken parts
 * are skipped or repaired (best effort), limits cut the work short and set
 * `truncated` bits instead of growing. Everything returned is allocated
 * from the caller's pool and lives until the pool is freed; nothing keeps
 * a pointer into the caller's message. No I/O, no global state: callers
 * on different threads need only use different pools.
 *
 * Strings in the C structs are NUL-terminated. A NUL byte in a header is
 * replaced by 0x80 when the field is read (as Dovecot does): IMAP cannot
 * send NUL in a string anyway, Postgres jsonb refuses \u0000, and an 8-bit
 * byte keeps the string's length and marks it as not plain text. */
#ifndef MC_IMF_H
#define MC_IMF_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "pool.h"

/* Defaults. 1 MiB of header is far more than any real message carries
 * (Received chains of big mailing lists stay under 100 KiB) and still cheap
 * to scan; 64 KiB for one field keeps a To: line with a few thousand
 * recipients; 1000 fields covers long Received/DKIM/ARC chains. */
#define MC_IMF_MAX_HEADER_DEFAULT (1024u * 1024)
#define MC_IMF_MAX_FIELDS_DEFAULT 1000u
#define MC_IMF_MAX_FIELD_DEFAULT (64u * 1024)
/* Addresses (group markers included) kept per address list: bounds the
 * ENVELOPE JSON a 64 KiB field of "a,a,a,..." could otherwise blow up. */
#define MC_IMF_MAX_ADDRESSES_DEFAULT 2000u

struct mc_imf_limits {
	size_t max_header;    /* octets scanned for the end of the header */
	size_t max_fields;    /* fields kept; later ones are dropped */
	size_t max_field;     /* octets of one field as sent (name, colon,
	                         value, folds); the rest of it is dropped */
	size_t max_addresses; /* per address list */
};

/* What a limit cut short (bits of the `truncated` members). */
#define MC_IMF_TRUNC_HEADER 0x1u    /* no end of header in max_header */
#define MC_IMF_TRUNC_FIELDS 0x2u    /* more than max_fields fields */
#define MC_IMF_TRUNC_FIELD 0x4u     /* a field longer than max_field */
#define MC_IMF_TRUNC_ADDRESSES 0x8u /* a list over max_addresses */

/* Fill *limits with the defaults above. Every function taking limits also
 * accepts NULL for the defaults; a 0 member means its default too. */
void mc_imf_limits_default(struct mc_imf_limits *limits);

/* ---- header block ----------------------------------------------------- */

struct mc_imf_field {
	const char *name;  /* as sent (case kept), without the colon or any
	                      blanks before it (obs-optional) */
	const char *value; /* unfolded (every CRLF/LF of a fold removed, the
	                      blank after it kept), blanks trimmed at both
	                      ends, NUL -> 0x80; may hold 8-bit bytes and
	                      bare CRs */
	size_t value_len;
	size_t offset; /* of the field's first octet in the input */
	size_t size;   /* raw octets from offset through the line end of
	                  its last continuation line (whole field, even
	                  when the value was cut at max_field) */
};

struct mc_imf_header {
	struct mc_imf_field *fields; /* in order of appearance */
	size_t count;
	/* Octets of the header block including the empty line that ends it:
	 * the body starts here. Without an empty line the whole input is
	 * header (a message without a body), or, when max_header cut the
	 * scan, the complete lines that were scanned. */
	size_t size;
	bool has_body;      /* the empty line was found */
	size_t skipped;     /* lines dropped as not a field: no colon, a name
	                       with blanks or control/8-bit bytes, a leading
	                       continuation line, an mbox "From " line */
	unsigned truncated; /* MC_IMF_TRUNC_* */
};

/* Split the header block at the start of msg into fields. A line ends at
 * LF, with or without a CR before it; the header ends at the first empty
 * line. A bare CR is data. Never fails. */
void mc_imf_header_parse(struct mc_imf_header *hdr_r, struct mc_pool *pool,
                         const void *msg, size_t len,
                         const struct mc_imf_limits *limits);

/* The first field named name (ASCII case-insensitive), or NULL. The
 * pointer lives as long as hdr. */
const struct mc_imf_field *mc_imf_header_find(const struct mc_imf_header *hdr,
                                              const char *name);

/* ---- addresses -------------------------------------------------------- */

/* One member of an IMAP address list (RFC 3501 7.4.2), NULL for NIL:
 * - a mailbox: name (display name: quotes removed, escapes resolved,
 *   words joined by single blanks, encoded-words left as they are, NULL
 *   when there is none), adl (obs-route "@a,@b" or NULL), mailbox (local
 *   part as sent, without blanks or comments; a quoted local part keeps
 *   its quotes so mailbox "@" host is a usable address), host (domain,
 *   or "[literal]" with its brackets);
 * - group start: mailbox is the group name, name, adl and host NULL;
 * - group end: all four NULL.
 * A mailbox or host that is missing from broken input is filled in with
 * "MISSING_MAILBOX" / "MISSING_DOMAIN" (a NULL host would turn the address
 * into a group marker; the names are Dovecot's) and `invalid` is set. */
struct mc_imf_address {
	const char *name;
	const char *adl;
	const char *mailbox;
	const char *host;
	bool invalid; /* repaired from broken syntax (not kept in JSON) */
};

struct mc_imf_addr_list {
	struct mc_imf_address *addrs; /* NULL when count == 0 */
	size_t count;
	bool truncated; /* max_addresses reached; the rest was dropped */
};

#define MC_IMF_MISSING_MAILBOX "MISSING_MAILBOX"
#define MC_IMF_MISSING_DOMAIN "MISSING_DOMAIN"

/* Parse an address-list field value (RFC 5322 3.4 with the obsolete
 * syntax of 4.4: routes, CFWS around dots, empty list members) into
 * *list_r. Comments are skipped (never used as names). Broken input (an
 * unterminated quote, comment, literal or angle, stray '<' '>' ';', bare
 * words) gives a best-effort result; junk after an address up to the next
 * ',' is dropped. A group without its ';' is closed at the end. Keeps at
 * most max_addresses entries (0: the default), plus the end marker of a
 * group the limit cut short. Never fails. */
void mc_imf_addr_parse(struct mc_imf_addr_list *list_r, struct mc_pool *pool,
                       const char *value, size_t len, size_t max_addresses);

/* ---- ENVELOPE --------------------------------------------------------- */

/* RFC 3501 7.4.2. Each member comes from the first field of its name; a
 * string is the field's value as mc_imf_header_parse gives it (unfolded,
 * trimmed, RFC 2047 encoded-words NOT decoded: IMAP returns them as they
 * are), NULL when the field is absent ("" when present but empty). An
 * address list with no address (field absent, empty or unparseable) has
 * count 0 and is NIL in IMAP, except sender and reply_to, which are copies
 * of from in that case (the server fills them in, RFC 3501). */
struct mc_imf_envelope {
	const char *date;
	const char *subject;
	struct mc_imf_addr_list from, sender, reply_to, to, cc, bcc;
	const char *in_reply_to;
	const char *message_id;
	unsigned truncated; /* MC_IMF_TRUNC_* from the header and the lists */
};

/* The envelope of a parsed header block. */
void mc_imf_envelope_from_header(struct mc_imf_envelope *env_r,
                                 struct mc_pool *pool,
                                 const struct mc_imf_header *hdr,
                                 const struct mc_imf_limits *limits);

/* mc_imf_header_parse + mc_imf_envelope_from_header: what delivery calls
 * with the whole message. */
void mc_imf_envelope_parse(struct mc_imf_envelope *env_r, struct mc_pool *pool,
                           const void *msg, size_t len,
                           const struct mc_imf_limits *limits);

/* ---- ENVELOPE as JSON ------------------------------------------------- */

/* The JSON stored in messages.envelope:
 *   {"date": S, "subject": S, "from": A, "sender": A, "reply_to": A,
 *    "to": A, "cc": A, "bcc": A, "in_reply_to": S, "message_id": S}
 * S is a string or null (NIL). A is null (NIL, no address) or an array of
 * [name, adl, mailbox, host], each an S. Every key is always present.
 *
 * Lossless strings: a value that is valid UTF-8 (RFC 3629: no overlongs,
 * no surrogates) is a JSON string as it is; any other value (Latin-1
 * headers, broken UTF-8) is an object {"base64": "<its exact octets>"}.
 * A string is never an object, so the two cannot be confused, the common
 * case stays readable in SQL, and the IMAP server gets back the very
 * octets the message holds. No JSON string ever holds \u0000 (jsonb
 * refuses it; NULs were replaced when the header was read). */

/* A new JSON object (caller owns the reference: json_decref). Aborts on
 * out-of-memory like mc_malloc. */
json_t *mc_imf_envelope_to_json(const struct mc_imf_envelope *env);

/* Read the JSON back into *env_r, strings allocated from pool (the JSON
 * is not referenced afterwards). Returns 0, or -1 with error_r when json
 * is not an envelope of the form above (missing keys are taken as null;
 * unknown keys are ignored so later versions may add some). NUL bytes in
 * base64 values are replaced by 0x80. env_r->truncated is 0. */
int mc_imf_envelope_from_json(struct mc_imf_envelope *env_r,
                              struct mc_pool *pool, const json_t *json,
                              const char **error_r);

#endif
