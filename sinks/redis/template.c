/* template.c - Redis command templates (see template.h). */
#include "template.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../src/template.h"
#include "../../src/util.h"

enum num { NUM_NONE, NUM_INT, NUM_FLOAT };

/* What a command accepts. Arguments are counted with the name as 0.
 * From `group_from` on, arguments come in groups of `group` (HSET's
 * field-value pairs); `num_at` is the one numeric argument of a fixed
 * command, `group_num` the numeric member of each group (ZADD's score). */
struct spec {
  const char *name;
  unsigned min, max; /* max 0: unbounded */
  unsigned group_from, group;
  unsigned num_at;
  enum num num;
  bool group_num; /* the first of each group is a float */
  bool has_key;
};

static const struct spec specs[] = {
    {"SET", 3, 3, 0, 0, 0, NUM_NONE, false, true},
    {"HSET", 4, 0, 2, 2, 0, NUM_NONE, false, true},
    {"INCRBY", 3, 3, 0, 0, 2, NUM_INT, false, true},
    {"INCRBYFLOAT", 3, 3, 0, 0, 2, NUM_FLOAT, false, true},
    {"HINCRBY", 4, 4, 0, 0, 3, NUM_INT, false, true},
    {"HINCRBYFLOAT", 4, 4, 0, 0, 3, NUM_FLOAT, false, true},
    {"ZADD", 4, 0, 2, 2, 0, NUM_NONE, true, true},
    {"ZINCRBY", 4, 4, 0, 0, 2, NUM_FLOAT, false, true},
    {"SADD", 3, 0, 0, 0, 0, NUM_NONE, false, true},
    {"XADD", 5, 0, 3, 2, 0, NUM_NONE, false, true},
    {"RPUSH", 3, 0, 0, 0, 0, NUM_NONE, false, true},
    {"LPUSH", 3, 0, 0, 0, 0, NUM_NONE, false, true},
    {"PFADD", 3, 0, 0, 0, 0, NUM_NONE, false, true},
    {"PUBLISH", 3, 3, 0, 0, 0, NUM_NONE, false, false},
};

const char *const sl_rcmd_names[] = {
    "SET",          "HSET",  "INCRBY",  "INCRBYFLOAT", "HINCRBY",
    "HINCRBYFLOAT", "ZADD",  "ZINCRBY", "SADD",        "XADD",
    "RPUSH",        "LPUSH", "PFADD",   "PUBLISH",     NULL};

/* The shared compiler's options for one argument of a command line. */
#define ARG_FLAGS                                                              \
  (SL_TPL_ARG | SL_TPL_OLD_META | SL_TPL_DOTTED_KEYS | SL_TPL_REQUIRE)

struct arg {
  struct sl_tpl t;
  int col; /* where the argument starts, for messages */
};

/* ZADD's options before its score-member pairs. */
#define ZOPT_GT    0x1u
#define ZOPT_LT    0x2u
#define ZOPT_OTHER 0x4u /* NX, XX, CH */

struct sl_rcmd {
  const struct spec *spec;
  unsigned zopts;  /* how many option words follow ZADD's key */
  unsigned zflags; /* ZOPT_* */
  struct arg *args;
  size_t nargs;
  bool needs_json;
  char **fields; /* NULL-terminated */
  size_t nfields;
};

/* ------------------------------------------------------------ parsing */

static int fail(int *col, size_t at, struct sl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int *col, size_t at, struct sl_error *err, const char *fmt,
                ...) {
  va_list ap;
  va_start(ap, fmt);
  sl_error_vset(err, SL_ERR_CONFIG, fmt, ap);
  va_end(ap);
  *col = (int)at + 1;
  return SL_ERR_CONFIG;
}

/* One argument, quoted or bare, from s[*i] into t: the quotes and their
 * escapes here, the braces through the shared compiler. */
static int argument(const char *s, size_t *i, struct sl_tpl *t, int *col,
                    struct sl_error *err) {
  bool quoted = s[*i] == '"';
  size_t start = *i;
  if (quoted)
    (*i)++;
  for (;;) {
    char c = s[*i];
    if (c == '\0') {
      if (quoted)
        return fail(col, start, err, "unclosed quote '\"'");
      break;
    }
    if (!quoted && (c == ' ' || c == '\t'))
      break;
    if (quoted && c == '"') {
      (*i)++;
      char n = s[*i];
      if (n && n != ' ' && n != '\t')
        return fail(col, *i, err, "a closing quote must end the argument");
      break;
    }
    if (quoted && c == '\\' && (s[*i + 1] == '"' || s[*i + 1] == '\\')) {
      sl_tpl_add_lit(t, s + *i + 1, 1, (int)*i + 1);
      *i += 2;
      continue;
    }
    if (!quoted && c == '"')
      return fail(col, *i, err,
                  "a quote inside an argument: quote the whole "
                  "argument (\"a b\")");
    if (c == '{' || c == '}') {
      if (sl_tpl_parse_brace(t, s, i, col, err))
        return SL_ERR_CONFIG;
      continue;
    }
    size_t n = strcspn(s + *i, quoted ? "\"\\{}" : " \t\"{}");
    if (n == 0)
      n = 1; /* a backslash that escapes nothing */
    sl_tpl_add_lit(t, s + *i, n, (int)*i + 1);
    *i += n;
  }
  return 0;
}

static const struct spec *find_spec(const char *name, size_t len) {
  for (size_t i = 0; i < SL_ARRAY_LEN(specs); i++)
    if (strlen(specs[i].name) == len &&
        strncasecmp(specs[i].name, name, len) == 0)
      return &specs[i];
  return NULL;
}

/* Where the groups of c start: after ZADD's options, if any. */
static size_t group_from(const struct sl_rcmd *c) {
  return c->spec->group_from + c->zopts;
}

static enum num num_kind(const struct sl_rcmd *c, size_t i) {
  const struct spec *sp = c->spec;
  if (sp->num != NUM_NONE && i == sp->num_at)
    return sp->num;
  if (sp->group_num && i >= group_from(c) &&
      (i - group_from(c)) % sp->group == 0)
    return NUM_FLOAT;
  return NUM_NONE;
}

/* ZADD key [NX|XX] [GT|LT] [CH] score member ...: counts the literal
 * option words after the key (INCR is not taken: it makes ZADD a
 * ZINCRBY of one member). */
static int zadd_options(struct sl_rcmd *c, int *col, struct sl_error *err) {
  static const struct {
    const char *w;
    unsigned f;
  } opts[] = {{"GT", ZOPT_GT},
              {"LT", ZOPT_LT},
              {"NX", ZOPT_OTHER},
              {"XX", ZOPT_OTHER},
              {"CH", ZOPT_OTHER}};
  for (size_t i = 2; i < c->nargs; i++) {
    const char *text;
    size_t len;
    if (!sl_tpl_literal(&c->args[i].t, &text, &len))
      break;
    unsigned f = 0;
    for (size_t k = 0; k < SL_ARRAY_LEN(opts) && !f; k++)
      if (len == 2 && strncasecmp(text, opts[k].w, 2) == 0)
        f = opts[k].f;
    if (!f)
      break;
    c->zflags |= f;
    c->zopts++;
  }
  if ((c->zflags & ZOPT_GT) && (c->zflags & ZOPT_LT))
    return fail(col, 0, err, "ZADD: GT and LT exclude each other");
  return 0;
}

/* Whether text is a number Redis takes as an integer / a float. */
static bool is_num(enum num k, const char *text, size_t len) {
  char tmp[64], *end;
  if (len == 0 || len >= sizeof(tmp))
    return false;
  memcpy(tmp, text, len);
  tmp[len] = '\0';
  errno = 0;
  if (k == NUM_INT) {
    (void)strtoll(tmp, &end, 10);
    return errno == 0 && *end == '\0' && tmp[0] != ' ' && tmp[0] != '+';
  }
  double d = strtod(tmp, &end);
  return errno == 0 && *end == '\0' && isfinite(d) && tmp[0] != ' ';
}

static const char *num_name(enum num k) {
  return k == NUM_INT ? "an integer" : "a number";
}

static int check_arity(const struct sl_rcmd *c, int *col,
                       struct sl_error *err) {
  const struct spec *sp = c->spec;
  size_t n = c->nargs;
  if (n < sp->min || (sp->max && n > sp->max)) {
    if (sp->min == sp->max)
      return fail(col, 0, err, "%s takes %u arguments after the name, not %zu",
                  sp->name, sp->min - 1, n - 1);
    if (n < sp->min)
      return fail(col, 0, err,
                  "%s takes at least %u arguments after the name, "
                  "not %zu",
                  sp->name, sp->min - 1, n - 1);
  }
  if (sp->group &&
      (n < group_from(c) + sp->group || (n - group_from(c)) % sp->group != 0))
    return fail(col, 0, err, "%s: the arguments after the %s come in %s",
                sp->name,
                c->zopts              ? "options"
                : sp->group_from == 2 ? "key"
                                      : "id",
                sp->group_num ? "score-member pairs" : "field-value pairs");
  for (size_t i = 1; i < n; i++) {
    enum num k = num_kind(c, i);
    const struct arg *a = &c->args[i];
    const char *text;
    size_t len;
    if (k != NUM_NONE && sl_tpl_literal(&a->t, &text, &len) &&
        !is_num(k, text, len))
      return fail(col, (size_t)a->col - 1, err, "%s: argument %zu must be %s",
                  sp->name, i, num_name(k));
  }
  return 0;
}

static void add_field(struct sl_rcmd *c, const char *name) {
  for (size_t i = 0; i < c->nfields; i++)
    if (strcmp(c->fields[i], name) == 0)
      return;
  c->fields = sl_realloc(c->fields, (c->nfields + 2) * sizeof(*c->fields));
  c->fields[c->nfields++] = sl_strdup(name);
  c->fields[c->nfields] = NULL;
}

/* Splits text into arguments and checks the command. */
static int parse(const char *text, struct sl_rcmd *c, int *col,
                 struct sl_error *err) {
  size_t i = 0;
  for (;;) {
    while (text[i] == ' ' || text[i] == '\t')
      i++;
    if (!text[i])
      break;
    c->args = sl_realloc(c->args, (c->nargs + 1) * sizeof(*c->args));
    struct arg *a = &c->args[c->nargs++];
    a->col = (int)i + 1;
    sl_tpl_init(&a->t, ARG_FLAGS);
    if (argument(text, &i, &a->t, col, err))
      return SL_ERR_CONFIG;
  }
  if (c->nargs == 0)
    return fail(col, 0, err,
                "empty command: write one, as HSET key field {value}");
  const char *name;
  size_t len;
  if (!sl_tpl_literal(&c->args[0].t, &name, &len))
    return fail(col, 0, err,
                "the command name must be a literal, not a placeholder");
  c->spec = find_spec(name, len);
  if (!c->spec) {
    char list[256] = "";
    for (size_t k = 0; sl_rcmd_names[k]; k++) {
      if (k)
        strncat(list, " ", sizeof(list) - strlen(list) - 1);
      strncat(list, sl_rcmd_names[k], sizeof(list) - strlen(list) - 1);
    }
    return fail(col, 0, err,
                "unknown or unsupported command '%s' (supported: %s)", name,
                list);
  }
  if (c->spec->group_num && zadd_options(c, col, err))
    return SL_ERR_CONFIG;
  if (check_arity(c, col, err))
    return SL_ERR_CONFIG;
  for (size_t k = 1; k < c->nargs; k++)
    for (size_t j = 0; j < c->args[k].t.n; j++)
      if (c->args[k].t.parts[j].kind == SL_TPL_FIELD) {
        c->needs_json = true;
        add_field(c, c->args[k].t.parts[j].text);
      }
  return 0;
}

int sl_rcmd_parse(const char *text, struct sl_rcmd **out, int *col,
                  struct sl_error *err) {
  struct sl_rcmd *c = sl_calloc(1, sizeof(*c));
  c->fields = sl_calloc(1, sizeof(*c->fields));
  int tmp;
  if (parse(text, c, col ? col : &tmp, err)) {
    sl_rcmd_free(c);
    *out = NULL;
    return SL_ERR_CONFIG;
  }
  *out = c;
  return 0;
}

void sl_rcmd_free(struct sl_rcmd *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nargs; i++)
    sl_tpl_clear(&c->args[i].t);
  free(c->args);
  for (size_t i = 0; i < c->nfields; i++)
    free(c->fields[i]);
  free(c->fields);
  free(c);
}

bool sl_rcmd_needs_json(const struct sl_rcmd *c) {
  return c->needs_json;
}
bool sl_rcmd_has_key(const struct sl_rcmd *c) {
  return c->spec->has_key;
}
const char *const *sl_rcmd_fields(const struct sl_rcmd *c) {
  return (const char *const *)c->fields;
}

int sl_rcmd_check_fields(const struct sl_rcmd *c, const char *const *fields,
                         int *col, struct sl_error *err) {
  for (size_t i = 1; i < c->nargs; i++) {
    const struct sl_tpl_part *bad;
    if (sl_tpl_check_fields(&c->args[i].t, fields, &bad, err)) {
      *col = bad->col;
      return SL_ERR_CONFIG;
    }
  }
  return 0;
}

int sl_rcmd_check_merge(const struct sl_rcmd *c, const char *const *aggs,
                        const char *kinds, int *col, struct sl_error *err) {
  const struct spec *sp = c->spec;
  bool publish = strcmp(sp->name, "PUBLISH") == 0;
  bool adds = sp->num != NUM_NONE; /* INCRBY ... ZINCRBY: num_at adds */
  for (size_t i = 1; i < c->nargs; i++) {
    const struct sl_tpl *t = &c->args[i].t;
    for (size_t j = 0; j < t->n; j++) {
      const struct sl_tpl_part *pt = &t->parts[j];
      if (pt->kind != SL_TPL_FIELD)
        continue;
      size_t k = 0;
      while (aggs[k] && strcmp(aggs[k], pt->segs[0]) != 0)
        k++;
      if (!aggs[k] || publish)
        continue; /* a window or group field, or a notification */
      bool whole = t->n == 1;
      bool ok;
      const char *how;
      if (kinds[k] == '+') {
        ok = whole && adds && i == sp->num_at;
        how = "as the increment of HINCRBY, HINCRBYFLOAT, INCRBY, "
              "INCRBYFLOAT or ZINCRBY";
      } else {
        unsigned want = kinds[k] == '<' ? ZOPT_LT : ZOPT_GT;
        ok = whole && sp->group_num && (c->zflags & want) &&
             num_kind(c, i) == NUM_FLOAT;
        how = kinds[k] == '<' ? "as a score of ZADD LT (which keeps the "
                                "lower score)"
                              : "as a score of ZADD GT (which keeps the "
                                "higher score)";
      }
      if (!ok)
        return fail(col, (size_t)pt->col - 1, err,
                    "{%s} is one batch's contribution to its window under "
                    "output: merge, which %s would not merge with what "
                    "Redis holds; use it %s (or in PUBLISH)",
                    pt->text, sp->name, how);
    }
  }
  return 0;
}

/* ---------------------------------------------------------- rendering */

int sl_rcmd_render(const struct sl_rcmd *c, const struct sl_record *r,
                   const cJSON *row, struct sl_rargs *a, struct sl_error *err) {
  if (a->cap < c->nargs) {
    a->cap = c->nargs;
    a->argv = sl_realloc(a->argv, a->cap * sizeof(*a->argv));
    a->argvlen = sl_realloc(a->argvlen, a->cap * sizeof(*a->argvlen));
    a->off = sl_realloc(a->off, a->cap * sizeof(*a->off));
  }
  if (c->needs_json && !cJSON_IsObject(row))
    return sl_error_set(err, SL_ERR_INVAL,
                        "redis command: the value is not a JSON object "
                        "(add `parse: json` to the pipeline?)");
  sl_buf_reset(&a->buf);
  a->argc = c->nargs;
  for (size_t i = 0; i < c->nargs; i++) {
    a->off[i] = a->buf.len;
    if (sl_tpl_render(&c->args[i].t, r, row, &a->buf, err))
      return sl_error_prefix(err, "redis command");
    a->argvlen[i] = a->buf.len - a->off[i];
  }
  for (size_t i = 0; i < c->nargs; i++) {
    a->argv[i] = a->buf.p + a->off[i];
    enum num k = num_kind(c, i);
    if (k != NUM_NONE && !is_num(k, a->argv[i], a->argvlen[i]))
      return sl_error_set(err, SL_ERR_INVAL,
                          "redis command: %s argument %zu must be %s, "
                          "got '%.*s'",
                          c->spec->name, i, num_name(k),
                          (int)SL_MIN(a->argvlen[i], (size_t)40), a->argv[i]);
  }
  return 0;
}

void sl_rargs_free(struct sl_rargs *a) {
  free(a->argv);
  free(a->argvlen);
  free(a->off);
  sl_buf_free(&a->buf);
  memset(a, 0, sizeof(*a));
}
