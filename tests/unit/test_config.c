/*
 * test_config.c - unit tests of the config module: YAML tree and positions,
 * interpolation, --set overrides, unit parsers and table-driven binding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

/* ------------------------------------------------------------ helpers */

static struct sl_cfg_node *load(const char *text, struct sl_error *err) {
  sl_error_clear(err);
  return sl_cfg_load_string("job.yaml", text, strlen(text), err);
}

/* Loads text that must fail and checks the whole message. */
static void expect_load_error(const char *text, const char *msg) {
  struct sl_error err;
  struct sl_cfg_node *root = load(text, &err);
  if (root) {
    sl_cfg_free(root);
    fail_msg("expected an error loading:\n%s", text);
  }
  assert_int_equal(err.code, SL_ERR_CONFIG);
  assert_string_equal(err.msg, msg);
}

#define assert_contains(hay, needle)                                           \
  do {                                                                         \
    if (!strstr((hay), (needle)))                                              \
      fail_msg("'%s' does not contain '%s'", (hay), (needle));                 \
  } while (0)

#define assert_pos(node, l, c)                                                 \
  do {                                                                         \
    assert_non_null(node);                                                     \
    assert_int_equal((node)->line, (l));                                       \
    assert_int_equal((node)->col, (c));                                        \
  } while (0)

/* Walks a dotted path of map keys. */
static const struct sl_cfg_node *at(const struct sl_cfg_node *n,
                                    const char *path) {
  char buf[256];
  snprintf(buf, sizeof(buf), "%s", path);
  for (char *save, *k = strtok_r(buf, ".", &save); k && n;
       k = strtok_r(NULL, ".", &save))
    n = sl_cfg_get(n, k);
  return n;
}

/* ---------------------------------------------------------------- tree */

static void test_positions(void **state) {
  (void)state;
  struct sl_error err;
  struct sl_cfg_node *root = load("# comment\n"
                                  "source:\n"
                                  "  kafka:\n"
                                  "    brokers: [a, b]\n"
                                  "    topic: \"events\"\n"
                                  "name: job1\n"
                                  "list:\n"
                                  "  - x\n"
                                  "  - 'y'\n",
                                  &err);
  assert_non_null(root);
  assert_int_equal(root->kind, SL_CFG_MAP);
  assert_string_equal(root->file, "job.yaml");
  assert_int_equal(root->n, 3);
  assert_pos(root->keys[0], 2, 1);
  assert_string_equal(root->keys[0]->scalar, "source");

  const struct sl_cfg_node *kafka = at(root, "source.kafka");
  assert_int_equal(kafka->kind, SL_CFG_MAP);
  assert_pos(kafka, 4, 5);
  const struct sl_cfg_node *brokers = sl_cfg_get(kafka, "brokers");
  assert_int_equal(brokers->kind, SL_CFG_SEQ);
  assert_pos(brokers, 4, 14);
  assert_int_equal(brokers->n, 2);
  assert_pos(brokers->items[0], 4, 15);
  assert_pos(brokers->items[1], 4, 18);
  assert_string_equal(brokers->items[1]->scalar, "b");

  const struct sl_cfg_node *topic = sl_cfg_get(kafka, "topic");
  assert_pos(topic, 5, 12);
  assert_string_equal(topic->scalar, "events");
  assert_false(topic->plain);

  const struct sl_cfg_node *name = sl_cfg_get(root, "name");
  assert_pos(name, 6, 7);
  assert_true(name->plain);
  assert_string_equal(name->file, "job.yaml");

  const struct sl_cfg_node *list = sl_cfg_get(root, "list");
  assert_int_equal(list->kind, SL_CFG_SEQ);
  assert_pos(list->items[0], 8, 5);
  assert_pos(list->items[1], 9, 5);
  assert_true(list->items[0]->plain);
  assert_false(list->items[1]->plain);

  assert_null(sl_cfg_get(root, "nope"));
  assert_null(sl_cfg_get(name, "x")); /* not a map */
  sl_cfg_free(root);
  sl_cfg_free(NULL);
}

static void test_null_and_str_tag(void **state) {
  (void)state;
  struct sl_error err;
  struct sl_cfg_node *root = load("a: null\nb: !!str null\nc:\n", &err);
  assert_non_null(root);
  assert_true(sl_cfg_get(root, "a")->plain);
  assert_false(sl_cfg_get(root, "b")->plain);
  assert_string_equal(sl_cfg_get(root, "c")->scalar, "");
  sl_cfg_free(root);
}

static void test_syntax_error(void **state) {
  (void)state;
  expect_load_error("a: 1\n  b: 2\n",
                    "job.yaml:2:4: mapping values are not allowed in this "
                    "context");
  struct sl_error err;
  assert_null(load("a: [1, 2\nb: 3\n", &err));
  assert_int_equal(err.code, SL_ERR_CONFIG);
  assert_contains(err.msg, "job.yaml:");
  assert_contains(err.msg, "did not find expected ',' or ']'");
  /* A tab used for indentation. */
  assert_null(load("a:\n\tb: 1\n", &err));
  assert_contains(err.msg, "job.yaml:2:1: ");
  /* An unquoted ${VAR} in a flow collection: the error says to quote it;
   * the same syntax error without one has no such hint. */
  expect_load_error("s:\n  k: { b: ${B}, t: [x] }\n",
                    "job.yaml:2:12: did not find expected ',' or '}' "
                    "(inside { } or [ ], quote a value that holds ${...}: "
                    "'${VAR}')");
  assert_null(load("s: [${A}]\n", &err));
  assert_contains(err.msg, "quote a value that holds ${...}");
  assert_null(load("s: { b: x y: z }\nt: ${A}\n", &err));
  assert_contains(err.msg, "did not find expected ',' or '}'");
  assert_null(strstr(err.msg, "quote"));
}

static void test_reader_error_position(void **state) {
  (void)state;
  struct sl_error err;
  /* A control character on line 2: libyaml gives only a byte offset. */
  assert_null(load("a: 1\nb: x\x01y\n", &err));
  assert_string_equal(err.msg,
                      "job.yaml:2:5: control characters are not allowed");
}

static void test_duplicate_key(void **state) {
  (void)state;
  expect_load_error("a: 1\nb: 2\na: 3\n",
                    "job.yaml:3:1: duplicate key 'a' (first at line 1)");
  expect_load_error("s:\n  x: 1\n  y: 2\n  x: 3\n",
                    "job.yaml:4:3: duplicate key 'x' (first at line 2)");
  /* The same key in different maps is fine. */
  struct sl_error err;
  struct sl_cfg_node *root = load("a: {x: 1}\nb: {x: 2}\n", &err);
  assert_non_null(root);
  sl_cfg_free(root);
}

static void test_alias_and_anchor_rejected(void **state) {
  (void)state;
  expect_load_error("a: &base 1\nb: 2\n",
                    "job.yaml:1:4: anchors (&base) are not supported; repeat "
                    "the value instead");
  expect_load_error("a: 1\nb: *base\n",
                    "job.yaml:2:4: aliases (*base) are not supported; repeat "
                    "the value instead");
  expect_load_error("a:\n  - &m {x: 1}\n",
                    "job.yaml:2:5: anchors (&m) are not supported; repeat the "
                    "value instead");
}

static void test_structure_errors(void **state) {
  (void)state;
  expect_load_error("? [a, b]\n: 1\n",
                    "job.yaml:1:3: a key must be a string, got a list");
  expect_load_error("- a\n- b\n", "job.yaml:1:1: the top level must be a map "
                                  "of keys to values, got a list");
  expect_load_error("hello\n", "job.yaml:1:1: the top level must be a map of "
                               "keys to values, got a string");
  expect_load_error("", "job.yaml: file is empty");
  expect_load_error("# nothing here\n\n", "job.yaml: file is empty");
  expect_load_error("a: 1\n---\nb: 2\n",
                    "job.yaml:2:1: only one YAML document is allowed per file");
}

static void test_deep_nesting(void **state) {
  (void)state;
  char text[2000];
  struct sl_error err;
  size_t n = 0;
  n += (size_t)snprintf(text, sizeof(text), "a: ");
  for (int i = 0; i < 300; i++)
    text[n++] = '[';
  text[n] = '\0';
  assert_null(load(text, &err));
  assert_contains(err.msg, "nesting deeper than 256 levels");
}

static void test_load_file(void **state) {
  (void)state;
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  char path[512];
  struct sl_error err;
  snprintf(path, sizeof(path), "%s/test_config_%d.yaml", dir, (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("name: job1\nbatch:\n  size: 10\n  x: [1\n", f);
  fclose(f);

  assert_null(sl_cfg_load_file(path, &err));
  char want[600];
  snprintf(want, sizeof(want), "%s:5:1: ", path);
  assert_contains(err.msg, want);

  f = fopen(path, "w");
  assert_non_null(f);
  fputs("name: job1\nbatch:\n  size: 10\n", f);
  fclose(f);
  struct sl_cfg_node *root = sl_cfg_load_file(path, &err);
  assert_non_null(root);
  assert_string_equal(root->file, path);
  const struct sl_cfg_node *size = at(root, "batch.size");
  assert_pos(size, 3, 9);
  assert_string_equal(size->file, path);
  sl_cfg_free(root);
  unlink(path);

  assert_null(sl_cfg_load_file(path, &err));
  snprintf(want, sizeof(want), "%s: cannot open: No such file or directory",
           path);
  assert_string_equal(err.msg, want);
}

/* ------------------------------------------------------- interpolation */

static void test_interp_forms(void **state) {
  (void)state;
  struct sl_error err;
  setenv("SLT_HOST", "kafka1", 1);
  setenv("SLT_EMPTY", "", 1);
  unsetenv("SLT_UNSET");
  struct sl_cfg_node *root = load("plain: ${SLT_HOST}:9092\n"
                                  "quoted: \"tcp://${SLT_HOST}\"\n"
                                  "def_unset: ${SLT_UNSET:-localhost}\n"
                                  "def_empty: ${SLT_EMPTY:-fallback}\n"
                                  "def_set: ${SLT_HOST:-fallback}\n"
                                  "nested: ${SLT_UNSET:-${SLT_HOST}-2}\n"
                                  "empty_ok: x${SLT_EMPTY}y\n"
                                  "must: ${SLT_HOST:?set SLT_HOST}\n"
                                  "dollars: price $$5 and $$${SLT_HOST}\n"
                                  "lone: cost $5, $x and $\n"
                                  "${SLT_HOST}: key not expanded\n"
                                  "list: [\"${SLT_HOST}\", b]\n",
                                  &err);
  if (!root)
    fail_msg("%s", err.msg);
  assert_string_equal(sl_cfg_get(root, "plain")->scalar, "kafka1:9092");
  assert_true(sl_cfg_get(root, "plain")->plain);
  assert_string_equal(sl_cfg_get(root, "quoted")->scalar, "tcp://kafka1");
  assert_string_equal(sl_cfg_get(root, "def_unset")->scalar, "localhost");
  assert_string_equal(sl_cfg_get(root, "def_empty")->scalar, "fallback");
  assert_string_equal(sl_cfg_get(root, "def_set")->scalar, "kafka1");
  assert_string_equal(sl_cfg_get(root, "nested")->scalar, "kafka1-2");
  assert_string_equal(sl_cfg_get(root, "empty_ok")->scalar, "xy");
  assert_string_equal(sl_cfg_get(root, "must")->scalar, "kafka1");
  assert_string_equal(sl_cfg_get(root, "dollars")->scalar,
                      "price $5 and $kafka1");
  assert_string_equal(sl_cfg_get(root, "lone")->scalar, "cost $5, $x and $");
  assert_string_equal(sl_cfg_get(root, "${SLT_HOST}")->scalar,
                      "key not expanded");
  assert_string_equal(sl_cfg_get(root, "list")->items[0]->scalar, "kafka1");
  sl_cfg_free(root);
  unsetenv("SLT_HOST");
  unsetenv("SLT_EMPTY");
}

static void test_interp_errors(void **state) {
  (void)state;
  unsetenv("KAFKA_BROKERS");
  setenv("SLT_EMPTY", "", 1);
  expect_load_error("source:\n  kafka:\n    brokers: ${KAFKA_BROKERS}\n",
                    "job.yaml:3:14: environment variable KAFKA_BROKERS is not "
                    "set (use ${KAFKA_BROKERS:-default} to give a default)");
  expect_load_error("a: 1\nb: \"x ${KAFKA_BROKERS:?list your brokers}\"\n",
                    "job.yaml:2:4: KAFKA_BROKERS: list your brokers");
  expect_load_error("b: ${SLT_EMPTY:?must not be empty}\n",
                    "job.yaml:1:4: SLT_EMPTY: must not be empty");
  expect_load_error("b: abc ${KAFKA\n",
                    "job.yaml:1:4: unterminated '${' (missing '}')");
  struct sl_error err;
  assert_null(load("b: ${1X}\n", &err));
  assert_contains(err.msg, "job.yaml:1:4: invalid variable reference '${1X}'");
  assert_null(load("b: ${A B}\n", &err));
  assert_contains(err.msg, "invalid variable reference '${A B}'");
  assert_null(load("b: ${}\n", &err));
  assert_contains(err.msg, "invalid variable reference '${}'");
  unsetenv("SLT_EMPTY");
}

static void test_interp_secret_not_leaked(void **state) {
  (void)state;
  struct sl_error err;
  setenv("SLT_PASSWORD", "hunter2", 1);
  unsetenv("SLT_UNSET");
  /* The error is about another variable; the value never appears. */
  assert_null(load("p: ${SLT_PASSWORD}${SLT_UNSET}\n", &err));
  assert_null(strstr(err.msg, "hunter2"));
  assert_contains(err.msg, "SLT_UNSET is not set");
  unsetenv("SLT_PASSWORD");
}

/* A url's password is masked by validate --print, also when it holds an
 * '@' or a '/' that was not %-encoded; a url without one is shown as is. */
static void test_print_url_password_masked(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"redis://:pw@h:1/0", "\"redis://:********@h:1/0\""},
      {"redis://u:pw@h:1/0", "\"redis://u:********@h:1/0\""},
      {"redis://:p@w@h:1/0", "\"redis://:********@h:1/0\""},
      {"redis://:p/w@h:1/0", "\"redis://:********@h:1/0\""},
      {"redis://h:1/0", "redis://h:1/0"},
      {"redis://u@h:1/0", "redis://u@h:1/0"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct sl_error err;
    char *src = NULL, *text = NULL;
    size_t len = 0;
    assert_true(asprintf(&src, "u: '%s'\n", cases[i].in) > 0);
    struct sl_cfg_node *root = load(src, &err);
    assert_non_null(root);
    FILE *f = open_memstream(&text, &len);
    sl_cfg_print_node(f, sl_cfg_get(root, "u"), 0);
    fclose(f);
    char *want = NULL;
    assert_true(asprintf(&want, " %s\n", cases[i].out) > 0);
    assert_string_equal(text, want);
    free(want);
    free(text);
    free(src);
    sl_cfg_free(root);
  }
}

/* ----------------------------------------------------------------- --set */

static struct sl_cfg_node *base_tree(void) {
  struct sl_error err;
  struct sl_cfg_node *root = load("source:\n"
                                  "  kafka:\n"
                                  "    topic: events\n"
                                  "    brokers: [a]\n"
                                  "name: job1\n",
                                  &err);
  assert_non_null(root);
  return root;
}

static void test_set_existing(void **state) {
  (void)state;
  struct sl_error err;
  struct sl_cfg_node *root = base_tree();
  assert_int_equal(sl_cfg_apply_set(root, "source.kafka.topic=orders", &err),
                   0);
  const struct sl_cfg_node *t = at(root, "source.kafka.topic");
  assert_string_equal(t->scalar, "orders");
  assert_string_equal(t->file, "--set");
  assert_int_equal(t->line, 1);
  assert_int_equal(t->col, 20);
  assert_int_equal(at(root, "source.kafka")->n, 2);

  /* Replace a list by a scalar and a scalar by a map. */
  assert_int_equal(sl_cfg_apply_set(root, "source.kafka.brokers=h:9092", &err),
                   0);
  assert_string_equal(at(root, "source.kafka.brokers")->scalar, "h:9092");
  assert_int_equal(sl_cfg_apply_set(root, "name={a: 1, b: two}", &err), 0);
  const struct sl_cfg_node *name = sl_cfg_get(root, "name");
  assert_int_equal(name->kind, SL_CFG_MAP);
  assert_string_equal(sl_cfg_get(name, "b")->scalar, "two");
  assert_pos(sl_cfg_get(name, "b"), 1, 16);
  assert_pos(name->keys[1], 1, 13);
  sl_cfg_free(root);
}

static void test_set_new_nested(void **state) {
  (void)state;
  struct sl_error err;
  struct sl_cfg_node *root = base_tree();
  assert_int_equal(sl_cfg_apply_set(root, "sink.file.path=/tmp/out", &err), 0);
  const struct sl_cfg_node *sink = sl_cfg_get(root, "sink");
  assert_non_null(sink);
  assert_int_equal(sink->kind, SL_CFG_MAP);
  assert_string_equal(sink->file, "--set");
  const struct sl_cfg_node *file = sl_cfg_get(sink, "file");
  assert_pos(file, 1, 6);
  const struct sl_cfg_node *path = sl_cfg_get(file, "path");
  assert_string_equal(path->scalar, "/tmp/out");
  assert_pos(path, 1, 16);
  assert_true(path->plain);
  /* The new key node is positioned at its segment. */
  assert_pos(root->keys[root->n - 1], 1, 1);

  /* New key in an existing map. */
  assert_int_equal(sl_cfg_apply_set(root, "source.kafka.group=g1", &err), 0);
  assert_string_equal(at(root, "source.kafka.group")->scalar, "g1");
  assert_int_equal(at(root, "source.kafka")->n, 3);
  sl_cfg_free(root);
}

static void test_set_values(void **state) {
  (void)state;
  struct sl_error err;
  struct sl_cfg_node *root = base_tree();
  assert_int_equal(sl_cfg_apply_set(root, "tags=[x, \"y z\"]", &err), 0);
  const struct sl_cfg_node *tags = sl_cfg_get(root, "tags");
  assert_int_equal(tags->kind, SL_CFG_SEQ);
  assert_int_equal(tags->n, 2);
  assert_string_equal(tags->items[1]->scalar, "y z");
  assert_false(tags->items[1]->plain);
  assert_pos(tags, 1, 6);
  assert_pos(tags->items[1], 1, 10);

  assert_int_equal(sl_cfg_apply_set(root, "n=123", &err), 0);
  assert_string_equal(sl_cfg_get(root, "n")->scalar, "123");
  assert_int_equal(sl_cfg_apply_set(root, "w=hello world", &err), 0);
  assert_string_equal(sl_cfg_get(root, "w")->scalar, "hello world");
  assert_int_equal(sl_cfg_apply_set(root, "e=", &err), 0);
  assert_int_equal(sl_cfg_get(root, "e")->kind, SL_CFG_SCALAR);
  assert_string_equal(sl_cfg_get(root, "e")->scalar, "");
  assert_int_equal(sl_cfg_apply_set(root, "eq=a=b", &err), 0);
  assert_string_equal(sl_cfg_get(root, "eq")->scalar, "a=b");

  setenv("SLT_TOPIC", "from-env", 1);
  assert_int_equal(
      sl_cfg_apply_set(root, "source.kafka.topic=${SLT_TOPIC}", &err), 0);
  assert_string_equal(at(root, "source.kafka.topic")->scalar, "from-env");
  unsetenv("SLT_TOPIC");
  sl_cfg_free(root);
}

static void test_set_errors(void **state) {
  (void)state;
  struct sl_error err;
  struct sl_cfg_node *root = base_tree();

  assert_int_equal(sl_cfg_apply_set(root, "name.first=x", &err), SL_ERR_CONFIG);
  assert_string_equal(err.msg, "--set:1:6: cannot set 'name.first': 'name' is "
                               "a string (job.yaml:5:7), not a map");
  assert_int_equal(sl_cfg_apply_set(root, "source.kafka.brokers.x=1", &err),
                   SL_ERR_CONFIG);
  assert_contains(err.msg, "--set:1:22: cannot set 'source.kafka.brokers.x': "
                           "'source.kafka.brokers' is a list");

  assert_int_equal(sl_cfg_apply_set(root, "novalue", &err), SL_ERR_CONFIG);
  assert_string_equal(err.msg,
                      "--set:1:1: expected key.path=value, got 'novalue'");
  assert_int_equal(sl_cfg_apply_set(root, "=1", &err), SL_ERR_CONFIG);
  assert_contains(err.msg, "--set:1:1: empty key path");
  assert_int_equal(sl_cfg_apply_set(root, "a..b=1", &err), SL_ERR_CONFIG);
  assert_string_equal(err.msg, "--set:1:3: empty key in path 'a..b'");

  /* Syntax error in the value, positioned inside the argument. */
  assert_int_equal(sl_cfg_apply_set(root, "a.b=x: y", &err), SL_ERR_CONFIG);
  assert_string_equal(err.msg, "--set:1:6: mapping values are not allowed "
                               "in this context");
  assert_int_equal(sl_cfg_apply_set(root, "a.b=[1, 2", &err), SL_ERR_CONFIG);
  assert_string_equal(err.msg, "--set:1:10: did not find expected ',' or ']'");
  unsetenv("SLT_UNSET");
  assert_int_equal(sl_cfg_apply_set(root, "a.b=${SLT_UNSET}", &err),
                   SL_ERR_CONFIG);
  assert_string_equal(err.msg, "--set:1:5: environment variable SLT_UNSET is "
                               "not set (use ${SLT_UNSET:-default} to give a "
                               "default)");
  assert_int_equal(sl_cfg_apply_set(root, "a.b=*x", &err), SL_ERR_CONFIG);
  assert_contains(err.msg, "--set:1:5: aliases (*x) are not supported");

  /* Failed overrides left the tree alone. */
  assert_null(sl_cfg_get(root, "a"));
  assert_string_equal(sl_cfg_get(root, "name")->scalar, "job1");
  assert_int_equal(root->n, 2);
  sl_cfg_free(root);
}

/* --------------------------------------------------------------- units */

static void test_parse_duration(void **state) {
  (void)state;
  int64_t v = -1;
  assert_int_equal(sl_parse_duration("250us", &v), 0);
  assert_int_equal(v, 250000);
  assert_int_equal(sl_parse_duration("100ms", &v), 0);
  assert_int_equal(v, 100000000);
  assert_int_equal(sl_parse_duration("1.5s", &v), 0);
  assert_int_equal(v, 1500000000);
  assert_int_equal(sl_parse_duration("5m", &v), 0);
  assert_int_equal(v, 300000000000);
  assert_int_equal(sl_parse_duration("1h30m", &v), 0);
  assert_int_equal(v, 5400000000000);
  assert_int_equal(sl_parse_duration("1d", &v), 0);
  assert_int_equal(v, 86400000000000);
  assert_int_equal(sl_parse_duration("7ns", &v), 0);
  assert_int_equal(v, 7);
  assert_int_equal(sl_parse_duration("2 s", &v), 0);
  assert_int_equal(v, 2000000000);
  assert_int_equal(sl_parse_duration("0", &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(sl_parse_duration("100", &v), -1);
  assert_int_equal(sl_parse_duration("-1s", &v), -1);
  assert_int_equal(sl_parse_duration("10 parsecs", &v), -1);
  assert_int_equal(sl_parse_duration("", &v), -1);
  assert_int_equal(sl_parse_duration("+", &v), -1);
  assert_int_equal(sl_parse_duration("s", &v), -1);
  assert_int_equal(sl_parse_duration("1h30", &v), -1);
  assert_int_equal(sl_parse_duration("1S", &v), -1);
  assert_int_equal(sl_parse_duration("999999999d", &v), -1);
}

static void test_parse_size(void **state) {
  (void)state;
  int64_t v = -1;
  assert_int_equal(sl_parse_size("512", &v), 0);
  assert_int_equal(v, 512);
  assert_int_equal(sl_parse_size("64KiB", &v), 0);
  assert_int_equal(v, 65536);
  assert_int_equal(sl_parse_size("64KB", &v), 0);
  assert_int_equal(v, 64000);
  assert_int_equal(sl_parse_size("1MB", &v), 0);
  assert_int_equal(v, 1000000);
  assert_int_equal(sl_parse_size("1mib", &v), 0);
  assert_int_equal(v, 1048576);
  assert_int_equal(sl_parse_size("2GiB", &v), 0);
  assert_int_equal(v, 2147483648);
  assert_int_equal(sl_parse_size("1GB", &v), 0);
  assert_int_equal(v, 1000000000);
  assert_int_equal(sl_parse_size("4K", &v), 0);
  assert_int_equal(v, 4096);
  assert_int_equal(sl_parse_size("3M", &v), 0);
  assert_int_equal(v, 3145728);
  assert_int_equal(sl_parse_size("10B", &v), 0);
  assert_int_equal(v, 10);
  assert_int_equal(sl_parse_size("1.5 KiB", &v), 0);
  assert_int_equal(v, 1536);
  assert_int_equal(sl_parse_size("1.5", &v), -1);
  assert_int_equal(sl_parse_size("-1", &v), -1);
  assert_int_equal(sl_parse_size("12XB", &v), -1);
  assert_int_equal(sl_parse_size("KB", &v), -1);
  assert_int_equal(sl_parse_size("99999999999GiB", &v), -1);
}

static void test_scalar_converters(void **state) {
  (void)state;
  struct sl_error err;
  struct sl_cfg_node *root = load("i: -1_000\n"
                                  "big: 9223372036854775808\n"
                                  "b: Yes\n"
                                  "d: 10 parsecs\n"
                                  "s: 1MB\n"
                                  "m: {x: 1}\n"
                                  "min: -9223372036854775808\n",
                                  &err);
  assert_non_null(root);
  int64_t v;
  bool b;
  assert_int_equal(sl_cfg_int(sl_cfg_get(root, "i"), &v, &err), 0);
  assert_int_equal(v, -1000);
  assert_int_equal(sl_cfg_int(sl_cfg_get(root, "big"), &v, &err),
                   SL_ERR_CONFIG);
  assert_string_equal(err.msg, "job.yaml:2:6: '9223372036854775808' does not "
                               "fit in a 64-bit integer");
  assert_int_equal(sl_cfg_bool(sl_cfg_get(root, "b"), &b, &err), 0);
  assert_true(b);
  assert_int_equal(sl_cfg_duration(sl_cfg_get(root, "d"), &v, &err),
                   SL_ERR_CONFIG);
  assert_string_equal(err.msg, "job.yaml:4:4: '10 parsecs' has an unknown "
                               "unit 'parsecs' (units: ns, us, ms, s, m, h, "
                               "d)");
  assert_int_equal(sl_cfg_size(sl_cfg_get(root, "s"), &v, &err), 0);
  assert_int_equal(v, 1000000);
  assert_int_equal(sl_cfg_int(sl_cfg_get(root, "min"), &v, &err), 0);
  assert_true(v == INT64_MIN);
  assert_int_equal(sl_cfg_int(sl_cfg_get(root, "m"), &v, &err), SL_ERR_CONFIG);
  assert_string_equal(err.msg, "job.yaml:6:4: expected an integer, got a map");
  sl_cfg_free(root);
}

static void test_edit_distance(void **state) {
  (void)state;
  assert_int_equal(sl_edit_distance("kitten", "sitting", 5), 3);
  assert_int_equal(sl_edit_distance("kitten", "sitting", 2), 3);
  assert_int_equal(sl_edit_distance("", "abc", 5), 3);
  assert_int_equal(sl_edit_distance("same", "same", 0), 0);
  assert_int_equal(sl_edit_distance("abcdefgh", "a", 2), 3);

  static const struct sl_cfg_field t[] = {
      {.key = "max_records_per_batch", .type = SL_CFG_T_INT},
      {.key = "brokers", .type = SL_CFG_T_STRLIST},
      {.key = "id", .type = SL_CFG_T_STR},
      {0}};
  assert_string_equal(sl_cfg_suggest(t, "max_record_per_batch"),
                      "max_records_per_batch");
  assert_string_equal(sl_cfg_suggest(t, "Max-Records-Per-Batch"),
                      "max_records_per_batch");
  assert_string_equal(sl_cfg_suggest(t, "borkers"), "brokers");
  assert_null(sl_cfg_suggest(t, "topic"));
  assert_null(sl_cfg_suggest(t, "x")); /* too short to be a typo of "id" */
}

/* ---------------------------------------------------------------- bind */

enum codec { CODEC_JSON, CODEC_CSV, CODEC_RAW };
static const char *const codec_names[] = {"json", "csv", "raw", NULL};

struct kafka_cfg {
  struct sl_strlist brokers;
  char *topic;
  char *password;
  int64_t max_records;
  struct sl_strmap props;
};

struct job_cfg {
  char *name;
  int64_t workers;
  bool exactly_once;
  int64_t interval;
  int64_t max_bytes;
  int codec;
  struct sl_strlist tags;
  struct kafka_cfg kafka;
  const struct sl_cfg_node *transform;
  char *note;
};

static const struct sl_cfg_field kafka_fields[] = {
    {.key = "brokers",
     .type = SL_CFG_T_STRLIST,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct kafka_cfg, brokers)},
    {.key = "topic",
     .type = SL_CFG_T_STR,
     .def = "events",
     .offset = offsetof(struct kafka_cfg, topic)},
    {.key = "password",
     .type = SL_CFG_T_STR,
     .flags = SL_CFG_SECRET,
     .offset = offsetof(struct kafka_cfg, password)},
    {.key = "max_records_per_batch",
     .type = SL_CFG_T_INT,
     .def = "1000",
     .offset = offsetof(struct kafka_cfg, max_records),
     .min = 1,
     .max = 100000},
    {.key = "properties",
     .type = SL_CFG_T_STRMAP,
     .offset = offsetof(struct kafka_cfg, props)},
    {0}};

static const struct sl_cfg_field job_fields[] = {
    {.key = "name",
     .type = SL_CFG_T_STR,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct job_cfg, name)},
    {.key = "workers",
     .type = SL_CFG_T_INT,
     .def = "4",
     .offset = offsetof(struct job_cfg, workers),
     .min = 1,
     .max = 64},
    {.key = "exactly_once",
     .type = SL_CFG_T_BOOL,
     .def = "true",
     .offset = offsetof(struct job_cfg, exactly_once)},
    {.key = "interval",
     .type = SL_CFG_T_DURATION,
     .def = "1s",
     .offset = offsetof(struct job_cfg, interval),
     .min = 1000000,
     .max = 3600000000000},
    {.key = "max_bytes",
     .type = SL_CFG_T_SIZE,
     .def = "64KiB",
     .offset = offsetof(struct job_cfg, max_bytes)},
    {.key = "codec",
     .type = SL_CFG_T_ENUM,
     .def = "csv",
     .offset = offsetof(struct job_cfg, codec),
     .enum_values = codec_names},
    {.key = "tags",
     .type = SL_CFG_T_STRLIST,
     .def = "[a, b]",
     .offset = offsetof(struct job_cfg, tags)},
    {.key = "kafka",
     .type = SL_CFG_T_SECTION,
     .offset = offsetof(struct job_cfg, kafka),
     .section = kafka_fields},
    {.key = "transform",
     .type = SL_CFG_T_NODE,
     .offset = offsetof(struct job_cfg, transform)},
    {.key = "note",
     .type = SL_CFG_T_STR,
     .def = "none",
     .offset = offsetof(struct job_cfg, note)},
    {0}};

/* Loads text and binds it; returns the bind result, root kept for NODE. */
static int bind_text(const char *text, struct job_cfg *c,
                     struct sl_cfg_node **root, struct sl_error *err) {
  memset(c, 0, sizeof(*c));
  *root = load(text, err);
  if (!*root)
    fail_msg("load: %s", err->msg);
  return sl_cfg_bind(*root, NULL, job_fields, c, "", err);
}

/* A bind that must fail with exactly msg; nothing is left allocated. */
static void expect_bind_error(const char *text, const char *msg) {
  struct job_cfg c;
  struct sl_cfg_node *root;
  struct sl_error err;
  int rc = bind_text(text, &c, &root, &err);
  if (rc == 0) {
    sl_cfg_unbind(job_fields, &c);
    sl_cfg_free(root);
    fail_msg("expected a bind error for:\n%s", text);
  }
  assert_int_equal(rc, SL_ERR_CONFIG);
  assert_string_equal(err.msg, msg);
  assert_null(c.name);
  assert_null(c.tags.v);
  assert_null(c.kafka.brokers.v);
  sl_cfg_free(root);
}

static void test_bind_all_types(void **state) {
  (void)state;
  struct job_cfg c;
  struct sl_cfg_node *root;
  struct sl_error err;
  int rc = bind_text("name: orders\n"
                     "workers: 8\n"
                     "exactly_once: off\n"
                     "interval: 250ms\n"
                     "max_bytes: 1MB\n"
                     "codec: raw\n"
                     "tags: [x, 'y', 3]\n"
                     "kafka:\n"
                     "  brokers: b1:9092\n"
                     "  max_records_per_batch: 1_000\n"
                     "  properties: {acks: all, retries: 3, idem: true}\n"
                     "transform: {op: filter}\n"
                     "note: ~\n",
                     &c, &root, &err);
  if (rc)
    fail_msg("%s", err.msg);
  assert_string_equal(c.name, "orders");
  assert_int_equal(c.workers, 8);
  assert_false(c.exactly_once);
  assert_int_equal(c.interval, 250000000);
  assert_int_equal(c.max_bytes, 1000000);
  assert_int_equal(c.codec, CODEC_RAW);
  assert_int_equal(c.tags.n, 3);
  assert_string_equal(c.tags.v[2], "3");
  assert_int_equal(c.kafka.brokers.n, 1);
  assert_string_equal(c.kafka.brokers.v[0], "b1:9092");
  assert_string_equal(c.kafka.topic, "events");
  assert_null(c.kafka.password);
  assert_int_equal(c.kafka.max_records, 1000);
  assert_int_equal(c.kafka.props.n, 3);
  assert_string_equal(c.kafka.props.keys[1], "retries");
  assert_string_equal(c.kafka.props.values[1], "3");
  assert_string_equal(c.kafka.props.values[2], "true");
  assert_ptr_equal(c.transform, sl_cfg_get(root, "transform"));
  assert_int_equal(c.transform->kind, SL_CFG_MAP);
  assert_string_equal(c.note, "none"); /* null => default */

  sl_cfg_unbind(job_fields, &c);
  assert_null(c.name);
  assert_null(c.tags.v);
  assert_int_equal(c.tags.n, 0);
  assert_null(c.kafka.brokers.v);
  assert_null(c.kafka.topic);
  assert_null(c.kafka.props.keys);
  sl_cfg_unbind(job_fields, &c); /* twice is harmless */
  sl_cfg_free(root);
}

static void test_bind_defaults(void **state) {
  (void)state;
  struct job_cfg c;
  struct sl_cfg_node *root;
  struct sl_error err;
  int rc = bind_text("name: n\nkafka: {brokers: [k1, k2]}\n", &c, &root, &err);
  if (rc)
    fail_msg("%s", err.msg);
  assert_int_equal(c.workers, 4);
  assert_true(c.exactly_once);
  assert_int_equal(c.interval, 1000000000);
  assert_int_equal(c.max_bytes, 65536);
  assert_int_equal(c.codec, CODEC_CSV);
  assert_int_equal(c.tags.n, 2);
  assert_string_equal(c.tags.v[1], "b");
  assert_string_equal(c.kafka.topic, "events");
  assert_int_equal(c.kafka.max_records, 1000);
  assert_int_equal(c.kafka.props.n, 0);
  assert_int_equal(c.kafka.brokers.n, 2);
  assert_null(c.transform);
  assert_string_equal(c.note, "none");
  sl_cfg_unbind(job_fields, &c);
  sl_cfg_free(root);

  /* An absent map: only defaults, required keys reported unpositioned. */
  struct kafka_cfg k;
  memset(&k, 0xff, sizeof(k)); /* bind must not read or free old values */
  assert_int_equal(
      sl_cfg_bind(NULL, NULL, kafka_fields, &k, "source.kafka", &err),
      SL_ERR_CONFIG);
  assert_string_equal(err.msg,
                      "missing required key 'brokers' in source.kafka");
  static const struct sl_cfg_field opt[] = {
      {.key = "topic",
       .type = SL_CFG_T_STR,
       .def = "t",
       .offset = offsetof(struct kafka_cfg, topic)},
      {.key = "props",
       .type = SL_CFG_T_STRMAP,
       .def = "{a: 1}",
       .offset = offsetof(struct kafka_cfg, props)},
      {0}};
  memset(&k, 0, sizeof(k));
  assert_int_equal(sl_cfg_bind(NULL, NULL, opt, &k, "", &err), 0);
  assert_string_equal(k.topic, "t");
  assert_int_equal(k.props.n, 1);
  assert_string_equal(k.props.values[0], "1");
  sl_cfg_unbind(opt, &k);
}

static void test_bind_required_missing(void **state) {
  (void)state;
  expect_bind_error("workers: 2\nkafka: {brokers: [a]}\n",
                    "job.yaml:1:1: missing required key 'name' at top level");
  /* Missing inside a present section: positioned at that map. */
  expect_bind_error("name: n\nkafka:\n  topic: t\n",
                    "job.yaml:3:3: missing required key 'brokers' in kafka");
  /* Absent section: positioned at the parent map. */
  expect_bind_error("name: n\n",
                    "job.yaml:1:1: missing required key 'brokers' in kafka");
  expect_bind_error("name: null\n",
                    "job.yaml:1:7: name: a value is required, got null");
}

static void test_bind_unknown_key(void **state) {
  (void)state;
  expect_bind_error("name: n\nkafka:\n  brokers: [a]\n"
                    "  max_record_per_batch: 5\n",
                    "job.yaml:4:3: unknown key 'max_record_per_batch' in "
                    "kafka; did you mean 'max_records_per_batch'?");
  expect_bind_error("name: n\nWorkers: 3\n",
                    "job.yaml:2:1: unknown key 'Workers' at top level; did "
                    "you mean 'workers'?");
  expect_bind_error("name: n\nkafka:\n  brokers: [a]\n  zzzzzz: 1\n",
                    "job.yaml:4:3: unknown key 'zzzzzz' in kafka (known keys: "
                    "brokers, topic, password, max_records_per_batch, "
                    "properties)");
}

static void test_bind_type_errors(void **state) {
  (void)state;
  expect_bind_error("name: [a]\n",
                    "job.yaml:1:7: name: expected a string, got a list");
  expect_bind_error("name: {a: 1}\n",
                    "job.yaml:1:7: name: expected a string, got a map");
  expect_bind_error("name: n\nworkers: many\n",
                    "job.yaml:2:10: workers: 'many' is not an integer");
  expect_bind_error("name: n\nworkers: 0\n",
                    "job.yaml:2:10: workers: must be between 1 and 64, got 0");
  expect_bind_error("name: n\nworkers: 65\n",
                    "job.yaml:2:10: workers: must be between 1 and 64, got "
                    "65");
  expect_bind_error("name: n\nexactly_once: maybe\n",
                    "job.yaml:2:15: exactly_once: 'maybe' is not a boolean "
                    "(use true/false, yes/no or on/off)");
  expect_bind_error("name: n\ninterval: 10 parsecs\n",
                    "job.yaml:2:11: interval: '10 parsecs' has an unknown "
                    "unit 'parsecs' (units: ns, us, ms, s, m, h, d)");
  expect_bind_error("name: n\ninterval: 100\n",
                    "job.yaml:2:11: interval: '100' needs a unit: 100ms, 2s, "
                    "5m, ... (units: ns, us, ms, s, m, h, d)");
  expect_bind_error("name: n\ninterval: -5s\n",
                    "job.yaml:2:11: interval: '-5s' is negative; a duration "
                    "must be 0 or more");
  expect_bind_error("name: n\ninterval: 2h\n",
                    "job.yaml:2:11: interval: must be between 1ms and 1h, got "
                    "2h");
  expect_bind_error("name: n\nmax_bytes: 12 parsecs\n",
                    "job.yaml:2:12: max_bytes: '12 parsecs' has an unknown "
                    "unit 'parsecs' (units: B, KB, MB, GB, KiB, MiB, GiB)");
  expect_bind_error("name: n\ncodec: jsonn\n",
                    "job.yaml:2:8: codec: 'jsonn' must be one of: json, csv, "
                    "raw; did you mean 'json'?");
  expect_bind_error("name: n\ncodec: avro\n",
                    "job.yaml:2:8: codec: 'avro' must be one of: json, csv, "
                    "raw");
  expect_bind_error("name: n\ntags: [a, [b]]\n",
                    "job.yaml:2:11: tags[1]: expected a string, got a list");
  expect_bind_error("name: n\ntags: {a: b}\n",
                    "job.yaml:2:7: tags: expected a list of strings, got a "
                    "map");
  expect_bind_error("name: n\nkafka: [a]\n",
                    "job.yaml:2:8: kafka: expected a map, got a list");
}

static void test_bind_nested_context(void **state) {
  (void)state;
  expect_bind_error("name: n\nkafka:\n  brokers: [a]\n"
                    "  max_records_per_batch: 0\n",
                    "job.yaml:4:26: kafka.max_records_per_batch: must be "
                    "between 1 and 100000, got 0");
  expect_bind_error("name: n\nkafka:\n  brokers: [a]\n"
                    "  properties: {acks: [1]}\n",
                    "job.yaml:4:22: kafka.properties.acks: expected a string, "
                    "got a list");

  /* A caller binding a sub-tree passes its dotted context. */
  struct sl_error err;
  struct sl_cfg_node *root =
      load("source:\n  kafka:\n    brokers: [a]\n    topik: x\n", &err);
  assert_non_null(root);
  struct kafka_cfg k = {0};
  assert_int_equal(sl_cfg_bind(at(root, "source.kafka"), NULL, kafka_fields, &k,
                               "source.kafka", &err),
                   SL_ERR_CONFIG);
  assert_string_equal(err.msg, "job.yaml:4:5: unknown key 'topik' in "
                               "source.kafka; did you mean 'topic'?");
  assert_null(k.brokers.v);
  /* Absent section with where_absent. */
  assert_int_equal(sl_cfg_bind(NULL, at(root, "source"), kafka_fields, &k,
                               "source.kafka", &err),
                   SL_ERR_CONFIG);
  assert_string_equal(err.msg, "job.yaml:2:3: missing required key 'brokers' "
                               "in source.kafka");
  sl_cfg_free(root);
}

static void test_bind_secret_not_leaked(void **state) {
  (void)state;
  static const char *const modes[] = {"plain", "scram", NULL};
  struct secret_cfg {
    int64_t pin;
    int mode;
    char *password;
  };
  static const struct sl_cfg_field t[] = {
      {.key = "pin",
       .type = SL_CFG_T_INT,
       .flags = SL_CFG_SECRET,
       .offset = offsetof(struct secret_cfg, pin),
       .min = 0,
       .max = 9999},
      {.key = "mode",
       .type = SL_CFG_T_ENUM,
       .flags = SL_CFG_SECRET,
       .offset = offsetof(struct secret_cfg, mode),
       .enum_values = modes},
      {.key = "password",
       .type = SL_CFG_T_STR,
       .flags = SL_CFG_SECRET,
       .offset = offsetof(struct secret_cfg, password)},
      {0}};
  const char *cases[] = {"pin: s3cr3t\n", "pin: 123456789\n", "mode: s3cr3t\n",
                         "password: {s3cr3t: 1}\n"};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct sl_error err;
    struct secret_cfg s = {0};
    struct sl_cfg_node *root = load(cases[i], &err);
    assert_non_null(root);
    assert_int_equal(sl_cfg_bind(root, NULL, t, &s, "", &err), SL_ERR_CONFIG);
    if (strstr(err.msg, "s3cr3t") || strstr(err.msg, "123456789"))
      fail_msg("secret leaked: %s", err.msg);
    sl_cfg_free(root);
  }
  struct sl_error err;
  struct secret_cfg s = {0};
  struct sl_cfg_node *root = load("pin: 12345\n", &err);
  assert_int_equal(sl_cfg_bind(root, NULL, t, &s, "", &err), SL_ERR_CONFIG);
  assert_string_equal(err.msg, "job.yaml:1:6: pin: must be between 0 and 9999");
  sl_cfg_free(root);
}

static void test_bind_after_set(void **state) {
  (void)state;
  struct job_cfg c;
  struct sl_cfg_node *root;
  struct sl_error err;
  memset(&c, 0, sizeof(c));
  root = load("name: n\nkafka: {brokers: [a]}\n", &err);
  assert_non_null(root);
  assert_int_equal(
      sl_cfg_apply_set(root, "kafka.max_records_per_batch=0", &err), 0);
  assert_int_equal(sl_cfg_bind(root, NULL, job_fields, &c, "", &err),
                   SL_ERR_CONFIG);
  assert_string_equal(err.msg, "--set:1:29: kafka.max_records_per_batch: "
                               "must be between 1 and 100000, got 0");
  assert_int_equal(
      sl_cfg_apply_set(root, "kafka.max_records_per_batch=50", &err), 0);
  assert_int_equal(sl_cfg_apply_set(root, "tags=", &err), 0);
  assert_int_equal(sl_cfg_bind(root, NULL, job_fields, &c, "", &err), 0);
  assert_int_equal(c.kafka.max_records, 50);
  assert_int_equal(c.tags.n, 1);
  assert_string_equal(c.tags.v[0], "");
  sl_cfg_unbind(job_fields, &c);
  sl_cfg_free(root);
}

static void test_bind_bad_default(void **state) {
  (void)state;
  struct bad {
    int64_t d;
  } b = {0};
  static const struct sl_cfg_field t[] = {{.key = "d",
                                           .type = SL_CFG_T_DURATION,
                                           .def = "100",
                                           .offset = offsetof(struct bad, d)},
                                          {0}};
  struct sl_error err;
  assert_int_equal(sl_cfg_bind(NULL, NULL, t, &b, "x", &err), SL_ERR_CONFIG);
  assert_string_equal(err.msg, "x.d (default): '100' needs a unit: 100ms, 2s, "
                               "5m, ... (units: ns, us, ms, s, m, h, d)");
}

static void test_cfg_error(void **state) {
  (void)state;
  struct sl_error err;
  struct sl_cfg_node *root = load("a:\n  b: 1\n", &err);
  assert_int_equal(sl_cfg_error(&err, at(root, "a.b"), "bad %s", "thing"),
                   SL_ERR_CONFIG);
  assert_string_equal(err.msg, "job.yaml:2:6: bad thing");
  assert_int_equal(err.code, SL_ERR_CONFIG);
  sl_cfg_error(&err, NULL, "no position");
  assert_string_equal(err.msg, "no position");
  sl_cfg_free(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_positions),
      cmocka_unit_test(test_null_and_str_tag),
      cmocka_unit_test(test_syntax_error),
      cmocka_unit_test(test_reader_error_position),
      cmocka_unit_test(test_duplicate_key),
      cmocka_unit_test(test_alias_and_anchor_rejected),
      cmocka_unit_test(test_structure_errors),
      cmocka_unit_test(test_deep_nesting),
      cmocka_unit_test(test_load_file),
      cmocka_unit_test(test_interp_forms),
      cmocka_unit_test(test_interp_errors),
      cmocka_unit_test(test_interp_secret_not_leaked),
      cmocka_unit_test(test_print_url_password_masked),
      cmocka_unit_test(test_set_existing),
      cmocka_unit_test(test_set_new_nested),
      cmocka_unit_test(test_set_values),
      cmocka_unit_test(test_set_errors),
      cmocka_unit_test(test_parse_duration),
      cmocka_unit_test(test_parse_size),
      cmocka_unit_test(test_scalar_converters),
      cmocka_unit_test(test_edit_distance),
      cmocka_unit_test(test_bind_all_types),
      cmocka_unit_test(test_bind_defaults),
      cmocka_unit_test(test_bind_required_missing),
      cmocka_unit_test(test_bind_unknown_key),
      cmocka_unit_test(test_bind_type_errors),
      cmocka_unit_test(test_bind_nested_context),
      cmocka_unit_test(test_bind_secret_not_leaked),
      cmocka_unit_test(test_bind_after_set),
      cmocka_unit_test(test_bind_bad_default),
      cmocka_unit_test(test_cfg_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
