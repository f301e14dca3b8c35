/* The blob store: immutable byte strings keyed by the lower-case hex
 * SHA-256 of their content, on the daemon's libuv loop. Backends, chosen
 * by URL:
 *   file:///abs/path   files at path/ab/cd/<key> (the embedded default);
 *   s3://bucket[/prefix]  an S3-compatible server (endpoint, region,
 *                      credentials and addressing style in the config),
 *                      objects named prefix + key, requests signed with
 *                      AWS Signature V4 (lib/sigv4) and run by libcurl's
 *                      multi-socket API on uv_poll + uv_timer.
 * Nothing blocks the loop: file I/O runs on libuv's thread pool.
 *
 * Semantics. Write-once: a put of a key that exists succeeds without
 * changing it. A put hashes the bytes (off the loop) and refuses them
 * when the hash is not the key, so a key always names its content.
 * Reads do not re-verify content. Delete is idempotent (deleting a missing
 * key succeeds); it exists for garbage collection. The S3 backend retries
 * connection errors, timeouts, HTTP 5xx and 429 with exponential backoff
 * and jitter up to max_retries times; 404 is MC_BLOB_NOT_FOUND; any other
 * failure is MC_BLOB_ERROR with the HTTP status and S3 error code in the
 * text. At most max_concurrent requests run at once, up to max_queued
 * more wait in FIFO order, beyond that a request is refused.
 *
 * Callbacks. Every request whose call returned 0 gets exactly one
 * callback, later, on the loop thread, never from inside the call that
 * started it. The error text passed to a callback is valid only during
 * the callback. A call that returns -1 (bad key, queue full, store
 * closing) never calls back.
 *
 * Thread affinity: everything runs on the loop thread that created the
 * store; nothing here is thread-safe. */
#ifndef MC_BLOB_H
#define MC_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define MC_BLOB_KEY_LEN 64

enum mc_blob_status {
	MC_BLOB_OK = 0,
	MC_BLOB_NOT_FOUND, /* get, head: no blob with that key */
	MC_BLOB_ERROR,     /* anything else; the error text says what */
};

/* S3 backend settings. Strings are copied by mc_blob_new; the secret key
 * is wiped when the store is freed. The caller reads the credentials from
 * wherever the operator keeps them (a file, the environment). */
struct mc_blob_s3_config {
	/* "http(s)://host[:port]"; NULL: https://s3.<region>.amazonaws.com */
	const char *endpoint;
	const char *region;        /* NULL: "us-east-1" */
	const char *access_key_id; /* required */
	const char *secret_key;    /* required */
	/* false: path style, endpoint/bucket/key (MinIO, Garage, s3rver);
	 * true: virtual-host style, bucket.endpoint-host/key (AWS). */
	bool virtual_host;
	const char *ca_file;         /* NULL: the system's CA store */
	uint32_t connect_timeout_ms; /* 0: 10 s */
	/* Whole-request deadline per attempt; 0: 120 s. A transfer slower
	 * than 1 KiB/s for 30 s is also abandoned (and retried). */
	uint32_t request_timeout_ms;
	unsigned max_retries;   /* 0: 4 (so at most 5 attempts) */
	uint32_t retry_base_ms; /* 0: 200; doubles per attempt, capped 10 s */
};

struct mc_blob_config {
	/* "file:///abs/path" or "s3://bucket" or "s3://bucket/prefix/".
	 * The file root is created (with parents) by mc_blob_new. */
	const char *url;
	struct mc_blob_s3_config s3; /* read only for s3:// */
	unsigned max_concurrent;     /* 0: 16 */
	/* Bytes of recently read blobs kept in memory (lib/blob_cache.h);
	 * 0: no cache. Blobs are immutable, so a cached copy is never
	 * stale. */
	size_t cache_bytes;
	unsigned max_queued;         /* 0: 1024 */
};

struct mc_blob;

/* put, delete: status is MC_BLOB_OK or MC_BLOB_ERROR. */
typedef void mc_blob_done_cb(void *arg, enum mc_blob_status status,
                             const char *error);
/* get: on MC_BLOB_OK, data (len bytes, plus a NUL after them that is not
 * counted) is the callback's to keep: release it with free(). NULL on
 * every other status. */
typedef void mc_blob_get_cb(void *arg, enum mc_blob_status status,
                            uint8_t *data, size_t len, const char *error);
/* head: size is the blob's size on MC_BLOB_OK, 0 otherwise. */
typedef void mc_blob_head_cb(void *arg, enum mc_blob_status status,
                             uint64_t size, const char *error);

/* Create a store on loop from cfg. Returns 0 with *store_r set, or -1
 * with the reason in *error_r (unknown scheme, relative file path, bad
 * bucket name, missing credentials, root not creatable). */
int mc_blob_new(uv_loop_t *loop, const struct mc_blob_config *cfg,
                struct mc_blob **store_r, const char **error_r);

/* Store len bytes under key. data is borrowed: it must stay valid and
 * unchanged until the callback runs. */
int mc_blob_put(struct mc_blob *store, const char *key, const void *data,
                size_t len, mc_blob_done_cb *cb, void *arg,
                const char **error_r);

/* Fetch the blob. A blob larger than max_size is an error (nothing larger
 * is ever buffered), so a caller bounds its memory per request. */
int mc_blob_get(struct mc_blob *store, const char *key, size_t max_size,
                mc_blob_get_cb *cb, void *arg, const char **error_r);

/* Does the blob exist, and how large is it. */
int mc_blob_head(struct mc_blob *store, const char *key, mc_blob_head_cb *cb,
                 void *arg, const char **error_r);

/* Remove the blob; removing a missing blob succeeds. */
int mc_blob_delete(struct mc_blob *store, const char *key, mc_blob_done_cb *cb,
                   void *arg, const char **error_r);

/* Asynchronous teardown. New requests are refused at once; queued ones
 * and S3 transfers in flight complete with MC_BLOB_ERROR ("blob store
 * closed"); file operations already running on the thread pool finish and
 * report their real outcome. When the last callback has run and every
 * handle is closed the store is freed and closed_cb(arg) runs (closed_cb
 * may be NULL). *store is set to NULL at once; NULL-safe. */
void mc_blob_close(struct mc_blob **store, void (*closed_cb)(void *arg),
                   void *arg);

/* A key is exactly 64 lower-case hex digits. */
bool mc_blob_key_valid(const char *key);

/* The key of data: its lower-case hex SHA-256. Hashing a large blob takes
 * milliseconds, so prefer calling it off the loop. */
void mc_blob_key_of(const void *data, size_t len,
                    char key_r[MC_BLOB_KEY_LEN + 1]);

/* Counters for tests and metrics. */
struct mc_blob_stats {
	unsigned active;  /* requests running now */
	unsigned queued;  /* requests waiting for a slot */
	uint64_t retries; /* S3 attempts repeated after a retryable failure */
	unsigned peak_active;
	uint64_t cache_hits, cache_misses;
	size_t cache_bytes;
};
void mc_blob_stats(const struct mc_blob *store, struct mc_blob_stats *st);

#endif
