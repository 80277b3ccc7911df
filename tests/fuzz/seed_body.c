/* seed_body.c - `seed_body FILE`: writes the raw body of a window state
 * shard file (state/N/<shard>: image header, LZ4 block, envelope) to
 * stdout, for the mode-2 seeds of fuzz_snapshot (make_seeds.sh). The
 * image is opened by checkpoint/snapshot.c, with all its checks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/fsio.h"
#include "checkpoint/snapshot.h"

int main(int argc, char **argv) {
  char *data;
  size_t len, body;
  struct sl_error err = {0};
  if (argc != 2) {
    fprintf(stderr, "usage: seed_body STATE_SHARD_FILE\n");
    return 2;
  }
  if (sl_fsio_read_file(argv[1], &data, &len, &err) ||
      sl_fsio_unseal(argv[1], data, len, &body, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  /* the shard, for the messages: the file's name */
  const char *name = strrchr(argv[1], '/');
  unsigned shard = (unsigned)strtoul(name ? name + 1 : argv[1], NULL, 10);
  unsigned char *raw = NULL;
  size_t rawlen = 0;
  if (sl_snap_open(shard, data, body, &raw, &rawlen, &err)) {
    fprintf(stderr, "%s: %s\n", argv[1], err.msg);
    return 1;
  }
  fwrite(raw, 1, rawlen, stdout);
  free(raw);
  free(data);
  return 0;
}
