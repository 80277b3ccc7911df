/*
 * test_redis_stream.c - the Redis sink's per-record guard against a real
 * redis-server (forked on a free loopback port; skipped without one):
 * stream writes apply each record once whatever is replayed, marks alone
 * move positions, the interval commit skips records below the stored
 * positions and never lowers one, the continuous epoch commit takes the
 * maximum, NOSCRIPT is recovered, rejects move the mark.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* A sink bound from YAML (the sink's map), continuous or not. */
static struct fx *sink_new(const char *commands, const char *extra,
                           bool continuous) {
  char yaml[1024];
  snprintf(yaml, sizeof(yaml),
           "url: redis://127.0.0.1:%d/0\ncommand: %s\n"
           "commit_key: t:commit\n%s",
           port, commands, extra);
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

static long long pos(const char *field) {
  return get_ll("HGET t:commit %s", field);
}
static long long hval(const char *f) {
  return get_ll("HGET h %s", f);
}

static void cmd(const char *c) {
  redisReply *r = redisCommand(cli, c);
  assert_non_null(r);
  freeReplyObject(r);
}

/* Records of partition p at offsets [from, to), value {"u":"a","n":1}
 * (or without n when bad(o)). */
struct recs {
  struct sl_record r[64];
  char text[64][64];
  struct sl_batch b;
};

static void make(struct recs *rs, const char *topic, int p, int64_t from,
                 int64_t to, int64_t bad) {
  size_t n = 0;
  for (int64_t o = from; o < to; o++, n++) {
    snprintf(rs->text[n], sizeof(rs->text[n]),
             o == bad ? "{\"u\":\"a\"}" : "{\"u\":\"a\",\"n\":1}");
    rs->r[n] = (struct sl_record){.value = rs->text[n],
                                  .value_len = strlen(rs->text[n]),
                                  .topic = topic,
                                  .partition = p,
                                  .offset = o,
                                  .timestamp = -1};
  }
  rs->b = (struct sl_batch){.recs = rs->r, .n = n, .cap = n};
}

static int swrite(void *stream, const struct sl_batch *b, const char *topic,
                  int p, int64_t next, struct sl_rejects *rj,
                  struct sl_error *err) {
  struct sl_stream_mark m = {.topic = topic, .partition = p, .next = next};
  return pl()->stream_write(stream, b, &m, 1, rj, err);
}

#define NEED_SERVER()                                                          \
  do {                                                                         \
    if (!cli)                                                                  \
      skip();                                                                  \
    cmd("FLUSHALL");                                                           \
  } while (0)

/* (a), (b), (c), (g), ttl: replays apply nothing twice. */
static void test_stream_guard(void **state) {
  (void)state;
  NEED_SERVER();
  struct fx *f = sink_new("HINCRBY h {u} {n}", "ttl: 1h\n", true);
  struct sl_error err = {0};
  struct sl_rejects rj = {0};
  void *st;
  assert_int_equal(pl()->stream_open(&f->sink, 0, &st, &err), 0);
  struct recs rs;
  make(&rs, "t", 0, 0, 5, -1);
  assert_int_equal(swrite(st, &rs.b, "t", 0, 5, &rj, &err), 0);
  assert_int_equal(swrite(st, &rs.b, "t", 0, 5, &rj, &err), 0); /* replay */
  assert_int_equal(hval("a"), 5);
  assert_int_equal(pos("o:t:0"), 5);
  assert_true(get_ll("PTTL %s", "h") > 0);
  /* overlapping: 3..7, only 5..7 are new */
  make(&rs, "t", 0, 3, 8, -1);
  assert_int_equal(swrite(st, &rs.b, "t", 0, 8, &rj, &err), 0);
  assert_int_equal(hval("a"), 8);
  /* marks only move, never back */
  struct sl_batch none = {0};
  assert_int_equal(swrite(st, &none, "t", 0, 12, &rj, &err), 0);
  assert_int_equal(pos("o:t:0"), 12);
  assert_int_equal(swrite(st, &none, "t", 0, 10, &rj, &err), 0);
  assert_int_equal(pos("o:t:0"), 12);
  /* a reject: to rejects, the others applied, the mark moves past it */
  make(&rs, "t", 0, 12, 15, 13);
  assert_int_equal(swrite(st, &rs.b, "t", 0, 15, &rj, &err), 0);
  assert_int_equal(rj.n, 1);
  assert_int_equal(rj.recs[0].offset, 13);
  assert_int_equal(hval("a"), 10);
  assert_int_equal(pos("o:t:0"), 15);
  /* NOSCRIPT after SCRIPT FLUSH is recovered */
  cmd("SCRIPT FLUSH");
  make(&rs, "t", 0, 15, 17, -1);
  assert_int_equal(swrite(st, &rs.b, "t", 0, 17, &rj, &err), 0);
  assert_int_equal(hval("a"), 12);
  pl()->stream_close(&f->sink, st);
  sl_rejects_free(&rj);
  sink_free(f);
}

/* Groups split by `pipeline`, and a lost reply (after_eval): the retry
 * with the same arguments applies nothing twice. */
static void test_stream_split_retry(void **state) {
  (void)state;
  NEED_SERVER();
  struct fx *f =
      sink_new("[ 'HINCRBY h {u} {n}', 'INCRBY c 1' ]", "pipeline: 3\n", true);
  struct sl_error err = {0};
  struct sl_rejects rj = {0};
  void *st;
  assert_int_equal(pl()->stream_open(&f->sink, 0, &st, &err), 0);
  struct recs rs;
  make(&rs, "t", 1, 0, 9, -1);
  assert_int_equal(
      sl_failpoints_arm("sink.redis.stream.after_eval=error(EIO)@2", &err), 0);
  assert_int_not_equal(swrite(st, &rs.b, "t", 1, 20, &rj, &err), 0);
  assert_int_equal(pos("o:t:1"), 2); /* two groups applied: records 0, 1 */
  assert_int_equal(sl_failpoints_arm(NULL, &err), 0);
  assert_int_equal(swrite(st, &rs.b, "t", 1, 20, &rj, &err), 0);
  assert_int_equal(hval("a"), 9);
  assert_int_equal(get_ll("GET %s", "c"), 9);
  assert_int_equal(pos("o:t:1"), 20);
  /* before_eval: nothing sent */
  make(&rs, "t", 1, 20, 21, -1);
  assert_int_equal(
      sl_failpoints_arm("sink.redis.stream.before_eval=error(EIO)", &err), 0);
  assert_int_not_equal(swrite(st, &rs.b, "t", 1, 21, &rj, &err), 0);
  assert_int_equal(sl_failpoints_arm(NULL, &err), 0);
  assert_int_equal(hval("a"), 9);
  assert_int_equal(pos("o:t:1"), 20);
  pl()->stream_close(&f->sink, st);
  sl_rejects_free(&rj);
  sink_free(f);
}

/* A command Redis refuses inside the script: the write fails, naming it,
 * and the positions moved (a replay does not apply the rest twice). */
static void test_stream_command_error(void **state) {
  (void)state;
  NEED_SERVER();
  struct fx *f = sink_new("HINCRBY h {u} {n}", "", true);
  struct sl_error err = {0};
  struct sl_rejects rj = {0};
  void *st;
  cmd("SET h notahash");
  assert_int_equal(pl()->stream_open(&f->sink, 0, &st, &err), 0);
  struct recs rs;
  make(&rs, "t", 0, 0, 2, -1);
  assert_int_not_equal(swrite(st, &rs.b, "t", 0, 2, &rj, &err), 0);
  assert_false(err.flags & SL_ERR_RETRIABLE);
  assert_non_null(strstr(err.msg, "HINCRBY h"));
  assert_non_null(strstr(err.msg, "WRONGTYPE"));
  assert_int_equal(pos("o:t:0"), 2);
  pl()->stream_close(&f->sink, st);
  sl_rejects_free(&rj);
  sink_free(f);
}

/* (d) the interval commit after stream writes; (e) the epoch commit. */
static void test_interval_and_epoch(void **state) {
  (void)state;
  NEED_SERVER();
  struct sl_error err = {0};
  struct sl_rejects rj = {0};
  struct fx *c = sink_new("HINCRBY h {u} {n}", "", true);
  void *st;
  assert_int_equal(pl()->stream_open(&c->sink, 0, &st, &err), 0);
  struct recs rs;
  make(&rs, "t", 0, 0, 12, -1); /* t:0 at 12 */
  assert_int_equal(swrite(st, &rs.b, "t", 0, 12, &rj, &err), 0);
  struct sl_batch none = {0};
  assert_int_equal(swrite(st, &none, "t", 2, 7, &rj, &err), 0);   /* t:2 */
  assert_int_equal(swrite(st, &none, "t", 3, 100, &rj, &err), 0); /* t:3 */
  pl()->stream_close(&c->sink, st);
  assert_int_equal(hval("a"), 12);

  /* interval: t:0 [8,16) -> 12..15 applied; t:1 [0,4) all; t:3 [40,50)
   * none, its position stays 100; t:2 not in the plan keeps 7 */
  struct fx *i = sink_new("HINCRBY h {u} {n}", "", false);
  void *sg[3];
  struct recs r0, r1, r3;
  make(&r0, "t", 0, 8, 16, -1);
  make(&r1, "t", 1, 0, 4, -1);
  make(&r3, "t", 3, 40, 50, -1);
  struct recs *all[3] = {&r0, &r1, &r3};
  for (int k = 0; k < 3; k++) {
    assert_int_equal(pl()->stage_open(&i->sink, 1, (uint32_t)k, &sg[k], &err),
                     0);
    assert_int_equal(pl()->stage_write(sg[k], &all[k]->b, &rj, &err), 0);
  }
  struct sl_plan plan = {.batch = 1};
  sl_plan_add(&plan, "t", 0, 8, 16);
  sl_plan_add(&plan, "t", 1, 0, 4);
  sl_plan_add(&plan, "t", 3, 40, 50);
  assert_int_equal(pl()->commit(&i->sink, &plan, sg, 3, &err), 0);
  assert_int_equal(hval("a"), 12 + 4 + 4);
  assert_int_equal(pos("o:t:0"), 16);
  assert_int_equal(pos("o:t:1"), 4);
  assert_int_equal(pos("o:t:2"), 7);
  assert_int_equal(pos("o:t:3"), 100);
  assert_int_equal(pos("batch"), 1);
  for (int k = 0; k < 3; k++)
    pl()->stage_free(&i->sink, sg[k]);
  sl_plan_clear(&plan);
  sink_free(i);

  /* epoch 5: max per partition, batch 5; epoch 3 (another sink) lowers
   * nothing */
  sl_plan_add(&plan, "t", 0, 10, 20);
  sl_plan_add(&plan, "t", 3, 50, 60);
  plan.batch = 5;
  assert_int_equal(
      sl_failpoints_arm("sink.redis.epoch.before_commit=error(EIO)", &err), 0);
  assert_int_not_equal(pl()->commit(&c->sink, &plan, NULL, 0, &err), 0);
  assert_int_equal(sl_failpoints_arm(NULL, &err), 0);
  assert_int_equal(pos("batch"), 1);
  assert_int_equal(pl()->commit(&c->sink, &plan, NULL, 0, &err), 0);
  assert_int_equal(pos("batch"), 5);
  assert_int_equal(pos("o:t:0"), 20);
  assert_int_equal(pos("o:t:3"), 100);
  struct fx *c2 = sink_new("HINCRBY h {u} {n}", "", true);
  plan.batch = 3;
  plan.ranges[0].end = 1;
  assert_int_equal(pl()->commit(&c2->sink, &plan, NULL, 0, &err), 0);
  assert_int_equal(pos("batch"), 5);
  assert_int_equal(pos("o:t:0"), 20);
  uint64_t batch;
  struct sl_plan end = {0};
  assert_int_equal(pl()->last_committed(&c2->sink, &batch, &end, &err), 0);
  assert_int_equal(batch, 5);
  assert_int_equal(end.n, 4);
  assert_int_equal(sl_plan_find(&end, "t", 3)->end, 100);
  sl_plan_clear(&end);
  sl_plan_clear(&plan);
  sink_free(c2);
  sink_free(c);
  sl_rejects_free(&rj);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_guard),
      cmocka_unit_test(test_stream_split_retry),
      cmocka_unit_test(test_stream_command_error),
      cmocka_unit_test(test_interval_and_epoch),
  };
  return cmocka_run_group_tests(tests, start_server, stop_server);
}
