/*
 * template.h - the one template compiler of the sinks: text with
 * placeholders filled from each output record. The Kafka sink's key,
 * value and topic templates are one template each; the Redis sink's
 * command templates are one template per argument, split and checked in
 * sinks/redis/template.c on top of this.
 *
 *   {field}    a field of the record's JSON value; {a.b} reaches into
 *              objects
 *   {@key} {@value} {@topic} {@partition} {@offset} {@timestamp}
 *              the record's metadata (sl_meta_find, sl_meta_text)
 *   {{ and }}  literal braces
 *
 * Everything else is literal text. A template compiles into a list of
 * parts (literal bytes, a field path, a metadata name) once, at validate
 * or init; a compiled template is read-only and is rendered per record on
 * any thread.
 *
 * Rendering turns a field into text as sl_json_text does: a string as is,
 * a number as its shortest round-trip text (integers below 2^53 without
 * a fraction), true/false, an object or array as compact JSON, null as
 * nothing. By default a missing field or metadata (a keyless record's
 * {@key}) renders as nothing; SL_TPL_REQUIRE makes it an error.
 *
 * Errors are SL_ERR_CONFIG at compile time and SL_ERR_INVAL at render
 * time, through struct sl_error; a compile error also gives the 1-based
 * column in the template where it was found, for the caller to place
 * the message (`template '...', column N: ...`, or a position in the job
 * file).
 */
#ifndef SL_TEMPLATE_H
#define SL_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "error.h"
#include "record.h"

struct cJSON;

/* Options of one template, for the sinks' differences. */
/* The template is one argument of a command line (the Redis sink): a
 * placeholder cannot hold ' ', '\t', '"' or '{' (an error at that
 * character), and messages use the command-line wording. */
#define SL_TPL_ARG 0x1u
/* {_key} and {_value} are older spellings of {@key} and {@value}; any
 * other {_name} is an error. */
#define SL_TPL_OLD_META 0x2u
/* {a.b} is the record's top-level key "a.b" when it has one, else the
 * path a -> b. */
#define SL_TPL_DOTTED_KEYS 0x4u
/* A missing or null field, or missing metadata, fails the rendering
 * (with the reason) instead of rendering as nothing. */
#define SL_TPL_REQUIRE 0x8u

enum sl_tpl_kind { SL_TPL_LIT, SL_TPL_FIELD, SL_TPL_META };

struct sl_tpl_part {
  enum sl_tpl_kind kind;
  enum sl_meta meta; /* SL_TPL_META */
  /* LIT: the bytes; FIELD: the path as written ("a.b"); META: the name as
   * written ("@key", "_key"). NUL-terminated, len bytes. */
  char *text;
  size_t len;
  char **segs; /* FIELD: the path split at its dots */
  size_t nsegs;
  int col; /* 1-based column of the placeholder's '{' (LIT: first byte) */
};

struct sl_tpl {
  struct sl_tpl_part *parts; /* adjacent literals are merged */
  size_t n;
  unsigned flags;
  bool needs_row; /* a part is a field: rendering reads the JSON value */
};

/* Compiles src into t (which need not be initialised). On error returns
 * SL_ERR_CONFIG with the message in err and the column in *col (col may
 * be NULL), and leaves t empty. */
int sl_tpl_compile(struct sl_tpl *t, const char *src, unsigned flags, int *col,
                   struct sl_error *err);

/* Building a template piece by piece, for a caller that splits its text
 * itself (the Redis sink's arguments and quotes): sl_tpl_init, then
 * sl_tpl_add_lit for literal bytes and sl_tpl_parse_brace at every '{'
 * or '}' of src. */
void sl_tpl_init(struct sl_tpl *t, unsigned flags);
/* Appends n literal bytes that start at column col of the source. */
void sl_tpl_add_lit(struct sl_tpl *t, const char *s, size_t n, int col);
/* At src[*i] == '{' or '}': "{{" or "}}" (a literal brace) or a
 * placeholder. Advances *i past them. Errors as sl_tpl_compile (t keeps
 * what it had). */
int sl_tpl_parse_brace(struct sl_tpl *t, const char *src, size_t *i, int *col,
                       struct sl_error *err);

/* Whether t is literal text only (no parts: the empty text); then *text
 * and *len are that text. */
bool sl_tpl_literal(const struct sl_tpl *t, const char **text, size_t *len);

/* Checks every field of t against the known output fields of a pipeline
 * (NULL-terminated): the first segment of each path must be one of them.
 * Fails (SL_ERR_CONFIG) at the first that is not, with a suggestion and
 * the list in the message and the part in *bad (bad may be NULL). */
int sl_tpl_check_fields(const struct sl_tpl *t, const char *const *fields,
                        const struct sl_tpl_part **bad, struct sl_error *err);

/* Appends the rendering of t for record r to out. row is r's value
 * parsed as JSON (NULL when it is not JSON or was not parsed; fields then
 * are missing). Returns 0, or with SL_TPL_REQUIRE SL_ERR_INVAL and the
 * reason in err; out->len may then have grown. */
int sl_tpl_render(const struct sl_tpl *t, const struct sl_record *r,
                  const struct cJSON *row, struct sl_buf *out,
                  struct sl_error *err);

/* Frees what t holds and leaves it empty (flags kept). */
void sl_tpl_clear(struct sl_tpl *t);

#endif
