/* mock.c - the embedded Kafka cluster (librdkafka's mock brokers).
 *
 * The mock cluster speaks the real Kafka protocol over TCP on 127.0.0.1;
 * it lives inside an rd_kafka_t handle of its own, which has no other use.
 */
#include "kafka.h" /* rdkafka.h first: rdkafka_mock.h needs it */

#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>

#include "../../src/util.h"

struct sl_mock {
  rd_kafka_t *rk;
  rd_kafka_mock_cluster_t *mc;
};

struct sl_mock *sl_mock_new(int brokers, struct sl_error *err) {
  char errstr[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  sl_kafka_conf_logging(conf);
  struct sl_mock *m = sl_calloc(1, sizeof(*m));
  m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!m->rk) {
    sl_error_set(err, SL_ERR_SOURCE, "embedded Kafka: %s", errstr);
    free(m);
    return NULL;
  }
  m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
  if (!m->mc) {
    sl_error_set(err, SL_ERR_SOURCE,
                 "embedded Kafka: cannot start %d mock brokers", brokers);
    rd_kafka_destroy(m->rk);
    free(m);
    return NULL;
  }
  return m;
}

const char *sl_mock_bootstraps(const struct sl_mock *m) {
  return rd_kafka_mock_cluster_bootstraps(m->mc);
}

int sl_mock_topic_create(struct sl_mock *m, const char *topic, int partitions,
                         struct sl_error *err) {
  rd_kafka_resp_err_t e =
      rd_kafka_mock_topic_create(m->mc, topic, partitions, 1);
  if (e)
    return sl_error_set(err, SL_ERR_SOURCE,
                        "embedded Kafka: cannot create topic '%s': %s", topic,
                        rd_kafka_err2str(e));
  return 0;
}

void *sl_mock_cluster(struct sl_mock *m) {
  return m->mc;
}

void sl_mock_destroy(struct sl_mock *m) {
  if (!m)
    return;
  rd_kafka_mock_cluster_destroy(m->mc);
  rd_kafka_destroy(m->rk);
  free(m);
}
