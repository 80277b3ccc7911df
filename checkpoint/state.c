/* state.c - window state snapshots, see state.h. */
#include "state.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/util.h"
#include "fsio.h"

void sl_state_index_free(struct sl_state_index *x) {
  free(x->shard_batch);
  memset(x, 0, sizeof(*x));
}

static char *batch_dir(struct sl_ckpt *ck, uint64_t batch) {
  return sl_asprintf("%s/state/%" PRIu64, sl_ckpt_dir(ck), batch);
}

static int write_sealed(struct sl_ckpt *ck, uint64_t batch, const char *name,
                        const void *data, size_t len, struct sl_error *err) {
  char *dir = batch_dir(ck, batch);
  size_t slen;
  int rc = sl_fsio_mkdirs_private(dir, err);
  if (!rc) {
    char *sealed = sl_fsio_seal(data, len, &slen);
    rc = sl_fsio_write_atomic(dir, name, sealed, slen, "checkpoint.state", err);
    free(sealed);
  }
  free(dir);
  return rc;
}

static int read_sealed(struct sl_ckpt *ck, uint64_t batch, const char *name,
                       char **data, size_t *len, struct sl_error *err) {
  char *dir = batch_dir(ck, batch);
  char *path = sl_asprintf("%s/%s", dir, name);
  size_t flen;
  int rc = sl_fsio_read_file(path, data, &flen, err);
  if (!rc && (rc = sl_fsio_unseal(path, *data, flen, len, err))) {
    free(*data);
    *data = NULL;
  }
  free(path);
  free(dir);
  return rc;
}

int sl_ckpt_state_write_shard(struct sl_ckpt *ck, uint64_t batch,
                              unsigned shard, const void *data, size_t len,
                              struct sl_error *err) {
  char name[16];
  snprintf(name, sizeof(name), "%u", shard);
  return write_sealed(ck, batch, name, data, len, err);
}

int sl_ckpt_state_write_index(struct sl_ckpt *ck,
                              const struct sl_state_index *x,
                              struct sl_error *err) {
  /* Numbers are written as text: watermarks can be INT64_MIN, beyond
   * what a JSON double holds exactly. */
  cJSON *o = cJSON_CreateObject();
  char num[32];
  cJSON_AddNumberToObject(o, "batch", (double)x->batch);
  snprintf(num, sizeof(num), "%" PRId64, x->watermark);
  cJSON_AddStringToObject(o, "watermark", num);
  snprintf(num, sizeof(num), "%" PRId64, x->max_event);
  cJSON_AddStringToObject(o, "max_event", num);
  cJSON *a = cJSON_AddArrayToObject(o, "shards");
  for (unsigned s = 0; s < x->nshards; s++)
    cJSON_AddItemToArray(a, cJSON_CreateNumber((double)x->shard_batch[s]));
  char *body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  size_t n = strlen(body);
  body = sl_realloc(body, n + 2);
  body[n++] = '\n';
  int rc = write_sealed(ck, x->batch, "index", body, n, err);
  cJSON_free(body);
  return rc;
}

/* A batch number of the index: an integral JSON number in [0, max]
 * (max < 2^53, where doubles are exact), checked before it is converted
 * (a cast of an out-of-range double is undefined). */
static bool batch_number(const cJSON *j, uint64_t max, uint64_t *out) {
  if (!cJSON_IsNumber(j))
    return false;
  double d = j->valuedouble;
  if (!(d >= 0 && d <= (double)max)) /* also rejects NaN */
    return false;
  uint64_t v = (uint64_t)d;
  if ((double)v != d)
    return false;
  *out = v;
  return true;
}

static int parse_i64(const cJSON *j, int64_t *out) {
  if (!cJSON_IsString(j))
    return -1;
  char *end;
  errno = 0;
  long long v = strtoll(j->valuestring, &end, 10);
  if (errno || *end || end == j->valuestring)
    return -1;
  *out = v;
  return 0;
}

int sl_ckpt_state_read_index(struct sl_ckpt *ck, uint64_t batch,
                             struct sl_state_index *x, struct sl_error *err) {
  char *data;
  size_t len;
  memset(x, 0, sizeof(*x));
  int rc = read_sealed(ck, batch, "index", &data, &len, err);
  if (rc)
    return rc;
  cJSON *o = cJSON_ParseWithLength(data, len);
  free(data);
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "batch");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shards");
  uint64_t ib;
  if (!o || !batch_number(b, batch, &ib) || ib != batch ||
      parse_i64(cJSON_GetObjectItemCaseSensitive(o, "watermark"),
                &x->watermark) ||
      parse_i64(cJSON_GetObjectItemCaseSensitive(o, "max_event"),
                &x->max_event) ||
      !cJSON_IsArray(sh)) {
    cJSON_Delete(o);
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "%s/state/%" PRIu64 "/index: malformed (file is "
                        "corrupt)",
                        sl_ckpt_dir(ck), batch);
  }
  x->batch = batch;
  x->nshards = (unsigned)cJSON_GetArraySize(sh);
  x->shard_batch = sl_calloc(x->nshards ? x->nshards : 1, sizeof(uint64_t));
  const cJSON *v;
  unsigned i = 0;
  cJSON_ArrayForEach(v, sh) {
    if (!batch_number(v, batch, &x->shard_batch[i])) {
      cJSON_Delete(o);
      sl_state_index_free(x);
      return sl_error_set(err, SL_ERR_CORRUPT,
                          "%s/state/%" PRIu64 "/index: bad shard reference",
                          sl_ckpt_dir(ck), batch);
    }
    i++;
  }
  cJSON_Delete(o);
  return 0;
}

int sl_ckpt_state_read_shard(struct sl_ckpt *ck, uint64_t file_batch,
                             unsigned shard, void **data, size_t *len,
                             struct sl_error *err) {
  char name[16];
  char *d;
  snprintf(name, sizeof(name), "%u", shard);
  int rc = read_sealed(ck, file_batch, name, &d, len, err);
  if (rc == SL_ERR_NOTFOUND)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "%s/state/%" PRIu64 "/%u is missing but an index "
                        "refers to it",
                        sl_ckpt_dir(ck), file_batch, shard);
  *data = rc ? NULL : d;
  return rc;
}

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.' &&
        (de->d_name[1] == '\0' ||
         (de->d_name[1] == '.' && de->d_name[2] == '\0')))
      continue;
    char *p = sl_asprintf("%s/%s", dir, de->d_name);
    unlink(p);
    free(p);
  }
  closedir(d);
  rmdir(dir);
}

int sl_ckpt_state_prune(struct sl_ckpt *ck, uint64_t oldest, uint64_t newest,
                        struct sl_error *err) {
  char *root = sl_asprintf("%s/state", sl_ckpt_dir(ck));
  DIR *d = opendir(root);
  if (!d) {
    free(root);
    return 0; /* no state at all */
  }
  /* Which batches' files do the indexes from `oldest` on still need? */
  size_t nkeep = 0, capkeep = 0;
  uint64_t *keep = NULL;
  for (uint64_t b = oldest; b && b <= newest; b++) {
    struct sl_state_index x;
    struct sl_error e = {0};
    if (sl_ckpt_state_read_index(ck, b, &x, &e))
      continue;
    for (unsigned s = 0; s < x.nshards; s++) {
      if (nkeep == capkeep) {
        capkeep = capkeep ? capkeep * 2 : 64;
        keep = sl_realloc(keep, capkeep * sizeof(*keep));
      }
      keep[nkeep++] = x.shard_batch[s];
    }
    sl_state_index_free(&x);
  }
  struct dirent *de;
  while ((de = readdir(d))) {
    char *end;
    errno = 0;
    unsigned long long b = strtoull(de->d_name, &end, 10);
    if (errno || *end || de->d_name[0] < '0' || de->d_name[0] > '9' ||
        b >= oldest)
      continue;
    bool needed = false;
    for (size_t i = 0; i < nkeep && !needed; i++)
      needed = keep[i] == b;
    if (!needed) {
      char *dir = sl_asprintf("%s/%s", root, de->d_name);
      remove_dir(dir);
      free(dir);
    }
  }
  closedir(d);
  free(keep);
  int rc = sl_fsio_sync_dir(root, err);
  free(root);
  return rc;
}
