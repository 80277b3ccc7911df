/* fuzz_expr.c - the expression language: lexer, Pratt parser, static
 * checks, constant folding and the evaluator.
 *
 * Input: the expression, then optionally a newline and a JSON object, the
 * row it is evaluated against (record metadata and headers come from a
 * fixed record). A parsed expression is evaluated twice, once against the
 * row and once against a raw record (no row), and its result converted to
 * JSON and hashed, as the window and the sinks do with values. */
#include <cjson/cJSON.h>

#include "src/expr.h"
#include "src/json.h"
#include "src/util.h"
#include "src/value.h"
#include "tests/fuzz/fuzz.h"

static const struct sl_record rec = {
    .key = "user-7xx", /* key_len 6: not NUL-terminated in general */
    .key_len = 6,
    .value = "{}",
    .value_len = 2,
    .topic = "events",
    .partition = 3,
    .offset = 42,
    .timestamp = 1700000000000LL,
};

static int header(const struct sl_record *r, const char *name,
                  const char **value, size_t *len) {
  (void)r;
  if (!strcmp(name, "trace")) {
    *value = "abc-123";
    *len = 3;
    return 0;
  }
  if (!strcmp(name, "empty")) {
    *value = "";
    *len = 0;
    return 0;
  }
  return -1;
}

static struct sl_arena arena;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  return 0;
}

static void use(const struct sl_value *v) {
  cJSON *j = sl_value_to_json(v);
  char num[32], *heap = NULL;
  const char *text;
  if (j) {
    sl_json_text(j, num, &heap, &text);
    cJSON_free(heap);
    cJSON_Delete(j);
  }
  (void)sl_value_hash(v, 1);
  (void)sl_value_equal(v, v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *nl = memchr(data, '\n', size);
  size_t elen = nl ? (size_t)(nl - (const char *)data) : size;
  char *src = sl_malloc(elen + 1);
  memcpy(src, data, elen);
  src[elen] = '\0';
  struct sl_error err = {0};
  int col = -1;
  struct sl_expr *e = sl_expr_parse(src, &col, &err);
  if (!e) {
    if (err.code == 0 || col < 1)
      abort(); /* a parse error always says where */
    free(src);
    return 0;
  }
  (void)sl_expr_static_type(e);
  size_t n;
  (void)sl_expr_field_path(e, &n);
  cJSON *row = NULL;
  if (nl) {
    struct sl_json_error je;
    row = sl_json_parse_object(nl + 1, size - elen - 1, &je);
  }
  struct sl_eval_ctx ctx = {.row = row,
                            .rec = &rec,
                            .header = header,
                            .arena = &arena,
                            .now_ms = 1234567};
  struct sl_value v;
  if (sl_expr_eval(e, &ctx, &v, &err) == 0)
    use(&v);
  ctx.row = NULL;
  ctx.rec = NULL;
  ctx.header = NULL;
  if (sl_expr_eval(e, &ctx, &v, &err) == 0)
    use(&v);
  cJSON_Delete(row);
  sl_arena_reset(&arena);
  sl_expr_free(e);
  free(src);
  return 0;
}
