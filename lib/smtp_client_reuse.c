/* Connection reuse (smtp_client.h, "Connection reuse"): after a clean
 * transaction the session may stay connected, held by its caller, and
 * carry the next message: RSET (the connection proves it still works and
 * any open transaction is cleared), then MAIL, RCPT and DATA as in a new
 * session, with the capabilities, TLS and AUTH of the first. An idle
 * connection that the server closes, talks on or lets time out ends here
 * and tells its holder. */
#include "smtp_client_private.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "log.h"
#include "mem.h"
#include "pool.h"

bool
mc_smtp_client_reusable(const struct mc_smtp_client *c)
{
	if (!c->set.reuse || c->conn == NULL || c->aborted || c->fs_pending)
		return false;
	if (c->messages >= MC_SMTP_CLIENT_REUSE_MAX)
		return false;
	return uv_now(c->loop) - c->connected_at < MC_SMTP_CLIENT_REUSE_AGE_MS;
}

void
mc_smtp_client_hold(struct mc_smtp_client *c, mc_smtp_client_closed_cb *closed,
                    void *ctx)
{
	if (c->state != SC_IDLE || c->held)
		return; /* not reusable: it quits after the callback */
	c->held = true;
	c->closed = closed;
	c->closed_ctx = ctx;
	mc_debug("smtp_client id=%s remote=%s held messages=%u", c->log_id,
	         c->remote, c->messages);
}

void
mc_smtp_client_idle_event(struct mc_smtp_client *c, bool polite)
{
	bool held = c->held;

	mc_info("smtp_client id=%s remote=%s idle connection ends (%s)",
	        c->log_id, c->remote,
	        polite ? "idle time over" : "closed or spoken to by the server");
	c->held = false;
	c->reusable = false;
	if (polite)
		mc_smtp_client_quit(c);
	else
		mc_smtp_client_close_conn(c, true);
	if (held && c->closed != NULL)
		c->closed(c->closed_ctx);
	c->closed = NULL;
}

void
mc_smtp_client_release(struct mc_smtp_client *c, bool reset)
{
	if (!c->held)
		return;
	c->held = false;
	c->closed = NULL;
	if (reset)
		mc_smtp_client_close_conn(c, true);
	else
		mc_smtp_client_quit(c);
}

int
mc_smtp_client_next(struct mc_smtp_client *c,
                    const struct mc_smtp_client_message *msg,
                    const char *log_id, mc_smtp_client_done_cb *done,
                    void *ctx, const char **error_r)
{
	const char *why, *error;
	struct stat st;

	if (!c->held || c->state != SC_IDLE || done == NULL) {
		*error_r = "smtp client: next message on a client not held";
		return -1;
	}
	if ((why = mc_smtp_client_check_message(msg)) != NULL) {
		*error_r = mc_errorf("smtp client: %s", why);
		mc_smtp_client_release(c, false);
		return -1;
	}
	c->held = false;
	c->closed = NULL;
	mc_smtp_client_copy_message(c, msg);
	if (c->use_fd && c->size == 0 && fstat(c->fd, &st) == 0)
		c->size = (uint64_t)st.st_size;
	c->log_id = log_id != NULL ? mc_pool_strdup(c->mpool, log_id) : "-";
	c->done = done;
	c->ctx = ctx;
	c->status = MC_SMTP_CLIENT_OK;
	c->error = NULL;
	c->final = c->reported = c->reusable = false;
	c->offset = 0;
	c->rlen = c->roff = 0;
	c->eof = false;
	memset(&c->stuffer, 0, sizeof(c->stuffer));
	c->dot_next = 0;
	c->messages++;
	if (mc_smtp_client_send_line(c, &error, "RSET\r\n") < 0) {
		*error_r = mc_errorf("writing to %s: %s", c->remote, error);
		c->reported = true; /* the caller has its answer */
		mc_smtp_client_close_conn(c, true);
		return -1;
	}
	mc_smtp_client_set_state(c, SC_RSET);
	mc_info("smtp_client id=%s remote=%s rcpts=%zu message=%u reuse",
	        c->log_id, c->remote, c->rcpt_count, c->messages);
	return 0;
}

void
mc_smtp_client_rset_reply(struct mc_smtp_client *c,
                          const struct mc_smtp_client_reply *reply)
{
	char text[256];

	if (reply->code / 100 == 2) {
		mc_smtp_client_begin_transaction(c);
		return;
	}
	/* Decided by no reply to this message: the caller (result.reused)
	 * tries a new connection. */
	mc_smtp_client_reply_oneline(reply, text, sizeof(text));
	mc_smtp_client_end(c, MC_SMTP_CLIENT_ERR_CLOSED, MC_SMTP_CLIENT_TEMPFAIL,
	                   "4.4.2",
	                   mc_errorf("%s answered RSET on a reused connection "
	                             "with %u %s",
	                             c->remote, reply->code, text),
	                   reply->code != 421);
}
