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
#include "mem.h"

void
imap_capabilities(struct imap_sess *s, struct mc_strbuf *b)
{
	mc_strbuf_adds(b, "CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE");
	if (s->state == IMAP_NOTAUTH) {
		if (!s->tls)
			mc_strbuf_adds(b, " STARTTLS LOGINDISABLED");
		else
			mc_strbuf_adds(b, " AUTH=PLAIN");
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

	if (store == NULL) {
		ij->result = NODE_STORE_TEMPFAIL;
		snprintf(ij->error, sizeof(ij->error), "%s", error);
		return;
	}
	ij->result = node_store_ensure_mailboxes(store, ij->s->account_id,
	                                         ij->s->shard, *epoch, &err);
	if (ij->result != NODE_STORE_OK)
		snprintf(ij->error, sizeof(ij->error), "%s", err ? err : "");
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

/* Decode a base64 SASL response and log in with it. */
static void
plain_response(struct imap_sess *s, const char *b64, size_t len)
{
	unsigned char *raw;
	int n;
	size_t pad = 0;
	const char *authz, *authc, *pass, *end;

	if (len == 1 && b64[0] == '=') /* empty response */
		len = 0;
	if (len % 4 != 0 || len > 4 * 1024) {
		imap_command_done(s, "BAD", NULL, "Invalid base64 in the SASL response");
		return;
	}
	raw = mc_malloc(len + 1);
	n = len > 0 ? EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len) : 0;
	if (n < 0) {
		free(raw);
		imap_command_done(s, "BAD", NULL, "Invalid base64 in the SASL response");
		return;
	}
	while (pad < 2 && len > pad && b64[len - 1 - pad] == '=')
		pad++;
	n -= (int)pad;
	authz = (const char *)raw;
	end = (const char *)raw + n;
	authc = memchr(authz, '\0', (size_t)n);
	pass = authc != NULL ? memchr(authc + 1, '\0', (size_t)(end - authc - 1)) : NULL;
	if (authc == NULL || pass == NULL) {
		mc_wipe(raw, len);
		free(raw);
		imap_command_done(s, "BAD", NULL, "Malformed PLAIN response");
		return;
	}
	authc++;
	pass++;
	if (authz[0] != '\0' && strcasecmp(authz, authc) != 0) {
		mc_wipe(raw, len);
		free(raw);
		imap_command_done(s, "NO", "AUTHORIZATIONFAILED",
		                  "Logging in as another user is not allowed");
		return;
	}
	auth_start(s, authc, pass, (size_t)(end - pass));
	mc_wipe(raw, len);
	free(raw);
}

void
imap_authenticate_line(struct imap_sess *s, const char *line, size_t len)
{
	s->raw = IMAP_RAW_NONE;
	if (len == 1 && line[0] == '*') {
		imap_command_done(s, "BAD", NULL, "AUTHENTICATE cancelled");
		return;
	}
	plain_response(s, line, len);
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
	if (!mc_imap_token_is(&cmd->args[0], "PLAIN")) {
		imap_command_done(s, "NO", "CANNOT", "Unsupported mechanism (use PLAIN)");
		return;
	}
	if (cmd->nargs == 2) { /* SASL-IR */
		plain_response(s, cmd->args[1].text, cmd->args[1].len);
		return;
	}
	s->raw = IMAP_RAW_AUTHENTICATE;
	imap_outs(s, "+ \r\n");
	imap_flush(s, NULL);
	mc_conn_resume(s->conn);
}
