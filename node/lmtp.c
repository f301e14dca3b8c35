/* LMTP delivery into the mailbox store; see lmtp.h.
 *
 * Recipients are checked at RCPT (an account of the directory whose shard
 * we hold); after the final dot the message takes the way of every local
 * delivery (node/deliver.h: blob put, lease check, one fenced store
 * transaction per recipient) and each recipient gets its reply, in RCPT
 * order, from its own result. */
#include "lmtp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deliver.h"
#include "directory.h"
#include "error.h"
#include "log.h"
#include "mem.h"
#include "smtp_server.h"

struct node_lmtp {
	uv_loop_t *loop;
	struct node_lmtp_settings set;
	struct mc_smtp_server *server;
	void (*done)(void *arg);
	void *done_arg;
};

/* Per session: the transaction being received. */
struct lmtp_sess {
	struct node_lmtp *lmtp;
	struct node_deliver_target *rcpts;
	size_t rcpt_count, rcpt_cap;
	char *buf; /* Return-Path line + content */
	size_t len, cap;
};

/* One message on its way to the stores (owns the session's data). */
struct lmtp_job {
	struct node_lmtp *lmtp;
	struct mc_smtp_session *session;
	struct node_deliver_target *rcpts;
	size_t rcpt_count;
	char *blob;
	size_t len;
};

static void
rcpts_free(struct node_deliver_target *rcpts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rcpts[i].address);
	free(rcpts);
}

static void
sess_reset(struct lmtp_sess *ls)
{
	rcpts_free(ls->rcpts, ls->rcpt_count);
	ls->rcpts = NULL;
	ls->rcpt_count = ls->rcpt_cap = 0;
	free(ls->buf);
	ls->buf = NULL;
	ls->len = ls->cap = 0;
}

static void
buf_append(struct lmtp_sess *ls, const void *data, size_t len)
{
	if (ls->len + len > ls->cap) {
		size_t cap = ls->cap ? ls->cap : 16384;

		while (cap < ls->len + len)
			cap *= 2;
		ls->buf = mc_realloc(ls->buf, cap);
		ls->cap = cap;
	}
	memcpy(ls->buf + ls->len, data, len);
	ls->len += len;
}

/* ---- policy: up to the end of data ---- */

static void
on_connect(struct mc_smtp_session *s, void *ctx)
{
	struct lmtp_sess *ls = mc_malloc(sizeof(*ls));

	ls->lmtp = ctx;
	mc_smtp_session_set_user(s, ls);
	mc_smtp_session_accept(s);
}

static void
on_rcpt(struct mc_smtp_session *s, void *ctx, const struct mc_smtp_path *to,
        const struct mc_smtp_params *params)
{
	struct node_lmtp *lmtp = ctx;
	struct lmtp_sess *ls = mc_smtp_session_user(s);
	const struct mc_directory *dir = mc_cfgsync_directory(lmtp->set.sync);
	const struct mc_dir_account *acc = mc_directory_account(dir, to->mailbox);
	struct node_deliver_target *r;
	uint64_t epoch;
	char text[160];

	(void)params;
	if (acc == NULL) {
		mc_smtp_session_reply(s, 550, "5.1.1",
		                      mc_directory_has_domain(dir, to->domain)
		                              ? "No such mailbox"
		                              : "Not a domain of this cluster");
		return;
	}
	/* Not ours (now): the relay retries, and learns the new owner from
	 * the published shard map meanwhile. */
	if (!mc_cfgsync_shard_epoch(lmtp->set.sync, acc->shard, &epoch)) {
		snprintf(text, sizeof(text), "Mailbox shard %u is not served here now",
		         acc->shard);
		mc_smtp_session_reply(s, 451, "4.3.0", text);
		return;
	}
	if (ls->rcpt_count == ls->rcpt_cap) {
		ls->rcpt_cap = ls->rcpt_cap ? ls->rcpt_cap * 2 : 8;
		ls->rcpts = mc_realloc(ls->rcpts, ls->rcpt_cap * sizeof(*ls->rcpts));
	}
	r = &ls->rcpts[ls->rcpt_count++];
	memset(r, 0, sizeof(*r));
	r->address = mc_strdup(acc->address);
	r->account_id = acc->id;
	r->shard = acc->shard;
	r->quota_bytes = acc->quota_bytes;
	mc_smtp_session_accept(s);
}

static void
on_data_start(struct mc_smtp_session *s, void *ctx)
{
	struct lmtp_sess *ls = mc_smtp_session_user(s);
	const struct mc_smtp_txn *txn = mc_smtp_session_txn(s);
	char *line = mc_asprintf("Return-Path: <%s>\r\n", txn->mail_from);

	(void)ctx;
	buf_append(ls, line, strlen(line));
	free(line);
	mc_smtp_session_accept(s);
}

static void
on_data_content(struct mc_smtp_session *s, void *ctx, const void *data,
                size_t len)
{
	(void)ctx;
	buf_append(mc_smtp_session_user(s), data, len);
}

/* ---- the end of data: store, then one reply per recipient ---- */

static void
delivered(void *arg, const char *key, const char *error)
{
	struct lmtp_job *job = arg;

	for (size_t i = 0; i < job->rcpt_count; i++) {
		struct node_deliver_target *r = &job->rcpts[i];
		char text[320];

		if (error != NULL) {
			mc_smtp_session_reply(job->session, 451, "4.3.0", error);
			continue;
		}
		switch (r->result) {
		case NODE_STORE_OK:
		case NODE_STORE_DUPLICATE:
			snprintf(text, sizeof(text), "<%s> saved uid %" PRIu64 "%s",
			         r->address, r->uid,
			         r->result == NODE_STORE_DUPLICATE ? " (already delivered)" : "");
			mc_info("lmtp delivered session=%s rcpt=%s uid=%" PRIu64
			        " blob=%.16s dup=%d",
			        mc_smtp_session_id(job->session), r->address, r->uid, key,
			        r->result == NODE_STORE_DUPLICATE);
			mc_smtp_session_reply(job->session, 250, "2.0.0", text);
			if (job->lmtp->set.delivered != NULL)
				job->lmtp->set.delivered(r->account_id,
				                         job->lmtp->set.delivered_ctx);
			break;
		case NODE_STORE_OVERQUOTA:
			mc_info("lmtp refused session=%s rcpt=%s error=\"%s\"",
			        mc_smtp_session_id(job->session), r->address, r->error);
			mc_smtp_session_reply(job->session, 552, "5.2.2", "Mailbox full");
			break;
		case NODE_STORE_FENCED:
		case NODE_STORE_TEMPFAIL:
		case NODE_STORE_NOTFOUND: /* not expected: INBOX is created */
		case NODE_STORE_EXISTS:
			mc_warn("lmtp deferred session=%s rcpt=%s error=\"%s\"",
			        mc_smtp_session_id(job->session), r->address, r->error);
			mc_smtp_session_reply(job->session, 451, "4.3.0",
			                      r->result == NODE_STORE_FENCED
			                              ? "Mailbox shard moved, try again"
			                              : "Mailbox store unavailable, try again");
			break;
		}
	}
	rcpts_free(job->rcpts, job->rcpt_count);
	free(job->blob);
	free(job);
}

static void
on_data_end(struct mc_smtp_session *s, void *ctx)
{
	struct node_lmtp *lmtp = ctx;
	struct lmtp_sess *ls = mc_smtp_session_user(s);
	struct lmtp_job *job = mc_malloc(sizeof(*job));
	struct node_deliver_services svc = {
	        .sync = lmtp->set.sync, .blob = lmtp->set.blob, .store = lmtp->set.store,
	};
	struct node_deliver_request req;

	job->lmtp = lmtp;
	job->session = s;
	job->rcpts = ls->rcpts;
	job->rcpt_count = ls->rcpt_count;
	job->blob = ls->buf;
	job->len = ls->len;
	/* The job owns the transaction's data now. */
	ls->rcpts = NULL;
	ls->rcpt_count = ls->rcpt_cap = 0;
	ls->buf = NULL;
	ls->len = ls->cap = 0;
	/* Delivery id: blob key + account, so a redelivery of the same
	 * message (the relay retrying after losing our reply) is stored
	 * once. */
	req = (struct node_deliver_request){
	        .data = job->blob, .len = job->len,
	        .targets = job->rcpts, .target_count = job->rcpt_count,
	        .internaldate = (int64_t)time(NULL),
	        .log_id = mc_smtp_session_id(s),
	};
	node_deliver_start(lmtp->loop, &svc, &req, delivered, job);
}

static void
on_txn_end(struct mc_smtp_session *s, void *ctx, enum mc_smtp_txn_end how)
{
	(void)ctx;
	(void)how;
	sess_reset(mc_smtp_session_user(s));
}

static void
on_closed(struct mc_smtp_session *s, void *ctx)
{
	struct lmtp_sess *ls = mc_smtp_session_user(s);

	(void)ctx;
	if (ls != NULL) {
		sess_reset(ls);
		free(ls);
	}
}

int
node_lmtp_start(uv_loop_t *loop, const struct node_lmtp_settings *set,
                struct node_lmtp **lmtp_r, const char **error_r)
{
	static const struct mc_smtp_policy policy = {
	        .connect = on_connect,
	        .rcpt = on_rcpt,
	        .data_start = on_data_start,
	        .data_content = on_data_content,
	        .data_end = on_data_end,
	        .txn_end = on_txn_end,
	        .closed = on_closed,
	};
	struct node_lmtp *lmtp = mc_malloc(sizeof(*lmtp));
	struct mc_smtp_server_settings ss;

	lmtp->loop = loop;
	lmtp->set = *set;
	mc_smtp_server_settings_init(&ss);
	ss.hostname = set->hostname; /* copied by the engine */
	ss.mode = MC_SMTP_MODE_LMTP;
	if (set->max_message > 0)
		ss.max_message = set->max_message;
	if (mc_smtp_server_new(loop, &ss, &policy, lmtp, &lmtp->server, error_r) < 0)
		goto fail;
	if (mc_smtp_server_listen(lmtp->server, set->host, set->port, 0, error_r) < 0) {
		mc_smtp_server_close(lmtp->server, NULL, NULL);
		goto fail;
	}
	mc_info("lmtp listening address=%s", mc_smtp_server_address(lmtp->server));
	*lmtp_r = lmtp;
	return 0;
fail:
	free(lmtp);
	return -1;
}

const char *
node_lmtp_address(const struct node_lmtp *lmtp)
{
	return mc_smtp_server_address(lmtp->server);
}

static void
server_closed(void *arg)
{
	struct node_lmtp *lmtp = arg;

	if (lmtp->done != NULL)
		lmtp->done(lmtp->done_arg);
	free(lmtp);
}

void
node_lmtp_close(struct node_lmtp *lmtp, void (*done)(void *arg), void *arg)
{
	lmtp->done = done;
	lmtp->done_arg = arg;
	mc_smtp_server_close(lmtp->server, server_closed, lmtp);
}
