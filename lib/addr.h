/* Mail address and domain validation and normalisation, shared by mailctl
 * (early, friendly errors) and the controller (the authority: it never
 * trusts the CLI). ASCII only for now: IDNs are given as A-labels
 * (xn--...), SMTPUTF8 local parts come with the SMTP work.
 *
 * Rules (RFC 5321 / RFC 1035, what a production MTA accepts):
 * - domain: 1..253 chars, at least two labels, labels 1..63 chars of
 *   [A-Za-z0-9-] not starting or ending with '-', TLD not all digits; no
 *   trailing dot; compared and stored lower-case.
 * - local part: dot-atom, 1..64 chars of atext (RFC 5322 3.2.3) with single
 *   dots not at either end; case is preserved but lookups are
 *   case-insensitive (the directory lower-cases keys).
 * - address: local@domain, at most 254 chars in total.
 * - alias source: an address, or "*@domain" for the catch-all. */
#ifndef MC_ADDR_H
#define MC_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define MC_ADDR_MAX 254
#define MC_LOCAL_MAX 64
#define MC_DOMAIN_MAX 253

bool mc_addr_domain_valid(const char *domain);
bool mc_addr_local_valid(const char *local);

/* Split and validate "local@domain" (the last '@' separates). On success
 * fills local_r (size >= MC_LOCAL_MAX + 1) and domain_r (size >=
 * MC_DOMAIN_MAX + 1, lower-cased) and returns 0; otherwise -1 with a
 * human-readable reason in error_r ("missing '@'", "invalid domain 'x'",
 * ...). When allow_wildcard is true, a local part of exactly "*" is
 * accepted (catch-all alias source). */
int mc_addr_parse(const char *address, bool allow_wildcard, char *local_r,
                  char *domain_r, const char **error_r);

/* Lower-case an ASCII string in place; returns s. */
char *mc_addr_lower(char *s);

#endif
