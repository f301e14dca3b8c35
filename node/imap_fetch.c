/* IMAP FETCH and UID FETCH: the items of RFC 3501 6.4.5 (FLAGS, UID,
 * INTERNALDATE, RFC822.SIZE, ENVELOPE, BODY, BODYSTRUCTURE, the RFC822
 * forms, BODY[section]<partial> and BODY.PEEK), BINARY and BINARY.SIZE
 * (RFC 3516), MODSEQ and CHANGEDSINCE (RFC 7162).
 *
 * The way of one FETCH: items that only need the session's view (UID,
 * FLAGS, MODSEQ) are answered at once. Otherwise one store job sets
 * \Seen where a body is fetched without PEEK, and reads the metadata
 * rows of the whole set in one query; then the loop answers message by
 * message, reading a blob only when a body section is asked for, and
 * waits for the client to read (DRAIN) whenever its output piles up, so
 * a 10,000-message FETCH or a 50 MB body never sits in memory at once. */
#include "imap_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "imap_format.h"
#include "log.h"
#include "mem.h"
#include "mime.h"

/* Largest blob read for a FETCH: what the node ever stores. */
#define FETCH_BLOB_MAX (1024ull * 1024 * 1024)
/* Output buffered before waiting for the client. */
#define FETCH_OUT_HIGH (256u * 1024)
/* Sections per FETCH. */
#define FETCH_MAX_SECTIONS 64u

#define F_UID 0x1u
#define F_FLAGS 0x2u
#define F_INTERNALDATE 0x4u
#define F_SIZE 0x8u
#define F_ENVELOPE 0x10u
#define F_BODY 0x20u
#define F_BODYSTRUCTURE 0x40u
#define F_MODSEQ 0x80u
/* Need the stored row (beyond the view). */
#define F_ROW (F_INTERNALDATE | F_SIZE | F_ENVELOPE | F_BODY | F_BODYSTRUCTURE)

struct fetch_req {
	struct imap_job job;
	size_t *idx; /* view indexes, ascending */
	size_t count;
	uint32_t *uids;
	unsigned items;
	struct mc_imap_section secs[FETCH_MAX_SECTIONS];
	size_t nsecs;
	bool set_seen;
	uint64_t changedsince;
	uint64_t epoch;
	/* From the job. */
	struct node_msg_list seen_changed;
	struct node_msg_full *rows;
	size_t nrows;
	/* Answering. */
	size_t pos;
	char *blob;
	size_t blob_len;
	bool blob_wanted;
	struct mc_strbuf line;
};

static void
fetch_free(struct fetch_req *f)
{
	free(f->idx);
	free(f->uids);
	node_msg_list_free(&f->seen_changed);
	node_msg_full_free(f->rows, f->nrows);
	free(f->blob);
	mc_strbuf_fini(&f->line);
	free(f);
}

/* ---- parsing ------------------------------------------------------------ */

static int
fetch_item(struct imap_sess *s, struct fetch_req *f, const struct mc_imap_token *t,
           const char **error_r)
{
	static const struct {
		const char *name;
		unsigned bits;
	} simple[] = {
	        {"UID", F_UID},
	        {"FLAGS", F_FLAGS},
	        {"INTERNALDATE", F_INTERNALDATE},
	        {"RFC822.SIZE", F_SIZE},
	        {"ENVELOPE", F_ENVELOPE},
	        {"BODY", F_BODY},
	        {"BODYSTRUCTURE", F_BODYSTRUCTURE},
	        {"MODSEQ", F_MODSEQ},
	        {"ALL", F_FLAGS | F_INTERNALDATE | F_SIZE | F_ENVELOPE},
	        {"FAST", F_FLAGS | F_INTERNALDATE | F_SIZE},
	        {"FULL", F_FLAGS | F_INTERNALDATE | F_SIZE | F_ENVELOPE | F_BODY},
	};
	int r;

	if (t->type != MC_IMAP_ATOM) {
		*error_r = "Invalid fetch item";
		return -1;
	}
	for (size_t i = 0; i < sizeof(simple) / sizeof(*simple); i++)
		if (mc_imap_token_is(t, simple[i].name)) {
			f->items |= simple[i].bits;
			if (simple[i].bits == F_MODSEQ)
				s->condstore = true; /* RFC 7162 3.1: enables CONDSTORE */
			return 0;
		}
	if (f->nsecs == FETCH_MAX_SECTIONS) {
		*error_r = "Too many body sections in one FETCH";
		return -1;
	}
	r = mc_imap_section_parse(t->text, t->len, s->pool, &f->secs[f->nsecs], error_r);
	if (r == 0) {
		*error_r = "Unknown fetch item";
		return -1;
	}
	if (r < 0)
		return -1;
	if (!f->secs[f->nsecs].peek && !s->view.readonly)
		f->set_seen = true;
	f->nsecs++;
	return 0;
}

/* items: one item or a list; then an optional (CHANGEDSINCE n [VANISHED]). */
static int
fetch_parse(struct imap_sess *s, const struct mc_imap_command *cmd,
            struct fetch_req *f, const char **error_r)
{
	unsigned i = 1;
	const struct mc_imap_token *a = cmd->args;

	if (cmd->nargs < 2) {
		*error_r = "FETCH takes a sequence set and items";
		return -1;
	}
	if (a[i].type == MC_IMAP_LIST) {
		for (unsigned k = i + 1; k <= i + a[i].count; k++)
			if (fetch_item(s, f, &a[k], error_r) < 0)
				return -1;
		i += 1 + a[i].count;
	} else {
		if (fetch_item(s, f, &a[i], error_r) < 0)
			return -1;
		i++;
	}
	if (i < cmd->nargs && a[i].type == MC_IMAP_LIST) {
		unsigned end = i + a[i].count;

		for (unsigned k = i + 1; k <= end; k++) {
			if (mc_imap_token_is(&a[k], "CHANGEDSINCE") && k + 1 <= end &&
			    mc_imap_parse_u64(a[k + 1].text, a[k + 1].len, &f->changedsince) &&
			    f->changedsince > 0) {
				k++;
				f->items |= F_MODSEQ;
				s->condstore = true;
			} else if (mc_imap_token_is(&a[k], "VANISHED") && cmd->uid && s->qresync) {
				/* Expunged messages are reported by the untagged
				 * VANISHED updates of the session anyway. */
			} else {
				*error_r = "Invalid FETCH modifier";
				return -1;
			}
		}
		i = end + 1;
	}
	if (i != cmd->nargs) {
		*error_r = "Unexpected FETCH arguments";
		return -1;
	}
	if (cmd->uid)
		f->items |= F_UID;
	return 0;
}

/* ---- answering ------------------------------------------------------- */

static void fetch_next(struct imap_sess *s);

static bool
wants_blob(const struct fetch_req *f, const struct node_msg_full *row)
{
	return f->nsecs > 0 ||
	       ((f->items & (F_BODY | F_BODYSTRUCTURE)) && row->bodystructure == NULL);
}

static void
fetch_finish(struct imap_sess *s, const char *status, const char *code,
             const char *text)
{
	struct fetch_req *f = s->fetch;

	s->fetch = NULL;
	fetch_free(f);
	imap_command_done(s, status, code, "%s", text);
}

/* One message's FETCH response into f->line. -1 with *code_r and *error_r. */
static int
format_message(struct imap_sess *s, struct fetch_req *f, size_t index,
               const struct node_msg_full *row, const char **code_r,
               const char **error_r)
{
	const struct imap_msg *m = &s->view.msgs[index];
	struct mc_strbuf *b = &f->line;
	struct mc_pool *pool = NULL;
	struct mc_mime_message mime;
	char *structure = NULL;
	const char *sep = "";
	int rv = 0;

	mc_strbuf_reset(b);
	mc_strbuf_addf(b, "* %zu FETCH (", index + 1);
#define SEP() (mc_strbuf_adds(b, sep), sep = " ")
	if (f->items & F_UID) {
		SEP();
		mc_strbuf_addf(b, "UID %" PRIu32, m->uid);
	}
	if (f->items & F_FLAGS) {
		SEP();
		mc_strbuf_addf(b, "FLAGS (%s)", m->flags);
	}
	if (f->items & F_MODSEQ) {
		SEP();
		mc_strbuf_addf(b, "MODSEQ (%" PRIu64 ")", m->modseq);
	}
	if (row != NULL && (f->blob != NULL)) {
		pool = mc_pool_new();
		mc_mime_parse(&mime, pool, f->blob, f->blob_len, NULL);
		if (row->bodystructure == NULL) {
			json_t *j = mc_mime_to_json(&mime);

			structure = json_dumps(j, JSON_COMPACT);
			json_decref(j);
		}
	}
	if (row != NULL && (f->items & F_INTERNALDATE)) {
		char date[64];

		imap_format_date(date, row->internaldate);
		SEP();
		mc_strbuf_addf(b, "INTERNALDATE \"%s\"", date);
	}
	if (row != NULL && (f->items & F_SIZE)) {
		SEP();
		mc_strbuf_addf(b, "RFC822.SIZE %" PRIu64, row->size);
	}
	if (row != NULL && (f->items & F_ENVELOPE)) {
		SEP();
		mc_strbuf_adds(b, "ENVELOPE ");
		if (row->imap_envelope != NULL)
			mc_strbuf_adds(b, row->imap_envelope);
		else
			mc_imap_format_envelope(b, row->envelope, error_r);
	}
	for (unsigned bit = F_BODY; bit <= F_BODYSTRUCTURE && row != NULL; bit <<= 1) {
		const char *json = row->bodystructure ? row->bodystructure : structure;

		if (!(f->items & bit))
			continue;
		SEP();
		mc_strbuf_adds(b, bit == F_BODY ? "BODY " : "BODYSTRUCTURE ");
		if (json == NULL ||
		    mc_imap_format_body(b, json, bit == F_BODYSTRUCTURE, error_r) < 0) {
			*code_r = "SERVERBUG";
			*error_r = "Cannot describe the message structure";
			rv = -1;
			goto out;
		}
	}
	for (size_t i = 0; i < f->nsecs && row != NULL; i++) {
		SEP();
		if (mc_imap_section_fetch(b, &f->secs[i], f->blob, f->blob_len, &mime,
		                          error_r) < 0) {
			*code_r = "UNKNOWN-CTE";
			rv = -1;
			goto out;
		}
	}
#undef SEP
	mc_strbuf_adds(b, ")\r\n");
out:
	free(structure);
	mc_pool_free(&pool);
	return rv;
}

static void
blob_read(void *arg, enum mc_blob_status status, uint8_t *data, size_t len,
          const char *error)
{
	struct imap_sess *s = arg;
	struct fetch_req *f;

	if (!imap_pending_release(s)) {
		free(data);
		return;
	}
	f = s->fetch;
	if (status != MC_BLOB_OK) {
		mc_warn("imap fetch blob read failed session=%" PRIu64 " blob=%s error=\"%s\"",
		        s->id, f->rows[f->pos].blob, error);
		fetch_finish(s, "NO", "UNAVAILABLE",
		             "Message store unavailable, try again");
		return;
	}
	f->blob = (char *)data;
	f->blob_len = len;
	fetch_next(s);
}

/* Answer rows from f->pos on until done, a blob read, or a full buffer. */
static void
fetch_next(struct imap_sess *s)
{
	struct fetch_req *f = s->fetch;
	const char *code = NULL, *err = NULL;

	while (f->pos < (f->rows != NULL ? f->nrows : f->count)) {
		const struct node_msg_full *row = f->rows != NULL ? &f->rows[f->pos] : NULL;
		long index = row != NULL ? imap_view_find(&s->view, row->uid)
		                         : (long)f->idx[f->pos];

		if (index < 0 ||
		    (f->changedsince > 0 && s->view.msgs[index].modseq <= f->changedsince)) {
			f->pos++;
			continue;
		}
		if (row != NULL && f->blob == NULL && wants_blob(f, row)) {
			s->pending++;
			if (mc_blob_get(s->imap->set.blob, row->blob, FETCH_BLOB_MAX, blob_read,
			                s, &err) < 0) {
				s->pending--;
				mc_warn("imap fetch blob refused session=%" PRIu64 " error=\"%s\"",
				        s->id, err);
				fetch_finish(s, "NO", "UNAVAILABLE", "Message store busy, try again");
			}
			return;
		}
		if (format_message(s, f, (size_t)index, row, &code, &err) < 0) {
			fetch_finish(s, "NO", code, err);
			return;
		}
		imap_out(s, f->line.data, f->line.len);
		free(f->blob);
		f->blob = NULL;
		f->pos++;
		if (s->out.len >= FETCH_OUT_HIGH) {
			imap_flush(s, fetch_next);
			return;
		}
	}
	fetch_finish(s, "OK", NULL, "FETCH completed");
}

void
imap_fetch_abort(struct imap_sess *s)
{
	if (s->fetch != NULL)
		fetch_free(s->fetch);
	s->fetch = NULL;
}

/* ---- the job ----------------------------------------------------------- */

static void
fetch_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct fetch_req *f = job->arg;
	struct imap_sess *s = job->s;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	if (f->set_seen) {
		static const char *const seen[] = {"\\Seen"};
		uint32_t *failed = NULL;
		size_t nfailed = 0;

		job->result = node_store_set_flags(store, s->shard, f->epoch, s->view.mb.id,
		                                   f->uids, f->count, NODE_FLAGS_ADD, seen,
		                                   1, 0, &f->seen_changed, &failed,
		                                   &nfailed, &err);
		free(failed);
		if (job->result != NODE_STORE_OK)
			goto out;
	}
	if (f->items & F_ROW || f->nsecs > 0)
		job->result = node_store_fetch(store, s->view.mb.id, f->uids, f->count,
		                               (f->items & (F_BODY | F_BODYSTRUCTURE))
		                                       ? NODE_FETCH_STRUCTURE
		                                       : 0,
		                               &f->rows, &f->nrows, &err);
out:
	imap_job_error(job, err);
}

static void
fetch_done(struct imap_job *job)
{
	struct fetch_req *f = job->arg;
	struct imap_sess *s = job->s;

	if (s == NULL) {
		fetch_free(f);
		return;
	}
	if (job->result != NODE_STORE_OK) {
		mc_warn("imap fetch store error session=%" PRIu64 " error=\"%s\"", s->id,
		        job->error);
		s->fetch = f;
		fetch_finish(s, "NO", "UNAVAILABLE", "Mailbox store unavailable, try again");
		return;
	}
	/* \Seen set by this fetch: the new flags go out with the message. */
	for (size_t i = 0; i < f->seen_changed.count; i++) {
		const struct node_msg *c = &f->seen_changed.items[i];
		long idx = imap_view_find(&s->view, c->uid);

		if (idx < 0)
			continue;
		free(s->view.msgs[idx].flags);
		s->view.msgs[idx].flags = mc_strdup(c->flags);
		s->view.msgs[idx].modseq = c->modseq;
	}
	if (f->seen_changed.count > 0)
		f->items |= F_FLAGS;
	s->fetch = f;
	fetch_next(s);
}

void
imap_cmd_fetch(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct fetch_req *f = mc_malloc(sizeof(*f));
	const char *err;

	if (cmd->nargs < 1 || cmd->args[0].type != MC_IMAP_ATOM ||
	    fetch_parse(s, cmd, f, &err) < 0 ||
	    imap_view_resolve(&s->view, cmd->args[0].text, cmd->args[0].len, cmd->uid,
	                      &f->idx, &f->count, &err) < 0) {
		if (cmd->nargs < 1 || cmd->args[0].type != MC_IMAP_ATOM)
			err = "FETCH takes a sequence set and items";
		fetch_free(f);
		imap_command_done(s, "BAD", NULL, "%s", err);
		return;
	}
	f->uids = imap_view_uids(&s->view, f->idx, f->count);
	if (f->set_seen && !imap_epoch(s, &f->epoch))
		f->set_seen = false; /* read anyway; \Seen is not essential */
	if (f->count == 0 || (!(f->items & F_ROW) && f->nsecs == 0 && !f->set_seen)) {
		s->fetch = f;
		fetch_next(s);
		return;
	}
	f->job.work = fetch_work;
	f->job.done = fetch_done;
	f->job.arg = f;
	imap_job_start(s, &f->job);
}
