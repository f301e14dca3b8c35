/* Handlers for the nodes that follow the controller (register, heartbeat,
 * snapshot) and the admin views of them (node list, status). Liveness is
 * the controller's judgement: a heartbeat seen within node_timeout_ms. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "ctrl.h"
#include "log.h"
#include "mem.h"

#define CTRL_NODE_NAME_MAX 64
#define CTRL_NODE_PUBLIC_ADDRESSES_MAX 16

static bool
node_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > CTRL_NODE_NAME_MAX)
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '-' && *p != '_' && *p != '.')
			return false;
	return true;
}

/* Printable, no spaces, bounded: instance ids and host:port addresses. */
static bool
token_valid(const char *s, size_t max, bool allow_empty)
{
	size_t len = strlen(s);

	if ((len == 0 && !allow_empty) || len > max)
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (!isgraph((unsigned char)*p))
			return false;
	return true;
}

/* The node's LMTP address changed: republish the shards it owns. */
static int
republish_shards(struct ctrl_req *r, uint64_t node_id)
{
	PGresult *res = ctrl_query(r, "SELECT substr(name, 7)::int FROM leases"
	                              " WHERE holder_id = $1 AND name LIKE 'shard/%'",
	                           1, ctrl_u64(r, node_id));

	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		if (ctrl_change(r, CTRL_KIND_SHARD, ctrl_row_u64(res, i, 0),
		                MC__CHANGE__OP__UPSERT) < 0) {
			PQclear(res);
			return -1;
		}
	}
	PQclear(res);
	return 0;
}

/* A relay's public addresses as a text[] literal ("{}" for none), or
 * NULL after an INVALID reply. IP literals need no quoting in it. */
static const char *
public_addresses(struct ctrl_req *r, const Mc__RegisterReq *q)
{
	size_t cap = 3;
	char *lit, *p;

	if (q->n_public_addresses > CTRL_NODE_PUBLIC_ADDRESSES_MAX) {
		ctrl_fail(r, MC__STATUS__STATUS_INVALID, "at most %d public addresses",
		          CTRL_NODE_PUBLIC_ADDRESSES_MAX);
		return NULL;
	}
	for (size_t i = 0; i < q->n_public_addresses; i++) {
		unsigned char buf[16];

		if (inet_pton(AF_INET, q->public_addresses[i], buf) != 1 &&
		    inet_pton(AF_INET6, q->public_addresses[i], buf) != 1) {
			ctrl_fail(r, MC__STATUS__STATUS_INVALID,
			          "public address '%.64s' is not an IP address",
			          q->public_addresses[i]);
			return NULL;
		}
		cap += strlen(q->public_addresses[i]) + 1;
	}
	p = lit = mc_pool_alloc(r->pool, cap);
	*p++ = '{';
	for (size_t i = 0; i < q->n_public_addresses; i++)
		p += sprintf(p, "%s%s", i > 0 ? "," : "", q->public_addresses[i]);
	*p++ = '}';
	return lit;
}

static int
register_check(struct ctrl_req *r, const Mc__RegisterReq *q)
{
	int held;

	if (!node_name_valid(q->name))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "node name must be 1-%d characters of a-z 0-9 . - _",
		                 CTRL_NODE_NAME_MAX);
	if (q->kind != MC__NODE_KIND__NODE_KIND_MAILBOX &&
	    q->kind != MC__NODE_KIND__NODE_KIND_RELAY)
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID, "unknown node kind");
	if (!token_valid(q->instance, 64, false) ||
	    !token_valid(q->lmtp_address, 255, true))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "invalid instance id or LMTP address");
	if (q->public_name[0] != '\0' && !mc_addr_domain_valid(q->public_name))
		return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
		                 "public name '%.64s' is not a domain name", q->public_name);
	if ((held = ctrl_leases_held_elsewhere(r, q->name, q->instance)) < 0)
		return -1;
	if (held)
		return ctrl_fail(r, MC__STATUS__STATUS_CONFLICT,
		                 "node %s is already running elsewhere (another process "
		                 "holds its leases); stop it or wait for its leases to "
		                 "expire", q->name);
	return 0;
}

int
ctrl_node_register(struct ctrl_req *r)
{
	const Mc__RegisterReq *q = r->req->register_;
	Mc__RegisterResp *rr;
	char kind[4], pid[16];
	const char *addresses;
	char *public_name = mc_addr_lower(mc_pool_strdup(r->pool, q->public_name));
	PGresult *res;
	bool moved;

	if (register_check(r, q) < 0 || (addresses = public_addresses(r, q)) == NULL ||
	    ctrl_exec(r, "BEGIN", 0) < 0)
		return -1;
	snprintf(kind, sizeof(kind), "%d", (int)q->kind);
	snprintf(pid, sizeof(pid), "%u", q->pid);
	/* A name keeps its kind: a relay cannot take over a mailbox node's
	 * identity by registering under its name. */
	res = ctrl_query(r, "WITH old AS (SELECT lmtp_address FROM nodes WHERE name = $1)"
	                    " INSERT INTO nodes (name, kind, applied_version,"
	                    " last_heartbeat, pid, software, instance, lmtp_address,"
	                    " public_name, public_addresses)"
	                    " VALUES ($1, $2, $3, now(), $4, left($5, 128), $6, $7, $8, $9)"
	                    " ON CONFLICT (name) DO UPDATE SET"
	                    " applied_version = EXCLUDED.applied_version,"
	                    " last_heartbeat = now(), registered_at = now(),"
	                    " pid = EXCLUDED.pid, software = EXCLUDED.software,"
	                    " instance = EXCLUDED.instance,"
	                    " lmtp_address = EXCLUDED.lmtp_address,"
	                    " public_name = EXCLUDED.public_name,"
	                    " public_addresses = EXCLUDED.public_addresses"
	                    " WHERE nodes.kind = EXCLUDED.kind"
	                    " RETURNING id, (SELECT version FROM cluster),"
	                    " coalesce((SELECT lmtp_address FROM old), '') <> $7",
	                 9, q->name, kind, ctrl_u64(r, q->applied_version), pid,
	                 q->software, q->instance, q->lmtp_address, public_name,
	                 addresses);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctrl_fail(r, MC__STATUS__STATUS_CONFLICT,
		                 "node name %s is registered with another kind", q->name);
	}
	rr = mc_pool_alloc(r->pool, sizeof(*rr));
	mc__register_resp__init(rr);
	rr->node_id = ctrl_row_u64(res, 0, 0);
	rr->version = ctrl_row_u64(res, 0, 1);
	rr->heartbeat_ms = r->ctrl->heartbeat_ms;
	rr->lease_ttl_ms = r->ctrl->lease_ttl_ms;
	moved = PQgetvalue(res, 0, 2)[0] == 't';
	PQclear(res);
	if ((moved && republish_shards(r, rr->node_id) < 0) ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	if (r->new_version != 0)
		rr->version = r->new_version;
	r->resp->version = rr->version;
	r->resp->body_case = MC__RESPONSE__BODY_REGISTER;
	r->resp->register_ = rr;
	return 0;
}

int
ctrl_node_heartbeat(struct ctrl_req *r)
{
	const Mc__HeartbeatReq *q = r->req->heartbeat;
	Mc__HeartbeatResp *hr = mc_pool_alloc(r->pool, sizeof(*hr));
	PGresult *res;
	bool mailbox = false;

	mc__heartbeat_resp__init(hr);
	/* A heartbeat from a superseded process instance is not the node's:
	 * it is told to register again (and is refused while the other holds
	 * the leases). */
	res = ctrl_query(r, "UPDATE nodes SET applied_version = $2,"
	                    " last_heartbeat = now() WHERE id = $1 AND instance = $3"
	                    " RETURNING kind",
	                 3, ctrl_u64(r, q->node_id), ctrl_u64(r, q->applied_version),
	                 q->instance);
	if (res == NULL)
		return -1;
	hr->known = PQntuples(res) == 1;
	if (hr->known)
		mailbox = ctrl_row_u64(res, 0, 0) == MC__NODE_KIND__NODE_KIND_MAILBOX;
	PQclear(res);
	if (hr->known && q->releasing) {
		mc_info("node stopping node_id=%llu: leases released",
		        (unsigned long long)q->node_id);
		if (ctrl_exec(r, "UPDATE leases SET expires_at = now() WHERE"
		                 " holder_id = $1 AND instance = $2",
		              2, ctrl_u64(r, q->node_id), q->instance) < 0 ||
		    ctrl_exec(r, "UPDATE nodes SET last_heartbeat = NULL WHERE id = $1",
		              1, ctrl_u64(r, q->node_id)) < 0)
			return -1;
	} else if (mailbox && ctrl_leases_heartbeat(r, q->node_id, q->instance, hr) < 0) {
		return -1;
	}
	res = ctrl_query(r, "SELECT version FROM cluster", 0);
	if (res == NULL)
		return -1;
	hr->version = ctrl_row_u64(res, 0, 0);
	PQclear(res);
	r->resp->version = hr->version;
	r->resp->body_case = MC__RESPONSE__BODY_HEARTBEAT;
	r->resp->heartbeat = hr;
	return 0;
}

int
ctrl_node_snapshot(struct ctrl_req *r)
{
	Mc__Snapshot *s = mc_pool_alloc(r->pool, sizeof(*s));
	PGresult *res;
	bool mailbox;
	int n;

	mc__snapshot__init(s);
	res = ctrl_query(r, "SELECT kind FROM nodes WHERE id = $1", 1,
	                 ctrl_u64(r, r->req->snapshot->node_id));
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctrl_fail(r, MC__STATUS__STATUS_NOT_FOUND,
		                 "unknown node: register first");
	}
	/* Password hashes only ever go to mailbox nodes; routes and DKIM
	 * private keys only to relays. */
	mailbox = ctrl_row_u64(res, 0, 0) == MC__NODE_KIND__NODE_KIND_MAILBOX;
	PQclear(res);
	/* One consistent view: version and objects from the same snapshot. */
	if (ctrl_exec(r, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0) < 0)
		return -1;
	res = ctrl_query(r, "SELECT version, shard_count FROM cluster", 0);
	if (res == NULL)
		return -1;
	s->version = ctrl_row_u64(res, 0, 0);
	s->shard_count = (uint32_t)ctrl_row_u64(res, 0, 1);
	PQclear(res);
	/* Every object in it changes the version (shard owners and their
	 * addresses too): the same version is the same reply. */
	if (mailbox && r->ctrl->snap_cache != NULL &&
	    r->ctrl->snap_cache_version == s->version) {
		if (ctrl_exec(r, "COMMIT", 0) < 0)
			return -1;
		r->packed = r->ctrl->snap_cache;
		r->packed_len = r->ctrl->snap_cache_len;
		return 0;
	}
	r->cache_reply = mailbox;
	if ((n = ctrl_load_domains(r, CTRL_ALL, NULL, &s->domains)) < 0)
		return -1;
	s->n_domains = (size_t)n;
	if ((n = ctrl_load_accounts(r, CTRL_ALL, NULL, mailbox, &s->accounts)) < 0)
		return -1;
	s->n_accounts = (size_t)n;
	if ((n = ctrl_load_aliases(r, CTRL_ALL, NULL, &s->aliases)) < 0)
		return -1;
	s->n_aliases = (size_t)n;
	if ((n = ctrl_load_shards(r, NULL, &s->shards)) < 0)
		return -1;
	s->n_shards = (size_t)n;
	if (!mailbox) {
		if ((n = ctrl_load_routes(r, NULL, &s->routes)) < 0)
			return -1;
		s->n_routes = (size_t)n;
		if ((n = ctrl_load_route_rules(r, NULL, &s->route_rules)) < 0)
			return -1;
		s->n_route_rules = (size_t)n;
	}
	if ((n = ctrl_load_dkim_keys(r, CTRL_ALL, NULL, !mailbox, &s->dkim_keys)) < 0)
		return -1;
	s->n_dkim_keys = (size_t)n;
	if (ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	r->resp->version = s->version;
	r->resp->body_case = MC__RESPONSE__BODY_SNAPSHOT;
	r->resp->snapshot = s;
	return 0;
}

/* Every node, with liveness judged against node_timeout_ms. */
static int
load_nodes(struct ctrl_req *r, Mc__Node ***out_r)
{
	char timeout[16];
	PGresult *res;
	Mc__Node **out;
	int n;

	snprintf(timeout, sizeof(timeout), "%u", r->ctrl->node_timeout_ms);
	res = ctrl_query(r, "SELECT id, name, kind, applied_version,"
	                    " coalesce((extract(epoch FROM last_heartbeat) * 1000)::bigint, 0),"
	                    " coalesce(last_heartbeat > now() - $1 * interval '1 millisecond', false),"
	                    " extract(epoch FROM registered_at)::bigint, pid, software,"
	                    " lmtp_address, public_name,"
	                    " array_to_string(public_addresses, ' ') FROM nodes"
	                    " ORDER BY name",
	                 1, timeout);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	out = mc_pool_alloc(r->pool, sizeof(*out) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		Mc__Node *nd = mc_pool_alloc(r->pool, sizeof(*nd));

		mc__node__init(nd);
		nd->id = ctrl_row_u64(res, i, 0);
		nd->name = ctrl_row_str(r, res, i, 1);
		nd->kind = (Mc__NodeKind)ctrl_row_u64(res, i, 2);
		nd->applied_version = ctrl_row_u64(res, i, 3);
		nd->last_heartbeat_ms = (int64_t)ctrl_row_u64(res, i, 4);
		nd->live = PQgetvalue(res, i, 5)[0] == 't';
		nd->registered_at = (int64_t)ctrl_row_u64(res, i, 6);
		nd->pid = (uint32_t)ctrl_row_u64(res, i, 7);
		nd->software = ctrl_row_str(r, res, i, 8);
		nd->lmtp_address = ctrl_row_str(r, res, i, 9);
		nd->public_name = ctrl_row_str(r, res, i, 10);
		{
			char *list = ctrl_row_str(r, res, i, 11), *save = NULL;
			size_t cap = 1;

			for (const char *p = list; *p != '\0'; p++)
				cap += *p == ' ';
			nd->public_addresses =
			        mc_pool_alloc(r->pool, sizeof(char *) * (cap + 1));
			for (char *t = strtok_r(list, " ", &save); t != NULL;
			     t = strtok_r(NULL, " ", &save))
				nd->public_addresses[nd->n_public_addresses++] = t;
		}
		out[i] = nd;
	}
	PQclear(res);
	*out_r = out;
	return n;
}

int
ctrl_node_list(struct ctrl_req *r)
{
	Mc__NodeList *l = mc_pool_alloc(r->pool, sizeof(*l));
	int n;

	mc__node_list__init(l);
	if ((n = load_nodes(r, &l->nodes)) < 0)
		return -1;
	l->n_nodes = (size_t)n;
	r->resp->body_case = MC__RESPONSE__BODY_NODES;
	r->resp->nodes = l;
	return 0;
}

int
ctrl_status(struct ctrl_req *r)
{
	Mc__StatusInfo *st = mc_pool_alloc(r->pool, sizeof(*st));
	PGresult *res;
	int n;

	mc__status_info__init(st);
	res = ctrl_query(r, "SELECT version, shard_count FROM cluster", 0);
	if (res == NULL)
		return -1;
	st->version = ctrl_row_u64(res, 0, 0);
	st->shard_count = (uint32_t)ctrl_row_u64(res, 0, 1);
	PQclear(res);
	if ((n = load_nodes(r, &st->nodes)) < 0)
		return -1;
	st->n_nodes = (size_t)n;
	st->node_timeout_ms = r->ctrl->node_timeout_ms;
	r->resp->version = st->version;
	r->resp->body_case = MC__RESPONSE__BODY_STATUS_INFO;
	r->resp->status_info = st;
	return 0;
}

int
ctrl_debug_drop_deltas(struct ctrl_req *r)
{
	if (!r->ctrl->fault_injection)
		return ctrl_fail(r, MC__STATUS__STATUS_UNAUTHORIZED,
		                 "fault injection is disabled on this controller");
	r->ctrl->drop_deltas = r->req->debug_drop_deltas->count;
	return 0;
}
