/* The text machinery of IMAP SEARCH (imap_search.c is the parser and
 * evaluator): RFC 3501 search dates and RFC 5322 Date header values
 * (obsolete syntax included) turned into day numbers, the day of an
 * INTERNALDATE in the server's zone, RFC 2047 encoded-word decoding of
 * header values, and "needles": search strings folded to ASCII lower
 * case with a KMP failure table, so a match is linear in the message
 * whatever the pattern. Pure functions; see imap_search_private.h. */
#include "imap_search_private.h"
#include "mime_decode.h"

#include <strings.h>

/* ---- small helpers ------------------------------------------------------ */

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool
leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned
month_days(unsigned y, unsigned m)
{
	static const unsigned char days[12] = {31, 28, 31, 30, 31, 30,
	                                       31, 31, 30, 31, 30, 31};

	return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* 1..12 for a month name's first three letters (any case), else 0. */
static unsigned
month_index(const char *p)
{
	static const char names[12][4] = {"jan", "feb", "mar", "apr",
	                                  "may", "jun", "jul", "aug",
	                                  "sep", "oct", "nov", "dec"};

	for (unsigned m = 0; m < 12; m++)
		if (strncasecmp(p, names[m], 3) == 0)
			return m + 1;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* The day of unix time t in a zone tz_minutes east of UTC. */
int64_t
mc_imap_search_local_day(int64_t t, int tz_minutes)
{
	int64_t off = (int64_t)tz_minutes * 60, q;

	if (off > 0 && t > INT64_MAX - off)
		t = INT64_MAX - off;
	else if (off < 0 && t < INT64_MIN - off)
		t = INT64_MIN - off;
	t += off;
	q = t / 86400;
	return t % 86400 < 0 ? q - 1 : q;
}

/* RFC 3501 date: d-Mon-yyyy, day one or two digits. */
bool
mc_imap_search_parse_imap_date(const char *s, size_t len, int64_t *day_r)
{
	unsigned d = 0, m, y = 0;
	size_t i = 0;

	while (i < len && i < 2 && is_digit(s[i]))
		d = d * 10 + (unsigned)(s[i++] - '0');
	if (i == 0 || len - i != 9 || s[i] != '-' || s[i + 4] != '-')
		return false;
	m = month_index(s + i + 1);
	for (i += 5; i < len; i++) {
		if (!is_digit(s[i]))
			return false;
		y = y * 10 + (unsigned)(s[i] - '0');
	}
	if (m == 0 || d < 1 || d > month_days(y, m))
		return false;
	*day_r = days_from_civil(y, m, d);
	return true;
}

/* Blanks, line breaks and (nested (comments)) of RFC 5322. */
static const char *
skip_cfws(const char *p)
{
	unsigned depth = 0;

	for (; *p != '\0'; p++) {
		if (*p == '(') {
			depth++;
		} else if (*p == ')' && depth > 0) {
			depth--;
		} else if (*p == '\\' && depth > 0) {
			if (p[1] != '\0')
				p++;
		} else if (depth == 0 && *p != ' ' && *p != '\t' &&
		           *p != '\r' && *p != '\n') {
			break;
		}
	}
	return p;
}

/* Up to max digits at *p; returns how many were read. */
static unsigned
digits(const char **p, unsigned max, unsigned *v_r)
{
	unsigned n = 0, v = 0;

	while (n < max && is_digit((*p)[n])) {
		v = v * 10 + (unsigned)((*p)[n] - '0');
		n++;
	}
	*p += n;
	*v_r = v;
	return n;
}

/* hh:mm[:ss] zone, with the obsolete CFWS around the colons, a missing
 * zone tolerated; what follows the zone is ignored. */
static bool
parse_time_zone(const char *p)
{
	unsigned h, mi, sec = 0, z;

	if (digits(&p, 2, &h) == 0)
		return false;
	p = skip_cfws(p);
	if (*p != ':')
		return false;
	p = skip_cfws(p + 1);
	if (digits(&p, 2, &mi) != 2)
		return false;
	p = skip_cfws(p);
	if (*p == ':') {
		p = skip_cfws(p + 1);
		if (digits(&p, 2, &sec) != 2)
			return false;
		p = skip_cfws(p);
	}
	if (h > 23 || mi > 59 || sec > 60)
		return false;
	if (*p == '+' || *p == '-') {
		p++;
		return digits(&p, 4, &z) == 4 && z % 100 < 60 && !is_digit(*p);
	}
	/* obs-zone: UT, GMT, EST ... military letters; all mean "as
	 * written" here, which is all SENT* needs. */
	return *p == '\0' || is_alpha(*p);
}

/* An RFC 5322 date-time (with the obsolete syntax of section 4.3) to the
 * day it names as written, which is what SENT* compare. */
bool
mc_imap_search_parse_sent_date(const char *s, int64_t *day_r)
{
	const char *p = skip_cfws(s);
	unsigned d, m, y, n;

	if (is_alpha(*p)) { /* day-of-week */
		while (is_alpha(*p))
			p++;
		p = skip_cfws(p);
		if (*p == ',')
			p = skip_cfws(p + 1);
	}
	if (digits(&p, 2, &d) == 0)
		return false;
	p = skip_cfws(p);
	if ((m = month_index(p)) == 0)
		return false;
	while (is_alpha(*p))
		p++;
	p = skip_cfws(p);
	n = digits(&p, 4, &y);
	if (n < 2 || is_digit(*p))
		return false;
	if (n == 2)
		y += y < 50 ? 2000 : 1900;
	else if (n == 3)
		y += 1900;
	if (d < 1 || d > month_days(y, m))
		return false;
	p = skip_cfws(p);
	if (*p != '\0' && !parse_time_zone(p))
		return false;
	*day_r = days_from_civil(y, m, d);
	return true;
}

/* ---- decoding ----------------------------------------------------------- */

/* Lenient base64 as mc_mime_decode_base64 (other bytes skipped, '=' ends
 * a group), into a buffer: encoded-words are decoded in place, without an
 * allocation each. Writes at most len * 3 / 4. */
static size_t
b64_decode(const unsigned char *in, size_t len, unsigned char *out)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int v = mc_mime_base64_value(in[i]);

		if (v < 0) {
			if (in[i] == '=')
				acc = bits = 0;
			continue;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return o;
}

/* The Q encoding of RFC 2047 4.2: =XX octets, '_' for a blank; a broken
 * escape stays as it is. (Not mc_mime_decode_qp: an encoded-word has no
 * line ends, and blanks at its end are data, not padding.) Writes at
 * most len. */
static size_t
q_decode(const unsigned char *in, size_t len, unsigned char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (in[i] == '=' && i + 2 < len && hex_value(in[i + 1]) >= 0 &&
		    hex_value(in[i + 2]) >= 0) {
			out[o++] = (unsigned char)(hex_value(in[i + 1]) * 16 +
			                           hex_value(in[i + 2]));
			i += 2;
		} else {
			out[o++] = in[i] == '_' ? ' ' : in[i];
		}
	}
	return o;
}

/* Charset names are short; the cap keeps a header of "=?=?=?..." linear. */
#define EW_MAX_CHARSET 64

/* An RFC 2047 encoded-word at s ("=?charset?B|Q?text?="): decoded into
 * out (never longer than the word), its length in *used_r. When s does
 * not start one: false, and *used_r is how far no encoded-word can start
 * either (past a text that ran into a blank or the end without its "?=",
 * which every later start inside it would run into too). */
static bool
ew_decode(const unsigned char *s, size_t len, unsigned char *out,
          size_t *out_len_r, size_t *used_r)
{
	size_t i = 2, text;
	unsigned char enc;

	*used_r = 1;
	while (i < len && i < 2 + EW_MAX_CHARSET && s[i] > ' ' && s[i] < 127 &&
	       s[i] != '?')
		i++;
	if (i == 2 || i + 3 >= len || s[i] != '?' || s[i + 2] != '?')
		return false;
	enc = lower(s[i + 1]);
	if (enc != 'b' && enc != 'q')
		return false;
	text = i + 3;
	for (i = text; i + 1 < len && !(s[i] == '?' && s[i + 1] == '='); i++) {
		if (s[i] <= ' ' || s[i] >= 127) {
			*used_r = i;
			return false;
		}
	}
	if (i + 1 >= len) {
		*used_r = len;
		return false;
	}
	*out_len_r = enc == 'b' ? b64_decode(s + text, i - text, out)
	                        : q_decode(s + text, i - text, out);
	*used_r = i + 2;
	return true;
}

/* A header value with its encoded-words decoded (charsets taken as they
 * are: UTF-8 expected); blanks between two encoded-words go. */
size_t
mc_imap_search_rfc2047_decode(const unsigned char *in, size_t len,
                              unsigned char *out)
{
	size_t o = 0, i = 0, hopeless = 0;
	size_t mark = SIZE_MAX; /* o after the last encoded-word while only
	                           blanks followed it */

	while (i < len) {
		size_t n, used;

		if (in[i] == '=' && i + 1 < len && in[i + 1] == '?' &&
		    i >= hopeless) {
			size_t at = mark != SIZE_MAX ? mark : o;

			if (ew_decode(in + i, len - i, out + at, &n, &used)) {
				o = mark = at + n;
				i += used;
				continue;
			}
			hopeless = i + used;
		}
		if (in[i] != ' ' && in[i] != '\t' && in[i] != '\r' &&
		    in[i] != '\n')
			mark = SIZE_MAX;
		out[o++] = in[i++];
	}
	return o;
}

/* ---- needles ------------------------------------------------------------ */

void
mc_imap_search_needle_init(struct mc_imap_search_needle *nd,
                           struct mc_pool *pool, const char *s, size_t len)
{
	unsigned char *p;
	uint32_t *f;

	nd->len = len;
	nd->s = p = mc_pool_alloc(pool, len + 1);
	if (len == 0)
		return;
	nd->fail = f = mc_pool_alloc(pool, len * sizeof(*f));
	for (size_t i = 0; i < len; i++)
		p[i] = lower((unsigned char)s[i]);
	for (size_t i = 1, k = 0; i < len; i++) {
		while (k > 0 && p[i] != p[k])
			k = f[k - 1];
		if (p[i] == p[k])
			k++;
		f[i] = (uint32_t)k;
	}
}

bool
mc_imap_search_needle_find(const struct mc_imap_search_needle *nd,
                           const void *hay, size_t len)
{
	const unsigned char *h = hay;
	size_t j = 0;

	if (nd->len == 0)
		return true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = lower(h[i]);

		while (j > 0 && nd->s[j] != c)
			j = nd->fail[j - 1];
		if (nd->s[j] == c && ++j == nd->len)
			return true;
	}
	return false;
}
