/* registry.c - the compiled-in plugins. */
#include <string.h>

#include "plugin.h"

extern const struct sl_source_plugin sl_source_kafka;
extern const struct sl_sink_plugin sl_sink_console;
extern const struct sl_sink_plugin sl_sink_file;
extern const struct sl_sink_plugin sl_sink_kafka;
extern const struct sl_sink_plugin sl_sink_redis;

const struct sl_source_plugin *const sl_source_plugins[] = {&sl_source_kafka,
                                                            NULL};
const struct sl_sink_plugin *const sl_sink_plugins[] = {
    &sl_sink_console, &sl_sink_file, &sl_sink_kafka, &sl_sink_redis, NULL};

const struct sl_source_plugin *sl_source_find(const char *name) {
  for (size_t i = 0; sl_source_plugins[i]; i++)
    if (strcmp(sl_source_plugins[i]->name, name) == 0)
      return sl_source_plugins[i];
  return NULL;
}

const struct sl_sink_plugin *sl_sink_find(const char *name) {
  for (size_t i = 0; sl_sink_plugins[i]; i++)
    if (strcmp(sl_sink_plugins[i]->name, name) == 0)
      return sl_sink_plugins[i];
  return NULL;
}
