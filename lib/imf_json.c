/* The ENVELOPE as the JSON kept in messages.envelope, and back (see imf.h
 * for the format). Strings that are not valid UTF-8 travel as
 * {"base64": ...} objects so every octet survives the round trip through
 * Postgres jsonb. Base64 comes from OpenSSL, which mc_lib links anyway. */
#include "imf.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "error.h"
#include "mem.h"

#define B64_KEY "base64"
/* Input octets per EVP_EncodeBlock call: a multiple of 3, so chunks
 * concatenate into one base64 text, and far below INT_MAX. */
#define B64_CHUNK (3u * 16384)

static json_t *
must(json_t *j)
{
	if (j == NULL)
		abort(); /* jansson out of memory, like mc_malloc */
	return j;
}

static json_t *
base64_json(const char *s, size_t n)
{
	char *b64 = mc_malloc(4 * ((n + 2) / 3) + 1), *o = b64;
	json_t *j;

	for (size_t i = 0; i < n; i += B64_CHUNK) {
		size_t c = n - i < B64_CHUNK ? n - i : B64_CHUNK;

		o += EVP_EncodeBlock((unsigned char *)o,
		                     (const unsigned char *)s + i, (int)c);
	}
	*o = '\0';
	j = must(json_pack("{s:s}", B64_KEY, b64));
	free(b64);
	return j;
}

static json_t *
str_json(const char *s)
{
	size_t n;
	json_t *j;

	if (s == NULL)
		return must(json_null());
	n = strlen(s);
	/* jansson checks UTF-8 strictly (overlongs, surrogates, > U+10FFFF)
	 * and refuses the string otherwise. */
	j = json_stringn(s, n);
	return j != NULL ? j : base64_json(s, n);
}

static json_t *
list_json(const struct mc_imf_addr_list *l)
{
	json_t *arr;

	if (l->count == 0)
		return must(json_null());
	arr = must(json_array());
	for (size_t i = 0; i < l->count; i++) {
		const struct mc_imf_address *ad = &l->addrs[i];

		if (json_array_append_new(
		            arr, must(json_pack("[oooo]", str_json(ad->name),
		                                str_json(ad->adl),
		                                str_json(ad->mailbox),
		                                str_json(ad->host)))) < 0)
			abort();
	}
	return arr;
}

json_t *
mc_imf_envelope_to_json(const struct mc_imf_envelope *env)
{
	return must(json_pack(
	        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "date",
	        str_json(env->date), "subject", str_json(env->subject), "from",
	        list_json(&env->from), "sender", list_json(&env->sender),
	        "reply_to", list_json(&env->reply_to), "to",
	        list_json(&env->to), "cc", list_json(&env->cc), "bcc",
	        list_json(&env->bcc), "in_reply_to", str_json(env->in_reply_to),
	        "message_id", str_json(env->message_id)));
}

/* ---- back from JSON --------------------------------------------------- */

static char *
copy_nonul(struct mc_pool *pool, const char *s, size_t n)
{
	char *d = mc_pool_strndup(pool, s, n);

	for (size_t i = 0; i < n; i++) {
		if (d[i] == '\0')
			d[i] = (char)0x80;
	}
	return d;
}

static int
base64_decode(struct mc_pool *pool, const char *b64, size_t n,
              const char **out_r)
{
	unsigned char *d;
	size_t pad = 0;
	int got;

	if (n % 4 != 0 || n > INT_MAX)
		return -1;
	if (n > 0 && b64[n - 1] == '=')
		pad++;
	if (n > 1 && b64[n - 2] == '=')
		pad++;
	d = mc_pool_alloc(pool, n / 4 * 3 + 1);
	got = n > 0 ? EVP_DecodeBlock(d, (const unsigned char *)b64, (int)n)
	            : 0;
	if (got < 0 || (size_t)got < pad)
		return -1;
	*out_r = copy_nonul(pool, (const char *)d, (size_t)got - pad);
	return 0;
}

static int
str_from(struct mc_pool *pool, const json_t *j, const char **out_r)
{
	const json_t *b;

	*out_r = NULL;
	if (j == NULL || json_is_null(j))
		return 0;
	if (json_is_string(j)) {
		*out_r = copy_nonul(pool, json_string_value(j),
		                    json_string_length(j));
		return 0;
	}
	b = json_is_object(j) ? json_object_get(j, B64_KEY) : NULL;
	if (b == NULL || !json_is_string(b))
		return -1;
	return base64_decode(pool, json_string_value(b), json_string_length(b),
	                     out_r);
}

static int
list_from(struct mc_pool *pool, const json_t *j, struct mc_imf_addr_list *l)
{
	memset(l, 0, sizeof(*l));
	if (j == NULL || json_is_null(j))
		return 0;
	if (!json_is_array(j))
		return -1;
	l->count = json_array_size(j);
	if (l->count == 0)
		return 0;
	l->addrs = mc_pool_alloc(pool, l->count * sizeof(*l->addrs));
	for (size_t i = 0; i < l->count; i++) {
		const json_t *e = json_array_get(j, i);
		struct mc_imf_address *ad = &l->addrs[i];

		if (!json_is_array(e) || json_array_size(e) != 4 ||
		    str_from(pool, json_array_get(e, 0), &ad->name) < 0 ||
		    str_from(pool, json_array_get(e, 1), &ad->adl) < 0 ||
		    str_from(pool, json_array_get(e, 2), &ad->mailbox) < 0 ||
		    str_from(pool, json_array_get(e, 3), &ad->host) < 0)
			return -1;
	}
	return 0;
}

int
mc_imf_envelope_from_json(struct mc_imf_envelope *env_r, struct mc_pool *pool,
                          const json_t *json, const char **error_r)
{
	static const char *const str_keys[] = {
	        "date",
	        "subject",
	        "in_reply_to",
	        "message_id",
	};
	static const char *const list_keys[] = {
	        "from", "sender", "reply_to", "to", "cc", "bcc",
	};
	const char **strs[] = {
	        &env_r->date,
	        &env_r->subject,
	        &env_r->in_reply_to,
	        &env_r->message_id,
	};
	struct mc_imf_addr_list *lists[] = {
	        &env_r->from, &env_r->sender, &env_r->reply_to,
	        &env_r->to,   &env_r->cc,     &env_r->bcc,
	};
	const char *bad;

	memset(env_r, 0, sizeof(*env_r));
	if (!json_is_object(json)) {
		*error_r = "envelope: not a JSON object";
		return -1;
	}
	for (size_t i = 0; i < 4; i++) {
		bad = str_keys[i];
		if (str_from(pool, json_object_get(json, bad), strs[i]) < 0)
			goto fail;
	}
	for (size_t i = 0; i < 6; i++) {
		bad = list_keys[i];
		if (list_from(pool, json_object_get(json, bad), lists[i]) < 0)
			goto fail;
	}
	if (env_r->sender.count == 0)
		env_r->sender = env_r->from;
	if (env_r->reply_to.count == 0)
		env_r->reply_to = env_r->from;
	return 0;
fail:
	*error_r = mc_errorf("envelope: malformed \"%s\"", bad);
	memset(env_r, 0, sizeof(*env_r));
	return -1;
}
