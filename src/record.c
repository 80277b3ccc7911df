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
