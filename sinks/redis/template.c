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

#include "../../src/util.h"
#include "../../src/value.h"

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

enum part_kind { PART_LIT, PART_FIELD, PART_META };

struct part {
  enum part_kind kind;
  enum sl_meta meta; /* PART_META */
  char *text;        /* literal bytes, or the field name */
  size_t len;
};

struct arg {
  struct part *parts;
  size_t n;
  int col; /* where the argument starts, for messages */
};

struct sl_rcmd {
  const struct spec *spec;
  struct arg *args;
  size_t nargs;
  bool needs_json;
  char **fields; /* NULL-terminated */
  size_t nfields;
};

/* ------------------------------------------------------------ parsing */

struct parser {
  const char *s;
  size_t i;
  char *msg;
  size_t msgsz;
  int *col;
  /* the argument being built */
  struct part *parts;
  size_t nparts;
  char *lit;
  size_t litlen, litcap;
};

static int fail(struct parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct parser *p, size_t at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->msg, p->msgsz, fmt, ap);
  va_end(ap);
  *p->col = (int)at + 1;
  return -1;
}

static void lit_put(struct parser *p, char c) {
  if (p->litlen + 1 >= p->litcap) {
    p->litcap = SL_MAX(p->litcap * 2, (size_t)32);
    p->lit = sl_realloc(p->lit, p->litcap);
  }
  p->lit[p->litlen++] = c;
}

static void add_part(struct parser *p, enum part_kind kind, const char *text,
                     size_t len) {
  p->parts = sl_realloc(p->parts, (p->nparts + 1) * sizeof(*p->parts));
  p->parts[p->nparts++] =
      (struct part){.kind = kind, .text = sl_strndup(text, len), .len = len};
}

static void flush_lit(struct parser *p) {
  if (p->litlen)
    add_part(p, PART_LIT, p->lit, p->litlen);
  p->litlen = 0;
}

/* At '{' (not "{{"): a placeholder up to '}'. */
static int placeholder(struct parser *p) {
  size_t open = p->i++;
  size_t start = p->i;
  while (p->s[p->i] && p->s[p->i] != '}') {
    char c = p->s[p->i];
    if (c == '{' || c == ' ' || c == '\t' || c == '"')
      return fail(p, p->i,
                  "'%c' inside a placeholder: close it with '}' "
                  "(a literal brace is written {{ or }})",
                  c);
    p->i++;
  }
  if (!p->s[p->i])
    return fail(p, open, "unclosed placeholder '{': add '}'");
  size_t len = p->i - start;
  const char *name = p->s + start;
  if (len == 0)
    return fail(p, open, "empty placeholder {}: name a field, as {user}");
  bool bad_path = name[0] == '.' || name[len - 1] == '.';
  for (size_t k = 0; k + 1 < len; k++)
    bad_path |= name[k] == '.' && name[k + 1] == '.';
  if (bad_path)
    return fail(p, start, "'%.*s' is not a field path (a.b.c)", (int)len, name);
  flush_lit(p);
  /* {@key} ... as in the Kafka sink's templates; {_key} and {_value} are
   * the older spellings of {@key} and {@value}. */
  int meta = -1;
  if (name[0] == '@')
    meta = sl_meta_find(name + 1, len - 1);
  else if (len == 4 && memcmp(name, "_key", 4) == 0)
    meta = SL_META_KEY;
  else if (len == 6 && memcmp(name, "_value", 6) == 0)
    meta = SL_META_VALUE;
  if (meta < 0 && (name[0] == '@' || name[0] == '_'))
    return fail(p, start, "unknown placeholder {%.*s}; known: %s", (int)len,
                name, SL_META_NAMES);
  add_part(p, meta < 0 ? PART_FIELD : PART_META, name, len);
  if (meta >= 0)
    p->parts[p->nparts - 1].meta = (enum sl_meta)meta;
  p->i++; /* '}' */
  return 0;
}

/* One argument, quoted or bare. */
static int argument(struct parser *p) {
  bool quoted = p->s[p->i] == '"';
  size_t start = p->i;
  if (quoted)
    p->i++;
  for (;;) {
    char c = p->s[p->i];
    if (c == '\0') {
      if (quoted)
        return fail(p, start, "unclosed quote '\"'");
      break;
    }
    if (!quoted && (c == ' ' || c == '\t'))
      break;
    if (quoted && c == '"') {
      p->i++;
      char n = p->s[p->i];
      if (n && n != ' ' && n != '\t')
        return fail(p, p->i, "a closing quote must end the argument");
      break;
    }
    if (quoted && c == '\\' &&
        (p->s[p->i + 1] == '"' || p->s[p->i + 1] == '\\')) {
      lit_put(p, p->s[p->i + 1]);
      p->i += 2;
      continue;
    }
    if (!quoted && c == '"')
      return fail(p, p->i,
                  "a quote inside an argument: quote the whole "
                  "argument (\"a b\")");
    if (c == '{' && p->s[p->i + 1] == '{') {
      lit_put(p, '{');
      p->i += 2;
    } else if (c == '}' && p->s[p->i + 1] == '}') {
      lit_put(p, '}');
      p->i += 2;
    } else if (c == '{') {
      if (placeholder(p))
        return -1;
    } else if (c == '}') {
      return fail(p, p->i, "unmatched '}' (a literal brace is written }})");
    } else {
      lit_put(p, c);
      p->i++;
    }
  }
  flush_lit(p);
  if (p->nparts == 0) /* "" */
    add_part(p, PART_LIT, "", 0);
  return 0;
}

static const struct spec *find_spec(const char *name, size_t len) {
  for (size_t i = 0; i < SL_ARRAY_LEN(specs); i++)
    if (strlen(specs[i].name) == len &&
        strncasecmp(specs[i].name, name, len) == 0)
      return &specs[i];
  return NULL;
}

static enum num num_kind(const struct spec *sp, size_t i) {
  if (sp->num != NUM_NONE && i == sp->num_at)
    return sp->num;
  if (sp->group_num && i >= sp->group_from &&
      (i - sp->group_from) % sp->group == 0)
    return NUM_FLOAT;
  return NUM_NONE;
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

static int check_arity(struct parser *p, const struct sl_rcmd *c) {
  const struct spec *sp = c->spec;
  size_t n = c->nargs;
  if (n < sp->min || (sp->max && n > sp->max)) {
    if (sp->min == sp->max)
      return fail(p, 0, "%s takes %u arguments after the name, not %zu",
                  sp->name, sp->min - 1, n - 1);
    if (n < sp->min)
      return fail(p, 0,
                  "%s takes at least %u arguments after the name, "
                  "not %zu",
                  sp->name, sp->min - 1, n - 1);
  }
  if (sp->group && (n - sp->group_from) % sp->group != 0)
    return fail(p, 0, "%s: the arguments after the %s come in %s", sp->name,
                sp->group_from == 2 ? "key" : "id",
                sp->group_num ? "score-member pairs" : "field-value pairs");
  for (size_t i = 1; i < n; i++) {
    enum num k = num_kind(sp, i);
    const struct arg *a = &c->args[i];
    if (k != NUM_NONE && a->n == 1 && a->parts[0].kind == PART_LIT &&
        !is_num(k, a->parts[0].text, a->parts[0].len))
      return fail(p, (size_t)a->col - 1, "%s: argument %zu must be %s",
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

struct sl_rcmd *sl_rcmd_parse(const char *text, char *msg, size_t msgsz,
                              int *col) {
  struct parser p = {.s = text, .msg = msg, .msgsz = msgsz, .col = col};
  struct sl_rcmd *c = sl_calloc(1, sizeof(*c));
  c->fields = sl_calloc(1, sizeof(*c->fields));
  for (;;) {
    while (p.s[p.i] == ' ' || p.s[p.i] == '\t')
      p.i++;
    if (!p.s[p.i])
      break;
    size_t at = p.i;
    if (argument(&p))
      goto fail;
    c->args = sl_realloc(c->args, (c->nargs + 1) * sizeof(*c->args));
    c->args[c->nargs++] =
        (struct arg){.parts = p.parts, .n = p.nparts, .col = (int)at + 1};
    p.parts = NULL;
    p.nparts = 0;
  }
  if (c->nargs == 0) {
    fail(&p, 0, "empty command: write one, as HSET key field {value}");
    goto fail;
  }
  const struct arg *name = &c->args[0];
  if (name->n != 1 || name->parts[0].kind != PART_LIT) {
    fail(&p, 0, "the command name must be a literal, not a placeholder");
    goto fail;
  }
  c->spec = find_spec(name->parts[0].text, name->parts[0].len);
  if (!c->spec) {
    char list[256] = "";
    for (size_t i = 0; sl_rcmd_names[i]; i++) {
      if (i)
        strncat(list, " ", sizeof(list) - strlen(list) - 1);
      strncat(list, sl_rcmd_names[i], sizeof(list) - strlen(list) - 1);
    }
    fail(&p, 0, "unknown or unsupported command '%s' (supported: %s)",
         name->parts[0].text, list);
    goto fail;
  }
  if (check_arity(&p, c))
    goto fail;
  for (size_t i = 1; i < c->nargs; i++)
    for (size_t j = 0; j < c->args[i].n; j++)
      if (c->args[i].parts[j].kind == PART_FIELD) {
        c->needs_json = true;
        add_field(c, c->args[i].parts[j].text);
      }
  free(p.lit);
  return c;
fail:
  for (size_t i = 0; i < p.nparts; i++)
    free(p.parts[i].text);
  free(p.parts);
  free(p.lit);
  sl_rcmd_free(c);
  return NULL;
}

void sl_rcmd_free(struct sl_rcmd *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nargs; i++) {
    for (size_t j = 0; j < c->args[i].n; j++)
      free(c->args[i].parts[j].text);
    free(c->args[i].parts);
  }
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

/* ---------------------------------------------------------- rendering */

static void put(struct sl_rargs *a, const char *p, size_t n) {
  if (a->len + n > a->bufcap) {
    a->bufcap = SL_MAX(a->bufcap * 2, a->len + n + 256);
    a->buf = sl_realloc(a->buf, a->bufcap);
  }
  if (n)
    memcpy(a->buf + a->len, p, n);
  a->len += n;
}

/* The field at a name: the exact top-level key first, then as a dotted
 * path. */
static const cJSON *lookup(const cJSON *row, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, name);
  if (v || !strchr(name, '.'))
    return v;
  char seg[256];
  const char *s = name;
  v = row;
  while (v && *s) {
    const char *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : strlen(s);
    if (n >= sizeof(seg) || !cJSON_IsObject(v))
      return NULL;
    memcpy(seg, s, n);
    seg[n] = '\0';
    v = cJSON_GetObjectItemCaseSensitive(v, seg);
    s += n + (dot ? 1 : 0);
  }
  return v;
}

static int put_json(struct sl_rargs *a, const cJSON *v, const char *name,
                    char *reason, size_t rsz) {
  if (!v || cJSON_IsNull(v)) {
    snprintf(reason, rsz, "redis command: field '%s' is %s", name,
             v ? "null" : "missing");
    return -1;
  }
  char num[32], *heap;
  const char *text;
  size_t n = sl_json_text(v, num, &heap, &text);
  put(a, text, n);
  cJSON_free(heap);
  return 0;
}

int sl_rcmd_render(const struct sl_rcmd *c, const struct sl_record *r,
                   const cJSON *row, struct sl_rargs *a, char *reason,
                   size_t rsz) {
  if (a->cap < c->nargs) {
    a->cap = c->nargs;
    a->argv = sl_realloc(a->argv, a->cap * sizeof(*a->argv));
    a->argvlen = sl_realloc(a->argvlen, a->cap * sizeof(*a->argvlen));
    a->off = sl_realloc(a->off, a->cap * sizeof(*a->off));
  }
  if (c->needs_json && !cJSON_IsObject(row)) {
    snprintf(reason, rsz,
             "redis command: the value is not a JSON object "
             "(add `parse: json` to the pipeline?)");
    return -1;
  }
  a->len = 0;
  a->argc = c->nargs;
  for (size_t i = 0; i < c->nargs; i++) {
    a->off[i] = a->len;
    for (size_t j = 0; j < c->args[i].n; j++) {
      const struct part *pt = &c->args[i].parts[j];
      switch (pt->kind) {
      case PART_LIT:
        put(a, pt->text, pt->len);
        break;
      case PART_META: {
        char num[24];
        const char *text;
        size_t len;
        if (!sl_meta_text(r, pt->meta, num, &text, &len)) {
          snprintf(reason, rsz, "redis command: the record has no %s for {%s}",
                   pt->meta == SL_META_KEY ? "key" : "value", pt->text);
          return -1;
        }
        put(a, text, len);
        break;
      }
      case PART_FIELD:
        if (put_json(a, lookup(row, pt->text), pt->text, reason, rsz))
          return -1;
        break;
      }
    }
    a->argvlen[i] = a->len - a->off[i];
  }
  for (size_t i = 0; i < c->nargs; i++) {
    a->argv[i] = a->buf + a->off[i];
    enum num k = num_kind(c->spec, i);
    if (k != NUM_NONE && !is_num(k, a->argv[i], a->argvlen[i])) {
      snprintf(reason, rsz,
               "redis command: %s argument %zu must be %s, "
               "got '%.*s'",
               c->spec->name, i, num_name(k),
               (int)SL_MIN(a->argvlen[i], (size_t)40), a->argv[i]);
      return -1;
    }
  }
  return 0;
}

void sl_rargs_free(struct sl_rargs *a) {
  free(a->argv);
  free(a->argvlen);
  free(a->off);
  free(a->buf);
  memset(a, 0, sizeof(*a));
}
