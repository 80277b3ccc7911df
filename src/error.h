/*
 * error.h - the one error enum and the error object of sluice.
 *
 * Every function that can fail returns 0 on success or a negative sl_err
 * value, and fills a caller-owned struct sl_error with a message that a user
 * can act on. The flags say whether retrying the same step may succeed
 * (SL_ERR_RETRIABLE) or whether the job must stop (SL_ERR_FATAL).
 */
#ifndef SL_ERROR_H
#define SL_ERROR_H

#include <stdarg.h>
#include <stddef.h>

enum sl_err {
  SL_OK = 0,
  SL_ERR_INVAL = -1,     /* bad argument or bad input */
  SL_ERR_CONFIG = -2,    /* invalid job file or option */
  SL_ERR_IO = -3,        /* file system error */
  SL_ERR_CORRUPT = -4,   /* checksum mismatch, torn or unparsable file */
  SL_ERR_SOURCE = -5,    /* source (broker) error */
  SL_ERR_SINK = -6,      /* sink error */
  SL_ERR_TIMEOUT = -7,   /* a bounded wait ran out */
  SL_ERR_NOMEM = -8,     /* allocation failed */
  SL_ERR_DATALOSS = -9,  /* data the job needs is gone */
  SL_ERR_STOPPED = -10,  /* shutdown was requested */
  SL_ERR_AGAIN = -11,    /* nothing now, try later (queue full, no data) */
  SL_ERR_NOTFOUND = -12, /* lookup found nothing */
  SL_ERR_FENCED = -13    /* another instance owns the partition now */
};

#define SL_ERR_RETRIABLE 0x1u
#define SL_ERR_FATAL     0x2u

struct sl_error {
  int code;       /* an enum sl_err value, SL_OK when no error */
  unsigned flags; /* SL_ERR_RETRIABLE / SL_ERR_FATAL */
  char msg[1024];
};

/* Clears err (code SL_OK, empty message). err may be NULL. */
void sl_error_clear(struct sl_error *err);

/* Sets err to code with a printf-style message and returns code, so that
 * `return sl_error_set(err, SL_ERR_IO, "...")` reads naturally.
 * err may be NULL (the message is dropped, the code still returned). */
int sl_error_set(struct sl_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sl_error_vset(struct sl_error *err, int code, const char *fmt, va_list ap);

/* Like sl_error_set, and also sets flags. */
int sl_error_setf(struct sl_error *err, int code, unsigned flags,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Prepends "prefix: " to the message already in err; returns err->code. */
int sl_error_prefix(struct sl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A short name of an sl_err code ("io", "corrupt", ...). */
const char *sl_err_name(int code);

#endif
