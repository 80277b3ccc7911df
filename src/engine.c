/*
 * engine.c - the coordinator: stopping, retries, planning, one batch, the
 * trigger loop and sl_engine_run.
 *
 * Only the coordinator thread runs this file. The worker side and task
 * dispatch are in tasks.c, the window phase in window_phase.c, the sink
 * commit and commits/N in commit.c, recovery in recover.c; engine_int.h
 * is what they share.
 */
#include "batch.h"
#include "trigger.h"

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
void eng_wait_until(int64_t until_ns) {
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
    if (start > wm->end &&
        sl_plan_find(&e->from_sink, wm->topic, wm->partition))
      return sl_error_setf(
          err, SL_ERR_DATALOSS, SL_ERR_FATAL,
          "%s[%d]: the sink's record (%s) is at offset %lld but the "
          "partition ends at %lld: was the topic deleted and created "
          "again? Clear the sink's record and remove the checkpoint "
          "directory %s to start over",
          wm->topic, wm->partition,
          e->sink.record[0] ? e->sink.record : e->sink.plugin->name,
          (long long)start, (long long)wm->end, e->job->checkpoint.dir);
    if (start > wm->end)
      return sl_error_setf(
          err, SL_ERR_DATALOSS, SL_ERR_FATAL,
          "%s[%d]: the checkpoint is at offset %lld but the partition ends "
          "at %lld: was the topic deleted and created again? Remove the "
          "checkpoint directory %s to start over",
          wm->topic, wm->partition, (long long)start, (long long)wm->end,
          e->job->checkpoint.dir);
    sl_plan_add(plan, wm->topic, wm->partition, start,
                e->trig->limit(e, wm, start));
  }
  sl_plan_sort(plan);
  plan->batch = e->next_batch;
  plan->task_max_records = bc->task_max_records;
  plan->created_ms = sl_wall_ms();
  sl_plan_cap(plan, bc->max_records_per_batch);
  return 0;
}

int64_t eng_lag_after(const struct sl_plan *plan,
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
    eng_wait_until(now + pause);
    if (atomic_load(&stop_requested))
      return sl_error_setf(err, SL_ERR_STOPPED, SL_ERR_FATAL,
                           "stopped while retrying: %s", what);
    pause = SL_MIN(pause * 2, rt->max_backoff_ns);
    if (pause <= 0)
      pause = rt->max_backoff_ns;
  }
}

int eng_with_retry(struct engine *e, const struct sl_sink *sink,
                   const char *what, int (*fn)(void *arg, struct sl_error *err),
                   void *arg, struct sl_error *err) {
  return retry_within(e, &((const struct sl_sink_common *)sink->conf)->retry,
                      false, what, fn, arg, err);
}

/* Drives one batch through the machine of batch.h, from where it stands
 * (PLANNED, or LOGGED when recovery rebuilt it) to COMMITTING. When the
 * previous batch is still committing (e->fl, with e->overlap), this
 * batch's reads run beside it (READ_AHEAD): no output of theirs is visible
 * before this batch commits, and offsets/N is written only once the
 * previous batch is current (commits/N-1), so the checkpoint sees the
 * same sequence as without the overlap. With e->overlap the commit of
 * this batch is left running (e->fl); eng_batch_finish completes it. */
static int run_batch(struct engine *e, struct eng_batch *b,
                     struct sl_error *err) {
  bool beside = e->fl != NULL;
  int rc = 0;
  if (!beside && b->state == ENG_BATCH_PLANNED)
    rc = eng_batch_log(b, err);
  if (!rc && b->state != ENG_BATCH_READ_AHEAD) /* an epoch is read */
    rc = eng_batch_read(b, err);
  if (beside) { /* the previous batch's commit first, even after a failure */
    int64_t t = sl_mono_ns();
    struct sl_error ferr = {0};
    int frc = eng_batch_finish(e, &ferr);
    if (frc) {
      *err = ferr;
      eng_batch_free(b);
      return frc;
    }
    b->wait_ns = sl_mono_ns() - t;
  }
  if (!rc && b->state == ENG_BATCH_READ_AHEAD)
    rc = eng_batch_log(b, err);
  if (!rc)
    rc = eng_batch_save_state(b, err);
  if (rc) {
    eng_batch_free(b);
    return rc;
  }
  return eng_batch_commit(b, err);
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
    int frc = eng_batch_finish(e, &ferr);
    if (frc && !(e->group && frc == SL_ERR_FENCED)) {
      *err = ferr;
      err->flags |= SL_ERR_FATAL;
      return ferr.code;
    }
  }
  return rc;
}

/* Plans the next batch, retrying an outage of the source within
 * source.<name>.retry. */
int eng_plan_retrying(struct engine *e, struct sl_plan *plan,
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

int eng_watermarks_retrying(struct engine *e, struct sl_plan *wm,
                            struct sl_error *err) {
  return eng_plan_retrying(e, wm, NULL, err);
}

/* Recovery started some partitions at the sink's positions, above what
 * the checkpoint holds (recover.c): a batch without records, planned from
 * those positions, records them in the checkpoint (and the sink records
 * the batch), so that the log stands where the job does even when no
 * record arrives. */
static int catch_up(struct engine *e, struct sl_error *err) {
  struct sl_plan plan = {0}, latest = {0};
  int64_t t0 = sl_mono_ns();
  int rc = eng_plan_retrying(e, &plan, &latest, err);
  if (!rc) {
    for (size_t i = 0; i < plan.n; i++)
      plan.ranges[i].end = plan.ranges[i].start;
    sl_info("batch %" PRIu64 " records the positions taken from the sink "
            "in the checkpoint (no records)",
            plan.batch);
    rc = run_batch(e, eng_batch_new(e, &plan, &latest, sl_mono_ns() - t0), err);
  }
  sl_plan_clear(&plan);
  sl_plan_clear(&latest);
  return rc;
}

int eng_streams_drain(struct engine *e, struct sl_error *err) {
  if (!e->cont)
    return 0;
  struct eng_batch *b = NULL;
  int rc = eng_streams_cut(e, true, &b, err);
  if (!rc && b)
    rc = run_batch(e, b, err);
  if (!rc)
    rc = eng_batch_finish(e, err);
  eng_streams_halt(e);
  if (rc == SL_ERR_FENCED && e->group) { /* abandoned (group.c) */
    sl_error_clear(err);
    rc = 0;
  }
  return rc;
}

/* The trigger loop: the same for every trigger (trigger.h asks the
 * policy), each batch driven through batch.h's machine. */
static int loop_batches(struct engine *e, struct sl_error *err) {
  const struct eng_trigger *tr = e->trig;
  if (e->rerun) { /* recovery: planned but not committed */
    struct eng_batch *b;
    int rc = eng_batch_from_log(e, e->rerun, &b, err);
    e->rerun = 0;
    if (!rc)
      rc = run_batch(e, b, err);
    if (rc)
      return rc;
  }
  if (e->catch_up) { /* recovery took positions the checkpoint lacks */
    e->catch_up = false;
    int rc = catch_up(e, err);
    if (rc == SL_ERR_STOPPED)
      sl_error_clear(err); /* a clean stop, as below */
    else if (rc)
      return rc;
  }
  if (tr->begin(e, err))
    return err->code;
  while (!sl_engine_stop_requested()) {
    if (tr->finished(e)) {
      if (eng_batch_finish(e, err))
        return err->code;
      tr->ended(e);
      return 0;
    }
    int64_t t0 = sl_mono_ns();
    if (tr->cut) { /* continuous: the epoch the streams read */
      /* group mode: a rebalance drains the streams (group.c); they start
       * again over what the instance owns now */
      int rc = eng_group_poll(e, err);
      if (!rc && e->group && !e->cont && e->owned.n > 0)
        rc = eng_streams_start(e, err);
      if (rc == SL_ERR_STOPPED) /* while the source was out */
        break;
      if (rc)
        return rc;
      struct eng_batch *b;
      rc = tr->cut(e, false, &b, err);
      if (rc == SL_ERR_FENCED && e->group) /* a stream's write */
        eng_group_streams_fenced(e, err->msg);
      else if (!rc)
        rc = b ? run_batch(e, b, err) : eng_batch_finish(e, err);
      if (rc == SL_ERR_FENCED && e->group) { /* abandoned: go on */
        sl_error_clear(err);
        rc = 0;
      }
      if (rc)
        return rc;
      if ((rc = tr->after(e, b != NULL, t0, err)) <= 0)
        return rc;
      continue;
    }
    struct sl_plan plan = {0}, latest = {0};
    int rc = eng_group_poll(e, err);
    if (!rc)
      rc = eng_plan_retrying(e, &plan, &latest, err);
    if (rc) {
      sl_plan_clear(&plan);
      sl_plan_clear(&latest);
      if (rc == SL_ERR_STOPPED) /* while the source was out: a clean stop */
        break;
      return rc;
    }
    int64_t records = sl_plan_records(&plan);
    int64_t backlog = records + eng_lag_after(&plan, &latest);
    int64_t since =
        t0 - (e->last_batch_end_ns ? e->last_batch_end_ns : e->started_ns);
    bool go = tr->run_now(e, records, backlog, since);
    if (go)
      rc = run_batch(e, eng_batch_new(e, &plan, &latest, sl_mono_ns() - t0),
                     err);
    else
      rc = eng_batch_finish(e, err); /* no batch to read beside it */
    sl_plan_clear(&plan);
    sl_plan_clear(&latest);
    if (rc == SL_ERR_FENCED && e->group) { /* abandoned: go on */
      sl_error_clear(err);
      rc = 0;
    }
    if (rc)
      return rc;
    if ((rc = tr->after(e, go, t0, err)) == SL_ERR_FENCED && e->group) {
      sl_error_clear(err);
      continue;
    }
    if (rc <= 0)
      return rc;
  }
  if (tr->cut) { /* the last epoch: what the streams read until now */
    struct eng_batch *b;
    int rc = tr->cut(e, true, &b, err);
    if (!rc && b)
      rc = run_batch(e, b, err);
    if (rc)
      return rc;
  }
  if (eng_batch_finish(e, err))
    return err->code;
  sl_info("stopped on request after batch %" PRIu64, e->next_batch - 1);
  return 0;
}

unsigned eng_sink_flags(const struct sl_sink *sink) {
  return sink->plugin->conf_flags ? sink->plugin->conf_flags(sink->conf)
                                  : sink->plugin->flags;
}

/* Whatever ends the loop, a commit in flight is waited for and, when it
 * succeeded, made current. */
static int loop(struct engine *e, struct sl_error *err) {
  int rc = loop_batches(e, err);
  struct sl_error ferr = {0};
  int frc = eng_batch_finish(e, &ferr);
  if (e->group && rc == SL_ERR_FENCED) { /* the last batch, abandoned */
    sl_error_clear(err);
    rc = 0;
  }
  if (e->group && frc == SL_ERR_FENCED)
    frc = 0;
  if (frc && !rc) {
    *err = ferr;
    rc = frc;
  }
  return rc;
}

int sl_engine_run(struct sl_job *job, const struct sl_run_opts *opts,
                  struct sl_error *err) {
  struct engine e = {0};
  int rc;
  e.job = job;
  e.opts = opts;
  e.trig = eng_trigger_for(&job->trigger);
  e.started_ns = sl_mono_ns();
  e.src = (struct sl_source){.plugin = job->source_plugin,
                             .conf = job->source_conf,
                             .run = &e.src_run};
  e.sink = (struct sl_sink){
      .plugin = job->sink_plugin, .conf = job->sink_conf, .run = &e.sink_run};
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
  /* Group mode: instances of the job share the partitions through the
   * source's consumer group (group.c); each has a checkpoint directory
   * of its own, which the lock keeps so. */
  e.group = job->source_plugin->conf_group &&
            job->source_plugin->conf_group(job->source_conf);
  if (e.group && !opts->dry_run) {
    if ((rc = sl_ckpt_lock(e.ck, err)))
      goto out;
    eng_group_instance(&e);
  }
  /* Each plugin's view of the run (plugin.h): its role, the job id, the
   * checkpoint and the metrics; the source, for a sink that stores its
   * offsets. */
  e.src_run = (struct sl_run_ctx){.job_id = job->id,
                                  .role = SL_ROLE_SOURCE,
                                  .ck = e.ck,
                                  .metrics = e.metrics,
                                  .continuous = job->trigger.continuous_ns > 0};
  e.sink_run = e.src_run;
  e.sink_run.role = SL_ROLE_SINK;
  e.dl_run = e.src_run;
  e.dl_run.role = SL_ROLE_DEAD_LETTERS;
  if ((rc = job->source_plugin->init(&e.src, err))) {
    sl_error_prefix(err, "source");
    goto out;
  }
  e.src_ready = true;
  if (job->source_plugin->info) {
    job->source_plugin->info(&e.src, &e.src_info);
    if (e.group)
      e.src_info.instance = e.instance;
    if (eng_sink_flags(&e.sink) & SL_SINK_STORES_SOURCE_OFFSETS)
      e.sink_run.source = &e.src_info;
  }
  if ((rc = job->sink_plugin->init(&e.sink, err)))
    goto out;
  e.sink_ready = true;
  if (job->dl_plugin) {
    e.dl = (struct sl_sink){
        .plugin = job->dl_plugin, .conf = job->dl_conf, .run = &e.dl_run};
    if (job->source_plugin->info &&
        (eng_sink_flags(&e.dl) & SL_SINK_STORES_SOURCE_OFFSETS))
      e.dl_run.source = &e.src_info;
    if ((rc = job->dl_plugin->init(&e.dl, err))) {
      sl_error_prefix(err, "dead letters");
      goto out;
    }
  }
  if (opts->dry_run) {
    rc = eng_dry_run(&e, err);
    goto out;
  }
  e.has_ops = sl_pipeline_ops(job->pipeline) > 0;
  const struct sl_window_spec *wspec = sl_pipeline_window(job->pipeline);
  e.merge = wspec && wspec->mode == SL_WINDOW_MERGE;
  if (wspec && !e.merge) {
    e.ws = sl_wstate_new(sl_pipeline_window(job->pipeline));
    e.shard_batch = sl_calloc(sl_pipeline_window(job->pipeline)->shards,
                              sizeof(*e.shard_batch));
  }
  if ((rc = e.group ? eng_group_recover(&e, err) : eng_recover(&e, err)))
    goto out;
  e.group_offsets = e.group &&
                    !(eng_sink_flags(&e.sink) & SL_SINK_GROUP_FENCED) &&
                    !e.sink.plugin->claim;
  struct sl_pool_config pc = {.workers = (unsigned)job->workers,
                              .ring_size = 1024,
                              .run = eng_run_task,
                              .init = eng_worker_init,
                              .fini = eng_worker_fini,
                              .arg = &e};
  e.pool = sl_pool_new(&pc, err);
  if (!e.pool) {
    rc = err->code ? err->code : SL_ERR_SOURCE;
    goto out;
  }
  /* A commit may run beside the next batch's reads when every sink the
   * batch commits keeps its stages apart from its commit. */
  e.overlap =
      (eng_sink_flags(&e.sink) & SL_SINK_STAGE_DURING_COMMIT) &&
      (!e.dl.plugin || (eng_sink_flags(&e.dl) & SL_SINK_STAGE_DURING_COMMIT));
  sl_metrics_set_ready(e.metrics, !e.group); /* group: once assigned */
  rc = loop(&e, err);
  sl_progress_end(stderr);
out:
  sl_metrics_set_ready(e.metrics, false);
  eng_streams_halt(&e);
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
  sl_plan_clear(&e.from_sink);
  sl_plan_clear(&e.target);
  sl_plan_clear(&e.affinity);
  sl_plan_clear(&e.owned);
  sl_plan_clear(&e.refresh);
  sl_metrics_free(e.metrics);
  return rc;
}
