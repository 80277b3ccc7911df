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
