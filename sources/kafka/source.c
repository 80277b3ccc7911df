/*
 * source.c - the Kafka source.
 *
 * The coordinator has one client of its own for metadata and watermarks.
 * Every worker has its own consumer (reader), kept across batches: a
 * partition is added to its assignment the first time the worker reads it
 * and read from its own partition queue. A reader fetches only the
 * partition it is reading and the next prefetch_partitions ones the engine
 * hints at (kafka_prefetch): every other partition is paused and its
 * prefetch dropped, so that a reader's memory does not grow with the
 * number of partitions (2 million records on 64 partitions held ~600 MB
 * of prefetch before). No consumer-group subscription is used: the
 * checkpoint, not Kafka, owns the offsets, and every read is of an exact
 * range.
 *
 * Start-up is fast because offsets are always assigned as absolute numbers
 * (a logical offset such as BEGINNING makes librdkafka run a timed offset
 * query first).
 */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/clickgen.h"
#include "../../src/log.h"
#include "../../src/plugin.h"
#include "../../src/util.h"
#include "kafka.h"

/* ------------------------------------------------------------- config */

struct kafka_embedded {
  int64_t brokers;
  int64_t partitions;
  int64_t records;
  int64_t seed;
};

/* source.kafka.group: group mode (docs/ARCHITECTURE.md, Group mode). */
struct kafka_group {
  char *id;       /* NULL: the job runs alone */
  char *assignor; /* cooperative-sticky, the only one */
};

struct kafka_conf {
  struct sl_source_common common; /* must stay first */
  /* group: bound into a struct kafka_group by group_bind (a node here, so
   * that validate --print writes it back only when the file has it) */
  const struct sl_cfg_node *group;
  char *brokers;
  struct sl_strlist topics;
  const struct sl_cfg_node *starting_offsets;
  bool fail_on_data_loss;
  char *group_id;
  int64_t connect_timeout_ns;
  int64_t read_timeout_ns;
  int64_t prefetch_partitions;
  struct sl_strmap properties;
  struct kafka_embedded embedded;
};

static const struct sl_cfg_field embedded_map[] = {
    {.key = "brokers",
     .type = SL_CFG_T_INT,
     .def = "1",
     .offset = offsetof(struct kafka_embedded, brokers),
     .desc = "mock brokers to start",
     .min = 1,
     .max = 16},
    {.key = "partitions",
     .type = SL_CFG_T_INT,
     .def = "4",
     .offset = offsetof(struct kafka_embedded, partitions),
     .desc = "partitions of each topic",
     .min = 1,
     .max = 1024},
    {.key = "records",
     .type = SL_CFG_T_INT,
     .def = "0",
     .offset = offsetof(struct kafka_embedded, records),
     .desc = "generated clickstream records produced to each topic at start",
     .min = 0,
     .max = 100000000},
    {.key = "seed",
     .type = SL_CFG_T_INT,
     .def = "1",
     .offset = offsetof(struct kafka_embedded, seed),
     .desc = "seed of the generated records"},
    {0}};

static const struct sl_cfg_field group_map[] = {
    {.key = "id",
     .type = SL_CFG_T_STR,
     .offset = offsetof(struct kafka_group, id),
     .desc = "consumer group the instances of the job join; each plans "
             "only the partitions the group assigns it"},
    {.key = "assignor",
     .type = SL_CFG_T_STR,
     .def = "cooperative-sticky",
     .offset = offsetof(struct kafka_group, assignor),
     .desc = "partition.assignment.strategy: cooperative-sticky (incremental "
             "rebalancing: an instance gives up only the partitions that "
             "move)"},
    {0}};

static const struct sl_cfg_field kafka_map[] = {
    {.key = "brokers",
     .type = SL_CFG_T_STR,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct kafka_conf, brokers),
     .desc = "bootstrap servers host:port,...; `embedded` starts an "
             "in-process cluster on loopback"},
    {.key = "topics",
     .type = SL_CFG_T_STRLIST,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct kafka_conf, topics),
     .desc = "topics to read"},
    {.key = "starting_offsets",
     .type = SL_CFG_T_NODE,
     .offset = offsetof(struct kafka_conf, starting_offsets),
     .desc = "earliest (default), latest, or a map topic: {partition: "
             "offset} (-2 earliest, -1 latest); used only when the "
             "checkpoint has no position"},
    {.key = "fail_on_data_loss",
     .type = SL_CFG_T_BOOL,
     .def = "true",
     .offset = offsetof(struct kafka_conf, fail_on_data_loss),
     .desc = "stop when records the job still needs were deleted by "
             "retention; false: warn, count and go on"},
    {.key = "group_id",
     .type = SL_CFG_T_STR,
     .offset = offsetof(struct kafka_conf, group_id),
     .desc = "consumer group id (default sluice.<job>); offsets are kept "
             "in the checkpoint, not in the group"},
    {.key = "connect_timeout",
     .type = SL_CFG_T_DURATION,
     .def = "10s",
     .offset = offsetof(struct kafka_conf, connect_timeout_ns),
     .desc = "how long to wait for the brokers at start"},
    {.key = "read_timeout",
     .type = SL_CFG_T_DURATION,
     .def = "30s",
     .offset = offsetof(struct kafka_conf, read_timeout_ns),
     .desc = "a task fails (and is retried) when its partition gives no "
             "record for this long"},
    {.key = "prefetch_partitions",
     .type = SL_CFG_T_INT,
     .def = "1",
     .offset = offsetof(struct kafka_conf, prefetch_partitions),
     .desc = "partitions a worker fetches ahead of the one it reads (those "
             "of the ranges queued next on it); each holds up to "
             "queued.min.messages records in memory",
     .min = 0,
     .max = 64},
    {.key = "properties",
     .type = SL_CFG_T_STRMAP,
     .offset = offsetof(struct kafka_conf, properties),
     .desc = "librdkafka properties, passed through (they win over "
             "sluice's tuned defaults)"},
    {.key = "group",
     .type = SL_CFG_T_NODE,
     .offset = offsetof(struct kafka_conf, group),
     .desc = "group mode: {id: G, assignor: cooperative-sticky}; instances "
             "of the job share the partitions through the consumer group G"},
    {.key = "embedded",
     .type = SL_CFG_T_SECTION,
     .offset = offsetof(struct kafka_conf, embedded),
     .section = embedded_map,
     .desc = "the in-process cluster of `brokers: embedded`"},
    {0}};

/* ----------------------------------------------------- starting offsets */

struct start_spec {
  int mode;          /* -2 earliest, -1 latest, 0 per partition */
  struct sl_plan at; /* per partition: end = offset, -2 or -1 */
};

static int parse_starting(const struct sl_cfg_node *n, struct start_spec *s,
                          struct sl_error *err) {
  memset(s, 0, sizeof(*s));
  s->mode = -2;
  if (!n)
    return 0;
  if (n->kind == SL_CFG_SCALAR && n->scalar[0] == '{') {
    /* Spark's form: a JSON string {"topic": {"0": 23, "1": -2}}. JSON is
     * YAML, so the config loader reads it; errors name the string. */
    struct sl_cfg_node *j = sl_cfg_load_string("starting_offsets", n->scalar,
                                               strlen(n->scalar), err);
    if (!j)
      return sl_cfg_error(err, n, "starting_offsets is not valid JSON: %s",
                          err->msg);
    int rc = parse_starting(j, s, err);
    sl_cfg_free(j);
    if (rc) {
      char msg[sizeof(err->msg)];
      snprintf(msg, sizeof(msg), "%s", err->msg);
      return sl_cfg_error(err, n, "%s", msg);
    }
    return 0;
  }
  if (n->kind == SL_CFG_SCALAR) {
    if (strcmp(n->scalar, "earliest") == 0)
      s->mode = -2;
    else if (strcmp(n->scalar, "latest") == 0)
      s->mode = -1;
    else
      return sl_cfg_error(err, n,
                          "starting_offsets must be earliest, latest or a "
                          "map topic: {partition: offset}, not '%s'",
                          n->scalar);
    return 0;
  }
  if (n->kind != SL_CFG_MAP)
    return sl_cfg_error(err, n,
                        "starting_offsets must be earliest, latest or a map "
                        "topic: {partition: offset}");
  s->mode = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct sl_cfg_node *t = n->items[i];
    if (t->kind != SL_CFG_MAP) {
      sl_plan_clear(&s->at);
      return sl_cfg_error(err, t,
                          "starting_offsets.%s must be a map {partition: "
                          "offset}",
                          n->keys[i]->scalar);
    }
    for (size_t j = 0; j < t->n; j++) {
      int64_t part, off;
      if (sl_cfg_int(t->keys[j], &part, err) ||
          sl_cfg_int(t->items[j], &off, err)) {
        sl_plan_clear(&s->at);
        return err->code;
      }
      if (part < 0 || part > INT32_MAX || off < -2) {
        sl_plan_clear(&s->at);
        return sl_cfg_error(err, t->keys[j],
                            "partition must be >= 0 and offset >= -2 "
                            "(-2 earliest, -1 latest)");
      }
      sl_plan_add(&s->at, n->keys[i]->scalar, (int32_t)part, 0, off);
    }
  }
  return 0;
}

/* source.kafka.group into g (sl_cfg_unbind(group_map, g) frees it). */
static int group_bind(const struct sl_cfg_node *n, struct kafka_group *g,
                      struct sl_error *err) {
  if (n->kind != SL_CFG_MAP)
    return sl_cfg_error(err, n,
                        "source.kafka.group must be a map {id: G, assignor: "
                        "cooperative-sticky}");
  return sl_cfg_bind(n, n, group_map, g, "source.kafka.group", err);
}

static int group_check(const struct kafka_conf *c, const struct kafka_group *g,
                       struct sl_error *err) {
  const struct sl_cfg_node *gn = c->group;
  if (!g->id)
    return sl_cfg_error(err, gn,
                        "group needs an id (the consumer group the "
                        "instances join)");
  if (!g->id[0])
    return sl_cfg_error(err, sl_cfg_get(gn, "id"), "group.id is empty");
  if (strcmp(g->assignor, "cooperative-sticky") != 0)
    return sl_cfg_error(
        err, sl_cfg_get(gn, "assignor") ? sl_cfg_get(gn, "assignor") : gn,
        "group.assignor '%s' is not supported: use cooperative-sticky (an "
        "eager assignor such as range or roundrobin takes every partition "
        "away from every instance at each rebalance)",
        g->assignor);
  if (strcmp(c->brokers, "embedded") == 0)
    return sl_cfg_error(err, gn,
                        "group mode needs a Kafka cluster the instances "
                        "share; brokers: embedded starts one per process");
  return 0;
}

static int kafka_validate(const void *vconf, const struct sl_cfg_node *node,
                          struct sl_error *err) {
  const struct kafka_conf *c = vconf;
  struct start_spec s;
  if (parse_starting(c->starting_offsets, &s, err))
    return err->code;
  for (size_t i = 0; i < s.at.n; i++) {
    bool found = false;
    for (size_t t = 0; t < c->topics.n; t++)
      found |= strcmp(c->topics.v[t], s.at.ranges[i].topic) == 0;
    if (!found) {
      sl_cfg_error(err, c->starting_offsets,
                   "starting_offsets names topic '%s', which is not in "
                   "topics",
                   s.at.ranges[i].topic);
      sl_plan_clear(&s.at);
      return err->code;
    }
  }
  sl_plan_clear(&s.at);
  if (c->group) {
    struct kafka_group g = {0};
    int rc = group_bind(c->group, &g, err);
    if (!rc)
      rc = group_check(c, &g, err);
    sl_cfg_unbind(group_map, &g);
    if (rc)
      return rc;
  }
  if (c->topics.n == 0)
    return sl_cfg_error(err, sl_cfg_get(node, "topics"),
                        "topics must name at least one topic");
  /* Every property must be one librdkafka knows, with a valid value. */
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const struct sl_cfg_node *props = sl_cfg_get(node, "properties");
  for (size_t i = 0; i < c->properties.n; i++) {
    if (sl_kafka_conf_set(conf, c->properties.keys[i], c->properties.values[i],
                          err)) {
      const struct sl_cfg_node *at = props;
      for (size_t k = 0; props && k < props->n; k++)
        if (strcmp(props->keys[k]->scalar, c->properties.keys[i]) == 0)
          at = props->keys[k];
      char msg[sizeof(err->msg)];
      snprintf(msg, sizeof(msg), "%s", err->msg);
      rd_kafka_conf_destroy(conf);
      return sl_cfg_error(err, at, "%s", msg);
    }
  }
  rd_kafka_conf_destroy(conf);
  return 0;
}

/* --------------------------------------------------------------- source */

struct kafka_src {
  const struct kafka_conf *conf;
  const char *job_id;
  struct sl_mock *mock;
  char *brokers;   /* resolved: the mock's bootstraps when embedded */
  bool continuous; /* the job runs the continuous trigger */
  rd_kafka_t *meta;
  char describe[256];
  /* group mode (kafka_group_poll) */
  rd_kafka_t *member;   /* the membership consumer: subscribed */
  struct sl_plan owned; /* what the group assigned this instance */
  rd_kafka_consumer_group_metadata_t *cgm; /* as of the last assignment */
  bool synced; /* the membership consumer was handed an assignment once */
  const struct sl_group_hooks *hooks; /* during kafka_group_poll */
  int hook_rc;
  struct sl_error hook_err;
  uint64_t fetched;         /* records the membership consumer was handed (0) */
  struct kafka_group group; /* bound from conf->group; id NULL: alone */
};

/* The consumer settings every client of the job starts from: tuned for
 * throughput and for bounded memory. fetch.wait.max.ms is how long the
 * broker holds a fetch at the end of the log, and a consumer has one fetch
 * in flight per broker: the stock 500 ms idles a fetcher that has caught
 * up, and even 10 ms held up the first fetch of a reader's next partition
 * after every range that ended at the end of its partition (W1's last
 * batch: 390 ms at 1 ms against 540 ms at 10 ms). Only partitions being
 * read or about to be are fetched (paused otherwise), so a short wait
 * costs no idle polling. Bounded memory: a reader fetches only the partitions
 * it reads or is about to read, each up to queued.min.messages plus one 512 KB
 * answer ahead (see pause_part and kafka_prefetch; docs/benchmarks.md has
 * the measurements). The user's properties go on top.
 * The continuous trigger fetches every partition all the time, so there a
 * fetch waits up to 100 ms at the end of the log: the broker answers as
 * soon as a record arrives, and an idle partition costs 10 fetches a
 * second instead of a thousand. */
static rd_kafka_conf_t *make_conf(struct kafka_src *ks, const char *client,
                                  struct sl_error *err) {
  char group[300];
  const struct kafka_conf *c = ks->conf;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  snprintf(group, sizeof(group), "sluice.%s", ks->job_id);
  const char *kv[][2] = {
      {"bootstrap.servers", ks->brokers},
      {"group.id", c->group_id ? c->group_id : group},
      {"client.id", client},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "error"},
      {"enable.partition.eof", "true"},
      {"fetch.wait.max.ms", ks->continuous ? "100" : "1"},
      {"fetch.min.bytes", "1"},
      {"fetch.message.max.bytes", "524288"},
      {"queued.min.messages", "8192"},
      {"queued.max.messages.kbytes", "4096"},
  };
  sl_kafka_conf_logging(conf);
  for (size_t i = 0; i < SL_ARRAY_LEN(kv); i++)
    if (sl_kafka_conf_set(conf, kv[i][0], kv[i][1], err))
      goto fail;
  for (size_t i = 0; i < c->properties.n; i++)
    if (sl_kafka_conf_set(conf, c->properties.keys[i], c->properties.values[i],
                          err))
      goto fail;
  return conf;
fail:
  rd_kafka_conf_destroy(conf);
  return NULL;
}

static rd_kafka_t *make_consumer(struct kafka_src *ks, const char *client,
                                 struct sl_error *err) {
  char errstr[512];
  rd_kafka_conf_t *conf = make_conf(ks, client, err);
  if (!conf)
    return NULL;
  rd_kafka_t *rk =
      rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    sl_error_set(err, SL_ERR_SOURCE, "Kafka consumer: %s", errstr);
  }
  return rk;
}

static int start_embedded(struct kafka_src *ks, struct sl_error *err) {
  const struct kafka_embedded *e = &ks->conf->embedded;
  ks->mock = sl_mock_new((int)e->brokers, err);
  if (!ks->mock)
    return err->code;
  ks->brokers = sl_strdup(sl_mock_bootstraps(ks->mock));
  for (size_t t = 0; t < ks->conf->topics.n; t++) {
    if (sl_mock_topic_create(ks->mock, ks->conf->topics.v[t],
                             (int)e->partitions, err))
      return err->code;
    if (e->records > 0) {
      struct sl_produce_opts o = {.brokers = ks->brokers,
                                  .topic = ks->conf->topics.v[t],
                                  .count = (uint64_t)e->records,
                                  .seed = (uint64_t)e->seed};
      if (sl_produce_clicks(&o, err))
        return sl_error_prefix(err, "embedded Kafka");
    }
  }
  sl_info("embedded Kafka cluster at %s: %zu topic(s) x %lld partitions, "
          "%lld records per topic",
          ks->brokers, ks->conf->topics.n, (long long)e->partitions,
          (long long)e->records);
  return 0;
}

/* Reads the metadata of every topic within connect_timeout: an
 * unreachable cluster or a missing topic is a clear error, not a hang. */
static int fetch_metadata(struct kafka_src *ks,
                          const struct rd_kafka_metadata **md,
                          struct sl_error *err) {
  int timeout_ms = (int)(ks->conf->connect_timeout_ns / 1000000);
  rd_kafka_resp_err_t e =
      rd_kafka_metadata(ks->meta, 0, NULL, md, timeout_ms > 0 ? timeout_ms : 1);
  if (e)
    return sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                         "cannot reach Kafka at %s within %d ms: %s",
                         ks->brokers, timeout_ms, rd_kafka_err2str(e));
  return 0;
}

static const struct rd_kafka_metadata_topic *
find_topic(const struct rd_kafka_metadata *md, const char *name) {
  for (int i = 0; i < md->topic_cnt; i++)
    if (strcmp(md->topics[i].topic, name) == 0)
      return &md->topics[i];
  return NULL;
}

/* ---------------------------------------------------------- group mode */

/* The instance's membership in source.kafka.group (docs/ARCHITECTURE.md,
 * Group mode). A consumer of its own, subscribed with the
 * cooperative-sticky assignor, whose only job is membership: the range
 * readers stay as they are and read what the engine plans. It must fetch
 * nothing: every partition it is assigned is paused in the same callback
 * (librdkafka starts fetching only after the committed offsets are
 * fetched, which the pause overtakes on the same thread), and its queues
 * are bounded to one message and 1 KB per partition in case one arrives
 * anyway; the messages it
 * is handed are counted (ks->fetched, logged at the end) and dropped. */
static void to_plan(const rd_kafka_topic_partition_list_t *l,
                    struct sl_plan *out) {
  for (int i = 0; i < l->cnt; i++)
    sl_plan_add(out, l->elems[i].topic, l->elems[i].partition, 0, 0);
  sl_plan_sort(out);
}

static void owned_remove(struct sl_plan *owned, const struct sl_plan *gone) {
  size_t k = 0;
  for (size_t i = 0; i < owned->n; i++) {
    struct sl_range *r = &owned->ranges[i];
    if (sl_plan_find(gone, r->topic, r->partition))
      free(r->topic);
    else
      owned->ranges[k++] = *r;
  }
  owned->n = k;
}

/* @locality coordinator, inside rd_kafka_consumer_poll (kafka_group_poll)
 * or rd_kafka_consumer_close (destroy: hooks NULL). Small on purpose: the
 * engine's hooks do the work; this keeps the assignment in step. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  struct kafka_src *ks = opaque;
  struct sl_plan p = {0};
  to_plan(parts, &p);
  rd_kafka_error_t *ke = NULL;
  if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    ks->synced = true;
    ke = rd_kafka_incremental_assign(rk, parts);
    if (!ke && parts->cnt)
      rd_kafka_pause_partitions(rk, parts);
    if (ks->cgm)
      rd_kafka_consumer_group_metadata_destroy(ks->cgm);
    ks->cgm = rd_kafka_consumer_group_metadata(rk);
    for (size_t i = 0; !ke && i < p.n; i++)
      if (!sl_plan_find(&ks->owned, p.ranges[i].topic, p.ranges[i].partition))
        sl_plan_add(&ks->owned, p.ranges[i].topic, p.ranges[i].partition, 0, 0);
    sl_plan_sort(&ks->owned);
    if (!ke && p.n && ks->hooks && !ks->hook_rc)
      ks->hook_rc = ks->hooks->assigned(ks->hooks->arg, &p, &ks->hook_err);
  } else if (e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    bool lost = rd_kafka_assignment_lost(rk);
    if (lost && ks->cgm) { /* no commit may carry it any more */
      rd_kafka_consumer_group_metadata_destroy(ks->cgm);
      ks->cgm = NULL;
    }
    if (ks->hooks && p.n)
      ks->hooks->revoked(ks->hooks->arg, &p, lost);
    owned_remove(&ks->owned, &p);
    ke = rd_kafka_incremental_unassign(rk, parts);
  } else {
    sl_warn("Kafka group '%s': rebalance failed: %s", ks->group.id,
            rd_kafka_err2str(e));
    if (ks->hooks && ks->owned.n)
      ks->hooks->revoked(ks->hooks->arg, &ks->owned, true);
    sl_plan_clear(&ks->owned);
    rd_kafka_assign(rk, NULL);
  }
  if (ke) {
    if (!ks->hook_rc)
      ks->hook_rc = sl_error_set(
          &ks->hook_err, SL_ERR_SOURCE,
          "Kafka group '%s': %s of %d partitions: %s", ks->group.id,
          e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigning" : "revoking",
          parts->cnt, rd_kafka_error_string(ke));
    rd_kafka_error_destroy(ke);
  }
  sl_plan_clear(&p);
}

static int join_group(struct kafka_src *ks, struct sl_error *err) {
  char errstr[512];
  rd_kafka_conf_t *conf = make_conf(ks, "sluice-member", err);
  if (!conf)
    return err->code;
  const char *kv[][2] = {
      {"group.id", ks->group.id},
      {"partition.assignment.strategy", ks->group.assignor},
      {"enable.partition.eof", "false"},
      {"auto.offset.reset", "latest"},
      {"queued.min.messages", "1"},
      {"queued.max.messages.kbytes", "1"},
      {"fetch.message.max.bytes", "1024"},
  };
  for (size_t i = 0; i < SL_ARRAY_LEN(kv); i++)
    if (sl_kafka_conf_set(conf, kv[i][0], kv[i][1], err)) {
      rd_kafka_conf_destroy(conf);
      return err->code;
    }
  rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
  rd_kafka_conf_set_opaque(conf, ks);
  ks->member = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (!ks->member) {
    rd_kafka_conf_destroy(conf);
    return sl_error_set(err, SL_ERR_SOURCE, "Kafka group consumer: %s", errstr);
  }
  rd_kafka_poll_set_consumer(ks->member);
  rd_kafka_topic_partition_list_t *topics =
      rd_kafka_topic_partition_list_new((int)ks->conf->topics.n);
  for (size_t t = 0; t < ks->conf->topics.n; t++)
    rd_kafka_topic_partition_list_add(topics, ks->conf->topics.v[t],
                                      RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(ks->member, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (e)
    return sl_error_set(err, SL_ERR_SOURCE, "Kafka group '%s': subscribing: %s",
                        ks->group.id, rd_kafka_err2str(e));
  sl_info("joining Kafka consumer group '%s' (assignor %s)", ks->group.id,
          ks->group.assignor);
  return 0;
}

static const char *kafka_conf_group(const void *conf) {
  const struct sl_cfg_node *g = ((const struct kafka_conf *)conf)->group;
  const struct sl_cfg_node *id = g ? sl_cfg_get(g, "id") : NULL;
  return id && id->kind == SL_CFG_SCALAR ? id->scalar : NULL;
}

/* Serves what the membership consumer has: rebalances call the hooks. */
static int kafka_group_poll(struct sl_source *src,
                            const struct sl_group_hooks *h,
                            struct sl_error *err) {
  struct kafka_src *ks = src->ctx;
  if (!ks->member)
    return 0;
  ks->hooks = h;
  ks->hook_rc = 0;
  rd_kafka_message_t *m;
  while ((m = rd_kafka_consumer_poll(ks->member, 0)) != NULL) {
    if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      sl_warn("Kafka group '%s': %s", ks->group.id, rd_kafka_message_errstr(m));
    else if (!m->err && ks->fetched++ == 0)
      sl_warn("Kafka group '%s': the membership consumer was handed a "
              "record of %s[%d] (dropped; it should fetch nothing)",
              ks->group.id, rd_kafka_topic_name(m->rkt), m->partition);
    rd_kafka_message_destroy(m);
    if (ks->hook_rc)
      break;
  }
  ks->hooks = NULL;
  if (ks->hook_rc) {
    *err = ks->hook_err;
    return ks->hook_rc;
  }
  return 0;
}

static rd_kafka_topic_partition_list_t *to_list(const struct sl_plan *p,
                                                bool ends) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new((int)p->n);
  for (size_t i = 0; i < p->n; i++)
    rd_kafka_topic_partition_list_add(l, p->ranges[i].topic,
                                      p->ranges[i].partition)
        ->offset = ends ? p->ranges[i].end : RD_KAFKA_OFFSET_INVALID;
  return l;
}

/* At-least-once sinks: the batch's ends become the group's offsets, so
 * that the next owner of a partition resumes there. Synchronous: an
 * asynchronous commit during a rebalance made librdkafka 2.0.2 declare
 * the assignment lost (it.real.consumer_group). */
static int kafka_group_commit(struct sl_source *src, const struct sl_plan *ends,
                              struct sl_error *err) {
  struct kafka_src *ks = src->ctx;
  if (!ks->member || !ends->n)
    return 0;
  rd_kafka_topic_partition_list_t *l = to_list(ends, true);
  rd_kafka_resp_err_t e = rd_kafka_commit(ks->member, l, 0);
  rd_kafka_topic_partition_list_destroy(l);
  if (e)
    return sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                         "Kafka group '%s': committing the offsets of batch "
                         "%" PRIu64 ": %s",
                         ks->group.id, ends->batch, rd_kafka_err2str(e));
  return 0;
}

static int kafka_group_committed(struct sl_source *src,
                                 const struct sl_plan *parts,
                                 struct sl_plan *out, struct sl_error *err) {
  struct kafka_src *ks = src->ctx;
  if (!ks->member || !parts->n)
    return 0;
  rd_kafka_topic_partition_list_t *l = to_list(parts, false);
  int timeout_ms = (int)(ks->conf->connect_timeout_ns / 1000000);
  rd_kafka_resp_err_t e =
      rd_kafka_committed(ks->member, l, timeout_ms > 0 ? timeout_ms : 1);
  for (int i = 0; !e && i < l->cnt; i++)
    if (!l->elems[i].err && l->elems[i].offset >= 0)
      sl_plan_add(out, l->elems[i].topic, l->elems[i].partition,
                  l->elems[i].offset, l->elems[i].offset);
  rd_kafka_topic_partition_list_destroy(l);
  if (e)
    return sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                         "Kafka group '%s': reading its committed offsets: "
                         "%s",
                         ks->group.id, rd_kafka_err2str(e));
  return 0;
}

static void *group_metadata(void *arg) {
  struct kafka_src *ks = arg;
  return ks->cgm;
}

static int kafka_init(struct sl_source *src, struct sl_error *err) {
  struct kafka_src *ks = sl_calloc(1, sizeof(*ks));
  src->ctx = ks;
  ks->conf = src->conf;
  ks->job_id = src->run->job_id;
  ks->continuous = src->run->continuous;
  if (strcmp(ks->conf->brokers, "embedded") == 0) {
    if (start_embedded(ks, err))
      return err->code;
  } else {
    ks->brokers = sl_strdup(ks->conf->brokers);
  }
  ks->meta = make_consumer(ks, "sluice-coordinator", err);
  if (!ks->meta)
    return err->code;
  const struct rd_kafka_metadata *md;
  if (fetch_metadata(ks, &md, err))
    return err->code;
  int rc = 0;
  for (size_t t = 0; t < ks->conf->topics.n && !rc; t++) {
    const struct rd_kafka_metadata_topic *mt =
        find_topic(md, ks->conf->topics.v[t]);
    if (!mt || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
        mt->partition_cnt == 0)
      rc = sl_error_set(err, SL_ERR_SOURCE,
                        "topic '%s' does not exist on Kafka at %s",
                        ks->conf->topics.v[t], ks->brokers);
    else if (mt->err)
      rc = sl_error_set(err, SL_ERR_SOURCE, "topic '%s': %s",
                        ks->conf->topics.v[t], rd_kafka_err2str(mt->err));
  }
  rd_kafka_metadata_destroy(md);
  if (!rc && ks->conf->group &&
      !(rc = group_bind(ks->conf->group, &ks->group, err)))
    rc = group_check(ks->conf, &ks->group, err);
  if (!rc && ks->group.id)
    rc = join_group(ks, err);
  size_t off = (size_t)snprintf(ks->describe, sizeof(ks->describe), "Kafka[");
  for (size_t t = 0; t < ks->conf->topics.n && off < sizeof(ks->describe); t++)
    off += (size_t)snprintf(ks->describe + off, sizeof(ks->describe) - off,
                            "%s%s", t ? "," : "", ks->conf->topics.v[t]);
  if (off < sizeof(ks->describe) - 1)
    strcat(ks->describe, "]");
  return rc;
}

static int kafka_watermarks(struct sl_source *src, struct sl_plan *out,
                            struct sl_error *err) {
  struct kafka_src *ks = src->ctx;
  const struct rd_kafka_metadata *md;
  int timeout_ms = (int)(ks->conf->connect_timeout_ns / 1000000);
  if (fetch_metadata(ks, &md, err))
    return err->code;
  int rc = 0;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
  for (size_t t = 0; t < ks->conf->topics.n && !rc; t++) {
    const struct rd_kafka_metadata_topic *mt =
        find_topic(md, ks->conf->topics.v[t]);
    if (!mt || mt->partition_cnt == 0) {
      rc = sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                         "topic '%s' is missing from the metadata of %s",
                         ks->conf->topics.v[t], ks->brokers);
      break;
    }
    for (int p = 0; p < mt->partition_cnt; p++)
      if (!ks->member ||
          sl_plan_find(&ks->owned, mt->topic, mt->partitions[p].id))
        rd_kafka_topic_partition_list_add(l, mt->topic, mt->partitions[p].id);
  }
  rd_kafka_metadata_destroy(md);
  if (!rc && l->cnt > 0) {
    int64_t *lo = sl_calloc((size_t)l->cnt, sizeof(*lo));
    int64_t *hi = sl_calloc((size_t)l->cnt, sizeof(*hi));
    const rd_kafka_topic_partition_t *what;
    rd_kafka_resp_err_t e =
        sl_kafka_query_marks(ks->meta, l, lo, hi, timeout_ms, &what);
    if (e && what)
      rc = sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                         "watermarks of %s[%d]: %s", what->topic,
                         what->partition, rd_kafka_err2str(e));
    else if (e)
      rc = sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                         "watermarks of %d partitions at %s within %d ms: %s",
                         l->cnt, ks->brokers, timeout_ms, rd_kafka_err2str(e));
    for (int i = 0; i < l->cnt && !rc; i++)
      sl_plan_add(out, l->elems[i].topic, l->elems[i].partition, lo[i], hi[i]);
    free(lo);
    free(hi);
  }
  rd_kafka_topic_partition_list_destroy(l);
  sl_plan_sort(out);
  return rc;
}

static int kafka_start_offset(struct sl_source *src, const struct sl_range *wm,
                              int64_t *out, struct sl_error *err) {
  struct kafka_src *ks = src->ctx;
  struct start_spec s;
  if (parse_starting(ks->conf->starting_offsets, &s, err))
    return err->code;
  int64_t want = s.mode;
  if (s.mode == 0) {
    struct sl_range *r = sl_plan_find(&s.at, wm->topic, wm->partition);
    want = r ? r->end : -2;
  }
  sl_plan_clear(&s.at);
  if (want == -2)
    *out = wm->start;
  else if (want == -1 || want > wm->end)
    *out = want == -1 ? wm->end : -1;
  else
    *out = want; /* below the low watermark: the reader reports the loss */
  if (*out < 0)
    return sl_error_set(err, SL_ERR_CONFIG,
                        "starting offset %lld of %s[%d] is past the end of "
                        "the partition (%lld)",
                        (long long)want, wm->topic, wm->partition,
                        (long long)wm->end);
  return 0;
}

static void kafka_info(struct sl_source *src, struct sl_source_info *out) {
  const struct kafka_conf *c = src->conf;
  *out = (struct sl_source_info){.plugin = "kafka",
                                 .topics = (const char *const *)c->topics.v,
                                 .ntopics = c->topics.n,
                                 .group_id = c->group_id};
  struct kafka_src *ks = src->ctx;
  if (ks && ks->group.id) {
    out->group_id = ks->group.id;
    out->group_metadata = group_metadata;
    out->group_arg = ks;
  }
}

static const char *kafka_describe(struct sl_source *src) {
  struct kafka_src *ks = src->ctx;
  return ks ? ks->describe : "Kafka";
}

/* librdkafka 2.0.2 (its issue 4312, fixed in 2.3.0): the cooperative-
 * sticky assignor's state is made by the first assignment a member is
 * handed, and destroying a consumer whose JoinGroup was answered but whose
 * SyncGroup was not (a stop while joining) asserts on the missing state:
 * the process aborts. A membership consumer that was never handed an
 * assignment has left the group (consumer_close) but is not destroyed:
 * it is kept here, reachable, until the process exits (it-test
 * group_stop_joining). */
static rd_kafka_t *unsynced_members[4];
static void keep_unsynced(rd_kafka_t *rk) {
  for (size_t i = 0; i < SL_ARRAY_LEN(unsynced_members); i++)
    if (!unsynced_members[i]) {
      unsynced_members[i] = rk;
      sl_debug("Kafka group: the membership consumer left before its first "
               "assignment; its handle is kept until exit (librdkafka "
               "2.0.2 aborts destroying it)");
      return;
    }
  sl_warn("Kafka group: a membership consumer that left before its first "
          "assignment is not destroyed (librdkafka 2.0.2 aborts there)");
}

static void kafka_destroy(struct sl_source *src) {
  struct kafka_src *ks = src->ctx;
  if (!ks)
    return;
  if (ks->member) {
    /* Leaves the group now (its partitions move at once, not after the
     * session timeout); the revocation this serves has no hooks. */
    rd_kafka_consumer_close(ks->member);
    if (ks->synced)
      rd_kafka_destroy(ks->member);
    else
      keep_unsynced(ks->member);
    if (ks->fetched)
      sl_warn("Kafka group '%s': the membership consumer was handed %" PRIu64
              " records (dropped)",
              ks->group.id, ks->fetched);
  }
  if (ks->cgm)
    rd_kafka_consumer_group_metadata_destroy(ks->cgm);
  sl_plan_clear(&ks->owned);
  sl_cfg_unbind(group_map, &ks->group);
  if (ks->meta)
    rd_kafka_destroy(ks->meta);
  sl_mock_destroy(ks->mock);
  free(ks->brokers);
  free(ks);
  src->ctx = NULL;
}

/* --------------------------------------------------------------- reader */

#define CHUNK         4096
#define KICK_AFTER_MS 2

struct kpart {
  char *topic;
  int32_t partition;
  rd_kafka_queue_t *q;
  int64_t next;  /* offset the queue delivers next, as far as we know */
  bool paused;   /* between ranges: not fetched, nothing queued */
  bool hinted;   /* in the last prefetch hint: kept fetching */
  bool streamed; /* read by the stream: forwarded to its queue */
  int64_t cont;  /* a hinted range starts here: keep fetching at range end */
};

struct kreader {
  struct kafka_src *ks;
  rd_kafka_t *rk;
  struct kpart *parts;
  size_t nparts;
  rd_kafka_message_t *held[CHUNK]; /* backing the last chunk's records */
  size_t nheld;
  int64_t lost;
  uint64_t kicks;   /* starved fetchers woken (see kick) */
  size_t ahead_max; /* partitions fetched ahead of the one being read */
  uint64_t waits;   /* reads that found their partition's queue empty */
  int64_t wait_ns;  /* time they waited */
  uint64_t ahead;   /* partitions resumed ahead of their read by a hint */
  /* the continuous trigger's stream (kafka_stream_start) */
  rd_kafka_queue_t *sq; /* every streamed partition forwards here */
  struct sl_stream_mark *marks;
  size_t nmarks, capmarks;
};

static void release_held(struct kreader *r) {
  for (size_t i = 0; i < r->nheld; i++)
    rd_kafka_message_destroy(r->held[i]);
  r->nheld = 0;
}

static void kafka_reader_free(void *reader);

static int kafka_reader_new(struct sl_source *src, int worker, void **out,
                            struct sl_error *err) {
  struct kafka_src *ks = src->ctx;
  char client[64];
  snprintf(client, sizeof(client), "sluice-worker-%d", worker);
  struct kreader *r = sl_calloc(1, sizeof(*r));
  r->ks = ks;
  r->ahead_max = (size_t)ks->conf->prefetch_partitions;
  r->rk = make_consumer(ks, client, err);
  if (!r->rk) {
    free(r);
    return err->code;
  }
  /* Learn the topics' leaders (and connect) now: a partition assigned
   * before its leader is known waits for a metadata refresh, which was
   * seen to delay the first fetch by a whole second. */
  int timeout_ms = (int)(ks->conf->connect_timeout_ns / 1000000);
  for (size_t t = 0; t < ks->conf->topics.n; t++) {
    rd_kafka_topic_t *rkt =
        rd_kafka_topic_new(r->rk, ks->conf->topics.v[t], NULL);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e =
        rd_kafka_metadata(r->rk, 0, rkt, &md, timeout_ms > 0 ? timeout_ms : 1);
    rd_kafka_topic_destroy(rkt);
    if (e) {
      sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                    "worker %d cannot reach Kafka at %s: %s", worker,
                    ks->brokers, rd_kafka_err2str(e));
      kafka_reader_free(r);
      return err->code;
    }
    rd_kafka_metadata_destroy(md);
  }
  *out = r;
  return 0;
}

static struct kpart *get_part(struct kreader *r, const char *topic,
                              int32_t partition) {
  for (size_t i = 0; i < r->nparts; i++)
    if (r->parts[i].partition == partition &&
        strcmp(r->parts[i].topic, topic) == 0)
      return &r->parts[i];
  return NULL;
}

/* A list of one partition at `offset` (what librdkafka's per-partition
 * calls take). */
static rd_kafka_topic_partition_list_t *
one_part(const char *topic, int32_t partition, int64_t offset) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
  return l;
}

/* Adds (topic, partition) to this reader's assignment at offset `at`. */
static struct kpart *add_part(struct kreader *r, const char *topic,
                              int32_t partition, int64_t at,
                              struct sl_error *err) {
  rd_kafka_topic_partition_list_t *l = one_part(topic, partition, at);
  rd_kafka_queue_t *q = rd_kafka_queue_get_partition(r->rk, topic, partition);
  rd_kafka_error_t *e = NULL;
  if (q) {
    /* Read this partition from its own queue, not the consumer's. */
    rd_kafka_queue_forward(q, NULL);
    e = rd_kafka_incremental_assign(r->rk, l);
  }
  rd_kafka_topic_partition_list_destroy(l);
  if (!q || e) {
    sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                  "cannot assign %s[%d]: %s", topic, partition,
                  e ? rd_kafka_error_string(e) : "no partition queue");
    if (e)
      rd_kafka_error_destroy(e);
    if (q)
      rd_kafka_queue_destroy(q);
    return NULL;
  }
  r->parts = sl_realloc(r->parts, (r->nparts + 1) * sizeof(*r->parts));
  struct kpart *p = &r->parts[r->nparts++];
  memset(p, 0, sizeof(*p));
  p->topic = sl_strdup(topic);
  p->partition = partition;
  p->q = q;
  p->next = at;
  p->cont = -1;
  return p;
}

static int seek_part(struct kreader *r, struct kpart *p, int64_t at,
                     struct sl_error *err) {
  rd_kafka_topic_partition_list_t *l = one_part(p->topic, p->partition, at);
  rd_kafka_error_t *e = rd_kafka_seek_partitions(r->rk, l, 10000);
  rd_kafka_resp_err_t pe = l->elems[0].err;
  rd_kafka_topic_partition_list_destroy(l);
  if (e || pe) {
    sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                  "cannot seek %s[%d] to %lld: %s", p->topic, p->partition,
                  (long long)at,
                  e ? rd_kafka_error_string(e) : rd_kafka_err2str(pe));
    if (e)
      rd_kafka_error_destroy(e);
    return err->code;
  }
  p->next = at;
  return 0;
}

/* Drops a partition from this reader: after an offset-out-of-range error
 * librdkafka stops fetching it and refuses seeks, so it is assigned again
 * from scratch by the next read. */
static void forget_part(struct kreader *r, struct kpart *p) {
  rd_kafka_topic_partition_list_t *l = one_part(p->topic, p->partition, 0);
  rd_kafka_error_t *e = rd_kafka_incremental_unassign(r->rk, l);
  if (e)
    rd_kafka_error_destroy(e);
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_queue_destroy(p->q);
  free(p->topic);
  *p = r->parts[--r->nparts];
}

/* The records at *pos were deleted by retention (the broker answered
 * offset-out-of-range). Fail, or skip to the low watermark and count. */
static int handle_lost(struct kreader *r, struct kpart *p,
                       const struct sl_range *rg, int64_t *pos,
                       struct sl_error *err) {
  int64_t lo = 0, hi = 0;
  int timeout_ms = (int)(r->ks->conf->connect_timeout_ns / 1000000);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
  const rd_kafka_topic_partition_t *what;
  rd_kafka_resp_err_t e =
      sl_kafka_query_marks(r->rk, l, &lo, &hi, timeout_ms, &what);
  rd_kafka_topic_partition_list_destroy(l);
  if (e)
    return sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                         "%s[%d]: offset %lld is out of range and the "
                         "watermarks cannot be read: %s",
                         p->topic, p->partition, (long long)*pos,
                         rd_kafka_err2str(e));
  if (*pos >= lo && *pos <= hi) /* a transient answer: read again */
    return seek_part(r, p, *pos, err);
  if (r->ks->conf->fail_on_data_loss || *pos > hi)
    return sl_error_setf(
        err, SL_ERR_DATALOSS, SL_ERR_FATAL,
        "data loss on %s[%d]: offsets %lld..%lld of batch range "
        "%lld..%lld are no longer in Kafka (partition now holds "
        "%lld..%lld; deleted by retention?); set fail_on_data_loss: false "
        "to skip lost records",
        p->topic, p->partition, (long long)*pos,
        (long long)SL_MIN(lo, rg->end) - 1, (long long)rg->start,
        (long long)rg->end, (long long)lo, (long long)hi);
  int64_t skip_to = SL_MIN(lo, rg->end);
  sl_warn("data loss on %s[%d]: skipping %lld records deleted by retention "
          "(offsets %lld..%lld)",
          p->topic, p->partition, (long long)(skip_to - *pos), (long long)*pos,
          (long long)skip_to - 1);
  r->lost += skip_to - *pos;
  *pos = skip_to;
  forget_part(r, p);
  return 0;
}

static void push_record(struct sl_batch *out, const rd_kafka_message_t *m,
                        const char *topic) {
  rd_kafka_timestamp_type_t tst;
  out->recs[out->n++] =
      (struct sl_record){.key = m->key,
                         .key_len = m->key_len,
                         .value = m->payload,
                         .value_len = m->len,
                         .topic = topic,
                         .partition = m->partition,
                         .offset = m->offset,
                         .timestamp = rd_kafka_message_timestamp(m, &tst)};
}

/* A reader fetches only the partition it is reading: when a range is
 * done its partition is paused, which also drops what was prefetched, so
 * a reader's memory is one partition's queue however many partitions it
 * has read (queued.min.messages and queued.max.messages.kbytes are per
 * partition). The next range of the partition pays one fetch round trip. */
/* Drops what a paused partition's queue holds. librdkafka 2.0.2 leaves
 * what was queued in the queue until it is read (measured: the whole
 * prefetch of every paused partition stayed). */
static void drain_part(struct kpart *p) {
  rd_kafka_message_t *msgs[256];
  ssize_t n;
  while ((n = rd_kafka_consume_batch_queue(p->q, 0, msgs, SL_ARRAY_LEN(msgs))) >
         0)
    for (ssize_t i = 0; i < n; i++)
      rd_kafka_message_destroy(msgs[i]);
}

static void pause_part(struct kreader *r, struct kpart *p) {
  rd_kafka_topic_partition_list_t *l = one_part(p->topic, p->partition, 0);
  rd_kafka_resp_err_t e = rd_kafka_pause_partitions(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  p->paused = e == RD_KAFKA_RESP_ERR_NO_ERROR;
  if (p->paused)
    drain_part(p);
}

/* Resumes a paused partition at `at`. The seek waits for its answer, so
 * that a failed seek is an error here: otherwise the fetcher would go on
 * from where the pause left it, past what the drain consumed. */
static int resume_part(struct kreader *r, struct kpart *p, int64_t at,
                       struct sl_error *err) {
  if (seek_part(r, p, at, err))
    return err->code;
  rd_kafka_topic_partition_list_t *l = one_part(p->topic, p->partition, at);
  rd_kafka_resp_err_t re = rd_kafka_resume_partitions(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (re)
    return sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                         "cannot resume %s[%d] at %lld: %s", p->topic,
                         p->partition, (long long)at, rd_kafka_err2str(re));
  p->paused = false;
  return 0;
}

/* Wakes the fetcher of a partition whose queue ran dry. librdkafka stops
 * fetching a partition whose queue reached queued.min.messages or
 * queued.max.messages.kbytes and looks at it again only when its broker
 * thread wakes up: after up to a second in 2.0.2 when no other partition
 * is being fetched (fetch.queue.backoff.ms, from 2.2 on, sets that wait).
 * A seek to where the reader stands is the public call that wakes that
 * thread; it drops what is queued, and the queue is empty. */
static void kick(struct kreader *r, struct kpart *p, int64_t at) {
  rd_kafka_topic_partition_list_t *l = one_part(p->topic, p->partition, at);
  rd_kafka_error_t *e = rd_kafka_seek_partitions(r->rk, l, 0 /* async */);
  if (e) /* the read times out in the end, and the task is retried */
    rd_kafka_error_destroy(e);
  rd_kafka_topic_partition_list_destroy(l);
  r->kicks++;
}

/* Takes up to `want` messages from the partition's queue: what is there
 * now, or else, when the chunk is still empty, waits (up to 100 ms) for
 * the first one.
 * consume_batch returns early only with as many messages as asked for, so
 * it is never asked for more than the queue holds. */
static ssize_t take(struct kreader *r, struct kpart *p, int64_t pos,
                    size_t want, bool have_some, rd_kafka_message_t **msgs) {
  size_t avail = rd_kafka_queue_length(p->q);
  if (avail > 0)
    return rd_kafka_consume_batch_queue(p->q, 0, msgs, SL_MIN(want, avail));
  if (have_some)
    return 0; /* hand over what the chunk holds; wait in the next call */
  /* Empty: give a fetch in flight a moment, then wake the fetcher. */
  int64_t t0 = sl_mono_ns();
  r->waits++;
  ssize_t n = rd_kafka_consume_batch_queue(p->q, KICK_AFTER_MS, msgs, 1);
  if (n == 0) {
    kick(r, p, pos);
    n = rd_kafka_consume_batch_queue(p->q, 100, msgs, 1);
  }
  r->wait_ns += sl_mono_ns() - t0;
  return n;
}

/* Makes (topic, partition) deliver `at` next, fetching: assigned if new,
 * resumed if paused, moved if it stands elsewhere. NULL with err set when
 * librdkafka refuses. */
static struct kpart *position_part(struct kreader *r, const char *topic,
                                   int32_t partition, int64_t at,
                                   struct sl_error *err) {
  struct kpart *p = get_part(r, topic, partition);
  if (!p)
    return add_part(r, topic, partition, at, err);
  if (p->paused ? resume_part(r, p, at, err)
                : p->next != at && seek_part(r, p, at, err))
    return NULL;
  return p;
}

/* The engine's hint: the ranges this reader reads next, in order. Their
 * partitions (the first 1 + ahead_max of them) are positioned at their
 * ranges' starts and fetched now, so that each range's first records are
 * queued before its read begins, and every fetch round trip carries
 * several partitions instead of one (the embedded cluster answers a fetch
 * with one produced batch per partition). Every other partition is paused
 * and its queue dropped, so a reader holds at most 1 + ahead_max
 * partitions' prefetch. A later range of a partition already listed tells
 * the read to keep fetching at that range's end (cont). */
static void kafka_prefetch(void *reader, const struct sl_range *ranges,
                           size_t n) {
  struct kreader *r = reader;
  struct sl_error err = {0};
  for (size_t i = 0; i < r->nparts; i++) {
    r->parts[i].hinted = false;
    r->parts[i].cont = -1;
  }
  size_t fetching = 0;
  for (size_t i = 0; i < n; i++) {
    const struct sl_range *rg = &ranges[i];
    struct kpart *p = get_part(r, rg->topic, rg->partition);
    if (p && p->hinted) {
      if (p->cont < 0)
        p->cont = rg->start;
      continue;
    }
    if (fetching > r->ahead_max)
      continue;
    bool moved = !p || p->paused || p->next != rg->start;
    if ((p = position_part(r, rg->topic, rg->partition, rg->start, &err))) {
      r->ahead += i > 0 && moved;
      p->hinted = true;
      fetching++;
    }
  }
  /* The pause takes effect on the fetcher's thread: a fetch answer
   * already on its way can still land in the queue after the drain. Such
   * late records are dropped here, on the next hint. */
  for (size_t i = 0; i < r->nparts; i++) {
    struct kpart *p = &r->parts[i];
    if (p->hinted)
      continue;
    if (!p->paused)
      pause_part(r, p);
    else if (rd_kafka_queue_length(p->q) > 0)
      drain_part(p);
  }
}

static int kafka_read(void *reader, const struct sl_range *rg, int64_t *pos,
                      struct sl_batch *out, struct sl_error *err) {
  struct kreader *r = reader;
  release_held(r);
  out->n = 0;
  if (*pos >= rg->end)
    return 0;
  struct kpart *p = position_part(r, rg->topic, rg->partition, *pos, err);
  if (!p)
    return err->code;
  sl_batch_reserve(out, CHUNK);
  bool past = false;
  int64_t deadline = sl_mono_ns() + r->ks->conf->read_timeout_ns;
  while (out->n < CHUNK && *pos < rg->end) {
    rd_kafka_message_t *msgs[CHUNK];
    size_t want = (size_t)SL_MIN((int64_t)(CHUNK - out->n), rg->end - *pos);
    ssize_t n = take(r, p, *pos, want, out->n > 0, msgs);
    if (n == 0 && out->n > 0)
      break;
    if (n < 0)
      return sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                           "reading %s[%d]: %s", p->topic, p->partition,
                           rd_kafka_err2str(rd_kafka_last_error()));
    int rc = 0;
    for (ssize_t i = 0; i < n; i++) {
      rd_kafka_message_t *m = msgs[i];
      if (rc) {
        rd_kafka_message_destroy(m);
        continue;
      }
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        /* EOF at or past the end: whatever is missing was a gap. */
        if (m->offset >= rg->end)
          *pos = rg->end;
        rd_kafka_message_destroy(m);
      } else if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                 m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
        rd_kafka_message_destroy(m);
        for (ssize_t k = i + 1; k < n; k++)
          rd_kafka_message_destroy(msgs[k]);
        rc = handle_lost(r, p, rg, pos, err);
        if (rc)
          return rc;
        /* The partition was dropped: assign it again where to go on. */
        if (out->n > 0 || *pos >= rg->end)
          return 0;
        p = add_part(r, rg->topic, rg->partition, *pos, err);
        if (!p)
          return err->code;
        break;
      } else if (m->err) {
        rc = sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                           "reading %s[%d]: %s", p->topic, p->partition,
                           rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
      } else if (m->offset < *pos) {
        rd_kafka_message_destroy(m); /* stale: fetched before a seek */
      } else if (m->offset >= rg->end || *pos >= rg->end) {
        /* Past the range: it is complete (a gap up to its end when this
         * is the first such offset). The pause drops the rest; a queue
         * kept for the next range no longer starts at *pos. */
        rd_kafka_message_destroy(m);
        *pos = rg->end;
        past = true;
      } else {
        push_record(out, m, p->topic);
        r->held[r->nheld++] = m;
        *pos = m->offset + 1;
      }
    }
    if (rc)
      return rc;
    if (out->n == 0 && *pos < rg->end && sl_mono_ns() > deadline)
      return sl_error_setf(err, SL_ERR_TIMEOUT, SL_ERR_RETRIABLE,
                           "no records from %s[%d] for %lld ms at offset "
                           "%lld (range ends at %lld)",
                           p->topic, p->partition,
                           (long long)(r->ks->conf->read_timeout_ns / 1000000),
                           (long long)*pos, (long long)rg->end);
  }
  /* The queue continues exactly from *pos, unless a record past the
   * range was taken from it. */
  p->next = past ? -1 : *pos;
  if (*pos >= rg->end && p->cont != *pos)
    pause_part(r, p);
  return 0;
}

int64_t sl_kafka_reader_queued(void *reader, const char *topic,
                               int32_t partition) {
  struct kpart *p = get_part(reader, topic, partition);
  return p ? (int64_t)rd_kafka_queue_length(p->q) : -1;
}

static int64_t kafka_reader_lost(void *reader) {
  return ((struct kreader *)reader)->lost;
}

/* ------------------------------------------------------------- streams */

/* The stream: every partition of it is fetched all the time and forwards
 * to one queue, which stream_read waits on (blocking, woken by new
 * records or by stream_wake: no polling). */
static int kafka_stream_start(void *reader, const struct sl_range *from,
                              size_t n, struct sl_error *err) {
  struct kreader *r = reader;
  release_held(r);
  if (!r->sq)
    r->sq = rd_kafka_queue_new(r->rk);
  for (size_t i = 0; i < r->nparts; i++)
    r->parts[i].hinted = false;
  for (size_t i = 0; i < n; i++) {
    struct kpart *p =
        position_part(r, from[i].topic, from[i].partition, from[i].start, err);
    if (!p)
      return err->code;
    p->hinted = true;
  }
  for (size_t i = 0; i < r->nparts; i++) {
    struct kpart *p = &r->parts[i];
    if (!p->hinted) {
      if (!p->paused)
        pause_part(r, p);
      continue;
    }
    rd_kafka_queue_forward(p->q, r->sq);
    p->streamed = true;
    p->cont = -1;
  }
  return 0;
}

static void add_mark(struct kreader *r, const struct kpart *p, int64_t next) {
  for (size_t i = 0; i < r->nmarks; i++)
    if (r->marks[i].partition == p->partition &&
        strcmp(r->marks[i].topic, p->topic) == 0) {
      if (next > r->marks[i].next)
        r->marks[i].next = next;
      return;
    }
  if (r->nmarks == r->capmarks) {
    r->capmarks = r->capmarks ? 2 * r->capmarks : 16;
    r->marks = sl_realloc(r->marks, r->capmarks * sizeof(*r->marks));
  }
  r->marks[r->nmarks++] = (struct sl_stream_mark){p->topic, p->partition, next};
}

static struct kpart *streamed_part(struct kreader *r,
                                   const rd_kafka_message_t *m) {
  for (size_t i = 0; i < r->nparts; i++) {
    struct kpart *p = &r->parts[i];
    if (p->streamed && p->partition == m->partition &&
        strcmp(p->topic, rd_kafka_topic_name(m->rkt)) == 0)
      return p;
  }
  return NULL;
}

/* One message of the stream: a record, a position (end of the log, a
 * gap), or an error. */
static int stream_message(struct kreader *r, rd_kafka_message_t *m,
                          struct sl_batch *out, struct sl_error *err) {
  struct kpart *p = streamed_part(r, m);
  if (!p) { /* a partition the stream no longer reads */
    rd_kafka_message_destroy(m);
    return 0;
  }
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (m->offset > p->next) { /* what is missing before the end: a gap */
      p->next = m->offset;
      add_mark(r, p, p->next);
    }
    rd_kafka_message_destroy(m);
    return 0;
  }
  if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
      m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
    rd_kafka_message_destroy(m);
    struct sl_range rg = {p->topic, p->partition, p->next, INT64_MAX};
    int64_t pos = p->next;
    char *topic = sl_strdup(p->topic);
    int32_t part = p->partition;
    int rc = handle_lost(r, p, &rg, &pos, err); /* drops the partition */
    if (!rc) { /* dropped, or only moved (a transient answer) */
      struct kpart *np = get_part(r, topic, part);
      if (!np)
        np = add_part(r, topic, part, pos, err);
      if (np) {
        rd_kafka_queue_forward(np->q, r->sq);
        np->streamed = true;
        add_mark(r, np, pos);
      } else {
        rc = err->code;
      }
    }
    free(topic);
    return rc;
  }
  if (m->err) {
    int rc = sl_error_setf(err, SL_ERR_SOURCE, SL_ERR_RETRIABLE,
                           "reading %s[%d]: %s", p->topic, p->partition,
                           rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
    return rc;
  }
  if (m->offset < p->next) { /* stale: fetched before a seek */
    rd_kafka_message_destroy(m);
    return 0;
  }
  push_record(out, m, p->topic);
  r->held[r->nheld++] = m;
  p->next = m->offset + 1;
  return 0;
}

/* Waits for the first message (or a wake), then takes what else is
 * queued, up to one chunk: records that arrive while the previous group
 * is being written come as one group. */
static int kafka_stream_read(void *reader, int wait_ms, struct sl_batch *out,
                             struct sl_stream_mark **marks, size_t *nmarks,
                             struct sl_error *err) {
  struct kreader *r = reader;
  release_held(r);
  out->n = 0;
  r->nmarks = 0;
  if (marks) {
    *marks = r->marks;
    *nmarks = 0;
  }
  sl_batch_reserve(out, CHUNK);
  rd_kafka_message_t *first = rd_kafka_consume_queue(r->sq, wait_ms);
  int rc = 0;
  if (first) {
    rc = stream_message(r, first, out, err);
    rd_kafka_message_t *msgs[CHUNK];
    size_t avail = rd_kafka_queue_length(r->sq);
    ssize_t n = 0;
    if (!rc && avail > 0)
      n = rd_kafka_consume_batch_queue(r->sq, 0, msgs,
                                       SL_MIN(avail, (size_t)CHUNK - 1));
    for (ssize_t i = 0; i < n; i++) {
      if (rc)
        rd_kafka_message_destroy(msgs[i]);
      else
        rc = stream_message(r, msgs[i], out, err);
    }
  }
  if (marks) {
    *marks = r->marks;
    *nmarks = r->nmarks;
  }
  return rc;
}

static void kafka_stream_wake(void *reader) {
  struct kreader *r = reader;
  if (r->sq)
    rd_kafka_queue_yield(r->sq);
}

/* The partitions go back to being read range by range: unforwarded and
 * paused (which drops what they queued). */
static void kafka_stream_stop(void *reader) {
  struct kreader *r = reader;
  release_held(r);
  for (size_t i = 0; i < r->nparts; i++) {
    struct kpart *p = &r->parts[i];
    if (!p->streamed)
      continue;
    rd_kafka_queue_forward(p->q, NULL);
    p->streamed = false;
    pause_part(r, p);
    p->next = -1;
  }
  if (r->sq) {
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consume_queue(r->sq, 0)))
      rd_kafka_message_destroy(m);
  }
}

static void kafka_reader_free(void *reader) {
  struct kreader *r = reader;
  if (!r)
    return;
  if (r->sq) {
    kafka_stream_stop(r);
    rd_kafka_queue_destroy(r->sq);
  }
  free(r->marks);
  sl_debug("reader: %zu partitions assigned, %llu fetcher wake-ups, %llu "
           "partitions fetched ahead, %llu waits for records (%.1f ms)",
           r->nparts, (unsigned long long)r->kicks,
           (unsigned long long)r->ahead, (unsigned long long)r->waits,
           (double)r->wait_ns / 1e6);
  release_held(r);
  for (size_t i = 0; i < r->nparts; i++) {
    rd_kafka_queue_destroy(r->parts[i].q);
    free(r->parts[i].topic);
  }
  free(r->parts);
  rd_kafka_consumer_close(r->rk);
  rd_kafka_destroy(r->rk);
  free(r);
}

const struct sl_source_plugin sl_source_kafka = {
    .name = "kafka",
    .config_map = kafka_map,
    .conf_size = sizeof(struct kafka_conf),
    .validate = kafka_validate,
    .init = kafka_init,
    .watermarks = kafka_watermarks,
    .start_offset = kafka_start_offset,
    .reader_new = kafka_reader_new,
    .read = kafka_read,
    .prefetch = kafka_prefetch,
    .reader_lost = kafka_reader_lost,
    .reader_free = kafka_reader_free,
    .stream_start = kafka_stream_start,
    .stream_read = kafka_stream_read,
    .stream_wake = kafka_stream_wake,
    .stream_stop = kafka_stream_stop,
    .describe = kafka_describe,
    .info = kafka_info,
    .destroy = kafka_destroy,
    .conf_group = kafka_conf_group,
    .group_poll = kafka_group_poll,
    .group_commit = kafka_group_commit,
    .group_committed = kafka_group_committed,
};
