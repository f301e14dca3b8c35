/* Structured Content-* field values for lib/mime: the "type/subtype"
 * token pair and the parameter list after it (RFC 2045 5.1), RFC 2231
 * continuations and charset'language'%XX values, and Content-Language
 * tag lists. Lenient on purpose: junk between parameters is skipped up to
 * the next ';', an unquoted value runs to the next ';', a quote left open
 * runs to the end of the field. */
#include "mime_private.h"

#include <stdlib.h>
#include <string.h>

static const char TSPECIALS[] = "()<>@,;:\\\"/[]?=";

static bool
is_token(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr(TSPECIALS, c) == NULL;
}

/* Skip blanks and (nested (comments)). */
static const char *
skip_cfws(const char *p, const char *end)
{
	while (p < end) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			p++;
		} else if (*p == '(') {
			size_t depth = 0;

			for (; p < end; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				else if (*p == '(')
					depth++;
				else if (*p == ')' && --depth == 0) {
					p++;
					break;
				}
			}
		} else {
			break;
		}
	}
	return p;
}

static char *
lower_dup(struct mc_pool *pool, const char *s, size_t n)
{
	char *r = mc_pool_strndup(pool, s, n);

	for (size_t i = 0; i < n; i++)
		if (r[i] >= 'A' && r[i] <= 'Z')
			r[i] = (char)(r[i] - 'A' + 'a');
	return r;
}

const char *
mc_mime_token(struct mc_pool *pool, const char **pp, const char *end,
              bool upper)
{
	const char *p = skip_cfws(*pp, end), *s = p;
	char *r;

	while (p < end && is_token((unsigned char)*p))
		p++;
	*pp = p;
	if (p == s)
		return NULL;
	r = lower_dup(pool, s, (size_t)(p - s));
	if (upper)
		for (char *q = r; *q != '\0'; q++)
			if (*q >= 'a' && *q <= 'z')
				*q = (char)(*q - 'a' + 'A');
	return r;
}

struct raw_param {
	const char *attr; /* lower-cased, whole */
	size_t base_len;  /* of the name before any '*' */
	int section;      /* -1: none */
	bool ext;         /* value is %XX encoded */
	const char *value;
	size_t value_len;
};

/* Value after '=': quoted-string (unescaped) or up to ';' trimmed. */
static const char *
read_value(struct mc_pool *pool, const char **pp, const char *end,
           size_t *len_r)
{
	const char *p = skip_cfws(*pp, end), *s;
	char *r, *o;

	if (p < end && *p == '"') {
		o = r = mc_pool_alloc(pool, (size_t)(end - p) + 1);
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			*o++ = *p;
		}
		if (p < end)
			p++;
		*pp = p;
		*len_r = (size_t)(o - r);
		return r;
	}
	for (s = p; p < end && *p != ';'; p++)
		;
	*pp = p;
	while (p > s && (p[-1] == ' ' || p[-1] == '\t'))
		p--;
	*len_r = (size_t)(p - s);
	return mc_pool_strndup(pool, s, (size_t)(p - s));
}

/* "name", "name*", "name*N", "name*N*" (N without leading zeros). */
static void
split_attr(struct raw_param *rp)
{
	const char *a = rp->attr, *star = strchr(a, '*'), *q;
	long n = 0;

	rp->section = -1;
	rp->base_len = strlen(a);
	if (star == NULL || star == a)
		return;
	q = star + 1;
	if (*q == '\0') {
		rp->ext = true;
	} else {
		if (*q < '0' || *q > '9' ||
		    (q[0] == '0' && q[1] >= '0' && q[1] <= '9'))
			return;
		for (; *q >= '0' && *q <= '9' && n < 10000; q++)
			n = n * 10 + (*q - '0');
		if (*q == '*') {
			rp->ext = true;
			q++;
		}
		if (*q != '\0' || n >= 10000)
			return;
		rp->section = (int)n;
	}
	rp->base_len = (size_t)(star - a);
}

static size_t
read_raw(struct mc_pool *pool, const char *p, const char *end,
         struct raw_param *raw)
{
	size_t n = 0;

	while (p < end && n < MC_MIME_MAX_PARAMS) {
		const char *attr;

		while (p < end && *p != ';') {
			if (*p == '"') { /* junk with quotes: skip them whole */
				for (p++; p < end && *p != '"'; p++)
					if (*p == '\\' && p + 1 < end)
						p++;
			}
			if (p < end)
				p++;
		}
		if (p >= end)
			break;
		p++;
		attr = mc_mime_token(pool, &p, end, false);
		if (attr == NULL)
			continue;
		p = skip_cfws(p, end);
		if (p >= end || *p != '=')
			continue;
		p++;
		raw[n].attr = attr;
		raw[n].value = read_value(pool, &p, end, &raw[n].value_len);
		split_attr(&raw[n]);
		n++;
	}
	return n;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Append s[0..n) to o, %XX decoded when ext; returns the new end. */
static char *
append(char *o, const char *s, size_t n, bool ext)
{
	for (size_t i = 0; i < n; i++) {
		int h, l;

		if (ext && s[i] == '%' && i + 2 < n &&
		    (h = hexval(s[i + 1])) >= 0 &&
		    (l = hexval(s[i + 2])) >= 0) {
			char c = (char)(h * 16 + l);

			*o++ = c == '\0' ? (char)0x80 : c;
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	return o;
}

static bool
same_base(const struct raw_param *a, const struct raw_param *b)
{
	return a->base_len == b->base_len &&
	       memcmp(a->attr, b->attr, a->base_len) == 0;
}

/* Join the RFC 2231 sections of raw[first]'s name into out. */
static void
join_2231(struct mc_pool *pool, struct raw_param *raw, size_t n, size_t first,
          struct mc_mime_param *out)
{
	size_t total = 0, count = 0;
	const struct raw_param *sec[MC_MIME_MAX_PARAMS];
	char *v, *o;

	/* name* alone, else name*0, name*1 ... up to the first gap. */
	for (size_t i = first; i < n; i++)
		if (same_base(&raw[i], &raw[first]) && raw[i].section < 0 &&
		    raw[i].ext) {
			sec[count++] = &raw[i];
			break;
		}
	for (size_t k = 0; count == k && k < n; k++) {
		for (size_t i = first; i < n; i++)
			if (same_base(&raw[i], &raw[first]) &&
			    raw[i].section == (int)k) {
				sec[count++] = &raw[i];
				break;
			}
	}
	if (count == 0) /* only name*1...: take a plain name= if any */
		for (size_t i = first; i < n && count == 0; i++)
			if (same_base(&raw[i], &raw[first]) &&
			    raw[i].section < 0 && !raw[i].ext)
				sec[count++] = &raw[i];
	for (size_t i = 0; i < count; i++)
		total += sec[i]->value_len;
	o = v = mc_pool_alloc(pool, total + 1);
	for (size_t i = 0; i < count; i++) {
		const char *s = sec[i]->value;
		size_t len = sec[i]->value_len;
		const char *q1, *q2;

		if (i == 0 && sec[i]->ext &&
		    (q1 = memchr(s, '\'', len)) != NULL &&
		    (q2 = memchr(q1 + 1, '\'', len - (size_t)(q1 + 1 - s))) !=
		            NULL) {
			if (q1 > s)
				out->charset = mc_pool_strndup(
				        pool, s, (size_t)(q1 - s));
			if (q2 > q1 + 1)
				out->language = mc_pool_strndup(
				        pool, q1 + 1, (size_t)(q2 - q1 - 1));
			len -= (size_t)(q2 + 1 - s);
			s = q2 + 1;
		}
		o = append(o, s, len, sec[i]->ext);
	}
	*o = '\0';
	out->value = v;
}

void
mc_mime_params_parse(struct mc_pool *pool, const char *p, const char *end,
                     struct mc_mime_param **params_r, size_t *count_r)
{
	struct raw_param *raw =
	        mc_pool_alloc(pool, sizeof(*raw) * MC_MIME_MAX_PARAMS);
	size_t n = read_raw(pool, p, end, raw), count = 0;
	struct mc_mime_param *out;

	*params_r = NULL;
	*count_r = 0;
	if (n == 0)
		return;
	out = mc_pool_alloc(pool, sizeof(*out) * n);
	for (size_t i = 0; i < n; i++) {
		bool seen = false, is2231 = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = same_base(&raw[j], &raw[i]);
		if (seen)
			continue;
		for (size_t j = i; j < n && !is2231; j++)
			is2231 = same_base(&raw[j], &raw[i]) &&
			         (raw[j].section >= 0 || raw[j].ext);
		out[count].name =
		        mc_pool_strndup(pool, raw[i].attr, raw[i].base_len);
		if (is2231) {
			join_2231(pool, raw, n, i, &out[count]);
		} else {
			char *v = mc_pool_strndup(pool, raw[i].value,
			                          raw[i].value_len);

			for (char *q = v; q < v + raw[i].value_len; q++)
				if (*q == '\0')
					*q = (char)0x80;
			out[count].value = v;
		}
		count++;
	}
	*params_r = out;
	*count_r = count;
}

void
mc_mime_languages_parse(struct mc_pool *pool, const char *p, const char *end,
                        const char ***langs_r, size_t *count_r)
{
	size_t max = (size_t)(end - p) / 2 + 1, n = 0;
	const char **langs = mc_pool_alloc(pool, sizeof(*langs) * max);

	while (p < end && n < max) {
		const char *s;

		p = skip_cfws(p, end);
		for (s = p; p < end && *p != ',' && *p != '(' && *p != ' ' &&
		            *p != '\t';
		     p++)
			;
		if (p > s)
			langs[n++] = mc_pool_strndup(pool, s, (size_t)(p - s));
		p = skip_cfws(p, end);
		if (p < end && *p == ',')
			p++;
		else if (p < end && p == s)
			p++; /* stray byte: never loop without progress */
	}
	*langs_r = n > 0 ? langs : NULL;
	*count_r = n;
}
