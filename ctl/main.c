/* mailctl: the operator CLI. main() parses the command line, finds the
 * command in the nouns' tables, checks options and operand counts, and
 * hands over to the command's run function (domain.c, account.c, alias.c,
 * route.c, dkim.c, node.c, queue.c); the exit code says what happened (see
 * enum cli_exit). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "mem.h"

static const struct cli_noun *const cli_nouns[] = {
        &cli_domain_noun, &cli_account_noun, &cli_alias_noun,
        &cli_route_noun,  &cli_dkim_noun,    &cli_node_noun,
        &cli_status_noun, &cli_queue_noun,
};

#define CLI_NNOUNS (sizeof(cli_nouns) / sizeof(cli_nouns[0]))

static const struct cli_noun *
find_noun(const char *name)
{
	for (size_t i = 0; i < CLI_NNOUNS; i++)
		if (strcmp(cli_nouns[i]->name, name) == 0)
			return cli_nouns[i];
	return NULL;
}

/* The command named by the words after the noun: a one-word verb or a
 * two-word one ("rule add"); *words_r says how many words it took. */
static const struct cli_command *
find_verb(const struct cli_noun *noun, const char *const *words, size_t n,
          size_t *words_r)
{
	for (size_t i = 0; i < noun->ncommands; i++) {
		const char *verb = noun->commands[i].verb;
		const char *sp = strchr(verb, ' ');

		if (sp == NULL && strcmp(verb, words[0]) == 0) {
			*words_r = 1;
			return &noun->commands[i];
		}
		if (sp != NULL && n >= 2 && strlen(words[0]) == (size_t)(sp - verb) &&
		    strncmp(verb, words[0], (size_t)(sp - verb)) == 0 &&
		    strcmp(sp + 1, words[1]) == 0) {
			*words_r = 2;
			return &noun->commands[i];
		}
	}
	return NULL;
}

/* "add, list, rm" for error messages; heap string. */
static char *
verb_list(const struct cli_noun *noun)
{
	char *s = mc_strdup("");

	for (size_t i = 0; i < noun->ncommands; i++) {
		char *next = mc_asprintf("%s%s%s", s, i > 0 ? ", " : "",
		                         noun->commands[i].verb);
		free(s);
		s = next;
	}
	return s;
}

/* With a parse error we still want to honour --json for the error. */
static bool
argv_has_json(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--json") == 0)
			return true;
	return false;
}

/* Find the command from the positional words; sets cli->noun, cli->cmd
 * and the operands. Returns -1 after printing help or an error in *ret_r. */
static int
resolve_command(struct cli *cli, const char **pos, size_t npos, int *ret_r)
{
	size_t words = 1, verb_words = 0;
	char *verbs;

	if ((cli->noun = find_noun(pos[0])) == NULL) {
		*ret_r = cli_usage_error(cli, "unknown command '%s'", pos[0]);
		return -1;
	}
	if (cli->noun->commands[0].verb == NULL) {
		cli->cmd = &cli->noun->commands[0];
	} else if (npos < 2 && cli->args.help) {
		cli_help_noun(stdout, cli->noun);
		*ret_r = CLI_EXIT_OK;
		return -1;
	} else if (npos < 2 || (cli->cmd = find_verb(cli->noun, pos + 1, npos - 1,
	                                             &verb_words)) == NULL) {
		verbs = verb_list(cli->noun);
		*ret_r = npos < 2 ? cli_usage_error(
		                            cli, "'%s' needs a subcommand: %s",
		                            pos[0], verbs)
		                  : cli_usage_error(cli,
		                                    "unknown command '%s %s' "
		                                    "(expected one of: %s)",
		                                    pos[0], pos[1], verbs);
		free(verbs);
		return -1;
	} else {
		words = 1 + verb_words;
	}
	cli->operands = pos + words;
	cli->noperands = npos - words;
	return 0;
}

/* Options and operand counts the command accepts. */
static int
check_command_line(struct cli *cli)
{
	const struct cli_command *cmd = cli->cmd;
	const char *name = cmd->verb != NULL ? cmd->verb : "";
	const char *sep = cmd->verb != NULL ? " " : "";
	unsigned bad = cli->args.used & ~cmd->options;

	if (bad != 0)
		return cli_usage_error(
		        cli, "option --%s does not apply to '%s%s%s'",
		        cli_opt_name(bad), cli->noun->name, sep, name);
	if (cli->noperands < cmd->min_operands)
		return cli_usage_error(cli,
		                       "missing arguments; usage: mailctl "
		                       "%s%s%s %s",
		                       cli->noun->name, sep, name,
		                       cmd->synopsis);
	if (cli->noperands > cmd->max_operands)
		return cli_usage_error(cli, "unexpected argument '%s'",
		                       cli->operands[cmd->max_operands]);
	return CLI_EXIT_OK;
}

static int
cli_main(struct cli *cli, int argc, char **argv)
{
	const char **pos;
	const char *error;
	size_t npos;
	int ret;

	if (cli_args_parse(&cli->args, argc, argv, &error) < 0) {
		cli->args.json = argv_has_json(argc, argv);
		return cli_usage_error(cli, "%s", error);
	}
	if (cli->args.version) {
		printf("mailctl %s\n", MC_VERSION);
		return CLI_EXIT_OK;
	}
	pos = cli->args.pos;
	npos = cli->args.npos;
	if (npos > 0 && strcmp(pos[0], "help") == 0) {
		cli->args.help = true;
		pos++;
		npos--;
	}
	if (npos == 0 && cli->args.help) {
		cli_help_overview(stdout);
		return CLI_EXIT_OK;
	}
	if (npos == 0)
		return cli_usage_error(cli, "missing command");
	if (resolve_command(cli, pos, npos, &ret) < 0)
		return ret;
	if (cli->args.help) {
		cli_help_command(stdout, cli->noun, cli->cmd);
		return CLI_EXIT_OK;
	}
	if ((ret = check_command_line(cli)) != CLI_EXIT_OK)
		return ret;
	cli_args_env(&cli->args);
	return cli->cmd->run(cli);
}

int
main(int argc, char **argv)
{
	struct cli cli = {0};
	int ret;

	ret = cli_main(&cli, argc, argv);
	cli_fini(&cli);
	/* No nng_fini(): after a failed TLS dial nng 1.5 may still be tearing
	 * the connection down on its own threads, and nng_fini under it
	 * panics on a destroyed mutex. Exiting releases everything anyway. */
	return ret;
}
