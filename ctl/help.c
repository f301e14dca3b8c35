/* mailctl --help: the CLI's reference. The command list is built from the
 * nouns' tables so it cannot drift from what main() accepts; the text on
 * options, environment and exit codes lives here. */
#include "cli.h"

#include <string.h>

static const struct cli_noun *const help_nouns[] = {
        &cli_domain_noun, &cli_account_noun, &cli_alias_noun,
        &cli_route_noun,  &cli_dkim_noun,    &cli_node_noun,
        &cli_status_noun, &cli_queue_noun,
};

#define HELP_NNOUNS (sizeof(help_nouns) / sizeof(help_nouns[0]))
#define HELP_COLUMN 38

static const char help_global[] =
        "Global options (before or after the command):\n"
        "  --url URL          controller admin URL, the controller's\n"
        "                     control_url (env MAILCTL_URL), e.g.\n"
        "                     tcp://127.0.0.1:17400, ipc:///run/mc.sock,\n"
        "                     tls+tcp://ctl.example.org:17400\n"
        "  --token-file PATH  file holding the admin token (env\n"
        "                     MAILCTL_TOKEN_FILE); never on the command line\n"
        "  --tls-ca PATH      CA certificate that verifies the controller\n"
        "                     (or relay), needed for tls+tcp:// (env\n"
        "                     MAILCTL_TLS_CA)\n"
        "  --tls-cert PATH    client certificate for mutual TLS (env\n"
        "                     MAILCTL_TLS_CERT)\n"
        "  --tls-key PATH     its private key (env MAILCTL_TLS_KEY)\n"
        "  --json             print exactly one JSON document on stdout\n"
        "                     instead of tables; errors too, as\n"
        "                     {\"ok\":false,\"status\":...,\"error\":...}\n"
        "  --timeout MS       wait at most MS milliseconds for each reply\n"
        "                     of the controller or relay (default 5000)\n"
        "  -h, --help         show help; after a command, the command's\n"
        "  --version          print mailctl's version\n"
        "Options take their value as the next word or after '='\n"
        "(--url=URL); '--' ends the options.\n";

static const char help_wait[] =
        "Options for changes (add, rm, passwd, default, create, rotate):\n"
        "  --wait             after the change, wait until every live node\n"
        "                     has applied the new configuration version\n"
        "  --wait-timeout SEC give up waiting after SEC seconds (default\n"
        "                     30); implies --wait. On timeout the lagging\n"
        "                     nodes are listed and the exit status is 4\n"
        "                     (the change itself stays committed).\n";

static const char help_relay[] =
        "Options for the queue commands:\n"
        "  --relay URL        the relay to ask: its admin_url (env\n"
        "                     MAILCTL_RELAY_URL), tcp://HOST:PORT,\n"
        "                     ipc:///PATH or tls+tcp://HOST:PORT;\n"
        "                     deploy/local/cluster puts MC_RELAY_1_ADMIN_URL\n"
        "                     in cluster.env. The admin token and the TLS\n"
        "                     options are the same as for the controller;\n"
        "                     --url is not used.\n";

static const char help_exit[] =
        "Exit status:\n"
        "  0  success\n"
        "  1  the controller or relay refused the request (not found,\n"
        "     exists, invalid, conflict, unauthorized, unavailable,\n"
        "     internal error)\n"
        "  2  usage or validation error (nothing was sent)\n"
        "  3  controller or relay unreachable, or no answer within\n"
        "     --timeout\n"
        "  4  --wait timed out before every live node applied the change\n";

static const char help_intro[] =
        "Usage: mailctl [OPTIONS] COMMAND [ARGUMENTS]\n\n"
        "Operator CLI of the mail cluster: manages domains, accounts,\n"
        "aliases, outbound routes and DKIM keys and shows the nodes\n"
        "through mail-controller's admin API.\n"
        "Every change is committed by the controller as a new cluster\n"
        "configuration version that nodes and relays apply live. The\n"
        "queue commands ask one relay about the mail it holds.\n\n"
        "Commands:\n";

static void
command_line(FILE *f, const struct cli_noun *noun,
             const struct cli_command *cmd)
{
	char left[128];

	snprintf(left, sizeof(left), "%s%s%s%s%s", noun->name,
	         cmd->verb != NULL ? " " : "",
	         cmd->verb != NULL ? cmd->verb : "",
	         cmd->synopsis[0] != '\0' ? " " : "", cmd->synopsis);
	if (strlen(left) < HELP_COLUMN - 3)
		fprintf(f, "  %-*s %s\n", HELP_COLUMN - 3, left, cmd->summary);
	else
		fprintf(f, "  %s\n  %-*s %s\n", left, HELP_COLUMN - 3, "",
		        cmd->summary);
}

void
cli_help_overview(FILE *f)
{
	fputs(help_intro, f);
	for (size_t i = 0; i < HELP_NNOUNS; i++)
		for (size_t j = 0; j < help_nouns[i]->ncommands; j++)
			command_line(f, help_nouns[i],
			             &help_nouns[i]->commands[j]);
	fputs("\n", f);
	fputs(help_global, f);
	fputs("\n", f);
	fputs(help_wait, f);
	fputs("\n", f);
	fputs(help_relay, f);
	fputs("\n", f);
	fputs(help_exit, f);
	fputs("\nRun 'mailctl COMMAND --help' for details on a command.\n", f);
}

void
cli_help_noun(FILE *f, const struct cli_noun *noun)
{
	fprintf(f,
	        "Usage: mailctl [OPTIONS] %s COMMAND [ARGUMENTS]\n\n%s\n\n"
	        "Commands:\n",
	        noun->name, noun->summary);
	for (size_t j = 0; j < noun->ncommands; j++)
		command_line(f, noun, &noun->commands[j]);
	if (noun->help != NULL)
		fprintf(f, "\n%s", noun->help);
	fprintf(f,
	        "\nRun 'mailctl %s COMMAND --help' for details and\n"
	        "'mailctl --help' for the global options.\n",
	        noun->name);
}

void
cli_help_command(FILE *f, const struct cli_noun *noun,
                 const struct cli_command *cmd)
{
	fprintf(f, "Usage: mailctl [OPTIONS] %s%s%s%s%s\n\n%s\n", noun->name,
	        cmd->verb != NULL ? " " : "",
	        cmd->verb != NULL ? cmd->verb : "",
	        cmd->synopsis[0] != '\0' ? " " : "", cmd->synopsis,
	        cmd->summary);
	if (cmd->help != NULL)
		fprintf(f, "\n%s", cmd->help);
	if ((cmd->options & CLI_OPT_WAIT) != 0)
		fprintf(f, "\n%s", help_wait);
	if ((cmd->options & CLI_OPT_RELAY) != 0)
		fprintf(f, "\n%s", help_relay);
	fprintf(f,
	        "\nGlobal options: --url URL, --token-file PATH, --tls-ca "
	        "PATH,\n"
	        "--tls-cert PATH, --tls-key PATH, --json, --timeout MS (see\n"
	        "'mailctl --help').\n\n%s",
	        help_exit);
}
