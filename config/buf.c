/* buf.c - see buf.h. */
#include "buf.h"

#include <string.h>

#include "../src/util.h"

void sl_cfg_buf_add(struct sl_cfg_buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (b->len + n + 1 > cap)
      cap *= 2;
    b->p = sl_realloc(b->p, cap);
    b->cap = cap;
  }
  if (n)
    memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void sl_cfg_buf_adds(struct sl_cfg_buf *b, const char *s) {
  sl_cfg_buf_add(b, s, strlen(s));
}
