/* mail-relay: the public edge daemon. Follows the controller (cfgsync:
 * the directory without password hashes, and the shard owners), accepts
 * mail for the cluster's domains on its MX listener into the durable
 * queue, and delivers it over LMTP to the mailbox node owning each
 * recipient's shard (relay/delivery). With admin_url set, `mailctl queue`
 * inspects and changes its queue (relay/admin). Outbound egress comes with
 * issue 5. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "cfgsync.h"
#include "daemon.h"
#include "delivery.h"
#include "directory.h"
#include "hostport.h"
#include "log.h"
#include "mem.h"
#include "mx.h"
#include "queue.h"
#include "tls.h"

static const char *const relay_keys[] = {
        "name", "control_url", "publish_url", "node_token_file", "state_dir",
        "tls_ca_file", "tls_cert_file", "tls_key_file", "log_level",
        "hostname", "mx_listen", "mx_tls_cert_file", "mx_tls_key_file",
        "spool_dir", "max_message_size", "retry_base_ms", "retry_max_ms",
        "give_up_s", "delivery_sessions", "admin_url", "admin_token_file",
        NULL,
};

struct relay {
	struct mc_daemon daemon;
	struct mc_cfgsync *sync;
	struct relay_queue *queue;
	struct relay_delivery *delivery;
	struct relay_mx *mx;
	struct relay_admin *admin;
	struct mc_tls_ctx *mx_tls;
	char hostname[256];
};

static const struct mc_directory *
relay_directory(void *ctx)
{
	struct relay *r = ctx;

	return mc_cfgsync_directory(r->sync);
}

static void
relay_directory_changed(const struct mc_directory *dir, void *ctx)
{
	struct relay *r = ctx;

	mc_info("directory version=%llu domains=%zu accounts=%zu aliases=%zu shards=%zu",
	        (unsigned long long)mc_directory_version(dir),
	        mc_directory_domain_count(dir), mc_directory_account_count(dir),
	        mc_directory_alias_count(dir), mc_directory_shard_owner_count(dir));
	/* New shard owners may unblock waiting recipients. */
	if (r->delivery != NULL)
		relay_delivery_kick(r->delivery);
}

static void
relay_committed(struct relay_queue_envelope *env, void *ctx)
{
	struct relay *r = ctx;

	relay_delivery_add(r->delivery, env);
}

/* Teardown in reverse: MX (no new mail), delivery (flushes its updates),
 * the queue, config sync. */
static void
delivery_closed(void *arg)
{
	struct relay *r = arg;

	r->delivery = NULL;
	relay_queue_close(&r->queue);
	mc_tls_ctx_free(&r->mx_tls);
	mc_cfgsync_close(&r->sync);
}

static void
mx_closed(void *arg)
{
	struct relay *r = arg;

	r->mx = NULL;
	if (r->delivery != NULL)
		relay_delivery_close(r->delivery, delivery_closed, r);
	else
		delivery_closed(r);
}

static void
admin_closed(void *arg)
{
	struct relay *r = arg;

	r->admin = NULL;
	if (r->mx != NULL)
		relay_mx_close(r->mx, mx_closed, r);
	else
		mx_closed(r);
}

static void
relay_stop(void *ctx)
{
	struct relay *r = ctx;

	if (r->admin != NULL)
		relay_admin_close(r->admin, admin_closed, r);
	else
		admin_closed(r);
}

/* `mailctl queue` on admin_url, with the cluster's admin token. */
static int
admin_start(struct relay *r, const char *url, const char **error_r)
{
	struct mc_tls_files tls;
	char *token = NULL;
	int rv = -1;

	if (mc_daemon_tls_files(&r->daemon, &tls, error_r) == 0 &&
	    mc_daemon_secret(&r->daemon, "admin_token_file", &token, error_r) == 0)
		rv = relay_admin_start(r->daemon.loop, url, &tls, token, r->delivery,
		                       &r->admin, error_r);
	mc_secret_free(&token);
	return rv;
}

static int
mx_start(struct relay *r, const char *listen, uint64_t max_message,
         const char **error_r)
{
	const struct mc_config *cfg = r->daemon.cfg;
	const char *cert = mc_config_get(cfg, "mx_tls_cert_file", NULL);
	const char *key = mc_config_get(cfg, "mx_tls_key_file", NULL);
	char host[MC_HOST_MAX + 1];
	struct relay_mx_settings ms = {
	        .host = host, .hostname = r->hostname, .max_message = max_message,
	        .queue = r->queue, .directory = relay_directory,
	        .committed = relay_committed, .ctx = r,
	};

	if (mc_hostport_parse(listen, host, &ms.port, error_r) < 0)
		return -1;
	if ((cert != NULL) != (key != NULL)) {
		*error_r = "mx_tls_cert_file and mx_tls_key_file go together";
		return -1;
	}
	if (cert != NULL) {
		struct mc_tls_settings ts = {.cert_file = cert, .key_file = key};

		if (mc_tls_ctx_new(MC_TLS_SERVER, &ts, &r->mx_tls, error_r) < 0)
			return -1;
		ms.tls = r->mx_tls;
	}
	return relay_mx_start(r->daemon.loop, &ms, &r->mx, error_r);
}

/* The queue, delivery and (when mx_listen is set) the MX listener. */
static int
mail_start(struct relay *r, const char **error_r)
{
	const struct mc_config *cfg = r->daemon.cfg;
	const char *listen = mc_config_get(cfg, "mx_listen", NULL);
	const char *state_dir, *admin, *spool = mc_config_get(cfg, "spool_dir", NULL);
	struct relay_delivery_settings ds = {
	        .hostname = r->hostname, .directory = relay_directory, .ctx = r,
	};
	struct relay_queue_settings qs = {0};
	uint64_t max_message, sessions;
	char *spool_path = NULL;
	int rv = -1;

	if (mc_daemon_require(&r->daemon, "state_dir", &state_dir, error_r) < 0 ||
	    mc_config_get_uint(cfg, "max_message_size", 50 * 1024 * 1024, 1024,
	                       1024ull * 1024 * 1024, &max_message, error_r) < 0 ||
	    mc_config_get_uint(cfg, "retry_base_ms", 60000, 100, 86400000,
	                       &ds.retry_base_ms, error_r) < 0 ||
	    mc_config_get_uint(cfg, "retry_max_ms", 3600000, 100, 7 * 86400000ull,
	                       &ds.retry_max_ms, error_r) < 0 ||
	    mc_config_get_uint(cfg, "give_up_s", 5 * 86400, 1, 60 * 86400,
	                       &ds.give_up_s, error_r) < 0 ||
	    mc_config_get_uint(cfg, "delivery_sessions", 20, 1, 1000, &sessions,
	                       error_r) < 0)
		return -1;
	ds.max_sessions = (unsigned)sessions;
	spool_path = spool != NULL ? mc_strdup(spool) : mc_asprintf("%s/spool", state_dir);
	qs.max_message_size = max_message + 64 * 1024; /* room for our headers */
	if (relay_queue_open(spool_path, &qs, &r->queue, error_r) < 0)
		goto out;
	ds.queue = r->queue;
	if (relay_delivery_start(r->daemon.loop, &ds, &r->delivery, error_r) < 0)
		goto out;
	rv = listen != NULL ? mx_start(r, listen, max_message, error_r) : 0;
	if (rv == 0 && (admin = mc_config_get(cfg, "admin_url", NULL)) != NULL)
		rv = admin_start(r, admin, error_r);
out:
	free(spool_path);
	return rv;
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
	const char *hostname = mc_config_get(d->cfg, "hostname", NULL);
	char *token = NULL;
	int rv = -1;

	if (hostname != NULL)
		snprintf(r->hostname, sizeof(r->hostname), "%s", hostname);
	else if (gethostname(r->hostname, sizeof(r->hostname) - 1) < 0)
		strcpy(r->hostname, "localhost");
	if (mc_cfgsync_configure(d, &set, &token, error_r) == 0)
		rv = mc_cfgsync_start(d->loop, &set, &r->sync, error_r);
	mc_secret_free(&token);
	if (rv == 0)
		rv = mail_start(r, error_r);
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
		relay_stop(&r);
		mc_daemon_fini(&r.daemon);
		return 1;
	}
	mc_daemon_run(&r.daemon, relay_stop, &r);
	mc_daemon_fini(&r.daemon);
	/* libuv's worker threads, with their OpenSSL per-thread state. */
	uv_library_shutdown();
	return r.daemon.exit_code;
}
