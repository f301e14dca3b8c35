/* Unit tests for the SMTP parser: a table of command lines (valid and
 * hostile, every verb and parameter) checked through a one-line
 * description of the parse, and a table of whole client sessions run
 * through the line reader, the command parser and the DATA reader the way
 * the server will drive them. Every session is fed whole, one byte at a
 * time and in random chunk sizes, and must give the same transcript. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#include "mem.h"
#include "smtp_parser.h"
#include "test.h"

/* ---- a growable string for transcripts ---------------------------------- */

struct str {
	char *p;
	size_t len, cap;
};

static void
str_addn(struct str *s, const void *data, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->p = mc_realloc(s->p, s->cap);
	}
	memcpy(s->p + s->len, data, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void str_addf(struct str *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
str_addf(struct str *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	str_addn(s, buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* Printable form: CR, LF, NUL and 8-bit bytes escaped. */
static void
str_escaped(struct str *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r')
			str_addf(s, "\\r");
		else if (c == '\n')
			str_addf(s, "\\n");
		else if (c < 32 || c >= 127)
			str_addf(s, "\\x%02x", c);
		else
			str_addn(s, &p[i], 1);
	}
}

/* ---- command table ------------------------------------------------------ */

static const char *const body_names[] = {"", "7BIT", "8BITMIME", "BINARYMIME"};

static void
describe_params(struct str *s, const struct mc_smtp_params *p)
{
	if (p->has_size)
		str_addf(s, " size=%llu", (unsigned long long)p->size);
	if (p->body != MC_SMTP_BODY_NONE)
		str_addf(s, " body=%s", body_names[p->body]);
	if (p->smtputf8)
		str_addf(s, " smtputf8");
	if (p->ret != MC_SMTP_RET_NONE)
		str_addf(s, " ret=%s",
		         p->ret == MC_SMTP_RET_FULL ? "FULL" : "HDRS");
	if (p->envid != NULL)
		str_addf(s, " envid=%s", p->envid);
	if (p->notify != 0)
		str_addf(s, " notify=%u", p->notify);
	if (p->orcpt != NULL)
		str_addf(s, " orcpt=%s;%s", p->orcpt_type, p->orcpt);
	if (p->auth != NULL)
		str_addf(s, " auth=%s", p->auth);
}

static void
describe(struct str *s, int ret, const struct mc_smtp_cmd *c,
         const struct mc_smtp_reply *r)
{
	const struct mc_smtp_path *p = &c->path;

	if (ret < 0) {
		str_addf(s, "ERR %u %s %s", r->code, r->enhanced,
		         mc_smtp_verb_name(c->verb));
		return;
	}
	str_addf(s, "%s", mc_smtp_verb_name(c->verb));
	if (c->arg != NULL)
		str_addf(s, " arg=%s", c->arg);
	if (c->auth_initial != NULL)
		str_addf(s, " init=%s", c->auth_initial);
	if (c->verb == MC_SMTP_MAIL || c->verb == MC_SMTP_RCPT) {
		str_addf(s, " <");
		str_escaped(s, p->mailbox, strlen(p->mailbox));
		str_addf(s, ">");
		if (!p->null && !p->postmaster)
			str_addf(s, " local=%zu dom=%s", p->local_len,
			         p->domain);
		str_addf(s, "%s%s%s%s%s", p->null ? " null" : "",
		         p->postmaster ? " pm" : "", p->quoted ? " quoted" : "",
		         p->literal ? " literal" : "", p->utf8 ? " utf8" : "");
		describe_params(s, &c->params);
	}
	if (c->verb == MC_SMTP_BDAT)
		str_addf(s, " size=%llu%s", (unsigned long long)c->bdat_size,
		         c->bdat_last ? " last" : "");
}

struct cmd_case {
	const char *line;
	unsigned flags;
	const char *want;
};

#define U MC_SMTP_PARSE_UTF8
#define E501M "ERR 501 5.1.7 MAIL"
#define E501R "ERR 501 5.1.3 RCPT"
#define E555M "ERR 555 5.5.4 MAIL"
#define E555R "ERR 555 5.5.4 RCPT"
#define ESYNM "ERR 501 5.5.2 MAIL"
#define A "a@example.org"

/* clang-format off */
static const struct cmd_case cmd_cases[] = {
	/* greetings */
	{"HELO mx.example.org", 0, "HELO arg=mx.example.org"},
	{"ehlo [192.0.2.1]", 0, "EHLO arg=[192.0.2.1]"},
	{"LHLO relay.local", 0, "LHLO arg=relay.local"},
	{"EHLO   host \t ", 0, "EHLO arg=host"},
	{"EHLO my_host is sloppy", 0, "EHLO arg=my_host is sloppy"},
	{"HELO", 0, "ERR 501 5.5.2 HELO"},
	{"EHLO ", 0, "ERR 501 5.5.2 EHLO"},
	{"EHLO h\xc3\xb4st", 0, "ERR 501 5.5.2 EHLO"},
	/* MAIL: paths */
	{"MAIL FROM:<>", 0, "MAIL <> null"},
	{"MAIL FROM:<" A ">", 0, "MAIL <" A "> local=1 dom=example.org"},
	{"mail from:<A.B+tag@Example.ORG>", 0,
	 "MAIL <A.B+tag@Example.ORG> local=7 dom=Example.ORG"},
	{"MAIL FROM: <" A ">", 0, "MAIL <" A "> local=1 dom=example.org"},
	{"MAIL FROM:  <>  ", 0, "MAIL <> null"},
	{"MAIL FROM:<\"john doe\"@example.org>", 0,
	 "MAIL <\"john doe\"@example.org> local=10 dom=example.org quoted"},
	{"MAIL FROM:<\"a\\\"b>\"@example.org>", 0,
	 "MAIL <\"a\\\"b>\"@example.org> local=7 dom=example.org quoted"},
	{"MAIL FROM:<\"\"@example.org>", 0,
	 "MAIL <\"\"@example.org> local=2 dom=example.org quoted"},
	{"MAIL FROM:<@relay.a,@relay.b:user@example.org>", 0,
	 "MAIL <user@example.org> local=4 dom=example.org"},
	{"MAIL FROM:<u@[192.0.2.1]>", 0,
	 "MAIL <u@[192.0.2.1]> local=1 dom=[192.0.2.1] literal"},
	{"MAIL FROM:<u@[IPv6:2001:db8::1]>", 0,
	 "MAIL <u@[IPv6:2001:db8::1]> local=1 dom=[IPv6:2001:db8::1] literal"},
	{"MAIL FROM:<u@[ipv6:::ffff:192.0.2.1]>", 0,
	 "MAIL <u@[ipv6:::ffff:192.0.2.1]> local=1 dom=[ipv6:::ffff:192.0.2.1] "
	 "literal"},
	{"MAIL FROM:<x@localhost>", 0, "MAIL <x@localhost> local=1 dom=localhost"},
	{"MAIL FROM:<!#$%&'*+-/=?^_`{|}~@a-1.b2>", 0,
	 "MAIL <!#$%&'*+-/=?^_`{|}~@a-1.b2> local=19 dom=a-1.b2"},
	{"MAIL", 0, ESYNM},
	{"MAIL TO:<" A ">", 0, ESYNM},
	{"MAIL FROM " A, 0, ESYNM},
	{"MAIL FROM:" A, 0, ESYNM},
	{"MAIL FROM:", 0, ESYNM},
	{"MAIL FROM:<" A ">x", 0, ESYNM},
	{"MAIL FROM:<" A ">>", 0, ESYNM},
	{"MAIL FROM:<" A, 0, E501M},
	{"MAIL FROM:<a@@example.org>", 0, E501M},
	{"MAIL FROM:<a..b@example.org>", 0, E501M},
	{"MAIL FROM:<.a@example.org>", 0, E501M},
	{"MAIL FROM:<a.@example.org>", 0, E501M},
	{"MAIL FROM:<a@-example.org>", 0, E501M},
	{"MAIL FROM:<a@example-.org>", 0, E501M},
	{"MAIL FROM:<a@example.org.>", 0, E501M},
	{"MAIL FROM:<a@.example.org>", 0, E501M},
	{"MAIL FROM:<a@exa_mple.org>", 0, E501M},
	{"MAIL FROM:<a b@example.org>", 0, E501M},
	{"MAIL FROM:<a\\b@example.org>", 0, E501M},
	{"MAIL FROM:<a@>", 0, E501M},
	{"MAIL FROM:<@example.org>", 0, E501M},
	{"MAIL FROM:<example.org>", 0, E501M},
	{"MAIL FROM:<Postmaster>", 0, E501M},
	{"MAIL FROM:<\"open@example.org>", 0, E501M},
	{"MAIL FROM:<\"a\tb\"@example.org>", 0, E501M},
	{"MAIL FROM:<a@[300.1.1.1]>", 0, E501M},
	{"MAIL FROM:<a@[1.2.3]>", 0, E501M},
	{"MAIL FROM:<a@[1.2.3.4.5]>", 0, E501M},
	{"MAIL FROM:<a@[0001.2.3.4]>", 0, E501M},
	{"MAIL FROM:<a@[IPv6:zz::1]>", 0, E501M},
	{"MAIL FROM:<a@[IPv6:1.2.3.4]>", 0, E501M},
	{"MAIL FROM:<a@[tag:xyz]>", 0, E501M},
	{"MAIL FROM:<a@[1.2.3.4>", 0, E501M},
	{"MAIL FROM:<a@[]>", 0, E501M},
	{"MAIL FROM:<@a.b:>", 0, E501M},
	{"MAIL FROM:<@a.b,c.d:u@e.f>", 0, E501M},
	{"MAIL FROM:<@a.b u@e.f>", 0, E501M},
	{"MAIL FROM:<a@b.c> <d@e.f>", 0, E555M},
	{"MAIL FROM:<a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 ".org>", 0,
	 "MAIL <a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 ".org> local=1 dom=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaaaaa.org"},
	{"MAIL FROM:<a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 ".org>", 0, E501M},
	/* UTF-8 */
	{"MAIL FROM:<\xc3\xbc@ex\xc3\xa4mple.org> SMTPUTF8", 0,
	 "MAIL <\\xc3\\xbc@ex\\xc3\\xa4mple.org> local=2 dom=ex\xc3\xa4mple.org "
	 "utf8 smtputf8"},
	{"MAIL FROM:<\"\xe2\x82\xac\"@example.org> smtputf8", 0,
	 "MAIL <\"\\xe2\\x82\\xac\"@example.org> local=5 dom=example.org "
	 "quoted utf8 smtputf8"},
	{"MAIL FROM:<\xf0\x9f\x93\xa7@example.org> SMTPUTF8", 0,
	 "MAIL <\\xf0\\x9f\\x93\\xa7@example.org> local=4 dom=example.org "
	 "utf8 smtputf8"},
	{"MAIL FROM:<\xc3\xbc@example.org>", 0, "ERR 553 5.6.7 MAIL"},
	{"MAIL FROM:<a@ex\xc3\xa4mple.org> BODY=8BITMIME", 0,
	 "ERR 553 5.6.7 MAIL"},
	{"MAIL FROM:<\xc3\x28@example.org> SMTPUTF8", 0, E501M},
	{"MAIL FROM:<\xc0\xaf@example.org> SMTPUTF8", 0, E501M},
	{"MAIL FROM:<\xed\xa0\x80@example.org> SMTPUTF8", 0, E501M},
	{"MAIL FROM:<\xf4\x90\x80\x80@example.org> SMTPUTF8", 0, E501M},
	{"MAIL FROM:<\xff@example.org> SMTPUTF8", 0, E501M},
	{"MAIL FROM:<a@b.c\xe2\x82", 0, E501M},
	{"MAIL FROM:<a@b.c> ENVID=\xc3\xbc SMTPUTF8", 0, "ERR 555 5.5.4 MAIL"},
	/* MAIL parameters */
	{"MAIL FROM:<" A "> SIZE=12345 BODY=8BITMIME", 0,
	 "MAIL <" A "> local=1 dom=example.org size=12345 body=8BITMIME"},
	{"MAIL FROM:<" A ">  size=0  body=7bit ret=hdrs envid=QQ+2B1 auth=<>", 0,
	 "MAIL <" A "> local=1 dom=example.org size=0 body=7BIT ret=HDRS "
	 "envid=QQ+2B1 auth=<>"},
	{"MAIL FROM:<" A "> BODY=BINARYMIME RET=FULL AUTH=a+2Bb@example.org", 0,
	 "MAIL <" A "> local=1 dom=example.org body=BINARYMIME ret=FULL "
	 "auth=a+2Bb@example.org"},
	{"MAIL FROM:<" A "> SIZE=18446744073709551615", 0,
	 "MAIL <" A "> local=1 dom=example.org size=18446744073709551615"},
	{"MAIL FROM:<" A "> SIZE=18446744073709551616", 0, E555M},
	{"MAIL FROM:<" A "> SIZE=99999999999999999999999", 0, E555M},
	{"MAIL FROM:<" A "> SIZE=", 0, E555M},
	{"MAIL FROM:<" A "> SIZE", 0, E555M},
	{"MAIL FROM:<" A "> SIZE=12a", 0, E555M},
	{"MAIL FROM:<" A "> SIZE=-1", 0, E555M},
	{"MAIL FROM:<" A "> SIZE=1 SIZE=2", 0, E555M},
	{"MAIL FROM:<" A "> size=1 Size=1", 0, E555M},
	{"MAIL FROM:<" A "> BODY=9BIT", 0, E555M},
	{"MAIL FROM:<" A "> BODY", 0, E555M},
	{"MAIL FROM:<" A "> SMTPUTF8=yes", 0, E555M},
	{"MAIL FROM:<" A "> RET=ALL", 0, E555M},
	{"MAIL FROM:<" A "> ENVID=a=b", 0, E555M},
	{"MAIL FROM:<" A "> ENVID=ab+zz", 0, E555M},
	{"MAIL FROM:<" A "> ENVID=ab+4", 0, E555M},
	{"MAIL FROM:<" A "> ENVID=+41+42+43", 0,
	 "MAIL <" A "> local=1 dom=example.org envid=+41+42+43"},
	{"MAIL FROM:<" A "> AUTH=", 0, E555M},
	{"MAIL FROM:<" A "> FOO=bar", 0, E555M},
	{"MAIL FROM:<" A "> X-FOO", 0, E555M},
	{"MAIL FROM:<" A "> NOTIFY=NEVER", 0, E555M},
	{"MAIL FROM:<" A "> ORCPT=rfc822;a@b.c", 0, E555M},
	{"MAIL FROM:<" A "> =x", 0, E555M},
	{"MAIL FROM:<" A "> -X=1", 0, E555M},
	{"MAIL FROM:<" A "> SIZE=1\tBODY=7BIT", 0, E555M},
	/* RCPT */
	{"RCPT TO:<b@example.org>", 0, "RCPT <b@example.org> local=1 dom=example.org"},
	{"rcpt to: <b@example.org>", 0,
	 "RCPT <b@example.org> local=1 dom=example.org"},
	{"RCPT TO:<Postmaster>", 0, "RCPT <Postmaster> pm"},
	{"RCPT TO:<postMASTER>", 0, "RCPT <postMASTER> pm"},
	{"RCPT TO:<postmaster@example.org>", 0,
	 "RCPT <postmaster@example.org> local=10 dom=example.org"},
	{"RCPT TO:<@a.b:Postmaster>", 0, E501R},
	{"RCPT TO:<\"Postmaster\">", 0, E501R},
	{"RCPT TO:<postmasters>", 0, E501R},
	{"RCPT TO:<>", 0, E501R},
	{"RCPT TO:b@example.org", 0, "ERR 501 5.5.2 RCPT"},
	{"RCPT FROM:<b@example.org>", 0, "ERR 501 5.5.2 RCPT"},
	{"RCPT TO:<b@example..org>", 0, E501R},
	{"RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE,DELAY "
	 "ORCPT=rfc822;b+40example.org", 0,
	 "RCPT <b@example.org> local=1 dom=example.org notify=14 "
	 "orcpt=rfc822;b+40example.org"},
	{"RCPT TO:<b@example.org> notify=never", 0,
	 "RCPT <b@example.org> local=1 dom=example.org notify=1"},
	{"RCPT TO:<b@example.org> NOTIFY=delay,DELAY", 0,
	 "RCPT <b@example.org> local=1 dom=example.org notify=8"},
	{"RCPT TO:<b@example.org> NOTIFY=NEVER,SUCCESS", 0, E555R},
	{"RCPT TO:<b@example.org> NOTIFY=SUCCESS,", 0, E555R},
	{"RCPT TO:<b@example.org> NOTIFY=ALWAYS", 0, E555R},
	{"RCPT TO:<b@example.org> NOTIFY", 0, E555R},
	{"RCPT TO:<b@example.org> ORCPT=rfc822", 0, E555R},
	{"RCPT TO:<b@example.org> ORCPT=;b@c.d", 0, E555R},
	{"RCPT TO:<b@example.org> ORCPT=rfc822;", 0, E555R},
	{"RCPT TO:<b@example.org> ORCPT=rfc(822;b@c.d", 0, E555R},
	{"RCPT TO:<b@example.org> SIZE=10", 0, E555R},
	{"RCPT TO:<b@example.org> SMTPUTF8", 0, E555R},
	{"RCPT TO:<\xc3\xbc@example.org>", 0, "ERR 553 5.6.7 RCPT"},
	{"RCPT TO:<\xc3\xbc@example.org>", U,
	 "RCPT <\\xc3\\xbc@example.org> local=2 dom=example.org utf8"},
	{"RCPT TO:<b@example.org> ORCPT=utf-8;\xc3\xbc@example.org", U,
	 "RCPT <b@example.org> local=1 dom=example.org "
	 "orcpt=utf-8;\xc3\xbc@example.org"},
	{"RCPT TO:<b@example.org> ORCPT=utf-8;\xc3\xbc@example.org", 0, E555R},
	/* verbs without arguments */
	{"DATA", 0, "DATA"},
	{"data  ", 0, "DATA"},
	{"DATA x", 0, "ERR 501 5.5.4 DATA"},
	{"RSET", 0, "RSET"},
	{"RSET now", 0, "ERR 501 5.5.4 RSET"},
	{"QUIT", 0, "QUIT"},
	{"QUIT bye", 0, "ERR 501 5.5.4 QUIT"},
	{"STARTTLS", 0, "STARTTLS"},
	{"StartTLS x", 0, "ERR 501 5.5.4 STARTTLS"},
	/* free text */
	{"NOOP", 0, "NOOP"},
	{"NOOP hello there", 0, "NOOP arg=hello there"},
	{"HELP", 0, "HELP"},
	{"HELP MAIL", 0, "HELP arg=MAIL"},
	{"VRFY postmaster", 0, "VRFY arg=postmaster"},
	{"VRFY <\xc3\xbc@example.org> SMTPUTF8", 0,
	 "VRFY arg=<\xc3\xbc@example.org> SMTPUTF8"},
	{"VRFY", 0, "ERR 501 5.5.2 VRFY"},
	{"EXPN staff", 0, "EXPN arg=staff"},
	{"EXPN", 0, "ERR 501 5.5.2 EXPN"},
	/* AUTH */
	{"AUTH PLAIN", 0, "AUTH arg=PLAIN"},
	{"auth plain AHVzZXIAcGFzcw==", 0, "AUTH arg=PLAIN init=AHVzZXIAcGFzcw=="},
	{"AUTH LOGIN =", 0, "AUTH arg=LOGIN init=="},
	{"AUTH SCRAM-SHA-256 biwsbj11c2VyLHI9ZnlrbytkMmxi", 0,
	 "AUTH arg=SCRAM-SHA-256 init=biwsbj11c2VyLHI9ZnlrbytkMmxi"},
	{"AUTH", 0, "ERR 501 5.5.2 AUTH"},
	{"AUTH PL@IN", 0, "ERR 501 5.5.2 AUTH"},
	{"AUTH ABCDEFGHIJKLMNOPQRSTU", 0, "ERR 501 5.5.2 AUTH"},
	{"AUTH PLAIN a b", 0, "ERR 501 5.5.2 AUTH"},
	{"AUTH PLAIN ab!c", 0, "ERR 501 5.5.2 AUTH"},
	/* BDAT */
	{"BDAT 1000", 0, "BDAT size=1000"},
	{"bdat 0 last", 0, "BDAT size=0 last"},
	{"BDAT", 0, "ERR 501 5.5.2 BDAT"},
	{"BDAT x", 0, "ERR 501 5.5.2 BDAT"},
	{"BDAT 10 FIRST", 0, "ERR 501 5.5.2 BDAT"},
	{"BDAT 10 LAST x", 0, "ERR 501 5.5.2 BDAT"},
	{"BDAT 18446744073709551616", 0, "ERR 501 5.5.2 BDAT"},
	/* unknown and hostile */
	{"", 0, "ERR 500 5.5.1 UNKNOWN"},
	{"   ", 0, "ERR 500 5.5.1 UNKNOWN"},
	{"FOO", 0, "ERR 500 5.5.1 UNKNOWN"},
	{"MAILX FROM:<" A ">", 0, "ERR 500 5.5.1 UNKNOWN"},
	{" MAIL FROM:<" A ">", 0, "ERR 500 5.5.1 UNKNOWN"},
	{"MAIL\tFROM:<" A ">", 0, "ERR 500 5.5.1 UNKNOWN"},
	{"GET / HTTP/1.1", 0, "ERR 500 5.5.1 UNKNOWN"},
	{"\xc3\xbc", 0, "ERR 500 5.5.1 UNKNOWN"},
	{"MAIL FROM:<" A ">\rRCPT TO:<b@c.d>", 0, "ERR 500 5.5.2 UNKNOWN"},
	{"NOOP \x01", 0, "ERR 500 5.5.2 UNKNOWN"},
	{"\x7f", 0, "ERR 500 5.5.2 UNKNOWN"},
	{"QUIT\x1b[0m", 0, "ERR 500 5.5.2 UNKNOWN"},
};
/* clang-format on */

static void
test_cmd_table(void)
{
	for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const struct cmd_case *t = &cmd_cases[i];
		char *line = mc_strdup(t->line);
		struct mc_smtp_cmd cmd;
		const struct mc_smtp_reply *reply = NULL;
		struct str got = {0};
		int ret;

		ret = mc_smtp_cmd_parse(&cmd, line, t->flags, &reply);
		describe(&got, ret, &cmd, reply);
		CHECK(ret == 0 || (reply != NULL && reply->text != NULL));
		if (strcmp(got.p, t->want) != 0)
			fprintf(stderr, "case %zu: %s\n", i, t->line);
		CHECK_STR(got.p, t->want);
		free(got.p);
		free(line);
	}
}

/* Paths at and over 256 octets, brackets included. */
static void
test_path_length(void)
{
	char line[600], want[600];
	struct mc_smtp_cmd cmd;
	const struct mc_smtp_reply *reply;
	/* "<" + local + "@" + domain + ">": local 64, domain to fill */
	for (int extra = 0; extra <= 1; extra++) {
		size_t dom_len = 256 - 2 - 65 + (size_t)extra;
		char dom[300];
		size_t pos = 0;

		while (pos < dom_len) {
			size_t n = dom_len - pos > 60 ? 60 : dom_len - pos - 1;

			if (dom_len - pos <= 61)
				n = dom_len - pos;
			memset(dom + pos, 'd', n);
			pos += n;
			if (pos < dom_len)
				dom[pos++] = '.';
		}
		dom[dom_len] = '\0';
		snprintf(line, sizeof(line), "RCPT TO:<%064d@%s>", 0, dom);
		CHECK(strlen(line) - strlen("RCPT TO:") ==
		      256u + (size_t)extra);
		if (extra == 0) {
			CHECK(mc_smtp_cmd_parse(&cmd, line, 0, &reply) == 0);
			snprintf(want, sizeof(want), "%064d@%s", 0, dom);
			CHECK_STR(cmd.path.mailbox, want);
		} else {
			CHECK(mc_smtp_cmd_parse(&cmd, line, 0, &reply) < 0);
			CHECK(reply->code == 501);
			CHECK_STR(reply->enhanced, "5.1.3");
			CHECK_STR(reply->text, "Recipient path too long");
		}
	}
	CHECK_STR(mc_smtp_verb_name(MC_SMTP_STARTTLS), "STARTTLS");
	CHECK_STR(mc_smtp_verb_name(MC_SMTP_UNKNOWN), "UNKNOWN");
}

/* ENVID: 100 characters before xtext encoding; ORCPT's address 500. */
static void
test_param_lengths(void)
{
	struct mc_smtp_cmd cmd;
	const struct mc_smtp_reply *reply;

	for (size_t n = 99; n <= 101; n++) {
		struct str line = {0};

		str_addf(&line, "MAIL FROM:<a@b.c> ENVID=+41");
		for (size_t i = 1; i < n; i++)
			str_addn(&line, "e", 1);
		CHECK((mc_smtp_cmd_parse(&cmd, line.p, 0, &reply) == 0) ==
		      (n <= 100));
		if (n <= 100)
			CHECK(strlen(cmd.params.envid) == n + 2);
		free(line.p);
	}
	for (size_t n = 499; n <= 501; n++) {
		struct str line = {0};

		str_addf(&line, "RCPT TO:<a@b.c> ORCPT=rfc822;+2B");
		for (size_t i = 1; i < n; i++)
			str_addn(&line, "o", 1);
		CHECK((mc_smtp_cmd_parse(&cmd, line.p, 0, &reply) == 0) ==
		      (n <= 500));
		if (n > 500)
			CHECK_STR(reply->text, "Invalid ORCPT parameter");
		free(line.p);
	}
}

/* ---- sessions ----------------------------------------------------------- */

struct session {
	struct mc_smtp_limits limits;
	struct mc_smtp_lines lines;
	struct mc_smtp_data data;
	bool in_data, utf8;
	struct str content, out;
};

static void
sink(void *ctx, const void *p, size_t n)
{
	str_addn(ctx, p, n);
}

static void
session_command(struct session *s, struct mc_smtp_line *line)
{
	struct mc_smtp_cmd cmd;
	const struct mc_smtp_reply *r;

	if (mc_smtp_cmd_parse(&cmd, line->text,
	                      s->utf8 ? MC_SMTP_PARSE_UTF8 : 0, &r) < 0) {
		str_addf(&s->out, "E %u %s\n", r->code, r->enhanced);
		return;
	}
	str_addf(&s->out, "%s", mc_smtp_verb_name(cmd.verb));
	if (cmd.verb == MC_SMTP_MAIL || cmd.verb == MC_SMTP_RCPT)
		str_addf(&s->out, " <%s>", cmd.path.mailbox);
	else if (cmd.arg != NULL && cmd.verb != MC_SMTP_NOOP)
		str_addf(&s->out, " %s", cmd.arg);
	str_addf(&s->out, "%s\n", line->bare_lf ? " (lf)" : "");
	if (cmd.verb == MC_SMTP_MAIL)
		s->utf8 = cmd.params.smtputf8;
	if (cmd.verb == MC_SMTP_DATA) {
		s->in_data = true;
		s->content.len = 0;
		mc_smtp_data_init(&s->data, &s->limits, sink, &s->content);
	}
}

static void
session_data_done(struct session *s, const char *tag)
{
	const struct mc_smtp_data *d = &s->data;

	str_addf(&s->out, "%s size=%llu", tag, (unsigned long long)d->size);
	/* The sink never gets more than the limit, nor less than size. */
	CHECK(s->content.len <= s->limits.max_message);
	CHECK(d->too_big || s->content.len == d->size);
	if (d->too_big) {
		/* The content given to the sink before the limit depends on
		 * the chunking; the server throws it away anyway. */
		str_addf(&s->out, " too_big");
	} else {
		str_addf(&s->out, " [");
		str_escaped(&s->out, s->content.p ? s->content.p : "",
		            s->content.len);
		str_addf(&s->out, "]");
	}
	str_addf(&s->out, "%s%s", d->eightbit ? " 8bit" : "",
	         d->nul ? " nul" : "");
	if (d->bare_lf > 0)
		str_addf(&s->out, " lf=%llu", (unsigned long long)d->bare_lf);
	str_addf(&s->out, "\n");
	s->in_data = s->utf8 = false;
}

static void
session_drain(struct session *s)
{
	for (;;) {
		struct mc_smtp_line line;
		const struct mc_smtp_reply *r;
		int ret;

		if (s->in_data) {
			size_t n, used;
			const void *p = mc_smtp_lines_peek(&s->lines, &n);

			ret = mc_smtp_data_parse(&s->data, p, n, &used);
			mc_smtp_lines_skip(&s->lines, used);
			if (ret == 0)
				return;
			session_data_done(s, "D");
			continue;
		}
		ret = mc_smtp_lines_next(&s->lines, &line, &r);
		if (ret == 0)
			return;
		if (ret < 0)
			str_addf(&s->out, "L %u %s\n", r->code, r->enhanced);
		else
			session_command(s, &line);
	}
}

static uint64_t rng = 88172645463325252ull;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

/* mode 0: as few feeds as the buffer allows; 1: one byte at a time;
 * n > 1: random chunks of 1..n bytes. Returns the transcript (heap). */
static char *
session_run(const char *in, size_t len, const struct mc_smtp_limits *limits,
            unsigned mode)
{
	struct session s = {0};
	size_t pos = 0;

	if (limits != NULL)
		s.limits = *limits;
	else
		mc_smtp_limits_default(&s.limits);
	mc_smtp_lines_init(&s.lines, &s.limits);
	while (pos < len) {
		size_t n = len - pos, end;

		if (mode == 1)
			n = 1;
		else if (mode > 1 && n > 1)
			n = 1 + rnd() % (n < mode ? n : mode);
		end = pos + n;
		while (pos < end) {
			size_t took = mc_smtp_lines_feed(&s.lines, in + pos,
			                                 end - pos);

			pos += took;
			session_drain(&s);
			if (took == 0) {
				str_addf(&s.out, "STUCK\n");
				pos = len;
				break;
			}
		}
	}
	if (s.in_data)
		session_data_done(&s, "D-incomplete");
	if (mc_smtp_lines_pending(&s.lines) > 0)
		str_addf(&s.out, "P %zu\n", mc_smtp_lines_pending(&s.lines));
	mc_smtp_lines_fini(&s.lines);
	free(s.content.p);
	if (s.out.p == NULL)
		str_addf(&s.out, "%s", "");
	return s.out.p;
}

/* Whole, bytewise and random chunkings must all give want. */
static void
check_session(const char *name, const char *in, size_t len,
              const struct mc_smtp_limits *limits, const char *want)
{
	static const unsigned modes[] = {0, 1, 2, 3, 7, 16, 100, 700, 3000};

	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		int rounds = modes[m] > 1 ? 4 : 1;

		for (int k = 0; k < rounds; k++) {
			char *got = session_run(in, len, limits, modes[m]);

			if (strcmp(got, want) != 0)
				fprintf(stderr,
				        "session %s, chunks %u:\n%s---\n", name,
				        modes[m], got);
			CHECK_STR(got, want);
			free(got);
		}
	}
}

struct session_case {
	const char *name;
	const char *in;
	size_t len;
	const char *want;
};

#define IN(s) s, sizeof(s) - 1

/* clang-format off */
static const struct session_case session_cases[] = {
	{"pipelined transaction",
	 IN("EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
	    "RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n"),
	 "EHLO client.example\nMAIL <a@example.org>\nRCPT <b@example.org>\n"
	 "RCPT <c@example.org>\nDATA\nD-incomplete size=0 []\n"},
	{"data then next command in one chunk",
	 IN("DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"),
	 "DATA\nD size=20 [Subject: x\\r\\n\\r\\nbody\\r\\n]\nQUIT\n"},
	{"two messages back to back",
	 IN("DATA\r\na\r\n.\r\nDATA\r\nb\r\n.\r\nNOOP\r\n"),
	 "DATA\nD size=3 [a\\r\\n]\nDATA\nD size=3 [b\\r\\n]\nNOOP\n"},
	{"bare LF and CRLF commands",
	 IN("HELO a.b\nNOOP\r\nQUIT\n"),
	 "HELO a.b (lf)\nNOOP\nQUIT (lf)\n"},
	{"partial line at the end", IN("NOOP\r\nQUI"), "NOOP\nP 3\n"},
	{"CR alone does not end a command", IN("NOOP\rQUIT\r\n"),
	 "E 500 5.5.2\n"},
	{"NUL in a command", IN("NO\0OP\r\nNOOP\r\n\0\n"),
	 "L 500 5.5.2\nNOOP\nL 500 5.5.2\n"},
	{"empty message", IN("DATA\r\n.\r\nQUIT\r\n"), "DATA\nD size=0 []\nQUIT\n"},
	{"dot-stuffing",
	 IN("DATA\r\n..x\r\n..\r\n...\r\na.b\r\n. x\r\n.\r\n"),
	 "DATA\nD size=20 [.x\\r\\n.\\r\\n..\\r\\na.b\\r\\n x\\r\\n]\n"},
	{"lone dot mid-message is not the end unless CRLF both sides",
	 IN("DATA\r\na\r\n.\nb\r\n.\r\n"),
	 "DATA\nD size=8 [a\\r\\n\\r\\nb\\r\\n] lf=1\n"},
	{"bare LF in content is normalised",
	 IN("DATA\r\na\nb\r\nc\n\r\n.\r\n"),
	 "DATA\nD size=11 [a\\r\\nb\\r\\nc\\r\\n\\r\\n] lf=2\n"},
	{"smuggling <LF>.<LF>",
	 IN("DATA\r\nx\n.\nMAIL FROM:<e@evil.test>\r\n.\r\nNOOP\r\n"),
	 "DATA\nD size=30 [x\\r\\n\\r\\nMAIL FROM:<e@evil.test>\\r\\n] lf=2\n"
	 "NOOP\n"},
	{"smuggling <LF>.<CRLF>",
	 IN("DATA\r\nx\n.\r\nMAIL FROM:<e@evil.test>\r\n.\r\nNOOP\r\n"),
	 "DATA\nD size=30 [x\\r\\n\\r\\nMAIL FROM:<e@evil.test>\\r\\n] lf=1\n"
	 "NOOP\n"},
	{"smuggling <CRLF>.<LF>",
	 IN("DATA\r\nx\r\n.\nMAIL FROM:<e@evil.test>\r\n.\r\nNOOP\r\n"),
	 "DATA\nD size=30 [x\\r\\n\\r\\nMAIL FROM:<e@evil.test>\\r\\n] lf=1\n"
	 "NOOP\n"},
	{"smuggling <CR>.<CR>",
	 IN("DATA\r\nx\r.\rMAIL FROM:<e@evil.test>\r\n.\r\nNOOP\r\n"),
	 "DATA\nD size=29 [x\\r.\\rMAIL FROM:<e@evil.test>\\r\\n]\nNOOP\n"},
	{"smuggling <CRLF>.<CR>",
	 IN("DATA\r\nx\r\n.\rMAIL FROM:<e@evil.test>\r\n.\r\nNOOP\r\n"),
	 "DATA\nD size=29 [x\\r\\n\\rMAIL FROM:<e@evil.test>\\r\\n]\nNOOP\n"},
	{"smuggling <LF>.<CR><LF> at the start",
	 IN("DATA\r\n\n.\r\nMAIL FROM:<e@evil.test>\r\n.\r\n"),
	 "DATA\nD size=29 [\\r\\n\\r\\nMAIL FROM:<e@evil.test>\\r\\n] lf=1\n"},
	{"CR before the real end",
	 IN("DATA\r\nx\r\n.\r\r\n.\r\nNOOP\r\n"),
	 "DATA\nD size=6 [x\\r\\n\\r\\r\\n]\nNOOP\n"},
	{"end right after bare CR line end",
	 IN("DATA\r\nx\r\r\n.\r\nNOOP\r\n"),
	 "DATA\nD size=4 [x\\r\\r\\n]\nNOOP\n"},
	{"unterminated data", IN("DATA\r\nabc\r\n.\n"),
	 "DATA\nD-incomplete size=7 [abc\\r\\n\\r\\n] lf=1\n"},
	{"8-bit content",
	 IN("DATA\r\ncaf\xc3\xa9\r\n.\r\nDATA\r\nplain\r\n.\r\n"),
	 "DATA\nD size=7 [caf\\xc3\\xa9\\r\\n] 8bit\nDATA\nD size=7 "
	 "[plain\\r\\n]\n"},
	{"NUL in content passes through",
	 IN("DATA\r\na\0b\r\n.\r\n"), "DATA\nD size=5 [a\\x00b\\r\\n] nul\n"},
	{"SMTPUTF8 declared on MAIL lets RCPT carry UTF-8",
	 IN("MAIL FROM:<a@b.c> SMTPUTF8\r\nRCPT TO:<\xc3\xbc@b.c>\r\nDATA\r\n"
	    ".\r\nRCPT TO:<\xc3\xbc@b.c>\r\n"),
	 "MAIL <a@b.c>\nRCPT <\xc3\xbc@b.c>\nDATA\nD size=0 []\n"
	 "E 553 5.6.7\n"},
	{"hostile junk then a valid command",
	 IN("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n"
	    "GET / HTTP/1.0\r\n\r\nNOOP\r\n"),
	 "L 500 5.5.2\nE 500 5.5.1\nE 500 5.5.1\nNOOP\n"},
};
/* clang-format on */

/* Every command of the table, pipelined in one input: the transcript
 * must not depend on how the input is cut. */
static void
test_cmd_table_trickle(void)
{
	struct str in = {0};
	char *whole;

	for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++)
		str_addf(&in, "%s%s", cmd_cases[i].line, i % 2 ? "\r\n" : "\n");
	whole = session_run(in.p, in.len, NULL, 0);
	CHECK(strstr(whole, "\nP ") == NULL);
	check_session("command table", in.p, in.len, NULL, whole);
	free(whole);
	free(in.p);
}

static void
test_sessions(void)
{
	for (size_t i = 0; i < sizeof(session_cases) / sizeof(session_cases[0]);
	     i++) {
		const struct session_case *t = &session_cases[i];

		check_session(t->name, t->in, t->len, NULL, t->want);
	}
}

/* A command line of n octets in all, ending in CRLF (or LF). */
static void
add_line(struct str *s, size_t n, bool crlf)
{
	size_t body = n - (crlf ? 2 : 1);

	str_addf(s, "NOOP ");
	for (size_t i = 5; i < body; i++)
		str_addn(s, "x", 1);
	str_addf(s, crlf ? "\r\n" : "\n");
}

static void
test_long_lines(void)
{
	struct mc_smtp_limits small = {512, 600, 1000};
	const struct mc_smtp_limits *limits[] = {NULL, &small};

	for (size_t k = 0; k < 2; k++) {
		size_t max = limits[k] ? 512 : MC_SMTP_LINE_DEFAULT;
		struct str in = {0};

		add_line(&in, max, true);      /* exactly at the limit */
		add_line(&in, max + 1, true);  /* one over */
		add_line(&in, max, false);     /* at the limit with LF */
		add_line(&in, max + 1, false); /* one over with LF */
		add_line(&in, max * 10, true); /* far over */
		str_addf(&in, "QUIT\r\n");
		for (int i = 0; i < 40; i++) /* pipelined past the buffer */
			str_addf(&in, "RCPT TO:<user%d@example.org>\r\n", i);
		add_line(&in, max * 3 + 7, true);
		str_addf(&in, "RSET\r\n");

		struct str want = {0};

		str_addf(&want, "NOOP\nL 500 5.5.6\nNOOP (lf)\nL 500 5.5.6\n"
		                "L 500 5.5.6\nQUIT\n");
		for (int i = 0; i < 40; i++)
			str_addf(&want, "RCPT <user%d@example.org>\n", i);
		str_addf(&want, "L 500 5.5.6\nRSET\n");
		check_session(k ? "long lines, small buffer" : "long lines",
		              in.p, in.len, limits[k], want.p);
		free(in.p);
		free(want.p);
	}
}

static void
test_size_limit(void)
{
	struct mc_smtp_limits l = {MC_SMTP_LINE_DEFAULT, MC_SMTP_BUFFER_DEFAULT,
	                           10};
	struct str big = {0};

	check_session("exactly at the limit",
	              IN("DATA\r\n12345678\r\n.\r\nNOOP\r\n"), &l,
	              "DATA\nD size=10 [12345678\\r\\n]\nNOOP\n");
	check_session("one over the limit",
	              IN("DATA\r\n123456789\r\n.\r\nNOOP\r\n"), &l,
	              "DATA\nD size=11 too_big\nNOOP\n");
	check_session("the limit counts unstuffed content",
	              IN("DATA\r\n..2345678\r\n.\r\nNOOP\r\n"), &l,
	              "DATA\nD size=10 [.2345678\\r\\n]\nNOOP\n");
	check_session(
	        "the limit counts normalised line ends",
	        IN("DATA\r\n123\n456\r\n.\r\nDATA\r\n123\n4567\r\n.\r\n"), &l,
	        "DATA\nD size=10 [123\\r\\n456\\r\\n] lf=1\nDATA\nD size=11 "
	        "too_big lf=1\n");
	str_addf(&big, "DATA\r\n");
	for (int i = 0; i < 5000; i++)
		str_addf(&big, "line %d of a message that is far too big\r\n",
		         i);
	str_addf(&big, ".\r\nQUIT\r\n");
	{
		char *got = session_run(big.p, big.len, &l, 0);

		CHECK(strstr(got, " too_big\nQUIT\n") != NULL);
		free(got);
		got = session_run(big.p, big.len, &l, 1);
		CHECK(strstr(got, " too_big\nQUIT\n") != NULL);
		free(got);
	}
	free(big.p);
}

static void
test_starttls_discard(void)
{
	static const char in[] = "EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@x.test>"
	                         "\r\nRCPT TO:<y@z.test>\r\nPART";
	struct mc_smtp_limits l = {512, 600, 1000};
	struct mc_smtp_lines r;
	struct mc_smtp_line line;
	const struct mc_smtp_reply *rep;
	char junk[700];

	mc_smtp_lines_init(&r, &l);
	CHECK(mc_smtp_lines_feed(&r, in, sizeof(in) - 1) == sizeof(in) - 1);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 1);
	CHECK_STR(line.text, "EHLO x");
	CHECK(mc_smtp_lines_pending(&r) == sizeof(in) - 1 - 8);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 1);
	CHECK_STR(line.text, "STARTTLS");
	CHECK(line.len == 8 && !line.bare_lf);
	/* Pipelined before the handshake: must not survive it. */
	CHECK(mc_smtp_lines_pending(&r) == sizeof(in) - 1 - 18);
	mc_smtp_lines_discard(&r);
	CHECK(mc_smtp_lines_pending(&r) == 0);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 0);
	CHECK(mc_smtp_lines_feed(&r, "EHLO x\r\n", 8) == 8);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 1);
	CHECK_STR(line.text, "EHLO x");
	/* Discarding in the middle of an overlong line forgets it. */
	memset(junk, 'x', sizeof(junk));
	CHECK(mc_smtp_lines_feed(&r, junk, sizeof(junk)) == 600);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == -1);
	CHECK(rep->code == 500);
	CHECK_STR(rep->enhanced, "5.5.6");
	mc_smtp_lines_discard(&r);
	CHECK(mc_smtp_lines_feed(&r, "NOOP\r\n", 6) == 6);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 1);
	CHECK_STR(line.text, "NOOP");
	mc_smtp_lines_fini(&r);
}

static void
test_space_commit(void)
{
	struct mc_smtp_limits l = {512, 600, 1000};
	struct mc_smtp_lines r;
	struct mc_smtp_line line;
	const struct mc_smtp_reply *rep;
	size_t n;
	char *p;

	mc_smtp_lines_init(&r, &l);
	p = mc_smtp_lines_space(&r, &n);
	CHECK(n == 600);
	memcpy(p, "NOOP\r\nQU", 8);
	mc_smtp_lines_commit(&r, 8);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 1);
	CHECK_STR(line.text, "NOOP");
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 0);
	p = mc_smtp_lines_space(&r, &n);
	CHECK(n == 598); /* "QU" moved to the front */
	memcpy(p, "IT\n", 3);
	mc_smtp_lines_commit(&r, 3);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 1);
	CHECK_STR(line.text, "QUIT");
	CHECK(line.bare_lf && line.len == 4);
	/* A buffer full of complete lines: no space until one is taken. */
	for (int i = 0; i < 100; i++)
		CHECK(mc_smtp_lines_feed(&r, "NOOP\r\n", 6) == 6);
	CHECK(mc_smtp_lines_feed(&r, "NOOP\r\n", 6) == 0);
	mc_smtp_lines_space(&r, &n);
	CHECK(n == 0);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 1);
	mc_smtp_lines_space(&r, &n);
	CHECK(n == 6);
	/* Raising the limits keeps what is buffered. */
	l.max_line = 12288;
	l.buffer_size = 16384;
	mc_smtp_lines_limits(&r, &l);
	CHECK(mc_smtp_lines_pending(&r) == 99 * 6);
	for (int i = 0; i < 99; i++)
		CHECK(mc_smtp_lines_next(&r, &line, &rep) == 1);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 0);
	mc_smtp_lines_fini(&r);
}

/* RFC 4954 4: an AUTH line can be longer than the command limit. */
static void
test_limits_raise(void)
{
	struct mc_smtp_limits l;
	struct mc_smtp_lines r;
	struct mc_smtp_line line;
	const struct mc_smtp_reply *rep;
	struct str in = {0};

	str_addf(&in, "AUTH PLAIN ");
	for (int i = 0; i < 3000; i++)
		str_addn(&in, "A", 1);
	str_addf(&in, "\r\n");
	mc_smtp_limits_default(&l);
	l.max_line = 100; /* raised to the RFC minimum */
	mc_smtp_lines_init(&r, &l);
	CHECK(mc_smtp_lines_feed(&r, in.p, in.len) == MC_SMTP_BUFFER_DEFAULT ||
	      in.len < MC_SMTP_BUFFER_DEFAULT);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == -1);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 0);
	l.max_line = 12288;
	l.buffer_size = 12288;
	mc_smtp_lines_limits(&r, &l);
	CHECK(mc_smtp_lines_feed(&r, in.p, in.len) == in.len);
	CHECK(mc_smtp_lines_next(&r, &line, &rep) == 1);
	CHECK(line.len == in.len - 2);
	mc_smtp_lines_fini(&r);
	free(in.p);
}

static void
test_data_direct(void)
{
	static const char in[] = "abc\r\n.\r\nQUIT\r\n";
	struct mc_smtp_limits l;
	struct mc_smtp_data d;
	struct str out = {0};
	size_t used;

	mc_smtp_limits_default(&l);
	mc_smtp_data_init(&d, &l, sink, &out);
	CHECK(mc_smtp_data_parse(&d, in, 0, &used) == 0 && used == 0);
	CHECK(mc_smtp_data_parse(&d, in, sizeof(in) - 1, &used) == 1);
	CHECK(used == 8); /* the rest is the next command */
	CHECK(mc_smtp_data_parse(&d, in + used, 6, &used) == 1 && used == 0);
	CHECK_STR(out.p, "abc\r\n");
	CHECK(d.size == 5 && !d.too_big && !d.eightbit && !d.nul);
	free(out.p);
}

int
main(void)
{
	test_cmd_table();
	test_path_length();
	test_param_lengths();
	test_sessions();
	test_cmd_table_trickle();
	test_long_lines();
	test_size_limit();
	test_starttls_discard();
	test_space_commit();
	test_limits_raise();
	test_data_direct();
	return mc_test_done();
}
