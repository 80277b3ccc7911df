/*
 * engine.h - runs a job: the coordinator's trigger loop.
 *
 * One micro-batch (DESIGN.md section 2): plan capped ranges, write
 * offsets/N (the WAL), run the tasks on the worker pool (each task reads
 * its exact range and stages its output in the sink), commit the sink
 * atomically with the end offsets, write commits/N, report progress.
 */
#ifndef SL_ENGINE_H
#define SL_ENGINE_H

#include <stdbool.h>

#include "error.h"
#include "job.h"
#include "progress.h"

struct sl_run_opts {
  enum sl_progress_format progress;
  /* A sink behind the checkpoint is data loss: stop, unless this is set;
   * then continue from the sink's own offsets (--recover-from-sink). */
  bool recover_from_sink;
  /* Connect to the source and the sink, report what a run would do, and
   * exit without reading or writing anything (--dry-run). */
  bool dry_run;
};

/* Runs until the trigger says it is done (available-now), a stop is
 * requested (sl_engine_request_stop, from the signal thread), or an error.
 * Returns 0 or a negative sl_err with err filled. */
int sl_engine_run(struct sl_job *job, const struct sl_run_opts *opts,
                  struct sl_error *err);

/* Asks a running engine to stop after the batch in progress.
 * @locality any thread (async-signal-safe is not required: called from
 * the signal-handling thread) */
void sl_engine_request_stop(void);
bool sl_engine_stop_requested(void);

#endif
