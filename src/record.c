/* record.c - see record.h. */
#include "record.h"

#include <inttypes.h>
#include <stdio.h>
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

int sl_meta_find(const char *name, size_t len) {
  static const char *const names[] = {
      [SL_META_KEY] = "key",       [SL_META_VALUE] = "value",
      [SL_META_TOPIC] = "topic",   [SL_META_PARTITION] = "partition",
      [SL_META_OFFSET] = "offset", [SL_META_TIMESTAMP] = "timestamp"};
  for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
    if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
      return (int)i;
  return -1;
}

bool sl_meta_text(const struct sl_record *r, enum sl_meta m, char num[24],
                  const char **text, size_t *len) {
  int64_t v;
  switch (m) {
  case SL_META_KEY:
    *text = r->key;
    *len = r->key_len;
    return r->key != NULL;
  case SL_META_VALUE:
    *text = r->value;
    *len = r->value_len;
    return r->value != NULL;
  case SL_META_TOPIC:
    *text = r->topic ? r->topic : "";
    *len = strlen(*text);
    return true;
  case SL_META_PARTITION:
    v = r->partition;
    break;
  case SL_META_OFFSET:
    v = r->offset;
    break;
  default:
    v = r->timestamp;
    break;
  }
  *len = (size_t)snprintf(num, 24, "%" PRId64, v);
  *text = num;
  return true;
}
