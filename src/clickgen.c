/* clickgen.c - see clickgen.h. */
#include "clickgen.h"

#include <stdio.h>

/* splitmix64: a well-mixed 64-bit hash of (seed, i). */
static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

size_t sl_clickgen(uint64_t seed, uint64_t i, char *buf, char *key,
                   size_t *key_len) {
  static const char *const events[10] = {"view",  "view", "view",  "view",
                                         "view",  "view", "click", "click",
                                         "click", "buy"};
  uint64_t h = mix(seed * 0x100000001b3ULL ^ mix(i));
  unsigned user = (unsigned)(h % 1000);
  const char *event = events[(h >> 10) % 10];
  unsigned cents = (unsigned)((h >> 20) % 10000);
  /* Pages are skewed (the smaller of two draws): low numbers are popular,
   * so "top pages" has an answer. */
  unsigned p1 = (unsigned)((h >> 34) % 20), p2 = (unsigned)((h >> 44) % 20);
  unsigned page = p1 < p2 ? p1 : p2;
  long long ts = 1700000000000LL + 10LL * (long long)i;
  *key_len = (size_t)snprintf(key, 8, "u%04u", user);
  int n = snprintf(buf, SL_CLICKGEN_MAX,
                   "{\"id\":%llu,\"user\":\"u%04u\",\"page\":\"/p%u\","
                   "\"event\":\"%s\",\"amount\":%u.%02u,\"ts\":%lld}",
                   (unsigned long long)i, user, page, event, cents / 100,
                   cents % 100, ts);
  return (size_t)n;
}
