/* pipeline.c - see pipeline.h. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/diags.h"
#include "buf.h"
#include "json.h"
#include "util.h"

/* ---------------------------------------------------------- operators */

enum op_kind { OP_FILTER, OP_MAP, OP_SELECT, OP_DROP };

/* A field name split at dots: map/select/drop address nested fields. */
struct path {
  char **seg;
  size_t n;
};

struct op {
  enum op_kind kind;
  struct sl_expr *expr; /* filter */
  size_t n;             /* map / select / drop */
  struct path *paths;
  struct sl_expr **exprs; /* map */
  bool disjoint;          /* select: no path is, or is inside, another */
};

struct window_op {
  struct sl_window_spec spec;
  struct sl_expr *time;
  struct sl_expr **groups;
  char **group_names;
  struct sl_expr **args; /* NULL entries for count() */
  char **agg_names;
  enum sl_agg_kind *kinds;
};

struct sl_pipeline {
  bool parse_json;
  size_t max_record_bytes; /* 0: no limit */
  struct sl_top *top;
  struct op *pre, *post;
  size_t npre, npost;
  struct window_op *win;
};

static void path_free(struct path *p) {
  for (size_t i = 0; i < p->n; i++)
    free(p->seg[i]);
  free(p->seg);
}

static void path_split(struct path *p, const char *name) {
  memset(p, 0, sizeof(*p));
  const char *s = name;
  for (;;) {
    const char *dot = strchr(s, '.');
    size_t len = dot ? (size_t)(dot - s) : strlen(s);
    p->seg = sl_realloc(p->seg, (p->n + 1) * sizeof(*p->seg));
    p->seg[p->n++] = sl_strndup(s, len);
    if (!dot)
      break;
    s = dot + 1;
  }
}

/* Whether no path equals another or is a prefix of another. */
static bool paths_disjoint(const struct path *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      if (i == j || p[i].n > p[j].n)
        continue;
      size_t k = 0;
      while (k < p[i].n && strcmp(p[i].seg[k], p[j].seg[k]) == 0)
        k++;
      if (k == p[i].n)
        return false;
    }
  return true;
}

static void ops_free(struct op *ops, size_t n) {
  for (size_t i = 0; i < n; i++) {
    sl_expr_free(ops[i].expr);
    for (size_t k = 0; k < ops[i].n; k++) {
      path_free(&ops[i].paths[k]);
      if (ops[i].exprs)
        sl_expr_free(ops[i].exprs[k]);
    }
    free(ops[i].paths);
    free(ops[i].exprs);
  }
  free(ops);
}

static void window_free(struct window_op *w) {
  if (!w)
    return;
  sl_expr_free(w->time);
  for (size_t i = 0; i < w->spec.ngroups; i++) {
    sl_expr_free(w->groups[i]);
    free(w->group_names[i]);
  }
  for (size_t i = 0; i < w->spec.naggs; i++) {
    sl_expr_free(w->args[i]);
    free(w->agg_names[i]);
  }
  free(w->groups);
  free(w->group_names);
  free(w->args);
  free(w->agg_names);
  free(w->kinds);
  free(w);
}

void sl_pipeline_free(struct sl_pipeline *p) {
  if (!p)
    return;
  ops_free(p->pre, p->npre);
  ops_free(p->post, p->npost);
  window_free(p->win);
  if (p->top)
    free(p->top->by);
  free(p->top);
  free(p);
}

/* ------------------------------------------------------------ compile */

static bool valid_name(const char *s) {
  if (!*s)
    return false;
  for (const char *c = s; *c; c++)
    if (*c == '.' && (c == s || c[1] == '.' || c[1] == '\0'))
      return false;
  return true;
}

/* Parses an expression held by a scalar node; errors point at the node
 * and give the column inside the expression. */
static struct sl_expr *compile_expr(const struct sl_cfg_node *n,
                                    const char *what, const char *src,
                                    struct sl_error *err) {
  int col = 0;
  struct sl_error e = {0};
  if (!src && n->kind != SL_CFG_SCALAR) {
    sl_cfg_error(err, n, "%s: expected an expression (a string)", what);
    return NULL;
  }
  struct sl_expr *x = sl_expr_parse(src ? src : n->scalar, &col, &e);
  if (!x)
    sl_cfg_error(err, n, "%s: %s", what, e.msg);
  return x;
}

static int compile_fields(const struct sl_cfg_node *v, const char *what,
                          struct op *op, struct sl_error *err) {
  if (v->kind == SL_CFG_SCALAR) {
    op->paths = sl_calloc(1, sizeof(*op->paths));
    op->n = 1;
    if (!valid_name(v->scalar))
      return sl_cfg_error(err, v, "%s: '%s' is not a field name", what,
                          v->scalar);
    path_split(&op->paths[0], v->scalar);
    return 0;
  }
  if (v->kind != SL_CFG_SEQ || v->n == 0)
    return sl_cfg_error(err, v, "%s: expected a list of field names", what);
  op->paths = sl_calloc(v->n, sizeof(*op->paths));
  for (size_t i = 0; i < v->n; i++) {
    const struct sl_cfg_node *f = v->items[i];
    if (f->kind != SL_CFG_SCALAR || !valid_name(f->scalar))
      return sl_cfg_error(err, f, "%s: expected a field name", what);
    path_split(&op->paths[op->n++], f->scalar);
  }
  return 0;
}

static int compile_map(const struct sl_cfg_node *v, struct op *op,
                       struct sl_error *err) {
  if (v->kind != SL_CFG_MAP || v->n == 0)
    return sl_cfg_error(err, v,
                        "map: expected fields and expressions, e.g. "
                        "{cents: 'amount * 100'}");
  op->paths = sl_calloc(v->n, sizeof(*op->paths));
  op->exprs = sl_calloc(v->n, sizeof(*op->exprs));
  for (size_t i = 0; i < v->n; i++) {
    if (!valid_name(v->keys[i]->scalar))
      return sl_cfg_error(err, v->keys[i], "map: '%s' is not a field name",
                          v->keys[i]->scalar);
    path_split(&op->paths[i], v->keys[i]->scalar);
    op->n = i + 1;
    char what[128];
    snprintf(what, sizeof(what), "map.%s", v->keys[i]->scalar);
    op->exprs[i] = compile_expr(v->items[i], what, NULL, err);
    if (!op->exprs[i])
      return err->code;
  }
  return 0;
}

static const struct {
  const char *name;
  enum sl_agg_kind kind;
} agg_fns[] = {
    {"count", SL_AGG_COUNT}, {"sum", SL_AGG_SUM},
    {"min", SL_AGG_MIN},     {"max", SL_AGG_MAX},
    {"avg", SL_AGG_AVG},     {"count_distinct", SL_AGG_COUNT_DISTINCT}};

/* "sum(amount * 2)" -> kind sum, argument expression. */
static int compile_agg(struct window_op *w, size_t i, const char *name,
                       const struct sl_cfg_node *v, struct sl_error *err) {
  if (v->kind != SL_CFG_SCALAR)
    return sl_cfg_error(err, v, "aggregate %s: expected fn(expression)", name);
  const char *s = v->scalar, *open = strchr(s, '(');
  size_t len = strlen(s);
  while (len && (s[len - 1] == ' '))
    len--;
  if (!open || len == 0 || s[len - 1] != ')')
    return sl_cfg_error(err, v,
                        "aggregate %s: expected count(), sum(x), min(x), "
                        "max(x), avg(x) or count_distinct(x), not '%s'",
                        name, s);
  size_t fl = (size_t)(open - s);
  while (fl && s[fl - 1] == ' ')
    fl--;
  size_t k = 0;
  for (; k < SL_ARRAY_LEN(agg_fns); k++)
    if (strlen(agg_fns[k].name) == fl && strncmp(agg_fns[k].name, s, fl) == 0)
      break;
  if (k == SL_ARRAY_LEN(agg_fns))
    return sl_cfg_error(err, v,
                        "aggregate %s: unknown function '%.*s' (known: "
                        "count, sum, min, max, avg, count_distinct)",
                        name, (int)fl, s);
  w->kinds[i] = agg_fns[k].kind;
  char *inner = sl_strndup(open + 1, (size_t)(s + len - 1 - (open + 1)));
  bool empty = strspn(inner, " ") == strlen(inner);
  int rc = 0;
  if (w->kinds[i] == SL_AGG_COUNT) {
    if (!empty)
      rc =
          sl_cfg_error(err, v, "aggregate %s: count() takes no argument", name);
  } else if (empty) {
    rc = sl_cfg_error(err, v, "aggregate %s: %s() needs an argument", name,
                      agg_fns[k].name);
  } else {
    char what[160];
    snprintf(what, sizeof(what),
             "aggregate %s (expression starts at column "
             "%d)",
             name, (int)(open - s) + 2);
    w->args[i] = compile_expr(v, what, inner, err);
    if (!w->args[i])
      rc = err->code;
  }
  free(inner);
  return rc;
}

static int duration_ms(const struct sl_cfg_node *n, int64_t *out,
                       struct sl_error *err) {
  int64_t ns;
  if (sl_cfg_duration(n, &ns, err))
    return err->code;
  if (ns <= 0 || ns % 1000000)
    return sl_cfg_error(err, n,
                        "expected a positive whole number of "
                        "milliseconds (e.g. 10s, 500ms)");
  *out = ns / 1000000;
  return 0;
}

static int compile_window(const struct sl_cfg_node *v, struct window_op **out,
                          struct sl_error *err) {
  static const char *const keys[] = {"tumbling",  "hopping",  "time",
                                     "watermark", "group_by", "aggregate",
                                     "output",    NULL};
  if (v->kind != SL_CFG_MAP)
    return sl_cfg_error(err, v, "window: expected a map");
  for (size_t i = 0; i < v->n; i++) {
    bool known = false;
    for (size_t k = 0; keys[k]; k++)
      known |= strcmp(keys[k], v->keys[i]->scalar) == 0;
    if (!known) {
      const char *best = sl_suggest_name(v->keys[i]->scalar, keys);
      if (best)
        return sl_cfg_error(err, v->keys[i],
                            "unknown key '%s' in window; did you mean '%s'?",
                            v->keys[i]->scalar, best);
      return sl_cfg_error(err, v->keys[i],
                          "unknown key '%s' in window (known: tumbling, "
                          "hopping, time, watermark, group_by, aggregate, "
                          "output)",
                          v->keys[i]->scalar);
    }
  }
  struct window_op *w = sl_calloc(1, sizeof(*w));
  *out = w;
  const struct sl_cfg_node *tum = sl_cfg_get(v, "tumbling"),
                           *hop = sl_cfg_get(v, "hopping"),
                           *tm = sl_cfg_get(v, "time"),
                           *wm = sl_cfg_get(v, "watermark"),
                           *gb = sl_cfg_get(v, "group_by"),
                           *ag = sl_cfg_get(v, "aggregate"),
                           *om = sl_cfg_get(v, "output");
  if (!!tum == !!hop)
    return sl_cfg_error(err, v,
                        "window: give exactly one of tumbling: SIZE or "
                        "hopping: {size: SIZE, slide: SLIDE}");
  if (tum) {
    if (duration_ms(tum, &w->spec.size_ms, err))
      return err->code;
    w->spec.slide_ms = w->spec.size_ms;
  } else {
    const struct sl_cfg_node *sz = hop->kind == SL_CFG_MAP
                                       ? sl_cfg_get(hop, "size")
                                       : NULL,
                             *sd = hop->kind == SL_CFG_MAP
                                       ? sl_cfg_get(hop, "slide")
                                       : NULL;
    if (!sz || !sd || hop->n != 2)
      return sl_cfg_error(err, hop,
                          "hopping: expected {size: SIZE, slide: SLIDE}");
    if (duration_ms(sz, &w->spec.size_ms, err) ||
        duration_ms(sd, &w->spec.slide_ms, err))
      return err->code;
    if (w->spec.slide_ms > w->spec.size_ms)
      return sl_cfg_error(err, sd, "hopping: slide must not exceed size");
  }
  if (!tm)
    return sl_cfg_error(err, v,
                        "window: missing required key 'time' (the event "
                        "time field, ms since the epoch)");
  if (!(w->time = compile_expr(tm, "window.time", NULL, err)))
    return err->code;
  if (wm) {
    int64_t ns;
    if (sl_cfg_duration(wm, &ns, err))
      return err->code;
    w->spec.lateness_ms = ns / 1000000;
  }
  w->spec.mode = SL_WINDOW_UPDATE;
  if (om) {
    if (om->kind == SL_CFG_SCALAR && strcmp(om->scalar, "append") == 0)
      w->spec.mode = SL_WINDOW_APPEND;
    else if (om->kind == SL_CFG_SCALAR && strcmp(om->scalar, "merge") == 0)
      w->spec.mode = SL_WINDOW_MERGE;
    else if (om->kind != SL_CFG_SCALAR || strcmp(om->scalar, "update") != 0)
      return sl_cfg_error(err, om, "output must be update, append or merge");
  }
  if (w->spec.mode == SL_WINDOW_MERGE && wm)
    return sl_cfg_error(err, wm,
                        "watermark: output: merge keeps no window state: "
                        "every record is added to its window in the sink, "
                        "however late, so there is no watermark; remove it");
  if (gb) {
    size_t n = gb->kind == SL_CFG_SEQ ? gb->n : 1;
    if (gb->kind == SL_CFG_MAP)
      return sl_cfg_error(err, gb, "group_by: expected a list of fields");
    w->groups = sl_calloc(n, sizeof(*w->groups));
    w->group_names = sl_calloc(n, sizeof(*w->group_names));
    for (size_t i = 0; i < n; i++) {
      const struct sl_cfg_node *g = gb->kind == SL_CFG_SEQ ? gb->items[i] : gb;
      const struct sl_cfg_node *e = g;
      const char *name = NULL;
      if (g->kind == SL_CFG_MAP && g->n == 1) { /* {name: expression} */
        name = g->keys[0]->scalar;
        e = g->items[0];
      }
      w->spec.ngroups = i + 1;
      if (!(w->groups[i] = compile_expr(e, "group_by", NULL, err)))
        return err->code;
      if (!name) {
        size_t np;
        const char *const *segs = sl_expr_field_path(w->groups[i], &np);
        if (!segs)
          return sl_cfg_error(err, g,
                              "group_by: name the expression, e.g. "
                              "{day: 'ts / 86400000'}");
        name = segs[np - 1];
      }
      w->group_names[i] = sl_strdup(name);
    }
  }
  if (!ag || ag->kind != SL_CFG_MAP || ag->n == 0)
    return sl_cfg_error(err, ag ? ag : v,
                        "window: aggregate: expected {name: fn(x), ...}, "
                        "e.g. {revenue: sum(amount), orders: count()}");
  w->args = sl_calloc(ag->n, sizeof(*w->args));
  w->agg_names = sl_calloc(ag->n, sizeof(*w->agg_names));
  w->kinds = sl_calloc(ag->n, sizeof(*w->kinds));
  for (size_t i = 0; i < ag->n; i++) {
    const char *name = ag->keys[i]->scalar;
    w->agg_names[i] = sl_strdup(name);
    w->spec.naggs = i + 1;
    for (size_t g = 0; g < w->spec.ngroups; g++)
      if (strcmp(w->group_names[g], name) == 0)
        return sl_cfg_error(err, ag->keys[i],
                            "aggregate '%s' has the name of a group_by field",
                            name);
    if (strcmp(name, "window_start") == 0 || strcmp(name, "window_end") == 0)
      return sl_cfg_error(err, ag->keys[i], "'%s' is a reserved name", name);
    if (compile_agg(w, i, name, ag->items[i], err))
      return err->code;
  }
  for (size_t i = 0; w->spec.mode == SL_WINDOW_MERGE && i < ag->n; i++)
    if (w->kinds[i] == SL_AGG_AVG || w->kinds[i] == SL_AGG_COUNT_DISTINCT)
      return sl_cfg_error(
          err, ag->items[i],
          "aggregate '%s': %s does not merge in the sink (output: merge adds "
          "each batch's contribution to what the sink holds): %s",
          w->agg_names[i], w->kinds[i] == SL_AGG_AVG ? "avg" : "count_distinct",
          w->kinds[i] == SL_AGG_AVG
              ? "aggregate sum() and count() and divide when reading"
              : "add the values to a HyperLogLog with PFADD from a "
                "pipeline without a window, or use output: update");
  w->spec.group_names = (const char *const *)w->group_names;
  w->spec.agg_names = (const char *const *)w->agg_names;
  w->spec.agg_kinds = w->kinds;
  w->spec.shards = 64;
  return 0;
}

int sl_pipeline_compile(const struct sl_cfg_node *list,
                        struct sl_pipeline **out, struct sl_error *err) {
  struct sl_pipeline *p = sl_calloc(1, sizeof(*p));
  *out = NULL;
  if (!list) {
    *out = p;
    return 0;
  }
  if (list->kind != SL_CFG_SEQ) {
    sl_pipeline_free(p);
    return sl_cfg_error(err, list,
                        "pipeline: expected a list of operators "
                        "(- parse: json, - filter: ..., ...)");
  }
  static const char *const names[] = {"parse", "filter", "map", "select",
                                      "drop",  "window", "top", NULL};
  int rc = 0;
  /* While every error of the file is collected (config/diags.h), a bad
   * operator does not stop the next one; after a bad window the rest
   * would only repeat its error, so that stops. */
  bool all = sl_cfg_collecting();
  int first = 0;
  for (size_t i = 0; i < list->n && (!rc || all); i++) {
    if (rc) {
      first = first ? first : rc;
      rc = 0;
    }
    const struct sl_cfg_node *item = list->items[i];
    if (item->kind != SL_CFG_MAP || item->n != 1) {
      rc = sl_cfg_error(err, item,
                        "pipeline: each operator is one key: parse, "
                        "filter, map, select, drop or window");
      continue;
    }
    const char *name = item->keys[0]->scalar;
    const struct sl_cfg_node *v = item->items[0];
    size_t k = 0;
    while (names[k] && strcmp(names[k], name) != 0)
      k++;
    if (!names[k]) {
      const char *best = sl_suggest_name(name, names);
      rc = best ? sl_cfg_error(err, item->keys[0],
                               "unknown operator '%s'; did you mean '%s'?",
                               name, best)
                : sl_cfg_error(err, item->keys[0],
                               "unknown operator '%s' (known: parse, filter, "
                               "map, select, drop, window, top)",
                               name);
      continue;
    }
    if (k == 0) { /* parse */
      if (i != 0)
        rc = sl_cfg_error(err, item, "parse must be the first operator");
      else if (v->kind != SL_CFG_SCALAR || strcmp(v->scalar, "json") != 0)
        rc = sl_cfg_error(err, v, "parse: only json is supported");
      p->parse_json = true; /* also after an error: the rest need it */
      continue;
    }
    if (k != 1 && !p->parse_json) {
      rc = sl_cfg_error(
          err, item, "%s needs JSON records: put `- parse: json` first", name);
      continue;
    }
    if (p->top) {
      rc = sl_cfg_error(err, item, "top must be the last operator");
      continue;
    }
    if (k == 6) { /* top */
      if (!p->win || p->win->spec.mode != SL_WINDOW_APPEND) {
        rc = sl_cfg_error(err, item,
                          "top ranks complete windows: it needs a window "
                          "with output: append before it");
        continue;
      }
      const struct sl_cfg_node *nn = v->kind == SL_CFG_MAP ? sl_cfg_get(v, "n")
                                                           : NULL,
                               *by = v->kind == SL_CFG_MAP ? sl_cfg_get(v, "by")
                                                           : NULL;
      int64_t n = 0;
      if (!nn || !by || v->n != 2 || by->kind != SL_CFG_SCALAR) {
        rc = sl_cfg_error(err, v, "top: expected {n: N, by: FIELD}");
        continue;
      }
      if ((rc = sl_cfg_int(nn, &n, err)))
        continue;
      if (n < 1) {
        rc = sl_cfg_error(err, nn, "top: n must be at least 1");
        continue;
      }
      p->top = sl_calloc(1, sizeof(*p->top));
      p->top->n = n;
      p->top->by = sl_strdup(by->scalar);
      continue;
    }
    if (k == 5) { /* window */
      if (p->win) {
        rc = sl_cfg_error(err, item, "only one window per pipeline");
        continue;
      }
      rc = compile_window(v, &p->win, err);
      if (rc)
        break;
      continue;
    }
    if (p->win && p->win->spec.mode == SL_WINDOW_MERGE) {
      rc = sl_cfg_error(err, item,
                        "%s after a window with output: merge would see each "
                        "batch's contribution to a window, not its total: "
                        "put it before the window",
                        name);
      continue;
    }
    struct op **ops = p->win ? &p->post : &p->pre;
    size_t *n = p->win ? &p->npost : &p->npre;
    *ops = sl_realloc(*ops, (*n + 1) * sizeof(**ops));
    struct op *op = &(*ops)[(*n)++];
    memset(op, 0, sizeof(*op));
    switch (k) {
    case 1:
      op->kind = OP_FILTER;
      if (!(op->expr = compile_expr(v, "filter", NULL, err)))
        rc = err->code;
      else if (sl_expr_static_type(op->expr) >= 0 &&
               sl_expr_static_type(op->expr) != SL_V_BOOL &&
               sl_expr_static_type(op->expr) != SL_V_NULL)
        rc = sl_cfg_error(err, v, "filter: the expression is not a boolean");
      break;
    case 2:
      op->kind = OP_MAP;
      rc = compile_map(v, op, err);
      break;
    case 3:
      op->kind = OP_SELECT;
      rc = compile_fields(v, "select", op, err);
      op->disjoint = !rc && paths_disjoint(op->paths, op->n);
      break;
    case 4:
      op->kind = OP_DROP;
      rc = compile_fields(v, "drop", op, err);
      break;
    }
  }
  rc = first ? first : rc;
  if (rc) {
    sl_pipeline_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

const struct sl_top *sl_pipeline_top(const struct sl_pipeline *p) {
  return p->top;
}

struct ranked {
  char *text;
  int64_t start, end;
  double by;
  bool has_by;
};

static int rank_cmp(const void *a, const void *b) {
  const struct ranked *x = a, *y = b;
  if (x->start != y->start)
    return x->start < y->start ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  if (x->has_by != y->has_by)
    return x->has_by ? -1 : 1; /* rows without the field rank last */
  if (x->by != y->by)
    return x->by > y->by ? -1 : 1;
  return strcmp(x->text, y->text);
}

void sl_pipeline_apply_top(const struct sl_pipeline *p, char **rows,
                           size_t *n) {
  struct ranked *r = sl_calloc(*n ? *n : 1, sizeof(*r));
  for (size_t i = 0; i < *n; i++) {
    cJSON *o = cJSON_Parse(rows[i]);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "window_start");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "window_end");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, p->top->by);
    r[i] = (struct ranked){
        .text = rows[i],
        .start = cJSON_IsNumber(s) ? (int64_t)s->valuedouble : 0,
        .end = cJSON_IsNumber(e) ? (int64_t)e->valuedouble : 0,
        .has_by = cJSON_IsNumber(b),
        .by = cJSON_IsNumber(b) ? b->valuedouble : 0};
    cJSON_Delete(o);
  }
  qsort(r, *n, sizeof(*r), rank_cmp);
  size_t k = 0, rank = 0;
  for (size_t i = 0; i < *n; i++) {
    if (i == 0 || r[i].start != r[i - 1].start || r[i].end != r[i - 1].end)
      rank = 0;
    if ((int64_t)rank++ < p->top->n)
      rows[k++] = r[i].text;
    else
      free(r[i].text);
  }
  *n = k;
  free(r);
}

bool sl_pipeline_parses_json(const struct sl_pipeline *p) {
  return p->parse_json;
}

const struct sl_window_spec *sl_pipeline_window(const struct sl_pipeline *p) {
  return p->win ? &p->win->spec : NULL;
}

void sl_pipeline_set_max_record_bytes(struct sl_pipeline *p, size_t n) {
  p->max_record_bytes = n;
}

size_t sl_pipeline_ops(const struct sl_pipeline *p) {
  return p->npre + p->npost + (p->win ? 1 : 0) + (p->parse_json ? 1 : 0) +
         (p->top ? 1 : 0);
}

/* ---------------------------------------------------------------- run */

struct sl_pipe_task {
  const struct sl_pipeline *pl;
  struct sl_arena arena;
  struct sl_wpartial *partial;
  struct sl_pipe_stats st;
  /* serialized outputs and dead letters; records point into the buffers
   * once a chunk is done (offsets until then: the buffers move) */
  struct sl_buf obuf, dbuf;
  size_t *ooff, *doff;
  size_t ooffcap, doffcap;
  struct sl_record *dsrc; /* dead letters keep their source coordinates */
  size_t dsrccap;
  /* rows emitted by the last sl_pipe_post, alive for the sink (the
   * records' row) until the next call or the task's end */
  cJSON **rows;
  size_t nrows, rowscap;
};

static void drop_rows(struct sl_pipe_task *t) {
  for (size_t i = 0; i < t->nrows; i++)
    cJSON_Delete(t->rows[i]);
  t->nrows = 0;
}

struct sl_pipe_task *sl_pipe_task_new(const struct sl_pipeline *p) {
  struct sl_pipe_task *t = sl_calloc(1, sizeof(*t));
  t->pl = p;
  if (p->win)
    t->partial = sl_wpartial_new(&p->win->spec);
  return t;
}

void sl_pipe_task_trim(struct sl_pipe_task *t) {
  if (!t)
    return;
  sl_arena_free(&t->arena);
  drop_rows(t);
}

void sl_pipe_task_free(struct sl_pipe_task *t) {
  if (!t)
    return;
  sl_arena_free(&t->arena);
  drop_rows(t);
  free(t->rows);
  sl_wpartial_free(t->partial);
  sl_buf_free(&t->obuf);
  sl_buf_free(&t->dbuf);
  free(t->ooff);
  free(t->doff);
  free(t->dsrc);
  free(t);
}

struct sl_wpartial *sl_pipe_task_partial(struct sl_pipe_task *t) {
  return t->partial;
}

struct sl_pipe_stats sl_pipe_task_stats(const struct sl_pipe_task *t) {
  return t->st;
}

/* Appends one output: JSON text of row, or the raw record value. */
static void emit_out(struct sl_pipe_task *t, struct sl_batch *out,
                     const struct sl_record *src, const cJSON *row) {
  sl_batch_reserve(out, out->n + 1);
  if (out->n + 1 > t->ooffcap) {
    t->ooffcap = SL_MAX(t->ooffcap * 2, (size_t)256);
    t->ooff = sl_realloc(t->ooff, t->ooffcap * sizeof(*t->ooff));
  }
  struct sl_record *r = &out->recs[out->n];
  if (src)
    *r = *src;
  else
    *r = (struct sl_record){.topic = "", .timestamp = -1};
  r->row = NULL;
  t->ooff[out->n] = t->obuf.len;
  if (row) {
    size_t len0 = t->obuf.len;
    sl_json_append(row, &t->obuf);
    r->value_len = t->obuf.len - len0;
    r->value = NULL; /* fixed up in finish_chunk */
  } else {
    t->ooff[out->n] = (size_t)-1; /* raw: keep the source bytes */
  }
  out->n++;
  t->st.out++;
}

/* Adds bytes under name as a string, or, when they are not UTF-8 text
 * (or hold a NUL, which a JSON reader may cut at), as hex under
 * name_hex: the dead letter stays valid JSON and loses nothing. NULL
 * bytes: name is null. */
static void add_bytes(cJSON *o, const char *name, const char *b, size_t n) {
  if (!b) {
    cJSON_AddNullToObject(o, name);
    return;
  }
  if (sl_utf8_valid(b, n) && !memchr(b, 0, n)) {
    char *v = sl_strndup(b, n);
    cJSON_AddStringToObject(o, name, v);
    free(v);
    return;
  }
  static const char digits[] = "0123456789abcdef";
  char *h = sl_malloc(2 * n + 1);
  for (size_t i = 0; i < n; i++) {
    h[2 * i] = digits[(unsigned char)b[i] >> 4];
    h[2 * i + 1] = digits[(unsigned char)b[i] & 15];
  }
  h[2 * n] = 0;
  char key[32];
  snprintf(key, sizeof(key), "%s_hex", name);
  cJSON_AddStringToObject(o, key, h);
  free(h);
}

char *sl_dead_letter_json(const struct sl_record *src, const char *raw,
                          size_t rawlen, const char *reason) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "reason", reason);
  if (src) {
    cJSON_AddStringToObject(o, "topic", src->topic ? src->topic : "");
    cJSON_AddNumberToObject(o, "partition", src->partition);
    cJSON_AddNumberToObject(o, "offset", (double)src->offset);
    cJSON_AddNumberToObject(o, "timestamp", (double)src->timestamp);
    add_bytes(o, "key", src->key, src->key_len);
  }
  add_bytes(o, "value", raw, rawlen);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!s)
    abort();
  return s;
}

/* A dead letter: the reason, the source coordinates and the raw bytes. */
static void emit_dead(struct sl_pipe_task *t, struct sl_batch *dead,
                      const struct sl_record *src, const char *raw,
                      size_t rawlen, const char *reason) {
  char *s = sl_dead_letter_json(src, raw, rawlen, reason);
  size_t n = strlen(s);
  sl_batch_reserve(dead, dead->n + 1);
  if (dead->n + 1 > t->doffcap) {
    t->doffcap = SL_MAX(t->doffcap * 2, (size_t)64);
    t->doff = sl_realloc(t->doff, t->doffcap * sizeof(*t->doff));
  }
  struct sl_record *r = &dead->recs[dead->n];
  *r = src ? *src : (struct sl_record){.topic = "", .timestamp = -1};
  r->row = NULL; /* a dead letter is its JSON text only */
  r->value_len = n;
  t->doff[dead->n] = t->dbuf.len;
  sl_buf_add(&t->dbuf, s, n);
  cJSON_free(s);
  dead->n++;
  t->st.dead++;
}

static void finish_chunk(struct sl_pipe_task *t, struct sl_batch *out,
                         struct sl_batch *dead) {
  for (size_t i = 0; i < out->n; i++)
    if (t->ooff[i] != (size_t)-1)
      out->recs[i].value = t->obuf.p + t->ooff[i];
  for (size_t i = 0; i < dead->n; i++)
    dead->recs[i].value = t->dbuf.p + t->doff[i];
}

/* Finds (or, with create, makes) the object that holds the last segment
 * of path, walking from row. */
static cJSON *path_parent(cJSON *row, const struct path *p, bool create) {
  cJSON *o = row;
  for (size_t i = 0; i + 1 < p->n; i++) {
    cJSON *c = cJSON_GetObjectItemCaseSensitive(o, p->seg[i]);
    if (!c || !cJSON_IsObject(c)) {
      if (!create)
        return NULL;
      if (c)
        cJSON_DeleteItemFromObjectCaseSensitive(o, p->seg[i]);
      c = cJSON_AddObjectToObject(o, p->seg[i]);
    }
    o = c;
  }
  return o;
}

static void path_set(cJSON *row, const struct path *p, cJSON *v) {
  cJSON *parent = path_parent(row, p, true);
  const char *last = p->seg[p->n - 1];
  if (cJSON_GetObjectItemCaseSensitive(parent, last))
    cJSON_ReplaceItemInObjectCaseSensitive(parent, last, v);
  else
    cJSON_AddItemToObject(parent, last, v);
}

/* Frees a row, unless it lives in the record arena (sl_pipe_run), which
 * reclaims it at once on reset: walking it to free nothing costs time. */
static void row_free(cJSON *row) {
  if (!sl_arena_json_active())
    cJSON_Delete(row);
}

/* select: a new object with only the listed paths (in the listed order).
 * When no listed path overlaps another, the values move from the old row
 * instead of being copied. */
static cJSON *do_select(cJSON *row, const struct op *op) {
  cJSON *n = cJSON_CreateObject();
  for (size_t i = 0; i < op->n; i++) {
    const char *last = op->paths[i].seg[op->paths[i].n - 1];
    cJSON *parent = path_parent(row, &op->paths[i], false);
    cJSON *v = parent ? cJSON_GetObjectItemCaseSensitive(parent, last) : NULL;
    if (v)
      path_set(n, &op->paths[i],
               op->disjoint ? cJSON_DetachItemViaPointer(parent, v)
                            : cJSON_Duplicate(v, 1));
  }
  row_free(row);
  return n;
}

static void do_drop(cJSON *row, const struct op *op) {
  for (size_t i = 0; i < op->n; i++) {
    cJSON *parent = path_parent(row, &op->paths[i], false);
    if (parent)
      cJSON_DeleteItemFromObjectCaseSensitive(
          parent, op->paths[i].seg[op->paths[i].n - 1]);
  }
}

/* Runs ops on *row. Returns 1 to keep, 0 when filtered, <0 on a record
 * error (message in err). *row may be replaced (select). */
static int run_ops(const struct op *ops, size_t n, cJSON **row,
                   const struct sl_eval_ctx *base, struct sl_error *err) {
  struct sl_eval_ctx ctx = *base;
  for (size_t i = 0; i < n; i++) {
    const struct op *op = &ops[i];
    ctx.row = *row;
    switch (op->kind) {
    case OP_FILTER: {
      struct sl_value v;
      if (sl_expr_eval(op->expr, &ctx, &v, err))
        return sl_error_prefix(err, "filter");
      if (v.type != SL_V_BOOL && v.type != SL_V_NULL)
        return sl_error_set(err, SL_ERR_INVAL,
                            "filter: the expression gave %s, not a bool",
                            sl_vtype_name(&v));
      if (v.type != SL_V_BOOL || !v.u.b)
        return 0;
      break;
    }
    case OP_MAP: {
      /* Evaluate all against the incoming row, then set. */
      cJSON *vals[op->n];
      for (size_t k = 0; k < op->n; k++) {
        struct sl_value v;
        if (sl_expr_eval(op->exprs[k], &ctx, &v, err)) {
          for (size_t j = 0; j < k; j++)
            cJSON_Delete(vals[j]);
          return sl_error_prefix(err, "map.%s", op->paths[k].seg[0]);
        }
        vals[k] = sl_value_to_json(&v);
      }
      for (size_t k = 0; k < op->n; k++)
        path_set(*row, &op->paths[k], vals[k]);
      break;
    }
    case OP_SELECT:
      *row = do_select(*row, op);
      break;
    case OP_DROP:
      do_drop(*row, op);
      break;
    }
  }
  return 1;
}

/* Evaluates the window's time, keys and arguments and adds the record to
 * the partial. Returns 0, 1 (late) or <0 (record error). */
static int add_to_window(struct sl_pipe_task *t, const struct sl_eval_ctx *ctx,
                         int64_t watermark, struct sl_error *err) {
  const struct window_op *w = t->pl->win;
  struct sl_value tv, groups[w->spec.ngroups + 1], args[w->spec.naggs + 1];
  if (sl_expr_eval(w->time, ctx, &tv, err))
    return sl_error_prefix(err, "window.time");
  int64_t ms;
  if (tv.type == SL_V_INT)
    ms = tv.u.i;
  else if (tv.type == SL_V_FLOAT && tv.u.f == tv.u.f && tv.u.f > -9.2e18 &&
           tv.u.f < 9.2e18)
    ms = (int64_t)tv.u.f;
  else
    return sl_error_set(err, SL_ERR_INVAL,
                        "window.time: expected ms since the epoch (a "
                        "number), got %s",
                        sl_vtype_name(&tv));
  for (size_t i = 0; i < w->spec.ngroups; i++)
    if (sl_expr_eval(w->groups[i], ctx, &groups[i], err))
      return sl_error_prefix(err, "group_by %s", w->group_names[i]);
  for (size_t i = 0; i < w->spec.naggs; i++) {
    args[i] = SL_NULL;
    if (w->args[i] && sl_expr_eval(w->args[i], ctx, &args[i], err))
      return sl_error_prefix(err, "aggregate %s", w->agg_names[i]);
  }
  return sl_wpartial_add(t->partial, ms, groups, args, watermark, err);
}

int sl_pipe_run(struct sl_pipe_task *t, const struct sl_batch *in,
                int64_t watermark, bool fail_on_error, int64_t now_ms,
                struct sl_batch *out, struct sl_batch *dead,
                struct sl_error *err) {
  const struct sl_pipeline *pl = t->pl;
  out->n = dead->n = 0;
  sl_buf_reset(&t->obuf);
  sl_buf_reset(&t->dbuf);
  struct sl_eval_ctx ctx = {.arena = &t->arena, .now_ms = now_ms};
  int rc = 0;
  /* Each record's cJSON rows live in the arena that is reset per record. */
  sl_arena_json_begin(&t->arena);
  for (size_t i = 0; i < in->n && !rc; i++) {
    const struct sl_record *rec = &in->recs[i];
    struct sl_error e = {0};
    cJSON *row = NULL;
    int r = 1;
    t->st.in++;
    sl_arena_reset(&t->arena);
    ctx.rec = rec;
    size_t bytes = rec->key_len + rec->value_len;
    bool too_large = pl->max_record_bytes && bytes > pl->max_record_bytes;
    if (too_large) {
      sl_error_set(&e, SL_ERR_INVAL,
                   "record too large: %zu bytes > max_record_bytes %zu", bytes,
                   pl->max_record_bytes);
      r = -1;
    } else if (pl->parse_json) {
      struct sl_json_error je;
      row = rec->value ? sl_json_parse_object(rec->value, rec->value_len, &je)
                       : NULL;
      if (!row) {
        if (!rec->value)
          sl_error_set(&e, SL_ERR_INVAL, "parse: the record has no value");
        else if (je.status == SL_JSON_TOO_DEEP)
          sl_error_set(&e, SL_ERR_INVAL,
                       "parse: JSON nested deeper than %d levels",
                       SL_JSON_MAX_DEPTH);
        else if (je.status == SL_JSON_NOT_OBJECT)
          sl_error_set(&e, SL_ERR_INVAL,
                       "parse: expected a JSON object, got %s", je.what);
        else
          sl_error_set(&e, SL_ERR_INVAL, "parse: invalid JSON at byte %zu: %s",
                       je.at, je.what);
        r = -1;
      }
    }
    if (r > 0)
      r = run_ops(pl->pre, pl->npre, &row, &ctx, &e);
    if (r > 0 && pl->win) {
      ctx.row = row;
      int w = add_to_window(t, &ctx, watermark, &e);
      if (w == 1) {
        t->st.late++;
        sl_error_set(&e, SL_ERR_INVAL,
                     "late: event time is behind the watermark %lld",
                     (long long)watermark);
        r = -2;
      } else {
        r = w < 0 ? -1 : 0;
      }
    } else if (r > 0) {
      emit_out(t, out, rec, row);
    } else if (r == 0) {
      t->st.filtered++;
    }
    if (r < 0) {
      if (fail_on_error)
        rc =
            sl_error_setf(err, SL_ERR_INVAL, SL_ERR_FATAL,
                          "record %s[%d]@%lld: %s (on_error: fail)", rec->topic,
                          rec->partition, (long long)rec->offset, e.msg);
      else
        /* An oversized record's bytes stay in the source, at the
         * dead letter's offset: copying them would only move the
         * problem to the dead-letter sink. */
        emit_dead(t, dead, rec, too_large ? NULL : rec->value,
                  too_large ? 0 : rec->value_len, e.msg);
    }
    row_free(row);
  }
  sl_arena_json_end();
  finish_chunk(t, out, dead);
  return rc;
}

int sl_pipe_post(struct sl_pipe_task *t, cJSON **rows, size_t n,
                 bool fail_on_error, int64_t now_ms, struct sl_batch *out,
                 struct sl_batch *dead, struct sl_error *err) {
  const struct sl_pipeline *pl = t->pl;
  struct sl_eval_ctx ctx = {.arena = &t->arena, .now_ms = now_ms};
  out->n = dead->n = 0;
  sl_buf_reset(&t->obuf);
  sl_buf_reset(&t->dbuf);
  drop_rows(t);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    struct sl_error e = {0};
    sl_arena_reset(&t->arena);
    int r = rc ? 0 : run_ops(pl->post, pl->npost, &rows[i], &ctx, &e);
    if (r > 0) {
      emit_out(t, out, NULL, rows[i]);
      /* The sink reads the row itself (record.h): keep it. */
      if (t->nrows == t->rowscap) {
        t->rowscap = SL_MAX(t->rowscap * 2, (size_t)256);
        t->rows = sl_realloc(t->rows, t->rowscap * sizeof(*t->rows));
      }
      t->rows[t->nrows++] = rows[i];
      out->recs[out->n - 1].row = rows[i];
      continue;
    } else if (r < 0) {
      if (fail_on_error) {
        rc = sl_error_setf(err, SL_ERR_INVAL, SL_ERR_FATAL,
                           "window output row: %s (on_error: fail)", e.msg);
      } else {
        char *s = cJSON_PrintUnformatted(rows[i]);
        emit_dead(t, dead, NULL, s, strlen(s), e.msg);
        cJSON_free(s);
      }
    } else if (!rc) {
      t->st.filtered++;
    }
    cJSON_Delete(rows[i]);
  }
  finish_chunk(t, out, dead);
  return rc;
}

struct merge_rows {
  cJSON **v;
  size_t n, cap;
};

static void collect_row(cJSON *row, void *arg) {
  struct merge_rows *m = arg;
  if (m->n == m->cap) {
    m->cap = SL_MAX(m->cap * 2, (size_t)64);
    m->v = sl_realloc(m->v, m->cap * sizeof(*m->v));
  }
  m->v[m->n++] = row;
}

void sl_pipe_merge_out(struct sl_pipe_task *t, const struct sl_record *at,
                       struct sl_batch *out) {
  out->n = 0;
  sl_buf_reset(&t->obuf);
  drop_rows(t);
  if (!t->partial)
    return;
  struct merge_rows m = {0};
  sl_wpartial_emit(t->partial, collect_row, &m);
  for (size_t i = 0; i < m.n; i++) {
    emit_out(t, out, at, m.v[i]);
    if (t->nrows == t->rowscap) {
      t->rowscap = SL_MAX(t->rowscap * 2, (size_t)256);
      t->rows = sl_realloc(t->rows, t->rowscap * sizeof(*t->rows));
    }
    t->rows[t->nrows++] = m.v[i];
    out->recs[out->n - 1].row = m.v[i];
  }
  free(m.v);
  for (size_t i = 0; i < out->n; i++)
    out->recs[i].value = t->obuf.p + t->ooff[i];
}

/* ------------------------------------------------------ output fields */

static void names_add(char ***v, size_t *n, const char *name) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*v)[i], name) == 0)
      return;
  *v = sl_realloc(*v, (*n + 2) * sizeof(**v));
  (*v)[(*n)++] = sl_strdup(name);
  (*v)[*n] = NULL;
}

static void names_del(char **v, size_t *n, const char *name) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp(v[i], name) == 0) {
      free(v[i]);
      memmove(v + i, v + i + 1, (*n - i) * sizeof(*v)); /* with the NULL */
      (*n)--;
      return;
    }
}

static void names_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* Applies select/map/drop to a known set of top-level names. */
static bool ops_fields(const struct op *ops, size_t nops, bool known, char ***v,
                       size_t *n) {
  for (size_t i = 0; i < nops; i++) {
    const struct op *o = &ops[i];
    if (o->kind == OP_SELECT) {
      names_free(*v, *n);
      *v = NULL;
      *n = 0;
      for (size_t k = 0; k < o->n; k++)
        names_add(v, n, o->paths[k].seg[0]);
      known = true;
    } else if (known && o->kind == OP_MAP) {
      for (size_t k = 0; k < o->n; k++)
        names_add(v, n, o->paths[k].seg[0]);
    } else if (known && o->kind == OP_DROP) {
      for (size_t k = 0; k < o->n; k++)
        if (o->paths[k].n == 1)
          names_del(*v, n, o->paths[k].seg[0]);
    }
  }
  return known;
}

char **sl_pipeline_output_fields(const struct sl_pipeline *p) {
  char **v = NULL;
  size_t n = 0;
  bool known;
  if (!p->parse_json)
    return NULL;
  if (p->win) {
    names_add(&v, &n, "window_start");
    names_add(&v, &n, "window_end");
    for (size_t i = 0; i < p->win->spec.ngroups; i++)
      names_add(&v, &n, p->win->group_names[i]);
    for (size_t i = 0; i < p->win->spec.naggs; i++)
      names_add(&v, &n, p->win->agg_names[i]);
    known = ops_fields(p->post, p->npost, true, &v, &n);
  } else {
    known = ops_fields(p->pre, p->npre, false, &v, &n);
  }
  if (!known) {
    names_free(v, n);
    return NULL;
  }
  if (!v)
    v = sl_calloc(1, sizeof(*v));
  return v;
}
