/*
 * kafka.h - what the Kafka source, the embedded cluster and the producer
 * share: client configuration and the embedded (mock) cluster.
 */
#ifndef SL_KAFKA_H
#define SL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../config/config.h"
#include "../../src/error.h"

/* True for librdkafka properties whose values must never be printed. */
bool sl_kafka_secret_property(const char *name);

/* Sets one property; on failure fills err without ever echoing a secret
 * value. */
int sl_kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
                      const char *value, struct sl_error *err);

/* Routes librdkafka's log lines into sluice's log (notices become debug
 * lines so a healthy run stays quiet). */
void sl_kafka_conf_logging(rd_kafka_conf_t *conf);

/* The low and high watermarks of every partition in l (lo[i], hi[i] for
 * l->elems[i]) within timeout_ms, also with the brokers down: two
 * ListOffsets rounds through rd_kafka_offsets_for_times (timestamps
 * BEGINNING and END; END follows the handle's isolation.level, as a
 * watermark query does). On error *what is the partition that failed, or
 * NULL when the whole round did. */
rd_kafka_resp_err_t
sl_kafka_query_marks(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *l,
                     int64_t *lo, int64_t *hi, int timeout_ms,
                     const rd_kafka_topic_partition_t **what);

/* ---- the embedded cluster: librdkafka's mock brokers on loopback */

struct sl_mock;
struct sl_mock *sl_mock_new(int brokers, struct sl_error *err);
const char *sl_mock_bootstraps(const struct sl_mock *m);
int sl_mock_topic_create(struct sl_mock *m, const char *topic, int partitions,
                         struct sl_error *err);
/* The librdkafka mock cluster, for error injection in tests. */
void *sl_mock_cluster(struct sl_mock *m);
/* Applies one control command (`sluice mock-kafka --control`) and writes a
 * one-line answer without newline into reply ("ok ..." or "error: ...");
 * returns 0 or -1 for a bad command. Commands:
 *   down N                  broker N (1-based id, -1 all) closes its
 *                           connections and refuses new ones (leaders do
 *                           not move)
 *   up N                    broker N (-1 all) accepts connections again
 *   error API CODE [COUNT]  the next COUNT (default 1) requests of API
 *                           (Produce, EndTxn, ... or its number) fail
 *                           with CODE (PRODUCER_FENCED, ... or a number) */
int sl_mock_control(struct sl_mock *m, const char *line, char *reply, size_t n);
void sl_mock_destroy(struct sl_mock *m);

/* ---- the source's reader (a kafka reader_new's result) */

/* Messages queued for (topic, partition) in the reader, what it has
 * fetched and not yet read; -1 when the partition is not assigned to it.
 * For tests of the prefetch. */
int64_t sl_kafka_reader_queued(void *reader, const char *topic,
                               int32_t partition);

/* ---- producing generated clickstream records (clickgen.h) */

struct sl_produce_opts {
  const char *brokers;
  const char *topic;
  uint64_t count;
  uint64_t first; /* id of the first record */
  double rate;    /* records per second; 0 = as fast as possible */
  uint64_t seed;
  const struct sl_strmap *properties; /* extra librdkafka properties */
};

/* Produces opts->count records and waits until every one is acknowledged;
 * fails when any delivery failed (with the first delivery error). */
int sl_produce_clicks(const struct sl_produce_opts *opts, struct sl_error *err);

#endif
