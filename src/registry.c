/* registry.c - the compiled-in plugins, and those left out of this build. */
#include <string.h>

#include "plugin.h"

/* CMake defines both to 1 or 0 (SLUICE_WITH_REDIS, SLUICE_WITH_KAFKA_SINK
 * options). */
#if !defined(SLUICE_WITH_REDIS) || !defined(SLUICE_WITH_KAFKA_SINK)
#error "SLUICE_WITH_REDIS and SLUICE_WITH_KAFKA_SINK must be defined"
#endif

extern const struct sl_source_plugin sl_source_kafka;
extern const struct sl_sink_plugin sl_sink_console;
extern const struct sl_sink_plugin sl_sink_file;
#if SLUICE_WITH_KAFKA_SINK
extern const struct sl_sink_plugin sl_sink_kafka;
#endif
#if SLUICE_WITH_REDIS
extern const struct sl_sink_plugin sl_sink_redis;
#endif

const struct sl_source_plugin *const sl_source_plugins[] = {&sl_source_kafka,
                                                            NULL};
const struct sl_sink_plugin *const sl_sink_plugins[] = {&sl_sink_console,
                                                        &sl_sink_file,
#if SLUICE_WITH_KAFKA_SINK
                                                        &sl_sink_kafka,
#endif
#if SLUICE_WITH_REDIS
                                                        &sl_sink_redis,
#endif
                                                        NULL};

/* Sinks this build was configured without, and the option that adds them. */
const struct sl_plugin_omitted sl_sink_plugins_omitted[] = {
#if !SLUICE_WITH_KAFKA_SINK
    {"kafka", "SLUICE_WITH_KAFKA_SINK"},
#endif
#if !SLUICE_WITH_REDIS
    {"redis", "SLUICE_WITH_REDIS"},
#endif
    {NULL, NULL}};

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

const char *sl_sink_omitted(const char *name) {
  for (size_t i = 0; sl_sink_plugins_omitted[i].name; i++)
    if (strcmp(sl_sink_plugins_omitted[i].name, name) == 0)
      return sl_sink_plugins_omitted[i].option;
  return NULL;
}
