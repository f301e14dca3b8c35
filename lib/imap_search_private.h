/* Shared between the files of lib/imap_search (imap_search.c: the parser
 * and evaluator, imap_search_text.c: dates, encoded-words and substring
 * search). Not for other modules. Every function is pure: no I/O, no
 * global state, callable from any thread. */
#ifndef MC_IMAP_SEARCH_PRIVATE_H
#define MC_IMAP_SEARCH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

/* A search string, lower-cased, with its KMP failure table. */
struct mc_imap_search_needle {
	const unsigned char *s;
	const uint32_t *fail;
	size_t len;
};

/* Build nd from the len octets at s (not NUL-terminated; ASCII letters
 * folded to lower case, other octets as they are). The string and the
 * table (four octets per octet of s) are allocated from pool and live as
 * long as it; s may go right after. The caller bounds len. */
void mc_imap_search_needle_init(struct mc_imap_search_needle *nd,
                                struct mc_pool *pool, const char *s,
                                size_t len);

/* Whether nd occurs in the len octets at hay, ASCII letters compared
 * case-insensitively. An empty needle is found anywhere. Time linear in
 * len whatever the needle. */
bool mc_imap_search_needle_find(const struct mc_imap_search_needle *nd,
                                const void *hay, size_t len);

/* An RFC 3501 date ("d-Mon-yyyy", the day one or two digits, the month
 * any case) of len octets at s: true with *day_r the days since
 * 1970-01-01; false (nothing written) when it is not one or names no
 * real day. */
bool mc_imap_search_parse_imap_date(const char *s, size_t len, int64_t *day_r);

/* The NUL-terminated value of a Date header (RFC 5322 date-time, the
 * obsolete syntax of 4.3 included): true with *day_r the day it names as
 * written (its zone not applied, as SENT* compare), days since
 * 1970-01-01; false when it does not parse. */
bool mc_imap_search_parse_sent_date(const char *s, int64_t *day_r);

/* The day (since 1970-01-01) that unix time t falls on in a zone
 * tz_minutes east of UTC; saturates instead of overflowing. */
int64_t mc_imap_search_local_day(int64_t t, int tz_minutes);

/* A header field value of len octets at in, its RFC 2047 encoded-words
 * (B and Q) decoded, charsets taken as they are; blanks between two
 * encoded-words go. Writes at most len octets to out (the caller's,
 * len bytes or more; not NUL-terminated) and returns how many. */
size_t mc_imap_search_rfc2047_decode(const unsigned char *in, size_t len,
                                     unsigned char *out);

#endif
