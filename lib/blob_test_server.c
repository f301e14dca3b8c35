/* The scripted S3 stand-in for blob_test; see blob_test_server.h. Test
 * code: it trusts its one client and keeps the parsing minimal. */
#include "blob_test_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mem.h"
#include "sigv4.h"

#define MAX_OBJECTS 64
#define MAX_REQUEST (12 * 1024 * 1024)
#define MAX_HDRS 32

struct object {
	char *path;
	uint8_t *data;
	size_t len;
};

struct conn;

struct fake_s3 {
	uv_loop_t *loop;
	uv_tcp_t listener;
	char *access_key, *secret;
	struct fake_s3_script script;
	struct fake_s3_stats stats;
	struct object objects[MAX_OBJECTS];
	unsigned open;
	bool stopping;
	struct conn *conns;
};

struct hdr {
	char name[64];
	char value[1024];
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	struct fake_s3 *f;
	struct conn *prev, *next;
	char *buf, *out;
	size_t len, cap;
	bool complete, closing;
	int closes; /* close callbacks still to come */
	char method[16], target[1024];
	struct hdr hdrs[MAX_HDRS];
	int nh;
	size_t body_off, body_len;
};

static void
maybe_free(struct fake_s3 *f)
{
	if (!f->stopping || f->open > 0)
		return;
	for (int i = 0; i < MAX_OBJECTS; i++) {
		free(f->objects[i].path);
		free(f->objects[i].data);
	}
	free(f->access_key);
	free(f->secret);
	free(f);
}

static void
on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct fake_s3 *f = c->f;

	f->open--;
	if (--c->closes == 0) {
		free(c->buf);
		free(c->out);
		free(c);
	}
	maybe_free(f);
}

static void
conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->closes = 2;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->f->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->tcp, on_closed);
	uv_close((uv_handle_t *)&c->timer, on_closed);
}

static const char *
header(const struct conn *c, const char *name)
{
	for (int i = 0; i < c->nh; i++)
		if (strcasecmp(c->hdrs[i].name, name) == 0)
			return c->hdrs[i].value;
	return NULL;
}

/* ---- signature check ---- */

static void
percent_decode(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *in && *in != '?' && n + 1 < outlen; in++) {
		unsigned v;

		if (*in == '%' && sscanf(in + 1, "%2x", &v) == 1) {
			out[n++] = (char)v;
			in += 2;
		} else {
			out[n++] = *in;
		}
	}
	out[n] = '\0';
}

static bool
signature_ok(const struct conn *c)
{
	const char *auth = header(c, "authorization");
	const char *date = header(c, "x-amz-date");
	const char *sha = header(c, "x-amz-content-sha256");
	char signed_list[512], path[1024], *save = NULL;
	struct mc_sigv4_pair pairs[MAX_HDRS];
	struct mc_sigv4_signature sig;
	struct mc_sigv4_key key = {c->f->access_key, c->f->secret, "us-east-1",
	                           "s3"};
	struct tm tm = {0};
	const char *error, *sh;
	size_t n = 0;
	bool ok;

	if (auth == NULL || date == NULL || sha == NULL ||
	    (sh = strstr(auth, "SignedHeaders=")) == NULL ||
	    sscanf(date, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon,
	           &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	snprintf(signed_list, sizeof(signed_list), "%.*s",
	         (int)strcspn(sh + 14, ","), sh + 14);
	for (char *h = strtok_r(signed_list, ";", &save);
	     h != NULL && n < MAX_HDRS; h = strtok_r(NULL, ";", &save)) {
		const char *v = header(c, h);

		if (v == NULL)
			return false;
		pairs[n++] = (struct mc_sigv4_pair){h, v};
	}
	percent_decode(c->target, path, sizeof(path));
	struct mc_sigv4_request req = {c->method, path, NULL, 0, pairs, n, sha};
	if (mc_sigv4_sign(&req, &key, timegm(&tm), &sig, &error) < 0)
		return false;
	ok = strcmp(sig.authorization, auth) == 0;
	mc_sigv4_signature_fini(&sig);
	return ok;
}

/* ---- answers ---- */

static struct object *
find(struct fake_s3 *f, const char *path, bool create)
{
	struct object *free_slot = NULL;

	for (int i = 0; i < MAX_OBJECTS; i++) {
		if (f->objects[i].path == NULL) {
			if (free_slot == NULL)
				free_slot = &f->objects[i];
		} else if (strcmp(f->objects[i].path, path) == 0) {
			return &f->objects[i];
		}
	}
	if (create && free_slot != NULL)
		free_slot->path = mc_strdup(path);
	return create ? free_slot : NULL;
}

static void
on_written(uv_write_t *w, int status)
{
	struct conn *c = w->data;

	c->f->stats.inflight--;
	conn_close(c);
}

static void
send_answer(struct conn *c, int status, const char *reason, const void *body,
            size_t len, bool send_body, bool with_length)
{
	char head[256];
	int hl = snprintf(head, sizeof(head),
	                  "HTTP/1.1 %d %s\r\n"
	                  "Connection: close\r\n",
	                  status, reason);
	uv_buf_t b;

	if (with_length)
		hl += snprintf(head + hl, sizeof(head) - (size_t)hl,
		               "Content-Length: %zu\r\n", len);
	hl += snprintf(head + hl, sizeof(head) - (size_t)hl, "\r\n");
	if (!send_body)
		len = 0;
	c->out = mc_malloc((size_t)hl + len);
	memcpy(c->out, head, (size_t)hl);
	if (len > 0)
		memcpy(c->out + hl, body, len);
	b = uv_buf_init(c->out, (unsigned)((size_t)hl + len));
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
		c->f->stats.inflight--;
		conn_close(c);
	}
}

static void
send_xml_error(struct conn *c, int status, const char *reason, const char *code)
{
	char *xml = mc_asprintf("<?xml version=\"1.0\"?><Error><Code>%s</Code>"
	                        "<Message>fake %s</Message></Error>",
	                        code, code);

	send_answer(c, status, reason, xml, strlen(xml),
	            strcmp(c->method, "HEAD") != 0, true);
	free(xml);
}

static void
answer_object(struct conn *c, const char *path)
{
	struct fake_s3 *f = c->f;
	struct object *o = find(f, path, strcmp(c->method, "PUT") == 0);

	if (strcmp(c->method, "PUT") == 0) {
		if (o == NULL) {
			send_xml_error(c, 507, "Full", "TooManyObjects");
			return;
		}
		free(o->data);
		o->len = c->body_len;
		o->data = mc_malloc(o->len + 1);
		memcpy(o->data, c->buf + c->body_off, o->len);
		send_answer(c, 200, "OK", "", 0, true, true);
	} else if (strcmp(c->method, "DELETE") == 0) {
		if (o != NULL) {
			free(o->path);
			free(o->data);
			memset(o, 0, sizeof(*o));
		}
		send_answer(c, 204, "No Content", "", 0, false, false);
	} else if (o == NULL) {
		send_xml_error(c, 404, "Not Found", "NoSuchKey");
	} else {
		send_answer(c, 200, "OK", o->data, o->len,
		            strcmp(c->method, "GET") == 0, true);
	}
}

static void
answer(struct conn *c)
{
	struct fake_s3 *f = c->f;
	const struct fake_s3_script *s = &f->script;
	char path[1024];

	percent_decode(c->target, path, sizeof(path));
	if (!signature_ok(c)) {
		f->stats.bad_signatures++;
		send_xml_error(c, 403, "Forbidden", "SignatureDoesNotMatch");
	} else if (s->fail_first > 0) {
		f->script.fail_first--;
		send_xml_error(c, 503, "Slow Down", "SlowDown");
	} else if (s->always_status != 0) {
		const char *b = s->always_body ? s->always_body : "";

		send_answer(c, s->always_status, "Scripted", b, strlen(b), true,
		            true);
	} else if (s->get_len > 0 && strcmp(c->method, "GET") == 0) {
		char *body = mc_malloc(s->get_len);

		memset(body, 'x', s->get_len);
		send_answer(c, 200, "OK", body, s->get_len, true,
		            !s->get_no_length);
		free(body);
	} else {
		answer_object(c, path);
	}
}

static void
on_delay(uv_timer_t *t)
{
	answer(t->data);
}

/* ---- reading ---- */

/* Parse the head once it is complete; 1 ready, 0 more, -1 bad. */
static int
parse(struct conn *c)
{
	char *end, *line, *save = NULL;
	const char *cl;

	if (c->body_off == 0) {
		end = memmem(c->buf, c->len, "\r\n\r\n", 4);
		if (end == NULL)
			return c->len > 65536 ? -1 : 0;
		*end = '\0';
		c->body_off = (size_t)(end - c->buf) + 4;
		line = strtok_r(c->buf, "\r\n", &save);
		if (line == NULL ||
		    sscanf(line, "%15s %1023s", c->method, c->target) != 2)
			return -1;
		while ((line = strtok_r(NULL, "\r\n", &save)) != NULL &&
		       c->nh < MAX_HDRS) {
			char *colon = strchr(line, ':');

			if (colon == NULL)
				return -1;
			*colon = '\0';
			snprintf(c->hdrs[c->nh].name, 64, "%s", line);
			colon++;
			while (*colon == ' ')
				colon++;
			snprintf(c->hdrs[c->nh].value, 1024, "%s", colon);
			c->nh++;
		}
		cl = header(c, "content-length");
		c->body_len = cl != NULL ? strtoul(cl, NULL, 10) : 0;
	}
	return c->len >= c->body_off + c->body_len ? 1 : 0;
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct conn *c = h->data;

	if (c->cap - c->len < 65536) {
		c->cap = c->cap ? c->cap * 2 : 131072;
		c->buf = mc_realloc(c->buf, c->cap + 1);
	}
	*b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = s->data;
	struct fake_s3 *f = c->f;
	int rv;

	if (n < 0 || c->len + (size_t)n > MAX_REQUEST) {
		conn_close(c);
		return;
	}
	c->len += (size_t)n;
	rv = parse(c);
	if (rv < 0) {
		conn_close(c);
		return;
	}
	if (rv == 0 || c->complete)
		return;
	c->complete = true;
	uv_read_stop(s);
	f->stats.requests++;
	f->stats.inflight++;
	if (f->stats.inflight > f->stats.max_inflight)
		f->stats.max_inflight = f->stats.inflight;
	snprintf(f->stats.last_method, sizeof(f->stats.last_method), "%s",
	         c->method);
	snprintf(f->stats.last_path, sizeof(f->stats.last_path), "%s",
	         c->target);
	snprintf(f->stats.last_host, sizeof(f->stats.last_host), "%s",
	         header(c, "host") ? header(c, "host") : "");
	snprintf(f->stats.last_sha, sizeof(f->stats.last_sha), "%s",
	         header(c, "x-amz-content-sha256")
	                 ? header(c, "x-amz-content-sha256")
	                 : "");
	if (f->script.delay_ms > 0)
		uv_timer_start(&c->timer, on_delay, f->script.delay_ms, 0);
	else
		answer(c);
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct fake_s3 *f = server->data;
	struct conn *c;

	if (status < 0 || f->stopping)
		return;
	c = mc_malloc(sizeof(*c));
	c->f = f;
	uv_tcp_init(f->loop, &c->tcp);
	uv_timer_init(f->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	f->open += 2;
	c->next = f->conns;
	if (f->conns != NULL)
		f->conns->prev = c;
	f->conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		conn_close(c);
}

/* ---- public ---- */

static void
on_listener_closed(uv_handle_t *h)
{
	struct fake_s3 *f = h->data;

	f->open--;
	maybe_free(f);
}

struct fake_s3 *
fake_s3_start(uv_loop_t *loop, const char *access_key, const char *secret)
{
	struct fake_s3 *f = mc_malloc(sizeof(*f));
	struct sockaddr_in addr;

	f->loop = loop;
	f->access_key = mc_strdup(access_key);
	f->secret = mc_strdup(secret);
	uv_tcp_init(loop, &f->listener);
	f->listener.data = f;
	f->open = 1;
	uv_ip4_addr("127.0.0.1", 0, &addr);
	if (uv_tcp_bind(&f->listener, (const struct sockaddr *)&addr, 0) < 0 ||
	    uv_listen((uv_stream_t *)&f->listener, 64, on_connection) < 0) {
		fprintf(stderr, "fake_s3: cannot listen on 127.0.0.1\n");
		abort();
	}
	return f;
}

uint16_t
fake_s3_port(const struct fake_s3 *f)
{
	struct sockaddr_in addr;
	int len = sizeof(addr);

	uv_tcp_getsockname(&f->listener, (struct sockaddr *)&addr, &len);
	return ntohs(addr.sin_port);
}

void
fake_s3_script(struct fake_s3 *f, const struct fake_s3_script *s)
{
	f->script = *s;
}

const struct fake_s3_stats *
fake_s3_stats(const struct fake_s3 *f)
{
	return &f->stats;
}

void
fake_s3_reset_stats(struct fake_s3 *f)
{
	unsigned inflight = f->stats.inflight;

	memset(&f->stats, 0, sizeof(f->stats));
	f->stats.inflight = inflight;
}

void
fake_s3_stop(struct fake_s3 **fp)
{
	struct fake_s3 *f = *fp;

	*fp = NULL;
	f->stopping = true;
	while (f->conns != NULL)
		conn_close(f->conns);
	uv_close((uv_handle_t *)&f->listener, on_listener_closed);
}
