/*
 * failpoint.c - the cost of an unarmed crash point (`make bench`).
 *
 * Calls two functions that differ only in one sl_failpoint() call, the
 * same number of times each, in alternating rounds, and prints the median
 * nanoseconds per call of each as JSON. Both are out of line and their
 * argument and result go through the loop, so neither call is folded away.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "src/failpoint.h"

__attribute__((noinline)) static uint64_t plain(uint64_t x) {
  __asm__ volatile("" : "+r"(x));
  return x * 2654435761u + 1;
}

__attribute__((noinline)) static uint64_t marked(uint64_t x) {
  if (sl_failpoint("batch.planned"))
    return 0;
  __asm__ volatile("" : "+r"(x));
  return x * 2654435761u + 1;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  enum { ROUNDS = 9 };
  long iters = argc > 1 ? atol(argv[1]) : 100000000L;
  double t_plain[ROUNDS], t_marked[ROUNDS];
  uint64_t acc = 1;
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now_ns();
    for (long i = 0; i < iters; i++)
      acc = plain(acc);
    double t1 = now_ns();
    for (long i = 0; i < iters; i++)
      acc = marked(acc);
    double t2 = now_ns();
    t_plain[r] = (t1 - t0) / (double)iters;
    t_marked[r] = (t2 - t1) / (double)iters;
  }
  qsort(t_plain, ROUNDS, sizeof(double), cmp_double);
  qsort(t_marked, ROUNDS, sizeof(double), cmp_double);
  printf("{\"iterations\": %ld, \"rounds\": %d, \"plain_ns\": %.4f, "
         "\"marked_ns\": %.4f, \"checksum\": %llu}\n",
         iters, ROUNDS, t_plain[ROUNDS / 2], t_marked[ROUNDS / 2],
         (unsigned long long)(acc & 0xffff));
  return 0;
}
