/*
 * recover.c - where a run starts: the checkpoint and the sink's record.
 *
 * Owns recovery (DESIGN.md section 3, invariant 4: the sink is the
 * authority): fresh start, re-running a planned batch, completing a batch
 * the sink already holds, rolling the checkpoint forward to the sink,
 * refusing a sink that lost data (or --recover-from-sink), and --dry-run,
 * which reports the same decision without writing anything.
 */
#include "batch.h"

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
  eng_positions_from(e, sink_end);
  e->next_batch = batch + 1;
  sl_warn("--recover-from-sink: the sink holds batch %" PRIu64
          "; continuing from its offsets%s as batch %" PRIu64,
          sink_batch, sink_end->n ? "" : " (none: the starting offsets)",
          batch);
  return 0;
}

/* Decides where to start from the checkpoint and the sink's own record
 * (DESIGN.md section 3, invariant 4: the sink is the authority). */
int eng_recover(struct engine *e, struct sl_error *err) {
  struct sl_ckpt_state st;
  uint64_t sink_batch = 0;
  struct sl_plan sink_end = {0}, p = {0};
  bool sink_knows = e->sink.plugin->last_committed != NULL;
  int rc = 0;
  if (sl_ckpt_scan(e->ck, &st, err))
    return err->code;
  struct last_args la = {&e->sink, &sink_batch, &sink_end};
  if (sink_knows) {
    rc = eng_with_retry(e, &e->sink, "reading the sink's last commit",
                        last_call, &la, err);
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
  eng_positions_from(e, &p);
  sl_plan_clear(&p);
  /* The window state is that of the batch the checkpoint (after the
   * decision below) counts as committed. */
  uint64_t state_batch = st.last_commit;
  if (d.action == SL_RECOVER_COMPLETE || d.action == SL_RECOVER_ROLL_FORWARD)
    state_batch = d.batch;
  if (e->ws && d.action != SL_RECOVER_SINK_BEHIND &&
      d.action != SL_RECOVER_FROM_SINK &&
      (rc = eng_load_state(e, state_batch, err)))
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
    {
      struct eng_batch *b;
      if ((rc = eng_batch_from_log(e, d.batch, &b, err)))
        goto out;
      eng_batch_sink_holds(b);
      if ((rc = eng_batch_finish(e, err)))
        goto out;
    }
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
    eng_positions_from(e, &sink_end);
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
int eng_dry_run(struct engine *e, struct sl_error *err) {
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
  if (sink_knows &&
      eng_with_retry(e, &e->sink, "reading the sink's last commit", last_call,
                     &la, err))
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
