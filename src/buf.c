/* buf.c - the growable byte buffer's slow paths (see buf.h). */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"

void sl_buf_grow(struct sl_buf *b, size_t more) {
  if (more >= SIZE_MAX / 2 - b->len) {
    sl_error_log("buffer of %zu bytes cannot grow by %zu", b->len, more);
    abort();
  }
  size_t cap = b->cap ? b->cap * 2 : SL_BUF_MIN;
  if (cap - b->len <= more)
    cap = b->len + more + 1;
  b->p = sl_realloc(b->p, cap);
  b->cap = cap;
  b->p[b->len] = '\0'; /* for the first allocation */
}

void sl_buf_vprintf(struct sl_buf *b, const char *fmt, va_list ap) {
  /* A first guess of what is left, then the exact size. */
  sl_buf_reserve(b, 0);
  va_list again;
  va_copy(again, ap);
  size_t room = b->cap - b->len;
  int n = vsnprintf(b->p + b->len, room, fmt, ap);
  if (n >= 0 && (size_t)n >= room) {
    sl_buf_reserve(b, (size_t)n);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, again);
  }
  va_end(again);
  if (n < 0) {
    b->p[b->len] = '\0'; /* vsnprintf may have left part of it */
    return;
  }
  b->len += (size_t)n;
}

void sl_buf_printf(struct sl_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sl_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

char *sl_buf_take(struct sl_buf *b) {
  sl_buf_reserve(b, 0); /* "" when nothing was added */
  char *s = b->p;
  *b = (struct sl_buf)SL_BUF_INIT;
  return s;
}

void sl_buf_free(struct sl_buf *b) {
  free(b->p);
  *b = (struct sl_buf)SL_BUF_INIT;
}
