/*
 * sub.c - the latency benchmark's Redis reader: SUBSCRIBE CHANNEL, stamp
 * every message with the wall clock (microseconds) at the read(2) that
 * brought it, and take its send time from it: the message itself when it is
 * all digits (the sluice jobs publish {t}, or an aggregate of it), else the
 * digits after "t": (bench_echo --redis publishes the record's value).
 * Stops at the message "end" (latency.py publishes it once the target has
 * stopped) or at SIGTERM, then writes one line "SEND_US LATENCY_US" per
 * message to OUT. Stamps are kept in memory until then, so that writing
 * them costs the reading nothing.
 *
 *   bench_sub HOST:PORT CHANNEL OUT
 *
 * In C because a Python subscriber (python3-redis without hiredis) falls
 * behind well below the rates the sweep runs at, and its own delay would
 * be counted as the target's. Prints "bench_sub: ready" to stderr once the
 * subscription is confirmed.
 */
#define _POSIX_C_SOURCE 200809L
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_term(int sig) {
  (void)sig;
  stop = 1;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "bench_sub: %s: %s\n", what, why);
  exit(1);
}

static long long wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The send time a message carries, or -1. */
static long long send_time(const char *s, size_t len) {
  size_t i = 0;
  while (i < len && s[i] >= '0' && s[i] <= '9')
    i++;
  if (i == len && len > 0)
    return strtoll(s, NULL, 10);
  static const char key[] = "\"t\":";
  for (i = 0; i + sizeof(key) - 1 < len; i++) {
    if (memcmp(s + i, key, sizeof(key) - 1) != 0)
      continue;
    long long v = 0;
    size_t j = i + sizeof(key) - 1, k = j;
    while (k < len && s[k] >= '0' && s[k] <= '9')
      v = v * 10 + (s[k++] - '0');
    return k > j ? v : -1;
  }
  return -1;
}

struct sample {
  long long sent, latency;
};

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: bench_sub HOST:PORT CHANNEL OUT\n");
    return 64;
  }
  char host[256];
  const char *colon = strrchr(argv[1], ':');
  if (!colon || (size_t)(colon - argv[1]) >= sizeof(host))
    die(argv[1], "HOST:PORT expected");
  memcpy(host, argv[1], (size_t)(colon - argv[1]));
  host[colon - argv[1]] = '\0';
  FILE *out = fopen(argv[3], "w");
  if (!out)
    die(argv[3], "cannot create");
  signal(SIGTERM, on_term);
  redisContext *r = redisConnect(host, atoi(colon + 1));
  if (!r || r->err)
    die("connect", r ? r->errstr : "out of memory");
  redisReply *rep = redisCommand(r, "SUBSCRIBE %s", argv[2]);
  if (!rep || rep->type != REDIS_REPLY_ARRAY)
    die("SUBSCRIBE", r->err ? r->errstr : "unexpected reply");
  freeReplyObject(rep);
  fprintf(stderr, "bench_sub: ready\n");
  size_t n = 0, cap = 1 << 20;
  long long skipped = 0;
  struct sample *v = malloc(cap * sizeof(*v));
  if (!v)
    die("malloc", "out of memory");
  long long stamp = wall_us();
  int done = 0;
  while (!done && !stop) {
    void *reply = NULL;
    if (redisGetReplyFromReader(r, &reply) != REDIS_OK)
      die("reply", r->errstr);
    if (!reply) {
      /* nothing parsed is left: wait for more (at most 100 ms, to see
       * SIGTERM) and stamp what the read brings */
      struct pollfd p = {.fd = r->fd, .events = POLLIN};
      if (poll(&p, 1, 100) <= 0)
        continue;
      if (redisBufferRead(r) != REDIS_OK)
        die("read", r->errstr);
      stamp = wall_us();
      continue;
    }
    rep = reply;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
        rep->element[2]->type == REDIS_REPLY_STRING) {
      const char *s = rep->element[2]->str;
      size_t len = rep->element[2]->len;
      if (len == 3 && memcmp(s, "end", 3) == 0) {
        done = 1;
      } else {
        long long t = send_time(s, len);
        if (t < 0) {
          skipped++;
        } else {
          if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof(*v));
            if (!v)
              die("realloc", "out of memory");
          }
          v[n].sent = t;
          v[n++].latency = stamp - t;
        }
      }
    }
    freeReplyObject(rep);
  }
  for (size_t i = 0; i < n; i++)
    fprintf(out, "%lld %lld\n", v[i].sent, v[i].latency);
  if (fclose(out) != 0)
    die(argv[3], "write failed");
  fprintf(stderr, "bench_sub: %zu messages, %lld without a send time\n", n,
          skipped);
  free(v);
  redisFree(r);
  return 0;
}
