/* The mailboxes of the mailbox store (see store_imap.h; their messages
 * are store_imap.c's): reading and locking mailbox rows, listing,
 * STATUS and account usage, and the fenced management commands CREATE,
 * DELETE, RENAME and (UN)SUBSCRIBE. Each write is one transaction that
 * starts with the shard fence (store_private.h). Superior names are
 * created as the RFC 3501 SHOULD asks, a mailbox's messages go with it
 * by ON DELETE CASCADE, and renaming INBOX moves its messages out rather
 * than renaming the row (RFC 3501 6.3.5). */
#include "store_imap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "error.h"
#include "mem.h"
#include "store_private.h"

/* ---- mailbox rows ---- */

void
node_store_read_mailbox(const PGresult *res, int row, struct node_mailbox *mb)
{
	mb->id = node_store_u64(res, row, 0);
	mb->name = mc_strdup(PQgetvalue(res, row, 1));
	mb->special_use = node_store_str_or_null(res, row, 2);
	mb->subscribed = PQgetvalue(res, row, 3)[0] == 't';
	mb->uidvalidity = (uint32_t)node_store_u64(res, row, 4);
	mb->uidnext = (uint32_t)node_store_u64(res, row, 5);
	mb->highestmodseq = node_store_u64(res, row, 6);
}

/* Inside a fenced transaction: lock mailbox id (checking it belongs to
 * account_id unless that is 0). NOTFOUND when there is none. */
enum node_store_result
node_store_lock_mailbox(struct node_store *st, uint64_t id, uint64_t account_id,
                        struct node_store_locked *l, const char **error_r)
{
	char acc[24];
	const char *params[2] = {node_store_num(l->id, id),
	                         node_store_num(acc, account_id)};
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
		l->uidnext = node_store_u64(res, 0, 0);
		l->modseq = node_store_u64(res, 0, 1);
		l->uidvalidity = (uint32_t)node_store_u64(res, 0, 2);
	}
	PQclear(res);
	return r;
}

/* Give the locked mailbox its new HIGHESTMODSEQ (and added UIDs). */
enum node_store_result
node_store_bump(struct node_store *st, const struct node_store_locked *l,
                size_t added, const char **error_r)
{
	char modseq[24], n[24];
	const char *params[3] = {l->id, node_store_num(modseq, l->modseq),
	                         node_store_num(n, added)};
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

/* ---- reading ---- */

enum node_store_result
node_store_list_mailboxes(struct node_store *st, uint64_t account_id,
                          struct node_mailbox_list *list_r,
                          const char **error_r)
{
	char acc[24];
	const char *params[1] = {node_store_num(acc, account_id)};
	PGresult *res = NULL;
	enum node_store_result r;

	memset(list_r, 0, sizeof(*list_r));
	r = node_store_read1(st,
	                     "SELECT " NODE_STORE_MAILBOX_COLS
	                     " FROM mailboxes WHERE account_id = $1"
	                     " ORDER BY name COLLATE \"C\"",
	                     1, params, NULL, &res, error_r);
	if (r != NODE_STORE_OK)
		return r;
	list_r->count = (size_t)PQntuples(res);
	if (list_r->count > 0)
		list_r->items =
		        mc_calloc(list_r->count, sizeof(*list_r->items));
	for (size_t i = 0; i < list_r->count; i++)
		node_store_read_mailbox(res, (int)i, &list_r->items[i]);
	PQclear(res);
	return NODE_STORE_OK;
}

enum node_store_result
node_store_status(struct node_store *st, uint64_t account_id, const char *name,
                  struct node_mailbox_status *status_r, const char **error_r)
{
	char acc[24];
	const char *params[2] = {node_store_num(acc, account_id), name};
	PGresult *res = NULL;
	enum node_store_result r;

	memset(status_r, 0, sizeof(*status_r));
	r = node_store_read1(
	        st,
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
	status_r->messages = (uint32_t)node_store_u64(res, 0, 0);
	status_r->unseen = (uint32_t)node_store_u64(res, 0, 1);
	status_r->deleted = (uint32_t)node_store_u64(res, 0, 2);
	status_r->uidnext = (uint32_t)node_store_u64(res, 0, 3);
	status_r->uidvalidity = (uint32_t)node_store_u64(res, 0, 4);
	status_r->highestmodseq = node_store_u64(res, 0, 5);
	status_r->size = node_store_u64(res, 0, 6);
	PQclear(res);
	return NODE_STORE_OK;
}

enum node_store_result
node_store_usage(struct node_store *st, uint64_t account_id, uint64_t *bytes_r,
                 uint64_t *messages_r, const char **error_r)
{
	char acc[24];
	const char *params[1] = {node_store_num(acc, account_id)};
	PGresult *res = NULL;
	enum node_store_result r;

	/* Running totals per mailbox (0003_imap.sql): no scan of messages. */
	r = node_store_read1(st,
	                     "SELECT coalesce(sum(message_bytes), 0),"
	                     " coalesce(sum(message_count), 0) FROM mailboxes"
	                     " WHERE account_id = $1",
	                     1, params, NULL, &res, error_r);
	if (r != NODE_STORE_OK)
		return r;
	*bytes_r = node_store_u64(res, 0, 0);
	*messages_r = node_store_u64(res, 0, 1);
	PQclear(res);
	return NODE_STORE_OK;
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
	const char *params[3] = {node_store_num(acc, account_id),
	                         node_store_num(shard_s, shard), name};
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
	const char *params[5] = {node_store_num(acc, account_id),
	                         node_store_num(shard_s, shard), name,
	                         special_use, like};
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
	const char *params[3] = {node_store_num(acc, account_id), name, extra};
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
	const char *params[2] = {node_store_num(acc, account_id), NULL};
	struct node_store_locked inbox;
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
		r = node_store_lock_mailbox(st, node_store_u64(res, 0, 0),
		                            account_id, &inbox, error_r);
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
	        " bodystructure, imap_envelope, search_headers) SELECT $2, uid,"
	        " modseq, blob_sha256, size, internaldate, flags, delivery_id,"
	        " envelope, bodystructure, imap_envelope, search_headers"
	        " FROM messages WHERE mailbox_id = $1",
	        2, params, error_r);
	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	PQclear(res);
	return node_store_empty_mailbox(st, &inbox, error_r);
}

/* Inside a fenced transaction: from and every mailbox below it get the
 * new prefix, keeping their ids, UIDVALIDITY and messages. */
static enum node_store_result
rename_tree(struct node_store *st, uint32_t shard, uint64_t account_id,
            const char *from, const char *to, const char **error_r)
{
	char acc[24];
	const char *params[3] = {node_store_num(acc, account_id), from, to};
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
