/* The SMTP command grammar (see smtp_parser.h): verb table, MAIL/RCPT
 * paths per RFC 5321 4.1.2 (with RFC 6531 UTF-8), ESMTP parameters (SIZE
 * RFC 1870, BODY RFC 6152/3030, SMTPUTF8 RFC 6531, RET/ENVID/NOTIFY/ORCPT
 * RFC 3461, AUTH RFC 4954) and the reply for each way a line can be wrong.
 *
 * The parser works in place on the line the reader handed out: it writes
 * NULs where tokens end and points into the line, so a command costs no
 * allocation and no copy. Character classes are spelled out rather than
 * taken from <ctype.h>, whose answers for bytes >= 0x80 depend on the
 * locale. It is strict where ambiguity could be abused (paths, parameter
 * syntax) and lenient where clients are sloppy and nothing is at stake (a
 * space after "FROM:", trailing blanks, case). */
#include "smtp_parser.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#define R(code, enh, text)                                                     \
	(&(const struct mc_smtp_reply){(code), (enh), (text)})

/* clang-format off */
static const struct mc_smtp_reply *const r_unknown =
	R(500, "5.5.1", "Command unrecognized");
static const struct mc_smtp_reply *const r_control =
	R(500, "5.5.2", "Control character in command");
static const struct mc_smtp_reply *const r_utf8 =
	R(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
static const struct mc_smtp_reply *const r_param_unknown =
	R(555, "5.5.4", "Unsupported parameter");
static const struct mc_smtp_reply *const r_param_dup =
	R(555, "5.5.4", "Duplicate parameter");
static const struct mc_smtp_reply *const r_param_syntax =
	R(555, "5.5.4", "Malformed parameter");
/* clang-format on */

/* ---- character classes -------------------------------------------------- */

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/* RFC 5322 3.2.3 atext. */
static bool
is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool
in_range(unsigned char c, unsigned char lo, unsigned char hi)
{
	return c >= lo && c <= hi;
}

/* Length of the well-formed UTF-8 sequence for one non-ASCII character at
 * s (RFC 3629: no overlongs, surrogates or code points past U+10FFFF), or
 * 0. Never reads past a NUL: a NUL is not a continuation byte. */
static size_t
utf8_len(const unsigned char *s)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0; /* continuation byte, C0/C1 overlong, or past F4 */
	/* The second byte's range rules out the remaining overlongs (E0,
	 * F0), the surrogates (ED) and code points past U+10FFFF (F4). */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (!in_range(s[1], lo, hi))
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (!in_range(s[i], 0x80, 0xbf))
			return 0;
	}
	return n;
}

/* 1*20 digits into a uint64_t, overflow-checked; the whole string. */
static int
parse_u64(const char *s, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; is_digit((unsigned char)s[i]); i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (i == 0 || s[i] != '\0')
		return -1;
	*v_r = v;
	return 0;
}

/* ---- paths -------------------------------------------------------------- */

enum path_result {
	PATH_OK = 0,
	PATH_BAD,  /* bad address syntax */
	PATH_LONG, /* over MC_SMTP_PATH_MAX */
};

/* Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]
 * (RFC 5321 4.1.2), plus U-labels (RFC 6531). Returns the end, or NULL. */
static char *
skip_domain(char *p, bool *utf8)
{
	char *start = p;

	for (;;) {
		char *label = p;
		bool ascii = true;

		for (;;) {
			unsigned char c = (unsigned char)*p;
			size_t n;

			if (is_alpha(c) || is_digit(c) || c == '-') {
				p++;
			} else if (c >= 0x80 && (n = utf8_len((void *)p)) > 0) {
				p += n;
				*utf8 = true;
				ascii = false;
			} else {
				break;
			}
		}
		if (p == label || *label == '-' || p[-1] == '-')
			return NULL;
		/* RFC 1035 2.3.4: 63 octets. For a U-label the limit is
		 * on its A-label form, which is not computed here. */
		if (ascii && p - label > 63)
			return NULL;
		if (*p != '.')
			break;
		p++;
	}
	return p - start > 255 ? NULL : p;
}

/* Snum "." Snum "." Snum "." Snum, Snum = 1*3DIGIT of value 0..255. */
static bool
ipv4_valid(const char *s)
{
	for (int i = 0; i < 4; i++) {
		unsigned v = 0, n = 0;

		while (is_digit((unsigned char)*s) && n < 4) {
			v = v * 10 + (unsigned)(*s++ - '0');
			n++;
		}
		if (n == 0 || n > 3 || v > 255)
			return false;
		if (*s != (i < 3 ? '.' : '\0'))
			return false;
		s++;
	}
	return true;
}

/* "[" IPv4 "]" or "[IPv6:" IPv6-addr "]". General address literals
 * (Standardized-tag ":" dcontent) have no registered tag besides IPv6 and
 * are refused. p is at '['; returns the position after ']', or NULL. */
static char *
skip_literal(char *p)
{
	char text[INET6_ADDRSTRLEN + 1];
	struct in6_addr a6;
	char *close = strchr(p, ']');
	size_t n;

	if (close == NULL)
		return NULL;
	p++;
	n = (size_t)(close - p);
	if (n > 5 && strncasecmp(p, "IPv6:", 5) == 0) {
		if (n - 5 >= sizeof(text))
			return NULL;
		memcpy(text, p + 5, n - 5);
		text[n - 5] = '\0';
		return inet_pton(AF_INET6, text, &a6) == 1 ? close + 1 : NULL;
	}
	if (n >= sizeof(text))
		return NULL;
	memcpy(text, p, n);
	text[n] = '\0';
	return ipv4_valid(text) ? close + 1 : NULL;
}

/* Quoted-string (RFC 5321 4.1.2, qtextSMTP with RFC 6531 UTF-8); p is at
 * the opening quote. Returns the position after the closing one, or NULL. */
static char *
skip_quoted(char *p, bool *utf8)
{
	for (p++;;) {
		unsigned char c = (unsigned char)*p;
		size_t n;

		if (c == '"')
			return p + 1;
		if (c == '\\') {
			if (!in_range((unsigned char)p[1], 32, 126))
				return NULL;
			p += 2;
		} else if (c >= 0x80) {
			if ((n = utf8_len((void *)p)) == 0)
				return NULL;
			*utf8 = true;
			p += n;
		} else if (c >= 32 && c <= 126) {
			p++;
		} else {
			return NULL; /* includes the end of the line */
		}
	}
}

/* Dot-string = Atom *("." Atom), atext plus RFC 6531 UTF-8. */
static char *
skip_dot_string(char *p, bool *utf8)
{
	for (;;) {
		char *atom = p;

		for (;;) {
			size_t n;

			if (is_atext((unsigned char)*p)) {
				p++;
			} else if ((unsigned char)*p >= 0x80 &&
			           (n = utf8_len((void *)p)) > 0) {
				*utf8 = true;
				p += n;
			} else {
				break;
			}
		}
		if (p == atom)
			return NULL;
		if (*p != '.')
			return p;
		p++;
	}
}

/* A-d-l ":" (a legacy source route, RFC 5321 4.1.2 and appendix C): parsed
 * for syntax and ignored. p is at the first '@'. */
static char *
skip_source_route(char *p, bool *utf8)
{
	for (;;) {
		if (*p != '@' || (p = skip_domain(p + 1, utf8)) == NULL)
			return NULL;
		if (*p == ':')
			return p + 1;
		if (*p != ',')
			return NULL;
		p++;
	}
}

/* The mailbox (or Postmaster) after '<' and any source route. */
static enum path_result
parse_mailbox(char *p, bool rcpt, bool routed, struct mc_smtp_path *path,
              char **gt_r)
{
	path->mailbox = p;
	path->quoted = *p == '"';
	p = path->quoted ? skip_quoted(p, &path->utf8)
	                 : skip_dot_string(p, &path->utf8);
	if (p == NULL)
		return PATH_BAD;
	path->local_len = (size_t)(p - path->mailbox);
	if (*p == '>') {
		/* RFC 5321 4.1.1.3: "<Postmaster>" needs no domain. */
		if (!rcpt || routed || path->quoted || path->local_len != 10 ||
		    strncasecmp(path->mailbox, "postmaster", 10) != 0)
			return PATH_BAD;
		path->postmaster = true;
		path->domain = p; /* "" once the '>' is cut */
		*gt_r = p;
		return PATH_OK;
	}
	if (*p++ != '@')
		return PATH_BAD;
	path->domain = p;
	path->literal = *p == '[';
	p = path->literal ? skip_literal(p) : skip_domain(p, &path->utf8);
	if (p == NULL || *p != '>')
		return PATH_BAD;
	*gt_r = p;
	return PATH_OK;
}

/* Path = "<" [ A-d-l ":" ] Mailbox ">", or "<>" for MAIL. p is at '<';
 * on success the '>' becomes the mailbox's NUL and *end_r is after it. */
static enum path_result
parse_path(char *p, bool rcpt, struct mc_smtp_path *path, char **end_r)
{
	char *lt = p, *gt;
	bool routed = false;
	enum path_result ret;

	p++;
	if (*p == '>') {
		if (rcpt)
			return PATH_BAD;
		path->null = true;
		path->mailbox = path->domain = p;
		*p = '\0';
		*end_r = p + 1;
		return PATH_OK;
	}
	if (*p == '@') {
		if ((p = skip_source_route(p, &path->utf8)) == NULL)
			return PATH_BAD;
		routed = true;
	}
	ret = parse_mailbox(p, rcpt, routed, path, &gt);
	if (ret != PATH_OK)
		return ret;
	if (gt - lt + 1 > MC_SMTP_PATH_MAX)
		return PATH_LONG;
	*gt = '\0';
	*end_r = gt + 1;
	return PATH_OK;
}

/* ---- ESMTP parameters --------------------------------------------------- */

/* xtext (RFC 3461 4): xchar = %d33-42 / %d44-60 / %d62-126 ("+" and "="
 * excluded), hexchar = "+" 2HEXDIG. Lower-case hex is tolerated. With
 * utf8, RFC 6533's unitext also allows UTF-8 characters. RFC 3461 limits
 * the value before encoding, so max counts decoded characters. */
static bool
xtext_valid(const char *s, size_t max, bool utf8)
{
	size_t chars = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; chars++) {
		unsigned char c = (unsigned char)*s;
		size_t n;

		if (c == '+') {
			if (!is_hex((unsigned char)s[1]) ||
			    !is_hex((unsigned char)s[2]))
				return false;
			s += 3;
		} else if (c >= 33 && c <= 126 && c != '=') {
			s++;
		} else if (utf8 && c >= 0x80 && (n = utf8_len((void *)s)) > 0) {
			s += n;
		} else {
			return false;
		}
	}
	return chars <= max;
}

static int
param_size(struct mc_smtp_params *o, char *v, bool utf8)
{
	if (v == NULL || parse_u64(v, &o->size) < 0)
		return -1;
	o->has_size = true;
	return 0;
}

static int
param_body(struct mc_smtp_params *o, char *v, bool utf8)
{
	if (v == NULL)
		return -1;
	if (strcasecmp(v, "7BIT") == 0)
		o->body = MC_SMTP_BODY_7BIT;
	else if (strcasecmp(v, "8BITMIME") == 0)
		o->body = MC_SMTP_BODY_8BITMIME;
	else if (strcasecmp(v, "BINARYMIME") == 0)
		o->body = MC_SMTP_BODY_BINARYMIME;
	else
		return -1;
	return 0;
}

static int
param_smtputf8(struct mc_smtp_params *o, char *v, bool utf8)
{
	if (v != NULL)
		return -1;
	o->smtputf8 = true;
	return 0;
}

static int
param_ret(struct mc_smtp_params *o, char *v, bool utf8)
{
	if (v == NULL)
		return -1;
	if (strcasecmp(v, "FULL") == 0)
		o->ret = MC_SMTP_RET_FULL;
	else if (strcasecmp(v, "HDRS") == 0)
		o->ret = MC_SMTP_RET_HDRS;
	else
		return -1;
	return 0;
}

static int
param_envid(struct mc_smtp_params *o, char *v, bool utf8)
{
	/* RFC 3461 4.4: at most 100 characters. */
	if (v == NULL || !xtext_valid(v, 100, false))
		return -1;
	o->envid = v;
	return 0;
}

static int
param_auth(struct mc_smtp_params *o, char *v, bool utf8)
{
	/* RFC 4954 5: an xtext addr-spec, bounded by the line length. */
	if (v == NULL ||
	    (strcmp(v, "<>") != 0 && !xtext_valid(v, SIZE_MAX, false)))
		return -1;
	o->auth = v;
	return 0;
}

/* NOTIFY=NEVER, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461). */
static int
param_notify(struct mc_smtp_params *o, char *v, bool utf8)
{
	static const struct {
		const char *name;
		unsigned bit;
	} kw[] = {
	        {"NEVER", MC_SMTP_NOTIFY_NEVER},
	        {"SUCCESS", MC_SMTP_NOTIFY_SUCCESS},
	        {"FAILURE", MC_SMTP_NOTIFY_FAILURE},
	        {"DELAY", MC_SMTP_NOTIFY_DELAY},
	};
	unsigned bits = 0;

	if (v == NULL)
		return -1;
	for (;;) {
		size_t n = strcspn(v, ",");
		unsigned bit = 0;

		for (size_t k = 0; k < sizeof(kw) / sizeof(kw[0]); k++) {
			if (strlen(kw[k].name) == n &&
			    strncasecmp(v, kw[k].name, n) == 0)
				bit = kw[k].bit;
		}
		if (bit == 0)
			return -1;
		bits |= bit;
		if (v[n] == '\0')
			break;
		v += n + 1;
	}
	if ((bits & MC_SMTP_NOTIFY_NEVER) != 0 && bits != MC_SMTP_NOTIFY_NEVER)
		return -1;
	o->notify = bits;
	return 0;
}

/* ORCPT=addr-type ";" xtext, addr-type an atom; the address at most 500
 * characters before encoding (RFC 3461 4.2). */
static int
param_orcpt(struct mc_smtp_params *o, char *v, bool utf8)
{
	char *semi, *p;

	if (v == NULL || (semi = strchr(v, ';')) == NULL)
		return -1;
	for (p = v; p < semi; p++) {
		if (!is_atext((unsigned char)*p))
			return -1;
	}
	if (p == v || !xtext_valid(semi + 1, 500, utf8))
		return -1;
	*semi = '\0';
	o->orcpt_type = v;
	o->orcpt = semi + 1;
	return 0;
}

struct param_def {
	const char *name;
	enum mc_smtp_verb verb; /* the command it belongs to */
	int (*parse)(struct mc_smtp_params *out, char *value, bool utf8);
	const struct mc_smtp_reply *bad;
};

/* clang-format off */
static const struct param_def param_defs[] = {
	{"SIZE", MC_SMTP_MAIL, param_size,
	 R(555, "5.5.4", "Invalid SIZE parameter")},
	{"BODY", MC_SMTP_MAIL, param_body,
	 R(555, "5.5.4", "Invalid BODY parameter")},
	{"SMTPUTF8", MC_SMTP_MAIL, param_smtputf8,
	 R(555, "5.5.4", "SMTPUTF8 takes no value")},
	{"RET", MC_SMTP_MAIL, param_ret,
	 R(555, "5.5.4", "Invalid RET parameter")},
	{"ENVID", MC_SMTP_MAIL, param_envid,
	 R(555, "5.5.4", "Invalid ENVID parameter")},
	{"AUTH", MC_SMTP_MAIL, param_auth,
	 R(555, "5.5.4", "Invalid AUTH parameter")},
	{"NOTIFY", MC_SMTP_RCPT, param_notify,
	 R(555, "5.5.4", "Invalid NOTIFY parameter")},
	{"ORCPT", MC_SMTP_RCPT, param_orcpt,
	 R(555, "5.5.4", "Invalid ORCPT parameter")},
};
/* clang-format on */

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"). */
static bool
keyword_valid(const char *s)
{
	if (!is_alpha((unsigned char)*s) && !is_digit((unsigned char)*s))
		return false;
	for (s++; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (!is_alpha(c) && !is_digit(c) && c != '-')
			return false;
	}
	return true;
}

/* esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 too under RFC 6531. */
static bool
value_valid(const char *s, bool utf8)
{
	if (*s == '\0')
		return false;
	while (*s != '\0') {
		unsigned char c = (unsigned char)*s;
		size_t n;

		if (c >= 33 && c <= 126 && c != '=')
			s++;
		else if (utf8 && c >= 0x80 && (n = utf8_len((void *)s)) > 0)
			s += n;
		else
			return false;
	}
	return true;
}

/* One "keyword[=value]" token, already NUL-terminated. */
static int
parse_param(char *kw, enum mc_smtp_verb verb, bool utf8, unsigned *seen,
            struct mc_smtp_params *out, const struct mc_smtp_reply **reply_r)
{
	char *value = strchr(kw, '=');
	size_t i;

	if (value != NULL)
		*value++ = '\0';
	if (!keyword_valid(kw) ||
	    (value != NULL && !value_valid(value, utf8))) {
		*reply_r = r_param_syntax;
		return -1;
	}
	for (i = 0; i < sizeof(param_defs) / sizeof(param_defs[0]); i++) {
		if (param_defs[i].verb == verb &&
		    strcasecmp(param_defs[i].name, kw) == 0)
			break;
	}
	if (i == sizeof(param_defs) / sizeof(param_defs[0])) {
		*reply_r = r_param_unknown;
		return -1;
	}
	if ((*seen & (1u << i)) != 0) {
		*reply_r = r_param_dup;
		return -1;
	}
	*seen |= 1u << i;
	if (param_defs[i].parse(out, value, utf8) < 0) {
		*reply_r = param_defs[i].bad;
		return -1;
	}
	return 0;
}

/* Mail-parameters / Rcpt-parameters: esmtp-param *(SP esmtp-param). */
static int
parse_params(char *p, enum mc_smtp_verb verb, bool utf8,
             struct mc_smtp_params *out, const struct mc_smtp_reply **reply_r)
{
	unsigned seen = 0;

	for (;;) {
		char *kw;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		kw = p;
		while (*p != '\0' && *p != ' ')
			p++;
		if (*p == ' ')
			*p++ = '\0';
		if (parse_param(kw, verb, utf8, &seen, out, reply_r) < 0)
			return -1;
	}
}

/* ---- verbs -------------------------------------------------------------- */

struct verb_def;
typedef int verb_parse_fn(struct mc_smtp_cmd *cmd, char *args, unsigned flags,
                          const struct verb_def *def,
                          const struct mc_smtp_reply **reply_r);

struct verb_def {
	const char *name;
	enum mc_smtp_verb verb;
	verb_parse_fn *parse;
	const struct mc_smtp_reply *syntax; /* the verb's own 501 */
};

/* DATA, RSET, QUIT, STARTTLS: nothing may follow. */
static int
verb_bare(struct mc_smtp_cmd *cmd, char *args, unsigned flags,
          const struct verb_def *def, const struct mc_smtp_reply **reply_r)
{
	if (args == NULL)
		return 0;
	*reply_r = def->syntax;
	return -1;
}

/* HELO, EHLO, LHLO: a name, ASCII (the client cannot know yet whether
 * SMTPUTF8 is on offer). Whether it is a valid host name is policy. */
static int
verb_hello(struct mc_smtp_cmd *cmd, char *args, unsigned flags,
           const struct verb_def *def, const struct mc_smtp_reply **reply_r)
{
	if (args == NULL)
		goto fail;
	for (const char *p = args; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80)
			goto fail;
	}
	cmd->arg = args;
	return 0;
fail:
	*reply_r = def->syntax;
	return -1;
}

/* VRFY, EXPN: a string is required; the server answers without looking
 * it up, so it is not parsed further. */
static int
verb_string(struct mc_smtp_cmd *cmd, char *args, unsigned flags,
            const struct verb_def *def, const struct mc_smtp_reply **reply_r)
{
	if (args == NULL) {
		*reply_r = def->syntax;
		return -1;
	}
	cmd->arg = args;
	return 0;
}

/* NOOP, HELP: an optional string, ignored by the server. */
static int
verb_optional(struct mc_smtp_cmd *cmd, char *args, unsigned flags,
              const struct verb_def *def, const struct mc_smtp_reply **reply_r)
{
	cmd->arg = args;
	return 0;
}

/* AUTH mechanism [initial-response] (RFC 4954 4): a SASL mechanism name
 * (RFC 4422 3.1: 1*20 of A-Z 0-9 - _), then base64 or "=". */
static int
verb_auth(struct mc_smtp_cmd *cmd, char *args, unsigned flags,
          const struct verb_def *def, const struct mc_smtp_reply **reply_r)
{
	char *p = args, *init = NULL;

	if (args == NULL)
		goto fail;
	for (; *p != '\0' && *p != ' '; p++) {
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
		if (!is_alpha((unsigned char)*p) &&
		    !is_digit((unsigned char)*p) && *p != '-' && *p != '_')
			goto fail;
	}
	if (p - args > 20)
		goto fail;
	if (*p == ' ') {
		*p++ = '\0';
		while (*p == ' ')
			p++;
		init = p;
		for (; *p != '\0'; p++) {
			if (!is_alpha((unsigned char)*p) &&
			    !is_digit((unsigned char)*p) && *p != '+' &&
			    *p != '/' && *p != '=')
				goto fail;
		}
	}
	cmd->arg = args;
	cmd->auth_initial = init;
	return 0;
fail:
	*reply_r = def->syntax;
	return -1;
}

/* BDAT chunk-size [SP "LAST"] (RFC 3030 2). */
static int
verb_bdat(struct mc_smtp_cmd *cmd, char *args, unsigned flags,
          const struct verb_def *def, const struct mc_smtp_reply **reply_r)
{
	char *last;

	if (args == NULL)
		goto fail;
	if ((last = strchr(args, ' ')) != NULL) {
		*last++ = '\0';
		while (*last == ' ')
			last++;
		if (strcasecmp(last, "LAST") != 0)
			goto fail;
		cmd->bdat_last = true;
	}
	if (parse_u64(args, &cmd->bdat_size) < 0)
		goto fail;
	return 0;
fail:
	*reply_r = def->syntax;
	return -1;
}

/* clang-format off */
static const struct mc_smtp_reply *const r_mail_bad =
	R(501, "5.1.7", "Bad sender address syntax");
static const struct mc_smtp_reply *const r_mail_long =
	R(501, "5.1.7", "Sender path too long");
static const struct mc_smtp_reply *const r_rcpt_bad =
	R(501, "5.1.3", "Bad recipient address syntax");
static const struct mc_smtp_reply *const r_rcpt_long =
	R(501, "5.1.3", "Recipient path too long");
/* clang-format on */

/* MAIL FROM:<reverse-path> [params], RCPT TO:<forward-path> [params]. */
static int
verb_path(struct mc_smtp_cmd *cmd, char *args, unsigned flags,
          const struct verb_def *def, const struct mc_smtp_reply **reply_r)
{
	bool rcpt = def->verb == MC_SMTP_RCPT;
	const char *prefix = rcpt ? "TO:" : "FROM:";
	size_t plen = strlen(prefix);
	bool utf8 = rcpt && (flags & MC_SMTP_PARSE_UTF8) != 0;
	char *p, *end;
	enum path_result ret;

	if (args == NULL || strncasecmp(args, prefix, plen) != 0)
		goto syntax;
	p = args + plen;
	while (*p == ' ') /* "MAIL FROM: <a@b>" is common */
		p++;
	if (*p != '<')
		goto syntax;
	ret = parse_path(p, rcpt, &cmd->path, &end);
	if (ret != PATH_OK) {
		if (ret == PATH_LONG)
			*reply_r = rcpt ? r_rcpt_long : r_mail_long;
		else
			*reply_r = rcpt ? r_rcpt_bad : r_mail_bad;
		return -1;
	}
	if (*end != '\0' && *end != ' ')
		goto syntax;
	if (parse_params(end, def->verb, utf8, &cmd->params, reply_r) < 0)
		return -1;
	if (!rcpt)
		utf8 = cmd->params.smtputf8;
	if (cmd->path.utf8 && !utf8) {
		*reply_r = r_utf8;
		return -1;
	}
	return 0;
syntax:
	*reply_r = def->syntax;
	return -1;
}

/* clang-format off */
static const struct verb_def verb_defs[] = {
	{"HELO", MC_SMTP_HELO, verb_hello,
	 R(501, "5.5.2", "Syntax: HELO hostname")},
	{"EHLO", MC_SMTP_EHLO, verb_hello,
	 R(501, "5.5.2", "Syntax: EHLO hostname")},
	{"LHLO", MC_SMTP_LHLO, verb_hello,
	 R(501, "5.5.2", "Syntax: LHLO hostname")},
	{"MAIL", MC_SMTP_MAIL, verb_path,
	 R(501, "5.5.2", "Syntax: MAIL FROM:<address>")},
	{"RCPT", MC_SMTP_RCPT, verb_path,
	 R(501, "5.5.2", "Syntax: RCPT TO:<address>")},
	{"DATA", MC_SMTP_DATA, verb_bare,
	 R(501, "5.5.4", "DATA takes no arguments")},
	{"BDAT", MC_SMTP_BDAT, verb_bdat,
	 R(501, "5.5.2", "Syntax: BDAT size [LAST]")},
	{"RSET", MC_SMTP_RSET, verb_bare,
	 R(501, "5.5.4", "RSET takes no arguments")},
	{"NOOP", MC_SMTP_NOOP, verb_optional, NULL},
	{"QUIT", MC_SMTP_QUIT, verb_bare,
	 R(501, "5.5.4", "QUIT takes no arguments")},
	{"VRFY", MC_SMTP_VRFY, verb_string,
	 R(501, "5.5.2", "Syntax: VRFY address")},
	{"EXPN", MC_SMTP_EXPN, verb_string,
	 R(501, "5.5.2", "Syntax: EXPN list")},
	{"HELP", MC_SMTP_HELP, verb_optional, NULL},
	{"STARTTLS", MC_SMTP_STARTTLS, verb_bare,
	 R(501, "5.5.4", "STARTTLS takes no arguments")},
	{"AUTH", MC_SMTP_AUTH, verb_auth,
	 R(501, "5.5.2", "Syntax: AUTH mechanism [initial-response]")},
};
/* clang-format on */

const char *
mc_smtp_verb_name(enum mc_smtp_verb verb)
{
	for (size_t i = 0; i < sizeof(verb_defs) / sizeof(verb_defs[0]); i++) {
		if (verb_defs[i].verb == verb)
			return verb_defs[i].name;
	}
	return "UNKNOWN";
}

int
mc_smtp_cmd_parse(struct mc_smtp_cmd *cmd_r, char *line, unsigned flags,
                  const struct mc_smtp_reply **reply_r)
{
	char *p, *args = NULL;
	size_t len;

	memset(cmd_r, 0, sizeof(*cmd_r));
	for (p = line; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if ((c < 32 && c != '\t') || c == 127) {
			*reply_r = r_control; /* a bare CR, for one */
			return -1;
		}
	}
	len = (size_t)(p - line);
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	if ((p = strchr(line, ' ')) != NULL) {
		*p++ = '\0';
		while (*p == ' ')
			p++;
		if (*p != '\0')
			args = p;
	}
	for (size_t i = 0; i < sizeof(verb_defs) / sizeof(verb_defs[0]); i++) {
		const struct verb_def *def = &verb_defs[i];

		if (strcasecmp(line, def->name) == 0) {
			cmd_r->verb = def->verb;
			return def->parse(cmd_r, args, flags, def, reply_r);
		}
	}
	*reply_r = r_unknown;
	return -1;
}
