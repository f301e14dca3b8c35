/* What an IMAP server sends about a stored message (see imap_format.h):
 * strings in IMAP syntax, ENVELOPE and BODY/BODYSTRUCTURE rebuilt from
 * the JSON kept beside each message, and FETCH BODY[section]<partial> /
 * BINARY[section] items: their grammar (RFC 3501 6.4.5 and 9, RFC 3516)
 * and the octets they name, cut out of the message with the part offsets
 * of lib/mime. Everything read here (stored JSON, message bytes, the
 * client's fetch item) is treated as hostile: lengths are clamped to what
 * is there, recursion is bounded, and nothing is read past an end. */
#include "imap_format.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "imap_parser.h"
#include "imf.h"
#include "mem.h"

/* RFC 3501 leaves quoted-or-literal to the server: longer strings go as
 * literals so that no response line grows without bound. */
#define QUOTED_MAX 1024u
/* Parts nested in the stored JSON we follow. mc_mime_parse never goes
 * past MC_MIME_MAX_DEPTH_HARD (100); stored JSON is not trusted to. */
#define BODY_MAX_DEPTH 100u

/* ---- strings ---------------------------------------------------------- */

/* Octets of the valid UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF) starting with a non-ASCII byte at u, or
 * 0 when there is none. */
static size_t
utf8_len(const unsigned char *u, size_t n)
{
	size_t need;
	unsigned long cp, min;

	if (u[0] >= 0xc2 && u[0] <= 0xdf) {
		need = 1, cp = u[0] & 0x1fu, min = 0x80;
	} else if ((u[0] & 0xf0) == 0xe0) {
		need = 2, cp = u[0] & 0x0fu, min = 0x800;
	} else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
		need = 3, cp = u[0] & 0x07u, min = 0x10000;
	} else {
		return 0;
	}
	if (n <= need)
		return 0;
	for (size_t k = 1; k <= need; k++) {
		if ((u[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (u[k] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

/* Can s go inside quotes: TEXT-CHAR (RFC 3501: CHAR but CR and LF), or
 * also UTF-8 sequences (RFC 6855) when utf8 is set. */
static bool
quotable(const char *s, size_t len, bool utf8)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;

	if (len > QUOTED_MAX)
		return false;
	while (i < len) {
		if (u[i] == '\0' || u[i] == '\r' || u[i] == '\n')
			return false;
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if (!utf8 || (n = utf8_len(u + i, len - i)) == 0)
			return false;
		i += n;
	}
	return true;
}

static void
add_quoted(struct mc_strbuf *b, const char *s, size_t len)
{
	size_t run = 0;

	mc_strbuf_addc(b, '"');
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '"' && s[i] != '\\')
			continue;
		mc_strbuf_add(b, s + run, i - run);
		mc_strbuf_addc(b, '\\');
		run = i;
	}
	mc_strbuf_add(b, s + run, len - run);
	mc_strbuf_addc(b, '"');
}

static void
add_string(struct mc_strbuf *b, const char *s, size_t len, bool utf8)
{
	if (s == NULL) {
		mc_strbuf_adds(b, "NIL");
	} else if (quotable(s, len, utf8)) {
		add_quoted(b, s, len);
	} else {
		mc_strbuf_addf(b, "{%zu}\r\n", len);
		mc_strbuf_add(b, s, len);
	}
}

void
mc_imap_nstring(struct mc_strbuf *b, const char *s, size_t len)
{
	add_string(b, s, len, false);
}

void
mc_imap_nstring_utf8(struct mc_strbuf *b, const char *s, size_t len)
{
	add_string(b, s, len, true);
}

/* ASTRING-CHAR: ATOM-CHAR or ']' (RFC 3501 9). */
static bool
astring_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\", c) == NULL;
}

void
mc_imap_astring(struct mc_strbuf *b, const char *s)
{
	size_t len = s != NULL ? strlen(s) : 0;
	bool atom = len > 0 && strcasecmp(s, "NIL") != 0;

	for (size_t i = 0; atom && i < len; i++)
		atom = astring_char((unsigned char)s[i]);
	if (atom)
		mc_strbuf_add(b, s, len);
	else
		add_string(b, s, len, false);
}

static void
add_cstr(struct mc_strbuf *b, const char *s)
{
	add_string(b, s, s != NULL ? strlen(s) : 0, false);
}

/* ---- ENVELOPE ----------------------------------------------------------- */

/* "(" 1*address ")" / nil: addresses follow each other without blanks. */
static void
add_addr_list(struct mc_strbuf *b, const struct mc_imf_addr_list *l)
{
	if (l->count == 0 || l->addrs == NULL) {
		mc_strbuf_adds(b, "NIL");
		return;
	}
	mc_strbuf_addc(b, '(');
	for (size_t i = 0; i < l->count; i++) {
		const struct mc_imf_address *a = &l->addrs[i];

		mc_strbuf_addc(b, '(');
		add_cstr(b, a->name);
		mc_strbuf_addc(b, ' ');
		add_cstr(b, a->adl);
		mc_strbuf_addc(b, ' ');
		add_cstr(b, a->mailbox);
		mc_strbuf_addc(b, ' ');
		add_cstr(b, a->host);
		mc_strbuf_addc(b, ')');
	}
	mc_strbuf_addc(b, ')');
}

static void
add_envelope(struct mc_strbuf *b, const struct mc_imf_envelope *e)
{
	const struct mc_imf_addr_list *lists[] = {
	        &e->from, &e->sender, &e->reply_to, &e->to, &e->cc, &e->bcc,
	};

	mc_strbuf_addc(b, '(');
	add_cstr(b, e->date);
	mc_strbuf_addc(b, ' ');
	add_cstr(b, e->subject);
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		mc_strbuf_addc(b, ' ');
		add_addr_list(b, lists[i]);
	}
	mc_strbuf_addc(b, ' ');
	add_cstr(b, e->in_reply_to);
	mc_strbuf_addc(b, ' ');
	add_cstr(b, e->message_id);
	mc_strbuf_addc(b, ')');
}

int
mc_imap_format_envelope(struct mc_strbuf *b, const char *json,
                        const char **error_r)
{
	struct mc_imf_envelope env;
	struct mc_pool *pool;
	json_error_t jerr;
	json_t *j;
	int ret = 0;

	memset(&env, 0, sizeof(env));
	if (json == NULL) {
		add_envelope(b, &env);
		return 0;
	}
	pool = mc_pool_new();
	/* mc_imf_envelope_from_json decodes {"base64": ...} strings, turns
	 * NULs into 0x80 and fills sender/reply-to in from "from" when they
	 * are empty (RFC 3501 7.4.2), as imf.c already does when storing. */
	if ((j = json_loads(json, 0, &jerr)) == NULL) {
		*error_r = "envelope: not JSON";
		ret = -1;
	} else if (mc_imf_envelope_from_json(&env, pool, j, error_r) < 0) {
		ret = -1; /* env is all NIL again */
	}
	add_envelope(b, &env);
	json_decref(j);
	mc_pool_free(&pool);
	return ret;
}

/* ---- base64 / quoted-printable ------------------------------------------ */

static int
b64_value(unsigned char c)
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
static void
decode_base64(struct mc_strbuf *out, const char *s, size_t n)
{
	unsigned long acc = 0;
	unsigned bits = 0;
	char *o;

	mc_strbuf_reserve(out, n / 4 * 3 + 3);
	o = out->data + out->len;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)s[i]);

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
static void
decode_qp(struct mc_strbuf *out, const char *s, size_t n)
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

/* ---- BODY / BODYSTRUCTURE ------------------------------------------------ */

struct body_ctx {
	struct mc_strbuf *b;
	struct mc_pool *pool; /* decoded {"base64": ...} strings */
	bool ext;             /* BODYSTRUCTURE */
	const char *error;
};

static int
body_fail(struct body_ctx *c, const char *error)
{
	if (c->error == NULL)
		c->error = error;
	return -1;
}

/* A string in the lossless convention of imf.h: *s_r NULL for null or
 * absent; octets of a {"base64": ...} value, NULs turned into 0x80 as imf
 * does (IMAP strings cannot carry NUL). */
static int
json_str(struct body_ctx *c, const json_t *j, const char **s_r, size_t *len_r)
{
	const json_t *v;
	struct mc_strbuf d = {0};
	char *s;

	*s_r = NULL;
	*len_r = 0;
	if (j == NULL || json_is_null(j))
		return 0;
	if (json_is_string(j)) {
		*s_r = json_string_value(j);
		*len_r = json_string_length(j);
		return 0;
	}
	v = json_is_object(j) ? json_object_get(j, "base64") : NULL;
	if (v == NULL || !json_is_string(v))
		return body_fail(c,
		                 "body: a string is neither text nor base64");
	decode_base64(&d, json_string_value(v), json_string_length(v));
	s = mc_pool_strndup(c->pool, d.data != NULL ? d.data : "", d.len);
	for (size_t i = 0; i < d.len; i++)
		if (s[i] == '\0')
			s[i] = (char)0x80;
	*s_r = s;
	*len_r = d.len;
	mc_strbuf_fini(&d);
	return 0;
}

/* nstring; with required, a missing value is an error. */
static int
put_str(struct body_ctx *c, const json_t *j, bool required)
{
	const char *s;
	size_t n;

	if (json_str(c, j, &s, &n) < 0)
		return -1;
	if (s == NULL && required)
		return body_fail(c, "body: a required string is missing");
	add_string(c->b, s, n, false);
	return 0;
}

static bool
json_is(struct body_ctx *c, const json_t *j, const char *word)
{
	const char *s;
	size_t n;

	return json_str(c, j, &s, &n) == 0 && s != NULL && n == strlen(word) &&
	       strncasecmp(s, word, n) == 0;
}

/* A count member: absent is 0 (lines of a part that has none). */
static int
put_number(struct body_ctx *c, const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	json_int_t n = 0;

	if (v != NULL && !json_is_integer(v))
		return body_fail(c, "body: a size is not a number");
	if (v != NULL && (n = json_integer_value(v)) < 0)
		return body_fail(c, "body: negative size");
	mc_strbuf_addf(c->b, "%llu", (unsigned long long)n);
	return 0;
}

/* body-fld-param: ("name" "value" ...) or NIL when there are none. RFC
 * 2231 parameters go out decoded under their plain name: [name, value,
 * charset, language] gives "name" "value". */
static int
put_params(struct body_ctx *c, const json_t *l)
{
	if (l == NULL || json_is_null(l) ||
	    (json_is_array(l) && json_array_size(l) == 0)) {
		mc_strbuf_adds(c->b, "NIL");
		return 0;
	}
	if (!json_is_array(l))
		return body_fail(c, "body: parameters are not a list");
	mc_strbuf_addc(c->b, '(');
	for (size_t i = 0; i < json_array_size(l); i++) {
		const json_t *e = json_array_get(l, i);

		if (!json_is_array(e) || json_array_size(e) < 2)
			return body_fail(c, "body: malformed parameter");
		if (i > 0)
			mc_strbuf_addc(c->b, ' ');
		if (put_str(c, json_array_get(e, 0), true) < 0)
			return -1;
		mc_strbuf_addc(c->b, ' ');
		if (put_str(c, json_array_get(e, 1), true) < 0)
			return -1;
	}
	mc_strbuf_addc(c->b, ')');
	return 0;
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc: the extension data
 * after the md5 (leaves) or the parameters (multiparts). */
static int
put_ext_tail(struct body_ctx *c, const json_t *p)
{
	const json_t *d = json_object_get(p, "disposition");
	const json_t *l = json_object_get(p, "language");

	mc_strbuf_addc(c->b, ' ');
	if (d == NULL || json_is_null(d)) {
		mc_strbuf_adds(c->b, "NIL");
	} else if (json_is_object(d)) {
		mc_strbuf_addc(c->b, '(');
		if (put_str(c, json_object_get(d, "type"), true) < 0)
			return -1;
		mc_strbuf_addc(c->b, ' ');
		if (put_params(c, json_object_get(d, "params")) < 0)
			return -1;
		mc_strbuf_addc(c->b, ')');
	} else {
		return body_fail(c, "body: malformed disposition");
	}
	mc_strbuf_addc(c->b, ' ');
	if (l == NULL || json_is_null(l) ||
	    (json_is_array(l) && json_array_size(l) == 0)) {
		mc_strbuf_adds(c->b, "NIL");
	} else if (json_is_array(l)) {
		mc_strbuf_addc(c->b, '(');
		for (size_t i = 0; i < json_array_size(l); i++) {
			if (i > 0)
				mc_strbuf_addc(c->b, ' ');
			if (put_str(c, json_array_get(l, i), true) < 0)
				return -1;
		}
		mc_strbuf_addc(c->b, ')');
	} else if (put_str(c, l, true) < 0) {
		return -1;
	}
	mc_strbuf_addc(c->b, ' ');
	return put_str(c, json_object_get(p, "location"), false);
}

static int put_part(struct body_ctx *c, const json_t *p, unsigned depth);

/* body-type-mpart: 1*body SP media-subtype [SP body-ext-mpart]; the
 * bodies follow each other without blanks. */
static int
put_multipart(struct body_ctx *c, const json_t *p, unsigned depth)
{
	const json_t *parts = json_object_get(p, "parts");

	if (!json_is_array(parts) || json_array_size(parts) == 0)
		return body_fail(c, "body: multipart without parts");
	mc_strbuf_addc(c->b, '(');
	for (size_t i = 0; i < json_array_size(parts); i++)
		if (put_part(c, json_array_get(parts, i), depth + 1) < 0)
			return -1;
	mc_strbuf_addc(c->b, ' ');
	if (put_str(c, json_object_get(p, "subtype"), true) < 0)
		return -1;
	if (c->ext) {
		mc_strbuf_addc(c->b, ' ');
		if (put_params(c, json_object_get(p, "params")) < 0 ||
		    put_ext_tail(c, p) < 0)
			return -1;
	}
	mc_strbuf_addc(c->b, ')');
	return 0;
}

/* message/rfc822: SP envelope SP body SP body-fld-lines. */
static int
put_message_tail(struct body_ctx *c, const json_t *p, unsigned depth)
{
	const json_t *env = json_object_get(p, "envelope");
	const json_t *msg = json_object_get(p, "message");
	struct mc_imf_envelope e;
	const char *err;

	if (env == NULL || msg == NULL)
		return body_fail(c, "body: message/rfc822 without its message");
	if (mc_imf_envelope_from_json(&e, c->pool, env, &err) < 0)
		return body_fail(c, "body: malformed envelope");
	mc_strbuf_addc(c->b, ' ');
	add_envelope(c->b, &e);
	mc_strbuf_addc(c->b, ' ');
	if (put_part(c, msg, depth + 1) < 0)
		return -1;
	mc_strbuf_addc(c->b, ' ');
	return put_number(c, p, "lines");
}

/* body-type-1part: basic, text (+ lines) or message/rfc822 (+ envelope,
 * body, lines), then for BODYSTRUCTURE md5, disposition, language,
 * location. */
static int
put_leaf(struct body_ctx *c, const json_t *p, unsigned depth)
{
	const json_t *type = json_object_get(p, "type");
	const json_t *sub = json_object_get(p, "subtype");
	const json_t *enc = json_object_get(p, "encoding");

	mc_strbuf_addc(c->b, '(');
	if (put_str(c, type, true) < 0)
		return -1;
	mc_strbuf_addc(c->b, ' ');
	if (put_str(c, sub, true) < 0)
		return -1;
	mc_strbuf_addc(c->b, ' ');
	if (put_params(c, json_object_get(p, "params")) < 0)
		return -1;
	mc_strbuf_addc(c->b, ' ');
	if (put_str(c, json_object_get(p, "id"), false) < 0)
		return -1;
	mc_strbuf_addc(c->b, ' ');
	if (put_str(c, json_object_get(p, "description"), false) < 0)
		return -1;
	mc_strbuf_addc(c->b, ' ');
	if (enc == NULL || json_is_null(enc))
		mc_strbuf_adds(c->b, "\"7BIT\""); /* RFC 2045 6.1 default */
	else if (put_str(c, enc, true) < 0)
		return -1;
	mc_strbuf_addc(c->b, ' ');
	if (put_number(c, p, "body_size") < 0)
		return -1;
	if (json_is(c, type, "text")) {
		mc_strbuf_addc(c->b, ' ');
		if (put_number(c, p, "lines") < 0)
			return -1;
	} else if (json_is(c, type, "message") && json_is(c, sub, "rfc822")) {
		if (put_message_tail(c, p, depth) < 0)
			return -1;
	}
	if (c->ext) {
		mc_strbuf_addc(c->b, ' ');
		if (put_str(c, json_object_get(p, "md5"), false) < 0 ||
		    put_ext_tail(c, p) < 0)
			return -1;
	}
	mc_strbuf_addc(c->b, ')');
	return 0;
}

static int
put_part(struct body_ctx *c, const json_t *p, unsigned depth)
{
	if (depth > BODY_MAX_DEPTH)
		return body_fail(c, "body: nested too deep");
	if (!json_is_object(p))
		return body_fail(c, "body: a part is not an object");
	if (json_is(c, json_object_get(p, "type"), "multipart"))
		return put_multipart(c, p, depth);
	return put_leaf(c, p, depth);
}

int
mc_imap_format_body(struct mc_strbuf *b, const char *json, bool extended,
                    const char **error_r)
{
	struct body_ctx c = {.b = b, .ext = extended};
	size_t start = b->len;
	const json_t *root;
	json_error_t jerr;
	json_t *j;
	int ret;

	if (json == NULL || (j = json_loads(json, 0, &jerr)) == NULL) {
		*error_r = "body: not JSON";
		return -1;
	}
	/* {"truncated": N, "root": P}; a bare part is taken too. */
	root = json_object_get(j, "root");
	if (root == NULL && json_is_object(j))
		root = j;
	c.pool = mc_pool_new();
	ret = put_part(&c, root, 0);
	if (ret < 0) {
		*error_r = c.error != NULL ? c.error : "body: malformed";
		b->len = start;
		if (b->data != NULL)
			b->data[start] = '\0';
	}
	mc_pool_free(&c.pool);
	json_decref(j);
	return ret;
}

/* ---- BODY[section]<partial>: grammar ----------------------------------- */

/* Case-insensitive: does [*pp, end) start with word? Then skip it. */
static bool
eat(const char **pp, const char *end, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(end - *pp) < n || strncasecmp(*pp, word, n) != 0)
		return false;
	*pp += n;
	return true;
}

static bool
is_word(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

struct section_parse {
	const char *p, *end;
	struct mc_pool *pool;
	struct mc_imap_section *sec;
	struct mc_strbuf name; /* the response's item name, built as we go */
	size_t fields_cap;
};

/* section-part: nz-number *("." nz-number), each at most 2^32-1. Leaves
 * p on the '.' before a section text, or on what follows the numbers. */
static int
parse_part(struct section_parse *sp, const char **error_r)
{
	const char *start = sp->p, *last = sp->p;

	while (sp->p < sp->end && *sp->p >= '0' && *sp->p <= '9') {
		unsigned long long v = 0;

		if (*sp->p == '0') {
			*error_r = "bad section part number";
			return -1;
		}
		while (sp->p < sp->end && *sp->p >= '0' && *sp->p <= '9') {
			v = v * 10 + (unsigned)(*sp->p++ - '0');
			if (v > 0xffffffffull) {
				*error_r = "section part number too large";
				return -1;
			}
		}
		last = sp->p;
		if (sp->p + 1 < sp->end && sp->p[0] == '.' && sp->p[1] >= '0' &&
		    sp->p[1] <= '9')
			sp->p++;
		else
			break;
	}
	sp->sec->part =
	        mc_pool_strndup(sp->pool, start, (size_t)(last - start));
	mc_strbuf_add(&sp->name, start, (size_t)(last - start));
	return 0;
}

/* An atom of a field name: ATOM-CHAR but ']' (the section's end). */
static bool
field_atom_char(char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){\"\\]%*", c) == NULL;
}

/* One header-fld-name (astring) inside the list: an atom up to a blank,
 * ')' or ']', or a quoted string. Field names are printable ASCII. */
static int
parse_field_name(struct section_parse *sp, const char **error_r)
{
	struct mc_imap_section *sec = sp->sec;
	struct mc_strbuf n = {0};
	char *upper;

	if (*sp->p == '"') {
		for (sp->p++; sp->p < sp->end && *sp->p != '"'; sp->p++) {
			if (*sp->p == '\\' && sp->p + 1 < sp->end &&
			    (sp->p[1] == '"' || sp->p[1] == '\\'))
				sp->p++;
			else if (*sp->p == '\\' || *sp->p < 0x20 ||
			         *sp->p > 0x7e)
				break;
			mc_strbuf_addc(&n, *sp->p);
		}
		if (sp->p >= sp->end || *sp->p != '"')
			goto fail;
		sp->p++;
	} else {
		while (sp->p < sp->end && field_atom_char(*sp->p))
			mc_strbuf_addc(&n, *sp->p++);
		if (n.len == 0)
			goto fail;
	}
	if (sec->field_count == sp->fields_cap) {
		const char **f;

		sp->fields_cap = sp->fields_cap ? sp->fields_cap * 2 : 8;
		f = mc_pool_alloc(sp->pool, sp->fields_cap * sizeof(*f));
		if (sec->field_count > 0)
			memcpy(f, sec->fields, sec->field_count * sizeof(*f));
		sec->fields = f;
	}
	sec->fields[sec->field_count++] =
	        mc_pool_strndup(sp->pool, n.data != NULL ? n.data : "", n.len);
	upper = mc_pool_strndup(sp->pool, n.data != NULL ? n.data : "", n.len);
	for (char *u = upper; *u != '\0'; u++)
		if (*u >= 'a' && *u <= 'z')
			*u = (char)(*u - 'a' + 'A');
	if (sec->field_count > 1)
		mc_strbuf_addc(&sp->name, ' ');
	mc_imap_astring(&sp->name, upper);
	mc_strbuf_fini(&n);
	return 0;
fail:
	mc_strbuf_fini(&n);
	*error_r = "bad header field name";
	return -1;
}

/* SP "(" header-fld-name *(SP header-fld-name) ")" */
static int
parse_field_list(struct section_parse *sp, const char **error_r)
{
	if (sp->p >= sp->end || *sp->p != ' ') {
		*error_r = "HEADER.FIELDS without field names";
		return -1;
	}
	while (sp->p < sp->end && *sp->p == ' ')
		sp->p++;
	if (sp->p >= sp->end || *sp->p != '(') {
		*error_r = "HEADER.FIELDS without a list";
		return -1;
	}
	sp->p++;
	mc_strbuf_adds(&sp->name, " (");
	for (;;) {
		while (sp->p < sp->end && *sp->p == ' ')
			sp->p++;
		if (sp->p >= sp->end) {
			*error_r = "unterminated HEADER.FIELDS list";
			return -1;
		}
		if (*sp->p == ')')
			break;
		if (parse_field_name(sp, error_r) < 0)
			return -1;
	}
	sp->p++;
	if (sp->sec->field_count == 0) {
		*error_r = "HEADER.FIELDS without field names";
		return -1;
	}
	mc_strbuf_addc(&sp->name, ')');
	return 0;
}

/* section-text after a part number and '.', or section-msgtext alone. */
static int
parse_text(struct section_parse *sp, bool has_part, const char **error_r)
{
	static const struct {
		const char *word;
		enum mc_imap_section_kind kind;
	} texts[] = {
	        /* longest first: HEADER is a prefix of the others */
	        {"HEADER.FIELDS.NOT", MC_IMAP_SECTION_HEADER_FIELDS_NOT},
	        {"HEADER.FIELDS", MC_IMAP_SECTION_HEADER_FIELDS},
	        {"HEADER", MC_IMAP_SECTION_HEADER},
	        {"TEXT", MC_IMAP_SECTION_TEXT},
	        {"MIME", MC_IMAP_SECTION_MIME},
	};
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (eat(&sp->p, sp->end, texts[i].word))
			break;
	if (i == sizeof(texts) / sizeof(texts[0])) {
		*error_r = "unknown section text";
		return -1;
	}
	sp->sec->kind = texts[i].kind;
	if (sp->sec->kind == MC_IMAP_SECTION_MIME && !has_part) {
		*error_r = "MIME without a part number";
		return -1;
	}
	if (has_part)
		mc_strbuf_addc(&sp->name, '.');
	mc_strbuf_adds(&sp->name, texts[i].word);
	if (sp->sec->kind == MC_IMAP_SECTION_HEADER_FIELDS ||
	    sp->sec->kind == MC_IMAP_SECTION_HEADER_FIELDS_NOT)
		return parse_field_list(sp, error_r);
	return 0;
}

/* "<" number "." nz-number ">" (number64 in RFC 9051); the response
 * names only the origin octet. */
static int
parse_partial(struct section_parse *sp, const char **error_r)
{
	const char *a = ++sp->p, *dot, *gt;
	struct mc_imap_section *sec = sp->sec;

	dot = memchr(a, '.', (size_t)(sp->end - a));
	gt = dot != NULL ? memchr(dot, '>', (size_t)(sp->end - dot)) : NULL;
	if (gt == NULL || gt + 1 != sp->end ||
	    !mc_imap_parse_u64(a, (size_t)(dot - a), &sec->offset) ||
	    !mc_imap_parse_u64(dot + 1, (size_t)(gt - dot - 1), &sec->length) ||
	    sec->length == 0) {
		*error_r = "bad partial <offset.length>";
		return -1;
	}
	sec->partial = true;
	mc_strbuf_addf(&sp->name, "<%llu>", (unsigned long long)sec->offset);
	sp->p = sp->end;
	return 0;
}

/* "[" section-spec "]" [partial]; p is past the '['. */
static int
parse_section(struct section_parse *sp, const char **error_r)
{
	struct mc_imap_section *sec = sp->sec;
	bool has_part;

	if (parse_part(sp, error_r) < 0)
		return -1;
	has_part = sec->part[0] != '\0';
	if (sp->p < sp->end && *sp->p != ']') {
		if (has_part && (*sp->p != '.' || sp->p + 1 == sp->end)) {
			*error_r = "bad section part number";
			return -1;
		}
		if (sec->binary) {
			*error_r = "BINARY takes a part number only";
			return -1;
		}
		if (has_part)
			sp->p++;
		if (parse_text(sp, has_part, error_r) < 0)
			return -1;
	}
	if (sp->p >= sp->end || *sp->p != ']') {
		*error_r = "bad section: ']' expected";
		return -1;
	}
	sp->p++;
	mc_strbuf_addc(&sp->name, ']');
	if (sp->p < sp->end && *sp->p == '<' && !sec->binary_size)
		return parse_partial(sp, error_r);
	if (sp->p != sp->end) {
		*error_r = "junk after the section";
		return -1;
	}
	return 0;
}

int
mc_imap_section_parse(const char *item, size_t len, struct mc_pool *pool,
                      struct mc_imap_section *sec_r, const char **error_r)
{
	struct section_parse sp = {
	        .p = item, .end = item + len, .pool = pool, .sec = sec_r};
	const char *prefix;
	int ret = -1;

	memset(sec_r, 0, sizeof(*sec_r));
	sec_r->part = "";
	sec_r->kind = MC_IMAP_SECTION_ALL;
	if (is_word(item, len, "RFC822")) {
		sec_r->name = "RFC822";
		return 1;
	}
	if (is_word(item, len, "RFC822.HEADER")) {
		sec_r->name = "RFC822.HEADER";
		sec_r->kind = MC_IMAP_SECTION_HEADER;
		sec_r->peek = true;
		return 1;
	}
	if (is_word(item, len, "RFC822.TEXT")) {
		sec_r->name = "RFC822.TEXT";
		sec_r->kind = MC_IMAP_SECTION_TEXT;
		return 1;
	}
	if (eat(&sp.p, sp.end, "BINARY.SIZE[")) {
		prefix = "BINARY.SIZE";
		sec_r->binary = sec_r->binary_size = sec_r->peek = true;
	} else if (eat(&sp.p, sp.end, "BINARY.PEEK[")) {
		prefix = "BINARY";
		sec_r->binary = sec_r->peek = true;
	} else if (eat(&sp.p, sp.end, "BINARY[")) {
		prefix = "BINARY";
		sec_r->binary = true;
	} else if (eat(&sp.p, sp.end, "BODY.PEEK[")) {
		prefix = "BODY";
		sec_r->peek = true;
	} else if (eat(&sp.p, sp.end, "BODY[")) {
		prefix = "BODY";
	} else if (is_word(item, len, "BODY.PEEK") ||
	           is_word(item, len, "BINARY") ||
	           is_word(item, len, "BINARY.PEEK") ||
	           is_word(item, len, "BINARY.SIZE")) {
		*error_r = "fetch item without a section";
		return -1;
	} else {
		return 0; /* FLAGS, BODY, BODYSTRUCTURE, RFC822.SIZE ... */
	}
	mc_strbuf_adds(&sp.name, prefix);
	mc_strbuf_addc(&sp.name, '[');
	if (parse_section(&sp, error_r) == 0) {
		sec_r->name = mc_pool_strndup(pool, sp.name.data, sp.name.len);
		ret = 1;
	}
	mc_strbuf_fini(&sp.name);
	if (ret < 0) {
		memset(sec_r, 0, sizeof(*sec_r));
		sec_r->part = "";
	}
	return ret;
}

/* ---- BODY[section]<partial>: content ----------------------------------- */

struct span {
	const char *p;
	size_t n;
};

/* [off, off + n) of the message, clamped to it: a tree from other bytes
 * must not make us read past the end. */
static struct span
cut(const char *msg, size_t len, size_t off, size_t n)
{
	struct span s;

	if (off > len)
		off = len;
	if (n > len - off)
		n = len - off;
	s.p = msg + off;
	s.n = n;
	return s;
}

static const char *
line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl != NULL ? nl + 1 : end;
}

static bool
field_wanted(const struct mc_imap_section *sec, const char *name, size_t n)
{
	for (size_t i = 0; i < sec->field_count; i++)
		if (strlen(sec->fields[i]) == n &&
		    strncasecmp(sec->fields[i], name, n) == 0)
			return true;
	return false;
}

/* The fields of header block h named (or, with not, not named) in sec,
 * each as it stands (folding kept), in the message's order, then the
 * empty line. Lines that are no field (no colon, stray continuations)
 * are left out. */
static void
header_fields(struct mc_strbuf *out, struct span h,
              const struct mc_imap_section *sec, bool not )
{
	const char *p = h.p, *end = h.p + h.n;

	while (p < end && *p != '\n' &&
	       !(*p == '\r' && p + 1 < end && p[1] == '\n')) {
		const char *first = line_end(p, end), *fe = first, *colon;
		size_t n;

		while (fe < end && (*fe == ' ' || *fe == '\t'))
			fe = line_end(fe, end);
		colon = memchr(p, ':', (size_t)(first - p));
		if (*p != ' ' && *p != '\t' && colon != NULL) {
			n = (size_t)(colon - p);
			while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
				n--;
			if (field_wanted(sec, p, n) != not ) {
				mc_strbuf_add(out, p, (size_t)(fe - p));
				if (fe[-1] != '\n')
					mc_strbuf_adds(out, "\r\n");
			}
		}
		p = fe;
	}
	mc_strbuf_adds(out, "\r\n");
}

static bool
is_rfc822(const struct mc_mime_part *p)
{
	return strcmp(p->type, "message") == 0 &&
	       strcmp(p->subtype, "rfc822") == 0;
}

/* The octets sec names before any decoding and before the partial
 * window, and the part they come from; false when there is no such
 * part. HEADER and TEXT of a message/rfc822 part are those of the message
 * it encloses; of any other part (RFC 3501 does not define them) the
 * part's own header and body. */
static bool
section_bytes(const struct mc_imap_section *sec, const char *msg, size_t len,
              const struct mc_mime_message *mime,
              const struct mc_mime_part **part_r, struct span *s_r)
{
	bool top = sec->part == NULL || sec->part[0] == '\0';
	const struct mc_mime_part *p =
	        top ? mime->root : mc_mime_find(mime, sec->part);

	*part_r = p;
	if (p == NULL)
		return false;
	switch (sec->kind) {
	case MC_IMAP_SECTION_ALL:
		*s_r = top ? cut(msg, len, 0, len)
		           : cut(msg, len, p->body_offset, p->body_size);
		return true;
	case MC_IMAP_SECTION_MIME:
		*s_r = cut(msg, len, p->header_offset, p->header_size);
		return true;
	default:
		break;
	}
	if (!top && is_rfc822(p) && p->children != NULL)
		p = p->children;
	if (sec->kind == MC_IMAP_SECTION_TEXT)
		*s_r = cut(msg, len, p->body_offset, p->body_size);
	else
		*s_r = cut(msg, len, p->header_offset, p->header_size);
	return true;
}

/* RFC 3516: identity for 7bit/8bit/binary, decoded base64 and
 * quoted-printable, -1 for anything else (UNKNOWN-CTE). */
static int
decode_cte(struct mc_strbuf *out, const char *enc, struct span s)
{
	if (enc == NULL || strcasecmp(enc, "7BIT") == 0 ||
	    strcasecmp(enc, "8BIT") == 0 || strcasecmp(enc, "BINARY") == 0)
		mc_strbuf_add(out, s.p, s.n);
	else if (strcasecmp(enc, "BASE64") == 0)
		decode_base64(out, s.p, s.n);
	else if (strcasecmp(enc, "QUOTED-PRINTABLE") == 0)
		decode_qp(out, s.p, s.n);
	else
		return -1;
	return 0;
}

/* The content as a string: "" when empty, else a literal; literal8 for
 * BINARY content holding NUL (RFC 3516 4.3). BODY content cannot carry
 * NUL in IMAP4rev1 literals: it goes out as 0x80, as headers are read. */
static void
add_content(struct mc_strbuf *b, struct span s, bool binary)
{
	size_t at;

	if (s.n == 0) {
		mc_strbuf_adds(b, "\"\"");
		return;
	}
	if (binary && memchr(s.p, '\0', s.n) != NULL)
		mc_strbuf_addc(b, '~');
	mc_strbuf_addf(b, "{%zu}\r\n", s.n);
	at = b->len;
	mc_strbuf_add(b, s.p, s.n);
	if (!binary)
		for (char *z = b->data + at;
		     (z = memchr(z, '\0', b->len - (size_t)(z - b->data))) !=
		     NULL;)
			*z++ = (char)0x80;
}

int
mc_imap_section_fetch(struct mc_strbuf *b, const struct mc_imap_section *sec,
                      const char *msg, size_t len,
                      const struct mc_mime_message *mime, const char **error_r)
{
	const struct mc_mime_part *p;
	struct mc_strbuf tmp = {0};
	struct span s = {"", 0};
	bool top = sec->part == NULL || sec->part[0] == '\0';
	int ret = -1;

	if (sec->name == NULL || mime == NULL || mime->root == NULL) {
		*error_r = "fetch: no section name or no MIME structure";
		return -1;
	}
	if (msg == NULL)
		msg = "", len = 0;
	if (!section_bytes(sec, msg, len, mime, &p, &s)) {
		s.p = "";
		s.n = 0;
	} else if (sec->kind == MC_IMAP_SECTION_HEADER_FIELDS ||
	           sec->kind == MC_IMAP_SECTION_HEADER_FIELDS_NOT) {
		header_fields(&tmp, s, sec,
		              sec->kind == MC_IMAP_SECTION_HEADER_FIELDS_NOT);
		s.p = tmp.data;
		s.n = tmp.len;
	} else if (sec->binary && !top && sec->kind == MC_IMAP_SECTION_ALL) {
		if (decode_cte(&tmp, p->encoding, s) < 0) {
			*error_r = "UNKNOWN-CTE";
			goto done;
		}
		s.p = tmp.data != NULL ? tmp.data : "";
		s.n = tmp.len;
	}
	if (sec->binary_size) {
		mc_strbuf_addf(b, "%s %zu", sec->name, s.n);
		ret = 0;
		goto done;
	}
	if (sec->partial) {
		if (sec->offset >= s.n) {
			s.n = 0;
		} else {
			s.p += sec->offset;
			s.n -= (size_t)sec->offset;
			if (sec->length < s.n)
				s.n = (size_t)sec->length;
		}
	}
	mc_strbuf_adds(b, sec->name);
	mc_strbuf_addc(b, ' ');
	add_content(b, s, sec->binary);
	ret = 0;
done:
	mc_strbuf_fini(&tmp);
	return ret;
}
