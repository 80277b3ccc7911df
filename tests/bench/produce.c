/*
 * produce.c - the latency benchmark's fast producer: RATE records/s to TOPIC
 * for SECONDS, the records latency.py's Python producer writes,
 * {"id":N,"t":SEND_US,"user":"uNNNN"}, SEND_US being the wall clock in
 * microseconds when the record is handed to librdkafka (before linger.ms,
 * so the linger is counted in the latency).
 *
 *   bench_produce BROKERS TOPIC RATE SECONDS [LINGER_MS]
 *
 * Paced against a schedule (record n is due at n / RATE s after the start):
 * each round sends every record due by now, serves delivery reports and
 * sleeps until the next millisecond's records are due. It stops at SECONDS
 * whatever it has sent. When it cannot keep up (its own CPU, or librdkafka's
 * queue full because the cluster takes the records more slowly), records go
 * out late, each stamped when it is sent, and fewer than RATE * SECONDS are
 * sent: the result says so. Producer settings: acks 1, no idempotence,
 * linger.ms LINGER_MS (default 1), as the Python producer's. One JSON line
 * on stdout at the end, after the flush:
 *
 *   {"sent":N,"seconds":S,"rate":N/S,"requested":RATE,
 *    "max_behind_ms":B,"queue_full":Q,"failed":F}
 *
 * max_behind_ms is the largest lag behind the schedule seen at the start of
 * a round (about 1 ms when it keeps up); queue_full counts the sends that
 * found librdkafka's queue full and were retried; failed counts delivery
 * errors.
 */
#define _POSIX_C_SOURCE 200809L
#include <librdkafka/rdkafka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long failed;

static void die(const char *what, const char *why) {
  fprintf(stderr, "bench_produce: %s: %s\n", what, why);
  exit(1);
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v) {
  char err[256];
  if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
    die(k, err);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  (void)rk, (void)opaque;
  if (m->err)
    failed++;
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_s(double s) {
  struct timespec ts = {.tv_sec = (time_t)s,
                        .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr,
            "usage: bench_produce BROKERS TOPIC RATE SECONDS [LINGER_MS]\n");
    return 64;
  }
  const char *topic = argv[2];
  double rate = atof(argv[3]), seconds = atof(argv[4]);
  if (rate <= 0 || seconds <= 0)
    die("RATE and SECONDS", "must be positive");
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  set(c, "bootstrap.servers", argv[1]);
  set(c, "linger.ms", argc == 6 ? argv[5] : "1");
  set(c, "acks", "1");
  set(c, "enable.idempotence", "false");
  set(c, "queue.buffering.max.messages", "1000000");
  rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
  if (!rk)
    die("rd_kafka_new", err);
  /* the topic's metadata first, so that the first records wait for no
   * lookup */
  const struct rd_kafka_metadata *md;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  if (e || md->topic_cnt != 1 || md->topics[0].err)
    die("metadata", rd_kafka_err2str(e ? e : md->topics[0].err));
  rd_kafka_metadata_destroy(md);
  long long per_round = (long long)(rate / 1000.0);
  if (per_round < 1)
    per_round = 1;
  long long n = 0, queue_full = 0;
  double max_behind = 0, t0 = mono_s(), end = t0 + seconds, now;
  char buf[128];
  while ((now = mono_s()) < end) {
    long long due = (long long)((now - t0) * rate);
    double behind = (double)(due - n) / rate;
    if (behind > max_behind)
      max_behind = behind;
    while (n < due && mono_s() < end) {
      int len = snprintf(buf, sizeof(buf),
                         "{\"id\":%lld,\"t\":%lld,\"user\":\"u%04lld\"}", n,
                         wall_us(), n % 1000);
      if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, buf,
                           (size_t)len, NULL, 0, NULL) != 0) {
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
          die("produce", rd_kafka_err2str(rd_kafka_last_error()));
        queue_full++;
        rd_kafka_poll(rk, 1);
        continue; /* again, with a new send time */
      }
      n++;
    }
    rd_kafka_poll(rk, 0);
    double delay = t0 + (double)(n + per_round) / rate - mono_s();
    if (delay > 0)
      sleep_s(delay);
  }
  double took = mono_s() - t0;
  rd_kafka_flush(rk, 10000);
  if (rd_kafka_outq_len(rk) > 0)
    failed += rd_kafka_outq_len(rk);
  printf("{\"sent\":%lld,\"seconds\":%.3f,\"rate\":%.0f,\"requested\":%.0f,"
         "\"max_behind_ms\":%.1f,\"queue_full\":%lld,\"failed\":%lld}\n",
         n, took, (double)n / took, rate, max_behind * 1e3, queue_full, failed);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  return 0;
}
