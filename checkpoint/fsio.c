/*
 * fsio.c - see fsio.h.
 *
 * Every system call that changes a durable file goes through the sl_fsio
 * table so that tests can make any step fail (short write, ENOSPC, EIO from
 * fsync, a rename that never happens). Reads use libc directly: a failing
 * read is not a crash scenario, and the checksums catch bad data.
 */
#include "fsio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../src/buf.h"
#include "../src/failpoint.h"
#include "../src/util.h"

/* open(2) is variadic; the table wants a fixed signature. */
static int posix_open(const char *path, int flags, mode_t mode) {
  return open(path, flags, mode);
}

const struct sl_fsio_ops sl_fsio_posix = {
    .open = posix_open,
    .write = write,
    .fsync = fsync,
    .close = close,
    .rename = rename,
    .unlink = unlink,
};

const struct sl_fsio_ops *sl_fsio = &sl_fsio_posix;

/* Writes all of buf, retrying short writes and EINTR. Returns 0, or -1 with
 * errno set. A write that returns 0 for a non-empty buffer would loop
 * forever; it is reported as EIO. */
static int write_all_errno(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = sl_fsio->write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int sl_fsio_write_all(int fd, const void *buf, size_t n, const char *path,
                      struct sl_error *err) {
  if (write_all_errno(fd, buf, n) < 0)
    return sl_error_set(err, SL_ERR_IO, "%s: write: %s", path, strerror(errno));
  return 0;
}

/* fsync of a directory makes a create, rename or unlink in it durable.
 * EINVAL means the file system cannot sync directories (some FUSE and
 * network file systems); there is nothing better to do, so it counts as
 * success. */
static int sync_dir_errno(const char *dir) {
  int fd = sl_fsio->open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (sl_fsio->fsync(fd) < 0 && errno != EINVAL) {
    int saved = errno;
    sl_fsio->close(fd);
    errno = saved;
    return -1;
  }
  sl_fsio->close(fd);
  return 0;
}

int sl_fsio_sync_dir(const char *dir, struct sl_error *err) {
  if (sync_dir_errno(dir) < 0)
    return sl_error_set(err, SL_ERR_IO, "%s: fsync of directory: %s", dir,
                        strerror(errno));
  return 0;
}

/* Gives a file just created exactly SL_FSIO_FILE_MODE whatever the umask
 * took away (or, for an O_TRUNC of a file left by an older version, had
 * let through). */
static int force_mode(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -1;
  if ((st.st_mode & 07777) == SL_FSIO_FILE_MODE)
    return 0;
  return fchmod(fd, SL_FSIO_FILE_MODE);
}

/* The protocol of fsio.h: after a crash at any point a reader of dir/name
 * sees the old file or the new one, never a mix. The temp name is per
 * process so two writers cannot trample each other's temp file, and starts
 * with '.' so that listings of batch numbers never take it for data. On any
 * failure the temp file is removed and the old dir/name is untouched. */
int sl_fsio_write_atomic(const char *dir, const char *name, const void *data,
                         size_t len, const char *fp, struct sl_error *err) {
  char *path = sl_asprintf("%s/%s", dir, name);
  char *tmp = sl_asprintf("%s/.%s.tmp.%ld", dir, name, (long)getpid());
  const char *what;
  int fd, saved, rc = SL_ERR_IO;

  fd = sl_fsio->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                     SL_FSIO_FILE_MODE);
  if (fd < 0) {
    what = "cannot create temporary file";
    goto fail;
  }
  if (force_mode(fd) < 0) {
    what = "chmod of temporary file";
    goto fail;
  }
  if (write_all_errno(fd, data, len) < 0) {
    what = "write of temporary file";
    goto fail;
  }
  if ((errno = sl_failpoint_at(fp, "before_fsync")) != 0 ||
      sl_fsio->fsync(fd) < 0) {
    what = "fsync of temporary file";
    goto fail;
  }
  /* close(2) may report a deferred write error (NFS); EINTR still closes
   * the descriptor on Linux, and the data is already fsynced. */
  int c = sl_fsio->close(fd);
  fd = -1;
  if (c < 0 && errno != EINTR) {
    what = "close of temporary file";
    goto fail;
  }
  if ((errno = sl_failpoint_at(fp, "before_rename")) != 0 ||
      sl_fsio->rename(tmp, path) < 0) {
    what = "rename of temporary file";
    goto fail;
  }
  if ((errno = sl_failpoint_at(fp, "before_dir_fsync")) != 0 ||
      sync_dir_errno(dir) < 0) {
    /* The new content is in place but its directory entry may not survive
     * a power loss: the caller must treat this as a failed write. */
    what = "fsync of directory";
    goto fail;
  }
  rc = 0;
  goto out;

fail:
  saved = errno;
  if (fd >= 0)
    sl_fsio->close(fd);
  sl_fsio->unlink(tmp); /* ENOENT after a successful rename: harmless */
  sl_error_set(err, SL_ERR_IO, "%s: %s: %s", path, what, strerror(saved));
out:
  free(tmp);
  free(path);
  return rc;
}

/* fsync of the directory that holds `path` (its parent, "." for a bare
 * name, "/" for a top-level one). */
static int sync_parent_errno(char *path) {
  char *slash = strrchr(path, '/');
  if (!slash)
    return sync_dir_errno(".");
  if (slash == path)
    return sync_dir_errno("/");
  *slash = '\0';
  int rc = sync_dir_errno(path);
  *slash = '/';
  return rc;
}

/* mkdir of one component; an existing directory is fine, an existing
 * non-directory is ENOTDIR. A directory it creates gets exactly `mode` when
 * exact is set (chmod after mkdir: the umask cannot widen or narrow it),
 * else `mode` less the umask, and its parent is fsynced, so that the new
 * entry survives a power loss with what is written into it later (a
 * checkpoint's state/N, a sink's directories). */
static int mkdir_one(char *path, mode_t mode, bool exact) {
  struct stat st;
  if (mkdir(path, mode) == 0) {
    if (exact && chmod(path, mode) < 0)
      return -1;
    return sync_parent_errno(path);
  }
  if (errno != EEXIST)
    return -1;
  if (stat(path, &st) < 0)
    return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

static int mkdirs(const char *path, mode_t mode, bool exact,
                  struct sl_error *err) {
  char *p = sl_strdup(path);
  int rc = 0;
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/')
    p[--n] = '\0';
  /* Create each prefix ending before a '/', then the whole path. */
  for (char *s = p + 1; *s; s++) {
    if (*s != '/')
      continue;
    *s = '\0';
    if (mkdir_one(p, mode, exact) < 0) {
      rc = sl_error_set(err, SL_ERR_IO, "%s: cannot create directory: %s", p,
                        strerror(errno));
      goto out;
    }
    *s = '/';
  }
  if (n > 0 && mkdir_one(p, mode, exact) < 0)
    rc = sl_error_set(err, SL_ERR_IO, "%s: cannot create directory: %s", p,
                      strerror(errno));
out:
  free(p);
  return rc;
}

int sl_fsio_mkdirs(const char *path, struct sl_error *err) {
  return mkdirs(path, 0755, false, err);
}

int sl_fsio_mkdirs_private(const char *path, struct sl_error *err) {
  return mkdirs(path, SL_FSIO_DIR_MODE, true, err);
}

int sl_fsio_read_file(const char *path, char **data, size_t *len,
                      struct sl_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  struct sl_buf b = {0};
  int rc = 0;

  *data = NULL;
  *len = 0;
  if (fd < 0) {
    if (errno == ENOENT)
      return sl_error_set(err, SL_ERR_NOTFOUND, "%s: not found", path);
    return sl_error_set(err, SL_ERR_IO, "%s: open: %s", path, strerror(errno));
  }
  if (fstat(fd, &st) < 0) {
    rc = sl_error_set(err, SL_ERR_IO, "%s: stat: %s", path, strerror(errno));
    goto out;
  }
  /* The size is a hint: the loop reads to EOF whatever it is. One byte
   * more, so that the read that finds EOF needs no growing. */
  sl_buf_reserve(&b, (st.st_size > 0 ? (size_t)st.st_size : 0) + 1);
  for (;;) {
    sl_buf_reserve(&b, 1);
    ssize_t r = read(fd, b.p + b.len, b.cap - b.len - 1);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      rc = sl_error_set(err, SL_ERR_IO, "%s: read: %s", path, strerror(errno));
      sl_buf_free(&b);
      goto out;
    }
    if (r == 0)
      break;
    sl_buf_advance(&b, (size_t)r);
  }
  *len = b.len;
  *data = sl_buf_take(&b);
out:
  close(fd);
  return rc;
}

/* ------------------------------------------------------------ envelope */

#define SL_SEAL_MARK     "#sluice-checksum crc32="
#define SL_SEAL_MARK_LEN (sizeof(SL_SEAL_MARK) - 1)

/* zlib's crc32() takes a uInt length: feed large bodies in chunks. */
static uint32_t body_crc(const char *p, size_t n) {
  uLong c = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
    c = crc32(c, (const Bytef *)p, chunk);
    p += chunk;
    n -= chunk;
  }
  return (uint32_t)c;
}

size_t sl_fsio_seal_trailer(const char *body, size_t len, char *out) {
  char trailer[SL_FSIO_TRAILER_MAX + 1];
  int t = snprintf(trailer, sizeof(trailer), SL_SEAL_MARK "%08x len=%zu\n",
                   (unsigned)body_crc(body, len), len);
  memcpy(out, trailer, (size_t)t);
  return (size_t)t;
}

char *sl_fsio_seal(const char *body, size_t len, size_t *out_len) {
  char *out = sl_malloc(len + SL_FSIO_TRAILER_MAX + 1);
  memcpy(out, body, len);
  size_t t = sl_fsio_seal_trailer(body, len, out + len);
  out[len + t] = '\0';
  *out_len = len + t;
  return out;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Parses "<8 hex> len=<decimal>\n" ending exactly at end. */
static bool parse_trailer(const char *p, const char *end, uint32_t *crc,
                          size_t *blen) {
  uint32_t c = 0;
  size_t l = 0;
  if (end - p < 8)
    return false;
  for (int i = 0; i < 8; i++) {
    int h = hexval(*p++);
    if (h < 0)
      return false;
    c = c << 4 | (uint32_t)h;
  }
  if (end - p < 5 || memcmp(p, " len=", 5) != 0)
    return false;
  p += 5;
  const char *digits = p;
  while (p < end && *p >= '0' && *p <= '9') {
    if (l > (SIZE_MAX - 9) / 10)
      return false;
    l = l * 10 + (size_t)(*p++ - '0');
  }
  if (p == digits || p + 1 != end || *p != '\n')
    return false;
  *crc = c;
  *blen = l;
  return true;
}

/* The trailer is the last occurrence of the mark and must run exactly to
 * the end of the file, so a file cut anywhere (even inside the trailer) is
 * torn. The body need not end with a newline. */
int sl_fsio_unseal(const char *path, const char *data, size_t len,
                   size_t *body_len, struct sl_error *err) {
  const char *end = data + len, *mark = NULL;
  uint32_t want_crc;
  size_t want_len;

  for (size_t i = len >= SL_SEAL_MARK_LEN ? len - SL_SEAL_MARK_LEN + 1 : 0;
       i-- > 0;) {
    if (data[i] == '#' &&
        memcmp(data + i, SL_SEAL_MARK, SL_SEAL_MARK_LEN) == 0) {
      mark = data + i;
      break;
    }
  }
  if (!mark ||
      !parse_trailer(mark + SL_SEAL_MARK_LEN, end, &want_crc, &want_len))
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "%s: torn or truncated file (no checksum trailer)",
                        path);
  size_t have = (size_t)(mark - data);
  if (want_len != have)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "%s: length mismatch (trailer says %zu, body has %zu "
                        "bytes)",
                        path, want_len, have);
  if (body_crc(data, have) != want_crc)
    return sl_error_set(err, SL_ERR_CORRUPT,
                        "%s: checksum mismatch (file is corrupt)", path);
  *body_len = have;
  return 0;
}
