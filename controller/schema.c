/* The controller's schema: applies the embedded controller/migrations
 * (lib/pg_migrate) and makes sure the cluster row exists; its shard count
 * is fixed when the cluster is created. */
#include <stdio.h>
#include <stdlib.h>

#include "ctrl.h"
#include "error.h"
#include "log.h"
#include "pg_migrate.h"

/* Generated from controller/migrations by mc_embed_migrations. */
extern const struct mc_migration ctrl_migrations[];
extern const unsigned ctrl_migration_count;

/* Advisory lock naming the controller schema ("mailclus"). */
#define CTRL_MIGRATION_LOCK 7813586727391212403LL

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
	if (mc_pg_migrate(c->pg, ctrl_migrations, ctrl_migration_count,
	                  CTRL_MIGRATION_LOCK, error_r) < 0)
		return -1;
	return init_cluster_row(c, shard_count, error_r);
}
