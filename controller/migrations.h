/* Schema migrations embedded at build time from controller/migrations/
 * (NNNN_name.sql, applied in order, each once, in its own transaction). */
#ifndef CTRL_MIGRATIONS_H
#define CTRL_MIGRATIONS_H

struct ctrl_migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct ctrl_migration ctrl_migrations[];
extern const unsigned ctrl_migration_count;

#endif
