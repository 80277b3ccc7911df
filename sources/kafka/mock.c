/* mock.c - the embedded Kafka cluster (librdkafka's mock brokers).
 *
 * The mock cluster speaks the real Kafka protocol over TCP on 127.0.0.1;
 * it lives inside an rd_kafka_t handle of its own, which has no other use.
 */
#include "kafka.h" /* rdkafka.h first: rdkafka_mock.h needs it */

#include <dirent.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../src/log.h"
#include "../../src/util.h"

struct sl_mock {
  rd_kafka_t *rk;
  rd_kafka_mock_cluster_t *mc;
  int brokers;
};

/* librdkafka's mock brokers leave Nagle's algorithm on. A broker's answer
 * written while its previous answer is still unacknowledged then waits for
 * the client's ACK, and a client that has nothing to send delays its ACK
 * by up to 40 ms: a start-up's metadata answers stalled that long in about
 * half of the runs (docs/benchmarks.md). Real brokers set TCP_NODELAY. On
 * Linux an accepted socket inherits it from its listener, so it is set on
 * the listeners, found among this process's descriptors by their ports.
 * Returns how many listeners were set. */
static int nodelay_listeners(const char *bootstraps) {
  int ports[64], nports = 0, done = 0;
  for (const char *p = bootstraps; p && *p && nports < 64;) {
    const char *colon = strchr(p, ':'), *comma = strchr(p, ',');
    if (!colon || (comma && colon > comma))
      break;
    ports[nports++] = atoi(colon + 1);
    p = comma ? comma + 1 : colon + strlen(colon);
  }
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return 0;
  for (struct dirent *e; (e = readdir(d));) {
    int fd = atoi(e->d_name), listening = 0, one = 1;
    socklen_t n = sizeof(listening);
    struct sockaddr_in sa;
    socklen_t sn = sizeof(sa);
    if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &n) ||
        !listening || getsockname(fd, (struct sockaddr *)&sa, &sn) ||
        sa.sin_family != AF_INET)
      continue;
    for (int i = 0; i < nports; i++)
      if (ports[i] == ntohs(sa.sin_port) &&
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
        done++;
  }
  closedir(d);
  return done;
}

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
  m->brokers = brokers;
  m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
  if (!m->mc) {
    sl_error_set(err, SL_ERR_SOURCE,
                 "embedded Kafka: cannot start %d mock brokers", brokers);
    rd_kafka_destroy(m->rk);
    free(m);
    return NULL;
  }
  int set = nodelay_listeners(rd_kafka_mock_cluster_bootstraps(m->mc));
  if (set != brokers)
    sl_warn("embedded Kafka: TCP_NODELAY set on %d of %d brokers; the "
            "others may answer up to 40 ms late",
            set, brokers);
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

/* ------------------------------------------------------------ control */

static const struct {
  const char *name;
  int16_t key;
} mock_apis[] = {
    {"Produce", 0},          {"Fetch", 1},           {"ListOffsets", 2},
    {"Metadata", 3},         {"OffsetCommit", 8},    {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},      {"Heartbeat", 12},
    {"SyncGroup", 14},       {"InitProducerId", 22}, {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25}, {"EndTxn", 26},         {"TxnOffsetCommit", 28}};

static int parse_api(const char *s, int16_t *key) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s && !*end && v >= 0 && v < 100) {
    *key = (int16_t)v;
    return 0;
  }
  for (size_t i = 0; i < SL_ARRAY_LEN(mock_apis); i++)
    if (strcmp(s, mock_apis[i].name) == 0) {
      *key = mock_apis[i].key;
      return 0;
    }
  return -1;
}

static int parse_code(const char *s, rd_kafka_resp_err_t *code) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s && !*end) {
    *code = (rd_kafka_resp_err_t)v;
    return 0;
  }
  const struct rd_kafka_err_desc *d;
  size_t n;
  rd_kafka_get_err_descs(&d, &n);
  for (size_t i = 0; i < n; i++)
    if (d[i].name && strcmp(d[i].name, s) == 0) {
      *code = d[i].code;
      return 0;
    }
  return -1;
}

int sl_mock_control(struct sl_mock *m, const char *line, char *reply,
                    size_t n) {
  char verb[16], a[64], b[64];
  int count = 1, id;
  int got = sscanf(line, "%15s %63s %63s %d", verb, a, b, &count);
  if (got >= 2 && (strcmp(verb, "down") == 0 || strcmp(verb, "up") == 0) &&
      sscanf(a, "%d", &id) == 1 && got == 2) {
    bool down = strcmp(verb, "down") == 0;
    rd_kafka_resp_err_t e = down ? rd_kafka_mock_broker_set_down(m->mc, id)
                                 : rd_kafka_mock_broker_set_up(m->mc, id);
    if (e) {
      snprintf(reply, n, "error: %s %d: %s", verb, id, rd_kafka_err2str(e));
      return -1;
    }
    snprintf(reply, n, "ok %s %d", verb, id);
    return 0;
  }
  int16_t key;
  rd_kafka_resp_err_t code;
  if (got >= 3 && strcmp(verb, "error") == 0 && count >= 1 &&
      parse_api(a, &key) == 0 && parse_code(b, &code) == 0) {
    for (int i = 0; i < count; i++)
      rd_kafka_mock_push_request_errors(m->mc, key, 1, code);
    snprintf(reply, n, "ok error %s %s %d", a, rd_kafka_err2name(code), count);
    return 0;
  }
  int ms;
  if (got >= 3 && strcmp(verb, "delay") == 0 && count >= 1 &&
      parse_api(a, &key) == 0 && sscanf(b, "%d", &ms) == 1 && ms >= 0) {
    /* every broker's answers to the next COUNT requests of API: the
     * request succeeds, its answer comes MS later */
    for (int b_id = 1; b_id <= m->brokers; b_id++)
      for (int i = 0; i < count; i++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_broker_push_request_error_rtts(
            m->mc, b_id, key, 1, RD_KAFKA_RESP_ERR_NO_ERROR, ms);
        if (e) {
          snprintf(reply, n, "error: delay %s on broker %d: %s", a, b_id,
                   rd_kafka_err2str(e));
          return -1;
        }
      }
    snprintf(reply, n, "ok delay %s %d ms %d", a, ms, count);
    return 0;
  }
  snprintf(reply, n,
           "error: unknown command '%.60s' (down N | up N | error API CODE "
           "[COUNT] | delay API MS [COUNT])",
           line);
  return -1;
}
