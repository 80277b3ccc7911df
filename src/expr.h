/*
 * expr.h - the expression language of filter:, map: and window keys.
 *
 * Syntax (lowest precedence first):
 *   a || b        logical or            (three-valued: see nulls)
 *   a && b        logical and
 *   a == b, a != b, a < b, a <= b, a > b, a >= b, a in [x, y, ...]
 *   a + b, a - b  (+ also concatenates two strings)
 *   a * b, a / b, a % b
 *   !a, -a
 *   literals: 42, -7, 3.14, 1e3, "text" or 'text' (\" \' \\ \n \t \uXXXX
 *   escapes, also \r and \/; \u0000 is refused), true, false, null,
 *   lists [1, 2] (only right of `in`; elements may be any expressions)
 *   fields: user, user.address.city, `odd name`.x (backticks quote a
 *   segment); a missing field is null
 *   record metadata: @key, @topic, @partition, @offset, @timestamp,
 *   @headers.NAME (strings, ints; null when absent)
 *   calls: lower(s), upper(s), len(s) (bytes of a string, or elements of
 *   an array/object), contains(s, sub), starts_with(s, p), ends_with(s, p),
 *   substr(s, start[, len]) (0-based bytes, clamped), coalesce(a, b, ...),
 *   to_int(x), to_float(x), to_string(x), now_ms()
 *
 * Types: null, bool, int (64-bit), float (double), string, and JSON
 * objects/arrays read from the row (usable with len, ==, to_string).
 *   int op int -> int for + - * % (overflow is a type error, never wraps);
 *   any float operand -> float; / always yields float; x / 0 and x % 0 are
 *   errors. < <= > >= need two numbers, two strings or two bools; == and
 *   != accept any two values (values of different types are unequal, 1 and
 *   1.0 are equal). && || ! need bools.
 *
 * Nulls: arithmetic, comparison (< <= > >=) and functions other than
 * coalesce return null when an argument is null (to_string(null) is
 * null). == and != treat null as a value (null == null is true, 1 == null
 * is false).
 * !null is null. && and || are three-valued (false && null = false,
 * true || null = true, otherwise null). A filter keeps a record only when
 * its expression is true; null and false drop it. `x in [...]` is null
 * when x is null.
 *
 * Errors: parse errors carry the 1-based column in the expression. Type
 * errors that can be seen without data (literal operands, unknown
 * functions, wrong argument counts, literal argument types) are reported
 * by sl_expr_parse; others happen at evaluation, per record, as an error
 * whose message names the operator and the types ("'-' needs numbers, got
 * string and int"). Subexpressions made only of literals are computed at
 * parse time, so their errors (1 / 0, to_int("x")) are parse errors too.
 *
 * Thread-safety: a parsed expression is immutable; any number of threads
 * may evaluate it at once, each with its own context and arena.
 */
#ifndef SL_EXPR_H
#define SL_EXPR_H

#include <cjson/cJSON.h>

#include "error.h"
#include "record.h"
#include "value.h"

struct sl_expr;

/* Reads header `name` of the record: returns 0 and sets *value (not
 * NUL-terminated) and *len when present; a nonzero return or *value left
 * NULL means absent. Only called when ctx->rec is not NULL. */
typedef int (*sl_header_fn)(const struct sl_record *rec, const char *name,
                            const char **value, size_t *len);

struct sl_eval_ctx {
  const cJSON *row;            /* the parsed record; NULL when raw */
  const struct sl_record *rec; /* for @ metadata; may be NULL */
  sl_header_fn header;         /* for @headers.NAME; may be NULL */
  struct sl_arena *arena;      /* for computed strings */
  int64_t now_ms;              /* what now_ms() returns */
};

/* Parses src. On error returns NULL, fills err (SL_ERR_CONFIG,
 * "column C: message") and sets *err_col to C (1-based, in src). */
struct sl_expr *sl_expr_parse(const char *src, int *err_col,
                              struct sl_error *err);
void sl_expr_free(struct sl_expr *e);

/* The static result type when known from the expression alone, else -1
 * (for example a field). It is the type of the result when that is not
 * null: comparisons are SL_V_BOOL although `x < 1` is null for a null x;
 * SL_V_NULL means always null (`null + 1`). Metadata types are known
 * (@key is SL_V_STR, @offset SL_V_INT). */
int sl_expr_static_type(const struct sl_expr *e);

/* If the expression is a plain field path (a.b.c, no metadata), returns
 * its segments (count in *n), else NULL. Used for group_by keys and
 * output field names. */
const char *const *sl_expr_field_path(const struct sl_expr *e, size_t *n);

/* Evaluates e against ctx into out. Returns 0, or SL_ERR_INVAL with a
 * message for a record-level error (type error, division by zero,
 * overflow). Strings in out point into the row, the record, the
 * expression's literals or ctx->arena (required for computed strings). */
int sl_expr_eval(const struct sl_expr *e, const struct sl_eval_ctx *ctx,
                 struct sl_value *out, struct sl_error *err);

#endif
