/* The controller's request server. A REP socket with a fixed number of
 * nng contexts receives requests on nng's threads; each received message
 * is handed to the libuv loop (lock-protected queue + uv_async_send, the
 * only lock in the controller), and the loop runs requests one at a time
 * on a libuv worker thread, where handlers may block on Postgres without
 * stalling the loop. One request at a time keeps the version order and
 * the publisher trivially consistent; the control plane is not a hot path.
 *
 * Every request is authenticated by its token (admin or node credential,
 * per route), unpacked into a per-request pool and answered: garbage gets
 * an INVALID reply, never a crash. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctrl.h"
#include <nng/protocol/reqrep0/rep.h>
#include "error.h"
#include "log.h"
#include "mem.h"

#define CTRL_CONTEXTS 16

enum slot_state { SLOT_RECV, SLOT_SEND };

struct ctrl_slot {
	struct ctrl_server *srv;
	nng_ctx ctx;
	nng_aio *aio;
	enum slot_state state;
	nng_msg *msg;           /* request, then reply */
	struct ctrl_slot *next; /* queue link */
	uv_work_t work;
};

struct ctrl_server {
	struct ctrl *ctrl;
	nng_socket rep;
	uv_async_t async;
	uv_mutex_t lock;
	struct ctrl_slot *ready, **ready_tail; /* nng threads -> loop, locked */
	struct ctrl_slot *pending, **pending_tail; /* loop only */
	bool busy;     /* loop only: a request is on the worker */
	bool stopping; /* loop only */
	void (*on_done)(struct ctrl *c);
	struct ctrl_slot slots[CTRL_CONTEXTS];
};

enum route_cred { CRED_NODE, CRED_ADMIN };

struct route {
	Mc__Request__BodyCase body;
	const char *name;
	enum route_cred cred;
	ctrl_handler_fn *fn;
};

static const struct route routes[] = {
	{MC__REQUEST__BODY_REGISTER, "register", CRED_NODE, ctrl_node_register},
	{MC__REQUEST__BODY_HEARTBEAT, "heartbeat", CRED_NODE, ctrl_node_heartbeat},
	{MC__REQUEST__BODY_SNAPSHOT, "snapshot", CRED_NODE, ctrl_node_snapshot},
	{MC__REQUEST__BODY_DOMAIN_ADD, "domain_add", CRED_ADMIN, ctrl_domain_add},
	{MC__REQUEST__BODY_DOMAIN_LIST, "domain_list", CRED_ADMIN, ctrl_domain_list},
	{MC__REQUEST__BODY_DOMAIN_RM, "domain_rm", CRED_ADMIN, ctrl_domain_rm},
	{MC__REQUEST__BODY_ACCOUNT_ADD, "account_add", CRED_ADMIN, ctrl_account_add},
	{MC__REQUEST__BODY_ACCOUNT_LIST, "account_list", CRED_ADMIN, ctrl_account_list},
	{MC__REQUEST__BODY_ACCOUNT_SHOW, "account_show", CRED_ADMIN, ctrl_account_show},
	{MC__REQUEST__BODY_ACCOUNT_RM, "account_rm", CRED_ADMIN, ctrl_account_rm},
	{MC__REQUEST__BODY_ACCOUNT_PASSWD, "account_passwd", CRED_ADMIN,
	 ctrl_account_passwd},
	{MC__REQUEST__BODY_ALIAS_ADD, "alias_add", CRED_ADMIN, ctrl_alias_add},
	{MC__REQUEST__BODY_ALIAS_LIST, "alias_list", CRED_ADMIN, ctrl_alias_list},
	{MC__REQUEST__BODY_ALIAS_RM, "alias_rm", CRED_ADMIN, ctrl_alias_rm},
	{MC__REQUEST__BODY_NODE_LIST, "node_list", CRED_ADMIN, ctrl_node_list},
	{MC__REQUEST__BODY_STATUS, "status", CRED_ADMIN, ctrl_status},
	{MC__REQUEST__BODY_DEBUG_DROP_DELTAS, "debug_drop_deltas", CRED_ADMIN,
	 ctrl_debug_drop_deltas},
};

static const struct route *
route_find(Mc__Request__BodyCase body)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (routes[i].body == body)
			return &routes[i];
	return NULL;
}

/* Run one request on the worker thread; returns the packed reply. */
static nng_msg *
handle(struct ctrl *c, nng_msg *in)
{
	struct mc_pool *pool = mc_pool_new();
	Mc__Response resp = MC__RESPONSE__INIT;
	struct ctrl_req r = {.ctrl = c, .pool = pool, .resp = &resp, .sqlstate = ""};
	const struct route *rt = NULL;
	const char *secret;
	nng_msg *out;

	r.req = mc__request__unpack(mc_pool_protobuf_allocator(pool),
	                            nng_msg_len(in), nng_msg_body(in));
	if (r.req == NULL) {
		ctrl_fail(&r, MC__STATUS__STATUS_INVALID, "malformed request");
		mc_warn("request rejected reason=malformed bytes=%zu", nng_msg_len(in));
		goto reply;
	}
	if ((rt = route_find(r.req->body_case)) == NULL) {
		ctrl_fail(&r, MC__STATUS__STATUS_INVALID, "unknown or empty request");
		goto reply;
	}
	secret = rt->cred == CRED_ADMIN ? c->admin_token : c->node_token;
	if (!mc_secret_equal(r.req->token, secret)) {
		ctrl_fail(&r, MC__STATUS__STATUS_UNAUTHORIZED,
		          "invalid credential for %s", rt->name);
		mc_warn("request rejected request=%s reason=unauthorized", rt->name);
		goto reply;
	}
	if (rt->fn(&r) < 0 && resp.status == MC__STATUS__STATUS_OK)
		ctrl_fail(&r, MC__STATUS__STATUS_INTERNAL, "request failed");
	/* One cleanup path for every handler: an unfinished transaction
	 * (error in the middle) is rolled back here. */
	if (c->pg != NULL && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		PQclear(PQexec(c->pg, "ROLLBACK"));
	if (resp.status == MC__STATUS__STATUS_OK && r.new_version != 0) {
		resp.version = r.new_version;
		ctrl_publish(&r);
	} else if (resp.version == 0) {
		resp.version = c->published_version;
	}
	if (resp.status != MC__STATUS__STATUS_OK)
		mc_warn("request=%s status=%s error=\"%s\"", rt->name,
		        mc_rpc_status_str(resp.status), resp.error);
	else if (rt->cred == CRED_ADMIN)
		mc_info("request=%s status=ok version=%llu", rt->name,
		        (unsigned long long)resp.version);
reply:
	out = mc_rpc_pack_response(&resp);
	mc_pool_free(&pool);
	return out;
}

static void
work_cb(uv_work_t *w)
{
	struct ctrl_slot *slot = w->data;
	nng_msg *reply = handle(slot->srv->ctrl, slot->msg);

	nng_msg_free(slot->msg);
	slot->msg = reply;
}

static void kick(struct ctrl_server *srv);
static void finish_stop(struct ctrl_server *srv);

static void
after_work_cb(uv_work_t *w, int status)
{
	struct ctrl_slot *slot = w->data;
	struct ctrl_server *srv = slot->srv;

	(void)status;
	srv->busy = false;
	if (srv->stopping) {
		nng_msg_free(slot->msg);
		slot->msg = NULL;
		finish_stop(srv);
		return;
	}
	slot->state = SLOT_SEND;
	nng_aio_set_msg(slot->aio, slot->msg);
	slot->msg = NULL;
	nng_ctx_send(slot->ctx, slot->aio);
	kick(srv);
}

static void
kick(struct ctrl_server *srv)
{
	struct ctrl_slot *slot = srv->pending;

	if (srv->busy || srv->stopping || slot == NULL)
		return;
	srv->pending = slot->next;
	if (srv->pending == NULL)
		srv->pending_tail = &srv->pending;
	slot->next = NULL;
	srv->busy = true;
	slot->work.data = slot;
	uv_queue_work(srv->ctrl->loop, &slot->work, work_cb, after_work_cb);
}

static void
async_cb(uv_async_t *a)
{
	struct ctrl_server *srv = a->data;

	uv_mutex_lock(&srv->lock);
	if (srv->ready != NULL) {
		*srv->pending_tail = srv->ready;
		srv->pending_tail = srv->ready_tail;
		srv->ready = NULL;
		srv->ready_tail = &srv->ready;
	}
	uv_mutex_unlock(&srv->lock);
	kick(srv);
}

/* nng thread: only hands work to the loop or re-arms a receive. */
static void
slot_cb(void *arg)
{
	struct ctrl_slot *slot = arg;
	struct ctrl_server *srv = slot->srv;
	int rv = nng_aio_result(slot->aio);

	if (slot->state == SLOT_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(slot->aio));
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		slot->state = SLOT_RECV;
		nng_ctx_recv(slot->ctx, slot->aio);
		return;
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
			nng_ctx_recv(slot->ctx, slot->aio);
		return;
	}
	slot->msg = nng_aio_get_msg(slot->aio);
	slot->next = NULL;
	uv_mutex_lock(&srv->lock);
	*srv->ready_tail = slot;
	srv->ready_tail = &slot->next;
	uv_mutex_unlock(&srv->lock);
	uv_async_send(&srv->async);
}

int
ctrl_server_start(struct ctrl *c, const char *url, const struct mc_tls_files *tls,
                  const char **error_r)
{
	struct ctrl_server *srv = mc_malloc(sizeof(*srv));
	int rv;

	srv->ctrl = c;
	srv->ready_tail = &srv->ready;
	srv->pending_tail = &srv->pending;
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
	uv_async_init(c->loop, &srv->async, async_cb);
	srv->async.data = srv;
	for (int i = 0; i < CTRL_CONTEXTS; i++) {
		struct ctrl_slot *slot = &srv->slots[i];

		slot->srv = srv;
		if (nng_aio_alloc(&slot->aio, slot_cb, slot) != 0 ||
		    nng_ctx_open(&slot->ctx, srv->rep) != 0)
			abort(); /* only fails on OOM */
		slot->state = SLOT_RECV;
		nng_ctx_recv(slot->ctx, slot->aio);
	}
	c->server = srv;
	return 0;
}

static void
async_close_cb(uv_handle_t *h)
{
	struct ctrl_server *srv = h->data;
	struct ctrl *c = srv->ctrl;
	void (*on_done)(struct ctrl *) = srv->on_done;

	uv_mutex_destroy(&srv->lock);
	free(srv);
	c->server = NULL;
	if (on_done != NULL)
		on_done(c);
}

static void
finish_stop(struct ctrl_server *srv)
{
	if (srv->busy)
		return; /* after_work_cb calls us again */
	for (struct ctrl_slot *s = srv->pending; s != NULL; s = s->next)
		nng_msg_free(s->msg);
	for (int i = 0; i < CTRL_CONTEXTS; i++)
		nng_aio_free(srv->slots[i].aio);
	uv_close((uv_handle_t *)&srv->async, async_close_cb);
}

void
ctrl_server_stop(struct ctrl *c, void (*on_done)(struct ctrl *c))
{
	struct ctrl_server *srv = c->server;

	if (srv == NULL || srv->stopping)
		return;
	srv->stopping = true;
	srv->on_done = on_done;
	/* Closing the socket completes every aio with NNG_ECLOSED; stopping
	 * each aio waits for its callback, so no uv_async_send can follow. */
	nng_close(srv->rep);
	for (int i = 0; i < CTRL_CONTEXTS; i++)
		nng_aio_stop(srv->slots[i].aio);
	/* Messages that reached the ready queue are now ours to free. */
	uv_mutex_lock(&srv->lock);
	if (srv->ready != NULL) {
		*srv->pending_tail = srv->ready;
		srv->pending_tail = srv->ready_tail;
		srv->ready = NULL;
	}
	uv_mutex_unlock(&srv->lock);
	finish_stop(srv);
}
