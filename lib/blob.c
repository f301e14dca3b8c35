/* The blob store front: URL parsing and backend choice, request
 * validation, the concurrency limit and FIFO queue, deferred callback
 * delivery and asynchronous teardown; see blob.h for the contract and
 * blob_private.h for how backends plug in. */
#include "blob_private.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mem.h"
#include "sigv4.h"

#define DEFAULT_MAX_CONCURRENT 16
#define DEFAULT_MAX_QUEUED 1024
/* Bucket and prefix limits from S3's naming rules: a bucket is 3-63
 * characters, an object name at most 1024 bytes (prefix + 64). */
#define MAX_PREFIX 512

bool
mc_blob_key_valid(const char *key)
{
	size_t n = 0;

	if (key == NULL)
		return false;
	for (; key[n] != '\0'; n++) {
		char c = key[n];

		if (n >= MC_BLOB_KEY_LEN ||
		    !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return n == MC_BLOB_KEY_LEN;
}

void
mc_blob_key_of(const void *data, size_t len, char key_r[MC_BLOB_KEY_LEN + 1])
{
	mc_sigv4_sha256_hex(data, len, key_r);
}

bool
mc_blob_content_matches(const char *key, const uint8_t *data, size_t len)
{
	char actual[MC_BLOB_KEY_LEN + 1];

	mc_blob_key_of(data, len, actual);
	return strcmp(actual, key) == 0;
}

void
mc_blob_req_set(struct mc_blob_req *req, enum mc_blob_status status,
                const char *fmt, ...)
{
	va_list ap;

	req->status = status;
	req->error[0] = '\0';
	if (fmt == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(req->error, sizeof(req->error), fmt, ap);
	va_end(ap);
}

/* ---- delivery and teardown ---- */

static void
on_deliver_closed(uv_handle_t *h)
{
	struct mc_blob *store = h->data;
	void (*cb)(void *) = store->closed_cb;
	void *arg = store->closed_arg;

	if (store->ops != NULL && store->ops->free != NULL)
		store->ops->free(store);
	mc_blob_cache_free(&store->cache);
	free(store);
	if (cb != NULL)
		cb(arg);
}

static void
maybe_free(struct mc_blob *store)
{
	if (!store->closing || !store->backend_closed || store->active > 0 ||
	    store->done_head != NULL || store->freeing)
		return;
	store->freeing = true;
	uv_close((uv_handle_t *)&store->deliver, on_deliver_closed);
}

static void
invoke(struct mc_blob_req *req)
{
	const char *error = req->status == MC_BLOB_OK ? NULL : req->error;

	switch (req->op) {
	case MC_BLOB_OP_PUT:
	case MC_BLOB_OP_DELETE:
		req->cb.done(req->arg, req->status, error);
		break;
	case MC_BLOB_OP_GET:
		if (req->status != MC_BLOB_OK) {
			free(req->out);
			req->out = NULL;
			req->out_len = 0;
		} else {
			mc_blob_cache_put(req->store->cache, req->key, req->out,
			                  req->out_len);
		}
		req->cb.get(req->arg, req->status, req->out, req->out_len,
		            error);
		req->out = NULL; /* the callback owns it now */
		break;
	case MC_BLOB_OP_HEAD:
		req->cb.head(req->arg, req->status,
		             req->status == MC_BLOB_OK ? req->size : 0, error);
		break;
	}
}

static void
on_deliver(uv_timer_t *t)
{
	struct mc_blob *store = t->data;
	struct mc_blob_req *req = store->done_head;

	/* Callbacks may submit more requests, which may finish and append
	 * to the list again: take the current list first. */
	store->done_head = store->done_tail = NULL;
	while (req != NULL) {
		struct mc_blob_req *next = req->next;

		invoke(req);
		free(req);
		req = next;
	}
	maybe_free(store);
}

static void
push_done(struct mc_blob_req *req)
{
	struct mc_blob *store = req->store;

	req->next = NULL;
	if (store->done_tail != NULL)
		store->done_tail->next = req;
	else
		store->done_head = req;
	store->done_tail = req;
	if (!uv_is_active((uv_handle_t *)&store->deliver))
		uv_timer_start(&store->deliver, on_deliver, 0, 0);
}

static void
start(struct mc_blob_req *req)
{
	struct mc_blob *store = req->store;

	store->active++;
	if (store->active > store->peak_active)
		store->peak_active = store->active;
	store->ops->start(req);
}

void
mc_blob_req_finish(struct mc_blob_req *req)
{
	struct mc_blob *store = req->store;

	store->active--;
	push_done(req);
	while (!store->closing && store->queue_head != NULL &&
	       store->active < store->max_concurrent) {
		struct mc_blob_req *next = store->queue_head;

		store->queue_head = next->next;
		if (store->queue_head == NULL)
			store->queue_tail = NULL;
		store->queued--;
		start(next);
	}
}

void
mc_blob_backend_closed(struct mc_blob *store)
{
	store->backend_closed = true;
	maybe_free(store);
}

void
mc_blob_close(struct mc_blob **storep, void (*closed_cb)(void *arg), void *arg)
{
	struct mc_blob *store = storep != NULL ? *storep : NULL;

	if (store == NULL)
		return;
	*storep = NULL;
	if (store->closing)
		return;
	store->closing = true;
	store->closed_cb = closed_cb;
	store->closed_arg = arg;
	while (store->queue_head != NULL) {
		struct mc_blob_req *req = store->queue_head;

		store->queue_head = req->next;
		mc_blob_req_set(req, MC_BLOB_ERROR, "blob store closed");
		push_done(req);
	}
	store->queue_tail = NULL;
	store->queued = 0;
	store->ops->close(store);
	maybe_free(store);
}

/* ---- creation ---- */

static int
parse_s3_url(struct mc_blob *store, const char *rest,
             const struct mc_blob_s3_config *s3, const char **error_r)
{
	const char *slash = strchr(rest, '/');
	size_t blen = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	char *bucket = mc_strndup(rest, blen);
	const char *p = slash != NULL ? slash + 1 : "";
	size_t plen = strlen(p);
	char *prefix;
	int rv;

	if (plen > MAX_PREFIX) {
		free(bucket);
		*error_r = mc_errorf("blob: s3 prefix longer than %d bytes",
		                     MAX_PREFIX);
		return -1;
	}
	/* "s3://b/blobs" and "s3://b/blobs/" both mean objects blobs/KEY */
	prefix = mc_asprintf("%s%s", p,
	                     plen > 0 && p[plen - 1] != '/' ? "/" : "");
	rv = mc_blob_s3_init(store, bucket, prefix, s3, error_r);
	free(bucket);
	free(prefix);
	return rv;
}

int
mc_blob_new(uv_loop_t *loop, const struct mc_blob_config *cfg,
            struct mc_blob **store_r, const char **error_r)
{
	struct mc_blob *store = mc_malloc(sizeof(*store));
	const char *url = cfg->url != NULL ? cfg->url : "";
	int rv;

	store->loop = loop;
	store->max_concurrent = cfg->max_concurrent ? cfg->max_concurrent
	                                            : DEFAULT_MAX_CONCURRENT;
	store->max_queued =
	        cfg->max_queued ? cfg->max_queued : DEFAULT_MAX_QUEUED;
	if (strncmp(url, "file://", 7) == 0) {
		if (url[7] != '/') {
			*error_r =
			        mc_errorf("blob: '%s' is not file:///absolute"
			                  "/path",
			                  url);
			goto fail;
		}
		rv = mc_blob_file_init(store, url + 7, error_r);
	} else if (strncmp(url, "s3://", 5) == 0) {
		rv = parse_s3_url(store, url + 5, &cfg->s3, error_r);
	} else {
		*error_r = mc_errorf("blob: unsupported store URL '%s' (use "
		                     "file:///path or s3://bucket)",
		                     url);
		goto fail;
	}
	if (rv < 0)
		goto fail;
	uv_timer_init(loop, &store->deliver);
	store->deliver.data = store;
	store->cache = mc_blob_cache_new(cfg->cache_bytes);
	*store_r = store;
	return 0;
fail:
	free(store);
	*store_r = NULL;
	return -1;
}

/* ---- requests ---- */

static struct mc_blob_req *
new_req(struct mc_blob *store, enum mc_blob_op op, const char *key, void *arg,
        const char **error_r)
{
	struct mc_blob_req *req;

	if (store->closing) {
		*error_r = "blob store closing";
		return NULL;
	}
	if (!mc_blob_key_valid(key)) {
		*error_r = "blob key is not 64 lower-case hex digits";
		return NULL;
	}
	if (store->active >= store->max_concurrent &&
	    store->queued >= store->max_queued) {
		*error_r = mc_errorf("blob store busy: %u requests running and "
		                     "%u queued",
		                     store->active, store->queued);
		return NULL;
	}
	req = mc_malloc(sizeof(*req));
	req->store = store;
	req->op = op;
	memcpy(req->key, key, MC_BLOB_KEY_LEN + 1);
	req->arg = arg;
	return req;
}

static void
submit(struct mc_blob_req *req)
{
	struct mc_blob *store = req->store;

	if (store->active < store->max_concurrent) {
		start(req);
		return;
	}
	req->next = NULL;
	if (store->queue_tail != NULL)
		store->queue_tail->next = req;
	else
		store->queue_head = req;
	store->queue_tail = req;
	store->queued++;
}

int
mc_blob_put(struct mc_blob *store, const char *key, const void *data,
            size_t len, mc_blob_done_cb *cb, void *arg, const char **error_r)
{
	struct mc_blob_req *req;

	if (data == NULL && len > 0) {
		*error_r = "blob put without data";
		return -1;
	}
	req = new_req(store, MC_BLOB_OP_PUT, key, arg, error_r);
	if (req == NULL)
		return -1;
	req->data = data != NULL ? data : (const uint8_t *)"";
	req->len = len;
	req->cb.done = cb;
	submit(req);
	return 0;
}

int
mc_blob_get(struct mc_blob *store, const char *key, size_t max_size,
            mc_blob_get_cb *cb, void *arg, const char **error_r)
{
	struct mc_blob_req *req =
	        new_req(store, MC_BLOB_OP_GET, key, arg, error_r);

	if (req == NULL)
		return -1;
	/* Buffers are max_size + 1 bytes (the NUL): keep that computable. */
	req->max_size = max_size < SIZE_MAX / 2 ? max_size : SIZE_MAX / 2;
	req->cb.get = cb;
	req->out = mc_blob_cache_get(store->cache, key, req->max_size, &req->out_len);
	if (req->out != NULL) { /* a hit: answered on the next loop turn */
		req->status = MC_BLOB_OK;
		push_done(req);
		return 0;
	}
	submit(req);
	return 0;
}

int
mc_blob_head(struct mc_blob *store, const char *key, mc_blob_head_cb *cb,
             void *arg, const char **error_r)
{
	struct mc_blob_req *req =
	        new_req(store, MC_BLOB_OP_HEAD, key, arg, error_r);

	if (req == NULL)
		return -1;
	req->cb.head = cb;
	submit(req);
	return 0;
}

int
mc_blob_delete(struct mc_blob *store, const char *key, mc_blob_done_cb *cb,
               void *arg, const char **error_r)
{
	struct mc_blob_req *req =
	        new_req(store, MC_BLOB_OP_DELETE, key, arg, error_r);

	if (req == NULL)
		return -1;
	mc_blob_cache_remove(store->cache, key);
	req->cb.done = cb;
	submit(req);
	return 0;
}

void
mc_blob_stats(const struct mc_blob *store, struct mc_blob_stats *st)
{
	st->active = store->active;
	st->queued = store->queued;
	st->retries = store->retries;
	st->peak_active = store->peak_active;
	{
		struct mc_blob_cache_stats cs;

		mc_blob_cache_stats(store->cache, &cs);
		st->cache_hits = cs.hits;
		st->cache_misses = cs.misses;
		st->cache_bytes = cs.bytes;
	}
}
