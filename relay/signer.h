/* The relay's DKIM signers: the active keys of each domain (from the
 * published directory) parsed once into lib/dkim signers and kept until
 * the key changes or goes, so signing a message costs no PEM parsing.
 * A key is known by its immutable id and the digest of its PEM, so a key
 * deleted and recreated, or rotated, is parsed anew; a directory change
 * that leaves a key alone keeps its signer.
 *
 * The egress listener asks for a domain's signers on the loop thread
 * (relay_signer_get), signs on a worker thread (relay_sign_set_sign) and
 * releases the set on the loop again (relay_sign_set_free): the signers
 * of a set stay alive while it exists, even if the directory drops their
 * key meanwhile.
 *
 * Thread affinity: everything but relay_sign_set_sign is for the loop's
 * thread; relay_sign_set_sign only reads the set and may run on any
 * thread while the loop holds it. */
#ifndef RELAY_SIGNER_H
#define RELAY_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "directory.h"
#include "strbuf.h"

struct relay_signer;
struct relay_sign_set;

struct relay_signer *relay_signer_new(void);
/* NULL-safe; sets *s to NULL. Sets still held keep their signers. */
void relay_signer_free(struct relay_signer **s);

/* The directory changed: signers not asked for since the previous
 * change are dropped (freed once no set holds them; a key still published
 * is parsed again on its next use), the others wait for their next use
 * to be confirmed. Cheap: no parsing here. */
void relay_signer_changed(struct relay_signer *s);

/* The signers for mail from domain: its active keys in dir (RSA and
 * Ed25519, see mc_directory_dkim_keys), each parsed on first use. A key
 * that does not parse is logged once (per key and PEM) and left out.
 * Never NULL; relay_sign_set_count says how many signers it holds (0:
 * the domain has no usable key, the message goes unsigned). */
struct relay_sign_set *relay_signer_get(struct relay_signer *s,
                                        const struct mc_directory *dir,
                                        const char *domain);
size_t relay_sign_set_count(const struct relay_sign_set *set);
/* "d=example.org s=sel1 a=ed25519-sha256, ..." for logs, into buf. */
const char *relay_sign_set_describe(const struct relay_sign_set *set, char *buf,
                                    size_t size);
/* mc_dkim_sign_with over msg with every signer of the set (any thread). */
int relay_sign_set_sign(const struct relay_sign_set *set, const char *msg,
                        size_t len, int64_t now, struct mc_strbuf *out,
                        const char **error_r);
/* NULL-safe; sets *set to NULL. Loop thread. */
void relay_sign_set_free(struct relay_sign_set **set);

#endif
