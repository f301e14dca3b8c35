/* nng + protobuf-c plumbing for the control plane; see rpc.h. */
#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/supplemental/tls/tls.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "error.h"
#include "mem.h"

bool
mc_rpc_url_is_tls(const char *url)
{
	return strncmp(url, "tls+tcp://", 10) == 0 ||
	       strncmp(url, "tls+tcp4://", 11) == 0 ||
	       strncmp(url, "tls+tcp6://", 11) == 0;
}

static char *
read_pem(const char *path, const char **error_r)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		*error_r = mc_errorf("%s: cannot open", path);
		return NULL;
	}
	buf = mc_malloc(256 * 1024 + 1);
	n = fread(buf, 1, 256 * 1024, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* Host part of a tls+tcp://host:port URL, for certificate name checks. */
static char *
url_host(const char *url)
{
	const char *h = strstr(url, "://");
	const char *end;

	h = h != NULL ? h + 3 : url;
	if (*h == '[') {
		end = strchr(h, ']');
		return end != NULL ? mc_strndup(h + 1, (size_t)(end - h - 1))
		                   : mc_strdup(h);
	}
	end = strrchr(h, ':');
	return end != NULL ? mc_strndup(h, (size_t)(end - h)) : mc_strdup(h);
}

/* nng (mbedtls) accepts a certificate with somebody else's key and then
 * only fails every handshake with "Connection shutdown". Catch that at
 * startup, with the file names in the message. */
static int
check_key_matches(const char *cert_pem, const char *key_pem,
                  const struct mc_tls_files *tls, const char **error_r)
{
	BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
	X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	int ret = -1;

	if (x == NULL)
		*error_r = mc_errorf("tls cert %s: not a PEM certificate", tls->cert_file);
	else if (k == NULL)
		*error_r = mc_errorf("tls key %s: not a PEM private key", tls->key_file);
	else if (X509_check_private_key(x, k) != 1)
		*error_r = mc_errorf("tls key %s does not belong to certificate %s",
		                     tls->key_file, tls->cert_file);
	else
		ret = 0;
	EVP_PKEY_free(k);
	X509_free(x);
	BIO_free(cb);
	BIO_free(kb);
	return ret;
}

static int
tls_config_new(nng_tls_mode mode, const struct mc_tls_files *tls,
               const char *server_name, nng_tls_config **cfg_r,
               const char **error_r)
{
	nng_tls_config *cfg;
	int rv;

	if ((rv = nng_tls_config_alloc(&cfg, mode)) != 0) {
		*error_r = mc_errorf("tls: %s", nng_strerror(rv));
		return -1;
	}
	if (tls != NULL && tls->ca_file != NULL) {
		if ((rv = nng_tls_config_ca_file(cfg, tls->ca_file)) != 0) {
			*error_r = mc_errorf("tls ca %s: %s", tls->ca_file, nng_strerror(rv));
			goto fail;
		}
		nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
	} else {
		nng_tls_config_auth_mode(cfg, mode == NNG_TLS_MODE_SERVER
		                                      ? NNG_TLS_AUTH_MODE_NONE
		                                      : NNG_TLS_AUTH_MODE_REQUIRED);
	}
	if (tls != NULL && tls->cert_file != NULL && tls->key_file != NULL) {
		char *cert = read_pem(tls->cert_file, error_r);
		char *key = cert != NULL ? read_pem(tls->key_file, error_r) : NULL;

		if (key != NULL && check_key_matches(cert, key, tls, error_r) < 0) {
			mc_wipe(key, strlen(key));
			free(cert);
			free(key);
			goto fail;
		}
		rv = key != NULL ? nng_tls_config_own_cert(cfg, cert, key, NULL) : -1;
		if (key != NULL)
			mc_wipe(key, strlen(key));
		free(cert);
		free(key);
		if (rv == -1)
			goto fail;
		if (rv != 0) {
			*error_r = mc_errorf("tls cert %s: %s", tls->cert_file,
			                     nng_strerror(rv));
			goto fail;
		}
	} else if (mode == NNG_TLS_MODE_SERVER) {
		*error_r = "tls: a listener needs tls_cert_file and tls_key_file";
		goto fail;
	}
	if (server_name != NULL &&
	    (rv = nng_tls_config_server_name(cfg, server_name)) != 0) {
		*error_r = mc_errorf("tls server name: %s", nng_strerror(rv));
		goto fail;
	}
	*cfg_r = cfg;
	return 0;
fail:
	nng_tls_config_free(cfg);
	return -1;
}

int
mc_rpc_dial(nng_socket sock, const char *url, const struct mc_tls_files *tls,
            bool nonblock, const char **error_r)
{
	nng_dialer d;
	int rv;

	if ((rv = nng_dialer_create(&d, sock, url)) != 0) {
		*error_r = mc_errorf("%s: %s", url, nng_strerror(rv));
		return -1;
	}
	if (mc_rpc_url_is_tls(url)) {
		nng_tls_config *cfg;
		char *host = url_host(url);

		rv = tls_config_new(NNG_TLS_MODE_CLIENT, tls, host, &cfg, error_r);
		free(host);
		if (rv < 0)
			goto fail;
		rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
		nng_tls_config_free(cfg); /* the dialer holds its own reference */
		if (rv != 0) {
			*error_r = mc_errorf("%s: %s", url, nng_strerror(rv));
			goto fail;
		}
	}
	nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, MC_RPC_MAX_REPLY);
	nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, 100);
	nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, 2000);
	if ((rv = nng_dialer_start(d, nonblock ? NNG_FLAG_NONBLOCK : 0)) != 0) {
		*error_r = mc_errorf("cannot connect to %s: %s", url, nng_strerror(rv));
		goto fail;
	}
	return 0;
fail:
	nng_dialer_close(d);
	return -1;
}

/* A crashed daemon leaves its ipc socket file behind and binding would fail
 * with "address in use" although nobody listens. Remove the file only when
 * nothing accepts on it: a live owner must never lose its socket to a
 * second instance started by mistake. */
static int
remove_stale_ipc(const char *path, const char **error_r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rv;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		*error_r = mc_errorf("ipc path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		*error_r = mc_errorf("socket: %s", strerror(errno));
		return -1;
	}
	rv = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rv == 0) {
		*error_r = mc_errorf("ipc://%s is in use by a running process", path);
		return -1;
	}
	if (errno == ECONNREFUSED)
		unlink(path);
	return 0;
}

int
mc_rpc_listen(nng_socket sock, const char *url, const struct mc_tls_files *tls,
              const char **error_r)
{
	nng_listener l;
	int rv;

	if (strncmp(url, "ipc://", 6) == 0 && remove_stale_ipc(url + 6, error_r) < 0)
		return -1;
	if ((rv = nng_listener_create(&l, sock, url)) != 0) {
		*error_r = mc_errorf("%s: %s", url, nng_strerror(rv));
		return -1;
	}
	if (mc_rpc_url_is_tls(url)) {
		nng_tls_config *cfg;

		if (tls_config_new(NNG_TLS_MODE_SERVER, tls, NULL, &cfg, error_r) < 0)
			goto fail;
		rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
		nng_tls_config_free(cfg);
		if (rv != 0) {
			*error_r = mc_errorf("%s: %s", url, nng_strerror(rv));
			goto fail;
		}
	}
	nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, MC_RPC_MAX_REQUEST);
	if ((rv = nng_listener_start(l, 0)) != 0) {
		*error_r = mc_errorf("cannot listen on %s: %s", url, nng_strerror(rv));
		goto fail;
	}
	return 0;
fail:
	nng_listener_close(l);
	return -1;
}

nng_msg *
mc_rpc_pack_request(const Mc__Request *req)
{
	size_t len = mc__request__get_packed_size(req);
	nng_msg *msg;

	if (nng_msg_alloc(&msg, len) != 0)
		abort();
	mc__request__pack(req, nng_msg_body(msg));
	return msg;
}

nng_msg *
mc_rpc_pack_response(const Mc__Response *resp)
{
	size_t len = mc__response__get_packed_size(resp);
	nng_msg *msg;

	if (nng_msg_alloc(&msg, len) != 0)
		abort();
	mc__response__pack(resp, nng_msg_body(msg));
	return msg;
}

Mc__Request *
mc_rpc_unpack_request(const void *data, size_t len)
{
	return mc__request__unpack(NULL, len, data);
}

Mc__Response *
mc_rpc_unpack_response(const void *data, size_t len)
{
	return mc__response__unpack(NULL, len, data);
}

int
mc_rpc_call(nng_socket sock, const Mc__Request *req, unsigned timeout_ms,
            Mc__Response **resp_r, const char **error_r)
{
	nng_msg *msg = mc_rpc_pack_request(req);
	Mc__Response *resp;
	int rv;

	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, (nng_duration)timeout_ms);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms);
	if ((rv = nng_sendmsg(sock, msg, 0)) != 0) {
		nng_msg_free(msg);
		*error_r = mc_errorf("send: %s", nng_strerror(rv));
		return -1;
	}
	if ((rv = nng_recvmsg(sock, &msg, 0)) != 0) {
		*error_r = rv == NNG_ETIMEDOUT
		                   ? "controller did not answer in time"
		                   : mc_errorf("receive: %s", nng_strerror(rv));
		return -1;
	}
	resp = mc_rpc_unpack_response(nng_msg_body(msg), nng_msg_len(msg));
	nng_msg_free(msg);
	if (resp == NULL) {
		*error_r = "malformed reply from controller";
		return -1;
	}
	*resp_r = resp;
	return 0;
}

const char *
mc_rpc_status_str(Mc__Status status)
{
	switch (status) {
	case MC__STATUS__STATUS_OK: return "ok";
	case MC__STATUS__STATUS_INVALID: return "invalid";
	case MC__STATUS__STATUS_NOT_FOUND: return "not found";
	case MC__STATUS__STATUS_EXISTS: return "exists";
	case MC__STATUS__STATUS_UNAUTHORIZED: return "unauthorized";
	case MC__STATUS__STATUS_CONFLICT: return "conflict";
	case MC__STATUS__STATUS_INTERNAL: return "internal error";
	case MC__STATUS__STATUS_UNAVAILABLE: return "unavailable";
	default: return "unknown status";
	}
}
