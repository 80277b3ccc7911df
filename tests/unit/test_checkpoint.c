/*
 * test_checkpoint.c - the checkpoint store, the fsio layer and the recovery
 * decision.
 *
 * Each test gets a fresh directory under $TMPDIR. Crash and disk-full cases
 * are simulated by pointing sl_fsio at a table of failing system calls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/fsio.h"
#include "src/util.h"

#define assert_contains(hay, needle)                                           \
  do {                                                                         \
    if (!strstr((hay), (needle)))                                              \
      fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));             \
  } while (0)

#define P53 (((int64_t)1 << 53) - 1)

struct fixture {
  char root[512]; /* fresh temp dir */
  char dir[600];  /* root/ck: the checkpoint directory */
};

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  chmod(path, 0755);
  return remove(path);
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof(*f));
  const char *tmp = getenv("TMPDIR");
  snprintf(f->root, sizeof(f->root), "%s/sl-ckpt-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(f->root))
    return -1;
  snprintf(f->dir, sizeof(f->dir), "%s/ck", f->root);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  sl_fsio = &sl_fsio_posix;
  nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

static struct sl_ckpt *open_ok(const char *dir, const char *job) {
  struct sl_ckpt *ck = NULL;
  struct sl_error err = {0};
  int rc = sl_ckpt_open(dir, job, &ck, &err);
  if (rc)
    fail_msg("open %s: %s", dir, err.msg);
  return ck;
}

static void plan_init(struct sl_plan *p, uint64_t batch) {
  memset(p, 0, sizeof(*p));
  p->batch = batch;
  p->task_max_records = 10000;
  p->created_ms = 1795255200000; /* 2026-11-21T10:00:00Z */
}

/* A plan for batch b whose ranges continue the one of batch b - 1. */
static void plan_for(struct sl_plan *p, uint64_t b) {
  plan_init(p, b);
  sl_plan_add(p, "clicks", 0, (int64_t)(b - 1) * 100, (int64_t)b * 100);
  sl_plan_add(p, "clicks", 1, (int64_t)(b - 1) * 10, (int64_t)b * 10);
}

static void write_offsets_ok(struct sl_ckpt *ck, const struct sl_plan *p) {
  struct sl_error err = {0};
  if (sl_ckpt_write_offsets(ck, p, &err))
    fail_msg("write offsets/%llu: %s", (unsigned long long)p->batch, err.msg);
}

static void commit_ok(struct sl_ckpt *ck, uint64_t b) {
  struct sl_error err = {0};
  if (sl_ckpt_write_commit(ck, b, 1795255200000 + (int64_t)b, &err))
    fail_msg("commit %llu: %s", (unsigned long long)b, err.msg);
}

/* Plans and commits batches 1..n. */
static void run_batches(struct sl_ckpt *ck, uint64_t n) {
  for (uint64_t b = 1; b <= n; b++) {
    struct sl_plan p;
    plan_for(&p, b);
    write_offsets_ok(ck, &p);
    commit_ok(ck, b);
    sl_plan_clear(&p);
  }
}

static void scan_expect(struct sl_ckpt *ck, uint64_t k, uint64_t m) {
  struct sl_ckpt_state st;
  struct sl_error err = {0};
  if (sl_ckpt_scan(ck, &st, &err))
    fail_msg("scan: %s", err.msg);
  assert_int_equal(st.last_commit, k);
  assert_int_equal(st.last_offsets, m);
}

static int count_temp_files(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    if (strstr(e->d_name, ".tmp."))
      n++;
  closedir(d);
  return n;
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static char *slurp(const char *path, size_t *len) {
  char *data;
  struct sl_error err = {0};
  if (sl_fsio_read_file(path, &data, len, &err))
    fail_msg("read %s: %s", path, err.msg);
  return data;
}

static void spit(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close(fd);
}

/* --------------------------------------------------------- failing fsio */

static int inj_writes; /* write calls seen by the failing table */

static ssize_t write_short_then_enospc(int fd, const void *buf, size_t n) {
  if (inj_writes++ == 0)
    return write(fd, buf, n > 1 ? n / 2 : n);
  errno = ENOSPC;
  return -1;
}

static ssize_t write_eintr_and_short(int fd, const void *buf, size_t n) {
  switch (inj_writes++ % 3) {
  case 0:
    errno = EINTR;
    return -1;
  case 1:
    return write(fd, buf, 1);
  default:
    return write(fd, buf, n);
  }
}

static int fsync_eio(int fd) {
  (void)fd;
  errno = EIO;
  return -1;
}

static int rename_crash(const char *from, const char *to) {
  (void)from;
  (void)to;
  errno = EIO;
  return -1;
}

static int open_eacces(const char *path, int flags, mode_t mode) {
  (void)path;
  (void)flags;
  (void)mode;
  errno = EACCES;
  return -1;
}

static int unlink_nothing(const char *path) {
  (void)path;
  return 0;
}

static struct sl_fsio_ops t_enospc, t_eintr, t_fsync, t_rename, t_crash,
    t_eacces;

static void init_tables(void) {
  t_enospc = t_eintr = t_fsync = t_rename = t_crash = t_eacces = sl_fsio_posix;
  t_eacces.open = open_eacces;
  t_enospc.write = write_short_then_enospc;
  t_eintr.write = write_eintr_and_short;
  t_fsync.fsync = fsync_eio;
  t_rename.rename = rename_crash;
  /* A real crash before rename: no rename and no clean-up. */
  t_crash.rename = rename_crash;
  t_crash.unlink = unlink_nothing;
}

/* Directories opened for an fsync (O_DIRECTORY), in order. */
static char synced[8][700];
static int nsynced;

static int open_count_dirs(const char *path, int flags, mode_t mode) {
  if ((flags & O_DIRECTORY) && nsynced < 8)
    snprintf(synced[nsynced++], sizeof(synced[0]), "%s", path);
  return sl_fsio_posix.open(path, flags, mode);
}

/* ---------------------------------------------------------------- tests */

static void test_roundtrip(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_plan p, q = {0};
  struct sl_error err = {0};
  const int64_t big = (int64_t)1 << 40;

  scan_expect(ck, 0, 0);
  plan_init(&p, 1);
  /* Given unsorted: stored (and read back) sorted by topic, partition. */
  sl_plan_add(&p, "views", 2, big, big + 5);
  sl_plan_add(&p, "clicks", 1, 0, 0);
  sl_plan_add(&p, "clicks", 0, P53 - 10, P53);
  sl_plan_add(&p, "views", 0, 7, 9);
  write_offsets_ok(ck, &p);
  scan_expect(ck, 0, 1);

  assert_int_equal(sl_ckpt_read_offsets(ck, 1, &q, &err), 0);
  assert_int_equal(q.batch, 1);
  assert_int_equal(q.task_max_records, 10000);
  assert_int_equal(q.created_ms, 1795255200000);
  assert_int_equal(q.n, 4);
  sl_plan_sort(&p);
  for (size_t i = 0; i < p.n; i++) {
    assert_string_equal(q.ranges[i].topic, p.ranges[i].topic);
    assert_int_equal(q.ranges[i].partition, p.ranges[i].partition);
    assert_int_equal(q.ranges[i].start, p.ranges[i].start);
    assert_int_equal(q.ranges[i].end, p.ranges[i].end);
  }
  assert_string_equal(q.ranges[0].topic, "clicks");
  assert_int_equal(q.ranges[0].end, P53);
  assert_int_equal(q.ranges[3].start, big);

  assert_false(sl_ckpt_has_commit(ck, 1));
  commit_ok(ck, 1);
  assert_true(sl_ckpt_has_commit(ck, 1));
  int64_t ms = 0;
  assert_int_equal(sl_ckpt_read_commit(ck, 1, &ms, &err), 0);
  assert_int_equal(ms, 1795255200001);
  scan_expect(ck, 1, 1);

  struct sl_plan p2;
  plan_for(&p2, 2);
  write_offsets_ok(ck, &p2);
  scan_expect(ck, 1, 2);
  sl_ckpt_close(ck);

  /* A second open sees the same state. */
  ck = open_ok(f->dir, "clicks");
  scan_expect(ck, 1, 2);
  assert_int_equal(sl_ckpt_read_offsets(ck, 3, &q, &err), SL_ERR_NOTFOUND);
  assert_int_equal(q.n, 0);
  sl_ckpt_close(ck);
  sl_plan_clear(&p2);
  sl_plan_clear(&q);
  sl_plan_clear(&p);
}

static void test_offsets_out_of_range_rejected(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_error err = {0};
  struct sl_plan p;

  plan_init(&p, 1);
  sl_plan_add(&p, "t", 0, 0, P53 + 1); /* not exact as a JSON number */
  assert_int_equal(sl_ckpt_write_offsets(ck, &p, &err), SL_ERR_INVAL);
  assert_contains(err.msg, "2^53");
  sl_plan_clear(&p);

  plan_init(&p, 1);
  sl_plan_add(&p, "t", 0, 5, 4); /* start > end */
  assert_int_equal(sl_ckpt_write_offsets(ck, &p, &err), SL_ERR_INVAL);
  sl_plan_clear(&p);

  plan_init(&p, 1);
  sl_plan_add(&p, "t", 0, -2, 4); /* logical offset, not absolute */
  assert_int_equal(sl_ckpt_write_offsets(ck, &p, &err), SL_ERR_INVAL);
  sl_plan_clear(&p);

  plan_init(&p, 1);
  sl_plan_add(&p, "t", 3, 0, 4);
  sl_plan_add(&p, "t", 3, 4, 8);
  assert_int_equal(sl_ckpt_write_offsets(ck, &p, &err), SL_ERR_INVAL);
  assert_contains(err.msg, "t[3] appears twice");
  sl_plan_clear(&p);

  scan_expect(ck, 0, 0);
  sl_ckpt_close(ck);
}

static void test_seal_unseal(void **state) {
  (void)state;
  struct sl_error err = {0};
  size_t n, body;
  const char *bodies[] = {"{\"a\":1}\n", "no newline", ""};

  for (size_t i = 0; i < 3; i++) {
    char *s = sl_fsio_seal(bodies[i], strlen(bodies[i]), &n);
    assert_int_equal(sl_fsio_unseal("f", s, n, &body, &err), 0);
    assert_int_equal(body, strlen(bodies[i]));
    assert_memory_equal(s, bodies[i], body);
    assert_int_equal(s[n - 1], '\n');
    free(s);
  }

  char *s = sl_fsio_seal("hello\n", 6, &n);
  assert_contains(s, "#sluice-checksum crc32=");
  assert_contains(s, " len=6\n");

  /* One more body byte: length mismatch. */
  char *longer = malloc(n + 1);
  longer[0] = 'X';
  memcpy(longer + 1, s, n);
  assert_int_equal(sl_fsio_unseal("/x/f", longer, n + 1, &body, &err),
                   SL_ERR_CORRUPT);
  assert_string_equal(err.msg, "/x/f: length mismatch (trailer says 6, body "
                               "has 7 bytes)");
  free(longer);

  /* Same length, one byte flipped: checksum mismatch. */
  s[1] ^= 0x20;
  assert_int_equal(sl_fsio_unseal("/x/f", s, n, &body, &err), SL_ERR_CORRUPT);
  assert_string_equal(err.msg, "/x/f: checksum mismatch (file is corrupt)");
  s[1] ^= 0x20;

  /* Cut anywhere, even one byte off the trailer's newline: torn. */
  for (size_t cut = 0; cut < n; cut++) {
    assert_int_equal(sl_fsio_unseal("/x/f", s, cut, &body, &err),
                     SL_ERR_CORRUPT);
    assert_string_equal(err.msg, "/x/f: torn or truncated file (no checksum "
                                 "trailer)");
  }
  /* Trailing garbage after the trailer: torn. */
  char *more = malloc(n + 2);
  memcpy(more, s, n);
  memcpy(more + n, "x\n", 2);
  assert_int_equal(sl_fsio_unseal("/x/f", more, n + 2, &body, &err),
                   SL_ERR_CORRUPT);
  assert_contains(err.msg, "torn");
  free(more);
  free(s);
}

static void test_fsio_read_missing(void **state) {
  struct fixture *f = *state;
  char path[700], *data = NULL;
  size_t len;
  struct sl_error err = {0};
  snprintf(path, sizeof(path), "%s/nope", f->root);
  assert_int_equal(sl_fsio_read_file(path, &data, &len, &err), SL_ERR_NOTFOUND);
  assert_null(data);
  assert_contains(err.msg, path);
}

static unsigned mode_of(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return (unsigned)(st.st_mode & 07777);
}

static bool modes_ok = true;
static int check_private(const char *path, const struct stat *st, int flag,
                         struct FTW *ftw) {
  (void)ftw;
  unsigned want = flag == FTW_D ? SL_FSIO_DIR_MODE : SL_FSIO_FILE_MODE;
  if ((unsigned)(st->st_mode & 07777) != want) {
    print_error("%s is %o, not %o\n", path, (unsigned)(st->st_mode & 07777),
                want);
    modes_ok = false;
  }
  return 0;
}

/* What sluice keeps for itself is 0600 (files) and 0700 (directories)
 * whatever the umask: one that takes the owner's bits away (0277) or
 * gives everything (0); directories for users follow the umask. */
/* Group mode: a checkpoint directory is one process's (sl_ckpt_lock). A
 * second open of it cannot take the lock while the first holds it, and is
 * told which process does; once the first closes, it can. */
static void test_lock(void **state) {
  struct fixture *f = *state;
  struct sl_error err = {0};
  struct sl_ckpt *a = open_ok(f->dir, "job");
  struct sl_ckpt *b = open_ok(f->dir, "job");
  assert_int_equal(sl_ckpt_lock(a, &err), 0);
  assert_int_equal(sl_ckpt_lock(b, &err), SL_ERR_CONFIG);
  char want[64];
  snprintf(want, sizeof(want), "(pid %ld)", (long)getpid());
  if (!strstr(err.msg, "is in use by another sluice process") ||
      !strstr(err.msg, want) || !strstr(err.msg, f->dir))
    fail_msg("unexpected message: %s", err.msg);
  sl_ckpt_close(a);
  assert_int_equal(sl_ckpt_lock(b, &err), 0);
  sl_ckpt_close(b);
}

static void test_private_modes(void **state) {
  struct fixture *f = *state;
  const mode_t masks[] = {0277, 0, 022, 077};
  char dir[800], path[900];
  struct sl_error err = {0};
  for (size_t i = 0; i < SL_ARRAY_LEN(masks); i++) {
    mode_t old = umask(masks[i]);
    snprintf(dir, sizeof(dir), "%s/m%zu/a/b", f->root, i);
    assert_int_equal(sl_fsio_mkdirs_private(dir, &err), 0);
    assert_int_equal(sl_fsio_write_atomic(dir, "f", "x", 1, NULL, &err), 0);
    assert_int_equal(sl_fsio_write_atomic(dir, "f", "yy", 2, NULL, &err), 0);
    snprintf(path, sizeof(path), "%s/f", dir);
    umask(old);
    assert_int_equal(mode_of(path), SL_FSIO_FILE_MODE);
    assert_int_equal(mode_of(dir), SL_FSIO_DIR_MODE);
    snprintf(path, sizeof(path), "%s/m%zu/a", f->root, i);
    assert_int_equal(mode_of(path), SL_FSIO_DIR_MODE);
  }
  /* A whole checkpoint, opened and written under umask 0277. */
  mode_t old = umask(0277);
  struct sl_ckpt *ck = NULL;
  int rc = sl_ckpt_open(f->dir, "job", &ck, &err);
  umask(old);
  assert_int_equal(rc, 0);
  sl_ckpt_close(ck);
  modes_ok = true;
  nftw(f->dir, check_private, 16, FTW_PHYS);
  assert_true(modes_ok);
  /* Users' directories: the umask decides. */
  old = umask(022);
  snprintf(dir, sizeof(dir), "%s/out/x", f->root);
  rc = sl_fsio_mkdirs(dir, &err);
  umask(old);
  assert_int_equal(rc, 0);
  assert_int_equal(mode_of(dir), 0755);
}

/* The old file must survive any failure of a replacing write. */
static void check_failed_write(struct fixture *f, const struct sl_fsio_ops *ops,
                               const char *what) {
  char path[700];
  struct sl_error err = {0};
  size_t len;
  static char big[100000];

  memset(big, 'n', sizeof(big));
  snprintf(path, sizeof(path), "%s/file", f->root);
  assert_int_equal(
      sl_fsio_write_atomic(f->root, "file", "old\n", 4, NULL, &err), 0);
  inj_writes = 0;
  sl_fsio = ops;
  int rc = sl_fsio_write_atomic(f->root, "file", big, sizeof(big), NULL, &err);
  sl_fsio = &sl_fsio_posix;
  assert_int_equal(rc, SL_ERR_IO);
  assert_contains(err.msg, path);
  assert_contains(err.msg, what);

  char *data = slurp(path, &len);
  assert_int_equal(len, 4);
  assert_string_equal(data, "old\n");
  free(data);
  assert_int_equal(count_temp_files(f->root), 0);
}

static void test_atomic_short_write_enospc(void **state) {
  check_failed_write(*state, &t_enospc, "No space left on device");
  assert_int_equal(inj_writes, 2); /* the short write was retried */
}

static void test_atomic_fsync_eio(void **state) {
  check_failed_write(*state, &t_fsync, "fsync");
}

static void test_atomic_rename_fails(void **state) {
  check_failed_write(*state, &t_rename, "rename");
}

static void test_atomic_open_eacces(void **state) {
  check_failed_write(*state, &t_eacces, "Permission denied");
}

static void test_atomic_retries_eintr_and_short(void **state) {
  struct fixture *f = *state;
  struct sl_error err = {0};
  char path[700];
  size_t len;
  snprintf(path, sizeof(path), "%s/file", f->root);
  inj_writes = 0;
  sl_fsio = &t_eintr;
  int rc = sl_fsio_write_atomic(f->root, "file", "abcdefgh", 8, NULL, &err);
  sl_fsio = &sl_fsio_posix;
  assert_int_equal(rc, 0);
  assert_true(inj_writes >= 3);
  char *data = slurp(path, &len);
  assert_string_equal(data, "abcdefgh");
  free(data);
  assert_int_equal(count_temp_files(f->root), 0);
}

/* A failed checkpoint write leaves the store as it was. */
static void test_ckpt_write_failure_keeps_state(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_error err = {0};
  struct sl_plan p, q = {0};
  char offsets[700];

  run_batches(ck, 1);
  plan_for(&p, 2);
  const struct sl_fsio_ops *tables[] = {&t_enospc, &t_fsync, &t_rename};
  for (size_t i = 0; i < 3; i++) {
    inj_writes = 0;
    sl_fsio = tables[i];
    int rc = sl_ckpt_write_offsets(ck, &p, &err);
    sl_fsio = &sl_fsio_posix;
    assert_int_equal(rc, SL_ERR_IO);
    assert_contains(err.msg, "/offsets/2");
    scan_expect(ck, 1, 1);
    assert_int_equal(sl_ckpt_read_offsets(ck, 2, &q, &err), SL_ERR_NOTFOUND);
  }
  snprintf(offsets, sizeof(offsets), "%s/offsets", f->dir);
  assert_int_equal(count_temp_files(offsets), 0);

  /* The commit log too; offsets/1 and commits/1 are still readable. */
  write_offsets_ok(ck, &p);
  sl_fsio = &t_fsync;
  assert_int_equal(sl_ckpt_write_commit(ck, 2, 5, &err), SL_ERR_IO);
  sl_fsio = &sl_fsio_posix;
  assert_contains(err.msg, "/commits/2");
  scan_expect(ck, 1, 2);
  assert_int_equal(sl_ckpt_read_offsets(ck, 1, &q, &err), 0);
  assert_int_equal(q.ranges[0].end, 100);
  commit_ok(ck, 2);
  scan_expect(ck, 2, 2);
  sl_plan_clear(&q);
  sl_plan_clear(&p);
  sl_ckpt_close(ck);
}

static void test_leftover_temp_removed_on_open(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_error err = {0};
  struct sl_plan p;
  char offsets[700], commits[700], other[800];

  run_batches(ck, 1);
  plan_for(&p, 2);
  sl_fsio = &t_crash; /* dies before rename, cleans nothing up */
  assert_int_equal(sl_ckpt_write_offsets(ck, &p, &err), SL_ERR_IO);
  sl_fsio = &sl_fsio_posix;
  sl_ckpt_close(ck);
  snprintf(offsets, sizeof(offsets), "%s/offsets", f->dir);
  snprintf(commits, sizeof(commits), "%s/commits", f->dir);
  assert_int_equal(count_temp_files(offsets), 1);
  /* And one left by another (dead) process in commits/. */
  snprintf(other, sizeof(other), "%s/.2.tmp.999999", commits);
  spit(other, "{\"batch\":", 9);

  ck = open_ok(f->dir, "clicks");
  assert_int_equal(count_temp_files(offsets), 0);
  assert_int_equal(count_temp_files(commits), 0);
  scan_expect(ck, 1, 1);
  write_offsets_ok(ck, &p); /* batch 2 can be planned normally */
  scan_expect(ck, 1, 2);
  sl_plan_clear(&p);
  sl_ckpt_close(ck);
}

/* Damages DIR/sub/name with fn and expects scan to report it. */
static void check_corrupt(struct fixture *f, const char *sub,
                          void (*fn)(char *, size_t *), const char *expect,
                          const char *hint) {
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_ckpt_state st;
  struct sl_error err = {0};
  char path[700];
  size_t len;

  run_batches(ck, 3);
  snprintf(path, sizeof(path), "%s/%s", f->dir, sub);
  char *data = slurp(path, &len);
  data = realloc(data, len + 64);
  fn(data, &len);
  spit(path, data, len);
  free(data);

  assert_int_equal(sl_ckpt_scan(ck, &st, &err), SL_ERR_CORRUPT);
  assert_contains(err.msg, path);
  assert_contains(err.msg, expect);
  assert_contains(err.msg, hint);
  sl_ckpt_close(ck);
}

static void flip_body_byte(char *d, size_t *len) {
  (void)len;
  d[5] ^= 0x01;
}

static void truncate_half(char *d, size_t *len) {
  (void)d;
  *len /= 2;
}

static void garbage_trailer(char *d, size_t *len) {
  char *t = strstr(d, "#sluice-checksum");
  assert_non_null(t);
  strcpy(t, "#sluice-checksum crc32=zz len=?\n");
  *len = strlen(d);
}

static void test_corrupt_flipped_byte(void **state) {
  check_corrupt(*state, "commits/3", flip_body_byte, "checksum mismatch",
                "move the file away to recover from the previous batch");
}

static void test_corrupt_older_file(void **state) {
  check_corrupt(*state, "offsets/2", flip_body_byte, "checksum mismatch",
                "not the newest entry");
}

static void test_corrupt_torn(void **state) {
  check_corrupt(*state, "offsets/3", truncate_half, "torn or truncated",
                "move the file away");
}

static void test_corrupt_garbage_trailer(void **state) {
  check_corrupt(*state, "commits/1", garbage_trailer, "torn or truncated",
                "move the file away");
}

/* Sealed correctly but the body is wrong: still corrupt, naming the file. */
static void test_corrupt_bad_body(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_ckpt_state st;
  struct sl_error err = {0};
  char path[700];
  size_t n;
  const char *bodies[] = {
      "{\"batch\": 1, \"committed_ms\": ",     /* not JSON */
      "{\"batch\": 1}\n",                      /* field missing */
      "{\"batch\": 2, \"committed_ms\": 5}\n", /* wrong batch */
      "{\"batch\": 1, \"committed_ms\": 1.5}\n",
  };
  const char *expect[] = {"not a JSON object", "'committed_ms'",
                          "holds batch 2", "'committed_ms'"};

  run_batches(ck, 1);
  snprintf(path, sizeof(path), "%s/commits/1", f->dir);
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
    char *s = sl_fsio_seal(bodies[i], strlen(bodies[i]), &n);
    spit(path, s, n);
    free(s);
    assert_int_equal(sl_ckpt_scan(ck, &st, &err), SL_ERR_CORRUPT);
    assert_contains(err.msg, path);
    assert_contains(err.msg, expect[i]);
  }

  /* An offsets range with a fractional offset. */
  const char *b = "{\"batch\":1,\"task_max_records\":1,\"created_ms\":0,"
                  "\"ranges\":[{\"topic\":\"t\",\"partition\":0,"
                  "\"start\":0.5,\"end\":2}]}";
  char *s = sl_fsio_seal(b, strlen(b), &n);
  snprintf(path, sizeof(path), "%s/offsets/1", f->dir);
  spit(path, s, n);
  free(s);
  struct sl_plan q = {0};
  assert_int_equal(sl_ckpt_read_offsets(ck, 1, &q, &err), SL_ERR_CORRUPT);
  assert_contains(err.msg, "ranges[].start");
  assert_int_equal(q.n, 0);
  sl_ckpt_close(ck);
}

static void test_scan_ignores_foreign_names(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  char path[700];

  run_batches(ck, 2);
  snprintf(path, sizeof(path), "%s/offsets/README", f->dir);
  spit(path, "notes", 5);
  snprintf(path, sizeof(path), "%s/commits/007", f->dir);
  spit(path, "junk", 4);
  scan_expect(ck, 2, 2);
  sl_ckpt_close(ck);
}

static void test_invariant2_overwrite(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_error err = {0};
  struct sl_plan p, q = {0};

  run_batches(ck, 1);
  plan_for(&p, 2);
  write_offsets_ok(ck, &p);

  /* Identical ranges (other order, other created_ms): a no-op success. */
  struct sl_plan same;
  plan_init(&same, 2);
  same.created_ms = 42;
  sl_plan_add(&same, "clicks", 1, 10, 20);
  sl_plan_add(&same, "clicks", 0, 100, 200);
  write_offsets_ok(ck, &same);
  assert_int_equal(sl_ckpt_read_offsets(ck, 2, &q, &err), 0);
  assert_int_equal(q.created_ms, 1795255200000);

  /* Different ranges: refused, file unchanged. */
  p.ranges[1].end = 25;
  assert_int_equal(sl_ckpt_write_offsets(ck, &p, &err), SL_ERR_INVAL);
  assert_contains(err.msg, "offsets/2 already exists with different ranges "
                           "(invariant 2)");
  sl_plan_add(&same, "views", 0, 0, 1);
  assert_int_equal(sl_ckpt_write_offsets(ck, &same, &err), SL_ERR_INVAL);
  assert_int_equal(sl_ckpt_read_offsets(ck, 2, &q, &err), 0);
  assert_int_equal(q.n, 2);
  assert_int_equal(q.ranges[1].end, 20);

  /* Committed batches are final too. */
  struct sl_plan one;
  plan_for(&one, 1);
  write_offsets_ok(ck, &one);
  one.ranges[0].start = 1;
  assert_int_equal(sl_ckpt_write_offsets(ck, &one, &err), SL_ERR_INVAL);
  scan_expect(ck, 1, 2);

  sl_plan_clear(&one);
  sl_plan_clear(&same);
  sl_plan_clear(&q);
  sl_plan_clear(&p);
  sl_ckpt_close(ck);
}

static void test_offsets_must_follow_commit(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_error err = {0};
  struct sl_plan p;

  plan_for(&p, 3);
  assert_int_equal(sl_ckpt_write_offsets(ck, &p, &err), SL_ERR_INVAL);
  assert_contains(err.msg, "next batch is 1");
  sl_plan_clear(&p);
  scan_expect(ck, 0, 0);
  sl_ckpt_close(ck);
}

static void test_commit_requires_offsets(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_error err = {0};

  assert_int_equal(sl_ckpt_write_commit(ck, 1, 5, &err), SL_ERR_INVAL);
  assert_contains(err.msg, "offsets/1 does not exist");
  assert_false(sl_ckpt_has_commit(ck, 1));
  run_batches(ck, 2);
  assert_int_equal(sl_ckpt_write_commit(ck, 3, 5, &err), SL_ERR_INVAL);

  /* Idempotent: committing 2 again keeps the first record. */
  int64_t ms = 0;
  assert_int_equal(sl_ckpt_write_commit(ck, 2, 99, &err), 0);
  assert_int_equal(sl_ckpt_read_commit(ck, 2, &ms, &err), 0);
  assert_int_equal(ms, 1795255200002);
  scan_expect(ck, 2, 2);
  sl_ckpt_close(ck);
}

static void test_roll_forward(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_error err = {0};
  struct sl_plan p, q = {0};

  run_batches(ck, 2);
  plan_for(&p, 3);
  write_offsets_ok(ck, &p); /* planned, then the sink went on to 7 */
  sl_plan_clear(&p);
  plan_init(&p, 7);
  sl_plan_add(&p, "clicks", 0, 700, 700);
  sl_plan_add(&p, "clicks", 1, 70, 70);
  sl_ckpt_set_commit_note(ck, "txn 7.2");
  assert_int_equal(sl_ckpt_roll_forward(ck, &p, 77, &err), 0);
  scan_expect(ck, 7, 7);
  /* The sink's note is kept in commits/7, and only there. */
  char path[700];
  size_t len;
  snprintf(path, sizeof(path), "%s/commits/7", f->dir);
  char *data = slurp(path, &len);
  assert_non_null(strstr(data, "\"txn 7.2\""));
  free(data);
  assert_int_equal(sl_ckpt_read_offsets(ck, 7, &q, &err), 0);
  assert_int_equal(q.ranges[0].end, 700);
  /* Not backwards. */
  assert_int_equal(sl_ckpt_roll_forward(ck, &p, 77, &err), SL_ERR_INVAL);
  /* Planning continues from 8. */
  sl_plan_clear(&p);
  plan_for(&p, 8);
  write_offsets_ok(ck, &p);
  scan_expect(ck, 7, 8);
  assert_int_equal(sl_ckpt_write_commit(ck, 8, 88, &err), 0);
  snprintf(path, sizeof(path), "%s/commits/8", f->dir);
  data = slurp(path, &len);
  assert_null(strstr(data, "\"sink\""));
  free(data);
  sl_plan_clear(&q);
  sl_plan_clear(&p);
  sl_ckpt_close(ck);
}

static void test_prune(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_error err = {0};
  struct sl_plan p;
  char path[700];

  run_batches(ck, 5);
  plan_for(&p, 6);
  write_offsets_ok(ck, &p);
  sl_plan_clear(&p);

  assert_int_equal(sl_ckpt_prune(ck, 10, &err), 0); /* fewer: nothing */
  snprintf(path, sizeof(path), "%s/commits/1", f->dir);
  assert_true(file_exists(path));

  assert_int_equal(sl_ckpt_prune(ck, 2, &err), 0);
  for (uint64_t b = 1; b <= 6; b++) {
    snprintf(path, sizeof(path), "%s/commits/%llu", f->dir,
             (unsigned long long)b);
    assert_int_equal(file_exists(path), b == 4 || b == 5);
    snprintf(path, sizeof(path), "%s/offsets/%llu", f->dir,
             (unsigned long long)b);
    assert_int_equal(file_exists(path), b >= 4);
  }
  scan_expect(ck, 5, 6);

  assert_int_equal(sl_ckpt_prune(ck, 0, &err), 0); /* 0 means 1 */
  for (uint64_t b = 1; b <= 6; b++) {
    snprintf(path, sizeof(path), "%s/commits/%llu", f->dir,
             (unsigned long long)b);
    assert_int_equal(file_exists(path), b == 5);
    snprintf(path, sizeof(path), "%s/offsets/%llu", f->dir,
             (unsigned long long)b);
    assert_int_equal(file_exists(path), b >= 5);
  }
  scan_expect(ck, 5, 6);
  commit_ok(ck, 6);
  scan_expect(ck, 6, 6);
  sl_ckpt_close(ck);
}

static void expect_decision(uint64_t k, uint64_t m, bool knows, uint64_t s,
                            enum sl_recovery_action action, uint64_t batch) {
  struct sl_recovery r = sl_recovery_decide(k, m, knows, s, false);
  /* --recover-from-sink changes only the sink-behind decision */
  struct sl_recovery f = sl_recovery_decide(k, m, knows, s, true);
  if (action != SL_RECOVER_SINK_BEHIND &&
      (f.action != r.action || f.batch != r.batch))
    fail_msg("from_sink changed decide(K=%llu, M=%llu, S=%llu)",
             (unsigned long long)k, (unsigned long long)m,
             (unsigned long long)s);
  if (action == SL_RECOVER_SINK_BEHIND &&
      (f.action != SL_RECOVER_FROM_SINK || f.batch != (m > k ? m : k) + 1))
    fail_msg("decide(K=%llu, M=%llu, S=%llu, from_sink) = (%d, %llu)",
             (unsigned long long)k, (unsigned long long)m,
             (unsigned long long)s, (int)f.action, (unsigned long long)f.batch);
  if (r.action != action || r.batch != batch)
    fail_msg("decide(K=%llu, M=%llu, knows=%d, S=%llu) = (%d, %llu), "
             "expected (%d, %llu)",
             (unsigned long long)k, (unsigned long long)m, (int)knows,
             (unsigned long long)s, (int)r.action, (unsigned long long)r.batch,
             (int)action, (unsigned long long)batch);
}

static void test_recovery_decide(void **state) {
  (void)state;
  /* Empty store, sink empty or not knowing. */
  expect_decision(0, 0, true, 0, SL_RECOVER_FRESH, 1);
  expect_decision(0, 0, false, 0, SL_RECOVER_FRESH, 1);
  expect_decision(0, 1, true, 0, SL_RECOVER_RERUN, 1);
  /* Sink does not know: S is ignored, whatever it says. */
  expect_decision(5, 5, false, 0, SL_RECOVER_FRESH, 6);
  expect_decision(5, 6, false, 0, SL_RECOVER_RERUN, 6);
  expect_decision(5, 6, false, 9, SL_RECOVER_RERUN, 6);
  expect_decision(5, 5, false, 2, SL_RECOVER_FRESH, 6);
  /* S == K. */
  expect_decision(5, 5, true, 5, SL_RECOVER_FRESH, 6);
  expect_decision(5, 6, true, 5, SL_RECOVER_RERUN, 6);
  /* S == K + 1: with its plan complete it, without it roll forward. */
  expect_decision(5, 6, true, 6, SL_RECOVER_COMPLETE, 6);
  expect_decision(0, 1, true, 1, SL_RECOVER_COMPLETE, 1);
  expect_decision(5, 5, true, 6, SL_RECOVER_ROLL_FORWARD, 6);
  /* S > K + 1. */
  expect_decision(5, 6, true, 9, SL_RECOVER_ROLL_FORWARD, 9);
  expect_decision(5, 5, true, 7, SL_RECOVER_ROLL_FORWARD, 7);
  expect_decision(0, 0, true, 3, SL_RECOVER_ROLL_FORWARD, 3);
  /* S < K: the sink lost data. */
  expect_decision(5, 6, true, 4, SL_RECOVER_SINK_BEHIND, 4);
  expect_decision(5, 5, true, 0, SL_RECOVER_SINK_BEHIND, 0);
  /* ... and with --recover-from-sink a new batch after all the store has
   * seen (checked inside expect_decision). */
  struct sl_recovery r = sl_recovery_decide(5, 6, true, 2, true);
  assert_int_equal(r.action, SL_RECOVER_FROM_SINK);
  assert_int_equal(r.batch, 7);
  r = sl_recovery_decide(5, 5, true, 0, true);
  assert_int_equal(r.action, SL_RECOVER_FROM_SINK);
  assert_int_equal(r.batch, 6);
}

/* "t[p]=pos" per range, sorted as the function returns them; from_sink
 * ranges as "t[p]=local>sink". */
static void positions_text(const struct sl_plan *p, bool from, char *out,
                           size_t n) {
  size_t k = 0;
  out[0] = '\0';
  for (size_t i = 0; i < p->n && k < n; i++) {
    const struct sl_range *r = &p->ranges[i];
    if (from)
      k += (size_t)snprintf(out + k, n - k, "%s%s[%d]=%lld>%lld", i ? " " : "",
                            r->topic, r->partition, (long long)r->start,
                            (long long)r->end);
    else
      k += (size_t)snprintf(out + k, n - k, "%s%s[%d]=%lld", i ? " " : "",
                            r->topic, r->partition, (long long)r->end);
  }
}

static void expect_positions(const struct sl_plan *local,
                             const struct sl_plan *sink,
                             const struct sl_plan *bound, const char *want_out,
                             const char *want_from) {
  struct sl_plan out, from;
  char got[400];
  size_t n = sl_recovery_positions(local, sink, bound, &out, &from);
  assert_int_equal(n, from.n);
  positions_text(&out, false, got, sizeof(got));
  assert_string_equal(got, want_out);
  positions_text(&from, true, got, sizeof(got));
  assert_string_equal(got, want_from);
  for (size_t i = 0; i < out.n; i++) /* positions: start == end */
    assert_int_equal(out.ranges[i].start, out.ranges[i].end);
  sl_plan_clear(&out);
  sl_plan_clear(&from);
}

static void at(struct sl_plan *p, const char *topic, int32_t part,
               int64_t pos) {
  sl_plan_add(p, topic, part, pos, pos);
}

static void test_recovery_positions(void **state) {
  (void)state;
  struct sl_plan local = {0}, sink = {0}, bound = {0};
  /* No sink positions: the checkpoint alone. */
  at(&local, "t", 1, 40);
  at(&local, "t", 0, 50);
  expect_positions(&local, NULL, NULL, "t[0]=50 t[1]=40", "");
  expect_positions(&local, &sink, NULL, "t[0]=50 t[1]=40", "");
  /* A fresh or deleted checkpoint: every partition from the sink. */
  at(&sink, "t", 0, 70);
  at(&sink, "t", 1, 40);
  at(&sink, "t", 2, 9);
  expect_positions(NULL, &sink, NULL, "t[0]=70 t[1]=40 t[2]=9",
                   "t[0]=-1>70 t[1]=-1>40 t[2]=-1>9");
  /* Per partition the larger: t[0] from the sink, t[1] equal (the
   * checkpoint's), t[2] unknown to the checkpoint. */
  expect_positions(&local, &sink, NULL, "t[0]=70 t[1]=40 t[2]=9",
                   "t[0]=50>70 t[2]=-1>9");
  /* A sink position below the checkpoint's never moves it back, and a
   * partition only the checkpoint knows keeps its position. */
  sl_plan_clear(&sink);
  at(&sink, "t", 0, 20);
  at(&sink, "u", 0, 5);
  expect_positions(&local, &sink, NULL, "t[0]=50 t[1]=40 u[0]=5", "u[0]=-1>5");
  /* A bound (the dead letters' record) lowers the sink's positions, and a
   * partition it does not name is not taken from the sink. */
  sl_plan_clear(&sink);
  at(&sink, "t", 0, 70);
  at(&sink, "t", 1, 60);
  at(&sink, "t", 2, 9);
  at(&bound, "t", 0, 65);
  at(&bound, "t", 1, 30);
  expect_positions(&local, &sink, &bound, "t[0]=65 t[1]=40", "t[0]=50>65");
  /* The bound equal to the checkpoint: nothing from the sink. */
  expect_positions(&local, &sink, &local, "t[0]=50 t[1]=40", "");
  sl_plan_clear(&local);
  sl_plan_clear(&sink);
  sl_plan_clear(&bound);
}

static void test_metadata_job_mismatch(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_error err = {0};
  char msg[1200];
  sl_ckpt_close(ck);

  ck = NULL;
  assert_int_equal(sl_ckpt_open(f->dir, "revenue", &ck, &err), SL_ERR_CONFIG);
  assert_null(ck);
  snprintf(msg, sizeof(msg),
           "checkpoint directory %s belongs to job 'clicks', not 'revenue'",
           f->dir);
  assert_string_equal(err.msg, msg);

  /* A corrupt metadata file is reported, not rewritten. */
  char path[700];
  snprintf(path, sizeof(path), "%s/metadata", f->dir);
  spit(path, "{\"job\":\"clicks\"}", 16);
  assert_int_equal(sl_ckpt_open(f->dir, "clicks", &ck, &err), SL_ERR_CORRUPT);
  assert_contains(err.msg, path);
}

static void test_unwritable_dir(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = NULL;
  struct sl_error err = {0};
  char file[700], dir[800];

  /* Under a regular file: fails for root too. */
  snprintf(file, sizeof(file), "%s/afile", f->root);
  spit(file, "x", 1);
  snprintf(dir, sizeof(dir), "%s/sub", file);
  assert_int_equal(sl_ckpt_open(dir, "clicks", &ck, &err), SL_ERR_IO);
  assert_null(ck);
  assert_contains(err.msg, "checkpoint directory ");
  assert_contains(err.msg, dir);
  assert_contains(err.msg, "is not writable");
  assert_contains(err.msg, "Not a directory");

  /* A read-only directory: root writes anyway, so only as another user. */
  if (geteuid() == 0)
    return;
  mkdir(f->dir, 0755);
  chmod(f->dir, 0555);
  assert_int_equal(sl_ckpt_open(f->dir, "clicks", &ck, &err), SL_ERR_IO);
  assert_null(ck);
  assert_contains(err.msg, "checkpoint directory ");
  assert_contains(err.msg, f->dir);
  assert_contains(err.msg, "is not writable");
  assert_contains(err.msg, "Permission denied");
  chmod(f->dir, 0755);

  /* Existing store made read-only: the probe catches it. */
  ck = open_ok(f->dir, "clicks");
  sl_ckpt_close(ck);
  ck = NULL;
  chmod(f->dir, 0555);
  assert_int_equal(sl_ckpt_open(f->dir, "clicks", &ck, &err), SL_ERR_IO);
  char msg[1200];
  snprintf(msg, sizeof(msg),
           "checkpoint directory %s is not writable: Permission denied",
           f->dir);
  assert_string_equal(err.msg, msg);
  chmod(f->dir, 0755);
}

static char *show(const char *dir, int *rc, struct sl_error *err) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  *rc = sl_ckpt_show(dir, out, err);
  fclose(out);
  return buf;
}

static void test_show(void **state) {
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  struct sl_error err = {0};
  struct sl_plan p;
  int rc;

  char *s = show(f->dir, &rc, &err);
  assert_int_equal(rc, 0);
  assert_contains(s, "job: clicks\n");
  assert_contains(s, "last committed batch: none");
  free(s);

  run_batches(ck, 12);
  plan_init(&p, 13);
  sl_plan_add(&p, "clicks", 0, 1000, 2000);
  sl_plan_add(&p, "clicks", 1, 50, 60);
  write_offsets_ok(ck, &p);
  sl_plan_clear(&p);

  s = show(f->dir, &rc, &err);
  assert_int_equal(rc, 0);
  assert_contains(s, "job: clicks\n");
  assert_contains(s, "last committed batch: 12 (at 2026-11-21T10:00:00Z)");
  assert_contains(s, "last planned batch: 13 (not committed");
  assert_contains(s, "ranges of batch 13");
  assert_contains(s, "clicks[0]  1000..2000  (1000 records)");
  assert_contains(s, "clicks[1]    50..60  (10 records)");
  assert_contains(s, "total: 1010 records in 2 ranges");
  assert_contains(s, "verified: all files are intact");
  free(s);

  /* Corruption is shown, not hidden. */
  char path[700];
  snprintf(path, sizeof(path), "%s/commits/12", f->dir);
  spit(path, "torn", 4);
  s = show(f->dir, &rc, &err);
  assert_int_equal(rc, 0);
  assert_contains(s, "CORRUPT: ");
  assert_contains(s, path);
  assert_contains(s, "last committed batch: 12 (unreadable");
  free(s);

  /* Not a checkpoint directory. */
  s = show(f->root, &rc, &err);
  assert_int_equal(rc, SL_ERR_NOTFOUND);
  assert_contains(err.msg, "is not a checkpoint directory");
  free(s);
  sl_ckpt_close(ck);
}

static void test_trailing_slash_and_dir(void **state) {
  struct fixture *f = *state;
  char dir[700];
  snprintf(dir, sizeof(dir), "%s/a/b/c//", f->root);
  struct sl_ckpt *ck = open_ok(dir, "j");
  char want[700];
  snprintf(want, sizeof(want), "%s/a/b/c", f->root);
  assert_string_equal(sl_ckpt_dir(ck), want);
  sl_ckpt_close(ck);
}

/* Debug builds abort when the store's shape breaks the invariants. */
static void test_assert_invariants_aborts(void **state) {
#ifdef SL_DEBUG_INVARIANTS
  struct fixture *f = *state;
  struct sl_ckpt *ck = open_ok(f->dir, "clicks");
  char path[700];
  size_t n;

  run_batches(ck, 2);
  sl_ckpt_assert_invariants(ck); /* fine */
  /* A commit without its plan, made behind the store's back. */
  snprintf(path, sizeof(path), "%s/offsets/1", f->dir);
  assert_int_equal(unlink(path), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    sl_ckpt_assert_invariants(ck);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);

  /* offsets/4 while the newest commit is 2. */
  char *s = sl_fsio_seal("x", 1, &n);
  snprintf(path, sizeof(path), "%s/offsets/1", f->dir);
  spit(path, s, n); /* restore a file named 1 */
  snprintf(path, sizeof(path), "%s/offsets/4", f->dir);
  spit(path, s, n);
  free(s);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    sl_ckpt_assert_invariants(ck);
    _exit(0);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  sl_ckpt_close(ck);
#else
  (void)state;
  skip();
#endif
}

/* A directory mkdirs creates has its parent fsynced (the new entry is
 * durable with what is later written into it); one that exists costs no
 * fsync. */
static void test_mkdirs_syncs_parents(void **state) {
  struct fixture *f = *state;
  struct sl_fsio_ops t = sl_fsio_posix;
  t.open = open_count_dirs;
  char path[700], a[700];
  struct sl_error err = {0};
  assert_int_equal(sl_fsio_mkdirs_private(f->dir, &err), 0);
  snprintf(a, sizeof(a), "%s/a", f->dir);
  snprintf(path, sizeof(path), "%s/a/b", f->dir);
  nsynced = 0;
  sl_fsio = &t;
  int rc = sl_fsio_mkdirs_private(path, &err);
  sl_fsio = &sl_fsio_posix;
  assert_int_equal(rc, 0);
  assert_int_equal(nsynced, 2);
  assert_string_equal(synced[0], f->dir);
  assert_string_equal(synced[1], a);
  nsynced = 0;
  sl_fsio = &t;
  rc = sl_fsio_mkdirs(path, &err);
  sl_fsio = &sl_fsio_posix;
  assert_int_equal(rc, 0);
  assert_int_equal(nsynced, 0);
}

int main(void) {
  init_tables();
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_roundtrip),
      T(test_offsets_out_of_range_rejected),
      T(test_seal_unseal),
      T(test_fsio_read_missing),
      T(test_private_modes),
      T(test_lock),
      T(test_mkdirs_syncs_parents),
      T(test_atomic_short_write_enospc),
      T(test_atomic_fsync_eio),
      T(test_atomic_rename_fails),
      T(test_atomic_open_eacces),
      T(test_atomic_retries_eintr_and_short),
      T(test_ckpt_write_failure_keeps_state),
      T(test_leftover_temp_removed_on_open),
      T(test_corrupt_flipped_byte),
      T(test_corrupt_older_file),
      T(test_corrupt_torn),
      T(test_corrupt_garbage_trailer),
      T(test_corrupt_bad_body),
      T(test_scan_ignores_foreign_names),
      T(test_invariant2_overwrite),
      T(test_offsets_must_follow_commit),
      T(test_commit_requires_offsets),
      T(test_roll_forward),
      T(test_prune),
      T(test_recovery_decide),
      T(test_recovery_positions),
      T(test_metadata_job_mismatch),
      T(test_unwritable_dir),
      T(test_show),
      T(test_trailing_slash_and_dir),
      T(test_assert_invariants_aborts),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
