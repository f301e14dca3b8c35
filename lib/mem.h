/* Allocation wrappers: abort on out-of-memory (a daemon that cannot
 * allocate a few bytes cannot do anything useful) and return zeroed memory,
 * plus secret wiping. */
#ifndef MC_MEM_H
#define MC_MEM_H

#include <stddef.h>

void *mc_malloc(size_t size);               /* zeroed */
void *mc_calloc(size_t n, size_t size);     /* zeroed, overflow-checked */
void *mc_realloc(void *p, size_t size);
char *mc_strdup(const char *s);
char *mc_strndup(const char *s, size_t n);
/* printf into a new heap string; aborts on OOM. */
char *mc_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Overwrite memory the compiler may not optimise away (passwords, tokens). */
void mc_wipe(void *p, size_t n);
/* Give memory freed after a burst (startup, a directory snapshot) back to
 * the system: glibc keeps freed heap pages otherwise, and an idle daemon
 * would carry its peak for good. Cheap; call it after such bursts. */
void mc_mem_trim(void);

#endif
