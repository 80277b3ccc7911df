/*
 * failpoint.h - named crash points, armed from the environment.
 *
 * Every step of a batch's life and every step inside a sink commit calls
 * sl_failpoint("its.name"). Unarmed, that is one load and one branch that
 * is predicted not taken. Armed, the named points act:
 *
 *   SLUICE_FAILPOINTS='NAME=ACTION[@N][;NAME=ACTION[@N]...]'
 *
 *   crash         the process dies at once with SIGKILL: no atexit handler,
 *                 no flush, no destructor runs, as when the machine dies
 *   error(ERRNO)  the step fails as if a system call had returned ERRNO
 *                 (a name such as EIO or ENOSPC, or a number)
 *   sleep(MS)     the step waits MS milliseconds, then goes on
 *   stop          the process stops itself (SIGSTOP) until it gets SIGCONT:
 *                 a zombie for fencing tests
 *   @N            only the N-th hit of the point acts (counting from 1);
 *                 without it every hit acts
 *
 * Before it acts, a point writes one line to stderr,
 *   sluice: failpoint NAME fired: ACTION (hit N)
 * with a single write(2), so that a test can prove its crash fired at the
 * point it aimed at (and exit status 137 that it was a SIGKILL).
 *
 * The points are compiled into every build, the release binary included,
 * so the crash tests run the binary users run. Every point is listed in
 * sl_failpoint_list (failpoint.c) with the step it marks; `sluice
 * failpoints` prints the list, arming a name not in it is an error, and a
 * hit of an unlisted name aborts (a point renamed in code but not in the
 * list, which would make a crash test silently miss).
 *
 * @locality any thread; arming happens once, before threads start.
 */
#ifndef SL_FAILPOINT_H
#define SL_FAILPOINT_H

#include <stdbool.h>
#include <stdio.h>

#include "error.h"

struct sl_failpoint_info {
  const char *name;
  const char *step; /* the moment it marks, and what a crash there tests */
};

/* The known points, ending with {NULL, NULL}. */
extern const struct sl_failpoint_info sl_failpoint_list[];

/* True once any point is armed. Written only by sl_failpoints_arm(),
 * before any thread is started. */
extern bool sl_failpoints_armed;

/* Arms the points of spec (the SLUICE_FAILPOINTS syntax above), replacing
 * what was armed before; NULL or "" disarms all. SL_ERR_INVAL with a
 * message naming the bad entry (unknown point, bad action). Not
 * thread-safe: call before threads start (tests: between runs). */
int sl_failpoints_arm(const char *spec, struct sl_error *err);

/* Arms from the environment variable SLUICE_FAILPOINTS (if set). */
int sl_failpoints_arm_env(struct sl_error *err);

/* The armed path of sl_failpoint: acts as armed for name, returns 0 to go
 * on or an errno value for error(ERRNO). */
int sl_failpoint_hit(const char *name);

/* Marks a step. Returns 0 to go on, or an errno value (> 0) that the
 * caller turns into the failure of that step. */
static inline int sl_failpoint(const char *name) {
  if (__builtin_expect(sl_failpoints_armed, 0))
    return sl_failpoint_hit(name);
  return 0;
}

/* sl_failpoint(prefix "." step) for points named by their caller, such as
 * the steps of an atomic file write ("checkpoint.commits.before_rename").
 * A NULL prefix marks nothing. */
int sl_failpoint_at_hit(const char *prefix, const char *step);
static inline int sl_failpoint_at(const char *prefix, const char *step) {
  if (__builtin_expect(sl_failpoints_armed, 0) && prefix)
    return sl_failpoint_at_hit(prefix, step);
  return 0;
}

/* For steps that report through an sl_error: 0 to go on, or sets err to
 * SL_ERR_IO "failpoint NAME: injected error: <strerror>" and returns it. */
int sl_failpoint_err(const char *name, struct sl_error *err);

/* Prints the list (name and step), for `sluice failpoints`. */
void sl_failpoints_print(FILE *out);

#endif
