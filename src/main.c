/* main.c - `sluice VERB ...`: dispatches to the verbs of cli.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "failpoint.h"
#include "util.h"

static const char usage[] =
    "usage: sluice VERB [options]\n"
    "\n"
    "A micro-batch stream processor with exactly-once results.\n"
    "\n"
    "verbs:\n"
    "  run JOB.yaml          run a job\n"
    "  validate JOB.yaml     check a job file (exit 0 valid, 78 invalid)\n"
    "  test JOB.yaml         run the job file's tests: block in memory\n"
    "  mock-kafka            run an embedded Kafka cluster on loopback\n"
    "  produce               write generated clickstream records to Kafka\n"
    "  checkpoint show DIR   show what a checkpoint directory holds\n"
    "  failpoints            list the crash points (SLUICE_FAILPOINTS)\n"
    "\n"
    "  --version             print the version\n"
    "  --help                this text; `sluice VERB --help` for a verb\n";

int sl_cli_usage_error(const char *verb, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "sluice %s: ", verb);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nsee `sluice %s --help`\n", verb);
  return SL_EXIT_USAGE;
}

int main(int argc, char **argv) {
  sl_mark_process_start();
  if (argc < 2) {
    fputs(usage, stderr);
    return SL_EXIT_USAGE;
  }
  const char *verb = argv[1];
  struct sl_error err = {0};
  if (sl_failpoints_arm_env(&err)) {
    fprintf(stderr, "sluice: %s\n", err.msg);
    return SL_EXIT_USAGE;
  }
  if (strcmp(verb, "failpoints") == 0) {
    sl_failpoints_print(stdout);
    return SL_EXIT_OK;
  }
  if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 ||
      strcmp(verb, "help") == 0) {
    fputs(usage, stdout);
    return SL_EXIT_OK;
  }
  if (strcmp(verb, "--version") == 0 || strcmp(verb, "version") == 0) {
    printf("sluice %s\n", SLUICE_VERSION);
    return SL_EXIT_OK;
  }
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } verbs[] = {{"run", sl_cmd_run},         {"validate", sl_cmd_validate},
               {"test", sl_cmd_test},       {"mock-kafka", sl_cmd_mock_kafka},
               {"produce", sl_cmd_produce}, {"checkpoint", sl_cmd_checkpoint}};
  for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
    if (strcmp(verb, verbs[i].name) == 0)
      return verbs[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "sluice: unknown verb '%s'\n\n%s", verb, usage);
  return SL_EXIT_USAGE;
}
