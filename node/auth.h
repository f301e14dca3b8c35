/* Client logins on a mailbox node (IMAP, submission): the account a login
 * name means (full address, or a local part naming exactly one account),
 * the password check against the hash the controller published (argon2id;
 * sha512-crypt and bcrypt for imported accounts) on a libuv worker thread,
 * and a per-address failure penalty: a failed check is answered after a
 * delay that grows with the recent failures from that peer address (1 s
 * per failure, at most AUTH_PENALTY_MAX_MS), so guessing is slow even
 * across connections. Unknown users cost the same as wrong passwords.
 *
 * Loop thread only, except the hashing inside. */
#ifndef NODE_AUTH_H
#define NODE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "directory.h"

struct node_auth;         /* shared by the services of a node */
struct node_auth_request; /* one login attempt */

struct node_auth_result {
	bool ok;
	uint64_t account_id;
	uint32_t shard;
	const char *address; /* the account's address; valid during the callback */
};

/* Runs on the loop once the answer is known (never from inside
 * node_auth_check). The request is freed after it returns. */
typedef void node_auth_cb(void *arg, const struct node_auth_result *result);

struct node_auth *node_auth_new(uv_loop_t *loop);
/* Pending requests finish on their own (their callbacks still run unless
 * cancelled); the object is freed once the last one is done. */
void node_auth_free(struct node_auth **auth);

/* Verify user/password (both copied; the copy is wiped) for a client at
 * peer_ip. Never fails: the outcome arrives through cb. */
struct node_auth_request *node_auth_check(struct node_auth *auth,
                                          const struct mc_directory *dir,
                                          const char *user, const char *password,
                                          size_t password_len, const char *peer_ip,
                                          node_auth_cb *cb, void *arg);
/* The caller is going away: cb will not be called. */
void node_auth_cancel(struct node_auth_request *req);

/* A failure decided elsewhere (a SCRAM proof that did not verify): it
 * counts against peer_ip like a wrong password, and cb gets a failed
 * result after the same penalty delay. */
struct node_auth_request *node_auth_reject(struct node_auth *auth,
                                           const char *peer_ip, node_auth_cb *cb,
                                           void *arg);

/* Does hash accept password? (argon2id/argon2i, $6$, $2b$/$2y$). CPU
 * heavy: call off the loop. */
bool node_auth_password_ok(const char *hash, const char *password, size_t len);

#endif
