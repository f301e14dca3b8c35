/* The egress policy; see egress.h. A message's way: the peer is checked
 * at connect (trusted network) and at MAIL (else mutual TLS first); RCPT
 * resolves local recipients and takes foreign ones as given; DATA opens a
 * queue file (worker) and writes our Received header; content is
 * appended as it arrives; the end of data finds the From domain (worker:
 * the content is read back, never held in memory), picks its signers
 * (loop: the directory), signs, prepends the signatures and commits
 * (worker), and only then answers 250. */
#include "egress.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "imf.h"
#include "log.h"
#include "mem.h"
#include "pool.h"
#include "received.h"
#include "smtp_server.h"

/* Alias expansion per RCPT: at most this many local and foreign targets. */
#define EG_RESOLVE_MAX 256
/* A From domain (RFC 1035: 253 octets) and its NUL, with room. */
#define EG_DOMAIN_SIZE 256

struct relay_egress {
	uv_loop_t *loop;
	struct relay_egress_settings set;
	struct relay_trusted trusted;
	char *hostname;
	struct mc_smtp_server *server;
	void (*done)(void *arg);
	void *done_arg;
};

struct eg_rcpt {
	char *address;
	unsigned notify; /* RELAY_QUEUE_NOTIFY_* (the same bits as SMTP's) */
	char *orcpt;     /* "type;xtext" or "" */
};

struct eg_sess {
	struct relay_egress *eg;
	struct mc_smtp_session *session;
	bool trusted;          /* by address; else only after mutual TLS */
	struct eg_rcpt *rcpts; /* final recipients, deduplicated */
	size_t rcpt_count, rcpt_cap;
	struct relay_queue_msg *msg;      /* while receiving and signing */
	struct relay_queue_envelope *env; /* while signing and committing */
	char id[RELAY_QUEUE_ID_SIZE];
	bool write_failed;
	char error[256];
	/* End of data: the content mapped (worker), the From domain, the
	 * signers, the signatures' outcome for the log. */
	int fd;
	void *map;
	size_t map_size;
	char domain[EG_DOMAIN_SIZE];
	struct relay_sign_set *signers;
	char sign_note[256];
	uv_work_t work;
};

static void
rcpts_clear(struct eg_sess *es)
{
	for (size_t i = 0; i < es->rcpt_count; i++) {
		free(es->rcpts[i].address);
		free(es->rcpts[i].orcpt);
	}
	free(es->rcpts);
	es->rcpts = NULL;
	es->rcpt_count = es->rcpt_cap = 0;
}

/* Add a final recipient unless already there. false when over the limit. */
static bool
rcpt_add(struct eg_sess *es, const char *address,
         const struct mc_smtp_params *params)
{
	unsigned max =
	        es->eg->set.max_expanded ? es->eg->set.max_expanded : 1000;
	struct eg_rcpt *r;

	for (size_t i = 0; i < es->rcpt_count; i++)
		if (strcasecmp(es->rcpts[i].address, address) == 0)
			return true;
	if (es->rcpt_count >= max)
		return false;
	if (es->rcpt_count == es->rcpt_cap) {
		es->rcpt_cap = es->rcpt_cap ? es->rcpt_cap * 2 : 8;
		es->rcpts = mc_realloc(es->rcpts,
		                       es->rcpt_cap * sizeof(*es->rcpts));
	}
	r = &es->rcpts[es->rcpt_count++];
	r->address = mc_strdup(address);
	r->notify = params->notify;
	r->orcpt = params->orcpt != NULL
	                   ? mc_asprintf("%s;%s", params->orcpt_type,
	                                 params->orcpt)
	                   : mc_strdup("");
	return true;
}

/* Drop the end-of-data state (mapping, fd, signers); loop thread. */
static void
sign_state_clear(struct eg_sess *es)
{
	if (es->map != NULL)
		munmap(es->map, es->map_size);
	es->map = NULL;
	es->map_size = 0;
	if (es->fd >= 0)
		close(es->fd);
	es->fd = -1;
	relay_sign_set_free(&es->signers);
}

static void
on_connect(struct mc_smtp_session *s, void *ctx)
{
	struct relay_egress *eg = ctx;
	struct eg_sess *es = mc_malloc(sizeof(*es));

	es->eg = eg;
	es->session = s;
	es->fd = -1;
	es->trusted =
	        relay_trusted_match(&eg->trusted, mc_smtp_session_peer_ip(s));
	mc_smtp_session_set_user(s, es);
	if (!es->trusted && eg->set.mtls == NULL) {
		mc_warn("egress refused session=%s peer=%s reason=\"not in "
		        "egress_trusted\"",
		        mc_smtp_session_id(s), mc_smtp_session_peer_ip(s));
		mc_smtp_session_reply(s, 554, "5.7.1",
		                      "Not a mailbox node of this cluster");
		return;
	}
	mc_debug("egress session=%s peer=%s trusted=%s", mc_smtp_session_id(s),
	         mc_smtp_session_peer_ip(s),
	         es->trusted ? "address" : "after-tls");
	mc_smtp_session_accept(s);
}

static void
on_mail(struct mc_smtp_session *s, void *ctx, const struct mc_smtp_path *from,
        const struct mc_smtp_params *params)
{
	struct eg_sess *es = mc_smtp_session_user(s);

	(void)ctx;
	(void)from;
	(void)params;
	/* With mutual TLS configured, a completed handshake means the peer
	 * showed a certificate from our CA (the context demands one). */
	if (!es->trusted && !mc_smtp_session_tls(s)) {
		mc_smtp_session_reply(s, 530, "5.7.0",
		                      "Must issue a STARTTLS command first");
		return;
	}
	mc_smtp_session_accept(s);
}

static void
on_rcpt(struct mc_smtp_session *s, void *ctx, const struct mc_smtp_path *to,
        const struct mc_smtp_params *params)
{
	struct relay_egress *eg = ctx;
	struct eg_sess *es = mc_smtp_session_user(s);
	const struct mc_directory *dir = eg->set.directory(eg->set.ctx);
	const struct mc_dir_account *accs[EG_RESOLVE_MAX];
	const char *foreign[EG_RESOLVE_MAX];
	size_t n, nf = 0;

	if (to->postmaster) {
		mc_smtp_session_reply(s, 550, "5.1.1",
		                      "Use postmaster@<domain>");
		return;
	}
	if (to->literal) {
		mc_smtp_session_reply(s, 553, "5.1.3",
		                      "Address literals are not relayed");
		return;
	}
	if (dir == NULL || mc_directory_version(dir) == 0) {
		/* A relay that never got its directory has no DKIM keys:
		 * better later than unsigned. */
		mc_smtp_session_reply(s, 451, "4.3.0",
		                      "Relay not ready (no directory yet)");
		return;
	}
	if (!mc_directory_has_domain(dir, to->domain)) {
		if (!rcpt_add(es, to->mailbox, params))
			goto too_many;
		mc_smtp_session_accept(s);
		return;
	}
	n = mc_directory_resolve(dir, to->mailbox, accs, EG_RESOLVE_MAX,
	                         foreign, EG_RESOLVE_MAX, &nf);
	if (n == 0 && nf == 0) {
		mc_smtp_session_reply(s, 550, "5.1.1", "No such user here");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (!rcpt_add(es, accs[i]->address, params))
			goto too_many;
	for (size_t i = 0; i < nf; i++)
		if (!rcpt_add(es, foreign[i], params))
			goto too_many;
	mc_smtp_session_accept(s);
	return;
too_many:
	mc_smtp_session_reply(s, 452, "4.5.3", "Too many recipients");
}

/* ---- DATA: queue file, Received header, content ------------------------ */

static void
begin_work(uv_work_t *w)
{
	struct eg_sess *es = w->data;
	const char *err = NULL;

	if (relay_queue_begin(es->eg->set.queue, &es->msg, &err) < 0) {
		es->msg = NULL;
		snprintf(es->error, sizeof(es->error), "%s", err);
	}
}

static void
begin_done(uv_work_t *w, int status)
{
	struct eg_sess *es = w->data;
	char header[RELAY_RECEIVED_SIZE];
	const char *err = NULL;

	(void)status;
	if (es->msg == NULL) {
		mc_error("queue begin failed session=%s error=\"%s\"",
		         mc_smtp_session_id(es->session), es->error);
		mc_smtp_session_reply(es->session, 451, "4.3.0",
		                      "Queue unavailable, try again");
		return;
	}
	snprintf(es->id, sizeof(es->id), "%s", relay_queue_msg_id(es->msg));
	relay_received_header(es->session, es->eg->hostname, es->id,
	                      es->rcpt_count == 1 ? es->rcpts[0].address : NULL,
	                      header, sizeof(header));
	if (relay_queue_append(es->msg, header, strlen(header), &err) < 0) {
		es->write_failed = true;
		snprintf(es->error, sizeof(es->error), "%s", err);
	}
	mc_smtp_session_accept(es->session);
}

static void
on_data_start(struct mc_smtp_session *s, void *ctx)
{
	struct eg_sess *es = mc_smtp_session_user(s);

	es->write_failed = false;
	es->error[0] = '\0';
	es->work.data = es;
	uv_queue_work(((struct relay_egress *)ctx)->loop, &es->work, begin_work,
	              begin_done);
}

static void
on_data_content(struct mc_smtp_session *s, void *ctx, const void *data,
                size_t len)
{
	struct eg_sess *es = mc_smtp_session_user(s);
	const char *err = NULL;

	(void)ctx;
	if (es->msg == NULL || es->write_failed)
		return;
	if (relay_queue_append(es->msg, data, len, &err) < 0) {
		es->write_failed = true;
		snprintf(es->error, sizeof(es->error), "%s", err);
	}
}

static struct relay_queue_envelope *
envelope_of(struct eg_sess *es)
{
	struct mc_smtp_session *s = es->session;
	const struct mc_smtp_txn *txn = mc_smtp_session_txn(s);
	struct relay_queue_envelope *env = relay_queue_envelope_new();
	struct relay_queue_rcpt *r;
	char tls[160] = "";

	env->outbound = true;
	relay_queue_str_set(&env->sender, txn->mail_from);
	relay_queue_str_set(&env->client.helo, mc_smtp_session_helo(s));
	relay_queue_str_set(&env->client.addr, mc_smtp_session_peer_ip(s));
	relay_queue_str_set(&env->client.proto, mc_smtp_session_protocol(s));
	if (mc_smtp_session_tls(s))
		snprintf(tls, sizeof(tls), "%s %s",
		         mc_smtp_session_tls_version(s),
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
	for (size_t i = 0; i < es->rcpt_count; i++) {
		r = relay_queue_envelope_add_rcpt(env, es->rcpts[i].address);
		r->notify = es->rcpts[i].notify;
		relay_queue_str_set(&r->orcpt, es->rcpts[i].orcpt);
	}
	return env;
}

/* ---- end of data: From domain, signing, commit ------------------------- */

/* The domain of the first mailbox of the message's From field, lower
 * case, into es->domain ("" when there is none). */
static void
from_domain(struct eg_sess *es)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_imf_header hdr;
	struct mc_imf_addr_list list;
	const struct mc_imf_field *from;

	es->domain[0] = '\0';
	mc_imf_header_parse(&hdr, pool, es->map, es->map_size, NULL);
	from = mc_imf_header_find(&hdr, "From");
	if (from != NULL) {
		mc_imf_addr_parse(&list, pool, from->value, from->value_len, 1);
		for (size_t i = 0; i < list.count; i++) {
			const struct mc_imf_address *a = &list.addrs[i];

			if (a->host == NULL || a->invalid || a->host[0] == '[')
				continue;
			snprintf(es->domain, sizeof(es->domain), "%s", a->host);
			break;
		}
	}
	for (char *p = es->domain; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	mc_pool_free(&pool);
}

static void
read_work(uv_work_t *w)
{
	struct eg_sess *es = w->data;
	const char *err = NULL;
	struct stat st;

	if (relay_queue_msg_content_open(es->msg, &es->fd, &err) < 0) {
		es->fd = -1;
		snprintf(es->error, sizeof(es->error), "%s", err);
		return;
	}
	if (fstat(es->fd, &st) < 0 || st.st_size <= 0 ||
	    (es->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
	                    es->fd, 0)) == MAP_FAILED) {
		es->map = NULL;
		snprintf(es->error, sizeof(es->error),
		         "cannot map the message");
		return;
	}
	es->map_size = (size_t)st.st_size;
	from_domain(es);
}

static void
sign_work(uv_work_t *w)
{
	struct eg_sess *es = w->data;
	struct mc_strbuf sigs = {0};
	const char *err = NULL;

	if (es->signers != NULL && relay_sign_set_count(es->signers) > 0) {
		if (relay_sign_set_sign(es->signers, es->map, es->map_size,
		                        (int64_t)time(NULL), &sigs, &err) < 0) {
			snprintf(es->sign_note, sizeof(es->sign_note),
			         "unsigned: %s", err);
		} else if (relay_queue_msg_prepend(es->msg, sigs.data, sigs.len,
		                                   &err) < 0) {
			snprintf(es->error, sizeof(es->error), "%s", err);
			relay_queue_envelope_free(&es->env);
			relay_queue_abort(&es->msg);
			mc_strbuf_fini(&sigs);
			return;
		}
	}
	mc_strbuf_fini(&sigs);
	if (relay_queue_commit(&es->msg, es->env, &err) < 0) {
		snprintf(es->error, sizeof(es->error), "%s", err);
		relay_queue_envelope_free(&es->env);
	}
}

static void
commit_done(uv_work_t *w, int status)
{
	struct eg_sess *es = w->data;
	struct relay_egress *eg = es->eg;
	char text[128];

	(void)status;
	sign_state_clear(es);
	if (es->env == NULL) {
		mc_error("queue commit failed session=%s id=%s error=\"%s\"",
		         mc_smtp_session_id(es->session), es->id, es->error);
		mc_smtp_session_reply(es->session, 451, "4.3.0",
		                      "Queue write failed, try again");
		return;
	}
	mc_info("queued outbound session=%s id=%s from=<%s> rcpts=%zu "
	        "size=%llu "
	        "dkim=\"%s\"",
	        mc_smtp_session_id(es->session), es->id, es->env->sender,
	        es->env->rcpt_count, (unsigned long long)es->env->size,
	        es->sign_note);
	snprintf(text, sizeof(text), "Ok: queued as %s", es->id);
	mc_smtp_session_reply(es->session, 250, "2.0.0", text);
	eg->set.committed(es->env, eg->set.ctx);
	es->env = NULL;
}

static void
read_done(uv_work_t *w, int status)
{
	struct eg_sess *es = w->data;
	struct relay_egress *eg = es->eg;
	const struct mc_directory *dir = eg->set.directory(eg->set.ctx);
	char desc[200];

	(void)status;
	if (es->map == NULL) {
		mc_error("queue read back failed session=%s id=%s error=\"%s\"",
		         mc_smtp_session_id(es->session), es->id, es->error);
		sign_state_clear(es);
		relay_queue_abort(&es->msg);
		relay_queue_envelope_free(&es->env);
		mc_smtp_session_reply(es->session, 451, "4.3.0",
		                      "Queue write failed, try again");
		return;
	}
	es->signers = relay_signer_get(eg->set.signer, dir, es->domain);
	if (relay_sign_set_count(es->signers) > 0) {
		snprintf(es->sign_note, sizeof(es->sign_note), "%s",
		         relay_sign_set_describe(es->signers, desc,
		                                 sizeof(desc)));
	} else {
		snprintf(
		        es->sign_note, sizeof(es->sign_note),
		        "unsigned: no active key for the From domain \"%.64s\"",
		        es->domain[0] != '\0' ? es->domain : "(none)");
		mc_warn("egress dkim unsigned session=%s id=%s "
		        "from_domain=\"%.64s\"",
		        mc_smtp_session_id(es->session), es->id, es->domain);
	}
	uv_queue_work(eg->loop, &es->work, sign_work, commit_done);
}

static void
on_data_end(struct mc_smtp_session *s, void *ctx)
{
	struct eg_sess *es = mc_smtp_session_user(s);

	if (es->write_failed) {
		bool too_big = relay_queue_msg_too_big(es->msg);

		mc_error("queue write failed session=%s id=%s error=\"%s\"",
		         mc_smtp_session_id(s), es->id, es->error);
		relay_queue_abort(&es->msg);
		if (too_big)
			mc_smtp_session_reply(s, 552, "5.3.4",
			                      "Message too big");
		else
			mc_smtp_session_reply(s, 451, "4.3.0",
			                      "Queue write failed, try again");
		return;
	}
	es->env = envelope_of(es);
	es->sign_note[0] = '\0';
	es->work.data = es;
	uv_queue_work(((struct relay_egress *)ctx)->loop, &es->work, read_work,
	              read_done);
}

static void
on_txn_end(struct mc_smtp_session *s, void *ctx, enum mc_smtp_txn_end how)
{
	struct eg_sess *es = mc_smtp_session_user(s);

	(void)ctx;
	(void)how;
	/* Anything not committed is dropped: the client was not told 250. */
	relay_queue_abort(&es->msg);
	rcpts_clear(es);
}

static void
on_closed(struct mc_smtp_session *s, void *ctx)
{
	struct eg_sess *es = mc_smtp_session_user(s);

	(void)ctx;
	if (es == NULL)
		return;
	relay_queue_abort(&es->msg);
	sign_state_clear(es);
	rcpts_clear(es);
	free(es);
}

int
relay_egress_start(uv_loop_t *loop, const struct relay_egress_settings *set,
                   struct relay_egress **eg_r, const char **error_r)
{
	static const struct mc_smtp_policy policy = {
	        .connect = on_connect,
	        .mail = on_mail,
	        .rcpt = on_rcpt,
	        .data_start = on_data_start,
	        .data_content = on_data_content,
	        .data_end = on_data_end,
	        .txn_end = on_txn_end,
	        .closed = on_closed,
	};
	struct relay_egress *eg;
	struct mc_smtp_server_settings ss;

	if (set->mtls == NULL &&
	    (set->trusted == NULL || set->trusted->count == 0)) {
		*error_r =
		        "egress_listen needs mutual TLS (egress_tls_cert_file, "
		        "egress_tls_key_file, egress_tls_ca_file) or "
		        "egress_trusted networks: it must never be open to "
		        "the world";
		return -1;
	}
	eg = mc_malloc(sizeof(*eg));
	eg->loop = loop;
	eg->set = *set;
	if (set->trusted != NULL)
		eg->trusted = *set->trusted;
	eg->set.trusted = NULL;
	eg->hostname = mc_strdup(set->hostname);
	mc_smtp_server_settings_init(&ss);
	ss.hostname = eg->hostname;
	ss.mode = MC_SMTP_MODE_SMTP;
	ss.tls = set->mtls;
	ss.extensions |= MC_SMTP_EXT_DSN;
	if (set->max_message > 0)
		ss.max_message = set->max_message;
	if (mc_smtp_server_new(loop, &ss, &policy, eg, &eg->server, error_r) <
	    0)
		goto fail;
	if (mc_smtp_server_listen(eg->server, set->host, set->port, 0,
	                          error_r) < 0) {
		mc_smtp_server_close(eg->server, NULL, NULL);
		goto fail;
	}
	mc_info("egress listening address=%s mutual_tls=%s "
	        "trusted_networks=%zu",
	        mc_smtp_server_address(eg->server),
	        set->mtls != NULL ? "yes" : "no", eg->trusted.count);
	*eg_r = eg;
	return 0;
fail:
	free(eg->hostname);
	free(eg);
	return -1;
}

const char *
relay_egress_address(const struct relay_egress *eg)
{
	return mc_smtp_server_address(eg->server);
}

static void
server_closed(void *arg)
{
	struct relay_egress *eg = arg;

	if (eg->done != NULL)
		eg->done(eg->done_arg);
	free(eg->hostname);
	free(eg);
}

void
relay_egress_close(struct relay_egress *eg, void (*done)(void *arg), void *arg)
{
	eg->done = done;
	eg->done_arg = arg;
	mc_smtp_server_close(eg->server, server_closed, eg);
}
