/* meta.c - attempt ids, the committed-offsets metadata and the sink's
 * record of its last batch (ksink.h). Pure functions. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../../src/util.h"
#include "ksink.h"

void sl_ksink_run_id(char *buf, size_t n, int64_t wall_ms, unsigned pid) {
  snprintf(buf, n, "%" PRIx64 "-%x", (uint64_t)wall_ms, pid);
}

void sl_ksink_attempt_id(char *buf, size_t n, const char *run, uint64_t k) {
  snprintf(buf, n, "%s.%" PRIu64, run, k);
}

bool sl_ksink_attempt_valid(const char *s, size_t len) {
  if (len == 0 || len >= SL_KSINK_ATTEMPT_MAX)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '.' ||
          c == '-'))
      return false;
  }
  return true;
}

int sl_ksink_meta_format(char *buf, size_t n, uint64_t batch,
                         const char *attempt) {
  int len = snprintf(buf, n, "{\"batch\":%" PRIu64 ",\"attempt\":\"%s\"}",
                     batch, attempt);
  return len < 0 || (size_t)len >= n ? -1 : len;
}

int sl_ksink_meta_parse(const char *md, size_t len, uint64_t *batch,
                        char *attempt) {
  if (!md || len == 0)
    return -1;
  cJSON *j = cJSON_ParseWithLength(md, len);
  if (!j)
    return -1;
  int rc = -1;
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "batch");
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "attempt");
  if (cJSON_IsObject(j) && cJSON_IsNumber(b) && cJSON_IsString(a) &&
      b->valuedouble >= 1 && b->valuedouble < 9007199254740992.0 &&
      b->valuedouble == (double)(uint64_t)b->valuedouble &&
      sl_ksink_attempt_valid(a->valuestring, strlen(a->valuestring))) {
    *batch = (uint64_t)b->valuedouble;
    snprintf(attempt, SL_KSINK_ATTEMPT_MAX, "%s", a->valuestring);
    rc = 0;
  }
  cJSON_Delete(j);
  return rc;
}

int sl_ksink_pick_committed(const rd_kafka_topic_partition_list_t *l,
                            const char *group, struct sl_ksink_committed *out,
                            struct sl_error *err) {
  out->batch = 0;
  out->attempt[0] = '\0';
  /* First pass: the highest batch and its attempt. */
  for (int i = 0; i < l->cnt; i++) {
    const rd_kafka_topic_partition_t *tp = &l->elems[i];
    uint64_t batch;
    char attempt[SL_KSINK_ATTEMPT_MAX];
    if (tp->err)
      return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                           "reading the committed offsets of group '%s' for "
                           "%s[%d]: %s",
                           group, tp->topic, tp->partition,
                           rd_kafka_err2str(tp->err));
    if (tp->offset < 0)
      continue; /* nothing committed for this partition */
    if (sl_ksink_meta_parse(tp->metadata, tp->metadata_size, &batch, attempt))
      return sl_error_set(err, SL_ERR_CORRUPT,
                          "group '%s' holds an offset for %s[%d] that sluice "
                          "did not commit (metadata '%.*s'): is the group "
                          "used by another consumer? Set sink.kafka.group to "
                          "a group of its own",
                          group, tp->topic, tp->partition,
                          (int)SL_MIN(tp->metadata_size, (size_t)80),
                          tp->metadata ? (const char *)tp->metadata : "");
    if (batch > out->batch) {
      out->batch = batch;
      memcpy(out->attempt, attempt, sizeof(attempt));
    } else if (batch == out->batch && strcmp(attempt, out->attempt) != 0) {
      return sl_error_set(err, SL_ERR_CORRUPT,
                          "group '%s' holds batch %" PRIu64 " from two "
                          "attempts ('%s' and '%s'): the offsets of one "
                          "batch are committed in one transaction",
                          group, batch, out->attempt, attempt);
    }
  }
  /* Second pass: the end offsets of that batch, and every partition's
   * position (the first pass checked every metadata). */
  for (int i = 0; i < l->cnt && out->batch; i++) {
    const rd_kafka_topic_partition_t *tp = &l->elems[i];
    uint64_t batch;
    char attempt[SL_KSINK_ATTEMPT_MAX];
    if (tp->offset < 0 ||
        sl_ksink_meta_parse(tp->metadata, tp->metadata_size, &batch, attempt))
      continue;
    sl_plan_add(&out->pos, tp->topic, tp->partition, tp->offset, tp->offset);
    if (batch == out->batch)
      sl_plan_add(&out->end, tp->topic, tp->partition, tp->offset, tp->offset);
  }
  sl_plan_sort(&out->end);
  sl_plan_sort(&out->pos);
  return 0;
}

int sl_ksink_pick_positions(const rd_kafka_topic_partition_list_t *l,
                            const char *group, struct sl_ksink_committed *out,
                            struct sl_error *err) {
  out->batch = 0;
  out->attempt[0] = '\0';
  for (int i = 0; i < l->cnt; i++) {
    const rd_kafka_topic_partition_t *tp = &l->elems[i];
    uint64_t batch;
    char attempt[SL_KSINK_ATTEMPT_MAX];
    if (tp->err) {
      sl_plan_clear(&out->pos);
      return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                           "reading the committed offsets of group '%s' for "
                           "%s[%d]: %s",
                           group, tp->topic, tp->partition,
                           rd_kafka_err2str(tp->err));
    }
    if (tp->offset < 0)
      continue;
    if (sl_ksink_meta_parse(tp->metadata, tp->metadata_size, &batch, attempt)) {
      sl_plan_clear(&out->pos);
      return sl_error_set(err, SL_ERR_CORRUPT,
                          "group '%s' holds an offset for %s[%d] that sluice "
                          "did not commit (metadata '%.*s'): is the group "
                          "used by another consumer?",
                          group, tp->topic, tp->partition,
                          (int)SL_MIN(tp->metadata_size, (size_t)80),
                          tp->metadata ? (const char *)tp->metadata : "");
    }
    sl_plan_add(&out->pos, tp->topic, tp->partition, tp->offset, tp->offset);
  }
  sl_plan_sort(&out->pos);
  return 0;
}

void sl_ksink_default_id(char *buf, size_t n, const char *conf,
                         const char *job_id, bool dead_letters) {
  if (conf)
    snprintf(buf, n, "%s", conf);
  else
    snprintf(buf, n, "sluice-%s%s", job_id,
             dead_letters ? "-dead-letters" : "");
}
