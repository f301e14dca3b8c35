/* AES-256-GCM sealing of small secrets; see secretbox.h. OpenSSL's EVP
 * interface does the cipher and the randomness; base64 is strict here
 * (padding required, no whitespace, zero pad bits), so one sealed value
 * has one spelling and a damaged one is refused before decryption. Every
 * buffer that held key or plaintext bytes is wiped before it is freed. */
#include "secretbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "error.h"
#include "mem.h"

#define PREFIX_LEN (sizeof(MC_SECRETBOX_PREFIX) - 1)
#define OVERHEAD (MC_SECRETBOX_NONCE_LEN + MC_SECRETBOX_TAG_LEN)
#define B64_LEN(n) (((n) + 2) / 3 * 4)
/* A key file is 32 raw bytes or 64 hex digits and a line end: anything
 * much longer is not a key file. */
#define KEY_FILE_MAX 80

struct mc_secretbox {
	uint8_t key[MC_SECRETBOX_KEY_LEN];
};

/* ---- base64 ---- */

static const char b64_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			w |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			w |= in[i + 2];
		out[o++] = b64_alphabet[(w >> 18) & 63];
		out[o++] = b64_alphabet[(w >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alphabet[(w >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64_alphabet[w & 63] : '=';
	}
	out[o] = '\0';
}

static int
b64_value(char c)
{
	const char *p = c != '\0' ? strchr(b64_alphabet, c) : NULL;

	return p != NULL ? (int)(p - b64_alphabet) : -1;
}

/* Decode len chars into out (room for len / 4 * 3 bytes); -1 unless
 * canonical. */
static int
b64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len_r)
{
	size_t o = 0;

	if (len == 0 || len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		size_t pad = 0;
		uint32_t w = 0;

		if (i + 4 == len && in[i + 3] == '=')
			pad = in[i + 2] == '=' ? 2 : 1;
		for (size_t k = 0; k < 4; k++) {
			int v = k < 4 - pad ? b64_value(in[i + k]) : 0;

			if (v < 0)
				return -1;
			w = w << 6 | (uint32_t)v;
		}
		/* Bits under the padding must be zero (canonical form). */
		if ((pad == 1 && (w & 0xff) != 0) ||
		    (pad == 2 && (w & 0xffff) != 0))
			return -1;
		out[o++] = (uint8_t)(w >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(w >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)w;
	}
	*out_len_r = o;
	return 0;
}

/* ---- key ---- */

struct mc_secretbox *
mc_secretbox_new(const uint8_t key[MC_SECRETBOX_KEY_LEN])
{
	struct mc_secretbox *box = mc_malloc(sizeof(*box));

	memcpy(box->key, key, MC_SECRETBOX_KEY_LEN);
	return box;
}

void
mc_secretbox_free(struct mc_secretbox **box)
{
	if (*box == NULL)
		return;
	mc_wipe((*box)->key, sizeof((*box)->key));
	free(*box);
	*box = NULL;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 32 raw bytes, or 64 hex digits with an optional line end. */
static int
parse_key(const uint8_t *buf, size_t len, uint8_t key[MC_SECRETBOX_KEY_LEN])
{
	if (len == MC_SECRETBOX_KEY_LEN) {
		memcpy(key, buf, MC_SECRETBOX_KEY_LEN);
		return 0;
	}
	if (len > 2 * MC_SECRETBOX_KEY_LEN && buf[len - 1] == '\n')
		len--;
	if (len > 2 * MC_SECRETBOX_KEY_LEN && buf[len - 1] == '\r')
		len--;
	if (len != 2 * MC_SECRETBOX_KEY_LEN)
		return -1;
	for (size_t i = 0; i < MC_SECRETBOX_KEY_LEN; i++) {
		int hi = hex_value((char)buf[2 * i]),
		    lo = hex_value((char)buf[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int
mc_secretbox_load(const char *path, struct mc_secretbox **box_r,
                  const char **error_r)
{
	uint8_t buf[KEY_FILE_MAX + 1], key[MC_SECRETBOX_KEY_LEN];
	size_t len = 0;
	struct stat st;
	int fd, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		*error_r = mc_errorf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = mc_errorf("%s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		*error_r =
		        mc_errorf("%s: mode %03o: the key must not be "
		                  "accessible to group or others (chmod 600)",
		                  path, (unsigned)(st.st_mode & 0777));
		goto out;
	}
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = mc_errorf("%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > KEY_FILE_MAX || parse_key(buf, len, key) < 0) {
		*error_r = mc_errorf("%s: expected 32 bytes, raw or as 64 hex "
		                     "digits",
		                     path);
		goto out;
	}
	*box_r = mc_secretbox_new(key);
	ret = 0;
out:
	mc_wipe(buf, sizeof(buf));
	mc_wipe(key, sizeof(key));
	close(fd);
	return ret;
}

/* ---- seal and open ---- */

/* The authenticated associated data: the format prefix, then the
 * caller's label. */
static bool
set_aad(EVP_CIPHER_CTX *ctx, bool enc, const char *aad)
{
	int n;

	if (enc)
		return EVP_EncryptUpdate(ctx, NULL, &n,
		                         (const uint8_t *)MC_SECRETBOX_PREFIX,
		                         (int)PREFIX_LEN) == 1 &&
		       (aad[0] == '\0' ||
		        EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)aad,
		                          (int)strlen(aad)) == 1);
	return EVP_DecryptUpdate(ctx, NULL, &n,
	                         (const uint8_t *)MC_SECRETBOX_PREFIX,
	                         (int)PREFIX_LEN) == 1 &&
	       (aad[0] == '\0' ||
	        EVP_DecryptUpdate(ctx, NULL, &n, (const uint8_t *)aad,
	                          (int)strlen(aad)) == 1);
}

char *
mc_secretbox_seal(const struct mc_secretbox *box, const void *plain, size_t len,
                  const char *aad, const char **error_r)
{
	size_t raw_len = len + OVERHEAD;
	uint8_t *raw;
	EVP_CIPHER_CTX *ctx = NULL;
	char *out = NULL;
	int n, fin;

	if (len > MC_SECRETBOX_MAX_PLAIN ||
	    strlen(aad) > MC_SECRETBOX_MAX_PLAIN) {
		*error_r = "secret too large to seal";
		return NULL;
	}
	raw = mc_malloc(raw_len);
	if (RAND_bytes(raw, MC_SECRETBOX_NONCE_LEN) != 1) {
		*error_r = "no randomness for a nonce";
		goto fail;
	}
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
	                        MC_SECRETBOX_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, box->key, raw) != 1 ||
	    !set_aad(ctx, true, aad) ||
	    EVP_EncryptUpdate(ctx, raw + MC_SECRETBOX_NONCE_LEN, &n, plain,
	                      (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, raw + MC_SECRETBOX_NONCE_LEN + n, &fin) !=
	            1 ||
	    (size_t)(n + fin) != len ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, MC_SECRETBOX_TAG_LEN,
	                        raw + MC_SECRETBOX_NONCE_LEN + len) != 1) {
		*error_r = "AES-256-GCM encryption failed";
		goto fail;
	}
	out = mc_malloc(PREFIX_LEN + B64_LEN(raw_len) + 1);
	memcpy(out, MC_SECRETBOX_PREFIX, PREFIX_LEN);
	b64_encode(raw, raw_len, out + PREFIX_LEN);
fail:
	ERR_clear_error();
	EVP_CIPHER_CTX_free(ctx);
	mc_wipe(raw, raw_len);
	free(raw);
	return out;
}

int
mc_secretbox_open(const struct mc_secretbox *box, const char *sealed,
                  const char *aad, char **plain_r, size_t *len_r,
                  const char **error_r)
{
	size_t b64_len, raw_len = 0, len;
	uint8_t *raw = NULL;
	char *plain = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	int n, fin, ret = -1;

	if (strncmp(sealed, MC_SECRETBOX_PREFIX, PREFIX_LEN) != 0) {
		*error_r = "sealed secret: unknown format";
		return -1;
	}
	b64_len = strlen(sealed + PREFIX_LEN);
	if (b64_len > B64_LEN(MC_SECRETBOX_MAX_PLAIN + OVERHEAD)) {
		*error_r = "sealed secret: too large";
		return -1;
	}
	raw = mc_malloc(b64_len / 4 * 3 + 1);
	if (b64_decode(sealed + PREFIX_LEN, b64_len, raw, &raw_len) < 0 ||
	    raw_len < OVERHEAD) {
		*error_r = "sealed secret: malformed";
		goto out;
	}
	len = raw_len - OVERHEAD;
	plain = mc_malloc(len + 1);
	/* The tag is checked by DecryptFinal, before anything is returned. */
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
	                        MC_SECRETBOX_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, box->key, raw) != 1 ||
	    !set_aad(ctx, false, aad) ||
	    EVP_DecryptUpdate(ctx, (uint8_t *)plain, &n,
	                      raw + MC_SECRETBOX_NONCE_LEN, (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, MC_SECRETBOX_TAG_LEN,
	                        raw + MC_SECRETBOX_NONCE_LEN + len) != 1 ||
	    EVP_DecryptFinal_ex(ctx, (uint8_t *)plain + n, &fin) != 1 ||
	    (size_t)(n + fin) != len) {
		*error_r = "sealed secret: authentication failed (wrong key, "
		           "altered or moved value)";
		goto out;
	}
	plain[len] = '\0';
	*plain_r = plain;
	*len_r = len;
	plain = NULL;
	ret = 0;
out:
	ERR_clear_error();
	EVP_CIPHER_CTX_free(ctx);
	if (plain != NULL) {
		mc_wipe(plain, raw_len - OVERHEAD + 1);
		free(plain);
	}
	mc_wipe(raw, b64_len / 4 * 3 + 1);
	free(raw);
	return ret;
}
