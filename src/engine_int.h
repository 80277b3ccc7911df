/*
 * engine_int.h - what the engine's files share; nothing outside src/
 * engine*.c, tasks.c, window_phase.c, commit.c and recover.c includes it.
 *
 *   engine.c        stopping, retries, planning, the trigger loop,
 *                   sl_engine_run
 *   batch.c         one batch's life: the state machine (batch.h)
 *   tasks.c         the worker side and task dispatch
 *   window_phase.c  merge, emit, snapshot; restoring the state
 *   commit.c        sink commits, commits/N, progress
 *   recover.c       the recovery decision and --dry-run
 *   stream.c        the continuous trigger's long-running tasks, epochs
 *
 * The coordinator thread owns struct engine; workers read it (the job,
 * the plugins, the window state during a phase) but write only their
 * task's task_ctx.
 */
#ifndef SL_ENGINE_INT_H
#define SL_ENGINE_INT_H

#include "engine.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../checkpoint/checkpoint.h"
#include "../checkpoint/state.h"
#include "failpoint.h"
#include "log.h"
#include "metrics.h"
#include "plan.h"
#include "pipeline.h"
#include "pool.h"
#include "progress.h"
#include "util.h"

struct engine {
  struct sl_job *job;
  const struct sl_run_opts *opts;
  struct sl_source src;
  /* the plugins' views of the run (plugin.h sl_run_ctx) */
  struct sl_run_ctx src_run, sink_run, dl_run;
  struct sl_source_info src_info;
  struct sl_sink sink;
  struct sl_sink dl; /* dead letters; dl.plugin NULL when none */
  bool has_ops;      /* the pipeline does something */
  /* output: merge: no window state; each read task and stream group
   * hands the sink its contribution (sl_pipe_merge_out) */
  bool merge;
  struct sl_wstate *ws;       /* window state, NULL when stateless */
  uint64_t *shard_batch;      /* per shard: batch whose file holds it */
  struct sl_wpartial **parts; /* the batch's partials, while merging */
  size_t nparts;
  int64_t watermark; /* window watermark at the start of the batch */
  struct sl_ckpt *ck;
  struct sl_pool *pool;
  struct sl_metrics *metrics; /* NULL when off */
  bool src_ready, sink_ready;

  struct sl_plan pos; /* where the next batch starts, per partition */
  /* Partitions that resumed at the sink's position (recover.c): start =
   * the checkpoint's (-1 none), end = the sink's. */
  struct sl_plan from_sink;
  struct sl_plan target;   /* available-now: where to stop */
  struct sl_plan affinity; /* start = worker whose reader stands at end */
  uint64_t next_batch;
  uint64_t rerun; /* batch to re-run from offsets/, 0 none */
  /* Recovery started partitions at the sink's positions, above what the
   * checkpoint holds: the loop first records them (engine.c catch_up). */
  bool catch_up;
  char run_id[40];
  int64_t last_batch_start_ns;
  int64_t last_batch_end_ns;
  int64_t started_ns;
  bool committed_once;  /* a batch was committed by this process */
  int64_t done;         /* records processed in this run */
  bool overlap;         /* commits may run beside the next batch's reads */
  struct eng_batch *fl; /* the batch committing (batch.h), or NULL */
  const struct eng_trigger *trig; /* the trigger's policy (trigger.h) */
  struct eng_cont *cont; /* continuous: the streams (stream.c), or NULL */

  /* group mode (group.c) */
  bool group;
  bool group_offsets;     /* the sink keeps no positions: the group's offsets */
  struct sl_plan owned;   /* the partitions the group assigned */
  struct sl_plan refresh; /* fenced: positions to read again */
  int group_rc;           /* a hook's failure, returned by eng_group_poll */
  struct sl_error group_err;
  int64_t rebalances, rebalance_ns;
  char instance[24];
};

struct worker_ctx {
  void *reader;
  struct sl_batch chunk, out, dead;
  struct sl_rejects rejects; /* records the sink could not write */
  struct sl_batch rdead;     /* their dead letters */
};

enum task_kind { TASK_READ, TASK_MERGE, TASK_EMIT, TASK_STREAM };

/* How many queued ranges past the current one a worker tells its reader
 * about (see hint_ranges); the source bounds what it fetches ahead. */
#define SL_PREFETCH_RANGES 8

/* The image of one shard, serialized by an emit task. */
struct shard_image {
  unsigned shard;
  void *data;
  size_t len;
};

struct task_ctx {
  enum task_kind kind;
  unsigned shard_lo, shard_hi; /* merge / emit: shards [lo, hi) */
  struct shard_image *images;  /* emit: dirty shards serialized */
  size_t nimages;
  char **top_rows; /* emit with `top`: rows for the coordinator to rank */
  size_t ntop;
  struct engine *e;
  struct sl_range slice; /* topic points into the batch's plan */
  void *stage;           /* opened on the first output */
  void *dl_stage;        /* opened on the first dead letter */
  struct sl_pipe_task *pipe;
  struct sl_pipe_stats stats;
  int64_t records;
  int64_t lost;          /* skipped: deleted by retention */
  int64_t sink_rejected; /* outputs the sink sent to the dead letters */
  int attempts;
  int64_t retry_at_ns;
  /* Read tasks: the next task queued on the same worker's ring, for the
   * source's prefetch hint (hint_ranges), and whether a worker has begun
   * this one. */
  struct task_ctx *after;
  atomic_bool started;
  struct eng_stream *stream; /* TASK_STREAM: its stream (stream.c) */
};

/* engine.c: stopping, retries, planning, the trigger loop */
void eng_wait_until(int64_t until_ns);
int eng_watermarks_retrying(struct engine *e, struct sl_plan *wm,
                            struct sl_error *err);
int eng_plan_retrying(struct engine *e, struct sl_plan *plan,
                      struct sl_plan *latest, struct sl_error *err);
int64_t eng_lag_after(const struct sl_plan *plan, const struct sl_plan *latest);
/* The flags of a configured sink (plugin.h conf_flags). */
unsigned eng_sink_flags(const struct sl_sink *sink);
int eng_with_retry(struct engine *e, const struct sl_sink *sink,
                   const char *what, int (*fn)(void *arg, struct sl_error *err),
                   void *arg, struct sl_error *err);

/* tasks.c */
int eng_worker_init(int worker, void *arg, void **wctx, struct sl_error *err);
void eng_worker_fini(int worker, void *arg, void *wctx);
int eng_stage_out(struct engine *e, struct task_ctx *tc,
                  const struct sl_task *t, struct worker_ctx *w,
                  const struct sl_batch *b, struct sl_error *err);
int eng_sink_rejects(struct engine *e, struct task_ctx *tc,
                     const struct sl_task *t, struct worker_ctx *w,
                     struct sl_error *err);
int eng_stage_dead(struct engine *e, struct task_ctx *tc,
                   const struct sl_task *t, struct worker_ctx *w,
                   const struct sl_batch *dead, const char *what,
                   struct sl_error *err);
int eng_close_stage(struct sl_sink *sink, void *st, struct sl_error *err);
int eng_run_task(struct sl_task *t, int worker, void *wctx, void *arg);
void eng_free_stages(struct engine *e, struct task_ctx *tcs, size_t n);
int eng_run_tasks(struct engine *e, const struct sl_plan *plan,
                  struct task_ctx **out_tcs, size_t *out_n, int64_t *records,
                  int64_t *lost, struct sl_pipe_stats *stats,
                  struct sl_error *err);
int eng_run_phase(struct engine *e, uint64_t batch, struct task_ctx *tcs,
                  size_t n, uint32_t first_id, struct sl_error *err);

/* window_phase.c */
int eng_run_window(struct engine *e, const struct sl_plan *plan,
                   struct task_ctx **tcs, size_t *n,
                   struct sl_pipe_stats *stats, struct sl_error *err);
int eng_load_state(struct engine *e, uint64_t batch, struct sl_error *err);

/* commit.c */
struct eng_batch;
int eng_commit_sink(struct engine *e, const struct sl_plan *plan,
                    struct task_ctx *tcs, size_t n, struct sl_error *err);
void eng_after_commit(struct engine *e, const struct eng_batch *b, int64_t tj);

/* batch.c: positions (e->pos) from a plan's ends; a position never goes
 * back (only --recover-from-sink clears them first) */
void eng_positions_from(struct engine *e, const struct sl_plan *p);

/* stream.c: the continuous trigger */
struct eng_batch;
bool eng_continuous_supported(const struct engine *e, struct sl_error *err);
int eng_streams_start(struct engine *e, struct sl_error *err);
/* The epoch the streams read since the last cut, as a batch whose reads
 * are done (*out NULL when nothing arrived). last: the streams end after
 * it. */
int eng_streams_cut(struct engine *e, bool last, struct eng_batch **out,
                    struct sl_error *err);
/* Ends the streams (if any) and frees them. */
void eng_streams_halt(struct engine *e);
/* Group mode, before a rebalance changes the partitions: the streams'
 * last epoch is cut and committed (engine.c), then the streams end; the
 * trigger loop starts them again over the partitions owned after the
 * rebalance. A commit refused as fenced is abandoned (group.c). */
int eng_streams_drain(struct engine *e, struct sl_error *err);
/* Windowed: epoch `epoch`'s window phase is done; the streams reading the
 * next epoch judge lateness by the state's watermark now. */
void eng_streams_watermark(struct engine *e, uint64_t epoch);
int eng_stream_task(struct sl_task *t, struct worker_ctx *w, struct engine *e);

/* group.c: group mode */
int eng_group_poll(struct engine *e, struct sl_error *err);
/* The sink refused plan's commit as fenced (why), in eng_batch_finish:
 * the batch is closed as abandoned, its partitions go back to its starts
 * and read the sink's positions again at the next eng_group_poll. */
void eng_group_batch_fenced(struct engine *e, const struct sl_plan *plan,
                            const char *why);
/* Continuous: a stream's write was refused as fenced (why): the streams
 * end, and every owned partition reads the sink's position again at the
 * next eng_group_poll, before they start again. */
void eng_group_streams_fenced(struct engine *e, const char *why);
/* Closes logged batch `batch` in the checkpoint as abandoned. */
void eng_group_abandon(struct engine *e, uint64_t batch, const char *why);
void eng_group_committed(struct engine *e, const struct sl_plan *plan);
int eng_group_recover(struct engine *e, struct sl_error *err);
void eng_group_instance(struct engine *e);

/* recover.c */
int eng_recover(struct engine *e, struct sl_error *err);
int eng_dry_run(struct engine *e, struct sl_error *err);

#endif
