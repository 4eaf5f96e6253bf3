/*
 * it_pipeline.c - end to end: events with known content go through the
 * embedded Kafka and the real trustd into a real redis-server; every signal
 * field is checked against values computed here, independently of trustd's
 * own math, and the score appears in Redis and on the scores topic.
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "codec.h"
#include "harness.h"

#define DAY  86400000.0
#define HOUR 3600000LL

static td_h_redis_t redis;
static td_h_kafka_t kafka;
static td_h_proc_t trustd;
static redisContext *rc;
static int64_t t0;

/* One test event in a form the test can reason about. */
typedef struct tev_s {
    const char *m;
    int kind;
    int status; /* order or refund status */
    int64_t t;
    int64_t amount;
    int cancelled_by;
    int64_t promised_ship_by;
    int rating;
    int flagged;
} tev_t;

static tev_t evs[64];
static int nev;

static void add(tev_t e) {
    evs[nev++] = e;
}

static void build_events(void) {
    int64_t p = t0;
    /* m-alpha: three paid orders, one shipped late, one merchant cancel,
     * two good reviews and a flagged bad one, one refund request. */
    for (int i = 0; i < 3; i++)
        add((tev_t){"m-alpha", TD_EV_ORDER, TD_ORDER_PAID, p + i * HOUR,
                    1000 + 1500 * i, TD_NULL_ENUM, p + i * HOUR + 48 * HOUR});
    add((tev_t){"m-alpha", TD_EV_ORDER, TD_ORDER_SHIPPED, p + 10 * HOUR, 1000,
                TD_NULL_ENUM, p + 48 * HOUR});
    add((tev_t){"m-alpha", TD_EV_ORDER, TD_ORDER_SHIPPED, p + 60 * HOUR, 2500,
                TD_NULL_ENUM, p + HOUR + 48 * HOUR}); /* late */
    add((tev_t){"m-alpha", TD_EV_ORDER, TD_ORDER_CANCELLED, p + 5 * HOUR, 4000,
                TD_CANCEL_MERCHANT, TD_NULL_TS});
    add((tev_t){"m-alpha", TD_EV_REVIEW, 0, p + 70 * HOUR, 0, 0, 0, 5, 0});
    add((tev_t){"m-alpha", TD_EV_REVIEW, 0, p + 71 * HOUR, 0, 0, 0, 4, 0});
    add((tev_t){"m-alpha", TD_EV_REVIEW, 0, p + 72 * HOUR, 0, 0, 0, 1, 1});
    add((tev_t){"m-alpha", TD_EV_REFUND, TD_REFUND_REQUESTED, p + 73 * HOUR,
                1000});
    /* m-beta: an old order (40 days back) and a fresh one, out of order. */
    add((tev_t){"m-beta", TD_EV_ORDER, TD_ORDER_PAID, p + 2 * HOUR, 700,
                TD_NULL_ENUM, p + 50 * HOUR});
    add((tev_t){"m-beta", TD_EV_ORDER, TD_ORDER_PAID, p - 40 * 24 * HOUR, 300,
                TD_NULL_ENUM, TD_NULL_TS});
    add((tev_t){"m-beta", TD_EV_REVIEW, 0, p + 3 * HOUR, 0, 0, 0, 3, 0});
    /* m-gamma: only a refund request, so refund_rate has no denominator. */
    add((tev_t){"m-gamma", TD_EV_REFUND, TD_REFUND_REQUESTED, p, 500});
}

static void to_event(const tev_t *e, int i, td_event_t *ev, char *idbuf) {
    td_h_event(ev, (td_event_kind_t)e->kind, e->m, e->t);
    sprintf(idbuf, "ev-%d", i);
    ev->event_id = (td_str_t){idbuf, strlen(idbuf)};
    switch (e->kind) {
    case TD_EV_ORDER:
        ev->u.order.status = e->status;
        ev->u.order.amount_cents = e->amount;
        ev->u.order.cancelled_by = e->cancelled_by;
        ev->u.order.promised_ship_by = e->promised_ship_by;
        break;
    case TD_EV_REVIEW:
        ev->u.review.rating = e->rating;
        ev->u.review.flagged = e->flagged;
        break;
    default:
        ev->u.refund.status = e->status;
        ev->u.refund.amount_cents = e->amount;
    }
}

/* ---- expected values, computed from the definitions ---- */

static int64_t as_of(const char *m) {
    int64_t t = INT64_MIN;
    for (int i = 0; i < nev; i++)
        if (!strcmp(evs[i].m, m) && evs[i].t > t) t = evs[i].t;
    return t;
}

enum {
    F_PAID,
    F_PAID_AMT,
    F_CANCEL_M,
    F_SHIP,
    F_SHIP_LATE,
    F_REFREQ,
    F_REVIEW,
    F_RATING
};

static int matches(const tev_t *e, int what) {
    switch (what) {
    case F_PAID:
    case F_PAID_AMT:
        return e->kind == TD_EV_ORDER && e->status == TD_ORDER_PAID;
    case F_CANCEL_M:
        return e->kind == TD_EV_ORDER && e->status == TD_ORDER_CANCELLED &&
               e->cancelled_by == TD_CANCEL_MERCHANT;
    case F_SHIP:
        return e->kind == TD_EV_ORDER && e->status == TD_ORDER_SHIPPED;
    case F_SHIP_LATE:
        return e->kind == TD_EV_ORDER && e->status == TD_ORDER_SHIPPED &&
               e->t > e->promised_ship_by;
    case F_REFREQ:
        return e->kind == TD_EV_REFUND && e->status == TD_REFUND_REQUESTED;
    default:
        return e->kind == TD_EV_REVIEW && !e->flagged;
    }
}

/* sum of weight * exp(-(T - t) / window); window 0 = lifetime */
static double expect(const char *m, int what, double window) {
    double T = (double)as_of(m), v = 0;
    for (int i = 0; i < nev; i++) {
        const tev_t *e = &evs[i];
        double w;
        if (strcmp(e->m, m) || !matches(e, what)) continue;
        w = what == F_PAID_AMT ? (double)e->amount
            : what == F_RATING ? (double)e->rating
                               : 1.0;
        v += window > 0 ? w * exp(-(T - (double)e->t) / window) : w;
    }
    return v;
}

static void
check_field(const char *m, const char *field, double want, int present) {
    char key[128];
    double got;
    int rc2;
    snprintf(key, sizeof(key), "trust:{%s}:signals", m);
    rc2 = td_h_hget_double(rc, key, field, &got);
    if (!present) {
        if (rc2 == 0)
            fail_msg("%s %s: expected absent, got %.17g", m, field, got);
        return;
    }
    if (rc2 != 0 && want == 0)
        return; /* a base signal nothing contributed to is absent (= 0) */
    if (rc2 != 0) fail_msg("%s %s: absent, expected %.17g", m, field, want);
    if (fabs(got - want) > 1e-9 * fmax(1.0, fabs(want)))
        fail_msg("%s %s: got %.17g, expected %.17g", m, field, got, want);
}

static void check_merchant(const char *m) {
    double W = 30 * DAY;
    double paid = expect(m, F_PAID, W), ship = expect(m, F_SHIP, W);
    double late = expect(m, F_SHIP_LATE, W), req = expect(m, F_REFREQ, W);
    double rev = expect(m, F_REVIEW, W), rsum = expect(m, F_RATING, W);
    double asof;
    char key[128];

    snprintf(key, sizeof(key), "trust:{%s}:signals", m);
    assert_int_equal(td_h_hget_double(rc, key, "as_of_ms", &asof), 0);
    assert_int_equal((int64_t)asof, as_of(m));
    check_field(m, "orders_paid_total", expect(m, F_PAID, 0), 1);
    check_field(m, "orders_paid_30d", paid, 1);
    check_field(m, "gmv_cents_30d", expect(m, F_PAID_AMT, W), 1);
    check_field(m, "orders_cancelled_merchant_30d", expect(m, F_CANCEL_M, W),
                1);
    check_field(m, "shipped_30d", ship, 1);
    check_field(m, "shipped_late_30d", late, 1);
    check_field(m, "late_ship_rate_30d", ship ? late / ship : 0, ship > 0);
    check_field(m, "refunds_requested_30d", req, 1);
    check_field(m, "refund_rate_30d", paid ? req / paid : 0, paid > 0);
    check_field(m, "reviews_30d", rev, 1);
    check_field(m, "rating_sum_30d", rsum, 1);
    check_field(m, "rating_avg_30d", rev ? rsum / rev : 0, rev > 0);
}

static int all_applied(void *arg) {
    (void)arg;
    static const char *ms[] = {"m-alpha", "m-beta", "m-gamma"};
    for (int i = 0; i < 3; i++) {
        char key[128];
        double v;
        snprintf(key, sizeof(key), "trust:{%s}:signals", ms[i]);
        if (td_h_hget_double(rc, key, "as_of_ms", &v) != 0 ||
            (int64_t)v != as_of(ms[i]))
            return 0;
    }
    /* and the full count of m-alpha's events */
    double paid, rev, req;
    if (td_h_hget_double(rc, "trust:{m-alpha}:signals", "orders_paid_total",
                         &paid) ||
        td_h_hget_double(rc, "trust:{m-alpha}:signals", "reviews_30d", &rev) ||
        td_h_hget_double(rc, "trust:{m-alpha}:signals", "refunds_requested_30d",
                         &req))
        return 0;
    return paid == 3 && rev > 1.9 && req > 0.9;
}

/* trustd runs as an ACL user with exactly the commands the README lists
 * for it (section "Redis"), so that list stays true. */
static const char *const trustd_args[] = {"--redis-user", "trustd",
                                          "--redis-password", "pw", NULL};

static int setup(void **state) {
    static const char *kargs[] = {"--partitions", "4", NULL};
    redisReply *r;
    int ok;
    (void)state;
    t0 = td_now_ms() - 4 * 24 * HOUR;
    if (td_h_redis_start(&redis, NULL) || td_h_kafka_start(&kafka, kargs))
        return -1;
    rc = td_h_redis_connect(&redis);
    if (!rc) return -1;
    r = redisCommand(
        rc, "ACL SETUSER trustd on >pw ~trust:* resetchannels -@all +fcall "
            "+function|load +zadd +ping +wait +cluster|info +cluster|slots "
            "+asking +multi +exec +get +hgetall +hmget +exists +restore "
            "+getrange +set +hget +hset +hincrby +rename +del +append +zscan");
    ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    if (trustd.pid > 0) {
        td_h_signal(&trustd, SIGKILL);
        td_h_wait(&trustd, 5000);
    }
    if (rc) redisFree(rc);
    td_h_kafka_stop(&kafka);
    td_h_redis_stop(&redis);
    return 0;
}

static void test_signals_match_independent_computation(void **state) {
    td_h_producer_t *p = td_h_producer_new(kafka.bootstrap);
    char ids[64][16];
    (void)state;

    build_events();
    for (int i = 0; i < nev; i++) {
        td_event_t ev;
        to_event(&evs[i], i, &ev, ids[i]);
        assert_int_equal(td_h_produce(p, &ev, -1), 0);
    }
    assert_int_equal(td_h_producer_flush(p), 0);
    td_h_producer_destroy(p);

    assert_int_equal(td_h_trustd_start(&trustd, "trustd", &kafka, &redis,
                                       "it-pipeline", trustd_args),
                     0);
    if (!td_h_poll(all_applied, NULL, 60000)) {
        td_h_dump_log(&trustd);
        fail_msg("events were not applied within 60 s");
    }
    check_merchant("m-alpha");
    check_merchant("m-beta");
    check_merchant("m-gamma");
}

/* Every merchant's last delivered score is marked (pub_version equals
 * version): by its next update, or by the flush an idle worker runs for
 * the marks alone. A mark is written only after Kafka acknowledged the
 * record and ZADD placed it, so then trust:scores agrees with the hash. */
static int all_marked(void *arg) {
    static const char *const keys[] = {"trust:{m-alpha}:score",
                                       "trust:{m-beta}:score",
                                       "trust:{m-gamma}:score"};
    (void)arg;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        double v, pv;
        if (td_h_hget_double(rc, keys[i], "version", &v) != 0 ||
            td_h_hget_double(rc, keys[i], "pub_version", &pv) != 0 || v != pv)
            return 0;
    }
    return 1;
}

typedef struct seen_s {
    td_codec_t *codec;
    int alpha;
    int64_t alpha_version;
    int bad;
} seen_t;

static void on_score(const rd_kafka_message_t *m, void *arg) {
    seen_t *s = arg;
    td_score_rec_t rec;
    char errstr[256];
    if (td_codec_decode_score(s->codec, m->payload, m->len, &rec, errstr,
                              sizeof(errstr)) != 0) {
        s->bad++;
        return;
    }
    if (m->key_len != strlen(rec.merchant_id) ||
        memcmp(m->key, rec.merchant_id, m->key_len))
        s->bad++;
    if (!strcmp(rec.merchant_id, "m-alpha")) {
        s->alpha++;
        if (rec.version > s->alpha_version) s->alpha_version = rec.version;
        if (rec.score < 0 || rec.score > 100 || rec.tier < 1 || rec.tier > 5)
            s->bad++;
    }
}

static void test_score_in_redis_and_on_topic(void **state) {
    char errstr[256];
    double score, tier, version, updated;
    seen_t seen = {0};
    (void)state;

    assert_true(td_h_poll(all_marked, NULL, 30000));
    double zscore;
    redisReply *z = redisCommand(rc, "ZSCORE trust:scores m-alpha");
    assert_non_null(z);
    assert_int_equal(z->type, REDIS_REPLY_STRING);
    zscore = strtod(z->str, NULL);
    freeReplyObject(z);
    assert_int_equal(
        td_h_hget_double(rc, "trust:{m-alpha}:score", "score", &score), 0);
    assert_true(score >= 0 && score <= 100);
    assert_true(zscore == score);
    assert_int_equal(
        td_h_hget_double(rc, "trust:{m-alpha}:score", "tier", &tier), 0);
    assert_true(tier >= 1 && tier <= 5);
    assert_int_equal(
        td_h_hget_double(rc, "trust:{m-alpha}:score", "version", &version), 0);
    assert_true(version >= 1);
    assert_int_equal(
        td_h_hget_double(rc, "trust:{m-alpha}:score", "updated_ms", &updated),
        0);
    assert_true(updated > (double)t0);

    seen.codec = td_codec_new(errstr, sizeof(errstr));
    assert_non_null(seen.codec);
    assert_true(
        td_h_consume_all(kafka.bootstrap, "trust-scores", on_score, &seen) > 0);
    td_codec_destroy(seen.codec);
    assert_int_equal(seen.bad, 0);
    assert_true(seen.alpha >= 1);
    assert_true(seen.alpha_version >= 1);
    assert_int_equal(
        td_h_hget_double(rc, "trust:{m-alpha}:score", "pub_version", &version),
        0);
    assert_true(version == (double)seen.alpha_version);
}

/* A steady merchant: many events over many flushes, few publications, and
 * versions that only rise. */
typedef struct steady_s {
    td_codec_t *codec;
    int records;
    int64_t last_version;
    int out_of_order;
} steady_t;

static void on_steady(const rd_kafka_message_t *m, void *arg) {
    steady_t *s = arg;
    td_score_rec_t rec;
    char errstr[256];
    if (m->key_len != 8 || memcmp(m->key, "m-steady", 8) ||
        td_codec_decode_score(s->codec, m->payload, m->len, &rec, errstr,
                              sizeof(errstr)) != 0)
        return;
    s->records++;
    if (rec.version <= s->last_version) s->out_of_order++;
    s->last_version = rec.version;
}

static int steady_applied(void *arg) {
    double v;
    return td_h_hget_double(rc, "trust:{m-steady}:signals", "orders_paid_total",
                            &v) == 0 &&
           v >= *(double *)arg;
}

static void
test_steady_merchant_is_not_republished_on_every_event(void **state) {
    td_h_producer_t *p = td_h_producer_new(kafka.bootstrap);
    steady_t seen = {0};
    char errstr[256], id[32];
    int n = 0;
    (void)state;

    /* 20 rounds of 10 paid orders, each round applied (so in its own
     * flush) before the next is produced. */
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 10; i++, n++) {
            tev_t e = {"m-steady",       TD_EV_ORDER, TD_ORDER_PAID,
                       t0 + n * 60000LL, 5000,        TD_NULL_ENUM,
                       TD_NULL_TS};
            td_event_t ev;
            to_event(&e, 1000 + n, &ev, id);
            assert_int_equal(td_h_produce(p, &ev, -1), 0);
        }
        assert_int_equal(td_h_producer_flush(p), 0);
        double want = n;
        assert_true(td_h_poll(steady_applied, &want, 30000));
    }
    td_h_producer_destroy(p);
    seen.codec = td_codec_new(errstr, sizeof(errstr));
    assert_non_null(seen.codec);
    assert_true(td_h_consume_all(kafka.bootstrap, "trust-scores", on_steady,
                                 &seen) > 0);
    td_codec_destroy(seen.codec);
    /* The first publication, then only when the score moved a step. */
    assert_true(seen.records >= 1);
    assert_true(seen.records < 10);
    assert_int_equal(seen.out_of_order, 0);
}

static void test_sigterm_exits_zero_within_10s(void **state) {
    int status;
    (void)state;
    td_h_signal(&trustd, SIGTERM);
    status = td_h_wait(&trustd, 10000);
    if (status == -1) td_h_dump_log(&trustd);
    assert_int_not_equal(status, -1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signals_match_independent_computation),
        cmocka_unit_test(test_score_in_redis_and_on_topic),
        cmocka_unit_test(
            test_steady_merchant_is_not_republished_on_every_event),
        cmocka_unit_test(test_sigterm_exits_zero_within_10s),
    };
    return cmocka_run_group_tests_name("it_pipeline", tests, setup, teardown);
}
