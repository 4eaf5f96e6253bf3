/*
 * test_signals.c - the signal catalog.
 *
 * Every signal has at least one row in the table in signal_rows(): a short
 * hand-built event sequence and the value the definition gives for it,
 * worked out by hand in the row (V = sum of w * exp(-(T - t) / W) for a
 * window W, plain sums for lifetime, extremes for MIN/MAX, derived values
 * from those). Every row ends at the same as_of T0, so an event `age` ms
 * old weighs d30(age) = exp(-age / 30 days) in a 30-day window. Each row is
 * folded three ways (in order, reversed, one delta per event merged
 * backwards), so late events are part of every row. A signal without a row
 * fails test_every_signal_has_a_row: adding a signal is one line in
 * signals.def plus one row here.
 *
 * Then: distinct buyers from buyer_order_seq against buyer identity, the
 * steady-rate property of the decay, robustness on extreme timestamps, and
 * the property test (random events of every kind and field, random order
 * and split, equal signals).
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
#include "signals_zh.h"
#include "harness.h"

#define DAY   86400000LL
#define HOUR  3600000LL
#define T0    1700000000000LL /* as_of of every row */
#define MAXEV 8

/* ---- events, `age` ms before T0 ---- */

static td_event_t ord(int status, int64_t age) {
    td_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = TD_EV_ORDER;
    e.event_time = T0 - age;
    e.merchant_id = (td_str_t){"m1", 2};
    e.u.order.status = status;
    e.u.order.channel = TD_CHANNEL_LIVE;
    e.u.order.cancelled_by = TD_NULL_ENUM;
    e.u.order.promised_ship_by = TD_NULL_TS;
    e.u.order.promised_delivery_by = TD_NULL_TS;
    e.u.order.tracking_valid = TD_NULL_BOOL;
    e.u.order.paid_at = TD_NULL_TS;
    e.u.order.shipped_at = TD_NULL_TS;
    return e;
}

static td_event_t created(int64_t age) {
    return ord(TD_ORDER_CREATED, age);
}
static td_event_t paid(int64_t age) {
    return ord(TD_ORDER_PAID, age);
}
static td_event_t shipped(int64_t age) {
    return ord(TD_ORDER_SHIPPED, age);
}
static td_event_t delivered(int64_t age) {
    return ord(TD_ORDER_DELIVERED, age);
}
static td_event_t completed(int64_t age) {
    return ord(TD_ORDER_COMPLETED, age);
}
static td_event_t cancelled(int by, int64_t age) {
    td_event_t e = ord(TD_ORDER_CANCELLED, age);
    e.u.order.cancelled_by = by;
    return e;
}
/* A paid order of `cents` from channel ch. */
static td_event_t sale(int ch, int64_t cents, int64_t age) {
    td_event_t e = paid(age);
    e.u.order.channel = ch;
    e.u.order.amount_cents = cents;
    return e;
}
static td_event_t amt(td_event_t e, int64_t cents) {
    e.u.order.amount_cents = cents;
    return e;
}
static td_event_t seq(td_event_t e, int n) {
    e.u.order.buyer_order_seq = n;
    return e;
}
static td_event_t tracking(td_event_t e, int valid) {
    e.u.order.tracking_valid = valid;
    return e;
}
/* Timestamps relative to the event's own time: ship_by(e, -HOUR) promised
 * shipping an hour before the event, so it is late. */
static td_event_t ship_by(td_event_t e, int64_t rel) {
    e.u.order.promised_ship_by = e.event_time + rel;
    return e;
}
static td_event_t deliver_by(td_event_t e, int64_t rel) {
    e.u.order.promised_delivery_by = e.event_time + rel;
    return e;
}
static td_event_t paid_at(td_event_t e, int64_t rel) {
    e.u.order.paid_at = e.event_time + rel;
    return e;
}
static td_event_t shipped_at(td_event_t e, int64_t rel) {
    e.u.order.shipped_at = e.event_time + rel;
    return e;
}

static td_event_t rev(int rating, int64_t age) {
    td_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = TD_EV_REVIEW;
    e.event_time = T0 - age;
    e.merchant_id = (td_str_t){"m1", 2};
    e.u.review.rating = rating;
    return e;
}
static td_event_t flag(td_event_t e) {
    e.u.review.flagged = 1;
    return e;
}
static td_event_t media(td_event_t e) {
    e.u.review.has_media = 1;
    return e;
}
/* Dimension ratings, 0 = not rated. */
static td_event_t
dims(td_event_t e, int quality, int value, int service, int logistics) {
    e.u.review.quality_rating = quality;
    e.u.review.value_rating = value;
    e.u.review.service_rating = service;
    e.u.review.logistics_rating = logistics;
    return e;
}

static td_event_t ref(int status, int64_t age) {
    td_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = TD_EV_REFUND;
    e.event_time = T0 - age;
    e.merchant_id = (td_str_t){"m1", 2};
    e.u.refund.status = status;
    e.u.refund.kind = TD_KIND_RETURN_AND_REFUND;
    e.u.refund.reason = TD_REASON_NO_REASON_7D;
    e.u.refund.responsible = TD_NULL_ENUM;
    e.u.refund.requested_at = TD_NULL_TS;
    return e;
}
static td_event_t requested(int64_t age) {
    return ref(TD_REFUND_REQUESTED, age);
}
static td_event_t approved(int64_t age) {
    return ref(TD_REFUND_APPROVED, age);
}
static td_event_t rejected(int64_t age) {
    return ref(TD_REFUND_REJECTED, age);
}
static td_event_t refunded(int64_t age) {
    return ref(TD_REFUND_COMPLETED, age);
}
static td_event_t escalated(int64_t age) {
    return ref(TD_REFUND_ESCALATED, age);
}
static td_event_t arbitrated(int responsible, int64_t age) {
    td_event_t e = ref(TD_REFUND_ARBITRATED, age);
    e.u.refund.responsible = responsible;
    return e;
}
/* Arbitration ruled against the merchant. */
static td_event_t lost(int64_t age) {
    return arbitrated(TD_RESP_MERCHANT, age);
}
static td_event_t why(td_event_t e, int reason) {
    e.u.refund.reason = reason;
    return e;
}
static td_event_t refund_only(td_event_t e) {
    e.u.refund.kind = TD_KIND_REFUND_ONLY;
    return e;
}
static td_event_t ramt(td_event_t e, int64_t cents) {
    e.u.refund.amount_cents = cents;
    return e;
}
static td_event_t resp(td_event_t e, int responsible) {
    e.u.refund.responsible = responsible;
    return e;
}
static td_event_t was_rej(td_event_t e) {
    e.u.refund.was_rejected = 1;
    return e;
}
static td_event_t req_at(td_event_t e, int64_t rel) {
    e.u.refund.requested_at = e.event_time + rel;
    return e;
}

/* Weight of an event `age` ms old in a window. */
static double d1(int64_t age) {
    return exp(-(double)age / (double)TD_WIN_D1);
}
static double d7(int64_t age) {
    return exp(-(double)age / (double)TD_WIN_D7);
}
static double d30(int64_t age) {
    return exp(-(double)age / (double)TD_WIN_D30);
}
static double d90(int64_t age) {
    return exp(-(double)age / (double)TD_WIN_D90);
}

/* ---- the table ---- */

typedef struct row_s {
    td_signal_id_t sig;
    double want;
    int present;
    int nev;
    td_event_t ev[MAXEV];
} row_t;

#define EVN(...)                                                               \
    ((int)(sizeof((td_event_t[]){__VA_ARGS__}) / sizeof(td_event_t)))
/* The signal has value `want` after the events. */
#define ROW(sig, want, ...)                                                    \
    {                                                                          \
        TD_SIG_##sig, (want), 1, EVN(__VA_ARGS__), {                           \
            __VA_ARGS__                                                        \
        }                                                                      \
    }
/* The signal is absent (a base signal nothing contributed to, a ratio
 * with a zero denominator, an age without its timestamp). */
#define ABSENT(sig, ...)                                                       \
    {                                                                          \
        TD_SIG_##sig, 0, 0, EVN(__VA_ARGS__), {                                \
            __VA_ARGS__                                                        \
        }                                                                      \
    }

/* Shared event sets of rows that read the same events. */
#define DIM_EVS(q, v, s, l)                                                    \
    dims(rev(5, 0), 4 * (q), 4 * (v), 4 * (s), 4 * (l)),                       \
        dims(rev(3, 5 * DAY), 2 * (q), 2 * (v), 2 * (s), 2 * (l)), rev(4, 0),  \
        flag(dims(rev(1, 0), 1, 1, 1, 1)),                                     \
        dims(rev(5, 0), 5 * !(q), 5 * !(v), 5 * !(s), 5 * !(l))
#define QUALITY_EVS   DIM_EVS(1, 0, 0, 0)
#define VALUE_EVS     DIM_EVS(0, 1, 0, 0)
#define SERVICE_EVS   DIM_EVS(0, 0, 1, 0)
#define LOGISTICS_EVS DIM_EVS(0, 0, 0, 1)
#define DIM_COUNT     (1 + d30(5 * DAY))
#define DIM_SUM       (4 + 2 * d30(5 * DAY))
#define REVIEW_EVS    rev(5, 0), rev(4, 2 * DAY), flag(rev(1, 0)), rev(3, 60 * DAY)
#define RESOLVE_EVS                                                            \
    req_at(refunded(0), -10 * HOUR), req_at(rejected(2 * DAY), -30 * HOUR),    \
        req_at(refunded(0), HOUR), refunded(0),                                \
        req_at(approved(0), -5 * HOUR), req_at(escalated(0), -5 * HOUR)
#define SHIP_TIME_EVS                                                          \
    paid_at(shipped(0), -5 * HOUR), paid_at(shipped(2 * DAY), -30 * HOUR),     \
        shipped(0)
#define DELIVERY_TIME_EVS                                                      \
    shipped_at(delivered(0), -48 * HOUR),                                      \
        shipped_at(delivered(6 * DAY), -72 * HOUR), delivered(0)
#define CHANNEL_EVS                                                            \
    sale(TD_CHANNEL_LIVE, 1000, 0),                                            \
        sale(TD_CHANNEL_SHORT_VIDEO, 3000, 2 * DAY),                           \
        sale(TD_CHANNEL_SHELF, 500, 0), amt(shipped(0), 800)
#define CHANNEL_GMV (1500 + 3000 * d30(2 * DAY))

static row_t *rows;
static size_t nrows;

/* Builds the table (automatic storage: the rows call functions). */
static void signal_rows(void) {
    /* clang-format off */
    const row_t tab[] = {
    /* ---- volume ---- */
    ROW(orders_paid_total, 2, paid(200 * DAY), paid(DAY), created(0), shipped(0)),
    ABSENT(orders_paid_total, created(0), cancelled(TD_CANCEL_BUYER, 0)),
    ROW(orders_paid_1d, 1 + d1(12 * HOUR) + d1(3 * DAY), paid(0), paid(12 * HOUR), paid(3 * DAY), created(0)),
    ROW(orders_paid_7d, 1 + d7(6 * DAY) + d7(20 * DAY), paid(0), paid(6 * DAY), paid(20 * DAY), shipped(0)),
    ROW(orders_paid_30d, 1 + d30(29 * DAY) + d30(100 * DAY), paid(0), paid(29 * DAY), paid(100 * DAY), delivered(0)),
    ROW(orders_paid_90d, 2 + d90(200 * DAY), paid(0), paid(0), paid(200 * DAY), cancelled(TD_CANCEL_BUYER, 0)),
    ROW(gmv_cents_30d, 1000 + 2500 * d30(10 * DAY), amt(paid(0), 1000), amt(paid(10 * DAY), 2500), amt(created(0), 9999), amt(shipped(0), 7777)),
    ROW(first_order_ms, (double)(T0 - 400 * DAY), paid(5 * DAY), created(500 * DAY), paid(400 * DAY), paid(0)),
    ABSENT(first_order_ms, created(0), shipped(DAY)),
    ROW(orders_trend_7d_30d, (1 + d7(DAY) + d7(20 * DAY)) / (1 + d30(DAY) + d30(20 * DAY)) * 30 / 7, paid(0), paid(DAY), paid(20 * DAY)),
    ABSENT(orders_trend_7d_30d, created(0)),
    ROW(store_age_days, 400, paid(400 * DAY), created(500 * DAY), rev(5, 0)),
    ABSENT(store_age_days, created(0), rev(5, 0)),
    /* ---- fulfillment ---- */
    ROW(orders_cancelled_merchant_30d, 1 + d30(2 * DAY), cancelled(TD_CANCEL_MERCHANT, 0), cancelled(TD_CANCEL_MERCHANT, 2 * DAY), cancelled(TD_CANCEL_BUYER, 0), cancelled(TD_CANCEL_PLATFORM, 0), paid(0)),
    ROW(orders_cancelled_merchant_90d, 1 + d90(2 * DAY), cancelled(TD_CANCEL_MERCHANT, 0), cancelled(TD_CANCEL_MERCHANT, 2 * DAY), cancelled(TD_CANCEL_BUYER, 0), cancelled(TD_CANCEL_PLATFORM, 0), paid(0)),
    ROW(shipped_30d, 1 + d30(40 * DAY), shipped(0), shipped(40 * DAY), delivered(0), paid(0)),
    ROW(shipped_90d, 1 + d90(40 * DAY), shipped(0), shipped(40 * DAY), delivered(0), paid(0)),
    ROW(shipped_late_30d, 1 + d30(5 * DAY), ship_by(shipped(0), -HOUR), ship_by(shipped(3 * DAY), HOUR), shipped(0), ship_by(shipped(5 * DAY), -1), ship_by(shipped(0), 0), ship_by(delivered(0), -DAY)),
    ROW(shipped_late_90d, 1 + d90(5 * DAY), ship_by(shipped(0), -HOUR), ship_by(shipped(3 * DAY), HOUR), shipped(0), ship_by(shipped(5 * DAY), -1), ship_by(shipped(0), 0), ship_by(delivered(0), -DAY)),
    ABSENT(shipped_late_30d, shipped(0), ship_by(shipped(0), 0)),
    ROW(shipped_tracking_valid_30d, 1 + d30(DAY), tracking(shipped(0), 1), tracking(shipped(DAY), 1), tracking(shipped(0), 0), shipped(0), tracking(delivered(0), 1)),
    ROW(shipped_timed_30d, 1 + d30(2 * DAY), paid_at(shipped(0), -5 * HOUR), paid_at(shipped(2 * DAY), -30 * HOUR), shipped(0), paid_at(delivered(0), -5 * HOUR)),
    /* paid after shipping (clocks disagree) counts 0 hours */
    ROW(ship_hours_sum_30d, 5 + 30 * d30(2 * DAY), paid_at(shipped(0), -5 * HOUR), paid_at(shipped(2 * DAY), -30 * HOUR), paid_at(shipped(0), HOUR), shipped(0), paid_at(delivered(0), -9 * HOUR)),
    ROW(shipped_within_24h_30d, 2 + d30(3 * DAY), paid_at(shipped(0), -5 * HOUR), paid_at(shipped(3 * DAY), -24 * HOUR), paid_at(shipped(0), -24 * HOUR - 1), paid_at(shipped(0), HOUR), shipped(0)),
    ROW(late_ship_rate_30d, 1 / (2 + d30(2 * DAY)), ship_by(shipped(0), -HOUR), ship_by(shipped(2 * DAY), HOUR), shipped(0)),
    ROW(late_ship_rate_30d, 0, ship_by(shipped(0), HOUR)),
    ABSENT(late_ship_rate_30d, paid(0)),
    ROW(merchant_cancel_rate_30d, d30(DAY) / (1 + d30(5 * DAY) + d30(10 * DAY)), paid(0), paid(5 * DAY), paid(10 * DAY), cancelled(TD_CANCEL_MERCHANT, DAY), cancelled(TD_CANCEL_BUYER, 0)),
    ABSENT(merchant_cancel_rate_30d, cancelled(TD_CANCEL_MERCHANT, 0)),
    ROW(valid_tracking_rate_30d, (1 + d30(4 * DAY)) / (2 + d30(4 * DAY)), tracking(shipped(0), 1), tracking(shipped(4 * DAY), 1), tracking(shipped(0), 0)),
    ROW(ship_24h_rate_30d, 1 / (1 + d30(2 * DAY)), SHIP_TIME_EVS),
    ABSENT(ship_24h_rate_30d, shipped(0)),
    ROW(ship_hours_avg_30d, (5 + 30 * d30(2 * DAY)) / (1 + d30(2 * DAY)), SHIP_TIME_EVS),
    /* 0 hours: the sum is absent (nothing added) but the average is 0 */
    ROW(ship_hours_avg_30d, 0, paid_at(shipped(0), 0)),
    ABSENT(ship_hours_avg_30d, shipped(0), paid(0)),
    /* ---- logistics ---- */
    ROW(delivered_30d, 1 + d30(10 * DAY), delivered(0), delivered(10 * DAY), completed(0), shipped(0)),
    ROW(delivered_late_30d, 1 + d30(7 * DAY), deliver_by(delivered(0), -HOUR), deliver_by(delivered(7 * DAY), -DAY), deliver_by(delivered(DAY), DAY), delivered(0), deliver_by(shipped(0), -HOUR)),
    ROW(delivered_timed_30d, 1 + d30(6 * DAY), shipped_at(delivered(0), -48 * HOUR), shipped_at(delivered(6 * DAY), -72 * HOUR), delivered(0), shipped_at(completed(0), -48 * HOUR)),
    ROW(delivery_hours_sum_30d, 48 + 72 * d30(6 * DAY), shipped_at(delivered(0), -48 * HOUR), shipped_at(delivered(6 * DAY), -72 * HOUR), shipped_at(delivered(0), HOUR), delivered(0), shipped_at(completed(0), -48 * HOUR)),
    ROW(logistics_rated_30d, DIM_COUNT, LOGISTICS_EVS),
    ROW(logistics_rating_sum_30d, DIM_SUM, LOGISTICS_EVS),
    ROW(refunds_logistics_30d, 2 + d30(DAY), why(requested(0), TD_REASON_NOT_RECEIVED), why(requested(0), TD_REASON_DAMAGED), why(requested(DAY), TD_REASON_LATE_DELIVERY), why(requested(0), TD_REASON_QUALITY), why(requested(0), TD_REASON_OTHER), why(approved(0), TD_REASON_DAMAGED)),
    ROW(late_delivery_rate_30d, d30(3 * DAY) / (1 + d30(3 * DAY)), deliver_by(delivered(3 * DAY), -HOUR), deliver_by(delivered(0), HOUR)),
    ABSENT(late_delivery_rate_30d, shipped(0)),
    ROW(delivery_hours_avg_30d, (48 + 72 * d30(6 * DAY)) / (1 + d30(6 * DAY)), DELIVERY_TIME_EVS),
    ABSENT(delivery_hours_avg_30d, delivered(0)),
    ROW(logistics_rating_avg_30d, DIM_SUM / DIM_COUNT, LOGISTICS_EVS),
    ROW(logistics_refund_rate_30d, (1 + d30(DAY)) / 2, paid(0), paid(0), why(requested(0), TD_REASON_NOT_RECEIVED), why(requested(DAY), TD_REASON_DAMAGED), why(requested(0), TD_REASON_QUALITY)),
    /* ---- product quality ---- */
    ROW(reviews_30d, 1 + d30(2 * DAY) + d30(60 * DAY), REVIEW_EVS),
    ROW(reviews_90d, 1 + d90(2 * DAY) + d90(60 * DAY), REVIEW_EVS),
    ABSENT(reviews_30d, flag(rev(5, 0))),
    ROW(rating_sum_30d, 5 + 4 * d30(2 * DAY) + 3 * d30(60 * DAY), REVIEW_EVS),
    ROW(negative_reviews_30d, 1 + d30(DAY), rev(1, 0), rev(2, DAY), rev(3, 0), flag(rev(1, 0)), rev(5, 0)),
    ROW(negative_reviews_90d, 1 + d90(DAY), rev(1, 0), rev(2, DAY), rev(3, 0), flag(rev(1, 0)), rev(5, 0)),
    ROW(quality_rated_30d, DIM_COUNT, QUALITY_EVS),
    ROW(quality_rating_sum_30d, DIM_SUM, QUALITY_EVS),
    ROW(value_rated_30d, DIM_COUNT, VALUE_EVS),
    ROW(value_rating_sum_30d, DIM_SUM, VALUE_EVS),
    ROW(refunds_quality_30d, 1 + d30(2 * DAY), why(requested(0), TD_REASON_QUALITY), why(requested(2 * DAY), TD_REASON_QUALITY), why(approved(0), TD_REASON_QUALITY), why(requested(0), TD_REASON_NOT_AS_DESCRIBED)),
    ROW(refunds_not_as_described_30d, 1 + d30(2 * DAY), why(requested(0), TD_REASON_NOT_AS_DESCRIBED), why(requested(2 * DAY), TD_REASON_NOT_AS_DESCRIBED), why(refunded(0), TD_REASON_NOT_AS_DESCRIBED), why(requested(0), TD_REASON_QUALITY)),
    ROW(rating_avg_30d, (5 + 3 * d30(10 * DAY)) / (1 + d30(10 * DAY)), rev(5, 0), rev(3, 10 * DAY), flag(rev(1, 0))),
    ABSENT(rating_avg_30d, flag(rev(1, 0)), flag(rev(5, 0))),
    ROW(negative_review_rate_30d, (1 + d30(DAY)) / (3 + d30(DAY)), rev(1, 0), rev(2, DAY), rev(4, 0), rev(5, 0), flag(rev(1, 0))),
    ROW(quality_rating_avg_30d, DIM_SUM / DIM_COUNT, QUALITY_EVS),
    ABSENT(quality_rating_avg_30d, rev(5, 0), dims(rev(4, 0), 0, 4, 4, 4)),
    ROW(value_rating_avg_30d, DIM_SUM / DIM_COUNT, VALUE_EVS),
    ROW(quality_refund_rate_30d, d30(2 * DAY) / (2 + d30(9 * DAY)), paid(0), paid(0), paid(9 * DAY), why(requested(2 * DAY), TD_REASON_QUALITY), why(requested(0), TD_REASON_DAMAGED)),
    ROW(not_as_described_rate_30d, 1 / (1 + d30(DAY)), paid(0), paid(DAY), why(requested(0), TD_REASON_NOT_AS_DESCRIBED), why(approved(0), TD_REASON_NOT_AS_DESCRIBED)),
    /* ---- after-sales service ---- */
    ROW(service_rated_30d, DIM_COUNT, SERVICE_EVS),
    ROW(service_rating_sum_30d, DIM_SUM, SERVICE_EVS),
    ROW(refunds_requested_30d, 1 + d30(4 * DAY), requested(0), requested(4 * DAY), approved(0), refunded(0)),
    ROW(refunds_merchant_fault_30d, 2 + d30(8 * DAY), why(requested(0), TD_REASON_QUALITY), why(requested(0), TD_REASON_NOT_AS_DESCRIBED), why(requested(8 * DAY), TD_REASON_COUNTERFEIT), why(requested(0), TD_REASON_NO_REASON_7D), why(requested(0), TD_REASON_DAMAGED), why(requested(0), TD_REASON_OTHER), why(lost(0), TD_REASON_COUNTERFEIT)),
    ROW(refunds_merchant_fault_90d, 2 + d90(8 * DAY), why(requested(0), TD_REASON_QUALITY), why(requested(0), TD_REASON_NOT_AS_DESCRIBED), why(requested(8 * DAY), TD_REASON_COUNTERFEIT), why(requested(0), TD_REASON_NO_REASON_7D), why(requested(0), TD_REASON_DAMAGED), why(requested(0), TD_REASON_OTHER), why(lost(0), TD_REASON_COUNTERFEIT)),
    ROW(refunds_only_30d, 1 + d30(3 * DAY), refund_only(requested(0)), refund_only(requested(3 * DAY)), requested(0), refund_only(approved(0))),
    ROW(refunds_approved_30d, 1 + d30(9 * DAY), approved(0), approved(9 * DAY), requested(0), refunded(0)),
    ROW(refunds_rejected_90d, 1 + d90(45 * DAY) + d90(200 * DAY), rejected(0), rejected(45 * DAY), rejected(200 * DAY), approved(0), escalated(0)),
    ROW(refunds_completed_30d, 1 + d30(DAY), refunded(0), refunded(DAY), approved(0), rejected(0)),
    /* requested after the resolution (clocks disagree) counts 0 hours */
    ROW(refunds_resolved_timed_30d, 2 + d30(2 * DAY), RESOLVE_EVS),
    ROW(refund_resolve_hours_sum_30d, 10 + 30 * d30(2 * DAY), RESOLVE_EVS),
    ROW(service_rating_avg_30d, DIM_SUM / DIM_COUNT, SERVICE_EVS),
    ROW(refund_rate_30d, (1 + d30(3 * DAY)) / 3, paid(0), paid(0), paid(0), requested(0), requested(3 * DAY)),
    ABSENT(refund_rate_30d, requested(0)),
    ROW(merchant_fault_refund_rate_30d, 2 / (2 + d30(20 * DAY)), paid(0), paid(0), paid(20 * DAY), why(requested(0), TD_REASON_COUNTERFEIT), why(requested(0), TD_REASON_QUALITY), why(requested(0), TD_REASON_LATE_DELIVERY)),
    ROW(refund_approval_rate_30d, d30(DAY) / (1 + d30(2 * DAY)), requested(0), requested(2 * DAY), approved(DAY)),
    ABSENT(refund_approval_rate_30d, approved(0)),
    ROW(refund_completion_rate_30d, 0.5, requested(0), requested(0), refunded(0)),
    ROW(refund_resolve_hours_avg_30d, (10 + 30 * d30(2 * DAY)) / (1 + d30(2 * DAY)), req_at(refunded(0), -10 * HOUR), req_at(rejected(2 * DAY), -30 * HOUR), refunded(0)),
    ABSENT(refund_resolve_hours_avg_30d, refunded(0), rejected(0)),
    /* ---- disputes and counterfeit ---- */
    ROW(refunds_counterfeit_90d, 1 + d90(50 * DAY), why(requested(0), TD_REASON_COUNTERFEIT), why(requested(50 * DAY), TD_REASON_COUNTERFEIT), why(requested(0), TD_REASON_QUALITY), why(approved(0), TD_REASON_COUNTERFEIT), why(lost(0), TD_REASON_COUNTERFEIT)),
    ROW(escalations_30d, 1 + d30(6 * DAY), escalated(0), escalated(6 * DAY), lost(0), rejected(0)),
    ROW(arbitrations_lost_90d, 1 + d90(30 * DAY), lost(0), lost(30 * DAY), arbitrated(TD_RESP_BUYER, 0), arbitrated(TD_RESP_PLATFORM, 0), arbitrated(TD_RESP_LOGISTICS, 0), resp(escalated(0), TD_RESP_MERCHANT)),
    ROW(rejections_overturned_90d, 1 + d90(20 * DAY), was_rej(lost(0)), was_rej(lost(20 * DAY)), lost(0), was_rej(arbitrated(TD_RESP_BUYER, 0)), was_rej(rejected(0)), was_rej(escalated(0))),
    ROW(counterfeit_confirmed_90d, 1 + d90(120 * DAY), why(lost(0), TD_REASON_COUNTERFEIT), why(lost(120 * DAY), TD_REASON_COUNTERFEIT), why(arbitrated(TD_RESP_BUYER, 0), TD_REASON_COUNTERFEIT), why(lost(0), TD_REASON_QUALITY), why(requested(0), TD_REASON_COUNTERFEIT)),
    ROW(counterfeit_confirmed_total, 3, why(lost(0), TD_REASON_COUNTERFEIT), why(lost(120 * DAY), TD_REASON_COUNTERFEIT), why(lost(400 * DAY), TD_REASON_COUNTERFEIT), why(arbitrated(TD_RESP_BUYER, 0), TD_REASON_COUNTERFEIT), why(lost(0), TD_REASON_QUALITY)),
    ABSENT(counterfeit_confirmed_total, why(requested(0), TD_REASON_COUNTERFEIT), why(arbitrated(TD_RESP_PLATFORM, 0), TD_REASON_COUNTERFEIT)),
    ROW(last_counterfeit_ms, (double)(T0 - 3 * DAY), why(lost(10 * DAY), TD_REASON_COUNTERFEIT), why(lost(3 * DAY), TD_REASON_COUNTERFEIT), why(lost(400 * DAY), TD_REASON_COUNTERFEIT), why(arbitrated(TD_RESP_BUYER, DAY), TD_REASON_COUNTERFEIT), why(lost(0), TD_REASON_QUALITY), why(requested(0), TD_REASON_COUNTERFEIT)),
    ABSENT(last_counterfeit_ms, why(arbitrated(TD_RESP_BUYER, 0), TD_REASON_COUNTERFEIT), why(lost(0), TD_REASON_QUALITY)),
    ROW(escalation_rate_30d, d30(3 * DAY) / (1 + d30(3 * DAY)), paid(0), paid(3 * DAY), escalated(3 * DAY)),
    ROW(counterfeit_claim_rate_90d, d90(60 * DAY) / (1 + d90(60 * DAY)), paid(0), paid(60 * DAY), why(requested(60 * DAY), TD_REASON_COUNTERFEIT), why(requested(0), TD_REASON_NOT_AS_DESCRIBED)),
    ROW(arbitration_loss_rate_90d, d90(60 * DAY) / (1 + d90(60 * DAY) + d90(100 * DAY)), paid(0), paid(60 * DAY), paid(100 * DAY), lost(60 * DAY), arbitrated(TD_RESP_BUYER, 0)),
    ROW(rejection_overturn_rate_90d, 1 / (2 + d90(30 * DAY)), rejected(0), rejected(0), rejected(30 * DAY), was_rej(lost(0))),
    ABSENT(rejection_overturn_rate_90d, was_rej(lost(0))),
    /* the age runs to as_of, here set by an order */
    ROW(days_since_counterfeit, 12.5, why(lost(12 * DAY + 12 * HOUR), TD_REASON_COUNTERFEIT), why(lost(40 * DAY), TD_REASON_COUNTERFEIT), paid(0)),
    ABSENT(days_since_counterfeit, paid(0), why(lost(0), TD_REASON_QUALITY)),
    /* ---- buyer loyalty (buyer_order_seq; 0 = unknown, not counted) ---- */
    ROW(first_orders_90d, 1 + d90(50 * DAY), seq(paid(0), 1), seq(paid(50 * DAY), 1), seq(paid(0), 2), seq(paid(0), 0), seq(created(0), 1), seq(shipped(0), 1)),
    ROW(repeat_orders_30d, 2 + d30(10 * DAY), seq(paid(0), 2), seq(paid(0), 3), seq(paid(10 * DAY), 17), seq(paid(0), 1), seq(paid(0), 0), seq(created(0), 2)),
    ROW(repeat_buyers_90d, 1 + d90(100 * DAY), seq(paid(0), 2), seq(paid(100 * DAY), 2), seq(paid(0), 3), seq(paid(0), 1), seq(paid(0), 0), seq(shipped(0), 2)),
    ROW(buyers_total, 3, seq(paid(0), 1), seq(paid(400 * DAY), 1), seq(paid(2 * DAY), 1), seq(paid(0), 2), seq(paid(0), 0), seq(created(0), 1)),
    ABSENT(buyers_total, seq(paid(0), 0), seq(paid(0), 2)),
    ROW(repeat_buyer_rate_90d, (1 + d90(80 * DAY)) / (2 + d90(200 * DAY)), seq(paid(0), 1), seq(paid(0), 1), seq(paid(200 * DAY), 1), seq(paid(0), 2), seq(paid(80 * DAY), 2), seq(paid(0), 3), seq(paid(0), 0)),
    ABSENT(repeat_buyer_rate_90d, seq(paid(0), 2), seq(paid(0), 0)),
    ROW(repeat_order_share_30d, (1 + d30(5 * DAY)) / (3 + d30(5 * DAY)), seq(paid(0), 1), seq(paid(0), 2), seq(paid(5 * DAY), 4), seq(paid(0), 0)),
    /* ---- channel mix ---- */
    ROW(gmv_live_30d, 1000 + 2000 * d30(3 * DAY), sale(TD_CHANNEL_LIVE, 1000, 0), sale(TD_CHANNEL_LIVE, 2000, 3 * DAY), sale(TD_CHANNEL_SHELF, 500, 0), sale(TD_CHANNEL_SHORT_VIDEO, 300, 0), amt(shipped(0), 700)),
    ROW(gmv_short_video_30d, 300 + 2000 * d30(3 * DAY), sale(TD_CHANNEL_SHORT_VIDEO, 300, 0), sale(TD_CHANNEL_SHORT_VIDEO, 2000, 3 * DAY), sale(TD_CHANNEL_SHELF, 500, 0), sale(TD_CHANNEL_LIVE, 1000, 0)),
    ROW(gmv_shelf_30d, 500 + 2000 * d30(3 * DAY), sale(TD_CHANNEL_SHELF, 500, 0), sale(TD_CHANNEL_SHELF, 2000, 3 * DAY), sale(TD_CHANNEL_LIVE, 1000, 0), sale(TD_CHANNEL_SHORT_VIDEO, 300, 0)),
    ROW(live_gmv_share_30d, 1000 / CHANNEL_GMV, CHANNEL_EVS),
    ROW(short_video_gmv_share_30d, 3000 * d30(2 * DAY) / CHANNEL_GMV, CHANNEL_EVS),
    ROW(shelf_gmv_share_30d, 500 / CHANNEL_GMV, CHANNEL_EVS),
    /* paid orders of 0 cents: no GMV, so no share */
    ABSENT(live_gmv_share_30d, sale(TD_CHANNEL_LIVE, 0, 0)),
    /* ---- risk ---- */
    ROW(reviews_all_30d, 2 + d30(3 * DAY), rev(5, 0), flag(rev(1, 3 * DAY)), media(rev(4, 0))),
    ROW(flagged_reviews_30d, 1 + d30(3 * DAY), flag(rev(1, 0)), flag(media(rev(5, 3 * DAY))), rev(2, 0), media(rev(1, 0))),
    ROW(refund_amount_cents_30d, 1500 + 500 * d30(4 * DAY), ramt(requested(0), 1500), ramt(requested(4 * DAY), 500), ramt(refunded(0), 1500), ramt(approved(0), 900)),
    ROW(flagged_review_share_30d, (1 + d30(2 * DAY)) / (3 + d30(2 * DAY)), flag(rev(1, 0)), flag(rev(5, 2 * DAY)), rev(4, 0), rev(2, 0)),
    ROW(refund_amount_share_30d, (800 + 200 * d30(DAY)) / 10000, sale(TD_CHANNEL_LIVE, 4000, 0), sale(TD_CHANNEL_SHELF, 6000, 0), ramt(requested(0), 800), ramt(requested(DAY), 200), ramt(refunded(0), 800)),
    ROW(refund_only_share_30d, 1 / (2 + d30(3 * DAY)), refund_only(requested(0)), requested(0), requested(3 * DAY)),
    };
    /* clang-format on */

    rows = malloc(sizeof(tab));
    assert_non_null(rows);
    memcpy(rows, tab, sizeof(tab));
    nrows = TD_ARRAY_LEN(tab);
}

static int group_setup(void **state) {
    (void)state;
    signal_rows();
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    free(rows);
    return 0;
}

/* ---- folding ---- */

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

/* Events last to first, one delta per kind. */
static void fold_reversed(td_sigstate_t *s, const td_event_t *evs, int n) {
    td_event_t rev_evs[MAXEV];
    for (int i = 0; i < n; i++)
        rev_evs[i] = evs[n - 1 - i];
    fold(s, rev_evs, n);
}

/* One delta per event, merged last to first. */
static void fold_each(td_sigstate_t *s, const td_event_t *evs, int n) {
    td_sigstate_init(s);
    for (int i = n - 1; i >= 0; i--) {
        td_sigdelta_t d;
        td_sigdelta_init(&d, evs[i].kind);
        td_sigdelta_add(&d, &evs[i]);
        td_sigstate_merge(s, &d);
    }
}

static int close_enough(double got, double want, double rel) {
    return fabs(got - want) <= rel * fmax(1.0, fabs(want));
}

static void assert_close(double got, double want) {
    if (!close_enough(got, want, 1e-9))
        fail_msg("got %.17g, want %.17g", got, want);
}

static void check_row(size_t ri) {
    static void (*const folds[])(td_sigstate_t *, const td_event_t *,
                                 int) = {fold, fold_reversed, fold_each};
    static const char *fold_names[] = {"in order", "reversed", "one by one"};
    const row_t *r = &rows[ri];
    const td_signal_t *sg = &td_signals[r->sig];
    int64_t T = TD_NULL_TS;

    for (int i = 0; i < r->nev; i++) {
        if (r->ev[i].event_time > T) T = r->ev[i].event_time;
    }
    if (T != T0)
        fail_msg("row %zu (%s): the latest event must be at age 0", ri,
                 sg->name);
    for (size_t f = 0; f < TD_ARRAY_LEN(folds); f++) {
        td_sigstate_t s;
        int exact = sg->agg == TD_AGG_MIN || sg->agg == TD_AGG_MAX;
        folds[f](&s, r->ev, r->nev);
        if (s.as_of != T0)
            fail_msg("row %zu (%s) %s: as_of %lld", ri, sg->name, fold_names[f],
                     (long long)s.as_of);
        if (s.present[r->sig] != r->present)
            fail_msg("row %zu (%s) %s: present %d, want %d", ri, sg->name,
                     fold_names[f], s.present[r->sig], r->present);
        if (!r->present) continue;
        if (exact ? s.v[r->sig] != r->want
                  : !close_enough(s.v[r->sig], r->want, 1e-12))
            fail_msg("row %zu (%s) %s: got %.17g, want %.17g", ri, sg->name,
                     fold_names[f], s.v[r->sig], r->want);
    }
}

/* ---- tests ---- */

static void test_catalog_is_consistent(void **state) {
    (void)state;
    for (int i = 0; i < TD_SIG__CNT; i++) {
        const td_signal_t *s = &td_signals[i];
        assert_non_null(s->name);
        assert_int_equal(td_signal_by_name(s->name), i);
        assert_true(strlen(s->meaning) > 5);
        assert_true(strlen(s->unit) > 0);
        /* Redis keeps the hash a listpack while fields are < 64 bytes. */
        assert_true(strlen(s->name) < 64);
        if (i < TD_SIG_BASE_CNT) {
            assert_true(s->source >= 0);
            assert_int_equal(td_signals_slot_sig(s->source, s->slot), i);
            assert_true(s->agg <= TD_AGG_MIN);
        } else {
            assert_int_equal(s->source, -1);
            assert_true(s->a < TD_SIG_BASE_CNT);
            assert_true(s->b < TD_SIG_BASE_CNT);
            assert_true(s->agg >= TD_AGG_RATIO && s->k > 0);
            /* A ratio of one window decays alike on both sides. */
            if (s->agg == TD_AGG_RATIO || s->agg == TD_AGG_AVG) {
                assert_int_equal(td_signals[s->a].window_ms, s->window_ms);
                assert_int_equal(td_signals[s->b].window_ms, s->window_ms);
            }
        }
    }
    assert_int_equal(td_signal_by_name("no_such_signal"), -1);
}

static void test_every_signal_has_a_row(void **state) {
    char missing[2048] = "";
    size_t len = 0;
    (void)state;

    for (int i = 0; i < TD_SIG__CNT; i++) {
        int found = 0;
        for (size_t r = 0; r < nrows && !found; r++)
            found = rows[r].sig == (td_signal_id_t)i && rows[r].present;
        if (!found && len < sizeof(missing)) {
            len += (size_t)snprintf(missing + len, sizeof(missing) - len, " %s",
                                    td_signals[i].name);
        }
    }
    if (len) fail_msg("signals without a row in signal_rows():%s", missing);
}

static void test_every_row_matches_its_definition(void **state) {
    (void)state;
    for (size_t r = 0; r < nrows; r++)
        check_row(r);
}

/*
 * Distinct buyers come from buyer_order_seq, which the order service sets to
 * the buyer's n-th order at the merchant. Counted that way they equal the
 * distinct buyer ids, exactly, without any per-buyer state here; orders
 * whose seq is unknown (0) are left out.
 */
static void test_distinct_buyers_are_exact_from_buyer_order_seq(void **state) {
    /* buyer, age of the order; buyers 'x' and 'y' come from a producer
     * that does not set buyer_order_seq */
    static const struct {
        char buyer;
        int64_t age;
    } hist[] = {
        {'a', 300 * DAY}, {'b', 200 * DAY}, {'b', 95 * DAY}, {'c', 80 * DAY},
        {'b', 60 * DAY},  {'d', 40 * DAY},  {'c', 20 * DAY}, {'x', 15 * DAY},
        {'d', 10 * DAY},  {'e', 5 * DAY},   {'y', 3 * DAY},  {'d', 2 * DAY},
        {'y', DAY},       {'f', 0},         {'b', 0},
    };
    enum { N = sizeof(hist) / sizeof(hist[0]) };
    td_event_t evs[N];
    int nth[128] = {0};
    double first90 = 0, second90 = 0, repeat30 = 0;
    int distinct = 0;
    td_sigstate_t s;
    (void)state;

    for (int i = 0; i < N; i++) {
        int b = hist[i].buyer, known = b != 'x' && b != 'y';
        int n = ++nth[b];
        evs[i] = seq(paid(hist[i].age), known ? n : 0);
        if (!known) continue;
        distinct += n == 1;
        first90 += n == 1 ? d90(hist[i].age) : 0;
        second90 += n == 2 ? d90(hist[i].age) : 0;
        repeat30 += n >= 2 ? d30(hist[i].age) : 0;
    }
    assert_int_equal(distinct, 6); /* a b c d e f */
    fold(&s, evs, N);
    assert_close(s.v[TD_SIG_buyers_total], distinct);
    assert_close(s.v[TD_SIG_first_orders_90d], first90);
    assert_close(s.v[TD_SIG_repeat_buyers_90d], second90);
    assert_close(s.v[TD_SIG_repeat_orders_30d], repeat30);
    assert_close(s.v[TD_SIG_repeat_buyer_rate_90d], second90 / first90);
    assert_close(s.v[TD_SIG_orders_paid_total], N);
}

static void test_steady_rate_equals_plain_count(void **state) {
    /* One event per minute for 90 days: the 30d window holds about the
     * events of the last 30 days (W / dt * (1 - e^-3) of them). */
    td_sigdelta_t d;
    td_sigstate_t s;
    int64_t step = 60000, n = 90 * DAY / step;
    (void)state;
    td_sigdelta_init(&d, TD_EV_ORDER);
    for (int64_t i = 0; i < n; i++) {
        td_event_t e = paid(90 * DAY - i * step);
        td_sigdelta_add(&d, &e);
    }
    td_sigstate_init(&s);
    td_sigstate_merge(&s, &d);
    double count30 = (double)(30 * DAY / step);
    assert_true(fabs(s.v[TD_SIG_orders_paid_30d] - count30) / count30 < 0.06);
    /* a steady rate is a trend of 1 */
    assert_true(fabs(s.v[TD_SIG_orders_trend_7d_30d] - 1) < 0.06);
}

/* Timestamps at the ends of the contract's range must not overflow the
 * hour computations (undefined behaviour, caught by UBSan). */
static void test_extreme_timestamps_stay_defined(void **state) {
    td_event_t e[3] = {paid_at(shipped(0), 0), shipped_at(delivered(0), 0),
                       refunded(0)};
    td_sigstate_t s;
    double hours = ((double)T0 - (double)(INT64_MIN + 1)) / (double)HOUR;
    (void)state;

    e[0].u.order.paid_at = INT64_MIN + 1;
    e[1].u.order.shipped_at = INT64_MIN + 1;
    e[2].u.refund.requested_at = INT64_MIN + 1;
    fold(&s, e, 3);
    assert_close(s.v[TD_SIG_ship_hours_sum_30d], hours);
    assert_close(s.v[TD_SIG_delivery_hours_sum_30d], hours);
    assert_close(s.v[TD_SIG_refund_resolve_hours_sum_30d], hours);
    assert_close(s.v[TD_SIG_shipped_within_24h_30d], 0);

    e[0].u.order.paid_at = INT64_MAX;
    fold(&s, e, 1);
    assert_close(s.v[TD_SIG_shipped_within_24h_30d], 1);
    assert_close(s.v[TD_SIG_ship_hours_avg_30d], 0);
}

/* ---- property: any order, any split ---- */

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void) {
    return td_h_xorshift(&rng);
}

static int64_t rand_range(int64_t lo, int64_t hi) {
    return lo + (int64_t)(next_rand() % (uint64_t)(hi - lo + 1));
}

/* A timestamp near t, or null one time in four. */
static int64_t rand_ts_near(int64_t t) {
    return next_rand() % 4 == 0 ? TD_NULL_TS
                                : t + rand_range(-3 * DAY, 2 * HOUR);
}

/* Events of every kind with every field the conditions read, over 400
 * days (far older than the longest window). */
static td_event_t random_event(void) {
    int64_t age = rand_range(0, 400 * DAY);
    td_event_t e;

    switch (next_rand() % 3) {
    case 0:
        e = ord((int)rand_range(0, TD_ORDER__CNT - 1), age);
        e.u.order.amount_cents = rand_range(0, 100000);
        e.u.order.channel = (int)rand_range(0, TD_CHANNEL__CNT - 1);
        e.u.order.cancelled_by = (int)rand_range(-1, TD_CANCEL__CNT - 1);
        e.u.order.promised_ship_by = rand_ts_near(e.event_time + DAY);
        e.u.order.promised_delivery_by = rand_ts_near(e.event_time + DAY);
        e.u.order.tracking_valid = (int)rand_range(-1, 1);
        e.u.order.paid_at = rand_ts_near(e.event_time);
        e.u.order.shipped_at = rand_ts_near(e.event_time);
        e.u.order.buyer_order_seq = (int)rand_range(0, 4);
        return e;
    case 1:
        e = rev((int)rand_range(1, 5), age);
        e.u.review.quality_rating = (int)rand_range(0, 5);
        e.u.review.value_rating = (int)rand_range(0, 5);
        e.u.review.service_rating = (int)rand_range(0, 5);
        e.u.review.logistics_rating = (int)rand_range(0, 5);
        e.u.review.has_media = (int)rand_range(0, 1);
        e.u.review.is_followup = (int)rand_range(0, 1);
        e.u.review.flagged = next_rand() % 7 == 0;
        return e;
    default:
        e = ref((int)rand_range(0, TD_REFUND__CNT - 1), age);
        e.u.refund.kind = (int)rand_range(0, TD_KIND__CNT - 1);
        e.u.refund.reason = (int)rand_range(0, TD_REASON__CNT - 1);
        e.u.refund.amount_cents = rand_range(0, 50000);
        e.u.refund.responsible = (int)rand_range(-1, TD_RESP__CNT - 1);
        e.u.refund.requested_at = rand_ts_near(e.event_time);
        e.u.refund.was_rejected = (int)rand_range(0, 1);
        return e;
    }
}

static void test_any_order_and_split_gives_same_signals(void **state) {
    enum { N = 3000, ROUNDS = 20 };
    static td_event_t evs[N];
    static td_sigdelta_t deltas[N * TD_EV__CNT];
    td_sigstate_t ref_state, s;
    (void)state;

    for (int i = 0; i < N; i++)
        evs[i] = random_event();
    fold(&ref_state, evs, N);
    /* The events exercise every condition of the catalog. */
    for (int k = 0; k < TD_SIG__CNT; k++) {
        if (!ref_state.present[k])
            fail_msg("%s: no random event contributed", td_signals[k].name);
    }
    for (int round = 0; round < ROUNDS; round++) {
        int nd = 0;
        /* shuffle: most events arrive late */
        for (int i = N - 1; i > 0; i--) {
            int j = (int)(next_rand() % (uint64_t)(i + 1));
            td_event_t t = evs[i];
            evs[i] = evs[j];
            evs[j] = t;
        }
        /* split into random chunks, one delta per kind per chunk... */
        for (int i = 0; i < N;) {
            int len = 1 + (int)(next_rand() % 400);
            td_sigdelta_t *d = &deltas[nd];
            for (int k = 0; k < TD_EV__CNT; k++)
                td_sigdelta_init(&d[k], (td_event_kind_t)k);
            for (int j = i; j < i + len && j < N; j++)
                td_sigdelta_add(&d[evs[j].kind], &evs[j]);
            nd += TD_EV__CNT;
            i += len;
        }
        /* ...merged in random order */
        for (int i = nd - 1; i > 0; i--) {
            int j = (int)(next_rand() % (uint64_t)(i + 1));
            td_sigdelta_t t = deltas[i];
            deltas[i] = deltas[j];
            deltas[j] = t;
        }
        td_sigstate_init(&s);
        for (int i = 0; i < nd; i++)
            td_sigstate_merge(&s, &deltas[i]);
        assert_int_equal(s.as_of, ref_state.as_of);
        for (int k = 0; k < TD_SIG__CNT; k++) {
            assert_int_equal(s.present[k], ref_state.present[k]);
            if (!close_enough(s.v[k], ref_state.v[k], 1e-9))
                fail_msg("%s: %.17g vs %.17g", td_signals[k].name, s.v[k],
                         ref_state.v[k]);
        }
    }
}

static void test_lua_source_fits_and_names_every_base_signal(void **state) {
    static char buf[65536];
    int n = td_signals_lua(buf, sizeof(buf));
    (void)state;
    assert_true(n > 0);
    for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
        char quoted[128];
        snprintf(quoted, sizeof(quoted), "'%s'", td_signals[i].name);
        assert_non_null(strstr(buf, quoted));
    }
    assert_int_equal(td_signals_lua(buf, 10), -1);
}

/* Folds events into a fresh state, one delta each. */
static void fold_all(td_sigstate_t *s, const td_event_t *ev, int n) {
    td_sigstate_init(s);
    for (int i = 0; i < n; i++) {
        td_sigdelta_t d;
        td_sigdelta_init(&d, ev[i].kind);
        td_sigdelta_add(&d, &ev[i]);
        td_sigstate_merge(s, &d);
    }
}

/*
 * td_sigstate_age: a quiet merchant "as of now" is what folding an event
 * at now that matches nothing would give: windowed values decay, lifetime
 * values and extremes stay, ages grow, ratios keep their value.
 */
static void test_age_equals_folding_an_empty_event_at_now(void **state) {
    td_event_t ev[5] = {paid(20 * DAY), paid(10 * DAY),
                        cancelled(TD_CANCEL_MERCHANT, 9 * DAY), lost(5 * DAY),
                        why(lost(5 * DAY), TD_REASON_COUNTERFEIT)};
    td_sigstate_t aged, ref;
    td_sigdelta_t d;
    int64_t now = T0 + 40 * DAY;

    fold_all(&aged, ev, 5);
    ref = aged;
    td_sigstate_age(&aged, now);
    /* The reference: an order event at now that meets no condition. */
    td_event_t quiet = created(-40 * DAY);
    td_sigdelta_init(&d, TD_EV_ORDER);
    td_sigdelta_add(&d, &quiet);
    td_sigstate_merge(&ref, &d);
    assert_int_equal(aged.as_of, now);
    for (int i = 0; i < TD_SIG__CNT; i++) {
        if (aged.present[i] != ref.present[i] ||
            fabs(aged.v[i] - ref.v[i]) > 1e-9 * fmax(1, fabs(ref.v[i])))
            fail_msg("%s: aged %.12g, folded %.12g", td_signals[i].name,
                     aged.v[i], ref.v[i]);
    }
    assert_true(aged.v[TD_SIG_orders_paid_total] == 2);
    assert_true(aged.v[TD_SIG_counterfeit_confirmed_total] == 1);
    assert_true(fabs(aged.v[TD_SIG_days_since_counterfeit] - 45) < 1e-9);
    assert_true(aged.v[TD_SIG_orders_paid_30d] < 2 * exp(-40.0 / 30));

    /* Not after as_of, or no events: nothing changes. */
    ref = aged;
    td_sigstate_age(&aged, now - DAY);
    assert_memory_equal(&aged, &ref, sizeof(aged));
    td_sigstate_init(&aged);
    ref = aged;
    td_sigstate_age(&aged, now);
    assert_memory_equal(&aged, &ref, sizeof(aged));
}

/* The page shows every signal and category in Chinese too: none may lack
 * its signals_zh.def line, and none may be left in English by mistake. */
static void test_every_signal_and_category_has_a_chinese_meaning(void **state) {
    for (int i = 0; i < TD_SIG__CNT; i++) {
        const char *zh = td_signal_meaning_zh(i);
        assert_non_null(zh);
        assert_true(strlen(zh) > 0);
        int cjk = 0; /* some non-ASCII (CJK) text in it */
        for (const char *p = zh; *p; p++)
            cjk |= (unsigned char)*p >= 0x80;
        assert_true(cjk);
    }
    for (int c = 0; c < TD_CAT__CNT; c++)
        assert_non_null(td_category_name_zh(c));
    assert_null(td_signal_meaning_zh(TD_SIG__CNT));
    assert_null(td_category_name_zh(-1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_age_equals_folding_an_empty_event_at_now),
        cmocka_unit_test(test_catalog_is_consistent),
        cmocka_unit_test(test_every_signal_and_category_has_a_chinese_meaning),
        cmocka_unit_test(test_every_signal_has_a_row),
        cmocka_unit_test(test_every_row_matches_its_definition),
        cmocka_unit_test(test_distinct_buyers_are_exact_from_buyer_order_seq),
        cmocka_unit_test(test_steady_rate_equals_plain_count),
        cmocka_unit_test(test_extreme_timestamps_stay_defined),
        cmocka_unit_test(test_any_order_and_split_gives_same_signals),
        cmocka_unit_test(test_lua_source_fits_and_names_every_base_signal),
    };
    return cmocka_run_group_tests_name("signals", tests, group_setup,
                                       group_teardown);
}
