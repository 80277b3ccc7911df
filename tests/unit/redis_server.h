/*
 * redis_server.h - a redis-server of a unit test's own, on a free
 * loopback port, as a cmocka group setup and teardown (start_server,
 * stop_server); cli is the test's own connection to it. Without
 * /usr/bin/redis-server, start_server starts nothing and cli stays NULL.
 * Included by one test file each (its state is static).
 */
#ifndef SL_TEST_REDIS_SERVER_H
#define SL_TEST_REDIS_SERVER_H

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t server;
static int port;
static redisContext *cli; /* the test's own look at Redis */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
      getsockname(fd, (struct sockaddr *)&a, &len))
    return -1;
  close(fd);
  return ntohs(a.sin_port);
}

static int start_server(void **state) {
  (void)state;
  if (access("/usr/bin/redis-server", X_OK) != 0)
    return 0;
  port = free_port();
  char p[16];
  snprintf(p, sizeof(p), "%d", port);
  server = fork();
  if (server == 0) {
    execl("/usr/bin/redis-server", "redis-server", "--port", p, "--bind",
          "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel",
          "warning", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) {
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
    cli = redisConnect("127.0.0.1", port);
    if (cli && !cli->err)
      return 0;
    if (cli)
      redisFree(cli);
    cli = NULL;
  }
  return -1;
}

static int stop_server(void **state) {
  (void)state;
  if (cli)
    redisFree(cli);
  if (server > 0) {
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);
  }
  return 0;
}

#endif
