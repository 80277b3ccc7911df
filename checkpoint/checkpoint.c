/*
 * checkpoint.c - the checkpoint store: offset log, commit log, metadata.
 *
 * Design notes
 * ============
 *
 * Exactly-once invariants (DESIGN.md section 3) as this store keeps them:
 *
 *  1. WAL first. offsets/N is durable (fsio: fsync, rename, fsync of the
 *     directory) before sl_ckpt_write_offsets() returns, and the coordinator
 *     dispatches no task of batch N before that. So no output of batch N can
 *     become visible without its plan on disk.
 *  2. Plans are immutable. An existing offsets/N is never replaced by other
 *     ranges: sl_ckpt_write_offsets() compares and refuses (SL_ERR_INVAL);
 *     identical ranges are a no-op. A re-run of N therefore reads exactly
 *     the same input. Only the ranges are compared: created_ms and
 *     task_max_records do not change what is read.
 *  3. Sink commits are atomic and idempotent on N (the sinks' job). Here:
 *     writing commits/N again is a no-op, so completing a batch twice is
 *     harmless.
 *  4. The sink is the authority when it is ahead: sl_recovery_decide()
 *     never rolls the sink back; sl_ckpt_roll_forward() moves the store up
 *     to the sink's batch (offsets/S then commits/S, one call).
 *  5. commits/N is written only after the sink committed N and only when
 *     offsets/N exists (sl_ckpt_write_commit() checks and verifies it), so
 *     every commit has its plan. If the sink holds N but commits/N is
 *     missing, recovery writes it (SL_RECOVER_COMPLETE).
 *  6. Every file is written through sl_fsio_write_atomic() and sealed with
 *     a CRC-32 trailer; a torn, corrupt or unparsable file is SL_ERR_CORRUPT
 *     naming the file and is never skipped or used. Leftover temp files (a
 *     crash before rename) are removed at open.
 *  7. At-least-once sinks (console) say so: sink_knows == false makes
 *     recovery re-run or re-plan K+1 without asking the sink.
 *
 *  Shape of the store, checked by sl_ckpt_assert_invariants() after every
 *  successful write in Debug builds (SL_DEBUG_INVARIANTS):
 *    - the newest offsets entry M is the newest commit K or K + 1;
 *    - every commits/N has its offsets/N.
 *  A crash inside sl_ckpt_roll_forward() (after offsets/S, before
 *  commits/S) can leave M > K + 1 on disk; recovery then sees the sink at S
 *  again and rolls forward again, which completes the pair.
 *
 * File layout (see checkpoint.h):
 *    DIR/metadata        {"job": "<id>", "version": 1}
 *    DIR/offsets/<N>     {"batch": N, "task_max_records": T, "created_ms": C,
 *                         "ranges": [{"topic", "partition", "start", "end"}]}
 *    DIR/commits/<N>     {"batch": N, "committed_ms": C, "sink": "<note>"}
 *                        ("sink" only when the sink left a note: which
 *                        attempt of the batch it committed)
 *  Each body is pretty-printed JSON plus a newline, then the fsio trailer
 *  "#sluice-checksum crc32=<8 hex> len=<body bytes>\n". Ranges are stored
 *  sorted by topic and partition. Integers are written as exact decimal
 *  text and must be in [0, 2^53): cJSON parses numbers as doubles, which
 *  are exact only below 2^53 (Kafka offsets always are). Larger values are
 *  refused on write and reported as corrupt on read.
 *
 * Write protocol:
 *    plan N:     write_offsets(N)  -> temp, fsync, rename, fsync offsets/
 *    run tasks, sink.commit(N)
 *    commit N:   write_commit(N)   -> temp, fsync, rename, fsync commits/
 *    prune:      unlink old commits, fsync commits/, then unlink their
 *                offsets, fsync offsets/ (a commit never outlives its plan,
 *                even if only one of the two directory syncs survives a
 *                power loss).
 *
 * The newest batch numbers are cached in struct sl_ckpt so that a write
 * does not list a directory that may hold many entries (no pruning). After
 * a failed write the cache is reloaded from disk, since a failure after the
 * rename (directory fsync) leaves the new file in place.
 *
 * @locality: coordinator thread only; one open store per directory.
 */
#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../src/log.h"
#include "../src/util.h"
#include "fsio.h"

#define SL_CKPT_VERSION 1
/* Largest integer stored in a JSON number (exact as a double). */
#define SL_JSON_INT_MAX (((int64_t)1 << 53) - 1)

struct sl_ckpt {
  char *dir;
  char *job;
  char *offsets_dir;
  char *commits_dir;
  uint64_t last_commit;  /* newest commits/ name, 0 none (cache) */
  uint64_t last_offsets; /* newest offsets/ name, 0 none (cache) */
  char note[128];        /* "sink" of the next commit, "" none */
  int lock_fd;           /* sl_ckpt_lock's, -1 none */
};

/* ------------------------------------------------------------- helpers */

/* cJSON reports allocation failure with NULL; like sl_malloc, abort. */
static void *json_ok(void *p) {
  if (!p) {
    fprintf(stderr, "sluice: error: out of memory building JSON\n");
    abort();
  }
  return p;
}

static void json_add_int(cJSON *obj, const char *key, int64_t v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%" PRId64, v);
  json_ok(cJSON_AddRawToObject(obj, key, buf));
}

/* Reads an integer field in [min, max] (max <= 2^53 - 1, so the double
 * cJSON parsed is exact). */
static bool json_int(const cJSON *obj, const char *key, int64_t min,
                     int64_t max, int64_t *out) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!cJSON_IsNumber(it))
    return false;
  double d = it->valuedouble;
  if (!(d >= (double)min && d <= (double)max)) /* also rejects NaN */
    return false;
  int64_t v = (int64_t)d;
  if ((double)v != d)
    return false;
  *out = v;
  return true;
}

/* Seals a cJSON tree as "pretty JSON\n" + trailer. */
static char *json_seal(cJSON *root, size_t *len) {
  char *text = json_ok(cJSON_Print(root));
  size_t n = strlen(text);
  char *body = sl_malloc(n + 2);
  memcpy(body, text, n);
  body[n] = '\n';
  body[n + 1] = '\0';
  cJSON_free(text);
  char *sealed = sl_fsio_seal(body, n + 1, len);
  free(body);
  return sealed;
}

/* Reads, unseals and parses path into a JSON object. NOTFOUND when absent,
 * CORRUPT (naming path) for a bad trailer or a body that is not a JSON
 * object. */
static int json_load(const char *path, cJSON **out, struct sl_error *err) {
  char *data = NULL;
  size_t len, body_len;
  int rc;

  *out = NULL;
  rc = sl_fsio_read_file(path, &data, &len, err);
  if (rc)
    return rc;
  rc = sl_fsio_unseal(path, data, len, &body_len, err);
  if (rc)
    goto out;
  cJSON *root = cJSON_ParseWithLength(data, body_len);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    rc = sl_error_set(err, SL_ERR_CORRUPT,
                      "%s: checksum is valid but the body is not a JSON "
                      "object",
                      path);
    goto out;
  }
  *out = root;
out:
  free(data);
  return rc;
}

static int field_error(struct sl_error *err, const char *path,
                       const char *field) {
  return sl_error_set(err, SL_ERR_CORRUPT,
                      "%s: field '%s' is missing or out of range", path, field);
}

/* A batch file name: canonical decimal (no sign, no leading zero), >= 1. */
static bool parse_batch_name(const char *name, uint64_t *out) {
  uint64_t v = 0;
  if (name[0] < '1' || name[0] > '9')
    return false;
  for (const char *p = name; *p; p++) {
    if (*p < '0' || *p > '9')
      return false;
    if (v > (UINT64_MAX - 9) / 10)
      return false;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  *out = v;
  return true;
}

static bool is_temp_name(const char *name) {
  return name[0] == '.' && strstr(name, ".tmp.") != NULL;
}

struct batch_list {
  uint64_t *v;
  size_t n, cap;
};

static int u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Lists the batch numbers in dir, ascending. Other names are skipped, with
 * a warning when warn is set (they are never data sluice wrote). */
static int list_batches(const char *dir, bool warn, struct batch_list *out,
                        struct sl_error *err) {
  DIR *d = opendir(dir);
  struct dirent *e;

  memset(out, 0, sizeof(*out));
  if (!d)
    return sl_error_set(err, errno == ENOENT ? SL_ERR_NOTFOUND : SL_ERR_IO,
                        "%s: cannot list directory: %s", dir, strerror(errno));
  while ((errno = 0, e = readdir(d)) != NULL) {
    uint64_t b;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (!parse_batch_name(e->d_name, &b)) {
      if (warn)
        sl_warn("checkpoint: ignoring %s/%s (not a batch number)", dir,
                e->d_name);
      continue;
    }
    if (out->n == out->cap) {
      out->cap = out->cap ? out->cap * 2 : 32;
      out->v = sl_realloc(out->v, out->cap * sizeof(*out->v));
    }
    out->v[out->n++] = b;
  }
  int saved = errno;
  closedir(d);
  if (saved) {
    free(out->v);
    memset(out, 0, sizeof(*out));
    return sl_error_set(err, SL_ERR_IO, "%s: readdir: %s", dir,
                        strerror(saved));
  }
  if (out->n > 1)
    qsort(out->v, out->n, sizeof(*out->v), u64_cmp);
  return 0;
}

static uint64_t list_last(const struct batch_list *l) {
  return l->n ? l->v[l->n - 1] : 0;
}

static bool list_has(const struct batch_list *l, uint64_t b) {
  /* bsearch's base must not be NULL, even for no elements */
  return l->n && bsearch(&b, l->v, l->n, sizeof(*l->v), u64_cmp) != NULL;
}

/* Reloads the cached newest batch numbers from the directory names. */
static int ckpt_refresh(struct sl_ckpt *ck, struct sl_error *err) {
  struct batch_list o, c;
  int rc = list_batches(ck->offsets_dir, false, &o, err);
  if (rc)
    return rc;
  rc = list_batches(ck->commits_dir, false, &c, err);
  if (rc) {
    free(o.v);
    return rc;
  }
  ck->last_offsets = list_last(&o);
  ck->last_commit = list_last(&c);
  free(c.v);
  free(o.v);
  return 0;
}

static char *batch_path(const char *dir, uint64_t batch) {
  return sl_asprintf("%s/%" PRIu64, dir, batch);
}

/* ------------------------------------------------------ invariant check */

#ifdef SL_DEBUG_INVARIANTS
#define SL_CKPT_CHECK(cond, ...)                                               \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr,                                                          \
              "sluice: checkpoint invariant violated in %s: ", ck->dir);       \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      abort();                                                                 \
    }                                                                          \
  } while (0)
#endif

/* Checks the shape of the store on disk (not the cache, which could hide a
 * bug) and that the cache agrees with it. Debug builds only: it lists both
 * directories, which is too slow to do per batch in production. */
void sl_ckpt_assert_invariants(struct sl_ckpt *ck) {
#ifdef SL_DEBUG_INVARIANTS
  struct batch_list o, c;
  struct sl_error err;
  if (list_batches(ck->offsets_dir, false, &o, &err) != 0) {
    sl_warn("checkpoint: invariant check skipped: %s", err.msg);
    return;
  }
  if (list_batches(ck->commits_dir, false, &c, &err) != 0) {
    sl_warn("checkpoint: invariant check skipped: %s", err.msg);
    free(o.v);
    return;
  }
  uint64_t k = list_last(&c), m = list_last(&o);
  SL_CKPT_CHECK(m == k || m == k + 1,
                "newest offsets/%" PRIu64 " is neither the newest commit "
                "%" PRIu64 " nor the next batch",
                m, k);
  for (size_t i = 0; i < c.n; i++)
    SL_CKPT_CHECK(list_has(&o, c.v[i]),
                  "commits/%" PRIu64 " has no offsets/%" PRIu64, c.v[i],
                  c.v[i]);
  SL_CKPT_CHECK(ck->last_commit == k && ck->last_offsets == m,
                "cached newest commit/offsets %" PRIu64 "/%" PRIu64
                " differ from the disk's %" PRIu64 "/%" PRIu64,
                ck->last_commit, ck->last_offsets, k, m);
  free(c.v);
  free(o.v);
#endif
}

/* ------------------------------------------------------------ metadata */

/* Checks DIR/metadata against job_id, or writes it when absent. A store is
 * bound to one job: two jobs sharing a directory would each re-plan the
 * other's batches. */
static int metadata_check(struct sl_ckpt *ck, const char *job_id, bool *written,
                          struct sl_error *err) {
  char *path = sl_asprintf("%s/metadata", ck->dir);
  cJSON *root = NULL;
  char *sealed = NULL;
  int rc;

  *written = false;
  rc = json_load(path, &root, err);
  if (rc == SL_ERR_NOTFOUND) {
    size_t len;
    root = json_ok(cJSON_CreateObject());
    json_ok(cJSON_AddStringToObject(root, "job", job_id));
    json_add_int(root, "version", SL_CKPT_VERSION);
    sealed = json_seal(root, &len);
    rc = sl_fsio_write_atomic(ck->dir, "metadata", sealed, len,
                              "checkpoint.metadata", err);
    *written = rc == 0;
    goto out;
  }
  if (rc)
    goto out;
  const cJSON *job = cJSON_GetObjectItemCaseSensitive(root, "job");
  int64_t version;
  if (!cJSON_IsString(job) || job->valuestring[0] == '\0') {
    rc = field_error(err, path, "job");
    goto out;
  }
  if (!json_int(root, "version", 1, SL_JSON_INT_MAX, &version)) {
    rc = field_error(err, path, "version");
    goto out;
  }
  if (version != SL_CKPT_VERSION) {
    rc = sl_error_set(err, SL_ERR_CONFIG,
                      "%s: checkpoint format version %" PRId64
                      " is not supported (this sluice reads version %d)",
                      path, version, SL_CKPT_VERSION);
    goto out;
  }
  if (strcmp(job->valuestring, job_id) != 0)
    rc = sl_error_set(err, SL_ERR_CONFIG,
                      "checkpoint directory %s belongs to job '%s', not "
                      "'%s'",
                      ck->dir, job->valuestring, job_id);
out:
  free(sealed);
  cJSON_Delete(root);
  free(path);
  return rc;
}

/* ----------------------------------------------------------- open/close */

static struct sl_ckpt *ckpt_new(const char *dir) {
  struct sl_ckpt *ck = sl_calloc(1, sizeof(*ck));
  ck->lock_fd = -1;
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  ck->dir = sl_strndup(dir, n);
  ck->offsets_dir = sl_asprintf("%s/offsets", ck->dir);
  ck->commits_dir = sl_asprintf("%s/commits", ck->dir);
  return ck;
}

void sl_ckpt_close(struct sl_ckpt *ck) {
  if (!ck)
    return;
  if (ck->lock_fd >= 0)
    close(ck->lock_fd);
  free(ck->job);
  free(ck->commits_dir);
  free(ck->offsets_dir);
  free(ck->dir);
  free(ck);
}

int sl_ckpt_lock(struct sl_ckpt *ck, struct sl_error *err) {
  char *path = sl_asprintf("%s/lock", ck->dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int rc =
        sl_error_set(err, SL_ERR_IO, "%s: open: %s", path, strerror(errno));
    free(path);
    return rc;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    close(fd);
    char who[64] = "";
    if (pid[0])
      snprintf(who, sizeof(who), " (pid %s)", pid);
    int rc =
        e == EWOULDBLOCK
            ? sl_error_set(err, SL_ERR_CONFIG,
                           "checkpoint directory %s is in use by another "
                           "sluice process%s: every instance of a job "
                           "needs a checkpoint directory of its own "
                           "(checkpoint.dir)",
                           ck->dir, who)
            : sl_error_set(err, SL_ERR_IO, "%s: flock: %s", path, strerror(e));
    free(path);
    return rc;
  }
  char pid[32];
  int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
    sl_warn("%s: cannot write the pid: %s", path, strerror(errno));
  free(path);
  ck->lock_fd = fd;
  return 0;
}

const char *sl_ckpt_dir(const struct sl_ckpt *ck) {
  return ck->dir;
}

/* Creates and removes a file in dir, so that a read-only mount or a
 * directory owned by someone else is reported at start, not at the first
 * commit. */
static int probe_writable(const char *root, const char *dir,
                          struct sl_error *err) {
  char *path = sl_asprintf("%s/.probe.tmp.%ld", dir, (long)getpid());
  int rc = 0;
  int fd = sl_fsio->open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                         SL_FSIO_FILE_MODE);
  if (fd < 0 || sl_fsio->write(fd, "x", 1) != 1) {
    int saved = errno;
    if (fd >= 0) {
      sl_fsio->close(fd);
      sl_fsio->unlink(path);
    }
    if (strcmp(root, dir) == 0)
      rc = sl_error_set(err, SL_ERR_IO,
                        "checkpoint directory %s is not writable: %s", root,
                        strerror(saved));
    else
      rc = sl_error_set(err, SL_ERR_IO,
                        "checkpoint directory %s is not writable: %s: %s", root,
                        dir, strerror(saved));
    goto out;
  }
  sl_fsio->close(fd);
  if (sl_fsio->unlink(path) < 0)
    rc = sl_error_set(err, SL_ERR_IO,
                      "checkpoint directory %s is not writable: cannot "
                      "remove %s: %s",
                      root, path, strerror(errno));
out:
  free(path);
  return rc;
}

/* Removes ".NAME.tmp.PID" files: a writer died between create and rename.
 * They hold no committed state (the rename is the commit point). */
static int remove_leftovers(const char *dir, struct sl_error *err) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int rc = 0;
  if (!d)
    return sl_error_set(err, SL_ERR_IO, "%s: cannot list directory: %s", dir,
                        strerror(errno));
  while ((e = readdir(d)) != NULL) {
    if (!is_temp_name(e->d_name))
      continue;
    char *path = sl_asprintf("%s/%s", dir, e->d_name);
    if (sl_fsio->unlink(path) < 0 && errno != ENOENT)
      rc = sl_error_set(err, SL_ERR_IO, "%s: cannot remove leftover: %s", path,
                        strerror(errno));
    else
      sl_info("checkpoint: removed leftover temporary file %s (a write was "
              "interrupted)",
              path);
    free(path);
    if (rc)
      break;
  }
  closedir(d);
  return rc;
}

/* The same in every batch directory of DIR/state (window state
 * snapshots, state.h): a crash inside a pack's or an index's write leaves
 * its temp file there. Names that are not batch directories are left
 * alone. */
static int remove_state_leftovers(const char *root, struct sl_error *err) {
  char *state = sl_asprintf("%s/state", root);
  DIR *d = opendir(state);
  struct dirent *e;
  int rc = 0;
  if (!d) {
    free(state);
    return 0; /* no window state (yet) */
  }
  while (!rc && (e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
        strspn(e->d_name, "0123456789") != strlen(e->d_name))
      continue;
    char *sub = sl_asprintf("%s/%s", state, e->d_name);
    struct stat st;
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
      rc = remove_leftovers(sub, err);
    free(sub);
  }
  closedir(d);
  free(state);
  return rc;
}

int sl_ckpt_open(const char *dir, const char *job_id, struct sl_ckpt **out,
                 struct sl_error *err) {
  struct sl_ckpt *ck;
  bool written;
  int rc;

  *out = NULL;
  if (!dir || !*dir)
    return sl_error_set(err, SL_ERR_CONFIG, "checkpoint directory is empty");
  if (!job_id || !*job_id)
    return sl_error_set(err, SL_ERR_CONFIG, "job id is empty");
  ck = ckpt_new(dir);
  ck->job = sl_strdup(job_id);

  const char *dirs[] = {ck->dir, ck->offsets_dir, ck->commits_dir};
  for (size_t i = 0; i < SL_ARRAY_LEN(dirs); i++) {
    rc = sl_fsio_mkdirs_private(dirs[i], err);
    if (rc) {
      sl_error_prefix(err, "checkpoint directory %s is not writable", ck->dir);
      goto fail;
    }
    rc = probe_writable(ck->dir, dirs[i], err);
    if (rc)
      goto fail;
    rc = remove_leftovers(dirs[i], err);
    if (rc)
      goto fail;
  }
  rc = remove_state_leftovers(ck->dir, err);
  if (rc)
    goto fail;
  rc = metadata_check(ck, job_id, &written, err);
  if (rc)
    goto fail;
  rc = ckpt_refresh(ck, err);
  if (rc)
    goto fail;
  /* An existing store is checked by sl_ckpt_scan (a crash inside a roll
   * forward may have left it between two writes); a new one must be
   * well formed. */
  if (written)
    sl_ckpt_assert_invariants(ck);
  *out = ck;
  return 0;

fail:
  sl_ckpt_close(ck);
  return rc;
}

/* --------------------------------------------------------- offsets log */

/* Parses an offsets body into out (ranges in file order). */
static int offsets_parse(const char *path, const cJSON *root, uint64_t batch,
                         struct sl_plan *out, struct sl_error *err) {
  int64_t b, v;
  const cJSON *ranges, *r;

  if (!json_int(root, "batch", 1, SL_JSON_INT_MAX, &b))
    return field_error(err, path, "batch");
  if ((uint64_t)b != batch)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "%s: holds batch %" PRId64 ", expected %" PRIu64, path,
                        b, batch);
  out->batch = batch;
  if (!json_int(root, "task_max_records", 0, SL_JSON_INT_MAX, &v))
    return field_error(err, path, "task_max_records");
  out->task_max_records = v;
  if (!json_int(root, "created_ms", 0, SL_JSON_INT_MAX, &v))
    return field_error(err, path, "created_ms");
  out->created_ms = v;
  ranges = cJSON_GetObjectItemCaseSensitive(root, "ranges");
  if (!cJSON_IsArray(ranges))
    return field_error(err, path, "ranges");
  cJSON_ArrayForEach(r, ranges) {
    const cJSON *topic = cJSON_GetObjectItemCaseSensitive(r, "topic");
    int64_t part, start, end;
    if (!cJSON_IsString(topic) || topic->valuestring[0] == '\0')
      return field_error(err, path, "ranges[].topic");
    if (!json_int(r, "partition", 0, INT32_MAX, &part))
      return field_error(err, path, "ranges[].partition");
    if (!json_int(r, "start", 0, SL_JSON_INT_MAX, &start))
      return field_error(err, path, "ranges[].start");
    if (!json_int(r, "end", start, SL_JSON_INT_MAX, &end))
      return field_error(err, path, "ranges[].end");
    sl_plan_add(out, topic->valuestring, (int32_t)part, start, end);
  }
  return 0;
}

int sl_ckpt_read_offsets(struct sl_ckpt *ck, uint64_t batch,
                         struct sl_plan *out, struct sl_error *err) {
  char *path = batch_path(ck->offsets_dir, batch);
  cJSON *root = NULL;
  int rc;

  sl_plan_clear(out);
  rc = json_load(path, &root, err);
  if (rc)
    goto out;
  rc = offsets_parse(path, root, batch, out, err);
  if (rc)
    sl_plan_clear(out);
out:
  cJSON_Delete(root);
  free(path);
  return rc;
}

/* Rejects what could not be stored exactly or is a planning bug. */
static int plan_validate(const struct sl_plan *p, struct sl_error *err) {
  if (p->batch < 1 || p->batch > (uint64_t)SL_JSON_INT_MAX)
    return sl_error_set(err, SL_ERR_INVAL, "batch id %" PRIu64 " is invalid",
                        p->batch);
  if (p->task_max_records < 0 || p->task_max_records > SL_JSON_INT_MAX ||
      p->created_ms < 0 || p->created_ms > SL_JSON_INT_MAX)
    return sl_error_set(err, SL_ERR_INVAL,
                        "batch %" PRIu64
                        ": task_max_records or created_ms out of range",
                        p->batch);
  for (size_t i = 0; i < p->n; i++) {
    const struct sl_range *r = &p->ranges[i];
    if (!r->topic || !*r->topic || r->partition < 0)
      return sl_error_set(err, SL_ERR_INVAL,
                          "batch %" PRIu64 ": range %zu has no topic or a "
                          "negative partition",
                          p->batch, i);
    if (r->start < 0 || r->end < r->start || r->end > SL_JSON_INT_MAX)
      return sl_error_set(err, SL_ERR_INVAL,
                          "batch %" PRIu64 ": range %s[%d] %" PRId64
                          "..%" PRId64 " is not 0 <= start <= end < 2^53",
                          p->batch, r->topic, (int)r->partition, r->start,
                          r->end);
  }
  return 0;
}

/* Compares the ranges of two sorted plans; on a difference writes a short
 * description of the first one to why. */
static bool ranges_equal(const struct sl_plan *a, const struct sl_plan *b,
                         char *why, size_t whylen) {
  if (a->n != b->n) {
    snprintf(why, whylen, "%zu ranges stored, %zu given", a->n, b->n);
    return false;
  }
  for (size_t i = 0; i < a->n; i++) {
    const struct sl_range *x = &a->ranges[i], *y = &b->ranges[i];
    if (x->partition != y->partition || strcmp(x->topic, y->topic) != 0 ||
        x->start != y->start || x->end != y->end) {
      snprintf(why, whylen,
               "stored %s[%d] %" PRId64 "..%" PRId64 ", given %s[%d] %" PRId64
               "..%" PRId64,
               x->topic, (int)x->partition, x->start, x->end, y->topic,
               (int)y->partition, y->start, y->end);
      return false;
    }
  }
  return true;
}

/* The write of offsets/N without the ordering rule (shared with the roll
 * forward). *existed tells whether the entry was already there. */
static int offsets_write(struct sl_ckpt *ck, const struct sl_plan *plan,
                         bool *existed, struct sl_error *err) {
  struct sl_plan sorted = {0}, stored = {0};
  cJSON *root = NULL;
  char *sealed = NULL, name[32];
  size_t len;
  int rc;

  *existed = false;
  rc = plan_validate(plan, err);
  if (rc)
    return rc;
  sl_plan_copy(&sorted, plan);
  sl_plan_sort(&sorted);
  for (size_t i = 1; i < sorted.n; i++)
    if (sorted.ranges[i].partition == sorted.ranges[i - 1].partition &&
        strcmp(sorted.ranges[i].topic, sorted.ranges[i - 1].topic) == 0) {
      rc = sl_error_set(err, SL_ERR_INVAL,
                        "batch %" PRIu64 ": %s[%d] appears twice in the plan",
                        plan->batch, sorted.ranges[i].topic,
                        (int)sorted.ranges[i].partition);
      goto out;
    }

  /* Invariant 2: an existing plan is final. A corrupt one is an error, not
   * something to overwrite. */
  rc = sl_ckpt_read_offsets(ck, plan->batch, &stored, err);
  if (rc == 0) {
    char why[512];
    sl_plan_sort(&stored);
    *existed = true;
    if (!ranges_equal(&stored, &sorted, why, sizeof(why))) {
      rc = sl_error_set(err, SL_ERR_INVAL,
                        "%s/%" PRIu64 " already exists with different ranges "
                        "(invariant 2): %s",
                        ck->offsets_dir, plan->batch, why);
      goto out;
    }
    /* Same plan again, e.g. a retry after a failed directory fsync: make
     * sure the entry is durable before saying so. */
    rc = sl_fsio_sync_dir(ck->offsets_dir, err);
    goto out;
  }
  if (rc != SL_ERR_NOTFOUND)
    goto out;

  root = json_ok(cJSON_CreateObject());
  json_add_int(root, "batch", (int64_t)sorted.batch);
  json_add_int(root, "task_max_records", sorted.task_max_records);
  json_add_int(root, "created_ms", sorted.created_ms);
  cJSON *ranges = json_ok(cJSON_AddArrayToObject(root, "ranges"));
  for (size_t i = 0; i < sorted.n; i++) {
    cJSON *r = json_ok(cJSON_CreateObject());
    cJSON_AddItemToArray(ranges, r);
    json_ok(cJSON_AddStringToObject(r, "topic", sorted.ranges[i].topic));
    json_add_int(r, "partition", sorted.ranges[i].partition);
    json_add_int(r, "start", sorted.ranges[i].start);
    json_add_int(r, "end", sorted.ranges[i].end);
  }
  sealed = json_seal(root, &len);
  snprintf(name, sizeof(name), "%" PRIu64, sorted.batch);
  rc = sl_fsio_write_atomic(ck->offsets_dir, name, sealed, len,
                            "checkpoint.offsets", err);

out:
  free(sealed);
  cJSON_Delete(root);
  sl_plan_clear(&stored);
  sl_plan_clear(&sorted);
  return rc;
}

/* After a write: on success the cache learns the new entry; on failure it
 * is reloaded, since a failure after the rename left the file in place. */
static void cache_after(struct sl_ckpt *ck, int rc, uint64_t offsets,
                        uint64_t commit) {
  struct sl_error ignored;
  if (rc) {
    ckpt_refresh(ck, &ignored);
    return;
  }
  ck->last_offsets = SL_MAX(ck->last_offsets, offsets);
  ck->last_commit = SL_MAX(ck->last_commit, commit);
  sl_ckpt_assert_invariants(ck);
}

int sl_ckpt_write_offsets(struct sl_ckpt *ck, const struct sl_plan *plan,
                          struct sl_error *err) {
  bool existed;
  /* The next batch is always newest commit + 1; anything else (except an
   * identical rewrite of an existing entry, checked in offsets_write) is a
   * coordinator bug that would leave a gap or rewrite history. */
  if (plan->batch != ck->last_commit + 1) {
    struct sl_plan stored = {0};
    struct sl_error tmp;
    int exists = sl_ckpt_read_offsets(ck, plan->batch, &stored, &tmp) == 0;
    sl_plan_clear(&stored);
    if (!exists)
      return sl_error_set(
          err, SL_ERR_INVAL,
          "%s: cannot plan batch %" PRIu64 ": the newest commit is %" PRIu64
          ", so the next batch is %" PRIu64
          " (use sl_ckpt_roll_forward to adopt a sink that "
          "is ahead)",
          ck->dir, plan->batch, ck->last_commit, ck->last_commit + 1);
  }
  int rc = offsets_write(ck, plan, &existed, err);
  cache_after(ck, rc, plan->batch, 0);
  return rc;
}

/* ---------------------------------------------------------- commit log */

static int commit_parse(const char *path, const cJSON *root, uint64_t batch,
                        int64_t *committed_ms, struct sl_error *err) {
  int64_t b, ms;
  if (!json_int(root, "batch", 1, SL_JSON_INT_MAX, &b))
    return field_error(err, path, "batch");
  if ((uint64_t)b != batch)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "%s: holds batch %" PRId64 ", expected %" PRIu64, path,
                        b, batch);
  if (!json_int(root, "committed_ms", 0, SL_JSON_INT_MAX, &ms))
    return field_error(err, path, "committed_ms");
  if (committed_ms)
    *committed_ms = ms;
  return 0;
}

int sl_ckpt_read_commit(struct sl_ckpt *ck, uint64_t batch,
                        int64_t *committed_ms, struct sl_error *err) {
  char *path = batch_path(ck->commits_dir, batch);
  cJSON *root = NULL;
  int rc = json_load(path, &root, err);
  if (rc == 0)
    rc = commit_parse(path, root, batch, committed_ms, err);
  cJSON_Delete(root);
  free(path);
  return rc;
}

/* The write of commits/N: requires a valid offsets/N (a commit without its
 * plan cannot be re-run or continued from); an existing commits/N makes
 * this a no-op (idempotent, invariant 3). */
static int commit_write(struct sl_ckpt *ck, uint64_t batch,
                        int64_t committed_ms, struct sl_error *err) {
  struct sl_plan plan = {0};
  cJSON *root = NULL;
  char *sealed = NULL, name[32];
  size_t len;
  int rc;

  if (batch < 1 || batch > (uint64_t)SL_JSON_INT_MAX || committed_ms < 0 ||
      committed_ms > SL_JSON_INT_MAX)
    return sl_error_set(err, SL_ERR_INVAL,
                        "commit of batch %" PRIu64 " at %" PRId64
                        " ms: out of range",
                        batch, committed_ms);
  rc = sl_ckpt_read_commit(ck, batch, NULL, err);
  if (rc == 0)
    return sl_fsio_sync_dir(ck->commits_dir, err);
  if (rc != SL_ERR_NOTFOUND)
    return rc;
  if (batch < ck->last_commit)
    return sl_error_set(err, SL_ERR_INVAL,
                        "%s: cannot commit batch %" PRIu64 ": batch %" PRIu64
                        " is already committed",
                        ck->dir, batch, ck->last_commit);
  rc = sl_ckpt_read_offsets(ck, batch, &plan, err);
  if (rc == SL_ERR_NOTFOUND) {
    rc = sl_error_set(err, SL_ERR_INVAL,
                      "%s: cannot write commits/%" PRIu64 ": offsets/%" PRIu64
                      " does not exist (a commit needs its plan)",
                      ck->dir, batch, batch);
    goto out;
  }
  if (rc)
    goto out;

  root = json_ok(cJSON_CreateObject());
  json_add_int(root, "batch", (int64_t)batch);
  json_add_int(root, "committed_ms", committed_ms);
  if (ck->note[0])
    json_ok(cJSON_AddStringToObject(root, "sink", ck->note));
  sealed = json_seal(root, &len);
  snprintf(name, sizeof(name), "%" PRIu64, batch);
  rc = sl_fsio_write_atomic(ck->commits_dir, name, sealed, len,
                            "checkpoint.commits", err);
out:
  free(sealed);
  cJSON_Delete(root);
  sl_plan_clear(&plan);
  return rc;
}

void sl_ckpt_set_commit_note(struct sl_ckpt *ck, const char *note) {
  snprintf(ck->note, sizeof(ck->note), "%s", note ? note : "");
}

int sl_ckpt_write_commit(struct sl_ckpt *ck, uint64_t batch,
                         int64_t committed_ms, struct sl_error *err) {
  int rc = commit_write(ck, batch, committed_ms, err);
  ck->note[0] = '\0';
  cache_after(ck, rc, batch, batch);
  return rc;
}

int sl_ckpt_roll_forward(struct sl_ckpt *ck, const struct sl_plan *plan,
                         int64_t committed_ms, struct sl_error *err) {
  bool existed;
  int rc;
  if (plan->batch <= ck->last_commit)
    return sl_error_set(err, SL_ERR_INVAL,
                        "%s: cannot roll forward to batch %" PRIu64
                        ": batch %" PRIu64 " is already committed",
                        ck->dir, plan->batch, ck->last_commit);
  rc = offsets_write(ck, plan, &existed, err);
  if (rc == 0)
    rc = commit_write(ck, plan->batch, committed_ms, err);
  ck->note[0] = '\0';
  cache_after(ck, rc, plan->batch, plan->batch);
  return rc;
}

bool sl_ckpt_has_commit(struct sl_ckpt *ck, uint64_t batch) {
  char *path = batch_path(ck->commits_dir, batch);
  struct stat st;
  bool has = stat(path, &st) == 0 && S_ISREG(st.st_mode);
  free(path);
  return has;
}

/* ---------------------------------------------------------------- scan */

/* Verifies one file of a log. The hint tells the operator what moving the
 * file away does: for the newest entry recovery falls back one batch; an
 * older entry is history that recovery does not read. */
static int verify_entry(struct sl_ckpt *ck, bool offsets, uint64_t batch,
                        bool newest, struct sl_error *err) {
  int rc;
  if (offsets) {
    struct sl_plan p = {0};
    rc = sl_ckpt_read_offsets(ck, batch, &p, err);
    sl_plan_clear(&p);
  } else {
    rc = sl_ckpt_read_commit(ck, batch, NULL, err);
  }
  if (rc == SL_ERR_CORRUPT && err) {
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof(err->msg) - n, "%s",
             newest ? "; move the file away to recover from the previous "
                      "batch"
                    : "; it is not the newest entry, recovery does not need "
                      "it: move the file away");
  }
  return rc;
}

int sl_ckpt_scan(struct sl_ckpt *ck, struct sl_ckpt_state *st,
                 struct sl_error *err) {
  struct batch_list o = {0}, c = {0};
  int rc;

  memset(st, 0, sizeof(*st));
  rc = list_batches(ck->commits_dir, true, &c, err);
  if (rc)
    goto out;
  rc = list_batches(ck->offsets_dir, true, &o, err);
  if (rc)
    goto out;
  /* Newest first: if several files are bad, the one that matters for
   * recovery is reported. */
  for (size_t i = c.n; i-- > 0;) {
    rc = verify_entry(ck, false, c.v[i], i == c.n - 1, err);
    if (rc)
      goto out;
    if (!list_has(&o, c.v[i])) {
      rc = sl_error_set(err, SL_ERR_CORRUPT,
                        "%s/%" PRIu64 " has no offsets/%" PRIu64
                        " (every commit needs its plan)",
                        ck->commits_dir, c.v[i], c.v[i]);
      goto out;
    }
  }
  for (size_t i = o.n; i-- > 0;) {
    rc = verify_entry(ck, true, o.v[i], i == o.n - 1, err);
    if (rc)
      goto out;
  }
  st->last_commit = list_last(&c);
  st->last_offsets = list_last(&o);
  ck->last_commit = st->last_commit;
  ck->last_offsets = st->last_offsets;
out:
  free(o.v);
  free(c.v);
  return rc;
}

/* --------------------------------------------------------------- prune */

/* Unlinks the entries of dir below cutoff, then fsyncs dir. */
static int prune_dir(const char *dir, uint64_t cutoff, struct sl_error *err) {
  struct batch_list l;
  int rc = list_batches(dir, false, &l, err);
  if (rc)
    return rc;
  size_t removed = 0;
  for (size_t i = 0; i < l.n && l.v[i] < cutoff; i++) {
    char *path = batch_path(dir, l.v[i]);
    if (sl_fsio->unlink(path) < 0 && errno != ENOENT)
      rc = sl_error_set(err, SL_ERR_IO, "%s: cannot remove: %s", path,
                        strerror(errno));
    free(path);
    if (rc)
      break;
    removed++;
  }
  free(l.v);
  if (rc == 0 && removed > 0)
    rc = sl_fsio_sync_dir(dir, err);
  return rc;
}

int sl_ckpt_prune(struct sl_ckpt *ck, unsigned retain, struct sl_error *err) {
  struct batch_list c;
  int rc;
  if (retain == 0)
    retain = 1;
  rc = list_batches(ck->commits_dir, false, &c, err);
  if (rc)
    return rc;
  if (c.n <= retain) {
    free(c.v);
    return 0;
  }
  uint64_t cutoff = c.v[c.n - retain];
  free(c.v);
  /* Commits first (and durably), then their plans: a commit never exists
   * without its offsets entry, whatever survives a crash. */
  rc = prune_dir(ck->commits_dir, cutoff, err);
  if (rc == 0)
    rc = prune_dir(ck->offsets_dir, cutoff, err);
  if (rc)
    ckpt_refresh(ck, &(struct sl_error){0});
  else
    sl_ckpt_assert_invariants(ck);
  return rc;
}

/* ---------------------------------------------------------------- show */

static void fmt_ms(int64_t ms, char *buf, size_t n) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, n, "%" PRId64 " ms", ms);
}

/* Prints one range list with aligned columns. */
static void show_ranges(FILE *out, const struct sl_plan *p) {
  int wname = 0, wstart = 0;
  for (size_t i = 0; i < p->n; i++) {
    const struct sl_range *r = &p->ranges[i];
    int w = snprintf(NULL, 0, "%s[%d]", r->topic, (int)r->partition);
    int s = snprintf(NULL, 0, "%" PRId64, r->start);
    wname = SL_MAX(wname, w);
    wstart = SL_MAX(wstart, s);
  }
  for (size_t i = 0; i < p->n; i++) {
    const struct sl_range *r = &p->ranges[i];
    char name[300];
    snprintf(name, sizeof(name), "%s[%d]", r->topic, (int)r->partition);
    fprintf(out, "  %-*s  %*" PRId64 "..%" PRId64 "  (%" PRId64 " records)\n",
            wname, name, wstart, r->start, r->end, r->end - r->start);
  }
  fprintf(out, "total: %" PRId64 " records in %zu range%s\n",
          sl_plan_records(p), p->n, p->n == 1 ? "" : "s");
}

/* Human-readable: reads only, never creates or repairs anything, and keeps
 * going after a corrupt file so the operator sees the whole picture. */
int sl_ckpt_show(const char *dir, FILE *out, struct sl_error *err) {
  struct sl_ckpt *ck = ckpt_new(dir);
  struct batch_list o = {0}, c = {0};
  struct sl_ckpt_state st;
  struct sl_error e;
  struct sl_plan plan = {0};
  char *meta = sl_asprintf("%s/metadata", ck->dir);
  cJSON *root = NULL;
  struct stat sb;
  int rc = 0;

  if (stat(meta, &sb) < 0) {
    rc = sl_error_set(err, SL_ERR_NOTFOUND,
                      "%s is not a checkpoint directory (%s: %s)", ck->dir,
                      meta, strerror(errno));
    goto out;
  }
  fprintf(out, "checkpoint: %s\n", ck->dir);
  if (json_load(meta, &root, &e) == 0) {
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(root, "job");
    fprintf(out, "job: %s\n",
            cJSON_IsString(job) ? job->valuestring : "? (no job field)");
  } else {
    fprintf(out, "job: ? (%s)\n", e.msg);
  }
  if (list_batches(ck->commits_dir, false, &c, &e) != 0 ||
      list_batches(ck->offsets_dir, false, &o, &e) != 0) {
    fprintf(out, "error: %s\n", e.msg);
    goto out;
  }
  uint64_t k = list_last(&c), m = list_last(&o);

  if (k == 0) {
    fprintf(out, "last committed batch: none\n");
  } else {
    int64_t ms;
    char when[64];
    if (sl_ckpt_read_commit(ck, k, &ms, &e) == 0) {
      fmt_ms(ms, when, sizeof(when));
      fprintf(out, "last committed batch: %" PRIu64 " (at %s)\n", k, when);
    } else {
      fprintf(out, "last committed batch: %" PRIu64 " (unreadable: %s)\n", k,
              e.msg);
    }
  }
  if (m == 0)
    fprintf(out, "last planned batch: none\n");
  else if (m == k)
    fprintf(out, "last planned batch: %" PRIu64 " (committed)\n", m);
  else if (m == k + 1)
    fprintf(out,
            "last planned batch: %" PRIu64
            " (not committed: will be re-run with the same ranges)\n",
            m);
  else if (m > k)
    fprintf(out,
            "last planned batch: %" PRIu64 " (not committed: an interrupted "
            "roll forward to the sink's batch)\n",
            m);
  else
    fprintf(out, "last planned batch: %" PRIu64 " (older than the commit!)\n",
            m);
  if (m != 0) {
    if (sl_ckpt_read_offsets(ck, m, &plan, &e) == 0) {
      char when[64];
      fmt_ms(plan.created_ms, when, sizeof(when));
      fprintf(out,
              "ranges of batch %" PRIu64 " (planned at %s, at most %" PRId64
              " records per task):\n",
              m, when, plan.task_max_records);
      show_ranges(out, &plan);
    } else {
      fprintf(out, "ranges of batch %" PRIu64 ": unreadable: %s\n", m, e.msg);
    }
  }
  fprintf(out, "retained: %zu commit%s", c.n, c.n == 1 ? "" : "s");
  if (c.n)
    fprintf(out, " (%" PRIu64 "..%" PRIu64 ")", c.v[0], k);
  fprintf(out, ", %zu offsets entr%s", o.n, o.n == 1 ? "y" : "ies");
  if (o.n)
    fprintf(out, " (%" PRIu64 "..%" PRIu64 ")", o.v[0], m);
  fputc('\n', out);
  if (sl_ckpt_scan(ck, &st, &e) == 0)
    fprintf(out, "verified: all files are intact\n");
  else
    fprintf(out, "CORRUPT: %s\n", e.msg);
out:
  sl_plan_clear(&plan);
  cJSON_Delete(root);
  free(o.v);
  free(c.v);
  free(meta);
  sl_ckpt_close(ck);
  return rc;
}

/* ------------------------------------------------------------ recovery */

struct sl_recovery sl_recovery_decide(uint64_t last_commit,
                                      uint64_t last_offsets, bool sink_knows,
                                      uint64_t sink_batch, bool from_sink) {
  uint64_t k = last_commit, m = last_offsets, s = sink_batch;
  if (!sink_knows || s == k)
    return (struct sl_recovery){.action = m == k + 1 ? SL_RECOVER_RERUN
                                                     : SL_RECOVER_FRESH,
                                .batch = k + 1};
  if (s == k + 1 && m == k + 1)
    return (struct sl_recovery){.action = SL_RECOVER_COMPLETE, .batch = s};
  if (s > k)
    return (struct sl_recovery){.action = SL_RECOVER_ROLL_FORWARD, .batch = s};
  if (from_sink)
    return (struct sl_recovery){.action = SL_RECOVER_FROM_SINK,
                                .batch = (m > k ? m : k) + 1};
  return (struct sl_recovery){.action = SL_RECOVER_SINK_BEHIND, .batch = s};
}

/* Per partition: max(local, the sink's position lowered to bound). The
 * sink's record holds a partition's outputs atomically with its position,
 * so every record below it is in the sink; the local log may be older
 * (deleted, restored, or never saw the partition) but never newer than
 * what the sink committed, except for batches the batch rules re-run or
 * complete. Taking the larger of the two therefore never goes back and
 * never skips a record the sink does not hold. */
size_t sl_recovery_positions(const struct sl_plan *local,
                             const struct sl_plan *sink,
                             const struct sl_plan *bound, struct sl_plan *out,
                             struct sl_plan *from_sink) {
  memset(out, 0, sizeof(*out));
  memset(from_sink, 0, sizeof(*from_sink));
  for (size_t i = 0; local && i < local->n; i++)
    sl_plan_add(out, local->ranges[i].topic, local->ranges[i].partition,
                local->ranges[i].end, local->ranges[i].end);
  for (size_t i = 0; sink && i < sink->n; i++) {
    const struct sl_range *s = &sink->ranges[i];
    int64_t pos = s->end;
    if (bound) {
      const struct sl_range *b = sl_plan_find(bound, s->topic, s->partition);
      if (!b)
        continue;
      pos = SL_MIN(pos, b->end);
    }
    struct sl_range *at = sl_plan_find(out, s->topic, s->partition);
    if (at && at->end >= pos)
      continue;
    sl_plan_add(from_sink, s->topic, s->partition, at ? at->end : -1, pos);
    if (at)
      at->start = at->end = pos;
    else
      sl_plan_add(out, s->topic, s->partition, pos, pos);
  }
  sl_plan_sort(out);
  sl_plan_sort(from_sink);
  return from_sink->n;
}
