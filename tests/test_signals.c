/*
 * test_signals.c - the signal catalog: per-signal folding on hand-built
 * events, the decay math against the definition, and order/split
 * independence of the merge.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "signals.h"

#define DAY  86400000LL
#define HOUR 3600000LL
#define T0   1700000000000LL

static void assert_close(double got, double want) {
    if (fabs(got - want) > 1e-9 * fmax(1.0, fabs(want)))
        fail_msg("got %.17g, want %.17g", got, want);
}

static td_event_t order(int status, int64_t t, int64_t amount) {
    td_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = TD_EV_ORDER;
    e.event_time = t;
    e.merchant_id = (td_str_t){"m1", 2};
    e.u.order.status = status;
    e.u.order.amount_cents = amount;
    e.u.order.cancelled_by = TD_NULL_ENUM;
    e.u.order.promised_ship_by = TD_NULL_TS;
    e.u.order.promised_delivery_by = TD_NULL_TS;
    e.u.order.tracking_valid = TD_NULL_BOOL;
    e.u.order.paid_at = TD_NULL_TS;
    e.u.order.shipped_at = TD_NULL_TS;
    return e;
}

static td_event_t review(int rating, int flagged, int64_t t) {
    td_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = TD_EV_REVIEW;
    e.event_time = t;
    e.u.review.rating = rating;
    e.u.review.flagged = flagged;
    return e;
}

static td_event_t refund(int status, int64_t t) {
    td_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = TD_EV_REFUND;
    e.event_time = t;
    e.u.refund.status = status;
    e.u.refund.responsible = TD_NULL_ENUM;
    e.u.refund.requested_at = TD_NULL_TS;
    return e;
}

/* Folds events into a fresh state, one delta per event kind. */
static void fold(td_sigstate_t *s, const td_event_t *evs, int n) {
    td_sigdelta_t d[TD_EV__CNT];
    for (int k = 0; k < TD_EV__CNT; k++)
        td_sigdelta_init(&d[k], (td_event_kind_t)k);
    for (int i = 0; i < n; i++)
        td_sigdelta_add(&d[evs[i].kind], &evs[i]);
    td_sigstate_init(s);
    for (int k = 0; k < TD_EV__CNT; k++)
        td_sigstate_merge(s, &d[k]);
}

static double decay(int64_t T, int64_t t, int64_t w) {
    return exp(-(double)(T - t) / (double)w);
}

static void test_catalog_is_consistent(void **state) {
    (void)state;
    for (int i = 0; i < TD_SIG__CNT; i++) {
        const td_signal_t *s = &td_signals[i];
        assert_non_null(s->name);
        assert_int_equal(td_signal_by_name(s->name), i);
        assert_true(strlen(s->meaning) > 5);
        if (i < TD_SIG_BASE_CNT) {
            assert_true(s->source >= 0);
            assert_int_equal(td_signals_slot_sig(s->source, s->slot), i);
        } else {
            assert_int_equal(s->source, -1);
            assert_true(s->a < TD_SIG_BASE_CNT);
        }
    }
    assert_int_equal(td_signal_by_name("no_such_signal"), -1);
}

static void test_orders_paid_counts_and_decays(void **state) {
    td_event_t e[3] = {order(TD_ORDER_PAID, T0, 100),
                       order(TD_ORDER_PAID, T0 + 2 * DAY, 300),
                       order(TD_ORDER_CREATED, T0 + 3 * DAY, 999)};
    td_sigstate_t s;
    int64_t T = T0 + 3 * DAY;
    (void)state;

    fold(&s, e, 3);
    assert_int_equal(s.as_of, T);
    assert_close(s.v[TD_SIG_orders_paid_total], 2);
    assert_close(s.v[TD_SIG_orders_paid_30d],
                 decay(T, T0, 30 * DAY) + decay(T, T0 + 2 * DAY, 30 * DAY));
    assert_close(s.v[TD_SIG_gmv_cents_30d],
                 100 * decay(T, T0, 30 * DAY) +
                     300 * decay(T, T0 + 2 * DAY, 30 * DAY));
}

static void test_late_shipment_rate(void **state) {
    td_event_t e[3] = {order(TD_ORDER_SHIPPED, T0, 0),
                       order(TD_ORDER_SHIPPED, T0 + HOUR, 0),
                       order(TD_ORDER_SHIPPED, T0 + 2 * HOUR, 0)};
    td_sigstate_t s;
    int64_t T = T0 + 2 * HOUR;
    (void)state;

    e[0].u.order.promised_ship_by = T0 + DAY;    /* on time */
    e[1].u.order.promised_ship_by = T0;          /* late */
    e[2].u.order.promised_ship_by = TD_NULL_TS;  /* no promise: not late */
    fold(&s, e, 3);
    double late = decay(T, T0 + HOUR, 30 * DAY);
    double all = decay(T, T0, 30 * DAY) + late + 1;
    assert_close(s.v[TD_SIG_shipped_30d], all);
    assert_close(s.v[TD_SIG_shipped_late_30d], late);
    assert_true(s.present[TD_SIG_late_ship_rate_30d]);
    assert_close(s.v[TD_SIG_late_ship_rate_30d], late / all);
}

static void test_merchant_cancellations_only(void **state) {
    td_event_t e[2] = {order(TD_ORDER_CANCELLED, T0, 0),
                       order(TD_ORDER_CANCELLED, T0, 0)};
    td_sigstate_t s;
    (void)state;
    e[0].u.order.cancelled_by = TD_CANCEL_MERCHANT;
    e[1].u.order.cancelled_by = TD_CANCEL_BUYER;
    fold(&s, e, 2);
    assert_close(s.v[TD_SIG_orders_cancelled_merchant_30d], 1);
}

static void test_flagged_reviews_stay_out_of_average(void **state) {
    td_event_t e[3] = {review(5, 0, T0), review(3, 0, T0),
                       review(1, 1, T0)};
    td_sigstate_t s;
    (void)state;
    fold(&s, e, 3);
    assert_close(s.v[TD_SIG_reviews_30d], 2);
    assert_close(s.v[TD_SIG_rating_sum_30d], 8);
    assert_close(s.v[TD_SIG_rating_avg_30d], 4);
}

static void test_ratio_with_zero_denominator_is_absent(void **state) {
    td_event_t e[1] = {refund(TD_REFUND_REQUESTED, T0)};
    td_sigstate_t s;
    (void)state;
    fold(&s, e, 1);
    assert_close(s.v[TD_SIG_refunds_requested_30d], 1);
    assert_false(s.present[TD_SIG_refund_rate_30d]);
    assert_false(s.present[TD_SIG_late_ship_rate_30d]);
    assert_false(s.present[TD_SIG_rating_avg_30d]);
}

static void test_steady_rate_equals_plain_count(void **state) {
    /* One event per minute for 90 days: the 30d window holds about the
     * events of the last 30 days (1 - e^-3 of the whole, times W/dt). */
    td_sigdelta_t d;
    td_sigstate_t s;
    int64_t step = 60000, n = 90 * DAY / step;
    (void)state;
    td_sigdelta_init(&d, TD_EV_ORDER);
    for (int64_t i = 0; i < n; i++) {
        td_event_t e = order(TD_ORDER_PAID, T0 + i * step, 1);
        td_sigdelta_add(&d, &e);
    }
    td_sigstate_init(&s);
    td_sigstate_merge(&s, &d);
    double count30 = (double)(30 * DAY / step);
    assert_true(fabs(s.v[TD_SIG_orders_paid_30d] - count30) / count30 < 0.06);
}

/* Random events split into random deltas merged in random order give the
 * same state as one delta in event order. */
static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static td_event_t random_event(void) {
    int64_t t = T0 + (int64_t)(next_rand() % (120 * DAY));
    switch (next_rand() % 3) {
    case 0: {
        td_event_t e = order((int)(next_rand() % TD_ORDER__CNT), t,
                             (int64_t)(next_rand() % 100000));
        e.u.order.promised_ship_by = t + (int64_t)(next_rand() % DAY) - DAY / 2;
        e.u.order.cancelled_by = (int)(next_rand() % TD_CANCEL__CNT);
        return e;
    }
    case 1:
        return review(1 + (int)(next_rand() % 5), next_rand() % 7 == 0, t);
    default:
        return refund((int)(next_rand() % TD_REFUND__CNT), t);
    }
}

static void test_any_order_and_split_gives_same_signals(void **state) {
    enum { N = 3000, ROUNDS = 20 };
    static td_event_t evs[N];
    td_sigstate_t ref, s;
    (void)state;

    for (int i = 0; i < N; i++)
        evs[i] = random_event();
    fold(&ref, evs, N);
    for (int round = 0; round < ROUNDS; round++) {
        /* shuffle */
        for (int i = N - 1; i > 0; i--) {
            int j = (int)(next_rand() % (uint64_t)(i + 1));
            td_event_t t = evs[i];
            evs[i] = evs[j];
            evs[j] = t;
        }
        /* split into random chunks, one delta per kind per chunk */
        td_sigstate_init(&s);
        int i = 0;
        while (i < N) {
            int len = 1 + (int)(next_rand() % 400);
            td_sigdelta_t d[TD_EV__CNT];
            for (int k = 0; k < TD_EV__CNT; k++)
                td_sigdelta_init(&d[k], (td_event_kind_t)k);
            for (int j = i; j < i + len && j < N; j++)
                td_sigdelta_add(&d[evs[j].kind], &evs[j]);
            for (int k = TD_EV__CNT - 1; k >= 0; k--)
                td_sigstate_merge(&s, &d[k]);
            i += len;
        }
        assert_int_equal(s.as_of, ref.as_of);
        for (int k = 0; k < TD_SIG__CNT; k++) {
            assert_int_equal(s.present[k], ref.present[k]);
            if (fabs(s.v[k] - ref.v[k]) > 1e-9 * fmax(1.0, fabs(ref.v[k])))
                fail_msg("%s: %.17g vs %.17g", td_signals[k].name, s.v[k],
                         ref.v[k]);
        }
    }
}

static void test_lua_source_fits_and_names_every_signal(void **state) {
    static char buf[65536];
    int n = td_signals_lua(buf, sizeof(buf));
    (void)state;
    assert_true(n > 0);
    for (int i = 0; i < TD_SIG__CNT; i++) {
        char quoted[128];
        snprintf(quoted, sizeof(quoted), "'%s'", td_signals[i].name);
        assert_non_null(strstr(buf, quoted));
    }
    assert_int_equal(td_signals_lua(buf, 10), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalog_is_consistent),
        cmocka_unit_test(test_orders_paid_counts_and_decays),
        cmocka_unit_test(test_late_shipment_rate),
        cmocka_unit_test(test_merchant_cancellations_only),
        cmocka_unit_test(test_flagged_reviews_stay_out_of_average),
        cmocka_unit_test(test_ratio_with_zero_denominator_is_absent),
        cmocka_unit_test(test_steady_rate_equals_plain_count),
        cmocka_unit_test(test_any_order_and_split_gives_same_signals),
        cmocka_unit_test(test_lua_source_fits_and_names_every_signal),
    };
    return cmocka_run_group_tests_name("signals", tests, NULL, NULL);
}
