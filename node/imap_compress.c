/* IMAP COMPRESS=DEFLATE (RFC 4978): after "OK DEFLATE active" both
 * directions are one raw deflate stream each. Input is inflated into the
 * session's zplain buffer (at most IMAP_ZPLAIN_MAX ahead of the command
 * reader, so a compression bomb cannot make the session buffer more);
 * output is deflated piece by piece with a sync flush, so every reply
 * reaches the client at once. Mobile clients on slow links gain most. */
#include "imap_private.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "log.h"
#include "mem.h"

struct imap_zstream {
	z_stream in, out;
};

void
imap_compress_free(struct imap_sess *s)
{
	if (s->z == NULL)
		return;
	inflateEnd(&s->z->in);
	deflateEnd(&s->z->out);
	free(s->z);
	s->z = NULL;
	mc_strbuf_fini(&s->zplain);
}

int
imap_compress_inflate(struct imap_sess *s, const char *data, size_t len,
                      const char **error_r)
{
	z_stream *zs = &s->z->in;

	zs->next_in = (Bytef *)(uintptr_t)data;
	zs->avail_in = (uInt)len;
	while (zs->avail_in > 0) {
		int rv;

		mc_strbuf_reserve(&s->zplain, 16384);
		zs->next_out = (Bytef *)s->zplain.data + s->zplain.len;
		zs->avail_out = (uInt)(s->zplain.cap - s->zplain.len - 1);
		rv = inflate(zs, Z_SYNC_FLUSH);
		s->zplain.len = (size_t)((char *)zs->next_out - s->zplain.data);
		s->zplain.data[s->zplain.len] = '\0';
		if (rv == Z_BUF_ERROR && zs->avail_in > 0)
			continue; /* more room was needed */
		if (rv != Z_OK && rv != Z_BUF_ERROR) {
			*error_r = rv == Z_STREAM_END ? "stream ended" : "invalid deflate data";
			return -1;
		}
		if (s->zplain.len > 4 * IMAP_ZPLAIN_MAX) {
			*error_r = "inflated input too large";
			return -1;
		}
	}
	return 0;
}

int
imap_compress_write(struct imap_sess *s, const char *data, size_t len,
                    const char **error_r)
{
	z_stream *zs = &s->z->out;
	unsigned char buf[16384];

	zs->next_in = (Bytef *)(uintptr_t)data;
	zs->avail_in = (uInt)len;
	do {
		zs->next_out = buf;
		zs->avail_out = sizeof(buf);
		if (deflate(zs, Z_SYNC_FLUSH) == Z_STREAM_ERROR) {
			*error_r = "deflate failed";
			return -1;
		}
		if (mc_conn_write(s->conn, buf, sizeof(buf) - zs->avail_out, error_r) < 0)
			return -1;
	} while (zs->avail_out == 0 || zs->avail_in > 0);
	return 0;
}

void
imap_cmd_compress(struct imap_sess *s, const struct mc_imap_command *cmd)
{
	struct imap_zstream *z;
	const char *err;

	if (cmd->nargs != 1 || !mc_imap_token_is(&cmd->args[0], "DEFLATE")) {
		imap_command_done(s, "BAD", NULL, "COMPRESS takes DEFLATE");
		return;
	}
	if (s->z != NULL) {
		imap_command_done(s, "NO", "COMPRESSIONACTIVE", "Already compressing");
		return;
	}
	z = mc_malloc(sizeof(*z));
	/* Raw deflate (negative window bits), no zlib header (RFC 4978). */
	if (inflateInit2(&z->in, -15) != Z_OK) {
		free(z);
		imap_command_done(s, "NO", NULL, "Cannot start compression");
		return;
	}
	if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
	                 Z_DEFAULT_STRATEGY) != Z_OK) {
		inflateEnd(&z->in);
		free(z);
		imap_command_done(s, "NO", NULL, "Cannot start compression");
		return;
	}
	/* The OK goes out uncompressed; everything after it compressed. */
	imap_outf(s, "%s OK DEFLATE active\r\n", s->tag);
	if (mc_conn_write(s->conn, s->out.data, s->out.len, &err) < 0)
		mc_debug("imap session=%" PRIu64 " write error=\"%s\"", s->id, err);
	mc_strbuf_reset(&s->out);
	s->z = z;
	imap_session_command_end(s);
}
