/*
 * progress.h - the report written after every committed batch: one text
 * line, or one JSON object with the fields of Spark's
 * StreamingQueryProgress where they apply. Written to stderr (stdout
 * belongs to the console sink's records).
 */
#ifndef SL_PROGRESS_H
#define SL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "offsets.h"

/* How run reports its batches (--progress); the engine takes it in its
 * run options. */
enum sl_progress_format {
  SL_PROGRESS_TEXT,
  SL_PROGRESS_JSON,
  SL_PROGRESS_NONE
};

struct sl_progress {
  const char *job_id;
  const char *run_id;
  uint64_t batch;
  int64_t timestamp_ms; /* batch start, wall clock */
  int64_t records;
  int64_t lost; /* skipped: deleted by retention before read */
  int64_t out, filtered, dead, late; /* what the pipeline did */
  double input_rate;     /* records/s since the previous batch started */
  double processed_rate; /* records / batch duration */
  int64_t plan_ms, wal_ms, process_ms, sink_ms, commit_ms, total_ms;
  const struct sl_plan *plan;   /* ranges of the batch */
  const struct sl_plan *latest; /* watermarks seen when planning */
  int64_t lag;                  /* records left after this batch */
  const char *source_desc, *sink_desc;
  /* available-now: records done so far and left below the targets */
  bool bounded;
  int64_t done, remaining;
  /* group mode: the partitions the group assigned this instance (they
   * are the plan's), NULL outside group mode */
  const struct sl_plan *owned;
};

/* On a terminal: keep one status line (text progress), redrawn after
 * every batch, with a progress bar and an ETA when the backlog is bounded
 * (available-now). Log lines clear it first. */
void sl_progress_set_tty(bool on);
/* Ends the status line (a newline), if one is shown. */
void sl_progress_end(FILE *out);

void sl_progress_write(FILE *out, enum sl_progress_format fmt,
                       const struct sl_progress *p);
/* The JSON object of a progress report, compact, malloc'd. */
char *sl_progress_json(const struct sl_progress *p);

#endif
