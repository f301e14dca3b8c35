/* The publisher: after each committed mutation, everything changed since
 * the last published version goes out as one Delta on the PUB socket,
 * twice: topic 'M' with password hashes and SCRAM verifiers for mailbox
 * nodes (without routes and DKIM private keys), topic 'R' for relays
 * (with routes and the decrypted private keys of active DKIM keys,
 * without hashes or verifiers). Objects are read in their current state (the
 * worker is serialised, so that is exactly the state at to_version);
 * an object in the change log that no longer exists is sent as a DELETE.
 * PUB/SUB may drop messages: nodes detect gaps by version and fetch a
 * snapshot, so a failed publish only costs them a round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl.h"
#include <nng/protocol/pubsub0/pub.h>
#include "error.h"
#include "log.h"
#include "mem.h"

int
ctrl_publish_open(struct ctrl *c, const char *url, const struct mc_tls_files *tls,
                  const char **error_r)
{
	int rv;

	if ((rv = nng_pub0_open(&c->pub)) != 0) {
		*error_r = mc_errorf("pub socket: %s", nng_strerror(rv));
		return -1;
	}
	if (mc_rpc_listen(c->pub, url, tls, error_r) < 0) {
		nng_close(c->pub);
		return -1;
	}
	return 0;
}

void
ctrl_publish_close(struct ctrl *c)
{
	nng_close(c->pub);
}

struct id_set {
	char *literal; /* {1,2,3} */
	size_t len, cap, count;
};

static void
id_set_add(struct ctrl_req *r, struct id_set *s, const char *id)
{
	size_t need = s->len + strlen(id) + 3;

	if (need > s->cap) {
		char *n = mc_pool_alloc(r->pool, need * 2);

		if (s->literal != NULL)
			memcpy(n, s->literal, s->len);
		s->literal = n;
		s->cap = need * 2;
	}
	s->len += (size_t)sprintf(s->literal + s->len, "%s%s", s->count ? "," : "{", id);
	s->count++;
}

static const char *
id_set_done(struct ctrl_req *r, struct id_set *s)
{
	char *lit;

	if (s->count == 0)
		return "{}";
	lit = mc_pool_alloc(r->pool, s->len + 2);
	memcpy(lit, s->literal, s->len);
	lit[s->len] = '}';
	return s->literal = lit;
}

static Mc__Change *
change_new(struct ctrl_req *r, Mc__Change__Op op)
{
	Mc__Change *ch = mc_pool_alloc(r->pool, sizeof(*ch));

	mc__change__init(ch);
	ch->op = op;
	return ch;
}

/* The objects a delta carries, loaded in their current state. */
struct loaded {
	Mc__Domain **doms;
	Mc__Account **accs;
	Mc__Alias **als;
	Mc__ShardOwner **shs;
	Mc__Route **routes;
	Mc__RouteRule **rules;
	Mc__DkimKey **keys;
	int n[CTRL_KIND_LAST + 1];
};

static int
load_changed(struct ctrl_req *r, struct id_set *ids, struct loaded *l)
{
	int *n = l->n;

	/* DKIM private keys are loaded (decrypted) for the relays' topic;
	 * delta_for takes them out of the mailbox nodes' one. */
	n[CTRL_KIND_DOMAIN] = ctrl_load_domains(
	        r, CTRL_BY_IDS, id_set_done(r, &ids[CTRL_KIND_DOMAIN]), &l->doms);
	if (n[CTRL_KIND_DOMAIN] < 0)
		return -1;
	n[CTRL_KIND_ACCOUNT] = ctrl_load_accounts(
	        r, CTRL_BY_IDS, id_set_done(r, &ids[CTRL_KIND_ACCOUNT]), true, &l->accs);
	if (n[CTRL_KIND_ACCOUNT] < 0)
		return -1;
	n[CTRL_KIND_ALIAS] = ctrl_load_aliases(
	        r, CTRL_BY_IDS, id_set_done(r, &ids[CTRL_KIND_ALIAS]), &l->als);
	if (n[CTRL_KIND_ALIAS] < 0)
		return -1;
	n[CTRL_KIND_SHARD] =
	        ctrl_load_shards(r, id_set_done(r, &ids[CTRL_KIND_SHARD]), &l->shs);
	if (n[CTRL_KIND_SHARD] < 0)
		return -1;
	n[CTRL_KIND_ROUTE] =
	        ctrl_load_routes(r, id_set_done(r, &ids[CTRL_KIND_ROUTE]), &l->routes);
	if (n[CTRL_KIND_ROUTE] < 0)
		return -1;
	n[CTRL_KIND_ROUTE_RULE] = ctrl_load_route_rules(
	        r, id_set_done(r, &ids[CTRL_KIND_ROUTE_RULE]), &l->rules);
	if (n[CTRL_KIND_ROUTE_RULE] < 0)
		return -1;
	n[CTRL_KIND_DKIM_KEY] = ctrl_load_dkim_keys(
	        r, CTRL_BY_IDS, id_set_done(r, &ids[CTRL_KIND_DKIM_KEY]), true, &l->keys);
	return n[CTRL_KIND_DKIM_KEY] < 0 ? -1 : 0;
}

/* Is the object (kind, id) among those loaded? Objects are few per
 * delta. Shard owners are never deleted, only replaced. */
static bool
still_exists(const struct loaded *l, int kind, uint64_t id)
{
	for (int i = 0; i < l->n[kind]; i++) {
		uint64_t have = kind == CTRL_KIND_DOMAIN       ? l->doms[i]->id
		                : kind == CTRL_KIND_ACCOUNT    ? l->accs[i]->id
		                : kind == CTRL_KIND_ALIAS      ? l->als[i]->id
		                : kind == CTRL_KIND_ROUTE      ? l->routes[i]->id
		                : kind == CTRL_KIND_ROUTE_RULE ? l->rules[i]->id
		                : kind == CTRL_KIND_DKIM_KEY   ? l->keys[i]->id
		                                               : id;

		if (have == id)
			return true;
	}
	return kind == CTRL_KIND_SHARD;
}

/* A DELETE change: only the id of the object is set. */
static Mc__Change *
delete_change(struct ctrl_req *r, int kind, uint64_t id)
{
	Mc__Change *ch = change_new(r, MC__CHANGE__OP__DELETE);

	switch (kind) {
	case CTRL_KIND_DOMAIN:
		ch->object_case = MC__CHANGE__OBJECT_DOMAIN;
		ch->domain = mc_pool_alloc(r->pool, sizeof(Mc__Domain));
		mc__domain__init(ch->domain);
		ch->domain->id = id;
		break;
	case CTRL_KIND_ACCOUNT:
		ch->object_case = MC__CHANGE__OBJECT_ACCOUNT;
		ch->account = mc_pool_alloc(r->pool, sizeof(Mc__Account));
		mc__account__init(ch->account);
		ch->account->id = id;
		break;
	case CTRL_KIND_ALIAS:
		ch->object_case = MC__CHANGE__OBJECT_ALIAS;
		ch->alias = mc_pool_alloc(r->pool, sizeof(Mc__Alias));
		mc__alias__init(ch->alias);
		ch->alias->id = id;
		break;
	case CTRL_KIND_ROUTE:
		ch->object_case = MC__CHANGE__OBJECT_ROUTE;
		ch->route = mc_pool_alloc(r->pool, sizeof(Mc__Route));
		mc__route__init(ch->route);
		ch->route->id = id;
		break;
	case CTRL_KIND_ROUTE_RULE:
		ch->object_case = MC__CHANGE__OBJECT_ROUTE_RULE;
		ch->route_rule = mc_pool_alloc(r->pool, sizeof(Mc__RouteRule));
		mc__route_rule__init(ch->route_rule);
		ch->route_rule->id = id;
		break;
	case CTRL_KIND_DKIM_KEY:
		ch->object_case = MC__CHANGE__OBJECT_DKIM_KEY;
		ch->dkim_key = mc_pool_alloc(r->pool, sizeof(Mc__DkimKey));
		mc__dkim_key__init(ch->dkim_key);
		ch->dkim_key->id = id;
		break;
	}
	return ch;
}

/* Append an UPSERT of the i-th loaded object of kind. */
static void
add_upsert(struct ctrl_req *r, Mc__Delta *d, const struct loaded *l, int kind, int i)
{
	Mc__Change *ch = change_new(r, MC__CHANGE__OP__UPSERT);

	switch (kind) {
	case CTRL_KIND_DOMAIN:
		ch->object_case = MC__CHANGE__OBJECT_DOMAIN;
		ch->domain = l->doms[i];
		break;
	case CTRL_KIND_ACCOUNT:
		ch->object_case = MC__CHANGE__OBJECT_ACCOUNT;
		ch->account = l->accs[i];
		break;
	case CTRL_KIND_ALIAS:
		ch->object_case = MC__CHANGE__OBJECT_ALIAS;
		ch->alias = l->als[i];
		break;
	case CTRL_KIND_SHARD:
		ch->object_case = MC__CHANGE__OBJECT_SHARD;
		ch->shard = l->shs[i];
		break;
	case CTRL_KIND_ROUTE:
		ch->object_case = MC__CHANGE__OBJECT_ROUTE;
		ch->route = l->routes[i];
		break;
	case CTRL_KIND_ROUTE_RULE:
		ch->object_case = MC__CHANGE__OBJECT_ROUTE_RULE;
		ch->route_rule = l->rules[i];
		break;
	case CTRL_KIND_DKIM_KEY:
		ch->object_case = MC__CHANGE__OBJECT_DKIM_KEY;
		ch->dkim_key = l->keys[i];
		break;
	}
	d->changes[d->n_changes++] = ch;
}

/* Build the delta (published_version, to] into d. */
static int
build_delta(struct ctrl_req *r, uint64_t to, Mc__Delta *d)
{
	struct id_set ids[CTRL_KIND_LAST + 1] = {{0}};
	struct loaded l = {0};
	size_t total = 1;
	int rows;
	PGresult *res;

	res = ctrl_query(r, "SELECT DISTINCT kind, object_id FROM change_log"
	                    " WHERE version > $1 AND version <= $2",
	                 2, ctrl_u64(r, r->ctrl->published_version), ctrl_u64(r, to));
	if (res == NULL)
		return -1;
	rows = PQntuples(res);
	for (int i = 0; i < rows; i++) {
		int kind = atoi(PQgetvalue(res, i, 0));

		if (kind >= CTRL_KIND_DOMAIN && kind <= CTRL_KIND_LAST)
			id_set_add(r, &ids[kind], PQgetvalue(res, i, 1));
	}
	PQclear(res);
	if (load_changed(r, ids, &l) < 0)
		return -1;
	for (int kind = CTRL_KIND_DOMAIN; kind <= CTRL_KIND_LAST; kind++)
		total += ids[kind].count;
	d->changes = mc_pool_alloc(r->pool, sizeof(Mc__Change *) * total);
	d->from_version = r->ctrl->published_version;
	d->to_version = to;
	/* Deletes first: a recreated name must never meet its old self. */
	for (int kind = CTRL_KIND_DOMAIN; kind <= CTRL_KIND_LAST; kind++) {
		char *save = NULL;
		char *list = ids[kind].count ? mc_pool_strdup(r->pool, ids[kind].literal + 1)
		                             : NULL;

		for (char *t = list ? strtok_r(list, ",}", &save) : NULL; t != NULL;
		     t = strtok_r(NULL, ",}", &save)) {
			uint64_t id = strtoull(t, NULL, 10);

			if (!still_exists(&l, kind, id))
				d->changes[d->n_changes++] = delete_change(r, kind, id);
		}
	}
	/* Upserts: domains before the accounts, aliases and keys in them,
	 * routes before the rules that name them. */
	for (int kind = CTRL_KIND_DOMAIN; kind <= CTRL_KIND_LAST; kind++)
		for (int i = 0; i < l.n[kind]; i++)
			add_upsert(r, d, &l, kind, i);
	return 0;
}

/* The delta as a node of kind may see it: mailbox nodes get no routes
 * and no DKIM private keys, relays no password hashes or verifiers.
 * Objects that need a field blanked are copied (shallow), so d itself
 * stays whole. */
static Mc__Delta *
delta_for(struct ctrl_req *r, const Mc__Delta *d, Mc__NodeKind kind)
{
	Mc__Delta *out = mc_pool_alloc(r->pool, sizeof(*out));
	bool relay = kind == MC__NODE_KIND__NODE_KIND_RELAY;

	mc__delta__init(out);
	out->from_version = d->from_version;
	out->to_version = d->to_version;
	out->changes = mc_pool_alloc(r->pool, sizeof(Mc__Change *) * (d->n_changes + 1));
	for (size_t i = 0; i < d->n_changes; i++) {
		Mc__Change *ch = d->changes[i], *copy;

		if (!relay && (ch->object_case == MC__CHANGE__OBJECT_ROUTE ||
		               ch->object_case == MC__CHANGE__OBJECT_ROUTE_RULE))
			continue;
		copy = mc_pool_alloc(r->pool, sizeof(*copy));
		*copy = *ch;
		if (relay && ch->object_case == MC__CHANGE__OBJECT_ACCOUNT) {
			copy->account = mc_pool_alloc(r->pool, sizeof(Mc__Account));
			*copy->account = *ch->account;
			copy->account->password_hash = "";
			copy->account->scram_sha256 = "";
		} else if (!relay && ch->object_case == MC__CHANGE__OBJECT_DKIM_KEY) {
			copy->dkim_key = mc_pool_alloc(r->pool, sizeof(Mc__DkimKey));
			*copy->dkim_key = *ch->dkim_key;
			copy->dkim_key->private_pem = "";
		}
		out->changes[out->n_changes++] = copy;
	}
	return out;
}

static void
send_topic(struct ctrl *c, char topic, const Mc__Delta *d)
{
	size_t len = mc__delta__get_packed_size(d);
	uint8_t *buf = mc_malloc(len + 1);
	int rv;

	buf[0] = (uint8_t)topic;
	mc__delta__pack(d, buf + 1);
	/* PUB never blocks: a slow subscriber loses messages and resyncs. */
	if ((rv = nng_send(c->pub, buf, len + 1, 0)) != 0)
		mc_warn("publish failed topic=%c error=\"%s\"", topic, nng_strerror(rv));
	/* It held hashes or private keys. */
	mc_wipe(buf, len + 1);
	free(buf);
}

void
ctrl_publish(struct ctrl_req *req)
{
	struct ctrl *c = req->ctrl;
	Mc__Response scratch = MC__RESPONSE__INIT;
	struct ctrl_req r = *req;
	Mc__Delta d = MC__DELTA__INIT;
	uint64_t to = req->new_version;

	/* Failures here must not turn the committed mutation's reply into an
	 * error: work on a scratch response. Secrets decrypted here are
	 * wiped here. */
	r.resp = &scratch;
	r.secrets = NULL;
	r.n_secrets = r.cap_secrets = 0;
	if (to <= c->published_version)
		return;
	if (build_delta(&r, to, &d) < 0) {
		mc_warn("delta not published to=%llu error=\"%s\": nodes will resync",
		        (unsigned long long)to, scratch.error ? scratch.error : "");
		ctrl_secrets_wipe(&r);
		return;
	}
	if (c->drop_deltas > 0) {
		c->drop_deltas--;
		mc_warn("fault injection: delta dropped from=%llu to=%llu",
		        (unsigned long long)d.from_version, (unsigned long long)to);
	} else {
		send_topic(c, MC_TOPIC_MAILBOX,
		           delta_for(&r, &d, MC__NODE_KIND__NODE_KIND_MAILBOX));
		send_topic(c, MC_TOPIC_RELAY,
		           delta_for(&r, &d, MC__NODE_KIND__NODE_KIND_RELAY));
		mc_info("delta published from=%llu to=%llu changes=%zu",
		        (unsigned long long)d.from_version, (unsigned long long)to,
		        d.n_changes);
	}
	ctrl_secrets_wipe(&r);
	c->published_version = to;
}
