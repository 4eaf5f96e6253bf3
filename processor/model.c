/*
 * model.c - walking-skeleton score model: a Bayesian-smoothed blend of the
 * late-shipment rate, the refund rate and the average rating. The model file
 * only carries its version for now.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

struct td_model_s {
    char version[64];
};

static char *trim(char *s) {
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

td_model_t *td_model_load(const char *path, char *errstr, size_t errstr_size) {
    FILE *fp = fopen(path, "r");
    td_model_t *m;
    char line[512];
    int lineno = 0;

    if (!fp) {
        snprintf(errstr, errstr_size, "%s: cannot open model file", path);
        return NULL;
    }
    m = calloc(1, sizeof(*m));
    while (m && fgets(line, sizeof(line), fp)) {
        char *s = trim(line), *eq;
        lineno++;
        if (!*s || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (!eq) {
            snprintf(errstr, errstr_size, "%s:%d: expected key = value", path,
                     lineno);
            goto err;
        }
        *eq = '\0';
        if (!strcmp(trim(s), "version")) {
            snprintf(m->version, sizeof(m->version), "%s", trim(eq + 1));
        } else {
            snprintf(errstr, errstr_size, "%s:%d: unknown key '%s'", path,
                     lineno, trim(s));
            goto err;
        }
    }
    fclose(fp);
    if (m && !m->version[0]) {
        snprintf(errstr, errstr_size, "%s: no version", path);
        free(m);
        return NULL;
    }
    return m;
err:
    fclose(fp);
    free(m);
    return NULL;
}

void td_model_destroy(td_model_t *m) {
    free(m);
}

const char *td_model_version(const td_model_t *m) {
    return m->version;
}

/* Beta-smoothed rate: (k + a) / (n + a + b) with prior mean p, weight w. */
static double smooth(double k, double n, double p, double w) {
    return (k + p * w) / (n + w);
}

void td_model_score(const td_model_t *m, const td_sigstate_t *s,
                    td_score_rec_t *out) {
    double late = smooth(s->v[TD_SIG_shipped_late_30d],
                         s->v[TD_SIG_shipped_30d], 0.05, 20);
    double refund = smooth(s->v[TD_SIG_refunds_requested_30d],
                           s->v[TD_SIG_orders_paid_30d], 0.08, 20);
    double rating = (s->v[TD_SIG_rating_sum_30d] + 4.5 * 10) /
                    (s->v[TD_SIG_reviews_30d] + 10);
    double q = (rating - 1) / 4 * 100;
    double f = (1 - late) * 100;
    double r = (1 - refund) * 100;
    double score = 0.4 * q + 0.3 * f + 0.3 * r;

    if (score < 0)
        score = 0;
    if (score > 100)
        score = 100;
    out->score = score;
    out->tier = score >= 90 ? 1 : score >= 80 ? 2 : score >= 70 ? 3
                : score >= 60 ? 4 : 5;
    out->confidence = s->v[TD_SIG_orders_paid_30d] /
                      (s->v[TD_SIG_orders_paid_30d] + 20);
    out->dim_cnt = 3;
    out->dim_names[0] = "quality";
    out->dims[0] = q;
    out->dim_names[1] = "fulfillment";
    out->dims[1] = f;
    out->dim_names[2] = "service";
    out->dims[2] = r;
    out->reason_cnt = 0;
    out->model_version = m->version;
    out->as_of_ms = s->as_of;
}
