/* mailctl node list and mailctl status: the mailbox nodes and relays the
 * controller knows, with the configuration version each has applied and
 * how long ago it last sent a heartbeat. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>

#include "mem.h"

const char *
cli_node_kind_str(Mc__NodeKind kind)
{
	switch (kind) {
	case MC__NODE_KIND__NODE_KIND_MAILBOX:
		return "mailbox";
	case MC__NODE_KIND__NODE_KIND_RELAY:
		return "relay";
	default:
		return "unspecified";
	}
}

json_t *
cli_node_json(const Mc__Node *n)
{
	json_t *j = json_pack("{s:o, s:o, s:s, s:o, s:I, s:b, s:i, s:I, s:o}", "id",
	                      cli_json_u64(n->id), "name", cli_json_str(n->name),
	                      "kind", cli_node_kind_str(n->kind), "applied_version",
	                      cli_json_u64(n->applied_version), "last_heartbeat_ms",
	                      (json_int_t)n->last_heartbeat_ms, "live", (int)n->live,
	                      "pid", (int)n->pid, "registered_at",
	                      (json_int_t)n->registered_at, "software",
	                      cli_json_str(n->software));

	/* Relays: the public name and addresses `domain dns` publishes. */
	if (n->kind == MC__NODE_KIND__NODE_KIND_RELAY) {
		json_t *addrs = json_array();

		for (size_t i = 0; i < n->n_public_addresses; i++)
			json_array_append_new(addrs, cli_json_str(n->public_addresses[i]));
		json_object_set_new(j, "public_name", cli_json_str(n->public_name));
		json_object_set_new(j, "public_addresses", addrs);
	}
	return j;
}

static json_t *
nodes_json(Mc__Node *const *nodes, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, cli_node_json(nodes[i]));
	return arr;
}

/* "live", "live, behind" (has not applied the cluster version yet) or
 * "down". */
static const char *
node_state(const Mc__Node *n, uint64_t version)
{
	if (!n->live)
		return "down";
	return n->applied_version < version ? "live, behind" : "live";
}

/* The node table; long adds ID, PID, SOFTWARE and REGISTERED. */
static void
print_nodes(Mc__Node *const *nodes, size_t n, uint64_t version, bool full)
{
	static const char *const long_headers[] = {
	        "ID",    "NAME", "KIND",     "APPLIED",   "LAST HEARTBEAT",
	        "STATE", "PID",  "SOFTWARE", "REGISTERED"};
	static const char *const short_headers[] = {"NAME", "KIND", "APPLIED",
	                                            "LAST HEARTBEAT", "STATE"};
	int64_t now = cli_now_ms();
	struct cli_table t;

	cli_table_init(&t, full ? 9 : 5, full ? long_headers : short_headers);
	for (size_t i = 0; i < n; i++) {
		const Mc__Node *node = nodes[i];
		char id[24], applied[24], pid[16], age[CLI_FMT_SIZE],
		        reg[CLI_FMT_SIZE];

		snprintf(id, sizeof(id), "%" PRIu64, node->id);
		snprintf(applied, sizeof(applied), "%" PRIu64,
		         node->applied_version);
		snprintf(pid, sizeof(pid), "%u", node->pid);
		cli_format_age(now, node->last_heartbeat_ms, age);
		if (full)
			cli_table_add(
			        &t, id, node->name,
			        cli_node_kind_str(node->kind), applied, age,
			        node_state(node, version), pid, node->software,
			        cli_format_time(node->registered_at, reg));
		else
			cli_table_add(&t, node->name,
			              cli_node_kind_str(node->kind), applied,
			              age, node_state(node, version));
	}
	cli_table_print(&t, stdout);
	cli_table_fini(&t);
}

static int
node_list(struct cli *cli)
{
	Mc__NodeListReq body = MC__NODE_LIST_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	Mc__Node **nodes = NULL;
	size_t n = 0;
	int ret;

	req.body_case = MC__REQUEST__BODY_NODE_LIST;
	req.node_list = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	if (resp->body_case == MC__RESPONSE__BODY_NODES) {
		nodes = resp->nodes->nodes;
		n = resp->nodes->n_nodes;
	}
	if (cli->args.json)
		cli_json_print(
		        json_pack("{s:o}", "nodes", nodes_json(nodes, n)));
	else
		print_nodes(nodes, n, resp->version, true);
	mc__response__free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

static void
print_status(const Mc__StatusInfo *st)
{
	size_t live = 0;

	for (size_t i = 0; i < st->n_nodes; i++)
		live += st->nodes[i]->live ? 1 : 0;
	printf("cluster version:  %" PRIu64 "\nshards:           %u\n"
	       "node timeout:     %u ms\nnodes:            %zu live, %zu "
	       "down\n\n",
	       st->version, st->shard_count, st->node_timeout_ms, live,
	       st->n_nodes - live);
	print_nodes(st->nodes, st->n_nodes, st->version, false);
}

static int
status_run(struct cli *cli)
{
	Mc__StatusReq body = MC__STATUS_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	const Mc__StatusInfo *st;
	int ret = CLI_EXIT_OK;

	req.body_case = MC__REQUEST__BODY_STATUS;
	req.status = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	st = resp->status_info;
	if (resp->body_case != MC__RESPONSE__BODY_STATUS_INFO)
		ret = cli_fail(cli, CLI_EXIT_REFUSED, "internal error",
		               "controller's reply carries no status");
	else if (cli->args.json)
		cli_json_print(json_pack("{s:o, s:i, s:i, s:o}", "version",
		                         cli_json_u64(st->version),
		                         "shard_count", (int)st->shard_count,
		                         "node_timeout_ms",
		                         (int)st->node_timeout_ms, "nodes",
		                         nodes_json(st->nodes, st->n_nodes)));
	else
		print_status(st);
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static const char node_list_help[] =
        "Columns: ID, NAME, KIND (mailbox or relay), APPLIED (the\n"
        "configuration version the node has applied), LAST HEARTBEAT,\n"
        "STATE (live; 'live, behind' when it has not applied the cluster\n"
        "version yet; down when no heartbeat came within the node\n"
        "timeout), PID, SOFTWARE, REGISTERED. With --json:\n"
        "{\"nodes\":[{\"id\",\"name\",\"kind\",\"applied_version\","
        "\"last_heartbeat_ms\",\n"
        "\"live\",\"pid\",\"registered_at\",\"software\"}]}\n";

static const char status_help[] =
        "Prints the cluster configuration version, the shard count, the\n"
        "node timeout and, for each node, its name, kind, applied version,\n"
        "last heartbeat age and state. With --json:\n"
        "{\"version\",\"shard_count\",\"node_timeout_ms\",\"nodes\":[...]}\n"
        "with nodes as in 'mailctl node list --json'.\n";

/* clang-format off */
static const struct cli_command node_commands[] = {
	{
		.verb = "list",
		.synopsis = "",
		.summary = "List mailbox nodes and relays.",
		.help = node_list_help,
		.min_operands = 0,
		.max_operands = 0,
		.run = node_list,
	},
};

static const struct cli_command status_commands[] = {
	{
		.verb = NULL,
		.synopsis = "",
		.summary = "Cluster version, shards, node health.",
		.help = status_help,
		.min_operands = 0,
		.max_operands = 0,
		.run = status_run,
	},
};
/* clang-format on */

const struct cli_noun cli_node_noun = {
        .name = "node",
        .summary = "Show the mailbox nodes and relays of the cluster.",
        .commands = node_commands,
        .ncommands = sizeof(node_commands) / sizeof(node_commands[0]),
};

const struct cli_noun cli_status_noun = {
        .name = "status",
        .summary = "Show the cluster's state.",
        .commands = status_commands,
        .ncommands = 1,
};
