/* TLS contexts and memory-BIO sessions over OpenSSL 3; see tls.h. This
 * file owns every call into libssl for the data plane: context policy
 * (versions, ciphers, options), PEM loading from files or memory,
 * verification settings, the session state machine (handshake, read,
 * write, shutdown, failure), the translation of OpenSSL's error queue to
 * text, and self-signed certificate generation. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "error.h"
#include "mem.h"

/* PEM files hold a few certificates; anything bigger is a wrong path. */
#define TLS_PEM_FILE_MAX (1024 * 1024)

/* Mozilla "intermediate" for TLS 1.2 (forward secrecy, AEAD only). TLS 1.3
 * suites are OpenSSL's defaults, all of which are fine. */
#define TLS12_CIPHERS                                                          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"           \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"                 \
	"DHE-RSA-CHACHA20-POLY1305"

struct mc_tls_ctx {
	SSL_CTX *ssl_ctx;
	enum mc_tls_role role;
	bool opportunistic;
};

struct mc_tls {
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	enum mc_tls_role role;
	bool has_peer_name;
	bool done;          /* handshake complete */
	bool failed;        /* fatal error: no more reads, writes, shutdown */
	bool shutdown_sent; /* close_notify queued */
	bool peer_closed;   /* close_notify received */
	char *subject;      /* peer certificate subject, or NULL */
};

/* Text for the oldest error in OpenSSL's queue (the most specific one),
 * prefixed with what we were doing; clears the queue. */
static const char *
ssl_error_text(const char *what)
{
	unsigned long e = ERR_get_error();
	const char *reason;

	ERR_clear_error();
	if (e == 0)
		return mc_errorf("%s: unknown OpenSSL error", what);
	reason = ERR_reason_error_string(e);
	if (reason == NULL)
		return mc_errorf("%s: OpenSSL error %lx", what, e);
	return mc_errorf("%s: %s", what, reason);
}

/* --- Loading PEM material --------------------------------------------- */

static int
read_file(const char *path, char **data_r, size_t *len_r, const char **error_r)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t len = 0, n;

	if (f == NULL) {
		*error_r = mc_errorf("%s: %s", path, strerror(errno));
		return -1;
	}
	data = mc_malloc(TLS_PEM_FILE_MAX + 1);
	while ((n = fread(data + len, 1, TLS_PEM_FILE_MAX + 1 - len, f)) > 0)
		len += n;
	if (ferror(f)) {
		*error_r = mc_errorf("%s: read error", path);
		goto fail;
	}
	if (len > TLS_PEM_FILE_MAX) {
		*error_r = mc_errorf("%s: larger than %d bytes", path,
		                     TLS_PEM_FILE_MAX);
		goto fail;
	}
	fclose(f);
	*data_r = data;
	*len_r = len;
	return 0;
fail:
	mc_wipe(data, len); /* len <= the buffer's TLS_PEM_FILE_MAX + 1 */
	free(data);
	fclose(f);
	return -1;
}

/* A read-only memory BIO over a file's contents or over PEM text. *buf_r
 * is the file copy to wipe and free after the BIO (NULL for text). *name_r
 * names the source in errors. Returns 0 with *bio_r NULL when neither
 * is set. */
static int
pem_open(const char *file, const char *pem, const char *what, BIO **bio_r,
         char **buf_r, size_t *buf_len_r, const char **name_r,
         const char **error_r)
{
	*bio_r = NULL;
	*buf_r = NULL;
	*buf_len_r = 0;
	if (file != NULL && pem != NULL) {
		*error_r = mc_errorf("%s: set the file or the PEM text, not "
		                     "both",
		                     what);
		return -1;
	}
	if (file != NULL) {
		if (read_file(file, buf_r, buf_len_r, error_r) < 0)
			return -1;
		*bio_r = BIO_new_mem_buf(*buf_r, (int)*buf_len_r);
		*name_r = file;
	} else if (pem != NULL) {
		*bio_r = BIO_new_mem_buf(pem, -1);
		*name_r = what;
	} else {
		return 0;
	}
	if (*bio_r == NULL)
		abort(); /* out of memory */
	return 0;
}

static void
pem_close(BIO **bio, char **buf, size_t len)
{
	BIO_free(*bio);
	*bio = NULL;
	if (*buf != NULL)
		mc_wipe(*buf, len);
	free(*buf);
	*buf = NULL;
}

/* Never prompt on a terminal for a passphrase: encrypted keys fail. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return 0;
}

static int
load_chain(SSL_CTX *sctx, BIO *bio, const char *name, const char **error_r)
{
	X509 *x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);

	if (x == NULL || SSL_CTX_use_certificate(sctx, x) != 1) {
		X509_free(x);
		*error_r = ssl_error_text(name);
		return -1;
	}
	X509_free(x);
	while ((x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) !=
	       NULL) {
		if (SSL_CTX_add1_chain_cert(sctx, x) != 1) {
			X509_free(x);
			*error_r = ssl_error_text(name);
			return -1;
		}
		X509_free(x);
	}
	ERR_clear_error(); /* the end of input reads as "no start line" */
	return 0;
}

static int
load_key(SSL_CTX *sctx, BIO *bio, const char *name, const char **error_r)
{
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);

	if (key == NULL || SSL_CTX_use_PrivateKey(sctx, key) != 1) {
		EVP_PKEY_free(key);
		*error_r = ssl_error_text(name);
		return -1;
	}
	EVP_PKEY_free(key);
	if (SSL_CTX_check_private_key(sctx) != 1) {
		*error_r = ssl_error_text(name);
		return -1;
	}
	return 0;
}

/* Trust every certificate in bio; a server also names them as acceptable
 * client-certificate issuers. */
static int
load_ca(SSL_CTX *sctx, BIO *bio, bool server, const char *name,
        const char **error_r)
{
	X509_STORE *store = SSL_CTX_get_cert_store(sctx);
	X509 *x;
	int count = 0;

	while ((x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) !=
	       NULL) {
		if (X509_STORE_add_cert(store, x) != 1 ||
		    (server && SSL_CTX_add_client_CA(sctx, x) != 1)) {
			X509_free(x);
			*error_r = ssl_error_text(name);
			return -1;
		}
		X509_free(x);
		count++;
	}
	if (count == 0) {
		*error_r = ssl_error_text(name);
		return -1;
	}
	ERR_clear_error();
	return 0;
}

/* Load the three PEM pairs of set into sctx. */
static int
load_material(SSL_CTX *sctx, enum mc_tls_role role,
              const struct mc_tls_settings *set, const char **error_r)
{
	BIO *cert = NULL, *key = NULL, *ca = NULL;
	char *cert_buf = NULL, *key_buf = NULL, *ca_buf = NULL;
	size_t cert_len = 0, key_len = 0, ca_len = 0;
	const char *cert_name = NULL, *key_name = NULL, *ca_name = NULL;
	int ret = -1;

	if (pem_open(set->cert_file, set->cert_pem, "certificate", &cert,
	             &cert_buf, &cert_len, &cert_name, error_r) < 0 ||
	    pem_open(set->key_file, set->key_pem, "private key", &key, &key_buf,
	             &key_len, &key_name, error_r) < 0 ||
	    pem_open(set->ca_file, set->ca_pem, "CA certificates", &ca, &ca_buf,
	             &ca_len, &ca_name, error_r) < 0)
		goto out;
	if ((cert == NULL) != (key == NULL)) {
		*error_r = "a certificate needs its private key and vice versa";
		goto out;
	}
	if (role == MC_TLS_SERVER && cert == NULL) {
		*error_r = "a TLS server needs a certificate and private key";
		goto out;
	}
	if (cert != NULL && (load_chain(sctx, cert, cert_name, error_r) < 0 ||
	                     load_key(sctx, key, key_name, error_r) < 0))
		goto out;
	if (ca != NULL) {
		if (load_ca(sctx, ca, role == MC_TLS_SERVER, ca_name, error_r) <
		    0)
			goto out;
	} else if (role == MC_TLS_CLIENT &&
	           SSL_CTX_set_default_verify_paths(sctx) != 1) {
		*error_r = ssl_error_text("system trust store");
		goto out;
	}
	ret = 0;
out:
	/* One exit for success and failure: every buffer is wiped. */
	pem_close(&cert, &cert_buf, cert_len);
	pem_close(&key, &key_buf, key_len);
	pem_close(&ca, &ca_buf, ca_len);
	return ret;
}

/* --- Contexts ----------------------------------------------------------- */

static void
set_policy(SSL_CTX *sctx, enum mc_tls_role role,
           const struct mc_tls_settings *set)
{
	bool has_ca = set->ca_file != NULL || set->ca_pem != NULL;
	static const unsigned char sid_ctx[] = "mail-cluster";

	SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);
	SSL_CTX_set_options(sctx,
	                    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Idle sessions (IMAP) then hold no 34 KiB of record buffers. */
	SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
	if (role == MC_TLS_SERVER) {
		SSL_CTX_set_dh_auto(sctx, 1);
		SSL_CTX_set_session_id_context(sctx, sid_ctx,
		                               sizeof(sid_ctx) - 1);
		SSL_CTX_set_verify(
		        sctx,
		        has_ca ? SSL_VERIFY_PEER |
		                         SSL_VERIFY_FAIL_IF_NO_PEER_CERT
		               : SSL_VERIFY_NONE,
		        NULL);
	} else {
		/* With SSL_VERIFY_NONE OpenSSL still verifies the chain and
		 * the name and records the result: that is what
		 * mc_tls_peer_verified reports for opportunistic TLS. */
		SSL_CTX_set_verify(sctx,
		                   set->opportunistic ? SSL_VERIFY_NONE
		                                      : SSL_VERIFY_PEER,
		                   NULL);
	}
}

int
mc_tls_ctx_new(enum mc_tls_role role, const struct mc_tls_settings *set,
               struct mc_tls_ctx **ctx_r, const char **error_r)
{
	struct mc_tls_ctx *ctx = NULL;
	SSL_CTX *sctx;

	ERR_clear_error();
	*ctx_r = NULL;
	if (role == MC_TLS_SERVER && set->opportunistic) {
		*error_r = "opportunistic is a client setting";
		return -1;
	}
	sctx = SSL_CTX_new(role == MC_TLS_SERVER ? TLS_server_method()
	                                         : TLS_client_method());
	if (sctx == NULL) {
		*error_r = ssl_error_text("TLS context");
		return -1;
	}
	set_policy(sctx, role, set);
	if (SSL_CTX_set_cipher_list(sctx, TLS12_CIPHERS) != 1) {
		*error_r = ssl_error_text("TLS cipher list");
		goto fail;
	}
	if (load_material(sctx, role, set, error_r) < 0)
		goto fail;
	ctx = mc_malloc(sizeof(*ctx));
	ctx->ssl_ctx = sctx;
	ctx->role = role;
	ctx->opportunistic = set->opportunistic;
	*ctx_r = ctx;
	return 0;
fail:
	SSL_CTX_free(sctx);
	ERR_clear_error();
	return -1;
}

void
mc_tls_ctx_free(struct mc_tls_ctx **ctxp)
{
	struct mc_tls_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx); /* sessions keep their own reference */
	free(ctx);
	*ctxp = NULL;
}

enum mc_tls_role
mc_tls_ctx_role(const struct mc_tls_ctx *ctx)
{
	return ctx->role;
}

/* --- Sessions ----------------------------------------------------------- */

static bool
is_ip_literal(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 ||
	       inet_pton(AF_INET6, name, buf) == 1;
}

static int
set_peer_name(SSL *ssl, const char *name, const char **error_r)
{
	if (*name == '\0') {
		*error_r = "TLS peer name is empty";
		return -1;
	}
	if (is_ip_literal(name)) {
		/* No SNI for addresses (RFC 6066 section 3). */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) !=
		    1) {
			*error_r = ssl_error_text(name);
			return -1;
		}
		return 0;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set_tlsext_host_name(ssl, name) != 1 ||
	    SSL_set1_host(ssl, name) != 1) {
		*error_r = ssl_error_text(name);
		return -1;
	}
	return 0;
}

int
mc_tls_new(struct mc_tls_ctx *ctx, const char *peer_name, struct mc_tls **tls_r,
           const char **error_r)
{
	struct mc_tls *tls = NULL;
	SSL *ssl;

	ERR_clear_error();
	*tls_r = NULL;
	if (ctx->role == MC_TLS_SERVER && peer_name != NULL) {
		*error_r = "a TLS server session takes no peer name";
		return -1;
	}
	if (ctx->role == MC_TLS_CLIENT && !ctx->opportunistic &&
	    peer_name == NULL) {
		*error_r = "a verifying TLS client needs the server's name";
		return -1;
	}
	if ((ssl = SSL_new(ctx->ssl_ctx)) == NULL) {
		*error_r = ssl_error_text("TLS session");
		return -1;
	}
	tls = mc_malloc(sizeof(*tls));
	tls->ssl = ssl;
	tls->role = ctx->role;
	tls->rbio = BIO_new(BIO_s_mem());
	tls->wbio = BIO_new(BIO_s_mem());
	if (tls->rbio == NULL || tls->wbio == NULL)
		abort(); /* out of memory */
	/* An empty input BIO means "retry later", never end of file: the
	 * owner of the socket reports EOF itself. */
	BIO_set_mem_eof_return(tls->rbio, -1);
	SSL_set_bio(ssl, tls->rbio, tls->wbio);
	if (ctx->role == MC_TLS_SERVER) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
		if (peer_name != NULL &&
		    set_peer_name(ssl, peer_name, error_r) < 0)
			goto fail;
		tls->has_peer_name = peer_name != NULL;
	}
	*tls_r = tls;
	return 0;
fail:
	mc_tls_free(&tls);
	return -1;
}

void
mc_tls_free(struct mc_tls **tlsp)
{
	struct mc_tls *tls = *tlsp;

	if (tls == NULL)
		return;
	SSL_free(tls->ssl); /* frees both BIOs */
	free(tls->subject);
	free(tls);
	*tlsp = NULL;
}

void
mc_tls_net_in(struct mc_tls *tls, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;

		if (BIO_write(tls->rbio, p, n) != n)
			abort(); /* a memory BIO only fails without memory */
		p += n;
		len -= (size_t)n;
	}
}

size_t
mc_tls_net_in_pending(const struct mc_tls *tls)
{
	return BIO_ctrl_pending(tls->rbio);
}

size_t
mc_tls_net_out_pending(const struct mc_tls *tls)
{
	return BIO_ctrl_pending(tls->wbio);
}

size_t
mc_tls_net_out(struct mc_tls *tls, void *buf, size_t size)
{
	int n = BIO_read(tls->wbio, buf, size > INT_MAX ? INT_MAX : (int)size);

	return n > 0 ? (size_t)n : 0;
}

/* Record what a finished handshake tells about the peer. */
static void
handshake_done(struct mc_tls *tls)
{
	X509 *peer = SSL_get1_peer_certificate(tls->ssl);
	BIO *mem;
	char *text;
	long len;

	tls->done = true;
	if (peer == NULL)
		return;
	mem = BIO_new(BIO_s_mem());
	if (mem == NULL)
		abort();
	X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0,
	                   XN_FLAG_RFC2253);
	len = BIO_get_mem_data(mem, &text);
	tls->subject = mc_strndup(text, len > 0 ? (size_t)len : 0);
	BIO_free(mem);
	X509_free(peer);
}

/* Turn a failed SSL_* call into text and mark the session dead. */
static const char *
session_error(struct mc_tls *tls, int ret, const char *what)
{
	int err = SSL_get_error(tls->ssl, ret);
	unsigned long e = ERR_peek_error();
	long verify = SSL_get_verify_result(tls->ssl);

	tls->failed = true;
	if (err == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return mc_errorf("%s: peer closed the TLS session", what);
	}
	if (err != SSL_ERROR_SSL) {
		ERR_clear_error();
		return mc_errorf("%s: unexpected OpenSSL error %d", what, err);
	}
	if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
	    verify != X509_V_OK) {
		ERR_clear_error();
		return mc_errorf("%s: certificate verify failed (%s)", what,
		                 X509_verify_cert_error_string(verify));
	}
	return ssl_error_text(what);
}

int
mc_tls_handshake(struct mc_tls *tls, const char **error_r)
{
	int ret, err;

	if (tls->failed) {
		*error_r = "TLS handshake: session failed earlier";
		return -1;
	}
	if (tls->done)
		return 1;
	ERR_clear_error();
	ret = SSL_do_handshake(tls->ssl);
	if (ret == 1) {
		handshake_done(tls);
		return 1;
	}
	err = SSL_get_error(tls->ssl, ret);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return 0;
	*error_r = session_error(tls, ret, "TLS handshake");
	return -1;
}

enum mc_tls_read_result
mc_tls_read(struct mc_tls *tls, void *buf, size_t size, size_t *len_r,
            const char **error_r)
{
	int ret, err;

	*len_r = 0;
	if (tls->failed) {
		*error_r = "TLS: session failed earlier";
		return MC_TLS_READ_ERROR;
	}
	if (tls->peer_closed)
		return MC_TLS_READ_CLOSED;
	ERR_clear_error();
	ret = SSL_read(tls->ssl, buf, size > INT_MAX ? INT_MAX : (int)size);
	if (!tls->done && SSL_is_init_finished(tls->ssl))
		handshake_done(tls);
	if (ret > 0) {
		*len_r = (size_t)ret;
		return MC_TLS_READ_DATA;
	}
	err = SSL_get_error(tls->ssl, ret);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return MC_TLS_READ_MORE;
	if (err == SSL_ERROR_ZERO_RETURN) {
		tls->peer_closed = true;
		return MC_TLS_READ_CLOSED;
	}
	*error_r = session_error(tls, ret, tls->done ? "TLS" : "TLS handshake");
	return MC_TLS_READ_ERROR;
}

int
mc_tls_write(struct mc_tls *tls, const void *data, size_t len,
             const char **error_r)
{
	const char *p = data;

	if (!tls->done || tls->failed || tls->shutdown_sent) {
		*error_r = !tls->done    ? "TLS: handshake not complete"
		           : tls->failed ? "TLS: session failed earlier"
		                         : "TLS: session shut down";
		return -1;
	}
	ERR_clear_error();
	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;
		int ret = SSL_write(tls->ssl, p, n);

		/* A memory BIO takes everything: no partial writes. */
		if (ret <= 0) {
			*error_r = session_error(tls, ret, "TLS");
			return -1;
		}
		p += ret;
		len -= (size_t)ret;
	}
	return 0;
}

int
mc_tls_shutdown(struct mc_tls *tls, const char **error_r)
{
	if (tls->shutdown_sent)
		return 0;
	if (!tls->done || tls->failed) {
		*error_r = !tls->done ? "TLS shutdown: handshake not complete"
		                      : "TLS shutdown: session failed earlier";
		return -1;
	}
	ERR_clear_error();
	/* 0: close_notify sent; 1: the peer's had arrived already. */
	if (SSL_shutdown(tls->ssl) < 0) {
		*error_r = ssl_error_text("TLS shutdown");
		tls->failed = true;
		return -1;
	}
	tls->shutdown_sent = true;
	return 0;
}

bool
mc_tls_handshake_done(const struct mc_tls *tls)
{
	return tls->done;
}

const char *
mc_tls_version(const struct mc_tls *tls)
{
	return tls->done ? SSL_get_version(tls->ssl) : NULL;
}

const char *
mc_tls_cipher(const struct mc_tls *tls)
{
	return tls->done ? SSL_get_cipher_name(tls->ssl) : NULL;
}

int
mc_tls_cipher_bits(const struct mc_tls *tls)
{
	return tls->done ? SSL_get_cipher_bits(tls->ssl, NULL) : 0;
}

bool
mc_tls_peer_verified(const struct mc_tls *tls, const char **reason_r)
{
	const char *reason = NULL;
	long verify;

	if (!tls->done)
		reason = "handshake not complete";
	else if (SSL_get0_peer_certificate(tls->ssl) == NULL)
		reason = "no peer certificate";
	else if ((verify = SSL_get_verify_result(tls->ssl)) != X509_V_OK)
		reason = X509_verify_cert_error_string(verify);
	else if (tls->role == MC_TLS_CLIENT && !tls->has_peer_name)
		reason = "no peer name to match the certificate against";
	if (reason_r != NULL)
		*reason_r = reason;
	return reason == NULL;
}

const char *
mc_tls_peer_subject(const struct mc_tls *tls)
{
	return tls->subject;
}

/* --- Self-signed certificates ----------------------------------------- */

static bool
name_is_safe(const char *name)
{
	/* The name goes into an OpenSSL config-style string: no commas. */
	if (*name == '\0' || strlen(name) > 253)
		return false;
	if (is_ip_literal(name))
		return true;
	for (const char *p = name; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return false;
	}
	return true;
}

static int
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* Build and sign the certificate for key. */
static X509 *
self_signed_cert(EVP_PKEY *key, const char *name, unsigned days)
{
	X509 *x = X509_new();
	X509_NAME *subject;
	BIGNUM *serial = BN_new();
	char *san =
	        mc_asprintf("%s:%s", is_ip_literal(name) ? "IP" : "DNS", name);
	bool ok;

	ok = x != NULL && serial != NULL && X509_set_version(x, 2) == 1 &&
	     BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
	     BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != NULL &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
	     X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) !=
	             NULL &&
	     X509_set_pubkey(x, key) == 1 &&
	     (subject = X509_get_subject_name(x)) != NULL &&
	     X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
	                                (const unsigned char *)name, -1, -1,
	                                0) == 1 &&
	     X509_set_issuer_name(x, subject) == 1 &&
	     add_ext(x, NID_subject_alt_name, san) == 0 &&
	     add_ext(x, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
	     X509_sign(x, key, EVP_sha256()) > 0;
	BN_free(serial);
	free(san);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static char *
bio_to_string(BIO *mem)
{
	char *text;
	long len = BIO_get_mem_data(mem, &text);

	return mc_strndup(text, len > 0 ? (size_t)len : 0);
}

int
mc_tls_self_signed(const char *name, unsigned days, char **cert_pem_r,
                   char **key_pem_r, const char **error_r)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	BIO *cert_mem = NULL, *key_mem = NULL;
	int ret = -1;

	ERR_clear_error();
	if (!name_is_safe(name) || days == 0 || days > 36500) {
		*error_r = mc_errorf("self-signed certificate: bad name '%s' "
		                     "or validity",
		                     name);
		return -1;
	}
	if ((key = EVP_EC_gen("P-256")) == NULL ||
	    (x = self_signed_cert(key, name, days)) == NULL) {
		*error_r = ssl_error_text("self-signed certificate");
		goto out;
	}
	cert_mem = BIO_new(BIO_s_mem());
	key_mem = BIO_new(BIO_s_secmem());
	if (cert_mem == NULL || key_mem == NULL ||
	    PEM_write_bio_X509(cert_mem, x) != 1 ||
	    PEM_write_bio_PrivateKey(key_mem, key, NULL, NULL, 0, NULL, NULL) !=
	            1) {
		*error_r = ssl_error_text("self-signed certificate");
		goto out;
	}
	*cert_pem_r = bio_to_string(cert_mem);
	*key_pem_r = bio_to_string(key_mem);
	ret = 0;
out:
	BIO_free(cert_mem);
	BIO_free(key_mem);
	X509_free(x);
	EVP_PKEY_free(key);
	return ret;
}
