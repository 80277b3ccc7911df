/* test_json.c - records' JSON text to cJSON rows (src/json.cc): the rows
 * equal what cJSON's own parser builds from valid objects, and everything
 * that is not one JSON object is refused with its reason. */
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "src/json.h"

static cJSON *parse(const char *s, struct sl_json_error *e) {
  return sl_json_parse_object(s, strlen(s), e);
}

/* Valid objects give the tree cJSON's parser gives, value for value. */
static void rows_equal_cjsons_own(void **state) {
  (void)state;
  const char *docs[] = {
      "{}",
      " \t\n{ } \n",
      "{\"id\":10,\"user\":\"u0035\",\"page\":\"/p2\",\"event\":\"view\","
      "\"amount\":9.63,\"ts\":1700000000100}",
      "{\"s\":\"tab\\tquote\\\" slash\\/ back\\\\ nl\\n\"}",
      "{\"u\":\"caf\\u00e9 \\ud83d\\ude00 \xc3\xa9\"}",
      "{\"n\":-0.5,\"e\":1.5e3,\"E\":-2E-2,\"z\":0,\"big\":"
      "12345678901234567890}",
      "{\"t\":true,\"f\":false,\"nil\":null}",
      "{\"a\":[1,\"two\",[3],{\"four\":4},[],{}],\"o\":{\"p\":{\"q\":null}}}",
      "{\"dup\":1,\"dup\":2}",
      "{\"\":\"empty key\"}",
  };
  for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
    struct sl_json_error e;
    cJSON *mine = parse(docs[i], &e);
    cJSON *theirs = cJSON_Parse(docs[i]);
    if (!mine)
      fail_msg("doc %zu refused: %s at %zu", i, e.what, e.at);
    assert_int_equal(e.status, SL_JSON_OK);
    assert_non_null(theirs);
    char *a = cJSON_PrintUnformatted(mine), *b = cJSON_PrintUnformatted(theirs);
    assert_string_equal(a, b);
    /* cJSON_Compare looks members up by name: not for duplicate keys. */
    if (!strstr(docs[i], "dup") && !cJSON_Compare(mine, theirs, 1))
      fail_msg("doc %zu: %s differs from cJSON's", i, a);
    free(a);
    free(b);
    cJSON_Delete(mine);
    cJSON_Delete(theirs);
  }
}

static void numbers_are_exact_doubles(void **state) {
  (void)state;
  struct sl_json_error e;
  cJSON *r =
      parse("{\"ts\":1700000000100,\"x\":0.1,\"m\":-9007199254740993}", &e);
  assert_non_null(r);
  assert_true(cJSON_GetObjectItem(r, "ts")->valuedouble == 1700000000100.0);
  assert_true(cJSON_GetObjectItem(r, "x")->valuedouble == 0.1);
  assert_true(cJSON_GetObjectItem(r, "m")->valuedouble == -9007199254740992.0);
  cJSON_Delete(r);
}

/* The input needs no terminator: only the n bytes given are read. */
static void reads_only_the_bytes_given(void **state) {
  (void)state;
  struct sl_json_error e;
  const char *s = "{\"a\":1}{\"b\":2}";
  cJSON *r = sl_json_parse_object(s, 7, &e);
  assert_non_null(r);
  assert_non_null(cJSON_GetObjectItem(r, "a"));
  assert_null(cJSON_GetObjectItem(r, "b"));
  cJSON_Delete(r);
  /* A heap copy without a terminator, for ASan to watch. */
  char *h = malloc(7);
  memcpy(h, s, 7);
  r = sl_json_parse_object(h, 7, &e);
  assert_non_null(r);
  cJSON_Delete(r);
  free(h);
}

static void refuses_what_is_not_one_object(void **state) {
  (void)state;
  static const struct {
    const char *doc;
    enum sl_json_status status;
    const char *what; /* substring of the reason, or NULL */
  } bad[] = {
      {"", SL_JSON_INVALID, NULL},
      {"   ", SL_JSON_INVALID, NULL},
      {"{broken", SL_JSON_INVALID, NULL},
      {"{\"a\":1,}", SL_JSON_INVALID, NULL},
      {"{\"a\" 1}", SL_JSON_INVALID, NULL},
      {"{\"a\":tru}", SL_JSON_INVALID, NULL},
      {"{\"a\":1e}", SL_JSON_INVALID, NULL},
      {"{\"a\":01}", SL_JSON_INVALID, NULL},
      {"{\"a\":\"\xff\"}", SL_JSON_INVALID, NULL},
      {"{\"a\":\"unterminated}", SL_JSON_INVALID, NULL},
      {"{\"a\":[1,2}", SL_JSON_INVALID, NULL},
      {"{\"a\":1} x", SL_JSON_INVALID, "after"},
      {"{\"a\":1}{\"b\":2}", SL_JSON_INVALID, "after"},
      {"[1,", SL_JSON_INVALID, NULL},
      {"[1,2]", SL_JSON_NOT_OBJECT, "an array"},
      {"\"s\"", SL_JSON_NOT_OBJECT, "a string"},
      {"42", SL_JSON_NOT_OBJECT, "a number"},
      {"true", SL_JSON_NOT_OBJECT, "a boolean"},
      {"null", SL_JSON_NOT_OBJECT, "null"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct sl_json_error e;
    cJSON *r = parse(bad[i].doc, &e);
    if (r)
      fail_msg("'%s' accepted", bad[i].doc);
    if (e.status != bad[i].status)
      fail_msg("'%s': status %d, want %d (%s)", bad[i].doc, e.status,
               bad[i].status, e.what);
    assert_non_null(e.what);
    assert_true(strlen(e.what) > 0);
    if (bad[i].what && !strstr(e.what, bad[i].what))
      fail_msg("'%s': reason '%s' lacks '%s'", bad[i].doc, e.what, bad[i].what);
    assert_true(e.at <= strlen(bad[i].doc));
  }
}

/* Where a record goes wrong is the byte reported. */
static void reports_where_it_stopped(void **state) {
  (void)state;
  struct sl_json_error e;
  assert_null(parse("{\"a\":1} x", &e));
  assert_int_equal(e.at, 8);
  assert_null(parse("{\"a\":1,\"b\":tru}", &e));
  assert_true(e.at >= 7 && e.at <= 12);
}

/* A large record after small ones: the thread's buffer grows. */
static void large_records(void **state) {
  (void)state;
  size_t n = 1 << 20;
  char *big = malloc(n + 32);
  strcpy(big, "{\"blob\":\"");
  size_t at = strlen(big);
  memset(big + at, 'x', n);
  strcpy(big + at + n, "\"}");
  struct sl_json_error e;
  cJSON *small = parse("{\"a\":1}", &e);
  assert_non_null(small);
  cJSON *r = parse(big, &e);
  assert_non_null(r);
  assert_int_equal(strlen(cJSON_GetObjectItem(r, "blob")->valuestring), n);
  cJSON_Delete(small);
  cJSON_Delete(r);
  free(big);
}

/* Nesting: SL_JSON_MAX_DEPTH levels (the row counts as one) parse, one
 * more is refused as too deep, for arrays and objects alike. The rows are
 * walked recursively, so this runs on a stack as large as a worker's. */
static char *nested(size_t depth, bool objects) {
  /* {"a": then depth-1 containers, then 1, then the closers */
  char *s = malloc(8 * depth + 16), *p = s;
  p += sprintf(p, "{\"a\":");
  for (size_t i = 1; i < depth; i++)
    p += sprintf(p, objects ? "{\"k\":" : "[");
  p += sprintf(p, "1");
  for (size_t i = 1; i < depth; i++)
    *p++ = objects ? '}' : ']';
  *p++ = '}';
  *p = 0;
  return s;
}

static void *nesting_thread(void *arg) {
  int *failures = arg;
  for (int objects = 0; objects < 2; objects++) {
    struct sl_json_error e;
    char *ok = nested(SL_JSON_MAX_DEPTH, objects);
    cJSON *r = parse(ok, &e);
    if (!r)
      ++*failures;
    cJSON_Delete(r);
    free(ok);
    char *deep = nested(SL_JSON_MAX_DEPTH + 1, objects);
    r = parse(deep, &e);
    if (r || e.status != SL_JSON_TOO_DEEP)
      ++*failures;
    cJSON_Delete(r);
    free(deep);
  }
  return NULL;
}

static void nesting_limit(void **state) {
  (void)state;
  pthread_attr_t a;
  pthread_t th;
  int failures = 0;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, (size_t)256 << 20);
  assert_int_equal(pthread_create(&th, &a, nesting_thread, &failures), 0);
  pthread_join(th, NULL);
  pthread_attr_destroy(&a);
  assert_int_equal(failures, 0);
}

static void utf8_validation(void **state) {
  (void)state;
  assert_true(sl_utf8_valid("caf\xc3\xa9", 5));
  assert_false(sl_utf8_valid("caf\xc3", 4));
  assert_false(sl_utf8_valid("\xff", 1));
  assert_true(sl_utf8_valid("", 0));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rows_equal_cjsons_own),
      cmocka_unit_test(numbers_are_exact_doubles),
      cmocka_unit_test(reads_only_the_bytes_given),
      cmocka_unit_test(refuses_what_is_not_one_object),
      cmocka_unit_test(reports_where_it_stopped),
      cmocka_unit_test(large_records),
      cmocka_unit_test(nesting_limit),
      cmocka_unit_test(utf8_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
