/* SMTP AUTH for the client session (RFC 4954), between the EHLO that
 * followed TLS and MAIL: the policy (credentials only over TLS, never a
 * silent downgrade to no AUTH), the choice of mechanism from the
 * server's list (SCRAM-SHA-256, then PLAIN, then LOGIN, as allowed), the
 * three exchanges, and the care the secrets need: every line that carries
 * them is written straight to the connection, never through the debug
 * log of commands, the buffers that held them are wiped, and the copies
 * of the credentials are wiped and freed as soon as AUTH is over.
 *
 * SCRAM-SHA-256 is the client half of lib/scram.h's server (RFC 5802
 * with RFC 7677's hash, no channel binding, "n,," header): nonce, PBKDF2
 * of the password with the server's salt and count, the proof, and the
 * check of the server's signature, which a server that does not know the
 * password cannot forge. PBKDF2 runs on the loop thread, so the count a
 * server may ask for is bounded (SCRAM_ITER_MAX). */
#include "smtp_client_private.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "error.h"
#include "log.h"
#include "mem.h"

/* An AUTH line with its base64: PLAIN's initial response with two
 * 255-octet credentials is under 700 octets, SCRAM's client-final under
 * 200; a SCRAM message from the server is small (nonce, salt, count). */
#define AUTH_LINE_MAX 1200
#define SCRAM_MSG_MAX 1024
#define SCRAM_NONCE_BYTES 24
/* About 60 ms of PBKDF2-HMAC-SHA256 on the loop at most; real servers
 * use 4096 (RFC 7677's floor) to a few tens of thousands. */
#define SCRAM_ITER_MAX 100000
#define KEY_LEN 32

struct smtp_client_scram {
	char nonce[64];                 /* ours, base64 */
	char first_bare[SCRAM_MSG_MAX]; /* "n=<user>,r=<nonce>" */
	unsigned char server_sig[KEY_LEN];
};

enum auth_mech_id { MECH_SCRAM, MECH_PLAIN, MECH_LOGIN, MECH_NONE };

static const struct {
	const char *name;
	unsigned bit;
} mechs[] = {
        {"SCRAM-SHA-256", MC_SMTP_CLIENT_AUTH_SCRAM_SHA_256},
        {"PLAIN", MC_SMTP_CLIENT_AUTH_PLAIN},
        {"LOGIN", MC_SMTP_CLIENT_AUTH_LOGIN},
};

/* ---- Secrets ------------------------------------------------------------- */

void
mc_smtp_client_auth_wipe(struct mc_smtp_client *c)
{
	if (c->auth_user != NULL) {
		mc_wipe(c->auth_user, strlen(c->auth_user));
		free(c->auth_user);
		c->auth_user = NULL;
	}
	if (c->auth_pass != NULL) {
		mc_wipe(c->auth_pass, strlen(c->auth_pass));
		free(c->auth_pass);
		c->auth_pass = NULL;
	}
	if (c->scram != NULL) {
		mc_wipe(c->scram, sizeof(*c->scram));
		free(c->scram);
		c->scram = NULL;
	}
}

/* Write a line that carries a secret, then wipe it. The debug log shows
 * the mechanism only. */
static void
send_secret(struct mc_smtp_client *c, char *line, size_t len)
{
	const char *error;
	int r = mc_conn_write(c->conn, line, len, &error);

	mc_wipe(line, len);
	mc_debug("smtp_client id=%s remote=%s send=\"(AUTH %s, step %u, "
	         "hidden)\"",
	         c->log_id, c->remote, c->auth_mech, c->auth_step);
	if (r < 0)
		mc_smtp_client_write_failed(c, error);
}

static size_t
b64_encode(const void *in, size_t len, char *out, size_t size)
{
	if ((len + 2) / 3 * 4 + 1 > size)
		return 0;
	return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* Strict base64 (padding required, nothing else); -1 when malformed or
 * longer than size. */
static int
b64_decode(const char *in, size_t len, unsigned char *out, size_t size,
           size_t *len_r)
{
	int n;
	size_t pad = 0;

	if (len % 4 != 0 || len / 4 * 3 > size)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (in[i] == ' ' || in[i] == '\n' || in[i] == '\t')
			return -1;
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	if (len > 0 && in[len - 1] == '=')
		pad++;
	if (len > 1 && in[len - 2] == '=')
		pad++;
	*len_r = (size_t)n - pad;
	return 0;
}

/* ---- SCRAM-SHA-256 --------------------------------------------------------
 */

static bool
printable_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* The client-first-message into out (NUL-terminated); -1 on no
 * randomness. */
static int
scram_first(struct mc_smtp_client *c, char *out, size_t size)
{
	struct smtp_client_scram *sc = mc_malloc(sizeof(*sc));
	unsigned char rnd[SCRAM_NONCE_BYTES];
	size_t n = 0;

	c->scram = sc;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	b64_encode(rnd, sizeof(rnd), sc->nonce, sizeof(sc->nonce));
	n += (size_t)snprintf(sc->first_bare, sizeof(sc->first_bare), "n=");
	/* saslname: ',' and '=' escaped (RFC 5802 5.1). */
	for (const char *u = c->auth_user; *u != '\0'; u++)
		n += (size_t)snprintf(sc->first_bare + n,
		                      sizeof(sc->first_bare) - n, "%s",
		                      *u == ','   ? "=2C"
		                      : *u == '=' ? "=3D"
		                                  : (char[]){*u, '\0'});
	snprintf(sc->first_bare + n, sizeof(sc->first_bare) - n, ",r=%s",
	         sc->nonce);
	snprintf(out, size, "n,,%s", sc->first_bare);
	return 0;
}

/* Find "k=value" at the start of an attribute of msg: value, its length. */
static const char *
attr(const char *msg, char key, size_t *len_r)
{
	for (const char *p = msg; p != NULL && *p != '\0';) {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

		if (n >= 2 && p[0] == key && p[1] == '=') {
			*len_r = n - 2;
			return p + 2;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

/* keys: SaltedPassword, then ClientKey, StoredKey, ServerKey. */
static bool
hmac(const unsigned char *key, const void *data, size_t len, unsigned char *out)
{
	unsigned n = KEY_LEN;

	return HMAC(EVP_sha256(), key, KEY_LEN, data, len, out, &n) != NULL;
}

/* From the server-first-message to the client-final-message in out;
 * NULL, or why the server's message is unusable. */
static const char *
scram_final(struct mc_smtp_client *c, const char *server_first, char *out,
            size_t size)
{
	struct smtp_client_scram *sc = c->scram;
	unsigned char salt[128], salted[KEY_LEN], ckey[KEY_LEN],
	        stored[KEY_LEN], csig[KEY_LEN], skey[KEY_LEN];
	/* the nonce is at most SCRAM_MSG_MAX / 2 (checked below) */
	char auth_msg[3 * SCRAM_MSG_MAX], without_proof[SCRAM_MSG_MAX / 2 + 16],
	        proof[64];
	size_t rlen, slen, ilen, saltlen, n;
	const char *r = attr(server_first, 'r', &rlen),
	           *s = attr(server_first, 's', &slen),
	           *i = attr(server_first, 'i', &ilen), *why = NULL;
	unsigned long iter;
	char *end;

	if (server_first[0] == 'm')
		return "mandatory extension asked for";
	if (r == NULL || s == NULL || i == NULL || server_first[0] != 'r')
		return "malformed server-first-message";
	if (rlen > SCRAM_MSG_MAX / 2)
		return "server nonce too long";
	if (rlen <= strlen(sc->nonce) ||
	    strncmp(r, sc->nonce, strlen(sc->nonce)) != 0)
		return "server nonce does not extend ours";
	iter = strtoul(i, &end, 10);
	if (ilen == 0 || ilen > 9 || end != i + ilen || iter == 0 ||
	    iter > SCRAM_ITER_MAX)
		return "iteration count out of range";
	if (b64_decode(s, slen, salt, sizeof(salt), &saltlen) < 0 ||
	    saltlen == 0)
		return "malformed salt";
	snprintf(without_proof, sizeof(without_proof), "c=biws,r=%.*s",
	         (int)rlen, r);
	n = (size_t)snprintf(auth_msg, sizeof(auth_msg), "%s,%s,%s",
	                     sc->first_bare, server_first, without_proof);
	if (PKCS5_PBKDF2_HMAC(c->auth_pass, (int)strlen(c->auth_pass), salt,
	                      (int)saltlen, (int)iter, EVP_sha256(), KEY_LEN,
	                      salted) != 1 ||
	    !hmac(salted, "Client Key", 10, ckey) ||
	    EVP_Digest(ckey, KEY_LEN, stored, NULL, EVP_sha256(), NULL) != 1 ||
	    !hmac(stored, auth_msg, n, csig) ||
	    !hmac(salted, "Server Key", 10, skey) ||
	    !hmac(skey, auth_msg, n, sc->server_sig)) {
		why = "OpenSSL failed";
		goto out;
	}
	for (size_t k = 0; k < KEY_LEN; k++)
		ckey[k] ^= csig[k]; /* ClientProof */
	b64_encode(ckey, KEY_LEN, proof, sizeof(proof));
	snprintf(out, size, "%s,p=%s", without_proof, proof);
out:
	mc_wipe(salted, sizeof(salted));
	mc_wipe(ckey, sizeof(ckey));
	mc_wipe(stored, sizeof(stored));
	mc_wipe(csig, sizeof(csig));
	mc_wipe(skey, sizeof(skey));
	mc_wipe(proof, sizeof(proof));
	return why;
}

/* The server-final-message: "v=<ServerSignature>"? */
static const char *
scram_verify(struct mc_smtp_client *c, const char *server_final)
{
	unsigned char sig[64];
	size_t vlen, n;
	const char *v = attr(server_final, 'v', &vlen);

	if (server_final[0] == 'e')
		return mc_errorf("the server reports %.*s",
		                 (int)strcspn(server_final, ","), server_final);
	if (v == NULL || b64_decode(v, vlen, sig, sizeof(sig), &n) < 0 ||
	    n != KEY_LEN)
		return "malformed server-final-message";
	if (CRYPTO_memcmp(sig, c->scram->server_sig, KEY_LEN) != 0)
		return "the server's signature is wrong: it does not know the "
		       "password";
	return NULL;
}

/* ---- The exchange ----------------------------------------------------------
 */

static bool
offers(const struct mc_smtp_client *c, const char *mech)
{
	size_t len = strlen(mech);

	for (const char *p = c->caps.auth; *p != '\0';) {
		size_t n = strcspn(p, " ");

		if (n == len && strncasecmp(p, mech, len) == 0)
			return true;
		p += n;
		p += strspn(p, " ");
	}
	return false;
}

static enum auth_mech_id
choose(const struct mc_smtp_client *c)
{
	for (enum auth_mech_id m = MECH_SCRAM; m < MECH_NONE; m++) {
		if (!(c->auth_mechs & mechs[m].bit) ||
		    !offers(c, mechs[m].name))
			continue;
		if (m == MECH_SCRAM && !printable_ascii(c->auth_pass))
			continue; /* no SASLprep: see lib/scram.h */
		return m;
	}
	return MECH_NONE;
}

/* A session-level AUTH failure decided by us (not a server reply). */
static void
auth_fail(struct mc_smtp_client *c, const char *enhanced, const char *text,
          bool polite)
{
	mc_smtp_client_auth_wipe(c);
	mc_smtp_client_end(c, MC_SMTP_CLIENT_ERR_AUTH, MC_SMTP_CLIENT_TEMPFAIL,
	                   enhanced, text, polite);
}

/* Respond to a 334 with base64 of data (len bytes). */
static void
respond(struct mc_smtp_client *c, const void *data, size_t len)
{
	char line[AUTH_LINE_MAX];
	size_t n = b64_encode(data, len, line, sizeof(line) - 2);

	memcpy(line + n, "\r\n", 2);
	c->auth_step++;
	send_secret(c, line, n + 2);
}

static void
initial(struct mc_smtp_client *c, enum auth_mech_id m)
{
	char msg[SCRAM_MSG_MAX + 8], line[AUTH_LINE_MAX];
	size_t ulen = strlen(c->auth_user), plen = strlen(c->auth_pass);
	size_t len = 0, n;

	if (m == MECH_PLAIN) { /* authzid (empty) NUL authcid NUL passwd */
		msg[0] = '\0';
		memcpy(msg + 1, c->auth_user, ulen);
		msg[1 + ulen] = '\0';
		memcpy(msg + 2 + ulen, c->auth_pass, plen);
		len = 2 + ulen + plen;
	} else if (m == MECH_SCRAM) {
		if (scram_first(c, msg, sizeof(msg)) < 0) {
			auth_fail(c, "4.3.0", "no randomness for SCRAM", true);
			return;
		}
		len = strlen(msg);
	}
	n = (size_t)snprintf(line, sizeof(line), "AUTH %s", mechs[m].name);
	if (len > 0) {
		line[n++] = ' ';
		n += b64_encode(msg, len, line + n, sizeof(line) - n - 2);
	}
	memcpy(line + n, "\r\n", 2);
	mc_wipe(msg, sizeof(msg));
	mc_smtp_client_set_state(c, SC_AUTH);
	send_secret(c, line, n + 2);
}

void
mc_smtp_client_auth_start(struct mc_smtp_client *c)
{
	enum auth_mech_id m;

	if (c->auth_user == NULL) {
		mc_smtp_client_begin_transaction(c);
		return;
	}
	if (!c->tls_active) {
		auth_fail(c, "4.7.11",
		          mc_errorf("not sending credentials to %s without TLS",
		                    c->remote),
		          true);
		return;
	}
	if (!(c->caps.ext & MC_SMTP_CLIENT_EXT_AUTH) || c->caps.auth[0] == 0) {
		auth_fail(c, "4.7.0",
		          mc_errorf("credentials are configured, but %s does "
		                    "not offer AUTH",
		                    c->remote),
		          true);
		return;
	}
	if ((m = choose(c)) == MECH_NONE) {
		auth_fail(c, "4.7.0",
		          mc_errorf("no AUTH mechanism in common with %s "
		                    "(it offers %s)",
		                    c->remote, c->caps.auth),
		          true);
		return;
	}
	c->auth_mech = mechs[m].name;
	c->auth_step = 0;
	initial(c, m);
}

/* A 334: the next step of the exchange. */
static void
challenge(struct mc_smtp_client *c, const struct mc_smtp_client_reply *reply)
{
	unsigned char msg[SCRAM_MSG_MAX];
	char out[SCRAM_MSG_MAX];
	const char *why;
	size_t len;

	if (c->auth_mech == mechs[MECH_PLAIN].name && c->auth_step == 0) {
		/* The server wants the response after all. */
		size_t ulen = strlen(c->auth_user);

		out[0] = '\0';
		memcpy(out + 1, c->auth_user, ulen + 1);
		memcpy(out + 2 + ulen, c->auth_pass, strlen(c->auth_pass));
		respond(c, out, 2 + ulen + strlen(c->auth_pass));
		mc_wipe(out, sizeof(out));
		return;
	}
	if (c->auth_mech == mechs[MECH_LOGIN].name && c->auth_step < 2) {
		const char *s = c->auth_step == 0 ? c->auth_user : c->auth_pass;

		respond(c, s, strlen(s));
		return;
	}
	if (c->auth_mech != mechs[MECH_SCRAM].name || c->auth_step > 1) {
		mc_smtp_client_auth_wipe(c);
		mc_smtp_client_protocol_error(c, "unexpected AUTH challenge",
		                              reply);
		return;
	}
	if (b64_decode(reply->text, strlen(reply->text), msg, sizeof(msg) - 1,
	               &len) < 0 ||
	    memchr(msg, '\0', len) != NULL) {
		mc_smtp_client_auth_wipe(c);
		mc_smtp_client_protocol_error(c, "malformed SCRAM challenge",
		                              reply);
		return;
	}
	msg[len] = '\0';
	why = c->auth_step == 0
	              ? scram_final(c, (const char *)msg, out, sizeof(out))
	              : scram_verify(c, (const char *)msg);
	if (why != NULL) {
		/* Mid-exchange: no polite QUIT (it would read as a SASL
		 * response); the connection is reset. */
		auth_fail(
		        c, "4.7.0",
		        mc_errorf("SCRAM-SHA-256 with %s: %s", c->remote, why),
		        false);
		return;
	}
	if (c->auth_step == 0) {
		respond(c, out, strlen(out));
		mc_wipe(out, sizeof(out));
	} else {
		c->auth_step++;
		send_secret(c, (char[]){'\r', '\n'}, 2);
	}
}

void
mc_smtp_client_auth_reply(struct mc_smtp_client *c,
                          const struct mc_smtp_client_reply *reply)
{
	unsigned cls = reply->code / 100;

	if (reply->code == 334) {
		challenge(c, reply);
	} else if (cls == 2) {
		/* SCRAM: only once the server proved itself. */
		if (c->auth_mech == mechs[MECH_SCRAM].name &&
		    c->auth_step != 2) {
			mc_smtp_client_auth_wipe(c);
			mc_smtp_client_protocol_error(
			        c, "AUTH succeeded without the server's proof",
			        reply);
			return;
		}
		mc_info("smtp_client id=%s remote=%s auth=%s ok", c->log_id,
		        c->remote, c->auth_mech);
		mc_smtp_client_auth_wipe(c);
		mc_smtp_client_begin_transaction(c);
	} else if (cls == 3) {
		mc_smtp_client_auth_wipe(c);
		mc_smtp_client_protocol_error(c, "unexpected reply to AUTH",
		                              reply);
	} else {
		/* 535 5.7.8 bad credentials, 454 4.7.0 try later, 534...: the
		 * reply decides every recipient by its class. */
		mc_smtp_client_auth_wipe(c);
		mc_smtp_client_refuse(c, reply, "AUTH",
		                      MC_SMTP_CLIENT_ERR_AUTH);
		mc_smtp_client_quit(c);
	}
}
