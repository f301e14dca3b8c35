/* Local delivery into the blob and mailbox stores; see deliver.h. */
#include "deliver.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "message.h"

struct deliver_job {
	struct node_deliver_services svc;
	struct node_deliver_request req; /* id_base, log_id point below */
	char *id_base, *log_id;
	node_deliver_done_cb *done;
	void *arg;
	struct node_message_meta meta;
	uv_work_t work;
};

static void
job_finish(struct deliver_job *job, const char *error)
{
	job->done(job->arg, job->meta.key, error);
	free(job->id_base);
	free(job->log_id);
	node_message_meta_fini(&job->meta);
	free(job);
}

/* Store pool worker: one fenced transaction per target. */
static void
store_work(struct node_store *store, const char *error, void *arg)
{
	struct deliver_job *job = arg;
	const char *base = job->req.id_base != NULL ? job->req.id_base : job->meta.key;

	for (size_t i = 0; i < job->req.target_count; i++) {
		struct node_deliver_target *t = &job->req.targets[i];
		char *delivery_id;
		struct node_delivery d = {
		        .account_id = t->account_id, .shard = t->shard, .epoch = t->epoch,
		        .mailbox = "INBOX", .blob_sha256 = job->meta.key, .size = job->req.len,
		        .internaldate = job->req.internaldate,
		        .envelope_json = job->meta.envelope_json,
		        .bodystructure_json = job->meta.bodystructure_json,
		        .imap_envelope = job->meta.imap_envelope,
		        .search_headers = job->meta.search_headers,
		        .quota_bytes = t->quota_bytes,
		};
		const char *err = NULL;

		if (t->epoch == 0)
			continue; /* result already FENCED */
		if (store == NULL) {
			t->result = NODE_STORE_TEMPFAIL;
			snprintf(t->error, sizeof(t->error), "%s", error);
			continue;
		}
		delivery_id = mc_asprintf("%s/%" PRIu64, base, t->account_id);
		d.delivery_id = delivery_id;
		t->result = node_store_deliver(store, &d, &t->uid, NULL, &err);
		if (err != NULL && t->result != NODE_STORE_OK &&
		    t->result != NODE_STORE_DUPLICATE)
			snprintf(t->error, sizeof(t->error), "%s", err);
		free(delivery_id);
	}
}

static void
store_done(void *arg)
{
	job_finish(arg, NULL);
}

static void
blob_put_done(void *arg, enum mc_blob_status status, const char *error)
{
	struct deliver_job *job = arg;

	if (status != MC_BLOB_OK) {
		mc_warn("deliver blob store failed session=%s error=\"%s\"",
		        job->req.log_id, error);
		job_finish(job, "Message store unavailable, try again");
		return;
	}
	/* The epoch to fence with is the one held now. */
	for (size_t i = 0; i < job->req.target_count; i++) {
		struct node_deliver_target *t = &job->req.targets[i];

		if (!mc_cfgsync_shard_epoch(job->svc.sync, t->shard, &t->epoch)) {
			t->epoch = 0;
			t->result = NODE_STORE_FENCED;
			snprintf(t->error, sizeof(t->error), "lease of shard %u lost",
			         t->shard);
		}
	}
	node_store_pool_run(job->svc.store, store_work, store_done, job);
}

/* Worker thread: the blob's key, and the envelope and MIME structure
 * IMAP answers FETCH from without reading the blob. */
static void
analyze_work(uv_work_t *w)
{
	struct deliver_job *job = w->data;

	node_message_analyze(job->req.data, job->req.len, &job->meta);
}

static void
analyze_done(uv_work_t *w, int status)
{
	struct deliver_job *job = w->data;
	const char *err = NULL;

	(void)status;
	if (mc_blob_put(job->svc.blob, job->meta.key, job->req.data, job->req.len,
	                blob_put_done, job, &err) < 0) {
		mc_warn("deliver blob store refused session=%s error=\"%s\"",
		        job->req.log_id, err);
		job_finish(job, "Message store busy, try again");
	}
}

void
node_deliver_start(uv_loop_t *loop, const struct node_deliver_services *svc,
                   const struct node_deliver_request *req,
                   node_deliver_done_cb *done, void *arg)
{
	struct deliver_job *job = mc_malloc(sizeof(*job));

	job->svc = *svc;
	job->req = *req;
	job->id_base = req->id_base != NULL ? mc_strdup(req->id_base) : NULL;
	job->log_id = mc_strdup(req->log_id != NULL ? req->log_id : "-");
	job->req.id_base = job->id_base;
	job->req.log_id = job->log_id;
	job->done = done;
	job->arg = arg;
	for (size_t i = 0; i < req->target_count; i++) {
		req->targets[i].result = NODE_STORE_TEMPFAIL;
		req->targets[i].uid = 0;
		req->targets[i].error[0] = '\0';
		req->targets[i].epoch = 0;
	}
	job->work.data = job;
	uv_queue_work(loop, &job->work, analyze_work, analyze_done);
}
