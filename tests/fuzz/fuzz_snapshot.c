/* fuzz_snapshot.c - the readers of window state snapshots: the index
 * state/N/index (checkpoint/state.c), the pack state/N/shards (its
 * envelope, header and shard table, checkpoint/state.c), the shard files
 * state/N/<shard> of the old layout, and the shard images (the 24-byte
 * image header, LZ4, the CRC and the window definition,
 * checkpoint/snapshot.c; the entries, decoded by src/window.c), as the
 * engine reads them at start-up.
 *
 * Input: byte 0 selects the window definition the state is restored into
 * (bits 4-5: 0 revenue_per_user, 1 top_pages, 2 every aggregate; the three
 * example jobs whose real files are the seeds) and what the rest is (bits
 * 0-2):
 *   0  a shard file of the old layout as on disk (image + envelope)
 *   1  an image, sealed by the harness (an old-layout shard file)
 *   2  a raw image body, given its header and LZ4 block by snapshot.c's
 *      sl_snap_seal and sealed by the harness (so the decoder of the body
 *      is reached directly)
 *   3  an index file as on disk
 *   4  an index body, sealed by the harness
 *   5  an image, given to snapshot.c alone: sl_snap_open, then the
 *      definition (sl_snap_def_read); what opens must seal and open again
 *      to the same raw bytes
 *   6  a pack state/1/shards as on disk (body + envelope)
 *   7  a pack body, sealed by the harness
 * Byte 1 is the shard (mod 64) for 0-2, 5 and 6-7 (for a pack: one more
 * shard asked for, besides those its table lists), the batch N (0 reads
 * as 1) for 3-4. A shard that restores is emitted, serialized again and
 * restored into a second state, which must accept it. A pack that opens
 * must hand out every shard its table lists, within the file, and written
 * again from those images must be the same body byte for byte; one that
 * does not open must be refused as corrupt naming the file. SLF_VERBOSE=1
 * prints why a shard or pack does not restore. */
#include <cjson/cJSON.h>
#include <inttypes.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/fsio.h"
#include "checkpoint/snapshot.h"
#include "checkpoint/state.h"
#include "src/util.h"
#include "src/window.h"
#include "tests/fuzz/fuzz.h"

#define SHARDS 64

static const char *const g_user[] = {"user"};
static const char *const g_page[] = {"page"};
static const char *const g_two[] = {"page", "event"};
static const char *const a_rev[] = {"revenue", "orders"};
static const enum sl_agg_kind k_rev[] = {SL_AGG_SUM, SL_AGG_COUNT};
static const char *const a_top[] = {"views", "visitors"};
static const enum sl_agg_kind k_top[] = {SL_AGG_COUNT, SL_AGG_COUNT_DISTINCT};
static const char *const a_all[] = {"n", "s", "lo", "hi", "a", "d"};
static const enum sl_agg_kind k_all[] = {SL_AGG_COUNT, SL_AGG_SUM,
                                         SL_AGG_MIN,   SL_AGG_MAX,
                                         SL_AGG_AVG,   SL_AGG_COUNT_DISTINCT};

static const struct sl_window_spec specs[3] = {
    {.size_ms = 10000,
     .slide_ms = 10000,
     .lateness_ms = 5000,
     .mode = SL_WINDOW_APPEND,
     .ngroups = 1,
     .group_names = g_user,
     .naggs = 2,
     .agg_names = a_rev,
     .agg_kinds = k_rev,
     .shards = SHARDS},
    {.size_ms = 60000,
     .slide_ms = 60000,
     .lateness_ms = 10000,
     .mode = SL_WINDOW_APPEND,
     .ngroups = 1,
     .group_names = g_page,
     .naggs = 2,
     .agg_names = a_top,
     .agg_kinds = k_top,
     .shards = SHARDS},
    {.size_ms = 10000,
     .slide_ms = 5000,
     .lateness_ms = 1000,
     .mode = SL_WINDOW_UPDATE,
     .ngroups = 2,
     .group_names = g_two,
     .naggs = 6,
     .agg_names = a_all,
     .agg_kinds = k_all,
     .shards = SHARDS},
};

static int no_fsync(int fd) {
  (void)fd;
  return 0;
}

static struct sl_fsio_ops ops;
static char ckdir[600];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  ops = sl_fsio_posix;
  ops.fsync = no_fsync;
  sl_fsio = &ops;
  snprintf(ckdir, sizeof(ckdir), "%s/ck", fuzz_scratch());
  return 0;
}

static void put(const char *dir, const char *name, const void *data, size_t n,
                bool seal) {
  char path[800];
  struct sl_error err = {0};
  if (sl_fsio_mkdirs(dir, &err))
    abort();
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  if (!seal) {
    fuzz_write(path, data, n);
    return;
  }
  size_t len;
  char *s = sl_fsio_seal(data, n, &len);
  fuzz_write(path, s, len);
  free(s);
}

static void emit_cb(cJSON *row, void *arg) {
  (void)arg;
  cJSON_Delete(row);
}

static void restore(const struct sl_window_spec *spec, unsigned k,
                    const void *img, size_t len);

static void shard(struct sl_ckpt *ck, const struct sl_window_spec *spec,
                  int mode, unsigned k, const uint8_t *data, size_t n) {
  char dir[700], name[16];
  snprintf(dir, sizeof(dir), "%s/state/1", ckdir);
  snprintf(name, sizeof(name), "%u", k);
  if (mode == 2) {
    void *img = NULL;
    size_t len = 0;
    struct sl_error serr = {0};
    if (sl_snap_seal(k, data, n, &img, &len, &serr))
      abort();
    put(dir, name, img, len, true);
    free(img);
  } else {
    put(dir, name, data, n, mode == 1);
  }
  struct sl_error err = {0};
  void *img = NULL;
  size_t len = 0;
  if (sl_ckpt_state_read_shard(ck, 1, k, &img, &len, &err))
    return;
  restore(spec, k, img, len);
  free(img);
}

/* Restores an image of shard k as the engine does; what restores must
 * serialize, restore again and emit. */
static void restore(const struct sl_window_spec *spec, unsigned k,
                    const void *img, size_t len) {
  struct sl_error err = {0};
  struct sl_wstate *s = sl_wstate_new(spec);
  if (sl_wstate_shard_restore(s, k, img, len, &err) == 0) {
    size_t held = sl_wstate_windows(s);
    void *img2 = NULL;
    size_t len2 = 0;
    if (sl_wstate_shard_serialize(s, k, &img2, &len2, &err))
      abort();
    struct sl_wstate *s2 = sl_wstate_new(spec);
    if (sl_wstate_shard_restore(s2, k, img2, len2, &err) ||
        sl_wstate_windows(s2) != held) {
      fprintf(stderr, "a serialized shard does not restore: %s\n", err.msg);
      abort();
    }
    free(img2);
    sl_wstate_emit_shard(s, k, false, emit_cb, NULL);
    sl_wstate_emit_shard(s2, k, true, emit_cb, NULL);
    sl_wstate_free(s2);
  } else if (err.code != SL_ERR_CORRUPT) {
    abort();
  } else if (getenv("SLF_VERBOSE")) { /* to check that seeds restore */
    fprintf(stderr, "shard %u: %s\n", k, err.msg);
  }
  sl_wstate_free(s);
}

static void snap_direct(const struct sl_window_spec *spec, unsigned k,
                        const uint8_t *data, size_t n) {
  struct sl_error err = {0};
  unsigned char *raw = NULL;
  size_t rawlen = 0;
  if (sl_snap_open(k, data, n, &raw, &rawlen, &err)) {
    if (err.code != SL_ERR_CORRUPT || raw)
      abort();
    return;
  }
  uint8_t kinds[8];
  for (size_t a = 0; a < spec->naggs; a++)
    kinds[a] = (uint8_t)spec->agg_kinds[a];
  struct sl_snap_def def = {.size_ms = spec->size_ms,
                            .slide_ms = spec->slide_ms,
                            .shards = spec->shards,
                            .shard = k,
                            .ngroups = (uint32_t)spec->ngroups,
                            .naggs = (uint32_t)spec->naggs,
                            .kinds = kinds};
  struct sl_snap_rd r = {.p = raw, .n = rawlen};
  if (sl_snap_def_read(&r, &def, &err) == 0) {
    /* what was accepted is exactly what sl_snap_def_put writes */
    unsigned char head[64];
    size_t hl = sl_snap_def_put(&def, head);
    if (r.bad || r.off != hl || memcmp(head, raw, hl))
      abort();
  } else if (err.code != SL_ERR_CORRUPT) {
    abort();
  } else if (getenv("SLF_VERBOSE")) {
    fprintf(stderr, "shard %u: %s\n", k, err.msg);
  }
  void *img = NULL;
  size_t len = 0;
  unsigned char *raw2 = NULL;
  size_t rawlen2 = 0;
  if (sl_snap_seal(k, raw, rawlen, &img, &len, &err) ||
      sl_snap_open(k, img, len, &raw2, &rawlen2, &err) || rawlen2 != rawlen ||
      memcmp(raw2, raw, rawlen)) {
    fprintf(stderr, "an opened image does not seal and open again: %s\n",
            err.msg);
    abort();
  }
  free(raw2);
  free(img);
  free(raw);
}

static void index_file(struct sl_ckpt *ck, int mode, uint64_t batch,
                       const uint8_t *data, size_t n) {
  char dir[700];
  snprintf(dir, sizeof(dir), "%s/state/%" PRIu64, ckdir, batch);
  put(dir, "index", data, n, mode == 4);
  struct sl_error err = {0};
  struct sl_state_index x;
  if (sl_ckpt_state_read_index(ck, batch, &x, &err) == 0) {
    for (unsigned s = 0; s < x.nshards; s++)
      if (x.shard_batch[s] > batch)
        abort();
    sl_state_index_free(&x);
  }
  memset(&err, 0, sizeof(err));
  sl_ckpt_state_prune(ck, batch + 1, batch + 1, &err);
}

/* An error of the pack reader must be SL_ERR_CORRUPT (or SL_ERR_IO)
 * naming the file. */
static void pack_error(const struct sl_error *err) {
  if ((err->code != SL_ERR_CORRUPT && err->code != SL_ERR_IO) ||
      !strstr(err->msg, "/state/1/shards")) {
    fprintf(stderr, "a pack error does not name the pack: %d %s\n", err->code,
            err->msg);
    abort();
  }
  if (getenv("SLF_VERBOSE"))
    fprintf(stderr, "pack: %s\n", err->msg);
}

static void pack(struct sl_ckpt *ck, const struct sl_window_spec *spec,
                 int mode, unsigned ask, const uint8_t *data, size_t n) {
  char dir[700];
  snprintf(dir, sizeof(dir), "%s/state/1", ckdir);
  put(dir, SL_STATE_PACK_NAME, data, n, mode == 7);
  struct sl_error err = {0};
  struct sl_state_reader r;
  if (sl_state_reader_open(ck, 1, &r, &err)) {
    pack_error(&err);
    return;
  }
  if (!r.pack)
    abort(); /* the file is there: it is a pack or an error */
  /* The body as read, to compare with the pack written again. */
  size_t flen = 0, blen = 0;
  char path[800];
  snprintf(path, sizeof(path), "%s/" SL_STATE_PACK_NAME, dir);
  char *file = NULL;
  if (sl_fsio_read_file(path, &file, &flen, &err) ||
      sl_fsio_unseal(path, file, flen, &blen, &err))
    abort();
  struct sl_state_pack p;
  sl_state_pack_init(&p, 1);
  bool asked = false;
  for (uint32_t i = 0; i < r.count; i++) {
    unsigned k = sl_snap_ld_u32(r.table + (size_t)i * SL_STATE_PACK_ENTRY);
    const void *img;
    size_t len;
    if (sl_state_reader_shard(&r, k, &img, &len, &err))
      abort(); /* listed, so it is there */
    const char *c = img;
    if (c < r.pack || c + len > r.pack + blen)
      abort();
    sl_state_pack_add(&p, k, img, len);
    asked |= k == ask;
    if (k < SHARDS)
      restore(spec, k, img, len);
  }
  if (!asked) { /* not listed: refused naming the pack */
    const void *img;
    size_t len;
    if (sl_state_reader_shard(&r, ask, &img, &len, &err) != SL_ERR_CORRUPT)
      abort();
    pack_error(&err);
  }
  /* Written again from its images: the same body. */
  if (sl_ckpt_state_write_pack(ck, &p, &err))
    abort();
  sl_state_pack_free(&p);
  sl_state_reader_close(&r);
  char *again = NULL;
  size_t alen = 0, ablen = 0;
  if (sl_fsio_read_file(path, &again, &alen, &err) ||
      sl_fsio_unseal(path, again, alen, &ablen, &err) || ablen != blen ||
      memcmp(again, file, blen)) {
    fprintf(stderr, "a pack written again from its images differs\n");
    abort();
  }
  free(again);
  free(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  int mode = data[0] & 7;
  unsigned which = (data[0] >> 4) & 3;
  if (which > 2)
    return 0;
  if (mode == 5) {
    snap_direct(&specs[which], data[1] % SHARDS, data + 2, size - 2);
    return 0;
  }
  fuzz_rmtree(ckdir);
  struct sl_error err = {0};
  struct sl_ckpt *ck = NULL;
  if (sl_ckpt_open(ckdir, "fuzz", &ck, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    abort();
  }
  if (mode <= 2)
    shard(ck, &specs[which], mode, data[1] % SHARDS, data + 2, size - 2);
  else if (mode <= 4)
    index_file(ck, mode, data[1] ? data[1] : 1, data + 2, size - 2);
  else
    pack(ck, &specs[which], mode, data[1] % SHARDS, data + 2, size - 2);
  sl_ckpt_close(ck);
  return 0;
}
