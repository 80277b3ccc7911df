/*
 * test_expr.c - the expression language: lexing, precedence, every operator
 * and function, three-valued logic and nulls, fields and metadata, static
 * and run-time errors with their messages and columns, constant folding,
 * and a fuzz loop over garbage and mutated expressions (run under ASan).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/expr.h"
#include "src/util.h"
#include "src/value.h"

/* ---- helpers ------------------------------------------------------------ */

/* The last expression, row and arena stay alive until the next evaluation
 * (or teardown) because a result may point into any of them. */
static struct sl_expr *g_expr;
static cJSON *g_row;
static struct sl_arena g_arena;
static const struct sl_record *g_rec;
static sl_header_fn g_header;

static const struct sl_record fake_rec = {
    .key = "k1xx", /* key_len 2: not NUL-terminated in general */
    .key_len = 2,
    .value = "{}",
    .value_len = 2,
    .topic = "events",
    .partition = 3,
    .offset = 42,
    .timestamp = 1700000000000LL,
};

static int fake_header(const struct sl_record *rec, const char *name,
                       const char **value, size_t *len) {
  (void)rec;
  if (!strcmp(name, "trace")) {
    *value = "abc-123";
    *len = 3; /* only "abc" */
    return 0;
  }
  if (!strcmp(name, "empty")) {
    *value = "";
    *len = 0;
    return 0;
  }
  if (!strcmp(name, "content-type")) {
    *value = "json";
    *len = 4;
    return 0;
  }
  return -1;
}

static void release(void) {
  sl_expr_free(g_expr);
  g_expr = NULL;
  cJSON_Delete(g_row);
  g_row = NULL;
  sl_arena_reset(&g_arena);
}

static int teardown(void **state) {
  (void)state;
  release();
  sl_arena_free(&g_arena);
  g_rec = NULL;
  g_header = NULL;
  return 0;
}

/* Parses src (must succeed), evaluates it on row (JSON text or NULL for a
 * raw record); returns the rc and fills *v or msg. */
static int run(const char *src, const char *row, struct sl_value *v, char *msg,
               size_t cap, int line) {
  struct sl_error err = {0};
  int col = -1;
  release();
  g_expr = sl_expr_parse(src, &col, &err);
  if (!g_expr)
    fail_msg("line %d: `%s` did not parse: %s", line, src, err.msg);
  if (row) {
    g_row = cJSON_Parse(row);
    if (!g_row)
      fail_msg("line %d: bad test row %s", line, row);
  }
  struct sl_eval_ctx ctx = {.row = g_row,
                            .rec = g_rec,
                            .header = g_header,
                            .arena = &g_arena,
                            .now_ms = 1234567};
  int rc = sl_expr_eval(g_expr, &ctx, v, &err);
  if (msg)
    snprintf(msg, cap, "%s", rc ? err.msg : "");
  return rc;
}

static const char *show(const struct sl_value *v) {
  static char buf[256];
  switch (v->type) {
  case SL_V_NULL:
    return "null";
  case SL_V_BOOL:
    return v->u.b ? "true" : "false";
  case SL_V_INT:
    snprintf(buf, sizeof(buf), "int %lld", (long long)v->u.i);
    return buf;
  case SL_V_FLOAT:
    snprintf(buf, sizeof(buf), "float %.17g", v->u.f);
    return buf;
  case SL_V_STR:
    snprintf(buf, sizeof(buf), "string \"%.*s\"", (int)v->u.s.n, v->u.s.p);
    return buf;
  case SL_V_JSON:
    return "json";
  }
  return "?";
}

static struct sl_value eval_ok(const char *src, const char *row, int line) {
  struct sl_value v;
  char msg[1024];
  if (run(src, row, &v, msg, sizeof(msg), line) != 0)
    fail_msg("line %d: `%s` failed: %s", line, src, msg);
  return v;
}

#define ROW_NONE NULL

#define EXPECT_INT(src, row, want)                                             \
  do {                                                                         \
    struct sl_value v_ = eval_ok(src, row, __LINE__);                          \
    if (v_.type != SL_V_INT || v_.u.i != (int64_t)(want))                      \
      fail_msg("line %d: `%s` gave %s, want int %lld", __LINE__, src,          \
               show(&v_), (long long)(want));                                  \
  } while (0)

#define EXPECT_FLOAT(src, row, want)                                           \
  do {                                                                         \
    struct sl_value v_ = eval_ok(src, row, __LINE__);                          \
    if (v_.type != SL_V_FLOAT || v_.u.f != (double)(want))                     \
      fail_msg("line %d: `%s` gave %s, want float %.17g", __LINE__, src,       \
               show(&v_), (double)(want));                                     \
  } while (0)

#define EXPECT_STR(src, row, want)                                             \
  do {                                                                         \
    struct sl_value v_ = eval_ok(src, row, __LINE__);                          \
    size_t n_ = strlen(want);                                                  \
    if (v_.type != SL_V_STR || v_.u.s.n != n_ ||                               \
        (n_ && memcmp(v_.u.s.p, want, n_)))                                    \
      fail_msg("line %d: `%s` gave %s, want \"%s\"", __LINE__, src, show(&v_), \
               want);                                                          \
  } while (0)

#define EXPECT_BOOL(src, row, want)                                            \
  do {                                                                         \
    struct sl_value v_ = eval_ok(src, row, __LINE__);                          \
    if (v_.type != SL_V_BOOL || v_.u.b != (want))                              \
      fail_msg("line %d: `%s` gave %s, want %s", __LINE__, src, show(&v_),     \
               (want) ? "true" : "false");                                     \
  } while (0)

#define EXPECT_NULL(src, row)                                                  \
  do {                                                                         \
    struct sl_value v_ = eval_ok(src, row, __LINE__);                          \
    if (v_.type != SL_V_NULL)                                                  \
      fail_msg("line %d: `%s` gave %s, want null", __LINE__, src, show(&v_));  \
  } while (0)

/* A record-level error whose message is exactly want. */
#define EXPECT_EVAL_ERR(src, row, want)                                        \
  do {                                                                         \
    struct sl_value v_;                                                        \
    char m_[1024];                                                             \
    int rc_ = run(src, row, &v_, m_, sizeof(m_), __LINE__);                    \
    if (rc_ != SL_ERR_INVAL || strcmp(m_, want))                               \
      fail_msg("line %d: `%s` gave rc %d \"%s\", want error \"%s\"", __LINE__, \
               src, rc_, m_, want);                                            \
    if (v_.type != SL_V_NULL)                                                  \
      fail_msg("line %d: an error left a value", __LINE__);                    \
  } while (0)

/* A parse error: SL_ERR_CONFIG, "column C: msg" and *err_col == C. */
#define EXPECT_PARSE_ERR(src, col, msg)                                        \
  expect_parse_err(src, col, msg, __LINE__)

static void expect_parse_err(const char *src, int col, const char *msg,
                             int line) {
  struct sl_error err = {0};
  int got_col = -1;
  char want[1200];
  struct sl_expr *e = sl_expr_parse(src, &got_col, &err);
  if (e) {
    sl_expr_free(e);
    fail_msg("line %d: `%s` parsed, want error \"%s\"", line, src, msg);
  }
  snprintf(want, sizeof(want), "column %d: %s", col, msg);
  if (err.code != SL_ERR_CONFIG || got_col != col || strcmp(err.msg, want))
    fail_msg("line %d: `%s` gave code %d col %d \"%s\", want \"%s\"", line, src,
             err.code, got_col, err.msg, want);
}

static int static_type(const char *src) {
  struct sl_error err;
  struct sl_expr *e = sl_expr_parse(src, NULL, &err);
  if (!e)
    fail_msg("`%s` did not parse: %s", src, err.msg);
  int t = sl_expr_static_type(e);
  sl_expr_free(e);
  return t;
}

/* ---- literals and lexing --------------------------------------------------
 */

static void test_literals(void **state) {
  (void)state;
  EXPECT_INT("42", ROW_NONE, 42);
  EXPECT_INT("-7", ROW_NONE, -7);
  EXPECT_INT("007", ROW_NONE, 7);
  EXPECT_INT("9223372036854775807", ROW_NONE, INT64_MAX);
  EXPECT_INT("-9223372036854775808", ROW_NONE, INT64_MIN);
  EXPECT_INT("- 9223372036854775808 + 1", ROW_NONE, INT64_MIN + 1);
  EXPECT_FLOAT("3.14", ROW_NONE, 3.14);
  EXPECT_FLOAT("1e3", ROW_NONE, 1000.0);
  EXPECT_FLOAT("2.5E-1", ROW_NONE, 0.25);
  EXPECT_FLOAT("1e+2", ROW_NONE, 100.0);
  EXPECT_FLOAT("-0.5", ROW_NONE, -0.5);
  EXPECT_STR("\"text\"", ROW_NONE, "text");
  EXPECT_STR("'text'", ROW_NONE, "text");
  EXPECT_STR("''", ROW_NONE, "");
  EXPECT_STR("'it\\'s'", ROW_NONE, "it's");
  EXPECT_STR("\"say \\\"hi\\\"\"", ROW_NONE, "say \"hi\"");
  EXPECT_STR("'a\"b'", ROW_NONE, "a\"b");
  EXPECT_STR("\"a'b\"", ROW_NONE, "a'b");
  EXPECT_STR("'a\\\\b\\nc\\td\\re\\/'", ROW_NONE, "a\\b\nc\td\re/");
  EXPECT_BOOL("true", ROW_NONE, true);
  EXPECT_BOOL("false", ROW_NONE, false);
  EXPECT_NULL("null", ROW_NONE);
  EXPECT_INT("  \t\n 5 \r\n", ROW_NONE, 5);
  /* Raw UTF-8 passes through; a string literal may hold any bytes. */
  EXPECT_STR("'h\xc3\xa9llo'", ROW_NONE, "h\xc3\xa9llo");
}

static void test_unicode_escapes(void **state) {
  (void)state;
  EXPECT_STR("'\\u0041'", ROW_NONE, "A");
  EXPECT_STR("'\\u00e9'", ROW_NONE, "\xc3\xa9");
  EXPECT_STR("'\\u00E9t\\u00e9'", ROW_NONE, "\xc3\xa9t\xc3\xa9");
  EXPECT_STR("'\\u20ac'", ROW_NONE, "\xe2\x82\xac");
  EXPECT_STR("'\\uffff'", ROW_NONE, "\xef\xbf\xbf");
  /* A surrogate pair is one 4-byte code point (U+1F600). */
  EXPECT_STR("'\\ud83d\\ude00'", ROW_NONE, "\xf0\x9f\x98\x80");
  EXPECT_INT("len('\\ud83d\\ude00')", ROW_NONE, 4);
  EXPECT_BOOL("x == '\\u00e9'", "{\"x\":\"\\u00e9\"}", true);
  EXPECT_PARSE_ERR("'\\ud83d'", 2, "invalid \\u escape: unpaired surrogate");
  EXPECT_PARSE_ERR("'\\ude00'", 2, "invalid \\u escape: unpaired surrogate");
  EXPECT_PARSE_ERR("'\\ud83d\\u0041'", 2,
                   "invalid \\u escape: unpaired surrogate");
  EXPECT_PARSE_ERR("'ab\\u12'", 4, "invalid \\u escape: expected 4 hex digits");
  EXPECT_PARSE_ERR("'\\uXYZW'", 2, "invalid \\u escape: expected 4 hex digits");
  EXPECT_PARSE_ERR("'\\u0000'", 2, "\\u0000 is not allowed in a string");
}

/* ---- precedence and associativity ---------------------------------------- */

static void test_precedence(void **state) {
  (void)state;
  EXPECT_INT("1 + 2 * 3", ROW_NONE, 7);
  EXPECT_BOOL("1 + 2 * 3 == 7", ROW_NONE, true);
  EXPECT_INT("(1 + 2) * 3", ROW_NONE, 9);
  EXPECT_INT("10 - 4 - 3", ROW_NONE, 3);
  EXPECT_BOOL("10 - 4 - 3 == 3", ROW_NONE, true);
  EXPECT_FLOAT("100 / 10 / 4", ROW_NONE, 2.5);
  EXPECT_INT("2 * 3 % 4", ROW_NONE, 2);
  EXPECT_INT("2 + 3 % 4", ROW_NONE, 5);
  EXPECT_INT("-2 * 3", ROW_NONE, -6);
  EXPECT_INT("7 - -2", ROW_NONE, 9);
  EXPECT_INT("--7", ROW_NONE, 7);
  EXPECT_BOOL("1 + 2 in [3]", ROW_NONE, true);
  EXPECT_BOOL("!true == false", ROW_NONE, true);
  EXPECT_BOOL("(1 < 2) == (2 > 1)", ROW_NONE, true);
  EXPECT_BOOL("1 < 2 == true", ROW_NONE, true); /* one level, left to right */
  EXPECT_BOOL("true || false && false", ROW_NONE, true);
  EXPECT_BOOL("(true || false) && false", ROW_NONE, false);
}

static void test_precedence_fields(void **state) {
  (void)state;
  const char *row = "{\"a\":false,\"b\":true,\"c\":false,\"n\":10,\"m\":4}";
  /* Left-associative - and /; * binds tighter than +. */
  EXPECT_INT("n - m - 3", row, 3);
  EXPECT_FLOAT("n / m / 2", row, 1.25);
  EXPECT_INT("n - m * 2", row, 2);
  EXPECT_INT("n % m * 2", row, 4);
  EXPECT_INT("n * m % 3", row, 1);
  EXPECT_INT("-n * 2", row, -20);
  EXPECT_INT("- -n", row, 10);
  EXPECT_INT("n - -m", row, 14);
  /* ! binds tighter than &&: (!a) && b. */
  EXPECT_BOOL("!a && b", row, true);
  EXPECT_BOOL("!(a && b)", row, true);
  EXPECT_BOOL("!b && b", row, false);
  /* && binds tighter than ||: b || (a && c), not (b || a) && c. */
  EXPECT_BOOL("b || a && c", row, true);
  EXPECT_BOOL("(b || a) && c", row, false);
  EXPECT_BOOL("a && c || b", row, true);
  /* Comparisons bind looser than arithmetic, tighter than &&. */
  EXPECT_BOOL("n - 6 == m && b", row, true);
  EXPECT_BOOL("n > m == true", row, true);
  EXPECT_BOOL("!a == true", row, true);
  EXPECT_BOOL("n + 1 in [11]", row, true);
  EXPECT_BOOL("n in [10] && m in [4]", row, true);
  EXPECT_BOOL("n in [1] || m in [4]", row, true);
}

/* ---- arithmetic -----------------------------------------------------------
 */

static void test_arithmetic(void **state) {
  (void)state;
  const char *row = "{\"i\":7,\"j\":-7,\"f\":2.5,\"z\":0,\"zf\":0.0,"
                    "\"two\":2,\"one\":1}";
  EXPECT_INT("i + 3", row, 10);
  EXPECT_INT("i - 10", row, -3);
  EXPECT_INT("i * 3", row, 21);
  EXPECT_INT("i % 3", row, 1);
  EXPECT_INT("j % 3", row, -1); /* C remainder */
  EXPECT_INT("i % -3", row, 1);
  EXPECT_FLOAT("i / 2", row, 3.5);
  EXPECT_FLOAT("i / 7", row, 1.0); /* / is always float */
  EXPECT_FLOAT("i + f", row, 9.5);
  EXPECT_FLOAT("f - i", row, -4.5);
  EXPECT_FLOAT("f * 2", row, 5.0);
  EXPECT_FLOAT("f % 1", row, 0.5);
  EXPECT_FLOAT("j % 2.5", row, -2.0); /* fmod */
  EXPECT_FLOAT("-f", row, -2.5);
  EXPECT_INT("-j", row, 7);
  EXPECT_FLOAT("f / 0.5", row, 5.0);
  /* Overflow never wraps. (A JSON number beyond 2^53 is a float, so the
   * int extremes come from literals.) */
  EXPECT_EVAL_ERR("i + 9223372036854775807", row, "integer overflow in '+'");
  EXPECT_EVAL_ERR("-9223372036854775808 - one", row, "integer overflow in '-'");
  EXPECT_EVAL_ERR("two * 4611686018427387904", row, "integer overflow in '*'");
  EXPECT_INT("two * 4611686018427387903", row, INT64_MAX - 1);
  EXPECT_EVAL_ERR("-9223372036854775808 * -one", row,
                  "integer overflow in '*'");
  EXPECT_EVAL_ERR("-(one - 1 + -9223372036854775808)", row,
                  "integer overflow in '-'");
  EXPECT_INT("(-9223372036854775808 + z) % -1", row, 0);
  EXPECT_INT("9223372036854775807 - i + i", row, INT64_MAX);
  /* Division by zero, int or float. */
  EXPECT_EVAL_ERR("i / z", row, "division by zero in '/'");
  EXPECT_EVAL_ERR("i % z", row, "division by zero in '%'");
  EXPECT_EVAL_ERR("f / zf", row, "division by zero in '/'");
  EXPECT_EVAL_ERR("f % zf", row, "division by zero in '%'");
  EXPECT_EVAL_ERR("i / 0", row, "division by zero in '/'");
  EXPECT_EVAL_ERR("i / -0.0", row, "division by zero in '/'");
}

static void test_string_concat(void **state) {
  (void)state;
  const char *row = "{\"a\":\"foo\",\"b\":\"bar\",\"e\":\"\",\"n\":1}";
  EXPECT_STR("a + b", row, "foobar");
  EXPECT_STR("a + '-' + b", row, "foo-bar");
  EXPECT_STR("e + e", row, "");
  EXPECT_STR("e + a", row, "foo");
  EXPECT_STR("'x' + 'y'", ROW_NONE, "xy");
  EXPECT_STR("a + to_string(n)", row, "foo1");
  EXPECT_EVAL_ERR("a + n", row,
                  "'+' needs two numbers or two strings, got string and int");
  EXPECT_EVAL_ERR("n + a", row,
                  "'+' needs two numbers or two strings, got int and string");
  EXPECT_NULL("a + missing", row);
}

/* ---- comparisons ------------------------------------------------------------
 */

static void test_comparisons(void **state) {
  (void)state;
  const char *row = "{\"i\":3,\"f\":3.5,\"s\":\"abc\",\"t\":true,"
                    "\"o\":{\"x\":1,\"y\":[1,2]},"
                    "\"o2\":{\"y\":[1,2],\"x\":1},\"arr\":[1,2]}";
  EXPECT_BOOL("i < f", row, true);
  EXPECT_BOOL("i <= 3", row, true);
  EXPECT_BOOL("i > 3", row, false);
  EXPECT_BOOL("i >= 3.0", row, true);
  EXPECT_BOOL("f > i", row, true);
  EXPECT_BOOL("i == 3.0", row, true);
  EXPECT_BOOL("i != 3", row, false);
  EXPECT_BOOL("s == 'abc'", row, true);
  EXPECT_BOOL("s < 'abd'", row, true);
  EXPECT_BOOL("s < 'ab'", row, false);
  EXPECT_BOOL("s > 'ab'", row, true);
  EXPECT_BOOL("'' < s", row, true);
  EXPECT_BOOL("'B' < 'a'", ROW_NONE, true); /* bytewise */
  EXPECT_BOOL("false < t", row, true);
  EXPECT_BOOL("t <= true", row, true);
  /* == and != compare any two values; different types are unequal. */
  EXPECT_BOOL("s == 3", row, false);
  EXPECT_BOOL("s != 3", row, true);
  EXPECT_BOOL("t == 1", row, false);
  EXPECT_BOOL("o == o2", row, true); /* JSON, key order does not matter */
  EXPECT_BOOL("o.y == arr", row, true);
  EXPECT_BOOL("o == arr", row, false);
  EXPECT_BOOL("arr == 'x'", row, false);
  EXPECT_EVAL_ERR("s < i", row, "'<' cannot compare string and int");
  EXPECT_EVAL_ERR("i >= s", row, "'>=' cannot compare int and string");
  EXPECT_EVAL_ERR("t > i", row, "'>' cannot compare bool and int");
  EXPECT_EVAL_ERR("o <= o2", row, "'<=' cannot compare object and object");
  EXPECT_EVAL_ERR("arr < 1", row, "'<' cannot compare array and int");
}

/* ---- nulls and three-valued logic ------------------------------------------
 */

static void test_logic_truth_tables(void **state) {
  (void)state;
  static const char *const names[] = {"t", "f", "n"};
  /* t = true, f = false, n = null; rows of a, columns of b. */
  static const char *const and_tab[3][3] = {
      {"t", "f", "n"}, {"f", "f", "f"}, {"n", "f", "n"}};
  static const char *const or_tab[3][3] = {
      {"t", "t", "t"}, {"t", "f", "n"}, {"t", "n", "n"}};
  const char *row = "{\"t\":true,\"f\":false,\"n\":null}";
  for (int a = 0; a < 3; a++) {
    for (int b = 0; b < 3; b++) {
      char src[32];
      const char *want[2] = {and_tab[a][b], or_tab[a][b]};
      for (int k = 0; k < 2; k++) {
        snprintf(src, sizeof(src), "%s %s %s", names[a], k ? "||" : "&&",
                 names[b]);
        struct sl_value v = eval_ok(src, row, __LINE__);
        const char *got = v.type == SL_V_NULL             ? "n"
                          : v.type == SL_V_BOOL && v.u.b  ? "t"
                          : v.type == SL_V_BOOL && !v.u.b ? "f"
                                                          : "?";
        if (strcmp(got, want[k]))
          fail_msg("`%s` gave %s, want %s", src, got, want[k]);
        /* The same with literals (folded at parse time). */
        static const char *const lits[] = {"true", "false", "null"};
        snprintf(src, sizeof(src), "%s %s %s", lits[a], k ? "||" : "&&",
                 lits[b]);
        v = eval_ok(src, ROW_NONE, __LINE__);
        got = v.type == SL_V_NULL ? "n" : v.u.b ? "t" : "f";
        if (strcmp(got, want[k]))
          fail_msg("`%s` gave %s, want %s", src, got, want[k]);
      }
    }
  }
  EXPECT_BOOL("!f", row, true);
  EXPECT_BOOL("!t", row, false);
  EXPECT_NULL("!n", row);
  EXPECT_NULL("!null", ROW_NONE);
  /* Chains are n-ary but mean the same. */
  EXPECT_BOOL("t && t && t && f", row, false);
  EXPECT_NULL("t && n && t", row);
  EXPECT_BOOL("n && t && f", row, false);
  EXPECT_BOOL("f || f || n || t", row, true);
  EXPECT_NULL("f || n || f", row);
  EXPECT_BOOL("(f || t) && (t || n)", row, true);
}

static void test_short_circuit_and_logic_errors(void **state) {
  (void)state;
  const char *row = "{\"t\":true,\"f\":false,\"n\":null,\"i\":1,\"z\":0}";
  /* A deciding operand stops the evaluation: no division by zero. */
  EXPECT_BOOL("f && i / z > 0", row, false);
  EXPECT_BOOL("t || i / z > 0", row, true);
  EXPECT_BOOL("n && f && i / z > 0", row, false);
  EXPECT_EVAL_ERR("n && i / z > 0", row, "division by zero in '/'");
  EXPECT_EVAL_ERR("t && i", row, "'&&' needs bools, got int");
  EXPECT_EVAL_ERR("i || t", row, "'||' needs bools, got int");
  EXPECT_EVAL_ERR("!i", row, "'!' needs a bool, got int");
  EXPECT_EVAL_ERR("-t", row, "'-' needs a number, got bool");
}

static void test_null_semantics(void **state) {
  (void)state;
  const char *row = "{\"n\":null,\"i\":1,\"s\":\"x\",\"z\":0,\"e\":\"\"}";
  /* Arithmetic and ordering propagate null, even past a type mismatch. */
  EXPECT_NULL("n + 1", row);
  EXPECT_NULL("1 - n", row);
  EXPECT_NULL("n * n", row);
  EXPECT_NULL("n / z", row); /* null, not division by zero */
  EXPECT_NULL("n % 2", row);
  EXPECT_NULL("-n", row);
  EXPECT_NULL("n < 1", row);
  EXPECT_NULL("s >= missing", row);
  EXPECT_NULL("n + s", row);
  EXPECT_NULL("null + 1", ROW_NONE);
  /* == and != treat null as a value. */
  EXPECT_BOOL("n == null", row, true);
  EXPECT_BOOL("missing == null", row, true);
  EXPECT_BOOL("null == null", ROW_NONE, true);
  EXPECT_BOOL("i == null", row, false);
  EXPECT_BOOL("z == null", row, false);
  EXPECT_BOOL("e == null", row, false);
  EXPECT_BOOL("n != null", row, false);
  EXPECT_BOOL("i != n", row, true);
  EXPECT_BOOL("n == 0", row, false);
  /* Functions propagate null, except coalesce; to_string(null) is null. */
  EXPECT_NULL("lower(n)", row);
  EXPECT_NULL("len(missing)", row);
  EXPECT_NULL("contains(s, n)", row);
  EXPECT_NULL("substr(s, n)", row);
  EXPECT_NULL("substr(s, 0, n)", row);
  EXPECT_NULL("to_int(n)", row);
  EXPECT_NULL("to_float(n)", row);
  EXPECT_NULL("to_string(n)", row);
  EXPECT_NULL("to_string(null)", ROW_NONE);
  EXPECT_INT("coalesce(n, missing, i, 5)", row, 1);
  EXPECT_STR("coalesce(missing, 'd')", row, "d");
  EXPECT_NULL("coalesce(n, missing)", row);
  EXPECT_NULL("coalesce(null)", ROW_NONE);
  EXPECT_BOOL("coalesce(z, 9) == 0", row, true);
  /* in with a null left side is null; a null element just never matches. */
  EXPECT_NULL("n in [1, 2]", row);
  EXPECT_NULL("missing in [null]", row);
  EXPECT_BOOL("i in [null, 1]", row, true);
  EXPECT_BOOL("i in [null]", row, false);
}

/* ---- in ---------------------------------------------------------------------
 */

static void test_in(void **state) {
  (void)state;
  const char *row = "{\"s\":\"b\",\"i\":2,\"f\":2.0,\"x\":2.5,\"o\":{\"a\":1}}";
  EXPECT_BOOL("s in ['a', 'b', 'c']", row, true);
  EXPECT_BOOL("s in ['a', 'c']", row, false);
  EXPECT_BOOL("s in []", row, false);
  EXPECT_BOOL("i in [1, 2, 3]", row, true);
  EXPECT_BOOL("i in [2.0]", row, true);
  EXPECT_BOOL("x in [2, 2.5]", row, true);
  EXPECT_BOOL("i in ['2']", row, false); /* no coercion */
  EXPECT_BOOL("i in ['a', true, 2]", row, true);
  EXPECT_BOOL("i in [i - 1, i + 1]", row, false);
  EXPECT_BOOL("i in [i - 1, i * 1]", row, true);
  EXPECT_BOOL("s in [lower('B')]", row, true);
  EXPECT_BOOL("true in [false, true]", ROW_NONE, true);
  EXPECT_BOOL("3 in [1, 2]", ROW_NONE, false);
  EXPECT_BOOL("!(s in ['b'])", row, false);
  EXPECT_BOOL("(s in ['b']) == true", row, true);
  EXPECT_BOOL("o in [1, 'a']", row, false);
}

/* ---- fields
 * ------------------------------------------------------------------ */

static void test_fields(void **state) {
  (void)state;
  const char *row =
      "{\"user\":{\"address\":{\"city\":\"Oslo\"},\"age\":30,\"tags\":[1,2,3]},"
      "\"odd name\":{\"x\":7},\"a.b\":5,\"in\":{\"true\":1},"
      "\"num\":5,\"Case\":1,\"empty\":{}}";
  EXPECT_STR("user.address.city", row, "Oslo");
  EXPECT_INT("user.age", row, 30);
  EXPECT_NULL("user.address.zip", row);
  EXPECT_NULL("nobody.address.city", row);
  EXPECT_NULL("num.x", row);       /* not an object */
  EXPECT_NULL("user.tags.x", row); /* arrays have no fields */
  EXPECT_INT("`odd name`.x", row, 7);
  EXPECT_INT("`a.b`", row, 5); /* one segment */
  EXPECT_NULL("a.b", row);
  EXPECT_INT("`in`.`true`", row, 1);
  EXPECT_INT("`in`.true", row, 1); /* keywords are names after a dot */
  EXPECT_INT("Case", row, 1);
  EXPECT_NULL("case", row); /* case-sensitive */
  EXPECT_INT("len(user.tags)", row, 3);
  EXPECT_INT("len(user)", row, 3);
  EXPECT_INT("len(empty)", row, 0);
  EXPECT_STR("to_string(user.tags)", row, "[1,2,3]");
  EXPECT_STR("to_string(user.address)", row, "{\"city\":\"Oslo\"}");
  EXPECT_BOOL("user . age == 30", row, true); /* blanks around dots */
  /* A raw record (no parsed row) has no fields. */
  EXPECT_NULL("user.age", ROW_NONE);
  EXPECT_BOOL("user == null", ROW_NONE, true);
  /* A row that is not an object. */
  EXPECT_NULL("x", "[1,2]");
  EXPECT_NULL("x", "5");
}

static void test_field_path(void **state) {
  (void)state;
  struct sl_error err;
  size_t n = 99;
  struct sl_expr *e = sl_expr_parse("user.`odd name`.city", NULL, &err);
  assert_non_null(e);
  const char *const *segs = sl_expr_field_path(e, &n);
  assert_non_null(segs);
  assert_int_equal(n, 3);
  assert_string_equal(segs[0], "user");
  assert_string_equal(segs[1], "odd name");
  assert_string_equal(segs[2], "city");
  assert_int_equal(sl_expr_static_type(e), -1);
  sl_expr_free(e);

  e = sl_expr_parse("x", NULL, &err);
  segs = sl_expr_field_path(e, &n);
  assert_int_equal(n, 1);
  assert_string_equal(segs[0], "x");
  sl_expr_free(e);

  static const char *const not_paths[] = {"x + 1",    "@key", "@headers.a",
                                          "lower(x)", "1",    "(x) == 1"};
  for (size_t i = 0; i < SL_ARRAY_LEN(not_paths); i++) {
    e = sl_expr_parse(not_paths[i], NULL, &err);
    assert_non_null(e);
    n = 99;
    assert_null(sl_expr_field_path(e, &n));
    assert_int_equal(n, 0);
    sl_expr_free(e);
  }
  /* Parentheses alone keep a path a path. */
  e = sl_expr_parse("(a.b)", NULL, &err);
  assert_non_null(sl_expr_field_path(e, &n));
  assert_int_equal(n, 2);
  sl_expr_free(e);
}

/* ---- metadata
 * ------------------------------------------------------------------ */

static void test_metadata(void **state) {
  (void)state;
  g_rec = &fake_rec;
  g_header = fake_header;
  EXPECT_STR("@key", ROW_NONE, "k1");
  EXPECT_STR("@topic", ROW_NONE, "events");
  EXPECT_INT("@partition", ROW_NONE, 3);
  EXPECT_INT("@offset", ROW_NONE, 42);
  EXPECT_INT("@timestamp", ROW_NONE, 1700000000000LL);
  EXPECT_STR("@headers.trace", ROW_NONE, "abc");
  EXPECT_STR("@headers.empty", ROW_NONE, "");
  EXPECT_STR("@headers.`content-type`", ROW_NONE, "json");
  EXPECT_NULL("@headers.absent", ROW_NONE);
  EXPECT_BOOL("@partition == 3 && @topic == 'events'", "{}", true);
  EXPECT_INT("@offset + 1", ROW_NONE, 43);
  EXPECT_STR("upper(@key) + ':' + @headers.trace", ROW_NONE, "K1:abc");
  EXPECT_BOOL("@timestamp > 0", ROW_NONE, true);

  /* No key, no timestamp. */
  struct sl_record r = fake_rec;
  r.key = NULL;
  r.key_len = 0;
  r.timestamp = -1;
  g_rec = &r;
  EXPECT_NULL("@key", ROW_NONE);
  EXPECT_NULL("@timestamp", ROW_NONE);
  EXPECT_STR("coalesce(@key, 'none')", ROW_NONE, "none");
  r.timestamp = 0;
  EXPECT_INT("@timestamp", ROW_NONE, 0);

  /* No header callback: headers are null. */
  g_rec = &fake_rec;
  g_header = NULL;
  EXPECT_NULL("@headers.trace", ROW_NONE);

  /* No record at all: every metadata field is null. */
  g_rec = NULL;
  g_header = fake_header;
  EXPECT_NULL("@key", ROW_NONE);
  EXPECT_NULL("@topic", ROW_NONE);
  EXPECT_NULL("@partition", ROW_NONE);
  EXPECT_NULL("@offset", ROW_NONE);
  EXPECT_NULL("@timestamp", ROW_NONE);
  EXPECT_NULL("@headers.trace", ROW_NONE);
  g_header = NULL;

  assert_int_equal(static_type("@key"), SL_V_STR);
  assert_int_equal(static_type("@topic"), SL_V_STR);
  assert_int_equal(static_type("@partition"), SL_V_INT);
  assert_int_equal(static_type("@offset"), SL_V_INT);
  assert_int_equal(static_type("@timestamp"), SL_V_INT);
  assert_int_equal(static_type("@headers.x"), SL_V_STR);
}

/* ---- functions
 * ------------------------------------------------------------------ */

static void test_string_functions(void **state) {
  (void)state;
  const char *row =
      "{\"s\":\"Hello, World\",\"e\":\"\",\"u\":\"\\u00c9t\\u00c9\","
      "\"i\":3,\"arr\":[1,[2,3]],\"obj\":{\"a\":1,\"b\":2}}";
  EXPECT_STR("lower(s)", row, "hello, world");
  EXPECT_STR("upper(s)", row, "HELLO, WORLD");
  EXPECT_STR("lower('abc')", ROW_NONE, "abc");
  EXPECT_STR("upper(e)", row, "");
  EXPECT_STR("lower(u)", row, "\xc3\x89t\xc3\x89"); /* ASCII only */
  EXPECT_STR("upper('x\\u00e9z')", ROW_NONE, "X\xc3\xa9Z");
  EXPECT_INT("len(s)", row, 12);
  EXPECT_INT("len(e)", row, 0);
  EXPECT_INT("len(u)", row, 5); /* bytes */
  EXPECT_INT("len(arr)", row, 2);
  EXPECT_INT("len(obj)", row, 2);
  EXPECT_BOOL("contains(s, 'lo, W')", row, true);
  EXPECT_BOOL("contains(s, 'low')", row, false);
  EXPECT_BOOL("contains(s, '')", row, true);
  EXPECT_BOOL("contains(e, '')", row, true);
  EXPECT_BOOL("contains(e, 'a')", row, false);
  EXPECT_BOOL("contains('ab', 'abc')", ROW_NONE, false);
  EXPECT_BOOL("starts_with(s, 'Hell')", row, true);
  EXPECT_BOOL("starts_with(s, 'hell')", row, false);
  EXPECT_BOOL("starts_with(s, '')", row, true);
  EXPECT_BOOL("starts_with(e, 'x')", row, false);
  EXPECT_BOOL("starts_with('ab', 'abc')", ROW_NONE, false);
  EXPECT_BOOL("ends_with(s, 'World')", row, true);
  EXPECT_BOOL("ends_with(s, 'world')", row, false);
  EXPECT_BOOL("ends_with(s, s)", row, true);
  EXPECT_BOOL("ends_with(e, '')", row, true);
  EXPECT_BOOL("ends_with('b', 'ab')", ROW_NONE, false);
  /* substr: 0-based bytes, clamped, negative start from the end. */
  EXPECT_STR("substr(s, 7)", row, "World");
  EXPECT_STR("substr(s, 0, 5)", row, "Hello");
  EXPECT_STR("substr(s, 7, 100)", row, "World");
  EXPECT_STR("substr(s, 100)", row, "");
  EXPECT_STR("substr(s, 100, 3)", row, "");
  EXPECT_STR("substr(s, -5)", row, "World");
  EXPECT_STR("substr(s, -5, 3)", row, "Wor");
  EXPECT_STR("substr(s, -100, 2)", row, "He");
  EXPECT_STR("substr(s, 2, 0)", row, "");
  EXPECT_STR("substr(s, 2, -1)", row, "");
  EXPECT_STR("substr(e, 0, 3)", row, "");
  EXPECT_STR("substr(s, i, i)", row, "lo,");
  EXPECT_STR("substr(s, -9223372036854775808, 9223372036854775807)", row,
             "Hello, World");
  EXPECT_STR("substr('abc', 1)", ROW_NONE, "bc");
  /* Argument types. */
  EXPECT_EVAL_ERR("lower(i)", row, "'lower' needs a string, got int");
  EXPECT_EVAL_ERR("upper(obj)", row, "'upper' needs a string, got object");
  EXPECT_EVAL_ERR("len(i)", row,
                  "'len' needs a string, array or object, got int");
  EXPECT_EVAL_ERR("contains(s, i)", row,
                  "'contains' argument 2 needs a string, got int");
  EXPECT_EVAL_ERR("starts_with(arr, s)", row,
                  "'starts_with' argument 1 needs a string, got array");
  EXPECT_EVAL_ERR("substr(s, i)", "{\"s\":\"abc\",\"i\":\"1\"}",
                  "'substr' argument 2 needs an int, got string");
  EXPECT_EVAL_ERR("substr(s, 1, x)", "{\"s\":\"abc\",\"x\":1.5}",
                  "'substr' argument 3 needs an int, got float");
}

static void test_conversions(void **state) {
  (void)state;
  const char *row =
      "{\"i\":42,\"f\":-3.99,\"big\":1e300,\"s\":\" -17 \",\"bad\":\"12x\","
      "\"fs\":\"2.5e1\",\"inf\":\"inf\",\"nan\":\"nan\",\"hex\":\"0x10\",\"t\":"
      "true,\"o\":{\"k\":[1,\"a\",null,true]},"
      "\"imax\":\"9223372036854775807\",\"imin\":\"-9223372036854775808\","
      "\"iover\":\"9223372036854775808\",\"tenth\":0.1}";
  EXPECT_INT("to_int(i)", row, 42);
  EXPECT_INT("to_int(f)", row, -3);
  EXPECT_INT("to_int(3.99)", ROW_NONE, 3);
  EXPECT_INT("to_int(s)", row, -17);
  EXPECT_INT("to_int('+5')", ROW_NONE, 5);
  EXPECT_INT("to_int(imax)", row, INT64_MAX);
  EXPECT_INT("to_int(imin)", row, INT64_MIN);
  EXPECT_INT("to_int(t)", row, 1);
  EXPECT_INT("to_int(false)", ROW_NONE, 0);
  EXPECT_EVAL_ERR("to_int(big)", row,
                  "'to_int' cannot convert 1e+300 to an int");
  EXPECT_EVAL_ERR("to_int(bad)", row,
                  "'to_int' cannot parse \"12x\" as an int");
  EXPECT_EVAL_ERR("to_int(iover)", row,
                  "'to_int' cannot parse \"9223372036854775808\" as an int");
  EXPECT_EVAL_ERR("to_int(fs)", row,
                  "'to_int' cannot parse \"2.5e1\" as an int");
  EXPECT_EVAL_ERR("to_int(o)", row,
                  "'to_int' needs a number, string or bool, got object");
  EXPECT_EVAL_ERR("to_int(-big)", row,
                  "'to_int' cannot convert -1e+300 to an int");
  EXPECT_EVAL_ERR("to_int(f * 1e20)", row,
                  "'to_int' cannot convert -3.99e+20 to an int");
  EXPECT_INT("to_int(-9223372036854775808.0)", ROW_NONE, INT64_MIN);

  EXPECT_FLOAT("to_float(i)", row, 42.0);
  EXPECT_FLOAT("to_float(f)", row, -3.99);
  EXPECT_FLOAT("to_float(fs)", row, 25.0);
  EXPECT_FLOAT("to_float(s)", row, -17.0);
  EXPECT_FLOAT("to_float(t)", row, 1.0);
  EXPECT_FLOAT("to_float('1e-3')", ROW_NONE, 0.001);
  EXPECT_EVAL_ERR("to_float(bad)", row,
                  "'to_float' cannot parse \"12x\" as a float");
  EXPECT_EVAL_ERR("to_float(s + 'inf')", row,
                  "'to_float' cannot parse \" -17 inf\" as a float");
  EXPECT_EVAL_ERR("to_float(inf)", row,
                  "'to_float' cannot parse \"inf\" as a float");
  EXPECT_EVAL_ERR("to_float(nan)", row,
                  "'to_float' cannot parse \"nan\" as a float");
  EXPECT_EVAL_ERR("to_float(hex)", row,
                  "'to_float' cannot parse \"0x10\" as a float");

  EXPECT_STR("to_string(i)", row, "42");
  EXPECT_STR("to_string(-9223372036854775808)", ROW_NONE,
             "-9223372036854775808");
  EXPECT_STR("to_string(f)", row, "-3.99");
  EXPECT_STR("to_string(tenth)", row, "0.1");
  EXPECT_STR("to_string(tenth * 3)", row, "0.30000000000000004");
  EXPECT_STR("to_string(i / 2)", row, "21");
  EXPECT_STR("to_string(big)", row, "1e+300");
  EXPECT_STR("to_string(t)", row, "true");
  EXPECT_STR("to_string(!t)", row, "false");
  EXPECT_STR("to_string(s)", row, " -17 ");
  EXPECT_STR("to_string(o)", row, "{\"k\":[1,\"a\",null,true]}");
  EXPECT_STR("to_string(o.k)", row, "[1,\"a\",null,true]");
  EXPECT_INT("now_ms()", ROW_NONE, 1234567);
  EXPECT_BOOL("now_ms() - 1234560 == 7", ROW_NONE, true);
}

static void test_coalesce_is_lazy(void **state) {
  (void)state;
  const char *row = "{\"a\":1,\"z\":0,\"n\":null}";
  EXPECT_INT("coalesce(a, a / z)", row, 1);
  EXPECT_EVAL_ERR("coalesce(n, a / z)", row, "division by zero in '/'");
  assert_int_equal(static_type("coalesce(x, 1)"), -1); /* x may be 'a' */
  assert_int_equal(static_type("coalesce(to_int(x), 1)"), SL_V_INT);
  assert_int_equal(static_type("coalesce(null, 'a')"), SL_V_STR);
  assert_int_equal(static_type("coalesce(to_int(x), 1, null)"), SL_V_INT);
  assert_int_equal(static_type("coalesce(x, 'a')"), -1);
  assert_int_equal(static_type("coalesce(1, 'a')"), SL_V_INT); /* folded */
  assert_int_equal(static_type("coalesce(x, 1, 'a')"), -1);
}

/* ---- errors
 * ------------------------------------------------------------------ */

static void test_parse_errors(void **state) {
  (void)state;
  EXPECT_PARSE_ERR("", 1, "empty expression");
  EXPECT_PARSE_ERR("   ", 4, "empty expression");
  EXPECT_PARSE_ERR("a &&", 5, "expected an expression after '&&'");
  EXPECT_PARSE_ERR("x == 1 && ", 11, "expected an expression after '&&'");
  EXPECT_PARSE_ERR("a && || b", 6, "expected an expression after '&&'");
  EXPECT_PARSE_ERR("x +", 4, "expected an expression after '+'");
  EXPECT_PARSE_ERR("lower(,)", 7, "expected an expression after '('");
  EXPECT_PARSE_ERR("x in [1, ]", 10, "expected an expression after ','");
  EXPECT_PARSE_ERR("lowr(x)", 1,
                   "unknown function 'lowr'; did you mean 'lower'?");
  EXPECT_PARSE_ERR("x && strts_with(x, 'a')", 6,
                   "unknown function 'strts_with'; did you mean "
                   "'starts_with'?");
  EXPECT_PARSE_ERR("frobnicate(x)", 1, "unknown function 'frobnicate'");
  EXPECT_PARSE_ERR("a == \"abc", 6, "unterminated string");
  EXPECT_PARSE_ERR("'abc\\'", 1, "unterminated string");
  EXPECT_PARSE_ERR("(a + 1", 7,
                   "expected ')' to close '(' at column 1, got the end of "
                   "the expression");
  EXPECT_PARSE_ERR("((a) + 1 2", 10,
                   "expected ')' to close '(' at column 1, got '2'");
  EXPECT_PARSE_ERR("a + 1)", 6, "unexpected ')' without a matching '('");
  EXPECT_PARSE_ERR("a = 1", 3, "unexpected '='; did you mean '=='?");
  EXPECT_PARSE_ERR("a & b", 3, "unexpected '&'; did you mean '&&'?");
  EXPECT_PARSE_ERR("a | b", 3, "unexpected '|'; did you mean '||'?");
  EXPECT_PARSE_ERR("a # b", 3, "unexpected character '#'");
  EXPECT_PARSE_ERR("a \xc3\xa9", 3, "unexpected byte 0xC3");
  EXPECT_PARSE_ERR("a b", 3, "unexpected 'b' after a complete expression");
  EXPECT_PARSE_ERR("a and b", 3, "unexpected 'and'; did you mean '&&'?");
  EXPECT_PARSE_ERR("a or b", 3, "unexpected 'or'; did you mean '||'?");
  EXPECT_PARSE_ERR(")", 1, "unexpected ')'");
  EXPECT_PARSE_ERR("* 2", 1, "unexpected '*'");
  EXPECT_PARSE_ERR("lower(a, b)", 1, "'lower' takes 1 argument, got 2");
  EXPECT_PARSE_ERR("x || contains(x)", 6,
                   "'contains' takes 2 arguments, got 1");
  EXPECT_PARSE_ERR("substr(a)", 1, "'substr' takes 2 or 3 arguments, got 1");
  EXPECT_PARSE_ERR("now_ms(1)", 1, "'now_ms' takes no arguments, got 1");
  EXPECT_PARSE_ERR("coalesce()", 1,
                   "'coalesce' takes at least 1 argument, got 0");
  EXPECT_PARSE_ERR("lower(a b)", 9,
                   "expected ',' or ')' in the call to 'lower' (opened at "
                   "column 6), got 'b'");
  EXPECT_PARSE_ERR("x in 1", 6, "expected '[' after 'in'");
  EXPECT_PARSE_ERR("x in [1, 2", 11,
                   "expected ',' or ']' in the list (opened at column 6), "
                   "got the end of the expression");
  EXPECT_PARSE_ERR("[1]", 1, "a list is only allowed after 'in'");
  EXPECT_PARSE_ERR("x == [1]", 6, "a list is only allowed after 'in'");
  EXPECT_PARSE_ERR("a.", 3, "expected a field name after '.'");
  EXPECT_PARSE_ERR("a.b.1", 5, "expected a field name after '.'");
  EXPECT_PARSE_ERR("a.(b)", 3, "expected a field name after '.'");
  EXPECT_PARSE_ERR(".a", 1, "unexpected '.'");
  EXPECT_PARSE_ERR("a.b(1)", 4, "unexpected '(' after a complete expression");
  EXPECT_PARSE_ERR("@foo", 1,
                   "unknown metadata field '@foo' (expected @key, @topic, "
                   "@partition, @offset, @timestamp or @headers.NAME)");
  EXPECT_PARSE_ERR("1 + @", 5, "expected a metadata name after '@'");
  EXPECT_PARSE_ERR("@headers", 1,
                   "'@headers' needs a header name: @headers.NAME");
  EXPECT_PARSE_ERR("@headers.", 1,
                   "'@headers' needs a header name: @headers.NAME");
  EXPECT_PARSE_ERR("'\\q'", 2, "invalid escape '\\q'");
  EXPECT_PARSE_ERR("12abc", 1, "invalid number '12abc'");
  EXPECT_PARSE_ERR("x + 1.", 5, "invalid number '1.'");
  EXPECT_PARSE_ERR("1.2.3", 1, "invalid number '1.2.3'");
  EXPECT_PARSE_ERR("1e", 1, "invalid number '1e'");
  EXPECT_PARSE_ERR("1e+", 1, "invalid number '1e+'");
  EXPECT_PARSE_ERR("1e999", 1, "number out of range");
  EXPECT_PARSE_ERR("9223372036854775808", 1, "integer literal too large");
  EXPECT_PARSE_ERR("1 - 9223372036854775808", 5, "integer literal too large");
  EXPECT_PARSE_ERR("99999999999999999999999", 1, "integer literal too large");
  EXPECT_PARSE_ERR("`abc", 1, "unterminated quoted name");
  EXPECT_PARSE_ERR("a.``", 3, "empty quoted name");
  EXPECT_PARSE_ERR("x in in", 6, "expected '[' after 'in'");
  EXPECT_PARSE_ERR("true(1)", 5, "unexpected '(' after a complete expression");

  /* Nesting is bounded (the evaluator recurses). */
  char deep[1024];
  size_t k = 0;
  for (int i = 0; i < 300; i++)
    deep[k++] = '(';
  deep[k++] = 'x';
  for (int i = 0; i < 300; i++)
    deep[k++] = ')';
  deep[k] = '\0';
  struct sl_error err;
  int col = 0;
  assert_null(sl_expr_parse(deep, &col, &err));
  assert_non_null(strstr(err.msg, "expression is nested too deeply"));
  assert_true(col >= 1 && col <= 300);
  /* Long flat chains are fine: && and || are n-ary, and a left-deep +
   * chain of literals folds as it is built. */
  char *chain = sl_malloc(64 * 1024);
  k = 0;
  for (int i = 0; i < 2000; i++)
    k += (size_t)sprintf(chain + k, "%sx == %d", i ? " || " : "", i);
  struct sl_expr *e = sl_expr_parse(chain, &col, &err);
  assert_non_null(e);
  sl_expr_free(e);
  k = 0;
  for (int i = 0; i < 2000; i++)
    k += (size_t)sprintf(chain + k, "%s1", i ? " + " : "");
  e = sl_expr_parse(chain, &col, &err);
  assert_non_null(e);
  assert_int_equal(sl_expr_static_type(e), SL_V_INT);
  sl_expr_free(e);
  /* But a left-deep chain over fields is bounded. */
  k = 0;
  for (int i = 0; i < 2000; i++)
    k += (size_t)sprintf(chain + k, "%sx", i ? " + " : "");
  assert_null(sl_expr_parse(chain, &col, &err));
  assert_non_null(strstr(err.msg, "nested too deeply"));
  free(chain);

  /* NULL err and err_col are allowed. */
  assert_null(sl_expr_parse("(", NULL, NULL));
  assert_null(sl_expr_parse(NULL, NULL, NULL));
}

static void test_static_type_errors(void **state) {
  (void)state;
  EXPECT_PARSE_ERR("\"a\" * 2", 5, "'*' needs numbers, got string and int");
  EXPECT_PARSE_ERR("x > 1 && 'a' - 1 > 0", 14,
                   "'-' needs numbers, got string and int");
  EXPECT_PARSE_ERR("lower(42)", 7, "'lower' needs a string, got int");
  EXPECT_PARSE_ERR("lower((1 + 2))", 8, "'lower' needs a string, got int");
  EXPECT_PARSE_ERR("-\"x\"", 1, "'-' needs a number, got string");
  EXPECT_PARSE_ERR("!5", 1, "'!' needs a bool, got int");
  EXPECT_PARSE_ERR("1 && 2", 3, "'&&' needs bools, got int and int");
  EXPECT_PARSE_ERR("x && 2", 3, "'&&' needs bools, got int");
  EXPECT_PARSE_ERR("x || y || 'a'", 8, "'||' needs bools, got string");
  EXPECT_PARSE_ERR("'a' + 1", 5,
                   "'+' needs two numbers or two strings, got string and "
                   "int");
  EXPECT_PARSE_ERR("x + true", 3,
                   "'+' needs two numbers or two strings, got bool");
  EXPECT_PARSE_ERR("1 < 'a'", 3, "'<' cannot compare int and string");
  EXPECT_PARSE_ERR("1 < 2 == 2 > 1", 12, "'>' cannot compare bool and int");
  EXPECT_PARSE_ERR("x * 'a'", 3, "'*' needs numbers, got string");
  EXPECT_PARSE_ERR("'a' * null", 5, "'*' needs numbers, got string and null");
  EXPECT_PARSE_ERR("true && 2", 6, "'&&' needs bools, got bool and int");
  EXPECT_PARSE_ERR("@key * 2", 6, "'*' needs numbers, got string and int");
  EXPECT_PARSE_ERR("x.y * @key", 5, "'*' needs numbers, got string");
  EXPECT_PARSE_ERR("to_float('inf')", 1,
                   "'to_float' cannot parse \"inf\" as a float");
  EXPECT_PARSE_ERR("lower(x) - 1", 10, "'-' needs numbers, got string and int");
  EXPECT_PARSE_ERR("len(x) + 'a'", 8,
                   "'+' needs two numbers or two strings, got int and "
                   "string");
  EXPECT_PARSE_ERR("contains(x, 5)", 13,
                   "'contains' argument 2 needs a string, got int");
  EXPECT_PARSE_ERR("substr(x, 1.5)", 11,
                   "'substr' argument 2 needs an int, got float");
  EXPECT_PARSE_ERR("to_int(x) && true", 11,
                   "'&&' needs bools, got int and bool");
  /* Literal-only subexpressions are computed at parse time. */
  EXPECT_PARSE_ERR("1 / 0", 3, "division by zero in '/'");
  EXPECT_PARSE_ERR("x > 7 % 0", 7, "division by zero in '%'");
  EXPECT_PARSE_ERR("to_int('abc')", 1,
                   "'to_int' cannot parse \"abc\" as an int");
  EXPECT_PARSE_ERR("9223372036854775807 + 1", 21, "integer overflow in '+'");
  EXPECT_PARSE_ERR("-(-9223372036854775808)", 1, "integer overflow in '-'");
  /* Field types are unknown until run time: none of these is rejected. */
  static const char *const ok[] = {"x * 2",
                                   "x + 'a'",
                                   "x && y",
                                   "lower(x)",
                                   "a.b - c",
                                   "x < 'a'",
                                   "!x",
                                   "-x",
                                   "len(x) > 3",
                                   "x == 'a' || x == 1",
                                   "substr(x, y, z)",
                                   "to_int(x) + 1",
                                   "x in [1, 'a', true, null]",
                                   "null + 1",
                                   "null && x",
                                   "to_string(x) + 'a'",
                                   "1 == 'a'"};
  for (size_t i = 0; i < SL_ARRAY_LEN(ok); i++) {
    struct sl_error err;
    struct sl_expr *e = sl_expr_parse(ok[i], NULL, &err);
    if (!e)
      fail_msg("`%s` was rejected: %s", ok[i], err.msg);
    sl_expr_free(e);
  }
}

static void test_static_type(void **state) {
  (void)state;
  assert_int_equal(static_type("42"), SL_V_INT);
  assert_int_equal(static_type("4.2"), SL_V_FLOAT);
  assert_int_equal(static_type("'s'"), SL_V_STR);
  assert_int_equal(static_type("true"), SL_V_BOOL);
  assert_int_equal(static_type("null"), SL_V_NULL);
  assert_int_equal(static_type("x"), -1);
  assert_int_equal(static_type("x < 1"), SL_V_BOOL);
  assert_int_equal(static_type("x == y"), SL_V_BOOL);
  assert_int_equal(static_type("x in [1]"), SL_V_BOOL);
  assert_int_equal(static_type("x && y"), SL_V_BOOL);
  assert_int_equal(static_type("!x"), SL_V_BOOL);
  assert_int_equal(static_type("x + 1"), -1);
  assert_int_equal(static_type("x + 1.5"), SL_V_FLOAT);
  assert_int_equal(static_type("x + 'a'"), SL_V_STR);
  assert_int_equal(static_type("x / 2"), SL_V_FLOAT);
  assert_int_equal(static_type("to_int(x) * 2"), SL_V_INT);
  assert_int_equal(static_type("-x"), -1);
  assert_int_equal(static_type("-to_float(x)"), SL_V_FLOAT);
  assert_int_equal(static_type("lower(x)"), SL_V_STR);
  assert_int_equal(static_type("substr(x, 1)"), SL_V_STR);
  assert_int_equal(static_type("to_string(x)"), SL_V_STR);
  assert_int_equal(static_type("len(x)"), SL_V_INT);
  assert_int_equal(static_type("contains(x, 'a')"), SL_V_BOOL);
  assert_int_equal(static_type("to_float(x)"), SL_V_FLOAT);
  assert_int_equal(static_type("now_ms()"), SL_V_INT);
  assert_int_equal(static_type("null + 1"), SL_V_NULL);
  assert_int_equal(static_type("x * null"), SL_V_NULL);
  assert_int_equal(static_type("1 + 2"), SL_V_INT);
  assert_int_equal(static_type("1 / 2"), SL_V_FLOAT);
  assert_int_equal(static_type("'a' + 'b'"), SL_V_STR);
  assert_int_equal(static_type("(x)"), -1);
}

static void test_folding(void **state) {
  (void)state;
  /* Folded strings are owned by the expression (ASan checks the copy). */
  struct sl_error err;
  struct sl_value v;
  struct sl_expr *e = sl_expr_parse(
      "upper('ab') + to_string(1.5) + substr('xyz', 1)", NULL, &err);
  assert_non_null(e);
  assert_int_equal(sl_expr_static_type(e), SL_V_STR);
  /* No arena needed: nothing is computed at run time. */
  struct sl_eval_ctx ctx = {0};
  assert_int_equal(sl_expr_eval(e, &ctx, &v, &err), 0);
  assert_int_equal(v.type, SL_V_STR);
  assert_int_equal(v.u.s.n, 7);
  assert_memory_equal(v.u.s.p, "AB1.5yz", 7);
  sl_expr_free(e);
  /* now_ms() is never folded. */
  e = sl_expr_parse("now_ms() + 1", NULL, &err);
  ctx.now_ms = 10;
  assert_int_equal(sl_expr_eval(e, &ctx, &v, &err), 0);
  assert_int_equal(v.u.i, 11);
  ctx.now_ms = 20;
  assert_int_equal(sl_expr_eval(e, &ctx, &v, &err), 0);
  assert_int_equal(v.u.i, 21);
  sl_expr_free(e);
  /* A computed string without an arena is an error, not a crash. */
  cJSON *row = cJSON_Parse("{\"a\":\"x\"}");
  ctx.row = row;
  e = sl_expr_parse("a + a", NULL, &err);
  assert_int_equal(sl_expr_eval(e, &ctx, &v, &err), SL_ERR_INVAL);
  assert_int_equal(v.type, SL_V_NULL);
  sl_expr_free(e);
  cJSON_Delete(row);
  /* inf and nan from float arithmetic. */
  EXPECT_BOOL("1e308 * 10 > 1e308", ROW_NONE, true);
  EXPECT_STR("to_string(1e308 * 10)", ROW_NONE, "inf");
  EXPECT_STR("to_string(-1e308 * 10)", ROW_NONE, "-inf");
  EXPECT_BOOL("1e308 * 10 - 1e308 * 10 == 1", ROW_NONE, false);
  EXPECT_BOOL("1e308 * 10 - 1e308 * 10 == 1e308 * 10 - 1e308 * 10", ROW_NONE,
              true);
  EXPECT_EVAL_ERR("to_int(x * 10 - x * 10)", "{\"x\":1e308}",
                  "'to_int' cannot convert nan to an int");
}

static void test_value_hash_equal(void **state) {
  (void)state;
  cJSON *a = cJSON_Parse("{\"x\":1,\"y\":[1,{\"p\":\"q\",\"r\":2}]}");
  cJSON *b = cJSON_Parse("{\"y\":[1,{\"r\":2,\"p\":\"q\"}],\"x\":1.0}");
  cJSON *c = cJSON_Parse("{\"y\":[{\"r\":2,\"p\":\"q\"},1],\"x\":1}");
  struct sl_value va = sl_value_from_json(a), vb = sl_value_from_json(b),
                  vc = sl_value_from_json(c);
  assert_true(sl_value_equal(&va, &vb));
  assert_int_equal(sl_value_hash(&va, 7), sl_value_hash(&vb, 7));
  assert_false(sl_value_equal(&va, &vc)); /* arrays are ordered */
  assert_int_not_equal(sl_value_hash(&va, 7), sl_value_hash(&vc, 7));
  cJSON_Delete(a);
  cJSON_Delete(b);
  cJSON_Delete(c);
  struct sl_value i1 = sl_int(1), f1 = sl_float(1.0), i2 = sl_int(2);
  struct sl_value big = sl_int(INT64_MAX), zero = sl_float(0.0),
                  nzero = sl_float(-0.0), nan1 = sl_float(NAN);
  assert_true(sl_value_equal(&i1, &f1));
  assert_int_equal(sl_value_hash(&i1, 0), sl_value_hash(&f1, 0));
  assert_int_not_equal(sl_value_hash(&i1, 0), sl_value_hash(&i2, 0));
  assert_int_equal(sl_value_hash(&zero, 0), sl_value_hash(&nzero, 0));
  (void)sl_value_hash(&big, 0); /* no overflowing cast (UBSan) */
  /* NaN equals itself only and sorts above every number. */
  assert_true(sl_value_equal(&nan1, &nan1));
  assert_false(sl_value_equal(&nan1, &i1));
  assert_int_equal(sl_value_cmp(&nan1, &big), 1);
  assert_int_equal(sl_value_cmp(&i1, &nan1), -1);
  struct sl_value e1 = sl_str(NULL, 0), e2 = sl_str("", 0);
  assert_true(sl_value_equal(&e1, &e2));
}

/* ---- concurrency-free reuse and fuzzing ---------------------------------- */

static void test_reuse_many_rows(void **state) {
  (void)state;
  /* One parsed expression over many rows and arena resets. */
  struct sl_error err;
  struct sl_expr *e = sl_expr_parse(
      "lower(name) + '-' + to_string(n * 2) in ['a-0', 'b-2']", NULL, &err);
  assert_non_null(e);
  struct sl_arena arena = {0};
  int hits = 0;
  for (int i = 0; i < 1000; i++) {
    char buf[64];
    snprintf(buf, sizeof(buf), "{\"name\":\"%c\",\"n\":%d}", 'A' + i % 3,
             i % 3);
    cJSON *row = cJSON_Parse(buf);
    struct sl_eval_ctx ctx = {.row = row, .arena = &arena};
    struct sl_value v;
    assert_int_equal(sl_expr_eval(e, &ctx, &v, &err), 0);
    assert_int_equal(v.type, SL_V_BOOL);
    hits += v.u.b;
    cJSON_Delete(row);
    if (i % 100 == 99)
      sl_arena_reset(&arena);
  }
  assert_int_equal(hits, 334 + 333); /* A0 and B1 match, C2 does not */
  sl_arena_free(&arena);
  sl_expr_free(e);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Parses src; a failure must carry a column inside the source and a
 * "column C: " message; a success is evaluated. Never crashes. */
static void fuzz_one(const char *src, const cJSON *row,
                     struct sl_arena *arena) {
  struct sl_error err = {0};
  int col = -1;
  struct sl_expr *e = sl_expr_parse(src, &col, &err);
  if (!e) {
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "column %d: ", col);
    if (col < 1 || col > (int)strlen(src) + 1 ||
        strncmp(err.msg, prefix, strlen(prefix)) || err.code != SL_ERR_CONFIG)
      fail_msg("`%s`: bad error col %d \"%s\"", src, col, err.msg);
    return;
  }
  struct sl_record rec = fake_rec;
  struct sl_eval_ctx ctx = {.row = row,
                            .rec = &rec,
                            .header = fake_header,
                            .arena = arena,
                            .now_ms = 5};
  struct sl_value v;
  size_t n;
  int rc = sl_expr_eval(e, &ctx, &v, &err);
  if (rc != 0 && rc != SL_ERR_INVAL)
    fail_msg("`%s`: eval rc %d", src, rc);
  if (rc == 0 && v.type == SL_V_STR && v.u.s.n) /* touch the bytes */
    (void)memchr(v.u.s.p, 0x7f, v.u.s.n);
  (void)sl_expr_static_type(e);
  (void)sl_expr_field_path(e, &n);
  sl_expr_free(e);
}

static void test_fuzz(void **state) {
  (void)state;
  static const char *const corpus[] = {
      "a + b * 2 == 7 && !c",
      "lower(s) in ['x', 'y'] || contains(s, 'q')",
      "substr(s, -3, 2) + to_string(i / 3)",
      "coalesce(n, i, 5) % 3 >= 1",
      "@headers.trace == 'abc' && @partition < 10",
      "`odd name`.x - -1.5e3 != null",
      "to_int(s) + to_float('2.5') * len(arr)",
      "'\\u00e9\\ud83d\\ude00' + \"\\\"\\n\"",
      "(((i)))+(((i)))",
      "o.k.z == o && arr == [1]",
      "i in [i, i + 1, null] && upper(@key) == 'K1'",
      "9223372036854775807 + i",
  };
  static const char alphabet[] = "abinostxz_019.,()[]+-*/%<>=!&|\"'`@\\u eE \t";
  cJSON *row = cJSON_Parse(
      "{\"a\":1,\"b\":3,\"c\":false,\"s\":\"hello\",\"i\":7,\"n\":null,"
      "\"arr\":[1,2],\"o\":{\"k\":{\"z\":1}},\"odd name\":{\"x\":2},"
      "\"x\":2.5,\"t\":true}");
  struct sl_arena arena = {0};
  char buf[256];
  /* Garbage from an alphabet of expression characters and random bytes. */
  for (int it = 0; it < 20000; it++) {
    size_t len = rnd() % 40;
    for (size_t i = 0; i < len; i++) {
      if (rnd() % 8 == 0)
        buf[i] = (char)(1 + rnd() % 255);
      else
        buf[i] = alphabet[rnd() % (sizeof(alphabet) - 1)];
    }
    buf[len] = '\0';
    fuzz_one(buf, row, &arena);
    sl_arena_reset(&arena);
  }
  /* Mutations of valid expressions: they reach deeper into the parser and
   * the evaluator. */
  for (int it = 0; it < 30000; it++) {
    const char *src = corpus[rnd() % SL_ARRAY_LEN(corpus)];
    size_t len = strlen(src);
    memcpy(buf, src, len + 1);
    int edits = 1 + (int)(rnd() % 3);
    for (int k = 0; k < edits; k++) {
      size_t pos = len ? rnd() % len : 0;
      char c = alphabet[rnd() % (sizeof(alphabet) - 1)];
      switch (rnd() % 3) {
      case 0: /* replace */
        if (len)
          buf[pos] = c;
        break;
      case 1: /* insert */
        if (len + 1 < sizeof(buf)) {
          memmove(buf + pos + 1, buf + pos, len - pos + 1);
          buf[pos] = c;
          len++;
        }
        break;
      default: /* delete */
        if (len) {
          memmove(buf + pos, buf + pos + 1, len - pos);
          len--;
        }
      }
    }
    fuzz_one(buf, row, &arena);
    sl_arena_reset(&arena);
  }
  for (size_t i = 0; i < SL_ARRAY_LEN(corpus); i++)
    fuzz_one(corpus[i], row, &arena);
  sl_arena_free(&arena);
  cJSON_Delete(row);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_literals, teardown),
      cmocka_unit_test_teardown(test_unicode_escapes, teardown),
      cmocka_unit_test_teardown(test_precedence, teardown),
      cmocka_unit_test_teardown(test_precedence_fields, teardown),
      cmocka_unit_test_teardown(test_arithmetic, teardown),
      cmocka_unit_test_teardown(test_string_concat, teardown),
      cmocka_unit_test_teardown(test_comparisons, teardown),
      cmocka_unit_test_teardown(test_logic_truth_tables, teardown),
      cmocka_unit_test_teardown(test_short_circuit_and_logic_errors, teardown),
      cmocka_unit_test_teardown(test_null_semantics, teardown),
      cmocka_unit_test_teardown(test_in, teardown),
      cmocka_unit_test_teardown(test_fields, teardown),
      cmocka_unit_test_teardown(test_field_path, teardown),
      cmocka_unit_test_teardown(test_metadata, teardown),
      cmocka_unit_test_teardown(test_string_functions, teardown),
      cmocka_unit_test_teardown(test_conversions, teardown),
      cmocka_unit_test_teardown(test_coalesce_is_lazy, teardown),
      cmocka_unit_test_teardown(test_parse_errors, teardown),
      cmocka_unit_test_teardown(test_static_type_errors, teardown),
      cmocka_unit_test_teardown(test_static_type, teardown),
      cmocka_unit_test_teardown(test_folding, teardown),
      cmocka_unit_test_teardown(test_value_hash_equal, teardown),
      cmocka_unit_test_teardown(test_reuse_many_rows, teardown),
      cmocka_unit_test_teardown(test_fuzz, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
