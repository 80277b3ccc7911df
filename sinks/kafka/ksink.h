/*
 * ksink.h - the pure logic of the Kafka sink, kept apart from librdkafka's
 * I/O so that unit tests can reach it (tests/unit/test_kafka_sink.c):
 * the committed-offsets metadata, attempt ids, the record of the last
 * committed batch read back from the group, the default transactional.id
 * and group, and key / value / topic templates.
 *
 * Nothing here talks to a broker. Thread: any; no shared state.
 */
#ifndef SL_KSINK_H
#define SL_KSINK_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../src/buf.h"
#include "../../src/error.h"
#include "../../src/offsets.h"
#include "../../src/record.h"

/* ------------------------------------------------------------ attempts */

/* An attempt id names one transaction of one batch: "<run>.<k>", where run
 * is unique per process (wall-clock ms and pid, in hex) and k counts the
 * transactions the process began. Only [0-9a-f.-]: no JSON escaping. */
#define SL_KSINK_ATTEMPT_MAX 48

/* Writes the run id of a process into buf ("<ms hex>-<pid hex>"). */
void sl_ksink_run_id(char *buf, size_t n, int64_t wall_ms, unsigned pid);
/* Writes "<run>.<k>" into buf. */
void sl_ksink_attempt_id(char *buf, size_t n, const char *run, uint64_t k);
/* Whether s is a well-formed attempt id (1..SL_KSINK_ATTEMPT_MAX-1 chars
 * of [0-9a-z.-]). */
bool sl_ksink_attempt_valid(const char *s, size_t len);

/* ----------------------------------------------------------- metadata */

/* The metadata string of every offset the transaction of batch N commits:
 *   {"batch":N,"attempt":"<attempt>"}
 * Returns its length, or -1 when it does not fit in n. */
int sl_ksink_meta_format(char *buf, size_t n, uint64_t batch,
                         const char *attempt);
/* Parses what sl_ksink_meta_format wrote (len bytes, not NUL-terminated).
 * batch must be an integer in [1, 2^53); attempt a valid attempt id.
 * Returns 0, or -1 for anything else. attempt gets
 * SL_KSINK_ATTEMPT_MAX bytes. */
int sl_ksink_meta_parse(const char *md, size_t len, uint64_t *batch,
                        char *attempt);

/* ------------------------------------------------------------- record */

/* The sink's record of its last committed batch, as read back from the
 * group's committed offsets. */
struct sl_ksink_committed {
  uint64_t batch;                     /* 0: nothing committed yet */
  char attempt[SL_KSINK_ATTEMPT_MAX]; /* the attempt that committed it */
  struct sl_plan end; /* (topic, partition, end) of that batch */
  /* Every partition with an offset committed by sluice, whatever its
   * batch: the sink's positions (the next offset to read). */
  struct sl_plan pos;
};

/* Picks the record out of the committed offsets of the group (the result
 * of rd_kafka_committed on every partition of the source topics):
 * partitions without a committed offset are skipped; the highest batch in
 * the metadata wins and the partitions that carry it give the end offsets;
 * every partition with an offset gives a position (out->pos).
 * Fails (SL_ERR_CORRUPT) on an offset whose metadata is not sluice's, or
 * when two partitions carry the same batch with different attempts; fails
 * retriable (SL_ERR_SINK) on a partition-level error. group names the
 * group in messages. out->end and out->pos must be empty. */
int sl_ksink_pick_committed(const rd_kafka_topic_partition_list_t *l,
                            const char *group, struct sl_ksink_committed *out,
                            struct sl_error *err);

/* Group mode: the group's offsets are every instance's, each numbering
 * its own batches, so only the positions count: out->pos gets every
 * partition with an offset that sluice committed, out->batch is 0 (no
 * check across partitions). The same errors as above otherwise. */
int sl_ksink_pick_positions(const rd_kafka_topic_partition_list_t *l,
                            const char *group, struct sl_ksink_committed *out,
                            struct sl_error *err);

/* ---------------------------------------------------------------- ids */

/* The transactional.id and consumer group of a job's sink when the job
 * file sets none: "sluice-<job>", and "sluice-<job>-dead-letters" for the
 * dead-letter sink (its own transactions and record, so that the two
 * producers do not fence each other). conf wins when not NULL. */
void sl_ksink_default_id(char *buf, size_t n, const char *conf,
                         const char *job_id, bool dead_letters);

/* ---------------------------------------------------------- templates */

/* A template: text with placeholders, for the key, the value or the topic
 * of each output record, compiled by the shared template compiler
 * (src/template.h) with its default options:
 *   {field}    a field of the record's JSON value; a.b reaches into
 *              objects. Strings are inserted without quotes, numbers as
 *              JSON numbers, true/false, objects and arrays as compact
 *              JSON; a missing field or null inserts nothing.
 *   {@key} {@topic} {@partition} {@offset} {@timestamp}
 *              the record's key and its source coordinates
 *   {{ and }}  literal braces
 * Everything else is copied as is. */
struct sl_ktpl;
struct cJSON;

/* Compiles src; fails (SL_ERR_CONFIG) with a message naming the column on
 * an unclosed or empty placeholder, a lone '}', or an unknown @name. */
int sl_ktpl_compile(const char *src, struct sl_ktpl **out,
                    struct sl_error *err);
/* Whether rendering needs the record's value parsed as JSON. */
bool sl_ktpl_needs_row(const struct sl_ktpl *t);
/* Appends the rendering for record r to out. row is r's value parsed as
 * JSON (NULL when it is not JSON or not needed). Returns the number of
 * bytes appended. */
size_t sl_ktpl_render(const struct sl_ktpl *t, const struct sl_record *r,
                      const struct cJSON *row, struct sl_buf *out);
void sl_ktpl_free(struct sl_ktpl *t);

#endif
