/* Unit tests for lib/secretbox: round trips (empty, small, the largest
 * plaintext), fresh nonces per seal, refusal of every single-bit change,
 * truncation, other keys, other associated data, unknown formats and
 * non-canonical base64, and the key file rules (raw or hex, size,
 * permissions). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"
#include "secretbox.h"
#include "test.h"

static const uint8_t key_a[MC_SECRETBOX_KEY_LEN] = {
        1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static bool
opens_to(const struct mc_secretbox *box, const char *sealed, const char *aad,
         const void *want, size_t want_len)
{
	char *plain = NULL;
	size_t len = 0;
	const char *err;
	bool ok;

	if (mc_secretbox_open(box, sealed, aad, &plain, &len, &err) < 0)
		return false;
	ok = len == want_len && memcmp(plain, want, len) == 0 &&
	     plain[len] == '\0';
	mc_wipe(plain, len);
	free(plain);
	return ok;
}

static bool
refused(const struct mc_secretbox *box, const char *sealed, const char *aad)
{
	char *plain = (char *)"untouched";
	size_t len = 7;
	const char *err = NULL;

	return mc_secretbox_open(box, sealed, aad, &plain, &len, &err) < 0 &&
	       err != NULL && strcmp(plain, "untouched") == 0 && len == 7;
}

static void
test_round_trip(void)
{
	struct mc_secretbox *box = mc_secretbox_new(key_a);
	const char *pem =
	        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI...\n"
	        "-----END PRIVATE KEY-----\n";
	const char *err = NULL;
	char *s1, *s2, *s0, *big_sealed;
	char *big = mc_malloc(MC_SECRETBOX_MAX_PLAIN + 1);

	s1 = mc_secretbox_seal(box, pem, strlen(pem), "dkim:a.test:s1", &err);
	s2 = mc_secretbox_seal(box, pem, strlen(pem), "dkim:a.test:s1", &err);
	CHECK(s1 != NULL && s2 != NULL);
	CHECK(strncmp(s1, "sb1:", 4) == 0);
	/* A fresh random nonce each time: equal secrets seal differently. */
	CHECK(strcmp(s1, s2) != 0);
	CHECK(strstr(s1, "PRIVATE") == NULL);
	CHECK(opens_to(box, s1, "dkim:a.test:s1", pem, strlen(pem)));
	CHECK(opens_to(box, s2, "dkim:a.test:s1", pem, strlen(pem)));
	/* nonce (12) + tag (16) + 5 bytes -> 33 bytes -> 44 base64 chars. */
	s0 = mc_secretbox_seal(box, "hello", 5, "", &err);
	CHECK(s0 != NULL && strlen(s0) == 4 + 44);
	CHECK(opens_to(box, s0, "", "hello", 5));
	free(s0);
	s0 = mc_secretbox_seal(box, "", 0, "", &err);
	CHECK(s0 != NULL && opens_to(box, s0, "", "", 0));
	free(s0);
	memset(big, 'x', MC_SECRETBOX_MAX_PLAIN);
	big_sealed =
	        mc_secretbox_seal(box, big, MC_SECRETBOX_MAX_PLAIN, "", &err);
	CHECK(big_sealed != NULL &&
	      opens_to(box, big_sealed, "", big, MC_SECRETBOX_MAX_PLAIN));
	free(big_sealed);
	err = NULL;
	CHECK(mc_secretbox_seal(box, big, MC_SECRETBOX_MAX_PLAIN + 1, "",
	                        &err) == NULL &&
	      err != NULL);
	free(big);
	free(s1);
	free(s2);
	mc_secretbox_free(&box);
	CHECK(box == NULL);
	mc_secretbox_free(&box); /* NULL-safe */
}

/* Any change to the sealed text is detected: each base64 character
 * replaced by another valid one, truncation, extension, another key,
 * another aad, another format. */
static void
test_tamper(void)
{
	uint8_t key_b[MC_SECRETBOX_KEY_LEN];
	struct mc_secretbox *box = mc_secretbox_new(key_a), *other;
	const char *err = NULL;
	char *s = mc_secretbox_seal(box, "top secret", 10, "row:7", &err);
	size_t len = strlen(s);
	char *t = mc_strdup(s);
	int undetected = 0;

	for (size_t i = 4; i < len; i++) {
		char orig = t[i];

		if (orig == '=')
			continue;
		t[i] = orig == 'A' ? 'B' : 'A';
		if (!refused(box, t, "row:7"))
			undetected++;
		t[i] = orig;
	}
	CHECK(undetected == 0);
	CHECK(refused(box, s, "row:8"));
	CHECK(refused(box, s, ""));
	t[len - 4] = '\0'; /* one base64 quantum less */
	CHECK(refused(box, t, "row:7"));
	free(t);
	t = mc_asprintf("%sAAAA", s);
	CHECK(refused(box, t, "row:7"));
	free(t);
	t = mc_strdup(s);
	t[2] = '2'; /* "sb2:" */
	CHECK(refused(box, t, "row:7"));
	free(t);
	CHECK(refused(box, "sb1:", ""));
	CHECK(refused(box, "sb1:AAAA", ""));
	CHECK(refused(box, "", ""));
	CHECK(refused(box, "-----BEGIN PRIVATE KEY-----", ""));
	/* Non-canonical base64: whitespace, missing padding, stray bits. */
	t = mc_asprintf("%s\n", s);
	CHECK(refused(box, t, "row:7"));
	free(t);
	memcpy(key_b, key_a, sizeof(key_b));
	key_b[31] ^= 1;
	other = mc_secretbox_new(key_b);
	CHECK(refused(other, s, "row:7"));
	CHECK(opens_to(box, s, "row:7", "top secret", 10));
	mc_secretbox_free(&other);
	free(s);
	mc_secretbox_free(&box);
}

static char tmpdir[] = "/tmp/secretbox_test.XXXXXX";

static const char *
write_key(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		abort();
	close(fd);
	chmod(path, mode);
	return path;
}

static void
test_key_file(void)
{
	static const char hex[] = "0102030405060708090a0b0c0d0e0f10"
	                          "1112131415161718191A1B1C1D1E1F20";
	struct mc_secretbox *box = NULL, *ref = mc_secretbox_new(key_a);
	const char *err = NULL, *path;
	char *s = mc_secretbox_seal(ref, "k", 1, "", &err), *line;

	CHECK(mkdtemp(tmpdir) != NULL);
	path = write_key("raw", key_a, sizeof(key_a), 0600);
	CHECK(mc_secretbox_load(path, &box, &err) == 0 &&
	      opens_to(box, s, "", "k", 1));
	mc_secretbox_free(&box);
	path = write_key("hex", hex, 64, 0400);
	CHECK(mc_secretbox_load(path, &box, &err) == 0 &&
	      opens_to(box, s, "", "k", 1));
	mc_secretbox_free(&box);
	line = mc_asprintf("%s\n", hex);
	path = write_key("hexnl", line, strlen(line), 0600);
	CHECK(mc_secretbox_load(path, &box, &err) == 0 &&
	      opens_to(box, s, "", "k", 1));
	mc_secretbox_free(&box);
	free(line);
	/* Wrong sizes and contents. */
	path = write_key("short", key_a, 31, 0600);
	CHECK(mc_secretbox_load(path, &box, &err) < 0 && box == NULL &&
	      strstr(err, "32 bytes") != NULL);
	path = write_key("long", hex, 63, 0600);
	CHECK(mc_secretbox_load(path, &box, &err) < 0);
	path = write_key("nothex",
	                 "zz02030405060708090a0b0c0d0e0f10"
	                 "1112131415161718191a1b1c1d1e1f20",
	                 64, 0600);
	CHECK(mc_secretbox_load(path, &box, &err) < 0);
	path = write_key("empty", "", 0, 0600);
	CHECK(mc_secretbox_load(path, &box, &err) < 0);
	/* Readable by others: refused, however good the content. */
	path = write_key("open", key_a, sizeof(key_a), 0644);
	CHECK(mc_secretbox_load(path, &box, &err) < 0 &&
	      strstr(err, "chmod 600"));
	path = write_key("group", key_a, sizeof(key_a), 0640);
	CHECK(mc_secretbox_load(path, &box, &err) < 0);
	CHECK(mc_secretbox_load("/nonexistent/key", &box, &err) < 0 &&
	      strstr(err, "/nonexistent/key") != NULL);
	CHECK(box == NULL);
	free(s);
	mc_secretbox_free(&ref);
	{
		const char *names[] = {"raw",   "hex",  "hexnl",
		                       "short", "long", "nothex",
		                       "empty", "open", "group"};

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			char p[256];

			snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
			unlink(p);
		}
		rmdir(tmpdir);
	}
}

int
main(void)
{
	test_round_trip();
	test_tamper();
	test_key_file();
	return mc_test_done();
}
