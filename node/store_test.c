/* Mailbox store checks against a real Postgres (MC_STORE_CONNINFO, from a
 * fresh cluster's cluster.env): default mailboxes, UID and MODSEQ
 * allocation, idempotent redelivery, fencing by lease epoch, and UIDs that
 * stay unique and gap-free under concurrent writers. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_imap.h"
#include "test.h"

#define BLOB "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static const char *conninfo;

static struct node_delivery
delivery(uint64_t account, uint32_t shard, uint64_t epoch, const char *id)
{
	struct node_delivery d = {
		.account_id = account, .shard = shard, .epoch = epoch,
		.mailbox = "INBOX", .blob_sha256 = BLOB, .size = 1234,
		.internaldate = 1700000000, .delivery_id = id,
		.envelope_json = "{\"subject\":\"hi\"}",
		.imap_envelope = "(NIL \"hi\" NIL NIL NIL NIL NIL NIL NIL NIL)",
	};
	return d;
}

static void
test_basics(struct node_store *st)
{
	struct node_delivery d = delivery(101, 3, 1, "q1/a@x.test");
	uint64_t uid = 0, count = 0, bytes = 0;
	const char *err = NULL;

	CHECK(node_store_ensure_mailboxes(st, 101, 3, 1, &err) == NODE_STORE_OK);
	CHECK(node_store_mailbox_stats(st, 101, "Sent", &count, &bytes, &err) == 0 &&
	      count == 0);
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OK && uid == 1);
	d.delivery_id = "q2/a@x.test";
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OK && uid == 2);
	/* The same delivery again (a relay retrying after a crash): the first
	 * UID comes back and nothing is added. */
	d.delivery_id = "q1/a@x.test";
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_DUPLICATE && uid == 1);
	CHECK(node_store_mailbox_stats(st, 101, "INBOX", &count, &bytes, &err) == 0);
	CHECK(count == 2 && bytes == 2468);
	/* An account delivered to first gets its mailboxes on the way. */
	d = delivery(102, 3, 1, NULL);
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OK && uid == 1);
	CHECK(node_store_mailbox_stats(st, 102, "Archive", &count, &bytes, &err) == 0);
	d.mailbox = "No Such Box";
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_TEMPFAIL);
	CHECK(err != NULL && strstr(err, "No Such Box") != NULL);
}

static void
test_fencing(struct node_store *st)
{
	struct node_delivery d = delivery(201, 7, 1, NULL);
	uint64_t uid = 0, count = 0, bytes = 0;
	const char *err = NULL;

	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OK);
	/* A new owner claims shard 7 with epoch 2... */
	d.epoch = 2;
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OK);
	/* ...so the old owner, still believing in epoch 1, cannot write. */
	d.epoch = 1;
	err = NULL;
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_FENCED);
	CHECK(err != NULL && strstr(err, "shard 7") != NULL);
	CHECK(node_store_ensure_mailboxes(st, 202, 7, 1, &err) == NODE_STORE_FENCED);
	CHECK(node_store_mailbox_stats(st, 201, "INBOX", &count, &bytes, &err) == 0 &&
	      count == 2);
	/* Other shards are not affected. */
	d = delivery(203, 8, 1, NULL);
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OK);
	/* The fenced store connection is still usable. */
	d = delivery(201, 7, 2, NULL);
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OK && uid == 3);
}

#define WRITERS 4
#define PER_WRITER 40

static int writer_failures;
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;

static void *
writer(void *arg)
{
	struct node_store *st = NULL;
	const char *err = NULL;
	int w = (int)(intptr_t)arg, bad = 0;

	if (node_store_open(conninfo, &st, &err) < 0) {
		fprintf(stderr, "writer %d: %s\n", w, err);
		bad = PER_WRITER;
	}
	for (int i = 0; st != NULL && i < PER_WRITER; i++) {
		char id[32];
		struct node_delivery d = delivery(301, 9, 1, id);
		uint64_t uid;

		snprintf(id, sizeof(id), "w%d/%d", w, i);
		if (node_store_deliver(st, &d, &uid, NULL, &err) != NODE_STORE_OK) {
			fprintf(stderr, "writer %d: %s\n", w, err);
			bad++;
		}
	}
	node_store_close(&st);
	pthread_mutex_lock(&writer_lock);
	writer_failures += bad;
	pthread_mutex_unlock(&writer_lock);
	return NULL;
}

static void
test_concurrent_uids(struct node_store *st)
{
	pthread_t t[WRITERS];
	uint64_t count = 0, bytes = 0, uid = 0;
	const char *err = NULL;
	struct node_delivery d = delivery(301, 9, 1, NULL);

	for (int i = 0; i < WRITERS; i++)
		pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	CHECK(writer_failures == 0);
	CHECK(node_store_mailbox_stats(st, 301, "INBOX", &count, &bytes, &err) == 0 &&
	      count == WRITERS * PER_WRITER);
	/* UIDs were handed out without gaps or repeats. */
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OK &&
	      uid == WRITERS * PER_WRITER + 1);
}

/* ---- the IMAP side (store_imap.h) ---- */

#define U(...) ((const uint32_t[]){__VA_ARGS__})
#define FL(...) ((const char *const[]){__VA_ARGS__})
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Deliver one message (APPEND when no_create) into box; its UID. */
static uint32_t
put(struct node_store *st, uint64_t acc, uint32_t shard, const char *box,
    const char *flags)
{
	struct node_delivery d = delivery(acc, shard, 1, NULL);
	uint64_t uid = 0;
	const char *err = NULL;

	d.mailbox = box;
	d.flags = flags;
	d.no_create = strcmp(box, "INBOX") != 0;
	d.bodystructure_json = "{\"type\":\"text\"}";
	if (node_store_deliver(st, &d, &uid, NULL, &err) != NODE_STORE_OK)
		fprintf(stderr, "put %s: %s\n", box, err);
	return (uint32_t)uid;
}

static struct node_mailbox
box(struct node_store *st, uint64_t acc, const char *name)
{
	struct node_mailbox mb;
	struct node_msg_list msgs;
	const char *err = NULL;

	if (node_store_select(st, acc, name, &mb, &msgs, &err) != NODE_STORE_OK)
		fprintf(stderr, "select %s: %s\n", name, err);
	node_msg_list_free(&msgs);
	return mb;
}

/* "uid:flags uid:flags" of a mailbox, for one comparison per check. */
static const char *
contents(struct node_store *st, uint64_t acc, const char *name)
{
	static char out[512];
	struct node_mailbox mb;
	struct node_msg_list msgs;
	const char *err = NULL;
	size_t len = 0;

	out[0] = '\0';
	if (node_store_select(st, acc, name, &mb, &msgs, &err) != NODE_STORE_OK)
		return "(none)";
	for (size_t i = 0; i < msgs.count && len < sizeof(out); i++)
		len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%u:%s",
		                        i ? " " : "", msgs.items[i].uid,
		                        msgs.items[i].flags);
	node_mailbox_fini(&mb);
	node_msg_list_free(&msgs);
	return out;
}

static const char *
names(struct node_store *st, uint64_t acc)
{
	static char out[512];
	struct node_mailbox_list list;
	const char *err = NULL;
	size_t len = 0;

	out[0] = '\0';
	if (node_store_list_mailboxes(st, acc, &list, &err) != NODE_STORE_OK)
		return "(error)";
	for (size_t i = 0; i < list.count && len < sizeof(out); i++)
		len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s",
		                        i ? " " : "", list.items[i].name);
	node_mailbox_list_free(&list);
	return out;
}

static void
test_imap_list_select(struct node_store *st)
{
	struct node_mailbox_list list;
	struct node_mailbox mb;
	struct node_msg_list msgs;
	struct node_delivery d = delivery(401, 11, 1, NULL);
	uint64_t uid = 0;
	uint32_t uidvalidity = 0;
	const char *err = NULL;

	CHECK(node_store_ensure_mailboxes(st, 401, 11, 1, &err) == NODE_STORE_OK);
	d.flags = "\\Seen \\Flagged \\Seen";
	CHECK(node_store_deliver(st, &d, &uid, &uidvalidity, &err) == NODE_STORE_OK);
	CHECK(put(st, 401, 11, "INBOX", NULL) == 2 && put(st, 401, 11, "INBOX", "") == 3);
	CHECK(node_store_list_mailboxes(st, 401, &list, &err) == NODE_STORE_OK);
	CHECK(list.count == 6);
	CHECK_STR(names(st, 401), "Archive Drafts INBOX Junk Sent Trash");
	if (list.count == 6) {
		CHECK_STR(list.items[4].special_use, "\\Sent");
		CHECK(list.items[2].special_use == NULL && list.items[2].subscribed);
		CHECK(list.items[2].uidvalidity == uidvalidity && uidvalidity != 0);
	}
	node_mailbox_list_free(&list);
	CHECK(list.items == NULL && list.count == 0);
	CHECK(node_store_select(st, 401, "INBOX", &mb, &msgs, &err) == NODE_STORE_OK);
	CHECK(mb.uidnext == 4 && mb.highestmodseq == 4 && mb.uidvalidity == uidvalidity);
	CHECK(msgs.count == 3);
	if (msgs.count == 3) {
		CHECK(msgs.items[0].uid == 1 && msgs.items[0].modseq == 2);
		CHECK_STR(msgs.items[0].flags, "\\Flagged \\Seen");
		CHECK_STR(msgs.items[1].flags, "");
		CHECK(msgs.items[2].uid == 3 && msgs.items[2].modseq == 4);
	}
	node_mailbox_fini(&mb);
	node_msg_list_free(&msgs);
	err = NULL;
	CHECK(node_store_select(st, 401, "Nope", &mb, &msgs, &err) == NODE_STORE_NOTFOUND);
	CHECK(err != NULL && strstr(err, "Nope") != NULL);
	CHECK(mb.name == NULL && msgs.count == 0);
	CHECK(node_store_list_mailboxes(st, 499, &list, &err) == NODE_STORE_OK &&
	      list.count == 0);
}

static void
test_imap_changes(struct node_store *st)
{
	struct node_mailbox mb, now;
	struct node_msg_list changed;
	uint32_t *expunged = NULL, *failed = NULL;
	size_t n_expunged = 0, n_failed = 0;
	uint64_t since;
	const char *err = NULL;

	put(st, 402, 11, "INBOX", NULL);
	put(st, 402, 11, "INBOX", NULL);
	mb = box(st, 402, "INBOX");
	since = mb.highestmodseq;
	/* Nothing new: the cheap case. */
	CHECK(node_store_changes(st, mb.id, since, &now, &changed, &expunged,
	                         &n_expunged, &err) == NODE_STORE_OK);
	CHECK(now.highestmodseq == since && changed.count == 0 && n_expunged == 0);
	node_mailbox_fini(&now);
	/* A new message, a flag change, an expunge. */
	put(st, 402, 11, "INBOX", NULL);
	CHECK(node_store_set_flags(st, 11, 1, mb.id, U(1, 2), 2, NODE_FLAGS_ADD,
	                           FL("\\Seen"), 1, 0, &changed, &failed, &n_failed,
	                           &err) == NODE_STORE_OK && changed.count == 2);
	node_msg_list_free(&changed);
	free(failed);
	CHECK(node_store_set_flags(st, 11, 1, mb.id, U(2), 1, NODE_FLAGS_ADD,
	                           FL("\\Deleted"), 1, 0, &changed, &failed, &n_failed,
	                           &err) == NODE_STORE_OK);
	node_msg_list_free(&changed);
	free(failed);
	CHECK(node_store_expunge(st, 11, 1, mb.id, NULL, 0, &expunged, &n_expunged,
	                         &err) == NODE_STORE_OK && n_expunged == 1);
	free(expunged);
	CHECK(node_store_changes(st, mb.id, since, &now, &changed, &expunged,
	                         &n_expunged, &err) == NODE_STORE_OK);
	CHECK(now.highestmodseq == since + 4 && now.uidnext == 4);
	CHECK(changed.count == 2 && n_expunged == 1 && expunged[0] == 2);
	if (changed.count == 2) {
		CHECK(changed.items[0].uid == 1 && changed.items[0].modseq == since + 2);
		CHECK_STR(changed.items[0].flags, "\\Seen");
		CHECK(changed.items[1].uid == 3 && changed.items[1].modseq == since + 1);
	}
	node_msg_list_free(&changed);
	free(expunged);
	/* From the new MODSEQ on, nothing again. */
	since = now.highestmodseq;
	node_mailbox_fini(&now);
	CHECK(node_store_changes(st, mb.id, since, &now, &changed, &expunged,
	                         &n_expunged, &err) == NODE_STORE_OK &&
	      changed.count == 0 && n_expunged == 0 && expunged == NULL);
	node_mailbox_fini(&now);
	CHECK(node_store_changes(st, 987654321, 0, &now, &changed, &expunged,
	                         &n_expunged, &err) == NODE_STORE_NOTFOUND);
	node_mailbox_fini(&mb);
}

static void
test_imap_fetch(struct node_store *st)
{
	struct node_mailbox mb;
	struct node_msg_full *rows = NULL;
	size_t n = 0;
	uint32_t *many = calloc(10000, sizeof(*many));
	const char *err = NULL;

	for (int i = 0; i < 3; i++)
		put(st, 403, 11, "INBOX", i == 0 ? "\\Answered" : NULL);
	mb = box(st, 403, "INBOX");
	CHECK(node_store_fetch(st, mb.id, U(3, 1, 99), 3, false, &rows, &n, &err) ==
	      NODE_STORE_OK);
	CHECK(n == 2);
	if (n == 2) {
		CHECK(rows[0].uid == 1 && rows[1].uid == 3 && rows[0].modseq == 2);
		CHECK_STR(rows[0].flags, "\\Answered");
		CHECK(rows[0].size == 1234 && rows[0].internaldate == 1700000000);
		CHECK_STR(rows[0].blob, BLOB);
		/* the formatted ENVELOPE, not the JSON, unless asked */
		CHECK(rows[0].imap_envelope != NULL &&
		      strncmp(rows[0].imap_envelope, "(NIL \"hi\" ", 10) == 0);
		CHECK(rows[0].envelope == NULL);
		CHECK(rows[0].bodystructure == NULL);
	}
	node_msg_full_free(rows, n);
	CHECK(node_store_fetch(st, mb.id, U(1), 1, NODE_FETCH_ENVELOPE_JSON,
	                       &rows, &n, &err) == NODE_STORE_OK && n == 1);
	CHECK(n == 1 && rows[0].envelope != NULL &&
	      strstr(rows[0].envelope, "hi") != NULL);
	node_msg_full_free(rows, n);
	CHECK(node_store_fetch(st, mb.id, U(2), 1, true, &rows, &n, &err) ==
	      NODE_STORE_OK && n == 1);
	CHECK(n == 1 && rows[0].bodystructure != NULL &&
	      strstr(rows[0].bodystructure, "text") != NULL);
	node_msg_full_free(rows, n);
	CHECK(node_store_fetch(st, mb.id, NULL, 0, true, &rows, &n, &err) ==
	      NODE_STORE_OK && n == 0 && rows == NULL);
	/* A large UID set is one parameter, one statement. */
	for (uint32_t i = 0; i < 10000; i++)
		many[i] = 4294967295u - i;
	many[5000] = 2;
	CHECK(node_store_fetch(st, mb.id, many, 10000, false, &rows, &n, &err) ==
	      NODE_STORE_OK && n == 1 && rows[0].uid == 2);
	node_msg_full_free(rows, n);
	free(many);
	node_mailbox_fini(&mb);
}

static void
test_imap_set_flags(struct node_store *st)
{
	struct node_mailbox mb;
	struct node_msg_list ch;
	uint32_t *failed = NULL;
	size_t n_failed = 0;
	uint64_t m1, m3;
	const char *err = NULL;

	for (int i = 0; i < 3; i++)
		put(st, 404, 11, "INBOX", NULL);
	mb = box(st, 404, "INBOX");
#define SET(uids, op, flags, since)                                          \
	node_store_set_flags(st, 11, 1, mb.id, uids, COUNT(uids), op, flags,     \
	                     COUNT(flags), since, &ch, &failed, &n_failed, &err)
	CHECK(SET(U(1, 2), NODE_FLAGS_ADD, FL("\\Seen", "$Label"), 0) == NODE_STORE_OK);
	CHECK(ch.count == 2 && n_failed == 0 && failed == NULL);
	CHECK(ch.count == 2 && ch.items[1].uid == 2 && ch.items[1].modseq == 5);
	node_msg_list_free(&ch);
	CHECK_STR(contents(st, 404, "INBOX"), "1:$Label \\Seen 2:$Label \\Seen 3:");
	/* No change, no new MODSEQ. */
	CHECK(SET(U(1, 2), NODE_FLAGS_ADD, FL("\\Seen"), 0) == NODE_STORE_OK &&
	      ch.count == 0);
	node_msg_list_free(&ch);
	node_mailbox_fini(&mb);
	mb = box(st, 404, "INBOX");
	CHECK(mb.highestmodseq == 5);
	CHECK(SET(U(1, 2, 3), NODE_FLAGS_REMOVE, FL("$Label"), 0) == NODE_STORE_OK &&
	      ch.count == 2);
	node_msg_list_free(&ch);
	CHECK(SET(U(1), NODE_FLAGS_REPLACE, FL("\\Answered", "Zz"), 0) == NODE_STORE_OK &&
	      ch.count == 1 && ch.items[0].modseq == 7);
	node_msg_list_free(&ch);
	CHECK_STR(contents(st, 404, "INBOX"), "1:Zz \\Answered 2:\\Seen 3:");
	/* UNCHANGEDSINCE: uid 1 (MODSEQ 7) changed after 4, uid 3 (4) not. */
	m1 = 7;
	m3 = 4;
	CHECK(SET(U(1, 3), NODE_FLAGS_ADD, FL("\\Flagged"), m3) == NODE_STORE_OK);
	CHECK(ch.count == 1 && ch.items[0].uid == 3 && ch.items[0].modseq == 8);
	CHECK(n_failed == 1 && failed[0] == 1);
	node_msg_list_free(&ch);
	free(failed);
	/* uid 1 fails even though its flags would stay the same. */
	CHECK(SET(U(1, 2), NODE_FLAGS_ADD, FL("Zz"), m1 - 1) == NODE_STORE_OK);
	CHECK(ch.count == 1 && ch.items[0].uid == 2 && n_failed == 1 && failed[0] == 1);
	node_msg_list_free(&ch);
	free(failed);
	CHECK_STR(contents(st, 404, "INBOX"), "1:Zz \\Answered 2:Zz \\Seen 3:\\Flagged");
	CHECK(SET(U(1), NODE_FLAGS_REPLACE, FL(""), 0) == NODE_STORE_OK && ch.count == 1);
	node_msg_list_free(&ch);
	CHECK_STR(contents(st, 404, "INBOX"), "1: 2:Zz \\Seen 3:\\Flagged");
#undef SET
	CHECK(node_store_set_flags(st, 11, 1, 987654321, U(1), 1, NODE_FLAGS_ADD,
	                           FL("x"), 1, 0, &ch, &failed, &n_failed,
	                           &err) == NODE_STORE_NOTFOUND);
	node_mailbox_fini(&mb);
}

static void
test_imap_expunge(struct node_store *st)
{
	struct node_mailbox mb, now;
	struct node_msg_list ch;
	uint32_t *uids = NULL;
	size_t n = 0;
	uint64_t since;
	const char *err = NULL;

	for (int i = 0; i < 5; i++)
		put(st, 405, 11, "INBOX", i % 2 == 0 ? "\\Deleted" : NULL);
	put(st, 405, 11, "Trash", "\\Deleted"); /* not touched by INBOX's expunge */
	mb = box(st, 405, "INBOX");
	since = mb.highestmodseq;
	/* UID EXPUNGE: only listed and \Deleted ones. */
	CHECK(node_store_expunge(st, 11, 1, mb.id, U(1, 2), 2, &uids, &n, &err) ==
	      NODE_STORE_OK && n == 1 && uids[0] == 1);
	free(uids);
	CHECK(node_store_expunge(st, 11, 1, mb.id, U(1, 2), 0, &uids, &n, &err) ==
	      NODE_STORE_OK && n == 0 && uids == NULL);
	CHECK(node_store_expunge(st, 11, 1, mb.id, NULL, 0, &uids, &n, &err) ==
	      NODE_STORE_OK && n == 2 && uids[0] == 3 && uids[1] == 5);
	free(uids);
	CHECK_STR(contents(st, 405, "INBOX"), "2: 4:");
	CHECK_STR(contents(st, 405, "Trash"), "1:\\Deleted");
	CHECK(node_store_changes(st, mb.id, since, &now, &ch, &uids, &n, &err) ==
	      NODE_STORE_OK && n == 3 && ch.count == 0);
	CHECK(n == 3 && uids[0] == 1 && uids[1] == 3 && uids[2] == 5);
	CHECK(now.highestmodseq == since + 2);
	free(uids);
	node_msg_list_free(&ch);
	node_mailbox_fini(&now);
	/* Nothing to expunge: no new MODSEQ. */
	CHECK(node_store_expunge(st, 11, 1, mb.id, NULL, 0, &uids, &n, &err) ==
	      NODE_STORE_OK && n == 0);
	node_mailbox_fini(&mb);
	mb = box(st, 405, "INBOX");
	CHECK(mb.highestmodseq == since + 2);
	node_mailbox_fini(&mb);
}

static void
test_imap_copy_move(struct node_store *st)
{
	struct node_mailbox in, ar, now;
	struct node_copy_result r;
	struct node_msg_list ch;
	uint64_t bytes = 0, msgs = 0, since;
	uint32_t *gone = NULL;
	size_t n = 0;
	const char *err = NULL;

	for (int i = 0; i < 3; i++)
		put(st, 406, 11, "INBOX", i == 1 ? "\\Seen" : NULL);
	in = box(st, 406, "INBOX");
	ar = box(st, 406, "Archive");
	CHECK(node_store_copy(st, 11, 1, 406, in.id, U(3, 1, 2, 77), 4, ar.id, false, 0,
	                      &r, &err) == NODE_STORE_OK);
	CHECK(r.count == 3 && r.uidvalidity == ar.uidvalidity);
	CHECK(r.count == 3 && r.src_uids[0] == 1 && r.src_uids[2] == 3);
	CHECK(r.count == 3 && r.dst_uids[0] == 1 && r.dst_uids[2] == 3);
	node_copy_result_fini(&r);
	CHECK(node_store_copy(st, 11, 1, 406, in.id, U(2, 3), 2, ar.id, false, 0, &r,
	                      &err) == NODE_STORE_OK);
	CHECK(r.count == 2 && r.src_uids[0] == 2 && r.dst_uids[0] == 4 &&
	      r.dst_uids[1] == 5);
	node_copy_result_fini(&r);
	CHECK_STR(contents(st, 406, "Archive"), "1: 2:\\Seen 3: 4:\\Seen 5:");
	node_mailbox_fini(&ar);
	ar = box(st, 406, "Archive");
	CHECK(ar.uidnext == 6 && ar.highestmodseq == 3);
	/* Over quota: refused, nothing copied. */
	CHECK(node_store_usage(st, 406, &bytes, &msgs, &err) == NODE_STORE_OK);
	CHECK(bytes == 8 * 1234 && msgs == 8);
	CHECK(node_store_copy(st, 11, 1, 406, in.id, U(1), 1, ar.id, false,
	                      bytes + 1233, &r, &err) == NODE_STORE_OVERQUOTA);
	CHECK(r.count == 0 && r.src_uids == NULL);
	CHECK(node_store_copy(st, 11, 1, 406, in.id, U(1), 1, ar.id, false,
	                      bytes + 1234, &r, &err) == NODE_STORE_OK && r.count == 1);
	node_copy_result_fini(&r);
	/* Move: the target gets it, the source records the expunge; the
	 * usage does not change, so a full account may still move. */
	since = in.highestmodseq;
	CHECK(node_store_copy(st, 11, 1, 406, in.id, U(1, 3), 2, ar.id, true,
	                      bytes + 1234, &r, &err) == NODE_STORE_OK);
	CHECK(r.count == 2 && r.dst_uids[0] == 7 && r.dst_uids[1] == 8);
	node_copy_result_fini(&r);
	CHECK_STR(contents(st, 406, "INBOX"), "2:\\Seen");
	CHECK(node_store_changes(st, in.id, since, &now, &ch, &gone, &n, &err) ==
	      NODE_STORE_OK && n == 2 && gone[0] == 1 && gone[1] == 3);
	CHECK(ch.count == 0 && now.highestmodseq == since + 1);
	free(gone);
	node_msg_list_free(&ch);
	node_mailbox_fini(&now);
	CHECK(node_store_usage(st, 406, &bytes, &msgs, &err) == NODE_STORE_OK &&
	      msgs == 9);
	/* Copy within one mailbox; an empty selection; someone else's box. */
	CHECK(node_store_copy(st, 11, 1, 406, in.id, U(2), 1, in.id, false, 0, &r,
	                      &err) == NODE_STORE_OK && r.count == 1 && r.dst_uids[0] == 4);
	node_copy_result_fini(&r);
	CHECK(node_store_copy(st, 11, 1, 406, in.id, U(99), 1, ar.id, true, 0, &r,
	                      &err) == NODE_STORE_OK && r.count == 0);
	node_mailbox_fini(&ar);
	ar = box(st, 401, "Archive");
	CHECK(node_store_copy(st, 11, 1, 406, in.id, U(2), 1, ar.id, false, 0, &r,
	                      &err) == NODE_STORE_NOTFOUND);
	node_mailbox_fini(&ar);
	node_mailbox_fini(&in);
}

static void
test_imap_append(struct node_store *st)
{
	struct node_delivery d = delivery(407, 11, 1, NULL);
	struct node_mailbox drafts;
	uint64_t uid = 0, bytes = 0, msgs = 0;
	uint32_t uidvalidity = 0;
	const char *err = NULL;

	/* No mailbox yet and no_create: nothing is made up. */
	d.no_create = true;
	CHECK(node_store_deliver(st, &d, &uid, &uidvalidity, &err) == NODE_STORE_NOTFOUND);
	CHECK_STR(names(st, 407), "");
	CHECK(node_store_ensure_mailboxes(st, 407, 11, 1, &err) == NODE_STORE_OK);
	drafts = box(st, 407, "Drafts");
	d.mailbox = "Drafts";
	d.flags = "\\Seen \\Draft";
	CHECK(node_store_deliver(st, &d, &uid, &uidvalidity, &err) == NODE_STORE_OK);
	CHECK(uid == 1 && uidvalidity == drafts.uidvalidity);
	CHECK_STR(contents(st, 407, "Drafts"), "1:\\Draft \\Seen");
	d.mailbox = "Nope";
	CHECK(node_store_deliver(st, &d, &uid, &uidvalidity, &err) == NODE_STORE_NOTFOUND);
	CHECK(strstr(err, "Nope") != NULL);
	/* Quota: the account's total plus this message. */
	d.mailbox = "INBOX";
	d.quota_bytes = 2 * 1234 - 1;
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OVERQUOTA);
	CHECK(strstr(err, "quota") != NULL);
	d.quota_bytes = 2 * 1234;
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OK && uid == 1);
	CHECK(node_store_usage(st, 407, &bytes, &msgs, &err) == NODE_STORE_OK);
	CHECK(bytes == 2 * 1234 && msgs == 2);
	/* A redelivery is recognised before the quota is looked at. */
	d.delivery_id = "q/407";
	d.quota_bytes = 0;
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_OK && uid == 2);
	d.quota_bytes = 1;
	uidvalidity = 0;
	CHECK(node_store_deliver(st, &d, &uid, &uidvalidity, &err) ==
	      NODE_STORE_DUPLICATE && uid == 2 && uidvalidity != 0);
	node_mailbox_fini(&drafts);
}

static void
test_imap_mailboxes(struct node_store *st)
{
	struct node_mailbox_list list;
	struct node_mailbox a, z;
	const char *err = NULL;

	CHECK(node_store_ensure_mailboxes(st, 408, 11, 1, &err) == NODE_STORE_OK);
#define CREATE(name) node_store_create_mailbox(st, 11, 1, 408, name, NULL, &err)
#define RENAME(from, to) node_store_rename_mailbox(st, 11, 1, 408, from, to, &err)
	CHECK(CREATE("a/b/c") == NODE_STORE_OK);
	CHECK(CREATE("a") == NODE_STORE_EXISTS && strstr(err, "exists") != NULL);
	CHECK(CREATE("INBOX") == NODE_STORE_EXISTS);
	CHECK(CREATE("x/") == NODE_STORE_OK && CREATE("inbox/y") == NODE_STORE_OK);
	CHECK(node_store_create_mailbox(st, 11, 1, 408, "Flagged", "\\Flagged", &err) ==
	      NODE_STORE_OK);
	CHECK_STR(names(st, 408), "Archive Drafts Flagged INBOX Junk Sent Trash a a/b "
	                          "a/b/c inbox/y x");
	CHECK(node_store_subscribe(st, 11, 1, 408, "a/b", false, &err) == NODE_STORE_OK);
	CHECK(node_store_subscribe(st, 11, 1, 408, "nope", true, &err) ==
	      NODE_STORE_NOTFOUND);
	CHECK(node_store_list_mailboxes(st, 408, &list, &err) == NODE_STORE_OK &&
	      list.count == 12);
	if (list.count == 12) {
		CHECK_STR(list.items[2].special_use, "\\Flagged");
		CHECK(!list.items[8].subscribed && list.items[9].subscribed);
	}
	node_mailbox_list_free(&list);
	/* Rename moves the children, keeping ids, UIDVALIDITY, messages. */
	put(st, 408, 11, "a/b/c", "\\Seen");
	a = box(st, 408, "a/b/c");
	CHECK(RENAME("a", "z") == NODE_STORE_OK);
	CHECK_STR(names(st, 408), "Archive Drafts Flagged INBOX Junk Sent Trash "
	                          "inbox/y x z z/b z/b/c");
	z = box(st, 408, "z/b/c");
	CHECK(z.id == a.id && z.uidvalidity == a.uidvalidity && z.uidnext == 2);
	CHECK_STR(contents(st, 408, "z/b/c"), "1:\\Seen");
	node_mailbox_fini(&a);
	node_mailbox_fini(&z);
	CHECK(RENAME("z/b", "Sent") == NODE_STORE_EXISTS);
	CHECK(RENAME("nope", "q") == NODE_STORE_NOTFOUND);
	CHECK(RENAME("z", "z/in") == NODE_STORE_EXISTS);
	CHECK(RENAME("z", "z") == NODE_STORE_EXISTS);
	CHECK(RENAME("z/b/c", "p/q/r") == NODE_STORE_OK);
	CHECK_STR(names(st, 408), "Archive Drafts Flagged INBOX Junk Sent Trash "
	                          "inbox/y p p/q p/q/r x z z/b");
	/* Delete: children stay; messages go with their mailbox. */
	CHECK(node_store_delete_mailbox(st, 11, 1, 408, "z", &err) == NODE_STORE_OK);
	CHECK(node_store_delete_mailbox(st, 11, 1, 408, "z", &err) == NODE_STORE_NOTFOUND);
	CHECK(node_store_delete_mailbox(st, 11, 1, 408, "p/q/r", &err) == NODE_STORE_OK);
	CHECK_STR(names(st, 408), "Archive Drafts Flagged INBOX Junk Sent Trash "
	                          "inbox/y p p/q x z/b");
#undef CREATE
#undef RENAME
}

static void
test_imap_rename_inbox(struct node_store *st)
{
	struct node_mailbox in, old, now;
	struct node_mailbox_status s;
	struct node_msg_list ch;
	uint64_t bytes = 0, msgs = 0;
	uint32_t *gone = NULL;
	size_t n = 0;
	const char *err = NULL;

	put(st, 409, 11, "INBOX", "\\Seen");
	put(st, 409, 11, "INBOX", "\\Deleted");
	put(st, 409, 11, "INBOX", NULL);
	in = box(st, 409, "INBOX");
	CHECK(node_store_status(st, 409, "INBOX", &s, &err) == NODE_STORE_OK);
	CHECK(s.messages == 3 && s.unseen == 2 && s.deleted == 1 && s.size == 3 * 1234);
	CHECK(s.uidnext == 4 && s.uidvalidity == in.uidvalidity &&
	      s.highestmodseq == in.highestmodseq);
	CHECK(node_store_status(st, 409, "Nope", &s, &err) == NODE_STORE_NOTFOUND);
	CHECK(node_store_rename_mailbox(st, 11, 1, 409, "INBOX", "Sent", &err) ==
	      NODE_STORE_EXISTS);
	CHECK(node_store_rename_mailbox(st, 11, 1, 409, "INBOX", "Old/Mail", &err) ==
	      NODE_STORE_OK);
	CHECK_STR(names(st, 409), "Archive Drafts INBOX Junk Old Old/Mail Sent Trash");
	CHECK_STR(contents(st, 409, "Old/Mail"), "1:\\Seen 2:\\Deleted 3:");
	CHECK_STR(contents(st, 409, "INBOX"), "");
	old = box(st, 409, "Old/Mail");
	CHECK(old.uidnext == 4 && old.highestmodseq >= in.highestmodseq);
	/* INBOX's sessions see the messages go; its UIDs go on. */
	CHECK(node_store_changes(st, in.id, in.highestmodseq, &now, &ch, &gone, &n,
	                         &err) == NODE_STORE_OK && n == 3 && ch.count == 0);
	CHECK(now.uidnext == 4 && now.uidvalidity == in.uidvalidity);
	free(gone);
	node_msg_list_free(&ch);
	node_mailbox_fini(&now);
	CHECK(put(st, 409, 11, "INBOX", NULL) == 4);
	CHECK(node_store_status(st, 409, "Old/Mail", &s, &err) == NODE_STORE_OK &&
	      s.messages == 3 && s.unseen == 2);
	/* The running totals agree with the messages. */
	CHECK(node_store_usage(st, 409, &bytes, &msgs, &err) == NODE_STORE_OK);
	CHECK(msgs == 4 && bytes == 4 * 1234);
	CHECK(node_store_delete_mailbox(st, 11, 1, 409, "Old/Mail", &err) ==
	      NODE_STORE_OK);
	CHECK(node_store_usage(st, 409, &bytes, &msgs, &err) == NODE_STORE_OK);
	CHECK(msgs == 1 && bytes == 1234);
	node_mailbox_fini(&old);
	node_mailbox_fini(&in);
}

/* Every write with a stale epoch is refused and changes nothing. */
static void
test_imap_fencing(struct node_store *st)
{
	struct node_mailbox in, ar;
	struct node_delivery d = delivery(410, 12, 1, NULL);
	struct node_msg_list ch;
	struct node_copy_result r;
	uint32_t *uids = NULL;
	uint64_t uid = 0;
	size_t n = 0;
	const char *err = NULL;

	put(st, 410, 12, "INBOX", "\\Deleted");
	in = box(st, 410, "INBOX");
	ar = box(st, 410, "Archive");
	CHECK(node_store_ensure_mailboxes(st, 410, 12, 2, &err) == NODE_STORE_OK);
	CHECK(node_store_set_flags(st, 12, 1, in.id, U(1), 1, NODE_FLAGS_ADD,
	                           FL("\\Seen"), 1, 0, &ch, &uids, &n,
	                           &err) == NODE_STORE_FENCED);
	CHECK(node_store_expunge(st, 12, 1, in.id, NULL, 0, &uids, &n, &err) ==
	      NODE_STORE_FENCED);
	CHECK(node_store_copy(st, 12, 1, 410, in.id, U(1), 1, ar.id, false, 0, &r,
	                      &err) == NODE_STORE_FENCED);
	CHECK(node_store_copy(st, 12, 1, 410, in.id, U(1), 1, ar.id, true, 0, &r,
	                      &err) == NODE_STORE_FENCED);
	CHECK(node_store_create_mailbox(st, 12, 1, 410, "n", NULL, &err) ==
	      NODE_STORE_FENCED);
	CHECK(node_store_delete_mailbox(st, 12, 1, 410, "Junk", &err) ==
	      NODE_STORE_FENCED);
	CHECK(node_store_rename_mailbox(st, 12, 1, 410, "Junk", "J", &err) ==
	      NODE_STORE_FENCED);
	CHECK(node_store_rename_mailbox(st, 12, 1, 410, "INBOX", "I", &err) ==
	      NODE_STORE_FENCED);
	CHECK(node_store_subscribe(st, 12, 1, 410, "Junk", false, &err) ==
	      NODE_STORE_FENCED);
	d.mailbox = "Drafts";
	d.no_create = true;
	CHECK(node_store_deliver(st, &d, &uid, NULL, &err) == NODE_STORE_FENCED);
	CHECK(err != NULL && strstr(err, "shard 12") != NULL);
	CHECK_STR(names(st, 410), "Archive Drafts INBOX Junk Sent Trash");
	CHECK_STR(contents(st, 410, "INBOX"), "1:\\Deleted");
	CHECK_STR(contents(st, 410, "Archive"), "");
	/* The new owner can. */
	CHECK(node_store_expunge(st, 12, 2, in.id, NULL, 0, &uids, &n, &err) ==
	      NODE_STORE_OK && n == 1);
	free(uids);
	node_mailbox_fini(&in);
	node_mailbox_fini(&ar);
}

/* 10,240 messages (copies doubling in one mailbox): each call is one
 * statement over the whole set, however large. */
static void
test_imap_large(struct node_store *st)
{
	enum { TOTAL = 10240 };
	struct node_mailbox mb;
	struct node_msg_list ch;
	struct node_copy_result r;
	struct node_msg_full *rows = NULL;
	uint32_t *uids = calloc(TOTAL, sizeof(*uids)), *failed = NULL, *gone = NULL;
	size_t n = 0, n_failed = 0, have = 10;
	const char *err = NULL;

	for (size_t i = 0; i < have; i++)
		put(st, 411, 13, "INBOX", NULL);
	mb = box(st, 411, "INBOX");
	for (uint32_t i = 0; i < TOTAL; i++)
		uids[i] = i + 1;
	while (have < TOTAL) {
		CHECK(node_store_copy(st, 13, 1, 411, mb.id, uids, have, mb.id, false, 0,
		                      &r, &err) == NODE_STORE_OK && r.count == have);
		node_copy_result_fini(&r);
		have *= 2;
	}
	CHECK(node_store_fetch(st, mb.id, uids, TOTAL, false, &rows, &n, &err) ==
	      NODE_STORE_OK && n == TOTAL && rows[TOTAL - 1].uid == TOTAL);
	node_msg_full_free(rows, n);
	CHECK(node_store_set_flags(st, 13, 1, mb.id, uids, TOTAL, NODE_FLAGS_ADD,
	                           FL("\\Deleted"), 1, 0, &ch, &failed, &n_failed,
	                           &err) == NODE_STORE_OK && ch.count == TOTAL);
	node_msg_list_free(&ch);
	CHECK(node_store_expunge(st, 13, 1, mb.id, uids, TOTAL - 1, &gone, &n, &err) ==
	      NODE_STORE_OK && n == TOTAL - 1);
	free(gone);
	CHECK_STR(contents(st, 411, "INBOX"), "10240:\\Deleted");
	free(uids);
	node_mailbox_fini(&mb);
}

int
main(void)
{
	struct node_store *st = NULL, *again = NULL;
	const char *err = NULL;

	conninfo = getenv("MC_STORE_CONNINFO");
	if (conninfo == NULL) {
		fprintf(stderr, "store_test: MC_STORE_CONNINFO is not set\n");
		return 2;
	}
	if (node_store_open(conninfo, &st, &err) < 0) {
		fprintf(stderr, "store_test: %s\n", err);
		return 1;
	}
	/* Migrations are idempotent: a second open finds nothing to do. */
	CHECK(node_store_open(conninfo, &again, &err) == 0);
	node_store_close(&again);
	CHECK(node_store_open("host=/nonexistent dbname=x connect_timeout=2", &again,
	                      &err) == -1 && again == NULL);
	test_basics(st);
	test_fencing(st);
	test_concurrent_uids(st);
	test_imap_list_select(st);
	test_imap_changes(st);
	test_imap_fetch(st);
	test_imap_set_flags(st);
	test_imap_expunge(st);
	test_imap_copy_move(st);
	test_imap_append(st);
	test_imap_mailboxes(st);
	test_imap_rename_inbox(st);
	test_imap_fencing(st);
	test_imap_large(st);
	node_store_close(&st);
	return mc_test_done();
}
