/*
 * buf.h - the growable byte buffer: one type for every place that builds
 * bytes or text of unknown length (config text, JSON output rows, template
 * renderings, Redis protocol, Kafka record bytes, metrics pages, window
 * keys and snapshot images).
 *
 *   struct sl_buf b = SL_BUF_INIT;   (or = {0}: all zero is empty)
 *   sl_buf_adds(&b, "x = ");
 *   sl_buf_printf(&b, "%d", 42);
 *   char *s = sl_buf_take(&b);       (the caller frees s)
 *
 * p is char, not unsigned char: most users build text and hand it to
 * string functions, librdkafka, hiredis or write(); the binary users (the
 * window code's keys and images) cast where they read bytes back.
 *
 * The terminator rule: cap always has room for a byte past len, and every
 * sl_buf_ function stores '\0' there: whenever p is set, p[len] is '\0',
 * so text without NULs in it is a C string. p is set by the first add or
 * reservation, even of nothing (sl_buf_add(b, s, 0) allocates); a buffer
 * never added to has p == NULL. Code that writes at p + len itself
 * reserves first and then calls sl_buf_advance, which terminates; code
 * that cuts len back calls sl_buf_setlen.
 *
 * Growth doubles the capacity, from 64 bytes, or goes straight to what a
 * larger reservation needs (a file of known size is read into a block of
 * its size, not of the next power of two); out of memory aborts, as
 * sl_realloc does. The checks are inline here; only growing is a call.
 */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sl_buf {
  char *p;    /* NULL until anything is added */
  size_t len; /* bytes used, not counting the terminator */
  size_t cap; /* bytes allocated: always more than len once p is set */
};

#define SL_BUF_INIT                                                            \
  { NULL, 0, 0 }

/* The first allocation's size. */
#define SL_BUF_MIN 64

/* Grows b so that more bytes and the terminator fit after len (the slow
 * path of sl_buf_reserve; call that instead). */
void sl_buf_grow(struct sl_buf *b, size_t more);

/* Room for more bytes at p + len, and the terminator after them. */
static inline void sl_buf_reserve(struct sl_buf *b, size_t more) {
  if (b->cap - b->len <= more)
    sl_buf_grow(b, more);
}

/* After writing n bytes at p + len (reserved before): counts them and
 * terminates. */
static inline void sl_buf_advance(struct sl_buf *b, size_t n) {
  b->len += n;
  b->p[b->len] = '\0';
}

/* Cuts the contents to their first n bytes (n <= len), keeping the
 * memory. */
static inline void sl_buf_setlen(struct sl_buf *b, size_t n) {
  b->len = n;
  if (b->p)
    b->p[n] = '\0';
}

/* Empties b and keeps its memory for reuse. */
static inline void sl_buf_reset(struct sl_buf *b) {
  sl_buf_setlen(b, 0);
}

/* Appends the n bytes at s (NULs included). */
static inline void sl_buf_add(struct sl_buf *b, const void *s, size_t n) {
  sl_buf_reserve(b, n);
  if (n)
    memcpy(b->p + b->len, s, n);
  sl_buf_advance(b, n);
}

/* Appends one byte. */
static inline void sl_buf_addc(struct sl_buf *b, char c) {
  sl_buf_reserve(b, 1);
  b->p[b->len++] = c;
  b->p[b->len] = '\0';
}

/* Appends the C string s (without its terminator). */
static inline void sl_buf_adds(struct sl_buf *b, const char *s) {
  sl_buf_add(b, s, strlen(s));
}

/* Appends printf output, growing b as far as it needs. On an output
 * error of vsnprintf (an invalid wide character) nothing is added. */
void sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sl_buf_vprintf(struct sl_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Hands over the contents: a malloc'd string of len bytes and the
 * terminator (an empty one when nothing was added), which the caller
 * frees. b is left empty, without memory. */
char *sl_buf_take(struct sl_buf *b);

/* Frees the memory; b is empty again and may be reused. */
void sl_buf_free(struct sl_buf *b);

/* Little-endian integers and doubles (the IEEE-754 bits), so that binary
 * images are the same on every host; compilers turn the loops into plain
 * stores. */
static inline void sl_buf_put_u8(struct sl_buf *b, unsigned v) {
  sl_buf_addc(b, (char)(unsigned char)v);
}

static inline void sl_buf_put_u32(struct sl_buf *b, uint32_t v) {
  sl_buf_reserve(b, 4);
  unsigned char *o = (unsigned char *)b->p + b->len;
  for (int i = 0; i < 4; i++)
    o[i] = (unsigned char)(v >> (8 * i));
  sl_buf_advance(b, 4);
}

static inline void sl_buf_put_u64(struct sl_buf *b, uint64_t v) {
  sl_buf_reserve(b, 8);
  unsigned char *o = (unsigned char *)b->p + b->len;
  for (int i = 0; i < 8; i++)
    o[i] = (unsigned char)(v >> (8 * i));
  sl_buf_advance(b, 8);
}

static inline void sl_buf_put_f64(struct sl_buf *b, double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof(u));
  sl_buf_put_u64(b, u);
}

#ifdef __cplusplus
}
#endif

#endif
