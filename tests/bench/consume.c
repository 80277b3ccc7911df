/*
 * consume.c - W0 of the benchmarks: the floor, a bare librdkafka consumer
 * reading every partition of a topic from its low watermark until it has
 * EXPECTED records, and nothing else (no parsing, no output).
 *
 *   bench_consume BROKERS TOPIC EXPECTED
 *
 * Tuned the way sluice's own readers are (sources/kafka/source.c): absolute
 * offsets resolved with a watermark query before assign (a logical offset
 * costs a ~500 ms timed query), fetch.wait.max.ms 10, large local queues,
 * one queue polled in batches. Prints one JSON object: records, bytes,
 * wall seconds from rd_kafka_new to the last record, CPU seconds and peak
 * RSS of the process.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "bench_consume: %s: %s\n", what, why);
  exit(1);
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v) {
  char err[256];
  if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
    die(k, err);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: bench_consume BROKERS TOPIC EXPECTED\n");
    return 64;
  }
  const char *topic = argv[2];
  long long expected = atoll(argv[3]);
  double t0 = now_s();
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  set(c, "bootstrap.servers", argv[1]);
  set(c, "group.id", "bench-w0");
  set(c, "enable.auto.commit", "false");
  set(c, "enable.partition.eof", "false");
  set(c, "fetch.wait.max.ms", "10");
  set(c, "fetch.min.bytes", "1");
  set(c, "fetch.message.max.bytes", "1048576");
  set(c, "queued.min.messages", "20000");
  set(c, "queued.max.messages.kbytes", "65536");
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
  if (!rk)
    die("rd_kafka_new", err);
  const struct rd_kafka_metadata *md;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  if (e || md->topic_cnt != 1 || md->topics[0].err)
    die("metadata", rd_kafka_err2str(e ? e : md->topics[0].err));
  int np = md->topics[0].partition_cnt;
  rd_kafka_topic_partition_list_t *parts =
      rd_kafka_topic_partition_list_new(np);
  for (int p = 0; p < np; p++) {
    int64_t lo, hi;
    e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
    if (e)
      die("watermarks", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_add(parts, topic, p)->offset = lo;
  }
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_poll_set_consumer(rk);
  if ((e = rd_kafka_assign(rk, parts)))
    die("assign", rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_destroy(parts);
  rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
  rd_kafka_message_t *msgs[4096];
  long long n = 0, bytes = 0;
  double last = now_s(), first = 0;
  while (n < expected) {
    /* consume_batch waits for as many messages as asked for: never ask
     * for more than are left, or the last call waits out its timeout. */
    long long want = expected - n < 4096 ? expected - n : 4096;
    ssize_t k = rd_kafka_consume_batch_queue(q, 1000, msgs, (size_t)want);
    if (k < 0)
      die("consume", rd_kafka_err2str(rd_kafka_last_error()));
    if (k == 0 && now_s() - last > 30)
      die("consume", "no record for 30 s");
    for (ssize_t i = 0; i < k; i++) {
      if (!msgs[i]->err) {
        n++;
        bytes += (long long)msgs[i]->len;
      }
      rd_kafka_message_destroy(msgs[i]);
    }
    if (k > 0) {
      last = now_s();
      if (!first)
        first = last;
    }
  }
  double wall = last - t0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  printf("{\"workload\":\"W0\",\"records\":%lld,\"bytes\":%lld,"
         "\"wall_s\":%.4f,\"first_record_s\":%.4f,\"cpu_s\":%.3f,"
         "\"records_per_s\":%.0f,\"peak_rss_bytes\":%ld,"
         "\"librdkafka\":\"%s\"}\n",
         n, bytes, wall, first - t0, cpu, wall > 0 ? (double)n / wall : 0,
         ru.ru_maxrss * 1024L, rd_kafka_version_str());
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return 0;
}
