/*
 * console.c - prints each batch's output to stdout.
 *
 * At-least-once: stdout cannot take back what it printed, so a batch that
 * is re-run after a crash is printed again. Stages keep at most `limit`
 * records each (copied, since the source's bytes are released after each
 * chunk); commit prints the batch in task order under a header, like
 * Spark's console sink. Under the continuous trigger each group of
 * records is printed as it arrives (stream_write).
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/buf.h"
#include "../../src/plugin.h"
#include "../../src/util.h"

struct console_conf {
  struct sl_sink_common common; /* first: the engine reads it */
  int64_t limit;
};

static const struct sl_cfg_field console_map[] = {
    {.key = "limit",
     .type = SL_CFG_T_INT,
     .def = "20",
     .offset = offsetof(struct console_conf, limit),
     .desc = "records shown per batch (0: all)",
     .min = 0,
     .max = INT64_MAX},
    {0}};

struct console_stage {
  int64_t limit;     /* what this stage keeps (0: all) */
  int64_t total;     /* records staged, kept or not */
  struct sl_buf buf; /* kept records, one per line */
};

static int console_init(struct sl_sink *sink, struct sl_error *err) {
  (void)sink;
  (void)err;
  return 0;
}

static int console_stage_open(struct sl_sink *sink, uint64_t batch,
                              uint32_t task, void **stage,
                              struct sl_error *err) {
  const struct console_conf *c = sink->conf;
  struct console_stage *s = sl_calloc(1, sizeof(*s));
  (void)batch;
  (void)task;
  (void)err;
  s->limit = c->limit;
  *stage = s;
  return 0;
}

static int console_stage_write(void *stage, const struct sl_batch *b,
                               struct sl_rejects *rejects,
                               struct sl_error *err) {
  (void)rejects; /* every record can be written */
  struct console_stage *s = stage;
  (void)err;
  for (size_t i = 0; i < b->n; i++, s->total++) {
    if (s->limit && s->total >= s->limit)
      continue;
    const struct sl_record *r = &b->recs[i];
    if (r->value)
      sl_buf_add(&s->buf, r->value, r->value_len);
    else
      sl_buf_add(&s->buf, "null", 4);
    sl_buf_add(&s->buf, "\n", 1);
  }
  return 0;
}

static int console_stage_close(void *stage, struct sl_error *err) {
  (void)stage;
  (void)err;
  return 0;
}

static int console_commit(struct sl_sink *sink, const struct sl_plan *plan,
                          void *const *stages, size_t n, struct sl_error *err) {
  const struct console_conf *c = sink->conf;
  int64_t total = 0, shown = 0;
  (void)err;
  if (sink->run->continuous && n == 0)
    return 0; /* an epoch: its records were printed as they came */
  printf("-------------------------------------------\n");
  printf("Batch: %llu\n", (unsigned long long)plan->batch);
  printf("-------------------------------------------\n");
  for (size_t i = 0; i < n; i++) {
    const struct console_stage *s = stages[i];
    const char *p = s->buf.p, *end = s->buf.p + s->buf.len;
    total += s->total;
    while (p && p < end && (c->limit == 0 || shown < c->limit)) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      fwrite(p, 1, (size_t)(nl - p) + 1, stdout);
      p = nl + 1;
      shown++;
    }
  }
  if (total > shown)
    printf("... %lld more records (sink.console.limit: %lld)\n",
           (long long)(total - shown), (long long)c->limit);
  fflush(stdout);
  return 0;
}

/* The continuous trigger: each group is printed when it arrives (no
 * limit, no batch header; the console is at-least-once either way). */
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static int console_stream_open(struct sl_sink *sink, uint32_t task,
                               void **stream, struct sl_error *err) {
  (void)task;
  (void)err;
  *stream = sink;
  return 0;
}

static int console_stream_write(void *stream, const struct sl_batch *b,
                                const struct sl_stream_mark *marks,
                                size_t nmarks, struct sl_rejects *rejects,
                                struct sl_error *err) {
  (void)stream;
  (void)marks;
  (void)nmarks;
  (void)rejects;
  (void)err;
  if (b->n == 0)
    return 0;
  /* One group at a time, whole lines (streams run on several workers). */
  pthread_mutex_lock(&out_mu);
  for (size_t i = 0; i < b->n; i++) {
    const struct sl_record *r = &b->recs[i];
    if (r->value)
      fwrite(r->value, 1, r->value_len, stdout);
    else
      fputs("null", stdout);
    putc('\n', stdout);
  }
  fflush(stdout);
  pthread_mutex_unlock(&out_mu);
  return 0;
}

static void console_stream_close(struct sl_sink *sink, void *stream) {
  (void)sink;
  (void)stream;
}

static void console_stage_free(struct sl_sink *sink, void *stage) {
  struct console_stage *s = stage;
  (void)sink;
  if (s)
    sl_buf_free(&s->buf);
  free(s);
}

static const char *console_describe(struct sl_sink *sink) {
  (void)sink;
  return "Console (at-least-once)";
}

static void console_destroy(struct sl_sink *sink) {
  (void)sink;
}

const struct sl_sink_plugin sl_sink_console = {
    .name = "console",
    .config_map = console_map,
    .conf_size = sizeof(struct console_conf),
    .flags = SL_SINK_WRITES_AT_ONCE,
    .init = console_init,
    .last_committed = NULL,
    .stage_open = console_stage_open,
    .stage_write = console_stage_write,
    .stage_close = console_stage_close,
    .commit = console_commit,
    .stage_free = console_stage_free,
    .describe = console_describe,
    .destroy = console_destroy,
    .stream_open = console_stream_open,
    .stream_write = console_stream_write,
    .stream_close = console_stream_close,
};
