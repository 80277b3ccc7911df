/* state.c - window state snapshots, see state.h. */
#include "state.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/util.h"
#include "fsio.h"
#include "snapshot.h"

void sl_state_index_free(struct sl_state_index *x) {
  free(x->shard_batch);
  memset(x, 0, sizeof(*x));
}

static char *batch_dir(struct sl_ckpt *ck, uint64_t batch) {
  return sl_asprintf("%s/state/%" PRIu64, sl_ckpt_dir(ck), batch);
}

static int write_sealed(struct sl_ckpt *ck, uint64_t batch, const char *name,
                        const void *data, size_t len, struct sl_error *err) {
  char *dir = batch_dir(ck, batch);
  size_t slen;
  int rc = sl_fsio_mkdirs_private(dir, err);
  if (!rc) {
    char *sealed = sl_fsio_seal(data, len, &slen);
    rc = sl_fsio_write_atomic(dir, name, sealed, slen, "checkpoint.state.index",
                              err);
    free(sealed);
  }
  free(dir);
  return rc;
}

static int read_sealed(struct sl_ckpt *ck, uint64_t batch, const char *name,
                       char **data, size_t *len, struct sl_error *err) {
  char *dir = batch_dir(ck, batch);
  char *path = sl_asprintf("%s/%s", dir, name);
  size_t flen;
  int rc = sl_fsio_read_file(path, data, &flen, err);
  if (!rc && (rc = sl_fsio_unseal(path, *data, flen, len, err))) {
    free(*data);
    *data = NULL;
  }
  free(path);
  free(dir);
  return rc;
}

/* ------------------------------------------------------------ writing */

void sl_state_pack_init(struct sl_state_pack *p, uint64_t batch) {
  memset(p, 0, sizeof(*p));
  p->batch = batch;
}

void sl_state_pack_add(struct sl_state_pack *p, unsigned shard,
                       const void *data, size_t len) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 16;
    p->img = sl_realloc(p->img, p->cap * sizeof(*p->img));
  }
  p->img[p->n++] =
      (struct sl_state_image){.shard = shard, .data = data, .len = len};
}

void sl_state_pack_free(struct sl_state_pack *p) {
  free(p->img);
  memset(p, 0, sizeof(*p));
}

static int image_cmp(const void *a, const void *b) {
  unsigned x = ((const struct sl_state_image *)a)->shard;
  unsigned y = ((const struct sl_state_image *)b)->shard;
  return x < y ? -1 : x > y;
}

int sl_ckpt_state_write_pack(struct sl_ckpt *ck, const struct sl_state_pack *p,
                             struct sl_error *err) {
  if (p->n == 0)
    return 0;
  if (p->n > UINT32_MAX)
    return sl_error_set(err, SL_ERR_INVAL,
                        "window state of batch %" PRIu64 ": %zu shards",
                        p->batch, p->n);
  /* The table in shard order; the caller's stays as it was. */
  struct sl_state_image *im = sl_malloc(p->n * sizeof(*im));
  memcpy(im, p->img, p->n * sizeof(*im));
  qsort(im, p->n, sizeof(*im), image_cmp);
  size_t body = SL_STATE_PACK_HDR + p->n * SL_STATE_PACK_ENTRY;
  for (size_t i = 0; i < p->n; i++) {
    if (i > 0 && im[i].shard == im[i - 1].shard) {
      unsigned dup = im[i].shard;
      free(im);
      return sl_error_set(err, SL_ERR_INVAL,
                          "window state of batch %" PRIu64 ": shard %u was "
                          "added twice",
                          p->batch, dup);
    }
    body += im[i].len;
  }
  unsigned char *buf = sl_malloc(body + SL_FSIO_TRAILER_MAX);
  memcpy(buf, SL_STATE_PACK_MAGIC, 4);
  sl_snap_st_u32(buf + 4, SL_STATE_PACK_VERSION);
  sl_snap_st_u64(buf + 8, p->batch);
  sl_snap_st_u32(buf + 16, (uint32_t)p->n);
  sl_snap_st_u32(buf + 20, 0);
  size_t off = SL_STATE_PACK_HDR + p->n * SL_STATE_PACK_ENTRY;
  for (size_t i = 0; i < p->n; i++) {
    unsigned char *e = buf + SL_STATE_PACK_HDR + i * SL_STATE_PACK_ENTRY;
    sl_snap_st_u32(e, im[i].shard);
    sl_snap_st_u32(e + 4, 0);
    sl_snap_st_u64(e + 8, off);
    sl_snap_st_u64(e + 16, im[i].len);
    if (im[i].len)
      memcpy(buf + off, im[i].data, im[i].len);
    off += im[i].len;
  }
  free(im);
  size_t t = sl_fsio_seal_trailer((const char *)buf, body, (char *)buf + body);
  char *dir = batch_dir(ck, p->batch);
  int rc = sl_fsio_mkdirs_private(dir, err);
  if (!rc)
    rc = sl_fsio_write_atomic(dir, SL_STATE_PACK_NAME, buf, body + t,
                              "checkpoint.state", err);
  free(dir);
  free(buf);
  return rc;
}

int sl_ckpt_state_write_index(struct sl_ckpt *ck,
                              const struct sl_state_index *x,
                              struct sl_error *err) {
  /* Numbers are written as text: watermarks can be INT64_MIN, beyond
   * what a JSON double holds exactly. */
  cJSON *o = cJSON_CreateObject();
  char num[32];
  cJSON_AddNumberToObject(o, "batch", (double)x->batch);
  snprintf(num, sizeof(num), "%" PRId64, x->watermark);
  cJSON_AddStringToObject(o, "watermark", num);
  snprintf(num, sizeof(num), "%" PRId64, x->max_event);
  cJSON_AddStringToObject(o, "max_event", num);
  cJSON *a = cJSON_AddArrayToObject(o, "shards");
  for (unsigned s = 0; s < x->nshards; s++)
    cJSON_AddItemToArray(a, cJSON_CreateNumber((double)x->shard_batch[s]));
  char *body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  size_t n = strlen(body);
  body = sl_realloc(body, n + 2);
  body[n++] = '\n';
  int rc = write_sealed(ck, x->batch, "index", body, n, err);
  cJSON_free(body);
  return rc;
}

/* A batch number of the index: an integral JSON number in [0, max]
 * (max < 2^53, where doubles are exact), checked before it is converted
 * (a cast of an out-of-range double is undefined). */
static bool batch_number(const cJSON *j, uint64_t max, uint64_t *out) {
  if (!cJSON_IsNumber(j))
    return false;
  double d = j->valuedouble;
  if (!(d >= 0 && d <= (double)max)) /* also rejects NaN */
    return false;
  uint64_t v = (uint64_t)d;
  if ((double)v != d)
    return false;
  *out = v;
  return true;
}

static int parse_i64(const cJSON *j, int64_t *out) {
  if (!cJSON_IsString(j))
    return -1;
  char *end;
  errno = 0;
  long long v = strtoll(j->valuestring, &end, 10);
  if (errno || *end || end == j->valuestring)
    return -1;
  *out = v;
  return 0;
}

int sl_ckpt_state_read_index(struct sl_ckpt *ck, uint64_t batch,
                             struct sl_state_index *x, struct sl_error *err) {
  char *data;
  size_t len;
  memset(x, 0, sizeof(*x));
  int rc = read_sealed(ck, batch, "index", &data, &len, err);
  if (rc)
    return rc;
  cJSON *o = cJSON_ParseWithLength(data, len);
  free(data);
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "batch");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shards");
  uint64_t ib;
  if (!o || !batch_number(b, batch, &ib) || ib != batch ||
      parse_i64(cJSON_GetObjectItemCaseSensitive(o, "watermark"),
                &x->watermark) ||
      parse_i64(cJSON_GetObjectItemCaseSensitive(o, "max_event"),
                &x->max_event) ||
      !cJSON_IsArray(sh)) {
    cJSON_Delete(o);
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "%s/state/%" PRIu64 "/index: malformed (file is "
                        "corrupt)",
                        sl_ckpt_dir(ck), batch);
  }
  x->batch = batch;
  x->nshards = (unsigned)cJSON_GetArraySize(sh);
  x->shard_batch = sl_calloc(x->nshards ? x->nshards : 1, sizeof(uint64_t));
  const cJSON *v;
  unsigned i = 0;
  cJSON_ArrayForEach(v, sh) {
    if (!batch_number(v, batch, &x->shard_batch[i])) {
      cJSON_Delete(o);
      sl_state_index_free(x);
      return sl_error_set(err, SL_ERR_CORRUPT,
                          "%s/state/%" PRIu64 "/index: bad shard reference",
                          sl_ckpt_dir(ck), batch);
    }
    i++;
  }
  cJSON_Delete(o);
  return 0;
}

/* ------------------------------------------------------------ reading */

/* The error of a bad pack: its path and what is wrong. */
static int pack_corrupt(struct sl_state_reader *r, const char *what,
                        struct sl_error *err) {
  return sl_error_set(err, SL_ERR_CORRUPT,
                      "%s/state/%" PRIu64 "/" SL_STATE_PACK_NAME
                      ": %s (file is corrupt)",
                      sl_ckpt_dir(r->ck), r->batch, what);
}

/* Checks the header and the table of a pack body (len bytes at b, the
 * envelope already verified) against the layout of state.h. */
static int pack_check(struct sl_state_reader *r, const unsigned char *b,
                      size_t len, struct sl_error *err) {
  char what[160];
  if (len < SL_STATE_PACK_HDR)
    return pack_corrupt(r, "truncated header", err);
  if (memcmp(b, SL_STATE_PACK_MAGIC, 4))
    return pack_corrupt(r, "not a window state pack", err);
  uint32_t version = sl_snap_ld_u32(b + 4);
  if (version != SL_STATE_PACK_VERSION) {
    snprintf(what, sizeof(what), "unknown pack version %" PRIu32, version);
    return pack_corrupt(r, what, err);
  }
  uint64_t batch = sl_snap_ld_u64(b + 8);
  if (batch != r->batch) {
    snprintf(what, sizeof(what), "holds batch %" PRIu64, batch);
    return pack_corrupt(r, what, err);
  }
  uint32_t count = sl_snap_ld_u32(b + 16);
  if (count == 0 || sl_snap_ld_u32(b + 20) != 0)
    return pack_corrupt(r, "bad header", err);
  if (count > (len - SL_STATE_PACK_HDR) / SL_STATE_PACK_ENTRY)
    return pack_corrupt(r, "truncated shard table", err);
  const unsigned char *t = b + SL_STATE_PACK_HDR;
  uint64_t off = SL_STATE_PACK_HDR + (uint64_t)count * SL_STATE_PACK_ENTRY;
  for (uint32_t i = 0; i < count; i++) {
    const unsigned char *e = t + (size_t)i * SL_STATE_PACK_ENTRY;
    uint32_t shard = sl_snap_ld_u32(e);
    uint64_t eoff = sl_snap_ld_u64(e + 8), elen = sl_snap_ld_u64(e + 16);
    if (i > 0 && shard <= sl_snap_ld_u32(e - SL_STATE_PACK_ENTRY))
      snprintf(what, sizeof(what),
               "shard table out of order (entry %" PRIu32 ": shard %" PRIu32
               ")",
               i, shard);
    else if (sl_snap_ld_u32(e + 4) != 0)
      snprintf(what, sizeof(what),
               "bad shard table entry %" PRIu32 " (shard %" PRIu32 ")", i,
               shard);
    else if (eoff != off)
      snprintf(what, sizeof(what),
               "shard %" PRIu32 " at offset %" PRIu64 ", expected %" PRIu64,
               shard, eoff, off);
    else if (elen > len - off)
      snprintf(what, sizeof(what),
               "shard %" PRIu32 " (%" PRIu64 " bytes at %" PRIu64
               ") runs past the end (%zu bytes)",
               shard, elen, eoff, len);
    else {
      off += elen;
      continue;
    }
    return pack_corrupt(r, what, err);
  }
  if (off != len) {
    snprintf(what, sizeof(what), "%" PRIu64 " bytes after the last shard image",
             (uint64_t)len - off);
    return pack_corrupt(r, what, err);
  }
  r->table = t;
  r->count = count;
  return 0;
}

int sl_state_reader_open(struct sl_ckpt *ck, uint64_t batch,
                         struct sl_state_reader *r, struct sl_error *err) {
  memset(r, 0, sizeof(*r));
  r->ck = ck;
  r->batch = batch;
  char *data;
  size_t len;
  int rc = read_sealed(ck, batch, SL_STATE_PACK_NAME, &data, &len, err);
  if (rc == SL_ERR_NOTFOUND)
    return 0; /* the old layout (or no image at all) */
  if (rc)
    return rc;
  r->pack = data;
  if ((rc = pack_check(r, (const unsigned char *)data, len, err)))
    sl_state_reader_close(r);
  return rc;
}

/* The table entry of `shard`, or NULL (the table is sorted by shard). */
static const unsigned char *pack_find(const struct sl_state_reader *r,
                                      unsigned shard) {
  size_t lo = 0, hi = r->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const unsigned char *e = r->table + mid * SL_STATE_PACK_ENTRY;
    uint32_t s = sl_snap_ld_u32(e);
    if (s == shard)
      return e;
    if (s < shard)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

int sl_state_reader_shard(struct sl_state_reader *r, unsigned shard,
                          const void **data, size_t *len,
                          struct sl_error *err) {
  *data = NULL;
  *len = 0;
  const unsigned char *e = r->pack ? pack_find(r, shard) : NULL;
  if (e) {
    *data = r->pack + sl_snap_ld_u64(e + 8);
    *len = (size_t)sl_snap_ld_u64(e + 16);
    return 0;
  }
  /* Not in a pack: the file of the old layout. */
  char name[16];
  snprintf(name, sizeof(name), "%u", shard);
  free(r->file);
  r->file = NULL;
  char *d;
  size_t n;
  int rc = read_sealed(r->ck, r->batch, name, &d, &n, err);
  if (rc == SL_ERR_NOTFOUND) {
    if (r->pack)
      return sl_error_set(err, SL_ERR_CORRUPT,
                          "%s/state/%" PRIu64 "/" SL_STATE_PACK_NAME
                          " holds no image of shard %u (nor is there a file "
                          "%u of the old layout), but an index refers to it",
                          sl_ckpt_dir(r->ck), r->batch, shard, shard);
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "%s/state/%" PRIu64 "/%u is missing (and there is no "
                        "file " SL_STATE_PACK_NAME "), but an index refers "
                        "to it",
                        sl_ckpt_dir(r->ck), r->batch, shard);
  }
  if (rc)
    return rc;
  r->file = d;
  *data = d;
  *len = n;
  return 0;
}

void sl_state_reader_close(struct sl_state_reader *r) {
  free(r->pack);
  free(r->file);
  memset(r, 0, sizeof(*r));
}

int sl_ckpt_state_read_shard(struct sl_ckpt *ck, uint64_t file_batch,
                             unsigned shard, void **data, size_t *len,
                             struct sl_error *err) {
  struct sl_state_reader r;
  const void *img;
  *data = NULL;
  *len = 0;
  int rc = sl_state_reader_open(ck, file_batch, &r, err);
  if (rc)
    return rc;
  if (!(rc = sl_state_reader_shard(&r, shard, &img, len, err))) {
    *data = sl_malloc(*len ? *len : 1);
    if (*len)
      memcpy(*data, img, *len);
  }
  sl_state_reader_close(&r);
  return rc;
}

/* ------------------------------------------------------------ pruning */

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.' &&
        (de->d_name[1] == '\0' ||
         (de->d_name[1] == '.' && de->d_name[2] == '\0')))
      continue;
    char *p = sl_asprintf("%s/%s", dir, de->d_name);
    unlink(p);
    free(p);
  }
  closedir(d);
  rmdir(dir);
}

int sl_ckpt_state_prune(struct sl_ckpt *ck, uint64_t oldest, uint64_t newest,
                        struct sl_error *err) {
  char *root = sl_asprintf("%s/state", sl_ckpt_dir(ck));
  DIR *d = opendir(root);
  if (!d) {
    free(root);
    return 0; /* no state at all */
  }
  /* Which batches' files do the indexes from `oldest` on still need? */
  size_t nkeep = 0, capkeep = 0;
  uint64_t *keep = NULL;
  for (uint64_t b = oldest; b && b <= newest; b++) {
    struct sl_state_index x;
    struct sl_error e = {0};
    if (sl_ckpt_state_read_index(ck, b, &x, &e))
      continue;
    for (unsigned s = 0; s < x.nshards; s++) {
      if (nkeep == capkeep) {
        capkeep = capkeep ? capkeep * 2 : 64;
        keep = sl_realloc(keep, capkeep * sizeof(*keep));
      }
      keep[nkeep++] = x.shard_batch[s];
    }
    sl_state_index_free(&x);
  }
  struct dirent *de;
  while ((de = readdir(d))) {
    char *end;
    errno = 0;
    unsigned long long b = strtoull(de->d_name, &end, 10);
    if (errno || *end || de->d_name[0] < '0' || de->d_name[0] > '9' ||
        b >= oldest)
      continue;
    bool needed = false;
    for (size_t i = 0; i < nkeep && !needed; i++)
      needed = keep[i] == b;
    if (!needed) {
      char *dir = sl_asprintf("%s/%s", root, de->d_name);
      remove_dir(dir);
      free(dir);
    }
  }
  closedir(d);
  free(keep);
  int rc = sl_fsio_sync_dir(root, err);
  free(root);
  return rc;
}
