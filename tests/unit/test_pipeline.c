/* test_pipeline.c - the operators: compile errors with positions, parse,
 * filter, map, select, drop, dead letters, on_error: fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "src/pipeline.h"

/* Compiles `pipeline:` from YAML text (a list). */
static int compile(const char *yaml, struct sl_pipeline **p,
                   struct sl_cfg_node **tree, struct sl_error *err) {
  char doc[2048];
  snprintf(doc, sizeof(doc), "pipeline:\n%s", yaml);
  memset(err, 0, sizeof(*err));
  *tree = sl_cfg_load_string("job.yaml", doc, strlen(doc), err);
  assert_non_null(*tree);
  return sl_pipeline_compile(sl_cfg_get(*tree, "pipeline"), p, err);
}

struct run {
  struct sl_pipeline *p;
  struct sl_cfg_node *tree;
  struct sl_pipe_task *t;
  struct sl_batch in, out, dead;
};

static void run_lines(struct run *r, const char *yaml, const char **values,
                      size_t n, bool fail) {
  struct sl_error err;
  assert_int_equal(compile(yaml, &r->p, &r->tree, &err), 0);
  r->t = sl_pipe_task_new(r->p);
  sl_batch_reserve(&r->in, n);
  for (size_t i = 0; i < n; i++)
    r->in.recs[r->in.n++] = (struct sl_record){.value = values[i],
                                               .value_len = strlen(values[i]),
                                               .topic = "t",
                                               .partition = 2,
                                               .offset = 100 + (int64_t)i};
  sl_pipe_run(r->t, &r->in, SL_WINDOW_NO_WATERMARK, fail, 0, &r->out, &r->dead,
              &err);
}

static void run_free(struct run *r) {
  sl_pipe_task_free(r->t);
  sl_pipeline_free(r->p);
  sl_cfg_free(r->tree);
  sl_batch_free(&r->in);
  sl_batch_free(&r->out);
  sl_batch_free(&r->dead);
}

static void assert_out(const struct run *r, size_t i, const char *want) {
  assert_true(i < r->out.n);
  char got[512];
  snprintf(got, sizeof(got), "%.*s", (int)r->out.recs[i].value_len,
           r->out.recs[i].value);
  assert_string_equal(got, want);
}

static void compile_errors_are_positioned(void **state) {
  struct sl_pipeline *p;
  struct sl_cfg_node *tree;
  struct sl_error err;
  (void)state;
  assert_int_not_equal(
      compile("  - parse: json\n  - filter: 'a == 1 &&'\n", &p, &tree, &err),
      0);
  assert_non_null(strstr(err.msg, "job.yaml:3:13: filter: column"));
  sl_cfg_free(tree);
  assert_int_not_equal(
      compile("  - parse: json\n  - fliter: 'a'\n", &p, &tree, &err), 0);
  assert_non_null(strstr(err.msg, "job.yaml:3:5: unknown operator 'fliter'"));
  assert_non_null(strstr(err.msg, "did you mean 'filter'"));
  sl_cfg_free(tree);
  assert_int_not_equal(compile("  - map: {a: '1'}\n", &p, &tree, &err), 0);
  assert_non_null(strstr(err.msg, "put `- parse: json` first"));
  sl_cfg_free(tree);
  assert_int_not_equal(
      compile("  - filter: 'true'\n  - parse: json\n", &p, &tree, &err), 0);
  assert_non_null(strstr(err.msg, "parse must be the first operator"));
  sl_cfg_free(tree);
  assert_int_not_equal(
      compile("  - parse: json\n  - filter: '1 + 2'\n", &p, &tree, &err), 0);
  assert_non_null(strstr(err.msg, "not a boolean"));
  sl_cfg_free(tree);
}

static void window_errors_are_positioned(void **state) {
  struct sl_pipeline *p;
  struct sl_cfg_node *tree;
  struct sl_error err;
  (void)state;
  assert_int_not_equal(compile("  - parse: json\n"
                               "  - window:\n"
                               "      tumbling: 10s\n"
                               "      time: ts\n"
                               "      aggregate: {n: cnt()}\n",
                               &p, &tree, &err),
                       0);
  assert_non_null(strstr(err.msg, "unknown function 'cnt'"));
  sl_cfg_free(tree);
  assert_int_not_equal(compile("  - parse: json\n"
                               "  - window:\n"
                               "      tumbling: 10s\n"
                               "      tiem: ts\n"
                               "      aggregate: {n: count()}\n",
                               &p, &tree, &err),
                       0);
  assert_non_null(strstr(err.msg, "did you mean 'time'"));
  sl_cfg_free(tree);
  assert_int_not_equal(compile("  - parse: json\n"
                               "  - window:\n"
                               "      hopping: {size: 10s, slide: 20s}\n"
                               "      time: ts\n"
                               "      aggregate: {n: count()}\n",
                               &p, &tree, &err),
                       0);
  assert_non_null(strstr(err.msg, "slide must not exceed size"));
  sl_cfg_free(tree);
  assert_int_equal(compile("  - parse: json\n"
                           "  - window:\n"
                           "      hopping: {size: 10s, slide: 5s}\n"
                           "      time: ts\n"
                           "      group_by: [user, {day: 'ts / 86400000'}]\n"
                           "      aggregate: {n: count(), s: sum(x * 2)}\n"
                           "      output: append\n",
                           &p, &tree, &err),
                   0);
  const struct sl_window_spec *w = sl_pipeline_window(p);
  assert_non_null(w);
  assert_int_equal(w->size_ms, 10000);
  assert_int_equal(w->slide_ms, 5000);
  assert_int_equal(w->ngroups, 2);
  assert_string_equal(w->group_names[1], "day");
  assert_int_equal(w->agg_kinds[1], SL_AGG_SUM);
  assert_int_equal(w->mode, SL_WINDOW_APPEND);
  sl_pipeline_free(p);
  sl_cfg_free(tree);
}

static void raw_records_pass_through(void **state) {
  struct run r = {0};
  const char *v[] = {"not json at all", "{\"a\":1}"};
  (void)state;
  run_lines(&r, "  - filter: '@offset > 100'\n", v, 2, false);
  assert_int_equal(r.out.n, 1);
  assert_out(&r, 0, "{\"a\":1}");
  assert_int_equal(sl_pipe_task_stats(r.t).filtered, 1);
  run_free(&r);
}

static void filter_map_select_drop(void **state) {
  struct run r = {0};
  const char *v[] = {
      "{\"user\":\"Ann\",\"amount\":2.5,\"event\":\"buy\",\"x\":{\"y\":1}}",
      "{\"user\":\"Bob\",\"amount\":1,\"event\":\"view\"}",
      "{\"user\":\"Cy\",\"amount\":4,\"event\":\"buy\",\"debug\":true}"};
  (void)state;
  run_lines(&r,
            "  - parse: json\n"
            "  - filter: 'event == \"buy\"'\n"
            "  - map: {who: lower(user), user: amount, amount: user, "
            "x.z: '@partition'}\n"
            "  - drop: [debug]\n"
            "  - select: [who, user, amount, x.z]\n",
            v, 3, false);
  assert_int_equal(r.out.n, 2);
  /* map sees the incoming row: user and amount swap */
  assert_out(&r, 0,
             "{\"who\":\"ann\",\"user\":2.5,\"amount\":\"Ann\","
             "\"x\":{\"z\":2}}");
  assert_out(&r, 1,
             "{\"who\":\"cy\",\"user\":4,\"amount\":\"Cy\","
             "\"x\":{\"z\":2}}");
  struct sl_pipe_stats st = sl_pipe_task_stats(r.t);
  assert_int_equal(st.in, 3);
  assert_int_equal(st.filtered, 1);
  assert_int_equal(st.out, 2);
  assert_int_equal(st.dead, 0);
  run_free(&r);
}

/* select moves values out of the row only when no listed path overlaps
 * another: an overlapping list still gives every listed path whole. */
static void select_with_overlapping_paths(void **state) {
  struct run r = {0};
  const char *v[] = {"{\"a\":{\"b\":1,\"c\":2},\"d\":[3,{\"e\":4}],\"f\":5}"};
  (void)state;
  run_lines(&r, "  - parse: json\n  - select: [a.b, a, d, a.b, f]\n", v, 1,
            false);
  assert_int_equal(r.out.n, 1);
  assert_out(&r, 0, "{\"a\":{\"b\":1,\"c\":2},\"d\":[3,{\"e\":4}],\"f\":5}");
  run_free(&r);
  r = (struct run){0};
  run_lines(&r, "  - parse: json\n  - select: [f, d, a.c]\n", v, 1, false);
  assert_int_equal(r.out.n, 1);
  assert_out(&r, 0, "{\"f\":5,\"d\":[3,{\"e\":4}],\"a\":{\"c\":2}}");
  run_free(&r);
}

/* Many records through one task: each record's rows come from the task's
 * arena, reset per record (ASan poisons what a reset reclaims). */
static void many_records_reuse_the_record_arena(void **state) {
  struct run r = {0};
  enum { N = 3000 };
  static char bufs[N][96];
  const char *v[N];
  (void)state;
  for (int i = 0; i < N; i++) {
    snprintf(bufs[i], sizeof(bufs[i]),
             "{\"user\":\"u%04d\",\"amount\":%d.5,\"event\":\"%s\"}", i, i,
             i % 3 ? "view" : "buy");
    v[i] = bufs[i];
  }
  run_lines(&r,
            "  - parse: json\n  - filter: 'event == \"buy\"'\n"
            "  - select: [user, amount]\n",
            v, N, false);
  assert_int_equal(r.out.n, N / 3);
  assert_out(&r, 0, "{\"user\":\"u0000\",\"amount\":0.5}");
  assert_out(&r, N / 3 - 1, "{\"user\":\"u2997\",\"amount\":2997.5}");
  run_free(&r);
}

static void bad_records_become_dead_letters(void **state) {
  struct run r = {0};
  const char *v[] = {"{\"amount\":1}", "{broken", "[1,2]",
                     "{\"amount\":\"ten\"}"};
  (void)state;
  run_lines(&r, "  - parse: json\n  - filter: 'amount > 0'\n", v, 4, false);
  assert_int_equal(r.out.n, 1);
  assert_int_equal(r.dead.n, 3);
  char buf[1024];
  snprintf(buf, sizeof(buf), "%.*s", (int)r.dead.recs[0].value_len,
           r.dead.recs[0].value);
  assert_non_null(strstr(buf, "\"reason\":\"parse: invalid JSON at byte"));
  assert_non_null(strstr(buf, "\"partition\":2"));
  assert_non_null(strstr(buf, "\"offset\":101"));
  assert_non_null(strstr(buf, "\"value\":\"{broken\""));
  snprintf(buf, sizeof(buf), "%.*s", (int)r.dead.recs[1].value_len,
           r.dead.recs[1].value);
  assert_non_null(strstr(buf, "expected a JSON object"));
  snprintf(buf, sizeof(buf), "%.*s", (int)r.dead.recs[2].value_len,
           r.dead.recs[2].value);
  assert_non_null(strstr(buf, "filter: "));
  assert_non_null(strstr(buf, "\"offset\":103"));
  assert_int_equal(sl_pipe_task_stats(r.t).dead, 3);
  run_free(&r);
}

/* max_record_bytes: checked before parsing; the dead letter gives the
 * size and the coordinates, not the bytes. Bytes that are not UTF-8 go
 * into the dead letter as hex, so it stays valid JSON. */
static void record_limits_and_raw_bytes(void **state) {
  struct run r = {0};
  struct sl_error err;
  (void)state;
  assert_int_equal(compile("  - parse: json\n", &r.p, &r.tree, &err), 0);
  sl_pipeline_set_max_record_bytes(r.p, 16);
  r.t = sl_pipe_task_new(r.p);
  const char *v[] = {"{\"a\":1}", "{\"a\":\"0123456789\"}", "\xff\xfe{"};
  sl_batch_reserve(&r.in, 3);
  for (size_t i = 0; i < 3; i++)
    r.in.recs[r.in.n++] = (struct sl_record){.value = v[i],
                                             .value_len = strlen(v[i]),
                                             .key = i == 2 ? "k\x80" : NULL,
                                             .key_len = i == 2 ? 2 : 0,
                                             .topic = "t",
                                             .offset = (int64_t)i};
  assert_int_equal(sl_pipe_run(r.t, &r.in, SL_WINDOW_NO_WATERMARK, false, 0,
                               &r.out, &r.dead, &err),
                   0);
  assert_int_equal(r.out.n, 1);
  assert_int_equal(r.dead.n, 2);
  char buf[1024];
  snprintf(buf, sizeof(buf), "%.*s", (int)r.dead.recs[0].value_len,
           r.dead.recs[0].value);
  assert_non_null(
      strstr(buf, "record too large: 18 bytes > max_record_bytes 16"));
  assert_non_null(strstr(buf, "\"offset\":1"));
  assert_non_null(strstr(buf, "\"value\":null"));
  snprintf(buf, sizeof(buf), "%.*s", (int)r.dead.recs[1].value_len,
           r.dead.recs[1].value);
  cJSON *d = cJSON_Parse(buf);
  assert_non_null(d);
  assert_string_equal(cJSON_GetObjectItem(d, "value_hex")->valuestring,
                      "fffe7b");
  assert_string_equal(cJSON_GetObjectItem(d, "key_hex")->valuestring, "6b80");
  assert_null(cJSON_GetObjectItem(d, "value"));
  cJSON_Delete(d);
  run_free(&r);
}

static void on_error_fail_stops_at_the_first_bad_record(void **state) {
  struct sl_pipeline *p;
  struct sl_cfg_node *tree;
  struct sl_error err;
  struct sl_batch in = {0}, out = {0}, dead = {0};
  (void)state;
  assert_int_equal(compile("  - parse: json\n", &p, &tree, &err), 0);
  struct sl_pipe_task *t = sl_pipe_task_new(p);
  sl_batch_reserve(&in, 1);
  in.recs[in.n++] = (struct sl_record){
      .value = "nope", .value_len = 4, .topic = "clicks", .offset = 7};
  memset(&err, 0, sizeof(err));
  assert_int_not_equal(
      sl_pipe_run(t, &in, SL_WINDOW_NO_WATERMARK, true, 0, &out, &dead, &err),
      0);
  assert_non_null(strstr(err.msg, "record clicks[0]@7: parse: invalid JSON"));
  assert_true(err.flags & SL_ERR_FATAL);
  assert_int_equal(dead.n, 0);
  sl_pipe_task_free(t);
  sl_pipeline_free(p);
  sl_cfg_free(tree);
  sl_batch_free(&in);
  sl_batch_free(&out);
  sl_batch_free(&dead);
}

static void top_keeps_the_n_largest_per_window(void **state) {
  struct sl_pipeline *p;
  struct sl_cfg_node *tree;
  struct sl_error err;
  (void)state;
  assert_int_not_equal(compile("  - parse: json\n"
                               "  - window: {tumbling: 1m, time: ts, "
                               "aggregate: {v: count()}}\n"
                               "  - top: {n: 2, by: v}\n",
                               &p, &tree, &err),
                       0);
  assert_non_null(strstr(err.msg, "needs a window with output: append"));
  sl_cfg_free(tree);
  assert_int_equal(compile("  - parse: json\n"
                           "  - window: {tumbling: 1m, time: ts, output: "
                           "append, group_by: [k], aggregate: {v: count()}}\n"
                           "  - top: {n: 2, by: v}\n",
                           &p, &tree, &err),
                   0);
  const char *in[] = {
      "{\"window_start\":0,\"window_end\":60,\"k\":\"a\",\"v\":1}",
      "{\"window_start\":60,\"window_end\":120,\"k\":\"a\",\"v\":9}",
      "{\"window_start\":0,\"window_end\":60,\"k\":\"b\",\"v\":5}",
      "{\"window_start\":0,\"window_end\":60,\"k\":\"c\",\"v\":3}",
      "{\"window_start\":0,\"window_end\":60,\"k\":\"d\"}"};
  char *rows[5];
  size_t n = 5;
  for (size_t i = 0; i < n; i++)
    rows[i] = strdup(in[i]);
  sl_pipeline_apply_top(p, rows, &n);
  assert_int_equal(n, 3);
  assert_non_null(strstr(rows[0], "\"k\":\"b\""));
  assert_non_null(strstr(rows[1], "\"k\":\"c\""));
  assert_non_null(strstr(rows[2], "\"window_start\":60"));
  for (size_t i = 0; i < n; i++)
    free(rows[i]);
  sl_pipeline_free(p);
  sl_cfg_free(tree);
}

/* Rows after a window reach the sink as rows too (record.h: row), equal
 * to their JSON text and alive until the next call; stateless outputs and
 * dead letters carry text only. */
static void post_rows_reach_the_sink_as_rows(void **state) {
  struct run r = {0};
  struct sl_error err = {0};
  (void)state;
  const char *in[] = {"{\"k\":1}", "not json"};
  run_lines(&r,
            "  - parse: json\n"
            "  - window: {tumbling: 1m, time: ts, output: append, "
            "aggregate: {v: count()}}\n"
            "  - filter: 'v > 1'\n",
            in, 2, false);
  assert_int_equal(r.out.n, 0);
  assert_int_equal(r.dead.n, 2); /* no ts; not JSON */
  for (size_t i = 0; i < r.dead.n; i++)
    assert_null(r.dead.recs[i].row);
  cJSON *rows[3];
  rows[0] = cJSON_Parse("{\"window_start\":0,\"window_end\":60000,\"v\":2}");
  rows[1] = cJSON_Parse("{\"window_start\":60000,\"window_end\":120000,"
                        "\"v\":1}");
  rows[2] = cJSON_Parse("{\"window_start\":120000,\"window_end\":180000,"
                        "\"v\":7.5}");
  assert_int_equal(sl_pipe_post(r.t, rows, 3, false, 0, &r.out, &r.dead, &err),
                   0);
  assert_int_equal(r.out.n, 2); /* v > 1 */
  for (size_t i = 0; i < r.out.n; i++) {
    const struct sl_record *o = &r.out.recs[i];
    assert_non_null(o->row);
    char *text = cJSON_PrintUnformatted(o->row);
    assert_int_equal(strlen(text), o->value_len);
    assert_memory_equal(text, o->value, o->value_len);
    cJSON_free(text);
  }
  assert_true(cJSON_GetObjectItem(r.out.recs[1].row, "v")->valuedouble == 7.5);
  /* the next call replaces them; trimming frees them (ASan checks) */
  assert_int_equal(sl_pipe_post(r.t, NULL, 0, false, 0, &r.out, &r.dead, &err),
                   0);
  assert_int_equal(r.out.n, 0);
  run_free(&r);
  /* without a window nothing keeps rows alive: outputs are text */
  struct run s = {0};
  const char *v[] = {"{\"a\":1}"};
  run_lines(&s, "  - parse: json\n  - select: [a]\n", v, 1, false);
  assert_int_equal(s.out.n, 1);
  assert_null(s.out.recs[0].row);
  assert_out(&s, 0, "{\"a\":1}");
  run_free(&s);
}

/* The output fields joined by ',', or "?" when the pipeline leaves them
 * open. */
static const char *fields_of(const char *yaml) {
  static char out[512];
  struct sl_pipeline *p;
  struct sl_cfg_node *tree;
  struct sl_error err;
  assert_int_equal(compile(yaml, &p, &tree, &err), 0);
  char **f = sl_pipeline_output_fields(p);
  if (!f) {
    snprintf(out, sizeof(out), "?");
  } else {
    out[0] = '\0';
    for (size_t i = 0; f[i]; i++) {
      snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s",
               i ? "," : "", f[i]);
      free(f[i]);
    }
    free(f);
  }
  sl_pipeline_free(p);
  sl_cfg_free(tree);
  return out;
}

static void output_fields_when_known(void **state) {
  (void)state;
  assert_string_equal(fields_of("  - parse: json\n"), "?");
  assert_string_equal(fields_of("  - parse: json\n  - map: {a: '1'}\n"), "?");
  assert_string_equal(
      fields_of("  - parse: json\n  - select: [a, b.c]\n  - map: {d: a}\n"
                "  - drop: [a]\n"),
      "b,d");
  assert_string_equal(
      fields_of("  - parse: json\n  - select: [x]\n  - window:\n"
                "      tumbling: 10s\n      time: ts\n"
                "      group_by: [user]\n"
                "      aggregate: { n: count() }\n  - map: {m: n}\n"),
      "window_start,window_end,user,n,m");
  assert_string_equal(fields_of("  - filter: '@offset > 1'\n"), "?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(compile_errors_are_positioned),
      cmocka_unit_test(window_errors_are_positioned),
      cmocka_unit_test(raw_records_pass_through),
      cmocka_unit_test(filter_map_select_drop),
      cmocka_unit_test(select_with_overlapping_paths),
      cmocka_unit_test(many_records_reuse_the_record_arena),
      cmocka_unit_test(bad_records_become_dead_letters),
      cmocka_unit_test(record_limits_and_raw_bytes),
      cmocka_unit_test(on_error_fail_stops_at_the_first_bad_record),
      cmocka_unit_test(top_keeps_the_n_largest_per_window),
      cmocka_unit_test(post_rows_reach_the_sink_as_rows),
      cmocka_unit_test(output_fields_when_known),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
