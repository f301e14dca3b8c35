/* The write side of the relay's spool: the lock and recovery at open,
 * queue ids, receiving and committing messages, envelope rewrites and
 * removal (contract in queue.h, on-disk layout and the crash argument in
 * docs/queue.md; loading is in queue_load.c, the envelope JSON in
 * queue_envelope.c).
 *
 * The one invariant everything keeps: queue/<id>.env exists only when
 * queue/<id>.msg exists and is complete and durable. Commit therefore
 * renames the content into queue/ and fsyncs queue/ before the envelope
 * appears there; removal unlinks the envelope and fsyncs queue/ before the
 * content goes. Whatever a crash leaves outside that invariant is garbage
 * that was never acknowledged (incoming/ files, a .msg without .env, an
 * update's .env.tmp) and relay_queue_open deletes it.
 *
 * All paths are relative to directory fds opened once (openat, renameat,
 * unlinkat), so no path is rebuilt per call. The only shared mutable state
 * is the id clock, an atomic. */
#include "queue_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "error.h"
#include "fileio.h"
#include "log.h"
#include "mem.h"

#define ID_TIME_DIGITS 11 /* 55 bits of microseconds: until year 3111 */
#define ID_RAND_DIGITS 8  /* 40 random bits */
#define ID_TIME_MASK ((UINT64_C(1) << 55) - 1)

/* Crockford's base32 in lower case: digits sort before letters in ASCII,
 * so ids sort by time as strings; no i, l, o, u to misread. */
static const char id_alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

struct relay_queue_msg {
	struct relay_queue *q;
	char id[RELAY_QUEUE_ID_SIZE];
	int fd;
	bool failed, too_big;
	uint64_t size; /* appended so far */
	EVP_MD_CTX *sha;
	size_t buf_len;
	unsigned char *buf; /* RELAY_QUEUE_IO_BUF */
};

/* ---- small helpers ---- */

static int64_t
clock_realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int
relay_queue_fsync_dir(const struct relay_queue *q, int fd, const char *what,
                      const char **error_r)
{
	if (fsync(fd) == 0)
		return 0;
	*error_r = mc_errorf("%s/%s: fsync: %s", q->dir, what, strerror(errno));
	return -1;
}

void
relay_queue_file_name(char *out, const char *id, enum relay_queue_name kind)
{
	static const char *const suffix[] = {"", ".msg", ".env", ".env.tmp"};

	snprintf(out, RELAY_QUEUE_NAME_SIZE, "%s%s", id, suffix[kind]);
}

enum relay_queue_name
relay_queue_name_parse(const char *name, char id_r[RELAY_QUEUE_ID_SIZE])
{
	if (strlen(name) < RELAY_QUEUE_ID_LEN)
		return RELAY_QUEUE_NAME_OTHER;
	memcpy(id_r, name, RELAY_QUEUE_ID_LEN);
	id_r[RELAY_QUEUE_ID_LEN] = '\0';
	if (!relay_queue_id_valid(id_r))
		return RELAY_QUEUE_NAME_OTHER;
	name += RELAY_QUEUE_ID_LEN;
	if (strcmp(name, ".msg") == 0)
		return RELAY_QUEUE_NAME_MSG;
	if (strcmp(name, ".env") == 0)
		return RELAY_QUEUE_NAME_ENV;
	if (strcmp(name, ".env.tmp") == 0)
		return RELAY_QUEUE_NAME_TMP;
	return RELAY_QUEUE_NAME_OTHER;
}

void
relay_queue_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int
names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
relay_queue_list_dir(const struct relay_queue *q, int fd, const char *what,
                     char ***names_r, size_t *n_r, const char **error_r)
{
	/* A fresh open of ".", not a dup: a dup would share its read offset
	 * with every other walk of the same folder on other threads. */
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	if (d == NULL) {
		*error_r =
		        mc_errorf("%s/%s: %s", q->dir, what, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		names = mc_realloc(names, (n + 1) * sizeof(*names));
		names[n++] = mc_strdup(de->d_name);
	}
	if (errno != 0) {
		*error_r =
		        mc_errorf("%s/%s: %s", q->dir, what, strerror(errno));
		closedir(d);
		relay_queue_names_free(names, n);
		return -1;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), names_cmp);
	*names_r = names;
	*n_r = n;
	return 0;
}

/* ---- ids ---- */

bool
relay_queue_id_valid(const char *id)
{
	size_t i;

	for (i = 0; i < RELAY_QUEUE_ID_LEN; i++)
		if (id[i] == '\0' || strchr(id_alphabet, id[i]) == NULL)
			return false;
	/* The first digit holds the top 5 of 55 time bits: all are valid. */
	return id[RELAY_QUEUE_ID_LEN] == '\0';
}

static uint64_t
id_time(const char *id)
{
	uint64_t t = 0;
	int i;

	for (i = 0; i < ID_TIME_DIGITS; i++)
		t = (t << 5) |
		    (uint64_t)(strchr(id_alphabet, id[i]) - id_alphabet);
	return t;
}

static void
id_seed(struct relay_queue *q, const char *id)
{
	uint64_t t = id_time(id);

	if (t > atomic_load(&q->last_us))
		atomic_store(&q->last_us, t);
}

int
relay_queue_id_new(struct relay_queue *q, char id_r[RELAY_QUEUE_ID_SIZE],
                   const char **error_r)
{
	int64_t now_signed = q->clock_us();
	uint64_t now = now_signed > 0 ? (uint64_t)now_signed & ID_TIME_MASK : 0;
	uint64_t last = atomic_load(&q->last_us), t, rnd = 0;
	unsigned char bytes[5];
	ssize_t n;
	int i;

	/* Strictly increasing even when the clock steps back or two threads
	 * ask in the same microsecond. */
	do {
		t = now > last ? now : last + 1;
	} while (!atomic_compare_exchange_weak(&q->last_us, &last, t));
	while ((n = getrandom(bytes, sizeof(bytes), 0)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(bytes)) {
		*error_r = mc_errorf("getrandom: %s",
		                     n < 0 ? strerror(errno) : "short read");
		return -1;
	}
	for (i = 0; i < 5; i++)
		rnd = (rnd << 8) | bytes[i];
	for (i = ID_TIME_DIGITS - 1; i >= 0; i--, t >>= 5)
		id_r[i] = id_alphabet[t & 31];
	for (i = ID_TIME_DIGITS + ID_RAND_DIGITS - 1; i >= ID_TIME_DIGITS;
	     i--, rnd >>= 5)
		id_r[i] = id_alphabet[rnd & 31];
	id_r[RELAY_QUEUE_ID_LEN] = '\0';
	return 0;
}

/* ---- open, lock, recover ---- */

static int
open_subdir(struct relay_queue *q, const char *name, bool *created, int *fd_r,
            const char **error_r)
{
	if (mkdirat(q->dir_fd, name, 0700) == 0)
		*created = true;
	else if (errno != EEXIST)
		goto fail;
	*fd_r = openat(q->dir_fd, name,
	               O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd_r >= 0)
		return 0;
fail:
	*error_r = mc_errorf("%s/%s: %s", q->dir, name, strerror(errno));
	return -1;
}

static int
take_lock(struct relay_queue *q, const char **error_r)
{
	char pid[32] = "";
	ssize_t n;

	q->lock_fd = openat(q->dir_fd, "lock",
	                    O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (q->lock_fd < 0) {
		*error_r = mc_errorf("%s/lock: %s", q->dir, strerror(errno));
		return -1;
	}
	if (flock(q->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			*error_r = mc_errorf("%s/lock: flock: %s", q->dir,
			                     strerror(errno));
			return -1;
		}
		n = pread(q->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		*error_r = mc_errorf("spool %s is in use (pid %s): two relays "
		                     "must never share a spool",
		                     q->dir, pid[0] != '\0' ? pid : "unknown");
		return -1;
	}
	/* The pid is only for that message; the flock is the lock, and the
	 * kernel drops it when the holder dies, however it dies. */
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(q->lock_fd, 0) < 0 ||
	    pwrite(q->lock_fd, pid, strlen(pid), 0) < 0) {
		*error_r = mc_errorf("%s/lock: %s", q->dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Delete everything in incoming/: nothing there was acknowledged. */
static int
recover_incoming(struct relay_queue *q, const char **error_r)
{
	char **names, id[RELAY_QUEUE_ID_SIZE];
	size_t n, i, removed = 0;

	if (relay_queue_list_dir(q, q->incoming_fd, "incoming", &names, &n,
	                         error_r) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (relay_queue_name_parse(names[i], id) !=
		    RELAY_QUEUE_NAME_OTHER)
			id_seed(q, id);
		if (unlinkat(q->incoming_fd, names[i], 0) == 0)
			removed++;
		else
			mc_warn("queue cannot remove leftover "
			        "path=%s/incoming/%s "
			        "error=\"%s\"",
			        q->dir, names[i], strerror(errno));
	}
	if (removed > 0)
		mc_info("queue removed unacknowledged files dir=%s/incoming "
		        "count=%zu",
		        q->dir, removed);
	relay_queue_names_free(names, n);
	return 0;
}

/* In queue/: delete .msg without .env and update temporaries, move
 * anything that is not ours to corrupt/. */
static void
recover_queue_entry(struct relay_queue *q, const char *name)
{
	char id[RELAY_QUEUE_ID_SIZE], env[RELAY_QUEUE_NAME_SIZE];
	enum relay_queue_name kind = relay_queue_name_parse(name, id);
	struct stat st;

	if (kind != RELAY_QUEUE_NAME_OTHER)
		id_seed(q, id);
	if (kind == RELAY_QUEUE_NAME_ENV)
		return;
	if (kind == RELAY_QUEUE_NAME_MSG) {
		relay_queue_file_name(env, id, RELAY_QUEUE_NAME_ENV);
		if (fstatat(q->queue_fd, env, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    errno != ENOENT)
			return;
		mc_info("queue removing content without envelope id=%s", id);
	}
	if (kind == RELAY_QUEUE_NAME_OTHER) {
		mc_warn("queue unknown file moved path=%s/queue/%s to=corrupt/",
		        q->dir, name);
		if (renameat(q->queue_fd, name, q->corrupt_fd, name) < 0)
			mc_warn("queue cannot move path=%s/queue/%s "
			        "error=\"%s\"",
			        q->dir, name, strerror(errno));
		return;
	}
	if (unlinkat(q->queue_fd, name, 0) < 0)
		mc_warn("queue cannot remove path=%s/queue/%s error=\"%s\"",
		        q->dir, name, strerror(errno));
}

static int
recover(struct relay_queue *q, const char **error_r)
{
	char **names, id[RELAY_QUEUE_ID_SIZE];
	size_t n, i;

	if (recover_incoming(q, error_r) < 0)
		return -1;
	if (relay_queue_list_dir(q, q->queue_fd, "queue", &names, &n, error_r) <
	    0)
		return -1;
	for (i = 0; i < n; i++)
		recover_queue_entry(q, names[i]);
	relay_queue_names_free(names, n);
	/* Ids of quarantined messages are never handed out again either. */
	if (relay_queue_list_dir(q, q->corrupt_fd, "corrupt", &names, &n,
	                         error_r) < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (relay_queue_name_parse(names[i], id) !=
		    RELAY_QUEUE_NAME_OTHER)
			id_seed(q, id);
	relay_queue_names_free(names, n);
	return 0;
}

static int
open_dirs(struct relay_queue *q, const char **error_r)
{
	bool created = false;

	if (mkdir(q->dir, 0700) == 0) {
		/* A new spool's own entry must be durable too, or a power
		 * loss could take the first messages with it. */
		if (mc_fsync_parent(q->dir) < 0)
			goto fail;
	} else if (errno != EEXIST) {
		goto fail;
	}
	q->dir_fd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->dir_fd < 0)
		goto fail;
	if (take_lock(q, error_r) < 0 ||
	    open_subdir(q, "incoming", &created, &q->incoming_fd, error_r) <
	            0 ||
	    open_subdir(q, "queue", &created, &q->queue_fd, error_r) < 0 ||
	    open_subdir(q, "corrupt", &created, &q->corrupt_fd, error_r) < 0)
		return -1;
	if (created && fsync(q->dir_fd) < 0)
		goto fail;
	return 0;
fail:
	*error_r = mc_errorf("%s: %s", q->dir, strerror(errno));
	return -1;
}

int
relay_queue_open(const char *dir, const struct relay_queue_settings *settings,
                 struct relay_queue **q_r, const char **error_r)
{
	struct relay_queue *q = mc_malloc(sizeof(*q));

	q->dir = mc_strdup(dir);
	q->dir_fd = q->lock_fd = q->incoming_fd = q->queue_fd = -1;
	q->corrupt_fd = -1;
	q->max_size = RELAY_QUEUE_DEFAULT_MAX_SIZE;
	q->clock_us = clock_realtime_us;
	if (settings != NULL && settings->max_message_size != 0)
		q->max_size = settings->max_message_size;
	if (settings != NULL && settings->clock_us != NULL)
		q->clock_us = settings->clock_us;
	atomic_init(&q->last_us, 0);
	atomic_init(&q->open_msgs, 0);
	if (open_dirs(q, error_r) < 0 || recover(q, error_r) < 0) {
		relay_queue_close(&q);
		return -1;
	}
	*q_r = q;
	return 0;
}

void
relay_queue_close(struct relay_queue **qp)
{
	struct relay_queue *q = *qp;

	if (q == NULL)
		return;
	if (atomic_load(&q->open_msgs) != 0)
		mc_error("queue closed with messages still being received "
		         "count=%d",
		         atomic_load(&q->open_msgs));
	close_fd(&q->corrupt_fd);
	close_fd(&q->queue_fd);
	close_fd(&q->incoming_fd);
	close_fd(&q->lock_fd); /* releases the flock */
	close_fd(&q->dir_fd);
	free(q->dir);
	free(q);
	*qp = NULL;
}

/* ---- receiving ---- */

int
relay_queue_begin(struct relay_queue *q, struct relay_queue_msg **msg_r,
                  const char **error_r)
{
	struct relay_queue_msg *msg = mc_malloc(sizeof(*msg));
	char name[RELAY_QUEUE_NAME_SIZE] = "";

	msg->q = q;
	msg->fd = -1;
	if (relay_queue_id_new(q, msg->id, error_r) < 0)
		goto fail;
	relay_queue_file_name(name, msg->id, RELAY_QUEUE_NAME_MSG);
	msg->fd = openat(q->incoming_fd, name,
	                 O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	                 0600);
	if (msg->fd < 0) {
		*error_r = mc_errorf("%s/incoming/%s: %s", q->dir, name,
		                     strerror(errno));
		goto fail;
	}
	msg->sha = EVP_MD_CTX_new();
	if (msg->sha == NULL ||
	    EVP_DigestInit_ex(msg->sha, EVP_sha256(), NULL) != 1) {
		*error_r = "cannot initialise SHA-256";
		goto fail;
	}
	msg->buf = mc_malloc(RELAY_QUEUE_IO_BUF);
	atomic_fetch_add(&q->open_msgs, 1);
	*msg_r = msg;
	return 0;
fail:
	if (msg->fd >= 0) {
		close(msg->fd);
		unlinkat(q->incoming_fd, name, 0);
	}
	EVP_MD_CTX_free(msg->sha);
	free(msg);
	return -1;
}

const char *
relay_queue_msg_id(const struct relay_queue_msg *msg)
{
	return msg->id;
}

bool
relay_queue_msg_too_big(const struct relay_queue_msg *msg)
{
	return msg->too_big;
}

static int
msg_flush(struct relay_queue_msg *msg, const char **error_r)
{
	if (mc_write_all(msg->fd, msg->buf, msg->buf_len) < 0) {
		msg->failed = true;
		*error_r = mc_errorf("%s/incoming/%s.msg: write: %s",
		                     msg->q->dir, msg->id, strerror(errno));
		return -1;
	}
	msg->buf_len = 0;
	return 0;
}

int
relay_queue_append(struct relay_queue_msg *msg, const void *data, size_t len,
                   const char **error_r)
{
	if (msg->failed) {
		*error_r = msg->too_big ? "message too big"
		                        : "message already failed";
		return -1;
	}
	if (len > msg->q->max_size - msg->size) {
		msg->failed = msg->too_big = true;
		*error_r = mc_errorf("message exceeds %llu bytes",
		                     (unsigned long long)msg->q->max_size);
		return -1;
	}
	if (EVP_DigestUpdate(msg->sha, data, len) != 1) {
		msg->failed = true;
		*error_r = "SHA-256 update failed";
		return -1;
	}
	msg->size += len;
	if (msg->buf_len + len > RELAY_QUEUE_IO_BUF &&
	    msg_flush(msg, error_r) < 0)
		return -1;
	if (len >= RELAY_QUEUE_IO_BUF) {
		if (mc_write_all(msg->fd, data, len) == 0)
			return 0;
		msg->failed = true;
		*error_r = mc_errorf("%s/incoming/%s.msg: write: %s",
		                     msg->q->dir, msg->id, strerror(errno));
		return -1;
	}
	memcpy(msg->buf + msg->buf_len, data, len);
	msg->buf_len += len;
	return 0;
}

int
relay_queue_msg_content_open(struct relay_queue_msg *msg, int *fd_r,
                             const char **error_r)
{
	char name[RELAY_QUEUE_NAME_SIZE];

	if (msg->failed) {
		*error_r = "message was not received completely";
		return -1;
	}
	if (msg_flush(msg, error_r) < 0)
		return -1;
	relay_queue_file_name(name, msg->id, RELAY_QUEUE_NAME_MSG);
	*fd_r = openat(msg->q->incoming_fd, name,
	               O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd_r < 0) {
		*error_r = mc_errorf("%s/incoming/%s: %s", msg->q->dir, name,
		                     strerror(errno));
		return -1;
	}
	return 0;
}

/* Copy the content of from (read from offset 0) to to, hashing it;
 * msg->buf (flushed, so free) is the copy buffer. */
static int
copy_hashed(struct relay_queue_msg *msg, int from, int to, const char **error_r)
{
	off_t off = 0;
	ssize_t n;

	while ((n = pread(from, msg->buf, RELAY_QUEUE_IO_BUF, off)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = mc_errorf("%s/incoming/%s.msg: read: %s",
			                     msg->q->dir, msg->id, strerror(errno));
			return -1;
		}
		if (EVP_DigestUpdate(msg->sha, msg->buf, (size_t)n) != 1 ||
		    mc_write_all(to, msg->buf, (size_t)n) < 0) {
			*error_r = mc_errorf("%s/incoming/%s.msg.new: write: %s",
			                     msg->q->dir, msg->id, strerror(errno));
			return -1;
		}
		off += n;
	}
	return 0;
}

/* A new file "<id>.msg.new" in incoming/ (deleted at open like anything
 * there) gets data then the old content, and is renamed over the old
 * one: the SHA-256 cannot be prepended to, so it is computed again. */
int
relay_queue_msg_prepend(struct relay_queue_msg *msg, const void *data,
                        size_t len, const char **error_r)
{
	struct relay_queue *q = msg->q;
	char name[RELAY_QUEUE_NAME_SIZE], new_name[RELAY_QUEUE_NAME_SIZE + 4];
	int in = -1, out = -1;

	if (msg->failed) {
		*error_r = "message was not received completely";
		return -1;
	}
	if (len > q->max_size - msg->size) {
		msg->failed = msg->too_big = true;
		*error_r = mc_errorf("message exceeds %llu bytes",
		                     (unsigned long long)q->max_size);
		return -1;
	}
	if (msg_flush(msg, error_r) < 0)
		return -1;
	relay_queue_file_name(name, msg->id, RELAY_QUEUE_NAME_MSG);
	snprintf(new_name, sizeof(new_name), "%s.new", name);
	in = openat(q->incoming_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	out = openat(q->incoming_fd, new_name,
	             O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (in < 0 || out < 0) {
		*error_r = mc_errorf("%s/incoming/%s: %s", q->dir, name,
		                     strerror(errno));
		goto fail;
	}
	if (EVP_DigestInit_ex(msg->sha, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(msg->sha, data, len) != 1) {
		*error_r = "SHA-256 failed";
		goto fail;
	}
	if (mc_write_all(out, data, len) < 0) {
		*error_r = mc_errorf("%s/incoming/%s: write: %s", q->dir,
		                     new_name, strerror(errno));
		goto fail;
	}
	if (copy_hashed(msg, in, out, error_r) < 0)
		goto fail;
	if (renameat(q->incoming_fd, new_name, q->incoming_fd, name) < 0) {
		*error_r = mc_errorf("%s/incoming/%s: rename: %s", q->dir,
		                     new_name, strerror(errno));
		goto fail;
	}
	close(in);
	close_fd(&msg->fd);
	msg->fd = out;
	msg->size += len;
	return 0;
fail:
	/* The old content's hash is gone: the message can only be aborted. */
	msg->failed = true;
	close_fd(&in);
	close_fd(&out);
	unlinkat(q->incoming_fd, new_name, 0);
	return -1;
}

enum discard { DISCARD_NOTHING, DISCARD_INCOMING, DISCARD_QUEUED };

/* Free msg after unlinking its files: none (committed), the ones in
 * incoming/, or those and the content already renamed into queue/. */
static void
msg_discard(struct relay_queue_msg *msg, enum discard files)
{
	struct relay_queue *q = msg->q;
	char name[RELAY_QUEUE_NAME_SIZE];

	close_fd(&msg->fd);
	if (files != DISCARD_NOTHING) {
		relay_queue_file_name(name, msg->id, RELAY_QUEUE_NAME_MSG);
		unlinkat(files == DISCARD_QUEUED ? q->queue_fd : q->incoming_fd,
		         name, 0);
		relay_queue_file_name(name, msg->id, RELAY_QUEUE_NAME_TMP);
		unlinkat(q->incoming_fd, name, 0);
	}
	EVP_MD_CTX_free(msg->sha);
	free(msg->buf);
	atomic_fetch_sub(&q->open_msgs, 1);
	free(msg);
}

void
relay_queue_abort(struct relay_queue_msg **msgp)
{
	if (*msgp == NULL)
		return;
	msg_discard(*msgp, DISCARD_INCOMING);
	*msgp = NULL;
}

/* Write data to dir_fd/name (new file, mode 0600) and fsync it. */
static int
write_file_synced(const struct relay_queue *q, int dir_fd, const char *where,
                  const char *name, int flags, const char *data,
                  const char **error_r)
{
	int fd = openat(dir_fd, name,
	                O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | flags,
	                0600);

	if (fd < 0 || mc_write_all(fd, data, strlen(data)) < 0 || fsync(fd) < 0) {
		*error_r = mc_errorf("%s/%s/%s: %s", q->dir, where, name,
		                     strerror(errno));
		close_fd(&fd);
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = mc_errorf("%s/%s/%s: close: %s", q->dir, where, name,
		                     strerror(errno));
		return -1;
	}
	return 0;
}

/* Flush, fsync and close the content; fill env's id, size and sha256. */
static int
msg_finish(struct relay_queue_msg *msg, struct relay_queue_envelope *env,
           const char **error_r)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0, i;

	if (msg->failed) {
		*error_r = "message was not received completely";
		return -1;
	}
	if (msg_flush(msg, error_r) < 0)
		return -1;
	if (fsync(msg->fd) < 0 || close(msg->fd) < 0) {
		msg->fd = -1;
		*error_r = mc_errorf("%s/incoming/%s.msg: %s", msg->q->dir,
		                     msg->id, strerror(errno));
		return -1;
	}
	msg->fd = -1;
	if (EVP_DigestFinal_ex(msg->sha, md, &md_len) != 1 || md_len != 32) {
		*error_r = "SHA-256 final failed";
		return -1;
	}
	for (i = 0; i < md_len; i++)
		snprintf(env->sha256 + 2 * i, 3, "%02x", md[i]);
	memcpy(env->id, msg->id, RELAY_QUEUE_ID_SIZE);
	env->size = msg->size;
	if (env->received == 0)
		env->received = msg->q->clock_us() / 1000000;
	return 0;
}

/* The envelope reached queue/ but its rename could not be made durable:
 * take the message back out so that a 451 is the truth. */
static void
commit_undo(struct relay_queue *q, const char *id)
{
	char name[RELAY_QUEUE_NAME_SIZE];

	relay_queue_file_name(name, id, RELAY_QUEUE_NAME_ENV);
	if (unlinkat(q->queue_fd, name, 0) < 0 || fsync(q->queue_fd) < 0)
		mc_error("queue cannot undo failed commit id=%s error=\"%s\": "
		         "the message may be delivered although the client "
		         "was told to retry",
		         id, strerror(errno));
}

int
relay_queue_commit(struct relay_queue_msg **msgp,
                   struct relay_queue_envelope *env, const char **error_r)
{
	struct relay_queue_msg *msg = *msgp;
	struct relay_queue *q = msg->q;
	char msg_name[RELAY_QUEUE_NAME_SIZE], tmp_name[RELAY_QUEUE_NAME_SIZE],
	        env_name[RELAY_QUEUE_NAME_SIZE];
	bool content_queued = false;
	char *line = NULL;

	*msgp = NULL;
	relay_queue_file_name(msg_name, msg->id, RELAY_QUEUE_NAME_MSG);
	relay_queue_file_name(tmp_name, msg->id, RELAY_QUEUE_NAME_TMP);
	relay_queue_file_name(env_name, msg->id, RELAY_QUEUE_NAME_ENV);
	/* 1. content durable; 2. envelope durable (still in incoming/). */
	if (msg_finish(msg, env, error_r) < 0 ||
	    (line = relay_queue_envelope_format(env, error_r)) == NULL ||
	    write_file_synced(q, q->incoming_fd, "incoming", tmp_name, O_EXCL,
	                      line, error_r) < 0)
		goto fail;
	/* 3. content into queue/, durably, before the envelope can be seen
	 * there: an envelope in queue/ always has its content. */
	if (renameat(q->incoming_fd, msg_name, q->queue_fd, msg_name) < 0) {
		*error_r = mc_errorf("%s: rename %s into queue/: %s", q->dir,
		                     msg_name, strerror(errno));
		goto fail;
	}
	content_queued = true;
	if (relay_queue_fsync_dir(q, q->queue_fd, "queue", error_r) < 0)
		goto fail;
	/* 4. the envelope's rename is the commit; 5. make it durable. */
	if (renameat(q->incoming_fd, tmp_name, q->queue_fd, env_name) < 0) {
		*error_r = mc_errorf("%s: rename %s into queue/: %s", q->dir,
		                     tmp_name, strerror(errno));
		goto fail;
	}
	if (relay_queue_fsync_dir(q, q->queue_fd, "queue", error_r) < 0) {
		commit_undo(q, msg->id);
		goto fail;
	}
	free(line);
	msg_discard(msg, DISCARD_NOTHING);
	return 0;
fail:
	free(line);
	msg_discard(msg, content_queued ? DISCARD_QUEUED : DISCARD_INCOMING);
	return -1;
}

/* ---- committed messages ---- */

int
relay_queue_update(struct relay_queue *q,
                   const struct relay_queue_envelope *env, const char **error_r)
{
	char tmp_name[RELAY_QUEUE_NAME_SIZE], env_name[RELAY_QUEUE_NAME_SIZE];
	char *line = relay_queue_envelope_format(env, error_r);
	struct stat st;
	int ret = -1;

	if (line == NULL)
		return -1;
	relay_queue_file_name(tmp_name, env->id, RELAY_QUEUE_NAME_TMP);
	relay_queue_file_name(env_name, env->id, RELAY_QUEUE_NAME_ENV);
	/* Renaming over a missing envelope would create a message without
	 * content: updates are for messages that exist. */
	if (fstatat(q->queue_fd, env_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		*error_r = errno == ENOENT
		                   ? mc_errorf("no such message %s", env->id)
		                   : mc_errorf("%s/queue/%s: %s", q->dir,
		                               env_name, strerror(errno));
		goto fail;
	}
	if (write_file_synced(q, q->queue_fd, "queue", tmp_name, O_TRUNC, line,
	                      error_r) < 0)
		goto fail_tmp;
	if (renameat(q->queue_fd, tmp_name, q->queue_fd, env_name) < 0) {
		*error_r = mc_errorf("%s/queue/%s: rename: %s", q->dir,
		                     tmp_name, strerror(errno));
		goto fail_tmp;
	}
	ret = relay_queue_fsync_dir(q, q->queue_fd, "queue", error_r);
	goto fail;
fail_tmp:
	unlinkat(q->queue_fd, tmp_name, 0);
fail:
	free(line);
	return ret;
}

int
relay_queue_remove(struct relay_queue *q, const char *id, const char **error_r)
{
	char name[RELAY_QUEUE_NAME_SIZE];
	bool had_env = false;
	int rc;

	if (!relay_queue_id_valid(id)) {
		*error_r = "invalid queue id";
		errno = EINVAL;
		return -1;
	}
	/* The envelope first, durably: from then on the message does not
	 * exist, and a crash before the content is gone leaves only an
	 * orphan that the next open deletes. */
	relay_queue_file_name(name, id, RELAY_QUEUE_NAME_ENV);
	if (unlinkat(q->queue_fd, name, 0) == 0)
		had_env = true;
	else if (errno != ENOENT)
		goto fail;
	if (had_env &&
	    relay_queue_fsync_dir(q, q->queue_fd, "queue", error_r) < 0)
		return -1;
	relay_queue_file_name(name, id, RELAY_QUEUE_NAME_MSG);
	rc = unlinkat(q->queue_fd, name, 0);
	if (rc == 0 || had_env) {
		if (rc < 0 && errno != ENOENT)
			mc_warn("queue cannot remove content id=%s "
			        "error=\"%s\"",
			        id, strerror(errno));
		return 0;
	}
	if (errno == ENOENT) {
		*error_r = mc_errorf("no such message %s", id);
		errno = ENOENT;
		return -1;
	}
fail:
	*error_r = mc_errorf("%s/queue/%s: %s", q->dir, name, strerror(errno));
	return -1;
}
