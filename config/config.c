/*
 * config.c - reading YAML into the positioned sl_cfg_node tree.
 *
 * libyaml's event API is driven with an explicit stack of open maps and
 * lists, so deep documents cannot overflow the C stack, and every node gets
 * the 1-based position of its first character.
 */
#include "config.h"
#include "diags.h"
#include "cfg_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "../src/util.h"

/* Deeper documents are certainly mistakes; the bound also keeps the
 * recursive free and bind shallow. */
#define SL_CFG_MAX_DEPTH 256
/* A job file is a few KiB; reading stops past this (a wrong file, a
 * device or a generated monster), before any parsing. */
#define SL_CFG_MAX_FILE_BYTES (4 << 20)

/* ------------------------------------------------------------- nodes */

struct sl_cfg_node *sl_cfg_node_new(enum sl_cfg_kind kind, const char *file,
                                    int line, int col) {
  struct sl_cfg_node *n = sl_calloc(1, sizeof(*n));
  n->kind = kind;
  n->file = file;
  n->line = line;
  n->col = col;
  return n;
}

/* Arrays grow to powers of two (at least 4); the capacity is implied by n,
 * so the node needs no capacity field. */
static void **grow(void **arr, size_t n) {
  if (n == 0)
    return sl_malloc(4 * sizeof(void *));
  if (n >= 4 && (n & (n - 1)) == 0)
    return sl_realloc(arr, 2 * n * sizeof(void *));
  return arr;
}

void sl_cfg_node_push(struct sl_cfg_node *n, struct sl_cfg_node *key,
                      struct sl_cfg_node *item) {
  if (n->kind == SL_CFG_MAP) {
    n->keys = (struct sl_cfg_node **)grow((void **)n->keys, n->n);
    n->keys[n->n] = key;
  }
  n->items = (struct sl_cfg_node **)grow((void **)n->items, n->n);
  n->items[n->n] = item;
  n->n++;
}

void sl_cfg_node_free(struct sl_cfg_node *n) {
  if (!n)
    return;
  for (size_t i = 0; i < n->n; i++) {
    if (n->keys)
      sl_cfg_node_free(n->keys[i]);
    sl_cfg_node_free(n->items[i]);
  }
  free(n->keys);
  free(n->items);
  free(n->scalar);
  free(n);
}

void sl_cfg_free(struct sl_cfg_node *root) {
  if (!root)
    return;
  char *file = (char *)root->file; /* the loaders give the root its name */
  sl_cfg_node_free(root);
  free(file);
}

const char *sl_cfg_kind_name(const struct sl_cfg_node *n) {
  switch (n->kind) {
  case SL_CFG_MAP:
    return "a map";
  case SL_CFG_SEQ:
    return "a list";
  default:
    return "a string";
  }
}

long sl_cfg_find(const struct sl_cfg_node *map, const char *key) {
  if (!map || map->kind != SL_CFG_MAP || !key)
    return -1;
  for (size_t i = 0; i < map->n; i++)
    if (strcmp(map->keys[i]->scalar, key) == 0)
      return (long)i;
  return -1;
}

const struct sl_cfg_node *sl_cfg_get(const struct sl_cfg_node *map,
                                     const char *key) {
  long i = sl_cfg_find(map, key);
  return i < 0 ? NULL : map->items[i];
}

/* A node without a file (an internal default) gives an unpositioned
 * message. */
int sl_cfg_error(struct sl_error *err, const struct sl_cfg_node *node,
                 const char *fmt, ...) {
  char msg[sizeof(err->msg)];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (!node || !node->file) {
    sl_cfg_diags_add(NULL, 0, 0, msg);
    return sl_error_set(err, SL_ERR_CONFIG, "%s", msg);
  }
  struct sl_error e;
  sl_error_set(&e, SL_ERR_CONFIG, "%s:%d:%d: %s", node->file, node->line,
               node->col, msg);
  sl_cfg_diags_add(node->file, node->line, node->col, e.msg);
  if (err)
    *err = e;
  return SL_ERR_CONFIG;
}

/* ------------------------------------------------------------ loading */

struct frame {
  struct sl_cfg_node *node; /* open map or list, owned by its parent */
  struct sl_cfg_node *key;  /* map: key waiting for its value, owned here */
};

struct loader {
  const struct sl_cfg_parse_opts *opts;
  const char *text;
  size_t len;
  struct sl_cfg_node *root;
  struct frame stack[SL_CFG_MAX_DEPTH];
  size_t depth;
  int documents;
  bool empty_document; /* the one document was blank or null */
  struct sl_error *err;
};

static void mark_pos(const struct loader *ld, size_t line0, size_t col0,
                     int *line, int *col) {
  *line = (int)line0 + 1;
  *col = (int)col0 + 1;
  if (*line == 1)
    *col += ld->opts->col_shift;
  if (*col < 1)
    *col = 1;
}

/* libyaml puts the end of a text without a final newline on a line past
 * the end; move such a mark to just after the last character, so that a
 * --set error stays on line 1 of its argument. */
static void clamp_mark(const struct loader *ld, yaml_mark_t *mark) {
  size_t lines = 0, col = 0;
  for (size_t i = 0; i < ld->len; i++) {
    unsigned char c = (unsigned char)ld->text[i];
    if (c == '\n') {
      lines++;
      col = 0;
    } else if ((c & 0xC0) != 0x80) {
      col++;
    }
  }
  if (mark->line > lines) {
    mark->line = lines;
    mark->column = col;
  }
}

/* "file:line:col: message" at a libyaml mark. */
static int __attribute__((format(printf, 3, 4)))
ld_error(struct loader *ld, yaml_mark_t mark, const char *fmt, ...) {
  char msg[SL_CFG_WHY_MAX];
  int line, col;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  clamp_mark(ld, &mark);
  mark_pos(ld, mark.line, mark.column, &line, &col);
  return sl_error_set(ld->err, SL_ERR_CONFIG, "%s:%d:%d: %s", ld->opts->file,
                      line, col, msg);
}

/* Whether line `line` (from 0) of the text holds "${". */
static bool flow_line_has_var(const struct loader *ld, size_t line) {
  const char *p = ld->text, *end = ld->text + ld->len;
  for (size_t l = 0; l < line && p < end; l++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
  }
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  const char *le = nl ? nl : end;
  for (; p + 1 < le; p++)
    if (p[0] == '$' && p[1] == '{')
      return true;
  return false;
}

/* Reports a libyaml failure at the problem's position. Reader errors (bad
 * UTF-8, control characters) only carry a byte offset, which is turned into
 * a line and column here. */
static int syntax_error(struct loader *ld, const yaml_parser_t *p) {
  const char *problem = p->problem ? p->problem : "invalid YAML";
  yaml_mark_t mark = p->problem_mark;
  if (p->error == YAML_MEMORY_ERROR)
    return sl_error_set(ld->err, SL_ERR_NOMEM, "%s: out of memory",
                        ld->opts->file);
  if (p->error == YAML_READER_ERROR) {
    mark.line = mark.column = 0;
    for (size_t i = 0; i < p->problem_offset && i < ld->len; i++) {
      unsigned char c = (unsigned char)ld->text[i];
      if (c == '\n') {
        mark.line++;
        mark.column = 0;
      } else if ((c & 0xC0) != 0x80) {
        mark.column++;
      }
    }
  }
  /* In a flow collection ({ } or [ ]) braces end a plain scalar, so an
   * unquoted ${VAR} there breaks the syntax: say so. */
  const char *hint = "";
  if (strstr(problem, "expected ','") && flow_line_has_var(ld, mark.line))
    hint = " (inside { } or [ ], quote a value that holds ${...}: "
           "'${VAR}')";
  return ld_error(ld, mark, "%s%s", problem, hint);
}

static bool is_null_text(const char *s) {
  return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
         strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* Hangs a new node under the innermost open map or list (or makes it the
 * root). Takes ownership of n, also on error. */
static int attach(struct loader *ld, struct sl_cfg_node *n, yaml_mark_t mark) {
  if (ld->depth == 0) {
    if (n->kind == SL_CFG_MAP) {
      ld->root = n;
      return 0;
    }
    if (n->kind == SL_CFG_SCALAR && n->plain && is_null_text(n->scalar)) {
      ld->empty_document = true;
      sl_cfg_node_free(n);
      return 0;
    }
    const char *kind = sl_cfg_kind_name(n);
    sl_cfg_node_free(n);
    return ld_error(ld, mark,
                    "the top level must be a map of keys to values, got %s",
                    kind);
  }
  struct frame *f = &ld->stack[ld->depth - 1];
  if (f->node->kind == SL_CFG_SEQ) {
    sl_cfg_node_push(f->node, NULL, n);
    return 0;
  }
  if (f->key) {
    sl_cfg_node_push(f->node, f->key, n);
    f->key = NULL;
    return 0;
  }
  if (n->kind != SL_CFG_SCALAR) {
    const char *kind = sl_cfg_kind_name(n);
    sl_cfg_node_free(n);
    return ld_error(ld, mark, "a key must be a string, got %s", kind);
  }
  long dup = sl_cfg_find(f->node, n->scalar);
  if (dup >= 0) {
    int rc = ld_error(ld, mark, "duplicate key '%s' (first at line %d)",
                      n->scalar, f->node->keys[dup]->line);
    sl_cfg_node_free(n);
    return rc;
  }
  f->key = n;
  return 0;
}

/* True when the next node attached is a map key (keys are not
 * interpolated). */
static bool expecting_key(const struct loader *ld) {
  if (ld->depth == 0)
    return false;
  const struct frame *f = &ld->stack[ld->depth - 1];
  return f->node->kind == SL_CFG_MAP && !f->key;
}

static int on_scalar(struct loader *ld, const yaml_event_t *ev) {
  int line, col;
  mark_pos(ld, ev->start_mark.line, ev->start_mark.column, &line, &col);
  struct sl_cfg_node *n =
      sl_cfg_node_new(SL_CFG_SCALAR, ld->opts->file, line, col);
  const char *tag = (const char *)ev->data.scalar.tag;
  /* `!!str null` is the string "null", just like a quoted one. */
  n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
             !(tag && strcmp(tag, YAML_STR_TAG) == 0);
  n->scalar =
      sl_strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
  if (ld->opts->interpolate && !expecting_key(ld) && strchr(n->scalar, '$')) {
    char why[SL_CFG_WHY_MAX], *out;
    if (sl_cfg_interpolate(n->scalar, &out, why, sizeof(why)) != 0) {
      sl_cfg_node_free(n);
      return ld_error(ld, ev->start_mark, "%s", why);
    }
    free(n->scalar);
    n->scalar = out;
  }
  return attach(ld, n, ev->start_mark);
}

static int on_start(struct loader *ld, const yaml_event_t *ev,
                    enum sl_cfg_kind kind) {
  int line, col;
  if (ld->depth == SL_CFG_MAX_DEPTH)
    return ld_error(ld, ev->start_mark, "nesting deeper than %d levels",
                    SL_CFG_MAX_DEPTH);
  mark_pos(ld, ev->start_mark.line, ev->start_mark.column, &line, &col);
  struct sl_cfg_node *n = sl_cfg_node_new(kind, ld->opts->file, line, col);
  int rc = attach(ld, n, ev->start_mark);
  if (rc)
    return rc;
  ld->stack[ld->depth].node = n;
  ld->stack[ld->depth].key = NULL;
  ld->depth++;
  return 0;
}

/* Handles one event; never takes ownership of it. */
static int on_event(struct loader *ld, const yaml_event_t *ev, bool *done) {
  const char *anchor = NULL;
  switch (ev->type) {
  case YAML_SCALAR_EVENT:
    anchor = (const char *)ev->data.scalar.anchor;
    break;
  case YAML_SEQUENCE_START_EVENT:
    anchor = (const char *)ev->data.sequence_start.anchor;
    break;
  case YAML_MAPPING_START_EVENT:
    anchor = (const char *)ev->data.mapping_start.anchor;
    break;
  default:
    break;
  }
  if (anchor)
    return ld_error(ld, ev->start_mark,
                    "anchors (&%s) are not supported; repeat the value "
                    "instead",
                    anchor);

  switch (ev->type) {
  case YAML_DOCUMENT_START_EVENT:
    if (ld->documents++ > 0)
      return ld_error(ld, ev->start_mark,
                      "only one YAML document is allowed per file");
    return 0;
  case YAML_ALIAS_EVENT:
    return ld_error(ld, ev->start_mark,
                    "aliases (*%s) are not supported; repeat the value "
                    "instead",
                    (const char *)ev->data.alias.anchor);
  case YAML_SCALAR_EVENT:
    return on_scalar(ld, ev);
  case YAML_SEQUENCE_START_EVENT:
    return on_start(ld, ev, SL_CFG_SEQ);
  case YAML_MAPPING_START_EVENT:
    return on_start(ld, ev, SL_CFG_MAP);
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT:
    if (ld->depth > 0)
      ld->depth--;
    return 0;
  case YAML_STREAM_END_EVENT:
    *done = true;
    return 0;
  default:
    return 0;
  }
}

struct sl_cfg_node *sl_cfg_parse(const struct sl_cfg_parse_opts *opts,
                                 const char *text, size_t len,
                                 struct sl_error *err) {
  yaml_parser_t parser;
  struct loader *ld = sl_calloc(1, sizeof(*ld));
  struct sl_cfg_node *root = NULL;
  bool done = false;

  ld->opts = opts;
  ld->text = text ? text : "";
  ld->len = text ? len : 0;
  ld->err = err;
  if (!yaml_parser_initialize(&parser)) {
    sl_error_set(err, SL_ERR_NOMEM, "%s: out of memory", opts->file);
    goto out;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)ld->text,
                               ld->len);
  while (!done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      syntax_error(ld, &parser);
      goto fail;
    }
    int rc = on_event(ld, &ev, &done);
    yaml_event_delete(&ev);
    if (rc)
      goto fail;
  }
  if (!ld->root) {
    sl_error_set(err, SL_ERR_CONFIG, "%s: file is empty", opts->file);
    goto fail;
  }
  root = ld->root;
  ld->root = NULL;
  goto done_parser;

fail:
  for (size_t i = 0; i < ld->depth; i++)
    sl_cfg_node_free(ld->stack[i].key);
  sl_cfg_node_free(ld->root);
done_parser:
  yaml_parser_delete(&parser);
out:
  free(ld);
  return root;
}

struct sl_cfg_node *sl_cfg_parse_value(const char *file, const char *text,
                                       int col_shift, bool interpolate,
                                       struct sl_error *err) {
  static const char prefix[] = "v: ";
  struct sl_cfg_parse_opts opts = {.file = file,
                                   .col_shift =
                                       col_shift - (int)(sizeof(prefix) - 1),
                                   .interpolate = interpolate};
  struct sl_buf b = {0};
  struct sl_cfg_node *wrap, *value = NULL;

  sl_buf_adds(&b, prefix);
  sl_buf_adds(&b, text);
  wrap = sl_cfg_parse(&opts, b.p, b.len, err);
  free(b.p);
  if (!wrap)
    return NULL;
  if (wrap->n != 1 || strcmp(wrap->keys[0]->scalar, "v") != 0) {
    sl_cfg_error(err, wrap->n > 1 ? wrap->keys[1] : wrap,
                 "expected a single value");
  } else {
    value = wrap->items[0];
    wrap->items[0] = NULL;
    if (value->kind == SL_CFG_SCALAR && !value->scalar[0]) {
      /* libyaml places an empty value at the ':'; point past it. */
      value->line = 1;
      value->col = SL_MAX(1, col_shift + 1);
    }
  }
  sl_cfg_node_free(wrap);
  return value;
}

struct sl_cfg_node *sl_cfg_load_string(const char *name, const char *text,
                                       size_t len, struct sl_error *err) {
  char *file = sl_strdup(name ? name : "<string>");
  struct sl_cfg_parse_opts opts = {
      .file = file, .col_shift = 0, .interpolate = true};
  struct sl_cfg_node *root = sl_cfg_parse(&opts, text, len, err);
  if (!root)
    free(file);
  return root;
}

/* Reads the whole file, then parses it from memory, so that reader errors
 * can be positioned from their byte offset. */
struct sl_cfg_node *sl_cfg_load_file(const char *path, struct sl_error *err) {
  struct sl_buf b = {0};
  struct sl_cfg_node *root = NULL;
  char chunk[65536];
  size_t got;
  FILE *f = fopen(path, "rb");

  if (!f) {
    sl_error_set(err, SL_ERR_CONFIG, "%s: cannot open: %s", path,
                 strerror(errno));
    return NULL;
  }
  while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
    if (b.len + got > SL_CFG_MAX_FILE_BYTES) {
      sl_error_set(err, SL_ERR_CONFIG,
                   "%s: the file is larger than %d MiB; a job file is a "
                   "few KiB of YAML (is this the right file?)",
                   path, SL_CFG_MAX_FILE_BYTES >> 20);
      goto out;
    }
    sl_buf_add(&b, chunk, got);
  }
  if (ferror(f)) {
    sl_error_set(err, SL_ERR_CONFIG, "%s: cannot read: %s", path,
                 strerror(errno));
    goto out;
  }
  root = sl_cfg_load_string(path, b.p, b.len, err);
out:
  fclose(f);
  free(b.p);
  return root;
}
