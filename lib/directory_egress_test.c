/* Unit tests for the directory's outbound objects: route lookups (rule,
 * default, direct MX), DKIM key lookups (active keys only, one per
 * algorithm, RSA first), deltas (rules removed, routes deleted and
 * recreated under one name, the default moved, keys rotated, domains
 * removed with their keys), the directory.json round trip with and
 * without private keys, rejection of malformed egress entries, and the
 * shared field rules. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "directory.h"
#include "mem.h"
#include "test.h"

#define PEM_RSA                                                                \
	"-----BEGIN PRIVATE KEY-----\nRSAKEY\n-----END PRIVATE KEY-----\n"
#define PEM_ED "-----BEGIN PRIVATE KEY-----\nEDKEY\n-----END PRIVATE KEY-----\n"

/* ---- builders: everything on the heap, released by snap_release ---- */

static Mc__Route *
mk_route(uint64_t id, const char *name, Mc__RouteKind kind, const char *host,
         uint32_t port, bool is_default)
{
	Mc__Route *r = calloc(1, sizeof(*r));

	mc__route__init(r);
	r->id = id;
	r->name = strdup(name);
	r->kind = kind;
	r->host = strdup(host);
	r->port = port;
	r->tls = kind == MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST
	                 ? MC__ROUTE_TLS__ROUTE_TLS_IMPLICIT
	                 : MC__ROUTE_TLS__ROUTE_TLS_NONE;
	r->auth_user = strdup(
	        kind == MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST ? "user" : "");
	r->secret_env = strdup(
	        kind == MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST ? "SES_PASS" : "");
	r->secret_file = strdup("");
	r->is_default = is_default;
	r->created_at = 1700000000 + (int64_t)id;
	return r;
}

static Mc__RouteRule *
mk_rule(uint64_t id, const char *domain, uint64_t route_id, const char *route)
{
	Mc__RouteRule *r = calloc(1, sizeof(*r));

	mc__route_rule__init(r);
	r->id = id;
	r->domain = strdup(domain);
	r->route_id = route_id;
	r->route = strdup(route);
	r->created_at = 1700000000;
	return r;
}

static Mc__DkimKey *
mk_key(uint64_t id, uint64_t domain_id, const char *domain,
       const char *selector, Mc__DkimAlg alg, const char *pem, bool active)
{
	Mc__DkimKey *k = calloc(1, sizeof(*k));

	mc__dkim_key__init(k);
	k->id = id;
	k->domain_id = domain_id;
	k->domain = strdup(domain);
	k->selector = strdup(selector);
	k->alg = alg;
	k->private_pem = strdup(pem);
	k->public_b64 = mc_asprintf("PUB%llu", (unsigned long long)id);
	k->active = active;
	k->bits = alg == MC__DKIM_ALG__DKIM_ALG_RSA ? 2048 : 0;
	k->created_at = 1700000000;
	return k;
}

static Mc__Domain *
mk_domain(uint64_t id, const char *name)
{
	Mc__Domain *d = calloc(1, sizeof(*d));

	mc__domain__init(d);
	d->id = id;
	d->name = strdup(name);
	return d;
}

/* The snapshot of the tests: two domains, three routes (ses the default,
 * relay2 for one domain, direct for another), three DKIM keys of a.test
 * (an inactive RSA key, an active one, an active Ed25519 key). */
static Mc__Snapshot *
mk_snapshot(void)
{
	Mc__Snapshot *s = calloc(1, sizeof(*s));

	mc__snapshot__init(s);
	s->version = 10;
	s->shard_count = 4;
	s->n_domains = 2;
	s->domains = calloc(3, sizeof(*s->domains));
	s->domains[0] = mk_domain(1, "a.test");
	s->domains[1] = mk_domain(2, "b.test");
	s->n_routes = 3;
	s->routes = calloc(4, sizeof(*s->routes));
	s->routes[0] =
	        mk_route(5, "ses", MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST,
	                 "email-smtp.eu-west-1.amazonaws.com", 465, true);
	s->routes[1] =
	        mk_route(6, "relay2", MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST,
	                 "2001:db8::25", 587, false);
	s->routes[2] = mk_route(7, "direct", MC__ROUTE_KIND__ROUTE_KIND_MX, "",
	                        0, false);
	s->n_route_rules = 2;
	s->route_rules = calloc(3, sizeof(*s->route_rules));
	s->route_rules[0] = mk_rule(20, "gmail.com", 6, "relay2");
	s->route_rules[1] = mk_rule(21, "Example.NET", 7, "direct");
	s->n_dkim_keys = 3;
	s->dkim_keys = calloc(4, sizeof(*s->dkim_keys));
	s->dkim_keys[0] = mk_key(30, 1, "a.test", "s202601r",
	                         MC__DKIM_ALG__DKIM_ALG_RSA, "", false);
	s->dkim_keys[1] = mk_key(31, 1, "a.test", "s202612r",
	                         MC__DKIM_ALG__DKIM_ALG_RSA, PEM_RSA, true);
	s->dkim_keys[2] = mk_key(32, 1, "a.test", "s202612e",
	                         MC__DKIM_ALG__DKIM_ALG_ED25519, PEM_ED, true);
	return s;
}

static void
snap_release(Mc__Snapshot *s)
{
	/* The builders' strings are plain heap strings like the directory's
	 * own exports, so the directory's free does for both. */
	mc_directory_snapshot_free(&s);
}

static void
test_route_lookups(void)
{
	struct mc_directory *dir = mc_directory_new();
	Mc__Snapshot *s = mk_snapshot();
	const struct mc_dir_route *r;

	mc_directory_load_snapshot(dir, s);
	snap_release(s);
	CHECK(mc_directory_route_count(dir) == 3);
	CHECK(mc_directory_route_rule_count(dir) == 2);
	r = mc_directory_route_for(dir, "gmail.com");
	CHECK(r != NULL && r->id == 6 && strcmp(r->name, "relay2") == 0);
	CHECK(r != NULL && r->kind == MC_DIR_ROUTE_SMARTHOST &&
	      strcmp(r->host, "2001:db8::25") == 0 && r->port == 587 &&
	      r->tls == MC_DIR_ROUTE_TLS_IMPLICIT &&
	      strcmp(r->auth_user, "user") == 0 &&
	      strcmp(r->secret_env, "SES_PASS") == 0 &&
	      r->secret_file[0] == '\0');
	/* Case-insensitive, a trailing dot ignored. */
	CHECK(mc_directory_route_for(dir, "GMail.Com.") == r);
	r = mc_directory_route_for(dir, "example.net");
	CHECK(r != NULL && r->kind == MC_DIR_ROUTE_MX && r->host[0] == '\0' &&
	      r->port == 0 && r->auth_user[0] == '\0');
	/* No rule: the default route. A subdomain is not its parent. */
	r = mc_directory_route_for(dir, "yahoo.com");
	CHECK(r != NULL && r->id == 5 && strcmp(r->name, "ses") == 0 &&
	      r->port == 465);
	CHECK(mc_directory_route_for(dir, "mail.gmail.com") == r);
	CHECK(mc_directory_route_for(dir, NULL) == r);
	CHECK(mc_directory_route(dir, "SES") == r);
	CHECK(mc_directory_route(dir, "direct") != NULL);
	CHECK(mc_directory_route(dir, "nope") == NULL);
	CHECK(mc_directory_route(dir, NULL) == NULL);
	{
		char long_name[300];

		memset(long_name, 'a', sizeof(long_name) - 1);
		long_name[sizeof(long_name) - 1] = '\0';
		CHECK(mc_directory_route(dir, long_name) == NULL);
		CHECK(mc_directory_route_for(dir, long_name) == r);
	}
	mc_directory_free(&dir);
	CHECK(dir == NULL);
}

static void
test_dkim_lookups(void)
{
	struct mc_directory *dir = mc_directory_new();
	Mc__Snapshot *s = mk_snapshot();
	const struct mc_dir_dkim_key *keys[4];
	size_t n;

	mc_directory_load_snapshot(dir, s);
	snap_release(s);
	CHECK(mc_directory_dkim_key_count(dir) == 3);
	n = mc_directory_dkim_keys(dir, "A.Test", keys, 4);
	CHECK(n == 2);
	if (n == 2) {
		CHECK(keys[0]->id == 31 && keys[0]->alg == MC_DIR_DKIM_RSA &&
		      keys[0]->active &&
		      strcmp(keys[0]->selector, "s202612r") == 0 &&
		      strcmp(keys[0]->domain, "a.test") == 0 &&
		      strcmp(keys[0]->private_pem, PEM_RSA) == 0 &&
		      strcmp(keys[0]->public_b64, "PUB31") == 0);
		CHECK(keys[1]->id == 32 &&
		      keys[1]->alg == MC_DIR_DKIM_ED25519 &&
		      strcmp(keys[1]->private_pem, PEM_ED) == 0);
	}
	CHECK(mc_directory_dkim_keys(dir, "a.test", keys, 1) == 1 &&
	      keys[0]->id == 31);
	CHECK(mc_directory_dkim_keys(dir, "a.test", keys, 0) == 0);
	CHECK(mc_directory_dkim_keys(dir, "b.test", keys, 4) == 0);
	CHECK(mc_directory_dkim_keys(dir, "nowhere.test", keys, 4) == 0);
	CHECK(mc_directory_dkim_keys(dir, NULL, keys, 4) == 0);
	mc_directory_free(&dir);
}

static Mc__Change *
change(Mc__Change__Op op)
{
	Mc__Change *c = calloc(1, sizeof(*c));

	mc__change__init(c);
	c->op = op;
	return c;
}

static void
delta_release(Mc__Delta *d)
{
	for (size_t i = 0; i < d->n_changes; i++) {
		Mc__Change *c = d->changes[i];
		Mc__Snapshot *p = calloc(1, sizeof(*p));

		mc__snapshot__init(p);
		/* Reuse the snapshot free for the objects. */
		if (c->object_case == MC__CHANGE__OBJECT_ROUTE) {
			p->n_routes = 1;
			p->routes = calloc(1, sizeof(*p->routes));
			p->routes[0] = c->route;
		} else if (c->object_case == MC__CHANGE__OBJECT_ROUTE_RULE) {
			p->n_route_rules = 1;
			p->route_rules = calloc(1, sizeof(*p->route_rules));
			p->route_rules[0] = c->route_rule;
		} else if (c->object_case == MC__CHANGE__OBJECT_DKIM_KEY) {
			p->n_dkim_keys = 1;
			p->dkim_keys = calloc(1, sizeof(*p->dkim_keys));
			p->dkim_keys[0] = c->dkim_key;
		} else if (c->object_case == MC__CHANGE__OBJECT_DOMAIN) {
			p->n_domains = 1;
			p->domains = calloc(1, sizeof(*p->domains));
			p->domains[0] = c->domain;
		}
		mc_directory_snapshot_free(&p);
		free(c);
	}
	free(d->changes);
}

static void
delta_add(Mc__Delta *d, Mc__Change *c)
{
	d->changes =
	        realloc(d->changes, (d->n_changes + 1) * sizeof(*d->changes));
	d->changes[d->n_changes++] = c;
}

static void
test_deltas(void)
{
	struct mc_directory *dir = mc_directory_new();
	Mc__Snapshot *s = mk_snapshot();
	Mc__Delta d = MC__DELTA__INIT;
	const struct mc_dir_dkim_key *keys[4];
	const struct mc_dir_route *r;
	Mc__Change *c;

	mc_directory_load_snapshot(dir, s);
	snap_release(s);

	/* The gmail.com rule goes: gmail takes the default route. relay2
	 * is deleted and recreated under its name with a new id, and a new
	 * rule for the new id comes in the same delta (deletes first). */
	d.from_version = 10;
	d.to_version = 11;
	c = change(MC__CHANGE__OP__UPSERT);
	c->object_case = MC__CHANGE__OBJECT_ROUTE_RULE;
	c->route_rule = mk_rule(22, "outlook.com", 8, "relay2");
	delta_add(&d, c);
	c = change(MC__CHANGE__OP__UPSERT);
	c->object_case = MC__CHANGE__OBJECT_ROUTE;
	c->route = mk_route(8, "relay2", MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST,
	                    "smtp.example.org", 25, false);
	c->route->tls = MC__ROUTE_TLS__ROUTE_TLS_STARTTLS;
	free(c->route->secret_env);
	c->route->secret_env = strdup("");
	free(c->route->secret_file);
	c->route->secret_file = strdup("/etc/mail/relay2.secret");
	delta_add(&d, c);
	c = change(MC__CHANGE__OP__DELETE);
	c->object_case = MC__CHANGE__OBJECT_ROUTE_RULE;
	c->route_rule = mk_rule(20, "", 0, "");
	delta_add(&d, c);
	c = change(MC__CHANGE__OP__DELETE);
	c->object_case = MC__CHANGE__OBJECT_ROUTE;
	c->route = mk_route(6, "", MC__ROUTE_KIND__ROUTE_KIND_UNSPECIFIED, "",
	                    0, false);
	delta_add(&d, c);
	CHECK(mc_directory_apply_delta(dir, &d) == 1);
	delta_release(&d);
	CHECK(mc_directory_route_count(dir) == 3);
	r = mc_directory_route_for(dir, "gmail.com");
	CHECK(r != NULL && r->id == 5);
	r = mc_directory_route_for(dir, "outlook.com");
	CHECK(r != NULL && r->id == 8 && r->tls == MC_DIR_ROUTE_TLS_STARTTLS &&
	      strcmp(r->secret_file, "/etc/mail/relay2.secret") == 0 &&
	      r->secret_env[0] == '\0');
	CHECK(mc_directory_route(dir, "relay2") == r);

	/* The default moves from ses to direct (two upserts), then ses
	 * goes; a rotation makes the Ed25519 key inactive and brings a new
	 * one. */
	memset(&d, 0, sizeof(d));
	mc__delta__init(&d);
	d.from_version = 11;
	d.to_version = 12;
	c = change(MC__CHANGE__OP__UPSERT);
	c->object_case = MC__CHANGE__OBJECT_ROUTE;
	c->route = mk_route(5, "ses", MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST,
	                    "email-smtp.eu-west-1.amazonaws.com", 465, false);
	delta_add(&d, c);
	c = change(MC__CHANGE__OP__UPSERT);
	c->object_case = MC__CHANGE__OBJECT_ROUTE;
	c->route = mk_route(7, "direct", MC__ROUTE_KIND__ROUTE_KIND_MX, "", 0,
	                    true);
	delta_add(&d, c);
	c = change(MC__CHANGE__OP__UPSERT);
	c->object_case = MC__CHANGE__OBJECT_DKIM_KEY;
	c->dkim_key = mk_key(32, 1, "a.test", "s202612e",
	                     MC__DKIM_ALG__DKIM_ALG_ED25519, "", false);
	delta_add(&d, c);
	c = change(MC__CHANGE__OP__UPSERT);
	c->object_case = MC__CHANGE__OBJECT_DKIM_KEY;
	/* No denormalised domain name: taken from the domain id. */
	c->dkim_key = mk_key(33, 1, "", "s202701e",
	                     MC__DKIM_ALG__DKIM_ALG_ED25519, PEM_ED, true);
	delta_add(&d, c);
	CHECK(mc_directory_apply_delta(dir, &d) == 1);
	delta_release(&d);
	r = mc_directory_route_for(dir, "yahoo.com");
	CHECK(r != NULL && r->id == 7 && r->kind == MC_DIR_ROUTE_MX);
	CHECK(mc_directory_dkim_keys(dir, "a.test", keys, 4) == 2 &&
	      keys[0]->id == 31 && keys[1]->id == 33 &&
	      strcmp(keys[1]->domain, "a.test") == 0 &&
	      strcmp(keys[1]->selector, "s202701e") == 0);
	CHECK(mc_directory_dkim_key_count(dir) == 4);

	/* No default any more: direct MX for everything without a rule. */
	memset(&d, 0, sizeof(d));
	mc__delta__init(&d);
	d.from_version = 12;
	d.to_version = 13;
	c = change(MC__CHANGE__OP__DELETE);
	c->object_case = MC__CHANGE__OBJECT_ROUTE;
	c->route = mk_route(7, "", MC__ROUTE_KIND__ROUTE_KIND_UNSPECIFIED, "",
	                    0, false);
	delta_add(&d, c);
	c = change(MC__CHANGE__OP__DELETE); /* absent: nothing happens */
	c->object_case = MC__CHANGE__OBJECT_DKIM_KEY;
	c->dkim_key = mk_key(999, 0, "", "", MC__DKIM_ALG__DKIM_ALG_UNSPECIFIED,
	                     "", false);
	delta_add(&d, c);
	CHECK(mc_directory_apply_delta(dir, &d) == 1);
	delta_release(&d);
	CHECK(mc_directory_route_for(dir, "yahoo.com") == NULL);
	CHECK(mc_directory_route_for(dir, "outlook.com") != NULL);

	/* The domain is removed: its keys go with it. Recreated under its
	 * name, it has none. */
	memset(&d, 0, sizeof(d));
	mc__delta__init(&d);
	d.from_version = 13;
	d.to_version = 14;
	c = change(MC__CHANGE__OP__DELETE);
	c->object_case = MC__CHANGE__OBJECT_DOMAIN;
	c->domain = mk_domain(1, "");
	delta_add(&d, c);
	c = change(MC__CHANGE__OP__UPSERT);
	c->object_case = MC__CHANGE__OBJECT_DOMAIN;
	c->domain = mk_domain(40, "a.test");
	delta_add(&d, c);
	CHECK(mc_directory_apply_delta(dir, &d) == 1);
	delta_release(&d);
	CHECK(mc_directory_dkim_key_count(dir) == 0);
	CHECK(mc_directory_dkim_keys(dir, "a.test", keys, 4) == 0);
	mc_directory_free(&dir);

	/* Same name, other domain id (a snapshot-less recreate): the keys
	 * of the old domain go too. */
	dir = mc_directory_new();
	s = mk_snapshot();
	mc_directory_load_snapshot(dir, s);
	snap_release(s);
	memset(&d, 0, sizeof(d));
	mc__delta__init(&d);
	d.from_version = 10;
	d.to_version = 11;
	c = change(MC__CHANGE__OP__UPSERT);
	c->object_case = MC__CHANGE__OBJECT_DOMAIN;
	c->domain = mk_domain(41, "a.test");
	delta_add(&d, c);
	CHECK(mc_directory_apply_delta(dir, &d) == 1);
	delta_release(&d);
	CHECK(mc_directory_dkim_keys(dir, "a.test", keys, 4) == 0);
	mc_directory_free(&dir);
}

static char tmpdir[] = "/tmp/directory_egress_test.XXXXXX";

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 16);

	if (f != NULL) {
		size_t n = fread(buf, 1, (1 << 16) - 1, f);

		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

static void
spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

static void
test_json_round_trip(void)
{
	struct mc_directory *dir = mc_directory_new(),
	                    *back = mc_directory_new();
	Mc__Snapshot *s = mk_snapshot(), *a, *b;
	const struct mc_dir_dkim_key *keys[4];
	const struct mc_dir_route *r;
	char *path = mc_asprintf("%s/directory.json", tmpdir), *text;
	const char *err = NULL;

	mc_directory_load_snapshot(dir, s);
	snap_release(s);
	CHECK(mc_directory_save(dir, path, &err) == 0);
	text = slurp(path);
	CHECK(strstr(text, "\"routes\"") != NULL &&
	      strstr(text, "\"route_rules\"") &&
	      strstr(text, "\"dkim_keys\"") && strstr(text, "\"smarthost\"") &&
	      strstr(text, "\"implicit\"") && strstr(text, "\"ed25519\""));
	CHECK(strstr(text, "RSAKEY") != NULL);
	free(text);
	CHECK(mc_directory_load(back, path, &err) == 0);
	CHECK(mc_directory_route_count(back) == 3 &&
	      mc_directory_route_rule_count(back) == 2 &&
	      mc_directory_dkim_key_count(back) == 3);
	r = mc_directory_route_for(back, "gmail.com");
	CHECK(r != NULL && r->id == 6 && r->port == 587 &&
	      r->tls == MC_DIR_ROUTE_TLS_IMPLICIT &&
	      strcmp(r->secret_env, "SES_PASS") == 0);
	r = mc_directory_route_for(back, "other.test");
	CHECK(r != NULL && r->id == 5);
	CHECK(mc_directory_dkim_keys(back, "a.test", keys, 4) == 2 &&
	      strcmp(keys[0]->private_pem, PEM_RSA) == 0 &&
	      strcmp(keys[1]->private_pem, PEM_ED) == 0);
	/* The export of the loaded copy equals the original's. */
	a = mc_directory_to_snapshot(dir);
	b = mc_directory_to_snapshot(back);
	CHECK(a->n_routes == b->n_routes && a->n_dkim_keys == b->n_dkim_keys);
	for (size_t i = 0; i < a->n_routes && i < b->n_routes; i++) {
		size_t la = mc__route__get_packed_size(a->routes[i]);
		size_t lb = mc__route__get_packed_size(b->routes[i]);
		uint8_t *pa = malloc(la), *pb = malloc(lb);

		mc__route__pack(a->routes[i], pa);
		mc__route__pack(b->routes[i], pb);
		CHECK(la == lb && memcmp(pa, pb, la) == 0);
		free(pa);
		free(pb);
	}
	for (size_t i = 0; i < a->n_dkim_keys && i < b->n_dkim_keys; i++) {
		CHECK(a->dkim_keys[i]->id == b->dkim_keys[i]->id &&
		      a->dkim_keys[i]->bits == b->dkim_keys[i]->bits &&
		      a->dkim_keys[i]->active == b->dkim_keys[i]->active &&
		      a->dkim_keys[i]->created_at ==
		              b->dkim_keys[i]->created_at &&
		      strcmp(a->dkim_keys[i]->private_pem,
		             b->dkim_keys[i]->private_pem) == 0);
	}
	for (size_t i = 0; i < a->n_route_rules && i < b->n_route_rules; i++)
		CHECK(a->route_rules[i]->route_id ==
		              b->route_rules[i]->route_id &&
		      strcmp(a->route_rules[i]->route,
		             b->route_rules[i]->route) == 0 &&
		      strcmp(a->route_rules[i]->domain,
		             b->route_rules[i]->domain) == 0);
	mc_directory_snapshot_free(&a);
	mc_directory_snapshot_free(&b);
	mc_directory_free(&back);

	/* Without private keys (a mailbox node): the key is absent. */
	a = mc_directory_to_snapshot(dir);
	for (size_t i = 0; i < a->n_dkim_keys; i++) {
		free(a->dkim_keys[i]->private_pem);
		a->dkim_keys[i]->private_pem = strdup("");
	}
	mc_directory_load_snapshot(dir, a);
	mc_directory_snapshot_free(&a);
	CHECK(mc_directory_save(dir, path, &err) == 0);
	text = slurp(path);
	CHECK(strstr(text, "private_pem") == NULL &&
	      strstr(text, "PRIVATE") == NULL);
	free(text);
	back = mc_directory_new();
	CHECK(mc_directory_load(back, path, &err) == 0);
	CHECK(mc_directory_dkim_keys(back, "a.test", keys, 4) == 2 &&
	      keys[0]->private_pem[0] == '\0' &&
	      strcmp(keys[0]->public_b64, "PUB31") == 0);
	mc_directory_free(&back);
	mc_directory_free(&dir);
	unlink(path);
	free(path);
}

/* A file from before routes and DKIM keys loads; malformed egress
 * entries are refused and leave the directory as it was. */
static void
test_json_malformed(void)
{
	static const char base[] =
	        "{\"version\": 3, \"shard_count\": 4, \"domains\": [{\"id\": "
	        "1, "
	        "\"name\": \"a.test\", \"created_at\": 0}], \"accounts\": [], "
	        "\"aliases\": []";
	static const char route[] = "{\"id\": 5, \"name\": \"%s\", \"kind\": "
	                            "\"%s\", \"host\": \"h.test\", "
	                            "\"port\": %s, \"tls\": \"%s\", "
	                            "\"auth_user\": \"u\", \"secret_env\": "
	                            "\"%s\", \"secret_file\": \"%s\", "
	                            "\"default\": true, \"created_at\": 0}";
	static const struct {
		const char *name, *kind, *port, *tls, *env, *file;
		bool ok;
	} cases[] = {
	        {"ses", "smarthost", "465", "implicit", "SES_PASS", "", true},
	        {"ses", "mx", "0", "none", "", "/etc/x", true},
	        {"ses", "smarthost", "465", "tls13", "", "", false},
	        {"ses", "carrier-pigeon", "465", "none", "", "", false},
	        {"ses", "smarthost", "65536", "none", "", "", false},
	        {"ses", "smarthost", "-1", "none", "", "", false},
	        {"Bad Name", "smarthost", "25", "none", "", "", false},
	        {"ses", "smarthost", "25", "none", "PASS;rm", "", false},
	        {"ses", "smarthost", "25", "none", "", "relative/path", false},
	        {"ses", "smarthost", "25", "none", "", "/etc/../shadow", false},
	};
	char *path = mc_asprintf("%s/malformed.json", tmpdir);
	const char *err = NULL;
	struct mc_directory *dir = mc_directory_new();

	{
		char *text = mc_asprintf("%s}", base);

		spit(path, text);
		free(text);
		CHECK(mc_directory_load(dir, path, &err) == 0 &&
		      mc_directory_route_count(dir) == 0 &&
		      mc_directory_route_for(dir, "x.test") == NULL);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r = mc_asprintf(route, cases[i].name, cases[i].kind,
		                      cases[i].port, cases[i].tls, cases[i].env,
		                      cases[i].file);
		char *text = mc_asprintf("%s, \"routes\": [%s]}", base, r);
		int rv;

		spit(path, text);
		errno = 0;
		rv = mc_directory_load(dir, path, &err);
		CHECK((rv == 0) == cases[i].ok);
		if (!cases[i].ok)
			CHECK(errno == EINVAL &&
			      strstr(err, "routes[0]") != NULL);
		free(r);
		free(text);
	}
	{
		static const char *const bad[] = {
		        ", \"routes\": {}",
		        ", \"route_rules\": [{\"id\": 1, \"domain\": "
		        "\"x.test\"}]",
		        ", \"dkim_keys\": [{\"id\": 1, \"domain_id\": 1, "
		        "\"domain\": "
		        "\"a.test\", \"selector\": \"-bad\", \"alg\": \"rsa\", "
		        "\"bits\": 0, "
		        "\"public_b64\": \"x\", \"active\": true, "
		        "\"created_at\": 0}]",
		        ", \"dkim_keys\": [{\"id\": 1, \"domain_id\": 1, "
		        "\"domain\": "
		        "\"a.test\", \"selector\": \"s1\", \"alg\": \"dsa\", "
		        "\"bits\": 0, "
		        "\"public_b64\": \"x\", \"active\": true, "
		        "\"created_at\": 0}]",
		        ", \"dkim_keys\": [{\"id\": 1, \"domain_id\": 1, "
		        "\"domain\": "
		        "\"a.test\", \"selector\": \"s1\", \"alg\": \"rsa\", "
		        "\"bits\": 0, "
		        "\"public_b64\": \"x\", \"active\": 1, \"created_at\": "
		        "0}]",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char *text = mc_asprintf("%s%s}", base, bad[i]);

			spit(path, text);
			CHECK(mc_directory_load(dir, path, &err) < 0 &&
			      errno == EINVAL);
			free(text);
		}
	}
	/* The last good load is still there. */
	CHECK(mc_directory_route(dir, "ses") != NULL);
	mc_directory_free(&dir);
	unlink(path);
	free(path);
}

static void
test_field_rules(void)
{
	static const struct {
		bool (*fn)(const char *);
		const char *in;
		bool ok;
	} cases[] = {
	        {mc_directory_route_name_valid, "ses", true},
	        {mc_directory_route_name_valid, "eu-1.ses_backup", true},
	        {mc_directory_route_name_valid, "9", true},
	        {mc_directory_route_name_valid, "", false},
	        {mc_directory_route_name_valid, "SES", false},
	        {mc_directory_route_name_valid, "-ses", false},
	        {mc_directory_route_name_valid, "s e s", false},
	        {mc_directory_route_name_valid,
	         "a123456789012345678901234567890123456789012345678901234567890"
	         "123",
	         true},
	        {mc_directory_route_name_valid,
	         "a123456789012345678901234567890123456789012345678901234567890"
	         "1234",
	         false},
	        {mc_directory_route_host_valid, "smtp.example.org", true},
	        {mc_directory_route_host_valid, "localhost", true},
	        {mc_directory_route_host_valid, "127.0.0.1", true},
	        {mc_directory_route_host_valid, "2001:db8::1", true},
	        {mc_directory_route_host_valid, "[2001:db8::1]", false},
	        {mc_directory_route_host_valid, "smtp..example.org", false},
	        {mc_directory_route_host_valid, "-smtp.example.org", false},
	        {mc_directory_route_host_valid, "smtp-.example.org", false},
	        {mc_directory_route_host_valid, "smtp.example.org.", false},
	        {mc_directory_route_host_valid, "smtp_1.example.org", false},
	        {mc_directory_route_host_valid, "", false},
	        {mc_directory_env_name_valid, "SES_PASSWORD", true},
	        {mc_directory_env_name_valid, "_x9", true},
	        {mc_directory_env_name_valid, "lower_ok", true},
	        {mc_directory_env_name_valid, "", false},
	        {mc_directory_env_name_valid, "9LIVES", false},
	        {mc_directory_env_name_valid, "SES-PASS", false},
	        {mc_directory_env_name_valid, "A=B", false},
	        {mc_directory_env_name_valid, "$HOME", false},
	        {mc_directory_secret_path_valid, "/etc/mail/ses.secret", true},
	        {mc_directory_secret_path_valid, "/run/secrets/a.b..c", true},
	        {mc_directory_secret_path_valid, "/", false},
	        {mc_directory_secret_path_valid, "etc/mail/ses", false},
	        {mc_directory_secret_path_valid, "/etc/mail/", false},
	        {mc_directory_secret_path_valid, "/etc//mail", false},
	        {mc_directory_secret_path_valid, "/etc/./mail", false},
	        {mc_directory_secret_path_valid, "/etc/../shadow", false},
	        {mc_directory_secret_path_valid, "/etc/mail/..", false},
	        {mc_directory_secret_path_valid, "/etc/my secret", false},
	        {mc_directory_secret_path_valid, "/etc/tab\there", false},
	        {mc_directory_dkim_selector_valid, "s202612e", true},
	        {mc_directory_dkim_selector_valid, "mail.2026-12", true},
	        {mc_directory_dkim_selector_valid, "", false},
	        {mc_directory_dkim_selector_valid, "-s1", false},
	        {mc_directory_dkim_selector_valid, "s1-", false},
	        {mc_directory_dkim_selector_valid, "s_1", false},
	        {mc_directory_dkim_selector_valid, "s1.", false},
	        {mc_directory_dkim_selector_valid, "s 1", false},
	        {mc_directory_dkim_selector_valid,
	         "s123456789012345678901234567890123456789012345678901234567890"
	         "123",
	         false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = cases[i].fn(cases[i].in);

		if (got != cases[i].ok)
			fprintf(stderr, "field rule case %zu '%s': got %d\n", i,
			        cases[i].in, got);
		CHECK(got == cases[i].ok);
	}
	{
		char path[MC_DIR_SECRET_PATH_MAX + 2];

		memset(path, 'a', sizeof(path) - 1);
		path[0] = '/';
		path[sizeof(path) - 1] = '\0';
		CHECK(!mc_directory_secret_path_valid(path));
		path[MC_DIR_SECRET_PATH_MAX] = '\0';
		CHECK(mc_directory_secret_path_valid(path));
	}
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_route_lookups();
	test_dkim_lookups();
	test_deltas();
	test_json_round_trip();
	test_json_malformed();
	test_field_rules();
	rmdir(tmpdir);
	return mc_test_done();
}
