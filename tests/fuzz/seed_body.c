/* seed_body.c - `seed_body FILE`: writes the raw body of a window state
 * shard file (state/N/<shard>: image header, LZ4 block, envelope) to
 * stdout, for the mode-2 seeds of fuzz_snapshot (make_seeds.sh). */
#include <lz4.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/fsio.h"

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
  const unsigned char *img = (const unsigned char *)data;
  uint64_t raw = 0;
  for (int i = 0; i < 8 && body >= 24; i++)
    raw |= (uint64_t)img[8 + i] << (8 * i);
  if (body < 24 || memcmp(img, "SLWZ", 4) || raw > (1u << 30)) {
    fprintf(stderr, "%s: not a window state image\n", argv[1]);
    return 1;
  }
  char *out = malloc(raw ? raw : 1);
  int d = LZ4_decompress_safe(data + 24, out, (int)(body - 24), (int)raw);
  if (!out || d < 0 || (uint64_t)d != raw) {
    fprintf(stderr, "%s: damaged LZ4 block\n", argv[1]);
    return 1;
  }
  fwrite(out, 1, raw, stdout);
  free(out);
  free(data);
  return 0;
}
