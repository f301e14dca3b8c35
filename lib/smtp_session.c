/* What each SMTP/LMTP command does (see smtp_server.h): the command table
 * {verb, check, proceed} with the sequencing rules of RFC 5321 (and RFC
 * 2033 for LMTP), the engine's own checks on ESMTP parameters against what
 * was advertised, the policy requests and what their replies do to the
 * session (banner, EHLO extension list, transaction, recipients, 354,
 * per-recipient LMTP replies), the DATA phase, STARTTLS with the discard
 * of pipelined plaintext, and the AUTH exchange. Session lifetime, input
 * and reply formatting are in smtp_server.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "smtp_server_private.h"
#include "tls.h"

#define EXT(s, bit) (((s)->server->set.extensions & (bit)) != 0)
#define POLICY(s) (&(s)->server->policy)
#define CTX(s) ((s)->server->ctx)

static bool
is_lmtp(const struct mc_smtp_session *s)
{
	return s->server->set.mode == MC_SMTP_MODE_LMTP;
}

static bool
in_txn(const struct mc_smtp_session *s)
{
	return s->state == SMTP_S_MAIL || s->state == SMTP_S_RCPT;
}

static const char *
default_text(unsigned code)
{
	return code / 100 == 4 ? "Temporary failure, try again later"
	                       : "Rejected";
}

/* ---- connect and TLS ----------------------------------------------------- */

static void
session_connect(struct mc_smtp_session *s)
{
	smtp_request_begin(s, SMTP_REQ_CONNECT, 1);
	if (POLICY(s)->connect != NULL)
		POLICY(s)->connect(s, CTX(s));
	else
		mc_smtp_session_accept(s);
	smtp_run(s);
}

static void
complete_connect(struct mc_smtp_session *s, unsigned code, const char *text)
{
	const char *host = s->server->hostname;
	char buf[SMTP_REPLY_MAX];

	s->banner_sent = true;
	if (code == 0 || code / 100 == 2) {
		snprintf(buf, sizeof(buf), "%s %s", host,
		         text != NULL ? text
		         : is_lmtp(s) ? "LMTP ready"
		                      : "ESMTP ready");
		smtp_reply(s, 220, NULL, buf);
		smtp_set_state(s, SMTP_S_GREETED);
		return;
	}
	if (text == NULL)
		text = code / 100 == 5 ? "Service refused" : "Try again later";
	mc_info("smtp session=%s refused at connect code=%u", s->id, code);
	if (code / 100 == 4) {
		smtp_close(s, 421, NULL, text);
		return;
	}
	/* RFC 5321 3.1: keep the connection and answer 503 until QUIT, so
	 * the client does not just retry at once. */
	snprintf(buf, sizeof(buf), "%s %s", host, text);
	smtp_reply(s, 554, NULL, buf);
	smtp_set_state(s, SMTP_S_REFUSED);
}

/* Forget everything learnt before TLS (RFC 3207 4.2). */
static void
reset_after_tls(struct mc_smtp_session *s)
{
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	s->authenticated = false;
}

static void
tls_done(struct mc_conn *conn, void *ctx, int status, const char *error)
{
	struct mc_smtp_session *s = ctx;
	const struct mc_tls *tls = mc_conn_tls(conn);

	if (status < 0 || tls == NULL) {
		mc_info("smtp session=%s TLS handshake failed: %s", s->id,
		        error != NULL ? error : "?");
		smtp_close(s, 0, NULL, NULL);
		return;
	}
	s->tls = true;
	snprintf(s->tls_version, sizeof(s->tls_version), "%s",
	         mc_tls_version(tls));
	snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s",
	         mc_tls_cipher(tls));
	s->tls_bits = mc_tls_cipher_bits(tls);
	mc_info("smtp session=%s tls=%s cipher=%s", s->id, s->tls_version,
	        s->tls_cipher);
	reset_after_tls(s);
	if (!s->banner_sent) { /* implicit TLS */
		smtp_set_state(s, SMTP_S_CONNECT);
		session_connect(s);
		return;
	}
	smtp_set_state(s, SMTP_S_GREETED);
	smtp_run(s);
}

static void
start_tls(struct mc_smtp_session *s)
{
	const char *error;

	smtp_set_state(s, SMTP_S_TLS);
	if (mc_conn_start_tls(s->conn, s->server->set.tls, NULL, tls_done,
	                      &error) < 0) {
		mc_warn("smtp session=%s STARTTLS: %s", s->id, error);
		smtp_close(s, 0, NULL, NULL);
	}
}

void
smtp_session_start(struct mc_smtp_session *s)
{
	if (s->server->set.implicit_tls) {
		start_tls(s);
		return;
	}
	session_connect(s);
}

/* ---- HELO / EHLO / LHLO -------------------------------------------------- */

static void
ehlo_reply(struct mc_smtp_session *s)
{
	const struct mc_smtp_server_settings *set = &s->server->set;
	char size[32], auth[SMTP_REPLY_MAX];
	const char *lines[12];
	size_t n = 0;

	snprintf(size, sizeof(size), "SIZE %llu",
	         (unsigned long long)set->max_message);
	lines[n++] = s->server->hostname;
	if (EXT(s, MC_SMTP_EXT_PIPELINING))
		lines[n++] = "PIPELINING";
	lines[n++] = size;
	if (EXT(s, MC_SMTP_EXT_8BITMIME))
		lines[n++] = "8BITMIME";
	if (EXT(s, MC_SMTP_EXT_SMTPUTF8))
		lines[n++] = "SMTPUTF8";
	if (EXT(s, MC_SMTP_EXT_ENHANCEDSTATUSCODES))
		lines[n++] = "ENHANCEDSTATUSCODES";
	if (EXT(s, MC_SMTP_EXT_DSN))
		lines[n++] = "DSN";
	if (set->tls != NULL && !s->tls)
		lines[n++] = "STARTTLS";
	if (POLICY(s)->auth != NULL && set->auth_mechanisms != NULL &&
	    (s->tls || set->auth_without_tls)) {
		snprintf(auth, sizeof(auth), "AUTH %s", set->auth_mechanisms);
		lines[n++] = auth;
	}
	/* RFC 2034: no enhanced codes in the EHLO reply. */
	for (size_t i = 0; i < n; i++)
		smtp_reply_line(s, 250, i + 1 < n, NULL, lines[i]);
}

static bool
check_hello(struct mc_smtp_session *s)
{
	bool lhlo = s->cmd.verb == MC_SMTP_LHLO;

	/* RFC 2033 4.1: LMTP has LHLO and no HELO/EHLO. */
	if (lhlo != is_lmtp(s)) {
		smtp_bad_command(s, 500, "5.5.1", "Command unrecognized");
		return false;
	}
	return true;
}

static void
cmd_hello(struct mc_smtp_session *s)
{
	/* RFC 5321 4.1.4: a new EHLO resets like RSET does. */
	smtp_txn_end(s, MC_SMTP_TXN_RESET);
	free(s->helo);
	s->helo = NULL;
	if (s->state != SMTP_S_GREETED)
		smtp_set_state(s, SMTP_S_GREETED);
	smtp_request_begin(s, SMTP_REQ_HELO, 1);
	if (POLICY(s)->helo != NULL)
		POLICY(s)->helo(s, CTX(s), s->cmd.arg);
	else
		mc_smtp_session_accept(s);
}

static void
complete_helo(struct mc_smtp_session *s, unsigned code, const char *enhanced,
              const char *text)
{
	if (code != 0 && code / 100 != 2) {
		smtp_reply(s, code, enhanced,
		           text != NULL ? text : default_text(code));
		return;
	}
	s->helo = mc_strdup(s->cmd.arg);
	s->esmtp = s->cmd.verb != MC_SMTP_HELO;
	smtp_set_state(s, SMTP_S_READY);
	if (s->esmtp)
		ehlo_reply(s);
	else
		smtp_reply(s, 250, NULL, s->server->hostname);
}

/* ---- MAIL ---------------------------------------------------------------- */

static bool
check_mail(struct mc_smtp_session *s)
{
	if (s->state == SMTP_S_GREETED) {
		smtp_bad_command(s, 503, "5.5.1",
		                 is_lmtp(s) ? "Error: send LHLO first"
		                            : "Error: send HELO/EHLO first");
		return false;
	}
	if (in_txn(s)) {
		smtp_bad_command(s, 503, "5.5.1", "Error: nested MAIL command");
		return false;
	}
	return true;
}

/* Parameters are only usable when advertised (RFC 5321 4.1.1.11). Returns
 * the complaint, or NULL. */
static const char *
mail_params_refused(struct mc_smtp_session *s, const struct mc_smtp_params *p)
{
	bool any = p->has_size || p->body != MC_SMTP_BODY_NONE || p->smtputf8 ||
	           p->ret != MC_SMTP_RET_NONE || p->envid != NULL ||
	           p->auth != NULL;

	if (any && !s->esmtp)
		return "Parameters need EHLO";
	if (p->body == MC_SMTP_BODY_8BITMIME && !EXT(s, MC_SMTP_EXT_8BITMIME))
		return "BODY=8BITMIME not supported";
	if (p->body == MC_SMTP_BODY_BINARYMIME)
		return "BODY=BINARYMIME not supported";
	if (p->smtputf8 && !EXT(s, MC_SMTP_EXT_SMTPUTF8))
		return "SMTPUTF8 not supported";
	if ((p->ret != MC_SMTP_RET_NONE || p->envid != NULL) &&
	    !EXT(s, MC_SMTP_EXT_DSN))
		return "DSN not supported";
	if (p->auth != NULL && POLICY(s)->auth == NULL)
		return "AUTH not supported";
	return NULL;
}

static struct smtp_txn *
txn_new(const struct mc_smtp_path *from, const struct mc_smtp_params *p)
{
	struct mc_pool *pool = mc_pool_new();
	struct smtp_txn *txn = mc_pool_alloc(pool, sizeof(*txn));
	struct mc_smtp_txn *t = &txn->pub;

	txn->pool = pool;
	t->mail_from = mc_pool_strdup(pool, from->mailbox);
	t->null_sender = from->null;
	t->has_size = p->has_size;
	t->declared_size = p->size;
	t->body = p->body;
	t->smtputf8 = p->smtputf8;
	t->ret = p->ret;
	t->envid = p->envid ? mc_pool_strdup(pool, p->envid) : NULL;
	t->auth = p->auth ? mc_pool_strdup(pool, p->auth) : NULL;
	return txn;
}

static void
cmd_mail(struct mc_smtp_session *s)
{
	const struct mc_smtp_params *p = &s->cmd.params;
	const char *why = mail_params_refused(s, p);

	if (why != NULL) {
		smtp_bad_command(s, 555, "5.5.4", why);
		return;
	}
	/* RFC 1870 6.1: refuse at once what cannot fit. */
	if (p->has_size && p->size > s->server->set.max_message) {
		smtp_reply(s, 552, "5.3.4",
		           "Message size exceeds fixed maximum message size");
		return;
	}
	s->txn = txn_new(&s->cmd.path, p);
	smtp_request_begin(s, SMTP_REQ_MAIL, 1);
	if (POLICY(s)->mail != NULL)
		POLICY(s)->mail(s, CTX(s), &s->cmd.path, p);
	else
		mc_smtp_session_accept(s);
}

static void
complete_mail(struct mc_smtp_session *s, unsigned code, const char *enhanced,
              const char *text)
{
	if (code == 0 || code / 100 == 2) {
		smtp_set_state(s, SMTP_S_MAIL);
		smtp_reply(s, code ? code : 250, code ? enhanced : "2.1.0",
		           text != NULL ? text : "Ok");
		return;
	}
	/* Never begun: no txn_end. */
	smtp_txn_free(s->txn);
	s->txn = NULL;
	smtp_reply(s, code, enhanced, text != NULL ? text : default_text(code));
}

/* ---- RCPT ---------------------------------------------------------------- */

static bool
check_rcpt(struct mc_smtp_session *s)
{
	if (!in_txn(s)) {
		smtp_bad_command(s, 503, "5.5.1", "Error: need MAIL command");
		return false;
	}
	return true;
}

static void
cmd_rcpt(struct mc_smtp_session *s)
{
	const struct mc_smtp_params *p = &s->cmd.params;

	if ((p->notify != 0 || p->orcpt != NULL) && !EXT(s, MC_SMTP_EXT_DSN)) {
		smtp_bad_command(s, 555, "5.5.4", "DSN not supported");
		return;
	}
	/* RFC 5321 4.5.3.1.10: 452, and the client sends the rest in
	 * another transaction. */
	if (s->txn->pub.rcpt_count >= s->server->set.max_recipients) {
		smtp_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	smtp_request_begin(s, SMTP_REQ_RCPT, 1);
	if (POLICY(s)->rcpt != NULL)
		POLICY(s)->rcpt(s, CTX(s), &s->cmd.path, p);
	else
		mc_smtp_session_accept(s);
}

static void
txn_add_rcpt(struct smtp_txn *txn, const struct mc_smtp_path *path,
             const struct mc_smtp_params *p)
{
	struct mc_smtp_txn *t = &txn->pub;
	struct mc_smtp_rcpt *r;
	char *mailbox;

	if (t->rcpt_count == txn->rcpt_cap) {
		size_t cap = txn->rcpt_cap ? txn->rcpt_cap * 2 : 8;
		struct mc_smtp_rcpt *a =
		        mc_pool_alloc(txn->pool, cap * sizeof(*a));

		if (t->rcpt_count > 0)
			memcpy(a, txn->rcpts, t->rcpt_count * sizeof(*a));
		txn->rcpts = a;
		txn->rcpt_cap = cap;
		t->rcpts = a;
	}
	r = &txn->rcpts[t->rcpt_count++];
	mailbox = mc_pool_strdup(txn->pool, path->mailbox);
	r->mailbox = mailbox;
	r->domain = path->postmaster ? mailbox + strlen(mailbox)
	                             : mailbox + path->local_len + 1;
	r->notify = p->notify;
	r->orcpt_type =
	        p->orcpt_type ? mc_pool_strdup(txn->pool, p->orcpt_type) : NULL;
	r->orcpt = p->orcpt ? mc_pool_strdup(txn->pool, p->orcpt) : NULL;
	r->utf8 = path->utf8;
}

static void
complete_rcpt(struct mc_smtp_session *s, unsigned code, const char *enhanced,
              const char *text)
{
	if (code == 0 || code / 100 == 2) {
		txn_add_rcpt(s->txn, &s->cmd.path, &s->cmd.params);
		smtp_set_state(s, SMTP_S_RCPT);
		smtp_reply(s, code ? code : 250, code ? enhanced : "2.1.5",
		           text != NULL ? text : "Ok");
		return;
	}
	smtp_reply(s, code, enhanced, text != NULL ? text : default_text(code));
}

/* ---- DATA ---------------------------------------------------------------- */

static bool
check_data(struct mc_smtp_session *s)
{
	if (!in_txn(s)) {
		smtp_bad_command(s, 503, "5.5.1", "Error: need MAIL command");
		return false;
	}
	if (s->state == SMTP_S_MAIL) {
		/* RFC 5321 3.3 (554) and RFC 2033 4.2 (503 for LMTP). Not
		 * counted as an error: a pipelining client whose recipients
		 * were all refused sends DATA regardless. */
		smtp_reply(s, is_lmtp(s) ? 503 : 554, "5.5.1",
		           "Error: no valid recipients");
		return false;
	}
	return true;
}

static void
cmd_data(struct mc_smtp_session *s)
{
	smtp_request_begin(s, SMTP_REQ_DATA_START, 1);
	if (POLICY(s)->data_start != NULL)
		POLICY(s)->data_start(s, CTX(s));
	else
		mc_smtp_session_accept(s);
}

static void
data_sink(void *ctx, const void *data, size_t len)
{
	struct mc_smtp_session *s = ctx;

	if (POLICY(s)->data_content != NULL)
		POLICY(s)->data_content(s, CTX(s), data, len);
}

static void
complete_data_start(struct mc_smtp_session *s, unsigned code,
                    const char *enhanced, const char *text)
{
	if (code == 0 || code / 100 == 2 || code / 100 == 3) {
		mc_smtp_data_init(&s->data, &s->limits, data_sink, s);
		smtp_set_state(s, SMTP_S_DATA);
		smtp_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
		return;
	}
	smtp_reply(s, code, enhanced, text != NULL ? text : default_text(code));
	smtp_set_state(s, SMTP_S_READY);
	smtp_txn_end(s, MC_SMTP_TXN_REFUSED);
}

static void
data_finished(struct mc_smtp_session *s)
{
	struct mc_smtp_txn *t = &s->txn->pub;
	size_t n = is_lmtp(s) ? t->rcpt_count : 1;

	t->size = s->data.size;
	t->bare_lf = s->data.bare_lf;
	t->eightbit = s->data.eightbit;
	t->nul = s->data.nul;
	smtp_set_state(s, SMTP_S_READY);
	if (s->data.too_big) {
		mc_info("smtp session=%s message too big size=%llu", s->id,
		        (unsigned long long)t->size);
		for (size_t i = 0; i < n; i++)
			smtp_reply(s, 552, "5.3.4",
			           "Message size exceeds fixed maximum "
			           "message size");
		smtp_txn_end(s, MC_SMTP_TXN_TOO_BIG);
		return;
	}
	smtp_request_begin(s, SMTP_REQ_DATA_END, (unsigned)n);
	if (POLICY(s)->data_end != NULL) {
		POLICY(s)->data_end(s, CTX(s));
		return;
	}
	for (size_t i = 0; i < n && s->req == SMTP_REQ_DATA_END; i++)
		mc_smtp_session_accept(s);
}

void
smtp_session_data(struct mc_smtp_session *s, const void *in, size_t len,
                  size_t *used_r)
{
	if (mc_smtp_data_parse(&s->data, in, len, used_r) == 1)
		data_finished(s);
}

static void
complete_data_end(struct mc_smtp_session *s, bool last, unsigned code,
                  const char *enhanced, const char *text)
{
	if (code == 0)
		smtp_reply(s, 250, "2.0.0", text != NULL ? text : "Ok");
	else
		smtp_reply(s, code, enhanced,
		           text != NULL      ? text
		           : code / 100 == 2 ? "Ok"
		                             : default_text(code));
	if (last && s->state != SMTP_S_CLOSING)
		smtp_txn_end(s, MC_SMTP_TXN_DONE);
}

/* ---- small commands ------------------------------------------------------ */

static void
cmd_rset(struct mc_smtp_session *s)
{
	smtp_txn_end(s, MC_SMTP_TXN_RESET);
	if (in_txn(s))
		smtp_set_state(s, SMTP_S_READY);
	smtp_reply(s, 250, "2.0.0", "Ok");
}

static void
cmd_noop(struct mc_smtp_session *s)
{
	smtp_reply(s, 250, "2.0.0", "Ok");
}

static void
cmd_vrfy(struct mc_smtp_session *s)
{
	/* RFC 5321 3.5.3: never confirm or deny a user. */
	smtp_reply(s, 252, "2.1.5",
	           "Cannot VRFY user, but will accept message and attempt "
	           "delivery");
}

static void
cmd_help(struct mc_smtp_session *s)
{
	smtp_reply(s, 214, "2.0.0",
	           is_lmtp(s) ? "Commands: LHLO MAIL RCPT DATA RSET NOOP "
	                        "QUIT VRFY STARTTLS"
	                      : "Commands: HELO EHLO MAIL RCPT DATA RSET "
	                        "NOOP QUIT VRFY STARTTLS");
}

static void
cmd_quit(struct mc_smtp_session *s)
{
	smtp_close(s, 221, "2.0.0", "Bye");
}

static void
cmd_not_implemented(struct mc_smtp_session *s)
{
	smtp_bad_command(s, 502, "5.5.1", "Error: command not implemented");
}

/* ---- STARTTLS ------------------------------------------------------------ */

static bool
check_starttls(struct mc_smtp_session *s)
{
	if (s->tls) {
		smtp_bad_command(s, 503, "5.5.1", "Error: TLS already active");
		return false;
	}
	if (s->server->set.tls == NULL) {
		smtp_reply(s, 454, "4.7.0", "TLS not available");
		return false;
	}
	if (in_txn(s)) {
		smtp_bad_command(s, 503, "5.5.1",
		                 "Error: MAIL transaction in progress");
		return false;
	}
	return true;
}

static void
cmd_starttls(struct mc_smtp_session *s)
{
	size_t dropped;

	smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
	if (s->state == SMTP_S_CLOSING)
		return;
	/* Anything after STARTTLS was sent in clear before the handshake
	 * and must not be taken as if it came over TLS (CVE-2011-0411). */
	dropped = smtp_input_discard(s);
	if (dropped > 0)
		mc_warn("smtp session=%s discarded %zu bytes pipelined after "
		        "STARTTLS",
		        s->id, dropped);
	start_tls(s);
}

/* ---- AUTH ---------------------------------------------------------------- */

static bool
check_auth(struct mc_smtp_session *s)
{
	const struct mc_smtp_server_settings *set = &s->server->set;

	if (POLICY(s)->auth == NULL || set->auth_mechanisms == NULL) {
		smtp_bad_command(s, 502, "5.5.1",
		                 "Error: command not implemented");
		return false;
	}
	if (!s->tls && !set->auth_without_tls) {
		smtp_bad_command(s, 530, "5.7.0",
		                 "Must issue a STARTTLS command first");
		return false;
	}
	if (s->state != SMTP_S_READY || !s->esmtp) {
		smtp_bad_command(s, 503, "5.5.1",
		                 in_txn(s)
		                         ? "Error: MAIL transaction in progress"
		                         : "Error: send EHLO first");
		return false;
	}
	if (s->authenticated) {
		smtp_bad_command(s, 503, "5.5.1",
		                 "Error: already authenticated");
		return false;
	}
	return true;
}

static void
cmd_auth(struct mc_smtp_session *s)
{
	free(s->auth_mech);
	s->auth_mech = mc_strdup(s->cmd.arg);
	smtp_request_begin(s, SMTP_REQ_AUTH, 1);
	POLICY(s)->auth(s, CTX(s), s->auth_mech, s->cmd.auth_initial);
}

/* A line of the SASL exchange (after a 334). */
static void
auth_response(struct mc_smtp_session *s, const struct mc_smtp_line *line)
{
	if (strcmp(line->text, "*") == 0) {
		smtp_set_state(s, SMTP_S_READY);
		smtp_bad_command(s, 501, "5.0.0", "Authentication cancelled");
		return;
	}
	memcpy(s->cmd_line, line->text, line->len + 1);
	mc_wipe(line->text, line->len);
	smtp_request_begin(s, SMTP_REQ_AUTH, 1);
	POLICY(s)->auth(s, CTX(s), NULL, s->cmd_line);
}

static void
complete_auth(struct mc_smtp_session *s, unsigned code, const char *enhanced,
              const char *text)
{
	mc_wipe(s->cmd_line, s->lines.max_line + 1);
	if (code / 100 == 3) {
		/* The challenge is base64 text; "334 " + text only. */
		smtp_set_state(s, SMTP_S_AUTH);
		smtp_reply(s, 334, NULL, text != NULL ? text : "");
		return;
	}
	smtp_set_state(s, SMTP_S_READY);
	if (code == 0 || code / 100 == 2) {
		s->authenticated = true;
		mc_info("smtp session=%s authenticated mechanism=%s", s->id,
		        s->auth_mech);
		smtp_reply(s, 235, "2.7.0", "Authentication successful");
		return;
	}
	smtp_bad_command(s, code, enhanced,
	                 text != NULL ? text : "Authentication failed");
}

/* ---- dispatch ------------------------------------------------------------ */

struct command {
	enum mc_smtp_verb verb;
	bool (*check)(struct mc_smtp_session *s); /* sends its refusal */
	void (*proceed)(struct mc_smtp_session *s);
};

static const struct command commands[] = {
        {MC_SMTP_HELO, check_hello, cmd_hello},
        {MC_SMTP_EHLO, check_hello, cmd_hello},
        {MC_SMTP_LHLO, check_hello, cmd_hello},
        {MC_SMTP_MAIL, check_mail, cmd_mail},
        {MC_SMTP_RCPT, check_rcpt, cmd_rcpt},
        {MC_SMTP_DATA, check_data, cmd_data},
        {MC_SMTP_BDAT, NULL, cmd_not_implemented},
        {MC_SMTP_RSET, NULL, cmd_rset},
        {MC_SMTP_NOOP, NULL, cmd_noop},
        {MC_SMTP_QUIT, NULL, cmd_quit},
        {MC_SMTP_VRFY, NULL, cmd_vrfy},
        {MC_SMTP_EXPN, NULL, cmd_not_implemented},
        {MC_SMTP_HELP, NULL, cmd_help},
        {MC_SMTP_STARTTLS, check_starttls, cmd_starttls},
        {MC_SMTP_AUTH, check_auth, cmd_auth},
};

void
smtp_session_line(struct mc_smtp_session *s, const struct mc_smtp_line *line)
{
	const struct mc_smtp_reply *err;
	unsigned flags = 0;

	if (s->state == SMTP_S_AUTH) {
		auth_response(s, line);
		return;
	}
	memcpy(s->cmd_line, line->text, line->len + 1);
	if (s->txn != NULL && s->txn->pub.smtputf8)
		flags |= MC_SMTP_PARSE_UTF8;
	if (mc_smtp_cmd_parse(&s->cmd, s->cmd_line, flags, &err) < 0) {
		mc_debug("smtp session=%s cmd=%s error=%u", s->id,
		         mc_smtp_verb_name(s->cmd.verb), err->code);
		smtp_bad_command(s, err->code, err->enhanced, err->text);
		return;
	}
	mc_debug("smtp session=%s cmd=%s", s->id,
	         mc_smtp_verb_name(s->cmd.verb));
	if (s->state == SMTP_S_REFUSED && s->cmd.verb != MC_SMTP_QUIT) {
		smtp_bad_command(s, 503, "5.5.1",
		                 "Error: service refused, please QUIT");
		return;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *c = &commands[i];

		if (c->verb != s->cmd.verb)
			continue;
		if (c->check == NULL || c->check(s))
			c->proceed(s);
		return;
	}
	smtp_bad_command(s, 500, "5.5.1", "Command unrecognized");
}

void
smtp_session_complete(struct mc_smtp_session *s, enum smtp_req req, bool last,
                      unsigned code, const char *enhanced, const char *text)
{
	switch (req) {
	case SMTP_REQ_CONNECT:
		complete_connect(s, code, text);
		break;
	case SMTP_REQ_HELO:
		complete_helo(s, code, enhanced, text);
		break;
	case SMTP_REQ_MAIL:
		complete_mail(s, code, enhanced, text);
		break;
	case SMTP_REQ_RCPT:
		complete_rcpt(s, code, enhanced, text);
		break;
	case SMTP_REQ_DATA_START:
		complete_data_start(s, code, enhanced, text);
		break;
	case SMTP_REQ_DATA_END:
		complete_data_end(s, last, code, enhanced, text);
		break;
	case SMTP_REQ_AUTH:
		complete_auth(s, code, enhanced, text);
		break;
	default:
		break;
	}
	/* The policy may end the session with a 421 to any request. */
	if (code == 421 && s->state != SMTP_S_CLOSING)
		smtp_close(s, 0, NULL, NULL);
}
