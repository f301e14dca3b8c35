/* Fuzz target: bytes from an SMTP client as the server reads them. The
 * first byte picks the limits and how the rest is cut into reads; the rest
 * runs through the line reader, the command parser and, after a DATA that
 * parsed, the DATA reader, the way the server drives them. The session
 * runs twice, once in as few reads as the buffer allows and once chunked,
 * and the two must agree (a differential check of resumability). Checked
 * on the way: lines are within the limit and hold no NUL, errors come with
 * a reply, paths are within 256 octets, DATA output never holds a bare LF
 * and never passes the size limit. Nothing here may crash, leak or read
 * out of bounds, whatever the bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parser.h"

#define MUST(cond)                                                             \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "smtp_fuzz: %s failed\n", #cond);      \
			abort();                                               \
		}                                                              \
	} while (0)

struct run {
	struct mc_smtp_limits limits;
	struct mc_smtp_lines lines;
	struct mc_smtp_data data;
	bool in_data, utf8, stopped;
	uint64_t hash;         /* of the transcript */
	uint64_t content_hash; /* of the current message */
	uint64_t sunk;         /* bytes given to the sink this message */
	int last;              /* last byte given to the sink, or -1 */
	char copy[16384];
};

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
mix_u64(uint64_t *h, uint64_t v)
{
	mix(h, &v, sizeof(v));
}

static void
sink(void *ctx, const void *p, size_t n)
{
	struct run *r = ctx;
	const unsigned char *b = p;

	MUST(n > 0);
	for (size_t i = 0; i < n; i++) {
		MUST(b[i] != '\n' || r->last == '\r');
		r->last = b[i];
	}
	r->sunk += n;
	MUST(r->sunk <= r->limits.max_message);
	mix(&r->content_hash, p, n);
}

static void
check_cmd(const struct mc_smtp_cmd *cmd)
{
	const struct mc_smtp_path *p = &cmd->path;

	if (cmd->verb != MC_SMTP_MAIL && cmd->verb != MC_SMTP_RCPT)
		return;
	MUST(p->mailbox != NULL && p->domain != NULL);
	MUST(strlen(p->mailbox) <= MC_SMTP_PATH_MAX - 2);
	MUST(p->local_len <= strlen(p->mailbox));
	MUST(p->null || p->postmaster || p->mailbox[p->local_len] == '@');
	MUST(p->null || p->postmaster ||
	     p->domain == p->mailbox + p->local_len + 1);
}

static void
on_line(struct run *r, struct mc_smtp_line *line)
{
	struct mc_smtp_cmd cmd;
	const struct mc_smtp_reply *reply = NULL;
	unsigned flags = r->utf8 ? MC_SMTP_PARSE_UTF8 : 0;
	int ret;

	MUST(strlen(line->text) == line->len);
	MUST(line->len + (line->bare_lf ? 1 : 2) <= r->limits.max_line);
	/* Once more on a copy with the other UTF-8 flag: parsing writes
	 * into the line. */
	memcpy(r->copy, line->text, line->len + 1);
	if (mc_smtp_cmd_parse(&cmd, r->copy, flags ^ MC_SMTP_PARSE_UTF8,
	                      &reply) == 0)
		check_cmd(&cmd);
	ret = mc_smtp_cmd_parse(&cmd, line->text, flags, &reply);
	mix_u64(&r->hash, (uint64_t)cmd.verb);
	if (ret < 0) {
		MUST(reply != NULL && reply->code >= 500 && reply->code < 600);
		mix_u64(&r->hash, reply->code);
		return;
	}
	check_cmd(&cmd);
	if (cmd.path.mailbox != NULL)
		mix(&r->hash, cmd.path.mailbox, strlen(cmd.path.mailbox));
	if (cmd.verb == MC_SMTP_MAIL)
		r->utf8 = cmd.params.smtputf8;
	else if (cmd.verb == MC_SMTP_STARTTLS)
		r->stopped = true; /* the rest would be a TLS handshake */
	else if (cmd.verb == MC_SMTP_DATA) {
		r->in_data = true;
		r->content_hash = 0xcbf29ce484222325ull;
		r->sunk = 0;
		r->last = -1;
		mc_smtp_data_init(&r->data, &r->limits, sink, r);
	}
}

static void
on_data_end(struct run *r)
{
	const struct mc_smtp_data *d = &r->data;

	MUST(d->too_big || d->size == r->sunk);
	mix_u64(&r->hash, d->size);
	mix_u64(&r->hash, (uint64_t)d->too_big << 2 |
	                          (uint64_t)d->eightbit << 1 | d->nul);
	mix_u64(&r->hash, d->bare_lf);
	if (!d->too_big) /* what reached the sink before it depends on reads */
		mix_u64(&r->hash, r->content_hash);
	r->in_data = r->utf8 = false;
}

static void
drain(struct run *r)
{
	while (!r->stopped) {
		struct mc_smtp_line line;
		const struct mc_smtp_reply *reply;
		int ret;

		if (r->in_data) {
			size_t n, used;
			const void *p = mc_smtp_lines_peek(&r->lines, &n);

			ret = mc_smtp_data_parse(&r->data, p, n, &used);
			MUST(used <= n && (ret == 1 || used == n));
			mc_smtp_lines_skip(&r->lines, used);
			if (ret == 0)
				return;
			on_data_end(r);
			continue;
		}
		ret = mc_smtp_lines_next(&r->lines, &line, &reply);
		if (ret == 0)
			return;
		if (ret < 0) {
			MUST(reply != NULL && reply->code == 500);
			mix_u64(&r->hash, 1000 + reply->code);
		} else {
			on_line(r, &line);
		}
	}
}

/* max_chunk 0: as few reads as the buffer allows. */
static uint64_t
run(const uint8_t *data, size_t size, uint8_t ctl, size_t max_chunk)
{
	static struct run r;
	uint32_t rng = 2463534242u ^ ctl ^ (uint32_t)size;
	size_t pos = 0;

	memset(&r, 0, sizeof(r));
	mc_smtp_limits_default(&r.limits);
	if (ctl & 0x08) {
		r.limits.max_line = MC_SMTP_LINE_MIN;
		r.limits.buffer_size = MC_SMTP_LINE_MIN + 1;
	}
	if (ctl & 0x10)
		r.limits.max_message = 64;
	r.hash = 0xcbf29ce484222325ull;
	mc_smtp_lines_init(&r.lines, &r.limits);
	while (pos < size && !r.stopped) {
		size_t n = size - pos, took;

		if (max_chunk > 0) {
			rng ^= rng << 13;
			rng ^= rng >> 17;
			rng ^= rng << 5;
			if (n > 1)
				n = 1 + rng % (n < max_chunk ? n : max_chunk);
		}
		took = mc_smtp_lines_feed(&r.lines, data + pos, n);
		pos += took;
		drain(&r);
		MUST(took > 0 || r.stopped);
	}
	mix_u64(&r.hash, r.in_data ? r.data.size : 0);
	mix_u64(&r.hash, r.stopped ? 0 : mc_smtp_lines_pending(&r.lines));
	mc_smtp_lines_fini(&r.lines);
	return r.hash;
}

/* ---- the DATA reader against a naive model ------------------------------ */

struct out {
	uint8_t *p;
	size_t len;
};

static void
out_sink(void *ctx, const void *p, size_t n)
{
	struct out *o = ctx;

	memcpy(o->p + o->len, p, n);
	o->len += n;
}

/* The model: the data ends at the first "\r\n.\r\n" in "\r\n" + in;
 * before it, every line (after each LF, and at the start) loses one
 * leading dot and every LF without a CR before it becomes CRLF. */
static size_t
model(const uint8_t *in, size_t len, uint8_t *out, size_t *consumed_r,
      uint64_t *bare_r)
{
	size_t end = len, n = 0;

	*consumed_r = len;
	for (size_t k = 0; k + 3 <= len; k++) {
		bool crlf = k == 0 ||
		            (k >= 2 && in[k - 2] == '\r' && in[k - 1] == '\n');

		if (crlf && in[k] == '.' && in[k + 1] == '\r' &&
		    in[k + 2] == '\n') {
			end = k;
			*consumed_r = k + 3;
			break;
		}
	}
	*bare_r = 0;
	for (size_t i = 0; i < end; i++) {
		if (in[i] == '.' && (i == 0 || in[i - 1] == '\n'))
			continue;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) {
			out[n++] = '\r';
			(*bare_r)++;
		}
		out[n++] = in[i];
	}
	return n;
}

static void
check_data(const uint8_t *in, size_t len, uint8_t ctl, size_t max_chunk)
{
	struct mc_smtp_limits limits;
	struct mc_smtp_data d;
	struct out got = {malloc(2 * len + 1), 0};
	uint8_t *want = malloc(2 * len + 1);
	size_t pos = 0, consumed, want_len;
	uint32_t rng = 0x9e3779b9u ^ ctl;
	uint64_t bare;
	int ret = 0;

	mc_smtp_limits_default(&limits);
	limits.max_message = UINT64_MAX;
	mc_smtp_data_init(&d, &limits, out_sink, &got);
	while (pos < len && ret == 0) {
		size_t n = len - pos, used;

		rng ^= rng << 13;
		rng ^= rng >> 17;
		rng ^= rng << 5;
		if (n > 1)
			n = 1 + rng % (n < max_chunk ? n : max_chunk);
		ret = mc_smtp_data_parse(&d, in + pos, n, &used);
		MUST(used == n || (ret == 1 && used < n));
		pos += used;
	}
	want_len = model(in, len, want, &consumed, &bare);
	if (ret == 1) {
		MUST(pos == consumed);
		MUST(got.len == want_len && memcmp(got.p, want, want_len) == 0);
	} else {
		/* No end yet: a "." + CR at a line start may be held back. */
		MUST(consumed == len);
		MUST(got.len == want_len || got.len + 1 == want_len);
		MUST(memcmp(got.p, want, got.len) == 0);
	}
	MUST(d.size == got.len && d.bare_lf == bare && !d.too_big);
	free(got.p);
	free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunks[] = {1, 2, 3, 5, 16, 64, 700, 4096};
	uint8_t ctl;

	if (size < 1)
		return 0;
	ctl = data[0];
	MUST(run(data + 1, size - 1, ctl, 0) ==
	     run(data + 1, size - 1, ctl, chunks[ctl & 7]));
	check_data(data + 1, size - 1, ctl, chunks[(ctl >> 5) & 7]);
	return 0;
}

/* Seeds: realistic sessions, each behind its control byte. Arrays, so
 * that sizeof counts the NULs some of them carry. */
/* clang-format off */
static const char seed_relay[] =
	"\x03" "EHLO client.example.org\r\nMAIL FROM:<alice@example.org> "
	"SIZE=1234 BODY=8BITMIME\r\nRCPT TO:<bob@example.net>\r\n"
	"RCPT TO:<Postmaster>\r\nDATA\r\nFrom: alice@example.org\r\n"
	"Subject: hi\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
static const char seed_starttls[] =
	"\x01" "EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@example.org>\r\n";
static const char seed_smuggle[] =
	"\x12" "HELO a.b\r\nMAIL FROM:<>\r\nRCPT TO:<b@c.d>\r\nDATA\r\n"
	"x\n.\nMAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<v@c.d>\r\n"
	"DATA\r\nbody\r\n.\r\nQUIT\r\n";
static const char seed_lmtp[] =
	"\x0d" "LHLO relay.local\r\nMAIL FROM:<a@[192.0.2.1]> RET=HDRS "
	"ENVID=QQ+2B1 AUTH=<>\r\nRCPT TO:<\"x y\"@[IPv6:2001:db8::1]> "
	"NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x+40y.z\r\nRCPT TO:<@r.s,"
	"@t.u:c@d.e> NOTIFY=NEVER\r\nDATA\r\n.\r\n..\r\n\xc3\xa9t\xc3\xa9"
	"\n\r\n.\r\nRSET\r\nNOOP hi\r\nVRFY x\r\nEXPN y\r\nHELP\r\n";
static const char seed_utf8[] =
	"\x06" "EHLO u\r\nMAIL FROM:<\xc3\xbc@ex\xc3\xa4mple.org> SMTPUTF8\r\n"
	"RCPT TO:<\xe2\x82\xac@b.c>\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n"
	"BDAT 10 LAST\r\nDATA\r\na\0b\r\n.\r\nNO\0OP\r\n";
static const char seed_long[] =
	"\x08" "NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nQUIT\r\n";

#define SEED(a) (const uint8_t *)(a)
static const uint8_t *seed_ptrs[] = {
	SEED(seed_relay), SEED(seed_starttls), SEED(seed_smuggle),
	SEED(seed_lmtp),  SEED(seed_utf8),     SEED(seed_long),
};
static const size_t seed_sizes[] = {
	sizeof(seed_relay) - 1, sizeof(seed_starttls) - 1,
	sizeof(seed_smuggle) - 1, sizeof(seed_lmtp) - 1,
	sizeof(seed_utf8) - 1, sizeof(seed_long) - 1,
};
/* clang-format on */

size_t mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r);

size_t
mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r)
{
	*seeds_r = seed_ptrs;
	*sizes_r = seed_sizes;
	return sizeof(seed_ptrs) / sizeof(seed_ptrs[0]);
}
