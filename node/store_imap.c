/* The mailbox store as the IMAP server uses it; see store_imap.h. Same
 * connection and fencing as store.c (store_private.h): every write is one
 * transaction that starts with the shard fence, then locks the mailbox
 * row it changes (FOR UPDATE) and reads the MODSEQ the write will give,
 * highestmodseq + 1; the row is bumped to it at the end only when
 * something changed. Reads of more than one statement run in one
 * REPEATABLE READ snapshot so the mailbox row and its messages agree.
 *
 * UID sets travel as one bigint[] parameter ('{1,2,3}', uid = ANY($n)):
 * one statement for any number of messages. Flags are stored canonical
 * (imap_flags() in 0003_imap.sql: distinct, byte order), so they are read
 * back with a plain array_to_string and compared with =; flag lists come
 * in as one space-separated parameter (IMAP flags hold no spaces). */
#include "store_imap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "error.h"
#include "mem.h"
#include "store_private.h"

#define MAILBOX_COLS                                                           \
	"id, name, special_use, subscribed, uidvalidity, uidnext,"             \
	" highestmodseq"
#define MSG_COLS "uid, modseq, array_to_string(flags, ' ')"

/* ---- small helpers ---- */

static const char *
num(char buf[24], uint64_t v)
{
	snprintf(buf, 24, "%llu", (unsigned long long)v);
	return buf;
}

static uint64_t
u64(const PGresult *res, int row, int col)
{
	return strtoull(PQgetvalue(res, row, col), NULL, 10);
}

static char *
str_or_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col)
	               ? NULL
	               : mc_strdup(PQgetvalue(res, row, col));
}

/* "{1,2,3}": a bigint[] literal, one allocation (free() it). */
static char *
uid_array(const uint32_t *uids, size_t count)
{
	/* Up to 10 digits and a comma each, the braces, the NUL. */
	char *s = mc_calloc(count + 1, 11), *p = s;

	*p++ = '{';
	for (size_t i = 0; i < count; i++)
		p += sprintf(p, i == 0 ? "%u" : ",%u", uids[i]);
	*p++ = '}';
	*p = '\0';
	return s;
}

/* The flags as one space-separated string (free() it). */
static char *
join_flags(const char *const *flags, size_t count)
{
	size_t len = 1;
	char *s, *p;

	for (size_t i = 0; i < count; i++)
		len += strlen(flags[i]) + 1;
	s = p = mc_malloc(len);
	for (size_t i = 0; i < count; i++) {
		size_t n = strlen(flags[i]);

		if (i > 0)
			*p++ = ' ';
		memcpy(p, flags[i], n);
		p += n;
	}
	*p = '\0';
	return s;
}

/* How many leading rows have kind (column 0) 0. */
static int
kind0_rows(const PGresult *res)
{
	int n = PQntuples(res), i = 0;

	while (i < n && PQgetvalue(res, i, 0)[0] == '0')
		i++;
	return i;
}

/* uids from column col of rows first..first+count-1 (free(); NULL if none). */
static uint32_t *
read_uids(const PGresult *res, int first, int count, int col)
{
	uint32_t *uids =
	        count > 0 ? mc_calloc((size_t)count, sizeof(*uids)) : NULL;

	for (int i = 0; i < count; i++)
		uids[i] = (uint32_t)u64(res, first + i, col);
	return uids;
}

static void
read_mailbox(const PGresult *res, int row, struct node_mailbox *mb)
{
	mb->id = u64(res, row, 0);
	mb->name = mc_strdup(PQgetvalue(res, row, 1));
	mb->special_use = str_or_null(res, row, 2);
	mb->subscribed = PQgetvalue(res, row, 3)[0] == 't';
	mb->uidvalidity = (uint32_t)u64(res, row, 4);
	mb->uidnext = (uint32_t)u64(res, row, 5);
	mb->highestmodseq = u64(res, row, 6);
}

/* Rows of MSG_COLS starting at column col, appended to list. */
static void
read_msgs(const PGresult *res, int first, int count, int col,
          struct node_msg_list *list)
{
	if (count <= 0)
		return;
	list->items = mc_realloc(list->items, (list->count + (size_t)count) *
	                                              sizeof(*list->items));
	for (int i = first; i < first + count; i++) {
		struct node_msg *m = &list->items[list->count++];

		m->uid = (uint32_t)u64(res, i, col);
		m->modseq = u64(res, i, col + 1);
		m->flags = mc_strdup(PQgetvalue(res, i, col + 2));
	}
}

/* One read statement outside a transaction: OK with *res_r, NOTFOUND
 * (error names what) when it returned no row, TEMPFAIL. */
static enum node_store_result
read1(struct node_store *st, const char *sql, int n, const char *const *params,
      const char *what, PGresult **res_r, const char **error_r)
{
	if (node_store_connect(st, error_r) < 0)
		return NODE_STORE_TEMPFAIL;
	*res_r = node_store_q(st, sql, n, params, error_r);
	if (*res_r == NULL)
		return NODE_STORE_TEMPFAIL;
	if (PQntuples(*res_r) > 0 || what == NULL)
		return NODE_STORE_OK;
	PQclear(*res_r);
	*res_r = NULL;
	*error_r = mc_errorf("mailbox %s does not exist", what);
	return NODE_STORE_NOTFOUND;
}

/* A read-only snapshot for reads of several statements; end it with
 * node_store_finish. */
static enum node_store_result
begin_snapshot(struct node_store *st, const char **error_r)
{
	if (node_store_connect(st, error_r) < 0 ||
	    node_store_exec0(st,
	                     "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	                     error_r) < 0)
		return NODE_STORE_TEMPFAIL;
	return NODE_STORE_OK;
}

/* A mailbox a write transaction changes, locked. */
struct locked {
	char id[24];
	uint64_t uidnext;
	uint64_t modseq; /* the one this write gives: highestmodseq + 1 */
	uint32_t uidvalidity;
};

/* Inside a fenced transaction: lock mailbox id (checking it belongs to
 * account_id unless that is 0). NOTFOUND when there is none. */
static enum node_store_result
lock_mailbox(struct node_store *st, uint64_t id, uint64_t account_id,
             struct locked *l, const char **error_r)
{
	char acc[24];
	const char *params[2] = {num(l->id, id), num(acc, account_id)};
	PGresult *res = node_store_q(
	        st,
	        "SELECT uidnext, highestmodseq + 1, uidvalidity"
	        " FROM mailboxes WHERE id = $1 AND ($2::bigint = 0 OR"
	        " account_id = $2) FOR UPDATE",
	        2, params, error_r);
	enum node_store_result r = NODE_STORE_OK;

	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	if (PQntuples(res) == 0) {
		*error_r = mc_errorf("mailbox id %llu does not exist",
		                     (unsigned long long)id);
		r = NODE_STORE_NOTFOUND;
	} else {
		l->uidnext = u64(res, 0, 0);
		l->modseq = u64(res, 0, 1);
		l->uidvalidity = (uint32_t)u64(res, 0, 2);
	}
	PQclear(res);
	return r;
}

/* Give the locked mailbox its new HIGHESTMODSEQ (and added UIDs). */
static enum node_store_result
bump(struct node_store *st, const struct locked *l, size_t added,
     const char **error_r)
{
	char modseq[24], n[24];
	const char *params[3] = {l->id, num(modseq, l->modseq), num(n, added)};
	PGresult *res = node_store_q(st,
	                             "UPDATE mailboxes SET highestmodseq = $2,"
	                             " uidnext = uidnext + $3 WHERE id = $1",
	                             3, params, error_r);

	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	PQclear(res);
	return NODE_STORE_OK;
}

/* ---- freeing ---- */

void
node_mailbox_fini(struct node_mailbox *mb)
{
	free(mb->name);
	free(mb->special_use);
	memset(mb, 0, sizeof(*mb));
}

void
node_mailbox_list_free(struct node_mailbox_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		node_mailbox_fini(&list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

void
node_msg_list_free(struct node_msg_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i].flags);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

void
node_msg_full_free(struct node_msg_full *rows, size_t count)
{
	for (size_t i = 0; rows != NULL && i < count; i++) {
		free(rows[i].flags);
		free(rows[i].envelope);
		free(rows[i].bodystructure);
	}
	free(rows);
}

void
node_copy_result_fini(struct node_copy_result *r)
{
	free(r->src_uids);
	free(r->dst_uids);
	memset(r, 0, sizeof(*r));
}

/* ---- reading ---- */

enum node_store_result
node_store_list_mailboxes(struct node_store *st, uint64_t account_id,
                          struct node_mailbox_list *list_r,
                          const char **error_r)
{
	char acc[24];
	const char *params[1] = {num(acc, account_id)};
	PGresult *res = NULL;
	enum node_store_result r;

	memset(list_r, 0, sizeof(*list_r));
	r = read1(st,
	          "SELECT " MAILBOX_COLS " FROM mailboxes WHERE account_id = $1"
	          " ORDER BY name COLLATE \"C\"",
	          1, params, NULL, &res, error_r);
	if (r != NODE_STORE_OK)
		return r;
	list_r->count = (size_t)PQntuples(res);
	if (list_r->count > 0)
		list_r->items =
		        mc_calloc(list_r->count, sizeof(*list_r->items));
	for (size_t i = 0; i < list_r->count; i++)
		read_mailbox(res, (int)i, &list_r->items[i]);
	PQclear(res);
	return NODE_STORE_OK;
}

enum node_store_result
node_store_select(struct node_store *st, uint64_t account_id, const char *name,
                  struct node_mailbox *mb_r, struct node_msg_list *msgs_r,
                  const char **error_r)
{
	char acc[24];
	const char *params[2] = {num(acc, account_id), name};
	PGresult *res = NULL;
	enum node_store_result r = begin_snapshot(st, error_r);

	memset(mb_r, 0, sizeof(*mb_r));
	memset(msgs_r, 0, sizeof(*msgs_r));
	if (r == NODE_STORE_OK &&
	    (res = node_store_q(st,
	                        "SELECT " MAILBOX_COLS " FROM mailboxes"
	                        " WHERE account_id = $1 AND name = $2",
	                        2, params, error_r)) == NULL)
		r = NODE_STORE_TEMPFAIL;
	if (r == NODE_STORE_OK && PQntuples(res) == 0) {
		*error_r = mc_errorf("mailbox %s does not exist", name);
		r = NODE_STORE_NOTFOUND;
	}
	if (r == NODE_STORE_OK) {
		read_mailbox(res, 0, mb_r);
		PQclear(res);
		params[0] = num(acc, mb_r->id);
		res = node_store_q(st,
		                   "SELECT " MSG_COLS " FROM messages"
		                   " WHERE mailbox_id = $1 ORDER BY uid",
		                   1, params, error_r);
		if (res == NULL)
			r = NODE_STORE_TEMPFAIL;
		else
			read_msgs(res, 0, PQntuples(res), 0, msgs_r);
	}
	PQclear(res);
	r = node_store_finish(st, r, error_r);
	if (r != NODE_STORE_OK) {
		node_mailbox_fini(mb_r);
		node_msg_list_free(msgs_r);
	}
	return r;
}

/* Inside a snapshot: the changed messages and expunged UIDs after since,
 * as one statement (kind 0: changed, 1: expunged). */
static enum node_store_result
read_changes(struct node_store *st, const char *id, uint64_t since,
             struct node_msg_list *changed_r, uint32_t **expunged_r,
             size_t *expunged_count_r, const char **error_r)
{
	char since_s[24];
	const char *params[2] = {id, num(since_s, since)};
	PGresult *res = node_store_q(
	        st,
	        "SELECT 0, " MSG_COLS " FROM messages WHERE mailbox_id = $1"
	        " AND modseq > $2 UNION ALL SELECT 1, uid, modseq, NULL"
	        " FROM expunged WHERE mailbox_id = $1 AND modseq > $2"
	        " ORDER BY 1, 2",
	        2, params, error_r);
	int changed;

	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	changed = kind0_rows(res);
	read_msgs(res, 0, changed, 1, changed_r);
	*expunged_count_r = (size_t)(PQntuples(res) - changed);
	*expunged_r = read_uids(res, changed, PQntuples(res) - changed, 1);
	PQclear(res);
	return NODE_STORE_OK;
}

enum node_store_result
node_store_changes(struct node_store *st, uint64_t mailbox_id, uint64_t since,
                   struct node_mailbox *mb_r, struct node_msg_list *changed_r,
                   uint32_t **expunged_r, size_t *expunged_count_r,
                   const char **error_r)
{
	static const char sql[] =
	        "SELECT " MAILBOX_COLS " FROM mailboxes WHERE id = $1";
	char id[24], what[32];
	const char *params[1] = {num(id, mailbox_id)};
	PGresult *res = NULL;
	enum node_store_result r;

	memset(mb_r, 0, sizeof(*mb_r));
	memset(changed_r, 0, sizeof(*changed_r));
	*expunged_r = NULL;
	*expunged_count_r = 0;
	snprintf(what, sizeof(what), "id %s", id);
	/* The common case (nothing new) is one statement, no transaction. */
	r = read1(st, sql, 1, params, what, &res, error_r);
	if (r != NODE_STORE_OK)
		return r;
	read_mailbox(res, 0, mb_r);
	PQclear(res);
	if (mb_r->highestmodseq <= since)
		return NODE_STORE_OK;
	/* Read the row again in the snapshot the changes come from. */
	node_mailbox_fini(mb_r);
	r = begin_snapshot(st, error_r);
	if (r == NODE_STORE_OK &&
	    (res = node_store_q(st, sql, 1, params, error_r)) == NULL)
		r = NODE_STORE_TEMPFAIL;
	if (r == NODE_STORE_OK && PQntuples(res) == 0) {
		*error_r = mc_errorf("mailbox %s does not exist", what);
		r = NODE_STORE_NOTFOUND;
	}
	if (r == NODE_STORE_OK) {
		read_mailbox(res, 0, mb_r);
		r = read_changes(st, id, since, changed_r, expunged_r,
		                 expunged_count_r, error_r);
	}
	PQclear(res);
	r = node_store_finish(st, r, error_r);
	if (r != NODE_STORE_OK) {
		node_mailbox_fini(mb_r);
		node_msg_list_free(changed_r);
		free(*expunged_r);
		*expunged_r = NULL;
		*expunged_count_r = 0;
	}
	return r;
}

enum node_store_result
node_store_fetch(struct node_store *st, uint64_t mailbox_id,
                 const uint32_t *uids, size_t count, bool want_structure,
                 struct node_msg_full **rows_r, size_t *count_r,
                 const char **error_r)
{
	char id[24], *arr;
	const char *params[3] = {num(id, mailbox_id), NULL,
	                         want_structure ? "t" : "f"};
	PGresult *res = NULL;
	enum node_store_result r;
	int n;

	*rows_r = NULL;
	*count_r = 0;
	if (count == 0)
		return NODE_STORE_OK;
	params[1] = arr = uid_array(uids, count);
	r = read1(st,
	          "SELECT " MSG_COLS
	          ", size, extract(epoch FROM internaldate)::bigint,"
	          " blob_sha256, envelope::text,"
	          " CASE WHEN $3::boolean THEN bodystructure::text END"
	          " FROM messages WHERE mailbox_id = $1"
	          " AND uid = ANY($2::bigint[]) ORDER BY uid",
	          3, params, NULL, &res, error_r);
	free(arr);
	if (r != NODE_STORE_OK)
		return r;
	n = PQntuples(res);
	if (n > 0)
		*rows_r = mc_calloc((size_t)n, sizeof(**rows_r));
	for (int i = 0; i < n; i++) {
		struct node_msg_full *m = &(*rows_r)[i];

		m->uid = (uint32_t)u64(res, i, 0);
		m->modseq = u64(res, i, 1);
		m->flags = mc_strdup(PQgetvalue(res, i, 2));
		m->size = u64(res, i, 3);
		m->internaldate = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		snprintf(m->blob, sizeof(m->blob), "%s", PQgetvalue(res, i, 5));
		m->envelope = str_or_null(res, i, 6);
		m->bodystructure = str_or_null(res, i, 7);
	}
	*count_r = (size_t)n;
	PQclear(res);
	return NODE_STORE_OK;
}

enum node_store_result
node_store_status(struct node_store *st, uint64_t account_id, const char *name,
                  struct node_mailbox_status *status_r, const char **error_r)
{
	char acc[24];
	const char *params[2] = {num(acc, account_id), name};
	PGresult *res = NULL;
	enum node_store_result r;

	memset(status_r, 0, sizeof(*status_r));
	r = read1(st,
	          "SELECT count(m.uid),"
	          " count(m.uid) FILTER (WHERE NOT '\\Seen' = ANY(m.flags)),"
	          " count(m.uid) FILTER (WHERE '\\Deleted' = ANY(m.flags)),"
	          " b.uidnext, b.uidvalidity, b.highestmodseq,"
	          " coalesce(sum(m.size), 0) FROM mailboxes b"
	          " LEFT JOIN messages m ON m.mailbox_id = b.id"
	          " WHERE b.account_id = $1 AND b.name = $2 GROUP BY b.id",
	          2, params, name, &res, error_r);
	if (r != NODE_STORE_OK)
		return r;
	status_r->messages = (uint32_t)u64(res, 0, 0);
	status_r->unseen = (uint32_t)u64(res, 0, 1);
	status_r->deleted = (uint32_t)u64(res, 0, 2);
	status_r->uidnext = (uint32_t)u64(res, 0, 3);
	status_r->uidvalidity = (uint32_t)u64(res, 0, 4);
	status_r->highestmodseq = u64(res, 0, 5);
	status_r->size = u64(res, 0, 6);
	PQclear(res);
	return NODE_STORE_OK;
}

enum node_store_result
node_store_usage(struct node_store *st, uint64_t account_id, uint64_t *bytes_r,
                 uint64_t *messages_r, const char **error_r)
{
	char acc[24];
	const char *params[1] = {num(acc, account_id)};
	PGresult *res = NULL;
	enum node_store_result r;

	/* Running totals per mailbox (0003_imap.sql): no scan of messages. */
	r = read1(st,
	          "SELECT coalesce(sum(message_bytes), 0),"
	          " coalesce(sum(message_count), 0) FROM mailboxes"
	          " WHERE account_id = $1",
	          1, params, NULL, &res, error_r);
	if (r != NODE_STORE_OK)
		return r;
	*bytes_r = u64(res, 0, 0);
	*messages_r = u64(res, 0, 1);
	PQclear(res);
	return NODE_STORE_OK;
}

/* ---- flags and expunge ---- */

/* Columns: kind (0: changed, with its new flags; 1: failed the
 * UNCHANGEDSINCE test), uid, modseq, flags. A message whose flags stay
 * the same is not touched. $1 mailbox, $2 uids, $3 the new MODSEQ,
 * $4 flags (space-separated), $5 unchangedsince (0: none). */
#define SET_FLAGS_SQL(new_flags)                                               \
	"WITH sel AS (SELECT uid, modseq, flags, " new_flags " AS nf"          \
	" FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])),"   \
	" upd AS (UPDATE messages m SET flags = sel.nf, modseq = $3 FROM sel"  \
	" WHERE m.mailbox_id = $1 AND m.uid = sel.uid AND sel.flags <> sel.nf" \
	" AND ($5::bigint = 0 OR sel.modseq <= $5)"                            \
	" RETURNING m.uid, m.modseq, array_to_string(m.flags, ' ') AS f)"      \
	" SELECT 0, uid, modseq, f FROM upd UNION ALL"                         \
	" SELECT 1, uid, modseq, NULL FROM sel"                                \
	" WHERE $5::bigint > 0 AND modseq > $5 ORDER BY 1, 2"

#define NEW_FLAGS "string_to_array($4::text, ' ')"

static const char *const set_flags_sql[] = {
        [NODE_FLAGS_REPLACE] = SET_FLAGS_SQL("imap_flags(" NEW_FLAGS ")"),
        [NODE_FLAGS_ADD] = SET_FLAGS_SQL("imap_flags(flags || " NEW_FLAGS ")"),
        [NODE_FLAGS_REMOVE] =
                SET_FLAGS_SQL("imap_flags(ARRAY(SELECT unnest(flags)"
                              " EXCEPT SELECT unnest(" NEW_FLAGS ")))"),
};

/* Removes messages and records them as expunged: $1 mailbox, $2 the
 * MODSEQ of the removal, $3 uids (NULL: no UID condition). */
#define EXPUNGE_SQL(cond)                                                      \
	"WITH del AS (DELETE FROM messages WHERE mailbox_id = $1 AND " cond    \
	" RETURNING uid), ins AS (INSERT INTO expunged (mailbox_id, uid,"      \
	" modseq) SELECT $1, uid, $2 FROM del)"                                \
	" SELECT uid FROM del ORDER BY uid"
#define LISTED "($3::bigint[] IS NULL OR uid = ANY($3::bigint[]))"

static const char expunge_deleted_sql[] =
        EXPUNGE_SQL("'\\Deleted' = ANY(flags) AND " LISTED);
static const char expunge_listed_sql[] = EXPUNGE_SQL(LISTED);

/* Inside a fenced transaction: run set_flags_sql[op] on the locked
 * mailbox; *res_r as described there (PQclear it). */
static enum node_store_result
store_flags(struct node_store *st, const struct locked *l, const uint32_t *uids,
            size_t count, enum node_flag_op op, const char *const *flags,
            size_t flag_count, uint64_t unchangedsince, PGresult **res_r,
            const char **error_r)
{
	char modseq[24], since[24], *arr = uid_array(uids, count);
	char *joined = join_flags(flags, flag_count);
	const char *params[5] = {l->id, arr, num(modseq, l->modseq), joined,
	                         num(since, unchangedsince)};

	*res_r = node_store_q(st, set_flags_sql[op], 5, params, error_r);
	free(arr);
	free(joined);
	return *res_r != NULL ? NODE_STORE_OK : NODE_STORE_TEMPFAIL;
}

enum node_store_result
node_store_set_flags(struct node_store *st, uint32_t shard, uint64_t epoch,
                     uint64_t mailbox_id, const uint32_t *uids, size_t count,
                     enum node_flag_op op, const char *const *flags,
                     size_t flag_count, uint64_t unchangedsince,
                     struct node_msg_list *changed_r, uint32_t **failed_r,
                     size_t *failed_count_r, const char **error_r)
{
	struct locked l;
	PGresult *res = NULL;
	enum node_store_result r;
	int changed = 0, n;

	memset(changed_r, 0, sizeof(*changed_r));
	*failed_r = NULL;
	*failed_count_r = 0;
	r = node_store_begin_fenced(st, shard, epoch, error_r);
	if (r == NODE_STORE_OK)
		r = lock_mailbox(st, mailbox_id, 0, &l, error_r);
	if (r == NODE_STORE_OK && count > 0)
		r = store_flags(st, &l, uids, count, op, flags, flag_count,
		                unchangedsince, &res, error_r);
	if (r == NODE_STORE_OK && res != NULL)
		changed = kind0_rows(res);
	/* The mailbox's MODSEQ moves only when some message's did. */
	if (r == NODE_STORE_OK && changed > 0)
		r = bump(st, &l, 0, error_r);
	r = node_store_finish(st, r, error_r);
	if (r == NODE_STORE_OK && res != NULL) {
		n = PQntuples(res);
		read_msgs(res, 0, changed, 1, changed_r);
		*failed_count_r = (size_t)(n - changed);
		*failed_r = read_uids(res, changed, n - changed, 1);
	}
	PQclear(res);
	return r;
}

/* Inside a fenced transaction: remove messages of the locked mailbox
 * (sql: one of the EXPUNGE_SQL, arr its $3), recorded as expunged with
 * the mailbox's new MODSEQ, which is bumped when any went. *res_r holds
 * their UIDs ascending (PQclear it). */
static enum node_store_result
remove_msgs(struct node_store *st, const struct locked *l, const char *sql,
            const char *arr, PGresult **res_r, const char **error_r)
{
	char modseq[24];
	const char *params[3] = {l->id, num(modseq, l->modseq), arr};

	*res_r = node_store_q(st, sql, 3, params, error_r);
	if (*res_r == NULL)
		return NODE_STORE_TEMPFAIL;
	if (PQntuples(*res_r) > 0)
		return bump(st, l, 0, error_r);
	return NODE_STORE_OK;
}

enum node_store_result
node_store_expunge(struct node_store *st, uint32_t shard, uint64_t epoch,
                   uint64_t mailbox_id, const uint32_t *uids, size_t count,
                   uint32_t **expunged_r, size_t *expunged_count_r,
                   const char **error_r)
{
	struct locked l;
	char *arr = uids != NULL ? uid_array(uids, count) : NULL;
	PGresult *res = NULL;
	enum node_store_result r;

	*expunged_r = NULL;
	*expunged_count_r = 0;
	r = node_store_begin_fenced(st, shard, epoch, error_r);
	if (r == NODE_STORE_OK)
		r = lock_mailbox(st, mailbox_id, 0, &l, error_r);
	if (r == NODE_STORE_OK)
		r = remove_msgs(st, &l, expunge_deleted_sql, arr, &res,
		                error_r);
	r = node_store_finish(st, r, error_r);
	if (r == NODE_STORE_OK) {
		*expunged_count_r = (size_t)PQntuples(res);
		*expunged_r = read_uids(res, 0, PQntuples(res), 0);
	}
	PQclear(res);
	free(arr);
	return r;
}

/* ---- copy and move ---- */

/* Inside a fenced transaction: the listed messages of src that exist
 * (*res_r: their UIDs ascending) and their total size. */
static enum node_store_result
select_sources(struct node_store *st, const struct locked *src, const char *arr,
               PGresult **res_r, uint64_t *bytes_r, const char **error_r)
{
	const char *params[2] = {src->id, arr};

	*res_r = node_store_q(
	        st,
	        "SELECT uid, size FROM messages WHERE mailbox_id = $1"
	        " AND uid = ANY($2::bigint[]) ORDER BY uid",
	        2, params, error_r);
	if (*res_r == NULL)
		return NODE_STORE_TEMPFAIL;
	*bytes_r = 0;
	for (int i = 0; i < PQntuples(*res_r); i++)
		*bytes_r += u64(*res_r, i, 1);
	return NODE_STORE_OK;
}

/* Inside a fenced transaction: copy them into dst with UIDs from its
 * uidnext in source UID order, keeping flags and INTERNALDATE. */
static enum node_store_result
insert_copies(struct node_store *st, const struct locked *src, const char *arr,
              const struct locked *dst, size_t count, const char **error_r)
{
	char uid[24], modseq[24];
	const char *params[5] = {src->id, arr, dst->id, num(uid, dst->uidnext),
	                         num(modseq, dst->modseq)};
	PGresult *res = node_store_q(
	        st,
	        "INSERT INTO messages (mailbox_id, uid, modseq, blob_sha256,"
	        " size, internaldate, flags, envelope, bodystructure)"
	        " SELECT $3, $4::bigint - 1 + row_number() OVER (ORDER BY uid),"
	        " $5, blob_sha256, size, internaldate, flags, envelope,"
	        " bodystructure FROM messages"
	        " WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])",
	        5, params, error_r);

	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	PQclear(res);
	return bump(st, dst, count, error_r);
}

enum node_store_result
node_store_copy(struct node_store *st, uint32_t shard, uint64_t epoch,
                uint64_t account_id, uint64_t mailbox_id, const uint32_t *uids,
                size_t count, uint64_t target_id, bool move,
                uint64_t quota_bytes, struct node_copy_result *result,
                const char **error_r)
{
	struct locked src, dst;
	char *arr = uid_array(uids, count);
	PGresult *res = NULL, *removed = NULL;
	uint64_t bytes = 0;
	size_t n = 0;
	enum node_store_result r;

	memset(result, 0, sizeof(*result));
	r = node_store_begin_fenced(st, shard, epoch, error_r);
	if (r == NODE_STORE_OK)
		r = lock_mailbox(st, mailbox_id, account_id, &src, error_r);
	if (r == NODE_STORE_OK)
		r = lock_mailbox(st, target_id, account_id, &dst, error_r);
	if (r == NODE_STORE_OK)
		r = select_sources(st, &src, arr, &res, &bytes, error_r);
	if (r == NODE_STORE_OK)
		n = (size_t)PQntuples(res);
	/* A move leaves the account's usage as it is. */
	if (r == NODE_STORE_OK && !move && n > 0)
		r = node_store_check_quota(st, account_id, bytes, quota_bytes,
		                           error_r);
	if (r == NODE_STORE_OK && n > 0)
		r = insert_copies(st, &src, arr, &dst, n, error_r);
	if (r == NODE_STORE_OK && n > 0 && move)
		r = remove_msgs(st, &src, expunge_listed_sql, arr, &removed,
		                error_r);
	r = node_store_finish(st, r, error_r);
	if (r == NODE_STORE_OK) {
		result->uidvalidity = dst.uidvalidity;
		result->count = n;
		result->src_uids = read_uids(res, 0, (int)n, 0);
		result->dst_uids =
		        n > 0 ? mc_calloc(n, sizeof(uint32_t)) : NULL;
		for (size_t i = 0; i < n; i++)
			result->dst_uids[i] = (uint32_t)(dst.uidnext + i);
	}
	PQclear(removed);
	PQclear(res);
	free(arr);
	return r;
}

/* ---- mailbox management ---- */

/* Inside a fenced transaction: the missing superior names of name ("a"
 * and "a/b" for "a/b/c"; RFC 3501 CREATE and RENAME: the server SHOULD
 * create them). INBOX always exists. */
static enum node_store_result
create_parents(struct node_store *st, uint32_t shard, uint64_t account_id,
               const char *name, const char **error_r)
{
	char acc[24], shard_s[24];
	const char *params[3] = {num(acc, account_id), num(shard_s, shard),
	                         name};
	PGresult *res = node_store_q(
	        st,
	        "INSERT INTO mailboxes (account_id, shard, name, uidvalidity)"
	        " SELECT $1, $2, array_to_string(p[1:i], '/'),"
	        " " NODE_STORE_UIDVALIDITY_SQL
	        " FROM string_to_array($3::text, '/') AS p,"
	        " generate_series(1, cardinality(p) - 1) AS i WHERE p[i] <> ''"
	        " AND upper(array_to_string(p[1:i], '/')) <> 'INBOX'"
	        " ON CONFLICT DO NOTHING",
	        3, params, error_r);

	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	PQclear(res);
	return NODE_STORE_OK;
}

/* Inside a fenced transaction: a new mailbox (its superior names first),
 * starting from like's UIDNEXT and HIGHESTMODSEQ when like (an id) is not
 * NULL. EXISTS when name is taken. */
static enum node_store_result
create_mailbox(struct node_store *st, uint32_t shard, uint64_t account_id,
               const char *name, const char *special_use, const char *like,
               char id_r[24], const char **error_r)
{
	char acc[24], shard_s[24];
	const char *params[5] = {num(acc, account_id), num(shard_s, shard),
	                         name, special_use, like};
	enum node_store_result r =
	        create_parents(st, shard, account_id, name, error_r);
	PGresult *res;

	if (r != NODE_STORE_OK)
		return r;
	res = node_store_q(
	        st,
	        "INSERT INTO mailboxes (account_id, shard, name, special_use,"
	        " uidvalidity, uidnext, highestmodseq) VALUES ($1, $2, $3, $4,"
	        " " NODE_STORE_UIDVALIDITY_SQL ","
	        " coalesce((SELECT uidnext FROM mailboxes WHERE id = $5), 1),"
	        " coalesce((SELECT highestmodseq FROM mailboxes"
	        " WHERE id = $5), 1)) ON CONFLICT DO NOTHING RETURNING id",
	        5, params, error_r);
	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		*error_r = mc_errorf("mailbox %s already exists", name);
		return NODE_STORE_EXISTS;
	}
	snprintf(id_r, 24, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return NODE_STORE_OK;
}

enum node_store_result
node_store_create_mailbox(struct node_store *st, uint32_t shard, uint64_t epoch,
                          uint64_t account_id, const char *name,
                          const char *special_use, const char **error_r)
{
	size_t len = strlen(name);
	char id[24], *trimmed = NULL;
	enum node_store_result r;

	/* "a/" declares that names will be created below "a": create "a". */
	while (len > 1 && name[len - 1] == '/')
		len--;
	if (name[len] != '\0')
		name = trimmed = mc_strndup(name, len);
	r = node_store_begin_fenced(st, shard, epoch, error_r);
	if (r == NODE_STORE_OK)
		r = create_mailbox(st, shard, account_id, name, special_use,
		                   NULL, id, error_r);
	r = node_store_finish(st, r, error_r);
	free(trimmed);
	return r;
}

/* One fenced statement on one named mailbox: NOTFOUND when it returned no
 * row. $1 account, $2 name, $3 extra (may be unused: then NULL). */
static enum node_store_result
fenced_on_mailbox(struct node_store *st, uint32_t shard, uint64_t epoch,
                  uint64_t account_id, const char *name, const char *sql,
                  const char *extra, const char **error_r)
{
	char acc[24];
	const char *params[3] = {num(acc, account_id), name, extra};
	enum node_store_result r =
	        node_store_begin_fenced(st, shard, epoch, error_r);
	PGresult *res = NULL;

	if (r == NODE_STORE_OK &&
	    (res = node_store_q(st, sql, extra != NULL ? 3 : 2, params,
	                        error_r)) == NULL)
		r = NODE_STORE_TEMPFAIL;
	if (r == NODE_STORE_OK && PQntuples(res) == 0) {
		*error_r = mc_errorf("mailbox %s does not exist", name);
		r = NODE_STORE_NOTFOUND;
	}
	PQclear(res);
	return node_store_finish(st, r, error_r);
}

enum node_store_result
node_store_delete_mailbox(struct node_store *st, uint32_t shard, uint64_t epoch,
                          uint64_t account_id, const char *name,
                          const char **error_r)
{
	/* Messages and expunged rows go by ON DELETE CASCADE; the running
	 * totals go with the row. */
	return fenced_on_mailbox(st, shard, epoch, account_id, name,
	                         "DELETE FROM mailboxes WHERE account_id = $1"
	                         " AND name = $2 RETURNING id",
	                         NULL, error_r);
}

enum node_store_result
node_store_subscribe(struct node_store *st, uint32_t shard, uint64_t epoch,
                     uint64_t account_id, const char *name, bool subscribed,
                     const char **error_r)
{
	return fenced_on_mailbox(
	        st, shard, epoch, account_id, name,
	        "UPDATE mailboxes SET subscribed = $3::boolean"
	        " WHERE account_id = $1 AND name = $2 RETURNING id",
	        subscribed ? "t" : "f", error_r);
}

/* Inside a fenced transaction: RFC 3501 6.3.5, renaming INBOX moves its
 * messages (same UIDs and MODSEQs, under the new mailbox's fresh
 * UIDVALIDITY) into a new mailbox; INBOX stays, empty, and its sessions
 * see the messages expunged. Inferior names of INBOX are unaffected. */
static enum node_store_result
rename_inbox(struct node_store *st, uint32_t shard, uint64_t account_id,
             const char *to, const char **error_r)
{
	char acc[24], new_id[24];
	const char *params[2] = {num(acc, account_id), NULL};
	struct locked inbox;
	PGresult *res;
	enum node_store_result r;

	res = node_store_q(st,
	                   "SELECT id FROM mailboxes WHERE account_id = $1"
	                   " AND name = 'INBOX'",
	                   1, params, error_r);
	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	r = PQntuples(res) == 0 ? NODE_STORE_NOTFOUND : NODE_STORE_OK;
	if (r == NODE_STORE_OK)
		r = lock_mailbox(st, u64(res, 0, 0), account_id, &inbox,
		                 error_r);
	else
		*error_r = mc_errorf("mailbox INBOX does not exist");
	PQclear(res);
	if (r == NODE_STORE_OK)
		r = create_mailbox(st, shard, account_id, to, NULL, inbox.id,
		                   new_id, error_r);
	if (r != NODE_STORE_OK)
		return r;
	params[0] = inbox.id;
	params[1] = new_id;
	res = node_store_q(
	        st,
	        "INSERT INTO messages (mailbox_id, uid, modseq, blob_sha256,"
	        " size, internaldate, flags, delivery_id, envelope,"
	        " bodystructure) SELECT $2, uid, modseq, blob_sha256, size,"
	        " internaldate, flags, delivery_id, envelope, bodystructure"
	        " FROM messages WHERE mailbox_id = $1",
	        2, params, error_r);
	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	PQclear(res);
	r = remove_msgs(st, &inbox, expunge_listed_sql, NULL, &res, error_r);
	PQclear(res);
	return r;
}

/* Inside a fenced transaction: from and every mailbox below it get the
 * new prefix, keeping their ids, UIDVALIDITY and messages. */
static enum node_store_result
rename_tree(struct node_store *st, uint32_t shard, uint64_t account_id,
            const char *from, const char *to, const char **error_r)
{
	char acc[24];
	const char *params[3] = {num(acc, account_id), from, to};
	size_t len = strlen(from);
	PGresult *res;
	bool found, taken;

	if (strncmp(to, from, len) == 0 && to[len] == '/') {
		*error_r = mc_errorf("cannot rename %s below itself", from);
		return NODE_STORE_EXISTS;
	}
	/* Whether from exists, and whether any new name is taken. */
	res = node_store_q(
	        st,
	        "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE account_id = $1"
	        " AND name = $2), EXISTS (SELECT 1 FROM mailboxes s"
	        " JOIN mailboxes t ON t.account_id = s.account_id"
	        " AND t.name = $3::text || substr(s.name, length($2::text) + 1)"
	        " WHERE s.account_id = $1 AND (s.name = $2"
	        " OR left(s.name, length($2::text) + 1) = $2::text || '/'))",
	        3, params, error_r);
	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	found = PQgetvalue(res, 0, 0)[0] == 't';
	taken = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	if (!found || taken) {
		*error_r = mc_errorf(found ? "mailbox %s already exists"
		                           : "mailbox %s does not exist",
		                     found ? to : from);
		return found ? NODE_STORE_EXISTS : NODE_STORE_NOTFOUND;
	}
	if (create_parents(st, shard, account_id, to, error_r) != NODE_STORE_OK)
		return NODE_STORE_TEMPFAIL;
	res = node_store_q(
	        st,
	        "UPDATE mailboxes SET name = $3::text"
	        " || substr(name, length($2::text) + 1)"
	        " WHERE account_id = $1 AND (name = $2"
	        " OR left(name, length($2::text) + 1) = $2::text || '/')",
	        3, params, error_r);
	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	PQclear(res);
	return NODE_STORE_OK;
}

enum node_store_result
node_store_rename_mailbox(struct node_store *st, uint32_t shard, uint64_t epoch,
                          uint64_t account_id, const char *from, const char *to,
                          const char **error_r)
{
	enum node_store_result r =
	        node_store_begin_fenced(st, shard, epoch, error_r);

	if (r == NODE_STORE_OK && strcmp(from, "INBOX") == 0)
		r = rename_inbox(st, shard, account_id, to, error_r);
	else if (r == NODE_STORE_OK)
		r = rename_tree(st, shard, account_id, from, to, error_r);
	return node_store_finish(st, r, error_r);
}
