/* Building RFC 3464 delivery status notifications (see dsn.h). The three
 * parts are built into their own buffers first, so that the boundary can
 * be chosen last and checked against all of them; the text that comes
 * from outside (addresses, reply texts, the original message) is cleaned
 * on the way: control characters replaced, long fields folded, long text
 * wrapped, original lines over 998 octets cut (headers) or the original
 * demoted to its headers (RET=FULL), line ends made CRLF. */
#include "dsn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "error.h"
#include "mem.h"

#define LINE_MAX_OCTETS 998
#define WRAP 76
/* Texts from peers are cut to this (a reply text is at most 512 in the
 * SMTP client; the queue's last_error too). Keeps every word, and so
 * every folded line, under 998 octets. */
#define DIAG_MAX 900
#define ADDR_MAX 512

struct buf {
	char *data;
	size_t len, cap;
};

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->data = mc_realloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_add(b, tmp,
		        (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ---- Small helpers ------------------------------------------------------- */

bool
mc_dsn_allowed(const char *sender)
{
	return sender != NULL && sender[0] != '\0' && strcmp(sender, "<>") != 0;
}

bool
mc_dsn_wanted(unsigned notify, enum mc_dsn_action action)
{
	if (notify == 0)
		return action == MC_DSN_FAILED || action == MC_DSN_DELAYED;
	if (notify & 0x1u) /* NEVER */
		return false;
	switch (action) {
	case MC_DSN_FAILED:
		return (notify & 0x4u) != 0;
	case MC_DSN_DELAYED:
		return (notify & 0x8u) != 0;
	default:
		return (notify & 0x2u) != 0;
	}
}

static bool
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool
is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* A copy of at most max bytes with control characters (and 8-bit bytes
 * unless keep8) replaced by '?'. */
static char *
clean(const char *s, size_t max, bool keep8)
{
	size_t n = s != NULL ? strnlen(s, max) : 0;
	char *out = mc_malloc(n + 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = c < 0x20 || c == 0x7f || (c >= 0x80 && !keep8)
		                 ? '?'
		                 : (char)c;
	}
	return out;
}

static void
format_date(int64_t t, char out[40])
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
	                                   "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
	                                     "May", "Jun", "Jul", "Aug",
	                                     "Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	         days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	         tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* xtext (RFC 3461 4) decoded, when that gives printable ASCII; else NULL
 * (the caller then shows the encoded form, which is printable). */
static char *
xtext_decode(const char *s)
{
	char *out = mc_malloc(strlen(s) + 1);
	size_t n = 0;

	for (size_t i = 0; s[i] != '\0'; i++) {
		int c = (unsigned char)s[i];

		if (c == '+') {
			int hi = hexval(s[i + 1]),
			    lo = hi >= 0 ? hexval(s[i + 2]) : -1;

			if (lo < 0)
				goto fail;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c < 0x20 || c >= 0x7f)
			goto fail;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

/* One UTF-8 sequence at s (len bytes left): its code point and length;
 * an invalid byte is U+FFFD of length 1. */
static unsigned
utf8_next(const unsigned char *s, size_t len, size_t *n_r)
{
	unsigned cp, min;
	size_t n;

	if (s[0] < 0x80) {
		*n_r = 1;
		return s[0];
	}
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, cp = s[0] & 0x1fu, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0fu, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, cp = s[0] & 0x07u, min = 0x10000;
	else
		goto bad;
	if (n > len)
		goto bad;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			goto bad;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		goto bad;
	*n_r = n;
	return cp;
bad:
	*n_r = 1;
	return 0xfffd;
}

/* "rfc822; addr" for ASCII addresses; "utf-8; " and the address as
 * utf-8-addr-xtext (RFC 6533 3) otherwise, which stays ASCII. */
static void
put_address(struct buf *b, const char *addr)
{
	const unsigned char *s = (const unsigned char *)addr;
	size_t len = strlen(addr), n;

	if (is_ascii(addr)) {
		buf_printf(b, "rfc822; %s", addr);
		return;
	}
	buf_str(b, "utf-8; ");
	for (size_t i = 0; i < len; i += n) {
		unsigned cp = utf8_next(s + i, len - i, &n);

		if (cp > 0x20 && cp < 0x7f && cp != '+' && cp != '=' &&
		    cp != '\\')
			buf_add(b, s + i, 1);
		else
			buf_printf(b, "\\x{%X}", cp);
	}
}

/* "Name: value" folded at spaces to about WRAP columns. Every word is
 * shorter than DIAG_MAX, so no line passes 998 octets. */
static void
put_field(struct buf *b, const char *name, const char *value)
{
	size_t col = strlen(name) + 1;
	const char *p = value;

	buf_str(b, name);
	buf_str(b, ":");
	while (*p != '\0') {
		size_t w;

		while (*p == ' ')
			p++;
		w = strcspn(p, " ");
		if (w == 0)
			break;
		if (col + 1 + w > WRAP && col > strlen(name) + 1) {
			buf_str(b, "\r\n\t");
			col = 8;
		} else {
			buf_str(b, " ");
			col++;
		}
		buf_add(b, p, w);
		col += w;
		p += w;
	}
	buf_str(b, "\r\n");
}

/* A paragraph wrapped to WRAP columns, then CRLF. */
static void
put_wrapped(struct buf *b, const char *text)
{
	size_t col = 0;
	const char *p = text;

	while (*p != '\0') {
		size_t w;

		while (*p == ' ')
			p++;
		w = strcspn(p, " ");
		if (w == 0)
			break;
		if (col > 0 && col + 1 + w > WRAP) {
			buf_str(b, "\r\n");
			col = 0;
		} else if (col > 0) {
			buf_str(b, " ");
			col++;
		}
		buf_add(b, p, w);
		col += w;
		p += w;
	}
	buf_str(b, "\r\n");
}

/* ---- The text part ------------------------------------------------------- */

static bool
any_action(const struct mc_dsn_message *m, enum mc_dsn_action a)
{
	for (size_t i = 0; i < m->rcpt_count; i++)
		if (m->rcpts[i].action == a)
			return true;
	return false;
}

static const char *const action_text[] = {
        "delivery failed", "delivery delayed", "delivered",
        "relayed onwards", "expanded",
};

static void
human_rcpt(struct buf *b, const struct mc_dsn_rcpt *r, const char *status)
{
	char *addr = clean(r->address, ADDR_MAX, true);
	char *diag = clean(r->diagnostic, DIAG_MAX, false);
	char *remote = clean(r->remote_mta, 255, false);
	char *cmd = clean(r->command, 32, false);
	struct buf line = {0};

	buf_printf(&line, "<%s>: ", addr);
	if (r->code != 0)
		buf_printf(&line, "host %s said: %u %s %s",
		           remote[0] != '\0' ? remote : "(unknown)", r->code,
		           status, diag);
	else if (diag[0] != '\0')
		buf_str(&line, diag);
	else
		buf_printf(&line, "%s (%s)", action_text[r->action], status);
	if (cmd[0] != '\0')
		buf_printf(&line, " (in reply to %s command)", cmd);
	put_wrapped(b, line.data);
	buf_str(b, "\r\n");
	free(line.data);
	free(addr);
	free(diag);
	free(remote);
	free(cmd);
}

static void
human_part(struct buf *b, const struct mc_dsn_message *m, char (*status)[16],
           bool truncated)
{
	char *host = clean(m->reporting_mta, 255, false), date[40];

	buf_printf(b, "This is the mail system at host %s.\r\n\r\n", host);
	if (any_action(m, MC_DSN_FAILED)) {
		put_wrapped(b, "I'm sorry to have to inform you that your "
		               "message could not be delivered to one or "
		               "more recipients. The details are below.");
		buf_str(b, "\r\n");
	}
	if (any_action(m, MC_DSN_DELAYED)) {
		put_wrapped(b, "Your message could not be delivered yet to "
		               "one or more recipients. The mail system will "
		               "keep trying; you do not need to send it "
		               "again.");
		buf_str(b, "\r\n");
	}
	if (any_action(m, MC_DSN_DELIVERED) || any_action(m, MC_DSN_RELAYED) ||
	    any_action(m, MC_DSN_EXPANDED)) {
		put_wrapped(b, "Your message was delivered or passed on to "
		               "the recipients listed below, as you asked.");
		buf_str(b, "\r\n");
	}
	for (size_t i = 0; i < m->rcpt_count; i++) {
		human_rcpt(b, &m->rcpts[i], status[i]);
		if (m->rcpts[i].action == MC_DSN_DELAYED &&
		    m->rcpts[i].retry_until != 0) {
			format_date(m->rcpts[i].retry_until, date);
			buf_printf(b,
			           "  Delivery will be tried until %s.\r\n\r\n",
			           date);
		}
	}
	if (truncated)
		put_wrapped(b, "The original message could not be returned "
		               "in full (too large or unfit to include); "
		               "its header is attached.");
	free(host);
}

/* ---- The delivery-status part -------------------------------------------- */

/* RFC 3463 "c.sss.ddd" with c in 2, 4, 5. */
static bool
status_valid(const char *s)
{
	size_t i = 1, d;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return false;
	for (int part = 0; part < 2; part++) {
		for (i++, d = 0; s[i] >= '0' && s[i] <= '9'; i++, d++)
			;
		if (d == 0 || d > 3 || s[i] != (part == 0 ? '.' : '\0'))
			return false;
	}
	return true;
}

static const char *const action_names[] = {
        "failed", "delayed", "delivered", "relayed", "expanded",
};

static void
orcpt_field(struct buf *b, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char *type, *clean_orcpt, *decoded;
	struct buf v = {0};

	if (semi == NULL || semi == orcpt) {
		clean_orcpt = clean(orcpt, 500, false);
		buf_printf(&v, "rfc822; %s", clean_orcpt);
		free(clean_orcpt);
	} else {
		type = clean(orcpt, (size_t)(semi - orcpt), false);
		clean_orcpt = clean(semi + 1, 500, false);
		decoded = xtext_decode(clean_orcpt);
		buf_printf(&v, "%s; %s", type,
		           decoded != NULL ? decoded : clean_orcpt);
		free(type);
		free(clean_orcpt);
		free(decoded);
	}
	put_field(b, "Original-Recipient", v.data);
	free(v.data);
}

static void
status_rcpt(struct buf *b, const struct mc_dsn_rcpt *r, const char *status)
{
	char date[40], *diag, *remote;
	struct buf v = {0};

	buf_str(b, "\r\n");
	if (r->orcpt != NULL && r->orcpt[0] != '\0')
		orcpt_field(b, r->orcpt);
	put_address(&v, r->address);
	put_field(b, "Final-Recipient", v.data);
	buf_printf(b, "Action: %s\r\nStatus: %s\r\n",
	           action_names[(unsigned)r->action < 5 ? r->action : 0],
	           status);
	if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
		remote = clean(r->remote_mta, 255, false);
		buf_printf(b, "Remote-MTA: dns; %s\r\n", remote);
		free(remote);
	}
	if (r->code != 0) {
		v.len = 0;
		diag = clean(r->diagnostic, DIAG_MAX, false);
		buf_printf(&v, "smtp; %u %s %s", r->code, status, diag);
		put_field(b, "Diagnostic-Code", v.data);
		free(diag);
	}
	if (r->last_attempt != 0) {
		format_date(r->last_attempt, date);
		buf_printf(b, "Last-Attempt-Date: %s\r\n", date);
	}
	if (r->action == MC_DSN_DELAYED && r->retry_until != 0) {
		format_date(r->retry_until, date);
		buf_printf(b, "Will-Retry-Until: %s\r\n", date);
	}
	free(v.data);
}

static void
status_part(struct buf *b, const struct mc_dsn_message *m, char (*status)[16])
{
	char date[40], *s, *decoded;

	s = clean(m->reporting_mta, 255, false);
	buf_printf(b, "Reporting-MTA: dns; %s\r\n", s);
	free(s);
	if (m->received_from != NULL && m->received_from[0] != '\0') {
		s = clean(m->received_from, 255, false);
		buf_printf(b, "Received-From-MTA: dns; %s\r\n", s);
		free(s);
	}
	if (m->envid != NULL && m->envid[0] != '\0') {
		s = clean(m->envid, 100, false);
		decoded = xtext_decode(s);
		buf_printf(b, "Original-Envelope-Id: %s\r\n",
		           decoded != NULL ? decoded : s);
		free(decoded);
		free(s);
	}
	if (m->arrival != 0) {
		format_date(m->arrival, date);
		buf_printf(b, "Arrival-Date: %s\r\n", date);
	}
	for (size_t i = 0; i < m->rcpt_count; i++)
		status_rcpt(b, &m->rcpts[i], status[i]);
}

/* ---- The original -------------------------------------------------------- */

/* Whether the original can go in whole as message/rfc822: no NUL, no
 * bare CR, no line over 998 octets. */
static bool
original_fit(const unsigned char *p, size_t len)
{
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\0')
			return false;
		if (p[i] == '\r' && (i + 1 == len || p[i + 1] != '\n'))
			return false;
		if (p[i] == '\n') {
			col = 0;
		} else if (p[i] != '\r' && ++col > LINE_MAX_OCTETS) {
			return false;
		}
	}
	return true;
}

/* Length of the header block: up to and including the line end before
 * the empty line (or everything when there is none). */
static size_t
header_length(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const unsigned char *nl = memchr(p + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - p) + 1 : len;
		size_t content =
		        end - i - (nl != NULL) -
		        (nl != NULL && end - i >= 2 && p[end - 2] == '\r');

		if (content == 0)
			return i;
		i = end;
	}
	return len;
}

/* Append lines of p (CRLF, NUL and bare CR as '?', lines cut at 998)
 * while they fit in max bytes of output. Returns false if it stopped
 * early. */
static bool
append_lines(struct buf *b, const unsigned char *p, size_t len, size_t max,
             bool *eightbit)
{
	size_t used = 0, i = 0;

	while (i < len) {
		const unsigned char *nl = memchr(p + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - p) : len, n = end - i;
		char line[LINE_MAX_OCTETS + 2];

		if (n > 0 && nl != NULL && p[end - 1] == '\r')
			n--;
		if (n > LINE_MAX_OCTETS)
			n = LINE_MAX_OCTETS;
		if (used + n + 2 > max)
			return false;
		for (size_t k = 0; k < n; k++) {
			unsigned char c = p[i + k];

			line[k] = c == '\0' || c == '\r' ? '?' : (char)c;
			if (c >= 0x80)
				*eightbit = true;
		}
		memcpy(line + n, "\r\n", 2);
		buf_add(b, line, n + 2);
		used += n + 2;
		i = nl != NULL ? end + 1 : len;
	}
	return true;
}

/* The third part, with its own MIME header. Sets *truncated. */
static void
original_part(struct buf *b, const struct mc_dsn_message *m, bool *eightbit,
              bool *truncated)
{
	const unsigned char *p = m->original;
	size_t len = p != NULL ? m->original_size : 0;
	size_t max = m->max_original != 0 ? m->max_original
	                                  : MC_DSN_MAX_ORIGINAL_DEFAULT;
	bool full = m->ret == MC_DSN_RET_FULL;
	struct buf body = {0};

	*eightbit = false;
	*truncated = false;
	if (full && (len > max || !original_fit(p, len))) {
		full = false;
		*truncated = true;
	}
	if (full) {
		append_lines(&body, p, len, SIZE_MAX, eightbit);
	} else if (!append_lines(&body, p, header_length(p, len), max,
	                         eightbit)) {
		*truncated = true;
	}
	buf_printf(b, "Content-Description: %s\r\nContent-Type: %s\r\n",
	           full ? "Undelivered Message" : "Undelivered Message Headers",
	           full ? "message/rfc822" : "text/rfc822-headers");
	if (*eightbit)
		buf_str(b, "Content-Transfer-Encoding: 8bit\r\n");
	buf_str(b, "\r\n");
	if (body.data != NULL)
		buf_add(b, body.data, body.len);
	free(body.data);
}

/* ---- Assembly ------------------------------------------------------------ */

static void
random_hex(char *out, size_t bytes)
{
	static uint64_t counter;
	unsigned char r[32];

	if (bytes > sizeof(r))
		bytes = sizeof(r);
	if (RAND_bytes(r, (int)bytes) != 1) {
		/* Uniqueness is still checked against the content. */
		uint64_t x = (uint64_t)time(NULL) ^
		             (++counter * 0x9e3779b97f4a7c15ull);

		for (size_t i = 0; i < bytes; i++)
			r[i] = (unsigned char)(x >> (8 * (i % 8))) ^
			       (unsigned char)i;
	}
	for (size_t i = 0; i < bytes; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static bool
boundary_free(const struct buf *parts, size_t n, const char *boundary)
{
	char delim[80];
	size_t dlen;

	dlen = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
	for (size_t i = 0; i < n; i++)
		if (parts[i].data != NULL &&
		    memmem(parts[i].data, parts[i].len, delim, dlen) != NULL)
			return false;
	return true;
}

static void
pick_boundary(const struct mc_dsn_message *m, const struct buf *parts, size_t n,
              char out[64])
{
	char hex[33];

	if (m->boundary != NULL && strlen(m->boundary) < 60 &&
	    !has_ctl(m->boundary)) {
		snprintf(out, 64, "%s", m->boundary);
		if (boundary_free(parts, n, out))
			return;
	}
	do {
		random_hex(hex, 16);
		snprintf(out, 64, "=_mc_dsn_%s", hex);
	} while (!boundary_free(parts, n, out));
}

static void
top_header(struct buf *b, const struct mc_dsn_message *m, const char *boundary)
{
	char *host = clean(m->reporting_mta, 255, false);
	char *sender = clean(m->sender, ADDR_MAX, true), date[40], id[33];
	const char *subject = "Delivery Status Notification";

	if (any_action(m, MC_DSN_FAILED))
		subject = "Undelivered Mail Returned to Sender";
	else if (any_action(m, MC_DSN_DELAYED))
		subject = "Delayed Mail (still being retried)";
	format_date(m->now != 0 ? m->now : (int64_t)time(NULL), date);
	if (m->message_id != NULL)
		snprintf(id, sizeof(id), "%.32s", m->message_id);
	else
		random_hex(id, 16);
	buf_printf(b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	           host);
	buf_printf(b, "To: <%s>\r\n", sender);
	buf_printf(b, "Subject: %s\r\n", subject);
	buf_printf(b, "Date: %s\r\n", date);
	buf_printf(b, "Message-ID: <%s.dsn@%s>\r\n", id, host);
	buf_str(b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	buf_printf(b,
	           "Content-Type: multipart/report; "
	           "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n",
	           boundary);
	buf_str(b, "\r\nThis is a MIME-encapsulated message.\r\n");
	free(host);
	free(sender);
}

static const char *
check_input(const struct mc_dsn_message *m)
{
	if (!mc_dsn_allowed(m->sender))
		return "no DSN for the null sender";
	if (has_ctl(m->sender) || strlen(m->sender) > ADDR_MAX)
		return "invalid sender";
	if (m->reporting_mta == NULL || m->reporting_mta[0] == '\0' ||
	    has_ctl(m->reporting_mta) || strchr(m->reporting_mta, ' '))
		return "invalid reporting MTA";
	if (m->rcpt_count == 0 || m->rcpts == NULL)
		return "no recipients";
	for (size_t i = 0; i < m->rcpt_count; i++)
		if (m->rcpts[i].address == NULL ||
		    m->rcpts[i].address[0] == '\0' ||
		    has_ctl(m->rcpts[i].address) ||
		    strlen(m->rcpts[i].address) > ADDR_MAX ||
		    (unsigned)m->rcpts[i].action > MC_DSN_EXPANDED)
			return mc_errorf("invalid recipient %zu", i);
	return NULL;
}

int
mc_dsn_build(const struct mc_dsn_message *m, struct mc_dsn *dsn_r,
             const char **error_r)
{
	static const char *const descr[] = {"Notification", "Delivery report",
	                                    NULL};
	static const char *const ctype[] = {NULL, "message/delivery-status",
	                                    NULL};
	struct buf parts[3] = {{0}}, out = {0};
	char(*status)[16], boundary[64];
	bool utf8 = !is_ascii(m->sender), eightbit = false, trunc = false;
	const char *why = check_input(m);

	memset(dsn_r, 0, sizeof(*dsn_r));
	if (why != NULL) {
		*error_r = mc_errorf("dsn: %s", why);
		return -1;
	}
	status = mc_calloc(m->rcpt_count, sizeof(*status));
	for (size_t i = 0; i < m->rcpt_count; i++) {
		const struct mc_dsn_rcpt *r = &m->rcpts[i];

		utf8 = utf8 || !is_ascii(r->address);
		if (status_valid(r->status) && strlen(r->status) < 16)
			snprintf(status[i], 16, "%s", r->status);
		else
			snprintf(status[i], 16, "%c.0.0",
			         r->action == MC_DSN_FAILED    ? '5'
			         : r->action == MC_DSN_DELAYED ? '4'
			                                       : '2');
	}
	original_part(&parts[2], m, &eightbit, &trunc);
	human_part(&parts[0], m, status, trunc);
	status_part(&parts[1], m, status);
	pick_boundary(m, parts, 3, boundary);

	top_header(&out, m, boundary);
	for (int i = 0; i < 3; i++) {
		buf_printf(&out, "\r\n--%s\r\n", boundary);
		if (i == 0)
			buf_printf(&out,
			           "Content-Description: %s\r\nContent-Type: "
			           "text/plain; charset=%s\r\n%s\r\n",
			           descr[0], utf8 ? "utf-8" : "us-ascii",
			           utf8 ? "Content-Transfer-Encoding: 8bit\r\n"
			                : "");
		else if (i == 1)
			buf_printf(&out,
			           "Content-Description: %s\r\nContent-Type: "
			           "%s\r\n\r\n",
			           descr[1], ctype[1]);
		buf_add(&out, parts[i].data, parts[i].len);
		free(parts[i].data);
	}
	buf_printf(&out, "\r\n--%s--\r\n", boundary);
	free(status);
	dsn_r->data = out.data;
	dsn_r->size = out.len;
	dsn_r->eightbit = utf8 || eightbit;
	dsn_r->smtputf8 = utf8;
	dsn_r->truncated = trunc;
	return 0;
}

void
mc_dsn_fini(struct mc_dsn *dsn)
{
	free(dsn->data);
	memset(dsn, 0, sizeof(*dsn));
}
