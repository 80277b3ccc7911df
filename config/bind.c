/*
 * bind.c - table-driven binding of a map node into a C struct.
 *
 * sl_cfg_bind first rejects unknown keys (in file order, with a
 * did-you-mean), then fills the fields in table order: converted values,
 * defaults for absent keys, errors for missing required ones. On error
 * everything it allocated so far is freed again, so the caller only has to
 * unbind after a success.
 */
#include "config.h"
#include "cfg_internal.h"
#include "diags.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/util.h"

#define SLOT(base, f) ((void *)((char *)(base) + (f)->offset))

/* "ctx.key", or "key" at the root; malloc'd. */
static char *key_path(const char *ctx, const char *key) {
  struct sl_buf b = {0};
  if (ctx && *ctx) {
    sl_buf_adds(&b, ctx);
    sl_buf_add(&b, ".", 1);
  }
  sl_buf_adds(&b, key);
  return sl_buf_take(&b);
}

/* "in source.kafka" or "at top level", for key messages. */
static void where_text(const char *ctx, char *buf, size_t n) {
  if (ctx && *ctx)
    snprintf(buf, n, "in %s", ctx);
  else
    snprintf(buf, n, "at top level");
}

/* YAML's null (plain ~ or null) means "not given": the default applies. */
static bool is_null(const struct sl_cfg_node *v) {
  return v->kind == SL_CFG_SCALAR && v->plain &&
         (strcmp(v->scalar, "~") == 0 || strcmp(v->scalar, "null") == 0 ||
          strcmp(v->scalar, "Null") == 0 || strcmp(v->scalar, "NULL") == 0);
}

static const struct sl_cfg_field *find_field(const struct sl_cfg_field *table,
                                             const char *key) {
  for (const struct sl_cfg_field *f = table; f->key; f++)
    if (strcmp(f->key, key) == 0)
      return f;
  return NULL;
}

const char *sl_cfg_suggest(const struct sl_cfg_field *table, const char *key) {
  const char *best = NULL;
  int best_d = 3;
  if (!table || !key)
    return NULL;
  for (const struct sl_cfg_field *f = table; f->key; f++) {
    int d = sl_cfg_near(key, f->key);
    if (d >= 0 && d < best_d) {
      best = f->key;
      best_d = d;
    }
  }
  return best;
}

/* The same for a NULL-ended list of enum values. */
static const char *suggest_value(const char *const *values, const char *s) {
  const char *best = NULL;
  int best_d = 3;
  for (size_t i = 0; values[i]; i++) {
    int d = sl_cfg_near(s, values[i]);
    if (d >= 0 && d < best_d) {
      best = values[i];
      best_d = d;
    }
  }
  return best;
}

static int unknown_key(const struct sl_cfg_node *key,
                       const struct sl_cfg_field *table, const char *ctx,
                       struct sl_error *err) {
  char where[256];
  const char *s = sl_cfg_suggest(table, key->scalar);
  where_text(ctx, where, sizeof(where));
  if (s)
    return sl_cfg_error(err, key, "unknown key '%s' %s; did you mean '%s'?",
                        key->scalar, where, s);
  struct sl_buf known = {0};
  sl_buf_add(&known, "", 0);
  for (const struct sl_cfg_field *f = table; f->key; f++) {
    if (f != table)
      sl_buf_add(&known, ", ", 2);
    sl_buf_adds(&known, f->key);
  }
  int rc = sl_cfg_error(err, key, "unknown key '%s' %s (known keys: %s)",
                        key->scalar, where, table->key ? known.p : "none");
  free(known.p);
  return rc;
}

/* "path: message" positioned at v. */
static int __attribute__((format(printf, 4, 5)))
field_error(struct sl_error *err, const struct sl_cfg_node *v, const char *path,
            const char *fmt, ...) {
  char msg[SL_CFG_WHY_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return sl_cfg_error(err, v, "%s: %s", path, msg);
}

static const char *type_want(enum sl_cfg_type t) {
  switch (t) {
  case SL_CFG_T_INT:
    return "an integer";
  case SL_CFG_T_BOOL:
    return "a boolean";
  case SL_CFG_T_DURATION:
    return "a duration";
  case SL_CFG_T_SIZE:
    return "a size";
  case SL_CFG_T_STRLIST:
    return "a list of strings";
  case SL_CFG_T_STRMAP:
  case SL_CFG_T_SECTION:
    return "a map";
  default:
    return "a string";
  }
}

/* min/max apply to INT, DURATION and SIZE when min < max. */
static int check_range(const struct sl_cfg_field *f,
                       const struct sl_cfg_node *v, int64_t val,
                       const char *path, struct sl_error *err) {
  char lo[48], hi[48];
  if (f->min >= f->max || (val >= f->min && val <= f->max))
    return 0;
  if (f->type == SL_CFG_T_DURATION) {
    sl_cfg_fmt_duration(f->min, lo, sizeof(lo));
    sl_cfg_fmt_duration(f->max, hi, sizeof(hi));
  } else if (f->type == SL_CFG_T_SIZE) {
    sl_cfg_fmt_size(f->min, lo, sizeof(lo));
    sl_cfg_fmt_size(f->max, hi, sizeof(hi));
  } else {
    snprintf(lo, sizeof(lo), "%lld", (long long)f->min);
    snprintf(hi, sizeof(hi), "%lld", (long long)f->max);
  }
  if (f->flags & SL_CFG_SECRET)
    return field_error(err, v, path, "must be between %s and %s", lo, hi);
  return field_error(err, v, path, "must be between %s and %s, got %.100s", lo,
                     hi, v->scalar);
}

static int bind_enum(const struct sl_cfg_field *f, const struct sl_cfg_node *v,
                     int *out, const char *path, struct sl_error *err) {
  const char *const *vals = f->enum_values;
  struct sl_buf list = {0};
  int rc;
  for (size_t i = 0; vals && vals[i]; i++) {
    if (strcmp(vals[i], v->scalar) == 0) {
      *out = (int)i;
      return 0;
    }
  }
  for (size_t i = 0; vals && vals[i]; i++) {
    if (i)
      sl_buf_add(&list, ", ", 2);
    sl_buf_adds(&list, vals[i]);
  }
  const char *s = vals ? suggest_value(vals, v->scalar) : NULL;
  const char *all = list.p ? list.p : "(none)";
  if (f->flags & SL_CFG_SECRET)
    rc = field_error(err, v, path, "the value must be one of: %s", all);
  else if (s)
    rc = field_error(err, v, path,
                     "'%.100s' must be one of: %s; did you mean '%s'?",
                     v->scalar, all, s);
  else
    rc = field_error(err, v, path, "'%.100s' must be one of: %s", v->scalar,
                     all);
  free(list.p);
  return rc;
}

static void strlist_free(struct sl_strlist *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static void strmap_free(struct sl_strmap *m) {
  for (size_t i = 0; i < m->n; i++) {
    free(m->keys[i]);
    free(m->values[i]);
  }
  free(m->keys);
  free(m->values);
  m->keys = m->values = NULL;
  m->n = 0;
}

static int bind_strlist(const struct sl_cfg_node *v, struct sl_strlist *out,
                        const char *path, struct sl_error *err) {
  struct sl_strlist l = {0};
  if (v->kind == SL_CFG_SCALAR) {
    l.v = sl_malloc(sizeof(char *));
    l.v[l.n++] = sl_strdup(v->scalar);
  } else if (v->kind == SL_CFG_SEQ) {
    l.v = sl_calloc(v->n ? v->n : 1, sizeof(char *));
    for (size_t i = 0; i < v->n; i++) {
      const struct sl_cfg_node *it = v->items[i];
      if (it->kind != SL_CFG_SCALAR) {
        strlist_free(&l);
        return sl_cfg_error(err, it, "%s[%zu]: expected a string, got %s", path,
                            i, sl_cfg_kind_name(it));
      }
      l.v[l.n++] = sl_strdup(it->scalar);
    }
  } else {
    return field_error(err, v, path, "expected a list of strings, got %s",
                       sl_cfg_kind_name(v));
  }
  *out = l;
  return 0;
}

static int bind_strmap(const struct sl_cfg_node *v, struct sl_strmap *out,
                       const char *path, struct sl_error *err) {
  struct sl_strmap m = {0};
  if (v->kind != SL_CFG_MAP)
    return field_error(err, v, path, "expected a map of strings, got %s",
                       sl_cfg_kind_name(v));
  m.keys = sl_calloc(v->n ? v->n : 1, sizeof(char *));
  m.values = sl_calloc(v->n ? v->n : 1, sizeof(char *));
  for (size_t i = 0; i < v->n; i++) {
    const struct sl_cfg_node *it = v->items[i];
    if (it->kind != SL_CFG_SCALAR) {
      strmap_free(&m);
      return sl_cfg_error(err, it, "%s.%s: expected a string, got %s", path,
                          v->keys[i]->scalar, sl_cfg_kind_name(it));
    }
    m.keys[m.n] = sl_strdup(v->keys[i]->scalar);
    m.values[m.n++] = sl_strdup(it->scalar);
  }
  *out = m;
  return 0;
}

/* Converts present value v (not null) into the field's slot. */
static int bind_value(const struct sl_cfg_field *f, const struct sl_cfg_node *v,
                      void *base, const char *path, struct sl_error *err) {
  void *slot = SLOT(base, f);
  bool secret = (f->flags & SL_CFG_SECRET) != 0;
  char why[SL_CFG_WHY_MAX];
  int64_t i64 = 0;
  int rc = 0;

  switch (f->type) {
  case SL_CFG_T_STRLIST:
    return bind_strlist(v, slot, path, err);
  case SL_CFG_T_STRMAP:
    return bind_strmap(v, slot, path, err);
  case SL_CFG_T_SECTION:
    if (v->kind != SL_CFG_MAP)
      return field_error(err, v, path, "expected a map, got %s",
                         sl_cfg_kind_name(v));
    return sl_cfg_bind(v, v, f->section, slot, path, err);
  case SL_CFG_T_NODE:
    *(const struct sl_cfg_node **)slot = v;
    return 0;
  default:
    break;
  }

  if (v->kind != SL_CFG_SCALAR)
    return field_error(err, v, path, "expected %s, got %s", type_want(f->type),
                       sl_cfg_kind_name(v));
  switch (f->type) {
  case SL_CFG_T_STR:
    *(char **)slot = sl_strdup(v->scalar);
    return 0;
  case SL_CFG_T_BOOL:
    rc = sl_cfg_conv_bool(v->scalar, secret, slot, why, sizeof(why));
    break;
  case SL_CFG_T_ENUM:
    return bind_enum(f, v, slot, path, err);
  case SL_CFG_T_INT:
    rc = sl_cfg_conv_int(v->scalar, secret, &i64, why, sizeof(why));
    break;
  case SL_CFG_T_DURATION:
    rc = sl_cfg_conv_duration(v->scalar, secret, &i64, why, sizeof(why));
    break;
  case SL_CFG_T_SIZE:
    rc = sl_cfg_conv_size(v->scalar, secret, &i64, why, sizeof(why));
    break;
  default:
    return field_error(err, v, path, "unsupported field type %d", (int)f->type);
  }
  if (rc)
    return field_error(err, v, path, "%s", why);
  if (f->type == SL_CFG_T_BOOL)
    return 0;
  if (check_range(f, v, i64, path, err))
    return SL_ERR_CONFIG;
  *(int64_t *)slot = i64;
  return 0;
}

/* An absent (or null) key: the default, or the type's zero value. Defaults
 * go through the same converters, unpositioned, as "path (default)". */
static int bind_default(const struct sl_cfg_field *f,
                        const struct sl_cfg_node *where, void *base,
                        const char *path, struct sl_error *err) {
  void *slot = SLOT(base, f);
  char *dpath = NULL;
  int rc = 0;

  switch (f->type) {
  case SL_CFG_T_SECTION:
    return sl_cfg_bind(NULL, where, f->section, slot, path, err);
  case SL_CFG_T_NODE:
    *(const struct sl_cfg_node **)slot = NULL;
    return 0;
  case SL_CFG_T_STR:
    *(char **)slot = f->def ? sl_strdup(f->def) : NULL;
    return 0;
  case SL_CFG_T_STRLIST:
    memset(slot, 0, sizeof(struct sl_strlist));
    break;
  case SL_CFG_T_STRMAP:
    memset(slot, 0, sizeof(struct sl_strmap));
    break;
  case SL_CFG_T_BOOL:
    *(bool *)slot = false;
    break;
  case SL_CFG_T_ENUM:
    *(int *)slot = 0;
    break;
  default:
    *(int64_t *)slot = 0;
    break;
  }
  if (!f->def)
    return 0;

  dpath = sl_malloc(strlen(path) + sizeof(" (default)"));
  sprintf(dpath, "%s (default)", path);
  if (f->type == SL_CFG_T_STRLIST || f->type == SL_CFG_T_STRMAP) {
    /* Written as YAML: "[a, b]" or "{k: v}". */
    struct sl_cfg_node *n =
        sl_cfg_parse_value("default", f->def, 0, false, err);
    if (!n)
      rc = sl_error_prefix(err, "%s", dpath);
    else
      rc = bind_value(f, n, base, dpath, err);
    sl_cfg_node_free(n);
  } else {
    struct sl_cfg_node tmp = {
        .kind = SL_CFG_SCALAR, .scalar = (char *)f->def, .plain = true};
    rc = bind_value(f, &tmp, base, dpath, err);
  }
  free(dpath);
  return rc;
}

/* Frees one field's allocations and clears its pointers. */
static void unbind_field(const struct sl_cfg_field *f, void *base) {
  void *slot = SLOT(base, f);
  switch (f->type) {
  case SL_CFG_T_STR:
    free(*(char **)slot);
    *(char **)slot = NULL;
    break;
  case SL_CFG_T_STRLIST:
    strlist_free(slot);
    break;
  case SL_CFG_T_STRMAP:
    strmap_free(slot);
    break;
  case SL_CFG_T_SECTION:
    if (f->section)
      sl_cfg_unbind(f->section, slot);
    break;
  case SL_CFG_T_NODE:
    *(const struct sl_cfg_node **)slot = NULL;
    break;
  default:
    break;
  }
}

/* Binds one field from map (which may be NULL). */
static int bind_field(const struct sl_cfg_field *f,
                      const struct sl_cfg_node *map,
                      const struct sl_cfg_node *where, void *base,
                      const char *ctx, struct sl_error *err) {
  const struct sl_cfg_node *v = sl_cfg_get(map, f->key);
  char *path = key_path(ctx, f->key);
  int rc;

  if (v && (f->type == SL_CFG_T_NODE || !is_null(v))) {
    rc = bind_value(f, v, base, path, err);
  } else if (f->flags & SL_CFG_REQUIRED) {
    char loc[256];
    where_text(ctx, loc, sizeof(loc));
    if (v)
      rc = sl_cfg_error(err, v, "%s: a value is required, got null", path);
    else
      rc =
          sl_cfg_error(err, where, "missing required key '%s' %s", f->key, loc);
  } else {
    rc = bind_default(f, v ? v : where, base, path, err);
  }
  free(path);
  return rc;
}

/* Whether required field f is absent from map and an unknown key there
 * is a near miss of it. */
static bool misspelled(const struct sl_cfg_field *f,
                       const struct sl_cfg_node *map,
                       const struct sl_cfg_field *table) {
  if (!(f->flags & SL_CFG_REQUIRED) || !map || sl_cfg_get(map, f->key))
    return false;
  for (size_t i = 0; i < map->n; i++) {
    const char *k = map->keys[i]->scalar;
    if (!find_field(table, k)) {
      const char *s = sl_cfg_suggest(table, k);
      if (s && strcmp(s, f->key) == 0)
        return true;
    }
  }
  return false;
}

int sl_cfg_bind(const struct sl_cfg_node *map,
                const struct sl_cfg_node *where_absent,
                const struct sl_cfg_field *table, void *base,
                const char *context, struct sl_error *err) {
  const char *ctx = context ? context : "";
  const struct sl_cfg_node *where = map ? map : where_absent;

  if (!table)
    return 0;
  if (map && map->kind != SL_CFG_MAP) {
    if (*ctx)
      return sl_cfg_error(err, map, "%s: expected a map, got %s", ctx,
                          sl_cfg_kind_name(map));
    return sl_cfg_error(err, map, "expected a map at top level, got %s",
                        sl_cfg_kind_name(map));
  }
  /* Collecting every error (diags.h): all unknown keys, then every
   * field; a field in error is left unset, the others stay bound, and the
   * caller unbinds the whole table. */
  bool all = sl_cfg_collecting();
  int first = 0;
  for (size_t i = 0; map && i < map->n; i++)
    if (!find_field(table, map->keys[i]->scalar)) {
      int rc = unknown_key(map->keys[i], table, ctx, err);
      if (!all)
        return rc;
      first = first ? first : rc;
    }

  for (size_t i = 0; table[i].key && (!first || all); i++) {
    int rc;
    if (all && misspelled(&table[i], map, table))
      /* "unknown key 'topcs'; did you mean 'topics'?" already says it */
      rc = sl_error_set(err, SL_ERR_CONFIG, "missing required key '%s'",
                        table[i].key);
    else
      rc = bind_field(&table[i], map, where, base, ctx, err);
    if (rc && !all) {
      while (i-- > 0)
        unbind_field(&table[i], base);
      return rc;
    }
    first = first ? first : rc;
  }
  return first;
}

void sl_cfg_unbind(const struct sl_cfg_field *table, void *base) {
  if (!table || !base)
    return;
  for (const struct sl_cfg_field *f = table; f->key; f++)
    unbind_field(f, base);
}
