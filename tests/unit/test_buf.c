/* test_buf.c - the growable byte buffer (src/buf.h): growth across the
 * doubling boundary and past it in one step, printf beyond the room left,
 * take, reset and free, embedded NULs, the terminator rule and the byte
 * order of the little-endian helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "src/buf.h"

/* The terminator rule: p[len] is '\0' and there is room for it. */
static void assert_terminated(const struct sl_buf *b) {
  assert_non_null(b->p);
  assert_true(b->len < b->cap);
  assert_int_equal(b->p[b->len], '\0');
}

static void zero_is_empty(void **state) {
  (void)state;
  struct sl_buf b = SL_BUF_INIT;
  struct sl_buf z = {0};
  assert_memory_equal(&b, &z, sizeof(b));
  assert_null(b.p);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, 0);
  /* Adding nothing allocates: the text is "" then, not NULL. */
  sl_buf_add(&b, "", 0);
  assert_terminated(&b);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, SL_BUF_MIN);
  assert_string_equal(b.p, "");
  sl_buf_free(&b);
  assert_null(b.p);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, 0);
  sl_buf_free(&b); /* freeing an empty buffer is fine */
}

/* One byte at a time: the capacity starts at SL_BUF_MIN and doubles just
 * when the terminator would no longer fit. */
static void grows_across_the_doubling_boundary(void **state) {
  (void)state;
  struct sl_buf b = {0};
  for (size_t i = 0; i < SL_BUF_MIN - 1; i++) {
    sl_buf_addc(&b, (char)('a' + i % 26));
    assert_int_equal(b.cap, SL_BUF_MIN);
    assert_terminated(&b);
  }
  assert_int_equal(b.len, SL_BUF_MIN - 1);
  sl_buf_addc(&b, '!');
  assert_int_equal(b.len, SL_BUF_MIN);
  assert_int_equal(b.cap, 2 * SL_BUF_MIN);
  assert_terminated(&b);
  for (size_t i = 0; i < SL_BUF_MIN - 1; i++)
    sl_buf_addc(&b, 'x');
  assert_int_equal(b.cap, 2 * SL_BUF_MIN);
  sl_buf_add(&b, "y", 1);
  assert_int_equal(b.cap, 4 * SL_BUF_MIN);
  assert_terminated(&b);
  /* Contents survive every move. */
  for (size_t i = 0; i < SL_BUF_MIN - 1; i++)
    assert_int_equal(b.p[i], (char)('a' + i % 26));
  assert_int_equal(b.p[SL_BUF_MIN - 1], '!');
  assert_int_equal(b.p[2 * SL_BUF_MIN - 1], 'y');
  sl_buf_free(&b);
}

/* A reservation larger than doubling gives is met in one step, and the
 * room it promises is there without another move. */
static void reserve_beyond_doubling(void **state) {
  (void)state;
  struct sl_buf b = {0};
  sl_buf_adds(&b, "head");
  sl_buf_reserve(&b, 10000);
  assert_true(b.cap - b.len > 10000);
  char *p = b.p;
  size_t cap = b.cap;
  memset(b.p + b.len, 'z', 10000);
  sl_buf_advance(&b, 10000);
  assert_ptr_equal(b.p, p);
  assert_int_equal(b.cap, cap);
  assert_int_equal(b.len, 10004);
  assert_terminated(&b);
  assert_memory_equal(b.p, "headzz", 6);
  /* Already there: no move. */
  sl_buf_reserve(&b, b.cap - b.len - 1);
  assert_ptr_equal(b.p, p);
  sl_buf_free(&b);
}

static void adds_and_printf(void **state) {
  (void)state;
  struct sl_buf b = {0};
  sl_buf_adds(&b, "n=");
  sl_buf_printf(&b, "%d, s=%s", 42, "x");
  assert_string_equal(b.p, "n=42, s=x");
  assert_int_equal(b.len, strlen("n=42, s=x"));
  /* Longer than the room left, and than the first allocation. */
  char big[1000];
  memset(big, 'q', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  sl_buf_printf(&b, "[%s|%05d]", big, 7);
  assert_int_equal(b.len, strlen("n=42, s=x") + 1 + 999 + 7);
  assert_terminated(&b);
  assert_memory_equal(b.p, "n=42, s=x[qqq", 13);
  assert_string_equal(b.p + b.len - 7, "|00007]");
  /* Exactly filling the room that is left. */
  struct sl_buf c = {0};
  sl_buf_reserve(&c, 0);
  size_t room = c.cap - c.len - 1;
  char fill[SL_BUF_MIN + 1];
  memset(fill, 'f', room);
  fill[room] = '\0';
  sl_buf_printf(&c, "%s", fill);
  assert_int_equal(c.len, room);
  assert_int_equal(c.cap, SL_BUF_MIN);
  assert_terminated(&c);
  sl_buf_printf(&c, "%s", "");
  assert_int_equal(c.len, room);
  sl_buf_printf(&c, "g");
  assert_int_equal(c.len, room + 1);
  assert_terminated(&c);
  sl_buf_free(&c);
  sl_buf_free(&b);
}

static void take_reset_and_free(void **state) {
  (void)state;
  struct sl_buf b = {0};
  /* Take of a buffer never added to: an empty string of its own. */
  char *s = sl_buf_take(&b);
  assert_non_null(s);
  assert_string_equal(s, "");
  free(s);
  assert_null(b.p);
  sl_buf_adds(&b, "hello");
  s = sl_buf_take(&b);
  assert_string_equal(s, "hello");
  assert_null(b.p);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, 0);
  free(s);
  /* Reset keeps the memory and leaves "". */
  sl_buf_adds(&b, "some text to forget");
  char *p = b.p;
  size_t cap = b.cap;
  sl_buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_ptr_equal(b.p, p);
  assert_int_equal(b.cap, cap);
  assert_string_equal(b.p, "");
  sl_buf_adds(&b, "again");
  assert_ptr_equal(b.p, p);
  assert_string_equal(b.p, "again");
  /* setlen cuts and terminates. */
  sl_buf_setlen(&b, 3);
  assert_string_equal(b.p, "aga");
  assert_terminated(&b);
  sl_buf_free(&b);
  /* Reset of a buffer never added to stays without memory. */
  sl_buf_reset(&b);
  assert_null(b.p);
  assert_int_equal(b.cap, 0);
}

static void embedded_nuls(void **state) {
  (void)state;
  struct sl_buf b = {0};
  sl_buf_add(&b, "a\0b", 3);
  sl_buf_addc(&b, '\0');
  sl_buf_add(&b, "\0c", 2);
  assert_int_equal(b.len, 6);
  assert_memory_equal(b.p, "a\0b\0\0c", 6);
  assert_terminated(&b);
  size_t len = b.len;
  char *s = sl_buf_take(&b);
  assert_memory_equal(s, "a\0b\0\0c\0", len + 1);
  free(s);
}

/* Direct writes after a reservation, as the JSON writer and the Redis
 * formatter do them. */
static void advance_after_direct_writes(void **state) {
  (void)state;
  struct sl_buf b = {0};
  sl_buf_adds(&b, "ab");
  sl_buf_reserve(&b, 3);
  memcpy(b.p + b.len, "cdeXYZ", 3);
  b.p[b.len + 3] = 'X'; /* the terminator's byte, overwritten next */
  sl_buf_advance(&b, 3);
  assert_string_equal(b.p, "abcde");
  assert_terminated(&b);
  sl_buf_free(&b);
}

static void little_endian_helpers(void **state) {
  (void)state;
  struct sl_buf b = {0};
  sl_buf_put_u8(&b, 0xab);
  sl_buf_put_u8(&b, 0x1ff); /* the low byte only */
  sl_buf_put_u32(&b, 0x01020304u);
  sl_buf_put_u64(&b, 0x1122334455667788ull);
  sl_buf_put_f64(&b, 1.0);  /* 0x3ff0000000000000 */
  sl_buf_put_f64(&b, -2.5); /* 0xc004000000000000 */
  static const unsigned char want[] = {
      0xab, 0xff, 0x04, 0x03, 0x02, 0x01, 0x88, 0x77, 0x66, 0x55,
      0x44, 0x33, 0x22, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0xf0, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xc0};
  assert_int_equal(b.len, sizeof(want));
  assert_memory_equal(b.p, want, sizeof(want));
  assert_terminated(&b);
  /* Across a growth: 8-byte puts that straddle the first capacity. */
  sl_buf_reset(&b);
  for (uint64_t i = 0; i < 20; i++)
    sl_buf_put_u64(&b, i * 0x0101010101010101ull);
  assert_int_equal(b.len, 160);
  for (size_t i = 0; i < 20; i++)
    for (size_t k = 0; k < 8; k++)
      assert_int_equal((unsigned char)b.p[8 * i + k], (unsigned char)i);
  assert_terminated(&b);
  sl_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(zero_is_empty),
      cmocka_unit_test(grows_across_the_doubling_boundary),
      cmocka_unit_test(reserve_beyond_doubling),
      cmocka_unit_test(adds_and_printf),
      cmocka_unit_test(take_reset_and_free),
      cmocka_unit_test(embedded_nuls),
      cmocka_unit_test(advance_after_direct_writes),
      cmocka_unit_test(little_endian_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
