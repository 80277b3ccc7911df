/*
 * record.h - records and the chunk of records passed along a task.
 *
 * A task reads its range in chunks: the source fills an sl_batch, the
 * pipeline and the sink's stage consume it, then the source releases it.
 * Record bytes belong to the source and stay valid until the next read or
 * release on the same reader: nothing on the hot path copies them.
 */
#ifndef SL_RECORD_H
#define SL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_record {
  const char *key; /* NULL when the record has no key */
  size_t key_len;
  const char *value; /* NULL for a tombstone */
  size_t value_len;
  const char *topic;
  int32_t partition;
  int64_t offset;
  int64_t timestamp; /* ms since the epoch, -1 when unknown */
  /* The row that value is the JSON text of, when the pipeline made one and
   * keeps it alive until the sink's stage_write returns (window output
   * rows); NULL otherwise. A sink that reads fields uses it instead of
   * parsing value again. */
  const struct cJSON *row;
};

struct sl_batch {
  struct sl_record *recs;
  size_t n, cap;
};

/* Records a sink could not write (a template field is missing), each with
 * the reason. A sink's stage_write adds them and leaves them out of the
 * stage; the engine sends them to the dead letters. The records are
 * shallow copies: their bytes belong to the batch given to stage_write. */
struct sl_rejects {
  struct sl_record *recs;
  char **reasons;
  size_t n, cap;
};

void sl_rejects_add(struct sl_rejects *rj, const struct sl_record *r,
                    const char *reason);
/* Forgets the records (keeps the memory for the next use). */
void sl_rejects_clear(struct sl_rejects *rj);
void sl_rejects_free(struct sl_rejects *rj);

/* A record's metadata, as the sinks' templates name it: {@key},
 * {@value}, {@topic}, {@partition}, {@offset}, {@timestamp} (the same
 * names as in expressions). */
enum sl_meta {
  SL_META_KEY,
  SL_META_VALUE,
  SL_META_TOPIC,
  SL_META_PARTITION,
  SL_META_OFFSET,
  SL_META_TIMESTAMP
};
#define SL_META_NAMES "@key, @value, @topic, @partition, @offset, @timestamp"
/* The field named by name[0, len) (without its '@'), or -1. */
int sl_meta_find(const char *name, size_t len);
/* The field's text for r: *text points into r, or into num for a number.
 * Returns false when r has none (no key; no value, a tombstone). */
bool sl_meta_text(const struct sl_record *r, enum sl_meta m, char num[24],
                  const char **text, size_t *len);

/* Makes room for at least n records (keeps the contents). */
void sl_batch_reserve(struct sl_batch *b, size_t n);
void sl_batch_free(struct sl_batch *b);

#endif
