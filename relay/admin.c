/* The relay's admin socket; see admin.h. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "mem.h"
#include "pool.h"
#include "rpc_server.h"

struct relay_admin {
	struct mc_rpc_server *rpc;
	struct relay_delivery *delivery;
	char *token;
	void (*done)(void *arg);
	void *done_arg;
};

/* A request being answered (delete completes later). */
struct admin_req {
	struct relay_admin *admin;
	struct mc_rpc_call *call;
	struct mc_pool *pool;
	Mc__Response resp;
	char id[RELAY_QUEUE_ID_SIZE]; /* delete: for the log */
};

static void
finish(struct admin_req *ar)
{
	mc_rpc_server_respond(ar->call, &ar->resp);
	mc_pool_free(&ar->pool);
	free(ar);
}

static int
fail(struct admin_req *ar, Mc__Status status, const char *text)
{
	ar->resp.status = status;
	ar->resp.error = mc_pool_strdup(ar->pool, text);
	return -1;
}

static Mc__QueueMessage *
message_of(struct mc_pool *pool, const struct relay_queue_envelope *env)
{
	static const char *const states[] = {"pending", "delivered", "failed"};
	Mc__QueueMessage *m = mc_pool_alloc(pool, sizeof(*m));

	mc__queue_message__init(m);
	m->id = mc_pool_strdup(pool, env->id);
	m->sender = mc_pool_strdup(pool, env->sender);
	m->size = env->size;
	m->received = env->received;
	m->recipients = mc_pool_alloc(pool, sizeof(*m->recipients) * (env->rcpt_count + 1));
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct relay_queue_rcpt *rc = &env->rcpts[i];
		Mc__QueueRecipient *r = mc_pool_alloc(pool, sizeof(*r));

		mc__queue_recipient__init(r);
		r->address = mc_pool_strdup(pool, rc->address);
		r->state = (char *)states[rc->state <= RELAY_QUEUE_FAILED ? rc->state : 0];
		r->attempts = rc->attempts;
		r->next_attempt = rc->next_attempt;
		r->last_error = mc_pool_strdup(pool, rc->last_error);
		m->recipients[m->n_recipients++] = r;
	}
	return m;
}

struct list_ctx {
	struct mc_pool *pool;
	Mc__QueueList *list;
	size_t cap;
};

static void
list_one(const struct relay_queue_envelope *env, void *ctx)
{
	struct list_ctx *lc = ctx;

	if (lc->list->n_messages == lc->cap) {
		Mc__QueueMessage **grown;

		lc->cap = lc->cap ? lc->cap * 2 : 64;
		grown = mc_pool_alloc(lc->pool, sizeof(*grown) * lc->cap);
		if (lc->list->n_messages > 0)
			memcpy(grown, lc->list->messages,
			       sizeof(*grown) * lc->list->n_messages);
		lc->list->messages = grown;
	}
	lc->list->messages[lc->list->n_messages++] = message_of(lc->pool, env);
}

static void
delete_done(int status, const char *error, void *arg)
{
	struct admin_req *ar = arg;

	if (status < 0)
		fail(ar, MC__STATUS__STATUS_INTERNAL, error);
	else
		mc_info("admin queue delete id=%s", ar->id);
	finish(ar);
}

/* 1: answered later (delete), 0: answer now, -1: answer the failure now. */
static int
dispatch(struct admin_req *ar, const Mc__Request *req)
{
	struct relay_delivery *d = ar->admin->delivery;
	const struct relay_queue_envelope *env;
	const char *id;

	switch (req->body_case) {
	case MC__REQUEST__BODY_QUEUE_LIST: {
		struct list_ctx lc = {.pool = ar->pool};

		lc.list = mc_pool_alloc(ar->pool, sizeof(*lc.list));
		mc__queue_list__init(lc.list);
		relay_delivery_foreach(d, list_one, &lc);
		ar->resp.body_case = MC__RESPONSE__BODY_QUEUE_LIST;
		ar->resp.queue_list = lc.list;
		return 0;
	}
	case MC__REQUEST__BODY_QUEUE_SHOW:
		id = req->queue_show->id;
		if ((env = relay_delivery_find(d, id)) == NULL)
			return fail(ar, MC__STATUS__STATUS_NOT_FOUND, "no such message in the queue");
		ar->resp.body_case = MC__RESPONSE__BODY_QUEUE_MESSAGE;
		ar->resp.queue_message = message_of(ar->pool, env);
		return 0;
	case MC__REQUEST__BODY_QUEUE_RETRY:
		id = req->queue_retry->id;
		if (relay_delivery_retry(d, *id != '\0' ? id : NULL) < 0)
			return fail(ar, MC__STATUS__STATUS_NOT_FOUND, "no such message in the queue");
		return 0;
	case MC__REQUEST__BODY_QUEUE_DELETE:
		id = req->queue_delete->id;
		snprintf(ar->id, sizeof(ar->id), "%s", id);
		if (relay_delivery_delete(d, id, delete_done, ar) < 0)
			return fail(ar, MC__STATUS__STATUS_NOT_FOUND, "no such message in the queue");
		return 1;
	default:
		return fail(ar, MC__STATUS__STATUS_INVALID,
		            "not a relay admin request (ask the controller)");
	}
}

static void
on_request(struct mc_rpc_call *call, const void *data, size_t len, void *ctx)
{
	struct relay_admin *admin = ctx;
	struct admin_req *ar = mc_malloc(sizeof(*ar));
	const Mc__Request *req;

	ar->admin = admin;
	ar->call = call;
	ar->pool = mc_pool_new();
	mc__response__init(&ar->resp);
	req = mc__request__unpack(mc_pool_protobuf_allocator(ar->pool), len, data);
	if (req == NULL)
		fail(ar, MC__STATUS__STATUS_INVALID, "malformed request");
	else if (!mc_secret_equal(req->token, admin->token))
		fail(ar, MC__STATUS__STATUS_UNAUTHORIZED, "invalid credential");
	else if (dispatch(ar, req) > 0)
		return;
	finish(ar);
}

int
relay_admin_start(uv_loop_t *loop, const char *url, const struct mc_tls_files *tls,
                  const char *token, struct relay_delivery *d,
                  struct relay_admin **admin_r, const char **error_r)
{
	struct relay_admin *admin = mc_malloc(sizeof(*admin));

	admin->delivery = d;
	admin->token = mc_strdup(token);
	if (mc_rpc_server_start(loop, url, tls, on_request, admin, &admin->rpc,
	                        error_r) < 0) {
		mc_secret_free(&admin->token);
		free(admin);
		return -1;
	}
	mc_info("admin listening url=%s", url);
	*admin_r = admin;
	return 0;
}

static void
rpc_closed(void *arg)
{
	struct relay_admin *admin = arg;

	if (admin->done != NULL)
		admin->done(admin->done_arg);
	mc_secret_free(&admin->token);
	free(admin);
}

void
relay_admin_close(struct relay_admin *admin, void (*done)(void *arg), void *arg)
{
	admin->done = done;
	admin->done_arg = arg;
	mc_rpc_server_close(admin->rpc, rpc_closed, admin);
}
