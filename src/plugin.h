/*
 * plugin.h - the source and sink plugin interfaces.
 *
 * A plugin is one struct of callbacks filled with designated initializers
 * and exported as one symbol from its folder (sources/<name>/,
 * sinks/<name>/); src/registry.c lists them, and the ones a CMake option
 * left out of this build (SLUICE_WITH_REDIS, SLUICE_WITH_KAFKA_SINK). Each
 * plugin declares its config_map (keys, types, defaults, docs) and the size
 * of the struct the loader binds it into; `conf` below points at that
 * struct.
 *
 * Return values: 0, or a negative sl_err with the sl_error filled. The
 * engine owns retries: a callback that may succeed when called again sets
 * SL_ERR_RETRIABLE in err->flags; without it the job stops.
 */
#ifndef SL_PLUGIN_H
#define SL_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>

#include "../config/config.h"
#include "error.h"
#include "offsets.h"
#include "record.h"

struct sl_ckpt;
struct sl_metrics;

/* ---------------------------------------------------------- run context */

/* What a plugin knows of the run besides its own section of the job file
 * (conf): narrow on purpose. A plugin never sees the job, another
 * plugin's config or the engine. */
enum sl_plugin_role {
  SL_ROLE_SOURCE,
  SL_ROLE_SINK,
  SL_ROLE_DEAD_LETTERS /* a sink plugin writing the job's dead letters */
};

/* The source, as a sink that stores source offsets sees it (only sinks
 * whose flags have SL_SINK_STORES_SOURCE_OFFSETS get it): the plugin, the
 * topics it reads and its consumer group id. The partitions and their end
 * offsets come with every commit, in its plan. */
struct sl_source_info {
  const char *plugin;        /* "kafka" */
  const char *const *topics; /* ntopics names */
  size_t ntopics;
  const char *group_id; /* the source's group.id; NULL when it has none */
  /* Group mode (source.kafka.group): the instance's membership. NULL
   * outside group mode. group_metadata returns the consumer group
   * metadata of the membership as of its latest assignment (for Kafka an
   * rd_kafka_consumer_group_metadata_t *, borrowed: valid until the
   * engine next polls the membership, which it never does during a sink
   * commit), or NULL when the instance is no member (it was fenced).
   * @locality coordinator */
  void *(*group_metadata)(void *arg);
  void *group_arg;
  /* Group mode: this instance's id (engine.c: a hash of the host name and
   * the checkpoint directory's real path), stable across its restarts;
   * the Kafka sink appends it to its transactional.id. */
  const char *instance;
};

struct sl_run_ctx {
  const char *job_id;
  enum sl_plugin_role role;
  struct sl_ckpt *ck;         /* the checkpoint; NULL in a dry run */
  struct sl_metrics *metrics; /* NULL when metrics are off */
  /* Sinks with SL_SINK_STORES_SOURCE_OFFSETS: the source; else NULL. */
  const struct sl_source_info *source;
  /* The job runs the continuous trigger: batches are epochs, and a sink
   * with SL_SINK_WRITES_AT_ONCE writes records through its streams. */
  bool continuous;
};

/* Continuous trigger: where a long-running task stands in one partition.
 * Every record before `next` has been read and handed on (written, left
 * out by a filter, or sent to the dead letters). */
struct sl_stream_mark {
  const char *topic;
  int32_t partition;
  int64_t next;
};

/* ------------------------------------------------------------- sources */

/* Group mode (source.kafka.group): the engine's side of a rebalance. The
 * source calls these from inside group_poll, on the coordinator, from its
 * rebalance callback: assigned once the partitions are the instance's,
 * before anything is planned for them; revoked before it gives them up,
 * and the engine returns only once its work on them is finished or
 * abandoned (lost: the group has already given them to another member). */
struct sl_group_hooks {
  void *arg;
  int (*assigned)(void *arg, const struct sl_plan *parts, struct sl_error *err);
  void (*revoked)(void *arg, const struct sl_plan *parts, bool lost);
};

/* How long a failing step is tried again before the job stops (the
 * `retry` key of sources and sinks). A step is retried only when the
 * plugin marks the error SL_ERR_RETRIABLE (an outage), with a pause that
 * starts at backoff and doubles up to max_backoff; the job stops once
 * attempts or max_elapsed is spent. */
struct sl_retry {
  int64_t attempts;
  int64_t backoff_ns;
  int64_t max_backoff_ns;
  int64_t max_elapsed_ns;
};

/* Keys every source has: how the coordinator cuts its backlog, and how
 * long it keeps planning through an outage of the source (a batch cannot
 * be planned while the source does not give its watermarks). They are
 * accepted in the source's own map (source.kafka.max_records_per_batch). */
struct sl_source_common {
  int64_t max_records_per_batch; /* cap on one batch, all partitions */
  int64_t min_records_per_batch; /* wait for this many ...           */
  int64_t max_batch_delay_ns;    /* ... but never longer than this   */
  int64_t task_max_records;      /* longer ranges are split in tasks */
  int64_t max_record_bytes;      /* larger records are dead letters  */
  struct sl_retry retry;         /* planning through an outage       */
};
extern const struct sl_cfg_field sl_source_common_map[];

struct sl_source {
  const struct sl_source_plugin *plugin;
  void *conf; /* bound config; begins with struct sl_source_common */
  const struct sl_run_ctx *run;
  void *ctx; /* the plugin's state */
};

struct sl_source_plugin {
  const char *name;
  const struct sl_cfg_field *config_map;
  size_t conf_size;
  /* Extra checks of the bound config that need positions (node is the
   * plugin's map in the job file). Optional. @locality coordinator */
  int (*validate)(const void *conf, const struct sl_cfg_node *node,
                  struct sl_error *err);
  /* Connects; fails in bounded time. @locality coordinator */
  int (*init)(struct sl_source *src, struct sl_error *err);
  /* Fills out with one range per partition the job reads (start, end are
   * the low and high watermarks). @locality coordinator */
  int (*watermarks)(struct sl_source *src, struct sl_plan *out,
                    struct sl_error *err);
  /* Where a partition with no checkpointed position starts, given its
   * watermarks (starting_offsets). @locality coordinator */
  int (*start_offset)(struct sl_source *src, const struct sl_range *wm,
                      int64_t *out, struct sl_error *err);
  /* A reader for one worker: its own connection, kept across batches.
   * @locality worker thread (created, used and freed there) */
  int (*reader_new)(struct sl_source *src, int worker, void **reader,
                    struct sl_error *err);
  /* Reads the next chunk of [*pos, r->end) into out (replacing the
   * previous chunk, whose memory is released) and advances *pos past it;
   * the range is done when *pos >= r->end. Records before r->start or at
   * or after r->end are never returned. Bounded wait: fails with a
   * retriable SL_ERR_TIMEOUT when no progress is made in time.
   * @locality worker thread */
  int (*read)(void *reader, const struct sl_range *r, int64_t *pos,
              struct sl_batch *out, struct sl_error *err);
  /* A hint: the ranges this reader will likely read next, in order,
   * each from its start; it replaces the previous hint, and n may be 0.
   * The engine passes the range about to be read first, then the ranges
   * queued after it on the same worker that no worker has begun. A reader
   * may start fetching them so that fetches overlap the work on the
   * current range; a hinted range can still go to another worker, so what
   * a reader fetches ahead must stay bounded. Optional; errors are the
   * next read's to report. @locality worker thread */
  void (*prefetch)(void *reader, const struct sl_range *ranges, size_t n);
  /* Records lost to retention that the source skipped (fail_on_data_loss
   * off), added up over the reader's life. Optional. @locality worker */
  int64_t (*reader_lost)(void *reader);
  void (*reader_free)(void *reader); /* @locality worker thread */
  /* Continuous trigger (optional: a source without them cannot run it).
   * A stream reads a set of partitions on one reader, each from a
   * position (from[i].start; end is ignored) with no end.
   * @locality worker thread, except stream_wake */
  int (*stream_start)(void *reader, const struct sl_range *from, size_t n,
                      struct sl_error *err);
  /* Reads what has arrived on any of the stream's partitions (each
   * partition's records in offset order) into out, replacing the previous
   * records, waiting at most wait_ms (-1: until woken) for the first one;
   * out->n is 0 after the wait or a wake. Gaps (compaction, transaction
   * markers) and records lost to retention are skipped; *marks, when not
   * NULL, gets the position each partition reached (its next offset),
   * nmarks entries, so that a partition whose last offsets carried no
   * record still moves. */
  int (*stream_read)(void *reader, int wait_ms, struct sl_batch *out,
                     struct sl_stream_mark **marks, size_t *nmarks,
                     struct sl_error *err);
  /* Makes a waiting stream_read on reader return now. @locality any */
  void (*stream_wake)(void *reader);
  /* Ends the stream; the reader reads ranges again afterwards. */
  void (*stream_stop)(void *reader);
  /* A short description for progress reports ("KafkaV2[clicks]"). */
  const char *(*describe)(struct sl_source *src);
  /* What a sink that stores source offsets may know of this source
   * (sl_source_info; the strings live as long as the source). Optional.
   * @locality coordinator, after init */
  void (*info)(struct sl_source *src, struct sl_source_info *out);
  void (*destroy)(struct sl_source *src); /* @locality coordinator */

  /* Group mode, all optional (a source without them cannot run it). The
   * consumer group id the configuration names, NULL when the job runs
   * alone (validate time: no connection). */
  const char *(*conf_group)(const void *conf);
  /* Serves the membership: rebalances call h (above), in order, before
   * it returns. From then on watermarks lists only the partitions the
   * instance owns. Never blocks. @locality coordinator */
  int (*group_poll)(struct sl_source *src, const struct sl_group_hooks *h,
                    struct sl_error *err);
  /* For sinks that keep no positions (at-least-once): stores the ends of
   * a committed batch as the group's offsets (synchronously), and reads
   * them back for partitions just assigned (out: one range per partition
   * with an offset, start = end). @locality coordinator */
  int (*group_commit)(struct sl_source *src, const struct sl_plan *ends,
                      struct sl_error *err);
  int (*group_committed)(struct sl_source *src, const struct sl_plan *parts,
                         struct sl_plan *out, struct sl_error *err);
};

/* --------------------------------------------------------------- sinks */

#define SL_SINK_EXACTLY_ONCE 0x1u /* commits are atomic and idempotent */
/* Stages of batch N+1 may be opened, written and closed on the workers
 * while commit(N) runs on another thread: the two share no state. */
#define SL_SINK_STAGE_DURING_COMMIT 0x2u
/* The sink stores the source's offsets in its own atomic record (Kafka:
 * in the transaction, as the consumer group's offsets): it is given the
 * source's sl_source_info in its run context. */
#define SL_SINK_STORES_SOURCE_OFFSETS 0x4u
/* Continuous trigger: the sink writes records the moment they arrive,
 * exactly once per record, through stream_open/stream_write/stream_close
 * (below), and stores each partition's position with the writes. The
 * commit of an epoch then gets no stages (n = 0): it records the epoch
 * and the plan's end offsets, never lowering a position a stream stored.
 * A sink without the flag stages an epoch like a batch, and its output
 * becomes visible at the epoch's commit. */
#define SL_SINK_WRITES_AT_ONCE 0x8u
/* Group mode: the sink refuses a fenced instance's commit without claim
 * (Kafka exactly_once: the transaction carries the membership's group
 * metadata, KIP-447), and reads its positions afresh at every call. */
#define SL_SINK_GROUP_FENCED 0x10u
/* The sink's output cannot be shared by instances of one job (file: one
 * manifest per directory): validate refuses it in group mode. */
#define SL_SINK_SINGLE_INSTANCE 0x20u

/* Keys every sink has, accepted in the sink's own map (sink.redis.retry):
 * how long a failing commit is retried before the job stops. */
struct sl_sink_common {
  struct sl_retry retry;
};
extern const struct sl_cfg_field sl_sink_common_map[];

struct sl_sink {
  const struct sl_sink_plugin *plugin;
  void *conf; /* bound config; begins with struct sl_sink_common */
  const struct sl_run_ctx *run;
  void *ctx;
  /* What the sink says about the batch it just committed (commit) or
   * found committed (last_committed), stored in commits/N as "sink": for
   * example which attempt of the batch committed. "" when nothing. */
  char note[128];
  /* Sinks that keep a record of what they committed: where it is, for
   * messages that tell a user how to start over ("the hash
   * sluice:clicks:commit at 127.0.0.1:6379/0"). Set by init; "" when the
   * sink keeps none. */
  char record[256];
};

struct sl_sink_plugin {
  const char *name;
  const struct sl_cfg_field *config_map;
  size_t conf_size;
  unsigned flags;
  int (*validate)(const void *conf, const struct sl_cfg_node *node,
                  struct sl_error *err);
  /* When the pipeline fixes the fields of its output rows: checks that
   * what the sink's settings name (template placeholders) is among them
   * (fields is NULL-terminated). Optional. @locality coordinator */
  int (*check_fields)(const void *conf, const struct sl_cfg_node *node,
                      const char *const *fields, struct sl_error *err);
  /* A window with output: merge (window.h) makes rows that hold one
   * batch's or group's contribution to a window, to be merged with what
   * the sink holds, not totals. aggs (NULL-terminated) names each
   * aggregate field, kinds[k] how it merges: '+' added (count, sum), '<'
   * the lower kept (min), '>' the higher (max). A sink that merges checks
   * that its settings do; NULL when the sink cannot merge (files and
   * Kafka records are not changed once written), and validate refuses
   * the job. @locality coordinator */
  int (*check_merge)(const void *conf, const struct sl_cfg_node *node,
                     const char *const *aggs, const char *kinds,
                     struct sl_error *err);
  /* @locality coordinator */
  int (*init)(struct sl_sink *sink, struct sl_error *err);
  /* The sink's own record of its last committed batch and the end offsets
   * it stored with it (*batch = 0 when none). NULL when the sink keeps no
   * such record (console): the checkpoint alone then decides; a sink
   * that keeps one only in some configurations (Kafka, at-least-once)
   * returns SL_ERR_NOTFOUND to say so, with the same effect.
   * @locality coordinator */
  int (*last_committed)(struct sl_sink *sink, uint64_t *batch,
                        struct sl_plan *end, struct sl_error *err);
  /* The sink's committed position of each partition of the source's
   * topics that its record names (src: the source's topics; the range's
   * end is the position, the next offset to read, start = end): every
   * record of the partition below it is in the sink, written atomically
   * with the position, and none at or above it. Positions never go back.
   * Redis: the commit hash's o:<topic>:<partition> fields, which the
   * streams of a continuous run move per group, ahead of `batch`; Kafka
   * with exactly_once: the group offsets its transactions committed.
   * Recovery resumes each partition at max(the local checkpoint's end,
   * this position) (DESIGN.md section 14: per partition, the sink's
   * record is the authority; the checkpoint is the instance's log), and a
   * partition the checkpoint does not know at this position. A logged
   * batch is re-run with its ranges unchanged even when a position is
   * inside them, so a sink whose positions can pass the ends of its last
   * committed batch (Redis: the streams) must skip, in every commit and
   * stream write, the records below its positions; a sink whose positions
   * move only with its batch commits (Kafka) needs not. NULL when the sink
   * keeps no per-partition record (file: one manifest per batch; console);
   * a sink that keeps one only in some configurations (Kafka,
   * at-least-once) returns SL_ERR_NOTFOUND. @locality coordinator */
  int (*positions)(struct sl_sink *sink, const struct sl_source_info *src,
                   struct sl_plan *out, struct sl_error *err);
  /* Opens the staging area of one task of one batch. Outputs staged are
   * invisible until commit. @locality worker thread */
  int (*stage_open)(struct sl_sink *sink, uint64_t batch, uint32_t task,
                    void **stage, struct sl_error *err);
  /* Stages the records of b. A record the sink cannot write (a template
   * field is missing) goes to rejects with the reason, not to the stage.
   * @locality worker thread */
  int (*stage_write)(void *stage, const struct sl_batch *b,
                     struct sl_rejects *rejects, struct sl_error *err);
  /* Makes the staged outputs durable where that applies (file: fsync).
   * @locality worker thread */
  int (*stage_close)(void *stage, struct sl_error *err);
  /* Makes all stages of batch plan->batch visible at once, with the end
   * offsets of plan, atomically; committing a batch the sink already
   * holds is a no-op success. stages are in task order.
   * @locality coordinator */
  int (*commit)(struct sl_sink *sink, const struct sl_plan *plan,
                void *const *stages, size_t n, struct sl_error *err);
  /* Frees a stage, committed or not. @locality any, one thread at a time */
  void (*stage_free)(struct sl_sink *sink, void *stage);
  const char *(*describe)(struct sl_sink *sink);
  void (*destroy)(struct sl_sink *sink); /* @locality coordinator */
  /* The flags of a configured sink, for a sink whose guarantees depend on
   * its config (Kafka: SL_SINK_EXACTLY_ONCE only with exactly_once:
   * true). Optional; without it, flags. @locality coordinator */
  unsigned (*conf_flags)(const void *conf);

  /* Continuous trigger, sinks with SL_SINK_WRITES_AT_ONCE. A stream is
   * one long-running task's own connection to the sink, opened and used
   * on that task's worker. @locality worker thread */
  int (*stream_open)(struct sl_sink *sink, uint32_t task, void **stream,
                     struct sl_error *err);
  /* Writes the records of b now, visible at once, and stores marks (the
   * positions reached, one per partition the call covers) with them, all
   * or nothing. A record at an offset below the position the sink holds
   * for its partition is skipped, so a replay after a crash applies
   * nothing twice, even a non-idempotent command. b may be empty: the
   * marks alone move the positions past filtered records. A record the
   * sink cannot write goes to rejects, as in stage_write. Callable again
   * with the same arguments after a retriable error. @locality worker */
  int (*stream_write)(void *stream, const struct sl_batch *b,
                      const struct sl_stream_mark *marks, size_t nmarks,
                      struct sl_rejects *rejects, struct sl_error *err);
  void (*stream_close)(struct sl_sink *sink, void *stream); /* @worker */

  /* Group mode (source.kafka.group; DESIGN.md section 14). claim is
   * called when the instance has been assigned parts (ranges; start and
   * end ignored), before positions() is read for them: a sink that fences
   * claims each partition in its own record, so that from then on a
   * commit or stream write of any instance that claimed it earlier is
   * refused by the sink itself with SL_ERR_FENCED (not retriable), and
   * this instance's later commits and stream writes for those partitions
   * carry its claim. release is called when they are revoked, after the
   * instance finished or abandoned its work on them: it forgets the
   * claims (it writes nothing). Both optional: a sink without claim
   * either fences otherwise (Kafka: the transaction carries the consumer
   * group's metadata, and the broker refuses a zombie) or is refused in
   * group mode by validate. @locality coordinator */
  int (*claim)(struct sl_sink *sink, const struct sl_plan *parts,
               struct sl_error *err);
  void (*release)(struct sl_sink *sink, const struct sl_plan *parts);
};

/* The registered plugins (src/registry.c). */
const struct sl_source_plugin *sl_source_find(const char *name);
const struct sl_sink_plugin *sl_sink_find(const char *name);
/* NULL-terminated lists, for messages and --help. */
extern const struct sl_source_plugin *const sl_source_plugins[];
extern const struct sl_sink_plugin *const sl_sink_plugins[];

/* A plugin that exists in the source tree but was left out of this binary
 * by a CMake option: a job that names it is told which option builds it. */
struct sl_plugin_omitted {
  const char *name;   /* "redis" */
  const char *option; /* "SLUICE_WITH_REDIS" */
};
/* The sinks left out, ended by {NULL, NULL}. */
extern const struct sl_plugin_omitted sl_sink_plugins_omitted[];
/* The option that would build sink name, or NULL when it is built in (or
 * not a sink at all). */
const char *sl_sink_omitted(const char *name);

#endif
