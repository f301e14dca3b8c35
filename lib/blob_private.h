/* Internals shared by the blob store front (blob.c) and its backends
 * (blob_file.c, blob_s3.c): the request record, the store, and the ops
 * table a backend provides. Not for use outside those files.
 *
 * A request's life: blob.c validates it and either starts it through
 * ops->start (a slot is free) or queues it. The backend runs it and
 * reports with mc_blob_req_finish on the loop thread; blob.c then frees the
 * slot, starts the next queued request and delivers the callback on a
 * later loop turn (a zero timer), so a user callback never runs inside a
 * backend or inside the call that submitted the request. */
#ifndef MC_BLOB_PRIVATE_H
#define MC_BLOB_PRIVATE_H

#include "blob.h"
#include "blob_cache.h"

#define MC_BLOB_ERROR_LEN 512

enum mc_blob_op {
	MC_BLOB_OP_PUT,
	MC_BLOB_OP_GET,
	MC_BLOB_OP_HEAD,
	MC_BLOB_OP_DELETE,
};

struct mc_blob_req {
	struct mc_blob *store;
	struct mc_blob_req *next; /* queue or delivery list */
	enum mc_blob_op op;
	char key[MC_BLOB_KEY_LEN + 1];
	const uint8_t *data; /* put: borrowed from the caller */
	size_t len;
	size_t max_size; /* get */
	union {
		mc_blob_done_cb *done;
		mc_blob_get_cb *get;
		mc_blob_head_cb *head;
	} cb;
	void *arg;

	/* Result, filled by the backend (a worker thread may write these
	 * before handing the request back to the loop). */
	enum mc_blob_status status;
	char error[MC_BLOB_ERROR_LEN];
	uint8_t *out; /* get: malloc'ed, NUL-terminated, passed to the cb */
	size_t out_len;
	uint64_t size; /* head */
};

struct mc_blob_ops {
	const char *name;
	/* Run req; finish it with mc_blob_req_finish (possibly at once). */
	void (*start)(struct mc_blob_req *req);
	/* Teardown began: finish what can be aborted with MC_BLOB_ERROR,
	 * close every handle, then call mc_blob_backend_closed once. Work
	 * already on the thread pool finishes normally. */
	void (*close)(struct mc_blob *store);
	/* Free the backend state (after closed, when nothing runs). */
	void (*free)(struct mc_blob *store);
};

struct mc_blob {
	uv_loop_t *loop;
	struct mc_blob_cache *cache; /* NULL: none */
	const struct mc_blob_ops *ops;
	void *backend;
	unsigned max_concurrent, max_queued;
	unsigned active, queued, peak_active;
	uint64_t retries;
	struct mc_blob_req *queue_head, *queue_tail;
	struct mc_blob_req *done_head, *done_tail;
	uv_timer_t deliver;
	bool closing, backend_closed, freeing;
	void (*closed_cb)(void *arg);
	void *closed_arg;
};

/* Record the outcome in req (printf-style error text, NULL for none).
 * Safe on any thread: it only writes into req. */
void mc_blob_req_set(struct mc_blob_req *req, enum mc_blob_status status,
                     const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Hand a finished request back (loop thread only); its outcome must be
 * recorded already. */
void mc_blob_req_finish(struct mc_blob_req *req);

/* The backend has no open handle left (loop thread only). */
void mc_blob_backend_closed(struct mc_blob *store);

/* Backend constructors: fill store->ops and store->backend. */
int mc_blob_file_init(struct mc_blob *store, const char *root,
                      const char **error_r);
int mc_blob_s3_init(struct mc_blob *store, const char *bucket,
                    const char *prefix, const struct mc_blob_s3_config *cfg,
                    const char **error_r);

/* Validated settings of the s3:// backend (blob_s3_config.c). Strings
 * are owned copies; fini wipes the secret key. */
struct mc_blob_s3_settings {
	char *scheme, *authority; /* "http", "127.0.0.1:9000" */
	char *bucket, *prefix, *region, *access_key_id, *secret_key, *ca_file;
	bool virtual_host;
	uint32_t connect_timeout_ms, request_timeout_ms, retry_base_ms;
	unsigned max_retries;
};

/* Fill set from the URL's bucket and prefix and cfg, defaults applied.
 * On error *error_r says why; call fini in both cases. */
int mc_blob_s3_settings_init(struct mc_blob_s3_settings *set,
                             const char *bucket, const char *prefix,
                             const struct mc_blob_s3_config *cfg,
                             const char **error_r);
void mc_blob_s3_settings_fini(struct mc_blob_s3_settings *set);

/* Does data hash to key? (used by both backends off the loop) */
bool mc_blob_content_matches(const char *key, const uint8_t *data, size_t len);

#endif
