/*
 * group.c - group mode: the engine's side of the consumer group
 * (source.<name>.group; DESIGN.md section 14, docs/ARCHITECTURE.md Group
 * mode).
 *
 * The source owns the membership (a consumer subscribed to the group) and
 * calls the hooks below from its rebalance callback, inside
 * eng_group_poll, on the coordinator, between batches. What they keep:
 *  - e->owned: the partitions the group assigned this instance; the
 *    source's watermarks list only those, so plan_next plans only them.
 *  - e->pos: where each owned partition's next batch starts. A partition
 *    enters it when assigned, at the sink's position (the authority: the
 *    next owner resumes from what the sink committed, never from another
 *    machine's checkpoint, nor from this one's, which may be older than
 *    what another owner committed since), or the group's offsets for a
 *    sink without positions, or else the source's starting offsets; it
 *    leaves it when revoked.
 * Order on assignment: claim (a sink that fences per partition), then
 * positions. On revocation: the batch in flight (a commit beside the next
 * batch's reads) is finished first, then release, then the source
 * unassigns. A commit the sink refuses as fenced (SL_ERR_FENCED: the
 * instance lost the partitions, or the group moved to a new generation
 * while the batch ran) is abandoned (eng_group_batch_fenced, from
 * eng_batch_finish), with any batch read beside it.
 *
 * The local checkpoint stays the instance's write-ahead log: offsets/N
 * before any output of N, commits/N after the sink. A batch that was not
 * committed is never re-run in group mode (its partitions may have moved):
 * it is closed in the log as abandoned, and its partitions resume at the
 * sink's positions.
 */
#include <unistd.h>

#include "batch.h"

/* "t[0],t[3],u[1]" (the first 64). */
static void name_parts(const struct sl_plan *p, char *out, size_t n) {
  size_t k = 0;
  out[0] = '\0';
  for (size_t i = 0; i < p->n && k < n; i++) {
    if (i == 64) {
      snprintf(out + k, n - k, ",...");
      break;
    }
    k += (size_t)snprintf(out + k, n - k, "%s%s[%d]", i ? "," : "",
                          p->ranges[i].topic, p->ranges[i].partition);
  }
}

static void plan_remove(struct sl_plan *p, const struct sl_plan *gone) {
  size_t k = 0;
  for (size_t i = 0; i < p->n; i++) {
    struct sl_range *r = &p->ranges[i];
    if (sl_plan_find(gone, r->topic, r->partition))
      free(r->topic);
    else
      p->ranges[k++] = *r;
  }
  p->n = k;
}

static void publish(struct engine *e) {
  sl_metrics_group(e->metrics, &e->owned, e->rebalances,
                   (double)e->rebalance_ns / 1e9);
  sl_metrics_set_ready(e->metrics, e->pool && e->owned.n > 0);
}

struct claim_args {
  struct sl_sink *sink;
  const struct sl_plan *parts;
  struct sl_plan *out; /* positions; NULL: claim */
  const struct sl_source_info *src;
};

static int claim_call(void *arg, struct sl_error *err) {
  struct claim_args *a = arg;
  return a->sink->plugin->claim(a->sink, a->parts, err);
}

static int positions_call(void *arg, struct sl_error *err) {
  struct claim_args *a = arg;
  sl_plan_clear(a->out);
  return a->sink->plugin->positions(a->sink, a->src, a->out, err);
}

/* Claims parts in the sink (when it fences per partition) and sets each
 * one's position from the sink's record (else the group's offsets, else
 * none: plan_next takes the starting offsets). */
static int take_parts(struct engine *e, const struct sl_plan *parts, bool claim,
                      struct sl_error *err) {
  struct sl_plan pos = {0};
  struct claim_args a = {&e->sink, parts, &pos, &e->src_info};
  bool from_sink = false;
  int rc = 0;
  if (claim && e->sink.plugin->claim &&
      (rc = eng_with_retry(e, &e->sink, "claiming partitions in the sink",
                           claim_call, &a, err)))
    return rc;
  if (e->sink.plugin->positions) {
    rc = eng_with_retry(e, &e->sink, "reading the sink's positions",
                        positions_call, &a, err);
    if (rc == SL_ERR_NOTFOUND) { /* keeps none as configured */
      sl_error_clear(err);
      sl_plan_clear(&pos);
      rc = 0;
    } else if (!rc) {
      from_sink = true;
    }
  }
  if (!rc && !from_sink && e->src.plugin->group_committed)
    rc = e->src.plugin->group_committed(&e->src, parts, &pos, err);
  if (rc) {
    sl_plan_clear(&pos);
    return rc;
  }
  char line[700];
  size_t k = 0;
  line[0] = '\0';
  plan_remove(&e->pos, parts);
  for (size_t i = 0; i < parts->n; i++) {
    const struct sl_range *p = &parts->ranges[i];
    const struct sl_range *at = sl_plan_find(&pos, p->topic, p->partition);
    if (at)
      sl_plan_add(&e->pos, p->topic, p->partition, at->end, at->end);
    if (i < 8 && k < sizeof(line) && at)
      k += (size_t)snprintf(line + k, sizeof(line) - k, "%s%s[%d] at %lld",
                            i ? ", " : "", p->topic, p->partition,
                            (long long)at->end);
    else if (i < 8 && k < sizeof(line))
      k += (size_t)snprintf(line + k, sizeof(line) - k,
                            "%s%s[%d] at the starting offsets", i ? ", " : "",
                            p->topic, p->partition);
    else if (i == 8 && k < sizeof(line))
      k += (size_t)snprintf(line + k, sizeof(line) - k, ", and %zu more",
                            parts->n - 8);
  }
  sl_info("group: %zu partition%s resume%s at the %s: %s", parts->n,
          parts->n == 1 ? "" : "s", parts->n == 1 ? "s" : "",
          from_sink ? "sink's positions" : "group's offsets", line);
  sl_plan_clear(&pos);
  return 0;
}

/* The batch in flight (a commit beside the next batch's reads, e->fl) is
 * finished before the hooks change anything: the sink is not used by a
 * claim or a read of positions while it commits, and a revoked partition
 * goes only once its commit is done. A fenced commit was abandoned by
 * eng_batch_finish; any other failure stops the job after the poll. */
static void finish_in_flight(struct engine *e) {
  struct sl_error ferr = {0};
  if (e->cont) { /* continuous: the streams' epoch so far, then they end */
    int rc = eng_streams_drain(e, &ferr);
    if (rc && !e->group_rc) {
      e->group_rc = rc;
      e->group_err = ferr;
    }
    return;
  }
  if (!e->fl)
    return;
  int rc = eng_batch_finish(e, &ferr);
  if (rc && rc != SL_ERR_FENCED && !e->group_rc) {
    e->group_rc = rc;
    e->group_err = ferr;
  }
}

/* @locality coordinator, inside the source's rebalance callback */
static int hook_assigned(void *arg, const struct sl_plan *parts,
                         struct sl_error *err) {
  struct engine *e = arg;
  int64_t t0 = sl_mono_ns();
  char names[2048];
  name_parts(parts, names, sizeof(names));
  finish_in_flight(e);
  for (size_t i = 0; i < parts->n; i++)
    if (!sl_plan_find(&e->owned, parts->ranges[i].topic,
                      parts->ranges[i].partition))
      sl_plan_add(&e->owned, parts->ranges[i].topic, parts->ranges[i].partition,
                  0, 0);
  sl_plan_sort(&e->owned);
  int rc = take_parts(e, parts, true, err);
  e->rebalances++;
  e->rebalance_ns += sl_mono_ns() - t0;
  sl_info("group: assigned %zu partition%s (%s); this instance owns %zu",
          parts->n, parts->n == 1 ? "" : "s", names, e->owned.n);
  publish(e);
  return rc;
}

/* @locality coordinator, inside the source's rebalance callback. The only
 * work that can be under way for the partitions between batches is a
 * commit beside the next batch's reads (e->fl): it is finished before the
 * partitions go. */
static void hook_revoked(void *arg, const struct sl_plan *parts, bool lost) {
  struct engine *e = arg;
  int64_t t0 = sl_mono_ns();
  char names[2048];
  name_parts(parts, names, sizeof(names));
  finish_in_flight(e);
  if (e->sink.plugin->release)
    e->sink.plugin->release(&e->sink, parts);
  plan_remove(&e->pos, parts);
  plan_remove(&e->owned, parts);
  e->rebalances++;
  e->rebalance_ns += sl_mono_ns() - t0;
  sl_info("group: %s %zu partition%s (%s); this instance owns %zu",
          lost ? "lost" : "revoked", parts->n, parts->n == 1 ? "" : "s", names,
          e->owned.n);
  publish(e);
}

static int refresh(struct engine *e, struct sl_error *err);

int eng_group_poll(struct engine *e, struct sl_error *err) {
  if (!e->group)
    return 0;
  struct sl_group_hooks h = {
      .arg = e, .assigned = hook_assigned, .revoked = hook_revoked};
  e->group_rc = 0;
  int rc = e->src.plugin->group_poll(&e->src, &h, err);
  if (!rc && e->group_rc) {
    *err = e->group_err;
    rc = e->group_rc;
  }
  if (!rc && e->refresh.n)
    rc = refresh(e, err);
  publish(e);
  return rc;
}

void eng_group_abandon(struct engine *e, uint64_t batch, const char *why) {
  struct sl_error err = {0};
  char note[128];
  snprintf(note, sizeof(note), "abandoned: %.100s", why);
  sl_ckpt_set_commit_note(e->ck, note);
  if (sl_ckpt_write_commit(e->ck, batch, sl_wall_ms(), &err))
    sl_warn("group: closing abandoned batch %" PRIu64 " in the checkpoint: %s",
            batch, err.msg);
}

void eng_group_batch_fenced(struct engine *e, const struct sl_plan *plan,
                            const char *why) {
  sl_warn("group: the sink refused the commit of batch %" PRIu64
          " (%s); the batch is abandoned and its partitions resume at the "
          "sink's positions",
          plan->batch, why);
  eng_group_abandon(e, plan->batch, "fenced");
  /* continuous: the streams read on past the epoch; what they read since
   * is dropped with them, and they start again at the sink's positions */
  eng_streams_halt(e);
  /* Back to where the batch started: it committed nothing (a batch read
   * beside it, planned from its ends, is dropped by the caller). */
  plan_remove(&e->pos, plan);
  for (size_t i = 0; i < plan->n; i++) {
    const struct sl_range *r = &plan->ranges[i];
    sl_plan_add(&e->pos, r->topic, r->partition, r->start, r->start);
    if (!sl_plan_find(&e->refresh, r->topic, r->partition))
      sl_plan_add(&e->refresh, r->topic, r->partition, 0, 0);
  }
}

void eng_group_streams_fenced(struct engine *e, const char *why) {
  sl_warn("group: the sink refused a stream's write (%s); the streams end "
          "and start again at the sink's positions",
          why);
  eng_streams_halt(e);
  for (size_t i = 0; i < e->owned.n; i++) {
    const struct sl_range *r = &e->owned.ranges[i];
    if (!sl_plan_find(&e->refresh, r->topic, r->partition))
      sl_plan_add(&e->refresh, r->topic, r->partition, 0, 0);
  }
}

/* After a fenced commit: the partitions of the batch that are still the
 * instance's read their positions from the sink again (another owner
 * may have committed them meanwhile), claimed again. A partition the sink
 * has no position for starts where the batch did. */
static int refresh(struct engine *e, struct sl_error *err) {
  struct sl_plan still = {0}, keep = {0};
  finish_in_flight(e);
  for (size_t i = 0; i < e->refresh.n; i++)
    if (sl_plan_find(&e->owned, e->refresh.ranges[i].topic,
                     e->refresh.ranges[i].partition))
      sl_plan_add(&still, e->refresh.ranges[i].topic,
                  e->refresh.ranges[i].partition, 0, 0);
  sl_plan_clear(&e->refresh);
  int rc = 0;
  if (still.n) {
    sl_plan_copy(&keep, &e->pos);
    rc = take_parts(e, &still, true, err);
    for (size_t i = 0; !rc && i < still.n; i++) {
      const struct sl_range *s = &still.ranges[i];
      const struct sl_range *was = sl_plan_find(&keep, s->topic, s->partition);
      if (was && !sl_plan_find(&e->pos, s->topic, s->partition))
        sl_plan_add(&e->pos, s->topic, s->partition, was->end, was->end);
    }
  }
  sl_plan_clear(&still);
  sl_plan_clear(&keep);
  return rc;
}

/* After batch N's sink commit and commits/N: a sink without positions
 * (at-least-once) has the group's offsets store its ends. */
void eng_group_committed(struct engine *e, const struct sl_plan *plan) {
  if (!e->group || !e->group_offsets)
    return;
  struct sl_error err = {0};
  if (e->src.plugin->group_commit(&e->src, plan, &err))
    sl_warn("group: %s (the next owner of these partitions may read some "
            "records again: at-least-once)",
            err.msg);
}

/* Group mode has no re-run: a batch logged but not committed is closed
 * as abandoned, batch ids go on after everything the log holds, and no
 * partition has a position until the group assigns it. */
int eng_group_recover(struct engine *e, struct sl_error *err) {
  struct sl_ckpt_state st;
  if (sl_ckpt_scan(e->ck, &st, err))
    return err->code;
  uint64_t last = st.last_commit;
  if (st.last_offsets > st.last_commit) {
    eng_group_abandon(e, st.last_offsets, "at restart, in group mode");
    sl_info("group: batch %" PRIu64 " was planned but not committed: "
            "closed as abandoned (its partitions resume at the sink's "
            "positions once assigned)",
            st.last_offsets);
    last = st.last_offsets;
  }
  e->next_batch = last + 1;
  sl_info("group mode: instance %s in group '%s'; batches continue at "
          "%" PRIu64 "; partitions start once the group assigns them",
          e->instance, e->src_info.group_id, e->next_batch);
  return 0;
}

/* A stable id of this instance: the host name and the checkpoint
 * directory's real path, hashed (FNV-1a, 64 bits). Two instances never
 * share a checkpoint directory (it is locked), so the id is unique among
 * running instances, and a restart on the same directory has the same id
 * (the Kafka sink's transactional.id: the restart fences its own zombie
 * and settles its open transaction). */
void eng_group_instance(struct engine *e) {
  char host[256] = "", path[4096];
  gethostname(host, sizeof(host) - 1);
  if (!realpath(e->job->checkpoint.dir, path))
    snprintf(path, sizeof(path), "%s", e->job->checkpoint.dir);
  uint64_t h = 1469598103934665603ULL;
  for (const char *s = host; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  h = (h ^ ':') * 1099511628211ULL;
  for (const char *s = path; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  snprintf(e->instance, sizeof(e->instance), "%016" PRIx64, h);
}
