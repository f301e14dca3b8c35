/* IMAP mailbox commands: SELECT/EXAMINE (with CONDSTORE and QRESYNC),
 * CREATE, DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE, LIST/LSUB (LIST-EXTENDED,
 * SPECIAL-USE, LIST-STATUS), STATUS, APPEND (UIDPLUS), the QUOTA
 * commands, CLOSE, UNSELECT and CHECK. Each runs its store work as one
 * job on the store pool and answers from the job's done callback. */
#include "imap_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "directory.h"
#include "imap_format.h"
#include "log.h"
#include "mem.h"
#include "message.h"

/* Names longer than this are refused (Dovecot: 255 per level). */
#define MAILBOX_NAME_MAX 1024u

/* One mailbox command's state; the fields a command does not use stay 0. */
struct mb_cmd {
	struct imap_job job;
	uint64_t epoch;
	char *name, *name2;
	bool examine, subscribe, lsub;
	/* SELECT */
	struct node_mailbox mb;
	struct node_msg_list msgs;
	uint32_t qr_uidvalidity;
	uint64_t qr_modseq;
	struct node_msg_list qr_changed;
	uint32_t *qr_expunged;
	size_t qr_expunged_count;
	/* LIST */
	struct node_mailbox_list list;
	struct node_mailbox_status *statuses; /* LIST-STATUS, one per mailbox */
	/* STATUS */
	struct node_mailbox_status status;
	unsigned status_items;
	/* APPEND */
	char *data;
	size_t len;
	struct node_message_meta meta;
	char *flags;
	int64_t internaldate;
	uint64_t quota;
	uint64_t uid;
	uint32_t uidvalidity;
	/* quota */
	uint64_t usage, messages;
};

static void
mb_cmd_free(struct mb_cmd *c)
{
	free(c->name);
	free(c->name2);
	node_mailbox_fini(&c->mb);
	node_msg_list_free(&c->msgs);
	node_msg_list_free(&c->qr_changed);
	free(c->qr_expunged);
	node_mailbox_list_free(&c->list);
	free(c->statuses);
	free(c->data);
	node_message_meta_fini(&c->meta);
	free(c->flags);
	free(c);
}

/* Start c's job; the done callback gets c back through job->arg. */
static void
mb_start(struct imap_sess *s, struct mb_cmd *c, imap_job_work_fn *work,
         imap_job_done_fn *done)
{
	c->job.work = work;
	c->job.done = done;
	c->job.arg = c;
	imap_job_start(s, &c->job);
}

/* Mailbox-name argument: NULL (after a BAD) when missing or invalid. */
static char *
mailbox_arg(struct imap_sess *s, const struct mc_imap_command *cmd, unsigned i)
{
	const char *name;
	size_t len;

	if (i >= cmd->nargs || (name = imap_arg_string(s, &cmd->args[i])) == NULL) {
		imap_command_done(s, "BAD", NULL, "Missing or invalid mailbox name");
		return NULL;
	}
	len = strlen(name);
	while (len > 1 && name[len - 1] == '/')
		len--; /* "a/" names a (RFC 3501 6.3.3) */
	if (len == 0 || len > MAILBOX_NAME_MAX || name[0] == '/' ||
	    strstr(name, "//") != NULL) {
		imap_command_done(s, "NO", "CANNOT", "Invalid mailbox name");
		return NULL;
	}
	for (size_t k = 0; k < len; k++)
		if ((unsigned char)name[k] < 0x20 || name[k] == 0x7f) {
			imap_command_done(s, "NO", "CANNOT", "Invalid mailbox name");
			return NULL;
		}
	return mc_strndup(imap_mailbox_name(name), len);
}

/* An epoch for a write, or a NO. */
static bool
write_epoch(struct imap_sess *s, uint64_t *epoch_r)
{
	if (imap_epoch(s, epoch_r))
		return true;
	imap_command_done(s, "NO", "UNAVAILABLE",
	                  "This node does not serve the mailbox now; try again");
	return false;
}

static void
deselect(struct imap_sess *s)
{
	if (s->state == IMAP_SELECTED) {
		imap_view_clear(&s->view);
		s->state = IMAP_AUTH;
	}
}

/* ---- SELECT / EXAMINE ------------------------------------------------- */

static void
select_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct mb_cmd *c = job->arg;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	job->result = node_store_select(store, job->s->account_id, c->name, &c->mb,
	                                &c->msgs, &err);
	imap_job_error(job, err);
	if (job->result == NODE_STORE_OK && c->qr_modseq > 0 &&
	    c->qr_uidvalidity == c->mb.uidvalidity) {
		struct node_mailbox now = {0};

		if (node_store_changes(store, c->mb.id, c->qr_modseq, &now, &c->qr_changed,
		                       &c->qr_expunged, &c->qr_expunged_count,
		                       &err) != NODE_STORE_OK)
			c->qr_modseq = 0; /* answer without the resync data */
		node_mailbox_fini(&now);
	}
}

/* The keywords in use, for FLAGS. */
static void
keywords(struct imap_sess *s, struct mc_strbuf *b)
{
	char **seen = NULL;
	size_t n = 0;

	for (size_t i = 0; i < s->view.count && n < 64; i++) {
		const char *p = s->view.msgs[i].flags;

		while (*p != '\0' && n < 64) {
			size_t len = strcspn(p, " ");
			bool dup = p[0] == '\\';

			for (size_t k = 0; k < n && !dup; k++)
				dup = strlen(seen[k]) == len && strncasecmp(seen[k], p, len) == 0;
			if (!dup) {
				seen = mc_realloc(seen, (n + 1) * sizeof(*seen));
				seen[n++] = mc_strndup(p, len);
				mc_strbuf_addc(b, ' ');
				mc_strbuf_add(b, p, len);
			}
			p += len;
			while (*p == ' ')
				p++;
		}
	}
	for (size_t k = 0; k < n; k++)
		free(seen[k]);
	free(seen);
}

static void
select_qresync(struct imap_sess *s, struct mb_cmd *c)
{
	bool any = false;

	for (size_t i = 0; i < c->qr_expunged_count; i++) {
		imap_outf(s, "%s%" PRIu32, any ? "," : "* VANISHED (EARLIER) ",
		          c->qr_expunged[i]);
		any = true;
	}
	if (any)
		imap_outs(s, "\r\n");
	for (size_t i = 0; i < c->qr_changed.count; i++) {
		long idx = imap_view_find(&s->view, c->qr_changed.items[i].uid);

		if (idx >= 0)
			imap_outf(s, "* %ld FETCH (UID %" PRIu32 " FLAGS (%s) MODSEQ (%" PRIu64 "))\r\n",
			          idx + 1, s->view.msgs[idx].uid, s->view.msgs[idx].flags,
			          s->view.msgs[idx].modseq);
	}
}

static void
select_done(struct imap_job *job)
{
	struct mb_cmd *c = job->arg;
	struct imap_sess *s = job->s;
	struct mc_strbuf kw = {0};
	size_t first_unseen = 0;

	if (s == NULL)
		goto out;
	if (job->result != NODE_STORE_OK) {
		imap_job_failed(s, job, c->examine ? "EXAMINE" : "SELECT");
		goto out;
	}
	s->view.mb = c->mb;
	memset(&c->mb, 0, sizeof(c->mb));
	s->view.readonly = c->examine;
	s->view.msgs = mc_calloc(c->msgs.count ? c->msgs.count : 1, sizeof(*s->view.msgs));
	s->view.cap = c->msgs.count ? c->msgs.count : 1;
	for (size_t i = 0; i < c->msgs.count; i++) {
		struct node_msg *m = &c->msgs.items[i];

		s->view.msgs[i].uid = m->uid;
		s->view.msgs[i].modseq = m->modseq;
		s->view.msgs[i].flags = m->flags;
		m->flags = NULL;
		if (first_unseen == 0 && strstr(s->view.msgs[i].flags, "\\Seen") == NULL)
			first_unseen = i + 1;
	}
	s->view.count = c->msgs.count;
	s->state = IMAP_SELECTED;
	keywords(s, &kw);
	imap_outf(s, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s)\r\n",
	          kw.data ? kw.data : "");
	imap_outf(s, "* OK [PERMANENTFLAGS (%s)] Flags permitted\r\n",
	          c->examine ? "" : "\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*");
	mc_strbuf_fini(&kw);
	imap_outf(s, "* %zu EXISTS\r\n* 0 RECENT\r\n", s->view.count);
	if (first_unseen > 0)
		imap_outf(s, "* OK [UNSEEN %zu] First unseen\r\n", first_unseen);
	imap_outf(s, "* OK [UIDVALIDITY %" PRIu32 "] UIDs valid\r\n"
	             "* OK [UIDNEXT %" PRIu32 "] Predicted next UID\r\n"
	             "* OK [HIGHESTMODSEQ %" PRIu64 "] Highest\r\n",
	          s->view.mb.uidvalidity, s->view.mb.uidnext, s->view.mb.highestmodseq);
	if (c->qr_modseq > 0)
		select_qresync(s, c);
	imap_command_done(s, "OK", c->examine ? "READ-ONLY" : "READ-WRITE", "%s completed",
	                  c->examine ? "EXAMINE" : "SELECT");
out:
	mb_cmd_free(c);
}

/* SELECT parameters: (CONDSTORE) or (QRESYNC (uidvalidity modseq ...)). */
static int
select_params(struct imap_sess *s, const struct mc_imap_command *cmd,
              struct mb_cmd *c)
{
	const struct mc_imap_token *t;
	unsigned end;

	if (cmd->nargs == 1)
		return 0;
	t = &cmd->args[1];
	if (t->type != MC_IMAP_LIST || cmd->nargs != 2 + t->count)
		return -1;
	end = 2 + t->count;
	for (unsigned i = 2; i < end; i++) {
		if (mc_imap_token_is(&cmd->args[i], "CONDSTORE")) {
			s->condstore = true;
		} else if (mc_imap_token_is(&cmd->args[i], "QRESYNC") && i + 1 < end &&
		           cmd->args[i + 1].type == MC_IMAP_LIST && s->qresync) {
			const struct mc_imap_token *q = &cmd->args[i + 1];

			if (q->items < 2 ||
			    !mc_imap_parse_u32(q[1].text, q[1].len, &c->qr_uidvalidity) ||
			    !mc_imap_parse_u64(q[2].text, q[2].len, &c->qr_modseq))
				return -1;
			i += 1 + q->count;
		} else {
			return -1;
		}
	}
	return 0;
}

void
imap_cmd_select(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct mb_cmd *c;
	char *name = mailbox_arg(s, cmd, 0);

	if (name == NULL)
		return;
	c = mc_malloc(sizeof(*c));
	c->name = name;
	c->examine = strcmp(cmd->name, "EXAMINE") == 0;
	if (select_params(s, cmd, c) < 0) {
		mb_cmd_free(c);
		imap_command_done(s, "BAD", NULL, "Invalid SELECT parameters");
		return;
	}
	if (s->state == IMAP_SELECTED && s->qresync)
		imap_outs(s, "* OK [CLOSED] Previous mailbox closed\r\n");
	deselect(s);
	mb_start(s, c, select_work, select_done);
}

/* ---- CREATE / DELETE / RENAME / SUBSCRIBE ----------------------------- */

static void
manage_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct mb_cmd *c = job->arg;
	struct imap_sess *s = job->s;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	if (strcmp(s->cmd, "CREATE") == 0)
		job->result = node_store_create_mailbox(store, s->shard, c->epoch,
		                                        s->account_id, c->name, NULL, &err);
	else if (strcmp(s->cmd, "DELETE") == 0)
		job->result = node_store_delete_mailbox(store, s->shard, c->epoch,
		                                        s->account_id, c->name, &err);
	else if (strcmp(s->cmd, "RENAME") == 0)
		job->result = node_store_rename_mailbox(store, s->shard, c->epoch,
		                                        s->account_id, c->name, c->name2,
		                                        &err);
	else
		job->result = node_store_subscribe(store, s->shard, c->epoch, s->account_id,
		                                   c->name, c->subscribe, &err);
	imap_job_error(job, err);
}

static void
manage_done(struct imap_job *job)
{
	struct mb_cmd *c = job->arg;
	struct imap_sess *s = job->s;

	if (s != NULL) {
		imap_sync_apply(s, job, true);
		if (job->result == NODE_STORE_OK)
			imap_command_done(s, "OK", NULL, "%s completed", s->cmd);
		else
			imap_job_failed(s, job, s->cmd);
	}
	mb_cmd_free(c);
}

static void
manage_start(struct imap_sess *s, char *name, char *name2)
{
	struct mb_cmd *c = mc_malloc(sizeof(*c));

	c->name = name;
	c->name2 = name2;
	c->subscribe = strcmp(s->cmd, "SUBSCRIBE") == 0;
	c->job.sync = true;
	if (!write_epoch(s, &c->epoch)) {
		mb_cmd_free(c);
		return;
	}
	mb_start(s, c, manage_work, manage_done);
}

void
imap_cmd_create(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	char *name = mailbox_arg(s, cmd, 0);

	if (name == NULL)
		return;
	if (strcmp(name, "INBOX") == 0) {
		free(name);
		imap_command_done(s, "NO", "ALREADYEXISTS", "INBOX always exists");
		return;
	}
	manage_start(s, name, NULL);
}

void
imap_cmd_delete(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	char *name = mailbox_arg(s, cmd, 0);

	if (name == NULL)
		return;
	if (strcmp(name, "INBOX") == 0) {
		free(name);
		imap_command_done(s, "NO", "CANNOT", "INBOX cannot be deleted");
		return;
	}
	if (s->state == IMAP_SELECTED && strcmp(s->view.mb.name, name) == 0)
		deselect(s);
	manage_start(s, name, NULL);
}

void
imap_cmd_rename(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	char *from = mailbox_arg(s, cmd, 0), *to;

	if (from == NULL)
		return;
	if ((to = mailbox_arg(s, cmd, 1)) == NULL) {
		free(from);
		return;
	}
	if (strcmp(to, "INBOX") == 0) {
		free(from);
		free(to);
		imap_command_done(s, "NO", "ALREADYEXISTS", "INBOX exists");
		return;
	}
	manage_start(s, from, to);
}

void
imap_cmd_subscribe(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	char *name = mailbox_arg(s, cmd, 0);

	if (name != NULL)
		manage_start(s, name, NULL);
}

/* ---- LIST / LSUB --------------------------------------------------------- */

/* IMAP LIST wildcards: '*' matches anything, '%' anything but the
 * separator. Iterative with one backtrack point per wildcard kind. */
static bool
list_match(const char *pat, const char *name)
{
	const char *star_p = NULL, *star_n = NULL;

	while (*name != '\0') {
		if (*pat == '*') {
			star_p = ++pat;
			star_n = name;
			continue;
		}
		if (*pat == '%') {
			/* '%' : try to match the rest here or after more
			 * non-separator characters (bounded by recursion on '%'
			 * only, whose depth is the number of '%' in pat). */
			const char *n = name;

			for (;;) {
				if (list_match(pat + 1, n))
					return true;
				if (*n == '\0' || *n == '/')
					break;
				n++;
			}
			goto backtrack;
		}
		if (*pat == *name) {
			pat++;
			name++;
			continue;
		}
	backtrack:
		if (star_p == NULL)
			return false;
		pat = star_p;
		name = ++star_n;
	}
	while (*pat == '*' || *pat == '%')
		pat++;
	return *pat == '\0';
}

static bool
has_children(const struct node_mailbox_list *l, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < l->count; i++)
		if (strncmp(l->items[i].name, name, len) == 0 && l->items[i].name[len] == '/')
			return true;
	return false;
}

/* LIST options. */
#define LIST_SEL_SUBSCRIBED 0x1u
#define LIST_SEL_SPECIAL 0x2u
#define LIST_RET_SUBSCRIBED 0x4u
#define LIST_RET_STATUS 0x8u
#define LIST_RET_SPECIAL 0x10u

/* STATUS items. */
#define ST_MESSAGES 0x1u
#define ST_UIDNEXT 0x2u
#define ST_UIDVALIDITY 0x4u
#define ST_UNSEEN 0x8u
#define ST_RECENT 0x10u
#define ST_HIGHESTMODSEQ 0x20u
#define ST_SIZE 0x40u
#define ST_DELETED 0x80u

static void
status_line(struct imap_sess *s, const char *name,
            const struct node_mailbox_status *st, unsigned items)
{
	const char *sep = "";

	imap_outs(s, "* STATUS ");
	mc_imap_astring(&s->out, name);
	imap_outs(s, " (");
#define ITEM(bit, fmt, val)                                                    \
	if (items & (bit)) {                                                   \
		imap_outf(s, "%s" fmt, sep, val);                              \
		sep = " ";                                                     \
	}
	ITEM(ST_MESSAGES, "MESSAGES %" PRIu32, st->messages)
	ITEM(ST_RECENT, "RECENT %d", 0)
	ITEM(ST_UIDNEXT, "UIDNEXT %" PRIu32, st->uidnext)
	ITEM(ST_UIDVALIDITY, "UIDVALIDITY %" PRIu32, st->uidvalidity)
	ITEM(ST_UNSEEN, "UNSEEN %" PRIu32, st->unseen)
	ITEM(ST_DELETED, "DELETED %" PRIu32, st->deleted)
	ITEM(ST_SIZE, "SIZE %" PRIu64, st->size)
	ITEM(ST_HIGHESTMODSEQ, "HIGHESTMODSEQ %" PRIu64, st->highestmodseq)
#undef ITEM
	imap_outs(s, ")\r\n");
}

struct list_req {
	struct mb_cmd c;
	unsigned opts;
	const char *ref;
	const char **patterns;
	size_t pattern_count;
};

static void
list_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct list_req *r = job->arg;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	job->result = node_store_list_mailboxes(store, job->s->account_id, &r->c.list,
	                                        &err);
	imap_job_error(job, err);
	if (job->result != NODE_STORE_OK || !(r->opts & LIST_RET_STATUS))
		return;
	r->c.statuses = mc_calloc(r->c.list.count + 1, sizeof(*r->c.statuses));
	for (size_t i = 0; i < r->c.list.count; i++)
		if (node_store_status(store, job->s->account_id, r->c.list.items[i].name,
		                      &r->c.statuses[i], &err) != NODE_STORE_OK)
			r->c.statuses[i].uidvalidity = 0; /* skipped below */
}

static bool
list_selected(struct list_req *r, const struct node_mailbox *mb, char *full,
              size_t fullsize)
{
	for (size_t p = 0; p < r->pattern_count; p++) {
		const char *pat = r->patterns[p];

		if (r->ref[0] != '\0' && pat[0] != '/')
			snprintf(full, fullsize, "%s%s", r->ref, pat);
		else
			snprintf(full, fullsize, "%s", pat);
		/* INBOX matches case-insensitively. */
		if (list_match(full, mb->name) ||
		    (strcmp(mb->name, "INBOX") == 0 && strcasecmp(full, "INBOX") == 0))
			return true;
	}
	return false;
}

static void
list_done(struct imap_job *job)
{
	struct list_req *r = job->arg;
	struct imap_sess *s = job->s;
	const char *verb = r->c.lsub ? "LSUB" : "LIST";
	char full[2 * MAILBOX_NAME_MAX + 2];

	if (s == NULL)
		goto out;
	if (job->result != NODE_STORE_OK) {
		imap_job_failed(s, job, verb);
		goto out;
	}
	for (size_t i = 0; i < r->c.list.count; i++) {
		const struct node_mailbox *mb = &r->c.list.items[i];
		bool subscribed_only = r->c.lsub || (r->opts & LIST_SEL_SUBSCRIBED);
		const char *sep = "";

		if (!list_selected(r, mb, full, sizeof(full)))
			continue;
		if (subscribed_only && !mb->subscribed)
			continue;
		if ((r->opts & LIST_SEL_SPECIAL) && mb->special_use == NULL)
			continue;
		imap_outf(s, "* %s (", verb);
		if (!r->c.lsub) {
			imap_outs(s, has_children(&r->c.list, mb->name) ? "\\HasChildren"
			                                                : "\\HasNoChildren");
			sep = " ";
		}
		if (mb->subscribed && (r->opts & (LIST_RET_SUBSCRIBED | LIST_SEL_SUBSCRIBED))) {
			imap_outf(s, "%s\\Subscribed", sep);
			sep = " ";
		}
		if (mb->special_use != NULL && !r->c.lsub)
			imap_outf(s, "%s%s", sep, mb->special_use);
		imap_outs(s, ") \"/\" ");
		mc_imap_astring(&s->out, mb->name);
		imap_outs(s, "\r\n");
		if ((r->opts & LIST_RET_STATUS) && r->c.statuses[i].uidvalidity != 0)
			status_line(s, mb->name, &r->c.statuses[i], r->c.status_items);
	}
	imap_command_done(s, "OK", NULL, "%s completed", verb);
out:
	mb_cmd_free(&r->c);
}

static int status_items_parse(const struct mc_imap_token *t, unsigned *items_r);

/* LIST [(selection)] ref pattern|(patterns) [RETURN (options)] */
static int
list_args(struct imap_sess *s, const struct mc_imap_command *cmd,
          struct list_req *r)
{
	unsigned i = 0;
	const struct mc_imap_token *a = cmd->args;

	if (i < cmd->nargs && a[i].type == MC_IMAP_LIST && !r->c.lsub) {
		for (unsigned k = i + 1; k <= i + a[i].count; k++) {
			if (mc_imap_token_is(&a[k], "SUBSCRIBED"))
				r->opts |= LIST_SEL_SUBSCRIBED | LIST_RET_SUBSCRIBED;
			else if (mc_imap_token_is(&a[k], "SPECIAL-USE"))
				r->opts |= LIST_SEL_SPECIAL;
			else if (!mc_imap_token_is(&a[k], "REMOTE") &&
			         !mc_imap_token_is(&a[k], "RECURSIVEMATCH"))
				return -1;
		}
		i += 1 + a[i].count;
	}
	if (i + 2 > cmd->nargs || (r->ref = imap_arg_string(s, &a[i])) == NULL)
		return -1;
	i++;
	if (a[i].type == MC_IMAP_LIST && !r->c.lsub) {
		r->patterns = mc_pool_alloc(s->pool, (a[i].count + 1) * sizeof(char *));
		for (unsigned k = i + 1; k <= i + a[i].count; k++)
			if ((r->patterns[r->pattern_count++] = imap_arg_string(s, &a[k])) == NULL)
				return -1;
		i += 1 + a[i].count;
	} else {
		r->patterns = mc_pool_alloc(s->pool, sizeof(char *));
		if ((r->patterns[0] = imap_arg_string(s, &a[i])) == NULL)
			return -1;
		r->pattern_count = 1;
		i++;
	}
	if (i < cmd->nargs && mc_imap_token_is(&a[i], "RETURN") && !r->c.lsub &&
	    i + 1 < cmd->nargs && a[i + 1].type == MC_IMAP_LIST) {
		unsigned end = i + 1 + a[i + 1].count;

		for (unsigned k = i + 2; k <= end; k++) {
			if (mc_imap_token_is(&a[k], "SUBSCRIBED"))
				r->opts |= LIST_RET_SUBSCRIBED;
			else if (mc_imap_token_is(&a[k], "SPECIAL-USE"))
				r->opts |= LIST_RET_SPECIAL;
			else if (mc_imap_token_is(&a[k], "CHILDREN"))
				;
			else if (mc_imap_token_is(&a[k], "STATUS") && k + 1 <= end &&
			         a[k + 1].type == MC_IMAP_LIST) {
				if (status_items_parse(&a[k + 1], &r->c.status_items) < 0)
					return -1;
				r->opts |= LIST_RET_STATUS;
				k += 1 + a[k + 1].count;
			} else {
				return -1;
			}
		}
		i = end + 1;
	}
	return i == cmd->nargs ? 0 : -1;
}

void
imap_cmd_list(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct list_req *r = mc_malloc(sizeof(*r));

	r->c.lsub = strcmp(cmd->name, "LSUB") == 0;
	if (list_args(s, cmd, r) < 0) {
		mb_cmd_free(&r->c);
		imap_command_done(s, "BAD", NULL, "Invalid %s arguments", cmd->name);
		return;
	}
	if (r->pattern_count == 1 && r->patterns[0][0] == '\0') {
		/* The hierarchy delimiter (RFC 3501 6.3.8). */
		mb_cmd_free(&r->c);
		imap_outf(s, "* %s (\\Noselect) \"/\" \"\"\r\n", cmd->name);
		imap_command_done(s, "OK", NULL, "%s completed", cmd->name);
		return;
	}
	mb_start(s, &r->c, list_work, list_done);
}

/* ---- STATUS --------------------------------------------------------------- */

static int
status_items_parse(const struct mc_imap_token *t, unsigned *items_r)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
	        {"MESSAGES", ST_MESSAGES},   {"UIDNEXT", ST_UIDNEXT},
	        {"UIDVALIDITY", ST_UIDVALIDITY}, {"UNSEEN", ST_UNSEEN},
	        {"RECENT", ST_RECENT},       {"HIGHESTMODSEQ", ST_HIGHESTMODSEQ},
	        {"SIZE", ST_SIZE},           {"DELETED", ST_DELETED},
	};
	unsigned items = 0;

	if (t->type != MC_IMAP_LIST || t->count == 0)
		return -1;
	for (unsigned k = 1; k <= t->count; k++) {
		unsigned bit = 0;

		for (size_t n = 0; n < sizeof(names) / sizeof(*names); n++)
			if (mc_imap_token_is(&t[k], names[n].name))
				bit = names[n].bit;
		if (bit == 0)
			return -1;
		items |= bit;
	}
	*items_r = items;
	return 0;
}

static void
status_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct mb_cmd *c = job->arg;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	job->result = node_store_status(store, job->s->account_id, c->name, &c->status,
	                                &err);
	imap_job_error(job, err);
}

static void
status_done(struct imap_job *job)
{
	struct mb_cmd *c = job->arg;
	struct imap_sess *s = job->s;

	if (s != NULL) {
		imap_sync_apply(s, job, true);
		if (job->result == NODE_STORE_OK) {
			status_line(s, c->name, &c->status, c->status_items);
			imap_command_done(s, "OK", NULL, "STATUS completed");
		} else {
			imap_job_failed(s, job, "STATUS");
		}
	}
	mb_cmd_free(c);
}

void
imap_cmd_status(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct mb_cmd *c;
	char *name = mailbox_arg(s, cmd, 0);

	if (name == NULL)
		return;
	c = mc_malloc(sizeof(*c));
	c->name = name;
	if (cmd->nargs != 2 + cmd->args[1].count ||
	    status_items_parse(&cmd->args[1], &c->status_items) < 0) {
		mb_cmd_free(c);
		imap_command_done(s, "BAD", NULL, "STATUS takes a mailbox and a list of items");
		return;
	}
	c->job.sync = true;
	mb_start(s, c, status_work, status_done);
}

/* ---- APPEND ------------------------------------------------------------- */

static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                     "jul", "aug", "sep", "oct", "nov", "dec"};

/* date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be " d"). */
static int
parse_date_time(const char *s, int64_t *t_r)
{
	char mon[4];
	int day, year, hh, mm, ss, zone, n = 0;
	struct tm tm = {0};
	int m = -1;

	if (sscanf(s, " %2d-%3s-%4d %2d:%2d:%2d %5d%n", &day, mon, &year, &hh, &mm, &ss,
	           &zone, &n) != 7 || s[n] != '\0')
		return -1;
	for (int i = 0; i < 12; i++)
		if (strcasecmp(mon, months[i]) == 0)
			m = i;
	if (m < 0 || day < 1 || day > 31 || year < 1900 || hh > 23 || mm > 59 ||
	    ss > 60 || zone < -1400 || zone > 1400)
		return -1;
	tm.tm_mday = day;
	tm.tm_mon = m;
	tm.tm_year = year - 1900;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	*t_r = (int64_t)timegm(&tm) -
	       (int64_t)((zone < 0 ? -1 : 1) * ((abs(zone) / 100) * 3600 + (abs(zone) % 100) * 60));
	return 0;
}

static void
append_store_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct mb_cmd *c = job->arg;
	struct imap_sess *s = job->s;
	const char *err = NULL;
	struct node_delivery d = {
	        .account_id = s->account_id, .shard = s->shard, .epoch = c->epoch,
	        .mailbox = c->name, .blob_sha256 = c->meta.key, .size = c->len,
	        .internaldate = c->internaldate,
	        .envelope_json = c->meta.envelope_json,
	        .bodystructure_json = c->meta.bodystructure_json,
	        .imap_envelope = c->meta.imap_envelope,
	        .search_headers = c->meta.search_headers, .flags = c->flags,
	        .no_create = true, .quota_bytes = c->quota,
	};

	if (imap_job_no_store(job, store, error))
		return;
	job->result = node_store_deliver(store, &d, &c->uid, &c->uidvalidity, &err);
	imap_job_error(job, err);
}

static void
append_store_done(struct imap_job *job)
{
	struct mb_cmd *c = job->arg;
	struct imap_sess *s = job->s;

	if (s != NULL) {
		imap_sync_apply(s, job, true);
		if (job->result == NODE_STORE_OK) {
			char code[64];

			snprintf(code, sizeof(code), "APPENDUID %" PRIu32 " %" PRIu64,
			         c->uidvalidity, c->uid);
			imap_command_done(s, "OK", code, "APPEND completed");
			node_imap_notify(s->imap, s->account_id);
		} else if (job->result == NODE_STORE_NOTFOUND) {
			imap_command_done(s, "NO", "TRYCREATE", "APPEND: no such mailbox");
		} else {
			imap_job_failed(s, job, "APPEND");
		}
	}
	mb_cmd_free(c);
}

static void
append_put_done(void *arg, enum mc_blob_status status, const char *error)
{
	struct mb_cmd *c = arg;
	struct imap_sess *s = c->job.s;

	if (!imap_pending_release(s)) {
		mb_cmd_free(c);
		return;
	}
	if (status != MC_BLOB_OK) {
		mc_warn("imap append blob store failed session=%" PRIu64 " error=\"%s\"",
		        s->id, error);
		mb_cmd_free(c);
		imap_command_done(s, "NO", "UNAVAILABLE", "Message store unavailable, try again");
		return;
	}
	free(c->data); /* stored: the bytes are not needed any more */
	c->data = NULL;
	c->job.sync = true;
	mb_start(s, c, append_store_work, append_store_done);
}

static void
append_analyze_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct mb_cmd *c = job->arg;

	(void)store;
	(void)error;
	node_message_analyze(c->data, c->len, &c->meta);
}

static void
append_analyze_done(struct imap_job *job)
{
	struct mb_cmd *c = job->arg;
	struct imap_sess *s = job->s;
	const char *err;

	if (s == NULL) {
		mb_cmd_free(c);
		return;
	}
	s->pending++;
	c->job.s = s;
	if (mc_blob_put(s->imap->set.blob, c->meta.key, c->data, c->len, append_put_done, c,
	                &err) < 0) {
		s->pending--;
		mb_cmd_free(c);
		imap_command_done(s, "NO", "UNAVAILABLE", "Message store busy, try again");
	}
}

/* APPEND mailbox [(flags)] [date-time] literal */
static int
append_args(struct imap_sess *s, const struct mc_imap_command *cmd,
            struct mb_cmd *c, const char **error_r)
{
	unsigned i = 1;
	const struct mc_imap_token *lit;
	struct mc_strbuf flags = {0};

	if (i < cmd->nargs && cmd->args[i].type == MC_IMAP_LIST) {
		const char **fl;
		size_t n;
		unsigned used;

		if (imap_parse_flags(&cmd->args[i], cmd->nargs - i, &fl, &n, &used, s->pool,
		                     error_r) < 0)
			return -1;
		for (size_t k = 0; k < n; k++) {
			if (k > 0)
				mc_strbuf_addc(&flags, ' ');
			mc_strbuf_adds(&flags, fl[k]);
		}
		i += used;
	}
	c->flags = mc_strbuf_steal(&flags);
	c->internaldate = (int64_t)time(NULL);
	if (i < cmd->nargs && cmd->args[i].type == MC_IMAP_QUOTED) {
		if (parse_date_time(cmd->args[i].text, &c->internaldate) < 0) {
			*error_r = "Invalid date-time";
			return -1;
		}
		i++;
	}
	if (i + 1 != cmd->nargs || (cmd->args[i].type != MC_IMAP_LITERAL &&
	                            cmd->args[i].type != MC_IMAP_LITERAL8)) {
		*error_r = "APPEND takes a mailbox, optional flags and date, and a literal"
		           " (MULTIAPPEND is not supported)";
		return -1;
	}
	lit = &cmd->args[i];
	c->len = lit->len;
	c->data = mc_malloc(lit->len + 1);
	memcpy(c->data, lit->text, lit->len);
	return 0;
}

void
imap_cmd_append(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	const struct mc_dir_account *acc;
	struct mb_cmd *c;
	const char *err;
	char *name = mailbox_arg(s, cmd, 0);

	if (name == NULL)
		return;
	c = mc_malloc(sizeof(*c));
	c->name = name;
	if (append_args(s, cmd, c, &err) < 0) {
		mb_cmd_free(c);
		imap_command_done(s, "BAD", NULL, "%s", err);
		return;
	}
	if (c->len == 0) {
		mb_cmd_free(c);
		imap_command_done(s, "NO", NULL, "Empty message refused");
		return;
	}
	acc = mc_directory_account(mc_cfgsync_directory(s->imap->set.sync), s->user);
	c->quota = acc != NULL ? acc->quota_bytes : 0;
	if (!write_epoch(s, &c->epoch)) {
		mb_cmd_free(c);
		return;
	}
	mb_start(s, c, append_analyze_work, append_analyze_done);
}

/* ---- QUOTA (RFC 9208) ------------------------------------------------- */

static void
quota_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct mb_cmd *c = job->arg;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	job->result = node_store_usage(store, job->s->account_id, &c->usage,
	                               &c->messages, &err);
	imap_job_error(job, err);
}

static void
quota_done(struct imap_job *job)
{
	struct mb_cmd *c = job->arg;
	struct imap_sess *s = job->s;

	if (s == NULL)
		goto out;
	if (job->result != NODE_STORE_OK) {
		imap_job_failed(s, job, s->cmd);
		goto out;
	}
	if (c->name != NULL) {
		imap_outs(s, "* QUOTAROOT ");
		mc_imap_astring(&s->out, c->name);
		imap_outs(s, c->quota > 0 ? " \"\"\r\n" : "\r\n");
	}
	if (c->quota > 0)
		imap_outf(s, "* QUOTA \"\" (STORAGE %" PRIu64 " %" PRIu64 ")\r\n",
		          (c->usage + 1023) / 1024, c->quota / 1024);
	imap_command_done(s, "OK", NULL, "%s completed", s->cmd);
out:
	mb_cmd_free(c);
}

static void
quota_start(struct imap_sess *s, char *name)
{
	struct mb_cmd *c = mc_malloc(sizeof(*c));
	const struct mc_dir_account *acc =
	        mc_directory_account(mc_cfgsync_directory(s->imap->set.sync), s->user);

	c->name = name;
	c->quota = acc != NULL ? acc->quota_bytes : 0;
	mb_start(s, c, quota_work, quota_done);
}

void
imap_cmd_getquotaroot(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	char *name = mailbox_arg(s, cmd, 0);

	if (name != NULL)
		quota_start(s, name);
}

void
imap_cmd_getquota(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	const char *root;

	if (cmd->nargs != 1 || (root = imap_arg_string(s, &cmd->args[0])) == NULL) {
		imap_command_done(s, "BAD", NULL, "GETQUOTA takes a quota root");
		return;
	}
	if (root[0] != '\0') {
		imap_command_done(s, "NO", "NONEXISTENT", "No such quota root");
		return;
	}
	quota_start(s, NULL);
}

void
imap_cmd_setquota(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	(void)cmd;
	imap_command_done(s, "NO", "NOPERM", "Quotas are set by the operator (mailctl)");
}

/* ---- CLOSE / UNSELECT / CHECK ----------------------------------------- */

static void
close_work(struct imap_job *job, struct node_store *store, const char *error)
{
	struct mb_cmd *c = job->arg;
	uint32_t *gone = NULL;
	size_t n = 0;
	const char *err = NULL;

	if (imap_job_no_store(job, store, error))
		return;
	job->result = node_store_expunge(store, job->s->shard, c->epoch,
	                                 job->s->view.mb.id, NULL, 0, &gone, &n, &err);
	imap_job_error(job, err);
	free(gone);
}

static void
close_done(struct imap_job *job)
{
	struct mb_cmd *c = job->arg;
	struct imap_sess *s = job->s;

	if (s != NULL) {
		/* CLOSE deselects whatever the expunge did (RFC 3501 6.4.2). */
		deselect(s);
		if (job->result == NODE_STORE_OK)
			imap_command_done(s, "OK", NULL, "CLOSE completed");
		else
			imap_job_failed(s, job, "CLOSE");
	}
	mb_cmd_free(c);
}

void
imap_cmd_close(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct mb_cmd *c;
	uint64_t epoch;

	(void)cmd;
	if (s->view.readonly || !imap_epoch(s, &epoch)) {
		deselect(s);
		imap_command_done(s, "OK", NULL, "CLOSE completed");
		return;
	}
	c = mc_malloc(sizeof(*c));
	c->epoch = epoch;
	mb_start(s, c, close_work, close_done);
}

void
imap_cmd_unselect(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	(void)cmd;
	deselect(s);
	imap_command_done(s, "OK", NULL, "UNSELECT completed");
}

void
imap_cmd_check(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	(void)cmd;
	imap_sync_command(s, "CHECK completed");
}
