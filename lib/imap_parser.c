/* The IMAP command reader: framing of commands and literals over the
 * input buffer (line limits, literal limits, continuation requests, and
 * resynchronisation after an error), the tokenizer that turns one framed
 * command into tag, name and a token tree in place, and the number and
 * sequence-set helpers. See imap_parser.h for the contract.
 *
 * Framing and tokenizing are two passes on purpose: the framer only needs
 * to know where quoted strings are (a "{5}" inside quotes is text) and
 * where a line ends in a literal announcement, so it runs byte by byte as
 * data trickles in; the tokenizer then runs once over a complete command,
 * which keeps it simple and makes trickled and whole input parse alike. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "imap_parser.h"
#include "mem.h"

enum {
	ST_LINE = 0,  /* command text */
	ST_LITERAL,   /* literal octets, buffered */
	ST_SKIP_LINE, /* dropping the rest of a refused command's line */
	ST_SKIP_LITERAL,
};

#define DEPTH_MAX 64u
#define TAG_MAX 64u

static const struct mc_imap_reply reply_toolong = {"BAD", "TOOBIG",
                                                   "Command line too long"};
static const struct mc_imap_reply reply_toobig_sync = {"NO", "TOOBIG",
                                                       "Literal too big"};
static const struct mc_imap_reply reply_toobig_nonsync = {
        "BAD", "TOOBIG", "Non-synchronizing literal too big"};
static const struct mc_imap_reply reply_literal_size = {"BAD", NULL,
                                                        "Invalid literal size"};
static const struct mc_imap_reply reply_nul = {"BAD", NULL,
                                               "NUL byte in command"};
static const struct mc_imap_reply reply_tag = {"BAD", NULL,
                                               "Missing or invalid tag"};
static const struct mc_imap_reply reply_name = {
        "BAD", NULL, "Missing or invalid command name"};
static const struct mc_imap_reply reply_atom = {"BAD", NULL,
                                                "Invalid characters in atom"};
static const struct mc_imap_reply reply_quoted = {"BAD", NULL,
                                                  "Invalid quoted string"};
static const struct mc_imap_reply reply_literal = {"BAD", NULL,
                                                   "Invalid literal"};
static const struct mc_imap_reply reply_literal_nul = {
        "BAD", NULL, "NUL byte in literal (use literal8)"};
static const struct mc_imap_reply reply_unbalanced = {"BAD", NULL,
                                                      "Unbalanced parentheses"};
static const struct mc_imap_reply reply_depth = {"BAD", NULL,
                                                 "Parentheses nested too deep"};
static const struct mc_imap_reply reply_tokens = {"BAD", NULL,
                                                  "Too many arguments"};
static const struct mc_imap_reply reply_space = {
        "BAD", NULL, "Arguments must be separated by one space"};
static const struct mc_imap_reply reply_flag = {"BAD", NULL, "Invalid flag"};

void
mc_imap_limits_default(struct mc_imap_limits *limits)
{
	limits->max_line = MC_IMAP_LINE_DEFAULT;
	limits->max_literal = MC_IMAP_LITERAL_DEFAULT;
	limits->max_nonsync = MC_IMAP_LITERAL_DEFAULT;
	limits->max_command = MC_IMAP_LITERAL_DEFAULT;
	limits->max_tokens = MC_IMAP_TOKENS_DEFAULT;
	limits->max_depth = MC_IMAP_DEPTH_DEFAULT;
}

static void
set_limits(struct mc_imap_reader *r, const struct mc_imap_limits *limits)
{
	unsigned tokens = r->limits.max_tokens;

	r->limits = *limits;
	if (r->limits.max_line < 64)
		r->limits.max_line = 64;
	if (r->limits.max_depth > DEPTH_MAX)
		r->limits.max_depth = DEPTH_MAX;
	if (tokens != 0)
		r->limits.max_tokens = tokens;
	if (r->limits.max_tokens < 8)
		r->limits.max_tokens = 8;
}

void
mc_imap_reader_init(struct mc_imap_reader *r,
                    const struct mc_imap_limits *limits)
{
	memset(r, 0, sizeof(*r));
	set_limits(r, limits);
	r->cap = 4096;
	r->buf = mc_malloc(r->cap);
	r->tokens = mc_calloc(r->limits.max_tokens, sizeof(*r->tokens));
}

void
mc_imap_reader_fini(struct mc_imap_reader *r)
{
	free(r->buf);
	free(r->tokens);
	memset(r, 0, sizeof(*r));
}

void
mc_imap_reader_limits(struct mc_imap_reader *r,
                      const struct mc_imap_limits *limits)
{
	set_limits(r, limits);
}

/* Remove the first n buffered octets (a command taken or dropped). */
static void
drop(struct mc_imap_reader *r, size_t n)
{
	memmove(r->buf, r->buf + n, r->tail - n);
	r->tail -= n;
	r->scan -= n;
	r->seg = r->seg > n ? r->seg - n : 0;
}

void *
mc_imap_reader_space(struct mc_imap_reader *r, size_t *len_r)
{
	if (r->taken > 0) {
		drop(r, r->taken);
		r->taken = 0;
	}
	if (r->tail == r->cap && r->scan == r->tail) {
		/* An incomplete command fills the buffer: the framer has
		 * checked it against the limits, so it may grow. */
		size_t cap = r->cap * 2;

		/* A big literal: just what it needs, plus a line. */
		if (r->state == ST_LITERAL &&
		    r->remaining + 1024 < cap - r->tail)
			cap = r->tail + (size_t)r->remaining + 1024;
		r->cap = cap;
		r->buf = mc_realloc(r->buf, r->cap);
	}
	*len_r = r->cap - r->tail;
	return r->buf + r->tail;
}

void
mc_imap_reader_commit(struct mc_imap_reader *r, size_t n)
{
	r->tail += n;
}

size_t
mc_imap_reader_feed(struct mc_imap_reader *r, const void *data, size_t len)
{
	size_t n;
	void *space = mc_imap_reader_space(r, &n);

	if (n > len)
		n = len;
	memcpy(space, data, n);
	mc_imap_reader_commit(r, n);
	return n;
}

bool
mc_imap_reader_continuation(struct mc_imap_reader *r)
{
	bool ret = r->cont_pending && r->state == ST_LITERAL;

	r->cont_pending = false;
	return ret;
}

/* ---- framing ------------------------------------------------------------ */

struct marker {
	uint64_t n;
	bool sync, binary;
};

/* Does the line s[0..len) (without its line end) end in a literal
 * announcement "{n}", "{n+}", "~{n}"? 1 yes, 0 no, -1 a bad size. */
static int
marker_parse(const char *s, size_t len, struct marker *m)
{
	size_t j, digits = 0;
	uint64_t n = 0, mul = 1;

	if (len < 3 || s[len - 1] != '}')
		return 0;
	j = len - 1;
	m->sync = true;
	if (s[j - 1] == '+') {
		m->sync = false;
		j--;
	}
	while (j > 0 && s[j - 1] >= '0' && s[j - 1] <= '9') {
		j--;
		digits++;
	}
	if (j == 0 || s[j - 1] != '{')
		return 0;
	if (digits == 0 || digits > 19)
		return digits == 0 ? 0 : -1;
	for (size_t k = j + digits; k > j; k--) {
		n += (uint64_t)(s[k - 1] - '0') * mul;
		mul *= 10;
	}
	m->n = n;
	m->binary = j >= 2 && s[j - 2] == '~';
	return 1;
}

static void
quote_track(struct mc_imap_reader *r, char c)
{
	if (r->escape)
		r->escape = false;
	else if (r->in_quote && c == '\\')
		r->escape = true;
	else if (c == '"')
		r->in_quote = !r->in_quote;
}

static void
command_reset(struct mc_imap_reader *r)
{
	r->line_octets = 0;
	r->literal_octets = 0;
	r->pending = NULL;
	r->in_quote = r->escape = false;
	r->cont_pending = false;
	r->seg = 0;
}

/* Copy the tag at the start of the buffer, for an error reported after the
 * command's bytes are gone. */
static const char *
save_tag(struct mc_imap_reader *r)
{
	size_t i;

	for (i = 0; i < r->tail && i <= TAG_MAX; i++) {
		unsigned char c = (unsigned char)r->buf[i];

		if (c == ' ')
			break;
		if (c <= 32 || c >= 127 || strchr("(){\"\\%*+", c) != NULL)
			return NULL;
	}
	if (i == 0 || i > TAG_MAX || i == r->tail)
		return NULL;
	memcpy(r->tag, r->buf, i);
	r->tag[i] = '\0';
	return r->tag;
}

static void
skip_tail_add(struct mc_imap_reader *r, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (r->skip_len == sizeof(r->skip_tail)) {
			memmove(r->skip_tail, r->skip_tail + 16,
			        sizeof(r->skip_tail) - 16);
			r->skip_len -= 16;
		}
		r->skip_tail[r->skip_len++] = p[i];
	}
}

/* Drop the command framed so far (up to scan) and go on skipping. */
static void
refuse(struct mc_imap_reader *r, int state, uint64_t remaining)
{
	drop(r, r->scan);
	command_reset(r);
	r->state = state;
	r->remaining = remaining;
	r->skip_len = 0;
}

static int tokenize(struct mc_imap_reader *r, size_t end,
                    struct mc_imap_command *cmd,
                    const struct mc_imap_reply **reply_r);

/* A line of the command ends at buf[scan - 1] (its LF). Returns 1 and
 * fills *cmd when the command is complete, -1 on an error, 0 to go on. */
static int
line_end(struct mc_imap_reader *r, struct mc_imap_command *cmd,
         const struct mc_imap_reply **reply_r)
{
	size_t end = r->scan - 1;
	struct marker m;
	int ret = 0;

	if (end > r->seg && r->buf[end - 1] == '\r')
		end--;
	if (!r->in_quote)
		ret = marker_parse(r->buf + r->seg, end - r->seg, &m);
	r->in_quote = r->escape = false;
	if (ret < 0 && r->pending == NULL)
		r->pending = &reply_literal_size;
	if (ret == 1) {
		r->literal_octets += m.n;
		if (!m.sync && (m.n > r->limits.max_nonsync ||
		                r->literal_octets > r->limits.max_command)) {
			cmd->tag = save_tag(r);
			*reply_r = &reply_toobig_nonsync;
			refuse(r, ST_SKIP_LITERAL, m.n);
			return -1;
		}
		if (m.sync && (m.n > r->limits.max_literal ||
		               r->literal_octets > r->limits.max_command ||
		               r->pending != NULL)) {
			cmd->tag = save_tag(r);
			*reply_r = r->pending ? r->pending : &reply_toobig_sync;
			refuse(r, ST_LINE, 0);
			return -1;
		}
		r->state = ST_LITERAL;
		r->remaining = m.n;
		r->cont_pending = m.sync;
		return 0;
	}
	/* The command is complete. */
	if (r->pending != NULL) {
		cmd->tag = save_tag(r);
		*reply_r = r->pending;
		refuse(r, ST_LINE, 0);
		return -1;
	}
	if (r->line_octets <= 2 && end == 0) { /* blank line */
		refuse(r, ST_LINE, 0);
		return 0;
	}
	r->taken = r->scan;
	ret = tokenize(r, r->scan, cmd, reply_r);
	command_reset(r);
	return ret;
}

/* Frame command text. Returns as line_end. */
static int
frame_line(struct mc_imap_reader *r, struct mc_imap_command *cmd,
           const struct mc_imap_reply **reply_r)
{
	while (r->scan < r->tail) {
		char c = r->buf[r->scan];

		if (++r->line_octets > r->limits.max_line) {
			size_t from = r->scan - r->seg > sizeof(r->skip_tail)
			                      ? r->scan - sizeof(r->skip_tail)
			                      : r->seg;

			char keep[sizeof(r->skip_tail)];
			size_t klen = r->scan - from;
			bool quote = r->in_quote, escape = r->escape;

			/* Keep the line's tail across refuse(): a literal
			 * announcement at its end must still be seen. */
			memcpy(keep, r->buf + from, klen);
			cmd->tag = save_tag(r);
			*reply_r = &reply_toolong;
			refuse(r, ST_SKIP_LINE, 0);
			skip_tail_add(r, keep, klen);
			r->in_quote = quote;
			r->escape = escape;
			return -1;
		}
		r->scan++;
		if (c == '\0' && r->pending == NULL)
			r->pending = &reply_nul;
		if (c == '\n') {
			int ret = line_end(r, cmd, reply_r);

			if (ret != 0 || r->state != ST_LINE)
				return ret;
			continue;
		}
		quote_track(r, c);
	}
	return 0;
}

/* Drop octets of a refused command: the rest of a line, then past the
 * literals it announces. */
static void
frame_skip(struct mc_imap_reader *r)
{
	while (r->scan < r->tail) {
		if (r->state == ST_SKIP_LITERAL) {
			uint64_t k = r->tail - r->scan;

			if (k > r->remaining)
				k = r->remaining;
			r->scan += k;
			r->remaining -= k;
			if (r->remaining == 0) {
				r->state = ST_SKIP_LINE;
				r->skip_len = 0;
			}
			continue;
		}
		char c = r->buf[r->scan++];
		struct marker m;

		if (c != '\n') {
			skip_tail_add(r, &c, 1);
			quote_track(r, c);
			continue;
		}
		if (r->skip_len > 0 && r->skip_tail[r->skip_len - 1] == '\r')
			r->skip_len--;
		if (!r->in_quote &&
		    marker_parse(r->skip_tail, r->skip_len, &m) == 1 &&
		    !m.sync) {
			r->state = ST_SKIP_LITERAL;
			r->remaining = m.n;
		} else {
			r->state = ST_LINE;
		}
		r->skip_len = 0;
		r->in_quote = r->escape = false;
		if (r->state == ST_LINE)
			break;
	}
	drop(r, r->scan);
}

int
mc_imap_reader_next(struct mc_imap_reader *r, struct mc_imap_command *cmd_r,
                    const struct mc_imap_reply **reply_r)
{
	memset(cmd_r, 0, sizeof(*cmd_r));
	if (r->taken > 0) {
		drop(r, r->taken);
		r->taken = 0;
	}
	while (r->scan < r->tail) {
		int ret = 0;

		switch (r->state) {
		case ST_LINE:
			ret = frame_line(r, cmd_r, reply_r);
			break;
		case ST_LITERAL: {
			uint64_t k = r->tail - r->scan;

			if (k > r->remaining)
				k = r->remaining;
			r->scan += k;
			r->remaining -= k;
			if (r->remaining == 0) {
				r->state = ST_LINE;
				r->cont_pending = false;
				r->seg = r->scan;
			} else if (k > 0) {
				r->cont_pending = false;
			}
			break;
		}
		default:
			frame_skip(r);
			break;
		}
		if (ret != 0)
			return ret;
	}
	/* A zero-length literal at the end of the input is complete. */
	if (r->state == ST_LITERAL && r->remaining == 0 && !r->cont_pending) {
		r->state = ST_LINE;
		r->seg = r->scan;
	}
	return 0;
}

/* ---- tokenizer ---------------------------------------------------------- */

/* Tokens are NUL-terminated in place. The octet after a token is only
 * known to be a separator after it has been read, so the tokenizer saves
 * it before writing the NUL and reads it back through at(). */
struct tk {
	char *buf;
	size_t i, end; /* end: just after the command's last LF */
	size_t saved_pos;
	char saved;
	struct mc_imap_reader *r;
	unsigned ntok;
	unsigned stack[DEPTH_MAX];
	unsigned depth;
};

static char
at(const struct tk *t, size_t pos)
{
	return pos == t->saved_pos ? t->saved : t->buf[pos];
}

static void
terminate(struct tk *t, size_t pos)
{
	t->saved = t->buf[pos];
	t->saved_pos = pos;
	t->buf[pos] = '\0';
}

/* At the command's line end (CRLF or LF, then nothing)? */
static bool
at_end(const struct tk *t)
{
	char c = at(t, t->i);

	if (c == '\r')
		return t->i + 2 == t->end && at(t, t->i + 1) == '\n';
	return c == '\n' && t->i + 1 == t->end;
}

static bool
atom_char(unsigned char c)
{
	return c > 32 && c < 127 && strchr("(){\"\\", c) == NULL;
}

static struct mc_imap_token *
new_token(struct tk *t, enum mc_imap_token_type type)
{
	struct mc_imap_token *tok;

	if (t->ntok == t->r->limits.max_tokens)
		return NULL;
	tok = &t->r->tokens[t->ntok++];
	memset(tok, 0, sizeof(*tok));
	tok->type = type;
	if (t->depth > 0)
		t->r->tokens[t->stack[t->depth - 1]].items++;
	return tok;
}

/* An atom, a flag, or an atom with a [section] part. */
static const struct mc_imap_reply *
tok_atom(struct tk *t)
{
	size_t start = t->i, j = t->i;
	bool flag = at(t, j) == '\\', wild = false, bracket = false;
	struct mc_imap_token *tok;

	if (flag)
		j++;
	for (;;) {
		unsigned char c = (unsigned char)at(t, j);

		if (c == '[' && !flag) {
			bracket = true;
			while (j < t->end &&
			       (c = (unsigned char)at(t, j)) != ']') {
				if (c == '\r' || c == '\n' || c == '\0')
					return &reply_atom;
				j++;
			}
			j++;
			continue;
		}
		if (!atom_char(c) && !(flag && c == '*' && j == start + 1))
			break;
		if (c == '*' || c == '%')
			wild = true;
		j++;
	}
	if (j == start + (flag ? 1 : 0))
		return flag ? &reply_flag : &reply_atom;
	{
		unsigned char c = (unsigned char)at(t, j);

		if (c >= 127 || (c < 32 && c != '\r' && c != '\n'))
			return &reply_atom;
	}
	tok = new_token(t, flag ? MC_IMAP_FLAG : MC_IMAP_ATOM);
	if (tok == NULL)
		return &reply_tokens;
	tok->text = t->buf + start;
	tok->len = j - start;
	tok->wildcard = wild && !flag;
	tok->bracket = bracket;
	if (!flag && tok->len == 3 && strncasecmp(tok->text, "NIL", 3) == 0)
		tok->type = MC_IMAP_NIL;
	terminate(t, j);
	t->i = j;
	return NULL;
}

static const struct mc_imap_reply *
tok_quoted(struct tk *t)
{
	size_t j = t->i + 1, out = t->i + 1;
	struct mc_imap_token *tok;

	for (;;) {
		char c = at(t, j);

		if (c == '"')
			break;
		if (c == '\\') {
			c = at(t, ++j);
			if (c != '"' && c != '\\')
				return &reply_quoted;
		} else if (c == '\r' || c == '\n' || c == '\0') {
			return &reply_quoted;
		}
		t->buf[out++] = c;
		j++;
	}
	tok = new_token(t, MC_IMAP_QUOTED);
	if (tok == NULL)
		return &reply_tokens;
	tok->text = t->buf + t->i + 1;
	tok->len = out - (t->i + 1);
	t->buf[out] = '\0'; /* out <= j: the closing quote or before */
	t->i = j + 1;
	return NULL;
}

/* {n}, {n+} or ~{n}, then the line end, then n octets (the framer has
 * checked that they are all there). */
static const struct mc_imap_reply *
tok_literal(struct tk *t)
{
	size_t j = t->i;
	bool binary = false, sync = true;
	uint64_t n = 0;
	struct mc_imap_token *tok;

	if (at(t, j) == '~') {
		binary = true;
		j++;
	}
	if (at(t, j++) != '{')
		return &reply_literal;
	if (!(at(t, j) >= '0' && at(t, j) <= '9'))
		return &reply_literal;
	while (at(t, j) >= '0' && at(t, j) <= '9') {
		if (n > (UINT64_MAX - 9) / 10)
			return &reply_literal_size;
		n = n * 10 + (uint64_t)(at(t, j) - '0');
		j++;
	}
	if (at(t, j) == '+') {
		sync = false;
		j++;
	}
	if (at(t, j++) != '}')
		return &reply_literal;
	if (at(t, j) == '\r')
		j++;
	if (at(t, j++) != '\n')
		return &reply_literal;
	if (n >= t->end - j) /* at least a line end follows the octets */
		return &reply_literal;
	if (!binary && memchr(t->buf + j, '\0', n) != NULL)
		return &reply_literal_nul;
	tok = new_token(t, binary ? MC_IMAP_LITERAL8 : MC_IMAP_LITERAL);
	if (tok == NULL)
		return &reply_tokens;
	tok->text = t->buf + j;
	tok->len = n;
	tok->sync = sync;
	terminate(t, j + n);
	t->i = j + n;
	return NULL;
}

static const struct mc_imap_reply *
tok_open(struct tk *t)
{
	struct mc_imap_token *tok;

	if (t->depth == t->r->limits.max_depth)
		return &reply_depth;
	tok = new_token(t, MC_IMAP_LIST);
	if (tok == NULL)
		return &reply_tokens;
	tok->text = "";
	t->stack[t->depth++] = t->ntok - 1;
	t->i++;
	return NULL;
}

/* One argument, then its separator. */
static const struct mc_imap_reply *
tok_arg(struct tk *t)
{
	const struct mc_imap_reply *err;
	char c = at(t, t->i);

	if (c == '(') {
		if ((err = tok_open(t)) != NULL)
			return err;
		if (at(t, t->i) != ')')
			return NULL; /* no separator after "(" */
	} else if (c == '"')
		err = tok_quoted(t);
	else if (c == '{' || (c == '~' && at(t, t->i + 1) == '{'))
		err = tok_literal(t);
	else if (c == '\\' || atom_char((unsigned char)c))
		err = tok_atom(t);
	else if (c == ')')
		return &reply_space; /* "( )" or "x )" */
	else
		return (unsigned char)c >= 127 || c == '\0' ? &reply_atom
		                                            : &reply_space;
	if (err != NULL)
		return err;
	while (at(t, t->i) == ')') {
		if (t->depth == 0)
			return &reply_unbalanced;
		t->depth--;
		t->r->tokens[t->stack[t->depth]].count =
		        t->ntok - t->stack[t->depth] - 1;
		t->i++;
	}
	if (at_end(t))
		return NULL;
	if (at(t, t->i) != ' ')
		return &reply_space;
	t->i++;
	if (at_end(t) || at(t, t->i) == ')' || at(t, t->i) == ' ')
		return &reply_space;
	return NULL;
}

/* The tag or the command name: atom characters up to a space or the end.
 * Returns the length (0: none), NUL-terminated in place. */
static size_t
tok_word(struct tk *t, bool tag)
{
	size_t start = t->i, j = t->i;

	while (atom_char((unsigned char)at(t, j)) &&
	       !(tag && strchr("%*+", at(t, j)) != NULL))
		j++;
	if (j == start ||
	    (at(t, j) != ' ' && at(t, j) != '\r' && at(t, j) != '\n'))
		return 0;
	terminate(t, j);
	t->i = j;
	return j - start;
}

static void
upcase(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
}

/* The command name, with a UID prefix. Leaves t->i after it. */
static const struct mc_imap_reply *
tok_name(struct tk *t, struct mc_imap_command *cmd)
{
	size_t start = t->i;

	if (tok_word(t, false) == 0)
		return &reply_name;
	cmd->name = t->buf + start;
	upcase(t->buf + start);
	if (strcmp(cmd->name, "UID") != 0 || at_end(t))
		return NULL;
	if (at(t, t->i) != ' ')
		return &reply_name;
	start = ++t->i;
	if (tok_word(t, false) == 0)
		return &reply_name;
	cmd->uid = true;
	cmd->name = t->buf + start;
	upcase(t->buf + start);
	return NULL;
}

static int
tokenize(struct mc_imap_reader *r, size_t end, struct mc_imap_command *cmd,
         const struct mc_imap_reply **reply_r)
{
	struct tk t = {
	        .buf = r->buf, .end = end, .saved_pos = SIZE_MAX, .r = r};
	const struct mc_imap_reply *err = NULL;

	cmd->literal_octets = r->literal_octets;
	if (tok_word(&t, true) == 0 || t.i > TAG_MAX) {
		err = &reply_tag;
		goto fail;
	}
	cmd->tag = t.buf;
	if (at_end(&t) || at(&t, t.i) != ' ') {
		err = &reply_name;
		goto fail;
	}
	t.i++;
	if ((err = tok_name(&t, cmd)) != NULL)
		goto fail;
	if (!at_end(&t)) {
		if (at(&t, t.i) != ' ') {
			err = &reply_name;
			goto fail;
		}
		t.i++;
		if (at_end(&t)) {
			err = &reply_space;
			goto fail;
		}
		do {
			if ((err = tok_arg(&t)) != NULL)
				goto fail;
		} while (!at_end(&t));
	}
	if (t.depth != 0) {
		err = &reply_unbalanced;
		goto fail;
	}
	cmd->args = r->tokens;
	cmd->nargs = t.ntok;
	return 1;
fail:
	*reply_r = err;
	return -1;
}

/* ---- helpers ------------------------------------------------------------ */

bool
mc_imap_token_is(const struct mc_imap_token *t, const char *word)
{
	size_t n = strlen(word);

	return (t->type == MC_IMAP_ATOM || t->type == MC_IMAP_NIL) &&
	       t->len == n && strncasecmp(t->text, word, n) == 0;
}

bool
mc_imap_token_astring(const struct mc_imap_token *t)
{
	return t->type == MC_IMAP_ATOM || t->type == MC_IMAP_NIL ||
	       t->type == MC_IMAP_QUOTED || t->type == MC_IMAP_LITERAL;
}

bool
mc_imap_parse_u64(const char *s, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*v_r = v;
	return true;
}

bool
mc_imap_parse_u32(const char *s, size_t len, uint32_t *v_r)
{
	uint64_t v;

	if (len > 10 || !mc_imap_parse_u64(s, len, &v) || v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

/* One seq-number: nz-number or "*". */
static bool
seq_number(const char *s, size_t len, uint32_t *v_r)
{
	if (len == 1 && s[0] == '*') {
		*v_r = MC_IMAP_SEQ_STAR;
		return true;
	}
	return s[0] != '0' && mc_imap_parse_u32(s, len, v_r) && *v_r != 0 &&
	       *v_r != MC_IMAP_SEQ_STAR;
}

int
mc_imap_seqset_parse(const char *s, size_t len, struct mc_imap_range *ranges,
                     size_t max, size_t *n_r, const char **error_r)
{
	size_t n = 0, i = 0;

	if (len == 0)
		goto fail;
	while (i <= len) {
		size_t j = i, colon = SIZE_MAX;
		uint32_t lo, hi;

		while (j < len && s[j] != ',') {
			if (s[j] == ':') {
				if (colon != SIZE_MAX)
					goto fail;
				colon = j;
			}
			j++;
		}
		if (j == i || n == max)
			goto fail;
		if (colon == SIZE_MAX) {
			if (!seq_number(s + i, j - i, &lo))
				goto fail;
			hi = lo;
		} else if (colon == i || colon + 1 == j ||
		           !seq_number(s + i, colon - i, &lo) ||
		           !seq_number(s + colon + 1, j - colon - 1, &hi)) {
			goto fail;
		}
		ranges[n].lo = lo < hi ? lo : hi;
		ranges[n].hi = lo < hi ? hi : lo;
		n++;
		i = j + 1;
	}
	*n_r = n;
	return 0;
fail:
	*error_r = n == max && i < len ? "Sequence set too long"
	                               : "Invalid sequence set";
	return -1;
}

void
mc_imap_seqset_resolve(struct mc_imap_range *ranges, size_t n, uint32_t largest)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t lo = ranges[i].lo, hi = ranges[i].hi;

		if (lo == MC_IMAP_SEQ_STAR)
			lo = largest;
		if (hi == MC_IMAP_SEQ_STAR)
			hi = largest;
		ranges[i].lo = lo < hi ? lo : hi;
		ranges[i].hi = lo < hi ? hi : lo;
	}
}
