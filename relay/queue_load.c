/* The read side of the spool: message content for delivery, envelope
 * loading for mailctl (relay_queue_load, relay_queue_list) and the startup
 * scan that feeds the scheduler and quarantines what cannot be loaded
 * (contract in queue.h, layout in docs/queue.md).
 *
 * A message is loadable when its envelope parses and validates, carries
 * the id of its file name, and its content exists with the envelope's
 * size. Anything else is corrupt, except I/O errors, which say nothing
 * about the files and leave them alone. The content's hash is checked
 * only on request (relay_queue_verify): reading every message at startup
 * would make a restart with a full queue slow. */
#include "queue_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "error.h"
#include "log.h"
#include "mem.h"

/* ---- content ---- */

int
relay_queue_content_open(struct relay_queue *q, const char *id, int *fd_r,
                         const char **error_r)
{
	char name[RELAY_QUEUE_NAME_SIZE];

	if (!relay_queue_id_valid(id)) {
		*error_r = "invalid queue id";
		errno = EINVAL;
		return -1;
	}
	relay_queue_file_name(name, id, RELAY_QUEUE_NAME_MSG);
	*fd_r = openat(q->queue_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd_r >= 0)
		return 0;
	*error_r = mc_errorf("%s/queue/%s: %s", q->dir, name, strerror(errno));
	return -1;
}

/* Hash the rest of fd; counts bytes into *size_r. */
static int
hash_fd(int fd, char hex_r[65], uint64_t *size_r)
{
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE], *buf = mc_malloc(RELAY_QUEUE_IO_BUF);
	unsigned md_len = 0, i;
	int ret = -1;
	ssize_t n;

	*size_r = 0;
	if (sha == NULL || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1)
		goto fail;
	while ((n = read(fd, buf, RELAY_QUEUE_IO_BUF)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || EVP_DigestUpdate(sha, buf, (size_t)n) != 1)
			goto fail;
		*size_r += (uint64_t)n;
	}
	if (EVP_DigestFinal_ex(sha, md, &md_len) != 1 || md_len != 32)
		goto fail;
	for (i = 0; i < md_len; i++)
		snprintf(hex_r + 2 * i, 3, "%02x", md[i]);
	ret = 0;
fail:
	EVP_MD_CTX_free(sha);
	free(buf);
	return ret;
}

int
relay_queue_verify(struct relay_queue *q,
                   const struct relay_queue_envelope *env, const char **error_r)
{
	char hex[65];
	uint64_t size;
	int fd, ret;

	if (relay_queue_content_open(q, env->id, &fd, error_r) < 0)
		return -1;
	ret = hash_fd(fd, hex, &size);
	close(fd);
	if (ret < 0)
		*error_r = mc_errorf("%s: cannot read content: %s", env->id,
		                     strerror(errno));
	else if (size != env->size)
		*error_r = mc_errorf("%s: content has %llu bytes, envelope "
		                     "says %llu",
		                     env->id, (unsigned long long)size,
		                     (unsigned long long)env->size);
	else if (strcmp(hex, env->sha256) != 0)
		*error_r = mc_errorf("%s: content SHA-256 %s, envelope says %s",
		                     env->id, hex, env->sha256);
	else
		return 0;
	return -1;
}

/* ---- loading ---- */

/* Read queue/<id>.env whole. -1 with *corrupt_r true when the file can
 * never be loaded (not a regular file, too large), false on an I/O error
 * (errno kept; ENOENT when the message is gone). */
static int
env_read_file(struct relay_queue *q, const char *name, char **buf_r,
              size_t *len_r, bool *corrupt_r, const char **error_r)
{
	int fd = openat(q->queue_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	ssize_t n;

	*corrupt_r = fd < 0 && errno == ELOOP;
	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > RELAY_QUEUE_ENVELOPE_FILE_MAX) {
		*corrupt_r = true;
		errno = EINVAL;
		*error_r = "not a regular file of at most "
		           "RELAY_QUEUE_ENVELOPE_FILE_MAX bytes";
		close(fd);
		return -1;
	}
	/* Envelopes are replaced by rename, never rewritten in place: the
	 * size of this inode does not change under us. */
	buf = mc_malloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errno = n == 0 ? EIO : errno;
			goto fail;
		}
		len += (size_t)n;
	}
	close(fd);
	*buf_r = buf;
	*len_r = len;
	return 0;
fail:
	*error_r = mc_errorf("%s/queue/%s: %s", q->dir, name, strerror(errno));
	if (fd >= 0) {
		int saved = errno;

		close(fd);
		errno = saved;
	}
	free(buf);
	return -1;
}

/* A removal that ran between our read of the envelope and our look at
 * the content (mailctl listing while delivery removes) is no corruption:
 * the envelope is gone too. */
static bool
removed_since(struct relay_queue *q, const char *id)
{
	char name[RELAY_QUEUE_NAME_SIZE];
	struct stat st;

	relay_queue_file_name(name, id, RELAY_QUEUE_NAME_ENV);
	if (fstatat(q->queue_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    errno != ENOENT)
		return false;
	return true;
}

/* Load and check one message: envelope valid, named for its id, content
 * present with the envelope's size. -1 sets *corrupt_r as above. */
static int
env_read(struct relay_queue *q, const char *id,
         struct relay_queue_envelope **env_r, bool *corrupt_r,
         const char **error_r)
{
	struct relay_queue_envelope *env = NULL;
	char name[RELAY_QUEUE_NAME_SIZE], *buf = NULL;
	size_t len;
	struct stat st;

	relay_queue_file_name(name, id, RELAY_QUEUE_NAME_ENV);
	if (env_read_file(q, name, &buf, &len, corrupt_r, error_r) < 0)
		return -1;
	*corrupt_r = true;
	errno = EINVAL;
	if (relay_queue_envelope_parse(buf, len, &env, error_r) < 0)
		goto fail;
	if (strcmp(env->id, id) != 0) {
		*error_r = mc_errorf("envelope holds id %s", env->id);
		goto fail;
	}
	relay_queue_file_name(name, id, RELAY_QUEUE_NAME_MSG);
	if (fstatat(q->queue_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		*corrupt_r = errno == ENOENT && !removed_since(q, id);
		*error_r = mc_errorf("content: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != env->size) {
		*error_r = mc_errorf("content has %lld bytes, envelope says "
		                     "%llu",
		                     (long long)st.st_size,
		                     (unsigned long long)env->size);
		errno = EINVAL;
		goto fail;
	}
	free(buf);
	*env_r = env;
	return 0;
fail:
	if (*corrupt_r)
		errno = EINVAL;
	relay_queue_envelope_free(&env);
	free(buf);
	return -1;
}

int
relay_queue_load(struct relay_queue *q, const char *id,
                 struct relay_queue_envelope **env_r, const char **error_r)
{
	bool corrupt;
	int saved;

	if (!relay_queue_id_valid(id)) {
		*error_r = "invalid queue id";
		errno = EINVAL;
		return -1;
	}

	if (env_read(q, id, env_r, &corrupt, error_r) == 0)
		return 0;
	saved = corrupt ? EINVAL : errno;
	*error_r = saved == ENOENT ? mc_errorf("no such message %s", id)
	                           : mc_errorf("%s: %s", id, *error_r);
	errno = saved;
	return -1;
}

/* Quarantine a message that cannot be loaded; nothing is deleted, so an
 * operator can inspect or repair it. */
static void
move_corrupt(struct relay_queue *q, const char *id, const char *reason)
{
	char name[RELAY_QUEUE_NAME_SIZE];
	const char *error;
	int i;

	mc_error("queue corrupt message moved id=%s to=%s/corrupt "
	         "reason=\"%s\"",
	         id, q->dir, reason);
	for (i = 0; i < 2; i++) {
		relay_queue_file_name(name, id,
		                      i == 0 ? RELAY_QUEUE_NAME_ENV
		                             : RELAY_QUEUE_NAME_MSG);
		if (renameat(q->queue_fd, name, q->corrupt_fd, name) < 0 &&
		    errno != ENOENT)
			mc_error("queue cannot move path=%s/queue/%s "
			         "error=\"%s\"",
			         q->dir, name, strerror(errno));
	}
	if (relay_queue_fsync_dir(q, q->corrupt_fd, "corrupt", &error) < 0 ||
	    relay_queue_fsync_dir(q, q->queue_fd, "queue", &error) < 0)
		mc_error("queue error=\"%s\"", error);
}

/* One committed message of a walk; repair as relay_queue_scan says. */
static void
walk_one(struct relay_queue *q, const char *id, bool repair,
         void (*cb)(struct relay_queue_envelope *env, void *ctx), void *ctx,
         struct relay_queue_scan_stats *stats)
{
	struct relay_queue_envelope *env;
	const char *error;
	bool corrupt;

	if (env_read(q, id, &env, &corrupt, &error) < 0) {
		if (corrupt && repair) {
			move_corrupt(q, id, error);
			stats->corrupt++;
		} else if (errno != ENOENT || corrupt) {
			/* ENOENT: removed since the listing; not an error. */
			mc_warn("queue cannot load id=%s error=\"%s\"", id,
			        error);
			stats->skipped++;
		}
		return;
	}
	if (repair && relay_queue_envelope_pending(env) == 0) {
		relay_queue_envelope_free(&env);
		if (relay_queue_remove(q, id, &error) < 0) {
			mc_warn("queue cannot remove finished id=%s "
			        "error=\"%s\"",
			        id, error);
			stats->skipped++;
			return;
		}
		mc_info("queue removed finished message id=%s", id);
		stats->finished++;
		return;
	}
	stats->loaded++;
	cb(env, ctx);
}

static int
walk(struct relay_queue *q, bool repair,
     void (*cb)(struct relay_queue_envelope *env, void *ctx), void *ctx,
     struct relay_queue_scan_stats *stats_r, const char **error_r)
{
	struct relay_queue_scan_stats stats = {0};
	char **names, id[RELAY_QUEUE_ID_SIZE];
	size_t n, i;

	if (relay_queue_list_dir(q, q->queue_fd, "queue", &names, &n, error_r) <
	    0)
		return -1;
	/* Names sort as ids do (fixed length), so messages come oldest
	 * first. */
	for (i = 0; i < n; i++)
		if (relay_queue_name_parse(names[i], id) ==
		    RELAY_QUEUE_NAME_ENV)
			walk_one(q, id, repair, cb, ctx, &stats);
	relay_queue_names_free(names, n);
	if (stats_r != NULL)
		*stats_r = stats;
	return 0;
}

int
relay_queue_scan(struct relay_queue *q,
                 void (*cb)(struct relay_queue_envelope *env, void *ctx),
                 void *ctx, struct relay_queue_scan_stats *stats_r,
                 const char **error_r)
{
	struct relay_queue_scan_stats stats;

	if (walk(q, true, cb, ctx, &stats, error_r) < 0)
		return -1;
	mc_info("queue loaded dir=%s messages=%zu corrupt=%zu finished=%zu "
	        "skipped=%zu",
	        q->dir, stats.loaded, stats.corrupt, stats.finished,
	        stats.skipped);
	if (stats_r != NULL)
		*stats_r = stats;
	return 0;
}

int
relay_queue_list(struct relay_queue *q,
                 void (*cb)(struct relay_queue_envelope *env, void *ctx),
                 void *ctx, const char **error_r)
{
	return walk(q, false, cb, ctx, NULL, error_r);
}
