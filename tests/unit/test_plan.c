/* test_plan.c - capping the backlog and slicing ranges into tasks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "src/plan.h"

static int64_t planned(const struct sl_plan *p, size_t i) {
  return p->ranges[i].end - p->ranges[i].start;
}

static void cap_under_limit_keeps_everything(void **state) {
  struct sl_plan p = {0};
  (void)state;
  sl_plan_add(&p, "t", 0, 10, 20);
  sl_plan_add(&p, "t", 1, 0, 5);
  assert_int_equal(sl_plan_cap(&p, 100), 15);
  assert_int_equal(p.ranges[0].end, 20);
  assert_int_equal(p.ranges[1].end, 5);
  sl_plan_clear(&p);
}

static void cap_is_proportional_to_backlog(void **state) {
  struct sl_plan p = {0};
  (void)state;
  sl_plan_add(&p, "t", 0, 0, 3000); /* 3/4 of the backlog */
  sl_plan_add(&p, "t", 1, 500, 1500);
  assert_int_equal(sl_plan_cap(&p, 400), 400);
  assert_int_equal(planned(&p, 0), 300);
  assert_int_equal(planned(&p, 1), 100);
  assert_int_equal(p.ranges[1].start, 500); /* starts never move */
  sl_plan_clear(&p);
}

static void cap_hands_out_rounding_to_largest_remainders(void **state) {
  struct sl_plan p = {0};
  (void)state;
  /* 3 equal partitions, cap 10: floors 3+3+3, one left over. */
  sl_plan_add(&p, "t", 0, 0, 100);
  sl_plan_add(&p, "t", 1, 0, 100);
  sl_plan_add(&p, "t", 2, 0, 100);
  assert_int_equal(sl_plan_cap(&p, 10), 10);
  assert_int_equal(planned(&p, 0) + planned(&p, 1) + planned(&p, 2), 10);
  for (size_t i = 0; i < 3; i++) {
    assert_true(planned(&p, i) >= 3);
    assert_true(planned(&p, i) <= 4);
  }
  sl_plan_clear(&p);
}

static void cap_smaller_than_partition_count_still_progresses(void **state) {
  struct sl_plan p = {0};
  (void)state;
  for (int i = 0; i < 8; i++)
    sl_plan_add(&p, "t", i, 0, 1 + i);
  assert_int_equal(sl_plan_cap(&p, 3), 3);
  int64_t sum = 0;
  for (size_t i = 0; i < p.n; i++) {
    assert_true(planned(&p, i) >= 0);
    assert_true(p.ranges[i].end <= (int64_t)i + 1);
    sum += planned(&p, i);
  }
  assert_int_equal(sum, 3);
  sl_plan_clear(&p);
}

static void cap_never_exceeds_a_partition_backlog(void **state) {
  (void)state;
  /* Random shapes: sum is exact, no range grows past its backlog. */
  srand(42);
  for (int round = 0; round < 500; round++) {
    struct sl_plan p = {0};
    int n = 1 + rand() % 16;
    int64_t total = 0, backlog[16];
    for (int i = 0; i < n; i++) {
      int64_t start = rand() % 1000;
      backlog[i] = rand() % 5000;
      total += backlog[i];
      sl_plan_add(&p, "t", i, start, start + backlog[i]);
    }
    int64_t cap = 1 + rand() % 20000;
    int64_t got = sl_plan_cap(&p, cap);
    assert_int_equal(got, total < cap ? total : cap);
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
      assert_true(planned(&p, (size_t)i) >= 0);
      assert_true(planned(&p, (size_t)i) <= backlog[i]);
      sum += planned(&p, (size_t)i);
    }
    assert_int_equal(sum, got);
    sl_plan_clear(&p);
  }
}

static void slice_splits_long_ranges(void **state) {
  struct sl_plan p = {0};
  struct sl_slice *s;
  (void)state;
  sl_plan_add(&p, "a", 0, 100, 350); /* 250 records: 100+100+50 */
  sl_plan_add(&p, "a", 1, 7, 7);     /* empty: no task */
  sl_plan_add(&p, "b", 0, 0, 100);   /* exactly one task */
  size_t n = sl_plan_slice(&p, 100, &s);
  assert_int_equal(n, 4);
  assert_int_equal(s[0].range, 0);
  assert_int_equal(s[0].start, 100);
  assert_int_equal(s[0].end, 200);
  assert_int_equal(s[1].start, 200);
  assert_int_equal(s[2].start, 300);
  assert_int_equal(s[2].end, 350);
  assert_int_equal(s[3].range, 2);
  assert_int_equal(s[3].start, 0);
  assert_int_equal(s[3].end, 100);
  free(s);
  sl_plan_clear(&p);
}

static void slice_is_deterministic_and_covers_exactly(void **state) {
  struct sl_plan p = {0};
  struct sl_slice *a, *b;
  (void)state;
  for (int i = 0; i < 5; i++)
    sl_plan_add(&p, "t", i, i * 1000, i * 1000 + 777 * i);
  size_t na = sl_plan_slice(&p, 128, &a);
  size_t nb = sl_plan_slice(&p, 128, &b);
  assert_int_equal(na, nb);
  assert_memory_equal(a, b, na * sizeof(*a));
  /* Consecutive slices of a range meet end to start, cover it all. */
  for (size_t r = 0; r < p.n; r++) {
    int64_t at = p.ranges[r].start;
    for (size_t i = 0; i < na; i++) {
      if (a[i].range != r)
        continue;
      assert_int_equal(a[i].start, at);
      assert_true(a[i].end - a[i].start <= 128);
      at = a[i].end;
    }
    assert_int_equal(at, p.ranges[r].end);
  }
  free(a);
  free(b);
  sl_plan_clear(&p);
}

static void should_run_waits_for_min_records_up_to_the_delay(void **state) {
  const int64_t ms = 1000000;
  (void)state;
  assert_false(sl_plan_should_run(0, 1, 10 * ms, 0)); /* nothing new */
  assert_true(sl_plan_should_run(5, 1, 0, 0));
  assert_true(sl_plan_should_run(1000, 1000, 0, 500 * ms)); /* enough */
  assert_false(sl_plan_should_run(999, 1000, 499 * ms, 500 * ms));
  assert_true(sl_plan_should_run(999, 1000, 500 * ms, 500 * ms)); /* late */
  assert_true(sl_plan_should_run(1, 1000, 2000 * ms, 500 * ms));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cap_under_limit_keeps_everything),
      cmocka_unit_test(cap_is_proportional_to_backlog),
      cmocka_unit_test(cap_hands_out_rounding_to_largest_remainders),
      cmocka_unit_test(cap_smaller_than_partition_count_still_progresses),
      cmocka_unit_test(cap_never_exceeds_a_partition_backlog),
      cmocka_unit_test(slice_splits_long_ranges),
      cmocka_unit_test(slice_is_deterministic_and_covers_exactly),
      cmocka_unit_test(should_run_waits_for_min_records_up_to_the_delay),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
