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
	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_OK && uid == 1);
	d.delivery_id = "q2/a@x.test";
	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_OK && uid == 2);
	/* The same delivery again (a relay retrying after a crash): the first
	 * UID comes back and nothing is added. */
	d.delivery_id = "q1/a@x.test";
	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_DUPLICATE && uid == 1);
	CHECK(node_store_mailbox_stats(st, 101, "INBOX", &count, &bytes, &err) == 0);
	CHECK(count == 2 && bytes == 2468);
	/* An account delivered to first gets its mailboxes on the way. */
	d = delivery(102, 3, 1, NULL);
	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_OK && uid == 1);
	CHECK(node_store_mailbox_stats(st, 102, "Archive", &count, &bytes, &err) == 0);
	d.mailbox = "No Such Box";
	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_TEMPFAIL);
	CHECK(err != NULL && strstr(err, "No Such Box") != NULL);
}

static void
test_fencing(struct node_store *st)
{
	struct node_delivery d = delivery(201, 7, 1, NULL);
	uint64_t uid = 0, count = 0, bytes = 0;
	const char *err = NULL;

	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_OK);
	/* A new owner claims shard 7 with epoch 2... */
	d.epoch = 2;
	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_OK);
	/* ...so the old owner, still believing in epoch 1, cannot write. */
	d.epoch = 1;
	err = NULL;
	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_FENCED);
	CHECK(err != NULL && strstr(err, "shard 7") != NULL);
	CHECK(node_store_ensure_mailboxes(st, 202, 7, 1, &err) == NODE_STORE_FENCED);
	CHECK(node_store_mailbox_stats(st, 201, "INBOX", &count, &bytes, &err) == 0 &&
	      count == 2);
	/* Other shards are not affected. */
	d = delivery(203, 8, 1, NULL);
	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_OK);
	/* The fenced store connection is still usable. */
	d = delivery(201, 7, 2, NULL);
	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_OK && uid == 3);
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
		if (node_store_deliver(st, &d, &uid, &err) != NODE_STORE_OK) {
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
	CHECK(node_store_deliver(st, &d, &uid, &err) == NODE_STORE_OK &&
	      uid == WRITERS * PER_WRITER + 1);
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
	node_store_close(&st);
	return mc_test_done();
}
