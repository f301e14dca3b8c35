/* Settings of the s3:// blob backend: defaults, and validation of the
 * bucket, key prefix, region, credentials and endpoint URL (see
 * blob_private.h). Runs once, when a store is created. */
#include "blob_private.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mem.h"

#define DEFAULT_REGION "us-east-1"
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_REQUEST_TIMEOUT_MS 120000
#define DEFAULT_MAX_RETRIES 4
#define DEFAULT_RETRY_BASE_MS 200

static bool
valid_bucket(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum &&
		    ((i == 0 || i == n - 1) || (c != '-' && c != '.')))
			return false;
	}
	return true;
}

/* Object names stay plain so the logged name is the stored one. */
static bool
valid_prefix(const char *p)
{
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("-_./", *p) != NULL))
			return false;
	return true;
}

static bool
valid_region(const char *r)
{
	if (*r == '\0')
		return false;
	for (; *r; r++)
		if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') ||
		      *r == '-'))
			return false;
	return true;
}

/* "http(s)://authority[/]" -> scheme and authority (host[:port]). */
static int
parse_endpoint(struct mc_blob_s3_settings *set, const char *ep,
               const char **error_r)
{
	const char *rest;
	size_t n;

	if (strncmp(ep, "http://", 7) == 0) {
		set->scheme = mc_strdup("http");
		rest = ep + 7;
	} else if (strncmp(ep, "https://", 8) == 0) {
		set->scheme = mc_strdup("https");
		rest = ep + 8;
	} else {
		*error_r = mc_errorf("blob: s3 endpoint '%s' is not "
		                     "http(s)://host[:port]",
		                     ep);
		return -1;
	}
	n = strcspn(rest, "/");
	if (n == 0 || (rest[n] == '/' && rest[n + 1] != '\0') ||
	    strcspn(rest, "@?#% ") < n) {
		*error_r = mc_errorf("blob: s3 endpoint '%s' is not "
		                     "http(s)://host[:port]",
		                     ep);
		return -1;
	}
	set->authority = mc_strndup(rest, n);
	if (set->virtual_host && set->authority[0] == '[') {
		*error_r = "blob: virtual-host style needs a host name, not an "
		           "IPv6 address";
		return -1;
	}
	return 0;
}

int
mc_blob_s3_settings_init(struct mc_blob_s3_settings *set, const char *bucket,
                         const char *prefix,
                         const struct mc_blob_s3_config *cfg,
                         const char **error_r)
{
	char *ep;
	int rv;

	memset(set, 0, sizeof(*set));
	if (!valid_bucket(bucket)) {
		*error_r =
		        mc_errorf("blob: invalid s3 bucket name '%s'", bucket);
		return -1;
	}
	if (!valid_prefix(prefix)) {
		*error_r =
		        mc_errorf("blob: s3 prefix '%s' has characters other "
		                  "than letters, digits and -_./",
		                  prefix);
		return -1;
	}
	set->region = mc_strdup(cfg->region ? cfg->region : DEFAULT_REGION);
	if (!valid_region(set->region)) {
		*error_r =
		        mc_errorf("blob: invalid s3 region '%s'", set->region);
		return -1;
	}
	if (cfg->access_key_id == NULL || *cfg->access_key_id == '\0' ||
	    cfg->secret_key == NULL || *cfg->secret_key == '\0') {
		*error_r = "blob: s3 needs an access key id and a secret key";
		return -1;
	}
	set->bucket = mc_strdup(bucket);
	set->prefix = mc_strdup(prefix);
	set->access_key_id = mc_strdup(cfg->access_key_id);
	set->secret_key = mc_strdup(cfg->secret_key);
	set->ca_file = cfg->ca_file ? mc_strdup(cfg->ca_file) : NULL;
	set->virtual_host = cfg->virtual_host;
	set->connect_timeout_ms = cfg->connect_timeout_ms
	                                  ? cfg->connect_timeout_ms
	                                  : DEFAULT_CONNECT_TIMEOUT_MS;
	set->request_timeout_ms = cfg->request_timeout_ms
	                                  ? cfg->request_timeout_ms
	                                  : DEFAULT_REQUEST_TIMEOUT_MS;
	set->max_retries =
	        cfg->max_retries ? cfg->max_retries : DEFAULT_MAX_RETRIES;
	set->retry_base_ms =
	        cfg->retry_base_ms ? cfg->retry_base_ms : DEFAULT_RETRY_BASE_MS;
	ep = cfg->endpoint
	             ? mc_strdup(cfg->endpoint)
	             : mc_asprintf("https://s3.%s.amazonaws.com", set->region);
	rv = parse_endpoint(set, ep, error_r);
	free(ep);
	return rv;
}

void
mc_blob_s3_settings_fini(struct mc_blob_s3_settings *set)
{
	if (set->secret_key != NULL)
		mc_wipe(set->secret_key, strlen(set->secret_key));
	free(set->secret_key);
	free(set->access_key_id);
	free(set->scheme);
	free(set->authority);
	free(set->bucket);
	free(set->prefix);
	free(set->region);
	free(set->ca_file);
	memset(set, 0, sizeof(*set));
}
