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
#include <sys/stat.h>
#include <time.h>

#include "../checkpoint/checkpoint.h"
#include "../checkpoint/state.h"
#include "failpoint.h"
#include "log.h"
#include "metrics.h"
#include "plan.h"
#include "pipeline.h"
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
  struct sl_sink dl;          /* dead letters; dl.plugin NULL when none */
  bool has_ops;               /* the pipeline does something */
  struct sl_wstate *ws;       /* window state, NULL when stateless */
  uint64_t *shard_batch;      /* per shard: batch whose file holds it */
  struct sl_wpartial **parts; /* the batch's partials, while merging */
  size_t nparts;
  int64_t watermark; /* window watermark at the start of the batch */
  struct sl_ckpt *ck;
  struct sl_pool *pool;
  struct sl_metrics *metrics; /* NULL when off */
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
  bool committed_once; /* a batch was committed by this process */
  int64_t done;        /* records processed in this run */
  bool overlap;        /* commits may run beside the next batch's reads */
  struct inflight *fl; /* the batch being committed, NULL when none */
};

struct worker_ctx {
  void *reader;
  struct sl_batch chunk, out, dead;
  struct sl_rejects rejects; /* records the sink could not write */
  struct sl_batch rdead;     /* their dead letters */
};

enum task_kind { TASK_READ, TASK_MERGE, TASK_EMIT };

/* How many queued ranges past the current one a worker tells its reader
 * about (see hint_ranges); the source bounds what it fetches ahead. */
#define SL_PREFETCH_RANGES 8

/* The image of one shard, serialized by an emit task. */
struct shard_image {
  unsigned shard;
  void *data;
  size_t len;
};

struct task_ctx {
  enum task_kind kind;
  unsigned shard_lo, shard_hi; /* merge / emit: shards [lo, hi) */
  struct shard_image *images;  /* emit: dirty shards serialized */
  size_t nimages;
  char **top_rows; /* emit with `top`: rows for the coordinator to rank */
  size_t ntop;
  struct engine *e;
  struct sl_range slice; /* topic points into the batch's plan */
  void *stage;           /* opened on the first output */
  void *dl_stage;        /* opened on the first dead letter */
  struct sl_pipe_task *pipe;
  struct sl_pipe_stats stats;
  int64_t records;
  int64_t lost;          /* skipped: deleted by retention */
  int64_t sink_rejected; /* outputs the sink sent to the dead letters */
  int attempts;
  int64_t retry_at_ns;
  /* Read tasks: the next task queued on the same worker's ring, for the
   * source's prefetch hint (hint_ranges), and whether a worker has begun
   * this one. */
  struct task_ctx *after;
  atomic_bool started;
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
  sl_batch_free(&w->out);
  sl_batch_free(&w->dead);
  sl_rejects_free(&w->rejects);
  sl_batch_free(&w->rdead);
  free(w);
}

/* Stages b in the sink (or in the dead letters), opening the stage on
 * first use. Records the sink rejects are left in rj.
 * @locality worker thread */
static int stage(struct sl_sink *sink, void **st, const struct sl_task *t,
                 const struct sl_batch *b, struct sl_rejects *rj,
                 struct sl_error *err) {
  if (b->n == 0)
    return 0;
  if (!*st && sink->plugin->stage_open(sink, t->batch, t->id, st, err))
    return err->code;
  return sink->plugin->stage_write(*st, b, rj, err);
}

/* Stages dead letters; the dead-letter sink writes every record. */
static int stage_dead(struct engine *e, struct task_ctx *tc,
                      const struct sl_task *t, struct worker_ctx *w,
                      const struct sl_batch *dead, const char *what,
                      struct sl_error *err) {
  if (dead->n == 0)
    return 0;
  if (!e->dl.plugin)
    return sl_error_setf(err, SL_ERR_INVAL, SL_ERR_FATAL,
                         "%s failed and no dead_letter is set: %.*s", what,
                         (int)SL_MIN(dead->recs[0].value_len, (size_t)300),
                         dead->recs[0].value);
  sl_rejects_clear(&w->rejects);
  int rc = stage(&e->dl, &tc->dl_stage, t, dead, &w->rejects, err);
  if (!rc && w->rejects.n)
    rc = sl_error_setf(err, SL_ERR_INVAL, SL_ERR_FATAL,
                       "the dead-letter sink refused a record: %s",
                       w->rejects.reasons[0]);
  return rc;
}

/* Stages outputs in the sink; what it rejects becomes dead letters (or
 * fails the job with on_error: fail). @locality worker thread */
static int stage_out(struct engine *e, struct task_ctx *tc,
                     const struct sl_task *t, struct worker_ctx *w,
                     const struct sl_batch *b, struct sl_error *err) {
  sl_rejects_clear(&w->rejects);
  int rc = stage(&e->sink, &tc->stage, t, b, &w->rejects, err);
  size_t n = w->rejects.n;
  if (rc || n == 0)
    return rc;
  if (e->job->on_error == SL_ON_ERROR_FAIL)
    return sl_error_setf(err, SL_ERR_INVAL, SL_ERR_FATAL, "%s (on_error: fail)",
                         w->rejects.reasons[0]);
  sl_batch_reserve(&w->rdead, n);
  for (size_t i = 0; i < n; i++) {
    const struct sl_record *r = &w->rejects.recs[i];
    char *s =
        sl_dead_letter_json(r, r->value, r->value_len, w->rejects.reasons[i]);
    w->rdead.recs[i] = *r;
    w->rdead.recs[i].value = s;
    w->rdead.recs[i].value_len = strlen(s);
  }
  w->rdead.n = n;
  tc->sink_rejected += (int64_t)n;
  /* stage_dead reuses w->rejects: the strings above are the copies. */
  rc = stage_dead(e, tc, t, w, &w->rdead, "a record the sink could not write",
                  err);
  for (size_t i = 0; i < n; i++)
    free((char *)w->rdead.recs[i].value);
  w->rdead.n = 0;
  return rc;
}

static int close_stage(struct sl_sink *sink, void *st, struct sl_error *err) {
  return st ? sink->plugin->stage_close(st, err) : 0;
}

/* Tells the source which ranges this worker reads next (its prefetch
 * hint): the task's own range when `with_self`, then the tasks queued
 * after it on this worker's ring that no worker has begun, up to
 * SL_PREFETCH_RANGES. @locality worker thread */
static void hint_ranges(struct engine *e, struct worker_ctx *w,
                        const struct task_ctx *tc, bool with_self) {
  if (!e->src.plugin->prefetch)
    return;
  struct sl_range next[SL_PREFETCH_RANGES + 1];
  size_t n = 0;
  if (with_self)
    next[n++] = tc->slice;
  for (const struct task_ctx *a = tc->after; a && n < SL_ARRAY_LEN(next);
       a = a->after)
    if (!atomic_load(&a->started))
      next[n++] = a->slice;
  e->src.plugin->prefetch(w->reader, next, n);
}

/* Reads the task's exact range, runs the pipeline, and stages the output
 * in the sink and the dead letters in theirs (or, for a windowed job,
 * pre-aggregates into the task's partial).
 * @locality worker thread */
static int read_task(struct sl_task *t, struct worker_ctx *w,
                     struct engine *e) {
  struct task_ctx *tc = t->payload;
  bool fail = e->job->on_error == SL_ON_ERROR_FAIL;
  tc->records = 0;
  tc->sink_rejected = 0;
  memset(&tc->stats, 0, sizeof(tc->stats));
  if (e->has_ops)
    tc->pipe = sl_pipe_task_new(e->job->pipeline);
  int64_t lost0 =
      e->src.plugin->reader_lost ? e->src.plugin->reader_lost(w->reader) : 0;
  int64_t pos = tc->slice.start;
  int rc = 0;
  atomic_store(&tc->started, true);
  hint_ranges(e, w, tc, true);
  while (pos < tc->slice.end && !rc) {
    rc = e->src.plugin->read(w->reader, &tc->slice, &pos, &w->chunk, &t->err);
    if (rc || w->chunk.n == 0)
      continue;
    tc->records += (int64_t)w->chunk.n;
    if (!tc->pipe) {
      rc = stage_out(e, tc, t, w, &w->chunk, &t->err);
      continue;
    }
    rc = sl_pipe_run(tc->pipe, &w->chunk, e->watermark, fail, sl_wall_ms(),
                     &w->out, &w->dead, &t->err);
    if (!rc)
      rc = stage_out(e, tc, t, w, &w->out, &t->err);
    if (!rc)
      rc = stage_dead(e, tc, t, w, &w->dead, "a record", &t->err);
  }
  hint_ranges(e, w, tc, false);
  if (rc)
    return rc;
  if (tc->pipe) {
    tc->stats = sl_pipe_task_stats(tc->pipe);
    sl_pipe_task_trim(tc->pipe);
  } else {
    tc->stats.in = tc->stats.out = tc->records;
  }
  tc->stats.out -= tc->sink_rejected;
  tc->stats.dead += tc->sink_rejected;
  if (e->src.plugin->reader_lost)
    tc->lost = e->src.plugin->reader_lost(w->reader) - lost0;
  if (sl_failpoint_err("task.after_read", &t->err))
    return t->err.code;
  if (close_stage(&e->sink, tc->stage, &t->err))
    return t->err.code;
  return close_stage(&e->dl, tc->dl_stage, &t->err);
}

static void push_row(cJSON *row, void *arg) {
  cJSON_AddItemToArray(arg, row);
}

static int emit_rows(struct sl_task *t, struct worker_ctx *w,
                     struct engine *e) {
  struct task_ctx *tc = t->payload;
  tc->sink_rejected = 0;
  cJSON *rows = cJSON_CreateArray();
  for (unsigned s = tc->shard_lo; s < tc->shard_hi; s++)
    sl_wstate_emit_shard(e->ws, s, false, push_row, rows);
  size_t n = (size_t)cJSON_GetArraySize(rows);
  cJSON **v = sl_calloc(n ? n : 1, sizeof(*v));
  for (size_t i = 0; i < n; i++)
    v[i] = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  tc->pipe = sl_pipe_task_new(e->job->pipeline);
  int rc = sl_pipe_post(tc->pipe, v, n, e->job->on_error == SL_ON_ERROR_FAIL,
                        sl_wall_ms(), &w->out, &w->dead, &t->err);
  free(v);
  if (!rc && sl_pipeline_top(e->job->pipeline)) {
    /* Ranking needs every shard's rows: hand them to the coordinator. */
    tc->top_rows = sl_calloc(w->out.n ? w->out.n : 1, sizeof(char *));
    for (size_t i = 0; i < w->out.n; i++)
      tc->top_rows[tc->ntop++] =
          sl_strndup(w->out.recs[i].value, w->out.recs[i].value_len);
  } else if (!rc) {
    rc = stage_out(e, tc, t, w, &w->out, &t->err);
  }
  if (!rc)
    rc = stage_dead(e, tc, t, w, &w->dead, "a window output row", &t->err);
  if (rc)
    return rc;
  tc->stats = sl_pipe_task_stats(tc->pipe);
  tc->stats.in = 0;
  tc->stats.out -= tc->sink_rejected;
  tc->stats.dead += tc->sink_rejected;
  for (unsigned s = tc->shard_lo; s < tc->shard_hi; s++) {
    if (!sl_wstate_shard_dirty(e->ws, s))
      continue;
    tc->images =
        sl_realloc(tc->images, (tc->nimages + 1) * sizeof(*tc->images));
    struct shard_image *im = &tc->images[tc->nimages++];
    im->shard = s;
    if (sl_wstate_shard_serialize(e->ws, s, &im->data, &im->len, &t->err))
      return t->err.code;
  }
  if (close_stage(&e->sink, tc->stage, &t->err))
    return t->err.code;
  return close_stage(&e->dl, tc->dl_stage, &t->err);
}

/* Emits the window rows of a range of shards, runs the operators after the
 * window, stages the output, and serializes the shards that changed. The
 * rows' cJSON nodes come from an arena of the task's own (value.h), freed
 * at once when the rows are staged: a malloc and a free per node were a
 * sixth of a windowed job's CPU (docs/benchmarks.md).
 * @locality worker thread (one per shard range) */
static int emit_task(struct sl_task *t, struct worker_ctx *w,
                     struct engine *e) {
  struct task_ctx *tc = t->payload;
  struct sl_arena rows = {0};
  sl_arena_json_begin(&rows);
  int rc = emit_rows(t, w, e);
  sl_pipe_task_trim(tc->pipe); /* the rows die inside their arena */
  sl_arena_json_end();
  sl_arena_free(&rows);
  return rc;
}

/* @locality worker thread */
static int run_task_kind(struct sl_task *t, void *wctx, struct engine *e) {
  struct task_ctx *tc = t->payload;
  switch (tc->kind) {
  case TASK_READ:
    return read_task(t, wctx, e);
  case TASK_MERGE:
    for (unsigned s = tc->shard_lo; s < tc->shard_hi; s++)
      sl_wstate_merge_shard(e->ws, s, e->parts, e->nparts);
    return 0;
  case TASK_EMIT:
    return emit_task(t, wctx, e);
  }
  return SL_ERR_INVAL;
}

/* @locality worker thread */
static int run_task(struct sl_task *t, int worker, void *wctx, void *arg) {
  struct engine *e = arg;
  int64_t t0 = e->metrics ? sl_mono_ns() : 0;
  int rc = run_task_kind(t, wctx, e);
  if (e->metrics)
    sl_metrics_worker_busy(e->metrics, (unsigned)worker, sl_mono_ns() - t0);
  return rc;
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

/* Frees what a task attempt left: stages (committed or not), the
 * pipeline state. */
static void task_reset(struct engine *e, struct task_ctx *tc) {
  for (size_t i = 0; i < tc->ntop; i++)
    free(tc->top_rows[i]);
  free(tc->top_rows);
  tc->top_rows = NULL;
  tc->ntop = 0;
  for (size_t i = 0; i < tc->nimages; i++)
    free(tc->images[i].data);
  free(tc->images);
  tc->images = NULL;
  tc->nimages = 0;
  if (tc->stage)
    e->sink.plugin->stage_free(&e->sink, tc->stage);
  if (tc->dl_stage)
    e->dl.plugin->stage_free(&e->dl, tc->dl_stage);
  sl_pipe_task_free(tc->pipe);
  tc->stage = tc->dl_stage = NULL;
  tc->pipe = NULL;
}

static void free_stages(struct engine *e, struct task_ctx *tcs, size_t n) {
  for (size_t i = 0; i < n; i++)
    task_reset(e, &tcs[i]);
}

/* Runs every task of plan and waits for all of them. A task that fails
 * with a retriable error runs again (after a growing pause) until
 * task_attempts is spent. Fills *records and *lost. */
static int run_tasks(struct engine *e, const struct sl_plan *plan,
                     struct task_ctx **out_tcs, size_t *out_n, int64_t *records,
                     int64_t *lost, struct sl_pipe_stats *stats,
                     struct sl_error *err) {
  struct sl_slice *sl;
  size_t n = sl_plan_slice(plan, plan->task_max_records, &sl);
  struct task_ctx *tcs = sl_calloc(n ? n : 1, sizeof(*tcs));
  struct sl_task *tasks = sl_calloc(n ? n : 1, sizeof(*tasks));
  size_t next_submit = 0, done = 0, in_pool = 0;
  unsigned nw = sl_pool_workers(e->pool), turn = 0;
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    const struct sl_range *r = &plan->ranges[sl[i].range];
    tcs[i] = (struct task_ctx){.e = e,
                               .slice = {.topic = r->topic,
                                         .partition = r->partition,
                                         .start = sl[i].start,
                                         .end = sl[i].end}};
    tcs[i].kind = TASK_READ;
    /* A partition stays with the worker whose reader stands where its
     * range starts (its previous range, or the slice before this one);
     * the others go round. */
    int prefer = prefer_for(e, &tcs[i].slice);
    if (prefer < 0 && i > 0 && tcs[i - 1].slice.end == tcs[i].slice.start &&
        tcs[i - 1].slice.partition == tcs[i].slice.partition &&
        strcmp(tcs[i - 1].slice.topic, tcs[i].slice.topic) == 0)
      prefer = tasks[i - 1].prefer;
    if (prefer < 0)
      prefer = (int)(turn++ % nw);
    tasks[i] = (struct sl_task){.batch = plan->batch,
                                .id = (uint32_t)i,
                                .prefer = prefer,
                                .payload = &tcs[i]};
  }
  /* Each task's successor on its worker's ring (rings are FIFO), for the
   * prefetch hint. */
  struct task_ctx **last = sl_calloc(nw, sizeof(*last));
  for (size_t i = 0; i < n; i++) {
    unsigned w = (unsigned)tasks[i].prefer; /* always a worker: above */
    if (last[w])
      last[w]->after = &tcs[i];
    last[w] = &tcs[i];
  }
  free(last);
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
    task_reset(e, tc);
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
      sl_metrics_retry(e->metrics, SL_RETRY_TASK);
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
  memset(stats, 0, sizeof(*stats));
  for (size_t i = 0; i < n; i++) {
    *records += tcs[i].records;
    *lost += tcs[i].lost;
    stats->in += tcs[i].stats.in;
    stats->filtered += tcs[i].stats.filtered;
    stats->dead += tcs[i].stats.dead;
    stats->late += tcs[i].stats.late;
    stats->out += tcs[i].stats.out;
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

/* Calls fn until it succeeds or fails for good: a retriable failure (an
 * outage) is tried again after a doubling pause within the limits rt
 * (sink.<name>.retry, source.<name>.retry); a stop request ends the
 * waiting. source says whose outage it is, for the metrics. */
static int retry_within(struct engine *e, const struct sl_retry *rt,
                        bool source, const char *what,
                        int (*fn)(void *arg, struct sl_error *err), void *arg,
                        struct sl_error *err) {
  int64_t first_fail = 0, pause = rt->backoff_ns;
  for (int64_t attempt = 1;; attempt++) {
    int rc = fn(arg, err);
    if (!rc) {
      if (attempt > 1)
        sl_info("%s succeeded after %" PRId64 " tries", what, attempt);
      return 0;
    }
    if (!(err->flags & SL_ERR_RETRIABLE) || (err->flags & SL_ERR_FATAL))
      return rc;
    int64_t now = sl_mono_ns();
    if (!first_fail)
      first_fail = now;
    if (attempt >= rt->attempts || now - first_fail >= rt->max_elapsed_ns) {
      sl_error_prefix(err,
                      "gave up after %" PRId64 " tries in %.1f s "
                      "(%s.retry limits)",
                      attempt, (double)(now - first_fail) / 1e9,
                      source ? "source" : "sink");
      err->flags &= ~SL_ERR_RETRIABLE;
      return rc;
    }
    sl_warn("%s failed (try %" PRId64 "), retrying in %.2f s: %s", what,
            attempt, (double)pause / 1e9, err->msg);
    sl_metrics_retry(e->metrics, source ? SL_RETRY_SOURCE : SL_RETRY_SINK);
    wait_until(now + pause);
    if (atomic_load(&stop_requested))
      return sl_error_setf(err, SL_ERR_STOPPED, SL_ERR_FATAL,
                           "stopped while retrying: %s", what);
    pause = SL_MIN(pause * 2, rt->max_backoff_ns);
    if (pause <= 0)
      pause = rt->max_backoff_ns;
  }
}

static int with_retry(struct engine *e, const struct sl_sink *sink,
                      const char *what,
                      int (*fn)(void *arg, struct sl_error *err), void *arg,
                      struct sl_error *err) {
  return retry_within(e, &((const struct sl_sink_common *)sink->conf)->retry,
                      false, what, fn, arg, err);
}

struct commit_args {
  struct sl_sink *sink;
  const struct sl_plan *plan;
  void **stages;
  size_t n;
};

static int commit_call(void *arg, struct sl_error *err) {
  struct commit_args *a = arg;
  return a->sink->plugin->commit(a->sink, a->plan, a->stages, a->n, err);
}

/* Commits one sink with the non-empty stages in task order, retrying
 * outages (the batch runs again later if it is stopped meanwhile). */
static int commit_one(struct engine *e, struct sl_sink *sink,
                      const struct sl_plan *plan, struct task_ctx *tcs,
                      size_t n, bool dead_letters, struct sl_error *err) {
  void **stages = sl_calloc(n ? n : 1, sizeof(*stages));
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    void *st = dead_letters ? tcs[i].dl_stage : tcs[i].stage;
    if (st)
      stages[k++] = st;
  }
  char what[96];
  snprintf(what, sizeof(what), "%s commit of batch %" PRIu64,
           dead_letters ? "dead-letter" : "sink", plan->batch);
  struct commit_args a = {sink, plan, stages, k};
  int rc = with_retry(e, sink, what, commit_call, &a, err);
  free(stages);
  return rc;
}

/* Dead letters first: both commits are idempotent on the batch id, so a
 * crash between them re-runs the batch and the first is a no-op. */
static int commit_sink(struct engine *e, const struct sl_plan *plan,
                       struct task_ctx *tcs, size_t n, struct sl_error *err) {
  if (e->dl.plugin && commit_one(e, &e->dl, plan, tcs, n, true, err))
    return sl_error_prefix(err, "dead letters");
  return commit_one(e, &e->sink, plan, tcs, n, false, err);
}

/* Runs n tasks of one kind on the pool and waits for all (no retries: a
 * failure fails the batch, which the restart re-runs from the state of the
 * previous batch). */
static int run_phase(struct engine *e, uint64_t batch, struct task_ctx *tcs,
                     size_t n, uint32_t first_id, struct sl_error *err) {
  struct sl_task *tasks = sl_calloc(n ? n : 1, sizeof(*tasks));
  size_t submitted = 0, done = 0;
  int rc = 0;
  for (size_t i = 0; i < n; i++)
    tasks[i] = (struct sl_task){.batch = batch,
                                .id = first_id + (uint32_t)i,
                                .prefer = (int)(i % sl_pool_workers(e->pool)),
                                .payload = &tcs[i]};
  while (done < submitted || submitted < n) {
    while (submitted < n && !rc &&
           sl_pool_submit(e->pool, &tasks[submitted]) == 0)
      submitted++;
    if (rc && done == submitted)
      break;
    struct sl_task *t = sl_pool_wait(e->pool, 100 * 1000000LL);
    if (!t)
      continue;
    done++;
    if (t->rc && !rc) {
      *err = t->err;
      rc = err->code ? err->code : SL_ERR_INVAL;
    }
  }
  free(tasks);
  return rc;
}

/* `top`: ranks the rows of all emit tasks per window and stages the
 * winners from the coordinator, as one more task of the batch. */
static int stage_top(struct engine *e, const struct sl_plan *plan,
                     struct task_ctx **tcs, size_t *n, unsigned groups,
                     struct sl_pipe_stats *stats, struct sl_error *err) {
  size_t total = 0, k = 0;
  for (size_t g = *n - groups; g < *n; g++)
    total += (*tcs)[g].ntop;
  char **rows = sl_calloc(total ? total : 1, sizeof(*rows));
  for (size_t g = *n - groups; g < *n; g++) {
    for (size_t i = 0; i < (*tcs)[g].ntop; i++)
      rows[k++] = (*tcs)[g].top_rows[i];
    (*tcs)[g].ntop = 0;
  }
  sl_pipeline_apply_top(e->job->pipeline, rows, &total);
  *tcs = sl_realloc(*tcs, (*n + 1) * sizeof(**tcs));
  struct task_ctx *tc = *tcs + *n;
  *tc = (struct task_ctx){.kind = TASK_EMIT, .e = e};
  struct sl_task t = {.batch = plan->batch, .id = (uint32_t)*n};
  (*n)++;
  struct sl_batch b = {0};
  sl_batch_reserve(&b, total ? total : 1);
  for (size_t i = 0; i < total; i++)
    b.recs[b.n++] = (struct sl_record){
        .value = rows[i], .value_len = strlen(rows[i]), .topic = ""};
  struct worker_ctx w = {0}; /* the coordinator's, for rejects */
  int rc = stage_out(e, tc, &t, &w, &b, err);
  if (!rc)
    rc = close_stage(&e->sink, tc->stage, err);
  if (!rc)
    rc = close_stage(&e->dl, tc->dl_stage, err);
  sl_rejects_free(&w.rejects);
  sl_batch_free(&w.rdead);
  stats->out += (int64_t)total - tc->sink_rejected;
  stats->dead += tc->sink_rejected;
  for (size_t i = 0; i < total; i++)
    free(rows[i]);
  free(rows);
  sl_batch_free(&b);
  return rc;
}

/* The window part of a batch: merge the tasks' partials into the state
 * (shard ranges in parallel), advance the watermark, emit and snapshot
 * (in parallel again), and write the snapshot before the sink commit
 * (invariant 5). Emit tasks are appended to *tcs so that their stages
 * commit with the batch. */
static int run_window(struct engine *e, const struct sl_plan *plan,
                      struct task_ctx **tcs, size_t *n,
                      struct sl_pipe_stats *stats, struct sl_error *err) {
  const struct sl_window_spec *spec = sl_wstate_spec(e->ws);
  unsigned shards = spec->shards;
  unsigned groups = SL_MIN(shards, sl_pool_workers(e->pool) * 4);
  e->parts = sl_calloc(*n ? *n : 1, sizeof(*e->parts));
  e->nparts = 0;
  for (size_t i = 0; i < *n; i++)
    if ((*tcs)[i].pipe && sl_pipe_task_partial((*tcs)[i].pipe))
      e->parts[e->nparts++] = sl_pipe_task_partial((*tcs)[i].pipe);
  struct task_ctx *m = sl_calloc(groups, sizeof(*m));
  for (unsigned g = 0; g < groups; g++)
    m[g] = (struct task_ctx){.kind = TASK_MERGE,
                             .e = e,
                             .shard_lo = g * shards / groups,
                             .shard_hi = (g + 1) * shards / groups};
  int64_t w0 = sl_mono_ns();
  int rc = run_phase(e, plan->batch, m, groups, (uint32_t)*n, err);
  free(m);
  int64_t w1 = sl_mono_ns();
  if (!rc)
    sl_wstate_advance(e->ws, e->parts, e->nparts);
  free(e->parts);
  e->parts = NULL;
  if (rc)
    return rc;
  size_t bytes = sl_wstate_bytes(e->ws);
  if ((int64_t)bytes > e->job->state.max_bytes)
    return sl_error_setf(
        err, SL_ERR_INVAL, SL_ERR_FATAL,
        "window state holds %zu bytes in %zu windows, more than "
        "state.max_bytes (%lld): raise state.max_bytes, shorten the "
        "watermark, or group by fewer keys",
        bytes, sl_wstate_windows(e->ws), (long long)e->job->state.max_bytes);
  *tcs = sl_realloc(*tcs, (*n + groups) * sizeof(**tcs));
  struct task_ctx *em = *tcs + *n;
  for (unsigned g = 0; g < groups; g++)
    em[g] = (struct task_ctx){.kind = TASK_EMIT,
                              .e = e,
                              .shard_lo = g * shards / groups,
                              .shard_hi = (g + 1) * shards / groups};
  *n += groups;
  int64_t w2 = sl_mono_ns();
  if ((rc =
           run_phase(e, plan->batch, em, groups, (uint32_t)(*n - groups), err)))
    return rc;
  int64_t w3 = sl_mono_ns();
  if (sl_pipeline_top(e->job->pipeline) &&
      (rc = stage_top(e, plan, tcs, n, groups, stats, err)))
    return rc;
  em = *tcs + *n - groups - (sl_pipeline_top(e->job->pipeline) ? 1 : 0);
  for (unsigned g = 0; g < groups; g++) {
    if (!sl_pipeline_top(e->job->pipeline))
      stats->out += em[g].stats.out;
    stats->dead += em[g].stats.dead;
    stats->filtered += em[g].stats.filtered;
    for (size_t i = 0; i < em[g].nimages; i++) {
      const struct shard_image *im = &em[g].images[i];
      if ((rc = sl_ckpt_state_write_shard(e->ck, plan->batch, im->shard,
                                          im->data, im->len, err)))
        return rc;
      e->shard_batch[im->shard] = plan->batch;
    }
  }
  struct sl_state_index x = {.batch = plan->batch,
                             .watermark = sl_wstate_watermark(e->ws),
                             .max_event = sl_wstate_max_event(e->ws),
                             .nshards = shards,
                             .shard_batch = e->shard_batch};
  rc = sl_ckpt_state_write_index(e->ck, &x, err);
  if (!rc)
    rc = sl_failpoint_err("batch.after_state", err);
  int64_t w4 = sl_mono_ns();
  sl_debug("batch %" PRIu64 " window: merge %.1f, advance %.1f, emit %.1f, "
           "state %.1f ms",
           plan->batch, (double)(w1 - w0) / 1e6, (double)(w2 - w1) / 1e6,
           (double)(w3 - w2) / 1e6, (double)(w4 - w3) / 1e6);
  return rc;
}

/* Loads the window state as of batch `batch` (0: empty). */
static int load_state(struct engine *e, uint64_t batch, struct sl_error *err) {
  const struct sl_window_spec *spec = sl_wstate_spec(e->ws);
  if (batch == 0)
    return 0;
  struct sl_state_index x;
  int rc = sl_ckpt_state_read_index(e->ck, batch, &x, err);
  if (rc == SL_ERR_NOTFOUND)
    return sl_error_setf(err, SL_ERR_CORRUPT, SL_ERR_FATAL,
                         "the checkpoint in %s has no window state for "
                         "committed batch %" PRIu64 " (was the window added "
                         "to a job that ran without one? use a new "
                         "checkpoint directory)",
                         e->job->checkpoint.dir, batch);
  if (rc)
    return rc;
  if (x.nshards != spec->shards) {
    sl_state_index_free(&x);
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state of batch %" PRIu64 " has %u shards, "
                        "expected %u",
                        batch, x.nshards, spec->shards);
  }
  for (unsigned s = 0; s < x.nshards && !rc; s++) {
    void *data;
    size_t len;
    e->shard_batch[s] = x.shard_batch[s];
    if (!x.shard_batch[s])
      continue;
    if (!(rc = sl_ckpt_state_read_shard(e->ck, x.shard_batch[s], s, &data, &len,
                                        err))) {
      rc = sl_wstate_shard_restore(e->ws, s, data, len, err);
      free(data);
    }
  }
  if (!rc) {
    sl_wstate_set_times(e->ws, x.max_event, x.watermark);
    sl_info("window state restored from batch %" PRIu64 ": %zu windows, "
            "watermark %lld",
            batch, sl_wstate_windows(e->ws), (long long)x.watermark);
  }
  sl_state_index_free(&x);
  return rc;
}

/* A batch past its window phase: its sink commit runs (on a thread of its
 * own when e->overlap) and commits/N is still to be written. */
struct inflight {
  struct engine *e;
  struct sl_plan plan, latest; /* owned; latest empty when unknown */
  bool has_latest;
  struct task_ctx *tcs;
  size_t n;
  int64_t records, lost;
  struct sl_pipe_stats stats;
  /* plan, offsets/N, reads, waiting for the previous batch's commit, the
   * window phase (ns); start of the batch, of its commit, end of it */
  int64_t plan_ns, off_ns, read_ns, wait_ns, win_ns, t0, t2, t3;
  bool async;
  pthread_t th;
  int rc;
  struct sl_error err;
};

static void *commit_main(void *arg) {
  struct inflight *fl = arg;
  fl->e->sink.note[0] = '\0';
  fl->rc = commit_sink(fl->e, &fl->plan, fl->tcs, fl->n, &fl->err);
  fl->t3 = sl_mono_ns();
  return NULL;
}

static void inflight_free(struct engine *e, struct inflight *fl) {
  free_stages(e, fl->tcs, fl->n);
  free(fl->tcs);
  sl_plan_clear(&fl->plan);
  sl_plan_clear(&fl->latest);
  free(fl);
}

/* Waits for the in-flight batch's sink commit, then makes the batch
 * current (commits/N) and reports it. No-op when none is in flight. */
static int finish_batch(struct engine *e, struct sl_error *err) {
  struct inflight *fl = e->fl;
  if (!fl)
    return 0;
  e->fl = NULL;
  if (fl->async)
    pthread_join(fl->th, NULL);
  int64_t tj = sl_mono_ns();
  const struct sl_plan *plan = &fl->plan;
  if (fl->rc) {
    *err = fl->err;
    sl_error_prefix(err, "sink commit of batch %" PRIu64 " failed",
                    plan->batch);
    int rc = fl->rc;
    inflight_free(e, fl);
    return rc;
  }
  int64_t t3 = fl->t3, t0 = fl->t0, t2 = fl->t2;
  int64_t plan_ns = fl->plan_ns, records = fl->records, lost = fl->lost;
  struct sl_pipe_stats stats = fl->stats;
  int rc = 0;
  sl_ckpt_set_commit_note(e->ck, e->sink.note);
  if (sl_failpoint_err("batch.after_sink_commit", err) ||
      sl_ckpt_write_commit(e->ck, plan->batch, sl_wall_ms(), err) ||
      sl_failpoint_err("batch.after_commit", err)) {
    rc = err->code;
    goto out;
  }
  if (sl_ckpt_prune(e->ck, (unsigned)e->job->checkpoint.retain, err))
    sl_warn("pruning the checkpoint: %s", err->msg);
  if (e->ws) {
    uint64_t keep = (uint64_t)e->job->checkpoint.retain;
    uint64_t oldest = plan->batch > keep ? plan->batch - keep + 1 : 1;
    if (sl_ckpt_state_prune(e->ck, oldest, plan->batch, err))
      sl_warn("pruning the window state: %s", err->msg);
  }
  int64_t t4 = sl_mono_ns();
  if (!e->committed_once) {
    /* Start-up latency, for operators and the startup benchmark, which
     * reads the absolute monotonic time. */
    e->committed_once = true;
    sl_debug("first commit %.3f ms after start (monotonic %.6f s); "
             "batch: plan %.3f, offsets %.3f, tasks %.3f, sink %.3f, "
             "commit %.3f ms",
             (double)(t4 - sl_process_start_ns()) / 1e6, (double)t4 / 1e9,
             (double)plan_ns / 1e6, (double)fl->off_ns / 1e6,
             (double)(fl->read_ns + fl->win_ns) / 1e6, (double)(t3 - t2) / 1e6,
             (double)(t4 - tj) / 1e6);
  }
  char beside[96] = "";
  if (fl->wait_ns >= 0)
    snprintf(beside, sizeof(beside),
             " (read beside batch %" PRIu64 "'s commit, then waited %.1f ms "
             "for it)",
             plan->batch - 1, (double)fl->wait_ns / 1e6);
  sl_debug("batch %" PRIu64 " phases: plan %.1f, offsets %.1f, read %.1f, "
           "window %.1f, sink %.1f, commit %.1f ms%s",
           plan->batch, (double)plan_ns / 1e6, (double)fl->off_ns / 1e6,
           (double)fl->read_ns / 1e6, (double)fl->win_ns / 1e6,
           (double)(t3 - t2) / 1e6, (double)(t4 - tj) / 1e6, beside);
  /* The batch's own time: not the wait for the next batch's reads that
   * its finished commit may have had. */
  int64_t total_ns = (t3 - t0) + plan_ns + (t4 - tj);
  struct sl_progress pr = {
      .job_id = e->job->id,
      .run_id = e->run_id,
      .batch = plan->batch,
      .timestamp_ms = plan->created_ms,
      .records = records,
      .lost = lost,
      .out = stats.out,
      .filtered = stats.filtered,
      .dead = stats.dead,
      .late = stats.late,
      .processed_rate = total_ns > 0 ? (double)records * 1e9 / total_ns : 0,
      .input_rate = 0,
      .plan_ms = plan_ns / 1000000,
      .wal_ms = fl->off_ns / 1000000,
      .process_ms = (fl->read_ns + fl->win_ns) / 1000000,
      .sink_ms = (t3 - t2) / 1000000,
      .commit_ms = (t4 - tj) / 1000000,
      .total_ms = total_ns / 1000000,
      .plan = plan,
      .latest = fl->has_latest ? &fl->latest : NULL,
      .lag = fl->has_latest ? lag_after(plan, &fl->latest) : 0,
      .source_desc = e->src.plugin->describe(&e->src),
      .sink_desc = e->sink.plugin->describe(&e->sink)};
  if (e->job->trigger.available_now) {
    e->done += records;
    pr.bounded = true;
    pr.done = e->done;
    for (size_t i = 0; i < plan->n; i++) {
      const struct sl_range *r = &plan->ranges[i];
      const struct sl_range *t =
          sl_plan_find(&e->target, r->topic, r->partition);
      if (t && t->end > r->end)
        pr.remaining += t->end - r->end;
    }
  }
  if (e->last_batch_start_ns && t0 > e->last_batch_start_ns)
    pr.input_rate =
        (double)records * 1e9 / (double)(t0 - e->last_batch_start_ns);
  e->last_batch_start_ns = t0;
  e->last_batch_end_ns = t4;
  sl_progress_write(stderr, e->opts->progress, &pr);
  sl_metrics_batch(e->metrics, &pr);
  if (e->ws)
    sl_metrics_state(e->metrics, sl_wstate_windows(e->ws),
                     sl_wstate_bytes(e->ws));
out:
  inflight_free(e, fl);
  return rc;
}

/* One batch: offsets/N (the plan), the read tasks, the window, then the
 * sink commit. When the previous batch's commit is still running (e->fl,
 * with e->overlap), this batch's read tasks run beside it: no output of
 * theirs is visible before this batch commits, and offsets/N is written
 * only once the previous batch is current (commits/N-1), so the
 * checkpoint sees the same sequence as without the overlap; a crash
 * before then leaves only stages that no commit lists, and the restart
 * plans batch N afresh. With e->overlap the commit of this batch is left
 * running on a thread of its own (e->fl); finish_batch completes it. */
static int run_batch(struct engine *e, struct sl_plan *plan,
                     const struct sl_plan *latest, bool rerun, int64_t plan_ns,
                     struct sl_error *err) {
  int64_t t0 = sl_mono_ns(), off_ns = 0, wait_ns = -1, t2;
  struct task_ctx *tcs = NULL;
  size_t n = 0;
  int64_t records = 0, lost = 0;
  struct sl_pipe_stats stats;
  bool beside = e->fl != NULL;
  if (!beside && !rerun &&
      (sl_failpoint_err("batch.planned", err) ||
       sl_ckpt_write_offsets(e->ck, plan, err) ||
       sl_failpoint_err("batch.after_offsets", err)))
    return err->code;
  int64_t t1 = sl_mono_ns();
  off_ns = t1 - t0;
  e->watermark = e->ws ? sl_wstate_watermark(e->ws) : SL_WINDOW_NO_WATERMARK;
  int rc = run_tasks(e, plan, &tcs, &n, &records, &lost, &stats, err);
  int64_t tread = sl_mono_ns(), tr = tread;
  if (beside) {
    struct sl_error ferr = {0};
    int frc = finish_batch(e, &ferr);
    if (frc) {
      if (!rc) {
        free_stages(e, tcs, n);
        free(tcs);
      }
      *err = ferr;
      return frc;
    }
    int64_t tf = sl_mono_ns();
    wait_ns = tf - tread;
    if (!rc && !rerun &&
        (sl_failpoint_err("batch.planned", err) ||
         sl_ckpt_write_offsets(e->ck, plan, err) ||
         sl_failpoint_err("batch.after_offsets", err)))
      rc = err->code;
    if (rc && n) { /* run_tasks frees its own on failure */
      free_stages(e, tcs, n);
      free(tcs);
    }
    off_ns = sl_mono_ns() - tf;
    tr = sl_mono_ns();
  }
  if (!rc && (rc = sl_failpoint_err("batch.after_reads", err))) {
    free_stages(e, tcs, n);
    free(tcs);
  }
  if (rc)
    return rc;
  if (e->ws && run_window(e, plan, &tcs, &n, &stats, err)) {
    free_stages(e, tcs, n);
    free(tcs);
    return err->code;
  }
  t2 = sl_mono_ns();
  struct inflight *fl = sl_calloc(1, sizeof(*fl));
  *fl = (struct inflight){.e = e,
                          .plan = *plan,
                          .tcs = tcs,
                          .n = n,
                          .records = records,
                          .lost = lost,
                          .stats = stats,
                          .plan_ns = plan_ns,
                          .off_ns = off_ns,
                          .read_ns = tread - t1,
                          .wait_ns = wait_ns,
                          .win_ns = t2 - tr,
                          .t0 = t0,
                          .t2 = t2};
  memset(plan, 0, sizeof(*plan)); /* moved: the tasks point into it */
  if (latest) {
    sl_plan_copy(&fl->latest, latest);
    fl->has_latest = true;
  }
  /* The batch's ends are where the next one starts (the next batch is
   * planned while this one commits; if the commit fails, the job stops). */
  for (size_t i = 0; i < fl->plan.n; i++) {
    const struct sl_range *r = &fl->plan.ranges[i];
    struct sl_range *p = sl_plan_find(&e->pos, r->topic, r->partition);
    if (p)
      p->end = r->end;
    else
      sl_plan_add(&e->pos, r->topic, r->partition, r->end, r->end);
  }
  e->next_batch = fl->plan.batch + 1;
  e->fl = fl;
  if (e->overlap && pthread_create(&fl->th, NULL, commit_main, fl) == 0) {
    fl->async = true;
    return 0;
  }
  commit_main(fl);
  return finish_batch(e, err);
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

struct last_args {
  struct sl_sink *sink;
  uint64_t *batch;
  struct sl_plan *end;
};

static int last_call(void *arg, struct sl_error *err) {
  struct last_args *a = arg;
  sl_plan_clear(a->end);
  return a->sink->plugin->last_committed(a->sink, a->batch, a->end, err);
}

/* --recover-from-sink with a sink behind the checkpoint: the sink's end
 * offsets (none: the source's starting offsets) become the checkpoint's
 * new batch `batch`, numbered after everything the store has seen, so
 * that the sink's guard accepts the batches that follow. A windowed job
 * cannot: its state would have to go back to the sink's batch. */
static int recover_from_sink(struct engine *e, uint64_t batch,
                             uint64_t sink_batch,
                             const struct sl_plan *sink_end,
                             struct sl_error *err) {
  if (e->ws)
    return sl_error_setf(err, SL_ERR_DATALOSS, SL_ERR_FATAL,
                         "--recover-from-sink: job %s keeps window state, "
                         "which cannot go back to the sink's batch %" PRIu64
                         "; remove the checkpoint directory %s and the "
                         "sink's data to start over",
                         e->job->id, sink_batch, e->job->checkpoint.dir);
  struct sl_plan p = {0};
  sl_plan_copy(&p, sink_end);
  p.batch = batch;
  p.task_max_records = sl_job_batching(e->job)->task_max_records;
  p.created_ms = sl_wall_ms();
  sl_plan_clear(&e->pos);
  sl_ckpt_set_commit_note(e->ck, "recovered from the sink");
  int rc = sl_ckpt_roll_forward(e->ck, &p, sl_wall_ms(), err);
  sl_plan_clear(&p);
  if (rc)
    return rc;
  positions_from(e, sink_end);
  e->next_batch = batch + 1;
  sl_warn("--recover-from-sink: the sink holds batch %" PRIu64
          "; continuing from its offsets%s as batch %" PRIu64,
          sink_batch, sink_end->n ? "" : " (none: the starting offsets)",
          batch);
  return 0;
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
  struct last_args la = {&e->sink, &sink_batch, &sink_end};
  if (sink_knows) {
    rc = with_retry(e, &e->sink, "reading the sink's last commit", last_call,
                    &la, err);
    if (rc == SL_ERR_NOTFOUND) { /* keeps no record as configured */
      sink_knows = false;
      sl_error_clear(err);
      rc = 0;
    } else if (rc) {
      sl_plan_clear(&sink_end);
      return rc;
    }
  }
  struct sl_recovery d =
      sl_recovery_decide(st.last_commit, st.last_offsets, sink_knows,
                         sink_batch, e->opts->recover_from_sink);
  if (st.last_commit &&
      (rc = sl_ckpt_read_offsets(e->ck, st.last_commit, &p, err)))
    goto out;
  positions_from(e, &p);
  sl_plan_clear(&p);
  /* The window state is that of the batch the checkpoint (after the
   * decision below) counts as committed. */
  uint64_t state_batch = st.last_commit;
  if (d.action == SL_RECOVER_COMPLETE || d.action == SL_RECOVER_ROLL_FORWARD)
    state_batch = d.batch;
  if (e->ws && d.action != SL_RECOVER_SINK_BEHIND &&
      d.action != SL_RECOVER_FROM_SINK &&
      (rc = load_state(e, state_batch, err)))
    goto out;
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
    sl_ckpt_set_commit_note(e->ck, e->sink.note);
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
    sl_ckpt_set_commit_note(e->ck, e->sink.note);
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
                       ": the sink lost data (was it wiped, restarted "
                       "without durable persistence, or restored from an "
                       "old backup?). To continue from what the sink holds "
                       "(re-processing what it lost, if the source still "
                       "has it), run again with --recover-from-sink",
                       d.batch, e->job->checkpoint.dir, st.last_commit);
    break;
  case SL_RECOVER_FROM_SINK:
    rc = recover_from_sink(e, d.batch, sink_batch, &sink_end, err);
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

struct plan_args {
  struct engine *e;
  struct sl_plan *plan, *latest; /* latest NULL: the watermarks only */
};

/* plan_next (or the watermarks alone) for retry_within. While the
 * source is out, the batch in flight is made current, so that an outage
 * holds back no finished commit. */
static int plan_call(void *arg, struct sl_error *err) {
  struct plan_args *a = arg;
  struct engine *e = a->e;
  sl_plan_clear(a->plan);
  int rc;
  if (a->latest) {
    sl_plan_clear(a->latest);
    rc = plan_next(e, a->plan, a->latest, err);
  } else {
    rc = e->src.plugin->watermarks(&e->src, a->plan, err);
  }
  if (rc && (err->flags & SL_ERR_RETRIABLE) && e->fl) {
    struct sl_error ferr = {0};
    if (finish_batch(e, &ferr)) {
      *err = ferr;
      err->flags |= SL_ERR_FATAL;
      return ferr.code;
    }
  }
  return rc;
}

/* Plans the next batch, retrying an outage of the source within
 * source.<name>.retry. */
static int plan_retrying(struct engine *e, struct sl_plan *plan,
                         struct sl_plan *latest, struct sl_error *err) {
  char what[64];
  snprintf(what, sizeof(what), "planning batch %" PRIu64, e->next_batch);
  struct plan_args a = {e, plan, latest};
  int rc = retry_within(e, &sl_job_batching(e->job)->retry, true, what,
                        plan_call, &a, err);
  if (rc && err->code != SL_ERR_STOPPED)
    sl_error_prefix(err, "%s failed", what);
  return rc;
}

static int loop_batches(struct engine *e, struct sl_error *err) {
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
    if (plan_retrying(e, &wm, NULL, err)) {
      sl_plan_clear(&wm);
      return err->code;
    }
    sl_plan_copy(&e->target, &wm);
    sl_plan_clear(&wm);
  }
  while (!sl_engine_stop_requested()) {
    if (tr->available_now && reached_target(e)) {
      if (finish_batch(e, err))
        return err->code;
      sl_info("available-now: all %zu partitions processed up to the "
              "offsets seen at start; exiting",
              e->target.n);
      return 0;
    }
    int64_t t0 = sl_mono_ns();
    struct sl_plan plan = {0}, latest = {0};
    int rc = plan_retrying(e, &plan, &latest, err);
    if (rc) {
      sl_plan_clear(&plan);
      sl_plan_clear(&latest);
      if (rc == SL_ERR_STOPPED) /* while the source was out: a clean stop */
        break;
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
    else
      rc = finish_batch(e, err); /* no batch to read beside it */
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
     * that overran starts the next at once, beside this one's commit. */
    if (sl_mono_ns() < t0 + tr->interval_ns && finish_batch(e, err))
      return err->code;
    wait_until(t0 + tr->interval_ns);
  }
  if (finish_batch(e, err))
    return err->code;
  sl_info("stopped on request after batch %" PRIu64, e->next_batch - 1);
  return 0;
}

static unsigned sink_flags(const struct sl_sink *sink) {
  return sink->plugin->conf_flags ? sink->plugin->conf_flags(sink->conf)
                                  : sink->plugin->flags;
}

/* Whatever ends the loop, a commit in flight is waited for and, when it
 * succeeded, made current. */
static int loop(struct engine *e, struct sl_error *err) {
  int rc = loop_batches(e, err);
  struct sl_error ferr = {0};
  int frc = finish_batch(e, &ferr);
  if (frc && !rc) {
    *err = ferr;
    rc = frc;
  }
  return rc;
}

static const char *const action_names[] = {
    [SL_RECOVER_FRESH] = "plan batch %llu",
    [SL_RECOVER_RERUN] = "run batch %llu again with its planned ranges",
    [SL_RECOVER_COMPLETE] = "complete the checkpoint of batch %llu, which "
                            "the sink already holds",
    [SL_RECOVER_ROLL_FORWARD] = "roll the checkpoint forward to the sink's "
                                "batch %llu",
    [SL_RECOVER_SINK_BEHIND] = "stop: the sink (at batch %llu) is behind the "
                               "checkpoint",
    [SL_RECOVER_FROM_SINK] = "continue from the sink's offsets as batch %llu"};

/* --dry-run: the source and the sink answer; what recovery would decide
 * and how much is waiting. Writes nothing (the checkpoint is read only if
 * it exists). */
static int dry_run(struct engine *e, struct sl_error *err) {
  struct sl_ckpt_state st = {0};
  uint64_t sink_batch = 0;
  struct sl_plan sink_end = {0}, wm = {0};
  bool sink_knows = e->sink.plugin->last_committed != NULL;
  struct stat sb;
  if (stat(e->job->checkpoint.dir, &sb) == 0) {
    if (sl_ckpt_open(e->job->checkpoint.dir, e->job->id, &e->ck, err) ||
        sl_ckpt_scan(e->ck, &st, err))
      return err->code;
  }
  struct last_args la = {&e->sink, &sink_batch, &sink_end};
  if (sink_knows && with_retry(e, &e->sink, "reading the sink's last commit",
                               last_call, &la, err))
    return err->code;
  sl_plan_clear(&sink_end);
  if (e->src.plugin->watermarks(&e->src, &wm, err))
    return err->code;
  int64_t records = 0;
  for (size_t i = 0; i < wm.n; i++)
    records += wm.ranges[i].end - wm.ranges[i].start;
  struct sl_recovery d =
      sl_recovery_decide(st.last_commit, st.last_offsets, sink_knows,
                         sink_batch, e->opts->recover_from_sink);
  char next[200];
  snprintf(next, sizeof(next), action_names[d.action],
           (unsigned long long)d.batch);
  sl_info("dry run: source %s answers (%zu partitions, %lld records "
          "retained); sink %s answers (%s); checkpoint at batch %llu; a run "
          "would %s",
          e->src.plugin->describe(&e->src), wm.n, (long long)records,
          e->sink.plugin->describe(&e->sink),
          sink_knows ? "last committed batch known" : "keeps no record",
          (unsigned long long)st.last_commit, next);
  if (sink_knows)
    sl_info("dry run: the sink's last committed batch is %llu",
            (unsigned long long)sink_batch);
  sl_plan_clear(&wm);
  return d.action == SL_RECOVER_SINK_BEHIND
             ? sl_error_setf(err, SL_ERR_DATALOSS, SL_ERR_FATAL,
                             "dry run: the sink is behind the checkpoint "
                             "(data loss); see --recover-from-sink")
             : 0;
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
  if (job->has_metrics) {
    struct sl_metrics_info mi = {.job_id = job->id,
                                 .source = job->source_plugin->name,
                                 .sink = job->sink_plugin->name,
                                 .workers = (unsigned)job->workers,
                                 .history = job->metrics.history};
    e.metrics = sl_metrics_new(&mi);
    if ((rc = sl_metrics_serve(e.metrics, &job->metrics, err)))
      goto out;
  }
  if (!opts->dry_run &&
      (rc = sl_ckpt_open(job->checkpoint.dir, job->id, &e.ck, err)))
    goto out;
  if ((rc = job->source_plugin->init(&e.src, err))) {
    sl_error_prefix(err, "source");
    goto out;
  }
  e.src_ready = true;
  if ((rc = job->sink_plugin->init(&e.sink, err)))
    goto out;
  e.sink_ready = true;
  if (job->dl_plugin) {
    e.dl = (struct sl_sink){
        .plugin = job->dl_plugin, .conf = job->dl_conf, .job = job};
    if ((rc = job->dl_plugin->init(&e.dl, err))) {
      sl_error_prefix(err, "dead letters");
      goto out;
    }
  }
  if (opts->dry_run) {
    rc = dry_run(&e, err);
    goto out;
  }
  e.has_ops = sl_pipeline_ops(job->pipeline) > 0;
  if (sl_pipeline_window(job->pipeline)) {
    e.ws = sl_wstate_new(sl_pipeline_window(job->pipeline));
    e.shard_batch = sl_calloc(sl_pipeline_window(job->pipeline)->shards,
                              sizeof(*e.shard_batch));
  }
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
  /* A commit may run beside the next batch's reads when every sink the
   * batch commits keeps its stages apart from its commit. */
  e.overlap =
      (sink_flags(&e.sink) & SL_SINK_STAGE_DURING_COMMIT) &&
      (!e.dl.plugin || (sink_flags(&e.dl) & SL_SINK_STAGE_DURING_COMMIT));
  sl_metrics_set_ready(e.metrics, true);
  rc = loop(&e, err);
  sl_progress_end(stderr);
out:
  sl_metrics_set_ready(e.metrics, false);
  sl_pool_destroy(e.pool);
  if (e.sink_ready || e.sink.ctx)
    job->sink_plugin->destroy(&e.sink);
  if (e.dl.ctx)
    job->dl_plugin->destroy(&e.dl);
  if (e.src_ready || e.src.ctx)
    job->source_plugin->destroy(&e.src);
  sl_ckpt_close(e.ck);
  sl_wstate_free(e.ws);
  free(e.shard_batch);
  sl_plan_clear(&e.pos);
  sl_plan_clear(&e.target);
  sl_plan_clear(&e.affinity);
  sl_metrics_free(e.metrics);
  return rc;
}
