/*
 * log.h - leveled logging to stderr.
 *
 * Lines look like "sluice: info: message", or, for machines
 * (--log-format json), {"ts":"<ISO 8601 UTC>","level":"info","msg":"..."}.
 * Thread-safe: each line is written with one write(2). Never pass a secret
 * to these functions.
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdbool.h>

enum sl_log_level {
  SL_LOG_ERROR = 0,
  SL_LOG_WARN = 1,
  SL_LOG_INFO = 2,
  SL_LOG_DEBUG = 3
};

/* Only messages at or below this level are written (default SL_LOG_INFO). */
void sl_log_set_level(enum sl_log_level level);
enum sl_log_level sl_log_get_level(void);
/* One JSON object per line instead of text. */
void sl_log_set_json(bool json);
bool sl_log_json(void);
/* A status line (no newline yet) is on the terminal: the next text line
 * starts on a new line. */
void sl_log_set_status_line(bool active);
bool sl_log_status_line(void);
/* Parses "error", "warn", "info", "debug"; returns 0 or -1. */
int sl_log_parse_level(const char *s, enum sl_log_level *out);

void sl_log(enum sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define sl_error_log(...) sl_log(SL_LOG_ERROR, __VA_ARGS__)
#define sl_warn(...)      sl_log(SL_LOG_WARN, __VA_ARGS__)
#define sl_info(...)      sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_debug(...)     sl_log(SL_LOG_DEBUG, __VA_ARGS__)

#endif
