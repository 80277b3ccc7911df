/* test_kafka_source.c - the Kafka reader on an embedded cluster: exact
 * ranges read with and without the engine's prefetch hint. A hinted
 * partition is fetched before its range is read (up to
 * prefetch_partitions of them past the first), keeps fetching across two
 * hinted ranges in a row, and is paused with its queue dropped once no
 * hint names it; a hinted range read from elsewhere, or not at all, never
 * changes what a read returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sources/kafka/kafka.h"
#include "src/job.h"
#include "src/offsets.h"
#include "src/plugin.h"
#include "src/record.h"
#include "src/util.h"

struct fixture {
  char dir[256], path[300];
  struct sl_job job;
  struct sl_source src;
  struct sl_run_ctx run;
  void *reader;
  int64_t end[4]; /* high watermark of each partition */
};

static int setup(void **state) {
  struct fixture *f = sl_calloc(1, sizeof(*f));
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(f->dir, sizeof(f->dir), "%s/test_kafka_source.XXXXXX", tmp);
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof(f->path), "%s/job.yaml", f->dir);
  FILE *out = fopen(f->path, "w");
  assert_non_null(out);
  fprintf(out,
          "job: test-source\n"
          "source:\n"
          "  kafka:\n"
          "    brokers: embedded\n"
          "    topics: [t]\n"
          "    prefetch_partitions: 1\n"
          "    read_timeout: 10s\n"
          "    embedded: { partitions: 4, records: 8000 }\n"
          "sink:\n"
          "  file: { path: %s/out }\n"
          "checkpoint: { dir: %s/ckpt }\n",
          f->dir, f->dir);
  fclose(out);
  struct sl_error err = {0};
  if (sl_job_load(f->path, NULL, 0, &f->job, &err))
    fail_msg("%s", err.msg);
  f->run = (struct sl_run_ctx){.job_id = f->job.id, .role = SL_ROLE_SOURCE};
  f->src = (struct sl_source){.plugin = f->job.source_plugin,
                              .conf = f->job.source_conf,
                              .run = &f->run};
  if (f->src.plugin->init(&f->src, &err))
    fail_msg("init: %s", err.msg);
  struct sl_plan wm = {0};
  if (f->src.plugin->watermarks(&f->src, &wm, &err))
    fail_msg("watermarks: %s", err.msg);
  for (int p = 0; p < 4; p++) {
    struct sl_range *r = sl_plan_find(&wm, "t", p);
    assert_non_null(r);
    assert_int_equal(r->start, 0);
    assert_true(r->end >= 1000); /* the ranges below fit */
    f->end[p] = r->end;
  }
  sl_plan_clear(&wm);
  if (f->src.plugin->reader_new(&f->src, 0, &f->reader, &err))
    fail_msg("reader: %s", err.msg);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  f->src.plugin->reader_free(f->reader);
  f->src.plugin->destroy(&f->src);
  sl_job_free(&f->job);
  char cmd[400];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

static struct sl_range range(int32_t partition, int64_t start, int64_t end) {
  return (struct sl_range){
      .topic = "t", .partition = partition, .start = start, .end = end};
}

/* Reads r to its end: every offset exactly once, in order. */
static void read_exactly(struct fixture *f, struct sl_range r) {
  struct sl_batch chunk = {0};
  struct sl_error err = {0};
  int64_t pos = r.start, want = r.start;
  while (pos < r.end) {
    if (f->src.plugin->read(f->reader, &r, &pos, &chunk, &err))
      fail_msg("read [%d] %lld..%lld: %s", r.partition, (long long)r.start,
               (long long)r.end, err.msg);
    for (size_t i = 0; i < chunk.n; i++) {
      assert_int_equal(chunk.recs[i].partition, r.partition);
      if (chunk.recs[i].offset != want)
        fail_msg("[%d]: offset %lld where %lld was due", r.partition,
                 (long long)chunk.recs[i].offset, (long long)want);
      assert_non_null(chunk.recs[i].value);
      want++;
    }
  }
  assert_int_equal(want, r.end);
  assert_int_equal(pos, r.end);
  sl_batch_free(&chunk);
}

static void hint(struct fixture *f, const struct sl_range *r, size_t n) {
  f->src.plugin->prefetch(f->reader, r, n);
}

static int64_t queued(struct fixture *f, int32_t partition) {
  return sl_kafka_reader_queued(f->reader, "t", partition);
}

/* Waits (up to 10 s) for records to be queued for the partition. */
static void wait_queued(struct fixture *f, int32_t partition) {
  int64_t until = sl_mono_ns() + 10 * 1000000000LL;
  while (queued(f, partition) <= 0 && sl_mono_ns() < until)
    usleep(1000);
  if (queued(f, partition) <= 0)
    fail_msg("nothing was fetched ahead for [%d] in 10 s", partition);
}

/* Waits (up to 10 s) until a paused partition holds nothing, repeating
 * the hint (n ranges from r) as a worker would at its next task: a fetch
 * answer already on its way when the partition was paused can land after
 * the pause dropped the queue, and the next hint drops it. A partition
 * that is not paused keeps fetching, and this fails. */
static void wait_dropped(struct fixture *f, int32_t partition,
                         const struct sl_range *r, size_t n) {
  int64_t until = sl_mono_ns() + 10 * 1000000000LL;
  while (queued(f, partition) != 0 && sl_mono_ns() < until) {
    usleep(1000);
    hint(f, r, n);
  }
  if (queued(f, partition) != 0)
    fail_msg("[%d] still holds %lld records after 10 s", partition,
             (long long)queued(f, partition));
}

static void reads_exact_ranges_without_hints(void **state) {
  struct fixture *f = *state;
  read_exactly(f, range(0, 0, 300));
  read_exactly(f, range(0, 300, 700)); /* continues */
  read_exactly(f, range(1, 200, 400));
  read_exactly(f, range(0, 100, 200));                  /* goes back */
  read_exactly(f, range(3, f->end[3] - 50, f->end[3])); /* to the end */
  /* Between ranges a partition is paused and holds nothing. */
  wait_dropped(f, 0, NULL, 0);
  wait_dropped(f, 1, NULL, 0);
  assert_int_equal(queued(f, 2), -1); /* never assigned */
}

static void hinted_partitions_are_fetched_ahead_and_bounded(void **state) {
  struct fixture *f = *state;
  struct sl_range plan[] = {range(0, 0, 100), range(1, 0, 100),
                            range(0, 100, 200), range(2, 50, 150)};
  hint(f, plan, 4);
  /* [1] is fetched before anything is read; [2] is one partition past
   * prefetch_partitions: 1, and is not even assigned. */
  wait_queued(f, 1);
  assert_int_equal(queued(f, 2), -1);
  read_exactly(f, plan[0]);
  /* [0]'s next hinted range starts where this one ended: it keeps
   * fetching instead of being paused. */
  wait_queued(f, 0);
  hint(f, plan + 1, 3);
  read_exactly(f, plan[1]);
  hint(f, plan + 2, 2);
  read_exactly(f, plan[2]);
  /* Only [2] is hinted now: [0] and [1] are paused, their queues
   * dropped. */
  hint(f, plan + 3, 1);
  wait_dropped(f, 0, plan + 3, 1);
  wait_dropped(f, 1, plan + 3, 1);
  wait_queued(f, 2);
  read_exactly(f, plan[3]);
}

static void hinted_ranges_read_elsewhere_change_nothing(void **state) {
  struct fixture *f = *state;
  /* [3] from 0 and [1] from 300 are hinted; another worker takes [3]'s
   * range, this one reads [1]'s and then a range of [3] the hint did not
   * name. */
  struct sl_range plan[] = {range(3, 0, 100), range(1, 300, 400)};
  hint(f, plan, 2);
  wait_queued(f, 3);
  hint(f, plan + 1, 1);
  wait_dropped(f, 3, plan + 1, 1);
  read_exactly(f, plan[1]);
  hint(f, NULL, 0);
  wait_dropped(f, 1, NULL, 0);
  read_exactly(f, range(3, 10, 60));
  /* A partition hinted at one offset and read from another. */
  struct sl_range at0 = range(2, 0, 50);
  hint(f, &at0, 1);
  wait_queued(f, 2);
  read_exactly(f, range(2, 20, 70));
  /* Hinted twice in a row, read with the gap in between skipped. */
  struct sl_range two[] = {range(0, 0, 100), range(0, 100, 200)};
  hint(f, two, 2);
  read_exactly(f, two[0]);
  read_exactly(f, range(0, 150, 250));
}

/* A property whose value validate --print masks is a secret to the
 * Kafka client's errors too; the others are not. */
static void secret_properties(void **state) {
  (void)state;
  const char *secret[] = {
      "sasl.password",         "ssl.key.password",
      "ssl.keystore.password", "sasl.oauthbearer.client.secret",
      "sasl.jaas.config",      "sasl.oauthbearer.config",
      "ssl.key.pem",           "sasl.oauthbearer.token.endpoint.url",
      "Some.Credential"};
  const char *plain[] = {"bootstrap.servers", "sasl.username",
                         "security.protocol", "sasl.mechanism", "debug"};
  for (size_t i = 0; i < SL_ARRAY_LEN(secret); i++)
    if (!sl_kafka_secret_property(secret[i]))
      fail_msg("%s is not taken for a secret", secret[i]);
  for (size_t i = 0; i < SL_ARRAY_LEN(plain); i++)
    if (sl_kafka_secret_property(plain[i]))
      fail_msg("%s is taken for a secret", plain[i]);
}

/* The watermark query keeps its timeout with every broker down: it
 * returns an error instead of waiting for a broker (a query through
 * rd_kafka_query_watermark_offsets on a handle that had seen the brokers
 * up waited on; that hang made a planning try unbounded). A hang here is
 * the test's failure, by ctest's timeout. */
static void watermarks_return_with_brokers_down(void **state) {
  (void)state;
  struct sl_error err = {0};
  struct sl_mock *m = sl_mock_new(2, &err);
  if (!m)
    fail_msg("mock: %s", err.msg);
  assert_int_equal(sl_mock_topic_create(m, "w", 3, &err), 0);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  assert_int_equal(
      sl_kafka_conf_set(conf, "bootstrap.servers", sl_mock_bootstraps(m), &err),
      0);
  assert_int_equal(sl_kafka_conf_set(conf, "group.id", "test-marks", &err), 0);
  char errstr[256];
  rd_kafka_t *rk =
      rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  assert_non_null(rk);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3);
  for (int p = 0; p < 3; p++)
    rd_kafka_topic_partition_list_add(l, "w", p);
  int64_t lo[3] = {-1, -1, -1}, hi[3] = {-1, -1, -1};
  const rd_kafka_topic_partition_t *what;
  /* up: every partition answers (empty: 0..0) */
  assert_int_equal(sl_kafka_query_marks(rk, l, lo, hi, 10000, &what), 0);
  for (int p = 0; p < 3; p++) {
    assert_int_equal(lo[p], 0);
    assert_int_equal(hi[p], 0);
  }
  char reply[128];
  assert_int_equal(sl_mock_control(m, "down -1", reply, sizeof(reply)), 0);
  for (int i = 0; i < 3; i++)
    assert_int_not_equal(sl_kafka_query_marks(rk, l, lo, hi, 200, &what), 0);
  assert_int_equal(sl_mock_control(m, "up -1", reply, sizeof(reply)), 0);
  rd_kafka_resp_err_t e;
  do /* back: the query answers again once the brokers are reconnected */
    e = sl_kafka_query_marks(rk, l, lo, hi, 1000, &what);
  while (e);
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(rk);
  sl_mock_destroy(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(secret_properties),
      cmocka_unit_test(watermarks_return_with_brokers_down),
      cmocka_unit_test_setup_teardown(reads_exact_ranges_without_hints, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          hinted_partitions_are_fetched_ahead_and_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(
          hinted_ranges_read_elsewhere_change_nothing, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
