/*
 * conn.h - where a Redis is and how to log in: the url of a job
 * (redis://[user:password@]host[:port][/db], unix:///path[?db=N]) and a
 * connection that has authenticated and selected its database.
 */
#ifndef SL_REDIS_CONN_H
#define SL_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../src/error.h"

struct sl_redis_url {
  char *host; /* NULL for a unix socket */
  int port;
  char *path; /* unix socket path, or NULL */
  char *user; /* NULL: the default user (AUTH password) */
  char *password;
  int db;
};

/* Parses url. On error returns -1 with a message that never contains the
 * password. */
int sl_redis_url_parse(const char *url, struct sl_redis_url *u, char *msg,
                       size_t msgsz);
void sl_redis_url_free(struct sl_redis_url *u);
/* "host:port/db" or "unix:/path/db" (no credentials), into buf. */
const char *sl_redis_url_describe(const struct sl_redis_url *u, char *buf,
                                  size_t n);

/* Connects, authenticates and selects the database; every step is bounded
 * by timeout_ns. On failure returns NULL and fills err (SL_ERR_SINK,
 * retriable when the server could not be reached or timed out). */
redisContext *sl_redis_connect(const struct sl_redis_url *u, int64_t timeout_ns,
                               struct sl_error *err);

#endif
