/* The s3:// blob backend against a real S3-compatible server (ctest label
 * integration; tests/integration/s3/run_blob_s3.py starts the servers and
 * runs this). Arguments: STRICT PATH_LENIENT VHOST_LENIENT. STRICT
 * verifies every signature (credentials S3RVER/S3RVER, bucket mcbucket);
 * the two LENIENT endpoints reach a second server that accepts any
 * well-formed signature, path style and virtual-host style
 * (bucket.s3.localhost), because the server computes virtual-host
 * canonical URIs differently from S3. Covers path and virtual-host
 * addressing, the key prefix, a 4 MiB blob, write-once and concurrent
 * puts of one key, missing keys, delete, the GET size limit, and
 * refusals of a wrong secret and an unknown access key (not retried). */
#include "blob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob_test_util.h"
#include "mem.h"
#include "test.h"

static struct mc_blob_config
real_cfg(const char *url, const char *endpoint, const char *secret)
{
	struct mc_blob_config cfg = {.url = url};

	cfg.s3.endpoint = endpoint;
	cfg.s3.access_key_id = "S3RVER";
	cfg.s3.secret_key = secret;
	cfg.s3.retry_base_ms = 50;
	cfg.s3.max_retries = 2;
	return cfg;
}

static void
test_real_path_style(const char *endpoint)
{
	enum { BIG = 4 * 1024 * 1024, N = 5 };
	uv_loop_t loop;
	struct mc_blob_config cfg =
	        real_cfg("s3://mcbucket/blobs", endpoint, "S3RVER");
	struct mc_blob_config bare =
	        real_cfg("s3://mcbucket", endpoint, "S3RVER");
	char key[MC_BLOB_KEY_LEN + 1], small_key[MC_BLOB_KEY_LEN + 1];
	char missing[MC_BLOB_KEY_LEN + 1];
	uint8_t *big = make_blob(BIG, 42, key);
	const char *small = "Subject: hi\r\n\r\nhello\r\n", *error;
	struct res rs[N] = {0}, r;
	struct mc_blob_stats st;
	struct mc_blob *s, *s2;

	uv_loop_init(&loop);
	s = open_store(&loop, &cfg);
	mc_blob_key_of(small, strlen(small), small_key);
	mc_blob_key_of("missing", 7, missing);

	r = put(&loop, s, small_key, small, strlen(small));
	CHECK(r.st == MC_BLOB_OK);
	if (r.st != MC_BLOB_OK)
		fprintf(stderr, "  put: %s\n", r.err);
	r = get(&loop, s, small_key, 1024);
	CHECK(r.st == MC_BLOB_OK && r.len == strlen(small) &&
	      memcmp(r.data, small, r.len) == 0);
	free(r.data);
	r = put(&loop, s, key, big, BIG);
	CHECK(r.st == MC_BLOB_OK);
	r = get(&loop, s, key, BIG);
	CHECK(r.st == MC_BLOB_OK && r.len == BIG &&
	      memcmp(r.data, big, BIG) == 0);
	free(r.data);
	r = get(&loop, s, key, BIG - 1);
	CHECK(r.st == MC_BLOB_ERROR && contains(r.err, "larger than"));
	r = head(&loop, s, key);
	CHECK(r.st == MC_BLOB_OK && r.size == BIG);

	/* Write-once and concurrent puts of one key. */
	in_call = true;
	for (int i = 0; i < N; i++)
		CHECK(mc_blob_put(s, key, big, BIG, on_done, &rs[i], &error) ==
		      0);
	in_call = false;
	wait_all(&loop, rs, N);
	for (int i = 0; i < N; i++)
		CHECK(rs[i].st == MC_BLOB_OK);

	r = get(&loop, s, missing, 10);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	r = head(&loop, s, missing);
	CHECK(r.st == MC_BLOB_NOT_FOUND);

	/* The prefix is part of the object name. */
	s2 = open_store(&loop, &bare);
	r = head(&loop, s2, small_key);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	close_store(&loop, &s2);

	r = del(&loop, s, small_key);
	CHECK(r.st == MC_BLOB_OK);
	r = get(&loop, s, small_key, 1024);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	r = del(&loop, s, small_key);
	CHECK(r.st == MC_BLOB_OK);
	mc_blob_stats(s, &st);
	CHECK(st.retries == 0);
	close_store(&loop, &s);
	finish_loop(&loop);
	free(big);
}

/* The server really checks signatures: a wrong secret or an unknown key
 * id is refused, and refusals are not retried. */
static void
test_real_refusals(const char *endpoint)
{
	uv_loop_t loop;
	struct mc_blob_config cfg =
	        real_cfg("s3://mcbucket", endpoint, "not-S3RVER");
	char key[MC_BLOB_KEY_LEN + 1];
	struct mc_blob_stats st;
	struct mc_blob *s;
	struct res r;

	uv_loop_init(&loop);
	mc_blob_key_of("refused", 7, key);
	s = open_store(&loop, &cfg);
	r = put(&loop, s, key, "refused", 7);
	CHECK(r.st == MC_BLOB_ERROR &&
	      contains(r.err, "HTTP 403 SignatureDoesNotMatch"));
	r = get(&loop, s, key, 10);
	CHECK(r.st == MC_BLOB_ERROR &&
	      contains(r.err, "SignatureDoesNotMatch"));
	mc_blob_stats(s, &st);
	CHECK(st.retries == 0);
	close_store(&loop, &s);

	cfg.s3.access_key_id = "NOBODY";
	cfg.s3.secret_key = "S3RVER";
	s = open_store(&loop, &cfg);
	r = head(&loop, s, key);
	CHECK(r.st == MC_BLOB_ERROR && contains(r.err, "HTTP 403"));
	close_store(&loop, &s);

	/* ...and the right secret for the same object works. */
	cfg = real_cfg("s3://mcbucket", endpoint, "S3RVER");
	s = open_store(&loop, &cfg);
	r = put(&loop, s, key, "refused", 7);
	CHECK(r.st == MC_BLOB_OK);
	close_store(&loop, &s);
	finish_loop(&loop);
}

/* Virtual-host addressing against the lenient server, read back through
 * path style to show the bucket came from the Host name. */
static void
test_real_vhost(const char *path_endpoint, const char *vhost_endpoint)
{
	uv_loop_t loop;
	struct mc_blob_config vcfg =
	        real_cfg("s3://mcbucket/v", vhost_endpoint, "S3RVER");
	struct mc_blob_config pcfg =
	        real_cfg("s3://mcbucket/v", path_endpoint, "S3RVER");
	char key[MC_BLOB_KEY_LEN + 1], missing[MC_BLOB_KEY_LEN + 1];
	uint8_t *data = make_blob(300000, 9, key);
	struct mc_blob *vs, *ps;
	struct res r;

	uv_loop_init(&loop);
	vcfg.s3.virtual_host = true;
	vs = open_store(&loop, &vcfg);
	ps = open_store(&loop, &pcfg);
	mc_blob_key_of("missing", 7, missing);
	r = put(&loop, vs, key, data, 300000);
	CHECK(r.st == MC_BLOB_OK);
	if (r.st != MC_BLOB_OK)
		fprintf(stderr, "  vhost put: %s\n", r.err);
	r = get(&loop, vs, key, 300000);
	CHECK(r.st == MC_BLOB_OK && r.len == 300000 &&
	      memcmp(r.data, data, r.len) == 0);
	free(r.data);
	r = get(&loop, ps, key, 300000);
	CHECK(r.st == MC_BLOB_OK && r.len == 300000);
	free(r.data);
	r = head(&loop, vs, missing);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	r = del(&loop, vs, key);
	CHECK(r.st == MC_BLOB_OK);
	r = head(&loop, ps, key);
	CHECK(r.st == MC_BLOB_NOT_FOUND);
	close_store(&loop, &vs);
	close_store(&loop, &ps);
	finish_loop(&loop);
	free(data);
}

int
main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr,
		        "usage: %s STRICT_ENDPOINT PATH_LENIENT "
		        "VHOST_LENIENT\n",
		        argv[0]);
		return 2;
	}
	alarm(240); /* a hung loop fails the test instead of stalling */
	test_real_path_style(argv[1]);
	test_real_refusals(argv[1]);
	test_real_vhost(argv[2], argv[3]);
	return mc_test_done();
}
