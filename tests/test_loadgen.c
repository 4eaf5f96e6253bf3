/*
 * test_loadgen.c - tests of the event generator (processor/loadgen.c).
 *
 * Every test builds its own generator from a fixed configuration (start_ms
 * is pinned, so runs never depend on the wall clock) and checks a property
 * of the stream: determinism, the event contract (also by round-tripping
 * through the real codec), Zipf skew, lifecycle order, event-time bounds,
 * profile separation and bounded memory.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "common.h"
#include "loadgen.h"

#define START_MS 1700000000000LL /* 2023-11-14T22:13:20Z */
#define HOUR_MS  3600000LL

static void conf_fixed(td_loadgen_conf_t *c) {
    td_loadgen_conf_defaults(c);
    c->start_ms = START_MS;
    c->merchants = 2000;
    c->max_open = 20000;
}

static td_loadgen_t *gen_new(const td_loadgen_conf_t *c) {
    char errstr[256];
    td_loadgen_t *g = td_loadgen_new(c, errstr, sizeof(errstr));
    if (!g) {
        print_error("td_loadgen_new: %s\n", errstr);
    }
    assert_non_null(g);
    return g;
}

static int str_eq(td_str_t a, td_str_t b) {
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static int ev_equal(const td_event_t *a, const td_event_t *b) {
    if (a->kind != b->kind || a->event_time != b->event_time ||
        !str_eq(a->event_id, b->event_id) ||
        !str_eq(a->merchant_id, b->merchant_id) ||
        !str_eq(a->order_id, b->order_id) || !str_eq(a->buyer_id, b->buyer_id))
        return 0;
    switch (a->kind) {
    case TD_EV_ORDER:
        return !memcmp(&a->u.order, &b->u.order, sizeof(a->u.order));
    case TD_EV_REVIEW:
        return !memcmp(&a->u.review, &b->u.review, sizeof(a->u.review));
    default: {
        td_refund_t ra = a->u.refund, rb = b->u.refund;
        if (!str_eq(ra.refund_id, rb.refund_id)) return 0;
        ra.refund_id = rb.refund_id;
        return !memcmp(&ra, &rb, sizeof(ra));
    }
    }
}

/* Merchant index from "m%06d". */
static int merchant_index(const td_event_t *ev) {
    char buf[16];
    assert_true(ev->merchant_id.len < sizeof(buf));
    memcpy(buf, ev->merchant_id.ptr, ev->merchant_id.len);
    buf[ev->merchant_id.len] = '\0';
    assert_int_equal(buf[0], 'm');
    return atoi(buf + 1);
}

static int rating_ok(int r, int nullable) {
    return (r >= 1 && r <= 5) || (nullable && r == TD_NULL_INT);
}

static void test_same_seed_gives_same_sequence(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    td_loadgen_t *a = gen_new(&c), *b = gen_new(&c);
    for (int i = 0; i < 50000; i++) {
        td_event_t ea, eb;
        /* ev_equal compares the unions bytewise, padding included. */
        memset(&ea, 0, sizeof(ea));
        memset(&eb, 0, sizeof(eb));
        td_loadgen_next(a, &ea);
        td_loadgen_next(b, &eb);
        if (!ev_equal(&ea, &eb)) {
            fail_msg("events differ at %d", i);
        }
    }
    td_loadgen_destroy(a);
    td_loadgen_destroy(b);
}

static void test_different_seed_gives_different_sequence(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    td_loadgen_t *a = gen_new(&c);
    c.seed++;
    td_loadgen_t *b = gen_new(&c);
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        td_event_t ea, eb;
        td_loadgen_next(a, &ea);
        td_loadgen_next(b, &eb);
        same += str_eq(ea.merchant_id, eb.merchant_id) &&
                ea.event_time == eb.event_time;
    }
    assert_true(same < 10);
    td_loadgen_destroy(a);
    td_loadgen_destroy(b);
}

static void test_every_event_satisfies_the_contract(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    td_loadgen_t *g = gen_new(&c);
    int kinds[TD_EV__CNT] = {0}, ostat[TD_ORDER__CNT] = {0};
    int rstat[TD_REFUND__CNT] = {0}, chans[TD_CHANNEL__CNT] = {0};
    int cancels[TD_CANCEL__CNT] = {0}, resp[TD_RESP__CNT] = {0};
    int reasons[TD_REASON__CNT] = {0}, null_dims = 0, flagged = 0;

    for (int i = 0; i < 300000; i++) {
        td_event_t ev;
        td_loadgen_next(g, &ev);
        assert_true(ev.kind >= 0 && ev.kind < TD_EV__CNT);
        kinds[ev.kind]++;
        assert_true(ev.merchant_id.len >= 1 &&
                    ev.merchant_id.len <= TD_MERCHANT_ID_MAX);
        assert_true(ev.event_id.len > 0 && ev.order_id.len > 0 &&
                    ev.buyer_id.len > 0);
        if (ev.kind == TD_EV_ORDER) {
            const td_order_t *o = &ev.u.order;
            assert_true(o->status >= 0 && o->status < TD_ORDER__CNT);
            assert_true(o->channel >= 0 && o->channel < TD_CHANNEL__CNT);
            assert_true(o->amount_cents >= 0);
            assert_true(o->buyer_order_seq >= 1);
            assert_true(o->tracking_valid == TD_NULL_BOOL ||
                        o->tracking_valid == 0 || o->tracking_valid == 1);
            ostat[o->status]++;
            chans[o->channel]++;
            if (o->status == TD_ORDER_CANCELLED) {
                assert_true(o->cancelled_by >= 0 &&
                            o->cancelled_by < TD_CANCEL__CNT);
                cancels[o->cancelled_by]++;
            } else {
                assert_int_equal(o->cancelled_by, TD_NULL_ENUM);
            }
            if (o->status >= TD_ORDER_PAID && o->status != TD_ORDER_CANCELLED) {
                assert_true(o->paid_at != TD_NULL_TS);
                assert_true(o->promised_ship_by == o->paid_at + 48 * HOUR_MS);
            }
            if (o->status >= TD_ORDER_SHIPPED &&
                o->status != TD_ORDER_CANCELLED) {
                assert_true(o->shipped_at >= o->paid_at);
                assert_true(o->promised_delivery_by > o->shipped_at);
                assert_true(o->tracking_valid != TD_NULL_BOOL);
            }
            if (o->status == TD_ORDER_PAID) {
                assert_true(o->paid_at == ev.event_time);
            }
            if (o->status == TD_ORDER_SHIPPED) {
                assert_true(o->shipped_at == ev.event_time);
            }
        } else if (ev.kind == TD_EV_REVIEW) {
            const td_review_t *r = &ev.u.review;
            assert_true(rating_ok(r->rating, 0));
            assert_true(rating_ok(r->quality_rating, 1));
            assert_true(rating_ok(r->service_rating, 1));
            assert_true(rating_ok(r->logistics_rating, 1));
            assert_true(rating_ok(r->value_rating, 1));
            assert_true(r->has_media == 0 || r->has_media == 1);
            assert_true(r->is_followup == 0 || r->is_followup == 1);
            assert_true(r->flagged == 0 || r->flagged == 1);
            null_dims += r->quality_rating == TD_NULL_INT;
            flagged += r->flagged;
        } else {
            const td_refund_t *f = &ev.u.refund;
            assert_true(f->status >= 0 && f->status < TD_REFUND__CNT);
            assert_true(f->kind >= 0 && f->kind < TD_KIND__CNT);
            assert_true(f->reason >= 0 && f->reason < TD_REASON__CNT);
            assert_true(f->amount_cents >= 0);
            assert_true(f->refund_id.len > 0);
            assert_true(f->was_rejected == 0 || f->was_rejected == 1);
            assert_true(f->requested_at != TD_NULL_TS &&
                        f->requested_at <= ev.event_time);
            rstat[f->status]++;
            reasons[f->reason]++;
            if (f->status == TD_REFUND_ARBITRATED) {
                assert_true(f->responsible >= 0 &&
                            f->responsible < TD_RESP__CNT);
                resp[f->responsible]++;
            }
            if (f->status == TD_REFUND_ESCALATED) {
                assert_int_equal(f->was_rejected, 1);
            }
        }
    }
    /* Every value of every enum shows up. */
    for (int i = 0; i < TD_EV__CNT; i++) {
        assert_true(kinds[i] > 0);
    }
    for (int i = 0; i < TD_ORDER__CNT; i++) {
        assert_true(ostat[i] > 0);
    }
    for (int i = 0; i < TD_REFUND__CNT; i++) {
        assert_true(rstat[i] > 0);
    }
    for (int i = 0; i < TD_CHANNEL__CNT; i++) {
        assert_true(chans[i] > 0);
    }
    for (int i = 0; i < TD_CANCEL__CNT; i++) {
        assert_true(cancels[i] > 0);
    }
    for (int i = 0; i < TD_RESP__CNT; i++) {
        assert_true(resp[i] > 0);
    }
    for (int i = 0; i < TD_REASON__CNT; i++) {
        assert_true(reasons[i] > 0);
    }
    assert_true(null_dims > 0 && flagged > 0);
    td_loadgen_destroy(g);
}

static void test_events_round_trip_through_the_codec(void **state) {
    char errstr[512];
    td_codec_t *codec = td_codec_new(errstr, sizeof(errstr));
    if (!codec) {
        fail_msg("td_codec_new: %s", errstr);
    }
    td_loadgen_conf_t c;
    conf_fixed(&c);
    td_loadgen_t *g = gen_new(&c);
    unsigned char buf[4096];

    for (int i = 0; i < 30000; i++) {
        td_event_t ev, out;
        size_t len;
        td_loadgen_next(g, &ev);
        if (td_codec_encode(codec, &ev, buf, sizeof(buf), &len, errstr,
                            sizeof(errstr)) != TD_OK)
            fail_msg("encode %d: %s", i, errstr);
        int64_t now = td_loadgen_clock_ms(g);
        td_dlq_reason_t r = td_codec_decode(codec, ev.kind, ev.merchant_id.ptr,
                                            ev.merchant_id.len, buf, len, now,
                                            NULL, &out, errstr, sizeof(errstr));
        if (r != TD_DLQ_OK) {
            fail_msg("decode %d: %s", i, errstr);
        }
        assert_int_equal(out.event_time, ev.event_time);
    }
    td_loadgen_destroy(g);
    td_codec_destroy(codec);
}

static int cmp_int_desc(const void *a, const void *b) {
    return *(const int *)b - *(const int *)a;
}

static void test_merchant_popularity_is_skewed(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    td_loadgen_t *g = gen_new(&c);
    int *cnt = calloc((size_t)c.merchants, sizeof(*cnt));
    int n = 200000;

    for (int i = 0; i < n; i++) {
        td_event_t ev;
        td_loadgen_next(g, &ev);
        int m = merchant_index(&ev);
        assert_true(m >= 0 && m < c.merchants);
        cnt[m]++;
    }
    qsort(cnt, (size_t)c.merchants, sizeof(*cnt), cmp_int_desc);
    long top = 0;
    for (int i = 0; i < c.merchants / 100; i++) {
        top += cnt[i];
    }
    /* Zipf 1.1 over 2000 merchants: the top 1% get about a third. */
    assert_true(top > n / 5);
    free(cnt);
    td_loadgen_destroy(g);
}

/* Rank of an order status in its lifecycle: never goes down within an
 * order, and CANCELLED is terminal. */
static const int order_rank[TD_ORDER__CNT] = {
    [TD_ORDER_CREATED] = 0,   [TD_ORDER_PAID] = 1,
    [TD_ORDER_SHIPPED] = 2,   [TD_ORDER_DELIVERED] = 3,
    [TD_ORDER_COMPLETED] = 4, [TD_ORDER_CANCELLED] = 5,
};

static const int refund_rank[TD_REFUND__CNT] = {
    [TD_REFUND_REQUESTED] = 0,  [TD_REFUND_APPROVED] = 1,
    [TD_REFUND_REJECTED] = 1,   [TD_REFUND_ESCALATED] = 2,
    [TD_REFUND_ARBITRATED] = 3, [TD_REFUND_COMPLETED] = 4,
};

typedef struct order_seen_s {
    char id[32];
    int from_created; /* its CREATED was in the stream */
    int rank;         /* highest order_rank seen, -1 none */
    int refund_rank;  /* highest refund_rank seen, -1 none */
    int side;         /* a review or refund was seen */
} order_seen_t;

static order_seen_t *
order_lookup(order_seen_t *tab, size_t cap, const td_event_t *ev) {
    /* Open addressing on an FNV-1a hash of order_id. */
    uint64_t h = 1469598103934665603ULL;
    for (size_t k = 0; k < ev->order_id.len; k++) {
        h = (h ^ (unsigned char)ev->order_id.ptr[k]) * 1099511628211ULL;
    }
    size_t j = h & (cap - 1);
    while (tab[j].id[0] &&
           (strlen(tab[j].id) != ev->order_id.len ||
            memcmp(tab[j].id, ev->order_id.ptr, ev->order_id.len)))
        j = (j + 1) & (cap - 1);
    if (!tab[j].id[0]) {
        memcpy(tab[j].id, ev->order_id.ptr, ev->order_id.len);
        tab[j].rank = tab[j].refund_rank = -1;
        tab[j].from_created =
            ev->kind == TD_EV_ORDER && ev->u.order.status == TD_ORDER_CREATED;
    }
    return &tab[j];
}

static void test_lifecycles_come_in_order(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    td_loadgen_t *g = gen_new(&c);
    size_t cap = 1 << 20;
    order_seen_t *tab = calloc(cap, sizeof(*tab));
    int shipped_after_paid = 0, reviews_after_delivery = 0;

    for (int i = 0; i < 200000; i++) {
        td_event_t ev;
        td_loadgen_next(g, &ev);
        assert_true(ev.order_id.len < sizeof(tab[0].id));
        order_seen_t *s = order_lookup(tab, cap, &ev);
        if (ev.kind == TD_EV_ORDER) {
            int r = order_rank[ev.u.order.status];
            if (r <= s->rank) {
                fail_msg("order %s: %d after %d", s->id, r, s->rank);
            }
            /* Only completion may follow a review or a refund. */
            if (s->side && ev.u.order.status != TD_ORDER_COMPLETED) {
                fail_msg("order %s: status %d after review/refund", s->id,
                         ev.u.order.status);
            }
            shipped_after_paid += r == 2 && s->rank == 1;
            s->rank = r;
        } else {
            /* A review needs a delivery, a refund at least a shipment. */
            int need = ev.kind == TD_EV_REVIEW ? 3 : 2;
            if (s->from_created && (s->rank < need || s->rank == 5)) {
                fail_msg("order %s: kind %d at order rank %d", s->id, ev.kind,
                         s->rank);
            }
            reviews_after_delivery += ev.kind == TD_EV_REVIEW && s->rank >= 3;
            s->side = 1;
        }
        if (ev.kind == TD_EV_REFUND) {
            int rr = refund_rank[ev.u.refund.status];
            if (rr <= s->refund_rank) {
                fail_msg("refund of %s: %d after %d", s->id, rr,
                         s->refund_rank);
            }
            s->refund_rank = rr;
        }
    }
    assert_true(shipped_after_paid > 1000);
    assert_true(reviews_after_delivery > 1000);
    free(tab);
    td_loadgen_destroy(g);
}

static void test_event_time_follows_the_clock(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    td_loadgen_t *g = gen_new(&c);
    int64_t max_seen = START_MS;
    int late = 0;

    for (int i = 0; i < 200000; i++) {
        td_event_t ev;
        td_loadgen_next(g, &ev);
        int64_t clock = td_loadgen_clock_ms(g);
        assert_true(ev.event_time >= START_MS - 5000);
        assert_true(ev.event_time <= clock + 5000);
        /* Out of order by at most about an hour. */
        assert_true(ev.event_time >= max_seen - 2 * HOUR_MS);
        if (ev.event_time < max_seen - 60000) {
            late++;
        }
        if (ev.event_time > max_seen) {
            max_seen = ev.event_time;
        }
    }
    /* Some events are late, but few. */
    assert_true(late > 50 && late < 200000 / 50);
    /* Time moved on: at least a few simulated hours. */
    assert_true(max_seen > START_MS + 6 * HOUR_MS);
    td_loadgen_destroy(g);
}

static void test_bad_merchants_behave_worse(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    c.bad_share = 0.2;
    td_loadgen_t *g = gen_new(&c);
    long shipped[2] = {0}, late[2] = {0}, stars[2] = {0}, reviews[2] = {0};
    long paid[2] = {0}, refunds[2] = {0};
    int bad_cnt = 0;

    for (int i = 0; i < c.merchants; i++) {
        bad_cnt += td_loadgen_merchant_is_bad(g, i);
    }
    assert_int_equal(bad_cnt, 400);
    assert_int_equal(td_loadgen_merchant_is_bad(g, -1), -1);
    assert_int_equal(td_loadgen_merchant_is_bad(g, c.merchants), -1);

    for (int i = 0; i < 300000; i++) {
        td_event_t ev;
        td_loadgen_next(g, &ev);
        int b = td_loadgen_merchant_is_bad(g, merchant_index(&ev));
        if (ev.kind == TD_EV_ORDER && ev.u.order.status == TD_ORDER_SHIPPED) {
            shipped[b]++;
            late[b] += ev.u.order.shipped_at > ev.u.order.promised_ship_by;
        } else if (ev.kind == TD_EV_ORDER &&
                   ev.u.order.status == TD_ORDER_PAID) {
            paid[b]++;
        } else if (ev.kind == TD_EV_REVIEW && !ev.u.review.flagged) {
            stars[b] += ev.u.review.rating;
            reviews[b]++;
        } else if (ev.kind == TD_EV_REFUND &&
                   ev.u.refund.status == TD_REFUND_REQUESTED) {
            refunds[b]++;
        }
    }
    assert_true(shipped[0] > 1000 && shipped[1] > 1000);
    assert_true((double)late[1] / shipped[1] >
                3 * (double)late[0] / shipped[0]);
    assert_true((double)stars[1] / reviews[1] + 0.7 <
                (double)stars[0] / reviews[0]);
    assert_true((double)refunds[1] / paid[1] >
                2 * (double)refunds[0] / paid[0]);
    td_loadgen_destroy(g);
}

static void test_repeat_buyers_exist(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    td_loadgen_t *g = gen_new(&c);
    int created = 0, repeat = 0;
    for (int i = 0; i < 100000; i++) {
        td_event_t ev;
        td_loadgen_next(g, &ev);
        if (ev.kind == TD_EV_ORDER && ev.u.order.status == TD_ORDER_CREATED) {
            created++;
            repeat += ev.u.order.buyer_order_seq > 1;
        }
    }
    assert_true(repeat > created / 10 && repeat < created);
    td_loadgen_destroy(g);
}

static void test_event_ids_are_unique(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    td_loadgen_t *g = gen_new(&c);
    int n = 100000;
    char(*ids)[40] = calloc((size_t)n, sizeof(*ids));
    for (int i = 0; i < n; i++) {
        td_event_t ev;
        td_loadgen_next(g, &ev);
        assert_true(ev.event_id.len < sizeof(ids[0]));
        memcpy(ids[i], ev.event_id.ptr, ev.event_id.len);
    }
    qsort(ids, (size_t)n, sizeof(*ids),
          (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < n; i++) {
        assert_true(strcmp(ids[i - 1], ids[i]) != 0);
    }
    free(ids);
    td_loadgen_destroy(g);
}

static void test_memory_stays_bounded_over_a_million_events(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    td_loadgen_t *g = gen_new(&c);
    td_event_t ev;

    /* Get past the first allocations stdio or libm might make. */
    td_loadgen_next(g, &ev);
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < 1000000; i++) {
        td_loadgen_next(g, &ev);
        assert_true(td_loadgen_open_orders(g) <= c.max_open);
    }
    assert_true(mallinfo2().uordblks == before);
    td_loadgen_destroy(g);
}

static void test_new_rejects_bad_configuration(void **state) {
    td_loadgen_conf_t c;
    char errstr[256];

    conf_fixed(&c);
    c.merchants = 0;
    errstr[0] = '\0';
    assert_null(td_loadgen_new(&c, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "merchants"));

    conf_fixed(&c);
    c.bad_share = 1.5;
    assert_null(td_loadgen_new(&c, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "bad_share"));

    conf_fixed(&c);
    c.zipf_s = -1;
    assert_null(td_loadgen_new(&c, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "zipf_s"));

    conf_fixed(&c);
    c.events_per_sec_sim = 0;
    assert_null(td_loadgen_new(&c, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "events_per_sec_sim"));

    conf_fixed(&c);
    c.max_open = 0;
    assert_null(td_loadgen_new(&c, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "max_open"));

    conf_fixed(&c);
    c.start_ms = 0;
    assert_null(td_loadgen_new(&c, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "start_ms"));
}

static void test_destroy_null_is_a_no_op(void **state) {
    td_loadgen_destroy(NULL);
}

static void test_one_merchant_and_tiny_cap_still_work(void **state) {
    td_loadgen_conf_t c;
    conf_fixed(&c);
    c.merchants = 1;
    c.max_open = 1;
    c.bad_share = 1;
    td_loadgen_t *g = gen_new(&c);
    for (int i = 0; i < 10000; i++) {
        td_event_t ev;
        td_loadgen_next(g, &ev);
        assert_int_equal(merchant_index(&ev), 0);
        assert_true(td_loadgen_open_orders(g) <= 1);
    }
    assert_int_equal(td_loadgen_merchant_is_bad(g, 0), 1);
    td_loadgen_destroy(g);
}

/* LONG_TAIL: bad merchants come in four kinds with one vice each, and
 * each kind's expected rates show its vice against the good kind's. */
static void test_long_tail_has_four_kinds_with_their_vices(void **state) {
    td_loadgen_conf_t c;
    td_loadgen_rates_t good, r;
    int cnt[TD_LG__KIND_CNT] = {0};
    td_loadgen_t *g;

    conf_fixed(&c);
    c.shape = TD_LOADGEN_LONG_TAIL;
    c.bad_share = 0.2;
    g = gen_new(&c);
    for (int i = 0; i < c.merchants; i++) {
        int k = td_loadgen_merchant_kind(g, i);
        assert_true(k >= 0 && k < TD_LG__KIND_CNT);
        assert_int_equal(td_loadgen_merchant_is_bad(g, i), k != TD_LG_GOOD);
        cnt[k]++;
    }
    assert_int_equal(td_loadgen_merchant_kind(g, c.merchants), -1);
    assert_int_equal(cnt[TD_LG_GOOD], 1600);
    assert_int_equal(cnt[TD_LG_BAD] + cnt[TD_LG_FAKE], 0);
    for (int k = TD_LG_CANCELLER; k <= TD_LG_COUNTERFEIT; k++)
        assert_true(cnt[k] > 60 && cnt[k] < 140); /* about 100 each */
    td_loadgen_destroy(g);

    td_loadgen_kind_rates(TD_LG_GOOD, &good);
    assert_true(good.cancel > 0.002 && good.cancel < 0.01);
    assert_true(good.late_ship > 0.001 && good.late_ship < 0.05);
    td_loadgen_kind_rates(TD_LG_CANCELLER, &r);
    assert_true(r.cancel > 10 * good.cancel);
    td_loadgen_kind_rates(TD_LG_LATE, &r);
    assert_true(r.late_ship > 0.4 && r.late_ship < 0.8);
    td_loadgen_kind_rates(TD_LG_REFUNDS, &r);
    assert_true(r.refund > 3 * good.refund && r.negative > 3 * good.negative);
    td_loadgen_kind_rates(TD_LG_COUNTERFEIT, &r);
    assert_true(r.fake_share > 0.25 && good.fake_share < 0.01);
    assert_true(r.lost_arb > good.lost_arb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_tail_has_four_kinds_with_their_vices),
        cmocka_unit_test(test_same_seed_gives_same_sequence),
        cmocka_unit_test(test_different_seed_gives_different_sequence),
        cmocka_unit_test(test_every_event_satisfies_the_contract),
        cmocka_unit_test(test_events_round_trip_through_the_codec),
        cmocka_unit_test(test_merchant_popularity_is_skewed),
        cmocka_unit_test(test_lifecycles_come_in_order),
        cmocka_unit_test(test_event_time_follows_the_clock),
        cmocka_unit_test(test_bad_merchants_behave_worse),
        cmocka_unit_test(test_repeat_buyers_exist),
        cmocka_unit_test(test_event_ids_are_unique),
        cmocka_unit_test(test_memory_stays_bounded_over_a_million_events),
        cmocka_unit_test(test_new_rejects_bad_configuration),
        cmocka_unit_test(test_destroy_null_is_a_no_op),
        cmocka_unit_test(test_one_merchant_and_tiny_cap_still_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
