/* mailctl domain add | list | rm | dns: the mail domains the cluster
 * accepts mail for, and the DNS records each needs (as a zone-file
 * snippet, or JSON). */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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

/* "name." for a zone file. */
static char *
absolute(const char *name)
{
	return mc_asprintf("%s.", name);
}

static void
print_zone(const Mc__DomainDns *dns, uint64_t version)
{
	printf("; DNS records for %s (mail-controller, cluster version %" PRIu64
	       ")\n", dns->domain, version);
	for (size_t i = 0; i < dns->n_records; i++) {
		const Mc__DnsRecord *r = dns->records[i];
		char *name = absolute(r->name), *value;

		if (strcmp(r->type, "MX") == 0) {
			char *host = absolute(r->value);

			value = mc_asprintf("%u %s", r->priority, host);
			free(host);
		} else if (strcmp(r->type, "TXT") == 0) {
			value = cli_dns_txt(r->value);
		} else {
			value = mc_strdup(r->value);
		}
		printf("; %s\n%s\t%u\tIN\t%s\t%s\n", r->comment, name, r->ttl, r->type,
		       value);
		free(name);
		free(value);
	}
	for (size_t i = 0; i < dns->n_warnings; i++)
		printf("; WARNING: %s\n", dns->warnings[i]);
}

static void
print_dns_json(const Mc__DomainDns *dns, uint64_t version)
{
	json_t *records = json_array(), *warnings = json_array();

	for (size_t i = 0; i < dns->n_records; i++) {
		const Mc__DnsRecord *r = dns->records[i];
		json_t *rec = json_pack("{s:o, s:s, s:i, s:o, s:o}", "name",
		                        cli_json_str(r->name), "type", r->type, "ttl",
		                        (int)r->ttl, "value", cli_json_str(r->value),
		                        "comment", cli_json_str(r->comment));

		if (strcmp(r->type, "MX") == 0)
			json_object_set_new(rec, "priority", json_integer(r->priority));
		json_array_append_new(records, rec);
	}
	for (size_t i = 0; i < dns->n_warnings; i++)
		json_array_append_new(warnings, cli_json_str(dns->warnings[i]));
	cli_json_print(json_pack("{s:o, s:o, s:o, s:o}", "domain",
	                         cli_json_str(dns->domain), "version",
	                         cli_json_u64(version), "records", records,
	                         "warnings", warnings));
}

static int
domain_dns(struct cli *cli)
{
	char name[MC_DOMAIN_MAX + 1];
	Mc__DomainDnsReq body = MC__DOMAIN_DNS_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	if ((ret = cli_check_domain(cli, cli->operands[0], name)) != CLI_EXIT_OK)
		return ret;
	body.name = name;
	req.body_case = MC__REQUEST__BODY_DOMAIN_DNS;
	req.domain_dns = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	if (resp->body_case != MC__RESPONSE__BODY_DOMAIN_DNS) {
		mc__response__free_unpacked(resp, NULL);
		return cli_fail(cli, CLI_EXIT_UNREACHABLE, "unreachable",
		                "malformed reply from the controller");
	}
	if (cli->args.json)
		print_dns_json(resp->domain_dns, resp->version);
	else
		print_zone(resp->domain_dns, resp->version);
	mc__response__free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

static const char domain_dns_help[] =
        "Prints the records DOMAIN needs, as a zone-file snippet (absolute\n"
        "names, TTL 3600, long TXT texts split into 255-octet strings):\n"
        "  MX      one per relay with a public_name, priority 10\n"
        "  TXT     SPF \"v=spf1 mx -all\": the relays (the MX hosts) send\n"
        "          the domain's mail, and only they may\n"
        "  TXT     SELECTOR._domainkey: each DKIM key, active ones and\n"
        "          inactive ones still in their grace period\n"
        "  TXT     _dmarc: \"v=DMARC1; p=quarantine;\n"
        "          rua=mailto:postmaster@DOMAIN\"\n"
        "  A/AAAA  each relay's public_name to its public_addresses\n"
        "Relays register public_name and public_addresses from their\n"
        "configuration. What is missing (no relay with a public name, no\n"
        "DKIM key, smarthost routes that SPF must also allow, no postmaster\n"
        "address for DMARC reports) ends the snippet as '; WARNING:' lines.\n"
        "With --json: {\"domain\",\"version\",\"records\":[{\"name\",\"type\",\n"
        "\"ttl\",\"value\",\"comment\",\"priority\" (MX)}],\"warnings\":[...]},\n"
        "names without the final dot, TXT values unquoted and unsplit.\n";

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
        "exit status 1) unless --force is given, which removes them too.\n"
        "Its DKIM keys are always removed with it.\n\n"
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
	{
		.verb = "dns",
		.synopsis = "NAME",
		.summary = "Print the DNS records a domain needs.",
		.help = domain_dns_help,
		.min_operands = 1,
		.max_operands = 1,
		.run = domain_dns,
	},
};
/* clang-format on */

const struct cli_noun cli_domain_noun = {
        .name = "domain",
        .summary = "Manage the mail domains the cluster accepts mail for.",
        .commands = domain_commands,
        .ncommands = sizeof(domain_commands) / sizeof(domain_commands[0]),
};
