/*
 * loadgen.c - deterministic generator of realistic marketplace events.
 *
 * How it works. Merchants get a popularity rank (Zipf with exponent zipf_s
 * over a random permutation) and a hidden profile: most are good, a
 * bad_share minority ships late, cancels, loses parcels, draws refunds, low
 * ratings and fake reviews, and some of those sell counterfeits. Every order
 * is a record in a fixed slab with three "tracks", each holding the time of
 * its next event: the order track (CREATED, PAID, SHIPPED, DELIVERED,
 * COMPLETED or CANCELLED), the review track (a review, sometimes a
 * follow-up) and the refund track (REQUESTED, APPROVED or REJECTED,
 * ESCALATED, ARBITRATED, COMPLETED). A min-heap over the records, keyed by
 * their earliest track, interleaves all lifecycles on one simulated clock.
 *
 * Each td_loadgen_next() advances the clock by an exponential step of mean
 * 1/events_per_sec_sim, then emits the earliest due step, or opens a new
 * order if nothing is due. When max_open orders are open, the clock jumps to
 * the next due step instead, so memory never grows past the slab. Because
 * one record holds all of an order's tracks and is in the heap once, an
 * order's events come out in lifecycle order. A small share of steps is held
 * back for 1 to 46 simulated minutes and then emitted with its original
 * event time (late, out-of-order events).
 *
 * Warm start: td_loadgen_new() creates orders in the days before start_ms
 * (newest first, up to the cap) and silently fast-forwards them to start_ms,
 * so the very first events already mix shipments, deliveries, reviews and
 * refunds instead of only new orders.
 *
 * Determinism: one xoshiro256** PRNG seeded through splitmix64 drives every
 * choice; nothing reads a clock after td_loadgen_conf_defaults().
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

#define LG_NEVER  INT64_MAX
#define LG_SEC    1000LL
#define LG_MIN    (60 * LG_SEC)
#define LG_HOUR   (60 * LG_MIN)
#define LG_DAY    (24 * LG_HOUR)
#define LG_WARMUP (8 * LG_DAY)

/* Promises the platform makes on the buyer's behalf. */
#define LG_SHIP_PROMISE     (48 * LG_HOUR)
#define LG_DELIVERY_PROMISE (96 * LG_HOUR)

/* Average events per order and average time from CREATED to an order's
 * last event (both measured on the defaults), to turn an event rate and
 * the open-order cap into an order arrival rate during warm-up. */
#define LG_EVENTS_PER_ORDER 5.7
#define LG_ORDER_LIFE       (3.9 * LG_DAY)

/* Share of lifecycle steps emitted late, and how late at most. */
#define LG_LATE_SHARE 0.004
#define LG_LATE_MAX   (45 * LG_MIN)

/* Buyer pools: the budget of buyer slots over all merchants, and the
 * number of distinct global buyer ids they map onto. */
#define LG_POOL_MIN     8
#define LG_POOL_PER_M   20
#define LG_POOL_BUDGET  4000000
#define LG_BUYER_SPACE  10000000u
#define LG_MERCHANT_MAX 1000000 /* ids stay "m" + 6 digits */

enum { LG_T_ORDER = 0, LG_T_REVIEW, LG_T_REFUND, LG_T__CNT };

enum { LG_PROF_GOOD = 0, LG_PROF_BAD, LG_PROF_FAKE, LG_PROF__CNT };

typedef struct lg_rng_s {
    uint64_t s[4];
} lg_rng_t;

/* A merchant's hidden profile; probabilities are per order. */
typedef struct lg_merchant_s {
    uint32_t pool_off;  /* first buyer counter in g->buyer_cnt */
    uint32_t pool_size; /* buyers in this merchant's pool */
    uint8_t profile;    /* LG_PROF_*: refund reasons, arbitration */
    uint8_t kind;       /* td_loadgen_kind_t */
    float rating_mu;    /* centre of the star distribution */
    float ship_median_h;
    float deliver_median_h;
    float p_cancel;       /* merchant cancels a paid order */
    float p_refund;       /* refund requested after delivery */
    float p_reject;       /* merchant rejects a refund request */
    float p_bad_tracking; /* tracking number does not check out */
    float p_lost;         /* parcel never arrives */
    float p_fake_review;  /* a bought 5-star review (flagged) */
    float chan_cdf[2];    /* P(LIVE), P(LIVE or SHORT_VIDEO) */
    double price_cents;   /* median order amount */
} lg_merchant_t;

/* One open order with its three tracks. */
typedef struct lg_order_s {
    uint64_t no;               /* order number, part of order_id */
    int64_t due[LG_T__CNT];    /* next event time per track, LG_NEVER */
    int64_t paid_at;           /* TD_NULL_TS until paid */
    int64_t shipped_at;        /* TD_NULL_TS until shipped */
    int64_t promised_ship_by;  /* TD_NULL_TS until paid */
    int64_t promised_delivery; /* TD_NULL_TS until shipped */
    int64_t amount;            /* order amount in cents */
    int64_t refund_amount;     /* refund amount in cents */
    int64_t requested_at;      /* TD_NULL_TS until a refund is asked */
    uint32_t merchant;         /* merchant index */
    uint32_t buyer;            /* global buyer number */
    uint16_t seq;              /* buyer_order_seq */
    int8_t ostate;             /* next order status, -1 when done */
    int8_t rvstate;            /* next review: 0 none, 1 first, 2 followup */
    int8_t rfstate;            /* next refund status, -1 when none */
    int8_t held;               /* track held back as a late event, or -1 */
    int8_t channel;            /* td_channel_t */
    int8_t cancelled_by;       /* set when the next status is CANCELLED */
    int8_t tracking_valid;     /* TD_NULL_BOOL until shipped */
    int8_t late_delivery;      /* delivered after the promise */
    int8_t reason;             /* td_refund_reason_t */
    int8_t kind;               /* td_refund_kind_t */
    int8_t responsible;        /* TD_NULL_ENUM until arbitrated */
    int8_t was_rejected;       /* merchant rejected the refund */
    int8_t first_rating;       /* rating of the first review, 0 none */
} lg_order_t;

typedef struct lg_heap_ent_s {
    int64_t key;   /* when the record's next event is due (or released) */
    uint32_t slot; /* index into g->orders */
} lg_heap_ent_t;

struct td_loadgen_s {
    td_loadgen_conf_t conf;
    lg_rng_t rng;
    uint64_t tag;       /* seed-derived prefix of event, order ids */
    double clock;       /* simulated time, ms since epoch */
    double step_mean;   /* mean clock step per event, ms */
    uint64_t event_cnt; /* events emitted, part of event_id */
    uint64_t order_cnt; /* orders opened */

    int merchant_cnt;
    lg_merchant_t *merchants;
    double *zipf_cdf;    /* cumulative weight by popularity rank */
    uint32_t *rank2m;    /* popularity rank -> merchant index */
    uint16_t *buyer_cnt; /* orders per (merchant, pool buyer) */

    int max_open;
    lg_order_t *orders;
    uint32_t *free_slots;
    int free_cnt;
    lg_heap_ent_t *heap;
    int heap_cnt;

    /* Buffers the strings of the last event point into. */
    char event_id[40];
    char merchant_id[16];
    char order_id[32];
    char buyer_id[16];
    char refund_id[32];
};


/* ---- PRNG: xoshiro256** seeded with splitmix64 ---- */

static uint64_t lg_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void lg_rng_seed(lg_rng_t *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        r->s[i] = lg_splitmix64(&x);
    }
}

static inline uint64_t lg_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t lg_rng_u64(lg_rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = lg_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lg_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double lg_unif(lg_rng_t *r) {
    return (double)(lg_rng_u64(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [lo, hi). */
static double lg_range(lg_rng_t *r, double lo, double hi) {
    return lo + (hi - lo) * lg_unif(r);
}

/* Uniform integer in [0, n). */
static uint32_t lg_below(lg_rng_t *r, uint32_t n) {
    return (uint32_t)(((lg_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

static int lg_chance(lg_rng_t *r, double p) {
    return lg_unif(r) < p;
}

/* Exponential with the given mean. */
static double lg_exp(lg_rng_t *r, double mean) {
    return -mean * log(1.0 - lg_unif(r));
}

/* Standard normal (Box-Muller; the second value is dropped so that every
 * call consumes the same amount of the stream). */
static double lg_normal(lg_rng_t *r) {
    double u1 = 1.0 - lg_unif(r);
    double u2 = lg_unif(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Log-normal with the given median, as milliseconds from hours. */
static int64_t lg_lognormal_h(lg_rng_t *r, double median_h, double sigma) {
    return (int64_t)(median_h * exp(sigma * lg_normal(r)) * (double)LG_HOUR);
}

/* Index drawn from a table of weights. */
static int lg_pick(lg_rng_t *r, const double *w, int n) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        total += w[i];
    }
    double u = lg_unif(r) * total;
    for (int i = 0; i < n - 1; i++) {
        if (u < w[i]) return i;
        u -= w[i];
    }
    return n - 1;
}


/* ---- Profile tables ---- */

/* clang-format off */
/* Refund reasons by merchant profile (weights, td_refund_reason_t order:
 * NO_REASON_7D, QUALITY, NOT_AS_DESCRIBED, COUNTERFEIT, NOT_RECEIVED,
 * DAMAGED, LATE_DELIVERY, OTHER). */
static const double lg_reason_w[LG_PROF__CNT][TD_REASON__CNT] = {
    [LG_PROF_GOOD] = {50, 14, 9, 0.2, 2, 8, 5, 12},
    [LG_PROF_BAD]  = {20, 25, 20, 1, 5, 8, 12, 9},
    [LG_PROF_FAKE] = {10, 22, 22, 30, 3, 3, 4, 6},
};

/* Who arbitration holds responsible, by profile (td_responsible_t order:
 * MERCHANT, BUYER, PLATFORM, LOGISTICS). */
static const double lg_resp_w[LG_PROF__CNT][TD_RESP__CNT] = {
    [LG_PROF_GOOD] = {25, 45, 5, 25},
    [LG_PROF_BAD]  = {65, 15, 5, 15},
    [LG_PROF_FAKE] = {80, 8, 4, 8},
};

/* Per-order parameters of a merchant, each drawn uniformly from its kind's
 * range, in this order (the order the PRNG is consumed in). */
enum {
    LG_P_RATING_MU = 0,
    LG_P_SHIP_H,
    LG_P_DELIVER_H,
    LG_P_CANCEL,
    LG_P_REFUND,
    LG_P_REJECT,
    LG_P_BAD_TRACKING,
    LG_P_LOST,
    LG_P_FAKE_REVIEW,
    LG_P__CNT
};

static const double lg_good_range[LG_P__CNT][2] = {
    [LG_P_RATING_MU] = {4.4, 5.0},      [LG_P_SHIP_H] = {6, 22},
    [LG_P_DELIVER_H] = {24, 48},        [LG_P_CANCEL] = {0.002, 0.01},
    [LG_P_REFUND] = {0.03, 0.07},       [LG_P_REJECT] = {0.03, 0.1},
    [LG_P_BAD_TRACKING] = {0.002, 0.01}, [LG_P_LOST] = {0.001, 0.005},
    [LG_P_FAKE_REVIEW] = {0.0, 0.01},
};
static const double lg_bad_range[LG_P__CNT][2] = {
    [LG_P_RATING_MU] = {2.6, 3.8},     [LG_P_SHIP_H] = {28, 60},
    [LG_P_DELIVER_H] = {40, 80},       [LG_P_CANCEL] = {0.03, 0.10},
    [LG_P_REFUND] = {0.12, 0.30},      [LG_P_REJECT] = {0.2, 0.5},
    [LG_P_BAD_TRACKING] = {0.03, 0.10}, [LG_P_LOST] = {0.01, 0.03},
    [LG_P_FAKE_REVIEW] = {0.03, 0.12},
};
/* LONG_TAIL's bad merchants besides their vice: somewhat worse than good
 * ones at everything (ratings, shipping, refunds, tracking), each by a
 * factor of about 2, so the vice is what stands out. */
static const double lg_poor_range[LG_P__CNT][2] = {
    [LG_P_RATING_MU] = {3.8, 4.6},     [LG_P_SHIP_H] = {12, 30},
    [LG_P_DELIVER_H] = {30, 60},       [LG_P_CANCEL] = {0.01, 0.03},
    [LG_P_REFUND] = {0.06, 0.12},      [LG_P_REJECT] = {0.1, 0.3},
    [LG_P_BAD_TRACKING] = {0.01, 0.03}, [LG_P_LOST] = {0.003, 0.01},
    [LG_P_FAKE_REVIEW] = {0.01, 0.05},
};

/* Each kind: good (0), bad (1) or poor (2) ranges, up to three of them
 * replaced by the kind's vice, and the reason/arbitration profile. */
typedef struct lg_vice_s {
    int param;
    double range[2]; /* lo, hi */
} lg_vice_t;

static const struct {
    int bad; /* base ranges: 0 good, 1 bad, 2 poor */
    int nvice;
    lg_vice_t vice[3];
    uint8_t profile;
} lg_kinds[TD_LG__KIND_CNT] = {
    [TD_LG_GOOD] = {0, 0, {{0}}, LG_PROF_GOOD},
    [TD_LG_BAD] = {1, 0, {{0}}, LG_PROF_BAD},
    [TD_LG_FAKE] = {1, 0, {{0}}, LG_PROF_FAKE},
    [TD_LG_CANCELLER] = {2, 1, {{LG_P_CANCEL, {0.12, 0.35}}}, LG_PROF_GOOD},
    [TD_LG_LATE] = {2, 1, {{LG_P_SHIP_H, {40, 72}}}, LG_PROF_GOOD},
    [TD_LG_REFUNDS] = {2, 2,
                       {{LG_P_RATING_MU, {2.6, 3.6}}, {LG_P_REFUND, {0.15, 0.35}}},
                       LG_PROF_BAD},
    [TD_LG_COUNTERFEIT] = {2, 3,
                           {{LG_P_RATING_MU, {3.4, 4.4}},
                            {LG_P_REFUND, {0.10, 0.22}},
                            {LG_P_REJECT, {0.2, 0.5}}},
                           LG_PROF_FAKE},
};

/* Base channel mix: LIVE, SHORT_VIDEO, SHELF. */
static const double lg_channel_w[TD_CHANNEL__CNT] = {45, 30, 25};
/* clang-format on */

/* Reasons that are about the parcel rather than the goods. */
static int lg_reason_is_logistics(int reason) {
    return reason == TD_REASON_NOT_RECEIVED || reason == TD_REASON_DAMAGED ||
           reason == TD_REASON_LATE_DELIVERY;
}


/* ---- Heap of open orders ---- */

static void lg_heap_push(td_loadgen_t *g, int64_t key, uint32_t slot) {
    int i = g->heap_cnt++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (g->heap[parent].key <= key) break;
        g->heap[i] = g->heap[parent];
        i = parent;
    }
    g->heap[i].key = key;
    g->heap[i].slot = slot;
}

static uint32_t lg_heap_pop(td_loadgen_t *g) {
    uint32_t top = g->heap[0].slot;
    lg_heap_ent_t last = g->heap[--g->heap_cnt];
    int n = g->heap_cnt, i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && g->heap[c + 1].key < g->heap[c].key) {
            c++;
        }
        if (last.key <= g->heap[c].key) break;
        g->heap[i] = g->heap[c];
        i = c;
    }
    if (n > 0) {
        g->heap[i] = last;
    }
    return top;
}

/* Earliest pending track of an order, or -1 if it has none left. */
static int lg_next_track(const lg_order_t *o) {
    int best = -1;
    for (int t = 0; t < LG_T__CNT; t++) {
        if (o->due[t] != LG_NEVER && (best < 0 || o->due[t] < o->due[best])) {
            best = t;
        }
    }
    return best;
}

/* Puts an order back in the heap, or frees its slot when it is done. */
static void lg_reschedule(td_loadgen_t *g, uint32_t slot) {
    int t = lg_next_track(&g->orders[slot]);
    if (t < 0) {
        g->free_slots[g->free_cnt++] = slot;
        return;
    }
    lg_heap_push(g, g->orders[slot].due[t], slot);
}


/* ---- Lifecycle steps ----
 * Each step applies one event of one track at time t: it updates the order,
 * fills the event's non-string fields and schedules the track's next step.
 */

static void lg_fill_order(const lg_order_t *o, int status, td_event_t *ev) {
    td_order_t *e = &ev->u.order;
    ev->kind = TD_EV_ORDER;
    e->status = status;
    e->amount_cents = o->amount;
    e->channel = o->channel;
    e->cancelled_by =
        status == TD_ORDER_CANCELLED ? o->cancelled_by : TD_NULL_ENUM;
    e->promised_ship_by = o->promised_ship_by;
    e->promised_delivery_by = o->promised_delivery;
    e->tracking_valid = o->tracking_valid;
    e->paid_at = o->paid_at;
    e->shipped_at = o->shipped_at;
    e->buyer_order_seq = o->seq;
}

/* Schedules a cancellation of the order track. */
static void lg_cancel_at(lg_order_t *o, int by, int64_t when) {
    o->ostate = TD_ORDER_CANCELLED;
    o->cancelled_by = (int8_t)by;
    o->due[LG_T_ORDER] = when;
}

/* Opens the refund track with a request at the given time. */
static void
lg_refund_open(td_loadgen_t *g, lg_order_t *o, int reason, int64_t when) {
    lg_rng_t *r = &g->rng;
    o->reason = (int8_t)reason;
    if (reason == TD_REASON_NOT_RECEIVED || reason == TD_REASON_LATE_DELIVERY) {
        o->kind = TD_KIND_REFUND_ONLY;
    } else {
        o->kind = lg_chance(r, 0.35) ? TD_KIND_REFUND_ONLY
                                     : TD_KIND_RETURN_AND_REFUND;
    }
    o->refund_amount = o->amount;
    if (o->kind == TD_KIND_REFUND_ONLY && lg_chance(r, 0.3)) {
        o->refund_amount = (int64_t)((double)o->amount * lg_range(r, .2, .9));
    }
    o->rfstate = TD_REFUND_REQUESTED;
    o->due[LG_T_REFUND] = when;
}

static void
lg_order_step(td_loadgen_t *g, lg_order_t *o, int64_t t, td_event_t *ev) {
    const lg_merchant_t *m = &g->merchants[o->merchant];
    lg_rng_t *r = &g->rng;
    int status = o->ostate;

    switch (status) {
    case TD_ORDER_PAID:
        o->paid_at = t;
        o->promised_ship_by = t + LG_SHIP_PROMISE;
        break;
    case TD_ORDER_SHIPPED:
        o->shipped_at = t;
        o->promised_delivery = t + LG_DELIVERY_PROMISE;
        o->tracking_valid = !lg_chance(r, m->p_bad_tracking);
        break;
    default:
        break;
    }
    lg_fill_order(o, status, ev);

    /* Decide what the order does next. */
    o->ostate = -1;
    o->due[LG_T_ORDER] = LG_NEVER;
    switch (status) {
    case TD_ORDER_CREATED:
        if (lg_chance(r, 0.06)) {
            /* Unpaid orders time out; risk control kills a few. */
            int by = lg_chance(r, 0.9) ? TD_CANCEL_BUYER : TD_CANCEL_PLATFORM;
            lg_cancel_at(o, by, t + (int64_t)lg_range(r, 15, 45) * LG_MIN);
        } else {
            o->ostate = TD_ORDER_PAID;
            o->due[LG_T_ORDER] =
                t + 5 * LG_SEC + (int64_t)fmin(lg_exp(r, 2 * LG_MIN), LG_HOUR);
        }
        break;
    case TD_ORDER_PAID: {
        double u = lg_unif(r);
        if (u < m->p_cancel) {
            lg_cancel_at(o, TD_CANCEL_MERCHANT,
                         t + (int64_t)(lg_range(r, 1, 40) * LG_HOUR));
        } else if (u < m->p_cancel + 0.02) {
            lg_cancel_at(o, TD_CANCEL_BUYER,
                         t + (int64_t)(lg_range(r, 0.2, 12) * LG_HOUR));
        } else if (u < m->p_cancel + 0.023) {
            lg_cancel_at(o, TD_CANCEL_PLATFORM,
                         t + (int64_t)(lg_range(r, 0.2, 6) * LG_HOUR));
        } else {
            o->ostate = TD_ORDER_SHIPPED;
            o->due[LG_T_ORDER] =
                t + 10 * LG_MIN + lg_lognormal_h(r, m->ship_median_h, 0.6);
        }
        break;
    }
    case TD_ORDER_SHIPPED:
        if (lg_chance(r, m->p_lost)) {
            /* The parcel never arrives: the buyer asks for the money. */
            lg_refund_open(g, o, TD_REASON_NOT_RECEIVED,
                           o->promised_delivery +
                               (int64_t)(lg_range(r, 1, 48) * LG_HOUR));
        } else {
            o->ostate = TD_ORDER_DELIVERED;
            o->due[LG_T_ORDER] =
                t + LG_HOUR + lg_lognormal_h(r, m->deliver_median_h, 0.45);
        }
        break;
    case TD_ORDER_DELIVERED: {
        o->late_delivery = t > o->promised_delivery;
        if (lg_chance(r, 0.55)) {
            o->rvstate = 1;
            o->due[LG_T_REVIEW] =
                t + 10 * LG_MIN + (int64_t)fmin(lg_exp(r, LG_DAY), 6 * LG_DAY);
        }
        double p_refund = m->p_refund + (o->late_delivery ? 0.08 : 0) +
                          (o->tracking_valid ? 0 : 0.05);
        if (lg_chance(r, p_refund)) {
            int reason = lg_pick(r, lg_reason_w[m->profile], TD_REASON__CNT);
            if (o->late_delivery && lg_chance(r, 0.4)) {
                reason = TD_REASON_LATE_DELIVERY;
            }
            lg_refund_open(
                g, o, reason,
                t + 30 * LG_MIN +
                    (int64_t)fmin(lg_exp(r, 1.5 * LG_DAY), 6 * LG_DAY));
        }
        o->ostate = TD_ORDER_COMPLETED;
        o->due[LG_T_ORDER] =
            t + LG_HOUR + (int64_t)fmin(lg_exp(r, LG_DAY), 7 * LG_DAY);
        break;
    }
    default:
        /* COMPLETED and CANCELLED end the order track. */
        break;
    }
}

/* A star rating around mu, clipped to 1..5. */
static int lg_stars(lg_rng_t *r, double mu) {
    long v = lround(mu + lg_normal(r));
    return v < 1 ? 1 : v > 5 ? 5 : (int)v;
}

/* A dimension rating near the overall one, or null. */
static int lg_dim_rating(lg_rng_t *r, int rating, int shift) {
    if (lg_chance(r, 0.25)) return TD_NULL_INT;
    int v = rating + shift;
    double u = lg_unif(r);
    if (u < 0.15) {
        v--;
    } else if (u < 0.30) {
        v++;
    }
    return v < 1 ? 1 : v > 5 ? 5 : v;
}

static void
lg_review_step(td_loadgen_t *g, lg_order_t *o, int64_t t, td_event_t *ev) {
    const lg_merchant_t *m = &g->merchants[o->merchant];
    lg_rng_t *r = &g->rng;
    td_review_t *e = &ev->u.review;
    int followup = o->rvstate == 2;

    ev->kind = TD_EV_REVIEW;
    memset(e, 0, sizeof(*e));
    e->is_followup = followup;
    if (!followup && lg_chance(r, m->p_fake_review)) {
        /* A bought review: five stars everywhere, with photos. */
        e->rating = 5;
        e->quality_rating = e->service_rating = 5;
        e->logistics_rating = e->value_rating = 5;
        e->has_media = lg_chance(r, 0.6);
        e->flagged = lg_chance(r, 0.7);
    } else {
        double mu = m->rating_mu;
        if (o->late_delivery) {
            mu -= 0.8;
        }
        if (o->tracking_valid == 0) {
            mu -= 0.5;
        }
        if (o->rfstate >= 0 || o->requested_at != TD_NULL_TS) {
            mu -= 1.0;
        }
        if (followup) {
            mu = o->first_rating - (m->profile ? 1.2 : 0.2);
        }
        e->rating = lg_stars(r, mu);
        e->quality_rating = lg_dim_rating(r, e->rating, 0);
        e->service_rating = lg_dim_rating(r, e->rating, 0);
        e->logistics_rating =
            lg_dim_rating(r, e->rating, o->late_delivery ? -1 : 0);
        e->value_rating = lg_dim_rating(r, e->rating, 0);
        e->has_media = lg_chance(r, e->rating <= 2 ? 0.4 : 0.2);
        e->flagged = lg_chance(r, 0.01);
    }

    o->rvstate = 0;
    o->due[LG_T_REVIEW] = LG_NEVER;
    if (!followup) {
        o->first_rating = (int8_t)e->rating;
        if (lg_chance(r, m->profile ? 0.15 : 0.06)) {
            o->rvstate = 2;
            o->due[LG_T_REVIEW] = t + (int64_t)(lg_range(r, 1, 4) * LG_DAY);
        }
    }
}

static void
lg_refund_step(td_loadgen_t *g, lg_order_t *o, int64_t t, td_event_t *ev) {
    const lg_merchant_t *m = &g->merchants[o->merchant];
    lg_rng_t *r = &g->rng;
    td_refund_t *e = &ev->u.refund;
    int status = o->rfstate;

    if (status == TD_REFUND_REQUESTED) {
        o->requested_at = t;
    }
    if (status == TD_REFUND_ARBITRATED) {
        double w[TD_RESP__CNT];
        memcpy(w, lg_resp_w[m->profile], sizeof(w));
        if (lg_reason_is_logistics(o->reason)) {
            w[TD_RESP_LOGISTICS] *= 3;
        }
        if (o->reason == TD_REASON_NO_REASON_7D) {
            w[TD_RESP_BUYER] *= 2;
        }
        o->responsible = (int8_t)lg_pick(r, w, TD_RESP__CNT);
    }

    ev->kind = TD_EV_REFUND;
    e->status = status;
    e->kind = o->kind;
    e->reason = o->reason;
    e->amount_cents = o->refund_amount;
    e->responsible = o->responsible;
    e->requested_at = o->requested_at;
    e->was_rejected = o->was_rejected;

    o->rfstate = -1;
    o->due[LG_T_REFUND] = LG_NEVER;
    switch (status) {
    case TD_REFUND_REQUESTED: {
        double p_reject = m->p_reject;
        if (o->reason == TD_REASON_NO_REASON_7D) {
            p_reject *= 0.5;
        }
        /* Slow merchants take longer to decide. */
        double mean_h = m->profile == LG_PROF_GOOD ? 8 : 26;
        o->rfstate =
            lg_chance(r, p_reject) ? TD_REFUND_REJECTED : TD_REFUND_APPROVED;
        o->due[LG_T_REFUND] =
            t + 5 * LG_MIN +
            (int64_t)fmin(lg_exp(r, mean_h * LG_HOUR), 4 * LG_DAY);
        break;
    }
    case TD_REFUND_APPROVED:
        o->rfstate = TD_REFUND_COMPLETED;
        o->due[LG_T_REFUND] =
            t + (o->kind == TD_KIND_REFUND_ONLY
                     ? (int64_t)(lg_range(r, 0.1, 12) * LG_HOUR)
                     : (int64_t)(lg_range(r, 1, 4) * LG_DAY));
        break;
    case TD_REFUND_REJECTED:
        o->was_rejected = 1;
        if (lg_chance(r, 0.55)) {
            o->rfstate = TD_REFUND_ESCALATED;
            o->due[LG_T_REFUND] = t + (int64_t)(lg_range(r, 2, 48) * LG_HOUR);
        }
        break;
    case TD_REFUND_ESCALATED:
        o->rfstate = TD_REFUND_ARBITRATED;
        o->due[LG_T_REFUND] = t + (int64_t)(lg_range(r, 12, 72) * LG_HOUR);
        break;
    case TD_REFUND_ARBITRATED:
        if (o->responsible != TD_RESP_BUYER) {
            o->rfstate = TD_REFUND_COMPLETED;
            o->due[LG_T_REFUND] = t + (int64_t)(lg_range(r, 1, 24) * LG_HOUR);
        }
        break;
    default:
        break;
    }
}

/* Opens a new order at time t in the given slot and applies its CREATED
 * step. */
static void
lg_order_open(td_loadgen_t *g, uint32_t slot, int64_t t, td_event_t *ev) {
    lg_rng_t *r = &g->rng;
    lg_order_t *o = &g->orders[slot];

    /* Popularity rank by binary search over the Zipf CDF. */
    double u = lg_unif(r) * g->zipf_cdf[g->merchant_cnt - 1];
    int lo = 0, hi = g->merchant_cnt - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (g->zipf_cdf[mid] > u) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    uint32_t mi = g->rank2m[lo];
    const lg_merchant_t *m = &g->merchants[mi];

    /* Low pool indexes are drawn more often: they are the regulars. */
    double ub = lg_unif(r);
    uint32_t bi = (uint32_t)(ub * ub * m->pool_size);
    if (bi >= m->pool_size) {
        bi = m->pool_size - 1;
    }
    uint16_t *cnt = &g->buyer_cnt[m->pool_off + bi];
    if (*cnt < UINT16_MAX) {
        (*cnt)++;
    }

    memset(o, 0, sizeof(*o));
    o->no = ++g->order_cnt;
    o->merchant = mi;
    o->buyer = (uint32_t)((mi * 2654435761ULL + bi * 40503ULL + g->tag) %
                          LG_BUYER_SPACE);
    o->seq = *cnt;
    double uc = lg_unif(r);
    o->channel = uc < m->chan_cdf[0]   ? TD_CHANNEL_LIVE
                 : uc < m->chan_cdf[1] ? TD_CHANNEL_SHORT_VIDEO
                                       : TD_CHANNEL_SHELF;
    double amount = m->price_cents * exp(0.5 * lg_normal(r));
    o->amount = amount < 100 ? 100 : (int64_t)amount;
    for (int i = 0; i < LG_T__CNT; i++) {
        o->due[i] = LG_NEVER;
    }
    o->paid_at = o->shipped_at = TD_NULL_TS;
    o->promised_ship_by = o->promised_delivery = TD_NULL_TS;
    o->requested_at = TD_NULL_TS;
    o->rfstate = -1;
    o->held = -1;
    o->cancelled_by = TD_NULL_ENUM;
    o->tracking_valid = TD_NULL_BOOL;
    o->responsible = TD_NULL_ENUM;
    o->ostate = TD_ORDER_CREATED;
    lg_order_step(g, o, t, ev);
}

/* Applies the step of track tr of an order at its due time. */
static int64_t lg_step(td_loadgen_t *g, lg_order_t *o, int tr, td_event_t *ev) {
    int64_t t = o->due[tr];
    switch (tr) {
    case LG_T_ORDER:
        lg_order_step(g, o, t, ev);
        break;
    case LG_T_REVIEW:
        lg_review_step(g, o, t, ev);
        break;
    default:
        lg_refund_step(g, o, t, ev);
        break;
    }
    return t;
}

/* Writes v as exactly `digits` lowercase hex digits (the low ones). */
static char *lg_put_hex(char *p, uint64_t v, int digits) {
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = hex[v & 0xf];
        v >>= 4;
    }
    return p + digits;
}

/* Writes v as exactly `digits` decimal digits (the low ones). */
static char *lg_put_dec(char *p, uint32_t v, int digits) {
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + digits;
}

/* Points the event's strings at freshly formatted ids: event "<16 hex seed
 * tag>-<12 hex counter>", merchant "m%06d", order "o<8 hex tag><12 hex
 * number>", buyer "b%07d", refund "r" + the order's digits. snprintf would
 * be 40% of the generator's time, hence the fixed-width writers. */
static void lg_set_strings(td_loadgen_t *g,
                           const lg_order_t *o,
                           int64_t t,
                           td_event_t *ev) {
    char *p;
    ev->event_time = t;

    p = lg_put_hex(g->event_id, g->tag, 16);
    *p++ = '-';
    p = lg_put_hex(p, ++g->event_cnt, 12);
    ev->event_id.ptr = g->event_id;
    ev->event_id.len = (size_t)(p - g->event_id);

    g->merchant_id[0] = 'm';
    p = lg_put_dec(g->merchant_id + 1, o->merchant, 6);
    ev->merchant_id.ptr = g->merchant_id;
    ev->merchant_id.len = (size_t)(p - g->merchant_id);

    g->order_id[0] = 'o';
    p = lg_put_hex(g->order_id + 1, g->tag, 8);
    p = lg_put_hex(p, o->no, 12);
    ev->order_id.ptr = g->order_id;
    ev->order_id.len = (size_t)(p - g->order_id);

    g->buyer_id[0] = 'b';
    p = lg_put_dec(g->buyer_id + 1, o->buyer, 7);
    ev->buyer_id.ptr = g->buyer_id;
    ev->buyer_id.len = (size_t)(p - g->buyer_id);

    if (ev->kind == TD_EV_REFUND) {
        memcpy(g->refund_id, g->order_id, ev->order_id.len);
        g->refund_id[0] = 'r';
        ev->u.refund.refund_id.ptr = g->refund_id;
        ev->u.refund.refund_id.len = ev->order_id.len;
    }
}


/* ---- Setup ---- */

/* The range parameter k of a kind is drawn from: {lo, hi}. */
static const double *lg_kind_range(int kind, int k) {
    for (int i = 0; i < lg_kinds[kind].nvice; i++) {
        if (lg_kinds[kind].vice[i].param == k)
            return lg_kinds[kind].vice[i].range;
    }
    return lg_kinds[kind].bad == 1   ? lg_bad_range[k]
           : lg_kinds[kind].bad == 2 ? lg_poor_range[k]
                                     : lg_good_range[k];
}

static void lg_merchants_init(td_loadgen_t *g) {
    lg_rng_t *r = &g->rng;
    int n = g->merchant_cnt;
    const td_loadgen_conf_t *c = &g->conf;

    /* Popularity: rank k has weight k^-s; ranks are shuffled over ids. */
    double acc = 0;
    for (int k = 0; k < n; k++) {
        acc += pow((double)(k + 1), -c->zipf_s);
        g->zipf_cdf[k] = acc;
    }
    for (int k = 0; k < n; k++) {
        g->rank2m[k] = (uint32_t)k;
    }
    for (int k = n - 1; k > 0; k--) {
        uint32_t j = lg_below(r, (uint32_t)k + 1);
        uint32_t tmp = g->rank2m[k];
        g->rank2m[k] = g->rank2m[j];
        g->rank2m[j] = tmp;
    }

    /* Buyer pools sized by popularity, within a fixed budget. */
    double budget = fmin((double)LG_POOL_PER_M * n, LG_POOL_BUDGET);
    uint32_t off = 0;
    for (int k = 0; k < n; k++) {
        double w = (g->zipf_cdf[k] - (k ? g->zipf_cdf[k - 1] : 0)) / acc;
        lg_merchant_t *m = &g->merchants[g->rank2m[k]];
        m->pool_size = LG_POOL_MIN + (uint32_t)(w * budget);
        if (m->pool_size > UINT16_MAX) {
            m->pool_size = UINT16_MAX;
        }
    }
    for (int i = 0; i < n; i++) {
        g->merchants[i].pool_off = off;
        off += g->merchants[i].pool_size;
    }

    /* Profiles: exactly round(bad_share * n) bad merchants; in MARKET a
     * third of them counterfeiters, in LONG_TAIL a quarter of each vice. */
    int bad = (int)lround(c->bad_share * n);
    for (int i = 0; i < n; i++) {
        lg_merchant_t *m = &g->merchants[i];
        int is_bad = lg_below(r, (uint32_t)(n - i)) < (uint32_t)bad;
        int kind = TD_LG_GOOD;
        if (is_bad) {
            bad--;
            if (c->shape == TD_LOADGEN_LONG_TAIL)
                kind = TD_LG_CANCELLER + (int)lg_below(r, 4);
            else
                kind = lg_chance(r, 1.0 / 3) ? TD_LG_FAKE : TD_LG_BAD;
        }
        double v[LG_P__CNT];
        for (int k = 0; k < LG_P__CNT; k++) {
            const double *rg = lg_kind_range(kind, k);
            v[k] = lg_range(r, rg[0], rg[1]);
        }
        m->kind = (uint8_t)kind;
        m->profile = lg_kinds[kind].profile;
        m->rating_mu = (float)v[LG_P_RATING_MU];
        m->ship_median_h = (float)v[LG_P_SHIP_H];
        m->deliver_median_h = (float)v[LG_P_DELIVER_H];
        m->p_cancel = (float)v[LG_P_CANCEL];
        m->p_refund = (float)v[LG_P_REFUND];
        m->p_reject = (float)v[LG_P_REJECT];
        m->p_bad_tracking = (float)v[LG_P_BAD_TRACKING];
        m->p_lost = (float)v[LG_P_LOST];
        m->p_fake_review = (float)v[LG_P_FAKE_REVIEW];
        double w[TD_CHANNEL__CNT], sum = 0;
        for (int ch = 0; ch < TD_CHANNEL__CNT; ch++) {
            w[ch] = lg_channel_w[ch] * lg_range(r, 0.3, 1.7);
            sum += w[ch];
        }
        m->chan_cdf[0] = (float)(w[0] / sum);
        m->chan_cdf[1] = (float)((w[0] + w[1]) / sum);
        m->price_cents = 5000 * exp(0.9 * lg_normal(r));
    }
}

/* Creates orders in the days before start (newest first, so that the cap
 * keeps the ones most likely still open) and fast-forwards each to start
 * without emitting anything. */
static void lg_warm_up(td_loadgen_t *g) {
    int64_t start = g->conf.start_ms;
    /* Orders arrive as fast as the event rate asks, or as fast as the cap
     * lets them finish, whichever is slower. */
    double gap =
        fmax(g->step_mean * LG_EVENTS_PER_ORDER, LG_ORDER_LIFE / g->max_open);
    double t = (double)start;
    long budget = 20L * g->max_open;
    td_event_t scratch;

    while (g->free_cnt > 0 && budget-- > 0) {
        t -= lg_exp(&g->rng, gap);
        if (t < (double)(start - LG_WARMUP)) break;
        uint32_t slot = g->free_slots[--g->free_cnt];
        lg_order_t *o = &g->orders[slot];
        lg_order_open(g, slot, (int64_t)t, &scratch);
        for (;;) {
            int tr = lg_next_track(o);
            if (tr < 0 || o->due[tr] >= start) break;
            lg_step(g, o, tr, &scratch);
        }
        lg_reschedule(g, slot);
    }
}

void td_loadgen_conf_defaults(td_loadgen_conf_t *c) {
    memset(c, 0, sizeof(*c));
    c->seed = 42;
    c->merchants = 10000;
    c->zipf_s = 1.1;
    c->bad_share = 0.08;
    c->start_ms = td_now_ms() - LG_DAY;
    c->events_per_sec_sim = 2;
    c->max_open = 100000;
}

td_loadgen_t *
td_loadgen_new(const td_loadgen_conf_t *c, char *errstr, size_t errstr_size) {
    td_loadgen_t *g = NULL;

    if (c->merchants < 1 || c->merchants > LG_MERCHANT_MAX) {
        snprintf(errstr, errstr_size, "merchants must be 1..%d, not %d",
                 LG_MERCHANT_MAX, c->merchants);
        return NULL;
    }
    if (!(c->zipf_s >= 0 && c->zipf_s <= 5)) {
        snprintf(errstr, errstr_size, "zipf_s must be 0..5, not %g", c->zipf_s);
        return NULL;
    }
    if (!(c->bad_share >= 0 && c->bad_share <= 1)) {
        snprintf(errstr, errstr_size, "bad_share must be 0..1, not %g",
                 c->bad_share);
        return NULL;
    }
    if (!(c->events_per_sec_sim > 0 && c->events_per_sec_sim <= 1e7)) {
        snprintf(errstr, errstr_size,
                 "events_per_sec_sim must be > 0 and <= 1e7, not %g",
                 c->events_per_sec_sim);
        return NULL;
    }
    if (c->max_open < 1 || c->max_open > 10000000) {
        snprintf(errstr, errstr_size, "max_open must be 1..10000000, not %d",
                 c->max_open);
        return NULL;
    }
    if (c->start_ms < LG_WARMUP || c->start_ms > INT64_MAX / 4) {
        snprintf(errstr, errstr_size, "start_ms out of range: %" PRId64,
                 c->start_ms);
        return NULL;
    }

    g = calloc(1, sizeof(*g));
    if (!g) goto err;
    g->conf = *c;
    g->merchant_cnt = c->merchants;
    g->max_open = c->max_open;
    lg_rng_seed(&g->rng, c->seed);
    uint64_t x = c->seed ^ 0x5bd1e995ULL;
    g->tag = lg_splitmix64(&x);
    g->step_mean = 1000.0 / c->events_per_sec_sim;

    g->merchants = calloc((size_t)c->merchants, sizeof(*g->merchants));
    g->zipf_cdf = calloc((size_t)c->merchants, sizeof(*g->zipf_cdf));
    g->rank2m = calloc((size_t)c->merchants, sizeof(*g->rank2m));
    g->orders = calloc((size_t)c->max_open, sizeof(*g->orders));
    g->free_slots = calloc((size_t)c->max_open, sizeof(*g->free_slots));
    g->heap = calloc((size_t)c->max_open, sizeof(*g->heap));
    if (!g->merchants || !g->zipf_cdf || !g->rank2m || !g->orders ||
        !g->free_slots || !g->heap)
        goto err;

    lg_merchants_init(g);
    const lg_merchant_t *last = &g->merchants[c->merchants - 1];
    g->buyer_cnt =
        calloc((size_t)last->pool_off + last->pool_size, sizeof(*g->buyer_cnt));
    if (!g->buyer_cnt) goto err;

    /* Slots are handed out lowest first. */
    for (int i = 0; i < c->max_open; i++) {
        g->free_slots[i] = (uint32_t)(c->max_open - 1 - i);
    }
    g->free_cnt = c->max_open;

    lg_warm_up(g);
    g->clock = (double)c->start_ms;
    return g;

err:
    snprintf(errstr, errstr_size, "out of memory for %d merchants, %d orders",
             c->merchants, c->max_open);
    td_loadgen_destroy(g);
    return NULL;
}

void td_loadgen_destroy(td_loadgen_t *g) {
    if (!g) return;
    free(g->merchants);
    free(g->zipf_cdf);
    free(g->rank2m);
    free(g->buyer_cnt);
    free(g->orders);
    free(g->free_slots);
    free(g->heap);
    free(g);
}


/* ---- Generation ---- */

/* Emits the step of the order at the top of the heap. Returns 0 without an
 * event when it held the step back to emit it late instead. */
static int lg_emit_due(td_loadgen_t *g, td_event_t *ev) {
    uint32_t slot = lg_heap_pop(g);
    lg_order_t *o = &g->orders[slot];
    int tr;

    if (o->held >= 0) {
        tr = o->held;
        o->held = -1;
    } else {
        tr = lg_next_track(o);
        if (lg_chance(&g->rng, LG_LATE_SHARE)) {
            o->held = (int8_t)tr;
            int64_t delay = LG_MIN + (int64_t)lg_range(&g->rng, 0, LG_LATE_MAX);
            lg_heap_push(g, o->due[tr] + delay, slot);
            return 0;
        }
    }
    int64_t t = lg_step(g, o, tr, ev);
    lg_set_strings(g, o, t, ev);
    lg_reschedule(g, slot);
    return 1;
}

void td_loadgen_next(td_loadgen_t *g, td_event_t *ev) {
    g->clock += lg_exp(&g->rng, g->step_mean);
    for (;;) {
        if (g->heap_cnt > 0 && (double)g->heap[0].key <= g->clock) {
            if (lg_emit_due(g, ev)) return;
            continue;
        }
        if (g->free_cnt > 0) {
            uint32_t slot = g->free_slots[--g->free_cnt];
            /* New orders arrive with a little jitter around the clock. */
            int64_t t = (int64_t)g->clock +
                        (int64_t)lg_range(&g->rng, -2 * LG_SEC, 2 * LG_SEC);
            lg_order_open(g, slot, t, ev);
            lg_set_strings(g, &g->orders[slot], t, ev);
            lg_reschedule(g, slot);
            return;
        }
        /* Every slot is taken: let simulated time run to the next step. */
        g->clock = (double)g->heap[0].key;
    }
}

int td_loadgen_open_orders(const td_loadgen_t *g) {
    return g->max_open - g->free_cnt;
}

int64_t td_loadgen_clock_ms(const td_loadgen_t *g) {
    return (int64_t)g->clock;
}

int td_loadgen_merchant_is_bad(const td_loadgen_t *g, int i) {
    if (i < 0 || i >= g->merchant_cnt) return -1;
    return g->merchants[i].kind != TD_LG_GOOD;
}

int td_loadgen_merchant_kind(const td_loadgen_t *g, int i) {
    if (i < 0 || i >= g->merchant_cnt) return -1;
    return g->merchants[i].kind;
}

/* Standard normal CDF. */
static double lg_phi(double x) {
    return 0.5 * erfc(-x / sqrt(2.0));
}

/*
 * Mean over parameter k's range of f(value), by the midpoint rule. The
 * rates are what the steps above do with a merchant's parameters, to
 * first order: a shipment is late when 10 minutes plus a log-normal
 * (sigma 0.6) passes the promise; a refund follows a lost parcel or a
 * delivery (plus 5 points without valid tracking); stars are
 * round(mu + N(0, 1)), one lower after a refund.
 */
#define LG_GRID 64
static double
lg_kind_mean(int kind, int k, double (*f)(double, double), double arg) {
    const double *rg = lg_kind_range(kind, k);
    double sum = 0;
    for (int i = 0; i < LG_GRID; i++)
        sum += f(rg[0] + (rg[1] - rg[0]) * (i + 0.5) / LG_GRID, arg);
    return sum / LG_GRID;
}

static double lg_f_id(double x, double arg) {
    return x;
}

static double lg_f_late(double median_h, double arg) {
    double promise_h = (double)(LG_SHIP_PROMISE - 10 * LG_MIN) / LG_HOUR;
    return 1 - lg_phi(log(promise_h / median_h) / 0.6);
}

static double lg_f_negative(double mu, double p_refund) {
    return (1 - p_refund) * lg_phi(2.5 - mu) + p_refund * lg_phi(3.5 - mu);
}

void td_loadgen_kind_rates(td_loadgen_kind_t kind, td_loadgen_rates_t *out) {
    const double *rw = lg_reason_w[lg_kinds[kind].profile];
    const double *aw = lg_resp_w[lg_kinds[kind].profile];
    double rsum = 0, asum = 0;
    double lost = lg_kind_mean(kind, LG_P_LOST, lg_f_id, 0);
    double bt = lg_kind_mean(kind, LG_P_BAD_TRACKING, lg_f_id, 0);

    for (int i = 0; i < TD_REASON__CNT; i++)
        rsum += rw[i];
    for (int i = 0; i < TD_RESP__CNT; i++)
        asum += aw[i];
    out->cancel = lg_kind_mean(kind, LG_P_CANCEL, lg_f_id, 0);
    out->late_ship = lg_kind_mean(kind, LG_P_SHIP_H, lg_f_late, 0);
    out->refund =
        lost +
        (1 - lost) * (lg_kind_mean(kind, LG_P_REFUND, lg_f_id, 0) + 0.05 * bt);
    out->fault_share =
        (rw[TD_REASON_QUALITY] + rw[TD_REASON_NOT_AS_DESCRIBED]) / rsum;
    out->fake_share = rw[TD_REASON_COUNTERFEIT] / rsum;
    out->negative =
        lg_kind_mean(kind, LG_P_RATING_MU, lg_f_negative, out->refund);
    out->reject = lg_kind_mean(kind, LG_P_REJECT, lg_f_id, 0);
    out->lost_arb = aw[TD_RESP_MERCHANT] / asum;
}
