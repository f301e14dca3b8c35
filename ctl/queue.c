/* mailctl queue list | show | retry | delete: the mail one relay holds in
 * its queue, asked at the relay's admin_url (--relay, MAILCTL_RELAY_URL)
 * with the cluster's admin token instead of the controller. Queue ids are
 * checked here before anything is sent, and everything the relay returns
 * is printed through printable() because addresses and last errors
 * (remote servers' replies) are bytes from the network. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* Crockford's base32 digits as the relay writes them (relay/queue.h). */
static const char queue_id_alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

bool
cli_queue_id_parse(const char *in, char out[CLI_QUEUE_ID_LEN + 1])
{
	size_t i;

	for (i = 0; i < CLI_QUEUE_ID_LEN; i++) {
		char c = in[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '\0' || strchr(queue_id_alphabet, c) == NULL)
			return false;
		out[i] = c;
	}
	out[i] = '\0';
	return in[i] == '\0';
}

static int
check_id(const struct cli *cli, const char *in, char out[CLI_QUEUE_ID_LEN + 1])
{
	if (!cli_queue_id_parse(in, out))
		return cli_usage_error(cli,
		                       "invalid queue id '%s': expected the %d "
		                       "characters 'mailctl queue list' shows "
		                       "(0-9 and a-z without i, l, o, u)",
		                       in, CLI_QUEUE_ID_LEN);
	return CLI_EXIT_OK;
}

/* Send req to the relay; see cli_call. */
static int
relay_call(struct cli *cli, Mc__Request *req, Mc__Response **resp_r)
{
	cli->relay = true;
	return cli_call(cli, req, resp_r);
}

/* A heap copy safe for a terminal: C0 and C1 controls (a remote server's
 * reply could carry escape sequences) become '?', line breaks and tabs a
 * space. Other UTF-8 stays (SMTPUTF8 addresses). */
static char *
printable(const char *s)
{
	char *copy = mc_strdup(s);

	for (unsigned char *p = (unsigned char *)copy; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n' || *p == '\t')
			*p = ' ';
		else if (*p < 0x20 || *p == 0x7f)
			*p = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			p[0] = '?';
			p[1] = '?';
			p++;
		}
	}
	return copy;
}

static bool
rcpt_pending(const Mc__QueueRecipient *r)
{
	return strcmp(r->state, "pending") == 0;
}

/* "45s", "12m", "3h", "2d" (the thresholds of cli_format_age). */
static const char *
format_duration(int64_t s, char buf[CLI_FMT_SIZE])
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, CLI_FMT_SIZE, "%" PRId64 "s", s);
	else if (s < 120 * 60)
		snprintf(buf, CLI_FMT_SIZE, "%" PRId64 "m", s / 60);
	else if (s < 48 * 3600)
		snprintf(buf, CLI_FMT_SIZE, "%" PRId64 "h", s / 3600);
	else
		snprintf(buf, CLI_FMT_SIZE, "%" PRId64 "d", s / 86400);
	return buf;
}

/* "now" (0 means as soon as possible) or "in 4m". */
static const char *
format_next(int64_t next, int64_t now, char buf[CLI_FMT_SIZE])
{
	char d[CLI_FMT_SIZE];

	if (next <= now)
		return "now";
	snprintf(buf, CLI_FMT_SIZE, "in %.24s", format_duration(next - now, d));
	return buf;
}

static json_t *
recipient_json(const Mc__QueueRecipient *r)
{
	return json_pack("{s:o, s:o, s:i, s:I, s:o}", "address",
	                 cli_json_str(r->address), "state",
	                 cli_json_str(r->state), "attempts", (int)r->attempts,
	                 "next_attempt", (json_int_t)r->next_attempt,
	                 "last_error",
	                 r->last_error[0] != '\0' ? cli_json_str(r->last_error)
	                                          : json_null());
}

static json_t *
message_json(const Mc__QueueMessage *m)
{
	json_t *rcpts = json_array();

	for (size_t i = 0; i < m->n_recipients; i++)
		json_array_append_new(rcpts, recipient_json(m->recipients[i]));
	return json_pack("{s:o, s:o, s:o, s:I, s:o}", "id", cli_json_str(m->id),
	                 "sender", cli_json_str(m->sender), "size",
	                 cli_json_u64(m->size), "received",
	                 (json_int_t)m->received, "recipients", rcpts);
}

/* "<>" for the null sender, else a printable copy (heap). */
static char *
sender_text(const Mc__QueueMessage *m)
{
	return printable(m->sender[0] != '\0' ? m->sender : "<>");
}

static void
list_row(struct cli_table *t, const Mc__QueueMessage *m, int64_t now)
{
	const char *error = NULL, *next_text = "-";
	char age[CLI_FMT_SIZE], size[CLI_FMT_SIZE], next[CLI_FMT_SIZE];
	char rcpts[48];
	int64_t earliest = INT64_MAX;
	size_t pending = 0;
	char *id, *sender, *err;

	for (size_t i = 0; i < m->n_recipients; i++) {
		const Mc__QueueRecipient *r = m->recipients[i];

		if (!rcpt_pending(r))
			continue;
		pending++;
		if (r->next_attempt < earliest)
			earliest = r->next_attempt;
		if (error == NULL && r->last_error[0] != '\0')
			error = r->last_error;
	}
	if (pending > 0)
		next_text = format_next(earliest, now, next);
	if (m->received > 0)
		format_duration(now - m->received, age);
	else
		snprintf(age, sizeof(age), "-");
	snprintf(rcpts, sizeof(rcpts), "%zu/%zu", pending, m->n_recipients);
	id = printable(m->id);
	sender = sender_text(m);
	err = printable(error != NULL ? error : "-");
	cli_table_add(t, id, age, cli_format_size(m->size, size), sender, rcpts,
	              next_text, err);
	free(id);
	free(sender);
	free(err);
}

static void
print_list(const struct cli *cli, const Mc__QueueList *list)
{
	static const char *const headers[] = {
	        "ID",         "AGE",          "SIZE",      "SENDER",
	        "RECIPIENTS", "NEXT ATTEMPT", "LAST ERROR"};
	size_t n = list != NULL ? list->n_messages : 0;
	int64_t now = cli_now_ms() / 1000;
	struct cli_table t;
	json_t *arr;

	if (cli->args.json) {
		arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr,
			                      message_json(list->messages[i]));
		cli_json_print(json_pack("{s:o}", "messages", arr));
		return;
	}
	cli_table_init(&t, 7, headers);
	for (size_t i = 0; i < n; i++)
		list_row(&t, list->messages[i], now);
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
}

static int
queue_list(struct cli *cli)
{
	Mc__QueueListReq body = MC__QUEUE_LIST_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	req.body_case = MC__REQUEST__BODY_QUEUE_LIST;
	req.queue_list = &body;
	if ((ret = relay_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	print_list(cli, resp->body_case == MC__RESPONSE__BODY_QUEUE_LIST
	                        ? resp->queue_list
	                        : NULL);
	mc__response__free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

#define QUEUE_WHEN_SIZE (2 * CLI_FMT_SIZE + 8)

/* The local time and how far off it is: "2025-01-02 10:00:00 (5m ago)",
 * "... (in 4m)"; "-" for 0. */
static const char *
format_when(int64_t t, int64_t now, char buf[QUEUE_WHEN_SIZE])
{
	char when[CLI_FMT_SIZE], rel[CLI_FMT_SIZE];

	if (t <= 0)
		return "-";
	if (t > now)
		snprintf(buf, QUEUE_WHEN_SIZE, "%s (%s)",
		         cli_format_time(t, when), format_next(t, now, rel));
	else
		snprintf(buf, QUEUE_WHEN_SIZE, "%s (%s ago)",
		         cli_format_time(t, when),
		         format_duration(now - t, rel));
	return buf;
}

/* The show table's NEXT ATTEMPT: "-" unless pending, "now" when due. */
static const char *
rcpt_next(const Mc__QueueRecipient *r, int64_t now, char buf[QUEUE_WHEN_SIZE])
{
	if (!rcpt_pending(r))
		return "-";
	if (r->next_attempt <= now)
		return "now";
	return format_when(r->next_attempt, now, buf);
}

static void
print_message(const Mc__QueueMessage *m)
{
	static const char *const headers[] = {"RECIPIENT", "STATE", "ATTEMPTS",
	                                      "NEXT ATTEMPT", "LAST ERROR"};
	int64_t now = cli_now_ms() / 1000;
	char size[CLI_FMT_SIZE], when[QUEUE_WHEN_SIZE];
	char *id = printable(m->id), *sender = sender_text(m);
	struct cli_table t;

	printf("id:        %s\nsender:    %s\nsize:      %s (%" PRIu64
	       " bytes)\nreceived:  %s\n\n",
	       id, sender, cli_format_size(m->size, size), m->size,
	       format_when(m->received, now, when));
	free(id);
	free(sender);
	cli_table_init(&t, 5, headers);
	for (size_t i = 0; i < m->n_recipients; i++) {
		const Mc__QueueRecipient *r = m->recipients[i];
		char attempts[16], next[QUEUE_WHEN_SIZE];
		char *addr = printable(r->address),
		     *state = printable(r->state);
		char *err = printable(r->last_error[0] != '\0' ? r->last_error
		                                               : "-");

		snprintf(attempts, sizeof(attempts), "%u", r->attempts);
		cli_table_add(&t, addr, state, attempts,
		              rcpt_next(r, now, next), err);
		free(addr);
		free(state);
		free(err);
	}
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
}

static int
queue_show(struct cli *cli)
{
	char id[CLI_QUEUE_ID_LEN + 1];
	Mc__QueueShowReq body = MC__QUEUE_SHOW_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	if ((ret = check_id(cli, cli->operands[0], id)) != CLI_EXIT_OK)
		return ret;
	body.id = id;
	req.body_case = MC__REQUEST__BODY_QUEUE_SHOW;
	req.queue_show = &body;
	if ((ret = relay_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	if (resp->body_case != MC__RESPONSE__BODY_QUEUE_MESSAGE)
		ret = cli_fail(cli, CLI_EXIT_REFUSED, "internal error",
		               "relay's reply carries no message");
	else if (cli->args.json)
		cli_json_print(json_pack("{s:o}", "message",
		                         message_json(resp->queue_message)));
	else
		print_message(resp->queue_message);
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static int
queue_retry(struct cli *cli)
{
	char id[CLI_QUEUE_ID_LEN + 1] = "";
	Mc__QueueRetryReq body = MC__QUEUE_RETRY_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	if (cli->noperands > 0 &&
	    (ret = check_id(cli, cli->operands[0], id)) != CLI_EXIT_OK)
		return ret;
	body.id = id; /* "" = every message */
	req.body_case = MC__REQUEST__BODY_QUEUE_RETRY;
	req.queue_retry = &body;
	if ((ret = relay_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	if (cli->args.json)
		cli_json_print(json_pack("{s:b}", "ok", 1));
	else if (id[0] != '\0')
		printf("%s scheduled for immediate retry\n", id);
	else
		printf("every queued message scheduled for immediate retry\n");
	mc__response__free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

static int
queue_delete(struct cli *cli)
{
	char id[CLI_QUEUE_ID_LEN + 1];
	Mc__QueueDeleteReq body = MC__QUEUE_DELETE_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	if ((ret = check_id(cli, cli->operands[0], id)) != CLI_EXIT_OK)
		return ret;
	body.id = id;
	req.body_case = MC__REQUEST__BODY_QUEUE_DELETE;
	req.queue_delete = &body;
	if ((ret = relay_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	if (cli->args.json)
		cli_json_print(json_pack("{s:b}", "ok", 1));
	else
		printf("deleted %s\n", id);
	mc__response__free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

#define QUEUE_JSON_MESSAGE                                                     \
	"{\"id\",\"sender\",\"size\",\"received\",\"recipients\":[{"           \
	"\"address\",\n"                                                       \
	"\"state\",\"attempts\",\"next_attempt\",\"last_error\"}]}"

#define QUEUE_JSON_NOTES                                                       \
	"(sender \"\" = the null sender, size in bytes, received and\n"        \
	"next_attempt in unix seconds, next_attempt 0 = as soon as "           \
	"possible,\n"                                                          \
	"state pending, delivered or failed, last_error null when none).\n"

static const char queue_noun_help[] =
        "The queue commands ask one relay, at its admin_url, not the\n"
        "controller: give --relay URL or set MAILCTL_RELAY_URL\n"
        "(deploy/local/cluster puts MC_RELAY_1_ADMIN_URL in cluster.env).\n"
        "The admin token (--token-file) and the TLS options are the same\n"
        "as for the controller. A queue id is the 19 characters 'queue\n"
        "list' shows, also logged by the relay as id=...\n";

static const char queue_list_help[] =
        "Columns: ID, AGE (since the relay accepted the message), SIZE,\n"
        "SENDER (<> for the null sender), RECIPIENTS (pending/total), NEXT\n"
        "ATTEMPT (of the earliest pending recipient), LAST ERROR (of the\n"
        "first pending recipient that has one). With --json:\n"
        "{\"messages\":[" QUEUE_JSON_MESSAGE "]}\n" QUEUE_JSON_NOTES;

static const char queue_show_help[] =
        "Prints the message's id, sender, size and arrival time, then each\n"
        "recipient with its STATE (pending, delivered, failed), ATTEMPTS,\n"
        "NEXT ATTEMPT and LAST ERROR. A message that is not (or no longer)\n"
        "in the queue is 'not found' (exit 1). With --json:\n"
        "{\"message\":" QUEUE_JSON_MESSAGE "}\n" QUEUE_JSON_NOTES;

static const char queue_retry_help[] =
        "The pending recipients of message ID, or of every queued message\n"
        "without ID, are tried again now instead of after their backoff.\n"
        "With --json: {\"ok\":true}.\n";

static const char queue_delete_help[] =
        "Removes message ID from the relay's queue: its pending recipients\n"
        "never get it. With --json: {\"ok\":true}.\n";

/* clang-format off */
static const struct cli_command queue_commands[] = {
	{
		.verb = "list",
		.synopsis = "[--relay URL]",
		.summary = "List the messages in a relay's queue.",
		.help = queue_list_help,
		.options = CLI_OPT_RELAY,
		.min_operands = 0,
		.max_operands = 0,
		.run = queue_list,
	},
	{
		.verb = "show",
		.synopsis = "ID [--relay URL]",
		.summary = "Show a queued message's recipients.",
		.help = queue_show_help,
		.options = CLI_OPT_RELAY,
		.min_operands = 1,
		.max_operands = 1,
		.run = queue_show,
	},
	{
		.verb = "retry",
		.synopsis = "[ID] [--relay URL]",
		.summary = "Retry one queued message, or all, now.",
		.help = queue_retry_help,
		.options = CLI_OPT_RELAY,
		.min_operands = 0,
		.max_operands = 1,
		.run = queue_retry,
	},
	{
		.verb = "delete",
		.synopsis = "ID [--relay URL]",
		.summary = "Delete a message from a relay's queue.",
		.help = queue_delete_help,
		.options = CLI_OPT_RELAY,
		.min_operands = 1,
		.max_operands = 1,
		.run = queue_delete,
	},
};
/* clang-format on */

const struct cli_noun cli_queue_noun = {
        .name = "queue",
        .summary = "Inspect and manage a relay's mail queue.",
        .help = queue_noun_help,
        .commands = queue_commands,
        .ncommands = sizeof(queue_commands) / sizeof(queue_commands[0]),
};
