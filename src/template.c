/* template.c - the sinks' template compiler (see template.h). */
#include "template.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/config.h"
#include "util.h"
#include "value.h"

/* ------------------------------------------------------------ building */

void sl_tpl_init(struct sl_tpl *t, unsigned flags) {
  *t = (struct sl_tpl){.flags = flags};
}

static struct sl_tpl_part *add_part(struct sl_tpl *t, enum sl_tpl_kind kind,
                                    int col) {
  t->parts = sl_realloc(t->parts, (t->n + 1) * sizeof(*t->parts));
  struct sl_tpl_part *p = &t->parts[t->n++];
  *p = (struct sl_tpl_part){.kind = kind, .col = col};
  return p;
}

void sl_tpl_add_lit(struct sl_tpl *t, const char *s, size_t n, int col) {
  if (n == 0)
    return;
  struct sl_tpl_part *p = t->n && t->parts[t->n - 1].kind == SL_TPL_LIT
                              ? &t->parts[t->n - 1]
                              : add_part(t, SL_TPL_LIT, col);
  p->text = sl_realloc(p->text, p->len + n + 1);
  memcpy(p->text + p->len, s, n);
  p->len += n;
  p->text[p->len] = '\0';
}

void sl_tpl_clear(struct sl_tpl *t) {
  for (size_t i = 0; i < t->n; i++) {
    struct sl_tpl_part *p = &t->parts[i];
    free(p->text);
    for (size_t k = 0; k < p->nsegs; k++)
      free(p->segs[k]);
    free(p->segs);
  }
  free(t->parts);
  sl_tpl_init(t, t->flags);
}

/* ------------------------------------------------------------- parsing */

static int fail(int *col, size_t at, struct sl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int *col, size_t at, struct sl_error *err, const char *fmt,
                ...) {
  va_list ap;
  va_start(ap, fmt);
  sl_error_vset(err, SL_ERR_CONFIG, fmt, ap);
  va_end(ap);
  if (col)
    *col = (int)at + 1;
  return SL_ERR_CONFIG;
}

/* Whether name[0, len) is a path of non-empty segments. */
static bool good_path(const char *name, size_t len) {
  if (name[0] == '.' || name[len - 1] == '.')
    return false;
  for (size_t k = 0; k + 1 < len; k++)
    if (name[k] == '.' && name[k + 1] == '.')
      return false;
  return true;
}

/* The metadata a placeholder name stands for, or -1 (a field), or -2 (a
 * reserved name that is no metadata). */
static int meta_of(const struct sl_tpl *t, const char *name, size_t len) {
  if (name[0] == '@') {
    int m = sl_meta_find(name + 1, len - 1);
    return m < 0 ? -2 : m;
  }
  if (t->flags & SL_TPL_OLD_META && name[0] == '_') {
    if (len == 4 && memcmp(name, "_key", 4) == 0)
      return SL_META_KEY;
    if (len == 6 && memcmp(name, "_value", 6) == 0)
      return SL_META_VALUE;
    return -2;
  }
  return -1;
}

/* The placeholder src[open + 1, close): checks it and adds its part. */
static int placeholder(struct sl_tpl *t, const char *src, size_t open,
                       size_t close, int *col, struct sl_error *err) {
  bool arg = t->flags & SL_TPL_ARG;
  size_t start = open + 1, len = close - start;
  const char *name = src + start;
  if (len == 0)
    return arg ? fail(col, open, err,
                      "empty placeholder {}: name a field, as {user}")
               : fail(col, open, err, "empty placeholder {}");
  if (arg && !good_path(name, len))
    return fail(col, start, err, "'%.*s' is not a field path (a.b.c)", (int)len,
                name);
  int meta = meta_of(t, name, len);
  if (meta == -2)
    return arg ? fail(col, start, err, "unknown placeholder {%.*s}; known: %s",
                      (int)len, name, SL_META_NAMES)
               : fail(col, open, err, "unknown {%.*s}; known: %s", (int)len,
                      name, SL_META_NAMES);
  if (meta < 0 && !arg && !good_path(name, len))
    return fail(col, open, err, "empty field name in {%.*s}", (int)len, name);
  struct sl_tpl_part *p =
      add_part(t, meta < 0 ? SL_TPL_FIELD : SL_TPL_META, (int)open + 1);
  p->text = sl_strndup(name, len);
  p->len = len;
  if (meta >= 0) {
    p->meta = (enum sl_meta)meta;
    return 0;
  }
  t->needs_row = true;
  for (const char *seg = p->text;;) {
    const char *dot = strchr(seg, '.');
    size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
    p->segs = sl_realloc(p->segs, (p->nsegs + 1) * sizeof(*p->segs));
    p->segs[p->nsegs++] = sl_strndup(seg, n);
    if (!dot)
      break;
    seg = dot + 1;
  }
  return 0;
}

int sl_tpl_parse_brace(struct sl_tpl *t, const char *src, size_t *i, int *col,
                       struct sl_error *err) {
  size_t at = *i;
  bool arg = t->flags & SL_TPL_ARG;
  if ((src[at] == '{' && src[at + 1] == '{') ||
      (src[at] == '}' && src[at + 1] == '}')) {
    sl_tpl_add_lit(t, src + at, 1, (int)at + 1);
    *i = at + 2;
    return 0;
  }
  if (src[at] == '}')
    return arg ? fail(col, at, err,
                      "unmatched '}' (a literal brace is written }})")
               : fail(col, at, err,
                      "'}' without '{' (write }} for a literal brace)");
  size_t k = at + 1;
  for (; src[k] && src[k] != '}'; k++) {
    char c = src[k];
    if (arg && (c == '{' || c == ' ' || c == '\t' || c == '"'))
      return fail(col, k, err,
                  "'%c' inside a placeholder: close it with '}' "
                  "(a literal brace is written {{ or }})",
                  c);
    if (c == '{')
      break;
  }
  if (src[k] != '}')
    return arg ? fail(col, at, err, "unclosed placeholder '{': add '}'")
               : fail(col, at, err,
                      "'{' without '}' (write {{ for a literal brace)");
  int rc = placeholder(t, src, at, k, col, err);
  if (rc == 0)
    *i = k + 1;
  return rc;
}

int sl_tpl_compile(struct sl_tpl *t, const char *src, unsigned flags, int *col,
                   struct sl_error *err) {
  sl_tpl_init(t, flags);
  size_t i = 0;
  while (src[i]) {
    if (src[i] == '{' || src[i] == '}') {
      if (sl_tpl_parse_brace(t, src, &i, col, err)) {
        sl_tpl_clear(t);
        return SL_ERR_CONFIG;
      }
      continue;
    }
    size_t n = strcspn(src + i, "{}");
    sl_tpl_add_lit(t, src + i, n, (int)i + 1);
    i += n;
  }
  return 0;
}

bool sl_tpl_literal(const struct sl_tpl *t, const char **text, size_t *len) {
  if (t->n == 0) {
    *text = "";
    *len = 0;
    return true;
  }
  if (t->n != 1 || t->parts[0].kind != SL_TPL_LIT)
    return false;
  *text = t->parts[0].text;
  *len = t->parts[0].len;
  return true;
}

/* ------------------------------------------------------------ checking */

int sl_tpl_check_fields(const struct sl_tpl *t, const char *const *fields,
                        const struct sl_tpl_part **bad, struct sl_error *err) {
  for (size_t i = 0; i < t->n; i++) {
    const struct sl_tpl_part *p = &t->parts[i];
    if (p->kind != SL_TPL_FIELD)
      continue;
    const char *top = p->segs[0];
    bool found = false;
    for (size_t k = 0; fields[k] && !found; k++)
      found = strcmp(fields[k], top) == 0;
    if (found)
      continue;
    char list[400] = "";
    for (size_t k = 0; fields[k]; k++)
      snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
               k ? ", " : "", fields[k]);
    if (bad)
      *bad = p;
    const char *best = sl_suggest_name(top, fields);
    if (best)
      return sl_error_set(err, SL_ERR_CONFIG,
                          "the pipeline's output has no field '%s'; did you "
                          "mean '%s'? (fields: %s)",
                          top, best, list);
    return sl_error_set(err, SL_ERR_CONFIG,
                        "the pipeline's output has no field '%s' (fields: %s)",
                        top, list);
  }
  return 0;
}

/* ----------------------------------------------------------- rendering */

static const cJSON *lookup(const struct sl_tpl *t, const cJSON *row,
                           const struct sl_tpl_part *p) {
  if (!row)
    return NULL;
  if (t->flags & SL_TPL_DOTTED_KEYS && p->nsegs > 1) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, p->text);
    if (v)
      return v;
  }
  const cJSON *v = row;
  for (size_t i = 0; i < p->nsegs && v; i++)
    v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, p->segs[i])
                          : NULL;
  return v;
}

int sl_tpl_render(const struct sl_tpl *t, const struct sl_record *r,
                  const cJSON *row, struct sl_buf *out, struct sl_error *err) {
  bool require = t->flags & SL_TPL_REQUIRE;
  for (size_t i = 0; i < t->n; i++) {
    const struct sl_tpl_part *p = &t->parts[i];
    switch (p->kind) {
    case SL_TPL_LIT:
      sl_buf_add(out, p->text, p->len);
      break;
    case SL_TPL_FIELD: {
      const cJSON *v = lookup(t, row, p);
      if (require && (!v || cJSON_IsNull(v)))
        return sl_error_set(err, SL_ERR_INVAL, "field '%s' is %s", p->text,
                            v ? "null" : "missing");
      if (!v)
        break;
      char num[32], *heap;
      const char *text;
      size_t n = sl_json_text(v, num, &heap, &text);
      sl_buf_add(out, text, n);
      cJSON_free(heap);
      break;
    }
    case SL_TPL_META: {
      char num[24];
      const char *text;
      size_t n;
      if (sl_meta_text(r, p->meta, num, &text, &n))
        sl_buf_add(out, text, n);
      else if (require)
        return sl_error_set(err, SL_ERR_INVAL, "the record has no %s for {%s}",
                            p->meta == SL_META_KEY ? "key" : "value", p->text);
      break;
    }
    }
  }
  return 0;
}
