/* template.c - key, value and topic templates of the Kafka sink
 * (ksink.h). Compiled once at init, rendered per record on worker
 * threads; a compiled template is read-only. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/util.h"
#include "../../src/value.h"
#include "ksink.h"

/* ---------------------------------------------------------------- buf */

size_t sl_kbuf_put(struct sl_kbuf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = SL_MAX(b->cap * 2, b->len + n + 4096);
    b->p = sl_realloc(b->p, b->cap);
  }
  size_t off = b->len;
  if (n)
    memcpy(b->p + off, p, n);
  b->len += n;
  return off;
}

void sl_kbuf_free(struct sl_kbuf *b) {
  free(b->p);
  *b = (struct sl_kbuf){0};
}

/* ---------------------------------------------------------- compiling */

enum part_kind { PART_TEXT, PART_FIELD, PART_META };

struct part {
  enum part_kind kind;
  enum sl_meta meta; /* PART_META */
  char *text;        /* PART_TEXT: the literal; PART_FIELD: the path */
  char **segs;       /* PART_FIELD: the path split at dots */
  size_t nsegs;
};

struct sl_ktpl {
  struct part *parts;
  size_t n;
  bool needs_row;
};

static struct part *add_part(struct sl_ktpl *t, enum part_kind kind) {
  t->parts = sl_realloc(t->parts, (t->n + 1) * sizeof(*t->parts));
  struct part *p = &t->parts[t->n++];
  *p = (struct part){.kind = kind};
  return p;
}

/* Appends literal bytes, merging with a literal just before. */
static void add_text(struct sl_ktpl *t, const char *s, size_t n) {
  if (n == 0)
    return;
  struct part *p = t->n && t->parts[t->n - 1].kind == PART_TEXT
                       ? &t->parts[t->n - 1]
                       : add_part(t, PART_TEXT);
  size_t have = p->text ? strlen(p->text) : 0;
  p->text = sl_realloc(p->text, have + n + 1);
  memcpy(p->text + have, s, n);
  p->text[have + n] = '\0';
}

static int add_placeholder(struct sl_ktpl *t, const char *src, const char *s,
                           size_t n, struct sl_error *err) {
  if (n == 0)
    return sl_error_set(err, SL_ERR_CONFIG,
                        "template '%s', column %d: empty placeholder {}", src,
                        (int)(s - src));
  if (s[0] == '@') {
    int m = sl_meta_find(s + 1, n - 1);
    if (m < 0)
      return sl_error_set(err, SL_ERR_CONFIG,
                          "template '%s', column %d: unknown {%.*s}; known: "
                          "%s",
                          src, (int)(s - src), (int)n, s, SL_META_NAMES);
    add_part(t, PART_META)->meta = (enum sl_meta)m;
    return 0;
  }
  struct part *p = add_part(t, PART_FIELD);
  p->text = sl_strndup(s, n);
  t->needs_row = true;
  for (const char *seg = p->text;;) {
    const char *dot = strchr(seg, '.');
    size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
    if (len == 0)
      return sl_error_set(err, SL_ERR_CONFIG,
                          "template '%s', column %d: empty field name in "
                          "{%.*s}",
                          src, (int)(s - src), (int)n, s);
    p->segs = sl_realloc(p->segs, (p->nsegs + 1) * sizeof(*p->segs));
    p->segs[p->nsegs++] = sl_strndup(seg, len);
    if (!dot)
      break;
    seg = dot + 1;
  }
  return 0;
}

int sl_ktpl_compile(const char *src, struct sl_ktpl **out,
                    struct sl_error *err) {
  struct sl_ktpl *t = sl_calloc(1, sizeof(*t));
  const char *s = src;
  int rc = 0;
  while (*s && !rc) {
    if ((s[0] == '{' && s[1] == '{') || (s[0] == '}' && s[1] == '}')) {
      add_text(t, s, 1);
      s += 2;
    } else if (s[0] == '}') {
      rc = sl_error_set(err, SL_ERR_CONFIG,
                        "template '%s', column %d: '}' without '{' (write "
                        "}} for a literal brace)",
                        src, (int)(s - src) + 1);
    } else if (s[0] == '{') {
      const char *close = strchr(s + 1, '}');
      const char *open = strchr(s + 1, '{');
      if (!close || (open && open < close))
        rc = sl_error_set(err, SL_ERR_CONFIG,
                          "template '%s', column %d: '{' without '}' (write "
                          "{{ for a literal brace)",
                          src, (int)(s - src) + 1);
      else
        rc = add_placeholder(t, src, s + 1, (size_t)(close - s - 1), err);
      s = close ? close + 1 : s + 1;
    } else {
      size_t n = strcspn(s, "{}");
      add_text(t, s, n);
      s += n;
    }
  }
  if (rc) {
    sl_ktpl_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

bool sl_ktpl_needs_row(const struct sl_ktpl *t) {
  return t->needs_row;
}

void sl_ktpl_free(struct sl_ktpl *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->n; i++) {
    free(t->parts[i].text);
    for (size_t k = 0; k < t->parts[i].nsegs; k++)
      free(t->parts[i].segs[k]);
    free(t->parts[i].segs);
  }
  free(t->parts);
  free(t);
}

/* ---------------------------------------------------------- rendering */

static size_t put_json(struct sl_kbuf *out, const cJSON *v) {
  char num[32], *heap;
  const char *text;
  size_t n = sl_json_text(v, num, &heap, &text);
  sl_kbuf_put(out, text, n);
  cJSON_free(heap);
  return n;
}

static const cJSON *lookup(const cJSON *row, const struct part *p) {
  const cJSON *v = row;
  for (size_t i = 0; i < p->nsegs && v; i++)
    v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, p->segs[i])
                          : NULL;
  return v;
}

size_t sl_ktpl_render(const struct sl_ktpl *t, const struct sl_record *r,
                      const cJSON *row, struct sl_kbuf *out) {
  size_t n = 0;
  for (size_t i = 0; i < t->n; i++) {
    const struct part *p = &t->parts[i];
    switch (p->kind) {
    case PART_TEXT:
      sl_kbuf_put(out, p->text, strlen(p->text));
      n += strlen(p->text);
      break;
    case PART_FIELD: {
      const cJSON *v = row ? lookup(row, p) : NULL;
      n += v ? put_json(out, v) : 0;
      break;
    }
    case PART_META: {
      char num[24];
      const char *text;
      size_t len;
      if (sl_meta_text(r, p->meta, num, &text, &len)) {
        sl_kbuf_put(out, text, len);
        n += len;
      }
      break;
    }
    }
  }
  return n;
}
