/* offsets.c - see offsets.h. */
#include "offsets.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void sl_plan_add(struct sl_plan *p, const char *topic, int32_t partition,
                 int64_t start, int64_t end) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 16;
    p->ranges = sl_realloc(p->ranges, p->cap * sizeof(*p->ranges));
  }
  p->ranges[p->n++] = (struct sl_range){.topic = sl_strdup(topic),
                                        .partition = partition,
                                        .start = start,
                                        .end = end};
}

struct sl_range *sl_plan_find(const struct sl_plan *p, const char *topic,
                              int32_t partition) {
  for (size_t i = 0; i < p->n; i++)
    if (p->ranges[i].partition == partition &&
        strcmp(p->ranges[i].topic, topic) == 0)
      return &p->ranges[i];
  return NULL;
}

static int range_cmp(const void *a, const void *b) {
  const struct sl_range *x = a, *y = b;
  int c = strcmp(x->topic, y->topic);
  if (c)
    return c;
  return (x->partition > y->partition) - (x->partition < y->partition);
}

void sl_plan_sort(struct sl_plan *p) {
  if (p->n > 1)
    qsort(p->ranges, p->n, sizeof(*p->ranges), range_cmp);
}

void sl_plan_clear(struct sl_plan *p) {
  for (size_t i = 0; i < p->n; i++)
    free(p->ranges[i].topic);
  free(p->ranges);
  memset(p, 0, sizeof(*p));
}

void sl_plan_copy(struct sl_plan *dst, const struct sl_plan *src) {
  memset(dst, 0, sizeof(*dst));
  dst->batch = src->batch;
  dst->task_max_records = src->task_max_records;
  dst->created_ms = src->created_ms;
  for (size_t i = 0; i < src->n; i++)
    sl_plan_add(dst, src->ranges[i].topic, src->ranges[i].partition,
                src->ranges[i].start, src->ranges[i].end);
}

int64_t sl_plan_records(const struct sl_plan *p) {
  int64_t n = 0;
  for (size_t i = 0; i < p->n; i++)
    n += p->ranges[i].end - p->ranges[i].start;
  return n;
}
