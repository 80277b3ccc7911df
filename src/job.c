/* job.c - binds a job file (see job.h). */
#include "job.h"
#include "../config/diags.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "pipeline.h"
#include "util.h"

static const struct sl_cfg_field retry_map[] = {
    {.key = "attempts",
     .type = SL_CFG_T_INT,
     .def = "100",
     .offset = offsetof(struct sl_retry, attempts),
     .desc = "tries of one step (a batch's commit, planning a batch) "
             "before the job stops",
     .min = 1,
     .max = 1000000},
    {.key = "backoff",
     .type = SL_CFG_T_DURATION,
     .def = "100ms",
     .offset = offsetof(struct sl_retry, backoff_ns),
     .desc = "pause after the first failed try; doubled after each"},
    {.key = "max_backoff",
     .type = SL_CFG_T_DURATION,
     .def = "5s",
     .offset = offsetof(struct sl_retry, max_backoff_ns),
     .desc = "longest pause between two tries"},
    {.key = "max_elapsed",
     .type = SL_CFG_T_DURATION,
     .def = "5m",
     .offset = offsetof(struct sl_retry, max_elapsed_ns),
     .desc = "stop retrying once this long has passed since the first "
             "failure"},
    {0}};

const struct sl_cfg_field sl_source_common_map[] = {
    {.key = "max_records_per_batch",
     .type = SL_CFG_T_INT,
     .def = "100000",
     .offset = offsetof(struct sl_source_common, max_records_per_batch),
     .desc = "most records one batch reads, shared by the partitions in "
             "proportion to their backlog",
     .min = 1,
     .max = INT64_MAX},
    {.key = "min_records_per_batch",
     .type = SL_CFG_T_INT,
     .def = "1",
     .offset = offsetof(struct sl_source_common, min_records_per_batch),
     .desc = "wait for at least this many new records before a batch ...",
     .min = 1,
     .max = INT64_MAX},
    {.key = "max_batch_delay",
     .type = SL_CFG_T_DURATION,
     .def = "0s",
     .offset = offsetof(struct sl_source_common, max_batch_delay_ns),
     .desc = "... but never wait longer than this since the last batch"},
    {.key = "task_max_records",
     .type = SL_CFG_T_INT,
     .def = "50000",
     .offset = offsetof(struct sl_source_common, task_max_records),
     .desc = "a partition range longer than this is split into several "
             "tasks that run in parallel",
     .min = 1,
     .max = INT64_MAX},
    {.key = "max_record_bytes",
     .type = SL_CFG_T_SIZE,
     .def = "1MiB",
     .offset = offsetof(struct sl_source_common, max_record_bytes),
     .desc = "a record whose key and value together are larger goes to "
             "the dead letters, before any parsing (Kafka's default "
             "message.max.bytes is about 1 MiB)",
     .min = 1,
     .max = (int64_t)1 << 31},
    {.key = "retry",
     .type = SL_CFG_T_SECTION,
     .offset = offsetof(struct sl_source_common, retry),
     .section = retry_map,
     .desc = "retries of a batch's planning while the source does not "
             "answer (an outage once the job runs)"},
    {0}};

const struct sl_cfg_field sl_sink_common_map[] = {
    {.key = "retry",
     .type = SL_CFG_T_SECTION,
     .offset = offsetof(struct sl_sink_common, retry),
     .section = retry_map,
     .desc = "retries of a failing commit (an outage of the sink)"},
    {0}};

static const struct sl_cfg_field trigger_map[] = {
    {.key = "interval",
     .type = SL_CFG_T_DURATION,
     .def = "1s",
     .offset = offsetof(struct sl_trigger_conf, interval_ns),
     .desc = "start a batch every interval; an overrunning batch is "
             "followed at once by the next"},
    {.key = "available_now",
     .type = SL_CFG_T_BOOL,
     .def = "false",
     .offset = offsetof(struct sl_trigger_conf, available_now),
     .desc = "process what is available at start in capped batches, then "
             "exit 0"},
    {.key = "continuous",
     .type = SL_CFG_T_DURATION,
     .def = "0s",
     .offset = offsetof(struct sl_trigger_conf, continuous_ns),
     .desc = "process records as they arrive (long-running tasks) and "
             "commit an epoch every interval (the checkpoint interval, not "
             "the latency); 0: off"},
    {0}};

static const struct sl_cfg_field checkpoint_map[] = {
    {.key = "dir",
     .type = SL_CFG_T_STR,
     .offset = offsetof(struct sl_checkpoint_conf, dir),
     .desc = "checkpoint directory (default ./checkpoints/<job>)"},
    {.key = "retain",
     .type = SL_CFG_T_INT,
     .def = "100",
     .offset = offsetof(struct sl_checkpoint_conf, retain),
     .desc = "committed batches kept in the checkpoint",
     .min = 1,
     .max = 1000000},
    {0}};

static const struct sl_cfg_field state_map[] = {
    {.key = "max_bytes",
     .type = SL_CFG_T_SIZE,
     .def = "1GiB",
     .offset = offsetof(struct sl_state_conf, max_bytes),
     .desc = "window state larger than this stops the job with a clear "
             "message (instead of the system killing it)",
     .min = 1,
     .max = INT64_MAX},
    {0}};

static const struct sl_cfg_field job_map[] = {
    {.key = "job",
     .type = SL_CFG_T_STR,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct sl_job, id),
     .desc = "job id: names the checkpoint and the sink's keys"},
    {.key = "source",
     .type = SL_CFG_T_NODE,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct sl_job, source_raw),
     .desc = "where records come from: one of kafka"},
    {.key = "sink",
     .type = SL_CFG_T_NODE,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct sl_job, sink_raw),
     .desc = "where results go: one of console, file, kafka"},
    {.key = "pipeline",
     .type = SL_CFG_T_NODE,
     .offset = offsetof(struct sl_job, pipeline_raw),
     .desc = "operators: parse, filter, map, select, drop, window"},
    {.key = "dead_letter",
     .type = SL_CFG_T_NODE,
     .offset = offsetof(struct sl_job, dead_letter_raw),
     .desc = "where records that fail parsing or evaluation go: "
             "{file: {path: DIR}} or {kafka: {brokers: B, topic: T}}"},
    {.key = "on_error",
     .type = SL_CFG_T_STR,
     .offset = offsetof(struct sl_job, on_error_raw),
     .desc = "dead_letter (the default when dead_letter is set) or fail "
             "(the default otherwise)"},
    {.key = "state",
     .type = SL_CFG_T_SECTION,
     .offset = offsetof(struct sl_job, state),
     .section = state_map,
     .desc = "window state limits"},
    {.key = "metrics",
     .type = SL_CFG_T_NODE,
     .offset = offsetof(struct sl_job, metrics_raw),
     .desc = "HTTP endpoint for /metrics, /health, /ready, /progress: "
             "{listen: 127.0.0.1:9464}; off when absent"},
    {.key = "tests",
     .type = SL_CFG_T_NODE,
     .offset = offsetof(struct sl_job, tests_raw),
     .desc = "in-memory tests of the pipeline, run by `sluice test`"},
    {.key = "trigger",
     .type = SL_CFG_T_SECTION,
     .offset = offsetof(struct sl_job, trigger),
     .section = trigger_map,
     .desc = "when batches run"},
    {.key = "checkpoint",
     .type = SL_CFG_T_SECTION,
     .offset = offsetof(struct sl_job, checkpoint),
     .section = checkpoint_map,
     .desc = "where progress is kept"},
    {.key = "workers",
     .type = SL_CFG_T_INT,
     .def = "0",
     .offset = offsetof(struct sl_job, workers),
     .desc = "worker threads; 0 means one per core",
     .min = 0,
     .max = 1024},
    {.key = "task_attempts",
     .type = SL_CFG_T_INT,
     .def = "3",
     .offset = offsetof(struct sl_job, task_attempts),
     .desc = "tries of a failing task before its batch fails",
     .min = 1,
     .max = 100},
    {0}};

static size_t table_len(const struct sl_cfg_field *t) {
  size_t n = 0;
  while (t && t[n].key)
    n++;
  return n;
}

/* A plugin's map is bound against its own keys plus, for sources, the
 * batching keys every source shares (they sit at offset 0 of its conf). */
static struct sl_cfg_field *merge_tables(const struct sl_cfg_field *a,
                                         const struct sl_cfg_field *b) {
  size_t na = table_len(a), nb = table_len(b);
  struct sl_cfg_field *t = sl_calloc(na + nb + 1, sizeof(*t));
  if (na)
    memcpy(t, a, na * sizeof(*t));
  if (nb)
    memcpy(t + na, b, nb * sizeof(*t));
  return t;
}

/* Resolves "source: {kafka: {...}}" to the plugin name and its map.
 * omitted, when not NULL, tells which option would build a name that is
 * not among names (a sink left out of this binary). */
static int pick_plugin(const struct sl_cfg_node *node, const char *what,
                       const char *const *names,
                       const char *(*omitted)(const char *name),
                       const char **name, const struct sl_cfg_node **map,
                       struct sl_error *err) {
  char list[256] = "";
  for (size_t i = 0; names[i]; i++) {
    if (i)
      strncat(list, ", ", sizeof(list) - strlen(list) - 1);
    strncat(list, names[i], sizeof(list) - strlen(list) - 1);
  }
  if (node->kind != SL_CFG_MAP || node->n != 1)
    return sl_cfg_error(err, node,
                        "%s must be a map with exactly one of: %s "
                        "(for example `%s: {%s: {...}}`)",
                        what, list, what, names[0]);
  *name = node->keys[0]->scalar;
  *map = node->items[0];
  for (size_t i = 0; names[i]; i++)
    if (strcmp(names[i], *name) == 0)
      return 0;
  const char *option = omitted ? omitted(*name) : NULL;
  if (option)
    return sl_cfg_error(err, node->keys[0],
                        "%s '%s' is not built into this binary (built "
                        "without %s)",
                        what, *name, option);
  const char *best = sl_suggest_name(*name, names);
  if (best)
    return sl_cfg_error(err, node->keys[0],
                        "unknown %s '%s'; did you mean '%s'? (known: %s)", what,
                        *name, best, list);
  return sl_cfg_error(err, node->keys[0], "unknown %s '%s' (known: %s)", what,
                      *name, list);
}

/* `metrics:` present (even empty, `metrics: {}`) turns the endpoint on. */
static int bind_metrics(struct sl_job *job, struct sl_error *err) {
  const struct sl_cfg_node *n = job->metrics_raw;
  if (!n)
    return 0;
  bool empty = n->kind == SL_CFG_SCALAR && n->plain &&
               (n->scalar[0] == '\0' || strcmp(n->scalar, "null") == 0 ||
                strcmp(n->scalar, "~") == 0);
  if (!empty && n->kind != SL_CFG_MAP)
    return sl_cfg_error(err, n,
                        "metrics must be a map, as "
                        "`metrics: { listen: 127.0.0.1:9464 }`");
  int rc = sl_cfg_bind(empty ? NULL : n, n, sl_metrics_conf_map, &job->metrics,
                       "metrics", err);
  /* also after an error: while collecting errors (diags.h) the fields
   * that did bind stay bound until sl_job_free */
  job->has_metrics = true;
  return rc;
}

static int valid_job_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > 200)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return 0;
  }
  return id[0] != '.';
}

static int bind_source(struct sl_job *job, struct sl_error *err) {
  const char *names[16] = {0};
  const char *name = NULL;
  const struct sl_cfg_node *map = NULL;
  for (size_t i = 0; sl_source_plugins[i] && i < 15; i++)
    names[i] = sl_source_plugins[i]->name;
  if (pick_plugin(job->source_raw, "source", names, NULL, &name, &map, err))
    return err->code;
  job->source_plugin = sl_source_find(name);
  job->source_node = map;
  job->source_table =
      merge_tables(job->source_plugin->config_map, sl_source_common_map);
  job->source_conf = sl_calloc(1, job->source_plugin->conf_size);
  char ctx[64];
  snprintf(ctx, sizeof(ctx), "source.%s", name);
  if (map->kind != SL_CFG_MAP)
    return sl_cfg_error(err, map, "%s must be a map of settings", ctx);
  if (sl_cfg_bind(map, map, job->source_table, job->source_conf, ctx, err))
    return err->code;
  const struct sl_source_common *c = sl_job_batching(job);
  if (c->min_records_per_batch > c->max_records_per_batch)
    return sl_cfg_error(err, sl_cfg_get(map, "min_records_per_batch"),
                        "min_records_per_batch (%lld) is larger than "
                        "max_records_per_batch (%lld)",
                        (long long)c->min_records_per_batch,
                        (long long)c->max_records_per_batch);
  if (job->source_plugin->validate &&
      job->source_plugin->validate(job->source_conf, map, err))
    return err->code;
  return 0;
}

static int bind_sink(struct sl_job *job, struct sl_error *err) {
  const char *names[16] = {0};
  const char *name = NULL;
  const struct sl_cfg_node *map = NULL;
  for (size_t i = 0; sl_sink_plugins[i] && i < 15; i++)
    names[i] = sl_sink_plugins[i]->name;
  if (pick_plugin(job->sink_raw, "sink", names, sl_sink_omitted, &name, &map,
                  err))
    return err->code;
  job->sink_plugin = sl_sink_find(name);
  job->sink_node = map;
  job->sink_table =
      merge_tables(job->sink_plugin->config_map, sl_sink_common_map);
  job->sink_conf = sl_calloc(1, job->sink_plugin->conf_size);
  char ctx[64];
  snprintf(ctx, sizeof(ctx), "sink.%s", name);
  /* `console: {}` and a bare `console:` (null) both mean defaults. */
  if (map->kind == SL_CFG_SCALAR && map->plain &&
      (map->scalar[0] == '\0' || strcmp(map->scalar, "null") == 0 ||
       strcmp(map->scalar, "~") == 0))
    map = NULL;
  else if (map->kind != SL_CFG_MAP)
    return sl_cfg_error(err, map, "%s must be a map of settings", ctx);
  if (sl_cfg_bind(map, job->sink_raw, job->sink_table, job->sink_conf, ctx,
                  err))
    return err->code;
  if (job->sink_plugin->validate &&
      job->sink_plugin->validate(job->sink_conf, map ? map : job->sink_raw,
                                 err))
    return err->code;
  return 0;
}

/* The sinks that can take dead letters (those built in are offered). */
static const char *const dl_sinks[] = {"file", "kafka", NULL};

/* sl_sink_omitted for the dead-letter sinks only: a left-out Redis sink
 * could not take dead letters anyway. */
static const char *dl_omitted(const char *name) {
  for (size_t i = 0; dl_sinks[i]; i++)
    if (strcmp(dl_sinks[i], name) == 0)
      return sl_sink_omitted(name);
  return NULL;
}

/* What the continuous trigger can run exactly (docs/ARCHITECTURE.md,
 * The continuous trigger). */
static int check_continuous(const struct sl_job *job,
                            const struct sl_cfg_node *tn,
                            struct sl_error *err) {
  const struct sl_cfg_node *at = tn ? sl_cfg_get(tn, "continuous") : NULL;
  if (!at)
    at = tn ? tn : job->tree;
  if (!job->source_plugin->stream_start)
    return sl_cfg_error(err, at,
                        "trigger continuous: source '%s' cannot be read "
                        "continuously",
                        job->source_plugin->name);
  return 0;
}

/* Group mode (source.<name>.group; docs/ARCHITECTURE.md, Group mode):
 * what this slice can run when several instances share the partitions.
 * Each refusal names the setting that cannot go with the group. */
static int check_group(const struct sl_job *job, const struct sl_cfg_node *tn,
                       struct sl_error *err) {
  const struct sl_cfg_node *gn = sl_cfg_get(job->source_node, "group");
  int line = gn ? gn->line : 0;
  const struct sl_window_spec *ws = sl_pipeline_window(job->pipeline);
  if (ws && ws->mode != SL_WINDOW_MERGE) {
    const struct sl_cfg_node *wn =
        job->pipeline_raw ? job->pipeline_raw : job->tree;
    for (size_t i = 0;
         job->pipeline_raw && job->pipeline_raw->kind == SL_CFG_SEQ &&
         i < job->pipeline_raw->n;
         i++)
      if (job->pipeline_raw->items[i]->kind == SL_CFG_MAP &&
          sl_cfg_get(job->pipeline_raw->items[i], "window"))
        wn = job->pipeline_raw->items[i];
    return sl_cfg_error(
        err, wn,
        "a windowed pipeline cannot run in group mode (source.%s.group, "
        "line %d): its window state lives in one instance's checkpoint and "
        "does not move with its partitions; use output: merge, which keeps "
        "no state (the sink adds up every instance's contributions)",
        job->source_plugin->name, line);
  }
  if (job->trigger.available_now)
    return sl_cfg_error(err, tn ? sl_cfg_get(tn, "available_now") : job->tree,
                        "trigger available_now cannot run in group mode "
                        "(source.%s.group, line %d): instances would stop at "
                        "different ends; use an interval trigger",
                        job->source_plugin->name, line);
  if (job->dl_plugin && strcmp(job->dl_plugin->name, "kafka") != 0)
    return sl_cfg_error(err, job->dead_letter_raw,
                        "dead_letter.%s cannot be shared by the instances "
                        "of a group (source.%s.group, line %d): it keeps "
                        "one record of its batches for one instance; use "
                        "dead_letter.kafka (each instance writes with a "
                        "transactional.id of its own)",
                        job->dl_plugin->name, job->source_plugin->name, line);
  const struct sl_sink_plugin *sp = job->sink_plugin;
  unsigned flags = sp->conf_flags ? sp->conf_flags(job->sink_conf) : sp->flags;
  const struct sl_cfg_node *at =
      job->sink_node ? job->sink_node : job->sink_raw;
  if (flags & SL_SINK_SINGLE_INSTANCE)
    return sl_cfg_error(err, at,
                        "sink '%s' cannot be shared by the instances of a "
                        "group (source.%s.group, line %d): it keeps one "
                        "record of its batches for one instance; run one "
                        "instance without group, or use the kafka sink",
                        sp->name, job->source_plugin->name, line);
  if ((flags & SL_SINK_EXACTLY_ONCE) && !sp->claim &&
      !(flags & SL_SINK_GROUP_FENCED))
    return sl_cfg_error(err, at,
                        "sink '%s' is exactly-once but cannot fence an "
                        "instance that lost its partitions, so it cannot run "
                        "in group mode (source.%s.group, line %d): a revoked "
                        "instance could still commit; use the kafka sink "
                        "(exactly_once fences through the transaction) or an "
                        "at-least-once sink",
                        sp->name, job->source_plugin->name, line);
  return 0;
}

/* The pipeline, dead letters and on_error. */
static int bind_pipeline(struct sl_job *job, struct sl_error *err) {
  int prc = sl_pipeline_compile(job->pipeline_raw, &job->pipeline, err);
  if (prc && !sl_cfg_collecting())
    return prc;
  if (!prc && job->source_conf)
    sl_pipeline_set_max_record_bytes(
        job->pipeline, (size_t)sl_job_batching(job)->max_record_bytes);
  if (job->dead_letter_raw) {
    const char *names[sizeof(dl_sinks) / sizeof(dl_sinks[0])] = {0};
    size_t nn = 0;
    for (size_t i = 0; dl_sinks[i]; i++)
      if (sl_sink_find(dl_sinks[i]))
        names[nn++] = dl_sinks[i];
    const char *name = NULL;
    const struct sl_cfg_node *map = NULL;
    if (pick_plugin(job->dead_letter_raw, "dead_letter", names, dl_omitted,
                    &name, &map, err))
      return err->code;
    job->dl_plugin = sl_sink_find(name);
    job->dl_table =
        merge_tables(job->dl_plugin->config_map, sl_sink_common_map);
    job->dl_conf = sl_calloc(1, job->dl_plugin->conf_size);
    if (map->kind != SL_CFG_MAP)
      return sl_cfg_error(err, map, "dead_letter.%s must be a map", name);
    char ctx[64];
    snprintf(ctx, sizeof(ctx), "dead_letter.%s", name);
    if (sl_cfg_bind(map, map, job->dl_table, job->dl_conf, ctx, err))
      return err->code;
    if (job->dl_plugin->validate &&
        job->dl_plugin->validate(job->dl_conf, map, err))
      return err->code;
  }
  const struct sl_cfg_node *oe = sl_cfg_get(job->tree, "on_error");
  if (!job->on_error_raw) {
    job->on_error = job->dl_plugin ? SL_ON_ERROR_DEAD_LETTER : SL_ON_ERROR_FAIL;
  } else if (strcmp(job->on_error_raw, "fail") == 0) {
    job->on_error = SL_ON_ERROR_FAIL;
  } else if (strcmp(job->on_error_raw, "dead_letter") == 0) {
    if (!job->dl_plugin)
      return sl_cfg_error(err, oe,
                          "on_error: dead_letter needs a dead_letter: "
                          "{file: {path: DIR}} section");
    job->on_error = SL_ON_ERROR_DEAD_LETTER;
  } else {
    return sl_cfg_error(err, oe, "on_error must be dead_letter or fail");
  }
  return prc;
}

/* The `output:` node of the pipeline's window, for messages. */
static const struct sl_cfg_node *window_output(const struct sl_job *job) {
  const struct sl_cfg_node *pl = sl_cfg_get(job->tree, "pipeline");
  for (size_t i = 0; pl && pl->kind == SL_CFG_SEQ && i < pl->n; i++) {
    const struct sl_cfg_node *w = pl->items[i]->kind == SL_CFG_MAP
                                      ? sl_cfg_get(pl->items[i], "window")
                                      : NULL;
    if (w && w->kind == SL_CFG_MAP && sl_cfg_get(w, "output"))
      return sl_cfg_get(w, "output");
  }
  return pl ? pl : job->tree;
}

/* output: merge: the sink must merge each batch's contribution into
 * what it holds (plugin.h check_merge). */
static int check_merge(const struct sl_job *job, struct sl_error *err) {
  const struct sl_window_spec *w = sl_pipeline_window(job->pipeline);
  if (!w || w->mode != SL_WINDOW_MERGE)
    return 0;
  if (!job->sink_plugin->check_merge)
    return sl_cfg_error(err, window_output(job),
                        "output: merge adds each batch's contribution to "
                        "what the sink holds, and the %s sink cannot change "
                        "what it wrote: use the redis sink, or output: "
                        "update or append",
                        job->sink_plugin->name);
  char kinds[256];
  for (size_t i = 0; i < w->naggs; i++)
    kinds[i] = w->agg_kinds[i] == SL_AGG_MIN   ? '<'
               : w->agg_kinds[i] == SL_AGG_MAX ? '>'
                                               : '+';
  kinds[w->naggs] = 0;
  const char *aggs[257];
  for (size_t i = 0; i < w->naggs; i++)
    aggs[i] = w->agg_names[i];
  aggs[w->naggs] = NULL;
  return job->sink_plugin->check_merge(
      job->sink_conf, job->sink_node ? job->sink_node : job->sink_raw, aggs,
      kinds, err);
}

int sl_job_load(const char *path, char *const *sets, size_t nsets,
                struct sl_job *job, struct sl_error *err) {
  memset(job, 0, sizeof(*job));
  job->path = sl_strdup(path);
  job->tree = sl_cfg_load_file(path, err);
  if (!job->tree)
    goto fail;
  for (size_t i = 0; i < nsets; i++)
    if (sl_cfg_apply_set(job->tree, sets[i], err))
      goto fail;
  /* Each step below reports its errors; while errors are collected
   * (diags.h, `sluice validate`) a failed step does not stop the next one
   * unless that one needs what failed. */
  bool all = sl_cfg_collecting();
  int first = 0;
#define STEP(call)                                                             \
  do {                                                                         \
    size_t mark_ = sl_cfg_diags_mark();                                        \
    int rc_ = sl_cfg_diags_keep(mark_, (call), err);                           \
    if (rc_ && !all)                                                           \
      goto fail;                                                               \
    first = first ? first : rc_;                                               \
  } while (0)
  STEP(sl_cfg_bind(job->tree, job->tree, job_map, job, "", err));
  if (job->tree->kind != SL_CFG_MAP)
    goto fail;
  const struct sl_cfg_node *idn = sl_cfg_get(job->tree, "job");
  if (job->id && !valid_job_id(job->id))
    STEP(sl_cfg_error(err, idn,
                      "job id '%s' must be 1-200 characters of letters, "
                      "digits, '-', '_' and '.', not starting with '.'",
                      job->id));
  const struct sl_cfg_node *tn = sl_cfg_get(job->tree, "trigger");
  if (tn && tn->kind == SL_CFG_MAP && sl_cfg_get(tn, "interval") &&
      job->trigger.available_now)
    STEP(sl_cfg_error(err, tn,
                      "trigger: choose either interval or available_now, not "
                      "both"));
  if (tn && tn->kind == SL_CFG_MAP && job->trigger.continuous_ns &&
      (sl_cfg_get(tn, "interval") || job->trigger.available_now))
    STEP(sl_cfg_error(err, sl_cfg_get(tn, "continuous"),
                      "trigger: continuous is a trigger of its own; remove "
                      "interval and available_now"));
  if (!job->checkpoint.dir && job->id) {
    char dir[512];
    snprintf(dir, sizeof(dir), "./checkpoints/%s", job->id);
    job->checkpoint.dir = sl_strdup(dir);
  }
  if (job->workers == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    job->workers = n > 0 ? n : 1;
  }
  int src_rc = 0, sink_rc = 0, pipe_rc = 0;
  if (job->source_raw) {
    STEP(src_rc = bind_source(job, err));
  }
  if (job->sink_raw) {
    STEP(sink_rc = bind_sink(job, err));
  }
  STEP(pipe_rc = bind_pipeline(job, err));
  STEP(bind_metrics(job, err));
  if (!src_rc && !pipe_rc && job->trigger.continuous_ns)
    STEP(check_continuous(job, tn, err));
  if (!src_rc && !sink_rc && !pipe_rc && job->source_plugin->conf_group &&
      job->source_plugin->conf_group(job->source_conf))
    STEP(check_group(job, tn, err));
#undef STEP
  if (first || src_rc || sink_rc || pipe_rc) {
    if (!err->code)
      sl_error_set(err, first, "invalid job file");
    goto fail;
  }
  if (job->sink_plugin->check_fields) {
    char **fields = sl_pipeline_output_fields(job->pipeline);
    int rc = 0;
    if (fields)
      rc = job->sink_plugin->check_fields(
          job->sink_conf, job->sink_node ? job->sink_node : job->sink_raw,
          (const char *const *)fields, err);
    for (size_t i = 0; fields && fields[i]; i++)
      free(fields[i]);
    free(fields);
    if (rc)
      goto fail;
  }
  if (check_merge(job, err))
    goto fail;
  return 0;
fail:
  sl_job_free(job);
  return err->code ? err->code : SL_ERR_CONFIG;
}

void sl_job_free(struct sl_job *job) {
  if (job->source_conf) {
    sl_cfg_unbind(job->source_table, job->source_conf);
    free(job->source_conf);
  }
  free(job->source_table);
  if (job->sink_conf) {
    sl_cfg_unbind(job->sink_table, job->sink_conf);
    free(job->sink_conf);
  }
  free(job->sink_table);
  if (job->dl_conf) {
    sl_cfg_unbind(job->dl_table, job->dl_conf);
    free(job->dl_conf);
  }
  free(job->dl_table);
  if (job->has_metrics)
    sl_cfg_unbind(sl_metrics_conf_map, &job->metrics);
  sl_pipeline_free(job->pipeline);
  sl_cfg_unbind(job_map, job);
  sl_cfg_free(job->tree);
  free(job->path);
  memset(job, 0, sizeof(*job));
}

/* One field of a table, as its own table (for printing one key). */
static void print_field(FILE *out, const struct sl_cfg_field *f,
                        const void *base) {
  struct sl_cfg_field one[2] = {*f, {0}};
  sl_cfg_print(out, one, base, 0);
}

static void print_plugin(FILE *out, const char *key, const char *name,
                         const struct sl_cfg_field *table, const void *conf) {
  fprintf(out, "%s:\n  %s:\n", key, name);
  sl_cfg_print(out, table, conf, 4);
}

void sl_job_print(const struct sl_job *job, FILE *out) {
  for (const struct sl_cfg_field *f = job_map; f->key; f++) {
    if (strcmp(f->key, "source") == 0) {
      print_plugin(out, "source", job->source_plugin->name, job->source_table,
                   job->source_conf);
    } else if (strcmp(f->key, "sink") == 0) {
      print_plugin(out, "sink", job->sink_plugin->name, job->sink_table,
                   job->sink_conf);
    } else if (strcmp(f->key, "dead_letter") == 0) {
      if (job->dl_plugin)
        print_plugin(out, "dead_letter", job->dl_plugin->name, job->dl_table,
                     job->dl_conf);
    } else if (strcmp(f->key, "on_error") == 0) {
      fprintf(out, "on_error: %s\n",
              job->on_error == SL_ON_ERROR_FAIL ? "fail" : "dead_letter");
    } else if (strcmp(f->key, "metrics") == 0) {
      if (job->has_metrics) {
        fputs("metrics:\n", out);
        sl_cfg_print(out, sl_metrics_conf_map, &job->metrics, 2);
      }
    } else if (strcmp(f->key, "trigger") == 0) {
      char d[64];
      sl_cfg_fmt_duration(job->trigger.interval_ns, d, sizeof(d));
      if (job->trigger.continuous_ns) {
        sl_cfg_fmt_duration(job->trigger.continuous_ns, d, sizeof(d));
        fprintf(out, "trigger:\n  continuous: %s\n", d);
      } else if (job->trigger.available_now)
        fputs("trigger:\n  available_now: true\n", out);
      else
        fprintf(out, "trigger:\n  interval: %s\n", d);
    } else if (strcmp(f->key, "tests") == 0) {
      if (job->tests_raw)
        fprintf(out, "# tests: %zu (run them with `sluice test`)\n",
                job->tests_raw->n);
    } else {
      print_field(out, f, job);
    }
  }
}
