/*
 * td_model_eval.c - td-model-eval: the trust score model against a load
 * generator stream with known bad merchants (make model-eval).
 *
 *   td-model-eval [--model FILE] [--market] [--merchants N] [--seed S]
 *                 [--days D] [--events N] [--as-of-last] [--eb] [--check]
 *
 * Default: the long-tail market (1000 Zipf merchants over 100 days, 15 %
 * bad: cancellers, late shippers, refund-heavy and low-rated, counterfeit
 * sellers), every merchant scored as of the end of the stream. --market is
 * the README's high-volume calibration (generator defaults, 2000 merchants,
 * 4 M events, scored as of each merchant's last event, as trustd
 * publishes). --eb adds the empirical-Bayes priors of every catalog ratio
 * (model.conf's strengths come from there). --check reports the issue-21
 * targets and exits 1 unless all hold. No Kafka, no Redis: modeleval.c folds
 * with the real catalog and scores with the real model. Exit 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modeleval.h"

#define DAY_MS 86400000LL

static void usage(void) {
    fprintf(stderr,
            "usage: td-model-eval [--model FILE] [--market] [--merchants N] "
            "[--seed S]\n"
            "                     [--days D] [--events N] [--as-of-last] "
            "[--eb] [--check]\n");
    exit(2);
}

static long long
num_arg(const char *opt, const char *v, long long lo, long long hi) {
    char *end;
    long long x;

    if (!v) usage();
    x = strtoll(v, &end, 10);
    if (*end || end == v || x < lo || x > hi) {
        fprintf(stderr, "td-model-eval: bad %s '%s' (%lld..%lld)\n", opt, v, lo,
                hi);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv) {
    const char *path = "schemas/model.conf";
    td_eval_conf_t c;
    td_eval_t e;
    td_model_t *m;
    char errstr[512];
    int eb = 0, check = 0, market = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--market")) market = 1;
    }
    if (market)
        td_eval_conf_market(&c);
    else
        td_eval_conf_long_tail(&c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--market")) {
            continue;
        } else if (!strcmp(a, "--model")) {
            if (!v) usage();
            path = v;
        } else if (!strcmp(a, "--merchants")) {
            c.gen.merchants = (int)num_arg(a, v, 1, 1000000);
        } else if (!strcmp(a, "--seed")) {
            c.gen.seed = (uint64_t)num_arg(a, v, 0, INT64_MAX);
        } else if (!strcmp(a, "--days")) {
            c.duration_ms = num_arg(a, v, 1, 365) * DAY_MS;
        } else if (!strcmp(a, "--events")) {
            c.events = num_arg(a, v, 1, 1000000000);
        } else if (!strcmp(a, "--as-of-last")) {
            c.age_to_end = 0;
            continue;
        } else if (!strcmp(a, "--eb")) {
            eb = 1;
            continue;
        } else if (!strcmp(a, "--check")) {
            check = 1;
            continue;
        } else {
            usage();
        }
        i++;
    }
    if (!(m = td_model_load(path, errstr, sizeof(errstr)))) {
        fprintf(stderr, "td-model-eval: %s\n", errstr);
        return 2;
    }
    printf("model %s (%s), %s market, %d merchants, seed %llu\n\n", path,
           td_model_version(m), market ? "high-volume" : "long-tail",
           c.gen.merchants, (unsigned long long)c.gen.seed);
    if (eb) printf("Empirical-Bayes priors of the catalog's ratios:\n\n");
    if (td_eval_run(&c, m, &e, eb ? stdout : NULL, errstr, sizeof(errstr)) !=
        TD_OK) {
        fprintf(stderr, "td-model-eval: %s\n", errstr);
        td_model_destroy(m);
        return 2;
    }
    td_eval_print(&e, stdout);
    td_model_destroy(m);
    if (check) {
        static const char *mark[2] = {"NOT met", "met"};
        int t[4] = {e.b[TD_EVAL_B_ALL].auc >= 0.98,
                    e.b[TD_EVAL_B_5_20].auc >= 0.95, e.bad_low_share >= 0.8,
                    e.good_low_share <= 0.03};
        printf("\nTargets (issue 21): AUC %.3f >= 0.98 %s; 5-20 orders AUC "
               "%.3f >= 0.95 %s; bad with >= 5 orders in tiers 4-5 %.1f %% "
               ">= 80 %% %s; good %.1f %% <= 3 %% %s\n",
               e.b[TD_EVAL_B_ALL].auc, mark[t[0]], e.b[TD_EVAL_B_5_20].auc,
               mark[t[1]], 100 * e.bad_low_share, mark[t[2]],
               100 * e.good_low_share, mark[t[3]]);
        return t[0] && t[1] && t[2] && t[3] ? 0 : 1;
    }
    return 0;
}
