/*
 * config.h - YAML job files: a positioned tree, ${VAR} interpolation,
 * --set overrides, and table-driven binding of keys into C structs.
 *
 * A job file is read with libyaml's event API into a tree of sl_cfg_node.
 * Every node remembers file, line and column (1-based) so that every error
 * can say "file:line:col: message". Scalars are interpolated while loading:
 *   ${VAR}            value of VAR; error if VAR is unset
 *   ${VAR:-default}   value of VAR, or default when VAR is unset or empty
 *   ${VAR:?message}   value of VAR; error "message" when unset or empty
 *   $$                a literal '$'
 * Interpolation happens inside plain and quoted scalars, not inside keys.
 * A default may itself hold references (${A:-${B}}); the :? message is
 * used as written. A '$' not followed by '{' or '$' is kept as is. Error
 * messages name variables, never their values.
 *
 * Binding walks a map node against a table of struct sl_cfg_field (the
 * config_map of a module or plugin): every key must be known (unknown keys
 * get a did-you-mean), every value must have the field's type, required
 * keys must be present, absent keys get the field's default.
 *
 * Not thread-safe; used by the coordinator thread at start-up only.
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "../src/error.h"

/* ---------------------------------------------------------------- tree */

enum sl_cfg_kind { SL_CFG_SCALAR, SL_CFG_MAP, SL_CFG_SEQ };

struct sl_cfg_node {
  enum sl_cfg_kind kind;
  const char *file; /* shared name, owned by the tree's root */
  int line, col;    /* 1-based position of the node's first character */
  /* SL_CFG_SCALAR: value after interpolation, NUL-terminated, owned. */
  char *scalar;
  bool plain; /* true for an unquoted scalar (so `null` vs "null");
                 false for `!!str x` too */
  /* SL_CFG_MAP: keys[i] (scalar nodes) map to items[i].
   * SL_CFG_SEQ: items[i]. */
  struct sl_cfg_node **keys;
  struct sl_cfg_node **items;
  size_t n;
};

/* Parses a YAML file into a tree. The document must be one mapping.
 * On error returns NULL and sets err (code SL_ERR_CONFIG) to
 * "path:line:col: message" (YAML syntax errors, duplicate keys, anchors
 * and aliases (rejected), non-scalar keys, a second document, unset
 * variables), "path: file is empty" (nothing, only comments, or null) or
 * "path: cannot open: <strerror>". */
struct sl_cfg_node *sl_cfg_load_file(const char *path, struct sl_error *err);

/* Same, from memory; name is used as the file name in messages. */
struct sl_cfg_node *sl_cfg_load_string(const char *name, const char *text,
                                       size_t len, struct sl_error *err);

/* Frees a tree returned by the loaders, including the file name its
 * root owns (only call it on a root). NULL is allowed. */
void sl_cfg_free(struct sl_cfg_node *root);

/* Applies one "--set path=value" override to the tree. path is dotted keys
 * (a.b.c); missing intermediate maps are created. value is parsed as a YAML
 * flow value, so "[a, b]" is a list and "{k: v}" a map; values are
 * interpolated like file values. Nodes created get file "--set" with line 1
 * and the column inside the argument. The value is parsed as the YAML
 * text "v: <value>", so "host:9092" and "hello world" are strings and an
 * empty value is the empty string. An existing key keeps its key node and
 * gets the new value (the old value subtree is freed: bind after all
 * overrides). Errors, "--set:1:COL: message": no '=', empty path or path
 * segment, a path that goes through a scalar or a list, a bad value. On
 * error the tree is unchanged. */
int sl_cfg_apply_set(struct sl_cfg_node *root, const char *assignment,
                     struct sl_error *err);

/* The value node of key in a map node, or NULL. */
const struct sl_cfg_node *sl_cfg_get(const struct sl_cfg_node *map,
                                     const char *key);

/* Sets err to "file:line:col: <message>" for node; returns SL_ERR_CONFIG. */
int sl_cfg_error(struct sl_error *err, const struct sl_cfg_node *node,
                 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------- binding */

enum sl_cfg_type {
  SL_CFG_T_STR,      /* char * (malloc'd)                                 */
  SL_CFG_T_INT,      /* int64_t; checked against [min, max]               */
  SL_CFG_T_BOOL,     /* bool; true/false/yes/no/on/off                    */
  SL_CFG_T_DURATION, /* int64_t nanoseconds; "250us" "100ms" "2s" "5m" "1h"
                        "1d", "1.5s", "1h30m"; a bare number is an error
                        (units required) except "0"; never negative      */
  SL_CFG_T_SIZE,     /* int64_t bytes; "512", "64KB" "64KiB" "1MB" "2GiB";
                        KB/MB/GB/TB are 1000-based, K/M/G/T and KiB/MiB/
                        GiB/TiB 1024-based; units ignore case; "1.5MiB" */
  SL_CFG_T_ENUM,     /* int: index into enum_values                       */
  SL_CFG_T_STRLIST,  /* struct sl_strlist; a YAML list of scalars, or one
                        scalar taken as a one-element list                */
  SL_CFG_T_STRMAP,   /* struct sl_strmap; a map of scalar keys to scalars */
  SL_CFG_T_SECTION,  /* nested struct at offset, bound with .section     */
  SL_CFG_T_NODE      /* const struct sl_cfg_node * into the tree; the
                        caller interprets it (the tree must outlive it)   */
};

#define SL_CFG_REQUIRED 0x1u /* key must be present                      */
#define SL_CFG_SECRET   0x2u /* value is never printed (passwords, SASL) */

struct sl_cfg_field {
  const char *key;
  enum sl_cfg_type type;
  unsigned flags;
  const char *def;  /* default, written as YAML text would be ("1s",
                       "true", "100", "[a, b]" for STRLIST, "{k: v}" for
                       STRMAP); STR copies it as is; ignored for SECTION
                       and NODE; NULL: zero value / no default. Defaults
                       are converted and range-checked like values. */
  size_t offset;    /* offsetof the value in the bound struct        */
  const char *desc; /* one line for --help and docs                  */
  const char *const *enum_values;     /* SL_CFG_T_ENUM, NULL-ended  */
  const struct sl_cfg_field *section; /* SL_CFG_T_SECTION           */
  int64_t min, max; /* SL_CFG_T_INT/DURATION/SIZE when min < max     */
};
/* A table ends with an entry whose key is NULL. */

struct sl_strlist {
  char **v;
  size_t n;
};

struct sl_strmap {
  char **keys;
  char **values;
  size_t n;
};

/* Binds map (which must be a map node; NULL means "absent", so only
 * defaults apply and required keys are reported at where_absent, or
 * without a position when where_absent is NULL too) into the struct at
 * base. The first error wins: unknown keys are checked first (in file
 * order), then the fields in table order: wrong type, out of range,
 * missing required key. An unknown key gets "did you mean 'x'?" when a
 * known key is within edit distance 2 (and closer than the typed key is
 * long) or differs only by '-'/'_' or case; otherwise the message lists
 * the known keys. A plain `null`/`~` value counts as absent (the default
 * applies; a required key reports "a value is required, got null"),
 * except for SL_CFG_T_NODE, which gets the null node.
 * bind overwrites the fields without freeing what was there; on error it
 * frees what it allocated, so only a successful bind needs an unbind.
 * Messages name the key path, for example
 *   "job.yaml:7:5: unknown key 'max_record_per_batch' in source.kafka; did
 *    you mean 'max_records_per_batch'?"
 * context is the dotted path of map used in messages ("" for the root). */
int sl_cfg_bind(const struct sl_cfg_node *map,
                const struct sl_cfg_node *where_absent,
                const struct sl_cfg_field *table, void *base,
                const char *context, struct sl_error *err);

/* Frees what sl_cfg_bind allocated in base (strings, lists, maps, nested
 * sections). Safe on a zeroed struct. */
void sl_cfg_unbind(const struct sl_cfg_field *table, void *base);

/* Converts one scalar node to a type, with positioned errors. */
int sl_cfg_int(const struct sl_cfg_node *n, int64_t *out, struct sl_error *err);
int sl_cfg_bool(const struct sl_cfg_node *n, bool *out, struct sl_error *err);
int sl_cfg_duration(const struct sl_cfg_node *n, int64_t *out_ns,
                    struct sl_error *err);
int sl_cfg_size(const struct sl_cfg_node *n, int64_t *out_bytes,
                struct sl_error *err);

/* Plain parsers without positions; return 0 or -1. */
int sl_parse_duration(const char *s, int64_t *out_ns);
int sl_parse_size(const char *s, int64_t *out_bytes);

/* Levenshtein distance, capped at cap+1 (cheap early exit). */
int sl_edit_distance(const char *a, const char *b, int cap);

/* The closest of the NULL-terminated names to key for a did-you-mean
 * (within edit distance 2), or NULL. */
const char *sl_suggest_name(const char *key, const char *const *names);

/* The closest key of table to key for a did-you-mean, or NULL. */
const char *sl_cfg_suggest(const struct sl_cfg_field *table, const char *key);

/* ------------------------------------------------------------ printing */

/* Writes the values bound at base by table as YAML block lines at indent
 * (defaults included). Secrets are written as "********": fields with
 * SL_CFG_SECRET, map values whose key names a secret (sl_cfg_secret_name)
 * and the password of a scheme://user:password@host url. */
void sl_cfg_print(FILE *out, const struct sl_cfg_field *table, const void *base,
                  int indent);
/* Writes a tree node after a "key:" already written (" value\n", or a
 * newline and the block at indent), with the same masking. */
void sl_cfg_print_node(FILE *out, const struct sl_cfg_node *n, int indent);
/* Human forms, as a job file would write them: "1500ms", "64KiB". */
void sl_cfg_fmt_duration(int64_t ns, char *buf, size_t n);
void sl_cfg_fmt_size(int64_t bytes, char *buf, size_t n);
/* Whether a setting's name says its value is secret (password, secret,
 * token, sasl.jaas..., ssl.key...). */
bool sl_cfg_secret_name(const char *name);

#endif
