/*
 * pipeline.h - the operators of a job: parse, filter, map, select, drop,
 * window, compiled from the job file's `pipeline:` list.
 *
 *   pipeline:
 *     - parse: json                  # records become JSON objects
 *     - filter: 'event == "buy"'     # keep a record when true
 *     - map: { cents: 'amount * 100', user: 'lower(user)' }
 *     - select: [user, cents]        # keep only these fields
 *     - drop: [debug]                # remove these fields
 *     - window: {...}                # event-time aggregation (window.h)
 *     - top: { n: 3, by: views }     # per window: the 3 rows with most
 *                                    # views (last operator, append mode)
 *
 * Operators after a window apply to the rows the window emits. Without
 * `parse: json` a record stays raw bytes: only filter (on @ metadata) is
 * possible, and the output is the value bytes unchanged. With it, the
 * output is each row serialized as compact JSON.
 *
 * map evaluates all its expressions against the row as it came in, then
 * sets the fields (so `{a: b, b: a}` swaps). Field names of map, select and
 * drop are top-level names or dotted paths (a.b sets/keeps/removes the
 * nested field).
 *
 * A record whose parsing or evaluation fails becomes a dead letter: the
 * reason, the source coordinates and the raw bytes.
 */
#ifndef SL_PIPELINE_H
#define SL_PIPELINE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "../config/config.h"
#include "error.h"
#include "expr.h"
#include "record.h"
#include "window.h"

struct sl_pipeline;

/* A dead-letter record: compact JSON {reason, topic, partition, offset,
 * timestamp, key, value} with src's coordinates (none when src is NULL)
 * and the raw bytes as the value. malloc'd. */
char *sl_dead_letter_json(const struct sl_record *src, const char *raw,
                          size_t rawlen, const char *reason);

/* Compiles the `pipeline:` node (NULL: no operators). Errors are
 * "file:line:col: message"; an expression error also gives the column in
 * the expression ("filter: column 9: ..."). */
int sl_pipeline_compile(const struct sl_cfg_node *list,
                        struct sl_pipeline **out, struct sl_error *err);
void sl_pipeline_free(struct sl_pipeline *p);
/* Records whose key and value together are longer than n bytes become
 * dead letters before any parsing ("record too large"). 0: no limit (the
 * default of a compiled pipeline; a job sets its source's
 * max_record_bytes). */
void sl_pipeline_set_max_record_bytes(struct sl_pipeline *p, size_t n);

bool sl_pipeline_parses_json(const struct sl_pipeline *p);
/* The window's spec, or NULL for a stateless pipeline. */
const struct sl_window_spec *sl_pipeline_window(const struct sl_pipeline *p);
size_t sl_pipeline_ops(const struct sl_pipeline *p);

/* The top-level field names every output row has, when the pipeline
 * fixes them (a window, or a select, then map/drop), as a malloc'd
 * NULL-terminated array of malloc'd names; NULL when rows carry whatever
 * the input had. For checks of sink templates at validate time. */
char **sl_pipeline_output_fields(const struct sl_pipeline *p);

/* What one task did, added up per batch for progress and metrics. */
struct sl_pipe_stats {
  int64_t in;       /* records read */
  int64_t filtered; /* dropped by a filter */
  int64_t dead;     /* dead letters (parse or evaluation errors) */
  int64_t late;     /* behind the watermark (also dead letters) */
  int64_t out;      /* output rows */
};

/* The per-task state: arena, output buffers, the window partial.
 * @locality one thread at a time (a worker) */
struct sl_pipe_task;

struct sl_pipe_task *sl_pipe_task_new(const struct sl_pipeline *p);
void sl_pipe_task_free(struct sl_pipe_task *t);
/* Frees the task's scratch memory (the per-record arena) once its last
 * chunk ran; the partial window state and the statistics stay until
 * sl_pipe_task_free. A later sl_pipe_run starts a new arena. */
void sl_pipe_task_trim(struct sl_pipe_task *t);

/* Runs a chunk of records through the operators before the window.
 * Fills out (records for the sink: for stateless pipelines) and dead
 * (dead-letter records), both valid until the next call; windowed
 * pipelines add to the task's partial instead of out. watermark is the
 * window state's watermark at the start of the batch. With fail_on_error,
 * the first record error returns SL_ERR_INVAL (fatal) instead of a dead
 * letter. */
int sl_pipe_run(struct sl_pipe_task *t, const struct sl_batch *in,
                int64_t watermark, bool fail_on_error, int64_t now_ms,
                struct sl_batch *out, struct sl_batch *dead,
                struct sl_error *err);

/* output: merge (window.h SL_WINDOW_MERGE): the rows of what the task's
 * records since the last call contribute to each window and group key,
 * as output records for the sink (replacing out's records), each with
 * at's coordinates (topic, partition, offset: the last record they
 * aggregate, for the sink's position guard) and its row; the partial
 * starts empty again. out stays valid until the next call. */
void sl_pipe_merge_out(struct sl_pipe_task *t, const struct sl_record *at,
                       struct sl_batch *out);

/* The `top` operator: n rows with the largest `by` per window (ties: by
 * the rows' JSON text), or NULL. */
struct sl_top {
  int64_t n;
  char *by;
};
const struct sl_top *sl_pipeline_top(const struct sl_pipeline *p);

/* Keeps, of rows[0..*n) (serialized JSON objects, malloc'd), the top
 * rows of every (window_start, window_end); frees the others and
 * compacts the array in output order (window, then rank). */
void sl_pipeline_apply_top(const struct sl_pipeline *p, char **rows, size_t *n);

/* The task's window partial (NULL when stateless); the task keeps owning
 * it. */
struct sl_wpartial *sl_pipe_task_partial(struct sl_pipe_task *t);

struct sl_pipe_stats sl_pipe_task_stats(const struct sl_pipe_task *t);

/* Runs window output rows through the operators after the window and
 * serializes them into out (valid until the next call on t). Takes
 * ownership of the rows. Record errors of those operators become dead
 * letters (with the row as raw bytes) or fail as in sl_pipe_run. */
int sl_pipe_post(struct sl_pipe_task *t, cJSON **rows, size_t n,
                 bool fail_on_error, int64_t now_ms, struct sl_batch *out,
                 struct sl_batch *dead, struct sl_error *err);

#endif
