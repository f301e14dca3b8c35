/* Address lists (RFC 5322 3.4, obsolete syntax of 4.4) parsed into IMAP
 * address structures (see imf.h for the shapes and the repairs).
 *
 * A tokenizer turns the value into atoms, quoted strings, domain literals
 * and single special characters, dropping blanks and comments (nested,
 * with quoted-pairs) but remembering whether any came before a token. A
 * recursive-descent parser with one token of lookahead reads the list.
 * Every loop consumes a token or ends, unterminated quotes, comments and
 * literals end at the end of the value, and nothing recurses deeper than
 * a group, so any input is parsed in linear time and constant stack. The
 * work buffers only ever hold pieces of the value, so they stay within
 * its length. */
#include "imf.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

enum tok_kind {
	TOK_END,
	TOK_ATOM,
	TOK_QUOTED,  /* raw, with its quotes */
	TOK_LITERAL, /* raw, with its brackets */
	TOK_SPECIAL, /* one of < > @ , ; : . ] ) */
};

struct tok {
	enum tok_kind kind;
	const char *p;
	size_t len;
	char c;      /* TOK_SPECIAL */
	bool space;  /* blanks or a comment before it */
	bool closed; /* TOK_QUOTED / TOK_LITERAL: the closing char was seen */
};

/* A growable work buffer. */
struct sbuf {
	char *b;
	size_t len, cap;
};

struct addr_parser {
	const char *p, *end;
	struct tok tok; /* lookahead */
	struct mc_pool *pool;
	struct mc_imf_address *addrs; /* heap, copied to the pool at the end */
	size_t count, cap, max;
	bool stop; /* max reached: nothing but a group end is added */
	struct sbuf name, local, host, adl;
};

/* Where the last whitespace-separated run of words starts in a phrase: in
 * "John Doe john@x" (no angle brackets) the run before '@' is the local
 * part and what precedes it the name. */
struct phrase {
	size_t words;
	size_t run_local; /* offset into the local buffer */
	size_t run_name;  /* length of the name before the run */
	bool split;       /* more than one run */
};

static void
sbuf_add(struct sbuf *s, const char *p, size_t n)
{
	if (s->cap - s->len < n + 1) {
		size_t cap = s->cap ? s->cap : 64;

		while (cap - s->len < n + 1)
			cap *= 2;
		s->b = mc_realloc(s->b, cap);
		s->cap = cap;
	}
	for (size_t i = 0; i < n; i++)
		s->b[s->len++] = p[i] == '\0' ? (char)0x80 : p[i];
}

static const char *
pstr(struct addr_parser *a, const struct sbuf *s, size_t off, size_t n)
{
	if (n == 0)
		return NULL;
	return mc_pool_strndup(a->pool, s->b + off, n);
}

/* ---- tokenizer -------------------------------------------------------- */

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_special(char c)
{
	return c != '\0' && strchr("()<>[]:;@,.\"", c) != NULL;
}

/* Skip blanks and comments; true if there were any. */
static bool
skip_cfws(struct addr_parser *a)
{
	bool any = false;

	while (a->p < a->end) {
		unsigned depth = 0;

		if (is_space(*a->p)) {
			a->p++;
			any = true;
			continue;
		}
		if (*a->p != '(')
			break;
		any = true;
		while (a->p < a->end) {
			char c = *a->p++;

			if (c == '\\' && a->p < a->end)
				a->p++;
			else if (c == '(')
				depth++;
			else if (c == ')' && --depth == 0)
				break;
		}
	}
	return any;
}

/* Scan a quoted string or literal from its opening char to the closing
 * one (or the end), honouring quoted-pairs. */
static void
scan_delimited(struct addr_parser *a, char close)
{
	a->p++;
	while (a->p < a->end) {
		char c = *a->p++;

		if (c == '\\' && a->p < a->end) {
			a->p++;
		} else if (c == close) {
			a->tok.closed = true;
			return;
		}
	}
}

static void
next_tok(struct addr_parser *a)
{
	struct tok *t = &a->tok;
	char c;

	t->space = skip_cfws(a);
	t->p = a->p;
	t->closed = false;
	t->c = '\0';
	if (a->p >= a->end) {
		t->kind = TOK_END;
		t->len = 0;
		return;
	}
	c = *a->p;
	if (c == '"') {
		t->kind = TOK_QUOTED;
		scan_delimited(a, '"');
	} else if (c == '[') {
		t->kind = TOK_LITERAL;
		scan_delimited(a, ']');
	} else if (is_special(c)) {
		t->kind = TOK_SPECIAL;
		t->c = c;
		a->p++;
	} else {
		t->kind = TOK_ATOM;
		while (a->p < a->end && !is_special(*a->p) && !is_space(*a->p))
			a->p++;
	}
	t->len = (size_t)(a->p - t->p);
}

static bool
is(const struct addr_parser *a, char c)
{
	return a->tok.kind == TOK_SPECIAL && a->tok.c == c;
}

static bool
is_word(const struct addr_parser *a)
{
	return a->tok.kind == TOK_ATOM || a->tok.kind == TOK_QUOTED ||
	       a->tok.kind == TOK_LITERAL;
}

/* ---- output ----------------------------------------------------------- */

/* Add an address; false when the list is full (then parsing stops). A
 * group end (all NULL) is always accepted so an open group is closed. */
static bool
emit(struct addr_parser *a, const char *name, const char *adl,
     const char *mailbox, const char *host, bool invalid)
{
	bool group_end = !name && !adl && !mailbox && !host;
	struct mc_imf_address *ad;

	if (!group_end && (a->stop || a->count >= a->max)) {
		a->stop = true;
		a->p = a->end;
		a->tok.kind = TOK_END;
		return false;
	}
	if (a->count == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 8;
		a->addrs = mc_realloc(a->addrs, a->cap * sizeof(*a->addrs));
	}
	ad = &a->addrs[a->count++];
	ad->name = name;
	ad->adl = adl;
	ad->mailbox = mailbox;
	ad->host = host;
	ad->invalid = invalid;
	return true;
}

/* A mailbox, the missing parts filled in. Nothing at all: nothing added. */
static void
emit_mailbox(struct addr_parser *a, const char *name, const char *adl,
             const char *mailbox, const char *host, bool invalid)
{
	if (!name && !adl && !mailbox && !host)
		return;
	if (mailbox == NULL) {
		mailbox = MC_IMF_MISSING_MAILBOX;
		invalid = true;
	}
	if (host == NULL) {
		host = MC_IMF_MISSING_DOMAIN;
		invalid = true;
	}
	emit(a, name, adl, mailbox, host, invalid);
}

/* ---- grammar ---------------------------------------------------------- */

/* Append the current token to the display name: quotes removed, escapes
 * resolved, one blank where the input had blanks or comments. */
static void
name_add(struct addr_parser *a)
{
	const struct tok *t = &a->tok;
	const char *s = t->p, *e = t->p + t->len;

	if (a->name.len > 0 && t->space)
		sbuf_add(&a->name, " ", 1);
	if (t->kind != TOK_QUOTED) {
		sbuf_add(&a->name, s, t->len);
		return;
	}
	s++;
	if (t->closed)
		e--;
	for (; s < e; s++) {
		if (*s == '\\' && ++s == e)
			break;
		sbuf_add(&a->name, s, 1);
	}
}

/* Words and dots: a display name, a local part or bare words. Fills the
 * name buffer (display form) and the local buffer (raw, no blanks). */
static void
collect_phrase(struct addr_parser *a, struct phrase *ph)
{
	bool after_dot = false;

	memset(ph, 0, sizeof(*ph));
	a->name.len = a->local.len = 0;
	for (;; next_tok(a)) {
		if (is_word(a)) {
			if (ph->words > 0 && !after_dot && a->tok.space) {
				ph->split = true;
				ph->run_local = a->local.len;
				ph->run_name = a->name.len;
			}
			ph->words++;
			after_dot = false;
		} else if (is(a, '.')) {
			after_dot = true;
		} else {
			return;
		}
		name_add(a);
		sbuf_add(&a->local, a->tok.p, a->tok.len);
	}
}

/* A domain (dot-atom, obs-domain or literal) into out, raw. Stops before
 * a second label that is not preceded by a dot (a missing comma). */
static void
parse_domain(struct addr_parser *a, struct sbuf *out)
{
	bool want_label = true;

	out->len = 0;
	for (;; next_tok(a)) {
		if (is(a, '.')) {
			want_label = true;
		} else if (want_label && (a->tok.kind == TOK_ATOM ||
		                          a->tok.kind == TOK_LITERAL)) {
			want_label = false;
		} else {
			return;
		}
		sbuf_add(out, a->tok.p, a->tok.len);
	}
}

/* After '<' at an '@': obs-route "@a,@b:" (true, adl buffer filled), or a
 * broken "<@host>" (false, host buffer holds the last domain). */
static bool
parse_route(struct addr_parser *a)
{
	a->adl.len = 0;
	while (is(a, '@') || is(a, ',')) {
		bool at = is(a, '@');

		sbuf_add(&a->adl, at ? "@" : ",", 1);
		next_tok(a);
		if (!at)
			continue;
		parse_domain(a, &a->host);
		sbuf_add(&a->adl, a->host.b, a->host.len);
	}
	if (!is(a, ':'))
		return false;
	next_tok(a);
	a->host.len = 0;
	return true;
}

/* name-addr from its '<': [route] addr-spec '>'. */
static void
parse_angle(struct addr_parser *a, const char *name)
{
	const char *adl = NULL, *mailbox = NULL;
	bool invalid = false;
	struct phrase ph;

	next_tok(a);
	while (is(a, '<')) { /* "<<a@b>>" */
		invalid = true;
		next_tok(a);
	}
	a->host.len = a->adl.len = 0;
	if (is(a, '@') && !parse_route(a)) {
		invalid = true;
	} else {
		adl = pstr(a, &a->adl, 0, a->adl.len);
		collect_phrase(a, &ph);
		invalid |= ph.split;
		mailbox = pstr(a, &a->local, 0, a->local.len);
		if (is(a, '@')) {
			next_tok(a);
			parse_domain(a, &a->host);
		}
	}
	if (is(a, '>')) {
		next_tok(a);
	} else { /* missing '>': up to it, or to the next member */
		invalid = true;
		while (a->tok.kind != TOK_END && !is(a, '>') && !is(a, ',') &&
		       !is(a, ';'))
			next_tok(a);
		if (is(a, '>'))
			next_tok(a);
	}
	emit_mailbox(a, name, adl, mailbox, pstr(a, &a->host, 0, a->host.len),
	             invalid);
}

/* An addr-spec or bare words, the phrase collected and the lookahead on
 * what follows it. */
static void
parse_bare(struct addr_parser *a, const struct phrase *ph)
{
	const char *name, *mailbox;

	if (is(a, '@')) {
		name = pstr(a, &a->name, 0, ph->run_name);
		mailbox = pstr(a, &a->local, ph->run_local,
		               a->local.len - ph->run_local);
		next_tok(a);
		parse_domain(a, &a->host);
		emit_mailbox(a, name, NULL, mailbox,
		             pstr(a, &a->host, 0, a->host.len), ph->split);
	} else if (ph->words > 0 && !ph->split) {
		/* "root", "undisclosed-recipients" without ":;" */
		emit_mailbox(a, NULL, NULL, pstr(a, &a->local, 0, a->local.len),
		             NULL, true);
	} else if (ph->words > 0) {
		/* "John Doe" with no address */
		emit_mailbox(a, pstr(a, &a->name, 0, a->name.len), NULL, NULL,
		             NULL, true);
	}
}

/* Drop tokens up to the next separator. ';' counts as one outside a group
 * too: people (and some mailers) separate recipients with semicolons. */
static void
skip_junk(struct addr_parser *a)
{
	while (a->tok.kind != TOK_END && !is(a, ',') && !is(a, ';'))
		next_tok(a);
}

static void parse_item(struct addr_parser *a, bool in_group);

/* group from its ':': start marker, members, end marker. */
static void
parse_group(struct addr_parser *a, const char *name)
{
	if (!emit(a, NULL, NULL, name ? name : "", NULL, false))
		return;
	next_tok(a);
	while (a->tok.kind != TOK_END && !is(a, ';')) {
		if (is(a, ','))
			next_tok(a);
		else
			parse_item(a, true);
	}
	if (is(a, ';'))
		next_tok(a);
	emit(a, NULL, NULL, NULL, NULL, false);
}

/* One list member: a group (not inside a group), a name-addr, an
 * addr-spec or bare words; junk after it up to the next separator is
 * dropped (after a group's ';' there is no need for a comma). */
static void
parse_item(struct addr_parser *a, bool in_group)
{
	struct phrase ph;

	collect_phrase(a, &ph);
	if (is(a, ':') && !in_group) {
		parse_group(a, pstr(a, &a->name, 0, a->name.len));
		return;
	}
	if (is(a, '<'))
		parse_angle(a, pstr(a, &a->name, 0, a->name.len));
	else
		parse_bare(a, &ph);
	skip_junk(a);
}

void
mc_imf_addr_parse(struct mc_imf_addr_list *list_r, struct mc_pool *pool,
                  const char *value, size_t len, size_t max_addresses)
{
	struct addr_parser a;

	memset(&a, 0, sizeof(a));
	memset(list_r, 0, sizeof(*list_r));
	a.p = value;
	a.end = value + len;
	a.pool = pool;
	a.max = max_addresses > 0 ? max_addresses
	                          : MC_IMF_MAX_ADDRESSES_DEFAULT;
	next_tok(&a);
	while (a.tok.kind != TOK_END) {
		if (is(&a, ',') || is(&a, ';'))
			next_tok(&a);
		else
			parse_item(&a, false);
	}
	if (a.count > 0) {
		list_r->addrs = mc_pool_alloc(pool, a.count * sizeof(*a.addrs));
		memcpy(list_r->addrs, a.addrs, a.count * sizeof(*a.addrs));
		list_r->count = a.count;
	}
	list_r->truncated = a.stop;
	free(a.addrs);
	free(a.name.b);
	free(a.local.b);
	free(a.host.b);
	free(a.adl.b);
}
