/* IMAP commands of the not-authenticated state and those valid in every
 * state: CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN, AUTHENTICATE
 * PLAIN (with SASL-IR), ENABLE, NAMESPACE.
 *
 * Passwords: only over TLS (LOGINDISABLED before it), checked by
 * node/auth.h (worker thread, growing delays per peer address); a
 * connection that fails IMAP_AUTH_FAILURES_MAX times is closed. */
#include "imap_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "auth.h"
#include "directory.h"
#include "imap_format.h"
#include "log.h"
#include "scram.h"
#include "mem.h"

void
imap_capabilities(struct imap_sess *s, struct mc_strbuf *b)
{
	mc_strbuf_adds(b, "CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE");
	if (s->state == IMAP_NOTAUTH) {
		if (!s->tls)
			mc_strbuf_adds(b, " STARTTLS LOGINDISABLED");
		else
			mc_strbuf_adds(b, " AUTH=PLAIN AUTH=SCRAM-SHA-256");
		return;
	}
	mc_strbuf_adds(b, " NAMESPACE UNSELECT UIDPLUS CHILDREN LIST-EXTENDED"
	                  " LIST-STATUS SPECIAL-USE MOVE CONDSTORE QRESYNC ESEARCH"
	                  " QUOTA QUOTA=RES-STORAGE STATUS=SIZE BINARY");
	if (s->z == NULL)
		mc_strbuf_adds(b, " COMPRESS=DEFLATE");
}

void
imap_cmd_capability(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct mc_strbuf caps = {0};

	(void)cmd;
	imap_capabilities(s, &caps);
	imap_outf(s, "* %s\r\n", caps.data);
	mc_strbuf_fini(&caps);
	imap_command_done(s, "OK", NULL, "CAPABILITY completed");
}

void
imap_cmd_noop(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	(void)cmd;
	imap_sync_command(s, "NOOP completed");
}

void
imap_cmd_logout(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	(void)cmd;
	imap_outs(s, "* BYE Logging out\r\n");
	s->state = IMAP_LOGOUT;
	imap_command_done(s, "OK", NULL, "LOGOUT completed");
}

void
imap_cmd_id(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	if (cmd->nargs < 1 ||
	    (cmd->args[0].type != MC_IMAP_NIL && cmd->args[0].type != MC_IMAP_LIST)) {
		imap_command_done(s, "BAD", NULL, "ID takes NIL or a list");
		return;
	}
	imap_outs(s, "* ID (\"name\" \"mail-cluster\")\r\n");
	imap_command_done(s, "OK", NULL, "ID completed");
}

void
imap_cmd_starttls(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	(void)cmd;
	if (s->tls) {
		imap_command_done(s, "BAD", NULL, "TLS is already active");
		return;
	}
	imap_session_starttls(s);
}

void
imap_cmd_enable(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct mc_strbuf en = {0};

	for (unsigned i = 0; i < cmd->nargs; i++) {
		const struct mc_imap_token *t = &cmd->args[i];

		if (mc_imap_token_is(t, "CONDSTORE") && !s->condstore) {
			s->condstore = true;
			mc_strbuf_adds(&en, " CONDSTORE");
		} else if (mc_imap_token_is(t, "QRESYNC") && !s->qresync) {
			s->qresync = true;
			if (!s->condstore)
				mc_strbuf_adds(&en, " CONDSTORE");
			s->condstore = true;
			mc_strbuf_adds(&en, " QRESYNC");
		}
	}
	imap_outf(s, "* ENABLED%s\r\n", en.data != NULL ? en.data : "");
	mc_strbuf_fini(&en);
	imap_command_done(s, "OK", NULL, "ENABLE completed");
}

void
imap_cmd_namespace(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	(void)cmd;
	imap_outs(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	imap_command_done(s, "OK", NULL, "NAMESPACE completed");
}

/* ---- password check ---------------------------------------------------- */

static void
auth_failed(struct imap_sess *s)
{
	if (++s->auth_failures >= IMAP_AUTH_FAILURES_MAX) {
		imap_outs(s, "* BYE Too many failed logins\r\n");
		s->state = IMAP_LOGOUT;
	}
	imap_command_done(s, "NO", "AUTHENTICATIONFAILED", "Authentication failed");
}

static void login_ready(struct imap_job *ij);

static void
ensure_work(struct imap_job *ij, struct node_store *store, const char *error)
{
	uint64_t *epoch = ij->arg;
	const char *err = NULL;

	if (imap_job_no_store(ij, store, error))
		return;
	ij->result = node_store_ensure_mailboxes(store, ij->s->account_id,
	                                         ij->s->shard, *epoch, &err);
	imap_job_error(ij, err);
}

/* The password check is back (after its penalty delay when it failed). */
static void
auth_checked(void *arg, const struct node_auth_result *res)
{
	struct imap_sess *s = arg;
	struct imap_job *ij;
	uint64_t *epoch;

	s->auth_req = NULL;
	if (!res->ok) {
		mc_info("imap login failed session=%" PRIu64 " peer=%s", s->id,
		        mc_conn_peer_ip(s->conn));
		auth_failed(s);
		return;
	}
	s->account_id = res->account_id;
	s->shard = res->shard;
	s->user = mc_strdup(res->address);
	epoch = mc_malloc(sizeof(*epoch));
	if (!imap_epoch(s, epoch)) {
		free(epoch);
		s->account_id = 0;
		free(s->user);
		s->user = NULL;
		imap_command_done(s, "NO", "UNAVAILABLE",
		                  "This node does not serve that mailbox now; try again");
		return;
	}
	ij = mc_malloc(sizeof(*ij));
	ij->work = ensure_work;
	ij->done = login_ready;
	ij->arg = epoch;
	imap_job_start(s, ij);
}

static void
login_ready(struct imap_job *ij)
{
	struct imap_sess *s = ij->s;
	struct mc_strbuf caps = {0};

	free(ij->arg);
	if (s == NULL) {
		free(ij);
		return;
	}
	if (ij->result != NODE_STORE_OK) {
		mc_warn("imap login store error session=%" PRIu64 " error=\"%s\"", s->id,
		        ij->error);
		s->account_id = 0;
		free(s->user);
		s->user = NULL;
		free(ij);
		imap_command_done(s, "NO", "UNAVAILABLE", "Mailbox store unavailable");
		return;
	}
	free(ij);
	s->state = IMAP_AUTH;
	imap_session_logged_in(s);
	mc_info("imap login session=%" PRIu64 " user=%s peer=%s", s->id, s->user,
	        mc_conn_peer_ip(s->conn));
	imap_capabilities(s, &caps);
	imap_command_done(s, "OK", caps.data, "Logged in");
	mc_strbuf_fini(&caps);
}

/* Check user/password (both borrowed) on a worker thread. */
static void
auth_start(struct imap_sess *s, const char *user, const char *password,
           size_t password_len)
{
	s->auth_req = node_auth_check(s->imap->set.auth,
	                              mc_cfgsync_directory(s->imap->set.sync), user,
	                              password, password_len, mc_conn_peer_ip(s->conn),
	                              auth_checked, s);
}

void
imap_cmd_login(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	const char *user, *pass;

	if (!s->tls) {
		imap_command_done(s, "NO", "PRIVACYREQUIRED",
		                  "LOGIN only over TLS: use STARTTLS first");
		return;
	}
	if (cmd->nargs != 2 || (user = imap_arg_string(s, &cmd->args[0])) == NULL ||
	    !mc_imap_token_astring(&cmd->args[1])) {
		imap_command_done(s, "BAD", NULL, "LOGIN takes a user name and a password");
		return;
	}
	pass = cmd->args[1].text;
	auth_start(s, user, pass, cmd->args[1].len);
}

/* ---- AUTHENTICATE PLAIN (RFC 4616) ------------------------------------ */

/* SASL messages are base64 on the wire (RFC 3501 6.2.2). -1 when b64
 * is not valid base64 or the message is too long. */
static int
b64_decode(const char *b64, size_t len, char *out, size_t size, size_t *n_r)
{
	size_t pad = 0;
	int n;

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

/* Decode a base64 SASL PLAIN response and log in with it. */
static void
plain_response(struct imap_sess *s, const char *b64, size_t len)
{
	char raw[4096];
	size_t n;
	const char *authz = raw, *authc, *pass, *end;

	if (len == 1 && b64[0] == '=') /* empty response */
		len = 0;
	if (b64_decode(b64, len, raw, sizeof(raw), &n) < 0) {
		imap_command_done(s, "BAD", NULL, "Invalid base64 in the SASL response");
		return;
	}
	end = raw + n;
	authc = memchr(authz, '\0', n);
	pass = authc != NULL ? memchr(authc + 1, '\0', (size_t)(end - authc - 1)) : NULL;
	if (authc == NULL || pass == NULL) {
		imap_command_done(s, "BAD", NULL, "Malformed PLAIN response");
	} else if (authz[0] != '\0' && strcasecmp(authz, authc + 1) != 0) {
		imap_command_done(s, "NO", "AUTHORIZATIONFAILED",
		                  "Logging in as another user is not allowed");
	} else {
		auth_start(s, authc + 1, pass + 1, (size_t)(end - pass - 1));
	}
	mc_wipe(raw, sizeof(raw));
}

/* ---- AUTHENTICATE SCRAM-SHA-256 (RFC 5802, RFC 7677) ------------------ */

static void
continuation(struct imap_sess *s, const char *data, size_t len)
{
	char b64[4 * (MC_SCRAM_MESSAGE_MAX / 3 + 2)];
	int n = EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)data, (int)len);

	imap_outf(s, "+ %.*s\r\n", n, b64);
	imap_flush(s, NULL);
	s->raw = IMAP_RAW_AUTHENTICATE;
	mc_conn_resume(s->conn);
}

static void
scram_end(struct imap_sess *s)
{
	mc_scram_server_free(&s->scram);
	s->scram_step = 0;
}

static void
scram_rejected(void *arg, const struct node_auth_result *res)
{
	struct imap_sess *s = arg;

	(void)res;
	s->auth_req = NULL;
	mc_info("imap login failed session=%" PRIu64 " mech=SCRAM-SHA-256 peer=%s", s->id,
	        mc_conn_peer_ip(s->conn));
	auth_failed(s);
}

/* One client message of the exchange (decoded). */
static void
scram_step(struct imap_sess *s, const char *msg, size_t len)
{
	const struct mc_directory *dir = mc_cfgsync_directory(s->imap->set.sync);
	const struct mc_dir_account *acc;
	const char *out, *err;
	size_t outlen;
	bool amb;

	switch (s->scram_step++) {
	case 0: /* client-first -> server-first */
		if (mc_scram_server_first(s->scram, msg, len, &err) < 0)
			break;
		acc = mc_directory_login(dir, mc_scram_server_username(s->scram), &amb);
		s->scram_account = acc != NULL ? acc->id : 0;
		if (mc_scram_server_challenge(s->scram, acc != NULL ? acc->scram_sha256 : NULL,
		                              &out, &outlen, &err) < 0)
			break;
		continuation(s, out, outlen);
		return;
	case 1: /* client-final -> server-final */
		if (mc_scram_server_final(s->scram, msg, len, &out, &outlen, &err) < 0 ||
		    s->scram_account == 0)
			break;
		continuation(s, out, outlen);
		return;
	default: { /* the client's empty answer to server-final */
		struct node_auth_result res = {.ok = true, .account_id = s->scram_account};

		/* The account may have gone since the first step. */
		acc = mc_directory_login(dir, mc_scram_server_username(s->scram), &amb);
		if (acc == NULL || acc->id != s->scram_account || len != 0)
			break;
		res.shard = acc->shard;
		res.address = acc->address;
		scram_end(s);
		auth_checked(s, &res);
		return;
	}
	}
	if (mc_scram_server_failure(s->scram) != MC_SCRAM_FAIL_AUTH &&
	    mc_scram_server_failure(s->scram) != MC_SCRAM_FAIL_NONE) {
		scram_end(s);
		imap_command_done(s, "BAD", NULL, "Malformed SCRAM message");
		return;
	}
	scram_end(s);
	s->auth_req = node_auth_reject(s->imap->set.auth, mc_conn_peer_ip(s->conn),
	                               scram_rejected, s);
}

static void
sasl_response(struct imap_sess *s, const char *b64, size_t len)
{
	char msg[MC_SCRAM_MESSAGE_MAX + 4];
	size_t n;

	if (s->scram == NULL) {
		plain_response(s, b64, len);
		return;
	}
	if (b64_decode(b64, len, msg, sizeof(msg), &n) < 0) {
		scram_end(s);
		imap_command_done(s, "BAD", NULL, "Invalid base64 in the SASL response");
		return;
	}
	scram_step(s, msg, n);
	mc_wipe(msg, sizeof(msg));
}

void
imap_authenticate_line(struct imap_sess *s, const char *line, size_t len)
{
	s->raw = IMAP_RAW_NONE;
	if (len == 1 && line[0] == '*') {
		scram_end(s);
		imap_command_done(s, "BAD", NULL, "AUTHENTICATE cancelled");
		return;
	}
	sasl_response(s, line, len);
}

void
imap_cmd_authenticate(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	if (!s->tls) {
		imap_command_done(s, "NO", "PRIVACYREQUIRED",
		                  "AUTHENTICATE only over TLS: use STARTTLS first");
		return;
	}
	if (cmd->nargs < 1 || cmd->args[0].type != MC_IMAP_ATOM || cmd->nargs > 2) {
		imap_command_done(s, "BAD", NULL, "AUTHENTICATE takes a mechanism");
		return;
	}
	if (mc_imap_token_is(&cmd->args[0], "SCRAM-SHA-256")) {
		s->scram = mc_scram_server_new();
		s->scram_step = 0;
	} else if (!mc_imap_token_is(&cmd->args[0], "PLAIN")) {
		imap_command_done(s, "NO", "CANNOT",
		                  "Unsupported mechanism (PLAIN, SCRAM-SHA-256)");
		return;
	}
	if (cmd->nargs == 2) { /* SASL-IR */
		sasl_response(s, cmd->args[1].text, cmd->args[1].len);
		return;
	}
	s->raw = IMAP_RAW_AUTHENTICATE;
	imap_outs(s, "+ \r\n");
	imap_flush(s, NULL);
	mc_conn_resume(s->conn);
}
