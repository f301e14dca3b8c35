/* Delivery status notifications (dsn.c), checked by parsing them back:
 * CRLF everywhere and no line over 998 octets, the top header (From
 * MAILER-DAEMON, Auto-Submitted, Date, Message-ID, multipart/report with
 * report-type=delivery-status), the boundary (three parts, closing
 * delimiter, never found in the content, even when the content holds the
 * one first tried), the delivery-status fields per message and recipient,
 * RET=FULL vs HDRS vs none, the size bound and what falls back to headers,
 * ORCPT and ENVID passthrough (xtext decoded), UTF-8 addresses, 8-bit
 * originals, delays, NOTIFY and the null-sender rule. Then, if
 * /usr/bin/python3 has the email package, Python's parser must see a
 * well-formed multipart/report in each kind of DSN. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dsn.h"
#include "mem.h"
#include "test.h"

#define T0 1700000000 /* Tue, 14 Nov 2023 22:13:20 +0000 */

static const char original[] = "From: Sender <s@y.test>\r\n"
                               "To: a@x.test\r\n"
                               "Subject: original subject\r\n"
                               "Message-ID: <orig@y.test>\r\n"
                               "\r\n"
                               "Body line one.\r\n"
                               ".a line with a dot\r\n";

/* ---- Parsing a DSN back ------------------------------------------------ */

struct part {
	const char *head, *body; /* into the DSN */
	size_t head_len, body_len;
};

struct parsed {
	const char *head;
	size_t head_len;
	char boundary[80];
	struct part parts[4];
	int nparts;
	bool closed; /* the closing delimiter was found */
};

/* Every line ends in CRLF, none is longer than 998 octets. */
static bool
lines_ok(const char *p, size_t len)
{
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r') {
			if (i + 1 == len || p[i + 1] != '\n')
				return false;
		} else if (p[i] == '\n') {
			if (i == 0 || p[i - 1] != '\r')
				return false;
			col = 0;
			continue;
		}
		if (p[i] != '\r' && ++col > 998)
			return false;
	}
	return len >= 2 && p[len - 2] == '\r' && p[len - 1] == '\n';
}

/* The unfolded value of a field in a header block, into out. */
static bool
field(const char *head, size_t len, const char *name, char *out, size_t size)
{
	size_t nlen = strlen(name);

	for (size_t i = 0; i < len;) {
		const char *eol = memmem(head + i, len - i, "\r\n", 2);
		size_t end = eol != NULL ? (size_t)(eol - head) : len;

		if (end - i > nlen && strncasecmp(head + i, name, nlen) == 0 &&
		    head[i + nlen] == ':') {
			size_t n = 0, k = i + nlen + 1;

			for (;;) {
				for (; k < end && n + 1 < size; k++)
					if (n > 0 || head[k] != ' ')
						out[n++] = head[k];
				/* folded continuation */
				if (end + 2 < len && (head[end + 2] == ' ' ||
				                      head[end + 2] == '\t')) {
					k = end + 2;
					eol = memmem(head + k, len - k, "\r\n",
					             2);
					end = eol != NULL ? (size_t)(eol - head)
					                  : len;
					if (n + 1 < size)
						out[n++] = ' ';
					while (k < end && (head[k] == ' ' ||
					                   head[k] == '\t'))
						k++;
					continue;
				}
				break;
			}
			out[n] = '\0';
			return true;
		}
		i = end + 2;
	}
	return false;
}

static bool
parse(const char *dsn, size_t len, struct parsed *p)
{
	const char *sep = memmem(dsn, len, "\r\n\r\n", 4), *pos;
	char ct[400], delim[90], *b;
	size_t dlen;

	memset(p, 0, sizeof(*p));
	if (sep == NULL)
		return false;
	p->head = dsn;
	p->head_len = (size_t)(sep - dsn) + 2;
	if (!field(p->head, p->head_len, "Content-Type", ct, sizeof(ct)) ||
	    (b = strstr(ct, "boundary=\"")) == NULL)
		return false;
	snprintf(p->boundary, sizeof(p->boundary), "%s", b + 10);
	p->boundary[strcspn(p->boundary, "\"")] = '\0';
	dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", p->boundary);
	pos = memmem(sep, len - (size_t)(sep - dsn), delim, dlen);
	while (pos != NULL && p->nparts < 4) {
		const char *start = pos + dlen, *next, *hsep;

		if (start + 2 <= dsn + len && memcmp(start, "--", 2) == 0) {
			p->closed = strcmp(start, "--\r\n") == 0;
			return true;
		}
		start += 2; /* CRLF after the delimiter */
		next = memmem(start, len - (size_t)(start - dsn), delim, dlen);
		if (next == NULL)
			return false;
		hsep = memmem(start, (size_t)(next - start) + 2, "\r\n\r\n", 4);
		if (hsep == NULL)
			return false;
		p->parts[p->nparts].head = start;
		p->parts[p->nparts].head_len = (size_t)(hsep - start) + 2;
		p->parts[p->nparts].body = hsep + 4;
		p->parts[p->nparts].body_len =
		        hsep + 4 <= next ? (size_t)(next - (hsep + 4)) : 0;
		p->nparts++;
		pos = next;
	}
	return false;
}

static bool
part_type(const struct parsed *p, int i, const char *type)
{
	char ct[200];

	return i < p->nparts &&
	       field(p->parts[i].head, p->parts[i].head_len, "Content-Type", ct,
	             sizeof(ct)) &&
	       strncmp(ct, type, strlen(type)) == 0;
}

static bool
body_has(const struct parsed *p, int i, const char *s)
{
	return i < p->nparts && memmem(p->parts[i].body, p->parts[i].body_len,
	                               s, strlen(s)) != NULL;
}

/* Build, check the invariants every DSN has, parse. */
static bool
build(const struct mc_dsn_message *m, struct mc_dsn *dsn, struct parsed *p)
{
	const char *error;
	char v[300];

	if (mc_dsn_build(m, dsn, &error) < 0) {
		fprintf(stderr, "build: %s\n", error);
		return false;
	}
	CHECK(lines_ok(dsn->data, dsn->size));
	CHECK(parse(dsn->data, dsn->size, p));
	CHECK(p->nparts == 3 && p->closed);
	CHECK(field(p->head, p->head_len, "From", v, sizeof(v)) &&
	      strcmp(v, "Mail Delivery System <MAILER-DAEMON@relay.test>") ==
	              0);
	CHECK(field(p->head, p->head_len, "Auto-Submitted", v, sizeof(v)) &&
	      strcmp(v, "auto-replied") == 0);
	CHECK(field(p->head, p->head_len, "MIME-Version", v, sizeof(v)));
	CHECK(field(p->head, p->head_len, "Message-ID", v, sizeof(v)) &&
	      v[0] == '<' && strstr(v, "@relay.test>") != NULL);
	CHECK(field(p->head, p->head_len, "Date", v, sizeof(v)));
	CHECK(field(p->head, p->head_len, "Content-Type", v, sizeof(v)) &&
	      strncmp(v, "multipart/report; report-type=delivery-status;",
	              46) == 0);
	CHECK(part_type(p, 0, "text/plain"));
	CHECK(part_type(p, 1, "message/delivery-status"));
	return true;
}

static struct mc_dsn_message
base_message(const struct mc_dsn_rcpt *rcpts, size_t n)
{
	return (struct mc_dsn_message){
	        .reporting_mta = "relay.test",
	        .sender = "s@y.test",
	        .arrival = T0 - 3600,
	        .rcpts = rcpts,
	        .rcpt_count = n,
	        .original = original,
	        .original_size = sizeof(original) - 1,
	        .now = T0,
	};
}

/* ---- Tests ------------------------------------------------------------- */

static void
test_failed(void)
{
	struct mc_dsn_rcpt r[2] = {
	        {.address = "a@x.test",
	         .action = MC_DSN_FAILED,
	         .status = "5.1.1",
	         .remote_mta = "mx.x.test",
	         .code = 550,
	         .diagnostic = "<a@x.test>: user unknown",
	         .command = "RCPT TO",
	         .last_attempt = T0 - 60},
	        {.address = "b@x.test",
	         .action = MC_DSN_FAILED,
	         .status = "4.4.1",
	         .diagnostic = "connect to 192.0.2.1:25: connection refused",
	         .last_attempt = T0 - 30},
	};
	struct mc_dsn_message m = base_message(r, 2);
	struct mc_dsn dsn;
	struct parsed p;
	char v[300];

	if (!build(&m, &dsn, &p)) {
		CHECK(false);
		return;
	}
	CHECK(field(p.head, p.head_len, "To", v, sizeof(v)) &&
	      strcmp(v, "<s@y.test>") == 0);
	CHECK(field(p.head, p.head_len, "Subject", v, sizeof(v)) &&
	      strcmp(v, "Undelivered Mail Returned to Sender") == 0);
	CHECK(field(p.head, p.head_len, "Date", v, sizeof(v)) &&
	      strcmp(v, "Tue, 14 Nov 2023 22:13:20 +0000") == 0);
	CHECK(body_has(&p, 0, "This is the mail system at host relay.test."));
	CHECK(body_has(&p, 0, "<a@x.test>: host mx.x.test said: 550 5.1.1"));
	CHECK(body_has(&p, 0, "reply to RCPT TO command)"));
	CHECK(body_has(&p, 0, "connection refused"));
	CHECK(body_has(&p, 1,
	               "Reporting-MTA: dns; relay.test\r\n"
	               "Arrival-Date: Tue, 14 Nov 2023 21:13:20 +0000"
	               "\r\n\r\nFinal-Recipient: rfc822; a@x.test\r\n"
	               "Action: failed\r\nStatus: 5.1.1\r\n"
	               "Remote-MTA: dns; mx.x.test\r\n"
	               "Diagnostic-Code: smtp; 550 5.1.1 <a@x.test>: "
	               "user unknown\r\n"
	               "Last-Attempt-Date: Tue, 14 Nov 2023 22:12:20 "
	               "+0000\r\n\r\nFinal-Recipient: rfc822; b@x.test"
	               "\r\nAction: failed\r\nStatus: 4.4.1\r\n"
	               "Last-Attempt-Date: "));
	CHECK(!body_has(&p, 1, "Original-Envelope-Id"));
	CHECK(!body_has(&p, 1, "Original-Recipient"));
	/* No RET: the headers only. */
	CHECK(part_type(&p, 2, "text/rfc822-headers"));
	CHECK(body_has(&p, 2, "Subject: original subject\r\n"));
	CHECK(!body_has(&p, 2, "Body line one"));
	CHECK(!dsn.eightbit && !dsn.smtputf8 && !dsn.truncated);
	mc_dsn_fini(&dsn);
	mc_dsn_fini(&dsn);
}

static void
test_ret(void)
{
	struct mc_dsn_rcpt r = {.address = "a@x.test",
	                        .code = 550,
	                        .remote_mta = "mx.x.test",
	                        .diagnostic = "no"};
	struct mc_dsn_message m = base_message(&r, 1);
	struct mc_dsn dsn;
	struct parsed p;

	m.ret = MC_DSN_RET_FULL;
	if (build(&m, &dsn, &p)) {
		CHECK(part_type(&p, 2, "message/rfc822"));
		CHECK(p.parts[2].body_len == sizeof(original) - 1 &&
		      memcmp(p.parts[2].body, original, p.parts[2].body_len) ==
		              0);
		/* Default status from the action. */
		CHECK(body_has(&p, 1, "Status: 5.0.0\r\n"));
		CHECK(body_has(&p, 1, "Diagnostic-Code: smtp; 550 5.0.0 no"));
		CHECK(!dsn.truncated);
	}
	mc_dsn_fini(&dsn);

	m.ret = MC_DSN_RET_HDRS;
	if (build(&m, &dsn, &p)) {
		CHECK(part_type(&p, 2, "text/rfc822-headers"));
		CHECK(p.parts[2].body_len ==
		      (size_t)(strstr(original, "\r\n\r\n") - original) + 2);
		CHECK(!body_has(&p, 2, "Body line one"));
	}
	mc_dsn_fini(&dsn);

	/* RET=FULL of something bigger than the bound: headers instead. */
	m.ret = MC_DSN_RET_FULL;
	m.max_original = 60;
	if (build(&m, &dsn, &p)) {
		CHECK(part_type(&p, 2, "text/rfc822-headers"));
		CHECK(p.parts[2].body_len <= 60);
		CHECK(body_has(&p, 2, "From: Sender <s@y.test>\r\n"));
		CHECK(!body_has(&p, 2, "Subject"));
		CHECK(dsn.truncated);
		CHECK(body_has(&p, 0, "could not be returned"));
	}
	mc_dsn_fini(&dsn);
}

static void
test_size_bound(void)
{
	struct mc_dsn_rcpt r = {.address = "a@x.test"};
	struct mc_dsn_message m = base_message(&r, 1);
	size_t big_len = 5000 * 40 + 3000;
	char *big = mc_malloc(big_len + 10), *q = big;
	struct mc_dsn dsn;
	struct parsed p;

	for (int i = 0; i < 5000; i++)
		q += sprintf(q, "X-Header-%05d: some value here\r\n", i);
	q += sprintf(q, "\r\nbody\r\n");
	m.original = big;
	m.original_size = (size_t)(q - big);
	m.max_original = 10000;
	m.ret = MC_DSN_RET_FULL;
	if (build(&m, &dsn, &p)) {
		CHECK(part_type(&p, 2, "text/rfc822-headers"));
		CHECK(p.parts[2].body_len <= 10000 &&
		      p.parts[2].body_len > 9000);
		CHECK(dsn.truncated);
	}
	mc_dsn_fini(&dsn);

	/* The default bound. */
	m.max_original = 0;
	m.ret = MC_DSN_RET_HDRS;
	if (build(&m, &dsn, &p))
		CHECK(p.parts[2].body_len <= MC_DSN_MAX_ORIGINAL_DEFAULT);
	mc_dsn_fini(&dsn);
	free(big);
}

static void
test_long_lines(void)
{
	char diag[1500], *orig = mc_malloc(12000), *q = orig;
	struct mc_dsn_rcpt r = {
	        .address = "a@x.test", .code = 550, .diagnostic = diag};
	struct mc_dsn_message m = base_message(&r, 1);
	struct mc_dsn dsn;
	struct parsed p;

	/* A long reply text with spaces (folded) ... */
	for (int i = 0; i < 290; i++)
		memcpy(diag + i * 5, "word ", 5);
	diag[1450] = '\0';
	q += sprintf(q, "Subject: x\r\nX-Long: ");
	memset(q, 'h', 5000);
	q += 5000;
	q += sprintf(q, "\r\n\r\n");
	memset(q, 'b', 3000);
	q += 3000;
	q += sprintf(q, "\r\n");
	m.original = orig;
	m.original_size = (size_t)(q - orig);
	m.ret = MC_DSN_RET_FULL;
	if (build(&m, &dsn, &p)) { /* lines_ok checked 998 */
		CHECK(part_type(&p, 2, "text/rfc822-headers"));
		CHECK(dsn.truncated);
		CHECK(body_has(&p, 1, "Diagnostic-Code: smtp; 550 5.0.0 word"));
	}
	mc_dsn_fini(&dsn);

	/* ... and one without any (cut, not overlong). */
	memset(diag, 'w', sizeof(diag) - 1);
	diag[sizeof(diag) - 1] = '\0';
	if (build(&m, &dsn, &p))
		CHECK(body_has(&p, 1, "Diagnostic-Code: smtp; 550 5.0.0"));
	mc_dsn_fini(&dsn);
	free(orig);
}

static void
test_passthrough(void)
{
	struct mc_dsn_rcpt r[2] = {
	        {.address = "a@x.test",
	         .orcpt = "rfc822;a+2Bb@x.test",
	         .code = 550,
	         .diagnostic = "no"},
	        {.address = "c@x.test", .orcpt = "rfc822;bad+0Aline"},
	};
	struct mc_dsn_message m = base_message(r, 2);
	struct mc_dsn dsn;
	struct parsed p;

	m.envid = "ENV+3D1";
	m.received_from = "client.y.test";
	if (build(&m, &dsn, &p)) {
		CHECK(body_has(&p, 1, "Original-Envelope-Id: ENV=1\r\n"));
		CHECK(body_has(&p, 1, "Received-From-MTA: dns; client.y.test"));
		CHECK(body_has(&p, 1,
		               "Original-Recipient: rfc822; a+b@x.test"
		               "\r\nFinal-Recipient: rfc822; a@x.test"));
		/* Decoding would give a control character: kept encoded. */
		CHECK(body_has(&p, 1,
		               "Original-Recipient: rfc822; "
		               "bad+0Aline\r\n"));
	}
	mc_dsn_fini(&dsn);
}

static void
test_boundary(void)
{
	static const char tricky[] = "Subject: x\r\n\r\n--B1\r\n--B1--\r\n";
	struct mc_dsn_rcpt r = {.address = "a@x.test"};
	struct mc_dsn_message m = base_message(&r, 1);
	struct mc_dsn dsn;
	struct parsed p;

	m.boundary = "B2";
	if (build(&m, &dsn, &p))
		CHECK_STR(p.boundary, "B2");
	mc_dsn_fini(&dsn);

	m.boundary = "B1";
	m.original = tricky;
	m.original_size = sizeof(tricky) - 1;
	m.ret = MC_DSN_RET_FULL;
	if (build(&m, &dsn, &p)) {
		CHECK(strcmp(p.boundary, "B1") != 0);
		CHECK(strncmp(p.boundary, "=_mc_dsn_", 9) == 0);
		CHECK(part_type(&p, 2, "message/rfc822"));
		CHECK(body_has(&p, 2, "--B1--"));
	}
	mc_dsn_fini(&dsn);

	/* Random boundaries differ between DSNs. */
	{
		struct mc_dsn d2;
		struct parsed p2;

		m.boundary = NULL;
		if (build(&m, &dsn, &p) && build(&m, &d2, &p2))
			CHECK(strcmp(p.boundary, p2.boundary) != 0);
		mc_dsn_fini(&dsn);
		mc_dsn_fini(&d2);
	}
}

static void
test_utf8_and_8bit(void)
{
	static const char orig8[] = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\n"
	                            "bare lf\n";
	struct mc_dsn_rcpt r = {.address = "j\xc3\xb6rg+x@b\xc3\xbc.test",
	                        .action = MC_DSN_FAILED};
	struct mc_dsn_message m = base_message(&r, 1);
	struct mc_dsn dsn;
	struct parsed p;

	m.original = orig8;
	m.original_size = sizeof(orig8) - 1;
	m.ret = MC_DSN_RET_FULL;
	if (build(&m, &dsn, &p)) {
		CHECK(body_has(&p, 1,
		               "Final-Recipient: utf-8; "
		               "j\\x{F6}rg\\x{2B}x@b\\x{FC}.test\r\n"));
		CHECK(part_type(&p, 0, "text/plain; charset=utf-8"));
		CHECK(dsn.smtputf8 && dsn.eightbit);
		CHECK(part_type(&p, 2, "message/rfc822"));
		CHECK(body_has(&p, 2, "na\xc3\xafve\r\nbare lf\r\n"));
		CHECK(memmem(p.parts[2].head, p.parts[2].head_len,
		             "Content-Transfer-Encoding: 8bit", 31) != NULL);
	}
	mc_dsn_fini(&dsn);
}

static void
test_delayed(void)
{
	struct mc_dsn_rcpt r = {.address = "a@x.test",
	                        .action = MC_DSN_DELAYED,
	                        .code = 451,
	                        .status = "4.3.0",
	                        .remote_mta = "node1.test",
	                        .diagnostic = "try later",
	                        .retry_until = T0 + 5 * 86400};
	struct mc_dsn_message m = base_message(&r, 1);
	struct mc_dsn dsn;
	struct parsed p;
	char v[200];

	if (build(&m, &dsn, &p)) {
		CHECK(field(p.head, p.head_len, "Subject", v, sizeof(v)) &&
		      strcmp(v, "Delayed Mail (still being retried)") == 0);
		CHECK(body_has(&p, 1, "Action: delayed\r\nStatus: 4.3.0\r\n"));
		CHECK(body_has(&p, 1, "Will-Retry-Until: Sun, 19 Nov 2023"));
		CHECK(body_has(&p, 0, "Delivery will be tried until"));
	}
	mc_dsn_fini(&dsn);
	r.status = "9.9.9";
	if (build(&m, &dsn, &p))
		CHECK(body_has(&p, 1, "Status: 4.0.0\r\n"));
	mc_dsn_fini(&dsn);
}

static void
test_rules(void)
{
	struct mc_dsn_rcpt r = {.address = "a@x.test"};
	struct mc_dsn_message m = base_message(&r, 1);
	struct mc_dsn dsn;
	const char *error;

	CHECK(!mc_dsn_allowed(""));
	CHECK(!mc_dsn_allowed("<>"));
	CHECK(!mc_dsn_allowed(NULL));
	CHECK(mc_dsn_allowed("s@y.test"));
	m.sender = "";
	CHECK(mc_dsn_build(&m, &dsn, &error) < 0 && dsn.data == NULL);
	CHECK(strstr(error, "null sender") != NULL);
	m.sender = "<>";
	CHECK(mc_dsn_build(&m, &dsn, &error) < 0);
	m = base_message(&r, 0);
	CHECK(mc_dsn_build(&m, &dsn, &error) < 0);
	m = base_message(&r, 1);
	m.reporting_mta = NULL;
	CHECK(mc_dsn_build(&m, &dsn, &error) < 0);
	r.address = "a@x.test\r\nBcc: evil@z.test";
	m = base_message(&r, 1);
	CHECK(mc_dsn_build(&m, &dsn, &error) < 0);

	/* NOTIFY: NEVER 1, SUCCESS 2, FAILURE 4, DELAY 8. */
	CHECK(mc_dsn_wanted(0, MC_DSN_FAILED));
	CHECK(mc_dsn_wanted(0, MC_DSN_DELAYED));
	CHECK(!mc_dsn_wanted(0, MC_DSN_DELIVERED));
	CHECK(!mc_dsn_wanted(1, MC_DSN_FAILED));
	CHECK(mc_dsn_wanted(4, MC_DSN_FAILED));
	CHECK(!mc_dsn_wanted(4, MC_DSN_DELAYED));
	CHECK(mc_dsn_wanted(8 | 4, MC_DSN_DELAYED));
	CHECK(mc_dsn_wanted(2, MC_DSN_RELAYED));
	CHECK(!mc_dsn_wanted(2, MC_DSN_FAILED));
}

/* ---- Python's email parser --------------------------------------------- */

static const char py_check[] =
        "import sys, email\n"
        "from email import policy\n"
        "def fail(path, why):\n"
        "    print('dsn python check:', path, why)\n"
        "    sys.exit(1)\n"
        "for path in sys.argv[1:]:\n"
        "    m = email.message_from_bytes(open(path, 'rb').read(),\n"
        "                                 policy=policy.compat32)\n"
        "    if m.get_content_type() != 'multipart/report':\n"
        "        fail(path, 'type ' + m.get_content_type())\n"
        "    if m.get_param('report-type') != 'delivery-status':\n"
        "        fail(path, 'report-type')\n"
        "    if m['Auto-Submitted'] != 'auto-replied':\n"
        "        fail(path, 'Auto-Submitted')\n"
        "    parts = m.get_payload()\n"
        "    if len(parts) != 3:\n"
        "        fail(path, 'parts %d' % len(parts))\n"
        "    if parts[0].get_content_type() != 'text/plain':\n"
        "        fail(path, 'part 1')\n"
        "    if parts[1].get_content_type() != 'message/delivery-status':\n"
        "        fail(path, 'part 2')\n"
        "    blocks = parts[1].get_payload()\n"
        "    if len(blocks) < 2 or not blocks[0]['Reporting-MTA']:\n"
        "        fail(path, 'per-message fields')\n"
        "    for b in blocks[1:]:\n"
        "        for f in ('Final-Recipient', 'Action', 'Status'):\n"
        "            if not b[f]:\n"
        "                fail(path, 'missing ' + f)\n"
        "    t = parts[2].get_content_type()\n"
        "    if t == 'message/rfc822':\n"
        "        if parts[2].get_payload()[0]['Subject'] is None:\n"
        "            fail(path, 'returned message has no Subject')\n"
        "    elif t != 'text/rfc822-headers':\n"
        "        fail(path, 'part 3 ' + t)\n"
        "    for p in m.walk():\n"
        "        if p.defects:\n"
        "            fail(path, 'defects %r' % p.defects)\n";

static bool
write_temp(const void *data, size_t len, char *path)
{
	int fd;
	bool ok;

	strcpy(path, "/tmp/dsn_testXXXXXX");
	if ((fd = mkstemp(path)) < 0)
		return false;
	ok = write(fd, data, len) == (ssize_t)len;
	close(fd);
	return ok;
}

static void
test_python(void)
{
	struct mc_dsn_rcpt r[2] = {
	        {.address = "a@x.test",
	         .orcpt = "rfc822;a@x.test",
	         .code = 550,
	         .status = "5.1.1",
	         .remote_mta = "mx.x.test",
	         .diagnostic = "user unknown",
	         .last_attempt = T0},
	        {.address = "b\xc3\xbc@x.test",
	         .action = MC_DSN_DELAYED,
	         .retry_until = T0 + 86400},
	};
	enum mc_dsn_ret rets[3] = {MC_DSN_RET_FULL, MC_DSN_RET_HDRS,
	                           MC_DSN_RET_NONE};
	char paths[4][32], script[32], cmd[400];
	size_t n = 0;
	int status;

	status = system("/usr/bin/python3 -c 'import email' >/dev/null 2>&1");
	if (status != 0) {
		printf("python3 email package not available: check skipped\n");
		return;
	}
	for (int i = 0; i < 3; i++) {
		struct mc_dsn_message m = base_message(r, i == 2 ? 2 : 1);
		struct mc_dsn dsn;
		const char *error;

		m.ret = rets[i];
		m.envid = "E1";
		if (mc_dsn_build(&m, &dsn, &error) == 0 &&
		    write_temp(dsn.data, dsn.size, paths[n]))
			n++;
		mc_dsn_fini(&dsn);
	}
	CHECK(n == 3);
	CHECK(write_temp(py_check, sizeof(py_check) - 1, script));
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s %s %s", script,
	         paths[0], paths[1], paths[2]);
	status = system(cmd);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unlink(script);
	for (size_t i = 0; i < n; i++)
		unlink(paths[i]);
}

int
main(void)
{
	test_failed();
	test_ret();
	test_size_bound();
	test_long_lines();
	test_passthrough();
	test_boundary();
	test_utf8_and_8bit();
	test_delayed();
	test_rules();
	test_python();
	return mc_test_done();
}
