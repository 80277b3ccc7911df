/*
 * snapshot.h - the on-disk format of a window state shard image, the
 * bytes stored in DIR/state/<N>/<shard> (state.h stores them, inside the
 * checksummed envelope of fsio.h).
 *
 * Image = 24-byte header + LZ4 block:
 *   "SLWZ" | u32 format version | u64 raw length | u32 crc32(raw) | u32 0
 * raw (little-endian):
 *   "SLWS" | u32 version
 *   i64 size | i64 slide | u32 shards | u32 shard | u32 ngroups | u32 naggs
 *   | u8 kind[naggs]                               (the window definition)
 *   u64 entries, each:
 *     i64 start | u32 keylen | key blob (ngroups encoded values)
 *     per aggregate:
 *       count:          i64
 *       sum:            u8 t | (t int: i64 | t float: f64)
 *       avg:            f64 sum | i64 inputs
 *       min, max:       u8 t | (int: i64 | float: f64 | string: u32 n, bytes)
 *       count_distinct: u64 values | u64 bytes | encoded values
 * kind: 0 count, 1 sum, 2 min, 3 max, 4 avg, 5 count_distinct (the values
 * of window.h's enum sl_agg_kind). An encoded value, and the tag t of an
 * aggregate: u8 tag (0 null, 1 false, 2 true, 3 int, 4 float, 5 string,
 * 6 JSON text), then nothing (null, false, true), i64 (int), the f64
 * bits (float), or u32 n and n bytes (string, JSON text); an aggregate's
 * t is 0 while it has no value.
 * Changed marks are not saved (a restored state starts a batch clean).
 * One LZ4 block holds at most LZ4_MAX_INPUT_SIZE (~2 GB) per shard.
 *
 * Who writes what. This file owns the framing (sl_snap_seal, sl_snap_open:
 * header, LZ4, CRC), the window definition at the head of the raw bytes
 * (sl_snap_def_put, sl_snap_def_read) and the bounds-checked reader the
 * entries are parsed with. The entries themselves (the key blob's encoded
 * values, the aggregate states, the value tags t) are written and read by
 * src/window.c, which owns those structures; the layout above is their
 * one description. Nothing here includes the window module: window.c
 * includes this header, never the reverse.
 *
 * Every error is SL_ERR_CORRUPT (or SL_ERR_INVAL when sealing) with a
 * message that starts "window state shard <k>: ".
 */
#ifndef SL_CKPT_SNAPSHOT_H
#define SL_CKPT_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../src/error.h"

#define SL_SNAP_IMG_MAGIC "SLWZ"
#define SL_SNAP_RAW_MAGIC "SLWS"
#define SL_SNAP_VERSION   1u /* of the image header and of the raw bytes */
#define SL_SNAP_HDR       24 /* bytes of the image header */

/* ----------------------------------------------------- little-endian */

/* Little-endian, so images and hashes (hence shard numbers) are the same
 * on every host; compilers turn these into plain loads and stores. */
static inline void sl_snap_st_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static inline void sl_snap_st_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t sl_snap_ld_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v |= (uint32_t)p[i] << (8 * i);
  return v;
}

static inline uint64_t sl_snap_ld_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* ------------------------------------------------------------ reader */

/* A bounds-checked reader over untrusted bytes: once a read would pass
 * the end, bad is set and every later read returns zeros (take: NULL).
 * Start one as (struct sl_snap_rd){.p = bytes, .n = length}. */
struct sl_snap_rd {
  const unsigned char *p;
  size_t n, off;
  bool bad;
};

static inline const unsigned char *sl_snap_rd_take(struct sl_snap_rd *r,
                                                   size_t k) {
  if (r->bad || r->n - r->off < k) {
    r->bad = true;
    return NULL;
  }
  const unsigned char *q = r->p + r->off;
  r->off += k;
  return q;
}

static inline uint8_t sl_snap_rd_u8(struct sl_snap_rd *r) {
  const unsigned char *q = sl_snap_rd_take(r, 1);
  return q ? q[0] : 0;
}

static inline uint32_t sl_snap_rd_u32(struct sl_snap_rd *r) {
  const unsigned char *q = sl_snap_rd_take(r, 4);
  return q ? sl_snap_ld_u32(q) : 0;
}

static inline uint64_t sl_snap_rd_u64(struct sl_snap_rd *r) {
  const unsigned char *q = sl_snap_rd_take(r, 8);
  return q ? sl_snap_ld_u64(q) : 0;
}

static inline double sl_snap_rd_f64(struct sl_snap_rd *r) {
  uint64_t u = sl_snap_rd_u64(r);
  double d;
  memcpy(&d, &u, sizeof(d));
  return d;
}

/* ------------------------------------------------------------ framing */

/* Seals raw bytes (n of them) into an image: header, LZ4 block, CRC.
 * *out is malloc'd (*len bytes). SL_ERR_INVAL when n is too large for
 * one LZ4 block or compression fails; shard is for the message. */
int sl_snap_seal(unsigned shard, const void *raw, size_t n, void **out,
                 size_t *len, struct sl_error *err);

/* Opens the image of shard `shard` (len bytes; img may be NULL when len is
 * 0): checks the header, decompresses and verifies the CRC. *raw is
 * malloc'd (*rawlen bytes; never NULL on success), NULL on failure.
 * SL_ERR_CORRUPT with a message: truncated image, not a window state
 * image, unknown image version, bad image header, lz4 data is damaged,
 * checksum mismatch. */
int sl_snap_open(unsigned shard, const void *img, size_t len,
                 unsigned char **raw, size_t *rawlen, struct sl_error *err);

/* ------------------------------------------------- window definition */

/* The window definition at the head of the raw bytes: an image restores
 * only into the same definition, and only as the shard it was written
 * for. kinds: naggs aggregate kinds (the window's enum values, one byte
 * each). */
struct sl_snap_def {
  int64_t size_ms, slide_ms;
  uint32_t shards, shard, ngroups, naggs;
  const uint8_t *kinds;
};

/* Bytes sl_snap_def_put writes: "SLWS", version and the definition. */
size_t sl_snap_def_len(const struct sl_snap_def *d);

/* Writes them at out (sl_snap_def_len(d) bytes); returns that length. */
size_t sl_snap_def_put(const struct sl_snap_def *d, unsigned char *out);

/* Reads the head of the raw bytes of an image and compares it with want
 * (the job's definition; want->shard: the shard being restored). On
 * success r is at the entry count. SL_ERR_CORRUPT with a message: bad
 * inner magic, unknown format version, truncated header, "state was
 * written by a different window definition (... differ: ...)", image is
 * of shard k. */
int sl_snap_def_read(struct sl_snap_rd *r, const struct sl_snap_def *want,
                     struct sl_error *err);

#endif
