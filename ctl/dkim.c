/* mailctl dkim create | list | rotate | rm: the DKIM keys relays sign a
 * domain's outbound mail with. The controller generates the keys and
 * keeps the private halves sealed; mailctl only ever sees the public
 * halves, shown with the TXT record to publish at
 * <selector>._domainkey.<domain> (`mailctl domain dns` gives every record
 * a domain needs). */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory.h"
#include "dkim.h"
#include "mem.h"

bool
cli_dkim_alg_parse(const char *in, Mc__DkimAlg *algs, size_t *n_r)
{
	*n_r = 0;
	if (strcasecmp(in, "rsa") == 0 || strcasecmp(in, "both") == 0)
		algs[(*n_r)++] = MC__DKIM_ALG__DKIM_ALG_RSA;
	if (strcasecmp(in, "ed25519") == 0 || strcasecmp(in, "both") == 0)
		algs[(*n_r)++] = MC__DKIM_ALG__DKIM_ALG_ED25519;
	return *n_r > 0;
}

static enum mc_dkim_alg
lib_alg(Mc__DkimAlg alg)
{
	return alg == MC__DKIM_ALG__DKIM_ALG_ED25519 ? MC_DKIM_ED25519_SHA256
	                                             : MC_DKIM_RSA_SHA256;
}

static const char *
alg_name(const Mc__DkimKey *k)
{
	return k->alg == MC__DKIM_ALG__DKIM_ALG_ED25519 ? "ed25519" : "rsa";
}

/* "rsa-2048" / "ed25519". */
static void
alg_text(const Mc__DkimKey *k, char *buf, size_t size)
{
	if (k->alg == MC__DKIM_ALG__DKIM_ALG_RSA && k->bits != 0)
		snprintf(buf, size, "rsa-%u", k->bits);
	else
		snprintf(buf, size, "%s", alg_name(k));
}

json_t *
cli_dkim_keys_json(const Mc__DkimKeyList *keys)
{
	json_t *arr = json_array();

	for (size_t i = 0; keys != NULL && i < keys->n_keys; i++) {
		const Mc__DkimKey *k = keys->keys[i];
		char *txt = mc_dkim_dns_record(lib_alg(k->alg), k->public_b64);
		char *name =
		        mc_asprintf("%s._domainkey.%s", k->selector, k->domain);

		json_array_append_new(
		        arr, json_pack("{s:o, s:o, s:o, s:s, s:i, s:b, s:I, "
		                       "s:o, s:o, s:o}",
		                       "id", cli_json_u64(k->id), "domain",
		                       cli_json_str(k->domain), "selector",
		                       cli_json_str(k->selector), "alg",
		                       alg_name(k), "bits", (int)k->bits,
		                       "active", (int)k->active, "created_at",
		                       (json_int_t)k->created_at, "public_key",
		                       cli_json_str(k->public_b64), "dns_name",
		                       cli_json_str(name), "dns_record",
		                       txt != NULL ? cli_json_str(txt)
		                                   : json_null()));
		free(txt);
		free(name);
	}
	return arr;
}

/* The records to publish, one per line: NAME TXT "...". */
static void
print_records(const Mc__DkimKeyList *keys)
{
	for (size_t i = 0; keys != NULL && i < keys->n_keys; i++) {
		const Mc__DkimKey *k = keys->keys[i];
		char *txt = mc_dkim_dns_record(lib_alg(k->alg), k->public_b64);
		char *quoted = cli_dns_txt(txt != NULL ? txt : "");

		printf("  %s._domainkey.%s. IN TXT %s\n", k->selector,
		       k->domain, quoted);
		free(quoted);
		free(txt);
	}
}

/* The DOMAIN operand and the --selector option, checked. */
static int
check_domain_selector(const struct cli *cli, char domain[MC_DOMAIN_MAX + 1])
{
	int ret = cli_check_domain(cli, cli->operands[0], domain);

	if (ret != CLI_EXIT_OK)
		return ret;
	if (cli->args.selector != NULL &&
	    !mc_directory_dkim_selector_valid(cli->args.selector))
		return cli_usage_error(cli,
		                       "invalid --selector '%s': dot-separated "
		                       "labels of letters, digits and '-', at "
		                       "most %d characters",
		                       cli->args.selector, MC_DIR_SELECTOR_MAX);
	return CLI_EXIT_OK;
}

/* Send create or rotate and report the new keys. */
static int
keys_made(struct cli *cli, Mc__Request *req, const char *verb,
          const char *domain)
{
	Mc__Response *resp;
	char *what;
	int ret;

	if ((ret = cli_call(cli, req, &resp)) != CLI_EXIT_OK)
		return ret;
	what = mc_asprintf("%s DKIM keys of %s", verb, domain);
	ret = cli_mutation_done(cli, resp, what, NULL);
	if (!cli->args.json &&
	    resp->body_case == MC__RESPONSE__BODY_DKIM_KEYS) {
		printf("Publish in DNS (all records: mailctl domain dns %s):\n",
		       domain);
		print_records(resp->dkim_keys);
	}
	free(what);
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static int
dkim_create(struct cli *cli)
{
	Mc__DkimCreateReq body = MC__DKIM_CREATE_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	char domain[MC_DOMAIN_MAX + 1];
	Mc__DkimAlg algs[2];
	size_t nalgs = 0;
	int ret;

	if ((ret = check_domain_selector(cli, domain)) != CLI_EXIT_OK)
		return ret;
	if (cli->args.alg != NULL &&
	    !cli_dkim_alg_parse(cli->args.alg, algs, &nalgs))
		return cli_usage_error(
		        cli,
		        "invalid --alg '%s': expected ed25519, rsa "
		        "or both",
		        cli->args.alg);
	if (cli->args.rsa_bits != 0 && nalgs == 1 &&
	    algs[0] == MC__DKIM_ALG__DKIM_ALG_ED25519)
		return cli_usage_error(
		        cli, "--rsa-bits needs an RSA key (--alg rsa or "
		             "both)");
	body.domain = domain;
	body.selector =
	        (char *)(cli->args.selector != NULL ? cli->args.selector : "");
	body.algs = algs;
	body.n_algs = nalgs;
	body.rsa_bits = cli->args.rsa_bits;
	req.body_case = MC__REQUEST__BODY_DKIM_CREATE;
	req.dkim_create = &body;
	return keys_made(cli, &req, "created", domain);
}

static int
dkim_rotate(struct cli *cli)
{
	Mc__DkimRotateReq body = MC__DKIM_ROTATE_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	char domain[MC_DOMAIN_MAX + 1];
	int ret;

	if ((ret = check_domain_selector(cli, domain)) != CLI_EXIT_OK)
		return ret;
	body.domain = domain;
	body.selector =
	        (char *)(cli->args.selector != NULL ? cli->args.selector : "");
	body.rsa_bits = cli->args.rsa_bits;
	req.body_case = MC__REQUEST__BODY_DKIM_ROTATE;
	req.dkim_rotate = &body;
	return keys_made(cli, &req, "rotated", domain);
}

static void
print_keys(const struct cli *cli, const Mc__DkimKeyList *keys)
{
	static const char *const headers[] = {"DOMAIN", "SELECTOR",
	                                      "ALG",    "CREATED",
	                                      "ACTIVE", "DNS RECORD (TXT)"};
	struct cli_table t;

	if (cli->args.json) {
		cli_json_print(
		        json_pack("{s:o}", "keys", cli_dkim_keys_json(keys)));
		return;
	}
	cli_table_init(&t, 6, headers);
	for (size_t i = 0; keys != NULL && i < keys->n_keys; i++) {
		const Mc__DkimKey *k = keys->keys[i];
		char *txt = mc_dkim_dns_record(lib_alg(k->alg), k->public_b64);
		char created[CLI_FMT_SIZE], alg[24];

		alg_text(k, alg, sizeof(alg));
		cli_table_add(&t, k->domain, k->selector, alg,
		              cli_format_time(k->created_at, created),
		              k->active ? "yes" : "no",
		              txt != NULL ? txt : "?");
		free(txt);
	}
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
}

static int
dkim_list(struct cli *cli)
{
	Mc__DkimListReq body = MC__DKIM_LIST_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	char domain[MC_DOMAIN_MAX + 1] = "";
	Mc__Response *resp;
	int ret;

	if (cli->noperands > 0 &&
	    (ret = cli_check_domain(cli, cli->operands[0], domain)) !=
	            CLI_EXIT_OK)
		return ret;
	body.domain = domain;
	req.body_case = MC__REQUEST__BODY_DKIM_LIST;
	req.dkim_list = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	print_keys(cli, resp->body_case == MC__RESPONSE__BODY_DKIM_KEYS
	                        ? resp->dkim_keys
	                        : NULL);
	mc__response__free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

static int
dkim_rm(struct cli *cli)
{
	Mc__DkimRmReq body = MC__DKIM_RM_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	char domain[MC_DOMAIN_MAX + 1], *what;
	Mc__Response *resp;
	int ret;

	if ((ret = cli_check_domain(cli, cli->operands[0], domain)) !=
	    CLI_EXIT_OK)
		return ret;
	if (!mc_directory_dkim_selector_valid(cli->operands[1]))
		return cli_usage_error(cli, "invalid selector '%s'",
		                       cli->operands[1]);
	body.domain = domain;
	body.selector = (char *)cli->operands[1];
	body.force = cli->args.force;
	req.body_case = MC__REQUEST__BODY_DKIM_RM;
	req.dkim_rm = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	what = mc_asprintf("removed DKIM key %s of %s (remove its DNS record "
	                   "too)",
	                   body.selector, domain);
	ret = cli_mutation_done(cli, resp, what, NULL);
	free(what);
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static const char dkim_create_help[] =
        "The controller generates the keys and keeps the private keys\n"
        "encrypted; only relays ever get them. By default one RSA (2048 bits)\n"
        "and one Ed25519 key, both active: relays sign with both.\n\n"
        "Selectors are derived from the month (UTC): s202612r for RSA and\n"
        "s202612e for Ed25519, s202612-2r / s202612-2e when those are taken.\n"
        "A --selector S is used as is for one algorithm, as Sr and Se for\n"
        "both. A domain has one active key per algorithm: replace it with\n"
        "'dkim rotate'.\n\n"
        "Options:\n"
        "  --alg ALG          ed25519, rsa or both (the default)\n"
        "  --rsa-bits N       RSA key size, 2048 (the default) to 4096\n"
        "  --selector S       the selector instead of the derived one\n";

static const char dkim_rotate_help[] =
        "New keys (the same algorithms, RSA of the same size unless\n"
        "--rsa-bits) become active at once; the old keys become inactive but\n"
        "stay published, so mail signed with them keeps verifying. Publish\n"
        "the new DNS records, and after a few days remove the old keys with\n"
        "'mailctl dkim rm DOMAIN SELECTOR' and their records.\n\n"
        "Options:\n"
        "  --rsa-bits N       RSA key size of the new key, 2048 to 4096\n"
        "  --selector S       the selector (Sr / Se) instead of the derived\n";

static const char dkim_list_help[] =
        "Columns: DOMAIN, SELECTOR, ALG, CREATED (local time), ACTIVE,\n"
        "DNS RECORD (the TXT text for SELECTOR._domainkey.DOMAIN). With\n"
        "--json: {\"keys\":[{\"id\",\"domain\",\"selector\",\"alg\",\"bits\",\n"
        "\"active\",\"created_at\",\"public_key\",\"dns_name\",\"dns_record\"}]"
        "}\n";

static const char dkim_rm_help[] =
        "Ends an inactive key's grace period. An active key is refused\n"
        "(conflict, exit status 1) unless --force is given: relays sign\n"
        "with it.\n\n"
        "Options:\n"
        "  --force            remove an active key too\n";

/* clang-format off */
static const struct cli_command dkim_commands[] = {
	{
		.verb = "create",
		.synopsis = "DOMAIN [--alg ALG] [--rsa-bits N] [--selector S]",
		.summary = "Create a domain's DKIM keys.",
		.help = dkim_create_help,
		.options = CLI_OPT_WAIT | CLI_OPT_SELECTOR | CLI_OPT_ALG |
		           CLI_OPT_RSA_BITS,
		.min_operands = 1,
		.max_operands = 1,
		.run = dkim_create,
	},
	{
		.verb = "list",
		.synopsis = "[DOMAIN]",
		.summary = "List DKIM keys with their DNS records.",
		.help = dkim_list_help,
		.min_operands = 0,
		.max_operands = 1,
		.run = dkim_list,
	},
	{
		.verb = "rotate",
		.synopsis = "DOMAIN [--rsa-bits N] [--selector S]",
		.summary = "Replace a domain's active DKIM keys.",
		.help = dkim_rotate_help,
		.options = CLI_OPT_WAIT | CLI_OPT_SELECTOR | CLI_OPT_RSA_BITS,
		.min_operands = 1,
		.max_operands = 1,
		.run = dkim_rotate,
	},
	{
		.verb = "rm",
		.synopsis = "DOMAIN SELECTOR [--force]",
		.summary = "Remove a DKIM key.",
		.help = dkim_rm_help,
		.options = CLI_OPT_WAIT | CLI_OPT_FORCE,
		.min_operands = 2,
		.max_operands = 2,
		.run = dkim_rm,
	},
};
/* clang-format on */

const struct cli_noun cli_dkim_noun = {
        .name = "dkim",
        .summary = "Manage the DKIM keys relays sign outbound mail with.",
        .commands = dkim_commands,
        .ncommands = sizeof(dkim_commands) / sizeof(dkim_commands[0]),
};
