/* The controller's request server. lib/rpc_server hands each request to
 * the loop; here they are queued and run one at a time on a libuv worker
 * thread, where handlers may block on Postgres without stalling the loop. One request at a time keeps the version order and
 * the publisher trivially consistent; the control plane is not a hot path.
 *
 * Every request is authenticated by its token (admin or node credential,
 * per route), unpacked into a per-request pool and answered: garbage gets
 * an INVALID reply, never a crash. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctrl.h"
#include "error.h"
#include "log.h"
#include "mem.h"
#include "rpc_server.h"

/* One request waiting for, or running on, the worker. */
struct ctrl_job {
	struct ctrl_server *srv;
	struct mc_rpc_call *call;
	const void *data;
	size_t len;
	nng_msg *reply;
	struct ctrl_job *next;
	uv_work_t work;
};

struct ctrl_server {
	struct ctrl *ctrl;
	struct mc_rpc_server *rpc;
	struct ctrl_job *pending, **pending_tail; /* FIFO */
	bool busy;     /* a job is on the worker */
	bool stopping;
	void (*on_done)(struct ctrl *c);
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
	{MC__REQUEST__BODY_DOMAIN_DNS, "domain_dns", CRED_ADMIN, ctrl_domain_dns},
	{MC__REQUEST__BODY_ROUTE_ADD, "route_add", CRED_ADMIN, ctrl_route_add},
	{MC__REQUEST__BODY_ROUTE_LIST, "route_list", CRED_ADMIN, ctrl_route_list},
	{MC__REQUEST__BODY_ROUTE_RM, "route_rm", CRED_ADMIN, ctrl_route_rm},
	{MC__REQUEST__BODY_ROUTE_DEFAULT, "route_default", CRED_ADMIN,
	 ctrl_route_default},
	{MC__REQUEST__BODY_ROUTE_RULE_ADD, "route_rule_add", CRED_ADMIN,
	 ctrl_route_rule_add},
	{MC__REQUEST__BODY_ROUTE_RULE_RM, "route_rule_rm", CRED_ADMIN,
	 ctrl_route_rule_rm},
	{MC__REQUEST__BODY_DKIM_CREATE, "dkim_create", CRED_ADMIN, ctrl_dkim_create},
	{MC__REQUEST__BODY_DKIM_LIST, "dkim_list", CRED_ADMIN, ctrl_dkim_list},
	{MC__REQUEST__BODY_DKIM_ROTATE, "dkim_rotate", CRED_ADMIN, ctrl_dkim_rotate},
	{MC__REQUEST__BODY_DKIM_RM, "dkim_rm", CRED_ADMIN, ctrl_dkim_rm},
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
handle(struct ctrl *c, const void *data, size_t len)
{
	struct mc_pool *pool = mc_pool_new();
	Mc__Response resp = MC__RESPONSE__INIT;
	struct ctrl_req r = {.ctrl = c, .pool = pool, .resp = &resp, .sqlstate = ""};
	const struct route *rt = NULL;
	const char *secret;
	nng_msg *out;

	r.req = mc__request__unpack(mc_pool_protobuf_allocator(pool), len, data);
	if (r.req == NULL) {
		ctrl_fail(&r, MC__STATUS__STATUS_INVALID, "malformed request");
		mc_warn("request rejected reason=malformed bytes=%zu", len);
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
	if (r.new_version != 0 && c->snap_cache != NULL) { /* now stale */
		free(c->snap_cache);
		c->snap_cache = NULL;
	}
	if (r.packed != NULL && resp.status == MC__STATUS__STATUS_OK) {
		if (nng_msg_alloc(&out, r.packed_len) != 0)
			abort();
		memcpy(nng_msg_body(out), r.packed, r.packed_len);
	} else {
		out = mc_rpc_pack_response(&resp);
		if (r.cache_reply && resp.status == MC__STATUS__STATUS_OK) {
			free(c->snap_cache);
			c->snap_cache_len = nng_msg_len(out);
			c->snap_cache = mc_malloc(c->snap_cache_len);
			memcpy(c->snap_cache, nng_msg_body(out), c->snap_cache_len);
			c->snap_cache_version = resp.version;
		}
	}
	/* Decrypted DKIM keys of a relay's snapshot: packed, now wiped. */
	ctrl_secrets_wipe(&r);
	mc_pool_free(&pool);
	return out;
}

static void
work_cb(uv_work_t *w)
{
	struct ctrl_job *job = w->data;

	job->reply = handle(job->srv->ctrl, job->data, job->len);
}

static void kick(struct ctrl_server *srv);

static void
after_work_cb(uv_work_t *w, int status)
{
	struct ctrl_job *job = w->data;
	struct ctrl_server *srv = job->srv;

	(void)status;
	srv->busy = false;
	mc_rpc_server_reply(job->call, job->reply);
	free(job);
	kick(srv);
}

static void
kick(struct ctrl_server *srv)
{
	struct ctrl_job *job = srv->pending;

	if (srv->busy || srv->stopping || job == NULL)
		return;
	srv->pending = job->next;
	if (srv->pending == NULL)
		srv->pending_tail = &srv->pending;
	srv->busy = true;
	job->work.data = job;
	uv_queue_work(srv->ctrl->loop, &job->work, work_cb, after_work_cb);
}

static void
on_request(struct mc_rpc_call *call, const void *data, size_t len, void *ctx)
{
	struct ctrl_server *srv = ctx;
	struct ctrl_job *job = mc_malloc(sizeof(*job));

	job->srv = srv;
	job->call = call;
	job->data = data;
	job->len = len;
	*srv->pending_tail = job;
	srv->pending_tail = &job->next;
	kick(srv);
}

int
ctrl_server_start(struct ctrl *c, const char *url, const struct mc_tls_files *tls,
                  const char **error_r)
{
	struct ctrl_server *srv = mc_malloc(sizeof(*srv));

	srv->ctrl = c;
	srv->pending_tail = &srv->pending;
	if (mc_rpc_server_start(c->loop, url, tls, on_request, srv, &srv->rpc,
	                        error_r) < 0) {
		free(srv);
		return -1;
	}
	c->server = srv;
	return 0;
}

static void
rpc_closed(void *arg)
{
	struct ctrl_server *srv = arg;
	struct ctrl *c = srv->ctrl;
	void (*on_done)(struct ctrl *) = srv->on_done;

	free(srv);
	c->server = NULL;
	if (on_done != NULL)
		on_done(c);
}

void
ctrl_server_stop(struct ctrl *c, void (*on_done)(struct ctrl *c))
{
	struct ctrl_server *srv = c->server;
	Mc__Response resp = MC__RESPONSE__INIT;

	if (srv == NULL || srv->stopping)
		return;
	srv->stopping = true;
	srv->on_done = on_done;
	/* Requests not started are answered; the one on the worker finishes
	 * and replies, then the rpc server completes its close. */
	resp.status = MC__STATUS__STATUS_UNAVAILABLE;
	resp.error = "controller shutting down";
	while (srv->pending != NULL) {
		struct ctrl_job *job = srv->pending;

		srv->pending = job->next;
		mc_rpc_server_respond(job->call, &resp);
		free(job);
	}
	srv->pending_tail = &srv->pending;
	mc_rpc_server_close(srv->rpc, rpc_closed, srv);
}
