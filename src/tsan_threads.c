/*
 * tsan_threads.c - C11 threads over pthreads, for the ThreadSanitizer
 * build of sluice only.
 *
 * librdkafka starts and joins its threads with C11 thrd_create and
 * thrd_join. glibc implements those by calling its internal pthread
 * functions, which the TSan runtime of Debian 12 (GCC 12) does not
 * intercept, so it never sets up its state for librdkafka's threads and
 * crashes at their first malloc. Defined here, in the executable, these
 * three take precedence over glibc's for librdkafka and go through the
 * intercepted pthread_create, pthread_join and pthread_detach instead.
 * glibc's thrd_t is a pthread_t, and a thread's int result travels
 * through the void * of pthread_exit and pthread_join as glibc's own
 * thrd_join expects.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

struct start {
  thrd_start_t fn;
  void *arg;
};

static void *run(void *p) {
  struct start s = *(struct start *)p;
  free(p);
  return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg) {
  struct start *s = malloc(sizeof(*s));
  if (!s)
    return thrd_nomem;
  s->fn = fn;
  s->arg = arg;
  int rc = pthread_create(thr, NULL, run, s);
  if (rc) {
    free(s);
    return rc == EAGAIN ? thrd_nomem : thrd_error;
  }
  return thrd_success;
}

int thrd_join(thrd_t thr, int *res) {
  void *r;
  if (pthread_join(thr, &r))
    return thrd_error;
  if (res)
    *res = (int)(intptr_t)r;
  return thrd_success;
}

int thrd_detach(thrd_t thr) {
  return pthread_detach(thr) ? thrd_error : thrd_success;
}
