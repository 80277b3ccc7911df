/*
 * batch.c - one micro-batch's life: the transitions of batch.h, each one
 * function, and the only function that frees a batch.
 *
 * The work of a step lives with its owner (tasks.c runs the tasks,
 * window_phase.c the window phase, commit.c the sink commit and the
 * report); this file decides when each step may run and what is durable
 * after it.
 */
#include "batch.h"

static const char *const state_names[] = {
    [ENG_BATCH_PLANNED] = "PLANNED",
    [ENG_BATCH_READ_AHEAD] = "READ_AHEAD",
    [ENG_BATCH_LOGGED] = "LOGGED",
    [ENG_BATCH_READ] = "READ",
    [ENG_BATCH_STATE_SAVED] = "STATE_SAVED",
    [ENG_BATCH_COMMITTING] = "COMMITTING",
    [ENG_BATCH_COMMITTED] = "COMMITTED",
    [ENG_BATCH_FAILED] = "FAILED"};

const char *eng_batch_state_name(enum eng_batch_state s) {
  return s <= ENG_BATCH_FAILED ? state_names[s] : "?";
}

#define BIT(s) (1u << (s))

/* The arrows of batch.h: legal[to] holds the states it may be entered
 * from. */
static const unsigned legal[] = {
    [ENG_BATCH_PLANNED] = 0,
    [ENG_BATCH_READ_AHEAD] = BIT(ENG_BATCH_PLANNED),
    [ENG_BATCH_LOGGED] = BIT(ENG_BATCH_PLANNED),
    [ENG_BATCH_READ] = BIT(ENG_BATCH_LOGGED) | BIT(ENG_BATCH_READ_AHEAD),
    [ENG_BATCH_STATE_SAVED] = BIT(ENG_BATCH_READ),
    [ENG_BATCH_COMMITTING] = BIT(ENG_BATCH_STATE_SAVED) | BIT(ENG_BATCH_LOGGED),
    [ENG_BATCH_COMMITTED] = BIT(ENG_BATCH_COMMITTING),
    [ENG_BATCH_FAILED] = ~BIT(ENG_BATCH_COMMITTED)};

/* A transition the machine does not have is a bug in the engine: stop at
 * once, before anything durable follows from it. */
static void move(struct eng_batch *b, enum eng_batch_state to) {
  if (!(legal[to] & BIT(b->state))) {
    sl_error_log("batch %" PRIu64 ": no transition %s -> %s", b->plan.batch,
                 eng_batch_state_name(b->state), eng_batch_state_name(to));
    abort();
  }
  b->state = to;
}

static struct eng_batch *alloc(struct engine *e, enum eng_batch_state s) {
  struct eng_batch *b = sl_calloc(1, sizeof(*b));
  b->e = e;
  b->state = s;
  b->wait_ns = -1;
  b->t0 = sl_mono_ns();
  return b;
}

struct eng_batch *eng_batch_new(struct engine *e, struct sl_plan *plan,
                                const struct sl_plan *latest, int64_t plan_ns) {
  struct eng_batch *b = alloc(e, ENG_BATCH_PLANNED);
  b->plan = *plan;
  memset(plan, 0, sizeof(*plan)); /* moved: the tasks point into it */
  b->plan_ns = plan_ns;
  if (latest) {
    sl_plan_copy(&b->latest, latest);
    b->has_latest = true;
  }
  return b;
}

struct eng_batch *eng_batch_epoch(struct engine *e, struct sl_plan *plan,
                                  struct task_ctx *tcs, size_t n,
                                  int64_t records,
                                  const struct sl_pipe_stats *stats,
                                  int64_t cut_ns) {
  struct eng_batch *b = alloc(e, ENG_BATCH_READ_AHEAD);
  b->plan = *plan;
  memset(plan, 0, sizeof(*plan));
  b->tcs = tcs;
  b->n = n;
  b->records = records;
  b->stats = *stats;
  b->read_ns = cut_ns;
  return b;
}

int eng_batch_from_log(struct engine *e, uint64_t id, struct eng_batch **out,
                       struct sl_error *err) {
  struct eng_batch *b = alloc(e, ENG_BATCH_LOGGED);
  int rc = sl_ckpt_read_offsets(e->ck, id, &b->plan, err);
  if (rc) {
    eng_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

int eng_batch_log(struct eng_batch *b, struct sl_error *err) {
  struct engine *e = b->e;
  int64_t t = sl_mono_ns();
  bool ahead = b->state == ENG_BATCH_READ_AHEAD;
  if (sl_failpoint_err("batch.planned", err) ||
      sl_ckpt_write_offsets(e->ck, &b->plan, err) ||
      sl_failpoint_err("batch.after_offsets", err))
    return err->code;
  b->off_ns = sl_mono_ns() - t;
  if (!ahead) {
    move(b, ENG_BATCH_LOGGED);
    return 0;
  }
  move(b, ENG_BATCH_READ);
  return sl_failpoint_err("batch.after_reads", err);
}

int eng_batch_read(struct eng_batch *b, struct sl_error *err) {
  struct engine *e = b->e;
  int64_t t = sl_mono_ns();
  e->watermark = e->ws ? sl_wstate_watermark(e->ws) : SL_WINDOW_NO_WATERMARK;
  int rc = eng_run_tasks(e, &b->plan, &b->tcs, &b->n, &b->records, &b->lost,
                         &b->stats, err);
  b->read_ns = sl_mono_ns() - t;
  if (rc)
    return rc;
  if (b->state == ENG_BATCH_PLANNED) {
    move(b, ENG_BATCH_READ_AHEAD);
    return 0;
  }
  move(b, ENG_BATCH_READ);
  return sl_failpoint_err("batch.after_reads", err);
}

int eng_batch_save_state(struct eng_batch *b, struct sl_error *err) {
  struct engine *e = b->e;
  int64_t t = sl_mono_ns();
  if (e->ws && eng_run_window(e, &b->plan, &b->tcs, &b->n, &b->stats, err))
    return err->code;
  eng_streams_watermark(e, b->plan.batch);
  b->t2 = sl_mono_ns();
  b->win_ns = b->t2 - t;
  move(b, ENG_BATCH_STATE_SAVED);
  return 0;
}

static void *commit_main(void *arg) {
  struct eng_batch *b = arg;
  b->e->sink.note[0] = '\0';
  b->rc = eng_commit_sink(b->e, &b->plan, b->tcs, b->n, &b->err);
  b->t3 = sl_mono_ns();
  return NULL;
}

/* Partition positions from p's ends (also recovery's, recover.c). The
 * batch's ends are where the next one starts (the next batch is
 * planned while this one commits; if the commit fails, the job stops). */
void eng_positions_from(struct engine *e, const struct sl_plan *p) {
  for (size_t i = 0; i < p->n; i++) {
    const struct sl_range *r = &p->ranges[i];
    struct sl_range *at = sl_plan_find(&e->pos, r->topic, r->partition);
    if (at)
      at->end = SL_MAX(at->end, r->end); /* a re-run below a sink position */
    else
      sl_plan_add(&e->pos, r->topic, r->partition, r->end, r->end);
  }
}

static void advance_positions(struct engine *e, const struct sl_plan *p) {
  eng_positions_from(e, p);
  e->next_batch = p->batch + 1;
}

int eng_batch_commit(struct eng_batch *b, struct sl_error *err) {
  struct engine *e = b->e;
  move(b, ENG_BATCH_COMMITTING);
  advance_positions(e, &b->plan);
  e->fl = b;
  if (e->overlap && pthread_create(&b->th, NULL, commit_main, b) == 0) {
    b->async = true;
    return 0;
  }
  commit_main(b);
  return eng_batch_finish(e, err);
}

void eng_batch_sink_holds(struct eng_batch *b) {
  move(b, ENG_BATCH_COMMITTING);
  b->recovered = true;
  b->rc = 0;
  advance_positions(b->e, &b->plan);
  b->e->fl = b;
}

int eng_batch_finish(struct engine *e, struct sl_error *err) {
  struct eng_batch *b = e->fl;
  if (!b)
    return 0;
  e->fl = NULL;
  if (b->async)
    pthread_join(b->th, NULL);
  int64_t tj = sl_mono_ns();
  int rc = b->rc;
  if (rc) {
    *err = b->err;
    if (rc == SL_ERR_FENCED && e->group) /* group.c: abandoned */
      eng_group_batch_fenced(e, &b->plan, err->msg);
    sl_error_prefix(err, "sink commit of batch %" PRIu64 " failed",
                    b->plan.batch);
    eng_batch_free(b);
    return rc;
  }
  sl_ckpt_set_commit_note(e->ck, e->sink.note);
  if (sl_failpoint_err("batch.after_sink_commit", err) ||
      sl_ckpt_write_commit(e->ck, b->plan.batch, sl_wall_ms(), err) ||
      sl_failpoint_err("batch.after_commit", err)) {
    rc = err->code;
    eng_batch_free(b);
    return rc;
  }
  move(b, ENG_BATCH_COMMITTED);
  if (!b->recovered)
    eng_after_commit(e, b, tj);
  eng_batch_free(b);
  return 0;
}

void eng_batch_free(struct eng_batch *b) {
  if (!b)
    return;
  if (b->state != ENG_BATCH_COMMITTED)
    move(b, ENG_BATCH_FAILED);
  eng_free_stages(b->e, b->tcs, b->n);
  free(b->tcs);
  sl_plan_clear(&b->plan);
  sl_plan_clear(&b->latest);
  free(b);
}
