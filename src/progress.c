/* progress.c - see progress.h. */
#include "progress.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

/* {"topic": {"0": 12, "1": 40}}, the offsets format Spark uses. */
static cJSON *offsets_json(const struct sl_plan *p, int use_end) {
  cJSON *o = cJSON_CreateObject();
  for (size_t i = 0; p && i < p->n; i++) {
    const struct sl_range *r = &p->ranges[i];
    cJSON *t = cJSON_GetObjectItemCaseSensitive(o, r->topic);
    if (!t)
      t = cJSON_AddObjectToObject(o, r->topic);
    char part[16];
    snprintf(part, sizeof(part), "%d", r->partition);
    cJSON_AddNumberToObject(t, part, (double)(use_end ? r->end : r->start));
  }
  return o;
}

static void iso8601(int64_t ms, char *buf, size_t n) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + k, n - k, ".%03dZ", (int)(ms % 1000));
}

static bool tty;
static int64_t first_ms; /* when the first batch of this run started */

void sl_progress_set_tty(bool on) {
  tty = on;
}

void sl_progress_end(FILE *out) {
  if (sl_log_status_line()) {
    fputc('\n', out);
    fflush(out);
  }
  sl_log_set_status_line(false);
}

/* 1234567 -> "1.2M" */
static const char *human(double v, char *buf, size_t n) {
  if (v >= 1e9)
    snprintf(buf, n, "%.1fG", v / 1e9);
  else if (v >= 1e6)
    snprintf(buf, n, "%.1fM", v / 1e6);
  else if (v >= 1e4)
    snprintf(buf, n, "%.0fk", v / 1e3);
  else
    snprintf(buf, n, "%.0f", v);
  return buf;
}

/* The status line: "\r", the text, then clear to the end of the line. */
static void status_line(FILE *out, const struct sl_progress *p) {
  char a[16], b[16], c[16];
  int64_t now = sl_wall_ms();
  if (!first_ms)
    first_ms = p->timestamp_ms ? p->timestamp_ms : now;
  fputs("\rsluice: ", out);
  if (p->bounded) {
    int64_t all = p->done + p->remaining;
    double frac = all > 0 ? (double)p->done / (double)all : 1;
    int filled = (int)(frac * 24 + 0.5);
    fputc('[', out);
    for (int i = 0; i < 24; i++)
      fputc(i < filled ? '#' : '.', out);
    double secs = (double)(now - first_ms) / 1e3;
    double rate = secs > 0 ? (double)p->done / secs : 0;
    fprintf(out, "] %3.0f%% %s/%s records, %s/s", frac * 100,
            human((double)p->done, a, sizeof(a)),
            human((double)all, b, sizeof(b)), human(rate, c, sizeof(c)));
    if (p->remaining > 0 && rate > 0) {
      long eta = (long)((double)p->remaining / rate + 0.5);
      fprintf(out, ", ETA %ld:%02ld", eta / 60, eta % 60);
    }
    fprintf(out, ", batch %llu", (unsigned long long)p->batch);
  } else {
    fprintf(out, "batch %llu, %s records/s, lag %s, last batch %lld ms",
            (unsigned long long)p->batch,
            human(p->processed_rate, a, sizeof(a)),
            human((double)p->lag, b, sizeof(b)), (long long)p->total_ms);
  }
  if (p->dead)
    fprintf(out, ", %lld dead letters", (long long)p->dead);
  fputs("\033[K", out);
  fflush(out);
  sl_log_set_status_line(true);
}

void sl_progress_write(FILE *out, enum sl_progress_format fmt,
                       const struct sl_progress *p) {
  if (fmt == SL_PROGRESS_NONE)
    return;
  if (fmt == SL_PROGRESS_TEXT && tty) {
    status_line(out, p);
    return;
  }
  if (fmt == SL_PROGRESS_TEXT) {
    fprintf(out,
            "sluice: batch %llu: %lld records in %lld ms (%.0f records/s), "
            "lag %lld",
            (unsigned long long)p->batch, (long long)p->records,
            (long long)p->total_ms, p->processed_rate, (long long)p->lag);
    if (p->out != p->records)
      fprintf(out, ", %lld out", (long long)p->out);
    if (p->dead)
      fprintf(out, ", %lld dead letters", (long long)p->dead);
    if (p->late)
      fprintf(out, " (%lld late)", (long long)p->late);
    if (p->lost)
      fprintf(out, ", %lld lost to retention", (long long)p->lost);
    if (p->owned) {
      fprintf(out, ", owns %zu partition%s:", p->owned->n,
              p->owned->n == 1 ? "" : "s");
      for (size_t i = 0; i < p->owned->n && i < 64; i++)
        fprintf(out, "%s%s[%d]", i ? "," : " ", p->owned->ranges[i].topic,
                p->owned->ranges[i].partition);
      if (p->owned->n > 64)
        fprintf(out, ",...");
    }
    fputc('\n', out);
    fflush(out);
    return;
  }
  char *txt = sl_progress_json(p);
  fprintf(out, "%s\n", txt);
  fflush(out);
  free(txt);
}

char *sl_progress_json(const struct sl_progress *p) {
  char ts[40];
  iso8601(p->timestamp_ms, ts, sizeof(ts));
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", p->job_id);
  cJSON_AddStringToObject(o, "runId", p->run_id);
  cJSON_AddStringToObject(o, "name", p->job_id);
  cJSON_AddStringToObject(o, "timestamp", ts);
  cJSON_AddNumberToObject(o, "batchId", (double)p->batch);
  cJSON_AddNumberToObject(o, "numInputRows", (double)p->records);
  cJSON_AddNumberToObject(o, "inputRowsPerSecond", p->input_rate);
  cJSON_AddNumberToObject(o, "processedRowsPerSecond", p->processed_rate);
  cJSON *d = cJSON_AddObjectToObject(o, "durationMs");
  cJSON_AddNumberToObject(d, "latestOffset", (double)p->plan_ms);
  cJSON_AddNumberToObject(d, "walCommit", (double)p->wal_ms);
  cJSON_AddNumberToObject(d, "addBatch", (double)(p->process_ms + p->sink_ms));
  cJSON_AddNumberToObject(d, "sinkCommit", (double)p->sink_ms);
  cJSON_AddNumberToObject(d, "commitOffsets", (double)p->commit_ms);
  cJSON_AddNumberToObject(d, "triggerExecution", (double)p->total_ms);
  cJSON *srcs = cJSON_AddArrayToObject(o, "sources");
  cJSON *s = cJSON_CreateObject();
  cJSON_AddStringToObject(s, "description", p->source_desc);
  cJSON_AddItemToObject(s, "startOffset", offsets_json(p->plan, 0));
  cJSON_AddItemToObject(s, "endOffset", offsets_json(p->plan, 1));
  cJSON_AddItemToObject(s, "latestOffset", offsets_json(p->latest, 1));
  cJSON_AddNumberToObject(s, "numInputRows", (double)p->records);
  cJSON_AddNumberToObject(s, "inputRowsPerSecond", p->input_rate);
  cJSON_AddNumberToObject(s, "processedRowsPerSecond", p->processed_rate);
  cJSON_AddNumberToObject(s, "lag", (double)p->lag);
  cJSON_AddNumberToObject(s, "lostRows", (double)p->lost);
  if (p->owned) { /* group mode: "assignedPartitions": {"t": [0, 3]} */
    cJSON *a = cJSON_AddObjectToObject(s, "assignedPartitions");
    for (size_t i = 0; i < p->owned->n; i++) {
      const struct sl_range *r = &p->owned->ranges[i];
      cJSON *t = cJSON_GetObjectItemCaseSensitive(a, r->topic);
      if (!t)
        t = cJSON_AddArrayToObject(a, r->topic);
      cJSON_AddItemToArray(t, cJSON_CreateNumber(r->partition));
    }
  }
  cJSON_AddItemToArray(srcs, s);
  cJSON *k = cJSON_AddObjectToObject(o, "sink");
  cJSON_AddStringToObject(k, "description", p->sink_desc);
  cJSON_AddNumberToObject(k, "numOutputRows", (double)p->out);
  cJSON *ops = cJSON_AddObjectToObject(o, "pipeline");
  cJSON_AddNumberToObject(ops, "numFilteredRows", (double)p->filtered);
  cJSON_AddNumberToObject(ops, "numDeadLetterRows", (double)p->dead);
  cJSON_AddNumberToObject(ops, "numLateRows", (double)p->late);
  char *txt = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!txt)
    abort();
  return txt;
}
