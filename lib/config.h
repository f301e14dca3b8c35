/* Daemon configuration files: "key = value" lines, '#' comments, blank
 * lines ignored. Every key must be in the caller's list of known keys, so a
 * typo is a startup error instead of a silently ignored setting. Values
 * are kept verbatim (trimmed); secrets are never put in config values but
 * referenced by file path. */
#ifndef MC_CONFIG_H
#define MC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct mc_config;

/* Parse text (NUL-terminated). known_keys is a NULL-terminated list.
 * source names the text in error messages. Returns 0 or -1 with error_r. */
int mc_config_parse(const char *text, const char *source,
                    const char *const *known_keys, struct mc_config **cfg_r,
                    const char **error_r);
/* Read and parse a file; a file larger than 1 MiB is an error. */
int mc_config_load(const char *path, const char *const *known_keys,
                   struct mc_config **cfg_r, const char **error_r);
void mc_config_free(struct mc_config **cfg);

/* Value of key, or def when absent. Valid until mc_config_free. */
const char *mc_config_get(const struct mc_config *cfg, const char *key,
                          const char *def);
/* Unsigned integer in [min, max]; def when absent. */
int mc_config_get_uint(const struct mc_config *cfg, const char *key,
                       uint64_t def, uint64_t min, uint64_t max,
                       uint64_t *val_r, const char **error_r);
/* yes/no/true/false/on/off/1/0; def when absent. */
int mc_config_get_bool(const struct mc_config *cfg, const char *key, bool def,
                       bool *val_r, const char **error_r);

/* Read a secret (token, password) from a file: trailing newline stripped,
 * empty or over 4 KiB is an error. *secret_r is heap memory: wipe and free
 * it with mc_secret_free. */
int mc_secret_read_file(const char *path, char **secret_r, const char **error_r);
void mc_secret_free(char **secret);
/* Constant-time comparison of two NUL-terminated secrets. */
bool mc_secret_equal(const char *a, const char *b);

#endif
