/*
 * window.c - event-time window state: see window.h for the contract.
 *
 * Design in one paragraph: a group key is encoded once per record into a
 * compact canonical byte string (the "key blob", section "values"); the
 * hash of (window start, key blob) picks both the shard (its low bits)
 * and the home slot of the open-addressing tables (its high bits), so the
 * partial and the state agree on the shard of every entry without ever
 * rehashing. A partial keeps its entries in one table for the per-record
 * lookups plus one linked chain per shard, so merge_shard(k) walks exactly
 * the entries of shard k of every partial. The state is `shards`
 * independent tables; nothing mutable is shared between shards, so merges,
 * emits and snapshots of different shards run on different threads
 * without locks.
 *
 * Keys and equality. Group values and count_distinct values are encoded
 * canonically: a float with an integral value in the int64 range is
 * stored as that int (so 1 and 1.0 are one key, as sl_value_equal says),
 * NaNs are made one NaN, strings are copied, and SL_V_JSON values
 * (objects and arrays) are stored as a canonical JSON text (object
 * members sorted by name, numbers printed exactly), tagged apart from
 * strings: the string "[1]" and the array [1] are different keys, while
 * {"a":1,"b":2} and {"b":2,"a":1} are one key, as cJSON_Compare and
 * sl_value_equal say. They are output parsed back into JSON (members in
 * name order). Equality of two keys is equality of their encodings; this
 * agrees with sl_value_equal except for ints beyond 2^53 against floats,
 * where sl_value_equal rounds the int to a double and we compare exactly
 * (sl_value_equal is not transitive there; a key table must be).
 *
 * Order. Rows are sorted by window start, then by the group values field
 * by field in a total order that agrees with sl_value_cmp wherever that
 * is defined and exact: null < bools < numbers < strings < JSON, false <
 * true, numbers numerically and exactly (int against float without
 * rounding the int; NaN after every number), strings and JSON text
 * bytewise. Two different keys never compare equal, so a batch's output
 * order is fully determined.
 *
 * min/max across partials. A partial rejects a record whose min/max
 * argument cannot be compared with the partial's current value (number vs
 * string): SL_ERR_INVAL, nothing added. Different partials (or a partial
 * and the state) can still meet with different kinds; the merge then
 * uses the total order above (numbers < strings): min keeps the number,
 * max the string. That choice does not depend on the merge order.
 *
 * Memory. Partial entries live in an arena (no malloc per record; a new
 * key costs a bump allocation, only a new min/max string or distinct set
 * mallocs). State entries are one malloc each (entry header, aggregate
 * states and key blob together) so eviction can free them one by one.
 * Byte counts are estimates maintained incrementally per shard and
 * published through relaxed atomics, so sl_wstate_bytes may run while
 * shards are being merged.
 */
#include "window.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../checkpoint/snapshot.h"
#include "buf.h"
#include "log.h"
#include "util.h"

/* ------------------------------------------------------------ limits */

/* Event times are accepted in [-2^62, 2^62] ms and size and lateness are
 * at most 2^60 ms, so start, end, t - size and max_event - lateness never
 * overflow an int64 (2^62 ms is 146 million years). */
#define W_TIME_MAX    ((int64_t)1 << 62)
#define W_SPAN_MAX    ((int64_t)1 << 60)
#define W_MAX_WINDOWS 4096 /* ceil(size / slide): windows per record */
#define W_MAX_FIELDS  255  /* group keys, aggregates */
#define W_MAX_SHARDS  65536u
/* What malloc adds to a block, for the byte estimates. */
#define W_MALLOC_OVERHEAD 16

static const char *const agg_kind_names[] = {
    [SL_AGG_COUNT] = "count", [SL_AGG_SUM] = "sum",
    [SL_AGG_MIN] = "min",     [SL_AGG_MAX] = "max",
    [SL_AGG_AVG] = "avg",     [SL_AGG_COUNT_DISTINCT] = "count_distinct"};

/* ---------------------------------------------------------------- bytes */

/* Little-endian, as the snapshot format (checkpoint/snapshot.h) says, so
 * images and hashes (hence shard numbers) are the same on every host. */
static inline void st_u32(unsigned char *p, uint32_t v) {
  sl_snap_st_u32(p, v);
}

static inline uint32_t ld_u32(const unsigned char *p) {
  return sl_snap_ld_u32(p);
}

static inline uint64_t ld_u64(const unsigned char *p) {
  return sl_snap_ld_u64(p);
}

/* ---------------------------------------------------------------- hash */

static inline uint64_t rotl64(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

/* Final avalanche: every input bit affects every output bit, so low bits
 * (the shard) and high bits (the table slot) are independent. */
static inline uint64_t fmix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

/* Hash of a byte string, 8 bytes per step. Fixed seed on purpose: the
 * shard of a key must be the same in every process that restores it. */
static uint64_t hash_bytes(const unsigned char *p, size_t n) {
  const uint64_t k1 = 0x87c37b91114253d5ULL, k2 = 0x4cf5ad432745937fULL;
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
  for (; n >= 8; p += 8, n -= 8) {
    h ^= rotl64(ld_u64(p) * k1, 31) * k2;
    h = rotl64(h, 27) * 5 + 0x52dce729;
  }
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++)
    w |= (uint64_t)p[i] << (8 * i);
  h ^= rotl64(w * k1, 31) * k2;
  return fmix64(h);
}

/* The hash of an entry: its key blob's hash combined with its start. */
static inline uint64_t win_hash(uint64_t keyhash, int64_t start) {
  return fmix64(keyhash ^ ((uint64_t)start * 0x9e3779b97f4a7c15ULL));
}

/* -------------------------------------------------------------- values */

/* Encoded value: one tag byte, then 8 bytes (int, float bits) or a u32
 * length and the bytes (string, JSON text). */
enum { VT_NULL, VT_FALSE, VT_TRUE, VT_INT, VT_FLOAT, VT_STR, VT_JSON };

#define TWO63 9223372036854775808.0 /* int64 range is [-2^63, 2^63) */

/* Whether d is an integral value within the int64 range (false for NaN
 * and infinities), and that int. */
static bool float_is_int(double d, int64_t *i) {
  if (!(d >= -TWO63 && d < TWO63) || d != floor(d))
    return false;
  *i = (int64_t)d;
  return true;
}

static uint64_t float_bits(double d) {
  if (isnan(d))
    d = NAN; /* one NaN: all NaNs are one key */
  uint64_t u;
  memcpy(&u, &d, sizeof(u));
  return u;
}

/* A decoded value: strings and JSON text point into the encoding. */
struct dval {
  int t;
  int64_t i;
  double f;
  const unsigned char *s;
  size_t n;
};

/* An object member and its position, for sorting members by name. */
struct jmem {
  const cJSON *j;
  size_t pos;
};

static int jmem_cmp(const void *x, const void *y) {
  const struct jmem *a = x, *b = y;
  int c = strcmp(a->j->string ? a->j->string : "",
                 b->j->string ? b->j->string : "");
  if (c)
    return c;
  return (a->pos > b->pos) - (a->pos < b->pos); /* duplicate names */
}

static void json_put_str(struct sl_buf *b, const char *s) {
  sl_buf_put_u8(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      sl_buf_put_u8(b, '\\');
      sl_buf_put_u8(b, *p);
    } else if (*p < 0x20) {
      char e[8];
      int n = snprintf(e, sizeof(e), "\\u%04x", *p);
      sl_buf_add(b, e, (size_t)n);
    } else
      sl_buf_put_u8(b, *p);
  }
  sl_buf_put_u8(b, '"');
}

static void json_put_num(struct sl_buf *b, double d) {
  char t[40];
  int64_t i;
  int n;
  if (isnan(d) || isinf(d))
    n = snprintf(t, sizeof(t), "null"); /* as cJSON prints them */
  else if (float_is_int(d, &i))
    n = snprintf(t, sizeof(t), "%lld", (long long)i);
  else
    n = snprintf(t, sizeof(t), "%.17g", d); /* round-trips exactly */
  sl_buf_add(b, t, (size_t)n);
}

/* The canonical JSON text of j: object members sorted by name (then by
 * position, for duplicate names), numbers printed exactly, so that
 * objects equal under cJSON_Compare whatever their member order are one
 * key (numbers inside compare exactly here; cJSON_Compare allows an
 * epsilon). stk is scratch for the sorted members of the open objects:
 * no allocation once it has grown. Depth is bounded by the parser's
 * nesting limit (cJSON: 1000). */
static void json_canon(const cJSON *j, struct sl_buf *out, struct sl_buf *stk) {
  if (cJSON_IsArray(j)) {
    sl_buf_put_u8(out, '[');
    for (const cJSON *c = j->child; c; c = c->next) {
      if (c != j->child)
        sl_buf_put_u8(out, ',');
      json_canon(c, out, stk);
    }
    sl_buf_put_u8(out, ']');
  } else if (cJSON_IsObject(j)) {
    size_t base = stk->len, n = 0;
    for (const cJSON *c = j->child; c; c = c->next, n++) {
      struct jmem m = {c, n};
      sl_buf_add(stk, &m, sizeof(m));
    }
    if (n > 1)
      qsort(stk->p + base, n, sizeof(struct jmem), jmem_cmp);
    sl_buf_put_u8(out, '{');
    for (size_t i = 0; i < n; i++) {
      struct jmem m; /* copied out: the recursion may move stk */
      memcpy(&m, stk->p + base + i * sizeof(m), sizeof(m));
      if (i)
        sl_buf_put_u8(out, ',');
      json_put_str(out, m.j->string ? m.j->string : "");
      sl_buf_put_u8(out, ':');
      json_canon(m.j, out, stk);
    }
    sl_buf_put_u8(out, '}');
    sl_buf_setlen(stk, base);
  } else if (cJSON_IsString(j))
    json_put_str(out, j->valuestring ? j->valuestring : "");
  else if (cJSON_IsNumber(j))
    json_put_num(out, j->valuedouble);
  else if (cJSON_IsTrue(j))
    sl_buf_add(out, "true", 4);
  else if (cJSON_IsFalse(j))
    sl_buf_add(out, "false", 5);
  else if (cJSON_IsRaw(j) && j->valuestring)
    sl_buf_add(out, j->valuestring, strlen(j->valuestring));
  else
    sl_buf_add(out, "null", 4);
}

/* Appends v's canonical encoding to b; stk is scratch for JSON. */
static int enc_value(struct sl_buf *b, const struct sl_value *v,
                     struct sl_buf *stk, struct sl_error *err) {
  int64_t i;
  switch (v->type) {
  case SL_V_NULL:
    sl_buf_put_u8(b, VT_NULL);
    return 0;
  case SL_V_BOOL:
    sl_buf_put_u8(b, v->u.b ? VT_TRUE : VT_FALSE);
    return 0;
  case SL_V_INT:
    sl_buf_put_u8(b, VT_INT);
    sl_buf_put_u64(b, (uint64_t)v->u.i);
    return 0;
  case SL_V_FLOAT:
    if (float_is_int(v->u.f, &i)) {
      sl_buf_put_u8(b, VT_INT);
      sl_buf_put_u64(b, (uint64_t)i);
    } else {
      sl_buf_put_u8(b, VT_FLOAT);
      sl_buf_put_u64(b, float_bits(v->u.f));
    }
    return 0;
  case SL_V_STR:
    if (v->u.s.n > UINT32_MAX)
      return sl_error_set(err, SL_ERR_INVAL,
                          "a string of %zu bytes is too long for a group "
                          "key or a distinct value",
                          v->u.s.n);
    sl_buf_put_u8(b, VT_STR);
    sl_buf_put_u32(b, (uint32_t)v->u.s.n);
    sl_buf_add(b, v->u.s.p, v->u.s.n);
    return 0;
  case SL_V_JSON: {
    size_t at = b->len;
    sl_buf_put_u8(b, VT_JSON);
    sl_buf_put_u32(b, 0); /* the length, once known */
    sl_buf_reset(stk);
    json_canon(v->u.json, b, stk);
    size_t n = b->len - at - 5;
    if (n > UINT32_MAX) {
      sl_buf_setlen(b, at);
      return sl_error_set(err, SL_ERR_INVAL,
                          "a JSON value of %zu bytes is too long for a "
                          "group key or a distinct value",
                          n);
    }
    st_u32((unsigned char *)b->p + at + 1, (uint32_t)n);
    return 0;
  }
  }
  return sl_error_set(err, SL_ERR_INVAL, "unknown value type %d", (int)v->type);
}

/* Decodes one value at p (avail bytes): its length, or 0 when it is
 * truncated, has an unknown tag or is not canonical. Safe on garbage. */
static size_t dec_value(const unsigned char *p, size_t avail, struct dval *v) {
  if (avail < 1)
    return 0;
  v->t = p[0];
  switch (v->t) {
  case VT_NULL:
  case VT_FALSE:
  case VT_TRUE:
    return 1;
  case VT_INT:
    if (avail < 9)
      return 0;
    v->i = (int64_t)ld_u64(p + 1);
    return 9;
  case VT_FLOAT: {
    if (avail < 9)
      return 0;
    uint64_t u = ld_u64(p + 1);
    int64_t i;
    memcpy(&v->f, &u, sizeof(u));
    if (float_is_int(v->f, &i) || u != float_bits(v->f))
      return 0;
    return 9;
  }
  case VT_STR:
  case VT_JSON: {
    if (avail < 5)
      return 0;
    uint32_t n = ld_u32(p + 1);
    if (n > avail - 5)
      return 0;
    v->s = p + 5;
    v->n = n;
    return 5 + (size_t)n;
  }
  }
  return 0;
}

/* Length of a trusted encoding (our own memory). */
static size_t enc_len(const unsigned char *p) {
  struct dval v;
  return dec_value(p, SIZE_MAX, &v);
}

/* The canonical decoded form of a number or string value. */
static struct dval dval_of(const struct sl_value *v) {
  struct dval d = {.t = VT_NULL};
  switch (v->type) {
  case SL_V_INT:
    d.t = VT_INT;
    d.i = v->u.i;
    break;
  case SL_V_FLOAT:
    if (float_is_int(v->u.f, &d.i))
      d.t = VT_INT;
    else {
      d.t = VT_FLOAT;
      d.f = v->u.f;
    }
    break;
  case SL_V_STR:
    d.t = VT_STR;
    d.s = (const unsigned char *)v->u.s.p;
    d.n = v->u.s.n;
    break;
  default:
    break;
  }
  return d;
}

static int vt_rank(int t) {
  static const unsigned char rank[] = {
      [VT_NULL] = 0,  [VT_FALSE] = 1, [VT_TRUE] = 1, [VT_INT] = 2,
      [VT_FLOAT] = 2, [VT_STR] = 3,   [VT_JSON] = 4};
  return rank[t];
}

/* int against float, exactly: f is compared with i without rounding i
 * to a double. NaN sorts after every number. */
static int cmp_int_float(int64_t i, double f) {
  if (isnan(f) || f >= TWO63)
    return -1;
  if (f < -TWO63)
    return 1;
  double fl = floor(f); /* integral, in range: converts exactly */
  int64_t k = (int64_t)fl;
  if (i != k)
    return i < k ? -1 : 1;
  return fl == f ? 0 : -1; /* i == floor(f) < f */
}

static int cmp_float(double a, double b) {
  bool na = isnan(a), nb = isnan(b);
  if (na || nb)
    return (int)na - (int)nb;
  return (a > b) - (a < b);
}

static int cmp_bytes(const unsigned char *a, size_t an, const unsigned char *b,
                     size_t bn) {
  int c = memcmp(a, b, SL_MIN(an, bn));
  if (c)
    return c < 0 ? -1 : 1;
  return (an > bn) - (an < bn);
}

/* The total order of the file comment. */
static int dval_cmp(const struct dval *a, const struct dval *b) {
  int ra = vt_rank(a->t), rb = vt_rank(b->t);
  if (ra != rb)
    return ra < rb ? -1 : 1;
  switch (a->t) {
  case VT_NULL:
    return 0;
  case VT_FALSE:
  case VT_TRUE:
    return (a->t > b->t) - (a->t < b->t);
  case VT_INT:
    if (b->t == VT_INT)
      return (a->i > b->i) - (a->i < b->i);
    return cmp_int_float(a->i, b->f);
  case VT_FLOAT:
    if (b->t == VT_INT)
      return -cmp_int_float(b->i, a->f);
    return cmp_float(a->f, b->f);
  default:
    return cmp_bytes(a->s, a->n, b->s, b->n);
  }
}

/* A cJSON node of a decoded value; tmp is scratch for NUL-terminating. */
static cJSON *dval_to_json(const struct dval *v, struct sl_buf *tmp) {
  switch (v->t) {
  case VT_NULL:
    return cJSON_CreateNull();
  case VT_FALSE:
  case VT_TRUE:
    return cJSON_CreateBool(v->t == VT_TRUE);
  case VT_INT:
    return cJSON_CreateNumber((double)v->i);
  case VT_FLOAT:
    return cJSON_CreateNumber(v->f);
  case VT_JSON: {
    cJSON *j = cJSON_ParseWithLength((const char *)v->s, v->n);
    if (j)
      return j;
    break; /* cannot happen for text we printed; fall back to a string */
  }
  default:
    break;
  }
  sl_buf_reset(tmp);
  sl_buf_add(tmp, v->s, v->n);
  sl_buf_put_u8(tmp, 0);
  return cJSON_CreateString((const char *)tmp->p);
}

/* -------------------------------------------------------- distinct sets */

/* An exact set of encoded values: the values back to back in buf, and an
 * open-addressing index whose slots hold (24-bit hash tag, offset + 1). */
struct dset {
  uint64_t *slots; /* 0 = empty */
  unsigned char *buf;
  size_t n, cap; /* values, slots (a power of two) */
  size_t len, bcap;
};

#define DS_OFF_BITS 40
#define DS_OFF_MASK (((uint64_t)1 << DS_OFF_BITS) - 1)

static size_t dset_heap(const struct dset *d) {
  if (!d)
    return 0;
  return 3 * W_MALLOC_OVERHEAD + sizeof(*d) + d->cap * sizeof(uint64_t) +
         d->bcap;
}

static struct dset *dset_new(void) {
  struct dset *d = sl_calloc(1, sizeof(*d));
  d->cap = 8;
  d->slots = sl_calloc(d->cap, sizeof(uint64_t));
  return d;
}

static void dset_free(struct dset *d) {
  if (!d)
    return;
  free(d->slots);
  free(d->buf);
  free(d);
}

static void dset_place(uint64_t *slots, size_t cap, uint64_t h, uint64_t s) {
  size_t i = (size_t)h & (cap - 1);
  while (slots[i])
    i = (i + 1) & (cap - 1);
  slots[i] = s;
}

static void dset_grow(struct dset *d) {
  size_t cap = d->cap * 2;
  uint64_t *slots = sl_calloc(cap, sizeof(uint64_t));
  for (size_t i = 0; i < d->cap; i++) {
    uint64_t s = d->slots[i];
    if (!s)
      continue;
    const unsigned char *v = d->buf + ((s & DS_OFF_MASK) - 1);
    dset_place(slots, cap, hash_bytes(v, enc_len(v)), s);
  }
  free(d->slots);
  d->slots = slots;
  d->cap = cap;
}

/* Adds the encoded value v (hash h) unless present; whether it was new. */
static bool dset_add(struct dset *d, const unsigned char *v, size_t vlen,
                     uint64_t h) {
  if ((d->n + 1) * 10 > d->cap * 7)
    dset_grow(d);
  uint64_t tag = h >> DS_OFF_BITS;
  size_t mask = d->cap - 1, i = (size_t)h & mask;
  for (uint64_t s; (s = d->slots[i]); i = (i + 1) & mask) {
    if (s >> DS_OFF_BITS != tag)
      continue;
    const unsigned char *w = d->buf + ((s & DS_OFF_MASK) - 1);
    if (enc_len(w) == vlen && !memcmp(w, v, vlen))
      return false;
  }
  if (d->len + vlen >= DS_OFF_MASK) {
    sl_error_log("count_distinct: a set holds more than 1 TB");
    abort();
  }
  if (d->bcap - d->len < vlen) {
    size_t bcap = d->bcap ? d->bcap : 32;
    while (bcap - d->len < vlen)
      bcap *= 2;
    d->buf = sl_realloc(d->buf, bcap);
    d->bcap = bcap;
  }
  memcpy(d->buf + d->len, v, vlen);
  d->slots[i] = tag << DS_OFF_BITS | (uint64_t)(d->len + 1);
  d->len += vlen;
  d->n++;
  return true;
}

static struct dset *dset_copy(const struct dset *s) {
  struct dset *d = sl_malloc(sizeof(*d));
  *d = *s;
  d->slots = sl_malloc(s->cap * sizeof(uint64_t));
  memcpy(d->slots, s->slots, s->cap * sizeof(uint64_t));
  d->buf = NULL;
  if (s->bcap) {
    d->buf = sl_malloc(s->bcap);
    memcpy(d->buf, s->buf, s->len);
  }
  return d;
}

static void dset_union(struct dset *d, const struct dset *s) {
  for (size_t off = 0; off < s->len;) {
    const unsigned char *v = s->buf + off;
    size_t l = enc_len(v);
    dset_add(d, v, l, hash_bytes(v, l));
    off += l;
  }
}

/* ---------------------------------------------------------- aggregates */

/* The state of one aggregate of one entry. t is the kind of value held:
 * sum: VT_NULL (no input yet), VT_INT (exact) or VT_FLOAT; min/max:
 * VT_NULL, VT_INT, VT_FLOAT or VT_STR (u.s owned, NUL-terminated, length
 * n). count uses u.i, avg u.f (sum) and n (inputs), count_distinct u.set
 * (NULL while empty). */
struct agg {
  union {
    int64_t i;
    double f;
    char *s;
    struct dset *set;
  } u;
  int64_t n;
  uint8_t t;
};

/* Heap bytes an aggregate owns, for the estimates. */
static size_t agg_heap(enum sl_agg_kind k, const struct agg *a) {
  if ((k == SL_AGG_MIN || k == SL_AGG_MAX) && a->t == VT_STR)
    return (size_t)a->n + 1 + W_MALLOC_OVERHEAD;
  if (k == SL_AGG_COUNT_DISTINCT)
    return dset_heap(a->u.set);
  return 0;
}

static bool agg_has_heap(enum sl_agg_kind k) {
  return k == SL_AGG_MIN || k == SL_AGG_MAX || k == SL_AGG_COUNT_DISTINCT;
}

static void agg_free(enum sl_agg_kind k, struct agg *a) {
  if ((k == SL_AGG_MIN || k == SL_AGG_MAX) && a->t == VT_STR)
    free(a->u.s);
  else if (k == SL_AGG_COUNT_DISTINCT)
    dset_free(a->u.set);
  a->t = VT_NULL;
  a->u.i = 0;
}

/* After a bitwise copy, gives a its own copies of what it points to. */
static void agg_own(enum sl_agg_kind k, struct agg *a) {
  if ((k == SL_AGG_MIN || k == SL_AGG_MAX) && a->t == VT_STR) {
    char *s = sl_malloc((size_t)a->n + 1);
    memcpy(s, a->u.s, (size_t)a->n + 1);
    a->u.s = s;
  } else if (k == SL_AGG_COUNT_DISTINCT && a->u.set)
    a->u.set = dset_copy(a->u.set);
}

static void sum_add(struct agg *a, int t, int64_t i, double f) {
  switch (a->t) {
  case VT_NULL:
    a->t = (uint8_t)t;
    if (t == VT_INT)
      a->u.i = i;
    else
      a->u.f = f;
    return;
  case VT_INT: {
    int64_t r;
    double d;
    if (t == VT_INT) {
      if (!__builtin_add_overflow(a->u.i, i, &r)) {
        a->u.i = r;
        return;
      }
      d = (double)a->u.i + (double)i; /* exact int no longer fits */
    } else
      d = (double)a->u.i + f;
    a->t = VT_FLOAT;
    a->u.f = d;
    return;
  }
  default:
    a->u.f += t == VT_INT ? (double)i : f;
    return;
  }
}

static struct dval mm_dval(const struct agg *a) {
  struct dval d = {.t = a->t};
  if (a->t == VT_INT)
    d.i = a->u.i;
  else if (a->t == VT_FLOAT)
    d.f = a->u.f;
  else if (a->t == VT_STR) {
    d.s = (const unsigned char *)a->u.s;
    d.n = (size_t)a->n;
  }
  return d;
}

/* Whether a min/max holding a can take v: both numbers or both strings. */
static bool mm_compatible(const struct agg *a, const struct dval *v) {
  if (a->t == VT_NULL)
    return true;
  return (a->t == VT_STR) == (v->t == VT_STR);
}

static void mm_set(struct agg *a, const struct dval *v) {
  if (v->t == VT_STR) {
    a->u.s = sl_realloc(a->t == VT_STR ? a->u.s : NULL, v->n + 1);
    memcpy(a->u.s, v->s, v->n);
    a->u.s[v->n] = '\0';
    a->n = (int64_t)v->n;
  } else {
    if (a->t == VT_STR)
      free(a->u.s);
    if (v->t == VT_INT)
      a->u.i = v->i;
    else
      a->u.f = v->f;
    a->n = 0;
  }
  a->t = (uint8_t)v->t;
}

/* Keeps the smaller (is_min) or larger of a and v by the total order;
 * on a tie the value already held stays. */
static void mm_update(struct agg *a, const struct dval *v, bool is_min) {
  if (a->t != VT_NULL) {
    struct dval cur = mm_dval(a);
    int c = dval_cmp(v, &cur);
    if (is_min ? c >= 0 : c <= 0)
      return;
  }
  mm_set(a, v);
}

/* Folds src into dst (same kind). */
static void agg_merge(enum sl_agg_kind k, struct agg *dst,
                      const struct agg *src) {
  switch (k) {
  case SL_AGG_COUNT:
    dst->u.i += src->u.i;
    return;
  case SL_AGG_SUM:
    if (src->t != VT_NULL)
      sum_add(dst, src->t, src->t == VT_INT ? src->u.i : 0,
              src->t == VT_FLOAT ? src->u.f : 0);
    return;
  case SL_AGG_AVG:
    dst->u.f += src->u.f;
    dst->n += src->n;
    return;
  case SL_AGG_MIN:
  case SL_AGG_MAX:
    if (src->t != VT_NULL) {
      struct dval v = mm_dval(src);
      mm_update(dst, &v, k == SL_AGG_MIN);
    }
    return;
  case SL_AGG_COUNT_DISTINCT:
    if (!src->u.set)
      return;
    if (!dst->u.set)
      dst->u.set = dset_copy(src->u.set);
    else
      dset_union(dst->u.set, src->u.set);
    return;
  }
}

static cJSON *agg_to_json(enum sl_agg_kind k, const struct agg *a) {
  switch (k) {
  case SL_AGG_COUNT:
    return cJSON_CreateNumber((double)a->u.i);
  case SL_AGG_SUM:
    if (a->t == VT_NULL)
      return cJSON_CreateNull();
    return cJSON_CreateNumber(a->t == VT_INT ? (double)a->u.i : a->u.f);
  case SL_AGG_AVG:
    if (!a->n)
      return cJSON_CreateNull();
    return cJSON_CreateNumber(a->u.f / (double)a->n);
  case SL_AGG_MIN:
  case SL_AGG_MAX:
    switch (a->t) {
    case VT_INT:
      return cJSON_CreateNumber((double)a->u.i);
    case VT_FLOAT:
      return cJSON_CreateNumber(a->u.f);
    case VT_STR:
      return cJSON_CreateString(a->u.s);
    default:
      return cJSON_CreateNull();
    }
  case SL_AGG_COUNT_DISTINCT:
    return cJSON_CreateNumber(a->u.set ? (double)a->u.set->n : 0);
  }
  return cJSON_CreateNull();
}

/* ------------------------------------------------- entries and tables */

/* One (window, group key): header, naggs aggregate states, key blob. */
struct went {
  struct went *next; /* partial: its shard's chain; state: changed list */
  uint64_t hash;     /* win_hash(start, key): shard = hash & (shards-1) */
  int64_t start;
  uint32_t keylen;
  bool changed; /* state: on the changed list */
  struct agg aggs[];
};

static inline size_t went_size(size_t naggs, size_t keylen) {
  return offsetof(struct went, aggs) + naggs * sizeof(struct agg) + keylen;
}

static inline unsigned char *went_key(struct went *e, size_t naggs) {
  return (unsigned char *)(e->aggs + naggs);
}

static inline const unsigned char *went_ckey(const struct went *e,
                                             size_t naggs) {
  return (const unsigned char *)(e->aggs + naggs);
}

/* Open addressing with linear probing, load <= 0.7. The home slot comes
 * from the hash's HIGH bits: in a state shard every hash has the same low
 * bits (the shard number), so low bits would pile all keys together. */
struct wslot {
  uint64_t hash;
  struct went *e; /* NULL = empty */
};

struct wtable {
  struct wslot *slots;
  size_t cap, n; /* cap = 2^bits, 0 before the first insert */
  unsigned bits;
};

static struct wslot *wt_find(const struct wtable *t, uint64_t h, int64_t start,
                             const unsigned char *key, uint32_t klen,
                             size_t naggs) {
  size_t mask = t->cap - 1;
  for (size_t i = (size_t)(h >> (64 - t->bits));; i = (i + 1) & mask) {
    struct wslot *sl = &t->slots[i];
    if (!sl->e)
      return sl;
    if (sl->hash == h && sl->e->start == start && sl->e->keylen == klen &&
        !memcmp(went_ckey(sl->e, naggs), key, klen))
      return sl;
  }
}

/* Puts an entry known to be absent (resizes, rebuilds): no comparisons.
 * Does not count it. */
static void wt_put_new(struct wtable *t, struct wslot s) {
  size_t mask = t->cap - 1, i = (size_t)(s.hash >> (64 - t->bits));
  while (t->slots[i].e)
    i = (i + 1) & mask;
  t->slots[i] = s;
}

static void wt_resize(struct wtable *t, unsigned bits) {
  struct wtable nt = {.cap = (size_t)1 << bits, .n = t->n, .bits = bits};
  nt.slots = sl_calloc(nt.cap, sizeof(*nt.slots));
  for (size_t i = 0; i < t->cap; i++)
    if (t->slots[i].e)
      wt_put_new(&nt, t->slots[i]);
  free(t->slots);
  *t = nt;
}

static unsigned wt_bits_for(size_t n) {
  unsigned bits = 3;
  while ((((size_t)1 << bits) * 7) < n * 10)
    bits++;
  return bits;
}

/* Makes room for extra more entries without a resize. */
static inline void wt_reserve(struct wtable *t, size_t extra) {
  size_t need = t->n + extra;
  if (t->cap && need * 10 <= t->cap * 7)
    return;
  wt_resize(t, SL_MAX(wt_bits_for(need), t->bits));
}

static void wt_free(struct wtable *t) {
  free(t->slots);
  *t = (struct wtable){0};
}

/* ---------------------------------------------------------------- spec */

/* An owned copy of a window spec. */
struct wspec {
  struct sl_window_spec s; /* its pointers point into the copies below */
  char **gnames, **anames;
  enum sl_agg_kind *kinds;
  size_t maxwin; /* windows per record at most: ceil(size / slide) */
  bool has_mm;   /* some min/max: add checks the kinds */
  bool has_heap; /* some aggregate may own heap memory (min/max/distinct) */
};

int sl_window_spec_check(const struct sl_window_spec *spec,
                         struct sl_error *err) {
  if (!spec)
    return sl_error_set(err, SL_ERR_INVAL, "window: no spec");
  if (spec->size_ms <= 0 || spec->size_ms > W_SPAN_MAX)
    return sl_error_set(err, SL_ERR_INVAL,
                        "window: size must be in 1..2^60 ms, got %lld",
                        (long long)spec->size_ms);
  if (spec->slide_ms <= 0 || spec->slide_ms > spec->size_ms)
    return sl_error_set(err, SL_ERR_INVAL,
                        "window: slide must be in 1..size (%lld) ms, got %lld",
                        (long long)spec->size_ms, (long long)spec->slide_ms);
  int64_t nwin = (spec->size_ms + spec->slide_ms - 1) / spec->slide_ms;
  if (nwin > W_MAX_WINDOWS)
    return sl_error_set(err, SL_ERR_INVAL,
                        "window: size / slide = %lld windows per record; at "
                        "most %d are supported",
                        (long long)nwin, W_MAX_WINDOWS);
  if (spec->lateness_ms < 0 || spec->lateness_ms > W_SPAN_MAX)
    return sl_error_set(err, SL_ERR_INVAL,
                        "window: lateness must be in 0..2^60 ms, got %lld",
                        (long long)spec->lateness_ms);
  if (spec->mode != SL_WINDOW_UPDATE && spec->mode != SL_WINDOW_APPEND &&
      spec->mode != SL_WINDOW_MERGE)
    return sl_error_set(err, SL_ERR_INVAL, "window: unknown output mode %d",
                        (int)spec->mode);
  if (spec->ngroups > W_MAX_FIELDS || spec->naggs > W_MAX_FIELDS)
    return sl_error_set(err, SL_ERR_INVAL,
                        "window: at most %d group keys and %d aggregates",
                        W_MAX_FIELDS, W_MAX_FIELDS);
  for (size_t g = 0; g < spec->ngroups; g++)
    if (!spec->group_names || !spec->group_names[g])
      return sl_error_set(err, SL_ERR_INVAL,
                          "window: group key %zu has no "
                          "name",
                          g);
  for (size_t a = 0; a < spec->naggs; a++) {
    if (!spec->agg_names || !spec->agg_names[a] || !spec->agg_kinds)
      return sl_error_set(err, SL_ERR_INVAL,
                          "window: aggregate %zu has no name or kind", a);
    if ((unsigned)spec->agg_kinds[a] > SL_AGG_COUNT_DISTINCT)
      return sl_error_set(err, SL_ERR_INVAL,
                          "window: aggregate %s has unknown kind %d",
                          spec->agg_names[a], (int)spec->agg_kinds[a]);
  }
  if (!spec->shards || spec->shards > W_MAX_SHARDS ||
      (spec->shards & (spec->shards - 1)))
    return sl_error_set(err, SL_ERR_INVAL,
                        "window: shards must be a power of two in 1..%u, "
                        "got %u",
                        W_MAX_SHARDS, spec->shards);
  return 0;
}

static void spec_copy(struct wspec *d, const struct sl_window_spec *s) {
  d->s = *s;
  d->gnames = sl_calloc(s->ngroups + 1, sizeof(char *));
  d->anames = sl_calloc(s->naggs + 1, sizeof(char *));
  d->kinds = sl_calloc(s->naggs + 1, sizeof(enum sl_agg_kind));
  for (size_t g = 0; g < s->ngroups; g++)
    d->gnames[g] = sl_strdup(s->group_names[g]);
  for (size_t a = 0; a < s->naggs; a++) {
    d->anames[a] = sl_strdup(s->agg_names[a]);
    d->kinds[a] = s->agg_kinds[a];
    if (d->kinds[a] == SL_AGG_MIN || d->kinds[a] == SL_AGG_MAX)
      d->has_mm = true;
    if (agg_has_heap(d->kinds[a]))
      d->has_heap = true;
  }
  d->s.group_names = (const char *const *)d->gnames;
  d->s.agg_names = (const char *const *)d->anames;
  d->s.agg_kinds = d->kinds;
  d->maxwin = (size_t)((s->size_ms + s->slide_ms - 1) / s->slide_ms);
}

static void spec_free(struct wspec *d) {
  for (size_t g = 0; g < d->s.ngroups; g++)
    free(d->gnames[g]);
  for (size_t a = 0; a < d->s.naggs; a++)
    free(d->anames[a]);
  free(d->gnames);
  free(d->anames);
  free(d->kinds);
}

static void entry_free_aggs(const struct wspec *sp, struct went *e) {
  for (size_t a = 0; a < sp->s.naggs; a++)
    agg_free(sp->kinds[a], &e->aggs[a]);
}

/* ---------------------------------------------------------- the partial */

struct sl_wpartial {
  struct wspec spec;
  struct wtable tab;
  struct went **chain;   /* per shard: that shard's entries */
  size_t *nchain;        /* per shard: their number */
  struct sl_arena arena; /* the entries */
  /* per-record scratch, reused so that add does not allocate */
  struct sl_buf key, dv, js; /* key blob, distinct values, JSON scratch */
  size_t *dvoff;             /* per aggregate: offset in dv, SIZE_MAX = none */
  uint64_t *dvhash;          /* per aggregate: hash of that value */
  int64_t *starts;           /* per window of the record */
  uint64_t *hashes;
  struct went **hits;
  int64_t max_event;
};

struct sl_wpartial *sl_wpartial_new(const struct sl_window_spec *spec) {
  if (sl_window_spec_check(spec, NULL))
    return NULL;
  struct sl_wpartial *p = sl_calloc(1, sizeof(*p));
  spec_copy(&p->spec, spec);
  p->chain = sl_calloc(spec->shards, sizeof(*p->chain));
  p->nchain = sl_calloc(spec->shards, sizeof(*p->nchain));
  p->dvoff = sl_calloc(spec->naggs + 1, sizeof(*p->dvoff));
  p->dvhash = sl_calloc(spec->naggs + 1, sizeof(*p->dvhash));
  p->starts = sl_calloc(p->spec.maxwin, sizeof(*p->starts));
  p->hashes = sl_calloc(p->spec.maxwin, sizeof(*p->hashes));
  p->hits = sl_calloc(p->spec.maxwin, sizeof(*p->hits));
  wt_reserve(&p->tab, 16);
  sl_buf_reserve(&p->key, 64); /* never NULL, even for an empty key */
  p->max_event = INT64_MIN;
  return p;
}

void sl_wpartial_free(struct sl_wpartial *p) {
  if (!p)
    return;
  /* Entries live in the arena; only what aggregates own is freed one by
   * one (and the walk, a cache miss per entry, is skipped when none can). */
  for (unsigned k = 0; p->spec.has_heap && k < p->spec.s.shards; k++)
    for (struct went *e = p->chain[k]; e; e = e->next)
      entry_free_aggs(&p->spec, e);
  wt_free(&p->tab);
  sl_arena_free(&p->arena);
  sl_buf_free(&p->key);
  sl_buf_free(&p->dv);
  sl_buf_free(&p->js);
  free(p->chain);
  free(p->nchain);
  free(p->dvoff);
  free(p->dvhash);
  free(p->starts);
  free(p->hashes);
  free(p->hits);
  spec_free(&p->spec);
  free(p);
}

int64_t sl_wpartial_max_event(const struct sl_wpartial *p) {
  return p->max_event;
}

size_t sl_wpartial_keys(const struct sl_wpartial *p) {
  return p->tab.n;
}

static inline int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Checks each aggregate argument; encodes the count_distinct ones. */
static int check_args(struct sl_wpartial *p, const struct sl_value *args,
                      struct sl_error *err) {
  const struct wspec *sp = &p->spec;
  sl_buf_reset(&p->dv);
  for (size_t a = 0; a < sp->s.naggs; a++) {
    p->dvoff[a] = SIZE_MAX;
    enum sl_agg_kind k = sp->kinds[a];
    if (k == SL_AGG_COUNT)
      continue;
    const struct sl_value *v = args ? &args[a] : &SL_NULL;
    if (v->type == SL_V_NULL)
      continue;
    switch (k) {
    case SL_AGG_SUM:
    case SL_AGG_AVG:
      if (v->type != SL_V_INT && v->type != SL_V_FLOAT)
        return sl_error_set(err, SL_ERR_INVAL,
                            "%s: %s() needs a number, "
                            "got %s",
                            sp->anames[a], agg_kind_names[k], sl_vtype_name(v));
      break;
    case SL_AGG_MIN:
    case SL_AGG_MAX:
      if (v->type != SL_V_INT && v->type != SL_V_FLOAT && v->type != SL_V_STR)
        return sl_error_set(err, SL_ERR_INVAL,
                            "%s: %s() needs a number or a string, got %s",
                            sp->anames[a], agg_kind_names[k], sl_vtype_name(v));
      break;
    case SL_AGG_COUNT_DISTINCT: {
      size_t off = p->dv.len;
      int rc = enc_value(&p->dv, v, &p->js, err);
      if (rc)
        return rc;
      p->dvoff[a] = off;
      p->dvhash[a] =
          hash_bytes((const unsigned char *)p->dv.p + off, p->dv.len - off);
      break;
    }
    default:
      break;
    }
  }
  return 0;
}

/* The min/max arguments against the entries already there: a number and
 * a string cannot be compared (the record is refused as a whole). */
static int check_minmax(struct sl_wpartial *p, size_t nw,
                        const struct sl_value *args, struct sl_error *err) {
  const struct wspec *sp = &p->spec;
  for (size_t w = 0; w < nw; w++) {
    struct went *e = p->hits[w];
    if (!e)
      continue;
    for (size_t a = 0; a < sp->s.naggs; a++) {
      enum sl_agg_kind k = sp->kinds[a];
      if ((k != SL_AGG_MIN && k != SL_AGG_MAX) || !args ||
          args[a].type == SL_V_NULL)
        continue;
      struct dval v = dval_of(&args[a]);
      if (!mm_compatible(&e->aggs[a], &v))
        return sl_error_set(err, SL_ERR_INVAL,
                            "%s: %s() cannot compare %s with the %s values "
                            "before it",
                            sp->anames[a], agg_kind_names[k],
                            sl_vtype_name(&args[a]),
                            e->aggs[a].t == VT_STR ? "string" : "number");
    }
  }
  return 0;
}

static void agg_add(struct sl_wpartial *p, size_t a, struct agg *g,
                    const struct sl_value *v) {
  enum sl_agg_kind k = p->spec.kinds[a];
  if (k == SL_AGG_COUNT) {
    g->u.i++;
    return;
  }
  if (v->type == SL_V_NULL)
    return;
  switch (k) {
  case SL_AGG_SUM:
    if (v->type == SL_V_INT)
      sum_add(g, VT_INT, v->u.i, 0);
    else
      sum_add(g, VT_FLOAT, 0, v->u.f);
    return;
  case SL_AGG_AVG:
    g->u.f += v->type == SL_V_INT ? (double)v->u.i : v->u.f;
    g->n++;
    return;
  case SL_AGG_MIN:
  case SL_AGG_MAX: {
    struct dval d = dval_of(v);
    mm_update(g, &d, k == SL_AGG_MIN);
    return;
  }
  case SL_AGG_COUNT_DISTINCT: {
    if (!g->u.set)
      g->u.set = dset_new();
    const unsigned char *b = (const unsigned char *)p->dv.p + p->dvoff[a];
    dset_add(g->u.set, b, enc_len(b), p->dvhash[a]);
    return;
  }
  default:
    return;
  }
}

/* @locality the partial's thread; the hot path: per record, one key
 * encoding and one table probe per window; allocation only for a new
 * (window, key) (arena bump) or a new min/max string / distinct value. */
int sl_wpartial_add(struct sl_wpartial *p, int64_t event_ms,
                    const struct sl_value *groups, const struct sl_value *args,
                    int64_t watermark, struct sl_error *err) {
  const struct wspec *sp = &p->spec;
  size_t naggs = sp->s.naggs;
  int rc = check_args(p, args, err);
  if (rc)
    return rc;
  if (event_ms < -W_TIME_MAX || event_ms > W_TIME_MAX)
    return sl_error_set(err, SL_ERR_INVAL, "event time %lld ms is out of range",
                        (long long)event_ms);
  sl_buf_reset(&p->key);
  for (size_t g = 0; g < sp->s.ngroups; g++) {
    rc = enc_value(&p->key, &groups[g], &p->js, err);
    if (rc)
      return rc;
  }
  if (p->key.len > UINT32_MAX)
    return sl_error_set(err, SL_ERR_INVAL,
                        "group key of %zu bytes is too "
                        "long",
                        p->key.len);
  uint32_t klen = (uint32_t)p->key.len;
  /* The windows, latest first: starts are the multiples of slide in
   * (t - size, t]; those ending at or before the watermark are closed. */
  int64_t size = sp->s.size_ms, slide = sp->s.slide_ms;
  size_t nw = 0;
  for (int64_t st = floor_div(event_ms, slide) * slide; st > event_ms - size;
       st -= slide) {
    if (st + size <= watermark)
      break;
    p->starts[nw++] = st;
  }
  if (!nw)
    return 1;
  uint64_t kh = hash_bytes((const unsigned char *)p->key.p, klen);
  for (size_t w = 0; w < nw; w++) {
    p->hashes[w] = win_hash(kh, p->starts[w]);
    p->hits[w] = wt_find(&p->tab, p->hashes[w], p->starts[w],
                         (const unsigned char *)p->key.p, klen, naggs)
                     ->e;
  }
  if (sp->has_mm && (rc = check_minmax(p, nw, args, err)))
    return rc;
  /* Nothing can fail from here on. */
  for (size_t w = 0; w < nw; w++) {
    struct went *e = p->hits[w];
    if (!e) {
      wt_reserve(&p->tab, 1);
      struct wslot *sl = wt_find(&p->tab, p->hashes[w], p->starts[w],
                                 (const unsigned char *)p->key.p, klen, naggs);
      e = sl_arena_alloc(&p->arena, went_size(naggs, klen));
      memset(e, 0, went_size(naggs, 0));
      e->hash = p->hashes[w];
      e->start = p->starts[w];
      e->keylen = klen;
      memcpy(went_key(e, naggs), p->key.p, klen);
      sl->hash = e->hash;
      sl->e = e;
      p->tab.n++;
      unsigned k = (unsigned)(e->hash & (sp->s.shards - 1));
      e->next = p->chain[k];
      p->chain[k] = e;
      p->nchain[k]++;
    }
    for (size_t a = 0; a < naggs; a++)
      agg_add(p, a, &e->aggs[a], args ? &args[a] : &SL_NULL);
  }
  if (event_ms > p->max_event)
    p->max_event = event_ms;
  return 0;
}

/* ------------------------------------------------------------ the state */

/* One shard: touched by one thread at a time. Aligned to a cache line so
 * that threads working on neighbouring shards do not share lines. */
struct wshard {
  _Alignas(64) struct wtable tab;
  struct went *changed; /* entries changed in this batch */
  int64_t min_start;    /* smallest start held (meaningless when empty) */
  size_t ebytes;        /* entries and what they own, estimated */
  bool dirty;
  /* copies for readers on other threads (sl_wstate_windows/bytes) */
  _Atomic size_t pub_n, pub_bytes;
};

struct sl_wstate {
  struct wspec spec;
  int64_t max_event, watermark;
  struct wshard *shards;
};

static size_t entry_bytes(const struct wspec *sp, const struct went *e) {
  size_t b = W_MALLOC_OVERHEAD + went_size(sp->s.naggs, e->keylen);
  for (size_t a = 0; a < sp->s.naggs; a++)
    b += agg_heap(sp->kinds[a], &e->aggs[a]);
  return b;
}

static void entry_free(const struct wspec *sp, struct went *e) {
  entry_free_aggs(sp, e);
  free(e);
}

static void shard_publish(struct wshard *sh) {
  atomic_store_explicit(&sh->pub_n, sh->tab.n, memory_order_relaxed);
  atomic_store_explicit(&sh->pub_bytes,
                        sh->ebytes + sh->tab.cap * sizeof(struct wslot),
                        memory_order_relaxed);
}

/* Frees every entry of the shard and empties it. */
static void shard_clear(const struct wspec *sp, struct wshard *sh) {
  for (size_t i = 0; i < sh->tab.cap; i++)
    if (sh->tab.slots[i].e)
      entry_free(sp, sh->tab.slots[i].e);
  wt_free(&sh->tab);
  sh->changed = NULL;
  sh->min_start = INT64_MAX;
  sh->ebytes = 0;
}

#ifdef SL_DEBUG_INVARIANTS
/* O(entries): every entry in its shard, counted, its start >= min_start,
 * and the changed list exactly the entries marked changed. */
static void shard_check(const struct sl_wstate *s, const struct wshard *sh,
                        unsigned shard) {
  size_t n = 0, nchanged = 0, bytes = 0;
  const struct wspec *sp = &s->spec;
  for (size_t i = 0; i < sh->tab.cap; i++) {
    const struct went *e = sh->tab.slots[i].e;
    if (!e)
      continue;
    n++;
    nchanged += e->changed;
    bytes += entry_bytes(sp, e);
    if ((e->hash & (sp->s.shards - 1)) != shard ||
        e->hash != sh->tab.slots[i].hash || e->start < sh->min_start) {
      sl_error_log("window: shard %u: entry invariant broken", shard);
      abort();
    }
  }
  for (const struct went *e = sh->changed; e; e = e->next) {
    if (!e->changed) {
      sl_error_log("window: shard %u: changed list invariant", shard);
      abort();
    }
    nchanged--;
  }
  if (n != sh->tab.n || nchanged || bytes != sh->ebytes) {
    sl_error_log("window: shard %u: %zu entries counted, %zu held, bytes "
                 "%zu vs %zu",
                 shard, n, sh->tab.n, bytes, sh->ebytes);
    abort();
  }
}
#else
static inline void shard_check(const struct sl_wstate *s,
                               const struct wshard *sh, unsigned shard) {
  (void)s, (void)sh, (void)shard;
}
#endif

struct sl_wstate *sl_wstate_new(const struct sl_window_spec *spec) {
  if (sl_window_spec_check(spec, NULL))
    return NULL;
  struct sl_wstate *s = sl_calloc(1, sizeof(*s));
  spec_copy(&s->spec, spec);
  size_t sz = spec->shards * sizeof(struct wshard);
  s->shards = aligned_alloc(_Alignof(struct wshard), sz);
  if (!s->shards) {
    sl_error_log("out of memory (%zu bytes)", sz);
    abort();
  }
  memset(s->shards, 0, sz);
  for (unsigned k = 0; k < spec->shards; k++) {
    s->shards[k].min_start = INT64_MAX;
    shard_publish(&s->shards[k]);
  }
  s->max_event = INT64_MIN;
  s->watermark = SL_WINDOW_NO_WATERMARK;
  return s;
}

void sl_wstate_free(struct sl_wstate *s) {
  if (!s)
    return;
  for (unsigned k = 0; k < s->spec.s.shards; k++)
    shard_clear(&s->spec, &s->shards[k]);
  free(s->shards);
  spec_free(&s->spec);
  free(s);
}

const struct sl_window_spec *sl_wstate_spec(const struct sl_wstate *s) {
  return &s->spec.s;
}

int64_t sl_wstate_watermark(const struct sl_wstate *s) {
  return s->watermark;
}

int64_t sl_wstate_max_event(const struct sl_wstate *s) {
  return s->max_event;
}

void sl_wstate_set_times(struct sl_wstate *s, int64_t max_event,
                         int64_t watermark) {
  s->max_event = max_event;
  s->watermark = watermark;
}

/* Folds one partial entry into the shard (per key: one probe; a new key
 * costs one malloc and copies of what its aggregates own). */
static void merge_entry(const struct wspec *sp, struct wshard *sh,
                        const struct went *pe) {
  size_t naggs = sp->s.naggs;
  wt_reserve(&sh->tab, 1);
  struct wslot *sl = wt_find(&sh->tab, pe->hash, pe->start,
                             went_ckey(pe, naggs), pe->keylen, naggs);
  struct went *e = sl->e;
  if (!e) {
    size_t sz = went_size(naggs, pe->keylen);
    e = sl_malloc(sz);
    memcpy(e, pe, sz);
    e->next = NULL;
    e->changed = false;
    for (size_t a = 0; a < naggs; a++)
      agg_own(sp->kinds[a], &e->aggs[a]);
    sl->hash = e->hash;
    sl->e = e;
    sh->tab.n++;
    if (e->start < sh->min_start)
      sh->min_start = e->start;
    sh->ebytes += entry_bytes(sp, e);
  } else {
    for (size_t a = 0; a < naggs; a++) {
      enum sl_agg_kind k = sp->kinds[a];
      if (agg_has_heap(k)) {
        size_t before = agg_heap(k, &e->aggs[a]);
        agg_merge(k, &e->aggs[a], &pe->aggs[a]);
        sh->ebytes = sh->ebytes - before + agg_heap(k, &e->aggs[a]);
      } else
        agg_merge(k, &e->aggs[a], &pe->aggs[a]);
    }
  }
  if (!e->changed) {
    e->changed = true;
    e->next = sh->changed;
    sh->changed = e;
  }
}

/* @locality one thread per shard: touches only shards[shard] and reads
 * the partials (whose chains for this shard no other merge walks). */
void sl_wstate_merge_shard(struct sl_wstate *s, unsigned shard,
                           struct sl_wpartial *const *parts, size_t nparts) {
  struct wshard *sh = &s->shards[shard];
  size_t most = 0;
  for (size_t i = 0; i < nparts; i++)
    if (parts[i])
      most = SL_MAX(most, parts[i]->nchain[shard]);
  if (!most)
    return;
  /* One resize up front for the common case (partials of disjoint keys
   * grow it further as needed). */
  wt_reserve(&sh->tab, most);
  /* A window that already ended (and was emitted and evicted) must not
   * come back: a partial filled with the batch-start watermark never
   * holds one, but one filled with an older watermark could. */
  int64_t size = s->spec.s.size_ms, wm = s->watermark;
  for (size_t i = 0; i < nparts; i++)
    if (parts[i])
      for (const struct went *e = parts[i]->chain[shard]; e; e = e->next)
        if (e->start + size > wm)
          merge_entry(&s->spec, sh, e);
  sh->dirty = true;
  shard_publish(sh);
  shard_check(s, sh, shard);
}

void sl_wstate_advance(struct sl_wstate *s, struct sl_wpartial *const *parts,
                       size_t nparts) {
  int64_t mx = s->max_event;
  for (size_t i = 0; i < nparts; i++)
    if (parts[i] && parts[i]->max_event > mx)
      mx = parts[i]->max_event;
  s->max_event = mx;
  if (mx == INT64_MIN)
    return;
  int64_t wm;
  if (__builtin_sub_overflow(mx, s->spec.s.lateness_ms, &wm))
    wm = INT64_MIN;
  if (wm > s->watermark)
    s->watermark = wm;
}

/* Emission order: start, then the group values (see the file comment). */
static int went_cmp(const void *x, const void *y, void *arg) {
  const struct went *a = *(const struct went *const *)x;
  const struct went *b = *(const struct went *const *)y;
  const struct wspec *sp = arg;
  if (a->start != b->start)
    return a->start < b->start ? -1 : 1;
  const unsigned char *ka = went_ckey(a, sp->s.naggs);
  const unsigned char *kb = went_ckey(b, sp->s.naggs);
  for (size_t g = 0; g < sp->s.ngroups; g++) {
    struct dval va = {0}, vb = {0};
    ka += dec_value(ka, SIZE_MAX, &va);
    kb += dec_value(kb, SIZE_MAX, &vb);
    int c = dval_cmp(&va, &vb);
    if (c)
      return c;
  }
  return 0;
}

static cJSON *make_row(const struct wspec *sp, const struct went *e,
                       struct sl_buf *tmp) {
  cJSON *row = cJSON_CreateObject();
  cJSON_AddNumberToObject(row, "window_start", (double)e->start);
  cJSON_AddNumberToObject(row, "window_end",
                          (double)(e->start + sp->s.size_ms));
  const unsigned char *k = went_ckey(e, sp->s.naggs);
  for (size_t g = 0; g < sp->s.ngroups; g++) {
    struct dval v;
    k += dec_value(k, SIZE_MAX, &v);
    cJSON_AddItemToObject(row, sp->gnames[g], dval_to_json(&v, tmp));
  }
  for (size_t a = 0; a < sp->s.naggs; a++)
    cJSON_AddItemToObject(row, sp->anames[a],
                          agg_to_json(sp->kinds[a], &e->aggs[a]));
  return row;
}

void sl_wpartial_emit(struct sl_wpartial *p,
                      void (*emit)(cJSON *row, void *arg), void *arg) {
  const struct wspec *sp = &p->spec;
  size_t n = p->tab.n, k = 0;
  if (n) {
    struct went **out = sl_malloc(n * sizeof(*out));
    for (unsigned sh = 0; sh < sp->s.shards; sh++)
      for (struct went *e = p->chain[sh]; e && k < n; e = e->next)
        out[k++] = e;
    struct sl_buf tmp = {0};
    qsort_r(out, k, sizeof(*out), went_cmp, (void *)sp);
    for (size_t i = 0; i < k; i++)
      emit(make_row(sp, out[i], &tmp), arg);
    sl_buf_free(&tmp);
    free(out);
  }
  for (unsigned sh = 0; sp->has_heap && sh < sp->s.shards; sh++)
    for (struct went *e = p->chain[sh]; e; e = e->next)
      entry_free_aggs(sp, e);
  memset(p->chain, 0, sp->s.shards * sizeof(*p->chain));
  memset(p->nchain, 0, sp->s.shards * sizeof(*p->nchain));
  wt_free(&p->tab);
  wt_reserve(&p->tab, 16);
  sl_arena_reset(&p->arena);
  p->max_event = INT64_MIN;
}

/* Drops the entries whose window ended at or before wm; rebuilds the
 * table from the rest (eviction is rare: once per window end). */
static void shard_evict(const struct wspec *sp, struct wshard *sh, int64_t wm) {
  int64_t size = sp->s.size_ms;
  size_t keep = 0;
  for (size_t i = 0; i < sh->tab.cap; i++) {
    struct went *e = sh->tab.slots[i].e;
    if (e && e->start + size > wm)
      keep++;
  }
  struct wtable nt = {0};
  if (keep)
    wt_reserve(&nt, keep);
  sh->min_start = INT64_MAX;
  for (size_t i = 0; i < sh->tab.cap; i++) {
    struct went *e = sh->tab.slots[i].e;
    if (!e)
      continue;
    if (e->start + size <= wm) {
      sh->ebytes -= entry_bytes(sp, e);
      entry_free(sp, e);
      continue;
    }
    wt_put_new(&nt, sh->tab.slots[i]);
    nt.n++;
    if (e->start < sh->min_start)
      sh->min_start = e->start;
  }
  wt_free(&sh->tab);
  sh->tab = nt;
}

/* @locality one thread per shard; reads the watermark, which only
 * sl_wstate_advance writes (never during emits). */
void sl_wstate_emit_shard(struct sl_wstate *s, unsigned shard, bool flush,
                          void (*emit)(cJSON *row, void *arg), void *arg) {
  const struct wspec *sp = &s->spec;
  struct wshard *sh = &s->shards[shard];
  int64_t size = sp->s.size_ms;
  int64_t wm = flush ? INT64_MAX : s->watermark;
  /* min_start + size cannot overflow: starts are bounded (see limits). */
  bool evict = sh->tab.n && sh->min_start + size <= wm;
  struct went **out = NULL;
  size_t nout = 0;
  if (flush || (sp->s.mode == SL_WINDOW_APPEND && evict)) {
    out = sl_malloc((sh->tab.n + 1) * sizeof(*out));
    for (size_t i = 0; i < sh->tab.cap; i++) {
      struct went *e = sh->tab.slots[i].e;
      if (e && e->start + size <= wm)
        out[nout++] = e;
    }
  } else if (sp->s.mode == SL_WINDOW_UPDATE && sh->changed) {
    size_t n = 0;
    for (struct went *e = sh->changed; e; e = e->next)
      n++;
    out = sl_malloc(n * sizeof(*out));
    for (struct went *e = sh->changed; e; e = e->next)
      out[nout++] = e;
  }
  if (nout) {
    struct sl_buf tmp = {0};
    qsort_r(out, nout, sizeof(*out), went_cmp, (void *)sp);
    for (size_t i = 0; i < nout; i++)
      emit(make_row(sp, out[i], &tmp), arg);
    sl_buf_free(&tmp);
  }
  free(out);
  for (struct went *e = sh->changed; e; e = e->next)
    e->changed = false;
  sh->changed = NULL;
  if (evict) {
    if (flush)
      shard_clear(sp, sh);
    else
      shard_evict(sp, sh, wm);
    sh->dirty = true;
  }
  shard_publish(sh);
  shard_check(s, sh, shard);
}

size_t sl_wstate_windows(const struct sl_wstate *s) {
  size_t n = 0;
  for (unsigned k = 0; k < s->spec.s.shards; k++)
    n += atomic_load_explicit(&s->shards[k].pub_n, memory_order_relaxed);
  return n;
}

size_t sl_wstate_bytes(const struct sl_wstate *s) {
  size_t n = sizeof(*s) + s->spec.s.shards * sizeof(struct wshard);
  for (unsigned k = 0; k < s->spec.s.shards; k++)
    n += atomic_load_explicit(&s->shards[k].pub_bytes, memory_order_relaxed);
  return n;
}

/* ------------------------------------------------------------ snapshots */

/*
 * The image format (header, LZ4 block, the window definition, then the
 * entries) is described in checkpoint/snapshot.h, which also frames the
 * images and reads and checks the definition. Here: the entries, written
 * with sl_buf (put_agg) and read with snapshot.h's reader (get_agg,
 * parse_image), in the layout snapshot.h gives.
 */

/* The window definition an image of shard `shard` records under sp;
 * kinds: room for sp's naggs bytes. */
static struct sl_snap_def snap_def(const struct wspec *sp, unsigned shard,
                                   uint8_t *kinds) {
  for (size_t a = 0; a < sp->s.naggs; a++)
    kinds[a] = (uint8_t)sp->kinds[a];
  return (struct sl_snap_def){.size_ms = sp->s.size_ms,
                              .slide_ms = sp->s.slide_ms,
                              .shards = sp->s.shards,
                              .shard = shard,
                              .ngroups = (uint32_t)sp->s.ngroups,
                              .naggs = (uint32_t)sp->s.naggs,
                              .kinds = kinds};
}

static void put_agg(struct sl_buf *b, enum sl_agg_kind k, const struct agg *a) {
  switch (k) {
  case SL_AGG_COUNT:
    sl_buf_put_u64(b, (uint64_t)a->u.i);
    return;
  case SL_AGG_SUM:
    sl_buf_put_u8(b, a->t);
    if (a->t == VT_INT)
      sl_buf_put_u64(b, (uint64_t)a->u.i);
    else if (a->t == VT_FLOAT)
      sl_buf_put_f64(b, a->u.f);
    return;
  case SL_AGG_AVG:
    sl_buf_put_f64(b, a->u.f);
    sl_buf_put_u64(b, (uint64_t)a->n);
    return;
  case SL_AGG_MIN:
  case SL_AGG_MAX:
    sl_buf_put_u8(b, a->t);
    if (a->t == VT_INT)
      sl_buf_put_u64(b, (uint64_t)a->u.i);
    else if (a->t == VT_FLOAT)
      sl_buf_put_f64(b, a->u.f);
    else if (a->t == VT_STR) {
      sl_buf_put_u32(b, (uint32_t)a->n);
      sl_buf_add(b, a->u.s, (size_t)a->n);
    }
    return;
  case SL_AGG_COUNT_DISTINCT: {
    const struct dset *d = a->u.set;
    sl_buf_put_u64(b, d ? d->n : 0);
    sl_buf_put_u64(b, d ? d->len : 0);
    if (d)
      sl_buf_add(b, d->buf, d->len);
    return;
  }
  }
}

/* @locality one thread per shard. */
int sl_wstate_shard_serialize(struct sl_wstate *s, unsigned shard, void **out,
                              size_t *len, struct sl_error *err) {
  const struct wspec *sp = &s->spec;
  struct wshard *sh = &s->shards[shard];
  struct sl_buf raw = {0};
  uint8_t kinds[W_MAX_FIELDS];
  struct sl_snap_def def = snap_def(sp, shard, kinds);
  size_t dlen = sl_snap_def_len(&def);
  sl_buf_reserve(&raw, dlen);
  sl_buf_advance(&raw, sl_snap_def_put(&def, (unsigned char *)raw.p + raw.len));
  sl_buf_put_u64(&raw, sh->tab.n);
  for (size_t i = 0; i < sh->tab.cap; i++) {
    const struct went *e = sh->tab.slots[i].e;
    if (!e)
      continue;
    sl_buf_put_u64(&raw, (uint64_t)e->start);
    sl_buf_put_u32(&raw, e->keylen);
    sl_buf_add(&raw, went_ckey(e, sp->s.naggs), e->keylen);
    for (size_t a = 0; a < sp->s.naggs; a++)
      put_agg(&raw, sp->kinds[a], &e->aggs[a]);
  }
  int rc = sl_snap_seal(shard, raw.p, raw.len, out, len, err);
  if (rc == 0)
    sh->dirty = false;
  sl_buf_free(&raw);
  return rc;
}

/* Reads one aggregate state into a (zeroed); false when malformed. a is
 * consistent at every point, so the caller can free it on failure. */
static bool get_agg(struct sl_snap_rd *r, enum sl_agg_kind k, struct agg *a) {
  switch (k) {
  case SL_AGG_COUNT:
    a->u.i = (int64_t)sl_snap_rd_u64(r);
    return !r->bad && a->u.i >= 0;
  case SL_AGG_SUM: {
    uint8_t t = sl_snap_rd_u8(r);
    if (t == VT_INT)
      a->u.i = (int64_t)sl_snap_rd_u64(r);
    else if (t == VT_FLOAT)
      a->u.f = sl_snap_rd_f64(r);
    else if (t != VT_NULL)
      return false;
    a->t = t;
    return !r->bad;
  }
  case SL_AGG_AVG:
    a->u.f = sl_snap_rd_f64(r);
    a->n = (int64_t)sl_snap_rd_u64(r);
    return !r->bad && a->n >= 0;
  case SL_AGG_MIN:
  case SL_AGG_MAX: {
    uint8_t t = sl_snap_rd_u8(r);
    if (t == VT_INT)
      a->u.i = (int64_t)sl_snap_rd_u64(r);
    else if (t == VT_FLOAT)
      a->u.f = sl_snap_rd_f64(r);
    else if (t == VT_STR) {
      uint32_t n = sl_snap_rd_u32(r);
      const unsigned char *q = sl_snap_rd_take(r, n);
      if (!q)
        return false;
      a->u.s = sl_malloc((size_t)n + 1);
      memcpy(a->u.s, q, n);
      a->u.s[n] = '\0';
      a->n = n;
    } else if (t != VT_NULL)
      return false;
    a->t = t;
    return !r->bad;
  }
  case SL_AGG_COUNT_DISTINCT: {
    uint64_t n = sl_snap_rd_u64(r), blen = sl_snap_rd_u64(r);
    if (r->bad || blen > r->n - r->off || n > blen)
      return false;
    const unsigned char *q = sl_snap_rd_take(r, (size_t)blen);
    if (!n)
      return blen == 0;
    a->u.set = dset_new();
    for (size_t off = 0; off < blen;) {
      struct dval v;
      size_t l = dec_value(q + off, (size_t)blen - off, &v);
      if (!l || !dset_add(a->u.set, q + off, l, hash_bytes(q + off, l)))
        return false; /* malformed, or a value twice */
      off += l;
    }
    return a->u.set->n == n;
  }
  }
  return false;
}

/* Parses a raw image into sh (empty on entry); on failure sh holds what
 * was read so far, for the caller to clear. */
static int parse_image(const struct sl_wstate *s, unsigned shard,
                       struct wshard *sh, const unsigned char *raw,
                       size_t rawlen, struct sl_error *err) {
  const struct wspec *sp = &s->spec;
  size_t naggs = sp->s.naggs, ngroups = sp->s.ngroups;
  int64_t size = sp->s.size_ms, slide = sp->s.slide_ms;
  struct sl_snap_rd r = {.p = raw, .n = rawlen};
  uint8_t kinds[W_MAX_FIELDS];
  struct sl_snap_def def = snap_def(sp, shard, kinds);
  int rc = sl_snap_def_read(&r, &def, err);
  if (rc)
    return rc;
  uint64_t count = sl_snap_rd_u64(&r);
  /* Each entry takes at least 12 bytes: bound count before reserving. */
  if (r.bad || count > (r.n - r.off) / 12)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: bad entry count", shard);
  if (count)
    wt_reserve(&sh->tab, (size_t)count);
  for (uint64_t i = 0; i < count; i++) {
    int64_t start = (int64_t)sl_snap_rd_u64(&r);
    uint32_t klen = sl_snap_rd_u32(&r);
    const unsigned char *key = sl_snap_rd_take(&r, klen);
    if (!key || start % slide || start <= -W_TIME_MAX - size ||
        start > W_TIME_MAX)
      goto bad;
    size_t off = 0;
    for (size_t g = 0; g < ngroups; g++) {
      struct dval v;
      size_t l = dec_value(key + off, klen - off, &v);
      if (!l)
        goto bad;
      off += l;
    }
    if (off != klen)
      goto bad;
    uint64_t h = win_hash(hash_bytes(key, klen), start);
    if ((h & (sp->s.shards - 1)) != shard)
      goto bad;
    struct wslot *sl = wt_find(&sh->tab, h, start, key, klen, naggs);
    if (sl->e)
      goto bad; /* the same key twice */
    struct went *e = sl_malloc(went_size(naggs, klen));
    memset(e, 0, went_size(naggs, 0));
    e->hash = h;
    e->start = start;
    e->keylen = klen;
    memcpy(went_key(e, naggs), key, klen);
    sl->hash = h;
    sl->e = e;
    sh->tab.n++;
    if (start < sh->min_start)
      sh->min_start = start;
    bool ok = true;
    for (size_t a = 0; a < naggs && ok; a++)
      ok = get_agg(&r, sp->kinds[a], &e->aggs[a]);
    sh->ebytes += entry_bytes(sp, e);
    if (!ok)
      goto bad;
  }
  if (r.off != r.n)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state shard %u: %zu bytes after the last "
                        "entry",
                        shard, r.n - r.off);
  return 0;
bad:
  return sl_error_set(err, SL_ERR_CORRUPT,
                      "window state shard %u: malformed entry near byte %zu",
                      shard, r.off);
}

/* Parses into a scratch shard and swaps it in only when the whole image
 * is good: a failed restore leaves the shard as it was.
 * @locality one thread per shard. */
int sl_wstate_shard_restore(struct sl_wstate *s, unsigned shard,
                            const void *buf, size_t len, struct sl_error *err) {
  unsigned char *raw = NULL;
  size_t rawlen = 0;
  struct wshard tmp = {.min_start = INT64_MAX};
  int rc = sl_snap_open(shard, buf, len, &raw, &rawlen, err);
  if (rc)
    return rc;
  rc = parse_image(s, shard, &tmp, raw, rawlen, err);
  if (rc)
    goto out;
  struct wshard *sh = &s->shards[shard];
  shard_clear(&s->spec, sh);
  sh->tab = tmp.tab;
  sh->min_start = tmp.min_start;
  sh->ebytes = tmp.ebytes;
  sh->dirty = false;
  tmp.tab = (struct wtable){0};
  shard_publish(sh);
  shard_check(s, sh, shard);
out:
  shard_clear(&s->spec, &tmp);
  free(raw);
  return rc;
}

bool sl_wstate_shard_dirty(const struct sl_wstate *s, unsigned shard) {
  return s->shards[shard].dirty;
}
