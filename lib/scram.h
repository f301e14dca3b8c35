/* SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash), without channel binding:
 * the verifiers mailctl computes next to the argon2id hash (the server
 * holds them instead of the password), and the server side of the
 * exchange as a pure, resumable state machine: no I/O, no loop. The
 * IMAP and submission servers feed it the client's messages and send what
 * it produces.
 *
 * Messages in and out are the raw SCRAM messages ("n,,n=user,r=..."): the
 * base64 of the SASL transport (IMAP AUTHENTICATE continuation lines, SMTP
 * 334 lines) is the caller's to decode and encode, like AUTHENTICATE PLAIN
 * does. The base64 inside the messages (salt, c=, p=, v=) is handled here.
 *
 * Verifier (one string, the format Postgres uses; salt and keys base64):
 *   SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
 *
 * Passwords are used as given: SASLprep (RFC 4013) is not implemented, so
 * mc_scram_verifier_new only accepts printable ASCII (0x20-0x7E), the one
 * range where SASLprep changes nothing and every client derives the same
 * key. Other passwords get no verifier (their accounts log in with PLAIN).
 *
 * Thread affinity: a struct mc_scram_server is used by one thread at a
 * time; the verifier functions are safe from any thread. Every derived key
 * is wiped after use, and an exchange's keys when it is freed. */
#ifndef MC_SCRAM_H
#define MC_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

#define MC_SCRAM_MECH "SCRAM-SHA-256"
#define MC_SCRAM_PREFIX "SCRAM-SHA-256$"
/* New verifiers: above RFC 7677's minimum of 4096 for a margin; the cost
 * is the client's (the server never runs PBKDF2 during a login). */
#define MC_SCRAM_ITERATIONS 10000
/* Accepted in a verifier: RFC 7677's floor up to a count no client should
 * be asked to spend minutes on. */
#define MC_SCRAM_ITERATIONS_MIN 4096
#define MC_SCRAM_ITERATIONS_MAX 10000000u
/* Salt of new verifiers; a stored one may be 8 to 64 bytes (imports). */
#define MC_SCRAM_SALT_LEN 16
#define MC_SCRAM_SALT_MIN 8
#define MC_SCRAM_SALT_MAX 64
/* Longest verifier accepted, with its NUL: the 64-byte salt and an
 * 8-digit count fit with room to spare. */
#define MC_SCRAM_VERIFIER_MAX 256
/* Longest password mc_scram_verifier_new takes (mailctl's limit too). */
#define MC_SCRAM_PASSWORD_MAX 1024
/* Longest client message accepted. Real ones are under 200 bytes; the
 * bound is on unauthenticated input, so it stays small. */
#define MC_SCRAM_MESSAGE_MAX 4096
/* Longest username after =2C/=3D decoding, with its NUL. Logins are
 * addresses (at most 254 bytes) or local parts. */
#define MC_SCRAM_USERNAME_MAX 512
/* Random bytes the server adds to the client's nonce (base64: 24 chars). */
#define MC_SCRAM_SERVER_NONCE_BYTES 18

/* ---- verifiers ---- */

/* Compute a verifier for password (len bytes, printable ASCII, 1 to
 * MC_SCRAM_PASSWORD_MAX) with a random MC_SCRAM_SALT_LEN-byte salt and
 * iterations rounds of PBKDF2-HMAC-SHA256 (MC_SCRAM_ITERATIONS_MIN to
 * _MAX; pass MC_SCRAM_ITERATIONS). *verifier_r is heap memory, not
 * secret in the sense of a password but still worth guarding: mc_wipe
 * and free it. Returns 0, or -1 with the reason (a password outside
 * printable ASCII, a bad count, no randomness) in *error_r. */
int mc_scram_verifier_new(const char *password, size_t len, unsigned iterations,
                          char **verifier_r, const char **error_r);

/* Does v follow the verifier format with a count in range, a salt of
 * MC_SCRAM_SALT_MIN to _MAX bytes and two 32-byte keys (canonical
 * base64)? The controller checks what mailctl sends with it. */
bool mc_scram_verifier_valid(const char *v);

/* A verifier for a user who has none (unknown, or no SCRAM verifier),
 * written to buf (size >= MC_SCRAM_VERIFIER_MAX, else abort). Salt and
 * keys are HMACs of username under a key drawn at random once per
 * process, so the same name gets the same salt on every attempt (as a
 * real account would) and nobody can compute a matching proof. The
 * count is MC_SCRAM_ITERATIONS. mc_scram_server_challenge uses it by
 * itself; it is exposed for callers that want the same answer elsewhere. */
void mc_scram_verifier_fake(const char *username, char *buf, size_t size);

/* ---- server exchange ---- */

/* Why an exchange failed; the callers' replies differ only in wording,
 * every kind counts as a failed login. */
enum mc_scram_failure {
	MC_SCRAM_FAIL_NONE = 0,
	/* Not SCRAM's grammar: missing or misplaced attribute, bad base64,
	 * too long, NUL bytes, invalid UTF-8 username, calls out of order. */
	MC_SCRAM_FAIL_MALFORMED,
	/* Well-formed but not offered: channel binding ("p=": there is no
	 * -PLUS mechanism), mandatory extensions ("m="), an authorisation
	 * identity other than the username. */
	MC_SCRAM_FAIL_UNSUPPORTED,
	/* The client-final does not belong to this exchange (nonce or
	 * channel-binding data differ) or its proof is wrong, including
	 * every exchange run against a fake verifier. */
	MC_SCRAM_FAIL_AUTH,
	/* OpenSSL failed (no randomness, no HMAC). */
	MC_SCRAM_FAIL_INTERNAL,
};

struct mc_scram_server;

/* A new exchange (heap; about 9 KiB: the messages are kept for the
 * AuthMessage). One per authentication attempt. */
struct mc_scram_server *mc_scram_server_new(void);
/* NULL-safe; wipes the keys and messages, sets *s to NULL. */
void mc_scram_server_free(struct mc_scram_server **s);

/* Step 1: the client-first-message (msg, len bytes, not NUL-terminated).
 * Checks the GS2 header ("n,," or "y,,", optionally with "a=" equal to
 * the username; "p=" is refused), decodes the username ("=2C" -> ',',
 * "=3D" -> '='; UTF-8 without control characters) and keeps the client
 * nonce. Returns 0, or -1 with the reason in *error_r (static text, for
 * logs) and mc_scram_server_failure set; a failed exchange refuses every
 * later call. */
int mc_scram_server_first(struct mc_scram_server *s, const char *msg,
                          size_t len, const char **error_r);

/* After step 1: the decoded username, for the caller to look the account
 * up (login by address or unambiguous local part is the caller's
 * policy). Owned by s, valid until it is freed; "" before step 1 and
 * when step 1 failed before a valid username was read (a username that
 * is there is UTF-8 without control characters: safe to log). */
const char *mc_scram_server_username(const struct mc_scram_server *s);

/* Step 2: the account's verifier (borrowed for the call) gives the
 * server-first-message "r=<client nonce><server nonce>,s=<salt>,i=<n>".
 * For an unknown user, or a verifier that is NULL, "" or not valid, pass
 * it anyway: the exchange runs against mc_scram_verifier_fake(username)
 * and fails at step 3 like a wrong password, so neither answers nor
 * timing tell the cases apart. *out_r (NUL-terminated, *len_r bytes) is
 * owned by s and valid until the next call or free. Returns 0, or -1 when
 * called out of order, after a failure, or when OpenSSL fails. */
int mc_scram_server_challenge(struct mc_scram_server *s, const char *verifier,
                              const char **out_r, size_t *len_r,
                              const char **error_r);

/* Step 3: the client-final-message (msg, len bytes). Checks that its
 * channel-binding data is the base64 of this exchange's GS2 header ("biws"
 * for "n,,", "eSws" for "y,,"), that the nonce is the combined nonce and
 * that the proof matches the StoredKey (constant-time). On success returns
 * 0 with the server-final-message "v=<ServerSignature>" in *out_r (owned
 * by s as above): the user is authenticated once the caller has sent it.
 * Otherwise -1 with *error_r and mc_scram_server_failure. */
int mc_scram_server_final(struct mc_scram_server *s, const char *msg,
                          size_t len, const char **out_r, size_t *len_r,
                          const char **error_r);

/* Why the last call failed; MC_SCRAM_FAIL_NONE while all went well. */
enum mc_scram_failure mc_scram_server_failure(const struct mc_scram_server *s);

/* Tests only: use suffix (printable ASCII without ',', at most 64 bytes)
 * as the server's nonce part instead of random bytes. Call before
 * mc_scram_server_challenge. Aborts on a bad suffix. */
void mc_scram_server_set_nonce_for_test(struct mc_scram_server *s,
                                        const char *suffix);

#endif
