/*
 * stream.c - the continuous trigger's long-running tasks and its epochs.
 *
 * Owns the streams: one long-running task per worker (at most one per
 * partition), each reading its share of the partitions with no end
 * (sl_source_plugin.stream_read), running the pipeline on what arrives and
 * handing the output to the sink at once:
 *   - a sink with SL_SINK_WRITES_AT_ONCE (Redis, console) gets each group
 *     of records through its own stream (stream_write), with the positions
 *     reached, and makes them visible at once; the sink's guard on those
 *     positions keeps a replay from applying anything twice;
 *   - any other sink stages the group in the current epoch's stage, as a
 *     micro-batch task does, and the epoch's commit makes it visible.
 * A group is what one stream_read returned: everything that arrived while
 * the previous group was being written, so records are grouped as soon as
 * they come faster than one write per record.
 *
 * Epochs (eng_streams_cut, on the coordinator). The trigger asks for a cut
 * every interval when a position moved since the last one. The cut is a
 * barrier: close = E; every stream, between two groups, seals epoch E
 * (closes its stages, reports the range each of its partitions covered in
 * E) and goes on in E + 1. When every stream has sealed E, the epoch is a
 * batch whose reads are done (batch.h: it is born READ_AHEAD) and it goes
 * through the same lifecycle as a micro-batch: offsets/E, the window
 * phase, the sink commit, commits/E. Restarting resumes from the last
 * committed epoch.
 *
 * Threads: a stream's fields below `mu` are written by its worker only
 * before it reports, and read by the coordinator only after; the report
 * (sealed, rep, rep_pos) is handed over under cont->mu.
 */
#include "batch.h"
#include "trigger.h"

struct eng_stream {
  struct engine *e;
  uint32_t id;
  struct sl_range *pos; /* [epoch start, next) per partition; owned */
  size_t npos;
  struct task_ctx cur;         /* the current epoch's stages and counts */
  struct sl_pipe_stats stats0; /* the pipeline's counts at the epoch start */
  void *sstream;               /* the sink's stream (write at once) */
  void *reader;                /* set once the task runs */
  uint64_t epoch;              /* the epoch being read */
  uint64_t wm_for;             /* windowed: the epoch whose watermark is wm */
  int64_t wm;
  /* handed over under cont->mu */
  uint64_t sealed;          /* last epoch reported */
  struct task_ctx rep;      /* its stages and counts */
  struct sl_range *rep_pos; /* its ranges (npos); owned */
  bool failed, done;
  uint64_t wm_wait;  /* windowed: waiting for the watermark of this epoch */
  atomic_bool dirty; /* a position moved in the current epoch */
};

struct eng_cont {
  pthread_mutex_t mu;
  pthread_cond_t cv;      /* a stream reported, failed or ended */
  _Atomic uint64_t close; /* epochs up to this one are to be sealed */
  atomic_bool stop;       /* end after sealing */
  int64_t started_ns;     /* when the streams started (monotonic) */
  /* windowed: the state's watermark after epoch wm_epoch (under mu) */
  uint64_t wm_epoch;
  int64_t wm;
  struct eng_stream *s;
  struct sl_task *tasks;
  size_t n, running;
};

/* ------------------------------------------------------------- workers */

static bool write_at_once(const struct engine *e) {
  const struct sl_sink *k = &e->sink;
  unsigned f =
      k->plugin->conf_flags ? k->plugin->conf_flags(k->conf) : k->plugin->flags;
  /* a windowed pipeline's rows come from the epoch's window phase */
  return (f & SL_SINK_WRITES_AT_ONCE) && k->plugin->stream_write && !e->ws;
}

static struct sl_range *find_pos(struct eng_stream *s, const char *topic,
                                 int32_t partition) {
  for (size_t i = 0; i < s->npos; i++)
    if (s->pos[i].partition == partition && strcmp(s->pos[i].topic, topic) == 0)
      return &s->pos[i];
  return NULL;
}

/* Moves the positions past what the read returned; true when one moved. */
static bool advance(struct eng_stream *s, const struct sl_batch *b,
                    const struct sl_stream_mark *marks, size_t nmarks) {
  bool moved = false;
  for (size_t i = 0; i < b->n; i++) {
    struct sl_range *p = find_pos(s, b->recs[i].topic, b->recs[i].partition);
    if (p && b->recs[i].offset + 1 > p->end) {
      p->end = b->recs[i].offset + 1;
      moved = true;
    }
  }
  for (size_t i = 0; i < nmarks; i++) {
    struct sl_range *p = find_pos(s, marks[i].topic, marks[i].partition);
    if (p && marks[i].next > p->end) {
      p->end = marks[i].next;
      moved = true;
    }
  }
  return moved;
}

/* The positions a group moves, for the sink's guard: every partition of
 * the stream that the group touched. */
static size_t group_marks(struct eng_stream *s, const struct sl_batch *in,
                          const struct sl_stream_mark *marks, size_t nmarks,
                          struct sl_stream_mark *out) {
  size_t n = 0;
  for (size_t i = 0; i < s->npos; i++) {
    const struct sl_range *p = &s->pos[i];
    bool touched = false;
    for (size_t k = 0; k < nmarks && !touched; k++)
      touched = marks[k].partition == p->partition &&
                strcmp(marks[k].topic, p->topic) == 0;
    for (size_t k = 0; k < in->n && !touched; k++)
      touched = in->recs[k].partition == p->partition &&
                strcmp(in->recs[k].topic, p->topic) == 0;
    if (touched)
      out[n++] = (struct sl_stream_mark){p->topic, p->partition, p->end};
  }
  return n;
}

/* Writes a group through the sink's stream, retrying an outage within
 * sink.<name>.retry: the sink's guard makes a repeated write harmless. */
static int write_group(struct engine *e, struct eng_stream *s,
                       struct worker_ctx *w, const struct sl_batch *out,
                       const struct sl_stream_mark *marks, size_t n,
                       struct sl_error *err) {
  const struct sl_retry *rt = &((struct sl_sink_common *)e->sink.conf)->retry;
  int64_t t0 = sl_mono_ns(), pause = rt->backoff_ns;
  for (int64_t attempt = 1;; attempt++) {
    sl_rejects_clear(&w->rejects);
    int rc = e->sink.plugin->stream_write(s->sstream, out, marks, n,
                                          &w->rejects, err);
    if (!rc)
      return 0;
    bool retriable =
        (err->flags & SL_ERR_RETRIABLE) && !(err->flags & SL_ERR_FATAL);
    if (!retriable || attempt >= rt->attempts ||
        sl_mono_ns() - t0 + pause > rt->max_elapsed_ns ||
        atomic_load(&s->e->cont->stop))
      return rc;
    sl_warn("stream %u: sink write failed, attempt %lld of %lld: %s", s->id,
            (long long)attempt, (long long)rt->attempts, err->msg);
    sl_metrics_retry(e->metrics, SL_RETRY_SINK);
    eng_wait_until(sl_mono_ns() + pause);
    pause = SL_MIN(pause * 2, rt->max_backoff_ns);
    memset(err, 0, sizeof(*err));
  }
}

/* Seals epoch s->epoch: closes its stages and reports them with the
 * ranges covered. @locality the stream's worker */
static int seal(struct engine *e, struct eng_stream *s, struct sl_error *err) {
  struct eng_cont *c = e->cont;
  struct task_ctx *tc = &s->cur;
  if (sl_failpoint_err("stream.before_seal", err) ||
      eng_close_stage(&e->sink, tc->stage, err) ||
      eng_close_stage(&e->dl, tc->dl_stage, err))
    return err->code;
  struct sl_pipe_stats now = {0};
  struct sl_pipe_task *partial = NULL;
  if (tc->pipe) {
    now = sl_pipe_task_stats(tc->pipe);
    tc->stats =
        (struct sl_pipe_stats){.in = now.in - s->stats0.in,
                               .filtered = now.filtered - s->stats0.filtered,
                               .dead = now.dead - s->stats0.dead,
                               .late = now.late - s->stats0.late,
                               .out = now.out - s->stats0.out};
  } else {
    tc->stats.in = tc->stats.out = tc->records;
  }
  tc->stats.out -= tc->sink_rejected;
  tc->stats.dead += tc->sink_rejected;
  if (e->ws && tc->pipe) {
    /* the epoch's window partial goes with it to the window phase; the
     * next epoch starts a pipeline task of its own */
    partial = tc->pipe;
    tc->pipe = sl_pipe_task_new(e->job->pipeline);
    now = (struct sl_pipe_stats){0};
  }
  pthread_mutex_lock(&c->mu);
  s->rep = (struct task_ctx){.kind = TASK_STREAM,
                             .e = e,
                             .stage = tc->stage,
                             .dl_stage = tc->dl_stage,
                             .pipe = partial,
                             .stats = tc->stats,
                             .records = tc->records,
                             .sink_rejected = tc->sink_rejected};
  for (size_t i = 0; i < s->npos; i++) {
    s->rep_pos[i] = s->pos[i];
    s->pos[i].start = s->pos[i].end;
  }
  s->sealed = s->epoch;
  atomic_store(&s->dirty, false);
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  tc->stage = tc->dl_stage = NULL;
  tc->records = tc->sink_rejected = 0;
  memset(&tc->stats, 0, sizeof(tc->stats));
  s->stats0 = now;
  return 0;
}

/* Windowed: the watermark that epoch s->epoch's records are judged late
 * by is the state's after the epoch before it, as for a micro-batch, so a
 * replay of the epoch judges them the same. Waits until the coordinator
 * has run the previous epoch's window phase (it does so before it cuts
 * this one); false when the job stops meanwhile. @locality the stream's
 * worker */
static bool epoch_watermark(struct engine *e, struct eng_stream *s) {
  struct eng_cont *c = e->cont;
  if (s->wm_for == s->epoch)
    return true;
  pthread_mutex_lock(&c->mu);
  s->wm_wait = s->epoch - 1;
  while (c->wm_epoch + 1 < s->epoch && !atomic_load(&c->stop)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  bool ok = c->wm_epoch + 1 >= s->epoch;
  s->wm_wait = 0;
  if (ok) {
    s->wm = c->wm;
    s->wm_for = s->epoch;
  }
  pthread_mutex_unlock(&c->mu);
  return ok;
}

/* One group: the pipeline, then the sink (at once or staged) and the
 * dead letters. @locality the stream's worker */
static int run_group(struct engine *e, struct eng_stream *s,
                     struct worker_ctx *w, const struct sl_task *t,
                     const struct sl_stream_mark *marks, size_t nmarks,
                     struct sl_error *err) {
  struct task_ctx *tc = &s->cur;
  bool fail = e->job->on_error == SL_ON_ERROR_FAIL;
  const struct sl_batch *out = &w->chunk;
  w->dead.n = 0;
  tc->records += (int64_t)w->chunk.n;
  if (tc->pipe) {
    int64_t wm = SL_WINDOW_NO_WATERMARK;
    if (e->ws) {
      if (!epoch_watermark(e, s))
        return 0; /* the job is stopping: nothing of this group counts */
      wm = s->wm;
    }
    if (sl_pipe_run(tc->pipe, &w->chunk, wm, fail, sl_wall_ms(), &w->out,
                    &w->dead, err))
      return err->code;
    if (e->merge && w->chunk.n) {
      /* the group's contribution to each window, at its last record for
       * the sink's position guard: every partition the group touched
       * moves past it in the same write */
      const struct sl_record *last = &w->chunk.recs[w->chunk.n - 1];
      struct sl_record at = {.topic = last->topic,
                             .partition = last->partition,
                             .offset = last->offset,
                             .timestamp = -1};
      sl_pipe_merge_out(tc->pipe, &at, &w->out);
    }
    out = &w->out;
  }
  int rc;
  if (s->sstream) {
    struct sl_stream_mark gm[s->npos ? s->npos : 1];
    size_t ng = group_marks(s, &w->chunk, marks, nmarks, gm);
    if (!ng && out->n == 0)
      rc = 0;
    else if (!(rc = write_group(e, s, w, out, gm, ng, err))) {
      sl_metrics_records_written(e->metrics, out);
      rc = eng_sink_rejects(e, tc, t, w, err);
    }
  } else {
    rc = out->n ? eng_stage_out(e, tc, t, w, out, err) : 0;
  }
  if (!rc && w->dead.n)
    rc = eng_stage_dead(e, tc, t, w, &w->dead, "a record", err);
  return rc;
}

static int stream_loop(struct sl_task *t, struct worker_ctx *w,
                       struct engine *e, struct eng_stream *s) {
  struct eng_cont *c = e->cont;
  const struct sl_source_plugin *sp = e->src.plugin;
  struct sl_error *err = &t->err;
  for (;;) {
    uint64_t close = atomic_load(&c->close);
    if (close >= s->epoch) {
      if (seal(e, s, err))
        return err->code;
      s->epoch = close + 1;
    }
    if (atomic_load(&c->stop))
      return 0;
    struct sl_stream_mark *marks = NULL;
    size_t nmarks = 0;
    if (sp->stream_read(w->reader, 100, &w->chunk, &marks, &nmarks, err))
      return err->code;
    bool moved = advance(s, &w->chunk, marks, nmarks);
    if (!moved && w->chunk.n == 0)
      continue;
    /* the epoch being read stays s->epoch until the next seal */
    struct sl_task et = {.batch = s->epoch, .id = s->id};
    if (moved)
      atomic_store(&s->dirty, true);
    sl_metrics_in_flight(e->metrics, (int64_t)w->chunk.n);
    if (run_group(e, s, w, &et, marks, nmarks, err))
      return err->code;
  }
}

/* The task of one stream. @locality worker thread */
int eng_stream_task(struct sl_task *t, struct worker_ctx *w, struct engine *e) {
  struct task_ctx *tc = t->payload;
  struct eng_stream *s = tc->stream;
  struct eng_cont *c = e->cont;
  const struct sl_source_plugin *sp = e->src.plugin;
  int rc = 0;
  if (e->has_ops && !s->cur.pipe)
    s->cur.pipe = sl_pipe_task_new(e->job->pipeline);
  if (write_at_once(e))
    rc = e->sink.plugin->stream_open(&e->sink, s->id, &s->sstream, &t->err);
  if (!rc)
    rc = sp->stream_start(w->reader, s->pos, s->npos, &t->err);
  if (!rc) {
    pthread_mutex_lock(&c->mu);
    s->reader = w->reader;
    pthread_mutex_unlock(&c->mu);
    rc = stream_loop(t, w, e, s);
    pthread_mutex_lock(&c->mu);
    s->reader = NULL;
    pthread_mutex_unlock(&c->mu);
    sp->stream_stop(w->reader);
  }
  if (s->sstream)
    e->sink.plugin->stream_close(&e->sink, s->sstream);
  s->sstream = NULL;
  pthread_mutex_lock(&c->mu);
  s->failed = rc != 0;
  s->done = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* --------------------------------------------------------- coordinator */

static void wake_all(struct eng_cont *c, const struct sl_source_plugin *sp) {
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < c->n; i++)
    if (c->s[i].reader)
      sp->stream_wake(c->s[i].reader);
  pthread_mutex_unlock(&c->mu);
}

bool eng_continuous_supported(const struct engine *e, struct sl_error *err) {
  const struct sl_source_plugin *sp = e->src.plugin;
  if (!sp->stream_start || !sp->stream_read || !sp->stream_wake ||
      !sp->stream_stop) {
    sl_error_setf(err, SL_ERR_INVAL, SL_ERR_FATAL,
                  "trigger continuous: source '%s' cannot be read "
                  "continuously",
                  sp->name);
    return false;
  }
  return true;
}

int eng_streams_start(struct engine *e, struct sl_error *err) {
  if (!eng_continuous_supported(e, err))
    return err->code;
  struct sl_plan plan = {0}, latest = {0};
  int rc = eng_plan_retrying(e, &plan, &latest, err);
  sl_plan_clear(&latest);
  if (rc) {
    sl_plan_clear(&plan);
    return rc;
  }
  struct eng_cont *c = sl_calloc(1, sizeof(*c));
  c->started_ns = sl_mono_ns();
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  unsigned nw = sl_pool_workers(e->pool);
  size_t n = SL_MIN((size_t)nw, plan.n);
  if (n == 0) {
    sl_plan_clear(&plan);
    return sl_error_set(err, SL_ERR_INVAL,
                        "trigger continuous: the source has no partitions");
  }
  c->n = n;
  c->s = sl_calloc(n ? n : 1, sizeof(*c->s));
  c->tasks = sl_calloc(n ? n : 1, sizeof(*c->tasks));
  uint64_t first = e->next_batch;
  atomic_store(&c->close, first - 1);
  c->wm_epoch = first - 1; /* the state as recovery loaded it */
  c->wm = e->ws ? sl_wstate_watermark(e->ws) : SL_WINDOW_NO_WATERMARK;
  for (size_t i = 0; i < n; i++) {
    struct eng_stream *s = &c->s[i];
    s->e = e;
    s->id = (uint32_t)i;
    s->epoch = first;
    s->sealed = first - 1;
    s->cur = (struct task_ctx){.kind = TASK_STREAM, .e = e, .stream = s};
  }
  /* Partitions go round the streams; their topic names live in e->pos,
   * which outlives the streams. */
  for (size_t k = 0; k < plan.n; k++) {
    struct eng_stream *s = &c->s[k % n];
    const struct sl_range *r = &plan.ranges[k];
    const struct sl_range *at = sl_plan_find(&e->pos, r->topic, r->partition);
    s->pos = sl_realloc(s->pos, (s->npos + 1) * sizeof(*s->pos));
    s->pos[s->npos++] = (struct sl_range){.topic = at->topic,
                                          .partition = r->partition,
                                          .start = r->start,
                                          .end = r->start};
  }
  sl_plan_clear(&plan);
  e->cont = c;
  for (size_t i = 0; i < n; i++) {
    struct eng_stream *s = &c->s[i];
    s->rep_pos = sl_calloc(s->npos ? s->npos : 1, sizeof(*s->rep_pos));
    c->tasks[i] = (struct sl_task){.batch = first,
                                   .id = (uint32_t)i,
                                   .prefer = (int)i,
                                   .payload = &s->cur};
    if (sl_pool_submit(e->pool, &c->tasks[i]) != 0) {
      eng_streams_halt(e);
      return sl_error_set(err, SL_ERR_INVAL, "cannot start stream %zu", i);
    }
    c->running++;
  }
  sl_info("continuous: %zu streams over %zu partitions, epochs every %.0f ms",
          n, (size_t)e->pos.n, (double)e->job->trigger.continuous_ns / 1e6);
  return 0;
}

/* The first failed stream's error, once every stream is back. */
static int collect(struct engine *e, struct sl_error *err) {
  struct eng_cont *c = e->cont;
  int rc = 0;
  atomic_store(&c->stop, true);
  wake_all(c, e->src.plugin);
  while (c->running > 0) {
    struct sl_task *t = sl_pool_wait(e->pool, 100 * 1000000LL);
    if (!t)
      continue;
    c->running--;
    if (t->rc && !rc) {
      rc = t->rc;
      if (err) {
        *err = t->err;
        sl_error_prefix(err, "stream %u", t->id);
      }
    }
  }
  return rc;
}

void eng_streams_halt(struct engine *e) {
  struct eng_cont *c = e->cont;
  if (!c)
    return;
  collect(e, NULL);
  for (size_t i = 0; i < c->n; i++) {
    struct eng_stream *s = &c->s[i];
    if (s->cur.stage)
      e->sink.plugin->stage_free(&e->sink, s->cur.stage);
    if (s->cur.dl_stage)
      e->dl.plugin->stage_free(&e->dl, s->cur.dl_stage);
    if (s->rep.stage)
      e->sink.plugin->stage_free(&e->sink, s->rep.stage);
    if (s->rep.dl_stage)
      e->dl.plugin->stage_free(&e->dl, s->rep.dl_stage);
    sl_pipe_task_free(s->cur.pipe);
    sl_pipe_task_free(s->rep.pipe);
    free(s->pos);
    free(s->rep_pos);
  }
  free(c->s);
  free(c->tasks);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
  e->cont = NULL;
}

void eng_streams_watermark(struct engine *e, uint64_t epoch) {
  struct eng_cont *c = e->cont;
  if (!c || !e->ws)
    return;
  pthread_mutex_lock(&c->mu);
  c->wm = sl_wstate_watermark(e->ws);
  c->wm_epoch = epoch;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

/* A cut that waits long says for which streams, so that a stall leaves a
 * trace. @locality coordinator, under c->mu */
static void report_wait(const struct eng_cont *c, uint64_t epoch, size_t sealed,
                        int64_t secs) {
  sl_warn("epoch %" PRIu64 ": %zu of %zu streams sealed after %lld s", epoch,
          sealed, c->n, (long long)secs);
  for (size_t i = 0; i < c->n; i++) {
    const struct eng_stream *s = &c->s[i];
    if (s->sealed >= epoch)
      continue;
    if (s->wm_wait)
      sl_warn("stream %u: last sealed %" PRIu64
              ", waiting for the watermark of epoch %" PRIu64,
              s->id, s->sealed, s->wm_wait);
    else
      sl_warn("stream %u: last sealed %" PRIu64 "%s", s->id, s->sealed,
              s->reader ? "" : ", not reading");
  }
}

int eng_streams_cut(struct engine *e, bool last, struct eng_batch **out,
                    struct sl_error *err) {
  struct eng_cont *c = e->cont;
  *out = NULL;
  if (!c)
    return 0;
  /* A stream whose position moved seals a non-empty epoch: the flag is
   * cleared only by its seal. So every cut but the last is a batch, and
   * epoch ids stay consecutive. */
  bool dirty = false;
  for (size_t i = 0; i < c->n; i++)
    dirty |= atomic_load(&c->s[i].dirty);
  if (!dirty && !last)
    return 0; /* nothing arrived: no epoch */
  /* The first epoch ends one interval after the streams started, not at
   * the coordinator's first look (which came sooner or later after the
   * start, as the machine was busy). */
  if (!last && sl_mono_ns() - c->started_ns < e->job->trigger.continuous_ns)
    return 0;
  uint64_t epoch = atomic_load(&c->close) + 1;
  if (last)
    atomic_store(&c->stop, true);
  atomic_store(&c->close, epoch);
  wake_all(c, e->src.plugin);
  int64_t t0 = sl_mono_ns(), next_report = 10000000000LL;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    size_t sealed = 0;
    bool failed = false;
    for (size_t i = 0; i < c->n; i++) {
      sealed += c->s[i].sealed >= epoch;
      failed |= c->s[i].failed || (c->s[i].done && c->s[i].sealed < epoch);
    }
    if (failed) {
      pthread_mutex_unlock(&c->mu);
      int rc = collect(e, err);
      return rc ? rc : sl_error_set(err, SL_ERR_INVAL, "a stream ended");
    }
    if (sealed == c->n)
      break;
    if (sl_mono_ns() - t0 > next_report) {
      report_wait(c, epoch, sealed, (sl_mono_ns() - t0) / 1000000000);
      next_report += 10000000000LL;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  pthread_mutex_unlock(&c->mu);
  /* The epoch as a plan and its tasks' stages (batch.h: READ_AHEAD). */
  struct sl_plan plan = {0};
  struct task_ctx *tcs = sl_calloc(c->n ? c->n : 1, sizeof(*tcs));
  int64_t records = 0;
  struct sl_pipe_stats stats = {0};
  bool any = false;
  for (size_t i = 0; i < c->n; i++) {
    struct eng_stream *s = &c->s[i];
    tcs[i] = s->rep;
    s->rep = (struct task_ctx){0}; /* the batch owns the stages now */
    records += tcs[i].records;
    stats.in += tcs[i].stats.in;
    stats.filtered += tcs[i].stats.filtered;
    stats.dead += tcs[i].stats.dead;
    stats.late += tcs[i].stats.late;
    stats.out += tcs[i].stats.out;
    for (size_t k = 0; k < s->npos; k++) {
      const struct sl_range *r = &s->rep_pos[k];
      any |= r->end > r->start;
      sl_plan_add(&plan, r->topic, r->partition, r->start, r->end);
    }
  }
  sl_plan_sort(&plan);
  plan.batch = epoch;
  plan.created_ms = sl_wall_ms();
  if (!any) { /* nothing moved after all (the last cut of a quiet run) */
    eng_free_stages(e, tcs, c->n);
    free(tcs);
    sl_plan_clear(&plan);
    return 0;
  }
  *out =
      eng_batch_epoch(e, &plan, tcs, c->n, records, &stats, sl_mono_ns() - t0);
  return 0;
}
