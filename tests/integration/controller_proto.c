/* Protocol-level checks of a running controller that mailctl cannot see:
 * each mutation bumps the version by exactly one, deltas on both PUB
 * topics are consecutive and carry password hashes and SCRAM verifiers
 * only on 'M', deletes precede upserts, snapshots follow the node's kind,
 * lists never carry secrets, verifiers are validated and replaced with the
 * password, node registration is validated; routes (secrets only as
 * references) go to relays only and get new ids when recreated; DKIM
 * private keys reach relays only (deltas and snapshots), never admin
 * replies; `domain dns` gives the records of the keys and relays. Run by test_controller_proto.py against a fresh cluster with
 * the environment of its cluster.env (MAILCTL_URL, MAILCTL_TOKEN_FILE,
 * MC_NODE_TOKEN_FILE, MC_PUBLISH_URL). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "config.h"
#include "rpc.h"
#include "test.h"

static nng_socket req_sock;
static char *admin_token, *node_token;

static Mc__Response *
call(Mc__Request *req, const char *token)
{
	Mc__Response *resp = NULL;
	const char *err;

	req->token = (char *)token;
	if (mc_rpc_call(req_sock, req, 5000, &resp, &err) < 0) {
		fprintf(stderr, "rpc: %s\n", err);
		exit(1);
	}
	return resp;
}

static uint64_t
cluster_version(void)
{
	Mc__Request req = MC__REQUEST__INIT;
	Mc__StatusReq st = MC__STATUS_REQ__INIT;
	Mc__Response *resp;
	uint64_t v;

	req.body_case = MC__REQUEST__BODY_STATUS;
	req.status = &st;
	resp = call(&req, admin_token);
	v = resp->status_info->version;
	mc__response__free_unpacked(resp, NULL);
	return v;
}

static Mc__Status
domain_add(const char *name, uint64_t *version_r)
{
	Mc__Request req = MC__REQUEST__INIT;
	Mc__DomainAddReq q = MC__DOMAIN_ADD_REQ__INIT;
	Mc__Response *resp;
	Mc__Status st;

	q.name = (char *)name;
	req.body_case = MC__REQUEST__BODY_DOMAIN_ADD;
	req.domain_add = &q;
	resp = call(&req, admin_token);
	st = resp->status;
	if (version_r != NULL)
		*version_r = resp->version;
	mc__response__free_unpacked(resp, NULL);
	return st;
}

#define ARGON2_HASH "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
/* RFC 7677's user "user", password "pencil". */
#define SCRAM_VERIFIER                                                         \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"                         \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                        \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static Mc__Status
account_add_scram(const char *address, const char *scram, uint64_t *id_r)
{
	Mc__Request req = MC__REQUEST__INIT;
	Mc__AccountAddReq q = MC__ACCOUNT_ADD_REQ__INIT;
	Mc__Response *resp;
	Mc__Status st;

	q.address = (char *)address;
	q.password_hash = ARGON2_HASH;
	q.scram_sha256 = (char *)scram;
	req.body_case = MC__REQUEST__BODY_ACCOUNT_ADD;
	req.account_add = &q;
	resp = call(&req, admin_token);
	st = resp->status;
	if (id_r != NULL && st == MC__STATUS__STATUS_OK)
		*id_r = resp->account->id;
	mc__response__free_unpacked(resp, NULL);
	return st;
}

static Mc__Status
account_add(const char *address, uint64_t *id_r)
{
	return account_add_scram(address, SCRAM_VERIFIER, id_r);
}

static Mc__Status
simple_admin(Mc__Request__BodyCase body, void *msg)
{
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	Mc__Status st;

	req.body_case = body;
	req.domain_rm = msg; /* oneof: every member shares the pointer slot */
	resp = call(&req, admin_token);
	st = resp->status;
	mc__response__free_unpacked(resp, NULL);
	return st;
}

/* Receive the next delta on sub; checks the topic byte. NULL on timeout. */
static Mc__Delta *
next_delta(nng_socket sub, char topic)
{
	nng_msg *msg;
	Mc__Delta *d;

	if (nng_recvmsg(sub, &msg, 0) != 0)
		return NULL;
	CHECK(nng_msg_len(msg) >= 1 && ((char *)nng_msg_body(msg))[0] == topic);
	d = mc__delta__unpack(NULL, nng_msg_len(msg) - 1,
	                      (uint8_t *)nng_msg_body(msg) + 1);
	nng_msg_free(msg);
	CHECK(d != NULL);
	return d;
}

static nng_socket
subscribe(const char *url, char topic)
{
	nng_socket s;
	const char *err;

	if (nng_sub0_open(&s) != 0 || mc_rpc_dial(s, url, NULL, false, &err) < 0) {
		fprintf(stderr, "sub: cannot dial %s\n", url);
		exit(1);
	}
	nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, &topic, 1);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 3000);
	return s;
}

static void
test_versions_and_topics(const char *pub_url)
{
	nng_socket sm = subscribe(pub_url, MC_TOPIC_MAILBOX);
	nng_socket sr = subscribe(pub_url, MC_TOPIC_RELAY);
	uint64_t v0, v1, v2, id = 0;
	Mc__Delta *dm, *dr;

	usleep(300 * 1000); /* let the subscriptions reach the publisher */
	v0 = cluster_version();
	CHECK(domain_add("proto.test", &v1) == MC__STATUS__STATUS_OK);
	CHECK(v1 == v0 + 1);
	CHECK(account_add("Alice@Proto.Test", &id) == MC__STATUS__STATUS_OK);
	v2 = cluster_version();
	CHECK(v2 == v1 + 1);
	/* A refused mutation does not move the version. */
	CHECK(domain_add("proto.test", NULL) == MC__STATUS__STATUS_EXISTS);
	CHECK(account_add("alice@proto.test", NULL) == MC__STATUS__STATUS_EXISTS);
	CHECK(account_add("bob@nowhere.test", NULL) == MC__STATUS__STATUS_NOT_FOUND);
	/* Verifiers are checked: prefix, count, base64, key sizes. */
	CHECK(account_add_scram("carl@proto.test", "SCRAM-SHA-256$1:AAAA$x:y",
	                        NULL) == MC__STATUS__STATUS_INVALID);
	CHECK(account_add_scram("carl@proto.test", "$argon2id$v=19$x",
	                        NULL) == MC__STATUS__STATUS_INVALID);
	CHECK(account_add_scram("carl@proto.test",
	                        "SCRAM-SHA-256$99999999:W22ZaJ0SNY7soEsUEjb6gQ==$"
	                        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	                        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	                        NULL) == MC__STATUS__STATUS_INVALID);
	CHECK(domain_add("bad..name", NULL) == MC__STATUS__STATUS_INVALID);
	CHECK(cluster_version() == v2);

	dm = next_delta(sm, MC_TOPIC_MAILBOX);
	dr = next_delta(sr, MC_TOPIC_RELAY);
	CHECK(dm && dm->from_version == v0 && dm->to_version == v1);
	CHECK(dr && dr->from_version == v0 && dr->to_version == v1);
	CHECK(dm && dm->n_changes == 1 &&
	      dm->changes[0]->object_case == MC__CHANGE__OBJECT_DOMAIN &&
	      strcmp(dm->changes[0]->domain->name, "proto.test") == 0);
	mc__delta__free_unpacked(dm, NULL);
	mc__delta__free_unpacked(dr, NULL);

	dm = next_delta(sm, MC_TOPIC_MAILBOX);
	dr = next_delta(sr, MC_TOPIC_RELAY);
	CHECK(dm && dm->from_version == v1 && dm->to_version == v2 && dm->n_changes == 1);
	CHECK(dr && dr->from_version == v1 && dr->to_version == v2 && dr->n_changes == 1);
	if (dm && dr && dm->n_changes == 1 && dr->n_changes == 1) {
		Mc__Account *am = dm->changes[0]->account, *ar = dr->changes[0]->account;

		CHECK(am && ar && am->id == id && ar->id == id);
		/* Case kept for display, domain normalised. */
		CHECK(am && strcmp(am->local_part, "Alice") == 0 &&
		      strcmp(am->domain, "proto.test") == 0);
		CHECK(am && strncmp(am->password_hash, "$argon2id$", 10) == 0);
		CHECK(ar && ar->password_hash[0] == '\0');
		CHECK(am && strcmp(am->scram_sha256, SCRAM_VERIFIER) == 0);
		CHECK(ar && ar->scram_sha256[0] == '\0');
		CHECK(am && am->shard < 64);
	}
	mc__delta__free_unpacked(dm, NULL);
	mc__delta__free_unpacked(dr, NULL);

	/* rm --force: deletes of the account, an alias and the domain in
	 * one delta, before any upsert. */
	{
		Mc__AliasAddReq al = MC__ALIAS_ADD_REQ__INIT;
		Mc__DomainRmReq rm = MC__DOMAIN_RM_REQ__INIT;
		char *dest = "alice@proto.test";
		uint64_t before;

		al.address = "*@proto.test";
		al.n_destinations = 1;
		al.destinations = &dest;
		CHECK(simple_admin(MC__REQUEST__BODY_ALIAS_ADD, &al) == MC__STATUS__STATUS_OK);
		mc__delta__free_unpacked(next_delta(sm, MC_TOPIC_MAILBOX), NULL);
		before = cluster_version();
		rm.name = "proto.test";
		CHECK(simple_admin(MC__REQUEST__BODY_DOMAIN_RM, &rm) ==
		      MC__STATUS__STATUS_CONFLICT);
		CHECK(cluster_version() == before);
		rm.force = true;
		CHECK(simple_admin(MC__REQUEST__BODY_DOMAIN_RM, &rm) == MC__STATUS__STATUS_OK);
		CHECK(cluster_version() == before + 1);
		dm = next_delta(sm, MC_TOPIC_MAILBOX);
		CHECK(dm && dm->n_changes == 3 && dm->to_version == before + 1);
		for (size_t i = 0; dm && i < dm->n_changes; i++)
			CHECK(dm->changes[i]->op == MC__CHANGE__OP__DELETE);
		mc__delta__free_unpacked(dm, NULL);
	}
	/* Recreate under the same name: new ids. */
	{
		uint64_t id2 = 0;

		CHECK(domain_add("proto.test", NULL) == MC__STATUS__STATUS_OK);
		CHECK(account_add("alice@proto.test", &id2) == MC__STATUS__STATUS_OK);
		CHECK(id2 != 0 && id2 != id);
	}
	mc__delta__free_unpacked(next_delta(sr, MC_TOPIC_RELAY), NULL);
	nng_close(sm);
	nng_close(sr);
}

static Mc__Response *
node_call(Mc__Request__BodyCase body, void *msg)
{
	Mc__Request req = MC__REQUEST__INIT;

	req.body_case = body;
	req.register_ = msg;
	return call(&req, node_token);
}

static void
test_nodes(void)
{
	Mc__RegisterReq reg = MC__REGISTER_REQ__INIT;
	Mc__SnapshotReq snap = MC__SNAPSHOT_REQ__INIT;
	Mc__HeartbeatReq hb = MC__HEARTBEAT_REQ__INIT;
	Mc__Response *resp;
	uint64_t mailbox_id = 0, relay_id = 0;

	reg.name = "proto-mailbox";
	reg.kind = MC__NODE_KIND__NODE_KIND_MAILBOX;
	reg.instance = "instance-a";
	resp = node_call(MC__REQUEST__BODY_REGISTER, &reg);
	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->register_->node_id > 0 &&
	      resp->register_->heartbeat_ms > 0);
	if (resp->status == MC__STATUS__STATUS_OK)
		mailbox_id = resp->register_->node_id;
	mc__response__free_unpacked(resp, NULL);

	/* Same name, other kind: refused. */
	reg.kind = MC__NODE_KIND__NODE_KIND_RELAY;
	resp = node_call(MC__REQUEST__BODY_REGISTER, &reg);
	CHECK(resp->status == MC__STATUS__STATUS_CONFLICT);
	mc__response__free_unpacked(resp, NULL);
	reg.name = "Bad Name";
	resp = node_call(MC__REQUEST__BODY_REGISTER, &reg);
	CHECK(resp->status == MC__STATUS__STATUS_INVALID);
	mc__response__free_unpacked(resp, NULL);
	reg.name = "proto-relay";
	resp = node_call(MC__REQUEST__BODY_REGISTER, &reg);
	CHECK(resp->status == MC__STATUS__STATUS_OK);
	if (resp->status == MC__STATUS__STATUS_OK)
		relay_id = resp->register_->node_id;
	mc__response__free_unpacked(resp, NULL);

	/* Snapshots: hashes for the mailbox node only. */
	snap.node_id = mailbox_id;
	resp = node_call(MC__REQUEST__BODY_SNAPSHOT, &snap);
	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->snapshot->n_accounts >= 1 &&
	      resp->snapshot->version == cluster_version() &&
	      resp->snapshot->shard_count == 64);
	if (resp->status == MC__STATUS__STATUS_OK && resp->snapshot->n_accounts >= 1) {
		CHECK(resp->snapshot->accounts[0]->password_hash[0] == '$');
		CHECK(strcmp(resp->snapshot->accounts[0]->scram_sha256,
		             SCRAM_VERIFIER) == 0);
	}
	mc__response__free_unpacked(resp, NULL);
	snap.node_id = relay_id;
	resp = node_call(MC__REQUEST__BODY_SNAPSHOT, &snap);
	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->snapshot->n_accounts >= 1);
	for (size_t i = 0; resp->status == MC__STATUS__STATUS_OK &&
	                   i < resp->snapshot->n_accounts; i++) {
		CHECK(resp->snapshot->accounts[i]->password_hash[0] == '\0');
		CHECK(resp->snapshot->accounts[i]->scram_sha256[0] == '\0');
	}
	mc__response__free_unpacked(resp, NULL);
	/* Asked again at the same version (from the controller's cache since
	 * the first): the same content, hashes and all, after a relay's
	 * snapshot that has none. */
	snap.node_id = mailbox_id;
	resp = node_call(MC__REQUEST__BODY_SNAPSHOT, &snap);
	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->snapshot->n_accounts >= 1 &&
	      resp->snapshot->version == cluster_version());
	if (resp->status == MC__STATUS__STATUS_OK && resp->snapshot->n_accounts >= 1)
		CHECK(strcmp(resp->snapshot->accounts[0]->scram_sha256,
		             SCRAM_VERIFIER) == 0 &&
		      resp->snapshot->accounts[0]->password_hash[0] == '$');
	mc__response__free_unpacked(resp, NULL);
	snap.node_id = 999999;
	resp = node_call(MC__REQUEST__BODY_SNAPSHOT, &snap);
	CHECK(resp->status == MC__STATUS__STATUS_NOT_FOUND);
	mc__response__free_unpacked(resp, NULL);

	/* Heartbeats: a known node gets the cluster version. */
	hb.node_id = mailbox_id;
	hb.applied_version = 1;
	hb.instance = "instance-a";
	resp = node_call(MC__REQUEST__BODY_HEARTBEAT, &hb);
	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->heartbeat->known &&
	      resp->heartbeat->version == cluster_version());
	mc__response__free_unpacked(resp, NULL);
	hb.node_id = 999999;
	resp = node_call(MC__REQUEST__BODY_HEARTBEAT, &hb);
	CHECK(resp->status == MC__STATUS__STATUS_OK && !resp->heartbeat->known);
	mc__response__free_unpacked(resp, NULL);

	/* Node credentials do not open the admin API, nor the reverse. */
	{
		Mc__Request req = MC__REQUEST__INIT;
		Mc__StatusReq st = MC__STATUS_REQ__INIT;

		req.body_case = MC__REQUEST__BODY_STATUS;
		req.status = &st;
		resp = call(&req, node_token);
		CHECK(resp->status == MC__STATUS__STATUS_UNAUTHORIZED);
		mc__response__free_unpacked(resp, NULL);
		reg.name = "proto-mailbox";
		reg.kind = MC__NODE_KIND__NODE_KIND_MAILBOX;
		reg.instance = "instance-a";
		req.body_case = MC__REQUEST__BODY_REGISTER;
		req.register_ = &reg;
		resp = call(&req, admin_token);
		CHECK(resp->status == MC__STATUS__STATUS_UNAUTHORIZED);
		mc__response__free_unpacked(resp, NULL);
	}
}

static Mc__Response *
heartbeat(uint64_t node_id, const char *instance)
{
	Mc__HeartbeatReq hb = MC__HEARTBEAT_REQ__INIT;

	hb.node_id = node_id;
	hb.instance = (char *)instance;
	return node_call(MC__REQUEST__BODY_HEARTBEAT, &hb);
}

static uint64_t
register_node(const char *name, Mc__NodeKind kind, const char *instance,
              const char *lmtp, Mc__Status *status_r)
{
	Mc__RegisterReq reg = MC__REGISTER_REQ__INIT;
	Mc__Response *resp;
	uint64_t id = 0;

	reg.name = (char *)name;
	reg.kind = kind;
	reg.instance = (char *)instance;
	reg.lmtp_address = (char *)lmtp;
	resp = node_call(MC__REQUEST__BODY_REGISTER, &reg);
	*status_r = resp->status;
	if (resp->status == MC__STATUS__STATUS_OK)
		id = resp->register_->node_id;
	mc__response__free_unpacked(resp, NULL);
	return id;
}

/* Shards granted to node by one heartbeat: marks owner[shard] = mark and
 * returns the count; checks no shard is granted twice across nodes. */
static size_t
take_grants(uint64_t node_id, const char *instance, int *owner, int mark,
            uint64_t *epochs)
{
	Mc__Response *resp = heartbeat(node_id, instance);
	size_t n = 0;

	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->heartbeat->known &&
	      resp->heartbeat->lease_ttl_ms > 0);
	for (size_t i = 0; resp->status == MC__STATUS__STATUS_OK &&
	                   i < resp->heartbeat->n_leases; i++) {
		Mc__LeaseGrant *g = resp->heartbeat->leases[i];

		CHECK(g->shard < 64 && g->epoch >= 1);
		if (g->shard >= 64)
			continue;
		CHECK(owner[g->shard] == 0 || owner[g->shard] == mark);
		owner[g->shard] = mark;
		epochs[g->shard] = g->epoch;
		n++;
	}
	mc__response__free_unpacked(resp, NULL);
	return n;
}

/* One writer per shard. proto-mailbox (from test_nodes) holds every
 * shard; lease-a joins and gets nothing while those leases live; the old
 * holder's next heartbeat gives up what placement moved; lease-a then
 * takes it with the epoch bumped. A second process under lease-a's name is
 * refused, relays get no leases, and the owners (with LMTP addresses)
 * reach relays through the snapshot. */
static void
test_leases(void)
{
	int owner[64] = {0};
	uint64_t epochs[64] = {0}, p, a, relay;
	Mc__Status st;
	size_t np, na;
	Mc__Response *resp;
	Mc__SnapshotReq snap = MC__SNAPSHOT_REQ__INIT;

	p = register_node("proto-mailbox", MC__NODE_KIND__NODE_KIND_MAILBOX,
	                  "instance-a", "127.0.0.1:2400", &st);
	CHECK(st == MC__STATUS__STATUS_OK);
	CHECK(take_grants(p, "instance-a", owner, 1, epochs) == 64);
	a = register_node("lease-a", MC__NODE_KIND__NODE_KIND_MAILBOX, "ia-1",
	                  "127.0.0.1:2401", &st);
	CHECK(st == MC__STATUS__STATUS_OK && a != 0);
	memset(owner, 0, sizeof(owner));
	CHECK(take_grants(a, "ia-1", owner, 2, epochs) == 0);
	np = take_grants(p, "instance-a", owner, 1, epochs);
	CHECK(np > 0 && np < 64);
	na = take_grants(a, "ia-1", owner, 2, epochs);
	CHECK(np + na == 64);
	for (int s = 0; s < 64; s++) {
		CHECK(owner[s] == 1 || owner[s] == 2);
		if (owner[s] == 2)
			CHECK(epochs[s] == 2); /* taken over: epoch bumped */
	}
	/* Renewal keeps the same grants and epochs. */
	{
		int again[64] = {0};
		uint64_t e2[64] = {0};

		CHECK(take_grants(a, "ia-1", again, 2, e2) == na);
		for (int s = 0; s < 64; s++)
			CHECK(again[s] == 0 || e2[s] == epochs[s]);
	}
	/* A second process under lease-a's name is refused while the first
	 * holds live leases, and a heartbeat with the wrong instance is not
	 * lease-a's. */
	CHECK(register_node("lease-a", MC__NODE_KIND__NODE_KIND_MAILBOX, "ia-2",
	                    "127.0.0.1:2401", &st) == 0);
	CHECK(st == MC__STATUS__STATUS_CONFLICT);
	resp = heartbeat(a, "ia-2");
	CHECK(resp->status == MC__STATUS__STATUS_OK && !resp->heartbeat->known &&
	      resp->heartbeat->n_leases == 0);
	mc__response__free_unpacked(resp, NULL);

	relay = register_node("lease-relay", MC__NODE_KIND__NODE_KIND_RELAY, "ir-1",
	                      "", &st);
	resp = heartbeat(relay, "ir-1");
	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->heartbeat->known &&
	      resp->heartbeat->n_leases == 0);
	mc__response__free_unpacked(resp, NULL);
	snap.node_id = relay;
	resp = node_call(MC__REQUEST__BODY_SNAPSHOT, &snap);
	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->snapshot->n_shards == 64);
	for (size_t i = 0; resp->status == MC__STATUS__STATUS_OK &&
	                   i < resp->snapshot->n_shards; i++) {
		Mc__ShardOwner *o = resp->snapshot->shards[i];

		if (o->shard >= 64)
			continue;
		CHECK(o->node_id == (owner[o->shard] == 2 ? a : p));
		CHECK(o->epoch == epochs[o->shard]);
		CHECK(strcmp(o->lmtp_address, owner[o->shard] == 2 ? "127.0.0.1:2401"
		                                                   : "127.0.0.1:2400") == 0);
	}
	mc__response__free_unpacked(resp, NULL);
}

/* The verifier of mailbox node id's snapshot for the first account. */
static char *
snapshot_scram(uint64_t id)
{
	Mc__SnapshotReq snap = MC__SNAPSHOT_REQ__INIT;
	Mc__Response *resp;
	char *v = NULL;

	snap.node_id = id;
	resp = node_call(MC__REQUEST__BODY_SNAPSHOT, &snap);
	CHECK(resp->status == MC__STATUS__STATUS_OK &&
	      resp->snapshot->n_accounts >= 1);
	if (resp->status == MC__STATUS__STATUS_OK &&
	    resp->snapshot->n_accounts >= 1)
		v = strdup(resp->snapshot->accounts[0]->scram_sha256);
	mc__response__free_unpacked(resp, NULL);
	return v;
}

static Mc__Status
passwd(const char *address, const char *scram)
{
	Mc__AccountPasswdReq q = MC__ACCOUNT_PASSWD_REQ__INIT;

	q.address = (char *)address;
	q.password_hash = ARGON2_HASH;
	q.scram_sha256 = (char *)scram;
	return simple_admin(MC__REQUEST__BODY_ACCOUNT_PASSWD, &q);
}

/* Lists and show never carry secrets; passwd validates the verifier and
 * replaces it, an empty one included (the old password's verifier must
 * not survive). */
static void
test_scram(void)
{
	Mc__Request req = MC__REQUEST__INIT;
	Mc__AccountListReq lq = MC__ACCOUNT_LIST_REQ__INIT;
	Mc__AccountShowReq sq = MC__ACCOUNT_SHOW_REQ__INIT;
	Mc__Response *resp;
	Mc__Status st;
	uint64_t mailbox, before;
	char *v;

	req.body_case = MC__REQUEST__BODY_ACCOUNT_LIST;
	req.account_list = &lq;
	resp = call(&req, admin_token);
	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->accounts->n_accounts >= 1);
	for (size_t i = 0; resp->status == MC__STATUS__STATUS_OK &&
	                   i < resp->accounts->n_accounts; i++) {
		CHECK(resp->accounts->accounts[i]->password_hash[0] == '\0');
		CHECK(resp->accounts->accounts[i]->scram_sha256[0] == '\0');
	}
	mc__response__free_unpacked(resp, NULL);
	sq.address = "alice@proto.test";
	req.body_case = MC__REQUEST__BODY_ACCOUNT_SHOW;
	req.account_show = &sq;
	resp = call(&req, admin_token);
	CHECK(resp->status == MC__STATUS__STATUS_OK);
	if (resp->status == MC__STATUS__STATUS_OK) {
		CHECK(resp->account_info->account->password_hash[0] == '\0');
		CHECK(resp->account_info->account->scram_sha256[0] == '\0');
	}
	mc__response__free_unpacked(resp, NULL);

	mailbox = register_node("proto-mailbox", MC__NODE_KIND__NODE_KIND_MAILBOX,
	                        "instance-a", "127.0.0.1:2400", &st);
	CHECK(st == MC__STATUS__STATUS_OK);
	before = cluster_version();
	CHECK(passwd("alice@proto.test", "SCRAM-SHA-256$4096:bad") ==
	      MC__STATUS__STATUS_INVALID);
	CHECK(cluster_version() == before);
	v = snapshot_scram(mailbox);
	CHECK(v != NULL && strcmp(v, SCRAM_VERIFIER) == 0);
	free(v);
	CHECK(passwd("alice@proto.test", "") == MC__STATUS__STATUS_OK);
	CHECK(cluster_version() == before + 1);
	v = snapshot_scram(mailbox);
	CHECK(v != NULL && v[0] == '\0');
	free(v);
	CHECK(passwd("alice@proto.test", SCRAM_VERIFIER) == MC__STATUS__STATUS_OK);
	v = snapshot_scram(mailbox);
	CHECK(v != NULL && strcmp(v, SCRAM_VERIFIER) == 0);
	free(v);
}

/* ---- routes and DKIM keys ---- */

static Mc__Response *
admin_call(Mc__Request__BodyCase body, void *msg)
{
	Mc__Request req = MC__REQUEST__INIT;

	req.body_case = body;
	req.domain_rm = msg; /* oneof: every member shares the pointer slot */
	return call(&req, admin_token);
}

static Mc__Status
route_add(const char *name, Mc__RouteKind kind, const char *host, uint32_t port,
          Mc__RouteTls tls, const char *user, const char *env, const char *file,
          uint64_t *id_r)
{
	Mc__RouteAddReq q = MC__ROUTE_ADD_REQ__INIT;
	Mc__Response *resp;
	Mc__Status st;

	q.name = (char *)name;
	q.kind = kind;
	q.host = (char *)host;
	q.port = port;
	q.tls = tls;
	q.auth_user = (char *)user;
	q.secret_env = (char *)env;
	q.secret_file = (char *)file;
	resp = admin_call(MC__REQUEST__BODY_ROUTE_ADD, &q);
	st = resp->status;
	if (st == MC__STATUS__STATUS_OK && id_r != NULL)
		*id_r = resp->route->id;
	mc__response__free_unpacked(resp, NULL);
	return st;
}

#define SMART MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST
#define STARTTLS MC__ROUTE_TLS__ROUTE_TLS_STARTTLS

/* The one change of the next delta on both topics: none for mailbox
 * nodes (routes are for relays), the route for relays. */
static void
expect_route_delta(nng_socket sm, nng_socket sr, uint64_t version, uint64_t id,
                   Mc__Change__Op op)
{
	Mc__Delta *dm = next_delta(sm, MC_TOPIC_MAILBOX);
	Mc__Delta *dr = next_delta(sr, MC_TOPIC_RELAY);

	CHECK(dm != NULL && dm->to_version == version && dm->n_changes == 0);
	CHECK(dr != NULL && dr->to_version == version && dr->n_changes >= 1);
	if (dr != NULL && dr->n_changes >= 1) {
		Mc__Change *c = dr->changes[dr->n_changes - 1];

		CHECK(c->object_case == MC__CHANGE__OBJECT_ROUTE && c->op == op &&
		      c->route->id == id);
	}
	mc__delta__free_unpacked(dm, NULL);
	mc__delta__free_unpacked(dr, NULL);
}

static void
test_routes(const char *pub_url)
{
	nng_socket sm = subscribe(pub_url, MC_TOPIC_MAILBOX);
	nng_socket sr = subscribe(pub_url, MC_TOPIC_RELAY);
	Mc__RouteDefaultReq def = MC__ROUTE_DEFAULT_REQ__INIT;
	Mc__RouteRuleAddReq rule = MC__ROUTE_RULE_ADD_REQ__INIT;
	Mc__RouteRmReq rm = MC__ROUTE_RM_REQ__INIT;
	Mc__RouteRuleRmReq rule_rm = MC__ROUTE_RULE_RM_REQ__INIT;
	uint64_t v0, id = 0, id2 = 0;
	Mc__Delta *dr;

	usleep(300 * 1000);
	v0 = cluster_version();
	/* Refused: nothing changes. Secrets are references only. */
	CHECK(route_add("Bad Name", SMART, "h.test", 25, STARTTLS, "", "", "", NULL) ==
	      MC__STATUS__STATUS_INVALID);
	CHECK(route_add("ses", SMART, "h.test", 0, STARTTLS, "", "", "", NULL) ==
	      MC__STATUS__STATUS_INVALID);
	CHECK(route_add("ses", SMART, "h_t.test", 25, STARTTLS, "", "", "", NULL) ==
	      MC__STATUS__STATUS_INVALID);
	CHECK(route_add("ses", SMART, "h.test", 25, MC__ROUTE_TLS__ROUTE_TLS_NONE, "u",
	                "PASS", "", NULL) == MC__STATUS__STATUS_INVALID);
	CHECK(route_add("ses", SMART, "h.test", 25, STARTTLS, "u", "", "", NULL) ==
	      MC__STATUS__STATUS_INVALID);
	CHECK(route_add("ses", SMART, "h.test", 25, STARTTLS, "u", "PASS", "/etc/p",
	                NULL) == MC__STATUS__STATUS_INVALID);
	CHECK(route_add("ses", SMART, "h.test", 25, STARTTLS, "u", "hunter2!", "", NULL) ==
	      MC__STATUS__STATUS_INVALID);
	CHECK(route_add("ses", SMART, "h.test", 25, STARTTLS, "u", "", "etc/p", NULL) ==
	      MC__STATUS__STATUS_INVALID);
	CHECK(route_add("ses", SMART, "h.test", 25, STARTTLS, "", "PASS", "", NULL) ==
	      MC__STATUS__STATUS_INVALID);
	CHECK(route_add("mx", MC__ROUTE_KIND__ROUTE_KIND_MX, "h.test", 25,
	                MC__ROUTE_TLS__ROUTE_TLS_NONE, "", "", "", NULL) ==
	      MC__STATUS__STATUS_INVALID);
	CHECK(cluster_version() == v0);

	CHECK(route_add("ses", SMART, "Email-SMTP.eu-west-1.amazonaws.com", 465,
	                MC__ROUTE_TLS__ROUTE_TLS_IMPLICIT, "AKIAEXAMPLE", "SES_PASSWORD",
	                "", &id) == MC__STATUS__STATUS_OK);
	CHECK(cluster_version() == v0 + 1);
	CHECK(route_add("ses", SMART, "h.test", 25, STARTTLS, "", "", "", NULL) ==
	      MC__STATUS__STATUS_EXISTS);
	CHECK(cluster_version() == v0 + 1);
	dr = next_delta(sr, MC_TOPIC_RELAY);
	CHECK(dr != NULL && dr->n_changes == 1 &&
	      dr->changes[0]->object_case == MC__CHANGE__OBJECT_ROUTE);
	if (dr != NULL && dr->n_changes == 1 && dr->changes[0]->route != NULL) {
		Mc__Route *r = dr->changes[0]->route;

		CHECK(r->id == id && strcmp(r->name, "ses") == 0 &&
		      strcmp(r->host, "email-smtp.eu-west-1.amazonaws.com") == 0 &&
		      r->port == 465 && r->tls == MC__ROUTE_TLS__ROUTE_TLS_IMPLICIT &&
		      strcmp(r->auth_user, "AKIAEXAMPLE") == 0 &&
		      strcmp(r->secret_env, "SES_PASSWORD") == 0 && r->secret_file[0] == '\0' &&
		      !r->is_default);
	}
	mc__delta__free_unpacked(dr, NULL);
	dr = next_delta(sm, MC_TOPIC_MAILBOX);
	CHECK(dr != NULL && dr->to_version == v0 + 1 && dr->n_changes == 0);
	mc__delta__free_unpacked(dr, NULL);

	def.name = "ses";
	CHECK(simple_admin(MC__REQUEST__BODY_ROUTE_DEFAULT, &def) == MC__STATUS__STATUS_OK);
	expect_route_delta(sm, sr, v0 + 2, id, MC__CHANGE__OP__UPSERT);
	rule.domain = "GMail.com";
	rule.route = "ses";
	CHECK(simple_admin(MC__REQUEST__BODY_ROUTE_RULE_ADD, &rule) == MC__STATUS__STATUS_OK);
	mc__delta__free_unpacked(next_delta(sm, MC_TOPIC_MAILBOX), NULL);
	mc__delta__free_unpacked(next_delta(sr, MC_TOPIC_RELAY), NULL);
	rule.route = "nope";
	CHECK(simple_admin(MC__REQUEST__BODY_ROUTE_RULE_ADD, &rule) ==
	      MC__STATUS__STATUS_NOT_FOUND);
	/* The default with a rule: refused without --force. */
	rm.name = "ses";
	CHECK(simple_admin(MC__REQUEST__BODY_ROUTE_RM, &rm) == MC__STATUS__STATUS_CONFLICT);
	CHECK(cluster_version() == v0 + 3);
	rm.force = true;
	CHECK(simple_admin(MC__REQUEST__BODY_ROUTE_RM, &rm) == MC__STATUS__STATUS_OK);
	CHECK(cluster_version() == v0 + 4);
	dr = next_delta(sr, MC_TOPIC_RELAY);
	CHECK(dr != NULL && dr->n_changes == 2);
	for (size_t i = 0; dr != NULL && i < dr->n_changes; i++)
		CHECK(dr->changes[i]->op == MC__CHANGE__OP__DELETE);
	mc__delta__free_unpacked(dr, NULL);
	mc__delta__free_unpacked(next_delta(sm, MC_TOPIC_MAILBOX), NULL);
	/* Recreated under its name: a new id. */
	CHECK(route_add("ses", SMART, "smtp.example.net", 587, STARTTLS, "u", "",
	                "/run/secrets/ses", &id2) == MC__STATUS__STATUS_OK);
	CHECK(id2 != 0 && id2 != id);
	expect_route_delta(sm, sr, v0 + 5, id2, MC__CHANGE__OP__UPSERT);
	rule_rm.domain = "gmail.com";
	CHECK(simple_admin(MC__REQUEST__BODY_ROUTE_RULE_RM, &rule_rm) ==
	      MC__STATUS__STATUS_NOT_FOUND);
	CHECK(cluster_version() == v0 + 5);
	nng_close(sm);
	nng_close(sr);
}

static Mc__Response *
dkim_call(Mc__Request__BodyCase body, void *msg)
{
	return admin_call(body, msg);
}

static bool
is_pem(const char *s)
{
	return strncmp(s, "-----BEGIN PRIVATE KEY-----", 27) == 0;
}

/* Relays get the private keys of active keys; mailbox nodes none. */
static void
check_key_snapshots(uint64_t relay, uint64_t mailbox, size_t want_keys)
{
	Mc__SnapshotReq snap = MC__SNAPSHOT_REQ__INIT;
	Mc__Response *resp;
	size_t active = 0;

	snap.node_id = relay;
	resp = node_call(MC__REQUEST__BODY_SNAPSHOT, &snap);
	CHECK(resp->status == MC__STATUS__STATUS_OK &&
	      resp->snapshot->n_dkim_keys == want_keys && resp->snapshot->n_routes >= 1);
	for (size_t i = 0; resp->status == MC__STATUS__STATUS_OK &&
	                   i < resp->snapshot->n_dkim_keys; i++) {
		Mc__DkimKey *k = resp->snapshot->dkim_keys[i];

		CHECK(k->active ? is_pem(k->private_pem) : k->private_pem[0] == '\0');
		active += k->active;
	}
	CHECK(active == 2);
	mc__response__free_unpacked(resp, NULL);
	snap.node_id = mailbox;
	resp = node_call(MC__REQUEST__BODY_SNAPSHOT, &snap);
	CHECK(resp->status == MC__STATUS__STATUS_OK &&
	      resp->snapshot->n_dkim_keys == want_keys && resp->snapshot->n_routes == 0 &&
	      resp->snapshot->n_route_rules == 0);
	for (size_t i = 0; resp->status == MC__STATUS__STATUS_OK &&
	                   i < resp->snapshot->n_dkim_keys; i++)
		CHECK(resp->snapshot->dkim_keys[i]->private_pem[0] == '\0' &&
		      resp->snapshot->dkim_keys[i]->public_b64[0] != '\0');
	mc__response__free_unpacked(resp, NULL);
}

/* The DKIM keys of the next delta on both topics: private keys of
 * active keys to relays only. Returns the number of key changes. */
static size_t
expect_key_delta(nng_socket sm, nng_socket sr)
{
	Mc__Delta *dm = next_delta(sm, MC_TOPIC_MAILBOX);
	Mc__Delta *dr = next_delta(sr, MC_TOPIC_RELAY);
	size_t n = 0;

	CHECK(dm != NULL && dr != NULL && dm->n_changes == dr->n_changes);
	for (size_t i = 0; dm != NULL && dr != NULL && i < dm->n_changes &&
	                   i < dr->n_changes; i++) {
		Mc__DkimKey *km = dm->changes[i]->dkim_key, *kr = dr->changes[i]->dkim_key;

		if (dm->changes[i]->object_case != MC__CHANGE__OBJECT_DKIM_KEY)
			continue;
		n++;
		CHECK(km->private_pem[0] == '\0');
		if (dr->changes[i]->op == MC__CHANGE__OP__UPSERT)
			CHECK(kr->active ? is_pem(kr->private_pem) : kr->private_pem[0] == '\0');
		CHECK(kr->id == km->id && strcmp(kr->public_b64, km->public_b64) == 0);
	}
	mc__delta__free_unpacked(dm, NULL);
	mc__delta__free_unpacked(dr, NULL);
	return n;
}

static uint64_t
register_relay(const char *public_name, const char *a1, const char *a2,
               Mc__Status *st_r)
{
	Mc__RegisterReq reg = MC__REGISTER_REQ__INIT;
	char *addrs[2] = {(char *)a1, (char *)a2};
	Mc__Response *resp;
	uint64_t id = 0;

	reg.name = "proto-relay";
	reg.kind = MC__NODE_KIND__NODE_KIND_RELAY;
	reg.instance = "instance-r";
	reg.public_name = (char *)public_name;
	reg.public_addresses = addrs;
	reg.n_public_addresses = a2 != NULL ? 2 : 1;
	resp = node_call(MC__REQUEST__BODY_REGISTER, &reg);
	*st_r = resp->status;
	if (resp->status == MC__STATUS__STATUS_OK)
		id = resp->register_->node_id;
	mc__response__free_unpacked(resp, NULL);
	return id;
}

/* domain dns: the relay's MX and addresses, a TXT per DKIM key with its
 * public key, SPF and DMARC. */
static void
check_dns(const Mc__DkimKeyList *keys)
{
	Mc__DomainDnsReq q = MC__DOMAIN_DNS_REQ__INIT;
	Mc__Response *resp;
	bool mx = false, a = false, aaaa = false, spf = false, dmarc = false;
	size_t dkim = 0;

	q.name = "Proto.Test";
	resp = admin_call(MC__REQUEST__BODY_DOMAIN_DNS, &q);
	CHECK(resp->status == MC__STATUS__STATUS_OK &&
	      resp->body_case == MC__RESPONSE__BODY_DOMAIN_DNS);
	for (size_t i = 0; resp->status == MC__STATUS__STATUS_OK &&
	                   i < resp->domain_dns->n_records; i++) {
		Mc__DnsRecord *r = resp->domain_dns->records[i];

		if (strcmp(r->type, "MX") == 0)
			mx = mx || (strcmp(r->name, "proto.test") == 0 &&
			            strcmp(r->value, "mx1.proto.test") == 0 && r->priority == 10);
		a = a || (strcmp(r->type, "A") == 0 && strcmp(r->value, "192.0.2.25") == 0 &&
		          strcmp(r->name, "mx1.proto.test") == 0);
		aaaa = aaaa || (strcmp(r->type, "AAAA") == 0 &&
		                strcmp(r->value, "2001:db8::25") == 0);
		spf = spf || (strcmp(r->name, "proto.test") == 0 &&
		              strcmp(r->value, "v=spf1 mx -all") == 0);
		dmarc = dmarc ||
		        (strcmp(r->name, "_dmarc.proto.test") == 0 &&
		         strcmp(r->value, "v=DMARC1; p=quarantine; "
		                          "rua=mailto:postmaster@proto.test") == 0);
		for (size_t k = 0; k < keys->n_keys; k++) {
			char name[128], *p = strstr(r->value, "; p=");

			snprintf(name, sizeof(name), "%s._domainkey.proto.test",
			         keys->keys[k]->selector);
			if (strcmp(r->name, name) == 0 && strcmp(r->type, "TXT") == 0 &&
			    p != NULL && strcmp(p + 4, keys->keys[k]->public_b64) == 0)
				dkim++;
		}
	}
	CHECK(mx && a && aaaa && spf && dmarc);
	CHECK(dkim == keys->n_keys);
	mc__response__free_unpacked(resp, NULL);
	q.name = "nowhere.test";
	resp = admin_call(MC__REQUEST__BODY_DOMAIN_DNS, &q);
	CHECK(resp->status == MC__STATUS__STATUS_NOT_FOUND);
	mc__response__free_unpacked(resp, NULL);
}

static void
test_dkim(const char *pub_url)
{
	nng_socket sm = subscribe(pub_url, MC_TOPIC_MAILBOX);
	nng_socket sr = subscribe(pub_url, MC_TOPIC_RELAY);
	Mc__DkimCreateReq cq = MC__DKIM_CREATE_REQ__INIT;
	Mc__DkimRotateReq rq = MC__DKIM_ROTATE_REQ__INIT;
	Mc__DkimListReq lq = MC__DKIM_LIST_REQ__INIT;
	Mc__DkimRmReq dq = MC__DKIM_RM_REQ__INIT;
	Mc__Response *resp, *created;
	Mc__Status st;
	uint64_t v0, relay, mailbox;
	char *inactive = NULL, *active = NULL;

	usleep(300 * 1000);
	/* Relays register their public name and addresses, checked. */
	CHECK(register_relay("bad name", "192.0.2.25", NULL, &st) == 0 &&
	      st == MC__STATUS__STATUS_INVALID);
	CHECK(register_relay("mx1.proto.test", "not-an-ip", NULL, &st) == 0 &&
	      st == MC__STATUS__STATUS_INVALID);
	relay = register_relay("MX1.proto.test", "192.0.2.25", "2001:db8::25", &st);
	CHECK(st == MC__STATUS__STATUS_OK && relay != 0);
	mailbox = register_node("proto-mailbox", MC__NODE_KIND__NODE_KIND_MAILBOX,
	                        "instance-a", "127.0.0.1:2400", &st);
	v0 = cluster_version();
	cq.domain = "proto.test";
	cq.rsa_bits = 1024;
	resp = dkim_call(MC__REQUEST__BODY_DKIM_CREATE, &cq);
	CHECK(resp->status == MC__STATUS__STATUS_INVALID);
	mc__response__free_unpacked(resp, NULL);
	cq.rsa_bits = 0;
	cq.domain = "nowhere.test";
	resp = dkim_call(MC__REQUEST__BODY_DKIM_CREATE, &cq);
	CHECK(resp->status == MC__STATUS__STATUS_NOT_FOUND);
	mc__response__free_unpacked(resp, NULL);
	CHECK(cluster_version() == v0);

	/* Both algorithms by default, the admin reply without private keys. */
	cq.domain = "proto.test";
	created = dkim_call(MC__REQUEST__BODY_DKIM_CREATE, &cq);
	CHECK(created->status == MC__STATUS__STATUS_OK &&
	      created->dkim_keys->n_keys == 2 && created->version == v0 + 1);
	for (size_t i = 0; created->status == MC__STATUS__STATUS_OK &&
	                   i < created->dkim_keys->n_keys; i++) {
		Mc__DkimKey *k = created->dkim_keys->keys[i];
		size_t len = strlen(k->selector);

		CHECK(k->private_pem[0] == '\0' && k->active && k->public_b64[0] != '\0');
		CHECK(k->selector[0] == 's' && len >= 8 &&
		      k->selector[len - 1] ==
		              (k->alg == MC__DKIM_ALG__DKIM_ALG_RSA ? 'r' : 'e'));
		CHECK(k->alg != MC__DKIM_ALG__DKIM_ALG_RSA || k->bits == 2048);
	}
	CHECK(expect_key_delta(sm, sr) == 2);
	resp = dkim_call(MC__REQUEST__BODY_DKIM_CREATE, &cq);
	CHECK(resp->status == MC__STATUS__STATUS_EXISTS);
	mc__response__free_unpacked(resp, NULL);
	CHECK(cluster_version() == v0 + 1);
	if (created->status == MC__STATUS__STATUS_OK)
		check_dns(created->dkim_keys);
	mc__response__free_unpacked(created, NULL);
	check_key_snapshots(relay, mailbox, 2);

	/* Rotation: two new active keys, the old ones inactive (and their
	 * private keys no longer published). */
	rq.domain = "proto.test";
	resp = dkim_call(MC__REQUEST__BODY_DKIM_ROTATE, &rq);
	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->dkim_keys->n_keys == 2 &&
	      resp->version == v0 + 2);
	mc__response__free_unpacked(resp, NULL);
	CHECK(expect_key_delta(sm, sr) == 4);
	check_key_snapshots(relay, mailbox, 4);
	lq.domain = "proto.test";
	resp = dkim_call(MC__REQUEST__BODY_DKIM_LIST, &lq);
	CHECK(resp->status == MC__STATUS__STATUS_OK && resp->dkim_keys->n_keys == 4);
	for (size_t i = 0; resp->status == MC__STATUS__STATUS_OK &&
	                   i < resp->dkim_keys->n_keys; i++) {
		Mc__DkimKey *k = resp->dkim_keys->keys[i];

		CHECK(k->private_pem[0] == '\0');
		/* Active first, then by algorithm. */
		CHECK(k->active == (i < 2));
		if (!k->active && inactive == NULL)
			inactive = strdup(k->selector);
		if (k->active && active == NULL)
			active = strdup(k->selector);
	}
	mc__response__free_unpacked(resp, NULL);
	/* An active key is not removed without force; an inactive one is. */
	dq.domain = "proto.test";
	{
		dq.selector = active != NULL ? active : "";
		resp = dkim_call(MC__REQUEST__BODY_DKIM_RM, &dq);
		CHECK(resp->status == MC__STATUS__STATUS_CONFLICT);
		mc__response__free_unpacked(resp, NULL);
		dq.selector = inactive != NULL ? inactive : "";
		resp = dkim_call(MC__REQUEST__BODY_DKIM_RM, &dq);
		CHECK(resp->status == MC__STATUS__STATUS_OK && resp->version == v0 + 3);
		mc__response__free_unpacked(resp, NULL);
		CHECK(expect_key_delta(sm, sr) == 1);
		resp = dkim_call(MC__REQUEST__BODY_DKIM_RM, &dq);
		CHECK(resp->status == MC__STATUS__STATUS_NOT_FOUND);
		mc__response__free_unpacked(resp, NULL);
		free(inactive);
		free(active);
	}
	CHECK(cluster_version() == v0 + 3);
	/* The domain takes its keys along. */
	{
		Mc__DomainRmReq drm = MC__DOMAIN_RM_REQ__INIT;
		Mc__Delta *dm;
		size_t deletes = 0;

		drm.name = "proto.test";
		drm.force = true;
		CHECK(simple_admin(MC__REQUEST__BODY_DOMAIN_RM, &drm) == MC__STATUS__STATUS_OK);
		dm = next_delta(sm, MC_TOPIC_MAILBOX);
		for (size_t i = 0; dm != NULL && i < dm->n_changes; i++)
			deletes += dm->changes[i]->object_case == MC__CHANGE__OBJECT_DKIM_KEY &&
			           dm->changes[i]->op == MC__CHANGE__OP__DELETE;
		CHECK(deletes == 3);
		mc__delta__free_unpacked(dm, NULL);
		resp = dkim_call(MC__REQUEST__BODY_DKIM_LIST, &lq);
		CHECK(resp->status == MC__STATUS__STATUS_NOT_FOUND);
		mc__response__free_unpacked(resp, NULL);
	}
	nng_close(sm);
	nng_close(sr);
}

int
main(void)
{
	const char *url = getenv("MAILCTL_URL"), *pub = getenv("MC_PUBLISH_URL");
	const char *admin = getenv("MAILCTL_TOKEN_FILE");
	const char *node = getenv("MC_NODE_TOKEN_FILE");
	const char *err;

	if (!url || !pub || !admin || !node) {
		fprintf(stderr, "controller_proto: run with a cluster.env loaded\n");
		return 2;
	}
	if (mc_secret_read_file(admin, &admin_token, &err) < 0 ||
	    mc_secret_read_file(node, &node_token, &err) < 0) {
		fprintf(stderr, "controller_proto: %s\n", err);
		return 2;
	}
	if (nng_req0_open(&req_sock) != 0 ||
	    mc_rpc_dial(req_sock, url, NULL, false, &err) < 0) {
		fprintf(stderr, "controller_proto: %s\n", err);
		return 2;
	}
	test_versions_and_topics(pub);
	test_nodes();
	test_leases();
	test_scram();
	test_routes(pub);
	test_dkim(pub);
	nng_close(req_sock);
	mc_secret_free(&admin_token);
	mc_secret_free(&node_token);
	return mc_test_done();
}
