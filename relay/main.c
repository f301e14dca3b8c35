/* mail-relay: the public edge daemon. Follows the controller (cfgsync:
 * the directory without password hashes, and the shard owners), accepts
 * mail for the cluster's domains on its MX listener into the durable
 * queue, and delivers it over LMTP to the mailbox node owning each
 * recipient's shard (relay/delivery). With admin_url set, `mailctl queue`
 * inspects and changes its queue (relay/admin). With egress_listen set,
 * the mailbox nodes hand it their outbound mail (relay/egress: DKIM
 * signing, into the same queue), which delivery routes out through a
 * smarthost or the recipient domain's MX. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "cfgsync.h"
#include "daemon.h"
#include "delivery.h"
#include "directory.h"
#include "dns.h"
#include "egress.h"
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
        "public_name", "public_addresses",
        "egress_listen", "egress_tls_cert_file", "egress_tls_key_file",
        "egress_tls_ca_file", "egress_trusted", "dns_servers",
        "smarthost_tls_ca_file", "delivery_sessions_per_destination",
        "mx_port",
        NULL,
};

struct relay {
	struct mc_daemon daemon;
	struct mc_cfgsync *sync;
	struct relay_queue *queue;
	struct relay_delivery *delivery;
	struct relay_mx *mx;
	struct relay_admin *admin;
	struct relay_egress *egress;
	struct relay_signer *signer;
	struct mc_tls_ctx *mx_tls, *egress_tls;
	/* Outbound delivery: resolver, smarthost and MX client contexts. */
	struct mc_dns *dns;
	struct mc_tls_ctx *smarthost_tls, *mx_client_tls;
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
	if (r->signer != NULL)
		relay_signer_changed(r->signer);
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

/* Teardown in reverse: admin, egress and MX (no new mail), delivery
 * (flushes its updates), the queue, config sync. */
static void
delivery_closed(void *arg)
{
	struct relay *r = arg;

	r->delivery = NULL;
	relay_queue_close(&r->queue);
	relay_signer_free(&r->signer);
	if (r->dns != NULL)
		mc_dns_close(r->dns, NULL, NULL);
	r->dns = NULL;
	mc_tls_ctx_free(&r->mx_tls);
	mc_tls_ctx_free(&r->egress_tls);
	mc_tls_ctx_free(&r->smarthost_tls);
	mc_tls_ctx_free(&r->mx_client_tls);
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
egress_closed(void *arg)
{
	struct relay *r = arg;

	r->egress = NULL;
	if (r->mx != NULL)
		relay_mx_close(r->mx, mx_closed, r);
	else
		mx_closed(r);
}

static void
admin_closed(void *arg)
{
	struct relay *r = arg;

	r->admin = NULL;
	if (r->egress != NULL)
		relay_egress_close(r->egress, egress_closed, r);
	else
		egress_closed(r);
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

/* The egress listener for the mailbox nodes' outbound mail: mutual TLS
 * (a client certificate from egress_tls_ca_file) and/or trusted networks;
 * relay_egress_start refuses neither. */
static int
egress_start(struct relay *r, const char *listen, uint64_t max_message,
             const char **error_r)
{
	const struct mc_config *cfg = r->daemon.cfg;
	const char *cert = mc_config_get(cfg, "egress_tls_cert_file", NULL);
	const char *key = mc_config_get(cfg, "egress_tls_key_file", NULL);
	const char *ca = mc_config_get(cfg, "egress_tls_ca_file", NULL);
	const char *trusted = mc_config_get(cfg, "egress_trusted", NULL);
	struct relay_trusted nets = {.count = 0};
	char host[MC_HOST_MAX + 1];
	struct relay_egress_settings es = {
	        .host = host, .hostname = r->hostname, .max_message = max_message,
	        .trusted = &nets, .queue = r->queue, .directory = relay_directory,
	        .committed = relay_committed, .ctx = r,
	};

	if (mc_hostport_parse(listen, host, &es.port, error_r) < 0)
		return -1;
	if (trusted != NULL && relay_trusted_parse(trusted, &nets, error_r) < 0)
		return -1;
	if ((cert != NULL || key != NULL || ca != NULL) &&
	    (cert == NULL || key == NULL || ca == NULL)) {
		*error_r = "egress_tls_cert_file, egress_tls_key_file and "
		           "egress_tls_ca_file go together (mutual TLS)";
		return -1;
	}
	if (cert != NULL) {
		struct mc_tls_settings ts = {.cert_file = cert, .key_file = key,
		                             .ca_file = ca};

		if (mc_tls_ctx_new(MC_TLS_SERVER, &ts, &r->egress_tls, error_r) < 0)
			return -1;
		es.mtls = r->egress_tls;
	}
	r->signer = relay_signer_new();
	es.signer = r->signer;
	return relay_egress_start(r->daemon.loop, &es, &r->egress, error_r);
}

/* What delivery needs to send mail out: the resolver (dns_servers, else
 * /etc/resolv.conf), a verifying TLS client context for smarthosts
 * (smarthost_tls_ca_file, else the system's trust store) and an
 * opportunistic one for MX delivery. */
static int
outbound_setup(struct relay *r, struct relay_delivery_settings *ds,
               const char **error_r)
{
	const struct mc_config *cfg = r->daemon.cfg;
	const char *servers = mc_config_get(cfg, "dns_servers", "");
	struct mc_tls_settings sts = {
	        .ca_file = mc_config_get(cfg, "smarthost_tls_ca_file", NULL)};
	struct mc_tls_settings mts = {.opportunistic = true};
	char list[MC_DNS_SERVERS_MAX][64];
	const char *ptrs[MC_DNS_SERVERS_MAX];
	struct mc_dns_settings dset = {.servers = ptrs};
	size_t len;

	for (const char *p = servers; *p != '\0';) {
		p += strspn(p, ", \t");
		if ((len = strcspn(p, ", \t")) == 0)
			break;
		if (dset.server_count == MC_DNS_SERVERS_MAX || len >= sizeof(list[0])) {
			*error_r = "dns_servers: at most 8 servers as ip, ip:port or "
			           "[ipv6]:port";
			return -1;
		}
		memcpy(list[dset.server_count], p, len);
		list[dset.server_count][len] = '\0';
		ptrs[dset.server_count] = list[dset.server_count];
		dset.server_count++;
		p += len;
	}
	if (mc_dns_new(r->daemon.loop, &dset, &r->dns, error_r) < 0 ||
	    mc_tls_ctx_new(MC_TLS_CLIENT, &sts, &r->smarthost_tls, error_r) < 0 ||
	    mc_tls_ctx_new(MC_TLS_CLIENT, &mts, &r->mx_client_tls, error_r) < 0)
		return -1;
	ds->egress = true;
	ds->dns = r->dns;
	ds->smarthost_tls = r->smarthost_tls;
	ds->mx_tls = r->mx_client_tls;
	return 0;
}

/* The queue, delivery and (when mx_listen is set) the MX listener. */
static int
mail_start(struct relay *r, const char **error_r)
{
	const struct mc_config *cfg = r->daemon.cfg;
	const char *listen = mc_config_get(cfg, "mx_listen", NULL);
	const char *state_dir, *admin, *egress,
	        *spool = mc_config_get(cfg, "spool_dir", NULL);
	struct relay_delivery_settings ds = {
	        .hostname = r->hostname, .directory = relay_directory, .ctx = r,
	};
	struct relay_queue_settings qs = {0};
	uint64_t max_message, sessions, per_dest, mx_port;
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
	                       error_r) < 0 ||
	    mc_config_get_uint(cfg, "delivery_sessions_per_destination", 5, 1,
	                       1000, &per_dest, error_r) < 0 ||
	    mc_config_get_uint(cfg, "mx_port", 25, 1, 65535, &mx_port,
	                       error_r) < 0 ||
	    outbound_setup(r, &ds, error_r) < 0)
		return -1;
	ds.max_sessions = (unsigned)sessions;
	ds.max_sessions_per_node = (unsigned)per_dest;
	ds.mx_port = (uint16_t)mx_port; /* tests: a fake MX on loopback */
	spool_path = spool != NULL ? mc_strdup(spool) : mc_asprintf("%s/spool", state_dir);
	qs.max_message_size = max_message + 64 * 1024; /* room for our headers */
	if (relay_queue_open(spool_path, &qs, &r->queue, error_r) < 0)
		goto out;
	ds.queue = r->queue;
	if (relay_delivery_start(r->daemon.loop, &ds, &r->delivery, error_r) < 0)
		goto out;
	rv = listen != NULL ? mx_start(r, listen, max_message, error_r) : 0;
	if (rv == 0 && (egress = mc_config_get(cfg, "egress_listen", NULL)) != NULL)
		rv = egress_start(r, egress, max_message, error_r);
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
	/* Registered for the MX and A/AAAA records of `mailctl domain dns`. */
	set.public_name = mc_config_get(d->cfg, "public_name", NULL);
	set.public_addresses = mc_config_get(d->cfg, "public_addresses", NULL);
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
