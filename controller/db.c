/* The controller's Postgres connection and the query helpers handlers use
 * (see ctrl.h). Blocking libpq, used only from the serialised worker
 * thread, so the loop never waits on the database. A lost connection is
 * re-established on the next request; meanwhile requests get UNAVAILABLE
 * and nodes keep serving the directory they have. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl.h"
#include "error.h"
#include "log.h"
#include "mem.h"

#define CTRL_DB_MAX_PARAMS 12

/* Server notices ("relation already exists, skipping") go to the debug log
 * instead of raw to stderr. */
static void
notice_cb(void *arg, const char *message)
{
	(void)arg;
	mc_debug("postgres notice=\"%.*s\"", (int)strcspn(message, "\n"), message);
}

int
ctrl_db_connect(struct ctrl *c, const char **error_r)
{
	PGresult *res;

	if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK)
		return 0;
	ctrl_db_close(c);
	c->pg = PQconnectdb(c->conninfo);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		*error_r = mc_errorf("postgres: %s", PQerrorMessage(c->pg));
		ctrl_db_close(c);
		return -1;
	}
	PQsetNoticeProcessor(c->pg, notice_cb, NULL);
	/* A wedged query must not stall every admin request and heartbeat. */
	res = PQexec(c->pg, "SET statement_timeout = '10s'; "
	                    "SET lock_timeout = '5s'; SET TIME ZONE 'UTC'");
	PQclear(res);
	mc_info("postgres connected");
	return 0;
}

void
ctrl_db_close(struct ctrl *c)
{
	if (c->pg != NULL) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	if (c->store_pg != NULL) {
		PQfinish(c->store_pg);
		c->store_pg = NULL;
	}
}

int
ctrl_store_mailboxes(struct ctrl_req *r, uint64_t account_id,
                     Mc__MailboxInfo ***out_r, size_t *n_r, const char **error_r)
{
	struct ctrl *c = r->ctrl;
	const char *params[1] = {ctrl_u64(r, account_id)};
	PGresult *res;
	int n;

	if (c->store_conninfo == NULL) {
		*error_r = "the controller has no store_pg configured";
		return -1;
	}
	if (c->store_pg == NULL || PQstatus(c->store_pg) != CONNECTION_OK) {
		if (c->store_pg != NULL)
			PQfinish(c->store_pg);
		c->store_pg = PQconnectdb(c->store_conninfo);
		if (PQstatus(c->store_pg) != CONNECTION_OK) {
			*error_r = "mailbox store unavailable";
			mc_warn("store_pg: %s", PQerrorMessage(c->store_pg));
			PQfinish(c->store_pg);
			c->store_pg = NULL;
			return -1;
		}
		PQsetNoticeProcessor(c->store_pg, notice_cb, NULL);
	}
	res = PQexecParams(c->store_pg,
	                   "SELECT b.name, coalesce(b.special_use, ''), count(m.uid),"
	                   " coalesce(sum(m.size), 0) FROM mailboxes b"
	                   " LEFT JOIN messages m ON m.mailbox_id = b.id"
	                   " WHERE b.account_id = $1 GROUP BY b.id"
	                   " ORDER BY b.name <> 'INBOX', b.name",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		/* A store without its schema yet (no node started) has no
		 * mailboxes table: also "unavailable" for the operator. */
		*error_r = "mailbox store unavailable";
		mc_warn("store_pg query: %s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	*out_r = mc_pool_alloc(r->pool, sizeof(**out_r) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		Mc__MailboxInfo *mb = mc_pool_alloc(r->pool, sizeof(*mb));

		mc__mailbox_info__init(mb);
		mb->name = ctrl_row_str(r, res, i, 0);
		mb->special_use = ctrl_row_str(r, res, i, 1);
		mb->messages = ctrl_row_u64(res, i, 2);
		mb->bytes = ctrl_row_u64(res, i, 3);
		(*out_r)[i] = mb;
	}
	*n_r = (size_t)n;
	PQclear(res);
	return 0;
}

int
ctrl_fail(struct ctrl_req *r, Mc__Status status, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	r->resp->status = status;
	r->resp->error = mc_pool_strdup(r->pool, buf);
	return -1;
}

static PGresult *
vquery(struct ctrl_req *r, const char *sql, int n, va_list ap)
{
	const char *params[CTRL_DB_MAX_PARAMS];
	const char *err = NULL;
	const char *state;
	PGresult *res;
	ExecStatusType st;

	if (n > CTRL_DB_MAX_PARAMS)
		abort(); /* programming error */
	for (int i = 0; i < n; i++)
		params[i] = va_arg(ap, const char *);
	r->sqlstate = "";
	if (ctrl_db_connect(r->ctrl, &err) < 0) {
		mc_warn("request failed: %s", err);
		ctrl_fail(r, MC__STATUS__STATUS_UNAVAILABLE,
		          "database unavailable, try again later");
		return NULL;
	}
	res = PQexecParams(r->ctrl->pg, sql, n, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	r->sqlstate = mc_pool_strdup(r->pool, state != NULL ? state : "");
	if (PQstatus(r->ctrl->pg) != CONNECTION_OK) {
		mc_warn("postgres connection lost: %s", PQerrorMessage(r->ctrl->pg));
		ctrl_db_close(r->ctrl);
		ctrl_fail(r, MC__STATUS__STATUS_UNAVAILABLE,
		          "database unavailable, try again later");
	} else {
		/* Unique violations are turned into EXISTS by the caller. */
		if (strcmp(r->sqlstate, "23505") != 0)
			mc_error("query failed sqlstate=%s error=\"%s\"", r->sqlstate,
			         PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
		ctrl_fail(r, MC__STATUS__STATUS_INTERNAL, "internal database error");
	}
	PQclear(res);
	return NULL;
}

PGresult *
ctrl_query(struct ctrl_req *r, const char *sql, int n, ...)
{
	va_list ap;
	PGresult *res;

	va_start(ap, n);
	res = vquery(r, sql, n, ap);
	va_end(ap);
	return res;
}

int
ctrl_exec(struct ctrl_req *r, const char *sql, int n, ...)
{
	va_list ap;
	PGresult *res;

	va_start(ap, n);
	res = vquery(r, sql, n, ap);
	va_end(ap);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

const char *
ctrl_u64(struct ctrl_req *r, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return mc_pool_strdup(r->pool, buf);
}

const char *
ctrl_id_array(struct ctrl_req *r, uint64_t v)
{
	char buf[26];

	snprintf(buf, sizeof(buf), "{%llu}", (unsigned long long)v);
	return mc_pool_strdup(r->pool, buf);
}

uint64_t
ctrl_row_u64(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoull(PQgetvalue(res, row, col), NULL, 10);
}

char *
ctrl_row_str(struct ctrl_req *r, const PGresult *res, int row, int col)
{
	return mc_pool_strdup(r->pool, PQgetvalue(res, row, col));
}

int
ctrl_change(struct ctrl_req *r, enum ctrl_kind kind, uint64_t id,
            Mc__Change__Op op)
{
	char kbuf[4], obuf[4];

	if (r->new_version == 0) {
		/* The row lock on cluster also serialises concurrent writers
		 * (a future standby controller) into one version order. */
		PGresult *res = ctrl_query(r, "UPDATE cluster SET version = version + 1 "
		                              "RETURNING version", 0);
		if (res == NULL)
			return -1;
		r->new_version = ctrl_row_u64(res, 0, 0);
		PQclear(res);
	}
	snprintf(kbuf, sizeof(kbuf), "%d", (int)kind);
	snprintf(obuf, sizeof(obuf), "%d", (int)op);
	return ctrl_exec(r, "INSERT INTO change_log (version, kind, object_id, op) "
	                    "VALUES ($1, $2, $3, $4)",
	                 4, ctrl_u64(r, r->new_version), kbuf, ctrl_u64(r, id), obuf);
}

void
ctrl_secret_track(struct ctrl_req *r, char *s)
{
	if (r->n_secrets == r->cap_secrets) {
		char **grown;

		r->cap_secrets = r->cap_secrets != 0 ? 2 * r->cap_secrets : 8;
		grown = mc_pool_alloc(r->pool, r->cap_secrets * sizeof(*grown));
		if (r->n_secrets > 0)
			memcpy(grown, r->secrets, r->n_secrets * sizeof(*grown));
		r->secrets = grown;
	}
	r->secrets[r->n_secrets++] = s;
}

void
ctrl_secrets_wipe(struct ctrl_req *r)
{
	for (size_t i = 0; i < r->n_secrets; i++)
		mc_wipe(r->secrets[i], strlen(r->secrets[i]));
	r->n_secrets = 0;
}
