/* IMAP SEARCH programs: the parser from command tokens into a tree of
 * keys (table-driven, bounded depth and size, every string copied into
 * the caller's pool) and the three-valued evaluator, with what it needs
 * to read message bytes: the header parsed once per message and text
 * parts decoded (lib/mime_decode) for BODY/TEXT. The text machinery
 * under both (dates, RFC 2047 encoded-words, substring search) is in
 * imap_search_text.c. */
#include "imap_search.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap_search_private.h"
#include "imf.h"
#include "mime.h"
#include "mime_decode.h"
#include "strbuf.h"

enum key {
	KEY_AND = 1, /* children, all */
	KEY_OR,      /* two children */
	KEY_NOT,     /* one child */
	KEY_ALL,
	KEY_FLAG, /* str: flag or keyword; neg for the UN- keys */
	KEY_RECENT,
	KEY_NEW,
	KEY_OLD,
	KEY_LARGER, /* num */
	KEY_SMALLER,
	KEY_MODSEQ,
	KEY_OLDER,
	KEY_YOUNGER,
	KEY_BEFORE, /* day */
	KEY_ON,
	KEY_SINCE,
	KEY_SENTBEFORE,
	KEY_SENTON,
	KEY_SENTSINCE,
	KEY_SEQSET, /* set */
	KEY_UIDSET,
	KEY_HEADER, /* str: field name; needle */
	KEY_BODY,   /* needle */
	KEY_TEXT,
};

/* A sequence set made quick to test: the ranges without "*" sorted and
 * merged, and those with "*" folded into two numbers (n:* covers n up to
 * the largest number, or down to it when n is larger). */
struct set {
	struct mc_imap_range *r;
	size_t n;
	bool star;         /* some range has a "*" */
	uint32_t star_min; /* least n of the n:* ranges (STAR if none) */
	uint32_t star_max; /* greatest n of the n:* ranges (0 if none) */
};

struct mc_imap_search {
	enum key kind;
	bool neg;
	bool needs_data; /* this key or one below it reads the message */
	bool needs_date; /* ... or the Date header (SENT*) */
	const char *str;
	size_t str_len;
	struct mc_imap_search_needle needle;
	uint64_t num;
	int64_t day; /* days since 1970-01-01 */
	struct set set;
	struct mc_imap_search *child; /* AND, OR, NOT */
	struct mc_imap_search *next;  /* sibling under AND, OR */
};

/* ---- parser ------------------------------------------------------------- */

struct parser {
	const struct mc_imap_token *args;
	struct mc_pool *pool;
	unsigned i;    /* next token */
	unsigned keys; /* parsed so far */
	size_t text;   /* octets of search strings so far */
	bool modseq;
	const char *error;
};

static void *fail(struct parser *ps, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Record the first error (formatted into the pool); returns NULL. */
static void *
fail(struct parser *ps, const char *fmt, ...)
{
	enum { ERROR_MAX = 160 };
	va_list ap;
	char *buf;

	if (ps->error != NULL)
		return NULL;
	buf = mc_pool_alloc(ps->pool, ERROR_MAX);
	va_start(ap, fmt);
	vsnprintf(buf, ERROR_MAX, fmt, ap);
	va_end(ap);
	ps->error = buf;
	return NULL;
}

enum arg {
	ARG_NONE,
	ARG_STRING,  /* astring to search for */
	ARG_HEADER,  /* field name, string */
	ARG_KEYWORD, /* flag-keyword */
	ARG_DATE,
	ARG_NUMBER, /* number64 */
	ARG_NZ,     /* nz-number (RFC 5032 interval) */
	ARG_SET,
	ARG_MODSEQ,
	ARG_NOT,
	ARG_OR,
};

struct key_def {
	const char *name;
	enum key kind;
	enum arg arg;
	const char *value; /* flag or header field name */
	bool neg;
};

static const struct key_def key_defs[] = {
        {"ALL", KEY_ALL, ARG_NONE, NULL, false},
        {"ANSWERED", KEY_FLAG, ARG_NONE, "\\Answered", false},
        {"BCC", KEY_HEADER, ARG_STRING, "Bcc", false},
        {"BEFORE", KEY_BEFORE, ARG_DATE, NULL, false},
        {"BODY", KEY_BODY, ARG_STRING, NULL, false},
        {"CC", KEY_HEADER, ARG_STRING, "Cc", false},
        {"DELETED", KEY_FLAG, ARG_NONE, "\\Deleted", false},
        {"DRAFT", KEY_FLAG, ARG_NONE, "\\Draft", false},
        {"FLAGGED", KEY_FLAG, ARG_NONE, "\\Flagged", false},
        {"FROM", KEY_HEADER, ARG_STRING, "From", false},
        {"HEADER", KEY_HEADER, ARG_HEADER, NULL, false},
        {"KEYWORD", KEY_FLAG, ARG_KEYWORD, NULL, false},
        {"LARGER", KEY_LARGER, ARG_NUMBER, NULL, false},
        {"MODSEQ", KEY_MODSEQ, ARG_MODSEQ, NULL, false},
        {"NEW", KEY_NEW, ARG_NONE, NULL, false},
        {"NOT", KEY_NOT, ARG_NOT, NULL, false},
        {"OLD", KEY_OLD, ARG_NONE, NULL, false},
        {"OLDER", KEY_OLDER, ARG_NZ, NULL, false},
        {"ON", KEY_ON, ARG_DATE, NULL, false},
        {"OR", KEY_OR, ARG_OR, NULL, false},
        {"RECENT", KEY_RECENT, ARG_NONE, NULL, false},
        {"SEEN", KEY_FLAG, ARG_NONE, "\\Seen", false},
        {"SENTBEFORE", KEY_SENTBEFORE, ARG_DATE, NULL, false},
        {"SENTON", KEY_SENTON, ARG_DATE, NULL, false},
        {"SENTSINCE", KEY_SENTSINCE, ARG_DATE, NULL, false},
        {"SINCE", KEY_SINCE, ARG_DATE, NULL, false},
        {"SMALLER", KEY_SMALLER, ARG_NUMBER, NULL, false},
        {"SUBJECT", KEY_HEADER, ARG_STRING, "Subject", false},
        {"TEXT", KEY_TEXT, ARG_STRING, NULL, false},
        {"TO", KEY_HEADER, ARG_STRING, "To", false},
        {"UID", KEY_UIDSET, ARG_SET, NULL, false},
        {"UNANSWERED", KEY_FLAG, ARG_NONE, "\\Answered", true},
        {"UNDELETED", KEY_FLAG, ARG_NONE, "\\Deleted", true},
        {"UNDRAFT", KEY_FLAG, ARG_NONE, "\\Draft", true},
        {"UNFLAGGED", KEY_FLAG, ARG_NONE, "\\Flagged", true},
        {"UNKEYWORD", KEY_FLAG, ARG_KEYWORD, NULL, true},
        {"UNSEEN", KEY_FLAG, ARG_NONE, "\\Seen", true},
        {"YOUNGER", KEY_YOUNGER, ARG_NZ, NULL, false},
};

static const struct key_def *
key_find(const struct mc_imap_token *t)
{
	for (size_t k = 0; k < sizeof(key_defs) / sizeof(key_defs[0]); k++)
		if (mc_imap_token_is(t, key_defs[k].name))
			return &key_defs[k];
	return NULL;
}

/* The next token, as an argument of key inside the current list. A
 * LIST token is returned unskipped: every caller refuses it. */
static const struct mc_imap_token *
take_arg(struct parser *ps, unsigned end, const char *key)
{
	if (ps->i >= end)
		return fail(ps, "Missing argument for %s", key);
	return &ps->args[ps->i++];
}

static bool
take_string(struct parser *ps, unsigned end, const char *key,
            const struct mc_imap_token **t_r)
{
	if ((*t_r = take_arg(ps, end, key)) == NULL)
		return false;
	if (!mc_imap_token_astring(*t_r)) {
		fail(ps, "%s needs a string", key);
		return false;
	}
	return true;
}

static bool
take_number(struct parser *ps, unsigned end, const char *key, uint64_t max,
            bool nz, uint64_t *v_r)
{
	const struct mc_imap_token *t = take_arg(ps, end, key);

	if (t == NULL)
		return false;
	if (t->type != MC_IMAP_ATOM ||
	    !mc_imap_parse_u64(t->text, t->len, v_r) || *v_r > max ||
	    (nz && *v_r == 0)) {
		fail(ps, "Invalid number for %s", key);
		return false;
	}
	return true;
}

/* A search string, counted against the program's MC_IMAP_SEARCH_MAX_TEXT. */
static bool
needle_init(struct parser *ps, struct mc_imap_search_needle *nd, const char *s,
            size_t len)
{
	if (len > MC_IMAP_SEARCH_MAX_TEXT - ps->text) {
		fail(ps, "Search strings too long (at most %u octets)",
		     MC_IMAP_SEARCH_MAX_TEXT);
		return false;
	}
	ps->text += len;
	mc_imap_search_needle_init(nd, ps->pool, s, len);
	return true;
}

static int
range_cmp(const void *a, const void *b)
{
	const struct mc_imap_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static bool
parse_set(struct parser *ps, const struct mc_imap_token *t, struct set *set)
{
	size_t max = 1, n, k = 0, m = 0;
	struct mc_imap_range *r;
	const char *err;

	if (t->type != MC_IMAP_ATOM) {
		fail(ps, "Invalid sequence set");
		return false;
	}
	if (t->len == 1 && t->text[0] == '$') {
		fail(ps, "Saved search results ($) are not supported");
		return false;
	}
	for (size_t i = 0; i < t->len; i++)
		max += t->text[i] == ',';
	r = mc_pool_alloc(ps->pool, max * sizeof(*r));
	if (mc_imap_seqset_parse(t->text, t->len, r, max, &n, &err) < 0) {
		fail(ps, "%s", err);
		return false;
	}
	set->star_min = MC_IMAP_SEQ_STAR;
	for (size_t i = 0; i < n; i++) {
		if (r[i].hi != MC_IMAP_SEQ_STAR) {
			r[k++] = r[i];
			continue;
		}
		set->star = true;
		if (r[i].lo == MC_IMAP_SEQ_STAR)
			continue;
		if (r[i].lo < set->star_min)
			set->star_min = r[i].lo;
		if (r[i].lo > set->star_max)
			set->star_max = r[i].lo;
	}
	qsort(r, k, sizeof(*r), range_cmp);
	for (size_t i = 0; i < k; i++) { /* merge; hi < STAR: no overflow */
		if (m > 0 && r[i].lo <= r[m - 1].hi + 1) {
			if (r[i].hi > r[m - 1].hi)
				r[m - 1].hi = r[i].hi;
		} else {
			r[m++] = r[i];
		}
	}
	set->r = r;
	set->n = m;
	return true;
}

/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer (RFC 7162):
 * the entry (per-flag modseqs) is accepted and ignored. */
static bool
parse_modseq(struct parser *ps, unsigned end, struct mc_imap_search *n)
{
	const struct mc_imap_token *t;

	if (ps->i < end && ps->args[ps->i].type != MC_IMAP_ATOM) {
		if (!take_string(ps, end, "MODSEQ", &t))
			return false;
		if (t->len < 7 || strncasecmp(t->text, "/flags/", 7) != 0) {
			fail(ps, "Invalid MODSEQ entry name");
			return false;
		}
		t = take_arg(ps, end, "MODSEQ");
		if (t == NULL)
			return false;
		if (!mc_imap_token_is(t, "priv") &&
		    !mc_imap_token_is(t, "shared") &&
		    !mc_imap_token_is(t, "all")) {
			fail(ps, "Invalid MODSEQ entry type");
			return false;
		}
	}
	ps->modseq = true;
	return take_number(ps, end, "MODSEQ", INT64_MAX, false, &n->num);
}

static struct mc_imap_search *parse_list(struct parser *ps, unsigned end,
                                         unsigned depth);
static struct mc_imap_search *parse_key(struct parser *ps, unsigned end,
                                        unsigned depth);

/* The argument of a key from the table. */
static bool
parse_arg(struct parser *ps, unsigned end, unsigned depth,
          const struct key_def *def, struct mc_imap_search *n)
{
	const struct mc_imap_token *t, *v;

	switch (def->arg) {
	case ARG_NONE:
		break;
	case ARG_STRING:
		return take_string(ps, end, def->name, &t) &&
		       needle_init(ps, &n->needle, t->text, t->len);
	case ARG_HEADER:
		if (!take_string(ps, end, def->name, &t) ||
		    !take_string(ps, end, def->name, &v))
			return false;
		n->str = mc_pool_strndup(ps->pool, t->text, t->len);
		n->str_len = t->len;
		return needle_init(ps, &n->needle, v->text, v->len);
	case ARG_KEYWORD:
		if (!take_string(ps, end, def->name, &t))
			return false;
		n->str = mc_pool_strndup(ps->pool, t->text, t->len);
		n->str_len = t->len;
		break;
	case ARG_DATE:
		if ((t = take_arg(ps, end, def->name)) == NULL)
			return false;
		if ((t->type != MC_IMAP_ATOM && t->type != MC_IMAP_QUOTED) ||
		    !mc_imap_search_parse_imap_date(t->text, t->len, &n->day)) {
			fail(ps, "Invalid date for %s (d-Mon-yyyy)", def->name);
			return false;
		}
		break;
	case ARG_NUMBER:
		return take_number(ps, end, def->name, UINT64_MAX, false,
		                   &n->num);
	case ARG_NZ:
		return take_number(ps, end, def->name, UINT32_MAX, true,
		                   &n->num);
	case ARG_SET:
		return (t = take_arg(ps, end, def->name)) != NULL &&
		       parse_set(ps, t, &n->set);
	case ARG_MODSEQ:
		return parse_modseq(ps, end, n);
	case ARG_NOT:
	case ARG_OR:
		for (unsigned k = 0; k < (def->arg == ARG_OR ? 2u : 1u); k++) {
			struct mc_imap_search *c;

			if (ps->i >= end) {
				fail(ps, "Missing argument for %s", def->name);
				return false;
			}
			if ((c = parse_key(ps, end, depth + 1)) == NULL)
				return false;
			if (n->child == NULL)
				n->child = c;
			else
				n->child->next = c;
			n->needs_data |= c->needs_data;
			n->needs_date |= c->needs_date;
		}
		break;
	}
	return true;
}

/* One key at args[ps->i] (which is < end). */
static struct mc_imap_search *
parse_key(struct parser *ps, unsigned end, unsigned depth)
{
	const struct mc_imap_token *t = &ps->args[ps->i];
	const struct key_def *def;
	struct mc_imap_search *n;

	if (depth > MC_IMAP_SEARCH_MAX_DEPTH)
		return fail(ps, "Search program nested too deeply (at most %u)",
		            MC_IMAP_SEARCH_MAX_DEPTH);
	if (++ps->keys > MC_IMAP_SEARCH_MAX_KEYS)
		return fail(ps, "Too many search keys (at most %u)",
		            MC_IMAP_SEARCH_MAX_KEYS);
	if (t->type == MC_IMAP_LIST) {
		unsigned list_end = ps->i + 1 + t->count;

		if (t->count == 0)
			return fail(ps, "Empty parenthesised search key");
		if (list_end > end || list_end < ps->i)
			return fail(ps, "Malformed list");
		ps->i++;
		return parse_list(ps, list_end, depth + 1);
	}
	if (t->type != MC_IMAP_ATOM)
		return fail(ps, "Search key expected");
	ps->i++;
	n = mc_pool_alloc(ps->pool, sizeof(*n));
	if ((t->text[0] >= '0' && t->text[0] <= '9') || t->text[0] == '*' ||
	    t->text[0] == '$') {
		n->kind = KEY_SEQSET;
		return parse_set(ps, t, &n->set) ? n : NULL;
	}
	if ((def = key_find(t)) == NULL)
		return fail(ps, "Unknown search key %.*s",
		            (int)(t->len > 40 ? 40 : t->len), t->text);
	n->kind = def->kind;
	n->neg = def->neg;
	n->needs_data = def->kind == KEY_HEADER || def->kind == KEY_BODY ||
	                def->kind == KEY_TEXT;
	n->needs_date = def->kind == KEY_SENTBEFORE ||
	                def->kind == KEY_SENTON || def->kind == KEY_SENTSINCE;
	if (def->value != NULL) {
		n->str = def->value;
		n->str_len = strlen(def->value);
	}
	return parse_arg(ps, end, depth, def, n) ? n : NULL;
}

/* Keys up to end, ANDed (one key stands alone). */
static struct mc_imap_search *
parse_list(struct parser *ps, unsigned end, unsigned depth)
{
	struct mc_imap_search *first = NULL, **tail = &first, *and;
	bool needs_data = false, needs_date = false;

	while (ps->i < end) {
		struct mc_imap_search *k = parse_key(ps, end, depth);

		if (k == NULL)
			return NULL;
		needs_data |= k->needs_data;
		needs_date |= k->needs_date;
		*tail = k;
		tail = &k->next;
	}
	if (first->next == NULL)
		return first;
	and = mc_pool_alloc(ps->pool, sizeof(*and));
	and->kind = KEY_AND;
	and->child = first;
	and->needs_data = needs_data;
	and->needs_date = needs_date;
	return and;
}

static const struct {
	const char *name;
	unsigned bit;
} ret_opts[] = {
        {"MIN", MC_IMAP_SEARCH_RET_MIN},
        {"MAX", MC_IMAP_SEARCH_RET_MAX},
        {"ALL", MC_IMAP_SEARCH_RET_ALL},
        {"COUNT", MC_IMAP_SEARCH_RET_COUNT},
};

/* RETURN (MIN MAX ALL COUNT) of RFC 4731; () means ALL. */
static bool
parse_return(struct parser *ps, unsigned nargs,
             struct mc_imap_search_options *opts)
{
	const struct mc_imap_token *list = take_arg(ps, nargs, "RETURN");
	unsigned end;

	if (list == NULL)
		return false;
	if (list->type != MC_IMAP_LIST) {
		fail(ps, "RETURN needs a list of options");
		return false;
	}
	end = ps->i + list->count;
	if (end > nargs || end < ps->i) {
		fail(ps, "Malformed list");
		return false;
	}
	for (; ps->i < end; ps->i++) {
		const struct mc_imap_token *t = &ps->args[ps->i];
		unsigned bit = 0;

		for (size_t k = 0; k < sizeof(ret_opts) / sizeof(ret_opts[0]);
		     k++)
			if (mc_imap_token_is(t, ret_opts[k].name))
				bit = ret_opts[k].bit;
		if (bit == 0 && t->type == MC_IMAP_ATOM) {
			/* SAVE (RFC 5182), PARTIAL (RFC 9394) ... */
			fail(ps, "Unsupported RETURN option %.*s",
			     (int)(t->len > 40 ? 40 : t->len), t->text);
			return false;
		}
		if (bit == 0) {
			fail(ps, "Invalid RETURN option");
			return false;
		}
		opts->ret |= bit;
	}
	if (opts->ret == 0)
		opts->ret = MC_IMAP_SEARCH_RET_ALL;
	opts->esearch = true;
	return true;
}

int
mc_imap_search_parse(const struct mc_imap_token *args, unsigned nargs,
                     struct mc_pool *pool, struct mc_imap_search **search_r,
                     struct mc_imap_search_options *opts_r,
                     const char **error_r)
{
	struct parser ps = {.args = args, .pool = pool};
	const struct mc_imap_token *t;
	struct mc_imap_search *s;

	memset(opts_r, 0, sizeof(*opts_r));
	*search_r = NULL;
	if (nargs > 0 && mc_imap_token_is(&args[0], "RETURN")) {
		ps.i++;
		if (!parse_return(&ps, nargs, opts_r))
			goto fail;
	}
	if (ps.i < nargs && mc_imap_token_is(&args[ps.i], "CHARSET")) {
		ps.i++;
		if (!take_string(&ps, nargs, "CHARSET", &t))
			goto fail;
		if (!(t->len == 8 &&
		      strncasecmp(t->text, "US-ASCII", 8) == 0) &&
		    !(t->len == 5 && strncasecmp(t->text, "UTF-8", 5) == 0)) {
			ps.error = "[BADCHARSET (US-ASCII UTF-8)] "
			           "Unsupported charset";
			goto fail;
		}
		opts_r->charset = mc_pool_strndup(pool, t->text, t->len);
	}
	if (ps.i >= nargs) {
		fail(&ps, "Missing search key");
		goto fail;
	}
	if ((s = parse_list(&ps, nargs, 0)) == NULL)
		goto fail;
	opts_r->uses_modseq = ps.modseq;
	*search_r = s;
	return 0;
fail:
	memset(opts_r, 0, sizeof(*opts_r));
	*error_r = ps.error;
	return -1;
}

bool
mc_imap_search_needs_data(const struct mc_imap_search *search)
{
	return search->needs_data;
}

bool
mc_imap_search_needs_date(const struct mc_imap_search *search)
{
	return search->needs_date;
}

bool
mc_imap_search_fields_only(const struct mc_imap_search *search,
                           const char *const *fields)
{
	const struct mc_imap_search *c;

	if (!search->needs_data)
		return true;
	if (search->kind == KEY_HEADER) {
		for (size_t i = 0; fields[i] != NULL; i++)
			if (strlen(fields[i]) == search->str_len &&
			    strncasecmp(fields[i], search->str,
			                search->str_len) == 0)
				return true;
		return false;
	}
	if (search->child == NULL)
		return false; /* BODY, TEXT */
	for (c = search->child; c != NULL; c = c->next)
		if (!mc_imap_search_fields_only(c, fields))
			return false;
	return true;
}

/* ---- evaluation --------------------------------------------------------- */

struct text {
	const unsigned char *p;
	size_t len;
	struct text *next;
};

/* One match call: the message, and what was made of its bytes so far
 * (parsed once however many text keys ask). */
struct eval {
	const struct mc_imap_search_ctx *ctx;
	const struct mc_imap_search_msg *msg;
	int64_t now;
	struct mc_pool *pool; /* NULL until the bytes are read */
	struct mc_imf_header hdr;
	struct text *fields; /* decoded values, [hdr.count], p NULL: not yet */
	bool have_parts;
	struct text *parts; /* decoded base64/QP text parts */
};

static bool
has_flag(const char *flags, const char *flag, size_t len)
{
	const char *p = flags != NULL ? flags : "";

	while (*p != '\0') {
		size_t n = strcspn(p, " ");

		if (n == len && len > 0 && strncasecmp(p, flag, len) == 0)
			return true;
		p += n;
		p += strspn(p, " ");
	}
	return false;
}

static bool
set_has(const struct set *s, uint32_t v, uint32_t largest)
{
	size_t lo = 0, hi = s->n;

	if (v == 0)
		return false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v < s->r[mid].lo)
			hi = mid;
		else if (v > s->r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	if (!s->star)
		return false;
	if (v == largest)
		return true;
	return v < largest ? s->star_min <= v : s->star_max >= v;
}

static void
load_header(struct eval *ev)
{
	if (ev->pool != NULL)
		return;
	ev->pool = mc_pool_new();
	mc_imf_header_parse(&ev->hdr, ev->pool, ev->msg->data, ev->msg->len,
	                    NULL);
	if (ev->hdr.size > ev->msg->len)
		ev->hdr.size = ev->msg->len;
	if (ev->hdr.count > 0)
		ev->fields = mc_pool_alloc(ev->pool,
		                           ev->hdr.count * sizeof(*ev->fields));
}

/* Field i's value with its encoded-words decoded. */
static const struct text *
field_text(struct eval *ev, size_t i)
{
	const struct mc_imf_field *f = &ev->hdr.fields[i];
	struct text *t = &ev->fields[i];

	if (t->p == NULL) {
		const unsigned char *v = (const unsigned char *)f->value;

		if (memmem(v, f->value_len, "=?", 2) == NULL) {
			t->p = v;
			t->len = f->value_len;
		} else {
			unsigned char *out =
			        mc_pool_alloc(ev->pool, f->value_len + 1);

			t->len = mc_imap_search_rfc2047_decode(v, f->value_len,
			                                       out);
			t->p = out;
		}
	}
	return t;
}

/* The decoded text of every base64 or quoted-printable text/... leaf,
 * at any depth (walked without recursion). */
static void
load_parts(struct eval *ev)
{
	const struct mc_mime_part *root, *p;
	struct mc_mime_message mm;
	struct mc_strbuf buf;

	if (ev->have_parts)
		return;
	ev->have_parts = true;
	mc_strbuf_init(&buf);
	mc_mime_parse(&mm, ev->pool, ev->msg->data, ev->msg->len, NULL);
	root = p = mm.root;
	for (;;) {
		if (p->children != NULL) {
			p = p->children;
			continue;
		}
		bool b64 = strcmp(p->encoding, "BASE64") == 0;

		if (strcmp(p->type, "text") == 0 &&
		    (b64 || strcmp(p->encoding, "QUOTED-PRINTABLE") == 0) &&
		    p->body_offset <= ev->msg->len &&
		    p->body_size <= ev->msg->len - p->body_offset) {
			struct text *t = mc_pool_alloc(ev->pool, sizeof(*t));
			const char *in = ev->msg->data + p->body_offset;
			unsigned char *copy;

			mc_strbuf_reset(&buf);
			if (b64)
				mc_mime_decode_base64(&buf, in, p->body_size);
			else
				mc_mime_decode_qp(&buf, in, p->body_size);
			t->len = buf.len;
			t->p = copy = mc_pool_alloc(ev->pool, buf.len + 1);
			if (buf.len > 0)
				memcpy(copy, buf.data, buf.len);
			t->next = ev->parts;
			ev->parts = t;
		}
		while (p != root && p->next == NULL)
			p = p->parent;
		if (p == root)
			break;
		p = p->next;
	}
	mc_strbuf_fini(&buf);
}

static bool
match_header(const struct mc_imap_search *n, struct eval *ev)
{
	for (size_t i = 0; i < ev->hdr.count; i++) {
		const char *name = ev->hdr.fields[i].name;

		if (strlen(name) != n->str_len ||
		    strncasecmp(name, n->str, n->str_len) != 0)
			continue;
		/* RFC 3501: an empty string matches any such field */
		if (n->needle.len == 0)
			return true;
		const struct text *t = field_text(ev, i);

		if (mc_imap_search_needle_find(&n->needle, t->p, t->len))
			return true;
	}
	return false;
}

static bool
match_text(const struct mc_imap_search *n, struct eval *ev)
{
	const char *data = ev->msg->data;
	size_t len = ev->msg->len;

	load_header(ev);
	if (n->kind == KEY_HEADER)
		return match_header(n, ev);
	if (n->kind == KEY_BODY) {
		if (mc_imap_search_needle_find(&n->needle, data + ev->hdr.size,
		                               len - ev->hdr.size))
			return true;
	} else {
		if (mc_imap_search_needle_find(&n->needle, data, len))
			return true;
		for (size_t i = 0; i < ev->hdr.count; i++) {
			const struct text *t = field_text(ev, i);

			if (mc_imap_search_needle_find(&n->needle, t->p,
			                               t->len))
				return true;
		}
	}
	load_parts(ev);
	for (const struct text *t = ev->parts; t != NULL; t = t->next)
		if (mc_imap_search_needle_find(&n->needle, t->p, t->len))
			return true;
	return false;
}

static enum mc_imap_search_result
yn(bool b)
{
	return b ? MC_IMAP_SEARCH_YES : MC_IMAP_SEARCH_NO;
}

static int
cmp_day(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static enum mc_imap_search_result eval(const struct mc_imap_search *n,
                                       struct eval *ev);

/* AND (or OR): Kleene logic, keys without text first so that a decided
 * answer spares reading and decoding the message. */
static enum mc_imap_search_result
eval_list(const struct mc_imap_search *n, struct eval *ev, bool is_or)
{
	enum mc_imap_search_result decisive = yn(is_or), res = yn(!is_or);

	for (int pass = 0; pass < 2; pass++) {
		for (const struct mc_imap_search *c = n->child; c != NULL;
		     c = c->next) {
			if (c->needs_data != (pass == 1))
				continue;
			enum mc_imap_search_result r = eval(c, ev);

			if (r == decisive)
				return r;
			if (r == MC_IMAP_SEARCH_NEED_DATA)
				res = r;
		}
	}
	return res;
}

static enum mc_imap_search_result
eval_date(const struct mc_imap_search *n, const struct eval *ev)
{
	int64_t day;
	int c;

	if (n->kind == KEY_SENTBEFORE || n->kind == KEY_SENTON ||
	    n->kind == KEY_SENTSINCE) {
		if (ev->msg->date == NULL ||
		    !mc_imap_search_parse_sent_date(ev->msg->date, &day))
			return MC_IMAP_SEARCH_NO;
	} else {
		day = mc_imap_search_local_day(ev->msg->internaldate,
		                               ev->ctx->tz_offset_minutes);
	}
	c = cmp_day(day, n->day);
	if (n->kind == KEY_BEFORE || n->kind == KEY_SENTBEFORE)
		return yn(c < 0);
	if (n->kind == KEY_ON || n->kind == KEY_SENTON)
		return yn(c == 0);
	return yn(c >= 0);
}

/* Recursion is bounded by the parser's MC_IMAP_SEARCH_MAX_DEPTH. */
static enum mc_imap_search_result
eval(const struct mc_imap_search *n, struct eval *ev)
{
	const struct mc_imap_search_msg *m = ev->msg;
	int64_t limit;
	enum mc_imap_search_result r;

	switch (n->kind) {
	case KEY_AND:
		return eval_list(n, ev, false);
	case KEY_OR:
		return eval_list(n, ev, true);
	case KEY_NOT:
		r = eval(n->child, ev);
		return r == MC_IMAP_SEARCH_NEED_DATA
		               ? r
		               : yn(r == MC_IMAP_SEARCH_NO);
	case KEY_ALL:
		return MC_IMAP_SEARCH_YES;
	case KEY_FLAG:
		return yn(has_flag(m->flags, n->str, n->str_len) != n->neg);
	case KEY_RECENT:
		return yn(m->recent);
	case KEY_NEW:
		return yn(m->recent && !has_flag(m->flags, "\\Seen", 5));
	case KEY_OLD:
		return yn(!m->recent);
	case KEY_LARGER:
		return yn(m->size > n->num);
	case KEY_SMALLER:
		return yn(m->size < n->num);
	case KEY_MODSEQ:
		return yn(m->modseq >= n->num);
	case KEY_OLDER:
	case KEY_YOUNGER:
		limit = ev->now < INT64_MIN + (int64_t)n->num
		                ? INT64_MIN
		                : ev->now - (int64_t)n->num;
		return yn(n->kind == KEY_OLDER ? m->internaldate <= limit
		                               : m->internaldate >= limit);
	case KEY_BEFORE:
	case KEY_ON:
	case KEY_SINCE:
	case KEY_SENTBEFORE:
	case KEY_SENTON:
	case KEY_SENTSINCE:
		return eval_date(n, ev);
	case KEY_SEQSET:
		return yn(set_has(&n->set, m->seq, ev->ctx->max_seq));
	case KEY_UIDSET:
		return yn(set_has(&n->set, m->uid, ev->ctx->max_uid));
	case KEY_HEADER:
	case KEY_BODY:
	case KEY_TEXT:
		if (m->data == NULL)
			return MC_IMAP_SEARCH_NEED_DATA;
		return yn(match_text(n, ev));
	}
	return MC_IMAP_SEARCH_NO;
}

enum mc_imap_search_result
mc_imap_search_match(const struct mc_imap_search *search,
                     const struct mc_imap_search_ctx *ctx,
                     const struct mc_imap_search_msg *msg)
{
	struct eval ev = {.ctx = ctx, .msg = msg, .now = ctx->now};
	enum mc_imap_search_result r;

	if (ev.now == 0)
		ev.now = (int64_t)time(NULL);
	r = eval(search, &ev);
	mc_pool_free(&ev.pool);
	return r;
}
