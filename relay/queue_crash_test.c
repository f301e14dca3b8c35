/* Crash test for the relay queue: a child process commits, updates and
 * removes messages in a loop and reports each operation on a pipe only
 * after the call returned (the moment the relay would answer 250); the
 * parent kills it with SIGKILL at a random moment, 30 times. After each
 * kill the parent checks the spool as the crash left it (every envelope
 * in queue/ has complete content), reopens it (recovery) and checks:
 * incoming/ is empty, queue/ holds only complete pairs, every
 * acknowledged message is there with exactly the bytes written (SHA-256
 * of the regenerated content), no acknowledged removal came back, and
 * recipient updates are never lost or ahead by more than the one in
 * flight.
 *
 * A kill -9 tests process crashes: the page cache survives, so this proves
 * the order of renames and unlinks, not the fsyncs (see docs/queue.md for
 * what the fsyncs add against power loss). */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hash.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "test.h"

#define ROUNDS 30
#define MAX_LIVE 120    /* the child removes more once the queue holds this */
#define DONE_ATTEMPTS 3 /* an update at this count delivers everything */

static char spool[256];

/* One operation the child completed; written with one write() of less
 * than PIPE_BUF bytes, so a kill never leaves half a record. */
struct record {
	/* 'O' opened, 'C' committed, 'U' updated, 'R' removed, and 'r'
	 * about to remove (a removal may complete and be killed before its
	 * 'R'; an unacknowledged commit or update shows in the files). */
	char op;
	char id[RELAY_QUEUE_ID_SIZE];
	uint32_t attempts;
};

/* What the parent knows of a message from acknowledged operations. */
struct known {
	char id[RELAY_QUEUE_ID_SIZE];
	bool removed;      /* removal acknowledged */
	bool removing;     /* removal started: absence is no loss */
	uint32_t attempts; /* highest acknowledged update */
	bool seen;         /* found by this round's scan */
};

/* ---- deterministic content: the bytes follow from the id ---- */

static uint32_t
id_seed(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h != 0 ? h : 1;
}

static size_t
content_len(const char *id)
{
	uint32_t s = id_seed(id);

	return (s % 16 == 0) ? 70000 + s % 150000 : s % 12000;
}

/* Fill buf with the content of message id (content_len bytes). */
static void
content_fill(const char *id, unsigned char *buf, size_t len)
{
	uint32_t x = id_seed(id);
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
}

static void
content_sha256(const char *id, char hex[65])
{
	size_t len = content_len(id), i;
	unsigned char *buf = mc_malloc(len), md[32];

	content_fill(id, buf, len);
	EVP_Digest(buf, len, md, NULL, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	free(buf);
}

/* ---- the child ---- */

struct child {
	struct relay_queue *q;
	int fd;
	unsigned seed;
	size_t live_count;
	char live[MAX_LIVE * 2][RELAY_QUEUE_ID_SIZE];
};

static void
child_send(struct child *c, char op, const char *id, uint32_t attempts)
{
	struct record r = {.op = op, .attempts = attempts};

	if (id != NULL)
		memcpy(r.id, id, RELAY_QUEUE_ID_SIZE);
	if (write(c->fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(4);
}

static void
child_fail(const char *what, const char *error)
{
	fprintf(stderr, "child: %s: %s\n", what, error);
	_exit(3);
}

static void
child_live_cb(struct relay_queue_envelope *env, void *ctx)
{
	struct child *c = ctx;

	if (c->live_count < MAX_LIVE * 2)
		memcpy(c->live[c->live_count++], env->id, RELAY_QUEUE_ID_SIZE);
	relay_queue_envelope_free(&env);
}

static void
child_commit(struct child *c)
{
	struct relay_queue_envelope *env = relay_queue_envelope_new();
	struct relay_queue_msg *msg;
	const char *error = NULL;
	unsigned char *buf;
	size_t len, off = 0, chunk;
	int i, n = 1 + rand_r(&c->seed) % 3;

	if (relay_queue_begin(c->q, &msg, &error) < 0)
		child_fail("begin", error);
	len = content_len(relay_queue_msg_id(msg));
	buf = mc_malloc(len + 1);
	content_fill(relay_queue_msg_id(msg), buf, len);
	while (off < len) {
		chunk = 1 + (size_t)rand_r(&c->seed) % 9000;
		chunk = chunk > len - off ? len - off : chunk;
		if (relay_queue_append(msg, buf + off, chunk, &error) < 0)
			child_fail("append", error);
		off += chunk;
	}
	free(buf);
	relay_queue_str_set(&env->sender, "sender@example.net");
	for (i = 0; i < n; i++) {
		char addr[32];

		snprintf(addr, sizeof(addr), "rcpt%d@example.com", i);
		relay_queue_envelope_add_rcpt(env, addr);
	}
	if (relay_queue_commit(&msg, env, &error) < 0)
		child_fail("commit", error);
	child_send(c, 'C', env->id, 0);
	if (c->live_count < MAX_LIVE * 2)
		memcpy(c->live[c->live_count++], env->id, RELAY_QUEUE_ID_SIZE);
	relay_queue_envelope_free(&env);
}

static void
child_remove(struct child *c, size_t i)
{
	const char *error = NULL;

	child_send(c, 'r', c->live[i], 0);
	if (relay_queue_remove(c->q, c->live[i], &error) < 0)
		child_fail("remove", error);
	child_send(c, 'R', c->live[i], 0);
	memcpy(c->live[i], c->live[--c->live_count], RELAY_QUEUE_ID_SIZE);
}

/* One delivery attempt: attempts + 1, and at DONE_ATTEMPTS every
 * recipient delivered and the message removed, as delivery would. */
static void
child_update(struct child *c, size_t i)
{
	struct relay_queue_envelope *env = NULL;
	const char *error = NULL;
	size_t k;

	if (relay_queue_load(c->q, c->live[i], &env, &error) < 0)
		child_fail("load", error);
	env->rcpts[0].attempts++;
	relay_queue_str_set(&env->rcpts[0].last_error, "451 4.4.1 later");
	env->rcpts[0].next_attempt = time(NULL) + 60;
	if (env->rcpts[0].attempts >= DONE_ATTEMPTS)
		for (k = 0; k < env->rcpt_count; k++)
			env->rcpts[k].state = RELAY_QUEUE_DELIVERED;
	if (relay_queue_update(c->q, env, &error) < 0)
		child_fail("update", error);
	child_send(c, 'U', env->id, env->rcpts[0].attempts);
	if (env->rcpts[0].attempts >= DONE_ATTEMPTS)
		child_remove(c, i);
	relay_queue_envelope_free(&env);
}

static void
child_main(int fd, unsigned seed)
{
	struct child *c = mc_malloc(sizeof(*c));
	const char *error = NULL;
	unsigned r;

	c->fd = fd;
	c->seed = seed;
	mc_log_init("relay_queue_crash_child", MC_LOG_ERROR);
	if (relay_queue_open(spool, NULL, &c->q, &error) < 0)
		child_fail("open", error);
	if (relay_queue_scan(c->q, child_live_cb, c, NULL, &error) < 0)
		child_fail("scan", error);
	child_send(c, 'O', NULL, 0);
	for (;;) {
		r = (unsigned)rand_r(&c->seed);
		child_commit(c);
		if (r % 3 == 0 && c->live_count > 0)
			child_update(c, (r >> 4) % c->live_count);
		if ((r % 4 == 0 || c->live_count > MAX_LIVE) &&
		    c->live_count > 0)
			child_remove(c, (r >> 8) % c->live_count);
	}
}

/* ---- the parent's checks ---- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static struct known *
known_get(struct mc_hash *known, const char *id)
{
	struct known *k = mc_hash_get(known, id);

	if (k == NULL) {
		k = mc_malloc(sizeof(*k));
		memcpy(k->id, id, RELAY_QUEUE_ID_SIZE);
		mc_hash_put(known, k->id, k);
	}
	return k;
}

static void
apply(struct mc_hash *known, const struct record *r, size_t *counts)
{
	struct known *k;

	if (r->op == 'O') {
		counts[3]++;
		return;
	}
	k = known_get(known, r->id);
	if (r->op == 'C')
		counts[0]++;
	if (r->op == 'U') {
		k->attempts = r->attempts;
		counts[1]++;
	}
	if (r->op == 'r')
		k->removing = true;
	if (r->op == 'R') {
		k->removed = true;
		counts[2]++;
	}
}

static char *
read_all(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *buf = mc_malloc(RELAY_QUEUE_ENVELOPE_FILE_MAX);

	*len_r =
	        f != NULL ? fread(buf, 1, RELAY_QUEUE_ENVELOPE_FILE_MAX, f) : 0;
	if (f != NULL)
		fclose(f);
	return buf;
}

static size_t
count_files(const char *sub, const char *suffix)
{
	char *dir = mc_asprintf("%s/%s", spool, sub);
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0, len;

	while (d != NULL && (de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] != '.' &&
		    (suffix == NULL ||
		     (len >= strlen(suffix) &&
		      strcmp(de->d_name + len - strlen(suffix), suffix) == 0)))
			n++;
	}
	if (d != NULL)
		closedir(d);
	free(dir);
	return n;
}

/* The spool exactly as the kill left it, before any recovery: every
 * envelope in queue/ parses and its content is complete, no acknowledged
 * removal is back, no acknowledged update is lost. An update that landed
 * but was not acknowledged yet is taken as the new state. Counts the
 * kills that left files for recovery, to show they hit mid-operation. */
static void
check_raw(struct mc_hash *known, size_t *leftovers)
{
	char *dir = mc_asprintf("%s/queue", spool), *path, *buf;
	struct relay_queue_envelope *env;
	bool tmp_seen = false;
	const char *error;
	struct known *k;
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(dir);
	size_t len;

	while (d != NULL && (de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0)
			tmp_seen = true;
		if (len != RELAY_QUEUE_ID_LEN + 4 ||
		    strcmp(de->d_name + RELAY_QUEUE_ID_LEN, ".env") != 0)
			continue;
		path = mc_asprintf("%s/%s", dir, de->d_name);
		buf = read_all(path, &len);
		env = NULL;
		CHECK(relay_queue_envelope_parse(buf, len, &env, &error) == 0);
		free(path);
		free(buf);
		if (env == NULL)
			continue;
		path = mc_asprintf("%s/%s.msg", dir, env->id);
		CHECK(stat(path, &st) == 0 &&
		      (uint64_t)st.st_size == env->size);
		free(path);
		k = mc_hash_get(known, env->id);
		if (k != NULL) {
			CHECK(!k->removed);
			CHECK(env->rcpts[0].attempts >= k->attempts &&
			      env->rcpts[0].attempts <= k->attempts + 1);
			k->attempts = env->rcpts[0].attempts;
		}
		relay_queue_envelope_free(&env);
	}
	if (d != NULL)
		closedir(d);
	free(dir);
	leftovers[0] += count_files("incoming", NULL) > 0;
	leftovers[1] += tmp_seen;
}

struct verify_ctx {
	struct relay_queue *q;
	struct mc_hash *known;
	size_t found, unacked;
};

static void
verify_cb(struct relay_queue_envelope *env, void *arg)
{
	struct verify_ctx *v = arg;
	struct known *k = mc_hash_get(v->known, env->id);
	const char *error = NULL;
	char hex[65];

	v->found++;
	if (k == NULL) {
		/* Committed, killed before the acknowledgement: allowed, at
		 * most one per kill, and now as binding as any other. */
		v->unacked++;
		k = known_get(v->known, env->id);
	}
	k->seen = true;
	CHECK(!k->removed);
	CHECK(relay_queue_verify(v->q, env, &error) == 0);
	content_sha256(env->id, hex);
	CHECK_STR(env->sha256, hex);
	/* Never behind the acknowledged update, at most the one in flight
	 * ahead of it. */
	CHECK(env->rcpts[0].attempts >= k->attempts &&
	      env->rcpts[0].attempts <= k->attempts + 1);
	k->attempts = env->rcpts[0].attempts;
	relay_queue_envelope_free(&env);
}

/* Reopen (recovery), scan, and hold the result against what was
 * acknowledged. */
static void
check_recovered(struct mc_hash *known)
{
	struct relay_queue_scan_stats stats;
	struct verify_ctx v = {.known = known};
	const char *error = NULL;
	struct known *k;
	size_t pos = 0;
	void *value;

	CHECK(relay_queue_open(spool, NULL, &v.q, &error) == 0);
	if (v.q == NULL) {
		fprintf(stderr, "reopen: %s\n", error);
		exit(1);
	}
	CHECK(count_files("incoming", NULL) == 0);
	CHECK(count_files("queue", ".tmp") == 0);
	CHECK(count_files("queue", ".env") == count_files("queue", ".msg"));
	while (mc_hash_next(known, &pos, &value))
		((struct known *)value)->seen = false;
	CHECK(relay_queue_scan(v.q, verify_cb, &v, &stats, &error) == 0);
	CHECK(stats.corrupt == 0 && stats.skipped == 0);
	CHECK(count_files("corrupt", NULL) == 0);
	CHECK(v.unacked <= 1);
	/* Every acknowledged message is there unless its removal started
	 * or it was fully delivered (the scan finishes those removals). */
	pos = 0;
	while (mc_hash_next(known, &pos, &value)) {
		k = value;
		if (k->seen || k->removed)
			continue;
		if (!k->removing && k->attempts < DONE_ATTEMPTS) {
			fprintf(stderr, "lost acknowledged message %s\n",
			        k->id);
			CHECK(k->seen);
		}
		k->removed = true; /* gone: never expect it again */
	}
	relay_queue_close(&v.q);
}

/* Run one child until its kill; apply its acknowledgements. */
static void
run_round(int round, struct mc_hash *known, size_t *counts)
{
	struct record r;
	int fds[2], status;
	bool acked = false;
	ssize_t n;
	pid_t pid;
	struct timespec delay;

	if (pipe(fds) < 0 || (pid = fork()) < 0) {
		perror("pipe/fork");
		exit(1);
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(fds[1], (unsigned)round * 7919u + 17u);
		_exit(0);
	}
	close(fds[1]);
	/* Every fifth child dies within 2 ms of its start, maybe while it
	 * recovers and scans the spool. The others first acknowledge a
	 * commit (so a slow start, e.g. under valgrind, cannot eat the
	 * whole delay), then die 0 to 30 ms later: a commit takes a few ms
	 * on a disk that honours fsync. */
	delay.tv_sec = 0;
	if (round % 5 == 0) {
		delay.tv_nsec = (long)(round % 7) * 300000L;
	} else {
		while (!acked &&
		       (n = read(fds[0], &r, sizeof(r))) == sizeof(r)) {
			apply(known, &r, counts);
			acked = r.op == 'C';
		}
		CHECK(acked);
		delay.tv_nsec =
		        (long)((unsigned)(round * 2654435761u) % 30000) * 1000L;
	}
	nanosleep(&delay, NULL);
	kill(pid, SIGKILL);
	/* Records are written whole (< PIPE_BUF) so reads return them
	 * whole; EOF once the child is gone. */
	while ((n = read(fds[0], &r, sizeof(r))) == sizeof(r))
		apply(known, &r, counts);
	close(fds[0]);
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	if (!WIFSIGNALED(status))
		fprintf(stderr, "child exited with %d\n", WEXITSTATUS(status));
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	struct mc_hash *known = mc_hash_new(MC_HASH_STR);
	size_t counts[4] = {0}, leftovers[2] = {0}, pos = 0;
	void *value;
	int round;

	mc_log_init("relay_queue_crash_test", MC_LOG_ERROR);
	snprintf(spool, sizeof(spool), "%s/relay_queue_crash.XXXXXX",
	         tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(spool) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	for (round = 0; round < ROUNDS; round++) {
		run_round(round, known, counts);
		check_raw(known, leftovers);
		check_recovered(known);
	}
	printf("%d kills (%zu after the spool was open): %zu commits, %zu "
	       "updates, %zu removals acknowledged; killed mid-commit "
	       "(incoming/ leftovers) %zu times, mid-update %zu times\n",
	       ROUNDS, counts[3], counts[0], counts[1], counts[2], leftovers[0],
	       leftovers[1]);
	CHECK(counts[0] > 0);
	while (mc_hash_next(known, &pos, &value))
		free(value);
	mc_hash_free(&known);
	nftw(spool, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return mc_test_done();
}
