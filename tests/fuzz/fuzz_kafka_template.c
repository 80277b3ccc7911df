/* fuzz_kafka_template.c - the Kafka sink's key, value and topic templates
 * (sinks/kafka/template.c on the shared compiler, src/template.c):
 * compile, then render.
 *
 * Input: the template, then optionally a newline and the record's value,
 * which is parsed as a JSON object for {field} placeholders as the sink
 * does. A compiled template is rendered for a record with a key and for a
 * keyless tombstone without a row. */
#include <cjson/cJSON.h>

#include "sinks/kafka/ksink.h"
#include "src/json.h"
#include "src/util.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *nl = memchr(data, '\n', size);
  size_t tlen = nl ? (size_t)(nl - (const char *)data) : size;
  char *src = sl_malloc(tlen + 1);
  memcpy(src, data, tlen);
  src[tlen] = '\0';
  struct sl_ktpl *t = NULL;
  struct sl_error err = {0};
  if (sl_ktpl_compile(src, &t, &err)) {
    if (!err.msg[0])
      abort();
    free(src);
    return 0;
  }
  const char *value = nl ? nl + 1 : "";
  size_t vlen = nl ? size - tlen - 1 : 0;
  cJSON *row = NULL;
  if (sl_ktpl_needs_row(t)) {
    struct sl_json_error je;
    row = sl_json_parse_object(value, vlen, &je);
  }
  struct sl_record r = {.key = "k-1",
                        .key_len = 3,
                        .value = value,
                        .value_len = vlen,
                        .topic = "events",
                        .partition = 7,
                        .offset = 9007199254740993LL,
                        .timestamp = -1};
  struct sl_buf out = {0};
  size_t n = sl_ktpl_render(t, &r, row, &out);
  if (n != out.len)
    abort();
  struct sl_record tomb = {.topic = "t", .partition = 0, .offset = 0};
  sl_ktpl_render(t, &tomb, NULL, &out);
  sl_buf_free(&out);
  cJSON_Delete(row);
  sl_ktpl_free(t);
  free(src);
  return 0;
}
