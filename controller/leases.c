/* Shard leases and placement. A mailbox node's heartbeat runs
 * ctrl_leases_heartbeat: the shards are placed over the live mailbox nodes
 * by rendezvous (highest random weight) hashing, so a node joining or
 * leaving moves only its share; then, in one transaction, the node renews
 * the leases it holds on its shards, takes over the ones that are free or
 * expired (epoch + 1), gives up the ones no longer placed on it, and is
 * told which shards it may write with which epoch. A shard held by a live
 * lease of someone else, including another process instance of the same
 * node, is not granted: one writer per shard, enforced here and fenced by
 * the epoch in the store. Takeovers are recorded as changes of the shard
 * owner, so relays learn where to deliver. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl.h"
#include "mem.h"

struct lease_row {
	bool present;
	uint64_t holder_id;
	const char *instance;
	uint64_t epoch;
	bool live;
};

struct placement_node {
	uint64_t id;
	const char *name;
};

/* 64-bit FNV-1a of name and shard: the rendezvous weight. */
static uint64_t
weight(const char *name, uint32_t shard)
{
	uint64_t h = 14695981039346656037ull;

	for (const char *p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (int i = 0; i < 4; i++)
		h = (h ^ ((shard >> (8 * i)) & 0xff)) * 1099511628211ull;
	/* A final mix: FNV's low bits are weak for short inputs. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static uint64_t
place(const struct placement_node *nodes, int n, uint32_t shard)
{
	uint64_t best = 0, best_w = 0;

	for (int i = 0; i < n; i++) {
		uint64_t w = weight(nodes[i].name, shard);

		if (best == 0 || w > best_w || (w == best_w && nodes[i].id < best)) {
			best = nodes[i].id;
			best_w = w;
		}
	}
	return best;
}

/* Live mailbox nodes, the requester included (its heartbeat was just
 * recorded). */
static int
live_mailbox_nodes(struct ctrl_req *r, struct placement_node **out_r)
{
	char timeout[16];
	PGresult *res;
	int n;

	snprintf(timeout, sizeof(timeout), "%u", r->ctrl->node_timeout_ms);
	res = ctrl_query(r, "SELECT id, name FROM nodes WHERE kind = 1 AND"
	                    " last_heartbeat > now() - $1 * interval '1 millisecond'",
	                 1, timeout);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	*out_r = mc_pool_alloc(r->pool, sizeof(**out_r) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		(*out_r)[i].id = ctrl_row_u64(res, i, 0);
		(*out_r)[i].name = ctrl_row_str(r, res, i, 1);
	}
	PQclear(res);
	return n;
}

static int
load_lease_rows(struct ctrl_req *r, struct lease_row *rows)
{
	PGresult *res = ctrl_query(r, "SELECT substr(name, 7)::int, holder_id,"
	                              " instance, epoch, expires_at > now()"
	                              " FROM leases WHERE name LIKE 'shard/%' FOR UPDATE",
	                           0);

	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		uint64_t shard = ctrl_row_u64(res, i, 0);

		if (shard >= r->ctrl->shard_count)
			continue; /* cannot happen: shard_count is fixed */
		rows[shard].present = true;
		rows[shard].holder_id = ctrl_row_u64(res, i, 1);
		rows[shard].instance = ctrl_row_str(r, res, i, 2);
		rows[shard].epoch = ctrl_row_u64(res, i, 3);
		rows[shard].live = PQgetvalue(res, i, 4)[0] == 't';
	}
	PQclear(res);
	return 0;
}

/* Take shard over (insert or bump the epoch) and record the owner change. */
static int
take_over(struct ctrl_req *r, uint32_t shard, const struct lease_row *row,
          const char *node_s, const char *instance, const char *ttl,
          uint64_t *epoch_r)
{
	char name[24];

	snprintf(name, sizeof(name), "shard/%u", shard);
	*epoch_r = row->present ? row->epoch + 1 : 1;
	if (ctrl_exec(r, "INSERT INTO leases (name, holder_id, instance, epoch, expires_at)"
	                 " VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond')"
	                 " ON CONFLICT (name) DO UPDATE SET holder_id = EXCLUDED.holder_id,"
	                 " instance = EXCLUDED.instance, epoch = EXCLUDED.epoch,"
	                 " expires_at = EXCLUDED.expires_at",
	              5, name, node_s, instance, ctrl_u64(r, *epoch_r), ttl) < 0)
		return -1;
	return ctrl_change(r, CTRL_KIND_SHARD, shard, MC__CHANGE__OP__UPSERT);
}

int
ctrl_leases_heartbeat(struct ctrl_req *r, uint64_t node_id, const char *instance,
                      Mc__HeartbeatResp *hr)
{
	uint32_t shards = r->ctrl->shard_count;
	struct lease_row *rows = mc_pool_alloc(r->pool, sizeof(*rows) * shards);
	struct placement_node *nodes;
	char ttl[16];
	const char *node_s = ctrl_u64(r, node_id);
	size_t renew_len = 0, release_len = 0, cap = (size_t)shards * 12 + 3;
	char *renew = mc_pool_alloc(r->pool, cap), *release = mc_pool_alloc(r->pool, cap);
	int n;

	snprintf(ttl, sizeof(ttl), "%u", r->ctrl->lease_ttl_ms);
	hr->lease_ttl_ms = r->ctrl->lease_ttl_ms;
	hr->leases = mc_pool_alloc(r->pool, sizeof(Mc__LeaseGrant *) * shards);
	if (ctrl_exec(r, "BEGIN", 0) < 0 || (n = live_mailbox_nodes(r, &nodes)) < 0 ||
	    load_lease_rows(r, rows) < 0)
		return -1;
	for (uint32_t s = 0; s < shards; s++) {
		const struct lease_row *row = &rows[s];
		bool mine = row->present && row->holder_id == node_id &&
		            strcmp(row->instance, instance) == 0;
		uint64_t epoch = row->epoch;
		Mc__LeaseGrant *g;

		if (place(nodes, n, s) != node_id) {
			if (mine && row->live)
				release_len += (size_t)sprintf(release + release_len, "%sshard/%u",
				                               release_len ? "," : "{", s);
			continue;
		}
		if (mine && row->live) {
			renew_len += (size_t)sprintf(renew + renew_len, "%sshard/%u",
			                             renew_len ? "," : "{", s);
		} else if (!row->present || !row->live) {
			if (take_over(r, s, row, node_s, instance, ttl, &epoch) < 0)
				return -1;
		} else {
			continue; /* someone else's live lease: wait for it */
		}
		g = mc_pool_alloc(r->pool, sizeof(*g));
		mc__lease_grant__init(g);
		g->shard = s;
		g->epoch = epoch;
		hr->leases[hr->n_leases++] = g;
	}
	if (renew_len > 0) {
		strcpy(renew + renew_len, "}");
		if (ctrl_exec(r, "UPDATE leases SET expires_at = now() + $2 * interval"
		                 " '1 millisecond' WHERE name = ANY($1::text[])",
		              2, renew, ttl) < 0)
			return -1;
	}
	if (release_len > 0) {
		/* Placed elsewhere now: the node stops writing when it sees the
		 * shard missing from its grants, and the epoch bump of the next
		 * owner fences any write already in flight. */
		strcpy(release + release_len, "}");
		if (ctrl_exec(r, "UPDATE leases SET expires_at = now()"
		                 " WHERE name = ANY($1::text[])", 1, release) < 0)
			return -1;
	}
	return ctrl_exec(r, "COMMIT", 0);
}

/* A second process must not run under a live node's name: it would write
 * the same shards. Returns 1 when another instance holds live leases. */
int
ctrl_leases_held_elsewhere(struct ctrl_req *r, const char *node_name,
                           const char *instance)
{
	PGresult *res = ctrl_query(r, "SELECT count(*) FROM leases l JOIN nodes n"
	                              " ON n.id = l.holder_id WHERE n.name = $1 AND"
	                              " l.instance <> $2 AND l.expires_at > now()",
	                           2, node_name, instance);
	int held;

	if (res == NULL)
		return -1;
	held = ctrl_row_u64(res, 0, 0) > 0;
	PQclear(res);
	return held;
}

int
ctrl_load_shards(struct ctrl_req *r, const char *ids, Mc__ShardOwner ***out_r)
{
	PGresult *res = ctrl_query(r, "SELECT substr(l.name, 7)::int AS shard, l.holder_id,"
	                              " n.name, l.epoch, n.lmtp_address FROM leases l"
	                              " JOIN nodes n ON n.id = l.holder_id"
	                              " WHERE l.name LIKE 'shard/%' AND ($1::int[] IS NULL"
	                              " OR substr(l.name, 7)::int = ANY($1::int[]))"
	                              " ORDER BY shard",
	                           1, ids);
	Mc__ShardOwner **out;
	int n;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	out = mc_pool_alloc(r->pool, sizeof(*out) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		Mc__ShardOwner *o = mc_pool_alloc(r->pool, sizeof(*o));

		mc__shard_owner__init(o);
		o->shard = (uint32_t)ctrl_row_u64(res, i, 0);
		o->node_id = ctrl_row_u64(res, i, 1);
		o->node_name = ctrl_row_str(r, res, i, 2);
		o->epoch = ctrl_row_u64(res, i, 3);
		o->lmtp_address = ctrl_row_str(r, res, i, 4);
		out[i] = o;
	}
	PQclear(res);
	*out_r = out;
	return n;
}
