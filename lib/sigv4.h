/* AWS Signature Version 4 for requests signed in the Authorization header:
 * the canonical request, the string to sign, the signing-key derivation
 * and the Authorization header value, exactly as the published algorithm
 * describes them. A pure function module (OpenSSL for SHA-256 and HMAC):
 * no I/O, no clock, no state, so it is safe from any thread.
 *
 * Canonicalisation rules implemented (the S3 flavour of the algorithm):
 * - the path is given raw (not percent-encoded) and is URI-encoded once
 *   (S3 never double-encodes and never normalises "." or ".." segments);
 *   every byte except A-Z a-z 0-9 - _ . ~ and '/' becomes %XX (upper hex);
 * - query names and values are given raw, encoded the same way with '/'
 *   encoded too, sorted by encoded name then encoded value; a parameter
 *   without a value is written "name=";
 * - header names are lower-cased and sorted (several headers with one name
 *   are joined with ',' in the order given); values are trimmed and inner
 *   runs of spaces and tabs collapse to one space;
 * - the signed headers are exactly the headers passed: the caller includes
 *   host, x-amz-date and (for S3) x-amz-content-sha256.
 *
 * Secrets: the secret key is only read; every derived key and the
 * "AWS4"+secret buffer are wiped before returning. */
#ifndef MC_SIGV4_H
#define MC_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define MC_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* SHA-256 of the empty string, the payload hash of a body-less request. */
#define MC_SIGV4_EMPTY_SHA256                                                  \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* "YYYYMMDDTHHMMSSZ" */
#define MC_SIGV4_DATE_LEN 16
#define MC_SIGV4_HEX_LEN 64
/* Limits on what one request may carry: bounded work and memory even if a
 * caller passes something absurd. */
#define MC_SIGV4_MAX_HEADERS 64
#define MC_SIGV4_MAX_QUERY 64

/* A header or query parameter; both strings borrowed for the call. */
struct mc_sigv4_pair {
	const char *name;
	const char *value;
};

/* One request to sign; every pointer is borrowed for the call. */
struct mc_sigv4_request {
	const char *method; /* "GET", "PUT"... as sent */
	const char *path;   /* raw absolute path, "/" when empty */
	const struct mc_sigv4_pair *query;
	size_t query_count;
	const struct mc_sigv4_pair *headers; /* all headers to sign */
	size_t header_count;
	/* Lower-case hex SHA-256 of the body, or MC_SIGV4_UNSIGNED_PAYLOAD. */
	const char *payload_hash;
};

/* Who signs and for which scope; borrowed for the call. */
struct mc_sigv4_key {
	const char *access_key_id;
	const char *secret_key;
	const char *region;  /* "us-east-1" */
	const char *service; /* "s3" */
};

/* The result: heap strings owned by the struct until
 * mc_sigv4_signature_fini. */
struct mc_sigv4_signature {
	char *canonical_request;
	char *string_to_sign;
	char *signed_headers; /* "host;x-amz-date" */
	char signature[MC_SIGV4_HEX_LEN + 1];
	char *authorization; /* the Authorization header value */
};

/* Sign req with key at time when (UTC seconds). The request must carry an
 * x-amz-date header equal to mc_sigv4_format_date(when). Returns 0 and
 * fills *sig_r, or -1 with the reason in *error_r (and *sig_r zeroed)
 * when the request is malformed: no x-amz-date or a different one, a
 * header name that is not an HTTP token, a value with CR or LF, a bad
 * payload hash, a path not starting with '/', too many headers or query
 * parameters, or scope fields containing '/' or spaces. */
int mc_sigv4_sign(const struct mc_sigv4_request *req,
                  const struct mc_sigv4_key *key, time_t when,
                  struct mc_sigv4_signature *sig_r, const char **error_r);

/* Free the strings of sig and zero it; NULL-safe, may be called twice. */
void mc_sigv4_signature_fini(struct mc_sigv4_signature *sig);

/* Write when as "YYYYMMDDTHHMMSSZ" (UTC) into out. */
void mc_sigv4_format_date(time_t when, char out[MC_SIGV4_DATE_LEN + 1]);

/* Lower-case hex SHA-256 of data into out. */
void mc_sigv4_sha256_hex(const void *data, size_t len,
                         char out[MC_SIGV4_HEX_LEN + 1]);

/* URI-encode s the way the canonical request does (keeping '/' when
 * keep_slash), so a caller can build the URL it sends from the same raw
 * path it signs. Returns a heap string the caller frees. */
char *mc_sigv4_uri_encode(const char *s, bool keep_slash);

#endif
