/* mailctl domain add | list | rm: the mail domains the cluster accepts
 * mail for. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>

#include "mem.h"

static int
domain_add(struct cli *cli)
{
	char name[MC_DOMAIN_MAX + 1];
	Mc__DomainAddReq body = MC__DOMAIN_ADD_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	char *what;
	int ret;

	if ((ret = cli_check_domain(cli, cli->operands[0], name)) !=
	    CLI_EXIT_OK)
		return ret;
	body.name = name;
	req.body_case = MC__REQUEST__BODY_DOMAIN_ADD;
	req.domain_add = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	what = mc_asprintf("added domain %s",
	                   resp->body_case == MC__RESPONSE__BODY_DOMAIN
	                           ? resp->domain->name
	                           : name);
	ret = cli_mutation_done(cli, resp, what, NULL);
	free(what);
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static void
print_domains(const struct cli *cli, const Mc__DomainList *list)
{
	static const char *const headers[] = {"ID", "NAME", "CREATED"};
	size_t n = list != NULL ? list->n_domains : 0;
	struct cli_table t;
	json_t *arr;

	if (cli->args.json) {
		arr = json_array();
		for (size_t i = 0; i < n; i++) {
			const Mc__Domain *d = list->domains[i];

			json_array_append_new(
			        arr,
			        json_pack("{s:o, s:o, s:I}", "id",
			                  cli_json_u64(d->id), "name",
			                  cli_json_str(d->name), "created_at",
			                  (json_int_t)d->created_at));
		}
		cli_json_print(json_pack("{s:o}", "domains", arr));
		return;
	}
	cli_table_init(&t, 3, headers);
	for (size_t i = 0; i < n; i++) {
		const Mc__Domain *d = list->domains[i];
		char id[24], created[CLI_FMT_SIZE];

		snprintf(id, sizeof(id), "%" PRIu64, d->id);
		cli_table_add(&t, id, d->name,
		              cli_format_time(d->created_at, created));
	}
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
}

static int
domain_list(struct cli *cli)
{
	Mc__DomainListReq body = MC__DOMAIN_LIST_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	req.body_case = MC__REQUEST__BODY_DOMAIN_LIST;
	req.domain_list = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	print_domains(cli, resp->body_case == MC__RESPONSE__BODY_DOMAINS
	                           ? resp->domains
	                           : NULL);
	mc__response__free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

static int
domain_rm(struct cli *cli)
{
	char name[MC_DOMAIN_MAX + 1];
	Mc__DomainRmReq body = MC__DOMAIN_RM_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	char *what;
	int ret;

	if ((ret = cli_check_domain(cli, cli->operands[0], name)) !=
	    CLI_EXIT_OK)
		return ret;
	body.name = name;
	body.force = cli->args.force;
	req.body_case = MC__REQUEST__BODY_DOMAIN_RM;
	req.domain_rm = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	what = mc_asprintf("removed domain %s%s", name,
	                   cli->args.force ? " with its accounts and aliases"
	                                   : "");
	ret = cli_mutation_done(cli, resp, what, NULL);
	free(what);
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static const char domain_add_help[] =
        "NAME is a domain name such as example.org (stored lower-case;\n"
        "give IDNs as A-labels, xn--...). The cluster then accepts mail\n"
        "for the domain's accounts and aliases.\n";

static const char domain_list_help[] =
        "Columns: ID, NAME, CREATED (local time). With --json:\n"
        "{\"domains\":[{\"id\",\"name\",\"created_at\"}]}, times in unix "
        "seconds.\n";

static const char domain_rm_help[] =
        "A domain that still has accounts or aliases is refused (conflict,\n"
        "exit status 1) unless --force is given, which removes them too.\n\n"
        "Options:\n"
        "  --force            also remove the domain's accounts and aliases\n";

/* clang-format off */
static const struct cli_command domain_commands[] = {
	{
		.verb = "add",
		.synopsis = "NAME",
		.summary = "Add a mail domain.",
		.help = domain_add_help,
		.options = CLI_OPT_WAIT,
		.min_operands = 1,
		.max_operands = 1,
		.run = domain_add,
	},
	{
		.verb = "list",
		.synopsis = "",
		.summary = "List the mail domains.",
		.help = domain_list_help,
		.min_operands = 0,
		.max_operands = 0,
		.run = domain_list,
	},
	{
		.verb = "rm",
		.synopsis = "NAME [--force]",
		.summary = "Remove a mail domain.",
		.help = domain_rm_help,
		.options = CLI_OPT_WAIT | CLI_OPT_FORCE,
		.min_operands = 1,
		.max_operands = 1,
		.run = domain_rm,
	},
};
/* clang-format on */

const struct cli_noun cli_domain_noun = {
        .name = "domain",
        .summary = "Manage the mail domains the cluster accepts mail for.",
        .commands = domain_commands,
        .ncommands = sizeof(domain_commands) / sizeof(domain_commands[0]),
};
