/* mailctl alias add | list | rm: addresses that forward to one or more
 * destinations (local accounts or foreign addresses), including a domain's
 * catch-all "*@domain". */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>

#include "mem.h"

char *
cli_alias_address(const Mc__Alias *alias)
{
	return mc_asprintf("%s@%s", alias->local_part, alias->domain);
}

char *
cli_alias_destinations(const Mc__Alias *alias)
{
	char *s = mc_strdup("");

	for (size_t i = 0; i < alias->n_destinations; i++) {
		char *next = mc_asprintf("%s%s%s", s, i > 0 ? ", " : "",
		                         alias->destinations[i]);
		free(s);
		s = next;
	}
	return s;
}

json_t *
cli_alias_json(const Mc__Alias *alias)
{
	char *addr = cli_alias_address(alias);
	json_t *dests = json_array();
	json_t *j;

	for (size_t i = 0; i < alias->n_destinations; i++)
		json_array_append_new(dests,
		                      cli_json_str(alias->destinations[i]));
	j = json_pack("{s:o, s:o, s:o}", "id", cli_json_u64(alias->id),
	              "address", cli_json_str(addr), "destinations", dests);
	free(addr);
	return j;
}

static int
alias_add(struct cli *cli)
{
	size_t ndest = cli->noperands - 1;
	char source[MC_ADDR_MAX + 1], *what = NULL;
	char(*dests)[MC_ADDR_MAX + 1] = mc_calloc(ndest, sizeof(*dests));
	char **destp = mc_calloc(ndest, sizeof(*destp));
	Mc__AliasAddReq body = MC__ALIAS_ADD_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp = NULL;
	int ret;

	if ((ret = cli_check_address(cli, "alias address", cli->operands[0],
	                             true, source)) != CLI_EXIT_OK)
		goto out;
	for (size_t i = 0; i < ndest; i++) {
		if ((ret = cli_check_address(cli, "destination",
		                             cli->operands[i + 1], false,
		                             dests[i])) != CLI_EXIT_OK)
			goto out;
		destp[i] = dests[i];
	}
	body.address = source;
	body.n_destinations = ndest;
	body.destinations = destp;
	req.body_case = MC__REQUEST__BODY_ALIAS_ADD;
	req.alias_add = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		goto out;
	what = mc_asprintf("added alias %s", source);
	ret = cli_mutation_done(cli, resp, what, NULL);
out:
	free(what);
	free(destp);
	free(dests);
	if (resp != NULL)
		mc__response__free_unpacked(resp, NULL);
	return ret;
}

static void
print_aliases(const struct cli *cli, const Mc__AliasList *list)
{
	static const char *const headers[] = {"ID", "ADDRESS", "DESTINATIONS"};
	size_t n = list != NULL ? list->n_aliases : 0;
	struct cli_table t;
	json_t *arr;

	if (cli->args.json) {
		arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr,
			                      cli_alias_json(list->aliases[i]));
		cli_json_print(json_pack("{s:o}", "aliases", arr));
		return;
	}
	cli_table_init(&t, 3, headers);
	for (size_t i = 0; i < n; i++) {
		char id[24], *src = cli_alias_address(list->aliases[i]);
		char *dests = cli_alias_destinations(list->aliases[i]);

		snprintf(id, sizeof(id), "%" PRIu64, list->aliases[i]->id);
		cli_table_add(&t, id, src, dests);
		free(src);
		free(dests);
	}
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
}

static int
alias_list(struct cli *cli)
{
	char domain[MC_DOMAIN_MAX + 1] = "";
	Mc__AliasListReq body = MC__ALIAS_LIST_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	if (cli->args.domain != NULL &&
	    (ret = cli_check_domain(cli, cli->args.domain, domain)) !=
	            CLI_EXIT_OK)
		return ret;
	body.domain = domain;
	req.body_case = MC__REQUEST__BODY_ALIAS_LIST;
	req.alias_list = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	print_aliases(cli, resp->body_case == MC__RESPONSE__BODY_ALIASES
	                           ? resp->aliases
	                           : NULL);
	mc__response__free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

static int
alias_rm(struct cli *cli)
{
	char source[MC_ADDR_MAX + 1], *what;
	Mc__AliasRmReq body = MC__ALIAS_RM_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	if ((ret = cli_check_address(cli, "alias address", cli->operands[0],
	                             true, source)) != CLI_EXIT_OK)
		return ret;
	body.address = source;
	req.body_case = MC__REQUEST__BODY_ALIAS_RM;
	req.alias_rm = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	what = mc_asprintf("removed alias %s", source);
	ret = cli_mutation_done(cli, resp, what, NULL);
	free(what);
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static const char alias_add_help[] =
        "ADDRESS is local@domain in an existing domain, or '*@domain' for\n"
        "the domain's catch-all (quote the '*' for the shell), which gets\n"
        "the mail for addresses of the domain that match no account or\n"
        "alias. Each DEST is a full address, local or foreign.\n";

static const char alias_list_help[] =
        "Columns: ID, ADDRESS, DESTINATIONS. With --json:\n"
        "{\"aliases\":[{\"id\",\"address\",\"destinations\":[...]}]}\n\n"
        "Options:\n"
        "  --domain DOMAIN    only the aliases of DOMAIN\n";

/* clang-format off */
static const struct cli_command alias_commands[] = {
	{
		.verb = "add",
		.synopsis = "ADDRESS DEST [DEST...]",
		.summary = "Add an alias or a *@domain catch-all.",
		.help = alias_add_help,
		.options = CLI_OPT_WAIT,
		.min_operands = 2,
		.max_operands = SIZE_MAX,
		.run = alias_add,
	},
	{
		.verb = "list",
		.synopsis = "[--domain DOMAIN]",
		.summary = "List aliases, all or one domain's.",
		.help = alias_list_help,
		.options = CLI_OPT_DOMAIN,
		.min_operands = 0,
		.max_operands = 0,
		.run = alias_list,
	},
	{
		.verb = "rm",
		.synopsis = "ADDRESS",
		.summary = "Remove an alias or catch-all.",
		.options = CLI_OPT_WAIT,
		.min_operands = 1,
		.max_operands = 1,
		.run = alias_rm,
	},
};
/* clang-format on */

const struct cli_noun cli_alias_noun = {
        .name = "alias",
        .summary = "Manage aliases and catch-all addresses.",
        .commands = alias_commands,
        .ncommands = sizeof(alias_commands) / sizeof(alias_commands[0]),
};
