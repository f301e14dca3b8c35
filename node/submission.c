/* Message submission: sessions, AUTH PLAIN, LOGIN and SCRAM-SHA-256, the
 * envelope (sender policy, recipients resolved and split between local
 * delivery and the relay) and the service; what happens after the final
 * dot is in submission_send.c. See submission.h and docs/submission.md. */
#include "submission.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "log.h"
#include "mem.h"
#include "scram.h"
#include "submission_private.h"
#include "tls.h"

/* ---- small helpers ---- */

bool
sub_addr_list_has(const struct sub_addr_list *l, const char *a)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcasecmp(l->v[i], a) == 0)
			return true;
	return false;
}

void
sub_addr_list_add(struct sub_addr_list *l, const char *a)
{
	if (sub_addr_list_has(l, a))
		return;
	if (l->count == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = mc_realloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->count++] = mc_strdup(a);
}

void
sub_addr_list_free(struct sub_addr_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void
sub_targets_free(struct node_deliver_target *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i].address);
	free(t);
}

/* SASL messages are base64 on the wire (RFC 4954 4). -1 when b64 is not
 * valid base64 or decodes to size octets or more; out is NUL-terminated. */
static int
b64_decode(const char *b64, char *out, size_t size, size_t *n_r)
{
	size_t len = strlen(b64), pad = 0;
	int n;

	if (strcmp(b64, "=") == 0) /* an empty initial response */
		len = 0;
	if (len % 4 != 0 || len / 4 * 3 >= size)
		return -1;
	n = len > 0 ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)b64,
	                              (int)len)
	            : 0;
	if (n < 0)
		return -1;
	while (pad < 2 && len > pad && b64[len - 1 - pad] == '=')
		pad++;
	*n_r = (size_t)n - pad;
	out[*n_r] = '\0';
	return 0;
}

bool
sub_address_allowed(const struct mc_directory *dir, uint64_t account_id,
                    const char *address)
{
	const struct mc_dir_account *acc = mc_directory_account(dir, address);
	const struct mc_dir_account *found[SUB_RESOLVE_MAX];
	const char *foreign[1];
	size_t n, nf;

	if (acc != NULL)
		return acc->id == account_id;
	if (mc_directory_alias(dir, address) == NULL)
		return false;
	n = mc_directory_resolve(dir, address, found, SUB_RESOLVE_MAX, foreign, 1, &nf);
	for (size_t i = 0; i < n; i++)
		if (found[i]->id == account_id)
			return true;
	return false;
}

/* ---- AUTH PLAIN, LOGIN and SCRAM-SHA-256 (RFC 4616, 5802, 7677, 4954) ---- */

/* The longest SCRAM message sent in a 334: its base64 must fit the
 * engine's 512-octet reply line after "334 " and before CRLF (506
 * octets). Only a client nonce of hundreds of octets comes near it. */
#define SUB_SCRAM_OUT_MAX (506 / 4 * 3)

static void
auth_reset(struct sub_sess *ss)
{
	ss->auth_step = AUTH_NONE;
	free(ss->login_user);
	ss->login_user = NULL;
	mc_scram_server_free(&ss->scram);
	ss->scram_account = 0;
}

static void
auth_fail(struct sub_sess *ss, unsigned code, const char *enhanced, const char *text)
{
	auth_reset(ss);
	if (++ss->auth_failures >= SUB_AUTH_FAILURES_MAX) {
		mc_info("submission session=%s too many failed logins peer=%s",
		        mc_smtp_session_id(ss->session), mc_smtp_session_peer_ip(ss->session));
		mc_smtp_session_reply(ss->session, 421, "4.7.0",
		                      "Too many failed authentications");
		return;
	}
	mc_smtp_session_reply(ss->session, code, enhanced, text);
}

/* The password check is back (after its penalty delay when it failed). */
static void
auth_checked(void *arg, const struct node_auth_result *res)
{
	struct sub_sess *ss = arg;

	if (!res->ok) {
		mc_info("submission login failed session=%s peer=%s mech=%s",
		        mc_smtp_session_id(ss->session), mc_smtp_session_peer_ip(ss->session),
		        ss->auth_mech);
		auth_fail(ss, 535, "5.7.8", "Authentication credentials invalid");
		return;
	}
	auth_reset(ss);
	ss->account_id = res->account_id;
	free(ss->user);
	ss->user = mc_strdup(res->address);
	mc_info("submission login session=%s user=%s peer=%s mech=%s",
	        mc_smtp_session_id(ss->session), ss->user,
	        mc_smtp_session_peer_ip(ss->session), ss->auth_mech);
	mc_smtp_session_reply(ss->session, 235, "2.7.0", "Authentication successful");
}

static void
auth_check(struct sub_sess *ss, const char *user, const char *password, size_t len)
{
	struct node_submission *sub = ss->sub;

	node_auth_check(sub->set.auth, mc_cfgsync_directory(sub->set.sync), user,
	                password, len, mc_smtp_session_peer_ip(ss->session),
	                auth_checked, ss);
}

static void
auth_plain(struct sub_sess *ss, const char *b64)
{
	char raw[1024];
	size_t n;
	const char *authz = raw, *authc, *pass, *end;

	if (b64_decode(b64, raw, sizeof(raw), &n) < 0) {
		auth_fail(ss, 501, "5.5.2", "Invalid base64 in the SASL response");
		goto out;
	}
	end = raw + n;
	authc = memchr(authz, '\0', n);
	pass = authc != NULL ? memchr(authc + 1, '\0', (size_t)(end - authc - 1)) : NULL;
	if (authc == NULL || pass == NULL || authc[1] == '\0')
		auth_fail(ss, 501, "5.5.2", "Malformed PLAIN response");
	else if (authz[0] != '\0' && strcasecmp(authz, authc + 1) != 0)
		auth_fail(ss, 535, "5.7.8", "Logging in as another user is not allowed");
	else
		auth_check(ss, authc + 1, pass + 1, (size_t)(end - pass - 1));
out:
	mc_wipe(raw, sizeof(raw));
}

static void
auth_login_user(struct sub_sess *ss, const char *b64)
{
	char raw[512];
	size_t n;

	if (b64_decode(b64, raw, sizeof(raw), &n) < 0 || n == 0 ||
	    memchr(raw, '\0', n) != NULL) {
		auth_fail(ss, 501, "5.5.2", "Invalid user name in the LOGIN exchange");
		return;
	}
	ss->login_user = mc_strdup(raw);
	ss->auth_step = AUTH_LOGIN_PASS;
	mc_smtp_session_reply(ss->session, 334, NULL, "UGFzc3dvcmQ6"); /* Password: */
}

static void
auth_login_pass(struct sub_sess *ss, const char *b64)
{
	char raw[1024];
	size_t n;

	if (b64_decode(b64, raw, sizeof(raw), &n) < 0)
		auth_fail(ss, 501, "5.5.2", "Invalid base64 in the LOGIN exchange");
	else
		auth_check(ss, ss->login_user, raw, n);
	mc_wipe(raw, sizeof(raw));
}

/* A SCRAM message as a 334 continuation; false (nothing sent) when it
 * would not fit the reply line. */
static bool
scram_continue(struct sub_sess *ss, const char *msg, size_t len,
               enum sub_auth_step next)
{
	char b64[4 * (SUB_SCRAM_OUT_MAX / 3) + 1];

	if (len > SUB_SCRAM_OUT_MAX)
		return false;
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)msg, (int)len);
	ss->auth_step = next;
	mc_smtp_session_reply(ss->session, 334, NULL, b64);
	return true;
}

/* The exchange failed at the client's message: malformed ones get 501
 * at once, a proof that did not verify (a wrong password, an unknown
 * user's fake verifier) waits out the penalty like a wrong password and
 * ends in auth_checked's 535. */
static void
scram_failed(struct sub_sess *ss, const char *error)
{
	struct node_submission *sub = ss->sub;
	enum mc_scram_failure why = mc_scram_server_failure(ss->scram);

	mc_debug("submission session=%s scram failed: %s", mc_smtp_session_id(ss->session),
	         error);
	if (why == MC_SCRAM_FAIL_INTERNAL) {
		auth_reset(ss);
		mc_smtp_session_reply(ss->session, 454, "4.7.0",
		                      "Temporary authentication failure");
		return;
	}
	if (why == MC_SCRAM_FAIL_MALFORMED || why == MC_SCRAM_FAIL_UNSUPPORTED) {
		auth_fail(ss, 501, "5.5.2", "Malformed or unsupported SCRAM message");
		return;
	}
	auth_reset(ss);
	node_auth_reject(sub->set.auth, mc_smtp_session_peer_ip(ss->session),
	                 auth_checked, ss);
}

/* The client's empty answer to the server-final: logged in, if the
 * account is still there. */
static void
scram_done(struct sub_sess *ss, const struct mc_directory *dir, size_t len)
{
	struct node_auth_result res = {.ok = true, .account_id = ss->scram_account};
	const struct mc_dir_account *acc;
	bool amb;

	if (len != 0) {
		auth_fail(ss, 501, "5.5.2", "Expected an empty response to the server-final");
		return;
	}
	acc = mc_directory_login(dir, mc_scram_server_username(ss->scram), &amb);
	if (acc == NULL || acc->id != ss->scram_account) {
		scram_failed(ss, "account gone during the exchange");
		return;
	}
	res.shard = acc->shard;
	res.address = acc->address;
	auth_checked(ss, &res);
}

/* One client message of SCRAM-SHA-256 (base64), as in node/imap_auth.c. */
static void
auth_scram(struct sub_sess *ss, const char *b64)
{
	const struct mc_directory *dir = mc_cfgsync_directory(ss->sub->set.sync);
	const struct mc_dir_account *acc;
	char msg[MC_SCRAM_MESSAGE_MAX + 4];
	const char *out, *err = "message too long for a reply";
	size_t n, outlen;
	bool amb;

	if (b64_decode(b64, msg, sizeof(msg), &n) < 0) {
		auth_fail(ss, 501, "5.5.2", "Invalid base64 in the SASL response");
		goto out;
	}
	switch (ss->auth_step) {
	case AUTH_SCRAM_FIRST: /* client-first -> server-first */
		if (mc_scram_server_first(ss->scram, msg, n, &err) < 0)
			break;
		acc = mc_directory_login(dir, mc_scram_server_username(ss->scram), &amb);
		ss->scram_account = acc != NULL ? acc->id : 0;
		if (mc_scram_server_challenge(ss->scram, acc != NULL ? acc->scram_sha256 : NULL,
		                              &out, &outlen, &err) < 0)
			break;
		if (!scram_continue(ss, out, outlen, AUTH_SCRAM_FINAL))
			auth_fail(ss, 501, "5.5.2", "SCRAM nonce too long");
		goto out;
	case AUTH_SCRAM_FINAL: /* client-final -> server-final */
		if (mc_scram_server_final(ss->scram, msg, n, &out, &outlen, &err) < 0)
			break;
		if (ss->scram_account == 0) {
			err = "unknown user";
			break;
		}
		if (!scram_continue(ss, out, outlen, AUTH_SCRAM_DONE))
			break; /* a v= is 46 octets: cannot happen */
		goto out;
	default:
		scram_done(ss, dir, n);
		goto out;
	}
	scram_failed(ss, err);
out:
	mc_wipe(msg, sizeof(msg));
}

static void
auth_start(struct sub_sess *ss, const char *mechanism, const char *response)
{
	struct mc_smtp_session *s = ss->session;

	if (strcmp(mechanism, "PLAIN") == 0) {
		ss->auth_mech = "PLAIN";
		if (response != NULL) {
			auth_plain(ss, response);
			return;
		}
		ss->auth_step = AUTH_PLAIN;
		mc_smtp_session_reply(s, 334, NULL, "");
	} else if (strcmp(mechanism, "LOGIN") == 0) {
		ss->auth_mech = "LOGIN";
		if (response != NULL) {
			auth_login_user(ss, response);
			return;
		}
		ss->auth_step = AUTH_LOGIN_USER;
		mc_smtp_session_reply(s, 334, NULL, "VXNlcm5hbWU6"); /* Username: */
	} else if (strcmp(mechanism, MC_SCRAM_MECH) == 0) {
		ss->auth_mech = MC_SCRAM_MECH;
		ss->scram = mc_scram_server_new();
		ss->auth_step = AUTH_SCRAM_FIRST;
		if (response != NULL) {
			auth_scram(ss, response);
			return;
		}
		mc_smtp_session_reply(s, 334, NULL, "");
	} else {
		mc_smtp_session_reply(s, 504, "5.5.4", "Mechanism not supported");
	}
}

/* A "*" after a 334 is answered by the engine without asking us: the
 * exchange left behind is dropped by the next AUTH or the close. */
static void
on_auth(struct mc_smtp_session *s, void *ctx, const char *mechanism,
        const char *response)
{
	struct sub_sess *ss = mc_smtp_session_user(s);

	(void)ctx;
	if (mechanism != NULL) {
		auth_reset(ss);
		auth_start(ss, mechanism, response);
		return;
	}
	switch (ss->auth_step) {
	case AUTH_PLAIN:
		auth_plain(ss, response);
		break;
	case AUTH_LOGIN_USER:
		auth_login_user(ss, response);
		break;
	case AUTH_LOGIN_PASS:
		auth_login_pass(ss, response);
		break;
	case AUTH_SCRAM_FIRST:
	case AUTH_SCRAM_FINAL:
	case AUTH_SCRAM_DONE:
		auth_scram(ss, response);
		break;
	case AUTH_NONE:
		auth_fail(ss, 501, "5.5.2", "Unexpected SASL response");
		break;
	}
}

/* ---- the transaction up to the final dot ---- */

static void
txn_reset(struct sub_sess *ss)
{
	sub_targets_free(ss->local, ss->local_count);
	ss->local = NULL;
	ss->local_count = ss->local_cap = 0;
	sub_addr_list_free(&ss->relay);
	free(ss->buf);
	ss->buf = NULL;
	ss->len = ss->cap = 0;
}

static void
on_connect(struct mc_smtp_session *s, void *ctx)
{
	struct sub_sess *ss = mc_malloc(sizeof(*ss));

	ss->sub = ctx;
	ss->session = s;
	mc_smtp_session_set_user(s, ss);
	mc_debug("submission session=%s connect peer=%s tls=%d", mc_smtp_session_id(s),
	         mc_smtp_session_peer_ip(s), mc_smtp_session_tls(s));
	mc_smtp_session_accept(s);
}

static void
on_mail(struct mc_smtp_session *s, void *ctx, const struct mc_smtp_path *from,
        const struct mc_smtp_params *params)
{
	struct node_submission *sub = ctx;
	struct sub_sess *ss = mc_smtp_session_user(s);
	char text[400];

	(void)params;
	if (ss->account_id == 0 || !mc_smtp_session_authenticated(s)) {
		mc_smtp_session_reply(s, 530, "5.7.0", "Authentication required");
		return;
	}
	if (ss->messages >= SUB_MESSAGES_MAX) {
		mc_smtp_session_reply(s, 421, "4.7.0", "Too many messages in one session");
		return;
	}
	if (from->null) {
		mc_info("submission refused session=%s user=%s sender=<>",
		        mc_smtp_session_id(s), ss->user);
		mc_smtp_session_reply(s, 553, "5.7.1",
		                      "The null sender <> cannot be used for submission");
		return;
	}
	if (!sub_address_allowed(mc_cfgsync_directory(sub->set.sync), ss->account_id,
	                         from->mailbox)) {
		mc_info("submission refused session=%s user=%s sender=<%s>",
		        mc_smtp_session_id(s), ss->user, from->mailbox);
		snprintf(text, sizeof(text),
		         "Sender address <%s> is not one of the addresses of %s",
		         from->mailbox, ss->user);
		mc_smtp_session_reply(s, 553, "5.7.1", text);
		return;
	}
	mc_smtp_session_accept(s);
}

/* A recipient outside the cluster's domains: the relay's. */
static void
rcpt_remote(struct mc_smtp_session *s, struct sub_sess *ss,
            const struct mc_smtp_path *to)
{
	if (ss->sub->relay_host[0] == '\0') {
		mc_smtp_session_reply(s, 451, "4.3.0",
		                      "No relay configured on this node for outbound mail");
		return;
	}
	if (ss->relay.count >= SUB_RELAY_MAX) {
		mc_smtp_session_reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	sub_addr_list_add(&ss->relay, to->mailbox);
	mc_smtp_session_accept(s);
}

static void
local_add(struct sub_sess *ss, const struct mc_dir_account *acc)
{
	struct node_deliver_target *t;

	for (size_t i = 0; i < ss->local_count; i++)
		if (ss->local[i].account_id == acc->id)
			return;
	if (ss->local_count == ss->local_cap) {
		ss->local_cap = ss->local_cap ? ss->local_cap * 2 : 8;
		ss->local = mc_realloc(ss->local, ss->local_cap * sizeof(*ss->local));
	}
	t = &ss->local[ss->local_count++];
	memset(t, 0, sizeof(*t));
	t->address = mc_strdup(acc->address);
	t->account_id = acc->id;
	t->shard = acc->shard;
	t->quota_bytes = acc->quota_bytes;
}

/* Recipients of the cluster's domains are resolved here: accounts whose
 * shard we hold are stored here, the rest (other shards, alias
 * destinations outside the cluster) go to the relay as resolved
 * addresses, so the relay never expands an alias a second time. */
static void
on_rcpt(struct mc_smtp_session *s, void *ctx, const struct mc_smtp_path *to,
        const struct mc_smtp_params *params)
{
	struct node_submission *sub = ctx;
	struct sub_sess *ss = mc_smtp_session_user(s);
	const struct mc_directory *dir = mc_cfgsync_directory(sub->set.sync);
	const struct mc_dir_account *accs[SUB_RESOLVE_MAX];
	const char *foreign[SUB_RESOLVE_MAX];
	size_t n, nf, remote;
	uint64_t epoch;

	(void)params;
	if (to->postmaster) {
		mc_smtp_session_reply(s, 550, "5.1.3", "Postmaster needs a domain here");
		return;
	}
	if (!mc_directory_has_domain(dir, to->domain)) {
		rcpt_remote(s, ss, to);
		return;
	}
	n = mc_directory_resolve(dir, to->mailbox, accs, SUB_RESOLVE_MAX, foreign,
	                         SUB_RESOLVE_MAX, &nf);
	if (n == 0 && nf == 0) {
		mc_smtp_session_reply(s, 550, "5.1.1", "No such mailbox");
		return;
	}
	if (n == SUB_RESOLVE_MAX || nf == SUB_RESOLVE_MAX)
		mc_warn("submission session=%s rcpt=%s expands to more than %d addresses: cut",
		        mc_smtp_session_id(s), to->mailbox, SUB_RESOLVE_MAX);
	/* Accounts of shards held elsewhere go to the relay too. */
	remote = nf;
	for (size_t i = 0; i < n; i++)
		if (!mc_cfgsync_shard_epoch(sub->set.sync, accs[i]->shard, &epoch))
			remote++;
	if (remote > 0 && sub->relay_host[0] == '\0') {
		mc_smtp_session_reply(s, 451, "4.3.0",
		                      "Recipient is served by another node and no relay "
		                      "is configured here");
		return;
	}
	if (ss->local_count + (n + nf - remote) > SUB_LOCAL_MAX ||
	    ss->relay.count + remote > SUB_RELAY_MAX) {
		mc_smtp_session_reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (mc_cfgsync_shard_epoch(sub->set.sync, accs[i]->shard, &epoch))
			local_add(ss, accs[i]);
		else
			sub_addr_list_add(&ss->relay, accs[i]->address);
	}
	for (size_t i = 0; i < nf; i++)
		sub_addr_list_add(&ss->relay, foreign[i]);
	mc_smtp_session_accept(s);
}

static void
on_data_start(struct mc_smtp_session *s, void *ctx)
{
	struct sub_sess *ss = mc_smtp_session_user(s);

	(void)ctx;
	ss->cap = SUB_PREFIX_ROOM + 16384;
	ss->buf = mc_malloc(ss->cap);
	ss->len = SUB_PREFIX_ROOM;
	mc_smtp_session_accept(s);
}

/* Bounded by the engine: content past max_message is not passed on. */
static void
on_data_content(struct mc_smtp_session *s, void *ctx, const void *data, size_t len)
{
	struct sub_sess *ss = mc_smtp_session_user(s);

	(void)ctx;
	if (ss->len + len > ss->cap) {
		while (ss->cap < ss->len + len)
			ss->cap *= 2;
		ss->buf = mc_realloc(ss->buf, ss->cap);
	}
	memcpy(ss->buf + ss->len, data, len);
	ss->len += len;
}

static void
on_data_end(struct mc_smtp_session *s, void *ctx)
{
	node_submission_send(ctx, mc_smtp_session_user(s));
}

/* ---- the end of a transaction, of a session ---- */

static void
on_txn_end(struct mc_smtp_session *s, void *ctx, enum mc_smtp_txn_end how)
{
	(void)ctx;
	(void)how;
	txn_reset(mc_smtp_session_user(s));
}

static void
on_closed(struct mc_smtp_session *s, void *ctx)
{
	struct sub_sess *ss = mc_smtp_session_user(s);

	(void)ctx;
	if (ss == NULL)
		return;
	txn_reset(ss);
	auth_reset(ss);
	free(ss->user);
	free(ss);
}

/* ---- the service ---- */

static int
server_start(struct node_submission *sub, const char *addr, bool implicit,
             struct mc_smtp_server **server_r, const char **error_r)
{
	static const struct mc_smtp_policy policy = {
	        .connect = on_connect,
	        .mail = on_mail,
	        .rcpt = on_rcpt,
	        .data_start = on_data_start,
	        .data_content = on_data_content,
	        .data_end = on_data_end,
	        .auth = on_auth,
	        .txn_end = on_txn_end,
	        .closed = on_closed,
	};
	struct mc_smtp_server_settings ss;
	char host[MC_HOST_MAX + 1];
	uint16_t port;

	if (mc_hostport_parse(addr, host, &port, error_r) < 0)
		return -1;
	mc_smtp_server_settings_init(&ss);
	ss.hostname = sub->hostname;
	ss.tls = sub->tls;
	ss.implicit_tls = implicit;
	if (sub->set.max_message > 0)
		ss.max_message = sub->set.max_message;
	ss.max_bad_commands = 10;
	ss.auth_mechanisms = "PLAIN LOGIN " MC_SCRAM_MECH;
	if (mc_smtp_server_new(sub->loop, &ss, &policy, sub, server_r, error_r) < 0)
		return -1;
	if (mc_smtp_server_listen(*server_r, host, port,
	                          sub->set.max_sessions ? sub->set.max_sessions : 200,
	                          error_r) < 0) {
		mc_smtp_server_close(*server_r, NULL, NULL);
		*server_r = NULL;
		return -1;
	}
	mc_info("submission listening address=%s%s", mc_smtp_server_address(*server_r),
	        implicit ? " (TLS)" : " (STARTTLS)");
	return 0;
}

/* submission_relay and its TLS settings. */
static int
relay_setup(struct node_submission *sub, const struct node_submission_settings *set,
            const char **error_r)
{
	const char *mode = set->relay_tls != NULL ? set->relay_tls : "none";
	struct mc_tls_settings ts = {.cert_file = set->relay_cert_file,
	                             .key_file = set->relay_key_file,
	                             .ca_file = set->relay_ca_file};

	if (set->relay == NULL)
		return 0;
	if (mc_hostport_parse(set->relay, sub->relay_host, &sub->relay_port, error_r) < 0)
		return -1;
	if (strcmp(mode, "none") == 0) {
		sub->relay_tls = MC_SMTP_CLIENT_TLS_NONE;
		return 0;
	}
	if (strcmp(mode, "starttls") == 0) {
		sub->relay_tls = MC_SMTP_CLIENT_TLS_REQUIRED;
	} else if (strcmp(mode, "implicit") == 0) {
		sub->relay_tls = MC_SMTP_CLIENT_TLS_IMPLICIT;
	} else {
		*error_r = "submission_relay_tls takes none, starttls or implicit";
		return -1;
	}
	return mc_tls_ctx_new(MC_TLS_CLIENT, &ts, &sub->relay_ctx, error_r);
}

static void
sub_free(struct node_submission *sub)
{
	mc_tls_ctx_free(&sub->tls);
	mc_tls_ctx_free(&sub->relay_ctx);
	free(sub->hostname);
	free(sub);
}

int
node_submission_start(uv_loop_t *loop, const struct node_submission_settings *set,
                      struct node_submission **sub_r, const char **error_r)
{
	struct node_submission *sub = mc_malloc(sizeof(*sub));
	struct mc_tls_settings ts = {.cert_file = set->cert_file, .key_file = set->key_file};

	sub->loop = loop;
	sub->set = *set;
	sub->hostname = mc_strdup(set->hostname);
	sub->set.hostname = sub->hostname;
	if (set->listen == NULL && set->listen_tls == NULL) {
		*error_r = "submission needs submission_listen or submissions_listen";
		goto fail;
	}
	if (set->cert_file == NULL || set->key_file == NULL) {
		*error_r = "submission needs a certificate (submission_tls_cert_file and "
		           "submission_tls_key_file, or the IMAP ones)";
		goto fail;
	}
	if (mc_tls_ctx_new(MC_TLS_SERVER, &ts, &sub->tls, error_r) < 0 ||
	    relay_setup(sub, set, error_r) < 0)
		goto fail;
	sub->set.relay = sub->set.relay_tls = NULL; /* not kept: parsed above */
	sub->set.relay_cert_file = sub->set.relay_key_file = sub->set.relay_ca_file = NULL;
	sub->set.listen = sub->set.listen_tls = NULL;
	sub->set.cert_file = sub->set.key_file = NULL;
	if ((set->listen != NULL &&
	     server_start(sub, set->listen, false, &sub->server, error_r) < 0) ||
	    (set->listen_tls != NULL &&
	     server_start(sub, set->listen_tls, true, &sub->server_tls, error_r) < 0))
		goto fail;
	if (sub->relay_host[0] != '\0')
		mc_info("submission relay=%s:%u tls=%s", sub->relay_host, sub->relay_port,
		        set->relay_tls != NULL ? set->relay_tls : "none");
	else
		mc_info("submission without relay: only recipients stored here are accepted");
	*sub_r = sub;
	return 0;
fail:
	if (sub->server != NULL)
		mc_smtp_server_close(sub->server, NULL, NULL);
	sub_free(sub);
	return -1;
}

static void
server_closed(void *arg)
{
	struct node_submission *sub = arg;
	void (*done)(void *) = sub->done;
	void *done_arg = sub->done_arg;

	if (--sub->servers_open > 0)
		return;
	sub_free(sub);
	if (done != NULL)
		done(done_arg);
}

void
node_submission_close(struct node_submission *sub, void (*done)(void *arg), void *arg)
{
	sub->closing = true;
	sub->done = done;
	sub->done_arg = arg;
	node_submission_send_abort(sub);
	sub->servers_open = (sub->server != NULL) + (sub->server_tls != NULL);
	if (sub->server != NULL)
		mc_smtp_server_close(sub->server, server_closed, sub);
	if (sub->server_tls != NULL)
		mc_smtp_server_close(sub->server_tls, server_closed, sub);
}
