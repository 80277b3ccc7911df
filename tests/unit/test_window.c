/*
 * test_window.c - event-time window state: assignment, aggregates,
 * lateness, update and append emission over several micro-batches,
 * eviction, flush, output order, snapshots (round trip, dirty marks,
 * corrupt and foreign images), concurrent shard merges and a
 * million-key merge.
 *
 * Batches are driven as the engine does (window.h): partials filled with
 * the watermark of the batch start -> merge every shard -> advance ->
 * emit every shard. Expected rows are computed by hand in each test.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <lz4.h>
#include <zlib.h>

#include "src/util.h"
#include "src/window.h"

/* ---- helpers ------------------------------------------------------------ */

/* Emitted rows, as unformatted JSON text. */
struct rows {
  char **v;
  size_t n, cap;
};

static void collect(cJSON *row, void *arg) {
  struct rows *r = arg;
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 16;
    r->v = realloc(r->v, r->cap * sizeof(*r->v));
    assert_non_null(r->v);
  }
  r->v[r->n++] = cJSON_PrintUnformatted(row);
  cJSON_Delete(row);
}

static void rows_free(struct rows *r) {
  for (size_t i = 0; i < r->n; i++)
    free(r->v[i]);
  free(r->v);
  *r = (struct rows){0};
}

static void rows_equal(const struct rows *a, const struct rows *b) {
  assert_int_equal(a->n, b->n);
  for (size_t i = 0; i < a->n; i++)
    assert_string_equal(a->v[i], b->v[i]);
}

/* Checks r against a NULL-terminated list of expected rows. */
static void rows_expect(const struct rows *r, const char *const *want) {
  size_t n = 0;
  while (want[n])
    n++;
  for (size_t i = 0; i < r->n && i < n; i++)
    assert_string_equal(r->v[i], want[i]);
  assert_int_equal(r->n, n);
}

static struct sl_window_spec
mkspec(int64_t size, int64_t slide, int64_t late, enum sl_window_mode mode,
       size_t ng, const char *const *gn, size_t na, const char *const *an,
       const enum sl_agg_kind *ak, unsigned shards) {
  return (struct sl_window_spec){.size_ms = size,
                                 .slide_ms = slide,
                                 .lateness_ms = late,
                                 .mode = mode,
                                 .ngroups = ng,
                                 .group_names = gn,
                                 .naggs = na,
                                 .agg_names = an,
                                 .agg_kinds = ak,
                                 .shards = shards};
}

/* One micro-batch: merge every shard of parts, advance, emit every shard
 * (shard order) into out (may be NULL: rows dropped). */
static void drop(cJSON *row, void *arg) {
  (void)arg;
  cJSON_Delete(row);
}

static void run_batch(struct sl_wstate *s, struct sl_wpartial **parts, size_t n,
                      struct rows *out, bool flush) {
  unsigned shards = sl_wstate_spec(s)->shards;
  for (unsigned k = 0; k < shards; k++)
    sl_wstate_merge_shard(s, k, parts, n);
  sl_wstate_advance(s, parts, n);
  for (unsigned k = 0; k < shards; k++)
    sl_wstate_emit_shard(s, k, flush, out ? collect : drop, out);
}

static void flush_all(struct sl_wstate *s, struct rows *out) {
  run_batch(s, NULL, 0, out, true);
}

static struct sl_value vstr(const char *s) {
  return sl_str(s, strlen(s));
}

static struct sl_value vjson(const cJSON *j) {
  return (struct sl_value){.type = SL_V_JSON, .u.json = j};
}

static void add_ok(struct sl_wpartial *p, int64_t t, const struct sl_value *g,
                   const struct sl_value *a, int64_t wm) {
  struct sl_error err = {0};
  int rc = sl_wpartial_add(p, t, g, a, wm, &err);
  if (rc != 0)
    fail_msg("add t=%lld: rc %d: %s", (long long)t, rc, err.msg);
}

/* The number a row holds in field f. */
static double row_num(const char *row, const char *f) {
  cJSON *j = cJSON_Parse(row);
  assert_non_null(j);
  cJSON *v = cJSON_GetObjectItemCaseSensitive(j, f);
  assert_true(cJSON_IsNumber(v));
  double d = v->valuedouble;
  cJSON_Delete(j);
  return d;
}

static const char *const N_NAMES[] = {"n"};
static const enum sl_agg_kind N_KINDS[] = {SL_AGG_COUNT};

/* ---- spec --------------------------------------------------------------- */

static void test_spec_check(void **state) {
  (void)state;
  struct sl_error err = {0};
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_APPEND, 0, NULL, 1, N_NAMES, N_KINDS, 1);
  assert_int_equal(sl_window_spec_check(&sp, &err), 0);
  sp.slide_ms = 11; /* slide > size */
  assert_int_equal(sl_window_spec_check(&sp, &err), SL_ERR_INVAL);
  assert_non_null(strstr(err.msg, "slide"));
  assert_null(sl_wstate_new(&sp));
  assert_null(sl_wpartial_new(&sp));
  sp.slide_ms = 10;
  sp.shards = 3; /* not a power of two */
  assert_int_equal(sl_window_spec_check(&sp, &err), SL_ERR_INVAL);
  assert_non_null(strstr(err.msg, "shards"));
  sp.shards = 1;
  sp.size_ms = 100000;
  sp.slide_ms = 1; /* 100000 windows per record */
  assert_int_equal(sl_window_spec_check(&sp, &err), SL_ERR_INVAL);
  sp.size_ms = 0;
  assert_int_equal(sl_window_spec_check(&sp, &err), SL_ERR_INVAL);
}

/* ---- output: merge: a partial's own rows ----------------------------------
 */

/* sl_wpartial_emit gives each (window, key)'s contribution in output
 * order, with min/max kept apart from the sums, then starts empty: the
 * next call gives only what came since (what a merging sink adds up). */
static void test_partial_emit_for_merge(void **state) {
  (void)state;
  static const char *const gn[] = {"user"};
  static const char *const an[] = {"s", "n", "hi", "lo"};
  static const enum sl_agg_kind ak[] = {SL_AGG_SUM, SL_AGG_COUNT, SL_AGG_MAX,
                                        SL_AGG_MIN};
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_MERGE, 1, gn, 4, an, ak, 4);
  struct sl_wpartial *p = sl_wpartial_new(&sp);
  assert_non_null(p);
  struct sl_value b = vstr("b"), a = vstr("a");
  struct sl_value x3[4] = {sl_int(3), SL_NULL, sl_int(3), sl_int(3)};
  struct sl_value x5[4] = {sl_int(5), SL_NULL, sl_int(5), sl_int(5)};
  struct sl_value f1[4] = {sl_float(1.5), SL_NULL, sl_float(1.5),
                           sl_float(1.5)};
  add_ok(p, 12, &b, x3, SL_WINDOW_NO_WATERMARK);
  add_ok(p, 3, &b, x5, SL_WINDOW_NO_WATERMARK);
  add_ok(p, 4, &b, x3, SL_WINDOW_NO_WATERMARK);
  add_ok(p, 7, &a, f1, SL_WINDOW_NO_WATERMARK);
  struct rows r = {0};
  sl_wpartial_emit(p, collect, &r);
  const char *const want[] = {
      "{\"window_start\":0,\"window_end\":10,\"user\":\"a\",\"s\":1.5,"
      "\"n\":1,\"hi\":1.5,\"lo\":1.5}",
      "{\"window_start\":0,\"window_end\":10,\"user\":\"b\",\"s\":8,\"n\":2,"
      "\"hi\":5,\"lo\":3}",
      "{\"window_start\":10,\"window_end\":20,\"user\":\"b\",\"s\":3,"
      "\"n\":1,\"hi\":3,\"lo\":3}",
      NULL};
  rows_expect(&r, want);
  rows_free(&r);
  assert_int_equal(sl_wpartial_keys(p), 0);
  assert_int_equal(sl_wpartial_max_event(p), INT64_MIN);
  sl_wpartial_emit(p, collect, &r);
  assert_int_equal(r.n, 0);
  /* string min/max own heap memory: freed by the emit, and the partial
   * takes records again */
  struct sl_value sv[4] = {sl_int(1), SL_NULL, vstr("zz"), vstr("aa")};
  add_ok(p, 15, &a, sv, SL_WINDOW_NO_WATERMARK);
  sl_wpartial_emit(p, collect, &r);
  const char *const want2[] = {
      "{\"window_start\":10,\"window_end\":20,\"user\":\"a\",\"s\":1,\"n\":1,"
      "\"hi\":\"zz\",\"lo\":\"aa\"}",
      NULL};
  rows_expect(&r, want2);
  rows_free(&r);
  sl_wpartial_free(p);
}

/* ---- window assignment --------------------------------------------------- */

static void test_tumbling_assignment(void **state) {
  (void)state;
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_APPEND, 0, NULL, 1, N_NAMES, N_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  struct sl_wpartial *p = sl_wpartial_new(&sp);
  /* boundaries: t == start (0, 10, 20, -10) and t == end - 1 (9, 19, -1) */
  const int64_t ts[] = {-11, -10, -1, 0, 9, 10, 19, 20};
  for (size_t i = 0; i < 8; i++)
    add_ok(p, ts[i], NULL, NULL, SL_WINDOW_NO_WATERMARK);
  assert_int_equal(sl_wpartial_keys(p), 5);
  assert_int_equal(sl_wpartial_max_event(p), 20);
  struct rows r = {0};
  run_batch(s, &p, 1, &r, true);
  const char *const want[] = {
      "{\"window_start\":-20,\"window_end\":-10,\"n\":1}",
      "{\"window_start\":-10,\"window_end\":0,\"n\":2}",
      "{\"window_start\":0,\"window_end\":10,\"n\":2}",
      "{\"window_start\":10,\"window_end\":20,\"n\":2}",
      "{\"window_start\":20,\"window_end\":30,\"n\":1}",
      NULL};
  rows_expect(&r, want);
  assert_int_equal(sl_wstate_windows(s), 0);
  rows_free(&r);
  sl_wpartial_free(p);
  sl_wstate_free(s);
}

static void test_hopping_assignment(void **state) {
  (void)state;
  struct sl_window_spec sp =
      mkspec(10, 5, 0, SL_WINDOW_APPEND, 0, NULL, 1, N_NAMES, N_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  struct sl_wpartial *p = sl_wpartial_new(&sp);
  /* -1: [-10,0) [-5,5); 0, 4: [-5,5) [0,10); 5, 9: [0,10) [5,15);
   * 14: [5,15) [10,20) */
  const int64_t ts[] = {-1, 0, 4, 5, 9, 14};
  for (size_t i = 0; i < 6; i++)
    add_ok(p, ts[i], NULL, NULL, SL_WINDOW_NO_WATERMARK);
  struct rows r = {0};
  run_batch(s, &p, 1, &r, true);
  const char *const want[] = {"{\"window_start\":-10,\"window_end\":0,\"n\":1}",
                              "{\"window_start\":-5,\"window_end\":5,\"n\":3}",
                              "{\"window_start\":0,\"window_end\":10,\"n\":4}",
                              "{\"window_start\":5,\"window_end\":15,\"n\":3}",
                              "{\"window_start\":10,\"window_end\":20,\"n\":1}",
                              NULL};
  rows_expect(&r, want);
  rows_free(&r);
  sl_wpartial_free(p);
  sl_wstate_free(s);

  /* slide not dividing size: starts are the multiples of 3 in (t-10, t] */
  sp = mkspec(10, 3, 0, SL_WINDOW_APPEND, 0, NULL, 1, N_NAMES, N_KINDS, 1);
  s = sl_wstate_new(&sp);
  p = sl_wpartial_new(&sp);
  add_ok(p, 0, NULL, NULL, SL_WINDOW_NO_WATERMARK); /* 0 -3 -6 -9 */
  assert_int_equal(sl_wpartial_keys(p), 4);
  add_ok(p, 1, NULL, NULL, SL_WINDOW_NO_WATERMARK); /* 0 -3 -6 */
  assert_int_equal(sl_wpartial_keys(p), 4);
  run_batch(s, &p, 1, &r, true);
  const char *const want3[] = {"{\"window_start\":-9,\"window_end\":1,\"n\":1}",
                               "{\"window_start\":-6,\"window_end\":4,\"n\":2}",
                               "{\"window_start\":-3,\"window_end\":7,\"n\":2}",
                               "{\"window_start\":0,\"window_end\":10,\"n\":2}",
                               NULL};
  rows_expect(&r, want3);
  rows_free(&r);
  sl_wpartial_free(p);
  sl_wstate_free(s);
}

static void test_event_time_range(void **state) {
  (void)state;
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_APPEND, 0, NULL, 1, N_NAMES, N_KINDS, 1);
  struct sl_wpartial *p = sl_wpartial_new(&sp);
  struct sl_error err = {0};
  assert_int_equal(
      sl_wpartial_add(p, INT64_MAX, NULL, NULL, SL_WINDOW_NO_WATERMARK, &err),
      SL_ERR_INVAL);
  assert_int_equal(
      sl_wpartial_add(p, INT64_MIN, NULL, NULL, SL_WINDOW_NO_WATERMARK, &err),
      SL_ERR_INVAL);
  assert_int_equal(sl_wpartial_keys(p), 0);
  assert_int_equal(sl_wpartial_max_event(p), INT64_MIN);
  sl_wpartial_free(p);
}

/* ---- aggregates ---------------------------------------------------------- */

static const char *const K_NAMES[] = {"k"};
static const char *const ALL_NAMES[] = {"n", "s", "mn", "mx", "a", "d"};
static const enum sl_agg_kind ALL_KINDS[] = {
    SL_AGG_COUNT, SL_AGG_SUM, SL_AGG_MIN,
    SL_AGG_MAX,   SL_AGG_AVG, SL_AGG_COUNT_DISTINCT};

/* Adds a record whose every aggregate takes x. */
static int add_all(struct sl_wpartial *p, int64_t t, const char *k,
                   struct sl_value x, int64_t wm, struct sl_error *err) {
  struct sl_value g = vstr(k);
  struct sl_value a[6] = {SL_NULL, x, x, x, x, x};
  return sl_wpartial_add(p, t, &g, a, wm, err);
}

static void test_aggregates(void **state) {
  (void)state;
  struct sl_window_spec sp = mkspec(100, 100, 0, SL_WINDOW_UPDATE, 1, K_NAMES,
                                    6, ALL_NAMES, ALL_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  struct sl_wpartial *p[2] = {sl_wpartial_new(&sp), sl_wpartial_new(&sp)};
  struct sl_error err = {0};
  /* "a": 1, 2.5 | null, 4 (two partials); "b": only null; "c": 3 | 5 */
  assert_int_equal(add_all(p[0], 1, "a", sl_int(1), INT64_MIN, &err), 0);
  assert_int_equal(add_all(p[0], 2, "a", sl_float(2.5), INT64_MIN, &err), 0);
  assert_int_equal(add_all(p[1], 3, "a", SL_NULL, INT64_MIN, &err), 0);
  assert_int_equal(add_all(p[1], 4, "a", sl_int(4), INT64_MIN, &err), 0);
  assert_int_equal(add_all(p[1], 5, "b", SL_NULL, INT64_MIN, &err), 0);
  assert_int_equal(add_all(p[0], 6, "c", sl_int(3), INT64_MIN, &err), 0);
  assert_int_equal(add_all(p[1], 7, "c", sl_int(5), INT64_MIN, &err), 0);
  struct rows r = {0};
  run_batch(s, p, 2, &r, false);
  const char *const want[] = {
      "{\"window_start\":0,\"window_end\":100,\"k\":\"a\",\"n\":4,\"s\":7.5,"
      "\"mn\":1,\"mx\":4,\"a\":2.5,\"d\":3}",
      "{\"window_start\":0,\"window_end\":100,\"k\":\"b\",\"n\":1,\"s\":null,"
      "\"mn\":null,\"mx\":null,\"a\":null,\"d\":0}",
      "{\"window_start\":0,\"window_end\":100,\"k\":\"c\",\"n\":2,\"s\":8,"
      "\"mn\":3,\"mx\":5,\"a\":4,\"d\":2}",
      NULL};
  rows_expect(&r, want);
  rows_free(&r);
  sl_wpartial_free(p[0]);
  sl_wpartial_free(p[1]);
  sl_wstate_free(s);
}

static const char *const S_NAMES[] = {"s"};
static const enum sl_agg_kind S_KINDS[] = {SL_AGG_SUM};

static double sum_of(const int64_t *xs, size_t n, size_t split) {
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_APPEND, 0, NULL, 1, S_NAMES, S_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  struct sl_wpartial *p[2] = {sl_wpartial_new(&sp), sl_wpartial_new(&sp)};
  for (size_t i = 0; i < n; i++) {
    struct sl_value a = sl_int(xs[i]);
    add_ok(p[i >= split], 0, NULL, &a, INT64_MIN);
  }
  struct rows r = {0};
  run_batch(s, p, 2, &r, true);
  assert_int_equal(r.n, 1);
  double d = row_num(r.v[0], "s");
  rows_free(&r);
  sl_wpartial_free(p[0]);
  sl_wpartial_free(p[1]);
  sl_wstate_free(s);
  return d;
}

static void test_sum_overflow(void **state) {
  (void)state;
  /* Exact while ints: 2^60 + 1 - 2^60 is 1 (in doubles it would be 0). */
  const int64_t exact[] = {(int64_t)1 << 60, 1, -((int64_t)1 << 60)};
  assert_true(sum_of(exact, 3, 3) == 1.0);
  assert_true(sum_of(exact, 3, 1) == 1.0); /* also across a merge */
  /* Overflow switches to float instead of wrapping. */
  const int64_t big[] = {INT64_MAX, INT64_MAX, -INT64_MAX};
  assert_true(sum_of(big, 3, 3) == 9223372036854775808.0);
  /* ... in the merge too: MAX | MAX */
  assert_true(sum_of(big, 2, 1) == 18446744073709551616.0);
  const int64_t neg[] = {INT64_MIN, -1};
  assert_true(sum_of(neg, 2, 1) == -9223372036854775808.0 - 1.0);
  assert_true(sum_of(neg, 2, 1) < 0);

  /* A float input makes the sum a float. */
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_APPEND, 0, NULL, 1, S_NAMES, S_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  struct sl_wpartial *p = sl_wpartial_new(&sp);
  struct sl_value a = sl_int(1);
  add_ok(p, 0, NULL, &a, INT64_MIN);
  a = sl_float(0.5);
  add_ok(p, 0, NULL, &a, INT64_MIN);
  struct rows r = {0};
  run_batch(s, &p, 1, &r, true);
  assert_int_equal(r.n, 1);
  assert_true(row_num(r.v[0], "s") == 1.5);
  rows_free(&r);
  sl_wpartial_free(p);
  sl_wstate_free(s);
}

static const char *const MM_NAMES[] = {"n", "mn", "mx"};
static const enum sl_agg_kind MM_KINDS[] = {SL_AGG_COUNT, SL_AGG_MIN,
                                            SL_AGG_MAX};

static int add_mm(struct sl_wpartial *p, int64_t t, struct sl_value x,
                  struct sl_error *err) {
  struct sl_value g = vstr("k");
  struct sl_value a[3] = {SL_NULL, x, x};
  return sl_wpartial_add(p, t, &g, a, INT64_MIN, err);
}

static void test_minmax(void **state) {
  (void)state;
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_APPEND, 1, K_NAMES, 3, MM_NAMES, MM_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  struct sl_wpartial *p = sl_wpartial_new(&sp);
  struct sl_error err = {0};
  assert_int_equal(add_mm(p, 0, vstr("pear"), &err), 0);
  assert_int_equal(add_mm(p, 0, vstr("apple"), &err), 0);
  assert_int_equal(add_mm(p, 0, vstr("zoo"), &err), 0);
  assert_int_equal(add_mm(p, 0, vstr("applesauce"), &err), 0);
  /* a number cannot be compared with the strings before it */
  assert_int_equal(add_mm(p, 0, sl_int(3), &err), SL_ERR_INVAL);
  assert_non_null(strstr(err.msg, "min"));
  assert_int_equal(add_mm(p, 0, sl_bool(true), &err), SL_ERR_INVAL);
  assert_int_equal(add_mm(p, 0, SL_NULL, &err), 0); /* counted, skipped */
  /* numbers in another window: int and float compare numerically */
  assert_int_equal(add_mm(p, 10, sl_int(2), &err), 0);
  assert_int_equal(add_mm(p, 10, sl_float(1.5), &err), 0);
  assert_int_equal(add_mm(p, 10, sl_int(3), &err), 0);
  assert_int_equal(add_mm(p, 10, vstr("x"), &err), SL_ERR_INVAL);
  struct rows r = {0};
  run_batch(s, &p, 1, &r, true);
  const char *const want[] = {
      "{\"window_start\":0,\"window_end\":10,\"k\":\"k\",\"n\":5,\"mn\":"
      "\"apple\",\"mx\":\"zoo\"}",
      "{\"window_start\":10,\"window_end\":20,\"k\":\"k\",\"n\":3,\"mn\":1.5,"
      "\"mx\":3}",
      NULL};
  rows_expect(&r, want);
  rows_free(&r);
  sl_wpartial_free(p);
  sl_wstate_free(s);

  /* Different partials may meet with different kinds: the merge keeps
   * numbers < strings, whatever the merge order. */
  for (int order = 0; order < 2; order++) {
    s = sl_wstate_new(&sp);
    struct sl_wpartial *q[2] = {sl_wpartial_new(&sp), sl_wpartial_new(&sp)};
    assert_int_equal(add_mm(q[order], 0, vstr("b"), &err), 0);
    assert_int_equal(add_mm(q[!order], 0, sl_int(7), &err), 0);
    run_batch(s, q, 2, &r, true);
    const char *const want2[] = {
        "{\"window_start\":0,\"window_end\":10,\"k\":\"k\",\"n\":2,\"mn\":7,"
        "\"mx\":\"b\"}",
        NULL};
    rows_expect(&r, want2);
    rows_free(&r);
    sl_wpartial_free(q[0]);
    sl_wpartial_free(q[1]);
    sl_wstate_free(s);
  }

  /* Hopping: a record is refused as a whole when one of its windows
   * cannot take it; the other window gets nothing either. */
  sp = mkspec(10, 5, 0, SL_WINDOW_APPEND, 1, K_NAMES, 3, MM_NAMES, MM_KINDS, 1);
  p = sl_wpartial_new(&sp);
  assert_int_equal(add_mm(p, 2, vstr("s"), &err), 0); /* [-5,5) [0,10) */
  assert_int_equal(sl_wpartial_keys(p), 2);
  assert_int_equal(add_mm(p, 7, sl_int(1), &err), SL_ERR_INVAL);
  assert_int_equal(sl_wpartial_keys(p), 2); /* [5,15) not created */
  assert_int_equal(sl_wpartial_max_event(p), 2);
  sl_wpartial_free(p);
}

static const char *const D_NAMES[] = {"d"};
static const enum sl_agg_kind D_KINDS[] = {SL_AGG_COUNT_DISTINCT};

static void test_count_distinct(void **state) {
  (void)state;
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_APPEND, 0, NULL, 1, D_NAMES, D_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  struct sl_wpartial *p[2] = {sl_wpartial_new(&sp), sl_wpartial_new(&sp)};
  cJSON *o1 = cJSON_Parse("{\"x\":1}"), *o2 = cJSON_Parse("{\"x\":1}");
  /* member order does not matter (as in cJSON_Compare); escapes survive */
  cJSON *o3 = cJSON_Parse("{\"y\":[1.5,\"a\\\"b\\u0001\"],\"x\":{}}");
  cJSON *o4 = cJSON_Parse("{\"x\":{},\"y\":[1.5,\"a\\\"b\\u0001\"]}");
  assert_non_null(o3);
  assert_non_null(o4);
  /* 1 == 1.0; "1" is a string; nulls are skipped */
  struct sl_value vs[] = {
      sl_int(1), sl_float(1.0),  vstr("1"),     vstr("a"),      vstr("a"),
      SL_NULL,   sl_float(2.5),  sl_bool(true), sl_bool(false), vjson(o1),
      vjson(o2), sl_float(-0.0), sl_int(0),     vstr(""),       vstr(""),
      vjson(o3), vjson(o4)};
  /* distinct: 1, "1", "a", 2.5, true, false, {"x":1}, 0, "", o3 = 10 */
  for (size_t i = 0; i < SL_ARRAY_LEN(vs); i++)
    add_ok(p[0], 1, NULL, &vs[i], INT64_MIN);
  /* the other partial: 1.0 again, "b" and 3 are new */
  struct sl_value ws[] = {sl_float(1.0), vstr("b"), sl_int(3), vstr("a")};
  for (size_t i = 0; i < SL_ARRAY_LEN(ws); i++)
    add_ok(p[1], 2, NULL, &ws[i], INT64_MIN);
  /* a second window: 0..999 | 500..1499 -> 1500 (set growth, union) */
  for (int i = 0; i < 1000; i++) {
    struct sl_value a = sl_int(i), b = sl_float(500.0 + i);
    add_ok(p[0], 15, NULL, &a, INT64_MIN);
    add_ok(p[1], 15, NULL, &b, INT64_MIN);
  }
  struct rows r = {0};
  run_batch(s, p, 2, &r, true);
  const char *const want[] = {
      "{\"window_start\":0,\"window_end\":10,\"d\":12}",
      "{\"window_start\":10,\"window_end\":20,\"d\":1500}", NULL};
  rows_expect(&r, want);
  rows_free(&r);
  cJSON_Delete(o1);
  cJSON_Delete(o2);
  cJSON_Delete(o3);
  cJSON_Delete(o4);
  sl_wpartial_free(p[0]);
  sl_wpartial_free(p[1]);
  sl_wstate_free(s);
}

static void test_invalid_args(void **state) {
  (void)state;
  struct sl_window_spec sp = mkspec(100, 100, 0, SL_WINDOW_UPDATE, 1, K_NAMES,
                                    6, ALL_NAMES, ALL_KINDS, 1);
  struct sl_wpartial *p = sl_wpartial_new(&sp);
  struct sl_error err = {0};
  /* sum/avg need numbers: the record is refused before anything is added */
  assert_int_equal(add_all(p, 1, "a", vstr("x"), INT64_MIN, &err),
                   SL_ERR_INVAL);
  assert_non_null(strstr(err.msg, "sum"));
  assert_int_equal(add_all(p, 1, "a", sl_bool(true), INT64_MIN, &err),
                   SL_ERR_INVAL);
  /* validated before the lateness check: late and bad is an error */
  assert_int_equal(add_all(p, 1, "a", vstr("x"), 1000, &err), SL_ERR_INVAL);
  assert_int_equal(sl_wpartial_keys(p), 0);
  assert_int_equal(sl_wpartial_max_event(p), INT64_MIN);
  assert_int_equal(add_all(p, 1, "a", sl_int(1), 1000, &err), 1); /* late */
  assert_int_equal(sl_wpartial_keys(p), 0);
  sl_wpartial_free(p);
}

/* ---- lateness and batches --------------------------------------------------
 */

static void test_late_records(void **state) {
  (void)state;
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_APPEND, 0, NULL, 1, N_NAMES, N_KINDS, 1);
  struct sl_wpartial *p = sl_wpartial_new(&sp);
  struct sl_error err = {0};
  /* [10,20) ends at 20 <= watermark 20: closed */
  assert_int_equal(sl_wpartial_add(p, 19, NULL, NULL, 20, &err), 1);
  assert_int_equal(sl_wpartial_add(p, 10, NULL, NULL, 20, &err), 1);
  assert_int_equal(sl_wpartial_add(p, 20, NULL, NULL, 20, &err), 0);
  assert_int_equal(sl_wpartial_add(p, -5, NULL, NULL, INT64_MIN, &err), 0);
  assert_int_equal(sl_wpartial_keys(p), 2);
  sl_wpartial_free(p);

  /* hopping: a record is added to its windows that are still open */
  sp = mkspec(10, 5, 0, SL_WINDOW_APPEND, 0, NULL, 1, N_NAMES, N_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  p = sl_wpartial_new(&sp);
  assert_int_equal(sl_wpartial_add(p, 13, NULL, NULL, 12, &err), 0);
  assert_int_equal(sl_wpartial_add(p, 9, NULL, NULL, 12, &err), 0);
  assert_int_equal(sl_wpartial_add(p, 4, NULL, NULL, 12, &err), 1);
  assert_int_equal(sl_wpartial_max_event(p), 13);
  struct rows r = {0};
  run_batch(s, &p, 1, &r, true);
  const char *const want[] = {"{\"window_start\":5,\"window_end\":15,\"n\":2}",
                              "{\"window_start\":10,\"window_end\":20,\"n\":1}",
                              NULL};
  rows_expect(&r, want);
  rows_free(&r);
  sl_wpartial_free(p);

  /* a partial filled with an older watermark: the merge drops the
   * windows that already ended at the state's watermark (15) */
  p = sl_wpartial_new(&sp);
  assert_int_equal(sl_wpartial_add(p, 12, NULL, NULL, INT64_MIN, &err), 0);
  assert_int_equal(sl_wpartial_keys(p), 2); /* [5,15) [10,20) */
  sl_wstate_set_times(s, 25, 15);
  sl_wstate_merge_shard(s, 0, &p, 1);
  assert_int_equal(sl_wstate_windows(s), 1);
  run_batch(s, NULL, 0, &r, true);
  const char *const want2[] = {
      "{\"window_start\":10,\"window_end\":20,\"n\":1}", NULL};
  rows_expect(&r, want2);
  rows_free(&r);
  sl_wpartial_free(p);
  sl_wstate_free(s);
}

static const char *const NS_NAMES[] = {"n", "s"};
static const enum sl_agg_kind NS_KINDS[] = {SL_AGG_COUNT, SL_AGG_SUM};

/* A batch of records t = from..to step 1000 (sum of t), split over two
 * partials, using the state's watermark; late records must be none. */
static void batch_range(struct sl_wstate *s, int64_t from, int64_t to,
                        struct rows *out) {
  const struct sl_window_spec *sp = sl_wstate_spec(s);
  struct sl_wpartial *p[2] = {sl_wpartial_new(sp), sl_wpartial_new(sp)};
  int64_t wm = sl_wstate_watermark(s);
  int i = 0;
  for (int64_t t = from; t <= to; t += 1000, i++) {
    struct sl_value a[2] = {SL_NULL, sl_int(t)};
    add_ok(p[i & 1], t, NULL, a, wm);
  }
  run_batch(s, p, 2, out, false);
  sl_wpartial_free(p[0]);
  sl_wpartial_free(p[1]);
}

static void test_append_batches(void **state) {
  (void)state;
  /* tumbling 10 s, lateness 5 s, append; 4 shards */
  struct sl_window_spec sp = mkspec(10000, 10000, 5000, SL_WINDOW_APPEND, 0,
                                    NULL, 2, NS_NAMES, NS_KINDS, 4);
  struct sl_wstate *s = sl_wstate_new(&sp);
  size_t empty_bytes = sl_wstate_bytes(s);
  struct rows r = {0};
  assert_int_equal(sl_wstate_watermark(s), SL_WINDOW_NO_WATERMARK);

  /* batch 1: 1000..12000 -> wm 7000: no window has ended */
  batch_range(s, 1000, 12000, &r);
  assert_int_equal(sl_wstate_watermark(s), 7000);
  assert_int_equal(sl_wstate_max_event(s), 12000);
  assert_int_equal(r.n, 0);
  assert_int_equal(sl_wstate_windows(s), 2);
  size_t full_bytes = sl_wstate_bytes(s);
  assert_true(full_bytes > empty_bytes);

  /* batch 2: 13000..16000 -> wm 11000: [0,10000) is final, once */
  batch_range(s, 13000, 16000, &r);
  assert_int_equal(sl_wstate_watermark(s), 11000);
  const char *const want2[] = {
      "{\"window_start\":0,\"window_end\":10000,\"n\":9,\"s\":45000}", NULL};
  rows_expect(&r, want2);
  rows_free(&r);
  assert_int_equal(sl_wstate_windows(s), 1); /* evicted */
  assert_true(sl_wstate_bytes(s) < full_bytes);

  /* batch 3: 17000..25000 -> wm 20000: [10000,20000) */
  batch_range(s, 17000, 25000, &r);
  assert_int_equal(sl_wstate_watermark(s), 20000);
  const char *const want3[] = {
      "{\"window_start\":10000,\"window_end\":20000,\"n\":10,\"s\":145000}",
      NULL};
  rows_expect(&r, want3);
  rows_free(&r);
  assert_int_equal(sl_wstate_windows(s), 1);

  /* batch 4: 9000 and 19999 are late (their window ended at or before
   * 20000); 20000 is not. Nothing ends: nothing is emitted. */
  struct sl_wpartial *p = sl_wpartial_new(&sp);
  struct sl_error err = {0};
  struct sl_value a[2] = {SL_NULL, sl_int(9000)};
  assert_int_equal(sl_wpartial_add(p, 9000, NULL, a, 20000, &err), 1);
  a[1] = sl_int(19999);
  assert_int_equal(sl_wpartial_add(p, 19999, NULL, a, 20000, &err), 1);
  a[1] = sl_int(20000);
  assert_int_equal(sl_wpartial_add(p, 20000, NULL, a, 20000, &err), 0);
  run_batch(s, &p, 1, &r, false);
  sl_wpartial_free(p);
  assert_int_equal(r.n, 0);
  assert_int_equal(sl_wstate_watermark(s), 20000); /* max still 25000 */

  /* an empty batch changes nothing */
  run_batch(s, NULL, 0, &r, false);
  assert_int_equal(r.n, 0);

  /* end of input: the open window [20000,30000): 20000..25000 + 20000 */
  flush_all(s, &r);
  const char *const want5[] = {
      "{\"window_start\":20000,\"window_end\":30000,\"n\":7,\"s\":155000}",
      NULL};
  rows_expect(&r, want5);
  rows_free(&r);
  assert_int_equal(sl_wstate_windows(s), 0);
  assert_int_equal(sl_wstate_bytes(s), empty_bytes);
  flush_all(s, &r); /* nothing twice */
  assert_int_equal(r.n, 0);
  sl_wstate_free(s);
}

static void test_update_batches(void **state) {
  (void)state;
  struct sl_window_spec sp = mkspec(10000, 10000, 5000, SL_WINDOW_UPDATE, 0,
                                    NULL, 2, NS_NAMES, NS_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  struct rows r = {0};

  /* batch 1: both windows changed -> both emitted; wm 7000 */
  batch_range(s, 1000, 12000, &r);
  const char *const want1[] = {
      "{\"window_start\":0,\"window_end\":10000,\"n\":9,\"s\":45000}",
      "{\"window_start\":10000,\"window_end\":20000,\"n\":3,\"s\":33000}",
      NULL};
  rows_expect(&r, want1);
  rows_free(&r);
  assert_int_equal(sl_wstate_windows(s), 2);

  /* batch 2: only [10000,20000) changed; [0,10000) ends (wm 11000) and
   * goes without a row: its last value was emitted in batch 1 */
  batch_range(s, 13000, 16000, &r);
  const char *const want2[] = {
      "{\"window_start\":10000,\"window_end\":20000,\"n\":7,\"s\":91000}",
      NULL};
  rows_expect(&r, want2);
  rows_free(&r);
  assert_int_equal(sl_wstate_windows(s), 1);

  /* batch 3: both changed; [10000,20000) is emitted, then evicted */
  batch_range(s, 17000, 25000, &r);
  const char *const want3[] = {
      "{\"window_start\":10000,\"window_end\":20000,\"n\":10,\"s\":145000}",
      "{\"window_start\":20000,\"window_end\":30000,\"n\":6,\"s\":135000}",
      NULL};
  rows_expect(&r, want3);
  rows_free(&r);
  assert_int_equal(sl_wstate_windows(s), 1);

  /* batch 4: nothing changed, nothing emitted */
  run_batch(s, NULL, 0, &r, false);
  assert_int_equal(r.n, 0);

  /* flush: every window, changed or not */
  flush_all(s, &r);
  const char *const want5[] = {
      "{\"window_start\":20000,\"window_end\":30000,\"n\":6,\"s\":135000}",
      NULL};
  rows_expect(&r, want5);
  rows_free(&r);
  assert_int_equal(sl_wstate_windows(s), 0);
  sl_wstate_free(s);
}

/* ---- output order -----------------------------------------------------------
 */

static const char *const G2_NAMES[] = {"g", "h"};

static void order_run(struct rows *r, bool reverse, size_t nparts) {
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_UPDATE, 2, G2_NAMES, 1, N_NAMES, N_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  struct sl_wpartial *p[3];
  for (size_t i = 0; i < nparts; i++)
    p[i] = sl_wpartial_new(&sp);
  cJSON *arr = cJSON_Parse("[1]");
  struct sl_value gs[] = {
      vstr("b"),      sl_int(2),     vjson(arr),     vstr("B"), sl_float(1.5),
      SL_NULL,        sl_int(-5),    sl_bool(true),  vstr("a"), sl_int(1),
      sl_bool(false), sl_float(1.0), sl_float(1e300)};
  size_t n = SL_ARRAY_LEN(gs);
  for (size_t j = 0; j < n; j++) {
    size_t i = reverse ? n - 1 - j : j;
    /* window [10,20) for all; h orders ties of g */
    struct sl_value g[2] = {gs[i], sl_int((int64_t)(i % 2))};
    add_ok(p[j % nparts], 15, g, NULL, INT64_MIN);
    g[1] = sl_int(7);
    add_ok(p[(j + 1) % nparts], 15, g, NULL, INT64_MIN);
  }
  struct sl_value g[2] = {vstr("z"), SL_NULL};
  add_ok(p[0], 5, g, NULL, INT64_MIN); /* an earlier window comes first */
  run_batch(s, p, nparts, r, false);
  for (size_t i = 0; i < nparts; i++)
    sl_wpartial_free(p[i]);
  cJSON_Delete(arr);
  sl_wstate_free(s);
}

static void test_json_group_keys(void **state) {
  (void)state;
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_APPEND, 1, K_NAMES, 1, N_NAMES, N_KINDS, 1);
  struct sl_wstate *s = sl_wstate_new(&sp);
  struct sl_wpartial *p[2] = {sl_wpartial_new(&sp), sl_wpartial_new(&sp)};
  const char *texts[] = {"{\"b\":[2,{\"d\":1,\"c\":0.25}],\"a\":\"q\\\"\"}",
                         "{\"a\":\"q\\\"\",\"b\":[2,{\"c\":0.25,\"d\":1}]}",
                         "{\"a\":\"q\\\"\",\"b\":[{\"c\":0.25,\"d\":1},2]}",
                         "[1,2]", NULL};
  for (int i = 0; texts[i]; i++) {
    cJSON *j = cJSON_Parse(texts[i]);
    assert_non_null(j);
    struct sl_value g = vjson(j);
    add_ok(p[i & 1], 1, &g, NULL, INT64_MIN);
    cJSON_Delete(j); /* the partial keeps its own copy */
  }
  struct rows r = {0};
  run_batch(s, p, 2, &r, true);
  /* the first two are one key (members reordered); array order matters;
   * output has members in name order */
  const char *const want[] = {
      "{\"window_start\":0,\"window_end\":10,\"k\":[1,2],\"n\":1}",
      "{\"window_start\":0,\"window_end\":10,\"k\":{\"a\":\"q\\\"\",\"b\":"
      "[2,{\"c\":0.25,\"d\":1}]},\"n\":2}",
      "{\"window_start\":0,\"window_end\":10,\"k\":{\"a\":\"q\\\"\",\"b\":"
      "[{\"c\":0.25,\"d\":1},2]},\"n\":1}",
      NULL};
  rows_expect(&r, want);
  rows_free(&r);
  sl_wpartial_free(p[0]);
  sl_wpartial_free(p[1]);
  sl_wstate_free(s);
}

static void test_deterministic_order(void **state) {
  (void)state;
  struct rows a = {0}, b = {0};
  order_run(&a, false, 1);
  order_run(&b, true, 3);
  rows_equal(&a, &b);
  /* null < false < true < numbers < strings < JSON; 1 == 1.0 is one key
   * (index 9 and 11: h 1 and 1 -> one row with n 2 beside h 7) */
  const char *const want[] = {
      "{\"window_start\":0,\"window_end\":10,\"g\":\"z\",\"h\":null,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":null,\"h\":1,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":null,\"h\":7,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":false,\"h\":0,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":false,\"h\":7,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":true,\"h\":1,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":true,\"h\":7,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":-5,\"h\":0,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":-5,\"h\":7,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":1,\"h\":1,\"n\":2}",
      "{\"window_start\":10,\"window_end\":20,\"g\":1,\"h\":7,\"n\":2}",
      "{\"window_start\":10,\"window_end\":20,\"g\":1.5,\"h\":0,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":1.5,\"h\":7,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":2,\"h\":1,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":2,\"h\":7,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":1e+300,\"h\":0,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":1e+300,\"h\":7,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":\"B\",\"h\":1,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":\"B\",\"h\":7,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":\"a\",\"h\":0,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":\"a\",\"h\":7,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":\"b\",\"h\":0,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":\"b\",\"h\":7,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":[1],\"h\":0,\"n\":1}",
      "{\"window_start\":10,\"window_end\":20,\"g\":[1],\"h\":7,\"n\":1}",
      NULL};
  rows_expect(&a, want);
  rows_free(&a);
  rows_free(&b);
}

/* ---- snapshots --------------------------------------------------------------
 */

static const char *const KJ_NAMES[] = {"k", "j"};

/* A state with every aggregate, string/int/JSON keys, hopping windows. */
static struct sl_window_spec snap_spec(unsigned shards) {
  return mkspec(20, 10, 5, SL_WINDOW_UPDATE, 2, KJ_NAMES, 6, ALL_NAMES,
                ALL_KINDS, shards);
}

static void snap_fill(struct sl_wstate *s, int64_t t0, int n) {
  const struct sl_window_spec *sp = sl_wstate_spec(s);
  struct sl_wpartial *p[2] = {sl_wpartial_new(sp), sl_wpartial_new(sp)};
  cJSON *obj = cJSON_Parse("{\"a\":[1,2],\"b\":\"x\"}");
  int64_t wm = sl_wstate_watermark(s);
  for (int i = 0; i < n; i++) {
    char k[16];
    snprintf(k, sizeof(k), "key-%d", i % 7);
    struct sl_value g[2] = {vstr(k), i % 5 == 0   ? vjson(obj)
                                     : i % 5 == 1 ? SL_NULL
                                                  : sl_int(i % 3)};
    struct sl_value x = i % 4 == 0 ? sl_float(i / 4.0) : sl_int(i);
    if (i % 11 == 0)
      x = SL_NULL;
    struct sl_value a[6] = {SL_NULL, x, x, x, x, x};
    /* min/max over strings for key-6: every value a string there */
    char sv[16];
    if (i % 7 == 6) {
      snprintf(sv, sizeof(sv), "v%03d", (i * 37) % 101);
      a[2] = a[3] = a[5] = vstr(sv);
    }
    struct sl_error err = {0};
    int rc = sl_wpartial_add(p[i & 1], t0 + i % 40, g, a, wm, &err);
    if (rc < 0)
      fail_msg("snap_fill: %s", err.msg);
  }
  run_batch(s, p, 2, NULL, false);
  sl_wpartial_free(p[0]);
  sl_wpartial_free(p[1]);
  cJSON_Delete(obj);
}

/* Serializes every shard of from and restores it into a new state. */
static struct sl_wstate *snap_copy(struct sl_wstate *from) {
  const struct sl_window_spec *sp = sl_wstate_spec(from);
  struct sl_wstate *to = sl_wstate_new(sp);
  for (unsigned k = 0; k < sp->shards; k++) {
    void *img = NULL;
    size_t len = 0;
    struct sl_error err = {0};
    assert_int_equal(sl_wstate_shard_serialize(from, k, &img, &len, &err), 0);
    assert_false(sl_wstate_shard_dirty(from, k));
    int rc = sl_wstate_shard_restore(to, k, img, len, &err);
    if (rc)
      fail_msg("restore shard %u: %s", k, err.msg);
    assert_false(sl_wstate_shard_dirty(to, k));
    free(img);
  }
  sl_wstate_set_times(to, sl_wstate_max_event(from), sl_wstate_watermark(from));
  return to;
}

static void test_snapshot_roundtrip(void **state) {
  (void)state;
  struct sl_window_spec sp = snap_spec(8);
  struct sl_wstate *a = sl_wstate_new(&sp);
  snap_fill(a, 1000, 400);
  assert_true(sl_wstate_windows(a) > 20);
  struct sl_wstate *b = snap_copy(a);
  assert_int_equal(sl_wstate_windows(b), sl_wstate_windows(a));
  assert_true(sl_wstate_bytes(b) > sl_wstate_bytes(a) / 2);
  assert_int_equal(sl_wstate_watermark(b), sl_wstate_watermark(a));
  assert_int_equal(sl_wstate_max_event(b), sl_wstate_max_event(a));
  struct sl_wstate *c = snap_copy(b); /* twice */

  /* both continue alike: another batch, then the end of input */
  struct rows ra = {0}, rb = {0}, rc = {0};
  snap_fill(a, 1030, 300);
  snap_fill(b, 1030, 300);
  snap_fill(c, 1030, 300);
  assert_int_equal(sl_wstate_windows(b), sl_wstate_windows(a));
  flush_all(a, &ra);
  flush_all(b, &rb);
  flush_all(c, &rc);
  assert_true(ra.n > 20);
  rows_equal(&ra, &rb);
  rows_equal(&ra, &rc);
  rows_free(&ra);
  rows_free(&rb);
  rows_free(&rc);
  sl_wstate_free(a);
  sl_wstate_free(b);
  sl_wstate_free(c);

  /* an empty state round-trips too */
  a = sl_wstate_new(&sp);
  b = snap_copy(a);
  assert_int_equal(sl_wstate_windows(b), 0);
  sl_wstate_free(a);
  sl_wstate_free(b);
}

static void test_dirty_flags(void **state) {
  (void)state;
  struct sl_window_spec sp =
      mkspec(10, 10, 0, SL_WINDOW_APPEND, 1, K_NAMES, 1, N_NAMES, N_KINDS, 4);
  struct sl_wstate *s = sl_wstate_new(&sp);
  for (unsigned k = 0; k < 4; k++)
    assert_false(sl_wstate_shard_dirty(s, k));
  /* one key: one shard changes */
  struct sl_wpartial *p = sl_wpartial_new(&sp);
  struct sl_value g = vstr("only");
  add_ok(p, 5, &g, NULL, INT64_MIN);
  for (unsigned k = 0; k < 4; k++)
    sl_wstate_merge_shard(s, k, &p, 1);
  unsigned dirty = 0, which = 0;
  for (unsigned k = 0; k < 4; k++)
    if (sl_wstate_shard_dirty(s, k))
      dirty++, which = k;
  assert_int_equal(dirty, 1);
  sl_wstate_advance(s, &p, 1); /* wm 5: nothing ends */
  sl_wpartial_free(p);
  void *img = NULL, *img2 = NULL;
  size_t len = 0, len2 = 0;
  struct sl_error err = {0};
  assert_int_equal(sl_wstate_shard_serialize(s, which, &img, &len, &err), 0);
  assert_false(sl_wstate_shard_dirty(s, which));
  /* an emit that evicts nothing leaves the shards clean */
  struct rows r = {0};
  for (unsigned k = 0; k < 4; k++)
    sl_wstate_emit_shard(s, k, false, collect, &r);
  assert_int_equal(r.n, 0);
  for (unsigned k = 0; k < 4; k++)
    assert_false(sl_wstate_shard_dirty(s, k));
  /* eviction dirties */
  sl_wstate_set_times(s, 10, 10);
  for (unsigned k = 0; k < 4; k++)
    sl_wstate_emit_shard(s, k, false, collect, &r);
  assert_int_equal(r.n, 1);
  rows_free(&r);
  assert_true(sl_wstate_shard_dirty(s, which));
  assert_int_equal(sl_wstate_windows(s), 0);
  assert_int_equal(sl_wstate_shard_serialize(s, which, &img2, &len2, &err), 0);
  assert_false(sl_wstate_shard_dirty(s, which));
  /* restoring the earlier image brings the window back, clean */
  assert_int_equal(sl_wstate_shard_restore(s, which, img, len, &err), 0);
  assert_false(sl_wstate_shard_dirty(s, which));
  assert_int_equal(sl_wstate_windows(s), 1);
  /* and the empty one empties it again */
  assert_int_equal(sl_wstate_shard_restore(s, which, img2, len2, &err), 0);
  assert_int_equal(sl_wstate_windows(s), 0);
  free(img);
  free(img2);
  sl_wstate_free(s);
}

/* An image of raw bytes with a valid frame (header, lz4, crc), to reach
 * the parser with damaged content. */
static void *frame(const unsigned char *raw, size_t n, size_t *len) {
  int bound = LZ4_compressBound((int)n);
  unsigned char *img = malloc(24 + (size_t)bound);
  assert_non_null(img);
  int c =
      LZ4_compress_default((const char *)raw, (char *)img + 24, (int)n, bound);
  assert_true(c > 0);
  uint32_t crc = (uint32_t)crc32(0L, raw, (uInt)n);
  memcpy(img, "SLWZ", 4);
  for (int i = 0; i < 4; i++) {
    img[4 + i] = (unsigned char)(1u >> (8 * i));
    img[16 + i] = (unsigned char)(crc >> (8 * i));
    img[20 + i] = 0;
  }
  for (int i = 0; i < 8; i++)
    img[8 + i] = (unsigned char)((uint64_t)n >> (8 * i));
  *len = 24 + (size_t)c;
  return img;
}

static unsigned char *unframe(const unsigned char *img, size_t len, size_t *n) {
  uint64_t raw = 0;
  for (int i = 0; i < 8; i++)
    raw |= (uint64_t)img[8 + i] << (8 * i);
  unsigned char *out = malloc(raw);
  assert_non_null(out);
  int d = LZ4_decompress_safe((const char *)img + 24, (char *)out,
                              (int)(len - 24), (int)raw);
  assert_int_equal(d, (int)raw);
  *n = raw;
  return out;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Restores buf into shard 0 of s (which holds `held` windows): must be
 * SL_ERR_CORRUPT and leave the shard as it was, or succeed (fuzzing) with
 * a state that can still be emitted. */
static void expect_corrupt(struct sl_wstate *s, size_t held, const void *buf,
                           size_t len, bool may_pass) {
  struct sl_error err = {0};
  int rc = sl_wstate_shard_restore(s, 0, buf, len, &err);
  if (rc == 0 && may_pass)
    return;
  if (rc != SL_ERR_CORRUPT)
    fail_msg("restore of a bad image: rc %d (%s), len %zu", rc, err.msg, len);
  assert_true(err.msg[0] != '\0');
  assert_int_equal(sl_wstate_windows(s), held);
}

static void test_corrupt_images(void **state) {
  (void)state;
  struct sl_window_spec sp = snap_spec(1);
  struct sl_wstate *a = sl_wstate_new(&sp);
  snap_fill(a, 1000, 200);
  void *img = NULL;
  size_t len = 0;
  struct sl_error err = {0};
  assert_int_equal(sl_wstate_shard_serialize(a, 0, &img, &len, &err), 0);
  struct rows want = {0};
  {
    struct sl_wstate *ref = snap_copy(a);
    flush_all(ref, &want);
    sl_wstate_free(ref);
  }
  /* the target holds a state of its own that a failure must not touch */
  struct sl_wstate *t = sl_wstate_new(&sp);
  snap_fill(t, 5000, 30);
  size_t held = sl_wstate_windows(t);
  unsigned char *buf = malloc(len);
  assert_non_null(buf);

  /* every truncation */
  for (size_t n = 0; n < len; n++)
    expect_corrupt(t, held, img, n, false);
  expect_corrupt(t, held, NULL, 0, false);

  /* every byte flipped: the header always fails; in the lz4 data a flip
   * may, rarely, decode to the same bytes (a match offset into equal
   * data), which is then the same state */
  for (size_t i = 0; i < len; i++) {
    memcpy(buf, img, len);
    buf[i] ^= 0x5a;
    struct sl_wstate *u = sl_wstate_new(&sp);
    int rc = sl_wstate_shard_restore(u, 0, buf, len, &err);
    if (i < 24 || rc != 0) {
      assert_int_equal(rc, SL_ERR_CORRUPT);
    } else {
      struct rows got = {0};
      sl_wstate_set_times(u, sl_wstate_max_event(a), sl_wstate_watermark(a));
      flush_all(u, &got);
      rows_equal(&got, &want);
      rows_free(&got);
    }
    sl_wstate_free(u);
  }

  /* random garbage, and garbage behind a valid magic and version */
  for (int i = 0; i < 3000; i++) {
    size_t n = rng() % 600;
    unsigned char g[600];
    for (size_t j = 0; j < n; j++)
      g[j] = (unsigned char)rng();
    if (i % 2 && n >= 8)
      memcpy(g, "SLWZ\x01\0\0\0", 8);
    expect_corrupt(t, held, g, n, false);
  }

  /* a valid frame around damaged content: reaches every parser check */
  size_t rawlen = 0;
  unsigned char *raw = unframe(img, len, &rawlen);
  for (size_t n = 0; n < rawlen; n++) { /* every truncation of the content */
    size_t flen;
    void *f = frame(raw, n, &flen);
    expect_corrupt(t, held, f, flen, false);
    free(f);
  }
  {
    unsigned char *longer = malloc(rawlen + 1); /* trailing byte */
    memcpy(longer, raw, rawlen);
    longer[rawlen] = 0;
    size_t flen;
    void *f = frame(longer, rawlen + 1, &flen);
    expect_corrupt(t, held, f, flen, false);
    free(f);
    free(longer);
  }
  unsigned char *mut = malloc(rawlen);
  for (int i = 0; i < 4000; i++) { /* 1 to 4 random bytes changed */
    memcpy(mut, raw, rawlen);
    int k = 1 + (int)(rng() % 4);
    for (int j = 0; j < k; j++) {
      size_t at = rng() % rawlen;
      mut[at] = (unsigned char)(i & 1 ? rng() : mut[at] ^ (1u << (rng() % 8)));
    }
    size_t flen;
    void *f = frame(mut, rawlen, &flen);
    struct sl_wstate *u = sl_wstate_new(&sp);
    snap_fill(u, 5000, 30);
    expect_corrupt(u, held, f, flen, true);
    flush_all(u, NULL); /* whatever was restored must emit and free */
    sl_wstate_free(u);
    free(f);
  }
  free(mut);
  free(raw);

  /* after all that the target still emits its own rows */
  struct rows got = {0};
  flush_all(t, &got);
  assert_true(got.n > 0);
  rows_free(&got);
  rows_free(&want);
  free(buf);
  free(img);
  sl_wstate_free(t);
  sl_wstate_free(a);
}

static void test_wrong_spec(void **state) {
  (void)state;
  struct sl_window_spec sp = snap_spec(2);
  struct sl_wstate *a = sl_wstate_new(&sp);
  snap_fill(a, 1000, 100);
  void *img = NULL;
  size_t len = 0;
  struct sl_error err = {0};
  assert_int_equal(sl_wstate_shard_serialize(a, 0, &img, &len, &err), 0);

  static const enum sl_agg_kind other_kinds[] = {
      SL_AGG_COUNT, SL_AGG_SUM, SL_AGG_MIN,
      SL_AGG_MAX,   SL_AGG_SUM, SL_AGG_COUNT_DISTINCT};
  struct sl_window_spec bad[5];
  for (int i = 0; i < 5; i++)
    bad[i] = sp;
  bad[0].size_ms = 30;
  bad[1].slide_ms = 20;
  bad[2].agg_kinds = other_kinds;
  bad[3].ngroups = 1;
  bad[4].shards = 4;
  for (int i = 0; i < 5; i++) {
    struct sl_wstate *b = sl_wstate_new(&bad[i]);
    assert_non_null(b);
    assert_int_equal(sl_wstate_shard_restore(b, 0, img, len, &err),
                     SL_ERR_CORRUPT);
    assert_non_null(strstr(err.msg, "different window definition"));
    sl_wstate_free(b);
  }
  /* the right definition, the wrong shard */
  struct sl_wstate *b = sl_wstate_new(&sp);
  assert_int_equal(sl_wstate_shard_restore(b, 1, img, len, &err),
                   SL_ERR_CORRUPT);
  assert_non_null(strstr(err.msg, "image is of shard 0"));
  /* lateness and mode are not part of the state */
  sp.lateness_ms = 999;
  sp.mode = SL_WINDOW_APPEND;
  struct sl_wstate *c = sl_wstate_new(&sp);
  assert_int_equal(sl_wstate_shard_restore(c, 0, img, len, &err), 0);
  sl_wstate_free(c);
  sl_wstate_free(b);
  free(img);
  sl_wstate_free(a);
}

/* ---- concurrency ------------------------------------------------------------
 */

#define CC_THREADS 4
#define CC_SHARDS  8
#define CC_PARTS   4

struct cc_arg {
  struct sl_wstate *s;
  struct sl_wpartial **parts;
  unsigned first;
  int phase; /* 0 merge, 1 emit + serialize */
  size_t rows;
  double total;
  size_t images;
};

static void cc_emit(cJSON *row, void *arg) {
  struct cc_arg *a = arg;
  a->rows++;
  a->total += cJSON_GetObjectItem(row, "n")->valuedouble;
  cJSON_Delete(row);
}

static void *cc_thread(void *p) {
  struct cc_arg *a = p;
  for (unsigned k = a->first; k < CC_SHARDS; k += CC_THREADS) {
    if (a->phase == 0) {
      sl_wstate_merge_shard(a->s, k, a->parts, CC_PARTS);
      (void)sl_wstate_bytes(a->s); /* readable while others merge */
    } else {
      sl_wstate_emit_shard(a->s, k, false, cc_emit, a);
      void *img;
      size_t len;
      struct sl_error err = {0};
      if (sl_wstate_shard_serialize(a->s, k, &img, &len, &err) == 0) {
        a->images++;
        free(img);
      }
    }
  }
  return NULL;
}

static void test_concurrent_merge(void **state) {
  (void)state;
  static const char *const g[] = {"k"};
  struct sl_window_spec sp = mkspec(1000, 1000, 0, SL_WINDOW_UPDATE, 1, g, 1,
                                    N_NAMES, N_KINDS, CC_SHARDS);
  struct sl_wstate *s = sl_wstate_new(&sp), *ref = sl_wstate_new(&sp);
  struct sl_wpartial *parts[CC_PARTS];
  /* each partial: 20000 records over keys j*5000 .. j*5000+19999 in two
   * windows: overlapping keys across partials */
  for (int j = 0; j < CC_PARTS; j++) {
    parts[j] = sl_wpartial_new(&sp);
    for (int i = 0; i < 20000; i++) {
      struct sl_value k = sl_int(j * 5000 + i);
      add_ok(parts[j], i % 2 ? 100 : 1100, &k, NULL, INT64_MIN);
    }
  }
  /* keys 0..34999; each (key, window) pair appears once per partial that
   * holds the key with that parity */
  pthread_t th[CC_THREADS];
  struct cc_arg args[CC_THREADS];
  for (int phase = 0; phase < 2; phase++) {
    if (phase == 1)
      sl_wstate_advance(s, parts, CC_PARTS);
    for (unsigned t = 0; t < CC_THREADS; t++) {
      args[t] =
          (struct cc_arg){.s = s, .parts = parts, .first = t, .phase = phase};
      assert_int_equal(pthread_create(&th[t], NULL, cc_thread, &args[t]), 0);
    }
    for (unsigned t = 0; t < CC_THREADS; t++)
      pthread_join(th[t], NULL);
    if (phase == 0)
      assert_int_equal(sl_wstate_windows(s), 35000);
  }
  size_t rows = 0, images = 0;
  double total = 0;
  for (unsigned t = 0; t < CC_THREADS; t++) {
    rows += args[t].rows;
    total += args[t].total;
    images += args[t].images;
  }
  assert_int_equal(rows, 35000);
  assert_true(total == 80000.0);
  assert_int_equal(images, CC_SHARDS);
  /* the same as a single-threaded merge */
  struct rows r1 = {0};
  run_batch(ref, parts, CC_PARTS, &r1, false);
  assert_int_equal(r1.n, 35000);
  assert_int_equal(sl_wstate_windows(ref), sl_wstate_windows(s));
  assert_int_equal(sl_wstate_bytes(ref), sl_wstate_bytes(s));
  rows_free(&r1);
  for (int j = 0; j < CC_PARTS; j++)
    sl_wpartial_free(parts[j]);
  sl_wstate_free(s);
  sl_wstate_free(ref);
}

/* ---- scale ------------------------------------------------------------------
 */

struct count_arg {
  size_t rows;
  double total;
};

static void count_emit(cJSON *row, void *arg) {
  struct count_arg *c = arg;
  c->rows++;
  c->total += cJSON_GetObjectItem(row, "n")->valuedouble;
  cJSON_Delete(row);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_million_keys(void **state) {
  (void)state;
  static const char *const g[] = {"user"};
  struct sl_window_spec sp =
      mkspec(60000, 60000, 0, SL_WINDOW_APPEND, 1, g, 1, N_NAMES, N_KINDS, 8);
  struct sl_wstate *s = sl_wstate_new(&sp);
  enum { PARTS = 4, PER = 250000 };
  struct sl_wpartial *parts[PARTS];
  for (int j = 0; j < PARTS; j++) {
    parts[j] = sl_wpartial_new(&sp);
    for (int i = 0; i < PER; i++) {
      struct sl_value k = sl_int((int64_t)j * PER + i);
      add_ok(parts[j], 1000 + i % 50000, &k, NULL, INT64_MIN);
    }
    /* a few repeated keys: merged into existing entries */
    for (int i = 0; i < 1000; i++) {
      struct sl_value k = sl_int(i);
      add_ok(parts[j], 2000, &k, NULL, INT64_MIN);
    }
    assert_int_equal(sl_wpartial_keys(parts[j]), j == 0 ? PER : PER + 1000);
  }
  double t0 = now_s();
  for (unsigned k = 0; k < 8; k++)
    sl_wstate_merge_shard(s, k, parts, PARTS);
  double t1 = now_s();
  print_message("merge of 1M keys into 8 shards: %.3f s (one thread)\n",
                t1 - t0);
  assert_int_equal(sl_wstate_windows(s), 1000000);
  assert_true(sl_wstate_bytes(s) > 1000000 * 32);
  sl_wstate_advance(s, parts, PARTS);
  for (int j = 0; j < PARTS; j++)
    sl_wpartial_free(parts[j]);
  struct count_arg c = {0};
  for (unsigned k = 0; k < 8; k++)
    sl_wstate_emit_shard(s, k, true, count_emit, &c);
  assert_int_equal(c.rows, 1000000);
  assert_true(c.total == 1000000.0 + 4000.0);
  assert_int_equal(sl_wstate_windows(s), 0);
  sl_wstate_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec_check),
      cmocka_unit_test(test_tumbling_assignment),
      cmocka_unit_test(test_hopping_assignment),
      cmocka_unit_test(test_event_time_range),
      cmocka_unit_test(test_aggregates),
      cmocka_unit_test(test_sum_overflow),
      cmocka_unit_test(test_minmax),
      cmocka_unit_test(test_count_distinct),
      cmocka_unit_test(test_invalid_args),
      cmocka_unit_test(test_late_records),
      cmocka_unit_test(test_append_batches),
      cmocka_unit_test(test_update_batches),
      cmocka_unit_test(test_json_group_keys),
      cmocka_unit_test(test_deterministic_order),
      cmocka_unit_test(test_snapshot_roundtrip),
      cmocka_unit_test(test_dirty_flags),
      cmocka_unit_test(test_corrupt_images),
      cmocka_unit_test(test_wrong_spec),
      cmocka_unit_test(test_concurrent_merge),
      cmocka_unit_test(test_million_keys),
      cmocka_unit_test(test_partial_emit_for_merge),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
