/* value.c - see value.h. */
#include "value.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

const char *sl_vtype_name(const struct sl_value *v) {
  switch (v->type) {
  case SL_V_NULL:
    return "null";
  case SL_V_BOOL:
    return "bool";
  case SL_V_INT:
    return "int";
  case SL_V_FLOAT:
    return "float";
  case SL_V_STR:
    return "string";
  case SL_V_JSON:
    return cJSON_IsArray(v->u.json) ? "array" : "object";
  }
  return "?";
}

struct sl_value sl_value_from_json(const cJSON *j) {
  if (!j || cJSON_IsNull(j) || cJSON_IsInvalid(j))
    return SL_NULL;
  if (cJSON_IsBool(j))
    return sl_bool(cJSON_IsTrue(j));
  if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d == floor(d) && fabs(d) <= 9007199254740992.0)
      return sl_int((int64_t)d);
    return sl_float(d);
  }
  if (cJSON_IsString(j))
    return sl_str(j->valuestring, strlen(j->valuestring));
  return (struct sl_value){.type = SL_V_JSON, .u.json = j};
}

cJSON *sl_value_to_json(const struct sl_value *v) {
  switch (v->type) {
  case SL_V_NULL:
    return cJSON_CreateNull();
  case SL_V_BOOL:
    return cJSON_CreateBool(v->u.b);
  case SL_V_INT:
    return cJSON_CreateNumber((double)v->u.i);
  case SL_V_FLOAT:
    return cJSON_CreateNumber(v->u.f);
  case SL_V_STR: {
    char *s = sl_strndup(v->u.s.p, v->u.s.n);
    cJSON *j = cJSON_CreateString(s);
    free(s);
    return j;
  }
  case SL_V_JSON:
    return cJSON_Duplicate(v->u.json, 1);
  }
  return cJSON_CreateNull();
}

static bool is_num(const struct sl_value *v) {
  return v->type == SL_V_INT || v->type == SL_V_FLOAT;
}

static double num(const struct sl_value *v) {
  return v->type == SL_V_INT ? (double)v->u.i : v->u.f;
}

int sl_value_cmp(const struct sl_value *a, const struct sl_value *b) {
  if (a->type == SL_V_INT && b->type == SL_V_INT)
    return (a->u.i > b->u.i) - (a->u.i < b->u.i);
  if (is_num(a) && is_num(b)) {
    double x = num(a), y = num(b);
    /* NaN (from inf - inf) equals itself and sorts above every number,
     * as in PostgreSQL; plain comparisons would make it equal to all. */
    if (isnan(x) || isnan(y))
      return isnan(x) ? (isnan(y) ? 0 : 1) : -1;
    return (x > y) - (x < y);
  }
  if (a->type == SL_V_STR && b->type == SL_V_STR) {
    size_t n = SL_MIN(a->u.s.n, b->u.s.n);
    int c = n ? memcmp(a->u.s.p, b->u.s.p, n) : 0;
    if (c)
      return c < 0 ? -1 : 1;
    return (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
  }
  if (a->type == SL_V_BOOL && b->type == SL_V_BOOL)
    return (int)a->u.b - (int)b->u.b;
  return -2;
}

bool sl_value_equal(const struct sl_value *a, const struct sl_value *b) {
  if (a->type == SL_V_NULL || b->type == SL_V_NULL)
    return a->type == b->type;
  if (a->type == SL_V_JSON && b->type == SL_V_JSON)
    return cJSON_Compare(a->u.json, b->u.json, 1);
  return sl_value_cmp(a, b) == 0;
}

/* FNV-1a over bytes, then a final mix. */
static uint64_t fnv(const void *p, size_t n, uint64_t h) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) {
    h ^= c[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

static uint64_t hash_into(const struct sl_value *v, uint64_t h);

/* JSON containers, consistent with cJSON_Compare: arrays in order, object
 * members combined by a commutative sum because {"a":1,"b":2} equals
 * {"b":2,"a":1}. No allocation (printing the node would). */
static uint64_t hash_json(const cJSON *j, uint64_t h) {
  unsigned char t = cJSON_IsArray(j) ? 'a' : 'o';
  h = fnv(&t, 1, h);
  if (cJSON_IsArray(j)) {
    for (const cJSON *c = j->child; c; c = c->next) {
      struct sl_value e = sl_value_from_json(c);
      h = hash_into(&e, h);
    }
    return fnv(&t, 1, h);
  }
  uint64_t sum = 0;
  for (const cJSON *c = j->child; c; c = c->next) {
    struct sl_value e = sl_value_from_json(c);
    const char *k = c->string ? c->string : "";
    sum += mix(hash_into(&e, fnv(k, strlen(k) + 1, 0xcbf29ce484222325ULL)));
  }
  return fnv(&sum, sizeof(sum), h);
}

static uint64_t hash_into(const struct sl_value *v, uint64_t h) {
  unsigned char t = (unsigned char)v->type;
  switch (v->type) {
  case SL_V_NULL:
    return fnv(&t, 1, h);
  case SL_V_BOOL:
    return fnv(&v->u.b, 1, fnv(&t, 1, h));
  case SL_V_INT:
  case SL_V_FLOAT: {
    /* 1 and 1.0 are equal (sl_value_cmp compares mixed numbers as
     * doubles), so every number hashes by its double value. */
    t = SL_V_FLOAT;
    double d = num(v);
    if (d == 0)
      d = 0; /* -0.0 == 0.0 */
    if (isnan(d))
      d = NAN; /* one NaN bit pattern */
    return fnv(&d, sizeof(d), fnv(&t, 1, h));
  }
  case SL_V_STR:
    return fnv(v->u.s.p, v->u.s.n, fnv(&t, 1, h));
  case SL_V_JSON:
    return hash_json(v->u.json, h);
  }
  return h;
}

uint64_t sl_value_hash(const struct sl_value *v, uint64_t seed) {
  return mix(hash_into(v, seed ^ 0xcbf29ce484222325ULL));
}

/* ---------------------------------------------------------------- arena */

struct sl_arena_block {
  struct sl_arena_block *next;
  size_t size;
  _Alignas(8) unsigned char data[];
};

void *sl_arena_alloc(struct sl_arena *a, size_t n) {
  n = (n + 7) & ~(size_t)7;
  if (!a->head || a->used + n > a->head->size) {
    /* Blocks double up to 8 MB: few blocks even for a task's worth of
     * rows, so that json_free's ownership check stays short. */
    size_t grow = a->head ? SL_MIN(a->head->size * 2, (size_t)8 << 20) : 0;
    size_t size = SL_MAX(n, SL_MAX(grow, (size_t)64 * 1024));
    struct sl_arena_block *b = sl_malloc(sizeof(*b) + size);
    b->size = size;
    b->next = a->head;
    a->head = b;
    a->used = 0;
    POISON(b->data, size);
  }
  void *p = a->head->data + a->used;
  a->used += n;
  UNPOISON(p, n);
  return p;
}

char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t n) {
  char *p = sl_arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

void sl_arena_reset(struct sl_arena *a) {
  if (!a->head)
    return;
  /* Keep the newest block, free the rest. */
  struct sl_arena_block *b = a->head->next;
  while (b) {
    struct sl_arena_block *next = b->next;
    UNPOISON(b->data, b->size);
    free(b);
    b = next;
  }
  a->head->next = NULL;
  a->used = 0;
  /* Under ASan a use of memory from before the reset is reported. */
  POISON(a->head->data, a->head->size);
}

void sl_arena_free(struct sl_arena *a) {
  struct sl_arena_block *b = a->head;
  while (b) {
    struct sl_arena_block *next = b->next;
    UNPOISON(b->data, b->size);
    free(b);
    b = next;
  }
  a->head = NULL;
  a->used = 0;
}

/* cJSON's allocator: the thread's json arena while one is set. */
static _Thread_local struct sl_arena *json_arena;

static bool arena_owns(const struct sl_arena *a, const void *p) {
  const unsigned char *c = p;
  for (const struct sl_arena_block *b = a->head; b; b = b->next)
    if (c >= b->data && c < b->data + b->size)
      return true;
  return false;
}

static void *json_malloc(size_t n) {
  struct sl_arena *a = json_arena;
  return a ? sl_arena_alloc(a, n) : malloc(n);
}

static void json_free(void *p) {
  struct sl_arena *a = json_arena;
  if (a && arena_owns(a, p))
    return;
  free(p);
}

/* Installed before main(), while there is one thread: cJSON's hooks are
 * a global that its calls read. */
__attribute__((constructor)) static void json_hooks_install(void) {
  cJSON_Hooks h = {.malloc_fn = json_malloc, .free_fn = json_free};
  cJSON_InitHooks(&h);
}

void sl_arena_json_begin(struct sl_arena *a) {
  json_arena = a;
}

void sl_arena_json_end(void) {
  json_arena = NULL;
}

bool sl_arena_json_active(void) {
  return json_arena != NULL;
}

/* A number's text (32 bytes): integral ones below 2^53 as integers, the
 * others by sl_fmt_double. */
static int num_text(double d, char *buf) {
  return d == floor(d) && fabs(d) < 9007199254740992.0
             ? sl_fmt_i64((int64_t)d, buf, 32)
             : sl_fmt_double(d, buf, 32);
}

size_t sl_json_text(const cJSON *v, char num[32], char **heap,
                    const char **text) {
  *heap = NULL;
  *text = NULL;
  if (cJSON_IsString(v)) {
    *text = v->valuestring;
    return strlen(v->valuestring);
  }
  if (cJSON_IsNumber(v)) {
    *text = num;
    return (size_t)num_text(v->valuedouble, num);
  }
  if (cJSON_IsBool(v)) {
    *text = cJSON_IsTrue(v) ? "true" : "false";
    return strlen(*text);
  }
  if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
    *heap = cJSON_PrintUnformatted(v);
    if (!*heap)
      abort(); /* out of memory, like sl_malloc */
    *text = *heap;
    return strlen(*heap);
  }
  return 0; /* null */
}

/* A JSON string literal, escaped as cJSON escapes it: the two-letter
 * escapes where JSON has them, \u00XX for the other control characters,
 * the rest (UTF-8 included) as it is. */
static void append_str(const char *s, struct sl_buf *b) {
  size_t n = 2;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    n += *p == '"' || *p == '\\' || *p == '\b' || *p == '\f' || *p == '\n' ||
                 *p == '\r' || *p == '\t'
             ? 2
         : *p < 0x20 ? 6
                     : 1;
  sl_buf_reserve(b, n);
  char *o = b->p + b->len;
  *o++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p >= 0x20 && *p != '"' && *p != '\\') {
      *o++ = (char)*p;
      continue;
    }
    *o++ = '\\';
    switch (*p) {
    case '"':
    case '\\':
      *o++ = (char)*p;
      break;
    case '\b':
      *o++ = 'b';
      break;
    case '\f':
      *o++ = 'f';
      break;
    case '\n':
      *o++ = 'n';
      break;
    case '\r':
      *o++ = 'r';
      break;
    case '\t':
      *o++ = 't';
      break;
    default:
      o += snprintf(o, 6, "u%04x", *p);
    }
  }
  *o++ = '"';
  sl_buf_advance(b, n);
}

void sl_json_append(const cJSON *v, struct sl_buf *b) {
  if (cJSON_IsString(v)) {
    append_str(v->valuestring, b);
  } else if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    sl_buf_reserve(b, 32);
    char *o = b->p + b->len;
    if (!isfinite(d))
      sl_buf_advance(b, (size_t)snprintf(o, 32, "null")); /* as cJSON */
    else if (d == 0 && signbit(d))
      sl_buf_advance(b, (size_t)snprintf(o, 32, "-0")); /* as cJSON */
    else
      sl_buf_advance(b, (size_t)num_text(d, o));
  } else if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
    bool obj = cJSON_IsObject(v);
    sl_buf_addc(b, obj ? '{' : '[');
    for (const cJSON *c = v->child; c; c = c->next) {
      if (c != v->child)
        sl_buf_addc(b, ',');
      if (obj) {
        append_str(c->string ? c->string : "", b);
        sl_buf_addc(b, ':');
      }
      sl_json_append(c, b);
    }
    sl_buf_addc(b, obj ? '}' : ']');
  } else {
    const char *t = cJSON_IsTrue(v)                    ? "true"
                    : cJSON_IsFalse(v)                 ? "false"
                    : cJSON_IsRaw(v) && v->valuestring ? v->valuestring
                                                       : "null";
    sl_buf_adds(b, t);
  }
}
