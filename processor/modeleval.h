/*
 * modeleval.h - offline evaluation of the trust score model: a load
 * generator stream folded by the real catalog (signals.c) and scored by the
 * real model (model.c), without Kafka or Redis, against the generator's
 * hidden good and bad merchants. td-model-eval (make model-eval) prints it;
 * tests/test_model.c asserts the targets it meets.
 */
#ifndef TD_MODELEVAL_H
#define TD_MODELEVAL_H

#include <stdint.h>
#include <stdio.h>

#include "loadgen.h"
#include "model.h"

/* Volume buckets: paid orders in the last 90 days of the stream. */
enum {
    TD_EVAL_B_LT5 = 0, /* fewer than 5 */
    TD_EVAL_B_5_20,    /* 5 to 19 */
    TD_EVAL_B_20_100,  /* 20 to 99 */
    TD_EVAL_B_100,     /* 100 or more */
    TD_EVAL_B_ALL,
    TD_EVAL_B__CNT
};

typedef struct td_eval_conf_s {
    td_loadgen_conf_t gen; /* start_ms, seed, merchants, shape, ... */
    int64_t duration_ms;   /* run until the clock passes start + this, */
    int64_t events;        /* or until this many events (0: no limit) */
    int age_to_end;        /* 1: score every merchant as of the stream's
                            * end (td_sigstate_age); 0: as of its last
                            * event, as trustd publishes */
} td_eval_conf_t;

/* One group's numbers (all merchants with events, or one bucket). */
typedef struct td_eval_group_s {
    int good, bad;         /* merchants */
    int tiers[2][5];       /* [bad][tier - 1] */
    double auc;            /* P(good scores above bad), ties half */
    double ceiling_auc;    /* the same for the likelihood ratio */
    double ceiling_recall; /* bad flagged at the LR threshold that
                            * flags as many good as tiers 4-5 do (or
                            * 3 % when none do) */
} td_eval_group_t;

typedef struct td_eval_s {
    int64_t events;
    int64_t start_ms, end_ms;
    int merchants_seen; /* merchants with at least one event */
    int under10_30d;    /* of those, with < 10 paid orders in 30 days */
    td_eval_group_t b[TD_EVAL_B__CNT];
    /* Bad and good merchants with >= 5 paid orders in 90 days in tiers
     * 4-5, as shares of their groups. */
    double bad_low_share, good_low_share;
    int kind_cnt[TD_LG__KIND_CNT], kind_low[TD_LG__KIND_CNT]; /* the same */
    double prior_score;
} td_eval_t;

/* Long-tail defaults: 1000 Zipf merchants (s = 0.75) over 100 days, 15 %
 * bad of the four LONG_TAIL kinds, about 15,000 orders. */
void td_eval_conf_long_tail(td_eval_conf_t *c);

/* The README's high-volume calibration: the load generator's defaults
 * (MARKET, 8 % bad), 2000 merchants, 4 M events. */
void td_eval_conf_market(td_eval_conf_t *c);

/*
 * Runs the evaluation. Returns TD_OK and fills *out, or TD_ERR with errstr
 * (bad generator configuration, out of memory). If `ebfp` is not NULL, the
 * empirical-Bayes prior (mean, strength) of every lower-is-better ratio of
 * the catalog, estimated from the final states, is written there.
 */
int td_eval_run(const td_eval_conf_t *c,
                const td_model_t *m,
                td_eval_t *out,
                FILE *ebfp,
                char *errstr,
                size_t errstr_size);

/* Writes the tables of an evaluation (markdown). */
void td_eval_print(const td_eval_t *e, FILE *fp);

#endif
