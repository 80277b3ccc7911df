/*
 * recover.c - where a run starts: the checkpoint and the sink's record.
 *
 * Owns recovery (DESIGN.md section 3, invariant 4: the sink is the
 * authority): fresh start, re-running a planned batch, completing a batch
 * the sink already holds, rolling the checkpoint forward to the sink,
 * refusing a sink that lost data (or --recover-from-sink), and --dry-run,
 * which reports the same decision without writing anything.
 *
 * Two records answer. The batch ids (K newest commit, M newest offsets, S
 * the sink's last batch; sl_recovery_decide) decide what the checkpoint
 * does: re-run, complete, roll forward, refuse. The sink's per-partition
 * positions (plugin.h positions; DESIGN.md section 14: the sink's record
 * is the authority for where a partition resumes, the checkpoint is the
 * instance's write-ahead log) then decide where each partition starts:
 * max(the checkpoint's committed end, the sink's position), and the
 * sink's position for a partition the checkpoint does not know (a fresh
 * or deleted checkpoint directory, a new partition); neither: the
 * source's starting offsets (sl_recovery_positions). Why that keeps
 * exactly-once with the batch rules:
 *  - A sink commits batch N's outputs and positions atomically, before
 *    commits/N. So a position is never above what the sink holds, and
 *    starting there skips only records whose outputs are in the sink.
 *  - S = K+1 (the sink committed N = K+1, commits/N is missing): the
 *    batch is completed, not re-run; the sink's positions are then N's
 *    ends (or above, see below), so they agree with the checkpoint.
 *  - A logged batch the sink has not committed (M = K+1, S = K) is
 *    re-run with its ranges unchanged (invariant 2). A position inside
 *    those ranges is possible only where the sink moves positions ahead
 *    of its batches (Redis under the continuous trigger, per group), and
 *    such a sink skips every record below its position at commit
 *    (plugin.h), so the re-run applies nothing twice; after it, each
 *    partition is at max(the batch's end, the position).
 *  - Positions never go back: the sink never lowers one, a sink position
 *    below the checkpoint's is ignored, and eng_positions_from keeps the
 *    higher of the two (only --recover-from-sink, when the user says the
 *    sink lost data, goes back, to the sink's positions).
 *  - Batch ids still follow the sink: a checkpoint behind it is rolled
 *    forward to S, so that the next batch S+1 is not taken for one the
 *    sink holds (its commit would be a no-op).
 *  - Dead letters: they are committed with their batch, before the sink.
 *    Under the continuous trigger a sink that writes at once moves its
 *    positions per group, ahead of the dead letters of the epoch not yet
 *    committed; then a position is taken only up to what the dead-letter
 *    sink's own record holds (its positions, else the ends of its last
 *    batch, else the checkpoint's), so those records are read again and
 *    their dead letters written.
 *  - A windowed job's state is in the checkpoint: it has read every
 *    record below the checkpoint's ends and no other. A sink position
 *    above them (or a sink batch the checkpoint has no state for) means
 *    the state is not there, and starting without it would emit wrong
 *    windows: the job is refused, saying how to start over
 *    (refuse_window).
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

struct pos_args {
  struct sl_sink *sink;
  const struct sl_source_info *src;
  struct sl_plan *out;
};

static int pos_call(void *arg, struct sl_error *err) {
  struct pos_args *a = arg;
  sl_plan_clear(a->out);
  return a->sink->plugin->positions(a->sink, a->src, a->out, err);
}

/* The positions of sink (plugin.h); *has is false when it keeps none (no
 * callback, or none as configured). */
static int sink_positions(struct engine *e, struct sl_sink *sink,
                          struct sl_plan *out, bool *has,
                          struct sl_error *err) {
  *has = false;
  if (!sink->plugin || !sink->plugin->positions || !e->src_info.plugin)
    return 0;
  struct pos_args a = {sink, &e->src_info, out};
  int rc = eng_with_retry(e, sink, "reading the sink's positions", pos_call, &a,
                          err);
  if (rc == SL_ERR_NOTFOUND) {
    sl_error_clear(err);
    sl_plan_clear(out);
    return 0;
  }
  if (rc)
    return rc;
  *has = true;
  return 0;
}

/* Under the continuous trigger a sink that writes at once stores its
 * positions per group, while the dead letters of those records are
 * committed with their epoch: how far the dead letters are committed (the
 * dead-letter sink's positions, else the ends of its last committed
 * batch, else the checkpoint's ends, local). *use is false when the sink's
 * positions cannot run ahead of the dead letters. */
static int dead_letter_bound(struct engine *e, const struct sl_plan *local,
                             struct sl_plan *bound, bool *use,
                             struct sl_error *err) {
  bool has = false;
  *use = e->dl.plugin && e->job->trigger.continuous_ns > 0 &&
         (eng_sink_flags(&e->sink) & SL_SINK_WRITES_AT_ONCE);
  if (!*use)
    return 0;
  if (sink_positions(e, &e->dl, bound, &has, err))
    return err->code;
  if (!has && e->dl.plugin->last_committed) {
    uint64_t batch = 0;
    struct last_args la = {&e->dl, &batch, bound};
    int rc = eng_with_retry(e, &e->dl, "reading the dead letters' last commit",
                            last_call, &la, err);
    if (rc == SL_ERR_NOTFOUND)
      sl_error_clear(err);
    else if (rc)
      return rc;
    else
      has = true;
  }
  if (!has)
    sl_plan_copy(bound, local);
  return 0;
}

/* "t[0] at 5000, t[1] at 4000 and 2 more" (at most 3 named). */
static void name_positions(const struct sl_plan *p, char *out, size_t n) {
  size_t k = 0;
  out[0] = '\0';
  for (size_t i = 0; i < p->n && i < 3 && k < n; i++)
    k += (size_t)snprintf(out + k, n - k, "%s%s[%d] at %lld", i ? ", " : "",
                          p->ranges[i].topic, p->ranges[i].partition,
                          (long long)p->ranges[i].end);
  if (p->n > 3 && k < n)
    snprintf(out + k, n - k, " and %zu more", p->n - 3);
}

/* A windowed job whose state for what the sink holds is not in the
 * checkpoint. Rebuilding it is not possible in general: the records
 * before the sink's positions would have to be read again in the same
 * batches, whose boundaries (and so the watermark and what was late) were
 * in the lost offsets/ log, and the source may no longer hold them. */
static int refuse_window(struct engine *e, uint64_t last_commit,
                         uint64_t sink_batch, const struct sl_plan *ahead,
                         struct sl_error *err) {
  char where[200], had[80];
  name_positions(ahead, where, sizeof(where));
  if (last_commit)
    snprintf(had, sizeof(had), "the checkpoint's newest batch is %" PRIu64,
             last_commit);
  else
    snprintf(had, sizeof(had), "the checkpoint has committed no batch");
  return sl_error_setf(
      err, SL_ERR_DATALOSS, SL_ERR_FATAL,
      "job '%s' keeps window state, which is in the checkpoint directory %s, "
      "and the state for what the sink already holds was not found there "
      "(%s; the sink holds batch %" PRIu64 "%s%s): starting with empty "
      "window state would emit wrong windows. To continue, restore the "
      "checkpoint directory; to start over, give the job a new id, or "
      "clear the sink's record (%s) and the output the job wrote",
      e->job->id, e->job->checkpoint.dir, had, sink_batch,
      ahead->n ? ", positions " : "", where,
      e->sink.record[0] ? e->sink.record : e->sink.plugin->describe(&e->sink));
}

/* Logs the partitions that resumed at the sink's position. */
static void log_from_sink(const struct engine *e, const struct sl_plan *fs) {
  char line[700];
  size_t k = 0;
  for (size_t i = 0; i < fs->n && k < sizeof(line); i++) {
    const struct sl_range *r = &fs->ranges[i];
    char was[40] = "none";
    if (r->start >= 0)
      snprintf(was, sizeof(was), "%lld", (long long)r->start);
    if (i == 8) {
      snprintf(line + k, sizeof(line) - k, ", and %zu more", fs->n - 8);
      break;
    }
    k += (size_t)snprintf(line + k, sizeof(line) - k,
                          "%s%s[%d] at %lld (checkpoint: %s)", i ? ", " : "",
                          r->topic, r->partition, (long long)r->end, was);
  }
  sl_info("%zu partition%s resumed from the sink's positions in %s: %s", fs->n,
          fs->n == 1 ? "" : "s",
          e->sink.record[0] ? e->sink.record : "its record", line);
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
 * (DESIGN.md section 3, invariant 4: the sink is the authority; section
 * 14: per partition, its positions). */
int eng_recover(struct engine *e, struct sl_error *err) {
  struct sl_ckpt_state st;
  uint64_t sink_batch = 0;
  struct sl_plan sink_end = {0}, p = {0}, sink_pos = {0}, local = {0},
                 bound = {0}, merged = {0}, ahead = {0};
  bool sink_knows = e->sink.plugin->last_committed != NULL;
  bool has_pos = false, bounded = false, have_s = false;
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
  if ((rc = sink_positions(e, &e->sink, &sink_pos, &has_pos, err)))
    goto out;
  struct sl_recovery d =
      sl_recovery_decide(st.last_commit, st.last_offsets, sink_knows,
                         sink_batch, e->opts->recover_from_sink);
  if (st.last_commit &&
      (rc = sl_ckpt_read_offsets(e->ck, st.last_commit, &p, err)))
    goto out;
  eng_positions_from(e, &p);
  sl_plan_clear(&p);
  /* What the checkpoint holds as committed once the decision is carried
   * out: the newest commit's ends, or those of the batch completed or
   * rolled forward when the checkpoint has its plan. */
  bool forward =
      d.action != SL_RECOVER_SINK_BEHIND && d.action != SL_RECOVER_FROM_SINK;
  if (d.action == SL_RECOVER_COMPLETE || d.action == SL_RECOVER_ROLL_FORWARD) {
    rc = sl_ckpt_read_offsets(e->ck, d.batch, &local, err);
    if (rc == SL_ERR_NOTFOUND) {
      sl_error_clear(err);
      rc = 0;
    } else if (rc) {
      goto out;
    } else {
      have_s = true;
    }
  }
  if (!have_s)
    sl_plan_copy(&local, &e->pos);
  if (has_pos && forward) {
    if ((rc = dead_letter_bound(e, &local, &bound, &bounded, err)))
      goto out;
    sl_recovery_positions(&local, &sink_pos, bounded ? &bound : NULL, &merged,
                          &ahead);
  }
  /* A windowed job needs the state of what the sink holds. */
  if (e->ws && forward &&
      (ahead.n || (d.action == SL_RECOVER_ROLL_FORWARD && !have_s))) {
    rc = refuse_window(e, st.last_commit, sink_batch,
                       ahead.n ? &ahead : &sink_end, err);
    goto out;
  }
  /* The window state is that of the batch the checkpoint (after the
   * decision below) counts as committed. */
  uint64_t state_batch = st.last_commit;
  if (d.action == SL_RECOVER_COMPLETE || d.action == SL_RECOVER_ROLL_FORWARD)
    state_batch = d.batch;
  if (e->ws && forward && (rc = eng_load_state(e, state_batch, err)))
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
    /* The sink is ahead (the checkpoint was lost or is older): its
     * positions (else the end offsets of its batch) are the truth; record
     * them as batch d.batch, or write the plan a previous roll forward
     * left again. */
    if (have_s) {
      sl_plan_copy(&p, &local);
    } else {
      sl_plan_copy(&p, has_pos ? &merged : &sink_end);
      p.batch = d.batch;
      p.task_max_records = sl_job_batching(e->job)->task_max_records;
      p.created_ms = sl_wall_ms();
    }
    sl_ckpt_set_commit_note(e->ck, e->sink.note);
    if ((rc = sl_ckpt_roll_forward(e->ck, &p, sl_wall_ms(), err)))
      goto out;
    eng_positions_from(e, has_pos ? &merged : &sink_end);
    e->next_batch = d.batch + 1;
    sl_warn("the sink holds batch %" PRIu64 ", ahead of the checkpoint "
            "(batch %" PRIu64 "): rolled the checkpoint forward to the "
            "sink's %s",
            d.batch, st.last_commit, has_pos ? "positions" : "offsets");
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
    rc = recover_from_sink(e, d.batch, sink_batch,
                           has_pos ? &sink_pos : &sink_end, err);
    break;
  }
  if (!rc && has_pos && forward) {
    /* Each partition at max(checkpoint, sink); a re-run batch keeps its
     * ranges and ends at least here (eng_positions_from). */
    eng_positions_from(e, &merged);
    if (ahead.n) {
      log_from_sink(e, &ahead);
      sl_plan_clear(&e->from_sink);
      sl_plan_copy(&e->from_sink, &ahead);
      /* A roll forward wrote them already; else the checkpoint is
       * behind the job until a batch records them. */
      e->catch_up = !(d.action == SL_RECOVER_ROLL_FORWARD && !have_s);
      if (d.action == SL_RECOVER_RERUN)
        sl_info("batch %" PRIu64 " runs again with its logged ranges; the "
                "sink skips the records below its positions",
                d.batch);
    }
  }
out:
  sl_plan_clear(&p);
  sl_plan_clear(&sink_end);
  sl_plan_clear(&sink_pos);
  sl_plan_clear(&local);
  sl_plan_clear(&bound);
  sl_plan_clear(&merged);
  sl_plan_clear(&ahead);
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
  bool has_pos = false;
  struct sl_plan pos = {0}, local = {0}, merged = {0}, ahead = {0};
  int rc = sink_positions(e, &e->sink, &pos, &has_pos, err);
  if (!rc && has_pos && st.last_commit)
    rc = sl_ckpt_read_offsets(e->ck, st.last_commit, &local, err);
  if (!rc && has_pos) {
    sl_recovery_positions(&local, &pos, NULL, &merged, &ahead);
    sl_info("dry run: the sink holds positions of %zu partitions, %zu of "
            "them ahead of the checkpoint or unknown to it",
            pos.n, ahead.n);
  }
  sl_plan_clear(&pos);
  sl_plan_clear(&local);
  sl_plan_clear(&merged);
  sl_plan_clear(&ahead);
  if (rc)
    return rc;
  return d.action == SL_RECOVER_SINK_BEHIND
             ? sl_error_setf(err, SL_ERR_DATALOSS, SL_ERR_FATAL,
                             "dry run: the sink is behind the checkpoint "
                             "(data loss); see --recover-from-sink")
             : 0;
}
