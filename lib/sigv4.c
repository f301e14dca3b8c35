/* AWS Signature Version 4 signer: canonical request, string to sign,
 * signing key and Authorization header; see sigv4.h for the rules and
 * the contract. Strings are built in a small growable buffer; every
 * derived key is wiped before the function returns. */
#include "sigv4.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "error.h"
#include "mem.h"

#define SHA256_LEN 32

/* ---- growable string ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void
sb_putn(struct sbuf *sb, const char *s, size_t n)
{
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap : 256;

		while (cap < sb->len + n + 1)
			cap *= 2;
		sb->p = mc_realloc(sb->p, cap);
		sb->cap = cap;
	}
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

static void
sb_puts(struct sbuf *sb, const char *s)
{
	sb_putn(sb, s, strlen(s));
}

static void
sb_putc(struct sbuf *sb, char c)
{
	sb_putn(sb, &c, 1);
}

/* The buffer's string, never NULL; ownership passes to the caller. */
static char *
sb_take(struct sbuf *sb)
{
	char *p;

	if (sb->p == NULL)
		sb_putn(sb, "", 0);
	p = sb->p;
	memset(sb, 0, sizeof(*sb));
	return p;
}

/* ---- encoding ---- */

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
	       c == '~';
}

static void
uri_encode_into(struct sbuf *sb, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (is_unreserved(*c) || (keep_slash && *c == '/')) {
			sb_putc(sb, (char)*c);
		} else {
			char esc[3] = {'%', hex[*c >> 4], hex[*c & 15]};

			sb_putn(sb, esc, 3);
		}
	}
}

char *
mc_sigv4_uri_encode(const char *s, bool keep_slash)
{
	struct sbuf sb = {0};

	uri_encode_into(&sb, s, keep_slash);
	return sb_take(&sb);
}

static void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void
mc_sigv4_sha256_hex(const void *data, size_t len,
                    char out[MC_SIGV4_HEX_LEN + 1])
{
	unsigned char md[SHA256_LEN];

	if (EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL) != 1)
		abort(); /* only fails on OOM or a broken OpenSSL */
	hex_encode(md, sizeof(md), out);
}

static void
hmac_sha256(const void *key, size_t key_len, const char *data,
            unsigned char out[SHA256_LEN])
{
	unsigned int len = SHA256_LEN;

	if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data,
	         strlen(data), out, &len) == NULL)
		abort();
}

void
mc_sigv4_format_date(time_t when, char out[MC_SIGV4_DATE_LEN + 1])
{
	struct tm tm;

	gmtime_r(&when, &tm);
	strftime(out, MC_SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---- validation ---- */

/* RFC 9110 token characters: header names and methods. */
static bool
is_token(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (!is_unreserved(c) && strchr("!#$%&'*+^`|", c) == NULL)
			return false;
	}
	return true;
}

/* Scope parts and the access key id end up between '/' and ',' in the
 * Authorization header: keep them to printable ASCII without those. */
static bool
is_scope_part(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c >= 0x7f || c == '/' || c == ',' || c == '=')
			return false;
	}
	return true;
}

static bool
is_payload_hash(const char *s)
{
	if (s == NULL)
		return false;
	if (strcmp(s, MC_SIGV4_UNSIGNED_PAYLOAD) == 0)
		return true;
	if (strlen(s) != MC_SIGV4_HEX_LEN)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* ---- canonical headers and query ---- */

struct hdr {
	char *name; /* lower-cased copy */
	const char *value;
	size_t index; /* position given, keeps duplicate names in order */
};

static int
hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Trimmed value with inner runs of spaces and tabs collapsed to one. */
static void
put_header_value(struct sbuf *sb, const char *v)
{
	bool space = false;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			space = true;
			continue;
		}
		if (space)
			sb_putc(sb, ' ');
		space = false;
		sb_putc(sb, *v);
	}
}

static void
free_hdrs(struct hdr *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(h[i].name);
	free(h);
}

/* Fill canon with "name:value\n" lines and signed with "a;b;c"; check the
 * headers on the way, including that x-amz-date equals date. */
static int
canonical_headers(const struct mc_sigv4_request *req, const char *date,
                  struct sbuf *canon, struct sbuf *signed_hdrs,
                  const char **error_r)
{
	struct hdr *h = mc_calloc(req->header_count, sizeof(*h));
	bool have_date = false;

	for (size_t i = 0; i < req->header_count; i++) {
		const struct mc_sigv4_pair *p = &req->headers[i];

		if (!is_token(p->name) || p->value == NULL ||
		    strpbrk(p->value, "\r\n") != NULL) {
			*error_r = mc_errorf("sigv4: invalid header '%s'",
			                     p->name ? p->name : "(null)");
			goto fail;
		}
		h[i].name = mc_strdup(p->name);
		for (char *c = h[i].name; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		h[i].value = p->value;
		h[i].index = i;
		if (strcmp(h[i].name, "x-amz-date") == 0) {
			struct sbuf v = {0};

			put_header_value(&v, p->value);
			have_date = v.p != NULL && strcmp(v.p, date) == 0;
			free(v.p);
			if (!have_date) {
				*error_r = mc_errorf("sigv4: x-amz-date is not "
				                     "the signing time %s",
				                     date);
				goto fail;
			}
		}
	}
	if (!have_date) {
		*error_r = "sigv4: the request has no x-amz-date header";
		goto fail;
	}
	qsort(h, req->header_count, sizeof(*h), hdr_cmp);
	for (size_t i = 0; i < req->header_count; i++) {
		bool same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;

		if (same) {
			sb_putc(canon, ',');
		} else {
			if (i > 0) {
				sb_putc(canon, '\n');
				sb_putc(signed_hdrs, ';');
			}
			sb_puts(canon, h[i].name);
			sb_putc(canon, ':');
			sb_puts(signed_hdrs, h[i].name);
		}
		put_header_value(canon, h[i].value);
	}
	sb_putc(canon, '\n');
	free_hdrs(h, req->header_count);
	return 0;
fail:
	free_hdrs(h, req->header_count);
	return -1;
}

struct qparam {
	char *name, *value; /* encoded */
};

static int
qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->value, y->value);
}

static void
canonical_query(const struct mc_sigv4_request *req, struct sbuf *out)
{
	struct qparam *q = mc_calloc(req->query_count, sizeof(*q));

	for (size_t i = 0; i < req->query_count; i++) {
		const char *v = req->query[i].value;

		q[i].name = mc_sigv4_uri_encode(req->query[i].name, false);
		q[i].value = mc_sigv4_uri_encode(v ? v : "", false);
	}
	qsort(q, req->query_count, sizeof(*q), qparam_cmp);
	for (size_t i = 0; i < req->query_count; i++) {
		if (i > 0)
			sb_putc(out, '&');
		sb_puts(out, q[i].name);
		sb_putc(out, '=');
		sb_puts(out, q[i].value);
		free(q[i].name);
		free(q[i].value);
	}
	free(q);
}

/* ---- signing ---- */

static int
check_request(const struct mc_sigv4_request *req,
              const struct mc_sigv4_key *key, const char **error_r)
{
	if (!is_token(req->method)) {
		*error_r = "sigv4: invalid method";
		return -1;
	}
	if (req->path == NULL || req->path[0] != '/') {
		*error_r = "sigv4: the path must start with '/'";
		return -1;
	}
	if (req->header_count > MC_SIGV4_MAX_HEADERS ||
	    req->query_count > MC_SIGV4_MAX_QUERY) {
		*error_r = "sigv4: too many headers or query parameters";
		return -1;
	}
	for (size_t i = 0; i < req->query_count; i++) {
		if (req->query[i].name == NULL) {
			*error_r = "sigv4: query parameter without a name";
			return -1;
		}
	}
	if (!is_payload_hash(req->payload_hash)) {
		*error_r = "sigv4: the payload hash is neither lower-case hex "
		           "SHA-256 nor UNSIGNED-PAYLOAD";
		return -1;
	}
	if (!is_scope_part(key->access_key_id) || !is_scope_part(key->region) ||
	    !is_scope_part(key->service) || key->secret_key == NULL) {
		*error_r = "sigv4: invalid access key id, region or service";
		return -1;
	}
	return 0;
}

/* The hex signature of sts under the key derived from secret for scope
 * (day, region, service). Every intermediate key is wiped. */
static void
sign_string(const struct mc_sigv4_key *key, const char *day, const char *sts,
            char out[MC_SIGV4_HEX_LEN + 1])
{
	size_t secret_len = strlen(key->secret_key);
	char *k_secret = mc_malloc(secret_len + 5);
	unsigned char k_date[SHA256_LEN], k_region[SHA256_LEN];
	unsigned char k_service[SHA256_LEN], k_signing[SHA256_LEN];
	unsigned char sig[SHA256_LEN];

	memcpy(k_secret, "AWS4", 4);
	memcpy(k_secret + 4, key->secret_key, secret_len);
	hmac_sha256(k_secret, secret_len + 4, day, k_date);
	hmac_sha256(k_date, sizeof(k_date), key->region, k_region);
	hmac_sha256(k_region, sizeof(k_region), key->service, k_service);
	hmac_sha256(k_service, sizeof(k_service), "aws4_request", k_signing);
	hmac_sha256(k_signing, sizeof(k_signing), sts, sig);
	hex_encode(sig, sizeof(sig), out);
	mc_wipe(k_secret, secret_len + 4);
	free(k_secret);
	mc_wipe(k_date, sizeof(k_date));
	mc_wipe(k_region, sizeof(k_region));
	mc_wipe(k_service, sizeof(k_service));
	mc_wipe(k_signing, sizeof(k_signing));
}

int
mc_sigv4_sign(const struct mc_sigv4_request *req,
              const struct mc_sigv4_key *key, time_t when,
              struct mc_sigv4_signature *sig_r, const char **error_r)
{
	struct sbuf creq = {0}, hdrs = {0}, signed_hdrs = {0}, sts = {0};
	char date[MC_SIGV4_DATE_LEN + 1], day[9], hash[MC_SIGV4_HEX_LEN + 1];
	char *scope = NULL;

	memset(sig_r, 0, sizeof(*sig_r));
	if (check_request(req, key, error_r) < 0)
		return -1;
	mc_sigv4_format_date(when, date);
	memcpy(day, date, 8);
	day[8] = '\0';
	if (canonical_headers(req, date, &hdrs, &signed_hdrs, error_r) < 0)
		goto fail;

	sb_puts(&creq, req->method);
	sb_putc(&creq, '\n');
	uri_encode_into(&creq, req->path, true);
	sb_putc(&creq, '\n');
	canonical_query(req, &creq);
	sb_putc(&creq, '\n');
	sb_putn(&creq, hdrs.p, hdrs.len);
	sb_putc(&creq, '\n');
	sb_putn(&creq, signed_hdrs.p, signed_hdrs.len);
	sb_putc(&creq, '\n');
	sb_puts(&creq, req->payload_hash);

	scope = mc_asprintf("%s/%s/%s/aws4_request", day, key->region,
	                    key->service);
	mc_sigv4_sha256_hex(creq.p, creq.len, hash);
	sb_puts(&sts, "AWS4-HMAC-SHA256\n");
	sb_puts(&sts, date);
	sb_putc(&sts, '\n');
	sb_puts(&sts, scope);
	sb_putc(&sts, '\n');
	sb_puts(&sts, hash);

	sign_string(key, day, sts.p, sig_r->signature);
	sig_r->authorization = mc_asprintf(
	        "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
	        "Signature=%s",
	        key->access_key_id, scope, signed_hdrs.p, sig_r->signature);
	sig_r->canonical_request = sb_take(&creq);
	sig_r->string_to_sign = sb_take(&sts);
	sig_r->signed_headers = sb_take(&signed_hdrs);
	free(hdrs.p);
	free(scope);
	return 0;
fail:
	free(creq.p);
	free(hdrs.p);
	free(signed_hdrs.p);
	free(sts.p);
	free(scope);
	return -1;
}

void
mc_sigv4_signature_fini(struct mc_sigv4_signature *sig)
{
	if (sig == NULL)
		return;
	free(sig->canonical_request);
	free(sig->string_to_sign);
	free(sig->signed_headers);
	free(sig->authorization);
	memset(sig, 0, sizeof(*sig));
}
