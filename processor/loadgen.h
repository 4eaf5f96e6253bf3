/*
 * loadgen.h - deterministic generator of realistic order, review and refund
 * events for tests, the demo and the benchmark.
 *
 * The generator simulates a marketplace: merchants are picked Zipf-like, each
 * has a hidden good or bad profile, and every order walks a whole lifecycle
 * (CREATED, PAID, SHIPPED, DELIVERED, COMPLETED or CANCELLED) with reviews and
 * refunds hanging off it. Lifecycles of many orders are interleaved on one
 * simulated clock. Everything is driven by one seeded PRNG, so the same
 * configuration always yields the same sequence. No Kafka, no I/O: the
 * td-loadgen program encodes and produces what this module returns.
 *
 * Memory is allocated once in td_loadgen_new() and never again: the number of
 * orders with events still to come is capped (max_open), and when the cap is
 * reached the simulated clock jumps ahead to the next due lifecycle step
 * instead of opening a new order.
 *
 * Lifecycles take realistic simulated time (shipping within the 48 h
 * promise, delivery in days, reviews and refunds days after that), so with
 * the default cap of 100000 open orders the clock cannot advance slower
 * than about 1.7 events per simulated second: one simulated day is about
 * 150000 events, and 1e6 events span about a week of event time.
 */
#ifndef TD_LOADGEN_H
#define TD_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

typedef struct td_loadgen_s td_loadgen_t;

/*
 * Market shapes. MARKET is the default: bad merchants are bad at
 * everything, a third of them also sell counterfeits. LONG_TAIL is the
 * model evaluation's market (td-model-eval): a bad merchant has one
 * strong vice, a quarter each of the kinds below, and is otherwise only
 * somewhat worse than a good one (about twice the refunds, cancels and
 * tracking faults, ratings lower by 0.4 stars).
 */
typedef enum {
    TD_LOADGEN_MARKET = 0,
    TD_LOADGEN_LONG_TAIL,
} td_loadgen_shape_t;

/* Hidden merchant kinds (td_loadgen_merchant_kind). */
typedef enum {
    TD_LG_GOOD = 0,
    TD_LG_BAD,         /* MARKET: slow, cancels, refunds, low ratings */
    TD_LG_FAKE,        /* MARKET: BAD and sells counterfeits */
    TD_LG_CANCELLER,   /* LONG_TAIL: cancels 12-35% of paid orders */
    TD_LG_LATE,        /* LONG_TAIL: ships 40-75% after the promise */
    TD_LG_REFUNDS,     /* LONG_TAIL: refunds 15-35%, ratings 2.6-3.6 */
    TD_LG_COUNTERFEIT, /* LONG_TAIL: a third of its refunds counterfeit */
    TD_LG__KIND_CNT
} td_loadgen_kind_t;

/*
 * A kind's expected per-event rates, averaged over the ranges the
 * generator draws its merchants from: what a classifier that knows how
 * the stream is made would use (the ceiling in td-model-eval).
 */
typedef struct td_loadgen_rates_s {
    double cancel;      /* merchant cancels per paid order */
    double late_ship;   /* late shipments per shipment */
    double refund;      /* refund requests per shipment */
    double fault_share; /* QUALITY or NOT_AS_DESCRIBED per refund */
    double fake_share;  /* COUNTERFEIT per refund */
    double negative;    /* reviews of 1-2 stars per review */
    double reject;      /* rejections per refund decision */
    double lost_arb;    /* MERCHANT held responsible per arbitration */
} td_loadgen_rates_t;

typedef struct td_loadgen_conf_s {
    uint64_t seed;    /* PRNG seed; equal seeds give equal sequences */
    int merchants;    /* number of merchants, 1..1000000 (default 10000) */
    double zipf_s;    /* Zipf exponent of merchant popularity (1.1) */
    double bad_share; /* share of merchants with a bad profile (0.08) */
    int64_t start_ms; /* simulated start time (default now - 1 day) */
    /* Simulated event-time rate (default 2/s): the clock advances by about
     * 1/rate per event, or faster when max_open is reached. */
    double events_per_sec_sim;
    int max_open;             /* cap on orders with pending events (100000) */
    td_loadgen_shape_t shape; /* TD_LOADGEN_MARKET */
} td_loadgen_conf_t;

/* Fills *c with the defaults above. start_ms is read from the wall clock,
 * so call it once and copy the struct when a run must be repeatable. */
void td_loadgen_conf_defaults(td_loadgen_conf_t *c);

/* Creates a generator, allocating all the memory it will ever use.
 * Returns NULL and fills errstr if the configuration is out of range.
 * The caller keeps c. */
td_loadgen_t *
td_loadgen_new(const td_loadgen_conf_t *c, char *errstr, size_t errstr_size);

/* Frees the generator. NULL is a no-op. */
void td_loadgen_destroy(td_loadgen_t *g);

/* Writes the next event into *ev. Strings in *ev point into g's buffers and
 * stay valid until the next call on g. Never fails, never allocates. */
void td_loadgen_next(td_loadgen_t *g, td_event_t *ev);

/* Number of orders that still have events to come (<= max_open). */
int td_loadgen_open_orders(const td_loadgen_t *g);

/* Current simulated clock in ms since the epoch. Event times stay within a
 * few hours below it (late events) and a few seconds above it (jitter). */
int64_t td_loadgen_clock_ms(const td_loadgen_t *g);

/* Hidden profile of merchant index i (0 <= i < merchants; "m%06d" is its
 * id): 1 if it was drawn as a bad merchant, else 0. For tests and for
 * checking that scores separate the two groups. Returns -1 if out of range. */
int td_loadgen_merchant_is_bad(const td_loadgen_t *g, int i);

/* Hidden kind of merchant index i (td_loadgen_kind_t), or -1 if out of
 * range. */
int td_loadgen_merchant_kind(const td_loadgen_t *g, int i);

/* Expected rates of merchants of a kind (see td_loadgen_rates_t). Pure:
 * computed from the generator's tables, no generator needed. */
void td_loadgen_kind_rates(td_loadgen_kind_t kind, td_loadgen_rates_t *out);

#endif
