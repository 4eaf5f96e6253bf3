/*
 * model.c - the trust score model: a loader for the model file and the
 * scoring function.
 *
 * The model file (schemas/model.conf) is a list of lines, one keyword each:
 *
 *   version [=] <text>
 *   tiers [=] <t1> <t2> <t3> <t4>         lower bounds of tiers 1..4
 *   confidence signal <base count> half <m>
 *   reasons min_points <x>                (optional, default 0.1)
 *   window signal <base count> small <a> large <b>     (optional)
 *   deep floor <f> count <c>                           (optional)
 *   severe <indicator>... per <indicator>              (optional)
 *   dimension <name> weight <w>
 *   signal <ratio or average signal> dimension <name> prior <p>
 *       strength <w> good <g> bad <b> weight <w>
 *       [numerator <base> denominator <base>]
 *       [long_numerator <base> long_denominator <base>] (all on one line)
 *   rule <name> if <cond> [and <cond>]...
 *       cap_tier <n> cap_score <s> reason "<text>" [reason_zh "<text>"]
 *       (all on one line; reason_zh is for trustctl serve's page)
 *   <cond>: <signal> >=|<= <x>, or <indicator>.count / <indicator>.rate
 *       >=|<= <x> (the k, or k / n, the indicator read), or
 *       severe.count / severe.rate >= <x> (the k of the severe line's
 *       indicators summed, or that sum over the n its `per` one read)
 *
 * Words are separated by blanks, "..." quotes a text, # starts a comment.
 * Key/value pairs after the name may come in any order. The loader walks
 * the keyword table below, collects everything into one fixed-size
 * td_model_t and checks it as a whole at the end of the file; every error
 * names file:line.
 *
 * Scoring is a single pass over the indicators (read k and n, blending in
 * the 90-day counts by volume; smooth; map to 0..100; accumulate per
 * dimension), then over the rules, then a short selection of the most
 * negative contributions for the reasons. All arrays live on the
 * stack or in the model: nothing is allocated per call.
 *
 * Why the score is monotone. A bad event (late shipment, merchant cancel,
 * refund, escalation, lost dispute, negative review, ...) increases a base
 * signal the catalog marks lower-is-better (DOWN); a worse rating lowers a
 * rating sum, which is the numerator of a higher-is-better (UP) average.
 * The loader accepts an indicator only if its smoothed value moves the
 * right way with such changes: a DOWN indicator must have a DOWN numerator
 * and an UP denominator, an UP indicator an UP numerator; its good/bad
 * anchors must agree with its direction; its weight must be positive. A
 * rule condition must test the bad side of its signal (>= for DOWN, <= for
 * UP) under the same input constraints. The long numerator and
 * denominator obey the numerator's and denominator's rules, and the blend
 * share depends only on a count of good events (paid orders), so the
 * blended k and n move like both windows' (max() with the 30-day count,
 * for states older than the 90-day signals, keeps that). Then every
 * sub-score is non-increasing in every bad event, the weighted sums are
 * too, and a rule can only start to apply, which only lowers min(score,
 * cap).
 *
 * The severe line keeps that too: its indicators are lower-is-better
 * rates, so each k rises with bad events and their sum does; `per` reads a
 * count that is not bad, and a severe.rate threshold is at most 1, so an
 * event that adds to both the sum and n (a late shipment is also a
 * shipment) cannot make the condition stop holding: (K + d) / (n + d) is
 * at least K / n when K <= n, and at least 1 when K > n.
 *
 * The deep line keeps that: below 0 a sub-score is max(the line's value,
 * -floor * min(1, k - count)); both fall with k and rise with n, so their
 * max does too, and it is continuous where it leaves 0. A dimension is
 * clamped at 0, which is monotone. A rule's cap floor + (cap - floor) *
 * score / 100 rises with the score, so min(score, cap(score)) falls with
 * every bad event as the score does, and more rules only lower it.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define TIER_CNT        5
#define LINE_MAX_LEN    1024
#define TOKENS_MAX      48
#define FILE_MAX        (1024 * 1024)
#define WEIGHT_EPS      1e-6
#define HEAD_MAX        64 /* constant parts of an indicator reason */
#define NUM_MAX         32 /* one number written by put_num() */
#define IND_REASONS_MIN 2  /* reason slots rules leave to indicators */

typedef struct dim_s {
    char name[TD_MODEL_NAME_MAX];
    double weight;
    int line;
} dim_t;

/* One indicator: a smoothed ratio or average mapped to 0..100. */
typedef struct ind_s {
    td_signal_id_t sig; /* the derived signal, for names and reasons */
    td_signal_id_t num; /* its numerator and denominator (base signals) */
    td_signal_id_t den;
    int has_long;        /* small merchants' window: */
    td_signal_id_t lnum; /* long_numerator, long_denominator */
    td_signal_id_t lden;
    int dim;
    double prior;
    double strength;
    double good;
    double bad;
    double weight;    /* within the dimension */
    double slope;     /* 100 / (bad - good): sub-score points per unit */
    double eff;       /* dimension weight * weight: score per sub-point */
    double sub_prior; /* sub-score at the prior */
    int deep;         /* a lower-is-better rate: may go below 0 (deep) */
    int line;
    char head[HEAD_MAX]; /* "<signal> " */
    char tail[HEAD_MAX]; /* " (prior <p>) " */
    unsigned char head_len;
    unsigned char tail_len;
} ind_t;

/* What a rule condition reads. */
enum { COND_SIGNAL = 0, COND_COUNT, COND_RATE, COND_SEV_COUNT, COND_SEV_RATE };

typedef struct cond_s {
    td_signal_id_t sig;
    int what; /* COND_SIGNAL: the signal; COND_COUNT, COND_RATE: the
               * evidence k, or k / n, of indicator `ind`; COND_SEV_*:
               * the same summed over the severe line */
    int ind;
    int le; /* 1: value <= x holds, 0: value >= x holds */
    double x;
} cond_t;

typedef struct rule_s {
    char name[TD_MODEL_NAME_MAX];
    cond_t conds[TD_MODEL_MAX_CONDS];
    int ncond;
    int cap_tier;
    double cap_score;
    char reason[TD_SCORE_REASON_MAX];
    size_t reason_len;
    char reason_zh[TD_SCORE_REASON_MAX]; /* "" when the line has none */
    int line;
} rule_t;

struct td_model_s {
    char version[TD_MODEL_VERSION_MAX];
    double tiers[TIER_CNT - 1]; /* lower bounds of tiers 1..4 */
    td_signal_id_t conf_sig;
    double conf_half;
    int has_window;         /* the window line: */
    td_signal_id_t win_sig; /* volume signal, */
    double win_small;       /* all long window at or below, */
    double win_large;       /* all 30-day window at or above */
    double reason_min;
    double deep_floor; /* the deep line: lowest sub-score, */
    double deep_count; /* reached one event past this count */
    unsigned char severe[TD_MODEL_MAX_SIGNALS]; /* on the severe line */
    int nsevere;
    int severe_per; /* indicator whose n severe.rate divides by */
    dim_t dims[TD_SCORE_MAX_DIMS];
    int ndim;
    ind_t inds[TD_MODEL_MAX_SIGNALS];
    int nind;
    rule_t rules[TD_MODEL_MAX_RULES];
    int nrule;
    double prior_score;
};

/* ---- Parser ---- */

typedef struct tok_s {
    char *s;
    int quoted;
} tok_t;

typedef struct parser_s {
    td_model_t *m;
    const char *name; /* file name for messages */
    int line;
    char *errstr;
    size_t errstr_size;
    /* Line of the first occurrence of each singleton keyword, 0 if none. */
    int version_line;
    int tiers_line;
    int conf_line;
    int reasons_line;
    int window_line;
    int deep_line;
    int severe_line;
} parser_t;

static int perr(parser_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int perr(parser_t *p, const char *fmt, ...) {
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->errstr && p->errstr_size) {
        snprintf(p->errstr, p->errstr_size, "%s:%d: %s", p->name, p->line, msg);
    }
    return TD_ERR;
}

/* Splits s in place into words and quoted texts; stops at a # that starts
 * a word. Returns the number of tokens or TD_ERR. */
static int tokenize(parser_t *p, char *s, tok_t *t, int max) {
    int n = 0;

    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#') return n;
        if (n == max)
            return perr(p, "too many words on one line (max %d)", max);
        if (*s == '"') {
            char *e = strchr(s + 1, '"');
            if (!e) return perr(p, "unterminated quoted text");
            *e = '\0';
            t[n].s = s + 1;
            t[n].quoted = 1;
            n++;
            s = e + 1;
            if (*s && *s != ' ' && *s != '\t')
                return perr(p, "no blank after closing quote");
        } else {
            t[n].s = s;
            t[n].quoted = 0;
            n++;
            while (*s && *s != ' ' && *s != '\t') {
                if (*s == '"') return perr(p, "quote inside a word");
                s++;
            }
            if (*s) {
                *s++ = '\0';
            }
        }
    }
}

static int
parse_num(parser_t *p, const tok_t *t, const char *what, double *out) {
    char *end;

    if (t->quoted) return perr(p, "bad number \"%s\" for %s", t->s, what);
    errno = 0;
    *out = strtod(t->s, &end);
    if (end == t->s || *end || errno == ERANGE || !isfinite(*out))
        return perr(p, "bad number '%s' for %s", t->s, what);
    return TD_OK;
}

/* Names of dimensions and rules become Redis fields (sub_<name>) and Avro
 * map keys: keep them to lower-case identifiers. */
static int check_ident(parser_t *p, const tok_t *t, const char *what) {
    size_t len = strlen(t->s);

    if (t->quoted || len == 0 || len >= TD_MODEL_NAME_MAX)
        return perr(p, "bad %s name '%s' (1..%d characters a-z 0-9 _)", what,
                    t->s, TD_MODEL_NAME_MAX - 1);
    for (const char *c = t->s; *c; c++) {
        if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) ||
              *c == '_'))
            return perr(p, "bad %s name '%s' (1..%d characters a-z 0-9 _)",
                        what, t->s, TD_MODEL_NAME_MAX - 1);
    }
    return TD_OK;
}

/* Key/value options after a line's fixed words. */
enum { OPT_NUM, OPT_NAME, OPT_TEXT };

typedef struct optdef_s {
    const char *key;
    int type;
    int required;
} optdef_t;

typedef struct optval_s {
    int set;
    double num;
    const char *str;
} optval_t;

static int parse_opts(parser_t *p,
                      const char *what,
                      const tok_t *t,
                      int n,
                      const optdef_t *defs,
                      int ndefs,
                      optval_t *out) {
    for (int j = 0; j < ndefs; j++)
        out[j].set = 0;
    for (int i = 0; i < n; i += 2) {
        int j;
        for (j = 0; j < ndefs; j++) {
            if (!t[i].quoted && !strcmp(t[i].s, defs[j].key)) break;
        }
        if (j == ndefs) {
            char keys[256];
            size_t len = 0;
            keys[0] = '\0';
            for (int k = 0; k < ndefs && len < sizeof(keys); k++)
                len += (size_t)snprintf(keys + len, sizeof(keys) - len, "%s%s",
                                        k ? ", " : "", defs[k].key);
            return perr(p, "unknown key '%s' in %s line (expected %s)", t[i].s,
                        what, keys);
        }
        if (out[j].set)
            return perr(p, "duplicate key '%s' in %s line", defs[j].key, what);
        if (i + 1 >= n) return perr(p, "key '%s' needs a value", defs[j].key);
        switch (defs[j].type) {
        case OPT_NUM:
            if (parse_num(p, &t[i + 1], defs[j].key, &out[j].num) != TD_OK)
                return TD_ERR;
            break;
        case OPT_NAME:
            if (t[i + 1].quoted)
                return perr(p, "%s takes a name, not a quoted text",
                            defs[j].key);
            break;
        default:
            if (!t[i + 1].quoted)
                return perr(p, "%s takes a quoted text", defs[j].key);
        }
        out[j].str = t[i + 1].s;
        out[j].set = 1;
    }
    for (int j = 0; j < ndefs; j++) {
        if (defs[j].required && !out[j].set)
            return perr(p, "%s line needs '%s'", what, defs[j].key);
    }
    return TD_OK;
}

/* A singleton keyword seen twice. */
static int once(parser_t *p, int *first_line, const char *kw) {
    if (*first_line)
        return perr(p, "duplicate '%s' (first on line %d)", kw, *first_line);
    *first_line = p->line;
    return TD_OK;
}

static int kw_version(parser_t *p, tok_t *t, int n) {
    size_t len;

    if (once(p, &p->version_line, "version") != TD_OK) return TD_ERR;
    if (n != 1) return perr(p, "version takes exactly one word");
    len = strlen(t[0].s);
    if (len == 0 || len >= TD_MODEL_VERSION_MAX)
        return perr(p, "version must be 1..%d characters",
                    TD_MODEL_VERSION_MAX - 1);
    for (const char *c = t[0].s; *c; c++) {
        if (!isgraph((unsigned char)*c) || *c == '\\')
            return perr(p, "bad character in version '%s'", t[0].s);
    }
    snprintf(p->m->version, sizeof(p->m->version), "%s", t[0].s);
    return TD_OK;
}

static int kw_tiers(parser_t *p, tok_t *t, int n) {
    double *tiers = p->m->tiers;

    if (once(p, &p->tiers_line, "tiers") != TD_OK) return TD_ERR;
    if (n != TIER_CNT - 1)
        return perr(p, "tiers takes %d numbers (lower bounds of tiers 1..%d)",
                    TIER_CNT - 1, TIER_CNT - 1);
    for (int i = 0; i < n; i++) {
        if (parse_num(p, &t[i], "tiers", &tiers[i]) != TD_OK) return TD_ERR;
        if (tiers[i] <= 0 || tiers[i] >= 100)
            return perr(p, "tier bound %g out of range (0 < bound < 100)",
                        tiers[i]);
        if (i > 0 && tiers[i] >= tiers[i - 1])
            return perr(p, "tier bounds must decrease (%g after %g)", tiers[i],
                        tiers[i - 1]);
    }
    return TD_OK;
}

static int kw_confidence(parser_t *p, tok_t *t, int n) {
    static const optdef_t defs[] = {{"signal", OPT_NAME, 1},
                                    {"half", OPT_NUM, 1}};
    optval_t v[TD_ARRAY_LEN(defs)];
    int sig;

    if (once(p, &p->conf_line, "confidence") != TD_OK) return TD_ERR;
    if (parse_opts(p, "confidence", t, n, defs, TD_ARRAY_LEN(defs), v) != TD_OK)
        return TD_ERR;
    sig = td_signal_by_name(v[0].str);
    if (sig < 0) return perr(p, "unknown signal '%s'", v[0].str);
    if (td_signals[sig].agg != TD_AGG_COUNT)
        return perr(p, "confidence signal '%s' is not a base count", v[0].str);
    if (!(v[1].num > 0 && v[1].num <= 1e9))
        return perr(p, "half %g out of range (0 < half <= 1e9)", v[1].num);
    p->m->conf_sig = (td_signal_id_t)sig;
    p->m->conf_half = v[1].num;
    return TD_OK;
}

static int kw_window(parser_t *p, tok_t *t, int n) {
    enum { SIG, SMALL, LARGE, NOPT };
    static const optdef_t defs[NOPT] = {
        [SIG] = {"signal", OPT_NAME, 1},
        [SMALL] = {"small", OPT_NUM, 1},
        [LARGE] = {"large", OPT_NUM, 1},
    };
    optval_t v[NOPT];
    int sig;

    if (once(p, &p->window_line, "window") != TD_OK) return TD_ERR;
    if (parse_opts(p, "window", t, n, defs, NOPT, v) != TD_OK) return TD_ERR;
    sig = td_signal_by_name(v[SIG].str);
    if (sig < 0) return perr(p, "unknown signal '%s'", v[SIG].str);
    /* The window may depend on volume, never on bad events. */
    if (td_signals[sig].agg != TD_AGG_COUNT || !td_signals[sig].higher_better)
        return perr(p, "window signal '%s' is not a base count of good events",
                    v[SIG].str);
    if (!(v[SMALL].num >= 0 && v[LARGE].num > v[SMALL].num &&
          v[LARGE].num <= 1e12))
        return perr(p, "window needs 0 <= small < large (got %g, %g)",
                    v[SMALL].num, v[LARGE].num);
    p->m->has_window = 1;
    p->m->win_sig = (td_signal_id_t)sig;
    p->m->win_small = v[SMALL].num;
    p->m->win_large = v[LARGE].num;
    return TD_OK;
}

static int kw_deep(parser_t *p, tok_t *t, int n) {
    enum { FLOOR, COUNT, NOPT };
    static const optdef_t defs[NOPT] = {
        [FLOOR] = {"floor", OPT_NUM, 1},
        [COUNT] = {"count", OPT_NUM, 1},
    };
    optval_t v[NOPT];

    if (once(p, &p->deep_line, "deep") != TD_OK) return TD_ERR;
    if (parse_opts(p, "deep", t, n, defs, NOPT, v) != TD_OK) return TD_ERR;
    if (!(v[FLOOR].num >= 0 && v[FLOOR].num <= 1000))
        return perr(p, "deep floor %g out of range (0..1000)", v[FLOOR].num);
    /* One event weighs at most 1: a count of 1 or more needs two. */
    if (!(v[COUNT].num >= 1 && v[COUNT].num <= 1e9))
        return perr(p, "deep count %g out of range (1..1e9)", v[COUNT].num);
    p->m->deep_floor = v[FLOOR].num;
    p->m->deep_count = v[COUNT].num;
    return TD_OK;
}

static int find_ind(const td_model_t *m, td_signal_id_t sig);

/* An indicator named on the severe line: declared above, and a
 * lower-is-better rate, so its k counts bad events. */
static int severe_ind(parser_t *p, const tok_t *t) {
    int sig, ind;

    if (t->quoted || (sig = td_signal_by_name(t->s)) < 0)
        return perr(p, "unknown signal '%s'", t->s);
    if ((ind = find_ind(p->m, (td_signal_id_t)sig)) < 0)
        return perr(p, "severe needs a signal line for %s above", t->s);
    if (td_signals[sig].agg != TD_AGG_RATIO || td_signals[sig].higher_better)
        return perr(p,
                    "%s is not a lower-is-better rate: its count is not "
                    "a count of bad events",
                    t->s);
    return ind;
}

/* severe <indicator>... per <indicator>: several severe events of any of
 * these kinds, counted together (rule conditions severe.count and
 * severe.rate). */
static int kw_severe(parser_t *p, tok_t *t, int n) {
    td_model_t *m = p->m;
    int i, ind;

    if (once(p, &p->severe_line, "severe") != TD_OK) return TD_ERR;
    for (i = 0; i < n && (t[i].quoted || strcmp(t[i].s, "per") != 0); i++) {
        if ((ind = severe_ind(p, &t[i])) < 0) return TD_ERR;
        if (m->severe[ind])
            return perr(p, "%s twice on the severe line", t[i].s);
        m->severe[ind] = 1;
        m->nsevere++;
    }
    if (!m->nsevere) return perr(p, "severe needs at least one indicator");
    if (i + 2 != n) return perr(p, "severe needs 'per <indicator>' at the end");
    if ((ind = severe_ind(p, &t[i + 1])) < 0) return TD_ERR;
    m->severe_per = ind;
    return TD_OK;
}

static int kw_reasons(parser_t *p, tok_t *t, int n) {
    static const optdef_t defs[] = {{"min_points", OPT_NUM, 1}};
    optval_t v[TD_ARRAY_LEN(defs)];

    if (once(p, &p->reasons_line, "reasons") != TD_OK) return TD_ERR;
    if (parse_opts(p, "reasons", t, n, defs, TD_ARRAY_LEN(defs), v) != TD_OK)
        return TD_ERR;
    if (!(v[0].num >= 0 && v[0].num <= 100))
        return perr(p, "min_points %g out of range (0..100)", v[0].num);
    p->m->reason_min = v[0].num;
    return TD_OK;
}

static int find_dim(const td_model_t *m, const char *name) {
    for (int i = 0; i < m->ndim; i++) {
        if (!strcmp(m->dims[i].name, name)) return i;
    }
    return -1;
}

static int kw_dimension(parser_t *p, tok_t *t, int n) {
    static const optdef_t defs[] = {{"weight", OPT_NUM, 1}};
    optval_t v[TD_ARRAY_LEN(defs)];
    td_model_t *m = p->m;
    dim_t *d;
    int prev;

    if (n < 1) return perr(p, "dimension needs a name");
    if (check_ident(p, &t[0], "dimension") != TD_OK) return TD_ERR;
    if ((prev = find_dim(m, t[0].s)) >= 0)
        return perr(p, "duplicate dimension '%s' (first on line %d)", t[0].s,
                    m->dims[prev].line);
    if (m->ndim == TD_SCORE_MAX_DIMS)
        return perr(p, "too many dimensions (max %d)", TD_SCORE_MAX_DIMS);
    if (parse_opts(p, "dimension", t + 1, n - 1, defs, TD_ARRAY_LEN(defs), v) !=
        TD_OK)
        return TD_ERR;
    if (!(v[0].num >= 0 && v[0].num <= 1))
        return perr(p, "dimension weight %g out of range (0..1)", v[0].num);
    d = &m->dims[m->ndim++];
    snprintf(d->name, sizeof(d->name), "%s", t[0].s);
    d->weight = v[0].num;
    d->line = p->line;
    return TD_OK;
}

/*
 * Checks that a ratio/average signal moves the right way with bad events:
 * a lower-is-better signal must count bad events over something that is
 * not bad, a higher-is-better one must count good things. `use` says what
 * the signal is used for, in messages.
 */
static int check_inputs(parser_t *p, const td_signal_t *sg, const char *use) {
    const td_signal_t *a = &td_signals[sg->a];
    const td_signal_t *b = &td_signals[sg->b];

    if (!sg->higher_better && a->higher_better)
        return perr(p,
                    "%s cannot be %s: its numerator %s counts good events, "
                    "so more of them would lower the score",
                    sg->name, use, a->name);
    if (!sg->higher_better && !b->higher_better)
        return perr(p,
                    "%s cannot be %s: its denominator %s counts bad events, "
                    "so more of them would raise the score",
                    sg->name, use, b->name);
    if (sg->higher_better && !a->higher_better)
        return perr(p,
                    "%s cannot be %s: its numerator %s counts bad events, "
                    "so more of them would raise the score",
                    sg->name, use, a->name);
    return TD_OK;
}

static int find_ind(const td_model_t *m, td_signal_id_t sig) {
    for (int i = 0; i < m->nind; i++) {
        if (m->inds[i].sig == sig) return i;
    }
    return -1;
}

/* Optional numerator/denominator words must name the catalog's inputs, so
 * the file documents what is smoothed and cannot drift from signals.def. */
static int check_base(parser_t *p,
                      const optval_t *v,
                      td_signal_id_t want,
                      const td_signal_t *sg,
                      const char *what) {
    if (!v->set || !strcmp(v->str, td_signals[want].name)) return TD_OK;
    return perr(p, "%s '%s' does not match signals.def: %s = %s / %s", what,
                v->str, sg->name, td_signals[sg->a].name,
                td_signals[sg->b].name);
}

/*
 * The small merchants' window of an indicator: base counts or sums that
 * move like the catalog's numerator and denominator (a bad count over a
 * count that is not bad, for a lower-is-better indicator), so blending
 * them in keeps the score monotone.
 */
static int check_long(parser_t *p,
                      const td_signal_t *sg,
                      const char *num,
                      const char *den,
                      int *lnum,
                      int *lden) {
    const char *names[2] = {num, den};
    int ids[2];

    for (int i = 0; i < 2; i++) {
        ids[i] = td_signal_by_name(names[i]);
        if (ids[i] < 0) return perr(p, "unknown signal '%s'", names[i]);
        if (td_signals[ids[i]].agg != TD_AGG_COUNT &&
            td_signals[ids[i]].agg != TD_AGG_SUM)
            return perr(p, "'%s' is not a base count or sum", names[i]);
    }
    if (td_signals[ids[0]].higher_better != sg->higher_better)
        return perr(p,
                    "long_numerator %s counts %s events, but %s is %s: "
                    "more of them would move the score the wrong way",
                    num, td_signals[ids[0]].higher_better ? "good" : "bad",
                    sg->name,
                    sg->higher_better ? "higher-is-better" : "lower-is-better");
    if (!td_signals[ids[1]].higher_better)
        return perr(p,
                    "long_denominator %s counts bad events, so more of them "
                    "would move the score the wrong way",
                    den);
    *lnum = ids[0];
    *lden = ids[1];
    return TD_OK;
}

static int kw_signal(parser_t *p, tok_t *t, int n) {
    enum {
        DIM,
        PRIOR,
        STRENGTH,
        GOOD,
        BAD,
        WEIGHT,
        NUM,
        DEN,
        LNUM,
        LDEN,
        NOPT
    };
    static const optdef_t defs[NOPT] = {
        [DIM] = {"dimension", OPT_NAME, 1},
        [PRIOR] = {"prior", OPT_NUM, 1},
        [STRENGTH] = {"strength", OPT_NUM, 1},
        [GOOD] = {"good", OPT_NUM, 1},
        [BAD] = {"bad", OPT_NUM, 1},
        [WEIGHT] = {"weight", OPT_NUM, 1},
        [NUM] = {"numerator", OPT_NAME, 0},
        [DEN] = {"denominator", OPT_NAME, 0},
        [LNUM] = {"long_numerator", OPT_NAME, 0},
        [LDEN] = {"long_denominator", OPT_NAME, 0},
    };
    optval_t v[NOPT];
    td_model_t *m = p->m;
    const td_signal_t *sg;
    ind_t *ind;
    int sig, dim, prev, ratio, lnum = 0, lden = 0;

    if (n < 1 || t[0].quoted) return perr(p, "signal needs a signal name");
    if ((sig = td_signal_by_name(t[0].s)) < 0)
        return perr(p, "unknown signal '%s'", t[0].s);
    sg = &td_signals[sig];
    if (sg->agg != TD_AGG_RATIO && sg->agg != TD_AGG_AVG)
        return perr(p, "signal '%s' is a %s, not a ratio or average", t[0].s,
                    td_agg_name(sg->agg));
    if ((prev = find_ind(m, (td_signal_id_t)sig)) >= 0)
        return perr(p, "duplicate signal '%s' (first on line %d)", t[0].s,
                    m->inds[prev].line);
    if (m->nind == TD_MODEL_MAX_SIGNALS)
        return perr(p, "too many signal lines (max %d)", TD_MODEL_MAX_SIGNALS);
    if (parse_opts(p, "signal", t + 1, n - 1, defs, NOPT, v) != TD_OK)
        return TD_ERR;
    if ((dim = find_dim(m, v[DIM].str)) < 0)
        return perr(p, "unknown dimension '%s' (declare it first)", v[DIM].str);
    if (check_base(p, &v[NUM], sg->a, sg, "numerator") != TD_OK ||
        check_base(p, &v[DEN], sg->b, sg, "denominator") != TD_OK)
        return TD_ERR;
    if (check_inputs(p, sg, "an indicator") != TD_OK) return TD_ERR;
    if (!(v[WEIGHT].num > 0 && v[WEIGHT].num <= 1))
        return perr(p, "weight %g out of range (0 < weight <= 1)",
                    v[WEIGHT].num);
    if (!(v[STRENGTH].num > 0 && v[STRENGTH].num <= 1e9))
        return perr(p, "strength %g out of range (0 < strength <= 1e9)",
                    v[STRENGTH].num);
    ratio = sg->agg == TD_AGG_RATIO;
    for (int k = PRIOR; k <= BAD; k++) {
        if (k == STRENGTH) continue;
        if (v[k].num < 0 || (ratio && v[k].num > 1))
            return perr(p, "%s %g out of range (%s)", defs[k].key, v[k].num,
                        ratio ? "a rate, 0..1" : "an average, >= 0");
    }
    if (v[GOOD].num == v[BAD].num)
        return perr(p, "good and bad anchors are equal (%g)", v[GOOD].num);
    if (sg->higher_better != (v[GOOD].num > v[BAD].num))
        return perr(p,
                    "anchors point the wrong way: %s is %s, so good must "
                    "be %s bad",
                    sg->name,
                    sg->higher_better ? "higher-is-better" : "lower-is-better",
                    sg->higher_better ? "above" : "below");

    if (v[LNUM].set != v[LDEN].set)
        return perr(p, "long_numerator and long_denominator come together");
    if (v[LNUM].set &&
        check_long(p, sg, v[LNUM].str, v[LDEN].str, &lnum, &lden) != TD_OK)
        return TD_ERR;

    ind = &m->inds[m->nind++];
    ind->sig = (td_signal_id_t)sig;
    ind->has_long = v[LNUM].set;
    ind->lnum = (td_signal_id_t)lnum;
    ind->lden = (td_signal_id_t)lden;
    ind->num = sg->a;
    ind->den = sg->b;
    ind->dim = dim;
    ind->prior = v[PRIOR].num;
    ind->strength = v[STRENGTH].num;
    ind->good = v[GOOD].num;
    ind->bad = v[BAD].num;
    ind->weight = v[WEIGHT].num;
    ind->line = p->line;
    return TD_OK;
}

/* Parses "<signal> >=|<= <x>" at t, 3 tokens; the signal may be
 * "<indicator>.count" or "<indicator>.rate": the evidence of an indicator
 * declared above (its numerator k, or k / n, with the small merchants'
 * window blended in like the indicator's). */
static int parse_cond(parser_t *p, tok_t *t, int n, cond_t *c) {
    const td_signal_t *sg;
    int sig, le, what = COND_SIGNAL, ind = -1;
    char name[TD_MODEL_NAME_MAX * 2];
    char *dot;

    if (n < 3)
        return perr(p, "condition needs <signal> >= <value> or "
                       "<signal> <= <value>");
    if (t[0].quoted) return perr(p, "unknown signal '%s'", t[0].s);
    snprintf(name, sizeof(name), "%s", t[0].s);
    if ((dot = strchr(name, '.'))) {
        *dot++ = '\0';
        if (!strcmp(dot, "count"))
            what = COND_COUNT;
        else if (!strcmp(dot, "rate"))
            what = COND_RATE;
        else
            return perr(p, "unknown '.%s' (expected .count or .rate)", dot);
    }
    if (what != COND_SIGNAL && !strcmp(name, "severe")) {
        /* The severe line's evidence: bad counts, so only ">=". */
        if (!p->m->nsevere)
            return perr(p, "severe.%s needs a 'severe' line above", dot);
        if (t[1].quoted || strcmp(t[1].s, ">=") != 0)
            return perr(p,
                        "severe.%s counts bad events: a rule may only "
                        "test severe.%s >= <value>",
                        dot, dot);
        c->sig = 0;
        c->what = what == COND_COUNT ? COND_SEV_COUNT : COND_SEV_RATE;
        c->ind = -1;
        c->le = 0;
        if (parse_num(p, &t[2], t[0].s, &c->x) != TD_OK) return TD_ERR;
        /* Above 1 an event that adds to both sides could lower the rate
         * below the threshold (see the top of this file). */
        if (c->what == COND_SEV_RATE && !(c->x > 0 && c->x <= 1))
            return perr(p, "severe.rate threshold %g out of range (0 < x <= 1)",
                        c->x);
        return TD_OK;
    }
    if ((sig = td_signal_by_name(name)) < 0)
        return perr(p, "unknown signal '%s'", name);
    if (what != COND_SIGNAL && (ind = find_ind(p->m, (td_signal_id_t)sig)) < 0)
        return perr(p, "%s.%s needs a signal line for %s above", name, dot,
                    name);
    sg = &td_signals[sig];
    if (t[1].quoted || (strcmp(t[1].s, ">=") != 0 && strcmp(t[1].s, "<=") != 0))
        return perr(p, "bad operator '%s' (expected >= or <=)", t[1].s);
    le = t[1].s[0] == '<';
    /* A rule must fire on the bad side of its signal, or more bad events
     * could lift a cap. */
    if (le != sg->higher_better)
        return perr(p, "%s is %s: a rule may only test %s %s <value>", sg->name,
                    sg->higher_better ? "higher-is-better" : "lower-is-better",
                    t[0].s, sg->higher_better ? "<=" : ">=");
    if ((sg->agg == TD_AGG_RATIO || sg->agg == TD_AGG_AVG ||
         sg->agg == TD_AGG_TREND) &&
        check_inputs(p, sg, "a rule condition") != TD_OK)
        return TD_ERR;
    c->sig = (td_signal_id_t)sig;
    c->what = what;
    c->ind = ind;
    c->le = le;
    return parse_num(p, &t[2], sg->name, &c->x);
}

static int kw_rule(parser_t *p, tok_t *t, int n) {
    enum { CAP_TIER, CAP_SCORE, REASON, REASON_ZH, NOPT };
    static const optdef_t defs[NOPT] = {
        [CAP_TIER] = {"cap_tier", OPT_NUM, 1},
        [CAP_SCORE] = {"cap_score", OPT_NUM, 1},
        [REASON] = {"reason", OPT_TEXT, 1},
        [REASON_ZH] = {"reason_zh", OPT_TEXT, 0},
    };
    optval_t v[NOPT];
    td_model_t *m = p->m;
    rule_t *r;
    int i;

    if (n < 1) return perr(p, "rule needs a name");
    if (check_ident(p, &t[0], "rule") != TD_OK) return TD_ERR;
    for (i = 0; i < m->nrule; i++) {
        if (!strcmp(m->rules[i].name, t[0].s))
            return perr(p, "duplicate rule '%s' (first on line %d)", t[0].s,
                        m->rules[i].line);
    }
    if (m->nrule == TD_MODEL_MAX_RULES)
        return perr(p, "too many rules (max %d)", TD_MODEL_MAX_RULES);
    r = &m->rules[m->nrule];
    if (n < 2 || t[1].quoted || strcmp(t[1].s, "if"))
        return perr(p, "rule %s needs 'if' after its name", t[0].s);
    r->ncond = 0;
    for (i = 2;;) {
        if (r->ncond == TD_MODEL_MAX_CONDS)
            return perr(p, "too many conditions (max %d)", TD_MODEL_MAX_CONDS);
        if (parse_cond(p, t + i, n - i, &r->conds[r->ncond]) != TD_OK)
            return TD_ERR;
        r->ncond++;
        i += 3;
        if (i >= n || t[i].quoted || strcmp(t[i].s, "and") != 0) break;
        i++;
    }
    if (parse_opts(p, "rule", t + i, n - i, defs, NOPT, v) != TD_OK)
        return TD_ERR;
    if (v[CAP_TIER].num != floor(v[CAP_TIER].num) || v[CAP_TIER].num < 2 ||
        v[CAP_TIER].num > TIER_CNT)
        return perr(p, "cap_tier %g out of range (2..%d)", v[CAP_TIER].num,
                    TIER_CNT);
    if (!(v[CAP_SCORE].num >= 0 && v[CAP_SCORE].num <= 100))
        return perr(p, "cap_score %g out of range (0..100)", v[CAP_SCORE].num);
    if (strlen(v[REASON].str) >= TD_SCORE_REASON_MAX || !*v[REASON].str)
        return perr(p, "reason must be 1..%d bytes", TD_SCORE_REASON_MAX - 1);
    if (strchr(v[REASON].str, '\\'))
        return perr(p, "reason must not contain a backslash");
    if (v[REASON_ZH].set &&
        (strlen(v[REASON_ZH].str) >= TD_SCORE_REASON_MAX || !*v[REASON_ZH].str))
        return perr(p, "reason_zh must be 1..%d bytes",
                    TD_SCORE_REASON_MAX - 1);
    snprintf(r->name, sizeof(r->name), "%s", t[0].s);
    r->cap_tier = (int)v[CAP_TIER].num;
    r->cap_score = v[CAP_SCORE].num;
    snprintf(r->reason, sizeof(r->reason), "%s", v[REASON].str);
    r->reason_len = strlen(r->reason);
    snprintf(r->reason_zh, sizeof(r->reason_zh), "%s",
             v[REASON_ZH].set ? v[REASON_ZH].str : "");
    r->line = p->line;
    m->nrule++;
    return TD_OK;
}

/* clang-format off */
static const struct {
    const char *kw;
    int (*parse)(parser_t *p, tok_t *t, int n);
} keywords[] = {
    {"version",    kw_version},
    {"tiers",      kw_tiers},
    {"confidence", kw_confidence},
    {"reasons",    kw_reasons},
    {"window",     kw_window},
    {"deep",       kw_deep},
    {"severe",     kw_severe},
    {"dimension",  kw_dimension},
    {"signal",     kw_signal},
    {"rule",       kw_rule},
};
/* clang-format on */

static int parse_line(parser_t *p, char *line) {
    tok_t t[TOKENS_MAX];
    int n = tokenize(p, line, t, TOKENS_MAX), skip = 1;

    if (n <= 0) return n;
    if (t[0].quoted) return perr(p, "a line must start with a keyword");
    /* "version = x" reads like the other config files: allow the '='. */
    if (n > 1 && !t[1].quoted && !strcmp(t[1].s, "=")) {
        skip = 2;
    }
    for (size_t i = 0; i < TD_ARRAY_LEN(keywords); i++) {
        if (!strcmp(t[0].s, keywords[i].kw))
            return keywords[i].parse(p, t + skip, n - skip);
    }
    return perr(p,
                "unknown keyword '%s' (expected version, tiers, confidence, "
                "reasons, window, deep, severe, dimension, signal or "
                "rule)",
                t[0].s);
}

/*
 * Number writers for reasons. snprintf("%g") costs most of a microsecond,
 * and a score carries up to five reasons with three numbers each, so the
 * hot path writes numbers itself. Each writes at most NUM_MAX - 1 bytes,
 * no NUL.
 */

/* v with `dec` decimals, 0 <= dec <= 6, |v| < 1e12. */
static char *put_fixed(char *p, double v, int dec) {
    static const double scale[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};
    char digits[24];
    int nd = 0;
    unsigned long long x;

    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    x = (unsigned long long)llround(v * scale[dec]);
    do {
        digits[nd++] = (char)('0' + x % 10);
        x /= 10;
    } while (x || nd <= dec);
    while (nd > dec)
        *p++ = digits[--nd];
    if (dec) {
        *p++ = '.';
        while (nd)
            *p++ = digits[--nd];
    }
    return p;
}

/* About three significant digits, trailing zeros dropped: 0.18, 0.0417,
 * 4.26, 45.8, 1234. */
static char *put_num(char *p, double v) {
    char *q;
    int dec;

    if (v == 0) {
        *p++ = '0';
        return p;
    }
    if (!(fabs(v) < 1e12)) return p + snprintf(p, NUM_MAX, "%.3g", v);
    dec = 2 - (int)floor(log10(fabs(v)));
    dec = dec < 0 ? 0 : dec > 6 ? 6 : dec;
    q = put_fixed(p, v, dec);
    if (dec) {
        /* The integer part always has a digit, so this stops at '.'. */
        while (q[-1] == '0')
            q--;
        if (q[-1] == '.') {
            q--;
        }
    }
    return q;
}

static int tier_of(const td_model_t *m, double score) {
    for (int i = 0; i < TIER_CNT - 1; i++) {
        if (score >= m->tiers[i]) return i + 1;
    }
    return TIER_CNT;
}

static double sub_score(const ind_t *ind, double x) {
    double s = (ind->bad - x) * ind->slope;
    return s < 0 ? 0 : s > 100 ? 100 : s;
}

/* Whole-model checks once every line is read; p->line is the last line. */
static int finish(parser_t *p) {
    td_model_t *m = p->m;
    double wsum = 0;

    if (!p->version_line)
        return perr(p, "end of file without a 'version' line");
    if (!p->tiers_line) return perr(p, "end of file without a 'tiers' line");
    if (!p->conf_line)
        return perr(p, "end of file without a 'confidence' line");
    if (m->ndim == 0)
        return perr(p, "end of file without any 'dimension' line");
    for (int d = 0; d < m->ndim; d++) {
        double isum = 0;
        int cnt = 0;
        for (int i = 0; i < m->nind; i++) {
            if (m->inds[i].dim == d) {
                isum += m->inds[i].weight;
                cnt++;
            }
        }
        p->line = m->dims[d].line;
        if (cnt == 0)
            return perr(p, "dimension '%s' has no signal lines",
                        m->dims[d].name);
        if (fabs(isum - 1) > WEIGHT_EPS)
            return perr(p,
                        "weights of the signals of dimension '%s' sum to "
                        "%.6g, not 1",
                        m->dims[d].name, isum);
        wsum += m->dims[d].weight;
    }
    if (fabs(wsum - 1) > WEIGHT_EPS)
        return perr(p, "dimension weights sum to %.6g, not 1", wsum);
    for (int r = 0; r < m->nrule; r++) {
        const rule_t *ru = &m->rules[r];
        p->line = ru->line;
        if (tier_of(m, ru->cap_score) < ru->cap_tier)
            return perr(p,
                        "cap_score %g is in tier %d, better than cap_tier %d",
                        ru->cap_score, tier_of(m, ru->cap_score), ru->cap_tier);
    }
    for (int i = 0; i < m->nind; i++) {
        p->line = m->inds[i].line;
        if (m->inds[i].has_long && !m->has_window)
            return perr(p, "long_numerator without a 'window' line");
    }
    m->prior_score = 0;
    for (int i = 0; i < m->nind; i++) {
        ind_t *ind = &m->inds[i];
        ind->slope = 100 / (ind->bad - ind->good);
        ind->eff = m->dims[ind->dim].weight * ind->weight;
        ind->sub_prior = sub_score(ind, ind->prior);
        ind->deep = m->deep_floor > 0 &&
                    td_signals[ind->sig].agg == TD_AGG_RATIO &&
                    !td_signals[ind->sig].higher_better;
        m->prior_score += ind->eff * ind->sub_prior;
        /* The constant parts of its reasons, written once. */
        char num[NUM_MAX];
        snprintf(ind->head, sizeof(ind->head), "%s ",
                 td_signals[ind->sig].name);
        *put_num(num, ind->prior) = '\0';
        snprintf(ind->tail, sizeof(ind->tail), " (prior %s) ", num);
        ind->head_len = (unsigned char)strlen(ind->head);
        ind->tail_len = (unsigned char)strlen(ind->tail);
    }
    return TD_OK;
}

td_model_t *td_model_load_string(const char *name,
                                 const char *text,
                                 char *errstr,
                                 size_t errstr_size) {
    parser_t p;
    const char *s = text;

    memset(&p, 0, sizeof(p));
    p.name = name;
    p.errstr = errstr;
    p.errstr_size = errstr_size;
    if (!(p.m = calloc(1, sizeof(*p.m)))) {
        perr(&p, "out of memory");
        return NULL;
    }
    p.m->reason_min = 0.1;
    while (*s) {
        char line[LINE_MAX_LEN];
        size_t len = strcspn(s, "\n");

        p.line++;
        if (len >= sizeof(line)) {
            perr(&p, "line longer than %d bytes", LINE_MAX_LEN - 1);
            goto err;
        }
        memcpy(line, s, len);
        line[len] = '\0';
        s += len + (s[len] == '\n');
        if (len && line[len - 1] == '\r') {
            line[--len] = '\0';
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)line[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                perr(&p, "control character 0x%02x", c);
                goto err;
            }
        }
        if (parse_line(&p, line) < 0) goto err;
    }
    if (finish(&p) != TD_OK) goto err;
    return p.m;
err:
    free(p.m);
    return NULL;
}

td_model_t *td_model_load(const char *path, char *errstr, size_t errstr_size) {
    FILE *fp = fopen(path, "rb");
    td_model_t *m = NULL;
    char *buf = NULL;
    size_t len;

    if (!fp) {
        snprintf(errstr, errstr_size, "%s: cannot open model file: %s", path,
                 strerror(errno));
        return NULL;
    }
    if (!(buf = malloc(FILE_MAX + 1))) {
        snprintf(errstr, errstr_size, "%s: out of memory", path);
        goto err;
    }
    len = fread(buf, 1, FILE_MAX + 1, fp);
    if (ferror(fp)) {
        snprintf(errstr, errstr_size, "%s: read error", path);
        goto err;
    }
    if (len > FILE_MAX) {
        snprintf(errstr, errstr_size, "%s: larger than %d bytes", path,
                 FILE_MAX);
        goto err;
    }
    if (memchr(buf, '\0', len)) {
        snprintf(errstr, errstr_size, "%s: contains a NUL byte", path);
        goto err;
    }
    buf[len] = '\0';
    m = td_model_load_string(path, buf, errstr, errstr_size);
err:
    free(buf);
    fclose(fp);
    return m;
}

void td_model_destroy(td_model_t *m) {
    free(m);
}

const char *td_model_version(const td_model_t *m) {
    return m->version;
}

int td_model_signal_prior(const td_model_t *m,
                          int sig,
                          double *prior,
                          const char **dim) {
    for (int i = 0; i < m->nind; i++) {
        if ((int)m->inds[i].sig != sig) continue;
        *prior = m->inds[i].prior;
        if (dim) *dim = m->dims[m->inds[i].dim].name;
        return 1;
    }
    return 0;
}

const char *td_model_reason_zh(const td_model_t *m, const char *reason) {
    for (int i = 0; i < m->nrule; i++) {
        if (!strcmp(m->rules[i].reason, reason))
            return *m->rules[i].reason_zh ? m->rules[i].reason_zh : NULL;
    }
    return NULL;
}

double td_model_prior_score(const td_model_t *m) {
    return m->prior_score;
}

/* ---- Scoring ---- */

/* A base count or sum as the model reads it: absent, negative or not
 * finite (a damaged hash) counts as 0. */
static inline double base_val(const td_sigstate_t *s, td_signal_id_t i) {
    double v = s->v[i];
    return s->present[i] && v > 0 && v < INFINITY ? v : 0;
}

/* k and n of each indicator, as the score read them. */
typedef struct evidence_s {
    double k[TD_MODEL_MAX_SIGNALS];
    double n[TD_MODEL_MAX_SIGNALS];
    double sev_k; /* k summed over the severe line, */
    double sev_n; /* n of its `per` indicator */
} evidence_t;

static int
rule_applies(const rule_t *r, const td_sigstate_t *s, const evidence_t *ev) {
    for (int c = 0; c < r->ncond; c++) {
        const cond_t *cd = &r->conds[c];
        double v;

        if (cd->what == COND_COUNT) {
            v = ev->k[cd->ind];
        } else if (cd->what == COND_SEV_COUNT) {
            v = ev->sev_k;
        } else if (cd->what == COND_SEV_RATE) {
            if (!(ev->sev_n > 0)) return 0;
            v = ev->sev_k / ev->sev_n;
        } else if (cd->what == COND_RATE) {
            /* No denominator is no evidence: the condition fails. */
            if (!(ev->n[cd->ind] > 0)) return 0;
            v = ev->k[cd->ind] / ev->n[cd->ind];
        } else if (cd->sig < TD_SIG_BASE_CNT) {
            v = s->present[cd->sig] ? s->v[cd->sig] : 0;
        } else {
            /* An absent derived value (no denominator, no timestamp) is
             * no evidence: the condition does not hold. */
            if (!s->present[cd->sig]) return 0;
            v = s->v[cd->sig];
        }
        if (!(cd->le ? v <= cd->x : v >= cd->x)) return 0;
    }
    return 1;
}

/* Share of the small merchants' window: 1 at or below `small` paid
 * orders (or whatever the window signal counts), 0 at or above `large`,
 * linear in between. Volume is not a bad event, so the score stays
 * monotone in those. */
static double long_share(const td_model_t *m, const td_sigstate_t *s) {
    double v;

    if (!m->has_window) return 0;
    v = base_val(s, m->win_sig);
    if (v <= m->win_small) return 1;
    if (v >= m->win_large) return 0;
    return (m->win_large - v) / (m->win_large - m->win_small);
}

/* "refund_rate_30d 0.18 n=120 (prior 0.06) -7.2 pts": the observed value
 * (raw k / n), its volume, the prior and the points it costs against a
 * merchant at the prior. */
static void
ind_reason(const ind_t *ind, double k, double n, double pts, char *out) {
    /* head + 3 numbers + tail + fixed words always fit here. */
    char buf[2 * HEAD_MAX + 3 * NUM_MAX + 16], *p = buf;
    size_t len;

    memcpy(p, ind->head, ind->head_len);
    p += ind->head_len;
    if (n > 0) {
        p = put_num(p, k / n);
    } else {
        *p++ = '-';
    }
    memcpy(p, " n=", 3);
    p += 3;
    p = n < 1e12 ? put_fixed(p, n, n < 10 ? 1 : 0) : put_num(p, n);
    memcpy(p, ind->tail, ind->tail_len);
    p += ind->tail_len;
    p = put_fixed(p, fmax(pts, -1e6), 1);
    memcpy(p, " pts", 4);
    p += 4;
    len = (size_t)(p - buf);
    if (len >= TD_SCORE_REASON_MAX) {
        len = TD_SCORE_REASON_MAX - 1;
    }
    memcpy(out, buf, len);
    out[len] = '\0';
}

void td_model_score(const td_model_t *m,
                    const td_sigstate_t *s,
                    td_score_rec_t *out) {
    double dsum[TD_SCORE_MAX_DIMS] = {0};
    double pts[TD_MODEL_MAX_SIGNALS];
    unsigned char applied[TD_MODEL_MAX_RULES];
    double score = 0, cap = 100, n, a = long_share(m, s);
    int tier_cap = 1, nr = 0, ncand = 0, rule_slots;
    evidence_t ev;

    ev.sev_k = 0;

    for (int i = 0; i < m->nind; i++) {
        const ind_t *ind = &m->inds[i];
        double k = base_val(s, ind->num), nn = base_val(s, ind->den);
        if (ind->has_long && a > 0) {
            /* The window adapts to volume: a small merchant is judged on
             * 90 days, a large one on 30, as eBay does. Every event
             * weighs at least as much in the long window, so a long count
             * below the short one is a state from before the long
             * signals existed: read the short one then. */
            k = (1 - a) * k + a * fmax(base_val(s, ind->lnum), k);
            nn = (1 - a) * nn + a * fmax(base_val(s, ind->lden), nn);
        }
        double x = (k + ind->prior * ind->strength) / (nn + ind->strength);
        double sub = sub_score(ind, x);
        if (ind->deep && sub <= 0 && k > m->deep_count) {
            /* Past `bad`, confirmed evidence keeps counting: see the
             * deep line. Both bounds fall with k and rise with n. */
            double raw = (ind->bad - x) * ind->slope;
            double lim = -m->deep_floor * fmin(1, k - m->deep_count);
            sub = fmax(raw, lim);
        }

        ev.k[i] = k;
        ev.n[i] = nn;
        if (m->severe[i]) {
            ev.sev_k += k;
        }
        dsum[ind->dim] += ind->weight * sub;
        pts[i] = ind->eff * (sub - ind->sub_prior);
    }
    ev.sev_n = m->nsevere ? ev.n[m->severe_per] : 0;
    out->dim_cnt = m->ndim;
    for (int d = 0; d < m->ndim; d++) {
        out->dim_names[d] = m->dims[d].name;
        /* Deep sub-scores rank merchants inside a dimension; the
         * dimension itself stays on the published 0..100 scale. */
        out->dims[d] = dsum[d] < 0 ? 0 : dsum[d];
        score += m->dims[d].weight * out->dims[d];
    }
    score = score < 0 ? 0 : score > 100 ? 100 : score;

    for (int r = 0; r < m->nrule; r++) {
        const rule_t *ru = &m->rules[r];
        applied[r] = (unsigned char)rule_applies(ru, s, &ev);
        if (!applied[r]) continue;
        double lo = ru->cap_tier < TIER_CNT ? m->tiers[ru->cap_tier - 1] : 0;
        double c = lo + (ru->cap_score - lo) * score / 100;
        if (c < cap) {
            cap = c;
        }
        if (ru->cap_tier > tier_cap) {
            tier_cap = ru->cap_tier;
        }
    }
    if (score > cap) {
        score = cap;
    }
    out->score = score;
    out->tier = tier_of(m, score);
    if (out->tier < tier_cap) {
        out->tier = tier_cap;
    }

    n = base_val(s, m->conf_sig);
    out->confidence = n / (n + m->conf_half);

    /* Reasons: the applied rules first, the most binding cap first (file
     * order among equals), then the indicators that cost the most points
     * against a merchant at the prior. Rules leave up to IND_REASONS_MIN
     * slots to indicators, so a capped merchant still sees what drags its
     * score down. */
    for (int i = 0; i < m->nind; i++) {
        if (pts[i] < 0 && pts[i] <= -m->reason_min) {
            ncand++;
        }
    }
    rule_slots = TD_SCORE_MAX_REASONS -
                 (ncand < IND_REASONS_MIN ? ncand : IND_REASONS_MIN);
    while (nr < rule_slots) {
        int best = -1;
        for (int r = 0; r < m->nrule; r++) {
            if (applied[r] &&
                (best < 0 || m->rules[r].cap_score < m->rules[best].cap_score))
                best = r;
        }
        if (best < 0) break;
        memcpy(out->reasons[nr++], m->rules[best].reason,
               m->rules[best].reason_len + 1);
        applied[best] = 0; /* taken */
    }
    while (nr < TD_SCORE_MAX_REASONS) {
        int best = -1;
        for (int i = 0; i < m->nind; i++) {
            if (pts[i] < 0 && pts[i] <= -m->reason_min &&
                (best < 0 || pts[i] < pts[best]))
                best = i;
        }
        if (best < 0) break;
        ind_reason(&m->inds[best], ev.k[best], ev.n[best], pts[best],
                   out->reasons[nr++]);
        pts[best] = 0; /* taken */
    }
    out->reason_cnt = nr;
    out->model_version = m->version;
    out->as_of_ms = s->as_of;
}
