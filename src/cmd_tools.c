/* cmd_tools.c - `sluice mock-kafka`, `sluice produce`,
 * `sluice checkpoint show`. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../checkpoint/checkpoint.h"
#include "../sources/kafka/kafka.h"
#include "cli.h"
#include "log.h"
#include "util.h"

static const char mock_help[] =
    "usage: sluice mock-kafka [--topic NAME:PARTITIONS]... [--brokers N]\n"
    "\n"
    "Runs an embedded Kafka cluster (librdkafka's mock brokers, real Kafka\n"
    "protocol over TCP on 127.0.0.1) until SIGINT or SIGTERM. Prints the\n"
    "bootstrap servers on one line of stdout once the topics exist.\n"
    "Mock partitions keep only a few MB of log each: older records are\n"
    "dropped, as by retention.\n"
    "\n"
    "  --topic NAME:PARTITIONS  create a topic (repeatable; default\n"
    "                           partitions 4 when :PARTITIONS is left out)\n"
    "  --brokers N              number of brokers (default 1)\n"
    "  --control                read commands from stdin, one a line, and\n"
    "                           answer each with one line on stdout:\n"
    "      down N                 broker N (1..brokers, -1 all) drops\n"
    "                             its connections and refuses new ones\n"
    "      up N                   broker N (-1 all) accepts connections\n"
    "                             again\n"
    "      error API CODE [COUNT] the next COUNT requests of API (Produce,\n"
    "                             EndTxn, ... or a number) fail with CODE\n"
    "                             (PRODUCER_FENCED, ... or a number)\n"
    "      delay API MS [COUNT]   every broker answers the next COUNT\n"
    "                             requests of API MS milliseconds late\n"
    "                           answers: \"ok ...\" or \"error: ...\"\n";

static const char produce_help[] =
    "usage: sluice produce --brokers B --topic T --count N [options]\n"
    "\n"
    "Writes deterministic generated clickstream records, JSON objects\n"
    "  "
    "{\"id\":0,\"user\":\"u0042\",\"page\":\"/"
    "p3\",\"event\":\"view\",\"amount\":12.34,"
    "\"ts\":1700000000000}\n"
    "keyed by user, and waits until every one is acknowledged.\n"
    "\n"
    "  --brokers B     bootstrap servers host:port,...\n"
    "  --topic T       topic to write\n"
    "  --count N       number of records\n"
    "  --first I       id of the first record (default 0)\n"
    "  --rate R        records per second (default: as fast as possible)\n"
    "  --seed S        seed of the generator (default 1)\n";

static const char checkpoint_help[] =
    "usage: sluice checkpoint show DIR\n"
    "\n"
    "Shows the job, the last committed batch and the ranges of the last\n"
    "planned batch of a checkpoint directory; reports corrupt files.\n";

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  if (!*s || *s == '-')
    return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end)
    return -1;
  *out = v;
  return 0;
}

/* Serves --control: commands from stdin until SIGINT or SIGTERM (EOF on
 * stdin only ends the commands). The signals arrive on a signalfd, so one
 * poll waits for both. */
static void serve_control(struct sl_mock *m, const sigset_t *set) {
  int sfd = signalfd(-1, set, SFD_CLOEXEC);
  char line[512];
  size_t len = 0;
  bool input = true;
  for (;;) {
    struct pollfd pfd[2] = {
        {.fd = sfd, .events = POLLIN},
        {.fd = input ? STDIN_FILENO : -1, .events = POLLIN}};
    if (poll(pfd, 2, -1) < 0)
      continue; /* EINTR */
    if (pfd[0].revents)
      break;
    if (!pfd[1].revents)
      continue;
    ssize_t got = read(STDIN_FILENO, line + len, sizeof(line) - 1 - len);
    if (got <= 0) {
      input = false;
      continue;
    }
    len += (size_t)got;
    char *nl;
    while ((nl = memchr(line, '\n', len))) {
      char reply[256];
      *nl = '\0';
      sl_mock_control(m, line, reply, sizeof(reply));
      printf("%s\n", reply);
      fflush(stdout);
      len -= (size_t)(nl + 1 - line);
      memmove(line, nl + 1, len);
    }
    if (len == sizeof(line) - 1)
      len = 0; /* an overlong line is dropped */
  }
  close(sfd);
}

int sl_cmd_mock_kafka(int argc, char **argv) {
  static const struct option opts[] = {{"topic", required_argument, 0, 't'},
                                       {"brokers", required_argument, 0, 'b'},
                                       {"control", no_argument, 0, 'c'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  bool control = false;
  char **topics = NULL;
  size_t ntopics = 0;
  uint64_t brokers = 1;
  int c, rc = SL_EXIT_OK;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+t:b:ch", opts, NULL)) != -1) {
    switch (c) {
    case 'c':
      control = true;
      break;
    case 't':
      topics = sl_realloc(topics, (ntopics + 1) * sizeof(*topics));
      topics[ntopics++] = optarg;
      break;
    case 'b':
      if (parse_u64(optarg, &brokers) || brokers < 1 || brokers > 16) {
        free(topics);
        return sl_cli_usage_error(
            "mock-kafka", "--brokers must be 1 to 16, not '%s'", optarg);
      }
      break;
    case 'h':
      fputs(mock_help, stdout);
      free(topics);
      return SL_EXIT_OK;
    default:
      free(topics);
      return sl_cli_usage_error("mock-kafka",
                                "unknown option or missing value: '%s'",
                                argv[optind - 1]);
    }
  }
  if (optind != argc) {
    free(topics);
    return sl_cli_usage_error("mock-kafka", "unexpected argument '%s'",
                              argv[optind]);
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* before librdkafka's threads */
  struct sl_error err = {0};
  struct sl_mock *m = sl_mock_new((int)brokers, &err);
  if (!m) {
    free(topics);
    sl_error_log("%s", err.msg);
    return SL_EXIT_FAIL;
  }
  for (size_t i = 0; i < ntopics; i++) {
    char name[256];
    uint64_t parts = 4;
    const char *colon = strrchr(topics[i], ':');
    size_t n = colon ? (size_t)(colon - topics[i]) : strlen(topics[i]);
    if (n == 0 || n >= sizeof(name) ||
        (colon &&
         (parse_u64(colon + 1, &parts) || parts < 1 || parts > 10000))) {
      rc = sl_cli_usage_error(
          "mock-kafka", "--topic must be NAME:PARTITIONS, not '%s'", topics[i]);
      goto out;
    }
    memcpy(name, topics[i], n);
    name[n] = '\0';
    if (sl_mock_topic_create(m, name, (int)parts, &err)) {
      sl_error_log("%s", err.msg);
      rc = SL_EXIT_FAIL;
      goto out;
    }
  }
  printf("%s\n", sl_mock_bootstraps(m));
  fflush(stdout);
  if (control) {
    serve_control(m, &set);
  } else {
    int sig;
    while (sigwait(&set, &sig) != 0)
      ;
  }
out:
  sl_mock_destroy(m);
  free(topics);
  return rc;
}

int sl_cmd_produce(int argc, char **argv) {
  static const struct option opts[] = {{"brokers", required_argument, 0, 'b'},
                                       {"topic", required_argument, 0, 't'},
                                       {"count", required_argument, 0, 'c'},
                                       {"first", required_argument, 0, 'f'},
                                       {"rate", required_argument, 0, 'r'},
                                       {"seed", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  struct sl_produce_opts o = {.seed = 1};
  bool have_count = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+b:t:c:f:r:s:h", opts, NULL)) != -1) {
    switch (c) {
    case 'b':
      o.brokers = optarg;
      break;
    case 't':
      o.topic = optarg;
      break;
    case 'c':
      if (parse_u64(optarg, &o.count))
        return sl_cli_usage_error("produce", "--count must be a number >= 0");
      have_count = true;
      break;
    case 'f':
      if (parse_u64(optarg, &o.first))
        return sl_cli_usage_error("produce", "--first must be a number >= 0");
      break;
    case 'r': {
      char *end;
      o.rate = strtod(optarg, &end);
      if (*end || o.rate < 0)
        return sl_cli_usage_error("produce",
                                  "--rate must be records per second >= 0");
      break;
    }
    case 's':
      if (parse_u64(optarg, &o.seed))
        return sl_cli_usage_error("produce", "--seed must be a number >= 0");
      break;
    case 'h':
      fputs(produce_help, stdout);
      return SL_EXIT_OK;
    default:
      return sl_cli_usage_error(
          "produce", "unknown option or missing value: '%s'", argv[optind - 1]);
    }
  }
  if (optind != argc)
    return sl_cli_usage_error("produce", "unexpected argument '%s'",
                              argv[optind]);
  if (!o.brokers || !o.topic || !have_count)
    return sl_cli_usage_error("produce",
                              "--brokers, --topic and --count are required");
  struct sl_error err = {0};
  int64_t t0 = sl_mono_ns();
  if (sl_produce_clicks(&o, &err)) {
    sl_error_log("%s", err.msg);
    return SL_EXIT_FAIL;
  }
  double s = (double)(sl_mono_ns() - t0) / 1e9;
  sl_info("produced %llu records to '%s' in %.2f s",
          (unsigned long long)o.count, o.topic, s);
  return SL_EXIT_OK;
}

int sl_cmd_checkpoint(int argc, char **argv) {
  if (argc >= 2 &&
      (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    fputs(checkpoint_help, stdout);
    return SL_EXIT_OK;
  }
  if (argc >= 3 && strcmp(argv[1], "show") == 0 &&
      (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
    fputs(checkpoint_help, stdout);
    return SL_EXIT_OK;
  }
  if (argc != 3 || strcmp(argv[1], "show") != 0)
    return sl_cli_usage_error("checkpoint", "expected: checkpoint show DIR");
  struct sl_error err = {0};
  if (sl_ckpt_show(argv[2], stdout, &err)) {
    sl_error_log("%s", err.msg);
    return SL_EXIT_FAIL;
  }
  return SL_EXIT_OK;
}
