/* Fuzz target: a SEARCH program as a client sends it. The bytes run
 * through the command reader as "a SEARCH <bytes>\r\n" (so they may also
 * hold literals, or line ends that start more commands); every SEARCH
 * command that comes out is parsed, and a program that parses is
 * evaluated against a few fixed messages, each with and without its
 * bytes. Checked on the way: a refused program has a one-line error
 * text and no tree; RETURN bits stay in range; with data the answer is
 * never NEED_DATA; without data it is NEED_DATA only for programs with
 * text keys, and otherwise agrees with the answer with data. Nothing may
 * crash, leak, read out of bounds or take long. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parser.h"
#include "imap_search.h"
#include "pool.h"

#define MUST(cond)                                                             \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "imap_search_fuzz: %s failed\n",       \
			        #cond);                                        \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r);

static const char msg1[] =
        "From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.com>\r\n"
        "To: Alice <alice@example.org>,\r\n Bob <bob@example.net>\r\n"
        "Subject: =?UTF-8?B?R3LDvMOfZQ==?= =?utf-8?q?_aus_K=C3=B6ln?=\r\n"
        "Date: Fri, 15 Mar 2024 11:00:00 +0100\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n"
        "\r\n"
        "--b\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "VGhlIHNlY3JldCB3b3JkIGlzIFplYnJhLg0K\r\n"
        "--b\r\n"
        "Content-Type: text/html\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "<p>Caf=C3=A9 a soft=\r\n break</p>\r\n"
        "--b\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
        "Subject: inner\r\n\r\ninner body\r\n"
        "--b--\r\n";

static const char msg2[] = "Subject: plain\r\nCc: carol@example.org\r\n"
                           "\r\nhello world\r\n";

static const char msg3[] = "X-Only: header, no body";

static const struct mc_imap_search_msg msgs[] = {
        {.seq = 1,
         .uid = 7,
         .modseq = 3,
         .flags = "\\Seen $Label",
         .size = 900,
         .internaldate = 1710496800,
         .date = "Fri, 15 Mar 2024 11:00:00 +0100",
         .data = msg1,
         .len = sizeof(msg1) - 1},
        {.seq = 2,
         .uid = 9,
         .modseq = 12,
         .flags = "\\Flagged \\Draft",
         .recent = true,
         .size = 4000,
         .internaldate = 1710631800,
         .date = "16 Mar 2024 23:30 EST",
         .data = msg2,
         .len = sizeof(msg2) - 1},
        {.seq = 3,
         .uid = 30,
         .modseq = 1,
         .flags = "",
         .size = 23,
         .internaldate = -86400,
         .date = "garbage",
         .data = msg3,
         .len = sizeof(msg3) - 1},
        {.seq = 4,
         .uid = 31,
         .modseq = UINT64_MAX,
         .flags = NULL,
         .size = UINT64_MAX,
         .internaldate = INT64_MAX,
         .date = NULL,
         .data = "",
         .len = 0},
};

static void
check_search(const struct mc_imap_command *cmd)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_imap_search *s = NULL;
	struct mc_imap_search_options opts;
	const char *err = NULL;
	const struct mc_imap_search_ctx ctx = {.max_seq = 4,
	                                       .max_uid = 31,
	                                       .tz_offset_minutes = -330,
	                                       .now = 1710637200};
	int ret;

	ret = mc_imap_search_parse(cmd->args, cmd->nargs, pool, &s, &opts,
	                           &err);
	if (ret < 0) {
		MUST(s == NULL && err != NULL);
		MUST(strlen(err) < 200 && strpbrk(err, "\r\n") == NULL);
		mc_pool_free(&pool);
		return;
	}
	MUST(s != NULL);
	MUST((opts.ret & ~0xfu) == 0 && opts.esearch == (opts.ret != 0));
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct mc_imap_search_msg m = msgs[i];
		enum mc_imap_search_result with, without;

		with = mc_imap_search_match(s, &ctx, &m);
		m.data = NULL;
		m.len = 0;
		without = mc_imap_search_match(s, &ctx, &m);
		MUST(with == MC_IMAP_SEARCH_YES || with == MC_IMAP_SEARCH_NO);
		MUST(without == MC_IMAP_SEARCH_NEED_DATA || without == with);
		MUST(without != MC_IMAP_SEARCH_NEED_DATA ||
		     mc_imap_search_needs_data(s));
	}
	mc_pool_free(&pool);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char head[] = "a SEARCH ", tail[] = "\r\n";
	struct mc_imap_limits lim;
	struct mc_imap_reader r;
	const void *parts[3] = {head, data, tail};
	size_t lens[3] = {sizeof(head) - 1, size, sizeof(tail) - 1};

	mc_imap_limits_default(&lim);
	mc_imap_reader_init(&r, &lim);
	for (int k = 0; k < 3; k++) {
		size_t off = 0;

		for (;;) {
			struct mc_imap_command cmd;
			const struct mc_imap_reply *reply;
			int ret;

			while ((ret = mc_imap_reader_next(&r, &cmd, &reply)) !=
			       0)
				if (ret > 0 && strcmp(cmd.name, "SEARCH") == 0)
					check_search(&cmd);
			(void)mc_imap_reader_continuation(&r);
			if (off == lens[k])
				break;
			off += mc_imap_reader_feed(&r,
			                           (const char *)parts[k] + off,
			                           lens[k] - off);
		}
	}
	mc_imap_reader_fini(&r);
	return 0;
}

static const char *const seed_text[] = {
        "ALL",
        "OR SEEN BODY zebra",
        "NOT (SEEN BODY \"secret word\") 1:*,3",
        "RETURN (MIN MAX COUNT) CHARSET UTF-8 UNSEEN FROM j\xc3\xbcrgen",
        "RETURN () UID 7:* NOT DELETED",
        "HEADER Subject \"gr\xc3\xbc\xc3\x9f"
        "e aus\" TO bob",
        "OR OR SUBJECT inner TEXT caf\xc3\xa9 CC \"\"",
        "SENTSINCE 1-Mar-2024 SENTBEFORE \"20-Mar-2024\" SENTON 15-Mar-2024",
        "BEFORE 16-Mar-2024 ON 1-Jan-1970 SINCE 31-Dec-1969",
        "OLDER 3600 YOUNGER 86400 LARGER 100 SMALLER 5000",
        "MODSEQ \"/flags/\\\\draft\" all 10 KEYWORD $label UNKEYWORD x",
        "NEW OLD RECENT ANSWERED UNANSWERED DRAFT UNDRAFT FLAGGED "
        "UNFLAGGED DELETED UNDELETED SEEN",
        "BODY {11}\r\nsoft break TEXT {4+}\r\nZEBR",
        "(((((NOT NOT (OR 1 2))))) *:2)",
        "CHARSET KOI8-R BODY x",
        "BCC x HEADER",
};

size_t
mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r)
{
	static const uint8_t *seeds[sizeof(seed_text) / sizeof(seed_text[0])];
	static size_t sizes[sizeof(seed_text) / sizeof(seed_text[0])];
	size_t n = sizeof(seed_text) / sizeof(seed_text[0]);

	for (size_t i = 0; i < n; i++) {
		seeds[i] = (const uint8_t *)seed_text[i];
		sizes[i] = strlen(seed_text[i]);
	}
	*seeds_r = seeds;
	*sizes_r = sizes;
	return n;
}
