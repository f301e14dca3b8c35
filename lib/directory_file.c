/* Persistence of a directory to <state_dir>/directory.json (format and
 * guarantees in docs/state-files.md): mc_directory_save and
 * mc_directory_load from directory.h. Built only on the public snapshot
 * export and import, so the file always holds exactly what a Snapshot
 * from the controller would, sorted by id.
 *
 * Save is crash-safe: the new content goes to path.tmp (mode 0600),
 * is fsynced, renamed over path, and the directory entry is fsynced, so
 * after a crash the file holds either the old or the new version. Load
 * parses and validates the whole file into a Snapshot before touching the
 * directory, so a malformed file changes nothing. */
#include "directory.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <jansson.h>

#include "directory_private.h"
#include "error.h"
#include "fileio.h"
#include "mem.h"

/* Writes are batched: jansson's dump callback is called once per token. */
#define MC_DIR_WRITE_BUF (64 * 1024)

/* ---- save ---- */

/* JSON integers are signed 64-bit in jansson (and most readers): an
 * unsigned value above INT64_MAX cannot be written faithfully. */
static bool
set_uint(json_t *obj, const char *key, uint64_t v)
{
	return v <= INT64_MAX &&
	       json_object_set_new(obj, key, json_integer((json_int_t)v)) == 0;
}

/* json_string is NULL for invalid UTF-8, which set_new refuses. */
static bool
set_str(json_t *obj, const char *key, const char *s)
{
	return json_object_set_new(obj, key, json_string(s)) == 0;
}

static bool
append_new(json_t *arr, json_t *v)
{
	return json_array_append_new(arr, v) == 0;
}

static bool
account_json(json_t *arr, const Mc__Account *a)
{
	json_t *o = json_object();
	char *address = mc_asprintf("%s@%s", a->local_part, a->domain);
	bool ok = append_new(arr, o);

	ok = ok && set_uint(o, "id", a->id);
	ok = ok && set_uint(o, "domain_id", a->domain_id);
	ok = ok && set_str(o, "address", address);
	/* Relays never hold hashes or verifiers: the keys are absent
	 * there, not empty. */
	if (a->password_hash != NULL && a->password_hash[0] != '\0')
		ok = ok && set_str(o, "password_hash", a->password_hash);
	if (a->scram_sha256 != NULL && a->scram_sha256[0] != '\0')
		ok = ok && set_str(o, "scram_sha256", a->scram_sha256);
	ok = ok && set_uint(o, "shard", a->shard);
	ok = ok && set_uint(o, "quota_bytes", a->quota_bytes);
	free(address);
	return ok;
}

static bool
alias_json(json_t *arr, const Mc__Alias *a)
{
	json_t *o = json_object(), *dests = json_array();
	char *address = mc_asprintf("%s@%s", a->local_part, a->domain);
	bool ok = append_new(arr, o);
	size_t i;

	ok = ok && set_uint(o, "id", a->id);
	ok = ok && set_uint(o, "domain_id", a->domain_id);
	ok = ok && set_str(o, "address", address);
	ok = ok && json_object_set_new(o, "destinations", dests) == 0;
	for (i = 0; ok && i < a->n_destinations; i++)
		ok = append_new(dests, json_string(a->destinations[i]));
	free(address);
	return ok;
}

static bool
shard_json(json_t *arr, const Mc__ShardOwner *o)
{
	json_t *obj = json_object();

	return append_new(arr, obj) && set_uint(obj, "shard", o->shard) &&
	       set_uint(obj, "node_id", o->node_id) &&
	       set_str(obj, "node_name", o->node_name) &&
	       set_uint(obj, "epoch", o->epoch) &&
	       set_str(obj, "lmtp_address", o->lmtp_address);
}

static const char *const route_kinds[] = {"", "smarthost", "mx"};
static const char *const route_tls_modes[] = {"none", "starttls", "implicit"};
static const char *const dkim_algs[] = {"", "rsa", "ed25519"};

static bool
route_json(json_t *arr, const Mc__Route *r)
{
	json_t *o = json_object();

	return append_new(arr, o) && set_uint(o, "id", r->id) &&
	       set_str(o, "name", r->name) &&
	       set_str(o, "kind", route_kinds[r->kind == MC__ROUTE_KIND__ROUTE_KIND_MX
	                                              ? 2 : 1]) &&
	       set_str(o, "host", r->host) && set_uint(o, "port", r->port) &&
	       set_str(o, "tls", route_tls_modes[(unsigned)r->tls <= 2 ? r->tls : 1]) &&
	       set_str(o, "auth_user", r->auth_user) &&
	       set_str(o, "secret_env", r->secret_env) &&
	       set_str(o, "secret_file", r->secret_file) &&
	       json_object_set_new(o, "default", json_boolean(r->is_default)) == 0 &&
	       json_object_set_new(o, "created_at", json_integer(r->created_at)) == 0;
}

static bool
rule_json(json_t *arr, const Mc__RouteRule *r)
{
	json_t *o = json_object();

	return append_new(arr, o) && set_uint(o, "id", r->id) &&
	       set_str(o, "domain", r->domain) && set_uint(o, "route_id", r->route_id) &&
	       set_str(o, "route", r->route) &&
	       json_object_set_new(o, "created_at", json_integer(r->created_at)) == 0;
}

static bool
dkim_json(json_t *arr, const Mc__DkimKey *k)
{
	json_t *o = json_object();
	bool ok = append_new(arr, o) && set_uint(o, "id", k->id) &&
	          set_uint(o, "domain_id", k->domain_id) &&
	          set_str(o, "domain", k->domain) &&
	          set_str(o, "selector", k->selector) &&
	          set_str(o, "alg", dkim_algs[k->alg == MC__DKIM_ALG__DKIM_ALG_ED25519
	                                              ? 2 : 1]) &&
	          set_uint(o, "bits", k->bits) &&
	          set_str(o, "public_b64", k->public_b64) &&
	          json_object_set_new(o, "active", json_boolean(k->active)) == 0 &&
	          json_object_set_new(o, "created_at", json_integer(k->created_at)) == 0;

	/* Only relays hold private keys: the key is absent elsewhere. */
	if (k->private_pem != NULL && k->private_pem[0] != '\0')
		ok = ok && set_str(o, "private_pem", k->private_pem);
	return ok;
}

/* Overwrite the private keys held by the JSON tree (jansson frees its
 * strings without clearing them). */
static void
wipe_json_secrets(json_t *root)
{
	json_t *arr = json_object_get(root, "dkim_keys"), *o;
	size_t i;

	json_array_foreach(arr, i, o) {
		json_t *pem = json_object_get(o, "private_pem");

		if (json_is_string(pem))
			mc_wipe((char *)json_string_value(pem), json_string_length(pem));
	}
}

static bool
egress_json(json_t *root, const Mc__Snapshot *snap)
{
	json_t *routes = json_array(), *rules = json_array(), *keys = json_array();
	bool ok = json_object_set_new(root, "routes", routes) == 0 &&
	          json_object_set_new(root, "route_rules", rules) == 0 &&
	          json_object_set_new(root, "dkim_keys", keys) == 0;

	for (size_t i = 0; ok && i < snap->n_routes; i++)
		ok = route_json(routes, snap->routes[i]);
	for (size_t i = 0; ok && i < snap->n_route_rules; i++)
		ok = rule_json(rules, snap->route_rules[i]);
	for (size_t i = 0; ok && i < snap->n_dkim_keys; i++)
		ok = dkim_json(keys, snap->dkim_keys[i]);
	return ok;
}

/* NULL when a value cannot be represented (see set_uint, set_str). */
static json_t *
snapshot_json(const Mc__Snapshot *snap)
{
	json_t *root = json_object(), *doms = json_array(),
	       *accs = json_array(), *als = json_array(), *shs = json_array();
	bool ok;
	size_t i;

	ok = set_uint(root, "version", snap->version);
	ok = ok && set_uint(root, "shard_count", snap->shard_count);
	ok = ok && json_object_set_new(root, "domains", doms) == 0;
	ok = ok && json_object_set_new(root, "accounts", accs) == 0;
	ok = ok && json_object_set_new(root, "aliases", als) == 0;
	ok = ok && json_object_set_new(root, "shards", shs) == 0;
	for (i = 0; ok && i < snap->n_domains; i++) {
		const Mc__Domain *d = snap->domains[i];
		json_t *o = json_object();

		ok = append_new(doms, o) && set_uint(o, "id", d->id) &&
		     set_str(o, "name", d->name) &&
		     json_object_set_new(o, "created_at",
		                         json_integer(d->created_at)) == 0;
	}
	for (i = 0; ok && i < snap->n_accounts; i++)
		ok = account_json(accs, snap->accounts[i]);
	for (i = 0; ok && i < snap->n_aliases; i++)
		ok = alias_json(als, snap->aliases[i]);
	for (i = 0; ok && i < snap->n_shards; i++)
		ok = shard_json(shs, snap->shards[i]);
	ok = ok && egress_json(root, snap);
	if (!ok) {
		wipe_json_secrets(root);
		json_decref(root);
		return NULL;
	}
	return root;
}

struct writer {
	int fd;
	int err; /* errno of the first failed write */
	size_t len;
	char buf[MC_DIR_WRITE_BUF];
};

static int
writer_flush(struct writer *w)
{
	size_t off = 0;

	while (off < w->len) {
		ssize_t n = write(w->fd, w->buf + off, w->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			w->err = errno;
			return -1;
		}
		off += (size_t)n;
	}
	w->len = 0;
	return 0;
}

static int
writer_cb(const char *data, size_t size, void *arg)
{
	struct writer *w = arg;

	while (size > 0) {
		size_t n = sizeof(w->buf) - w->len;

		if (n > size)
			n = size;
		memcpy(w->buf + w->len, data, n);
		w->len += n;
		data += n;
		size -= n;
		if (w->len == sizeof(w->buf) && writer_flush(w) < 0)
			return -1;
	}
	return 0;
}

/* Write root to tmp (0600) and fsync it. */
static int
write_tmp(json_t *root, const char *tmp, const char **error_r)
{
	struct writer *w = mc_malloc(sizeof(*w));
	int ret = -1;

	w->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	             0600);
	if (w->fd < 0) {
		*error_r = mc_errorf("%s: %s", tmp, strerror(errno));
		goto fail;
	}
	/* The mode of O_CREAT only applies to a new file: a stale tmp left
	 * by a crash (or a wider umask's victim) keeps its own. */
	if (fchmod(w->fd, 0600) < 0) {
		*error_r = mc_errorf("%s: chmod: %s", tmp, strerror(errno));
		goto fail;
	}
	if (json_dump_callback(root, writer_cb, w, JSON_COMPACT) < 0 ||
	    writer_cb("\n", 1, w) < 0 || writer_flush(w) < 0) {
		*error_r = mc_errorf("%s: write: %s", tmp,
		                     w->err != 0 ? strerror(w->err) : "failed");
		goto fail;
	}
	if (fsync(w->fd) < 0) {
		*error_r = mc_errorf("%s: fsync: %s", tmp, strerror(errno));
		goto fail;
	}
	ret = close(w->fd);
	w->fd = -1;
	if (ret < 0)
		*error_r = mc_errorf("%s: close: %s", tmp, strerror(errno));
fail:
	if (w->fd >= 0)
		close(w->fd);
	/* The buffer held the file's text, private keys included. */
	mc_wipe(w, sizeof(*w));
	free(w);
	return ret;
}

int
mc_directory_save(const struct mc_directory *dir, const char *path,
                  const char **error_r)
{
	Mc__Snapshot *snap = mc_directory_to_snapshot(dir);
	int ret = mc_directory_save_snapshot(snap, path, error_r);

	mc_directory_snapshot_free(&snap);
	return ret;
}

int
mc_directory_save_snapshot(const Mc__Snapshot *snap, const char *path,
                           const char **error_r)
{
	json_t *root = snapshot_json(snap);
	char *tmp = mc_asprintf("%s.tmp", path);
	int ret = -1;

	if (root == NULL) {
		*error_r = mc_errorf("%s: not representable in JSON (an id "
		                     "above 2^63 or a string not in UTF-8)",
		                     path);
		goto fail;
	}
	if (write_tmp(root, tmp, error_r) < 0) {
		unlink(tmp);
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		*error_r = mc_errorf("rename %s -> %s: %s", tmp, path,
		                     strerror(errno));
		unlink(tmp);
		goto fail;
	}
	/* The rename itself must be durable too. */
	if (mc_fsync_parent(path) < 0) {
		*error_r = mc_errorf("%s: fsync of its folder: %s", path, strerror(errno));
		goto fail;
	}
	ret = 0;
fail:
	if (root != NULL)
		wipe_json_secrets(root);
	json_decref(root);
	free(tmp);
	return ret;
}

/* ---- load ---- */

/* Field readers: 0, or -1 with error_r naming the object and the key. */
static int
get_uint(json_t *obj, const char *where, const char *key, uint64_t max,
         uint64_t *v_r, const char **error_r)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		*error_r = mc_errorf("%s: missing \"%s\"", where, key);
		return -1;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max) {
		*error_r = mc_errorf("%s: \"%s\" must be an integer from 0 to "
		                     "%" PRIu64,
		                     where, key, max);
		return -1;
	}
	*v_r = (uint64_t)json_integer_value(v);
	return 0;
}

static int
get_id(json_t *obj, const char *where, const char *key, uint64_t *v_r,
       const char **error_r)
{
	return get_uint(obj, where, key, INT64_MAX, v_r, error_r);
}

/* A string without NUL bytes, as a new heap copy. An absent optional key
 * yields "". */
static int
get_str(json_t *obj, const char *where, const char *key, bool required,
        char **v_r, const char **error_r)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL && !required) {
		*v_r = mc_strdup("");
		return 0;
	}
	if (v == NULL) {
		*error_r = mc_errorf("%s: missing \"%s\"", where, key);
		return -1;
	}
	if (!json_is_string(v) ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		*error_r = mc_errorf("%s: \"%s\" must be a string", where, key);
		return -1;
	}
	*v_r = mc_strdup(json_string_value(v));
	return 0;
}

/* "address" split at its last '@' into local_r and domain_r. */
static int
get_address(json_t *obj, const char *where, char **local_r, char **domain_r,
            const char **error_r)
{
	char *address, *at;

	if (get_str(obj, where, "address", true, &address, error_r) < 0)
		return -1;
	at = strrchr(address, '@');
	if (at == NULL || at == address || at[1] == '\0') {
		*error_r =
		        mc_errorf("%s: \"address\" is not local@domain", where);
		free(address);
		return -1;
	}
	*local_r = mc_strndup(address, (size_t)(at - address));
	*domain_r = mc_strdup(at + 1);
	free(address);
	return 0;
}

static json_t *
get_array(json_t *root, const char *key, const char **error_r)
{
	json_t *v = json_object_get(root, key);

	if (!json_is_array(v))
		*error_r = mc_errorf("\"%s\" must be an array", key);
	return json_is_array(v) ? v : NULL;
}

static int
parse_domain(json_t *o, const char *where, Mc__Domain *d, const char **error_r)
{
	json_t *created = json_object_get(o, "created_at");

	if (!json_is_object(o)) {
		*error_r = mc_errorf("%s: must be an object", where);
		return -1;
	}
	if (get_id(o, where, "id", &d->id, error_r) < 0 ||
	    get_str(o, where, "name", true, &d->name, error_r) < 0)
		return -1;
	if (!json_is_integer(created)) {
		*error_r = mc_errorf("%s: \"created_at\" must be an integer",
		                     where);
		return -1;
	}
	d->created_at = json_integer_value(created);
	return 0;
}

static int
parse_account(json_t *o, const char *where, Mc__Account *a,
              const char **error_r)
{
	uint64_t shard;

	if (!json_is_object(o)) {
		*error_r = mc_errorf("%s: must be an object", where);
		return -1;
	}
	if (get_id(o, where, "id", &a->id, error_r) < 0 ||
	    get_id(o, where, "domain_id", &a->domain_id, error_r) < 0 ||
	    get_address(o, where, &a->local_part, &a->domain, error_r) < 0 ||
	    get_str(o, where, "password_hash", false, &a->password_hash,
	            error_r) < 0 ||
	    /* Optional: files from before SCRAM have none. */
	    get_str(o, where, "scram_sha256", false, &a->scram_sha256,
	            error_r) < 0 ||
	    get_uint(o, where, "shard", UINT32_MAX, &shard, error_r) < 0 ||
	    get_uint(o, where, "quota_bytes", INT64_MAX, &a->quota_bytes,
	             error_r) < 0)
		return -1;
	a->shard = (uint32_t)shard;
	return 0;
}

static int
parse_alias(json_t *o, const char *where, Mc__Alias *a, const char **error_r)
{
	json_t *dests;
	size_t i;

	if (!json_is_object(o)) {
		*error_r = mc_errorf("%s: must be an object", where);
		return -1;
	}
	if (get_id(o, where, "id", &a->id, error_r) < 0 ||
	    get_id(o, where, "domain_id", &a->domain_id, error_r) < 0 ||
	    get_address(o, where, &a->local_part, &a->domain, error_r) < 0)
		return -1;
	dests = json_object_get(o, "destinations");
	if (!json_is_array(dests)) {
		*error_r = mc_errorf("%s: \"destinations\" must be an array",
		                     where);
		return -1;
	}
	a->n_destinations = json_array_size(dests);
	a->destinations =
	        mc_calloc(a->n_destinations + 1, sizeof(*a->destinations));
	for (i = 0; i < a->n_destinations; i++) {
		json_t *v = json_array_get(dests, i);

		if (!json_is_string(v) ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			*error_r = mc_errorf("%s: destinations[%zu] must be a "
			                     "string",
			                     where, i);
			return -1;
		}
		a->destinations[i] = mc_strdup(json_string_value(v));
	}
	return 0;
}

/* Each element is allocated, initialised and stored before it is parsed,
 * so a failure half-way leaves a snapshot mc_directory_snapshot_free can
 * release. */
static int
parse_shard(json_t *o, const char *where, Mc__ShardOwner *sh, const char **error_r)
{
	uint64_t shard = 0;

	if (!json_is_object(o)) {
		*error_r = mc_errorf("%s: must be an object", where);
		return -1;
	}
	if (get_uint(o, where, "shard", MC_DIRECTORY_MAX_SHARDS - 1, &shard,
	             error_r) < 0 ||
	    get_id(o, where, "node_id", &sh->node_id, error_r) < 0 ||
	    get_id(o, where, "epoch", &sh->epoch, error_r) < 0 ||
	    get_str(o, where, "node_name", true, &sh->node_name, error_r) < 0 ||
	    get_str(o, where, "lmtp_address", true, &sh->lmtp_address, error_r) < 0)
		return -1;
	sh->shard = (uint32_t)shard;
	return 0;
}

/* "shards" came with leases: a file written before has none. */
static int
parse_shards(json_t *root, Mc__Snapshot *snap, const char **error_r)
{
	json_t *shs = json_object_get(root, "shards");
	char where[64];

	if (shs == NULL)
		return 0;
	if (!json_is_array(shs)) {
		*error_r = "\"shards\" must be an array";
		return -1;
	}
	snap->n_shards = json_array_size(shs);
	snap->shards = mc_calloc(snap->n_shards + 1, sizeof(*snap->shards));
	for (size_t i = 0; i < snap->n_shards; i++) {
		snap->shards[i] = mc_malloc(sizeof(*snap->shards[i]));
		mc__shard_owner__init(snap->shards[i]);
		snprintf(where, sizeof(where), "shards[%zu]", i);
		if (parse_shard(json_array_get(shs, i), where, snap->shards[i],
		                error_r) < 0)
			return -1;
	}
	return 0;
}

/* A string of the table, as its index; -1 (error_r set) otherwise. */
static int
get_enum(json_t *obj, const char *where, const char *key,
         const char *const *names, size_t n, int *v_r, const char **error_r)
{
	const char *s = json_string_value(json_object_get(obj, key));

	for (size_t i = 0; s != NULL && i < n; i++)
		if (names[i][0] != '\0' && strcmp(s, names[i]) == 0) {
			*v_r = (int)i;
			return 0;
		}
	*error_r = mc_errorf("%s: \"%s\" is missing or not a known value", where, key);
	return -1;
}

static int
get_bool(json_t *obj, const char *where, const char *key, protobuf_c_boolean *v_r,
         const char **error_r)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_boolean(v)) {
		*error_r = mc_errorf("%s: \"%s\" must be true or false", where, key);
		return -1;
	}
	*v_r = json_is_true(v);
	return 0;
}

static int
get_time(json_t *obj, const char *where, int64_t *v_r, const char **error_r)
{
	json_t *v = json_object_get(obj, "created_at");

	if (!json_is_integer(v)) {
		*error_r = mc_errorf("%s: \"created_at\" must be an integer", where);
		return -1;
	}
	*v_r = json_integer_value(v);
	return 0;
}

static int
parse_route(json_t *o, const char *where, Mc__Route *r, const char **error_r)
{
	uint64_t port = 0;
	int kind = 0, tls = 0;

	if (!json_is_object(o)) {
		*error_r = mc_errorf("%s: must be an object", where);
		return -1;
	}
	if (get_id(o, where, "id", &r->id, error_r) < 0 ||
	    get_str(o, where, "name", true, &r->name, error_r) < 0 ||
	    get_enum(o, where, "kind", route_kinds, 3, &kind, error_r) < 0 ||
	    get_str(o, where, "host", true, &r->host, error_r) < 0 ||
	    get_uint(o, where, "port", 65535, &port, error_r) < 0 ||
	    get_enum(o, where, "tls", route_tls_modes, 3, &tls, error_r) < 0 ||
	    get_str(o, where, "auth_user", true, &r->auth_user, error_r) < 0 ||
	    get_str(o, where, "secret_env", true, &r->secret_env, error_r) < 0 ||
	    get_str(o, where, "secret_file", true, &r->secret_file, error_r) < 0 ||
	    get_bool(o, where, "default", &r->is_default, error_r) < 0 ||
	    get_time(o, where, &r->created_at, error_r) < 0)
		return -1;
	r->kind = (Mc__RouteKind)kind;
	r->tls = (Mc__RouteTls)tls;
	r->port = (uint32_t)port;
	/* A secret reference that is not one could make a relay read
	 * something else: refuse the file rather than guess. */
	if (!mc_directory_route_name_valid(r->name) ||
	    (r->secret_env[0] != '\0' && !mc_directory_env_name_valid(r->secret_env)) ||
	    (r->secret_file[0] != '\0' &&
	     !mc_directory_secret_path_valid(r->secret_file))) {
		*error_r = mc_errorf("%s: invalid name or secret reference", where);
		return -1;
	}
	return 0;
}

static int
parse_rule(json_t *o, const char *where, Mc__RouteRule *r, const char **error_r)
{
	if (!json_is_object(o)) {
		*error_r = mc_errorf("%s: must be an object", where);
		return -1;
	}
	return get_id(o, where, "id", &r->id, error_r) < 0 ||
	                       get_str(o, where, "domain", true, &r->domain, error_r) < 0 ||
	                       get_id(o, where, "route_id", &r->route_id, error_r) < 0 ||
	                       get_str(o, where, "route", true, &r->route, error_r) < 0 ||
	                       get_time(o, where, &r->created_at, error_r) < 0
	               ? -1
	               : 0;
}

static int
parse_dkim(json_t *o, const char *where, Mc__DkimKey *k, const char **error_r)
{
	uint64_t bits = 0;
	int alg = 0;

	if (!json_is_object(o)) {
		*error_r = mc_errorf("%s: must be an object", where);
		return -1;
	}
	if (get_id(o, where, "id", &k->id, error_r) < 0 ||
	    get_id(o, where, "domain_id", &k->domain_id, error_r) < 0 ||
	    get_str(o, where, "domain", true, &k->domain, error_r) < 0 ||
	    get_str(o, where, "selector", true, &k->selector, error_r) < 0 ||
	    get_enum(o, where, "alg", dkim_algs, 3, &alg, error_r) < 0 ||
	    get_uint(o, where, "bits", UINT32_MAX, &bits, error_r) < 0 ||
	    get_str(o, where, "private_pem", false, &k->private_pem, error_r) < 0 ||
	    get_str(o, where, "public_b64", true, &k->public_b64, error_r) < 0 ||
	    get_bool(o, where, "active", &k->active, error_r) < 0 ||
	    get_time(o, where, &k->created_at, error_r) < 0)
		return -1;
	k->alg = (Mc__DkimAlg)alg;
	k->bits = (uint32_t)bits;
	if (!mc_directory_dkim_selector_valid(k->selector)) {
		*error_r = mc_errorf("%s: invalid selector", where);
		return -1;
	}
	return 0;
}

/* Each kind's array allocates, initialises and stores every element
 * before parsing it (see parse_shard). The arrays came with egress: a
 * file written before has none. */
#define PARSE_ARRAY(root, key, snap, field, type, init, parse)                    \
	do {                                                                     \
		json_t *arr_ = json_object_get(root, key);                       \
		char where_[64];                                                 \
                                                                                 \
		if (arr_ == NULL)                                                \
			break;                                                   \
		if (!json_is_array(arr_)) {                                      \
			*error_r = "\"" key "\" must be an array";               \
			return -1;                                               \
		}                                                                \
		(snap)->n_##field = json_array_size(arr_);                       \
		(snap)->field = mc_calloc((snap)->n_##field + 1, sizeof(type *)); \
		for (size_t i_ = 0; i_ < (snap)->n_##field; i_++) {              \
			(snap)->field[i_] = mc_malloc(sizeof(type));             \
			init((snap)->field[i_]);                                 \
			snprintf(where_, sizeof(where_), key "[%zu]", i_);       \
			if (parse(json_array_get(arr_, i_), where_,              \
			          (snap)->field[i_], error_r) < 0)               \
				return -1;                                       \
		}                                                                \
	} while (0)

static int
parse_egress(json_t *root, Mc__Snapshot *snap, const char **error_r)
{
	PARSE_ARRAY(root, "routes", snap, routes, Mc__Route, mc__route__init,
	            parse_route);
	PARSE_ARRAY(root, "route_rules", snap, route_rules, Mc__RouteRule,
	            mc__route_rule__init, parse_rule);
	PARSE_ARRAY(root, "dkim_keys", snap, dkim_keys, Mc__DkimKey,
	            mc__dkim_key__init, parse_dkim);
	return 0;
}

static Mc__Snapshot *
json_snapshot(json_t *root, const char **error_r)
{
	Mc__Snapshot *snap = mc_malloc(sizeof(*snap));
	json_t *doms = NULL, *accs = NULL, *als = NULL;
	uint64_t version = 0, shards = 0;
	char where[64];
	size_t i;

	mc__snapshot__init(snap);
	if (!json_is_object(root)) {
		*error_r = "top level must be an object";
		goto fail;
	}
	if (get_uint(root, "top level", "version", INT64_MAX, &version,
	             error_r) < 0 ||
	    get_uint(root, "top level", "shard_count", UINT32_MAX, &shards,
	             error_r) < 0 ||
	    (doms = get_array(root, "domains", error_r)) == NULL ||
	    (accs = get_array(root, "accounts", error_r)) == NULL ||
	    (als = get_array(root, "aliases", error_r)) == NULL)
		goto fail;
	snap->version = version;
	snap->shard_count = (uint32_t)shards;
	snap->n_domains = json_array_size(doms);
	snap->domains = mc_calloc(snap->n_domains + 1, sizeof(*snap->domains));
	for (i = 0; i < snap->n_domains; i++) {
		snap->domains[i] = mc_malloc(sizeof(*snap->domains[i]));
		mc__domain__init(snap->domains[i]);
		snprintf(where, sizeof(where), "domains[%zu]", i);
		if (parse_domain(json_array_get(doms, i), where,
		                 snap->domains[i], error_r) < 0)
			goto fail;
	}
	snap->n_accounts = json_array_size(accs);
	snap->accounts =
	        mc_calloc(snap->n_accounts + 1, sizeof(*snap->accounts));
	for (i = 0; i < snap->n_accounts; i++) {
		snap->accounts[i] = mc_malloc(sizeof(*snap->accounts[i]));
		mc__account__init(snap->accounts[i]);
		snprintf(where, sizeof(where), "accounts[%zu]", i);
		if (parse_account(json_array_get(accs, i), where,
		                  snap->accounts[i], error_r) < 0)
			goto fail;
	}
	snap->n_aliases = json_array_size(als);
	snap->aliases = mc_calloc(snap->n_aliases + 1, sizeof(*snap->aliases));
	for (i = 0; i < snap->n_aliases; i++) {
		snap->aliases[i] = mc_malloc(sizeof(*snap->aliases[i]));
		mc__alias__init(snap->aliases[i]);
		snprintf(where, sizeof(where), "aliases[%zu]", i);
		if (parse_alias(json_array_get(als, i), where, snap->aliases[i],
		                error_r) < 0)
			goto fail;
	}
	if (parse_shards(root, snap, error_r) < 0 ||
	    parse_egress(root, snap, error_r) < 0)
		goto fail;
	return snap;
fail:
	mc_directory_snapshot_free(&snap);
	return NULL;
}

int
mc_directory_load(struct mc_directory *dir, const char *path,
                  const char **error_r)
{
	Mc__Snapshot *snap;
	json_error_t jerr;
	json_t *root;
	FILE *f = fopen(path, "re");
	int saved;

	if (f == NULL) {
		/* Keep errno: ENOENT is a first start, not a fault. */
		saved = errno;
		*error_r = mc_errorf("%s: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
	fclose(f);
	if (root == NULL) {
		*error_r = mc_errorf("%s:%d:%d: %s", path, jerr.line,
		                     jerr.column, jerr.text);
		errno = EINVAL;
		return -1;
	}
	snap = json_snapshot(root, error_r);
	wipe_json_secrets(root);
	json_decref(root);
	if (snap == NULL) {
		*error_r = mc_errorf("%s: %s", path, *error_r);
		errno = EINVAL;
		return -1;
	}
	mc_directory_load_snapshot(dir, snap);
	mc_directory_snapshot_free(&snap);
	return 0;
}
