/* Small secrets sealed at rest: authenticated encryption with AES-256-GCM
 * under one 32-byte key, for what a daemon must keep but must not store
 * in clear (the controller's DKIM private keys in Postgres).
 *
 * A sealed value is text, safe in a database column:
 *
 *     "sb1:" base64( nonce (12 bytes) | ciphertext | tag (16 bytes) )
 *
 * "sb1" names the format (AES-256-GCM, a random 96-bit nonce per seal, a
 * 128-bit tag); a later format gets a new prefix and old values stay
 * readable. The prefix and the caller's associated data are authenticated
 * too, so a value cut, altered, relabelled or moved to another row (other
 * associated data) fails to open instead of yielding garbage. Random
 * nonces are safe for far more than 2^32 seals under one key before the
 * collision risk matters; a controller seals a few keys a month.
 *
 * The key file holds exactly 32 bytes, raw, or as 64 hex digits with an
 * optional final newline; it must not be readable or writable by group or
 * others (like ssh's private keys). Make one with
 * `head -c 32 /dev/urandom > FILE; chmod 600 FILE`.
 *
 * A box is only read after creation: one box may be used from several
 * threads at once. Key bytes are wiped when the box is freed; plaintext
 * returned by open is the caller's to wipe. */
#ifndef MC_SECRETBOX_H
#define MC_SECRETBOX_H

#include <stddef.h>
#include <stdint.h>

#define MC_SECRETBOX_KEY_LEN 32
#define MC_SECRETBOX_NONCE_LEN 12
#define MC_SECRETBOX_TAG_LEN 16
#define MC_SECRETBOX_PREFIX "sb1:"
/* Largest plaintext sealed or opened: a 4096-bit RSA PEM is 3.3 KB. */
#define MC_SECRETBOX_MAX_PLAIN (64u * 1024)

struct mc_secretbox;

/* A box with a copy of key (the caller wipes its own). Never fails. */
struct mc_secretbox *mc_secretbox_new(const uint8_t key[MC_SECRETBOX_KEY_LEN]);

/* Read the key from path (format above). Returns 0 with *box_r, or -1 with
 * error_r: missing file, wrong size or format, group/other permissions. */
int mc_secretbox_load(const char *path, struct mc_secretbox **box_r,
                      const char **error_r);

/* Wipes the key; NULL-safe, sets *box to NULL. */
void mc_secretbox_free(struct mc_secretbox **box);

/* Seal len bytes of plain, binding aad (a NUL-terminated label such as
 * "dkim:example.org:s2026e", "" for none). Returns the sealed text, a heap
 * string the caller frees, or NULL with error_r (plain too large, no
 * randomness, OpenSSL failure). */
char *mc_secretbox_seal(const struct mc_secretbox *box, const void *plain,
                        size_t len, const char *aad, const char **error_r);

/* Open sealed with the same aad. Returns 0 with *plain_r (heap, len bytes
 * plus a NUL after them: wipe and free it) and *len_r, or -1 with error_r
 * when the value is malformed, of an unknown format, or fails
 * authentication (tampered, other key, other aad). Nothing is returned
 * on failure. */
int mc_secretbox_open(const struct mc_secretbox *box, const char *sealed,
                      const char *aad, char **plain_r, size_t *len_r,
                      const char **error_r);

#endif
