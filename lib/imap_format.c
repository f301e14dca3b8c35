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
#include "mime_decode.h"

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

char *
mc_imap_envelope_text(const char *json)
{
	struct mc_strbuf b;
	const char *error;

	if (json == NULL)
		return NULL;
	mc_strbuf_init(&b);
	if (mc_imap_format_envelope(&b, json, &error) < 0 ||
	    !mc_imap_text_ok(b.data, b.len)) {
		mc_strbuf_fini(&b);
		return NULL;
	}
	return mc_strbuf_steal(&b);
}

bool
mc_imap_text_ok(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		if (u[i] == 0)
			return false;
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = utf8_len(u + i, len - i)) == 0)
			return false;
		i += n;
	}
	return true;
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
	mc_mime_decode_base64(&d, json_string_value(v), json_string_length(v));
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
