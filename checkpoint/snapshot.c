/* snapshot.c - the window state shard image format, see snapshot.h. */
#include "snapshot.h"

#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../src/util.h"

/* ------------------------------------------------------------ framing */

int sl_snap_seal(unsigned shard, const void *raw, size_t n, void **out,
                 size_t *len, struct sl_error *err) {
  if (n > LZ4_MAX_INPUT_SIZE)
    return sl_error_set(err, SL_ERR_INVAL,
                        "window state shard %u: %zu bytes is too large for "
                        "one snapshot image",
                        shard, n);
  int bound = LZ4_compressBound((int)n);
  unsigned char *img = sl_malloc(SL_SNAP_HDR + (size_t)bound);
  int clen = LZ4_compress_default((const char *)raw, (char *)img + SL_SNAP_HDR,
                                  (int)n, bound);
  if (clen <= 0) {
    free(img);
    return sl_error_set(err, SL_ERR_INVAL,
                        "window state shard %u: lz4 compression failed", shard);
  }
  memcpy(img, SL_SNAP_IMG_MAGIC, 4);
  sl_snap_st_u32(img + 4, SL_SNAP_VERSION);
  sl_snap_st_u64(img + 8, n);
  sl_snap_st_u32(img + 16, (uint32_t)crc32(0L, raw, (uInt)n));
  sl_snap_st_u32(img + 20, 0);
  *len = SL_SNAP_HDR + (size_t)clen;
  *out = sl_realloc(img, *len);
  return 0;
}

int sl_snap_open(unsigned shard, const void *buf, size_t len,
                 unsigned char **rawp, size_t *rawlenp, struct sl_error *err) {
  const unsigned char *img = buf;
  *rawp = NULL;
  *rawlenp = 0;
  if (!img || len < SL_SNAP_HDR)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: truncated image (%zu bytes)",
                        shard, len);
  if (memcmp(img, SL_SNAP_IMG_MAGIC, 4))
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: not a window state image",
                        shard);
  uint32_t version = sl_snap_ld_u32(img + 4);
  if (version != SL_SNAP_VERSION)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: unknown image version %u",
                        shard, version);
  uint64_t rawlen = sl_snap_ld_u64(img + 8);
  uint32_t crc = sl_snap_ld_u32(img + 16);
  size_t clen = len - SL_SNAP_HDR;
  /* LZ4 expands at most ~255x: a larger claim is garbage, and bounding
   * it keeps a garbage header from making us allocate gigabytes. */
  if (sl_snap_ld_u32(img + 20) != 0 || clen > LZ4_MAX_INPUT_SIZE ||
      rawlen > LZ4_MAX_INPUT_SIZE || rawlen > (uint64_t)clen * 256 + 64)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: bad image header", shard);
  unsigned char *raw = sl_malloc(rawlen ? (size_t)rawlen : 1);
  int d = LZ4_decompress_safe((const char *)img + SL_SNAP_HDR, (char *)raw,
                              (int)clen, (int)rawlen);
  if (d < 0 || (uint64_t)d != rawlen) {
    free(raw);
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: lz4 data is damaged", shard);
  }
  if ((uint32_t)crc32(0L, raw, (uInt)rawlen) != crc) {
    free(raw);
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: checksum mismatch", shard);
  }
  *rawp = raw;
  *rawlenp = (size_t)rawlen;
  return 0;
}

/* ------------------------------------------------- window definition */

size_t sl_snap_def_len(const struct sl_snap_def *d) {
  return 4 + 4 + 8 + 8 + 4 * 4 + (size_t)d->naggs;
}

size_t sl_snap_def_put(const struct sl_snap_def *d, unsigned char *out) {
  unsigned char *p = out;
  memcpy(p, SL_SNAP_RAW_MAGIC, 4);
  sl_snap_st_u32(p + 4, SL_SNAP_VERSION);
  sl_snap_st_u64(p + 8, (uint64_t)d->size_ms);
  sl_snap_st_u64(p + 16, (uint64_t)d->slide_ms);
  sl_snap_st_u32(p + 24, d->shards);
  sl_snap_st_u32(p + 28, d->shard);
  sl_snap_st_u32(p + 32, d->ngroups);
  sl_snap_st_u32(p + 36, d->naggs);
  p += 40;
  if (d->naggs)
    memcpy(p, d->kinds, d->naggs);
  return sl_snap_def_len(d);
}

int sl_snap_def_read(struct sl_snap_rd *r, const struct sl_snap_def *want,
                     struct sl_error *err) {
  unsigned shard = want->shard;
  uint32_t naggs = want->naggs;
  const unsigned char *magic = sl_snap_rd_take(r, 4);
  if (!magic || memcmp(magic, SL_SNAP_RAW_MAGIC, 4))
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: bad inner magic", shard);
  uint32_t version = sl_snap_rd_u32(r);
  if (version != SL_SNAP_VERSION)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: unknown format version %u",
                        shard, version);
  int64_t size = (int64_t)sl_snap_rd_u64(r), slide = (int64_t)sl_snap_rd_u64(r);
  uint32_t shards = sl_snap_rd_u32(r), ishard = sl_snap_rd_u32(r);
  uint32_t ngroups = sl_snap_rd_u32(r), inaggs = sl_snap_rd_u32(r);
  if (r->bad)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: truncated header", shard);
  const char *what = NULL;
  if (size != want->size_ms || slide != want->slide_ms)
    what = "window size or slide";
  else if (shards != want->shards)
    what = "number of shards";
  else if (ngroups != want->ngroups)
    what = "number of group keys";
  else if (inaggs != naggs)
    what = "number of aggregates";
  else {
    const unsigned char *kinds = sl_snap_rd_take(r, naggs);
    if (!kinds)
      return sl_error_set(err, SL_ERR_CORRUPT,
                          "window state shard %u: truncated header", shard);
    for (size_t a = 0; a < naggs && !what; a++)
      if (kinds[a] != want->kinds[a])
        what = "aggregate functions";
  }
  if (what)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: state was written by a "
                        "different window definition (%s differ: image "
                        "size %lld slide %lld, %u shards, %u groups, %u "
                        "aggregates; job size %lld slide %lld, %u shards, "
                        "%u groups, %u aggregates)",
                        shard, what, (long long)size, (long long)slide, shards,
                        ngroups, inaggs, (long long)want->size_ms,
                        (long long)want->slide_ms, want->shards, want->ngroups,
                        naggs);
  if (ishard != shard)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: image is of shard %u", shard,
                        ishard);
  return 0;
}
