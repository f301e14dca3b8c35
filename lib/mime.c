/* The MIME tree of a message (see mime.h): each part's header is split
 * with lib/imf, its Content-* fields read (mime_params.c), and multipart
 * bodies cut at their delimiter lines (RFC 2046 5.1.1). Each nesting
 * level scans its own bytes once, so the work is bounded by the message
 * size times max_depth, and max_parts bounds the tree. */
#include "mime_private.h"

#include <string.h>

struct ctx {
	struct mc_pool *pool;
	const char *msg;
	struct mc_mime_limits lim;
	struct mc_mime_message *out;
};

void
mc_mime_limits_default(struct mc_mime_limits *limits)
{
	memset(limits, 0, sizeof(*limits));
	limits->max_depth = MC_MIME_MAX_DEPTH_DEFAULT;
	limits->max_parts = MC_MIME_MAX_PARTS_DEFAULT;
	mc_imf_limits_default(&limits->imf);
}

static size_t
count_lines(const char *s, size_t n)
{
	size_t lines = 0;
	const char *p = s, *end = s + n, *nl;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		lines++;
		p = nl + 1;
	}
	return lines + (p < end ? 1 : 0);
}

static const char *
field(const struct mc_imf_header *h, const char *name, const char **end_r)
{
	const struct mc_imf_field *f = mc_imf_header_find(h, name);

	if (f == NULL)
		return NULL;
	*end_r = f->value + f->value_len;
	return f->value;
}

static void
set_default_type(struct ctx *c, struct mc_mime_part *p, bool digest)
{
	p->type = digest ? "message" : "text";
	p->subtype = digest ? "rfc822" : "plain";
	p->params = NULL;
	p->param_count = 0;
	if (!digest) {
		p->params = mc_pool_alloc(c->pool, sizeof(*p->params));
		p->params[0].name = "charset";
		p->params[0].value = "us-ascii";
		p->param_count = 1;
	}
}

static void
read_content_type(struct ctx *c, struct mc_mime_part *p, bool digest)
{
	const char *end, *v = field(&p->header, "Content-Type", &end);
	const char *type, *sub = NULL;

	if (v == NULL) {
		set_default_type(c, p, digest);
		return;
	}
	type = mc_mime_token(c->pool, &v, end, false);
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	if (type != NULL && v < end && *v == '/') {
		v++;
		sub = mc_mime_token(c->pool, &v, end, false);
	}
	if (sub == NULL) { /* RFC 2045 5.2: invalid means the default */
		set_default_type(c, p, false);
		return;
	}
	p->type = type;
	p->subtype = sub;
	mc_mime_params_parse(c->pool, v, end, &p->params, &p->param_count);
}

static void
read_fields(struct ctx *c, struct mc_mime_part *p, bool digest)
{
	const struct mc_imf_header *h = &p->header;
	const char *end, *v;
	const struct mc_imf_field *f;

	read_content_type(c, p, digest);
	if ((f = mc_imf_header_find(h, "Content-ID")) != NULL)
		p->id = f->value;
	if ((f = mc_imf_header_find(h, "Content-Description")) != NULL)
		p->description = f->value;
	if ((f = mc_imf_header_find(h, "Content-MD5")) != NULL)
		p->md5 = f->value;
	if ((f = mc_imf_header_find(h, "Content-Location")) != NULL)
		p->location = f->value;
	if ((v = field(h, "Content-Transfer-Encoding", &end)) != NULL)
		p->encoding = mc_mime_token(c->pool, &v, end, true);
	if (p->encoding == NULL)
		p->encoding = "7BIT";
	if ((v = field(h, "Content-Disposition", &end)) != NULL &&
	    (p->disposition = mc_mime_token(c->pool, &v, end, false)) != NULL)
		mc_mime_params_parse(c->pool, v, end, &p->disp_params,
		                     &p->disp_param_count);
	if ((v = field(h, "Content-Language", &end)) != NULL)
		mc_mime_languages_parse(c->pool, v, end, &p->languages,
		                        &p->language_count);
}

/* The part that could not be split (or was cut by a limit) as a leaf. */
static void
make_leaf(struct mc_mime_part *p)
{
	p->type = "application";
	p->subtype = "octet-stream";
	p->params = NULL;
	p->param_count = 0;
	p->children = NULL;
	p->child_count = 0;
	p->envelope = NULL;
	p->lines = 0;
	p->repaired = true;
}

/* Is [ls, le) a delimiter line of boundary b: "--" b ["--"] LWSP* EOL?
 * Sets *close for the close delimiter. */
static bool
is_delimiter(const char *ls, const char *le, const char *b, size_t blen,
             bool *close)
{
	const char *q = ls + 2 + blen;

	if ((size_t)(le - ls) < 2 + blen || ls[0] != '-' || ls[1] != '-' ||
	    memcmp(ls + 2, b, blen) != 0)
		return false;
	*close = le - q >= 2 && q[0] == '-' && q[1] == '-';
	if (*close)
		q += 2;
	while (q < le && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
		q++;
	return q == le;
}

/* Find the next delimiter line at or after pos (a line start) before end.
 * Returns its start offset, or end when there is none; *after_r is the
 * offset after its line end. */
static size_t
find_delimiter(const char *msg, size_t pos, size_t end, const char *b,
               size_t blen, size_t *after_r, bool *close)
{
	while (pos < end) {
		const char *ls = msg + pos;
		const char *nl = memchr(ls, '\n', end - pos);
		size_t le = nl != NULL ? (size_t)(nl - msg) + 1 : end;

		if (is_delimiter(ls, msg + le, b, blen, close)) {
			*after_r = le;
			return pos;
		}
		pos = le;
	}
	return end;
}

static struct mc_mime_part *parse_part(struct ctx *c, size_t off, size_t end,
                                       size_t depth, bool digest,
                                       struct mc_mime_part *parent);

static bool
room_for_child(struct ctx *c, size_t depth)
{
	if (depth + 1 >= c->lim.max_depth) {
		c->out->truncated |= MC_MIME_TRUNC_DEPTH;
		return false;
	}
	if (c->out->part_count >= c->lim.max_parts) {
		c->out->truncated |= MC_MIME_TRUNC_PARTS;
		return false;
	}
	return true;
}

static void
split_multipart(struct ctx *c, struct mc_mime_part *p, size_t depth)
{
	const struct mc_mime_param *bp =
	        mc_mime_param_find(p->params, p->param_count, "boundary");
	size_t end = p->body_offset + p->body_size, pos, after, blen;
	bool close = false, digest = strcmp(p->subtype, "digest") == 0;
	struct mc_mime_part **tail = &p->children;

	if (bp == NULL || (blen = strlen(bp->value)) == 0 ||
	    !room_for_child(c, depth)) {
		make_leaf(p);
		return;
	}
	pos = find_delimiter(c->msg, p->body_offset, end, bp->value, blen,
	                     &after, &close);
	while (pos < end && !close) {
		size_t start = after, stop;

		if (!room_for_child(c, depth))
			break;
		pos = find_delimiter(c->msg, start, end, bp->value, blen,
		                     &after, &close);
		/* The CRLF before a delimiter line belongs to it. */
		stop = pos;
		if (pos < end && stop > start && c->msg[stop - 1] == '\n')
			stop--;
		if (pos < end && stop > start && c->msg[stop - 1] == '\r')
			stop--;
		*tail = parse_part(c, start, stop, depth + 1, digest, p);
		tail = &(*tail)->next;
		p->child_count++;
	}
	if (p->child_count == 0)
		make_leaf(p);
}

static void
split_message(struct ctx *c, struct mc_mime_part *p, size_t depth)
{
	struct mc_mime_part *m;

	if (!room_for_child(c, depth)) {
		make_leaf(p);
		return;
	}
	m = parse_part(c, p->body_offset, p->body_offset + p->body_size,
	               depth + 1, false, p);
	p->children = m;
	p->child_count = 1;
	p->envelope = mc_pool_alloc(c->pool, sizeof(*p->envelope));
	mc_imf_envelope_from_header(p->envelope, c->pool, &m->header,
	                            &c->lim.imf);
}

static struct mc_mime_part *
parse_part(struct ctx *c, size_t off, size_t end, size_t depth, bool digest,
           struct mc_mime_part *parent)
{
	struct mc_mime_part *p = mc_pool_alloc(c->pool, sizeof(*p));

	c->out->part_count++;
	p->parent = parent;
	mc_imf_header_parse(&p->header, c->pool, c->msg + off, end - off,
	                    &c->lim.imf);
	if (p->header.truncated != 0)
		c->out->truncated |= MC_MIME_TRUNC_HEADER;
	p->header_offset = off;
	p->header_size = p->header.size;
	p->body_offset = off + p->header.size;
	p->body_size = end - p->body_offset;
	read_fields(c, p, digest);
	if (strcmp(p->type, "multipart") == 0) {
		split_multipart(c, p, depth);
	} else if (strcmp(p->type, "message") == 0 &&
	           strcmp(p->subtype, "rfc822") == 0) {
		split_message(c, p, depth);
	}
	if (strcmp(p->type, "text") == 0 || (strcmp(p->type, "message") == 0 &&
	                                     strcmp(p->subtype, "rfc822") == 0))
		p->lines = count_lines(c->msg + p->body_offset, p->body_size);
	return p;
}

void
mc_mime_parse(struct mc_mime_message *msg_r, struct mc_pool *pool,
              const void *msg, size_t len, const struct mc_mime_limits *limits)
{
	struct ctx c = {.pool = pool, .msg = msg, .out = msg_r};
	mc_mime_limits_default(&c.lim);
	if (limits != NULL) {
		if (limits->max_depth != 0)
			c.lim.max_depth = limits->max_depth;
		if (limits->max_parts != 0)
			c.lim.max_parts = limits->max_parts;
		c.lim.imf = limits->imf;
	}
	if (c.lim.max_depth > MC_MIME_MAX_DEPTH_HARD)
		c.lim.max_depth = MC_MIME_MAX_DEPTH_HARD;
	memset(msg_r, 0, sizeof(*msg_r));
	msg_r->root = parse_part(&c, 0, len, 0, false, NULL);
}

const struct mc_mime_param *
mc_mime_param_find(const struct mc_mime_param *p, size_t count,
                   const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(p[i].name, name) == 0)
			return &p[i];
	return NULL;
}

static bool
is_type(const struct mc_mime_part *p, const char *type, const char *sub)
{
	return strcmp(p->type, type) == 0 &&
	       (sub == NULL || strcmp(p->subtype, sub) == 0);
}

const struct mc_mime_part *
mc_mime_find(const struct mc_mime_message *msg, const char *section)
{
	/* x: a message (root or enclosed) or a multipart to index into. */
	const struct mc_mime_part *x = msg->root, *p = msg->root;
	const char *s = section;

	while (*s != '\0') {
		unsigned long k = 0;

		if (x == NULL || *s < '1' || *s > '9')
			return NULL;
		for (; *s >= '0' && *s <= '9' && k < 1000000; s++)
			k = k * 10 + (unsigned long)(*s - '0');
		if (*s == '.' && s[1] != '\0')
			s++;
		else if (*s != '\0')
			return NULL;
		if (is_type(x, "multipart", NULL)) {
			for (p = x->children; p != NULL && k > 1; k--)
				p = p->next;
		} else {
			p = k == 1 ? x : NULL;
		}
		if (p == NULL)
			return NULL;
		if (is_type(p, "message", "rfc822") && p->children != NULL)
			x = p->children;
		else if (is_type(p, "multipart", NULL) && p != x)
			x = p;
		else
			x = NULL;
	}
	return p;
}
