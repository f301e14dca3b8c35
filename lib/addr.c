/* Mail address and domain validation and normalisation; see addr.h. Pure
 * functions over NUL-terminated ASCII: no locale (ctype would accept
 * Latin-1 letters under some locales), no allocation. Lengths are measured
 * with strnlen so a hostile, very long input is never scanned past the
 * limit plus one.
 *
 * A local part of exactly "*" is reserved for the catch-all alias source:
 * mc_addr_local_valid rejects it (no account or alias may be named "*")
 * and mc_addr_parse accepts it only when allow_wildcard is set. */
#include "addr.h"

#include <string.h>

#include "error.h"

#define MC_LABEL_MAX 63
/* How much of a rejected input is echoed back in an error message. */
#define MC_ADDR_ECHO_MAX 80

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 3.2.3 atext. */
static bool
is_atext(unsigned char c)
{
	if (is_alpha(c) || is_digit(c))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

bool
mc_addr_domain_valid(const char *domain)
{
	const char *label, *p;
	size_t len, labels = 0;
	bool all_digits = true;

	if (domain == NULL)
		return false;
	len = strnlen(domain, MC_DOMAIN_MAX + 1);
	if (len == 0 || len > MC_DOMAIN_MAX)
		return false;
	label = domain;
	for (p = domain;; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '.' || c == '\0') {
			size_t n = (size_t)(p - label);

			if (n == 0 || n > MC_LABEL_MAX)
				return false;
			if (label[0] == '-' || p[-1] == '-')
				return false;
			labels++;
			if (c == '\0')
				break;
			label = p + 1;
			all_digits = true;
			continue;
		}
		if (!is_alpha(c) && !is_digit(c) && c != '-')
			return false;
		if (!is_digit(c))
			all_digits = false;
	}
	/* all_digits now describes the TLD: an all-numeric TLD would make
	 * "1.2.3.4" look like a domain. */
	return labels >= 2 && !all_digits;
}

bool
mc_addr_local_valid(const char *local)
{
	size_t len, i;

	if (local == NULL)
		return false;
	len = strnlen(local, MC_LOCAL_MAX + 1);
	if (len == 0 || len > MC_LOCAL_MAX)
		return false;
	if (strcmp(local, "*") == 0)
		return false;
	if (local[0] == '.' || local[len - 1] == '.')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)local[i];

		if (c == '.') {
			if (local[i + 1] == '.')
				return false;
		} else if (!is_atext(c)) {
			return false;
		}
	}
	return true;
}

/* Copy at most MC_ADDR_ECHO_MAX bytes of s into buf, replacing anything
 * that is not printable ASCII, so error text is safe to log and print. */
static const char *
echo(const char *s, size_t n, char *buf, size_t size)
{
	size_t i, max = size - 4;

	for (i = 0; i < n && i < max && s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (i < n && s[i] != '\0') {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

int
mc_addr_parse(const char *address, bool allow_wildcard, char *local_r,
              char *domain_r, const char **error_r)
{
	char local[MC_LOCAL_MAX + 1], shown[MC_ADDR_ECHO_MAX + 4];
	const char *at, *domain;
	size_t len, local_len;

	if (address == NULL || *address == '\0') {
		*error_r = "empty address";
		return -1;
	}
	len = strnlen(address, MC_ADDR_MAX + 1);
	if (len > MC_ADDR_MAX) {
		*error_r = mc_errorf("address longer than %d characters",
		                     MC_ADDR_MAX);
		return -1;
	}
	at = strrchr(address, '@');
	if (at == NULL) {
		*error_r = mc_errorf("missing '@' in '%s'",
		                     echo(address, len, shown, sizeof(shown)));
		return -1;
	}
	local_len = (size_t)(at - address);
	domain = at + 1;
	if (local_len == 0) {
		*error_r = "empty local part";
		return -1;
	}
	if (local_len > MC_LOCAL_MAX) {
		*error_r = mc_errorf("local part longer than %d characters",
		                     MC_LOCAL_MAX);
		return -1;
	}
	memcpy(local, address, local_len);
	local[local_len] = '\0';
	if (strcmp(local, "*") == 0) {
		if (!allow_wildcard) {
			*error_r = "'*' is only allowed as a catch-all alias "
			           "source";
			return -1;
		}
	} else if (!mc_addr_local_valid(local)) {
		*error_r =
		        mc_errorf("invalid local part '%s'",
		                  echo(local, local_len, shown, sizeof(shown)));
		return -1;
	}
	if (*domain == '\0') {
		*error_r = "empty domain";
		return -1;
	}
	if (!mc_addr_domain_valid(domain)) {
		*error_r = mc_errorf(
		        "invalid domain '%s'",
		        echo(domain, strlen(domain), shown, sizeof(shown)));
		return -1;
	}
	memcpy(local_r, local, local_len + 1);
	memcpy(domain_r, domain, strlen(domain) + 1);
	mc_addr_lower(domain_r);
	return 0;
}

char *
mc_addr_lower(char *s)
{
	char *p;

	for (p = s; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}
