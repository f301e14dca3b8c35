/* The file:// blob backend: blob KEY lives at ROOT/ab/cd/KEY (ab and cd
 * are the key's first two byte pairs, so no directory grows beyond 256
 * entries per level and 65,536 leaf folders spread the files). Every
 * filesystem call runs on libuv's thread pool (uv_queue_work); the loop
 * only sees the outcome.
 *
 * A put is crash-safe and write-once: the bytes go to a temporary file
 * ROOT/ab/cd/.tmp.KEY.PID.SEQ (created exclusively, so concurrent puts of
 * one key never share it), which is fsynced and renamed to KEY, and then
 * the folder is fsynced; a folder created on the way is fsynced into its
 * parent. After a crash KEY is either absent or complete. A put of an
 * existing KEY succeeds without writing. Temporary files left by a crash
 * are never read (readers open KEY only); removing stale ones belongs to
 * the garbage collector. */
#include "blob_private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "error.h"
#include "fileio.h"
#include "mem.h"

#define FILE_MODE 0640
#define DIR_MODE 0750

struct file_backend {
	char *root; /* absolute, without a trailing '/' */
};

struct file_work {
	uv_work_t work;
	struct mc_blob_req *req;
	const struct file_backend *fb;
};

static atomic_ulong tmp_seq;

/* ---- helpers (worker threads) ---- */

static const char *
errstr(int e, char *buf, size_t n)
{
	return strerror_r(e, buf, n); /* the GNU variant: returns the text */
}

static void
set_errno(struct mc_blob_req *req, const char *what, const char *path, int e)
{
	char buf[128];

	mc_blob_req_set(req, MC_BLOB_ERROR, "blob file: %s %s: %s", what, path,
	                errstr(e, buf, sizeof(buf)));
}

/* Paths cannot be truncated: mc_blob_file_init bounds the root so that
 * the longest name (the temporary file) fits in PATH_MAX. */
static void __attribute__((format(printf, 2, 3)))
path_fmt(char out[PATH_MAX], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
}

static void
blob_dir(const struct file_backend *fb, const char *key, int depth,
         char out[PATH_MAX])
{
	if (depth == 1)
		path_fmt(out, "%s/%.2s", fb->root, key);
	else
		path_fmt(out, "%s/%.2s/%.2s", fb->root, key, key + 2);
}

static void
blob_path(const struct file_backend *fb, const char *key, char out[PATH_MAX])
{
	path_fmt(out, "%s/%.2s/%.2s/%s", fb->root, key, key + 2, key);
}

/* mkdir dir; when it was created, make its entry durable in parent. */
static int
ensure_dir(const char *dir, const char *parent)
{
	if (mkdir(dir, DIR_MODE) == 0)
		return mc_fsync_dir(parent);
	return errno == EEXIST ? 0 : -1;
}

/* ---- operations (worker threads) ---- */

/* Write the temporary file and rename it to path; fsync file and dir. */
static void
put_new(struct mc_blob_req *req, const char *dir, const char *path)
{
	char tmp[PATH_MAX];
	int fd = -1;

	do {
		path_fmt(tmp, "%s/.tmp.%s.%ld.%lu", dir, req->key,
		         (long)getpid(), atomic_fetch_add(&tmp_seq, 1));
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		          FILE_MODE);
	} while (fd < 0 && errno == EEXIST);
	if (fd < 0) {
		set_errno(req, "create", tmp, errno);
		return;
	}
	if (mc_write_all(fd, req->data, req->len) < 0) {
		set_errno(req, "write", tmp, errno);
		goto fail;
	}
	if (fsync(fd) < 0) {
		set_errno(req, "fsync", tmp, errno);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		set_errno(req, "close", tmp, errno);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		set_errno(req, "rename to", path, errno);
		goto fail;
	}
	if (mc_fsync_dir(dir) < 0) {
		set_errno(req, "fsync", dir, errno);
		return; /* the blob is in place; durability unknown */
	}
	mc_blob_req_set(req, MC_BLOB_OK, NULL);
	return;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
}

static void
do_put(const struct file_backend *fb, struct mc_blob_req *req)
{
	char d1[PATH_MAX], d2[PATH_MAX], path[PATH_MAX];
	struct stat st;

	if (!mc_blob_content_matches(req->key, req->data, req->len)) {
		mc_blob_req_set(req, MC_BLOB_ERROR,
		                "blob put: the content "
		                "does not hash to key %s",
		                req->key);
		return;
	}
	blob_path(fb, req->key, path);
	if (stat(path, &st) == 0) {
		if (S_ISREG(st.st_mode))
			mc_blob_req_set(req, MC_BLOB_OK, NULL); /* write-once */
		else
			mc_blob_req_set(req, MC_BLOB_ERROR,
			                "blob file: %s is "
			                "not a regular file",
			                path);
		return;
	}
	blob_dir(fb, req->key, 1, d1);
	blob_dir(fb, req->key, 2, d2);
	if (ensure_dir(d1, fb->root) < 0) {
		set_errno(req, "mkdir", d1, errno);
		return;
	}
	if (ensure_dir(d2, d1) < 0) {
		set_errno(req, "mkdir", d2, errno);
		return;
	}
	put_new(req, d2, path);
}

static int
read_all(int fd, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1; /* error, or the file shrank: errno tells */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
do_get(const struct file_backend *fb, struct mc_blob_req *req)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	blob_path(fb, req->key, path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			mc_blob_req_set(req, MC_BLOB_NOT_FOUND,
			                "blob %s not "
			                "found",
			                req->key);
		else
			set_errno(req, "open", path, errno);
		return;
	}
	if (fstat(fd, &st) < 0) {
		set_errno(req, "stat", path, errno);
		goto out;
	}
	if ((uint64_t)st.st_size > req->max_size) {
		mc_blob_req_set(req, MC_BLOB_ERROR,
		                "blob %s is %lld bytes, "
		                "above the %zu-byte limit",
		                req->key, (long long)st.st_size, req->max_size);
		goto out;
	}
	req->out = mc_malloc((size_t)st.st_size + 1);
	errno = EIO;
	if (read_all(fd, req->out, (size_t)st.st_size) < 0) {
		set_errno(req, "read", path, errno);
		goto out; /* req->out is freed before the callback */
	}
	req->out_len = (size_t)st.st_size;
	mc_blob_req_set(req, MC_BLOB_OK, NULL);
out:
	close(fd);
}

static void
do_head(const struct file_backend *fb, struct mc_blob_req *req)
{
	char path[PATH_MAX];
	struct stat st;

	blob_path(fb, req->key, path);
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			mc_blob_req_set(req, MC_BLOB_NOT_FOUND,
			                "blob %s not "
			                "found",
			                req->key);
		else
			set_errno(req, "stat", path, errno);
		return;
	}
	req->size = (uint64_t)st.st_size;
	mc_blob_req_set(req, MC_BLOB_OK, NULL);
}

static void
do_delete(const struct file_backend *fb, struct mc_blob_req *req)
{
	char dir[PATH_MAX], path[PATH_MAX];

	blob_path(fb, req->key, path);
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			mc_blob_req_set(req, MC_BLOB_OK, NULL);
		else
			set_errno(req, "unlink", path, errno);
		return;
	}
	blob_dir(fb, req->key, 2, dir);
	if (mc_fsync_dir(dir) < 0) {
		set_errno(req, "fsync", dir, errno);
		return;
	}
	mc_blob_req_set(req, MC_BLOB_OK, NULL);
}

static void
on_work(uv_work_t *w)
{
	struct file_work *fw = w->data;

	switch (fw->req->op) {
	case MC_BLOB_OP_PUT:
		do_put(fw->fb, fw->req);
		break;
	case MC_BLOB_OP_GET:
		do_get(fw->fb, fw->req);
		break;
	case MC_BLOB_OP_HEAD:
		do_head(fw->fb, fw->req);
		break;
	case MC_BLOB_OP_DELETE:
		do_delete(fw->fb, fw->req);
		break;
	}
}

/* ---- loop side ---- */

static void
on_work_done(uv_work_t *w, int status)
{
	struct file_work *fw = w->data;
	struct mc_blob_req *req = fw->req;

	free(fw);
	if (status < 0) /* never cancelled by us; keep the contract anyway */
		mc_blob_req_set(req, MC_BLOB_ERROR, "blob file: %s",
		                uv_strerror(status));
	mc_blob_req_finish(req);
}

static void
file_start(struct mc_blob_req *req)
{
	struct file_work *fw = mc_malloc(sizeof(*fw));
	int rv;

	fw->req = req;
	fw->fb = req->store->backend;
	fw->work.data = fw;
	rv = uv_queue_work(req->store->loop, &fw->work, on_work, on_work_done);
	if (rv < 0) {
		free(fw);
		mc_blob_req_set(req, MC_BLOB_ERROR, "blob file: %s",
		                uv_strerror(rv));
		mc_blob_req_finish(req);
	}
}

static void
file_close(struct mc_blob *store)
{
	/* No handles: work on the pool finishes through on_work_done. */
	mc_blob_backend_closed(store);
}

static void
file_free(struct mc_blob *store)
{
	struct file_backend *fb = store->backend;

	free(fb->root);
	free(fb);
	store->backend = NULL;
}

static const struct mc_blob_ops file_ops = {
        .name = "file",
        .start = file_start,
        .close = file_close,
        .free = file_free,
};

/* mkdir -p; runs once at startup, before the loop serves anything. */
static int
make_root(char *root, const char **error_r)
{
	char buf[128];

	for (char *p = root + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (mkdir(root, DIR_MODE) < 0 && errno != EEXIST) {
			*error_r = mc_errorf("blob: mkdir %s: %s", root,
			                     errstr(errno, buf, sizeof(buf)));
			*p = saved;
			return -1;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	if (access(root, W_OK | X_OK) < 0) {
		*error_r = mc_errorf("blob: %s: %s", root,
		                     errstr(errno, buf, sizeof(buf)));
		return -1;
	}
	return 0;
}

int
mc_blob_file_init(struct mc_blob *store, const char *root, const char **error_r)
{
	struct file_backend *fb;
	size_t len = strlen(root);

	while (len > 1 && root[len - 1] == '/')
		len--;
	/* Leave room for /ab/cd/.tmp.KEY.PID.SEQ under PATH_MAX. */
	if (len + 128 + MC_BLOB_KEY_LEN >= PATH_MAX || root[0] != '/') {
		*error_r = mc_errorf("blob: unusable root path '%s'", root);
		return -1;
	}
	fb = mc_malloc(sizeof(*fb));
	fb->root = mc_strndup(root, len);
	if (make_root(fb->root, error_r) < 0) {
		free(fb->root);
		free(fb);
		return -1;
	}
	store->ops = &file_ops;
	store->backend = fb;
	return 0;
}
