/*
 * buf.h - a growable NUL-terminated string, for the files of the config
 * module. It depends on nothing else of the module, so interp.c, which
 * uses it, does not reach back into config.c.
 */
#ifndef SL_CFG_BUF_H
#define SL_CFG_BUF_H

#include <stddef.h>

struct sl_cfg_buf {
  char *p;
  size_t len, cap;
};

/* Appends s[0..n) and keeps the text NUL-terminated (p is malloc'd; the
 * caller frees it). */
void sl_cfg_buf_add(struct sl_cfg_buf *b, const char *s, size_t n);
void sl_cfg_buf_adds(struct sl_cfg_buf *b, const char *s);

#endif
