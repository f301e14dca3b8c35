/* Versioned schema migrations for a Postgres database: an ordered list of
 * SQL scripts (embedded at build time by cmake/embed.cmake), each applied
 * once, in its own transaction, recorded in a schema_migrations table,
 * under an advisory lock so two processes starting together do not race.
 * A database whose schema is newer than the list is refused. Blocking
 * libpq: call at startup or from a worker thread. */
#ifndef MC_PG_MIGRATE_H
#define MC_PG_MIGRATE_H

#include <libpq-fe.h>

struct mc_migration {
	int version;
	const char *name;
	const char *sql;
};

/* lock_key names the advisory lock (distinct per schema). Returns 0, or
 * -1 with error_r naming the failing migration. */
int mc_pg_migrate(PGconn *pg, const struct mc_migration *list, unsigned count,
                  long long lock_key, const char **error_r);

#endif
