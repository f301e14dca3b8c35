/* mailctl route add | default | rule add | rule rm | list | rm: the
 * outbound routes relays deliver over, like a Postfix transport map. A
 * route is a smarthost (HOST:PORT, TLS mode, optional AUTH whose secret is
 * a reference the relay resolves: an environment variable or a file on
 * the relay) or direct MX delivery; a rule picks the route for one
 * recipient domain; the default route takes the rest, and without one
 * mail goes directly to the recipient's MX. Options are checked here
 * before anything is sent; the controller checks again. */
#include "cli.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory.h"
#include "hostport.h"
#include "mem.h"

#define CLI_AUTH_USER_MAX 255

static const char *const tls_names[] = {"none", "starttls", "implicit"};

static const char *
tls_name(Mc__RouteTls tls)
{
	return (unsigned)tls < 3 ? tls_names[tls] : "?";
}

static bool
auth_user_valid(const char *user)
{
	size_t len = strlen(user);

	if (len == 0 || len > CLI_AUTH_USER_MAX)
		return false;
	for (const char *p = user; *p != '\0'; p++)
		if (!isgraph((unsigned char)*p))
			return false;
	return true;
}

/* --tls MODE, starttls when not given. */
static int
parse_tls(const struct cli *cli, Mc__RouteTls *tls_r)
{
	const char *mode = cli->args.tls_mode;

	if (mode == NULL) {
		*tls_r = MC__ROUTE_TLS__ROUTE_TLS_STARTTLS;
		return CLI_EXIT_OK;
	}
	for (unsigned i = 0; i < 3; i++)
		if (strcasecmp(mode, tls_names[i]) == 0) {
			*tls_r = (Mc__RouteTls)i;
			return CLI_EXIT_OK;
		}
	return cli_usage_error(cli,
	                       "invalid --tls '%s': expected starttls, "
	                       "implicit or none",
	                       mode);
}

/* AUTH: a user and exactly one secret reference, over TLS only. */
static int
check_auth(const struct cli *cli, Mc__RouteTls tls)
{
	const struct cli_args *a = &cli->args;

	if (a->auth_user == NULL)
		return a->secret_env != NULL || a->secret_file != NULL
		               ? cli_usage_error(
		                         cli, "--secret-env and --secret-file "
		                              "go with --auth-user")
		               : CLI_EXIT_OK;
	if (!auth_user_valid(a->auth_user))
		return cli_usage_error(cli,
		                       "invalid --auth-user: 1-%d printable "
		                       "characters without spaces",
		                       CLI_AUTH_USER_MAX);
	if ((a->secret_env != NULL) == (a->secret_file != NULL))
		return cli_usage_error(cli,
		                       "--auth-user needs exactly one of "
		                       "--secret-env VAR or --secret-file PATH "
		                       "(the secret itself is never given to "
		                       "mailctl)");
	if (tls == MC__ROUTE_TLS__ROUTE_TLS_NONE)
		return cli_usage_error(
		        cli, "--auth-user needs --tls starttls or "
		             "implicit: a password must not cross the "
		             "network in clear");
	if (a->secret_env != NULL &&
	    !mc_directory_env_name_valid(a->secret_env))
		return cli_usage_error(cli,
		                       "invalid --secret-env '%s': an "
		                       "environment variable name, "
		                       "[A-Za-z_][A-Za-z0-9_]* (at most %d)",
		                       a->secret_env, MC_DIR_ENV_NAME_MAX);
	if (a->secret_file != NULL &&
	    !mc_directory_secret_path_valid(a->secret_file))
		return cli_usage_error(
		        cli,
		        "invalid --secret-file '%s': an absolute "
		        "path on the relay, without spaces, '.' or "
		        "'..' components (at most %d)",
		        a->secret_file, MC_DIR_SECRET_PATH_MAX);
	return CLI_EXIT_OK;
}

int
cli_route_add_request(const struct cli *cli, const char *name,
                      Mc__RouteAddReq *q, char *host_buf)
{
	const struct cli_args *a = &cli->args;
	const char *error;
	uint16_t port;
	Mc__RouteTls tls = MC__ROUTE_TLS__ROUTE_TLS_STARTTLS;
	int ret;

	if (!mc_directory_route_name_valid(name))
		return cli_usage_error(
		        cli,
		        "invalid route name '%s': 1-%d characters "
		        "of a-z 0-9 . - _ starting with a letter or "
		        "digit",
		        name, MC_DIR_ROUTE_NAME_MAX);
	q->name = (char *)name;
	if (a->mx == (a->smarthost != NULL))
		return cli_usage_error(
		        cli, "give either --smarthost HOST:PORT or --mx");
	if (a->mx) {
		if (a->tls_mode != NULL || a->auth_user != NULL ||
		    a->secret_env != NULL || a->secret_file != NULL)
			return cli_usage_error(
			        cli, "--mx takes no --tls, --auth-user, "
			             "--secret-env or --secret-file (direct "
			             "MX delivery uses opportunistic "
			             "STARTTLS and no AUTH)");
		q->kind = MC__ROUTE_KIND__ROUTE_KIND_MX;
		return CLI_EXIT_OK;
	}
	if (mc_hostport_parse(a->smarthost, host_buf, &port, &error) < 0)
		return cli_usage_error(cli, "invalid --smarthost: %s", error);
	if (!mc_directory_route_host_valid(host_buf))
		return cli_usage_error(
		        cli,
		        "invalid --smarthost '%s': the host must be "
		        "a host name or an IP address",
		        a->smarthost);
	if ((ret = parse_tls(cli, &tls)) != CLI_EXIT_OK ||
	    (ret = check_auth(cli, tls)) != CLI_EXIT_OK)
		return ret;
	q->kind = MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST;
	q->host = host_buf;
	q->port = port;
	q->tls = tls;
	q->auth_user = (char *)(a->auth_user != NULL ? a->auth_user : "");
	q->secret_env = (char *)(a->secret_env != NULL ? a->secret_env : "");
	q->secret_file = (char *)(a->secret_file != NULL ? a->secret_file : "");
	return CLI_EXIT_OK;
}

json_t *
cli_route_json(const Mc__Route *r)
{
	return json_pack(
	        "{s:o, s:o, s:s, s:o, s:i, s:s, s:o, s:o, s:o, s:b, s:I}", "id",
	        cli_json_u64(r->id), "name", cli_json_str(r->name), "kind",
	        r->kind == MC__ROUTE_KIND__ROUTE_KIND_MX ? "mx" : "smarthost",
	        "host", cli_json_str(r->host), "port", (int)r->port, "tls",
	        tls_name(r->tls), "auth_user", cli_json_str(r->auth_user),
	        "secret_env", cli_json_str(r->secret_env), "secret_file",
	        cli_json_str(r->secret_file), "default", (int)r->is_default,
	        "created_at", (json_int_t)r->created_at);
}

/* Send a prepared request and report the change. */
static int
mutate(struct cli *cli, Mc__Request *req, const char *what)
{
	Mc__Response *resp;
	int ret;

	if ((ret = cli_call(cli, req, &resp)) != CLI_EXIT_OK)
		return ret;
	ret = cli_mutation_done(cli, resp, what, NULL);
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static int
route_add(struct cli *cli)
{
	Mc__RouteAddReq body = MC__ROUTE_ADD_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	char host[MC_HOST_MAX + 1], *what;
	int ret;

	if ((ret = cli_route_add_request(cli, cli->operands[0], &body, host)) !=
	    CLI_EXIT_OK)
		return ret;
	req.body_case = MC__REQUEST__BODY_ROUTE_ADD;
	req.route_add = &body;
	what = mc_asprintf("added route %s", body.name);
	ret = mutate(cli, &req, what);
	free(what);
	return ret;
}

static int
check_name(const struct cli *cli, const char *name)
{
	if (mc_directory_route_name_valid(name))
		return CLI_EXIT_OK;
	return cli_usage_error(cli,
	                       "invalid route name '%s': 1-%d characters of "
	                       "a-z 0-9 . - _ starting with a letter or digit",
	                       name, MC_DIR_ROUTE_NAME_MAX);
}

static int
route_default(struct cli *cli)
{
	Mc__RouteDefaultReq body = MC__ROUTE_DEFAULT_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	char *what;
	int ret;

	if ((ret = check_name(cli, cli->operands[0])) != CLI_EXIT_OK)
		return ret;
	body.name = (char *)cli->operands[0];
	req.body_case = MC__REQUEST__BODY_ROUTE_DEFAULT;
	req.route_default = &body;
	what = mc_asprintf("default route is %s", body.name);
	ret = mutate(cli, &req, what);
	free(what);
	return ret;
}

static int
rule_add(struct cli *cli)
{
	Mc__RouteRuleAddReq body = MC__ROUTE_RULE_ADD_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	char domain[MC_DOMAIN_MAX + 1], *what;
	int ret;

	if ((ret = cli_check_domain(cli, cli->operands[0], domain)) !=
	            CLI_EXIT_OK ||
	    (ret = check_name(cli, cli->operands[1])) != CLI_EXIT_OK)
		return ret;
	body.domain = domain;
	body.route = (char *)cli->operands[1];
	req.body_case = MC__REQUEST__BODY_ROUTE_RULE_ADD;
	req.route_rule_add = &body;
	what = mc_asprintf("mail for %s goes over route %s", domain,
	                   body.route);
	ret = mutate(cli, &req, what);
	free(what);
	return ret;
}

static int
rule_rm(struct cli *cli)
{
	Mc__RouteRuleRmReq body = MC__ROUTE_RULE_RM_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	char domain[MC_DOMAIN_MAX + 1], *what;
	int ret;

	if ((ret = cli_check_domain(cli, cli->operands[0], domain)) !=
	    CLI_EXIT_OK)
		return ret;
	body.domain = domain;
	req.body_case = MC__REQUEST__BODY_ROUTE_RULE_RM;
	req.route_rule_rm = &body;
	what = mc_asprintf("removed the route rule for %s", domain);
	ret = mutate(cli, &req, what);
	free(what);
	return ret;
}

static int
route_rm(struct cli *cli)
{
	Mc__RouteRmReq body = MC__ROUTE_RM_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	char *what;
	int ret;

	if ((ret = check_name(cli, cli->operands[0])) != CLI_EXIT_OK)
		return ret;
	body.name = (char *)cli->operands[0];
	body.force = cli->args.force;
	req.body_case = MC__REQUEST__BODY_ROUTE_RM;
	req.route_rm = &body;
	what = mc_asprintf("removed route %s%s", body.name,
	                   body.force ? " (with its rules)" : "");
	ret = mutate(cli, &req, what);
	free(what);
	return ret;
}

/* "HOST:PORT" ("[v6]:PORT") or "-" for MX. */
static char *
target(const Mc__Route *r)
{
	if (r->kind == MC__ROUTE_KIND__ROUTE_KIND_MX)
		return mc_strdup("MX of the recipient domain");
	return strchr(r->host, ':') != NULL
	               ? mc_asprintf("[%s]:%u", r->host, r->port)
	               : mc_asprintf("%s:%u", r->host, r->port);
}

static char *
auth_text(const Mc__Route *r)
{
	if (r->auth_user[0] == '\0')
		return mc_strdup("-");
	return mc_asprintf("%s (secret %s %s)", r->auth_user,
	                   r->secret_env[0] != '\0' ? "env" : "file",
	                   r->secret_env[0] != '\0' ? r->secret_env
	                                            : r->secret_file);
}

static void
print_routes(const struct cli *cli, const Mc__RouteList *l)
{
	static const char *const headers[] = {
	        "NAME", "KIND", "TARGET", "TLS", "AUTH", "DEFAULT", "ID"};
	static const char *const rule_headers[] = {"RULE DOMAIN", "ROUTE"};
	const char *def = NULL;
	struct cli_table t;

	for (size_t i = 0; i < l->n_routes; i++)
		if (l->routes[i]->is_default)
			def = l->routes[i]->name;
	if (cli->args.json) {
		json_t *routes = json_array(), *rules = json_array();

		for (size_t i = 0; i < l->n_routes; i++)
			json_array_append_new(routes,
			                      cli_route_json(l->routes[i]));
		for (size_t i = 0; i < l->n_rules; i++)
			json_array_append_new(
			        rules,
			        json_pack("{s:o, s:o, s:o, s:o}", "id",
			                  cli_json_u64(l->rules[i]->id),
			                  "domain",
			                  cli_json_str(l->rules[i]->domain),
			                  "route",
			                  cli_json_str(l->rules[i]->route),
			                  "route_id",
			                  cli_json_u64(l->rules[i]->route_id)));
		cli_json_print(json_pack("{s:o, s:o, s:o}", "routes", routes,
		                         "rules", rules, "default",
		                         def != NULL ? cli_json_str(def)
		                                     : json_null()));
		return;
	}
	cli_table_init(&t, 7, headers);
	for (size_t i = 0; i < l->n_routes; i++) {
		const Mc__Route *r = l->routes[i];
		char *tgt = target(r), *auth = auth_text(r), id[24];
		bool mx = r->kind == MC__ROUTE_KIND__ROUTE_KIND_MX;

		snprintf(id, sizeof(id), "%" PRIu64, r->id);
		cli_table_add(&t, r->name, mx ? "mx" : "smarthost", tgt,
		              mx ? "opportunistic" : tls_name(r->tls), auth,
		              r->is_default ? "yes" : "", id);
		free(tgt);
		free(auth);
	}
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
	putchar('\n');
	cli_table_init(&t, 2, rule_headers);
	for (size_t i = 0; i < l->n_rules; i++)
		cli_table_add(&t, l->rules[i]->domain, l->rules[i]->route);
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
	if (def != NULL)
		printf("\nOther mail goes over the default route, %s.\n", def);
	else
		printf("\nNo default route: other mail goes directly to the "
		       "recipient domain's MX.\n");
}

static int
route_list(struct cli *cli)
{
	Mc__RouteListReq body = MC__ROUTE_LIST_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__RouteList empty = MC__ROUTE_LIST__INIT;
	Mc__Response *resp;
	int ret;

	req.body_case = MC__REQUEST__BODY_ROUTE_LIST;
	req.route_list = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	print_routes(cli, resp->body_case == MC__RESPONSE__BODY_ROUTES
	                          ? resp->routes
	                          : &empty);
	mc__response__free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

static const char route_add_help[] =
        "NAME is 1-64 characters of a-z 0-9 . - _. The route is one of:\n"
        "  --smarthost HOST:PORT  deliver through this server; HOST is a name\n"
        "                     or an IP address ([v6]:PORT for IPv6)\n"
        "  --mx               deliver directly to the recipient domain's MX\n"
        "                     (opportunistic STARTTLS, no AUTH)\n\n"
        "Smarthost options:\n"
        "  --tls MODE         starttls (the default), implicit (TLS from the\n"
        "                     first byte, port 465) or none\n"
        "  --auth-user USER   log in as USER (needs TLS) with the secret in\n"
        "  --secret-env VAR   the relay's environment variable VAR, or\n"
        "  --secret-file PATH the file PATH on the relay (absolute)\n"
        "The secret itself never passes through mailctl or the controller:\n"
        "each relay reads it when it connects.\n";

static const char route_rm_help[] =
        "A route that is the default or that rules use is refused\n"
        "(conflict, exit status 1) unless --force is given, which also\n"
        "removes those rules and the default (mail without a rule then goes\n"
        "directly to the recipient domain's MX).\n\n"
        "Options:\n"
        "  --force            also remove its rules and the default\n";

static const char route_list_help[] =
        "The routes (NAME, KIND, TARGET, TLS, AUTH with the secret reference,\n"
        "DEFAULT, ID), then the rules (RULE DOMAIN, ROUTE). With --json:\n"
        "{\"routes\":[{\"id\",\"name\",\"kind\",\"host\",\"port\",\"tls\",\n"
        "\"auth_user\",\"secret_env\",\"secret_file\",\"default\",\n"
        "\"created_at\"}],\"rules\":[{\"id\",\"domain\",\"route\",\n"
        "\"route_id\"}],\"default\":NAME or null}\n";

static const char route_rule_add_help[] =
        "Mail to recipients in DOMAIN (exactly that domain, not its\n"
        "subdomains) goes over route NAME. A rule for DOMAIN that exists is\n"
        "replaced in place.\n";

/* clang-format off */
static const struct cli_command route_commands[] = {
	{
		.verb = "add",
		.synopsis = "NAME (--smarthost HOST:PORT [...] | --mx)",
		.summary = "Add an outbound route.",
		.help = route_add_help,
		.options = CLI_OPT_WAIT | CLI_OPT_SMARTHOST | CLI_OPT_MX | CLI_OPT_TLS |
		           CLI_OPT_AUTH_USER | CLI_OPT_SECRET_ENV | CLI_OPT_SECRET_FILE,
		.min_operands = 1,
		.max_operands = 1,
		.run = route_add,
	},
	{
		.verb = "default",
		.synopsis = "NAME",
		.summary = "Set the route for mail without a rule.",
		.options = CLI_OPT_WAIT,
		.min_operands = 1,
		.max_operands = 1,
		.run = route_default,
	},
	{
		.verb = "rule add",
		.synopsis = "DOMAIN NAME",
		.summary = "Route a recipient domain's mail.",
		.help = route_rule_add_help,
		.options = CLI_OPT_WAIT,
		.min_operands = 2,
		.max_operands = 2,
		.run = rule_add,
	},
	{
		.verb = "rule rm",
		.synopsis = "DOMAIN",
		.summary = "Remove a recipient domain's rule.",
		.options = CLI_OPT_WAIT,
		.min_operands = 1,
		.max_operands = 1,
		.run = rule_rm,
	},
	{
		.verb = "list",
		.synopsis = "",
		.summary = "List routes, rules and the default.",
		.help = route_list_help,
		.min_operands = 0,
		.max_operands = 0,
		.run = route_list,
	},
	{
		.verb = "rm",
		.synopsis = "NAME [--force]",
		.summary = "Remove a route.",
		.help = route_rm_help,
		.options = CLI_OPT_WAIT | CLI_OPT_FORCE,
		.min_operands = 1,
		.max_operands = 1,
		.run = route_rm,
	},
};
/* clang-format on */

const struct cli_noun cli_route_noun = {
        .name = "route",
        .summary = "Manage outbound routes: smarthosts, direct MX, per-domain "
                   "rules.",
        .help = "Mail to a recipient domain with a rule goes over the rule's "
                "route; other\nmail over the default route; without a default, "
                "directly to the\nrecipient domain's MX. Changes reach the "
                "relays live.\n",
        .commands = route_commands,
        .ncommands = sizeof(route_commands) / sizeof(route_commands[0]),
};
