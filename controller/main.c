/* mail-controller: the cluster's source of truth. Reads its config,
 * connects to Postgres and applies migrations, then serves the admin and
 * node API on control_url and publishes deltas on publish_url until
 * SIGTERM. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctrl.h"
#include "daemon.h"
#include "log.h"
#include "mem.h"
#include "secretbox.h"

/* How long startup waits for Postgres before giving up with an error. */
#define CTRL_PG_STARTUP_WAIT_S 30

static const char *const ctrl_keys[] = {
	"control_url", "publish_url", "pg", "store_pg", "admin_token_file", "node_token_file",
	"tls_ca_file", "tls_cert_file", "tls_key_file", "shard_count",
	"heartbeat_ms", "node_timeout_ms", "lease_ttl_ms", "fault_injection",
	"secrets_key_file", "log_level", NULL,
};

/* A conninfo with a connect timeout, so a dead Postgres cannot hang a
 * connection attempt (URIs are left as given). Heap string. */
static char *
with_timeout(const char *conninfo)
{
	if (strstr(conninfo, "://") != NULL || strstr(conninfo, "connect_timeout") != NULL)
		return mc_strdup(conninfo);
	return mc_asprintf("%s connect_timeout=5", conninfo);
}

static int
read_settings(struct mc_daemon *d, struct ctrl *c, uint64_t *shards_r,
              const char **error_r)
{
	const char *pg, *key;
	uint64_t v;

	if (mc_daemon_require(d, "pg", &pg, error_r) < 0 ||
	    mc_daemon_secret(d, "admin_token_file", &c->admin_token, error_r) < 0 ||
	    mc_daemon_secret(d, "node_token_file", &c->node_token, error_r) < 0 ||
	    mc_config_get_uint(d->cfg, "shard_count", 64, 1, 65536, shards_r,
	                       error_r) < 0 ||
	    mc_config_get_bool(d->cfg, "fault_injection", false,
	                       &c->fault_injection, error_r) < 0)
		return -1;
	if (mc_config_get_uint(d->cfg, "heartbeat_ms", 1000, 100, 60000, &v,
	                       error_r) < 0)
		return -1;
	c->heartbeat_ms = (uint32_t)v;
	if (mc_config_get_uint(d->cfg, "node_timeout_ms", 5000, 500, 600000, &v,
	                       error_r) < 0)
		return -1;
	c->node_timeout_ms = (uint32_t)v;
	if (c->node_timeout_ms < 2 * c->heartbeat_ms) {
		*error_r = "node_timeout_ms must be at least twice heartbeat_ms";
		return -1;
	}
	if (mc_config_get_uint(d->cfg, "lease_ttl_ms", 10000, 1000, 600000, &v,
	                       error_r) < 0)
		return -1;
	c->lease_ttl_ms = (uint32_t)v;
	if (c->lease_ttl_ms < 3 * c->heartbeat_ms) {
		/* Every heartbeat renews: two may fail before a lease lapses. */
		*error_r = "lease_ttl_ms must be at least three times heartbeat_ms";
		return -1;
	}
	if (strcmp(c->admin_token, c->node_token) == 0) {
		*error_r = "admin and node tokens must differ: a node must not be "
		           "able to act as an administrator";
		return -1;
	}
	c->conninfo = with_timeout(pg);
	pg = mc_config_get(d->cfg, "store_pg", NULL);
	if (pg != NULL && *pg != '\0')
		c->store_conninfo = with_timeout(pg);
	/* The key that seals DKIM private keys in the database. Without it
	 * the controller runs, but cannot create or publish DKIM keys. */
	key = mc_config_get(d->cfg, "secrets_key_file", NULL);
	if (key == NULL)
		mc_warn("no secrets_key_file: DKIM keys can be neither created "
		        "nor published");
	else if (mc_secretbox_load(key, &c->secrets, error_r) < 0)
		return -1;
	return 0;
}

static int
connect_and_migrate(struct ctrl *c, uint32_t shards, const char **error_r)
{
	for (int waited = 0;; waited++) {
		if (ctrl_db_connect(c, error_r) == 0)
			return ctrl_schema_migrate(c, shards, error_r);
		if (waited >= CTRL_PG_STARTUP_WAIT_S)
			return -1;
		if (waited == 0)
			mc_warn("waiting for postgres error=\"%s\"", *error_r);
		sleep(1);
	}
}

static void
server_stopped(struct ctrl *c)
{
	ctrl_publish_close(c);
	mc_info("stopped");
}

static void
ctrl_stop(void *ctx)
{
	struct ctrl *c = ctx;

	mc_info("stopping");
	ctrl_server_stop(c, server_stopped);
}

int
main(int argc, char **argv)
{
	struct mc_daemon d;
	struct ctrl c = {0};
	struct mc_tls_files tls;
	const char *control_url, *publish_url, *err = NULL;
	uint64_t shards = 0;
	int ret = 1;

	if (mc_daemon_init(&d, "mail-controller", ctrl_keys, argc, argv) < 0)
		return d.exit_code;
	c.loop = d.loop;
	if (mc_daemon_require(&d, "control_url", &control_url, &err) < 0 ||
	    mc_daemon_require(&d, "publish_url", &publish_url, &err) < 0 ||
	    mc_daemon_tls_files(&d, &tls, &err) < 0 ||
	    read_settings(&d, &c, &shards, &err) < 0) {
		mc_error("configuration error=\"%s\"", err);
		goto out;
	}
	if (connect_and_migrate(&c, (uint32_t)shards, &err) < 0) {
		mc_error("cannot start error=\"%s\"", err);
		goto out;
	}
	if (ctrl_publish_open(&c, publish_url, &tls, &err) < 0) {
		mc_error("cannot start error=\"%s\"", err);
		goto out;
	}
	if (ctrl_server_start(&c, control_url, &tls, &err) < 0) {
		mc_error("cannot start error=\"%s\"", err);
		ctrl_publish_close(&c);
		goto out;
	}
	mc_info("started control_url=%s publish_url=%s version=%llu shards=%u",
	        control_url, publish_url, (unsigned long long)c.published_version,
	        c.shard_count);
	ret = mc_daemon_run(&d, ctrl_stop, &c) < 0 ? 1 : d.exit_code;
out:
	ctrl_db_close(&c);
	mc_secret_free(&c.admin_token);
	mc_secret_free(&c.node_token);
	mc_secretbox_free(&c.secrets);
	free(c.snap_cache);
	free(c.conninfo);
	free(c.store_conninfo);
	mc_daemon_fini(&d);
	/* libuv's worker threads, with their OpenSSL per-thread state. */
	uv_library_shutdown();
	return ret;
}
