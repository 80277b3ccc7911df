/*
 * redis.h - the pure parts of the Redis sink, for unit tests.
 */
#ifndef SL_REDIS_SINK_H
#define SL_REDIS_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "../../src/buf.h"
#include "../../src/offsets.h"

/* Commands of a stage are sent in chunks: the commands [from, end) where
 * end is the first command that would make the chunk hold more than
 * max_cmds commands or max_bytes bytes (a chunk has at least one command).
 * ends[i] is the byte offset just past command i in the stage's buffer. */
size_t sl_redis_chunk_end(const size_t *ends, size_t n, size_t from,
                          size_t max_cmds, size_t max_bytes);

/* Appends one command in the Redis protocol (RESP: an array of bulk
 * strings) to b.
 * The same bytes as hiredis's redisFormatCommandArgv, without its malloc
 * and sprintf per command (8% of a windowed job's CPU). */
void sl_redis_format(struct sl_buf *b, size_t argc, const char *const *argv,
                     const size_t *lens);

/* The commit record in Redis is one hash: "batch" -> N and, per source
 * partition, "o:<topic>:<partition>" -> end offset. Fills *batch and end
 * from the hash's field/value pairs (fields[i], values[i]); unknown
 * fields are ignored. Returns 0, or -1 with a message when a field the
 * sink writes is malformed. */
int sl_redis_commit_decode(const char *const *fields, const char *const *values,
                           size_t n, uint64_t *batch, struct sl_plan *end,
                           char *msg, size_t msgsz);

/* Group mode (claim): the same hash also holds "claims" -> the number of
 * claims ever made (the last token given) and, per partition claimed,
 * "c:<topic>:<partition>" -> the token of its current owner. Fills claims
 * with one range per c: field (start = end = the token); other fields are
 * ignored. Returns 0, or -1 with a message when a c: field is malformed. */
int sl_redis_claims_decode(const char *const *fields, const char *const *values,
                           size_t n, struct sl_plan *claims, char *msg,
                           size_t msgsz);

#endif
