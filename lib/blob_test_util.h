/* Helpers shared by blob_test.c and blob_s3_test.c: run one blob request
 * to completion on a loop, record callbacks (checking each runs once and
 * never inside the call that started it), open and close stores, make
 * deterministic test data. Header-only test code (static inline, so a test
 * that uses part of it compiles without unused-function warnings); include
 * after test.h, in one file per test binary. */
#ifndef MC_BLOB_TEST_UTIL_H
#define MC_BLOB_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "mem.h"
#include "test.h"

struct res {
	bool done;
	enum mc_blob_status st;
	char err[512];
	uint8_t *data;
	size_t len;
	uint64_t size;
	int seq;
};

static int seq_counter;
static bool in_call; /* a callback must never run inside a blob_* call */

static inline void
record(struct res *r, enum mc_blob_status st, const char *error)
{
	CHECK(!in_call);
	CHECK(!r->done);
	r->done = true;
	r->st = st;
	snprintf(r->err, sizeof(r->err), "%s", error ? error : "");
	r->seq = ++seq_counter;
}

static inline void
on_done(void *arg, enum mc_blob_status st, const char *error)
{
	record(arg, st, error);
}

static inline void
on_get(void *arg, enum mc_blob_status st, uint8_t *data, size_t len,
       const char *error)
{
	struct res *r = arg;

	record(r, st, error);
	r->data = data;
	r->len = len;
	CHECK(st == MC_BLOB_OK ? data != NULL && data[len] == '\0'
	                       : data == NULL);
}

static inline void
on_head(void *arg, enum mc_blob_status st, uint64_t size, const char *error)
{
	struct res *r = arg;

	record(r, st, error);
	r->size = size;
}

static inline void
wait_all(uv_loop_t *loop, struct res *r, size_t n)
{
	bool alive = true;

	for (;;) {
		size_t done = 0;

		for (size_t i = 0; i < n; i++)
			done += r[i].done;
		if (done == n)
			return;
		if (!alive) {
			CHECK(!"loop ran dry before the callbacks");
			return;
		}
		alive = uv_run(loop, UV_RUN_ONCE) != 0;
	}
}

static inline struct res
put(uv_loop_t *loop, struct mc_blob *s, const char *key, const void *d,
    size_t len)
{
	struct res r = {0};
	const char *error;

	in_call = true;
	if (mc_blob_put(s, key, d, len, on_done, &r, &error) < 0) {
		in_call = false;
		r.done = true;
		r.st = -1;
		snprintf(r.err, sizeof(r.err), "%s", error);
		return r;
	}
	in_call = false;
	wait_all(loop, &r, 1);
	return r;
}

/* get; the caller frees r.data */
static inline struct res
get(uv_loop_t *loop, struct mc_blob *s, const char *key, size_t max)
{
	struct res r = {0};
	const char *error;

	in_call = true;
	CHECK(mc_blob_get(s, key, max, on_get, &r, &error) == 0);
	in_call = false;
	wait_all(loop, &r, 1);
	return r;
}

static inline struct res
head(uv_loop_t *loop, struct mc_blob *s, const char *key)
{
	struct res r = {0};
	const char *error;

	in_call = true;
	CHECK(mc_blob_head(s, key, on_head, &r, &error) == 0);
	in_call = false;
	wait_all(loop, &r, 1);
	return r;
}

static inline struct res
del(uv_loop_t *loop, struct mc_blob *s, const char *key)
{
	struct res r = {0};
	const char *error;

	in_call = true;
	CHECK(mc_blob_delete(s, key, on_done, &r, &error) == 0);
	in_call = false;
	wait_all(loop, &r, 1);
	return r;
}

static inline void
on_closed(void *arg)
{
	*(bool *)arg = true;
}

static inline void
close_store(uv_loop_t *loop, struct mc_blob **s)
{
	bool closed = false;

	mc_blob_close(s, on_closed, &closed);
	CHECK(*s == NULL);
	while (!closed && uv_run(loop, UV_RUN_ONCE) != 0)
		;
	CHECK(closed);
}

static inline void
finish_loop(uv_loop_t *loop)
{
	uv_run(loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(loop) == 0);
}

static inline struct mc_blob *
open_store(uv_loop_t *loop, const struct mc_blob_config *cfg)
{
	struct mc_blob *s = NULL;
	const char *error = NULL;

	if (mc_blob_new(loop, cfg, &s, &error) < 0)
		fprintf(stderr, "mc_blob_new(%s): %s\n", cfg->url, error);
	CHECK(s != NULL);
	return s;
}

/* Deterministic pseudo-random bytes. */
static inline uint8_t *
make_blob(size_t len, uint32_t seed, char key[MC_BLOB_KEY_LEN + 1])
{
	uint8_t *d = mc_malloc(len + 1);

	for (size_t i = 0; i < len; i++) {
		seed = seed * 1664525u + 1013904223u;
		d[i] = (uint8_t)(seed >> 24);
	}
	mc_blob_key_of(d, len, key);
	return d;
}

static inline bool
contains(const char *haystack, const char *needle)
{
	bool ok = strstr(haystack, needle) != NULL;

	if (!ok)
		fprintf(stderr, "  '%s' lacks '%s'\n", haystack, needle);
	return ok;
}

#endif
