/* REP server bridged to the libuv loop; see rpc_server.h.
 *
 * Each nng context ("slot") cycles RECV -> HANDLING -> SEND -> RECV. The
 * aio callback (an nng thread) only queues a received slot for the loop or
 * re-arms a receive. Closing: the socket is closed, which completes every
 * pending aio with NNG_ECLOSED; stopping each aio waits for its callback,
 * after which no nng thread can touch the queue or the async handle. Slots
 * queued but not yet handled are dropped; slots in the handler's hands are
 * waited for. */
#include "rpc_server.h"

#include <stdbool.h>
#include <stdlib.h>

#include <nng/protocol/reqrep0/rep.h>

#include "error.h"
#include "log.h"
#include "mem.h"

enum slot_state { SLOT_RECV, SLOT_HANDLING, SLOT_SEND };

struct mc_rpc_call {
	struct mc_rpc_server *server;
	nng_ctx ctx;
	nng_aio *aio;
	enum slot_state state;
	nng_msg *msg;             /* the request while handled */
	struct mc_rpc_call *next; /* ready queue */
};

struct mc_rpc_server {
	uv_loop_t *loop;
	nng_socket rep;
	mc_rpc_handler *handler;
	void *ctx;
	uv_async_t async;
	uv_mutex_t lock;
	struct mc_rpc_call *ready, **ready_tail; /* nng threads -> loop, locked */
	unsigned handling;                       /* calls in the handler's hands */
	bool closing;
	void (*done)(void *arg);
	void *done_arg;
	struct mc_rpc_call calls[MC_RPC_SERVER_CONTEXTS];
};

static void finish_close(struct mc_rpc_server *srv);

/* nng thread: queue a received request for the loop, or re-arm. */
static void
call_cb(void *arg)
{
	struct mc_rpc_call *call = arg;
	struct mc_rpc_server *srv = call->server;
	int rv = nng_aio_result(call->aio);

	if (call->state == SLOT_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(call->aio));
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		call->state = SLOT_RECV;
		nng_ctx_recv(call->ctx, call->aio);
		return;
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
			nng_ctx_recv(call->ctx, call->aio);
		return;
	}
	call->msg = nng_aio_get_msg(call->aio);
	call->next = NULL;
	uv_mutex_lock(&srv->lock);
	*srv->ready_tail = call;
	srv->ready_tail = &call->next;
	uv_mutex_unlock(&srv->lock);
	uv_async_send(&srv->async);
}

static void
async_cb(uv_async_t *a)
{
	struct mc_rpc_server *srv = a->data;
	struct mc_rpc_call *call;

	uv_mutex_lock(&srv->lock);
	call = srv->ready;
	srv->ready = NULL;
	srv->ready_tail = &srv->ready;
	uv_mutex_unlock(&srv->lock);
	while (call != NULL && !srv->closing) {
		struct mc_rpc_call *next = call->next;

		call->state = SLOT_HANDLING;
		srv->handling++;
		srv->handler(call, nng_msg_body(call->msg), nng_msg_len(call->msg),
		             srv->ctx);
		call = next;
	}
}

void
mc_rpc_server_reply(struct mc_rpc_call *call, nng_msg *reply)
{
	struct mc_rpc_server *srv = call->server;

	nng_msg_free(call->msg);
	call->msg = NULL;
	srv->handling--;
	if (srv->closing) {
		if (reply != NULL)
			nng_msg_free(reply);
		finish_close(srv);
		return;
	}
	if (reply == NULL) {
		call->state = SLOT_RECV;
		nng_ctx_recv(call->ctx, call->aio);
		return;
	}
	call->state = SLOT_SEND;
	nng_aio_set_msg(call->aio, reply);
	nng_ctx_send(call->ctx, call->aio);
}

void
mc_rpc_server_respond(struct mc_rpc_call *call, const Mc__Response *resp)
{
	mc_rpc_server_reply(call, mc_rpc_pack_response(resp));
}

int
mc_rpc_server_start(uv_loop_t *loop, const char *url,
                    const struct mc_tls_files *tls, mc_rpc_handler *handler,
                    void *ctx, struct mc_rpc_server **server_r,
                    const char **error_r)
{
	struct mc_rpc_server *srv = mc_malloc(sizeof(*srv));
	int rv;

	srv->loop = loop;
	srv->handler = handler;
	srv->ctx = ctx;
	srv->ready_tail = &srv->ready;
	if ((rv = nng_rep0_open(&srv->rep)) != 0) {
		*error_r = mc_errorf("rep socket: %s", nng_strerror(rv));
		free(srv);
		return -1;
	}
	if (mc_rpc_listen(srv->rep, url, tls, error_r) < 0) {
		nng_close(srv->rep);
		free(srv);
		return -1;
	}
	uv_mutex_init(&srv->lock);
	uv_async_init(loop, &srv->async, async_cb);
	srv->async.data = srv;
	for (int i = 0; i < MC_RPC_SERVER_CONTEXTS; i++) {
		struct mc_rpc_call *call = &srv->calls[i];

		call->server = srv;
		if (nng_aio_alloc(&call->aio, call_cb, call) != 0 ||
		    nng_ctx_open(&call->ctx, srv->rep) != 0)
			abort(); /* only fails on OOM */
		call->state = SLOT_RECV;
		nng_ctx_recv(call->ctx, call->aio);
	}
	*server_r = srv;
	return 0;
}

static void
async_closed(uv_handle_t *h)
{
	struct mc_rpc_server *srv = h->data;
	void (*done)(void *) = srv->done;
	void *arg = srv->done_arg;

	uv_mutex_destroy(&srv->lock);
	free(srv);
	if (done != NULL)
		done(arg);
}

static void
finish_close(struct mc_rpc_server *srv)
{
	if (srv->handling > 0)
		return; /* the last reply calls us again */
	for (int i = 0; i < MC_RPC_SERVER_CONTEXTS; i++)
		nng_aio_free(srv->calls[i].aio);
	uv_close((uv_handle_t *)&srv->async, async_closed);
}

void
mc_rpc_server_close(struct mc_rpc_server *srv, void (*done)(void *arg), void *arg)
{
	struct mc_rpc_call *call;

	srv->closing = true;
	srv->done = done;
	srv->done_arg = arg;
	nng_close(srv->rep);
	for (int i = 0; i < MC_RPC_SERVER_CONTEXTS; i++)
		nng_aio_stop(srv->calls[i].aio);
	/* No nng thread runs now: requests never handed out are dropped. */
	for (call = srv->ready; call != NULL; call = call->next) {
		nng_msg_free(call->msg);
		call->msg = NULL;
	}
	srv->ready = NULL;
	srv->ready_tail = &srv->ready;
	finish_close(srv);
}
