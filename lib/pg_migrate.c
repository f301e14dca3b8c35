/* Schema migrations; see pg_migrate.h. */
#include "pg_migrate.h"

#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "log.h"

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

	/* Look before creating: IF NOT EXISTS would raise a notice at every
	 * start. The advisory lock makes look-then-create safe. */
	res = PQexec(pg, "SELECT to_regclass('schema_migrations') IS NULL");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = mc_errorf("%s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	if (PQgetvalue(res, 0, 0)[0] == 't' &&
	    exec_simple(pg, "CREATE TABLE schema_migrations ("
	                    " version integer PRIMARY KEY, name text NOT NULL,"
	                    " applied_at timestamptz NOT NULL DEFAULT now())",
	                error_r) < 0) {
		PQclear(res);
		return -1;
	}
	PQclear(res);
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
apply_one(PGconn *pg, const struct mc_migration *m, const char **error_r)
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

int
mc_pg_migrate(PGconn *pg, const struct mc_migration *list, unsigned count,
              long long lock_key, const char **error_r)
{
	char sql[96];
	int have = 0, ret = -1;

	snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%lld)", lock_key);
	if (exec_simple(pg, sql, error_r) < 0)
		return -1;
	if (applied_version(pg, &have, error_r) < 0)
		goto out;
	if (count > 0 && have > list[count - 1].version) {
		*error_r = mc_errorf("database schema version %d is newer than this "
		                     "program knows (%d): refusing to run", have,
		                     list[count - 1].version);
		goto out;
	}
	for (unsigned i = 0; i < count; i++) {
		if (list[i].version > have && apply_one(pg, &list[i], error_r) < 0)
			goto out;
	}
	ret = 0;
out:
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%lld)", lock_key);
	PQclear(PQexec(pg, sql));
	return ret;
}
