/* The MX policy; see mx.h. A message's way: RCPT resolves and expands
 * each recipient against the directory; DATA opens a queue file (worker)
 * and writes our Received header; content is appended as it arrives (page
 * cache writes; the engine cannot pause for an asynchronous sink); the
 * end of data commits (fsync, rename, on a worker) and only then answers
 * 250 and hands the envelope to delivery. */
#include "mx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mem.h"
#include "received.h"
#include "smtp_server.h"

/* Alias expansion per RCPT: at most this many local and foreign targets. */
#define MX_RESOLVE_MAX 256

struct relay_mx {
	uv_loop_t *loop;
	struct relay_mx_settings set;
	char *hostname;
	struct mc_smtp_server *server;
	void (*done)(void *arg);
	void *done_arg;
};

struct mx_sess {
	struct relay_mx *mx;
	struct mc_smtp_session *session;
	char **rcpts; /* final recipients, deduplicated */
	size_t rcpt_count, rcpt_cap;
	struct relay_queue_msg *msg; /* while receiving */
	struct relay_queue_envelope *env; /* while committing */
	char id[RELAY_QUEUE_ID_SIZE];
	bool write_failed;
	char error[256];
	uv_work_t work;
};

static void
rcpts_clear(struct mx_sess *ms)
{
	for (size_t i = 0; i < ms->rcpt_count; i++)
		free(ms->rcpts[i]);
	free(ms->rcpts);
	ms->rcpts = NULL;
	ms->rcpt_count = ms->rcpt_cap = 0;
}

/* Add a final recipient unless already there. false when over the limit. */
static bool
rcpt_add(struct mx_sess *ms, const char *address)
{
	unsigned max = ms->mx->set.max_expanded ? ms->mx->set.max_expanded : 1000;

	for (size_t i = 0; i < ms->rcpt_count; i++)
		if (strcasecmp(ms->rcpts[i], address) == 0)
			return true;
	if (ms->rcpt_count >= max)
		return false;
	if (ms->rcpt_count == ms->rcpt_cap) {
		ms->rcpt_cap = ms->rcpt_cap ? ms->rcpt_cap * 2 : 8;
		ms->rcpts = mc_realloc(ms->rcpts, ms->rcpt_cap * sizeof(*ms->rcpts));
	}
	ms->rcpts[ms->rcpt_count++] = mc_strdup(address);
	return true;
}

static void
on_connect(struct mc_smtp_session *s, void *ctx)
{
	struct mx_sess *ms = mc_malloc(sizeof(*ms));

	ms->mx = ctx;
	ms->session = s;
	mc_smtp_session_set_user(s, ms);
	mc_smtp_session_accept(s);
}

static void
on_rcpt(struct mc_smtp_session *s, void *ctx, const struct mc_smtp_path *to,
        const struct mc_smtp_params *params)
{
	struct relay_mx *mx = ctx;
	struct mx_sess *ms = mc_smtp_session_user(s);
	const struct mc_directory *dir = mx->set.directory(mx->set.ctx);
	const struct mc_dir_account *accs[MX_RESOLVE_MAX];
	const char *foreign[MX_RESOLVE_MAX];
	size_t n, nf = 0;

	(void)params;
	if (to->postmaster) {
		/* RFC 5321 4.5.1 wants <Postmaster> accepted; without a domain
		 * we cannot tell whose. Name the way that works. */
		mc_smtp_session_reply(s, 550, "5.1.1", "Use postmaster@<domain>");
		return;
	}
	if (!mc_directory_has_domain(dir, to->domain)) {
		mc_smtp_session_reply(s, 554, "5.7.1", "Relay access denied");
		return;
	}
	n = mc_directory_resolve(dir, to->mailbox, accs, MX_RESOLVE_MAX, foreign,
	                         MX_RESOLVE_MAX, &nf);
	if (n == 0 && nf == 0) {
		mc_smtp_session_reply(s, 550, "5.1.1", "No such user here");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (!rcpt_add(ms, accs[i]->address))
			goto too_many;
	for (size_t i = 0; i < nf; i++)
		if (!rcpt_add(ms, foreign[i]))
			goto too_many;
	mc_smtp_session_accept(s);
	return;
too_many:
	mc_smtp_session_reply(s, 452, "4.5.3", "Too many recipients");
}

static void
begin_work(uv_work_t *w)
{
	struct mx_sess *ms = w->data;
	const char *err = NULL;

	if (relay_queue_begin(ms->mx->set.queue, &ms->msg, &err) < 0) {
		ms->msg = NULL;
		snprintf(ms->error, sizeof(ms->error), "%s", err);
	}
}

static void
begin_done(uv_work_t *w, int status)
{
	struct mx_sess *ms = w->data;
	char header[RELAY_RECEIVED_SIZE];
	const char *err = NULL;

	(void)status;
	if (ms->msg == NULL) {
		mc_error("queue begin failed session=%s error=\"%s\"",
		         mc_smtp_session_id(ms->session), ms->error);
		mc_smtp_session_reply(ms->session, 451, "4.3.0", "Queue unavailable, try again");
		return;
	}
	snprintf(ms->id, sizeof(ms->id), "%s", relay_queue_msg_id(ms->msg));
	relay_received_header(ms->session, ms->mx->hostname, ms->id,
	                      ms->rcpt_count == 1 ? ms->rcpts[0] : NULL, header,
	                      sizeof(header));
	if (relay_queue_append(ms->msg, header, strlen(header), &err) < 0) {
		ms->write_failed = true;
		snprintf(ms->error, sizeof(ms->error), "%s", err);
	}
	mc_smtp_session_accept(ms->session);
}

static void
on_data_start(struct mc_smtp_session *s, void *ctx)
{
	struct mx_sess *ms = mc_smtp_session_user(s);

	ms->write_failed = false;
	ms->error[0] = '\0';
	ms->work.data = ms;
	uv_queue_work(((struct relay_mx *)ctx)->loop, &ms->work, begin_work, begin_done);
}

static void
on_data_content(struct mc_smtp_session *s, void *ctx, const void *data,
                size_t len)
{
	struct mx_sess *ms = mc_smtp_session_user(s);
	const char *err = NULL;

	(void)ctx;
	if (ms->msg == NULL || ms->write_failed)
		return;
	if (relay_queue_append(ms->msg, data, len, &err) < 0) {
		ms->write_failed = true;
		snprintf(ms->error, sizeof(ms->error), "%s", err);
	}
}

static struct relay_queue_envelope *
envelope_of(struct mx_sess *ms)
{
	struct mc_smtp_session *s = ms->session;
	const struct mc_smtp_txn *txn = mc_smtp_session_txn(s);
	struct relay_queue_envelope *env = relay_queue_envelope_new();
	char tls[160] = "";

	relay_queue_str_set(&env->sender, txn->mail_from);
	relay_queue_str_set(&env->client.helo, mc_smtp_session_helo(s));
	relay_queue_str_set(&env->client.addr, mc_smtp_session_peer_ip(s));
	relay_queue_str_set(&env->client.proto, mc_smtp_session_protocol(s));
	if (mc_smtp_session_tls(s))
		snprintf(tls, sizeof(tls), "%s %s", mc_smtp_session_tls_version(s),
		         mc_smtp_session_tls_cipher(s));
	relay_queue_str_set(&env->client.tls, tls);
	env->body = txn->body == MC_SMTP_BODY_8BITMIME || txn->eightbit
	                    ? RELAY_QUEUE_BODY_8BITMIME
	                    : RELAY_QUEUE_BODY_7BIT;
	env->smtputf8 = txn->smtputf8;
	env->dsn_ret = txn->ret == MC_SMTP_RET_FULL   ? RELAY_QUEUE_RET_FULL
	               : txn->ret == MC_SMTP_RET_HDRS ? RELAY_QUEUE_RET_HDRS
	                                              : RELAY_QUEUE_RET_NONE;
	if (txn->envid != NULL)
		relay_queue_str_set(&env->dsn_envid, txn->envid);
	for (size_t i = 0; i < ms->rcpt_count; i++)
		relay_queue_envelope_add_rcpt(env, ms->rcpts[i]);
	return env;
}

static void
commit_work(uv_work_t *w)
{
	struct mx_sess *ms = w->data;
	const char *err = NULL;

	if (relay_queue_commit(&ms->msg, ms->env, &err) < 0) {
		snprintf(ms->error, sizeof(ms->error), "%s", err);
		relay_queue_envelope_free(&ms->env);
	}
}

static void
commit_done(uv_work_t *w, int status)
{
	struct mx_sess *ms = w->data;
	struct relay_mx *mx = ms->mx;
	char text[128];

	(void)status;
	if (ms->env == NULL) {
		mc_error("queue commit failed session=%s id=%s error=\"%s\"",
		         mc_smtp_session_id(ms->session), ms->id, ms->error);
		mc_smtp_session_reply(ms->session, 451, "4.3.0", "Queue write failed, try again");
		return;
	}
	mc_info("queued session=%s id=%s from=<%s> rcpts=%zu size=%llu",
	        mc_smtp_session_id(ms->session), ms->id, ms->env->sender,
	        ms->env->rcpt_count, (unsigned long long)ms->env->size);
	snprintf(text, sizeof(text), "Ok: queued as %s", ms->id);
	mc_smtp_session_reply(ms->session, 250, "2.0.0", text);
	mx->set.committed(ms->env, mx->set.ctx);
	ms->env = NULL;
}

static void
on_data_end(struct mc_smtp_session *s, void *ctx)
{
	struct mx_sess *ms = mc_smtp_session_user(s);

	if (ms->write_failed) {
		bool too_big = relay_queue_msg_too_big(ms->msg);

		mc_error("queue write failed session=%s id=%s error=\"%s\"",
		         mc_smtp_session_id(s), ms->id, ms->error);
		relay_queue_abort(&ms->msg);
		if (too_big)
			mc_smtp_session_reply(s, 552, "5.3.4", "Message too big");
		else
			mc_smtp_session_reply(s, 451, "4.3.0", "Queue write failed, try again");
		return;
	}
	ms->env = envelope_of(ms);
	ms->work.data = ms;
	uv_queue_work(((struct relay_mx *)ctx)->loop, &ms->work, commit_work, commit_done);
}

static void
on_txn_end(struct mc_smtp_session *s, void *ctx, enum mc_smtp_txn_end how)
{
	struct mx_sess *ms = mc_smtp_session_user(s);

	(void)ctx;
	(void)how;
	/* Anything not committed is dropped: the client was not told 250. */
	relay_queue_abort(&ms->msg);
	rcpts_clear(ms);
}

static void
on_closed(struct mc_smtp_session *s, void *ctx)
{
	struct mx_sess *ms = mc_smtp_session_user(s);

	(void)ctx;
	if (ms == NULL)
		return;
	relay_queue_abort(&ms->msg);
	rcpts_clear(ms);
	free(ms);
}

int
relay_mx_start(uv_loop_t *loop, const struct relay_mx_settings *set,
               struct relay_mx **mx_r, const char **error_r)
{
	static const struct mc_smtp_policy policy = {
	        .connect = on_connect,
	        .rcpt = on_rcpt,
	        .data_start = on_data_start,
	        .data_content = on_data_content,
	        .data_end = on_data_end,
	        .txn_end = on_txn_end,
	        .closed = on_closed,
	};
	struct relay_mx *mx = mc_malloc(sizeof(*mx));
	struct mc_smtp_server_settings ss;

	mx->loop = loop;
	mx->set = *set;
	mx->hostname = mc_strdup(set->hostname);
	mc_smtp_server_settings_init(&ss);
	ss.hostname = mx->hostname;
	ss.mode = MC_SMTP_MODE_SMTP;
	ss.tls = set->tls;
	if (set->max_message > 0)
		ss.max_message = set->max_message;
	if (mc_smtp_server_new(loop, &ss, &policy, mx, &mx->server, error_r) < 0)
		goto fail;
	if (mc_smtp_server_listen(mx->server, set->host, set->port, 0, error_r) < 0) {
		mc_smtp_server_close(mx->server, NULL, NULL);
		goto fail;
	}
	mc_info("mx listening address=%s starttls=%s", mc_smtp_server_address(mx->server),
	        set->tls != NULL ? "yes" : "no");
	*mx_r = mx;
	return 0;
fail:
	free(mx->hostname);
	free(mx);
	return -1;
}

const char *
relay_mx_address(const struct relay_mx *mx)
{
	return mc_smtp_server_address(mx->server);
}

static void
server_closed(void *arg)
{
	struct relay_mx *mx = arg;

	if (mx->done != NULL)
		mx->done(mx->done_arg);
	free(mx->hostname);
	free(mx);
}

void
relay_mx_close(struct relay_mx *mx, void (*done)(void *arg), void *arg)
{
	mx->done = done;
	mx->done_arg = arg;
	mc_smtp_server_close(mx->server, server_closed, mx);
}
