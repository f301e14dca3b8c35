/* Runs mailbox store work (blocking libpq, node/store.h) on libuv's
 * worker threads so the node's loop never waits on Postgres. The pool owns
 * up to N store connections; a job borrows one for its duration, jobs
 * beyond N wait in FIFO order. Connections are opened lazily inside the
 * worker (so a node starts while the database is away) and reopened after
 * a failure; a job whose connection cannot be opened gets store == NULL
 * and the reason, and must answer "temporary failure".
 *
 * Loop thread for every call here; job functions run on a worker thread
 * and may only touch the store and their own argument. */
#ifndef NODE_STORE_POOL_H
#define NODE_STORE_POOL_H

#include <uv.h>

#include "store.h"

struct node_store_pool;

/* Worker thread: store is NULL when no connection could be had (error
 * says why, valid during the call). */
typedef void node_store_job_fn(struct node_store *store, const char *error,
                               void *arg);
/* Loop thread, after the job ran. */
typedef void node_store_done_fn(void *arg);

struct node_store_pool *node_store_pool_new(uv_loop_t *loop,
                                            const char *conninfo,
                                            unsigned connections);
/* Queue a job. Never fails: the queue is bounded by the callers (one job
 * per message being delivered, and the LMTP listener bounds sessions). */
void node_store_pool_run(struct node_store_pool *pool, node_store_job_fn *job,
                         node_store_done_fn *done, void *arg);
/* Jobs queued or running. */
unsigned node_store_pool_busy(const struct node_store_pool *pool);
/* Free the pool once every queued and running job has finished (their
 * done callbacks still run); *pool is set to NULL. */
void node_store_pool_close(struct node_store_pool **pool);

#endif
