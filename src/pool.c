/*
 * pool.c - the worker pool (see pool.h and DESIGN.md section 5).
 *
 * Design notes
 * ============
 *
 * Queues. Every worker owns a ck_ring used in SPMC mode: the coordinator is
 * the single producer (ck_ring_enqueue_spmc), the owner and thieves are the
 * consumers (ck_ring_dequeue_spmc, the CAS-retrying multi-consumer dequeue;
 * ck_ring_trydequeue_spmc gives up on contention, which a thief does not
 * want). A ck ring of size S holds S - 1 entries, so each worker ring is
 * created with 2 * ring_size slots and the coordinator itself keeps the
 * occupancy at or below ring_size.
 *
 * Completions. Each worker also owns an SPSC completion ring (the worker
 * produces, the coordinator consumes). DESIGN.md asks for one MPSC ring,
 * but ck 0.7.1's multi-producer enqueue publishes in ticket order: a
 * producer that took a ticket spins (without yielding) until every earlier
 * ticket holder has published. A worker preempted between the two steps
 * stalls all others, and with more workers than cores that convoy is
 * permanent: 4 workers on 2 cores took minutes of spinning for 100000 tiny
 * tasks that take about a second otherwise. SPSC enqueues never wait on
 * another thread. The coordinator scans the completion rings round-robin.
 * A worker takes a task only while its completion ring has room, so a push
 * never fails; if the ring is full it sleeps on its "room" event count,
 * which the coordinator bumps for every task it collects from that ring.
 * Backpressure therefore reaches submit through the task rings: a worker
 * whose completions are not collected stops taking work, its ring fills up,
 * submit returns SL_ERR_AGAIN.
 *
 * Sleeping. ck_ec event counts. "work" is bumped after every submit and by
 * the start/stop state changes; idle workers sleep on it. "done" is bumped
 * after every completion and every init report; the coordinator sleeps on
 * it. "room" (one per worker) is described above. A sleeper snapshots the
 * count, looks at the rings, and waits only while the count still equals
 * the snapshot, so a wake-up between the look and the wait is never lost.
 * All counts use the multiple-producer mode: "done" has many producers, and
 * for the others (only the coordinator bumps them) the single-producer mode
 * would save a locked instruction per task but relies on x86-TSO store
 * forwarding and timed re-checks to notice a silently lost waiter flag; one
 * locked add is cheaper than that latency risk. The futex-based ck_ec_ops
 * live below.
 *
 * Stealing. An idle worker drains its own ring, then scans the others
 * starting at self + 1. It steals only from a worker that is busy (running
 * or about to take a task) or has more than one task queued: a lone task
 * queued for an idle worker is left to that worker, which is awake or being
 * woken by the same event, so the task runs where its source reader is
 * already positioned.
 *
 * ThreadSanitizer. ck_pr is inline assembly, which TSan cannot see, so the
 * ring indices and event counts carry no happens-before edges for it; the
 * ring slots themselves are plain memcpy()s, so TSan sees slot writes and
 * reads (and the benign read of a slot that a losing CAS consumer discards)
 * without any ordering. Release/acquire on a C11 counter cannot fix that:
 * the slot is read inside ck_ring_dequeue_spmc, before any code of ours
 * could acquire. So under TSan each ring is treated as an opaque primitive,
 * the way TSan treats a mutex: the accesses inside a ring operation are
 * ignored (AnnotateIgnoreReads/Writes), and the hand-off a ring performs is
 * modelled with __tsan_release(task) before enqueue and __tsan_acquire(task)
 * after dequeue, which orders the task's fields exactly like the real ring
 * does. Pool state read across threads (the run state, statistics, busy
 * flags, init results) uses C11 atomics, which TSan understands. Outside
 * TSan builds the annotations compile to nothing.
 */
#include "pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ck_ec.h>
#include <ck_ring.h>

/* A worker's stack. A record's row is walked recursively (parsing,
 * select, templates, output) down to SL_JSON_MAX_DEPTH levels (json.h);
 * 64 MiB holds that with room to spare, 256 MiB under the sanitizers,
 * whose frames are several times larger. Only touched pages take memory. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SL_POOL_STACK_BYTES ((size_t)256 << 20)
#else
#define SL_POOL_STACK_BYTES ((size_t)64 << 20)
#endif

/* ---- ThreadSanitizer annotations ---------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define SL_POOL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SL_POOL_TSAN 1
#endif
#endif

#ifdef SL_POOL_TSAN
#include <sanitizer/tsan_interface.h>
/* Dynamic annotations exported by libtsan (no public header declares them). */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
#define SL_TSAN_RELEASE(addr) __tsan_release(addr)
#define SL_TSAN_ACQUIRE(addr) __tsan_acquire(addr)
#define SL_TSAN_OPAQUE_BEGIN()                                                 \
  do {                                                                         \
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);                              \
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);                             \
  } while (0)
#define SL_TSAN_OPAQUE_END()                                                   \
  do {                                                                         \
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);                               \
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);                                \
  } while (0)
#else
#define SL_TSAN_RELEASE(addr) ((void)(addr))
#define SL_TSAN_ACQUIRE(addr) ((void)(addr))
#define SL_TSAN_OPAQUE_BEGIN()                                                 \
  do {                                                                         \
  } while (0)
#define SL_TSAN_OPAQUE_END()                                                   \
  do {                                                                         \
  } while (0)
#endif

/* ---- event counts: futex-backed ck_ec ---------------------------------- */

/* 64-bit counts (practically free of ABA) where ck has them. ck_ec64 waits
 * on the low half of the counter word, which is its first four bytes only
 * on a little-endian machine (ck_ec64 is x86-64 only anyway). */
#ifdef CK_F_EC64
typedef struct ck_ec64 sl_ec_t;
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "ck_ec64 futex word needs a little-endian machine");
#else
typedef struct ck_ec32 sl_ec_t;
#endif

/* @locality any thread */
static int sl_ec_gettime(const struct ck_ec_ops *ops, struct timespec *out) {
  (void)ops;
  /* ck_ec deadlines are absolute CLOCK_MONOTONIC times. */
  return clock_gettime(CLOCK_MONOTONIC, out);
}

/* Sleeps while the 32-bit word at addr equals expected, until the absolute
 * CLOCK_MONOTONIC deadline (NULL: no deadline). FUTEX_WAIT_BITSET takes an
 * absolute monotonic timeout, which is what ck_ec hands us. Early returns
 * (EINTR, EAGAIN, ETIMEDOUT) are fine: ck_ec re-checks the count.
 * @locality any thread */
static void sl_futex_wait(const void *addr, uint32_t expected,
                          const struct timespec *deadline) {
  (void)syscall(SYS_futex, addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY);
}

/* @locality any thread */
static void sl_futex_wake_all(const void *addr) {
  (void)syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL,
                NULL, 0);
}

/* @locality any thread */
static void sl_ec_wait32(const struct ck_ec_wait_state *state,
                         const uint32_t *addr, uint32_t expected,
                         const struct timespec *deadline) {
  (void)state;
  sl_futex_wait(addr, expected, deadline);
}

/* @locality any thread */
static void sl_ec_wake32(const struct ck_ec_ops *ops, const uint32_t *addr) {
  (void)ops;
  sl_futex_wake_all(addr);
}

#ifdef CK_F_EC64
/* @locality any thread */
static void sl_ec_wait64(const struct ck_ec_wait_state *state,
                         const uint64_t *addr, uint64_t expected,
                         const struct timespec *deadline) {
  (void)state;
  sl_futex_wait(addr, (uint32_t)expected, deadline);
}

/* @locality any thread */
static void sl_ec_wake64(const struct ck_ec_ops *ops, const uint64_t *addr) {
  (void)ops;
  sl_futex_wake_all(addr);
}
#endif

static const struct ck_ec_ops sl_ec_ops = {
    .gettime = sl_ec_gettime,
    .wait32 = sl_ec_wait32,
    .wake32 = sl_ec_wake32,
#ifdef CK_F_EC64
    .wait64 = sl_ec_wait64,
    .wake64 = sl_ec_wake64,
#endif
    /* A short spin before the futex: a task usually takes far longer than
     * a few hundred cycles, so spinning longer only burns the core. */
    .busy_loop_iter = 16,
};

static const struct ck_ec_mode sl_ec_mode = {
    .ops = &sl_ec_ops,
    .single_producer = false,
};

/* ck_ec sleeps in growing steps (2 ms, 16 ms, 128 ms, then about 1 s) and
 * does not cut a step at the caller's deadline: a 200 ms timeout would
 * sleep about a second. As a ck_ec_wait_pred predicate this clamps each
 * step to the deadline in state->data (moving a step earlier is allowed).
 * @locality any thread */
static int sl_ec_clamp_step(const struct ck_ec_wait_state *state,
                            struct timespec *step) {
  const struct timespec *deadline = state->data;
  if (step->tv_sec > deadline->tv_sec ||
      (step->tv_sec == deadline->tv_sec && step->tv_nsec > deadline->tv_nsec))
    *step = *deadline;
  return 0;
}

/* ---- pool structures ---------------------------------------------------- */

#define SL_POOL_MAX_WORKERS 4096u
#define SL_POOL_MAX_RING    (1u << 20)

enum sl_pool_state {
  SL_POOL_STARTING = 0, /* workers run init, then wait for the verdict */
  SL_POOL_RUNNING = 1,
  SL_POOL_ABORTED = 2, /* some init failed: fini and exit */
  SL_POOL_STOPPING = 3 /* destroy: run what is queued, fini and exit */
};

enum sl_init_state { SL_INIT_PENDING = 0, SL_INIT_OK = 1, SL_INIT_FAILED = 2 };

struct sl_worker {
  /* ck pads the consumer and producer halves of a ring apart. */
  struct ck_ring ring; /* tasks: coordinator -> owner and thieves */
  struct ck_ring done; /* finished tasks: owner -> coordinator */
  sl_ec_t room_ec __attribute__((aligned(64)));
  struct ck_ring_buffer *slots;
  struct ck_ring_buffer *done_slots;
  struct sl_pool *pool;
  unsigned index;
  bool started; /* thread created (coordinator only) */
  pthread_t thread;
  void *wctx;               /* worker thread only */
  struct sl_error init_err; /* written before init_state is published */
  _Atomic int init_state;   /* enum sl_init_state */
  _Atomic bool busy;        /* owner is running or taking tasks */
  _Atomic uint64_t tasks_run;
  _Atomic uint64_t tasks_stolen;
  _Atomic uint64_t passes; /* turns of the work loop (sl_pool_work) */
} __attribute__((aligned(64)));

struct sl_pool {
  sl_ec_t work_ec __attribute__((aligned(64)));
  sl_ec_t done_ec __attribute__((aligned(64)));
  _Atomic int state __attribute__((aligned(64))); /* enum sl_pool_state */
  struct sl_pool_config cfg;
  struct sl_worker *workers;
  unsigned nworkers;
  unsigned pending; /* coordinator only */
  unsigned rr;      /* coordinator only: where submit's load ties start */
  unsigned done_rr; /* coordinator only: completion ring to look at first */
};

/* ---- ring wrappers (opaque to TSan, see the header comment) ------------- */

/* @locality coordinator thread */
static bool sl_ring_push_task(struct sl_worker *w, struct sl_task *t) {
  bool ok;
  SL_TSAN_RELEASE(t);
  SL_TSAN_OPAQUE_BEGIN();
  ok = ck_ring_enqueue_spmc(&w->ring, w->slots, t);
  SL_TSAN_OPAQUE_END();
  return ok;
}

/* @locality worker threads (owner and thieves) */
static struct sl_task *sl_ring_pop_task(struct sl_worker *w) {
  struct sl_task *t = NULL;
  bool ok;
  SL_TSAN_OPAQUE_BEGIN();
  ok = ck_ring_dequeue_spmc(&w->ring, w->slots, &t);
  SL_TSAN_OPAQUE_END();
  if (!ok)
    return NULL;
  SL_TSAN_ACQUIRE(t);
  return t;
}

/* @locality worker thread (owner of w) */
static bool sl_ring_push_done(struct sl_worker *w, struct sl_task *t) {
  bool ok;
  SL_TSAN_RELEASE(t);
  SL_TSAN_OPAQUE_BEGIN();
  ok = ck_ring_enqueue_spsc(&w->done, w->done_slots, t);
  SL_TSAN_OPAQUE_END();
  return ok;
}

/* @locality coordinator thread */
static struct sl_task *sl_ring_pop_done(struct sl_worker *w) {
  struct sl_task *t = NULL;
  bool ok;
  SL_TSAN_OPAQUE_BEGIN();
  ok = ck_ring_dequeue_spsc(&w->done, w->done_slots, &t);
  SL_TSAN_OPAQUE_END();
  if (!ok)
    return NULL;
  SL_TSAN_ACQUIRE(t);
  return t;
}

/* Entries in ring. For the ring's producer: exact about its own enqueues,
 * possibly too high about concurrent dequeues (so "has room" is safe). For
 * anyone else only a hint.
 * @locality any thread */
static unsigned sl_ring_len(const struct ck_ring *ring) {
  return ck_ring_size(ring);
}

/* ---- worker side -------------------------------------------------------- */

/* May a thief take from victim? See "Stealing" above.
 * @locality worker thread (the thief) */
static bool sl_pool_stealable(const struct sl_worker *victim) {
  return atomic_load(&victim->busy) || sl_ring_len(&victim->ring) > 1;
}

/* Next task for worker self: its own ring first, then the others from
 * self + 1 round-robin. *stolen says whether it came from another ring.
 * @locality worker thread */
static struct sl_task *sl_pool_take(struct sl_pool *p, unsigned self,
                                    bool *stolen) {
  struct sl_task *t = sl_ring_pop_task(&p->workers[self]);
  if (t) {
    *stolen = false;
    return t;
  }
  for (unsigned k = 1; k < p->nworkers; k++) {
    struct sl_worker *victim = &p->workers[(self + k) % p->nworkers];
    if (!sl_pool_stealable(victim))
      continue;
    t = sl_ring_pop_task(victim);
    if (t) {
      *stolen = true;
      return t;
    }
  }
  return NULL;
}

/* Waits until w's completion ring has room for one more task, or the pool
 * is stopping (destroy drops completions, they need no room then).
 * @locality worker thread (owner of w) */
static void sl_pool_await_room(struct sl_pool *p, struct sl_worker *w) {
  const unsigned cap = ck_ring_capacity(&w->done) - 1;

  if (sl_ring_len(&w->done) < cap)
    return;
  for (;;) {
    uint64_t seen = ck_ec_value(&w->room_ec);
    if (sl_ring_len(&w->done) < cap ||
        atomic_load(&p->state) == SL_POOL_STOPPING)
      return;
    ck_ec_wait(&w->room_ec, &sl_ec_mode, seen, NULL);
  }
}

/* Runs one task and hands it back to the coordinator.
 * @locality worker thread */
static void sl_pool_run_task(struct sl_pool *p, struct sl_worker *w,
                             struct sl_task *t, bool stolen) {
  int rc;

  t->worker = (int)w->index;
  rc = p->cfg.run(t, (int)w->index, w->wctx, p->cfg.arg);
  if (rc < 0 && t->err.code == SL_OK)
    sl_error_set(&t->err, rc, "task %u of batch %llu failed: %s", t->id,
                 (unsigned long long)t->batch, sl_err_name(rc));
  t->rc = rc;
  atomic_fetch_add_explicit(&w->tasks_run, 1, memory_order_relaxed);
  if (stolen)
    atomic_fetch_add_explicit(&w->tasks_stolen, 1, memory_order_relaxed);

  /* The room was checked before the task was taken, and only this thread
   * pushes to w->done; a full ring means the pool is stopping and nobody
   * will collect the task any more: destroy drops it anyway. */
  if (sl_ring_push_done(w, t))
    ck_ec_inc(&p->done_ec, &sl_ec_mode);
}

/* Waits until sl_pool_new has decided whether the pool starts or aborts;
 * returns that state.
 * @locality worker thread */
static int sl_pool_await_start(struct sl_pool *p) {
  for (;;) {
    uint64_t seen = ck_ec_value(&p->work_ec);
    int st = atomic_load(&p->state);
    if (st != SL_POOL_STARTING)
      return st;
    ck_ec_wait(&p->work_ec, &sl_ec_mode, seen, NULL);
  }
}

/* The work loop: take and run tasks while there are any, sleep on the work
 * event count when there are none, exit once stopping with nothing left in
 * the own ring. The stop state is read before the rings are looked at: the
 * coordinator enqueues every task before it publishes the stop, so a worker
 * that saw the stop and then found its own ring empty will never see a task
 * there again. A lone task left in another ring belongs to a live worker
 * that does the same.
 * @locality worker thread */
static void sl_pool_work(struct sl_pool *p, struct sl_worker *w) {
  for (;;) {
    atomic_fetch_add_explicit(&w->passes, 1, memory_order_relaxed);
    uint64_t seen = ck_ec_value(&p->work_ec);
    bool stopping = atomic_load(&p->state) == SL_POOL_STOPPING;
    struct sl_task *t;
    bool stolen = false;

    atomic_store(&w->busy, true);
    for (;;) {
      sl_pool_await_room(p, w);
      t = sl_pool_take(p, w->index, &stolen);
      if (!t)
        break;
      sl_pool_run_task(p, w, t, stolen);
    }
    atomic_store(&w->busy, false);

    if (stopping)
      return;
    ck_ec_wait(&p->work_ec, &sl_ec_mode, seen, NULL);
  }
}

/* @locality worker thread */
static void *sl_pool_worker_main(void *arg) {
  struct sl_worker *w = arg;
  struct sl_pool *p = w->pool;
  char name[16];
  int rc = 0;

  snprintf(name, sizeof(name), "sl-worker-%u", w->index);
  pthread_setname_np(pthread_self(), name);

  if (p->cfg.init) {
    rc = p->cfg.init((int)w->index, p->cfg.arg, &w->wctx, &w->init_err);
    if (rc < 0 && w->init_err.code == SL_OK)
      sl_error_set(&w->init_err, rc, "worker %u: init failed: %s", w->index,
                   sl_err_name(rc));
  }
  atomic_store_explicit(&w->init_state, rc < 0 ? SL_INIT_FAILED : SL_INIT_OK,
                        memory_order_release);
  ck_ec_inc(&p->done_ec, &sl_ec_mode);
  if (rc < 0)
    return NULL;

  /* RUNNING, or already STOPPING when destroy came before this thread
   * woke up: either way the queued tasks are to be run. */
  if (sl_pool_await_start(p) != SL_POOL_ABORTED)
    sl_pool_work(p, w);

  if (p->cfg.fini)
    p->cfg.fini((int)w->index, p->cfg.arg, w->wctx);
  return NULL;
}

/* ---- coordinator side --------------------------------------------------- */

static bool sl_is_pow2(unsigned v) {
  return v && !(v & (v - 1));
}

static int sl_pool_check_config(const struct sl_pool_config *cfg,
                                struct sl_error *err) {
  if (!cfg)
    return sl_error_set(err, SL_ERR_INVAL, "pool: no configuration");
  if (!cfg->run)
    return sl_error_set(err, SL_ERR_INVAL, "pool: no task function");
  if (cfg->workers < 1 || cfg->workers > SL_POOL_MAX_WORKERS)
    return sl_error_set(err, SL_ERR_INVAL,
                        "pool: workers must be between 1 and %u, not %u",
                        SL_POOL_MAX_WORKERS, cfg->workers);
  if (!sl_is_pow2(cfg->ring_size) || cfg->ring_size < 4 ||
      cfg->ring_size > SL_POOL_MAX_RING)
    return sl_error_set(err, SL_ERR_INVAL,
                        "pool: ring_size must be a power of two between 4 "
                        "and %u, not %u",
                        SL_POOL_MAX_RING, cfg->ring_size);
  return 0;
}

/* Zeroed memory aligned to a cache line (aligned_alloc wants the size to
 * be a multiple of the alignment). */
static void *sl_pool_alloc(size_t size) {
  size_t rounded = (size + 63) & ~(size_t)63;
  void *m = aligned_alloc(64, rounded);
  if (m)
    memset(m, 0, rounded);
  return m;
}

/* Frees everything; the threads must be joined (or never started). */
static void sl_pool_free(struct sl_pool *p) {
  if (!p)
    return;
  if (p->workers) {
    for (unsigned i = 0; i < p->nworkers; i++) {
      free(p->workers[i].slots);
      free(p->workers[i].done_slots);
    }
    free(p->workers);
  }
  free(p);
}

/* Publishes a new state to the workers and wakes them.
 * @locality coordinator thread */
static void sl_pool_set_state(struct sl_pool *p, int state) {
  atomic_store(&p->state, state);
  ck_ec_inc(&p->work_ec, &sl_ec_mode);
  /* Workers waiting for room in their completion ring must see STOPPING. */
  for (unsigned i = 0; i < p->nworkers; i++)
    ck_ec_inc(&p->workers[i].room_ec, &sl_ec_mode);
}

/* @locality coordinator thread */
static void sl_pool_join(struct sl_pool *p) {
  for (unsigned i = 0; i < p->nworkers; i++) {
    if (p->workers[i].started)
      pthread_join(p->workers[i].thread, NULL);
    p->workers[i].started = false;
  }
}

/* Waits until every started worker has reported its init; returns the
 * first failed worker, or NULL.
 * @locality coordinator thread */
static struct sl_worker *sl_pool_await_init(struct sl_pool *p) {
  for (;;) {
    uint64_t seen = ck_ec_value(&p->done_ec);
    struct sl_worker *failed = NULL;
    bool all = true;
    for (unsigned i = 0; i < p->nworkers; i++) {
      struct sl_worker *w = &p->workers[i];
      int st;
      if (!w->started)
        continue;
      st = atomic_load_explicit(&w->init_state, memory_order_acquire);
      if (st == SL_INIT_PENDING)
        all = false;
      else if (st == SL_INIT_FAILED && !failed)
        failed = w;
    }
    if (all)
      return failed;
    ck_ec_wait(&p->done_ec, &sl_ec_mode, seen, NULL);
  }
}

struct sl_pool *sl_pool_new(const struct sl_pool_config *cfg,
                            struct sl_error *err) {
  struct sl_pool *p = NULL;
  struct sl_worker *failed;
  sigset_t all, old;
  unsigned n, slots;
  int rc;

  if (sl_pool_check_config(cfg, err) < 0)
    return NULL;
  n = cfg->workers;
  /* A ck ring of 2 * ring_size slots holds 2 * ring_size - 1 entries: the
   * task rings are kept at ring_size by submit, completion rings use all. */
  slots = 2 * cfg->ring_size;

  p = sl_pool_alloc(sizeof(*p));
  if (!p)
    goto nomem;
  p->cfg = *cfg;
  p->nworkers = n;
  p->workers = sl_pool_alloc(sizeof(*p->workers) * n);
  if (!p->workers)
    goto nomem;
  for (unsigned i = 0; i < n; i++) {
    struct sl_worker *w = &p->workers[i];
    w->pool = p;
    w->index = i;
    ck_ring_init(&w->ring, slots);
    ck_ring_init(&w->done, slots);
    w->slots = calloc(slots, sizeof(*w->slots));
    w->done_slots = calloc(slots, sizeof(*w->done_slots));
    if (!w->slots || !w->done_slots)
      goto nomem;
    ck_ec_init(&w->room_ec, 0);
    atomic_init(&w->init_state, SL_INIT_PENDING);
    atomic_init(&w->busy, false);
    atomic_init(&w->tasks_run, 0);
    atomic_init(&w->tasks_stolen, 0);
  }
  ck_ec_init(&p->work_ec, 0);
  ck_ec_init(&p->done_ec, 0);
  atomic_init(&p->state, SL_POOL_STARTING);

  /* Workers take no asynchronous signals: those belong to the thread that
   * waits for them (SIGINT/SIGTERM handling in the main loop). */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, SL_POOL_STACK_BYTES);
  rc = 0;
  for (unsigned i = 0; i < n && rc == 0; i++) {
    rc = pthread_create(&p->workers[i].thread, &attr, sl_pool_worker_main,
                        &p->workers[i]);
    if (rc == 0)
      p->workers[i].started = true;
    else
      sl_error_set(err, SL_ERR_NOMEM, "pool: cannot start worker %u: %s", i,
                   strerror(rc));
  }
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);

  failed = sl_pool_await_init(p);
  if (rc == 0 && failed) {
    if (err)
      *err = failed->init_err;
    rc = -1;
  }
  if (rc != 0)
    goto abort_start;

  sl_pool_set_state(p, SL_POOL_RUNNING);
  return p;

abort_start:
  sl_pool_set_state(p, SL_POOL_ABORTED);
  sl_pool_join(p);
  sl_pool_free(p);
  return NULL;
nomem:
  sl_error_set(err, SL_ERR_NOMEM, "pool: out of memory");
  sl_pool_free(p);
  return NULL;
}

/* The worker a task goes to: the preferred one if it has room, else the
 * least loaded with room (ties broken round-robin), else NULL.
 * @locality coordinator thread */
static struct sl_worker *sl_pool_pick(struct sl_pool *p, int prefer) {
  struct sl_worker *best = NULL;
  unsigned best_len = p->cfg.ring_size;

  if (prefer >= 0 && (unsigned)prefer < p->nworkers &&
      sl_ring_len(&p->workers[prefer].ring) < p->cfg.ring_size)
    return &p->workers[prefer];
  for (unsigned k = 0; k < p->nworkers; k++) {
    struct sl_worker *w = &p->workers[(p->rr + k) % p->nworkers];
    unsigned len = sl_ring_len(&w->ring);
    if (len < best_len) {
      best = w;
      best_len = len;
      if (len == 0)
        break;
    }
  }
  p->rr = (p->rr + 1) % p->nworkers;
  return best;
}

int sl_pool_submit(struct sl_pool *p, struct sl_task *task) {
  struct sl_worker *w;

  if (!p || !task)
    return SL_ERR_INVAL;
  w = sl_pool_pick(p, task->prefer);
  if (!w)
    return SL_ERR_AGAIN;

  task->worker = -1;
  task->rc = 0;
  sl_error_clear(&task->err);
  /* Cannot fail: sl_pool_pick saw fewer than ring_size of the ring's
   * 2 * ring_size - 1 entries taken, and only this thread enqueues. */
  if (!sl_ring_push_task(w, task))
    return SL_ERR_AGAIN;
  p->pending++;
  ck_ec_inc(&p->work_ec, &sl_ec_mode);
  return 0;
}

/* Takes one finished task from the completion rings, scanning them
 * round-robin, and tells its worker there is room again.
 * @locality coordinator thread */
static struct sl_task *sl_pool_collect(struct sl_pool *p) {
  for (unsigned k = 0; k < p->nworkers; k++) {
    unsigned i = (p->done_rr + k) % p->nworkers;
    struct sl_worker *w = &p->workers[i];
    struct sl_task *t = sl_ring_pop_done(w);
    if (t) {
      ck_ec_inc(&w->room_ec, &sl_ec_mode);
      p->done_rr = (i + 1) % p->nworkers;
      p->pending--;
      return t;
    }
  }
  return NULL;
}

struct sl_task *sl_pool_wait(struct sl_pool *p, int64_t timeout_ns) {
  struct timespec deadline;
  bool have_deadline = false;

  if (!p)
    return NULL;
  for (;;) {
    uint64_t seen = ck_ec_value(&p->done_ec);
    struct sl_task *t = sl_pool_collect(p);
    if (t)
      return t;
    if (timeout_ns == 0 || (timeout_ns < 0 && p->pending == 0))
      return NULL;
    if (timeout_ns > 0 && !have_deadline) {
      struct timespec rel = {.tv_sec = (time_t)(timeout_ns / 1000000000),
                             .tv_nsec = (long)(timeout_ns % 1000000000)};
      if (ck_ec_deadline(&deadline, &sl_ec_mode, &rel) != 0)
        return NULL;
      have_deadline = true;
    }
    if (!have_deadline)
      ck_ec_wait(&p->done_ec, &sl_ec_mode, seen, NULL);
    else if (ck_ec_wait_pred(&p->done_ec, &sl_ec_mode, seen, sl_ec_clamp_step,
                             &deadline, &deadline) != 0)
      timeout_ns = 0; /* one last look at the rings, then NULL */
  }
}

unsigned sl_pool_pending(const struct sl_pool *p) {
  return p ? p->pending : 0;
}

unsigned sl_pool_workers(const struct sl_pool *p) {
  return p ? p->nworkers : 0;
}

uint64_t sl_pool_tasks_run(const struct sl_pool *p, unsigned worker) {
  if (!p || worker >= p->nworkers)
    return 0;
  return atomic_load_explicit(&p->workers[worker].tasks_run,
                              memory_order_relaxed);
}

uint64_t sl_pool_tasks_stolen(const struct sl_pool *p, unsigned worker) {
  if (!p || worker >= p->nworkers)
    return 0;
  return atomic_load_explicit(&p->workers[worker].tasks_stolen,
                              memory_order_relaxed);
}

uint64_t sl_pool_work_passes(const struct sl_pool *p, unsigned worker) {
  if (!p || worker >= p->nworkers)
    return 0;
  return atomic_load_explicit(&p->workers[worker].passes, memory_order_relaxed);
}

void sl_pool_destroy(struct sl_pool *p) {
  if (!p)
    return;
  sl_pool_set_state(p, SL_POOL_STOPPING);
  sl_pool_join(p);
  /* The workers are gone: drop what they finished (the caller owns it). */
  while (sl_pool_collect(p))
    ;
  sl_pool_free(p);
}
