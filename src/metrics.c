/* metrics.c - Prometheus metrics, health, readiness and progress over
 * HTTP (see metrics.h). */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "progress.h"
#include "util.h"

const struct sl_cfg_field sl_metrics_conf_map[] = {
    {.key = "listen",
     .type = SL_CFG_T_STR,
     .def = "127.0.0.1:9464",
     .offset = offsetof(struct sl_metrics_conf, listen),
     .desc = "address of the HTTP endpoint (host:port; port 0 picks one); "
             "keep it on loopback unless something must scrape from afar"},
    {.key = "history",
     .type = SL_CFG_T_INT,
     .def = "20",
     .offset = offsetof(struct sl_metrics_conf, history),
     .desc = "batch progress objects kept for /progress",
     .min = 1,
     .max = 10000},
    {.key = "idle_timeout",
     .type = SL_CFG_T_DURATION,
     .def = "10s",
     .offset = offsetof(struct sl_metrics_conf, idle_timeout),
     .desc = "a connection that sends nothing for this long is closed "
             "(whole seconds, rounded up)",
     .min = 1000000000LL,
     .max = 3600000000000LL},
    {0}};

/* Batch duration buckets, seconds. */
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                 1,     2.5,  5,     10,   30,  60};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

/* Record latency buckets, seconds. Record timestamps are whole
 * milliseconds, so the first bucket holds everything under 1 ms. */
static const double lat_buckets[] = {
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60};
#define NLAT (sizeof(lat_buckets) / sizeof(lat_buckets[0]))

struct part {
  char *topic;
  int32_t partition;
  int64_t committed, latest;
};

struct sl_metrics {
  struct sl_metrics_info info;
  char *job_id, *source, *sink;
  pthread_mutex_t mu;
  bool ready;
  /* counters, under mu */
  int64_t batches, read, lost, filtered, late, dead, written;
  uint64_t hist[NBUCKETS + 1]; /* per bucket, +Inf last */
  double duration_sum;
  double plan_s, wal_s, process_s, sink_s, commit_s;
  int64_t retries[3]; /* enum sl_retry_kind */
  int64_t state_windows, state_bytes;
  bool has_state;
  int64_t last_batch, last_batch_ms;
  struct part *parts;
  size_t nparts;
  char **progress; /* ring of the last history objects */
  size_t nprogress, next_progress;
  int64_t start_ms;
  _Atomic int64_t *busy_ns; /* per worker */
  /* the continuous trigger, updated by the streams with atomics */
  _Atomic uint64_t lat[NLAT + 1]; /* per bucket, +Inf last */
  _Atomic int64_t lat_sum_ms, lat_unknown, in_flight;
  struct MHD_Daemon *daemon;
  unsigned port;
  /* group mode (sl_metrics_group) */
  bool group;
  int64_t assigned, rebalances;
  double rebalance_s;
};

struct sl_metrics *sl_metrics_new(const struct sl_metrics_info *info) {
  struct sl_metrics *m = sl_calloc(1, sizeof(*m));
  m->info = *info;
  m->job_id = sl_strdup(info->job_id);
  m->source = sl_strdup(info->source);
  m->sink = sl_strdup(info->sink);
  pthread_mutex_init(&m->mu, NULL);
  m->progress = sl_calloc((size_t)info->history, sizeof(*m->progress));
  m->busy_ns =
      sl_calloc(info->workers ? info->workers : 1, sizeof(*m->busy_ns));
  m->start_ms = sl_wall_ms();
  return m;
}

void sl_metrics_free(struct sl_metrics *m) {
  if (!m)
    return;
  if (m->daemon)
    MHD_stop_daemon(m->daemon);
  for (size_t i = 0; i < m->nparts; i++)
    free(m->parts[i].topic);
  free(m->parts);
  for (size_t i = 0; i < (size_t)m->info.history; i++)
    free(m->progress[i]);
  free(m->progress);
  free(m->busy_ns);
  free(m->job_id);
  free(m->source);
  free(m->sink);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

/* ------------------------------------------------------------ updates */

void sl_metrics_set_ready(struct sl_metrics *m, bool ready) {
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  m->ready = ready;
  pthread_mutex_unlock(&m->mu);
}

static struct part *part_of(struct sl_metrics *m, const char *topic,
                            int32_t partition) {
  for (size_t i = 0; i < m->nparts; i++)
    if (m->parts[i].partition == partition &&
        strcmp(m->parts[i].topic, topic) == 0)
      return &m->parts[i];
  m->parts = sl_realloc(m->parts, (m->nparts + 1) * sizeof(*m->parts));
  struct part *p = &m->parts[m->nparts++];
  *p = (struct part){.topic = sl_strdup(topic), .partition = partition};
  return p;
}

void sl_metrics_batch(struct sl_metrics *m, const struct sl_progress *p) {
  if (!m)
    return;
  char *json = sl_progress_json(p);
  double secs = (double)p->total_ms / 1e3;
  pthread_mutex_lock(&m->mu);
  m->batches++;
  m->read += p->records;
  m->lost += p->lost;
  m->filtered += p->filtered;
  m->late += p->late;
  m->dead += p->dead;
  m->written += p->out;
  size_t b = 0;
  while (b < NBUCKETS && secs > buckets[b])
    b++;
  m->hist[b]++;
  m->duration_sum += secs;
  m->plan_s += (double)p->plan_ms / 1e3;
  m->wal_s += (double)p->wal_ms / 1e3;
  m->process_s += (double)p->process_ms / 1e3;
  m->sink_s += (double)p->sink_ms / 1e3;
  m->commit_s += (double)p->commit_ms / 1e3;
  m->last_batch = (int64_t)p->batch;
  m->last_batch_ms = sl_wall_ms();
  for (size_t i = 0; p->plan && i < p->plan->n; i++) {
    const struct sl_range *r = &p->plan->ranges[i];
    part_of(m, r->topic, r->partition)->committed = r->end;
  }
  for (size_t i = 0; p->latest && i < p->latest->n; i++) {
    const struct sl_range *r = &p->latest->ranges[i];
    part_of(m, r->topic, r->partition)->latest = r->end;
  }
  free(m->progress[m->next_progress]);
  m->progress[m->next_progress] = json;
  m->next_progress = (m->next_progress + 1) % (size_t)m->info.history;
  if (m->nprogress < (size_t)m->info.history)
    m->nprogress++;
  pthread_mutex_unlock(&m->mu);
}

void sl_metrics_group(struct sl_metrics *m, const struct sl_plan *owned,
                      int64_t rebalances, double rebalance_s) {
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  m->group = true;
  m->assigned = (int64_t)owned->n;
  m->rebalances = rebalances;
  m->rebalance_s = rebalance_s;
  size_t k = 0;
  for (size_t i = 0; i < m->nparts; i++) {
    if (sl_plan_find(owned, m->parts[i].topic, m->parts[i].partition))
      m->parts[k++] = m->parts[i];
    else
      free(m->parts[i].topic);
  }
  m->nparts = k;
  pthread_mutex_unlock(&m->mu);
}

void sl_metrics_retry(struct sl_metrics *m, enum sl_retry_kind kind) {
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  m->retries[kind]++;
  pthread_mutex_unlock(&m->mu);
}

void sl_metrics_state(struct sl_metrics *m, size_t windows, size_t bytes) {
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  m->has_state = true;
  m->state_windows = (int64_t)windows;
  m->state_bytes = (int64_t)bytes;
  pthread_mutex_unlock(&m->mu);
}

void sl_metrics_records_written(struct sl_metrics *m,
                                const struct sl_batch *b) {
  if (!m || b->n == 0)
    return;
  int64_t now = sl_wall_ms(), sum = 0, unknown = 0;
  for (size_t i = 0; i < b->n; i++) {
    int64_t ts = b->recs[i].timestamp;
    if (ts < 0) {
      unknown++;
      continue;
    }
    int64_t ms = now > ts ? now - ts : 0;
    size_t k = 0;
    while (k < NLAT && (double)ms / 1e3 >= lat_buckets[k])
      k++;
    atomic_fetch_add_explicit(&m->lat[k], 1, memory_order_relaxed);
    sum += ms;
  }
  atomic_fetch_add_explicit(&m->lat_sum_ms, sum, memory_order_relaxed);
  if (unknown)
    atomic_fetch_add_explicit(&m->lat_unknown, unknown, memory_order_relaxed);
}

void sl_metrics_in_flight(struct sl_metrics *m, int64_t delta) {
  if (m)
    atomic_fetch_add_explicit(&m->in_flight, delta, memory_order_relaxed);
}

void sl_metrics_worker_busy(struct sl_metrics *m, unsigned worker, int64_t ns) {
  if (!m || worker >= m->info.workers)
    return;
  atomic_fetch_add_explicit(&m->busy_ns[worker], ns, memory_order_relaxed);
}

/* ---------------------------------------------------------- rendering */

static void head(struct sl_buf *b, const char *name, const char *type,
                 const char *help) {
  sl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int64_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (!f)
    return 0;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
    rss = 0;
  fclose(f);
  return (int64_t)rss * sysconf(_SC_PAGESIZE);
}

char *sl_metrics_render(struct sl_metrics *m) {
  struct sl_buf b = {0};
  sl_buf_reserve(&b, 4096);
  const char *src = m->source, *snk = m->sink;
  pthread_mutex_lock(&m->mu);
  head(&b, "sluice_build_info", "gauge", "Version and job of this process.");
  sl_buf_printf(&b, "sluice_build_info{version=\"%s\",job=\"%s\"} 1\n",
                SLUICE_VERSION, m->job_id);
  head(&b, "sluice_ready", "gauge",
       "1 once the source and the sink are connected and recovery is done.");
  sl_buf_printf(&b, "sluice_ready %d\n", m->ready ? 1 : 0);
  if (m->group) {
    head(&b, "sluice_group_assigned_partitions", "gauge",
         "Partitions the consumer group assigned this instance.");
    sl_buf_printf(&b, "sluice_group_assigned_partitions %lld\n",
                  (long long)m->assigned);
    head(&b, "sluice_group_rebalances_total", "counter",
         "Rebalances this instance took part in (assignments and "
         "revocations served).");
    sl_buf_printf(&b, "sluice_group_rebalances_total %lld\n",
                  (long long)m->rebalances);
    head(&b, "sluice_group_rebalance_seconds_total", "counter",
         "Time spent serving rebalances: finishing the batch in flight, "
         "claims and positions.");
    sl_buf_printf(&b, "sluice_group_rebalance_seconds_total %.6f\n",
                  m->rebalance_s);
  }
  head(&b, "sluice_batches_total", "counter", "Batches committed.");
  sl_buf_printf(&b, "sluice_batches_total %lld\n", (long long)m->batches);
  head(&b, "sluice_last_committed_batch", "gauge",
       "Id of the last committed batch.");
  sl_buf_printf(&b, "sluice_last_committed_batch %lld\n",
                (long long)m->last_batch);
  head(&b, "sluice_last_commit_timestamp_seconds", "gauge",
       "Wall clock of the last batch commit.");
  sl_buf_printf(&b, "sluice_last_commit_timestamp_seconds %.3f\n",
                (double)m->last_batch_ms / 1e3);
  head(&b, "sluice_source_records_total", "counter",
       "Records read from the source.");
  sl_buf_printf(&b, "sluice_source_records_total{source=\"%s\"} %lld\n", src,
                (long long)m->read);
  head(&b, "sluice_source_records_lost_total", "counter",
       "Records deleted by retention before they could be read "
       "(fail_on_data_loss: false).");
  sl_buf_printf(&b, "sluice_source_records_lost_total{source=\"%s\"} %lld\n",
                src, (long long)m->lost);
  head(&b, "sluice_operator_records_dropped_total", "counter",
       "Records an operator dropped on purpose.");
  sl_buf_printf(
      &b, "sluice_operator_records_dropped_total{operator=\"filter\"} %lld\n",
      (long long)m->filtered);
  sl_buf_printf(&b,
                "sluice_operator_records_dropped_total{operator=\"window\","
                "reason=\"late\"} %lld\n",
                (long long)m->late);
  head(&b, "sluice_dead_letters_total", "counter",
       "Records sent to the dead letters (including late ones).");
  sl_buf_printf(&b, "sluice_dead_letters_total %lld\n", (long long)m->dead);
  head(&b, "sluice_sink_records_total", "counter",
       "Records written to the sink (committed).");
  sl_buf_printf(&b, "sluice_sink_records_total{sink=\"%s\"} %lld\n", snk,
                (long long)m->written);
  head(&b, "sluice_batch_duration_seconds", "histogram",
       "Time from planning to the checkpoint commit of a batch.");
  uint64_t cum = 0;
  for (size_t i = 0; i < NBUCKETS; i++) {
    cum += m->hist[i];
    sl_buf_printf(&b, "sluice_batch_duration_seconds_bucket{le=\"%g\"} %llu\n",
                  buckets[i], (unsigned long long)cum);
  }
  cum += m->hist[NBUCKETS];
  sl_buf_printf(&b, "sluice_batch_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)cum);
  sl_buf_printf(&b, "sluice_batch_duration_seconds_sum %.6f\n",
                m->duration_sum);
  sl_buf_printf(&b, "sluice_batch_duration_seconds_count %llu\n",
                (unsigned long long)cum);
  head(&b, "sluice_batch_phase_seconds_total", "counter",
       "Time spent per phase of the batches.");
  const struct {
    const char *name;
    double v;
  } ph[] = {{"plan", m->plan_s},
            {"checkpoint_offsets", m->wal_s},
            {"process", m->process_s},
            {"sink_commit", m->sink_s},
            {"checkpoint_commit", m->commit_s}};
  for (size_t i = 0; i < SL_ARRAY_LEN(ph); i++)
    sl_buf_printf(&b, "sluice_batch_phase_seconds_total{phase=\"%s\"} %.6f\n",
                  ph[i].name, ph[i].v);
  head(&b, "sluice_sink_retries_total", "counter",
       "Sink calls retried after a retriable failure (an outage).");
  sl_buf_printf(&b, "sluice_sink_retries_total{sink=\"%s\"} %lld\n", snk,
                (long long)m->retries[SL_RETRY_SINK]);
  head(&b, "sluice_source_retries_total", "counter",
       "Batch plannings retried while the source did not answer.");
  sl_buf_printf(&b, "sluice_source_retries_total{source=\"%s\"} %lld\n", src,
                (long long)m->retries[SL_RETRY_SOURCE]);
  head(&b, "sluice_task_retries_total", "counter", "Tasks run again.");
  sl_buf_printf(&b, "sluice_task_retries_total %lld\n",
                (long long)m->retries[SL_RETRY_TASK]);
  const char *pnames[3][2] = {
      {"sluice_partition_committed_offset",
       "End offset of the last committed batch."},
      {"sluice_partition_latest_offset",
       "High watermark seen when the last batch was planned."},
      {"sluice_partition_lag_records",
       "Records after the committed offset (latest - committed)."}};
  for (int k = 0; k < 3; k++) {
    head(&b, pnames[k][0], "gauge", pnames[k][1]);
    for (size_t i = 0; i < m->nparts; i++) {
      const struct part *p = &m->parts[i];
      int64_t v = k == 0   ? p->committed
                  : k == 1 ? p->latest
                           : SL_MAX(p->latest - p->committed, (int64_t)0);
      sl_buf_printf(&b, "%s{topic=\"%s\",partition=\"%d\"} %lld\n",
                    pnames[k][0], p->topic, p->partition, (long long)v);
    }
  }
  if (m->has_state) {
    head(&b, "sluice_state_windows", "gauge",
         "Window state entries held (window x group key).");
    sl_buf_printf(&b, "sluice_state_windows %lld\n",
                  (long long)m->state_windows);
    head(&b, "sluice_state_bytes", "gauge", "Bytes of window state held.");
    sl_buf_printf(&b, "sluice_state_bytes %lld\n", (long long)m->state_bytes);
  }
  pthread_mutex_unlock(&m->mu);
  head(&b, "sluice_worker_busy_seconds_total", "counter",
       "Time each worker spent running tasks.");
  for (unsigned w = 0; w < m->info.workers; w++)
    sl_buf_printf(
        &b, "sluice_worker_busy_seconds_total{worker=\"%u\"} %.6f\n", w,
        (double)atomic_load_explicit(&m->busy_ns[w], memory_order_relaxed) /
            1e9);
  head(&b, "sluice_record_latency_seconds", "histogram",
       "Continuous trigger: time from a record's timestamp to its sink "
       "write (whole milliseconds).");
  uint64_t lcum = 0;
  for (size_t i = 0; i < NLAT; i++) {
    lcum += atomic_load_explicit(&m->lat[i], memory_order_relaxed);
    sl_buf_printf(&b, "sluice_record_latency_seconds_bucket{le=\"%g\"} %llu\n",
                  lat_buckets[i], (unsigned long long)lcum);
  }
  lcum += atomic_load_explicit(&m->lat[NLAT], memory_order_relaxed);
  sl_buf_printf(&b, "sluice_record_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)lcum);
  sl_buf_printf(
      &b, "sluice_record_latency_seconds_sum %.3f\n",
      (double)atomic_load_explicit(&m->lat_sum_ms, memory_order_relaxed) / 1e3);
  sl_buf_printf(&b, "sluice_record_latency_seconds_count %llu\n",
                (unsigned long long)lcum);
  head(&b, "sluice_records_in_flight", "gauge",
       "Continuous trigger: records read whose epoch is not committed.");
  sl_buf_printf(
      &b, "sluice_records_in_flight %lld\n",
      (long long)atomic_load_explicit(&m->in_flight, memory_order_relaxed));
  head(&b, "process_resident_memory_bytes", "gauge",
       "Resident memory size in bytes.");
  sl_buf_printf(&b, "process_resident_memory_bytes %lld\n",
                (long long)rss_bytes());
  head(&b, "process_start_time_seconds", "gauge",
       "Start time of the process since the epoch in seconds.");
  sl_buf_printf(&b, "process_start_time_seconds %.3f\n",
                (double)m->start_ms / 1e3);
  return sl_buf_take(&b);
}

char *sl_metrics_progress_json(struct sl_metrics *m) {
  struct sl_buf b = {0};
  sl_buf_reserve(&b, 1024);
  sl_buf_printf(&b, "[");
  pthread_mutex_lock(&m->mu);
  size_t h = (size_t)m->info.history;
  size_t first = (m->next_progress + h - m->nprogress) % h;
  for (size_t i = 0; i < m->nprogress; i++)
    sl_buf_printf(&b, "%s%s", i ? ",\n" : "\n", m->progress[(first + i) % h]);
  pthread_mutex_unlock(&m->mu);
  sl_buf_printf(&b, "\n]\n");
  return sl_buf_take(&b);
}

/* ------------------------------------------------------------- server */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *type, char *body) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(body), body, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header(r, "Content-Type", type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, "Allow", "GET, HEAD");
  enum MHD_Result rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

/* @locality the server's thread */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
  struct sl_metrics *m = cls;
  (void)version;
  (void)upload;
  (void)upload_size;
  (void)con_cls;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                 sl_strdup("only GET and HEAD\n"));
  if (strcmp(url, "/metrics") == 0)
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                 sl_metrics_render(m));
  if (strcmp(url, "/health") == 0)
    return reply(c, MHD_HTTP_OK, "text/plain", sl_strdup("ok\n"));
  if (strcmp(url, "/ready") == 0) {
    pthread_mutex_lock(&m->mu);
    bool ready = m->ready;
    pthread_mutex_unlock(&m->mu);
    return reply(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                 "text/plain", sl_strdup(ready ? "ready\n" : "not ready\n"));
  }
  if (strcmp(url, "/progress") == 0)
    return reply(c, MHD_HTTP_OK, "application/json",
                 sl_metrics_progress_json(m));
  return reply(c, MHD_HTTP_NOT_FOUND, "text/plain",
               sl_strdup("not found: try /metrics, /health, /ready or "
                         "/progress\n"));
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) ||
           (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

/* The server may hold SL_METRICS_MAX_CONNECTIONS sockets beside the job's
 * own (Kafka, Redis, files): raise the soft limit on descriptors towards
 * the hard one when it is lower than that needs. */
static void raise_nofile(void) {
  const rlim_t want = SL_METRICS_MAX_CONNECTIONS + 1024;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
    return;
  rlim_t to =
      rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
  if (to <= rl.rlim_cur)
    return;
  rl.rlim_cur = to;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
    sl_debug("metrics: cannot raise the open files limit: %s", strerror(errno));
}

int sl_metrics_serve(struct sl_metrics *m, const struct sl_metrics_conf *conf,
                     struct sl_error *err) {
  const char *listen = conf->listen;
  const char *colon = strrchr(listen, ':');
  if (!colon || colon == listen || !colon[1])
    return sl_error_setf(err, SL_ERR_CONFIG, SL_ERR_FATAL,
                         "metrics.listen '%s' is not host:port", listen);
  char host[256];
  snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = '\0';
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                  *ai = NULL;
  int gai = getaddrinfo(host, colon + 1, &hints, &ai);
  if (gai)
    return sl_error_setf(err, SL_ERR_CONFIG, SL_ERR_FATAL,
                         "metrics.listen '%s': %s", listen, gai_strerror(gai));
  if (!is_loopback(ai->ai_addr))
    sl_warn("metrics.listen %s is not a loopback address: /metrics, "
            "/progress and the job's topics are open to the network "
            "(no authentication); put a firewall or a proxy in front",
            listen);
  raise_nofile();
  /* epoll: no FD_SETSIZE bound on the descriptors' numbers. */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
  if (ai->ai_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  unsigned idle = (unsigned)((conf->idle_timeout + 999999999) / 1000000000);
  m->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, handle, m, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
      MHD_OPTION_CONNECTION_TIMEOUT, idle, MHD_OPTION_CONNECTION_LIMIT,
      SL_METRICS_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)SL_METRICS_CONNECTION_MEMORY, MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!m->daemon)
    return sl_error_setf(err, SL_ERR_IO, SL_ERR_FATAL,
                         "metrics: cannot listen on %s (in use, or not an "
                         "address of this machine?)",
                         listen);
  const union MHD_DaemonInfo *di =
      MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
  m->port = di ? di->port : 0;
  sl_info("metrics on http://%s:%u/metrics (also /health, /ready, "
          "/progress)",
          host, m->port);
  return 0;
}

unsigned sl_metrics_port(const struct sl_metrics *m) {
  return m ? m->port : 0;
}
