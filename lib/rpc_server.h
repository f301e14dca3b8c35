/* A REQ/REP server on the daemon's libuv loop: the nng side of every
 * control-plane endpoint (the controller's API, a relay's admin socket).
 * Requests arrive on nng's threads and are handed to the loop (a
 * lock-protected queue and uv_async_send: the one place with a lock); the
 * handler runs on the loop thread and replies whenever it is ready, inside
 * the call or later (after worker-thread work). At most
 * MC_RPC_SERVER_CONTEXTS requests are in hand at once; more wait in nng.
 * Requests are capped at MC_RPC_MAX_REQUEST bytes (rpc.h).
 *
 * Loop thread only, except where noted. */
#ifndef MC_RPC_SERVER_H
#define MC_RPC_SERVER_H

#include <stddef.h>

#include <nng/nng.h>
#include <uv.h>

#include "rpc.h"

#define MC_RPC_SERVER_CONTEXTS 16

struct mc_rpc_server;
struct mc_rpc_call;

/* One request: data/len stay valid until the call is replied to. Every
 * call must get exactly one mc_rpc_server_reply, also while the server is
 * closing (the reply is then dropped). */
typedef void mc_rpc_handler(struct mc_rpc_call *call, const void *data,
                            size_t len, void *ctx);

int mc_rpc_server_start(uv_loop_t *loop, const char *url,
                        const struct mc_tls_files *tls, mc_rpc_handler *handler,
                        void *ctx, struct mc_rpc_server **server_r,
                        const char **error_r);
/* Answer call with reply (ownership passes; NULL sends nothing and just
 * ends the call, e.g. when the reply could not be built). */
void mc_rpc_server_reply(struct mc_rpc_call *call, nng_msg *reply);
/* Pack and answer. */
void mc_rpc_server_respond(struct mc_rpc_call *call, const Mc__Response *resp);
/* Stop receiving. done(arg) runs once every call handed out was answered
 * and the server is freed. */
void mc_rpc_server_close(struct mc_rpc_server *server, void (*done)(void *arg),
                         void *arg);

#endif
