/* LMTP delivery into the mailbox store; see lmtp.h.
 *
 * One message's way after the final dot, every step answering each
 * recipient with a 4xx when it fails, so the relay keeps the message:
 *   1. worker thread: SHA-256 of the blob (its key), the parsed envelope
 *      (lib/imf) and MIME structure (lib/mime) for IMAP;
 *   2. loop: the blob store put (write-once, content-addressed);
 *   3. loop: each recipient's shard lease is checked again (the epoch to
 *      fence with is taken now, not at RCPT time);
 *   4. store pool: one fenced transaction per recipient;
 *   5. loop: the replies, in RCPT order. */
#include "lmtp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "directory.h"
#include "error.h"
#include "log.h"
#include "mem.h"
#include "message.h"
#include "smtp_server.h"

struct node_lmtp {
	uv_loop_t *loop;
	struct node_lmtp_settings set;
	struct mc_smtp_server *server;
	void (*done)(void *arg);
	void *done_arg;
};

struct lmtp_rcpt {
	char *address;
	uint64_t account_id;
	uint32_t shard;
	uint64_t epoch; /* 0: no lease at delivery time */
	uint64_t quota_bytes; /* 0: unlimited */
	enum node_store_result result;
	uint64_t uid;
	char error[200];
};

/* Per session: the transaction being received. */
struct lmtp_sess {
	struct node_lmtp *lmtp;
	struct lmtp_rcpt *rcpts;
	size_t rcpt_count, rcpt_cap;
	char *buf; /* Return-Path line + content */
	size_t len, cap;
};

/* One message on its way to the stores (owns the session's data). */
struct lmtp_job {
	struct node_lmtp *lmtp;
	struct mc_smtp_session *session;
	struct lmtp_rcpt *rcpts;
	size_t rcpt_count;
	char *blob;
	size_t len;
	char key[MC_BLOB_KEY_LEN + 1];
	char *envelope_json;
	char *bodystructure_json;
	int64_t internaldate;
	uv_work_t work;
	char error[200]; /* a failure for every recipient, "" if none */
};

static void
rcpts_free(struct lmtp_rcpt *rcpts, size_t n)
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
	struct lmtp_rcpt *r;
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

/* ---- the end of data: blob, leases, store, replies ---- */

static void
job_reply_and_free(struct lmtp_job *job)
{
	for (size_t i = 0; i < job->rcpt_count; i++) {
		struct lmtp_rcpt *r = &job->rcpts[i];
		char text[320];

		if (job->error[0] != '\0') {
			mc_smtp_session_reply(job->session, 451, "4.3.0", job->error);
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
			        mc_smtp_session_id(job->session), r->address, r->uid, job->key,
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
	free(job->envelope_json);
	free(job->bodystructure_json);
	free(job);
}

/* Store pool worker: one fenced transaction per recipient. */
static void
store_job(struct node_store *store, const char *error, void *arg)
{
	struct lmtp_job *job = arg;

	for (size_t i = 0; i < job->rcpt_count; i++) {
		struct lmtp_rcpt *r = &job->rcpts[i];
		char delivery_id[MC_BLOB_KEY_LEN + 32];
		struct node_delivery d = {
		        .account_id = r->account_id, .shard = r->shard, .epoch = r->epoch,
		        .mailbox = "INBOX", .blob_sha256 = job->key, .size = job->len,
		        .internaldate = job->internaldate, .delivery_id = delivery_id,
		        .envelope_json = job->envelope_json,
		        .bodystructure_json = job->bodystructure_json,
		        .quota_bytes = r->quota_bytes,
		};
		const char *err = NULL;

		if (r->epoch == 0)
			continue; /* result already FENCED */
		if (store == NULL) {
			r->result = NODE_STORE_TEMPFAIL;
			snprintf(r->error, sizeof(r->error), "%s", error);
			continue;
		}
		snprintf(delivery_id, sizeof(delivery_id), "%s/%" PRIu64, job->key,
		         r->account_id);
		r->result = node_store_deliver(store, &d, &r->uid, NULL, &err);
		if (err != NULL && r->result != NODE_STORE_OK &&
		    r->result != NODE_STORE_DUPLICATE)
			snprintf(r->error, sizeof(r->error), "%s", err);
	}
}

static void
store_done(void *arg)
{
	job_reply_and_free(arg);
}

static void
blob_put_done(void *arg, enum mc_blob_status status, const char *error)
{
	struct lmtp_job *job = arg;
	struct node_lmtp *lmtp = job->lmtp;

	if (status != MC_BLOB_OK) {
		mc_warn("lmtp blob store failed session=%s error=\"%s\"",
		        mc_smtp_session_id(job->session), error);
		snprintf(job->error, sizeof(job->error), "Message store unavailable, try again");
		job_reply_and_free(job);
		return;
	}
	/* The epoch to fence with is the one held now. */
	for (size_t i = 0; i < job->rcpt_count; i++) {
		struct lmtp_rcpt *r = &job->rcpts[i];

		if (!mc_cfgsync_shard_epoch(lmtp->set.sync, r->shard, &r->epoch)) {
			r->epoch = 0;
			r->result = NODE_STORE_FENCED;
			snprintf(r->error, sizeof(r->error), "lease of shard %u lost", r->shard);
		}
	}
	node_store_pool_run(lmtp->set.store, store_job, store_done, job);
}

/* Worker thread: the blob's key, and the envelope and MIME structure
 * IMAP answers FETCH from without reading the blob. */
static void
hash_work(uv_work_t *w)
{
	struct lmtp_job *job = w->data;

	node_message_analyze(job->blob, job->len, job->key, &job->envelope_json,
	                     &job->bodystructure_json);
}

static void
hash_done(uv_work_t *w, int status)
{
	struct lmtp_job *job = w->data;
	const char *err = NULL;

	(void)status;
	if (mc_blob_put(job->lmtp->set.blob, job->key, job->blob, job->len,
	                blob_put_done, job, &err) < 0) {
		mc_warn("lmtp blob store refused session=%s error=\"%s\"",
		        mc_smtp_session_id(job->session), err);
		snprintf(job->error, sizeof(job->error), "Message store busy, try again");
		job_reply_and_free(job);
	}
}

static void
on_data_end(struct mc_smtp_session *s, void *ctx)
{
	struct node_lmtp *lmtp = ctx;
	struct lmtp_sess *ls = mc_smtp_session_user(s);
	struct lmtp_job *job = mc_malloc(sizeof(*job));

	job->lmtp = lmtp;
	job->session = s;
	job->rcpts = ls->rcpts;
	job->rcpt_count = ls->rcpt_count;
	job->blob = ls->buf;
	job->len = ls->len;
	job->internaldate = (int64_t)time(NULL);
	/* The job owns the transaction's data now. */
	ls->rcpts = NULL;
	ls->rcpt_count = ls->rcpt_cap = 0;
	ls->buf = NULL;
	ls->len = ls->cap = 0;
	job->work.data = job;
	uv_queue_work(lmtp->loop, &job->work, hash_work, hash_done);
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
