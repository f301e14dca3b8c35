/* The delivery scheduler (relay/delivery.h): owns the in-memory list of
 * queued messages (oldest first), the one timer that wakes it at the
 * earliest next attempt, the worker jobs that touch the queue (the
 * startup scan; per message the content open and the write-back of its
 * envelope with any DSN), and the order of teardown. What one attempt of
 * one message does (routing, LMTP sessions, outcomes) is in
 * delivery_attempt.c; DSNs are built in bounce.c.
 *
 * A message is in one phase at a time (delivery_private.h), so at most
 * one worker job touches it and its envelope is only changed on the loop
 * while no job reads it. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delivery_private.h"
#include "error.h"
#include "log.h"
#include "mem.h"

#define DL_DEFAULT_RETRY_BASE_MS 60000u
#define DL_DEFAULT_RETRY_MAX_MS 3600000u
#define DL_DEFAULT_GIVE_UP_S (5u * 86400)
#define DL_DEFAULT_SESSIONS 20u
#define DL_DEFAULT_SESSIONS_PER_NODE 5u
/* The timer wakes at least this often (seconds), so a wall clock that
 * jumps does not leave messages waiting for long. */
#define DL_MAX_SLEEP_S 60

static void close_check(struct relay_delivery *d);
static void pump(struct relay_delivery *d);

int64_t
dl_now(void)
{
	return (int64_t)time(NULL);
}

/* ---- messages ---------------------------------------------------------- */

static struct dl_msg *
msg_new(struct relay_delivery *d, struct relay_queue_envelope *env)
{
	struct dl_msg *m = mc_malloc(sizeof(*m));

	m->d = d;
	m->env = env;
	m->fd = -1;
	return m;
}

static void
msg_append(struct relay_delivery *d, struct dl_msg *m)
{
	m->prev = d->tail;
	if (d->tail != NULL)
		d->tail->next = m;
	else
		d->head = m;
	d->tail = m;
}

static void
msg_free(struct dl_msg *m)
{
	dl_bounces_free(m);
	relay_queue_envelope_free(&m->env);
	relay_queue_envelope_free(&m->dsn_env);
	free(m->work_error);
	free(m->epochs);
	free(m);
}

static void
msg_unlink_free(struct dl_msg *m)
{
	struct relay_delivery *d = m->d;

	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		d->head = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	else
		d->tail = m->prev;
	msg_free(m);
}

/* When m needs the scheduler next (unix seconds): a write-back that
 * failed is retried at retry_write; a message with nothing pending is
 * removed at once; else its earliest due recipient. */
static int64_t
msg_next(const struct dl_msg *m)
{
	int64_t due;

	if (m->dirty || m->bounce_count > 0)
		return m->retry_write;
	due = dl_msg_due(m);
	return due == INT64_MAX ? 0 : due;
}

void
dl_job(struct dl_msg *m, uv_work_cb work, uv_after_work_cb after)
{
	int r;

	m->work.data = m;
	m->work_rc = 0;
	m->work_gone = false;
	m->d->jobs++;
	r = uv_queue_work(m->d->loop, &m->work, work, after);
	if (r != 0) /* only for invalid arguments: a bug */
		abort();
}

/* ---- write-back: DSN, then update or remove (worker) ------------------- */

static void
finish_work(uv_work_t *w)
{
	struct dl_msg *m = w->data;
	struct relay_delivery *d = m->d;
	const char *error = NULL;
	int rc = 0;

	/* The DSN first: a crash before the update below then sends it
	 * twice rather than never. */
	if (m->bounce_count > 0 &&
	    dl_bounce_commit(d->queue, d->hostname, m->env, m->bounces,
	                     m->bounce_count, &m->dsn_env, &error) < 0) {
		m->work_rc = -1;
		m->work_error = mc_strdup(error);
		return;
	}
	if (relay_queue_envelope_pending(m->env) == 0) {
		rc = relay_queue_remove(d->queue, m->env->id, &error);
		m->work_gone = rc == 0;
	} else if (m->dirty) {
		rc = relay_queue_update(d->queue, m->env, &error);
	}
	if (rc < 0 &&
	    (errno == ENOENT || strncmp(error, "no such message ", 16) == 0)) {
		/* Deleted meanwhile (mailctl queue delete): forget it. */
		m->work_gone = true;
		rc = 0;
	}
	if (rc < 0) {
		m->work_rc = -1;
		m->work_error = mc_strdup(error);
	}
}

static void
log_removed(const struct dl_msg *m)
{
	const struct relay_queue_envelope *env = m->env;
	size_t delivered = 0, failed = 0;

	for (size_t i = 0; i < env->rcpt_count; i++) {
		if (env->rcpts[i].state == RELAY_QUEUE_DELIVERED)
			delivered++;
		else if (env->rcpts[i].state == RELAY_QUEUE_FAILED)
			failed++;
	}
	mc_info("delivery done id=%s delivered=%zu failed=%zu", env->id,
	        delivered, failed);
}

static void
finish_after(uv_work_t *w, int status)
{
	struct dl_msg *m = w->data;
	struct relay_delivery *d = m->d;
	int64_t retry_s;

	(void)status;
	d->jobs--;
	if (m->dsn_env != NULL) {
		mc_info("delivery dsn id=%s dsn_id=%s rcpts=%zu", m->env->id,
		        m->dsn_env->id, m->bounce_count);
		dl_bounces_free(m);
		relay_delivery_add(d, m->dsn_env);
		m->dsn_env = NULL;
	}
	if (m->work_rc < 0) {
		retry_s = (int64_t)(d->retry_base_ms / 1000);
		m->retry_write = dl_now() + (retry_s > 0 ? retry_s : 1);
		mc_error("delivery cannot write back id=%s error=\"%s\"",
		         m->env->id, m->work_error);
		free(m->work_error);
		m->work_error = NULL;
	} else if (m->work_gone) {
		void (*done)(int, const char *, void *) = m->delete_done;
		void *arg = m->delete_arg;

		log_removed(m);
		msg_unlink_free(m);
		m = NULL;
		if (done != NULL) /* gone already: what was asked */
			done(0, NULL, arg);
	} else {
		m->dirty = false;
		m->retry_write = 0;
	}
	if (m != NULL)
		dl_idle(m);
	else if (d->closing)
		close_check(d);
	else
		dl_schedule(d);
}

void
dl_finish(struct dl_msg *m)
{
	if (!m->dirty && m->bounce_count == 0 &&
	    relay_queue_envelope_pending(m->env) > 0) {
		dl_idle(m);
		return;
	}
	m->phase = DL_FINISHING;
	dl_job(m, finish_work, finish_after);
}

static void msg_delete(struct dl_msg *m);

static void
msg_retry(struct dl_msg *m)
{
	if (m->phase != DL_IDLE) {
		m->retry_now = true;
		return;
	}
	m->retry_now = false;
	m->retry_write = 0;
	for (size_t i = 0; i < m->env->rcpt_count; i++)
		if (m->env->rcpts[i].state == RELAY_QUEUE_PENDING)
			m->env->rcpts[i].next_attempt = 0;
}

void
dl_idle(struct dl_msg *m)
{
	struct relay_delivery *d = m->d;

	m->phase = DL_IDLE;
	if (m->delete_done != NULL) {
		msg_delete(m);
		return;
	}
	if (d->closing) {
		close_check(d);
		return;
	}
	if (m->kicked) {
		m->kicked = false;
		dl_rekick(m);
	}
	if (m->retry_now)
		msg_retry(m);
	dl_schedule(d);
}

/* ---- relay_delivery_delete (worker, then loop) ------------------------- */

static void
delete_work(uv_work_t *w)
{
	struct dl_msg *m = w->data;
	const char *error;

	if (relay_queue_remove(m->d->queue, m->env->id, &error) < 0 &&
	    errno != ENOENT) {
		m->work_rc = -1;
		m->work_error = mc_strdup(error);
	}
}

static void
delete_after(uv_work_t *w, int status)
{
	struct dl_msg *m = w->data;
	struct relay_delivery *d = m->d;
	void (*done)(int, const char *, void *) = m->delete_done;
	void *arg = m->delete_arg;

	(void)status;
	d->jobs--;
	m->delete_done = NULL;
	if (m->work_rc < 0) {
		mc_error("delivery cannot delete id=%s error=\"%s\"",
		         m->env->id, m->work_error);
		done(-1, m->work_error, arg);
		free(m->work_error);
		m->work_error = NULL;
		dl_idle(m);
		return;
	}
	mc_info("delivery deleted id=%s", m->env->id);
	msg_unlink_free(m);
	done(0, NULL, arg);
	if (d->closing)
		close_check(d);
	else
		dl_schedule(d);
}

static void
msg_delete(struct dl_msg *m)
{
	m->phase = DL_DELETING;
	dl_job(m, delete_work, delete_after);
}

/* ---- the scheduler ----------------------------------------------------- */

static void
timer_cb(uv_timer_t *timer)
{
	pump(timer->data);
}

void
dl_schedule(struct relay_delivery *d)
{
	if (d->pumping)
		d->repump = true;
	else if (!d->closing && !d->scanning)
		uv_timer_start(&d->timer, timer_cb, 0, 0);
}

/* Start what is due, oldest message first, then sleep until the earliest
 * next attempt. A message blocked for want of session slots is not
 * counted for the timer: a session ending runs this again. */
static void
pump(struct relay_delivery *d)
{
	int64_t now = dl_now(), next = INT64_MAX, due;
	struct dl_msg *m, *nx;
	uint64_t sleep_s;

	if (d->closing || d->scanning)
		return;
	d->pumping = true;
	d->repump = false;
	for (m = d->head; m != NULL; m = nx) {
		nx = m->next;
		/* Every slot taken: nothing more can start, and the end of a
		 * session runs this again (a backlog is not walked once per
		 * finished session). */
		if (d->sessions >= d->max_sessions)
			break;
		if (m->phase != DL_IDLE)
			continue;
		due = msg_next(m);
		if (due <= now) {
			if (m->dirty || m->bounce_count > 0 ||
			    dl_msg_due(m) == INT64_MAX)
				dl_finish(m);
			else if (!dl_attempt(m, now))
				continue; /* blocked */
			if (m->phase != DL_IDLE)
				continue;
			due = msg_next(m);
		}
		if (due < next)
			next = due;
	}
	d->pumping = false;
	if (d->repump) {
		uv_timer_start(&d->timer, timer_cb, 0, 0);
		return;
	}
	if (next == INT64_MAX)
		return;
	sleep_s = next <= now ? 1 : (uint64_t)(next - now);
	if (sleep_s > DL_MAX_SLEEP_S)
		sleep_s = DL_MAX_SLEEP_S;
	uv_timer_start(&d->timer, timer_cb, sleep_s * 1000, 0);
}

/* ---- startup scan ------------------------------------------------------ */

/* Worker thread: only the scan's own array is touched. */
static void
scan_cb(struct relay_queue_envelope *env, void *ctx)
{
	struct relay_delivery *d = ctx;

	if (d->scanned_count == d->scanned_cap) {
		d->scanned_cap = d->scanned_cap ? 2 * d->scanned_cap : 64;
		d->scanned = mc_realloc(d->scanned,
		                        d->scanned_cap * sizeof(*d->scanned));
	}
	d->scanned[d->scanned_count++] = env;
}

static void
scan_work(uv_work_t *w)
{
	struct relay_delivery *d = w->data;
	const char *error;

	if (relay_queue_scan(d->queue, scan_cb, d, &d->scan_stats, &error) < 0)
		d->scan_error = mc_strdup(error);
}

static bool
msg_known(const struct relay_delivery *d, const char *id)
{
	for (const struct dl_msg *m = d->head; m != NULL; m = m->next)
		if (strcmp(m->env->id, id) == 0)
			return true;
	return false;
}

/* The scanned messages go before those added during the scan (which
 * the scan may have seen too: those copies are dropped). */
static void
scan_after(uv_work_t *w, int status)
{
	struct relay_delivery *d = w->data;
	struct dl_msg *first = NULL, *last = NULL, *m;
	struct relay_queue_envelope *env;

	(void)status;
	d->jobs--;
	d->scanning = false;
	if (d->scan_error != NULL)
		mc_error("delivery queue scan failed error=\"%s\"",
		         d->scan_error);
	mc_info("delivery queue scanned loaded=%zu corrupt=%zu finished=%zu "
	        "skipped=%zu",
	        d->scan_stats.loaded, d->scan_stats.corrupt,
	        d->scan_stats.finished, d->scan_stats.skipped);
	for (size_t i = 0; i < d->scanned_count; i++) {
		env = d->scanned[i];
		if (d->closing || msg_known(d, env->id)) {
			relay_queue_envelope_free(&env);
			continue;
		}
		m = msg_new(d, env);
		/* Kicks before the scan found nothing to kick: recipients
		 * waiting for a route the directory now has go at once. */
		dl_rekick(m);
		m->prev = last;
		if (last != NULL)
			last->next = m;
		else
			first = m;
		last = m;
	}
	if (first != NULL) {
		last->next = d->head;
		if (d->head != NULL)
			d->head->prev = last;
		else
			d->tail = last;
		d->head = first;
	}
	free(d->scanned);
	d->scanned = NULL;
	d->scanned_count = d->scanned_cap = 0;
	if (d->closing)
		close_check(d);
	else
		dl_schedule(d);
}

/* ---- API --------------------------------------------------------------- */

static bool
hostname_ok(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= ' ' ||
		    (unsigned char)name[i] >= 0x7f)
			return false;
	return true;
}

int
relay_delivery_start(uv_loop_t *loop, const struct relay_delivery_settings *set,
                     struct relay_delivery **d_r, const char **error_r)
{
	struct relay_delivery *d;

	if (loop == NULL || set == NULL || set->queue == NULL ||
	    set->directory == NULL) {
		*error_r = "delivery: loop, queue and directory are required";
		return -1;
	}
	if (set->egress && (set->dns == NULL || set->smarthost_tls == NULL ||
	                    set->mx_tls == NULL)) {
		*error_r = "delivery: egress needs a resolver and TLS contexts";
		return -1;
	}
	if (!hostname_ok(set->hostname)) {
		*error_r = "delivery: hostname must be 1..255 printable "
		           "ASCII characters without spaces";
		return -1;
	}
	d = mc_malloc(sizeof(*d));
	d->loop = loop;
	d->queue = set->queue;
	d->directory = set->directory;
	d->ctx = set->ctx;
	d->hostname = mc_strdup(set->hostname);
	d->retry_base_ms = set->retry_base_ms ? set->retry_base_ms
	                                      : DL_DEFAULT_RETRY_BASE_MS;
	d->retry_max_ms =
	        set->retry_max_ms ? set->retry_max_ms : DL_DEFAULT_RETRY_MAX_MS;
	if (d->retry_max_ms < d->retry_base_ms)
		d->retry_max_ms = d->retry_base_ms;
	d->give_up_s = set->give_up_s ? set->give_up_s : DL_DEFAULT_GIVE_UP_S;
	d->max_sessions =
	        set->max_sessions ? set->max_sessions : DL_DEFAULT_SESSIONS;
	d->max_sessions_per_node = set->max_sessions_per_node
	                                   ? set->max_sessions_per_node
	                                   : DL_DEFAULT_SESSIONS_PER_NODE;
	d->egress = set->egress;
	d->dns = set->dns;
	d->smarthost_tls = set->smarthost_tls;
	d->mx_tls = set->mx_tls;
	d->mx_port = set->mx_port ? set->mx_port : 25;
	d->rand = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
	          (uint64_t)(uintptr_t)d;
	uv_timer_init(loop, &d->timer);
	d->timer.data = d;
	d->scanning = true;
	d->scan_work.data = d;
	d->jobs++;
	if (uv_queue_work(loop, &d->scan_work, scan_work, scan_after) != 0)
		abort();
	*d_r = d;
	return 0;
}

void
relay_delivery_add(struct relay_delivery *d, struct relay_queue_envelope *env)
{
	if (d->closing) {
		/* Durable already: the next start scans it. */
		relay_queue_envelope_free(&env);
		return;
	}
	msg_append(d, msg_new(d, env));
	dl_schedule(d);
}

void
relay_delivery_kick(struct relay_delivery *d)
{
	if (d->closing)
		return;
	for (struct dl_msg *m = d->head; m != NULL; m = m->next) {
		if (m->phase == DL_IDLE)
			dl_rekick(m);
		else
			m->kicked = true;
	}
	dl_schedule(d);
}

void
relay_delivery_foreach(struct relay_delivery *d,
                       void (*cb)(const struct relay_queue_envelope *env,
                                  void *ctx),
                       void *ctx)
{
	for (struct dl_msg *m = d->head; m != NULL; m = m->next)
		cb(m->env, ctx);
}

static struct dl_msg *
msg_find(struct relay_delivery *d, const char *id)
{
	for (struct dl_msg *m = d->head; m != NULL; m = m->next)
		if (strcmp(m->env->id, id) == 0)
			return m;
	return NULL;
}

const struct relay_queue_envelope *
relay_delivery_find(struct relay_delivery *d, const char *id)
{
	struct dl_msg *m = msg_find(d, id);

	return m != NULL ? m->env : NULL;
}

int
relay_delivery_retry(struct relay_delivery *d, const char *id)
{
	struct dl_msg *m;

	if (id != NULL) {
		if ((m = msg_find(d, id)) == NULL)
			return -1;
		msg_retry(m);
	} else {
		for (m = d->head; m != NULL; m = m->next)
			msg_retry(m);
	}
	dl_schedule(d);
	return 0;
}

int
relay_delivery_delete(struct relay_delivery *d, const char *id,
                      void (*done)(int status, const char *error, void *arg),
                      void *arg)
{
	struct dl_msg *m = msg_find(d, id);

	if (m == NULL || m->delete_done != NULL)
		return -1;
	m->delete_done = done;
	m->delete_arg = arg;
	if (m->phase == DL_IDLE)
		msg_delete(m);
	else if (m->phase == DL_SENDING)
		dl_abort_sessions(m);
	return 0;
}

static void
timer_closed(uv_handle_t *handle)
{
	struct relay_delivery *d = handle->data;
	void (*done)(void *arg) = d->done;
	void *arg = d->done_arg;

	while (d->head != NULL)
		msg_unlink_free(d->head);
	free(d->scan_error);
	free(d->hostname);
	free(d);
	if (done != NULL)
		done(arg);
}

/* Everything finished once no job and no session runs (a message in
 * any busy phase has one or the other). */
static void
close_check(struct relay_delivery *d)
{
	if (!d->closing || d->timer_closing || d->jobs > 0 || d->sessions > 0)
		return;
	d->timer_closing = true;
	uv_close((uv_handle_t *)&d->timer, timer_closed);
}

void
relay_delivery_close(struct relay_delivery *d, void (*done)(void *arg),
                     void *arg)
{
	struct dl_msg *m, *nx;

	d->closing = true;
	d->done = done;
	d->done_arg = arg;
	uv_timer_stop(&d->timer);
	dl_egress_drop_held(d);
	for (m = d->head; m != NULL; m = nx) {
		nx = m->next;
		if (m->phase == DL_SENDING)
			dl_abort_sessions(m);
		else if (m->phase == DL_IDLE &&
		         (m->dirty || m->bounce_count > 0))
			dl_finish(m); /* one last try to write it back */
	}
	close_check(d);
}
