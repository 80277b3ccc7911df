/* test_job.c - job files through the real schema: plugins, defaults,
 * positioned errors, --set, interpolation, secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "src/job.h"
#include "src/pipeline.h"

static char path[512];

/* Writes text to a fresh job file and loads it. */
static int load(const char *text, char *const *sets, size_t nsets,
                struct sl_job *job, struct sl_error *err) {
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(path, sizeof(path), "%s/test_job_%d.yaml", tmp, (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  memset(err, 0, sizeof(*err));
  return sl_job_load(path, sets, nsets, job, err);
}

/* err->msg must start with "<path>:line:col: " and contain `what`. */
static void assert_error_at(const struct sl_error *err, int line, int col,
                            const char *what) {
  char want[600];
  snprintf(want, sizeof(want), "%s:%d:%d: ", path, line, col);
  if (strncmp(err->msg, want, strlen(want)) != 0)
    fail_msg("expected error at %s, got: %s", want, err->msg);
  if (!strstr(err->msg, what))
    fail_msg("expected '%s' in: %s", what, err->msg);
}

static const char *good = "job: clicks\n"
                          "source:\n"
                          "  kafka:\n"
                          "    brokers: localhost:9092\n"
                          "    topics: [clicks, views]\n"
                          "    max_records_per_batch: 5000\n"
                          "sink:\n"
                          "  file: { path: /tmp/out }\n"
                          "trigger: { interval: 250ms }\n"
                          "workers: 3\n";

static void loads_a_valid_job_with_defaults(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  assert_int_equal(load(good, NULL, 0, &job, &err), 0);
  assert_string_equal(job.id, "clicks");
  assert_string_equal(job.source_plugin->name, "kafka");
  assert_string_equal(job.sink_plugin->name, "file");
  assert_int_equal(sl_job_batching(&job)->max_records_per_batch, 5000);
  assert_int_equal(sl_job_batching(&job)->task_max_records, 50000);
  assert_int_equal(job.trigger.interval_ns, 250000000LL);
  assert_false(job.trigger.available_now);
  assert_int_equal(job.workers, 3);
  assert_string_equal(job.checkpoint.dir, "./checkpoints/clicks");
  assert_int_equal(job.checkpoint.retain, 100);
  sl_job_free(&job);
}

static void unknown_key_gets_did_you_mean(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  const char *t = "job: x\n"
                  "source:\n"
                  "  kafka:\n"
                  "    brokers: b:1\n"
                  "    topics: [t]\n"
                  "    max_record_per_batch: 10\n"
                  "sink: { console: {} }\n";
  assert_int_equal(load(t, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 6, 5, "'max_record_per_batch'");
  assert_non_null(strstr(err.msg, "did you mean 'max_records_per_batch'"));
}

static void unknown_plugin_gets_did_you_mean(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  const char *t = "job: x\n"
                  "source: { kafka: { brokers: b, topics: [t] } }\n"
                  "sink:\n"
                  "  consle: {}\n";
  assert_int_equal(load(t, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 4, 3, "unknown sink 'consle'");
  assert_non_null(strstr(err.msg, "did you mean 'console'"));
}

static void missing_required_key_is_named(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  const char *t = "job: x\n"
                  "source:\n"
                  "  kafka:\n"
                  "    topics: [t]\n"
                  "sink: { console: {} }\n";
  assert_int_equal(load(t, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "brokers"));
  assert_non_null(strstr(err.msg, path));
  const char *t2 = "source: { kafka: { brokers: b, topics: [t] } }\n"
                   "sink: { console: {} }\n";
  assert_int_equal(load(t2, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "'job'"));
}

static void bad_duration_and_type_are_positioned(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  const char *t = "job: x\n"
                  "source: { kafka: { brokers: b, topics: [t] } }\n"
                  "sink: { console: {} }\n"
                  "trigger: { interval: 10 parsecs }\n";
  assert_int_equal(load(t, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 4, 22, "interval");
  const char *t2 = "job: x\n"
                   "source: { kafka: { brokers: b, topics: [t] } }\n"
                   "sink: { console: {} }\n"
                   "workers: many\n";
  assert_int_equal(load(t2, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 4, 10, "workers");
}

static void both_triggers_is_an_error(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  const char *t = "job: x\n"
                  "source: { kafka: { brokers: b, topics: [t] } }\n"
                  "sink: { console: {} }\n"
                  "trigger: { interval: 1s, available_now: true }\n";
  assert_int_equal(load(t, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "either interval or available_now"));
}

static void invalid_job_id_and_starting_offsets(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  const char *t = "job: ../etc\n"
                  "source: { kafka: { brokers: b, topics: [t] } }\n"
                  "sink: { console: {} }\n";
  assert_int_equal(load(t, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 1, 6, "job id");
  const char *t2 = "job: x\n"
                   "source:\n"
                   "  kafka:\n"
                   "    brokers: b\n"
                   "    topics: [t]\n"
                   "    starting_offsets: oldest\n"
                   "sink: { console: {} }\n";
  assert_int_equal(load(t2, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 6, 23, "earliest, latest");
  const char *t3 = "job: x\n"
                   "source:\n"
                   "  kafka:\n"
                   "    brokers: b\n"
                   "    topics: [t]\n"
                   "    starting_offsets: { t: { 0: 5, 1: -2 } }\n"
                   "sink: { console: {} }\n";
  assert_int_equal(load(t3, NULL, 0, &job, &err), 0);
  sl_job_free(&job);
  /* Spark's JSON string form, and a bad one named at its place. */
  const char *t4 = "job: x\n"
                   "source:\n"
                   "  kafka:\n"
                   "    brokers: b\n"
                   "    topics: [t]\n"
                   "    starting_offsets: '{\"t\": {\"0\": 23, \"1\": -1}}'\n"
                   "sink: { console: {} }\n";
  assert_int_equal(load(t4, NULL, 0, &job, &err), 0);
  sl_job_free(&job);
  const char *t5 = "job: x\n"
                   "source:\n"
                   "  kafka:\n"
                   "    brokers: b\n"
                   "    topics: [t]\n"
                   "    starting_offsets: '{\"t\": {\"0\": \"x\"}}'\n"
                   "sink: { console: {} }\n";
  assert_int_equal(load(t5, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 6, 23, "starting_offsets:1:");
}

static void set_overrides_and_creates_keys(void **state) {
  struct sl_job job;
  struct sl_error err;
  char s1[] = "source.kafka.max_records_per_batch=777";
  char s2[] = "checkpoint.dir=/tmp/elsewhere";
  char s3[] = "trigger.available_now=true";
  char s4[] = "trigger.interval=5s";
  char *sets[] = {s1, s2, s3};
  (void)state;
  assert_int_equal(load(good, sets, 3, &job, &err), SL_ERR_CONFIG);
  /* the file has an interval, so available_now conflicts with it */
  assert_non_null(strstr(err.msg, "either interval or available_now"));
  char *sets2[] = {s1, s2, s4};
  assert_int_equal(load(good, sets2, 3, &job, &err), 0);
  assert_int_equal(sl_job_batching(&job)->max_records_per_batch, 777);
  assert_string_equal(job.checkpoint.dir, "/tmp/elsewhere");
  assert_int_equal(job.trigger.interval_ns, 5000000000LL);
  sl_job_free(&job);
}

static void env_interpolation(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  const char *t = "job: x\n"
                  "source:\n"
                  "  kafka:\n"
                  "    brokers: ${SL_TEST_BROKERS:-fallback:9092}\n"
                  "    topics: [t]\n"
                  "sink: { console: {} }\n";
  unsetenv("SL_TEST_BROKERS");
  assert_int_equal(load(t, NULL, 0, &job, &err), 0);
  sl_job_free(&job);
  const char *t2 = "job: x\n"
                   "source:\n"
                   "  kafka:\n"
                   "    brokers: ${SL_TEST_BROKERS}\n"
                   "    topics: [t]\n"
                   "sink: { console: {} }\n";
  assert_int_equal(load(t2, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "SL_TEST_BROKERS"));
  assert_non_null(strstr(err.msg, ":4:"));
}

static void secret_property_value_is_never_printed(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  const char *t = "job: x\n"
                  "source:\n"
                  "  kafka:\n"
                  "    brokers: b\n"
                  "    topics: [t]\n"
                  "    properties:\n"
                  "      sasl.password: hunter2-very-secret\n"
                  "      no.such.property: 1\n"
                  "sink: { console: {} }\n";
  assert_int_equal(load(t, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 8, 7, "no.such.property");
  assert_null(strstr(err.msg, "hunter2"));
}

static void malformed_yaml_is_positioned(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  const char *t = "job: x\n"
                  "source: { kafka: { brokers: b, topics: [t] }\n"
                  "sink: { console: {} }\n";
  assert_int_equal(load(t, NULL, 0, &job, &err), SL_ERR_CONFIG);
  char want[600];
  snprintf(want, sizeof(want), "%s:", path);
  assert_memory_equal(err.msg, want, strlen(want));
}

/* A windowed job with output: merge; window_extra and agg go into the
 * window (lines 8-13), post after it, sink is the whole sink section. */
static int load_merge(const char *window_extra, const char *agg,
                      const char *post, const char *sink, struct sl_job *job,
                      struct sl_error *err) {
  char text[2048];
  snprintf(text, sizeof(text),
           "job: m\n"                                            /* 1 */
           "source:\n"                                           /* 2 */
           "  kafka: { brokers: localhost:9092, topics: [c] }\n" /* 3 */
           "pipeline:\n"                                         /* 4 */
           "  - parse: json\n"                                   /* 5 */
           "  - window:\n"                                       /* 6 */
           "      tumbling: 10s\n"                               /* 7 */
           "      time: ts\n"                                    /* 8 */
           "      group_by: [user]\n"                            /* 9 */
           "      aggregate: %s\n"                               /* 10 */
           "      output: merge\n"                               /* 11 */
           "%s"                                                  /* 12 */
           "%s"                                                  /* 13 */
           "sink:\n%s",
           agg, window_extra, post, sink);
  return load(text, NULL, 0, job, err);
}

static const char *merge_redis =
    "  redis:\n"
    "    url: redis://127.0.0.1:6379/0\n"
    "    command:\n"
    "      - HINCRBYFLOAT w:{window_start}:{user} revenue {revenue}\n"
    "      - HINCRBY w:{window_start}:{user} orders {orders}\n"
    "      - ZADD hi:{window_start} GT {hi} {user}\n"
    "      - ZADD lo:{window_start} LT {lo} {user}\n"
    "      - PUBLISH done \"{window_start} {orders}\"\n";
static const char *merge_aggs = "{ revenue: sum(amount), orders: count(), "
                                "hi: max(amount), lo: min(amount) }";

static void output_merge_is_checked(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  /* a sink that merges, every aggregate where it merges */
  assert_int_equal(load_merge("", merge_aggs, "", merge_redis, &job, &err), 0);
  assert_int_equal(sl_pipeline_window(job.pipeline)->mode, SL_WINDOW_MERGE);
  sl_job_free(&job);
  /* a sink that cannot change what it wrote */
  assert_int_not_equal(
      load_merge("", merge_aggs, "", "  file: { path: /tmp/o }\n", &job, &err),
      0);
  assert_error_at(&err, 11, 15, "the file sink cannot change what it wrote");
  /* no state, so no watermark */
  assert_int_not_equal(load_merge("      watermark: 5s\n", merge_aggs, "",
                                  merge_redis, &job, &err),
                       0);
  assert_error_at(&err, 12, 18, "there is no watermark");
  /* aggregates that do not merge */
  assert_int_not_equal(
      load_merge("", "{ a: avg(amount) }", "", merge_redis, &job, &err), 0);
  assert_error_at(&err, 10, 23, "avg does not merge");
  assert_int_not_equal(load_merge("", "{ d: count_distinct(page) }", "",
                                  merge_redis, &job, &err),
                       0);
  assert_error_at(&err, 10, 23, "count_distinct does not merge");
  /* an operator after the window would see contributions */
  assert_int_not_equal(load_merge("", merge_aggs, "  - select: [user]\n",
                                  merge_redis, &job, &err),
                       0);
  assert_error_at(&err, 12, 5, "select after a window with output: merge");
  /* a total set from one batch's contribution, a max kept without GT */
  const char *hset = "  redis:\n"
                     "    url: redis://127.0.0.1:6379/0\n"
                     "    command: 'HSET w:{user} revenue {revenue}'\n";
  assert_int_not_equal(
      load_merge("", "{ revenue: sum(amount) }", "", hset, &job, &err), 0);
  assert_error_at(&err, 15, 37, "{revenue} is one batch's contribution");
  assert_true(strstr(err.msg, "HINCRBYFLOAT") != NULL);
  const char *zadd = "  redis:\n"
                     "    url: redis://127.0.0.1:6379/0\n"
                     "    command: 'ZADD hi {hi} {user}'\n";
  assert_int_not_equal(
      load_merge("", "{ hi: max(amount) }", "", zadd, &job, &err), 0);
  assert_error_at(&err, 15, 23, "ZADD GT");
  const char *lt = "  redis:\n"
                   "    url: redis://127.0.0.1:6379/0\n"
                   "    command: 'ZADD hi LT {hi} {user}'\n";
  assert_int_not_equal(
      load_merge("", "{ hi: max(amount) }", "", lt, &job, &err), 0);
  assert_error_at(&err, 15, 26, "ZADD GT");
  const char *both = "  redis:\n"
                     "    url: redis://127.0.0.1:6379/0\n"
                     "    command: 'ZADD hi GT LT {hi} {user}'\n";
  assert_int_not_equal(
      load_merge("", "{ hi: max(amount) }", "", both, &job, &err), 0);
  assert_true(strstr(err.msg, "GT and LT exclude each other") != NULL);
}

/* Group mode (source.kafka.group): the keys, and what this slice refuses,
 * each at the setting that cannot go with the group. */
static const char *group_head = "job: g\n"
                                "source:\n"
                                "  kafka:\n"
                                "    brokers: b:1\n"
                                "    topics: [t]\n"
                                "    group: { id: sluice-g }\n";

static int load_group(const char *rest, struct sl_job *job,
                      struct sl_error *err) {
  char text[2048];
  snprintf(text, sizeof(text), "%s%s", group_head, rest);
  return load(text, NULL, 0, job, err);
}

static void group_mode_keys(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  assert_int_equal(load_group("sink: { console: {} }\n", &job, &err), 0);
  assert_string_equal(job.source_plugin->conf_group(job.source_conf),
                      "sluice-g");
  sl_job_free(&job);
  if (sl_sink_find("kafka")) { /* exactly-once fences; at-least-once too */
    assert_int_equal(load_group("sink:\n"
                                "  kafka: { brokers: b:1, topic: o, "
                                "exactly_once: true }\n",
                                &job, &err),
                     0);
    sl_job_free(&job);
    assert_int_equal(
        load_group("sink:\n  kafka: { brokers: b:1, topic: o }\n", &job, &err),
        0);
    sl_job_free(&job);
  }
  /* alone: no group */
  assert_int_equal(load(good, NULL, 0, &job, &err), 0);
  assert_null(job.source_plugin->conf_group(job.source_conf));
  sl_job_free(&job);

  const char *t = "job: g\n"
                  "source:\n"
                  "  kafka:\n"
                  "    brokers: b:1\n"
                  "    topics: [t]\n"
                  "    group: { id: g, assignor: range }\n"
                  "sink: { console: {} }\n";
  assert_int_equal(load(t, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 6, 31, "group.assignor 'range' is not supported");
  const char *t2 = "job: g\n"
                   "source:\n"
                   "  kafka:\n"
                   "    brokers: b:1\n"
                   "    topics: [t]\n"
                   "    group: { assignor: cooperative-sticky }\n"
                   "sink: { console: {} }\n";
  assert_int_equal(load(t2, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 6, 12, "group needs an id");
  const char *t3 = "job: g\n"
                   "source:\n"
                   "  kafka:\n"
                   "    brokers: b:1\n"
                   "    topics: [t]\n"
                   "    group: { id: g, asignor: x }\n"
                   "sink: { console: {} }\n";
  assert_int_equal(load(t3, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 6, 21, "did you mean 'assignor'");
  const char *t4 = "job: g\n"
                   "source:\n"
                   "  kafka:\n"
                   "    brokers: embedded\n"
                   "    topics: [t]\n"
                   "    group: { id: g }\n"
                   "sink: { console: {} }\n";
  assert_int_equal(load(t4, NULL, 0, &job, &err), SL_ERR_CONFIG);
  assert_error_at(&err, 6, 12, "brokers: embedded");
}

static void group_mode_refusals(void **state) {
  struct sl_job job;
  struct sl_error err;
  (void)state;
  /* the file sink: one instance's record */
  assert_int_equal(
      load_group("sink:\n  file: { path: /tmp/out }\n", &job, &err),
      SL_ERR_CONFIG);
  assert_error_at(&err, 8, 9, "sink 'file' cannot be shared");
  assert_non_null(strstr(err.msg, "line 6"));
  /* Redis fences with its claims, and a window with output: merge keeps
   * no state: both run in group mode */
  if (sl_sink_find("redis")) {
    assert_int_equal(load_group("pipeline:\n"
                                "  - parse: json\n"
                                "  - window:\n"
                                "      tumbling: 10s\n"
                                "      time: ts\n"
                                "      group_by: [user]\n"
                                "      aggregate: { n: count() }\n"
                                "      output: merge\n"
                                "sink:\n"
                                "  redis:\n"
                                "    url: redis://127.0.0.1:6379\n"
                                "    command: HINCRBY w:{user} n {n}\n",
                                &job, &err),
                     0);
    sl_job_free(&job);
  }
  /* window state does not move with its partition yet */
  assert_int_equal(load_group("pipeline:\n"
                              "  - parse: json\n"
                              "  - window:\n"
                              "      tumbling: 10s\n"
                              "      time: ts\n"
                              "      group_by: [user]\n"
                              "      aggregate: { n: count() }\n"
                              "sink: { console: {} }\n",
                              &job, &err),
                   SL_ERR_CONFIG);
  assert_error_at(&err, 9, 5, "a windowed pipeline cannot run in group mode");
  assert_non_null(strstr(err.msg, "window state"));
  assert_non_null(strstr(err.msg, "use output: merge"));
  /* the continuous trigger runs in group mode; available-now does not */
  assert_int_equal(load_group("sink: { console: {} }\n"
                              "trigger: { continuous: 100ms }\n",
                              &job, &err),
                   0);
  assert_true(job.trigger.continuous_ns > 0);
  sl_job_free(&job);
  assert_int_equal(load_group("sink: { console: {} }\n"
                              "trigger: { available_now: true }\n",
                              &job, &err),
                   SL_ERR_CONFIG);
  assert_error_at(&err, 8, 27, "available_now cannot run in group mode");
  /* dead letters: into Kafka only (a file sink's record is one
   * instance's) */
  assert_int_equal(load_group("sink: { console: {} }\n"
                              "dead_letter: { file: { path: /tmp/dl } }\n",
                              &job, &err),
                   SL_ERR_CONFIG);
  assert_error_at(&err, 8, 14,
                  "dead_letter.file cannot be shared by the instances");
  assert_non_null(strstr(err.msg, "use dead_letter.kafka"));
  if (sl_sink_find("kafka")) {
    assert_int_equal(load_group("sink: { console: {} }\n"
                                "dead_letter:\n"
                                "  kafka: { brokers: b:1, topic: dl, "
                                "exactly_once: true }\n",
                                &job, &err),
                     0);
    sl_job_free(&job);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(loads_a_valid_job_with_defaults),
      cmocka_unit_test(unknown_key_gets_did_you_mean),
      cmocka_unit_test(unknown_plugin_gets_did_you_mean),
      cmocka_unit_test(missing_required_key_is_named),
      cmocka_unit_test(bad_duration_and_type_are_positioned),
      cmocka_unit_test(both_triggers_is_an_error),
      cmocka_unit_test(invalid_job_id_and_starting_offsets),
      cmocka_unit_test(set_overrides_and_creates_keys),
      cmocka_unit_test(env_interpolation),
      cmocka_unit_test(secret_property_value_is_never_printed),
      cmocka_unit_test(malformed_yaml_is_positioned),
      cmocka_unit_test(output_merge_is_checked),
      cmocka_unit_test(group_mode_keys),
      cmocka_unit_test(group_mode_refusals),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  unlink(path);
  return rc;
}
