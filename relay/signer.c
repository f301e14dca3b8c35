/* The DKIM signer cache; see signer.h. Entries are few (one or two keys
 * per sending domain), so a list is searched linearly. */
#include "signer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dkim.h"
#include "log.h"
#include "mem.h"

struct sig_entry {
	struct sig_entry *next;
	uint64_t id;
	unsigned char digest[32];      /* SHA-256 of the private PEM */
	struct mc_dkim_signer *signer; /* NULL: the key did not parse */
	char desc[160];                /* d= s= a= for logs */
	unsigned refs;                 /* sets holding it */
	bool stale;  /* not asked for since the last directory change */
	bool orphan; /* out of the cache; freed with its last set */
};

struct relay_signer {
	struct sig_entry *entries;
};

struct relay_sign_set {
	size_t count;
	struct sig_entry *entries[MC_DKIM_MAX_KEYS];
	const struct mc_dkim_signer *signers[MC_DKIM_MAX_KEYS];
};

static void
entry_free(struct sig_entry *e)
{
	mc_dkim_signer_free(&e->signer);
	free(e);
}

struct relay_signer *
relay_signer_new(void)
{
	return mc_malloc(sizeof(struct relay_signer));
}

/* Take e out of the list: freed now, or by its last set. */
static void
entry_drop(struct sig_entry *e)
{
	if (e->refs > 0)
		e->orphan = true;
	else
		entry_free(e);
}

void
relay_signer_free(struct relay_signer **sp)
{
	struct relay_signer *s = *sp;
	struct sig_entry *e, *next;

	if (s == NULL)
		return;
	for (e = s->entries; e != NULL; e = next) {
		next = e->next;
		entry_drop(e);
	}
	free(s);
	*sp = NULL;
}

void
relay_signer_changed(struct relay_signer *s)
{
	struct sig_entry **pp = &s->entries, *e;

	/* Unused through a whole config version: probably gone. A key
	 * still published is parsed again on its next use. */
	while ((e = *pp) != NULL) {
		if (e->stale && e->refs == 0) {
			*pp = e->next;
			entry_drop(e);
			continue;
		}
		e->stale = true;
		pp = &e->next;
	}
}

static enum mc_dkim_alg
alg_of(enum mc_dir_dkim_alg alg)
{
	return alg == MC_DIR_DKIM_ED25519 ? MC_DKIM_ED25519_SHA256
	                                  : MC_DKIM_RSA_SHA256;
}

static struct sig_entry *
entry_for(struct relay_signer *s, const struct mc_dir_dkim_key *key)
{
	unsigned char digest[32];
	unsigned dlen = 0;
	struct sig_entry *e;
	struct mc_dkim_key dk = {
	        .domain = key->domain,
	        .selector = key->selector,
	        .alg = alg_of(key->alg),
	        .private_pem = key->private_pem,
	};
	const char *error;

	if (EVP_Digest(key->private_pem, strlen(key->private_pem), digest,
	               &dlen, EVP_sha256(), NULL) != 1 ||
	    dlen != sizeof(digest))
		return NULL;
	for (e = s->entries; e != NULL; e = e->next) {
		if (e->id == key->id && memcmp(e->digest, digest, 32) == 0) {
			e->stale = false;
			return e;
		}
	}
	e = mc_malloc(sizeof(*e));
	e->id = key->id;
	memcpy(e->digest, digest, sizeof(digest));
	snprintf(e->desc, sizeof(e->desc), "d=%.64s s=%.63s a=%s", key->domain,
	         key->selector, mc_dkim_alg_name(dk.alg));
	e->signer = mc_dkim_signer_new(&dk, &error);
	if (e->signer == NULL)
		mc_error("dkim key unusable key_id=%llu %s error=\"%s\"",
		         (unsigned long long)key->id, e->desc, error);
	else
		mc_debug("dkim key loaded key_id=%llu %s",
		         (unsigned long long)key->id, e->desc);
	e->next = s->entries;
	s->entries = e;
	return e;
}

struct relay_sign_set *
relay_signer_get(struct relay_signer *s, const struct mc_directory *dir,
                 const char *domain)
{
	struct relay_sign_set *set = mc_malloc(sizeof(*set));
	const struct mc_dir_dkim_key *keys[MC_DKIM_MAX_KEYS];
	size_t n = 0;
	struct sig_entry *e;

	if (dir != NULL && domain != NULL && domain[0] != '\0')
		n = mc_directory_dkim_keys(dir, domain, keys, MC_DKIM_MAX_KEYS);
	for (size_t i = 0; i < n; i++) {
		if (!keys[i]->active || keys[i]->private_pem[0] == '\0')
			continue;
		if ((e = entry_for(s, keys[i])) == NULL || e->signer == NULL)
			continue;
		e->refs++;
		set->entries[set->count] = e;
		set->signers[set->count++] = e->signer;
	}
	return set;
}

size_t
relay_sign_set_count(const struct relay_sign_set *set)
{
	return set->count;
}

const char *
relay_sign_set_describe(const struct relay_sign_set *set, char *buf,
                        size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < set->count && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s",
		                      i > 0 ? ", " : "", set->entries[i]->desc);
	return buf;
}

int
relay_sign_set_sign(const struct relay_sign_set *set, const char *msg,
                    size_t len, int64_t now, struct mc_strbuf *out,
                    const char **error_r)
{
	return mc_dkim_sign_with(msg, len, set->signers, set->count, NULL, now,
	                         out, error_r);
}

void
relay_sign_set_free(struct relay_sign_set **setp)
{
	struct relay_sign_set *set = *setp;

	if (set == NULL)
		return;
	for (size_t i = 0; i < set->count; i++) {
		struct sig_entry *e = set->entries[i];

		if (--e->refs == 0 && e->orphan)
			entry_free(e);
	}
	free(set);
	*setp = NULL;
}
