/* mail-node: the mailbox node daemon. Follows the controller (cfgsync:
 * the directory with password hashes, and the shard leases it holds) and,
 * when lmtp_listen is set, takes deliveries over LMTP into its mailbox
 * store (metadata in store_pg, bytes in the blob store); with imap_listen
 * (STARTTLS) and/or imaps_listen (implicit TLS) it serves IMAP clients;
 * with submission_listen (STARTTLS) and/or submissions_listen (implicit
 * TLS) it takes mail from clients (node/submission.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "cfgsync.h"
#include "daemon.h"
#include "directory.h"
#include "hostport.h"
#include "imap.h"
#include "lmtp.h"
#include "log.h"
#include "store_pool.h"
#include "submission.h"

static const char *const node_keys[] = {
        "name", "control_url", "publish_url", "node_token_file", "state_dir",
        "tls_ca_file", "tls_cert_file", "tls_key_file", "log_level",
        "hostname", "lmtp_listen", "lmtp_address", "max_message_size",
        "store_pg", "store_connections", "blob_url", "s3_endpoint",
        "s3_region", "s3_access_key_file", "s3_secret_key_file",
        "s3_virtual_host", "imap_listen", "imaps_listen",
        "imap_tls_cert_file", "imap_tls_key_file", "imap_max_sessions", "blob_cache_bytes",
        "submission_listen", "submissions_listen", "submission_tls_cert_file",
        "submission_tls_key_file", "submission_max_sessions", "submission_relay",
        "submission_relay_tls", "submission_relay_cert_file",
        "submission_relay_key_file", "submission_relay_ca_file", NULL,
};

struct node {
	struct mc_daemon daemon;
	struct mc_cfgsync *sync;
	struct mc_blob *blob;
	struct node_store_pool *store;
	struct node_lmtp *lmtp;
	struct node_imap *imap;
	struct node_submission *submission;
	struct node_auth *auth;
	uint64_t max_message;
	char hostname[256];
};

static void
node_directory_changed(const struct mc_directory *dir, void *ctx)
{
	(void)ctx;
	mc_info("directory version=%llu domains=%zu accounts=%zu aliases=%zu",
	        (unsigned long long)mc_directory_version(dir),
	        mc_directory_domain_count(dir), mc_directory_account_count(dir),
	        mc_directory_alias_count(dir));
}

/* Once IMAP, LMTP and submission are down (nothing in flight), the rest
 * goes. */
static void
services_closed(void *arg)
{
	struct node *n = arg;

	if (n->imap != NULL || n->lmtp != NULL || n->submission != NULL)
		return;
	node_store_pool_close(&n->store);
	node_auth_free(&n->auth);
	mc_blob_close(&n->blob, NULL, NULL);
	mc_cfgsync_close(&n->sync);
}

static void
imap_closed(void *arg)
{
	struct node *n = arg;

	n->imap = NULL;
	services_closed(n);
}

static void
lmtp_closed(void *arg)
{
	struct node *n = arg;

	n->lmtp = NULL;
	services_closed(n);
}

static void
submission_closed(void *arg)
{
	struct node *n = arg;

	n->submission = NULL;
	services_closed(n);
}

static void
node_stop(void *ctx)
{
	struct node *n = ctx;

	if (n->imap == NULL && n->lmtp == NULL && n->submission == NULL) {
		services_closed(n);
		return;
	}
	if (n->submission != NULL)
		node_submission_close(n->submission, submission_closed, n);
	if (n->imap != NULL)
		node_imap_close(n->imap, imap_closed, n);
	if (n->lmtp != NULL)
		node_lmtp_close(n->lmtp, lmtp_closed, n);
}

static int
blob_open(struct node *n, const char *url, const char **error_r)
{
	const struct mc_config *cfg = n->daemon.cfg;
	struct mc_blob_config bc = {.url = url};
	char *access = NULL, *secret = NULL;
	const char *path;
	int rv = -1;
	bool vhost = false;
	uint64_t cache;

	/* Clients read a message several times (header, body, parts): keep
	 * recent blobs (immutable, so never stale) in memory. */
	if (mc_config_get_uint(cfg, "blob_cache_bytes", 32ull * 1024 * 1024, 0,
	                       4ull * 1024 * 1024 * 1024, &cache, error_r) < 0)
		return -1;
	bc.cache_bytes = (size_t)cache;

	if (strncmp(url, "s3://", 5) == 0) {
		if ((path = mc_config_get(cfg, "s3_access_key_file", NULL)) == NULL ||
		    mc_secret_read_file(path, &access, error_r) < 0 ||
		    (path = mc_config_get(cfg, "s3_secret_key_file", NULL)) == NULL ||
		    mc_secret_read_file(path, &secret, error_r) < 0 ||
		    mc_config_get_bool(cfg, "s3_virtual_host", false, &vhost, error_r) < 0) {
			if (path == NULL)
				*error_r = "s3 needs s3_access_key_file and s3_secret_key_file";
			goto out;
		}
		bc.s3.endpoint = mc_config_get(cfg, "s3_endpoint", NULL);
		bc.s3.region = mc_config_get(cfg, "s3_region", NULL);
		bc.s3.access_key_id = access;
		bc.s3.secret_key = secret;
		bc.s3.virtual_host = vhost;
	}
	rv = mc_blob_new(n->daemon.loop, &bc, &n->blob, error_r);
out:
	mc_secret_free(&access);
	mc_secret_free(&secret);
	return rv;
}

/* Worker: open a store connection now, which applies the store's schema
 * migrations, so the schema exists before the first delivery (readers such
 * as `mailctl account show` depend on it). If Postgres is away, the next
 * store job simply tries again. */
static void
store_warm(struct node_store *store, const char *error, void *arg)
{
	(void)arg;
	if (store == NULL)
		mc_warn("mailbox store not reachable yet error=\"%s\"", error);
}

static void
store_warm_done(void *arg)
{
	(void)arg;
}

/* The mailbox store and the blob store, for LMTP and IMAP. */
static int
stores_open(struct node *n, const char **error_r)
{
	const struct mc_config *cfg = n->daemon.cfg;
	const char *store_pg, *blob_url;
	uint64_t conns;

	if (mc_daemon_require(&n->daemon, "store_pg", &store_pg, error_r) < 0 ||
	    mc_daemon_require(&n->daemon, "blob_url", &blob_url, error_r) < 0 ||
	    mc_config_get_uint(cfg, "store_connections", 4, 1, 64, &conns, error_r) < 0 ||
	    mc_config_get_uint(cfg, "max_message_size", 50 * 1024 * 1024, 1024,
	                       1024ull * 1024 * 1024, &n->max_message, error_r) < 0 ||
	    blob_open(n, blob_url, error_r) < 0)
		return -1;
	n->store = node_store_pool_new(n->daemon.loop, store_pg, (unsigned)conns);
	node_store_pool_run(n->store, store_warm, store_warm_done, NULL);
	n->auth = node_auth_new(n->daemon.loop);
	return 0;
}

/* A delivery (LMTP, submission) changed an account's INBOX: idling IMAP
 * sessions look. */
static void
inbox_changed(uint64_t account_id, void *ctx)
{
	struct node *n = ctx;

	if (n->imap != NULL)
		node_imap_notify(n->imap, account_id);
}

/* LMTP delivery: the listener. */
static int
lmtp_start(struct node *n, const char *listen, const char **error_r)
{
	struct node_lmtp_settings ls = {.hostname = n->hostname, .sync = n->sync};
	char host[MC_HOST_MAX + 1];

	if (mc_hostport_parse(listen, host, &ls.port, error_r) < 0)
		return -1;
	ls.host = host;
	ls.max_message = n->max_message;
	ls.blob = n->blob;
	ls.store = n->store;
	ls.delivered = inbox_changed;
	ls.delivered_ctx = n;
	return node_lmtp_start(n->daemon.loop, &ls, &n->lmtp, error_r);
}

/* IMAP for clients: STARTTLS and implicit-TLS listeners. */
static int
imap_start(struct node *n, const char **error_r)
{
	const struct mc_config *cfg = n->daemon.cfg;
	uint64_t max_sessions;
	struct node_imap_settings is = {
	        .listen = mc_config_get(cfg, "imap_listen", NULL),
	        .listen_tls = mc_config_get(cfg, "imaps_listen", NULL),
	        .cert_file = mc_config_get(cfg, "imap_tls_cert_file", NULL),
	        .key_file = mc_config_get(cfg, "imap_tls_key_file", NULL),
	        .hostname = n->hostname,
	        .max_append = n->max_message,
	        .sync = n->sync,
	        .blob = n->blob,
	        .store = n->store,
	        .auth = n->auth,
	};

	if (mc_config_get_uint(cfg, "imap_max_sessions", 1000, 1, 100000, &max_sessions,
	                       error_r) < 0)
		return -1;
	is.max_sessions = (unsigned)max_sessions;
	return node_imap_start(n->daemon.loop, &is, &n->imap, error_r);
}

/* Submission for clients: STARTTLS and implicit-TLS listeners, the IMAP
 * certificate unless one of its own is given, the relay for the rest. */
static int
submission_start(struct node *n, const char **error_r)
{
	const struct mc_config *cfg = n->daemon.cfg;
	uint64_t max_sessions;
	struct node_submission_settings ss = {
	        .listen = mc_config_get(cfg, "submission_listen", NULL),
	        .listen_tls = mc_config_get(cfg, "submissions_listen", NULL),
	        .cert_file = mc_config_get(cfg, "submission_tls_cert_file",
	                                   mc_config_get(cfg, "imap_tls_cert_file", NULL)),
	        .key_file = mc_config_get(cfg, "submission_tls_key_file",
	                                  mc_config_get(cfg, "imap_tls_key_file", NULL)),
	        .hostname = n->hostname,
	        .max_message = n->max_message,
	        .relay = mc_config_get(cfg, "submission_relay", NULL),
	        .relay_tls = mc_config_get(cfg, "submission_relay_tls", NULL),
	        .relay_cert_file = mc_config_get(cfg, "submission_relay_cert_file", NULL),
	        .relay_key_file = mc_config_get(cfg, "submission_relay_key_file", NULL),
	        .relay_ca_file = mc_config_get(cfg, "submission_relay_ca_file", NULL),
	        .sync = n->sync,
	        .blob = n->blob,
	        .store = n->store,
	        .auth = n->auth,
	        .delivered = inbox_changed,
	        .delivered_ctx = n,
	};

	if (mc_config_get_uint(cfg, "submission_max_sessions", 200, 1, 100000,
	                       &max_sessions, error_r) < 0)
		return -1;
	ss.max_sessions = (unsigned)max_sessions;
	return node_submission_start(n->daemon.loop, &ss, &n->submission, error_r);
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
	const char *listen = mc_config_get(d->cfg, "lmtp_listen", NULL);
	const char *hostname = mc_config_get(d->cfg, "hostname", NULL);
	char *token = NULL;
	int rv = -1;
	bool imap, submission;

	if (hostname != NULL)
		snprintf(n->hostname, sizeof(n->hostname), "%s", hostname);
	else if (gethostname(n->hostname, sizeof(n->hostname) - 1) < 0)
		strcpy(n->hostname, "localhost");
	/* Relays deliver to lmtp_address (default: where we listen). */
	set.lmtp_address = mc_config_get(d->cfg, "lmtp_address", listen);
	if (mc_cfgsync_configure(d, &set, &token, error_r) == 0)
		rv = mc_cfgsync_start(d->loop, &set, &n->sync, error_r);
	mc_secret_free(&token);
	imap = mc_config_get(d->cfg, "imap_listen", NULL) != NULL ||
	       mc_config_get(d->cfg, "imaps_listen", NULL) != NULL;
	submission = mc_config_get(d->cfg, "submission_listen", NULL) != NULL ||
	             mc_config_get(d->cfg, "submissions_listen", NULL) != NULL;
	if (rv == 0 && (listen != NULL || imap || submission))
		rv = stores_open(n, error_r);
	if (rv == 0 && listen != NULL)
		rv = lmtp_start(n, listen, error_r);
	if (rv == 0 && imap)
		rv = imap_start(n, error_r);
	if (rv == 0 && submission)
		rv = submission_start(n, error_r);
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
		node_stop(&n);
		mc_daemon_fini(&n.daemon);
		return 1;
	}
	mc_daemon_run(&n.daemon, node_stop, &n);
	mc_daemon_fini(&n.daemon);
	/* libuv's worker threads, with their OpenSSL per-thread state. */
	uv_library_shutdown();
	return n.daemon.exit_code;
}
