/*
 * window.h - event-time windowed aggregation state.
 *
 * A window operator assigns each record, by its event time t (ms since the
 * epoch), to the windows [start, start + size) with start a multiple of
 * slide and start <= t < start + size (tumbling: slide == size, one window;
 * hopping: slide < size, size/slide windows, rounded up), and aggregates it
 * per (window, group key).
 *
 * Micro-batch flow (the engine drives it; DESIGN.md section 2):
 *   1. each task pre-aggregates its records into its own sl_wpartial
 *      (worker thread, no sharing), using the watermark as it stood at the
 *      start of the batch to recognise late records;
 *   2. after all tasks of the batch, the partials are merged into the
 *      global sl_wstate shard by shard: shards are independent, so the
 *      engine runs one merge per shard on the worker pool (the merge is not
 *      a single-thread step even at a million keys);
 *   3. the watermark advances: max event time seen (including this batch)
 *      minus the allowed lateness;
 *   4. each shard emits its output rows (update mode: every window changed
 *      in this batch; append mode: every window whose end <= watermark, once)
 *      and evicts windows whose end <= watermark;
 *   5. the engine snapshots dirty shards into the checkpoint, then commits.
 * Because step 1 uses the watermark of the previous batch, re-running a
 * batch from the same state gives exactly the same output.
 *
 * Output rows are cJSON objects:
 *   {"window_start": ms, "window_end": ms, <group names>..., <agg names>...}
 * emitted per shard in (window_start, group key) order, so the output of a
 * batch is deterministic.
 *
 * Aggregates: count() (int), sum(x) (int while every input is an int and
 * the sum fits; otherwise float), min(x), max(x) (numbers or strings, by
 * sl_value_cmp), avg(x) (float), count_distinct(x) (int, exact: the set
 * stores the distinct values themselves). Null arguments are skipped (as
 * in SQL); count() counts records. A non-number for sum/avg, or values of
 * different kinds for min/max, is a record-level error.
 */
#ifndef SL_WINDOW_H
#define SL_WINDOW_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "value.h"

enum sl_agg_kind {
  SL_AGG_COUNT,
  SL_AGG_SUM,
  SL_AGG_MIN,
  SL_AGG_MAX,
  SL_AGG_AVG,
  SL_AGG_COUNT_DISTINCT
};

/* MERGE (output: merge): no state is kept; each task's or stream
 * group's partial is emitted as rows of its own contribution
 * (sl_wpartial_emit) for a sink that merges them (Redis: HINCRBY, ZADD
 * GT/LT), and nothing is ever late. */
enum sl_window_mode { SL_WINDOW_UPDATE, SL_WINDOW_APPEND, SL_WINDOW_MERGE };

struct sl_window_spec {
  int64_t size_ms;     /* > 0 */
  int64_t slide_ms;    /* 0 < slide <= size; == size for tumbling */
  int64_t lateness_ms; /* watermark = max event time - lateness (>= 0) */
  enum sl_window_mode mode;
  size_t ngroups;
  const char *const *group_names; /* output field of each group key */
  size_t naggs;
  const char *const *agg_names; /* output field of each aggregate */
  const enum sl_agg_kind *agg_kinds;
  unsigned shards; /* power of two, >= 1 (the engine uses 64) */
};

#define SL_WINDOW_NO_WATERMARK INT64_MIN

/* Checks a spec: size in 1..2^60 ms, slide in 1..size, at most 4096
 * windows per record (ceil(size / slide)), lateness in 0..2^60 ms, at
 * most 255 group keys and 255 aggregates, every name set, shards a power
 * of two in 1..65536. SL_ERR_INVAL with a message when it is not; the
 * planner calls it to report a bad window definition, since
 * sl_wpartial_new and sl_wstate_new just return NULL for a bad spec.
 * Event times must lie in [-2^62, 2^62] ms (sl_wpartial_add). */
int sl_window_spec_check(const struct sl_window_spec *spec,
                         struct sl_error *err);

/* --------------------------------------------------------- the partial */

struct sl_wpartial;

/* NULL when the spec is invalid (sl_window_spec_check). The spec is
 * copied. @locality any one thread at a time (a task's worker) */
struct sl_wpartial *sl_wpartial_new(const struct sl_window_spec *spec);
void sl_wpartial_free(struct sl_wpartial *p);

/* Adds one record: its event time, its group key values (spec->ngroups)
 * and its aggregate arguments (spec->naggs; ignored for count(); args may
 * be NULL when every aggregate is count()).
 * watermark is the state's watermark at the start of the batch.
 * Returns 0 when added, 1 when the record is late (every window it falls
 * in ends at or before the watermark: nothing added; the caller counts
 * and dead-letters it), or SL_ERR_INVAL with a message for a record-level
 * error (nothing added). The arguments are checked before lateness, so a
 * bad record is an error even when late. Group values that are JSON
 * objects or arrays are keyed by a canonical JSON text (members sorted by
 * name, so member order does not matter, as in sl_value_equal) and output
 * with members in name order. Values are copied: the caller's memory may
 * go. */
int sl_wpartial_add(struct sl_wpartial *p, int64_t event_ms,
                    const struct sl_value *groups, const struct sl_value *args,
                    int64_t watermark, struct sl_error *err);

/* Emits one row per (window, group key) of the partial, in (window_start,
 * group key) order, as the state's rows look (see the top of this file),
 * holding what the partial's records contribute: their count, sum, min
 * and max (output: merge; avg and count_distinct are refused there, since
 * they do not merge in a sink). The callee owns row. Then empties the
 * partial, which is ready for the next records. */
void sl_wpartial_emit(struct sl_wpartial *p,
                      void (*emit)(cJSON *row, void *arg), void *arg);

/* The largest event time added (INT64_MIN when none). */
int64_t sl_wpartial_max_event(const struct sl_wpartial *p);
size_t sl_wpartial_keys(const struct sl_wpartial *p);

/* ----------------------------------------------------------- the state */

struct sl_wstate;

/* NULL when the spec is invalid (sl_window_spec_check). The spec is
 * copied: sl_wstate_spec returns the copy. */
struct sl_wstate *sl_wstate_new(const struct sl_window_spec *spec);
void sl_wstate_free(struct sl_wstate *s);
const struct sl_window_spec *sl_wstate_spec(const struct sl_wstate *s);

/* The watermark (SL_WINDOW_NO_WATERMARK before any record). */
int64_t sl_wstate_watermark(const struct sl_wstate *s);

/* Merges shard `shard` of every partial into the state. Calls for
 * different shards may run at the same time on different threads; no two
 * calls for the same shard may. Marks touched windows as changed. The
 * partials are only read (free them after the last merge). Entries of
 * windows that already ended at the state's watermark are dropped (only
 * possible for a partial filled with an older watermark).
 * @locality any (one thread per shard) */
void sl_wstate_merge_shard(struct sl_wstate *s, unsigned shard,
                           struct sl_wpartial *const *parts, size_t nparts);

/* Advances the watermark from the partials' max event times (call once,
 * after every merge of the batch, before emitting). The watermark never
 * goes back. @locality one thread, no merge or emit running */
void sl_wstate_advance(struct sl_wstate *s, struct sl_wpartial *const *parts,
                       size_t nparts);

/* Emits shard `shard`'s output rows for this batch (see the top of this
 * file) by calling emit(row, arg) for each (the callee owns row), then
 * evicts the windows that ended at or before the watermark and clears the
 * changed marks. If flush is true, every window is emitted and evicted as
 * if the watermark were +infinity (end of input: `sluice test`).
 * @locality any (one thread per shard) */
void sl_wstate_emit_shard(struct sl_wstate *s, unsigned shard, bool flush,
                          void (*emit)(cJSON *row, void *arg), void *arg);

/* Windows held, counted per (window, group key), and bytes held (an
 * estimate of memory: keys, values, tables). Both may be read while
 * shards are merged or emitted (per-shard counters, relaxed atomics). */
size_t sl_wstate_windows(const struct sl_wstate *s);
size_t sl_wstate_bytes(const struct sl_wstate *s);

/* ------------------------------------------------------------ snapshots */

/* Whether shard changed since its last serialize (for incremental
 * snapshots: unchanged shards are not written again). */
bool sl_wstate_shard_dirty(const struct sl_wstate *s, unsigned shard);

/* Serializes one shard: an lz4-compressed (LZ4 frame or block with its
 * size) versioned binary image; *out is malloc'd. Clears the dirty mark.
 * @locality any (one thread per shard) */
int sl_wstate_shard_serialize(struct sl_wstate *s, unsigned shard, void **out,
                              size_t *len, struct sl_error *err);
/* Replaces shard's content from an image; SL_ERR_CORRUPT with a message
 * when the image is bad (it is checksummed by the checkpoint too, but must
 * never crash on garbage: fuzz-safe). */
int sl_wstate_shard_restore(struct sl_wstate *s, unsigned shard,
                            const void *buf, size_t len, struct sl_error *err);

/* The watermark and max event time, for the snapshot's metadata. */
int64_t sl_wstate_max_event(const struct sl_wstate *s);
void sl_wstate_set_times(struct sl_wstate *s, int64_t max_event,
                         int64_t watermark);

#endif
