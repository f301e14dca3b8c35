/* Client logins: account lookup, password check off the loop, failure
 * penalties per peer address; see auth.h. */
#include "auth.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <argon2.h>
#include <openssl/crypto.h>

#include "hash.h"
#include "mem.h"

/* A peer's failures are forgotten after this long without a new one. */
#define AUTH_PENALTY_WINDOW_S (15 * 60)
#define AUTH_PENALTY_STEP_MS 1000u
#define AUTH_PENALTY_MAX_MS 10000u
/* Peers tracked at once; beyond, the table is cleared of stale entries
 * (and if none are stale, of everything: bounded memory wins). */
#define AUTH_PEERS_MAX 10000u

struct peer {
	char ip[48];
	unsigned failures;
	time_t last;
};

struct node_auth {
	uv_loop_t *loop;
	struct mc_hash *peers; /* ip -> struct peer */
	unsigned requests;
	bool freeing;
};

struct node_auth_request {
	struct node_auth *auth;
	uv_work_t work;
	uv_timer_t delay;
	node_auth_cb *cb;
	void *arg;
	char *hash, *password, *address;
	size_t password_len;
	uint64_t account_id;
	uint32_t shard;
	char ip[48];
	bool ok, cancelled;
};

struct node_auth *
node_auth_new(uv_loop_t *loop)
{
	struct node_auth *a = mc_malloc(sizeof(*a));

	a->loop = loop;
	a->peers = mc_hash_new(MC_HASH_STR);
	return a;
}

static void
peers_clear(struct node_auth *a, bool all)
{
	time_t now = time(NULL);
	size_t pos = 0;
	void *v;
	struct peer **doomed = mc_calloc(mc_hash_count(a->peers) + 1, sizeof(*doomed));
	size_t n = 0;

	while (mc_hash_next(a->peers, &pos, &v)) {
		struct peer *p = v;

		if (all || now - p->last > AUTH_PENALTY_WINDOW_S)
			doomed[n++] = p;
	}
	for (size_t i = 0; i < n; i++) {
		mc_hash_remove(a->peers, doomed[i]->ip);
		free(doomed[i]);
	}
	free(doomed);
}

static void
auth_destroy(struct node_auth *a)
{
	peers_clear(a, true);
	mc_hash_free(&a->peers);
	free(a);
}

void
node_auth_free(struct node_auth **ap)
{
	struct node_auth *a = *ap;

	*ap = NULL;
	if (a == NULL)
		return;
	a->freeing = true;
	if (a->requests == 0)
		auth_destroy(a);
}

static uint64_t
penalty(struct node_auth *a, const char *ip)
{
	struct peer *p = mc_hash_get(a->peers, ip);
	time_t now = time(NULL);
	uint64_t ms;

	if (p != NULL && now - p->last > AUTH_PENALTY_WINDOW_S)
		p->failures = 0;
	if (p == NULL) {
		if (mc_hash_count(a->peers) >= AUTH_PEERS_MAX) {
			peers_clear(a, false);
			if (mc_hash_count(a->peers) >= AUTH_PEERS_MAX)
				peers_clear(a, true);
		}
		p = mc_malloc(sizeof(*p));
		snprintf(p->ip, sizeof(p->ip), "%s", ip);
		mc_hash_put(a->peers, p->ip, p);
	}
	p->failures++;
	p->last = now;
	ms = (uint64_t)p->failures * AUTH_PENALTY_STEP_MS;
	return ms > AUTH_PENALTY_MAX_MS ? AUTH_PENALTY_MAX_MS : ms;
}

bool
node_auth_password_ok(const char *hash, const char *password, size_t len)
{
	struct crypt_data *cd;
	const char *out;
	bool ok;

	if (strncmp(hash, "$argon2id$", 10) == 0)
		return argon2id_verify(hash, password, len) == ARGON2_OK;
	if (strncmp(hash, "$argon2i$", 9) == 0)
		return argon2i_verify(hash, password, len) == ARGON2_OK;
	if (strncmp(hash, "$6$", 3) != 0 && strncmp(hash, "$2b$", 4) != 0 &&
	    strncmp(hash, "$2y$", 4) != 0)
		return false;
	if (memchr(password, '\0', len) != NULL)
		return false;
	cd = mc_malloc(sizeof(*cd));
	out = crypt_r(password, hash, cd);
	ok = out != NULL && out[0] != '*' && strlen(out) == strlen(hash) &&
	     CRYPTO_memcmp(out, hash, strlen(hash)) == 0;
	mc_wipe(cd, sizeof(*cd));
	free(cd);
	return ok;
}

static void
request_free(struct node_auth_request *r)
{
	struct node_auth *a = r->auth;

	mc_wipe(r->password, r->password_len);
	free(r->password);
	free(r->hash);
	free(r->address);
	free(r);
	if (--a->requests == 0 && a->freeing)
		auth_destroy(a);
}

static void
check_work(uv_work_t *w)
{
	struct node_auth_request *r = w->data;

	r->ok = r->hash[0] != '\0' &&
	        node_auth_password_ok(r->hash, r->password, r->password_len);
}

static void
answer(struct node_auth_request *r)
{
	struct node_auth_result res = {
	        .ok = r->ok,
	        .account_id = r->ok ? r->account_id : 0,
	        .shard = r->ok ? r->shard : 0,
	        .address = r->ok ? r->address : NULL,
	};

	if (!r->cancelled)
		r->cb(r->arg, &res);
}

static void
delay_closed(uv_handle_t *h)
{
	request_free(h->data);
}

static void
delay_done(uv_timer_t *t)
{
	struct node_auth_request *r = t->data;

	answer(r);
	uv_close((uv_handle_t *)&r->delay, delay_closed);
}

static void
check_done(uv_work_t *w, int status)
{
	struct node_auth_request *r = w->data;

	(void)status;
	if (r->ok || r->cancelled || r->auth->freeing) {
		answer(r);
		request_free(r);
		return;
	}
	uv_timer_init(r->auth->loop, &r->delay);
	r->delay.data = r;
	uv_timer_start(&r->delay, delay_done, penalty(r->auth, r->ip), 0);
}

struct node_auth_request *
node_auth_reject(struct node_auth *a, const char *peer_ip, node_auth_cb *cb,
                 void *arg)
{
	struct node_auth_request *r = mc_malloc(sizeof(*r));

	r->auth = a;
	r->cb = cb;
	r->arg = arg;
	r->password = mc_strdup("");
	r->hash = mc_strdup("");
	r->address = mc_strdup("");
	snprintf(r->ip, sizeof(r->ip), "%s", peer_ip != NULL ? peer_ip : "");
	a->requests++;
	uv_timer_init(a->loop, &r->delay);
	r->delay.data = r;
	uv_timer_start(&r->delay, delay_done, penalty(a, r->ip), 0);
	return r;
}

struct node_auth_request *
node_auth_check(struct node_auth *a, const struct mc_directory *dir,
                const char *user, const char *password, size_t password_len,
                const char *peer_ip, node_auth_cb *cb, void *arg)
{
	struct node_auth_request *r = mc_malloc(sizeof(*r));
	const struct mc_dir_account *acc;
	bool ambiguous;

	acc = mc_directory_login(dir, user, &ambiguous);
	r->auth = a;
	r->cb = cb;
	r->arg = arg;
	r->password = mc_malloc(password_len + 1);
	memcpy(r->password, password, password_len);
	r->password_len = password_len;
	/* An unknown user gets the empty hash: it fails after the same
	 * worker round trip and delay as a wrong password. */
	r->hash = mc_strdup(acc != NULL ? acc->password_hash : "");
	r->address = mc_strdup(acc != NULL ? acc->address : "");
	r->account_id = acc != NULL ? acc->id : 0;
	r->shard = acc != NULL ? acc->shard : 0;
	snprintf(r->ip, sizeof(r->ip), "%s", peer_ip != NULL ? peer_ip : "");
	r->work.data = r;
	a->requests++;
	uv_queue_work(a->loop, &r->work, check_work, check_done);
	return r;
}

void
node_auth_cancel(struct node_auth_request *r)
{
	r->cancelled = true;
}
