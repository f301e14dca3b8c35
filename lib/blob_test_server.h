/* A tiny scripted S3 stand-in on 127.0.0.1 for blob_test: enough HTTP/1.1
 * (one request per connection, "Connection: close") to store, return and
 * delete objects, plus knobs to answer 5xx a number of times, always
 * answer one status, delay answers, or send an oversized GET body. It
 * checks every request's Signature V4 with lib/sigv4 over what actually
 * arrived (method, path, Host and the other signed headers), so a request
 * whose sent headers differ from the signed ones gets 403. The real
 * S3-compatible server test is tests/integration/s3/run_blob_s3.py.
 * Runs on the caller's loop; test code only. */
#ifndef MC_BLOB_TEST_SERVER_H
#define MC_BLOB_TEST_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct fake_s3_script {
	unsigned fail_first; /* answer the first N requests with 503 */
	int always_status;   /* nonzero: answer every request with it */
	const char *always_body;
	unsigned delay_ms;  /* wait before answering */
	size_t get_len;     /* nonzero: GET answers this many 'x' bytes */
	bool get_no_length; /* ... without Content-Length (until close) */
};

struct fake_s3_stats {
	unsigned requests;
	unsigned inflight, max_inflight;
	unsigned bad_signatures;
	char last_method[16];
	char last_path[1024];
	char last_host[1024];
	char last_sha[1024];
};

struct fake_s3;

/* Listen on 127.0.0.1 (OS-chosen port); requests must be signed by
 * access_key/secret for region us-east-1. */
struct fake_s3 *fake_s3_start(uv_loop_t *loop, const char *access_key,
                              const char *secret);
uint16_t fake_s3_port(const struct fake_s3 *f);
void fake_s3_script(struct fake_s3 *f, const struct fake_s3_script *s);
const struct fake_s3_stats *fake_s3_stats(const struct fake_s3 *f);
void fake_s3_reset_stats(struct fake_s3 *f);
/* Close everything; the memory is freed once the loop has run the close
 * callbacks. *f is set to NULL. */
void fake_s3_stop(struct fake_s3 **f);

#endif
