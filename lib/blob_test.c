/* Tests for lib/blob (ctest label unit): the file:// backend (put, get,
 * head, delete, write-once, content check, limits, concurrent puts of one
 * key, stale temporary files, the queue limit, close with work pending)
 * and the s3:// backend against blob_test_server.c, a scripted stand-in on
 * 127.0.0.1 that checks signatures and can answer 503s, 500s, 403s, slow
 * or oversized answers (retries, give-up, limits, concurrency, close).
 * The s3:// backend against a real S3-compatible server is blob_s3_test.c,
 * run by tests/integration/s3/run_blob_s3.py. */
#include "blob.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "blob_test_server.h"
#include "blob_test_util.h"
#include "mem.h"
#include "sigv4.h"
#include "test.h"

static char tmp_root[256];

static void
rm_rf(const char *path)
{
	char *cmd = mc_asprintf("rm -rf '%s'", path);

	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", path);
	free(cmd);
}

/* ---- file backend ---- */

static void
test_file_basic(void)
{
	uv_loop_t loop;
	char *root = mc_asprintf("%s/basic/deep/store", tmp_root);
	char *url = mc_asprintf("file://%s", root);
	struct mc_blob_config cfg = {.url = url};
	const char *data = "hello blob", *error;
	char key[MC_BLOB_KEY_LEN + 1], other[MC_BLOB_KEY_LEN + 1], *path;
	struct stat st1, st2;
	struct mc_blob *s;
	struct res r;

	uv_loop_init(&loop);
	s = open_store(&loop, &cfg);
	mc_blob_key_of(data, 10, key);
	path = mc_asprintf("%s/%.2s/%.2s/%s", root, key, key + 2, key);

	r = put(&loop, s, key, data, 10);
	CHECK(r.st == MC_BLOB_OK);
	CHECK(stat(path, &st1) == 0 && st1.st_size == 10);
	r = head(&loop, s, key);
	CHECK(r.st == MC_BLOB_OK && r.size == 10);
	r = get(&loop, s, key, 10);
	CHECK(r.st == MC_BLOB_OK && r.len == 10 &&
	      memcmp(r.data, data, 10) == 0);
	free(r.data);
	r = get(&loop, s, key, 9);
	CHECK(r.st == MC_BLOB_ERROR && contains(r.err, "limit"));

	/* Write-once: the second put succeeds and leaves the file alone. */
	r = put(&loop, s, key, data, 10);
	CHECK(r.st == MC_BLOB_OK);
	CHECK(stat(path, &st2) == 0 && st2.st_ino == st1.st_ino);

	/* A key that is not the content's hash is refused. */
	mc_blob_key_of("other", 5, other);
	r = put(&loop, s, other, data, 10);
	CHECK(r.st == MC_BLOB_ERROR && contains(r.err, "does not hash"));
	r = head(&loop, s, other);
	CHECK(r.st == MC_BLOB_NOT_FOUND && r.size == 0);
	r = get(&loop, s, other, 100);
	CHECK(r.st == MC_BLOB_NOT_FOUND && r.data == NULL);

	/* Invalid keys never reach the backend and never call back. */
	char upper[MC_BLOB_KEY_LEN + 1];

	for (int i = 0; i <= MC_BLOB_KEY_LEN; i++)
		upper[i] = (char)(key[i] >= 'a' ? key[i] - 32 : key[i]);
	CHECK(mc_blob_put(s, upper, data, 10, on_done, NULL, &error) < 0);
	CHECK(mc_blob_get(s, key + 1, 10, on_get, NULL, &error) < 0);
	CHECK(mc_blob_head(s, NULL, on_head, NULL, &error) < 0);
	CHECK(mc_blob_delete(s, "../../etc/passwd", on_done, NULL, &error) < 0);
	CHECK(!mc_blob_key_valid("gggggggggggggggggggggggggggggggggggggggggggg"
	                         "gggggggggggggggggggg"));
	CHECK(mc_blob_key_valid(key));

	r = del(&loop, s, key);
	CHECK(r.st == MC_BLOB_OK);
	CHECK(stat(path, &st1) < 0);
	r = get(&loop, s, key, 100);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	r = del(&loop, s, key); /* idempotent */
	CHECK(r.st == MC_BLOB_OK);

	/* The empty blob. */
	mc_blob_key_of("", 0, key);
	r = put(&loop, s, key, NULL, 0);
	CHECK(r.st == MC_BLOB_OK);
	r = get(&loop, s, key, 0);
	CHECK(r.st == MC_BLOB_OK && r.len == 0 && r.data != NULL);
	free(r.data);

	close_store(&loop, &s);
	finish_loop(&loop);
	free(path);
	free(url);
	free(root);
}

/* The read cache: a hit is served without the backend (the file is gone
 * behind the store's back), delete forgets the entry, blobs over an
 * eighth of the budget are not kept. */
static void
test_file_cache(void)
{
	uv_loop_t loop;
	char *root = mc_asprintf("%s/cache", tmp_root);
	char *url = mc_asprintf("file://%s", root);
	struct mc_blob_config cfg = {.url = url, .cache_bytes = 8 * 1024};
	char key[MC_BLOB_KEY_LEN + 1], big_key[MC_BLOB_KEY_LEN + 1], *path;
	char big[2048];
	struct mc_blob_stats st;
	struct mc_blob *s;
	struct res r;

	memset(big, 'b', sizeof(big));
	uv_loop_init(&loop);
	s = open_store(&loop, &cfg);
	mc_blob_key_of("cached", 6, key);
	mc_blob_key_of(big, sizeof(big), big_key);
	path = mc_asprintf("%s/%.2s/%.2s/%s", root, key, key + 2, key);
	CHECK(put(&loop, s, key, "cached", 6).st == MC_BLOB_OK);
	CHECK(put(&loop, s, big_key, big, sizeof(big)).st == MC_BLOB_OK);
	r = get(&loop, s, key, 100); /* miss, then kept */
	CHECK(r.st == MC_BLOB_OK && r.len == 6);
	free(r.data);
	CHECK(unlink(path) == 0);
	r = get(&loop, s, key, 100); /* hit: no file needed */
	CHECK(r.st == MC_BLOB_OK && r.len == 6 && memcmp(r.data, "cached", 6) == 0);
	free(r.data);
	r = get(&loop, s, key, 5); /* over max_size: not from the cache */
	CHECK(r.st != MC_BLOB_OK);
	r = get(&loop, s, big_key, sizeof(big));
	CHECK(r.st == MC_BLOB_OK && r.len == sizeof(big));
	free(r.data);
	mc_blob_stats(s, &st);
	CHECK(st.cache_hits == 1 && st.cache_bytes == 6);
	CHECK(del(&loop, s, key).st == MC_BLOB_OK);
	r = get(&loop, s, key, 100);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	close_store(&loop, &s);
	finish_loop(&loop);
	free(path);
	free(url);
	free(root);
}

static size_t
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_file_concurrent_same_key(void)
{
	enum { N = 16, LEN = 256 * 1024 };
	uv_loop_t loop;
	char *root = mc_asprintf("%s/concurrent", tmp_root);
	char *url = mc_asprintf("file://%s", root), key[MC_BLOB_KEY_LEN + 1];
	struct mc_blob_config cfg = {.url = url, .max_concurrent = 8};
	uint8_t *data = make_blob(LEN, 7, key);
	struct res rs[N] = {0}, r;
	const char *error;
	struct mc_blob *s;
	char *leaf;

	uv_loop_init(&loop);
	s = open_store(&loop, &cfg);
	in_call = true;
	for (int i = 0; i < N; i++)
		CHECK(mc_blob_put(s, key, data, LEN, on_done, &rs[i], &error) ==
		      0);
	in_call = false;
	wait_all(&loop, rs, N);
	for (int i = 0; i < N; i++)
		CHECK(rs[i].st == MC_BLOB_OK);
	r = get(&loop, s, key, LEN);
	CHECK(r.st == MC_BLOB_OK && r.len == LEN &&
	      memcmp(r.data, data, LEN) == 0);
	free(r.data);
	leaf = mc_asprintf("%s/%.2s/%.2s", root, key, key + 2);
	CHECK(count_entries(leaf) == 1); /* no temporary file left */
	close_store(&loop, &s);
	finish_loop(&loop);
	free(leaf);
	free(data);
	free(url);
	free(root);
}

static void
write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (f != NULL) {
		fputs(content, f);
		fclose(f);
	}
}

/* A crash leaves .tmp files behind, complete or not: harmless. */
static void
test_file_stale_temp(void)
{
	uv_loop_t loop;
	char *root = mc_asprintf("%s/stale", tmp_root);
	char *url = mc_asprintf("file://%s", root);
	struct mc_blob_config cfg = {.url = url};
	const char *data = "the real content";
	char key[MC_BLOB_KEY_LEN + 1], key2[MC_BLOB_KEY_LEN + 1];
	char *d1, *d2, *t1, *t2;
	struct mc_blob *s;
	struct res r;

	uv_loop_init(&loop);
	s = open_store(&loop, &cfg);
	mc_blob_key_of(data, strlen(data), key);
	mc_blob_key_of("never stored", 12, key2);
	d1 = mc_asprintf("%s/%.2s", root, key);
	d2 = mc_asprintf("%s/%.2s/%.2s", root, key, key + 2);
	t1 = mc_asprintf("%s/.tmp.%s.1.1", d2, key);
	t2 = mc_asprintf("%s/.tmp.%s.1.2", d2, key2);
	CHECK(mkdir(d1, 0750) == 0 && mkdir(d2, 0750) == 0);
	write_file(t1, "garb");         /* a torn write of this very blob */
	write_file(t2, "never stored"); /* complete, never renamed */

	r = get(&loop, s, key, 100);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	r = put(&loop, s, key, data, strlen(data));
	CHECK(r.st == MC_BLOB_OK);
	r = get(&loop, s, key, 100);
	CHECK(r.st == MC_BLOB_OK && r.len == strlen(data) &&
	      memcmp(r.data, data, r.len) == 0);
	free(r.data);
	r = head(&loop, s, key2);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	CHECK(access(t1, F_OK) == 0 && access(t2, F_OK) == 0);

	close_store(&loop, &s);
	finish_loop(&loop);
	free(t1);
	free(t2);
	free(d1);
	free(d2);
	free(url);
	free(root);
}

static void
test_file_queue_limit(void)
{
	uv_loop_t loop;
	char *url = mc_asprintf("file://%s/queue", tmp_root);
	struct mc_blob_config cfg = {
	        .url = url, .max_concurrent = 1, .max_queued = 2};
	char keys[3][MC_BLOB_KEY_LEN + 1], extra[MC_BLOB_KEY_LEN + 1];
	const char *texts[3] = {"one", "two", "three"}, *error = NULL;
	struct mc_blob_stats st;
	struct res rs[3] = {0};
	struct mc_blob *s;

	uv_loop_init(&loop);
	s = open_store(&loop, &cfg);
	in_call = true;
	for (int i = 0; i < 3; i++) {
		mc_blob_key_of(texts[i], strlen(texts[i]), keys[i]);
		CHECK(mc_blob_put(s, keys[i], texts[i], strlen(texts[i]),
		                  on_done, &rs[i], &error) == 0);
	}
	mc_blob_key_of("four", 4, extra);
	CHECK(mc_blob_put(s, extra, "four", 4, on_done, NULL, &error) < 0);
	in_call = false;
	CHECK(error != NULL && contains(error, "busy"));
	mc_blob_stats(s, &st);
	CHECK(st.active == 1 && st.queued == 2);
	wait_all(&loop, rs, 3);
	for (int i = 0; i < 3; i++)
		CHECK(rs[i].st == MC_BLOB_OK);
	CHECK(rs[0].seq < rs[1].seq && rs[1].seq < rs[2].seq); /* FIFO */
	mc_blob_stats(s, &st);
	CHECK(st.peak_active == 1 && st.active == 0 && st.queued == 0);
	close_store(&loop, &s);
	finish_loop(&loop);
	free(url);
}

struct close_check {
	struct res *rs;
	size_t n;
	bool closed, all_done_first;
};

static void
on_closed_check(void *arg)
{
	struct close_check *cc = arg;

	cc->closed = true;
	cc->all_done_first = true;
	for (size_t i = 0; i < cc->n; i++)
		cc->all_done_first &= cc->rs[i].done;
}

static void
test_file_close_pending(void)
{
	uv_loop_t loop;
	char *url = mc_asprintf("file://%s/closing", tmp_root);
	struct mc_blob_config cfg = {.url = url, .max_concurrent = 1};
	char keys[4][MC_BLOB_KEY_LEN + 1];
	const char *texts[4] = {"a", "b", "c", "d"}, *error;
	struct res rs[4] = {0};
	struct close_check cc = {rs, 4, false, false};
	struct mc_blob *s;

	uv_loop_init(&loop);
	s = open_store(&loop, &cfg);
	for (int i = 0; i < 4; i++) {
		mc_blob_key_of(texts[i], 1, keys[i]);
		CHECK(mc_blob_put(s, keys[i], texts[i], 1, on_done, &rs[i],
		                  &error) == 0);
	}
	in_call = true;
	mc_blob_close(&s, on_closed_check, &cc);
	in_call = false;
	CHECK(s == NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(cc.closed && cc.all_done_first);
	CHECK(rs[0].st == MC_BLOB_OK); /* already on the thread pool */
	for (int i = 1; i < 4; i++)
		CHECK(rs[i].st == MC_BLOB_ERROR &&
		      contains(rs[i].err, "closed"));
	mc_blob_close(&s, NULL, NULL); /* NULL-safe */
	finish_loop(&loop);
	free(url);
}

static void
expect_bad_config(uv_loop_t *loop, const char *url,
                  const struct mc_blob_s3_config *s3, const char *why)
{
	struct mc_blob_config cfg = {.url = url};
	struct mc_blob *s = (struct mc_blob *)1;
	const char *error = NULL;

	if (s3 != NULL)
		cfg.s3 = *s3;
	CHECK(mc_blob_new(loop, &cfg, &s, &error) < 0);
	CHECK(s == NULL && error != NULL);
	if (error != NULL && strstr(error, why) == NULL)
		fprintf(stderr, "  %s: '%s' lacks '%s'\n", url, error, why);
}

static void
test_bad_config(void)
{
	uv_loop_t loop;
	struct mc_blob_s3_config ok = {.endpoint = "http://127.0.0.1:9",
	                               .access_key_id = "a",
	                               .secret_key = "b"};
	struct mc_blob_s3_config c;

	uv_loop_init(&loop);
	expect_bad_config(&loop, NULL, NULL, "unsupported");
	expect_bad_config(&loop, "ftp://x", NULL, "unsupported");
	expect_bad_config(&loop, "file://relative/path", NULL, "absolute");
	expect_bad_config(&loop, "file:///proc/no/such/place", NULL, "mkdir");
	expect_bad_config(&loop, "s3://", &ok, "bucket");
	expect_bad_config(&loop, "s3://Upper_Case", &ok, "bucket");
	expect_bad_config(&loop, "s3://mcbucket/a b", &ok, "prefix");
	c = ok;
	c.secret_key = NULL;
	expect_bad_config(&loop, "s3://mcbucket", &c, "secret");
	c = ok;
	c.endpoint = "ftp://127.0.0.1";
	expect_bad_config(&loop, "s3://mcbucket", &c, "endpoint");
	c = ok;
	c.endpoint = "http://host/path";
	expect_bad_config(&loop, "s3://mcbucket", &c, "endpoint");
	c = ok;
	c.endpoint = "http://[::1]:9000";
	c.virtual_host = true;
	expect_bad_config(&loop, "s3://mcbucket", &c, "IPv6");
	c = ok;
	c.region = "US EAST";
	expect_bad_config(&loop, "s3://mcbucket", &c, "region");
	finish_loop(&loop);
}

/* ---- s3 backend against the scripted stand-in ---- */

#define FAKE_KEY "AKFAKEEXAMPLE"
#define FAKE_SECRET "fake/secret+key"

struct fake_env {
	uv_loop_t loop;
	struct fake_s3 *fake;
	char endpoint[64];
};

static void
fake_env_init(struct fake_env *e)
{
	uv_loop_init(&e->loop);
	e->fake = fake_s3_start(&e->loop, FAKE_KEY, FAKE_SECRET);
	snprintf(e->endpoint, sizeof(e->endpoint), "http://127.0.0.1:%u",
	         fake_s3_port(e->fake));
}

static void
fake_env_fini(struct fake_env *e)
{
	fake_s3_stop(&e->fake);
	finish_loop(&e->loop);
}

static struct mc_blob_config
fake_cfg(struct fake_env *e, const char *url)
{
	struct mc_blob_config cfg = {.url = url};

	cfg.s3.endpoint = e->endpoint;
	cfg.s3.access_key_id = FAKE_KEY;
	cfg.s3.secret_key = FAKE_SECRET;
	cfg.s3.retry_base_ms = 5;
	cfg.s3.max_retries = 2;
	return cfg;
}

static void
test_s3_fake_roundtrip(void)
{
	struct fake_env e;
	struct mc_blob_config cfg;
	const struct fake_s3_stats *fs;
	char key[MC_BLOB_KEY_LEN + 1], missing[MC_BLOB_KEY_LEN + 1];
	char *want_path, *want_host;
	uint8_t *data = make_blob(100000, 1, key);
	struct mc_blob *s;
	struct res r;

	fake_env_init(&e);
	cfg = fake_cfg(&e, "s3://mcbucket/pre");
	s = open_store(&e.loop, &cfg);
	fs = fake_s3_stats(e.fake);
	mc_blob_key_of("missing", 7, missing);
	want_path = mc_asprintf("/mcbucket/pre/%s", key);
	want_host = mc_asprintf("127.0.0.1:%u", fake_s3_port(e.fake));

	r = put(&e.loop, s, key, data, 100000);
	CHECK(r.st == MC_BLOB_OK);
	CHECK_STR(fs->last_method, "PUT");
	CHECK_STR(fs->last_path, want_path);
	CHECK_STR(fs->last_host, want_host);
	CHECK_STR(fs->last_sha, key); /* the real payload hash */
	r = get(&e.loop, s, key, 100000);
	CHECK(r.st == MC_BLOB_OK && r.len == 100000 &&
	      memcmp(r.data, data, r.len) == 0);
	CHECK_STR(fs->last_sha, MC_SIGV4_EMPTY_SHA256);
	free(r.data);
	r = head(&e.loop, s, key);
	CHECK(r.st == MC_BLOB_OK && r.size == 100000);
	r = get(&e.loop, s, missing, 10);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	r = head(&e.loop, s, missing);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	r = del(&e.loop, s, key);
	CHECK(r.st == MC_BLOB_OK);
	CHECK_STR(fs->last_method, "DELETE");
	r = get(&e.loop, s, key, 100000);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	CHECK(fs->bad_signatures == 0);

	/* A key that is not the content's hash never leaves the process. */
	fake_s3_reset_stats(e.fake);
	r = put(&e.loop, s, missing, data, 10);
	CHECK(r.st == MC_BLOB_ERROR && contains(r.err, "does not hash"));
	CHECK(fs->requests == 0);

	close_store(&e.loop, &s);
	fake_env_fini(&e);
	free(want_path);
	free(want_host);
	free(data);
}

/* Virtual-host style: the bucket moves into the host name. curl resolves
 * every *.localhost name to loopback by itself, no DNS involved. */
static void
test_s3_fake_vhost(void)
{
	struct fake_env e;
	struct mc_blob_config cfg;
	char endpoint[64], key[MC_BLOB_KEY_LEN + 1], *want_host, *want_path;
	uint8_t *data = make_blob(1000, 2, key);
	const struct fake_s3_stats *fs;
	struct mc_blob *s;
	struct res r;

	fake_env_init(&e);
	fs = fake_s3_stats(e.fake);
	snprintf(endpoint, sizeof(endpoint), "http://localhost:%u",
	         fake_s3_port(e.fake));
	cfg = fake_cfg(&e, "s3://mcbucket");
	cfg.s3.endpoint = endpoint;
	cfg.s3.virtual_host = true;
	s = open_store(&e.loop, &cfg);
	want_host = mc_asprintf("mcbucket.localhost:%u", fake_s3_port(e.fake));
	want_path = mc_asprintf("/%s", key);
	r = put(&e.loop, s, key, data, 1000);
	CHECK(r.st == MC_BLOB_OK);
	if (r.st != MC_BLOB_OK)
		fprintf(stderr, "  vhost put: %s\n", r.err);
	CHECK_STR(fs->last_host, want_host);
	CHECK_STR(fs->last_path, want_path);
	r = get(&e.loop, s, key, 1000);
	CHECK(r.st == MC_BLOB_OK && r.len == 1000);
	free(r.data);
	CHECK(fs->bad_signatures == 0);
	close_store(&e.loop, &s);
	fake_env_fini(&e);
	free(want_host);
	free(want_path);
	free(data);
}

static void
test_s3_fake_retries(void)
{
	struct fake_env e;
	struct mc_blob_config cfg;
	struct fake_s3_script script = {.fail_first = 2};
	const struct fake_s3_stats *fs;
	char key[MC_BLOB_KEY_LEN + 1];
	uint8_t *data = make_blob(5000, 3, key);
	struct mc_blob_stats st;
	struct mc_blob *s;
	struct res r;

	fake_env_init(&e);
	fs = fake_s3_stats(e.fake);
	cfg = fake_cfg(&e, "s3://mcbucket");
	s = open_store(&e.loop, &cfg);

	/* 503 twice, then the real answer: success on the third attempt. */
	fake_s3_script(e.fake, &script);
	r = put(&e.loop, s, key, data, 5000);
	CHECK(r.st == MC_BLOB_OK);
	CHECK(fs->requests == 3);
	mc_blob_stats(s, &st);
	CHECK(st.retries == 2);
	fake_s3_script(e.fake, &script);
	r = get(&e.loop, s, key, 5000);
	CHECK(r.st == MC_BLOB_OK && r.len == 5000 &&
	      memcmp(r.data, data, 5000) == 0);
	free(r.data);
	CHECK(fs->requests == 6);

	/* 500 for ever: give up after max_retries + 1 attempts. */
	fake_s3_reset_stats(e.fake);
	script = (struct fake_s3_script){
	        .always_status = 500,
	        .always_body = "<Error><Code>InternalError</Code>"
	                       "<Message>boom\x01</Message></Error>"};
	fake_s3_script(e.fake, &script);
	r = put(&e.loop, s, key, data, 5000);
	CHECK(r.st == MC_BLOB_ERROR);
	CHECK(contains(r.err, "HTTP 500 InternalError: boom?"));
	CHECK(contains(r.err, "gave up after 3 attempts"));
	CHECK(fs->requests == 3);

	/* 403 is final at once, with the S3 error code in the text. */
	fake_s3_reset_stats(e.fake);
	script.always_status = 403;
	script.always_body = "<Error><Code>AccessDenied</Code></Error>";
	fake_s3_script(e.fake, &script);
	r = get(&e.loop, s, key, 5000);
	CHECK(r.st == MC_BLOB_ERROR &&
	      contains(r.err, "HTTP 403 AccessDenied"));
	CHECK(fs->requests == 1);
	close_store(&e.loop, &s);

	/* A wrong secret: the stand-in's signature check refuses it. */
	fake_s3_reset_stats(e.fake);
	script = (struct fake_s3_script){0};
	fake_s3_script(e.fake, &script);
	cfg.s3.secret_key = "not the secret";
	s = open_store(&e.loop, &cfg);
	r = get(&e.loop, s, key, 10);
	CHECK(r.st == MC_BLOB_ERROR &&
	      contains(r.err, "SignatureDoesNotMatch"));
	CHECK(fs->requests == 1 && fs->bad_signatures == 1);
	r = head(&e.loop, s, key); /* no body, so just the status */
	CHECK(r.st == MC_BLOB_ERROR && contains(r.err, "HTTP 403"));
	close_store(&e.loop, &s);
	fake_env_fini(&e);
	free(data);
}

static void
test_s3_fake_refused(void)
{
	uv_loop_t loop;
	uv_tcp_t t;
	struct sockaddr_in addr;
	int alen = sizeof(addr);
	char endpoint[64], key[MC_BLOB_KEY_LEN + 1];
	struct mc_blob_config cfg = {.url = "s3://mcbucket"};
	struct mc_blob_stats st;
	struct mc_blob *s;
	struct res r;

	/* A port that was just free: nothing listens there now. */
	uv_loop_init(&loop);
	uv_tcp_init(&loop, &t);
	uv_ip4_addr("127.0.0.1", 0, &addr);
	uv_tcp_bind(&t, (struct sockaddr *)&addr, 0);
	uv_tcp_getsockname(&t, (struct sockaddr *)&addr, &alen);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u",
	         ntohs(addr.sin_port));
	cfg.s3.endpoint = endpoint;
	cfg.s3.access_key_id = FAKE_KEY;
	cfg.s3.secret_key = FAKE_SECRET;
	cfg.s3.retry_base_ms = 5;
	cfg.s3.max_retries = 1;
	s = open_store(&loop, &cfg);
	mc_blob_key_of("x", 1, key);
	r = get(&loop, s, key, 10);
	CHECK(r.st == MC_BLOB_ERROR && contains(r.err, "gave up after 2"));
	mc_blob_stats(s, &st);
	CHECK(st.retries == 1);
	close_store(&loop, &s);
	finish_loop(&loop);
}

static void
test_s3_fake_limits(void)
{
	struct fake_env e;
	struct mc_blob_config cfg;
	struct fake_s3_script script = {.get_len = 2 * 1024 * 1024};
	char key[MC_BLOB_KEY_LEN + 1];
	struct mc_blob *s;
	struct res r;

	fake_env_init(&e);
	cfg = fake_cfg(&e, "s3://mcbucket");
	s = open_store(&e.loop, &cfg);
	mc_blob_key_of("big", 3, key);
	for (int announced = 1; announced >= 0; announced--) {
		script.get_no_length = !announced;
		fake_s3_script(e.fake, &script);
		r = get(&e.loop, s, key, 1024 * 1024);
		CHECK(r.st == MC_BLOB_ERROR && contains(r.err, "larger than"));
		CHECK(r.data == NULL);
		r = get(&e.loop, s, key, 2 * 1024 * 1024);
		CHECK(r.st == MC_BLOB_OK && r.len == 2 * 1024 * 1024);
		CHECK(r.data != NULL && r.data[0] == 'x' &&
		      r.data[r.len - 1] == 'x');
		free(r.data);
	}
	close_store(&e.loop, &s);
	fake_env_fini(&e);
}

static void
test_s3_fake_concurrency(void)
{
	enum { N = 10 };
	struct fake_env e;
	struct mc_blob_config cfg;
	struct fake_s3_script script = {.delay_ms = 30};
	char keys[N][MC_BLOB_KEY_LEN + 1];
	uint8_t *data[N];
	struct res rs[N] = {0};
	struct mc_blob_stats st;
	const char *error;
	struct mc_blob *s;

	fake_env_init(&e);
	cfg = fake_cfg(&e, "s3://mcbucket");
	cfg.max_concurrent = 3;
	s = open_store(&e.loop, &cfg);
	fake_s3_script(e.fake, &script);
	in_call = true;
	for (int i = 0; i < N; i++) {
		data[i] = make_blob(2000, 100 + (uint32_t)i, keys[i]);
		CHECK(mc_blob_put(s, keys[i], data[i], 2000, on_done, &rs[i],
		                  &error) == 0);
	}
	in_call = false;
	mc_blob_stats(s, &st);
	CHECK(st.active == 3 && st.queued == N - 3);
	wait_all(&e.loop, rs, N);
	for (int i = 0; i < N; i++) {
		CHECK(rs[i].st == MC_BLOB_OK);
		free(data[i]);
	}
	mc_blob_stats(s, &st);
	CHECK(st.peak_active == 3);
	CHECK(fake_s3_stats(e.fake)->max_inflight <= 3);
	CHECK(fake_s3_stats(e.fake)->requests == N);
	close_store(&e.loop, &s);
	fake_env_fini(&e);
}

static void
test_s3_fake_close_inflight(void)
{
	enum { N = 3 };
	struct fake_env e;
	struct mc_blob_config cfg;
	struct fake_s3_script script = {.delay_ms = 5000};
	char keys[N][MC_BLOB_KEY_LEN + 1];
	struct res rs[N] = {0};
	struct close_check cc = {rs, N, false, false};
	const char *error;
	struct mc_blob *s;

	fake_env_init(&e);
	cfg = fake_cfg(&e, "s3://mcbucket");
	s = open_store(&e.loop, &cfg);
	fake_s3_script(e.fake, &script);
	for (int i = 0; i < N; i++) {
		char t[2] = {(char)('a' + i), 0};

		mc_blob_key_of(t, 1, keys[i]);
		CHECK(mc_blob_get(s, keys[i], 10, on_get, &rs[i], &error) == 0);
	}
	while (fake_s3_stats(e.fake)->requests < N)
		uv_run(&e.loop, UV_RUN_ONCE);
	in_call = true;
	mc_blob_close(&s, on_closed_check, &cc);
	in_call = false;
	while (!cc.closed && uv_run(&e.loop, UV_RUN_ONCE) != 0)
		;
	CHECK(cc.closed && cc.all_done_first);
	for (int i = 0; i < N; i++)
		CHECK(rs[i].st == MC_BLOB_ERROR &&
		      contains(rs[i].err, "closed"));
	fake_env_fini(&e);
}

int
main(void)
{
	alarm(240); /* a hung loop fails the test instead of stalling ctest */
	snprintf(tmp_root, sizeof(tmp_root), "/tmp/blob_test.XXXXXX");
	if (mkdtemp(tmp_root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_file_basic();
	test_file_cache();
	test_file_concurrent_same_key();
	test_file_stale_temp();
	test_file_queue_limit();
	test_file_close_pending();
	test_bad_config();
	test_s3_fake_roundtrip();
	test_s3_fake_vhost();
	test_s3_fake_retries();
	test_s3_fake_refused();
	test_s3_fake_limits();
	test_s3_fake_concurrency();
	test_s3_fake_close_inflight();
	rm_rf(tmp_root);
	return mc_test_done();
}
