/* The IMAP service and its sessions: listeners, the connection of each
 * session, the command loop (reader -> command table -> handler), the
 * output buffer with back-pressure, asynchronous jobs on the store pool,
 * and the untagged updates that keep a session's view of its selected
 * mailbox in step with what other sessions and deliveries did. */
#include "imap_private.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "error.h"
#include "hostport.h"
#include "listener.h"
#include "log.h"
#include "scram.h"
#include "mem.h"

/* Before login: short lines, small literals, fewer tokens. */
static const struct mc_imap_limits limits_preauth = {
        .max_line = 8192,
        .max_literal = MC_IMAP_LITERAL_PREAUTH,
        .max_nonsync = MC_IMAP_LITERAL_MINUS,
        .max_command = MC_IMAP_LITERAL_PREAUTH,
        .max_tokens = MC_IMAP_TOKENS_DEFAULT,
        .max_depth = 8,
};

enum {
	S_NOTAUTH = 1 << IMAP_NOTAUTH,
	S_AUTH = 1 << IMAP_AUTH,
	S_SELECTED = 1 << IMAP_SELECTED,
	S_ANY = S_NOTAUTH | S_AUTH | S_SELECTED,
	S_LOGGED = S_AUTH | S_SELECTED,
};

static const struct imap_command_def {
	const char *name;
	unsigned states;
	imap_cmd_fn *fn;
	bool uid;    /* may follow UID */
	bool noargs; /* takes no arguments */
} commands[] = {
        {"CAPABILITY", S_ANY, imap_cmd_capability, false, true},
        {"NOOP", S_ANY, imap_cmd_noop, false, true},
        {"LOGOUT", S_ANY, imap_cmd_logout, false, true},
        {"ID", S_ANY, imap_cmd_id, false, false},
        {"STARTTLS", S_NOTAUTH, imap_cmd_starttls, false, true},
        {"LOGIN", S_NOTAUTH, imap_cmd_login, false, false},
        {"AUTHENTICATE", S_NOTAUTH, imap_cmd_authenticate, false, false},
        {"ENABLE", S_LOGGED, imap_cmd_enable, false, false},
        {"NAMESPACE", S_LOGGED, imap_cmd_namespace, false, true},
        {"SELECT", S_LOGGED, imap_cmd_select, false, false},
        {"EXAMINE", S_LOGGED, imap_cmd_select, false, false},
        {"CREATE", S_LOGGED, imap_cmd_create, false, false},
        {"DELETE", S_LOGGED, imap_cmd_delete, false, false},
        {"RENAME", S_LOGGED, imap_cmd_rename, false, false},
        {"SUBSCRIBE", S_LOGGED, imap_cmd_subscribe, false, false},
        {"UNSUBSCRIBE", S_LOGGED, imap_cmd_subscribe, false, false},
        {"LIST", S_LOGGED, imap_cmd_list, false, false},
        {"LSUB", S_LOGGED, imap_cmd_list, false, false},
        {"STATUS", S_LOGGED, imap_cmd_status, false, false},
        {"APPEND", S_LOGGED, imap_cmd_append, false, false},
        {"GETQUOTAROOT", S_LOGGED, imap_cmd_getquotaroot, false, false},
        {"GETQUOTA", S_LOGGED, imap_cmd_getquota, false, false},
        {"SETQUOTA", S_LOGGED, imap_cmd_setquota, false, false},
        {"IDLE", S_LOGGED, imap_cmd_idle, false, true},
        {"COMPRESS", S_LOGGED, imap_cmd_compress, false, false},
        {"CHECK", S_SELECTED, imap_cmd_check, false, true},
        {"CLOSE", S_SELECTED, imap_cmd_close, false, true},
        {"UNSELECT", S_SELECTED, imap_cmd_unselect, false, true},
        {"EXPUNGE", S_SELECTED, imap_cmd_expunge, true, false},
        {"SEARCH", S_SELECTED, imap_cmd_search, true, false},
        {"FETCH", S_SELECTED, imap_cmd_fetch, true, false},
        {"STORE", S_SELECTED, imap_cmd_store, true, false},
        {"COPY", S_SELECTED, imap_cmd_copy, true, false},
        {"MOVE", S_SELECTED, imap_cmd_copy, true, false},
};

static void sess_process(struct imap_sess *s);
static void sess_close(struct imap_sess *s);
static void sess_destroy(struct imap_sess *s);
static void input_compressed(struct imap_sess *s, const char *data, size_t len);

void
imap_session_close(struct imap_sess *s)
{
	sess_close(s);
}

bool
imap_pending_release(struct imap_sess *s)
{
	s->pending--;
	if (!s->closing)
		return true;
	if (s->conn_gone && s->pending == 0)
		sess_destroy(s);
	return false;
}

/* ---- output ------------------------------------------------------------ */

void
imap_out(struct imap_sess *s, const void *data, size_t len)
{
	mc_strbuf_add(&s->out, data, len);
}

void
imap_outs(struct imap_sess *s, const char *str)
{
	mc_strbuf_adds(&s->out, str);
}

void
imap_outf(struct imap_sess *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mc_strbuf_vaddf(&s->out, fmt, ap);
	va_end(ap);
}

/* Hand output to the conn while it is not blocked (deflated after
 * COMPRESS, each piece ending in a sync flush so the client can read
 * it at once). */
static void
flush_some(struct imap_sess *s)
{
	const char *err;
	size_t done = 0;

	if (s->conn_gone)
		return;
	while (done < s->out.len && !mc_conn_output_blocked(s->conn)) {
		size_t n = s->out.len - done;
		int rv;

		if (n > IMAP_FLUSH_CHUNK)
			n = IMAP_FLUSH_CHUNK;
		if (s->z != NULL)
			rv = imap_compress_write(s, s->out.data + done, n, &err);
		else
			rv = mc_conn_write(s->conn, s->out.data + done, n, &err);
		if (rv < 0) {
			mc_debug("imap write failed session=%" PRIu64 " error=\"%s\"",
			         s->id, err);
			mc_strbuf_reset(&s->out);
			sess_close(s);
			return;
		}
		done += n;
	}
	mc_strbuf_consume(&s->out, done);
}

void
imap_flush(struct imap_sess *s, void (*then)(struct imap_sess *s))
{
	flush_some(s);
	if (s->out.len == 0 || s->conn_gone) {
		s->drained = NULL;
		if (then != NULL && !s->conn_gone)
			then(s);
		return;
	}
	s->drained = then; /* continued from the DRAIN event */
}

static void
command_finished(struct imap_sess *s)
{
	s->busy = false;
	mc_pool_free(&s->pool);
	if (s->closing)
		return;
	if (s->state == IMAP_LOGOUT) {
		sess_close(s);
		return;
	}
	mc_conn_resume(s->conn);
	if (s->z != NULL && s->zplain.len > 0)
		input_compressed(s, NULL, 0);
	else
		sess_process(s);
}

void
imap_session_command_end(struct imap_sess *s)
{
	imap_flush(s, command_finished);
}

void
imap_command_done(struct imap_sess *s, const char *status, const char *code,
                  const char *fmt, ...)
{
	va_list ap;

	imap_outf(s, "%s %s ", s->tag, status);
	if (code != NULL)
		imap_outf(s, "[%s] ", code);
	va_start(ap, fmt);
	mc_strbuf_vaddf(&s->out, fmt, ap);
	va_end(ap);
	imap_outs(s, "\r\n");
	if (strcmp(status, "OK") != 0)
		mc_debug("imap session=%" PRIu64 " cmd=%s %s", s->id, s->cmd, status);
	imap_flush(s, command_finished);
}

/* ---- jobs ------------------------------------------------------------- */

static void
job_work(struct node_store *store, const char *error, void *arg)
{
	struct imap_job *job = arg;

	job->work(job, store, error);
	if (job->sync && store != NULL)
		imap_sync_collect(job, store);
}

static void
job_done(void *arg)
{
	struct imap_job *job = arg;
	struct imap_sess *s = job->s;

	s->pending--;
	if (s->closing) {
		/* Nobody to answer: drop what was collected. */
		node_mailbox_fini(&job->sync_mb);
		node_msg_list_free(&job->sync_changed);
		free(job->sync_expunged);
		job->sync_expunged = NULL;
		job->s = NULL;
	}
	job->done(job);
	if (s->conn_gone && s->pending == 0)
		sess_destroy(s);
}

void
imap_job_start(struct imap_sess *s, struct imap_job *job)
{
	job->s = s;
	s->pending++;
	node_store_pool_run(s->imap->set.store, job_work, job_done, job);
}

bool
imap_job_no_store(struct imap_job *job, struct node_store *store, const char *error)
{
	if (store != NULL)
		return false;
	job->result = NODE_STORE_TEMPFAIL;
	snprintf(job->error, sizeof(job->error), "%s", error);
	return true;
}

void
imap_job_error(struct imap_job *job, const char *err)
{
	if (job->result != NODE_STORE_OK && err != NULL)
		snprintf(job->error, sizeof(job->error), "%s", err);
}

/* The tagged NO for a failed store result (callers handle OK). */
void
imap_job_failed(struct imap_sess *s, struct imap_job *job, const char *what)
{
	switch (job->result) {
	case NODE_STORE_NOTFOUND:
		imap_command_done(s, "NO", "NONEXISTENT", "%s: no such mailbox", what);
		break;
	case NODE_STORE_EXISTS:
		imap_command_done(s, "NO", "ALREADYEXISTS", "%s: mailbox exists", what);
		break;
	case NODE_STORE_OVERQUOTA:
		imap_command_done(s, "NO", "OVERQUOTA", "%s: quota exceeded", what);
		break;
	case NODE_STORE_FENCED:
		imap_command_done(s, "NO", "UNAVAILABLE",
		                  "%s: mailbox moved to another node, log in again", what);
		break;
	default:
		mc_warn("imap store error session=%" PRIu64 " cmd=%s error=\"%s\"", s->id,
		        s->cmd, job->error);
		imap_command_done(s, "NO", "UNAVAILABLE",
		                  "%s: mailbox store unavailable, try again", what);
		break;
	}
}

/* ---- untagged updates ------------------------------------------------- */

void
imap_sync_collect(struct imap_job *job, struct node_store *store)
{
	struct imap_sess *s = job->s;
	const char *err = NULL;

	if (s->state != IMAP_SELECTED)
		return;
	job->sync_result = node_store_changes(store, s->view.mb.id,
	                                      s->view.mb.highestmodseq,
	                                      &job->sync_mb, &job->sync_changed,
	                                      &job->sync_expunged,
	                                      &job->sync_expunged_count, &err);
}

static void
sync_free(struct imap_job *job)
{
	node_mailbox_fini(&job->sync_mb);
	node_msg_list_free(&job->sync_changed);
	free(job->sync_expunged);
	job->sync_expunged = NULL;
	job->sync_expunged_count = 0;
}

static void
fetch_flags_line(struct imap_sess *s, size_t index)
{
	const struct imap_msg *m = &s->view.msgs[index];

	imap_outf(s, "* %zu FETCH (UID %" PRIu32 " FLAGS (%s)", index + 1, m->uid,
	          m->flags);
	if (s->condstore)
		imap_outf(s, " MODSEQ (%" PRIu64 ")", m->modseq);
	imap_outs(s, ")\r\n");
}

void
imap_sync_apply(struct imap_sess *s, struct imap_job *job, bool allow_expunge)
{
	struct imap_view *v = &s->view;
	size_t before = v->count;
	bool vanished_any = false;

	if (!job->sync || s->state != IMAP_SELECTED ||
	    job->sync_result != NODE_STORE_OK || !allow_expunge) {
		sync_free(job);
		return;
	}
	/* Expunges first: their numbers are those the client knows. */
	for (size_t i = 0; i < job->sync_expunged_count; i++) {
		long idx = imap_view_find(v, job->sync_expunged[i]);

		if (idx < 0)
			continue;
		if (s->qresync) {
			if (!vanished_any)
				imap_outs(s, "* VANISHED ");
			else
				imap_outs(s, ",");
			imap_outf(s, "%" PRIu32, job->sync_expunged[i]);
			vanished_any = true;
		} else {
			imap_outf(s, "* %ld EXPUNGE\r\n", idx + 1);
		}
		imap_view_remove(v, (size_t)idx);
	}
	if (vanished_any)
		imap_outs(s, "\r\n");
	before = v->count;
	for (size_t i = 0; i < job->sync_changed.count; i++) {
		const struct node_msg *c = &job->sync_changed.items[i];
		long idx = imap_view_find(v, c->uid);

		if (idx >= 0) {
			struct imap_msg *m = &v->msgs[idx];

			if (m->modseq >= c->modseq)
				continue;
			m->modseq = c->modseq;
			if (strcmp(m->flags, c->flags) != 0) {
				free(m->flags);
				m->flags = mc_strdup(c->flags);
				if ((size_t)idx < before)
					fetch_flags_line(s, (size_t)idx);
			} else if (s->condstore && (size_t)idx < before) {
				fetch_flags_line(s, (size_t)idx);
			}
		} else if (c->uid > imap_view_max_uid(v)) {
			imap_view_append(v, c->uid, c->modseq, c->flags);
		}
	}
	if (v->count > before)
		imap_outf(s, "* %zu EXISTS\r\n", v->count);
	if (job->sync_mb.highestmodseq > v->mb.highestmodseq)
		v->mb.highestmodseq = job->sync_mb.highestmodseq;
	if (job->sync_mb.uidnext > v->mb.uidnext)
		v->mb.uidnext = job->sync_mb.uidnext;
	sync_free(job);
}

static void
sync_work(struct imap_job *job, struct node_store *store, const char *error)
{
	imap_job_no_store(job, store, error);
}

static void
sync_done(struct imap_job *job)
{
	struct imap_sess *s = job->s;
	char *text = job->arg;

	if (s != NULL) {
		imap_sync_apply(s, job, true);
		imap_command_done(s, "OK", NULL, "%s", text);
	}
	free(text);
	free(job);
}

void
imap_sync_command(struct imap_sess *s, const char *text)
{
	struct imap_job *job;

	if (s->state != IMAP_SELECTED) {
		imap_command_done(s, "OK", NULL, "%s", text);
		return;
	}
	job = mc_malloc(sizeof(*job));
	job->work = sync_work;
	job->done = sync_done;
	job->arg = mc_strdup(text);
	job->sync = true;
	imap_job_start(s, job);
}

/* ---- the selected view ------------------------------------------------ */

void
imap_view_clear(struct imap_view *v)
{
	for (size_t i = 0; i < v->count; i++)
		free(v->msgs[i].flags);
	free(v->msgs);
	node_mailbox_fini(&v->mb);
	memset(v, 0, sizeof(*v));
}

long
imap_view_find(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->msgs[mid].uid == uid)
			return (long)mid;
		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void
imap_view_append(struct imap_view *v, uint32_t uid, uint64_t modseq,
                 const char *flags)
{
	if (v->count == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 64;
		v->msgs = mc_realloc(v->msgs, v->cap * sizeof(*v->msgs));
	}
	v->msgs[v->count].uid = uid;
	v->msgs[v->count].modseq = modseq;
	v->msgs[v->count].flags = mc_strdup(flags);
	v->count++;
}

void
imap_view_remove(struct imap_view *v, size_t index)
{
	free(v->msgs[index].flags);
	memmove(&v->msgs[index], &v->msgs[index + 1],
	        (v->count - index - 1) * sizeof(*v->msgs));
	v->count--;
}

uint32_t
imap_view_max_uid(const struct imap_view *v)
{
	return v->count > 0 ? v->msgs[v->count - 1].uid : 0;
}

static int
cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

int
imap_view_resolve(const struct imap_view *v, const char *set, size_t len,
                  bool uid, size_t **idx_r, size_t *count_r,
                  const char **error_r)
{
	struct mc_imap_range *ranges = mc_calloc(IMAP_MAX_RANGES, sizeof(*ranges));
	size_t n, count = 0, cap = 0, *idx = NULL;

	if (mc_imap_seqset_parse(set, len, ranges, IMAP_MAX_RANGES, &n, error_r) < 0) {
		free(ranges);
		return -1;
	}
	if (uid) {
		mc_imap_seqset_resolve(ranges, n, imap_view_max_uid(v));
	} else {
		for (size_t i = 0; i < n; i++) {
			if ((ranges[i].hi != MC_IMAP_SEQ_STAR && ranges[i].hi > v->count) ||
			    (ranges[i].lo != MC_IMAP_SEQ_STAR && ranges[i].lo > v->count) ||
			    v->count == 0) {
				free(ranges);
				*error_r = "Invalid message sequence number";
				return -1;
			}
		}
		mc_imap_seqset_resolve(ranges, n, (uint32_t)v->count);
	}
	for (size_t i = 0; i < n; i++) {
		size_t a, b;

		if (uid) {
			/* First message with uid >= lo, up to uid <= hi. */
			size_t lo = 0, hi = v->count;

			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;

				if (v->msgs[mid].uid < ranges[i].lo)
					lo = mid + 1;
				else
					hi = mid;
			}
			a = lo;
			for (b = a; b < v->count && v->msgs[b].uid <= ranges[i].hi; b++)
				;
		} else {
			if (ranges[i].lo == 0)
				continue;
			a = ranges[i].lo - 1;
			b = ranges[i].hi;
		}
		for (size_t k = a; k < b; k++) {
			if (count == cap) {
				cap = cap ? cap * 2 : 64;
				idx = mc_realloc(idx, cap * sizeof(*idx));
			}
			idx[count++] = k;
		}
	}
	free(ranges);
	if (n > 1 && count > 1) {
		size_t w = 1;

		qsort(idx, count, sizeof(*idx), cmp_size);
		for (size_t i = 1; i < count; i++)
			if (idx[i] != idx[w - 1])
				idx[w++] = idx[i];
		count = w;
	}
	*idx_r = idx;
	*count_r = count;
	return 0;
}

uint32_t *
imap_view_uids(const struct imap_view *v, const size_t *idx, size_t n)
{
	uint32_t *uids = mc_calloc(n ? n : 1, sizeof(*uids));

	for (size_t i = 0; i < n; i++)
		uids[i] = v->msgs[idx[i]].uid;
	return uids;
}

/* ---- small helpers for handlers --------------------------------------- */

bool
imap_epoch(struct imap_sess *s, uint64_t *epoch_r)
{
	return mc_cfgsync_shard_epoch(s->imap->set.sync, s->shard, epoch_r);
}

static const char *const system_flags[] = {
        "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft",
};

static const char *
canonical_flag(const struct mc_imap_token *t, const char **error_r)
{
	if (t->type == MC_IMAP_FLAG) {
		for (size_t i = 0; i < sizeof(system_flags) / sizeof(*system_flags); i++)
			if (strcasecmp(t->text, system_flags[i]) == 0)
				return system_flags[i];
		if (strcasecmp(t->text, "\\Recent") == 0) {
			*error_r = "\\Recent cannot be set";
			return NULL;
		}
		*error_r = "Unknown system flag";
		return NULL;
	}
	if (t->type != MC_IMAP_ATOM || t->bracket || t->wildcard) {
		*error_r = "Invalid flag";
		return NULL;
	}
	for (size_t i = 0; i < t->len; i++)
		if (strchr("(){%*\"\\]", t->text[i]) != NULL) {
			*error_r = "Invalid keyword";
			return NULL;
		}
	return t->text;
}

int
imap_parse_flags(const struct mc_imap_token *t, unsigned avail,
                 const char ***flags_r, size_t *n_r, unsigned *used_r,
                 struct mc_pool *pool, const char **error_r)
{
	const struct mc_imap_token *items = t;
	unsigned count = 1;
	const char **flags;
	size_t n = 0;

	if (avail == 0) {
		*error_r = "Missing flags";
		return -1;
	}
	if (t->type == MC_IMAP_LIST) {
		items = t + 1;
		count = t->count;
		*used_r = 1 + t->count;
	} else {
		*used_r = 1;
	}
	flags = mc_pool_alloc(pool, (count + 1) * sizeof(*flags));
	for (unsigned i = 0; i < count; i++) {
		const char *f = canonical_flag(&items[i], error_r);
		bool dup = false;

		if (f == NULL)
			return -1;
		for (size_t k = 0; k < n; k++)
			dup = dup || strcasecmp(flags[k], f) == 0;
		if (!dup)
			flags[n++] = f;
	}
	*flags_r = flags;
	*n_r = n;
	return 0;
}

void
imap_format_date(char buf[64], int64_t t)
{
	static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	snprintf(buf, 64, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
	         months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	         tm.tm_sec);
}

const char *
imap_arg_string(struct imap_sess *s, const struct mc_imap_token *t)
{
	if (!mc_imap_token_astring(t))
		return NULL;
	if (t->type == MC_IMAP_LITERAL && memchr(t->text, '\0', t->len) != NULL)
		return NULL;
	return mc_pool_strndup(s->pool, t->text, t->len);
}

const char *
imap_mailbox_name(const char *name)
{
	return strcasecmp(name, "INBOX") == 0 ? "INBOX" : name;
}

/* ---- the command loop ------------------------------------------------- */

static const struct imap_command_def *
find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void
bad_reply(struct imap_sess *s, const char *tag, const char *status,
          const char *code, const char *text)
{
	imap_outf(s, "%s %s ", tag != NULL ? tag : "*", status);
	if (code != NULL)
		imap_outf(s, "[%s] ", code);
	imap_outf(s, "%s\r\n", text);
}

static void
dispatch(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	const struct imap_command_def *def = find_command(cmd->name);

	if (def == NULL || (cmd->uid && !def->uid)) {
		bad_reply(s, cmd->tag, "BAD", NULL,
		          cmd->uid ? "Unknown UID command" : "Unknown command");
		return;
	}
	if (def->noargs && cmd->nargs > 0) {
		bad_reply(s, cmd->tag, "BAD", NULL, "This command takes no arguments");
		return;
	}
	if ((def->states & (1u << s->state)) == 0) {
		bad_reply(s, cmd->tag, "BAD", NULL,
		          s->state == IMAP_NOTAUTH ? "Log in first"
		          : s->state == IMAP_SELECTED || !(def->states & S_SELECTED)
		                  ? "Command not valid in this state"
		                  : "No mailbox selected");
		return;
	}
	snprintf(s->tag, sizeof(s->tag), "%s", cmd->tag);
	snprintf(s->cmd, sizeof(s->cmd), "%s", cmd->name);
	s->uid_cmd = cmd->uid;
	s->busy = true;
	s->pool = mc_pool_new();
	mc_conn_pause(s->conn);
	def->fn(s, cmd);
}

/* Take commands from the reader while the session is free. */
static void
sess_process(struct imap_sess *s)
{
	struct mc_imap_command cmd;
	const struct mc_imap_reply *reply;
	int ret;

	while (!s->busy && !s->closing && !s->conn_gone && s->raw == IMAP_RAW_NONE) {
		if (mc_conn_output_blocked(s->conn) || s->out.len > 4 * IMAP_FLUSH_CHUNK) {
			mc_conn_pause(s->conn);
			imap_flush(s, sess_process);
			return;
		}
		ret = mc_imap_reader_next(&s->reader, &cmd, &reply);
		if (ret == 0) {
			if (mc_imap_reader_continuation(&s->reader))
				imap_outs(s, "+ Ready for literal data\r\n");
			break;
		}
		if (ret < 0) {
			bad_reply(s, cmd.tag, reply->status, reply->code, reply->text);
			continue;
		}
		dispatch(s, &cmd);
	}
	if (!s->conn_gone && !s->busy)
		imap_flush(s, NULL);
}

static void
raw_line(struct imap_sess *s, const char *data, size_t len)
{
	switch (s->raw) {
	case IMAP_RAW_IDLE:
		imap_idle_line(s, data, len);
		break;
	case IMAP_RAW_AUTHENTICATE:
		imap_authenticate_line(s, data, len);
		break;
	case IMAP_RAW_NONE:
		break;
	}
}

/* Take what the session can of data (plaintext): raw lines in IDLE and
 * AUTHENTICATE, otherwise into the command reader. Returns the octets
 * used; the rest is presented again later. */
static size_t
input(struct imap_sess *s, const char *data, size_t len)
{
	size_t used = 0;

	while (used < len && !s->closing) {
		if (s->raw != IMAP_RAW_NONE) {
			const char *nl = memchr(data + used, '\n', len - used);
			size_t n;

			if (nl == NULL) {
				if (len - used > IMAP_RAW_LINE_MAX) {
					imap_outs(s, "* BYE Line too long\r\n");
					sess_close(s);
					return len;
				}
				break;
			}
			n = (size_t)(nl - (data + used));
			raw_line(s, data + used, n > 0 && data[used + n - 1] == '\r' ? n - 1 : n);
			used += n + 1;
			continue;
		}
		if (s->busy)
			break;
		{
			size_t took = mc_imap_reader_feed(&s->reader, data + used, len - used);

			used += took;
			sess_process(s);
			if (took == 0)
				break;
		}
	}
	return used;
}

/* COMPRESS=DEFLATE: inflate what the conn has, then take the plaintext. */
static void
input_compressed(struct imap_sess *s, const char *data, size_t len)
{
	const char *err;
	size_t used;

	if (s->zbusy) /* a command finished inside input(): it goes on */
		return;
	if (len > 0 && s->zplain.len < IMAP_ZPLAIN_MAX) {
		mc_conn_consume(s->conn, len);
		if (imap_compress_inflate(s, data, len, &err) < 0) {
			mc_debug("imap session=%" PRIu64 " inflate error=\"%s\"", s->id, err);
			imap_outs(s, "* BYE Compressed stream broken\r\n");
			sess_close(s);
			return;
		}
	}
	s->zbusy = true;
	used = input(s, s->zplain.data, s->zplain.len);
	s->zbusy = false;
	mc_strbuf_consume(&s->zplain, used);
}

static void
on_read(struct mc_conn *conn, void *ctx, const char *data, size_t len)
{
	struct imap_sess *s = ctx;
	size_t used;

	if (s->z != NULL) {
		input_compressed(s, data, len);
		return;
	}
	used = input(s, data, len);
	/* STARTTLS discarded what was pipelined after it, LOGOUT closed the
	 * conn and its input: then less (or nothing) is left to consume. */
	if (used > mc_conn_input_pending(conn))
		used = mc_conn_input_pending(conn);
	mc_conn_consume(conn, used);
}

static void
on_event(struct mc_conn *conn, void *ctx, enum mc_conn_event ev,
         const char *error)
{
	struct imap_sess *s = ctx;

	(void)conn;
	switch (ev) {
	case MC_CONN_DRAIN:
		flush_some(s);
		if (s->out.len == 0 && s->drained != NULL) {
			void (*then)(struct imap_sess *) = s->drained;

			s->drained = NULL;
			then(s);
		}
		break;
	case MC_CONN_IDLE_TIMEOUT:
		if (s->raw == IMAP_RAW_IDLE)
			break; /* IDLE may last: the client re-issues it */
		imap_outs(s, "* BYE Autologout; idle for too long\r\n");
		sess_close(s);
		break;
	case MC_CONN_DEADLINE:
		imap_outs(s, "* BYE Session time limit reached\r\n");
		sess_close(s);
		break;
	case MC_CONN_EOF:
	case MC_CONN_ERROR:
	case MC_CONN_CONNECTED:
		if (error != NULL)
			mc_debug("imap session=%" PRIu64 " ended error=\"%s\"", s->id, error);
		sess_close(s);
		break;
	}
}

static const struct mc_conn_callbacks conn_callbacks = {
        .read = on_read,
        .event = on_event,
};

/* ---- session lifetime ------------------------------------------------- */

/* Once the conn is gone and no job or blob read refers to it. */
static void
sess_destroy(struct imap_sess *s)
{
	mc_imap_reader_fini(&s->reader);
	imap_view_clear(&s->view);
	free(s->user);
	imap_fetch_abort(s);
	imap_search_abort(s);
	imap_compress_free(s);
	mc_scram_server_free(&s->scram);
	mc_pool_free(&s->pool);
	mc_strbuf_fini(&s->out);
	free(s);
}

static void
sess_freed(void *arg)
{
	struct imap_sess *s = arg;
	struct node_imap *imap = s->imap;

	s->conn_gone = true;
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		imap->sessions = s->next;
	imap->session_count--;
	if (s->pending == 0)
		sess_destroy(s);
	if (imap->closing && imap->session_count == 0 && imap->pending_closes == 0) {
		void (*done)(void *) = imap->done;
		void *arg2 = imap->done_arg;

		mc_tls_ctx_free(&imap->tls);
		free(imap);
		if (done != NULL)
			done(arg2);
	}
}

static void
idle_timer_closed(uv_handle_t *h)
{
	struct imap_sess *s = h->data;

	mc_conn_close(s->conn, sess_freed);
}

static void
sess_close(struct imap_sess *s)
{
	if (s->closing)
		return;
	s->closing = true;
	if (s->auth_req != NULL) {
		node_auth_cancel(s->auth_req);
		s->auth_req = NULL;
	}
	flush_some(s);
	mc_debug("imap session=%" PRIu64 " closing", s->id);
	if (s->idle_timer_init) {
		uv_close((uv_handle_t *)&s->idle_timer, idle_timer_closed);
		return;
	}
	mc_conn_close(s->conn, sess_freed);
}

static void
greet(struct imap_sess *s)
{
	struct mc_strbuf caps = {0};

	imap_capabilities(s, &caps);
	imap_outf(s, "* OK [%s] %s IMAP4rev1 ready\r\n", caps.data,
	          s->imap->set.hostname);
	mc_strbuf_fini(&caps);
	imap_flush(s, NULL);
}

static void
tls_done(struct mc_conn *conn, void *ctx, int status, const char *error)
{
	struct imap_sess *s = ctx;

	(void)conn;
	if (status < 0) {
		mc_debug("imap session=%" PRIu64 " TLS failed error=\"%s\"", s->id, error);
		sess_close(s);
		return;
	}
	s->tls = true;
	greet(s);
}

static void
on_accept(struct mc_listener *listener, struct mc_conn *conn, void *ctx)
{
	struct node_imap *imap = ctx;
	bool implicit = listener == imap->listener_tls;
	struct imap_sess *s = mc_malloc(sizeof(*s));
	struct mc_conn_settings cs = {
	        .input_max = 256 * 1024,
	        .output_max = 8 * IMAP_FLUSH_CHUNK,
	        .output_high = 2 * IMAP_FLUSH_CHUNK,
	        /* RFC 3501 5.4: at least 30 minutes of inactivity. */
	        .idle_timeout_ms = 30 * 60 * 1000,
	        .deadline_ms = 24ull * 3600 * 1000,
	};
	const char *err;

	s->imap = imap;
	s->conn = conn;
	s->id = ++imap->next_id;
	s->state = IMAP_NOTAUTH;
	mc_imap_reader_init(&s->reader, &limits_preauth);
	s->next = imap->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	imap->sessions = s;
	imap->session_count++;
	if (mc_conn_start(conn, &cs, &conn_callbacks, s, &err) < 0 ||
	    (implicit && mc_conn_start_tls(conn, imap->tls, NULL, tls_done, &err) < 0)) {
		mc_warn("imap cannot start session error=\"%s\"", err);
		sess_close(s);
		return;
	}
	mc_debug("imap session=%" PRIu64 " peer=%s tls=%d", s->id, mc_conn_peer(conn),
	         implicit);
	if (!implicit)
		greet(s);
}

/* STARTTLS: the OK goes out in clear, then the handshake; whatever the
 * client pipelined after the command is dropped (injection defence). */
void
imap_session_starttls(struct imap_sess *s)
{
	const char *err;
	struct mc_imap_limits lim = limits_preauth;

	mc_conn_discard_input(s->conn);
	mc_imap_reader_fini(&s->reader);
	mc_imap_reader_init(&s->reader, &lim);
	imap_outf(s, "%s OK Begin TLS negotiation now\r\n", s->tag);
	flush_some(s);
	s->busy = false;
	mc_pool_free(&s->pool);
	if (mc_conn_start_tls(s->conn, s->imap->tls, NULL, tls_done, &err) < 0) {
		mc_warn("imap session=%" PRIu64 " STARTTLS error=\"%s\"", s->id, err);
		sess_close(s);
		return;
	}
	mc_conn_resume(s->conn);
}

void
imap_session_logged_in(struct imap_sess *s)
{
	struct mc_imap_limits lim;

	mc_imap_limits_default(&lim);
	if (s->imap->set.max_append > 0)
		lim.max_literal = lim.max_command = s->imap->set.max_append;
	lim.max_nonsync = lim.max_literal;
	mc_imap_reader_limits(&s->reader, &lim);
}

/* ---- the service ------------------------------------------------------ */

static int
listen_on(struct node_imap *imap, const char *addr, struct mc_listener **l_r,
          const char **error_r)
{
	struct mc_listener_settings ls = {.max_conns = imap->set.max_sessions};
	char host[MC_HOST_MAX + 1];

	if (mc_hostport_parse(addr, host, &ls.port, error_r) < 0)
		return -1;
	ls.host = host;
	return mc_listener_new(imap->loop, &ls, on_accept, imap, l_r, error_r);
}

int
node_imap_start(uv_loop_t *loop, const struct node_imap_settings *set,
                struct node_imap **imap_r, const char **error_r)
{
	struct node_imap *imap = mc_malloc(sizeof(*imap));
	struct mc_tls_settings ts = {.cert_file = set->cert_file,
	                             .key_file = set->key_file};

	imap->loop = loop;
	imap->set = *set;
	if (set->cert_file == NULL || set->key_file == NULL) {
		*error_r = "IMAP needs imap_tls_cert_file and imap_tls_key_file";
		goto fail;
	}
	if (mc_tls_ctx_new(MC_TLS_SERVER, &ts, &imap->tls, error_r) < 0)
		goto fail;
	if (set->listen != NULL && listen_on(imap, set->listen, &imap->listener, error_r) < 0)
		goto fail;
	if (set->listen_tls != NULL &&
	    listen_on(imap, set->listen_tls, &imap->listener_tls, error_r) < 0)
		goto fail;
	if (imap->listener != NULL)
		mc_info("imap listening on %s (STARTTLS)", mc_listener_address(imap->listener));
	if (imap->listener_tls != NULL)
		mc_info("imap listening on %s (TLS)", mc_listener_address(imap->listener_tls));
	*imap_r = imap;
	return 0;
fail:
	if (imap->listener != NULL)
		mc_listener_close(imap->listener, NULL);
	mc_tls_ctx_free(&imap->tls);
	free(imap);
	return -1;
}

static void
listener_closed(void *arg)
{
	struct node_imap *imap = arg;

	if (--imap->pending_closes == 0 && imap->session_count == 0) {
		void (*done)(void *) = imap->done;
		void *done_arg = imap->done_arg;

		mc_tls_ctx_free(&imap->tls);
		free(imap);
		if (done != NULL)
			done(done_arg);
	}
}

void
node_imap_close(struct node_imap *imap, void (*done)(void *arg), void *arg)
{
	imap->closing = true;
	imap->done = done;
	imap->done_arg = arg;
	imap->pending_closes = 1; /* held until the loop below is done */
	if (imap->listener != NULL) {
		imap->pending_closes++;
		mc_listener_close(imap->listener, listener_closed);
	}
	if (imap->listener_tls != NULL) {
		imap->pending_closes++;
		mc_listener_close(imap->listener_tls, listener_closed);
	}
	for (struct imap_sess *s = imap->sessions, *next; s != NULL; s = next) {
		next = s->next;
		if (!s->closing) {
			imap_outs(s, "* BYE Server shutting down\r\n");
			sess_close(s);
		}
	}
	listener_closed(imap);
}

void
node_imap_notify(struct node_imap *imap, uint64_t account_id)
{
	for (struct imap_sess *s = imap->sessions; s != NULL; s = s->next)
		if (s->account_id == account_id && s->raw == IMAP_RAW_IDLE && !s->closing)
			imap_idle_poke(s);
}
