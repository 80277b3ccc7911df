/* util.c - see util.h. */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t sl_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t process_start_ns;

void sl_mark_process_start(void) {
  process_start_ns = sl_mono_ns();
}

int64_t sl_process_start_ns(void) {
  if (!process_start_ns)
    sl_mark_process_start();
  return process_start_ns;
}

int64_t sl_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void oom(size_t n) {
  fprintf(stderr, "sluice: error: out of memory allocating %zu bytes\n", n);
  abort();
}

void *sl_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p)
    oom(n);
  return p;
}

void *sl_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p)
    oom(n * size);
  return p;
}

void *sl_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q)
    oom(n);
  return q;
}

char *sl_strdup(const char *s) {
  return sl_strndup(s, strlen(s));
}

char *sl_strndup(const char *s, size_t n) {
  char *p = sl_malloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *sl_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = sl_malloc((size_t)(n < 0 ? 0 : n) + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}
