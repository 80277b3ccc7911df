/* fuzz_job.c - the YAML job loader: libyaml events to the positioned tree,
 * ${VAR} interpolation, --set overrides, table-driven binding, the job
 * schema with its plugins and pipeline, and `validate --print`.
 *
 * Input: a job file. Lines after a line "#--set" (a YAML comment, so seeds
 * stay job files) are --set assignments, applied in order (at most 8).
 * The variables SLF_BROKERS, SLF_TOPIC, SLF_EMPTY (empty) and SLF_DIR are
 * set; others are unset. The harness runs in its scratch directory, so a
 * relative path of the job stays there. SLF_VERBOSE=1 prints why a job
 * does not load. */
#include <stdlib.h>

#include "src/job.h"
#include "tests/fuzz/fuzz.h"

#define MAX_SETS 8
#define SET_MARK "\n#--set\n"

static char path[600];
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  const char *dir = fuzz_scratch();
  if (chdir(dir)) {
    perror(dir);
    abort();
  }
  snprintf(path, sizeof(path), "%s/job.yaml", dir);
  setenv("SLF_BROKERS", "localhost:9092", 1);
  setenv("SLF_TOPIC", "events", 1);
  setenv("SLF_EMPTY", "", 1);
  setenv("SLF_DIR", "out", 1);
  devnull = fopen("/dev/null", "w");
  if (!devnull)
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  const char *mark = memmem(text, size, SET_MARK, strlen(SET_MARK));
  size_t ylen = mark ? (size_t)(mark - text) + 1 : size;
  fuzz_write(path, text, ylen);

  char *sets[MAX_SETS];
  size_t nsets = 0;
  if (mark) {
    const char *p = mark + strlen(SET_MARK), *end = text + size;
    while (p < end && nsets < MAX_SETS) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
      sets[nsets] = strndup(p, n); /* stops at a NUL, as argv would */
      if (!sets[nsets])
        abort();
      nsets++;
      p += n + 1;
    }
  }

  struct sl_job job;
  struct sl_error err = {0};
  int rc = sl_job_load(path, sets, nsets, &job, &err);
  if (rc == 0) {
    sl_job_print(&job, devnull);
    sl_job_free(&job);
  } else if (!err.msg[0]) {
    abort();                          /* every failure says why */
  } else if (getenv("SLF_VERBOSE")) { /* to check that seeds load */
    fprintf(stderr, "%s\n", err.msg);
  }
  for (size_t i = 0; i < nsets; i++)
    free(sets[i]);
  return 0;
}
