/*
 * test_history.c - the score history's records (history.h): the head's
 * encoding and clamping, append with the 64-point cap and the 90-day
 * horizon, decoding, and a trailing partial record ignored.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "history.h"

/* Appends a point published at secs with version v to h (len bytes). */
static size_t
add(unsigned char *h, size_t len, uint32_t secs, double score, uint64_t v) {
    unsigned char head[TD_HISTORY_HEAD];

    td_history_head(head, (int64_t)secs * 1000, score, 3, 0.5);
    return td_history_append(h, h, len, head, v);
}

static void test_head_is_little_endian_and_scaled(void **state) {
    unsigned char h[TD_HISTORY_HEAD];
    static const unsigned char want[4] = {0x78, 0x56, 0x34, 0x12};
    (void)state;

    /* whole seconds; 67.2 -> 6720, 0.874 -> 87 */
    td_history_head(h, 0x12345678LL * 1000 + 999, 67.2, 4, 0.874);
    assert_memory_equal(h, want, 4);
    assert_int_equal(h[4] | h[5] << 8, 6720);
    assert_int_equal(h[6], 4);
    assert_int_equal(h[7], 87);
    assert_int_equal(td_history_secs(h), 0x12345678u);
}

static void test_head_clamps_out_of_range_values(void **state) {
    static const struct {
        int64_t ms;
        double score;
        int tier;
        double conf;
        uint32_t secs;
        unsigned score100, tier8, conf100;
    } cases[] = {
        {-5000, -3, -1, -0.5, 0, 0, 0, 0},
        {(int64_t)UINT32_MAX * 1000 + 5000, 250, 300, 7, UINT32_MAX, 10000, 255,
         100},
        {1000, NAN, 2, NAN, 1, 0, 2, 0},
        {1000, 100, 5, 1, 1, 10000, 5, 100},
        {1000, 99.995, 1, 0.995, 1, 10000, 1, 100},
        {1000, 0.004, 1, 0.004, 1, 0, 1, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char h[TD_HISTORY_HEAD];
        td_history_head(h, cases[i].ms, cases[i].score, cases[i].tier,
                        cases[i].conf);
        assert_int_equal(td_history_secs(h), cases[i].secs);
        assert_int_equal(h[4] | h[5] << 8, cases[i].score100);
        assert_int_equal(h[6], cases[i].tier8);
        assert_int_equal(h[7], cases[i].conf100);
    }
}

static void test_append_then_decode_round_trips(void **state) {
    unsigned char h[TD_HISTORY_BYTES];
    td_history_point_t p[4];
    size_t len = 0;
    (void)state;

    len = add(h, len, 1700000000, 55.5, 1);
    len = add(h, len, 1700000100, 60.25, 2);
    len = add(h, len, 1700000200, 61, (uint64_t)1 << 52);
    assert_int_equal(len, 3 * TD_HISTORY_POINT);
    assert_int_equal(td_history_decode(h, len, p, 4), 3);
    assert_int_equal(p[0].ms, 1700000000LL * 1000);
    assert_true(fabs(p[0].score - 55.5) < 1e-9);
    assert_int_equal(p[0].tier, 3);
    assert_true(fabs(p[0].confidence - 0.5) < 1e-9);
    assert_int_equal(p[0].version, 1);
    assert_true(fabs(p[1].score - 60.25) < 1e-9);
    assert_int_equal(p[2].ms, 1700000200LL * 1000);
    assert_int_equal(p[2].version, (uint64_t)1 << 52);
    /* the version's 8 bytes, little-endian, at offset 8 */
    assert_int_equal(h[2 * TD_HISTORY_POINT + 8 + 6], 0x10);
    /* max limits the decode */
    assert_int_equal(td_history_decode(h, len, p, 2), 2);
}

static void test_append_keeps_the_last_64_points(void **state) {
    unsigned char h[TD_HISTORY_BYTES];
    td_history_point_t p[TD_HISTORY_MAX + 1];
    size_t len = 0;
    (void)state;

    for (uint64_t v = 1; v <= 200; v++) {
        len = add(h, len, 1700000000 + (uint32_t)v, 50, v);
        assert_true(len <= TD_HISTORY_BYTES);
    }
    assert_int_equal(len, TD_HISTORY_BYTES);
    assert_int_equal(TD_HISTORY_BYTES, 1024);
    assert_int_equal(td_history_decode(h, len, p, TD_HISTORY_MAX + 1),
                     TD_HISTORY_MAX);
    for (int i = 0; i < TD_HISTORY_MAX; i++)
        assert_int_equal(p[i].version, 200 - TD_HISTORY_MAX + 1 + i);
}

static void test_append_drops_points_older_than_90_days(void **state) {
    unsigned char h[TD_HISTORY_BYTES];
    td_history_point_t p[8];
    uint32_t t0 = 1700000000, day = 86400;
    size_t len = 0;
    (void)state;

    len = add(h, len, t0, 10, 1);
    len = add(h, len, t0 + 5 * day, 20, 2);
    len = add(h, len, t0 + 30 * day, 30, 3);
    /* exactly 90 days after the first: it stays */
    len = add(h, len, t0 + TD_HISTORY_DAYS * day, 40, 4);
    assert_int_equal(td_history_decode(h, len, p, 8), 4);
    /* one second later it goes, the second point not yet */
    len = add(h, len, t0 + TD_HISTORY_DAYS * day + 1, 50, 5);
    assert_int_equal(td_history_decode(h, len, p, 8), 4);
    assert_int_equal(p[0].version, 2);
    /* a point far later drops every older one */
    len = add(h, len, t0 + 400 * day, 60, 6);
    assert_int_equal(td_history_decode(h, len, p, 8), 1);
    assert_int_equal(p[0].version, 6);
    assert_int_equal(p[0].ms, (int64_t)(t0 + 400 * day) * 1000);
}

static void test_a_trailing_partial_record_is_ignored(void **state) {
    unsigned char h[TD_HISTORY_BYTES + TD_HISTORY_POINT];
    unsigned char out[TD_HISTORY_BYTES];
    td_history_point_t p[4];
    size_t len = 0;
    (void)state;

    len = add(h, len, 1700000000, 10, 1);
    len = add(h, len, 1700000001, 20, 2);
    memset(h + len, 0xff, 7);
    /* decode: two points of 39 bytes */
    assert_int_equal(td_history_decode(h, len + 7, p, 4), 2);
    /* append: the partial record is dropped, the new point follows the
     * second */
    unsigned char head[TD_HISTORY_HEAD];
    td_history_head(head, 1700000002LL * 1000, 30, 2, 1);
    len = td_history_append(out, h, len + 7, head, 3);
    assert_int_equal(len, 3 * TD_HISTORY_POINT);
    assert_int_equal(td_history_decode(out, len, p, 4), 3);
    assert_int_equal(p[2].version, 3);
    assert_int_equal(p[2].tier, 2);
    /* under one record: nothing decoded, the append starts afresh */
    assert_int_equal(td_history_decode(h, 15, p, 4), 0);
    assert_int_equal(td_history_append(out, h, 15, head, 9), TD_HISTORY_POINT);
    assert_int_equal(td_history_decode(NULL, 0, p, 4), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_is_little_endian_and_scaled),
        cmocka_unit_test(test_head_clamps_out_of_range_values),
        cmocka_unit_test(test_append_then_decode_round_trips),
        cmocka_unit_test(test_append_keeps_the_last_64_points),
        cmocka_unit_test(test_append_drops_points_older_than_90_days),
        cmocka_unit_test(test_a_trailing_partial_record_is_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
