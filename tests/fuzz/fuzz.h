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

/* A fresh directory under $TMPDIR (or /tmp) for this process; its path
 * stays valid for the life of the process. */
static inline const char *fuzz_scratch(void) {
  static char dir[512];
  if (!dir[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/sluice-fuzz-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
      perror(dir);
      abort();
    }
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
static inline void fuzz_rmtree(const char *path) {
  nftw(path, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The harnesses are quiet: errors are the expected outcome of most
 * inputs. */
static inline void fuzz_quiet(void) {
  sl_log_set_level(SL_LOG_ERROR);
}

#endif
