/* record.c - see record.h. */
#include "record.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void sl_batch_reserve(struct sl_batch *b, size_t n) {
  if (n <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < n)
    cap *= 2;
  b->recs = sl_realloc(b->recs, cap * sizeof(*b->recs));
  b->cap = cap;
}

void sl_batch_free(struct sl_batch *b) {
  free(b->recs);
  memset(b, 0, sizeof(*b));
}

void sl_rejects_add(struct sl_rejects *rj, const struct sl_record *r,
                    const char *reason) {
  if (rj->n == rj->cap) {
    rj->cap = rj->cap ? rj->cap * 2 : 16;
    rj->recs = sl_realloc(rj->recs, rj->cap * sizeof(*rj->recs));
    rj->reasons = sl_realloc(rj->reasons, rj->cap * sizeof(*rj->reasons));
  }
  rj->recs[rj->n] = *r;
  rj->reasons[rj->n++] = sl_strdup(reason);
}

void sl_rejects_clear(struct sl_rejects *rj) {
  for (size_t i = 0; i < rj->n; i++)
    free(rj->reasons[i]);
  rj->n = 0;
}

void sl_rejects_free(struct sl_rejects *rj) {
  sl_rejects_clear(rj);
  free(rj->recs);
  free(rj->reasons);
  memset(rj, 0, sizeof(*rj));
}
