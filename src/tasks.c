/*
 * tasks.c - dispatch and running of a batch's tasks on the worker pool.
 *
 * Owns the worker side: each worker's reader and buffers (worker_init,
 * worker_fini), the read task (exact range -> pipeline -> sink stage), the
 * window's merge and emit tasks, the prefetch hint, and the coordinator's
 * loop that submits tasks, retries failed ones and waits for all
 * (eng_run_tasks, eng_run_phase). Only run_task and the worker callbacks
 * run on worker threads; the coordinator does not touch a task between
 * submitting it and getting it back from sl_pool_wait.
 */
#include "engine_int.h"

/* @locality worker thread */
int eng_worker_init(int worker, void *arg, void **wctx, struct sl_error *err) {
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
void eng_worker_fini(int worker, void *arg, void *wctx) {
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
int eng_stage_dead(struct engine *e, struct task_ctx *tc,
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
int eng_stage_out(struct engine *e, struct task_ctx *tc,
                  const struct sl_task *t, struct worker_ctx *w,
                  const struct sl_batch *b, struct sl_error *err) {
  sl_rejects_clear(&w->rejects);
  int rc = stage(&e->sink, &tc->stage, t, b, &w->rejects, err);
  if (rc)
    return rc;
  return eng_sink_rejects(e, tc, t, w, err);
}

/* What the sink left in w->rejects becomes dead letters (or fails the job
 * with on_error: fail). @locality worker thread */
int eng_sink_rejects(struct engine *e, struct task_ctx *tc,
                     const struct sl_task *t, struct worker_ctx *w,
                     struct sl_error *err) {
  size_t n = w->rejects.n;
  int rc;
  if (n == 0)
    return 0;
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
  rc = eng_stage_dead(e, tc, t, w, &w->rdead,
                      "a record the sink could not write", err);
  for (size_t i = 0; i < n; i++)
    free((char *)w->rdead.recs[i].value);
  w->rdead.n = 0;
  return rc;
}

int eng_close_stage(struct sl_sink *sink, void *st, struct sl_error *err) {
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
      rc = eng_stage_out(e, tc, t, w, &w->chunk, &t->err);
      continue;
    }
    rc = sl_pipe_run(tc->pipe, &w->chunk, e->watermark, fail, sl_wall_ms(),
                     &w->out, &w->dead, &t->err);
    if (!rc)
      rc = eng_stage_out(e, tc, t, w, &w->out, &t->err);
    if (!rc)
      rc = eng_stage_dead(e, tc, t, w, &w->dead, "a record", &t->err);
  }
  hint_ranges(e, w, tc, false);
  if (!rc && e->merge && tc->pipe) {
    /* the task's contribution to each window, at the range's last offset
     * for the sink's position guard */
    struct sl_record at = {.topic = tc->slice.topic,
                           .partition = tc->slice.partition,
                           .offset = tc->slice.end - 1,
                           .timestamp = -1};
    sl_pipe_merge_out(tc->pipe, &at, &w->out);
    rc = w->out.n ? eng_stage_out(e, tc, t, w, &w->out, &t->err) : 0;
  }
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
  if (eng_close_stage(&e->sink, tc->stage, &t->err))
    return t->err.code;
  return eng_close_stage(&e->dl, tc->dl_stage, &t->err);
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
    rc = eng_stage_out(e, tc, t, w, &w->out, &t->err);
  }
  if (!rc)
    rc = eng_stage_dead(e, tc, t, w, &w->dead, "a window output row", &t->err);
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
  if (eng_close_stage(&e->sink, tc->stage, &t->err))
    return t->err.code;
  return eng_close_stage(&e->dl, tc->dl_stage, &t->err);
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
  case TASK_STREAM:
    return eng_stream_task(t, wctx, e);
  }
  return SL_ERR_INVAL;
}

/* @locality worker thread */
int eng_run_task(struct sl_task *t, int worker, void *wctx, void *arg) {
  struct engine *e = arg;
  int64_t t0 = e->metrics ? sl_mono_ns() : 0;
  int rc = run_task_kind(t, wctx, e);
  if (e->metrics)
    sl_metrics_worker_busy(e->metrics, (unsigned)worker, sl_mono_ns() - t0);
  return rc;
}

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

void eng_free_stages(struct engine *e, struct task_ctx *tcs, size_t n) {
  for (size_t i = 0; i < n; i++)
    task_reset(e, &tcs[i]);
}

/* Runs every task of plan and waits for all of them. A task that fails
 * with a retriable error runs again (after a growing pause) until
 * task_attempts is spent. Fills *records and *lost. */
int eng_run_tasks(struct engine *e, const struct sl_plan *plan,
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
    eng_free_stages(e, tcs, n);
    free(tcs);
    return rc;
  }
  *out_tcs = tcs;
  *out_n = n;
  return 0;
}

/* The continuous trigger's streams hold every worker for the life of the
 * job, so an epoch's window phase runs its tasks on the coordinator, one
 * after the other, with a worker context of its own. */
static int run_phase_here(struct engine *e, struct sl_task *tasks, size_t n,
                          struct sl_error *err) {
  struct worker_ctx w = {0};
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++)
    if ((rc = run_task_kind(&tasks[i], &w, e))) {
      *err = tasks[i].err;
      rc = err->code ? err->code : SL_ERR_INVAL;
    }
  sl_batch_free(&w.chunk);
  sl_batch_free(&w.out);
  sl_batch_free(&w.dead);
  sl_rejects_free(&w.rejects);
  sl_batch_free(&w.rdead);
  return rc;
}

/* Runs n tasks of one kind on the pool and waits for all (no retries: a
 * failure fails the batch, which the restart re-runs from the state of the
 * previous batch). */
int eng_run_phase(struct engine *e, uint64_t batch, struct task_ctx *tcs,
                  size_t n, uint32_t first_id, struct sl_error *err) {
  struct sl_task *tasks = sl_calloc(n ? n : 1, sizeof(*tasks));
  size_t submitted = 0, done = 0;
  int rc = 0;
  for (size_t i = 0; i < n; i++)
    tasks[i] = (struct sl_task){.batch = batch,
                                .id = first_id + (uint32_t)i,
                                .prefer = (int)(i % sl_pool_workers(e->pool)),
                                .payload = &tcs[i]};
  if (e->cont) {
    rc = run_phase_here(e, tasks, n, err);
    free(tasks);
    return rc;
  }
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
