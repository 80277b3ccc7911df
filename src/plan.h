/*
 * plan.h - planning one micro-batch: capping the backlog and cutting the
 * ranges into tasks. Pure functions of their inputs, so that the same
 * offsets/N always gives the same tasks (invariant 2 of DESIGN.md).
 */
#ifndef SL_PLAN_H
#define SL_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "offsets.h"

/* Caps the plan to at most max_records records in total. On entry every
 * range is [position, latest); on return each end is lowered so that the
 * sum of (end - start) is min(max_records, backlog), shared in proportion
 * to each partition's backlog (largest remainders first; ties go to the
 * earlier range). Returns the records planned. */
int64_t sl_plan_cap(struct sl_plan *p, int64_t max_records);

/* One task: a slice of one range of the plan. */
struct sl_slice {
  size_t range; /* index into plan->ranges */
  int64_t start, end;
};

/* Cuts every non-empty range of p into slices of at most task_max records,
 * in range order then offset order. Returns the slice count; *out is
 * malloc'd (NULL when there are none). */
size_t sl_plan_slice(const struct sl_plan *p, int64_t task_max,
                     struct sl_slice **out);

/* Whether a trigger that found `backlog` new records runs a batch:
 * never without records; with fewer than min_records only once
 * max_delay_ns has passed since the previous batch ended (the first batch
 * after start, since_last_ns < 0, waits for min_records too, counted from
 * start). */
int sl_plan_should_run(int64_t backlog, int64_t min_records,
                       int64_t since_last_ns, int64_t max_delay_ns);

#endif
