/* The pure pieces of the SMTP/LMTP client (see smtp_client.h): the
 * bounded, resumable reply parser, EHLO capability parsing and the
 * dot-stuffer. No I/O, no libuv, no global state; the session in
 * smtp_client.c drives them, smtp_client_wire_test.c checks them table by
 * table and byte by byte, fuzz/smtp_reply_fuzz.c with hostile bytes. */
#include "smtp_client.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* ---- Replies ----------------------------------------------------------- */

void
mc_smtp_client_reply_init(struct mc_smtp_client_reply_parser *p,
                          const struct mc_smtp_client_reply_limits *limits)
{
	memset(p, 0, sizeof(*p));
	p->max_line = limits != NULL ? limits->max_line : 0;
	p->max_lines = limits != NULL ? limits->max_lines : 0;
	if (p->max_line == 0)
		p->max_line = MC_SMTP_CLIENT_REPLY_LINE_DEFAULT;
	if (p->max_line < MC_SMTP_CLIENT_REPLY_LINE_MIN)
		p->max_line = MC_SMTP_CLIENT_REPLY_LINE_MIN;
	if (p->max_lines == 0)
		p->max_lines = MC_SMTP_CLIENT_REPLY_LINES_DEFAULT;
	p->line = mc_malloc(p->max_line);
}

void
mc_smtp_client_reply_fini(struct mc_smtp_client_reply_parser *p)
{
	free(p->line);
	free(p->text);
	memset(p, 0, sizeof(*p));
}

void
mc_smtp_client_reply_reset(struct mc_smtp_client_reply_parser *p)
{
	p->line_len = 0;
	p->text_len = 0;
	p->code = 0;
	p->lines = 0;
}

/* Length of an enhanced status code "c.s.d" of class cls at s (1..3
 * digits for subject and detail, RFC 3463), followed by a space or the
 * end; 0 when there is none. */
static size_t
enhanced_len(const char *s, size_t len, char cls)
{
	size_t i = 0, digits;

	if (len < 5 || s[0] != cls || s[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		for (digits = 0; i < len && isdigit((unsigned char)s[i]);
		     i++, digits++)
			;
		if (digits == 0 || digits > 3)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	return i == len || s[i] == ' ' ? i : 0;
}

static void
text_append(struct mc_smtp_client_reply_parser *p, const char *s, size_t len)
{
	size_t need = p->text_len + len + 2;

	if (need > p->text_cap) {
		p->text_cap = need < 256 ? 256 : need * 2;
		p->text = mc_realloc(p->text, p->text_cap);
	}
	if (p->lines > 0)
		p->text[p->text_len++] = '\n';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		p->text[p->text_len++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	p->text[p->text_len] = '\0';
}

static int
parse_fail(struct mc_smtp_client_reply_parser *p, const char *error)
{
	p->failed = true;
	p->error = error;
	return -1;
}

/* One complete line (without its LF): 1 when it ends the reply. */
static int
take_line(struct mc_smtp_client_reply_parser *p)
{
	char *s = p->line;
	size_t len = p->line_len, elen;
	unsigned code;
	bool last;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (len < 3 || s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' ||
	    !isdigit((unsigned char)s[2]))
		return parse_fail(p, "malformed reply code");
	if (len > 3 && s[3] != ' ' && s[3] != '-')
		return parse_fail(p, "malformed reply separator");
	code = (unsigned)(s[0] - '0') * 100 + (unsigned)(s[1] - '0') * 10 +
	       (unsigned)(s[2] - '0');
	if (p->lines > 0 && code != p->code)
		return parse_fail(p, "reply code changes within a reply");
	if (p->lines >= p->max_lines)
		return parse_fail(p, "reply has too many lines");
	last = len == 3 || s[3] == ' ';
	s += len > 3 ? 4 : 3;
	len -= len > 3 ? 4 : 3;
	elen = enhanced_len(s, len, (char)('0' + code / 100));
	if (p->lines == 0) {
		p->code = code;
		memcpy(p->reply.enhanced, s, elen);
		p->reply.enhanced[elen] = '\0';
	}
	if (elen > 0) {
		s += elen;
		len -= elen;
		if (len > 0) /* the space after it */
			s++, len--;
	}
	text_append(p, s, len);
	p->lines++;
	return last ? 1 : 0;
}

int
mc_smtp_client_reply_parse(struct mc_smtp_client_reply_parser *p,
                           const void *data, size_t len, size_t *used_r,
                           const struct mc_smtp_client_reply **reply_r,
                           const char **error_r)
{
	const char *in = data;
	size_t i = 0;
	int r;

	*used_r = 0;
	if (p->failed) {
		*error_r = p->error;
		return -1;
	}
	while (i < len) {
		const char *lf = memchr(in + i, '\n', len - i);
		size_t n = lf != NULL ? (size_t)(lf - (in + i)) : len - i;

		/* Without its LF a line may hold max_line - 1 octets. */
		if (n > p->max_line - 1 - p->line_len) {
			*error_r = "reply line too long";
			return parse_fail(p, *error_r);
		}
		memcpy(p->line + p->line_len, in + i, n);
		p->line_len += n;
		i += n;
		if (lf == NULL)
			break;
		i++; /* the LF */
		r = take_line(p);
		p->line_len = 0;
		if (r < 0) {
			*error_r = p->error;
			return -1;
		}
		if (r == 1) {
			p->reply.code = p->code;
			p->reply.text = p->text;
			p->reply.lines = p->lines;
			p->lines = 0;
			p->text_len = 0;
			*reply_r = &p->reply;
			*used_r = i;
			return 1;
		}
	}
	*used_r = i;
	return 0;
}

void
mc_smtp_client_reply_oneline(const struct mc_smtp_client_reply *reply,
                             char *buf, size_t size)
{
	size_t n = 0;

	if (size == 0)
		return;
	for (const char *s = reply->text; *s != '\0' && n + 1 < size; s++)
		buf[n++] = *s == '\n' ? ' ' : *s;
	buf[n] = '\0';
}

/* ---- EHLO capabilities ------------------------------------------------- */

static const struct {
	const char *name;
	unsigned ext;
} ext_names[] = {
        {"PIPELINING", MC_SMTP_CLIENT_EXT_PIPELINING},
        {"SIZE", MC_SMTP_CLIENT_EXT_SIZE},
        {"8BITMIME", MC_SMTP_CLIENT_EXT_8BITMIME},
        {"SMTPUTF8", MC_SMTP_CLIENT_EXT_SMTPUTF8},
        {"STARTTLS", MC_SMTP_CLIENT_EXT_STARTTLS},
        {"ENHANCEDSTATUSCODES", MC_SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES},
        {"AUTH", MC_SMTP_CLIENT_EXT_AUTH},
        {"DSN", MC_SMTP_CLIENT_EXT_DSN},
        {"CHUNKING", MC_SMTP_CLIENT_EXT_CHUNKING},
};

/* Append the mechanisms in args (space separated) to caps->auth. */
static void
caps_auth(struct mc_smtp_client_caps *caps, const char *args, size_t len)
{
	size_t n = strlen(caps->auth), i = 0;

	while (i < len) {
		size_t start, wlen;

		while (i < len && args[i] == ' ')
			i++;
		start = i;
		while (i < len && args[i] != ' ')
			i++;
		wlen = i - start;
		if (wlen == 0 || n + (n > 0) + wlen + 1 > sizeof(caps->auth))
			continue;
		if (n > 0)
			caps->auth[n++] = ' ';
		for (size_t k = 0; k < wlen; k++)
			caps->auth[n++] =
			        (char)toupper((unsigned char)args[start + k]);
		caps->auth[n] = '\0';
	}
}

static uint64_t
parse_size(const char *s, size_t len)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < len && s[i] == ' ')
		i++;
	for (; i < len && isdigit((unsigned char)s[i]); i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return 0; /* absurd: treat as no limit */
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

static void
caps_line(struct mc_smtp_client_caps *caps, const char *s, size_t len)
{
	size_t kw = 0;

	while (kw < len && s[kw] != ' ' && s[kw] != '=')
		kw++;
	for (size_t i = 0; i < sizeof(ext_names) / sizeof(ext_names[0]); i++) {
		if (strlen(ext_names[i].name) != kw ||
		    strncasecmp(ext_names[i].name, s, kw) != 0)
			continue;
		caps->ext |= ext_names[i].ext;
		if (ext_names[i].ext == MC_SMTP_CLIENT_EXT_SIZE && kw < len)
			caps->size_max = parse_size(s + kw + 1, len - kw - 1);
		if (ext_names[i].ext == MC_SMTP_CLIENT_EXT_AUTH && kw < len)
			caps_auth(caps, s + kw + 1, len - kw - 1);
		return;
	}
}

void
mc_smtp_client_caps_parse(const struct mc_smtp_client_reply *ehlo,
                          struct mc_smtp_client_caps *caps_r)
{
	const char *s = ehlo->text, *nl;

	memset(caps_r, 0, sizeof(*caps_r));
	/* The first line is the server's name and greeting. */
	while ((nl = strchr(s, '\n')) != NULL) {
		const char *line = nl + 1;

		nl = strchr(line, '\n');
		caps_line(caps_r, line,
		          nl != NULL ? (size_t)(nl - line) : strlen(line));
		s = line;
	}
}

/* ---- Dot-stuffing ------------------------------------------------------ */

size_t
mc_smtp_client_stuff(struct mc_smtp_client_stuffer *s, const void *in,
                     size_t len, size_t *used_r, char *out, size_t out_size)
{
	const unsigned char *p = in;
	size_t i = 0, n = 0;

	for (; i < len && n + 2 <= out_size; i++) {
		unsigned char c = p[i];

		if (c == '.' && !s->mid_line)
			out[n++] = '.';
		else if (c == '\n' && !s->cr)
			out[n++] = '\r';
		out[n++] = (char)c;
		s->mid_line = c != '\n';
		s->cr = c == '\r';
	}
	*used_r = i;
	return n;
}

size_t
mc_smtp_client_stuff_end(struct mc_smtp_client_stuffer *s, char *out)
{
	size_t n = 0;

	if (s->mid_line) {
		if (!s->cr)
			out[n++] = '\r';
		out[n++] = '\n';
	}
	memcpy(out + n, ".\r\n", 3);
	s->mid_line = false;
	s->cr = false;
	return n + 3;
}

/* ---- Names ------------------------------------------------------------- */

const char *
mc_smtp_client_outcome_name(enum mc_smtp_client_outcome outcome)
{
	switch (outcome) {
	case MC_SMTP_CLIENT_DELIVERED:
		return "delivered";
	case MC_SMTP_CLIENT_TEMPFAIL:
		return "tempfail";
	case MC_SMTP_CLIENT_PERMFAIL:
		return "permfail";
	}
	return "?";
}

const char *
mc_smtp_client_status_name(enum mc_smtp_client_status status)
{
	static const char *const names[] = {
	        "ok",       "connect", "tls",         "timeout", "closed",
	        "protocol", "refused", "unsupported", "local",   "auth",
	};

	if ((unsigned)status < sizeof(names) / sizeof(names[0]))
		return names[status];
	return "?";
}
