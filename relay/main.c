/* mail-relay: the public edge daemon. For now it holds the published
 * directory, kept at the cluster version by cfgsync, and logs it when it
 * changes. A relay never holds password hashes: the controller publishes
 * none to relays and cfgsync wipes any that arrive anyway. MX inbound,
 * the queue and egress come in later issues. */
#include <stddef.h>

#include "cfgsync.h"
#include "daemon.h"
#include "directory.h"
#include "log.h"

static const char *const relay_keys[] = {
        "name",      "control_url", "publish_url",   "node_token_file",
        "state_dir", "tls_ca_file", "tls_cert_file", "tls_key_file",
        "log_level", NULL,
};

struct relay {
	struct mc_daemon daemon;
	struct mc_cfgsync *sync;
};

static void
relay_directory_changed(const struct mc_directory *dir, void *ctx)
{
	mc_info("directory version=%llu domains=%zu accounts=%zu aliases=%zu",
	        (unsigned long long)mc_directory_version(dir),
	        mc_directory_domain_count(dir), mc_directory_account_count(dir),
	        mc_directory_alias_count(dir));
}

static void
relay_stop(void *ctx)
{
	struct relay *r = ctx;

	mc_cfgsync_close(&r->sync);
}

static int
relay_start(struct relay *r, const char **error_r)
{
	const struct mc_daemon *d = &r->daemon;
	struct mc_cfgsync_settings set = {
	        .kind = MC__NODE_KIND__NODE_KIND_RELAY,
	        .on_change = relay_directory_changed,
	        .ctx = r,
	};
	char *token = NULL;
	int rv = -1;

	if (mc_cfgsync_configure(d, &set, &token, error_r) == 0)
		rv = mc_cfgsync_start(d->loop, &set, &r->sync, error_r);
	mc_secret_free(&token);
	return rv;
}

int
main(int argc, char **argv)
{
	struct relay r = {.sync = NULL};
	const char *error;

	if (mc_daemon_init(&r.daemon, "mail-relay", relay_keys, argc, argv) < 0)
		return r.daemon.exit_code;
	if (relay_start(&r, &error) < 0) {
		mc_error("cannot start error=\"%s\"", error);
		mc_daemon_fini(&r.daemon);
		return 1;
	}
	mc_daemon_run(&r.daemon, relay_stop, &r);
	mc_daemon_fini(&r.daemon);
	return r.daemon.exit_code;
}
