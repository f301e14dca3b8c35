/* mail-node: the mailbox node daemon. For now it holds the published
 * directory, kept at the cluster version by cfgsync (with password hashes:
 * mailbox nodes authenticate users), and logs it when it changes. LMTP
 * delivery, IMAP and submission come in later issues and will read the
 * directory through mc_cfgsync_directory. */
#include <stddef.h>

#include "cfgsync.h"
#include "daemon.h"
#include "directory.h"
#include "log.h"

static const char *const node_keys[] = {
        "name",      "control_url", "publish_url",   "node_token_file",
        "state_dir", "tls_ca_file", "tls_cert_file", "tls_key_file",
        "log_level", NULL,
};

struct node {
	struct mc_daemon daemon;
	struct mc_cfgsync *sync;
};

static void
node_directory_changed(const struct mc_directory *dir, void *ctx)
{
	mc_info("directory version=%llu domains=%zu accounts=%zu aliases=%zu",
	        (unsigned long long)mc_directory_version(dir),
	        mc_directory_domain_count(dir), mc_directory_account_count(dir),
	        mc_directory_alias_count(dir));
}

static void
node_stop(void *ctx)
{
	struct node *n = ctx;

	mc_cfgsync_close(&n->sync);
}

static int
node_start(struct node *n, const char **error_r)
{
	const struct mc_daemon *d = &n->daemon;
	struct mc_cfgsync_settings set = {
	        .kind = MC__NODE_KIND__NODE_KIND_MAILBOX,
	        .on_change = node_directory_changed,
	        .ctx = n,
	};
	char *token = NULL;
	int rv = -1;

	if (mc_cfgsync_configure(d, &set, &token, error_r) == 0)
		rv = mc_cfgsync_start(d->loop, &set, &n->sync, error_r);
	mc_secret_free(&token);
	return rv;
}

int
main(int argc, char **argv)
{
	struct node n = {.sync = NULL};
	const char *error;

	if (mc_daemon_init(&n.daemon, "mail-node", node_keys, argc, argv) < 0)
		return n.daemon.exit_code;
	if (node_start(&n, &error) < 0) {
		mc_error("cannot start error=\"%s\"", error);
		mc_daemon_fini(&n.daemon);
		return 1;
	}
	mc_daemon_run(&n.daemon, node_stop, &n);
	mc_daemon_fini(&n.daemon);
	return n.daemon.exit_code;
}
