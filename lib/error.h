/* Error text for the `const char **error_r` convention. mc_errorf formats
 * into a small ring of thread-local buffers: the returned text stays valid
 * until eight more mc_errorf calls on the same thread, long enough for a
 * caller to wrap it once more and report it. Copy it to keep it longer. */
#ifndef MC_ERROR_H
#define MC_ERROR_H

const char *mc_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
