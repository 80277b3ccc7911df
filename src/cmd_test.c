/*
 * cmd_test.c - `sluice test JOB.yaml`: runs the job file's tests: block.
 *
 *   tests:
 *     - name: keeps buys only
 *       input:                 # one record each: a map or list is sent as
 *         - {event: buy, amount: 5}   # its JSON text; a string as is
 *         - 'not json'
 *       expect:                # the output rows
 *         - {event: buy, amount: 5}
 *       match: exact           # exact (default) or partial: an expected
 *                              # row's fields must be in the output row
 *       order: any             # any (default) or strict
 *       dead_letters: 1        # optional: how many records must fail
 *
 * Each test runs the pipeline in memory, with no broker and no sink: the
 * input is one batch (topic = the source's first topic, partition 0,
 * offsets from 0, timestamp 0); a window emits all its windows at the end
 * of the input, as if the watermark passed them all.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "job.h"
#include "pipeline.h"
#include "util.h"

static const char test_help[] =
    "usage: sluice test JOB.yaml [--set PATH=VALUE]...\n"
    "\n"
    "Runs the tests: block of a job file: each test's input records go\n"
    "through the pipeline in memory (no broker, no sink) and the output is\n"
    "compared with the expected rows; a failure prints a diff.\n"
    "\n"
    "Exit status: 0 all passed, 1 a test failed, 64 usage, 78 invalid job\n"
    "file or tests block.\n";

/* The YAML node as JSON (scalars keep YAML's plain-scalar typing: numbers,
 * true/false/null unquoted; quoted scalars stay strings). */
static cJSON *node_json(const struct sl_cfg_node *n) {
  if (n->kind == SL_CFG_MAP) {
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < n->n; i++)
      cJSON_AddItemToObject(o, n->keys[i]->scalar, node_json(n->items[i]));
    return o;
  }
  if (n->kind == SL_CFG_SEQ) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n->n; i++)
      cJSON_AddItemToArray(a, node_json(n->items[i]));
    return a;
  }
  const char *s = n->scalar;
  if (n->plain) {
    if (strcmp(s, "null") == 0 || strcmp(s, "~") == 0 || !*s)
      return cJSON_CreateNull();
    if (strcmp(s, "true") == 0)
      return cJSON_CreateTrue();
    if (strcmp(s, "false") == 0)
      return cJSON_CreateFalse();
    char *end;
    double d = strtod(s, &end);
    if (*end == '\0' && end != s)
      return cJSON_CreateNumber(d);
  }
  return cJSON_CreateString(s);
}

/* Whether want matches got: exact (deep equality, numbers by value) or
 * partial (every field of an expected object is in got, recursively). */
static bool matches(const cJSON *want, const cJSON *got, bool partial) {
  if (!partial || !cJSON_IsObject(want))
    return cJSON_Compare(want, got, 1);
  if (!cJSON_IsObject(got))
    return false;
  const cJSON *w;
  cJSON_ArrayForEach(w, want) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, w->string);
    if (!g || !matches(w, g, true))
      return false;
  }
  return true;
}

static void print_row(const char *mark, const cJSON *row) {
  char *s = cJSON_PrintUnformatted(row);
  printf("      %s %s\n", mark, s);
  cJSON_free(s);
}

struct collected {
  cJSON *rows; /* array */
  int64_t dead;
};

static void collect(struct collected *c, const struct sl_batch *out,
                    bool json) {
  for (size_t i = 0; i < out->n; i++) {
    const struct sl_record *r = &out->recs[i];
    cJSON *row = json ? cJSON_ParseWithLength(r->value, r->value_len) : NULL;
    if (!row) {
      char *s = sl_strndup(r->value ? r->value : "", r->value_len);
      row = cJSON_CreateString(s);
      free(s);
    }
    cJSON_AddItemToArray(c->rows, row);
  }
}

static void emit_cb(cJSON *row, void *arg) {
  cJSON_AddItemToArray(arg, row);
}

/* Runs the pipeline over the test's input. */
static int run_one(const struct sl_job *job, const struct sl_cfg_node *input,
                   const char *topic, struct collected *c,
                   struct sl_error *err) {
  const struct sl_pipeline *pl = job->pipeline;
  size_t n = input ? input->n : 0;
  struct sl_batch in = {0}, out = {0}, dead = {0};
  char **vals = sl_calloc(n ? n : 1, sizeof(*vals));
  sl_batch_reserve(&in, n ? n : 1);
  for (size_t i = 0; i < n; i++) {
    const struct sl_cfg_node *item = input->items[i];
    if (item->kind == SL_CFG_SCALAR && !item->plain) {
      vals[i] = sl_strdup(item->scalar);
    } else {
      cJSON *j = node_json(item);
      vals[i] = cJSON_PrintUnformatted(j);
      cJSON_Delete(j);
    }
    in.recs[in.n++] = (struct sl_record){.value = vals[i],
                                         .value_len = strlen(vals[i]),
                                         .topic = topic,
                                         .partition = 0,
                                         .offset = (int64_t)i,
                                         .timestamp = 0};
  }
  struct sl_pipe_task *t = sl_pipe_task_new(pl);
  bool json = sl_pipeline_parses_json(pl);
  int rc = sl_pipe_run(t, &in, SL_WINDOW_NO_WATERMARK,
                       job->on_error == SL_ON_ERROR_FAIL, sl_wall_ms(), &out,
                       &dead, err);
  c->dead += (int64_t)dead.n;
  if (!rc)
    collect(c, &out, json);
  const struct sl_window_spec *ws = sl_pipeline_window(pl);
  if (!rc && ws) {
    struct sl_wstate *st = sl_wstate_new(ws);
    struct sl_wpartial *p = sl_pipe_task_partial(t);
    cJSON *rows = cJSON_CreateArray();
    for (unsigned s = 0; s < ws->shards; s++)
      sl_wstate_merge_shard(st, s, &p, 1);
    sl_wstate_advance(st, &p, 1);
    for (unsigned s = 0; s < ws->shards; s++)
      sl_wstate_emit_shard(st, s, true, emit_cb, rows);
    size_t nrows = (size_t)cJSON_GetArraySize(rows);
    cJSON **v = sl_calloc(nrows ? nrows : 1, sizeof(*v));
    for (size_t i = 0; i < nrows; i++)
      v[i] = cJSON_DetachItemFromArray(rows, 0);
    cJSON_Delete(rows);
    struct sl_pipe_task *post = sl_pipe_task_new(pl);
    rc = sl_pipe_post(post, v, nrows, job->on_error == SL_ON_ERROR_FAIL,
                      sl_wall_ms(), &out, &dead, err);
    c->dead += (int64_t)dead.n;
    if (!rc && sl_pipeline_top(pl)) {
      size_t k = out.n;
      char **texts = sl_calloc(k ? k : 1, sizeof(*texts));
      for (size_t i = 0; i < k; i++)
        texts[i] = sl_strndup(out.recs[i].value, out.recs[i].value_len);
      sl_pipeline_apply_top(pl, texts, &k);
      for (size_t i = 0; i < k; i++) {
        cJSON_AddItemToArray(c->rows, cJSON_Parse(texts[i]));
        free(texts[i]);
      }
      free(texts);
    } else if (!rc) {
      collect(c, &out, true);
    }
    sl_pipe_task_free(post);
    free(v);
    sl_wstate_free(st);
  }
  sl_pipe_task_free(t);
  for (size_t i = 0; i < n; i++) {
    if (input->items[i]->kind == SL_CFG_SCALAR && !input->items[i]->plain)
      free(vals[i]);
    else
      cJSON_free(vals[i]);
  }
  free(vals);
  sl_batch_free(&in);
  sl_batch_free(&out);
  sl_batch_free(&dead);
  return rc;
}

/* Compares and prints; returns true when the test passed. */
static bool check(const char *name, const struct sl_cfg_node *expect,
                  bool partial, bool strict, int64_t want_dead,
                  struct collected *c) {
  size_t ngot = (size_t)cJSON_GetArraySize(c->rows);
  size_t nwant = expect ? expect->n : 0;
  cJSON **want = sl_calloc(nwant ? nwant : 1, sizeof(*want));
  bool *used = sl_calloc(ngot ? ngot : 1, sizeof(*used));
  bool *found = sl_calloc(nwant ? nwant : 1, sizeof(*found));
  bool ok = true;
  for (size_t i = 0; i < nwant; i++)
    want[i] = node_json(expect->items[i]);
  for (size_t i = 0; i < nwant; i++) {
    for (size_t g = strict ? i : 0; g < (strict ? SL_MIN(i + 1, ngot) : ngot);
         g++) {
      if (!used[g] &&
          matches(want[i], cJSON_GetArrayItem(c->rows, (int)g), partial)) {
        used[g] = found[i] = true;
        break;
      }
    }
    ok &= found[i];
  }
  for (size_t g = 0; g < ngot; g++)
    ok &= used[g];
  bool dead_ok = want_dead < 0 || want_dead == c->dead;
  printf("%s %s\n", ok && dead_ok ? "PASS" : "FAIL", name);
  if (!ok) {
    printf("    expected %zu rows, got %zu (%s match, %s order); "
           "- expected but missing, + produced but not expected:\n",
           nwant, ngot, partial ? "partial" : "exact",
           strict ? "strict" : "any");
    for (size_t i = 0; i < nwant; i++)
      if (!found[i])
        print_row("-", want[i]);
    for (size_t g = 0; g < ngot; g++)
      if (!used[g])
        print_row("+", cJSON_GetArrayItem(c->rows, (int)g));
  }
  if (!dead_ok)
    printf("    expected %lld dead letters, got %lld\n", (long long)want_dead,
           (long long)c->dead);
  for (size_t i = 0; i < nwant; i++)
    cJSON_Delete(want[i]);
  free(want);
  free(used);
  free(found);
  return ok && dead_ok;
}

static int run_tests(const struct sl_job *job, const char *topic, int *failed,
                     struct sl_error *err) {
  const struct sl_cfg_node *tests = job->tests_raw;
  if (!tests)
    return sl_error_set(err, SL_ERR_CONFIG, "%s: the job has no tests: block",
                        job->path);
  if (tests->kind != SL_CFG_SEQ || tests->n == 0)
    return sl_cfg_error(err, tests, "tests: expected a list of tests");
  static const char *const keys[] = {"name",  "input",        "expect", "match",
                                     "order", "dead_letters", NULL};
  for (size_t i = 0; i < tests->n; i++) {
    const struct sl_cfg_node *t = tests->items[i];
    if (t->kind != SL_CFG_MAP)
      return sl_cfg_error(err, t, "a test is a map: name, input, expect");
    for (size_t k = 0; k < t->n; k++) {
      size_t j = 0;
      while (keys[j] && strcmp(keys[j], t->keys[k]->scalar) != 0)
        j++;
      if (!keys[j])
        return sl_cfg_error(err, t->keys[k],
                            "unknown key '%s' in a test (known: name, "
                            "input, expect, match, order, dead_letters)",
                            t->keys[k]->scalar);
    }
    const struct sl_cfg_node *name = sl_cfg_get(t, "name"),
                             *input = sl_cfg_get(t, "input"),
                             *expect = sl_cfg_get(t, "expect"),
                             *match = sl_cfg_get(t, "match"),
                             *order = sl_cfg_get(t, "order"),
                             *dead = sl_cfg_get(t, "dead_letters");
    if (!input || input->kind != SL_CFG_SEQ)
      return sl_cfg_error(err, input ? input : t,
                          "test: input must be a list of records");
    if (expect && expect->kind != SL_CFG_SEQ)
      return sl_cfg_error(err, expect, "test: expect must be a list");
    bool partial = false, strict = false;
    if (match && (match->kind != SL_CFG_SCALAR ||
                  (strcmp(match->scalar, "partial") != 0 &&
                   strcmp(match->scalar, "exact") != 0)))
      return sl_cfg_error(err, match, "match must be exact or partial");
    partial = match && strcmp(match->scalar, "partial") == 0;
    if (order && (order->kind != SL_CFG_SCALAR ||
                  (strcmp(order->scalar, "any") != 0 &&
                   strcmp(order->scalar, "strict") != 0)))
      return sl_cfg_error(err, order, "order must be any or strict");
    strict = order && strcmp(order->scalar, "strict") == 0;
    int64_t want_dead = -1;
    if (dead && sl_cfg_int(dead, &want_dead, err))
      return err->code;
    char label[256];
    snprintf(label, sizeof(label), "%s:%d: %s", job->path, t->line,
             name && name->kind == SL_CFG_SCALAR ? name->scalar : "(unnamed)");
    struct collected c = {.rows = cJSON_CreateArray()};
    struct sl_error e = {0};
    bool ok;
    if (run_one(job, input, topic, &c, &e)) {
      printf("FAIL %s\n    %s\n", label, e.msg);
      ok = false;
    } else {
      ok = check(label, expect, partial, strict, want_dead, &c);
    }
    cJSON_Delete(c.rows);
    *failed += !ok;
  }
  printf("%zu passed, %d failed\n", tests->n - (size_t)*failed, *failed);
  return 0;
}

int sl_cmd_test(int argc, char **argv) {
  static const struct option opts[] = {{"set", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  char **sets = NULL;
  size_t nsets = 0;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
    if (c == 's') {
      sets = sl_realloc(sets, (nsets + 1) * sizeof(*sets));
      sets[nsets++] = optarg;
    } else if (c == 'h') {
      fputs(test_help, stdout);
      free(sets);
      return SL_EXIT_OK;
    } else {
      free(sets);
      return sl_cli_usage_error("test", "unknown option '%s'",
                                argv[optind - 1]);
    }
  }
  if (optind != argc - 1) {
    free(sets);
    return sl_cli_usage_error("test", "expected one JOB.yaml argument");
  }
  struct sl_job job;
  struct sl_error err = {0};
  int rc = sl_job_load(argv[optind], sets, nsets, &job, &err);
  free(sets);
  if (rc) {
    fprintf(stderr, "%s\n", err.msg);
    return SL_EXIT_CONFIG;
  }
  int failed = 0;
  const char *topic = "test";
  const struct sl_cfg_node *src = job.source_node;
  const struct sl_cfg_node *topics = src ? sl_cfg_get(src, "topics") : NULL;
  if (topics && topics->kind == SL_CFG_SEQ && topics->n)
    topic = topics->items[0]->scalar;
  else if (topics && topics->kind == SL_CFG_SCALAR)
    topic = topics->scalar;
  rc = run_tests(&job, topic, &failed, &err);
  sl_job_free(&job);
  if (rc) {
    fprintf(stderr, "%s\n", err.msg);
    return SL_EXIT_CONFIG;
  }
  return failed ? SL_EXIT_FAIL : SL_EXIT_OK;
}
