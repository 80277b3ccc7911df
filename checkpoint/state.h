/*
 * state.h - window state snapshots in the checkpoint (invariant 5).
 *
 *   DIR/state/<N>/<shard>   the image of one shard, written in batch N
 *                           (its format: snapshot.h)
 *   DIR/state/<N>/index     {"batch", "watermark", "max_event",
 *                            "shards": [b0, b1, ...]}
 * Snapshots are incremental: only shards that changed in batch N are
 * written under state/<N>/; the index names, for every shard, the batch
 * whose file holds its current image (b_s <= N; 0: the shard is empty).
 * Every file is sealed (checksummed) and written atomically (fsio.h).
 *
 * Order within batch N: shard files, then the index, then the sink commit,
 * then commits/N (which makes the snapshot current). On start the state of
 * the newest commit K is loaded: re-running K+1 starts from exactly it.
 *
 * Thread: the coordinator only.
 */
#ifndef SL_CKPT_STATE_H
#define SL_CKPT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"

struct sl_state_index {
  uint64_t batch;
  int64_t watermark, max_event;
  unsigned nshards;
  uint64_t *shard_batch; /* nshards entries, malloc'd */
};

void sl_state_index_free(struct sl_state_index *x);

int sl_ckpt_state_write_shard(struct sl_ckpt *ck, uint64_t batch,
                              unsigned shard, const void *data, size_t len,
                              struct sl_error *err);
int sl_ckpt_state_write_index(struct sl_ckpt *ck,
                              const struct sl_state_index *x,
                              struct sl_error *err);
/* SL_ERR_NOTFOUND when batch has no index. */
int sl_ckpt_state_read_index(struct sl_ckpt *ck, uint64_t batch,
                             struct sl_state_index *x, struct sl_error *err);
/* Reads (and verifies) state/<file_batch>/<shard>; *data is malloc'd. */
int sl_ckpt_state_read_shard(struct sl_ckpt *ck, uint64_t file_batch,
                             unsigned shard, void **data, size_t *len,
                             struct sl_error *err);
/* Removes state directories no longer needed: those of batches older than
 * `oldest` (the oldest commit kept) that no index from `oldest` on refers
 * to. */
int sl_ckpt_state_prune(struct sl_ckpt *ck, uint64_t oldest, uint64_t newest,
                        struct sl_error *err);

#endif
