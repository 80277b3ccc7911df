/* conn.c - Redis urls and authenticated connections (see conn.h). */
#include "conn.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "../../src/util.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = (char)tolower((unsigned char)c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into a fresh string, or NULL when malformed. */
static char *pct_decode(const char *s, size_t n) {
  char *out = sl_malloc(n + 1);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      out[k++] = s[i];
      continue;
    }
    int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
    int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      free(out);
      return NULL;
    }
    out[k++] = (char)(hi * 16 + lo);
    i += 2;
  }
  out[k] = '\0';
  return out;
}

static int bad(char *msg, size_t msgsz, const char *what) {
  snprintf(msg, msgsz, "%s", what);
  return -1;
}

static int parse_db(const char *s, size_t n, int *db) {
  if (n == 0)
    return 0;
  if (n > 5)
    return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i]))
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *db = v;
  return 0;
}

static int parse_unix(const char *rest, struct sl_redis_url *u, char *msg,
                      size_t msgsz) {
  /* unix:///path or unix:/path, then ?db=N */
  if (rest[0] == '/' && rest[1] == '/')
    rest += 2; /* the empty authority of unix:///path */
  if (rest[0] != '/')
    return bad(msg, msgsz, "a unix socket url is unix:///absolute/path");
  const char *q = strchr(rest, '?');
  size_t plen = q ? (size_t)(q - rest) : strlen(rest);
  if (plen < 2)
    return bad(msg, msgsz, "the unix socket path is empty");
  u->path = sl_strndup(rest, plen);
  if (q) {
    if (strncmp(q, "?db=", 4) != 0 || parse_db(q + 4, strlen(q + 4), &u->db))
      return bad(msg, msgsz, "after the socket path only ?db=N is allowed");
  }
  return 0;
}

int sl_redis_url_parse(const char *url, struct sl_redis_url *u, char *msg,
                       size_t msgsz) {
  memset(u, 0, sizeof(*u));
  u->port = 6379;
  int rc;
  if (strncmp(url, "unix:", 5) == 0) {
    rc = parse_unix(url + 5, u, msg, msgsz);
    goto out;
  }
  if (strncmp(url, "rediss://", 9) == 0) {
    rc = bad(msg, msgsz,
             "TLS (rediss://) is not supported; use redis:// "
             "on a trusted network or a unix socket");
    goto out;
  }
  if (strncmp(url, "redis://", 8) != 0) {
    rc = bad(msg, msgsz,
             "the url must start with redis:// or unix:// "
             "(redis://[user:password@]host[:port][/db])");
    goto out;
  }
  const char *a = url + 8;
  size_t alen = strcspn(a, "/?#");
  const char *at = NULL;
  for (size_t i = 0; i < alen; i++)
    if (a[i] == '@')
      at = a + i; /* the last '@': a password may hold one, encoded or not */
  if (at) {
    const char *colon = memchr(a, ':', (size_t)(at - a));
    if (!colon) {
      rc = bad(msg, msgsz,
               "the credentials before '@' are "
               "[user]:password");
      goto out;
    }
    if (colon > a && !(u->user = pct_decode(a, (size_t)(colon - a)))) {
      rc = bad(msg, msgsz, "bad %-escape in the user name");
      goto out;
    }
    if (!(u->password = pct_decode(colon + 1, (size_t)(at - colon - 1)))) {
      rc = bad(msg, msgsz, "bad %-escape in the password");
      goto out;
    }
    alen -= (size_t)(at + 1 - a);
    a = at + 1;
  }
  const char *hend;
  if (a[0] == '[') {
    const char *rb = memchr(a, ']', alen);
    if (!rb) {
      rc = bad(msg, msgsz, "unclosed '[' in an IPv6 host");
      goto out;
    }
    u->host = sl_strndup(a + 1, (size_t)(rb - a - 1));
    hend = rb + 1;
  } else {
    hend = a + strcspn(a, ":/?#");
    if (hend > a + alen)
      hend = a + alen;
    u->host = sl_strndup(a, (size_t)(hend - a));
  }
  if (!u->host[0]) {
    rc = bad(msg, msgsz, "the url has no host");
    goto out;
  }
  if (*hend == ':') {
    char *end;
    long port = strtol(hend + 1, &end, 10);
    if (end == hend + 1 || port < 1 || port > 65535 ||
        (end != a + alen && *end != '/')) {
      rc = bad(msg, msgsz, "the port must be a number from 1 to 65535");
      goto out;
    }
    u->port = (int)port;
  }
  const char *rest = a + alen;
  if (*rest == '/') {
    rest++;
    if (parse_db(rest, strlen(rest), &u->db)) {
      rc = bad(msg, msgsz,
               "the path of the url is the database number "
               "(redis://host:6379/0)");
      goto out;
    }
  } else if (*rest) {
    rc = bad(msg, msgsz,
             "query strings and fragments are not supported in "
             "a redis:// url");
    goto out;
  }
  rc = 0;
out:
  if (rc)
    sl_redis_url_free(u);
  return rc;
}

void sl_redis_url_free(struct sl_redis_url *u) {
  free(u->host);
  free(u->path);
  free(u->user);
  free(u->password);
  memset(u, 0, sizeof(*u));
}

const char *sl_redis_url_describe(const struct sl_redis_url *u, char *buf,
                                  size_t n) {
  if (u->path)
    snprintf(buf, n, "unix:%s/%d", u->path, u->db);
  else if (strchr(u->host, ':'))
    snprintf(buf, n, "[%s]:%d/%d", u->host, u->port, u->db);
  else
    snprintf(buf, n, "%s:%d/%d", u->host, u->port, u->db);
  return buf;
}

static struct timeval tv_of(int64_t ns) {
  return (struct timeval){.tv_sec = (time_t)(ns / 1000000000),
                          .tv_usec = (suseconds_t)(ns % 1000000000 / 1000)};
}

/* Runs one command during the login; a server error is fatal. */
static int login_step(redisContext *c, const char *where, const char *what,
                      redisReply *r, struct sl_error *err) {
  if (!r)
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE, "redis %s: %s: %s",
                         where, what, c->errstr[0] ? c->errstr : "no reply");
  int rc = 0;
  if (r->type == REDIS_REPLY_ERROR)
    rc = sl_error_setf(err, SL_ERR_SINK, SL_ERR_FATAL, "redis %s: %s: %s",
                       where, what, r->str);
  freeReplyObject(r);
  return rc;
}

redisContext *sl_redis_connect(const struct sl_redis_url *u, int64_t timeout_ns,
                               struct sl_error *err) {
  char where[300];
  sl_redis_url_describe(u, where, sizeof(where));
  struct timeval tv = tv_of(timeout_ns);
  redisContext *c = u->path ? redisConnectUnixWithTimeout(u->path, tv)
                            : redisConnectWithTimeout(u->host, u->port, tv);
  if (!c || c->err) {
    sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                  "cannot connect to redis at %s: %s", where,
                  c ? c->errstr : "out of memory");
    if (c)
      redisFree(c);
    return NULL;
  }
  if (redisSetTimeout(c, tv) != REDIS_OK) {
    sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                  "redis at %s: cannot set the timeout: %s", where, c->errstr);
    redisFree(c);
    return NULL;
  }
  /* The password goes as an argument vector: never formatted into text
   * that an error message could echo. */
  if (u->password) {
    const char *argv[3] = {"AUTH", u->user ? u->user : u->password,
                           u->password};
    size_t lens[3] = {4, strlen(argv[1]), strlen(u->password)};
    redisReply *r = redisCommandArgv(c, u->user ? 3 : 2, argv, lens);
    if (login_step(c, where, "authentication failed", r, err)) {
      redisFree(c);
      return NULL;
    }
  }
  if (u->db) {
    redisReply *r = redisCommand(c, "SELECT %d", u->db);
    if (login_step(c, where, "cannot select the database", r, err)) {
      redisFree(c);
      return NULL;
    }
  }
  return c;
}
