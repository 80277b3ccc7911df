/*
 * test_state.c - window state snapshots in the checkpoint
 * (checkpoint/state.c): the pack state/N/shards (round trip, every
 * rejection of a bad one with the file's name), the old layout of one file
 * per shard that earlier versions wrote (read as it was, alone and mixed
 * with packs in one index), the index, and pruning of both layouts.
 *
 * The old layout is written here exactly as those versions wrote it: the
 * shard's image sealed (sl_fsio_seal) and written atomically as
 * state/<N>/<shard> (sl_fsio_write_atomic), then state/<N>/index.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/fsio.h"
#include "checkpoint/snapshot.h"
#include "checkpoint/state.h"
#include "src/failpoint.h"
#include "src/util.h"
#include "src/window.h"

#define assert_contains(hay, needle)                                           \
  do {                                                                         \
    if (!strstr((hay), (needle)))                                              \
      fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));             \
  } while (0)

struct fixture {
  char root[512]; /* fresh temp dir */
  char dir[600];  /* root/ck: the checkpoint directory */
  struct sl_ckpt *ck;
};

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof(*f));
  const char *tmp = getenv("TMPDIR");
  snprintf(f->root, sizeof(f->root), "%s/sl-state-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(f->root))
    return -1;
  snprintf(f->dir, sizeof(f->dir), "%s/ck", f->root);
  struct sl_error err = {0};
  if (sl_ckpt_open(f->dir, "state-test", &f->ck, &err)) {
    fprintf(stderr, "open: %s\n", err.msg);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  sl_fsio = &sl_fsio_posix;
  sl_failpoints_arm(NULL, NULL);
  sl_ckpt_close(f->ck);
  nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static char *state_path(const struct fixture *f, uint64_t batch,
                        const char *name) {
  return sl_asprintf("%s/state/%" PRIu64 "/%s", f->dir, batch, name);
}

static bool exists(const struct fixture *f, uint64_t batch, const char *name) {
  char *p = state_path(f, batch, name);
  bool ok = access(p, F_OK) == 0;
  free(p);
  return ok;
}

/* The names in state/<batch>/, sorted, joined by spaces. */
static char *listing(const struct fixture *f, uint64_t batch) {
  char *dir = sl_asprintf("%s/state/%" PRIu64, f->dir, batch);
  struct dirent **de;
  int n = scandir(dir, &de, NULL, alphasort);
  free(dir);
  if (n < 0)
    return sl_strdup("(none)");
  char *out = sl_strdup("");
  for (int i = 0; i < n; i++) {
    if (strcmp(de[i]->d_name, ".") && strcmp(de[i]->d_name, "..")) {
      char *t = sl_asprintf("%s%s%s", out, *out ? " " : "", de[i]->d_name);
      free(out);
      out = t;
    }
    free(de[i]);
  }
  free(de);
  return out;
}

/* A recognisable image of `len` bytes for shard s of batch b (the pack
 * does not look inside its images). */
static unsigned char *fake_image(uint64_t b, unsigned s, size_t len) {
  unsigned char *p = sl_malloc(len ? len : 1);
  for (size_t i = 0; i < len; i++)
    p[i] = (unsigned char)(b * 31 + s * 7 + i);
  return p;
}

/* Writes shard s of batch b as versions before the pack did. */
static void old_write_shard(struct fixture *f, uint64_t b, unsigned s,
                            const void *img, size_t len) {
  struct sl_error err = {0};
  char *dir = sl_asprintf("%s/state/%" PRIu64, f->dir, b);
  char name[16];
  snprintf(name, sizeof(name), "%u", s);
  size_t slen;
  char *sealed = sl_fsio_seal(img, len, &slen);
  if (sl_fsio_mkdirs_private(dir, &err) ||
      sl_fsio_write_atomic(dir, name, sealed, slen, "checkpoint.state", &err))
    fail_msg("old layout write %s/%s: %s", dir, name, err.msg);
  free(sealed);
  free(dir);
}

static void write_index(struct fixture *f, uint64_t b, unsigned nshards,
                        const uint64_t *shard_batch) {
  struct sl_state_index x = {.batch = b,
                             .watermark = 1000 * (int64_t)b,
                             .max_event = 1000 * (int64_t)b + 5,
                             .nshards = nshards,
                             .shard_batch = (uint64_t *)shard_batch};
  struct sl_error err = {0};
  if (sl_ckpt_state_write_index(f->ck, &x, &err))
    fail_msg("index %" PRIu64 ": %s", b, err.msg);
}

static void expect_shard(struct fixture *f, uint64_t b, unsigned s,
                         const void *want, size_t wlen) {
  void *got = NULL;
  size_t glen = 0;
  struct sl_error err = {0};
  if (sl_ckpt_state_read_shard(f->ck, b, s, &got, &glen, &err))
    fail_msg("shard %u of batch %" PRIu64 ": %s", s, err.msg);
  assert_int_equal(glen, wlen);
  if (wlen)
    assert_memory_equal(got, want, wlen);
  free(got);
}

/* The shard's read is refused as corrupt with a message holding `what`
 * (and the path of the file). */
static void expect_shard_corrupt(struct fixture *f, uint64_t b, unsigned s,
                                 const char *file, const char *what) {
  void *got = (void *)1;
  size_t glen = 7;
  struct sl_error err = {0};
  assert_int_equal(sl_ckpt_state_read_shard(f->ck, b, s, &got, &glen, &err),
                   SL_ERR_CORRUPT);
  assert_null(got);
  char *path = state_path(f, b, file);
  assert_contains(err.msg, path);
  assert_contains(err.msg, what);
  free(path);
}

/* ---- the pack ----------------------------------------------------------- */

static void write_pack(struct fixture *f, uint64_t b, const unsigned *shards,
                       size_t n, unsigned char **imgs, const size_t *lens) {
  struct sl_state_pack p;
  sl_state_pack_init(&p, b);
  for (size_t i = 0; i < n; i++)
    sl_state_pack_add(&p, shards[i], imgs[i], lens[i]);
  struct sl_error err = {0};
  if (sl_ckpt_state_write_pack(f->ck, &p, &err))
    fail_msg("pack %" PRIu64 ": %s", b, err.msg);
  sl_state_pack_free(&p);
}

static void test_pack_roundtrip(void **state) {
  struct fixture *f = *state;
  /* Added out of order, one empty and one large image. */
  const unsigned shards[] = {63, 1, 5, 0, 40};
  const size_t lens[] = {100, 3, 0, 70000, 1};
  unsigned char *imgs[5];
  for (size_t i = 0; i < 5; i++)
    imgs[i] = fake_image(3, shards[i], lens[i]);
  write_pack(f, 3, shards, 5, imgs, lens);
  char *l = listing(f, 3);
  assert_string_equal(l, "shards"); /* one file, no temp file left */
  free(l);
  for (size_t i = 0; i < 5; i++)
    expect_shard(f, 3, shards[i], imgs[i], lens[i]);

  /* One reader hands out every shard of the pack, in any order. */
  struct sl_state_reader r;
  struct sl_error err = {0};
  assert_int_equal(sl_state_reader_open(f->ck, 3, &r, &err), 0);
  for (size_t i = 5; i-- > 0;) {
    const void *d;
    size_t n;
    assert_int_equal(sl_state_reader_shard(&r, shards[i], &d, &n, &err), 0);
    assert_int_equal(n, lens[i]);
    if (n)
      assert_memory_equal(d, imgs[i], n);
  }
  sl_state_reader_close(&r);

  /* The file is the layout of state.h. */
  char *path = state_path(f, 3, "shards");
  char *data;
  size_t flen, blen;
  assert_int_equal(sl_fsio_read_file(path, &data, &flen, &err), 0);
  assert_int_equal(sl_fsio_unseal(path, data, flen, &blen, &err), 0);
  const unsigned char *b = (const unsigned char *)data;
  assert_memory_equal(b, "SLSP", 4);
  assert_int_equal(sl_snap_ld_u32(b + 4), 1);
  assert_int_equal(sl_snap_ld_u64(b + 8), 3);
  assert_int_equal(sl_snap_ld_u32(b + 16), 5);
  assert_int_equal(sl_snap_ld_u32(b + 20), 0);
  const unsigned sorted[] = {0, 1, 5, 40, 63};
  const size_t slens[] = {70000, 3, 0, 1, 100};
  size_t off = 24 + 5 * 24;
  for (size_t i = 0; i < 5; i++) {
    const unsigned char *e = b + 24 + i * 24;
    assert_int_equal(sl_snap_ld_u32(e), sorted[i]);
    assert_int_equal(sl_snap_ld_u32(e + 4), 0);
    assert_int_equal(sl_snap_ld_u64(e + 8), off);
    assert_int_equal(sl_snap_ld_u64(e + 16), slens[i]);
    off += slens[i];
  }
  assert_int_equal(off, blen);
  free(data);
  free(path);

  /* A shard the pack does not hold, with no old-layout file either. */
  expect_shard_corrupt(f, 3, 2, "shards",
                       "holds no image of shard 2 (nor is there a file 2 of "
                       "the old layout), but an index refers to it");
  /* A batch with nothing at all. */
  expect_shard_corrupt(f, 9, 4, "4", "is missing");

  /* Rewriting the batch (a re-run) replaces the pack whole. */
  const unsigned again[] = {7};
  const size_t alen[] = {9};
  unsigned char *aimg[] = {fake_image(3, 7, 9)};
  write_pack(f, 3, again, 1, aimg, alen);
  expect_shard(f, 3, 7, aimg[0], 9);
  expect_shard_corrupt(f, 3, 63, "shards", "holds no image of shard 63");
  free(aimg[0]);
  for (size_t i = 0; i < 5; i++)
    free(imgs[i]);
}

static void test_pack_empty_and_duplicate(void **state) {
  struct fixture *f = *state;
  struct sl_state_pack p;
  struct sl_error err = {0};
  /* No shard changed: no file (the index alone says where shards are). */
  sl_state_pack_init(&p, 4);
  assert_int_equal(sl_ckpt_state_write_pack(f->ck, &p, &err), 0);
  sl_state_pack_free(&p);
  assert_false(exists(f, 4, "shards"));
  /* A shard twice is a bug of the caller: refused, nothing written. */
  unsigned char img[4] = {1, 2, 3, 4};
  sl_state_pack_init(&p, 4);
  sl_state_pack_add(&p, 2, img, 4);
  sl_state_pack_add(&p, 9, img, 4);
  sl_state_pack_add(&p, 2, img, 4);
  assert_int_equal(sl_ckpt_state_write_pack(f->ck, &p, &err), SL_ERR_INVAL);
  assert_contains(err.msg, "shard 2 was added twice");
  sl_state_pack_free(&p);
  assert_false(exists(f, 4, "shards"));
}

/* ---- a bad pack --------------------------------------------------------- */

/* The body of a good pack of batch 5: shards 1, 4 and 6, images of 10, 20
 * and 30 bytes. */
#define BAD_BATCH 5
static const unsigned BAD_SHARDS[] = {1, 4, 6};
static const size_t BAD_LENS[] = {10, 20, 30};

static char *good_body(size_t *len) {
  size_t n = 24 + 3 * 24 + 60;
  unsigned char *b = sl_calloc(1, n);
  memcpy(b, "SLSP", 4);
  sl_snap_st_u32(b + 4, 1);
  sl_snap_st_u64(b + 8, BAD_BATCH);
  sl_snap_st_u32(b + 16, 3);
  size_t off = 24 + 3 * 24;
  for (size_t i = 0; i < 3; i++) {
    unsigned char *e = b + 24 + i * 24;
    sl_snap_st_u32(e, BAD_SHARDS[i]);
    sl_snap_st_u64(e + 8, off);
    sl_snap_st_u64(e + 16, BAD_LENS[i]);
    memset(b + off, 'a' + (int)i, BAD_LENS[i]);
    off += BAD_LENS[i];
  }
  *len = n;
  return (char *)b;
}

/* Writes state/5/shards: the body, sealed when `seal`. */
static void put_pack(struct fixture *f, const char *body, size_t len,
                     bool seal) {
  struct sl_error err = {0};
  char *dir = sl_asprintf("%s/state/%d", f->dir, BAD_BATCH);
  size_t slen = len;
  char *s = seal ? sl_fsio_seal(body, len, &slen) : NULL;
  if (sl_fsio_mkdirs_private(dir, &err) ||
      sl_fsio_write_atomic(dir, "shards", s ? s : body, slen, NULL, &err))
    fail_msg("%s", err.msg);
  free(s);
  free(dir);
}

/* The pack as put is refused for every shard, naming the file, and the
 * reader does not open. */
static void expect_bad_pack(struct fixture *f, const char *what) {
  for (size_t i = 0; i < 3; i++)
    expect_shard_corrupt(f, BAD_BATCH, BAD_SHARDS[i], "shards", what);
  struct sl_state_reader r;
  struct sl_error err = {0};
  assert_int_equal(sl_state_reader_open(f->ck, BAD_BATCH, &r, &err),
                   SL_ERR_CORRUPT);
  assert_null(r.pack);
}

static void test_pack_flipped_byte(void **state) {
  struct fixture *f = *state;
  size_t n;
  char *b = good_body(&n);
  put_pack(f, b, n, true);
  for (size_t i = 0; i < 3; i++) { /* the good one reads */
    unsigned char want[30];
    memset(want, 'a' + (int)i, BAD_LENS[i]);
    expect_shard(f, BAD_BATCH, BAD_SHARDS[i], want, BAD_LENS[i]);
  }
  /* A byte flipped anywhere: in the header, the table, an image. */
  const size_t at[] = {2, 17, 24 + 8, 24 + 24 + 16, 100, n - 1};
  for (size_t i = 0; i < SL_ARRAY_LEN(at); i++) {
    size_t slen;
    char *s = sl_fsio_seal(b, n, &slen);
    s[at[i]] ^= 0x20;
    put_pack(f, s, slen, false);
    free(s);
    expect_bad_pack(f, "checksum mismatch");
  }
  free(b);
}

static void test_pack_truncated(void **state) {
  struct fixture *f = *state;
  size_t n, slen;
  char *b = good_body(&n);
  char *s = sl_fsio_seal(b, n, &slen);
  /* Cut in the body, in the trailer, and to nothing. */
  const size_t keep[] = {n / 2, slen - 1, slen - 10, 0};
  for (size_t i = 0; i < SL_ARRAY_LEN(keep); i++) {
    put_pack(f, s, keep[i], false);
    expect_bad_pack(f, "torn or truncated");
  }
  /* A body cut short but sealed again (a writer that lost its end). */
  put_pack(f, b, n - 5, true);
  expect_bad_pack(f, "runs past the end");
  put_pack(f, b, 30, true);
  expect_bad_pack(f, "truncated shard table");
  put_pack(f, b, 10, true);
  expect_bad_pack(f, "truncated header");
  free(s);
  free(b);
}

static void test_pack_bad_table(void **state) {
  struct fixture *f = *state;
  size_t n;
  char *b = good_body(&n);
  unsigned char *e1 = (unsigned char *)b + 24, *e2 = e1 + 24, *e3 = e2 + 24;
  struct {
    unsigned char *at;
    int width; /* 4 or 8 */
    uint64_t value;
    const char *what;
  } cases[] = {
      {(unsigned char *)b, 4, 0x50534c58, "not a window state pack"},
      {(unsigned char *)b + 4, 4, 2, "unknown pack version 2"},
      {(unsigned char *)b + 8, 8, 6, "holds batch 6"},
      {(unsigned char *)b + 16, 4, 0, "bad header"},
      {(unsigned char *)b + 16, 4, 4, "shard 1 at offset 96, expected 120"},
      {(unsigned char *)b + 16, 4, 1000, "truncated shard table"},
      {(unsigned char *)b + 20, 4, 1, "bad header"},
      {e2, 4, 1, "shard table out of order (entry 1: shard 1)"},
      {e2, 4, 0, "shard table out of order (entry 1: shard 0)"},
      {e3, 4, 2, "shard table out of order (entry 2: shard 2)"},
      {e2 + 4, 4, 9, "bad shard table entry 1 (shard 4)"},
      {e1 + 8, 8, 97, "shard 1 at offset 97, expected 96"},
      {e3 + 8, 8, 125, "shard 6 at offset 125, expected 126"},
      {e2 + 16, 8, 19, "shard 6 at offset 126, expected 125"},
      {e3 + 16, 8, 31, "shard 6 (31 bytes at 126) runs past the end"},
      {e3 + 16, 8, UINT64_MAX, "runs past the end"},
      {e3 + 16, 8, 29, "1 bytes after the last shard image"},
      {e1 + 16, 8, UINT64_MAX - 50, "runs past the end"},
  };
  for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
    char *c = sl_malloc(n);
    memcpy(c, b, n);
    unsigned char *at = (unsigned char *)c + (cases[i].at - (unsigned char *)b);
    if (cases[i].width == 4)
      sl_snap_st_u32(at, (uint32_t)cases[i].value);
    else
      sl_snap_st_u64(at, cases[i].value);
    put_pack(f, c, n, true);
    expect_bad_pack(f, cases[i].what);
    free(c);
  }
  /* Bytes after the last image. */
  char *c = sl_malloc(n + 3);
  memcpy(c, b, n);
  memcpy(c + n, "xyz", 3);
  put_pack(f, c, n + 3, true);
  expect_bad_pack(f, "3 bytes after the last shard image");
  free(c);
  /* The same shard twice. */
  c = sl_malloc(n);
  memcpy(c, b, n);
  sl_snap_st_u32((unsigned char *)c + 24 + 24, 1);
  put_pack(f, c, n, true);
  expect_bad_pack(f, "out of order");
  free(c);
  free(b);
}

/* A pack that cannot be written leaves nothing that reads as one. */
static void test_pack_write_fails(void **state) {
  struct fixture *f = *state;
  const unsigned shards[] = {3};
  const size_t lens[] = {40};
  unsigned char *imgs[] = {fake_image(2, 3, 40)};
  const char *steps[] = {"before_fsync", "before_rename"};
  for (size_t i = 0; i < 2; i++) {
    char spec[128];
    snprintf(spec, sizeof(spec), "checkpoint.state.%s=error(EIO)", steps[i]);
    struct sl_error ferr = {0};
    assert_int_equal(sl_failpoints_arm(spec, &ferr), 0);
    struct sl_state_pack p;
    sl_state_pack_init(&p, 2);
    sl_state_pack_add(&p, 3, imgs[0], 40);
    struct sl_error err = {0};
    assert_int_equal(sl_ckpt_state_write_pack(f->ck, &p, &err), SL_ERR_IO);
    sl_state_pack_free(&p);
    char *path = state_path(f, 2, "shards");
    assert_contains(err.msg, path);
    free(path);
    char *l = listing(f, 2);
    assert_string_equal(l, ""); /* no pack, no temp file */
    free(l);
    sl_failpoints_arm(NULL, NULL);
  }
  /* The index's own points do not fire for the pack. */
  struct sl_error ferr = {0};
  assert_int_equal(
      sl_failpoints_arm("checkpoint.state.index.before_rename=error(EIO)",
                        &ferr),
      0);
  write_pack(f, 2, shards, 1, imgs, lens);
  expect_shard(f, 2, 3, imgs[0], 40);
  struct sl_state_index x = {
      .batch = 2, .nshards = 1, .shard_batch = (uint64_t[]){2}};
  struct sl_error err = {0};
  assert_int_equal(sl_ckpt_state_write_index(f->ck, &x, &err), SL_ERR_IO);
  assert_contains(err.msg, "state/2/index: rename of temporary file");
  sl_failpoints_arm(NULL, NULL);
  free(imgs[0]);
}

/* ---- the old layout, alone and mixed ------------------------------------ */

static void test_old_layout(void **state) {
  struct fixture *f = *state;
  /* Batches 1 and 2 as an earlier version left them. */
  unsigned char *a = fake_image(1, 0, 50), *b = fake_image(1, 3, 60),
                *c = fake_image(2, 3, 70);
  old_write_shard(f, 1, 0, a, 50);
  old_write_shard(f, 1, 3, b, 60);
  write_index(f, 1, 4, (uint64_t[]){1, 0, 0, 1});
  old_write_shard(f, 2, 3, c, 70);
  write_index(f, 2, 4, (uint64_t[]){1, 0, 0, 2});
  char *l = listing(f, 1);
  assert_string_equal(l, "0 3 index");
  free(l);

  struct sl_state_index x;
  struct sl_error err = {0};
  assert_int_equal(sl_ckpt_state_read_index(f->ck, 2, &x, &err), 0);
  assert_int_equal(x.nshards, 4);
  assert_int_equal(x.shard_batch[0], 1);
  assert_int_equal(x.shard_batch[3], 2);
  assert_int_equal(x.watermark, 2000);
  sl_state_index_free(&x);
  expect_shard(f, 1, 0, a, 50);
  expect_shard(f, 1, 3, b, 60);
  expect_shard(f, 2, 3, c, 70);
  /* A reader of an old-layout batch reads its files one by one. */
  struct sl_state_reader r;
  assert_int_equal(sl_state_reader_open(f->ck, 1, &r, &err), 0);
  assert_null(r.pack);
  const void *d;
  size_t n;
  assert_int_equal(sl_state_reader_shard(&r, 3, &d, &n, &err), 0);
  assert_int_equal(n, 60);
  assert_memory_equal(d, b, 60);
  assert_int_equal(sl_state_reader_shard(&r, 0, &d, &n, &err), 0);
  assert_int_equal(n, 50);
  assert_memory_equal(d, a, 50);
  assert_int_equal(sl_state_reader_shard(&r, 1, &d, &n, &err), SL_ERR_CORRUPT);
  assert_contains(err.msg, "state/1/1 is missing");
  sl_state_reader_close(&r);

  /* A bad old-layout file is refused naming it. */
  char *p = state_path(f, 2, "3");
  FILE *fp = fopen(p, "r+b");
  assert_non_null(fp);
  fseek(fp, 5, SEEK_SET);
  fputc(0xff, fp);
  fclose(fp);
  expect_shard_corrupt(f, 2, 3, "3", "checksum mismatch");
  free(p);
  free(a);
  free(b);
  free(c);
}

/* A pack of a batch whose directory also holds old-layout files (a batch
 * an earlier version ran but never committed, run again after the
 * upgrade): the pack's images win; a shard only the old files hold is
 * still found. */
static void test_pack_beside_old_files(void **state) {
  struct fixture *f = *state;
  unsigned char *old3 = fake_image(9, 3, 20), *old5 = fake_image(9, 5, 21);
  old_write_shard(f, 6, 3, old3, 20);
  old_write_shard(f, 6, 5, old5, 21);
  const unsigned shards[] = {3};
  const size_t lens[] = {22};
  unsigned char *imgs[] = {fake_image(6, 3, 22)};
  write_pack(f, 6, shards, 1, imgs, lens);
  expect_shard(f, 6, 3, imgs[0], 22);
  expect_shard(f, 6, 5, old5, 21);
  free(imgs[0]);
  free(old3);
  free(old5);
}

/* ---- a real state, batch by batch, across the upgrade ------------------- */

#define NSH 8
static const char *const T_GROUPS[] = {"user"};
static const char *const T_AGGS[] = {"n"};
static const enum sl_agg_kind T_KINDS[] = {SL_AGG_COUNT};

static struct sl_window_spec t_spec(void) {
  return (struct sl_window_spec){.size_ms = 1000,
                                 .slide_ms = 1000,
                                 .lateness_ms = 1000000,
                                 .mode = SL_WINDOW_UPDATE,
                                 .ngroups = 1,
                                 .group_names = T_GROUPS,
                                 .naggs = 1,
                                 .agg_names = T_AGGS,
                                 .agg_kinds = T_KINDS,
                                 .shards = NSH};
}

static void drop(cJSON *row, void *arg) {
  (void)arg;
  cJSON_Delete(row);
}

struct rows {
  char **v;
  size_t n;
};

static void collect(cJSON *row, void *arg) {
  struct rows *r = arg;
  r->v = sl_realloc(r->v, (r->n + 1) * sizeof(*r->v));
  r->v[r->n++] = cJSON_PrintUnformatted(row);
  cJSON_Delete(row);
}

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every row of the state, flushed, sorted, one string. */
static char *all_rows(struct sl_wstate *s) {
  struct rows r = {0};
  for (unsigned k = 0; k < NSH; k++)
    sl_wstate_emit_shard(s, k, true, collect, &r);
  qsort(r.v, r.n, sizeof(*r.v), str_cmp);
  char *out = sl_strdup("");
  for (size_t i = 0; i < r.n; i++) {
    char *t = sl_asprintf("%s%s\n", out, r.v[i]);
    free(out);
    free(r.v[i]);
    out = t;
  }
  free(r.v);
  return out;
}

/* Batch b of the state as the engine runs it: a few keys (users b..b+2,
 * so that only some shards change), merge, advance, emit; then the
 * changed shards are written, in the old layout when `old`, else as a
 * pack, then the index. shard_batch: the engine's table. */
static void run_batch(struct fixture *f, struct sl_wstate *s, uint64_t b,
                      bool old, uint64_t *shard_batch) {
  struct sl_wpartial *p = sl_wpartial_new(sl_wstate_spec(s));
  for (int i = 0; i < 3; i++) {
    char user[16];
    snprintf(user, sizeof(user), "u%d", (int)b + i);
    struct sl_value g[1] = {sl_str(user, strlen(user))};
    struct sl_error err = {0};
    assert_int_equal(sl_wpartial_add(p, (int64_t)b * 400 + i, g, NULL,
                                     sl_wstate_watermark(s), &err),
                     0);
  }
  for (unsigned k = 0; k < NSH; k++)
    sl_wstate_merge_shard(s, k, &p, 1);
  sl_wstate_advance(s, &p, 1);
  sl_wpartial_free(p);
  for (unsigned k = 0; k < NSH; k++)
    sl_wstate_emit_shard(s, k, false, drop, NULL);
  struct sl_state_pack pack;
  sl_state_pack_init(&pack, b);
  void *imgs[NSH] = {0};
  size_t changed = 0;
  for (unsigned k = 0; k < NSH; k++) {
    if (!sl_wstate_shard_dirty(s, k))
      continue;
    size_t len;
    struct sl_error err = {0};
    assert_int_equal(sl_wstate_shard_serialize(s, k, &imgs[k], &len, &err), 0);
    if (old)
      old_write_shard(f, b, k, imgs[k], len);
    else
      sl_state_pack_add(&pack, k, imgs[k], len);
    shard_batch[k] = b;
    changed++;
  }
  assert_true(changed > 0 && changed < NSH);
  struct sl_error err = {0};
  assert_int_equal(sl_ckpt_state_write_pack(f->ck, &pack, &err), 0);
  sl_state_pack_free(&pack);
  for (unsigned k = 0; k < NSH; k++)
    free(imgs[k]);
  struct sl_state_index x = {.batch = b,
                             .watermark = sl_wstate_watermark(s),
                             .max_event = sl_wstate_max_event(s),
                             .nshards = NSH,
                             .shard_batch = shard_batch};
  assert_int_equal(sl_ckpt_state_write_index(f->ck, &x, &err), 0);
}

/* The state as of batch b, restored as the engine does (each batch the
 * index names opened once). */
static struct sl_wstate *load(struct fixture *f, uint64_t b) {
  struct sl_window_spec spec = t_spec();
  struct sl_wstate *s = sl_wstate_new(&spec);
  struct sl_state_index x;
  struct sl_error err = {0};
  if (sl_ckpt_state_read_index(f->ck, b, &x, &err))
    fail_msg("index %" PRIu64 ": %s", b, err.msg);
  assert_int_equal(x.nshards, NSH);
  bool done[NSH] = {0};
  for (unsigned k = 0; k < NSH; k++) {
    if (!x.shard_batch[k] || done[k])
      continue;
    struct sl_state_reader r;
    if (sl_state_reader_open(f->ck, x.shard_batch[k], &r, &err))
      fail_msg("open %" PRIu64 ": %s", x.shard_batch[k], err.msg);
    for (unsigned j = k; j < NSH; j++) {
      if (x.shard_batch[j] != r.batch)
        continue;
      const void *d;
      size_t n;
      done[j] = true;
      if (sl_state_reader_shard(&r, j, &d, &n, &err) ||
          sl_wstate_shard_restore(s, j, d, n, &err))
        fail_msg("shard %u of %" PRIu64 ": %s", j, r.batch, err.msg);
    }
    sl_state_reader_close(&r);
  }
  sl_wstate_set_times(s, x.max_event, x.watermark);
  sl_state_index_free(&x);
  return s;
}

static void test_upgrade_mixed(void **state) {
  struct fixture *f = *state;
  struct sl_window_spec spec = t_spec();
  struct sl_wstate *s = sl_wstate_new(&spec);
  uint64_t shard_batch[NSH] = {0};
  /* Batches 1-4 by an earlier version, 5-8 after the upgrade. */
  for (uint64_t b = 1; b <= 4; b++)
    run_batch(f, s, b, true, shard_batch);
  /* The old version's state restores as it was written. */
  struct sl_wstate *r4 = load(f, 4);
  assert_int_equal(sl_wstate_windows(r4), sl_wstate_windows(s));
  for (uint64_t b = 5; b <= 8; b++)
    run_batch(f, s, b, false, shard_batch);
  char *l = listing(f, 3);
  assert_false(strstr(l, "shards"));
  free(l);
  l = listing(f, 6);
  assert_string_equal(l, "index shards");
  free(l);
  /* The newest index names both layouts. */
  struct sl_state_index x;
  struct sl_error err = {0};
  assert_int_equal(sl_ckpt_state_read_index(f->ck, 8, &x, &err), 0);
  bool old = false, packed = false;
  for (unsigned k = 0; k < NSH; k++) {
    old |= x.shard_batch[k] >= 1 && x.shard_batch[k] <= 4;
    packed |= x.shard_batch[k] >= 5;
  }
  sl_state_index_free(&x);
  assert_true(old && packed);

  struct sl_wstate *r8 = load(f, 8);
  assert_int_equal(sl_wstate_windows(r8), sl_wstate_windows(s));
  assert_int_equal(sl_wstate_watermark(r8), sl_wstate_watermark(s));
  char *want = all_rows(s), *got = all_rows(r8);
  assert_string_equal(got, want);
  assert_true(strlen(want) > 0);
  free(got);

  /* Pruning as commit.c does with one commit kept: batches below 8 go
   * unless index 8 names them, whatever their layout. */
  assert_int_equal(sl_ckpt_state_prune(f->ck, 8, 8, &err), 0);
  assert_int_equal(sl_ckpt_state_read_index(f->ck, 8, &x, &err), 0);
  for (uint64_t b = 1; b < 8; b++) {
    bool needed = false;
    for (unsigned k = 0; k < NSH; k++)
      needed |= x.shard_batch[k] == b;
    char *dir = sl_asprintf("%s/state/%" PRIu64, f->dir, b);
    assert_int_equal(access(dir, F_OK) == 0, needed);
    free(dir);
  }
  sl_state_index_free(&x);
  struct sl_wstate *p8 = load(f, 8);
  got = all_rows(p8);
  assert_string_equal(got, want);
  free(got);
  free(want);
  sl_wstate_free(p8);
  sl_wstate_free(r8);
  sl_wstate_free(r4);
  sl_wstate_free(s);
}

static void test_prune(void **state) {
  struct fixture *f = *state;
  /* 1: old layout, 2: pack, 3: pack, 4: old layout (re-run as a pack in
   * 5's directory too), 5: pack. Index 4 names 1 and 2; index 5 names 1,
   * 3 and 5. */
  unsigned char *img = fake_image(0, 0, 16);
  const unsigned sh1[] = {1}, sh2[] = {2};
  const size_t len[] = {16};
  unsigned char *imgs[] = {img};
  old_write_shard(f, 1, 0, img, 16);
  write_index(f, 1, 3, (uint64_t[]){1, 0, 0});
  write_pack(f, 2, sh1, 1, imgs, len);
  write_index(f, 2, 3, (uint64_t[]){1, 2, 0});
  write_pack(f, 3, sh1, 1, imgs, len);
  write_index(f, 3, 3, (uint64_t[]){1, 3, 0});
  old_write_shard(f, 4, 2, img, 16);
  write_index(f, 4, 3, (uint64_t[]){1, 2, 4});
  write_pack(f, 5, sh2, 1, imgs, len);
  write_index(f, 5, 3, (uint64_t[]){1, 3, 5});
  struct sl_error err = {0};
  /* Kept: commits 4 and 5. Below 4, index 4 names 1 and 2, index 5 names
   * 1 and 3: nothing goes. */
  assert_int_equal(sl_ckpt_state_prune(f->ck, 4, 5, &err), 0);
  for (uint64_t b = 1; b <= 5; b++)
    assert_true(exists(f, b, "index"));
  /* Kept: commit 5 only. 2 and 4 go (4's old-layout file and index
   * with it), 1 and 3 stay. */
  assert_int_equal(sl_ckpt_state_prune(f->ck, 5, 5, &err), 0);
  char *l = listing(f, 1);
  assert_string_equal(l, "0 index");
  free(l);
  l = listing(f, 2);
  assert_string_equal(l, "(none)");
  free(l);
  l = listing(f, 3);
  assert_string_equal(l, "index shards");
  free(l);
  l = listing(f, 4);
  assert_string_equal(l, "(none)");
  free(l);
  expect_shard(f, 1, 0, img, 16);
  expect_shard(f, 3, 1, img, 16);
  expect_shard(f, 5, 2, img, 16);
  free(img);
}

/* A crash inside a pack's write leaves its temp file in state/N/; the
 * next open of the store removes it (as in offsets/ and commits/). */
static void test_leftover_removed_at_open(void **state) {
  struct fixture *f = *state;
  const unsigned shards[] = {2};
  const size_t lens[] = {12};
  unsigned char *imgs[] = {fake_image(3, 2, 12)};
  write_pack(f, 3, shards, 1, imgs, lens);
  char *tmp = state_path(f, 3, ".shards.tmp.999999");
  FILE *fp = fopen(tmp, "wb");
  assert_non_null(fp);
  fputs("SLSP", fp);
  fclose(fp);
  char *other = sl_asprintf("%s/state/notes", f->dir); /* not a batch */
  fp = fopen(other, "wb");
  assert_non_null(fp);
  fclose(fp);
  sl_ckpt_close(f->ck);
  struct sl_error err = {0};
  assert_int_equal(sl_ckpt_open(f->dir, "state-test", &f->ck, &err), 0);
  char *l = listing(f, 3);
  assert_string_equal(l, "shards");
  free(l);
  assert_int_equal(access(other, F_OK), 0);
  expect_shard(f, 3, 2, imgs[0], 12);
  free(other);
  free(tmp);
  free(imgs[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pack_roundtrip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pack_empty_and_duplicate, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_pack_flipped_byte, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pack_truncated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pack_bad_table, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pack_write_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_old_layout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pack_beside_old_files, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_upgrade_mixed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
      cmocka_unit_test_setup_teardown(test_leftover_removed_at_open, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
