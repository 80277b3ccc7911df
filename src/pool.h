/*
 * pool.h - the worker pool: N threads fed by lock-free rings.
 *
 * Shape (DESIGN.md section 5):
 *  - every worker owns a bounded concurrencykit ring of task pointers; the
 *    coordinator is its only producer, the owner and idle thieves are its
 *    consumers (ck_ring SPMC: enqueue_spmc / dequeue_spmc);
 *  - a task names a preferred worker (the one whose source reader is
 *    already positioned at the task's start); the coordinator enqueues it
 *    there, an idle worker first drains its own ring and then steals from
 *    the others (starting at its right neighbour); it leaves a lone task
 *    queued for an idle worker to that worker, so tasks stay where their
 *    reader is unless the owner is busy;
 *  - finished tasks come back on per-worker SPSC completion rings that only
 *    the coordinator drains (not one MPSC ring: ck 0.7.1's multi-producer
 *    enqueue makes producers spin on each other, see pool.c); a worker whose
 *    completions are not collected stops taking tasks;
 *  - idle workers and a waiting coordinator sleep on ck_ec event counts
 *    (futex based), they never spin.
 *
 * Ownership: the caller owns every struct sl_task; the pool only passes
 * pointers. A task submitted must not be touched by the coordinator until
 * sl_pool_wait() hands it back.
 */
#ifndef SL_POOL_H
#define SL_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct sl_task {
  /* Set by the coordinator before submit. */
  uint64_t batch;
  uint32_t id;   /* index of the task in its batch */
  int prefer;    /* preferred worker index, or -1 for any */
  void *payload; /* what the task function works on (not owned) */
  /* Set by the pool / task function. */
  int worker; /* index of the worker that ran it */
  int rc;     /* the task function's return value */
  struct sl_error err;
};

/* Runs one task on worker `worker`; wctx is that worker's context from
 * worker_init. Returns 0 or a negative sl_err (and fills task->err).
 * @locality worker thread */
typedef int (*sl_task_fn)(struct sl_task *task, int worker, void *wctx,
                          void *arg);

/* Optional per-worker context, created and destroyed on the worker thread
 * itself (a source reader, a sink stage buffer...). init returns 0 or a
 * negative sl_err; a failing init fails sl_pool_new (the workers whose
 * init succeeded run fini first). fini runs after the worker's last task.
 * @locality worker thread */
typedef int (*sl_worker_init_fn)(int worker, void *arg, void **wctx,
                                 struct sl_error *err);
typedef void (*sl_worker_fini_fn)(int worker, void *arg, void *wctx);

struct sl_pool_config {
  unsigned workers;       /* >= 1 */
  unsigned ring_size;     /* per-worker ring capacity; power of two >= 4 */
  sl_task_fn run;         /* required */
  sl_worker_init_fn init; /* optional */
  sl_worker_fini_fn fini; /* optional */
  void *arg;              /* passed to run/init/fini */
};

struct sl_pool;

/* Starts the workers. Returns NULL and fills err on failure (thread
 * creation, a worker's init failing: the message of that init). */
struct sl_pool *sl_pool_new(const struct sl_pool_config *cfg,
                            struct sl_error *err);

/* Enqueues task to task->prefer (or to the least-loaded worker when
 * prefer < 0 or out of range); if that ring is full, to the least-loaded
 * ring with room. Resets task->worker (-1), task->rc (0) and task->err, so
 * a task struct can be submitted again after it came back.
 * Returns 0, or SL_ERR_AGAIN when every ring is full (wait for a completion
 * and submit again), or SL_ERR_INVAL for a NULL argument.
 * @locality coordinator thread only (single producer) */
int sl_pool_submit(struct sl_pool *p, struct sl_task *task);

/* Returns the next finished task, sleeping until one arrives or until
 * timeout_ns passes (NULL then). timeout_ns == 0 only polls; timeout_ns < 0
 * waits forever, except that it returns NULL at once when nothing is
 * pending (nothing could ever arrive). With a positive timeout it sleeps
 * even when nothing is pending, so it doubles as the coordinator's timed
 * sleep.
 * @locality coordinator thread only */
struct sl_task *sl_pool_wait(struct sl_pool *p, int64_t timeout_ns);

/* Number of submitted tasks not yet returned by sl_pool_wait.
 * @locality coordinator thread only */
unsigned sl_pool_pending(const struct sl_pool *p);

unsigned sl_pool_workers(const struct sl_pool *p);

/* Statistics, for tests and metrics: tasks run by each worker, and how
 * many of those it stole from another worker's ring (0 for an index out of
 * range). A task is counted once it has finished, before it is handed back.
 * @locality any thread */
uint64_t sl_pool_tasks_run(const struct sl_pool *p, unsigned worker);
uint64_t sl_pool_tasks_stolen(const struct sl_pool *p, unsigned worker);
/* Turns of a worker's work loop: one per wake-up of an idle worker (and
 * one at start). An idle pool's count stands still: its workers sleep on
 * the work event count instead of polling.
 * @locality any thread */
uint64_t sl_pool_work_passes(const struct sl_pool *p, unsigned worker);

/* Stops the workers after they finish the tasks already queued, joins
 * them (each runs fini), and frees the pool. Tasks still pending are
 * finished and dropped from the completion ring (their memory belongs to
 * the caller). NULL is allowed.
 * @locality coordinator thread only */
void sl_pool_destroy(struct sl_pool *p);

#endif
