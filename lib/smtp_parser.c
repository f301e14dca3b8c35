/* The two SMTP input readers (see smtp_parser.h): the command-phase line
 * reader, which owns the session's bounded input buffer, and the DATA
 * reader, a byte-at-a-time state machine that keeps no bytes of its own
 * and forwards runs of its input to the sink. The command grammar lives in
 * smtp_parser_cmd.c.
 *
 * Both readers give the same results whatever the chunking of their input
 * (smtp_parser_test.c checks it by feeding every case one byte at a time
 * and in random chunks): all state that spans a chunk boundary is in the
 * struct, never in a local variable. */
#include "smtp_parser.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* clang-format off */
static const struct mc_smtp_reply reply_too_long = {
	500, "5.5.6", "Line too long",
};
static const struct mc_smtp_reply reply_nul = {
	500, "5.5.2", "NUL byte in command",
};
/* clang-format on */

void
mc_smtp_limits_default(struct mc_smtp_limits *limits)
{
	limits->max_line = MC_SMTP_LINE_DEFAULT;
	limits->buffer_size = MC_SMTP_BUFFER_DEFAULT;
	limits->max_message = MC_SMTP_MESSAGE_DEFAULT;
}

/* ---- line reader ------------------------------------------------------- */

static void
lines_apply(struct mc_smtp_lines *r, const struct mc_smtp_limits *limits)
{
	size_t cap = limits->buffer_size;

	r->max_line = limits->max_line;
	if (r->max_line < MC_SMTP_LINE_MIN)
		r->max_line = MC_SMTP_LINE_MIN;
	/* One byte more than a maximal line, so that a line that has grown
	 * to max_line octets without its LF (and so is too long) always
	 * fits and is detected, and next() returning 0 leaves space. */
	if (cap < r->max_line + 1)
		cap = r->max_line + 1;
	if (cap > r->cap) {
		r->buf = mc_realloc(r->buf, cap);
		r->cap = cap;
	}
}

void
mc_smtp_lines_init(struct mc_smtp_lines *r, const struct mc_smtp_limits *limits)
{
	memset(r, 0, sizeof(*r));
	lines_apply(r, limits);
}

void
mc_smtp_lines_fini(struct mc_smtp_lines *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

void
mc_smtp_lines_limits(struct mc_smtp_lines *r,
                     const struct mc_smtp_limits *limits)
{
	lines_apply(r, limits);
}

void *
mc_smtp_lines_space(struct mc_smtp_lines *r, size_t *len_r)
{
	if (r->head > 0) {
		/* Compaction moves at most one buffer per read; lines are
		 * short and the buffer is small, so this is cheaper than
		 * the bookkeeping of a ring. */
		memmove(r->buf, r->buf + r->head, r->tail - r->head);
		r->tail -= r->head;
		r->head = 0;
	}
	*len_r = r->cap - r->tail;
	return r->buf + r->tail;
}

void
mc_smtp_lines_commit(struct mc_smtp_lines *r, size_t n)
{
	if (n > r->cap - r->tail)
		n = r->cap - r->tail; /* caller bug; never overrun */
	r->tail += n;
}

size_t
mc_smtp_lines_feed(struct mc_smtp_lines *r, const void *data, size_t len)
{
	size_t room;
	void *space = mc_smtp_lines_space(r, &room);

	if (len > room)
		len = room;
	if (len > 0)
		memcpy(space, data, len);
	mc_smtp_lines_commit(r, len);
	return len;
}

size_t
mc_smtp_lines_pending(const struct mc_smtp_lines *r)
{
	return r->tail - r->head;
}

void
mc_smtp_lines_discard(struct mc_smtp_lines *r)
{
	r->head = r->tail = r->scan = 0;
	r->skipping = false;
}

const void *
mc_smtp_lines_peek(const struct mc_smtp_lines *r, size_t *len_r)
{
	*len_r = r->tail - r->head;
	return r->buf + r->head;
}

void
mc_smtp_lines_skip(struct mc_smtp_lines *r, size_t n)
{
	if (n > r->tail - r->head)
		n = r->tail - r->head;
	r->head += n;
	r->scan = 0;
	r->skipping = false;
}

/* Drop the rest of an overlong line. Returns true once its LF was eaten. */
static bool
lines_skip_overlong(struct mc_smtp_lines *r)
{
	char *lf = memchr(r->buf + r->head, '\n', r->tail - r->head);

	if (lf == NULL) {
		r->head = r->tail = 0;
		return false;
	}
	r->head = (size_t)(lf - r->buf) + 1;
	r->skipping = false;
	return true;
}

int
mc_smtp_lines_next(struct mc_smtp_lines *r, struct mc_smtp_line *line_r,
                   const struct mc_smtp_reply **reply_r)
{
	char *start, *lf;
	size_t avail, len;

	if (r->skipping && !lines_skip_overlong(r))
		return 0;
	start = r->buf + r->head;
	avail = r->tail - r->head;
	lf = memchr(start + r->scan, '\n', avail - r->scan);
	if (lf == NULL) {
		r->scan = avail;
		if (avail < r->max_line)
			return 0;
		/* max_line octets and still no LF: whatever comes, the line
		 * is too long. Say so now rather than buffer it. */
		r->head = r->tail = r->scan = 0;
		r->skipping = true;
		*reply_r = &reply_too_long;
		return -1;
	}
	len = (size_t)(lf - start) + 1; /* with its LF */
	r->head += len;
	r->scan = 0;
	if (len > r->max_line) {
		*reply_r = &reply_too_long;
		return -1;
	}
	if (memchr(start, '\0', len) != NULL) {
		*reply_r = &reply_nul;
		return -1;
	}
	line_r->bare_lf = len < 2 || lf[-1] != '\r';
	len -= line_r->bare_lf ? 1 : 2;
	start[len] = '\0';
	line_r->text = start;
	line_r->len = len;
	return 1;
}

/* ---- DATA reader ------------------------------------------------------- */

enum data_state {
	D_BOL_CRLF = 0, /* line start after CRLF (or the start of data) */
	D_BOL_LF,       /* line start after a bare LF: cannot end the data */
	D_DOT_CRLF,     /* "." at D_BOL_CRLF, dot dropped */
	D_DOT_CR,       /* ".\r" at D_BOL_CRLF, CR held back */
	D_TEXT,         /* inside a line */
	D_CR,           /* inside a line, last byte a CR (already emitted) */
	D_END,
};

static const char crlf[] = "\r\n";

void
mc_smtp_data_init(struct mc_smtp_data *d, const struct mc_smtp_limits *limits,
                  mc_smtp_data_sink *sink, void *ctx)
{
	memset(d, 0, sizeof(*d));
	d->state = D_BOL_CRLF;
	d->max_message = limits->max_message;
	d->sink = sink;
	d->ctx = ctx;
}

static void
data_emit(struct mc_smtp_data *d, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (d->size + n < d->size)
		d->size = UINT64_MAX; /* saturate: only ever logged */
	else
		d->size += n;
	if (d->too_big || d->size > d->max_message) {
		d->too_big = true;
		return;
	}
	d->sink(d->ctx, p, n);
}

/* The transition for a byte inside a line (or one that starts a line and
 * is not a dot). Returns true when the byte is a bare LF, which the caller
 * replaces with CRLF. */
static bool
data_text_byte(struct mc_smtp_data *d, unsigned char c)
{
	if (c == '\r') {
		d->state = D_CR;
	} else if (c == '\n') {
		if (d->state == D_CR) {
			d->state = D_BOL_CRLF;
			return false;
		}
		d->state = D_BOL_LF;
		d->bare_lf++;
		return true;
	} else {
		d->state = D_TEXT;
	}
	return false;
}

int
mc_smtp_data_parse(struct mc_smtp_data *d, const void *in, size_t len,
                   size_t *consumed_r)
{
	const unsigned char *p = in, *run = p; /* run: not yet emitted */
	size_t i;

	for (i = 0; i < len && d->state != D_END; i++) {
		unsigned char c = p[i];

		if (c >= 0x80)
			d->eightbit = true;
		else if (c == '\0')
			d->nul = true;
		switch (d->state) {
		case D_BOL_CRLF:
		case D_BOL_LF:
			if (c == '.') {
				/* Dot-stuffing: the first dot of a line is
				 * never content. */
				data_emit(d, run, (size_t)(p + i - run));
				run = p + i + 1;
				d->state = d->state == D_BOL_CRLF ? D_DOT_CRLF
				                                  : D_TEXT;
				continue;
			}
			break;
		case D_DOT_CRLF:
			if (c == '\r') {
				/* Maybe the end: hold the CR back. */
				data_emit(d, run, (size_t)(p + i - run));
				run = p + i + 1;
				d->state = D_DOT_CR;
				continue;
			}
			break;
		case D_DOT_CR:
			if (c == '\n') {
				d->state = D_END;
				run = p + i + 1;
				continue;
			}
			/* Not the end: the held CR was content. */
			data_emit(d, "\r", 1);
			d->state = D_CR;
			break;
		default:
			break;
		}
		if (data_text_byte(d, c)) {
			data_emit(d, run, (size_t)(p + i - run));
			data_emit(d, crlf, 2);
			run = p + i + 1;
		}
	}
	data_emit(d, run, (size_t)(p + i - run));
	*consumed_r = i;
	return d->state == D_END ? 1 : 0;
}
