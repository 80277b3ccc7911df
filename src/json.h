/* json.h - a record's JSON text to a cJSON row, parsed with simdjson.
 *
 * cJSON's own parser was the largest single cost of a stateless pipeline
 * (strtod with a localeconv call per number, three strncmp calls per value,
 * a node at a time): about 370 ns for a 90-byte record against 150 ns for
 * simdjson's On Demand parser building the same cJSON tree
 * (docs/benchmarks.md). The rest of the pipeline keeps working on cJSON
 * rows, so this is the only place that knows simdjson.
 *
 * The nodes come from cJSON's allocator (cJSON_malloc): from the record
 * arena while a chunk runs, as cJSON's own parser would. */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sl_json_status {
  SL_JSON_OK,
  SL_JSON_INVALID,    /* not JSON, or more than one value */
  SL_JSON_NOT_OBJECT, /* valid JSON, but not an object */
  SL_JSON_TOO_DEEP,   /* nested deeper than SL_JSON_MAX_DEPTH */
};

/* The deepest nesting of objects and arrays a record may have. Deeper
 * records are refused (SL_JSON_TOO_DEEP) before any node is built: every
 * later step (select, templates, output) walks a row recursively, and the
 * worker threads' stacks (pool.c) are sized for this depth. */
#define SL_JSON_MAX_DEPTH 10000

struct sl_json_error {
  enum sl_json_status status;
  size_t at;        /* INVALID: the byte where parsing stopped */
  const char *what; /* INVALID: simdjson's reason; NOT_OBJECT: "an array",
                       "a string", ... */
};

/* Parses the n bytes at s (no padding or terminator needed) as one JSON
 * object. Returns the row, or NULL with *e filled in. Strict JSON: UTF-8
 * only, nothing but white space after the object, numbers as doubles
 * (as cJSON keeps them). Thread-safe: each thread has its own parser. */
cJSON *sl_json_parse_object(const char *s, size_t n, struct sl_json_error *e);

/* Whether the n bytes at s are valid UTF-8 (simdjson's validator). */
bool sl_utf8_valid(const char *s, size_t n);

#ifdef __cplusplus
}
#endif

#endif
