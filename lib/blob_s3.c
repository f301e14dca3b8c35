/* The s3:// blob backend: one object per blob, named prefix + key, in one
 * bucket of an S3-compatible server, path-style (endpoint/bucket/name) or
 * virtual-host style (bucket.endpoint/name). Requests are signed with AWS
 * Signature V4 (lib/sigv4; x-amz-content-sha256 is the real payload hash,
 * which for a PUT is the key itself once the content is verified) and run
 * by libcurl's multi-socket API: curl's sockets are watched with uv_poll,
 * its timeout with a uv_timer, so nothing blocks the loop.
 *
 * Each attempt gets a fresh signature and a fresh easy handle (the multi
 * handle keeps connections alive between them). Connection errors,
 * timeouts, 5xx and 429 are retried after base * 2^n milliseconds (capped,
 * with jitter, one shared retry timer); other statuses are final. A GET
 * buffers at most the caller's max_size: a larger Content-Length, or more
 * bytes than announced, stops the transfer with an error. Error bodies are
 * kept to their first kilobyte, from which the S3 <Code> and <Message> go
 * into the error text. */
#include "blob_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "curl_dl.h"

#include "error.h"
#include "log.h"
#include "mem.h"
#include "sigv4.h"

#define MAX_RETRY_DELAY_MS 10000
#define LOW_SPEED_BYTES 1024
#define LOW_SPEED_SECONDS 30
#define ERROR_BODY_MAX 1024
#define GET_INITIAL_CAP (64 * 1024)

enum s3_state { S3_HASHING, S3_RUNNING, S3_WAITING };

struct s3_backend;

/* One blob request while the backend owns it. */
struct s3_req {
	struct mc_blob_req *req;
	struct s3_backend *s3;
	struct s3_req *prev, *next; /* every live request, for close */
	enum s3_state state;
	unsigned attempt; /* attempts made */
	uint64_t due;     /* S3_WAITING: uv_now() to retry at */
	char last_error[256];
	uv_work_t work; /* S3_HASHING */
	bool hash_ok;
	/* S3_RUNNING */
	CURL *easy;
	struct curl_slist *headers;
	size_t sent;
	bool too_large;
	uint8_t *body;
	size_t body_len, body_cap;
	char err_body[ERROR_BODY_MAX + 1];
	size_t err_len;
	char curl_error[CURL_ERROR_SIZE];
};

/* A socket curl asked us to watch. */
struct s3_sock {
	uv_poll_t poll;
	struct s3_backend *s3;
	struct s3_sock *prev, *next;
	curl_socket_t fd;
};

struct s3_backend {
	struct mc_blob *store;
	CURLM *multi;
	uv_timer_t curl_timer, retry_timer;
	unsigned open_handles;
	bool closing;
	struct s3_req *reqs;
	struct s3_sock *socks;
	uint64_t rng;
	struct mc_blob_s3_settings set;
};

static const char *const op_names[] = {
        [MC_BLOB_OP_PUT] = "PUT",
        [MC_BLOB_OP_GET] = "GET",
        [MC_BLOB_OP_HEAD] = "HEAD",
        [MC_BLOB_OP_DELETE] = "DELETE",
};

static void attempt(struct s3_req *sr);
static void arm_retry_timer(struct s3_backend *s3);
static void check_done(struct s3_backend *s3);

/* ---- request bookkeeping ---- */

static void
link_req(struct s3_backend *s3, struct s3_req *sr)
{
	sr->next = s3->reqs;
	if (s3->reqs != NULL)
		s3->reqs->prev = sr;
	s3->reqs = sr;
}

static void
release_easy(struct s3_req *sr)
{
	if (sr->easy != NULL) {
		curl_multi_remove_handle(sr->s3->multi, sr->easy);
		curl_easy_cleanup(sr->easy);
		sr->easy = NULL;
	}
	curl_slist_free_all(sr->headers);
	sr->headers = NULL;
	free(sr->body);
	sr->body = NULL;
	sr->body_len = sr->body_cap = 0;
	sr->err_len = 0;
	sr->err_body[0] = '\0';
	sr->sent = 0;
	sr->too_large = false;
	sr->curl_error[0] = '\0';
}

/* The outcome is recorded in sr->req; hand it back and forget sr. */
static void
finish(struct s3_req *sr)
{
	struct s3_backend *s3 = sr->s3;
	struct mc_blob_req *req = sr->req;

	release_easy(sr);
	if (sr->prev != NULL)
		sr->prev->next = sr->next;
	else
		s3->reqs = sr->next;
	if (sr->next != NULL)
		sr->next->prev = sr->prev;
	free(sr);
	mc_blob_req_finish(req);
}

/* ---- curl <-> libuv ---- */

static void
maybe_closed(struct s3_backend *s3)
{
	if (s3->closing && s3->open_handles == 0 && s3->multi == NULL)
		mc_blob_backend_closed(s3->store);
}

static void
on_handle_closed(uv_handle_t *h)
{
	struct s3_backend *s3 = h->data;

	s3->open_handles--;
	maybe_closed(s3);
}

static void
on_sock_closed(uv_handle_t *h)
{
	struct s3_sock *sk = (struct s3_sock *)h;
	struct s3_backend *s3 = sk->s3;

	free(sk);
	s3->open_handles--;
	maybe_closed(s3);
}

static void
close_sock(struct s3_sock *sk)
{
	struct s3_backend *s3 = sk->s3;

	if (sk->prev != NULL)
		sk->prev->next = sk->next;
	else
		s3->socks = sk->next;
	if (sk->next != NULL)
		sk->next->prev = sk->prev;
	uv_poll_stop(&sk->poll);
	uv_close((uv_handle_t *)&sk->poll, on_sock_closed);
}

static void
on_poll(uv_poll_t *p, int status, int events)
{
	struct s3_sock *sk = (struct s3_sock *)p;
	struct s3_backend *s3 = sk->s3;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(s3->multi, sk->fd, flags, &running);
	check_done(s3);
}

static int
on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
               void *socketp)
{
	struct s3_backend *s3 = userp;
	struct s3_sock *sk = socketp;
	int events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (sk != NULL) {
			if (!s3->closing)
				curl_multi_assign(s3->multi, fd, NULL);
			close_sock(sk);
		}
		return 0;
	}
	if (sk == NULL) {
		sk = mc_malloc(sizeof(*sk));
		if (uv_poll_init_socket(s3->store->loop, &sk->poll, fd) < 0) {
			free(sk);
			return -1;
		}
		sk->s3 = s3;
		sk->fd = fd;
		sk->next = s3->socks;
		if (s3->socks != NULL)
			s3->socks->prev = sk;
		s3->socks = sk;
		s3->open_handles++;
		curl_multi_assign(s3->multi, fd, sk);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&sk->poll, events, on_poll);
	return 0;
}

static void
on_curl_timeout(uv_timer_t *t)
{
	struct s3_backend *s3 = t->data;
	int running;

	curl_multi_socket_action(s3->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(s3);
}

static int
on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct s3_backend *s3 = userp;

	if (s3->closing)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&s3->curl_timer);
	else
		uv_timer_start(&s3->curl_timer, on_curl_timeout,
		               (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- transfer callbacks ---- */

static size_t
on_read(char *buf, size_t size, size_t nitems, void *userp)
{
	struct s3_req *sr = userp;
	size_t n = size * nitems, left = sr->req->len - sr->sent;

	if (n > left)
		n = left;
	memcpy(buf, sr->req->data + sr->sent, n);
	sr->sent += n;
	return n;
}

static int
on_seek(void *userp, curl_off_t offset, int origin)
{
	struct s3_req *sr = userp;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > sr->req->len)
		return CURL_SEEKFUNC_CANTSEEK;
	sr->sent = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* Append a chunk of a successful GET, within the caller's limit. */
static bool
append_body(struct s3_req *sr, const char *p, size_t n)
{
	size_t max = sr->req->max_size;

	if (sr->body == NULL) {
		curl_off_t announced = -1;

		curl_easy_getinfo(sr->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
		                  &announced);
		if (announced > 0 && (uint64_t)announced > max)
			return false;
		sr->body_cap =
		        announced > 0 ? (size_t)announced : GET_INITIAL_CAP;
		if (sr->body_cap > max)
			sr->body_cap = max;
		sr->body = mc_malloc(sr->body_cap + 1);
	}
	if (n > max - sr->body_len)
		return false;
	if (sr->body_len + n > sr->body_cap) {
		size_t cap = sr->body_cap ? sr->body_cap : 1;

		while (cap < sr->body_len + n)
			cap = cap > max / 2 ? max : cap * 2;
		sr->body = mc_realloc(sr->body, cap + 1);
		sr->body_cap = cap;
	}
	memcpy(sr->body + sr->body_len, p, n);
	sr->body_len += n;
	sr->body[sr->body_len] = '\0';
	return true;
}

static size_t
on_write(char *p, size_t size, size_t nmemb, void *userp)
{
	struct s3_req *sr = userp;
	size_t n = size * nmemb;
	long code = 0;

	curl_easy_getinfo(sr->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code >= 300) {
		size_t room = ERROR_BODY_MAX - sr->err_len;
		size_t take = n < room ? n : room;

		memcpy(sr->err_body + sr->err_len, p, take);
		sr->err_len += take;
		sr->err_body[sr->err_len] = '\0';
		return n; /* the rest is read and dropped */
	}
	if (sr->req->op != MC_BLOB_OP_GET)
		return n;
	if (!append_body(sr, p, n)) {
		sr->too_large = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	return n;
}

/* ---- one attempt ---- */

static char *
object_name(const struct s3_backend *s3, const char *key)
{
	return mc_asprintf("%s%s", s3->set.prefix, key);
}

/* Sign the request and fill sr->headers; host_r and path_r are the Host
 * value and the raw path (both heap strings for the caller). */
static int
sign_attempt(struct s3_req *sr, char **host_r, char **path_r,
             const char **error_r)
{
	struct s3_backend *s3 = sr->s3;
	const char *payload = sr->req->op == MC_BLOB_OP_PUT
	                              ? sr->req->key
	                              : MC_SIGV4_EMPTY_SHA256;
	char date[MC_SIGV4_DATE_LEN + 1], *name = object_name(s3, sr->req->key);
	char *host, *path;
	time_t now = time(NULL);
	struct mc_sigv4_signature sig;
	struct mc_sigv4_key key = {s3->set.access_key_id, s3->set.secret_key,
	                           s3->set.region, "s3"};

	if (s3->set.virtual_host) {
		host = mc_asprintf("%s.%s", s3->set.bucket, s3->set.authority);
		path = mc_asprintf("/%s", name);
	} else {
		host = mc_strdup(s3->set.authority);
		path = mc_asprintf("/%s/%s", s3->set.bucket, name);
	}
	free(name);
	mc_sigv4_format_date(now, date);
	struct mc_sigv4_pair hdrs[] = {
	        {"Host", host},
	        {"x-amz-content-sha256", payload},
	        {"x-amz-date", date},
	};
	struct mc_sigv4_request r = {
	        .method = op_names[sr->req->op],
	        .path = path,
	        .headers = hdrs,
	        .header_count = 3,
	        .payload_hash = payload,
	};
	if (mc_sigv4_sign(&r, &key, now, &sig, error_r) < 0) {
		free(host);
		free(path);
		return -1;
	}
	for (size_t i = 0; i < 3; i++) {
		char *line = mc_asprintf("%s: %s", hdrs[i].name, hdrs[i].value);

		sr->headers = curl_slist_append(sr->headers, line);
		free(line);
	}
	char *auth = mc_asprintf("Authorization: %s", sig.authorization);

	sr->headers = curl_slist_append(sr->headers, auth);
	/* No "Expect: 100-continue" round trip before a PUT body. */
	sr->headers = curl_slist_append(sr->headers, "Expect:");
	free(auth);
	mc_sigv4_signature_fini(&sig);
	*host_r = host;
	*path_r = path;
	return 0;
}

static void
set_options(struct s3_req *sr, const char *url)
{
	struct s3_backend *s3 = sr->s3;
	CURL *e = sr->easy;

	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, sr->headers);
	curl_easy_setopt(e, CURLOPT_PRIVATE, sr);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, sr->curl_error);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "mail-cluster-blob");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)s3->set.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
	                 (long)s3->set.request_timeout_ms);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, (long)LOW_SPEED_BYTES);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)LOW_SPEED_SECONDS);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, sr);
	if (s3->set.ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, s3->set.ca_file);
	switch (sr->req->op) {
	case MC_BLOB_OP_PUT:
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
		                 (curl_off_t)sr->req->len);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(e, CURLOPT_READDATA, sr);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, sr);
		break;
	case MC_BLOB_OP_HEAD:
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
		break;
	case MC_BLOB_OP_DELETE:
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
		break;
	case MC_BLOB_OP_GET:
		break;
	}
}

static void
attempt(struct s3_req *sr)
{
	struct s3_backend *s3 = sr->s3;
	const char *error;
	char *host = NULL, *path = NULL, *epath, *url;
	CURLMcode mc;

	sr->state = S3_RUNNING;
	sr->attempt++;
	if (sign_attempt(sr, &host, &path, &error) < 0) {
		mc_blob_req_set(sr->req, MC_BLOB_ERROR, "blob s3: %s", error);
		finish(sr);
		return;
	}
	epath = mc_sigv4_uri_encode(path, true);
	url = mc_asprintf("%s://%s%s", s3->set.scheme, host, epath);
	sr->easy = curl_easy_init();
	if (sr->easy == NULL)
		abort(); /* out of memory */
	set_options(sr, url);
	free(url);
	free(epath);
	free(path);
	free(host);
	mc = curl_multi_add_handle(s3->multi, sr->easy);
	if (mc != CURLM_OK) {
		mc_blob_req_set(sr->req, MC_BLOB_ERROR, "blob s3: %s",
		                curl_multi_strerror(mc));
		finish(sr);
	}
}

/* ---- outcome ---- */

/* Copy the text between <tag> and </tag> of xml into out, keeping only
 * printable ASCII: it comes from the network and goes into logs. */
static void
xml_field(const char *xml, const char *tag, char *out, size_t outlen)
{
	char open[32], close[32];
	const char *b, *e;
	size_t n = 0;

	out[0] = '\0';
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	b = strstr(xml, open);
	if (b == NULL)
		return;
	b += strlen(open);
	e = strstr(b, close);
	if (e == NULL)
		return;
	for (; b < e && n + 1 < outlen; b++)
		out[n++] = (*b >= ' ' && *b < 0x7f) ? *b : '?';
	out[n] = '\0';
}

/* Curl failures worth another attempt: everything that smells of the
 * network or the server, nothing that is our configuration or our
 * callbacks refusing data. */
static bool
curl_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_WRITE_ERROR:
	case CURLE_READ_ERROR:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_ABORTED_BY_CALLBACK:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_FILESIZE_EXCEEDED:
		return false;
	default:
		return true;
	}
}

static void
on_retry_timer(uv_timer_t *t)
{
	struct s3_backend *s3 = t->data;
	uint64_t now = uv_now(s3->store->loop);
	struct s3_req *sr = s3->reqs, *next;

	for (; sr != NULL; sr = next) {
		next = sr->next; /* attempt() may finish and unlink sr */
		if (sr->state == S3_WAITING && sr->due <= now)
			attempt(sr);
	}
	arm_retry_timer(s3);
}

/* (Re)start the shared retry timer for the earliest waiting request. */
static void
arm_retry_timer(struct s3_backend *s3)
{
	uint64_t now = uv_now(s3->store->loop), first = UINT64_MAX;

	for (struct s3_req *sr = s3->reqs; sr != NULL; sr = sr->next)
		if (sr->state == S3_WAITING && sr->due < first)
			first = sr->due;
	if (first == UINT64_MAX)
		uv_timer_stop(&s3->retry_timer);
	else
		uv_timer_start(&s3->retry_timer, on_retry_timer,
		               first > now ? first - now : 0, 0);
}

static void
schedule_retry(struct s3_req *sr)
{
	struct s3_backend *s3 = sr->s3;
	uint64_t delay = s3->set.retry_base_ms, now = uv_now(s3->store->loop);

	for (unsigned i = 1; i < sr->attempt && delay < MAX_RETRY_DELAY_MS; i++)
		delay *= 2;
	if (delay > MAX_RETRY_DELAY_MS)
		delay = MAX_RETRY_DELAY_MS;
	/* Jitter in [delay/2, delay]: clients retrying together spread. */
	s3->rng ^= s3->rng << 13;
	s3->rng ^= s3->rng >> 7;
	s3->rng ^= s3->rng << 17;
	delay = delay / 2 + s3->rng % (delay / 2 + 1);
	mc_warn("blob s3 retry op=%s key=%s attempt=%u delay_ms=%llu "
	        "reason=\"%s\"",
	        op_names[sr->req->op], sr->req->key, sr->attempt,
	        (unsigned long long)delay, sr->last_error);
	release_easy(sr);
	s3->store->retries++;
	sr->state = S3_WAITING;
	sr->due = now + delay;
	arm_retry_timer(s3);
}

/* An attempt ended with a response (or none): record the outcome in
 * sr->req, or return true when it is worth another attempt. */
static bool
classify(struct s3_req *sr, CURLcode rc, long code)
{
	struct mc_blob_req *req = sr->req;
	const char *op = op_names[req->op];
	char s3code[64], msg[160];

	if (rc != CURLE_OK) {
		if (sr->too_large) {
			mc_blob_req_set(req, MC_BLOB_ERROR,
			                "blob %s is larger "
			                "than the %zu-byte limit",
			                req->key, req->max_size);
			return false;
		}
		snprintf(sr->last_error, sizeof(sr->last_error), "%s",
		         sr->curl_error[0] ? sr->curl_error
		                           : curl_easy_strerror(rc));
		if (!curl_retryable(rc))
			goto final;
		goto retry;
	}
	if (code >= 200 && code < 300) {
		mc_blob_req_set(req, MC_BLOB_OK, NULL);
		return false;
	}
	if (code == 404 && req->op == MC_BLOB_OP_DELETE) {
		mc_blob_req_set(req, MC_BLOB_OK, NULL);
		return false;
	}
	if (code == 404 && req->op != MC_BLOB_OP_PUT) {
		mc_blob_req_set(req, MC_BLOB_NOT_FOUND, "blob %s not found",
		                req->key);
		return false;
	}
	xml_field(sr->err_body, "Code", s3code, sizeof(s3code));
	xml_field(sr->err_body, "Message", msg, sizeof(msg));
	snprintf(sr->last_error, sizeof(sr->last_error), "HTTP %ld%s%s%s%s",
	         code, s3code[0] ? " " : "", s3code, msg[0] ? ": " : "", msg);
	if (code >= 500 || code == 429)
		goto retry;
final:
	mc_blob_req_set(req, MC_BLOB_ERROR, "blob s3 %s %s: %s", op, req->key,
	                sr->last_error);
	return false;
retry:
	if (sr->attempt <= sr->s3->set.max_retries)
		return true;
	mc_blob_req_set(req, MC_BLOB_ERROR,
	                "blob s3 %s %s: %s (gave up after "
	                "%u attempts)",
	                op, req->key, sr->last_error, sr->attempt);
	return false;
}

static void
attempt_done(struct s3_req *sr, CURLcode rc)
{
	struct mc_blob_req *req = sr->req;
	long code = 0;
	curl_off_t len = -1;

	curl_easy_getinfo(sr->easy, CURLINFO_RESPONSE_CODE, &code);
	if (classify(sr, rc, code)) {
		schedule_retry(sr);
		return;
	}
	if (req->status == MC_BLOB_OK && req->op == MC_BLOB_OP_GET) {
		if (sr->body == NULL)
			sr->body = mc_malloc(1);
		req->out = sr->body;
		req->out_len = sr->body_len;
		sr->body = NULL;
	} else if (req->status == MC_BLOB_OK && req->op == MC_BLOB_OP_HEAD) {
		curl_easy_getinfo(sr->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
		                  &len);
		req->size = len > 0 ? (uint64_t)len : 0;
	}
	finish(sr);
}

static void
check_done(struct s3_backend *s3)
{
	CURLMsg *msg;
	int left;

	while (s3->multi != NULL &&
	       (msg = curl_multi_info_read(s3->multi, &left)) != NULL) {
		struct s3_req *sr = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &sr);
		attempt_done(sr, msg->data.result);
	}
}

/* ---- backend ops ---- */

static void
on_hash(uv_work_t *w)
{
	struct s3_req *sr = w->data;

	sr->hash_ok = mc_blob_content_matches(sr->req->key, sr->req->data,
	                                      sr->req->len);
}

static void
on_hash_done(uv_work_t *w, int status)
{
	struct s3_req *sr = w->data;

	if (sr->s3->closing) {
		mc_blob_req_set(sr->req, MC_BLOB_ERROR, "blob store closed");
		finish(sr);
	} else if (status < 0 || !sr->hash_ok) {
		mc_blob_req_set(sr->req, MC_BLOB_ERROR,
		                "blob put: the content "
		                "does not hash to key %s",
		                sr->req->key);
		finish(sr);
	} else {
		attempt(sr);
	}
}

static void
s3_start(struct mc_blob_req *req)
{
	struct s3_backend *s3 = req->store->backend;
	struct s3_req *sr = mc_malloc(sizeof(*sr));
	int rv;

	sr->req = req;
	sr->s3 = s3;
	link_req(s3, sr);
	if (req->op != MC_BLOB_OP_PUT) {
		attempt(sr);
		return;
	}
	/* The key doubles as the signed payload hash: prove it first, off
	 * the loop (hashing megabytes takes milliseconds). */
	sr->state = S3_HASHING;
	sr->work.data = sr;
	rv = uv_queue_work(s3->store->loop, &sr->work, on_hash, on_hash_done);
	if (rv < 0) {
		mc_blob_req_set(req, MC_BLOB_ERROR, "blob s3: %s",
		                uv_strerror(rv));
		finish(sr);
	}
}

static void
s3_close(struct mc_blob *store)
{
	struct s3_backend *s3 = store->backend;
	struct s3_req *sr, *next;

	s3->closing = true;
	for (sr = s3->reqs; sr != NULL; sr = next) {
		next = sr->next;
		if (sr->state == S3_HASHING)
			continue; /* on_hash_done finishes it */
		mc_blob_req_set(sr->req, MC_BLOB_ERROR, "blob store closed");
		finish(sr);
	}
	/* Closes curl's connections; socket callbacks may still arrive. */
	curl_multi_cleanup(s3->multi);
	s3->multi = NULL;
	while (s3->socks != NULL)
		close_sock(s3->socks);
	uv_close((uv_handle_t *)&s3->curl_timer, on_handle_closed);
	uv_close((uv_handle_t *)&s3->retry_timer, on_handle_closed);
}

static void
s3_free(struct mc_blob *store)
{
	struct s3_backend *s3 = store->backend;

	if (s3 == NULL)
		return;
	mc_blob_s3_settings_fini(&s3->set);
	free(s3);
	store->backend = NULL;
}

static const struct mc_blob_ops s3_ops = {
        .name = "s3",
        .start = s3_start,
        .close = s3_close,
        .free = s3_free,
};

int
mc_blob_s3_init(struct mc_blob *store, const char *bucket, const char *prefix,
                const struct mc_blob_s3_config *cfg, const char **error_r)
{
	struct s3_backend *s3 = mc_malloc(sizeof(*s3));
	const char *error;

	store->backend = s3;
	s3->store = store;
	if (mc_blob_s3_settings_init(&s3->set, bucket, prefix, cfg, error_r) <
	    0) {
		s3_free(store);
		return -1;
	}
	/* Not thread-safe, and only needed once: mc_blob_new runs on the
	 * main thread at startup. */
	if (mc_curl_load(&error) < 0) {
		*error_r = mc_errorf("blob: %s", error);
		s3_free(store);
		return -1;
	}
	s3->multi = curl_multi_init();
	if (s3->multi == NULL)
		abort();
	curl_multi_setopt(s3->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(s3->multi, CURLMOPT_SOCKETDATA, s3);
	curl_multi_setopt(s3->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(s3->multi, CURLMOPT_TIMERDATA, s3);
	uv_timer_init(store->loop, &s3->curl_timer);
	uv_timer_init(store->loop, &s3->retry_timer);
	s3->curl_timer.data = s3->retry_timer.data = s3;
	s3->open_handles = 2;
	s3->rng = uv_hrtime() | 1;
	store->ops = &s3_ops;
	return 0;
}
