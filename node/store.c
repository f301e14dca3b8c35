/* The mailbox store's Postgres side; see store.h. Each write is one
 * transaction that starts with the shard fence (raising it to our epoch or
 * finding a newer one and aborting), so ownership and the write commit or
 * fail together. The fence row lock also orders writers of one shard. */
#include "store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "error.h"
#include "log.h"
#include "mem.h"
#include "pg_migrate.h"
#include "store_private.h"

/* Generated from node/migrations by mc_embed_migrations. */
extern const struct mc_migration store_migrations[];
extern const unsigned store_migration_count;

/* Advisory lock naming the store schema ("mailstor"). */
#define STORE_MIGRATION_LOCK 7813586727391212404LL

/* The mailboxes every account starts with (RFC 6154 roles). */
static const struct {
	const char *name;
	const char *special_use;
} default_mailboxes[] = {
	{"INBOX", NULL},         {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"},
	{"Trash", "\\Trash"},    {"Junk", "\\Junk"}, {"Archive", "\\Archive"},
};

static void
prepared_clear(struct node_store *st)
{
	for (size_t i = 0; i < st->nprepared; i++)
		free(st->prepared[i].text);
	st->nprepared = 0;
}

int
node_store_connect(struct node_store *st, const char **error_r)
{
	PGresult *res;

	if (st->pg != NULL && PQstatus(st->pg) == CONNECTION_OK)
		return 0;
	if (st->pg != NULL)
		PQfinish(st->pg);
	prepared_clear(st); /* they lived on the old connection */
	st->pg = PQconnectdb(st->conninfo);
	if (PQstatus(st->pg) != CONNECTION_OK) {
		*error_r = mc_errorf("store database: %s", PQerrorMessage(st->pg));
		PQfinish(st->pg);
		st->pg = NULL;
		return -1;
	}
	/* Prepared statements are parsed once but planned at every call
	 * with the real values: a generic plan for "uid = ANY($2)" can be
	 * far off for a large set. */
	res = PQexec(st->pg, "SET statement_timeout = '15s'; SET lock_timeout = '10s';"
	                     " SET TIME ZONE 'UTC';"
	                     " SET plan_cache_mode = force_custom_plan");
	PQclear(res);
	return 0;
}


/* The name sql is prepared under on this connection ("" when it cannot
 * be: the table is full or PQprepare failed; it then runs unprepared). */
static const char *
prepared_name(struct node_store *st, const char *sql, int n, char *name,
              size_t size)
{
	size_t i;
	PGresult *res;
	bool ok;

	for (i = 0; i < st->nprepared; i++)
		if (st->prepared[i].sql == sql &&
		    strcmp(st->prepared[i].text, sql) == 0)
			break;
	snprintf(name, size, "q%zu", i);
	if (i < st->nprepared)
		return name;
	if (i == NODE_STORE_PREPARED_MAX)
		return "";
	res = PQprepare(st->pg, name, sql, n, NULL);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
		return "";
	st->prepared[i].sql = sql;
	st->prepared[i].text = mc_strdup(sql);
	st->nprepared++;
	return name;
}

/* Run one statement; NULL with error_r on failure (the caller rolls back). */
PGresult *
node_store_q(struct node_store *st, const char *sql, int n,
             const char *const *params, const char **error_r)
{
	char buf[16];
	const char *name = prepared_name(st, sql, n, buf, sizeof(buf));
	PGresult *res =
	        name[0] != '\0'
	                ? PQexecPrepared(st->pg, name, n, params, NULL, NULL, 0)
	                : PQexecParams(st->pg, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType s = PQresultStatus(res);

	if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
		return res;
	*error_r = mc_errorf("store database: %s",
	                     PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
	                             ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
	                             : PQerrorMessage(st->pg));
	PQclear(res);
	return NULL;
}

int
node_store_exec0(struct node_store *st, const char *sql, const char **error_r)
{
	PGresult *res = node_store_q(st, sql, 0, NULL, error_r);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
node_store_open(const char *conninfo, struct node_store **store_r,
                const char **error_r)
{
	struct node_store *st = mc_malloc(sizeof(*st));

	st->conninfo = mc_strdup(conninfo);
	if (node_store_connect(st, error_r) < 0 ||
	    mc_pg_migrate(st->pg, store_migrations, store_migration_count,
	                  STORE_MIGRATION_LOCK, error_r) < 0) {
		node_store_close(&st);
		return -1;
	}
	*store_r = st;
	return 0;
}

void
node_store_close(struct node_store **stp)
{
	struct node_store *st = *stp;

	if (st == NULL)
		return;
	if (st->pg != NULL)
		PQfinish(st->pg);
	prepared_clear(st);
	free(st->conninfo);
	free(st);
	*stp = NULL;
}

enum node_store_result
node_store_begin_fenced(struct node_store *st, uint32_t shard, uint64_t epoch,
                        const char **error_r)
{
	char shard_s[16], epoch_s[24];
	const char *params[2] = {shard_s, epoch_s};
	PGresult *res;
	int rows;

	if (node_store_connect(st, error_r) < 0 ||
	    node_store_exec0(st, "BEGIN", error_r) < 0)
		return NODE_STORE_TEMPFAIL;
	snprintf(shard_s, sizeof(shard_s), "%u", shard);
	snprintf(epoch_s, sizeof(epoch_s), "%llu", (unsigned long long)epoch);
	res = node_store_q(st,
	                   "INSERT INTO shard_fence (shard, epoch) VALUES ($1, $2)"
	                   " ON CONFLICT (shard) DO UPDATE SET epoch = EXCLUDED.epoch"
	                   " WHERE shard_fence.epoch <= EXCLUDED.epoch RETURNING epoch",
	                   2, params, error_r);
	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	rows = PQntuples(res);
	PQclear(res);
	if (rows == 0) {
		*error_r = mc_errorf("shard %u is owned by a newer lease than epoch %llu",
		                     shard, (unsigned long long)epoch);
		return NODE_STORE_FENCED;
	}
	return NODE_STORE_OK;
}

enum node_store_result
node_store_finish(struct node_store *st, enum node_store_result r,
                  const char **error_r)
{
	if (r == NODE_STORE_OK || r == NODE_STORE_DUPLICATE) {
		if (node_store_exec0(st, "COMMIT", error_r) == 0)
			return r;
		r = NODE_STORE_TEMPFAIL;
	}
	if (st->pg != NULL && PQtransactionStatus(st->pg) != PQTRANS_IDLE)
		PQclear(PQexec(st->pg, "ROLLBACK"));
	if (st->pg != NULL && PQstatus(st->pg) != CONNECTION_OK) {
		PQfinish(st->pg); /* reconnect on the next call */
		st->pg = NULL;
	}
	return r;
}

/* Inside a fenced transaction. */
static int
create_defaults(struct node_store *st, uint64_t account_id, uint32_t shard,
                const char **error_r)
{
	char acc[24], shard_s[16];

	snprintf(acc, sizeof(acc), "%llu", (unsigned long long)account_id);
	snprintf(shard_s, sizeof(shard_s), "%u", shard);
	for (size_t i = 0; i < sizeof(default_mailboxes) / sizeof(default_mailboxes[0]);
	     i++) {
		const char *params[4] = {acc, shard_s, default_mailboxes[i].name,
		                         default_mailboxes[i].special_use};
		PGresult *res = node_store_q(
		        st,
		        /* WHERE NOT EXISTS: no UIDVALIDITY is drawn for a
		         * mailbox that is already there (every login asks). */
		        "INSERT INTO mailboxes (account_id, shard, name, special_use,"
		        " uidvalidity) SELECT $1::bigint, $2::integer, $3, $4, "
		        NODE_STORE_UIDVALIDITY_SQL " WHERE NOT EXISTS (SELECT 1 FROM"
		        " mailboxes WHERE account_id = $1::bigint AND name = $3)"
		        " ON CONFLICT DO NOTHING",
		        4, params, error_r);

		if (res == NULL)
			return -1;
		PQclear(res);
	}
	return 0;
}

enum node_store_result
node_store_ensure_mailboxes(struct node_store *st, uint64_t account_id,
                            uint32_t shard, uint64_t epoch, const char **error_r)
{
	enum node_store_result r =
	        node_store_begin_fenced(st, shard, epoch, error_r);

	if (r == NODE_STORE_OK && create_defaults(st, account_id, shard, error_r) < 0)
		r = NODE_STORE_TEMPFAIL;
	return node_store_finish(st, r, error_r);
}

/* The mailbox row one new message takes its UID and MODSEQ from. */
struct target {
	char id[24];
	uint64_t uid, modseq;
	uint32_t uidvalidity;
};

/* UID and MODSEQ for one new message; creates the defaults on first use
 * (unless no_create). */
static enum node_store_result
allocate_uid(struct node_store *st, const struct node_delivery *d,
             const char *acc, struct target *t, const char **error_r)
{
	const char *params[2] = {acc, d->mailbox};

	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *res = node_store_q(
		        st,
		        "UPDATE mailboxes SET uidnext = uidnext + 1,"
		        " highestmodseq = highestmodseq + 1"
		        " WHERE account_id = $1 AND name = $2"
		        " RETURNING id, uidnext - 1, highestmodseq, uidvalidity",
		        2, params, error_r);

		if (res == NULL)
			return NODE_STORE_TEMPFAIL;
		if (PQntuples(res) == 1) {
			snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(res, 0, 0));
			t->uid = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
			t->modseq = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
			t->uidvalidity = (uint32_t)strtoul(PQgetvalue(res, 0, 3), NULL, 10);
			PQclear(res);
			return NODE_STORE_OK;
		}
		PQclear(res);
		if (d->no_create)
			break;
		if (attempt == 0 && create_defaults(st, d->account_id, d->shard, error_r) < 0)
			return NODE_STORE_TEMPFAIL;
	}
	*error_r = mc_errorf("mailbox %s does not exist", d->mailbox);
	return d->no_create ? NODE_STORE_NOTFOUND : NODE_STORE_TEMPFAIL;
}

/* A redelivery of delivery_id: the UID it got the first time. */
static enum node_store_result
find_duplicate(struct node_store *st, const struct node_delivery *d,
               const char *acc, struct target *t, const char **error_r)
{
	const char *params[3] = {acc, d->mailbox, d->delivery_id};
	PGresult *res = node_store_q(st,
	                             "SELECT m.uid, b.uidvalidity FROM messages m"
	                             " JOIN mailboxes b ON b.id = m.mailbox_id"
	                             " WHERE b.account_id = $1 AND b.name = $2"
	                             " AND m.delivery_id = $3",
	                             3, params, error_r);
	bool found;

	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	found = PQntuples(res) > 0;
	if (found) {
		t->uid = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		t->uidvalidity = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
	}
	PQclear(res);
	return found ? NODE_STORE_DUPLICATE : NODE_STORE_OK;
}

enum node_store_result
node_store_check_quota(struct node_store *st, uint64_t account_id,
                       uint64_t adding, uint64_t quota_bytes, const char **error_r)
{
	char acc[24];
	const char *params[1] = {acc};
	PGresult *res;
	uint64_t used;

	if (quota_bytes == 0)
		return NODE_STORE_OK;
	snprintf(acc, sizeof(acc), "%llu", (unsigned long long)account_id);
	res = node_store_q(st,
	                   "SELECT coalesce(sum(message_bytes), 0) FROM mailboxes"
	                   " WHERE account_id = $1",
	                   1, params, error_r);
	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	used = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (used + adding <= quota_bytes && used + adding >= used)
		return NODE_STORE_OK;
	*error_r = mc_errorf("quota exceeded: %llu of %llu bytes used, %llu more",
	                     (unsigned long long)used,
	                     (unsigned long long)quota_bytes,
	                     (unsigned long long)adding);
	return NODE_STORE_OVERQUOTA;
}

static enum node_store_result
insert_message(struct node_store *st, const struct node_delivery *d,
               const struct target *t, const char **error_r)
{
	char uid_s[24], modseq_s[24], size_s[24], date_s[24];
	const char *params[12] = {t->id,         uid_s,
	                          modseq_s,      d->blob_sha256,
	                          size_s,        date_s,
	                          d->delivery_id, d->envelope_json,
	                          d->bodystructure_json, d->flags,
	                          d->imap_envelope, d->search_headers};
	PGresult *res;

	snprintf(uid_s, sizeof(uid_s), "%llu", (unsigned long long)t->uid);
	snprintf(modseq_s, sizeof(modseq_s), "%llu", (unsigned long long)t->modseq);
	snprintf(size_s, sizeof(size_s), "%llu", (unsigned long long)d->size);
	snprintf(date_s, sizeof(date_s), "%lld", (long long)d->internaldate);
	res = node_store_q(st,
	                   "INSERT INTO messages (mailbox_id, uid, modseq, blob_sha256,"
	                   " size, internaldate, delivery_id, envelope, bodystructure,"
	                   " flags, imap_envelope, search_headers) VALUES ($1, $2,"
	                   " $3, $4, $5, to_timestamp($6), $7, $8::jsonb,"
	                   " $9::jsonb,"
	                   " imap_flags(string_to_array(coalesce($10, ''), ' ')),"
	                   " $11, $12)",
	                   12, params, error_r);
	if (res == NULL)
		return NODE_STORE_TEMPFAIL;
	PQclear(res);
	return NODE_STORE_OK;
}

enum node_store_result
node_store_deliver(struct node_store *st, const struct node_delivery *d,
                   uint64_t *uid_r, uint32_t *uidvalidity_r, const char **error_r)
{
	char acc[24];
	struct target t = {.uid = 0};
	enum node_store_result r =
	        node_store_begin_fenced(st, d->shard, d->epoch, error_r);

	snprintf(acc, sizeof(acc), "%llu", (unsigned long long)d->account_id);
	if (r == NODE_STORE_OK && d->delivery_id != NULL)
		r = find_duplicate(st, d, acc, &t, error_r);
	if (r == NODE_STORE_OK)
		r = node_store_check_quota(st, d->account_id, d->size, d->quota_bytes, error_r);
	if (r == NODE_STORE_OK)
		r = allocate_uid(st, d, acc, &t, error_r);
	if (r == NODE_STORE_OK)
		r = insert_message(st, d, &t, error_r);
	r = node_store_finish(st, r, error_r);
	if (r == NODE_STORE_OK || r == NODE_STORE_DUPLICATE) {
		*uid_r = t.uid;
		if (uidvalidity_r != NULL)
			*uidvalidity_r = t.uidvalidity;
	}
	return r;
}

int
node_store_mailbox_stats(struct node_store *st, uint64_t account_id,
                         const char *mailbox, uint64_t *count_r,
                         uint64_t *bytes_r, const char **error_r)
{
	char acc[24];
	const char *params[2] = {acc, mailbox};
	PGresult *res;

	if (node_store_connect(st, error_r) < 0)
		return -1;
	snprintf(acc, sizeof(acc), "%llu", (unsigned long long)account_id);
	res = node_store_q(st,
	                   "SELECT coalesce(sum(message_count), 0),"
	                   " coalesce(sum(message_bytes), 0) FROM mailboxes"
	                   " WHERE account_id = $1 AND name = $2",
	                   2, params, error_r);
	if (res == NULL)
		return -1;
	*count_r = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	*bytes_r = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return 0;
}
