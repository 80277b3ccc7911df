/* error.c - see error.h. */
#include "error.h"

#include <stdio.h>
#include <string.h>

#define SL_MIN_SZ(a, b) ((a) < (b) ? (a) : (b))

void sl_error_clear(struct sl_error *err) {
  if (!err)
    return;
  err->code = SL_OK;
  err->flags = 0;
  err->msg[0] = '\0';
}

int sl_error_vset(struct sl_error *err, int code, const char *fmt, va_list ap) {
  if (!err)
    return code;
  err->code = code;
  err->flags = 0;
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  return code;
}

int sl_error_set(struct sl_error *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sl_error_vset(err, code, fmt, ap);
  va_end(ap);
  return code;
}

int sl_error_setf(struct sl_error *err, int code, unsigned flags,
                  const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sl_error_vset(err, code, fmt, ap);
  va_end(ap);
  if (err)
    err->flags = flags;
  return code;
}

int sl_error_prefix(struct sl_error *err, const char *fmt, ...) {
  char prefix[512], old[sizeof(err->msg)];
  va_list ap;
  if (!err)
    return SL_ERR_INVAL;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof(prefix), fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof(old));
  size_t np = strlen(prefix), nold = strnlen(old, sizeof(old) - 1);
  size_t cap = sizeof(err->msg) - 1, pos = 0;
  /* Manual concatenation: the prefix wins, the old message is truncated. */
  memcpy(err->msg, prefix, SL_MIN_SZ(np, cap));
  pos = SL_MIN_SZ(np, cap);
  if (pos + 2 <= cap) {
    memcpy(err->msg + pos, ": ", 2);
    pos += 2;
  }
  memcpy(err->msg + pos, old, SL_MIN_SZ(nold, cap - pos));
  pos += SL_MIN_SZ(nold, cap - pos);
  err->msg[pos] = '\0';
  return err->code;
}

const char *sl_err_name(int code) {
  switch (code) {
  case SL_OK:
    return "ok";
  case SL_ERR_INVAL:
    return "invalid";
  case SL_ERR_CONFIG:
    return "config";
  case SL_ERR_IO:
    return "io";
  case SL_ERR_CORRUPT:
    return "corrupt";
  case SL_ERR_SOURCE:
    return "source";
  case SL_ERR_SINK:
    return "sink";
  case SL_ERR_TIMEOUT:
    return "timeout";
  case SL_ERR_NOMEM:
    return "nomem";
  case SL_ERR_DATALOSS:
    return "dataloss";
  case SL_ERR_STOPPED:
    return "stopped";
  case SL_ERR_AGAIN:
    return "again";
  case SL_ERR_NOTFOUND:
    return "notfound";
  case SL_ERR_FENCED:
    return "fenced";
  default:
    return "unknown";
  }
}
