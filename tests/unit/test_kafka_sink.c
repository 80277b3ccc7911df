/* test_kafka_sink.c - the Kafka sink's pure logic: attempt ids, the
 * committed-offsets metadata, the record read back from the group, the
 * default ids, and key / value / topic templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "sinks/kafka/ksink.h"

/* ------------------------------------------------------------ attempts */

static void attempt_ids_are_run_dot_counter(void **state) {
  char run[32], a[SL_KSINK_ATTEMPT_MAX];
  (void)state;
  sl_ksink_run_id(run, sizeof(run), 0x18c3f9a2b1fLL, 0x3a2c);
  assert_string_equal(run, "18c3f9a2b1f-3a2c");
  sl_ksink_attempt_id(a, sizeof(a), run, 7);
  assert_string_equal(a, "18c3f9a2b1f-3a2c.7");
  assert_true(sl_ksink_attempt_valid(a, strlen(a)));
}

static void attempt_validity(void **state) {
  (void)state;
  assert_false(sl_ksink_attempt_valid("", 0));
  assert_false(sl_ksink_attempt_valid("ab\"c", 4));
  assert_false(sl_ksink_attempt_valid("AB", 2));
  assert_false(sl_ksink_attempt_valid("a b", 3));
  char longer[SL_KSINK_ATTEMPT_MAX + 1];
  memset(longer, 'a', sizeof(longer));
  assert_false(sl_ksink_attempt_valid(longer, SL_KSINK_ATTEMPT_MAX));
  assert_true(sl_ksink_attempt_valid(longer, SL_KSINK_ATTEMPT_MAX - 1));
}

/* ----------------------------------------------------------- metadata */

static void metadata_round_trip(void **state) {
  char md[128], attempt[SL_KSINK_ATTEMPT_MAX];
  uint64_t batch = 0;
  (void)state;
  int n = sl_ksink_meta_format(md, sizeof(md), 42, "18c3f9a2b1f-3a2c.7");
  assert_string_equal(md, "{\"batch\":42,\"attempt\":\"18c3f9a2b1f-3a2c.7\"}");
  assert_int_equal(n, (int)strlen(md));
  assert_int_equal(sl_ksink_meta_parse(md, (size_t)n, &batch, attempt), 0);
  assert_int_equal(batch, 42);
  assert_string_equal(attempt, "18c3f9a2b1f-3a2c.7");
  /* not NUL-terminated: only len bytes count */
  char copy[128];
  memcpy(copy, md, (size_t)n);
  memset(copy + n, 'x', sizeof(copy) - (size_t)n);
  assert_int_equal(sl_ksink_meta_parse(copy, (size_t)n, &batch, attempt), 0);
}

static void metadata_too_small_a_buffer(void **state) {
  char md[16];
  (void)state;
  assert_int_equal(sl_ksink_meta_format(md, sizeof(md), 1, "abc.1"), -1);
}

static void metadata_rejects_what_sluice_did_not_write(void **state) {
  static const char *const bad[] = {
      "",
      "not json",
      "[]",
      "{\"batch\":0,\"attempt\":\"a.1\"}",
      "{\"batch\":-3,\"attempt\":\"a.1\"}",
      "{\"batch\":1.5,\"attempt\":\"a.1\"}",
      "{\"batch\":\"1\",\"attempt\":\"a.1\"}",
      "{\"batch\":1}",
      "{\"batch\":1,\"attempt\":7}",
      "{\"batch\":1,\"attempt\":\"\"}",
      "{\"batch\":1,\"attempt\":\"has space\"}",
      "{\"batch\":9007199254740992,\"attempt\":\"a.1\"}",
  };
  uint64_t batch;
  char attempt[SL_KSINK_ATTEMPT_MAX];
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(
        sl_ksink_meta_parse(bad[i], strlen(bad[i]), &batch, attempt), -1);
  assert_int_equal(sl_ksink_meta_parse(NULL, 0, &batch, attempt), -1);
}

/* ------------------------------------------------------------- record */

static void add(rd_kafka_topic_partition_list_t *l, const char *topic,
                int32_t part, int64_t off, const char *md) {
  rd_kafka_topic_partition_t *tp =
      rd_kafka_topic_partition_list_add(l, topic, part);
  tp->offset = off;
  if (md) {
    tp->metadata = strdup(md);
    tp->metadata_size = strlen(md);
  }
}

static void record_takes_the_highest_batch(void **state) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
  struct sl_ksink_committed c = {0};
  struct sl_error err = {0};
  (void)state;
  add(l, "clicks", 0, 100, "{\"batch\":7,\"attempt\":\"r-1.9\"}");
  add(l, "clicks", 1, 50, "{\"batch\":7,\"attempt\":\"r-1.9\"}");
  add(l, "clicks", 2, -1001, NULL);                           /* none */
  add(l, "old", 0, 5, "{\"batch\":3,\"attempt\":\"q-2.1\"}"); /* stale */
  assert_int_equal(sl_ksink_pick_committed(l, "g", &c, &err), 0);
  assert_int_equal(c.batch, 7);
  assert_string_equal(c.attempt, "r-1.9");
  assert_int_equal(c.end.n, 2);
  assert_string_equal(c.end.ranges[0].topic, "clicks");
  assert_int_equal(c.end.ranges[0].partition, 0);
  assert_int_equal(c.end.ranges[0].end, 100);
  assert_int_equal(c.end.ranges[1].end, 50);
  /* The positions: every partition sluice committed, whatever its batch. */
  assert_int_equal(c.pos.n, 3);
  assert_string_equal(c.pos.ranges[2].topic, "old");
  assert_int_equal(c.pos.ranges[2].end, 5);
  assert_int_equal(c.pos.ranges[0].end, 100);
  assert_int_equal(c.pos.ranges[1].end, 50);
  sl_plan_clear(&c.end);
  sl_plan_clear(&c.pos);
  rd_kafka_topic_partition_list_destroy(l);
}

static void record_of_an_unused_group_is_empty(void **state) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
  struct sl_ksink_committed c = {0};
  struct sl_error err = {0};
  (void)state;
  add(l, "clicks", 0, -1001, NULL);
  add(l, "clicks", 1, -1001, NULL);
  assert_int_equal(sl_ksink_pick_committed(l, "g", &c, &err), 0);
  assert_int_equal(c.batch, 0);
  assert_int_equal(c.end.n, 0);
  assert_int_equal(c.pos.n, 0);
  rd_kafka_topic_partition_list_destroy(l);
}

static void record_refuses_foreign_offsets(void **state) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
  struct sl_ksink_committed c = {0};
  struct sl_error err = {0};
  (void)state;
  add(l, "clicks", 0, 100, "{\"batch\":7,\"attempt\":\"r-1.9\"}");
  add(l, "clicks", 1, 10, NULL); /* a plain consumer's commit */
  assert_int_equal(sl_ksink_pick_committed(l, "g", &c, &err), SL_ERR_CORRUPT);
  assert_non_null(strstr(err.msg, "group 'g' holds an offset for clicks[1]"));
  sl_plan_clear(&c.end);
  sl_plan_clear(&c.pos);
  rd_kafka_topic_partition_list_destroy(l);
}

static void record_refuses_two_attempts_of_one_batch(void **state) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
  struct sl_ksink_committed c = {0};
  struct sl_error err = {0};
  (void)state;
  add(l, "clicks", 0, 100, "{\"batch\":7,\"attempt\":\"r-1.9\"}");
  add(l, "clicks", 1, 10, "{\"batch\":7,\"attempt\":\"r-1.8\"}");
  assert_int_equal(sl_ksink_pick_committed(l, "g", &c, &err), SL_ERR_CORRUPT);
  assert_non_null(strstr(err.msg, "two attempts"));
  sl_plan_clear(&c.end);
  sl_plan_clear(&c.pos);
  rd_kafka_topic_partition_list_destroy(l);
}

static void record_partition_error_is_retriable(void **state) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  struct sl_ksink_committed c = {0};
  struct sl_error err = {0};
  (void)state;
  add(l, "clicks", 0, -1001, NULL);
  l->elems[0].err = RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT;
  assert_int_equal(sl_ksink_pick_committed(l, "g", &c, &err), SL_ERR_SINK);
  assert_true(err.flags & SL_ERR_RETRIABLE);
  rd_kafka_topic_partition_list_destroy(l);
}

/* Group mode: every instance numbers its own batches, so the same batch
 * from two attempts is normal there; only the positions are taken, and a
 * foreign offset is still refused. */
static void group_positions_of_many_instances(void **state) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3);
  struct sl_ksink_committed c = {0};
  struct sl_error err = {0};
  (void)state;
  add(l, "clicks", 0, 100, "{\"batch\":7,\"attempt\":\"r-1.9\"}");
  add(l, "clicks", 1, 10, "{\"batch\":7,\"attempt\":\"q-2.8\"}");
  add(l, "clicks", 2, -1001, NULL); /* nothing committed */
  assert_int_equal(sl_ksink_pick_positions(l, "g", &c, &err), 0);
  assert_int_equal(c.batch, 0);
  assert_int_equal(c.pos.n, 2);
  assert_int_equal(sl_plan_find(&c.pos, "clicks", 0)->end, 100);
  assert_int_equal(sl_plan_find(&c.pos, "clicks", 1)->end, 10);
  sl_plan_clear(&c.pos);
  add(l, "clicks", 3, 5, NULL);
  assert_int_equal(sl_ksink_pick_positions(l, "g", &c, &err), SL_ERR_CORRUPT);
  assert_non_null(strstr(err.msg, "clicks[3]"));
  assert_int_equal(c.pos.n, 0);
  rd_kafka_topic_partition_list_destroy(l);
}

/* ---------------------------------------------------------------- ids */

static void default_ids(void **state) {
  char id[64];
  (void)state;
  sl_ksink_default_id(id, sizeof(id), NULL, "clicks", false);
  assert_string_equal(id, "sluice-clicks");
  sl_ksink_default_id(id, sizeof(id), NULL, "clicks", true);
  assert_string_equal(id, "sluice-clicks-dead-letters");
  sl_ksink_default_id(id, sizeof(id), "mine", "clicks", true);
  assert_string_equal(id, "mine");
}

/* ---------------------------------------------------------- templates */

static char *render(const char *tpl, const char *value) {
  struct sl_ktpl *t;
  struct sl_error err = {0};
  assert_int_equal(sl_ktpl_compile(tpl, &t, &err), 0);
  struct sl_record r = {.key = "k1",
                        .key_len = 2,
                        .value = value,
                        .value_len = value ? strlen(value) : 0,
                        .topic = "clicks",
                        .partition = 3,
                        .offset = 1234,
                        .timestamp = 1700000000000};
  cJSON *row = sl_ktpl_needs_row(t) && value ? cJSON_Parse(value) : NULL;
  struct sl_buf b = {0};
  size_t n = sl_ktpl_render(t, &r, row, &b);
  assert_int_equal(n, b.len);
  char *s = strndup(b.p ? b.p : "", b.len);
  cJSON_Delete(row);
  sl_buf_free(&b);
  sl_ktpl_free(t);
  return s;
}

static void expect_render(const char *tpl, const char *value,
                          const char *want) {
  char *got = render(tpl, value);
  assert_string_equal(got, want);
  free(got);
}

static void templates_render_fields(void **state) {
  const char *row = "{\"user\":\"u0042\",\"id\":17,\"amount\":12.5,"
                    "\"ok\":true,\"none\":null,\"geo\":{\"city\":\"Oslo\","
                    "\"at\":[1,2]}}";
  (void)state;
  expect_render("{user}", row, "u0042");
  expect_render("user-{user}/{id}", row, "user-u0042/17");
  expect_render("{amount}", row, "12.5");
  expect_render("{ok}", row, "true");
  expect_render("{none}", row, "");
  expect_render("[{missing}]", row, "[]");
  expect_render("{geo.city}", row, "Oslo");
  expect_render("{geo.at}", row, "[1,2]");
  expect_render("{geo}", row, "{\"city\":\"Oslo\",\"at\":[1,2]}");
  expect_render("{user.x}", row, ""); /* not an object */
  expect_render("{user}", "not json", "");
  expect_render("plain", row, "plain");
  expect_render("", row, "");
}

static void templates_render_metadata_and_braces(void **state) {
  (void)state;
  expect_render("{@key}|{@topic}|{@partition}|{@offset}|{@timestamp}", NULL,
                "k1|clicks|3|1234|1700000000000");
  expect_render("<{@value}>", "raw bytes", "<raw bytes>");
  expect_render("<{@value}>", NULL, "<>"); /* a tombstone */
  expect_render("{{\"u\":\"{user}\"}}", "{\"user\":\"a\"}", "{\"u\":\"a\"}");
}

static void templates_report_mistakes(void **state) {
  static const char *const bad[][2] = {
      {"{user", "'{' without '}'"},   {"user}", "'}' without '{'"},
      {"{}", "empty placeholder"},    {"{a.}", "empty field name"},
      {"{@nope}", "unknown {@nope}"}, {"{a{b}}", "'{' without '}'"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct sl_ktpl *t = NULL;
    struct sl_error err = {0};
    assert_int_equal(sl_ktpl_compile(bad[i][0], &t, &err), SL_ERR_CONFIG);
    if (!strstr(err.msg, bad[i][1]))
      fail_msg("'%s': got '%s', want '%s'", bad[i][0], err.msg, bad[i][1]);
  }
}

static void templates_know_when_they_need_json(void **state) {
  struct sl_ktpl *t;
  struct sl_error err = {0};
  (void)state;
  assert_int_equal(sl_ktpl_compile("{@key}-x", &t, &err), 0);
  assert_false(sl_ktpl_needs_row(t));
  sl_ktpl_free(t);
  assert_int_equal(sl_ktpl_compile("{@key}-{user}", &t, &err), 0);
  assert_true(sl_ktpl_needs_row(t));
  sl_ktpl_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(attempt_ids_are_run_dot_counter),
      cmocka_unit_test(group_positions_of_many_instances),
      cmocka_unit_test(attempt_validity),
      cmocka_unit_test(metadata_round_trip),
      cmocka_unit_test(metadata_too_small_a_buffer),
      cmocka_unit_test(metadata_rejects_what_sluice_did_not_write),
      cmocka_unit_test(record_takes_the_highest_batch),
      cmocka_unit_test(record_of_an_unused_group_is_empty),
      cmocka_unit_test(record_refuses_foreign_offsets),
      cmocka_unit_test(record_refuses_two_attempts_of_one_batch),
      cmocka_unit_test(record_partition_error_is_retriable),
      cmocka_unit_test(default_ids),
      cmocka_unit_test(templates_render_fields),
      cmocka_unit_test(templates_render_metadata_and_braces),
      cmocka_unit_test(templates_report_mistakes),
      cmocka_unit_test(templates_know_when_they_need_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
