/* DKIM signing (RFC 6376) for the relay's outbound path, with RSA-SHA256
 * and Ed25519-SHA256 (RFC 8463), plus the key material the operator CLI
 * needs: key generation, the public key for the DNS and the TXT record.
 *
 * What a signature covers: relaxed/relaxed canonicalisation; the body
 * hash over the whole body (never l=); in h=, the fields of a fixed set
 * (From, Sender, Reply-To, To, Cc, Subject, Date, Message-ID, In-Reply-To,
 * References, MIME-Version, the usual Content-* and Resent-* fields, any
 * List-*) that the message has, every instance of each, and From once
 * more than it occurs ("over-signed"), so a From added in transit breaks
 * the signature instead of riding on it. t= is the caller's clock; x= and
 * i= only when options ask for them. A message must carry exactly one
 * From field (RFC 6376 5.4 requires From to be signed, and with two a
 * verifier could show the unsigned one).
 *
 * Line ends: the message is signed as it is sent. lib/smtp_client turns
 * every LF not preceded by CR into CRLF and ends a last partial line with
 * CRLF, so here too a line ends at LF (with or without CR before it) or
 * at a CR that is the very last byte; any other CR is data.
 *
 * Pure: no I/O, no clock, no global state, no libuv; OpenSSL 3 for the
 * crypto (the error queue is cleared on every failure). Safe from any
 * thread. Keys are PEM text (PKCS#8 "PRIVATE KEY", or PKCS#1 "RSA PRIVATE
 * KEY"), never encrypted: an encrypted PEM is refused, never prompted
 * for. Key text this module produces lives in the heap and should be
 * wiped (mc_wipe) by its owner before free. */
#ifndef MC_DKIM_H
#define MC_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

enum mc_dkim_alg {
	MC_DKIM_RSA_SHA256,
	MC_DKIM_ED25519_SHA256,
};

/* RFC 8301: signers SHOULD use 2048 bits, verifiers MUST accept 1024 to
 * 4096. We generate 2048..4096 and sign with 1024..4096 (an operator's
 * imported 1024-bit key still verifies everywhere; beyond 4096 some
 * verifiers give up and DNS records grow past what resolvers like). */
#define MC_DKIM_RSA_BITS_DEFAULT 2048u
#define MC_DKIM_RSA_KEYGEN_MIN 2048u
#define MC_DKIM_RSA_SIGN_MIN 1024u
#define MC_DKIM_RSA_BITS_MAX 4096u
/* Signatures per message: one per algorithm per domain is the real use
 * (an author domain and perhaps the relay's own); more is a config bug. */
#define MC_DKIM_MAX_KEYS 8u
/* PEM text of a private key: a 4096-bit RSA key is about 3.3 KB. */
#define MC_DKIM_MAX_PEM (16u * 1024)
/* A header field name in h= (ours or an explicit list). */
#define MC_DKIM_MAX_NAME 64u
/* An explicit h= list (options.header_list). */
#define MC_DKIM_MAX_HEADER_LIST (16u * 1024)
/* Base64 SHA-256, and the relaxed body hash of an empty body. */
#define MC_DKIM_BODY_HASH_LEN 44u
#define MC_DKIM_EMPTY_BODY_HASH "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

/* "rsa-sha256" / "ed25519-sha256" (the a= value); "?" for anything else. */
const char *mc_dkim_alg_name(enum mc_dkim_alg alg);
/* The k= value of the key record: "rsa" / "ed25519"; "?" otherwise. */
const char *mc_dkim_key_type(enum mc_dkim_alg alg);
/* Parse an algorithm as an operator writes it: "rsa", "rsa-sha256",
 * "ed25519", "ed25519-sha256" (ASCII case-insensitive). */
bool mc_dkim_alg_from_name(const char *name, enum mc_dkim_alg *alg_r);

/* ---- keys ------------------------------------------------------------- */

/* Generate a key pair. rsa_bits is for RSA only (0: the default; else
 * MC_DKIM_RSA_KEYGEN_MIN..MC_DKIM_RSA_BITS_MAX). On success returns 0 and
 * sets *private_pem_r (PKCS#8 PEM) and *public_b64_r (the p= value: for
 * RSA base64 of the SubjectPublicKeyInfo DER, for Ed25519 base64 of the
 * raw 32-byte key, RFC 8463 4.2), heap strings the caller owns (wipe the
 * private one before free()). On failure returns -1 with the reason in
 * *error_r and both outputs NULL. */
int mc_dkim_keygen(enum mc_dkim_alg alg, unsigned rsa_bits,
                   char **private_pem_r, char **public_b64_r,
                   const char **error_r);

/* The p= value for a private key in PEM (as mc_dkim_keygen gives it), in
 * a heap string the caller frees; -1 with *error_r when the PEM does not
 * hold a key of that algorithm (or an RSA key outside the signing
 * sizes). */
int mc_dkim_public_key(enum mc_dkim_alg alg, const char *private_pem,
                       char **public_b64_r, const char **error_r);

/* The TXT record to publish at <selector>._domainkey.<domain>:
 * "v=DKIM1; k=rsa; p=<public_b64>" or "v=DKIM1; k=ed25519; p=...". A
 * heap string the caller frees, or NULL when public_b64 is empty or not
 * base64 text or alg is unknown. The record is one string; splitting it
 * into 255-octet character-strings is the DNS publisher's job. */
char *mc_dkim_dns_record(enum mc_dkim_alg alg, const char *public_b64);

/* ---- signing ---------------------------------------------------------- */

/* One signing identity. Every pointer is borrowed for the call. domain
 * (d=) and selector (s=) are DNS names (letters, digits, '-', '_', dots
 * between labels). */
struct mc_dkim_key {
	const char *domain;
	const char *selector;
	enum mc_dkim_alg alg;
	/* A key of type alg, at most MC_DKIM_MAX_PEM octets. */
	const char *private_pem;
};

/* What only special cases set; {0} (or NULL) is the default for each. */
struct mc_dkim_options {
	/* h= as written, e.g. "from : to : subject", used instead of the
	 * default selection (test vectors, or a policy that wants its own).
	 * Names are RFC 5322 field names without ';', separated by ':' with
	 * optional blanks; "from" must be one of them. Names the message
	 * lacks are signed as absent, like the default From over-signing. */
	const char *header_list;
	/* i= (the AUID), "[local-part]@domain" where domain is d= or a
	 * subdomain of it; NULL: no i= (verifiers then take "@" d=). */
	const char *identity;
	/* x= = t= + expire when > 0 (seconds); 0: no x=. */
	int64_t expire;
	/* Write q=dns/txt (the only query method, and the default a verifier
	 * assumes; for reproducing signatures that carry it). */
	bool query_method;
};

/* Sign msg (the whole message as it will be sent: header, empty line,
 * body; CRLF or LF line ends) with each of keys[0, nkeys), in that order,
 * at time now (UTC seconds, t=). Appends to out one complete header field
 * per key: "DKIM-Signature: v=1; a=...; ... b=...\r\n", folded into lines
 * of at most 78 octets where the names allow (bh= and b= on lines of
 * their own), CRLF-terminated, to be put in front of the message unchanged.
 * opts may be NULL. Tag order: v a c d [i] [q] s t [x] h bh b.
 *
 * Returns 0, or -1 with *error_r and out untouched when a key or option
 * is invalid (bad domain or selector, a PEM that is not a key of the
 * given algorithm, a weak RSA key, an i= outside d=), nkeys is 0 or above
 * MC_DKIM_MAX_KEYS, or the message cannot be signed: it has no From field
 * or more than one, or its header passes the lib/imf default limits
 * (1 MiB, 1000 fields). msg is only read; nothing keeps a pointer to
 * anything passed.
 *
 * Convenience for one-off signing: each call parses every PEM again,
 * which OpenSSL 3.0 makes cost 0.2 to 0.4 ms a key. Whatever signs many
 * messages with the same keys uses mc_dkim_signer_new once and
 * mc_dkim_sign_with per message. */
int mc_dkim_sign(const char *msg, size_t len, const struct mc_dkim_key *keys,
                 size_t nkeys, const struct mc_dkim_options *opts, int64_t now,
                 struct mc_strbuf *out, const char **error_r);

/* A key checked and parsed once (d=, s=, algorithm and the OpenSSL key),
 * for signing many messages: made when the relay applies its config, so
 * a bad key shows there and not per message. Owns copies of everything
 * (key is only read; its PEM may be wiped right after). Only read while
 * signing, so one signer may sign on several threads at once. */
struct mc_dkim_signer;

/* NULL with *error_r for the key errors mc_dkim_sign lists. */
struct mc_dkim_signer *mc_dkim_signer_new(const struct mc_dkim_key *key,
                                          const char **error_r);
/* NULL-safe; sets *signer to NULL. OpenSSL clears the key material. */
void mc_dkim_signer_free(struct mc_dkim_signer **signer);

/* mc_dkim_sign with parsed keys: signers[0, n), same contract. */
int mc_dkim_sign_with(const char *msg, size_t len,
                      const struct mc_dkim_signer *const *signers, size_t n,
                      const struct mc_dkim_options *opts, int64_t now,
                      struct mc_strbuf *out, const char **error_r);

/* ---- canonicalisation (RFC 6376 3.4.2, 3.4.4) ------------------------- */
/* The building blocks of mc_dkim_sign, for tests and a future verifier. */

/* Append the relaxed form of one raw header field (name, colon, value
 * with its folds, with or without its final line end) to out:
 * lower-case name, no blanks around the colon, line ends removed (a
 * fold's CRLF or LF; a CR only before LF or as the last octet), runs of
 * SP/HTAB as one SP, none at the end, then CRLF. Returns false and
 * appends nothing when field has no colon. */
bool mc_dkim_relaxed_header(struct mc_strbuf *out, const void *field,
                            size_t len);

/* Append the relaxed form of a body to out: per line, blanks at the end
 * dropped and inner runs of SP/HTAB as one SP; every line ended by CRLF
 * (a last partial line too); empty lines at the end dropped (an empty or
 * all-blank body gives nothing). */
void mc_dkim_relaxed_body(struct mc_strbuf *out, const void *body, size_t len);

/* bh=: base64 SHA-256 of the relaxed body, NUL-terminated. Streams: the
 * memory used does not grow with the body. */
void mc_dkim_body_hash(const void *body, size_t len,
                       char bh_r[MC_DKIM_BODY_HASH_LEN + 1]);

#endif
