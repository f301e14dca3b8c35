/* Unit tests for the relay queue: envelope JSON (round trip, sanitising of
 * peer text, a table of hostile files, random mutations), and the spool
 * API in a temporary folder: commit and read back, recipient updates,
 * removal, scan order and repair, corrupt envelopes moved to corrupt/,
 * recovery of leftovers at open, the lock, the size cap, failed commits,
 * id uniqueness (100k ids, a restart with the clock set back) and
 * concurrent commits from several threads. Crash safety under kill -9 is
 * queue_crash_test.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "queue.h"
#include "test.h"

static char spool[256];

/* ---- helpers ---- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
spool_new(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(spool, sizeof(spool), "%s/relay_queue_test.XXXXXX",
	         tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(spool) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
}

static void
spool_rm(void)
{
	nftw(spool, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *
path_of(const char *sub, const char *name)
{
	return mc_asprintf("%s/%s/%s", spool, sub, name);
}

static size_t
count_dir(const char *sub)
{
	char *path = mc_asprintf("%s/%s", spool, sub);
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(path);

	free(path);
	if (d == NULL)
		return (size_t)-1;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static bool
exists(const char *sub, const char *id, const char *suffix)
{
	char *path = mc_asprintf("%s/%s/%s%s", spool, sub, id, suffix);
	struct stat st;
	bool ok = stat(path, &st) == 0;

	free(path);
	return ok;
}

static void
write_text(const char *sub, const char *name, const char *text)
{
	char *path = path_of(sub, name);
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	free(path);
}

static struct relay_queue *
open_ok(const struct relay_queue_settings *set)
{
	struct relay_queue *q = NULL;
	const char *error = NULL;

	if (relay_queue_open(spool, set, &q, &error) < 0) {
		fprintf(stderr, "open: %s\n", error);
		exit(1);
	}
	return q;
}

static struct relay_queue_envelope *
sample_envelope(const char *rcpt)
{
	struct relay_queue_envelope *env = relay_queue_envelope_new();
	struct relay_queue_rcpt *r;

	relay_queue_str_set(&env->sender, "alice@example.net");
	relay_queue_str_set(&env->client.helo, "mx.example.net");
	relay_queue_str_set(&env->client.addr, "203.0.113.7");
	relay_queue_str_set(&env->client.proto, "ESMTPS");
	r = relay_queue_envelope_add_rcpt(env, rcpt);
	relay_queue_str_set(&r->route, "node:7");
	return env;
}

/* Commit content as one message for rcpt; returns its id in id_r. */
static int
commit_text(struct relay_queue *q, const char *content, const char *rcpt,
            char id_r[RELAY_QUEUE_ID_SIZE])
{
	struct relay_queue_envelope *env = sample_envelope(rcpt);
	struct relay_queue_msg *msg;
	const char *error = NULL;
	int ret = -1;

	if (relay_queue_begin(q, &msg, &error) == 0 &&
	    relay_queue_append(msg, content, strlen(content), &error) == 0)
		ret = relay_queue_commit(&msg, env, &error);
	else
		relay_queue_abort(&msg);
	if (ret < 0)
		fprintf(stderr, "commit: %s\n", error);
	else
		memcpy(id_r, env->id, RELAY_QUEUE_ID_SIZE);
	relay_queue_envelope_free(&env);
	return ret;
}

/* ---- envelopes ---- */

static struct relay_queue_envelope *
full_envelope(void)
{
	struct relay_queue_envelope *env = sample_envelope("bob@example.com");
	struct relay_queue_rcpt *r;

	memcpy(env->id, "0123456789abcdefghj", RELAY_QUEUE_ID_SIZE);
	memset(env->sha256, 'a', 64);
	env->size = 1234;
	env->received = 1700000000;
	env->body = RELAY_QUEUE_BODY_8BITMIME;
	env->smtputf8 = true;
	env->dsn_ret = RELAY_QUEUE_RET_HDRS;
	relay_queue_str_set(&env->dsn_envid, "QQ314159");
	relay_queue_str_set(&env->client.tls, "TLSv1.3 TLS_AES_256_GCM_SHA384");
	env->rcpts[0].notify =
	        RELAY_QUEUE_NOTIFY_SUCCESS | RELAY_QUEUE_NOTIFY_DELAY;
	relay_queue_str_set(&env->rcpts[0].orcpt, "rfc822;bob@example.com");
	r = relay_queue_envelope_add_rcpt(env, "j\xc3\xb6rg@b\xc3\xbc"
	                                       "cher.example");
	r->state = RELAY_QUEUE_FAILED;
	r->attempts = 3;
	r->next_attempt = 1700000600;
	r->notify = RELAY_QUEUE_NOTIFY_NEVER;
	relay_queue_str_set(&r->last_error, "550 5.1.1 no such user");
	return env;
}

static void
test_envelope_roundtrip(void)
{
	struct relay_queue_envelope *env = full_envelope(), *back = NULL;
	const char *error = NULL;
	char *line = relay_queue_envelope_format(env, &error), *line2;

	CHECK(line != NULL);
	CHECK(line != NULL && line[strlen(line) - 1] == '\n');
	CHECK(relay_queue_envelope_parse(line, strlen(line), &back, &error) ==
	      0);
	if (back == NULL) {
		fprintf(stderr, "parse: %s\n%s", error, line);
		exit(1);
	}
	CHECK_STR(back->id, env->id);
	CHECK_STR(back->sha256, env->sha256);
	CHECK(back->size == 1234 && back->received == 1700000000);
	CHECK_STR(back->sender, "alice@example.net");
	CHECK_STR(back->client.helo, "mx.example.net");
	CHECK_STR(back->client.tls, "TLSv1.3 TLS_AES_256_GCM_SHA384");
	CHECK_STR(back->client.rdns, "");
	CHECK(back->body == RELAY_QUEUE_BODY_8BITMIME && back->smtputf8);
	CHECK(back->dsn_ret == RELAY_QUEUE_RET_HDRS);
	CHECK_STR(back->dsn_envid, "QQ314159");
	CHECK(back->rcpt_count == 2);
	CHECK_STR(back->rcpts[0].route, "node:7");
	CHECK(back->rcpts[0].notify ==
	      (RELAY_QUEUE_NOTIFY_SUCCESS | RELAY_QUEUE_NOTIFY_DELAY));
	CHECK_STR(back->rcpts[0].orcpt, "rfc822;bob@example.com");
	CHECK(back->rcpts[0].state == RELAY_QUEUE_PENDING);
	CHECK_STR(back->rcpts[1].address, "j\xc3\xb6rg@b\xc3\xbc"
	                                  "cher.example");
	CHECK(back->rcpts[1].state == RELAY_QUEUE_FAILED);
	CHECK(back->rcpts[1].attempts == 3);
	CHECK(back->rcpts[1].next_attempt == 1700000600);
	CHECK(back->rcpts[1].notify == RELAY_QUEUE_NOTIFY_NEVER);
	CHECK_STR(back->rcpts[1].last_error, "550 5.1.1 no such user");
	CHECK(relay_queue_envelope_pending(back) == 1);
	/* Formatting what was parsed gives the same bytes. */
	line2 = relay_queue_envelope_format(back, &error);
	CHECK_STR(line2, line);
	free(line);
	free(line2);
	relay_queue_envelope_free(&back);
	relay_queue_envelope_free(&env);
	CHECK(env == NULL);
	relay_queue_envelope_free(&env); /* NULL-safe */
}

/* Peer text is cleaned on write and reads back clean. */
static void
test_envelope_sanitize(void)
{
	struct relay_queue_envelope *env = full_envelope(), *back = NULL;
	const char *error = NULL;
	char long_text[2000], *line;

	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	long_text[RELAY_QUEUE_ERROR_MAX - 1] = '\xc3'; /* é cut in half */
	long_text[RELAY_QUEUE_ERROR_MAX] = '\xa9';
	relay_queue_str_set(&env->client.helo, "evil\r\nX-Injected: 1\xff");
	relay_queue_str_set(&env->rcpts[0].last_error, long_text);
	line = relay_queue_envelope_format(env, &error);
	CHECK(line != NULL && relay_queue_envelope_parse(line, strlen(line),
	                                                 &back, &error) == 0);
	if (back != NULL) {
		CHECK_STR(back->client.helo, "evil??X-Injected: 1?");
		CHECK(strlen(back->rcpts[0].last_error) ==
		      RELAY_QUEUE_ERROR_MAX - 1);
	}
	free(line);
	relay_queue_envelope_free(&back);
	relay_queue_envelope_free(&env);
}

/* Strict fields are refused on write, never silently changed. */
static void
test_envelope_write_checks(void)
{
	struct relay_queue_envelope *env;
	const char *error = NULL;
	char *line;
	int i;

	for (i = 0; i < 8; i++) {
		env = full_envelope();
		switch (i) {
		case 0:
			relay_queue_str_set(&env->rcpts[0].address, "a\nb@c");
			break;
		case 1:
			relay_queue_str_set(&env->rcpts[0].address, "");
			break;
		case 2:
			env->rcpts[0].notify = RELAY_QUEUE_NOTIFY_NEVER |
			                       RELAY_QUEUE_NOTIFY_SUCCESS;
			break;
		case 3:
			relay_queue_str_set(&env->sender, "bad\xff@x");
			break;
		case 4:
			env->id[3] = 'U';
			break;
		case 5:
			env->rcpts[0].attempts = RELAY_QUEUE_ATTEMPTS_MAX + 1;
			break;
		case 6:
			relay_queue_str_set(
			        &env->dsn_envid,
			        "0123456789012345678901234567890123"
			        "4567890123456789012345678901234567"
			        "890123456789012345678901234567890");
			break;
		case 7:
			env->rcpt_count = 0;
			break;
		}
		line = relay_queue_envelope_format(env, &error);
		CHECK(line == NULL);
		if (line != NULL)
			fprintf(stderr, "case %d accepted: %s", i, line);
		free(line);
		if (i == 7)
			env->rcpt_count = 2;
		relay_queue_envelope_free(&env);
	}
}

/* Replace the first occurrence of from in s (a heap string). */
static char *
subst(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);

	if (at == NULL) {
		fprintf(stderr, "subst: '%s' not in %s", from, s);
		exit(1);
	}
	return mc_asprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

static const struct {
	const char *from, *to;
} hostile[] = {
        {"{", "["},
        {"\"format\":1", "\"format\":2"},
        {"\"format\":1", "\"format\":\"1\""},
        {"\"format\":1,", ""},
        {"\"format\":1", "\"format\":1,\"format\":1"},
        {"\"format\":1", "\"format\":1,\"extra\":0"},
        {"\"id\":\"0123456789abcdefghj\"", "\"id\":\"0123456789abcdefgh\""},
        {"\"id\":\"0123456789abcdefghj\"", "\"id\":\"../../etc/passwdxxx\""},
        {"\"received\":1700000000", "\"received\":-1"},
        {"\"received\":1700000000", "\"received\":1.5"},
        {"\"size\":1234", "\"size\":99999999999999999999999"},
        {"\"sha256\":\"aaaa", "\"sha256\":\"AAAA"},
        {"\"body\":\"8bitmime\"", "\"body\":\"binarymime\""},
        {"\"smtputf8\":true", "\"smtputf8\":1"},
        {"\"helo\":\"mx.example.net\"", "\"helo\":\"mx\\r\\n\""},
        {"\"helo\":\"mx.example.net\"", "\"helo\":null"},
        {"\"client\":{", "\"client\":{\"x\":\"\","},
        {"\"dsn_ret\":\"hdrs\"", "\"dsn_ret\":\"HDRS\""},
        {"\"sender\":\"alice@example.net\"", "\"sender\":\"a\\u0000b\""},
        {"\"sender\":\"alice@example.net\"", "\"sender\":\"a\\u0085b\""},
        {"\"address\":\"bob@example.com\"", "\"address\":\"\""},
        {"\"address\":\"bob@example.com\"", "\"address\":7"},
        {"\"state\":\"pending\"", "\"state\":\"done\""},
        {"\"attempts\":0", "\"attempts\":-1"},
        {"\"attempts\":0", "\"attempts\":1000001"},
        {"\"next_attempt\":0", "\"next_attempt\":-5"},
        {"\"notify\":[\"success\",\"delay\"]", "\"notify\":[\"success\","
                                               "\"success\"]"},
        {"\"notify\":[\"success\",\"delay\"]", "\"notify\":[\"never\","
                                               "\"delay\"]"},
        {"\"notify\":[\"success\",\"delay\"]", "\"notify\":\"success\""},
        {"\"notify\":[\"success\",\"delay\"]", "\"notify\":[1]"},
        {"\"route\":\"node:7\"", "\"route\":\"node:7\",\"bogus\":1"},
        {"\"route\":\"node:7\",", ""},
        {"]}\n", "]"},
        {"]}\n", "]}}"},
        {"]}\n", "]}\n{}"},
};

static void
test_envelope_hostile(void)
{
	struct relay_queue_envelope *env = full_envelope(), *back = NULL;
	const char *error = NULL;
	char *line = relay_queue_envelope_format(env, &error), *bad;
	size_t i;

	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		bad = subst(line, hostile[i].from, hostile[i].to);
		error = NULL;
		back = NULL;
		CHECK(relay_queue_envelope_parse(bad, strlen(bad), &back,
		                                 &error) < 0);
		CHECK(back == NULL && error != NULL);
		if (back != NULL)
			fprintf(stderr, "hostile[%zu] accepted: %s", i, bad);
		relay_queue_envelope_free(&back);
		free(bad);
	}
	/* No recipients. */
	bad = mc_asprintf("%.*s[]}",
	                  (int)(strstr(line, "\"rcpts\":[") - line +
	                        strlen("\"rcpts\":")),
	                  line);
	back = NULL;
	CHECK(relay_queue_envelope_parse(bad, strlen(bad), &back, &error) < 0);
	CHECK(error != NULL && strstr(error, "rcpts") != NULL);
	free(bad);
	/* Every truncation fails cleanly. */
	for (i = 0; i + 1 < strlen(line); i++) {
		back = NULL;
		CHECK(relay_queue_envelope_parse(line, i, &back, &error) < 0);
		relay_queue_envelope_free(&back);
	}
	free(line);
	relay_queue_envelope_free(&env);
}

/* Random byte mutations never crash the parser, and whatever it accepts
 * can be written back. */
static void
test_envelope_mutations(void)
{
	struct relay_queue_envelope *env = full_envelope(), *back;
	const char *error = NULL;
	char *line = relay_queue_envelope_format(env, &error), *copy, *again;
	size_t len = strlen(line), accepted = 0;
	unsigned seed = 12345;
	int round, k;

	copy = mc_malloc(len);
	for (round = 0; round < 3000; round++) {
		memcpy(copy, line, len);
		for (k = 0; k < 1 + round % 4; k++) {
			seed = seed * 1103515245 + 12345;
			copy[(seed >> 8) % len] = (char)(seed >> 20);
		}
		back = NULL;
		if (relay_queue_envelope_parse(copy, len, &back, &error) == 0) {
			accepted++;
			again = relay_queue_envelope_format(back, &error);
			CHECK(again != NULL);
			free(again);
		}
		relay_queue_envelope_free(&back);
	}
	CHECK(accepted < 3000);
	free(copy);
	free(line);
	relay_queue_envelope_free(&env);
}

/* Format 2 carries "outbound"; format 1 (every inbound envelope, and
 * every file written before egress) still loads, as not outbound. */
static void
test_envelope_outbound(void)
{
	struct relay_queue_envelope *env = full_envelope(), *back = NULL;
	const char *error = NULL;
	char *line = relay_queue_envelope_format(env, &error), *line2, *bad;

	CHECK(line != NULL && strstr(line, "\"format\":1,") != NULL &&
	      strstr(line, "outbound") == NULL);
	CHECK(relay_queue_envelope_parse(line, strlen(line), &back, &error) == 0);
	CHECK(back != NULL && !back->outbound);
	relay_queue_envelope_free(&back);
	env->outbound = true;
	line2 = relay_queue_envelope_format(env, &error);
	CHECK(line2 != NULL && strstr(line2, "\"format\":2,") != NULL &&
	      strstr(line2, "\"outbound\":true") != NULL);
	CHECK(relay_queue_envelope_parse(line2, strlen(line2), &back, &error) ==
	      0);
	CHECK(back != NULL && back->outbound);
	relay_queue_envelope_free(&back);
	/* outbound in format 1, missing or not a boolean in format 2 */
	bad = subst(line2, "\"format\":2", "\"format\":1");
	CHECK(relay_queue_envelope_parse(bad, strlen(bad), &back, &error) < 0);
	free(bad);
	bad = subst(line2, ",\"outbound\":true", "");
	CHECK(relay_queue_envelope_parse(bad, strlen(bad), &back, &error) < 0);
	free(bad);
	bad = subst(line2, "\"outbound\":true", "\"outbound\":1");
	CHECK(relay_queue_envelope_parse(bad, strlen(bad), &back, &error) < 0);
	free(bad);
	bad = subst(line2, "\"format\":2", "\"format\":3");
	CHECK(relay_queue_envelope_parse(bad, strlen(bad), &back, &error) < 0);
	free(bad);
	free(line);
	free(line2);
	relay_queue_envelope_free(&env);
}

/* ---- the spool ---- */

static void
test_ids(void)
{
	struct relay_queue *q = open_ok(NULL);
	char prev[RELAY_QUEUE_ID_SIZE] = "", id[RELAY_QUEUE_ID_SIZE];
	const char *error = NULL;
	bool ok = true;
	int i;

	for (i = 0; i < 100000; i++) {
		if (relay_queue_id_new(q, id, &error) < 0 ||
		    !relay_queue_id_valid(id) || strcmp(prev, id) >= 0)
			ok = false;
		memcpy(prev, id, sizeof(id));
	}
	CHECK(ok);
	CHECK(!relay_queue_id_valid("0123456789abcdefgh"));
	CHECK(!relay_queue_id_valid("0123456789abcdefghjk"));
	CHECK(!relay_queue_id_valid("0123456789abcdefghU"));
	CHECK(!relay_queue_id_valid("0123456789abcdefghu"));
	CHECK(!relay_queue_id_valid("0123456789abcdefgh/"));
	CHECK(!relay_queue_id_valid(""));
	CHECK(relay_queue_id_valid("0123456789abcdefghz"));
	relay_queue_close(&q);
	CHECK(q == NULL);
	relay_queue_close(&q); /* NULL-safe */
}

static int64_t clock_value;

static int64_t
test_clock(void)
{
	return clock_value;
}

/* After a restart with the clock an hour behind, new ids still sort
 * after every id in the spool. */
static void
test_ids_restart(void)
{
	struct relay_queue_settings set = {.clock_us = test_clock};
	char first[RELAY_QUEUE_ID_SIZE], id[RELAY_QUEUE_ID_SIZE];
	char last[RELAY_QUEUE_ID_SIZE], committed[RELAY_QUEUE_ID_SIZE];
	struct relay_queue *q;
	const char *error = NULL;
	bool ok = true;
	int i;

	clock_value = INT64_C(1700000000000000);
	q = open_ok(&set);
	CHECK(commit_text(q, "first\r\n", "a@example.com", first) == 0);
	memcpy(committed, first, sizeof(first));
	for (i = 0; i < 1000; i++)
		ok = ok && relay_queue_id_new(q, last, &error) == 0;
	relay_queue_close(&q);
	clock_value -= INT64_C(3600000000);
	q = open_ok(&set);
	/* Only the committed message survives the restart to seed the
	 * clock: ids issued but never used are not on disk. */
	for (i = 0; i < 1000; i++) {
		ok = ok && relay_queue_id_new(q, id, &error) == 0 &&
		     strcmp(id, first) > 0;
		memcpy(first, id, sizeof(id));
	}
	CHECK(ok);
	CHECK(relay_queue_remove(q, committed, &error) == 0);
	relay_queue_close(&q);
}

static void
test_commit_roundtrip(void)
{
	struct relay_queue *q = open_ok(NULL);
	struct relay_queue_envelope *env = sample_envelope("bob@example.com");
	struct relay_queue_envelope *back = NULL;
	struct relay_queue_msg *msg = NULL;
	size_t big_len = 200000, i, got = 0;
	char *big = mc_malloc(big_len), *readback = mc_malloc(big_len + 10);
	char id[RELAY_QUEUE_ID_SIZE];
	const char *error = NULL;
	ssize_t n;
	int fd = -1;

	for (i = 0; i < big_len; i++)
		big[i] = (char)(i * 7 + i / 251);
	CHECK(relay_queue_begin(q, &msg, &error) == 0);
	memcpy(id, relay_queue_msg_id(msg), sizeof(id));
	CHECK(exists("incoming", id, ".msg"));
	/* Small appends, one larger than the buffer, and an empty one. */
	CHECK(relay_queue_append(msg, big, 10, &error) == 0);
	CHECK(relay_queue_append(msg, big + 10, 0, &error) == 0);
	CHECK(relay_queue_append(msg, big + 10, 100000, &error) == 0);
	CHECK(relay_queue_append(msg, big + 100010, big_len - 100010, &error) ==
	      0);
	CHECK(relay_queue_commit(&msg, env, &error) == 0);
	CHECK(msg == NULL);
	CHECK_STR(env->id, id);
	CHECK(env->size == big_len);
	CHECK(env->received > 1600000000);
	CHECK(count_dir("incoming") == 0);
	CHECK(exists("queue", id, ".msg") && exists("queue", id, ".env"));
	CHECK(relay_queue_load(q, id, &back, &error) == 0);
	if (back != NULL) {
		CHECK_STR(back->sha256, env->sha256);
		CHECK(back->size == big_len);
		CHECK_STR(back->rcpts[0].address, "bob@example.com");
		CHECK(relay_queue_verify(q, back, &error) == 0);
	}
	CHECK(relay_queue_content_open(q, id, &fd, &error) == 0);
	while (fd >= 0 && got < big_len + 10 &&
	       (n = read(fd, readback + got, big_len + 10 - got)) > 0)
		got += (size_t)n;
	CHECK(got == big_len && memcmp(big, readback, big_len) == 0);
	if (fd >= 0)
		close(fd);
	/* verify notices a content that changed behind the queue's back */
	if (back != NULL) {
		back->sha256[0] = back->sha256[0] == '0' ? '1' : '0';
		CHECK(relay_queue_verify(q, back, &error) < 0);
	}
	CHECK(relay_queue_load(q, "0123456789abcdefghj", &back, &error) < 0 &&
	      errno == ENOENT);
	CHECK(relay_queue_load(q, "../queue/x", &back, &error) < 0 &&
	      errno == EINVAL);
	CHECK(relay_queue_content_open(q, "nope", &fd, &error) < 0);
	relay_queue_envelope_free(&back);
	relay_queue_envelope_free(&env);
	free(big);
	free(readback);
	relay_queue_close(&q);
}

/* Reading back a message being received, and putting bytes in front of
 * it (the egress's DKIM-Signature fields): the committed content and its
 * SHA-256 are those of the whole, an fd opened before still reads the
 * old bytes, and the size cap counts the prepended bytes. */
static void
test_prepend(void)
{
	struct relay_queue_settings set = {.max_message_size = 300000};
	struct relay_queue *q = open_ok(&set);
	struct relay_queue_envelope *env = sample_envelope("bob@example.com");
	struct relay_queue_envelope *back = NULL;
	struct relay_queue_msg *msg = NULL;
	size_t big_len = 200000, got = 0;
	char *big = mc_malloc(big_len), *readback = mc_malloc(big_len + 100);
	static const char head[] = "DKIM-Signature: v=1; a=x\r\n";
	char id[RELAY_QUEUE_ID_SIZE];
	const char *error = NULL;
	ssize_t n;
	int fd = -1, fd2 = -1;

	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)('a' + i % 26);
	CHECK(relay_queue_begin(q, &msg, &error) == 0);
	memcpy(id, relay_queue_msg_id(msg), sizeof(id));
	CHECK(relay_queue_append(msg, big, 1000, &error) == 0);
	CHECK(relay_queue_msg_content_open(msg, &fd, &error) == 0);
	CHECK(fd >= 0 && pread(fd, readback, 2000, 0) == 1000 &&
	      memcmp(readback, big, 1000) == 0);
	CHECK(relay_queue_append(msg, big + 1000, big_len - 1000, &error) == 0);
	CHECK(relay_queue_msg_prepend(msg, head, strlen(head), &error) == 0);
	/* the old fd still reads the content without the head */
	CHECK(fd >= 0 && pread(fd, readback, 100, 0) == 100 &&
	      memcmp(readback, big, 100) == 0);
	CHECK(relay_queue_msg_content_open(msg, &fd2, &error) == 0);
	while (fd2 >= 0 && got < big_len + 100 &&
	       (n = read(fd2, readback + got, big_len + 100 - got)) > 0)
		got += (size_t)n;
	CHECK(got == big_len + strlen(head) &&
	      memcmp(readback, head, strlen(head)) == 0 &&
	      memcmp(readback + strlen(head), big, big_len) == 0);
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	CHECK(relay_queue_commit(&msg, env, &error) == 0);
	CHECK(env->size == big_len + strlen(head));
	CHECK(count_dir("incoming") == 0);
	CHECK(relay_queue_load(q, id, &back, &error) == 0);
	CHECK(back != NULL && relay_queue_verify(q, back, &error) == 0);
	relay_queue_envelope_free(&back);
	CHECK(relay_queue_remove(q, id, &error) == 0);
	/* over the cap: the message can only be aborted */
	CHECK(relay_queue_begin(q, &msg, &error) == 0);
	CHECK(relay_queue_append(msg, big, big_len, &error) == 0);
	CHECK(relay_queue_append(msg, big, 99000, &error) == 0);
	CHECK(relay_queue_msg_prepend(msg, big, 2000, &error) < 0);
	CHECK(relay_queue_msg_too_big(msg));
	CHECK(relay_queue_msg_content_open(msg, &fd, &error) < 0);
	relay_queue_abort(&msg);
	CHECK(count_dir("incoming") == 0);
	relay_queue_envelope_free(&env);
	free(big);
	free(readback);
	relay_queue_close(&q);
}

static void
test_update_remove(void)
{
	struct relay_queue *q = open_ok(NULL);
	struct relay_queue_envelope *env = NULL, *back = NULL;
	char id[RELAY_QUEUE_ID_SIZE];
	const char *error = NULL;

	CHECK(commit_text(q, "Subject: x\r\n\r\nhi\r\n", "c@example.com", id) ==
	      0);
	CHECK(relay_queue_load(q, id, &env, &error) == 0);
	if (env == NULL)
		return;
	relay_queue_envelope_add_rcpt(env, "d@example.com");
	env->rcpts[0].attempts = 2;
	env->rcpts[0].next_attempt = 1800000000;
	relay_queue_str_set(&env->rcpts[0].last_error, "451 4.3.0 try later");
	env->rcpts[1].state = RELAY_QUEUE_DELIVERED;
	CHECK(relay_queue_update(q, env, &error) == 0);
	CHECK(!exists("queue", id, ".env.tmp"));
	CHECK(relay_queue_load(q, id, &back, &error) == 0);
	if (back != NULL) {
		CHECK(back->rcpt_count == 2);
		CHECK(back->rcpts[0].attempts == 2);
		CHECK(back->rcpts[0].next_attempt == 1800000000);
		CHECK_STR(back->rcpts[0].last_error, "451 4.3.0 try later");
		CHECK(back->rcpts[1].state == RELAY_QUEUE_DELIVERED);
		CHECK(relay_queue_envelope_pending(back) == 1);
	}
	relay_queue_envelope_free(&back);
	/* An invalid envelope is refused and the file keeps the old one. */
	relay_queue_str_set(&env->rcpts[0].route, "bad\nroute");
	CHECK(relay_queue_update(q, env, &error) < 0);
	CHECK(relay_queue_load(q, id, &back, &error) == 0);
	CHECK(back != NULL && strcmp(back->rcpts[0].route, "node:7") == 0);
	relay_queue_envelope_free(&back);
	relay_queue_str_set(&env->rcpts[0].route, "node:8");

	CHECK(relay_queue_remove(q, id, &error) == 0);
	CHECK(!exists("queue", id, ".env") && !exists("queue", id, ".msg"));
	CHECK(relay_queue_remove(q, id, &error) < 0 && errno == ENOENT);
	CHECK(relay_queue_load(q, id, &back, &error) < 0 && errno == ENOENT);
	/* Updating a removed message must not resurrect a bare envelope. */
	CHECK(relay_queue_update(q, env, &error) < 0);
	CHECK(!exists("queue", id, ".env"));
	CHECK(relay_queue_remove(q, "../lock", &error) < 0 && errno == EINVAL);
	relay_queue_envelope_free(&env);
	relay_queue_close(&q);
}

struct collect {
	size_t n;
	char ids[16][RELAY_QUEUE_ID_SIZE];
};

static void
collect_cb(struct relay_queue_envelope *env, void *ctx)
{
	struct collect *c = ctx;

	if (c->n < 16)
		memcpy(c->ids[c->n++], env->id, RELAY_QUEUE_ID_SIZE);
	relay_queue_envelope_free(&env);
}

/* Scan walks in id order and finishes removals; list only reads. */
static void
test_scan_order(void)
{
	struct relay_queue *q = open_ok(NULL);
	struct relay_queue_scan_stats stats;
	struct relay_queue_envelope *env = NULL;
	char ids[5][RELAY_QUEUE_ID_SIZE];
	struct collect c = {0};
	const char *error = NULL;
	int i;

	for (i = 0; i < 5; i++)
		CHECK(commit_text(q, "x\r\n", "e@example.com", ids[i]) == 0);
	CHECK(relay_queue_load(q, ids[2], &env, &error) == 0);
	if (env != NULL) {
		env->rcpts[0].state = RELAY_QUEUE_DELIVERED;
		CHECK(relay_queue_update(q, env, &error) == 0);
	}
	relay_queue_envelope_free(&env);
	CHECK(relay_queue_list(q, collect_cb, &c, &error) == 0);
	CHECK(c.n == 5);
	relay_queue_close(&q);
	q = open_ok(NULL);
	memset(&c, 0, sizeof(c));
	CHECK(relay_queue_scan(q, collect_cb, &c, &stats, &error) == 0);
	CHECK(stats.loaded == 4 && stats.finished == 1 && stats.corrupt == 0);
	CHECK(c.n == 4);
	CHECK_STR(c.ids[0], ids[0]);
	CHECK_STR(c.ids[1], ids[1]);
	CHECK_STR(c.ids[2], ids[3]);
	CHECK_STR(c.ids[3], ids[4]);
	CHECK(!exists("queue", ids[2], ".env"));
	for (i = 0; i < 5; i++)
		relay_queue_remove(q, ids[i], &error);
	relay_queue_close(&q);
}

/* Envelopes that fail validation, or whose content is missing or of the
 * wrong size, go to corrupt/ with their content; the rest loads. */
static void
test_corrupt(void)
{
	struct relay_queue *q = open_ok(NULL);
	struct relay_queue_scan_stats stats;
	struct relay_queue_envelope *env = NULL;
	char ids[5][RELAY_QUEUE_ID_SIZE], name[64], *path;
	struct collect c = {0};
	const char *error = NULL;
	int i;

	for (i = 0; i < 5; i++)
		CHECK(commit_text(q, "body\r\n", "f@example.com", ids[i]) == 0);
	snprintf(name, sizeof(name), "%s.env", ids[0]);
	write_text("queue", name, "{\"format\":1,\"id\":"); /* torn */
	snprintf(name, sizeof(name), "%s.msg", ids[1]);
	path = path_of("queue", name);
	CHECK(unlink(path) == 0); /* content missing */
	free(path);
	snprintf(name, sizeof(name), "%s.msg", ids[2]);
	write_text("queue", name, "bod"); /* content truncated */
	/* a valid envelope under another message's name */
	CHECK(relay_queue_load(q, ids[4], &env, &error) == 0);
	if (env != NULL) {
		char *line = relay_queue_envelope_format(env, &error);

		snprintf(name, sizeof(name), "%s.env", ids[3]);
		write_text("queue", name, line);
		free(line);
	}
	relay_queue_envelope_free(&env);
	CHECK(relay_queue_load(q, ids[0], &env, &error) < 0 && errno == EINVAL);
	CHECK(relay_queue_load(q, ids[1], &env, &error) < 0 && errno == EINVAL);
	CHECK(relay_queue_list(q, collect_cb, &c, &error) == 0 && c.n == 1);
	CHECK(count_dir("corrupt") == 0); /* list repairs nothing */
	memset(&c, 0, sizeof(c));
	CHECK(relay_queue_scan(q, collect_cb, &c, &stats, &error) == 0);
	CHECK(stats.loaded == 1 && stats.corrupt == 4);
	CHECK(c.n == 1 && strcmp(c.ids[0], ids[4]) == 0);
	CHECK(count_dir("corrupt") == 7); /* 4 envelopes, 3 contents */
	CHECK(count_dir("queue") == 2);
	for (i = 0; i < 4; i++)
		CHECK(exists("corrupt", ids[i], ".env"));
	CHECK(relay_queue_remove(q, ids[4], &error) == 0);
	relay_queue_close(&q);
	/* Ids of quarantined messages are not reused either. */
	clock_value = 0;
	{
		struct relay_queue_settings set = {.clock_us = test_clock};
		char id[RELAY_QUEUE_ID_SIZE];

		q = open_ok(&set);
		CHECK(relay_queue_id_new(q, id, &error) == 0 &&
		      strcmp(id, ids[3]) > 0);
		relay_queue_close(&q);
	}
}

/* What a crash leaves behind is cleaned at open; files that are not ours
 * are moved aside, never deleted. */
static void
test_recovery(void)
{
	struct relay_queue *q = open_ok(NULL);
	struct relay_queue_msg *msg = NULL;
	char id[RELAY_QUEUE_ID_SIZE], keep[RELAY_QUEUE_ID_SIZE], name[64];
	const char *error = NULL;

	CHECK(commit_text(q, "keep\r\n", "g@example.com", keep) == 0);
	CHECK(relay_queue_begin(q, &msg, &error) == 0);
	memcpy(id, relay_queue_msg_id(msg), sizeof(id));
	relay_queue_abort(&msg);
	/* What a crash mid-commit and mid-update leaves behind. */
	snprintf(name, sizeof(name), "%s.msg", id);
	write_text("incoming", name, "partial");
	snprintf(name, sizeof(name), "%s.env.tmp", id);
	write_text("incoming", name, "{");
	snprintf(name, sizeof(name), "%s.msg", id);
	write_text("queue", name, "content whose envelope never came");
	snprintf(name, sizeof(name), "%s.env.tmp", keep);
	write_text("queue", name, "{\"half\":");
	write_text("queue", "README", "operator notes");
	relay_queue_close(&q);

	q = open_ok(NULL);
	CHECK(count_dir("incoming") == 0);
	CHECK(!exists("queue", id, ".msg"));
	CHECK(!exists("queue", keep, ".env.tmp"));
	CHECK(exists("queue", keep, ".env") && exists("queue", keep, ".msg"));
	CHECK(exists("corrupt", "README", ""));
	CHECK(count_dir("queue") == 2);
	CHECK(relay_queue_remove(q, keep, &error) == 0);
	relay_queue_close(&q);
}

static void
test_lock(void)
{
	struct relay_queue *q = open_ok(NULL), *q2 = NULL;
	const char *error = NULL;
	char pid[32];

	snprintf(pid, sizeof(pid), "(pid %ld)", (long)getpid());
	CHECK(relay_queue_open(spool, NULL, &q2, &error) < 0);
	CHECK(q2 == NULL);
	CHECK(error != NULL && strstr(error, "in use") != NULL &&
	      strstr(error, pid) != NULL);
	relay_queue_close(&q);
	CHECK(relay_queue_open(spool, NULL, &q2, &error) == 0);
	relay_queue_close(&q2);
	/* A parent that does not exist is an error, not a crash. */
	CHECK(relay_queue_open("/nonexistent/dir/spool", NULL, &q2, &error) <
	      0);
}

static void
test_size_cap(void)
{
	struct relay_queue_settings set = {.max_message_size = 1000};
	struct relay_queue *q = open_ok(&set);
	struct relay_queue_envelope *env = sample_envelope("h@example.com");
	struct relay_queue_msg *msg = NULL;
	char buf[1000];
	const char *error = NULL;

	memset(buf, 'm', sizeof(buf));
	CHECK(relay_queue_begin(q, &msg, &error) == 0);
	CHECK(relay_queue_append(msg, buf, 600, &error) == 0);
	CHECK(!relay_queue_msg_too_big(msg));
	CHECK(relay_queue_append(msg, buf, 401, &error) < 0);
	CHECK(relay_queue_msg_too_big(msg));
	CHECK(relay_queue_append(msg, buf, 1, &error) < 0);
	CHECK(relay_queue_commit(&msg, env, &error) < 0);
	CHECK(msg == NULL);
	CHECK(count_dir("incoming") == 0 && count_dir("queue") == 0);
	/* Exactly the cap is fine. */
	CHECK(relay_queue_begin(q, &msg, &error) == 0);
	CHECK(relay_queue_append(msg, buf, 600, &error) == 0);
	CHECK(relay_queue_append(msg, buf, 400, &error) == 0);
	CHECK(relay_queue_commit(&msg, env, &error) == 0);
	CHECK(env->size == 1000);
	CHECK(relay_queue_remove(q, env->id, &error) == 0);
	relay_queue_envelope_free(&env);
	relay_queue_close(&q);
}

/* A failed commit leaves nothing behind and reports why. */
static void
test_commit_failures(void)
{
	struct relay_queue *q = open_ok(NULL);
	struct relay_queue_envelope *env = relay_queue_envelope_new();
	struct relay_queue_msg *msg = NULL;
	const char *error = NULL;
	char name[64], *path;

	/* no recipient */
	CHECK(relay_queue_begin(q, &msg, &error) == 0);
	CHECK(relay_queue_append(msg, "x", 1, &error) == 0);
	CHECK(relay_queue_commit(&msg, env, &error) < 0);
	CHECK(error != NULL && strstr(error, "rcpts") != NULL);
	CHECK(count_dir("incoming") == 0 && count_dir("queue") == 0);
	/* content vanished under us: the rename fails */
	relay_queue_envelope_add_rcpt(env, "i@example.com");
	CHECK(relay_queue_begin(q, &msg, &error) == 0);
	snprintf(name, sizeof(name), "%s.msg", relay_queue_msg_id(msg));
	path = path_of("incoming", name);
	CHECK(unlink(path) == 0);
	free(path);
	CHECK(relay_queue_commit(&msg, env, &error) < 0);
	CHECK(count_dir("incoming") == 0 && count_dir("queue") == 0);
	/* abort */
	CHECK(relay_queue_begin(q, &msg, &error) == 0);
	CHECK(relay_queue_append(msg, "y", 1, &error) == 0);
	relay_queue_abort(&msg);
	CHECK(msg == NULL);
	relay_queue_abort(&msg); /* NULL-safe */
	CHECK(count_dir("incoming") == 0);
	relay_queue_envelope_free(&env);
	relay_queue_close(&q);
}

#define THREADS 4
#define PER_THREAD 25

struct worker {
	struct relay_queue *q;
	int failures;
	char ids[PER_THREAD][RELAY_QUEUE_ID_SIZE];
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	char body[64];
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		snprintf(body, sizeof(body), "message %d from %p\r\n", i, arg);
		if (commit_text(w->q, body, "j@example.com", w->ids[i]) < 0)
			w->failures++;
	}
	return NULL;
}

static void
test_threads(void)
{
	struct relay_queue *q = open_ok(NULL);
	struct worker w[THREADS];
	pthread_t th[THREADS];
	struct relay_queue_scan_stats stats;
	struct collect c = {0};
	const char *error = NULL;
	int i, j;

	for (i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].q = q;
		pthread_create(&th[i], NULL, worker_run, &w[i]);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].failures == 0);
	}
	CHECK(count_dir("queue") == 2 * THREADS * PER_THREAD);
	relay_queue_close(&q);
	q = open_ok(NULL);
	CHECK(relay_queue_scan(q, collect_cb, &c, &stats, &error) == 0);
	CHECK(stats.loaded == THREADS * PER_THREAD && stats.corrupt == 0);
	for (i = 0; i < THREADS; i++)
		for (j = 0; j < PER_THREAD; j++)
			CHECK(relay_queue_remove(q, w[i].ids[j], &error) == 0);
	CHECK(count_dir("queue") == 0);
	relay_queue_close(&q);
}

int
main(void)
{
	mc_log_init("relay_queue_test", MC_LOG_ERROR + 1);
	test_envelope_roundtrip();
	test_envelope_sanitize();
	test_envelope_write_checks();
	test_envelope_hostile();
	test_envelope_mutations();
	test_envelope_outbound();
	spool_new();
	test_ids();
	test_ids_restart();
	test_commit_roundtrip();
	test_prepend();
	spool_rm();
	spool_new();
	test_update_remove();
	test_scan_order();
	test_corrupt();
	spool_rm();
	spool_new();
	test_recovery();
	test_lock();
	test_size_cap();
	test_commit_failures();
	test_threads();
	spool_rm();
	return mc_test_done();
}
