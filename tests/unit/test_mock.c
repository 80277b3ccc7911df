/* test_mock.c - the embedded Kafka cluster's sockets: every broker answers
 * with TCP_NODELAY, so that no answer waits for a delayed ACK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sources/kafka/kafka.h"

static int local_port(int fd) {
  struct sockaddr_in sa;
  socklen_t n = sizeof(sa);
  if (getsockname(fd, (struct sockaddr *)&sa, &n) || sa.sin_family != AF_INET)
    return -1;
  return ntohs(sa.sin_port);
}

static int peer_port(int fd) {
  struct sockaddr_in sa;
  socklen_t n = sizeof(sa);
  if (getpeername(fd, (struct sockaddr *)&sa, &n) || sa.sin_family != AF_INET)
    return -1;
  return ntohs(sa.sin_port);
}

/* The broker's end of the connection from client_port, once the mock's
 * thread has accepted it; -1 if it has not yet. */
static int accepted_end(int broker_port, int client_port) {
  int found = -1;
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  for (struct dirent *e; (e = readdir(d));) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
        local_port(fd) == broker_port && peer_port(fd) == client_port)
      found = fd;
  }
  closedir(d);
  return found;
}

static int nodelay(int fd) {
  int v = -1;
  socklen_t n = sizeof(v);
  assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &n), 0);
  return v;
}

static void brokers_answer_without_nagle(void **state) {
  (void)state;
  struct sl_error err = {0};
  struct sl_mock *m = sl_mock_new(3, &err);
  assert_non_null(m);
  char *list = strdup(sl_mock_bootstraps(m));
  int brokers = 0;
  for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    char *colon = strrchr(tok, ':');
    assert_non_null(colon);
    int port = atoi(colon + 1);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    /* Wait (up to 10 s) for the mock's thread to accept the connection. */
    int end = -1;
    for (int i = 0; i < 10000 && end < 0; i++) {
      end = accepted_end(port, local_port(c));
      if (end < 0)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    assert_true(end >= 0);
    assert_int_equal(nodelay(end), 1);
    /* The client's end is the client's business: untouched. */
    assert_int_equal(nodelay(c), 0);
    close(c);
    brokers++;
  }
  assert_int_equal(brokers, 3);
  free(list);
  sl_mock_destroy(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(brokers_answer_without_nagle),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
