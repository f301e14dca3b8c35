/* Control-plane transport: protobuf-c messages over nng REQ/REP and PUB/SUB,
 * with the TLS setup for tls+tcp:// URLs (mutual TLS when a CA is given).
 *
 * Message size limits: a REP socket accepts requests up to
 * MC_RPC_MAX_REQUEST bytes (anything larger is dropped by nng before it
 * reaches us); REQ and SUB sockets accept up to MC_RPC_MAX_REPLY, enough for
 * a snapshot of a few hundred thousand accounts. */
#ifndef MC_RPC_H
#define MC_RPC_H

#include <stdbool.h>

#include <nng/nng.h>

#include "mc.pb-c.h"

#define MC_RPC_MAX_REQUEST (1024 * 1024)
#define MC_RPC_MAX_REPLY (256 * 1024 * 1024)

/* PUB topic bytes (see proto/mc.proto). */
#define MC_TOPIC_MAILBOX 'M'
#define MC_TOPIC_RELAY 'R'

/* PEM files for tls+tcp://. ca_file verifies the peer (and, on a listener,
 * makes client certificates mandatory); cert_file/key_file are our own.
 * Any member may be NULL. Strings are borrowed for the call only. */
struct mc_tls_files {
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
};

bool mc_rpc_url_is_tls(const char *url);

/* Create and start a dialer on sock for url. With nonblock the dial retries
 * in the background (daemons); without it the first connection attempt
 * must succeed (mailctl), otherwise -1 with error_r. */
int mc_rpc_dial(nng_socket sock, const char *url, const struct mc_tls_files *tls,
                bool nonblock, const char **error_r);
/* Create and start a listener on sock for url (removing a stale ipc://
 * socket file first). */
int mc_rpc_listen(nng_socket sock, const char *url,
                  const struct mc_tls_files *tls, const char **error_r);

/* Pack into a new nng message (caller owns it; nng_msg_free or send). */
nng_msg *mc_rpc_pack_request(const Mc__Request *req);
nng_msg *mc_rpc_pack_response(const Mc__Response *resp);
/* Unpack from raw bytes; NULL for garbage. Free with
 * mc__request__free_unpacked(req, NULL) / mc__response__free_unpacked. */
Mc__Request *mc_rpc_unpack_request(const void *data, size_t len);
Mc__Response *mc_rpc_unpack_response(const void *data, size_t len);

/* Blocking call on a REQ socket: send req, wait for the reply up to
 * timeout_ms. On success *resp_r is the unpacked reply (any status). */
int mc_rpc_call(nng_socket sock, const Mc__Request *req, unsigned timeout_ms,
                Mc__Response **resp_r, const char **error_r);

/* Short name of a status ("ok", "not found", ...). */
const char *mc_rpc_status_str(Mc__Status status);

#endif
