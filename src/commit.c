/*
 * commit.c - a batch's sink commit and what makes it current.
 *
 * Owns the commit of the dead-letter and main sinks (with their retries)
 * and what follows commits/N (eng_after_commit): the pruning of old
 * checkpoint entries and state, the progress report and the metrics.
 * When each runs is batch.c's to decide.
 */
#include "batch.h"
#include "trigger.h"

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
  int rc = eng_with_retry(e, sink, what, commit_call, &a, err);
  free(stages);
  return rc;
}

/* Dead letters first: both commits are idempotent on the batch id, so a
 * crash between them re-runs the batch and the first is a no-op. */
int eng_commit_sink(struct engine *e, const struct sl_plan *plan,
                    struct task_ctx *tcs, size_t n, struct sl_error *err) {
  if (e->dl.plugin && commit_one(e, &e->dl, plan, tcs, n, true, err))
    return sl_error_prefix(err, "dead letters");
  return commit_one(e, &e->sink, plan, tcs, n, false, err);
}

/* After commits/N: prunes the checkpoint and the window state past
 * checkpoint.retain, and reports the batch (progress, metrics). */
void eng_after_commit(struct engine *e, const struct eng_batch *fl,
                      int64_t tj) {
  struct sl_error perr = {0}, *err = &perr;
  const struct sl_plan *plan = &fl->plan;
  int64_t t3 = fl->t3, t0 = fl->t0, t2 = fl->t2;
  int64_t plan_ns = fl->plan_ns, records = fl->records, lost = fl->lost;
  struct sl_pipe_stats stats = fl->stats;
  eng_group_committed(e, plan);
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
      .lag = fl->has_latest ? eng_lag_after(plan, &fl->latest) : 0,
      .source_desc = e->src.plugin->describe(&e->src),
      .sink_desc = e->sink.plugin->describe(&e->sink),
      .owned = e->group ? &e->owned : NULL};
  if (e->trig->bounded) {
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
  if (e->cont) /* an epoch: its records are no longer in flight */
    sl_metrics_in_flight(e->metrics, -records);
  if (e->ws)
    sl_metrics_state(e->metrics, sl_wstate_windows(e->ws),
                     sl_wstate_bytes(e->ws));
}
