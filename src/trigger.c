/* trigger.c - the trigger policies: interval, available-now and
 * continuous. */
#include "trigger.h"

#include "batch.h"

/* ------------------------------------------------------------ interval */

static int interval_begin(struct engine *e, struct sl_error *err) {
  (void)e;
  (void)err;
  return 0;
}

static bool interval_finished(struct engine *e) {
  (void)e;
  return false;
}

static void interval_ended(struct engine *e) {
  (void)e;
}

static int64_t interval_limit(const struct engine *e, const struct sl_range *wm,
                              int64_t start) {
  (void)e;
  (void)start;
  return wm->end;
}

/* Wait for min_records_per_batch, but not past max_batch_delay since the
 * previous batch (or since start). */
static bool interval_run_now(const struct engine *e, int64_t records,
                             int64_t backlog, int64_t since_ns) {
  const struct sl_source_common *bc = sl_job_batching(e->job);
  return records > 0 && sl_plan_should_run(backlog, bc->min_records_per_batch,
                                           since_ns, bc->max_batch_delay_ns);
}

/* The next batch is due one interval after this one started; a batch that
 * overran starts the next at once, beside this one's commit. */
static int interval_after(struct engine *e, bool ran, int64_t t0,
                          struct sl_error *err) {
  (void)ran;
  int64_t due = t0 + e->job->trigger.interval_ns;
  if (sl_mono_ns() < due && eng_batch_finish(e, err))
    return err->code;
  eng_wait_until(due);
  return 1;
}

static const struct eng_trigger interval = {.name = "interval",
                                            .begin = interval_begin,
                                            .finished = interval_finished,
                                            .ended = interval_ended,
                                            .limit = interval_limit,
                                            .run_now = interval_run_now,
                                            .after = interval_after};

/* -------------------------------------------------------- available-now */

/* The targets: every partition's watermark when the run starts. */
static int now_begin(struct engine *e, struct sl_error *err) {
  struct sl_plan wm = {0};
  int rc = eng_watermarks_retrying(e, &wm, err);
  if (!rc)
    sl_plan_copy(&e->target, &wm);
  sl_plan_clear(&wm);
  return rc;
}

static bool now_finished(struct engine *e) {
  for (size_t i = 0; i < e->target.n; i++) {
    const struct sl_range *t = &e->target.ranges[i];
    const struct sl_range *p = sl_plan_find(&e->pos, t->topic, t->partition);
    if (!p || p->end < t->end)
      return false;
  }
  return true;
}

static void now_ended(struct engine *e) {
  sl_info("available-now: all %zu partitions processed up to the offsets "
          "seen at start; exiting",
          e->target.n);
}

/* No further than the target; a partition that appeared after the start
 * has none, and is not read. */
static int64_t now_limit(const struct engine *e, const struct sl_range *wm,
                         int64_t start) {
  const struct sl_range *t = sl_plan_find(&e->target, wm->topic, wm->partition);
  return t ? SL_MAX(start, SL_MIN(wm->end, t->end)) : start;
}

static bool now_run_now(const struct engine *e, int64_t records,
                        int64_t backlog, int64_t since_ns) {
  (void)e;
  (void)backlog;
  (void)since_ns;
  return records > 0;
}

/* Nothing left below the targets ends the run; otherwise plan at once. */
static int now_after(struct engine *e, bool ran, int64_t t0,
                     struct sl_error *err) {
  (void)e;
  (void)t0;
  (void)err;
  return ran ? 1 : 0;
}

static const struct eng_trigger available_now = {.name = "available-now",
                                                 .bounded = true,
                                                 .begin = now_begin,
                                                 .finished = now_finished,
                                                 .ended = now_ended,
                                                 .limit = now_limit,
                                                 .run_now = now_run_now,
                                                 .after = now_after};

/* ---------------------------------------------------------- continuous */

/* The streams start where the checkpoint left every partition; in group
 * mode once the group has assigned partitions (engine.c's loop). */
static int cont_begin(struct engine *e, struct sl_error *err) {
  return e->group ? 0 : eng_streams_start(e, err);
}

/* An epoch is cut every interval; an epoch whose commit overran is
 * followed at once by the next cut. */
static int cont_after(struct engine *e, bool ran, int64_t t0,
                      struct sl_error *err) {
  (void)ran;
  int64_t due = t0 + e->job->trigger.continuous_ns;
  if (sl_mono_ns() < due && eng_batch_finish(e, err))
    return err->code;
  eng_wait_until(due);
  return 1;
}

static const struct eng_trigger continuous = {.name = "continuous",
                                              .begin = cont_begin,
                                              .finished = interval_finished,
                                              .ended = interval_ended,
                                              .limit = interval_limit,
                                              .run_now = interval_run_now,
                                              .after = cont_after,
                                              .cut = eng_streams_cut};

const struct eng_trigger *eng_trigger_for(const struct sl_trigger_conf *tc) {
  if (tc->continuous_ns)
    return &continuous;
  return tc->available_now ? &available_now : &interval;
}
