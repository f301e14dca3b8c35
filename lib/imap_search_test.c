/* Unit tests for IMAP SEARCH: programs go through the real command reader
 * ("a SEARCH ...\r\n") and the parser, and the reader is gone before they
 * are evaluated (the tree must own its strings). A table of programs is
 * evaluated against four fixed messages, each with and without its bytes,
 * and compared with the expected answers (Y, N, ? for NEED_DATA); every
 * run also checks that the answer without data never contradicts the one
 * with data. Then errors, RETURN/CHARSET options and hostile input. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "imap_parser.h"
#include "imap_search.h"
#include "mem.h"
#include "pool.h"
#include "test.h"

/* Reader limits that leave nesting to the search parser. */
static struct mc_imap_limits limits;

/* Parse program as the arguments of a SEARCH command. Returns the
 * parser's result, or -2 when the reader refused the command. */
static int
parse(struct mc_pool *pool, const char *program,
      struct mc_imap_search **search_r, struct mc_imap_search_options *opts,
      const char **error_r)
{
	char *line =
	        mc_asprintf("a SEARCH%s%s\r\n", *program ? " " : "", program);
	size_t len = strlen(line), off = 0;
	struct mc_imap_reader r;
	struct mc_imap_command cmd;
	const struct mc_imap_reply *reply = NULL;
	int ret;

	mc_imap_reader_init(&r, &limits);
	for (;;) {
		off += mc_imap_reader_feed(&r, line + off, len - off);
		if ((ret = mc_imap_reader_next(&r, &cmd, &reply)) != 0 ||
		    off == len)
			break;
	}
	if (ret == 1) {
		ret = mc_imap_search_parse(cmd.args, cmd.nargs, pool, search_r,
		                           opts, error_r);
	} else {
		*error_r = reply != NULL ? reply->text : "incomplete command";
		ret = -2;
	}
	mc_imap_reader_fini(&r);
	free(line);
	return ret;
}

static int64_t
utc(int y, int mon, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900,
	                .tm_mon = mon - 1,
	                .tm_mday = d,
	                .tm_hour = h,
	                .tm_min = mi,
	                .tm_sec = s};

	return (int64_t)timegm(&tm);
}

static const char data1[] =
        "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.com>\r\n"
        "To: Alice <alice@example.org>,\r\n"
        " Bob <bob@example.net>\r\n"
        "Cc: carol@example.org\r\n"
        "Subject: Quarterly report\r\n"
        " for March\r\n"
        "Date: Fri, 15 Mar 2024 11:00:00 +0100\r\n"
        "X-Priority: 1\r\n"
        "\r\n"
        "Hello team,\r\n"
        "the numbers are attached.\r\n";

static const char data2[] =
        "From: Bob <bob@example.net>\r\n"
        "To: =?ISO-8859-1?Q?Andr=E9?= <andre@example.com>\r\n"
        "Subject: =?UTF-8?B?R3LDvMOfZQ==?= =?utf-8?q?_aus_K=C3=B6ln?=\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "VGhlIHNlY3JldCB3b3JkIGlzIFplYnJhLg0K\r\n"
        "QmlzIGJhbGQNCg==\r\n"
        "--b1\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "<p>Caf=C3=A9 au lait, a soft=\r\n"
        " break here</p>\r\n"
        "--b1--\r\n";

/* Header only: no empty line, no body. */
static const char data3[] = "Bcc: hidden@example.org\r\n"
                            "Subject: no body here\r\n"
                            "X-Empty:\r\n";

static const char data4[] =
        "From: dave@example.com\r\n"
        "Subject: =?UTF-8?Q?plain?=  =?UTF-8?Q?text?= tail\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "caf=C3=A9 soft=\r\n"
        "break and Zebra\r\n";

#define NMSG 4
static struct mc_imap_search_msg msgs[NMSG];
static struct mc_imap_search_ctx ctx;

static void
setup(void)
{
	mc_imap_limits_default(&limits);
	limits.max_depth = 200;
	ctx.max_seq = 4;
	ctx.max_uid = 40;
	ctx.now = utc(2024, 3, 17, 1, 0, 0);
	msgs[0] = (struct mc_imap_search_msg){
	        .seq = 1,
	        .uid = 10,
	        .modseq = 5,
	        .flags = "\\Seen \\Answered $Label",
	        .size = 1000,
	        .internaldate = utc(2024, 3, 15, 10, 0, 0),
	        .date = "Fri, 15 Mar 2024 11:00:00 +0100",
	        .data = data1,
	        .len = sizeof(data1) - 1};
	msgs[1] = (struct mc_imap_search_msg){
	        .seq = 2,
	        .uid = 20,
	        .modseq = 10,
	        .flags = "\\Flagged \\Draft",
	        .recent = true,
	        .size = 5000,
	        .internaldate = utc(2024, 3, 16, 23, 30, 0),
	        .date = "16 Mar 2024 23:30 EST",
	        .data = data2,
	        .len = sizeof(data2) - 1};
	msgs[2] = (struct mc_imap_search_msg){
	        .seq = 3,
	        .uid = 30,
	        .modseq = 1,
	        .flags = "\\Deleted",
	        .size = 200,
	        .internaldate = utc(2023, 12, 31, 23, 59, 59),
	        .date = NULL,
	        .data = data3,
	        .len = sizeof(data3) - 1};
	msgs[3] = (struct mc_imap_search_msg){
	        .seq = 4,
	        .uid = 40,
	        .modseq = 20,
	        .flags = "$Junk \\SEEN",
	        .recent = true,
	        .size = 3000,
	        .internaldate = utc(2024, 3, 17, 0, 30, 0),
	        .date = "garbage",
	        .data = data4,
	        .len = sizeof(data4) - 1};
}

static char
res_char(enum mc_imap_search_result r)
{
	return r == MC_IMAP_SEARCH_YES  ? 'Y'
	       : r == MC_IMAP_SEARCH_NO ? 'N'
	                                : '?';
}

struct match_case {
	const char *program;
	const char *with;    /* answers for the four messages with data */
	const char *without; /* without data; NULL: same as with */
};

static const struct match_case match_cases[] = {
        {"ALL", "YYYY", NULL},
        {"NOT ALL", "NNNN", NULL},
        /* flags, case-insensitive */
        {"SEEN", "YNNY", NULL},
        {"UNSEEN", "NYYN", NULL},
        {"unseen", "NYYN", NULL},
        {"ANSWERED", "YNNN", NULL},
        {"UNANSWERED", "NYYY", NULL},
        {"DELETED", "NNYN", NULL},
        {"UNDELETED", "YYNY", NULL},
        {"DRAFT", "NYNN", NULL},
        {"UNDRAFT", "YNYY", NULL},
        {"FLAGGED", "NYNN", NULL},
        {"UNFLAGGED", "YNYY", NULL},
        {"KEYWORD $label", "YNNN", NULL},
        {"KEYWORD $JUNK", "NNNY", NULL},
        {"KEYWORD $Lab", "NNNN", NULL},
        {"UNKEYWORD $Label", "NYYY", NULL},
        {"RECENT", "NYNY", NULL},
        {"OLD", "YNYN", NULL},
        {"NEW", "NYNN", NULL},
        /* sizes and modseqs */
        {"LARGER 1000", "NYNY", NULL},
        {"SMALLER 1000", "NNYN", NULL},
        {"LARGER 199", "YYYY", NULL},
        {"SMALLER 0", "NNNN", NULL},
        {"MODSEQ 10", "NYNY", NULL},
        {"MODSEQ 0", "YYYY", NULL},
        {"MODSEQ \"/flags/\\\\draft\" all 10", "NYNY", NULL},
        {"MODSEQ \"/flags/$Label\" PRIV 6", "NYNY", NULL},
        /* INTERNALDATE in UTC (ctx.tz_offset_minutes 0) */
        {"BEFORE 16-Mar-2024", "YNYN", NULL},
        {"ON 16-Mar-2024", "NYNN", NULL},
        {"SINCE 16-Mar-2024", "NYNY", NULL},
        {"ON \"15-mar-2024\"", "YNNN", NULL},
        {"SINCE 1-Jan-2024", "YYNY", NULL},
        {"BEFORE 01-Jan-2024", "NNYN", NULL},
        /* Date header as written; none / unparseable match nothing */
        {"SENTON 16-Mar-2024", "NYNN", NULL},
        {"SENTBEFORE 16-Mar-2024", "YNNN", NULL},
        {"SENTSINCE 15-Mar-2024", "YYNN", NULL},
        {"SENTON 15-Mar-2024", "YNNN", NULL},
        {"NOT SENTON 16-Mar-2024", "YNYY", NULL},
        /* WITHIN, now = 2024-03-17 01:00:00; both ends inclusive */
        {"YOUNGER 3600", "NNNY", NULL},
        {"YOUNGER 5400", "NYNY", NULL},
        {"OLDER 5400", "YYYN", NULL},
        {"OLDER 86400", "YNYN", NULL},
        /* sets; "*" is 4 for sequence numbers, 40 for UIDs */
        {"1,3", "YNYN", NULL},
        {"2:*", "NYYY", NULL},
        {"*", "NNNY", NULL},
        {"*:3", "NNYY", NULL},
        {"5:*", "NNNY", NULL},
        {"1:2,2:3", "YYYN", NULL},
        {"4:1", "YYYY", NULL},
        {"UID 20:30", "NYYN", NULL},
        {"UID *", "NNNY", NULL},
        {"UID 35:*", "NNNY", NULL},
        {"UID 1:15,40", "YNNY", NULL},
        {"UID 50:*", "NNNY", NULL},
        {"UID 11:19", "NNNN", NULL},
        /* header keys: unfolded, encoded-words decoded */
        {"FROM juergen@", "YNNN", "????"},
        {"FROM bob", "NYNN", "????"},
        {"FROM \"rgen M\"", "YNNN", "????"},
        {"FROM \"\"", "YYNY", "????"},
        {"TO bob@example.net", "YNNN", "????"},
        {"TO \"alice@example.org>, bob\"", "YNNN", "????"},
        {"TO andr", "NYNN", "????"},
        {"CC CAROL", "YNNN", "????"},
        {"BCC hidden", "NNYN", "????"},
        {"SUBJECT \"report for march\"", "YNNN", "????"},
        {"SUBJECT \"Grüße aus Köln\"", "NYNN", "????"},
        {"SUBJECT plaintext", "NNNY", "????"},
        {"SUBJECT \"plain text\"", "NNNN", "????"},
        {"SUBJECT \"text tail\"", "NNNY", "????"},
        {"SUBJECT \"=?utf-8\"", "NNNN", "????"},
        {"SUBJECT {6}\r\nREPORT", "YNNN", "????"},
        {"HEADER X-Priority \"\"", "YNNN", "????"},
        {"HEADER x-empty \"\"", "NNYN", "????"},
        {"HEADER X-Priority 2", "NNNN", "????"},
        {"HEADER Content-Type alternative", "NYNN", "????"},
        {"HEADER Content-Transfer-Encoding quoted", "NNNY", "????"},
        /* body: raw, and decoded base64/quoted-printable text parts */
        {"BODY \"numbers are attached\"", "YNNN", "????"},
        {"BODY \"secret word\"", "NYNN", "????"},
        {"BODY zebra", "NYNY", "????"},
        {"BODY \"soft break\"", "NYNN", "????"},
        {"BODY softbreak", "NNNY", "????"},
        {"BODY Quarterly", "NNNN", "????"},
        {"BODY \"\"", "YYYY", "????"},
        {"BODY \"content-transfer-encoding: base64\"", "NYNN", "????"},
        {"BODY \"CAFÉ\"", "NNNN", "????"}, /* non-ASCII: exact */
        {"BODY \"CAFé\"", "NYNY", "????"},
        {"BODY hidden", "NNNN", "????"},
        {"TEXT Quarterly", "YNNN", "????"},
        {"TEXT \"report for March\"", "YNNN", "????"},
        {"TEXT zebra", "NYNY", "????"},
        {"TEXT \"rgen M\"", "YNNN", "????"},
        {"TEXT hidden@", "NNYN", "????"},
        {"TEXT \"bis bald\"", "NYNN", "????"},
        /* combinations and three-valued logic */
        {"SEEN BODY numbers", "YNNN", "?NN?"},
        {"OR SEEN BODY zebra", "YYNY", "Y??Y"},
        {"NOT BODY zebra", "YNYN", "????"},
        {"NOT (SEEN BODY zebra)", "YYYN", "?YY?"},
        {"NOT OR SEEN BODY zebra", "NNYN", "N??N"},
        {"OR (FLAGGED DRAFT) (DELETED NOT RECENT)", "NYYN", NULL},
        {"NOT NOT SEEN", "YNNY", NULL},
        {"OR OR 1 2 3", "YYYN", NULL},
        {"(1:* UNSEEN) SMALLER 4000", "NNYN", NULL},
        {"OR NEW SUBJECT plain", "NYNY", "?Y??"},
        {"UID 10 NOT TEXT xyz", "YNNN", "?NNN"},
        {"OR SUBJECT plain HEADER x-empty \"\"", "NNYY", "????"},
        {"SENTSINCE 1-Jan-2024 OR BODY zebra TEXT numbers", "YYNN", "??NN"},
        {"((((SEEN))))", "YNNY", NULL},
};

static void
test_match(void)
{
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]);
	     i++) {
		const struct match_case *c = &match_cases[i];
		const char *want0 = c->without != NULL ? c->without : c->with;
		struct mc_pool *pool = mc_pool_new();
		struct mc_imap_search *s;
		struct mc_imap_search_options opts;
		const char *err = NULL;
		char got1[NMSG + 1] = "", got0[NMSG + 1] = "";

		if (parse(pool, c->program, &s, &opts, &err) != 0) {
			fprintf(stderr, "%s: parse failed: %s\n", c->program,
			        err);
			CHECK(0);
			mc_pool_free(&pool);
			continue;
		}
		for (size_t k = 0; k < NMSG; k++) {
			struct mc_imap_search_msg m = msgs[k];
			enum mc_imap_search_result r1, r0;

			r1 = mc_imap_search_match(s, &ctx, &m);
			m.data = NULL;
			m.len = 0;
			r0 = mc_imap_search_match(s, &ctx, &m);
			got1[k] = res_char(r1);
			got0[k] = res_char(r0);
			/* without data: never wrong, only undecided */
			CHECK(r1 != MC_IMAP_SEARCH_NEED_DATA);
			CHECK(r0 == MC_IMAP_SEARCH_NEED_DATA || r0 == r1);
			CHECK(r0 != MC_IMAP_SEARCH_NEED_DATA ||
			      mc_imap_search_needs_data(s));
		}
		if (strcmp(got1, c->with) != 0 || strcmp(got0, want0) != 0)
			fprintf(stderr, "%s: got %s/%s, want %s/%s\n",
			        c->program, got1, got0, c->with, want0);
		CHECK_STR(got1, c->with);
		CHECK_STR(got0, want0);
		mc_pool_free(&pool);
	}
}

/* The same INTERNALDATE keys an hour east and west of UTC. */
static void
test_timezone(void)
{
	static const struct {
		int tz;
		const char *program, *want;
	} cases[] = {
	        {60, "ON 17-Mar-2024", "NYNY"},
	        {60, "ON 1-Jan-2024", "NNYN"},
	        {-60, "ON 16-Mar-2024", "NYNY"},
	        {-60, "BEFORE 15-Mar-2024", "NNYN"},
	        {-600, "ON 15-Mar-2024", "YNNN"},
	        {840, "SINCE 16-Mar-2024", "YYNY"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mc_pool *pool = mc_pool_new();
		struct mc_imap_search_ctx c = ctx;
		struct mc_imap_search *s;
		struct mc_imap_search_options opts;
		const char *err;
		char got[NMSG + 1] = "";

		c.tz_offset_minutes = cases[i].tz;
		CHECK(parse(pool, cases[i].program, &s, &opts, &err) == 0);
		for (size_t k = 0; k < NMSG; k++)
			got[k] =
			        res_char(mc_imap_search_match(s, &c, &msgs[k]));
		CHECK_STR(got, cases[i].want);
		mc_pool_free(&pool);
	}
}

/* now = 0 in the context: the real clock. */
static void
test_clock(void)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_imap_search_ctx c = ctx;
	struct mc_imap_search_msg m = msgs[0];
	struct mc_imap_search *s;
	struct mc_imap_search_options opts;
	const char *err;

	c.now = 0;
	m.internaldate = (int64_t)time(NULL) - 10;
	CHECK(parse(pool, "YOUNGER 3600", &s, &opts, &err) == 0);
	CHECK(mc_imap_search_match(s, &c, &m) == MC_IMAP_SEARCH_YES);
	CHECK(parse(pool, "OLDER 3600", &s, &opts, &err) == 0);
	CHECK(mc_imap_search_match(s, &c, &m) == MC_IMAP_SEARCH_NO);
	mc_pool_free(&pool);
}

struct error_case {
	const char *program;
	const char *error; /* prefix of *error_r */
};

static const struct error_case error_cases[] = {
        {"", "Missing search key"},
        {"FOO", "Unknown search key FOO"},
        {"SEEN BOGUS", "Unknown search key BOGUS"},
        {"FROM", "Missing argument for FROM"},
        {"(FROM) x", "Missing argument for FROM"},
        {"HEADER Subject", "Missing argument for HEADER"},
        {"FROM (x)", "FROM needs a string"},
        {"KEYWORD \\Seen", "KEYWORD needs a string"},
        {"NOT", "Missing argument for NOT"},
        {"OR SEEN", "Missing argument for OR"},
        {"(OR SEEN) DRAFT", "Missing argument for OR"},
        {"()", "Empty parenthesised search key"},
        {"\"ALL\"", "Search key expected"},
        {"NIL", "Search key expected"},
        {"BEFORE", "Missing argument for BEFORE"},
        {"BEFORE 32-Jan-2024", "Invalid date for BEFORE"},
        {"ON 29-Feb-2023", "Invalid date for ON"},
        {"SINCE 1-Foo-2024", "Invalid date for SINCE"},
        {"SENTON 2024-01-01", "Invalid date for SENTON"},
        {"SENTBEFORE 001-Jan-2024", "Invalid date for SENTBEFORE"},
        {"SENTSINCE 1-Jan-24", "Invalid date for SENTSINCE"},
        {"BEFORE 0-Jan-2024", "Invalid date for BEFORE"},
        {"LARGER x", "Invalid number for LARGER"},
        {"SMALLER -1", "Invalid number for SMALLER"},
        {"LARGER 99999999999999999999", "Invalid number for LARGER"},
        {"LARGER \"5\"", "Invalid number for LARGER"},
        {"OLDER 0", "Invalid number for OLDER"},
        {"YOUNGER 4294967296", "Invalid number for YOUNGER"},
        {"1:0", "Invalid sequence set"},
        {"1,,2", "Invalid sequence set"},
        {"2:", "Invalid sequence set"},
        {"UID", "Missing argument for UID"},
        {"UID abc", "Invalid sequence set"},
        {"UID \"1\"", "Invalid sequence set"},
        {"$", "Saved search results ($) are not supported"},
        {"MODSEQ", "Missing argument for MODSEQ"},
        {"MODSEQ x", "Invalid number for MODSEQ"},
        {"MODSEQ 9223372036854775808", "Invalid number for MODSEQ"},
        {"MODSEQ \"/flags/\\\\Seen\" foo 5", "Invalid MODSEQ entry type"},
        {"MODSEQ \"/x\" all 5", "Invalid MODSEQ entry name"},
        {"MODSEQ \"/flags/\\\\Seen\" all", "Missing argument for MODSEQ"},
        {"CHARSET", "Missing argument for CHARSET"},
        {"CHARSET KOI8-R ALL", "[BADCHARSET (US-ASCII UTF-8)]"},
        {"CHARSET \"ISO-8859-1\" BODY x", "[BADCHARSET (US-ASCII UTF-8)]"},
        {"CHARSET us-ascii", "Missing search key"},
        {"ALL CHARSET UTF-8", "Unknown search key CHARSET"},
        {"RETURN (FOO) ALL", "Unsupported RETURN option FOO"},
        {"RETURN (SAVE) ALL", "Unsupported RETURN option SAVE"},
        {"RETURN (MIN \"MAX\") ALL", "Invalid RETURN option"},
        {"RETURN ((MIN)) ALL", "Invalid RETURN option"},
        {"RETURN MIN ALL", "RETURN needs a list of options"},
        {"RETURN", "Missing argument for RETURN"},
        {"RETURN (MIN)", "Missing search key"},
        {"ALL RETURN (MIN)", "Unknown search key RETURN"},
};

static void
test_errors(void)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]);
	     i++) {
		const struct error_case *c = &error_cases[i];
		struct mc_pool *pool = mc_pool_new();
		struct mc_imap_search *s = (void *)1;
		struct mc_imap_search_options opts;
		const char *err = NULL;
		int ret = parse(pool, c->program, &s, &opts, &err);

		if (ret != -1 || err == NULL ||
		    strncmp(err, c->error, strlen(c->error)) != 0)
			fprintf(stderr, "%s: ret %d error '%s', want '%s'\n",
			        c->program, ret, err ? err : "(null)",
			        c->error);
		CHECK(ret == -1);
		CHECK(err != NULL &&
		      strncmp(err, c->error, strlen(c->error)) == 0);
		CHECK(s == NULL);
		CHECK(err == NULL || strpbrk(err, "\r\n") == NULL);
		mc_pool_free(&pool);
	}
}

static void
test_options(void)
{
	static const struct {
		const char *program;
		bool esearch;
		unsigned ret;
		const char *charset;
		bool modseq, needs_data;
	} cases[] = {
	        {"ALL", false, 0, NULL, false, false},
	        {"RETURN () ALL", true, MC_IMAP_SEARCH_RET_ALL, NULL, false,
	         false},
	        {"RETURN (MIN MAX) SEEN", true,
	         MC_IMAP_SEARCH_RET_MIN | MC_IMAP_SEARCH_RET_MAX, NULL, false,
	         false},
	        {"RETURN (count all) CHARSET UTF-8 BODY x", true,
	         MC_IMAP_SEARCH_RET_COUNT | MC_IMAP_SEARCH_RET_ALL, "UTF-8",
	         false, true},
	        {"RETURN (MIN MAX COUNT ALL) 1:*", true,
	         MC_IMAP_SEARCH_RET_MIN | MC_IMAP_SEARCH_RET_MAX |
	                 MC_IMAP_SEARCH_RET_COUNT | MC_IMAP_SEARCH_RET_ALL,
	         NULL, false, false},
	        {"CHARSET us-ascii SEEN", false, 0, "us-ascii", false, false},
	        {"CHARSET {5}\r\nutf-8 ALL", false, 0, "utf-8", false, false},
	        {"MODSEQ 5", false, 0, NULL, true, false},
	        {"NOT OR SEEN MODSEQ \"/flags/\\\\draft\" all 5", false, 0,
	         NULL, true, false},
	        {"OR SEEN BODY x", false, 0, NULL, false, true},
	        {"NOT HEADER a b", false, 0, NULL, false, true},
	        {"(SEEN (DRAFT TEXT y))", false, 0, NULL, false, true},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mc_pool *pool = mc_pool_new();
		struct mc_imap_search *s = NULL;
		struct mc_imap_search_options o;
		const char *err = NULL;

		if (parse(pool, cases[i].program, &s, &o, &err) != 0) {
			fprintf(stderr, "%s: %s\n", cases[i].program, err);
			CHECK(0);
			mc_pool_free(&pool);
			continue;
		}
		CHECK(o.esearch == cases[i].esearch);
		CHECK(o.ret == cases[i].ret);
		if (cases[i].charset == NULL)
			CHECK(o.charset == NULL);
		else
			CHECK_STR(o.charset, cases[i].charset);
		CHECK(o.uses_modseq == cases[i].modseq);
		CHECK(mc_imap_search_needs_data(s) == cases[i].needs_data);
		mc_pool_free(&pool);
	}
}

/* What a program reads besides the metadata: the Date (only SENTBEFORE,
 * SENTON and SENTSINCE, wherever they sit), and whether a message of just
 * some header fields answers it. */
static void
test_key_needs(void)
{
	static const char *const fields[] = {"Subject", "From", "To", NULL};
	static const struct {
		const char *program;
		bool needs_date, fields_only;
	} cases[] = {
	        {"ALL", false, true},
	        {"SUBJECT x", false, true},
	        {"HEADER subject x", false, true},
	        {"OR FROM a NOT TO b", false, true},
	        {"(SEEN (SUBJECT y))", false, true},
	        {"CC x", false, false},
	        {"HEADER X-Spam yes", false, false},
	        {"OR SUBJECT x BODY y", false, false},
	        {"NOT TEXT z", false, false},
	        {"BEFORE 1-Jan-2020", false, true},
	        {"SENTON 1-Jan-2020", true, true},
	        {"OR SEEN NOT SENTSINCE 1-Jan-2020", true, true},
	        {"(DRAFT (SENTBEFORE 2-Feb-2021))", true, true},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mc_pool *pool = mc_pool_new();
		struct mc_imap_search *s = NULL;
		struct mc_imap_search_options o;
		const char *err = NULL;

		CHECK(parse(pool, cases[i].program, &s, &o, &err) == 0);
		if (s != NULL &&
		    (mc_imap_search_needs_date(s) != cases[i].needs_date ||
		     mc_imap_search_fields_only(s, fields) !=
		             cases[i].fields_only)) {
			fprintf(stderr, "key needs %s\n", cases[i].program);
			CHECK(0);
		}
		mc_pool_free(&pool);
	}
}

/* "prefix" n times, then middle, then "suffix" n times. */
static char *
repeat(const char *prefix, unsigned n, const char *middle, const char *suffix)
{
	size_t len = (strlen(prefix) + strlen(suffix)) * n + strlen(middle);
	char *s = mc_malloc(len + 1), *p = s;

	for (unsigned i = 0; i < n; i++, p += strlen(prefix))
		memcpy(p, prefix, strlen(prefix));
	memcpy(p, middle, strlen(middle));
	p += strlen(middle);
	for (unsigned i = 0; i < n; i++, p += strlen(suffix))
		memcpy(p, suffix, strlen(suffix));
	*p = '\0';
	return s;
}

static int
parse_result(const char *program, const char *error_prefix)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_imap_search *s;
	struct mc_imap_search_options opts;
	const char *err = NULL;
	int ret = parse(pool, program, &s, &opts, &err);

	if (ret == 0)
		CHECK(mc_imap_search_match(s, &ctx, &msgs[0]) !=
		      MC_IMAP_SEARCH_NEED_DATA);
	if (error_prefix != NULL &&
	    (ret != -1 || err == NULL ||
	     strncmp(err, error_prefix, strlen(error_prefix)) != 0)) {
		fprintf(stderr, "%.40s...: ret %d '%s', want '%s'\n", program,
		        ret, err ? err : "(null)", error_prefix);
		CHECK(0);
	} else if (error_prefix != NULL) {
		CHECK(1);
	}
	mc_pool_free(&pool);
	return ret;
}

/* Limits: nesting, number of keys, string sizes; and input that would
 * be slow with naive matching or decoding. */
static void
test_hostile(void)
{
	char *p;

	p = repeat("NOT ", 64, "ALL", "");
	CHECK(parse_result(p, NULL) == 0);
	free(p);
	p = repeat("NOT ", 65, "ALL", "");
	parse_result(p, "Search program nested too deeply");
	free(p);
	p = repeat("NOT ", 5000, "ALL", "");
	parse_result(p, "Search program nested too deeply");
	free(p);
	p = repeat("(", 64, "SEEN", ")");
	CHECK(parse_result(p, NULL) == 0);
	free(p);
	p = repeat("(", 60, "NOT NOT NOT NOT NOT SEEN", ")");
	parse_result(p, "Search program nested too deeply");
	free(p);
	p = repeat("(", 65, "SEEN", ")"); /* the reader refuses this */
	CHECK(parse_result(p, NULL) != 0);
	free(p);
	p = repeat("OR SEEN ", 64, "ALL", "");
	CHECK(parse_result(p, NULL) == 0);
	free(p);
	p = repeat("OR SEEN ", 65, "ALL", "");
	parse_result(p, "Search program nested too deeply");
	free(p);
	parse_result("OR OR OR ALL ALL ALL", "Missing argument for OR");
	p = repeat("SEEN ", 999, "ALL", "");
	CHECK(parse_result(p, NULL) == 0);
	free(p);
	p = repeat("SEEN ", 1000, "ALL", "");
	parse_result(p, "Too many search keys");
	free(p);
	p = repeat("(SEEN) ", 500, "ALL", "");
	parse_result(p, "Too many search keys"); /* groups count too */
	free(p);
	p = repeat("1,", 20000, "2", "");
	CHECK(parse_result(p, NULL) == 0);
	free(p);

	/* strings: 64 KiB together */
	char *big = mc_malloc(40001);

	memset(big, 'x', 40000);
	p = mc_asprintf("BODY {40000}\r\n%s", big);
	CHECK(parse_result(p, NULL) == 0);
	free(p);
	p = mc_asprintf("BODY {40000}\r\n%s TEXT {40000}\r\n%s", big, big);
	parse_result(p, "Search strings too long");
	free(p);
	free(big);

	/* KMP: a 1 MiB body of 'a' against a*999 b stays linear */
	size_t n = 1024 * 1024;
	char *body = mc_malloc(n + 1);
	struct mc_imap_search_msg m = msgs[0];
	struct mc_pool *pool = mc_pool_new();
	struct mc_imap_search *s;
	struct mc_imap_search_options opts;
	const char *err;

	memcpy(body, "Subject: ", 9);
	memset(body + 9, 'a', n - 9);
	/* encoded-word starts without any end: decoding stays linear */
	for (size_t i = 9; i + 7 < 60000; i += 7)
		memcpy(body + i, "=?a?q?x", 7);
	m.data = body;
	m.len = n;
	p = repeat("a", 999, "b", "");
	char *prog = mc_asprintf("TEXT %s", p);

	CHECK(parse(pool, prog, &s, &opts, &err) == 0);
	CHECK(mc_imap_search_match(s, &ctx, &m) == MC_IMAP_SEARCH_NO);
	free(prog);
	free(p);
	CHECK(parse(pool, "SUBJECT \"q?=\"", &s, &opts, &err) == 0);
	CHECK(mc_imap_search_match(s, &ctx, &m) == MC_IMAP_SEARCH_NO);
	CHECK(parse(pool, "BODY aaaa", &s, &opts, &err) == 0);
	CHECK(mc_imap_search_match(s, &ctx, &m) == MC_IMAP_SEARCH_NO);
	mc_pool_free(&pool);
	free(body);
}

/* Odd messages: empty, no header, broken encoded-words and encodings. */
static void
test_odd_messages(void)
{
	static const struct {
		const char *data, *program;
		enum mc_imap_search_result want;
	} cases[] = {
	        {"", "BODY \"\"", MC_IMAP_SEARCH_YES},
	        {"", "TEXT x", MC_IMAP_SEARCH_NO},
	        {"", "HEADER From \"\"", MC_IMAP_SEARCH_NO},
	        {"\r\nbody only", "BODY only", MC_IMAP_SEARCH_YES},
	        {"Subject: =?utf-8?q?a?=\r\n", "SUBJECT a", MC_IMAP_SEARCH_YES},
	        {"Subject: =?utf-8?x?a?=\r\n", "SUBJECT \"=?utf-8?x?a?=\"",
	         MC_IMAP_SEARCH_YES},
	        {"Subject: =?utf-8?q?a b?=\r\n", "SUBJECT \"?q?a b\"",
	         MC_IMAP_SEARCH_YES},
	        {"Subject: =?utf-8*de?Q?Stra=C3=9Fe?=\r\n",
	         "SUBJECT \"Straße\"", MC_IMAP_SEARCH_YES},
	        {"Subject: =?utf-8?B?YWJj?==?utf-8?B?ZGVm?=\r\n",
	         "SUBJECT abcdef", MC_IMAP_SEARCH_YES},
	        {"Subject: =?utf-8?q?Hello_?=\r\n =?utf-8?q?World=5F?=\r\n",
	         "SUBJECT \"Hello World_\"", MC_IMAP_SEARCH_YES},
	        {"Subject: x =?utf-8?q?=ZZ?=\r\n", "SUBJECT \"x =ZZ\"",
	         MC_IMAP_SEARCH_YES},
	        {"Subject: =??q?a?=\r\n", "SUBJECT \"=??q?a?=\"",
	         MC_IMAP_SEARCH_YES},
	        {"Content-Type: text/plain\r\n"
	         "Content-Transfer-Encoding: base64\r\n\r\n"
	         "aGVs\r\nbG8=aGVsbG8\r\n",
	         "BODY hellohello", MC_IMAP_SEARCH_YES},
	        {"Content-Type: application/octet-stream\r\n"
	         "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n",
	         "BODY hello", MC_IMAP_SEARCH_NO},
	        {"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	         "a=3Db=\nc =4 =\r\n",
	         "BODY \"a=bc =4 \"", MC_IMAP_SEARCH_YES},
	        {"Content-Type: message/rfc822\r\n\r\n"
	         "Subject: inner\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	         "aW5uZXIgYm9keQ==\r\n",
	         "BODY \"inner body\"", MC_IMAP_SEARCH_YES},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mc_pool *pool = mc_pool_new();
		struct mc_imap_search_msg m = msgs[0];
		struct mc_imap_search *s;
		struct mc_imap_search_options opts;
		const char *err;

		m.data = cases[i].data;
		m.len = strlen(cases[i].data);
		if (parse(pool, cases[i].program, &s, &opts, &err) != 0) {
			fprintf(stderr, "%s: %s\n", cases[i].program, err);
			CHECK(0);
		} else if (mc_imap_search_match(s, &ctx, &m) != cases[i].want) {
			fprintf(stderr, "odd message %zu (%s): wrong answer\n",
			        i, cases[i].program);
			CHECK(0);
		} else {
			CHECK(1);
		}
		mc_pool_free(&pool);
	}
}

/* Date header forms for SENTON 15-Mar-2024. */
static void
test_sent_dates(void)
{
	static const struct {
		const char *date;
		bool match;
	} cases[] = {
	        {"Fri, 15 Mar 2024 11:00:00 +0100", true},
	        {"15 Mar 2024 23:59:59 -1200", true},
	        {"  Fri ,15 mar 2024 00:00 GMT (comment)", true},
	        {"(c) Fri, 15 (x (y)) Mar 2024 11 : 00 : 00 +0100", true},
	        {"15 March 2024 11:00:00 +0100", true},
	        {"15 Mar 24 11:00:00 +0100", true},
	        {"15 Mar 2024", true},
	        {"15 Mar 124 11:00 +0000", true}, /* obs-year: 1900 + 124 */
	        {"15 Mar 2024 11:00:00 +01", false},
	        {"15 Mar 2024 25:00:00 +0100", false},
	        {"15 Mar 2024 11:60 +0100", false},
	        {"32 Mar 2024 11:00:00 +0100", false},
	        {"15 Foo 2024 11:00:00 +0100", false},
	        {"14 Mar 2024 23:00:00 -0100", false}, /* as written: 14th */
	        {"Mar 15 2024", false},
	        {"", false},
	        {"15 Mar 20245", false},
	};

	struct mc_pool *pool = mc_pool_new();
	struct mc_imap_search *s;
	struct mc_imap_search_options opts;
	const char *err;

	CHECK(parse(pool, "SENTON 15-Mar-2024", &s, &opts, &err) == 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mc_imap_search_msg m = msgs[0];

		m.date = cases[i].date;
		m.data = NULL;
		if ((mc_imap_search_match(s, &ctx, &m) == MC_IMAP_SEARCH_YES) !=
		    cases[i].match) {
			fprintf(stderr, "date '%s': wrong answer\n",
			        cases[i].date);
			CHECK(0);
		} else {
			CHECK(1);
		}
	}
	mc_pool_free(&pool);
}

int
main(void)
{
	setup();
	test_match();
	test_timezone();
	test_clock();
	test_errors();
	test_options();
	test_hostile();
	test_odd_messages();
	test_sent_dates();
	test_key_needs();
	return mc_test_done();
}
