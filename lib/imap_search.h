/* IMAP SEARCH (RFC 3501 6.4.4, RFC 9051 6.4.4, RFC 4731 ESEARCH return
 * options, RFC 7162 MODSEQ): the search program parsed from a command's
 * tokens into a tree, and its evaluation against one message at a time.
 *
 * Evaluation is three-valued so a server can avoid reading message bytes:
 * a first pass with the metadata only (flags, size, dates, UIDs, the
 * stored Date header) answers YES or NO for most programs; only when it
 * answers NEED_DATA does the server load the message and ask again with
 * the bytes. Text keys (BODY, TEXT, HEADER, FROM, TO, CC, BCC, SUBJECT)
 * match case-insensitively (ASCII, plus UTF-8 as bytes) as substrings;
 * header keys search the unfolded header field values, with RFC 2047
 * encoded-words decoded to UTF-8 first; BODY/TEXT search the body as
 * stored, and also the decoded text of base64/quoted-printable text parts.
 *
 * Pure: no I/O, no global state; the tree lives in the caller's pool. */
#ifndef MC_IMAP_SEARCH_H
#define MC_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_parser.h"
#include "pool.h"

struct mc_imap_search;

/* Limits of one program, each a BAD when exceeded: nesting of NOT, OR and
 * parentheses (parsing and evaluation recurse that deep), search keys
 * (each costs a node and a little work per message), and octets of all
 * search strings together (each string gets a match table of four
 * octets per octet; an IMAP line is 64 KiB anyway). */
#define MC_IMAP_SEARCH_MAX_DEPTH 64u
#define MC_IMAP_SEARCH_MAX_KEYS 1000u
#define MC_IMAP_SEARCH_MAX_TEXT (64u * 1024)

/* RETURN (...) of ESEARCH (RFC 4731); none set = plain SEARCH reply. */
#define MC_IMAP_SEARCH_RET_MIN 0x1u
#define MC_IMAP_SEARCH_RET_MAX 0x2u
#define MC_IMAP_SEARCH_RET_ALL 0x4u
#define MC_IMAP_SEARCH_RET_COUNT 0x8u

struct mc_imap_search_options {
	bool esearch;      /* a RETURN (...) was given: answer with ESEARCH */
	unsigned ret;      /* MC_IMAP_SEARCH_RET_*; RETURN () means ALL */
	bool uses_modseq;  /* the program has a MODSEQ key (RFC 7162 3.1.5:
	                      the reply carries (MODSEQ n)) */
	const char *charset; /* as given ("UTF-8"), NULL when absent */
};

/* Parse the arguments of SEARCH (everything after the command name, as
 * the reader tokenised them: args/nargs of struct mc_imap_command).
 * Accepts [RETURN (opts)] [CHARSET name] keys...; keys combine with AND,
 * OR a b, NOT a, ( ... ), sequence sets (message numbers) and UID sets.
 * Charsets other than US-ASCII and UTF-8 (any case) fail with
 * *error_r = "[BADCHARSET (US-ASCII UTF-8)] ..." so the server answers
 * NO; every other problem is -1 with a text for a BAD reply. Dates are
 * d-Mon-yyyy (RFC 3501 date). Returns 0 with *search_r and *opts_r.
 * Everything returned (the tree, opts_r->charset, *error_r) lives in
 * pool; nothing points into the tokens, so the reader may go on. */
int mc_imap_search_parse(const struct mc_imap_token *args, unsigned nargs,
                         struct mc_pool *pool, struct mc_imap_search **search_r,
                         struct mc_imap_search_options *opts_r,
                         const char **error_r);

/* True when some key needs the message bytes (text keys). */
bool mc_imap_search_needs_data(const struct mc_imap_search *search);
/* True when some key compares the Date header (SENTBEFORE/ON/SINCE):
 * msg->date is read only then. */
bool mc_imap_search_needs_date(const struct mc_imap_search *search);
/* True when the only keys that need the message bytes are header keys
 * (HEADER, SUBJECT, FROM, TO, CC, BCC) on fields of the NULL-terminated
 * list (ASCII case-insensitive): a message made of just those fields
 * (header lines as in the message, then an empty line) gives the same
 * answer as the whole message. */
bool mc_imap_search_fields_only(const struct mc_imap_search *search,
                                const char *const *fields);

/* One message as the evaluator sees it. */
struct mc_imap_search_msg {
	uint32_t seq, uid;
	uint64_t modseq;
	const char *flags;     /* space-separated: "\\Seen $Label" ("" none) */
	bool recent;
	uint64_t size;         /* RFC822.SIZE */
	int64_t internaldate;  /* unix seconds, UTC */
	const char *date;      /* the Date header's value, NULL if none */
	const char *data;      /* the whole message, NULL when not loaded */
	size_t len;
};

/* Context of the whole search: what "*" means. */
struct mc_imap_search_ctx {
	uint32_t max_seq; /* messages in the mailbox */
	uint32_t max_uid; /* highest UID in the mailbox (0 when empty) */
	int tz_offset_minutes; /* for BEFORE/ON/SINCE on INTERNALDATE:
	                          0 = UTC (dates compare in this zone) */
	/* OLDER/YOUNGER (RFC 5032) count back from now (unix seconds);
	 * 0 = time(NULL) at each match. Set it once per command for one
	 * consistent answer, or in tests for a fixed clock. */
	int64_t now;
};

enum mc_imap_search_result {
	MC_IMAP_SEARCH_NO = 0,
	MC_IMAP_SEARCH_YES = 1,
	MC_IMAP_SEARCH_NEED_DATA = 2, /* only when msg->data == NULL */
};

/* Evaluate search for one message. Without data (msg->data NULL) a text
 * key is unknown, and combines as such: AND with a NO is NO, OR with a
 * YES is YES, NOT keeps it unknown; NEED_DATA when the answer still
 * depends on one. With data the answer is YES or NO. Semantics where the
 * RFCs leave room:
 * - SENTBEFORE/SENTON/SENTSINCE compare the date as written in msg->date
 *   (the sender's local date: "disregarding time and timezone"); a Date
 *   that does not parse as RFC 5322 (obsolete forms included) matches
 *   none of them.
 * - OLDER n: internaldate <= now - n; YOUNGER n: internaldate >= now - n
 *   (both inclusive, as Dovecot).
 * - Flags and keywords match msg->flags case-insensitively.
 * Allocates (a pool, freed before returning) only when it reads data.
 * Thread-safe for different msg/ctx: search is not modified. */
enum mc_imap_search_result
mc_imap_search_match(const struct mc_imap_search *search,
                     const struct mc_imap_search_ctx *ctx,
                     const struct mc_imap_search_msg *msg);

#endif
