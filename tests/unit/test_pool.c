/*
 * test_pool.c - the worker pool: delivery exactly once, stealing, errors,
 * start-up failure, timeouts, idle sleeping and draining on destroy.
 *
 * cmocka assertions only run on the test thread: task, init and fini
 * functions record what they saw in atomics that the test checks after.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "src/pool.h"
#include "src/util.h"

#define MS (1000000LL)

/* ---- helpers ------------------------------------------------------------ */

/* A one-shot gate: threads wait until the test opens it. */
struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;
};

static void gate_init(struct gate *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->open = false;
}

static void gate_open(struct gate *g) {
  pthread_mutex_lock(&g->mu);
  g->open = true;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void gate_pass(struct gate *g) {
  pthread_mutex_lock(&g->mu);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static void gate_fini(struct gate *g) {
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

static int count_threads(void) {
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  int n = 0;
  assert_non_null(d);
  while ((e = readdir(d)))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* The thread count once it is `want`: a thread that pthread_join already
 * returned for can stay listed in /proc/self/task for a moment (seen once
 * in a few hundred runs), so this waits for the count, up to 5 s. */
static int threads_settle(int want) {
  int n = count_threads();
  for (int i = 0; i < 5000 && n != want; i++) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
    n = count_threads();
  }
  return n;
}

static struct sl_pool *new_pool(unsigned workers, unsigned ring_size,
                                sl_task_fn run, void *arg) {
  struct sl_pool_config cfg = {
      .workers = workers, .ring_size = ring_size, .run = run, .arg = arg};
  struct sl_error err;
  struct sl_pool *p;
  sl_error_clear(&err);
  p = sl_pool_new(&cfg, &err);
  if (!p)
    fail_msg("sl_pool_new: %s", err.msg);
  return p;
}

/* Submits t, collecting completions into collect() while the pool is full. */
static void submit_or_drain(struct sl_pool *p, struct sl_task *t,
                            void (*collect)(struct sl_task *, void *),
                            void *cctx) {
  int rc;
  while ((rc = sl_pool_submit(p, t)) == SL_ERR_AGAIN) {
    struct sl_task *done = sl_pool_wait(p, -1);
    assert_non_null(done);
    collect(done, cctx);
  }
  assert_int_equal(rc, 0);
}

/* ---- 1 worker, 100 tasks ------------------------------------------------ */

static int expected_rc(uint32_t id) {
  return id % 7 == 3 ? SL_ERR_SOURCE : 0;
}

static int run_rc_by_id(struct sl_task *t, int worker, void *wctx, void *arg) {
  int rc = expected_rc(t->id);
  if (rc < 0)
    return sl_error_set(&t->err, rc, "task %u: source gone", t->id);
  return rc;
}

struct seen {
  unsigned n;
  unsigned *count;
  unsigned wrong_rc;
  unsigned wrong_worker;
  int only_worker; /* -1: any */
};

static void collect_seen(struct sl_task *t, void *cctx) {
  struct seen *s = cctx;
  assert_in_range(t->id, 0, s->n - 1);
  s->count[t->id]++;
  if (t->rc != expected_rc(t->id))
    s->wrong_rc++;
  if (t->worker < 0 || (s->only_worker >= 0 && t->worker != s->only_worker))
    s->wrong_worker++;
}

static void test_one_worker_hundred_tasks(void **state) {
  enum { N = 100 };
  struct sl_task tasks[N];
  unsigned count[N] = {0};
  struct seen s = {.n = N, .count = count, .only_worker = 0};
  struct sl_pool *p = new_pool(1, 8, run_rc_by_id, NULL);
  struct sl_task *t;

  assert_int_equal(sl_pool_workers(p), 1);
  memset(tasks, 0, sizeof(tasks));
  for (uint32_t i = 0; i < N; i++) {
    tasks[i].batch = 1;
    tasks[i].id = i;
    /* -1 and out-of-range preferences fall back to the least loaded. */
    tasks[i].prefer = (int)(i % 3) - 1 + (i % 5 == 0 ? 40 : 0);
    submit_or_drain(p, &tasks[i], collect_seen, &s);
  }
  while (sl_pool_pending(p) > 0) {
    t = sl_pool_wait(p, -1);
    assert_non_null(t);
    collect_seen(t, &s);
  }
  for (unsigned i = 0; i < N; i++)
    assert_int_equal(count[i], 1);
  assert_int_equal(s.wrong_rc, 0);
  assert_int_equal(s.wrong_worker, 0);
  for (unsigned i = 0; i < N; i++)
    if (expected_rc(i) < 0) {
      assert_int_equal(tasks[i].err.code, SL_ERR_SOURCE);
      assert_non_null(strstr(tasks[i].err.msg, "source gone"));
    } else {
      assert_int_equal(tasks[i].err.code, SL_OK);
    }
  assert_int_equal(sl_pool_tasks_run(p, 0), N);
  assert_int_equal(sl_pool_tasks_stolen(p, 0), 0);
  assert_int_equal(sl_pool_tasks_run(p, 1), 0); /* out of range */
  sl_pool_destroy(p);
}

/* ---- 4 workers, 100000 tiny tasks --------------------------------------- */

#define MANY       100000u
#define MANY_SLOTS 1024u

struct many {
  struct sl_task slots[MANY_SLOTS];
  uint32_t out[MANY_SLOTS]; /* written by the task function */
  unsigned free_list[MANY_SLOTS];
  unsigned nfree;
  uint8_t done[MANY / 8];
  unsigned twice, bad_out;
};

static int run_double_id(struct sl_task *t, int worker, void *wctx, void *arg) {
  *(uint32_t *)t->payload = t->id * 2u;
  return 0;
}

static void collect_many(struct sl_task *t, void *cctx) {
  struct many *m = cctx;
  unsigned slot = (unsigned)(t - m->slots);
  assert_in_range(slot, 0, MANY_SLOTS - 1);
  assert_in_range(t->id, 0, MANY - 1);
  if (m->done[t->id / 8] & (1u << (t->id % 8)))
    m->twice++;
  m->done[t->id / 8] |= (uint8_t)(1u << (t->id % 8));
  if (m->out[slot] != t->id * 2u || t->rc != 0)
    m->bad_out++;
  m->free_list[m->nfree++] = slot;
}

static void test_many_tiny_tasks(void **state) {
  struct many *m = sl_calloc(1, sizeof(*m));
  struct sl_pool *p = new_pool(4, 64, run_double_id, NULL);
  struct sl_task *t;
  uint64_t run = 0, ndone = 0;

  for (unsigned i = 0; i < MANY_SLOTS; i++)
    m->free_list[m->nfree++] = i;
  for (uint32_t id = 0; id < MANY; id++) {
    unsigned slot;
    while (m->nfree == 0) {
      t = sl_pool_wait(p, -1);
      assert_non_null(t);
      collect_many(t, m);
    }
    slot = m->free_list[--m->nfree];
    t = &m->slots[slot];
    t->batch = 2;
    t->id = id;
    t->prefer = (int)(id % 5) - 1;
    t->payload = &m->out[slot];
    m->out[slot] = 0;
    submit_or_drain(p, t, collect_many, m);
  }
  while (sl_pool_pending(p) > 0) {
    t = sl_pool_wait(p, -1);
    assert_non_null(t);
    collect_many(t, m);
  }
  for (uint32_t id = 0; id < MANY; id++)
    ndone += (m->done[id / 8] >> (id % 8)) & 1u;
  assert_int_equal(ndone, MANY);
  assert_int_equal(m->twice, 0);
  assert_int_equal(m->bad_out, 0);
  for (unsigned w = 0; w < 4; w++)
    run += sl_pool_tasks_run(p, w);
  assert_int_equal(run, MANY);
  sl_pool_destroy(p);
  free(m);
}

/* ---- stealing ----------------------------------------------------------- */

struct steal {
  struct gate release; /* opened by the test */
  pthread_mutex_t mu;  /* entered: the blocking task has started */
  pthread_cond_t cv;
  bool entered;
  _Atomic int blocked_worker;
};

static int run_block_first(struct sl_task *t, int worker, void *wctx,
                           void *arg) {
  struct steal *s = arg;
  if (t->id != 0)
    return 0;
  atomic_store(&s->blocked_worker, worker);
  pthread_mutex_lock(&s->mu);
  s->entered = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  gate_pass(&s->release);
  return 0;
}

static void test_idle_workers_steal(void **state) {
  enum { N = 40, W = 4 };
  struct steal s = {.entered = false};
  struct sl_task tasks[N];
  struct sl_pool *p;
  struct sl_task *t;
  uint64_t stolen = 0;
  int b;

  gate_init(&s.release);
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  atomic_init(&s.blocked_worker, -1);
  p = new_pool(W, 64, run_block_first, &s);
  memset(tasks, 0, sizeof(tasks));
  for (uint32_t i = 0; i < N; i++) {
    tasks[i].id = i;
    tasks[i].prefer = 0;
  }

  /* Task 0 blocks the worker that runs it (worker 0, its preferred one,
   * unless an idle thief was quicker). */
  assert_int_equal(sl_pool_submit(p, &tasks[0]), 0);
  pthread_mutex_lock(&s.mu);
  while (!s.entered)
    pthread_cond_wait(&s.cv, &s.mu);
  pthread_mutex_unlock(&s.mu);
  b = atomic_load(&s.blocked_worker);
  assert_in_range(b, 0, W - 1);

  /* Everything else is queued for the blocked worker: only thieves can
   * run it. */
  for (uint32_t i = 1; i < N; i++) {
    tasks[i].prefer = b;
    assert_int_equal(sl_pool_submit(p, &tasks[i]), 0);
  }
  for (unsigned i = 1; i < N; i++) {
    t = sl_pool_wait(p, -1);
    assert_non_null(t);
    assert_int_not_equal(t->id, 0);
    assert_int_not_equal(t->worker, b);
  }
  assert_int_equal(sl_pool_pending(p), 1);
  assert_int_equal(sl_pool_tasks_run(p, (unsigned)b), 0);
  for (unsigned w = 0; w < W; w++)
    stolen += sl_pool_tasks_stolen(p, w);
  assert_true(stolen > 0);
  assert_int_equal(stolen, N - 1);

  gate_open(&s.release);
  t = sl_pool_wait(p, -1);
  assert_non_null(t);
  assert_int_equal(t->id, 0);
  assert_int_equal(t->worker, b);
  assert_int_equal(sl_pool_tasks_run(p, (unsigned)b), 1);
  /* task 0 counts as stolen when an idle thief beat worker 0 to it */
  assert_int_equal(sl_pool_tasks_stolen(p, (unsigned)b), b != 0);
  assert_int_equal(sl_pool_pending(p), 0);

  sl_pool_destroy(p);
  pthread_cond_destroy(&s.cv);
  pthread_mutex_destroy(&s.mu);
  gate_fini(&s.release);
}

/* ---- task errors -------------------------------------------------------- */

static int run_failing(struct sl_task *t, int worker, void *wctx, void *arg) {
  switch (t->id % 3) {
  case 0:
    return 0;
  case 1:
    return sl_error_set(&t->err, SL_ERR_CORRUPT, "bad record at offset %u",
                        t->id * 10);
  default:
    return SL_ERR_SINK; /* no message: the pool writes one */
  }
}

static void test_task_errors_reach_coordinator(void **state) {
  enum { N = 30 };
  struct sl_task tasks[N];
  unsigned count[N] = {0};
  struct sl_pool *p = new_pool(2, 16, run_failing, NULL);
  char want[64];

  memset(tasks, 0, sizeof(tasks));
  for (uint32_t i = 0; i < N; i++) {
    tasks[i].batch = 9;
    tasks[i].id = i;
    tasks[i].prefer = (int)(i % 2);
    /* Stale state from an earlier attempt is cleared on submit. */
    sl_error_set(&tasks[i].err, SL_ERR_IO, "stale");
    tasks[i].rc = 123;
    assert_int_equal(sl_pool_submit(p, &tasks[i]), 0);
  }
  for (unsigned i = 0; i < N; i++) {
    struct sl_task *t = sl_pool_wait(p, -1);
    assert_non_null(t);
    count[t->id]++;
    switch (t->id % 3) {
    case 0:
      assert_int_equal(t->rc, 0);
      assert_int_equal(t->err.code, SL_OK);
      assert_string_equal(t->err.msg, "");
      break;
    case 1:
      assert_int_equal(t->rc, SL_ERR_CORRUPT);
      assert_int_equal(t->err.code, SL_ERR_CORRUPT);
      snprintf(want, sizeof(want), "bad record at offset %u", t->id * 10);
      assert_string_equal(t->err.msg, want);
      break;
    default:
      assert_int_equal(t->rc, SL_ERR_SINK);
      assert_int_equal(t->err.code, SL_ERR_SINK);
      assert_non_null(strstr(t->err.msg, "failed"));
    }
  }
  for (unsigned i = 0; i < N; i++)
    assert_int_equal(count[i], 1);
  assert_null(sl_pool_wait(p, 0));
  sl_pool_destroy(p);
}

/* ---- worker init failure ------------------------------------------------ */

struct lifecycle {
  _Atomic int inits_ok, finis, runs, wrong_thread;
  int fail_worker; /* -1: none */
};

struct wctx {
  pthread_t thread;
  int worker;
};

static int init_maybe_fail(int worker, void *arg, void **wctx,
                           struct sl_error *err) {
  struct lifecycle *lc = arg;
  struct wctx *c;
  if (worker == lc->fail_worker)
    return sl_error_set(err, SL_ERR_SOURCE, "cannot open reader %d", worker);
  c = sl_malloc(sizeof(*c));
  c->thread = pthread_self();
  c->worker = worker;
  *wctx = c;
  atomic_fetch_add(&lc->inits_ok, 1);
  return 0;
}

static void fini_free(int worker, void *arg, void *wctx) {
  struct lifecycle *lc = arg;
  struct wctx *c = wctx;
  if (!pthread_equal(c->thread, pthread_self()) || c->worker != worker)
    atomic_fetch_add(&lc->wrong_thread, 1);
  free(c);
  atomic_fetch_add(&lc->finis, 1);
}

static int run_count(struct sl_task *t, int worker, void *wctx, void *arg) {
  struct lifecycle *lc = arg;
  struct wctx *c = wctx;
  if (!pthread_equal(c->thread, pthread_self()) || c->worker != worker)
    atomic_fetch_add(&lc->wrong_thread, 1);
  atomic_fetch_add(&lc->runs, 1);
  return 0;
}

static void test_init_failure_fails_new(void **state) {
  struct lifecycle lc = {.fail_worker = 2};
  struct sl_pool_config cfg = {.workers = 4,
                               .ring_size = 8,
                               .run = run_count,
                               .init = init_maybe_fail,
                               .fini = fini_free,
                               .arg = &lc};
  struct sl_error err;
  int threads = count_threads();

  sl_error_clear(&err);
  assert_null(sl_pool_new(&cfg, &err));
  assert_int_equal(err.code, SL_ERR_SOURCE);
  assert_string_equal(err.msg, "cannot open reader 2");
  /* The others were initialised, then finalised on their own threads. */
  assert_int_equal(atomic_load(&lc.inits_ok), 3);
  assert_int_equal(atomic_load(&lc.finis), 3);
  assert_int_equal(atomic_load(&lc.wrong_thread), 0);
  assert_int_equal(atomic_load(&lc.runs), 0);
  assert_int_equal(threads_settle(threads), threads);

  /* Without the failure the same pool starts, runs and stops cleanly. */
  lc.fail_worker = -1;
  atomic_store(&lc.inits_ok, 0);
  atomic_store(&lc.finis, 0);
  struct sl_pool *p = sl_pool_new(&cfg, &err);
  assert_non_null(p);
  assert_int_equal(count_threads(), threads + 4);
  struct sl_task t = {.id = 1, .prefer = 3};
  assert_int_equal(sl_pool_submit(p, &t), 0);
  assert_ptr_equal(sl_pool_wait(p, -1), &t);
  assert_int_equal(t.rc, 0);
  sl_pool_destroy(p);
  assert_int_equal(atomic_load(&lc.inits_ok), 4);
  assert_int_equal(atomic_load(&lc.finis), 4);
  assert_int_equal(atomic_load(&lc.runs), 1);
  assert_int_equal(atomic_load(&lc.wrong_thread), 0);
  assert_int_equal(threads_settle(threads), threads);
}

static void test_invalid_config(void **state) {
  struct sl_pool_config cfg = {.workers = 2, .ring_size = 8};
  struct sl_error err;

  assert_null(sl_pool_new(&cfg, &err)); /* no run function */
  assert_int_equal(err.code, SL_ERR_INVAL);
  cfg.run = run_double_id;
  cfg.ring_size = 12;
  assert_null(sl_pool_new(&cfg, &err));
  assert_int_equal(err.code, SL_ERR_INVAL);
  cfg.ring_size = 2;
  assert_null(sl_pool_new(&cfg, &err));
  assert_int_equal(err.code, SL_ERR_INVAL);
  cfg.ring_size = 8;
  cfg.workers = 0;
  assert_null(sl_pool_new(&cfg, &err));
  assert_int_equal(err.code, SL_ERR_INVAL);
  assert_null(sl_pool_new(NULL, &err));
  sl_pool_destroy(NULL);
}

/* ---- waiting ------------------------------------------------------------ */

static void test_wait_timeout_with_nothing_pending(void **state) {
  struct sl_pool *p = new_pool(2, 8, run_double_id, NULL);
  int64_t t0;

  assert_null(sl_pool_wait(p, 0));
  t0 = sl_mono_ns();
  assert_null(sl_pool_wait(p, 30 * MS));
  assert_true(sl_mono_ns() - t0 < 10000 * MS);
  /* Waiting forever with nothing pending would never end: it returns. */
  assert_null(sl_pool_wait(p, -1));
  assert_int_equal(sl_pool_pending(p), 0);
  sl_pool_destroy(p);
}

static void test_idle_pool_does_not_spin(void **state) {
  enum { N = 1000 };
  struct sl_task *tasks = sl_calloc(N, sizeof(*tasks));
  uint32_t *out = sl_calloc(N, sizeof(*out));
  struct sl_pool *p = new_pool(4, 32, run_double_id, NULL);
  unsigned seen = 0;

  for (uint32_t i = 0; i < N; i++) {
    tasks[i].id = i;
    tasks[i].prefer = (int)(i % 4);
    tasks[i].payload = &out[i];
    while (sl_pool_submit(p, &tasks[i]) == SL_ERR_AGAIN) {
      assert_non_null(sl_pool_wait(p, -1));
      seen++;
    }
  }
  while (sl_pool_pending(p) > 0) {
    assert_non_null(sl_pool_wait(p, -1));
    seen++;
  }
  assert_int_equal(seen, N);

  /* All workers are idle now; the test thread blocks too. A worker wakes
   * (and counts a pass of its loop) only when the work count moves; none
   * does while the pool is idle. One pass each is allowed: a worker that
   * ran its last task may not have reached its wait yet, and its count
   * snapshot can be older than the last submit. A polling worker would
   * count a pass per poll. (No CPU or wall-time figure: counts only.) */
  uint64_t before[4], after[4];
  for (unsigned w = 0; w < 4; w++)
    before[w] = sl_pool_work_passes(p, w);
  assert_null(sl_pool_wait(p, 200 * MS));
  assert_null(sl_pool_wait(p, 200 * MS));
  for (unsigned w = 0; w < 4; w++) {
    after[w] = sl_pool_work_passes(p, w);
    assert_true(before[w] >= 1);
    if (after[w] - before[w] > 1)
      fail_msg("idle worker %u woke %llu times", w,
               (unsigned long long)(after[w] - before[w]));
  }
  sl_pool_destroy(p);
  free(out);
  free(tasks);
}

/* ---- destroy drains ----------------------------------------------------- */

struct drain {
  struct gate go;
  _Atomic int ran;
};

static int run_gated(struct sl_task *t, int worker, void *wctx, void *arg) {
  struct drain *d = arg;
  struct timespec work = {.tv_nsec = 1000000}; /* stands for real work */
  gate_pass(&d->go);
  nanosleep(&work, NULL);
  atomic_fetch_add(&d->ran, 1);
  return 0;
}

static void test_destroy_finishes_queued_tasks(void **state) {
  enum { N = 40 };
  struct drain d;
  struct sl_task tasks[N];
  struct sl_pool *p;

  gate_init(&d.go);
  atomic_init(&d.ran, 0);
  p = new_pool(2, 32, run_gated, &d);
  memset(tasks, 0, sizeof(tasks));
  for (uint32_t i = 0; i < N; i++) {
    tasks[i].id = i;
    tasks[i].prefer = (int)(i % 2);
    assert_int_equal(sl_pool_submit(p, &tasks[i]), 0);
  }
  /* At most two tasks are running (blocked at the gate): the rest are
   * queued when destroy begins. */
  assert_int_equal(sl_pool_pending(p), N);
  assert_true(atomic_load(&d.ran) == 0);
  gate_open(&d.go);
  sl_pool_destroy(p);
  assert_int_equal(atomic_load(&d.ran), N);
  for (unsigned i = 0; i < N; i++) {
    assert_in_range(tasks[i].worker, 0, 1);
    assert_int_equal(tasks[i].rc, 0);
  }
  gate_fini(&d.go);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_worker_hundred_tasks),
      cmocka_unit_test(test_many_tiny_tasks),
      cmocka_unit_test(test_idle_workers_steal),
      cmocka_unit_test(test_task_errors_reach_coordinator),
      cmocka_unit_test(test_init_failure_fails_new),
      cmocka_unit_test(test_invalid_config),
      cmocka_unit_test(test_wait_timeout_with_nothing_pending),
      cmocka_unit_test(test_idle_pool_does_not_spin),
      cmocka_unit_test(test_destroy_finishes_queued_tasks),
  };
  /* ./test_pool PATTERN runs only the matching tests. */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
