/*
 * it_signals.c - the signal catalog against real processes.
 *
 *   - Memory: realistic merchants (small, big, bad) are generated as order,
 *     review and refund lifecycles, folded into deltas the way trustd folds
 *     them (per source, a few thousand events each) and written the way a
 *     flush writes them (td_h_merge: td_load, merge, td_put) to a private
 *     redis-server. MEMORY USAGE of each merchant's keys is printed; the
 *     signals hash must stay a listpack under 4096 bytes with Redis' default
 *     hash-max-listpack-entries (128), the packed state under 640.
 *   - The same merchants read back from Redis equal td_sigstate_merge of the
 *     same deltas on every field.
 *   - End to end: a few hundred events of three merchants, shuffled, go
 *     through the embedded Kafka and the real trustd; a sample of signals
 *     from every category is checked against values computed here from the
 *     definitions in schemas/signals.md, without signals.c.
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

#include "harness.h"
#include "signals.h"
#include "proto.h"
#include "store.h"

#define HOUR   3600000LL
#define DAY    (24 * HOUR)
#define BUDGET 4096

static td_h_redis_t redis;
static td_h_kafka_t kafka;
static td_h_proc_t trustd;
static td_store_t *st;
static td_rbatch_t *batch;
static redisContext *rc;

/* ---- a realistic merchant: order, review and refund lifecycles ---- */

typedef struct profile_s {
    const char *id;
    int orders;
    int days;              /* paid orders spread over the last `days` */
    double repeat_p;       /* an order comes from a returning buyer */
    double unknown_seq_p;  /* buyer_order_seq not set upstream (0) */
    double cancel_p;       /* cancelled by the merchant */
    double late_ship_p;    /* shipped after promised_ship_by */
    double late_deliver_p; /* delivered after promised_delivery_by */
    double review_p;
    double low_rating_p; /* 1 or 2 stars */
    double flagged_p;    /* suspected fake review */
    double refund_p;
    double reject_p;      /* the merchant rejects the refund */
    double escalate_p;    /* a rejected buyer escalates */
    double lose_p;        /* arbitration rules against the merchant */
    double counterfeit_p; /* refund reason COUNTERFEIT */
} profile_t;

typedef void (*emit_fn)(void *arg, const td_event_t *e);

typedef struct gen_s {
    uint64_t rng;
    int64_t end; /* nothing happens after this */
    const profile_t *p;
    emit_fn emit;
    void *arg;
    uint64_t n;
    char eid[48], oid[48], bid[48];
} gen_t;

static uint64_t gen_next(gen_t *g) {
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->rng;
}

static double gen_unif(gen_t *g) {
    return (double)(gen_next(g) >> 11) * 0x1.0p-53;
}

static int64_t gen_range(gen_t *g, int64_t lo, int64_t hi) {
    return lo + (int64_t)(gen_next(g) % (uint64_t)(hi - lo + 1));
}

static int gen_pick(gen_t *g, const double *w, int n) {
    double x = gen_unif(g);
    for (int i = 0; i < n - 1; i++) {
        if (x < w[i]) return i;
        x -= w[i];
    }
    return n - 1;
}

static void gen_base(gen_t *g,
                     td_event_t *e,
                     td_event_kind_t kind,
                     int64_t t,
                     int order,
                     int buyer) {
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->event_time = t;
    snprintf(g->eid, sizeof(g->eid), "%s-e%llu", g->p->id,
             (unsigned long long)g->n++);
    snprintf(g->oid, sizeof(g->oid), "%s-o%d", g->p->id, order);
    snprintf(g->bid, sizeof(g->bid), "b%d", buyer);
    e->event_id = (td_str_t){g->eid, strlen(g->eid)};
    e->merchant_id = (td_str_t){g->p->id, strlen(g->p->id)};
    e->order_id = (td_str_t){g->oid, strlen(g->oid)};
    e->buyer_id = (td_str_t){g->bid, strlen(g->bid)};
}

/* Emits e unless it lies after the generator's end (not happened yet). */
static int gen_emit(gen_t *g, const td_event_t *e) {
    if (e->event_time > g->end) return 0;
    g->emit(g->arg, e);
    return 1;
}

static void gen_order_event(gen_t *g,
                            td_event_t *e,
                            int status,
                            int64_t t,
                            const td_order_t *o,
                            int order,
                            int buyer) {
    gen_base(g, e, TD_EV_ORDER, t, order, buyer);
    e->u.order = *o;
    e->u.order.status = status;
}

static int gen_rating_near(gen_t *g, int r) {
    int x = r + (int)gen_range(g, -1, 1);
    return x < 1 ? 1 : x > 5 ? 5 : x;
}

static void gen_review(gen_t *g, int64_t t, int order, int buyer) {
    const profile_t *p = g->p;
    td_event_t e;
    int r;

    gen_base(g, &e, TD_EV_REVIEW, t, order, buyer);
    r = gen_unif(g) < p->low_rating_p ? (int)gen_range(g, 1, 2)
                                      : (int)gen_range(g, 3, 5);
    e.u.review.rating = r;
    if (gen_unif(g) < 0.6) e.u.review.quality_rating = gen_rating_near(g, r);
    if (gen_unif(g) < 0.5) e.u.review.value_rating = gen_rating_near(g, r);
    if (gen_unif(g) < 0.4) e.u.review.service_rating = gen_rating_near(g, r);
    if (gen_unif(g) < 0.5) e.u.review.logistics_rating = gen_rating_near(g, r);
    e.u.review.has_media = gen_unif(g) < 0.25;
    e.u.review.is_followup = gen_unif(g) < 0.05;
    e.u.review.flagged = gen_unif(g) < p->flagged_p;
    gen_emit(g, &e);
}

static void gen_refund_step(gen_t *g,
                            const td_refund_t *r,
                            int status,
                            int64_t t,
                            int order,
                            int buyer) {
    td_event_t e;

    gen_base(g, &e, TD_EV_REFUND, t, order, buyer);
    e.u.refund = *r;
    e.u.refund.status = status;
    gen_emit(g, &e);
}

/* REQUESTED, then APPROVED and COMPLETED, or REJECTED and maybe ESCALATED
 * and ARBITRATED (and COMPLETED when the merchant loses). */
static void
gen_refund(gen_t *g, int64_t t, int64_t amount, int order, int buyer) {
    static const double reasons[TD_REASON__CNT] = {0.25, 0.25, 0.15, 0.0,
                                                   0.05, 0.10, 0.05, 0.15};
    const profile_t *p = g->p;
    char rid[48];
    td_refund_t r = {0};

    snprintf(rid, sizeof(rid), "%s-r%d", p->id, order);
    r.refund_id = (td_str_t){rid, strlen(rid)};
    r.kind =
        gen_unif(g) < 0.4 ? TD_KIND_REFUND_ONLY : TD_KIND_RETURN_AND_REFUND;
    r.reason = gen_unif(g) < p->counterfeit_p
                   ? TD_REASON_COUNTERFEIT
                   : gen_pick(g, reasons, TD_REASON__CNT);
    r.amount_cents = amount;
    r.responsible = TD_NULL_ENUM;
    r.requested_at = TD_NULL_TS;

    gen_refund_step(g, &r, TD_REFUND_REQUESTED, t, order, buyer);
    /* Producers still on refund schema v1 send no requested_at. */
    if (gen_unif(g) < 0.95) r.requested_at = t;
    if (gen_unif(g) < p->reject_p) {
        t += gen_range(g, 2 * HOUR, 48 * HOUR);
        gen_refund_step(g, &r, TD_REFUND_REJECTED, t, order, buyer);
        if (gen_unif(g) >= p->escalate_p) return;
        r.was_rejected = 1;
        t += gen_range(g, HOUR, 72 * HOUR);
        gen_refund_step(g, &r, TD_REFUND_ESCALATED, t, order, buyer);
        t += gen_range(g, 2 * DAY, 10 * DAY);
        r.responsible =
            gen_unif(g) < p->lose_p ? TD_RESP_MERCHANT : TD_RESP_BUYER;
        gen_refund_step(g, &r, TD_REFUND_ARBITRATED, t, order, buyer);
        if (r.responsible == TD_RESP_MERCHANT) {
            t += gen_range(g, HOUR, DAY);
            gen_refund_step(g, &r, TD_REFUND_COMPLETED, t, order, buyer);
        }
        return;
    }
    t += gen_range(g, 10 * 60000, 24 * HOUR);
    gen_refund_step(g, &r, TD_REFUND_APPROVED, t, order, buyer);
    t += gen_range(g, 12 * HOUR, 5 * DAY);
    gen_refund_step(g, &r, TD_REFUND_COMPLETED, t, order, buyer);
}

/*
 * Every order: CREATED, PAID, then cancelled or SHIPPED, DELIVERED,
 * COMPLETED, with a review and a refund now and then. Orders are paid in
 * time order, so buyer_order_seq is the buyer's n-th order, as the order
 * service sets it. Lifecycle steps after `end` have not happened yet.
 */
static void gen_merchant(
    const profile_t *p, int64_t end, uint64_t seed, emit_fn emit, void *arg) {
    static const double channels[TD_CHANNEL__CNT] = {0.5, 0.3, 0.2};
    gen_t g = {.rng = seed, .end = end, .p = p, .emit = emit, .arg = arg};
    int *seq = calloc((size_t)p->orders + 1, sizeof(int));
    int buyers = 0;
    int64_t span = (int64_t)p->days * DAY - HOUR;
    int64_t start = end - HOUR - span;

    assert_non_null(seq);
    for (int i = 0; i < p->orders; i++) {
        int64_t t = start + (int64_t)(((double)i + gen_unif(&g)) *
                                      (double)span / p->orders);
        td_order_t o = {0};
        td_event_t e;
        int b = buyers > 0 && gen_unif(&g) < p->repeat_p
                    ? (int)(gen_next(&g) % (uint64_t)buyers)
                    : buyers++;

        seq[b]++;
        o.amount_cents = gen_range(&g, 300, 25000);
        o.channel = gen_pick(&g, channels, TD_CHANNEL__CNT);
        o.cancelled_by = TD_NULL_ENUM;
        o.promised_ship_by = t + 48 * HOUR;
        o.promised_delivery_by = TD_NULL_TS;
        o.tracking_valid = TD_NULL_BOOL;
        o.paid_at = TD_NULL_TS;
        o.shipped_at = TD_NULL_TS;
        o.buyer_order_seq = gen_unif(&g) < p->unknown_seq_p ? 0 : seq[b];
        gen_order_event(&g, &e, TD_ORDER_CREATED, t - gen_range(&g, 0, 600000),
                        &o, i, b);
        gen_emit(&g, &e);
        gen_order_event(&g, &e, TD_ORDER_PAID, t, &o, i, b);
        gen_emit(&g, &e);
        o.paid_at = t;

        double c = gen_unif(&g);
        if (c < p->cancel_p + 0.03) {
            o.cancelled_by =
                c < p->cancel_p ? TD_CANCEL_MERCHANT : TD_CANCEL_BUYER;
            gen_order_event(&g, &e, TD_ORDER_CANCELLED,
                            t + gen_range(&g, HOUR, 40 * HOUR), &o, i, b);
            gen_emit(&g, &e);
            continue;
        }
        int64_t ts = t + (gen_unif(&g) < p->late_ship_p
                              ? gen_range(&g, 49 * HOUR, 120 * HOUR)
                              : gen_range(&g, 2 * HOUR, 40 * HOUR));
        double tv = gen_unif(&g);
        o.tracking_valid = tv < 0.95 ? 1 : tv < 0.98 ? 0 : TD_NULL_BOOL;
        o.promised_delivery_by = ts + 5 * DAY;
        gen_order_event(&g, &e, TD_ORDER_SHIPPED, ts, &o, i, b);
        if (!gen_emit(&g, &e)) continue;
        o.shipped_at = ts;
        int64_t td = ts + (gen_unif(&g) < p->late_deliver_p
                               ? gen_range(&g, 5 * DAY + HOUR, 10 * DAY)
                               : gen_range(&g, 20 * HOUR, 4 * DAY));
        gen_order_event(&g, &e, TD_ORDER_DELIVERED, td, &o, i, b);
        if (!gen_emit(&g, &e)) continue;
        gen_order_event(&g, &e, TD_ORDER_COMPLETED, td + 7 * DAY, &o, i, b);
        gen_emit(&g, &e);
        if (gen_unif(&g) < p->review_p)
            gen_review(&g, td + gen_range(&g, HOUR, 6 * DAY), i, b);
        if (gen_unif(&g) < p->refund_p)
            gen_refund(&g, td + gen_range(&g, HOUR, 5 * DAY), o.amount_cents, i,
                       b);
    }
    free(seq);
}

/* clang-format off */
static const profile_t profiles[] = {
    /* id                 orders days repeat unk  cancel lship ldlv review low  flag refund rej  esc  lose cfeit */
    {"m-small-7f3a9c2e",      60,  25, 0.10, 0.05, 0.01, 0.05, 0.05, 0.30, 0.10, 0.02, 0.05, 0.10, 0.00, 0.0, 0.00},
    {"m-big-00c41d7b5e",   73000, 365, 0.45, 0.02, 0.01, 0.04, 0.03, 0.25, 0.08, 0.03, 0.06, 0.15, 0.30, 0.3, 0.002},
    {"m-bad-e91b220f48",    3000, 120, 0.05, 0.05, 0.08, 0.30, 0.20, 0.35, 0.45, 0.20, 0.25, 0.40, 0.50, 0.7, 0.10},
    {"m-tiny-bad-3c07a1",    120, 150, 0.10, 0.05, 0.10, 0.40, 0.30, 0.50, 0.50, 0.30, 0.40, 0.60, 0.80, 0.8, 0.30},
};
/* clang-format on */

/* ---- applying deltas through the store, as trustd does ---- */

/* Events per delta: trustd folds a flush's events of one source partition
 * for one merchant into one delta. */
#define DELTA_EVENTS 2000

typedef struct loader_s {
    const char *m;
    td_sigdelta_t d[TD_EV__CNT];
    int64_t offset[TD_EV__CNT]; /* next offset per source */
    td_sigstate_t c;            /* the C merge of the same deltas */
    int deltas;
    int events;
} loader_t;

static void apply_delta(loader_t *l, int kind) {
    static const char *src[TD_EV__CNT] = {"orders/0", "reviews/0", "refunds/0"};
    const td_sigdelta_t *d = &l->d[kind];
    char errstr[512];

    if (d->events == 0) return;
    if (td_h_merge(st, l->m, src[kind], l->offset[kind],
                   l->offset[kind] + d->events, d, errstr, sizeof(errstr)) != 1)
        fail_msg("%s: apply failed: %s", l->m, errstr);
    td_sigstate_merge(&l->c, d);
    l->offset[kind] += d->events;
    l->deltas++;
    td_sigdelta_init(&l->d[kind], (td_event_kind_t)kind);
}

static void loader_emit(void *arg, const td_event_t *e) {
    loader_t *l = arg;
    td_sigdelta_add(&l->d[e->kind], e);
    l->events++;
    if (l->d[e->kind].events >= DELTA_EVENTS) apply_delta(l, e->kind);
}

static void
load_merchant(loader_t *l, const profile_t *p, const char *id, uint64_t seed) {
    static const int64_t end = 1732000000000LL; /* 2024-11-19 */
    profile_t q = *p;

    memset(l, 0, sizeof(*l));
    q.id = id;
    l->m = id;
    for (int k = 0; k < TD_EV__CNT; k++)
        td_sigdelta_init(&l->d[k], (td_event_kind_t)k);
    td_sigstate_init(&l->c);
    gen_merchant(&q, end, seed, loader_emit, l);
    for (int k = 0; k < TD_EV__CNT; k++)
        apply_delta(l, k);
}

static long long memory_usage(const char *key) {
    redisReply *r = redisCommand(rc, "MEMORY USAGE %s SAMPLES 0", key);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return n;
}

/* MEMORY USAGE of merchant m's packed exact state. */
static long long state_usage(const char *m) {
    char key[128];
    td_key_state(key, sizeof(key), m, strlen(m));
    return memory_usage(key);
}

static void encoding(const char *key, char *buf, size_t size) {
    redisReply *r = redisCommand(rc, "OBJECT ENCODING %s", key);
    snprintf(buf, size, "%s",
             r && r->type == REDIS_REPLY_STRING ? r->str : "(none)");
    freeReplyObject(r);
}

static long long hlen(const char *key) {
    redisReply *r = redisCommand(rc, "HLEN %s", key);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return n;
}

static int group_setup(void **state) {
    /* Redis' own default (Debian builds raise it to 512): the budget must
     * hold on a stock server. */
    static const char *rargs[] = {"--hash-max-listpack-entries", "128", NULL};
    static const char *kargs[] = {"--partitions", "4", NULL};
    td_store_conf_t sc = {0};
    char errstr[512];
    (void)state;

    if (td_h_redis_start(&redis, rargs) || td_h_kafka_start(&kafka, kargs))
        return -1;
    sc.addrs = redis.addr;
    sc.user = "";
    sc.password = "";
    sc.connect_timeout_ms = 2000;
    sc.command_timeout_ms = 10000;
    st = td_store_new(&sc, errstr, sizeof(errstr));
    if (!st || td_store_connect(st, errstr, sizeof(errstr)) != TD_OK) {
        fprintf(stderr, "store: %s\n", errstr);
        return -1;
    }
    batch = td_rbatch_new();
    rc = td_h_redis_connect(&redis);
    return rc ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    if (trustd.pid > 0) {
        td_h_signal(&trustd, SIGKILL);
        td_h_wait(&trustd, 5000);
    }
    td_rbatch_destroy(batch);
    td_store_destroy(st);
    if (rc) redisFree(rc);
    td_h_kafka_stop(&kafka);
    td_h_redis_stop(&redis);
    return 0;
}

/* Prints what the merchant's keys take; `what` says where it came from. */
static void print_memory(const char *m, const char *what) {
    char ks[128], kw[128], kc[128], kx[128], es[32], ew[32], ec[32];
    size_t mlen = strlen(m);
    long long s, w, c, x;

    td_key_state(kx, sizeof(kx), m, mlen);
    td_key_signals(ks, sizeof(ks), m, mlen);
    td_key_wm(kw, sizeof(kw), m, mlen);
    td_key_score(kc, sizeof(kc), m, mlen);
    encoding(ks, es, sizeof(es));
    encoding(kw, ew, sizeof(ew));
    encoding(kc, ec, sizeof(ec));
    s = memory_usage(ks);
    w = memory_usage(kw);
    c = memory_usage(kc);
    x = memory_usage(kx);
    printf("# memory %-18s %-26s signals %lld fields %s %lld B, "
           "state %lld B, wm %s %lld B, score %s %lld B, total %lld B\n",
           m, what, hlen(ks), es, s, x, ew, w, ec, c, s + x + w + c);
    fflush(stdout);
}

static void test_realistic_merchants_fit_4k_listpack(void **state) {
    char why[512] = "";
    (void)state;

    /* Measure every merchant first, then fail: the numbers are the point. */
    for (size_t i = 0; i < TD_ARRAY_LEN(profiles); i++) {
        static loader_t l;
        char key[128], enc[32];
        long long bytes;

        load_merchant(&l, &profiles[i], profiles[i].id, 0x5eed0001 + i);
        td_key_signals(key, sizeof(key), l.m, strlen(l.m));
        encoding(key, enc, sizeof(enc));
        bytes = memory_usage(key);
        char what[64];
        snprintf(what, sizeof(what), "(%d events, %d deltas)", l.events,
                 l.deltas);
        print_memory(l.m, what);
        if (strcmp(enc, "listpack"))
            snprintf(why, sizeof(why), "%s: signals hash is a %s", l.m, enc);
        else if (bytes <= 0 || bytes >= BUDGET)
            snprintf(why, sizeof(why),
                     "%s: signals hash takes %lld bytes, budget %d", l.m, bytes,
                     BUDGET);
    }
    if (why[0]) fail_msg("%s", why);
}

/* Every base signal present (the bad merchant has them all) is the worst
 * case of the hash's size: it must fit as well. */
static void test_bad_merchant_has_every_field(void **state) {
    static loader_t l;
    char key[128];
    (void)state;

    load_merchant(&l, &profiles[2], "m-bad-every-fld", 0x5eed00b0);
    td_key_signals(key, sizeof(key), l.m, strlen(l.m));
    for (int k = 0; k < TD_SIG__CNT; k++) {
        if (!l.c.present[k]) fail_msg("%s: %s absent", l.m, td_signals[k].name);
    }
    assert_int_equal(hlen(key), TD_SIG__CNT + 1); /* + as_of_ms */
    assert_true(memory_usage(key) < BUDGET);
    /* The packed exact state: a fixed-size string beside it, under the
     * 1 KB budget of trustd's merchant cache entry. */
    assert_true(state_usage(l.m) < 1024);
}

static void test_redis_equals_c_merge_on_realistic_merchants(void **state) {
    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(profiles); i++) {
        static loader_t l;
        char id[64], key[128];

        snprintf(id, sizeof(id), "parity-%zu", i);
        load_merchant(&l, &profiles[i], id, 0x9a17 + i);
        td_key_signals(key, sizeof(key), id, strlen(id));
        for (int k = 0; k < TD_SIG__CNT; k++) {
            double got;
            int present =
                td_h_hget_double(rc, key, td_signals[k].name, &got) == 0;
            double want = l.c.v[k];
            if (present != l.c.present[k])
                fail_msg("%s %s: present in redis %d, in C %d", id,
                         td_signals[k].name, present, l.c.present[k]);
            if (present && fabs(got - want) > 1e-9 * fmax(1.0, fabs(want)))
                fail_msg("%s %s: redis %.17g, C %.17g", id, td_signals[k].name,
                         got, want);
        }
    }
}

/* ---- end to end through Kafka and trustd ---- */

/*
 * The end-to-end merchants are small versions of the profiles above; their
 * events are kept (without strings) so the expected values can be computed
 * from the definitions.
 */
#define E2E_MAX 4096

static const profile_t e2e_profiles[] = {
    {"e2e-small", 25, 40, 0.20, 0.10, 0.04, 0.10, 0.10, 0.50, 0.10, 0.10, 0.15,
     0.20, 0.50, 0.5, 0.00},
    {"e2e-steady", 50, 200, 0.40, 0.05, 0.02, 0.10, 0.10, 0.40, 0.10, 0.10,
     0.15, 0.30, 0.50, 0.5, 0.00},
    {"e2e-bad", 40, 100, 0.10, 0.05, 0.10, 0.40, 0.30, 0.50, 0.50, 0.30, 0.40,
     0.50, 0.80, 0.8, 0.30},
};

typedef struct e2e_s {
    td_event_t ev[E2E_MAX];
    int n;
} e2e_t;

static e2e_t e2e;

static void e2e_keep(void *arg, const td_event_t *e) {
    e2e_t *x = arg;
    td_event_t *k;

    assert_true(x->n < E2E_MAX);
    k = &x->ev[x->n++];
    *k = *e;
    /* Only the merchant id is read back; it points at static profile
     * strings. The other strings are regenerated when producing. */
    k->event_id = (td_str_t){"e", 1};
    k->order_id = (td_str_t){"o", 1};
    k->buyer_id = (td_str_t){"b", 1};
    if (k->kind == TD_EV_REFUND) k->u.refund.refund_id = (td_str_t){"r", 1};
}

/* Definitions, written from schemas/signals.md. */
static int is_order(const td_event_t *e, int status) {
    return e->kind == TD_EV_ORDER && e->u.order.status == status;
}
static int is_refund(const td_event_t *e, int status) {
    return e->kind == TD_EV_REFUND && e->u.refund.status == status;
}
static int x_paid(const td_event_t *e) {
    return is_order(e, TD_ORDER_PAID);
}
static int x_paid_live(const td_event_t *e) {
    return x_paid(e) && e->u.order.channel == TD_CHANNEL_LIVE;
}
static int x_first_order(const td_event_t *e) {
    return x_paid(e) && e->u.order.buyer_order_seq == 1;
}
static int x_second_order(const td_event_t *e) {
    return x_paid(e) && e->u.order.buyer_order_seq == 2;
}
static int x_shipped(const td_event_t *e) {
    return is_order(e, TD_ORDER_SHIPPED);
}
static int x_shipped_late(const td_event_t *e) {
    return x_shipped(e) && e->u.order.promised_ship_by != TD_NULL_TS &&
           e->event_time > e->u.order.promised_ship_by;
}
static int x_shipped_timed(const td_event_t *e) {
    return x_shipped(e) && e->u.order.paid_at != TD_NULL_TS;
}
static int x_delivered(const td_event_t *e) {
    return is_order(e, TD_ORDER_DELIVERED);
}
static int x_delivered_late(const td_event_t *e) {
    return x_delivered(e) && e->u.order.promised_delivery_by != TD_NULL_TS &&
           e->event_time > e->u.order.promised_delivery_by;
}
static int x_delivered_timed(const td_event_t *e) {
    return x_delivered(e) && e->u.order.shipped_at != TD_NULL_TS;
}
static int x_review_ok(const td_event_t *e) {
    return e->kind == TD_EV_REVIEW && !e->u.review.flagged;
}
static int x_review_any(const td_event_t *e) {
    return e->kind == TD_EV_REVIEW;
}
static int x_review_flagged(const td_event_t *e) {
    return e->kind == TD_EV_REVIEW && e->u.review.flagged;
}
static int x_quality_rated(const td_event_t *e) {
    return x_review_ok(e) && e->u.review.quality_rating != 0;
}
static int x_refund_requested(const td_event_t *e) {
    return is_refund(e, TD_REFUND_REQUESTED);
}
static int x_refund_only(const td_event_t *e) {
    return x_refund_requested(e) && e->u.refund.kind == TD_KIND_REFUND_ONLY;
}
static int x_refund_resolved_timed(const td_event_t *e) {
    return (is_refund(e, TD_REFUND_COMPLETED) ||
            is_refund(e, TD_REFUND_REJECTED)) &&
           e->u.refund.requested_at != TD_NULL_TS;
}
static int x_arbitration_lost(const td_event_t *e) {
    return is_refund(e, TD_REFUND_ARBITRATED) &&
           e->u.refund.responsible == TD_RESP_MERCHANT;
}
static int x_counterfeit(const td_event_t *e) {
    return x_arbitration_lost(e) && e->u.refund.reason == TD_REASON_COUNTERFEIT;
}

static double v_one(const td_event_t *e) {
    (void)e;
    return 1;
}
static double v_amount(const td_event_t *e) {
    return (double)e->u.order.amount_cents;
}
static double v_rating(const td_event_t *e) {
    return e->u.review.rating;
}
static double v_quality(const td_event_t *e) {
    return e->u.review.quality_rating;
}
static double v_ship_hours(const td_event_t *e) {
    return fmax(0, (double)(e->event_time - e->u.order.paid_at) / HOUR);
}
static double v_delivery_hours(const td_event_t *e) {
    return fmax(0, (double)(e->event_time - e->u.order.shipped_at) / HOUR);
}
static double v_resolve_hours(const td_event_t *e) {
    return fmax(0, (double)(e->event_time - e->u.refund.requested_at) / HOUR);
}

static int64_t e2e_as_of(const char *m) {
    int64_t t = TD_NULL_TS;
    for (int i = 0; i < e2e.n; i++) {
        const td_event_t *e = &e2e.ev[i];
        if (!strcmp(e->merchant_id.ptr, m) && e->event_time > t)
            t = e->event_time;
    }
    return t;
}

/* sum of value * exp(-(T - t) / W) over the merchant's matching events;
 * W = 0 for a lifetime sum. */
static double sum(const char *m,
                  double W,
                  int (*match)(const td_event_t *),
                  double (*value)(const td_event_t *)) {
    double T = (double)e2e_as_of(m), v = 0;
    for (int i = 0; i < e2e.n; i++) {
        const td_event_t *e = &e2e.ev[i];
        double w;
        if (strcmp(e->merchant_id.ptr, m) || !match(e)) continue;
        w = value(e);
        v += W > 0 ? w * exp(-(T - (double)e->event_time) / W) : w;
    }
    return v;
}

/* Smallest (dir < 0) or largest event_time of matching events, or 0. */
static double
extreme(const char *m, int (*match)(const td_event_t *), int dir) {
    double x = 0;
    for (int i = 0; i < e2e.n; i++) {
        const td_event_t *e = &e2e.ev[i];
        double t = (double)e->event_time;
        if (strcmp(e->merchant_id.ptr, m) || !match(e)) continue;
        if (x == 0 || (dir < 0 ? t < x : t > x)) x = t;
    }
    return x;
}

typedef struct check_s {
    char why[512];
    int checked;
} check_t;

/* Compares one field; returns 1 if it matches. A base signal that is 0
 * may be absent; a derived one is present iff `present`. */
static int
field(check_t *c, const char *m, const char *name, double want, int present) {
    char key[128];
    double got;
    int have;

    snprintf(key, sizeof(key), "trust:{%s}:signals", m);
    have = td_h_hget_double(rc, key, name, &got) == 0;
    c->checked++;
    if (!present) {
        if (!have) return 1;
        snprintf(c->why, sizeof(c->why), "%s %s: expected absent, got %.17g", m,
                 name, got);
        return 0;
    }
    if (!have && want == 0) return 1;
    if (!have) {
        snprintf(c->why, sizeof(c->why), "%s %s: absent, expected %.17g", m,
                 name, want);
        return 0;
    }
    if (fabs(got - want) > 1e-9 * fmax(1.0, fabs(want))) {
        snprintf(c->why, sizeof(c->why), "%s %s: got %.17g, expected %.17g", m,
                 name, got, want);
        return 0;
    }
    return 1;
}

static int
ratio(check_t *c, const char *m, const char *name, double a, double b) {
    return field(c, m, name, b != 0 ? a / b : 0, b != 0);
}

/* A sample of signals from every category. */
static int check_merchant(check_t *c, const char *m) {
    const double D7 = 7.0 * DAY, D30 = 30.0 * DAY, D90 = 90.0 * DAY;
    double T = (double)e2e_as_of(m);
    char key[128];
    double asof;
    int ok = 1;

    snprintf(key, sizeof(key), "trust:{%s}:signals", m);
    if (td_h_hget_double(rc, key, "as_of_ms", &asof) != 0 || asof != T) {
        snprintf(c->why, sizeof(c->why), "%s: as_of_ms not yet %.0f", m, T);
        return 0;
    }
    /* volume */
    double paid30 = sum(m, D30, x_paid, v_one);
    double gmv30 = sum(m, D30, x_paid, v_amount);
    double first = extreme(m, x_paid, -1);
    ok &= field(c, m, "orders_paid_total", sum(m, 0, x_paid, v_one), 1);
    ok &= field(c, m, "gmv_cents_30d", gmv30, 1);
    ok &= field(c, m, "store_age_days", (T - first) / DAY, first != 0);
    ok &= ratio(c, m, "orders_trend_7d_30d",
                sum(m, D7, x_paid, v_one) * 30.0 / 7.0, paid30);
    /* fulfillment */
    double shipped = sum(m, D30, x_shipped, v_one);
    double timed = sum(m, D30, x_shipped_timed, v_one);
    ok &= ratio(c, m, "late_ship_rate_30d", sum(m, D30, x_shipped_late, v_one),
                shipped);
    ok &= ratio(c, m, "ship_hours_avg_30d",
                sum(m, D30, x_shipped_timed, v_ship_hours), timed);
    /* logistics */
    ok &= ratio(c, m, "late_delivery_rate_30d",
                sum(m, D30, x_delivered_late, v_one),
                sum(m, D30, x_delivered, v_one));
    ok &= ratio(c, m, "delivery_hours_avg_30d",
                sum(m, D30, x_delivered_timed, v_delivery_hours),
                sum(m, D30, x_delivered_timed, v_one));
    /* product quality */
    ok &= ratio(c, m, "rating_avg_30d", sum(m, D30, x_review_ok, v_rating),
                sum(m, D30, x_review_ok, v_one));
    ok &= ratio(c, m, "quality_rating_avg_30d",
                sum(m, D30, x_quality_rated, v_quality),
                sum(m, D30, x_quality_rated, v_one));
    /* after-sales service */
    double requested = sum(m, D30, x_refund_requested, v_one);
    ok &= field(c, m, "refunds_requested_30d", requested, 1);
    ok &= ratio(c, m, "refund_rate_30d", requested, paid30);
    ok &= ratio(c, m, "refund_resolve_hours_avg_30d",
                sum(m, D30, x_refund_resolved_timed, v_resolve_hours),
                sum(m, D30, x_refund_resolved_timed, v_one));
    /* disputes and counterfeit */
    double last_cf = extreme(m, x_counterfeit, 1);
    ok &= field(c, m, "arbitrations_lost_90d",
                sum(m, D90, x_arbitration_lost, v_one), 1);
    ok &= field(c, m, "counterfeit_confirmed_total",
                sum(m, 0, x_counterfeit, v_one), 1);
    ok &= field(c, m, "days_since_counterfeit", (T - last_cf) / DAY,
                last_cf != 0);
    /* buyer loyalty */
    ok &= field(c, m, "buyers_total", sum(m, 0, x_first_order, v_one), 1);
    ok &=
        ratio(c, m, "repeat_buyer_rate_90d", sum(m, D90, x_second_order, v_one),
              sum(m, D90, x_first_order, v_one));
    /* channel mix */
    ok &= ratio(c, m, "live_gmv_share_30d", sum(m, D30, x_paid_live, v_amount),
                gmv30);
    /* risk */
    ok &= ratio(c, m, "flagged_review_share_30d",
                sum(m, D30, x_review_flagged, v_one),
                sum(m, D30, x_review_any, v_one));
    ok &= ratio(c, m, "refund_only_share_30d",
                sum(m, D30, x_refund_only, v_one), requested);
    return ok;
}

static int all_match(void *arg) {
    check_t *c = arg;
    for (size_t i = 0; i < TD_ARRAY_LEN(e2e_profiles); i++) {
        c->checked = 0;
        if (!check_merchant(c, e2e_profiles[i].id)) return 0;
    }
    return 1;
}

static uint64_t shuffle_rng = 0x2545F4914F6CDD1DULL;

static void test_trustd_signals_match_definitions(void **state) {
    td_h_producer_t *p;
    int64_t end = td_now_ms() - 60000;
    check_t c = {{0}, 0};
    (void)state;

    e2e.n = 0;
    for (size_t i = 0; i < TD_ARRAY_LEN(e2e_profiles); i++)
        gen_merchant(&e2e_profiles[i], end, 0xe2e0 + i, e2e_keep, &e2e);
    printf("# end to end: %d events of %zu merchants\n", e2e.n,
           TD_ARRAY_LEN(e2e_profiles));
    /* Any arrival order: late events are the rule, not the exception. */
    for (int i = e2e.n - 1; i > 0; i--) {
        shuffle_rng ^= shuffle_rng << 13;
        shuffle_rng ^= shuffle_rng >> 7;
        shuffle_rng ^= shuffle_rng << 17;
        int j = (int)(shuffle_rng % (uint64_t)(i + 1));
        td_event_t t = e2e.ev[i];
        e2e.ev[i] = e2e.ev[j];
        e2e.ev[j] = t;
    }
    p = td_h_producer_new(kafka.bootstrap);
    assert_non_null(p);
    for (int i = 0; i < e2e.n; i++) {
        td_event_t ev = e2e.ev[i];
        char id[32];
        snprintf(id, sizeof(id), "e2e-%d", i);
        ev.event_id = (td_str_t){id, strlen(id)};
        assert_int_equal(td_h_produce(p, &ev, -1), 0);
    }
    assert_int_equal(td_h_producer_flush(p), 0);
    td_h_producer_destroy(p);

    assert_int_equal(td_h_trustd_start(&trustd, "trustd", &kafka, &redis,
                                       "it-signals", NULL),
                     0);
    if (!td_h_poll(all_match, &c, 60000)) {
        td_h_dump_log(&trustd);
        fail_msg("signals did not match within 60 s: %s", c.why);
    }
    printf("# end to end: %d signals of each merchant match\n", c.checked);
    for (size_t i = 0; i < TD_ARRAY_LEN(e2e_profiles); i++) {
        char what[64];
        int n = 0;
        for (int k = 0; k < e2e.n; k++)
            n += !strcmp(e2e.ev[k].merchant_id.ptr, e2e_profiles[i].id);
        snprintf(what, sizeof(what), "(%d events, trustd)", n);
        print_memory(e2e_profiles[i].id, what);
        /* Written whole, the score hash stays a listpack although its
         * reasons exceed hash-max-listpack-value (rdump.h). */
        char key[128], enc[32];
        td_key_score(key, sizeof(key), e2e_profiles[i].id,
                     strlen(e2e_profiles[i].id));
        encoding(key, enc, sizeof(enc));
        assert_string_equal(enc, "listpack");
        assert_true(memory_usage(key) > 0 && memory_usage(key) < 1024);
    }
    td_h_signal(&trustd, SIGTERM);
    assert_int_not_equal(td_h_wait(&trustd, 10000), -1);
    trustd.pid = 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_realistic_merchants_fit_4k_listpack),
        cmocka_unit_test(test_bad_merchant_has_every_field),
        cmocka_unit_test(test_redis_equals_c_merge_on_realistic_merchants),
        cmocka_unit_test(test_trustd_signals_match_definitions),
    };
    return cmocka_run_group_tests_name("it_signals", tests, group_setup,
                                       group_teardown);
}
