/* seed_body.c - the seeds of fuzz_snapshot taken apart from real window
 * state files (make_seeds.sh):
 *   seed_body list PACK         the shards of a pack state/N/shards and
 *                               their image sizes, one "shard bytes" a line
 *   seed_body image PACK SHARD  the image of SHARD (the body of what the
 *                               old layout's file state/N/<shard> held)
 *   seed_body raw PACK SHARD    its raw body (image header, LZ4 block and
 *                               CRC undone, by checkpoint/snapshot.c with
 *                               all its checks), for the mode-2 seeds
 * PACK is read as the engine reads it (checkpoint/state.c), its directory
 * state/N being a checkpoint directory's, so DIR/state/N/shards. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/fsio.h"
#include "checkpoint/snapshot.h"
#include "checkpoint/state.h"
#include "src/util.h"

static int usage(void) {
  fprintf(stderr, "usage: seed_body list PACK | image PACK SHARD | "
                  "raw PACK SHARD\n");
  return 2;
}

int main(int argc, char **argv) {
  struct sl_error err = {0};
  if (argc < 3 || (strcmp(argv[1], "list") != 0 && argc != 4))
    return usage();
  /* PACK is DIR/state/N/shards. */
  char *path = sl_strdup(argv[2]);
  char *slash = strrchr(path, '/');
  if (!slash)
    return usage();
  *slash = '\0';
  slash = strrchr(path, '/');
  if (!slash)
    return usage();
  uint64_t batch = strtoull(slash + 1, NULL, 10);
  *slash = '\0';
  slash = strrchr(path, '/');
  if (!slash || strcmp(slash + 1, "state") != 0)
    return usage();
  *slash = '\0';
  /* The store opens for the job its metadata names. */
  char *meta = sl_asprintf("%s/metadata", path), *data;
  size_t mlen, blen;
  if (sl_fsio_read_file(meta, &data, &mlen, &err) ||
      sl_fsio_unseal(meta, data, mlen, &blen, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  cJSON *m = cJSON_ParseWithLength(data, blen);
  const cJSON *job = cJSON_GetObjectItemCaseSensitive(m, "job");
  struct sl_ckpt *ck;
  struct sl_state_reader r;
  if (!cJSON_IsString(job) || sl_ckpt_open(path, job->valuestring, &ck, &err)) {
    fprintf(stderr, "%s: %s\n", path, err.msg[0] ? err.msg : "no job");
    return 1;
  }
  cJSON_Delete(m);
  free(data);
  free(meta);
  if (sl_state_reader_open(ck, batch, &r, &err) || !r.pack) {
    fprintf(stderr, "%s: %s\n", argv[2], r.pack ? err.msg : "not a pack");
    return 1;
  }
  int rc = 0;
  if (strcmp(argv[1], "list") == 0) {
    for (uint32_t i = 0; i < r.count; i++) {
      const unsigned char *e = r.table + (size_t)i * SL_STATE_PACK_ENTRY;
      printf("%" PRIu32 " %" PRIu64 "\n", sl_snap_ld_u32(e),
             sl_snap_ld_u64(e + 16));
    }
  } else {
    unsigned shard = (unsigned)strtoul(argv[3], NULL, 10);
    const void *img;
    size_t len;
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    if (sl_state_reader_shard(&r, shard, &img, &len, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      rc = 1;
    } else if (strcmp(argv[1], "image") == 0) {
      fwrite(img, 1, len, stdout);
    } else if (strcmp(argv[1], "raw") == 0 &&
               !sl_snap_open(shard, img, len, &raw, &rawlen, &err)) {
      fwrite(raw, 1, rawlen, stdout);
    } else {
      fprintf(stderr, "%s: %s\n", argv[2], err.msg[0] ? err.msg : "usage");
      rc = 1;
    }
    free(raw);
  }
  sl_state_reader_close(&r);
  sl_ckpt_close(ck);
  free(path);
  return rc;
}
