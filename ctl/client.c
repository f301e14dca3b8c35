/* mailctl's side of the admin API: connecting to the controller, or to a
 * relay's admin_url for the queue commands (a blocking dial, so an absent
 * peer fails at once with a clear message), one request/response at a time
 * with the --timeout deadline, mapping the answer to an exit code, and the
 * --wait loop that polls StatusReq until every live node has applied a
 * mutation's version. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/req.h>

#include "config.h"
#include "error.h"
#include "mem.h"
#include "rpc.h"

#define CLI_WAIT_POLL_MS 100

/* Who mailctl talks to in this run: "controller" or "relay". */
static const char *
peer_name(const struct cli *cli)
{
	return cli->relay ? "relay" : "controller";
}

static const char *
peer_url(const struct cli *cli)
{
	return cli->relay ? cli->args.relay_url : cli->args.url;
}

/* Transports the controller and relays can listen on (see lib/rpc.h). */
static bool
url_supported(const char *url)
{
	static const char *const schemes[] = {
	        "tcp://",      "tcp4://",    "tcp6://",     "ipc://",
	        "abstract://", "tls+tcp://", "tls+tcp4://", "tls+tcp6://"};

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0 &&
		    url[strlen(schemes[i])] != '\0')
			return true;
	return false;
}

/* NULL or a readable file; otherwise reports and returns false. */
static bool
file_readable(const struct cli *cli, const char *option, const char *path)
{
	if (path == NULL || access(path, R_OK) == 0)
		return true;
	cli_fail(cli, CLI_EXIT_USAGE, "usage", "%s %s: %s", option, path,
	         strerror(errno));
	return false;
}

/* Everything about the connection that can be checked locally. */
static int
check_connection_args(const struct cli *cli)
{
	const struct cli_args *a = &cli->args;
	const char *url = peer_url(cli);

	if (url == NULL && cli->relay)
		return cli_fail(cli, CLI_EXIT_USAGE, "usage",
		                "no relay admin URL: use --relay or "
		                "MAILCTL_RELAY_URL; deploy/local/cluster puts "
		                "MC_RELAY_1_ADMIN_URL in cluster.env");
	if (url == NULL)
		return cli_fail(
		        cli, CLI_EXIT_USAGE, "usage",
		        "no controller URL: give --url or set MAILCTL_URL");
	if (!url_supported(url))
		return cli_fail(cli, CLI_EXIT_USAGE, "usage",
		                "unsupported %s URL '%s': expected "
		                "tcp://HOST:PORT, ipc:///PATH or "
		                "tls+tcp://HOST:PORT",
		                peer_name(cli), url);
	if (a->token_file == NULL)
		return cli_fail(cli, CLI_EXIT_USAGE, "usage",
		                "no admin token: give --token-file or set "
		                "MAILCTL_TOKEN_FILE");
	if (!mc_rpc_url_is_tls(url))
		return CLI_EXIT_OK; /* TLS options only matter for tls+tcp */
	if (a->tls_ca == NULL)
		return cli_fail(
		        cli, CLI_EXIT_USAGE, "usage",
		        "%s needs --tls-ca (or MAILCTL_TLS_CA) to verify "
		        "the %s's certificate",
		        url, peer_name(cli));
	if ((a->tls_cert == NULL) != (a->tls_key == NULL))
		return cli_fail(cli, CLI_EXIT_USAGE, "usage",
		                "--tls-cert and --tls-key go together");
	if (!file_readable(cli, "--tls-ca", a->tls_ca) ||
	    !file_readable(cli, "--tls-cert", a->tls_cert) ||
	    !file_readable(cli, "--tls-key", a->tls_key))
		return CLI_EXIT_USAGE;
	return CLI_EXIT_OK;
}

int
cli_connect(struct cli *cli)
{
	struct mc_tls_files tls = {
	        .ca_file = cli->args.tls_ca,
	        .cert_file = cli->args.tls_cert,
	        .key_file = cli->args.tls_key,
	};
	const char *error, *hint = "";
	int rv, ret;

	if (cli->connected)
		return CLI_EXIT_OK;
	if ((ret = check_connection_args(cli)) != CLI_EXIT_OK)
		return ret;
	if (cli->token == NULL &&
	    mc_secret_read_file(cli->args.token_file, &cli->token, &error) < 0)
		return cli_fail(cli, CLI_EXIT_USAGE, "usage", "admin token: %s",
		                error);
	if ((rv = nng_req0_open(&cli->sock)) != 0)
		return cli_fail(cli, CLI_EXIT_UNREACHABLE, "unreachable",
		                "nng: %s", nng_strerror(rv));
	cli->sock_open = true;
	/* REQ would resend after a minute by default; a request that got no
	 * answer within --timeout is reported instead. */
	nng_socket_set_ms(cli->sock, NNG_OPT_REQ_RESENDTIME,
	                  NNG_DURATION_INFINITE);
	if (mc_rpc_dial(cli->sock, peer_url(cli), &tls, false, &error) < 0) {
		/* nng says only "Connection shutdown" or "Cryptographic
		 * error" when the TLS handshake fails. */
		if (mc_rpc_url_is_tls(peer_url(cli)) &&
		    strstr(error, "refused") == NULL)
			hint = " (TLS handshake: check --tls-ca, --tls-cert "
			       "and --tls-key)";
		return cli_fail(cli, CLI_EXIT_UNREACHABLE, "unreachable",
		                "%s unreachable: %s%s", peer_name(cli), error,
		                hint);
	}
	cli->connected = true;
	return CLI_EXIT_OK;
}

/* One exchange; *resp_r has any status. Transport problems are returned
 * as text, not reported, so the --wait loop can retry. */
static int
call_raw(struct cli *cli, Mc__Request *req, unsigned timeout_ms,
         Mc__Response **resp_r, const char **error_r)
{
	req->token = cli->token;
	if (mc_rpc_call(cli->sock, req, timeout_ms, resp_r, error_r) < 0) {
		*error_r = mc_errorf("no answer from %s at %s: %s",
		                     peer_name(cli), peer_url(cli), *error_r);
		return -1;
	}
	return 0;
}

int
cli_call(struct cli *cli, Mc__Request *req, Mc__Response **resp_r)
{
	Mc__Response *resp;
	const char *error;
	int ret;

	if ((ret = cli_connect(cli)) != CLI_EXIT_OK)
		return ret;
	if (call_raw(cli, req, cli->args.timeout_ms, &resp, &error) < 0)
		return cli_fail(cli, CLI_EXIT_UNREACHABLE, "unreachable", "%s",
		                error);
	if (resp->status != MC__STATUS__STATUS_OK) {
		ret = cli_fail(cli, CLI_EXIT_REFUSED,
		               mc_rpc_status_str(resp->status), "%s%s%s",
		               mc_rpc_status_str(resp->status),
		               resp->error[0] != '\0' ? ": " : "", resp->error);
		mc__response__free_unpacked(resp, NULL);
		return ret;
	}
	*resp_r = resp;
	return CLI_EXIT_OK;
}

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0)
		;
}

/* What the last successful StatusReq said about a mutation's version. */
struct wait_state {
	bool have_status;
	size_t live;       /* live nodes */
	char *lag_text;    /* "name (applied N), ...", NULL when none lags */
	json_t *lag;       /* the same as a JSON array */
	const char *error; /* why the last poll failed */
};

static void
wait_state_fini(struct wait_state *w)
{
	free(w->lag_text);
	w->lag_text = NULL;
	json_decref(w->lag);
	w->lag = NULL;
}

static void
wait_state_update(struct wait_state *w, const Mc__StatusInfo *st,
                  uint64_t version)
{
	wait_state_fini(w);
	w->have_status = true;
	w->live = 0;
	w->lag = json_array();
	for (size_t i = 0; i < st->n_nodes; i++) {
		const Mc__Node *n = st->nodes[i];
		char *next;

		if (!n->live)
			continue;
		w->live++;
		if (n->applied_version >= version)
			continue;
		next = mc_asprintf("%s%s%s (applied %" PRIu64 ")",
		                   w->lag_text != NULL ? w->lag_text : "",
		                   w->lag_text != NULL ? ", " : "", n->name,
		                   n->applied_version);
		free(w->lag_text);
		w->lag_text = next;
		json_array_append_new(
		        w->lag,
		        json_pack("{s:o, s:o}", "name", cli_json_str(n->name),
		                  "applied_version",
		                  cli_json_u64(n->applied_version)));
	}
}

/* One StatusReq; false when it failed (w->error says why). */
static bool
poll_status(struct cli *cli, struct wait_state *w, uint64_t version,
            unsigned timeout_ms)
{
	Mc__StatusReq sreq = MC__STATUS_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	bool ok = false;

	req.body_case = MC__REQUEST__BODY_STATUS;
	req.status = &sreq;
	if (call_raw(cli, &req, timeout_ms, &resp, &w->error) < 0)
		return false;
	if (resp->status != MC__STATUS__STATUS_OK)
		w->error = mc_errorf("status request: %s%s%s",
		                     mc_rpc_status_str(resp->status),
		                     resp->error[0] != '\0' ? ": " : "",
		                     resp->error);
	else if (resp->body_case != MC__RESPONSE__BODY_STATUS_INFO)
		w->error = "status request: reply without status";
	else
		ok = true;
	if (ok)
		wait_state_update(w, resp->status_info, version);
	mc__response__free_unpacked(resp, NULL);
	return ok;
}

/* Poll until every live node applied version (0) or the --wait-timeout
 * passes (-1). Nodes that are down are not waited for: they resync from a
 * snapshot when they come back. */
static int
wait_applied(struct cli *cli, uint64_t version, struct wait_state *w)
{
	int64_t deadline =
	        monotonic_ms() + (int64_t)cli->args.wait_timeout_s * 1000;

	w->error = "no status received";
	for (;;) {
		int64_t left = deadline - monotonic_ms();
		unsigned tmo = cli->args.timeout_ms;

		if (left < (int64_t)tmo)
			tmo = left > 1 ? (unsigned)left : 1;
		if (poll_status(cli, w, version, tmo) && w->lag_text == NULL)
			return 0;
		if (monotonic_ms() + CLI_WAIT_POLL_MS >= deadline)
			return -1;
		sleep_ms(CLI_WAIT_POLL_MS);
	}
}

static bool
response_object_id(const Mc__Response *resp, uint64_t *id_r)
{
	switch (resp->body_case) {
	case MC__RESPONSE__BODY_DOMAIN:
		*id_r = resp->domain->id;
		return true;
	case MC__RESPONSE__BODY_ACCOUNT:
		*id_r = resp->account->id;
		return true;
	case MC__RESPONSE__BODY_ALIAS:
		*id_r = resp->alias->id;
		return true;
	case MC__RESPONSE__BODY_ROUTE:
		*id_r = resp->route->id;
		return true;
	case MC__RESPONSE__BODY_ROUTE_RULE:
		*id_r = resp->route_rule->id;
		return true;
	default:
		return false;
	}
}

static json_t *
mutation_json(const Mc__Response *resp, bool ok)
{
	json_t *doc = json_pack("{s:b, s:o}", "ok", ok, "version",
	                        cli_json_u64(resp->version));
	uint64_t id;

	if (response_object_id(resp, &id))
		json_object_set_new(doc, "id", cli_json_u64(id));
	/* New DKIM keys: their selectors and DNS records. */
	if (resp->body_case == MC__RESPONSE__BODY_DKIM_KEYS)
		json_object_set_new(doc, "keys", cli_dkim_keys_json(resp->dkim_keys));
	return doc;
}

static int
wait_timed_out(struct cli *cli, const Mc__Response *resp, struct wait_state *w)
{
	char *text;
	json_t *doc;

	if (w->have_status)
		text = mc_asprintf("timed out after %u s waiting for version "
		                   "%" PRIu64 "; lagging live nodes: %s",
		                   cli->args.wait_timeout_s, resp->version,
		                   w->lag_text);
	else
		text = mc_asprintf("timed out after %u s waiting for version "
		                   "%" PRIu64 ": %s",
		                   cli->args.wait_timeout_s, resp->version,
		                   w->error);
	fprintf(stderr, "mailctl: error: %s\n", text);
	if (cli->args.json) {
		doc = mutation_json(resp, false);
		json_object_set_new(doc, "status", json_string("wait timeout"));
		json_object_set_new(doc, "error", cli_json_str(text));
		json_object_set_new(doc, "lagging",
		                    w->lag != NULL ? json_incref(w->lag)
		                                   : json_array());
		cli_json_print(doc);
	}
	free(text);
	return CLI_EXIT_WAIT_TIMEOUT;
}

int
cli_mutation_done(struct cli *cli, const Mc__Response *resp, const char *what,
                  const char *detail)
{
	struct wait_state w = {0};
	int ret = CLI_EXIT_OK;
	char idtext[32] = "";
	uint64_t id;

	if (!cli->args.json) {
		if (response_object_id(resp, &id))
			snprintf(idtext, sizeof(idtext), "id %" PRIu64 ", ",
			         id);
		printf("%s (%sversion %" PRIu64 "%s%s)\n", what, idtext,
		       resp->version, detail != NULL ? ", " : "",
		       detail != NULL ? detail : "");
		fflush(stdout);
	}
	if (cli->args.wait && wait_applied(cli, resp->version, &w) < 0)
		ret = wait_timed_out(cli, resp, &w);
	else if (cli->args.json)
		cli_json_print(mutation_json(resp, true));
	else if (cli->args.wait && w.live == 0)
		printf("no live node to wait for\n");
	else if (cli->args.wait)
		printf("version %" PRIu64 " applied by every live node (%zu)\n",
		       resp->version, w.live);
	wait_state_fini(&w);
	return ret;
}

void
cli_fini(struct cli *cli)
{
	if (cli->sock_open)
		nng_close(cli->sock);
	cli->sock_open = false;
	cli->connected = false;
	mc_secret_free(&cli->token);
	cli_args_fini(&cli->args);
}
