/* The publisher: after each committed mutation, everything changed since
 * the last published version goes out as one Delta on the PUB socket,
 * twice: topic 'M' with password hashes and SCRAM verifiers for mailbox
 * nodes, topic 'R' without either for relays. Objects are read in their current state (the
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

/* Is id among the n objects loaded? Objects are few per delta. */
#define FOUND(arr, n, want, found)                                           \
	do {                                                                 \
		found = false;                                               \
		for (int i_ = 0; i_ < (n); i_++)                             \
			if ((arr)[i_]->id == (want))                         \
				found = true;                                \
	} while (0)

/* Build the delta (published_version, to] into d. */
static int
build_delta(struct ctrl_req *r, uint64_t to, Mc__Delta *d)
{
	struct id_set ids[5] = {{0}};
	Mc__Domain **doms;
	Mc__Account **accs;
	Mc__Alias **als;
	Mc__ShardOwner **shs;
	int nd, na, nl, ns, rows;
	PGresult *res;

	res = ctrl_query(r, "SELECT DISTINCT kind, object_id FROM change_log"
	                    " WHERE version > $1 AND version <= $2",
	                 2, ctrl_u64(r, r->ctrl->published_version), ctrl_u64(r, to));
	if (res == NULL)
		return -1;
	rows = PQntuples(res);
	for (int i = 0; i < rows; i++) {
		int kind = atoi(PQgetvalue(res, i, 0));

		if (kind >= CTRL_KIND_DOMAIN && kind <= CTRL_KIND_SHARD)
			id_set_add(r, &ids[kind], PQgetvalue(res, i, 1));
	}
	PQclear(res);
	if ((nd = ctrl_load_domains(r, CTRL_BY_IDS, id_set_done(r, &ids[1]), &doms)) < 0 ||
	    (na = ctrl_load_accounts(r, CTRL_BY_IDS, id_set_done(r, &ids[2]), true,
	                             &accs)) < 0 ||
	    (nl = ctrl_load_aliases(r, CTRL_BY_IDS, id_set_done(r, &ids[3]), &als)) < 0 ||
	    (ns = ctrl_load_shards(r, id_set_done(r, &ids[4]), &shs)) < 0)
		return -1;
	d->changes = mc_pool_alloc(r->pool, sizeof(Mc__Change *) *
	                                            (ids[1].count + ids[2].count +
	                                             ids[3].count + ids[4].count + 1));
	d->from_version = r->ctrl->published_version;
	d->to_version = to;
	/* Deletes first: a recreated name must never meet its old self. Shard
	 * owners are never deleted, only replaced. */
	for (int kind = CTRL_KIND_DOMAIN; kind <= CTRL_KIND_ALIAS; kind++) {
		char *save = NULL;
		char *list = ids[kind].count ? mc_pool_strdup(r->pool, ids[kind].literal + 1)
		                             : NULL;

		for (char *t = list ? strtok_r(list, ",}", &save) : NULL; t != NULL;
		     t = strtok_r(NULL, ",}", &save)) {
			uint64_t id = strtoull(t, NULL, 10);
			bool found;
			Mc__Change *ch;

			if (kind == CTRL_KIND_DOMAIN)
				FOUND(doms, nd, id, found);
			else if (kind == CTRL_KIND_ACCOUNT)
				FOUND(accs, na, id, found);
			else
				FOUND(als, nl, id, found);
			if (found)
				continue;
			ch = change_new(r, MC__CHANGE__OP__DELETE);
			if (kind == CTRL_KIND_DOMAIN) {
				ch->object_case = MC__CHANGE__OBJECT_DOMAIN;
				ch->domain = mc_pool_alloc(r->pool, sizeof(Mc__Domain));
				mc__domain__init(ch->domain);
				ch->domain->id = id;
			} else if (kind == CTRL_KIND_ACCOUNT) {
				ch->object_case = MC__CHANGE__OBJECT_ACCOUNT;
				ch->account = mc_pool_alloc(r->pool, sizeof(Mc__Account));
				mc__account__init(ch->account);
				ch->account->id = id;
			} else {
				ch->object_case = MC__CHANGE__OBJECT_ALIAS;
				ch->alias = mc_pool_alloc(r->pool, sizeof(Mc__Alias));
				mc__alias__init(ch->alias);
				ch->alias->id = id;
			}
			d->changes[d->n_changes++] = ch;
		}
	}
	/* Upserts: domains before the accounts and aliases that live in them. */
	for (int i = 0; i < nd; i++) {
		Mc__Change *ch = change_new(r, MC__CHANGE__OP__UPSERT);

		ch->object_case = MC__CHANGE__OBJECT_DOMAIN;
		ch->domain = doms[i];
		d->changes[d->n_changes++] = ch;
	}
	for (int i = 0; i < na; i++) {
		Mc__Change *ch = change_new(r, MC__CHANGE__OP__UPSERT);

		ch->object_case = MC__CHANGE__OBJECT_ACCOUNT;
		ch->account = accs[i];
		d->changes[d->n_changes++] = ch;
	}
	for (int i = 0; i < nl; i++) {
		Mc__Change *ch = change_new(r, MC__CHANGE__OP__UPSERT);

		ch->object_case = MC__CHANGE__OBJECT_ALIAS;
		ch->alias = als[i];
		d->changes[d->n_changes++] = ch;
	}
	for (int i = 0; i < ns; i++) {
		Mc__Change *ch = change_new(r, MC__CHANGE__OP__UPSERT);

		ch->object_case = MC__CHANGE__OBJECT_SHARD;
		ch->shard = shs[i];
		d->changes[d->n_changes++] = ch;
	}
	return 0;
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
	 * error: work on a scratch response. */
	r.resp = &scratch;
	if (to <= c->published_version)
		return;
	if (build_delta(&r, to, &d) < 0) {
		mc_warn("delta not published to=%llu error=\"%s\": nodes will resync",
		        (unsigned long long)to, scratch.error ? scratch.error : "");
		return;
	}
	if (c->drop_deltas > 0) {
		c->drop_deltas--;
		mc_warn("fault injection: delta dropped from=%llu to=%llu",
		        (unsigned long long)d.from_version, (unsigned long long)to);
	} else {
		send_topic(c, MC_TOPIC_MAILBOX, &d);
		for (size_t i = 0; i < d.n_changes; i++)
			if (d.changes[i]->object_case ==
			    MC__CHANGE__OBJECT_ACCOUNT) {
				d.changes[i]->account->password_hash = "";
				d.changes[i]->account->scram_sha256 = "";
			}
		send_topic(c, MC_TOPIC_RELAY, &d);
		mc_info("delta published from=%llu to=%llu changes=%zu",
		        (unsigned long long)d.from_version, (unsigned long long)to,
		        d.n_changes);
	}
	c->published_version = to;
}
