/*
 * sink.c - writes records to Kafka: exactly-once with transactions, or
 * at-least-once with an idempotent producer.
 *
 * Records. Stages copy each output record (the source's bytes are released
 * after every chunk), rendering the key, value and topic templates on the
 * worker thread (ksink.h); without templates the record's own key and
 * value bytes are written (the pipeline's JSON). Commit produces the
 * stages in task order, so the order of one input partition is kept.
 * Every record carries two headers: `sluice.batch` (the batch id) and
 * `sluice.attempt` (the attempt id, "<run>.<k>", of the transaction, or of
 * the at-least-once commit, that wrote it).
 *
 * exactly_once: true. One transactional producer per sink, transactional.id
 * "sluice-<job>" (`transactional_id` overrides; the dead-letter sink uses
 * "sluice-<job>-dead-letters"). A commit of batch N is one transaction:
 *   begin; produce every record; send_offsets_to_transaction(the END
 *   offsets of the plan's SOURCE partitions, each with the metadata
 *   {"batch":N,"attempt":"<run>.<k>"}, group "sluice-<job>" or `group`);
 *   commit_transaction.
 * So the outputs and the sink's record of what it committed become
 * visible together. On start (init, after init_transactions, which fences
 * an older instance with the same transactional.id and settles its open
 * transaction) the sink reads that record back: a consumer handle with
 * group.id = the group, never subscribed, asks the SINK cluster's group
 * coordinator for the committed offsets of every partition of the source
 * topics (they must exist on the sink's cluster: Kafka takes offsets only
 * for topics it has). The highest batch in the metadata is the sink's last
 * committed batch S; last_committed() returns S, its end offsets, and the
 * attempt as sink->note, and recovery rolls the checkpoint forward when S
 * is ahead (DESIGN.md section 3, invariant 4). positions() returns every
 * partition's committed offset, whatever its batch: where recovery
 * resumes the partition (DESIGN.md section 14).
 *
 * Commit is idempotent on the batch id: a batch <= the last committed one
 * (read at start, then kept from each commit) is a no-op success. A
 * failure that leaves the transaction unusable (abortable) aborts it and
 * returns a retriable error: the engine calls commit again with the same
 * stages, which produces them again in a new transaction with a new
 * attempt id. A commit_transaction that timed out (a broker down) is
 * resumed by the next call instead. Fatal errors stick: a fenced producer
 * (another instance took the transactional.id) fails every later commit
 * with "fenced: ...", non-retriable, and the job exits 1.
 *
 * mirror_offsets: true (for librdkafka's mock cluster only). The mock of
 * librdkafka 2.0.2 accepts TxnOffsetCommit but drops it, so the record
 * above never exists there. With mirror_offsets the sink also commits the
 * same offsets and metadata with a plain offset commit right after each
 * transaction committed (and before the engine writes commits/N). The
 * window between the two is not atomic, which is why it is off by default:
 * on a real Kafka the transaction already stores the offsets atomically.
 *
 * exactly_once: false. An idempotent producer; the commit waits until
 * every record is acknowledged. A batch re-run after a crash is written
 * again; the sink keeps no record (last_committed answers SL_ERR_NOTFOUND).
 *
 * The continuous trigger. With exactly_once the epoch is a batch: one
 * transaction per epoch, visible to read_committed consumers when the
 * epoch commits. Without it each stream writes its groups at once
 * through a producer of its own and waits for their acknowledgement
 * (stream_write, below): a record is visible about one produce round
 * trip after it was read.
 *
 * Threads: stage_* run on worker threads and touch only their stage and
 * the read-only templates; everything else runs on the coordinator.
 * librdkafka's delivery report callback runs inside rd_kafka_poll /
 * rd_kafka_flush, on the coordinator.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../sources/kafka/kafka.h"
#include "../../src/failpoint.h"
#include "../../src/log.h"
#include "../../src/plugin.h"
#include "../../src/util.h"
#include "ksink.h"

/* -------------------------------------------------------------- config */

struct ksink_conf {
  struct sl_sink_common common; /* first: the engine reads it */
  char *brokers;
  char *topic;
  char *key;
  char *value;
  bool exactly_once;
  char *transactional_id;
  char *group;
  bool mirror_offsets;
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
     .desc = "topic to write, or a template per record ('clicks-{event}')"},
    {.key = "key",
     .type = SL_CFG_T_STR,
     .offset = offsetof(struct ksink_conf, key),
     .desc = "key template ('{user}'); default: the record's own key"},
    {.key = "value",
     .type = SL_CFG_T_STR,
     .offset = offsetof(struct ksink_conf, value),
     .desc = "value template; default: the record's value (the pipeline's "
             "JSON)"},
    {.key = "exactly_once",
     .type = SL_CFG_T_BOOL,
     .def = "false",
     .offset = offsetof(struct ksink_conf, exactly_once),
     .desc = "one transaction per batch with the source offsets; false: "
             "at-least-once with an idempotent producer"},
    {.key = "transactional_id",
     .type = SL_CFG_T_STR,
     .offset = offsetof(struct ksink_conf, transactional_id),
     .desc = "transactional.id (default sluice-<job>); a second instance "
             "with the same id fences the first"},
    {.key = "group",
     .type = SL_CFG_T_STR,
     .offset = offsetof(struct ksink_conf, group),
     .desc = "consumer group the transactions commit the source offsets to "
             "(default sluice-<job>); the sink's record of its last batch"},
    {.key = "mirror_offsets",
     .type = SL_CFG_T_BOOL,
     .def = "false",
     .offset = offsetof(struct ksink_conf, mirror_offsets),
     .desc = "also store the offsets with a plain commit after each "
             "transaction: only for librdkafka's mock cluster, which drops "
             "transactional offset commits"},
    {.key = "timeout",
     .type = SL_CFG_T_DURATION,
     .def = "30s",
     .offset = offsetof(struct ksink_conf, timeout_ns),
     .desc = "how long one commit try waits for the brokers"},
    {.key = "properties",
     .type = SL_CFG_T_STRMAP,
     .offset = offsetof(struct ksink_conf, properties),
     .desc = "librdkafka producer properties, passed through"},
    {0}};

/* Properties sluice sets itself; the job file has keys for them. */
static const char *const managed_props[][2] = {
    {"transactional.id", "sink.kafka.transactional_id"},
    {"enable.idempotence", "sink.kafka.exactly_once"},
    {"bootstrap.servers", "sink.kafka.brokers"}};

/* Properties that also configure the offsets reader (a consumer handle):
 * how to reach and authenticate to the cluster. */
static bool reader_property(const char *name) {
  static const char *const prefixes[] = {"security.",   "sasl.",   "ssl.",
                                         "socket.",     "broker.", "client.",
                                         "api.version", "debug"};
  for (size_t i = 0; i < SL_ARRAY_LEN(prefixes); i++)
    if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
      return true;
  return false;
}

static bool is_template(const char *s) {
  return s && strpbrk(s, "{}") != NULL;
}

/* Compiles one template key of the config to check it, with the error
 * positioned at its node. */
static int check_template(const char *src, const struct sl_cfg_node *node,
                          const char *key, struct sl_error *err) {
  struct sl_ktpl *t;
  if (!src || sl_ktpl_compile(src, &t, err) == 0) {
    if (src)
      sl_ktpl_free(t);
    return 0;
  }
  char msg[sizeof(err->msg)];
  snprintf(msg, sizeof(msg), "%s", err->msg);
  return sl_cfg_error(err, sl_cfg_get(node, key), "%s", msg);
}

/* @locality coordinator (sluice validate and run) */
static int ksink_validate(const void *vconf, const struct sl_cfg_node *node,
                          struct sl_error *err) {
  const struct ksink_conf *c = vconf;
  if (check_template(is_template(c->topic) ? c->topic : NULL, node, "topic",
                     err) ||
      check_template(c->key, node, "key", err) ||
      check_template(c->value, node, "value", err))
    return err->code;
  const char *eos_only[] = {c->transactional_id ? "transactional_id" : NULL,
                            c->group ? "group" : NULL,
                            c->mirror_offsets ? "mirror_offsets" : NULL};
  for (size_t i = 0; i < SL_ARRAY_LEN(eos_only) && !c->exactly_once; i++)
    if (eos_only[i])
      return sl_cfg_error(err, sl_cfg_get(node, eos_only[i]),
                          "%s applies only with exactly_once: true",
                          eos_only[i]);
  const struct sl_cfg_node *props = sl_cfg_get(node, "properties");
  for (size_t i = 0; i < c->properties.n; i++)
    for (size_t k = 0; k < SL_ARRAY_LEN(managed_props); k++)
      if (strcmp(c->properties.keys[i], managed_props[k][0]) == 0)
        return sl_cfg_error(err, props,
                            "property '%s' is set by sluice; use %s",
                            managed_props[k][0], managed_props[k][1]);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  for (size_t i = 0; i < c->properties.n; i++) {
    if (sl_kafka_conf_set(conf, c->properties.keys[i], c->properties.values[i],
                          err)) {
      char msg[sizeof(err->msg)];
      snprintf(msg, sizeof(msg), "%s", err->msg);
      rd_kafka_conf_destroy(conf);
      return sl_cfg_error(err, props, "%s", msg);
    }
  }
  rd_kafka_conf_destroy(conf);
  return 0;
}

/* --------------------------------------------------------------- state */

enum txn_state {
  TXN_IDLE,       /* no transaction open */
  TXN_OPEN,       /* begun: producing, sending the offsets */
  TXN_COMMITTING, /* commit_transaction timed out: the next try resumes */
  TXN_ABORT       /* aborting failed: abort before the next one begins */
};

struct ksink {
  const struct ksink_conf *conf;
  rd_kafka_t *rk;                                  /* the producer */
  struct sl_ktpl *topic_tpl, *key_tpl, *value_tpl; /* NULL: not set */
  bool needs_row; /* a template reads fields of the JSON value */
  char run[32];   /* this process's part of attempt ids */
  uint64_t attempts;
  char describe[300];

  /* at-least-once: delivery failures of the last commit */
  atomic_ullong failed;
  rd_kafka_resp_err_t first_err;

  /* exactly-once (coordinator only) */
  char tid[256], group[256];
  rd_kafka_t *reader; /* consumer handle of the group, never subscribed */
  rd_kafka_topic_partition_list_t *src_parts; /* source partitions */
  struct sl_ksink_committed last;             /* the last committed batch */
  bool mirror_pending; /* last committed, offsets not mirrored */
  enum txn_state txn;
  uint64_t txn_batch;
  char txn_attempt[SL_KSINK_ATTEMPT_MAX];
  bool fatal;
  char fatal_msg[700];
  /* group mode (source.kafka.group): the source's membership */
  const struct sl_source_info *member; /* NULL outside group mode */
};

struct krec {
  size_t topic_off, key_off, key_len, val_off, val_len;
  bool has_topic, has_key, has_val;
};

struct kstage {
  const struct ksink *ks;
  struct sl_buf buf; /* the topic, key and value bytes of every record */
  struct krec *recs;
  size_t n, cap;
};

static int timeout_ms(const struct ksink *ks) {
  int64_t ms = ks->conf->timeout_ns / 1000000;
  return ms < 1 ? 1 : ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* ---------------------------------------------------------------- init */

/* @locality librdkafka, inside rd_kafka_poll/flush on the coordinator */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  struct ksink *ks = opaque;
  (void)rk;
  if (m->err && atomic_fetch_add(&ks->failed, 1) == 0)
    ks->first_err = m->err;
}

/* The sink's producer, or (stream) a continuous stream's own: an
 * idempotent producer that sends each group at once (linger.ms 0). */
static rd_kafka_t *new_producer(struct ksink *ks, bool stream, void *opaque,
                                void (*dr)(rd_kafka_t *,
                                           const rd_kafka_message_t *, void *),
                                struct sl_error *err) {
  const struct ksink_conf *c = ks->conf;
  char errstr[512];
  rd_kafka_t *rk = NULL;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  sl_kafka_conf_logging(conf);
  const char *kv[][2] = {{"bootstrap.servers", c->brokers},
                         {"enable.idempotence", "true"},
                         {"linger.ms", stream ? "0" : "5"},
                         {"batch.num.messages", "10000"},
                         {"queue.buffering.max.messages", "1000000"}};
  for (size_t i = 0; i < SL_ARRAY_LEN(kv); i++)
    if (sl_kafka_conf_set(conf, kv[i][0], kv[i][1], err))
      goto fail;
  if (c->exactly_once && !stream &&
      sl_kafka_conf_set(conf, "transactional.id", ks->tid, err))
    goto fail;
  for (size_t i = 0; i < c->properties.n; i++)
    if (sl_kafka_conf_set(conf, c->properties.keys[i], c->properties.values[i],
                          err))
      goto fail;
  rd_kafka_conf_set_opaque(conf, opaque);
  if (dr)
    rd_kafka_conf_set_dr_msg_cb(conf, dr);
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!rk) {
    sl_error_set(err, SL_ERR_SINK, "Kafka sink: %s", errstr);
    goto fail;
  }
  return rk;
fail:
  rd_kafka_conf_destroy(conf);
  if (!err->code)
    sl_error_set(err, SL_ERR_SINK, "Kafka sink: cannot configure a producer");
  return NULL;
}

/* The output topic's partitions and leaders, asked for once at start: a
 * producer that meets a topic with its first record queues the records
 * until its periodic scan of unknown topics (every second) has fetched the
 * topic's metadata, so the first batch's commit waited about a second for
 * it (measured: 995 ms of a first commit's 1018, 14 ms for the next ones).
 * Best effort: a topic that does not exist yet (auto-created) or a
 * templated topic is left to the producer. */
static void warm_topic(struct ksink *ks) {
  if (ks->topic_tpl)
    return;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(ks->rk, ks->conf->topic, NULL);
  if (!rkt)
    return;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e =
      rd_kafka_metadata(ks->rk, 0, rkt, &md, timeout_ms(ks));
  if (e)
    sl_debug("Kafka sink: metadata of topic '%s' at start: %s", ks->conf->topic,
             rd_kafka_err2str(e));
  if (md)
    rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
}

static int make_producer(struct ksink *ks, struct sl_error *err) {
  ks->rk =
      new_producer(ks, false, ks, ks->conf->exactly_once ? NULL : dr_cb, err);
  if (!ks->rk)
    return err->code;
  warm_topic(ks);
  return 0;
}

/* The consumer handle that reads (and with mirror_offsets writes) the
 * group's committed offsets. read_committed makes librdkafka ask for
 * stable offsets: a transaction still being completed is waited for. */
static int make_reader(struct ksink *ks, struct sl_error *err) {
  const struct ksink_conf *c = ks->conf;
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  sl_kafka_conf_logging(conf);
  const char *kv[][2] = {{"bootstrap.servers", c->brokers},
                         {"group.id", ks->group},
                         {"enable.auto.commit", "false"},
                         {"enable.auto.offset.store", "false"},
                         {"isolation.level", "read_committed"}};
  for (size_t i = 0; i < SL_ARRAY_LEN(kv); i++)
    if (sl_kafka_conf_set(conf, kv[i][0], kv[i][1], err))
      goto fail;
  for (size_t i = 0; i < c->properties.n; i++)
    if (reader_property(c->properties.keys[i]) &&
        sl_kafka_conf_set(conf, c->properties.keys[i], c->properties.values[i],
                          err))
      goto fail;
  ks->reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (!ks->reader) {
    sl_error_set(err, SL_ERR_SINK, "Kafka sink: offsets reader: %s", errstr);
    goto fail;
  }
  return 0;
fail:
  rd_kafka_conf_destroy(conf);
  return err->code ? err->code : SL_ERR_SINK;
}

/* Every partition of the source's topics (sl_source_info, given because
 * this sink declares SL_SINK_STORES_SOURCE_OFFSETS), as the SINK cluster
 * knows them: the transaction commits their offsets there. */
static int load_source_partitions(struct ksink *ks,
                                  const struct sl_source_info *src,
                                  struct sl_error *err) {
  if (!src || strcmp(src->plugin, "kafka") != 0)
    return sl_error_set(err, SL_ERR_CONFIG,
                        "Kafka sink: exactly_once needs a Kafka source (the "
                        "transaction commits the source offsets)");
  size_t nt = src->ntopics;
  ks->src_parts = rd_kafka_topic_partition_list_new(16);
  for (size_t i = 0; i < nt; i++) {
    const char *name = src->topics[i];
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(ks->rk, name, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e =
        rd_kafka_metadata(ks->rk, 0, rkt, &md, timeout_ms(ks));
    rd_kafka_topic_destroy(rkt);
    if (!e && (md->topic_cnt != 1 || md->topics[0].err ||
               md->topics[0].partition_cnt == 0))
      e = md->topic_cnt == 1 && md->topics[0].err
              ? md->topics[0].err
              : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (e) {
      if (md)
        rd_kafka_metadata_destroy(md);
      return sl_error_set(err, SL_ERR_SINK,
                          "Kafka sink: source topic '%s' on the sink's "
                          "cluster at %s: %s (exactly_once commits the "
                          "source offsets to the group on the sink's "
                          "cluster, which must hold the source topics: "
                          "read and write the same cluster)",
                          name, ks->conf->brokers, rd_kafka_err2str(e));
    }
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
      rd_kafka_topic_partition_list_add(ks->src_parts, name,
                                        md->topics[0].partitions[p].id);
    rd_kafka_metadata_destroy(md);
  }
  return 0;
}

/* Reads the sink's record of its last committed batch into ks->last. */
static int read_record(struct ksink *ks, struct sl_error *err) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_copy(ks->src_parts);
  rd_kafka_resp_err_t e = rd_kafka_committed(ks->reader, l, timeout_ms(ks));
  int rc;
  sl_plan_clear(&ks->last.end);
  sl_plan_clear(&ks->last.pos);
  if (e)
    rc = sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                       "Kafka sink: reading the committed offsets of group "
                       "'%s' at %s: %s",
                       ks->group, ks->conf->brokers, rd_kafka_err2str(e));
  else if (ks->member)
    rc = sl_ksink_pick_positions(l, ks->group, &ks->last, err);
  else
    rc = sl_ksink_pick_committed(l, ks->group, &ks->last, err);
  rd_kafka_topic_partition_list_destroy(l);
  return rc;
}

/* init_transactions fences an older producer with the same id and settles
 * its open transaction. On a 3-broker mock the first call sometimes times
 * out; it is resumable, so a retriable failure is tried again. */
static int init_transactions(struct ksink *ks, struct sl_error *err) {
  for (int tries = 1;; tries++) {
    rd_kafka_error_t *e = rd_kafka_init_transactions(ks->rk, timeout_ms(ks));
    if (!e)
      return 0;
    bool again = rd_kafka_error_is_retriable(e) && tries < 3;
    sl_error_set(err, SL_ERR_SINK,
                 "Kafka sink: initializing transactions (transactional.id "
                 "'%s') at %s: %s",
                 ks->tid, ks->conf->brokers, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    if (!again)
      return err->code;
    sl_warn("%s; trying again", err->msg);
  }
}

static int compile_templates(struct ksink *ks, struct sl_error *err) {
  const struct ksink_conf *c = ks->conf;
  if ((is_template(c->topic) &&
       sl_ktpl_compile(c->topic, &ks->topic_tpl, err)) ||
      (c->key && sl_ktpl_compile(c->key, &ks->key_tpl, err)) ||
      (c->value && sl_ktpl_compile(c->value, &ks->value_tpl, err)))
    return err->code;
  ks->needs_row = (ks->topic_tpl && sl_ktpl_needs_row(ks->topic_tpl)) ||
                  (ks->key_tpl && sl_ktpl_needs_row(ks->key_tpl)) ||
                  (ks->value_tpl && sl_ktpl_needs_row(ks->value_tpl));
  return 0;
}

/* @locality coordinator */
static int ksink_init(struct sl_sink *sink, struct sl_error *err) {
  const struct ksink_conf *c = sink->conf;
  struct ksink *ks = sl_calloc(1, sizeof(*ks));
  bool dead_letters = sink->run && sink->run->role == SL_ROLE_DEAD_LETTERS;
  sink->ctx = ks;
  ks->conf = c;
  sl_ksink_run_id(ks->run, sizeof(ks->run), sl_wall_ms(), (unsigned)getpid());
  if (compile_templates(ks, err))
    return err->code;
  const char *job_id = sink->run ? sink->run->job_id : "job";
  sl_ksink_default_id(ks->tid, sizeof(ks->tid), c->transactional_id, job_id,
                      dead_letters);
  sl_ksink_default_id(ks->group, sizeof(ks->group), c->group, job_id,
                      dead_letters);
  const struct sl_source_info *si = sink->run ? sink->run->source : NULL;
  if (c->exactly_once && si && si->group_metadata && dead_letters) {
    /* Group mode, the dead letters: each instance writes them with a
     * transactional.id and a record group of its own (its instance id
     * appended), its batches numbered by its own checkpoint. They commit
     * no offsets to the source's group: only the main sink moves those,
     * with the membership's metadata. */
    size_t n = strlen(ks->tid);
    snprintf(ks->tid + n, sizeof(ks->tid) - n, "-%s",
             si->instance ? si->instance : "0");
    n = strlen(ks->group);
    snprintf(ks->group + n, sizeof(ks->group) - n, "-%s",
             si->instance ? si->instance : "0");
  } else if (c->exactly_once && si && si->group_metadata) {
    /* Group mode: the offsets go to the group the instances share, with
     * the membership's metadata, so that the broker refuses the commit of
     * an instance the group has moved on from (KIP-447); each instance
     * has a transactional.id of its own (its instance id appended), stable
     * across its restarts. */
    if (c->group && strcmp(c->group, si->group_id) != 0)
      return sl_error_set(err, SL_ERR_CONFIG,
                          "Kafka sink: group '%s' differs from the source's "
                          "group '%s': in group mode the transactions commit "
                          "the offsets to the group the instances share "
                          "(leave sink.kafka.group out)",
                          c->group, si->group_id);
    ks->member = si;
    snprintf(ks->group, sizeof(ks->group), "%s", si->group_id);
    size_t n = strlen(ks->tid);
    snprintf(ks->tid + n, sizeof(ks->tid) - n, "-%s",
             si->instance ? si->instance : "0");
  }
  if (c->exactly_once)
    snprintf(ks->describe, sizeof(ks->describe),
             "Kafka[%s] (exactly-once, transactional.id %s)", c->topic,
             ks->tid);
  else
    snprintf(ks->describe, sizeof(ks->describe), "Kafka[%s] (at-least-once)",
             c->topic);
  if (make_producer(ks, err))
    return err->code;
  if (!c->exactly_once)
    return 0;
  if (make_reader(ks, err) || init_transactions(ks, err) ||
      load_source_partitions(ks, sink->run ? sink->run->source : NULL, err) ||
      read_record(ks, err))
    return err->code;
  snprintf(sink->record, sizeof(sink->record),
           "the committed offsets of group '%.100s' at %.100s", ks->group,
           c->brokers);
  if (dead_letters && si && si->group_metadata)
    sl_info("Kafka dead letters: group mode, transactional.id %s, their "
            "record in group '%s' (this instance's own)",
            ks->tid, ks->group);
  if (ks->member) {
    /* The record's batch ids are every instance's; this one's own batches
     * are numbered by its checkpoint. Only the positions count. */
    ks->last.batch = 0;
    ks->last.attempt[0] = '\0';
    sl_info("Kafka sink: group mode, transactional.id %s, offsets to group "
            "'%s' with the membership's metadata",
            ks->tid, ks->group);
    return 0;
  }
  if (ks->last.batch)
    sl_info("Kafka sink: group '%s' records batch %" PRIu64 " (attempt %s) "
            "as the last committed",
            ks->group, ks->last.batch, ks->last.attempt);
  return 0;
}

/* @locality coordinator (recovery) */
static int ksink_last_committed(struct sl_sink *sink, uint64_t *batch,
                                struct sl_plan *end, struct sl_error *err) {
  struct ksink *ks = sink->ctx;
  (void)err;
  if (!ks->conf->exactly_once || ks->member)
    return SL_ERR_NOTFOUND; /* at-least-once, or group mode: no batch id */
  *batch = ks->last.batch;
  sl_plan_copy(end, &ks->last.end);
  snprintf(sink->note, sizeof(sink->note), "%s", ks->last.attempt);
  return 0;
}

/* The group's committed offsets, read at start and kept from each commit:
 * the sink's position of every partition of the source topics that a
 * transaction of this job stored (src names the same topics that init
 * asked the group for). @locality coordinator (recovery) */
static int ksink_positions(struct sl_sink *sink,
                           const struct sl_source_info *src,
                           struct sl_plan *out, struct sl_error *err) {
  struct ksink *ks = sink->ctx;
  if (!ks->conf->exactly_once)
    return SL_ERR_NOTFOUND; /* at-least-once keeps no record */
  if (ks->member) {         /* other instances commit too: read it afresh */
    uint64_t mine = ks->last.batch;
    char attempt[SL_KSINK_ATTEMPT_MAX];
    memcpy(attempt, ks->last.attempt, sizeof(attempt));
    int rc = read_record(ks, err);
    ks->last.batch = mine;
    memcpy(ks->last.attempt, attempt, sizeof(attempt));
    if (rc)
      return rc;
  }
  for (size_t i = 0; i < ks->last.pos.n; i++) {
    const struct sl_range *r = &ks->last.pos.ranges[i];
    for (size_t t = 0; src && t < src->ntopics; t++)
      if (strcmp(src->topics[t], r->topic) == 0) {
        sl_plan_add(out, r->topic, r->partition, r->end, r->end);
        break;
      }
  }
  return 0;
}

/* -------------------------------------------------------------- stages */

/* @locality worker thread */
static int ksink_stage_open(struct sl_sink *sink, uint64_t batch, uint32_t task,
                            void **stage, struct sl_error *err) {
  (void)batch;
  (void)task;
  (void)err;
  struct kstage *s = sl_calloc(1, sizeof(*s));
  s->ks = sink->ctx;
  *stage = s;
  return 0;
}

static struct krec *add_rec(struct kstage *s) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 1024;
    s->recs = sl_realloc(s->recs, s->cap * sizeof(*s->recs));
  }
  struct krec *k = &s->recs[s->n++];
  *k = (struct krec){0};
  return k;
}

/* Copies (or renders) one record into the stage. */
static int stage_record(struct kstage *s, const struct sl_record *r,
                        struct sl_error *err) {
  const struct ksink *ks = s->ks;
  const cJSON *row = r->row;
  cJSON *parsed = NULL;
  if (ks->needs_row && !row && r->value)
    row = parsed = cJSON_ParseWithLength(r->value, r->value_len);
  struct krec *k = add_rec(s);
  int rc = 0;
  if (ks->topic_tpl) {
    k->topic_off = s->buf.len;
    k->has_topic = true;
    size_t n = sl_ktpl_render(ks->topic_tpl, r, row, &s->buf);
    sl_buf_addc(&s->buf, '\0'); /* librdkafka wants a C string */
    if (n == 0 || memchr(s->buf.p + k->topic_off, '\0', n))
      rc = sl_error_setf(err, SL_ERR_SINK, SL_ERR_FATAL,
                         "Kafka sink: topic template '%s' gave an empty or "
                         "invalid topic for the record from %s[%d] at "
                         "offset %" PRId64,
                         ks->conf->topic, r->topic ? r->topic : "",
                         r->partition, r->offset);
  }
  if (ks->key_tpl) {
    k->key_off = s->buf.len;
    k->key_len = sl_ktpl_render(ks->key_tpl, r, row, &s->buf);
    k->has_key = k->key_len > 0; /* an empty key is no key */
  } else if (r->key) {
    k->has_key = true;
    k->key_len = r->key_len;
    k->key_off = s->buf.len;
    sl_buf_add(&s->buf, r->key, r->key_len);
  }
  if (ks->value_tpl) {
    k->has_val = true;
    k->val_off = s->buf.len;
    k->val_len = sl_ktpl_render(ks->value_tpl, r, row, &s->buf);
  } else if (r->value) {
    k->has_val = true;
    k->val_len = r->value_len;
    k->val_off = s->buf.len;
    sl_buf_add(&s->buf, r->value, r->value_len);
  }
  cJSON_Delete(parsed);
  return rc;
}

/* A record whose topic template gives no valid topic goes to the dead
 * letters with the reason. @locality worker thread */
static int ksink_stage_write(void *stage, const struct sl_batch *b,
                             struct sl_rejects *rejects, struct sl_error *err) {
  struct kstage *s = stage;
  for (size_t i = 0; i < b->n; i++) {
    size_t n0 = s->n, len0 = s->buf.len;
    if (stage_record(s, &b->recs[i], err)) {
      s->n = n0;
      sl_buf_setlen(&s->buf, len0);
      sl_rejects_add(rejects, &b->recs[i], err->msg);
      sl_error_clear(err);
    }
  }
  return 0;
}

/* @locality worker thread */
static int ksink_stage_close(void *stage, struct sl_error *err) {
  (void)stage;
  (void)err;
  return 0;
}

/* @locality any, one thread at a time */
static void ksink_stage_free(struct sl_sink *sink, void *stage) {
  struct kstage *s = stage;
  (void)sink;
  if (!s)
    return;
  sl_buf_free(&s->buf);
  free(s->recs);
  free(s);
}

/* ----------------------------------------------------------- producing */

/* Produces every staged record with its batch and attempt headers.
 * Returns 0 or the error of the first record librdkafka did not take
 * (_QUEUE_FULL when its queue stayed full for the sink's timeout).
 * @locality coordinator */
static rd_kafka_resp_err_t produce_stages(struct ksink *ks, uint64_t batch,
                                          const char *attempt,
                                          void *const *stages, size_t n) {
  char bstr[24];
  snprintf(bstr, sizeof(bstr), "%" PRIu64, batch);
  int64_t deadline = sl_mono_ns() + ks->conf->timeout_ns;
  for (size_t i = 0; i < n; i++) {
    const struct kstage *s = stages[i];
    for (size_t k = 0; k < s->n; k++) {
      const struct krec *r = &s->recs[k];
      const char *topic =
          r->has_topic ? s->buf.p + r->topic_off : ks->conf->topic;
      for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            ks->rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_KEY(r->has_key ? s->buf.p + r->key_off : NULL,
                           r->key_len),
            RD_KAFKA_V_VALUE(r->has_val ? s->buf.p + r->val_off : NULL,
                             r->val_len),
            RD_KAFKA_V_HEADER("sluice.batch", bstr, -1),
            RD_KAFKA_V_HEADER("sluice.attempt", attempt, -1),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!e)
          break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || sl_mono_ns() > deadline)
          return e;
        rd_kafka_poll(ks->rk, 10);
      }
    }
    rd_kafka_poll(ks->rk, 0);
  }
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static size_t staged_records(void *const *stages, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += ((const struct kstage *)stages[i])->n;
  return total;
}

/* ------------------------------------------------------- at-least-once */

static int alo_commit(struct sl_sink *sink, const struct sl_plan *plan,
                      void *const *stages, size_t n, struct sl_error *err) {
  struct ksink *ks = sink->ctx;
  char attempt[SL_KSINK_ATTEMPT_MAX];
  sl_ksink_attempt_id(attempt, sizeof(attempt), ks->run, ++ks->attempts);
  atomic_store(&ks->failed, 0);
  rd_kafka_resp_err_t e = produce_stages(ks, plan->batch, attempt, stages, n);
  if (e)
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                         "Kafka sink: producing to '%s': %s", ks->conf->topic,
                         rd_kafka_err2str(e));
  if (rd_kafka_flush(ks->rk, timeout_ms(ks)) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                         "Kafka sink: %d records to '%s' not acknowledged "
                         "within %d ms",
                         rd_kafka_outq_len(ks->rk), ks->conf->topic,
                         timeout_ms(ks));
  if (atomic_load(&ks->failed))
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                         "Kafka sink: %llu records to '%s' failed: %s",
                         (unsigned long long)atomic_load(&ks->failed),
                         ks->conf->topic, rd_kafka_err2str(ks->first_err));
  snprintf(sink->note, sizeof(sink->note), "%s", attempt);
  return 0;
}

/* --------------------------------------- at-least-once, written at once */

/* The continuous trigger with exactly_once: false: each stream has its
 * own producer and sends each group as it comes, waiting until Kafka
 * acknowledged it, so that the positions the engine keeps for the epoch
 * never pass a record that is not written (at-least-once: a replay after
 * a crash writes again what the epoch had not committed). The records
 * carry sluice.attempt "<run>.s<task>" and no sluice.batch header: the
 * epoch they belong to is decided after they are written. */
struct kstream {
  struct ksink *ks;
  rd_kafka_t *rk;
  struct kstage st; /* the group, rendered */
  char attempt[SL_KSINK_ATTEMPT_MAX];
  atomic_ullong failed;
  rd_kafka_resp_err_t first_err;
};

/* @locality librdkafka, inside the stream's rd_kafka_flush */
static void stream_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                         void *opaque) {
  struct kstream *s = opaque;
  (void)rk;
  if (m->err && atomic_fetch_add(&s->failed, 1) == 0)
    s->first_err = m->err;
}

static int ksink_stream_open(struct sl_sink *sink, uint32_t task, void **stream,
                             struct sl_error *err) {
  struct ksink *ks = sink->ctx;
  struct kstream *s = sl_calloc(1, sizeof(*s));
  s->ks = ks;
  s->st.ks = ks;
  snprintf(s->attempt, sizeof(s->attempt), "%s.s%u", ks->run, task);
  s->rk = new_producer(ks, true, s, stream_dr_cb, err);
  if (!s->rk) {
    free(s);
    return err->code;
  }
  *stream = s;
  return 0;
}

static int ksink_stream_write(void *stream, const struct sl_batch *b,
                              const struct sl_stream_mark *marks, size_t nmarks,
                              struct sl_rejects *rejects,
                              struct sl_error *err) {
  struct kstream *s = stream;
  struct ksink *ks = s->ks;
  (void)marks;
  (void)nmarks;
  s->st.n = 0;
  sl_buf_reset(&s->st.buf);
  ksink_stage_write(&s->st, b, rejects, err);
  if (s->st.n == 0)
    return 0;
  atomic_store(&s->failed, 0);
  int64_t deadline = sl_mono_ns() + ks->conf->timeout_ns;
  for (size_t k = 0; k < s->st.n; k++) {
    const struct krec *r = &s->st.recs[k];
    const char *topic =
        r->has_topic ? s->st.buf.p + r->topic_off : ks->conf->topic;
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          s->rk, RD_KAFKA_V_TOPIC(topic),
          RD_KAFKA_V_KEY(r->has_key ? s->st.buf.p + r->key_off : NULL,
                         r->key_len),
          RD_KAFKA_V_VALUE(r->has_val ? s->st.buf.p + r->val_off : NULL,
                           r->val_len),
          RD_KAFKA_V_HEADER("sluice.attempt", s->attempt, -1),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (!e)
        break;
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || sl_mono_ns() > deadline)
        return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                             "Kafka sink: producing to '%s': %s", topic,
                             rd_kafka_err2str(e));
      rd_kafka_poll(s->rk, 1);
    }
  }
  if (rd_kafka_flush(s->rk, timeout_ms(ks)) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                         "Kafka sink: %d records to '%s' not acknowledged "
                         "within %d ms",
                         rd_kafka_outq_len(s->rk), ks->conf->topic,
                         timeout_ms(ks));
  if (atomic_load(&s->failed))
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                         "Kafka sink: %llu records to '%s' failed: %s",
                         (unsigned long long)atomic_load(&s->failed),
                         ks->conf->topic, rd_kafka_err2str(s->first_err));
  return 0;
}

static void ksink_stream_close(struct sl_sink *sink, void *stream) {
  struct kstream *s = stream;
  (void)sink;
  if (!s)
    return;
  rd_kafka_flush(s->rk, timeout_ms(s->ks));
  rd_kafka_destroy(s->rk);
  sl_buf_free(&s->st.buf);
  free(s->st.recs);
  free(s);
}

/* -------------------------------------------------------- exactly-once */

static bool fenced_code(rd_kafka_resp_err_t code) {
  return code == RD_KAFKA_RESP_ERR__FENCED ||
         code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
         code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

/* Makes the producer's fatal error sticky: every later commit fails with
 * the same message, non-retriable. */
static int set_fatal(struct ksink *ks, rd_kafka_resp_err_t code,
                     const char *msg, struct sl_error *err) {
  if (!ks->fatal) {
    ks->fatal = true;
    if (fenced_code(code))
      snprintf(ks->fatal_msg, sizeof(ks->fatal_msg),
               "fenced: another instance with transactional.id '%.200s' took "
               "over; this one stops producing (%.400s)",
               ks->tid, msg);
    else
      snprintf(ks->fatal_msg, sizeof(ks->fatal_msg),
               "Kafka sink: fatal producer error (transactional.id '%.200s'): "
               "%.400s",
               ks->tid, msg);
  }
  return sl_error_setf(err, SL_ERR_SINK, SL_ERR_FATAL, "%s", ks->fatal_msg);
}

/* Aborts the open transaction (its records stay invisible to
 * read_committed consumers). */
static int txn_abort(struct ksink *ks, struct sl_error *err) {
  rd_kafka_error_t *e = rd_kafka_abort_transaction(ks->rk, timeout_ms(ks));
  if (!e) {
    ks->txn = TXN_IDLE;
    return 0;
  }
  ks->txn = TXN_ABORT;
  char msg[512];
  snprintf(msg, sizeof(msg), "%s", rd_kafka_error_string(e));
  rd_kafka_resp_err_t code = rd_kafka_error_code(e);
  bool fatal = rd_kafka_error_is_fatal(e);
  rd_kafka_error_destroy(e);
  if (fatal)
    return set_fatal(ks, code, msg, err);
  return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                       "Kafka sink: aborting the transaction of batch "
                       "%" PRIu64 " (attempt %s): %s",
                       ks->txn_batch, ks->txn_attempt, msg);
}

/* A transactional call failed (e is consumed). Fatal errors stick. A
 * commit_transaction that only timed out is resumed by the next try; any
 * other failure aborts the transaction, and the next try produces the
 * batch again as a new attempt. Returns a retriable error unless fatal. */
static int txn_failed(struct ksink *ks, rd_kafka_error_t *e, const char *what,
                      struct sl_error *err) {
  char msg[512];
  snprintf(msg, sizeof(msg), "%s", rd_kafka_error_string(e));
  rd_kafka_resp_err_t code = rd_kafka_error_code(e);
  bool fatal = rd_kafka_error_is_fatal(e);
  bool resume = ks->txn == TXN_COMMITTING && rd_kafka_error_is_retriable(e) &&
                !rd_kafka_error_txn_requires_abort(e);
  rd_kafka_error_destroy(e);
  if (fatal)
    return set_fatal(ks, code, msg, err);
  const char *outcome = "resumed at the next try";
  char abort_msg[600] = "";
  if (!resume && ks->txn != TXN_IDLE) {
    struct sl_error aerr = {0};
    if (txn_abort(ks, &aerr)) {
      if (ks->fatal) {
        *err = aerr;
        return err->code;
      }
      snprintf(abort_msg, sizeof(abort_msg), " (%.500s)", aerr.msg);
      outcome = "aborting it failed too; aborted at the next try";
    } else {
      outcome = "transaction aborted";
    }
  }
  return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                       "Kafka sink: %s of batch %" PRIu64 " (attempt %s) "
                       "failed, %s: %s%s",
                       what, ks->txn_batch, ks->txn_attempt, outcome, msg,
                       abort_msg);
}

/* The plan's end offsets of the source partitions, each with the batch
 * and attempt as metadata. */
static rd_kafka_topic_partition_list_t *
batch_offsets(const struct sl_plan *plan, const char *attempt) {
  char md[128];
  int len = sl_ksink_meta_format(md, sizeof(md), plan->batch, attempt);
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new((int)plan->n);
  for (size_t i = 0; i < plan->n; i++) {
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(
        l, plan->ranges[i].topic, plan->ranges[i].partition);
    tp->offset = plan->ranges[i].end;
    tp->metadata = sl_strndup(md, (size_t)len); /* freed by the list */
    tp->metadata_size = (size_t)len;
  }
  return l;
}

/* Commits offsets to the group and waits at most the sink's timeout (a
 * synchronous rd_kafka_commit waits for an unreachable coordinator with no
 * bound). A commit still in flight after the timeout is harmless: it
 * carries the same offsets, and later commits reach the coordinator after
 * it on the same connection. */
static rd_kafka_resp_err_t commit_bounded(struct ksink *ks,
                                          rd_kafka_topic_partition_list_t *l) {
  rd_kafka_queue_t *q = rd_kafka_queue_new(ks->reader);
  rd_kafka_resp_err_t e = rd_kafka_commit_queue(ks->reader, l, q, NULL, NULL);
  if (!e) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms(ks));
    if (!ev) {
      e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    } else {
      e = rd_kafka_event_error(ev);
      const rd_kafka_topic_partition_list_t *r =
          rd_kafka_event_topic_partition_list(ev);
      for (int i = 0; r && i < r->cnt && !e; i++)
        e = r->elems[i].err;
      rd_kafka_event_destroy(ev);
    }
  }
  rd_kafka_queue_destroy(q);
  return e;
}

/* mirror_offsets: stores the committed transaction's offsets again with a
 * plain commit (librdkafka's mock drops the transactional one). */
static int mirror(struct ksink *ks, const struct sl_plan *plan,
                  struct sl_error *err) {
  rd_kafka_topic_partition_list_t *l = batch_offsets(plan, ks->last.attempt);
  rd_kafka_resp_err_t e = commit_bounded(ks, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e)
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_RETRIABLE,
                         "Kafka sink: batch %" PRIu64 " committed, but "
                         "mirroring its offsets to group '%s' failed: %s",
                         plan->batch, ks->group, rd_kafka_err2str(e));
  ks->mirror_pending = false;
  return 0;
}

/* An error injected by a failpoint, as librdkafka would report it. */
static rd_kafka_error_t *injected(int errnum) {
  return rd_kafka_error_new(RD_KAFKA_RESP_ERR__FAIL,
                            "failpoint: injected "
                            "error: %s",
                            strerror(errnum));
}

/* commit_transaction; on success the batch is the sink's last. */
static int txn_end(struct ksink *ks, struct sl_sink *sink,
                   const struct sl_plan *plan, struct sl_error *err) {
  ks->txn = TXN_COMMITTING;
  sl_debug("Kafka sink: batch %" PRIu64 " attempt %s: committing", plan->batch,
           ks->txn_attempt);
  rd_kafka_error_t *e = rd_kafka_commit_transaction(ks->rk, timeout_ms(ks));
  if (e)
    return txn_failed(ks, e, "committing the transaction", err);
  ks->txn = TXN_IDLE;
  ks->last.batch = plan->batch;
  memcpy(ks->last.attempt, ks->txn_attempt, sizeof(ks->last.attempt));
  for (size_t i = 0; i < plan->n; i++) { /* the positions it committed */
    const struct sl_range *r = &plan->ranges[i];
    struct sl_range *at = sl_plan_find(&ks->last.pos, r->topic, r->partition);
    if (at)
      at->start = at->end = r->end;
    else
      sl_plan_add(&ks->last.pos, r->topic, r->partition, r->end, r->end);
  }
  snprintf(sink->note, sizeof(sink->note), "%s", ks->last.attempt);
  ks->mirror_pending = ks->conf->mirror_offsets;
  if (ks->mirror_pending && mirror(ks, plan, err))
    return err->code;
  if (sl_failpoint_err("sink.kafka.after_commit_txn", err)) {
    err->flags |= SL_ERR_RETRIABLE; /* the retry finds the batch committed */
    return err->code;
  }
  return 0;
}

/* Group mode: what the group coordinator answers a commit from an
 * instance it has moved on from (it left after its session timed out, or
 * the group is in a newer generation than the metadata). */
static bool group_fenced_code(rd_kafka_resp_err_t code) {
  return code == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
         code == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
         code == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID ||
         code == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
}

/* The group refused the batch's offsets (e, consumed), or the instance is
 * no member (why): the transaction is aborted, its records never become
 * visible, and the engine abandons the batch (SL_ERR_FENCED, not
 * retried). The producer stays usable. */
static int group_refused(struct ksink *ks, rd_kafka_error_t *e, const char *why,
                         struct sl_error *err) {
  char msg[512];
  snprintf(msg, sizeof(msg), "%s", e ? rd_kafka_error_string(e) : why);
  if (e)
    rd_kafka_error_destroy(e);
  sl_warn("Kafka sink: group '%s' refused the offsets of batch %" PRIu64
          " (attempt %s): %s; aborting its transaction",
          ks->group, ks->txn_batch, ks->txn_attempt, msg);
  struct sl_error aerr = {0};
  if (txn_abort(ks, &aerr) && ks->fatal) {
    *err = aerr;
    return err->code;
  }
  return sl_error_setf(err, SL_ERR_FENCED, 0,
                       "fenced: group '%s' refused the offsets of batch "
                       "%" PRIu64 " (attempt %s): %s",
                       ks->group, ks->txn_batch, ks->txn_attempt, msg);
}

/* One new transaction of the batch: begin, produce, offsets, commit. */
static int txn_run(struct ksink *ks, struct sl_sink *sink,
                   const struct sl_plan *plan, void *const *stages, size_t n,
                   struct sl_error *err) {
  ks->txn_batch = plan->batch;
  sl_ksink_attempt_id(ks->txn_attempt, sizeof(ks->txn_attempt), ks->run,
                      ++ks->attempts);
  int fe;
  rd_kafka_error_t *e = rd_kafka_begin_transaction(ks->rk);
  if (e)
    return txn_failed(ks, e, "beginning the transaction", err);
  ks->txn = TXN_OPEN;
  sl_debug("Kafka sink: batch %" PRIu64 " attempt %s: producing %zu records",
           plan->batch, ks->txn_attempt, staged_records(stages, n));
  rd_kafka_resp_err_t pe =
      produce_stages(ks, plan->batch, ks->txn_attempt, stages, n);
  if (pe == RD_KAFKA_RESP_ERR__FATAL) {
    char msg[512];
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(ks->rk, msg, sizeof(msg));
    return set_fatal(ks, code, msg, err);
  }
  if (pe)
    return txn_failed(ks, rd_kafka_error_new(pe, "%s", rd_kafka_err2str(pe)),
                      "producing", err);
  if ((fe = sl_failpoint("sink.kafka.after_produce")))
    return txn_failed(ks, injected(fe), "producing", err);
  rd_kafka_topic_partition_list_t *offs = batch_offsets(plan, ks->txn_attempt);
  rd_kafka_consumer_group_metadata_t *cgm =
      ks->member ? ks->member->group_metadata(ks->member->group_arg)
                 : rd_kafka_consumer_group_metadata_new(ks->group);
  if (!cgm) { /* the membership was lost: commit nothing */
    rd_kafka_topic_partition_list_destroy(offs);
    return group_refused(ks, NULL, "the instance is no member of the group",
                         err);
  }
  if (ks->member)
    sl_info("Kafka sink: batch %" PRIu64 " attempt %s: sending its offsets "
            "to group '%s' with the membership's metadata",
            plan->batch, ks->txn_attempt, ks->group);
  e = rd_kafka_send_offsets_to_transaction(ks->rk, offs, cgm, timeout_ms(ks));
  if (!ks->member)
    rd_kafka_consumer_group_metadata_destroy(cgm);
  rd_kafka_topic_partition_list_destroy(offs);
  if (e && ks->member && group_fenced_code(rd_kafka_error_code(e)))
    return group_refused(ks, e, NULL, err);
  if (e)
    return txn_failed(ks, e, "sending the offsets", err);
  if ((fe = sl_failpoint("sink.kafka.after_send_offsets")))
    return txn_failed(ks, injected(fe), "sending the offsets", err);
  return txn_end(ks, sink, plan, err);
}

static int eos_commit(struct sl_sink *sink, const struct sl_plan *plan,
                      void *const *stages, size_t n, struct sl_error *err) {
  struct ksink *ks = sink->ctx;
  if (ks->fatal)
    return sl_error_setf(err, SL_ERR_SINK, SL_ERR_FATAL, "%s", ks->fatal_msg);
  if (plan->batch <= ks->last.batch) {
    /* Committed already (idempotent on the batch id). */
    if (plan->batch < ks->last.batch)
      return 0;
    snprintf(sink->note, sizeof(sink->note), "%s", ks->last.attempt);
    return ks->mirror_pending ? mirror(ks, plan, err) : 0;
  }
  if (ks->txn == TXN_COMMITTING && ks->txn_batch == plan->batch)
    return txn_end(ks, sink, plan, err);
  if (ks->txn != TXN_IDLE && txn_abort(ks, err))
    return err->code;
  return txn_run(ks, sink, plan, stages, n, err);
}

/* @locality coordinator */
static int ksink_commit(struct sl_sink *sink, const struct sl_plan *plan,
                        void *const *stages, size_t n, struct sl_error *err) {
  struct ksink *ks = sink->ctx;
  return ks->conf->exactly_once ? eos_commit(sink, plan, stages, n, err)
                                : alo_commit(sink, plan, stages, n, err);
}

/* ------------------------------------------------------------- the end */

static const char *ksink_describe(struct sl_sink *sink) {
  struct ksink *ks = sink->ctx;
  return ks ? ks->describe : "Kafka";
}

/* @locality coordinator */
static void ksink_destroy(struct sl_sink *sink) {
  struct ksink *ks = sink->ctx;
  if (!ks)
    return;
  if (ks->rk && ks->conf->exactly_once && !ks->fatal && ks->txn != TXN_IDLE) {
    /* Frees the transaction now rather than at transaction.timeout.ms;
     * bounded, the brokers may be gone. */
    rd_kafka_error_t *e =
        rd_kafka_abort_transaction(ks->rk, SL_MIN(timeout_ms(ks), 5000));
    if (e)
      rd_kafka_error_destroy(e);
  } else if (ks->rk && !ks->conf->exactly_once) {
    rd_kafka_flush(ks->rk, 5000);
  }
  if (ks->rk)
    rd_kafka_destroy(ks->rk);
  if (ks->reader) {
    rd_kafka_consumer_close(ks->reader);
    rd_kafka_destroy(ks->reader);
  }
  if (ks->src_parts)
    rd_kafka_topic_partition_list_destroy(ks->src_parts);
  sl_plan_clear(&ks->last.end);
  sl_plan_clear(&ks->last.pos);
  sl_ktpl_free(ks->topic_tpl);
  sl_ktpl_free(ks->key_tpl);
  sl_ktpl_free(ks->value_tpl);
  free(ks);
  sink->ctx = NULL;
}

static unsigned ksink_conf_flags(const void *conf) {
  return ((const struct ksink_conf *)conf)->exactly_once
             ? SL_SINK_EXACTLY_ONCE | SL_SINK_STORES_SOURCE_OFFSETS |
                   SL_SINK_GROUP_FENCED
             : SL_SINK_WRITES_AT_ONCE;
}

const struct sl_sink_plugin sl_sink_kafka = {
    .name = "kafka",
    .config_map = ksink_map,
    .conf_size = sizeof(struct ksink_conf),
    .flags = 0, /* exactly-once only with exactly_once: true */
    .validate = ksink_validate,
    .init = ksink_init,
    .last_committed = ksink_last_committed,
    .positions = ksink_positions,
    .stage_open = ksink_stage_open,
    .stage_write = ksink_stage_write,
    .stage_close = ksink_stage_close,
    .commit = ksink_commit,
    .stage_free = ksink_stage_free,
    .describe = ksink_describe,
    .destroy = ksink_destroy,
    .conf_flags = ksink_conf_flags,
    .stream_open = ksink_stream_open,
    .stream_write = ksink_stream_write,
    .stream_close = ksink_stream_close,
};
