/* fuzz_record.c - the JSON record path: sl_json_parse_object (simdjson to
 * cJSON rows), field access in filter and map expressions, select and
 * drop with dotted paths, serializing rows, window keys and aggregates,
 * the snapshot of the window state and the operators after a window.
 *
 * Input: records, one per line (at most 64). Every record goes through a
 * stateless pipeline and through a windowed one; the window state is
 * then serialized and restored into a second state (which must accept
 * what the first one wrote), and both are flushed through the operators
 * after the window. */
#include <cjson/cJSON.h>

#include "src/pipeline.h"
#include "src/util.h"
#include "src/window.h"
#include "tests/fuzz/fuzz.h"

#define MAX_RECORDS 64

static const char stateless_yaml[] =
    "pipeline:\n"
    "  - parse: json\n"
    "  - filter: '@offset >= 0 && (user != \"drop-me\" || ts == null)'\n"
    "  - map: {cents: 'amount * 100', u: 'lower(user)', city: geo.city,\n"
    "          n2: 'coalesce(n, 0) + 1', l: 'len(tags)',\n"
    "          s: 'to_string(geo)', \"geo.zip\": 'substr(user, 1, 2)'}\n"
    "  - select: [user, cents, u, city, ts, geo.city, geo.zip, tags, n2, l,"
    " s]\n"
    "  - drop: [tags, geo.missing]\n";

static const char windowed_yaml[] =
    "pipeline:\n"
    "  - parse: json\n"
    "  - filter: 'ts != null'\n"
    "  - window:\n"
    "      hopping: {size: 10s, slide: 5s}\n"
    "      time: ts\n"
    "      watermark: 1s\n"
    "      group_by: [user, geo.city, tags]\n"
    "      aggregate: {n: count(), s: sum(amount), lo: min(user),\n"
    "                  hi: max(amount), a: avg(amount),\n"
    "                  d: count_distinct(item)}\n"
    "      output: append\n"
    "  - map: {m: 'n * 2', k: 'to_string(user) + \"/\" + to_string(n)'}\n";

static struct sl_cfg_node *tree1, *tree2;
static struct sl_pipeline *stateless, *windowed;

static struct sl_pipeline *compile(const char *yaml, struct sl_cfg_node **t) {
  struct sl_error err = {0};
  struct sl_pipeline *p = NULL;
  *t = sl_cfg_load_string("fuzz.yaml", yaml, strlen(yaml), &err);
  if (!*t || sl_pipeline_compile(sl_cfg_get(*t, "pipeline"), &p, &err)) {
    fprintf(stderr, "fuzz_record: %s\n", err.msg);
    abort();
  }
  return p;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  stateless = compile(stateless_yaml, &tree1);
  windowed = compile(windowed_yaml, &tree2);
  return 0;
}

static void emit_cb(cJSON *row, void *arg) {
  cJSON_AddItemToArray(arg, row);
}

/* Emits every window of st (flush) through the operators after the
 * window. */
static void flush(struct sl_wstate *st, unsigned shards) {
  cJSON *rows = cJSON_CreateArray();
  for (unsigned s = 0; s < shards; s++)
    sl_wstate_emit_shard(st, s, true, emit_cb, rows);
  size_t n = (size_t)cJSON_GetArraySize(rows);
  cJSON **v = sl_calloc(n ? n : 1, sizeof(*v));
  for (size_t i = 0; i < n; i++)
    v[i] = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  struct sl_pipe_task *post = sl_pipe_task_new(windowed);
  struct sl_batch out = {0}, dead = {0};
  struct sl_error err = {0};
  sl_pipe_post(post, v, n, false, 0, &out, &dead, &err);
  sl_pipe_task_free(post);
  sl_batch_free(&out);
  sl_batch_free(&dead);
  free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sl_batch in = {0}, out = {0}, dead = {0};
  sl_batch_reserve(&in, MAX_RECORDS);
  const char *p = (const char *)data, *end = p + size;
  while (p <= end && in.n < MAX_RECORDS) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    in.recs[in.n] = (struct sl_record){.value = p,
                                       .value_len = n,
                                       .topic = "t",
                                       .partition = 1,
                                       .offset = (int64_t)in.n,
                                       .timestamp = 1700000000000LL};
    in.n++;
    p += n + 1;
  }
  struct sl_error err = {0};

  struct sl_pipe_task *t = sl_pipe_task_new(stateless);
  sl_pipe_run(t, &in, SL_WINDOW_NO_WATERMARK, false, 0, &out, &dead, &err);
  for (size_t i = 0; i < out.n; i++)
    if (!out.recs[i].value)
      abort();
  sl_pipe_task_free(t);

  t = sl_pipe_task_new(windowed);
  if (sl_pipe_run(t, &in, SL_WINDOW_NO_WATERMARK, false, 0, &out, &dead,
                  &err) == 0) {
    struct sl_window_spec spec = *sl_pipeline_window(windowed);
    spec.shards = 4;
    struct sl_wstate *st = sl_wstate_new(&spec), *st2 = sl_wstate_new(&spec);
    struct sl_wpartial *part = sl_pipe_task_partial(t);
    for (unsigned s = 0; s < spec.shards; s++)
      sl_wstate_merge_shard(st, s, &part, 1);
    sl_wstate_advance(st, &part, 1);
    for (unsigned s = 0; s < spec.shards; s++) {
      void *img = NULL;
      size_t len = 0;
      if (sl_wstate_shard_serialize(st, s, &img, &len, &err))
        abort();
      if (sl_wstate_shard_restore(st2, s, img, len, &err)) {
        fprintf(stderr, "restore of a fresh image: %s\n", err.msg);
        abort();
      }
      free(img);
    }
    if (sl_wstate_windows(st) != sl_wstate_windows(st2))
      abort();
    flush(st, spec.shards);
    flush(st2, spec.shards);
    sl_wstate_free(st);
    sl_wstate_free(st2);
  }
  sl_pipe_task_free(t);
  sl_batch_free(&in);
  sl_batch_free(&out);
  sl_batch_free(&dead);
  return 0;
}
