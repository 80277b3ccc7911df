/* log.c - see log.h. */
#include "log.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static volatile int log_level = SL_LOG_INFO;
static volatile int log_json;
/* Set by the progress printer, read and cleared by whichever thread logs
 * next: atomic, so that one of them (only) starts a new line. */
static atomic_int status_line;

void sl_log_set_status_line(bool active) {
  atomic_store(&status_line, active);
}
bool sl_log_status_line(void) {
  return atomic_load(&status_line);
}

void sl_log_set_json(bool json) {
  log_json = json;
}
bool sl_log_json(void) {
  return log_json;
}

/* {"ts":"2026-11-21T10:00:00.123Z","level":"info","msg":"..."} */
static int json_line(char *line, size_t cap, enum sl_log_level level,
                     const char *msg) {
  struct timespec ts;
  struct tm tm;
  char when[40];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t k = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + k, sizeof(when) - k, ".%03ldZ", ts.tv_nsec / 1000000);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "ts", when);
  cJSON_AddStringToObject(o, "level", level_names[level]);
  cJSON_AddStringToObject(o, "msg", msg);
  char *txt = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  int n = snprintf(line, cap, "%s", txt ? txt : "{}");
  cJSON_free(txt);
  return n;
}

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
  char line[4096];
  int n;
  va_list ap;
  if ((int)level > log_level)
    return;
  if (log_json) {
    char msg[2048];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = json_line(line, sizeof(line) - 1, level, msg);
  } else {
    /* After a status line: leave it as it is and start a new line (the
     * next batch draws a new status line below). */
    n = snprintf(line, sizeof(line),
                 "%ssluice: %s: ", atomic_exchange(&status_line, 0) ? "\n" : "",
                 level_names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
  }
  if (n > (int)sizeof(line) - 2)
    n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  /* One write per line so lines of several threads never interleave. */
  if (write(STDERR_FILENO, line, (size_t)n) < 0)
    return;
}
