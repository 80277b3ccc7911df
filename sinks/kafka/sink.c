/*
 * sink.c - writes records to a Kafka topic.
 *
 * At-least-once for now: every staged record of a batch is produced by an
 * idempotent producer and the commit waits until all are acknowledged; a
 * batch that is re-run after a crash is produced again. (Transactions,
 * which make it exactly-once, are the next step of this sink.)
 *
 * Stages copy the records (the source's bytes are released after each
 * chunk); commit produces them in task order, so the order of the records
 * of one input partition is kept. Each record carries a header
 * `sluice.batch` with its batch id.
 */
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../sources/kafka/kafka.h"
#include "../../src/plugin.h"
#include "../../src/util.h"

struct ksink_conf {
  struct sl_sink_common common; /* first: the engine reads it */
  char *brokers;
  char *topic;
  bool exactly_once;
  int64_t timeout_ns;
  struct sl_strmap properties;
};

static const struct sl_cfg_field ksink_map[] = {
    {.key = "brokers",
     .type = SL_CFG_T_STR,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct ksink_conf, brokers),
     .desc = "bootstrap servers host:port,..."},
    {.key = "topic",
     .type = SL_CFG_T_STR,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct ksink_conf, topic),
     .desc = "topic to write"},
    {.key = "exactly_once",
     .type = SL_CFG_T_BOOL,
     .def = "false",
     .offset = offsetof(struct ksink_conf, exactly_once),
     .desc = "transactional, exactly-once writes (not available yet: "
             "false writes at-least-once with an idempotent producer)"},
    {.key = "timeout",
     .type = SL_CFG_T_DURATION,
     .def = "30s",
     .offset = offsetof(struct ksink_conf, timeout_ns),
     .desc = "how long a commit waits for every record to be acknowledged"},
    {.key = "properties",
     .type = SL_CFG_T_STRMAP,
     .offset = offsetof(struct ksink_conf, properties),
     .desc = "librdkafka producer properties, passed through"},
    {0}};

struct ksink {
  rd_kafka_t *rk;
  const struct ksink_conf *conf;
  atomic_ullong failed;
  rd_kafka_resp_err_t first_err;
  char describe[300];
};

struct krec {
  size_t key_off, key_len, val_off, val_len;
  bool has_key, has_val;
};

struct kstage {
  char *buf; /* the key and value bytes of every record */
  size_t len, cap;
  struct krec *recs;
  size_t n, rcap;
};

static int ksink_validate(const void *vconf, const struct sl_cfg_node *node,
                          struct sl_error *err) {
  const struct ksink_conf *c = vconf;
  if (c->exactly_once)
    return sl_cfg_error(err, sl_cfg_get(node, "exactly_once"),
                        "exactly_once: true is not available yet in this "
                        "version; use false (at-least-once)");
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  for (size_t i = 0; i < c->properties.n; i++) {
    if (sl_kafka_conf_set(conf, c->properties.keys[i], c->properties.values[i],
                          err)) {
      char msg[sizeof(err->msg)];
      snprintf(msg, sizeof(msg), "%s", err->msg);
      rd_kafka_conf_destroy(conf);
      return sl_cfg_error(err, sl_cfg_get(node, "properties"), "%s", msg);
    }
  }
  rd_kafka_conf_destroy(conf);
  return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  struct ksink *ks = opaque;
  (void)rk;
  if (m->err && atomic_fetch_add(&ks->failed, 1) == 0)
    ks->first_err = m->err;
}

static int ksink_init(struct sl_sink *sink, struct sl_error *err) {
  const struct ksink_conf *c = sink->conf;
  struct ksink *ks = sl_calloc(1, sizeof(*ks));
  char errstr[512];
  sink->ctx = ks;
  ks->conf = c;
  snprintf(ks->describe, sizeof(ks->describe), "Kafka[%s] (at-least-once)",
           c->topic);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  sl_kafka_conf_logging(conf);
  const char *kv[][2] = {{"bootstrap.servers", c->brokers},
                         {"enable.idempotence", "true"},
                         {"linger.ms", "5"},
                         {"batch.num.messages", "10000"}};
  for (size_t i = 0; i < SL_ARRAY_LEN(kv); i++)
    if (sl_kafka_conf_set(conf, kv[i][0], kv[i][1], err))
      goto fail;
  for (size_t i = 0; i < c->properties.n; i++)
    if (sl_kafka_conf_set(conf, c->properties.keys[i], c->properties.values[i],
                          err))
      goto fail;
  rd_kafka_conf_set_opaque(conf, ks);
  rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
  ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!ks->rk) {
    sl_error_set(err, SL_ERR_SINK, "Kafka sink: %s", errstr);
    goto fail;
  }
  return 0;
fail:
  rd_kafka_conf_destroy(conf);
  return err->code ? err->code : SL_ERR_SINK;
}

static int ksink_stage_open(struct sl_sink *sink, uint64_t batch, uint32_t task,
                            void **stage, struct sl_error *err) {
  (void)sink;
  (void)batch;
  (void)task;
  (void)err;
  *stage = sl_calloc(1, sizeof(struct kstage));
  return 0;
}

static size_t put(struct kstage *s, const char *p, size_t n) {
  if (s->len + n > s->cap) {
    s->cap = SL_MAX(s->cap * 2, s->len + n + 65536);
    s->buf = sl_realloc(s->buf, s->cap);
  }
  size_t off = s->len;
  if (n)
    memcpy(s->buf + off, p, n);
  s->len += n;
  return off;
}

static int ksink_stage_write(void *stage, const struct sl_batch *b, struct sl_rejects *rejects, struct sl_error *err) {
  (void)rejects; /* every record can be written */
  struct kstage *s = stage;
  (void)err;
  for (size_t i = 0; i < b->n; i++) {
    const struct sl_record *r = &b->recs[i];
    if (s->n == s->rcap) {
      s->rcap = s->rcap ? s->rcap * 2 : 1024;
      s->recs = sl_realloc(s->recs, s->rcap * sizeof(*s->recs));
    }
    struct krec *k = &s->recs[s->n++];
    k->has_key = r->key != NULL;
    k->key_len = r->key ? r->key_len : 0;
    k->key_off = put(s, r->key, k->key_len);
    k->has_val = r->value != NULL;
    k->val_len = r->value ? r->value_len : 0;
    k->val_off = put(s, r->value, k->val_len);
  }
  return 0;
}

static int ksink_stage_close(void *stage, struct sl_error *err) {
  (void)stage;
  (void)err;
  return 0;
}

static int ksink_commit(struct sl_sink *sink, const struct sl_plan *plan,
                        void *const *stages, size_t n, struct sl_error *err) {
  struct ksink *ks = sink->ctx;
  char batch[24];
  snprintf(batch, sizeof(batch), "%llu", (unsigned long long)plan->batch);
  atomic_store(&ks->failed, 0);
  for (size_t i = 0; i < n; i++) {
    const struct kstage *s = stages[i];
    for (size_t k = 0; k < s->n; k++) {
      const struct krec *r = &s->recs[k];
      for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            ks->rk, RD_KAFKA_V_TOPIC(ks->conf->topic),
            RD_KAFKA_V_KEY(r->has_key ? s->buf + r->key_off : NULL, r->key_len),
            RD_KAFKA_V_VALUE(r->has_val ? s->buf + r->val_off : NULL,
                             r->val_len),
            RD_KAFKA_V_HEADER("sluice.batch", batch, -1),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!e)
          break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
          return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                               "Kafka sink: producing to '%s': %s",
                               ks->conf->topic, rd_kafka_err2str(e));
        rd_kafka_poll(ks->rk, 10);
      }
    }
    rd_kafka_poll(ks->rk, 0);
  }
  int timeout_ms = (int)(ks->conf->timeout_ns / 1000000);
  if (rd_kafka_flush(ks->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                         "Kafka sink: %d records to '%s' not acknowledged "
                         "within %d ms",
                         rd_kafka_outq_len(ks->rk), ks->conf->topic,
                         timeout_ms);
  if (atomic_load(&ks->failed))
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                         "Kafka sink: %llu records to '%s' failed: %s",
                         (unsigned long long)atomic_load(&ks->failed),
                         ks->conf->topic, rd_kafka_err2str(ks->first_err));
  return 0;
}

static void ksink_stage_free(struct sl_sink *sink, void *stage) {
  struct kstage *s = stage;
  (void)sink;
  if (!s)
    return;
  free(s->buf);
  free(s->recs);
  free(s);
}

static const char *ksink_describe(struct sl_sink *sink) {
  struct ksink *ks = sink->ctx;
  return ks ? ks->describe : "Kafka";
}

static void ksink_destroy(struct sl_sink *sink) {
  struct ksink *ks = sink->ctx;
  if (!ks)
    return;
  if (ks->rk) {
    rd_kafka_flush(ks->rk, 5000);
    rd_kafka_destroy(ks->rk);
  }
  free(ks);
  sink->ctx = NULL;
}

const struct sl_sink_plugin sl_sink_kafka = {
    .name = "kafka",
    .config_map = ksink_map,
    .conf_size = sizeof(struct ksink_conf),
    .flags = 0,
    .validate = ksink_validate,
    .init = ksink_init,
    .last_committed = NULL,
    .stage_open = ksink_stage_open,
    .stage_write = ksink_stage_write,
    .stage_close = ksink_stage_close,
    .commit = ksink_commit,
    .stage_free = ksink_stage_free,
    .describe = ksink_describe,
    .destroy = ksink_destroy,
};
