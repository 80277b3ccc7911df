/*
 * echo.c - the latency benchmark's floor: a bare librdkafka consumer that
 * reads every partition of a topic from its high watermark and writes each
 * record's value to stdout at once (one line per record, flushed after
 * every poll), nothing else; or, with --redis, the floor of the Redis
 * sink's latency: per poll, for every record, SET lat:<id> <value> and
 * PUBLISH lat <value> (<id> the record's "id" field), pipelined: all the
 * poll's commands are sent, then all their replies read.
 *
 *   bench_echo BROKERS TOPIC [--redis HOST:PORT]
 *
 * It waits the way sluice's continuous streams do (sources/kafka/source.c):
 * every partition forwards into one queue, a blocking consume of the first
 * message, then what else is queued; fetch.wait.max.ms 100 (the broker
 * answers as soon as a record arrives), or BENCH_FETCH_WAIT_MS. Runs until
 * SIGTERM; prints its CPU seconds to stderr at the end.
 */
#ifdef BENCH_WITH_REDIS
#include <hiredis/hiredis.h>
#endif
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

#ifdef BENCH_WITH_REDIS
/* The record's "id" as digits (0 when it has none). */
static size_t record_id(const char *v, size_t len, const char **id) {
  static const char key[] = "\"id\":";
  for (size_t i = 0; i + sizeof(key) - 1 <= len; i++) {
    if (memcmp(v + i, key, sizeof(key) - 1) != 0)
      continue;
    size_t a = i + sizeof(key) - 1, b = a;
    while (b < len && v[b] >= '0' && v[b] <= '9')
      b++;
    *id = v + a;
    return b - a;
  }
  *id = "0";
  return 1;
}

static redisContext *redis_connect(const char *addr) {
  char host[256];
  const char *colon = strrchr(addr, ':');
  if (!colon || (size_t)(colon - addr) >= sizeof(host))
    die("--redis", "HOST:PORT expected");
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = '\0';
  redisContext *r = redisConnect(host, atoi(colon + 1));
  if (!r || r->err)
    die("redis connect", r ? r->errstr : "out of memory");
  return r;
}

/* One poll's records: two commands each, sent together, then every reply. */
static void redis_write(redisContext *r, rd_kafka_message_t **msgs, size_t k) {
  size_t sent = 0;
  for (size_t i = 0; i < k; i++) {
    if (msgs[i]->err)
      continue;
    const char *v = msgs[i]->payload, *id;
    size_t idlen = record_id(v, msgs[i]->len, &id);
    redisAppendCommand(r, "SET lat:%b %b", id, idlen, v, msgs[i]->len);
    redisAppendCommand(r, "PUBLISH lat %b", v, msgs[i]->len);
    sent += 2;
  }
  for (size_t i = 0; i < sent; i++) {
    void *reply;
    if (redisGetReply(r, &reply) != REDIS_OK)
      die("redis", r->errstr);
    if (((redisReply *)reply)->type == REDIS_REPLY_ERROR)
      die("redis reply", ((redisReply *)reply)->str);
    freeReplyObject(reply);
  }
}
#else
typedef void redisContext; /* built without hiredis: no --redis */
static redisContext *redis_connect(const char *addr) {
  die(addr, "--redis: built without hiredis (SLUICE_WITH_REDIS=OFF)");
  return NULL;
}
static void redis_write(redisContext *r, rd_kafka_message_t **msgs, size_t k) {
  (void)r, (void)msgs, (void)k;
}
static void redisFree(redisContext *r) {
  (void)r;
}
#endif

int main(int argc, char **argv) {
  if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--redis") == 0)) {
    fprintf(stderr, "usage: bench_echo BROKERS TOPIC [--redis HOST:PORT]\n");
    return 64;
  }
  redisContext *redis = argc == 5 ? redis_connect(argv[4]) : NULL;
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
    if (redis)
      redis_write(redis, msgs, k);
    for (size_t i = 0; i < k; i++) {
      if (!msgs[i]->err && !redis) {
        fwrite(msgs[i]->payload, 1, msgs[i]->len, stdout);
        putchar('\n');
      }
      rd_kafka_message_destroy(msgs[i]);
    }
    if (!redis)
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
  if (redis)
    redisFree(redis);
  return 0;
}
