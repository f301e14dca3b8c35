/* A growable byte string for building replies (IMAP responses, JSON,
 * SQL parameters): append text, formatted text and raw bytes; the bytes
 * stay NUL-terminated so the result can be used as a C string when it
 * holds no NUL. Grows by doubling; aborts on out-of-memory like
 * mc_malloc. Not bounded by itself: callers bound what they append
 * (per message, per command) and flush to the connection between units.
 * Not thread-safe; a buffer belongs to one thread at a time. */
#ifndef MC_STRBUF_H
#define MC_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct mc_strbuf {
	char *data; /* NULL until the first append; then NUL-terminated */
	size_t len;
	size_t cap;
};

/* Caller's storage: {0} is a valid empty buffer too. */
void mc_strbuf_init(struct mc_strbuf *b);
void mc_strbuf_fini(struct mc_strbuf *b);
/* Forget the content, keep the memory. */
void mc_strbuf_reset(struct mc_strbuf *b);
/* Make room for n more bytes. */
void mc_strbuf_reserve(struct mc_strbuf *b, size_t n);
void mc_strbuf_add(struct mc_strbuf *b, const void *data, size_t len);
void mc_strbuf_adds(struct mc_strbuf *b, const char *s);
void mc_strbuf_addc(struct mc_strbuf *b, char c);
void mc_strbuf_addf(struct mc_strbuf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
void mc_strbuf_vaddf(struct mc_strbuf *b, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (a consumer took them). */
void mc_strbuf_consume(struct mc_strbuf *b, size_t n);
/* Hand the heap string to the caller (free() it); the buffer is empty. */
char *mc_strbuf_steal(struct mc_strbuf *b);

#endif
