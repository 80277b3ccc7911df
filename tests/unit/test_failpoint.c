/* test_failpoint.c - arming, hit counting and every action of the crash
 * points (src/failpoint.h). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "src/failpoint.h"

static void arm_ok(const char *spec) {
  struct sl_error err = {0};
  assert_int_equal(sl_failpoints_arm(spec, &err), 0);
}

static void arm_bad(const char *spec, const char *msg_part) {
  struct sl_error err = {0};
  assert_int_equal(sl_failpoints_arm(spec, &err), SL_ERR_INVAL);
  if (!strstr(err.msg, msg_part))
    fail_msg("'%s': message '%s' lacks '%s'", spec, err.msg, msg_part);
}

static void test_unarmed(void **state) {
  (void)state;
  arm_ok(NULL);
  assert_false(sl_failpoints_armed);
  assert_int_equal(sl_failpoint("batch.after_offsets"), 0);
  arm_ok("");
  assert_false(sl_failpoints_armed);
}

static void test_parse_errors(void **state) {
  (void)state;
  arm_bad("batch.after_offsets", "expected NAME=ACTION");
  arm_bad("no.such.point=crash", "unknown failpoint 'no.such.point'");
  arm_bad("batch.after_offsets=explode", "bad action 'explode'");
  arm_bad("batch.after_offsets=error(EWHAT)", "bad action");
  arm_bad("batch.after_offsets=error()", "bad action");
  arm_bad("batch.after_offsets=sleep(-1)", "bad action");
  arm_bad("batch.after_offsets=crash@0", "bad hit number");
  arm_bad("batch.after_offsets=crash@x", "bad hit number");
  arm_bad("batch.after_offsets=crash@", "bad hit number");
  /* A bad entry leaves what was armed before. */
  arm_ok("batch.planned=error(EIO)");
  arm_bad("batch.planned=error(EIO);x=crash", "unknown failpoint 'x'");
  assert_int_equal(sl_failpoint("batch.planned"), EIO);
  arm_ok(NULL);
}

static void test_error_every_hit_and_nth(void **state) {
  (void)state;
  arm_ok("checkpoint.commits.before_rename=error(ENOSPC);"
         "batch.after_commit=error(5)@3");
  assert_true(sl_failpoints_armed);
  for (int i = 0; i < 3; i++)
    assert_int_equal(sl_failpoint("checkpoint.commits.before_rename"), ENOSPC);
  assert_int_equal(sl_failpoint("batch.after_commit"), 0);
  assert_int_equal(sl_failpoint("batch.after_commit"), 0);
  assert_int_equal(sl_failpoint("batch.after_commit"), 5);
  assert_int_equal(sl_failpoint("batch.after_commit"), 0);
  /* Points not armed go on. */
  assert_int_equal(sl_failpoint("batch.planned"), 0);
  /* Prefixed names are the same points; a NULL prefix marks nothing. */
  assert_int_equal(sl_failpoint_at("checkpoint.commits", "before_rename"),
                   ENOSPC);
  assert_int_equal(sl_failpoint_at(NULL, "before_rename"), 0);
  /* Re-arming resets the counts. */
  arm_ok("batch.after_commit=error(EIO)@1");
  assert_int_equal(sl_failpoint("batch.after_commit"), EIO);
  assert_int_equal(sl_failpoint("batch.after_commit"), 0);
  arm_ok(NULL);
}

static void test_err_message(void **state) {
  (void)state;
  struct sl_error err = {0};
  arm_ok("task.after_read=error(EIO)");
  assert_int_equal(sl_failpoint_err("task.after_read", &err), SL_ERR_IO);
  assert_non_null(strstr(err.msg, "failpoint task.after_read"));
  assert_non_null(strstr(err.msg, strerror(EIO)));
  arm_ok(NULL);
  assert_int_equal(sl_failpoint_err("task.after_read", &err), 0);
}

/* Runs fn in a child process and returns its wait status (with
 * WUNTRACED: a stopped child is continued and waited for again). */
static int in_child(void (*fn)(void), int *stopped) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fn();
    _exit(7);
  }
  int st;
  *stopped = 0;
  for (;;) {
    assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
    if (!WIFSTOPPED(st))
      return st;
    *stopped = 1;
    kill(pid, SIGCONT);
  }
}

static void crash_child(void) {
  arm_ok("batch.after_sink_commit=crash@2");
  if (sl_failpoint("batch.after_sink_commit") != 0)
    _exit(3);
  sl_failpoint("batch.after_sink_commit"); /* dies here */
  _exit(4);
}

static void stop_child(void) {
  arm_ok("sink.kafka.after_produce=stop");
  sl_failpoint("sink.kafka.after_produce");
}

static void sleep_child(void) {
  arm_ok("batch.planned=sleep(1)");
  if (sl_failpoint("batch.planned") != 0)
    _exit(3);
}

static void unlisted_child(void) {
  arm_ok("batch.planned=crash");
  sl_failpoint("not.in.the.list");
}

static void test_actions(void **state) {
  (void)state;
  int stopped;
  int st = in_child(crash_child, &stopped);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGKILL);
  st = in_child(stop_child, &stopped);
  assert_true(stopped);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 7);
  st = in_child(sleep_child, &stopped);
  assert_false(stopped);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 7);
  st = in_child(unlisted_child, &stopped);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGABRT);
}

/* Every listed name is unique and made of the characters the syntax
 * allows. */
static void test_list(void **state) {
  (void)state;
  size_t n = 0;
  for (const struct sl_failpoint_info *f = sl_failpoint_list; f->name; f++) {
    n++;
    assert_non_null(f->step);
    assert_int_equal(strspn(f->name, "abcdefghijklmnopqrstuvwxyz_."),
                     strlen(f->name));
    for (const struct sl_failpoint_info *g = f + 1; g->name; g++)
      assert_string_not_equal(f->name, g->name);
  }
  assert_true(n >= 20);
}

/* Every listed point armed at once (as the crash matrix's calibration
 * does); one more entry is refused. */
static void test_arm_all(void **state) {
  (void)state;
  char spec[8192] = "";
  size_t n = 0;
  for (const struct sl_failpoint_info *f = sl_failpoint_list; f->name; f++) {
    snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "%s=sleep(0);",
             f->name);
    n++;
  }
  arm_ok(spec);
  char more[8300];
  snprintf(more, sizeof(more), "%s%s=sleep(0)", spec,
           sl_failpoint_list[0].name);
  char msg[64];
  snprintf(msg, sizeof(msg), "more than %zu points", n);
  arm_bad(more, msg);
  arm_ok("");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unarmed),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_error_every_hit_and_nth),
      cmocka_unit_test(test_err_message),
      cmocka_unit_test(test_actions),
      cmocka_unit_test(test_list),
      cmocka_unit_test(test_arm_all),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
