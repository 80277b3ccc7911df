/* produce.c - writes generated clickstream records to a topic. */
#include <stdatomic.h>
#include <time.h>

#include "../../src/clickgen.h"
#include "../../src/util.h"
#include "kafka.h"

struct delivery {
  atomic_ullong failed;
  rd_kafka_resp_err_t first_err;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  struct delivery *d = opaque;
  (void)rk;
  if (m->err && atomic_fetch_add(&d->failed, 1) == 0)
    d->first_err = m->err;
}

int sl_produce_clicks(const struct sl_produce_opts *o, struct sl_error *err) {
  char errstr[512], buf[SL_CLICKGEN_MAX], key[8];
  struct delivery d = {0};
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  sl_kafka_conf_logging(conf);
  int rc = 0;
  if (sl_kafka_conf_set(conf, "bootstrap.servers", o->brokers, err) ||
      sl_kafka_conf_set(conf, "linger.ms", "5", err) ||
      sl_kafka_conf_set(conf, "batch.num.messages", "10000", err) ||
      sl_kafka_conf_set(conf, "queue.buffering.max.messages", "500000", err) ||
      sl_kafka_conf_set(conf, "message.timeout.ms", "30000", err)) {
    rd_kafka_conf_destroy(conf);
    return err->code;
  }
  for (size_t i = 0; o->properties && i < o->properties->n; i++)
    if (sl_kafka_conf_set(conf, o->properties->keys[i],
                          o->properties->values[i], err)) {
      rd_kafka_conf_destroy(conf);
      return err->code;
    }
  rd_kafka_conf_set_opaque(conf, &d);
  rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
  rd_kafka_t *rk =
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return sl_error_set(err, SL_ERR_SOURCE, "producer: %s", errstr);
  }
  int64_t t0 = sl_mono_ns();
  for (uint64_t i = 0; i < o->count; i++) {
    uint64_t id = o->first + i;
    size_t klen, n = sl_clickgen(o->seed, id, buf, key, &klen);
    if (o->rate > 0) {
      /* Pace to the requested rate: record i is due at t0 + i / rate. */
      int64_t due = t0 + (int64_t)((double)i * 1e9 / o->rate);
      int64_t wait;
      while ((wait = due - sl_mono_ns()) > 0)
        rd_kafka_poll(rk, (int)(wait / 1000000) + 1);
    }
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_KEY(key, klen),
          RD_KAFKA_V_VALUE(buf, n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_END);
      if (!e)
        break;
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rc = sl_error_set(err, SL_ERR_SOURCE, "produce to '%s': %s", o->topic,
                          rd_kafka_err2str(e));
        goto out;
      }
      rd_kafka_poll(rk, 10);
    }
    if ((i & 1023) == 0)
      rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rc = sl_error_set(err, SL_ERR_TIMEOUT,
                      "producer: %d records not acknowledged after 60s "
                      "(is the broker at %s reachable?)",
                      rd_kafka_outq_len(rk), o->brokers);
    goto out;
  }
  if (atomic_load(&d.failed))
    rc = sl_error_set(err, SL_ERR_SOURCE,
                      "producer: %llu records failed to be delivered: %s",
                      (unsigned long long)atomic_load(&d.failed),
                      rd_kafka_err2str(d.first_err));
out:
  rd_kafka_destroy(rk);
  return rc;
}
