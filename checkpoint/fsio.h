/*
 * fsio.h - the one layer through which durable files are written.
 *
 * sl_fsio_write_atomic() writes a whole file so that after a crash at any
 * point a reader sees either the old content or the new, never a mix:
 * write DIR/.NAME.tmp.<pid>, fsync it, rename to DIR/NAME, fsync DIR.
 *
 * The system calls go through a table of function pointers that tests
 * replace to inject failures (short write, ENOSPC, fsync error, crash
 * before rename), the way SQLite's VFS lets its tests simulate crashes.
 *
 * Thread-safe as long as the table is not swapped while writing.
 */
#ifndef SL_FSIO_H
#define SL_FSIO_H

#include <stddef.h>
#include <sys/types.h>

#include "../src/error.h"

struct sl_fsio_ops {
  int (*open)(const char *path, int flags, mode_t mode);
  ssize_t (*write)(int fd, const void *buf, size_t n);
  int (*fsync)(int fd);
  int (*close)(int fd);
  int (*rename)(const char *from, const char *to);
  int (*unlink)(const char *path);
};

/* The table in use; tests may point it at their own and restore it. */
extern const struct sl_fsio_ops *sl_fsio;
extern const struct sl_fsio_ops sl_fsio_posix;

/* The modes of what sluice keeps for itself (checkpoint files, state
 * snapshots, the file sink's manifests), whatever the umask: they may
 * hold records' keys and values, and no one else needs to read them. */
#define SL_FSIO_FILE_MODE 0600
#define SL_FSIO_DIR_MODE  0700

/* Atomically replaces dir/name with data[0..len); the file is
 * SL_FSIO_FILE_MODE. Errors: SL_ERR_IO with
 * the path and strerror. The temp file is removed on failure. fp names the
 * crash points of its steps (src/failpoint.h): fp.before_fsync,
 * fp.before_rename and fp.before_dir_fsync; NULL for none. */
int sl_fsio_write_atomic(const char *dir, const char *name, const void *data,
                         size_t len, const char *fp, struct sl_error *err);

/* Writes all of buf to fd, retrying short writes and EINTR. */
int sl_fsio_write_all(int fd, const void *buf, size_t n, const char *path,
                      struct sl_error *err);

/* fsyncs a directory (so a rename or create in it is durable). */
int sl_fsio_sync_dir(const char *dir, struct sl_error *err);

/* mkdir -p with mode 0755 less the umask (directories for users, as the
 * file sink's output); SL_ERR_IO naming the path on failure. Both fsync
 * the parent of every directory they create. */
int sl_fsio_mkdirs(const char *path, struct sl_error *err);
/* mkdir -p where every directory it creates is exactly SL_FSIO_DIR_MODE;
 * existing ones are left as they are. */
int sl_fsio_mkdirs_private(const char *path, struct sl_error *err);

/* Reads a whole file into a malloc'd buffer (NUL-terminated; *len excludes
 * the NUL). SL_ERR_NOTFOUND when it does not exist, SL_ERR_IO otherwise. */
int sl_fsio_read_file(const char *path, char **data, size_t *len,
                      struct sl_error *err);

/* Checksummed envelope shared by checkpoint files and sink manifests:
 * body + "#sluice-checksum crc32=%08x len=%zu\n". */
char *sl_fsio_seal(const char *body, size_t len, size_t *out_len);
/* The trailer alone, for a writer that lays out body and trailer in one
 * buffer itself: writes it at out (at most SL_FSIO_TRAILER_MAX bytes, not
 * NUL-terminated) and returns its length. */
#define SL_FSIO_TRAILER_MAX 64
size_t sl_fsio_seal_trailer(const char *body, size_t len, char *out);
/* Verifies a sealed file and returns the body length (body is data[0..n)),
 * or SL_ERR_CORRUPT with a message naming path (torn, bad length, bad
 * checksum). */
int sl_fsio_unseal(const char *path, const char *data, size_t len,
                   size_t *body_len, struct sl_error *err);

#endif
