/*
 * test_engine.c - the coordinator through its public API: sl_engine_run
 * with a job built in memory, a fake source and a fake sink defined here
 * (src/plugin.h), and the checkpoint read back with sl_ckpt_*.
 *
 * The fake source serves partitions 0..parts-1 of topic "t", each with
 * records at offsets [0, records) whose value is {"p":P,"o":O}, in chunks
 * of `chunk` records; it can fail the first read of the range holding one
 * offset, once or every time, retriably or not. The fake sink stages
 * (partition, offset) pairs per task and commits them into a store keyed
 * by batch id, idempotent on the batch id like the real sinks, and reports
 * its last batch and end offsets for recovery; its commit can fail for one
 * batch, once or every time. The store lives in a MAP_SHARED mapping made
 * before any fork, and a commit becomes visible with one atomic store of
 * the batch id, so that a child killed at a crash point leaves exactly
 * what it committed for the parent to see.
 *
 * Streams (the continuous trigger) read the same records with no end,
 * the first half of each partition until the store holds a batch.
 *
 * Every test checks the outcome exactly: each record in the store once,
 * batch N holding exactly the ranges of offsets/N, commits/N for every
 * committed batch and none beyond, the number of batches and of commit
 * calls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/fsio.h"
#include "src/engine.h"
#include "src/failpoint.h"
#include "src/log.h"
#include "src/pipeline.h"
#include "src/plugin.h"

#define TOPIC       "t"
#define MAX_PARTS   8
#define MAX_TOTAL   4096 /* records over all partitions */
#define MAX_BATCHES 256
#define MAX_CHUNK   16

enum fault { FAULT_NONE, FAULT_ONCE, FAULT_ALWAYS };

/* ------------------------------------------------- the committed store */

struct srec {
  int32_t partition;
  int64_t offset;
};

struct sbatch {
  uint64_t first, n; /* records[first, first + n) */
  int64_t end[MAX_PARTS];
};

struct store {
  _Atomic uint64_t last; /* the newest committed batch: the publication */
  struct sbatch batches[MAX_BATCHES + 1];
  struct srec recs[MAX_TOTAL];
  /* What the plugins saw, for the assertions (also a child's). */
  atomic_int commit_calls[MAX_BATCHES + 1];
  atomic_int read_faults, commit_faults;
  atomic_int violations;
  char violation[256];
};

static struct store *g_store;

static void violation(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...) {
  if (atomic_fetch_add(&g_store->violations, 1) == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_store->violation, sizeof(g_store->violation), fmt, ap);
    va_end(ap);
  }
}

/* Takes the next hit of a fault: true when it fires. */
static bool fault_fires(enum fault mode, atomic_int *fired) {
  if (mode == FAULT_ALWAYS) {
    atomic_fetch_add(fired, 1);
    return true;
  }
  int zero = 0;
  return mode == FAULT_ONCE && atomic_compare_exchange_strong(fired, &zero, 1);
}

/* ------------------------------------------------------ the fake source */

struct fake_source_conf {
  struct sl_source_common common; /* first: the engine reads it */
  int parts;
  int64_t records; /* per partition */
  int64_t grow0;   /* more records in partition 0 */
  /* Odd offsets are not JSON (a parse: json pipeline makes them dead
   * letters). */
  bool odd_bad;
  int64_t chunk; /* records per read */
  /* The first read of the range that holds fail_offset of fail_partition
   * fails, as mode says. */
  enum fault fail_mode;
  bool fail_retriable;
  int32_t fail_partition;
  int64_t fail_offset;
};

struct fake_reader {
  char text[MAX_CHUNK][48];
  /* the continuous trigger's stream: partitions and where each stands */
  struct sl_range pos[MAX_PARTS];
  size_t npos, rr;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool woken;
};

static int64_t part_end(const struct fake_source_conf *c, int p) {
  return c->records + (p == 0 ? c->grow0 : 0);
}

static bool is_bad(const struct fake_source_conf *c, int64_t o) {
  return c->odd_bad && o % 2 == 1;
}

/* The records of p's ranges that reach the main sink. */
static int64_t good_records(const struct fake_source_conf *c,
                            const struct sl_plan *p) {
  int64_t n = 0;
  for (size_t i = 0; i < p->n; i++)
    for (int64_t o = p->ranges[i].start; o < p->ranges[i].end; o++)
      n += !is_bad(c, o);
  return n;
}

static int fsrc_init(struct sl_source *src, struct sl_error *err) {
  (void)err;
  src->ctx = src->conf;
  return 0;
}

static int fsrc_watermarks(struct sl_source *src, struct sl_plan *out,
                           struct sl_error *err) {
  const struct fake_source_conf *c = src->conf;
  (void)err;
  for (int p = 0; p < c->parts; p++)
    sl_plan_add(out, TOPIC, p, 0, part_end(c, p));
  return 0;
}

static int fsrc_start_offset(struct sl_source *src, const struct sl_range *wm,
                             int64_t *out, struct sl_error *err) {
  (void)src;
  (void)err;
  *out = wm->start;
  return 0;
}

static int fsrc_reader_new(struct sl_source *src, int worker, void **reader,
                           struct sl_error *err) {
  (void)src;
  (void)worker;
  (void)err;
  struct fake_reader *rd = calloc(1, sizeof(struct fake_reader));
  if (!rd)
    return SL_ERR_NOMEM;
  pthread_mutex_init(&rd->mu, NULL);
  pthread_cond_init(&rd->cv, NULL);
  *reader = rd;
  return 0;
}

static const struct fake_source_conf *g_src; /* the running job's */

static int fsrc_read(void *reader, const struct sl_range *r, int64_t *pos,
                     struct sl_batch *out, struct sl_error *err) {
  struct fake_reader *rd = reader;
  const struct fake_source_conf *c = g_src;
  out->n = 0;
  if (strcmp(r->topic, TOPIC) != 0 || r->partition < 0 ||
      r->partition >= c->parts || r->start < 0 ||
      r->end > part_end(c, r->partition) || *pos < r->start || *pos >= r->end) {
    violation("read of %s[%d] %lld..%lld at %lld", r->topic, r->partition,
              (long long)r->start, (long long)r->end, (long long)*pos);
    return sl_error_set(err, SL_ERR_INVAL, "bad read");
  }
  if (r->partition == c->fail_partition && r->start <= c->fail_offset &&
      c->fail_offset < r->end && *pos == r->start &&
      fault_fires(c->fail_mode, &g_store->read_faults))
    return sl_error_setf(err, SL_ERR_SOURCE,
                         c->fail_retriable ? SL_ERR_RETRIABLE : SL_ERR_FATAL,
                         "injected read fault at %s[%d] %lld", r->topic,
                         r->partition, (long long)c->fail_offset);
  int64_t n = r->end - *pos;
  if (n > c->chunk)
    n = c->chunk;
  sl_batch_reserve(out, (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    int64_t o = *pos + i;
    int len = snprintf(rd->text[i], sizeof(rd->text[i]),
                       is_bad(c, o) ? "bad %d/%lld" : "{\"p\":%d,\"o\":%lld}",
                       r->partition, (long long)o);
    out->recs[i] = (struct sl_record){.value = rd->text[i],
                                      .value_len = (size_t)len,
                                      .topic = r->topic,
                                      .partition = r->partition,
                                      .offset = o,
                                      .timestamp = 1000 + o};
  }
  out->n = (size_t)n;
  *pos += n;
  return 0;
}

static void fsrc_reader_free(void *reader) {
  struct fake_reader *rd = reader;
  pthread_mutex_destroy(&rd->mu);
  pthread_cond_destroy(&rd->cv);
  free(reader);
}

/* Streams (the continuous trigger) see half of each partition until the
 * store holds a batch, then all of it: a run has at least two epochs. */
static int64_t stream_end(const struct fake_source_conf *c, int p) {
  return atomic_load(&g_store->last) >= 1 ? part_end(c, p) : part_end(c, p) / 2;
}

static int fsrc_stream_start(void *reader, const struct sl_range *from,
                             size_t n, struct sl_error *err) {
  struct fake_reader *rd = reader;
  if (n > MAX_PARTS)
    return sl_error_set(err, SL_ERR_INVAL, "too many partitions");
  for (size_t i = 0; i < n; i++) {
    if (strcmp(from[i].topic, TOPIC) != 0 || from[i].start < 0 ||
        from[i].start > part_end(g_src, from[i].partition))
      violation("stream of %s[%d] from %lld", from[i].topic, from[i].partition,
                (long long)from[i].start);
    rd->pos[i] = from[i];
  }
  rd->npos = n;
  return 0;
}

/* Up to `chunk` records, taken round the partitions; with none, waits for
 * a wake (or wait_ms). */
static int fsrc_stream_read(void *reader, int wait_ms, struct sl_batch *out,
                            struct sl_stream_mark **marks, size_t *nmarks,
                            struct sl_error *err) {
  struct fake_reader *rd = reader;
  const struct fake_source_conf *c = g_src;
  (void)err;
  out->n = 0;
  if (marks)
    *nmarks = 0;
  sl_batch_reserve(out, (size_t)c->chunk);
  for (size_t k = 0; k < rd->npos && out->n < (size_t)c->chunk; k++) {
    struct sl_range *p = &rd->pos[(rd->rr + k) % rd->npos];
    int64_t end = stream_end(c, p->partition);
    while (p->start < end && out->n < (size_t)c->chunk) {
      int64_t o = p->start++;
      size_t i = out->n++;
      int len = snprintf(rd->text[i], sizeof(rd->text[i]),
                         is_bad(c, o) ? "bad %d/%lld" : "{\"p\":%d,\"o\":%lld}",
                         p->partition, (long long)o);
      out->recs[i] = (struct sl_record){.value = rd->text[i],
                                        .value_len = (size_t)len,
                                        .topic = p->topic,
                                        .partition = p->partition,
                                        .offset = o,
                                        .timestamp = 1000 + o};
    }
  }
  rd->rr++;
  if (out->n)
    return 0;
  pthread_mutex_lock(&rd->mu);
  if (!rd->woken && wait_ms != 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(wait_ms < 0 ? 100 : wait_ms) * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&rd->cv, &rd->mu, &ts);
  }
  rd->woken = false;
  pthread_mutex_unlock(&rd->mu);
  return 0;
}

static void fsrc_stream_wake(void *reader) {
  struct fake_reader *rd = reader;
  pthread_mutex_lock(&rd->mu);
  rd->woken = true;
  pthread_cond_signal(&rd->cv);
  pthread_mutex_unlock(&rd->mu);
}

static void fsrc_stream_stop(void *reader) {
  ((struct fake_reader *)reader)->npos = 0;
}

static const char *fsrc_describe(struct sl_source *src) {
  (void)src;
  return "Fake[t]";
}

static void fsrc_destroy(struct sl_source *src) {
  src->ctx = NULL;
}

static const struct sl_source_plugin fake_source = {
    .name = "fake",
    .conf_size = sizeof(struct fake_source_conf),
    .init = fsrc_init,
    .watermarks = fsrc_watermarks,
    .start_offset = fsrc_start_offset,
    .reader_new = fsrc_reader_new,
    .read = fsrc_read,
    .reader_free = fsrc_reader_free,
    .stream_start = fsrc_stream_start,
    .stream_read = fsrc_stream_read,
    .stream_wake = fsrc_stream_wake,
    .stream_stop = fsrc_stream_stop,
    .describe = fsrc_describe,
    .destroy = fsrc_destroy,
};

/* -------------------------------------------------------- the fake sink */

struct fake_sink_conf {
  struct sl_sink_common common; /* first: the engine reads it */
  bool overlap; /* SL_SINK_STAGE_DURING_COMMIT: commits beside reads */
  /* The commit of fail_batch fails, as mode says. */
  uint64_t fail_batch;
  /* The process dies at once in the commit of this batch (for a child:
   * the dead letters, committed first, hold it; this sink does not). */
  uint64_t kill_in_commit;
  enum fault fail_mode;
  bool fail_retriable;
};

struct fake_stage {
  uint64_t batch;
  uint32_t task;
  bool closed;
  struct srec *recs;
  size_t n, cap;
};

static int fsink_init(struct sl_sink *sink, struct sl_error *err) {
  (void)err;
  sink->ctx = g_store;
  return 0;
}

static int fsink_last_committed(struct sl_sink *sink, uint64_t *batch,
                                struct sl_plan *end, struct sl_error *err) {
  (void)sink;
  (void)err;
  uint64_t last = atomic_load(&g_store->last);
  *batch = last;
  for (int p = 0; last && p < g_src->parts; p++)
    sl_plan_add(end, TOPIC, p, g_store->batches[last].end[p],
                g_store->batches[last].end[p]);
  return 0;
}

static int fsink_stage_open(struct sl_sink *sink, uint64_t batch, uint32_t task,
                            void **stage, struct sl_error *err) {
  (void)sink;
  (void)err;
  struct fake_stage *s = calloc(1, sizeof(*s));
  if (!s)
    return SL_ERR_NOMEM;
  s->batch = batch;
  s->task = task;
  *stage = s;
  return 0;
}

static int fsink_stage_write(void *stage, const struct sl_batch *b,
                             struct sl_rejects *rejects, struct sl_error *err) {
  struct fake_stage *s = stage;
  (void)rejects;
  (void)err;
  if (s->closed)
    violation("write to a closed stage of batch %" PRIu64, s->batch);
  for (size_t i = 0; i < b->n; i++) {
    const struct sl_record *r = &b->recs[i];
    char want[48];
    int len = snprintf(want, sizeof(want), "{\"p\":%d,\"o\":%lld}",
                       r->partition, (long long)r->offset);
    if (r->value_len != (size_t)len || memcmp(r->value, want, r->value_len))
      violation("record %d/%lld arrived as %.*s", r->partition,
                (long long)r->offset, (int)r->value_len, r->value);
    if (s->n == s->cap) {
      s->cap = s->cap ? s->cap * 2 : 16;
      s->recs = realloc(s->recs, s->cap * sizeof(*s->recs));
      if (!s->recs)
        abort();
    }
    s->recs[s->n++] = (struct srec){r->partition, r->offset};
  }
  return 0;
}

static int fsink_stage_close(void *stage, struct sl_error *err) {
  struct fake_stage *s = stage;
  (void)err;
  s->closed = true;
  return 0;
}

static const struct fake_sink_conf *g_snk; /* the running job's */

static int fsink_commit(struct sl_sink *sink, const struct sl_plan *plan,
                        void *const *stages, size_t n, struct sl_error *err) {
  uint64_t b = plan->batch;
  if (b == 0 || b > MAX_BATCHES) {
    violation("commit of batch %" PRIu64, b);
    return sl_error_set(err, SL_ERR_INVAL, "bad batch");
  }
  if (b == g_snk->kill_in_commit)
    raise(SIGKILL);
  atomic_fetch_add(&g_store->commit_calls[b], 1);
  if (b == g_snk->fail_batch &&
      fault_fires(g_snk->fail_mode, &g_store->commit_faults))
    return sl_error_setf(err, SL_ERR_SINK,
                         g_snk->fail_retriable ? SL_ERR_RETRIABLE
                                               : SL_ERR_FATAL,
                         "injected commit fault in batch %" PRIu64, b);
  uint64_t last = atomic_load(&g_store->last);
  if (b <= last)
    return 0; /* already committed: idempotent */
  if (b != last + 1)
    violation("commit of batch %" PRIu64 " after %" PRIu64, b, last);
  struct sbatch *sb = &g_store->batches[b];
  sb->first =
      last ? g_store->batches[last].first + g_store->batches[last].n : 0;
  sb->n = 0;
  for (size_t i = 0; i < n; i++) {
    const struct fake_stage *s = stages[i];
    if (s->batch != b || !s->closed ||
        (i && s->task <= ((const struct fake_stage *)stages[i - 1])->task))
      violation("batch %" PRIu64 " stage %zu: batch %" PRIu64
                ", task %u, closed %d",
                b, i, s->batch, s->task, s->closed);
    /* One range per partition, in order; gaps only where dead letters
     * went. A task reads one partition; a stream (continuous) several. */
    int64_t prev[MAX_PARTS];
    for (int p = 0; p < MAX_PARTS; p++)
      prev[p] = -1;
    for (size_t k = 0; k < s->n; k++) {
      int32_t p = s->recs[k].partition;
      int64_t o = s->recs[k].offset;
      bool bad = p < 0 || p >= MAX_PARTS ||
                 (!sink->run->continuous && k && p != s->recs[0].partition) ||
                 (prev[p] >= 0 &&
                  (o <= prev[p] || (!g_src->odd_bad && o != prev[p] + 1)));
      if (bad)
        violation("batch %" PRIu64 " task %u: records not one range", b,
                  s->task);
      else
        prev[p] = o;
      if (sb->first + sb->n >= MAX_TOTAL) {
        violation("store full");
        return sl_error_set(err, SL_ERR_INVAL, "store full");
      }
      g_store->recs[sb->first + sb->n++] = s->recs[k];
    }
  }
  for (size_t i = 0; i < plan->n; i++)
    if (plan->ranges[i].partition >= 0 && plan->ranges[i].partition < MAX_PARTS)
      sb->end[plan->ranges[i].partition] = plan->ranges[i].end;
  atomic_store(&g_store->last, b); /* visible, all at once */
  return 0;
}

static void fsink_stage_free(struct sl_sink *sink, void *stage) {
  struct fake_stage *s = stage;
  (void)sink;
  if (!s)
    return;
  free(s->recs);
  free(s);
}

static const char *fsink_describe(struct sl_sink *sink) {
  (void)sink;
  return "Fake";
}

static void fsink_destroy(struct sl_sink *sink) {
  sink->ctx = NULL;
}

static unsigned fsink_conf_flags(const void *conf) {
  const struct fake_sink_conf *c = conf;
  return SL_SINK_EXACTLY_ONCE | (c->overlap ? SL_SINK_STAGE_DURING_COMMIT : 0);
}

static const struct sl_sink_plugin fake_sink = {
    .name = "fake",
    .conf_size = sizeof(struct fake_sink_conf),
    .flags = SL_SINK_EXACTLY_ONCE,
    .init = fsink_init,
    .last_committed = fsink_last_committed,
    .stage_open = fsink_stage_open,
    .stage_write = fsink_stage_write,
    .stage_close = fsink_stage_close,
    .commit = fsink_commit,
    .stage_free = fsink_stage_free,
    .describe = fsink_describe,
    .destroy = fsink_destroy,
    .conf_flags = fsink_conf_flags,
};

/* ------------------------------------------------------------- the rig */

struct rig {
  char root[512];
  char ckdir[600];
  char id[32];
  char dlpath[700]; /* the dead letters' file sink, when set */
  void *dl_conf;
  struct sl_cfg_node *tree; /* the pipeline's, when compiled from YAML */
  struct fake_source_conf src;
  struct fake_sink_conf snk;
  struct sl_job job;
};

static const struct sl_retry quick_retry = {.attempts = 3,
                                            .backoff_ns = 1000000,
                                            .max_backoff_ns = 1000000,
                                            .max_elapsed_ns =
                                                600 * 1000000000LL};

/* parts partitions of `records` records, batches of at most max_batch,
 * tasks of at most task_max, two workers, available-now. */
static struct rig *rig_new(int parts, int64_t records, int64_t max_batch,
                           int64_t task_max, bool overlap) {
  struct rig *r = calloc(1, sizeof(*r));
  assert_non_null(r);
  const char *tmp = getenv("TMPDIR");
  snprintf(r->root, sizeof(r->root), "%s/sl-engine-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(r->root));
  snprintf(r->ckdir, sizeof(r->ckdir), "%s/ck", r->root);
  snprintf(r->id, sizeof(r->id), "engine-test");
  assert_true(parts <= MAX_PARTS && parts * records <= MAX_TOTAL);
  r->src =
      (struct fake_source_conf){.common = {.max_records_per_batch = max_batch,
                                           .task_max_records = task_max,
                                           .max_record_bytes = 1 << 20,
                                           .retry = quick_retry},
                                .parts = parts,
                                .records = records,
                                .chunk = 4,
                                .fail_partition = -1,
                                .fail_offset = -1};
  r->snk = (struct fake_sink_conf){.common = {.retry = quick_retry},
                                   .overlap = overlap};
  struct sl_error err = {0};
  struct sl_job *j = &r->job;
  j->id = r->id;
  j->source_plugin = &fake_source;
  j->source_conf = &r->src;
  j->sink_plugin = &fake_sink;
  j->sink_conf = &r->snk;
  assert_int_equal(sl_pipeline_compile(NULL, &j->pipeline, &err), 0);
  j->on_error = SL_ON_ERROR_FAIL;
  j->trigger.available_now = true;
  j->checkpoint.dir = r->ckdir;
  j->checkpoint.retain = 1000; /* nothing pruned: every file is checked */
  j->workers = 2;
  j->task_attempts = 3;
  g_src = &r->src;
  g_snk = &r->snk;
  memset(g_store, 0, sizeof(*g_store));
  return r;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* `parse: json` and dead letters in a file sink (the real one, configured
 * through its config_map): odd offsets become dead letters. */
static void rig_dead_letters(struct rig *r) {
  const char *yaml = "pipeline:\n  - parse: json\n";
  struct sl_error err = {0};
  r->tree = sl_cfg_load_string("job.yaml", yaml, strlen(yaml), &err);
  assert_non_null(r->tree);
  sl_pipeline_free(r->job.pipeline);
  assert_int_equal(sl_pipeline_compile(sl_cfg_get(r->tree, "pipeline"),
                                       &r->job.pipeline, &err),
                   0);
  const struct sl_sink_plugin *pl = sl_sink_find("file");
  assert_non_null(pl);
  r->dl_conf = calloc(1, pl->conf_size);
  assert_non_null(r->dl_conf);
  ((struct sl_sink_common *)r->dl_conf)->retry = quick_retry;
  snprintf(r->dlpath, sizeof(r->dlpath), "%s/dead", r->root);
  for (const struct sl_cfg_field *f = pl->config_map; f->key; f++)
    if (strcmp(f->key, "path") == 0)
      *(char **)((char *)r->dl_conf + f->offset) = r->dlpath;
  r->job.dl_plugin = pl;
  r->job.dl_conf = r->dl_conf;
  r->job.on_error = SL_ON_ERROR_DEAD_LETTER;
  r->src.odd_bad = true;
}

static void rig_free(struct rig *r) {
  sl_pipeline_free(r->job.pipeline);
  sl_cfg_free(r->tree);
  free(r->dl_conf);
  nftw(r->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(r);
}

static int run(struct rig *r, struct sl_error *err) {
  struct sl_run_opts opts = {.progress = SL_PROGRESS_NONE};
  memset(err, 0, sizeof(*err));
  return sl_engine_run(&r->job, &opts, err);
}

static void run_ok(struct rig *r) {
  struct sl_error err;
  if (run(r, &err))
    fail_msg("sl_engine_run: %s", err.msg);
}

static bool ck_file(const struct rig *r, const char *log, uint64_t batch) {
  char path[700];
  struct stat sb;
  snprintf(path, sizeof(path), "%s/%s/%" PRIu64, r->ckdir, log, batch);
  return stat(path, &sb) == 0;
}

/* The checkpoint in dir, through the checkpoint API. */
static struct sl_ckpt_state scan_dir(const char *dir, const char *id) {
  struct sl_ckpt *ck;
  struct sl_ckpt_state st = {0};
  struct sl_error err = {0};
  if (sl_ckpt_open(dir, id, &ck, &err) || sl_ckpt_scan(ck, &st, &err))
    fail_msg("checkpoint %s: %s", dir, err.msg);
  sl_ckpt_close(ck);
  return st;
}

static void read_offsets_dir(const char *dir, const char *id, uint64_t batch,
                             struct sl_plan *p) {
  struct sl_ckpt *ck;
  struct sl_error err = {0};
  if (sl_ckpt_open(dir, id, &ck, &err) ||
      sl_ckpt_read_offsets(ck, batch, p, &err))
    fail_msg("%s offsets/%" PRIu64 ": %s", dir, batch, err.msg);
  sl_ckpt_close(ck);
}

static struct sl_ckpt_state ck_scan(const struct rig *r) {
  return scan_dir(r->ckdir, r->id);
}

static void read_offsets(const struct rig *r, uint64_t batch,
                         struct sl_plan *p) {
  read_offsets_dir(r->ckdir, r->id, batch, p);
}

/* Copies the tree under copy_from to copy_to (files and directories), so
 * that a crashed checkpoint can be read without opening it: opening
 * removes temporary files, which is the engine's recovery to do. */
static const char *copy_from, *copy_to;

static int copy_entry(const char *path, const struct stat *sb, int flag,
                      struct FTW *ftw) {
  (void)ftw;
  char dst[1024];
  snprintf(dst, sizeof(dst), "%s%s", copy_to, path + strlen(copy_from));
  if (flag == FTW_D)
    return mkdir(dst, 0700) == 0 || errno == EEXIST ? 0 : -1;
  if (flag != FTW_F)
    return 0;
  FILE *in = fopen(path, "rb"), *out = fopen(dst, "wb");
  int rc = in && out ? 0 : -1;
  char buf[4096];
  size_t n;
  while (!rc && (n = fread(buf, 1, sizeof(buf), in)) > 0)
    rc = fwrite(buf, 1, n, out) == n ? 0 : -1;
  if (in)
    fclose(in);
  if (out && fclose(out))
    rc = -1;
  (void)sb;
  return rc;
}

static void copy_tree(const char *from, const char *to) {
  struct stat sb;
  copy_from = from;
  copy_to = to;
  if (stat(from, &sb) != 0)
    return; /* nothing was created */
  assert_int_equal(nftw(from, copy_entry, 16, FTW_PHYS), 0);
}

static void assert_no_violation(void) {
  if (atomic_load(&g_store->violations))
    fail_msg("%d violations, the first: %s", atomic_load(&g_store->violations),
             g_store->violation);
}

/* Every batch 1..S the sink holds is exactly the ranges of its offsets/N,
 * each record at most once, and the plans follow on from each other. */
static void check_store_matches_wal_in(const char *dir, const char *id,
                                       int parts, uint64_t upto) {
  static bool seen[MAX_PARTS][MAX_TOTAL];
  int64_t pos[MAX_PARTS] = {0};
  memset(seen, 0, sizeof(seen));
  assert_no_violation();
  for (uint64_t b = 1; b <= upto; b++) {
    struct sl_plan p = {0};
    read_offsets_dir(dir, id, b, &p);
    assert_int_equal(p.batch, b);
    assert_int_equal(p.n, (size_t)parts);
    const struct sbatch *sb = &g_store->batches[b];
    assert_int_equal(sb->n, (uint64_t)good_records(g_src, &p));
    for (size_t i = 0; i < p.n; i++) {
      const struct sl_range *rg = &p.ranges[i];
      assert_string_equal(rg->topic, TOPIC);
      assert_int_equal(rg->partition, (int32_t)i);
      assert_int_equal(rg->start, pos[i]); /* starts where the last ended */
      assert_int_equal(sb->end[i], rg->end);
      pos[i] = rg->end;
    }
    for (uint64_t k = sb->first; k < sb->first + sb->n; k++) {
      const struct srec *x = &g_store->recs[k];
      const struct sl_range *rg = sl_plan_find(&p, TOPIC, x->partition);
      if (!rg || x->offset < rg->start || x->offset >= rg->end ||
          is_bad(g_src, x->offset))
        fail_msg("batch %" PRIu64 " holds %d/%lld outside offsets/%" PRIu64, b,
                 x->partition, (long long)x->offset, b);
      if (seen[x->partition][x->offset])
        fail_msg("record %d/%lld committed twice", x->partition,
                 (long long)x->offset);
      seen[x->partition][x->offset] = true;
    }
    if (b > 1)
      assert_int_equal(sb->first, g_store->batches[b - 1].first +
                                      g_store->batches[b - 1].n);
    sl_plan_clear(&p);
  }
}

static void check_store_matches_wal(const struct rig *r, uint64_t upto) {
  check_store_matches_wal_in(r->ckdir, r->id, r->src.parts, upto);
}

/* The job ran to the end: every record exactly once in batches 1..N (N ==
 * batches when batches > 0), commits/1..N and offsets/1..N, nothing
 * after. */
static uint64_t check_exact(const struct rig *r, uint64_t batches) {
  uint64_t last = atomic_load(&g_store->last);
  if (batches)
    assert_int_equal(last, batches);
  check_store_matches_wal(r, last);
  uint64_t total =
      last ? g_store->batches[last].first + g_store->batches[last].n : 0;
  struct sl_plan all = {0};
  for (int p = 0; p < r->src.parts; p++)
    sl_plan_add(&all, TOPIC, p, 0, part_end(&r->src, p));
  assert_int_equal(total, (uint64_t)good_records(&r->src, &all));
  sl_plan_clear(&all);
  for (int p = 0; p < r->src.parts; p++)
    assert_int_equal(g_store->batches[last].end[p], part_end(&r->src, p));
  struct sl_ckpt_state st = ck_scan(r);
  assert_int_equal(st.last_commit, last);
  assert_int_equal(st.last_offsets, last);
  for (uint64_t b = 1; b <= last; b++) {
    assert_true(ck_file(r, "offsets", b));
    assert_true(ck_file(r, "commits", b));
  }
  assert_false(ck_file(r, "offsets", last + 1));
  assert_false(ck_file(r, "commits", last + 1));
  return last;
}

static void assert_commit_calls(uint64_t batch, int n) {
  if (atomic_load(&g_store->commit_calls[batch]) != n)
    fail_msg("batch %" PRIu64 ": %d commit calls, expected %d", batch,
             atomic_load(&g_store->commit_calls[batch]), n);
}

/* ------------------------------------------------------------ the tests */

/* 3 partitions of 10 records, batches of 8, tasks of 3: 4 batches. */
static void clean_run(bool overlap) {
  struct rig *r = rig_new(3, 10, 8, 3, overlap);
  run_ok(r);
  check_exact(r, 4);
  for (uint64_t b = 1; b <= 4; b++) {
    assert_commit_calls(b, 1);
    struct sl_plan p = {0};
    read_offsets(r, b, &p);
    assert_int_equal(sl_plan_records(&p), b < 4 ? 8 : 6);
    assert_int_equal(p.task_max_records, 3);
    sl_plan_clear(&p);
  }
  /* Run again: nothing new below the watermarks, nothing happens. */
  run_ok(r);
  check_exact(r, 4);
  assert_commit_calls(5, 0);
  rig_free(r);
}

static void test_clean_run(void **state) {
  (void)state;
  clean_run(true);
}

static void test_clean_run_serial(void **state) {
  (void)state;
  clean_run(false);
}

/* One partition, one batch, one task per record range of 1: the smallest
 * shapes still work, and the task ids follow the ranges. */
static void test_single_records(void **state) {
  (void)state;
  struct rig *r = rig_new(1, 5, 2, 1, true);
  run_ok(r);
  check_exact(r, 3);
  rig_free(r);
}

/* A read fails retriably once: the task runs again and the batch commits
 * once. */
static void test_task_retriable_once(void **state) {
  (void)state;
  struct rig *r = rig_new(3, 10, 8, 3, true);
  r->src.fail_mode = FAULT_ONCE;
  r->src.fail_retriable = true;
  r->src.fail_partition = 1;
  r->src.fail_offset = 5;
  run_ok(r);
  assert_int_equal(atomic_load(&g_store->read_faults), 1);
  check_exact(r, 4);
  for (uint64_t b = 1; b <= 4; b++)
    assert_commit_calls(b, 1);
  rig_free(r);
}

/* After batch n failed: batches 1..n-1 committed (commits/ and the
 * store), nothing of n in the store, no commits/n, nothing planned after
 * n; offsets/n written when `planned` (then read into *plan). */
static void check_failed_batch(const struct rig *r, uint64_t n, bool planned,
                               struct sl_plan *plan) {
  struct sl_ckpt_state st = ck_scan(r);
  assert_int_equal(st.last_commit, n - 1);
  assert_int_equal(st.last_offsets, planned ? n : n - 1);
  assert_int_equal(atomic_load(&g_store->last), n - 1);
  assert_int_equal(ck_file(r, "offsets", n), planned);
  assert_false(ck_file(r, "commits", n));
  assert_false(ck_file(r, "offsets", n + 1));
  check_store_matches_wal(r, n - 1);
  if (planned)
    read_offsets(r, n, plan);
}

/* A read of partition p at offset o fails for good: the job stops with
 * the error and nothing of its batch n is committed. offsets/n stays
 * written, unless n's reads ran beside the commit of n-1 (a sink with
 * SL_SINK_STAGE_DURING_COMMIT, n > 1): offsets/n is written only after
 * those reads, so it never is. The next run re-runs n (with the same
 * ranges when they were written) and ends exact. */
static void task_fails(bool retriable, bool overlap, int32_t p, int64_t o,
                       uint64_t n) {
  struct rig *r = rig_new(3, 10, 8, 3, overlap);
  r->src.fail_mode = FAULT_ALWAYS;
  r->src.fail_retriable = retriable;
  r->src.fail_partition = p;
  r->src.fail_offset = o;
  struct sl_error err;
  assert_int_not_equal(run(r, &err), 0);
  if (!strstr(err.msg, "injected read fault"))
    fail_msg("error: %s", err.msg);
  /* A retriable failure is tried task_attempts times, a fatal one once. */
  assert_int_equal(atomic_load(&g_store->read_faults), retriable ? 3 : 1);
  bool planned = !overlap || n == 1;
  struct sl_plan plan = {0};
  check_failed_batch(r, n, planned, &plan);
  assert_commit_calls(n, 0);
  /* Cleared: the same batch, then the rest. */
  r->src.fail_mode = FAULT_NONE;
  run_ok(r);
  check_exact(r, 4);
  struct sl_plan again = {0};
  read_offsets(r, n, &again);
  const struct sl_range *rg = sl_plan_find(&again, TOPIC, p);
  assert_non_null(rg);
  assert_true(rg->start <= o && o < rg->end); /* the batch that failed */
  for (size_t i = 0; planned && i < plan.n; i++) {
    assert_int_equal(again.ranges[i].start, plan.ranges[i].start);
    assert_int_equal(again.ranges[i].end, plan.ranges[i].end);
  }
  assert_commit_calls(n, 1);
  sl_plan_clear(&plan);
  sl_plan_clear(&again);
  rig_free(r);
}

static void test_task_fails_retriable(void **state) {
  (void)state;
  task_fails(true, false, 2, 9, 4);
}

static void test_task_fails_fatal(void **state) {
  (void)state;
  task_fails(false, false, 2, 9, 4);
}

static void test_task_fails_beside_commit(void **state) {
  (void)state;
  task_fails(true, true, 2, 9, 4);
}

static void test_task_fails_first_batch(void **state) {
  (void)state;
  task_fails(false, true, 0, 0, 1);
}

/* A commit fails retriably once, then succeeds: committed once. */
static void test_commit_retriable_once(void **state) {
  (void)state;
  struct rig *r = rig_new(3, 10, 8, 3, true);
  r->snk.fail_batch = 2;
  r->snk.fail_mode = FAULT_ONCE;
  r->snk.fail_retriable = true;
  run_ok(r);
  assert_int_equal(atomic_load(&g_store->commit_faults), 1);
  check_exact(r, 4);
  assert_commit_calls(1, 1);
  assert_commit_calls(2, 2); /* the failed call and the retry */
  assert_commit_calls(3, 1);
  assert_commit_calls(4, 1);
  rig_free(r);
}

/* A commit fails for good: the error is returned, commits/N is absent,
 * offsets/N+1 was not written (whatever of N+1 ran beside the commit);
 * the rerun completes exactly. */
static void commit_fails(bool retriable, bool overlap) {
  struct rig *r = rig_new(3, 10, 8, 3, overlap);
  r->snk.fail_batch = 2;
  r->snk.fail_mode = FAULT_ALWAYS;
  r->snk.fail_retriable = retriable;
  struct sl_error err;
  assert_int_not_equal(run(r, &err), 0);
  if (!strstr(err.msg, "injected commit fault"))
    fail_msg("error: %s", err.msg);
  /* Retried within sink.retry (3 tries) when retriable, else once. */
  int calls = retriable ? 3 : 1;
  assert_int_equal(atomic_load(&g_store->commit_faults), calls);
  assert_commit_calls(2, calls);
  assert_commit_calls(3, 0);
  struct sl_plan plan = {0};
  check_failed_batch(r, 2, true, &plan);
  r->snk.fail_mode = FAULT_NONE;
  run_ok(r);
  check_exact(r, 4);
  assert_commit_calls(2, calls + 1);
  sl_plan_clear(&plan);
  rig_free(r);
}

static void test_commit_fails_retriable(void **state) {
  (void)state;
  commit_fails(true, true);
}

static void test_commit_fails_fatal(void **state) {
  (void)state;
  commit_fails(false, true);
}

static void test_commit_fails_serial(void **state) {
  (void)state;
  commit_fails(true, false);
}

/* A crash point and what the checkpoint and the sink must hold right
 * after the crash: S the sink's last batch, K the newest commits/, M the
 * newest offsets/ (-1: depends on the schedule). */
struct crash_case {
  const char *spec;
  int s, k, m;
};

static const struct crash_case crash_cases[] = {
    {"checkpoint.metadata.before_fsync=crash@1", 0, 0, 0},
    {"checkpoint.metadata.before_rename=crash@1", 0, 0, 0},
    {"checkpoint.metadata.before_dir_fsync=crash@1", 0, 0, 0},
    {"batch.planned=crash@1", 0, 0, 0},
    {"batch.planned=crash@2", 1, 1, 1},
    {"checkpoint.offsets.before_fsync=crash@2", 1, 1, 1},
    {"checkpoint.offsets.before_rename=crash@2", 1, 1, 1},
    {"checkpoint.offsets.before_dir_fsync=crash@2", 1, 1, 2},
    {"batch.after_offsets=crash@1", 0, 0, 1},
    {"batch.after_offsets=crash@2", 1, 1, 2},
    {"task.after_read=crash@1", 0, 0, 1},
    {"task.after_read=crash@5", -1, -1, -1},
    {"task.after_read=crash@11", -1, -1, -1},
    {"batch.after_reads=crash@2", 1, 1, 2},
    {"batch.after_sink_commit=crash@1", 1, 0, 1},
    {"batch.after_sink_commit=crash@3", 3, 2, 3},
    {"checkpoint.commits.before_fsync=crash@2", 2, 1, 2},
    {"checkpoint.commits.before_rename=crash@2", 2, 1, 2},
    {"checkpoint.commits.before_dir_fsync=crash@2", 2, 2, 2},
    {"batch.after_commit=crash@2", 2, 2, 2},
    {"batch.after_commit=crash@4", 4, 4, 4},
};

/* Runs the job in a child armed with spec, which must die by SIGKILL. */
static void crash_child(struct rig *r, const char *spec) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct sl_error err = {0};
    if (sl_failpoints_arm(spec, &err))
      _exit(3);
    _exit(run(r, &err) ? 2 : 0);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
    fail_msg("%s: the child was not killed by its crash point (%s %d)", spec,
             WIFSIGNALED(st) ? "signal" : "exit",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void crash_one(const struct crash_case *c, bool overlap) {
  struct rig *r = rig_new(3, 10, 8, 3, overlap);
  crash_child(r, c->spec);
  assert_false(sl_failpoints_armed); /* the child's arming stayed there */
  /* Read what the crash left from a copy: recovery gets it untouched. */
  char snap[700];
  snprintf(snap, sizeof(snap), "%s/snap", r->root);
  copy_tree(r->ckdir, snap);
  uint64_t s = atomic_load(&g_store->last);
  struct sl_ckpt_state st = scan_dir(snap, r->id);
  if (c->s >= 0 && (s != (uint64_t)c->s || st.last_commit != (uint64_t)c->k ||
                    st.last_offsets != (uint64_t)c->m))
    fail_msg("%s (overlap %d): after the crash S=%" PRIu64 " K=%" PRIu64
             " M=%" PRIu64 ", expected %d %d %d",
             c->spec, overlap, s, st.last_commit, st.last_offsets, c->s, c->k,
             c->m);
  /* Whatever the moment: the checkpoint never claims what the sink lacks,
   * the sink holds nothing that offsets/ does not plan, and what it holds
   * is exactly those plans. */
  if (st.last_commit > s || s > st.last_offsets || s > st.last_commit + 1)
    fail_msg("%s (overlap %d): S=%" PRIu64 " K=%" PRIu64 " M=%" PRIu64, c->spec,
             overlap, s, st.last_commit, st.last_offsets);
  check_store_matches_wal_in(snap, r->id, r->src.parts, s);
  int calls[MAX_BATCHES + 1];
  for (uint64_t b = 1; b <= s; b++)
    calls[b] = atomic_load(&g_store->commit_calls[b]);
  struct sl_plan wal[MAX_BATCHES + 1];
  memset(wal, 0, sizeof(wal));
  for (uint64_t b = 1; b <= st.last_offsets; b++)
    read_offsets_dir(snap, r->id, b, &wal[b]);
  /* Recovery in this process, on the same checkpoint and store, after
   * one partition grew while the job was down (so a fresh plan would cut
   * other ranges): a batch planned before the crash must run again with
   * its own ranges, not be planned afresh. */
  r->src.grow0 = 20;
  run_ok(r);
  check_exact(r, 0);
  /* What the sink held was not committed again (batch.after_sink_commit:
   * recovery completes commits/N from the sink's record). */
  for (uint64_t b = 1; b <= s; b++)
    if (atomic_load(&g_store->commit_calls[b]) != calls[b])
      fail_msg("%s (overlap %d): batch %" PRIu64 " committed again", c->spec,
               overlap, b);
  /* A batch planned before the crash kept its ranges (invariant 2). */
  for (uint64_t b = 1; b <= st.last_offsets; b++) {
    struct sl_plan p = {0};
    read_offsets(r, b, &p);
    assert_int_equal(p.n, wal[b].n);
    for (size_t i = 0; i < p.n; i++) {
      assert_int_equal(p.ranges[i].start, wal[b].ranges[i].start);
      assert_int_equal(p.ranges[i].end, wal[b].ranges[i].end);
    }
    sl_plan_clear(&p);
    sl_plan_clear(&wal[b]);
  }
  rig_free(r);
}

/* The dead letters' file sink: every manifest's listed part files hold
 * exactly the listed records and bytes, each a dead letter of a bad
 * record (odd offset) of the batch's ranges, none twice. With `complete`,
 * manifests 1..N of the main sink's N and every bad record once. */
static void check_dead_letters(const struct rig *r, bool complete) {
  static bool seen[MAX_PARTS][MAX_TOTAL];
  memset(seen, 0, sizeof(seen));
  uint64_t last = atomic_load(&g_store->last), nman = 0, top = 0;
  int64_t nbad = 0;
  for (uint64_t b = 1; b <= MAX_BATCHES; b++) {
    char path[1024];
    size_t len, body;
    char *data = NULL;
    struct sl_error err = {0};
    snprintf(path, sizeof(path), "%s/_manifest/%" PRIu64, r->dlpath, b);
    if (sl_fsio_read_file(path, &data, &len, &err))
      continue;
    nman++;
    top = b;
    if (sl_fsio_unseal(path, data, len, &body, &err))
      fail_msg("%s", err.msg);
    cJSON *m = cJSON_ParseWithLength(data, body);
    free(data);
    assert_non_null(m);
    struct sl_plan plan = {0};
    read_offsets(r, b, &plan);
    const cJSON *fi;
    cJSON_ArrayForEach(fi, cJSON_GetObjectItem(m, "files")) {
      snprintf(path, sizeof(path), "%s/%s", r->dlpath,
               cJSON_GetObjectItem(fi, "name")->valuestring);
      if (sl_fsio_read_file(path, &data, &len, &err))
        fail_msg("dead letters of batch %" PRIu64 ": %s", b, err.msg);
      if ((double)len != cJSON_GetObjectItem(fi, "bytes")->valuedouble)
        fail_msg("%s: %zu bytes, its manifest lists %.0f", path, len,
                 cJSON_GetObjectItem(fi, "bytes")->valuedouble);
      int lines = 0;
      for (char *line = data, *nl; line < data + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(data + len - line));
        assert_non_null(nl);
        cJSON *d = cJSON_ParseWithLength(line, (size_t)(nl - line));
        assert_non_null(d);
        int pt = (int)cJSON_GetObjectItem(d, "partition")->valuedouble;
        int64_t o = (int64_t)cJSON_GetObjectItem(d, "offset")->valuedouble;
        char want[48];
        snprintf(want, sizeof(want), "bad %d/%lld", pt, (long long)o);
        assert_string_equal(cJSON_GetObjectItem(d, "value")->valuestring, want);
        const struct sl_range *rg = sl_plan_find(&plan, TOPIC, pt);
        assert_non_null(rg);
        assert_true(rg->start <= o && o < rg->end && is_bad(&r->src, o));
        if (seen[pt][o])
          fail_msg("dead letter %d/%lld twice", pt, (long long)o);
        seen[pt][o] = true;
        nbad++;
        lines++;
        cJSON_Delete(d);
      }
      assert_int_equal(lines, cJSON_GetObjectItem(fi, "records")->valuedouble);
      free(data);
    }
    sl_plan_clear(&plan);
    cJSON_Delete(m);
  }
  assert_int_equal(nman, top); /* 1..top, no gap */
  if (!complete)
    return;
  assert_int_equal(top, last);
  struct sl_plan all = {0};
  for (int p = 0; p < r->src.parts; p++)
    sl_plan_add(&all, TOPIC, p, 0, part_end(&r->src, p));
  assert_int_equal(nbad, sl_plan_records(&all) - good_records(&r->src, &all));
  sl_plan_clear(&all);
}

/* Dead letters committed with their batches, beside the main sink. */
static void test_dead_letters(void **state) {
  (void)state;
  struct rig *r = rig_new(3, 10, 8, 3, true);
  rig_dead_letters(r);
  run_ok(r);
  check_exact(r, 4);
  check_dead_letters(r, true);
  rig_free(r);
}

/* The dead letters (committed first) hold batch 2, the main sink does
 * not: the process died between the two commits. The restart re-runs
 * batch 2, and dies again once a task has staged its dead letters: the
 * committed dead letters of batch 2 must still be exactly what their
 * manifest lists. The last restart ends exact in both sinks. */
static void test_dead_letters_rerun(void **state) {
  (void)state;
  struct rig *r = rig_new(3, 10, 8, 3, true);
  rig_dead_letters(r);
  r->snk.kill_in_commit = 2;
  crash_child(r, "");
  r->snk.kill_in_commit = 0;
  assert_int_equal(atomic_load(&g_store->last), 1);
  assert_false(ck_file(r, "commits", 2));
  check_dead_letters(r, false);
  char man[800];
  struct stat sb;
  snprintf(man, sizeof(man), "%s/_manifest/2", r->dlpath);
  assert_int_equal(stat(man, &sb), 0); /* the dead letters hold batch 2 */
  crash_child(r, "task.after_read=crash@1");
  assert_int_equal(atomic_load(&g_store->last), 1);
  check_dead_letters(r, false);
  run_ok(r);
  check_exact(r, 4);
  check_dead_letters(r, true);
  rig_free(r);
}

static void test_crash_points(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(crash_cases) / sizeof(crash_cases[0]); i++)
    crash_one(&crash_cases[i], true);
}

static void test_crash_points_serial(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(crash_cases) / sizeof(crash_cases[0]); i++)
    crash_one(&crash_cases[i], false);
}

/* ------------------------------------------------ the continuous trigger */

static bool all_committed(const struct rig *r) {
  uint64_t last = atomic_load(&g_store->last);
  if (!last)
    return false;
  for (int p = 0; p < r->src.parts; p++)
    if (g_store->batches[last].end[p] < part_end(&r->src, p))
      return false;
  return true;
}

static void *stop_when_done(void *arg) {
  const struct rig *r = arg;
  while (!all_committed(r)) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  sl_engine_request_stop();
  return NULL;
}

/* Runs the continuous job in a child, armed with spec (NULL: none), which
 * must exit 0 once it has committed everything (a thread asks it to stop
 * then), or die by SIGKILL when spec is a crash. */
static void continuous_child(struct rig *r, const char *spec) {
  r->job.trigger.available_now = false;
  r->job.trigger.continuous_ns = 2000000;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct sl_error err = {0};
    if (spec && sl_failpoints_arm(spec, &err))
      _exit(3);
    pthread_t th;
    if (pthread_create(&th, NULL, stop_when_done, r) || pthread_detach(th))
      _exit(4);
    int rc = run(r, &err);
    if (rc)
      fprintf(stderr, "continuous run: %s\n", err.msg);
    _exit(rc ? 2 : 0);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (spec) {
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
      fail_msg("%s: the continuous child was not killed by its crash point "
               "(%s %d)",
               spec, WIFSIGNALED(st) ? "signal" : "exit",
               WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
  } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fail_msg("the continuous child failed (%s %d)",
             WIFSIGNALED(st) ? "signal" : "exit",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
  }
}

/* Epochs are batches: every record once, each epoch's ranges those of its
 * offsets/E, at least two epochs (the fake source shows the second half
 * only after the first commit), each committed once; with dead letters
 * staged per epoch. */
static void continuous_clean(bool overlap, bool dead) {
  struct rig *r = rig_new(3, 10, 8, 3, overlap);
  if (dead)
    rig_dead_letters(r);
  continuous_child(r, NULL);
  uint64_t last = check_exact(r, 0);
  assert_true(last >= 2);
  for (uint64_t b = 1; b <= last; b++)
    assert_commit_calls(b, 1);
  if (dead)
    check_dead_letters(r, true);
  assert_no_violation();
  rig_free(r);
}

static void test_continuous(void **state) {
  (void)state;
  continuous_clean(true, false);
  continuous_clean(false, false);
  continuous_clean(true, true);
}

/* A crash at each step of an epoch's life, then a restart that runs to
 * the end: nothing lost, nothing twice, and the checkpoint never claims
 * what the sink lacks. */
static void test_continuous_crash_points(void **state) {
  (void)state;
  static const char *const specs[] = {
      "stream.before_seal=crash@1",      "stream.before_seal=crash@3",
      "batch.planned=crash@1",           "batch.after_offsets=crash@1",
      "batch.after_offsets=crash@2",     "batch.after_reads=crash@1",
      "batch.after_sink_commit=crash@1", "batch.after_sink_commit=crash@2",
      "batch.after_commit=crash@1",      "batch.after_commit=crash@2"};
  for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
    struct rig *r = rig_new(3, 10, 8, 3, i % 2 == 0);
    continuous_child(r, specs[i]);
    uint64_t s = atomic_load(&g_store->last);
    struct sl_ckpt_state st = ck_scan(r);
    if (st.last_commit > s || s > st.last_offsets || s > st.last_commit + 1)
      fail_msg("%s: S=%" PRIu64 " K=%" PRIu64 " M=%" PRIu64, specs[i], s,
               st.last_commit, st.last_offsets);
    continuous_child(r, NULL);
    check_exact(r, 0);
    assert_no_violation();
    rig_free(r);
  }
}

static int group_setup(void **state) {
  (void)state;
  g_store = mmap(NULL, sizeof(*g_store), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (g_store == MAP_FAILED)
    return -1;
  sl_log_set_level(SL_LOG_ERROR);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  munmap(g_store, sizeof(*g_store));
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_clean_run),
      cmocka_unit_test(test_clean_run_serial),
      cmocka_unit_test(test_single_records),
      cmocka_unit_test(test_task_retriable_once),
      cmocka_unit_test(test_task_fails_retriable),
      cmocka_unit_test(test_task_fails_fatal),
      cmocka_unit_test(test_task_fails_beside_commit),
      cmocka_unit_test(test_task_fails_first_batch),
      cmocka_unit_test(test_commit_retriable_once),
      cmocka_unit_test(test_commit_fails_retriable),
      cmocka_unit_test(test_commit_fails_fatal),
      cmocka_unit_test(test_commit_fails_serial),
      cmocka_unit_test(test_dead_letters),
      cmocka_unit_test(test_dead_letters_rerun),
      cmocka_unit_test(test_crash_points),
      cmocka_unit_test(test_crash_points_serial),
      cmocka_unit_test(test_continuous),
      cmocka_unit_test(test_continuous_crash_points),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
