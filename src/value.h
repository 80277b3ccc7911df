/*
 * value.h - the values that expressions compute and windows aggregate.
 *
 * A row is a parsed JSON object (cJSON) plus the source record it came
 * from. Expressions read fields of the row as sl_value without copying:
 * strings point into the row or into an arena; JSON objects and arrays are
 * referenced as cJSON nodes. A value never owns memory.
 *
 * Numbers: a JSON number whose value is integral and within +-2^53 reads
 * as SL_V_INT, any other as SL_V_FLOAT.
 */
#ifndef SL_VALUE_H
#define SL_VALUE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "numfmt.h"

enum sl_vtype {
  SL_V_NULL = 0,
  SL_V_BOOL,
  SL_V_INT,
  SL_V_FLOAT,
  SL_V_STR,
  SL_V_JSON /* a JSON object or array of the row (u.json) */
};

struct sl_value {
  enum sl_vtype type;
  union {
    bool b;
    int64_t i;
    double f;
    struct {
      const char *p; /* not NUL-terminated in general */
      size_t n;
    } s;
    const cJSON *json;
  } u;
};

#define SL_NULL ((struct sl_value){.type = SL_V_NULL})

static inline struct sl_value sl_bool(bool b) {
  return (struct sl_value){.type = SL_V_BOOL, .u.b = b};
}
static inline struct sl_value sl_int(int64_t i) {
  return (struct sl_value){.type = SL_V_INT, .u.i = i};
}
static inline struct sl_value sl_float(double f) {
  return (struct sl_value){.type = SL_V_FLOAT, .u.f = f};
}
static inline struct sl_value sl_str(const char *p, size_t n) {
  return (struct sl_value){.type = SL_V_STR, .u.s = {p, n}};
}

/* The type's name for messages: "null", "bool", "int", "float", "string",
 * "object", "array". */
const char *sl_vtype_name(const struct sl_value *v);

/* Reads a cJSON node as a value (NULL node -> null). */
struct sl_value sl_value_from_json(const cJSON *j);

/* A new cJSON node holding v (deep copy of SL_V_JSON). */
cJSON *sl_value_to_json(const struct sl_value *v);

/* Equality and ordering as the expression language defines them: ints and
 * floats compare numerically, strings bytewise, bools false < true; values
 * of other type pairs are not ordered (sl_value_cmp returns -2). */
bool sl_value_equal(const struct sl_value *a, const struct sl_value *b);
int sl_value_cmp(const struct sl_value *a, const struct sl_value *b);

/* A stable 64-bit hash consistent with sl_value_equal (1 and 1.0 hash the
 * same). */
uint64_t sl_value_hash(const struct sl_value *v, uint64_t seed);

/* ---------------------------------------------------------------- arena */

/* A bump allocator for values computed while evaluating one chunk of
 * records; reset (not freed) between chunks. Not thread-safe: one per
 * worker. */
struct sl_arena {
  struct sl_arena_block *head;
  size_t used; /* bytes used in head */
};

void *sl_arena_alloc(struct sl_arena *a, size_t n); /* 8-byte aligned */
char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t n);
void sl_arena_reset(struct sl_arena *a); /* keeps the first block */
void sl_arena_free(struct sl_arena *a);

/* Between sl_arena_json_begin(a) and sl_arena_json_end(), cJSON nodes and
 * texts that the calling thread allocates come from a, and freeing them
 * is a no-op; the next sl_arena_reset(a) reclaims them all at once. This
 * takes malloc and free off the per-record path (parse, select, print).
 * Every cJSON item made inside must be dead by the reset; cJSON memory
 * from outside is freed as usual. Other threads are unaffected. */
void sl_arena_json_begin(struct sl_arena *a);
void sl_arena_json_end(void);
/* Whether this thread's cJSON memory comes from an arena now. */
bool sl_arena_json_active(void);

/* The text a template puts in place of a JSON value: a string as is, an
 * integral number below 2^53 as an integer, another number by
 * sl_fmt_double, true/false, an object or array as compact JSON. Points
 * *text at it and returns its length: into v for a string, into num (32
 * bytes) for a number or a boolean, into *heap (the caller frees it
 * with cJSON_free) for an object or an array. Null: *text = NULL, returns 0. */
size_t sl_json_text(const cJSON *v, char num[32], char **heap,
                    const char **text);

/* Appends the compact JSON text of v to b: what cJSON_PrintUnformatted
 * prints, with numbers as sl_json_text prints them (NaN and the
 * infinities as null and -0 as -0, as cJSON does), without cJSON's
 * snprintf and sscanf per number or its allocation per call. */
void sl_json_append(const cJSON *v, struct sl_buf *b);

#endif
