/*
 * echo.c - the latency benchmark's floor: a bare librdkafka consumer that
 * reads every partition of a topic from its high watermark and writes each
 * record's value to stdout at once (one line per record, flushed after
 * every poll), nothing else.
 *
 *   bench_echo BROKERS TOPIC
 *
 * It waits the way sluice's continuous streams do (sources/kafka/source.c):
 * every partition forwards into one queue, a blocking consume of the first
 * message, then what else is queued; fetch.wait.max.ms 100 (the broker
 * answers as soon as a record arrives), or BENCH_FETCH_WAIT_MS. Runs until
 * SIGTERM; prints its CPU seconds to stderr at the end.
 */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static volatile sig_atomic_t stop;

static void on_term(int sig) {
  (void)sig;
  stop = 1;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "bench_echo: %s: %s\n", what, why);
  exit(1);
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v) {
  char err[256];
  if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
    die(k, err);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: bench_echo BROKERS TOPIC\n");
    return 64;
  }
  signal(SIGTERM, on_term);
  const char *topic = argv[2];
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  set(c, "bootstrap.servers", argv[1]);
  set(c, "group.id", "bench-echo");
  set(c, "enable.auto.commit", "false");
  set(c, "enable.partition.eof", "false");
  /* BENCH_FETCH_WAIT_MS: as the job's source properties set it */
  const char *fw = getenv("BENCH_FETCH_WAIT_MS");
  set(c, "fetch.wait.max.ms", fw && *fw ? fw : "100");
  set(c, "fetch.min.bytes", "1");
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
    rd_kafka_topic_partition_list_add(parts, topic, p)->offset = hi;
  }
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_poll_set_consumer(rk);
  if ((e = rd_kafka_assign(rk, parts)))
    die("assign", rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_destroy(parts);
  fprintf(stderr, "bench_echo: ready\n");
  rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
  rd_kafka_message_t *msgs[4096];
  while (!stop) {
    rd_kafka_message_t *m = rd_kafka_consume_queue(q, 100);
    if (!m)
      continue;
    msgs[0] = m;
    size_t k = 1, avail = rd_kafka_queue_length(q);
    if (avail > 0) {
      ssize_t more = rd_kafka_consume_batch_queue(q, 0, msgs + 1,
                                                  avail < 4095 ? avail : 4095);
      if (more > 0)
        k += (size_t)more;
    }
    for (size_t i = 0; i < k; i++) {
      if (!msgs[i]->err) {
        fwrite(msgs[i]->payload, 1, msgs[i]->len, stdout);
        putchar('\n');
      }
      rd_kafka_message_destroy(msgs[i]);
    }
    fflush(stdout);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  fprintf(stderr, "bench_echo: cpu_s %.3f\n",
          (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return 0;
}
