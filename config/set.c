/*
 * set.c - "--set a.b.c=value" overrides applied to a loaded tree.
 *
 * The value is parsed as YAML (wrapped as "v: value", so flow lists and
 * maps work and so does "host:9092"), interpolated like file values, and
 * errors point at the column inside the argument: "--set:1:COL: ...".
 */
#include "config.h"
#include "cfg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "../src/util.h"

/* More segments than this is not a real job option. */
#define SL_SET_MAX_SEGMENTS 64

static int set_error(struct sl_error *err, size_t col0, const char *what,
                     const char *detail) {
  return sl_error_set(err, SL_ERR_CONFIG, "%s:1:%zu: %s%s", SL_CFG_SET_FILE,
                      col0 + 1, what, detail);
}

/* Checks the dotted path: no empty segment, not too many. */
static int check_path(const char *a, size_t len, struct sl_error *err) {
  size_t segments = 1, start = 0;
  if (len == 0)
    return set_error(err, 0,
                     "empty key path before '=' (expected key.path=value)", "");
  for (size_t i = 0; i <= len; i++) {
    if (i < len && a[i] != '.')
      continue;
    if (i == start)
      return sl_error_set(err, SL_ERR_CONFIG,
                          "%s:1:%zu: empty key in path '%.*s'", SL_CFG_SET_FILE,
                          start + 1, (int)len, a);
    if (i < len && ++segments > SL_SET_MAX_SEGMENTS)
      return set_error(err, i, "key path has too many segments", "");
    start = i + 1;
  }
  return 0;
}

int sl_cfg_apply_set(struct sl_cfg_node *root, const char *assignment,
                     struct sl_error *err) {
  const char *eq = strchr(assignment, '=');
  struct sl_cfg_node *value, *cur = root;
  size_t path_len, start = 0;

  if (!root || root->kind != SL_CFG_MAP)
    return sl_error_set(err, SL_ERR_INVAL, "--set: no configuration map");
  if (!eq)
    return sl_error_set(err, SL_ERR_CONFIG,
                        "%s:1:1: expected key.path=value, got '%s'",
                        SL_CFG_SET_FILE, assignment);
  path_len = (size_t)(eq - assignment);
  if (check_path(assignment, path_len, err) != 0)
    return SL_ERR_CONFIG;

  value =
      sl_cfg_parse_value(SL_CFG_SET_FILE, eq + 1, (int)path_len + 1, true, err);
  if (!value)
    return SL_ERR_CONFIG;

  /* Walk (and create) the maps down to the last segment. Nothing is created
   * before the first missing segment, and nothing below a created map can
   * fail, so an error leaves the tree untouched. */
  for (;;) {
    const char *seg = assignment + start;
    const char *dot = memchr(seg, '.', path_len - start);
    size_t seg_len = dot ? (size_t)(dot - seg) : path_len - start;
    char *key = sl_strndup(seg, seg_len);
    long i = sl_cfg_find(cur, key);

    if (!dot) {
      if (i >= 0) {
        sl_cfg_node_free(cur->items[i]);
        cur->items[i] = value;
        free(key);
      } else {
        struct sl_cfg_node *k =
            sl_cfg_node_new(SL_CFG_SCALAR, SL_CFG_SET_FILE, 1, (int)start + 1);
        k->scalar = key;
        k->plain = true;
        sl_cfg_node_push(cur, k, value);
      }
      return 0;
    }
    if (i < 0) {
      struct sl_cfg_node *k =
          sl_cfg_node_new(SL_CFG_SCALAR, SL_CFG_SET_FILE, 1, (int)start + 1);
      struct sl_cfg_node *m =
          sl_cfg_node_new(SL_CFG_MAP, SL_CFG_SET_FILE, 1, (int)start + 1);
      k->scalar = key;
      k->plain = true;
      sl_cfg_node_push(cur, k, m);
      cur = m;
    } else if (cur->items[i]->kind != SL_CFG_MAP) {
      const struct sl_cfg_node *n = cur->items[i];
      size_t next = start + seg_len + 1;
      sl_error_set(err, SL_ERR_CONFIG,
                   "%s:1:%zu: cannot set '%.*s': '%.*s' is %s (%s:%d:%d), "
                   "not a map",
                   SL_CFG_SET_FILE, next + 1, (int)path_len, assignment,
                   (int)(next - 1), assignment, sl_cfg_kind_name(n),
                   n->file ? n->file : "?", n->line, n->col);
      free(key);
      sl_cfg_node_free(value);
      return SL_ERR_CONFIG;
    } else {
      cur = cur->items[i];
      free(key);
    }
    start += seg_len + 1;
  }
}
