/* test_template.c - the sinks' shared template compiler (src/template.c):
 * parts, positioned errors in both wordings, field checks, rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "src/template.h"

/* The Redis sink's options for one argument. */
#define ARG (SL_TPL_ARG | SL_TPL_OLD_META | SL_TPL_DOTTED_KEYS | SL_TPL_REQUIRE)

static const struct sl_record rec = {.key = "k1",
                                     .key_len = 2,
                                     .value = "raw",
                                     .value_len = 3,
                                     .topic = "clicks",
                                     .partition = 3,
                                     .offset = 1234567890123,
                                     .timestamp = -1};

static const char *row_json =
    "{\"user\":\"u1\",\"n\":3,\"f\":80.01,\"big\":1e300,\"ok\":true,"
    "\"o\":{\"a\":{\"b\":\"deep\"}},\"arr\":[1,2],\"dotted.name\":\"x\","
    "\"dotted\":{\"name\":\"y\"},\"nil\":null,\"neg\":-7,\"half\":0.5}";

/* Renders tpl (compiled with flags) for rec and row_json (json false: no
 * row); returns the text, or "ERR: <message>". */
static const char *render(const char *tpl, unsigned flags, bool json) {
  static char out[1100];
  struct sl_tpl t;
  struct sl_error err = {0};
  int col = 0;
  if (sl_tpl_compile(&t, tpl, flags, &col, &err))
    fail_msg("'%s': %s (column %d)", tpl, err.msg, col);
  cJSON *row = json ? cJSON_Parse(row_json) : NULL;
  struct sl_buf buf = {0};
  if (sl_tpl_render(&t, &rec, row, &buf, &err)) {
    assert_int_equal(err.code, SL_ERR_INVAL);
    snprintf(out, sizeof(out), "ERR: %s", err.msg);
  } else {
    assert_true(!buf.p || buf.len < buf.cap);
    snprintf(out, sizeof(out), "%.*s", (int)buf.len, buf.p ? buf.p : "");
  }
  sl_buf_free(&buf);
  cJSON_Delete(row);
  sl_tpl_clear(&t);
  return out;
}

/* Compiles tpl with flags, expecting an error at col whose message
 * contains want. */
static void compile_fails(const char *tpl, unsigned flags, int want_col,
                          const char *want) {
  struct sl_tpl t;
  struct sl_error err = {0};
  int col = 0;
  if (sl_tpl_compile(&t, tpl, flags, &col, &err) == 0) {
    sl_tpl_clear(&t);
    fail_msg("'%s' compiled", tpl);
  }
  assert_int_equal(err.code, SL_ERR_CONFIG);
  assert_int_equal(t.n, 0);
  if (!strstr(err.msg, want))
    fail_msg("'%s': message '%s' lacks '%s'", tpl, err.msg, want);
  if (col != want_col)
    fail_msg("'%s': column %d, want %d (%s)", tpl, col, want_col, err.msg);
}

static void parts_of_literals_fields_and_metadata(void **state) {
  (void)state;
  struct sl_tpl t;
  struct sl_error err = {0};
  int col = 0;
  assert_int_equal(
      sl_tpl_compile(&t, "a{{b}}c-{user}.{o.a.b}:{@offset}", 0, &col, &err), 0);
  assert_int_equal(t.n, 6);
  assert_int_equal(t.parts[0].kind, SL_TPL_LIT);
  assert_string_equal(t.parts[0].text, "a{b}c-"); /* merged, escapes done */
  assert_int_equal(t.parts[0].len, 6);
  assert_int_equal(t.parts[0].col, 1);
  assert_int_equal(t.parts[1].kind, SL_TPL_FIELD);
  assert_string_equal(t.parts[1].text, "user");
  assert_int_equal(t.parts[1].nsegs, 1);
  assert_int_equal(t.parts[1].col, 9);
  assert_int_equal(t.parts[2].kind, SL_TPL_LIT);
  assert_string_equal(t.parts[2].text, ".");
  assert_int_equal(t.parts[3].kind, SL_TPL_FIELD);
  assert_string_equal(t.parts[3].text, "o.a.b");
  assert_int_equal(t.parts[3].nsegs, 3);
  assert_string_equal(t.parts[3].segs[0], "o");
  assert_string_equal(t.parts[3].segs[2], "b");
  assert_int_equal(t.parts[3].col, 16);
  assert_int_equal(t.parts[5].kind, SL_TPL_META);
  assert_int_equal(t.parts[5].meta, SL_META_OFFSET);
  assert_string_equal(t.parts[5].text, "@offset");
  assert_true(t.needs_row);
  const char *text;
  size_t len;
  assert_false(sl_tpl_literal(&t, &text, &len));
  sl_tpl_clear(&t);
  assert_int_equal(t.n, 0);

  assert_int_equal(sl_tpl_compile(&t, "{@key}-{@value}", 0, &col, &err), 0);
  assert_false(t.needs_row); /* metadata only: no JSON parse */
  sl_tpl_clear(&t);

  assert_int_equal(sl_tpl_compile(&t, "plain {{x}}", 0, &col, &err), 0);
  assert_true(sl_tpl_literal(&t, &text, &len));
  assert_string_equal(text, "plain {x}");
  sl_tpl_clear(&t);
  assert_int_equal(sl_tpl_compile(&t, "", 0, &col, &err), 0);
  assert_true(sl_tpl_literal(&t, &text, &len));
  assert_int_equal(len, 0);
  sl_tpl_clear(&t);
}

static void old_metadata_spellings(void **state) {
  (void)state;
  struct sl_tpl t;
  struct sl_error err = {0};
  int col = 0;
  /* With SL_TPL_OLD_META {_key} and {_value} are metadata ... */
  assert_int_equal(sl_tpl_compile(&t, "{_key}{_value}", ARG, &col, &err), 0);
  assert_int_equal(t.parts[0].kind, SL_TPL_META);
  assert_int_equal(t.parts[0].meta, SL_META_KEY);
  assert_int_equal(t.parts[1].meta, SL_META_VALUE);
  sl_tpl_clear(&t);
  /* ... and without it fields like any other. */
  assert_int_equal(sl_tpl_compile(&t, "{_key}", 0, &col, &err), 0);
  assert_int_equal(t.parts[0].kind, SL_TPL_FIELD);
  sl_tpl_clear(&t);
  assert_string_equal(render("{_key}|{_value}", ARG, true), "k1|raw");
}

static void errors_name_the_column(void **state) {
  (void)state;
  /* The default wording (the Kafka sink's templates). */
  compile_fails("ev-{event", 0, 4, "'{' without '}'");
  compile_fails("ab}", 0, 3, "'}' without '{'");
  compile_fails("x{}", 0, 2, "empty placeholder {}");
  compile_fails("{a{b}}", 0, 1, "'{' without '}'");
  compile_fails("--{a.}", 0, 3, "empty field name in {a.}");
  compile_fails("{.a}", 0, 1, "empty field name in {.a}");
  compile_fails("{a..b}", 0, 1, "empty field name");
  compile_fails("ab{@nope}", 0, 3,
                "unknown {@nope}; known: @key, @value, @topic, @partition, "
                "@offset, @timestamp");
  compile_fails("{@}", 0, 1, "unknown {@}");
  compile_fails("{_nope}", SL_TPL_OLD_META, 1, "unknown {_nope}");
  /* The command-line wording (the Redis sink's arguments). */
  compile_fails("k{user", ARG, 2, "unclosed placeholder '{': add '}'");
  compile_fails("{}", ARG, 1, "empty placeholder {}: name a field");
  compile_fails("{a b}", ARG, 3, "' ' inside a placeholder");
  compile_fails("{a\"b}", ARG, 3, "'\"' inside a placeholder");
  compile_fails("{a{b}}", ARG, 3, "'{' inside a placeholder");
  compile_fails("a}b", ARG, 2, "unmatched '}'");
  compile_fails("{a..b}", ARG, 2, "'a..b' is not a field path (a.b.c)");
  compile_fails("{a.}", ARG, 2, "not a field path");
  compile_fails("x{_offset}", ARG, 3, "unknown placeholder {_offset}; known:");
  compile_fails("x{@nope}", ARG, 3, "unknown placeholder {@nope}");
}

static void parse_brace_builds_piece_by_piece(void **state) {
  (void)state;
  const char *src = "say {user}}} {a";
  struct sl_tpl t;
  struct sl_error err = {0};
  int col = 0;
  size_t i = 0;
  sl_tpl_init(&t, ARG);
  sl_tpl_add_lit(&t, src, 4, 1);
  i = 4;
  assert_int_equal(sl_tpl_parse_brace(&t, src, &i, &col, &err), 0);
  assert_int_equal(i, 10); /* past {user} */
  assert_int_equal(sl_tpl_parse_brace(&t, src, &i, &col, &err), 0);
  assert_int_equal(i, 12); /* past }} */
  assert_int_equal(t.n, 3);
  assert_string_equal(t.parts[2].text, "}");
  i = 13;
  assert_int_equal(sl_tpl_parse_brace(&t, src, &i, &col, &err), SL_ERR_CONFIG);
  assert_int_equal(col, 14);
  assert_int_equal(i, 13);
  assert_int_equal(t.n, 3); /* kept what it had */
  sl_tpl_clear(&t);
}

static void renders_values_as_the_sinks_expect(void **state) {
  (void)state;
  assert_string_equal(render("{user}/{n}/{f}", 0, true), "u1/3/80.01");
  assert_string_equal(render("{big}|{neg}|{half}", 0, true), "1e+300|-7|0.5");
  assert_string_equal(render("{ok}", 0, true), "true");
  assert_string_equal(render("{o.a.b}", 0, true), "deep");
  assert_string_equal(render("{o.a}", 0, true), "{\"b\":\"deep\"}");
  assert_string_equal(render("{arr}", 0, true), "[1,2]");
  assert_string_equal(render("{{{user}}}", 0, true), "{u1}");
  assert_string_equal(
      render("{@key}|{@value}|{@topic}|{@partition}|{@offset}|{@timestamp}", 0,
             false),
      "k1|raw|clicks|3|1234567890123|-1");
  /* Missing and null render as nothing by default ... */
  assert_string_equal(render("[{missing}][{nil}][{user.x}]", 0, true),
                      "[][][]");
  assert_string_equal(render("[{user}]", 0, false), "[]"); /* no row */
  /* ... and fail with SL_TPL_REQUIRE. */
  assert_string_equal(render("{missing}", ARG, true),
                      "ERR: field 'missing' is missing");
  assert_string_equal(render("{nil}", ARG, true), "ERR: field 'nil' is null");
  assert_string_equal(render("{user.x}", ARG, true),
                      "ERR: field 'user.x' is missing");
  /* A dotted name: the path by default, the top-level key first with
   * SL_TPL_DOTTED_KEYS. */
  assert_string_equal(render("{dotted.name}", 0, true), "y");
  assert_string_equal(render("{dotted.name}", ARG, true), "x");
  assert_string_equal(render("{o.a.b}", ARG, true), "deep");
}

static void renders_missing_metadata(void **state) {
  (void)state;
  struct sl_tpl t;
  struct sl_error err = {0};
  int col;
  const struct sl_record tomb = {.topic = "t", .timestamp = -1};
  struct sl_buf buf = {0};
  assert_int_equal(sl_tpl_compile(&t, "<{@key}{@value}>", 0, &col, &err), 0);
  assert_int_equal(sl_tpl_render(&t, &tomb, NULL, &buf, &err), 0);
  assert_int_equal(buf.len, 2);
  assert_memory_equal(buf.p, "<>", 2);
  sl_tpl_clear(&t);
  assert_int_equal(sl_tpl_compile(&t, "{_key}", ARG, &col, &err), 0);
  assert_int_equal(sl_tpl_render(&t, &tomb, NULL, &buf, &err), SL_ERR_INVAL);
  assert_string_equal(err.msg, "the record has no key for {_key}");
  sl_tpl_clear(&t);
  assert_int_equal(sl_tpl_compile(&t, "{@value}", ARG, &col, &err), 0);
  assert_int_equal(sl_tpl_render(&t, &tomb, NULL, &buf, &err), SL_ERR_INVAL);
  assert_string_equal(err.msg, "the record has no value for {@value}");
  sl_tpl_clear(&t);
  sl_buf_free(&buf);
}

static void renders_binary_safe_and_appends(void **state) {
  (void)state;
  struct sl_tpl t;
  struct sl_error err = {0};
  int col;
  const struct sl_record r = {.key = "a\0b", .key_len = 3, .topic = "t"};
  struct sl_buf buf = {0};
  assert_int_equal(sl_tpl_compile(&t, "[{@key}]", 0, &col, &err), 0);
  assert_int_equal(sl_tpl_render(&t, &r, NULL, &buf, &err), 0);
  assert_int_equal(sl_tpl_render(&t, &r, NULL, &buf, &err), 0);
  assert_int_equal(buf.len, 10);
  assert_memory_equal(buf.p, "[a\0b][a\0b]", 10);
  sl_tpl_clear(&t);
  /* A long field value grows the buffer. */
  char big[5000], json[5100];
  memset(big, 'z', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  snprintf(json, sizeof(json), "{\"s\":\"%s\"}", big);
  cJSON *row = cJSON_Parse(json);
  assert_int_equal(sl_tpl_compile(&t, "{s}", 0, &col, &err), 0);
  sl_buf_reset(&buf);
  assert_int_equal(sl_tpl_render(&t, &r, row, &buf, &err), 0);
  assert_int_equal(buf.len, sizeof(big) - 1);
  assert_memory_equal(buf.p, big, buf.len);
  sl_tpl_clear(&t);
  cJSON_Delete(row);
  sl_buf_free(&buf);
}

static void checks_fields_against_the_output(void **state) {
  (void)state;
  static const char *const fields[] = {"id", "user", "o", NULL};
  struct sl_tpl t;
  struct sl_error err = {0};
  const struct sl_tpl_part *bad = NULL;
  int col;
  assert_int_equal(
      sl_tpl_compile(&t, "{user}-{o.a.b}-{@key}-{_zzz}", 0, &col, &err), 0);
  assert_int_equal(sl_tpl_check_fields(&t, fields, &bad, &err), SL_ERR_CONFIG);
  assert_string_equal(bad->text, "_zzz");
  assert_int_equal(bad->col, 23);
  assert_string_equal(err.msg, "the pipeline's output has no field '_zzz' "
                               "(fields: id, user, o)");
  sl_tpl_clear(&t);
  assert_int_equal(sl_tpl_compile(&t, "x{idd.y}", ARG, &col, &err), 0);
  assert_int_equal(sl_tpl_check_fields(&t, fields, &bad, &err), SL_ERR_CONFIG);
  assert_int_equal(bad->col, 2);
  assert_string_equal(err.msg,
                      "the pipeline's output has no field 'idd'; did you "
                      "mean 'id'? (fields: id, user, o)");
  sl_tpl_clear(&t);
  assert_int_equal(sl_tpl_compile(&t, "{user}{o.z}{@topic}", 0, &col, &err), 0);
  assert_int_equal(sl_tpl_check_fields(&t, fields, NULL, &err), 0);
  sl_tpl_clear(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parts_of_literals_fields_and_metadata),
      cmocka_unit_test(old_metadata_spellings),
      cmocka_unit_test(errors_name_the_column),
      cmocka_unit_test(parse_brace_builds_piece_by_piece),
      cmocka_unit_test(renders_values_as_the_sinks_expect),
      cmocka_unit_test(renders_missing_metadata),
      cmocka_unit_test(renders_binary_safe_and_appends),
      cmocka_unit_test(checks_fields_against_the_output),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
