/* template.c - key, value and topic templates of the Kafka sink
 * (ksink.h), on the shared template compiler (src/template.h) with its
 * default options. Compiled once at init, rendered per record on worker
 * threads; a compiled template is read-only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/template.h"
#include "../../src/util.h"
#include "ksink.h"

/* ---------------------------------------------------------- templates */

struct sl_ktpl {
  struct sl_tpl t;
};

int sl_ktpl_compile(const char *src, struct sl_ktpl **out,
                    struct sl_error *err) {
  struct sl_ktpl *t = sl_calloc(1, sizeof(*t));
  struct sl_error perr = {0};
  int col = 0;
  if (sl_tpl_compile(&t->t, src, 0, &col, &perr)) {
    free(t);
    return sl_error_set(err, perr.code, "template '%s', column %d: %s", src,
                        col, perr.msg);
  }
  *out = t;
  return 0;
}

bool sl_ktpl_needs_row(const struct sl_ktpl *t) {
  return t->t.needs_row;
}

void sl_ktpl_free(struct sl_ktpl *t) {
  if (!t)
    return;
  sl_tpl_clear(&t->t);
  free(t);
}

size_t sl_ktpl_render(const struct sl_ktpl *t, const struct sl_record *r,
                      const struct cJSON *row, struct sl_buf *out) {
  size_t len0 = out->len;
  /* Without SL_TPL_REQUIRE nothing fails: a missing field is empty. */
  (void)sl_tpl_render(&t->t, r, row, out, NULL);
  return out->len - len0;
}
