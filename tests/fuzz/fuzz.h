/* fuzz.h - what the libFuzzer targets share: a private scratch directory
 * per process, whole-file writes, and removing a tree again. */
#ifndef SL_FUZZ_H
#define SL_FUZZ_H

#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void fuzz_rmtree(const char *path);
static char fuzz_scratch_dir[512];
static inline void fuzz_scratch_remove(void) {
  fuzz_rmtree(fuzz_scratch_dir);
}

/* A fresh directory under /dev/shm, $TMPDIR or /tmp for this process;
 * its path stays valid for the life of the process. */
static inline const char *fuzz_scratch(void) {
  char *dir = fuzz_scratch_dir;
  if (!dir[0]) {
    /* tmpfs when there is one: the file targets spend their time in
     * the file system */
    const char *tmp =
        access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(dir, sizeof(fuzz_scratch_dir), "%s/sluice-fuzz-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
      perror(dir);
      abort();
    }
    atexit(fuzz_scratch_remove);
  }
  return dir;
}

/* Writes n bytes to path (created or truncated); aborts on failure: the
 * scratch directory is ours, a failure is the harness's bug. */
static inline void fuzz_write(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) {
    perror(path);
    abort();
  }
}

static inline int fuzz_rm_one(const char *path, const struct stat *st, int flag,
                              struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

/* rm -rf path. */
static void fuzz_rmtree(const char *path) {
  nftw(path, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The harnesses are quiet: errors are the expected outcome of most
 * inputs. */
static inline void fuzz_quiet(void) {
  sl_log_set_level(SL_LOG_ERROR);
}

#endif
