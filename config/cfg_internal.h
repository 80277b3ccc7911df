/*
 * cfg_internal.h - helpers shared by the files of the config module only.
 * Nothing here is part of the config.h contract.
 */
#ifndef SL_CFG_INTERNAL_H
#define SL_CFG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../src/buf.h"
#include "config.h"
#include "interp.h" /* sl_cfg_interpolate (interp.c) */

/* File name of nodes created by --set (never freed: a literal). */
#define SL_CFG_SET_FILE "--set"

/* Longest explanation a converter writes (fits an sl_error message). */
#define SL_CFG_WHY_MAX 512

/* ------------------------------------------------------------- nodes */

struct sl_cfg_node *sl_cfg_node_new(enum sl_cfg_kind kind, const char *file,
                                    int line, int col);
/* Appends an item to a list node, or a key/value pair to a map node. */
void sl_cfg_node_push(struct sl_cfg_node *n, struct sl_cfg_node *key,
                      struct sl_cfg_node *item);
/* Frees a node and its children; never the shared file name. */
void sl_cfg_node_free(struct sl_cfg_node *n);
/* "a map", "a list" or "a string", for "expected X, got Y". */
const char *sl_cfg_kind_name(const struct sl_cfg_node *n);
/* Index of key in map node, or -1. */
long sl_cfg_find(const struct sl_cfg_node *map, const char *key);

/* How to parse a piece of YAML text. */
struct sl_cfg_parse_opts {
  const char *file; /* stored in every node; not copied */
  int col_shift;    /* added to columns on line 1 (--set wraps its value) */
  bool interpolate; /* expand ${VAR} in values */
};

/* Parses text into a tree whose root is a map; NULL and err on error. */
struct sl_cfg_node *sl_cfg_parse(const struct sl_cfg_parse_opts *opts,
                                 const char *text, size_t len,
                                 struct sl_error *err);

/* Parses text as one YAML value, the way --set and list defaults do, by
 * parsing "v: <text>". Positions are shifted by col_shift. */
struct sl_cfg_node *sl_cfg_parse_value(const char *file, const char *text,
                                       int col_shift, bool interpolate,
                                       struct sl_error *err);

/* --------------------------------------------------------- converters */

/* Each converter parses s; on failure it returns -1 and explains in why,
 * quoting s unless secret is set. */
int sl_cfg_conv_int(const char *s, bool secret, int64_t *out, char *why,
                    size_t why_len);
int sl_cfg_conv_bool(const char *s, bool secret, bool *out, char *why,
                     size_t why_len);
int sl_cfg_conv_duration(const char *s, bool secret, int64_t *out, char *why,
                         size_t why_len);
int sl_cfg_conv_size(const char *s, bool secret, int64_t *out, char *why,
                     size_t why_len);

/* Distance between a typed word and a known one for did-you-mean (case and
 * '-'/'_' are ignored), or -1 when known is not a plausible suggestion. */
int sl_cfg_near(const char *typed, const char *known);

#endif
