/*
 * util.h - small helpers used everywhere: clocks, checked allocation.
 */
#ifndef SL_UTIL_H
#define SL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in nanoseconds. */
int64_t sl_mono_ns(void);
/* The monotonic time main() started at (sl_mark_process_start), or the
 * first call of this function. */
int64_t sl_process_start_ns(void);
void sl_mark_process_start(void);
/* Wall clock in milliseconds since the epoch. */
int64_t sl_wall_ms(void);

/* Allocation that aborts with a message on out-of-memory: sluice cannot
 * continue a batch without the memory and the checkpoint keeps it safe. */
void *sl_malloc(size_t n);
void *sl_calloc(size_t n, size_t size);
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);
/* printf into a fresh heap string (aborts on OOM like sl_malloc). */
char *sl_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b)    ((a) > (b) ? (a) : (b))

#endif
