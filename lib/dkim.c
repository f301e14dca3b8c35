/* DKIM signing: canonicalisation, the DKIM-Signature field, its folding,
 * and the OpenSSL side (keys, RSA PKCS#1 v1.5 and Ed25519); see dkim.h.
 *
 * How one signature is made (RFC 6376 3.7, 5): the body is canonicalised
 * and hashed once per message (streamed, never copied); per key, the
 * signature field is written out with an empty b=, the signed fields and
 * that field are canonicalised into one SHA-256, and the hash is signed:
 * RSA as PKCS#1 v1.5 DigestInfo(SHA-256, hash), Ed25519 as PureEdDSA over
 * the 32-octet hash itself (RFC 8463 3: the signing algorithm signs "the
 * hash", not the header data). Then the base64 signature goes after b=.
 * Since the text hashed is the very text emitted (minus b='s value),
 * wherever the folds fall the verifier computes the same thing. */
#include "dkim.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "error.h"
#include "imf.h"
#include "mem.h"
#include "pool.h"

#define SHA256_LEN 32
/* The largest signature: 4096-bit RSA. */
#define MAX_SIG_LEN (MC_DKIM_RSA_BITS_MAX / 8)
/* RFC 5322 2.1.1: lines SHOULD stay within 78 octets. */
#define FOLD_WIDTH 78
/* A p= value: 4096-bit RSA SubjectPublicKeyInfo is 736 base64 octets. */
#define MAX_PUBLIC_B64 2048
/* i= as we accept it. */
#define MAX_IDENTITY 256

const char *
mc_dkim_alg_name(enum mc_dkim_alg alg)
{
	switch (alg) {
	case MC_DKIM_RSA_SHA256:
		return "rsa-sha256";
	case MC_DKIM_ED25519_SHA256:
		return "ed25519-sha256";
	}
	return "?";
}

const char *
mc_dkim_key_type(enum mc_dkim_alg alg)
{
	switch (alg) {
	case MC_DKIM_RSA_SHA256:
		return "rsa";
	case MC_DKIM_ED25519_SHA256:
		return "ed25519";
	}
	return "?";
}

bool
mc_dkim_alg_from_name(const char *name, enum mc_dkim_alg *alg_r)
{
	if (name == NULL)
		return false;
	if (strcasecmp(name, "rsa") == 0 ||
	    strcasecmp(name, "rsa-sha256") == 0) {
		*alg_r = MC_DKIM_RSA_SHA256;
		return true;
	}
	if (strcasecmp(name, "ed25519") == 0 ||
	    strcasecmp(name, "ed25519-sha256") == 0) {
		*alg_r = MC_DKIM_ED25519_SHA256;
		return true;
	}
	return false;
}

/* ---- OpenSSL ---------------------------------------------------------- */

/* The oldest error in OpenSSL's queue (the most specific), prefixed with
 * what we were doing; clears the queue so nothing leaks into the next
 * OpenSSL user on this thread (a TLS session, say). */
static const char *
ssl_error(const char *what)
{
	unsigned long e = ERR_get_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	if (e == 0)
		return mc_errorf("%s: unknown OpenSSL error", what);
	if (reason == NULL)
		return mc_errorf("%s: OpenSSL error %lx", what, e);
	return mc_errorf("%s: %s", what, reason);
}

/* Never ask for a passphrase: OpenSSL's default would prompt on the
 * terminal, and a daemon has none. An encrypted key simply fails. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static char *
base64(const unsigned char *p, size_t n)
{
	char *out = mc_malloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

/* The private key in pem, checked to be a usable key of type alg. */
static EVP_PKEY *
load_key(enum mc_dkim_alg alg, const char *pem, const char **error_r)
{
	size_t n = pem != NULL ? strnlen(pem, MC_DKIM_MAX_PEM + 1) : 0;
	EVP_PKEY *pkey;
	BIO *bio;
	int bits;

	if (n == 0) {
		*error_r = "no private key";
		return NULL;
	}
	if (n > MC_DKIM_MAX_PEM) {
		*error_r = "private key PEM too long";
		return NULL;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)n)) == NULL) {
		*error_r = ssl_error("reading the private key");
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (pkey == NULL) {
		*error_r = ssl_error("reading the private key");
		return NULL;
	}
	switch (alg) {
	case MC_DKIM_RSA_SHA256:
		if (!EVP_PKEY_is_a(pkey, "RSA")) {
			*error_r = "the private key is not an RSA key";
			goto fail;
		}
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < (int)MC_DKIM_RSA_SIGN_MIN ||
		    bits > (int)MC_DKIM_RSA_BITS_MAX ||
		    EVP_PKEY_get_size(pkey) > (int)MAX_SIG_LEN) {
			*error_r = mc_errorf("RSA key of %d bits (%u to %u "
			                     "allowed)",
			                     bits, MC_DKIM_RSA_SIGN_MIN,
			                     MC_DKIM_RSA_BITS_MAX);
			goto fail;
		}
		return pkey;
	case MC_DKIM_ED25519_SHA256:
		if (!EVP_PKEY_is_a(pkey, "ED25519")) {
			*error_r = "the private key is not an Ed25519 key";
			goto fail;
		}
		return pkey;
	}
	*error_r = "unknown DKIM algorithm";
fail:
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return NULL;
}

/* PKCS#8 PEM of pkey's private half, through a BIO that OpenSSL wipes. */
static char *
private_pem(EVP_PKEY *pkey, const char **error_r)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	char *data, *pem = NULL;
	long n;

	if (bio == NULL ||
	    !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) ||
	    (n = BIO_get_mem_data(bio, &data)) <= 0) {
		*error_r = ssl_error("writing the private key");
		BIO_free(bio);
		return NULL;
	}
	pem = mc_strndup(data, (size_t)n);
	BIO_free(bio);
	return pem;
}

/* The p= value: RSA as base64 SubjectPublicKeyInfo DER (RFC 6376 3.6.1),
 * Ed25519 as the base64 raw key (RFC 8463 4.2). */
static char *
public_b64(EVP_PKEY *pkey, enum mc_dkim_alg alg, const char **error_r)
{
	unsigned char raw[32], *der, *p;
	size_t raw_len = sizeof(raw);
	char *b64;
	int n;

	if (alg == MC_DKIM_ED25519_SHA256) {
		if (!EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len) ||
		    raw_len != sizeof(raw)) {
			*error_r = ssl_error("reading the Ed25519 public key");
			return NULL;
		}
		return base64(raw, raw_len);
	}
	if ((n = i2d_PUBKEY(pkey, NULL)) <= 0) {
		*error_r = ssl_error("encoding the RSA public key");
		return NULL;
	}
	p = der = mc_malloc((size_t)n);
	if (i2d_PUBKEY(pkey, &p) != n) {
		free(der);
		*error_r = ssl_error("encoding the RSA public key");
		return NULL;
	}
	b64 = base64(der, (size_t)n);
	free(der);
	return b64;
}

/* ---- keys ------------------------------------------------------------- */

int
mc_dkim_keygen(enum mc_dkim_alg alg, unsigned rsa_bits, char **private_pem_r,
               char **public_b64_r, const char **error_r)
{
	EVP_PKEY *pkey = NULL;
	char *pem = NULL, *pub = NULL;
	unsigned bits = rsa_bits != 0 ? rsa_bits : MC_DKIM_RSA_BITS_DEFAULT;

	*private_pem_r = *public_b64_r = NULL;
	switch (alg) {
	case MC_DKIM_RSA_SHA256:
		if (bits < MC_DKIM_RSA_KEYGEN_MIN ||
		    bits > MC_DKIM_RSA_BITS_MAX) {
			*error_r = mc_errorf("RSA key size %u: use %u to %u "
			                     "bits",
			                     bits, MC_DKIM_RSA_KEYGEN_MIN,
			                     MC_DKIM_RSA_BITS_MAX);
			return -1;
		}
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
		break;
	case MC_DKIM_ED25519_SHA256:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	default:
		*error_r = "unknown DKIM algorithm";
		return -1;
	}
	if (pkey == NULL) {
		*error_r = ssl_error("generating the key");
		return -1;
	}
	if ((pem = private_pem(pkey, error_r)) == NULL ||
	    (pub = public_b64(pkey, alg, error_r)) == NULL) {
		if (pem != NULL)
			mc_wipe(pem, strlen(pem));
		free(pem);
		EVP_PKEY_free(pkey);
		return -1;
	}
	EVP_PKEY_free(pkey);
	*private_pem_r = pem;
	*public_b64_r = pub;
	return 0;
}

int
mc_dkim_public_key(enum mc_dkim_alg alg, const char *private_pem,
                   char **public_b64_r, const char **error_r)
{
	EVP_PKEY *pkey = load_key(alg, private_pem, error_r);

	*public_b64_r = NULL;
	if (pkey == NULL)
		return -1;
	*public_b64_r = public_b64(pkey, alg, error_r);
	EVP_PKEY_free(pkey);
	return *public_b64_r != NULL ? 0 : -1;
}

char *
mc_dkim_dns_record(enum mc_dkim_alg alg, const char *public_b64)
{
	size_t n = public_b64 != NULL ? strnlen(public_b64, MAX_PUBLIC_B64 + 1)
	                              : 0;

	if (n == 0 || n > MAX_PUBLIC_B64 ||
	    strspn(public_b64,
	           "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	           "abcdefghijklmnopqrstuvwxyz0123456789+/=") != n ||
	    (alg != MC_DKIM_RSA_SHA256 && alg != MC_DKIM_ED25519_SHA256))
		return NULL;
	return mc_asprintf("v=DKIM1; k=%s; p=%s", mc_dkim_key_type(alg),
	                   public_b64);
}

/* ---- canonicalisation ------------------------------------------------- */

static bool
is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

bool
mc_dkim_relaxed_header(struct mc_strbuf *out, const void *field, size_t len)
{
	const unsigned char *p = field;
	const unsigned char *colon = len > 0 ? memchr(p, ':', len) : NULL;
	size_t name_len, i;
	bool started = false, blank = false;

	if (colon == NULL)
		return false;
	name_len = (size_t)(colon - p);
	while (name_len > 0 && is_blank(p[name_len - 1]))
		name_len--;
	mc_strbuf_reserve(out, len + 2);
	for (i = 0; i < name_len; i++) {
		unsigned char c = p[i];

		mc_strbuf_addc(out, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
	}
	mc_strbuf_addc(out, ':');
	for (i = (size_t)(colon - p) + 1; i < len; i++) {
		unsigned char c = p[i];

		/* Line ends go: inside a field each is a fold (the blank
		 * after it stays), and the last one is the terminator. */
		if (c == '\n' ||
		    (c == '\r' && (i + 1 == len || p[i + 1] == '\n')))
			continue;
		if (is_blank(c)) {
			blank = started;
			continue;
		}
		if (blank)
			mc_strbuf_addc(out, ' ');
		blank = false;
		started = true;
		mc_strbuf_addc(out, (char)c);
	}
	mc_strbuf_add(out, "\r\n", 2);
	return true;
}

/* The relaxed body canonicaliser as a stream: octets in, canonical octets
 * out to a sink in chunks of the buffer's size. Empty lines are only
 * counted until a line with content shows they were not at the end. */
struct body_canon {
	void (*sink)(void *ctx, const void *data, size_t len);
	void *ctx;
	size_t empty; /* empty lines held back */
	bool cr;      /* a CR that may start a CRLF */
	bool blank;   /* blanks since the last content octet */
	bool content; /* the current line has content */
	size_t n;
	unsigned char buf[4096];
};

static void
bc_byte(struct body_canon *bc, unsigned char c)
{
	if (bc->n == sizeof(bc->buf)) {
		bc->sink(bc->ctx, bc->buf, bc->n);
		bc->n = 0;
	}
	bc->buf[bc->n++] = c;
}

static void
bc_content(struct body_canon *bc, unsigned char c)
{
	if (!bc->content) {
		for (; bc->empty > 0; bc->empty--) {
			bc_byte(bc, '\r');
			bc_byte(bc, '\n');
		}
		bc->content = true;
	}
	if (bc->blank)
		bc_byte(bc, ' ');
	bc->blank = false;
	bc_byte(bc, c);
}

static void
bc_line_end(struct body_canon *bc)
{
	if (bc->content) {
		bc_byte(bc, '\r');
		bc_byte(bc, '\n');
	} else {
		bc->empty++;
	}
	bc->content = bc->blank = false;
}

static void
bc_update(struct body_canon *bc, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (bc->cr) {
			bc->cr = false;
			if (c == '\n') {
				bc_line_end(bc);
				continue;
			}
			bc_content(bc, '\r');
		}
		if (c == '\r')
			bc->cr = true;
		else if (c == '\n')
			bc_line_end(bc);
		else if (is_blank(c))
			bc->blank = true;
		else
			bc_content(bc, c);
	}
}

static void
bc_final(struct body_canon *bc)
{
	/* The sender ends a last partial line with CRLF; a CR already there
	 * gets only the LF (lib/smtp_client's stuffer). */
	if (bc->cr || bc->content)
		bc_line_end(bc);
	if (bc->n > 0)
		bc->sink(bc->ctx, bc->buf, bc->n);
	bc->n = 0;
}

static void
sink_strbuf(void *ctx, const void *data, size_t len)
{
	mc_strbuf_add(ctx, data, len);
}

static void
sink_digest(void *ctx, const void *data, size_t len)
{
	/* Cannot fail for SHA-256 on an initialised context. */
	(void)EVP_DigestUpdate(ctx, data, len);
}

void
mc_dkim_relaxed_body(struct mc_strbuf *out, const void *body, size_t len)
{
	struct body_canon bc = {.sink = sink_strbuf, .ctx = out};

	bc_update(&bc, body, len);
	bc_final(&bc);
}

void
mc_dkim_body_hash(const void *body, size_t len,
                  char bh_r[MC_DKIM_BODY_HASH_LEN + 1])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct body_canon bc = {.sink = sink_digest, .ctx = md};
	unsigned char hash[SHA256_LEN];

	if (md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		abort(); /* out of memory, or no SHA-256: nothing works */
	bc_update(&bc, body, len);
	bc_final(&bc);
	if (!EVP_DigestFinal_ex(md, hash, NULL))
		abort();
	EVP_EncodeBlock((unsigned char *)bh_r, hash, sizeof(hash));
	EVP_MD_CTX_free(md);
}

/* ---- what is signed --------------------------------------------------- */

/* Fields signed by default (RFC 6376 5.4.1's list, plus what identifies,
 * threads and renders a message), as ":name:" for a lookup by strstr.
 * List-* are signed too: RFC 8058 needs List-Unsubscribe and
 * List-Unsubscribe-Post signed for one-click unsubscription. */
static const char signed_fields[] =
        ":from:sender:reply-to:to:cc:subject:date:message-id:in-reply-to:"
        "references:mime-version:content-type:content-transfer-encoding:"
        "content-id:content-description:content-disposition:"
        "content-language:resent-date:resent-from:resent-sender:resent-to:"
        "resent-cc:resent-message-id:";

static bool
ascii_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* Whether name is signed by default; if so, key is ":name:" in lower
 * case. Only names that cannot disturb the tag list (no ';', '=' or
 * anything odd) and stay short. */
static bool
default_signed(const char *name, char key[MC_DKIM_MAX_NAME + 3])
{
	size_t n = strlen(name);

	if (n == 0 || n > MC_DKIM_MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!ascii_alnum(c) && c != '-')
			return false;
		key[i + 1] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	key[0] = key[n + 1] = ':';
	key[n + 2] = '\0';
	return strstr(signed_fields, key) != NULL ||
	       (n > 5 && strncmp(key + 1, "list-", 5) == 0);
}

/* h= by default: the signed fields in message order, then one more
 * "from". */
static void
default_list(struct mc_strbuf *h, const struct mc_imf_header *hdr)
{
	char key[MC_DKIM_MAX_NAME + 3];

	for (size_t i = 0; i < hdr->count; i++) {
		if (default_signed(hdr->fields[i].name, key))
			mc_strbuf_adds(h, key + 1); /* "name:" */
	}
	mc_strbuf_adds(h, "from");
}

/* The next name of an h= list at *pp, blanks around it trimmed. */
static bool
next_name(const char **pp, const char **name_r, size_t *len_r)
{
	const char *p = *pp, *e;

	if (*p == '\0')
		return false;
	e = strchr(p, ':');
	if (e == NULL)
		e = p + strlen(p);
	*pp = *e == ':' ? e + 1 : e;
	while (p < e && is_blank((unsigned char)*p))
		p++;
	while (e > p && is_blank((unsigned char)e[-1]))
		e--;
	*name_r = p;
	*len_r = (size_t)(e - p);
	return true;
}

/* An explicit h= list, checked, into h with each run of blanks as one
 * SP and none at the ends. */
static int
explicit_list(struct mc_strbuf *h, const char *list, const char **error_r)
{
	const char *p = list, *name;
	size_t n, count = 0;
	bool from = false;

	if (strnlen(list, MC_DKIM_MAX_HEADER_LIST + 1) >
	    MC_DKIM_MAX_HEADER_LIST) {
		*error_r = "header list too long";
		return -1;
	}
	while (next_name(&p, &name, &n)) {
		if (n == 0 || n > MC_DKIM_MAX_NAME) {
			*error_r = "header list: empty or overlong name";
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)name[i];

			if (c <= ' ' || c >= 0x7f || c == ';') {
				*error_r = "header list: invalid name";
				return -1;
			}
		}
		if (n == 4 && strncasecmp(name, "from", 4) == 0)
			from = true;
		if (++count > 2 * MC_IMF_MAX_FIELDS_DEFAULT) {
			*error_r = "header list: too many names";
			return -1;
		}
	}
	if (!from) {
		*error_r = "header list: From must be signed";
		return -1;
	}
	/* Keep the blanks as written (they are part of what is signed),
	 * only collapsed: the list may be folded at any of them. */
	for (p = list; is_blank((unsigned char)*p); p++)
		;
	for (bool blank = false; *p != '\0'; p++) {
		if (is_blank((unsigned char)*p)) {
			blank = true;
			continue;
		}
		if (blank)
			mc_strbuf_addc(h, ' ');
		blank = false;
		mc_strbuf_addc(h, *p);
	}
	return 0;
}

/* A DNS name as d= and s= need it. */
static bool
dns_name_ok(const char *s)
{
	size_t n = 0, label = 0;

	if (s == NULL)
		return false;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if ((!ascii_alnum(c) && c != '-' && c != '_') || ++label > 63)
			return false;
	}
	return label > 0 && n <= 253;
}

/* i=: printable, no ';', and its domain is d= or below it (RFC 6376
 * 3.5). */
static bool
identity_ok(const char *id, const char *domain)
{
	const char *at = strrchr(id, '@'), *d;
	size_t n = strnlen(id, MAX_IDENTITY + 1), dl, kl;

	if (at == NULL || n > MAX_IDENTITY)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];

		if (c <= ' ' || c >= 0x7f || c == ';')
			return false;
	}
	d = at + 1;
	dl = strlen(d);
	kl = strlen(domain);
	if (!dns_name_ok(d))
		return false;
	if (strcasecmp(d, domain) == 0)
		return true;
	return dl > kl && d[dl - kl - 1] == '.' &&
	       strcasecmp(d + dl - kl, domain) == 0;
}

/* ---- the signature field ---------------------------------------------- */

/* Writing the field with folds: col is the current line's length. */
struct fold {
	struct mc_strbuf *b;
	size_t col;
};

/* Append s (no line ends) and break the line before a blank or after a
 * colon where it would pass FOLD_WIDTH. A break before a blank is pure
 * folding; one after a colon (only in h=) adds FWS the grammar allows. A
 * piece without a break point longer than a line stays whole. */
static void
fold_add(struct fold *f, const char *s)
{
	size_t n = strlen(s), i = 0, j;

	while (i < n) {
		for (j = i + 1; j < n && s[j] != ' ' && s[j - 1] != ':'; j++)
			;
		if (f->col + (j - i) > FOLD_WIDTH && f->col > 1) {
			mc_strbuf_adds(f->b, s[i] == ' ' ? "\r\n" : "\r\n ");
			f->col = s[i] == ' ' ? 0 : 1;
		}
		mc_strbuf_add(f->b, s + i, j - i);
		f->col += j - i;
		i = j;
	}
}

/* End the line here (the blank that follows is the fold's). */
static void
fold_break(struct fold *f)
{
	mc_strbuf_add(f->b, "\r\n", 2);
	f->col = 0;
}

/* Append base64 text filling lines (FWS may go anywhere in b=). */
static void
fold_fill(struct fold *f, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		size_t take;

		if (f->col >= FOLD_WIDTH) {
			mc_strbuf_adds(f->b, "\r\n ");
			f->col = 1;
		}
		take = FOLD_WIDTH - f->col < n ? FOLD_WIDTH - f->col : n;
		mc_strbuf_add(f->b, s, take);
		f->col += take;
		s += take;
		n -= take;
	}
}

/* The header hash (RFC 6376 3.7): the fields named in h, each name taking
 * the last instance not taken yet and a missing one adding nothing
 * (5.4.2), then the signature field itself (sig[0, sig_len), b= empty)
 * without its CRLF. */
static int
header_hash(const char *msg, const struct mc_imf_header *hdr, const char *h,
            const char *sig, size_t sig_len, unsigned char hash[SHA256_LEN],
            const char **error_r)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool *used = mc_calloc(hdr->count + 1, sizeof(*used));
	struct mc_strbuf c = {0};
	const char *name;
	size_t n;
	int ret = -1;

	if (md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		*error_r = ssl_error("SHA-256");
		goto fail;
	}
	while (next_name(&h, &name, &n)) {
		size_t j = hdr->count;

		while (j > 0 &&
		       (used[j - 1] || strlen(hdr->fields[j - 1].name) != n ||
		        strncasecmp(hdr->fields[j - 1].name, name, n) != 0))
			j--;
		if (j-- == 0)
			continue;
		used[j] = true;
		mc_strbuf_reset(&c);
		mc_dkim_relaxed_header(&c, msg + hdr->fields[j].offset,
		                       hdr->fields[j].size);
		(void)EVP_DigestUpdate(md, c.data, c.len);
	}
	mc_strbuf_reset(&c);
	mc_dkim_relaxed_header(&c, sig, sig_len);
	(void)EVP_DigestUpdate(md, c.data, c.len - 2);
	if (!EVP_DigestFinal_ex(md, hash, NULL)) {
		*error_r = ssl_error("SHA-256");
		goto fail;
	}
	ret = 0;
fail:
	mc_strbuf_fini(&c);
	free(used);
	EVP_MD_CTX_free(md);
	return ret;
}

/* Sign the header hash: RSA as PKCS#1 v1.5 over DigestInfo(SHA-256, hash)
 * (what RSA-SHA256 of the data is, hashing done already); Ed25519 as
 * PureEdDSA over the 32 hash octets (RFC 8463 3). */
static int
sign_hash(EVP_PKEY *pkey, enum mc_dkim_alg alg,
          const unsigned char hash[SHA256_LEN], unsigned char *sig,
          size_t *sig_len, const char **error_r)
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *md = NULL;
	int ok;

	if (alg == MC_DKIM_RSA_SHA256) {
		pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
		ok = pctx != NULL && EVP_PKEY_sign_init(pctx) > 0 &&
		     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) >
		             0 &&
		     EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) > 0 &&
		     EVP_PKEY_sign(pctx, sig, sig_len, hash, SHA256_LEN) > 0;
		EVP_PKEY_CTX_free(pctx);
	} else {
		md = EVP_MD_CTX_new();
		ok = md != NULL &&
		     EVP_DigestSignInit(md, NULL, NULL, NULL, pkey) > 0 &&
		     EVP_DigestSign(md, sig, sig_len, hash, SHA256_LEN) > 0;
		EVP_MD_CTX_free(md);
	}
	if (!ok) {
		*error_r = ssl_error("signing");
		return -1;
	}
	return 0;
}

/* ---- signers and signing --------------------------------------------- */

struct mc_dkim_signer {
	char *domain;
	char *selector;
	enum mc_dkim_alg alg;
	EVP_PKEY *pkey;
};

struct mc_dkim_signer *
mc_dkim_signer_new(const struct mc_dkim_key *key, const char **error_r)
{
	struct mc_dkim_signer *s;
	EVP_PKEY *pkey;

	if (!dns_name_ok(key->domain)) {
		*error_r = "DKIM domain (d=) is not a domain name";
		return NULL;
	}
	if (!dns_name_ok(key->selector)) {
		*error_r = "DKIM selector (s=) is not a DNS name";
		return NULL;
	}
	if ((pkey = load_key(key->alg, key->private_pem, error_r)) == NULL)
		return NULL;
	s = mc_malloc(sizeof(*s));
	s->domain = mc_strdup(key->domain);
	s->selector = mc_strdup(key->selector);
	s->alg = key->alg;
	s->pkey = pkey;
	return s;
}

void
mc_dkim_signer_free(struct mc_dkim_signer **signer)
{
	struct mc_dkim_signer *s = *signer;

	if (s == NULL)
		return;
	*signer = NULL;
	EVP_PKEY_free(s->pkey); /* OpenSSL clears private key material */
	free(s->domain);
	free(s->selector);
	free(s);
}

/* Append one DKIM-Signature field made by s to out. */
static int
sign_one(struct mc_strbuf *out, const char *msg,
         const struct mc_imf_header *hdr, const struct mc_dkim_signer *s,
         const struct mc_dkim_options *opts, const char *h, const char *bh,
         int64_t now, const char **error_r)
{
	struct fold f = {out, 0};
	struct mc_strbuf tag = {0};
	unsigned char hash[SHA256_LEN], sig[MAX_SIG_LEN];
	size_t start = out->len, sig_len = sizeof(sig);
	char *b64 = NULL;
	int ret = -1;

	if (opts->identity != NULL && !identity_ok(opts->identity, s->domain)) {
		*error_r = "DKIM identity (i=) is not an address at d= or "
		           "below it";
		return -1;
	}
	mc_strbuf_adds(out, "DKIM-Signature:");
	f.col = out->len - start;
	mc_strbuf_addf(&tag, " v=1; a=%s; c=relaxed/relaxed; d=%s;",
	               mc_dkim_alg_name(s->alg), s->domain);
	if (opts->identity != NULL)
		mc_strbuf_addf(&tag, " i=%s;", opts->identity);
	if (opts->query_method)
		mc_strbuf_adds(&tag, " q=dns/txt;");
	mc_strbuf_addf(&tag, " s=%s; t=%lld;", s->selector, (long long)now);
	if (opts->expire > 0)
		mc_strbuf_addf(&tag, " x=%lld;",
		               (long long)(now + opts->expire));
	mc_strbuf_addf(&tag, " h=%s;", h);
	fold_add(&f, tag.data);
	/* bh= and b= on lines of their own, for the human reader. */
	fold_break(&f);
	mc_strbuf_reset(&tag);
	mc_strbuf_addf(&tag, " bh=%s;", bh);
	fold_add(&f, tag.data);
	fold_break(&f);
	fold_add(&f, " b=");
	if (header_hash(msg, hdr, h, out->data + start, out->len - start, hash,
	                error_r) < 0 ||
	    sign_hash(s->pkey, s->alg, hash, sig, &sig_len, error_r) < 0)
		goto fail;
	b64 = base64(sig, sig_len);
	fold_fill(&f, b64);
	mc_strbuf_add(out, "\r\n", 2);
	ret = 0;
fail:
	free(b64);
	mc_strbuf_fini(&tag);
	return ret;
}

int
mc_dkim_sign_with(const char *msg, size_t len,
                  const struct mc_dkim_signer *const *signers, size_t n,
                  const struct mc_dkim_options *opts, int64_t now,
                  struct mc_strbuf *out, const char **error_r)
{
	static const struct mc_dkim_options defaults;
	struct mc_strbuf h = {0}, result = {0};
	char bh[MC_DKIM_BODY_HASH_LEN + 1];
	struct mc_imf_header hdr;
	struct mc_pool *pool;
	size_t from = 0, body;
	int ret = -1;

	if (opts == NULL)
		opts = &defaults;
	if (msg == NULL)
		msg = "", len = 0;
	if (n == 0 || n > MC_DKIM_MAX_KEYS) {
		*error_r = mc_errorf("%zu DKIM keys (1 to %u allowed)", n,
		                     MC_DKIM_MAX_KEYS);
		return -1;
	}
	if (now < 0 || opts->expire < 0 || opts->expire > INT64_MAX - now) {
		*error_r = "DKIM time or expiry out of range";
		return -1;
	}
	pool = mc_pool_new();
	mc_imf_header_parse(&hdr, pool, msg, len, NULL);
	if (hdr.truncated & (MC_IMF_TRUNC_HEADER | MC_IMF_TRUNC_FIELDS)) {
		*error_r = "message header too large to sign";
		goto fail;
	}
	for (size_t i = 0; i < hdr.count; i++)
		from += strcasecmp(hdr.fields[i].name, "From") == 0;
	if (from != 1) {
		*error_r = from == 0 ? "message has no From field"
		                     : "message has more than one From field";
		goto fail;
	}
	if (opts->header_list != NULL) {
		if (explicit_list(&h, opts->header_list, error_r) < 0)
			goto fail;
	} else {
		default_list(&h, &hdr);
	}
	body = hdr.has_body ? hdr.size : len;
	mc_dkim_body_hash(msg + body, len - body, bh);
	for (size_t k = 0; k < n; k++) {
		if (sign_one(&result, msg, &hdr, signers[k], opts, h.data, bh,
		             now, error_r) < 0)
			goto fail;
	}
	mc_strbuf_add(out, result.data, result.len);
	ret = 0;
fail:
	mc_strbuf_fini(&result);
	mc_strbuf_fini(&h);
	mc_pool_free(&pool);
	return ret;
}

int
mc_dkim_sign(const char *msg, size_t len, const struct mc_dkim_key *keys,
             size_t nkeys, const struct mc_dkim_options *opts, int64_t now,
             struct mc_strbuf *out, const char **error_r)
{
	struct mc_dkim_signer *signers[MC_DKIM_MAX_KEYS] = {0};
	size_t k;
	int ret = -1;

	if (nkeys == 0 || nkeys > MC_DKIM_MAX_KEYS) {
		*error_r = mc_errorf("%zu DKIM keys (1 to %u allowed)", nkeys,
		                     MC_DKIM_MAX_KEYS);
		return -1;
	}
	for (k = 0; k < nkeys; k++) {
		if ((signers[k] = mc_dkim_signer_new(&keys[k], error_r)) ==
		    NULL)
			goto fail;
	}
	ret = mc_dkim_sign_with(msg, len,
	                        (const struct mc_dkim_signer *const *)signers,
	                        nkeys, opts, now, out, error_r);
fail:
	for (k = 0; k < nkeys; k++)
		mc_dkim_signer_free(&signers[k]);
	return ret;
}
