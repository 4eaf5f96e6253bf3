/*
 * test_numfmt.c - td_fmt_g10, td_fmt_g17 and td_fmt_i64 against glibc's
 * "%.10g", "%.17g" and "%lld".
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

/* fmt(x) must be glibc's text for "%.<digits>g". */
static void check_g(size_t (*fmt)(char *, double), int digits, double x) {
    char got[64], want[64];
    size_t n = fmt(got, x);
    snprintf(want, sizeof(want), "%.*g", digits, x);
    assert_int_equal(n, strlen(got));
    if (strcmp(got, want)) fail_msg("%a: got %s, want %s", x, got, want);
}

static void check_same(double x) {
    check_g(td_fmt_g10, 10, x);
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
                                   99.999999999,
                                   1e11,
                                   -2.5e15,
                                   1.5e-5,
                                   9.9999999995e-5,
                                   1.23456789e-20,
                                   4.2e30,
                                   1e-34,
                                   9.999999999e30,
                                   1e31,
                                   1e100,
                                   -7e-300};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_same(cases[i]);
    /* Next to powers of ten, where log10 can be one off. */
    for (int p = -40; p <= 40; p++) {
        double x = pow(10, p);
        check_same(x);
        check_same(nextafter(x, 0));
        check_same(nextafter(x, INFINITY));
        check_same(x * (1 - 3e-10));
    }
}

/* Exponentially decayed counts and ratios: the values signals take. */
static void test_numfmt_round_trips_random_values(void **state) {
    int differ = 0;
    (void)state;
    for (int i = 0; i < 200000; i++) {
        double mant = (double)(next_rand() >> 11) / 9007199254740992.0;
        int ex = (int)(next_rand() % 80) - 40;
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

static void check_g17(double x) {
    check_g(td_fmt_g17, 17, x);
}

/* Byte for byte, with no tolerance: scores, their halfway cases, powers
 * of ten and their neighbours, random doubles of every magnitude. */
static void test_numfmt_g17_is_glibc_exactly(void **state) {
    static const double cases[] = {0,
                                   -0.0,
                                   1,
                                   0.1,
                                   0.5,
                                   1e-6,
                                   1e-7,
                                   99.5,
                                   100,
                                   1e16,
                                   1e17,
                                   1e22,
                                   1e23,
                                   0.3,
                                   2.675,
                                   1e-5,
                                   5e-5,
                                   NAN,
                                   1.0 / 3,
                                   INFINITY,
                                   -INFINITY,
                                   9007199254740991.0,
                                   9007199254740993.0,
                                   4503599627370495.5,
                                   5e-324};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_g17(cases[i]);
        check_g17(-cases[i]);
    }
    for (int p = -30; p <= 30; p++) {
        double x = pow(10, p);
        check_g17(x);
        check_g17(nextafter(x, 0));
        check_g17(nextafter(x, INFINITY));
    }
    for (int i = 0; i < 300000; i++) {
        uint64_t bits = next_rand();
        double x;
        if (i % 3 == 0) { /* any double */
            memcpy(&x, &bits, sizeof(x));
        } else if (i % 3 == 1) { /* a score: 0..100, model arithmetic */
            x = (double)(bits >> 11) / 9007199254740992.0 * 100;
        } else { /* a few decimals, as weights and rates are */
            x = (double)(bits % 1000000) / pow(10, (double)(bits >> 60));
        }
        check_g17(x);
    }
}

static void check_i64(int64_t v) {
    char got[TD_FMT_I64_MAX], want[32];
    size_t n = td_fmt_i64(got, v);
    snprintf(want, sizeof(want), "%lld", (long long)v);
    assert_int_equal(n, strlen(want));
    assert_string_equal(got, want);
}

static void test_numfmt_i64_matches_glibc(void **state) {
    (void)state;
    check_i64(0);
    check_i64(INT64_MIN);
    check_i64(INT64_MAX);
    for (int64_t p = 1; p < INT64_MAX / 10; p *= 10) {
        check_i64(p);
        check_i64(p - 1);
        check_i64(-p);
    }
    for (int i = 0; i < 100000; i++)
        check_i64((int64_t)next_rand() >> (next_rand() % 64));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numfmt_matches_glibc_on_fixed_cases),
        cmocka_unit_test(test_numfmt_round_trips_random_values),
        cmocka_unit_test(test_numfmt_small_integers_are_exact),
        cmocka_unit_test(test_numfmt_g17_is_glibc_exactly),
        cmocka_unit_test(test_numfmt_i64_matches_glibc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
