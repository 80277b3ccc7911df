/*
 * state.h - window state snapshots in the checkpoint (invariant 5).
 *
 *   DIR/state/<N>/shards    the images of every shard that changed in
 *                           batch N, in one file (the pack, below); none
 *                           when no shard changed
 *   DIR/state/<N>/index     {"batch", "watermark", "max_event",
 *                            "shards": [b0, b1, ...]}
 * Snapshots are incremental: only shards that changed in batch N are
 * written in state/<N>/shards; the index names, for every shard, the
 * batch whose files hold its current image (b_s <= N; 0: the shard is
 * empty). Both files are sealed (the checksum trailer of fsio.h) and
 * written atomically (fsio.h: temp file, fsync, rename, fsync of
 * state/<N>/), the pack first, then the index: two fsyncs of a file and
 * two of the directory per batch, whatever the number of shards. A crash
 * inside a write leaves its temp file (.shards.tmp.<pid>, .index.tmp.<pid>)
 * in state/<N>/; sl_ckpt_open removes it.
 *
 * The pack's body, little-endian (a shard image: snapshot.h):
 *   offset 0   "SLSP"
 *          4   u32 version (1)
 *          8   u64 N, the batch (a pack read from another directory is
 *              refused)
 *         16   u32 count, the shards in the file (>= 1)
 *         20   u32 0
 *         24   count entries of 24 bytes: u32 shard | u32 0 | u64 offset
 *              | u64 length; shards strictly ascending; offsets from the
 *              start of the body
 *         24 + 24 * count   the images, in the table's order, back to back:
 *              the first starts right after the table, each next one where
 *              the one before ends, and the last ends the body
 * then the trailer "#sluice-checksum crc32=<8 hex> len=<body bytes>\n".
 * Anything else (a bad magic, version, batch, count or reserved field, a
 * shard out of order or twice, a gap, an overlap, bytes left over) is
 * SL_ERR_CORRUPT with a message naming the file.
 *
 * The old layout. Versions before the pack wrote each changed shard of N
 * as its own sealed file, DIR/state/<N>/<shard> (the decimal shard number,
 * the bare image in the envelope), with the same index. Such a checkpoint
 * keeps working: the image of shard k of batch B is the entry k of
 * state/<B>/shards when that file exists and lists k, else the file
 * state/<B>/<k>. An index may name old-layout batches for some shards and
 * packed ones for others (a job upgraded between them); nothing writes the
 * old layout any more.
 *
 * Writing. sl_state_pack collects the images of batch N (sl_state_pack_add:
 * the pack only points at them; they stay where the caller made them, in
 * the engine the emit tasks' serialized shards, which live until the
 * batch's tasks are freed after its commit), and sl_ckpt_state_write_pack
 * lays the file out in one buffer (table, copies of the images, trailer)
 * and writes it with one sl_fsio_write_atomic. Crash points: the pack's
 * steps are checkpoint.state.{before_fsync,before_rename,before_dir_fsync},
 * the index's checkpoint.state.index.{...}.
 *
 * Reading. sl_state_reader opens the images of one batch B once (the pack
 * is read and verified whole when it exists) and hands out any of its
 * shards; the engine opens each batch its index names once and restores
 * the shards that refer to it.
 *
 * Order within batch N: the pack, then the index, then the sink commit,
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

#define SL_STATE_PACK_NAME    "shards" /* state/<N>/shards */
#define SL_STATE_PACK_MAGIC   "SLSP"
#define SL_STATE_PACK_VERSION 1u
#define SL_STATE_PACK_HDR     24 /* bytes before the table */
#define SL_STATE_PACK_ENTRY   24 /* bytes of a table entry */

struct sl_state_index {
  uint64_t batch;
  int64_t watermark, max_event;
  unsigned nshards;
  uint64_t *shard_batch; /* nshards entries, malloc'd */
};

void sl_state_index_free(struct sl_state_index *x);

/* ------------------------------------------------------------ writing */

/* The shard images of one batch, to be written as state/<batch>/shards. */
struct sl_state_pack {
  uint64_t batch;
  size_t n, cap;
  struct sl_state_image {
    unsigned shard;
    const void *data; /* the caller's: must outlive the write */
    size_t len;
  } * img;
};

void sl_state_pack_init(struct sl_state_pack *p, uint64_t batch);
/* Adds the image of a shard (data[0..len), borrowed, not copied). */
void sl_state_pack_add(struct sl_state_pack *p, unsigned shard,
                       const void *data, size_t len);
/* Frees the table (not the images). */
void sl_state_pack_free(struct sl_state_pack *p);

/* Writes state/<p->batch>/shards durably (in the layout above; the images
 * in ascending shard order whatever the order they were added in). A pack
 * with no image writes nothing and succeeds. SL_ERR_INVAL when a shard was
 * added twice; SL_ERR_IO from the write, naming the file. */
int sl_ckpt_state_write_pack(struct sl_ckpt *ck, const struct sl_state_pack *p,
                             struct sl_error *err);
int sl_ckpt_state_write_index(struct sl_ckpt *ck,
                              const struct sl_state_index *x,
                              struct sl_error *err);

/* ------------------------------------------------------------ reading */

/* SL_ERR_NOTFOUND when batch has no index. */
int sl_ckpt_state_read_index(struct sl_ckpt *ck, uint64_t batch,
                             struct sl_state_index *x, struct sl_error *err);

/* The images of one batch's directory, opened for reading. */
struct sl_state_reader {
  struct sl_ckpt *ck;
  uint64_t batch;
  char *pack; /* state/<batch>/shards as read; NULL: there is none */
  const unsigned char *table; /* into pack: count entries */
  uint32_t count;
  char *file; /* the old-layout file read last (its image is handed out) */
};

/* Opens the images of batch `batch`: reads and verifies
 * state/<batch>/shards when it exists (SL_ERR_CORRUPT naming it when it is
 * bad, SL_ERR_IO when it cannot be read); a batch without one is of the
 * old layout, whose files are read one by one as they are asked for. */
int sl_state_reader_open(struct sl_ckpt *ck, uint64_t batch,
                         struct sl_state_reader *r, struct sl_error *err);
/* The image of `shard` in the open batch: *data points into the reader,
 * valid until the next call or sl_state_reader_close. SL_ERR_CORRUPT
 * naming the files when the batch holds no image of it (an index refers to
 * it), or when the old-layout file is bad. */
int sl_state_reader_shard(struct sl_state_reader *r, unsigned shard,
                          const void **data, size_t *len, struct sl_error *err);
void sl_state_reader_close(struct sl_state_reader *r);

/* One shard of one batch (a reader opened, asked once and closed); *data
 * is malloc'd. */
int sl_ckpt_state_read_shard(struct sl_ckpt *ck, uint64_t file_batch,
                             unsigned shard, void **data, size_t *len,
                             struct sl_error *err);

/* ------------------------------------------------------------ pruning */

/* Removes state directories no longer needed: those of batches older than
 * `oldest` (the oldest commit kept) that no index from `oldest` on refers
 * to (a directory goes whole, pack or old-layout files alike). */
int sl_ckpt_state_prune(struct sl_ckpt *ck, uint64_t oldest, uint64_t newest,
                        struct sl_error *err);

#endif
