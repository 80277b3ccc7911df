/* fuzz_checkpoint.c - every reader of the checkpoint store and of the
 * file sink's manifest: the checksummed envelope (fsio.c), metadata,
 * offsets/N and commits/N (checkpoint.c), the scan, `checkpoint show`
 * and the recovery decision, and the manifest the file sink reads back
 * at start-up (sinks/file/file.c).
 *
 * Input: byte 0 selects the file (bits 0-1: 0 metadata, 1 offsets/N,
 * 2 commits/N, 3 the file sink's _manifest/N) and whether the harness
 * seals the rest with a valid envelope (bit 2; otherwise the rest is the
 * whole file, envelope included, as found on disk); byte 1 is N (0 reads
 * as 1). The file is written into a fresh checkpoint directory (with a
 * valid metadata file unless it is the metadata), then the store is opened,
 * scanned and read as the engine does at start-up. fsync is a no-op here:
 * durability is not what is fuzzed. */
#include <sys/stat.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/fsio.h"
#include "config/config.h"
#include "src/offsets.h"
#include "src/plugin.h"
#include "src/util.h"
#include "tests/fuzz/fuzz.h"

extern const struct sl_sink_plugin sl_sink_file;

static int no_fsync(int fd) {
  (void)fd;
  return 0;
}

static struct sl_fsio_ops ops;
static char ckdir[600], sinkdir[600];
static FILE *devnull;
static struct sl_cfg_node *sink_tree;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  ops = sl_fsio_posix;
  ops.fsync = no_fsync;
  sl_fsio = &ops;
  const char *dir = fuzz_scratch();
  snprintf(ckdir, sizeof(ckdir), "%s/ck", dir);
  snprintf(sinkdir, sizeof(sinkdir), "%s/sink", dir);
  devnull = fopen("/dev/null", "w");
  char yaml[700];
  snprintf(yaml, sizeof(yaml), "path: %s\n", sinkdir);
  struct sl_error err = {0};
  sink_tree = sl_cfg_load_string("sink", yaml, strlen(yaml), &err);
  if (!devnull || !sink_tree)
    abort();
  return 0;
}

/* Writes dir/name: data as is, or sealed. */
static void put(const char *dir, const char *name, const uint8_t *data,
                size_t n, bool seal) {
  char path[800];
  struct sl_error err = {0};
  if (sl_fsio_mkdirs(dir, &err))
    abort();
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  if (!seal) {
    fuzz_write(path, data, n);
    return;
  }
  size_t len;
  char *s = sl_fsio_seal((const char *)data, n, &len);
  fuzz_write(path, s, len);
  free(s);
}

static void checkpoint(int kind, unsigned batch, const uint8_t *data, size_t n,
                       bool seal) {
  char dir[700], name[16];
  snprintf(name, sizeof(name), "%u", batch);
  if (kind == 0) {
    put(ckdir, "metadata", data, n, seal);
  } else {
    static const char meta[] = "{\"job\": \"quickstart\", \"version\": 1}";
    put(ckdir, "metadata", (const uint8_t *)meta, strlen(meta), true);
    snprintf(dir, sizeof(dir), "%s/%s", ckdir,
             kind == 1 ? "offsets" : "commits");
    put(dir, name, data, n, seal);
  }
  struct sl_error err = {0};
  struct sl_ckpt *ck = NULL;
  if (sl_ckpt_open(ckdir, "quickstart", &ck, &err)) {
    if (!err.msg[0])
      abort();
  } else {
    struct sl_ckpt_state st = {0};
    if (sl_ckpt_scan(ck, &st, &err) == 0) {
      for (int s = 0; s < 2; s++)
        (void)sl_recovery_decide(st.last_commit, st.last_offsets, true, batch,
                                 s);
    }
    struct sl_plan plan = {0};
    memset(&err, 0, sizeof(err));
    if (sl_ckpt_read_offsets(ck, batch, &plan, &err) == 0) {
      if (plan.batch != batch)
        abort();
      for (size_t i = 0; i < plan.n; i++)
        if (!plan.ranges[i].topic)
          abort();
    }
    sl_plan_clear(&plan);
    int64_t ms;
    (void)sl_ckpt_read_commit(ck, batch, &ms, &err);
    (void)sl_ckpt_has_commit(ck, batch);
    sl_ckpt_close(ck);
  }
  memset(&err, 0, sizeof(err));
  sl_ckpt_show(ckdir, devnull, &err);
}

static void manifest(unsigned batch, const uint8_t *data, size_t n, bool seal) {
  char dir[700], name[16];
  snprintf(dir, sizeof(dir), "%s/_manifest", sinkdir);
  snprintf(name, sizeof(name), "%u", batch);
  put(dir, name, data, n, seal);
  void *conf = sl_calloc(1, sl_sink_file.conf_size);
  struct sl_error err = {0};
  if (sl_cfg_bind(sink_tree, sink_tree, sl_sink_file.config_map, conf,
                  "sink.file", &err))
    abort();
  struct sl_sink sink = {.plugin = &sl_sink_file, .conf = conf};
  if (sl_sink_file.init(&sink, &err) == 0) {
    uint64_t last = 0;
    struct sl_plan end = {0};
    if (sl_sink_file.last_committed(&sink, &last, &end, &err) == 0 &&
        last != batch)
      abort();
    sl_plan_clear(&end);
  }
  sl_sink_file.destroy(&sink);
  sl_cfg_unbind(sl_sink_file.config_map, conf);
  free(conf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  int kind = data[0] & 3;
  bool seal = data[0] & 4;
  unsigned batch = data[1] ? data[1] : 1;
  fuzz_rmtree(ckdir);
  fuzz_rmtree(sinkdir);
  if (kind == 3)
    manifest(batch, data + 2, size - 2, seal);
  else
    checkpoint(kind, batch, data + 2, size - 2, seal);
  return 0;
}
