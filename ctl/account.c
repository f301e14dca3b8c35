/* mailctl account add | list | show | rm | passwd: mailboxes. Passwords
 * are hashed here (password.c) so the clear text never leaves the
 * operator's machine; the controller stores and publishes only the
 * argon2id hash and the SCRAM-SHA-256 verifier, to mailbox nodes only. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"

static char *
account_address(const Mc__Account *a)
{
	return mc_asprintf("%s@%s", a->local_part, a->domain);
}

static json_t *
account_json(const Mc__Account *a)
{
	char *addr = account_address(a);
	json_t *j = json_pack("{s:o, s:o, s:i, s:o, s:I}", "id",
	                      cli_json_u64(a->id), "address",
	                      cli_json_str(addr), "shard", (int)a->shard,
	                      "quota_bytes", cli_json_u64(a->quota_bytes),
	                      "created_at", (json_int_t)a->created_at);

	free(addr);
	return j;
}

/* Connect first so an unreachable controller is reported before the
 * operator types a password, then read it and derive the hash and the
 * SCRAM verifier (*scram_r NULL: none). */
static int
new_password_hash(struct cli *cli, char **hash_r, char **scram_r)
{
	const char *error;
	int ret;

	if ((ret = cli_connect(cli)) != CLI_EXIT_OK)
		return ret;
	if (cli_password_new_hash(hash_r, scram_r, &error) < 0)
		return cli_fail(cli, CLI_EXIT_USAGE, "usage", "password%s: %s",
		                isatty(STDIN_FILENO)
		                        ? ""
		                        : " (first line of standard input)",
		                error);
	return CLI_EXIT_OK;
}

static void
free_hash(char **hash)
{
	if (*hash != NULL)
		mc_wipe(*hash, strlen(*hash));
	free(*hash);
	*hash = NULL;
}

static int
account_add(struct cli *cli)
{
	char address[MC_ADDR_MAX + 1], *hash = NULL, *scram = NULL, *what = NULL;
	Mc__AccountAddReq body = MC__ACCOUNT_ADD_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp = NULL;
	char quota[CLI_FMT_SIZE], *detail = NULL;
	int ret;

	if ((ret = cli_check_address(cli, "address", cli->operands[0], false,
	                             address)) != CLI_EXIT_OK ||
	    (ret = new_password_hash(cli, &hash, &scram)) != CLI_EXIT_OK)
		goto out;
	body.address = address;
	body.password_hash = hash;
	body.scram_sha256 = scram != NULL ? scram : "";
	body.quota_bytes = cli->args.quota_bytes;
	req.body_case = MC__REQUEST__BODY_ACCOUNT_ADD;
	req.account_add = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		goto out;
	cli_format_quota(cli->args.quota_bytes, quota);
	if (resp->body_case == MC__RESPONSE__BODY_ACCOUNT)
		detail = mc_asprintf("shard %u, quota %s", resp->account->shard,
		                     quota);
	else
		detail = mc_asprintf("quota %s", quota);
	what = mc_asprintf("added account %s", address);
	ret = cli_mutation_done(cli, resp, what, detail);
out:
	free_hash(&hash);
	free_hash(&scram);
	free(what);
	free(detail);
	if (resp != NULL)
		mc__response__free_unpacked(resp, NULL);
	return ret;
}

static void
print_accounts(const struct cli *cli, const Mc__AccountList *list)
{
	static const char *const headers[] = {"ID", "ADDRESS", "SHARD", "QUOTA",
	                                      "CREATED"};
	size_t n = list != NULL ? list->n_accounts : 0;
	struct cli_table t;
	json_t *arr;

	if (cli->args.json) {
		arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr,
			                      account_json(list->accounts[i]));
		cli_json_print(json_pack("{s:o}", "accounts", arr));
		return;
	}
	cli_table_init(&t, 5, headers);
	for (size_t i = 0; i < n; i++) {
		const Mc__Account *a = list->accounts[i];
		char id[24], shard[16], quota[CLI_FMT_SIZE],
		        created[CLI_FMT_SIZE];
		char *addr = account_address(a);

		snprintf(id, sizeof(id), "%" PRIu64, a->id);
		snprintf(shard, sizeof(shard), "%u", a->shard);
		cli_table_add(&t, id, addr, shard,
		              cli_format_quota(a->quota_bytes, quota),
		              cli_format_time(a->created_at, created));
		free(addr);
	}
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
}

static int
account_list(struct cli *cli)
{
	char domain[MC_DOMAIN_MAX + 1] = "";
	Mc__AccountListReq body = MC__ACCOUNT_LIST_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	if (cli->args.domain != NULL &&
	    (ret = cli_check_domain(cli, cli->args.domain, domain)) !=
	            CLI_EXIT_OK)
		return ret;
	body.domain = domain;
	req.body_case = MC__REQUEST__BODY_ACCOUNT_LIST;
	req.account_list = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	print_accounts(cli, resp->body_case == MC__RESPONSE__BODY_ACCOUNTS
	                            ? resp->accounts
	                            : NULL);
	mc__response__free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

static void
print_mailboxes(const Mc__AccountInfo *info)
{
	static const char *const headers[] = {"MAILBOX", "ROLE", "MESSAGES", "SIZE"};
	struct cli_table t;

	printf("\nmailboxes:\n");
	if (info->mailbox_error != NULL && info->mailbox_error[0] != '\0') {
		printf("(%s)\n", info->mailbox_error);
		return;
	}
	cli_table_init(&t, 4, headers);
	for (size_t i = 0; i < info->n_mailboxes; i++) {
		const Mc__MailboxInfo *mb = info->mailboxes[i];
		char count[24], size[CLI_FMT_SIZE];

		snprintf(count, sizeof(count), "%" PRIu64, mb->messages);
		cli_table_add(&t, mb->name, mb->special_use[0] ? mb->special_use : "-",
		              count, cli_format_size(mb->bytes, size));
	}
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
}

static json_t *
mailboxes_json(const Mc__AccountInfo *info)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < info->n_mailboxes; i++) {
		const Mc__MailboxInfo *mb = info->mailboxes[i];

		json_array_append_new(arr, json_pack("{s:s, s:s?, s:I, s:I}", "name",
		                                     mb->name, "special_use",
		                                     mb->special_use[0] ? mb->special_use
		                                                        : NULL,
		                                     "messages", (json_int_t)mb->messages,
		                                     "bytes", (json_int_t)mb->bytes));
	}
	return arr;
}

static void
print_account_info(const Mc__AccountInfo *info)
{
	static const char *const headers[] = {"ID", "ADDRESS", "DESTINATIONS"};
	const Mc__Account *a = info->account;
	char *addr = account_address(a);
	char quota[CLI_FMT_SIZE], created[CLI_FMT_SIZE];
	struct cli_table t;

	printf("address:  %s\nid:       %" PRIu64 "\nshard:    %u\n"
	       "quota:    %s\ncreated:  %s\n\naliases delivering here:\n",
	       addr, a->id, a->shard, cli_format_quota(a->quota_bytes, quota),
	       cli_format_time(a->created_at, created));
	free(addr);
	cli_table_init(&t, 3, headers);
	for (size_t i = 0; i < info->n_aliases; i++) {
		char id[24], *src = cli_alias_address(info->aliases[i]);
		char *dests = cli_alias_destinations(info->aliases[i]);

		snprintf(id, sizeof(id), "%" PRIu64, info->aliases[i]->id);
		cli_table_add(&t, id, src, dests);
		free(src);
		free(dests);
	}
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
	print_mailboxes(info);
}

static int
account_show(struct cli *cli)
{
	char address[MC_ADDR_MAX + 1];
	Mc__AccountShowReq body = MC__ACCOUNT_SHOW_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	const Mc__AccountInfo *info;
	json_t *aliases;
	int ret;

	if ((ret = cli_check_address(cli, "address", cli->operands[0], false,
	                             address)) != CLI_EXIT_OK)
		return ret;
	body.address = address;
	req.body_case = MC__REQUEST__BODY_ACCOUNT_SHOW;
	req.account_show = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	info = resp->account_info;
	if (resp->body_case != MC__RESPONSE__BODY_ACCOUNT_INFO ||
	    info->account == NULL) {
		ret = cli_fail(cli, CLI_EXIT_REFUSED, "internal error",
		               "controller's reply carries no account");
	} else if (cli->args.json) {
		aliases = json_array();
		for (size_t i = 0; i < info->n_aliases; i++)
			json_array_append_new(aliases,
			                      cli_alias_json(info->aliases[i]));
		cli_json_print(json_pack("{s:o, s:o, s:o, s:s?}", "account",
		                         account_json(info->account), "aliases",
		                         aliases, "mailboxes", mailboxes_json(info),
		                         "mailbox_error",
		                         info->mailbox_error[0] ? info->mailbox_error
		                                                : NULL));
	} else {
		print_account_info(info);
	}
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static int
account_rm(struct cli *cli)
{
	char address[MC_ADDR_MAX + 1], *what;
	Mc__AccountRmReq body = MC__ACCOUNT_RM_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	if ((ret = cli_check_address(cli, "address", cli->operands[0], false,
	                             address)) != CLI_EXIT_OK)
		return ret;
	body.address = address;
	req.body_case = MC__REQUEST__BODY_ACCOUNT_RM;
	req.account_rm = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	what = mc_asprintf("removed account %s", address);
	ret = cli_mutation_done(cli, resp, what, NULL);
	free(what);
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static int
account_passwd(struct cli *cli)
{
	char address[MC_ADDR_MAX + 1], *hash = NULL, *scram = NULL, *what = NULL;
	Mc__AccountPasswdReq body = MC__ACCOUNT_PASSWD_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp = NULL;
	int ret;

	if ((ret = cli_check_address(cli, "address", cli->operands[0], false,
	                             address)) != CLI_EXIT_OK ||
	    (ret = new_password_hash(cli, &hash, &scram)) != CLI_EXIT_OK)
		goto out;
	body.address = address;
	body.password_hash = hash;
	/* "" replaces a verifier of the old password too. */
	body.scram_sha256 = scram != NULL ? scram : "";
	req.body_case = MC__REQUEST__BODY_ACCOUNT_PASSWD;
	req.account_passwd = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		goto out;
	what = mc_asprintf("changed the password of %s", address);
	ret = cli_mutation_done(cli, resp, what, NULL);
out:
	free_hash(&hash);
	free_hash(&scram);
	free(what);
	if (resp != NULL)
		mc__response__free_unpacked(resp, NULL);
	return ret;
}

#define ACCOUNT_PASSWORD_HELP                                                  \
	"The password is never taken from the command line. When standard\n"   \
	"input is not a terminal its first line is the password (newline\n"    \
	"stripped, 1 to 1024 bytes); on a terminal it is asked for twice\n"    \
	"without echo. mailctl sends only its argon2id hash (t=2,\n"           \
	"m=19 MiB, p=1) and its SCRAM-SHA-256 verifier (10000 rounds;\n"       \
	"none for a password outside printable ASCII, which then works\n"      \
	"with PLAIN only). Example:\n"                                         \
	"  printf '%s\\n' \"$PW\" | mailctl account passwd bob@example.org\n"

static const char account_add_help[] =
        "ADDRESS is local@domain; the domain must exist. The controller\n"
        "assigns the account to a shard.\n\n" ACCOUNT_PASSWORD_HELP "\n"
        "Options:\n"
        "  --quota SIZE       mailbox size limit: bytes, or a number with\n"
        "                     K, M, G or T (base 1024), e.g. 500M, 10G;\n"
        "                     0 or 'unlimited' (the default): no limit\n";

static const char account_list_help[] =
        "Columns: ID, ADDRESS, SHARD, QUOTA, CREATED. With --json:\n"
        "{\"accounts\":[{\"id\",\"address\",\"shard\",\"quota_bytes\","
        "\"created_at\"}]}\n"
        "(quota_bytes 0 = unlimited, created_at in unix seconds).\n\n"
        "Options:\n"
        "  --domain DOMAIN    only the accounts of DOMAIN\n";

static const char account_show_help[] =
        "With --json: {\"account\":{\"id\",\"address\",\"shard\","
        "\"quota_bytes\",\n"
        "\"created_at\"},\"aliases\":[{\"id\",\"address\","
        "\"destinations\"}]}\n";

static const char account_rm_help[] =
        "Mail for the address is refused from then on (unless an alias or\n"
        "a catch-all covers it).\n";

/* clang-format off */
static const struct cli_command account_commands[] = {
	{
		.verb = "add",
		.synopsis = "ADDRESS [--quota SIZE]",
		.summary = "Add an account; reads its password.",
		.help = account_add_help,
		.options = CLI_OPT_WAIT | CLI_OPT_QUOTA,
		.min_operands = 1,
		.max_operands = 1,
		.run = account_add,
	},
	{
		.verb = "list",
		.synopsis = "[--domain DOMAIN]",
		.summary = "List accounts, all or one domain's.",
		.help = account_list_help,
		.options = CLI_OPT_DOMAIN,
		.min_operands = 0,
		.max_operands = 0,
		.run = account_list,
	},
	{
		.verb = "show",
		.synopsis = "ADDRESS",
		.summary = "Show an account and its aliases.",
		.help = account_show_help,
		.min_operands = 1,
		.max_operands = 1,
		.run = account_show,
	},
	{
		.verb = "rm",
		.synopsis = "ADDRESS",
		.summary = "Remove an account.",
		.help = account_rm_help,
		.options = CLI_OPT_WAIT,
		.min_operands = 1,
		.max_operands = 1,
		.run = account_rm,
	},
	{
		.verb = "passwd",
		.synopsis = "ADDRESS",
		.summary = "Set an account's password.",
		.help = ACCOUNT_PASSWORD_HELP,
		.options = CLI_OPT_WAIT,
		.min_operands = 1,
		.max_operands = 1,
		.run = account_passwd,
	},
};
/* clang-format on */

const struct cli_noun cli_account_noun = {
        .name = "account",
        .summary = "Manage accounts (mailboxes) and their passwords.",
        .commands = account_commands,
        .ncommands = sizeof(account_commands) / sizeof(account_commands[0]),
};
