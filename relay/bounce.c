/* Bounces: the DSN (RFC 3464, built by lib/dsn) for the recipients of a
 * queued message that failed for good, committed to the queue as a new
 * message from the null sender to the original sender, so that it is
 * delivered like any other (a local sender finds it in their INBOX).
 * Runs on a worker thread: it reads the original (for the returned
 * headers or message) and commits with fsyncs. */
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include "delivery_private.h"
#include "dsn.h"
#include "error.h"
#include "log.h"
#include "mem.h"

/* The original, mapped read-only; *size_r 0 and NULL when it cannot be
 * read (the DSN then goes without it: better than none). */
static void *
original_map(struct relay_queue *q, const char *id, size_t *size_r)
{
	const char *error;
	struct stat st;
	void *map = NULL;
	int fd;

	*size_r = 0;
	if (relay_queue_content_open(q, id, &fd, &error) < 0) {
		mc_warn("delivery dsn without the original id=%s error=\"%s\"",
		        id, error);
		return NULL;
	}
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd,
		           0);
		if (map == MAP_FAILED)
			map = NULL;
		else
			*size_r = (size_t)st.st_size;
	}
	close(fd);
	return map;
}

static enum mc_dsn_ret
dsn_ret(enum relay_queue_dsn_ret ret)
{
	return ret == RELAY_QUEUE_RET_FULL   ? MC_DSN_RET_FULL
	       : ret == RELAY_QUEUE_RET_HDRS ? MC_DSN_RET_HDRS
	                                     : MC_DSN_RET_NONE;
}

static int
dsn_commit(struct relay_queue *q, const struct relay_queue_envelope *env,
           const struct mc_dsn *dsn, struct relay_queue_envelope **dsn_env_r,
           const char **error_r)
{
	struct relay_queue_envelope *de = relay_queue_envelope_new();
	struct relay_queue_msg *msg = NULL;

	relay_queue_str_set(&de->sender, "");
	relay_queue_envelope_add_rcpt(de, env->sender);
	de->body = dsn->eightbit ? RELAY_QUEUE_BODY_8BITMIME
	                         : RELAY_QUEUE_BODY_7BIT;
	de->smtputf8 = dsn->smtputf8;
	relay_queue_str_set(&de->client.proto, "LOCAL");
	if (relay_queue_begin(q, &msg, error_r) < 0 ||
	    relay_queue_append(msg, dsn->data, dsn->size, error_r) < 0 ||
	    relay_queue_commit(&msg, de, error_r) < 0) {
		relay_queue_abort(&msg);
		relay_queue_envelope_free(&de);
		return -1;
	}
	*dsn_env_r = de;
	return 0;
}

int
dl_bounce_commit(struct relay_queue *q, const char *hostname,
                 const struct relay_queue_envelope *env,
                 const struct dl_bounce *bounces, size_t count,
                 struct relay_queue_envelope **dsn_env_r, const char **error_r)
{
	struct mc_dsn_rcpt *rcpts = mc_calloc(count, sizeof(*rcpts));
	struct mc_dsn dsn = {0};
	struct mc_dsn_message dm = {
	        .reporting_mta = hostname,
	        .sender = env->sender,
	        .envid = env->dsn_envid,
	        .ret = dsn_ret(env->dsn_ret),
	        .arrival = env->received,
	        .rcpts = rcpts,
	        .rcpt_count = count,
	        .received_from = env->client.rdns[0] != '\0' ? env->client.rdns
	                                                     : env->client.helo,
	};
	void *map;
	size_t size;
	int rc = -1;

	for (size_t i = 0; i < count; i++) {
		rcpts[i] = (struct mc_dsn_rcpt){
		        .address = bounces[i].address,
		        .orcpt = bounces[i].orcpt,
		        .action = MC_DSN_FAILED,
		        .status = bounces[i].status,
		        .remote_mta = bounces[i].remote,
		        .code = bounces[i].code,
		        .diagnostic = bounces[i].diagnostic,
		        .command = bounces[i].command,
		        .last_attempt = bounces[i].last_attempt,
		};
	}
	map = original_map(q, env->id, &size);
	dm.original = map;
	dm.original_size = size;
	if (mc_dsn_build(&dm, &dsn, error_r) == 0)
		rc = dsn_commit(q, env, &dsn, dsn_env_r, error_r);
	mc_dsn_fini(&dsn);
	if (map != NULL)
		munmap(map, size);
	free(rcpts);
	return rc;
}
