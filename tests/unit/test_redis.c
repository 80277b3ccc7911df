/* test_redis.c - the Redis sink's templates, urls, commit chunking and
 * commit record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "sinks/redis/conn.h"
#include "sinks/redis/redis.h"
#include "sinks/redis/template.h"

/* Renders tpl for a record whose value is json; returns the arguments
 * joined by '|', or "REJECT: <reason>". */
static const char *render(const char *tpl, const char *json, const char *key) {
  static char out[1100]; /* "REJECT: " and a message */
  struct sl_error err = {0};
  int col;
  struct sl_rcmd *c;
  assert_int_equal(sl_rcmd_parse(tpl, &c, &col, &err), 0);
  struct sl_record r = {.value = json,
                        .value_len = json ? strlen(json) : 0,
                        .key = key,
                        .key_len = key ? strlen(key) : 0,
                        .topic = "clicks",
                        .partition = 3,
                        .offset = 1234567890123,
                        .timestamp = -1};
  cJSON *row = json ? cJSON_Parse(json) : NULL;
  struct sl_rargs a = {0};
  if (sl_rcmd_render(c, &r, row, &a, &err)) {
    assert_int_equal(err.code, SL_ERR_INVAL);
    snprintf(out, sizeof(out), "REJECT: %s", err.msg);
  } else {
    size_t k = 0;
    for (size_t i = 0; i < a.argc; i++)
      k += (size_t)snprintf(out + k, sizeof(out) - k, "%s%.*s", i ? "|" : "",
                            (int)a.argvlen[i], a.argv[i]);
  }
  sl_rargs_free(&a);
  cJSON_Delete(row);
  sl_rcmd_free(c);
  return out;
}

/* Parses tpl, expecting an error at col whose message contains want. */
static void parse_fails(const char *tpl, int want_col, const char *want) {
  struct sl_error err = {0};
  int col = 0;
  struct sl_rcmd *c;
  if (sl_rcmd_parse(tpl, &c, &col, &err) == 0) {
    sl_rcmd_free(c);
    fail_msg("'%s' parsed", tpl);
  }
  assert_null(c);
  assert_int_equal(err.code, SL_ERR_CONFIG);
  if (!strstr(err.msg, want))
    fail_msg("'%s': message '%s' lacks '%s'", tpl, err.msg, want);
  assert_int_equal(col, want_col);
}

static void test_render(void **state) {
  (void)state;
  const char *row = "{\"user\":\"u1\",\"n\":3,\"f\":80.01,\"big\":1e300,"
                    "\"ok\":true,\"o\":{\"a\":{\"b\":\"deep\"}},"
                    "\"arr\":[1,2],\"dotted.name\":\"x\",\"nil\":null}";
  assert_string_equal(render("HSET user:{user} n {n}", row, NULL),
                      "HSET|user:u1|n|3");
  assert_string_equal(render("hincrbyfloat s {user} {f}", row, NULL),
                      "hincrbyfloat|s|u1|80.01");
  assert_string_equal(render("SET k {big}", row, NULL), "SET|k|1e+300");
  assert_string_equal(render("SET {o.a.b} {ok}", row, NULL), "SET|deep|true");
  assert_string_equal(render("SET k {arr}", row, NULL), "SET|k|[1,2]");
  assert_string_equal(render("SET k {dotted.name}", row, NULL), "SET|k|x");
  assert_string_equal(render("SET \"a {user} b\" {{lit}}", row, NULL),
                      "SET|a u1 b|{lit}");
  assert_string_equal(render("SET \"say \\\"hi\\\"\" \"\"", row, NULL),
                      "SET|say \"hi\"|");
  assert_string_equal(render("RPUSH log:{_key} {_value}", "raw", "k1"),
                      "RPUSH|log:k1|raw");
  assert_string_equal(render("RPUSH log:{@key} {@value}", "raw", "k1"),
                      "RPUSH|log:k1|raw");
  assert_string_equal(
      render("SET {@topic}:{@partition} \"{@offset} {@timestamp}\"", row, NULL),
      "SET|clicks:3|1234567890123 -1");
  assert_string_equal(render("ZADD top {n} {user} 2.5 x", row, NULL),
                      "ZADD|top|3|u1|2.5|x");
  /* ZADD's options come before the pairs: the score is checked after them */
  assert_string_equal(render("ZADD top GT {n} {user}", row, NULL),
                      "ZADD|top|GT|3|u1");
  assert_string_equal(render("zadd top lt ch {f} {user}", row, NULL),
                      "zadd|top|lt|ch|80.01|u1");
  assert_string_equal(render("XADD s * user {user}", row, NULL),
                      "XADD|s|*|user|u1");
}

static void test_render_rejects(void **state) {
  (void)state;
  const char *row = "{\"user\":\"u1\",\"f\":1.5,\"s\":\"abc\",\"nil\":null}";
  assert_string_equal(render("SET k {missing}", row, NULL),
                      "REJECT: redis command: field 'missing' is missing");
  assert_string_equal(render("SET k {nil}", row, NULL),
                      "REJECT: redis command: field 'nil' is null");
  assert_string_equal(render("INCRBY k {f}", row, NULL),
                      "REJECT: redis command: INCRBY argument 2 must be an "
                      "integer, got '1.5'");
  assert_string_equal(render("ZINCRBY z {s} m", row, NULL),
                      "REJECT: redis command: ZINCRBY argument 2 must be a "
                      "number, got 'abc'");
  assert_string_equal(render("SET k {user}", "not json", NULL),
                      "REJECT: redis command: the value is not a JSON object "
                      "(add `parse: json` to the pipeline?)");
  assert_string_equal(render("SET {_key} v", row, NULL),
                      "REJECT: redis command: the record has no key for "
                      "{_key}");
  assert_string_equal(render("SET k {@value}", NULL, "k1"),
                      "REJECT: redis command: the record has no value for "
                      "{@value}");
}

static void test_parse_errors(void **state) {
  (void)state;
  parse_fails("", 1, "empty command");
  parse_fails("FLUSHALL", 1, "unknown or unsupported command 'FLUSHALL'");
  parse_fails("{cmd} k v", 1, "command name must be a literal");
  parse_fails("SET k", 1, "SET takes 2 arguments after the name, not 1");
  parse_fails("SET k v x", 1, "SET takes 2 arguments");
  parse_fails("HSET h f", 1, "HSET takes at least 3 arguments");
  parse_fails("HSET h f v g", 1, "field-value pairs");
  parse_fails("ZADD z 1 a 2", 1, "score-member pairs");
  parse_fails("INCRBY k 1.5", 10, "INCRBY: argument 2 must be an integer");
  parse_fails("ZADD z x m", 8, "argument 2 must be a number");
  parse_fails("ZADD z GT x m", 11, "argument 3 must be a number");
  parse_fails("ZADD z GT m", 1, "after the options come in score-member");
  parse_fails("ZADD z GT LT 1 m", 1, "GT and LT exclude each other");
  parse_fails("SET k {user", 7, "unclosed placeholder");
  parse_fails("SET k {}", 7, "empty placeholder");
  parse_fails("SET k {a b}", 9, "inside a placeholder");
  parse_fails("SET k a}b", 8, "unmatched '}'");
  parse_fails("SET k {a..b}", 8, "not a field path");
  parse_fails("SET k {_offset}", 8,
              "unknown placeholder {_offset}; known: @key, @value, @topic");
  parse_fails("SET k x{@nope}", 9, "unknown placeholder {@nope}; known: @key");
  parse_fails("SET k \"abc", 7, "unclosed quote");
  parse_fails("SET k \"a\"b", 10, "closing quote must end");
  parse_fails("SET k a\"b", 8, "quote inside an argument");
}

static void test_fields(void **state) {
  (void)state;
  struct sl_error err = {0};
  int col;
  struct sl_rcmd *c;
  assert_int_equal(sl_rcmd_parse("HSET {a}:{b.c} {a} {_key}", &c, &col, &err),
                   0);
  const char *const *f = sl_rcmd_fields(c);
  assert_string_equal(f[0], "a");
  assert_string_equal(f[1], "b.c");
  assert_null(f[2]);
  assert_true(sl_rcmd_needs_json(c));
  assert_true(sl_rcmd_has_key(c));
  sl_rcmd_free(c);
  assert_int_equal(sl_rcmd_parse("SET k {@key}", &c, &col, &err), 0);
  assert_false(sl_rcmd_needs_json(c));
  assert_null(sl_rcmd_fields(c)[0]);
  sl_rcmd_free(c);
  assert_int_equal(sl_rcmd_parse("PUBLISH ch {_value}", &c, &col, &err), 0);
  assert_false(sl_rcmd_needs_json(c));
  assert_false(sl_rcmd_has_key(c));
  sl_rcmd_free(c);
}

/* The fields check of validate, on the shared compiler: the first unknown
 * field, at the column of its placeholder. */
static void test_check_fields(void **state) {
  (void)state;
  static const char *const fields[] = {"id", "user", NULL};
  struct sl_error err = {0};
  int col = 0;
  struct sl_rcmd *c;
  assert_int_equal(
      sl_rcmd_parse("HSET h:{user} \"{{idd}}\" {idd.x}", &c, &col, &err), 0);
  assert_int_equal(sl_rcmd_check_fields(c, fields, &col, &err), SL_ERR_CONFIG);
  assert_int_equal(col, 25); /* not the {idd} inside {{idd}} */
  assert_string_equal(err.msg, "the pipeline's output has no field 'idd'; "
                               "did you mean 'id'? (fields: id, user)");
  sl_rcmd_free(c);
  assert_int_equal(
      sl_rcmd_parse("HSET {user}:{@key} {id} {_value}", &c, &col, &err), 0);
  assert_int_equal(sl_rcmd_check_fields(c, fields, &col, &err), 0);
  sl_rcmd_free(c);
}

static void url_ok(const char *url, const char *host, int port,
                   const char *path, const char *user, const char *pw, int db) {
  struct sl_redis_url u;
  char msg[256];
  if (sl_redis_url_parse(url, &u, msg, sizeof(msg)))
    fail_msg("%s: %s", url, msg);
  if (host)
    assert_string_equal(u.host, host);
  else
    assert_null(u.host);
  assert_int_equal(u.port, port);
  if (path)
    assert_string_equal(u.path, path);
  else
    assert_null(u.path);
  if (user)
    assert_string_equal(u.user, user);
  else
    assert_null(u.user);
  if (pw)
    assert_string_equal(u.password, pw);
  else
    assert_null(u.password);
  assert_int_equal(u.db, db);
  sl_redis_url_free(&u);
}

static void url_bad(const char *url, const char *want) {
  struct sl_redis_url u;
  char msg[256];
  if (sl_redis_url_parse(url, &u, msg, sizeof(msg)) != -1) {
    sl_redis_url_free(&u);
    fail_msg("%s parsed", url);
  }
  if (!strstr(msg, want))
    fail_msg("%s: '%s' lacks '%s'", url, msg, want);
  assert_null(strstr(msg, "s3cret")); /* never the password */
}

static void test_urls(void **state) {
  (void)state;
  url_ok("redis://127.0.0.1", "127.0.0.1", 6379, NULL, NULL, NULL, 0);
  url_ok("redis://h:7000/3", "h", 7000, NULL, NULL, NULL, 3);
  url_ok("redis://:s3cret@h", "h", 6379, NULL, NULL, "s3cret", 0);
  url_ok("redis://app:p%40ss@h:1/2", "h", 1, NULL, "app", "p@ss", 2);
  url_ok("redis://app:p@ss@h", "h", 6379, NULL, "app", "p@ss", 0);
  url_ok("redis://[::1]:6380/1", "::1", 6380, NULL, NULL, NULL, 1);
  url_ok("unix:///run/redis.sock", NULL, 6379, "/run/redis.sock", NULL, NULL,
         0);
  url_ok("unix:/tmp/r.sock?db=4", NULL, 6379, "/tmp/r.sock", NULL, NULL, 4);
  url_bad("http://h", "must start with redis://");
  url_bad("rediss://h", "TLS");
  url_bad("redis://", "no host");
  url_bad("redis://h:0", "port");
  url_bad("redis://h:99999", "port");
  url_bad("redis://h:12x", "port");
  url_bad("redis://h/x", "database number");
  url_bad("redis://s3cret@h", "[user]:password");
  url_bad("redis://:s3cret%zz@h", "bad %-escape in the password");
  url_bad("redis://h?db=1", "query strings");
  url_bad("unix://relative", "absolute");
  url_bad("unix:///s?x=1", "?db=N");
  struct sl_redis_url u;
  char msg[256], buf[128];
  assert_int_equal(
      sl_redis_url_parse("redis://u:s3cret@h:1/2", &u, msg, sizeof(msg)), 0);
  assert_string_equal(sl_redis_url_describe(&u, buf, sizeof(buf)), "h:1/2");
  sl_redis_url_free(&u);
}

/* Commands are encoded byte for byte as hiredis encodes them, one after
 * another in one buffer: empty, binary and long arguments, argument
 * lengths across digit counts. */
static void test_format(void **state) {
  (void)state;
  struct sl_buf mine = {0};
  unsigned seed = 1;
  static char big[100005];
  for (size_t i = 0; i < sizeof(big); i++)
    big[i] = (char)(i * 131 + 7); /* NUL, CR and LF among them */
  for (int c = 0; c < 2000; c++) {
    size_t argc = 1 + (size_t)(rand_r(&seed) % 12);
    const char *argv[12];
    size_t lens[12];
    for (size_t i = 0; i < argc; i++) {
      static const size_t sizes[] = {0, 1, 9, 10, 99, 100, 1000, 100005};
      lens[i] = sizes[rand_r(&seed) % 8];
      argv[i] = big + (lens[i] < 100000 ? (size_t)(rand_r(&seed) % 1000) : 0);
    }
    if (c % 50 == 0)
      sl_buf_reset(&mine); /* appends to an empty buffer and to a used one */
    size_t before = mine.len;
    sl_redis_format(&mine, argc, argv, lens);
    char *cmd;
    int n = redisFormatCommandArgv(&cmd, (int)argc, argv, lens);
    assert_true(n > 0);
    assert_int_equal(mine.len - before, (size_t)n);
    assert_true(mine.len < mine.cap);
    assert_memory_equal(mine.p + before, cmd, (size_t)n);
    redisFreeCommand(cmd);
  }
  sl_buf_free(&mine);
}

static void test_chunks(void **state) {
  (void)state;
  /* five commands of 10, 20, 30, 40, 50 bytes */
  size_t ends[] = {10, 30, 60, 100, 150};
  assert_int_equal(sl_redis_chunk_end(ends, 5, 0, 1000, 1 << 20), 5);
  assert_int_equal(sl_redis_chunk_end(ends, 5, 0, 2, 1 << 20), 2);
  assert_int_equal(sl_redis_chunk_end(ends, 5, 2, 2, 1 << 20), 4);
  assert_int_equal(sl_redis_chunk_end(ends, 5, 4, 2, 1 << 20), 5);
  assert_int_equal(sl_redis_chunk_end(ends, 5, 5, 2, 1 << 20), 5);
  /* bytes: from 1, 20+30 = 50 fits, +40 = 90 does not */
  assert_int_equal(sl_redis_chunk_end(ends, 5, 1, 100, 50), 3);
  /* a command larger than the byte limit still goes, alone */
  assert_int_equal(sl_redis_chunk_end(ends, 5, 4, 100, 5), 5);
  assert_int_equal(sl_redis_chunk_end(ends, 5, 0, 100, 5), 1);
  /* every command is sent exactly once, in order */
  size_t many[1000], sent = 0, chunks = 0;
  for (size_t i = 0; i < 1000; i++)
    many[i] = (i + 1) * 7;
  for (size_t from = 0; from < 1000; chunks++) {
    size_t to = sl_redis_chunk_end(many, 1000, from, 64, 300);
    assert_true(to > from && to - from <= 64);
    assert_true(to - from == 1 ||
                many[to - 1] - (from ? many[from - 1] : 0) <= 300);
    sent += to - from;
    from = to;
  }
  assert_int_equal(sent, 1000);
  assert_int_equal(chunks, 24); /* 300 / 7 = 42 per chunk */
}

static void test_commit_record(void **state) {
  (void)state;
  const char *f[] = {"batch", "o:clicks:1", "o:clicks:0", "o:a:b:2", "x"};
  const char *v[] = {"12", "500", "400", "7", "ignored"};
  uint64_t batch;
  struct sl_plan end = {0};
  char msg[200];
  assert_int_equal(
      sl_redis_commit_decode(f, v, 5, &batch, &end, msg, sizeof(msg)), 0);
  assert_int_equal(batch, 12);
  assert_int_equal(end.n, 3);
  assert_string_equal(end.ranges[0].topic, "a:b"); /* sorted */
  assert_int_equal(end.ranges[0].partition, 2);
  assert_int_equal(end.ranges[1].partition, 0);
  assert_int_equal(end.ranges[1].end, 400);
  assert_int_equal(end.ranges[2].end, 500);
  sl_plan_clear(&end);
  /* empty: nothing committed yet */
  assert_int_equal(
      sl_redis_commit_decode(f, v, 0, &batch, &end, msg, sizeof(msg)), 0);
  assert_int_equal(batch, 0);
  const char *bf[] = {"batch"}, *bv[] = {"x1"};
  assert_int_equal(
      sl_redis_commit_decode(bf, bv, 1, &batch, &end, msg, sizeof(msg)), -1);
  assert_non_null(strstr(msg, "not a batch number"));
  const char *of[] = {"batch", "o:clicks:p"}, *ov[] = {"1", "5"};
  assert_int_equal(
      sl_redis_commit_decode(of, ov, 2, &batch, &end, msg, sizeof(msg)), -1);
  assert_non_null(strstr(msg, "malformed"));
  sl_plan_clear(&end);
  const char *nf[] = {"o:clicks:0"}, *nv[] = {"5"};
  /* positions without a batch: streams wrote before the first epoch */
  assert_int_equal(
      sl_redis_commit_decode(nf, nv, 1, &batch, &end, msg, sizeof(msg)), 0);
  assert_int_equal(batch, 0);
  assert_int_equal(end.n, 1);
  assert_int_equal(end.ranges[0].end, 5);
  sl_plan_clear(&end);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_render),
      cmocka_unit_test(test_render_rejects),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_fields),
      cmocka_unit_test(test_check_fields),
      cmocka_unit_test(test_urls),
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_chunks),
      cmocka_unit_test(test_commit_record),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
