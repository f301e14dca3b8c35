/* Growable byte string; see strbuf.h. */
#include "strbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

void
mc_strbuf_init(struct mc_strbuf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void
mc_strbuf_fini(struct mc_strbuf *b)
{
	free(b->data);
	mc_strbuf_init(b);
}

void
mc_strbuf_reset(struct mc_strbuf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
mc_strbuf_reserve(struct mc_strbuf *b, size_t n)
{
	size_t cap;

	if (b->len + n + 1 <= b->cap)
		return;
	if (n > SIZE_MAX / 2 - b->len)
		abort();
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	b->data = mc_realloc(b->data, cap);
	b->cap = cap;
}

void
mc_strbuf_add(struct mc_strbuf *b, const void *data, size_t len)
{
	mc_strbuf_reserve(b, len);
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
mc_strbuf_adds(struct mc_strbuf *b, const char *s)
{
	mc_strbuf_add(b, s, strlen(s));
}

void
mc_strbuf_addc(struct mc_strbuf *b, char c)
{
	mc_strbuf_add(b, &c, 1);
}

void
mc_strbuf_vaddf(struct mc_strbuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	mc_strbuf_reserve(b, 64);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	if (n < 0)
		abort();
	if ((size_t)n >= b->cap - b->len) {
		mc_strbuf_reserve(b, (size_t)n);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	}
	va_end(ap2);
	b->len += (size_t)n;
}

void
mc_strbuf_addf(struct mc_strbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mc_strbuf_vaddf(b, fmt, ap);
	va_end(ap);
}

void
mc_strbuf_consume(struct mc_strbuf *b, size_t n)
{
	if (n >= b->len) {
		mc_strbuf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n + 1);
	b->len -= n;
}

char *
mc_strbuf_steal(struct mc_strbuf *b)
{
	char *s = b->data;

	if (s == NULL)
		s = mc_strdup("");
	mc_strbuf_init(b);
	return s;
}
