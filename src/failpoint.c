/*
 * failpoint.c - see failpoint.h.
 *
 * The armed points are a short array searched by name on each hit; only
 * armed processes (tests) pay for it. Hit counters are atomic because
 * some points are hit on worker threads.
 */
#include "failpoint.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define FP_FILE_STEPS(prefix, what)                                            \
  {prefix ".before_fsync", what " written to its temporary file, not "         \
                                "fsynced: the old file stays current"},        \
      {prefix ".before_rename",                                                \
       what " fsynced under its temporary name, "                              \
            "not renamed: the old file stays current"},                        \
  {                                                                            \
    prefix ".before_dir_fsync", what " renamed into place, its "               \
                                     "directory not fsynced"                   \
  }

const struct sl_failpoint_info sl_failpoint_list[] = {
    /* The batch lifecycle (src/engine.c), in the order a batch meets
     * them. */
    {"batch.planned", "batch N planned, offsets/N not written: the restart "
                      "plans N afresh"},
    {"batch.after_offsets", "offsets/N durable, no task run yet: the "
                            "restart re-runs N with the same ranges "
                            "(invariants 1 and 2)"},
    {"task.after_read", "a read task read and staged its whole range, its "
                        "stages not closed (worker thread): nothing of N is "
                        "visible yet"},
    {"batch.after_reads", "every read task of N done, window phase and sink "
                          "commit not begun"},
    {"batch.after_state", "window state snapshot N durable, sink commit not "
                          "begun (invariant 5)"},
    {"batch.after_sink_commit", "the sink committed N, commits/N not "
                                "written: the restart completes commits/N "
                                "from the sink's record (invariants 4, 5)"},
    {"batch.after_commit", "commits/N durable, old entries not yet pruned"},
    /* The continuous trigger's streams (src/stream.c). */
    {"stream.before_seal", "a stream reached epoch E's barrier, its stages "
                           "not closed (worker thread): E is not committed; "
                           "what a sink wrote at once is guarded by its "
                           "positions"},
    /* The checkpoint's atomic writes (checkpoint/fsio.c, invariant 6). */
    FP_FILE_STEPS("checkpoint.metadata", "metadata"),
    FP_FILE_STEPS("checkpoint.offsets", "offsets/N"),
    FP_FILE_STEPS("checkpoint.commits", "commits/N"),
    FP_FILE_STEPS("checkpoint.state", "state/N/shards (the changed shards' "
                                      "images of N)"),
    FP_FILE_STEPS("checkpoint.state.index", "state/N/index"),
    /* The file sink (sinks/file/file.c). */
    {"sink.file.after_part_fsync", "a part file of N written and fsynced "
                                   "(worker thread), no manifest lists it"},
    {"sink.file.before_manifest", "every part file of N and their directory "
                                  "durable, manifest N not written"},
    FP_FILE_STEPS("sink.file.manifest", "manifest N"),
    {"sink.file.after_manifest", "manifest N durable (N is visible), "
                                 "commits/N not written"},
    /* The Redis sink (sinks/redis/redis.c). */
    {"sink.redis.before_exec", "MULTI and every command of N queued, EXEC "
                               "not sent: Redis drops the transaction with "
                               "the connection"},
    {"sink.redis.after_exec", "EXEC answered (N is visible), commits/N not "
                              "written"},
    {"sink.redis.stream.before_eval",
     "a group of records rendered by a stream (worker thread), its script "
     "not sent: nothing of the group is in Redis"},
    {"sink.redis.stream.after_eval",
     "a stream's script applied (records and positions in Redis), not yet "
     "returned to the engine: a replay of the group applies nothing"},
    {"sink.redis.epoch.before_commit",
     "the epoch commit script of N built, not sent: the positions the "
     "streams stored stand, batch N is not recorded"},
    /* The Kafka sink (sinks/kafka/sink.c). */
    {"sink.kafka.after_produce", "every record of N handed to the producer "
                                 "in the open transaction, offsets not sent, "
                                 "commit_transaction not called"},
    {"sink.kafka.after_send_offsets", "the source offsets of N sent to the "
                                      "transaction, commit_transaction not "
                                      "called"},
    {"sink.kafka.after_commit_txn", "the transaction of N committed, "
                                    "commits/N not written"},
    {NULL, NULL}};

enum fp_action { FP_CRASH, FP_ERROR, FP_SLEEP, FP_STOP };

struct fp_armed {
  const char *name; /* from sl_failpoint_list */
  enum fp_action action;
  long arg;          /* errno for error, ms for sleep */
  unsigned long nth; /* 0: every hit */
  atomic_ulong hits;
};

/* Every listed point can be armed at once (the crash matrix's calibration
 * and the benchmark arm them all). */
#define FP_MAX (SL_ARRAY_LEN(sl_failpoint_list) - 1)
static struct fp_armed armed[FP_MAX];
static size_t narmed;
bool sl_failpoints_armed;

static const struct sl_failpoint_info *find_info(const char *name, size_t len) {
  for (const struct sl_failpoint_info *f = sl_failpoint_list; f->name; f++)
    if (strlen(f->name) == len && memcmp(f->name, name, len) == 0)
      return f;
  return NULL;
}

static const struct {
  const char *name;
  int value;
} errno_names[] = {{"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EACCES", EACCES},
                   {"EROFS", EROFS},   {"EDQUOT", EDQUOT}, {"EPERM", EPERM},
                   {"ENOENT", ENOENT}, {"EINTR", EINTR},   {"EAGAIN", EAGAIN},
                   {"ENOMEM", ENOMEM}, {"EBADF", EBADF},   {"EFBIG", EFBIG}};

/* The name of errno value v as SLUICE_FAILPOINTS spells it, or NULL. */
static const char *errno_name(long v) {
  for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
    if (errno_names[i].value == v)
      return errno_names[i].name;
  return NULL;
}

/* Parses the argument of error(...) or sleep(...): text[0..len). */
static bool parse_arg(const char *text, size_t len, bool is_errno, long *out) {
  char buf[32];
  if (len == 0 || len >= sizeof(buf))
    return false;
  memcpy(buf, text, len);
  buf[len] = '\0';
  if (is_errno)
    for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
      if (strcmp(buf, errno_names[i].name) == 0) {
        *out = errno_names[i].value;
        return true;
      }
  char *end;
  errno = 0;
  long v = strtol(buf, &end, 10);
  if (errno || *end || v < (is_errno ? 1 : 0))
    return false;
  *out = v;
  return true;
}

/* Parses one "NAME=ACTION[@N]" of length len into a. */
static int parse_one(const char *s, size_t len, struct fp_armed *a,
                     struct sl_error *err) {
  const char *eq = memchr(s, '=', len);
  if (!eq)
    return sl_error_set(err, SL_ERR_INVAL,
                        "SLUICE_FAILPOINTS: '%.*s': expected NAME=ACTION",
                        (int)len, s);
  const struct sl_failpoint_info *f = find_info(s, (size_t)(eq - s));
  if (!f)
    return sl_error_set(err, SL_ERR_INVAL,
                        "SLUICE_FAILPOINTS: unknown failpoint '%.*s' (`sluice "
                        "failpoints` lists them)",
                        (int)(eq - s), s);
  const char *act = eq + 1, *end = s + len;
  const char *at = memchr(act, '@', (size_t)(end - act));
  const char *act_end = at ? at : end;
  size_t alen = (size_t)(act_end - act);
  memset(a, 0, sizeof(*a));
  a->name = f->name;
  bool ok = true;
  if (alen == 5 && memcmp(act, "crash", 5) == 0)
    a->action = FP_CRASH;
  else if (alen == 4 && memcmp(act, "stop", 4) == 0)
    a->action = FP_STOP;
  else if (alen > 7 && memcmp(act, "error(", 6) == 0 && act_end[-1] == ')') {
    a->action = FP_ERROR;
    ok = parse_arg(act + 6, alen - 7, true, &a->arg);
  } else if (alen > 7 && memcmp(act, "sleep(", 6) == 0 && act_end[-1] == ')') {
    a->action = FP_SLEEP;
    ok = parse_arg(act + 6, alen - 7, false, &a->arg);
  } else
    ok = false;
  if (!ok)
    return sl_error_set(err, SL_ERR_INVAL,
                        "SLUICE_FAILPOINTS: %s: bad action '%.*s' (crash, "
                        "error(ERRNO), sleep(MS) or stop)",
                        f->name, (int)alen, act);
  if (at) {
    char buf[24];
    size_t nlen = (size_t)(end - at - 1);
    char *nend;
    unsigned long long n = 0;
    if (nlen > 0 && nlen < sizeof(buf)) {
      memcpy(buf, at + 1, nlen);
      buf[nlen] = '\0';
      errno = 0;
      n = strtoull(buf, &nend, 10);
      if (errno || *nend || buf[0] == '-')
        n = 0;
    }
    if (n == 0)
      return sl_error_set(err, SL_ERR_INVAL,
                          "SLUICE_FAILPOINTS: %s: bad hit number '%.*s' "
                          "(@N counts from 1)",
                          f->name, (int)(end - at), at);
    a->nth = (unsigned long)n;
  }
  return 0;
}

int sl_failpoints_arm(const char *spec, struct sl_error *err) {
  struct fp_armed next[FP_MAX];
  size_t n = 0;
  const char *s = spec ? spec : "";
  while (*s) {
    size_t len = strcspn(s, ";");
    if (len > 0) {
      if (n == FP_MAX)
        return sl_error_set(err, SL_ERR_INVAL,
                            "SLUICE_FAILPOINTS: more than %zu points", FP_MAX);
      int rc = parse_one(s, len, &next[n], err);
      if (rc)
        return rc;
      n++;
    }
    s += len;
    if (*s == ';')
      s++;
  }
  for (size_t i = 0; i < n; i++) {
    armed[i] = next[i];
    atomic_init(&armed[i].hits, 0);
  }
  narmed = n;
  sl_failpoints_armed = n > 0;
  return 0;
}

int sl_failpoints_arm_env(struct sl_error *err) {
  const char *spec = getenv("SLUICE_FAILPOINTS");
  return spec ? sl_failpoints_arm(spec, err) : 0;
}

/* One write(2): the line must be out before a SIGKILL, and stdio buffers
 * are exactly what a crash does not flush. */
static void announce(const char *name, const char *what, unsigned long hit) {
  char line[256];
  int n =
      snprintf(line, sizeof(line), "sluice: failpoint %s fired: %s (hit %lu)\n",
               name, what, hit);
  if (n > 0) {
    ssize_t w = write(2, line, (size_t)SL_MIN((size_t)n, sizeof(line) - 1));
    (void)w;
  }
}

int sl_failpoint_hit(const char *name) {
  if (!find_info(name, strlen(name))) {
    char line[200];
    int n =
        snprintf(line, sizeof(line),
                 "sluice: failpoint '%s' is not in sl_failpoint_list\n", name);
    ssize_t w = write(2, line, (size_t)SL_MIN((size_t)n, sizeof(line) - 1));
    (void)w;
    abort();
  }
  for (size_t i = 0; i < narmed; i++) {
    struct fp_armed *a = &armed[i];
    if (strcmp(a->name, name) != 0)
      continue;
    unsigned long hit = atomic_fetch_add(&a->hits, 1) + 1;
    if (a->nth && hit != a->nth)
      continue;
    char what[48];
    switch (a->action) {
    case FP_CRASH:
      announce(name, "crash", hit);
      kill(getpid(), SIGKILL);
      _exit(137); /* not reached */
    case FP_STOP:
      announce(name, "stop", hit);
      raise(SIGSTOP);
      break;
    case FP_SLEEP: {
      snprintf(what, sizeof(what), "sleep(%ld)", a->arg);
      announce(name, what, hit);
      struct timespec ts = {a->arg / 1000, (a->arg % 1000) * 1000000L};
      while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
      break;
    }
    case FP_ERROR:
      if (errno_name(a->arg))
        snprintf(what, sizeof(what), "error(%s)", errno_name(a->arg));
      else
        snprintf(what, sizeof(what), "error(%ld)", a->arg);
      announce(name, what, hit);
      return (int)a->arg;
    }
  }
  return 0;
}

int sl_failpoint_at_hit(const char *prefix, const char *step) {
  char name[128];
  snprintf(name, sizeof(name), "%s.%s", prefix, step);
  return sl_failpoint_hit(name);
}

int sl_failpoint_err(const char *name, struct sl_error *err) {
  int e = sl_failpoint(name);
  if (!e)
    return 0;
  return sl_error_set(err, SL_ERR_IO, "failpoint %s: injected error: %s", name,
                      strerror(e));
}

void sl_failpoints_print(FILE *out) {
  int w = 0;
  for (const struct sl_failpoint_info *f = sl_failpoint_list; f->name; f++)
    w = SL_MAX(w, (int)strlen(f->name));
  for (const struct sl_failpoint_info *f = sl_failpoint_list; f->name; f++)
    fprintf(out, "%-*s %s\n", w, f->name, f->step);
}
