/* Content-transfer decoding (RFC 2045 6.7, 6.8) for BINARY fetches,
 * body search and the lossless JSON strings; see mime_decode.h. */
#include "mime_decode.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

int
mc_mime_base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Lenient, as mail readers are: characters outside the alphabet (line
 * ends, blanks, junk) are skipped, and '=' ends a group, so base64 bodies
 * glued together from padded pieces still decode. Appends to out. */
void
mc_mime_decode_base64(struct mc_strbuf *out, const char *s, size_t n)
{
	unsigned long acc = 0;
	unsigned bits = 0;
	char *o;

	mc_strbuf_reserve(out, n / 4 * 3 + 3);
	o = out->data + out->len;
	for (size_t i = 0; i < n; i++) {
		int v = mc_mime_base64_value((unsigned char)s[i]);

		if (s[i] == '=') {
			bits = 0;
			continue;
		}
		if (v < 0)
			continue;
		acc = (acc << 6 | (unsigned long)v) & 0xffffffu;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (char)((acc >> bits) & 0xff);
		}
	}
	out->len = (size_t)(o - out->data);
	out->data[out->len] = '\0';
}

/* RFC 2045 6.7: =XX octets, '=' at a line end is a soft line break,
 * blanks at a line end are padding, not data. A '=' not followed by two
 * hex digits is kept as it is. Line ends are kept as they are. The output
 * is never longer than the input. Appends to out. */
void
mc_mime_decode_qp(struct mc_strbuf *out, const char *s, size_t n)
{
	const char *end = s + n;
	char *o;

	mc_strbuf_reserve(out, n);
	o = out->data + out->len;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *ce = nl != NULL ? nl : end;
		bool crlf = nl != NULL && nl > s && nl[-1] == '\r',
		     soft = false;

		if (crlf)
			ce--;
		while (ce > s && (ce[-1] == ' ' || ce[-1] == '\t'))
			ce--;
		if (ce > s && ce[-1] == '=') {
			ce--;
			soft = true;
		}
		for (const char *p = s; p < ce; p++) {
			int hi, lo;

			if (*p == '=' && ce - p >= 3 &&
			    (hi = hex_value((unsigned char)p[1])) >= 0 &&
			    (lo = hex_value((unsigned char)p[2])) >= 0) {
				*o++ = (char)(hi << 4 | lo);
				p += 2;
			} else {
				*o++ = *p;
			}
		}
		if (nl != NULL && !soft) {
			if (crlf)
				*o++ = '\r';
			*o++ = '\n';
		}
		s = nl != NULL ? nl + 1 : end;
	}
	out->len = (size_t)(o - out->data);
	out->data[out->len] = '\0';
}

