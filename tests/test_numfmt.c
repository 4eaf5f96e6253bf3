/*
 * test_numfmt.c - td_fmt_g10 against glibc's "%.10g".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numfmt.h"
#include "harness.h"

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t next_rand(void) {
    return td_h_xorshift(&rng);
}

static void check_same(double x) {
    char got[TD_FMT_G10_MAX], want[64];
    size_t n = td_fmt_g10(got, x);
    snprintf(want, sizeof(want), "%.10g", x);
    assert_int_equal(n, strlen(got));
    if (strcmp(got, want)) fail_msg("%.17g: got %s, want %s", x, got, want);
}

static void test_numfmt_matches_glibc_on_fixed_cases(void **state) {
    static const double cases[] = {0,
                                   -0.0,
                                   1,
                                   -1,
                                   10,
                                   100,
                                   0.5,
                                   0.1,
                                   0.25,
                                   1e-4,
                                   9.999e-5,
                                   1e10,
                                   9999999999.0,
                                   9999999999.5,
                                   1e9,
                                   123456789.0,
                                   1234567890.0,
                                   0.0001234567891,
                                   3.14159265358979,
                                   2.5e-5,
                                   86400000.0,
                                   1732000000000.0,
                                   -0.0042,
                                   42.000000001,
                                   NAN,
                                   INFINITY,
                                   -INFINITY,
                                   5e-324,
                                   1.7976931348623157e308,
                                   0.999999999949,
                                   99.999999999};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_same(cases[i]);
}

/* Exponentially decayed counts and ratios: the values signals take. */
static void test_numfmt_round_trips_random_values(void **state) {
    int differ = 0;
    (void)state;
    for (int i = 0; i < 200000; i++) {
        double mant = (double)(next_rand() >> 11) / 9007199254740992.0;
        int ex = (int)(next_rand() % 24) - 8;
        double x = mant * pow(10, ex) * ((next_rand() & 1) ? 1 : -1);
        char got[TD_FMT_G10_MAX], want[64];
        td_fmt_g10(got, x);
        snprintf(want, sizeof(want), "%.10g", x);
        if (strcmp(got, want)) {
            /* Only a halfway last digit may differ; the value must not. */
            double back = strtod(got, NULL);
            differ++;
            if (fabs(back - x) > 5.0000001e-10 * fabs(x))
                fail_msg("%.17g: got %s (%.17g), want %s", x, got, back, want);
        }
    }
    /* Rare, or the fast path is wrong rather than merely rounding. */
    assert_true(differ < 20);
}

static void test_numfmt_small_integers_are_exact(void **state) {
    (void)state;
    for (int i = -2000; i <= 2000; i++)
        check_same((double)i);
    for (int i = 0; i < 1000; i++)
        check_same((double)i / 8);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numfmt_matches_glibc_on_fixed_cases),
        cmocka_unit_test(test_numfmt_round_trips_random_values),
        cmocka_unit_test(test_numfmt_small_integers_are_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
