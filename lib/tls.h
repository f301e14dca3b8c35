/* TLS sessions driven through memory BIOs: OpenSSL does the cryptography,
 * the caller does all I/O. A struct mc_tls_ctx holds the configuration
 * shared by many sessions (role, certificate, trusted CAs, verification
 * policy); a struct mc_tls is one session. Ciphertext received from the
 * network goes in with mc_tls_net_in, plaintext comes out of mc_tls_read;
 * plaintext to send goes in with mc_tls_write and the ciphertext to
 * transmit comes out of mc_tls_net_out. Nothing here blocks or touches a
 * socket, so the same code serves libuv connections (lib/conn.h) and
 * in-memory tests.
 *
 * Policy fixed here for every context: TLS 1.2 minimum, TLS 1.3 preferred,
 * Mozilla "intermediate" cipher list for TLS 1.2, no compression, no
 * renegotiation. OpenSSL error codes are translated to text at this
 * boundary: every error_r is a readable sentence fragment such as
 * "TLS handshake: certificate verify failed (hostname mismatch)".
 *
 * Thread affinity: a session belongs to one thread at a time. A context
 * is immutable after creation and may be shared by sessions on any
 * thread. */
#ifndef MC_TLS_H
#define MC_TLS_H

#include <stdbool.h>
#include <stddef.h>

enum mc_tls_role {
	MC_TLS_SERVER,
	MC_TLS_CLIENT,
};

/* Where a context finds its PEM material. Every pair is "file path or
 * in-memory PEM text": set at most one member of each pair. Strings are
 * read during mc_tls_ctx_new only. Files larger than 1 MiB are refused. */
struct mc_tls_settings {
	/* Our certificate chain (leaf first) and its private key. Required
	 * for a server; optional client certificate for a client. */
	const char *cert_file, *cert_pem;
	const char *key_file, *key_pem;
	/* Trusted CA certificates for verifying the peer.
	 * Client: NULL uses the system's default trust store.
	 * Server: when set, clients must present a certificate that chains
	 * to one of them (mutual TLS); NULL: no client certificate is asked
	 * for. */
	const char *ca_file, *ca_pem;
	/* Client only. false (the default, the safe choice): the handshake
	 * fails unless the server's certificate chains to a trusted CA and
	 * matches the peer name given to mc_tls_new. true: opportunistic
	 * TLS (outbound MX delivery): the handshake completes whatever the
	 * certificate, and mc_tls_peer_verified reports what a verifying
	 * client would have concluded. */
	bool opportunistic;
};

struct mc_tls_ctx;
struct mc_tls;

/* Create a context. Fails (with the file name and OpenSSL's reason) on
 * unreadable files, bad PEM, a key that does not match the certificate, a
 * server without a certificate, or both members of a pair set. */
int mc_tls_ctx_new(enum mc_tls_role role, const struct mc_tls_settings *set,
                   struct mc_tls_ctx **ctx_r, const char **error_r);
/* NULL-safe; sets *ctx to NULL. Sessions already created from the
 * context stay valid (they hold their own reference), so a reload can
 * swap contexts under live connections. */
void mc_tls_ctx_free(struct mc_tls_ctx **ctx);
enum mc_tls_role mc_tls_ctx_role(const struct mc_tls_ctx *ctx);

/* Create a session. peer_name is for clients only (NULL for a server):
 * the server's host name or IP literal, sent as SNI (host names only) and
 * matched against the certificate. A verifying client (not opportunistic)
 * must give one: -1 otherwise, so a chain check without a name check
 * cannot happen by accident. The string is copied. */
int mc_tls_new(struct mc_tls_ctx *ctx, const char *peer_name,
               struct mc_tls **tls_r, const char **error_r);
/* NULL-safe; sets *tls to NULL. Does not send close_notify (see
 * mc_tls_shutdown). */
void mc_tls_free(struct mc_tls **tls);

/* --- Network side ----------------------------------------------------- */

/* Hand over ciphertext received from the peer (copied). The session does
 * not bound what it buffers: feed what one socket read returned, and stop
 * reading from the socket while the plaintext it yields is not consumed. */
void mc_tls_net_in(struct mc_tls *tls, const void *data, size_t len);
/* Bytes fed with mc_tls_net_in that OpenSSL has not processed yet. */
size_t mc_tls_net_in_pending(const struct mc_tls *tls);
/* Ciphertext waiting to be transmitted (handshake messages, records,
 * alerts, close_notify). Check after every other call. */
size_t mc_tls_net_out_pending(const struct mc_tls *tls);
/* Move up to size bytes of pending ciphertext into buf; returns the
 * count. The bytes must be sent in order. */
size_t mc_tls_net_out(struct mc_tls *tls, void *buf, size_t size);

/* --- Application side ------------------------------------------------- */

/* Drive the handshake with the input fed so far. Returns 1 when it is
 * complete, 0 when it needs more input from the peer (send any pending
 * output first), -1 on failure (error_r says why; pending output may
 * hold an alert worth sending before closing). A client's first call
 * produces the ClientHello. Calling it after completion returns 1. */
int mc_tls_handshake(struct mc_tls *tls, const char **error_r);

enum mc_tls_read_result {
	MC_TLS_READ_ERROR = -1, /* protocol error, error_r set; session dead */
	MC_TLS_READ_MORE = 0,   /* no plaintext until more input arrives */
	MC_TLS_READ_DATA = 1,   /* *len_r > 0 bytes of plaintext in buf */
	MC_TLS_READ_CLOSED = 2, /* peer sent close_notify: no more data */
};
/* Decrypt into buf (size > 0). Completes the handshake first if needed.
 * After MC_TLS_READ_DATA call again: more plaintext may be buffered. */
enum mc_tls_read_result mc_tls_read(struct mc_tls *tls, void *buf, size_t size,
                                    size_t *len_r, const char **error_r);
/* Encrypt all of data; the records are then in the pending output.
 * -1 before the handshake completed, after a failure or a shutdown. */
int mc_tls_write(struct mc_tls *tls, const void *data, size_t len,
                 const char **error_r);
/* Queue close_notify (once; later calls return 0 and do nothing). -1
 * when the session cannot close cleanly (handshake incomplete or
 * failed): then just drop the connection. */
int mc_tls_shutdown(struct mc_tls *tls, const char **error_r);

/* --- State ------------------------------------------------------------ */

bool mc_tls_handshake_done(const struct mc_tls *tls);
/* Protocol and cipher names, e.g. "TLSv1.3", "TLS_AES_256_GCM_SHA384",
 * and the cipher's secret bits, for Received headers and logs. NULL / 0
 * before the handshake completed. Valid until mc_tls_free. */
const char *mc_tls_version(const struct mc_tls *tls);
const char *mc_tls_cipher(const struct mc_tls *tls);
int mc_tls_cipher_bits(const struct mc_tls *tls);
/* Whether the peer presented a certificate that chains to a trusted CA
 * and (client side) matches the peer name. When false, *reason_r (may be
 * NULL) says why, e.g. "no peer certificate", "hostname mismatch",
 * "self-signed certificate"; static text. Meaningful after the
 * handshake; before it, false with "handshake not complete". */
bool mc_tls_peer_verified(const struct mc_tls *tls, const char **reason_r);
/* The peer certificate's subject as an RFC 2253 string, or NULL when the
 * peer sent none. Valid until mc_tls_free. */
const char *mc_tls_peer_subject(const struct mc_tls *tls);

/* --- Certificates ----------------------------------------------------- */

/* Generate a self-signed certificate (ECDSA P-256, SHA-256) for name (a
 * host name or IP literal, put in CN and subjectAltName) valid for days.
 * For tests and for a single-machine default when no certificate is
 * configured. *cert_pem_r and *key_pem_r are heap strings owned by the
 * caller: free() them, after mc_wipe(key, strlen(key)) for the key. */
int mc_tls_self_signed(const char *name, unsigned days, char **cert_pem_r,
                       char **key_pem_r, const char **error_r);

#endif
