/* The messages of the mailbox store as the IMAP server uses them (see
 * store_imap.h; mailbox rows are store_mailbox.c's): the selected
 * mailbox and what changed in it, FETCH metadata, flags, expunge, copy
 * and move. Same connection and fencing as store.c (store_private.h):
 * every write is one transaction that starts with the shard fence, then
 * locks the mailbox row it changes (node_store_lock_mailbox) and reads
 * the MODSEQ the write will give, highestmodseq + 1; the row is bumped
 * to it at the end only when something changed. Reads of more than one
 * statement run in one REPEATABLE READ snapshot so the mailbox row and
 * its messages agree.
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

#define MSG_COLS "uid, modseq, array_to_string(flags, ' ')"

/* ---- small helpers ---- */

const char *
node_store_num(char buf[24], uint64_t v)
{
	snprintf(buf, 24, "%llu", (unsigned long long)v);
	return buf;
}

uint64_t
node_store_u64(const PGresult *res, int row, int col)
{
	return strtoull(PQgetvalue(res, row, col), NULL, 10);
}

char *
node_store_str_or_null(const PGresult *res, int row, int col)
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
		uids[i] = (uint32_t)node_store_u64(res, first + i, col);
	return uids;
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

		m->uid = (uint32_t)node_store_u64(res, i, col);
		m->modseq = node_store_u64(res, i, col + 1);
		m->flags = mc_strdup(PQgetvalue(res, i, col + 2));
	}
}

/* One read statement outside a transaction: OK with *res_r, NOTFOUND
 * (error names what) when it returned no row, TEMPFAIL. */
enum node_store_result
node_store_read1(struct node_store *st, const char *sql, int n,
                 const char *const *params, const char *what, PGresult **res_r,
                 const char **error_r)
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

/* ---- freeing ---- */

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
		free(rows[i].imap_envelope);
		free(rows[i].search_headers);
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
node_store_select(struct node_store *st, uint64_t account_id, const char *name,
                  struct node_mailbox *mb_r, struct node_msg_list *msgs_r,
                  const char **error_r)
{
	char acc[24];
	const char *params[2] = {node_store_num(acc, account_id), name};
	PGresult *res = NULL;
	enum node_store_result r = begin_snapshot(st, error_r);

	memset(mb_r, 0, sizeof(*mb_r));
	memset(msgs_r, 0, sizeof(*msgs_r));
	if (r == NODE_STORE_OK &&
	    (res = node_store_q(st,
	                        "SELECT " NODE_STORE_MAILBOX_COLS
	                        " FROM mailboxes"
	                        " WHERE account_id = $1 AND name = $2",
	                        2, params, error_r)) == NULL)
		r = NODE_STORE_TEMPFAIL;
	if (r == NODE_STORE_OK && PQntuples(res) == 0) {
		*error_r = mc_errorf("mailbox %s does not exist", name);
		r = NODE_STORE_NOTFOUND;
	}
	if (r == NODE_STORE_OK) {
		node_store_read_mailbox(res, 0, mb_r);
		PQclear(res);
		params[0] = node_store_num(acc, mb_r->id);
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
	const char *params[2] = {id, node_store_num(since_s, since)};
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
	static const char sql[] = "SELECT " NODE_STORE_MAILBOX_COLS
	                          " FROM mailboxes WHERE id = $1";
	char id[24], what[32];
	const char *params[1] = {node_store_num(id, mailbox_id)};
	PGresult *res = NULL;
	enum node_store_result r;

	memset(mb_r, 0, sizeof(*mb_r));
	memset(changed_r, 0, sizeof(*changed_r));
	*expunged_r = NULL;
	*expunged_count_r = 0;
	snprintf(what, sizeof(what), "id %s", id);
	/* The common case (nothing new) is one statement, no transaction. */
	r = node_store_read1(st, sql, 1, params, what, &res, error_r);
	if (r != NODE_STORE_OK)
		return r;
	node_store_read_mailbox(res, 0, mb_r);
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
		node_store_read_mailbox(res, 0, mb_r);
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
                 const uint32_t *uids, size_t count, unsigned what,
                 struct node_msg_full **rows_r, size_t *count_r,
                 const char **error_r)
{
	char id[24], *arr;
	const char *params[5] = {
	        node_store_num(id, mailbox_id), NULL,
	        (what & NODE_FETCH_STRUCTURE) ? "t" : "f",
	        (what & NODE_FETCH_ENVELOPE_JSON) ? "t" : "f",
	        (what & NODE_FETCH_SEARCH_HEADERS) ? "t" : "f"};
	PGresult *res = NULL;
	enum node_store_result r;
	int n;

	*rows_r = NULL;
	*count_r = 0;
	if (count == 0)
		return NODE_STORE_OK;
	params[1] = arr = uid_array(uids, count);
	r = node_store_read1(
	        st,
	        "SELECT " MSG_COLS
	        ", size, extract(epoch FROM internaldate)::bigint,"
	        " blob_sha256,"
	        " CASE WHEN $4::boolean OR imap_envelope IS NULL"
	        " THEN envelope::text END,"
	        " CASE WHEN $3::boolean THEN bodystructure::text END,"
	        " imap_envelope,"
	        " CASE WHEN $5::boolean THEN search_headers END"
	        " FROM messages WHERE mailbox_id = $1"
	        " AND uid = ANY($2::bigint[]) ORDER BY uid",
	        5, params, NULL, &res, error_r);
	free(arr);
	if (r != NODE_STORE_OK)
		return r;
	n = PQntuples(res);
	if (n > 0)
		*rows_r = mc_calloc((size_t)n, sizeof(**rows_r));
	for (int i = 0; i < n; i++) {
		struct node_msg_full *m = &(*rows_r)[i];

		m->uid = (uint32_t)node_store_u64(res, i, 0);
		m->modseq = node_store_u64(res, i, 1);
		m->flags = mc_strdup(PQgetvalue(res, i, 2));
		m->size = node_store_u64(res, i, 3);
		m->internaldate = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		snprintf(m->blob, sizeof(m->blob), "%s", PQgetvalue(res, i, 5));
		m->envelope = node_store_str_or_null(res, i, 6);
		m->bodystructure = node_store_str_or_null(res, i, 7);
		m->imap_envelope = node_store_str_or_null(res, i, 8);
		m->search_headers = node_store_str_or_null(res, i, 9);
	}
	*count_r = (size_t)n;
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
store_flags(struct node_store *st, const struct node_store_locked *l,
            const uint32_t *uids, size_t count, enum node_flag_op op,
            const char *const *flags, size_t flag_count,
            uint64_t unchangedsince, PGresult **res_r, const char **error_r)
{
	char modseq[24], since[24], *arr = uid_array(uids, count);
	char *joined = join_flags(flags, flag_count);
	const char *params[5] = {l->id, arr, node_store_num(modseq, l->modseq),
	                         joined, node_store_num(since, unchangedsince)};

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
	struct node_store_locked l;
	PGresult *res = NULL;
	enum node_store_result r;
	int changed = 0, n;

	memset(changed_r, 0, sizeof(*changed_r));
	*failed_r = NULL;
	*failed_count_r = 0;
	r = node_store_begin_fenced(st, shard, epoch, error_r);
	if (r == NODE_STORE_OK)
		r = node_store_lock_mailbox(st, mailbox_id, 0, &l, error_r);
	if (r == NODE_STORE_OK && count > 0)
		r = store_flags(st, &l, uids, count, op, flags, flag_count,
		                unchangedsince, &res, error_r);
	if (r == NODE_STORE_OK && res != NULL)
		changed = kind0_rows(res);
	/* The mailbox's MODSEQ moves only when some message's did. */
	if (r == NODE_STORE_OK && changed > 0)
		r = node_store_bump(st, &l, 0, error_r);
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
remove_msgs(struct node_store *st, const struct node_store_locked *l,
            const char *sql, const char *arr, PGresult **res_r,
            const char **error_r)
{
	char modseq[24];
	const char *params[3] = {l->id, node_store_num(modseq, l->modseq), arr};

	*res_r = node_store_q(st, sql, 3, params, error_r);
	if (*res_r == NULL)
		return NODE_STORE_TEMPFAIL;
	if (PQntuples(*res_r) > 0)
		return node_store_bump(st, l, 0, error_r);
	return NODE_STORE_OK;
}

/* For RENAME INBOX (store_mailbox.c). */
enum node_store_result
node_store_empty_mailbox(struct node_store *st,
                         const struct node_store_locked *l,
                         const char **error_r)
{
	PGresult *res = NULL;
	enum node_store_result r =
	        remove_msgs(st, l, expunge_listed_sql, NULL, &res, error_r);

	PQclear(res);
	return r;
}

enum node_store_result
node_store_expunge(struct node_store *st, uint32_t shard, uint64_t epoch,
                   uint64_t mailbox_id, const uint32_t *uids, size_t count,
                   uint32_t **expunged_r, size_t *expunged_count_r,
                   const char **error_r)
{
	struct node_store_locked l;
	char *arr = uids != NULL ? uid_array(uids, count) : NULL;
	PGresult *res = NULL;
	enum node_store_result r;

	*expunged_r = NULL;
	*expunged_count_r = 0;
	r = node_store_begin_fenced(st, shard, epoch, error_r);
	if (r == NODE_STORE_OK)
		r = node_store_lock_mailbox(st, mailbox_id, 0, &l, error_r);
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
select_sources(struct node_store *st, const struct node_store_locked *src,
               const char *arr, PGresult **res_r, uint64_t *bytes_r,
               const char **error_r)
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
		*bytes_r += node_store_u64(*res_r, i, 1);
	return NODE_STORE_OK;
}

/* Inside a fenced transaction: copy them into dst with UIDs from its
 * uidnext in source UID order, keeping flags and INTERNALDATE. */
static enum node_store_result
insert_copies(struct node_store *st, const struct node_store_locked *src,
              const char *arr, const struct node_store_locked *dst,
              size_t count, const char **error_r)
{
	char uid[24], modseq[24];
	const char *params[5] = {src->id, arr, dst->id,
	                         node_store_num(uid, dst->uidnext),
	                         node_store_num(modseq, dst->modseq)};
	PGresult *res = node_store_q(
	        st,
	        "INSERT INTO messages (mailbox_id, uid, modseq, blob_sha256,"
	        " size, internaldate, flags, envelope, bodystructure,"
	        " imap_envelope, search_headers)"
	        " SELECT $3, $4::bigint - 1 + row_number() OVER (ORDER BY uid),"
	        " $5, blob_sha256, size, internaldate, flags, envelope,"
	        " bodystructure, imap_envelope, search_headers FROM messages"
	        " WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])",
	        5, params, error_r);

	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	PQclear(res);
	return node_store_bump(st, dst, count, error_r);
}

enum node_store_result
node_store_copy(struct node_store *st, uint32_t shard, uint64_t epoch,
                uint64_t account_id, uint64_t mailbox_id, const uint32_t *uids,
                size_t count, uint64_t target_id, bool move,
                uint64_t quota_bytes, struct node_copy_result *result,
                const char **error_r)
{
	struct node_store_locked src, dst;
	char *arr = uid_array(uids, count);
	PGresult *res = NULL, *removed = NULL;
	uint64_t bytes = 0;
	size_t n = 0;
	enum node_store_result r;

	memset(result, 0, sizeof(*result));
	r = node_store_begin_fenced(st, shard, epoch, error_r);
	if (r == NODE_STORE_OK)
		r = node_store_lock_mailbox(st, mailbox_id, account_id, &src,
		                            error_r);
	if (r == NODE_STORE_OK)
		r = node_store_lock_mailbox(st, target_id, account_id, &dst,
		                            error_r);
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
