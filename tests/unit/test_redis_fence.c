/*
 * test_redis_fence.c - the Redis sink's fencing in group mode (claim,
 * release, the tokens every commit and stream write carries) against a
 * real redis-server (forked on a free loopback port; skipped without one).
 *
 * Two sink objects of the same job stand for two instances: A claims
 * t:0 and t:1, B then claims t:1. A is a zombie for t:1: it still holds
 * its token, so each refusal below comes from Redis, not from A's memory
 * (except where A released, which is said). Every refusal is checked to
 * have written nothing: the output hash h (one field per partition,
 * HINCRBY per record) and the positions stay as they were.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sinks/redis/redis.h"
#include "src/failpoint.h"
#include "src/plugin.h"

#include "redis_server.h"

struct fx {
  struct sl_cfg_node *tree;
  void *conf;
  struct sl_run_ctx run;
  struct sl_sink sink;
};

static const struct sl_sink_plugin *pl(void) {
  return sl_sink_find("redis");
}

/* One instance's sink of job t (commit record t:commit); each record adds
 * its n to field <partition> of hash h. */
static struct fx *sink_new(bool continuous) {
  char yaml[512];
  snprintf(yaml, sizeof(yaml),
           "url: redis://127.0.0.1:%d/0\n"
           "command: HINCRBY h {@partition} {n}\n"
           "commit_key: t:commit\n",
           port);
  struct fx *f = calloc(1, sizeof(*f));
  struct sl_error err = {0};
  f->tree = sl_cfg_load_string("sink.yaml", yaml, strlen(yaml), &err);
  if (!f->tree)
    fail_msg("yaml: %s", err.msg);
  f->conf = calloc(1, pl()->conf_size);
  if (sl_cfg_bind(f->tree, NULL, pl()->config_map, f->conf, "sink.redis",
                  &err) ||
      pl()->validate(f->conf, f->tree, &err))
    fail_msg("config: %s", err.msg);
  f->run = (struct sl_run_ctx){
      .job_id = "t", .role = SL_ROLE_SINK, .continuous = continuous};
  f->sink = (struct sl_sink){.plugin = pl(), .conf = f->conf, .run = &f->run};
  if (pl()->init(&f->sink, &err))
    fail_msg("init: %s", err.msg);
  return f;
}

static void sink_free(struct fx *f) {
  pl()->destroy(&f->sink);
  sl_cfg_unbind(pl()->config_map, f->conf);
  free(f->conf);
  sl_cfg_free(f->tree);
  free(f);
}

static long long get_ll(const char *fmt, const char *a) {
  redisReply *r = redisCommand(cli, fmt, a);
  assert_non_null(r);
  long long v = r->type == REDIS_REPLY_STRING    ? atoll(r->str)
                : r->type == REDIS_REPLY_INTEGER ? r->integer
                                                 : -1;
  freeReplyObject(r);
  return v;
}

/* A field of the commit record (-1: absent). */
static long long rec(const char *field) {
  return get_ll("HGET t:commit %s", field);
}
/* The output of partition p: records applied (-1: none). */
static long long out(const char *p) {
  return get_ll("HGET h %s", p);
}

static void cmd(const char *c) {
  redisReply *r = redisCommand(cli, c);
  assert_non_null(r);
  freeReplyObject(r);
}

/* Records {"n":1} of topic t: partition p0 at [f0, t0) then partition p1
 * at [f1, t1) (p1 < 0: none). */
struct recs {
  struct sl_record r[64];
  struct sl_batch b;
};

static const char one[] = "{\"n\":1}";

static void make(struct recs *rs, int p0, int64_t f0, int64_t t0, int p1,
                 int64_t f1, int64_t t1) {
  size_t n = 0;
  for (int k = 0; k < 2; k++) {
    int p = k ? p1 : p0;
    for (int64_t o = k ? f1 : f0; p >= 0 && o < (k ? t1 : t0); o++)
      rs->r[n++] = (struct sl_record){.value = one,
                                      .value_len = strlen(one),
                                      .topic = "t",
                                      .partition = p,
                                      .offset = o,
                                      .timestamp = -1};
  }
  rs->b = (struct sl_batch){.recs = rs->r, .n = n, .cap = n};
}

/* The partitions named, as claim and release take them. */
static struct sl_plan parts(int a, int b) {
  struct sl_plan p = {0};
  sl_plan_add(&p, "t", a, 0, 0);
  if (b >= 0)
    sl_plan_add(&p, "t", b, 0, 0);
  return p;
}

static int claim(struct fx *f, int a, int b, struct sl_error *err) {
  struct sl_plan p = parts(a, b);
  int rc = pl()->claim(&f->sink, &p, err);
  sl_plan_clear(&p);
  return rc;
}

static void release(struct fx *f, int a, int b) {
  struct sl_plan p = parts(a, b);
  pl()->release(&f->sink, &p);
  sl_plan_clear(&p);
}

/* Commits batch id of an interval sink: the records of rs in one stage,
 * and in the plan partition p0 [f0, t0) and p1 [f1, t1) (p1 < 0: none). */
static int commit(struct fx *f, uint64_t id, int p0, int64_t f0, int64_t t0,
                  int p1, int64_t f1, int64_t t1, struct sl_error *err) {
  struct recs rs;
  struct sl_rejects rj = {0};
  void *st;
  make(&rs, p0, f0, t0, p1, f1, t1);
  assert_int_equal(pl()->stage_open(&f->sink, id, 0, &st, err), 0);
  assert_int_equal(pl()->stage_write(st, &rs.b, &rj, err), 0);
  assert_int_equal(rj.n, 0);
  struct sl_plan plan = {.batch = id};
  sl_plan_add(&plan, "t", p0, f0, t0);
  if (p1 >= 0)
    sl_plan_add(&plan, "t", p1, f1, t1);
  memset(err, 0, sizeof(*err));
  int rc = pl()->commit(&f->sink, &plan, &st, 1, err);
  pl()->stage_free(&f->sink, st);
  sl_plan_clear(&plan);
  sl_rejects_free(&rj);
  return rc;
}

/* A stream write of the records of rs, with a mark at the end of each
 * partition's range. */
static int swrite(void *stream, int p0, int64_t f0, int64_t t0, int p1,
                  int64_t f1, int64_t t1, struct sl_error *err) {
  struct recs rs;
  struct sl_rejects rj = {0};
  make(&rs, p0, f0, t0, p1, f1, t1);
  struct sl_stream_mark m[2] = {{.topic = "t", .partition = p0, .next = t0},
                                {.topic = "t", .partition = p1, .next = t1}};
  memset(err, 0, sizeof(*err));
  int rc = pl()->stream_write(stream, &rs.b, m, p1 >= 0 ? 2 : 1, &rj, err);
  sl_rejects_free(&rj);
  return rc;
}

/* err is the refusal of a zombie's write of t:<p>: fenced, not retriable,
 * naming the partition and both tokens. */
static void assert_fenced(const struct sl_error *err, const char *part,
                          long long mine, long long cur) {
  char want[160];
  assert_int_equal(err->code, SL_ERR_FENCED);
  assert_false(err->flags & SL_ERR_RETRIABLE);
  snprintf(want, sizeof(want),
           "partition %s was claimed by another instance (this instance's "
           "token %lld, the current token %lld)",
           part, mine, cur);
  if (!strstr(err->msg, want))
    fail_msg("'%s' not in '%s'", want, err->msg);
  assert_non_null(strstr(err->msg, "wrote nothing"));
}

/* err is a local refusal (no claim held): nothing was sent. */
static void assert_unclaimed(const struct sl_error *err, const char *part) {
  char want[120];
  assert_int_equal(err->code, SL_ERR_FENCED);
  assert_false(err->flags & SL_ERR_RETRIABLE);
  snprintf(want, sizeof(want), "holds no claim on partition %s", part);
  if (!strstr(err->msg, want))
    fail_msg("'%s' not in '%s'", want, err->msg);
}

#define NEED_SERVER()                                                          \
  do {                                                                         \
    if (!cli)                                                                  \
      skip();                                                                  \
    cmd("FLUSHALL");                                                           \
  } while (0)

/* The claim fields as the sink reads them back. */
static void test_claims_decode(void **state) {
  (void)state;
  const char *f[] = {"batch", "o:t:0", "c:t:0", "claims", "c:a:b:7", "x"};
  const char *v[] = {"3", "10", "4", "9", "9", "y"};
  struct sl_plan c = {0};
  char msg[200];
  assert_int_equal(sl_redis_claims_decode(f, v, 6, &c, msg, sizeof(msg)), 0);
  assert_int_equal(c.n, 2);
  assert_int_equal(sl_plan_find(&c, "t", 0)->end, 4);
  assert_int_equal(sl_plan_find(&c, "a:b", 7)->end, 9);
  sl_plan_clear(&c);
  const char *bad[] = {"c:t:x", "c:t:1"};
  const char *badv[] = {"4", "-2"};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(
        sl_redis_claims_decode(&bad[i], &badv[i], 1, &c, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "malformed"));
    sl_plan_clear(&c);
  }
}

/* The interval commit: A's batch after B's claim of t:1 is refused by
 * Redis and writes nothing; of t:0 alone it goes on; B commits t:1 from
 * the positions it read after its claim; release, claim again; tokens
 * strictly increase. */
static void test_batch_fenced(void **state) {
  (void)state;
  NEED_SERVER();
  struct sl_error err = {0};
  struct fx *a = sink_new(false), *b = sink_new(false);
  assert_int_equal(claim(a, 0, 1, &err), 0);
  assert_int_equal(rec("claims"), 1);
  assert_int_equal(rec("c:t:0"), 1);
  assert_int_equal(rec("c:t:1"), 1);
  assert_int_equal(commit(a, 1, 0, 0, 3, 1, 0, 3, &err), 0);
  assert_int_equal(out("0"), 3);
  assert_int_equal(out("1"), 3);

  assert_int_equal(claim(b, 1, -1, &err), 0);
  assert_int_equal(rec("c:t:1"), 2); /* B's token is greater */
  assert_int_equal(rec("c:t:0"), 1); /* t:0 is still A's */

  /* A, the zombie for t:1 (it still holds token 1 in memory) */
  assert_int_equal(commit(a, 2, 0, 3, 5, 1, 3, 5, &err), SL_ERR_FENCED);
  assert_fenced(&err, "t:1", 1, 2);
  assert_int_equal(out("0"), 3);
  assert_int_equal(out("1"), 3);
  assert_int_equal(rec("o:t:0"), 3);
  assert_int_equal(rec("o:t:1"), 3);
  assert_int_equal(rec("batch"), -1); /* group mode keeps no batch */
  /* t:0 alone is A's */
  assert_int_equal(commit(a, 2, 0, 3, 5, -1, 0, 0, &err), 0);
  assert_int_equal(out("0"), 5);
  assert_int_equal(rec("o:t:0"), 5);
  assert_int_equal(rec("batch"), -1); /* group mode keeps no batch */

  /* B: positions read after its claim, of its partitions only */
  struct sl_plan pos = {0};
  const char *topics[] = {"t"};
  struct sl_source_info src = {
      .plugin = "kafka", .topics = topics, .ntopics = 1};
  assert_int_equal(pl()->positions(&b->sink, &src, &pos, &err), 0);
  assert_int_equal(pos.n, 1);
  assert_int_equal(sl_plan_find(&pos, "t", 1)->end, 3);
  sl_plan_clear(&pos);
  assert_int_equal(commit(b, 3, 1, 3, 6, -1, 0, 0, &err), 0);
  assert_int_equal(out("1"), 6);
  assert_int_equal(rec("o:t:1"), 6);
  /* B's commit of t:0, which it never claimed: refused locally */
  assert_int_equal(commit(b, 4, 0, 5, 6, -1, 0, 0, &err), SL_ERR_FENCED);
  assert_unclaimed(&err, "t:0");
  assert_int_equal(out("0"), 5);

  /* The instances number their batches each on its own: A's batch 2 of
   * t:0 after B's batch 3 of t:1 is applied, not taken for committed */
  assert_int_equal(commit(a, 3, 0, 5, 6, -1, 0, 0, &err), 0);
  assert_int_equal(out("0"), 6);
  assert_int_equal(rec("o:t:0"), 6);

  /* A releases t:0: Redis still names A's token 1 for it, so only A's own
   * memory can refuse this commit, before sending anything */
  release(a, 0, -1);
  assert_int_equal(rec("c:t:0"), 1); /* release writes nothing */
  assert_int_equal(commit(a, 4, 0, 5, 7, -1, 0, 0, &err), SL_ERR_FENCED);
  assert_unclaimed(&err, "t:0");
  assert_int_equal(out("0"), 6);
  assert_int_equal(rec("o:t:0"), 6);
  /* a claim after release: a newer token, and A commits t:0 again */
  assert_int_equal(claim(a, 0, -1, &err), 0);
  assert_int_equal(rec("c:t:0"), 3);
  assert_int_equal(rec("claims"), 3);
  /* offsets 5..6: 5 is below the position (applied by batch 3): only 6
   * is applied */
  assert_int_equal(commit(a, 4, 0, 5, 7, -1, 0, 0, &err), 0);
  assert_int_equal(out("0"), 7);
  assert_int_equal(rec("o:t:0"), 7);

  sink_free(a);
  sink_free(b);
}

/* The streams and the epoch commit of a continuous run: the same. */
static void test_stream_fenced(void **state) {
  (void)state;
  NEED_SERVER();
  struct sl_error err = {0};
  struct fx *a = sink_new(true), *b = sink_new(true);
  void *sa, *sb;
  assert_int_equal(claim(a, 0, 1, &err), 0);
  assert_int_equal(pl()->stream_open(&a->sink, 0, &sa, &err), 0);
  assert_int_equal(swrite(sa, 0, 0, 3, 1, 0, 3, &err), 0);
  assert_int_equal(out("0"), 3);
  assert_int_equal(out("1"), 3);
  assert_int_equal(rec("o:t:1"), 3);

  assert_int_equal(claim(b, 1, -1, &err), 0);
  assert_int_equal(rec("c:t:1"), 2);
  /* A's write of t:1, and of t:0 with t:1: refused, nothing written */
  assert_int_equal(swrite(sa, 1, 3, 5, -1, 0, 0, &err), SL_ERR_FENCED);
  assert_fenced(&err, "t:1", 1, 2);
  assert_int_equal(swrite(sa, 0, 3, 5, 1, 3, 5, &err), SL_ERR_FENCED);
  assert_fenced(&err, "t:1", 1, 2);
  assert_int_equal(out("0"), 3);
  assert_int_equal(out("1"), 3);
  assert_int_equal(rec("o:t:0"), 3);
  assert_int_equal(rec("o:t:1"), 3);
  /* marks alone move positions: refused too */
  struct sl_batch none = {0};
  struct sl_rejects rj = {0};
  struct sl_stream_mark m = {.topic = "t", .partition = 1, .next = 9};
  assert_int_equal(pl()->stream_write(sa, &none, &m, 1, &rj, &err),
                   SL_ERR_FENCED);
  assert_int_equal(rec("o:t:1"), 3);
  /* t:0 alone */
  assert_int_equal(swrite(sa, 0, 3, 5, -1, 0, 0, &err), 0);
  assert_int_equal(out("0"), 5);
  assert_int_equal(rec("o:t:0"), 5);
  /* B writes t:1 on from 3 */
  assert_int_equal(pl()->stream_open(&b->sink, 0, &sb, &err), 0);
  assert_int_equal(swrite(sb, 1, 3, 6, -1, 0, 0, &err), 0);
  assert_int_equal(out("1"), 6);
  assert_int_equal(rec("o:t:1"), 6);

  /* epoch commits: A's covering t:1 refused, of t:0 alone recorded */
  struct sl_plan plan = {.batch = 1};
  sl_plan_add(&plan, "t", 0, 0, 5);
  sl_plan_add(&plan, "t", 1, 0, 8);
  assert_int_equal(pl()->commit(&a->sink, &plan, NULL, 0, &err), SL_ERR_FENCED);
  assert_fenced(&err, "t:1", 1, 2);
  assert_int_equal(rec("batch"), -1);
  assert_int_equal(rec("o:t:1"), 6);
  sl_plan_clear(&plan);
  plan.batch = 1;
  sl_plan_add(&plan, "t", 0, 0, 5);
  assert_int_equal(pl()->commit(&a->sink, &plan, NULL, 0, &err), 0);
  assert_int_equal(rec("batch"), 1);
  sl_plan_clear(&plan);

  /* after release, refused before anything is sent (Redis still names
   * A's token for t:0) */
  release(a, 0, -1);
  assert_int_equal(swrite(sa, 0, 5, 6, -1, 0, 0, &err), SL_ERR_FENCED);
  assert_unclaimed(&err, "t:0");
  assert_int_equal(out("0"), 5);
  assert_int_equal(rec("o:t:0"), 5);

  pl()->stream_close(&a->sink, sa);
  pl()->stream_close(&b->sink, sb);
  sink_free(a);
  sink_free(b);
}

/* The zombie's write that gets in before the new owner's claim: it is
 * applied, and counted in the positions the new owner reads after its
 * claim, so the new owner resumes after it: nothing lost, nothing twice.
 * Both the batch commit and a stream write. */
static void test_zombie_before_claim(void **state) {
  (void)state;
  NEED_SERVER();
  struct sl_error err = {0};
  const char *topics[] = {"t"};
  struct sl_source_info src = {
      .plugin = "kafka", .topics = topics, .ntopics = 1};
  struct sl_plan pos = {0};

  struct fx *a = sink_new(false), *b = sink_new(false);
  assert_int_equal(claim(a, 0, 1, &err), 0);
  assert_int_equal(commit(a, 1, 0, 0, 3, 1, 0, 3, &err), 0);
  /* t:1 has been revoked from A in the group, but A does not know yet:
   * its next batch gets in before B's claim */
  assert_int_equal(commit(a, 2, 1, 3, 6, -1, 0, 0, &err), 0);
  assert_int_equal(claim(b, 1, -1, &err), 0);
  assert_int_equal(pl()->positions(&b->sink, &src, &pos, &err), 0);
  assert_int_equal(sl_plan_find(&pos, "t", 1)->end, 6);
  /* B resumes there */
  assert_int_equal(commit(b, 3, 1, 6, 8, -1, 0, 0, &err), 0);
  assert_int_equal(out("1"), 8); /* offsets 0..7, each once */
  assert_int_equal(rec("o:t:1"), 8);
  sl_plan_clear(&pos);
  sink_free(a);
  sink_free(b);

  cmd("FLUSHALL");
  a = sink_new(true);
  b = sink_new(true);
  void *sa, *sb;
  assert_int_equal(claim(a, 0, 1, &err), 0);
  assert_int_equal(pl()->stream_open(&a->sink, 0, &sa, &err), 0);
  assert_int_equal(swrite(sa, 1, 0, 4, -1, 0, 0, &err), 0);
  assert_int_equal(claim(b, 1, -1, &err), 0);
  assert_int_equal(pl()->positions(&b->sink, &src, &pos, &err), 0);
  assert_int_equal(sl_plan_find(&pos, "t", 1)->end, 4);
  assert_int_equal(pl()->stream_open(&b->sink, 0, &sb, &err), 0);
  assert_int_equal(swrite(sb, 1, 4, 7, -1, 0, 0, &err), 0);
  assert_int_equal(out("1"), 7);
  assert_int_equal(rec("o:t:1"), 7);
  sl_plan_clear(&pos);
  pl()->stream_close(&a->sink, sa);
  pl()->stream_close(&b->sink, sb);
  sink_free(a);
  sink_free(b);
}

/* The claim that lands inside A's batch commit, between its read of the
 * claims (under WATCH) and its EXEC: A, in a child process, stops at
 * sink.redis.before_exec (MULTI and the batch queued); the parent sees it
 * stopped, B claims t:1, A goes on. Its EXEC must fail and the commit be
 * refused as fenced, writing nothing. */
static void test_claim_inside_commit(void **state) {
  (void)state;
  NEED_SERVER();
  fflush(NULL);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    struct sl_error err = {0};
    struct fx *a = sink_new(false);
    if (claim(a, 0, 1, &err) ||
        sl_failpoints_arm("sink.redis.before_exec=stop", &err))
      _exit(3);
    int rc = commit(a, 1, 0, 0, 3, 1, 0, 3, &err);
    if (rc == 0)
      _exit(2); /* committed across the claim */
    if (rc != SL_ERR_FENCED || !strstr(err.msg, "partition t:1 was claimed"))
      _exit(1);
    _exit(0);
  }
  int st;
  assert_int_equal(waitpid(child, &st, WUNTRACED), child);
  assert_true(WIFSTOPPED(st)); /* at before_exec: its batch is queued */
  assert_int_equal(rec("c:t:1"), 1);
  struct sl_error err = {0};
  struct fx *b = sink_new(false);
  assert_int_equal(claim(b, 1, -1, &err), 0);
  assert_int_equal(rec("c:t:1"), 2);
  assert_int_equal(kill(child, SIGCONT), 0);
  assert_int_equal(waitpid(child, &st, 0), child);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_int_equal(out("0"), -1);
  assert_int_equal(out("1"), -1);
  assert_int_equal(rec("o:t:0"), -1);
  assert_int_equal(rec("batch"), -1);
  sink_free(b);
}

/* A sink that never claimed checks nothing and sends no token, as before
 * group mode: claims other sinks left in the record do not stop it. */
static void test_unclaimed_unchanged(void **state) {
  (void)state;
  NEED_SERVER();
  struct sl_error err = {0};
  struct fx *b = sink_new(false), *s = sink_new(false), *c = sink_new(true);
  assert_int_equal(claim(b, 0, -1, &err), 0);
  assert_int_equal(commit(s, 1, 0, 0, 3, -1, 0, 0, &err), 0);
  assert_int_equal(out("0"), 3);
  void *st;
  assert_int_equal(pl()->stream_open(&c->sink, 0, &st, &err), 0);
  assert_int_equal(swrite(st, 0, 3, 5, -1, 0, 0, &err), 0);
  assert_int_equal(out("0"), 5);
  struct sl_plan plan = {.batch = 2};
  sl_plan_add(&plan, "t", 0, 3, 5);
  assert_int_equal(pl()->commit(&c->sink, &plan, NULL, 0, &err), 0);
  assert_int_equal(rec("batch"), 2);
  sl_plan_clear(&plan);
  pl()->stream_close(&c->sink, st);
  sink_free(b);
  sink_free(s);
  sink_free(c);
}

/* Claims and releases on the coordinator while the same sink commits on
 * another thread (the committer) and a stream writes on a third (a
 * worker): each keeps to its own partitions, so every call succeeds (a commit
 * whose WATCH fired, after a retry); the .tsan variant checks the sink's
 * locking. */
struct bg {
  struct fx *f;
  void *stream;
  int failed;
};

static void *bg_commits(void *arg) {
  struct bg *g = arg;
  struct sl_error err = {0};
  for (int i = 0; i < 30; i++) {
    /* the other sink's claims and writes change the record under WATCH:
     * retriable, and retried as the engine does */
    int rc, tries = 0;
    do
      rc = commit(g->f, (uint64_t)i + 1, 0, i, i + 1, -1, 0, 0, &err);
    while (rc && (err.flags & SL_ERR_RETRIABLE) && ++tries < 10000);
    if (rc)
      g->failed++;
  }
  return NULL;
}

static void *bg_stream(void *arg) {
  struct bg *g = arg;
  struct sl_error err = {0};
  for (int i = 0; i < 30; i++)
    if (swrite(g->stream, 1, i, i + 1, -1, 0, 0, &err))
      g->failed++;
  return NULL;
}

static void test_concurrent(void **state) {
  (void)state;
  NEED_SERVER();
  struct sl_error err = {0};
  struct fx *a = sink_new(false), *c = sink_new(true);
  assert_int_equal(claim(a, 0, -1, &err), 0);
  assert_int_equal(claim(c, 1, -1, &err), 0);
  struct bg ga = {.f = a}, gc = {.f = c};
  assert_int_equal(pl()->stream_open(&c->sink, 0, &gc.stream, &err), 0);
  pthread_t ta, tc;
  assert_int_equal(pthread_create(&ta, NULL, bg_commits, &ga), 0);
  assert_int_equal(pthread_create(&tc, NULL, bg_stream, &gc), 0);
  for (int i = 0; i < 30; i++) {
    assert_int_equal(claim(a, 5, 6, &err), 0);
    assert_int_equal(claim(c, 7, -1, &err), 0);
    release(a, 5, 6);
    release(c, 7, -1);
  }
  pthread_join(ta, NULL);
  pthread_join(tc, NULL);
  assert_int_equal(ga.failed, 0);
  assert_int_equal(gc.failed, 0);
  assert_int_equal(out("0"), 30);
  assert_int_equal(out("1"), 30);
  assert_int_equal(rec("claims"), 2 + 60);
  pl()->stream_close(&c->sink, gc.stream);
  sink_free(a);
  sink_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claims_decode),
      cmocka_unit_test(test_batch_fenced),
      cmocka_unit_test(test_stream_fenced),
      cmocka_unit_test(test_zombie_before_claim),
      cmocka_unit_test(test_claim_inside_commit),
      cmocka_unit_test(test_unclaimed_unchanged),
      cmocka_unit_test(test_concurrent),
  };
  return cmocka_run_group_tests(tests, start_server, stop_server);
}
