/* test_numfmt.c - numbers and rows to text on the output path
 * (src/numfmt.cc, sl_json_append in src/value.c): every double prints as
 * the shortest text that reads back as the same bits, laid out as %g lays
 * it out, and a row prints as cJSON's own printer prints it. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "src/value.h"

/* splitmix64, for reproducible random bit patterns. */
static uint64_t next(uint64_t *s) {
  uint64_t x = (*s += 0x9e3779b97f4a7c15ULL);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static double from_bits(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof(d));
  return d;
}

static uint64_t bits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof(u));
  return u;
}

/* Significant digits of a %g-style text: those of the mantissa without
 * leading or trailing zeros. */
static int digits(const char *s) {
  char d[40];
  int n = 0;
  for (; *s && *s != 'e'; s++)
    if (*s >= '0' && *s <= '9')
      d[n++] = *s;
  int lo = 0;
  while (lo < n && d[lo] == '0')
    lo++;
  while (n > lo && d[n - 1] == '0')
    n--;
  return n - lo;
}

static void check_shortest(double d) {
  char buf[40], ref[40];
  int n = sl_fmt_double(d, buf, sizeof(buf));
  assert_int_equal(n, (int)strlen(buf));
  if (bits(strtod(buf, NULL)) != bits(d))
    fail_msg("%s does not read back as %.17g", buf, d);
  /* no %.Pg with fewer digits reads back */
  for (int p = 1; p < 17; p++) {
    snprintf(ref, sizeof(ref), "%.*g", p, d);
    if (bits(strtod(ref, NULL)) == bits(d)) {
      if (digits(buf) > p)
        fail_msg("%s for %.17g: %%.%dg (%s) is shorter", buf, d, p, ref);
      break;
    }
  }
}

/* Random bit patterns (every exponent) and random decimals of a few
 * digits (what sums of prices are) read back exactly and are shortest. */
static void doubles_are_shortest_and_exact(void **state) {
  (void)state;
  uint64_t s = 42;
  for (int i = 0; i < 50000; i++) {
    double d = from_bits(next(&s));
    if (isfinite(d))
      check_shortest(d);
  }
  for (int i = 0; i < 50000; i++) {
    uint64_t u = next(&s);
    double d = (double)(int64_t)(u % 2000000001 - 1000000000) /
               pow(10, (double)((u >> 40) % 8));
    check_shortest(d);
    check_shortest(d * 3.1);
  }
  check_shortest(DBL_MAX);
  check_shortest(DBL_MIN);
  check_shortest(4.9406564584124654e-324);
  check_shortest(0.1 + 0.2);
}

/* The layout is %g's: decimals for exponents -4 to 16, else d.ddde+XX. */
static void doubles_are_laid_out_as_g(void **state) {
  (void)state;
  struct {
    double d;
    const char *text;
  } cases[] = {
      {0.1, "0.1"},
      {-2.5, "-2.5"},
      {12.34, "12.34"},
      {0.30000000000000004, "0.30000000000000004"},
      {0.0001, "0.0001"},
      {0.00001234, "1.234e-05"},
      {1e16, "10000000000000000"},
      {1.5e17, "1.5e+17"},
      {1e100, "1e+100"},
      {-1e-300, "-1e-300"},
      {0.0, "0"},
      {-0.0, "-0"},
      {INFINITY, "inf"},
      {-INFINITY, "-inf"},
      {NAN, "nan"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char buf[40];
    int n = sl_fmt_double(cases[i].d, buf, sizeof(buf));
    assert_string_equal(buf, cases[i].text);
    assert_int_equal(n, (int)strlen(cases[i].text));
  }
}

static void integers_print_as_printf_does(void **state) {
  (void)state;
  int64_t fixed[] = {0, 1, -1, 9, 10, -10, 1234567890, INT64_MAX, INT64_MIN};
  uint64_t s = 7;
  for (int i = 0; i < 100000 + 9; i++) {
    int64_t v = i < 9 ? fixed[i] : (int64_t)(next(&s) >> (next(&s) % 64));
    if (i >= 9 && (i & 1))
      v = -v;
    char mine[32], ref[32];
    int n = sl_fmt_i64(v, mine, sizeof(mine));
    snprintf(ref, sizeof(ref), "%" PRId64, v);
    assert_string_equal(mine, ref);
    assert_int_equal(n, (int)strlen(ref));
  }
}

static char *print(const cJSON *v, const char *prefix, size_t *len) {
  struct sl_buf buf = {0};
  if (prefix)
    sl_buf_adds(&buf, prefix);
  sl_json_append(v, &buf);
  assert_true(buf.len < buf.cap);
  *len = buf.len;
  return sl_buf_take(&buf);
}

/* Rows without fractions print byte for byte as cJSON prints them:
 * escapes, UTF-8, nesting, empty containers, literals. */
static void rows_print_as_cjson_prints_them(void **state) {
  (void)state;
  const char *docs[] = {
      "{}",
      "[]",
      "{\"id\":10,\"user\":\"u0035\",\"event\":\"view\",\"ts\":1700000000}",
      "{\"s\":\"tab\\tquote\\\" back\\\\ nl\\n cr\\r bs\\b ff\\f\"}",
      "{\"c\":\"\\u0001\\u001f \\u007f\"}",
      "{\"u\":\"caf\\u00e9 \\ud83d\\ude00\"}",
      "{\"t\":true,\"f\":false,\"nil\":null,\"neg\":-7,\"zero\":-0}",
      "{\"a\":[1,\"two\",[3],{\"four\":4},[],{}],\"o\":{\"p\":{\"q\":null}}}",
      "{\"dup\":1,\"dup\":2,\"\":\"empty key\",\"k\\\"q\":1}",
      "[\"\",0,[[[]]]]",
  };
  for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
    cJSON *j = cJSON_Parse(docs[i]);
    assert_non_null(j);
    char *ref = cJSON_PrintUnformatted(j);
    size_t len;
    char *mine = print(j, NULL, &len);
    assert_string_equal(mine, ref);
    assert_int_equal(len, strlen(ref));
    free(mine);
    /* appended after what the buffer held */
    mine = print(j, "prefix,", &len);
    assert_int_equal(strncmp(mine, "prefix,", 7), 0);
    assert_string_equal(mine + 7, ref);
    free(mine);
    cJSON_free(ref);
    cJSON_Delete(j);
  }
}

/* Numbers: integral ones below 2^53 as integers, others as
 * sl_fmt_double, NaN and infinities as null; every one reads back. */
static void row_numbers_read_back(void **state) {
  (void)state;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "big", 4503599627370496.0);
  cJSON_AddNumberToObject(o, "huge", 1e300);
  cJSON_AddNumberToObject(o, "frac", 1234.5678);
  cJSON_AddNumberToObject(o, "tiny", 1.5e-7);
  cJSON_AddNumberToObject(o, "nan", NAN);
  cJSON_AddNumberToObject(o, "inf", -INFINITY);
  size_t len;
  char *s = print(o, NULL, &len);
  assert_string_equal(s, "{\"big\":4503599627370496,\"huge\":1e+300,"
                         "\"frac\":1234.5678,\"tiny\":1.5e-07,"
                         "\"nan\":null,\"inf\":null}");
  free(s);
  cJSON_Delete(o);

  uint64_t r = 9;
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < 10000; i++) {
    double d = from_bits(next(&r));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(isfinite(d) ? d : 0.5));
  }
  s = print(a, NULL, &len);
  cJSON *back = cJSON_Parse(s);
  assert_non_null(back);
  const cJSON *x = a->child, *y = back->child;
  for (; x && y; x = x->next, y = y->next)
    if (bits(x->valuedouble) != bits(y->valuedouble))
      fail_msg("%.17g came back as %.17g", x->valuedouble, y->valuedouble);
  assert_null(x);
  assert_null(y);
  cJSON_Delete(back);
  free(s);
  cJSON_Delete(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(doubles_are_shortest_and_exact),
      cmocka_unit_test(doubles_are_laid_out_as_g),
      cmocka_unit_test(integers_print_as_printf_does),
      cmocka_unit_test(rows_print_as_cjson_prints_them),
      cmocka_unit_test(row_numbers_read_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
