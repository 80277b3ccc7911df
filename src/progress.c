/* progress.c - see progress.h. */
#include "progress.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void sl_progress_write(FILE *out, enum sl_progress_format fmt,
                       const struct sl_progress *p) {
  if (fmt == SL_PROGRESS_NONE)
    return;
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
