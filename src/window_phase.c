/*
 * window_phase.c - the window part of a batch, on the coordinator.
 *
 * After the read tasks: merge their partials into the state (shard ranges
 * in parallel), advance the watermark, emit and serialize (in parallel
 * again), rank for `top`, and write the state snapshot before the sink
 * commit (invariant 5). Also the state's restore at start (load_state).
 */
#include "engine_int.h"

/* `top`: ranks the rows of all emit tasks per window and stages the
 * winners from the coordinator, as one more task of the batch. */
static int stage_top(struct engine *e, const struct sl_plan *plan,
                     struct task_ctx **tcs, size_t *n, unsigned groups,
                     struct sl_pipe_stats *stats, struct sl_error *err) {
  size_t total = 0, k = 0;
  for (size_t g = *n - groups; g < *n; g++)
    total += (*tcs)[g].ntop;
  char **rows = sl_calloc(total ? total : 1, sizeof(*rows));
  for (size_t g = *n - groups; g < *n; g++) {
    for (size_t i = 0; i < (*tcs)[g].ntop; i++)
      rows[k++] = (*tcs)[g].top_rows[i];
    (*tcs)[g].ntop = 0;
  }
  sl_pipeline_apply_top(e->job->pipeline, rows, &total);
  *tcs = sl_realloc(*tcs, (*n + 1) * sizeof(**tcs));
  struct task_ctx *tc = *tcs + *n;
  *tc = (struct task_ctx){.kind = TASK_EMIT, .e = e};
  struct sl_task t = {.batch = plan->batch, .id = (uint32_t)*n};
  (*n)++;
  struct sl_batch b = {0};
  sl_batch_reserve(&b, total ? total : 1);
  for (size_t i = 0; i < total; i++)
    b.recs[b.n++] = (struct sl_record){
        .value = rows[i], .value_len = strlen(rows[i]), .topic = ""};
  struct worker_ctx w = {0}; /* the coordinator's, for rejects */
  int rc = eng_stage_out(e, tc, &t, &w, &b, err);
  if (!rc)
    rc = eng_close_stage(&e->sink, tc->stage, err);
  if (!rc)
    rc = eng_close_stage(&e->dl, tc->dl_stage, err);
  sl_rejects_free(&w.rejects);
  sl_batch_free(&w.rdead);
  stats->out += (int64_t)total - tc->sink_rejected;
  stats->dead += tc->sink_rejected;
  for (size_t i = 0; i < total; i++)
    free(rows[i]);
  free(rows);
  sl_batch_free(&b);
  return rc;
}

/* The window part of a batch: merge the tasks' partials into the state
 * (shard ranges in parallel), advance the watermark, emit and snapshot
 * (in parallel again), and write the snapshot before the sink commit
 * (invariant 5). Emit tasks are appended to *tcs so that their stages
 * commit with the batch. */
int eng_run_window(struct engine *e, const struct sl_plan *plan,
                   struct task_ctx **tcs, size_t *n,
                   struct sl_pipe_stats *stats, struct sl_error *err) {
  const struct sl_window_spec *spec = sl_wstate_spec(e->ws);
  unsigned shards = spec->shards;
  unsigned groups = SL_MIN(shards, sl_pool_workers(e->pool) * 4);
  e->parts = sl_calloc(*n ? *n : 1, sizeof(*e->parts));
  e->nparts = 0;
  for (size_t i = 0; i < *n; i++)
    if ((*tcs)[i].pipe && sl_pipe_task_partial((*tcs)[i].pipe))
      e->parts[e->nparts++] = sl_pipe_task_partial((*tcs)[i].pipe);
  struct task_ctx *m = sl_calloc(groups, sizeof(*m));
  for (unsigned g = 0; g < groups; g++)
    m[g] = (struct task_ctx){.kind = TASK_MERGE,
                             .e = e,
                             .shard_lo = g * shards / groups,
                             .shard_hi = (g + 1) * shards / groups};
  int64_t w0 = sl_mono_ns();
  int rc = eng_run_phase(e, plan->batch, m, groups, (uint32_t)*n, err);
  free(m);
  int64_t w1 = sl_mono_ns();
  if (!rc)
    sl_wstate_advance(e->ws, e->parts, e->nparts);
  free(e->parts);
  e->parts = NULL;
  if (rc)
    return rc;
  size_t bytes = sl_wstate_bytes(e->ws);
  if ((int64_t)bytes > e->job->state.max_bytes)
    return sl_error_setf(
        err, SL_ERR_INVAL, SL_ERR_FATAL,
        "window state holds %zu bytes in %zu windows, more than "
        "state.max_bytes (%lld): raise state.max_bytes, shorten the "
        "watermark, or group by fewer keys",
        bytes, sl_wstate_windows(e->ws), (long long)e->job->state.max_bytes);
  *tcs = sl_realloc(*tcs, (*n + groups) * sizeof(**tcs));
  struct task_ctx *em = *tcs + *n;
  for (unsigned g = 0; g < groups; g++)
    em[g] = (struct task_ctx){.kind = TASK_EMIT,
                              .e = e,
                              .shard_lo = g * shards / groups,
                              .shard_hi = (g + 1) * shards / groups};
  *n += groups;
  int64_t w2 = sl_mono_ns();
  if ((rc = eng_run_phase(e, plan->batch, em, groups, (uint32_t)(*n - groups),
                          err)))
    return rc;
  int64_t w3 = sl_mono_ns();
  if (sl_pipeline_top(e->job->pipeline) &&
      (rc = stage_top(e, plan, tcs, n, groups, stats, err)))
    return rc;
  em = *tcs + *n - groups - (sl_pipeline_top(e->job->pipeline) ? 1 : 0);
  /* The changed shards of N go into one file, state/N/shards; the pack
   * points at the images in the emit tasks, freed with the batch's tasks
   * after the commit. e->shard_batch changes only once the pack is
   * durable: a failed write leaves it naming the files that hold the
   * shards. */
  struct sl_state_pack pack;
  sl_state_pack_init(&pack, plan->batch);
  for (unsigned g = 0; g < groups; g++) {
    if (!sl_pipeline_top(e->job->pipeline))
      stats->out += em[g].stats.out;
    stats->dead += em[g].stats.dead;
    stats->filtered += em[g].stats.filtered;
    for (size_t i = 0; i < em[g].nimages; i++)
      sl_state_pack_add(&pack, em[g].images[i].shard, em[g].images[i].data,
                        em[g].images[i].len);
  }
  rc = sl_ckpt_state_write_pack(e->ck, &pack, err);
  for (size_t i = 0; !rc && i < pack.n; i++)
    e->shard_batch[pack.img[i].shard] = plan->batch;
  size_t npacked = pack.n;
  sl_state_pack_free(&pack);
  if (rc)
    return rc;
  struct sl_state_index x = {.batch = plan->batch,
                             .watermark = sl_wstate_watermark(e->ws),
                             .max_event = sl_wstate_max_event(e->ws),
                             .nshards = shards,
                             .shard_batch = e->shard_batch};
  rc = sl_ckpt_state_write_index(e->ck, &x, err);
  if (!rc)
    rc = sl_failpoint_err("batch.after_state", err);
  int64_t w4 = sl_mono_ns();
  sl_debug("batch %" PRIu64 " window: merge %.1f, advance %.1f, emit %.1f, "
           "state %.1f ms (%zu shards)",
           plan->batch, (double)(w1 - w0) / 1e6, (double)(w2 - w1) / 1e6,
           (double)(w3 - w2) / 1e6, (double)(w4 - w3) / 1e6, npacked);
  return rc;
}

/* Loads the window state as of batch `batch` (0: empty). */
int eng_load_state(struct engine *e, uint64_t batch, struct sl_error *err) {
  const struct sl_window_spec *spec = sl_wstate_spec(e->ws);
  if (batch == 0)
    return 0;
  int64_t t0 = sl_mono_ns();
  struct sl_state_index x;
  int rc = sl_ckpt_state_read_index(e->ck, batch, &x, err);
  if (rc == SL_ERR_NOTFOUND)
    return sl_error_setf(err, SL_ERR_CORRUPT, SL_ERR_FATAL,
                         "the checkpoint in %s has no window state for "
                         "committed batch %" PRIu64 " (was the window added "
                         "to a job that ran without one? use a new "
                         "checkpoint directory)",
                         e->job->checkpoint.dir, batch);
  if (rc)
    return rc;
  if (x.nshards != spec->shards) {
    sl_state_index_free(&x);
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "window state of batch %" PRIu64 " has %u shards, "
                        "expected %u",
                        batch, x.nshards, spec->shards);
  }
  /* Each batch the index names is opened once (its pack read and
   * verified once), for every shard whose image it holds, oldest first;
   * done[] marks the shards restored. */
  bool *done = sl_calloc(x.nshards ? x.nshards : 1, sizeof(*done));
  for (unsigned s = 0; s < x.nshards; s++)
    e->shard_batch[s] = x.shard_batch[s];
  for (unsigned s = 0; s < x.nshards && !rc; s++) {
    if (!x.shard_batch[s] || done[s])
      continue;
    struct sl_state_reader r;
    if ((rc = sl_state_reader_open(e->ck, x.shard_batch[s], &r, err)))
      break;
    for (unsigned k = s; k < x.nshards && !rc; k++) {
      const void *data;
      size_t len;
      if (x.shard_batch[k] != r.batch)
        continue;
      done[k] = true;
      if (!(rc = sl_state_reader_shard(&r, k, &data, &len, err)) &&
          (rc = sl_wstate_shard_restore(e->ws, k, data, len, err)))
        sl_error_prefix(err, "%s/state/%" PRIu64, sl_ckpt_dir(e->ck), r.batch);
    }
    sl_state_reader_close(&r);
  }
  free(done);
  if (!rc) {
    sl_wstate_set_times(e->ws, x.max_event, x.watermark);
    sl_info("window state restored from batch %" PRIu64 ": %zu windows, "
            "%.1f MB, watermark %lld, in %.1f ms",
            batch, sl_wstate_windows(e->ws),
            (double)sl_wstate_bytes(e->ws) / 1e6, (long long)x.watermark,
            (double)(sl_mono_ns() - t0) / 1e6);
  }
  sl_state_index_free(&x);
  return rc;
}
