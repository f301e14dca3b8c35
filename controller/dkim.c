/* Admin handlers for DKIM keys: dkim create / list / rotate / rm, and the
 * loader the snapshot and the publisher share. The controller generates
 * the keys (lib/dkim) and keeps each private key sealed with AES-256-GCM
 * under the secrets_key_file key (lib/secretbox), bound to its domain and
 * selector; it decrypts one only to publish it to relays, and the
 * decrypted text is wiped once the reply or delta is sent. Admin replies
 * and mailbox nodes never get private keys.
 *
 * A domain has at most one active key per algorithm. Rotation makes the
 * current keys inactive (still published, so their DNS records stay and
 * signatures made before keep verifying) and creates new active ones;
 * `dkim rm` ends the grace period. Selectors default to the month, UTC:
 * "s202612r" (RSA) and "s202612e" (Ed25519), then "s202612-2r", ... when
 * the month's are taken. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "ctrl.h"
#include "directory.h"
#include "dkim.h"
#include "log.h"
#include "mem.h"
#include "secretbox.h"

#define EPOCH(col) "extract(epoch FROM " col ")::bigint"
#define CTRL_DKIM_ALGS 2
/* Selector stems tried per month before giving up. */
#define CTRL_DKIM_SELECTOR_TRIES 99

/* The associated data a key is sealed with: a sealed key moved to
 * another row does not open. */
static const char *
seal_label(struct ctrl_req *r, const char *domain, const char *selector)
{
	size_t n = strlen(domain) + strlen(selector) + 16;
	char *s = mc_pool_alloc(r->pool, n);

	snprintf(s, n, "mc-dkim:%s/%s", domain, selector);
	return s;
}

/* The decrypted PEM of one stored key, in the pool and tracked as a
 * secret; "" (logged) when it cannot be opened. */
static char *
open_key(struct ctrl_req *r, const char *sealed, const char *domain,
         const char *selector)
{
	const char *err = "no secrets_key_file configured";
	char *plain = NULL, *copy;
	size_t len;

	if (r->ctrl->secrets == NULL ||
	    mc_secretbox_open(r->ctrl->secrets, sealed,
	                      seal_label(r, domain, selector), &plain, &len,
	                      &err) < 0) {
		mc_error("DKIM private key not published domain=%s selector=%s "
		         "error=\"%s\"",
		         domain, selector, err);
		return "";
	}
	copy = mc_pool_strdup(r->pool, plain);
	mc_wipe(plain, len);
	free(plain);
	ctrl_secret_track(r, copy);
	return copy;
}

int
ctrl_load_dkim_keys(struct ctrl_req *r, enum ctrl_filter f, const char *arg,
                    bool with_private, Mc__DkimKey ***out_r)
{
	static const char base[] =
	        "SELECT k.id, k.domain_id, d.name, k.selector, k.alg, k.bits,"
	        " k.public_b64, k.active, " EPOCH(
	                "k.created_at") ", k.private_sealed"
	                                " FROM dkim_keys k JOIN domains d ON "
	                                "d.id = k.domain_id";
	static const char order[] =
	        "ORDER BY d.name, k.active DESC, k.alg, k.id";
	char sql[512];
	PGresult *res;
	Mc__DkimKey **out;
	int n;

	if (f == CTRL_BY_IDS || f == CTRL_BY_DOMAIN) {
		snprintf(sql, sizeof(sql), "%s WHERE %s %s", base,
		         f == CTRL_BY_IDS ? "k.id = ANY($1::bigint[])"
		                          : "d.name = $1",
		         order);
		res = ctrl_query(r, sql, 1, arg);
	} else {
		snprintf(sql, sizeof(sql), "%s %s", base, order);
		res = ctrl_query(r, sql, 0);
	}
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	out = mc_pool_alloc(r->pool, sizeof(*out) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		Mc__DkimKey *k = mc_pool_alloc(r->pool, sizeof(*k));

		mc__dkim_key__init(k);
		k->id = ctrl_row_u64(res, i, 0);
		k->domain_id = ctrl_row_u64(res, i, 1);
		k->domain = ctrl_row_str(r, res, i, 2);
		k->selector = ctrl_row_str(r, res, i, 3);
		k->alg = (Mc__DkimAlg)ctrl_row_u64(res, i, 4);
		k->bits = (uint32_t)ctrl_row_u64(res, i, 5);
		k->public_b64 = ctrl_row_str(r, res, i, 6);
		k->active = PQgetvalue(res, i, 7)[0] == 't';
		k->created_at = (int64_t)ctrl_row_u64(res, i, 8);
		/* Only active keys sign: an inactive one stays on relays for
		 * its public half only. */
		if (with_private && k->active)
			k->private_pem = open_key(r, PQgetvalue(res, i, 9),
			                          k->domain, k->selector);
		out[i] = k;
	}
	PQclear(res);
	*out_r = out;
	return n;
}

static enum mc_dkim_alg
lib_alg(Mc__DkimAlg alg)
{
	return alg == MC__DKIM_ALG__DKIM_ALG_ED25519 ? MC_DKIM_ED25519_SHA256
	                                             : MC_DKIM_RSA_SHA256;
}

static const char *
alg_suffix(Mc__DkimAlg alg)
{
	return alg == MC__DKIM_ALG__DKIM_ALG_ED25519 ? "e" : "r";
}

/* What to create: algorithms (RSA first), selectors, RSA size. */
struct keyset {
	Mc__DkimAlg algs[CTRL_DKIM_ALGS];
	size_t n;
	unsigned rsa_bits;
	char selectors[CTRL_DKIM_ALGS][MC_DIR_SELECTOR_MAX + 1];
};

/* Fill ks->selectors from stem: as is for one algorithm, with a
 * per-algorithm suffix for two. false when one is not a valid selector. */
static bool
name_selectors(struct keyset *ks, const char *stem, bool suffix)
{
	for (size_t i = 0; i < ks->n; i++) {
		int w = snprintf(ks->selectors[i], sizeof(ks->selectors[i]),
		                 "%s%s", stem,
		                 suffix ? alg_suffix(ks->algs[i]) : "");

		if (w < 0 || (size_t)w >= sizeof(ks->selectors[i]) ||
		    !mc_directory_dkim_selector_valid(ks->selectors[i]))
			return false;
	}
	return true;
}

/* 1 when one of ks's selectors is taken in the domain, 0 when none, -1. */
static int
selectors_taken(struct ctrl_req *r, const char *domain_id,
                const struct keyset *ks)
{
	char list[2 * (MC_DIR_SELECTOR_MAX + 2) + 4];
	PGresult *res;
	int taken;

	/* Valid selectors need no quoting in an array literal. */
	snprintf(list, sizeof(list), "{%s%s%s}", ks->selectors[0],
	         ks->n > 1 ? "," : "", ks->n > 1 ? ks->selectors[1] : "");
	res = ctrl_query(r,
	                 "SELECT 1 FROM dkim_keys WHERE domain_id = $1 AND"
	                 " selector = ANY($2::text[])",
	                 2, domain_id, list);
	if (res == NULL)
		return -1;
	taken = PQntuples(res) > 0;
	PQclear(res);
	return taken;
}

/* Choose the selectors: the operator's, or the month's first free stem. */
static int
choose_selectors(struct ctrl_req *r, const char *domain_id, const char *wanted,
                 struct keyset *ks)
{
	char month[16], stem[32];
	time_t now = time(NULL);
	struct tm tm;
	int taken;

	if (wanted[0] != '\0') {
		if (!name_selectors(ks, wanted, ks->n > 1))
			return ctrl_fail(
			        r, MC__STATUS__STATUS_INVALID,
			        "invalid selector '%s': dot-separated labels "
			        "of letters, digits and '-', at most %d "
			        "characters with the algorithm suffix",
			        wanted, MC_DIR_SELECTOR_MAX);
		if ((taken = selectors_taken(r, domain_id, ks)) < 0)
			return -1;
		return taken ? ctrl_fail(r, MC__STATUS__STATUS_EXISTS,
		                         "selector %s is already used in this "
		                         "domain",
		                         ks->selectors[0])
		             : 0;
	}
	gmtime_r(&now, &tm);
	strftime(month, sizeof(month), "s%Y%m", &tm);
	for (int i = 1; i <= CTRL_DKIM_SELECTOR_TRIES; i++) {
		if (i == 1)
			snprintf(stem, sizeof(stem), "%s", month);
		else
			snprintf(stem, sizeof(stem), "%s-%d", month, i);
		name_selectors(ks, stem, true);
		if ((taken = selectors_taken(r, domain_id, ks)) <= 0)
			return taken;
	}
	return ctrl_fail(
	        r, MC__STATUS__STATUS_CONFLICT,
	        "no free selector left for %s: give one with --selector",
	        month);
}

/* Generate, seal and insert ks's keys as active keys of the domain
 * (inside the caller's transaction); their ids go to ids_r. */
static int
insert_keys(struct ctrl_req *r, const char *domain, const char *domain_id,
            const struct keyset *ks, uint64_t ids_r[CTRL_DKIM_ALGS])
{
	for (size_t i = 0; i < ks->n; i++) {
		const char *err = NULL;
		char *pem = NULL, *pub = NULL, *sealed = NULL, alg[4], bits[16];
		unsigned nbits = ks->algs[i] == MC__DKIM_ALG__DKIM_ALG_RSA
		                         ? ks->rsa_bits
		                         : 0;
		PGresult *res = NULL;

		if (mc_dkim_keygen(lib_alg(ks->algs[i]), nbits, &pem, &pub,
		                   &err) < 0)
			return ctrl_fail(r, MC__STATUS__STATUS_INTERNAL,
			                 "key generation failed: %s", err);
		sealed = mc_secretbox_seal(
		        r->ctrl->secrets, pem, strlen(pem),
		        seal_label(r, domain, ks->selectors[i]), &err);
		mc_wipe(pem, strlen(pem));
		free(pem);
		snprintf(alg, sizeof(alg), "%d", (int)ks->algs[i]);
		snprintf(bits, sizeof(bits), "%u", nbits);
		if (sealed != NULL)
			res = ctrl_query(
			        r,
			        "INSERT INTO dkim_keys (domain_id, selector, alg,"
			        " bits, private_sealed, public_b64, active)"
			        " VALUES ($1, $2, $3, $4, $5, $6, true)"
			        " RETURNING id",
			        6, domain_id, ks->selectors[i], alg, bits,
			        sealed, pub);
		free(sealed);
		free(pub);
		if (sealed == NULL)
			return ctrl_fail(r, MC__STATUS__STATUS_INTERNAL,
			                 "cannot seal the private key: %s",
			                 err);
		if (res == NULL)
			return -1;
		ids_r[i] = ctrl_row_u64(res, 0, 0);
		PQclear(res);
		if (ctrl_change(r, CTRL_KIND_DKIM_KEY, ids_r[i],
		                MC__CHANGE__OP__UPSERT) < 0)
			return -1;
	}
	return 0;
}

/* Reply with the keys in ids (without private keys). */
static int
reply_keys(struct ctrl_req *r, const uint64_t *ids, size_t n)
{
	Mc__DkimKeyList *l = mc_pool_alloc(r->pool, sizeof(*l));
	char lit[64];
	int got;

	mc__dkim_key_list__init(l);
	if (n > 1)
		snprintf(lit, sizeof(lit), "{%llu,%llu}",
		         (unsigned long long)ids[0],
		         (unsigned long long)ids[1]);
	else
		snprintf(lit, sizeof(lit), "{%llu}",
		         (unsigned long long)ids[0]);
	if ((got = ctrl_load_dkim_keys(r, CTRL_BY_IDS, lit, false, &l->keys)) <
	    0)
		return -1;
	l->n_keys = (size_t)got;
	r->resp->body_case = MC__RESPONSE__BODY_DKIM_KEYS;
	r->resp->dkim_keys = l;
	return 0;
}

static int
need_secrets(struct ctrl_req *r)
{
	if (r->ctrl->secrets != NULL)
		return 0;
	return ctrl_fail(
	        r, MC__STATUS__STATUS_CONFLICT,
	        "the controller has no secrets_key_file configured: it "
	        "cannot keep DKIM private keys");
}

static int
rsa_bits_check(struct ctrl_req *r, unsigned bits)
{
	if (bits == 0 ||
	    (bits >= MC_DKIM_RSA_KEYGEN_MIN && bits <= MC_DKIM_RSA_BITS_MAX))
		return 0;
	return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
	                 "RSA key size must be %u to %u bits",
	                 MC_DKIM_RSA_KEYGEN_MIN, MC_DKIM_RSA_BITS_MAX);
}

/* Active keys of the domain: a bit per algorithm, the RSA size. */
static int
active_keys(struct ctrl_req *r, const char *domain_id, unsigned *algs_r,
            unsigned *rsa_bits_r)
{
	PGresult *res = ctrl_query(r,
	                           "SELECT alg, bits FROM dkim_keys WHERE"
	                           " domain_id = $1 AND active",
	                           1, domain_id);

	if (res == NULL)
		return -1;
	*algs_r = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		unsigned alg = (unsigned)ctrl_row_u64(res, i, 0);

		*algs_r |= 1u << alg;
		if (alg == MC__DKIM_ALG__DKIM_ALG_RSA && rsa_bits_r != NULL)
			*rsa_bits_r = (unsigned)ctrl_row_u64(res, i, 1);
	}
	PQclear(res);
	return 0;
}

int
ctrl_dkim_create(struct ctrl_req *r)
{
	const Mc__DkimCreateReq *q = r->req->dkim_create;
	char *domain = mc_addr_lower(mc_pool_strdup(r->pool, q->domain));
	char *selector = mc_addr_lower(mc_pool_strdup(r->pool, q->selector));
	struct keyset ks = {.rsa_bits = q->rsa_bits != 0
	                                        ? q->rsa_bits
	                                        : MC_DKIM_RSA_BITS_DEFAULT};
	uint64_t domain_id, ids[CTRL_DKIM_ALGS] = {0};
	const char *domain_id_s;
	unsigned want = 0, active = 0;

	for (size_t i = 0; i < q->n_algs; i++) {
		if (q->algs[i] != MC__DKIM_ALG__DKIM_ALG_RSA &&
		    q->algs[i] != MC__DKIM_ALG__DKIM_ALG_ED25519)
			return ctrl_fail(r, MC__STATUS__STATUS_INVALID,
			                 "unknown DKIM algorithm");
		want |= 1u << q->algs[i];
	}
	if (want == 0)
		want = 1u << MC__DKIM_ALG__DKIM_ALG_RSA |
		       1u << MC__DKIM_ALG__DKIM_ALG_ED25519;
	if (want & 1u << MC__DKIM_ALG__DKIM_ALG_RSA)
		ks.algs[ks.n++] = MC__DKIM_ALG__DKIM_ALG_RSA;
	if (want & 1u << MC__DKIM_ALG__DKIM_ALG_ED25519)
		ks.algs[ks.n++] = MC__DKIM_ALG__DKIM_ALG_ED25519;
	if (rsa_bits_check(r, q->rsa_bits) < 0 || need_secrets(r) < 0 ||
	    ctrl_exec(r, "BEGIN", 0) < 0 ||
	    ctrl_domain_lock(r, domain, &domain_id) <= 0)
		return -1;
	domain_id_s = ctrl_u64(r, domain_id);
	if (active_keys(r, domain_id_s, &active, NULL) < 0)
		return -1;
	if ((active & want) != 0)
		return ctrl_fail(
		        r, MC__STATUS__STATUS_EXISTS,
		        "%s already has an active %s key: use 'mailctl dkim "
		        "rotate %s' to replace it",
		        domain,
		        (active & want & 1u << MC__DKIM_ALG__DKIM_ALG_RSA)
		                ? "RSA"
		                : "Ed25519",
		        domain);
	if (choose_selectors(r, domain_id_s, selector, &ks) < 0 ||
	    insert_keys(r, domain, domain_id_s, &ks, ids) < 0 ||
	    reply_keys(r, ids, ks.n) < 0 || ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	mc_info("dkim keys created domain=%s selectors=%s%s%s", domain,
	        ks.selectors[0], ks.n > 1 ? "," : "",
	        ks.n > 1 ? ks.selectors[1] : "");
	return 0;
}

int
ctrl_dkim_rotate(struct ctrl_req *r)
{
	const Mc__DkimRotateReq *q = r->req->dkim_rotate;
	char *domain = mc_addr_lower(mc_pool_strdup(r->pool, q->domain));
	char *selector = mc_addr_lower(mc_pool_strdup(r->pool, q->selector));
	struct keyset ks = {.rsa_bits = 0};
	uint64_t domain_id, ids[CTRL_DKIM_ALGS] = {0};
	const char *domain_id_s;
	unsigned active = 0;
	PGresult *res;

	if (rsa_bits_check(r, q->rsa_bits) < 0 || need_secrets(r) < 0 ||
	    ctrl_exec(r, "BEGIN", 0) < 0 ||
	    ctrl_domain_lock(r, domain, &domain_id) <= 0)
		return -1;
	domain_id_s = ctrl_u64(r, domain_id);
	if (active_keys(r, domain_id_s, &active, &ks.rsa_bits) < 0)
		return -1;
	if (active == 0)
		return ctrl_fail(
		        r, MC__STATUS__STATUS_NOT_FOUND,
		        "%s has no active DKIM key: use 'mailctl dkim create "
		        "%s'",
		        domain, domain);
	if (q->rsa_bits != 0)
		ks.rsa_bits = q->rsa_bits;
	if (ks.rsa_bits == 0)
		ks.rsa_bits = MC_DKIM_RSA_BITS_DEFAULT;
	if (active & 1u << MC__DKIM_ALG__DKIM_ALG_RSA)
		ks.algs[ks.n++] = MC__DKIM_ALG__DKIM_ALG_RSA;
	if (active & 1u << MC__DKIM_ALG__DKIM_ALG_ED25519)
		ks.algs[ks.n++] = MC__DKIM_ALG__DKIM_ALG_ED25519;
	/* The old keys stay, inactive: their DNS records are still needed
	 * for mail signed before. */
	res = ctrl_query(
	        r,
	        "UPDATE dkim_keys SET active = false WHERE domain_id = $1"
	        " AND active RETURNING id",
	        1, domain_id_s);
	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		if (ctrl_change(r, CTRL_KIND_DKIM_KEY, ctrl_row_u64(res, i, 0),
		                MC__CHANGE__OP__UPSERT) < 0) {
			PQclear(res);
			return -1;
		}
	PQclear(res);
	if (choose_selectors(r, domain_id_s, selector, &ks) < 0 ||
	    insert_keys(r, domain, domain_id_s, &ks, ids) < 0 ||
	    reply_keys(r, ids, ks.n) < 0 || ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	mc_info("dkim keys rotated domain=%s selectors=%s%s%s", domain,
	        ks.selectors[0], ks.n > 1 ? "," : "",
	        ks.n > 1 ? ks.selectors[1] : "");
	return 0;
}

int
ctrl_dkim_list(struct ctrl_req *r)
{
	char *domain = mc_addr_lower(
	        mc_pool_strdup(r->pool, r->req->dkim_list->domain));
	Mc__DkimKeyList *l = mc_pool_alloc(r->pool, sizeof(*l));
	PGresult *res;
	int n;

	mc__dkim_key_list__init(l);
	if (domain[0] != '\0') {
		res = ctrl_query(r, "SELECT 1 FROM domains WHERE name = $1", 1,
		                 domain);
		if (res == NULL)
			return -1;
		n = PQntuples(res);
		PQclear(res);
		if (n == 0)
			return ctrl_fail(r, MC__STATUS__STATUS_NOT_FOUND,
			                 "domain %s does not exist", domain);
	}
	n = domain[0] == '\0'
	            ? ctrl_load_dkim_keys(r, CTRL_ALL, NULL, false, &l->keys)
	            : ctrl_load_dkim_keys(r, CTRL_BY_DOMAIN, domain, false,
	                                  &l->keys);
	if (n < 0)
		return -1;
	l->n_keys = (size_t)n;
	r->resp->body_case = MC__RESPONSE__BODY_DKIM_KEYS;
	r->resp->dkim_keys = l;
	return 0;
}

int
ctrl_dkim_rm(struct ctrl_req *r)
{
	const Mc__DkimRmReq *q = r->req->dkim_rm;
	char *domain = mc_addr_lower(mc_pool_strdup(r->pool, q->domain));
	char *selector = mc_addr_lower(mc_pool_strdup(r->pool, q->selector));
	uint64_t domain_id, id;
	PGresult *res;

	if (ctrl_exec(r, "BEGIN", 0) < 0 ||
	    ctrl_domain_lock(r, domain, &domain_id) <= 0)
		return -1;
	res = ctrl_query(
	        r,
	        "SELECT id, active FROM dkim_keys WHERE domain_id = $1 AND"
	        " selector = $2",
	        2, ctrl_u64(r, domain_id), selector);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctrl_fail(r, MC__STATUS__STATUS_NOT_FOUND,
		                 "%s has no DKIM key with selector %s", domain,
		                 selector);
	}
	id = ctrl_row_u64(res, 0, 0);
	if (PQgetvalue(res, 0, 1)[0] == 't' && !q->force) {
		PQclear(res);
		return ctrl_fail(
		        r, MC__STATUS__STATUS_CONFLICT,
		        "key %s of %s is active (relays sign with it): rotate "
		        "first, or use --force",
		        selector, domain);
	}
	PQclear(res);
	if (ctrl_exec(r, "DELETE FROM dkim_keys WHERE id = $1", 1,
	              ctrl_u64(r, id)) < 0 ||
	    ctrl_change(r, CTRL_KIND_DKIM_KEY, id, MC__CHANGE__OP__DELETE) <
	            0 ||
	    ctrl_exec(r, "COMMIT", 0) < 0)
		return -1;
	return 0;
}
