/*
 * batch.h - one micro-batch's life, as one state machine.
 *
 * A batch is born PLANNED and ends COMMITTED or FAILED. Every arrow below
 * is one function of this file; nothing else changes a batch's state.
 *
 *                 eng_batch_log               eng_batch_read
 *     PLANNED ─────────────────────► LOGGED ────────────────────► READ
 *        │                             ▲                           ▲
 *        │ eng_batch_read              │ eng_batch_from_log        │
 *        │ (beside the previous        │ (recovery: re-run)        │
 *        │  batch's commit)            │                           │
 *        ▼                             │            eng_batch_log  │
 *     READ_AHEAD ──────────────────────┼───────────────────────────┘
 *                                      │
 *                                      │ eng_batch_sink_holds
 *                                      ▼ (recovery: complete)
 *     READ ─────────────► STATE_SAVED ─────────────► COMMITTING ───────►
 * COMMITTED eng_batch_save_state     eng_batch_commit        eng_batch_finish
 *
 *     any state but COMMITTED ──────► FAILED (eng_batch_free of an
 *                                     unfinished batch)
 *
 *     (an epoch of the continuous trigger) ──► READ_AHEAD
 *                                     eng_batch_epoch: its long-running
 *                                     tasks read it before it was cut
 *
 * What is durable in each state, and what a crash there leaves:
 *   PLANNED      nothing: the ranges are in memory. A crash: the restart
 *                plans the same batch afresh.
 *   READ_AHEAD   nothing yet: the tasks ran while the previous batch was
 *                still committing (invariant: offsets/N is written only
 *                after commits/N-1). Their stages are listed by no commit.
 *   LOGGED       offsets/N, the write-ahead log. A crash: the restart runs
 *                batch N again with exactly these ranges (RERUN).
 *   READ         offsets/N; every task's output staged and closed in the
 *                sink (for the file sink, fsynced part files), listed by
 *                no manifest.
 *   STATE_SAVED  as READ, plus the window state snapshot of N (windowed
 *                jobs; the state is written before the sink commit,
 *                invariant 5). A stateless batch passes straight through.
 *   COMMITTING   the sink commit of N runs (on its own thread when the
 *                engine overlaps commits with the next batch's reads); the
 *                sink's commit is atomic and idempotent on N. A crash: the
 *                sink holds N or not; recovery asks it.
 *   COMMITTED    commits/N: the batch is current. Old entries are pruned.
 *   FAILED       whatever the failed step left; the job stops and the
 *                restart recovers from the last durable state above.
 *
 * Crash points (failpoint.h) sit on the arrows: batch.planned and
 * batch.after_offsets around offsets/N, batch.after_reads on entering
 * READ, batch.after_state on entering STATE_SAVED, the sink's own inside
 * its commit, batch.after_sink_commit and batch.after_commit around
 * commits/N.
 *
 * Recovery (recover.c) enters this same machine from the checkpoint: a
 * batch planned but not committed is rebuilt from offsets/N in LOGGED and
 * runs on; a batch the sink already holds is rebuilt in COMMITTING, its
 * commit known done, and eng_batch_finish writes its commits/N. Rolling
 * the checkpoint forward to a sink that is ahead is not a batch: it
 * rewrites the checkpoint (sl_ckpt_roll_forward).
 *
 * Ownership: one owner at a time. The trigger loop owns a batch from
 * eng_batch_new until eng_batch_commit hands it to the engine as the batch
 * in flight (e->fl); eng_batch_finish takes it back and frees it. The
 * commit thread only reads the batch and writes its commit result, and is
 * joined before anyone else looks at them. eng_batch_free is the only
 * function that frees a batch.
 *
 * The trigger (interval, available-now, continuous) decides when a
 * batch is planned and how much it holds; the machine is the same for
 * every trigger. A continuous epoch (stream.c) is one more way in: its
 * ranges are what the long-running tasks read up to the barrier, so it is
 * born READ_AHEAD, with its stages closed, and goes on as a read-ahead
 * batch does (offsets/E once the previous epoch is current, then the same
 * way out). A sink that writes at once (SL_SINK_WRITES_AT_ONCE) has
 * already made its records visible by then; its guard on the partition
 * positions, not offsets/E, is what keeps a replay from writing them
 * twice.
 */
#ifndef SL_BATCH_H
#define SL_BATCH_H

#include "engine_int.h"

enum eng_batch_state {
  ENG_BATCH_PLANNED,
  ENG_BATCH_READ_AHEAD,
  ENG_BATCH_LOGGED,
  ENG_BATCH_READ,
  ENG_BATCH_STATE_SAVED,
  ENG_BATCH_COMMITTING,
  ENG_BATCH_COMMITTED,
  ENG_BATCH_FAILED,
};

const char *eng_batch_state_name(enum eng_batch_state s);

struct eng_batch {
  enum eng_batch_state state;
  struct engine *e;
  struct sl_plan plan, latest; /* owned; latest empty when unknown */
  bool has_latest;
  bool recovered; /* rebuilt from the checkpoint to complete: no report */
  struct task_ctx *tcs;
  size_t n;
  int64_t records, lost;
  struct sl_pipe_stats stats;
  /* plan, offsets/N, reads, waiting for the previous batch's commit, the
   * window phase (ns); start of the batch, of its commit, end of it */
  int64_t plan_ns, off_ns, read_ns, wait_ns, win_ns, t0, t2, t3;
  /* COMMITTING: the commit's thread (async) and result */
  bool async;
  pthread_t th;
  int rc;
  struct sl_error err;
};

/* (none) -> PLANNED. Takes plan's ranges (plan is left empty: the tasks
 * point into them); copies latest (NULL: unknown). */
struct eng_batch *eng_batch_new(struct engine *e, struct sl_plan *plan,
                                const struct sl_plan *latest, int64_t plan_ns);

/* (none) -> READ_AHEAD: an epoch cut from the streams, its ranges in plan
 * (taken, as in eng_batch_new) and its tasks' closed stages in tcs (n,
 * taken). */
struct eng_batch *eng_batch_epoch(struct engine *e, struct sl_plan *plan,
                                  struct task_ctx *tcs, size_t n,
                                  int64_t records,
                                  const struct sl_pipe_stats *stats,
                                  int64_t cut_ns);

/* Recovery: (checkpoint) -> LOGGED, batch `id` rebuilt from offsets/N. */
int eng_batch_from_log(struct engine *e, uint64_t id, struct eng_batch **out,
                       struct sl_error *err);

/* PLANNED -> LOGGED, or READ_AHEAD -> READ: writes offsets/N. */
int eng_batch_log(struct eng_batch *b, struct sl_error *err);

/* LOGGED -> READ, or PLANNED -> READ_AHEAD (only while another batch is
 * committing): runs the read tasks on the pool. */
int eng_batch_read(struct eng_batch *b, struct sl_error *err);

/* READ -> STATE_SAVED: the window phase and the snapshot (windowed). */
int eng_batch_save_state(struct eng_batch *b, struct sl_error *err);

/* STATE_SAVED -> COMMITTING: the batch becomes the one in flight (e->fl);
 * its ends are where the next batch starts. The commit runs on a thread
 * of its own when the engine overlaps commits; otherwise it runs here and
 * the batch is finished at once (eng_batch_finish). */
int eng_batch_commit(struct eng_batch *b, struct sl_error *err);

/* Recovery: LOGGED -> COMMITTING for a batch the sink already holds; the
 * commit is known done. */
void eng_batch_sink_holds(struct eng_batch *b);

/* COMMITTING -> COMMITTED for the batch in flight: waits for its commit,
 * writes commits/N, prunes, reports. No-op when none is in flight. A
 * failed commit: FAILED, its error returned. Frees the batch either way. */
int eng_batch_finish(struct engine *e, struct sl_error *err);

/* Frees a batch in any state (an unfinished one becomes FAILED first):
 * its stages, tasks and plans. NULL is allowed. */
void eng_batch_free(struct eng_batch *b);

#endif
