/*
 * redis.c - writes each output record as Redis commands, exactly once.
 *
 *   sink:
 *     redis:
 *       url: redis://127.0.0.1:6379/0
 *       command:                          # one or more per record
 *         - SADD ids {id}
 *         - HINCRBY spend {user} {amount}
 *       ttl: 1h                           # optional PEXPIRE of each key
 *
 * Staging (worker threads) renders every record's commands into Redis
 * protocol in the task's stage, in memory; a record a template cannot
 * render (a missing field) is rejected to the dead letters.
 *
 * The commit record, one hash per job (commit_key, default
 * sluice:<job>:commit), the same for both triggers:
 *
 *   batch                   the last committed batch (interval) or epoch
 *                           (continuous); absent until the first commit
 *   o:<topic>:<partition>   the partition's position: the next offset to
 *                           apply; never lowered, never deleted
 *
 * last_committed() reads both; positions() the o: fields of the source's
 * topics, where recovery resumes each partition (DESIGN.md section 14).
 *
 * A record of partition p at offset o is applied only if o >= the stored
 * position of p (absent: every offset). Stages remember each record's
 * partition, offset and the commands it rendered for that guard.
 *
 * Commit (the coordinator), one round of pipelined writes per batch:
 *
 *   WATCH <commit key>; HGETALL <commit key>
 *     -> batch >= N: UNWATCH, done (a re-run of a committed batch: no-op)
 *   MULTI
 *   the commands of the stages' records at or beyond their partition's
 *   stored position, in task order, in chunks (`pipeline` commands or
 *   1 MiB), reading the QUEUED replies after each chunk so neither side
 *   buffers the whole batch twice
 *   HSET <commit key> batch N o:<topic>:<p> max(stored, end) ...
 *   EXEC
 *
 * Partitions not in the plan keep their fields. In a continuous run
 * (sink->run->continuous) the streams write records at once
 * (SL_SINK_WRITES_AT_ONCE): each group is one EVALSHA of stream_lua (its
 * ARGV layout is at the script) that applies the records beyond the
 * stored positions and moves them, atomically; the epoch commit (n = 0
 * stages) is one EVAL of epoch_lua, without WATCH (the streams write the
 * hash meanwhile): batch and each o: field become max(stored, new).
 *
 * MULTI/EXEC makes the batch's effects and its commit record visible
 * together; WATCH makes EXEC fail if another writer changed the commit
 * record meanwhile (then the commit is checked again). Since the whole
 * batch is guarded by the batch id and each record by its position,
 * non-idempotent commands (INCRBY, RPUSH, XADD) are applied exactly once too. A
 * batch stays one transaction however large it is: Redis holds the queued
 * commands in memory until EXEC (about the size of the commands), so
 * max_records_per_batch bounds it. A command that Redis rejects while queueing
 * (it never happens for validated templates) discards the transaction. A
 * command that fails inside EXEC (WRONGTYPE: the key holds another type) cannot
 * be rolled back by Redis: the batch is committed without that effect and the
 * job stops with a message naming it.
 *
 * A lost connection, a timeout or a refused connection is a retriable
 * error: the engine retries the commit (sink.redis.retry) on a new
 * connection; the WATCH/HGETALL guard tells whether a transaction whose reply
 * was lost did commit. Redis decides what survives its own restart: the
 * sink reads CONFIG GET appendonly/appendfsync at start and warns unless
 * they are yes/always; a Redis that comes back behind the checkpoint is
 * reported by recovery as data loss.
 *
 * Group mode (several instances of the job in one Kafka consumer group,
 * DESIGN.md section 14; the engine calls claim and release): at
 * assignment claim() runs claim_lua, which takes the next token from the
 * hash's counter `claims` and writes it into `c:<topic>:<partition>` of
 * every partition assigned. The sink keeps its tokens; from then on every
 * commit and stream write carries the token of each partition it stores
 * a position for and is refused with SL_ERR_FENCED, writing nothing, when
 * a stored token differs (another instance claimed the partition since):
 * the batch commit checks them in its HGETALL under WATCH (a claim in
 * between changes the hash, so EXEC fails and the record is read again),
 * the stream and epoch scripts in their fenced variants before any write.
 * A sink that never claimed sends no token and checks nothing: the
 * single-instance scripts and commands are unchanged. release() forgets
 * tokens and writes nothing; a later commit of such a partition is
 * refused before anything is sent. The instances number their batches
 * each on its own, so in group mode the batch commit neither checks nor
 * writes the `batch` field: every record it applies carries its
 * partition and offset (group mode runs stateless and output: merge
 * jobs only) and the positions alone keep a re-sent commit from applying
 * anything twice.
 */
#include "redis.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/failpoint.h"
#include "../../src/log.h"
#include "../../src/numfmt.h"
#include "../../src/plugin.h"
#include "../../src/util.h"
#include "conn.h"
#include "template.h"

#define CHUNK_BYTES (1u << 20)

struct rsink;
static int decode_record(struct rsink *s, const redisReply *r, uint64_t *batch,
                         struct sl_plan *pos, struct sl_plan *claims,
                         struct sl_error *err);
static void redis_stream_close(struct sl_sink *sink, void *stream);

struct redis_conf {
  struct sl_sink_common common; /* first: the engine reads it */
  char *url;
  const struct sl_cfg_node *command;
  int64_t ttl_ns;
  char *user;
  char *password;
  char *commit_key;
  int64_t timeout_ns;
  int64_t pipeline;
};

static const struct sl_cfg_field redis_map[] = {
    {.key = "url",
     .type = SL_CFG_T_STR,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct redis_conf, url),
     .desc = "redis://[user:password@]host[:port][/db] or "
             "unix:///path/to/socket[?db=N]"},
    {.key = "command",
     .type = SL_CFG_T_NODE,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct redis_conf, command),
     .desc = "a command template, or a list of them, run for every output "
             "record: HSET user:{user} clicks {clicks}"},
    {.key = "ttl",
     .type = SL_CFG_T_DURATION,
     .def = "0s",
     .offset = offsetof(struct redis_conf, ttl_ns),
     .desc = "when set, every key written gets this expiry (PEXPIRE)"},
    {.key = "user",
     .type = SL_CFG_T_STR,
     .offset = offsetof(struct redis_conf, user),
     .desc = "ACL user (overrides the url's)"},
    {.key = "password",
     .type = SL_CFG_T_STR,
     .flags = SL_CFG_SECRET,
     .offset = offsetof(struct redis_conf, password),
     .desc = "password (overrides the url's); use ${REDIS_PASSWORD}"},
    {.key = "commit_key",
     .type = SL_CFG_T_STR,
     .offset = offsetof(struct redis_conf, commit_key),
     .desc = "hash holding the last committed batch and the source "
             "offsets (default sluice:<job>:commit)"},
    {.key = "timeout",
     .type = SL_CFG_T_DURATION,
     .def = "10s",
     .offset = offsetof(struct redis_conf, timeout_ns),
     .desc = "bound on connecting and on every reply"},
    {.key = "pipeline",
     .type = SL_CFG_T_INT,
     .def = "1000",
     .offset = offsetof(struct redis_conf, pipeline),
     .desc = "commands sent before their replies are read",
     .min = 1,
     .max = 1000000},
    {0}};

struct rsink {
  const struct redis_conf *conf;
  struct sl_redis_url url;
  struct sl_rcmd **cmds;
  size_t ncmds;
  bool needs_json;
  char *key; /* the commit record */
  /* mu guards rc, last and checked: in group mode a claim and positions
   * (coordinator) may come while a commit runs on the committer thread. */
  pthread_mutex_t mu;
  redisContext *rc; /* NULL when not connected */
  uint64_t last;    /* newest batch known committed */
  bool checked;     /* persistence settings looked at */
  /* Group mode. claims_mu guards claims; group is set once, by the first
   * claim, and read without the lock (atomic) so that a single-instance
   * stream write takes no lock. */
  pthread_mutex_t claims_mu;
  bool group;            /* claim was called: every commit carries tokens */
  struct sl_plan claims; /* partitions claimed; end = start = the token */
  char where[300];
  char describe[400];
};

struct srec {
  size_t topic; /* index into rstage.topics */
  int32_t partition;
  int64_t offset;
  size_t cmd_end;
};

struct rstage {
  struct rsink *s;
  struct sl_buf buf; /* Redis protocol */
  size_t *ends;      /* per command: offset just past it */
  size_t n, ncap;
  struct sl_rargs args;
  /* Per record staged: its partition and offset and the commands it
   * rendered (recs[i].cmd_end: the index just past its last command). */
  struct srec *recs;
  size_t nrecs, rcap;
  char **topics; /* the stage's topics, interned (srec.topic indexes) */
  size_t ntopics;
};

/* --------------------------------------------------------- pure parts */

size_t sl_redis_chunk_end(const size_t *ends, size_t n, size_t from,
                          size_t max_cmds, size_t max_bytes) {
  if (from >= n)
    return n;
  size_t base = from ? ends[from - 1] : 0;
  size_t end = from + 1;
  while (end < n && end - from < max_cmds && ends[end] - base <= max_bytes)
    end++;
  return end;
}

/* "<c><n>\r\n": a RESP header; returns its length. */
static size_t resp_header(char *o, char c, size_t n) {
  o[0] = c;
  size_t k = 1 + (size_t)sl_fmt_i64((int64_t)n, o + 1, 21);
  o[k++] = '\r';
  o[k++] = '\n';
  return k;
}

void sl_redis_format(struct sl_buf *b, size_t argc, const char *const *argv,
                     const size_t *lens) {
  size_t need = 24;
  for (size_t i = 0; i < argc; i++)
    need += 24 + lens[i] + 2;
  sl_buf_reserve(b, need);
  char *o = b->p + b->len;
  o += resp_header(o, '*', argc);
  for (size_t i = 0; i < argc; i++) {
    o += resp_header(o, '$', lens[i]);
    if (lens[i])
      memcpy(o, argv[i], lens[i]);
    o += lens[i];
    *o++ = '\r';
    *o++ = '\n';
  }
  sl_buf_advance(b, (size_t)(o - (b->p + b->len)));
}

static int parse_i64(const char *s, int64_t *out) {
  char *end;
  if (!s || !*s)
    return -1;
  long long v = strtoll(s, &end, 10);
  if (*end || v < 0)
    return -1;
  *out = v;
  return 0;
}

int sl_redis_commit_decode(const char *const *fields, const char *const *values,
                           size_t n, uint64_t *batch, struct sl_plan *end,
                           char *msg, size_t msgsz) {
  *batch = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t v;
    if (strcmp(fields[i], "batch") == 0) {
      if (parse_i64(values[i], &v) || v == 0) {
        snprintf(msg, msgsz, "field batch is '%.40s', not a batch number",
                 values[i]);
        return -1;
      }
      *batch = (uint64_t)v;
      continue;
    }
    if (strncmp(fields[i], "o:", 2) != 0)
      continue;
    const char *tp = fields[i] + 2;
    const char *colon = strrchr(tp, ':');
    int64_t part;
    if (!colon || colon == tp || parse_i64(colon + 1, &part) ||
        part > INT32_MAX || parse_i64(values[i], &v)) {
      snprintf(msg, msgsz, "offset field '%.80s' = '%.40s' is malformed",
               fields[i], values[i]);
      return -1;
    }
    char *topic = sl_strndup(tp, (size_t)(colon - tp));
    sl_plan_add(end, topic, (int32_t)part, v, v);
    free(topic);
  }
  /* Positions without a batch: a continuous run's streams wrote records
   * before its first epoch was committed. */
  sl_plan_sort(end);
  return 0;
}

int sl_redis_claims_decode(const char *const *fields, const char *const *values,
                           size_t n, struct sl_plan *claims, char *msg,
                           size_t msgsz) {
  for (size_t i = 0; i < n; i++) {
    if (strncmp(fields[i], "c:", 2) != 0)
      continue;
    const char *tp = fields[i] + 2;
    const char *colon = strrchr(tp, ':');
    int64_t part, tok;
    if (!colon || colon == tp || parse_i64(colon + 1, &part) ||
        part > INT32_MAX || parse_i64(values[i], &tok) || tok == 0) {
      snprintf(msg, msgsz, "claim field '%.80s' = '%.40s' is malformed",
               fields[i], values[i]);
      return -1;
    }
    char *topic = sl_strndup(tp, (size_t)(colon - tp));
    sl_plan_add(claims, topic, (int32_t)part, tok, tok);
    free(topic);
  }
  return 0;
}

/* ------------------------------------------------------------ config */

/* Calls fn on every command template node (a scalar or a list). */
static int each_command(const struct sl_cfg_node *node,
                        int (*fn)(const struct sl_cfg_node *, void *),
                        void *arg, struct sl_error *err) {
  if (node->kind == SL_CFG_SCALAR)
    return fn(node, arg);
  if (node->kind != SL_CFG_SEQ || node->n == 0)
    return sl_cfg_error(err, node,
                        "command must be a command template or "
                        "a non-empty list of them");
  for (size_t i = 0; i < node->n; i++) {
    if (node->items[i]->kind != SL_CFG_SCALAR)
      return sl_cfg_error(err, node->items[i],
                          "each command must be one line of text");
    int rc = fn(node->items[i], arg);
    if (rc)
      return rc;
  }
  return 0;
}

struct parse_ctx {
  struct sl_error *err;
  struct rsink *s; /* NULL: only check */
};

static int parse_one(const struct sl_cfg_node *n, void *arg) {
  struct parse_ctx *pc = arg;
  struct sl_error perr = {0};
  int col = 1;
  struct sl_rcmd *c;
  if (sl_rcmd_parse(n->scalar, &c, &col, &perr)) {
    /* Point at the character: exact for plain and simple quoted text. */
    struct sl_cfg_node at = *n;
    if (!strchr(n->scalar, '\n'))
      at.col = n->col + col - 1 + (n->plain ? 0 : 1);
    return sl_cfg_error(pc->err, &at, "redis command (column %d): %s", col,
                        perr.msg);
  }
  if (!pc->s) {
    sl_rcmd_free(c);
    return 0;
  }
  struct rsink *s = pc->s;
  s->cmds = sl_realloc(s->cmds, (s->ncmds + 1) * sizeof(*s->cmds));
  s->cmds[s->ncmds++] = c;
  s->needs_json |= sl_rcmd_needs_json(c);
  return 0;
}

struct fields_ctx {
  const char *const *fields;
  struct sl_error *err;
};

/* Every placeholder's first path segment is an output field. */
static int check_one(const struct sl_cfg_node *n, void *arg) {
  struct fields_ctx *fc = arg;
  struct sl_error cerr = {0};
  int col;
  struct sl_rcmd *c;
  if (sl_rcmd_parse(n->scalar, &c, &col, &cerr))
    return 0; /* validate reported it */
  int rc = 0;
  if (sl_rcmd_check_fields(c, fc->fields, &col, &cerr)) {
    struct sl_cfg_node at = *n;
    if (!strchr(n->scalar, '\n'))
      at.col = n->col + col - 1 + (n->plain ? 0 : 1);
    rc = sl_cfg_error(fc->err, &at, "redis command: %s", cerr.msg);
  }
  sl_rcmd_free(c);
  return rc;
}

static int redis_check_fields(const void *vconf, const struct sl_cfg_node *node,
                              const char *const *fields, struct sl_error *err) {
  const struct redis_conf *c = vconf;
  (void)node;
  struct fields_ctx fc = {.fields = fields, .err = err};
  return each_command(c->command, check_one, &fc, err);
}

struct merge_ctx {
  const char *const *aggs;
  const char *kinds;
  struct sl_error *err;
};

/* output: merge: every aggregate field is added, or kept when lower or
 * higher, never set (template.h sl_rcmd_check_merge). */
static int merge_one(const struct sl_cfg_node *n, void *arg) {
  struct merge_ctx *mc = arg;
  struct sl_error cerr = {0};
  int col;
  struct sl_rcmd *c;
  if (sl_rcmd_parse(n->scalar, &c, &col, &cerr))
    return 0; /* validate reported it */
  int rc = 0;
  if (sl_rcmd_check_merge(c, mc->aggs, mc->kinds, &col, &cerr)) {
    struct sl_cfg_node at = *n;
    if (!strchr(n->scalar, '\n'))
      at.col = n->col + col - 1 + (n->plain ? 0 : 1);
    rc = sl_cfg_error(mc->err, &at, "redis command: %s", cerr.msg);
  }
  sl_rcmd_free(c);
  return rc;
}

static int redis_check_merge(const void *vconf, const struct sl_cfg_node *node,
                             const char *const *aggs, const char *kinds,
                             struct sl_error *err) {
  const struct redis_conf *c = vconf;
  (void)node;
  struct merge_ctx mc = {.aggs = aggs, .kinds = kinds, .err = err};
  return each_command(c->command, merge_one, &mc, err);
}

static int redis_validate(const void *vconf, const struct sl_cfg_node *node,
                          struct sl_error *err) {
  const struct redis_conf *c = vconf;
  struct sl_redis_url u;
  char msg[300];
  if (sl_redis_url_parse(c->url, &u, msg, sizeof(msg)))
    return sl_cfg_error(err, sl_cfg_get(node, "url"), "url: %s", msg);
  sl_redis_url_free(&u);
  if (c->ttl_ns && c->ttl_ns < 1000000)
    return sl_cfg_error(err, sl_cfg_get(node, "ttl"),
                        "ttl must be at least 1ms (Redis expires keys in "
                        "milliseconds)");
  if (c->commit_key && !c->commit_key[0])
    return sl_cfg_error(err, sl_cfg_get(node, "commit_key"),
                        "commit_key must not be empty");
  struct parse_ctx pc = {.err = err};
  return each_command(c->command, parse_one, &pc, err);
}

/* --------------------------------------------------------- connection */

/* Error replies that mean "not now" (a Redis starting up, a failover, a
 * busy script), which the engine's retries wait out. */
static unsigned reply_flag(const redisReply *r) {
  static const char *const transient[] = {
      "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN"};
  for (size_t i = 0; i < SL_ARRAY_LEN(transient); i++) {
    size_t n = strlen(transient[i]);
    if (r->str && strncmp(r->str, transient[i], n) == 0 &&
        (r->str[n] == ' ' || r->str[n] == '\0'))
      return SL_ERR_RETRIABLE;
  }
  return SL_ERR_FATAL;
}

/* Warns when Redis would lose acknowledged writes in a restart. */
static void check_persistence(struct rsink *s) {
  redisReply *r = redisCommand(s->rc, "CONFIG GET append*");
  if (!r || r->type != REDIS_REPLY_ARRAY) {
    sl_info("redis at %s: cannot read its persistence settings (%s); "
            "exactly-once across a Redis restart needs appendonly yes and "
            "appendfsync always",
            s->where, r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    if (r)
      freeReplyObject(r);
    return;
  }
  const char *aof = "?", *fsync = "?";
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    if (strcmp(r->element[i]->str, "appendonly") == 0)
      aof = r->element[i + 1]->str;
    else if (strcmp(r->element[i]->str, "appendfsync") == 0)
      fsync = r->element[i + 1]->str;
  }
  if (strcmp(aof, "yes") != 0 || strcmp(fsync, "always") != 0)
    sl_warn("redis at %s persists with appendonly %s, appendfsync %s: a "
            "Redis restart can lose committed batches (sluice then stops "
            "with a data-loss error); for exactly-once across Redis "
            "restarts set appendonly yes and appendfsync always",
            s->where, aof, fsync);
  freeReplyObject(r);
}

static void disconnect(struct rsink *s) {
  if (s->rc)
    redisFree(s->rc);
  s->rc = NULL;
}

static int ensure_connected(struct rsink *s, struct sl_error *err) {
  if (s->rc && !s->rc->err)
    return 0;
  disconnect(s);
  s->rc = sl_redis_connect(&s->url, s->conf->timeout_ns, err);
  if (!s->rc)
    return err->code;
  if (!s->checked) {
    check_persistence(s);
    s->checked = true;
  }
  return 0;
}

/* The connection failed mid-conversation: drop it (Redis discards an
 * unfinished MULTI with the connection) and let the engine retry. */
static int conn_lost(struct rsink *s, const char *doing, struct sl_error *err) {
  int rc = sl_error_setf(
      err, SL_ERR_SINK, SL_ERR_RETRIABLE,
      "redis at %s: connection lost while %s: %s", s->where, doing,
      s->rc && s->rc->errstr[0] ? s->rc->errstr : "no reply");
  disconnect(s);
  return rc;
}

static int get_reply(struct rsink *s, redisReply **r, const char *doing,
                     struct sl_error *err) {
  void *p = NULL;
  if (redisGetReply(s->rc, &p) != REDIS_OK || !p)
    return conn_lost(s, doing, err);
  *r = p;
  return 0;
}

static int redis_init(struct sl_sink *sink, struct sl_error *err) {
  const struct redis_conf *c = sink->conf;
  struct rsink *s = sl_calloc(1, sizeof(*s));
  char msg[300];
  sink->ctx = s;
  s->conf = c;
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->claims_mu, NULL);
  if (sl_redis_url_parse(c->url, &s->url, msg, sizeof(msg)))
    return sl_error_setf(err, SL_ERR_CONFIG, SL_ERR_FATAL, "redis url: %s",
                         msg);
  if (c->user) {
    free(s->url.user);
    s->url.user = sl_strdup(c->user);
  }
  if (c->password) {
    free(s->url.password);
    s->url.password = sl_strdup(c->password);
  }
  sl_redis_url_describe(&s->url, s->where, sizeof(s->where));
  s->key = c->commit_key ? sl_strdup(c->commit_key)
                         : sl_asprintf("sluice:%s:commit", sink->run->job_id);
  snprintf(s->describe, sizeof(s->describe), "Redis[%s]", s->where);
  snprintf(sink->record, sizeof(sink->record), "the hash %.120s at %.120s",
           s->key, s->where);
  struct parse_ctx pc = {.err = err, .s = s};
  if (each_command(c->command, parse_one, &pc, err))
    return err->code;
  /* Connecting waits for last_committed, which the engine retries while
   * Redis is unreachable (sink.redis.retry). */
  return 0;
}

/* The commit record: the batch (0 none) and every o: field. */
static int read_record(struct rsink *s, uint64_t *batch, struct sl_plan *pos,
                       struct sl_error *err) {
  *batch = 0;
  if (ensure_connected(s, err))
    return err->code;
  redisReply *r = redisCommand(s->rc, "HGETALL %s", s->key);
  if (!r)
    return conn_lost(s, "reading the commit record", err);
  int rc = 0;
  if (r->type != REDIS_REPLY_ARRAY) {
    rc = sl_error_setf(
        err, SL_ERR_SINK,
        r->type == REDIS_REPLY_ERROR ? reply_flag(r) : SL_ERR_FATAL,
        "redis at %s: the commit record %s is not a hash "
        "(%s): is another program using that key?",
        s->where, s->key, r->type == REDIS_REPLY_ERROR ? r->str : "wrong type");
    goto out;
  }
  rc = decode_record(s, r, batch, pos, NULL, err);
out:
  freeReplyObject(r);
  return rc;
}

static int redis_last_committed(struct sl_sink *sink, uint64_t *batch,
                                struct sl_plan *end, struct sl_error *err) {
  struct rsink *s = sink->ctx;
  pthread_mutex_lock(&s->mu);
  int rc = read_record(s, batch, end, err);
  if (!rc)
    s->last = *batch;
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static bool in_group(struct rsink *s) {
  return __atomic_load_n(&s->group, __ATOMIC_ACQUIRE);
}

/* The o:<topic>:<partition> fields of the source's topics. Under the
 * continuous trigger the streams move them per group, ahead of `batch`.
 * In group mode only those of the partitions this instance holds a claim
 * on: read by one HGETALL sent after the claim's script was answered, so
 * every write that got in before the claim is counted, and every write
 * after it was refused (claim). */
static int redis_positions(struct sl_sink *sink,
                           const struct sl_source_info *src,
                           struct sl_plan *out, struct sl_error *err) {
  struct rsink *s = sink->ctx;
  struct sl_plan all = {0}, mine = {0};
  uint64_t batch;
  bool group = in_group(s);
  if (group) {
    pthread_mutex_lock(&s->claims_mu);
    sl_plan_copy(&mine, &s->claims);
    pthread_mutex_unlock(&s->claims_mu);
  }
  pthread_mutex_lock(&s->mu);
  int rc = read_record(s, &batch, &all, err);
  pthread_mutex_unlock(&s->mu);
  for (size_t i = 0; !rc && i < all.n; i++) {
    const struct sl_range *r = &all.ranges[i];
    if (group && !sl_plan_find(&mine, r->topic, r->partition))
      continue;
    for (size_t t = 0; src && t < src->ntopics; t++)
      if (strcmp(src->topics[t], r->topic) == 0) {
        sl_plan_add(out, r->topic, r->partition, r->end, r->end);
        break;
      }
  }
  sl_plan_clear(&all);
  sl_plan_clear(&mine);
  return rc;
}

/* ------------------------------------------------------------ staging */

static int redis_stage_open(struct sl_sink *sink, uint64_t batch, uint32_t task,
                            void **stage, struct sl_error *err) {
  (void)batch;
  (void)task;
  (void)err;
  struct rstage *st = sl_calloc(1, sizeof(*st));
  st->s = sink->ctx;
  *stage = st;
  return 0;
}

static void stage_put(struct rstage *st, const struct sl_rargs *a) {
  sl_redis_format(&st->buf, a->argc, (const char *const *)a->argv, a->argvlen);
  if (st->n == st->ncap) {
    st->ncap = SL_MAX(st->ncap * 2, (size_t)256);
    st->ends = sl_realloc(st->ends, st->ncap * sizeof(*st->ends));
  }
  st->ends[st->n++] = st->buf.len;
}

/* The PEXPIRE of a rendered command's key. */
static void stage_ttl(struct rstage *st, const struct sl_rargs *a) {
  char ms[32];
  int n = snprintf(ms, sizeof(ms), "%" PRId64, st->s->conf->ttl_ns / 1000000);
  const char *argv[3] = {"PEXPIRE", a->argv[1], ms};
  size_t lens[3] = {7, a->argvlen[1], (size_t)n};
  struct sl_rargs e = {.argv = argv, .argvlen = lens, .argc = 3};
  stage_put(st, &e);
}

/* Remembers the record whose commands were just staged, for the commit's
 * per-record guard. */
static void stage_rec(struct rstage *st, const struct sl_record *r) {
  size_t t = st->ntopics;
  if (t && strcmp(st->topics[t - 1], r->topic) == 0)
    t--;
  else {
    for (t = 0; t < st->ntopics && strcmp(st->topics[t], r->topic); t++)
      ;
    if (t == st->ntopics) {
      st->topics = sl_realloc(st->topics, (t + 1) * sizeof(*st->topics));
      st->topics[st->ntopics++] = sl_strdup(r->topic);
    }
  }
  if (st->nrecs == st->rcap) {
    st->rcap = SL_MAX(st->rcap * 2, (size_t)256);
    st->recs = sl_realloc(st->recs, st->rcap * sizeof(*st->recs));
  }
  st->recs[st->nrecs++] = (struct srec){.topic = t,
                                        .partition = r->partition,
                                        .offset = r->offset,
                                        .cmd_end = st->n};
}

/* @locality worker thread */
static int redis_stage_write(void *stage, const struct sl_batch *b,
                             struct sl_rejects *rejects, struct sl_error *err) {
  struct rstage *st = stage;
  struct rsink *s = st->s;
  struct sl_error why;
  (void)err;
  for (size_t i = 0; i < b->n; i++) {
    const struct sl_record *r = &b->recs[i];
    const cJSON *row = r->row;
    cJSON *parsed = NULL;
    if (s->needs_json && !row && r->value)
      row = parsed = cJSON_ParseWithLength(r->value, r->value_len);
    size_t len0 = st->buf.len, n0 = st->n;
    for (size_t k = 0; k < s->ncmds; k++) {
      if (sl_rcmd_render(s->cmds[k], r, row, &st->args, &why)) {
        /* the record's commands go together or not */
        sl_buf_setlen(&st->buf, len0);
        st->n = n0;
        sl_rejects_add(rejects, r, why.msg);
        break;
      }
      stage_put(st, &st->args);
      if (s->conf->ttl_ns && sl_rcmd_has_key(s->cmds[k]))
        stage_ttl(st, &st->args);
    }
    if (st->n > n0)
      stage_rec(st, r);
    cJSON_Delete(parsed);
  }
  return 0;
}

static int redis_stage_close(void *stage, struct sl_error *err) {
  (void)stage;
  (void)err;
  return 0;
}

static void redis_stage_free(struct sl_sink *sink, void *stage) {
  struct rstage *st = stage;
  (void)sink;
  if (!st)
    return;
  sl_buf_free(&st->buf);
  free(st->ends);
  sl_rargs_free(&st->args);
  for (size_t i = 0; i < st->ntopics; i++)
    free(st->topics[i]);
  free(st->topics);
  free(st->recs);
  free(st);
}

/* ------------------------------------------------------------- commit */

/* Decodes an HGETALL reply of the commit record; claims (when not NULL)
 * gets its c: fields. */
static int decode_record(struct rsink *s, const redisReply *r, uint64_t *batch,
                         struct sl_plan *pos, struct sl_plan *claims,
                         struct sl_error *err) {
  size_t n = r->elements / 2;
  const char **f = sl_calloc(n + 1, sizeof(*f));
  const char **v = sl_calloc(n + 1, sizeof(*v));
  for (size_t i = 0; i < n; i++) {
    f[i] = r->element[2 * i]->str ? r->element[2 * i]->str : "";
    v[i] = r->element[2 * i + 1]->str ? r->element[2 * i + 1]->str : "";
  }
  char msg[200];
  int rc = 0;
  if (sl_redis_commit_decode(f, v, n, batch, pos, msg, sizeof(msg)) ||
      (claims && sl_redis_claims_decode(f, v, n, claims, msg, sizeof(msg))))
    rc = sl_error_setf(err, SL_ERR_CORRUPT, SL_ERR_FATAL,
                       "redis at %s: the commit record %s: %s", s->where,
                       s->key, msg);
  free(f);
  free(v);
  return rc;
}

/* The commit record (batch, 0 none, the positions and, when claims is not
 * NULL, the claims), read whole under WATCH. */
static int watch_record(struct rsink *s, uint64_t *batch, struct sl_plan *pos,
                        struct sl_plan *claims, struct sl_error *err) {
  redisReply *r = NULL;
  sl_plan_clear(pos);
  if (claims)
    sl_plan_clear(claims);
  redisAppendCommand(s->rc, "WATCH %s", s->key);
  redisAppendCommand(s->rc, "HGETALL %s", s->key);
  if (get_reply(s, &r, "watching the commit record", err))
    return err->code;
  /* A transient error (LOADING) is retriable whichever reply has it. */
  unsigned flag = r->type == REDIS_REPLY_ERROR ? reply_flag(r) : 0;
  freeReplyObject(r);
  if (get_reply(s, &r, "reading the commit record", err))
    return err->code;
  if (flag || r->type != REDIS_REPLY_ARRAY) {
    if (r->type == REDIS_REPLY_ERROR)
      flag = reply_flag(r);
    int rc = sl_error_setf(
        err, SL_ERR_SINK, flag ? flag : SL_ERR_FATAL,
        "redis at %s: the commit record %s is unreadable "
        "(%s)",
        s->where, s->key, r->type == REDIS_REPLY_ERROR ? r->str : "not a hash");
    freeReplyObject(r);
    return rc;
  }
  int rc = decode_record(s, r, batch, pos, claims, err);
  freeReplyObject(r);
  return rc;
}

/* A printable prefix of a Redis protocol command, for messages. */
static void show_cmd(const char *p, size_t n, char *out, size_t outsz) {
  size_t k = 0;
  /* skip "*<argc>\r\n", then "$<len>\r\n<arg>\r\n" per argument */
  const char *e = p + n;
  const char *q = memchr(p, '\n', n);
  q = q ? q + 1 : e;
  while (q < e && k + 2 < outsz) {
    const char *nl = memchr(q, '\n', (size_t)(e - q));
    if (!nl)
      break;
    long len = strtol(q + 1, NULL, 10);
    q = nl + 1;
    if (k)
      out[k++] = ' ';
    for (long i = 0; i < len && q + i < e && k + 2 < outsz; i++)
      out[k++] = (q[i] >= 32 && q[i] < 127) ? q[i] : '?';
    q += len + 2;
  }
  out[k] = '\0';
}

/* Sends the commands [from, to) of a stage and reads their QUEUED
 * replies. */
static int send_chunk(struct rsink *s, const struct rstage *st, size_t from,
                      size_t to, struct sl_error *err) {
  size_t base = from ? st->ends[from - 1] : 0;
  redisAppendFormattedCommand(s->rc, st->buf.p + base, st->ends[to - 1] - base);
  for (size_t i = from; i < to; i++) {
    redisReply *r = NULL;
    if (get_reply(s, &r, "sending the batch", err))
      return err->code;
    if (r->type == REDIS_REPLY_ERROR) {
      char cmd[160];
      size_t start = i ? st->ends[i - 1] : 0;
      show_cmd(st->buf.p + start, st->ends[i] - start, cmd, sizeof(cmd));
      int rc = sl_error_setf(err, SL_ERR_SINK, reply_flag(r),
                             "redis at %s refused a command of the batch "
                             "(%s): %s; the batch was not committed",
                             s->where, cmd, r->str);
      freeReplyObject(r);
      /* drain the other replies, then drop the transaction */
      for (size_t j = i + 1; j < to; j++)
        if (redisGetReply(s->rc, (void **)&r) == REDIS_OK && r)
          freeReplyObject(r);
      disconnect(s);
      return rc;
    }
    freeReplyObject(r);
  }
  return 0;
}

/* HSET of the commit record, as one argument vector: batch N (unless
 * !with_batch: group mode) and, per partition of the plan, max(stored,
 * end). Partitions not in the plan keep their fields. */
static void append_record(struct rsink *s, const struct sl_plan *plan,
                          const struct sl_plan *stored, bool with_batch) {
  size_t argc = (with_batch ? 4 : 2) + 2 * plan->n;
  const char **argv = sl_calloc(argc, sizeof(*argv));
  size_t *lens = sl_calloc(argc, sizeof(*lens));
  char **owned = sl_calloc(2 * plan->n + 1, sizeof(*owned));
  size_t k = 0, o = 0;
  argv[k++] = "HSET";
  argv[k++] = s->key;
  if (with_batch) {
    argv[k++] = "batch";
    argv[k++] = owned[o++] = sl_asprintf("%" PRIu64, plan->batch);
  }
  for (size_t i = 0; i < plan->n; i++) {
    const struct sl_range *r = &plan->ranges[i];
    const struct sl_range *h = sl_plan_find(stored, r->topic, r->partition);
    int64_t end = h && h->end > r->end ? h->end : r->end;
    argv[k++] = owned[o++] =
        sl_asprintf("o:%s:%" PRId32, r->topic, r->partition);
    argv[k++] = owned[o++] = sl_asprintf("%" PRId64, end);
  }
  for (size_t i = 0; i < argc; i++)
    lens[i] = strlen(argv[i]);
  redisAppendCommandArgv(s->rc, (int)argc, argv, lens);
  for (size_t i = 0; i < o; i++)
    free(owned[i]);
  free(owned);
  free(argv);
  free(lens);
}

/* Sends the commands [from, to) of a stage in chunks. */
static int send_range(struct rsink *s, const struct rstage *st, size_t from,
                      size_t to, struct sl_error *err) {
  while (from < to) {
    size_t end = sl_redis_chunk_end(st->ends, to, from,
                                    (size_t)s->conf->pipeline, CHUNK_BYTES);
    if (send_chunk(s, st, from, end, err))
      return err->code;
    from = end;
  }
  return 0;
}

/* Sends the commands of the stage's records at or beyond the stored
 * position of their partition (the per-record guard): consecutive
 * applied records go as one range. *sent counts the commands sent. */
static int send_stage(struct rsink *s, const struct rstage *st,
                      const struct sl_plan *stored, uint64_t *sent,
                      struct sl_error *err) {
  size_t run = 0, prev = 0; /* run: first command of the pending range */
  const struct sl_range *h = NULL;
  size_t ht = SIZE_MAX;
  int32_t hp = -1;
  for (size_t i = 0; i < st->nrecs; i++) {
    const struct srec *r = &st->recs[i];
    if (r->topic != ht || r->partition != hp) {
      h = sl_plan_find(stored, st->topics[r->topic], r->partition);
      ht = r->topic;
      hp = r->partition;
    }
    if (h && r->offset < h->end) { /* applied before: skip its commands */
      if (send_range(s, st, run, prev, err))
        return err->code;
      *sent += prev - run;
      run = r->cmd_end;
    }
    prev = r->cmd_end;
  }
  if (send_range(s, st, run, prev, err))
    return err->code;
  *sent += prev - run;
  return 0;
}

/* Reads EXEC's reply: the results of every command of the batch. */
static int check_exec(struct rsink *s, const struct sl_plan *plan,
                      redisReply *r, uint64_t total, struct sl_error *err) {
  size_t failed = 0, first = 0;
  for (size_t i = 0; i < r->elements; i++)
    if (r->element[i]->type == REDIS_REPLY_ERROR && failed++ == 0)
      first = i;
  if (!failed)
    return 0;
  return sl_error_setf(err, SL_ERR_SINK, SL_ERR_FATAL,
                       "batch %" PRIu64 " is committed in redis at %s, but "
                       "Redis refused %zu of its %" PRIu64
                       " commands (the first, command %zu: %s); those "
                       "effects are missing. Fix the keys or the templates; "
                       "the next start continues after this batch",
                       plan->batch, s->where, failed, total, first + 1,
                       r->element[first]->str);
}

/* ------------------------------------------------------------ fencing */

/* claim(): one token for every partition of the call, from the counter
 * `claims`, into each c: field of ARGV. Redis runs scripts one at a time,
 * so claims are totally ordered and a token is greater than every token
 * given before, for any partition. */
static const char claim_lua[] =
    "local t = redis.call('HINCRBY', KEYS[1], 'claims', 1)\n"
    "for i = 1, #ARGV do\n"
    "  redis.call('HSET', KEYS[1], ARGV[i], t)\n"
    "end\n"
    "return t\n";

/* The start of a fenced script. Its claims come last in ARGV, so that the
 * rest keeps the layout of the single-instance script: ARGV[#ARGV] = nt,
 * before it nt pairs (c: field, token). Before any write, every stored
 * token must equal the one passed, else the reply is the error "FENCED
 * <field> <stored token, or none>". t0 is the index of the first pair
 * (the single-instance scripts set it to #ARGV + 1). */
#define FENCE_LUA                                                              \
  "local nt = tonumber(ARGV[#ARGV])\n"                                         \
  "local t0 = #ARGV - 2 * nt\n"                                                \
  "for k = t0, #ARGV - 1, 2 do\n"                                              \
  "  local cur = redis.call('HGET', KEYS[1], ARGV[k])\n"                       \
  "  if cur ~= ARGV[k + 1] then\n"                                             \
  "    return redis.error_reply('FENCED ' .. ARGV[k] .. ' ' .. (cur or "       \
  "'none'))\n"                                                                 \
  "  end\n"                                                                    \
  "end\n"

/* A partition whose stored claim is not this instance's: SL_ERR_FENCED,
 * not retriable. cur: the stored token as text ("none"). */
static int fenced(const struct rsink *s, const char *what, const char *topic,
                  int32_t part, int64_t mine, const char *cur,
                  struct sl_error *err) {
  return sl_error_setf(err, SL_ERR_FENCED, SL_ERR_FATAL,
                       "redis at %s: %s was refused and wrote nothing: "
                       "partition %s:%" PRId32 " was claimed by another "
                       "instance (this instance's token %" PRId64
                       ", the current token %s)",
                       s->where, what, topic, part, mine, cur);
}

/* The tokens a write carries (tok: one range per partition, end = the
 * token), for the partitions of plan and of the n marks (marks may be
 * NULL) and the records of b (may be NULL). Sets *group; outside group
 * mode tok stays empty. Refuses, before anything is sent, a write of a
 * partition this instance holds no claim on (released, or never
 * claimed). */
static int take_tokens(struct rsink *s, const struct sl_plan *plan,
                       const struct sl_batch *b,
                       const struct sl_stream_mark *marks, size_t n,
                       struct sl_plan *tok, bool *group, const char *what,
                       struct sl_error *err) {
  sl_plan_clear(tok);
  *group = in_group(s);
  if (!*group)
    return 0;
  size_t np = plan ? plan->n : 0, nb = b ? b->n : 0;
  int rc = 0;
  pthread_mutex_lock(&s->claims_mu);
  for (size_t i = 0; !rc && i < np + nb + n; i++) {
    const char *t = i < np        ? plan->ranges[i].topic
                    : i < np + nb ? b->recs[i - np].topic
                                  : marks[i - np - nb].topic;
    int32_t p = i < np        ? plan->ranges[i].partition
                : i < np + nb ? b->recs[i - np].partition
                              : marks[i - np - nb].partition;
    if (tok->n && tok->ranges[tok->n - 1].partition == p &&
        strcmp(tok->ranges[tok->n - 1].topic, t) == 0)
      continue;
    if (sl_plan_find(tok, t, p))
      continue;
    const struct sl_range *c = sl_plan_find(&s->claims, t, p);
    if (c)
      sl_plan_add(tok, t, p, c->end, c->end);
    else
      rc = sl_error_setf(err, SL_ERR_FENCED, SL_ERR_FATAL,
                         "redis at %s: %s was refused before anything was "
                         "sent: this instance holds no claim on partition "
                         "%s:%" PRId32 " (released, or never claimed)",
                         s->where, what, t, p);
  }
  pthread_mutex_unlock(&s->claims_mu);
  return rc;
}

/* The batch commit's check, on the claims read under WATCH. */
static int check_claims(const struct rsink *s, const struct sl_plan *tok,
                        const struct sl_plan *stored, const char *what,
                        struct sl_error *err) {
  for (size_t i = 0; i < tok->n; i++) {
    const struct sl_range *t = &tok->ranges[i];
    const struct sl_range *h = sl_plan_find(stored, t->topic, t->partition);
    if (h && h->end == t->end)
      continue;
    char cur[24] = "none";
    if (h)
      snprintf(cur, sizeof(cur), "%" PRId64, h->end);
    return fenced(s, what, t->topic, t->partition, t->end, cur, err);
  }
  return 0;
}

/* A fenced script's refusal ("FENCED c:<topic>:<partition> <token>"), or
 * 0 when r is not one. */
static int fenced_reply(const struct rsink *s, const redisReply *r,
                        const struct sl_plan *tok, const char *what,
                        struct sl_error *err) {
  if (r->type != REDIS_REPLY_ERROR || !r->str ||
      strncmp(r->str, "FENCED c:", 9) != 0)
    return 0;
  const char *f = r->str + 9, *sp = strrchr(f, ' '), *colon = NULL;
  for (const char *q = f; sp && q < sp; q++)
    if (*q == ':')
      colon = q;
  if (!colon || colon == f)
    return sl_error_setf(err, SL_ERR_FENCED, SL_ERR_FATAL,
                         "redis at %s: %s was refused: %s", s->where, what,
                         r->str);
  char *topic = sl_strndup(f, (size_t)(colon - f));
  int32_t part = (int32_t)strtol(colon + 1, NULL, 10);
  const struct sl_range *t = sl_plan_find(tok, topic, part);
  int rc = fenced(s, what, topic, part, t ? t->end : -1, sp + 1, err);
  free(topic);
  return rc;
}

/* @locality coordinator */
static int redis_claim(struct sl_sink *sink, const struct sl_plan *parts,
                       struct sl_error *err) {
  struct rsink *s = sink->ctx;
  /* From now on every commit carries claims: one of a partition this
   * instance does not claim is refused. */
  __atomic_store_n(&s->group, true, __ATOMIC_RELEASE);
  if (!parts->n)
    return 0;
  size_t argc = 4 + parts->n;
  const char **argv = sl_calloc(argc, sizeof(*argv));
  size_t *lens = sl_calloc(argc, sizeof(*lens));
  char **owned = sl_calloc(parts->n + 1, sizeof(*owned));
  size_t k = 0;
  argv[k++] = "EVAL";
  argv[k++] = claim_lua;
  argv[k++] = "1";
  argv[k++] = s->key;
  for (size_t i = 0; i < parts->n; i++)
    argv[k++] = owned[i] = sl_asprintf("c:%s:%" PRId32, parts->ranges[i].topic,
                                       parts->ranges[i].partition);
  for (size_t i = 0; i < argc; i++)
    lens[i] = strlen(argv[i]);
  int64_t token = 0;
  pthread_mutex_lock(&s->mu);
  int rc = ensure_connected(s, err);
  if (!rc) {
    redisReply *r = redisCommandArgv(s->rc, (int)argc, argv, lens);
    if (!r)
      rc = conn_lost(s, "claiming partitions", err);
    else if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0)
      rc = sl_error_setf(
          err, SL_ERR_SINK,
          r->type == REDIS_REPLY_ERROR ? reply_flag(r) : SL_ERR_FATAL,
          "redis at %s: claiming %zu partitions in the commit record %s "
          "failed: %s",
          s->where, parts->n, s->key,
          r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    else
      token = r->integer;
    if (r)
      freeReplyObject(r);
  }
  pthread_mutex_unlock(&s->mu);
  for (size_t i = 0; i < parts->n; i++)
    free(owned[i]);
  free(owned);
  free(argv);
  free(lens);
  if (rc)
    return rc;
  pthread_mutex_lock(&s->claims_mu);
  for (size_t i = 0; i < parts->n; i++) {
    const struct sl_range *p = &parts->ranges[i];
    struct sl_range *c = sl_plan_find(&s->claims, p->topic, p->partition);
    if (c)
      c->start = c->end = token;
    else
      sl_plan_add(&s->claims, p->topic, p->partition, token, token);
  }
  pthread_mutex_unlock(&s->claims_mu);
  sl_info("redis at %s: claimed %zu partition%s (%s:%" PRId32
          "%s) with token %" PRId64,
          s->where, parts->n, parts->n == 1 ? "" : "s", parts->ranges[0].topic,
          parts->ranges[0].partition, parts->n > 1 ? ", ..." : "", token);
  return 0;
}

/* Forgets the claims; writes nothing (ARCHITECTURE: why release writes
 * nothing). @locality coordinator */
static void redis_release(struct sl_sink *sink, const struct sl_plan *parts) {
  struct rsink *s = sink->ctx;
  pthread_mutex_lock(&s->claims_mu);
  for (size_t i = 0; i < parts->n; i++) {
    struct sl_range *c = sl_plan_find(&s->claims, parts->ranges[i].topic,
                                      parts->ranges[i].partition);
    if (!c)
      continue;
    free(c->topic);
    size_t at = (size_t)(c - s->claims.ranges);
    memmove(c, c + 1, (s->claims.n - at - 1) * sizeof(*c));
    s->claims.n--;
  }
  pthread_mutex_unlock(&s->claims_mu);
}

/* ------------------------------------------------------ continuous mode */

/* The epoch commit: batch = max(stored, ARGV[1]); then, per pair of ARGV
 * (field, end) before t0, the field = max(stored, end). Idempotent, and
 * without WATCH: the streams write the hash meanwhile. Offsets compare as
 * Lua numbers (doubles): exact below 2^53. The fenced variant checks the
 * claims that follow the pairs first (FENCE_LUA). */
#define EPOCH_LUA                                                              \
  "local b = tonumber(redis.call('HGET', KEYS[1], 'batch') or '0')\n"          \
  "if tonumber(ARGV[1]) > b then\n"                                            \
  "  redis.call('HSET', KEYS[1], 'batch', ARGV[1])\n"                          \
  "end\n"                                                                      \
  "for i = 2, t0 - 1, 2 do\n"                                                  \
  "  local cur = redis.call('HGET', KEYS[1], ARGV[i])\n"                       \
  "  if not cur or tonumber(ARGV[i + 1]) > tonumber(cur) then\n"               \
  "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"                    \
  "  end\n"                                                                    \
  "end\n"                                                                      \
  "return b\n"
static const char epoch_lua[] = "local t0 = #ARGV + 1\n" EPOCH_LUA;
static const char epoch_fenced_lua[] = FENCE_LUA EPOCH_LUA;

/* tok: the claims to check (group mode), else NULL. */
static int epoch_commit(struct rsink *s, const struct sl_plan *plan,
                        const struct sl_plan *tok, struct sl_error *err) {
  if (ensure_connected(s, err))
    return err->code;
  size_t nt = tok ? tok->n : 0;
  size_t argc = 5 + 2 * plan->n + (tok ? 2 * nt + 1 : 0);
  const char **argv = sl_calloc(argc, sizeof(*argv));
  size_t *lens = sl_calloc(argc, sizeof(*lens));
  char **owned = sl_calloc(2 * plan->n + 2 * nt + 2, sizeof(*owned));
  size_t k = 0, o = 0;
  argv[k++] = "EVAL";
  argv[k++] = tok ? epoch_fenced_lua : epoch_lua;
  argv[k++] = "1";
  argv[k++] = s->key;
  argv[k++] = owned[o++] = sl_asprintf("%" PRIu64, plan->batch);
  for (size_t i = 0; i < plan->n; i++) {
    const struct sl_range *r = &plan->ranges[i];
    argv[k++] = owned[o++] =
        sl_asprintf("o:%s:%" PRId32, r->topic, r->partition);
    argv[k++] = owned[o++] = sl_asprintf("%" PRId64, r->end);
  }
  for (size_t i = 0; i < nt; i++) {
    const struct sl_range *t = &tok->ranges[i];
    argv[k++] = owned[o++] =
        sl_asprintf("c:%s:%" PRId32, t->topic, t->partition);
    argv[k++] = owned[o++] = sl_asprintf("%" PRId64, t->end);
  }
  if (tok)
    argv[k++] = owned[o++] = sl_asprintf("%zu", nt);
  for (size_t i = 0; i < argc; i++)
    lens[i] = strlen(argv[i]);
  int rc = sl_failpoint_err("sink.redis.epoch.before_commit", err);
  redisReply *r = NULL;
  char what[64];
  snprintf(what, sizeof(what), "the commit of epoch %" PRIu64, plan->batch);
  if (!rc) {
    r = redisCommandArgv(s->rc, (int)argc, argv, lens);
    if (!r)
      rc = conn_lost(s, "committing the epoch", err);
    else if (tok && (rc = fenced_reply(s, r, tok, what, err)) != 0)
      ;
    else if (r->type == REDIS_REPLY_ERROR)
      rc = sl_error_setf(err, SL_ERR_SINK, reply_flag(r),
                         "redis at %s: the commit of epoch %" PRIu64
                         " was refused: %s",
                         s->where, plan->batch, r->str);
    else
      s->last = plan->batch;
  }
  if (r)
    freeReplyObject(r);
  for (size_t i = 0; i < o; i++)
    free(owned[i]);
  free(owned);
  free(argv);
  free(lens);
  return rc;
}

static int unwatch(struct rsink *s, struct sl_error *err) {
  redisReply *r = NULL;
  redisAppendCommand(s->rc, "UNWATCH");
  if (get_reply(s, &r, "unwatching", err))
    return err->code;
  freeReplyObject(r);
  return 0;
}

/* The commit, under s->mu. tok: the claims the commit carries (group
 * mode), else NULL. */
static int commit_locked(struct sl_sink *sink, const struct sl_plan *plan,
                         void *const *stages, size_t n,
                         const struct sl_plan *tok, const char *what,
                         struct sl_error *err) {
  struct rsink *s = sink->ctx;
  uint64_t held = 0, total = 0;
  redisReply *r = NULL;
  struct sl_plan stored = {0}, claims = {0};
  if (plan->batch <= s->last)
    return 0;
  if (sink->run && sink->run->continuous && n == 0)
    return epoch_commit(s, plan, tok, err);
  if (tok && plan->n == 0)
    return 0; /* group mode, no partition: nothing to write or record */
  if (ensure_connected(s, err) ||
      watch_record(s, &held, &stored, tok ? &claims : NULL, err)) {
    sl_plan_clear(&stored);
    sl_plan_clear(&claims);
    return err->code;
  }
  /* Under WATCH: a claim from now on changes the hash and fails EXEC. */
  if (tok && check_claims(s, tok, &claims, what, err)) {
    struct sl_error uerr = {0};
    sl_plan_clear(&stored);
    sl_plan_clear(&claims);
    unwatch(s, &uerr);
    return err->code;
  }
  sl_plan_clear(&claims);
  /* Group mode: the instances number their batches each on its own, so
   * `batch` says nothing of this one's; the positions guard every record
   * (a re-sent commit skips what the first applied), and the shared
   * record keeps no batch (append_record). */
  if (!tok && held >= plan->batch) {
    sl_plan_clear(&stored);
    if (unwatch(s, err))
      return err->code;
    s->last = held;
    return 0;
  }
  redisAppendCommand(s->rc, "MULTI");
  if (get_reply(s, &r, "starting the transaction", err)) {
    sl_plan_clear(&stored);
    return err->code;
  }
  freeReplyObject(r);
  for (size_t i = 0; i < n; i++)
    if (send_stage(s, stages[i], &stored, &total, err)) {
      sl_plan_clear(&stored);
      return err->code;
    }
  append_record(s, plan, &stored, !tok);
  sl_plan_clear(&stored);
  if (sl_failpoint_err("sink.redis.before_exec", err)) {
    disconnect(s); /* Redis drops the open MULTI with the connection */
    return err->code;
  }
  redisAppendCommand(s->rc, "EXEC");
  if (get_reply(s, &r, "writing the commit record", err)) /* HSET: QUEUED */
    return err->code;
  freeReplyObject(r);
  if (get_reply(s, &r, "committing the transaction", err))
    return err->code;
  int rc = 0;
  if (r->type == REDIS_REPLY_NIL) {
    /* WATCH fired: someone changed the commit record (another instance's
     * commit or claim, a stream). Look again. */
    freeReplyObject(r);
    int wrc = watch_record(s, &held, &stored, tok ? &claims : NULL, err);
    sl_plan_clear(&stored);
    if (!wrc && unwatch(s, err))
      wrc = err->code;
    if (!wrc && tok)
      wrc = check_claims(s, tok, &claims, what, err);
    sl_plan_clear(&claims);
    if (wrc)
      return err->code;
    if (!tok && held >= plan->batch) {
      sl_warn("redis at %s: another writer committed batch %" PRIu64
              " (is a second instance of job %s running?)",
              s->where, held, sink->run->job_id);
      s->last = held;
      return 0;
    }
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                         "redis at %s: the commit record %s changed during "
                         "the transaction of batch %" PRIu64,
                         s->where, s->key, plan->batch);
  }
  if (r->type == REDIS_REPLY_ARRAY) {
    s->last = plan->batch; /* committed, even if some commands failed */
    rc = check_exec(s, plan, r, total, err);
    if (!rc)
      rc = sl_failpoint_err("sink.redis.after_exec", err);
  } else {
    rc = sl_error_setf(
        err, SL_ERR_SINK,
        r->type == REDIS_REPLY_ERROR ? reply_flag(r) : SL_ERR_FATAL,
        "redis at %s: the transaction of batch %" PRIu64 " was refused: %s",
        s->where, plan->batch,
        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
  }
  freeReplyObject(r);
  return rc;
}

/* @locality coordinator, or the committer thread */
static int redis_commit(struct sl_sink *sink, const struct sl_plan *plan,
                        void *const *stages, size_t n, struct sl_error *err) {
  struct rsink *s = sink->ctx;
  struct sl_plan tok = {0};
  bool group;
  char what[64];
  snprintf(what, sizeof(what), "the commit of %s %" PRIu64,
           sink->run && sink->run->continuous && n == 0 ? "epoch" : "batch",
           plan->batch);
  if (take_tokens(s, plan, NULL, NULL, 0, &tok, &group, what, err)) {
    sl_plan_clear(&tok);
    return err->code;
  }
  pthread_mutex_lock(&s->mu);
  int rc = commit_locked(sink, plan, stages, n, group ? &tok : NULL, what, err);
  pthread_mutex_unlock(&s->mu);
  sl_plan_clear(&tok);
  return rc;
}

/* --------------------------------------------------------------- streams */

/* The stream script, one call per group of records (KEYS[1] = the commit
 * record). ARGV:
 *
 *   ARGV[1] = nparts, then nparts partition sections, each:
 *     field   "o:<topic>:<partition>"
 *     mark    the partition's position once this call is applied
 *     nrecs   then nrecs records, each:
 *       offset  the record's offset
 *       ncmds   then ncmds commands, each:
 *         nargs   then the nargs arguments of the command (its name first)
 *
 * Per section: stored = HGET field (absent: -1); the commands of the
 * records at offset >= stored run, in order; then field = max(stored,
 * mark). Redis runs a script alone, so no other writer sees half of it.
 * A command that fails (WRONGTYPE) is counted and the others still run:
 * Redis cannot roll back the writes a script made before a failure, so
 * the call always completes and moves the positions, and the reply,
 * {commands run, commands failed, the first failure}, makes the write
 * fail without a retry, naming the command. Offsets compare as Lua
 * numbers (doubles): exact below 2^53.
 *
 * Group mode, stream_fenced_lua: after the sections come, per section's
 * partition, the pair ("c:<topic>:<partition>", this instance's token),
 * then the number of pairs. Every pair is checked before any write; one
 * that differs makes the reply "FENCED <field> <stored token>", and
 * nothing of the call is written. */
#define STREAM_LUA                                                             \
  "local i = 2\n"                                                              \
  "local ran, failed, first = 0, 0, ''\n"                                      \
  "for p = 1, tonumber(ARGV[1]) do\n"                                          \
  "  local field, mark = ARGV[i], ARGV[i + 1]\n"                               \
  "  local nrecs = tonumber(ARGV[i + 2])\n"                                    \
  "  i = i + 3\n"                                                              \
  "  local stored = tonumber(redis.call('HGET', KEYS[1], field) or '-1')\n"    \
  "  for r = 1, nrecs do\n"                                                    \
  "    local off, ncmds = ARGV[i], tonumber(ARGV[i + 1])\n"                    \
  "    local apply = tonumber(off) >= stored\n"                                \
  "    i = i + 2\n"                                                            \
  "    for c = 1, ncmds do\n"                                                  \
  "      local nargs = tonumber(ARGV[i])\n"                                    \
  "      if apply then\n"                                                      \
  "        local res = redis.pcall(unpack(ARGV, i + 1, i + nargs))\n"          \
  "        ran = ran + 1\n"                                                    \
  "        if type(res) == 'table' and res.err then\n"                         \
  "          failed = failed + 1\n"                                            \
  "          if failed == 1 then\n"                                            \
  "            first = ARGV[i + 1] .. ' ' .. (ARGV[i + 2] or '') ..\n"         \
  "                    ' (' .. field .. ', offset ' .. off .. '): ' ..\n"      \
  "                    res.err\n"                                              \
  "          end\n"                                                            \
  "        end\n"                                                              \
  "      end\n"                                                                \
  "      i = i + 1 + nargs\n"                                                  \
  "    end\n"                                                                  \
  "  end\n"                                                                    \
  "  if tonumber(mark) > stored then\n"                                        \
  "    redis.call('HSET', KEYS[1], field, mark)\n"                             \
  "  end\n"                                                                    \
  "end\n"                                                                      \
  "return {ran, failed, first}\n"
static const char stream_lua[] = STREAM_LUA;
/* Group mode: the claims of every section's partition are checked first
 * (FENCE_LUA; they follow the sections). */
static const char stream_fenced_lua[] = FENCE_LUA STREAM_LUA;

/* One record of a stream_write call, rendered. */
struct strec {
  const char *topic; /* the record's (valid during the call) */
  int32_t partition;
  int64_t offset;
  size_t start, end; /* its commands in rstream.cbuf, as script arguments */
  size_t ncmds;      /* 0: rejected */
  size_t nbulk;      /* arguments it adds to the script */
};

struct rstream {
  struct rsink *s;
  redisContext *rc; /* NULL when not connected */
  char sha[48];     /* of stream_lua, from SCRIPT LOAD */
  char fsha[48];    /* of stream_fenced_lua, loaded at its first use */
  /* Group mode (group): the tokens of the call's partitions, and the
   * claims of the group being built (pairs, then their count). */
  bool group;
  struct sl_plan tok;
  char *tbuf;
  size_t tlen, tcap, ntok;
  struct sl_rargs args;
  char *cbuf; /* rendered commands: per command nargs, then its arguments */
  size_t clen, ccap;
  struct strec *recs;
  size_t nrecs, rcap;
  char *abuf; /* the ARGV of the group being built */
  size_t alen, acap, aargc;
  char *sbuf; /* the whole EVALSHA */
  size_t slen, scap;
};

/* Appends one bulk string. */
static void put_bulk(char **buf, size_t *len, size_t *cap, const char *p,
                     size_t n) {
  if (*len + n + 32 > *cap) {
    *cap = SL_MAX(*cap * 2, *len + n + 4096);
    *buf = sl_realloc(*buf, *cap);
  }
  *len += resp_header(*buf + *len, '$', n);
  if (n)
    memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[(*len)++] = '\r';
  (*buf)[(*len)++] = '\n';
}

static void put_num(char **buf, size_t *len, size_t *cap, int64_t v) {
  char t[24];
  size_t n = (size_t)sl_fmt_i64(v, t, sizeof(t));
  put_bulk(buf, len, cap, t, n);
}

static void stream_disconnect(struct rstream *st) {
  if (st->rc)
    redisFree(st->rc);
  st->rc = NULL;
}

static int stream_lost(struct rstream *st, const char *doing,
                       struct sl_error *err) {
  int rc = sl_error_setf(
      err, SL_ERR_SINK, SL_ERR_RETRIABLE,
      "redis at %s: connection lost while %s: %s", st->s->where, doing,
      st->rc && st->rc->errstr[0] ? st->rc->errstr : "no reply");
  stream_disconnect(st);
  return rc;
}

/* SCRIPT LOAD of the stream script, or of its fenced variant. */
static int stream_load(struct rstream *st, bool fenced, struct sl_error *err) {
  redisReply *r = redisCommand(st->rc, "SCRIPT LOAD %s",
                               fenced ? stream_fenced_lua : stream_lua);
  if (!r)
    return stream_lost(st, "loading the stream script", err);
  char *sha = fenced ? st->fsha : st->sha;
  int rc = 0;
  if (r->type != REDIS_REPLY_STRING || r->len >= sizeof(st->sha))
    rc = sl_error_setf(
        err, SL_ERR_SINK,
        r->type == REDIS_REPLY_ERROR ? reply_flag(r) : SL_ERR_FATAL,
        "redis at %s: cannot load the stream script: %s", st->s->where,
        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
  else
    memcpy(sha, r->str, r->len + 1);
  freeReplyObject(r);
  return rc;
}

static int stream_connect(struct rstream *st, struct sl_error *err) {
  if (st->rc && !st->rc->err)
    return 0;
  stream_disconnect(st);
  st->rc = sl_redis_connect(&st->s->url, st->s->conf->timeout_ns, err);
  if (!st->rc)
    return err->code;
  return stream_load(st, false, err);
}

/* @locality worker thread */
static int redis_stream_open(struct sl_sink *sink, uint32_t task, void **stream,
                             struct sl_error *err) {
  (void)task;
  *stream = NULL;
  if (!sink->run || !sink->run->continuous)
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_FATAL,
                         "the Redis sink writes through streams only in a "
                         "continuous run");
  struct rstream *st = sl_calloc(1, sizeof(*st));
  st->s = sink->ctx;
  if (stream_connect(st, err)) {
    redis_stream_close(sink, st);
    return err->code;
  }
  *stream = st;
  return 0;
}

/* Renders record r's commands (and their PEXPIREs) as script arguments;
 * a record a template cannot render goes to rejects and keeps none. */
static void stream_render(struct rstream *st, const struct sl_record *r,
                          struct sl_rejects *rejects) {
  struct rsink *s = st->s;
  struct sl_error why;
  if (st->nrecs == st->rcap) {
    st->rcap = SL_MAX(st->rcap * 2, (size_t)64);
    st->recs = sl_realloc(st->recs, st->rcap * sizeof(*st->recs));
  }
  struct strec *e = &st->recs[st->nrecs++];
  *e = (struct strec){.topic = r->topic,
                      .partition = r->partition,
                      .offset = r->offset,
                      .start = st->clen};
  const cJSON *row = r->row;
  cJSON *parsed = NULL;
  if (s->needs_json && !row && r->value)
    row = parsed = cJSON_ParseWithLength(r->value, r->value_len);
  for (size_t k = 0; k < s->ncmds; k++) {
    struct sl_rargs *a = &st->args;
    if (sl_rcmd_render(s->cmds[k], r, row, a, &why)) {
      st->clen = e->start; /* the record's commands go together or not */
      e->ncmds = e->nbulk = 0;
      sl_rejects_add(rejects, r, why.msg);
      break;
    }
    put_num(&st->cbuf, &st->clen, &st->ccap, (int64_t)a->argc);
    for (size_t i = 0; i < a->argc; i++)
      put_bulk(&st->cbuf, &st->clen, &st->ccap, a->argv[i], a->argvlen[i]);
    e->ncmds++;
    e->nbulk += 1 + a->argc;
    if (s->conf->ttl_ns && sl_rcmd_has_key(s->cmds[k])) {
      put_num(&st->cbuf, &st->clen, &st->ccap, 3);
      put_bulk(&st->cbuf, &st->clen, &st->ccap, "PEXPIRE", 7);
      put_bulk(&st->cbuf, &st->clen, &st->ccap, a->argv[1], a->argvlen[1]);
      put_num(&st->cbuf, &st->clen, &st->ccap, s->conf->ttl_ns / 1000000);
      e->ncmds++;
      e->nbulk += 4;
    }
  }
  e->end = st->clen;
  cJSON_Delete(parsed);
}

static bool same_part(const char *t, int32_t p, const char *t2, int32_t p2) {
  return p == p2 && (t == t2 || strcmp(t, t2) == 0);
}

/* Appends the section of one partition: the records of recs[g0, g1) in
 * it (rejected ones send nothing) and its mark. */
static void stream_section(struct rstream *st, size_t g0, size_t g1,
                           const char *topic, int32_t part, int64_t mark) {
  size_t nrecs = 0;
  for (size_t i = g0; i < g1; i++)
    if (st->recs[i].ncmds &&
        same_part(topic, part, st->recs[i].topic, st->recs[i].partition))
      nrecs++;
  char *field = sl_asprintf("o:%s:%" PRId32, topic, part);
  put_bulk(&st->abuf, &st->alen, &st->acap, field, strlen(field));
  if (st->group) { /* take_tokens found every partition of the call */
    field[0] = 'c';
    put_bulk(&st->tbuf, &st->tlen, &st->tcap, field, strlen(field));
    put_num(&st->tbuf, &st->tlen, &st->tcap,
            sl_plan_find(&st->tok, topic, part)->end);
    st->ntok++;
  }
  free(field);
  put_num(&st->abuf, &st->alen, &st->acap, mark);
  put_num(&st->abuf, &st->alen, &st->acap, (int64_t)nrecs);
  st->aargc += 3;
  for (size_t i = g0; i < g1; i++) {
    const struct strec *e = &st->recs[i];
    if (!e->ncmds || !same_part(topic, part, e->topic, e->partition))
      continue;
    put_num(&st->abuf, &st->alen, &st->acap, e->offset);
    put_num(&st->abuf, &st->alen, &st->acap, (int64_t)e->ncmds);
    size_t n = e->end - e->start;
    if (st->alen + n > st->acap) {
      st->acap = SL_MAX(st->acap * 2, st->alen + n + 4096);
      st->abuf = sl_realloc(st->abuf, st->acap);
    }
    memcpy(st->abuf + st->alen, st->cbuf + e->start, n);
    st->alen += n;
    st->aargc += 2 + e->nbulk;
  }
}

/* Reads the script's reply. */
static int stream_reply(struct rstream *st, redisReply *r,
                        struct sl_error *err) {
  if (st->group && fenced_reply(st->s, r, &st->tok, "a stream write", err))
    return err->code;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
      r->element[0]->type != REDIS_REPLY_INTEGER ||
      r->element[1]->type != REDIS_REPLY_INTEGER)
    return sl_error_setf(
        err, SL_ERR_SINK,
        r->type == REDIS_REPLY_ERROR ? reply_flag(r) : SL_ERR_FATAL,
        "redis at %s: the stream script failed: %s", st->s->where,
        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
  if (r->element[1]->integer == 0)
    return 0;
  return sl_error_setf(
      err, SL_ERR_SINK, SL_ERR_FATAL,
      "redis at %s: records are written and their positions stored, but "
      "Redis refused %lld of their %lld commands (the first, %s); those "
      "effects are missing. Fix the keys or the templates; the next start "
      "continues after these records",
      st->s->where, (long long)r->element[1]->integer,
      (long long)r->element[0]->integer,
      r->element[2]->str ? r->element[2]->str : "?");
}

/* Sends one group: the sections of recs[g0, g1) and, when last, the
 * caller's marks. A section's mark is the offset after its last record,
 * or for the last group the caller's mark if that is further. */
static int stream_group(struct rstream *st, size_t g0, size_t g1, bool last,
                        const struct sl_stream_mark *marks, size_t nmarks,
                        struct sl_error *err) {
  size_t nparts = 0;
  st->alen = st->aargc = 0;
  st->tlen = st->ntok = 0;
  put_num(&st->abuf, &st->alen, &st->acap, 0); /* nparts, rewritten below */
  size_t nparts_len = st->alen;
  st->aargc = 1;
  for (size_t i = g0; i < g1; i++) {
    const struct strec *e = &st->recs[i];
    bool seen = false;
    for (size_t j = g0; j < i && !seen; j++)
      seen = same_part(e->topic, e->partition, st->recs[j].topic,
                       st->recs[j].partition);
    if (seen)
      continue;
    int64_t mark = e->offset + 1;
    for (size_t j = i + 1; j < g1; j++)
      if (same_part(e->topic, e->partition, st->recs[j].topic,
                    st->recs[j].partition) &&
          st->recs[j].offset + 1 > mark)
        mark = st->recs[j].offset + 1;
    for (size_t m = 0; last && m < nmarks; m++)
      if (same_part(e->topic, e->partition, marks[m].topic,
                    marks[m].partition) &&
          marks[m].next > mark)
        mark = marks[m].next;
    stream_section(st, g0, g1, e->topic, e->partition, mark);
    nparts++;
  }
  for (size_t m = 0; last && m < nmarks; m++) {
    bool seen = false;
    for (size_t j = g0; j < g1 && !seen; j++)
      seen = same_part(marks[m].topic, marks[m].partition, st->recs[j].topic,
                       st->recs[j].partition);
    for (size_t k = 0; k < m && !seen; k++)
      seen = same_part(marks[m].topic, marks[m].partition, marks[k].topic,
                       marks[k].partition);
    if (seen)
      continue;
    stream_section(st, g0, g1, marks[m].topic, marks[m].partition,
                   marks[m].next);
    nparts++;
  }
  if (!nparts)
    return 0;
  /* nparts: the first argument, rebuilt in front of the rest */
  char head[160];
  size_t hl = 0, klen = strlen(st->s->key);
  char np[24];
  size_t npl = (size_t)sl_fmt_i64((int64_t)nparts, np, sizeof(np));
  if (st->group)
    put_num(&st->tbuf, &st->tlen, &st->tcap, (int64_t)st->ntok);
  size_t targc = st->group ? 2 * st->ntok + 1 : 0;
  hl = resp_header(head, '*', 4 + st->aargc + targc);
  if (st->scap < sizeof(head)) {
    st->scap = 4096;
    st->sbuf = sl_realloc(st->sbuf, st->scap);
  }
  memcpy(st->sbuf, head, hl);
  st->slen = hl;
  put_bulk(&st->sbuf, &st->slen, &st->scap, "EVALSHA", 7);
  const char *sha = st->group ? st->fsha : st->sha;
  put_bulk(&st->sbuf, &st->slen, &st->scap, sha, strlen(sha));
  put_bulk(&st->sbuf, &st->slen, &st->scap, "1", 1);
  put_bulk(&st->sbuf, &st->slen, &st->scap, st->s->key, klen);
  put_bulk(&st->sbuf, &st->slen, &st->scap, np, npl);
  size_t rest = st->alen - nparts_len;
  if (st->slen + rest > st->scap) {
    st->scap = st->slen + rest + 4096;
    st->sbuf = sl_realloc(st->sbuf, st->scap);
  }
  memcpy(st->sbuf + st->slen, st->abuf + nparts_len, rest);
  st->slen += rest;
  if (st->group) {
    if (st->slen + st->tlen > st->scap) {
      st->scap = st->slen + st->tlen + 4096;
      st->sbuf = sl_realloc(st->sbuf, st->scap);
    }
    memcpy(st->sbuf + st->slen, st->tbuf, st->tlen);
    st->slen += st->tlen;
  }
  if (sl_failpoint_err("sink.redis.stream.before_eval", err))
    return err->code;
  for (int attempt = 0;; attempt++) {
    if (stream_connect(st, err))
      return err->code;
    /* the sha is that of the script's text: the same after a reload */
    redisAppendFormattedCommand(st->rc, st->sbuf, st->slen);
    void *p = NULL;
    if (redisGetReply(st->rc, &p) != REDIS_OK || !p)
      return stream_lost(st, "writing records", err);
    redisReply *r = p;
    if (r->type == REDIS_REPLY_ERROR && attempt == 0 &&
        strncmp(r->str, "NOSCRIPT", 8) == 0) {
      freeReplyObject(r); /* Redis restarted or SCRIPT FLUSH: load again */
      if (stream_load(st, st->group, err))
        return err->code;
      continue;
    }
    int rc = stream_reply(st, r, err);
    freeReplyObject(r);
    if (rc)
      return rc;
    return sl_failpoint_err("sink.redis.stream.after_eval", err);
  }
}

/* @locality worker thread */
static int redis_stream_write(void *stream, const struct sl_batch *b,
                              const struct sl_stream_mark *marks, size_t nmarks,
                              struct sl_rejects *rejects,
                              struct sl_error *err) {
  struct rstream *st = stream;
  size_t max_cmds = (size_t)st->s->conf->pipeline;
  st->clen = st->nrecs = 0;
  if (take_tokens(st->s, NULL, b, marks, nmarks, &st->tok, &st->group,
                  "a stream write", err))
    return err->code;
  /* the groups are built with the fenced script's sha */
  if (st->group && !st->fsha[0] &&
      (stream_connect(st, err) || stream_load(st, true, err)))
    return err->code;
  for (size_t i = 0; i < b->n; i++)
    stream_render(st, &b->recs[i], rejects);
  /* Groups of at most max_cmds commands or CHUNK_BYTES (at least one
   * record each), never split between records of one partition at the
   * same offset: a group's mark would pass the rest of them. */
  size_t g0 = 0, cmds = 0, bytes = 0;
  for (size_t i = 0; i < st->nrecs; i++) {
    const struct strec *e = &st->recs[i];
    if (i > g0 && (cmds + e->ncmds > max_cmds ||
                   bytes + (e->end - e->start) > CHUNK_BYTES)) {
      bool split = true;
      for (size_t j = i; j-- > g0;)
        if (same_part(e->topic, e->partition, st->recs[j].topic,
                      st->recs[j].partition)) {
          split = st->recs[j].offset != e->offset;
          break;
        }
      if (split) {
        if (stream_group(st, g0, i, false, marks, nmarks, err))
          return err->code;
        g0 = i;
        cmds = bytes = 0;
      }
    }
    cmds += e->ncmds;
    bytes += e->end - e->start;
  }
  return stream_group(st, g0, st->nrecs, true, marks, nmarks, err);
}

/* @locality worker thread */
static void redis_stream_close(struct sl_sink *sink, void *stream) {
  struct rstream *st = stream;
  (void)sink;
  if (!st)
    return;
  stream_disconnect(st);
  sl_rargs_free(&st->args);
  free(st->cbuf);
  free(st->recs);
  free(st->abuf);
  free(st->sbuf);
  free(st->tbuf);
  sl_plan_clear(&st->tok);
  free(st);
}

static const char *redis_describe(struct sl_sink *sink) {
  struct rsink *s = sink->ctx;
  return s ? s->describe : "Redis";
}

static void redis_destroy(struct sl_sink *sink) {
  struct rsink *s = sink->ctx;
  if (!s)
    return;
  disconnect(s);
  sl_plan_clear(&s->claims);
  pthread_mutex_destroy(&s->claims_mu);
  pthread_mutex_destroy(&s->mu);
  for (size_t i = 0; i < s->ncmds; i++)
    sl_rcmd_free(s->cmds[i]);
  free(s->cmds);
  sl_redis_url_free(&s->url);
  free(s->key);
  free(s);
  sink->ctx = NULL;
}

const struct sl_sink_plugin sl_sink_redis = {
    .name = "redis",
    .config_map = redis_map,
    .conf_size = sizeof(struct redis_conf),
    /* SL_SINK_WRITES_AT_ONCE counts only in a continuous run (plugin.h);
     * stream_open refuses to open a stream in any other. */
    .flags = SL_SINK_EXACTLY_ONCE | SL_SINK_STAGE_DURING_COMMIT |
             SL_SINK_WRITES_AT_ONCE,
    .validate = redis_validate,
    .check_fields = redis_check_fields,
    .check_merge = redis_check_merge,
    .init = redis_init,
    .last_committed = redis_last_committed,
    .positions = redis_positions,
    .stage_open = redis_stage_open,
    .stage_write = redis_stage_write,
    .stage_close = redis_stage_close,
    .commit = redis_commit,
    .stage_free = redis_stage_free,
    .describe = redis_describe,
    .destroy = redis_destroy,
    .stream_open = redis_stream_open,
    .stream_write = redis_stream_write,
    .stream_close = redis_stream_close,
    .claim = redis_claim,
    .release = redis_release,
};
