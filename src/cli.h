/*
 * cli.h - the verbs of the sluice command. Each returns the process exit
 * status: 0 ok, 1 failure, 64 usage error, 78 invalid job file.
 */
#ifndef SL_CLI_H
#define SL_CLI_H

#define SL_EXIT_OK     0
#define SL_EXIT_FAIL   1
#define SL_EXIT_USAGE  64 /* EX_USAGE */
#define SL_EXIT_CONFIG 78 /* EX_CONFIG */

int sl_cmd_run(int argc, char **argv);
int sl_cmd_validate(int argc, char **argv);
int sl_cmd_test(int argc, char **argv);
int sl_cmd_mock_kafka(int argc, char **argv);
int sl_cmd_produce(int argc, char **argv);
int sl_cmd_checkpoint(int argc, char **argv);

/* Prints "sluice VERB: message" and a pointer to --help; returns 64. */
int sl_cli_usage_error(const char *verb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
