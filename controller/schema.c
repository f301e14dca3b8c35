/* Schema migrations: applies the embedded controller/migrations/NNNN_*.sql files that
 * the database has not seen, each in its own transaction, under an
 * advisory lock so two controllers starting together do not race. Then
 * makes sure the cluster row exists; its shard count is fixed at creation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl.h"
#include "error.h"
#include "log.h"
#include "migrations.h"

/* Arbitrary constant naming our advisory lock ("mailclus"). */
#define CTRL_MIGRATION_LOCK "7813586727391212403"

static int
exec_simple(PGconn *pg, const char *sql, const char **error_r)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		*error_r = mc_errorf("%s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

static int
applied_version(PGconn *pg, int *version_r, const char **error_r)
{
	PGresult *res;

	if (exec_simple(pg, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	                    " version integer PRIMARY KEY, name text NOT NULL,"
	                    " applied_at timestamptz NOT NULL DEFAULT now())",
	                error_r) < 0)
		return -1;
	res = PQexec(pg, "SELECT coalesce(max(version), 0) FROM schema_migrations");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = mc_errorf("%s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	*version_r = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static int
apply_one(PGconn *pg, const struct ctrl_migration *m, const char **error_r)
{
	char ver[16];
	const char *params[2] = {ver, m->name};
	PGresult *res;

	if (exec_simple(pg, "BEGIN", error_r) < 0)
		return -1;
	if (exec_simple(pg, m->sql, error_r) < 0)
		goto fail;
	snprintf(ver, sizeof(ver), "%d", m->version);
	res = PQexecParams(pg, "INSERT INTO schema_migrations (version, name) "
	                       "VALUES ($1, $2)",
	                   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		*error_r = mc_errorf("%s", PQresultErrorMessage(res));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (exec_simple(pg, "COMMIT", error_r) < 0)
		goto fail;
	mc_info("schema migration applied version=%d name=%s", m->version, m->name);
	return 0;
fail:
	*error_r = mc_errorf("migration %s: %s", m->name, *error_r);
	PQclear(PQexec(pg, "ROLLBACK"));
	return -1;
}

static int
init_cluster_row(struct ctrl *c, uint32_t shard_count, const char **error_r)
{
	char buf[16];
	const char *params[1] = {buf};
	PGresult *res;

	snprintf(buf, sizeof(buf), "%u", shard_count);
	res = PQexecParams(c->pg, "INSERT INTO cluster (shard_count) VALUES ($1) "
	                          "ON CONFLICT DO NOTHING",
	                   1, NULL, params, NULL, NULL, 0);
	PQclear(res);
	res = PQexec(c->pg, "SELECT version, shard_count FROM cluster");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		*error_r = mc_errorf("cannot read cluster row: %s",
		                     PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	c->published_version = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	c->shard_count = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	if (c->shard_count != shard_count)
		mc_warn("shard_count=%u in the configuration is ignored: the cluster "
		        "was created with shard_count=%u", shard_count, c->shard_count);
	return 0;
}

int
ctrl_schema_migrate(struct ctrl *c, uint32_t shard_count, const char **error_r)
{
	int have = 0;
	int ret = -1;

	if (exec_simple(c->pg, "SELECT pg_advisory_lock(" CTRL_MIGRATION_LOCK ")",
	                error_r) < 0)
		return -1;
	if (applied_version(c->pg, &have, error_r) < 0)
		goto out;
	for (unsigned i = 0; i < ctrl_migration_count; i++) {
		if (ctrl_migrations[i].version <= have)
			continue;
		if (apply_one(c->pg, &ctrl_migrations[i], error_r) < 0)
			goto out;
	}
	if (ctrl_migration_count > 0 &&
	    have > ctrl_migrations[ctrl_migration_count - 1].version) {
		*error_r = mc_errorf("database schema version %d is newer than this "
		                     "controller knows (%d): refusing to run", have,
		                     ctrl_migrations[ctrl_migration_count - 1].version);
		goto out;
	}
	ret = init_cluster_row(c, shard_count, error_r);
out:
	PQclear(PQexec(c->pg, "SELECT pg_advisory_unlock(" CTRL_MIGRATION_LOCK ")"));
	return ret;
}
