/*
 * test_snapshot.c - the window state image format (checkpoint/snapshot.c):
 * sealing and opening images, the window definition at the head of the
 * raw bytes, the bounds-checked reader, every rejection with its message,
 * and golden images: two shard images written by the format as it was
 * when it lived in src/window.c, which must restore (and be written again
 * byte for byte) as long as the format version is 1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "checkpoint/snapshot.h"
#include "src/util.h"
#include "src/window.h"

/* ---- golden images ------------------------------------------------------ */

/* The window of the golden images: 20 ms windows sliding by 10 ms, two
 * group keys (k, j), every aggregate, 2 shards; lateness 100 ms, so no
 * window has ended. golden_fill adds its six records. */
static const char *const G_GROUPS[] = {"k", "j"};
static const char *const G_AGGS[] = {"n", "s", "lo", "hi", "a", "d"};
static const enum sl_agg_kind G_KINDS[] = {SL_AGG_COUNT, SL_AGG_SUM,
                                           SL_AGG_MIN,   SL_AGG_MAX,
                                           SL_AGG_AVG,   SL_AGG_COUNT_DISTINCT};

static struct sl_window_spec golden_spec(void) {
  return (struct sl_window_spec){.size_ms = 20,
                                 .slide_ms = 10,
                                 .lateness_ms = 100,
                                 .mode = SL_WINDOW_UPDATE,
                                 .ngroups = 2,
                                 .group_names = G_GROUPS,
                                 .naggs = 6,
                                 .agg_names = G_AGGS,
                                 .agg_kinds = G_KINDS,
                                 .shards = 2};
}

/* Shards 0 and 1 of the state golden_fill builds, as sl_wstate_shard_
 * serialize wrote them before the format moved to checkpoint/. */
static const unsigned char GOLDEN_SHARD0[] = {
    0x53, 0x4c, 0x57, 0x5a, 0x01, 0x00, 0x00, 0x00, 0xb8, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x56, 0x47, 0x85, 0xb4, 0x00, 0x00, 0x00, 0x00,
    0xa2, 0x53, 0x4c, 0x57, 0x53, 0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x01,
    0x00, 0x12, 0x0a, 0x07, 0x00, 0x27, 0x00, 0x02, 0x08, 0x00, 0x10, 0x06,
    0x0c, 0x00, 0x60, 0x01, 0x02, 0x03, 0x04, 0x05, 0x04, 0x0a, 0x00, 0x07,
    0x26, 0x00, 0x50, 0x1f, 0x00, 0x00, 0x00, 0x05, 0x2b, 0x00, 0xf0, 0x0b,
    0x65, 0x75, 0x06, 0x13, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x61, 0x22, 0x3a,
    0x5b, 0x31, 0x2c, 0x32, 0x5d, 0x2c, 0x22, 0x62, 0x22, 0x3a, 0x22, 0x78,
    0x22, 0x7d, 0x5d, 0x00, 0x00, 0x02, 0x00, 0x14, 0x03, 0x09, 0x00, 0x10,
    0x05, 0x09, 0x00, 0x12, 0x62, 0x06, 0x00, 0x00, 0x19, 0x00, 0x40, 0x00,
    0x00, 0xf0, 0x3f, 0x13, 0x00, 0x00, 0x02, 0x00, 0x04, 0x08, 0x00, 0x01,
    0x72, 0x00, 0x00, 0x5c, 0x00, 0x00, 0x11, 0x00, 0x14, 0x62, 0x94, 0x00,
    0x10, 0x10, 0x12, 0x00, 0x00, 0x6e, 0x00, 0x41, 0x61, 0x70, 0x03, 0x07,
    0x20, 0x00, 0x06, 0x32, 0x00, 0x0f, 0x02, 0x00, 0x18, 0x05, 0x47, 0x00,
    0x2d, 0x75, 0x73, 0x47, 0x00, 0x0a, 0xa6, 0x00, 0x11, 0x61, 0xa6, 0x00,
    0x12, 0x61, 0x5c, 0x00, 0x0f, 0xa6, 0x00, 0x0c, 0x03, 0x26, 0x00, 0x0f,
    0x14, 0x01, 0x50, 0x50, 0x01, 0x00, 0x00, 0x00, 0x62};

static const unsigned char GOLDEN_SHARD1[] = {
    0x53, 0x4c, 0x57, 0x5a, 0x01, 0x00, 0x00, 0x00, 0x7e, 0x02, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x77, 0x11, 0x21, 0x5e, 0x00, 0x00, 0x00, 0x00,
    0xa2, 0x53, 0x4c, 0x57, 0x53, 0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x01,
    0x00, 0x12, 0x0a, 0x07, 0x00, 0x50, 0x00, 0x02, 0x00, 0x00, 0x00, 0x18,
    0x00, 0x00, 0x08, 0x00, 0x10, 0x06, 0x14, 0x00, 0x51, 0x01, 0x02, 0x03,
    0x04, 0x05, 0x0a, 0x00, 0x07, 0x02, 0x00, 0x50, 0x10, 0x00, 0x00, 0x00,
    0x05, 0x23, 0x00, 0x43, 0x65, 0x75, 0x03, 0x07, 0x18, 0x00, 0x00, 0x0f,
    0x00, 0x00, 0x02, 0x00, 0x10, 0x04, 0x05, 0x00, 0x43, 0x00, 0x00, 0x1e,
    0x40, 0x09, 0x00, 0x40, 0x04, 0x40, 0x03, 0x05, 0x11, 0x00, 0x05, 0x02,
    0x00, 0x24, 0x1e, 0x40, 0x2b, 0x00, 0x04, 0x08, 0x00, 0x13, 0x12, 0x1c,
    0x00, 0x05, 0x29, 0x00, 0x05, 0x3b, 0x00, 0x03, 0x19, 0x00, 0x24, 0x00,
    0x08, 0x71, 0x00, 0x21, 0x75, 0x73, 0x9f, 0x00, 0x00, 0x02, 0x00, 0x32,
    0x03, 0xfd, 0xff, 0x01, 0x00, 0x0e, 0x09, 0x00, 0x00, 0x1f, 0x00, 0x40,
    0x00, 0x00, 0x08, 0xc0, 0xca, 0x00, 0x00, 0x02, 0x00, 0x04, 0x08, 0x00,
    0x10, 0x09, 0x0d, 0x00, 0x08, 0x3b, 0x00, 0x04, 0xff, 0x00, 0x05, 0xd1,
    0x00, 0x25, 0x61, 0x70, 0xd1, 0x00, 0x04, 0x35, 0x00, 0x0f, 0x02, 0x00,
    0x10, 0x04, 0x3e, 0x01, 0x05, 0x47, 0x00, 0x2d, 0x75, 0x73, 0x47, 0x00,
    0x14, 0x03, 0x50, 0x00, 0x10, 0x05, 0x09, 0x00, 0x12, 0x61, 0x06, 0x00,
    0x02, 0x5c, 0x00, 0x20, 0xf0, 0x3f, 0x13, 0x00, 0x00, 0x02, 0x00, 0x04,
    0x08, 0x00, 0x04, 0x71, 0x01, 0x02, 0x26, 0x00, 0x12, 0xf6, 0xe8, 0x00,
    0x15, 0xff, 0x5f, 0x00, 0x0f, 0x77, 0x01, 0x4d, 0x04, 0xd0, 0x00, 0x0f,
    0x77, 0x01, 0x40, 0x50, 0xff, 0xff, 0xff, 0xff, 0xff};

/* The rows a flush of the restored state emits, shard 0 then shard 1
 * (the state then had max event 25 and watermark -75). */
static const char *const GOLDEN_ROWS[] = {
    "{\"window_start\":0,\"window_end\":20,\"k\":\"eu\",\"j\":{\"a\":[1,2],"
    "\"b\":\"x\"},\"n\":1,\"s\":1,\"lo\":\"b\",\"hi\":\"b\",\"a\":1,\"d\":1}",
    "{\"window_start\":0,\"window_end\":20,\"k\":\"us\",\"j\":7,\"n\":1,\"s\":"
    "1,\"lo\":\"a\",\"hi\":\"a\",\"a\":1,\"d\":1}",
    "{\"window_start\":10,\"window_end\":30,\"k\":\"ap\",\"j\":7,\"n\":1,\"s\":"
    "null,\"lo\":null,\"hi\":null,\"a\":null,\"d\":0}",
    "{\"window_start\":10,\"window_end\":30,\"k\":\"eu\",\"j\":{\"a\":[1,2],"
    "\"b\":\"x\"},\"n\":1,\"s\":1,\"lo\":\"b\",\"hi\":\"b\",\"a\":1,\"d\":1}",
    "{\"window_start\":-10,\"window_end\":10,\"k\":\"eu\",\"j\":7,\"n\":2,"
    "\"s\":7.5,\"lo\":2.5,\"hi\":5,\"a\":3.75,\"d\":2}",
    "{\"window_start\":0,\"window_end\":20,\"k\":\"eu\",\"j\":7,\"n\":2,\"s\":"
    "7.5,\"lo\":2.5,\"hi\":5,\"a\":3.75,\"d\":2}",
    "{\"window_start\":0,\"window_end\":20,\"k\":\"us\",\"j\":null,\"n\":1,"
    "\"s\":-3,\"lo\":-3,\"hi\":-3,\"a\":-3,\"d\":1}",
    "{\"window_start\":10,\"window_end\":30,\"k\":\"us\",\"j\":null,\"n\":1,"
    "\"s\":-3,\"lo\":-3,\"hi\":-3,\"a\":-3,\"d\":1}",
    "{\"window_start\":10,\"window_end\":30,\"k\":\"us\",\"j\":7,\"n\":1,\"s\":"
    "1,\"lo\":\"a\",\"hi\":\"a\",\"a\":1,\"d\":1}",
    "{\"window_start\":20,\"window_end\":40,\"k\":\"ap\",\"j\":7,\"n\":1,\"s\":"
    "null,\"lo\":null,\"hi\":null,\"a\":null,\"d\":0}",
    NULL};

static struct sl_value vstr(const char *s) {
  return sl_str(s, strlen(s));
}

static void drop(cJSON *row, void *arg) {
  (void)arg;
  cJSON_Delete(row);
}

/* The six records of the golden state, in one partial, merged, advanced
 * and emitted once (update mode) as the engine does. */
static void golden_fill(struct sl_wstate *s) {
  const struct sl_window_spec *sp = sl_wstate_spec(s);
  struct sl_wpartial *p = sl_wpartial_new(sp);
  cJSON *obj = cJSON_Parse("{\"b\":\"x\",\"a\":[1,2]}");
  assert_non_null(obj);
  const struct sl_value json = {.type = SL_V_JSON, .u.json = obj};
  const struct {
    int64_t t;
    const char *k;
    int j; /* 0: null, 1: 7, 2: the JSON object */
  } recs[] = {{3, "eu", 1},  {7, "eu", 1},  {12, "us", 0},
              {15, "eu", 2}, {18, "us", 1}, {25, "ap", 1}};
  const struct sl_value xs[] = {sl_int(5), sl_float(2.5), sl_int(-3),
                                vstr("b"), vstr("a"),     SL_NULL};
  for (size_t i = 0; i < 6; i++) {
    struct sl_value g[2] = {vstr(recs[i].k), recs[i].j == 2   ? json
                                             : recs[i].j == 1 ? sl_int(7)
                                                              : SL_NULL};
    struct sl_value a[6] = {SL_NULL, xs[i], xs[i], xs[i], xs[i], xs[i]};
    if (i == 3 || i == 4) /* string min/max; sum and avg take numbers */
      a[1] = a[4] = sl_int(1);
    struct sl_error err = {0};
    int rc = sl_wpartial_add(p, recs[i].t, g, a, INT64_MIN, &err);
    if (rc)
      fail_msg("add %zu: rc %d: %s", i, rc, err.msg);
  }
  for (unsigned k = 0; k < sp->shards; k++)
    sl_wstate_merge_shard(s, k, &p, 1);
  sl_wstate_advance(s, &p, 1);
  for (unsigned k = 0; k < sp->shards; k++)
    sl_wstate_emit_shard(s, k, false, drop, NULL);
  sl_wpartial_free(p);
  cJSON_Delete(obj);
}

/* ---- helpers ------------------------------------------------------------ */

struct rows {
  char **v;
  size_t n, cap;
};

static void collect(cJSON *row, void *arg) {
  struct rows *r = arg;
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 16;
    r->v = realloc(r->v, r->cap * sizeof(*r->v));
    assert_non_null(r->v);
  }
  r->v[r->n++] = cJSON_PrintUnformatted(row);
  cJSON_Delete(row);
}

static void rows_free(struct rows *r) {
  for (size_t i = 0; i < r->n; i++)
    free(r->v[i]);
  free(r->v);
  *r = (struct rows){0};
}

/* Flushes every shard of s (shard order) and checks the rows. */
static void expect_golden_rows(struct sl_wstate *s) {
  struct rows r = {0};
  for (unsigned k = 0; k < sl_wstate_spec(s)->shards; k++)
    sl_wstate_emit_shard(s, k, true, collect, &r);
  size_t n = 0;
  while (GOLDEN_ROWS[n])
    n++;
  for (size_t i = 0; i < r.n && i < n; i++)
    assert_string_equal(r.v[i], GOLDEN_ROWS[i]);
  assert_int_equal(r.n, n);
  rows_free(&r);
}

static const unsigned char *golden(unsigned k, size_t *len) {
  *len = k ? sizeof(GOLDEN_SHARD1) : sizeof(GOLDEN_SHARD0);
  return k ? GOLDEN_SHARD1 : GOLDEN_SHARD0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* A copy of the n bytes at p, malloc'd. */
static unsigned char *copy_of(const void *p, size_t n) {
  unsigned char *q = malloc(n ? n : 1);
  assert_non_null(q);
  if (n)
    memcpy(q, p, n);
  return q;
}

/* sl_snap_open of img must fail with SL_ERR_CORRUPT and exactly msg. */
static void expect_open_error(unsigned shard, const void *img, size_t len,
                              const char *msg) {
  unsigned char *raw = (unsigned char *)"not touched";
  size_t rawlen = 7;
  struct sl_error err = {0};
  assert_int_equal(sl_snap_open(shard, img, len, &raw, &rawlen, &err),
                   SL_ERR_CORRUPT);
  assert_null(raw);
  assert_int_equal(rawlen, 0);
  assert_string_equal(err.msg, msg);
}

/* ---- framing ------------------------------------------------------------ */

static void test_seal_open_roundtrip(void **state) {
  (void)state;
  const size_t sizes[] = {0, 1, 23, 24, 1000, 70000, 300000};
  for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
    size_t n = sizes[t];
    unsigned char *raw = malloc(n ? n : 1);
    assert_non_null(raw);
    for (size_t i = 0; i < n; i++) /* half random, half compressible */
      raw[i] = (unsigned char)(i < n / 2 ? rng() : i / 100);
    void *img = NULL;
    size_t len = 0;
    struct sl_error err = {0};
    assert_int_equal(sl_snap_seal(5, raw, n, &img, &len, &err), 0);
    const unsigned char *h = img;
    assert_true(len >= SL_SNAP_HDR);
    assert_memory_equal(h, "SLWZ", 4);
    assert_int_equal(sl_snap_ld_u32(h + 4), 1);
    assert_int_equal(sl_snap_ld_u64(h + 8), n);
    assert_int_equal(sl_snap_ld_u32(h + 16), (uint32_t)crc32(0L, raw, (uInt)n));
    assert_int_equal(sl_snap_ld_u32(h + 20), 0);
    unsigned char *back = NULL;
    size_t blen = 1;
    assert_int_equal(sl_snap_open(5, img, len, &back, &blen, &err), 0);
    assert_non_null(back); /* even for 0 bytes */
    assert_int_equal(blen, n);
    if (n)
      assert_memory_equal(back, raw, n);
    free(back);
    free(img);
    free(raw);
  }
}

static void test_open_rejects(void **state) {
  (void)state;
  unsigned char raw[200];
  for (size_t i = 0; i < sizeof(raw); i++)
    raw[i] = (unsigned char)(i % 13);
  void *sealed = NULL;
  size_t len = 0;
  struct sl_error err = {0};
  assert_int_equal(sl_snap_seal(3, raw, sizeof(raw), &sealed, &len, &err), 0);
  const unsigned char *img = sealed;
  unsigned char *b;
  char msg[128];

  /* truncated: shorter than the header, or nothing at all */
  expect_open_error(3, NULL, 0,
                    "window state shard 3: truncated image (0 bytes)");
  for (size_t n = 0; n < SL_SNAP_HDR; n++) {
    snprintf(msg, sizeof(msg),
             "window state shard 3: truncated image (%zu bytes)", n);
    expect_open_error(3, img, n, msg);
  }
  /* bad magic */
  b = copy_of(img, len);
  b[0] = 'X';
  expect_open_error(3, b, len,
                    "window state shard 3: not a window state image");
  free(b);
  /* unknown version */
  b = copy_of(img, len);
  sl_snap_st_u32(b + 4, 2);
  expect_open_error(3, b, len, "window state shard 3: unknown image version 2");
  free(b);
  /* bad header: the reserved word, a raw length LZ4 cannot reach */
  b = copy_of(img, len);
  sl_snap_st_u32(b + 20, 1);
  expect_open_error(3, b, len, "window state shard 3: bad image header");
  free(b);
  b = copy_of(img, len);
  sl_snap_st_u64(b + 8, (uint64_t)(len - SL_SNAP_HDR) * 256 + 65);
  expect_open_error(3, b, len, "window state shard 3: bad image header");
  sl_snap_st_u64(b + 8, UINT64_MAX);
  expect_open_error(3, b, len, "window state shard 3: bad image header");
  free(b);
  /* damaged LZ4: a raw length one off either way, a cut block, garbage */
  b = copy_of(img, len);
  sl_snap_st_u64(b + 8, sizeof(raw) - 1);
  expect_open_error(3, b, len, "window state shard 3: lz4 data is damaged");
  sl_snap_st_u64(b + 8, sizeof(raw) + 1);
  expect_open_error(3, b, len, "window state shard 3: lz4 data is damaged");
  free(b);
  expect_open_error(3, img, len - 1,
                    "window state shard 3: lz4 data is damaged");
  b = copy_of(img, len);
  memset(b + SL_SNAP_HDR, 0xff, len - SL_SNAP_HDR);
  expect_open_error(3, b, len, "window state shard 3: lz4 data is damaged");
  free(b);
  /* no block at all: 200 bytes cannot come from 0 (bad header) */
  expect_open_error(3, img, SL_SNAP_HDR,
                    "window state shard 3: bad image header");
  /* checksum mismatch */
  b = copy_of(img, len);
  b[16] ^= 1;
  expect_open_error(3, b, len, "window state shard 3: checksum mismatch");
  free(b);
  /* the shard in the message is the one being opened */
  expect_open_error(41, img, 2,
                    "window state shard 41: truncated image (2 bytes)");
  free(sealed);
}

/* ---- reader ------------------------------------------------------------- */

static void test_reader(void **state) {
  (void)state;
  unsigned char buf[21];
  buf[0] = 0xab;
  sl_snap_st_u32(buf + 1, 0x01020304u);
  sl_snap_st_u64(buf + 5, 0x1122334455667788ULL);
  double d = -2.75;
  uint64_t u;
  memcpy(&u, &d, sizeof(u));
  sl_snap_st_u64(buf + 13, u);
  /* little-endian on every host */
  assert_int_equal(buf[1], 0x04);
  assert_int_equal(buf[4], 0x01);
  assert_int_equal(buf[5], 0x88);
  struct sl_snap_rd r = {.p = buf, .n = sizeof(buf)};
  assert_int_equal(sl_snap_rd_u8(&r), 0xab);
  assert_int_equal(sl_snap_rd_u32(&r), 0x01020304u);
  assert_true(sl_snap_rd_u64(&r) == 0x1122334455667788ULL);
  assert_true(sl_snap_rd_f64(&r) == -2.75);
  assert_false(r.bad);
  assert_int_equal(r.off, r.n);
  assert_non_null(sl_snap_rd_take(&r, 0));
  /* past the end: bad, and zeros from then on, even where bytes remain */
  r = (struct sl_snap_rd){.p = buf, .n = 3};
  assert_int_equal(sl_snap_rd_u32(&r), 0);
  assert_true(r.bad);
  assert_int_equal(sl_snap_rd_u8(&r), 0);
  assert_null(sl_snap_rd_take(&r, 0));
  assert_int_equal(r.off, 0);
  r = (struct sl_snap_rd){.p = buf, .n = sizeof(buf)};
  assert_null(sl_snap_rd_take(&r, SIZE_MAX));
  assert_true(r.bad);
}

/* ---- window definition -------------------------------------------------- */

static const uint8_t D_KINDS[] = {0, 1, 5};

static struct sl_snap_def mkdef(unsigned shard) {
  return (struct sl_snap_def){.size_ms = 60000,
                              .slide_ms = 30000,
                              .shards = 64,
                              .shard = shard,
                              .ngroups = 2,
                              .naggs = 3,
                              .kinds = D_KINDS};
}

/* def written, then `tail` bytes of something else; read back as want. */
static int read_def(const struct sl_snap_def *def,
                    const struct sl_snap_def *want, size_t cut,
                    struct sl_error *err) {
  unsigned char buf[128];
  size_t n = sl_snap_def_len(def);
  assert_true(n + 8 <= sizeof(buf));
  assert_int_equal(sl_snap_def_put(def, buf), n);
  sl_snap_st_u64(buf + n, 77);
  struct sl_snap_rd r = {.p = buf, .n = cut ? cut : n + 8};
  int rc = sl_snap_def_read(&r, want, err);
  if (rc == 0) { /* at the entry count */
    assert_int_equal(r.off, n);
    assert_true(sl_snap_rd_u64(&r) == 77);
  }
  return rc;
}

static void expect_def_error(const struct sl_snap_def *def,
                             const struct sl_snap_def *want, size_t cut,
                             const char *msg) {
  struct sl_error err = {0};
  assert_int_equal(read_def(def, want, cut, &err), SL_ERR_CORRUPT);
  assert_string_equal(err.msg, msg);
}

static void test_def(void **state) {
  (void)state;
  struct sl_snap_def d = mkdef(9), w;
  struct sl_error err = {0};
  /* the layout: "SLWS", version, size, slide, shards, shard, ngroups,
   * naggs, kinds */
  unsigned char buf[64];
  assert_int_equal(sl_snap_def_len(&d), 43);
  assert_int_equal(sl_snap_def_put(&d, buf), 43);
  assert_memory_equal(buf, "SLWS", 4);
  assert_int_equal(sl_snap_ld_u32(buf + 4), 1);
  assert_int_equal(sl_snap_ld_u64(buf + 8), 60000);
  assert_int_equal(sl_snap_ld_u64(buf + 16), 30000);
  assert_int_equal(sl_snap_ld_u32(buf + 24), 64);
  assert_int_equal(sl_snap_ld_u32(buf + 28), 9);
  assert_int_equal(sl_snap_ld_u32(buf + 32), 2);
  assert_int_equal(sl_snap_ld_u32(buf + 36), 3);
  assert_memory_equal(buf + 40, D_KINDS, 3);
  assert_int_equal(read_def(&d, &d, 0, &err), 0);
  struct sl_snap_def none = d; /* no aggregates is a definition too */
  none.naggs = 0;
  none.kinds = NULL;
  assert_int_equal(sl_snap_def_len(&none), 40);
  assert_int_equal(read_def(&none, &none, 0, &err), 0);

  /* different window definitions, each field */
  const char *fmt = "window state shard 9: state was written by a different "
                    "window definition (%s differ: image size 60000 slide "
                    "30000, 64 shards, 2 groups, 3 aggregates; job size %lld "
                    "slide %lld, %u shards, %u groups, %u aggregates)";
  char msg[400];
  w = d;
  w.size_ms = 120000;
  snprintf(msg, sizeof(msg), fmt, "window size or slide", 120000LL, 30000LL,
           64u, 2u, 3u);
  expect_def_error(&d, &w, 0, msg);
  w = d;
  w.slide_ms = 60000;
  snprintf(msg, sizeof(msg), fmt, "window size or slide", 60000LL, 60000LL, 64u,
           2u, 3u);
  expect_def_error(&d, &w, 0, msg);
  w = d;
  w.shards = 16;
  snprintf(msg, sizeof(msg), fmt, "number of shards", 60000LL, 30000LL, 16u, 2u,
           3u);
  expect_def_error(&d, &w, 0, msg);
  w = d;
  w.ngroups = 1;
  snprintf(msg, sizeof(msg), fmt, "number of group keys", 60000LL, 30000LL, 64u,
           1u, 3u);
  expect_def_error(&d, &w, 0, msg);
  w = d;
  w.naggs = 2;
  snprintf(msg, sizeof(msg), fmt, "number of aggregates", 60000LL, 30000LL, 64u,
           2u, 2u);
  expect_def_error(&d, &w, 0, msg);
  static const uint8_t other[] = {0, 1, 4};
  w = d;
  w.kinds = other;
  snprintf(msg, sizeof(msg), fmt, "aggregate functions", 60000LL, 30000LL, 64u,
           2u, 3u);
  expect_def_error(&d, &w, 0, msg);

  /* the wrong shard: checked after the definition */
  w = mkdef(8);
  expect_def_error(&d, &w, 0, "window state shard 8: image is of shard 9");

  /* bad inner magic, unknown format version, truncated header */
  unsigned char bad[64];
  sl_snap_def_put(&d, bad);
  bad[3] = 'Z';
  struct sl_snap_rd r = {.p = bad, .n = 43};
  assert_int_equal(sl_snap_def_read(&r, &d, &err), SL_ERR_CORRUPT);
  assert_string_equal(err.msg, "window state shard 9: bad inner magic");
  sl_snap_def_put(&d, bad);
  sl_snap_st_u32(bad + 4, 7);
  r = (struct sl_snap_rd){.p = bad, .n = 43};
  assert_int_equal(sl_snap_def_read(&r, &d, &err), SL_ERR_CORRUPT);
  assert_string_equal(err.msg,
                      "window state shard 9: unknown format version 7");
  for (size_t cut = 1; cut < 43; cut++) {
    const char *want = cut < 4   ? "window state shard 9: bad inner magic"
                       : cut < 8 ? "window state shard 9: unknown format "
                                   "version 0"
                                 : "window state shard 9: truncated header";
    expect_def_error(&d, &d, cut, want);
  }
}

/* ---- golden images ------------------------------------------------------ */

/* The images written before the format moved restore into the same
 * window, with the same rows. */
static void test_golden_restore(void **state) {
  (void)state;
  struct sl_window_spec sp = golden_spec();
  struct sl_wstate *s = sl_wstate_new(&sp);
  for (unsigned k = 0; k < 2; k++) {
    size_t len;
    const unsigned char *img = golden(k, &len);
    struct sl_error err = {0};
    int rc = sl_wstate_shard_restore(s, k, img, len, &err);
    if (rc)
      fail_msg("golden shard %u: %s", k, err.msg);
    assert_false(sl_wstate_shard_dirty(s, k));
  }
  assert_int_equal(sl_wstate_windows(s), 10);
  /* and what the restored state writes restores again */
  struct sl_wstate *s2 = sl_wstate_new(&sp);
  for (unsigned k = 0; k < 2; k++) {
    void *img = NULL;
    size_t len = 0;
    struct sl_error err = {0};
    assert_int_equal(sl_wstate_shard_serialize(s, k, &img, &len, &err), 0);
    assert_int_equal(sl_wstate_shard_restore(s2, k, img, len, &err), 0);
    free(img);
  }
  sl_wstate_set_times(s, 25, -75);
  sl_wstate_set_times(s2, 25, -75);
  expect_golden_rows(s);
  expect_golden_rows(s2);
  sl_wstate_free(s);
  sl_wstate_free(s2);
}

/* The same state built again is written as the same bytes: the raw bytes
 * equal the golden images' (compared after opening, so that a different
 * LZ4 version, which may compress differently, does not matter), and so
 * do the image headers (length and CRC of the raw bytes). */
static void test_golden_write(void **state) {
  (void)state;
  struct sl_window_spec sp = golden_spec();
  struct sl_wstate *s = sl_wstate_new(&sp);
  golden_fill(s);
  assert_int_equal(sl_wstate_max_event(s), 25);
  assert_int_equal(sl_wstate_watermark(s), -75);
  for (unsigned k = 0; k < 2; k++) {
    size_t glen;
    const unsigned char *gimg = golden(k, &glen);
    void *img = NULL;
    size_t len = 0;
    struct sl_error err = {0};
    assert_int_equal(sl_wstate_shard_serialize(s, k, &img, &len, &err), 0);
    assert_memory_equal(img, gimg, SL_SNAP_HDR);
    unsigned char *raw = NULL, *graw = NULL;
    size_t rawlen = 0, grawlen = 0;
    assert_int_equal(sl_snap_open(k, img, len, &raw, &rawlen, &err), 0);
    assert_int_equal(sl_snap_open(k, gimg, glen, &graw, &grawlen, &err), 0);
    assert_int_equal(rawlen, grawlen);
    assert_memory_equal(raw, graw, rawlen);
    /* the head of the raw bytes is the definition */
    uint8_t kinds[6];
    for (int a = 0; a < 6; a++)
      kinds[a] = (uint8_t)G_KINDS[a];
    struct sl_snap_def def = {.size_ms = 20,
                              .slide_ms = 10,
                              .shards = 2,
                              .shard = k,
                              .ngroups = 2,
                              .naggs = 6,
                              .kinds = kinds};
    struct sl_snap_rd r = {.p = graw, .n = grawlen};
    assert_int_equal(sl_snap_def_read(&r, &def, &err), 0);
    assert_int_equal(r.off, sl_snap_def_len(&def));
    /* re-sealing the raw bytes gives the same header */
    void *again = NULL;
    size_t alen = 0;
    assert_int_equal(sl_snap_seal(k, graw, grawlen, &again, &alen, &err), 0);
    assert_memory_equal(again, gimg, SL_SNAP_HDR);
    free(again);
    free(raw);
    free(graw);
    free(img);
  }
  sl_wstate_free(s);
}

/* The window's restore reports the format's errors, unchanged, and a
 * failed restore leaves the shard as it was. */
static void test_golden_rejects(void **state) {
  (void)state;
  struct sl_window_spec sp = golden_spec();
  size_t len;
  const unsigned char *img = golden(0, &len);
  struct sl_error err = {0};

  struct sl_window_spec other = sp;
  other.size_ms = 30;
  struct sl_wstate *s = sl_wstate_new(&other);
  assert_int_equal(sl_wstate_shard_restore(s, 0, img, len, &err),
                   SL_ERR_CORRUPT);
  assert_string_equal(
      err.msg, "window state shard 0: state was written by a different "
               "window definition (window size or slide differ: image size "
               "20 slide 10, 2 shards, 2 groups, 6 aggregates; job size 30 "
               "slide 10, 2 shards, 2 groups, 6 aggregates)");
  sl_wstate_free(s);

  static const enum sl_agg_kind swapped[] = {
      SL_AGG_COUNT, SL_AGG_SUM, SL_AGG_MAX,
      SL_AGG_MIN,   SL_AGG_AVG, SL_AGG_COUNT_DISTINCT};
  other = sp;
  other.agg_kinds = swapped;
  s = sl_wstate_new(&other);
  assert_int_equal(sl_wstate_shard_restore(s, 0, img, len, &err),
                   SL_ERR_CORRUPT);
  assert_non_null(strstr(err.msg, "(aggregate functions differ: "));
  sl_wstate_free(s);

  s = sl_wstate_new(&sp);
  size_t len1;
  const unsigned char *img1 = golden(1, &len1);
  assert_int_equal(sl_wstate_shard_restore(s, 1, img1, len1, &err), 0);
  assert_int_equal(sl_wstate_shard_restore(s, 1, img, len, &err),
                   SL_ERR_CORRUPT);
  assert_string_equal(err.msg, "window state shard 1: image is of shard 0");
  size_t held = sl_wstate_windows(s);
  assert_true(held > 0);

  unsigned char *b = copy_of(img, len);
  b[0] = 's';
  assert_int_equal(sl_wstate_shard_restore(s, 1, b, len, &err), SL_ERR_CORRUPT);
  assert_string_equal(err.msg,
                      "window state shard 1: not a window state image");
  memcpy(b, img, len);
  b[len - 1] ^= 0x10; /* the last literal: decodes, to other bytes */
  assert_int_equal(sl_wstate_shard_restore(s, 1, b, len, &err), SL_ERR_CORRUPT);
  assert_string_equal(err.msg, "window state shard 1: checksum mismatch");
  assert_int_equal(sl_wstate_shard_restore(s, 1, img, 10, &err),
                   SL_ERR_CORRUPT);
  assert_string_equal(err.msg,
                      "window state shard 1: truncated image (10 bytes)");
  assert_int_equal(sl_wstate_windows(s), held);
  free(b);
  sl_wstate_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seal_open_roundtrip),
      cmocka_unit_test(test_open_rejects),
      cmocka_unit_test(test_reader),
      cmocka_unit_test(test_def),
      cmocka_unit_test(test_golden_restore),
      cmocka_unit_test(test_golden_write),
      cmocka_unit_test(test_golden_rejects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
