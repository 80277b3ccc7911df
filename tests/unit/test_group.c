/*
 * test_group.c - group mode's engine side (src/group.c) through
 * sl_engine_run, with a fake source whose "membership" follows a script
 * and a fake sink that claims, releases, keeps a position per partition
 * and can refuse one commit as fenced.
 *
 * Two partitions of 100 records each. The script, one step per poll of
 * the membership (the engine polls before every plan):
 *   1. both partitions are assigned; the sink holds p0 at 10 (as if
 *      another instance had committed it), nothing for p1;
 *   2. once two batches are committed, p1 is revoked;
 *   3. once p0 is at its end, p1 comes back, the sink now holding it at
 *      60 (another owner went on meanwhile), and the next commit is
 *      refused as fenced;
 *   4. once both are at their ends, the job is asked to stop.
 * The sink commits beside the next batch's reads (overlap), with a pause,
 * so that a revocation finds a commit in flight. Checked: claim before
 * positions at every assignment, release only once no commit is running
 * and the last begun is done, every record at most once and exactly the
 * expected ones, the fenced batch closed in the checkpoint as abandoned,
 * no record of it in the sink. Metrics and /ready are the real-broker
 * tests' (it.real.group_*).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "src/engine.h"
#include "src/pipeline.h"
#include "src/plugin.h"

#define TOPIC   "t"
#define RECORDS 100

static const struct sl_retry quick = {.attempts = 3,
                                      .backoff_ns = 1000000,
                                      .max_backoff_ns = 1000000,
                                      .max_elapsed_ns = 60 * 1000000000LL};

/* ------------------------------------------------------ what happened */

static struct {
  pthread_mutex_t mu;
  int64_t pos[2]; /* the sink's position; -1 none */
  int seen[2][RECORDS];
  uint64_t committed; /* batches committed */
  bool owned[2];
  int step;
  bool fence_next;
  uint64_t fenced_batch;
  int64_t revoked_at; /* p1's position when it was revoked */
  atomic_int commit_running;
  atomic_uint_least64_t began, done; /* the last commit begun, and ended */
  int claims, releases, bad;
  char why[256];
  char log[4096];
  char dir[600];           /* the checkpoint directory */
  uint64_t released_after; /* the batch whose commits/N release saw */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void bad(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (!g.bad++)
    vsnprintf(g.why, sizeof(g.why), fmt, ap);
  va_end(ap);
}

static void note(const char *what) {
  size_t n = strlen(g.log);
  snprintf(g.log + n, sizeof(g.log) - n, "%s;", what);
}

/* ----------------------------------------------------------- the source */

static int src_init(struct sl_source *src, struct sl_error *err) {
  (void)src;
  (void)err;
  return 0;
}

static int src_watermarks(struct sl_source *src, struct sl_plan *out,
                          struct sl_error *err) {
  (void)src;
  (void)err;
  for (int p = 0; p < 2; p++)
    if (g.owned[p])
      sl_plan_add(out, TOPIC, p, 0, RECORDS);
  return 0;
}

static int src_start_offset(struct sl_source *src, const struct sl_range *wm,
                            int64_t *out, struct sl_error *err) {
  (void)src;
  (void)err;
  *out = wm->start;
  return 0;
}

struct reader {
  char text[RECORDS][32];
};

static int src_reader_new(struct sl_source *src, int worker, void **reader,
                          struct sl_error *err) {
  (void)src;
  (void)worker;
  (void)err;
  *reader = calloc(1, sizeof(struct reader));
  return *reader ? 0 : SL_ERR_NOMEM;
}

static int src_read(void *reader, const struct sl_range *r, int64_t *pos,
                    struct sl_batch *out, struct sl_error *err) {
  struct reader *rd = reader;
  (void)err;
  int64_t n = r->end - *pos;
  sl_batch_reserve(out, (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    int len = snprintf(rd->text[i], sizeof(rd->text[i]), "%lld",
                       (long long)(*pos + i));
    out->recs[i] = (struct sl_record){.value = rd->text[i],
                                      .value_len = (size_t)len,
                                      .topic = r->topic,
                                      .partition = r->partition,
                                      .offset = *pos + i};
  }
  out->n = (size_t)n;
  *pos += n;
  return 0;
}

static const char *src_describe(struct sl_source *src) {
  (void)src;
  return "group-fake";
}

static void src_destroy(struct sl_source *src) {
  (void)src;
}

static const char *src_conf_group(const void *conf) {
  (void)conf;
  return "g";
}

static void *member(void *arg) {
  return arg;
}

static void src_info(struct sl_source *src, struct sl_source_info *out) {
  static const char *const topics[] = {TOPIC};
  (void)src;
  *out = (struct sl_source_info){.plugin = "fake",
                                 .topics = topics,
                                 .ntopics = 1,
                                 .group_id = "g",
                                 .group_metadata = member,
                                 .group_arg = &g};
}

static void one(struct sl_plan *p, int part) {
  sl_plan_add(p, TOPIC, part, 0, 0);
}

static int src_group_poll(struct sl_source *src, const struct sl_group_hooks *h,
                          struct sl_error *err) {
  (void)src;
  struct sl_plan p = {0};
  int rc = 0;
  pthread_mutex_lock(&g.mu);
  int64_t p0 = g.pos[0], p1 = g.pos[1];
  uint64_t committed = g.committed;
  pthread_mutex_unlock(&g.mu);
  switch (g.step) {
  case 0:
    one(&p, 0);
    one(&p, 1);
    g.owned[0] = g.owned[1] = true;
    g.step = 1;
    note("assign 0,1");
    rc = h->assigned(h->arg, &p, err);
    break;
  case 1:
    if (committed < 2)
      break;
    one(&p, 1);
    note("revoke 1");
    h->revoked(h->arg, &p, false);
    g.owned[1] = false;
    pthread_mutex_lock(&g.mu);
    g.revoked_at = g.pos[1];
    pthread_mutex_unlock(&g.mu);
    g.step = 2;
    break;
  case 2:
    if (p0 != RECORDS)
      break;
    pthread_mutex_lock(&g.mu);
    if (g.pos[1] < 60)
      g.pos[1] = 60; /* another owner committed up to 60 */
    g.fence_next = true;
    pthread_mutex_unlock(&g.mu);
    one(&p, 1);
    g.owned[1] = true;
    g.step = 3;
    note("assign 1");
    rc = h->assigned(h->arg, &p, err);
    break;
  case 3:
    if (p0 == RECORDS && p1 == RECORDS) {
      g.step = 4;
      note("stop");
      sl_engine_request_stop();
    }
    break;
  default:
    break;
  }
  sl_plan_clear(&p);
  return rc;
}

static const struct sl_source_plugin group_source = {
    .name = "fake",
    .conf_size = sizeof(struct sl_source_common),
    .init = src_init,
    .watermarks = src_watermarks,
    .start_offset = src_start_offset,
    .reader_new = src_reader_new,
    .read = src_read,
    .reader_free = free,
    .describe = src_describe,
    .info = src_info,
    .destroy = src_destroy,
    .conf_group = src_conf_group,
    .group_poll = src_group_poll,
};

/* ------------------------------------------------------------- the sink */

struct stage {
  uint64_t batch;
  int32_t part[RECORDS * 2];
  int64_t off[RECORDS * 2];
  size_t n;
};

static int snk_init(struct sl_sink *sink, struct sl_error *err) {
  (void)sink;
  (void)err;
  return 0;
}

static int snk_stage_open(struct sl_sink *sink, uint64_t batch, uint32_t task,
                          void **stage, struct sl_error *err) {
  (void)sink;
  (void)task;
  (void)err;
  struct stage *s = calloc(1, sizeof(*s));
  if (!s)
    return SL_ERR_NOMEM;
  s->batch = batch;
  *stage = s;
  return 0;
}

static int snk_stage_write(void *stage, const struct sl_batch *b,
                           struct sl_rejects *rejects, struct sl_error *err) {
  struct stage *s = stage;
  (void)rejects;
  (void)err;
  for (size_t i = 0; i < b->n && s->n < RECORDS * 2; i++) {
    s->part[s->n] = b->recs[i].partition;
    s->off[s->n++] = b->recs[i].offset;
  }
  return 0;
}

static int snk_stage_close(void *stage, struct sl_error *err) {
  (void)stage;
  (void)err;
  return 0;
}

static void snk_stage_free(struct sl_sink *sink, void *stage) {
  (void)sink;
  free(stage);
}

/* @locality the committer thread (overlap) */
static int snk_commit(struct sl_sink *sink, const struct sl_plan *plan,
                      void *const *stages, size_t n, struct sl_error *err) {
  (void)sink;
  atomic_store(&g.began, plan->batch);
  atomic_store(&g.commit_running, 1);
  struct timespec ts = {0, 20 * 1000000}; /* a commit takes a while */
  nanosleep(&ts, NULL);
  pthread_mutex_lock(&g.mu);
  int rc = 0;
  if (g.fence_next) {
    g.fence_next = false;
    g.fenced_batch = plan->batch;
    rc = sl_error_setf(err, SL_ERR_FENCED, 0, "fenced: injected, batch %llu",
                       (unsigned long long)plan->batch);
  } else {
    for (size_t k = 0; k < n; k++) {
      const struct stage *s = stages[k];
      for (size_t i = 0; i < s->n; i++) {
        int p = s->part[i];
        int64_t o = s->off[i];
        if (p < 0 || p > 1 || o < 0 || o >= RECORDS)
          bad("record %d/%lld", p, (long long)o);
        else if (o < g.pos[p])
          bad("batch %llu writes %d/%lld below the sink's position %lld",
              (unsigned long long)plan->batch, p, (long long)o,
              (long long)g.pos[p]);
        else
          g.seen[p][o]++;
      }
    }
    for (size_t i = 0; i < plan->n; i++) {
      const struct sl_range *r = &plan->ranges[i];
      if (r->partition >= 0 && r->partition < 2 && r->end > g.pos[r->partition])
        g.pos[r->partition] = r->end;
    }
    g.committed++;
  }
  pthread_mutex_unlock(&g.mu);
  atomic_store(&g.commit_running, 0);
  atomic_store(&g.done, plan->batch);
  return rc;
}

static int snk_positions(struct sl_sink *sink, const struct sl_source_info *src,
                         struct sl_plan *out, struct sl_error *err) {
  (void)sink;
  (void)src;
  (void)err;
  if (atomic_load(&g.commit_running))
    bad("positions read while a commit runs");
  note("positions");
  pthread_mutex_lock(&g.mu);
  for (int p = 0; p < 2; p++)
    if (g.pos[p] >= 0)
      sl_plan_add(out, TOPIC, p, g.pos[p], g.pos[p]);
  pthread_mutex_unlock(&g.mu);
  return 0;
}

static int snk_claim(struct sl_sink *sink, const struct sl_plan *parts,
                     struct sl_error *err) {
  (void)sink;
  (void)parts;
  (void)err;
  if (atomic_load(&g.commit_running))
    bad("claim while a commit runs");
  note("claim");
  g.claims++;
  return 0;
}

static void snk_release(struct sl_sink *sink, const struct sl_plan *parts) {
  (void)sink;
  (void)parts;
  /* The revocation comes at the poll right after a batch's commit began
   * beside the next reads (every batch overruns its interval), so that
   * batch is in flight: only the engine's finishing it writes its
   * commits/N, which must be there before the release. */
  uint64_t b = atomic_load(&g.began);
  char path[700];
  struct stat sb;
  snprintf(path, sizeof(path), "%s/commits/%llu", g.dir, (unsigned long long)b);
  if (atomic_load(&g.commit_running) || b != atomic_load(&g.done) ||
      stat(path, &sb) != 0)
    bad("release before batch %llu's commit was finished",
        (unsigned long long)b);
  g.released_after = b;
  note("release");
  g.releases++;
}

static const char *snk_describe(struct sl_sink *sink) {
  (void)sink;
  return "group-fake";
}

static void snk_destroy(struct sl_sink *sink) {
  (void)sink;
}

static const struct sl_sink_plugin group_sink = {
    .name = "fake",
    .conf_size = sizeof(struct sl_sink_common),
    .flags = SL_SINK_EXACTLY_ONCE | SL_SINK_STAGE_DURING_COMMIT,
    .init = snk_init,
    .positions = snk_positions,
    .stage_open = snk_stage_open,
    .stage_write = snk_stage_write,
    .stage_close = snk_stage_close,
    .commit = snk_commit,
    .stage_free = snk_stage_free,
    .describe = snk_describe,
    .destroy = snk_destroy,
    .claim = snk_claim,
    .release = snk_release,
};

/* ------------------------------------------------------------- the test */

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void rebalances_fences_and_positions(void **state) {
  (void)state;
  char root[512], dir[600];
  const char *tmp = getenv("TMPDIR");
  snprintf(root, sizeof(root), "%s/sl-group-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(root));
  snprintf(dir, sizeof(dir), "%s/ck", root);
  snprintf(g.dir, sizeof(g.dir), "%s", dir);
  g.pos[0] = 10; /* another instance committed p0 up to 10 */
  g.pos[1] = -1;
  struct sl_source_common sc = {.max_records_per_batch = 30,
                                .task_max_records = 15,
                                .max_record_bytes = 1 << 20,
                                .retry = quick};
  struct sl_sink_common kc = {.retry = quick};
  struct sl_job job = {0};
  struct sl_error err = {0};
  job.id = "group-test";
  job.source_plugin = &group_source;
  job.source_conf = &sc;
  job.sink_plugin = &group_sink;
  job.sink_conf = &kc;
  assert_int_equal(sl_pipeline_compile(NULL, &job.pipeline, &err), 0);
  job.on_error = SL_ON_ERROR_FAIL;
  job.trigger.interval_ns = 1; /* every batch overruns: commits beside */
  job.checkpoint.dir = dir;
  job.checkpoint.retain = 1000;
  job.workers = 2;
  job.task_attempts = 3;
  struct sl_run_opts opts = {.progress = SL_PROGRESS_NONE};
  int rc = sl_engine_run(&job, &opts, &err);
  if (rc)
    fail_msg("sl_engine_run: %s", err.msg);
  if (g.bad)
    fail_msg("%s (log: %s)", g.why, g.log);
  /* claim before positions at both assignments; one release */
  if (!strstr(g.log, "assign 0,1;claim;positions;") ||
      !strstr(g.log, "revoke 1;release;") ||
      !strstr(g.log, "assign 1;claim;positions;") || !strstr(g.log, "stop;"))
    fail_msg("unexpected order: %s", g.log);
  assert_int_equal(g.claims >= 2, true);
  assert_int_equal(g.releases, 1);
  assert_true(g.released_after >= 2);
  /* p0 from the sink's 10, p1 from 0 until it was revoked, then from 60 */
  assert_true(g.revoked_at > 0 && g.revoked_at < 60);
  for (int64_t o = 0; o < RECORDS; o++) {
    int want0 = o >= 10;
    int want1 = o < g.revoked_at || o >= 60;
    if (g.seen[0][o] != want0 || g.seen[1][o] != want1)
      fail_msg("record 0/%lld seen %d (want %d), 1/%lld seen %d (want %d)",
               (long long)o, g.seen[0][o], want0, (long long)o, g.seen[1][o],
               want1);
  }
  /* the fenced batch is closed in the checkpoint as abandoned */
  assert_true(g.fenced_batch > 0);
  char path[700], buf[4096] = "";
  snprintf(path, sizeof(path), "%s/commits/%llu", dir,
           (unsigned long long)g.fenced_batch);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  if (!strstr(buf, "abandoned: fenced"))
    fail_msg("%s: %s", path, buf);
  /* the directory was locked, with the pid */
  snprintf(path, sizeof(path), "%s/lock", dir);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  sl_pipeline_free(job.pipeline);
  nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rebalances_fences_and_positions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
