/*
 * modeleval.c - offline evaluation of the trust score model.
 *
 * Every generated event is folded the way trustd folds it (a one-event
 * td_sigdelta_t merged into the merchant's td_sigstate_t), and at the end
 * every merchant with events is scored by td_model_score, as of its last
 * event or aged to the end of the stream. Scores are compared with the
 * generator's hidden profiles: AUC (Mann-Whitney, ties counted half) and
 * the tier table of good and bad merchants, overall and by volume bucket
 * (paid orders in the last 90 days, counted exactly per day).
 *
 * The ceiling is a likelihood-ratio classifier that knows how the stream
 * is made: for each merchant, the log-likelihood of its whole history
 * (merchant cancels per paid order, late shipments per shipment, refunds
 * per shipment and their reasons, negative reviews, rejections, lost
 * arbitrations; binomial terms) under the good kind's expected rates
 * (td_loadgen_kind_rates) against the mixture of the bad kinds. It reads
 * lifetime counts without decay, which the model cannot, so it bounds what
 * any score over these events could do.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "modeleval.h"
#include "signals.h"

#define DAY_MS            86400000LL
#define MAX_DAYS          400
#define LOW_SHARE_DEFAULT 0.03

/* What the ceiling counts per merchant, over its whole history. */
enum {
    C_PAID = 0,
    C_CANCEL,
    C_SHIPPED,
    C_LATE,
    C_REFUND,
    C_FAULT,
    C_FAKE,
    C_REVIEWS,
    C_NEGATIVE,
    C_DECIDED,
    C_REJECTED,
    C_ARBITRATED,
    C_LOST,
    C__CNT
};

typedef struct merchant_s {
    td_sigstate_t st;
    int events;
    int kind;
    double cnt[C__CNT];
    double score, llr;
    int tier, bucket;
} merchant_t;

void td_eval_conf_long_tail(td_eval_conf_t *c) {
    memset(c, 0, sizeof(*c));
    td_loadgen_conf_defaults(&c->gen);
    c->gen.start_ms = 1767225600000LL; /* 2026-01-01, fixed: repeatable */
    c->gen.seed = 21;
    c->gen.merchants = 1000;
    c->gen.zipf_s = 0.75;
    c->gen.bad_share = 0.15;
    c->gen.shape = TD_LOADGEN_LONG_TAIL;
    /* About 25,000 orders of about 5.7 events in 100 days: the smallest
     * merchants see a few orders, the largest about a thousand, the
     * median one about 4 in 30 days. */
    c->gen.events_per_sec_sim = 25000 * 5.7 / (100 * 86400.0);
    c->gen.max_open = 20000;
    c->duration_ms = 100 * DAY_MS;
    c->age_to_end = 1;
}

void td_eval_conf_market(td_eval_conf_t *c) {
    memset(c, 0, sizeof(*c));
    td_loadgen_conf_defaults(&c->gen);
    c->gen.start_ms = 1767225600000LL;
    c->gen.merchants = 2000;
    c->events = 4000000;
    c->age_to_end = 0;
}

static int merchant_index(const td_event_t *ev, int n) {
    int v = 0;

    if (ev->merchant_id.len != 7 || ev->merchant_id.ptr[0] != 'm') return -1;
    for (size_t i = 1; i < 7; i++)
        v = v * 10 + (ev->merchant_id.ptr[i] - '0');
    return v < n ? v : -1;
}

/* The ceiling's counts of one event. */
static void count(merchant_t *mc, const td_event_t *e) {
    double *c = mc->cnt;

    switch (e->kind) {
    case TD_EV_ORDER:
        if (e->u.order.status == TD_ORDER_PAID) c[C_PAID]++;
        if (e->u.order.status == TD_ORDER_CANCELLED &&
            e->u.order.cancelled_by == TD_CANCEL_MERCHANT)
            c[C_CANCEL]++;
        if (e->u.order.status == TD_ORDER_SHIPPED) {
            c[C_SHIPPED]++;
            if (e->u.order.promised_ship_by != TD_NULL_TS &&
                e->event_time > e->u.order.promised_ship_by)
                c[C_LATE]++;
        }
        break;
    case TD_EV_REVIEW:
        if (e->u.review.is_followup || e->u.review.flagged) break;
        c[C_REVIEWS]++;
        if (e->u.review.rating <= 2) c[C_NEGATIVE]++;
        break;
    case TD_EV_REFUND:
        switch (e->u.refund.status) {
        case TD_REFUND_REQUESTED:
            c[C_REFUND]++;
            if (e->u.refund.reason == TD_REASON_QUALITY ||
                e->u.refund.reason == TD_REASON_NOT_AS_DESCRIBED)
                c[C_FAULT]++;
            if (e->u.refund.reason == TD_REASON_COUNTERFEIT) c[C_FAKE]++;
            break;
        case TD_REFUND_APPROVED:
            c[C_DECIDED]++;
            break;
        case TD_REFUND_REJECTED:
            c[C_DECIDED]++;
            c[C_REJECTED]++;
            break;
        case TD_REFUND_ARBITRATED:
            c[C_ARBITRATED]++;
            if (e->u.refund.responsible == TD_RESP_MERCHANT) c[C_LOST]++;
            break;
        default:
            break;
        }
        break;
    default:
        break;
    }
}

static double binom_ll(double k, double n, double p) {
    return k * log(p) + (n - k) * log1p(-p);
}

/* Log-likelihood of a merchant's counts under a kind's rates. */
static double kind_ll(const double *c, const td_loadgen_rates_t *r) {
    double other = c[C_REFUND] - c[C_FAULT] - c[C_FAKE];

    return binom_ll(c[C_CANCEL], c[C_PAID], r->cancel) +
           binom_ll(c[C_LATE], c[C_SHIPPED], r->late_ship) +
           binom_ll(c[C_REFUND], c[C_SHIPPED], r->refund) +
           c[C_FAULT] * log(r->fault_share) + c[C_FAKE] * log(r->fake_share) +
           other * log1p(-r->fault_share - r->fake_share) +
           binom_ll(c[C_NEGATIVE], c[C_REVIEWS], r->negative) +
           binom_ll(c[C_REJECTED], c[C_DECIDED], r->reject) +
           binom_ll(c[C_LOST], c[C_ARBITRATED], r->lost_arb);
}

/* log P(bad mixture) - log P(good): higher is more likely bad. */
static double llr(const double *c, td_loadgen_shape_t shape) {
    static const struct {
        int kind;
        double w[2]; /* weight in MARKET, LONG_TAIL */
    } mix[] = {
        {TD_LG_BAD, {2.0 / 3, 0}},    {TD_LG_FAKE, {1.0 / 3, 0}},
        {TD_LG_CANCELLER, {0, 0.25}}, {TD_LG_LATE, {0, 0.25}},
        {TD_LG_REFUNDS, {0, 0.25}},   {TD_LG_COUNTERFEIT, {0, 0.25}},
    };
    td_loadgen_rates_t r;
    double ll[TD_ARRAY_LEN(mix)], top = -INFINITY, sum = 0;
    int col = shape == TD_LOADGEN_LONG_TAIL;

    for (size_t i = 0; i < TD_ARRAY_LEN(mix); i++) {
        ll[i] = -INFINITY;
        if (mix[i].w[col] == 0) continue;
        td_loadgen_kind_rates((td_loadgen_kind_t)mix[i].kind, &r);
        ll[i] = log(mix[i].w[col]) + kind_ll(c, &r);
        top = fmax(top, ll[i]);
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(mix); i++) {
        if (ll[i] > -INFINITY) sum += exp(ll[i] - top);
    }
    td_loadgen_kind_rates(TD_LG_GOOD, &r);
    return top + log(sum) - kind_ll(c, &r);
}

typedef struct pt_s {
    double v; /* higher is better */
    int bad;
} pt_t;

static int cmp_pt(const void *a, const void *b) {
    double x = ((const pt_t *)a)->v, y = ((const pt_t *)b)->v;
    return x < y ? -1 : x > y;
}

/* AUC of v (higher better) for good over bad; sorts pts. */
static double auc(pt_t *pts, int n) {
    double rank_good = 0;
    int good = 0;

    qsort(pts, (size_t)n, sizeof(*pts), cmp_pt);
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && pts[j].v == pts[i].v)
            j++;
        double avg = (i + 1 + j) / 2.0; /* 1-based ranks i+1..j */
        for (int k = i; k < j; k++) {
            if (!pts[k].bad) {
                rank_good += avg;
                good++;
            }
        }
        i = j;
    }
    if (good == 0 || good == n) return NAN;
    return (rank_good - good * (good + 1) / 2.0) / ((double)good * (n - good));
}

/* Share of bad flagged when the lowest `share` of good are (pts sorted). */
static double recall_at(const pt_t *pts, int n, double share) {
    int good = 0, bad = 0, flagged_good = 0, flagged_bad = 0, target;

    for (int i = 0; i < n; i++)
        pts[i].bad ? bad++ : good++;
    if (bad == 0) return NAN;
    target = (int)lround(share * good);
    for (int i = 0; i < n; i++) {
        if (!pts[i].bad) {
            if (flagged_good == target) break;
            flagged_good++;
        } else {
            flagged_bad++;
        }
    }
    return (double)flagged_bad / bad;
}

static void
group(const merchant_t *ms, int n, int bucket, pt_t *pts, td_eval_group_t *g) {
    int cnt = 0, low_good = 0;

    memset(g, 0, sizeof(*g));
    for (int i = 0; i < n; i++) {
        const merchant_t *mc = &ms[i];
        int bad = mc->kind != TD_LG_GOOD;
        if (!mc->events) continue;
        if (bucket != TD_EVAL_B_ALL && mc->bucket != bucket) continue;
        bad ? g->bad++ : g->good++;
        g->tiers[bad][mc->tier - 1]++;
        if (!bad && mc->tier >= 4) low_good++;
        pts[cnt].v = mc->score;
        pts[cnt].bad = bad;
        cnt++;
    }
    g->auc = auc(pts, cnt);
    for (int i = 0, k = 0; i < n; i++) {
        const merchant_t *mc = &ms[i];
        if (!mc->events) continue;
        if (bucket != TD_EVAL_B_ALL && mc->bucket != bucket) continue;
        pts[k].v = -mc->llr;
        pts[k].bad = mc->kind != TD_LG_GOOD;
        k++;
    }
    g->ceiling_auc = auc(pts, cnt);
    g->ceiling_recall = recall_at(
        pts, cnt,
        low_good && g->good ? (double)low_good / g->good : LOW_SHARE_DEFAULT);
}

/*
 * Method-of-moments empirical Bayes for a rate k_i / n_i over merchants,
 * on exact whole-stream counts: the between-merchant variance is the
 * weighted spread of the observed rates less the binomial noise their
 * counts explain,
 *     E[sum n_i (x_i - p)^2] = (N - 1)(p(1-p) - var) + var (S1 - S2 / S1)
 * (S1 = sum n_i, S2 = sum n_i^2), and a Beta prior with that mean and
 * variance has strength p(1-p)/var - 1 pseudo-observations.
 */
static void eb_print(const merchant_t *ms, int n, FILE *fp) {
    static const struct {
        const char *name;
        int k1, k2, den; /* numerator k1 (+ k2), denominator */
        const char *model;
    } rates[] = {
        {"merchant cancels / paid", C_CANCEL, -1, C_PAID,
         "merchant_cancel_rate_30d"},
        {"late shipments / shipped", C_LATE, -1, C_SHIPPED,
         "late_ship_rate_30d"},
        {"refunds / shipped", C_REFUND, -1, C_SHIPPED, "refund_rate_30d"},
        {"merchant-fault refunds / shipped", C_FAULT, C_FAKE, C_SHIPPED,
         "merchant_fault_refund_rate_30d"},
        {"negative reviews / reviews", C_NEGATIVE, -1, C_REVIEWS,
         "negative_review_rate_30d"},
        {"lost arbitrations / shipped", C_LOST, -1, C_SHIPPED,
         "arbitration_loss_rate_90d"},
        {"counterfeit claims / paid", C_FAKE, -1, C_PAID,
         "counterfeit_claim_rate_90d"},
    };

    fprintf(fp, "| rate (whole stream) | model indicator | merchants | mean | "
                "between-merchant sd | strength |\n"
                "|---|---|---|---|---|---|\n");
    for (size_t r = 0; r < TD_ARRAY_LEN(rates); r++) {
        double sk = 0, sn = 0, sn2 = 0, ss = 0, p, var;
        int cnt = 0;

#define EB_K(mc)                                                               \
    ((mc)->cnt[rates[r].k1] + (rates[r].k2 >= 0 ? (mc)->cnt[rates[r].k2] : 0))
        for (int i = 0; i < n; i++) {
            double nn = ms[i].cnt[rates[r].den];
            if (!(nn > 0)) continue;
            sk += EB_K(&ms[i]);
            sn += nn;
            sn2 += nn * nn;
            cnt++;
        }
        if (cnt < 2 || sn <= 0) continue;
        p = sk / sn;
        for (int i = 0; i < n; i++) {
            double nn = ms[i].cnt[rates[r].den];
            if (!(nn > 0)) continue;
            double x = EB_K(&ms[i]) / nn - p;
            ss += nn * x * x;
        }
#undef EB_K
        var = (ss - (cnt - 1) * p * (1 - p)) / (sn - sn2 / sn - (cnt - 1));
        fprintf(fp, "| %s | %s | %d | %.4g | ", rates[r].name, rates[r].model,
                cnt, p);
        if (var > 0 && p > 0 && p < 1)
            fprintf(fp, "%.3g | %.3g |\n", sqrt(var), p * (1 - p) / var - 1);
        else
            fprintf(fp, "0 | - |\n");
    }
    fprintf(fp, "\n");
}

int td_eval_run(const td_eval_conf_t *c,
                const td_model_t *m,
                td_eval_t *out,
                FILE *ebfp,
                char *errstr,
                size_t errstr_size) {
    int n = c->gen.merchants, rc = TD_ERR, days;
    td_loadgen_t *g = td_loadgen_new(&c->gen, errstr, errstr_size);
    merchant_t *ms = NULL;
    uint16_t *paid_day = NULL;
    pt_t *pts = NULL;
    td_event_t ev;

    memset(out, 0, sizeof(*out));
    if (!g) return TD_ERR;
    ms = calloc((size_t)n, sizeof(*ms));
    paid_day = calloc((size_t)n * MAX_DAYS, sizeof(*paid_day));
    pts = calloc((size_t)n, sizeof(*pts));
    if (!ms || !paid_day || !pts) {
        snprintf(errstr, errstr_size, "out of memory for %d merchants", n);
        goto err;
    }
    for (int i = 0; i < n; i++) {
        td_sigstate_init(&ms[i].st);
        ms[i].kind = td_loadgen_merchant_kind(g, i);
    }
    out->start_ms = c->gen.start_ms;
    out->end_ms = c->gen.start_ms;
    for (;;) {
        td_sigdelta_t d;
        int i;

        if (c->events && out->events >= c->events) break;
        if (c->duration_ms &&
            td_loadgen_clock_ms(g) >= c->gen.start_ms + c->duration_ms)
            break;
        td_loadgen_next(g, &ev);
        out->events++;
        if ((i = merchant_index(&ev, n)) < 0) continue;
        td_sigdelta_init(&d, ev.kind);
        td_sigdelta_add(&d, &ev);
        td_sigstate_merge(&ms[i].st, &d);
        ms[i].events++;
        count(&ms[i], &ev);
        if (ev.event_time > out->end_ms) out->end_ms = ev.event_time;
        if (ev.kind == TD_EV_ORDER && ev.u.order.status == TD_ORDER_PAID) {
            int64_t day = (ev.event_time - c->gen.start_ms) / DAY_MS;
            if (day >= 0 && day < MAX_DAYS &&
                paid_day[(size_t)i * MAX_DAYS + day] < UINT16_MAX)
                paid_day[(size_t)i * MAX_DAYS + day]++;
        }
    }

    days = (int)((out->end_ms - c->gen.start_ms) / DAY_MS);
    for (int i = 0; i < n; i++) {
        merchant_t *mc = &ms[i];
        td_score_rec_t r;
        int paid90 = 0, paid30 = 0;

        if (!mc->events) continue;
        out->merchants_seen++;
        if (c->age_to_end) td_sigstate_age(&mc->st, out->end_ms);
        memset(&r, 0, sizeof(r));
        td_model_score(m, &mc->st, &r);
        mc->score = r.score;
        mc->tier = r.tier;
        mc->llr = llr(mc->cnt, c->gen.shape);
        /* Days days-89 .. days: the last 90 days of the stream. */
        for (int dd = days - 89; dd <= days; dd++) {
            if (dd < 0 || dd >= MAX_DAYS) continue;
            paid90 += paid_day[(size_t)i * MAX_DAYS + dd];
            if (dd > days - 30) paid30 += paid_day[(size_t)i * MAX_DAYS + dd];
        }
        out->under10_30d += paid30 < 10;
        mc->bucket = paid90 < 5     ? TD_EVAL_B_LT5
                     : paid90 < 20  ? TD_EVAL_B_5_20
                     : paid90 < 100 ? TD_EVAL_B_20_100
                                    : TD_EVAL_B_100;
    }
    for (int b = 0; b < TD_EVAL_B__CNT; b++)
        group(ms, n, b, pts, &out->b[b]);
    {
        int bad = 0, good = 0, bad_low = 0, good_low = 0;
        for (int i = 0; i < n; i++) {
            if (!ms[i].events || ms[i].bucket == TD_EVAL_B_LT5) continue;
            out->kind_cnt[ms[i].kind]++;
            out->kind_low[ms[i].kind] += ms[i].tier >= 4;
            if (ms[i].kind != TD_LG_GOOD) {
                bad++;
                bad_low += ms[i].tier >= 4;
            } else {
                good++;
                good_low += ms[i].tier >= 4;
            }
        }
        out->bad_low_share = bad ? (double)bad_low / bad : NAN;
        out->good_low_share = good ? (double)good_low / good : NAN;
    }
    out->prior_score = td_model_prior_score(m);
    if (ebfp) eb_print(ms, n, ebfp);
    rc = TD_OK;
err:
    free(ms);
    free(paid_day);
    free(pts);
    td_loadgen_destroy(g);
    return rc;
}

void td_eval_print(const td_eval_t *e, FILE *fp) {
    static const char *kind_names[TD_LG__KIND_CNT] = {
        "good",          "bad",           "counterfeit+bad",
        "cancellers",    "late shippers", "refunds/low ratings",
        "counterfeiters"};
    static const char *names[TD_EVAL_B__CNT] = {"< 5", "5-20", "20-100", "100+",
                                                "all"};

    fprintf(fp,
            "%lld events over %.1f days, %d merchants with events (%d with "
            "fewer than 10 paid orders in the last 30 days), prior score "
            "%.1f\n\n",
            (long long)e->events, (double)(e->end_ms - e->start_ms) / DAY_MS,
            e->merchants_seen, e->under10_30d, e->prior_score);
    fprintf(fp, "| paid orders in 90d | good | bad | AUC | ceiling AUC | "
                "good in tiers 1-5 | bad in tiers 1-5 | ceiling: bad "
                "flagged at the same good share |\n"
                "|---|---|---|---|---|---|---|---|\n");
    for (int b = 0; b < TD_EVAL_B__CNT; b++) {
        const td_eval_group_t *g = &e->b[b];
        fprintf(fp, "| %s | %d | %d | %.3f | %.3f | ", names[b], g->good,
                g->bad, g->auc, g->ceiling_auc);
        for (int bad = 0; bad < 2; bad++) {
            for (int t = 0; t < 5; t++)
                fprintf(fp, "%s%d", t ? " / " : "", g->tiers[bad][t]);
            fprintf(fp, " | ");
        }
        fprintf(fp, "%.0f %% |\n", 100 * g->ceiling_recall);
    }
    fprintf(fp,
            "\nWith >= 5 paid orders in 90 days: %.1f %% of bad merchants "
            "and %.1f %% of good ones in tiers 4-5.\n",
            100 * e->bad_low_share, 100 * e->good_low_share);
    fprintf(fp, "By kind, tiers 4-5 of those:");
    for (int k = 0; k < TD_LG__KIND_CNT; k++) {
        if (e->kind_cnt[k])
            fprintf(fp, " %s %d/%d,", kind_names[k], e->kind_low[k],
                    e->kind_cnt[k]);
    }
    fprintf(fp, "\n");
}
