/* cmd_run.c - `sluice run` and `sluice validate`. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../config/diags.h"
#include "cli.h"
#include "engine.h"
#include "job.h"
#include "log.h"
#include "progress.h"
#include "util.h"

static const char run_help[] =
    "usage: sluice run JOB.yaml [options]\n"
    "\n"
    "Runs a job until it is stopped (SIGINT/SIGTERM: the batch in progress\n"
    "finishes and commits; a second signal exits at once), or, with the\n"
    "available-now trigger, until what was there at start is processed.\n"
    "\n"
    "  --set PATH=VALUE       override a key of the job file (repeatable),\n"
    "                         e.g. --set source.kafka.brokers=host:9092\n"
    "  --trigger MODE         available-now or interval (overrides the file)\n"
    "  --progress FORMAT      text (default), json (one object per batch,\n"
    "                         Spark StreamingQueryProgress fields) or none\n"
    "  --log-level LEVEL      error, warn, info (default) or debug\n"
    "  --log-format FORMAT    text (default) or json (one object per line:\n"
    "                         ts, level, msg; progress then defaults to json)\n"
    "  --dry-run              connect to the source and the sink, say what a\n"
    "                         run would do, and exit (writes nothing)\n"
    "  --recover-from-sink    when the sink is behind the checkpoint (it lost\n"
    "                         data), continue from the sink's own offsets\n"
    "                         instead of stopping (stateless jobs)\n"
    "  --help                 this text\n"
    "\n"
    "Exit status: 0 done or stopped, 1 failed, 64 usage, 78 invalid job.\n";

static const char validate_help[] =
    "usage: sluice validate JOB.yaml [--set PATH=VALUE]... [--print]\n"
    "\n"
    "Checks a job file without connecting to anything: YAML syntax, known\n"
    "keys, types, required keys, environment variables. Errors are\n"
    "printed as file:line:col: message.\n"
    "\n"
    "  --print    write the job as it will run: every setting with its\n"
    "             default filled in, variables expanded, secrets masked\n"
    "\n"
    "Exit status: 0 valid, 78 invalid, 64 usage.\n";

struct common_args {
  char **sets;
  size_t nsets;
  const char *file;
};

static void add_set(struct common_args *a, char *s) {
  a->sets = sl_realloc(a->sets, (a->nsets + 1) * sizeof(*a->sets));
  a->sets[a->nsets++] = s;
}

/* Loads the job file; on failure prints every error it has, in file
 * order (config/diags.h), not only the first. */
static int load_job(const char *verb, struct common_args *a,
                    struct sl_job *job) {
  struct sl_error err = {0};
  struct sl_cfg_diags *d = sl_cfg_diags_begin();
  int rc = sl_job_load(a->file, a->sets, a->nsets, job, &err);
  if (rc) {
    if (sl_cfg_diags_count(d))
      sl_cfg_diags_print(d, stderr, SL_CFG_DIAGS_MAX);
    else
      fprintf(stderr, "%s\n", err.msg);
  }
  sl_cfg_diags_end(d);
  (void)verb;
  if (rc)
    return rc == SL_ERR_IO ? SL_EXIT_FAIL : SL_EXIT_CONFIG;
  return 0;
}

int sl_cmd_validate(int argc, char **argv) {
  static const struct option opts[] = {{"set", required_argument, 0, 's'},
                                       {"print", no_argument, 0, 'P'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  struct common_args a = {0};
  bool print = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      add_set(&a, optarg);
      break;
    case 'P':
      print = true;
      break;
    case 'h':
      fputs(validate_help, stdout);
      free(a.sets);
      return SL_EXIT_OK;
    default:
      free(a.sets);
      return sl_cli_usage_error("validate", "unknown option '%s'",
                                argv[optind - 1]);
    }
  }
  if (optind != argc - 1) {
    free(a.sets);
    return sl_cli_usage_error("validate", "expected one JOB.yaml argument");
  }
  a.file = argv[optind];
  struct sl_job job;
  int rc = load_job("validate", &a, &job);
  free(a.sets);
  if (rc)
    return rc;
  if (print) {
    printf("# %s, as it will run (defaults filled in, secrets masked)\n",
           a.file);
    sl_job_print(&job, stdout);
    sl_job_free(&job);
    return SL_EXIT_OK;
  }
  unsigned flags = job.sink_plugin->conf_flags
                       ? job.sink_plugin->conf_flags(job.sink_conf)
                       : job.sink_plugin->flags;
  printf("%s: valid: job '%s', source %s, sink %s%s\n", a.file, job.id,
         job.source_plugin->name, job.sink_plugin->name,
         flags & SL_SINK_EXACTLY_ONCE ? " (exactly-once)" : " (at-least-once)");
  sl_job_free(&job);
  return SL_EXIT_OK;
}

/* The signal thread: SIGINT and SIGTERM are blocked everywhere and taken
 * here with sigwait, so no code runs in a signal handler. The first
 * signal asks the engine to stop after the batch in progress; the second
 * exits at once (the checkpoint is safe at any instant: every file is
 * written with rename, see checkpoint/fsio.h). */
static void *signal_thread(void *arg) {
  sigset_t *set = arg;
  int sig, count = 0;
  for (;;) {
    if (sigwait(set, &sig) != 0)
      continue;
    if (++count == 1) {
      sl_info("%s received: finishing the batch in progress (send it "
              "again to exit at once)",
              sig == SIGINT ? "SIGINT" : "SIGTERM");
      sl_engine_request_stop();
    } else {
      static const char msg[] = "sluice: exiting at once\n";
      if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
        _exit(130);
      _exit(130);
    }
  }
  return NULL;
}

void sl_cli_start_signal_thread(void);
void sl_cli_start_signal_thread(void) {
  static sigset_t set;
  pthread_t th;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  if (pthread_create(&th, NULL, signal_thread, &set) == 0)
    pthread_detach(th);
}

int sl_cmd_run(int argc, char **argv) {
  static const struct option opts[] = {
      {"set", required_argument, 0, 's'},
      {"trigger", required_argument, 0, 't'},
      {"progress", required_argument, 0, 'p'},
      {"log-level", required_argument, 0, 'l'},
      {"recover-from-sink", no_argument, 0, 'R'},
      {"log-format", required_argument, 0, 'F'},
      {"dry-run", no_argument, 0, 'D'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  struct common_args a = {0};
  struct sl_run_opts ro = {.progress = SL_PROGRESS_TEXT};
  const char *trigger = NULL;
  bool progress_set = false;
  int c, rc;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "s:t:p:l:h", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      add_set(&a, optarg);
      break;
    case 'R':
      ro.recover_from_sink = true;
      break;
    case 'D':
      ro.dry_run = true;
      break;
    case 'F':
      if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
        free(a.sets);
        return sl_cli_usage_error(
            "run", "--log-format must be text or json, not '%s'", optarg);
      }
      sl_log_set_json(strcmp(optarg, "json") == 0);
      if (sl_log_json() && !progress_set)
        ro.progress = SL_PROGRESS_JSON;
      break;
    case 't':
      if (strcmp(optarg, "available-now") != 0 &&
          strcmp(optarg, "interval") != 0) {
        free(a.sets);
        return sl_cli_usage_error("run",
                                  "--trigger must be available-now or "
                                  "interval, not '%s'",
                                  optarg);
      }
      trigger = optarg;
      break;
    case 'p':
      progress_set = true;
      if (strcmp(optarg, "text") == 0)
        ro.progress = SL_PROGRESS_TEXT;
      else if (strcmp(optarg, "json") == 0)
        ro.progress = SL_PROGRESS_JSON;
      else if (strcmp(optarg, "none") == 0)
        ro.progress = SL_PROGRESS_NONE;
      else {
        free(a.sets);
        return sl_cli_usage_error(
            "run", "--progress must be text, json or none, not '%s'", optarg);
      }
      break;
    case 'l': {
      enum sl_log_level lv;
      if (sl_log_parse_level(optarg, &lv)) {
        free(a.sets);
        return sl_cli_usage_error("run",
                                  "--log-level must be error, warn, info or "
                                  "debug, not '%s'",
                                  optarg);
      }
      sl_log_set_level(lv);
      break;
    }
    case 'h':
      fputs(run_help, stdout);
      free(a.sets);
      return SL_EXIT_OK;
    default:
      free(a.sets);
      return sl_cli_usage_error("run", "unknown option or missing value: '%s'",
                                argv[optind - 1]);
    }
  }
  if (optind != argc - 1) {
    free(a.sets);
    return sl_cli_usage_error("run", "expected one JOB.yaml argument");
  }
  a.file = argv[optind];
  sl_cli_start_signal_thread();
  struct sl_job job;
  rc = load_job("run", &a, &job);
  free(a.sets);
  if (rc)
    return rc;
  if (trigger) { /* replaces the file's trigger, continuous included */
    job.trigger.available_now = strcmp(trigger, "available-now") == 0;
    job.trigger.continuous_ns = 0;
  }
  struct sl_error err = {0};
  sl_info("job '%s': %s -> %s, %lld workers, checkpoint %s", job.id,
          job.source_plugin->name, job.sink_plugin->name,
          (long long)job.workers, job.checkpoint.dir);
  /* On a terminal, text progress is one status line redrawn in place
   * (not when the console sink prints records to the same terminal). */
  bool console_here =
      strcmp(job.sink_plugin->name, "console") == 0 && isatty(STDOUT_FILENO);
  sl_progress_set_tty(ro.progress == SL_PROGRESS_TEXT && !sl_log_json() &&
                      isatty(STDERR_FILENO) && !console_here);
  rc = sl_engine_run(&job, &ro, &err);
  sl_job_free(&job);
  if (rc) {
    sl_error_log("%s", err.msg);
    return SL_EXIT_FAIL;
  }
  return SL_EXIT_OK;
}
