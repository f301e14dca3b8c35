/* IMAP commands on the selected mailbox's messages other than FETCH:
 * STORE (with UNCHANGEDSINCE), COPY and MOVE (COPYUID), EXPUNGE and UID
 * EXPUNGE, SEARCH (with ESEARCH return options and MODSEQ), and IDLE.
 *
 * SEARCH reads the metadata rows of the mailbox in one query and decides
 * what it can from them; only messages whose answer depends on their text
 * are read from the blob store, one at a time. IDLE looks at the mailbox
 * at once when this node changes it (node_imap_notify) and every
 * IDLE_POLL_MS otherwise, for writes made through other nodes. */
#include "imap_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "directory.h"
#include "imap_format.h"
#include "imap_search.h"
#include "log.h"
#include "mem.h"
#include "message.h"

#define IDLE_POLL_MS 500
#define SEARCH_BLOB_MAX (1024ull * 1024 * 1024)

/* A set of numbers as an IMAP sequence set ("1:3,7"), ascending input. */
static void
add_set(struct mc_strbuf *b, const uint32_t *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (i > 0)
			mc_strbuf_addc(b, ',');
		if (j > i)
			mc_strbuf_addf(b, "%" PRIu32 ":%" PRIu32, v[i], v[j]);
		else
			mc_strbuf_addf(b, "%" PRIu32, v[i]);
		i = j + 1;
	}
}

/* Untagged EXPUNGE (or VANISHED with QRESYNC) for uids, and drop them
 * from the view. */
static void
report_expunged(struct imap_sess *s, const uint32_t *uids, size_t n)
{
	struct mc_strbuf set = {0};
	uint32_t *gone = mc_calloc(n ? n : 1, sizeof(*gone));
	size_t ngone = 0;

	for (size_t i = 0; i < n; i++) {
		long idx = imap_view_find(&s->view, uids[i]);

		if (idx < 0)
			continue;
		if (!s->qresync)
			imap_outf(s, "* %ld EXPUNGE\r\n", idx + 1);
		gone[ngone++] = uids[i];
		imap_view_remove(&s->view, (size_t)idx);
	}
	if (s->qresync && ngone > 0) {
		add_set(&set, gone, ngone);
		imap_outf(s, "* VANISHED %s\r\n", set.data);
	}
	mc_strbuf_fini(&set);
	free(gone);
}

static bool
epoch_or_no(struct imap_sess *s, uint64_t *epoch_r)
{
	if (s->view.readonly) {
		imap_command_done(s, "NO", "READ-ONLY", "Mailbox is read-only");
		return false;
	}
	if (imap_epoch(s, epoch_r))
		return true;
	imap_command_done(s, "NO", "UNAVAILABLE",
	                  "This node does not serve the mailbox now; try again");
	return false;
}

/* ---- STORE -------------------------------------------------------------- */

struct store_req {
	struct imap_job job;
	uint64_t epoch;
	size_t *idx;
	size_t count;
	uint32_t *uids;
	enum node_flag_op op;
	const char **flags;
	size_t nflags;
	bool silent;
	uint64_t unchangedsince;
	struct node_msg_list changed;
	uint32_t *failed;
	size_t nfailed;
};

static void
store_req_free(struct store_req *r)
{
	free(r->idx);
	free(r->uids);
	node_msg_list_free(&r->changed);
	free(r->failed);
	free(r);
}

static void
store_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct store_req *r = job->arg;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	job->result = node_store_set_flags(store, job->s->shard, r->epoch,
	                                   job->s->view.mb.id, r->uids, r->count, r->op,
	                                   r->flags, r->nflags, r->unchangedsince,
	                                   &r->changed, &r->failed, &r->nfailed, &err);
	imap_job_error(job, err);
}

static void
store_done(struct imap_job *job)
{
	struct store_req *r = job->arg;
	struct imap_sess *s = job->s;
	struct mc_strbuf modified = {0};

	if (s == NULL)
		goto out;
	if (job->result != NODE_STORE_OK) {
		imap_job_failed(s, job, "STORE");
		goto out;
	}
	for (size_t i = 0; i < r->changed.count; i++) {
		long idx = imap_view_find(&s->view, r->changed.items[i].uid);

		if (idx < 0)
			continue;
		free(s->view.msgs[idx].flags);
		s->view.msgs[idx].flags = mc_strdup(r->changed.items[i].flags);
		s->view.msgs[idx].modseq = r->changed.items[i].modseq;
	}
	for (size_t i = 0; i < r->count; i++) {
		const struct imap_msg *m = &s->view.msgs[r->idx[i]];
		bool failed = false;

		for (size_t k = 0; k < r->nfailed && !failed; k++)
			failed = r->failed[k] == m->uid;
		if (failed || (r->silent && !s->condstore))
			continue;
		imap_outf(s, "* %zu FETCH (", r->idx[i] + 1);
		if (s->uid_cmd || s->condstore)
			imap_outf(s, "UID %" PRIu32 " ", m->uid);
		if (s->condstore)
			imap_outf(s, "MODSEQ (%" PRIu64 ")%s", m->modseq, r->silent ? "" : " ");
		if (!r->silent)
			imap_outf(s, "FLAGS (%s)", m->flags);
		imap_outs(s, ")\r\n");
	}
	if (r->nfailed > 0) {
		mc_strbuf_adds(&modified, "MODIFIED ");
		if (s->uid_cmd) {
			add_set(&modified, r->failed, r->nfailed);
		} else {
			uint32_t *seqs = mc_calloc(r->nfailed, sizeof(*seqs));
			size_t n = 0;

			for (size_t k = 0; k < r->nfailed; k++) {
				long idx = imap_view_find(&s->view, r->failed[k]);

				if (idx >= 0)
					seqs[n++] = (uint32_t)idx + 1;
			}
			add_set(&modified, seqs, n);
			free(seqs);
		}
	}
	imap_command_done(s, "OK", modified.data, "STORE completed");
	mc_strbuf_fini(&modified);
out:
	store_req_free(r);
}

/* STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags */
static int
store_parse(struct imap_sess *s, const struct mc_imap_command *cmd,
            struct store_req *r, const char **error_r)
{
	const struct mc_imap_token *a = cmd->args;
	unsigned i = 1, used;
	const char *op;
	size_t oplen;

	if (i < cmd->nargs && a[i].type == MC_IMAP_LIST) {
		if (a[i].count != 2 || !mc_imap_token_is(&a[i + 1], "UNCHANGEDSINCE") ||
		    !mc_imap_parse_u64(a[i + 2].text, a[i + 2].len, &r->unchangedsince)) {
			*error_r = "Invalid STORE modifier";
			return -1;
		}
		s->condstore = true;
		i += 3;
	}
	if (i + 2 > cmd->nargs || a[i].type != MC_IMAP_ATOM) {
		*error_r = "STORE takes a sequence set, an operation and flags";
		return -1;
	}
	op = a[i].text;
	oplen = a[i].len;
	r->op = NODE_FLAGS_REPLACE;
	if (op[0] == '+' || op[0] == '-') {
		r->op = op[0] == '+' ? NODE_FLAGS_ADD : NODE_FLAGS_REMOVE;
		op++;
		oplen--;
	}
	if (oplen == 12 && strncasecmp(op, "FLAGS.SILENT", 12) == 0)
		r->silent = true;
	else if (oplen != 5 || strncasecmp(op, "FLAGS", 5) != 0) {
		*error_r = "STORE takes FLAGS, +FLAGS or -FLAGS (.SILENT)";
		return -1;
	}
	i++;
	if (a[i].type != MC_IMAP_LIST) {
		/* flag flag ... without parentheses (RFC 3501 allows it). */
		const char **fl = mc_pool_alloc(s->pool, (cmd->nargs - i + 1) * sizeof(*fl));
		size_t n = 0;

		for (; i < cmd->nargs; i++) {
			const char **one;
			size_t k;

			if (imap_parse_flags(&a[i], 1, &one, &k, &used, s->pool, error_r) < 0)
				return -1;
			if (k == 1)
				fl[n++] = one[0];
		}
		r->flags = fl;
		r->nflags = n;
		return 0;
	}
	if (imap_parse_flags(&a[i], cmd->nargs - i, &r->flags, &r->nflags, &used, s->pool,
	                     error_r) < 0)
		return -1;
	if (i + used != cmd->nargs) {
		*error_r = "Unexpected STORE arguments";
		return -1;
	}
	return 0;
}

void
imap_cmd_store(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct store_req *r = mc_malloc(sizeof(*r));
	const char *err;

	if (cmd->nargs < 1 || cmd->args[0].type != MC_IMAP_ATOM) {
		store_req_free(r);
		imap_command_done(s, "BAD", NULL, "STORE takes a sequence set");
		return;
	}
	if (store_parse(s, cmd, r, &err) < 0 ||
	    imap_view_resolve(&s->view, cmd->args[0].text, cmd->args[0].len, cmd->uid,
	                      &r->idx, &r->count, &err) < 0) {
		store_req_free(r);
		imap_command_done(s, "BAD", NULL, "%s", err);
		return;
	}
	if (!epoch_or_no(s, &r->epoch)) {
		store_req_free(r);
		return;
	}
	if (r->count == 0) {
		store_req_free(r);
		imap_command_done(s, "OK", NULL, "STORE completed (no messages)");
		return;
	}
	r->uids = imap_view_uids(&s->view, r->idx, r->count);
	r->job.work = store_work;
	r->job.done = store_done;
	r->job.arg = r;
	imap_job_start(s, &r->job);
}

/* ---- COPY / MOVE ---------------------------------------------------------- */

struct copy_req {
	struct imap_job job;
	uint64_t epoch;
	bool move;
	char *target;
	uint32_t *uids;
	size_t count;
	uint64_t quota;
	bool same; /* into the selected mailbox */
	struct node_copy_result res;
};

static void
copy_req_free(struct copy_req *r)
{
	free(r->target);
	free(r->uids);
	node_copy_result_fini(&r->res);
	free(r);
}

static void
copy_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct copy_req *r = job->arg;
	struct imap_sess *s = job->s;
	struct node_mailbox_list list = {0};
	uint64_t target_id = 0;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	job->result = node_store_list_mailboxes(store, s->account_id, &list, &err);
	for (size_t i = 0; job->result == NODE_STORE_OK && i < list.count; i++)
		if (strcmp(list.items[i].name, r->target) == 0)
			target_id = list.items[i].id;
	node_mailbox_list_free(&list);
	if (job->result == NODE_STORE_OK && target_id == 0)
		job->result = NODE_STORE_NOTFOUND;
	if (job->result == NODE_STORE_OK)
		job->result = node_store_copy(store, s->shard, r->epoch, s->account_id,
		                              s->view.mb.id, r->uids, r->count, target_id,
		                              r->move, r->quota, &r->res, &err);
	imap_job_error(job, err);
}

static void
copy_done(struct imap_job *job)
{
	struct copy_req *r = job->arg;
	struct imap_sess *s = job->s;
	struct mc_strbuf code = {0};

	if (s == NULL)
		goto out;
	if (job->result != NODE_STORE_OK) {
		imap_sync_apply(s, job, true);
		if (job->result == NODE_STORE_NOTFOUND) /* RFC 3501 6.4.7 */
			imap_command_done(s, "NO", "TRYCREATE", "%s: no such mailbox",
			                  r->move ? "MOVE" : "COPY");
		else
			imap_job_failed(s, job, r->move ? "MOVE" : "COPY");
		goto out;
	}
	if (r->res.count > 0) {
		mc_strbuf_addf(&code, "COPYUID %" PRIu32 " ", r->res.uidvalidity);
		add_set(&code, r->res.src_uids, r->res.count);
		mc_strbuf_addc(&code, ' ');
		add_set(&code, r->res.dst_uids, r->res.count);
	}
	if (r->move) {
		if (code.data != NULL)
			imap_outf(s, "* OK [%s] Moved\r\n", code.data);
		report_expunged(s, r->res.src_uids, r->res.count);
	}
	imap_sync_apply(s, job, true);
	node_imap_notify(s->imap, s->account_id);
	imap_command_done(s, "OK", r->move ? NULL : code.data, "%s completed",
	                  r->move ? "MOVE" : "COPY");
out:
	mc_strbuf_fini(&code);
	copy_req_free(r);
}

void
imap_cmd_copy(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct copy_req *r = mc_malloc(sizeof(*r));
	const struct mc_dir_account *acc;
	const char *err, *name;
	size_t *idx = NULL, n = 0;

	r->move = strcmp(cmd->name, "MOVE") == 0;
	if (cmd->nargs != 2 || cmd->args[0].type != MC_IMAP_ATOM ||
	    (name = imap_arg_string(s, &cmd->args[1])) == NULL) {
		copy_req_free(r);
		imap_command_done(s, "BAD", NULL, "%s takes a sequence set and a mailbox",
		                  cmd->name);
		return;
	}
	if (imap_view_resolve(&s->view, cmd->args[0].text, cmd->args[0].len, cmd->uid,
	                      &idx, &n, &err) < 0) {
		copy_req_free(r);
		imap_command_done(s, "BAD", NULL, "%s", err);
		return;
	}
	r->target = mc_strdup(imap_mailbox_name(name));
	r->uids = imap_view_uids(&s->view, idx, n);
	r->count = n;
	free(idx);
	if (r->move ? !epoch_or_no(s, &r->epoch) : !imap_epoch(s, &r->epoch)) {
		if (!r->move)
			imap_command_done(s, "NO", "UNAVAILABLE",
			                  "This node does not serve the mailbox now; try again");
		copy_req_free(r);
		return;
	}
	if (n == 0) {
		copy_req_free(r);
		imap_command_done(s, "OK", NULL, "%s completed (no messages)", cmd->name);
		return;
	}
	acc = mc_directory_account(mc_cfgsync_directory(s->imap->set.sync), s->user);
	r->quota = acc != NULL ? acc->quota_bytes : 0;
	r->job.work = copy_work;
	r->job.done = copy_done;
	r->job.arg = r;
	r->job.sync = true;
	imap_job_start(s, &r->job);
}

/* ---- EXPUNGE ------------------------------------------------------------- */

struct expunge_req {
	struct imap_job job;
	uint64_t epoch;
	uint32_t *uids; /* UID EXPUNGE: only these; NULL: all \Deleted */
	size_t count;
	uint32_t *gone;
	size_t ngone;
};

static void
expunge_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct expunge_req *r = job->arg;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	job->result = node_store_expunge(store, job->s->shard, r->epoch,
	                                 job->s->view.mb.id, r->uids, r->count, &r->gone,
	                                 &r->ngone, &err);
	imap_job_error(job, err);
}

static void
expunge_done(struct imap_job *job)
{
	struct expunge_req *r = job->arg;
	struct imap_sess *s = job->s;

	if (s != NULL) {
		if (job->result == NODE_STORE_OK)
			report_expunged(s, r->gone, r->ngone);
		imap_sync_apply(s, job, true);
		if (job->result == NODE_STORE_OK) {
			char code[48];

			snprintf(code, sizeof(code), "HIGHESTMODSEQ %" PRIu64,
			         s->view.mb.highestmodseq);
			imap_command_done(s, "OK", s->condstore ? code : NULL,
			                  "EXPUNGE completed");
		} else {
			imap_job_failed(s, job, "EXPUNGE");
		}
	}
	free(r->uids);
	free(r->gone);
	free(r);
}

void
imap_cmd_expunge(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct expunge_req *r = mc_malloc(sizeof(*r));
	const char *err;

	if (cmd->uid) {
		size_t *idx = NULL;

		if (cmd->nargs != 1 || cmd->args[0].type != MC_IMAP_ATOM ||
		    imap_view_resolve(&s->view, cmd->args[0].text, cmd->args[0].len, true,
		                      &idx, &r->count, &err) < 0) {
			free(r);
			imap_command_done(s, "BAD", NULL, "UID EXPUNGE takes a UID set");
			return;
		}
		r->uids = imap_view_uids(&s->view, idx, r->count);
		free(idx);
	} else if (cmd->nargs != 0) {
		free(r);
		imap_command_done(s, "BAD", NULL, "EXPUNGE takes no arguments");
		return;
	}
	if (!epoch_or_no(s, &r->epoch)) {
		free(r->uids);
		free(r);
		return;
	}
	r->job.work = expunge_work;
	r->job.done = expunge_done;
	r->job.arg = r;
	r->job.sync = true;
	imap_job_start(s, &r->job);
}

/* ---- SEARCH --------------------------------------------------------------- */

/* Message bytes read ahead for SEARCH: the next rows that need their
 * bytes are read concurrently (the blob store's workers or S3
 * connections), and decided in order as they arrive. */
#define SEARCH_WINDOW 16

struct search_slot {
	struct imap_sess *s;
	size_t row;
	char *data;
	size_t len;
	bool ready;
};

struct search_req {
	struct imap_job job;
	struct mc_imap_search *search;
	struct mc_imap_search_options opts;
	struct mc_imap_search_ctx ctx;
	bool need_date;
	/* Text keys only on node_search_fields: rows with their stored
	 * search_headers are answered from those, without the blob. */
	bool fields_only;
	uint32_t *uids;
	struct node_msg_full *rows;
	size_t nrows;
	size_t pos;   /* the next row to decide */
	size_t ahead; /* the next row to look at for reading ahead */
	/* Per row, what the look ahead found: 0 undecided (needs the blob or
	 * not in the view), else 1 + enum mc_imap_search_result. */
	unsigned char *verdict;
	struct search_slot win[SEARCH_WINDOW]; /* reads in row order */
	size_t win_head, win_count;
	unsigned reading; /* reads not answered yet */
	bool failed;      /* a read failed: answer NO once none is out */
	uint32_t *hits;   /* numbers or UIDs, ascending */
	size_t nhits;
	uint64_t max_modseq;
};

static void
search_free(struct search_req *r)
{
	free(r->uids);
	free(r->verdict);
	node_msg_full_free(r->rows, r->nrows);
	for (size_t i = 0; i < SEARCH_WINDOW; i++)
		free(r->win[i].data);
	free(r->hits);
	free(r);
}

void
imap_search_abort(struct imap_sess *s)
{
	if (s->search != NULL)
		search_free(s->search);
	s->search = NULL;
}

/* The Date header value from the stored envelope JSON, or NULL. */
static const char *
envelope_date(const char *json, char *buf, size_t size)
{
	json_t *j, *d;
	const char *v = NULL;

	if (json == NULL || (j = json_loads(json, 0, NULL)) == NULL)
		return NULL;
	d = json_object_get(j, "date");
	if (json_is_string(d)) {
		snprintf(buf, size, "%s", json_string_value(d));
		v = buf;
	}
	json_decref(j);
	return v;
}

static void
search_answer(struct imap_sess *s, struct search_req *r)
{
	if (r->opts.esearch) {
		imap_outf(s, "* ESEARCH (TAG \"%s\")%s", s->tag, s->uid_cmd ? " UID" : "");
		if (r->nhits > 0 && (r->opts.ret & MC_IMAP_SEARCH_RET_MIN))
			imap_outf(s, " MIN %" PRIu32, r->hits[0]);
		if (r->nhits > 0 && (r->opts.ret & MC_IMAP_SEARCH_RET_MAX))
			imap_outf(s, " MAX %" PRIu32, r->hits[r->nhits - 1]);
		if (r->opts.ret & MC_IMAP_SEARCH_RET_COUNT)
			imap_outf(s, " COUNT %zu", r->nhits);
		if (r->nhits > 0 && (r->opts.ret & MC_IMAP_SEARCH_RET_ALL)) {
			imap_outs(s, " ALL ");
			add_set(&s->out, r->hits, r->nhits);
		}
		if (r->nhits > 0 && r->opts.uses_modseq)
			imap_outf(s, " MODSEQ %" PRIu64, r->max_modseq);
		imap_outs(s, "\r\n");
	} else {
		imap_outs(s, "* SEARCH");
		for (size_t i = 0; i < r->nhits; i++)
			imap_outf(s, " %" PRIu32, r->hits[i]);
		if (r->nhits > 0 && r->opts.uses_modseq)
			imap_outf(s, " (MODSEQ %" PRIu64 ")", r->max_modseq);
		imap_outs(s, "\r\n");
	}
	s->search = NULL;
	search_free(r);
	imap_command_done(s, "OK", NULL, "SEARCH completed");
}

static void search_next(struct imap_sess *s);

static void
search_blob(void *arg, enum mc_blob_status status, uint8_t *data, size_t len,
            const char *error)
{
	struct search_slot *slot = arg;
	struct imap_sess *s = slot->s;
	struct search_req *r;

	if (!imap_pending_release(s)) {
		free(data);
		return;
	}
	r = s->search;
	r->reading--;
	if (status != MC_BLOB_OK) {
		if (!r->failed)
			mc_warn("imap search blob read failed session=%" PRIu64
			        " error=\"%s\"",
			        s->id, error);
		r->failed = true;
		free(data);
	} else {
		slot->data = (char *)data;
		slot->len = len;
		slot->ready = true;
	}
	search_next(s);
}

/* Metadata of row as the search sees it (the Date only when date is not
 * NULL); false when its message is no longer in the view. */
static bool
search_msg(struct imap_sess *s, struct search_req *r, size_t row, char *date,
           size_t date_size, struct mc_imap_search_msg *m_r, long *idx_r)
{
	const struct node_msg_full *msg = &r->rows[row];
	long idx = imap_view_find(&s->view, msg->uid);

	if (idx < 0)
		return false;
	*idx_r = idx;
	*m_r = (struct mc_imap_search_msg){
	        .seq = (uint32_t)idx + 1,
	        .uid = msg->uid,
	        .modseq = s->view.msgs[idx].modseq,
	        .flags = s->view.msgs[idx].flags,
	        .size = msg->size,
	        .internaldate = msg->internaldate,
	        .date = r->need_date && date != NULL
	                         ? envelope_date(msg->envelope, date, date_size)
	                         : NULL,
	};
	if (r->fields_only && msg->search_headers != NULL) {
		m_r->data = msg->search_headers;
		m_r->len = strlen(msg->search_headers);
	}
	return true;
}

/* Start reads for the rows ahead whose answer needs their bytes. */
static void
search_read_ahead(struct imap_sess *s, struct search_req *r)
{
	char date[512];
	struct mc_imap_search_msg m;
	struct search_slot *slot;
	const char *err;
	long idx;

	while (r->win_count < SEARCH_WINDOW && r->ahead < r->nrows && !r->failed) {
		size_t row = r->ahead++;
		enum mc_imap_search_result res;

		if (!search_msg(s, r, row, date, sizeof(date), &m, &idx))
			continue;
		res = mc_imap_search_match(r->search, &r->ctx, &m);
		if (res != MC_IMAP_SEARCH_NEED_DATA) {
			r->verdict[row] = (unsigned char)(1 + res);
			continue;
		}
		slot = &r->win[(r->win_head + r->win_count) % SEARCH_WINDOW];
		*slot = (struct search_slot){.s = s, .row = row};
		s->pending++;
		if (mc_blob_get(s->imap->set.blob, r->rows[row].blob, SEARCH_BLOB_MAX,
		                search_blob, slot, &err) < 0) {
			s->pending--;
			r->failed = true;
			return;
		}
		r->win_count++;
		r->reading++;
	}
}

static void
search_next(struct imap_sess *s)
{
	struct search_req *r = s->search;
	char date[512];

	search_read_ahead(s, r);
	while (!r->failed && r->pos < r->nrows) {
		struct search_slot *slot = &r->win[r->win_head];
		bool have = r->win_count > 0 && slot->row == r->pos;
		struct mc_imap_search_msg m;
		enum mc_imap_search_result res;
		long idx;

		if (have && !slot->ready)
			return; /* search_blob comes back */
		/* A verdict from the look ahead needs no Date parsed again. */
		if (search_msg(s, r, r->pos, r->verdict[r->pos] != 0 ? NULL : date,
		               sizeof(date), &m, &idx)) {
			if (have) {
				m.data = slot->data;
				m.len = slot->len;
			}
			if (r->verdict[r->pos] != 0)
				res = (enum mc_imap_search_result)(r->verdict[r->pos] - 1);
			else
				res = mc_imap_search_match(r->search, &r->ctx, &m);
			if (res == MC_IMAP_SEARCH_YES) {
				r->hits[r->nhits++] = s->uid_cmd ? m.uid : m.seq;
				if (m.modseq > r->max_modseq)
					r->max_modseq = m.modseq;
			}
		}
		if (have) {
			free(slot->data);
			*slot = (struct search_slot){0};
			r->win_head = (r->win_head + 1) % SEARCH_WINDOW;
			r->win_count--;
			search_read_ahead(s, r);
		}
		r->pos++;
	}
	if (r->reading > 0)
		return; /* wait for every read before the answer */
	if (r->failed) {
		s->search = NULL;
		search_free(r);
		imap_command_done(s, "NO", "UNAVAILABLE",
		                  "Message store unavailable, try again");
		return;
	}
	search_answer(s, r);
}

static void
search_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct search_req *r = job->arg;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	job->result = node_store_fetch(store, job->s->view.mb.id, r->uids, job->s->view.count,
	                               (r->need_date ? NODE_FETCH_ENVELOPE_JSON : 0) |
	                                       (r->fields_only ? NODE_FETCH_SEARCH_HEADERS
	                                                       : 0),
	                               &r->rows, &r->nrows, &err);
	imap_job_error(job, err);
}

static void
search_done(struct imap_job *job)
{
	struct search_req *r = job->arg;
	struct imap_sess *s = job->s;

	if (s == NULL) {
		search_free(r);
		return;
	}
	if (job->result != NODE_STORE_OK) {
		search_free(r);
		imap_job_failed(s, job, "SEARCH");
		return;
	}
	r->hits = mc_calloc(r->nrows + 1, sizeof(*r->hits));
	r->verdict = mc_calloc(r->nrows + 1, 1);
	s->search = r;
	search_next(s);
}

void
imap_cmd_search(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct search_req *r = mc_malloc(sizeof(*r));
	const char *err;

	if (mc_imap_search_parse(cmd->args, cmd->nargs, s->pool, &r->search, &r->opts,
	                         &err) < 0) {
		free(r);
		if (strncmp(err, "[BADCHARSET", 11) == 0)
			imap_command_done(s, "NO", NULL, "%s", err);
		else
			imap_command_done(s, "BAD", NULL, "%s", err);
		return;
	}
	if (r->opts.uses_modseq)
		s->condstore = true;
	r->need_date = mc_imap_search_needs_date(r->search);
	r->fields_only = mc_imap_search_needs_data(r->search) &&
	                 mc_imap_search_fields_only(r->search, node_search_fields);
	r->ctx.max_seq = (uint32_t)s->view.count;
	r->ctx.max_uid = imap_view_max_uid(&s->view);
	if (s->view.count == 0) {
		r->hits = mc_calloc(1, sizeof(*r->hits));
		s->search = r;
		search_answer(s, r);
		return;
	}
	r->uids = mc_calloc(s->view.count, sizeof(*r->uids));
	for (size_t i = 0; i < s->view.count; i++)
		r->uids[i] = s->view.msgs[i].uid;
	r->job.work = search_work;
	r->job.done = search_done;
	r->job.arg = r;
	imap_job_start(s, &r->job);
}

/* ---- IDLE (RFC 2177) ------------------------------------------------------ */

static void idle_poll(uv_timer_t *t);

static void
idle_end(struct imap_sess *s)
{
	s->raw = IMAP_RAW_NONE;
	s->idle_done = false;
	uv_timer_stop(&s->idle_timer);
	imap_command_done(s, "OK", NULL, "IDLE terminated");
}

static void
idle_job_work(struct imap_job *job, struct node_store *store, const char *error)
{
	(void)job;
	(void)store;
	(void)error;
}

static void
idle_job_done(struct imap_job *job)
{
	struct imap_sess *s = job->s;

	if (s != NULL) {
		s->idle_job = NULL;
		imap_sync_apply(s, job, true);
		imap_flush(s, NULL);
		if (s->idle_done)
			idle_end(s);
		else
			uv_timer_start(&s->idle_timer, idle_poll, IDLE_POLL_MS, 0);
	}
	free(job);
}

static void
idle_poll(uv_timer_t *t)
{
	struct imap_sess *s = t->data;
	struct imap_job *job;

	if (s->idle_job != NULL || s->state != IMAP_SELECTED || s->closing)
		return;
	job = mc_malloc(sizeof(*job));
	job->work = idle_job_work;
	job->done = idle_job_done;
	job->sync = true;
	s->idle_job = job;
	imap_job_start(s, job);
}

void
imap_idle_poke(struct imap_sess *s)
{
	if (s->idle_timer_init && s->idle_job == NULL)
		uv_timer_start(&s->idle_timer, idle_poll, 0, 0);
}

void
imap_idle_line(struct imap_sess *s, const char *line, size_t len)
{
	if (len != 4 || strncasecmp(line, "DONE", 4) != 0) {
		s->raw = IMAP_RAW_NONE;
		uv_timer_stop(&s->idle_timer);
		imap_command_done(s, "BAD", NULL, "Expected DONE");
		return;
	}
	if (s->idle_job != NULL) {
		s->idle_done = true; /* answered when the poll is back */
		return;
	}
	idle_end(s);
}

void
imap_cmd_idle(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	(void)cmd;
	if (!s->idle_timer_init) {
		uv_timer_init(s->imap->loop, &s->idle_timer);
		s->idle_timer.data = s;
		s->idle_timer_init = true;
	}
	s->raw = IMAP_RAW_IDLE;
	imap_outs(s, "+ idling\r\n");
	imap_flush(s, NULL);
	if (s->state == IMAP_SELECTED)
		uv_timer_start(&s->idle_timer, idle_poll, IDLE_POLL_MS, 0);
	mc_conn_resume(s->conn);
}
