/* Fuzz target: bytes from an IMAP client as the server reads them. The
 * first byte picks the limits (default or tiny) and how the rest is cut
 * into reads; the rest runs through the command reader twice, once in as
 * few reads as the buffer takes and once chunked, and the two transcripts
 * of commands and errors must agree (continuation requests may differ: a
 * client that does not wait gets none). Checked on the way: every token is
 * NUL-terminated within its length, list counts stay inside the command,
 * names are upper-case, tags are short, errors come with a reply, and
 * every atom argument that looks like a sequence set parses or fails
 * cleanly. Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parser.h"

#define MUST(cond)                                                             \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "imap_fuzz: %s failed\n", #cond);      \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r);

static void
mix(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) { /* FNV-1a */
		*h ^= b[i];
		*h *= 0x100000001b3ull;
	}
}

static void
check_command(const struct mc_imap_command *cmd, uint64_t *h)
{
	struct mc_imap_range ranges[8];

	MUST(cmd->tag != NULL && cmd->name != NULL);
	MUST(strlen(cmd->tag) <= 64);
	for (const char *p = cmd->name; *p != '\0'; p++)
		MUST(!(*p >= 'a' && *p <= 'z'));
	mix(h, cmd->tag, strlen(cmd->tag) + 1);
	mix(h, cmd->name, strlen(cmd->name) + 1);
	mix(h, &cmd->uid, sizeof(cmd->uid));
	for (unsigned i = 0; i < cmd->nargs; i++) {
		const struct mc_imap_token *t = &cmd->args[i];
		size_t n;
		const char *err;

		MUST(t->type >= MC_IMAP_ATOM && t->type <= MC_IMAP_LIST);
		MUST(i + t->count < cmd->nargs || t->count == 0);
		MUST(t->items <= t->count);
		MUST(t->text[t->len] == '\0');
		if (t->type != MC_IMAP_LITERAL8 && t->type != MC_IMAP_LIST)
			MUST(memchr(t->text, '\0', t->len) == NULL);
		mix(h, &t->type, sizeof(t->type));
		mix(h, t->text, t->len);
		mix(h, &t->count, sizeof(t->count));
		if (t->type == MC_IMAP_ATOM &&
		    mc_imap_seqset_parse(t->text, t->len, ranges, 8, &n,
		                         &err) == 0) {
			MUST(n >= 1 && n <= 8);
			mc_imap_seqset_resolve(ranges, n, 100);
			for (size_t k = 0; k < n; k++)
				MUST(ranges[k].lo <= ranges[k].hi);
		}
	}
}

/* Feed in reads of at most chunk bytes; returns the transcript hash. */
static uint64_t
run(const uint8_t *data, size_t size, const struct mc_imap_limits *lim,
    size_t chunk)
{
	struct mc_imap_reader r;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t off = 0;

	mc_imap_reader_init(&r, lim);
	for (;;) {
		struct mc_imap_command cmd;
		const struct mc_imap_reply *reply = NULL;
		int ret;

		while ((ret = mc_imap_reader_next(&r, &cmd, &reply)) != 0) {
			if (ret > 0) {
				check_command(&cmd, &h);
				continue;
			}
			MUST(reply != NULL && reply->text != NULL);
			mix(&h, reply->text, strlen(reply->text));
			if (cmd.tag != NULL)
				mix(&h, cmd.tag, strlen(cmd.tag));
		}
		(void)mc_imap_reader_continuation(&r);
		if (off == size)
			break;
		size_t n = size - off < chunk ? size - off : chunk;

		off += mc_imap_reader_feed(&r, data + off, n);
	}
	mc_imap_reader_fini(&r);
	return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_imap_limits lim;
	size_t chunk;

	if (size < 1)
		return 0;
	mc_imap_limits_default(&lim);
	if (data[0] & 1) {
		lim.max_line = 64;
		lim.max_literal = 16;
		lim.max_nonsync = (data[0] & 2) ? 0 : 8;
		lim.max_command = 40;
		lim.max_tokens = 12;
		lim.max_depth = 3;
	}
	chunk = 1 + (data[0] >> 2);
	data++;
	size--;
	MUST(run(data, size, &lim, SIZE_MAX) == run(data, size, &lim, chunk));
	return 0;
}

static const char *const seed_text[] = {
        "\x01"
        "a1 LOGIN joe \"se\\\"cret\"\r\na2 SELECT \"INBOX\"\r\n"
        "a3 UID FETCH 1:*,4 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.100>)"
        "\r\n",
        "\x10"
        "a1 LOGIN {3}\r\njoe {6+}\r\nsecret\r\n"
        "a2 APPEND INBOX (\\Seen $Junk) \"21-Nov-2026 14:00:00 +0000\" {5}\r\n"
        "hello\r\na3 LOGOUT\r\n",
        "\x05"
        "a1 SEARCH OR (FROM x NOT SEEN) (SUBJECT \"y\") 1:3,5\r\n"
        "a2 STORE 2:* +FLAGS.SILENT (\\Seen)\r\na3 LIST \"\" %/*\r\n",
        "\x03"
        "a1 APPEND x {20+}\r\n0123456789abcdefghij {3+}\r\nabc\r\n"
        "a2 NOOP (((a)) ()) NIL\r\na3 APPEND x ~{2}\r\nxy\r\n",
        "\x07"
        "a1 NOOP 01234567890123456789012345678901234567890123456789"
        "0123456789 {2+}\r\nab\r\n\r\na2 NOOP (a\r\n* NOOP\r\n",
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
