/*
 * offsets.h - topic-partition positions and the plan of one micro-batch.
 *
 * A plan (what offsets/N of the checkpoint holds) is the list of ranges
 * [start, end) that batch N reads, one per partition the job owns, including
 * partitions with an empty range (start == end) so that the plan of batch N
 * alone tells where batch N+1 starts.
 */
#ifndef SL_OFFSETS_H
#define SL_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

struct sl_range {
  char *topic; /* owned by the containing plan / offsets */
  int32_t partition;
  int64_t start; /* first offset to read */
  int64_t end;   /* one past the last offset to read */
};

struct sl_plan {
  uint64_t batch;           /* batch id, 1-based */
  int64_t task_max_records; /* how the ranges are cut into tasks */
  int64_t created_ms;       /* wall clock when planned */
  struct sl_range *ranges;
  size_t n, cap;
};

/* Positions per topic-partition (start is ignored, end is the position). */
typedef struct sl_plan sl_offsets_t;

/* Appends a range (topic is copied). */
void sl_plan_add(struct sl_plan *p, const char *topic, int32_t partition,
                 int64_t start, int64_t end);
/* The range of (topic, partition), or NULL. */
struct sl_range *sl_plan_find(const struct sl_plan *p, const char *topic,
                              int32_t partition);
/* Sorts ranges by topic then partition (plans are stored sorted). */
void sl_plan_sort(struct sl_plan *p);
/* Frees the ranges and zeroes the plan. */
void sl_plan_clear(struct sl_plan *p);
/* Deep copy. */
void sl_plan_copy(struct sl_plan *dst, const struct sl_plan *src);
/* Sum of (end - start) over all ranges. */
int64_t sl_plan_records(const struct sl_plan *p);

#endif
