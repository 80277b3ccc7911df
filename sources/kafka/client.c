/* client.c - librdkafka configuration shared by source and producer. */
#include "kafka.h"

#include <string.h>

#include "../../src/log.h"

/* Also every name validate --print masks (sl_cfg_secret_name: token,
 * credential, ssl.key..., in any case), so that an error never shows a
 * value that --print hides. */
bool sl_kafka_secret_property(const char *name) {
  return strstr(name, "password") || strstr(name, "secret") ||
         strstr(name, "sasl.jaas") || strstr(name, "sasl.oauthbearer.config") ||
         strstr(name, "ssl.key.pem") || strstr(name, "ssl_key") ||
         sl_cfg_secret_name(name);
}

int sl_kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
                      const char *value, struct sl_error *err) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) ==
      RD_KAFKA_CONF_OK)
    return 0;
  if (sl_kafka_secret_property(name))
    return sl_error_set(err, SL_ERR_CONFIG,
                        "invalid value for Kafka property '%s' (value not "
                        "shown: secret)",
                        name);
  return sl_error_set(err, SL_ERR_CONFIG, "Kafka property '%s': %s", name,
                      errstr);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
  (void)rk;
  if (level <= 3)
    sl_log(SL_LOG_ERROR, "kafka: %s: %s", fac, buf);
  else if (level == 4)
    sl_log(SL_LOG_WARN, "kafka: %s: %s", fac, buf);
  else
    sl_log(SL_LOG_DEBUG, "kafka: %s: %s", fac, buf);
}

void sl_kafka_conf_logging(rd_kafka_conf_t *conf) {
  rd_kafka_conf_set_log_cb(conf, log_cb);
}

/* rd_kafka_query_watermark_offsets is not used: in librdkafka 2.0.2 it
 * retries its request until a broker answers, beyond its timeout
 * (measured: still waiting after 75 s with a 1 s timeout, brokers down),
 * and a planning try that hangs is one the engine cannot retry. */
rd_kafka_resp_err_t
sl_kafka_query_marks(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *l,
                     int64_t *lo, int64_t *hi, int timeout_ms,
                     const rd_kafka_topic_partition_t **what) {
  *what = NULL;
  for (int round = 0; round < 2; round++) {
    rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_copy(l);
    for (int i = 0; i < q->cnt; i++)
      q->elems[i].offset =
          round == 0 ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
    rd_kafka_resp_err_t e =
        rd_kafka_offsets_for_times(rk, q, timeout_ms > 0 ? timeout_ms : 1);
    for (int i = 0; i < q->cnt && !e; i++) {
      if (q->elems[i].err) {
        e = q->elems[i].err;
        *what = &l->elems[i];
      } else {
        (round == 0 ? lo : hi)[i] = q->elems[i].offset;
      }
    }
    rd_kafka_topic_partition_list_destroy(q);
    if (e)
      return e;
  }
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}
