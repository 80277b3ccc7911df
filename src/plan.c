/* plan.c - see plan.h. */
#include "plan.h"

#include <stdlib.h>

#include "util.h"

int64_t sl_plan_cap(struct sl_plan *p, int64_t max_records) {
  int64_t total = 0;
  for (size_t i = 0; i < p->n; i++)
    total += p->ranges[i].end - p->ranges[i].start;
  if (total <= max_records)
    return total;
  /* Proportional shares by floor, then hand out what rounding left to the
   * ranges with the largest remainders. __int128 keeps max * backlog exact
   * for any int64 offsets. */
  int64_t given = 0;
  int64_t *rem = sl_calloc(p->n, sizeof(*rem));
  for (size_t i = 0; i < p->n; i++) {
    struct sl_range *r = &p->ranges[i];
    int64_t backlog = r->end - r->start;
    __int128 prod = (__int128)max_records * backlog;
    int64_t share = (int64_t)(prod / total);
    rem[i] = (int64_t)(prod % total);
    r->end = r->start + share;
    given += share;
  }
  while (given < max_records) {
    size_t best = p->n;
    for (size_t i = 0; i < p->n; i++)
      if (rem[i] > 0 && (best == p->n || rem[i] > rem[best]))
        best = i;
    if (best == p->n)
      break;
    p->ranges[best].end++;
    rem[best] = 0;
    given++;
  }
  free(rem);
  return given;
}

size_t sl_plan_slice(const struct sl_plan *p, int64_t task_max,
                     struct sl_slice **out) {
  size_t n = 0, cap = 0;
  struct sl_slice *v = NULL;
  if (task_max < 1)
    task_max = 1;
  for (size_t i = 0; i < p->n; i++) {
    const struct sl_range *r = &p->ranges[i];
    for (int64_t s = r->start; s < r->end; s += task_max) {
      if (n == cap) {
        cap = cap ? cap * 2 : 16;
        v = sl_realloc(v, cap * sizeof(*v));
      }
      v[n++] = (struct sl_slice){
          .range = i, .start = s, .end = SL_MIN(r->end, s + task_max)};
    }
  }
  *out = v;
  return n;
}

int sl_plan_should_run(int64_t backlog, int64_t min_records,
                       int64_t since_last_ns, int64_t max_delay_ns) {
  if (backlog <= 0)
    return 0;
  if (backlog >= min_records)
    return 1;
  return since_last_ns >= max_delay_ns;
}
