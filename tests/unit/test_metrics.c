/*
 * test_metrics.c - the HTTP endpoint (src/metrics.h): served on a port of
 * its own choosing (127.0.0.1:0), updated as the coordinator updates it
 * (sl_metrics_batch per committed batch, retries, window state, worker
 * busy time, readiness), and read over a plain socket with a small HTTP
 * client: /metrics, /health, /ready, /progress, an unknown path, a method
 * that is not GET or HEAD.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "src/log.h"
#include "src/metrics.h"
#include "src/progress.h"

struct reply {
  int status;
  char *head; /* status line and headers */
  char *body;
};

static void reply_free(struct reply *r) {
  free(r->head);
  free(r->body);
  memset(r, 0, sizeof(*r));
}

/* Sends `method path` (HTTP/1.0: the server closes after its answer) and
 * reads the whole answer. */
static struct reply http(unsigned port, const char *method, const char *path) {
  struct reply r = {0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  /* A bound on a broken server, not a timing assumption. */
  struct timeval tv = {.tv_sec = 60};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  char req[512];
  int n = snprintf(req, sizeof(req),
                   "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
  assert_int_equal(write(fd, req, (size_t)n), n);
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  for (;;) {
    if (len + 1024 > cap)
      buf = realloc(buf, cap *= 2);
    ssize_t k = read(fd, buf + len, cap - len - 1);
    assert_true(k >= 0);
    if (k == 0)
      break;
    len += (size_t)k;
  }
  close(fd);
  buf[len] = '\0';
  assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &r.status), 1);
  char *sep = strstr(buf, "\r\n\r\n");
  assert_non_null(sep);
  r.head = strndup(buf, (size_t)(sep - buf) + 2);
  r.body = strdup(sep + 4);
  free(buf);
  return r;
}

/* The exposition text holds `line` as a whole line. */
static void assert_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; (p = strstr(p, line)); p++)
    if ((p == text || p[-1] == '\n') && p[n] == '\n')
      return;
  fail_msg("no line '%s' in:\n%s", line, text);
}

struct fx {
  struct sl_metrics *m;
  unsigned port;
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  struct sl_metrics_info mi = {.job_id = "metrics-test",
                               .source = "kafka",
                               .sink = "file",
                               .workers = 2,
                               .history = 2};
  f->m = sl_metrics_new(&mi);
  struct sl_metrics_conf conf = {
      .listen = "127.0.0.1:0", .history = 2, .idle_timeout = 10 * 1000000000LL};
  struct sl_error err = {0};
  if (sl_metrics_serve(f->m, &conf, &err)) {
    print_error("serve: %s\n", err.msg);
    return -1;
  }
  f->port = sl_metrics_port(f->m);
  if (f->port == 0)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  sl_metrics_free(f->m);
  free(f);
  return 0;
}

/* A committed batch as finish_batch reports it: batch b read `records`
 * over partitions 0 and 1 of "clicks", ending at e0 and e1, with the
 * watermarks l0 and l1 seen when it was planned. */
static void batch(struct sl_metrics *m, uint64_t b, int64_t records, int64_t e0,
                  int64_t e1, int64_t l0, int64_t l1, int64_t total_ms) {
  struct sl_plan plan = {.batch = b}, latest = {0};
  sl_plan_add(&plan, "clicks", 0, e0 - records / 2, e0);
  sl_plan_add(&plan, "clicks", 1, e1 - (records - records / 2), e1);
  sl_plan_add(&latest, "clicks", 0, 0, l0);
  sl_plan_add(&latest, "clicks", 1, 0, l1);
  struct sl_progress p = {.job_id = "metrics-test",
                          .run_id = "run-1",
                          .batch = b,
                          .timestamp_ms = 1700000000000,
                          .records = records,
                          .lost = 1,
                          .out = records - 3,
                          .filtered = 2,
                          .dead = 1,
                          .late = 0,
                          .plan_ms = 1,
                          .wal_ms = 2,
                          .process_ms = 3,
                          .sink_ms = 4,
                          .commit_ms = 5,
                          .total_ms = total_ms,
                          .plan = &plan,
                          .latest = &latest,
                          .lag = (l0 - e0) + (l1 - e1),
                          .source_desc = "KafkaV2[clicks]",
                          .sink_desc = "File[out]"};
  sl_metrics_batch(m, &p);
  sl_plan_clear(&plan);
  sl_plan_clear(&latest);
}

static void test_health(void **state) {
  struct fx *f = *state;
  struct reply r = http(f->port, "GET", "/health");
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok\n");
  reply_free(&r);
  r = http(f->port, "HEAD", "/health");
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "");
  reply_free(&r);
}

static void test_ready_flips(void **state) {
  struct fx *f = *state;
  struct reply r = http(f->port, "GET", "/ready");
  assert_int_equal(r.status, 503);
  assert_string_equal(r.body, "not ready\n");
  reply_free(&r);
  r = http(f->port, "GET", "/metrics");
  assert_line(r.body, "sluice_ready 0");
  reply_free(&r);
  sl_metrics_set_ready(f->m, true);
  r = http(f->port, "GET", "/ready");
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ready\n");
  reply_free(&r);
  r = http(f->port, "GET", "/metrics");
  assert_line(r.body, "sluice_ready 1");
  reply_free(&r);
  sl_metrics_set_ready(f->m, false); /* the run ended */
  r = http(f->port, "GET", "/ready");
  assert_int_equal(r.status, 503);
  reply_free(&r);
}

static void test_unknown_and_methods(void **state) {
  struct fx *f = *state;
  struct reply r = http(f->port, "GET", "/nothing");
  assert_int_equal(r.status, 404);
  assert_non_null(strstr(r.body, "/metrics"));
  reply_free(&r);
  r = http(f->port, "GET", "/metrics/extra");
  assert_int_equal(r.status, 404);
  reply_free(&r);
  r = http(f->port, "POST", "/metrics");
  assert_int_equal(r.status, 405);
  assert_non_null(strstr(r.head, "\r\nAllow: GET, HEAD\r\n"));
  reply_free(&r);
  r = http(f->port, "DELETE", "/ready");
  assert_int_equal(r.status, 405);
  reply_free(&r);
}

/* Before any batch: zeros, and no window state lines. */
static void test_metrics_empty(void **state) {
  struct fx *f = *state;
  struct reply r = http(f->port, "GET", "/metrics");
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.head, "text/plain; version=0.0.4"));
  assert_non_null(strstr(r.body, "sluice_build_info{version=\""));
  assert_non_null(strstr(r.body, "\",job=\"metrics-test\"} 1\n"));
  assert_line(r.body, "sluice_batches_total 0");
  assert_line(r.body, "sluice_last_committed_batch 0");
  assert_line(r.body, "sluice_source_records_total{source=\"kafka\"} 0");
  assert_line(r.body, "sluice_sink_records_total{sink=\"file\"} 0");
  assert_line(r.body, "sluice_batch_duration_seconds_count 0");
  assert_line(r.body, "sluice_task_retries_total 0");
  assert_line(r.body, "# TYPE sluice_batches_total counter");
  assert_null(strstr(r.body, "sluice_state_windows"));
  assert_null(strstr(r.body, "sluice_partition_committed_offset{"));
  reply_free(&r);
  r = http(f->port, "GET", "/progress");
  assert_int_equal(r.status, 200);
  cJSON *a = cJSON_Parse(r.body);
  assert_true(cJSON_IsArray(a));
  assert_int_equal(cJSON_GetArraySize(a), 0);
  cJSON_Delete(a);
  reply_free(&r);
}

/* Counters after batches, retries, state and busy time, as the engine
 * updates them. */
static void test_metrics_counters(void **state) {
  struct fx *f = *state;
  batch(f->m, 1, 10, 5, 5, 20, 30, 30);     /* 0.03 s */
  batch(f->m, 2, 20, 15, 15, 20, 40, 2000); /* 2 s */
  sl_metrics_retry(f->m, SL_RETRY_SINK);
  sl_metrics_retry(f->m, SL_RETRY_SINK);
  sl_metrics_retry(f->m, SL_RETRY_SOURCE);
  sl_metrics_retry(f->m, SL_RETRY_TASK);
  sl_metrics_retry(f->m, SL_RETRY_TASK);
  sl_metrics_retry(f->m, SL_RETRY_TASK);
  sl_metrics_state(f->m, 5, 1234);
  sl_metrics_worker_busy(f->m, 0, 1500000000);
  sl_metrics_worker_busy(f->m, 1, 250000000);
  sl_metrics_worker_busy(f->m, 1, 250000000);
  sl_metrics_worker_busy(f->m, 7, 1); /* no such worker: ignored */
  struct reply r = http(f->port, "GET", "/metrics");
  assert_int_equal(r.status, 200);
  const char *t = r.body;
  assert_line(t, "sluice_batches_total 2");
  assert_line(t, "sluice_last_committed_batch 2");
  assert_line(t, "sluice_source_records_total{source=\"kafka\"} 30");
  assert_line(t, "sluice_source_records_lost_total{source=\"kafka\"} 2");
  assert_line(t, "sluice_sink_records_total{sink=\"file\"} 24");
  assert_line(t, "sluice_operator_records_dropped_total{operator=\"filter\"} "
                 "4");
  assert_line(t, "sluice_operator_records_dropped_total{operator=\"window\","
                 "reason=\"late\"} 0");
  assert_line(t, "sluice_dead_letters_total 2");
  assert_line(t, "sluice_batch_duration_seconds_bucket{le=\"0.025\"} 0");
  assert_line(t, "sluice_batch_duration_seconds_bucket{le=\"0.05\"} 1");
  assert_line(t, "sluice_batch_duration_seconds_bucket{le=\"1\"} 1");
  assert_line(t, "sluice_batch_duration_seconds_bucket{le=\"2.5\"} 2");
  assert_line(t, "sluice_batch_duration_seconds_bucket{le=\"+Inf\"} 2");
  assert_line(t, "sluice_batch_duration_seconds_sum 2.030000");
  assert_line(t, "sluice_batch_duration_seconds_count 2");
  assert_line(t, "sluice_batch_phase_seconds_total{phase=\"plan\"} 0.002000");
  assert_line(t, "sluice_batch_phase_seconds_total{phase=\"checkpoint_"
                 "offsets\"} 0.004000");
  assert_line(t, "sluice_batch_phase_seconds_total{phase=\"process\"} "
                 "0.006000");
  assert_line(t, "sluice_batch_phase_seconds_total{phase=\"sink_commit\"} "
                 "0.008000");
  assert_line(t, "sluice_batch_phase_seconds_total{phase=\"checkpoint_"
                 "commit\"} 0.010000");
  assert_line(t, "sluice_sink_retries_total{sink=\"file\"} 2");
  assert_line(t, "sluice_source_retries_total{source=\"kafka\"} 1");
  assert_line(t, "sluice_task_retries_total 3");
  assert_line(t, "sluice_partition_committed_offset{topic=\"clicks\","
                 "partition=\"0\"} 15");
  assert_line(t, "sluice_partition_committed_offset{topic=\"clicks\","
                 "partition=\"1\"} 15");
  assert_line(t, "sluice_partition_latest_offset{topic=\"clicks\","
                 "partition=\"0\"} 20");
  assert_line(t, "sluice_partition_latest_offset{topic=\"clicks\","
                 "partition=\"1\"} 40");
  assert_line(t, "sluice_partition_lag_records{topic=\"clicks\","
                 "partition=\"0\"} 5");
  assert_line(t, "sluice_partition_lag_records{topic=\"clicks\","
                 "partition=\"1\"} 25");
  assert_line(t, "sluice_state_windows 5");
  assert_line(t, "sluice_state_bytes 1234");
  assert_line(t, "sluice_worker_busy_seconds_total{worker=\"0\"} 1.500000");
  assert_line(t, "sluice_worker_busy_seconds_total{worker=\"1\"} 0.500000");
  assert_null(strstr(t, "worker=\"7\""));
  /* The same text as the renderer's, without the server. */
  char *direct = sl_metrics_render(f->m);
  assert_line(direct, "sluice_batches_total 2");
  free(direct);
  reply_free(&r);
}

/* /progress: the last `history` (2) batches, oldest first, as JSON. */
static void test_progress(void **state) {
  struct fx *f = *state;
  batch(f->m, 1, 10, 5, 5, 20, 30, 30);
  struct reply r = http(f->port, "GET", "/progress");
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.head, "application/json"));
  cJSON *a = cJSON_Parse(r.body);
  assert_int_equal(cJSON_GetArraySize(a), 1);
  cJSON_Delete(a);
  reply_free(&r);
  batch(f->m, 2, 20, 15, 15, 20, 40, 40);
  batch(f->m, 3, 4, 17, 17, 20, 40, 50);
  r = http(f->port, "GET", "/progress");
  a = cJSON_Parse(r.body);
  assert_true(cJSON_IsArray(a));
  assert_int_equal(cJSON_GetArraySize(a), 2);
  for (int i = 0; i < 2; i++) {
    const cJSON *o = cJSON_GetArrayItem(a, i);
    assert_int_equal(cJSON_GetObjectItem(o, "batchId")->valuedouble, i + 2);
    assert_string_equal(cJSON_GetObjectItem(o, "id")->valuestring,
                        "metrics-test");
    assert_int_equal(cJSON_GetObjectItem(o, "numInputRows")->valuedouble,
                     i ? 4 : 20);
    const cJSON *sink = cJSON_GetObjectItem(o, "sink");
    assert_int_equal(cJSON_GetObjectItem(sink, "numOutputRows")->valuedouble,
                     i ? 1 : 17);
  }
  cJSON_Delete(a);
  reply_free(&r);
  r = http(f->port, "GET", "/metrics");
  assert_line(r.body, "sluice_batches_total 3");
  assert_line(r.body, "sluice_source_records_total{source=\"kafka\"} 34");
  reply_free(&r);
}

/* Metrics off: every call takes NULL and does nothing. */
/* Group mode: the assignment's gauges, and the partition series of a
 * partition given up are dropped; /ready is the engine's to flip. */
static void test_group(void **state) {
  struct fx *f = *state;
  batch(f->m, 1, 10, 5, 5, 20, 30, 30);
  struct sl_plan owned = {0};
  sl_plan_add(&owned, "clicks", 1, 0, 0);
  sl_metrics_group(f->m, &owned, 3, 0.25);
  sl_plan_clear(&owned);
  struct reply r = http(f->port, "GET", "/metrics");
  assert_int_equal(r.status, 200);
  const char *t = r.body;
  assert_line(t, "sluice_group_assigned_partitions 1");
  assert_line(t, "sluice_group_rebalances_total 3");
  assert_line(t, "sluice_group_rebalance_seconds_total 0.250000");
  assert_line(t, "sluice_partition_committed_offset{topic=\"clicks\","
                 "partition=\"1\"} 5");
  assert_null(strstr(t, "partition=\"0\""));
  reply_free(&r);
}

static void test_null_metrics(void **state) {
  (void)state;
  sl_metrics_set_ready(NULL, true);
  sl_metrics_retry(NULL, SL_RETRY_TASK);
  sl_metrics_state(NULL, 1, 1);
  sl_metrics_worker_busy(NULL, 0, 1);
  sl_metrics_batch(NULL, NULL);
  assert_int_equal(sl_metrics_port(NULL), 0);
  sl_metrics_free(NULL);
}

int main(void) {
  sl_log_set_level(SL_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_health, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ready_flips, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_and_methods, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_metrics_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metrics_counters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_progress, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group, setup, teardown),
      cmocka_unit_test(test_null_metrics),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
