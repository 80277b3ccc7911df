/*
 * test_file_sink.c - the file sink through its plugin interface
 * (sl_sink_find("file"), src/plugin.h): staged batches become visible
 * only through their manifest, commits are idempotent on the batch id,
 * what an uncommitted attempt left is removed at the next open, and the
 * sink's record of its last batch reads back after a reopen.
 *
 * The configuration is filled through the plugin's own config_map (the
 * offsets of its keys), as the loader binds it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/fsio.h"
#include "src/failpoint.h"
#include "src/log.h"
#include "src/plugin.h"

struct fx {
  char root[512];
  char out[600]; /* the sink's path */
  const struct sl_sink_plugin *pl;
  void *conf;
  struct sl_sink sink;
  bool open;
};

static const struct sl_cfg_field *field(const struct sl_sink_plugin *pl,
                                        const char *key) {
  for (const struct sl_cfg_field *f = pl->config_map; f->key; f++)
    if (strcmp(f->key, key) == 0)
      return f;
  fail_msg("the file sink has no key '%s'", key);
  return NULL;
}

static void sink_open(struct fx *f) {
  struct sl_error err = {0};
  f->sink = (struct sl_sink){.plugin = f->pl, .conf = f->conf};
  if (f->pl->init(&f->sink, &err))
    fail_msg("init: %s", err.msg);
  f->open = true;
}

static void sink_close(struct fx *f) {
  if (f->open)
    f->pl->destroy(&f->sink);
  f->open = false;
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  const char *tmp = getenv("TMPDIR");
  snprintf(f->root, sizeof(f->root), "%s/sl-file-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(f->root))
    return -1;
  snprintf(f->out, sizeof(f->out), "%s/out", f->root);
  f->pl = sl_sink_find("file");
  if (!f->pl)
    return -1;
  f->conf = calloc(1, f->pl->conf_size);
  /* path and format (0: value, one record's value per line) */
  *(char **)((char *)f->conf + field(f->pl, "path")->offset) = f->out;
  *(int *)((char *)f->conf + field(f->pl, "format")->offset) = 0;
  sink_open(f);
  *state = f;
  return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int teardown(void **state) {
  struct fx *f = *state;
  sink_close(f);
  nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f->conf);
  free(f);
  return 0;
}

/* The value of record o of partition p in batch b. */
static int value_of(char *buf, size_t n, uint64_t b, int p, int64_t o) {
  return snprintf(buf, n, "{\"b\":%" PRIu64 ",\"p\":%d,\"o\":%lld}", b, p,
                  (long long)o);
}

/* Stages task `task` of batch b: records [from, to) of partition p, in
 * chunks of 3 (several stage_write calls), and closes it. */
static void *stage_task(struct fx *f, uint64_t b, uint32_t task, int p,
                        int64_t from, int64_t to) {
  struct sl_error err = {0};
  void *st = NULL;
  if (f->pl->stage_open(&f->sink, b, task, &st, &err))
    fail_msg("stage_open: %s", err.msg);
  char text[3][64];
  struct sl_record recs[3];
  struct sl_rejects rj = {0};
  for (int64_t o = from; o < to;) {
    struct sl_batch chunk = {.recs = recs, .cap = 3};
    for (; o < to && chunk.n < 3; o++) {
      size_t i = chunk.n++;
      int len = value_of(text[i], sizeof(text[0]), b, p, o);
      recs[i] = (struct sl_record){.value = text[i],
                                   .value_len = (size_t)len,
                                   .topic = "t",
                                   .partition = p,
                                   .offset = o,
                                   .timestamp = -1};
    }
    if (f->pl->stage_write(st, &chunk, &rj, &err))
      fail_msg("stage_write: %s", err.msg);
    assert_int_equal(rj.n, 0);
  }
  if (f->pl->stage_close(st, &err))
    fail_msg("stage_close: %s", err.msg);
  sl_rejects_free(&rj);
  return st;
}

/* Batch b: partition 0 [s0, e0) in task 0, partition 1 [s1, e1) in task
 * 1 (no stage when empty). Returns the plan's ends via plan. */
static int commit_batch(struct fx *f, uint64_t b, int64_t s0, int64_t e0,
                        int64_t s1, int64_t e1, struct sl_error *err) {
  void *st[2];
  size_t n = 0;
  if (e0 > s0)
    st[n++] = stage_task(f, b, 0, 0, s0, e0);
  if (e1 > s1)
    st[n++] = stage_task(f, b, 1, 1, s1, e1);
  struct sl_plan plan = {.batch = b, .task_max_records = 100};
  sl_plan_add(&plan, "t", 0, s0, e0);
  sl_plan_add(&plan, "t", 1, s1, e1);
  memset(err, 0, sizeof(*err));
  int rc = f->pl->commit(&f->sink, &plan, st, n, err);
  for (size_t i = 0; i < n; i++)
    f->pl->stage_free(&f->sink, st[i]);
  sl_plan_clear(&plan);
  return rc;
}

static void commit_ok(struct fx *f, uint64_t b, int64_t s0, int64_t e0,
                      int64_t s1, int64_t e1) {
  struct sl_error err;
  if (commit_batch(f, b, s0, e0, s1, e1, &err))
    fail_msg("commit of batch %" PRIu64 ": %s", b, err.msg);
}

static char *slurp(const char *path, size_t *len) {
  char *data = NULL;
  struct sl_error err = {0};
  if (sl_fsio_read_file(path, &data, len, &err))
    return NULL;
  return data;
}

/* _manifest/b, verified and parsed; NULL when absent. */
static cJSON *manifest(struct fx *f, uint64_t b) {
  char path[700];
  size_t len, body;
  struct sl_error err = {0};
  snprintf(path, sizeof(path), "%s/_manifest/%" PRIu64, f->out, b);
  char *data = slurp(path, &len);
  if (!data)
    return NULL;
  if (sl_fsio_unseal(path, data, len, &body, &err))
    fail_msg("%s", err.msg);
  cJSON *m = cJSON_ParseWithLength(data, body);
  free(data);
  assert_non_null(m);
  return m;
}

/* Checks manifest b: batch b, and per partition p in 0..1 with records
 * [s[p], e[p]) one listed part file holding exactly those values, in
 * order, and the end offsets. */
static void check_manifest(struct fx *f, uint64_t b, const int64_t s[2],
                           const int64_t e[2]) {
  cJSON *m = manifest(f, b);
  if (!m)
    fail_msg("no manifest for batch %" PRIu64, b);
  assert_int_equal(cJSON_GetObjectItem(m, "batch")->valuedouble, (double)b);
  const cJSON *files = cJSON_GetObjectItem(m, "files");
  int nfiles = 0, total = 0;
  for (int p = 0; p < 2; p++) {
    if (e[p] <= s[p])
      continue;
    const cJSON *fi = cJSON_GetArrayItem(files, nfiles++);
    assert_non_null(fi);
    char want[64];
    snprintf(want, sizeof(want), "part-%010" PRIu64 "-%05d.jsonl", b, p);
    assert_string_equal(cJSON_GetObjectItem(fi, "name")->valuestring, want);
    assert_int_equal(cJSON_GetObjectItem(fi, "records")->valuedouble,
                     (double)(e[p] - s[p]));
    char path[700], line[64], expect[8192] = "";
    snprintf(path, sizeof(path), "%s/%s", f->out, want);
    size_t k = 0;
    for (int64_t o = s[p]; o < e[p]; o++) {
      value_of(line, sizeof(line), b, p, o);
      k += (size_t)snprintf(expect + k, sizeof(expect) - k, "%s\n", line);
    }
    size_t len;
    char *data = slurp(path, &len);
    assert_non_null(data);
    assert_int_equal(len, k);
    assert_memory_equal(data, expect, k);
    assert_int_equal(cJSON_GetObjectItem(fi, "bytes")->valuedouble, (double)k);
    free(data);
    total += (int)(e[p] - s[p]);
  }
  assert_int_equal(cJSON_GetArraySize(files), nfiles);
  assert_int_equal(cJSON_GetObjectItem(m, "records")->valuedouble, total);
  const cJSON *offs = cJSON_GetObjectItem(m, "offsets");
  assert_int_equal(cJSON_GetArraySize(offs), 2);
  for (int p = 0; p < 2; p++) {
    const cJSON *o = cJSON_GetArrayItem(offs, p);
    assert_string_equal(cJSON_GetObjectItem(o, "topic")->valuestring, "t");
    assert_int_equal(cJSON_GetObjectItem(o, "partition")->valuedouble, p);
    assert_int_equal(cJSON_GetObjectItem(o, "end")->valuedouble, e[p]);
  }
  cJSON_Delete(m);
}

/* Names in dir (sorted, joined by ' '), skipping "." and "..". */
static void list_dir(const char *dir, char *out, size_t n) {
  struct dirent **ents;
  int k = scandir(dir, &ents, NULL, alphasort);
  size_t len = 0;
  out[0] = '\0';
  for (int i = 0; i < k; i++) {
    if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, ".."))
      len += (size_t)snprintf(out + len, n - len, "%s%s", len ? " " : "",
                              ents[i]->d_name);
    free(ents[i]);
  }
  free(ents);
}

static void check_last(struct fx *f, uint64_t want, int64_t e0, int64_t e1) {
  struct sl_error err = {0};
  struct sl_plan end = {0};
  uint64_t b = 99;
  if (f->pl->last_committed(&f->sink, &b, &end, &err))
    fail_msg("last_committed: %s", err.msg);
  assert_int_equal(b, want);
  if (!want) {
    assert_int_equal(end.n, 0);
    return;
  }
  assert_int_equal(end.n, 2);
  const struct sl_range *r0 = sl_plan_find(&end, "t", 0);
  const struct sl_range *r1 = sl_plan_find(&end, "t", 1);
  assert_non_null(r0);
  assert_non_null(r1);
  assert_int_equal(r0->end, e0);
  assert_int_equal(r1->end, e1);
  sl_plan_clear(&end);
}

/* ------------------------------------------------------------ the tests */

static void test_commit_batches(void **state) {
  struct fx *f = *state;
  check_last(f, 0, 0, 0);
  commit_ok(f, 1, 0, 5, 0, 7);
  commit_ok(f, 2, 5, 6, 7, 7); /* partition 1 empty: no part file */
  commit_ok(f, 3, 6, 6, 7, 12);
  check_manifest(f, 1, (int64_t[]){0, 0}, (int64_t[]){5, 7});
  check_manifest(f, 2, (int64_t[]){5, 7}, (int64_t[]){6, 7});
  check_manifest(f, 3, (int64_t[]){6, 7}, (int64_t[]){6, 12});
  check_last(f, 3, 6, 12);
  char names[1024], man[700];
  list_dir(f->out, names, sizeof(names));
  assert_string_equal(names, "_manifest part-0000000001-00000.jsonl "
                             "part-0000000001-00001.jsonl "
                             "part-0000000002-00000.jsonl "
                             "part-0000000003-00001.jsonl");
  snprintf(man, sizeof(man), "%s/_manifest", f->out);
  list_dir(man, names, sizeof(names));
  assert_string_equal(names, "1 2 3");
}

/* A batch committed twice, or an older batch, is a no-op success: the
 * manifest and the part files stay as the first commit left them. */
static void test_commit_idempotent(void **state) {
  struct fx *f = *state;
  commit_ok(f, 1, 0, 4, 0, 2);
  commit_ok(f, 2, 4, 8, 2, 3);
  char path[700], names[1024], before[1024];
  snprintf(path, sizeof(path), "%s/_manifest/2", f->out);
  size_t len1, len2;
  char *m1 = slurp(path, &len1);
  assert_non_null(m1);
  list_dir(f->out, before, sizeof(before));
  /* The same batch again, with the same records, then an older one. */
  commit_ok(f, 2, 4, 8, 2, 3);
  commit_ok(f, 1, 0, 4, 0, 2);
  char *m2 = slurp(path, &len2);
  assert_non_null(m2);
  assert_int_equal(len1, len2);
  assert_memory_equal(m1, m2, len1);
  list_dir(f->out, names, sizeof(names));
  assert_string_equal(names, before);
  check_manifest(f, 1, (int64_t[]){0, 0}, (int64_t[]){4, 2});
  check_manifest(f, 2, (int64_t[]){4, 2}, (int64_t[]){8, 3});
  check_last(f, 2, 8, 3);
  /* Still idempotent after a reopen (the record is read from disk). */
  sink_close(f);
  sink_open(f);
  commit_ok(f, 2, 4, 8, 2, 3);
  check_manifest(f, 2, (int64_t[]){4, 2}, (int64_t[]){8, 3});
  free(m1);
  free(m2);
}

/* Staging a batch the sink already holds (a batch re-run after its
 * dead letters were committed, before the main sink's commit) must not
 * touch the committed part files: staged output is invisible until its
 * commit, and that commit is a no-op. */
static void test_restage_committed_batch(void **state) {
  struct fx *f = *state;
  commit_ok(f, 1, 0, 4, 0, 2);
  /* The re-run stages batch 1 again, with other records (a crash could
   * also cut it short), and its commit is a no-op. */
  void *st = stage_task(f, 1, 0, 0, 10, 11);
  struct sl_plan plan = {.batch = 1, .task_max_records = 100};
  sl_plan_add(&plan, "t", 0, 10, 11);
  sl_plan_add(&plan, "t", 1, 0, 0);
  struct sl_error err = {0};
  assert_int_equal(f->pl->commit(&f->sink, &plan, &st, 1, &err), 0);
  f->pl->stage_free(&f->sink, st);
  sl_plan_clear(&plan);
  check_manifest(f, 1, (int64_t[]){0, 0}, (int64_t[]){4, 2});
}

/* A batch staged and closed but not committed: no manifest entry, its
 * part files stay until the next open, which removes them and keeps the
 * committed ones; the re-run then commits it. */
static void test_uncommitted_cleaned(void **state) {
  struct fx *f = *state;
  commit_ok(f, 1, 0, 3, 0, 3);
  void *a = stage_task(f, 2, 0, 0, 3, 6);
  void *b = stage_task(f, 2, 1, 1, 3, 4);
  f->pl->stage_free(&f->sink, a);
  f->pl->stage_free(&f->sink, b);
  /* An open stage, never closed, of the same batch. */
  struct sl_error err = {0};
  void *c = NULL;
  assert_int_equal(f->pl->stage_open(&f->sink, 2, 2, &c, &err), 0);
  f->pl->stage_free(&f->sink, c);
  assert_null(manifest(f, 2));
  check_last(f, 1, 3, 3);
  char names[1024];
  list_dir(f->out, names, sizeof(names));
  assert_string_equal(names, "_manifest part-0000000001-00000.jsonl "
                             "part-0000000001-00001.jsonl "
                             "part-0000000002-00000.jsonl "
                             "part-0000000002-00001.jsonl "
                             "part-0000000002-00002.jsonl");
  sink_close(f);
  sink_open(f);
  list_dir(f->out, names, sizeof(names));
  assert_string_equal(names, "_manifest part-0000000001-00000.jsonl "
                             "part-0000000001-00001.jsonl");
  check_last(f, 1, 3, 3);
  check_manifest(f, 1, (int64_t[]){0, 0}, (int64_t[]){3, 3});
  commit_ok(f, 2, 3, 6, 3, 4);
  check_manifest(f, 2, (int64_t[]){3, 3}, (int64_t[]){6, 4});
}

/* A process killed inside the manifest write (its temporary file written
 * and fsynced, not renamed) leaves no manifest entry; the next open removes
 * the temporary file and the batch's part files. */
static void test_crash_in_manifest(void **state) {
  struct fx *f = *state;
  commit_ok(f, 1, 0, 2, 0, 2);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct sl_error err = {0};
    if (sl_failpoints_arm("sink.file.manifest.before_rename=crash", &err))
      _exit(3);
    _exit(commit_batch(f, 2, 2, 5, 2, 3, &err) ? 2 : 0);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  char man[700], names[1024];
  snprintf(man, sizeof(man), "%s/_manifest", f->out);
  list_dir(man, names, sizeof(names));
  char want[64];
  snprintf(want, sizeof(want), ".2.tmp.%ld 1", (long)pid);
  assert_string_equal(names, want); /* the crash left its temporary file */
  sink_close(f);
  sink_open(f);
  list_dir(man, names, sizeof(names));
  assert_string_equal(names, "1");
  list_dir(f->out, names, sizeof(names));
  assert_string_equal(names, "_manifest part-0000000001-00000.jsonl "
                             "part-0000000001-00001.jsonl");
  check_last(f, 1, 2, 2);
  commit_ok(f, 2, 2, 5, 2, 3);
  check_manifest(f, 2, (int64_t[]){2, 2}, (int64_t[]){5, 3});
  check_last(f, 2, 5, 3);
}

/* The record of the last batch, after reopening: the newest manifest
 * and its end offsets, also when batches were committed by two sink
 * instances in turn. */
static void test_last_committed_reopen(void **state) {
  struct fx *f = *state;
  commit_ok(f, 1, 0, 10, 0, 20);
  sink_close(f);
  sink_open(f);
  check_last(f, 1, 10, 20);
  commit_ok(f, 2, 10, 15, 20, 20);
  commit_ok(f, 3, 15, 15, 20, 21);
  sink_close(f);
  sink_open(f);
  check_last(f, 3, 15, 21);
  check_manifest(f, 3, (int64_t[]){15, 20}, (int64_t[]){15, 21});
}

/* A manifest that was damaged is reported at open, not skipped. */
static void test_corrupt_manifest(void **state) {
  struct fx *f = *state;
  commit_ok(f, 1, 0, 2, 0, 2);
  sink_close(f);
  char path[700];
  snprintf(path, sizeof(path), "%s/_manifest/1", f->out);
  FILE *fp = fopen(path, "r+");
  assert_non_null(fp);
  assert_int_equal(fputc('X', fp), 'X'); /* the first byte of the body */
  fclose(fp);
  struct sl_error err = {0};
  f->sink = (struct sl_sink){.plugin = f->pl, .conf = f->conf};
  assert_int_not_equal(f->pl->init(&f->sink, &err), 0);
  assert_int_equal(err.code, SL_ERR_CORRUPT);
  f->open = true; /* destroy what init made */
}

int main(void) {
  sl_log_set_level(SL_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_commit_batches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_commit_idempotent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restage_committed_batch, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_uncommitted_cleaned, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_crash_in_manifest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_last_committed_reopen, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_corrupt_manifest, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
