/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int log_level = SL_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sl_log_set_level(enum sl_log_level level) {
  log_level = (int)level;
}

enum sl_log_level sl_log_get_level(void) {
  return (enum sl_log_level)log_level;
}

int sl_log_parse_level(const char *s, enum sl_log_level *out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (enum sl_log_level)i;
      return 0;
    }
  }
  return -1;
}

void sl_log(enum sl_log_level level, const char *fmt, ...) {
  char line[2048];
  int n;
  va_list ap;
  if ((int)level > log_level)
    return;
  n = snprintf(line, sizeof(line), "sluice: %s: ", level_names[level]);
  va_start(ap, fmt);
  n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof(line) - 2)
    n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  /* One write per line so lines of several threads never interleave. */
  if (write(STDERR_FILENO, line, (size_t)n) < 0)
    return;
}
