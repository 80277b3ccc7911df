/*
 * file.c - JSON-lines files, exactly once.
 *
 * Layout under `path`:
 *   part-<batch>-<task>.jsonl   outputs of one task of one batch
 *   _manifest/<batch>           the commit of a batch: its part files and
 *                               the source end offsets, sealed (checksum)
 * A batch becomes visible when its manifest entry is renamed into place
 * (fsio.h: temp, fsync, rename, fsync dir). Readers trust only the part
 * files that a manifest lists; a part file without a manifest entry is a
 * leftover of an attempt that did not commit and is removed on start.
 * Part file names depend only on (batch, task), and a re-run batch has the
 * same ranges and so the same tasks: a re-run rewrites the same files.
 * Committing a batch whose manifest exists is a no-op (idempotent).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../checkpoint/fsio.h"
#include "../../src/buf.h"
#include "../../src/failpoint.h"
#include "../../src/log.h"
#include "../../src/plugin.h"
#include "../../src/util.h"

enum { FMT_VALUE, FMT_ENVELOPE };
static const char *const formats[] = {"value", "envelope", NULL};

struct file_conf {
  struct sl_sink_common common; /* first: the engine reads it */
  char *path;
  int format;
};

static const struct sl_cfg_field file_map[] = {
    {.key = "path",
     .type = SL_CFG_T_STR,
     .flags = SL_CFG_REQUIRED,
     .offset = offsetof(struct file_conf, path),
     .desc = "output directory"},
    {.key = "format",
     .type = SL_CFG_T_ENUM,
     .def = "value",
     .offset = offsetof(struct file_conf, format),
     .enum_values = formats,
     .desc = "value: each record's value on a line; envelope: a JSON "
             "object with topic, partition, offset, timestamp, key, value"},
    {0}};

struct file_sink {
  char *path;
  char *manifest_dir;
  /* Newest committed batch; stage_open reads it on the workers while a
   * commit may run on another thread. */
  _Atomic uint64_t last;
  char describe[300];
};

struct file_stage {
  struct file_sink *fs;
  const struct file_conf *conf;
  char name[64];
  char *fpath;
  int fd;
  int64_t records, bytes;
  struct sl_buf buf;
  bool discard; /* the batch is committed already: write nothing */
};

static int parse_batch_name(const char *name, uint64_t *out) {
  char *end;
  if (name[0] < '0' || name[0] > '9')
    return -1;
  errno = 0;
  unsigned long long v = strtoull(name, &end, 10);
  if (errno || *end || v == 0)
    return -1;
  *out = v;
  return 0;
}

/* Reads and verifies _manifest/<batch>; returns its JSON (caller frees). */
static int read_manifest(struct file_sink *fs, uint64_t batch, cJSON **out,
                         struct sl_error *err) {
  char path[4096];
  char *data;
  size_t len, body;
  snprintf(path, sizeof(path), "%s/%" PRIu64, fs->manifest_dir, batch);
  int rc = sl_fsio_read_file(path, &data, &len, err);
  if (rc)
    return rc;
  if (sl_fsio_unseal(path, data, len, &body, err)) {
    free(data);
    return err->code;
  }
  *out = cJSON_ParseWithLength(data, body);
  free(data);
  if (!*out)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "%s: manifest is not valid JSON (file is corrupt)",
                        path);
  return 0;
}

static int file_init(struct sl_sink *sink, struct sl_error *err) {
  const struct file_conf *c = sink->conf;
  struct file_sink *fs = sl_calloc(1, sizeof(*fs));
  char buf[4096];
  sink->ctx = fs;
  fs->path = sl_strdup(c->path);
  snprintf(buf, sizeof(buf), "%s/_manifest", c->path);
  fs->manifest_dir = sl_strdup(buf);
  snprintf(fs->describe, sizeof(fs->describe), "File[%s]", c->path);
  snprintf(sink->record, sizeof(sink->record), "the manifests in %s",
           fs->manifest_dir);
  /* The output directory is the users' (the umask decides); the
   * manifests are the sink's own record, private like the checkpoint. */
  if (sl_fsio_mkdirs(c->path, err) ||
      sl_fsio_mkdirs_private(fs->manifest_dir, err))
    return sl_error_prefix(err, "file sink");
  DIR *d = opendir(fs->manifest_dir);
  if (!d)
    return sl_error_set(err, SL_ERR_IO, "file sink: %s: %s", fs->manifest_dir,
                        strerror(errno));
  struct dirent *de;
  while ((de = readdir(d))) {
    uint64_t b;
    if (parse_batch_name(de->d_name, &b) == 0 && b > fs->last)
      fs->last = b;
    else if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp.")) {
      snprintf(buf, sizeof(buf), "%s/%s", fs->manifest_dir, de->d_name);
      unlink(buf);
    }
  }
  closedir(d);
  if (fs->last) {
    cJSON *m;
    if (read_manifest(fs, fs->last, &m, err))
      return err->code;
    cJSON_Delete(m);
  }
  /* Part files of batches after the last commit belong to attempts that
   * never committed: remove them so that nothing but listed files is
   * left (the re-run writes them again). */
  d = opendir(fs->path);
  if (!d)
    return sl_error_set(err, SL_ERR_IO, "file sink: %s: %s", fs->path,
                        strerror(errno));
  while ((de = readdir(d))) {
    unsigned long long b;
    unsigned t;
    if (sscanf(de->d_name, "part-%llu-%u.jsonl", &b, &t) == 2 && b > fs->last) {
      snprintf(buf, sizeof(buf), "%s/%s", fs->path, de->d_name);
      unlink(buf);
    }
  }
  closedir(d);
  return 0;
}

/* An integral JSON number in [0, max] (max < 2^53, where doubles are
 * exact), checked before it is converted: a cast of an out-of-range
 * double is undefined. */
static bool json_count(const cJSON *j, double max, int64_t *out) {
  if (!cJSON_IsNumber(j))
    return false;
  double d = j->valuedouble;
  if (!(d >= 0 && d <= max)) /* also rejects NaN */
    return false;
  *out = (int64_t)d;
  return (double)*out == d;
}

static int file_last_committed(struct sl_sink *sink, uint64_t *batch,
                               struct sl_plan *end, struct sl_error *err) {
  struct file_sink *fs = sink->ctx;
  *batch = fs->last;
  if (!fs->last)
    return 0;
  cJSON *m;
  if (read_manifest(fs, fs->last, &m, err))
    return err->code;
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(m, "offsets"), *o;
  cJSON_ArrayForEach(o, offs) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "topic");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "partition");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "end");
    int64_t part, pos;
    if (!cJSON_IsString(t) || !json_count(p, INT32_MAX, &part) ||
        !json_count(e, 9007199254740991.0, &pos)) {
      cJSON_Delete(m);
      return sl_error_set(err, SL_ERR_CORRUPT,
                          "%s/%" PRIu64 ": manifest offsets are malformed",
                          fs->manifest_dir, fs->last);
    }
    sl_plan_add(end, t->valuestring, (int32_t)part, pos, pos);
  }
  cJSON_Delete(m);
  return 0;
}

static int file_stage_open(struct sl_sink *sink, uint64_t batch, uint32_t task,
                           void **stage, struct sl_error *err) {
  struct file_sink *fs = sink->ctx;
  struct file_stage *s = sl_calloc(1, sizeof(*s));
  char path[4096];
  s->fs = fs;
  s->conf = sink->conf;
  if (batch <= atomic_load(&fs->last)) {
    /* A re-run of a batch this sink holds (the dead letters are committed
     * before the main sink): its commit is a no-op, and rewriting the
     * listed part files would change committed output, or cut it short
     * if the process died meanwhile. */
    s->discard = true;
    s->fd = -1;
    *stage = s;
    return 0;
  }
  snprintf(s->name, sizeof(s->name), "part-%010" PRIu64 "-%05u.jsonl", batch,
           task);
  snprintf(path, sizeof(path), "%s/%s", fs->path, s->name);
  s->fpath = sl_strdup(path);
  s->fd = sl_fsio->open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (s->fd < 0) {
    int rc =
        sl_error_setf(err, SL_ERR_IO, SL_ERR_RETRIABLE,
                      "file sink: cannot create %s: %s", path, strerror(errno));
    free(s->fpath);
    free(s);
    return rc;
  }
  /* 16 KiB first, growing to about FLUSH_AT; most tasks write less */
  sl_buf_reserve(&s->buf, 16 * 1024);
  *stage = s;
  return 0;
}

#define FLUSH_AT (256 * 1024)

static int flush_stage(struct file_stage *s, struct sl_error *err) {
  if (s->buf.len == 0)
    return 0;
  int rc = sl_fsio_write_all(s->fd, s->buf.p, s->buf.len, s->fpath, err);
  if (rc)
    err->flags |= SL_ERR_RETRIABLE;
  s->bytes += (int64_t)s->buf.len;
  sl_buf_reset(&s->buf);
  return rc;
}

/* A JSON string literal of bytes p[0..n) (control characters escaped). */
static void put_json_string(struct file_stage *s, const char *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  sl_buf_add(&s->buf, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      sl_buf_add(&s->buf, e, 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      sl_buf_add(&s->buf, e, 6);
    } else {
      sl_buf_add(&s->buf, (const char *)&p[i], 1);
    }
  }
  sl_buf_add(&s->buf, "\"", 1);
}

static int file_stage_write(void *stage, const struct sl_batch *b,
                            struct sl_rejects *rejects, struct sl_error *err) {
  (void)rejects; /* every record can be written */
  struct file_stage *s = stage;
  char num[160];
  if (s->discard)
    return 0;
  for (size_t i = 0; i < b->n; i++) {
    const struct sl_record *r = &b->recs[i];
    if (s->conf->format == FMT_VALUE) {
      if (r->value)
        sl_buf_add(&s->buf, r->value, r->value_len);
      else
        sl_buf_add(&s->buf, "null", 4);
      sl_buf_add(&s->buf, "\n", 1);
    } else {
      sl_buf_add(&s->buf, "{\"topic\":", 9);
      put_json_string(s, r->topic, strlen(r->topic));
      int n =
          snprintf(num, sizeof(num),
                   ",\"partition\":%d,\"offset\":%lld,\"timestamp\":%lld,"
                   "\"key\":",
                   r->partition, (long long)r->offset, (long long)r->timestamp);
      sl_buf_add(&s->buf, num, (size_t)n);
      if (r->key)
        put_json_string(s, r->key, r->key_len);
      else
        sl_buf_add(&s->buf, "null", 4);
      sl_buf_add(&s->buf, ",\"value\":", 9);
      if (r->value)
        put_json_string(s, r->value, r->value_len);
      else
        sl_buf_add(&s->buf, "null", 4);
      sl_buf_add(&s->buf, "}\n", 2);
    }
    if (s->buf.len >= FLUSH_AT && flush_stage(s, err))
      return err->code;
  }
  s->records += (int64_t)b->n;
  return 0;
}

static int file_stage_close(void *stage, struct sl_error *err) {
  struct file_stage *s = stage;
  if (s->discard)
    return 0;
  if (flush_stage(s, err))
    return err->code;
  /* the part is written: the buffer is not needed again */
  sl_buf_free(&s->buf);
  if (sl_fsio->fsync(s->fd) != 0)
    return sl_error_setf(err, SL_ERR_IO, SL_ERR_RETRIABLE,
                         "file sink: fsync %s: %s", s->fpath, strerror(errno));
  int rc = sl_fsio->close(s->fd);
  s->fd = -1;
  /* An error injected here stands for a close that reports a deferred
   * write error (NFS): the part is not trusted. */
  if (rc == 0 && (errno = sl_failpoint("sink.file.after_part_fsync")) != 0)
    rc = -1;
  if (rc != 0)
    return sl_error_setf(err, SL_ERR_IO, SL_ERR_RETRIABLE,
                         "file sink: close %s: %s", s->fpath, strerror(errno));
  return 0;
}

static int file_commit(struct sl_sink *sink, const struct sl_plan *plan,
                       void *const *stages, size_t n, struct sl_error *err) {
  struct file_sink *fs = sink->ctx;
  char name[32];
  if (plan->batch <= fs->last)
    return 0; /* already committed: idempotent */
  /* The part files' directory entries must be durable before the
   * manifest that lists them. */
  if (sl_fsio_sync_dir(fs->path, err)) {
    err->flags |= SL_ERR_RETRIABLE;
    return err->code;
  }
  if (sl_failpoint_err("sink.file.before_manifest", err))
    return err->code;
  cJSON *m = cJSON_CreateObject();
  cJSON_AddNumberToObject(m, "batch", (double)plan->batch);
  cJSON_AddNumberToObject(m, "committed_ms", (double)sl_wall_ms());
  cJSON *files = cJSON_AddArrayToObject(m, "files");
  int64_t records = 0;
  for (size_t i = 0; i < n; i++) {
    const struct file_stage *s = stages[i];
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "name", s->name);
    cJSON_AddNumberToObject(f, "records", (double)s->records);
    cJSON_AddNumberToObject(f, "bytes", (double)s->bytes);
    cJSON_AddItemToArray(files, f);
    records += s->records;
  }
  cJSON_AddNumberToObject(m, "records", (double)records);
  cJSON *offs = cJSON_AddArrayToObject(m, "offsets");
  for (size_t i = 0; i < plan->n; i++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "topic", plan->ranges[i].topic);
    cJSON_AddNumberToObject(o, "partition", plan->ranges[i].partition);
    cJSON_AddNumberToObject(o, "end", (double)plan->ranges[i].end);
    cJSON_AddItemToArray(offs, o);
  }
  char *json = cJSON_Print(m);
  cJSON_Delete(m);
  size_t len, blen = strlen(json);
  char *body = sl_malloc(blen + 2);
  memcpy(body, json, blen);
  body[blen++] = '\n'; /* the trailer then stands on its own line */
  cJSON_free(json);
  char *sealed = sl_fsio_seal(body, blen, &len);
  free(body);
  snprintf(name, sizeof(name), "%" PRIu64, plan->batch);
  int rc = sl_fsio_write_atomic(fs->manifest_dir, name, sealed, len,
                                "sink.file.manifest", err);
  free(sealed);
  if (rc) {
    err->flags |= SL_ERR_RETRIABLE;
    return sl_error_prefix(err, "file sink: manifest of batch %" PRIu64,
                           plan->batch);
  }
  fs->last = plan->batch;
  return sl_failpoint_err("sink.file.after_manifest", err);
}

static void file_stage_free(struct sl_sink *sink, void *stage) {
  struct file_stage *s = stage;
  (void)sink;
  if (!s)
    return;
  if (s->fd >= 0)
    sl_fsio->close(s->fd);
  free(s->fpath);
  sl_buf_free(&s->buf);
  free(s);
}

static const char *file_describe(struct sl_sink *sink) {
  struct file_sink *fs = sink->ctx;
  return fs ? fs->describe : "File";
}

static void file_destroy(struct sl_sink *sink) {
  struct file_sink *fs = sink->ctx;
  if (!fs)
    return;
  free(fs->path);
  free(fs->manifest_dir);
  free(fs);
  sink->ctx = NULL;
}

const struct sl_sink_plugin sl_sink_file = {
    .name = "file",
    .config_map = file_map,
    .conf_size = sizeof(struct file_conf),
    .flags = SL_SINK_EXACTLY_ONCE | SL_SINK_STAGE_DURING_COMMIT |
             SL_SINK_SINGLE_INSTANCE,
    .init = file_init,
    .last_committed = file_last_committed,
    .stage_open = file_stage_open,
    .stage_write = file_stage_write,
    .stage_close = file_stage_close,
    .commit = file_commit,
    .stage_free = file_stage_free,
    .describe = file_describe,
    .destroy = file_destroy,
};
