/*
 * clickgen.h - deterministic synthetic clickstream records.
 *
 * Record i of seed s is always the same JSON object:
 *   {"id":i,"user":"u0042","page":"/p3","event":"view","amount":12.34,
 *    "ts":1700000000000}
 * event is view (60%), click (30%) or buy (10%); user is one of 1000;
 * page is one of /p0../p19, skewed towards low numbers;
 * ts = 1700000000000 + 10 * i (event time advances 10 ms per record).
 * The key of a record is its user. Used by `sluice produce`, the embedded
 * cluster of `brokers: embedded`, tests and benchmarks.
 */
#ifndef SL_CLICKGEN_H
#define SL_CLICKGEN_H

#include <stddef.h>
#include <stdint.h>

#define SL_CLICKGEN_MAX 160 /* longest record, with its NUL */

/* Writes record i into buf (at least SL_CLICKGEN_MAX bytes) and its key
 * into key (at least 8 bytes); returns the record length. */
size_t sl_clickgen(uint64_t seed, uint64_t i, char *buf, char *key,
                   size_t *key_len);

#endif
