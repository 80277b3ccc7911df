/* fuzz_redis_template.c - the Redis sink's command templates
 * (sinks/redis/template.c on the shared compiler, src/template.c): parse
 * with its checks of command names, arity and literal numbers, then
 * render.
 *
 * Input: the template, then optionally a newline and the record's value,
 * parsed as a JSON object when the template reads fields, as the sink
 * does. A parsed template is rendered for a record with a key and for a
 * keyless tombstone without a row. */
#include <cjson/cJSON.h>

#include "sinks/redis/template.h"
#include "src/json.h"
#include "src/util.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  return 0;
}

static void render(const struct sl_rcmd *c, const struct sl_record *r,
                   const cJSON *row, struct sl_rargs *a) {
  struct sl_error err = {0};
  if (sl_rcmd_render(c, r, row, a, &err) == 0) {
    for (size_t i = 0; i < a->argc; i++)
      if (a->argvlen[i] && !a->argv[i])
        abort();
  } else if (!err.msg[0] || err.code != SL_ERR_INVAL) {
    abort(); /* a rejected record always gets its reason */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *nl = memchr(data, '\n', size);
  size_t tlen = nl ? (size_t)(nl - (const char *)data) : size;
  char *src = sl_malloc(tlen + 1);
  memcpy(src, data, tlen);
  src[tlen] = '\0';
  struct sl_error err = {0};
  int col = 0;
  struct sl_rcmd *c;
  if (sl_rcmd_parse(src, &c, &col, &err)) {
    /* a rejected template always gets its reason and a column in it */
    if (!err.msg[0] || err.code != SL_ERR_CONFIG || col < 1 ||
        (size_t)col > tlen + 1)
      abort();
    free(src);
    return 0;
  }
  (void)sl_rcmd_has_key(c);
  const char *const *f = sl_rcmd_fields(c);
  for (size_t i = 0; f && f[i]; i++)
    (void)strlen(f[i]);
  const char *value = nl ? nl + 1 : "";
  size_t vlen = nl ? size - tlen - 1 : 0;
  cJSON *row = NULL;
  if (sl_rcmd_needs_json(c)) {
    struct sl_json_error je;
    row = sl_json_parse_object(value, vlen, &je);
  }
  struct sl_record r = {.key = "k-1",
                        .key_len = 3,
                        .value = value,
                        .value_len = vlen,
                        .topic = "events",
                        .partition = 7,
                        .offset = 42,
                        .timestamp = 1700000000000LL};
  struct sl_rargs a = {0};
  render(c, &r, row, &a);
  struct sl_record tomb = {.topic = "t", .timestamp = -1};
  render(c, &tomb, NULL, &a);
  sl_rargs_free(&a);
  cJSON_Delete(row);
  sl_rcmd_free(c);
  free(src);
  return 0;
}
