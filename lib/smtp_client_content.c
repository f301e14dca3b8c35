/* The content pump of an SMTP/LMTP client session (see
 * smtp_client_private.h): takes the message SMTP_CLIENT_CHUNK bytes at a
 * time, from the caller's buffer or from a file through uv_fs_read on
 * libuv's thread pool (never blocking the loop on disk), dot-stuffs each
 * chunk into the write buffer and writes it, and goes on only while the
 * connection's output is below its high-water mark: once blocked it
 * returns and MC_CONN_DRAIN (or the file read completing) calls it again.
 * So at most a chunk of stuffed content is ever in our hands, whatever
 * the size of the message. */
#include "smtp_client_private.h"

#include "conn.h"
#include "error.h"

static void
send_end(struct mc_smtp_client *c)
{
	char end[MC_SMTP_CLIENT_STUFF_END];
	size_t n = mc_smtp_client_stuff_end(&c->stuffer, end);
	const char *error;

	if (mc_conn_write(c->conn, end, n, &error) < 0) {
		mc_smtp_client_write_failed(c, error);
		return;
	}
	c->dot_next = 0;
	mc_smtp_client_set_state(c, SC_DOT);
}

static void
on_fs_read(uv_fs_t *req)
{
	struct mc_smtp_client *c = req->data;
	ssize_t n = req->result;

	uv_fs_req_cleanup(req);
	c->fs_pending = false;
	if (c->final) { /* the session ended meanwhile */
		mc_smtp_client_settle(c);
		return;
	}
	if (n < 0) {
		mc_smtp_client_fail(c, MC_SMTP_CLIENT_ERR_LOCAL, "4.3.0",
		                    mc_errorf("reading the message: %s",
		                              uv_strerror((int)n)));
		return;
	}
	c->eof = n == 0;
	c->rlen = (size_t)n;
	c->roff = 0;
	mc_smtp_client_pump_content(c);
}

static void
start_read(struct mc_smtp_client *c)
{
	uv_buf_t b = uv_buf_init(c->rbuf, SMTP_CLIENT_CHUNK);
	int r;

	c->fs_req.data = c;
	r = uv_fs_read(c->loop, &c->fs_req, c->fd, &b, 1, (int64_t)c->offset,
	               on_fs_read);
	if (r < 0) {
		uv_fs_req_cleanup(&c->fs_req);
		mc_smtp_client_fail(
		        c, MC_SMTP_CLIENT_ERR_LOCAL, "4.3.0",
		        mc_errorf("reading the message: %s", uv_strerror(r)));
		return;
	}
	c->fs_pending = true;
}

void
mc_smtp_client_pump_content(struct mc_smtp_client *c)
{
	const char *src, *error;
	size_t avail, used, n;

	while (c->state == SC_CONTENT && !mc_conn_output_blocked(c->conn)) {
		if (c->use_fd) {
			if (c->roff == c->rlen) {
				if (c->eof)
					send_end(c);
				else if (!c->fs_pending)
					start_read(c);
				return;
			}
			src = c->rbuf + c->roff;
			avail = c->rlen - c->roff;
		} else {
			if (c->offset == c->size) {
				send_end(c);
				return;
			}
			src = (const char *)c->data + c->offset;
			avail = c->size - c->offset < SMTP_CLIENT_CHUNK
			                ? (size_t)(c->size - c->offset)
			                : SMTP_CLIENT_CHUNK;
		}
		n = mc_smtp_client_stuff(&c->stuffer, src, avail, &used,
		                         c->wbuf, 2 * SMTP_CLIENT_CHUNK);
		if (mc_conn_write(c->conn, c->wbuf, n, &error) < 0) {
			mc_smtp_client_write_failed(c, error);
			return;
		}
		c->offset += used;
		if (c->use_fd)
			c->roff += used;
	}
}
