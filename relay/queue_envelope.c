/* Queue envelopes as data: the struct helpers of queue.h and the JSON
 * form of <id>.env (format and field table in docs/queue.md). Pure: no
 * I/O, no state, safe on any thread.
 *
 * The file is JSON (jansson) rather than a line format: peers' text
 * (HELO names, remote error replies) needs no home-made escaping, a
 * truncated or torn file fails to parse as a whole, duplicate keys are
 * refused by the parser, and an operator reads it with `jq`.
 *
 * One checker serves both directions, so whatever is written can be read
 * back: envelope_check runs before a write and after a parse. Every key is
 * required and no other key is allowed ("format" names the layout; a
 * future layout gets a new number). Free text from peers is made safe
 * when written (sanitize) and checked when read. */
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "mem.h"

/* Format 1: the inbound envelope. Format 2 adds "outbound" (true: the
 * message came from a mailbox node through the egress listener). The
 * relay writes 1 whenever "outbound" is false, so that a relay rolled
 * back to before egress still reads all its inbound mail. */
#define ENVELOPE_FORMAT 1
#define ENVELOPE_FORMAT_OUTBOUND 2

static const char *const state_names[] = {"pending", "delivered", "failed"};
static const char *const body_names[] = {"7bit", "8bitmime"};
static const char *const ret_names[] = {"", "full", "hdrs"};
/* In bit order of RELAY_QUEUE_NOTIFY_*. */
static const char *const notify_names[] = {"never", "success", "failure",
                                           "delay"};
#define NOTIFY_ALL 0xfu

static const char *const top_keys[] = {
        "format",    "id",    "received", "sender", "size",
        "sha256",    "body",  "smtputf8", "client", "dsn_ret",
        "dsn_envid", "rcpts", "outbound", NULL,
};
static const char *const client_keys[] = {"helo", "addr", "rdns", "proto",
                                          "tls",  "auth", NULL};
static const char *const rcpt_keys[] = {
        "address", "state",  "attempts", "next_attempt", "last_error",
        "route",   "notify", "orcpt",    NULL,
};

/* ---- struct helpers ---- */

struct relay_queue_envelope *
relay_queue_envelope_new(void)
{
	struct relay_queue_envelope *env = mc_malloc(sizeof(*env));
	struct relay_queue_client *c = &env->client;

	env->sender = mc_strdup("");
	env->dsn_envid = mc_strdup("");
	c->helo = mc_strdup("");
	c->addr = mc_strdup("");
	c->rdns = mc_strdup("");
	c->proto = mc_strdup("");
	c->tls = mc_strdup("");
	c->auth = mc_strdup("");
	return env;
}

void
relay_queue_envelope_free(struct relay_queue_envelope **envp)
{
	struct relay_queue_envelope *env = *envp;
	size_t i;

	if (env == NULL)
		return;
	for (i = 0; i < env->rcpt_count; i++) {
		free(env->rcpts[i].address);
		free(env->rcpts[i].last_error);
		free(env->rcpts[i].route);
		free(env->rcpts[i].orcpt);
	}
	free(env->rcpts);
	free(env->sender);
	free(env->dsn_envid);
	free(env->client.helo);
	free(env->client.addr);
	free(env->client.rdns);
	free(env->client.proto);
	free(env->client.tls);
	free(env->client.auth);
	free(env);
	*envp = NULL;
}

struct relay_queue_rcpt *
relay_queue_envelope_add_rcpt(struct relay_queue_envelope *env,
                              const char *address)
{
	struct relay_queue_rcpt *r;

	env->rcpts = mc_realloc(env->rcpts,
	                        (env->rcpt_count + 1) * sizeof(*env->rcpts));
	r = &env->rcpts[env->rcpt_count++];
	memset(r, 0, sizeof(*r));
	r->address = mc_strdup(address != NULL ? address : "");
	r->last_error = mc_strdup("");
	r->route = mc_strdup("");
	r->orcpt = mc_strdup("");
	return r;
}

size_t
relay_queue_envelope_pending(const struct relay_queue_envelope *env)
{
	size_t i, n = 0;

	for (i = 0; i < env->rcpt_count; i++)
		n += env->rcpts[i].state == RELAY_QUEUE_PENDING;
	return n;
}

void
relay_queue_str_set(char **field, const char *value)
{
	char *copy = mc_strdup(value != NULL ? value : "");

	free(*field);
	*field = copy;
}

/* ---- text checks ---- */

/* Length of the valid UTF-8 sequence at s (n bytes available) and its code
 * point, or 0 when invalid. Same rules as jansson's decoder: no overlong
 * forms, no surrogates, nothing above U+10FFFF. */
static size_t
utf8_char(const unsigned char *s, size_t n, unsigned *cp_r)
{
	size_t len, i;
	unsigned cp;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07u;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	*cp_r = cp;
	return len;
}

static bool
is_control(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

/* Valid UTF-8 without control characters, at most max bytes. */
static bool
text_ok(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), off = 0, len;
	unsigned cp;

	if (n > max)
		return false;
	while (off < n) {
		len = utf8_char(p + off, n - off, &cp);
		if (len == 0 || is_control(cp))
			return false;
		off += len;
	}
	return true;
}

/* A copy of peer text that passes text_ok(max): control characters and
 * bytes of invalid UTF-8 become '?', and it is cut at a character
 * boundary. */
static char *
sanitize(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t n = strlen((const char *)p), off = 0, out = 0, len;
	char *r = mc_malloc(max + 1);
	unsigned cp;

	while (off < n) {
		len = utf8_char(p + off, n - off, &cp);
		if (len == 0 || is_control(cp)) {
			len = len == 0 ? 1 : len;
			if (out + 1 > max)
				break;
			r[out++] = '?';
		} else {
			if (out + len > max)
				break;
			memcpy(r + out, p + off, len);
			out += len;
		}
		off += len;
	}
	r[out] = '\0';
	return r;
}

static bool
sha256_ok(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[64] == '\0';
}

static const char *
nz(const char *s)
{
	return s != NULL ? s : "";
}

/* ---- the checker shared by write and read ---- */

static int
rcpt_check(const struct relay_queue_rcpt *r, size_t i, bool free_text,
           const char **error_r)
{
	const char *bad = NULL;

	if (nz(r->address)[0] == '\0' ||
	    !text_ok(nz(r->address), RELAY_QUEUE_ADDR_MAX))
		bad = "address";
	else if (!text_ok(nz(r->route), RELAY_QUEUE_ROUTE_MAX))
		bad = "route";
	else if (!text_ok(nz(r->orcpt), RELAY_QUEUE_ORCPT_MAX))
		bad = "orcpt";
	else if (free_text &&
	         !text_ok(nz(r->last_error), RELAY_QUEUE_ERROR_MAX))
		bad = "last_error";
	else if ((unsigned)r->state > RELAY_QUEUE_FAILED)
		bad = "state";
	else if (r->attempts > RELAY_QUEUE_ATTEMPTS_MAX)
		bad = "attempts";
	else if (r->next_attempt < 0)
		bad = "next_attempt";
	else if ((r->notify & ~NOTIFY_ALL) != 0 ||
	         ((r->notify & RELAY_QUEUE_NOTIFY_NEVER) != 0 &&
	          r->notify != RELAY_QUEUE_NOTIFY_NEVER))
		bad = "notify";
	if (bad != NULL) {
		*error_r = mc_errorf("rcpts[%zu]: invalid \"%s\"", i, bad);
		return -1;
	}
	return 0;
}

static int
envelope_check(const struct relay_queue_envelope *env, bool free_text,
               const char **error_r)
{
	const struct relay_queue_client *c = &env->client;
	const char *bad = NULL;
	size_t i;

	if (!relay_queue_id_valid(env->id))
		bad = "id";
	else if (!sha256_ok(env->sha256))
		bad = "sha256";
	else if (env->size > INT64_MAX)
		bad = "size";
	else if (env->received < 0)
		bad = "received";
	else if (!text_ok(nz(env->sender), RELAY_QUEUE_ADDR_MAX))
		bad = "sender";
	else if (!text_ok(nz(env->dsn_envid), RELAY_QUEUE_ENVID_MAX))
		bad = "dsn_envid";
	else if ((unsigned)env->body > RELAY_QUEUE_BODY_8BITMIME)
		bad = "body";
	else if ((unsigned)env->dsn_ret > RELAY_QUEUE_RET_HDRS)
		bad = "dsn_ret";
	else if (env->rcpt_count == 0 ||
	         env->rcpt_count > RELAY_QUEUE_MAX_RCPTS)
		bad = "rcpts";
	else if (free_text && (!text_ok(nz(c->helo), RELAY_QUEUE_CLIENT_MAX) ||
	                       !text_ok(nz(c->addr), RELAY_QUEUE_CLIENT_MAX) ||
	                       !text_ok(nz(c->rdns), RELAY_QUEUE_CLIENT_MAX) ||
	                       !text_ok(nz(c->proto), RELAY_QUEUE_CLIENT_MAX) ||
	                       !text_ok(nz(c->tls), RELAY_QUEUE_CLIENT_MAX) ||
	                       !text_ok(nz(c->auth), RELAY_QUEUE_CLIENT_MAX)))
		bad = "client";
	if (bad != NULL) {
		*error_r = mc_errorf("invalid \"%s\"", bad);
		return -1;
	}
	for (i = 0; i < env->rcpt_count; i++)
		if (rcpt_check(&env->rcpts[i], i, free_text, error_r) < 0)
			return -1;
	return 0;
}

/* ---- write ---- */

static bool
put(json_t *obj, const char *key, json_t *v)
{
	return json_object_set_new(obj, key, v) == 0;
}

static bool
put_free_text(json_t *obj, const char *key, const char *s, size_t max)
{
	char *clean = sanitize(s, max);
	bool ok = put(obj, key, json_string(clean));

	free(clean);
	return ok;
}

static json_t *
client_json(const struct relay_queue_client *c)
{
	json_t *o = json_object();
	bool ok;

	ok = put_free_text(o, "helo", c->helo, RELAY_QUEUE_CLIENT_MAX);
	ok = ok && put_free_text(o, "addr", c->addr, RELAY_QUEUE_CLIENT_MAX);
	ok = ok && put_free_text(o, "rdns", c->rdns, RELAY_QUEUE_CLIENT_MAX);
	ok = ok && put_free_text(o, "proto", c->proto, RELAY_QUEUE_CLIENT_MAX);
	ok = ok && put_free_text(o, "tls", c->tls, RELAY_QUEUE_CLIENT_MAX);
	ok = ok && put_free_text(o, "auth", c->auth, RELAY_QUEUE_CLIENT_MAX);
	if (!ok)
		json_decref(o);
	return ok ? o : NULL;
}

static json_t *
rcpt_json(const struct relay_queue_rcpt *r)
{
	json_t *o = json_object(), *notify = json_array();
	bool ok;
	unsigned bit;

	for (bit = 0; bit < 4; bit++)
		if ((r->notify & (1u << bit)) != 0)
			json_array_append_new(notify,
			                      json_string(notify_names[bit]));
	ok = put(o, "address", json_string(nz(r->address)));
	ok = ok && put(o, "state", json_string(state_names[r->state]));
	ok = ok && put(o, "attempts", json_integer(r->attempts));
	ok = ok && put(o, "next_attempt", json_integer(r->next_attempt));
	ok = ok && put_free_text(o, "last_error", r->last_error,
	                         RELAY_QUEUE_ERROR_MAX);
	ok = ok && put(o, "route", json_string(nz(r->route)));
	ok = ok && put(o, "notify", notify);
	ok = ok && put(o, "orcpt", json_string(nz(r->orcpt)));
	if (!ok)
		json_decref(o);
	return ok ? o : NULL;
}

static json_t *
envelope_json(const struct relay_queue_envelope *env)
{
	json_t *o = json_object(), *rcpts = json_array();
	bool ok;
	size_t i;

	ok = put(o, "format", json_integer(env->outbound ? ENVELOPE_FORMAT_OUTBOUND
	                                                  : ENVELOPE_FORMAT));
	ok = ok && put(o, "id", json_string(env->id));
	ok = ok && put(o, "received", json_integer(env->received));
	ok = ok && put(o, "sender", json_string(nz(env->sender)));
	ok = ok && put(o, "size", json_integer((json_int_t)env->size));
	ok = ok && put(o, "sha256", json_string(env->sha256));
	ok = ok && put(o, "body", json_string(body_names[env->body]));
	ok = ok && put(o, "smtputf8", json_boolean(env->smtputf8));
	ok = ok && put(o, "client", client_json(&env->client));
	ok = ok && put(o, "dsn_ret", json_string(ret_names[env->dsn_ret]));
	ok = ok && put(o, "dsn_envid", json_string(nz(env->dsn_envid)));
	ok = ok && put(o, "rcpts", rcpts);
	if (env->outbound)
		ok = ok && put(o, "outbound", json_true());
	for (i = 0; ok && i < env->rcpt_count; i++)
		ok = json_array_append_new(rcpts, rcpt_json(&env->rcpts[i])) ==
		     0;
	if (!ok)
		json_decref(o);
	return ok ? o : NULL;
}

char *
relay_queue_envelope_format(const struct relay_queue_envelope *env,
                            const char **error_r)
{
	json_t *root;
	char *s, *line;

	if (envelope_check(env, false, error_r) < 0)
		return NULL;
	root = envelope_json(env);
	s = root != NULL ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)
	                 : NULL;
	json_decref(root);
	if (s == NULL) {
		/* Only allocation failure gets here: the strings were checked.
		 */
		*error_r = "cannot encode the envelope as JSON";
		return NULL;
	}
	line = mc_asprintf("%s\n", s);
	free(s);
	return line;
}

/* ---- read ---- */

static int
only_keys(json_t *obj, const char *where, const char *const *keys,
          const char **error_r)
{
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(obj)) {
		*error_r = mc_errorf("%s must be an object", where);
		return -1;
	}
	json_object_foreach(obj, key, v)
	{
		for (i = 0; keys[i] != NULL && strcmp(keys[i], key) != 0; i++)
			;
		if (keys[i] == NULL) {
			*error_r = mc_errorf("%s: unknown key \"%.40s\"", where,
			                     key);
			return -1;
		}
	}
	return 0;
}

static int
get_int(json_t *obj, const char *where, const char *key, json_int_t max,
        json_int_t *v_r, const char **error_r)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > max) {
		*error_r = mc_errorf("%s: \"%s\" must be an integer from 0 to "
		                     "%lld",
		                     where, key, (long long)max);
		return -1;
	}
	*v_r = json_integer_value(v);
	return 0;
}

/* A new heap copy of a string without NUL bytes (lengths are checked
 * later by envelope_check). */
static int
get_str(json_t *obj, const char *where, const char *key, char **v_r,
        const char **error_r)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v) ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		*error_r = mc_errorf("%s: \"%s\" must be a string", where, key);
		return -1;
	}
	relay_queue_str_set(v_r, json_string_value(v));
	return 0;
}

/* A string that must be one of names[0..n). */
static int
get_enum(json_t *obj, const char *where, const char *key,
         const char *const *names, unsigned n, unsigned *v_r,
         const char **error_r)
{
	const char *s = json_string_value(json_object_get(obj, key));
	unsigned i;

	for (i = 0; s != NULL && i < n; i++) {
		if (strcmp(s, names[i]) == 0) {
			*v_r = i;
			return 0;
		}
	}
	*error_r = mc_errorf("%s: invalid \"%s\"", where, key);
	return -1;
}

static int
get_notify(json_t *obj, const char *where, unsigned *v_r, const char **error_r)
{
	json_t *arr = json_object_get(obj, "notify"), *v;
	unsigned bits = 0, bit;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) > 4)
		goto fail;
	json_array_foreach(arr, i, v)
	{
		for (bit = 0; bit < 4; bit++)
			if (json_is_string(v) && strcmp(json_string_value(v),
			                                notify_names[bit]) == 0)
				break;
		if (bit == 4 || (bits & (1u << bit)) != 0)
			goto fail;
		bits |= 1u << bit;
	}
	*v_r = bits;
	return 0;
fail:
	*error_r = mc_errorf("%s: invalid \"notify\"", where);
	return -1;
}

static int
client_from_json(json_t *o, struct relay_queue_client *c, const char **error_r)
{
	const char *w = "client";

	if (only_keys(o, w, client_keys, error_r) < 0 ||
	    get_str(o, w, "helo", &c->helo, error_r) < 0 ||
	    get_str(o, w, "addr", &c->addr, error_r) < 0 ||
	    get_str(o, w, "rdns", &c->rdns, error_r) < 0 ||
	    get_str(o, w, "proto", &c->proto, error_r) < 0 ||
	    get_str(o, w, "tls", &c->tls, error_r) < 0 ||
	    get_str(o, w, "auth", &c->auth, error_r) < 0)
		return -1;
	return 0;
}

static int
rcpt_from_json(json_t *o, const char *w, struct relay_queue_rcpt *r,
               const char **error_r)
{
	json_int_t attempts, next;
	unsigned state;

	if (only_keys(o, w, rcpt_keys, error_r) < 0 ||
	    get_str(o, w, "address", &r->address, error_r) < 0 ||
	    get_enum(o, w, "state", state_names, 3, &state, error_r) < 0 ||
	    get_int(o, w, "attempts", RELAY_QUEUE_ATTEMPTS_MAX, &attempts,
	            error_r) < 0 ||
	    get_int(o, w, "next_attempt", INT64_MAX, &next, error_r) < 0 ||
	    get_str(o, w, "last_error", &r->last_error, error_r) < 0 ||
	    get_str(o, w, "route", &r->route, error_r) < 0 ||
	    get_notify(o, w, &r->notify, error_r) < 0 ||
	    get_str(o, w, "orcpt", &r->orcpt, error_r) < 0)
		return -1;
	r->state = (enum relay_queue_rcpt_state)state;
	r->attempts = (uint32_t)attempts;
	r->next_attempt = next;
	return 0;
}

static int
rcpts_from_json(json_t *arr, struct relay_queue_envelope *env,
                const char **error_r)
{
	char where[32];
	size_t i, n;

	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > RELAY_QUEUE_MAX_RCPTS) {
		*error_r = mc_errorf("\"rcpts\" must be an array of 1 to %d "
		                     "recipients",
		                     RELAY_QUEUE_MAX_RCPTS);
		return -1;
	}
	n = json_array_size(arr);
	for (i = 0; i < n; i++) {
		/* Added before parsing, so a failure leaves a freeable env. */
		relay_queue_envelope_add_rcpt(env, "");
		snprintf(where, sizeof(where), "rcpts[%zu]", i);
		if (rcpt_from_json(json_array_get(arr, i), where,
		                   &env->rcpts[i], error_r) < 0)
			return -1;
	}
	return 0;
}

static int
envelope_from_json(json_t *o, struct relay_queue_envelope *env,
                   const char **error_r)
{
	const char *w = "envelope", *id, *sha;
	json_int_t format, received, size;
	unsigned body, ret;
	json_t *utf8, *outbound;

	if (only_keys(o, w, top_keys, error_r) < 0 ||
	    get_int(o, w, "format", INT64_MAX, &format, error_r) < 0)
		return -1;
	if (format != ENVELOPE_FORMAT && format != ENVELOPE_FORMAT_OUTBOUND) {
		*error_r =
		        mc_errorf("unsupported format %lld", (long long)format);
		return -1;
	}
	outbound = json_object_get(o, "outbound");
	if (format == ENVELOPE_FORMAT ? outbound != NULL
	                              : !json_is_boolean(outbound)) {
		*error_r = mc_errorf("format %lld: invalid \"outbound\"",
		                     (long long)format);
		return -1;
	}
	env->outbound = json_is_true(outbound);
	id = json_string_value(json_object_get(o, "id"));
	sha = json_string_value(json_object_get(o, "sha256"));
	utf8 = json_object_get(o, "smtputf8");
	if (id == NULL || strlen(id) != RELAY_QUEUE_ID_LEN || sha == NULL ||
	    strlen(sha) != 64 || !json_is_boolean(utf8)) {
		*error_r = "invalid \"id\", \"sha256\" or \"smtputf8\"";
		return -1;
	}
	memcpy(env->id, id, RELAY_QUEUE_ID_SIZE);
	memcpy(env->sha256, sha, sizeof(env->sha256));
	env->smtputf8 = json_is_true(utf8);
	if (get_int(o, w, "received", INT64_MAX, &received, error_r) < 0 ||
	    get_str(o, w, "sender", &env->sender, error_r) < 0 ||
	    get_int(o, w, "size", INT64_MAX, &size, error_r) < 0 ||
	    get_enum(o, w, "body", body_names, 2, &body, error_r) < 0 ||
	    client_from_json(json_object_get(o, "client"), &env->client,
	                     error_r) < 0 ||
	    get_enum(o, w, "dsn_ret", ret_names, 3, &ret, error_r) < 0 ||
	    get_str(o, w, "dsn_envid", &env->dsn_envid, error_r) < 0 ||
	    rcpts_from_json(json_object_get(o, "rcpts"), env, error_r) < 0)
		return -1;
	env->received = received;
	env->size = (uint64_t)size;
	env->body = (enum relay_queue_body)body;
	env->dsn_ret = (enum relay_queue_dsn_ret)ret;
	return 0;
}

int
relay_queue_envelope_parse(const char *buf, size_t len,
                           struct relay_queue_envelope **env_r,
                           const char **error_r)
{
	struct relay_queue_envelope *env = NULL;
	json_error_t jerr;
	json_t *root;

	if (len > RELAY_QUEUE_ENVELOPE_FILE_MAX) {
		*error_r = "envelope too large";
		return -1;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		*error_r = mc_errorf("line %d column %d: %s", jerr.line,
		                     jerr.column, jerr.text);
		return -1;
	}
	env = relay_queue_envelope_new();
	if (envelope_from_json(root, env, error_r) < 0 ||
	    envelope_check(env, true, error_r) < 0) {
		relay_queue_envelope_free(&env);
		json_decref(root);
		return -1;
	}
	json_decref(root);
	*env_r = env;
	return 0;
}
