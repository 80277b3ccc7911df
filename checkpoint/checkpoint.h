/*
 * checkpoint.h - the checkpoint store of a job: offset log, commit log.
 *
 * Layout of a checkpoint directory:
 *   DIR/metadata            {"job": "<job id>", "version": 1}
 *   DIR/offsets/<N>         the plan of batch N (struct sl_plan), written
 *                           before any task of batch N runs (the WAL)
 *   DIR/commits/<N>         written after the sink committed batch N
 * N is the decimal batch id (no padding; directories are listed and sorted
 * numerically). Batch ids start at 1; 0 means "none".
 *
 * Every file is a JSON body followed by a trailer line
 *   "#sluice-checksum crc32=<8 hex> len=<body bytes>\n"
 * A file without a valid trailer (torn), with a wrong length or checksum
 * (corrupt), or whose body does not parse is reported as SL_ERR_CORRUPT with
 * its path; it is never silently used or skipped. Leftover temporary files
 * (a crash before rename) are removed when the store is opened, in the
 * window state's DIR/state/N/ (state.h) too.
 *
 * All writes go through fsio.h: temp file, write, fsync, rename, fsync of
 * the directory.
 *
 * Thread: the coordinator only.
 */
#ifndef SL_CHECKPOINT_H
#define SL_CHECKPOINT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "../src/error.h"
#include "../src/offsets.h"

struct sl_ckpt;

/* Opens (creating if needed) the checkpoint directory for job_id. Creates
 * DIR, DIR/offsets, DIR/commits and DIR/metadata. Fails with SL_ERR_IO and
 * a message naming the directory when it cannot be created or written
 * (the check writes and removes a probe file), and with SL_ERR_CONFIG when
 * DIR/metadata names another job. */
int sl_ckpt_open(const char *dir, const char *job_id, struct sl_ckpt **out,
                 struct sl_error *err);
void sl_ckpt_close(struct sl_ckpt *ck);
/* Takes the directory's lock file (DIR/lock, flock, holding the pid) for
 * as long as ck is open, or fails naming the process that holds it: in
 * group mode every instance needs a checkpoint directory of its own. */
int sl_ckpt_lock(struct sl_ckpt *ck, struct sl_error *err);
const char *sl_ckpt_dir(const struct sl_ckpt *ck);

/* What the store holds: the newest commit and the newest offsets entry
 * (0 when none). Every file of both logs is verified (checksum and parse);
 * the first bad one fails the scan with SL_ERR_CORRUPT naming the file. */
struct sl_ckpt_state {
  uint64_t last_commit;
  uint64_t last_offsets;
};
int sl_ckpt_scan(struct sl_ckpt *ck, struct sl_ckpt_state *st,
                 struct sl_error *err);

/* Writes offsets/<plan->batch> durably. Refuses (SL_ERR_INVAL) to
 * overwrite an existing entry with different ranges (invariant 2);
 * rewriting identical ranges is a no-op success. A new entry must be the
 * batch after the newest commit (SL_ERR_INVAL otherwise; a sink that is
 * ahead is adopted with sl_ckpt_roll_forward). Offsets, partitions,
 * task_max_records and created_ms must be in [0, 2^53) (exact in JSON) and
 * start <= end; each (topic, partition) at most once. Ranges are stored
 * sorted by topic and partition (sl_plan_sort order). */
int sl_ckpt_write_offsets(struct sl_ckpt *ck, const struct sl_plan *plan,
                          struct sl_error *err);
/* Reads offsets/<batch> into out (out is cleared first).
 * SL_ERR_NOTFOUND when absent. */
int sl_ckpt_read_offsets(struct sl_ckpt *ck, uint64_t batch,
                         struct sl_plan *out, struct sl_error *err);

/* A note the next sl_ckpt_write_commit() or sl_ckpt_roll_forward() stores
 * in commits/N as "sink" (at most 127 bytes; the sink's word on what it
 * committed, for example the Kafka transaction attempt). Cleared by the
 * write. */
void sl_ckpt_set_commit_note(struct sl_ckpt *ck, const char *note);

/* Writes commits/<batch> durably. Requires offsets/<batch> to exist
 * (SL_ERR_INVAL otherwise): a commit without its plan is a bug. */
int sl_ckpt_write_commit(struct sl_ckpt *ck, uint64_t batch,
                         int64_t committed_ms, struct sl_error *err);
/* Whether commits/<batch> exists (the file is not verified; sl_ckpt_scan
 * and sl_ckpt_read_commit do that). */
bool sl_ckpt_has_commit(struct sl_ckpt *ck, uint64_t batch);
/* Reads and verifies commits/<batch>; committed_ms may be NULL.
 * SL_ERR_NOTFOUND when absent, SL_ERR_CORRUPT when bad. */
int sl_ckpt_read_commit(struct sl_ckpt *ck, uint64_t batch,
                        int64_t *committed_ms, struct sl_error *err);

/* SL_RECOVER_ROLL_FORWARD: adopts the sink's batch S = plan->batch (the
 * plan's ends are the sink's end offsets) by writing offsets/S and then
 * commits/S, skipping the batches between the newest commit and S. S must
 * be newer than the newest commit. Re-running it after a crash between the
 * two writes completes the pair (offsets/S is then an identical rewrite). */
int sl_ckpt_roll_forward(struct sl_ckpt *ck, const struct sl_plan *plan,
                         int64_t committed_ms, struct sl_error *err);

/* Deletes offsets and commits older than the newest `retain` commits
 * (never the newest commit, nor any offsets entry newer than it).
 * retain == 0 is treated as 1. */
int sl_ckpt_prune(struct sl_ckpt *ck, unsigned retain, struct sl_error *err);

/* Writes a human-readable summary of the directory to out (for
 * `sluice checkpoint show DIR`): job, newest commit, newest offsets and its
 * ranges, and any corrupt file. Returns 0, or an error when DIR is not a
 * checkpoint directory. */
int sl_ckpt_show(const char *dir, FILE *out, struct sl_error *err);

/* Debug builds (SL_DEBUG_INVARIANTS): aborts with a message unless the
 * newest offsets entry is the newest commit or the one after it, and every
 * commit has its offsets entry (checked on disk). Called after every
 * successful write; a no-op in other builds. */
void sl_ckpt_assert_invariants(struct sl_ckpt *ck);

/* ------------------------------------------------------------ recovery */

enum sl_recovery_action {
  SL_RECOVER_FRESH,        /* plan batch `batch` from the commit's ends  */
  SL_RECOVER_RERUN,        /* re-run batch `batch` with offsets/<batch>  */
  SL_RECOVER_COMPLETE,     /* sink holds `batch`: write commits/<batch>,
                              then plan batch + 1                        */
  SL_RECOVER_ROLL_FORWARD, /* sink is ahead by more than one batch: take
                              the sink's end offsets as batch `batch`     */
  SL_RECOVER_SINK_BEHIND,  /* sink lost data: stop with an error         */
  SL_RECOVER_FROM_SINK     /* sink lost data and the user said to go on
                              from the sink's offsets: record them as the
                              new batch `batch` (after every batch the
                              store has seen)                             */
};

struct sl_recovery {
  enum sl_recovery_action action;
  uint64_t batch;
};

/* The recovery decision (DESIGN.md section 3), a pure function.
 *   last_commit   K: newest commits/ entry (0 none)
 *   last_offsets  M: newest offsets/ entry (0 none); M is K or K + 1
 *   sink_knows    whether the sink records its committed batch at all
 *                 (console does not); when false, sink_batch is ignored
 *   sink_batch    S: the sink's last committed batch (0 none)
 * Rules: S == K or !sink_knows: RERUN K+1 if M == K+1, else FRESH K+1.
 *        S == K+1 and M == K+1: COMPLETE K+1.
 *        S > K (otherwise): ROLL_FORWARD S.
 *        S < K: SINK_BEHIND (batch = S), or with from_sink FROM_SINK
 *        (batch = max(K, M) + 1). */
struct sl_recovery sl_recovery_decide(uint64_t last_commit,
                                      uint64_t last_offsets, bool sink_knows,
                                      uint64_t sink_batch, bool from_sink);

/* Where each partition resumes once the decision above is taken
 * (DESIGN.md section 14: per partition, the sink's record is the
 * authority), a pure function. Positions are plan ends (the next offset
 * to read); starts are ignored.
 *   local   the local checkpoint's committed ends after the decision
 *           (the newest commit's plan; the completed or rolled-forward
 *           batch's); NULL or empty: the checkpoint knows no partition
 *   sink    the sink's positions (sl_sink_plugin.positions); NULL: none
 *   bound   NULL, or the highest position the job's other outputs allow
 *           (the dead letters' record, when the sink's positions can run
 *           ahead of them): a sink position is lowered to it, and one of
 *           a partition bound does not name is not taken
 * out: every partition of local and of the sink, at max(local, sink),
 * sorted; a sink position below the local one is ignored, so no position
 * goes back. from_sink: the partitions whose position came from the sink,
 * each with start = the local position (-1: local did not know it) and
 * end = the sink's. Returns from_sink->n. */
size_t sl_recovery_positions(const struct sl_plan *local,
                             const struct sl_plan *sink,
                             const struct sl_plan *bound, struct sl_plan *out,
                             struct sl_plan *from_sink);

#endif
