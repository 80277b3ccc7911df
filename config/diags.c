/* diags.c - see diags.h. */
#include "diags.h"

#include <stdlib.h>
#include <string.h>

#include "../src/util.h"

struct diag {
  char *file; /* NULL: no position */
  int line, col;
  size_t seq; /* arrival, for a stable order */
  char *msg;
};

struct sl_cfg_diags {
  struct diag *v;
  size_t n, cap;
};

static _Thread_local struct sl_cfg_diags *current;

struct sl_cfg_diags *sl_cfg_diags_begin(void) {
  current = sl_calloc(1, sizeof(*current));
  return current;
}

void sl_cfg_diags_end(struct sl_cfg_diags *d) {
  if (!d)
    return;
  if (current == d)
    current = NULL;
  for (size_t i = 0; i < d->n; i++) {
    free(d->v[i].file);
    free(d->v[i].msg);
  }
  free(d->v);
  free(d);
}

bool sl_cfg_collecting(void) {
  return current != NULL;
}

void sl_cfg_diags_add(const char *file, int line, int col, const char *msg) {
  struct sl_cfg_diags *d = current;
  if (!d)
    return;
  for (size_t i = 0; i < d->n; i++)
    if (strcmp(d->v[i].msg, msg) == 0)
      return;
  if (d->n == d->cap) {
    d->cap = d->cap ? 2 * d->cap : 16;
    d->v = sl_realloc(d->v, d->cap * sizeof(*d->v));
  }
  d->v[d->n] = (struct diag){.file = file ? sl_strdup(file) : NULL,
                             .line = line,
                             .col = col,
                             .seq = d->n,
                             .msg = sl_strdup(msg)};
  d->n++;
}

size_t sl_cfg_diags_mark(void) {
  return current ? current->n : 0;
}

int sl_cfg_diags_keep(size_t mark, int rc, const struct sl_error *err) {
  struct sl_cfg_diags *d = current;
  if (!d)
    return rc;
  if (rc && d->n == mark && err && err->msg[0])
    sl_cfg_diags_add(NULL, 0, 0, err->msg);
  if (!rc) {
    while (d->n > mark) {
      d->n--;
      free(d->v[d->n].file);
      free(d->v[d->n].msg);
    }
  }
  return rc;
}

size_t sl_cfg_diags_count(const struct sl_cfg_diags *d) {
  return d ? d->n : 0;
}

/* Positioned first, in file order; the job file before --set (whose
 * "file" is "--set"), each by name; then the rest as they came. */
static int cmp(const void *a, const void *b) {
  const struct diag *x = a, *y = b;
  if (!x->file != !y->file)
    return x->file ? -1 : 1;
  if (x->file && y->file) {
    int sx = strcmp(x->file, "--set") == 0, sy = strcmp(y->file, "--set") == 0;
    if (sx != sy)
      return sx - sy;
    int c = strcmp(x->file, y->file);
    if (c)
      return c;
    if (x->line != y->line)
      return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
      return x->col < y->col ? -1 : 1;
  }
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void sl_cfg_diags_print(const struct sl_cfg_diags *d, FILE *out, size_t max) {
  if (!d || !d->n)
    return;
  struct diag *v = sl_malloc(d->n * sizeof(*v));
  memcpy(v, d->v, d->n * sizeof(*v));
  qsort(v, d->n, sizeof(*v), cmp);
  size_t shown = d->n < max ? d->n : max;
  for (size_t i = 0; i < shown; i++)
    fprintf(out, "%s\n", v[i].msg);
  if (d->n > shown)
    fprintf(out, "... and %zu more error%s\n", d->n - shown,
            d->n - shown == 1 ? "" : "s");
  free(v);
}
