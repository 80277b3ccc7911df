/*
 * job.h - a job: one YAML file bound into typed settings.
 *
 * Top-level keys: job (id, required), source (one plugin), pipeline
 * (operators, pipeline.h), sink (one plugin), dead_letter (a file sink),
 * on_error (dead_letter or fail), state, trigger, checkpoint, workers,
 * task_attempts, tests (for `sluice test`). Every key is known
 * and typed (config/config.h); errors are "file:line:col: message".
 */
#ifndef SL_JOB_H
#define SL_JOB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../config/config.h"
#include "metrics.h"
#include "plugin.h"

struct sl_trigger_conf {
  int64_t interval_ns; /* a batch every interval (processing time)     */
  bool available_now;  /* run what is there at start, then exit        */
  int64_t continuous_ns; /* continuous: the epoch interval; 0 when off  */
};

struct sl_checkpoint_conf {
  char *dir;      /* default ./checkpoints/<job id>        */
  int64_t retain; /* commits kept (older ones are pruned)  */
};

struct sl_state_conf {
  int64_t max_bytes; /* window state larger than this fails the job */
};

enum sl_on_error { SL_ON_ERROR_DEAD_LETTER, SL_ON_ERROR_FAIL };

struct sl_pipeline;

struct sl_job {
  char *id;
  char *path;               /* the job file */
  struct sl_cfg_node *tree; /* kept: NODE fields point into it */

  const struct sl_source_plugin *source_plugin;
  void *source_conf; /* begins with struct sl_source_common */
  const struct sl_cfg_node *source_node;
  struct sl_cfg_field *source_table; /* common + plugin keys */

  const struct sl_sink_plugin *sink_plugin;
  void *sink_conf; /* begins with struct sl_sink_common */
  const struct sl_cfg_node *sink_node;
  struct sl_cfg_field *sink_table; /* common + plugin keys */

  struct sl_pipeline *pipeline; /* never NULL once loaded */

  /* dead letters: a sink of their own (file), committed with the batch */
  const struct sl_sink_plugin *dl_plugin; /* NULL: none configured */
  void *dl_conf;
  struct sl_cfg_field *dl_table;
  enum sl_on_error on_error;

  struct sl_state_conf state;
  struct sl_trigger_conf trigger;
  struct sl_checkpoint_conf checkpoint;
  struct sl_metrics_conf metrics; /* bound when has_metrics */
  bool has_metrics;
  int64_t workers;       /* worker threads (default: cores) */
  int64_t task_attempts; /* tries of a failing task before the batch fails */

  /* raw NODE fields of the top-level table, checked by sl_job_load */
  const struct sl_cfg_node *source_raw, *sink_raw, *pipeline_raw,
      *dead_letter_raw, *tests_raw, *metrics_raw;
  char *on_error_raw;
};

/* Loads and validates path, applying the --set assignments in order.
 * On error fills err ("file:line:col: message", code SL_ERR_CONFIG or
 * SL_ERR_IO) and leaves job freed. */
int sl_job_load(const char *path, char *const *sets, size_t nsets,
                struct sl_job *job, struct sl_error *err);
void sl_job_free(struct sl_job *job);
/* Writes the job as it will run, as YAML: every setting with its default,
 * variables expanded, secrets masked (`sluice validate --print`). */
void sl_job_print(const struct sl_job *job, FILE *out);

static inline const struct sl_source_common *
sl_job_batching(const struct sl_job *job) {
  return (const struct sl_source_common *)job->source_conf;
}

#endif
