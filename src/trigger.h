/*
 * trigger.h - a trigger is a policy that the one trigger loop (engine.c
 * loop_batches) asks three questions: is the run over, how far may a
 * partition's next range reach, and should this plan run now; and, after
 * each round, what to do until the next one (wait, or stop).
 *
 * The loop plans, runs the batch through the lifecycle of batch.h and
 * asks again; it has no branch per trigger. A trigger owns only its
 * policy and the state that policy needs (available-now's targets live in
 * e->target). The continuous trigger is one more policy plus one kind of
 * long-running task (stream.c): instead of planning from the source's
 * watermarks, the loop asks it to cut the epoch the tasks read (cut), and
 * the epoch enters the same lifecycle.
 */
#ifndef SL_TRIGGER_H
#define SL_TRIGGER_H

#include "engine_int.h"

struct eng_trigger {
  const char *name;
  /* The run ends once the targets are reached: progress reports count
   * what is left. */
  bool bounded;
  /* Once, after recovery and before the first plan (0 or an error). */
  int (*begin)(struct engine *e, struct sl_error *err);
  /* Before each plan: true when the run is over (the loop then finishes
   * the batch in flight, calls ended and returns). */
  bool (*finished)(struct engine *e);
  void (*ended)(struct engine *e);
  /* The end a partition's next range may have, given its watermark wm and
   * its start. */
  int64_t (*limit)(const struct engine *e, const struct sl_range *wm,
                   int64_t start);
  /* After planning: run this plan now (records in it, backlog behind it,
   * time since the previous batch ended or since the start)? */
  bool (*run_now)(const struct engine *e, int64_t records, int64_t backlog,
                  int64_t since_ns);
  /* After a round that started at t0 (ran: a batch went in flight):
   * 1 to plan again, 0 when the run is over, <0 on an error. May wait. */
  int (*after)(struct engine *e, bool ran, int64_t t0, struct sl_error *err);
  /* Optional (continuous): the next batch is cut, not planned. *out gets
   * the epoch read since the last cut, or NULL when nothing arrived; last:
   * the run stops after it. */
  int (*cut)(struct engine *e, bool last, struct eng_batch **out,
             struct sl_error *err);
};

/* The policy of a job's `trigger:` section. */
const struct eng_trigger *eng_trigger_for(const struct sl_trigger_conf *tc);

#endif
