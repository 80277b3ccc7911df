/*
 * metrics.h - what a running job exposes over HTTP (libmicrohttpd):
 *
 *   /metrics   Prometheus text format (version 0.0.4)
 *   /health    200 while the process serves (liveness)
 *   /ready     200 once the source and the sink are connected and recovery
 *              is done, 503 before (and after a fatal error)
 *   /progress  the last `history` batch progress objects, a JSON array
 *
 * Off unless the job has `metrics: { listen: HOST:PORT }`. The coordinator
 * updates the numbers once per batch under a mutex; the server's thread
 * renders them under the same mutex. Per-worker busy time is added by the
 * workers with atomics. Every function accepts m == NULL (metrics off) and
 * then does nothing.
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../config/config.h"
#include "error.h"
#include "record.h"

struct sl_progress;

struct sl_metrics_conf {
  char *listen;         /* "127.0.0.1:9464"; NULL: off */
  int64_t history;      /* progress objects kept for /progress */
  int64_t idle_timeout; /* ns; a connection idle this long is closed */
};
extern const struct sl_cfg_field sl_metrics_conf_map[];

/* The bounds of the HTTP server (docs/ARCHITECTURE.md, "Security
 * defaults"): connections open at once, and the memory of one connection,
 * which holds its request line and headers (a request that does not fit
 * is refused, 431, and the connection closed). */
#define SL_METRICS_MAX_CONNECTIONS   1024u
#define SL_METRICS_CONNECTION_MEMORY (32u * 1024u)

struct sl_metrics;

struct sl_metrics_info {
  const char *job_id;
  const char *source; /* plugin names, for labels */
  const char *sink;
  unsigned workers;
  int64_t history;
};

/* The numbers without a server (for `sluice test`-like use and unit
 * tests). */
struct sl_metrics *sl_metrics_new(const struct sl_metrics_info *info);
/* Starts serving on conf->listen ("host:port", port 0 picks one), with
 * conf->idle_timeout; warns (once) when the address is not a loopback
 * one. */
int sl_metrics_serve(struct sl_metrics *m, const struct sl_metrics_conf *conf,
                     struct sl_error *err);
/* The port served on (after sl_metrics_serve), 0 when not serving. */
unsigned sl_metrics_port(const struct sl_metrics *m);
/* Stops the server and frees. */
void sl_metrics_free(struct sl_metrics *m);

void sl_metrics_set_ready(struct sl_metrics *m, bool ready);
/* A committed batch: its counts, phase times, offsets and progress JSON. */
void sl_metrics_batch(struct sl_metrics *m, const struct sl_progress *p);
/* A retried sink commit (or sink call), batch planning (the source was
 * out) or task. */
enum sl_retry_kind { SL_RETRY_SINK, SL_RETRY_SOURCE, SL_RETRY_TASK };
void sl_metrics_retry(struct sl_metrics *m, enum sl_retry_kind kind);
/* Group mode: the partitions assigned (owned), the rebalances served and
 * the time spent in them. The per-partition series of partitions the
 * instance no longer owns are dropped (their values would go stale). */
struct sl_plan;
void sl_metrics_group(struct sl_metrics *m, const struct sl_plan *owned,
                      int64_t rebalances, double rebalance_s);
/* Window state size after a batch. */
void sl_metrics_state(struct sl_metrics *m, size_t windows, size_t bytes);
/* The continuous trigger. Records a stream handed to the sink, each with
 * its timestamp (ms since the epoch, -1 unknown): the latency from it to
 * now goes into sluice_record_latency_seconds; and the records read but
 * not yet committed (delta > 0 when read, < 0 when their epoch commits).
 * @locality any thread */
void sl_metrics_records_written(struct sl_metrics *m, const struct sl_batch *b);
void sl_metrics_in_flight(struct sl_metrics *m, int64_t delta);
/* Time a worker spent running tasks. @locality worker thread */
void sl_metrics_worker_busy(struct sl_metrics *m, unsigned worker, int64_t ns);

/* The /metrics and /progress bodies (malloc'd). */
char *sl_metrics_render(struct sl_metrics *m);
char *sl_metrics_progress_json(struct sl_metrics *m);

#endif
