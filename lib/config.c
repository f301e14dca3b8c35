/* key = value configuration files and secret files; see config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "error.h"
#include "mem.h"

#define MC_CONFIG_MAX_FILE (1024 * 1024)
#define MC_SECRET_MAX 4096

struct mc_config_entry {
	char *key;
	char *value;
};

struct mc_config {
	struct mc_config_entry *entries;
	size_t count;
};

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

static bool
key_known(const char *key, const char *const *known)
{
	for (; *known != NULL; known++)
		if (strcmp(*known, key) == 0)
			return true;
	return false;
}

static bool
key_valid(const char *key)
{
	if (*key == '\0')
		return false;
	for (; *key != '\0'; key++)
		if (!islower((unsigned char)*key) && !isdigit((unsigned char)*key) &&
		    *key != '_')
			return false;
	return true;
}

int
mc_config_parse(const char *text, const char *source,
                const char *const *known_keys, struct mc_config **cfg_r,
                const char **error_r)
{
	struct mc_config *cfg = mc_malloc(sizeof(*cfg));
	char *copy = mc_strdup(text);
	char *line = copy;
	unsigned lineno = 0;

	/* Split by hand: strtok_r would merge blank lines and break line numbers. */
	while (line != NULL) {
		char *nl = strchr(line, '\n');
		char *eq, *key, *value;

		if (nl != NULL)
			*nl = '\0';
		lineno++;
		key = trim(line);
		if (*key == '\0' || *key == '#')
			goto next;
		eq = strchr(key, '=');
		if (eq == NULL) {
			*error_r = mc_errorf("%s:%u: expected 'key = value'", source, lineno);
			goto fail;
		}
		*eq = '\0';
		key = trim(key);
		value = trim(eq + 1);
		if (!key_valid(key)) {
			*error_r = mc_errorf("%s:%u: invalid key '%s'", source, lineno, key);
			goto fail;
		}
		if (!key_known(key, known_keys)) {
			*error_r = mc_errorf("%s:%u: unknown key '%s'", source, lineno, key);
			goto fail;
		}
		if (mc_config_get(cfg, key, NULL) != NULL) {
			*error_r = mc_errorf("%s:%u: duplicate key '%s'", source, lineno, key);
			goto fail;
		}
		cfg->entries = mc_realloc(cfg->entries,
		                          (cfg->count + 1) * sizeof(*cfg->entries));
		cfg->entries[cfg->count].key = mc_strdup(key);
		cfg->entries[cfg->count].value = mc_strdup(value);
		cfg->count++;
	next:
		line = nl != NULL ? nl + 1 : NULL;
	}
	free(copy);
	*cfg_r = cfg;
	return 0;
fail:
	free(copy);
	mc_config_free(&cfg);
	return -1;
}

/* Read a whole small file; NUL-terminated heap copy in *text_r. */
static int
read_small_file(const char *path, size_t max, char **text_r, size_t *len_r,
                const char **error_r)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		*error_r = mc_errorf("%s: %s", path, strerror(errno));
		return -1;
	}
	buf = mc_malloc(max + 1);
	n = fread(buf, 1, max + 1, f);
	if (ferror(f)) {
		*error_r = mc_errorf("%s: read error", path);
		goto fail;
	}
	if (n > max) {
		*error_r = mc_errorf("%s: larger than %zu bytes", path, max);
		goto fail;
	}
	fclose(f);
	buf[n] = '\0';
	*text_r = buf;
	*len_r = n;
	return 0;
fail:
	mc_wipe(buf, max + 1);
	free(buf);
	fclose(f);
	return -1;
}

int
mc_config_load(const char *path, const char *const *known_keys,
               struct mc_config **cfg_r, const char **error_r)
{
	char *text;
	size_t len;
	int ret;

	if (read_small_file(path, MC_CONFIG_MAX_FILE, &text, &len, error_r) < 0)
		return -1;
	if (strlen(text) != len) {
		*error_r = mc_errorf("%s: contains a NUL byte", path);
		free(text);
		return -1;
	}
	ret = mc_config_parse(text, path, known_keys, cfg_r, error_r);
	free(text);
	return ret;
}

void
mc_config_free(struct mc_config **cfgp)
{
	struct mc_config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->count; i++) {
		free(cfg->entries[i].key);
		free(cfg->entries[i].value);
	}
	free(cfg->entries);
	free(cfg);
	*cfgp = NULL;
}

const char *
mc_config_get(const struct mc_config *cfg, const char *key, const char *def)
{
	for (size_t i = 0; i < cfg->count; i++)
		if (strcmp(cfg->entries[i].key, key) == 0)
			return cfg->entries[i].value;
	return def;
}

int
mc_config_get_uint(const struct mc_config *cfg, const char *key, uint64_t def,
                   uint64_t min, uint64_t max, uint64_t *val_r,
                   const char **error_r)
{
	const char *s = mc_config_get(cfg, key, NULL);
	char *end;
	unsigned long long v;

	if (s == NULL) {
		*val_r = def;
		return 0;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0) {
		*error_r = mc_errorf("%s: '%s' is not an unsigned integer", key, s);
		return -1;
	}
	if (v < min || v > max) {
		*error_r = mc_errorf("%s: %llu is outside [%llu, %llu]", key, v,
		                     (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*val_r = v;
	return 0;
}

int
mc_config_get_bool(const struct mc_config *cfg, const char *key, bool def,
                   bool *val_r, const char **error_r)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	const char *s = mc_config_get(cfg, key, NULL);

	if (s == NULL) {
		*val_r = def;
		return 0;
	}
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*val_r = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*val_r = false;
			return 0;
		}
	}
	*error_r = mc_errorf("%s: '%s' is not yes or no", key, s);
	return -1;
}

int
mc_secret_read_file(const char *path, char **secret_r, const char **error_r)
{
	char *text;
	size_t len;

	if (read_small_file(path, MC_SECRET_MAX, &text, &len, error_r) < 0)
		return -1;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	if (len == 0 || strlen(text) != len) {
		*error_r = mc_errorf("%s: secret is empty or contains a NUL byte", path);
		mc_wipe(text, MC_SECRET_MAX + 1);
		free(text);
		return -1;
	}
	*secret_r = text;
	return 0;
}

void
mc_secret_free(char **secret)
{
	if (*secret == NULL)
		return;
	mc_wipe(*secret, strlen(*secret));
	free(*secret);
	*secret = NULL;
}

bool
mc_secret_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	/* Length is not secret for random tokens; content is. */
	if (la != lb)
		return false;
	return CRYPTO_memcmp(a, b, la) == 0;
}
