/* Store connection pool on libuv's thread pool; see store_pool.h. */
#include "store_pool.h"

#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "mem.h"

struct pool_job {
	struct node_store_pool *pool;
	uv_work_t work;
	node_store_job_fn *fn;
	node_store_done_fn *done;
	void *arg;
	struct node_store **slot; /* the connection this job borrows */
	struct pool_job *next;
};

struct node_store_pool {
	uv_loop_t *loop;
	char *conninfo;
	unsigned size;
	struct node_store **conns; /* size slots; NULL = not open */
	bool *in_use;
	struct pool_job *head, **tail; /* waiting for a connection */
	unsigned running, queued;
	bool closing;
};

static void start_next(struct node_store_pool *pool);

static void
work_cb(uv_work_t *w)
{
	struct pool_job *job = w->data;
	const char *err = NULL;

	if (*job->slot == NULL && node_store_open(job->pool->conninfo, job->slot, &err) < 0) {
		job->fn(NULL, err, job->arg);
		return;
	}
	job->fn(*job->slot, NULL, job->arg);
}

static void
free_pool(struct node_store_pool *pool)
{
	for (unsigned i = 0; i < pool->size; i++)
		node_store_close(&pool->conns[i]);
	free(pool->conns);
	free(pool->in_use);
	free(pool->conninfo);
	free(pool);
}

static void
after_cb(uv_work_t *w, int status)
{
	struct pool_job *job = w->data;
	struct node_store_pool *pool = job->pool;

	(void)status;
	pool->in_use[job->slot - pool->conns] = false;
	pool->running--;
	job->done(job->arg);
	free(job);
	if (pool->closing && pool->running == 0 && pool->head == NULL) {
		free_pool(pool);
		return;
	}
	start_next(pool);
}

static void
start_next(struct node_store_pool *pool)
{
	while (pool->head != NULL) {
		struct pool_job *job = pool->head;
		unsigned i;

		for (i = 0; i < pool->size && pool->in_use[i]; i++)
			;
		if (i == pool->size)
			return;
		pool->head = job->next;
		if (pool->head == NULL)
			pool->tail = &pool->head;
		pool->queued--;
		pool->in_use[i] = true;
		pool->running++;
		job->slot = &pool->conns[i];
		job->work.data = job;
		uv_queue_work(pool->loop, &job->work, work_cb, after_cb);
	}
}

struct node_store_pool *
node_store_pool_new(uv_loop_t *loop, const char *conninfo, unsigned connections)
{
	struct node_store_pool *pool = mc_malloc(sizeof(*pool));

	pool->loop = loop;
	pool->conninfo = mc_strdup(conninfo);
	pool->size = connections > 0 ? connections : 1;
	pool->conns = mc_calloc(pool->size, sizeof(*pool->conns));
	pool->in_use = mc_calloc(pool->size, sizeof(*pool->in_use));
	pool->tail = &pool->head;
	return pool;
}

void
node_store_pool_run(struct node_store_pool *pool, node_store_job_fn *fn,
                    node_store_done_fn *done, void *arg)
{
	struct pool_job *job = mc_malloc(sizeof(*job));

	job->pool = pool;
	job->fn = fn;
	job->done = done;
	job->arg = arg;
	*pool->tail = job;
	pool->tail = &job->next;
	pool->queued++;
	start_next(pool);
}

unsigned
node_store_pool_busy(const struct node_store_pool *pool)
{
	return pool->running + pool->queued;
}

void
node_store_pool_close(struct node_store_pool **poolp)
{
	struct node_store_pool *pool = *poolp;

	if (pool == NULL)
		return;
	*poolp = NULL;
	pool->closing = true;
	if (pool->running == 0 && pool->head == NULL)
		free_pool(pool);
}
