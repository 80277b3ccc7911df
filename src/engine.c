/*
 * engine.c - the coordinator: recovery, the trigger loop, one batch.
 *
 * Only the coordinator thread runs this file's functions, except
 * run_task() and the worker init/fini callbacks, which the pool runs on
 * worker threads. The coordinator hands a task to the pool and does not
 * touch it again until sl_pool_wait() returns it.
 */
#include "engine.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../checkpoint/checkpoint.h"
#include "log.h"
#include "plan.h"
#include "pool.h"
#include "progress.h"
#include "util.h"

/* ------------------------------------------------------------ stopping */

static atomic_int stop_requested;
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;

void sl_engine_request_stop(void) {
  pthread_mutex_lock(&stop_mu);
  atomic_store(&stop_requested, 1);
  pthread_cond_broadcast(&stop_cv);
  pthread_mutex_unlock(&stop_mu);
}

bool sl_engine_stop_requested(void) {
  return atomic_load(&stop_requested) != 0;
}

/* Sleeps until the monotonic time `until_ns` or a stop request. */
static void wait_until(int64_t until_ns) {
  pthread_mutex_lock(&stop_mu);
  while (!atomic_load(&stop_requested)) {
    int64_t left = until_ns - sl_mono_ns();
    if (left <= 0)
      break;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + left % 1000000000LL;
    ts.tv_sec += (time_t)(left / 1000000000LL + ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_cond_timedwait(&stop_cv, &stop_mu, &ts);
  }
  pthread_mutex_unlock(&stop_mu);
}

/* ---------------------------------------------------------------- state */

struct engine {
  struct sl_job *job;
  const struct sl_run_opts *opts;
  struct sl_source src;
  struct sl_sink sink;
  struct sl_ckpt *ck;
  struct sl_pool *pool;
  bool src_ready, sink_ready;

  struct sl_plan pos;      /* where the next batch starts, per partition */
  struct sl_plan target;   /* available-now: where to stop */
  struct sl_plan affinity; /* start = worker whose reader stands at end */
  uint64_t next_batch;
  uint64_t rerun; /* batch to re-run from offsets/, 0 none */
  char run_id[40];
  int64_t last_batch_start_ns;
  int64_t last_batch_end_ns;
  int64_t started_ns;
};

struct worker_ctx {
  void *reader;
  struct sl_batch chunk;
};

struct task_ctx {
  struct engine *e;
  struct sl_range slice; /* topic points into the batch's plan */
  void *stage;
  int64_t records;
  int64_t lost; /* skipped: deleted by retention */
  int attempts;
  int64_t retry_at_ns;
};

/* ---------------------------------------------------------- worker side */

/* @locality worker thread */
static int worker_init(int worker, void *arg, void **wctx,
                       struct sl_error *err) {
  struct engine *e = arg;
  struct worker_ctx *w = sl_calloc(1, sizeof(*w));
  int rc = e->src.plugin->reader_new(&e->src, worker, &w->reader, err);
  if (rc) {
    free(w);
    return rc;
  }
  *wctx = w;
  return 0;
}

/* @locality worker thread */
static void worker_fini(int worker, void *arg, void *wctx) {
  struct engine *e = arg;
  struct worker_ctx *w = wctx;
  (void)worker;
  if (!w)
    return;
  e->src.plugin->reader_free(w->reader);
  sl_batch_free(&w->chunk);
  free(w);
}

/* Reads the task's exact range and stages every record in the sink.
 * @locality worker thread */
static int run_task(struct sl_task *t, int worker, void *wctx, void *arg) {
  struct engine *e = arg;
  struct worker_ctx *w = wctx;
  struct task_ctx *tc = t->payload;
  const struct sl_sink_plugin *sp = e->sink.plugin;
  (void)worker;
  tc->records = 0;
  int64_t lost0 =
      e->src.plugin->reader_lost ? e->src.plugin->reader_lost(w->reader) : 0;
  int rc = sp->stage_open(&e->sink, t->batch, t->id, &tc->stage, &t->err);
  if (rc)
    return rc;
  int64_t pos = tc->slice.start;
  while (pos < tc->slice.end) {
    rc = e->src.plugin->read(w->reader, &tc->slice, &pos, &w->chunk, &t->err);
    if (rc)
      return rc;
    if (w->chunk.n == 0)
      continue;
    rc = sp->stage_write(tc->stage, &w->chunk, &t->err);
    if (rc)
      return rc;
    tc->records += (int64_t)w->chunk.n;
  }
  if (e->src.plugin->reader_lost)
    tc->lost = e->src.plugin->reader_lost(w->reader) - lost0;
  return sp->stage_close(tc->stage, &t->err);
}

/* ------------------------------------------------------------- planning */

/* Positions of partitions the checkpoint does not know yet come from the
 * source's starting offsets. */
static int plan_next(struct engine *e, struct sl_plan *plan,
                     struct sl_plan *latest, struct sl_error *err) {
  const struct sl_source_common *bc = sl_job_batching(e->job);
  memset(plan, 0, sizeof(*plan));
  memset(latest, 0, sizeof(*latest));
  if (e->src.plugin->watermarks(&e->src, latest, err))
    return err->code;
  for (size_t i = 0; i < latest->n; i++) {
    const struct sl_range *wm = &latest->ranges[i];
    struct sl_range *at = sl_plan_find(&e->pos, wm->topic, wm->partition);
    int64_t start;
    if (at) {
      start = at->end;
    } else {
      if (e->src.plugin->start_offset(&e->src, wm, &start, err))
        return err->code;
      sl_plan_add(&e->pos, wm->topic, wm->partition, start, start);
      sl_info("new partition %s[%d] starts at offset %lld", wm->topic,
              wm->partition, (long long)start);
    }
    if (start > wm->end)
      return sl_error_setf(
          err, SL_ERR_DATALOSS, SL_ERR_FATAL,
          "%s[%d]: the checkpoint is at offset %lld but the partition ends "
          "at %lld: was the topic deleted and created again? Remove the "
          "checkpoint directory %s to start over",
          wm->topic, wm->partition, (long long)start, (long long)wm->end,
          e->job->checkpoint.dir);
    int64_t end = wm->end;
    if (e->job->trigger.available_now) {
      struct sl_range *t = sl_plan_find(&e->target, wm->topic, wm->partition);
      end = t ? SL_MAX(start, SL_MIN(end, t->end)) : start;
    }
    sl_plan_add(plan, wm->topic, wm->partition, start, end);
  }
  sl_plan_sort(plan);
  plan->batch = e->next_batch;
  plan->task_max_records = bc->task_max_records;
  plan->created_ms = sl_wall_ms();
  sl_plan_cap(plan, bc->max_records_per_batch);
  return 0;
}

static int64_t lag_after(const struct sl_plan *plan,
                         const struct sl_plan *latest) {
  int64_t lag = 0;
  for (size_t i = 0; i < latest->n; i++) {
    const struct sl_range *r = sl_plan_find(plan, latest->ranges[i].topic,
                                            latest->ranges[i].partition);
    if (r && latest->ranges[i].end > r->end)
      lag += latest->ranges[i].end - r->end;
  }
  return lag;
}

/* -------------------------------------------------------------- a batch */

static void note_affinity(struct engine *e, const struct sl_range *slice,
                          int worker) {
  struct sl_range *a =
      sl_plan_find(&e->affinity, slice->topic, slice->partition);
  if (!a) {
    sl_plan_add(&e->affinity, slice->topic, slice->partition, worker,
                slice->end);
    return;
  }
  a->start = worker;
  a->end = slice->end;
}

static int prefer_for(struct engine *e, const struct sl_range *slice) {
  struct sl_range *a =
      sl_plan_find(&e->affinity, slice->topic, slice->partition);
  return a && a->end == slice->start ? (int)a->start : -1;
}

static void free_stages(struct engine *e, struct task_ctx *tcs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (tcs[i].stage)
      e->sink.plugin->stage_free(&e->sink, tcs[i].stage);
    tcs[i].stage = NULL;
  }
}

/* Runs every task of plan and waits for all of them. A task that fails
 * with a retriable error runs again (after a growing pause) until
 * task_attempts is spent. Fills *records and *lost. */
static int run_tasks(struct engine *e, const struct sl_plan *plan,
                     struct task_ctx **out_tcs, size_t *out_n, int64_t *records,
                     int64_t *lost, struct sl_error *err) {
  struct sl_slice *sl;
  size_t n = sl_plan_slice(plan, plan->task_max_records, &sl);
  struct task_ctx *tcs = sl_calloc(n ? n : 1, sizeof(*tcs));
  struct sl_task *tasks = sl_calloc(n ? n : 1, sizeof(*tasks));
  size_t next_submit = 0, done = 0, in_pool = 0;
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    const struct sl_range *r = &plan->ranges[sl[i].range];
    tcs[i] = (struct task_ctx){.e = e,
                               .slice = {.topic = r->topic,
                                         .partition = r->partition,
                                         .start = sl[i].start,
                                         .end = sl[i].end}};
    tasks[i] = (struct sl_task){.batch = plan->batch,
                                .id = (uint32_t)i,
                                .prefer = prefer_for(e, &tcs[i].slice),
                                .payload = &tcs[i]};
  }
  free(sl);
  /* A retry list: tasks waiting for their pause to end. */
  size_t *retry = sl_calloc(n ? n : 1, sizeof(*retry));
  size_t nretry = 0;
  while (done < n) {
    while (next_submit < n && !rc) {
      if (sl_pool_submit(e->pool, &tasks[next_submit]) != 0)
        break;
      next_submit++;
      in_pool++;
    }
    int64_t now = sl_mono_ns();
    for (size_t k = 0; k < nretry && !rc;) {
      struct sl_task *t = &tasks[retry[k]];
      struct task_ctx *tc = t->payload;
      if (tc->retry_at_ns <= now && sl_pool_submit(e->pool, t) == 0) {
        in_pool++;
        retry[k] = retry[--nretry];
      } else {
        k++;
      }
    }
    if (rc && in_pool == 0) {
      done = n; /* failed: nothing left running */
      break;
    }
    struct sl_task *t = sl_pool_wait(e->pool, 100 * 1000000LL);
    if (!t)
      continue;
    in_pool--;
    struct task_ctx *tc = t->payload;
    if (t->rc == 0) {
      done++;
      note_affinity(e, &tc->slice, t->worker);
      continue;
    }
    if (tc->stage) {
      e->sink.plugin->stage_free(&e->sink, tc->stage);
      tc->stage = NULL;
    }
    tc->attempts++;
    bool retriable =
        (t->err.flags & SL_ERR_RETRIABLE) && !(t->err.flags & SL_ERR_FATAL);
    if (!rc && retriable && tc->attempts < e->job->task_attempts) {
      sl_warn("batch %" PRIu64 " task %u (%s[%d] %lld..%lld) failed, "
              "attempt %d of %lld: %s",
              plan->batch, t->id, tc->slice.topic, tc->slice.partition,
              (long long)tc->slice.start, (long long)tc->slice.end,
              tc->attempts, (long long)e->job->task_attempts, t->err.msg);
      tc->retry_at_ns = sl_mono_ns() + (100000000LL << (tc->attempts - 1));
      t->prefer = -1;
      retry[nretry++] = t->id;
      continue;
    }
    if (!rc) {
      *err = t->err;
      rc = err->code ? err->code : SL_ERR_SOURCE;
      if (retriable)
        sl_error_prefix(err, "task failed %d times", tc->attempts);
      sl_error_prefix(err, "batch %" PRIu64 " %s[%d] %lld..%lld", plan->batch,
                      tc->slice.topic, tc->slice.partition,
                      (long long)tc->slice.start, (long long)tc->slice.end);
    }
    /* Keep draining: tasks still in the pool reference this batch. */
    next_submit = n;
    nretry = 0;
    if (in_pool == 0)
      break;
  }
  free(retry);
  free(tasks);
  *records = *lost = 0;
  for (size_t i = 0; i < n; i++) {
    *records += tcs[i].records;
    *lost += tcs[i].lost;
  }
  if (rc) {
    free_stages(e, tcs, n);
    free(tcs);
    return rc;
  }
  *out_tcs = tcs;
  *out_n = n;
  return 0;
}

/* Commits the sink, retrying retriable failures with a growing pause. */
static int commit_sink(struct engine *e, const struct sl_plan *plan,
                       struct task_ctx *tcs, size_t n, struct sl_error *err) {
  void **stages = sl_calloc(n ? n : 1, sizeof(*stages));
  for (size_t i = 0; i < n; i++)
    stages[i] = tcs[i].stage;
  int rc = 0;
  for (int attempt = 1;; attempt++) {
    rc = e->sink.plugin->commit(&e->sink, plan, stages, n, err);
    if (!rc || !(err->flags & SL_ERR_RETRIABLE) ||
        attempt >= e->job->task_attempts)
      break;
    sl_warn("sink commit of batch %" PRIu64 " failed (attempt %d): %s",
            plan->batch, attempt, err->msg);
    wait_until(sl_mono_ns() + (100000000LL << (attempt - 1)));
  }
  free(stages);
  return rc;
}

static int run_batch(struct engine *e, struct sl_plan *plan,
                     const struct sl_plan *latest, bool rerun, int64_t plan_ns,
                     struct sl_error *err) {
  int64_t t0 = sl_mono_ns(), t1, t2, t3, t4;
  struct task_ctx *tcs = NULL;
  size_t n = 0;
  int64_t records = 0, lost = 0;
  if (!rerun && sl_ckpt_write_offsets(e->ck, plan, err))
    return err->code;
  t1 = sl_mono_ns();
  if (run_tasks(e, plan, &tcs, &n, &records, &lost, err))
    return err->code;
  t2 = sl_mono_ns();
  int rc = commit_sink(e, plan, tcs, n, err);
  free_stages(e, tcs, n);
  free(tcs);
  if (rc)
    return sl_error_prefix(err, "sink commit of batch %" PRIu64 " failed",
                           plan->batch);
  t3 = sl_mono_ns();
  if (sl_ckpt_write_commit(e->ck, plan->batch, sl_wall_ms(), err))
    return err->code;
  if (sl_ckpt_prune(e->ck, (unsigned)e->job->checkpoint.retain, err))
    sl_warn("pruning the checkpoint: %s", err->msg);
  t4 = sl_mono_ns();
  /* The batch is committed: its ends are where the next one starts. */
  for (size_t i = 0; i < plan->n; i++) {
    const struct sl_range *r = &plan->ranges[i];
    struct sl_range *p = sl_plan_find(&e->pos, r->topic, r->partition);
    if (p)
      p->end = r->end;
    else
      sl_plan_add(&e->pos, r->topic, r->partition, r->end, r->end);
  }
  e->next_batch = plan->batch + 1;
  int64_t total_ns = t4 - t0 + plan_ns;
  struct sl_progress pr = {
      .job_id = e->job->id,
      .run_id = e->run_id,
      .batch = plan->batch,
      .timestamp_ms = plan->created_ms,
      .records = records,
      .lost = lost,
      .processed_rate = total_ns > 0 ? (double)records * 1e9 / total_ns : 0,
      .input_rate = 0,
      .plan_ms = plan_ns / 1000000,
      .wal_ms = (t1 - t0) / 1000000,
      .process_ms = (t2 - t1) / 1000000,
      .sink_ms = (t3 - t2) / 1000000,
      .commit_ms = (t4 - t3) / 1000000,
      .total_ms = total_ns / 1000000,
      .plan = plan,
      .latest = latest,
      .lag = latest ? lag_after(plan, latest) : 0,
      .source_desc = e->src.plugin->describe(&e->src),
      .sink_desc = e->sink.plugin->describe(&e->sink)};
  if (e->last_batch_start_ns && t0 > e->last_batch_start_ns)
    pr.input_rate =
        (double)records * 1e9 / (double)(t0 - e->last_batch_start_ns);
  e->last_batch_start_ns = t0;
  e->last_batch_end_ns = t4;
  sl_progress_write(stderr, e->opts->progress, &pr);
  return 0;
}

/* ------------------------------------------------------------- recovery */

static void positions_from(struct engine *e, const struct sl_plan *p) {
  for (size_t i = 0; i < p->n; i++) {
    const struct sl_range *r = &p->ranges[i];
    struct sl_range *at = sl_plan_find(&e->pos, r->topic, r->partition);
    if (at)
      at->end = r->end;
    else
      sl_plan_add(&e->pos, r->topic, r->partition, r->end, r->end);
  }
}

/* Decides where to start from the checkpoint and the sink's own record
 * (DESIGN.md section 3, invariant 4: the sink is the authority). */
static int recover(struct engine *e, struct sl_error *err) {
  struct sl_ckpt_state st;
  uint64_t sink_batch = 0;
  struct sl_plan sink_end = {0}, p = {0};
  bool sink_knows = e->sink.plugin->last_committed != NULL;
  int rc = 0;
  if (sl_ckpt_scan(e->ck, &st, err))
    return err->code;
  if (sink_knows &&
      e->sink.plugin->last_committed(&e->sink, &sink_batch, &sink_end, err))
    return err->code;
  struct sl_recovery d = sl_recovery_decide(st.last_commit, st.last_offsets,
                                            sink_knows, sink_batch);
  if (st.last_commit &&
      (rc = sl_ckpt_read_offsets(e->ck, st.last_commit, &p, err)))
    goto out;
  positions_from(e, &p);
  sl_plan_clear(&p);
  switch (d.action) {
  case SL_RECOVER_FRESH:
    e->next_batch = d.batch;
    if (st.last_commit)
      sl_info("resuming after batch %" PRIu64, st.last_commit);
    break;
  case SL_RECOVER_RERUN:
    e->next_batch = d.batch;
    e->rerun = d.batch;
    sl_info("batch %" PRIu64 " was planned but not committed: running it "
            "again with the same ranges",
            d.batch);
    break;
  case SL_RECOVER_COMPLETE:
    /* The sink committed d.batch but the process stopped before
     * commits/N: complete the checkpoint, do not run the batch again. */
    if ((rc = sl_ckpt_read_offsets(e->ck, d.batch, &p, err)))
      goto out;
    positions_from(e, &p);
    sl_plan_clear(&p);
    if ((rc = sl_ckpt_write_commit(e->ck, d.batch, sl_wall_ms(), err)))
      goto out;
    e->next_batch = d.batch + 1;
    sl_info("the sink already holds batch %" PRIu64 ": completed its "
            "checkpoint commit",
            d.batch);
    break;
  case SL_RECOVER_ROLL_FORWARD:
    /* The sink is ahead (the checkpoint was lost or is older): its end
     * offsets are the truth; record them as batch d.batch. */
    rc = sl_ckpt_read_offsets(e->ck, d.batch, &p, err);
    if (rc == SL_ERR_NOTFOUND) {
      sl_plan_clear(&p);
      sl_plan_copy(&p, &sink_end);
      p.batch = d.batch;
      p.task_max_records = sl_job_batching(e->job)->task_max_records;
      p.created_ms = sl_wall_ms();
    } else if (rc) {
      goto out;
    }
    if ((rc = sl_ckpt_roll_forward(e->ck, &p, sl_wall_ms(), err)))
      goto out;
    positions_from(e, &sink_end);
    e->next_batch = d.batch + 1;
    sl_warn("the sink holds batch %" PRIu64 ", ahead of the checkpoint "
            "(batch %" PRIu64 "): rolled the checkpoint forward to the "
            "sink's offsets",
            d.batch, st.last_commit);
    break;
  case SL_RECOVER_SINK_BEHIND:
    rc = sl_error_setf(err, SL_ERR_DATALOSS, SL_ERR_FATAL,
                       "the sink's last committed batch is %" PRIu64
                       " but the checkpoint in %s committed batch %" PRIu64
                       ": the sink lost data (was it wiped or restored "
                       "from an old backup?)",
                       d.batch, e->job->checkpoint.dir, st.last_commit);
    break;
  }
out:
  sl_plan_clear(&p);
  sl_plan_clear(&sink_end);
  return rc;
}

/* ---------------------------------------------------------------- loop */

static bool reached_target(struct engine *e) {
  for (size_t i = 0; i < e->target.n; i++) {
    const struct sl_range *t = &e->target.ranges[i];
    const struct sl_range *p = sl_plan_find(&e->pos, t->topic, t->partition);
    if (!p || p->end < t->end)
      return false;
  }
  return true;
}

static int loop(struct engine *e, struct sl_error *err) {
  const struct sl_source_common *bc = sl_job_batching(e->job);
  const struct sl_trigger_conf *tr = &e->job->trigger;
  if (e->rerun) {
    struct sl_plan p = {0};
    int rc = sl_ckpt_read_offsets(e->ck, e->rerun, &p, err);
    if (!rc)
      rc = run_batch(e, &p, NULL, true, 0, err);
    sl_plan_clear(&p);
    e->rerun = 0;
    if (rc)
      return rc;
  }
  if (tr->available_now) {
    struct sl_plan wm = {0};
    if (e->src.plugin->watermarks(&e->src, &wm, err))
      return err->code;
    sl_plan_copy(&e->target, &wm);
    sl_plan_clear(&wm);
  }
  while (!sl_engine_stop_requested()) {
    if (tr->available_now && reached_target(e)) {
      sl_info("available-now: all %zu partitions processed up to the "
              "offsets seen at start; exiting",
              e->target.n);
      return 0;
    }
    int64_t t0 = sl_mono_ns();
    struct sl_plan plan, latest;
    int rc = plan_next(e, &plan, &latest, err);
    if (rc) {
      sl_plan_clear(&plan);
      sl_plan_clear(&latest);
      return rc;
    }
    int64_t records = sl_plan_records(&plan);
    int64_t backlog = records + lag_after(&plan, &latest);
    /* Wait for min_records_per_batch, but not past max_batch_delay since
     * the previous batch (or since start). */
    int64_t since =
        t0 - (e->last_batch_end_ns ? e->last_batch_end_ns : e->started_ns);
    bool go = tr->available_now
                  ? records > 0
                  : records > 0 &&
                        sl_plan_should_run(backlog, bc->min_records_per_batch,
                                           since, bc->max_batch_delay_ns);
    if (go)
      rc = run_batch(e, &plan, &latest, false, sl_mono_ns() - t0, err);
    sl_plan_clear(&plan);
    sl_plan_clear(&latest);
    if (rc)
      return rc;
    if (tr->available_now) {
      if (!go) /* nothing left below the targets */
        return 0;
      continue;
    }
    /* The next batch is due one interval after this one started; a batch
     * that overran starts the next at once. */
    wait_until(t0 + tr->interval_ns);
  }
  sl_info("stopped on request after batch %" PRIu64, e->next_batch - 1);
  return 0;
}

int sl_engine_run(struct sl_job *job, const struct sl_run_opts *opts,
                  struct sl_error *err) {
  struct engine e = {0};
  int rc;
  e.job = job;
  e.opts = opts;
  e.started_ns = sl_mono_ns();
  e.src = (struct sl_source){
      .plugin = job->source_plugin, .conf = job->source_conf, .job = job};
  e.sink = (struct sl_sink){
      .plugin = job->sink_plugin, .conf = job->sink_conf, .job = job};
  snprintf(e.run_id, sizeof(e.run_id), "%08x-%04x", (unsigned)sl_wall_ms(),
           (unsigned)(sl_mono_ns() & 0xffff));
  if ((rc = sl_ckpt_open(job->checkpoint.dir, job->id, &e.ck, err)))
    goto out;
  if ((rc = job->source_plugin->init(&e.src, err))) {
    sl_error_prefix(err, "source");
    goto out;
  }
  e.src_ready = true;
  if ((rc = job->sink_plugin->init(&e.sink, err)))
    goto out;
  e.sink_ready = true;
  if ((rc = recover(&e, err)))
    goto out;
  struct sl_pool_config pc = {.workers = (unsigned)job->workers,
                              .ring_size = 1024,
                              .run = run_task,
                              .init = worker_init,
                              .fini = worker_fini,
                              .arg = &e};
  e.pool = sl_pool_new(&pc, err);
  if (!e.pool) {
    rc = err->code ? err->code : SL_ERR_SOURCE;
    goto out;
  }
  rc = loop(&e, err);
out:
  sl_pool_destroy(e.pool);
  if (e.sink_ready || e.sink.ctx)
    job->sink_plugin->destroy(&e.sink);
  if (e.src_ready || e.src.ctx)
    job->source_plugin->destroy(&e.src);
  sl_ckpt_close(e.ck);
  sl_plan_clear(&e.pos);
  sl_plan_clear(&e.target);
  sl_plan_clear(&e.affinity);
  return rc;
}
