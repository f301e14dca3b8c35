/* One delivery attempt of one message (delivery_private.h): route each
 * due recipient with the directory as it is now (delivery_route.c),
 * group them by destination into sessions within the session limits -
 * LMTP to a node, or SMTP out (delivery_egress.c) - run the sessions on
 * the message's content fd, and apply every outcome to the envelope in
 * memory: the state, attempts, next attempt (exponential backoff with
 * jitter), last error and route note, plus a DSN entry for recipients
 * that failed for good. Writing the envelope back is delivery.c's job. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery_private.h"
#include "dsn.h"
#include "error.h"
#include "log.h"
#include "mem.h"

/* Recipients per LMTP session: the node's engine takes 100 per
 * transaction (RFC 5321's minimum) and answers 452 beyond; more
 * recipients for one node go in further sessions. */
#define DL_SESSION_RCPTS 100

/* How one recipient's try ended, from a reply or a local decision. */
struct dl_outcome {
	enum mc_smtp_client_outcome outcome;
	unsigned code;        /* 0: local decision */
	const char *enhanced; /* "4.4.1" */
	const char *text;
	const char *command; /* "" for local decisions */
	const char *remote;  /* DSN Remote-MTA; NULL: none */
	const char *note;    /* route note to keep */
	bool long_retry;
};

const char *
dl_logsafe(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < size; s++)
		buf[n++] = *s == '"' || *s == '\\' ? '\'' : *s;
	buf[n] = '\0';
	return buf;
}

int64_t
dl_msg_due(const struct dl_msg *m)
{
	int64_t due = INT64_MAX;

	for (size_t i = 0; i < m->env->rcpt_count; i++) {
		const struct relay_queue_rcpt *r = &m->env->rcpts[i];

		if (r->state == RELAY_QUEUE_PENDING && r->next_attempt < due)
			due = r->next_attempt > 0 ? r->next_attempt : 0;
	}
	return due;
}

/* ---- outcomes ---------------------------------------------------------- */

static uint32_t
dl_rand(struct relay_delivery *d)
{
	/* xorshift64*: jitter only, nothing secret. */
	d->rand ^= d->rand >> 12;
	d->rand ^= d->rand << 25;
	d->rand ^= d->rand >> 27;
	return (uint32_t)((d->rand * 2685821657736338717ull) >> 32);
}

/* Seconds until the next try after the attempts-th: retry_base doubled
 * per attempt up to retry_max (or retry_max at once), +-10 %. */
static int64_t
retry_delay(struct relay_delivery *d, uint32_t attempts, bool long_retry)
{
	uint64_t ms = d->retry_max_ms;
	unsigned shift = attempts > 0 ? attempts - 1 : 0;

	if (!long_retry && shift < 40 && (d->retry_base_ms << shift) < ms)
		ms = d->retry_base_ms << shift;
	ms = ms - ms / 10 + dl_rand(d) % (ms / 5 + 1);
	return ms < 1000 ? 1 : (int64_t)((ms + 999) / 1000);
}

static void
bounce_add(struct dl_msg *m, const struct relay_queue_rcpt *r,
           const struct dl_outcome *o, int64_t now)
{
	struct dl_bounce *b;

	if (!mc_dsn_allowed(m->env->sender) ||
	    !mc_dsn_wanted(r->notify, MC_DSN_FAILED))
		return;
	m->bounces = mc_realloc(m->bounces,
	                        (m->bounce_count + 1) * sizeof(*m->bounces));
	b = &m->bounces[m->bounce_count++];
	memset(b, 0, sizeof(*b));
	b->address = mc_strdup(r->address);
	b->orcpt = mc_strdup(r->orcpt);
	b->status = mc_strdup(o->enhanced);
	b->remote = o->remote != NULL ? mc_strdup(o->remote) : NULL;
	b->diagnostic = mc_strdup(o->text);
	b->command = mc_strdup(o->command);
	b->code = o->code;
	b->last_attempt = now;
}

void
dl_bounces_free(struct dl_msg *m)
{
	for (size_t i = 0; i < m->bounce_count; i++) {
		struct dl_bounce *b = &m->bounces[i];

		free(b->address);
		free(b->orcpt);
		free(b->status);
		free(b->remote);
		free(b->diagnostic);
		free(b->command);
	}
	free(m->bounces);
	m->bounces = NULL;
	m->bounce_count = 0;
}

static void
apply(struct dl_msg *m, size_t i, const struct dl_outcome *o, int64_t now)
{
	struct relay_delivery *d = m->d;
	struct relay_queue_rcpt *r = &m->env->rcpts[i];
	char error[RELAY_QUEUE_ERROR_MAX + 1],
	        safe_rcpt[RELAY_QUEUE_ADDR_MAX + 1], safe_error[sizeof(error)];
	const char *result = "delivered";
	int64_t delay = 0;

	if (r->attempts < RELAY_QUEUE_ATTEMPTS_MAX)
		r->attempts++;
	relay_queue_str_set(&r->route, o->note);
	if (o->code != 0)
		snprintf(error, sizeof(error), "%u %s %s", o->code, o->enhanced,
		         o->text);
	else
		snprintf(error, sizeof(error), "%s %s", o->enhanced, o->text);
	if (o->outcome != MC_SMTP_CLIENT_DELIVERED)
		relay_queue_str_set(&r->last_error, error);
	if (o->outcome == MC_SMTP_CLIENT_DELIVERED) {
		r->state = RELAY_QUEUE_DELIVERED;
	} else if (o->outcome == MC_SMTP_CLIENT_PERMFAIL) {
		r->state = RELAY_QUEUE_FAILED;
		result = "failed";
		bounce_add(m, r, o, now);
	} else if (now - m->env->received >= (int64_t)d->give_up_s) {
		r->state = RELAY_QUEUE_FAILED;
		result = "expired";
		bounce_add(m, r, o, now);
	} else {
		delay = retry_delay(d, r->attempts, o->long_retry);
		r->next_attempt = now + delay;
		result = "deferred";
	}
	m->dirty = true;
	mc_info("delivery id=%s rcpt=\"%s\" dest=%s result=%s attempts=%u "
	        "retry_in=%lld reply=\"%s\"",
	        m->env->id,
	        dl_logsafe(r->address, safe_rcpt, sizeof(safe_rcpt)),
	        o->note[0] != '\0' ? o->note : "-", result, r->attempts,
	        (long long)delay,
	        dl_logsafe(error, safe_error, sizeof(safe_error)));
}

/* ---- sessions ---------------------------------------------------------- */

static struct dl_node *
node_find(struct relay_delivery *d, const char *dest)
{
	for (struct dl_node *n = d->nodes; n != NULL; n = n->next)
		if (strcmp(n->dest, dest) == 0)
			return n;
	return NULL;
}

static struct dl_node *
slot_take(struct relay_delivery *d, const char *dest)
{
	struct dl_node *n = node_find(d, dest);

	if (d->sessions >= d->max_sessions ||
	    (n != NULL && n->sessions >= d->max_sessions_per_node))
		return NULL;
	if (n == NULL) {
		n = mc_malloc(sizeof(*n));
		n->dest = mc_strdup(dest);
		n->next = d->nodes;
		d->nodes = n;
	}
	n->sessions++;
	d->sessions++;
	return n;
}

static void
slot_release(struct relay_delivery *d, struct dl_node *node)
{
	struct dl_node **pp;

	d->sessions--;
	if (--node->sessions > 0)
		return;
	for (pp = &d->nodes; *pp != node; pp = &(*pp)->next)
		;
	*pp = node->next;
	free(node->dest);
	free(node);
}

static void
sessions_free(struct dl_msg *m)
{
	struct dl_session *s;

	while ((s = m->sessions) != NULL) {
		m->sessions = s->next;
		dl_egress_free(&s->egress);
		free(s->note);
		free(s->node_name);
		free(s->idx);
		free(s);
	}
}

static void
session_end(struct dl_session *s)
{
	struct dl_msg *m = s->m;
	struct relay_delivery *d = m->d;

	slot_release(d, s->node);
	s->node = NULL;
	if (--m->running > 0)
		return;
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	sessions_free(m);
	dl_finish(m);
	dl_schedule(d); /* slots are free */
}

/* Every recipient of s gets one outcome decided here. */
static void
session_local_apply(struct dl_session *s, enum mc_smtp_client_outcome outcome,
                    const char *enhanced, const char *text, const char *remote)
{
	int64_t now = dl_now();
	struct dl_outcome o = {
	        .outcome = outcome,
	        .enhanced = enhanced,
	        .text = text,
	        .command = "",
	        .remote = remote,
	        .note = s->note,
	};

	for (size_t k = 0; k < s->count; k++)
		apply(s->m, s->idx[k], &o, now);
}

void
dl_session_local(struct dl_session *s, enum mc_smtp_client_outcome outcome,
                 const char *enhanced, const char *text, const char *remote)
{
	/* Shutting down is not the recipients' failure. */
	if (!s->aborted)
		session_local_apply(s, outcome, enhanced, text, remote);
	session_end(s);
}

void
dl_session_result(struct dl_session *s, const struct mc_smtp_client_result *res)
{
	struct dl_msg *m = s->m;
	int64_t now = dl_now();

	for (size_t k = 0; k < s->count && k < res->rcpt_count; k++) {
		const struct mc_smtp_client_rcpt_result *rr = &res->rcpts[k];
		struct dl_outcome o = {
		        .outcome = rr->outcome,
		        .code = rr->code,
		        .enhanced = rr->enhanced,
		        .text = rr->text,
		        .command = rr->command,
		        .remote = res->remote,
		        .note = s->note,
		};

		/* Shutting down is not the recipient's failure: it keeps
		 * its state and is tried first thing after the restart. */
		if (s->aborted && rr->outcome == MC_SMTP_CLIENT_TEMPFAIL &&
		    rr->code == 0)
			continue;
		apply(m, s->idx[k], &o, now);
	}
	session_end(s);
}

static void
session_done(const struct mc_smtp_client_result *res, void *ctx)
{
	struct dl_session *s = ctx;

	s->client = NULL;
	dl_session_result(s, res);
}

static const char *
ret_name(enum relay_queue_dsn_ret ret)
{
	return ret == RELAY_QUEUE_RET_FULL   ? "FULL"
	       : ret == RELAY_QUEUE_RET_HDRS ? "HDRS"
	                                     : NULL;
}

void
dl_session_message(const struct dl_session *s, struct mc_smtp_client_rcpt *rcpts,
                   struct mc_smtp_client_message *msg)
{
	const struct relay_queue_envelope *env = s->m->env;

	*msg = (struct mc_smtp_client_message){
	        .sender = env->sender,
	        .rcpts = rcpts,
	        .rcpt_count = s->count,
	        .envid = env->dsn_envid,
	        .ret = ret_name(env->dsn_ret),
	        .size = env->size,
	        .use_fd = true,
	        .fd = s->m->fd,
	};
	for (size_t k = 0; k < s->count; k++) {
		const struct relay_queue_rcpt *r = &env->rcpts[s->idx[k]];

		rcpts[k].address = r->address;
		rcpts[k].orcpt = r->orcpt;
		rcpts[k].notify = r->notify;
	}
	if (env->body == RELAY_QUEUE_BODY_8BITMIME)
		msg->flags |= MC_SMTP_CLIENT_NEED_8BITMIME;
	if (env->smtputf8)
		msg->flags |= MC_SMTP_CLIENT_NEED_SMTPUTF8;
}

static void
session_start(struct dl_session *s)
{
	struct dl_msg *m = s->m;
	struct mc_smtp_client_rcpt *rcpts;
	struct mc_smtp_client_settings set = {
	        .protocol = MC_SMTP_CLIENT_LMTP,
	        .ip = s->ip,
	        .port = s->port,
	        .helo_name = m->d->hostname,
	        .remote_name = s->node_name[0] != '\0' ? s->node_name : NULL,
	        .tls = MC_SMTP_CLIENT_TLS_NONE,
	        .log_id = m->env->id,
	};
	struct mc_smtp_client_message msg;
	const char *error;

	if (s->egress != NULL) {
		dl_egress_start(s);
		return;
	}
	rcpts = mc_calloc(s->count, sizeof(*rcpts));
	dl_session_message(s, rcpts, &msg);
	if (mc_smtp_client_start(m->d->loop, &set, &msg, session_done, s,
	                         &s->client, &error) < 0) {
		s->client = NULL;
		dl_session_local(s, MC_SMTP_CLIENT_TEMPFAIL, "4.4.1", error, NULL);
	}
	free(rcpts);
}

void
dl_abort_sessions(struct dl_msg *m)
{
	for (struct dl_session *s = m->sessions; s != NULL; s = s->next) {
		if (s->aborted)
			continue;
		s->aborted = true;
		if (s->egress != NULL)
			dl_egress_abort(s);
		else if (s->client != NULL)
			mc_smtp_client_abort(s->client);
	}
}

/* ---- the attempt ------------------------------------------------------- */

static void
open_work(uv_work_t *w)
{
	struct dl_msg *m = w->data;
	const char *error;

	if (relay_queue_content_open(m->d->queue, m->env->id, &m->fd, &error) <
	    0) {
		m->fd = -1;
		m->work_rc = -1;
		m->work_error = mc_strdup(error);
		return;
	}
	/* AUTH secrets are read at every attempt, here off the loop: a
	 * rotated secret file applies to the next attempt. */
	for (struct dl_session *s = m->sessions; s != NULL; s = s->next)
		if (s->egress != NULL)
			dl_egress_prepare(s->egress);
}

static void
open_after(uv_work_t *w, int status)
{
	struct dl_msg *m = w->data;
	struct relay_delivery *d = m->d;
	struct dl_session *s, *nx;

	(void)status;
	d->jobs--;
	/* Failed, or nothing to send any more (shutdown, a delete). */
	if (m->work_rc < 0 || d->closing || m->delete_done != NULL) {
		for (s = m->sessions; s != NULL; s = s->next) {
			if (m->work_rc < 0)
				session_local_apply(
				        s, MC_SMTP_CLIENT_TEMPFAIL, "4.3.0",
				        mc_errorf("cannot read the queued "
				                  "message: %s",
				                  m->work_error),
				        NULL);
			slot_release(d, s->node);
		}
		free(m->work_error);
		m->work_error = NULL;
		if (m->fd >= 0)
			close(m->fd);
		m->fd = -1;
		sessions_free(m);
		dl_finish(m);
		dl_schedule(d);
		return;
	}
	m->phase = DL_SENDING;
	m->running = 0;
	for (s = m->sessions; s != NULL; s = s->next)
		m->running++;
	for (s = m->sessions; s != NULL; s = nx) {
		nx = s->next;
		session_start(s);
	}
}

/* The session of m going to the route's node that still has room for a
 * recipient, or a new one if a slot is free; NULL when none is. */
static struct dl_session *
session_for(struct dl_msg *m, const struct dl_route *rt)
{
	struct dl_session *s, **tail = &m->sessions;
	struct dl_node *node;

	for (s = m->sessions; s != NULL; s = s->next) {
		/* Same destination and note: same settings too (a smarthost's
		 * note carries a digest of them). */
		if (strcmp(s->node->dest, rt->dest) == 0 &&
		    strcmp(s->note, rt->note) == 0 && s->count < DL_SESSION_RCPTS)
			return s;
		tail = &s->next;
	}
	if ((node = slot_take(m->d, rt->dest)) == NULL)
		return NULL;
	s = mc_malloc(sizeof(*s));
	s->m = m;
	s->node = node;
	s->note = mc_strdup(rt->note);
	snprintf(s->ip, sizeof(s->ip), "%s", rt->ip);
	s->port = rt->port;
	s->node_name = mc_strdup(rt->node_name != NULL ? rt->node_name : "");
	if (rt->kind == DL_ROUTE_EGRESS)
		s->egress = dl_egress_new(m->d, rt);
	s->idx = mc_calloc(DL_SESSION_RCPTS, sizeof(*s->idx));
	*tail = s;
	return s;
}

bool
dl_attempt(struct dl_msg *m, int64_t now)
{
	const struct mc_directory *dir = m->d->directory(m->d->ctx);
	struct dl_route rt;
	struct dl_session *s;

	for (size_t i = 0; i < m->env->rcpt_count; i++) {
		const struct relay_queue_rcpt *r = &m->env->rcpts[i];
		struct dl_outcome o = {.command = "", .note = rt.note};

		if (r->state != RELAY_QUEUE_PENDING || r->next_attempt > now)
			continue;
		dl_route_rcpt(m->d, dir, r->address, &rt);
		if (rt.kind == DL_ROUTE_NODE || rt.kind == DL_ROUTE_EGRESS) {
			if (rt.kind == DL_ROUTE_NODE) {
				if (m->epochs == NULL)
					m->epochs = mc_calloc(m->env->rcpt_count,
					                      sizeof(*m->epochs));
				m->epochs[i] = rt.epoch;
			}
			if ((s = session_for(m, &rt)) != NULL)
				s->idx[s->count++] = i;
			continue; /* else: no slot now, it stays due */
		}
		o.outcome = rt.kind == DL_ROUTE_GONE ? MC_SMTP_CLIENT_PERMFAIL
		                                     : MC_SMTP_CLIENT_TEMPFAIL;
		o.enhanced = rt.enhanced;
		o.text = rt.text;
		o.long_retry = rt.long_retry;
		apply(m, i, &o, now);
	}
	if (m->sessions != NULL) {
		m->phase = DL_OPENING;
		dl_job(m, open_work, open_after);
		return true;
	}
	if (m->dirty) {
		dl_finish(m);
		return true;
	}
	return false;
}
