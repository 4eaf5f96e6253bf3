/*
 * signals.c - the signal catalog expanded: descriptors, per-event folding,
 * delta merging, derived values, the signal names for the Redis library and
 * the reference page. See signals.h for the time semantics.
 *
 * Everything that lists signals is generated from signals.def, so the C
 * fold, the C merge (used by tests and tools), the Redis merge and the
 * documentation cannot drift apart.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "mstate.h"
#include "signals.h"

/* Helpers usable in signals.def conditions and values; `e` is the event. */
#define EVENT_TIME      ((double)e->event_time)
#define ORDER_IS(s)     (e->u.order.status == TD_ORDER_##s)
#define CANCELLED_BY(x) (e->u.order.cancelled_by == TD_CANCEL_##x)
#define CHANNEL_IS(x)   (e->u.order.channel == TD_CHANNEL_##x)
#define SHIPPED_LATE                                                           \
    (e->u.order.promised_ship_by != TD_NULL_TS &&                              \
     e->event_time > e->u.order.promised_ship_by)
#define DELIVERED_LATE                                                         \
    (e->u.order.promised_delivery_by != TD_NULL_TS &&                          \
     e->event_time > e->u.order.promised_delivery_by)
#define TRACKING_VALID (e->u.order.tracking_valid == 1)
#define HAS_PAID_AT    (e->u.order.paid_at != TD_NULL_TS)
#define HAS_SHIPPED_AT (e->u.order.shipped_at != TD_NULL_TS)
/* Hours from an order timestamp to the event (0 if the clocks disagree).
 * In double: the contract allows any timestamp, and the int64 difference
 * of two far-apart ones overflows. */
#define HOURS_SINCE(f)                                                         \
    fmax(0.0, ((double)e->event_time - (double)e->u.order.f) / 3600000.0)
#define BUYER_SEQ    (e->u.order.buyer_order_seq)
#define NOT_FLAGGED  (!e->u.review.flagged)
#define RATING       ((double)e->u.review.rating)
#define DIM_SET(f)   (e->u.review.f != TD_NULL_INT)
#define DIM(f)       ((double)e->u.review.f)
#define REFUND_IS(s) (e->u.refund.status == TD_REFUND_##s)
#define REASON_IS(x) (e->u.refund.reason == TD_REASON_##x)
#define MERCHANT_FAULT_REASON                                                  \
    (REASON_IS(QUALITY) || REASON_IS(NOT_AS_DESCRIBED) ||                      \
     REASON_IS(COUNTERFEIT))
#define LOGISTICS_REASON                                                       \
    (REASON_IS(NOT_RECEIVED) || REASON_IS(DAMAGED) || REASON_IS(LATE_DELIVERY))
#define RESOLVED         (REFUND_IS(COMPLETED) || REFUND_IS(REJECTED))
#define HAS_REQUESTED_AT (e->u.refund.requested_at != TD_NULL_TS)
#define HOURS_SINCE_REQUEST                                                    \
    fmax(0.0, ((double)e->event_time - (double)e->u.refund.requested_at) /     \
                  3600000.0)
#define ARBITRATION_LOST                                                       \
    (REFUND_IS(ARBITRATED) && e->u.refund.responsible == TD_RESP_MERCHANT)
#define KIND_IS(x)   (e->u.refund.kind == TD_KIND_##x)
#define WAS_REJECTED (e->u.refund.was_rejected == 1)

/*
 * What each helper above means, for the reference page. Keep it next to the
 * macros: a helper used in signals.def without a line here fails
 * tests/test_reference.c.
 */
/* clang-format off */
static const struct {
    const char *name;
    const char *meaning;
} helpers[] = {
    {"EVENT_TIME", "the event's `event_time` (ms since the epoch, UTC)"},
    {"AMOUNT", "`amount_cents` of the order or refund"},
    {"ORDER_IS(s)", "order `status` is `s`: CREATED, PAID, SHIPPED, DELIVERED, COMPLETED, CANCELLED"},
    {"CANCELLED_BY(x)", "`cancelled_by` is `x`: BUYER, MERCHANT, PLATFORM"},
    {"CHANNEL_IS(x)", "`channel` is `x`: LIVE, SHORT_VIDEO, SHELF"},
    {"SHIPPED_LATE", "`promised_ship_by` is set and `event_time` is after it"},
    {"DELIVERED_LATE", "`promised_delivery_by` is set and `event_time` is after it"},
    {"TRACKING_VALID", "`tracking_valid` is true (false and null are not)"},
    {"HAS_PAID_AT", "`paid_at` is set (order schema v2)"},
    {"HAS_SHIPPED_AT", "`shipped_at` is set (order schema v2)"},
    {"HOURS_SINCE(f)", "hours from timestamp `f` to `event_time`; 0 if `f` is later (clocks disagree)"},
    {"BUYER_SEQ", "`buyer_order_seq`: the buyer's n-th order at this merchant, 0 unknown"},
    {"NOT_FLAGGED", "the review is not `flagged` as suspected fake"},
    {"RATING", "the review's `rating`, 1..5"},
    {"DIM_SET(f)", "the dimension rating `f` (quality, value, service, logistics) is set"},
    {"DIM(f)", "the dimension rating `f`, 1..5"},
    {"REFUND_IS(s)", "refund `status` is `s`: REQUESTED, APPROVED, REJECTED, COMPLETED, ESCALATED, ARBITRATED"},
    {"REASON_IS(x)", "`reason` is `x`: NO_REASON_7D, QUALITY, NOT_AS_DESCRIBED, COUNTERFEIT, NOT_RECEIVED, DAMAGED, LATE_DELIVERY, OTHER"},
    {"KIND_IS(x)", "refund `kind` is `x`: REFUND_ONLY, RETURN_AND_REFUND"},
    {"MERCHANT_FAULT_REASON", "`reason` is QUALITY, NOT_AS_DESCRIBED or COUNTERFEIT"},
    {"LOGISTICS_REASON", "`reason` is NOT_RECEIVED, DAMAGED or LATE_DELIVERY"},
    {"RESOLVED", "refund `status` is COMPLETED or REJECTED"},
    {"HAS_REQUESTED_AT", "`requested_at` is set (refund schema v2)"},
    {"HOURS_SINCE_REQUEST", "hours from `requested_at` to `event_time`; 0 if `requested_at` is later"},
    {"ARBITRATION_LOST", "status ARBITRATED with `responsible` MERCHANT: the platform ruled against the merchant"},
    {"WAS_REJECTED", "`was_rejected`: the merchant had rejected this refund before"},
};
/* clang-format on */

/* How values are written to the signals hash (td_fmt_g10, proto.c), as
 * the reference page says. The exact merge state is the packed
 * `trust:{m}:state` (mstate.h); 10 digits keep the hash, together with
 * it, within the 4 KB budget. */
#define FMT_SIGNAL "%.10g"

/* Window index for per-event decay factors. */
enum { W_LIFE = 0, W_D1, W_D7, W_D30, W_D90, W__CNT };
#define WIDX_LIFE W_LIFE
#define WIDX_D1   W_D1
#define WIDX_D7   W_D7
#define WIDX_D30  W_D30
#define WIDX_D90  W_D90
static const double win_ms[W__CNT] = {0, TD_WIN_D1, TD_WIN_D7, TD_WIN_D30,
                                      TD_WIN_D90};

#define UP   1
#define DOWN 0
#define NONE TD_SIG__CNT

/* clang-format off */
const td_signal_t td_signals[TD_SIG__CNT] = {
#define TD_SIG_ORDER(name, cat, agg, win, cond, val, unit, dir, meaning)      \
    [TD_SIG_##name] = {#name, sizeof(#name) - 1, TD_CAT_##cat,                \
                       TD_AGG_##agg, TD_WIN_##win,                             \
                       TD_EV_ORDER, TD_SLOT_O_##name, #cond, #val, NONE, NONE, \
                       0, unit, dir, meaning},
#define TD_SIG_REVIEW(name, cat, agg, win, cond, val, unit, dir, meaning)     \
    [TD_SIG_##name] = {#name, sizeof(#name) - 1, TD_CAT_##cat,                \
                       TD_AGG_##agg, TD_WIN_##win,                             \
                       TD_EV_REVIEW, TD_SLOT_V_##name, #cond, #val, NONE, NONE,\
                       0, unit, dir, meaning},
#define TD_SIG_REFUND(name, cat, agg, win, cond, val, unit, dir, meaning)     \
    [TD_SIG_##name] = {#name, sizeof(#name) - 1, TD_CAT_##cat,                \
                       TD_AGG_##agg, TD_WIN_##win,                             \
                       TD_EV_REFUND, TD_SLOT_R_##name, #cond, #val, NONE, NONE,\
                       0, unit, dir, meaning},
#define TD_SIG_DERIVED(name, cat, op, win, a, b, k, unit, dir, meaning)       \
    [TD_SIG_##name] = {#name, sizeof(#name) - 1, TD_CAT_##cat,                \
                       TD_AGG_##op, TD_WIN_##win, -1, -1,                      \
                       "", "", TD_SIG_##a, TD_SIG_##b, k, unit, dir, meaning},
#include "signals.def"
};

/* Per-slot aggregation and window index of each source kind. */
static const unsigned char order_agg[TD_SLOT_O__CNT + 1] = {
#define TD_SIG_ORDER(name, cat, agg, ...) TD_AGG_##agg,
#include "signals.def"
};
static const unsigned char order_win[TD_SLOT_O__CNT + 1] = {
#define TD_SIG_ORDER(name, cat, agg, win, ...) WIDX_##win,
#include "signals.def"
};
static const unsigned char review_agg[TD_SLOT_V__CNT + 1] = {
#define TD_SIG_REVIEW(name, cat, agg, ...) TD_AGG_##agg,
#include "signals.def"
};
static const unsigned char review_win[TD_SLOT_V__CNT + 1] = {
#define TD_SIG_REVIEW(name, cat, agg, win, ...) WIDX_##win,
#include "signals.def"
};
static const unsigned char refund_agg[TD_SLOT_R__CNT + 1] = {
#define TD_SIG_REFUND(name, cat, agg, ...) TD_AGG_##agg,
#include "signals.def"
};
static const unsigned char refund_win[TD_SLOT_R__CNT + 1] = {
#define TD_SIG_REFUND(name, cat, agg, win, ...) WIDX_##win,
#include "signals.def"
};
/* clang-format on */

static const struct {
    int first; /* global id of slot 0 */
    int cnt;
    const unsigned char *agg;
    const unsigned char *win;
} kinds[TD_EV__CNT] = {
    [TD_EV_ORDER] = {0, TD_SLOT_O__CNT, order_agg, order_win},
    [TD_EV_REVIEW] = {TD_SLOT_O__CNT, TD_SLOT_V__CNT, review_agg, review_win},
    [TD_EV_REFUND] = {TD_SLOT_O__CNT + TD_SLOT_V__CNT, TD_SLOT_R__CNT,
                      refund_agg, refund_win},
};

static const char *category_names[TD_CAT__CNT] = {"fulfillment",
                                                  "logistics",
                                                  "product quality",
                                                  "after-sales service",
                                                  "disputes and counterfeit",
                                                  "buyer loyalty",
                                                  "volume and stability",
                                                  "channel mix",
                                                  "risk"};

static const char *agg_names[TD_AGG__CNT] = {
    "count", "sum",     "latest (max)", "first (min)",
    "ratio", "average", "trend",        "age"};

const char *td_category_name(td_category_t c) {
    return (unsigned)c < TD_CAT__CNT ? category_names[c] : "?";
}

const char *td_agg_name(td_agg_t a) {
    return (unsigned)a < TD_AGG__CNT ? agg_names[a] : "?";
}

const char *td_window_name(int64_t window_ms) {
    switch (window_ms) {
    case TD_WIN_D1:
        return "1d";
    case TD_WIN_D7:
        return "7d";
    case TD_WIN_D30:
        return "30d";
    case TD_WIN_D90:
        return "90d";
    default:
        return "lifetime";
    }
}

int td_signal_by_name(const char *name) {
    for (int i = 0; i < TD_SIG__CNT; i++) {
        if (!strcmp(td_signals[i].name, name)) return i;
    }
    return -1;
}

int td_signals_slot_cnt(td_event_kind_t kind) {
    return kinds[kind].cnt;
}

td_signal_id_t td_signals_slot_sig(td_event_kind_t kind, int slot) {
    return (td_signal_id_t)(kinds[kind].first + slot);
}

static int agg_is_sum(int agg) {
    return agg == TD_AGG_COUNT || agg == TD_AGG_SUM;
}

void td_sigdelta_init(td_sigdelta_t *d, td_event_kind_t kind) {
    d->as_of = TD_NULL_TS;
    d->kind = kind;
    d->events = 0;
    for (int i = 0; i < kinds[kind].cnt; i++) {
        switch (kinds[kind].agg[i]) {
        case TD_AGG_MAX:
            d->v[i] = -INFINITY;
            break;
        case TD_AGG_MIN:
            d->v[i] = INFINITY;
            break;
        default:
            d->v[i] = 0;
        }
    }
}

int td_sigdelta_slot_set(const td_sigdelta_t *d, int slot) {
    return isfinite(d->v[slot]) && d->v[slot] != 0;
}

/* Folds value x into slot i with decay factor f (1 for lifetime). */
static inline void fold(td_sigdelta_t *d, int i, int agg, double f, double x) {
    switch (agg) {
    case TD_AGG_MAX:
        if (x > d->v[i]) d->v[i] = x;
        break;
    case TD_AGG_MIN:
        if (x < d->v[i]) d->v[i] = x;
        break;
    default:
        d->v[i] += x * f;
    }
}

/* Rebases the delta's windowed sums to a later as_of. */
static void rebase(td_sigdelta_t *d, int64_t as_of) {
    double f[W__CNT];
    double dt = (double)(as_of - d->as_of);

    f[W_LIFE] = 1;
    for (int w = 1; w < W__CNT; w++)
        f[w] = exp(-dt / win_ms[w]);
    for (int i = 0; i < kinds[d->kind].cnt; i++) {
        if (agg_is_sum(kinds[d->kind].agg[i]))
            d->v[i] *= f[kinds[d->kind].win[i]];
    }
    d->as_of = as_of;
}

void td_sigdelta_add(td_sigdelta_t *d, const td_event_t *e) {
    double f[W__CNT] = {1, 1, 1, 1, 1};

    if (d->events == 0 || e->event_time > d->as_of) {
        if (d->events == 0)
            d->as_of = e->event_time;
        else
            rebase(d, e->event_time);
    } else if (e->event_time < d->as_of) {
        /* A late event: weight it by its age relative to as_of. */
        double dt = (double)(d->as_of - e->event_time);
        for (int w = 1; w < W__CNT; w++)
            f[w] = exp(-dt / win_ms[w]);
    }
    d->events++;

    /* clang-format off */
    switch (e->kind) {
    case TD_EV_ORDER:
#define AMOUNT ((double)e->u.order.amount_cents)
#define TD_SIG_ORDER(name, cat, agg, win, cond, val, ...)                     \
        if (cond)                                                              \
            fold(d, TD_SLOT_O_##name, TD_AGG_##agg, f[WIDX_##win], (val));
#include "signals.def"
#undef AMOUNT
        break;
    case TD_EV_REVIEW:
#define TD_SIG_REVIEW(name, cat, agg, win, cond, val, ...)                    \
        if (cond)                                                              \
            fold(d, TD_SLOT_V_##name, TD_AGG_##agg, f[WIDX_##win], (val));
#include "signals.def"
        break;
    case TD_EV_REFUND:
#define AMOUNT ((double)e->u.refund.amount_cents)
#define TD_SIG_REFUND(name, cat, agg, win, cond, val, ...)                    \
        if (cond)                                                              \
            fold(d, TD_SLOT_R_##name, TD_AGG_##agg, f[WIDX_##win], (val));
#include "signals.def"
#undef AMOUNT
        break;
    default:
        break;
    }
    /* clang-format on */
}

void td_sigstate_init(td_sigstate_t *s) {
    s->as_of = TD_NULL_TS;
    for (int i = 0; i < TD_SIG__CNT; i++) {
        s->v[i] = 0;
        s->present[i] = 0;
    }
}

void td_sigstate_derive(td_sigstate_t *s) {
    for (int i = TD_SIG_BASE_CNT; i < TD_SIG__CNT; i++) {
        const td_signal_t *sg = &td_signals[i];
        /* An absent base signal is 0; a ratio needs a non-zero
         * denominator, an age needs its timestamp. */
        double a = s->present[sg->a] ? s->v[sg->a] : 0;
        double b = s->present[sg->b] ? s->v[sg->b] : 0;
        int ok = sg->agg == TD_AGG_AGE ? s->present[sg->a] : b != 0;

        s->present[i] = (unsigned char)ok;
        if (!ok) {
            s->v[i] = 0;
            continue;
        }
        switch (sg->agg) {
        case TD_AGG_TREND:
            s->v[i] = a / b * sg->k;
            break;
        case TD_AGG_AGE:
            s->v[i] = ((double)s->as_of - a) / sg->k;
            break;
        default:
            s->v[i] = a / b;
        }
    }
}

/* Moves every windowed value of s from its as_of to the later `now`. */
static void decay_to(td_sigstate_t *s, int64_t now) {
    for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
        const td_signal_t *sg = &td_signals[i];
        if (agg_is_sum(sg->agg) && sg->window_ms != TD_WIN_LIFE)
            s->v[i] *= exp(-(double)(now - s->as_of) / sg->window_ms);
    }
}

void td_sigstate_age(td_sigstate_t *s, int64_t now) {
    if (s->as_of == TD_NULL_TS || now <= s->as_of) return;
    decay_to(s, now);
    s->as_of = now;
    td_sigstate_derive(s);
}

void td_sigstate_merge(td_sigstate_t *s, const td_sigdelta_t *d) {
    int64_t t = s->as_of;

    if (d->events == 0) return;
    if (t == TD_NULL_TS || d->as_of > t) {
        if (t != TD_NULL_TS) decay_to(s, d->as_of);
        t = d->as_of;
    }
    for (int slot = 0; slot < kinds[d->kind].cnt; slot++) {
        int i = kinds[d->kind].first + slot;
        const td_signal_t *sg = &td_signals[i];
        double x = d->v[slot];

        if (!td_sigdelta_slot_set(d, slot)) continue;
        if (sg->agg == TD_AGG_MAX) {
            if (!s->present[i] || x > s->v[i]) s->v[i] = x;
            s->present[i] = 1;
        } else if (sg->agg == TD_AGG_MIN) {
            if (!s->present[i] || x < s->v[i]) s->v[i] = x;
            s->present[i] = 1;
        } else if (sg->window_ms == TD_WIN_LIFE) {
            s->v[i] += x;
            s->present[i] = 1;
        } else {
            s->v[i] += x * exp(-(double)(t - d->as_of) / sg->window_ms);
            s->present[i] = 1;
        }
    }
    s->as_of = t;
    td_sigstate_derive(s);
}

/* Appends formatted text to a fixed buffer; tracks overflow in *len. */
static void emit(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void emit(char *buf, size_t size, size_t *len, const char *fmt, ...) {
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(*len < size ? buf + *len : NULL,
                  *len < size ? size - *len : 0, fmt, ap);
    va_end(ap);
    if (n > 0) *len += (size_t)n;
}

/*
 * The catalog's part of the Redis function library: BN, the base signal
 * names in catalog order, which td_load reads from the signals hash when a
 * merchant has no packed state of this catalog (store.c).
 */
int td_signals_lua(char *buf, size_t size) {
    size_t len = 0;

    emit(buf, size, &len, "local BN = {");
    for (int i = 0; i < TD_SIG_BASE_CNT; i++)
        emit(buf, size, &len, "%s'%s'", i ? "," : "", td_signals[i].name);
    emit(buf, size, &len, "}\n");
    if (len >= size) return -1;
    return (int)len;
}

/* ---- the reference page (schemas/signals.md) ---- */

static const char *const source_names[TD_EV__CNT] = {"order", "review",
                                                     "refund"};

/* Writes text for a markdown table cell: a `|` would end the cell. */
static void md_cell(FILE *fp, const char *text) {
    for (const char *p = text; *p; p++) {
        if (*p == '|') fputc('\\', fp);
        fputc(*p, fp);
    }
}

static void ref_intro(FILE *fp) {
    fprintf(fp,
            "# Signal reference\n"
            "\n"
            "Generated from `processor/signals.def` by `build/trustctl "
            "reference > schemas/signals.md`. `tests/test_reference.c` (`make "
            "unit`) fails when this file differs from what the build writes: "
            "edit the catalog, never this file.\n"
            "\n"
            "%d signals (%d base, %d derived) per merchant, in %d categories. "
            "Sections: [how to read a signal](#how-to-read-a-signal), "
            "[Redis layout](#redis-layout), "
            "[distinct and repeat buyers](#distinct-and-repeat-buyers), "
            "[memory per merchant](#memory-per-merchant), "
            "[condition helpers](#condition-helpers), then the signals by "
            "category:",
            TD_SIG__CNT, TD_SIG_BASE_CNT, TD_SIG__CNT - TD_SIG_BASE_CNT,
            TD_CAT__CNT);
    for (int c = 0; c < TD_CAT__CNT; c++) {
        char anchor[64];
        const char *name = td_category_name((td_category_t)c);
        size_t j = 0;
        for (const char *p = name; *p && j + 1 < sizeof(anchor); p++)
            anchor[j++] = *p == ' ' ? '-' : *p;
        anchor[j] = '\0';
        fprintf(fp, "%s [%s](#%s)", c ? "," : "", name, anchor);
    }
    fprintf(fp, ".\n\n");
}

static void ref_reading(FILE *fp) {
    fprintf(
        fp,
        "## How to read a signal\n"
        "\n"
        "Every signal is one field of the merchant's hash "
        "`trust:{<merchant_id>}:signals`, named as in the tables below, "
        "next to `as_of_ms`: the largest `event_time` applied for the "
        "merchant, from any topic.\n"
        "\n"
        "- **Windowed** (window 1d, 7d, 30d or 90d) counts and sums decay "
        "exponentially on event time: `V = sum(w_i * exp(-(T - t_i) / W))` "
        "over the events that meet the condition, with `w_i` 1 for a count "
        "or the event's value for a sum, `t_i` its `event_time` and `T` the "
        "merchant's `as_of_ms`. For a steady rate this equals the plain "
        "count over the last `W`. An event `W` old weighs 0.37, one `3W` "
        "old 0.05. The result does not depend on the order events arrive "
        "in or on how they are split across partitions: a late event is "
        "added with the weight of its own `event_time`.\n"
        "- **Lifetime** counts are plain counts of every event ever, "
        "however old.\n"
        "- **first (min)** and **latest (max)** keep the smallest or largest "
        "value of the matching events (timestamps, in ms).\n"
        "- **ratio** and **average** are `a / b` of two base signals of the "
        "same window, so they are decayed ratios. **trend** is "
        "`(a / b) * k`, scaled so that a steady rate gives 1. **age** is "
        "`(as_of_ms - a) / k`, in days.\n"
        "\n"
        "Windowed values are expressed at `as_of_ms`, not at the wall "
        "clock: a merchant without new events keeps its values. For a "
        "value as of now, multiply a windowed count or sum by "
        "`exp(-(now - as_of_ms) / W)`. Ratios and averages need no "
        "correction (both sides decay alike); ages grow by "
        "`(now - as_of_ms) / 86400000` days.\n"
        "\n"
        "**Absent fields.**\n"
        "\n"
        "- A base signal that no event has contributed to is absent: read "
        "it as 0. A sum whose contributions were all 0 is absent too.\n"
        "- A ratio, average or trend whose denominator is 0 or absent is "
        "absent, not 0: no data is not a rate of 0.\n"
        "- An age is absent while its timestamp is (`store_age_days` before "
        "the first paid order, `days_since_counterfeit` for a merchant "
        "never caught).\n"
        "- Every update replaces the hash whole, atomically: trustd "
        "`RESTORE`s the new hash as `:signals:next` and its update renames "
        "it over this key (keyspace notifications say `rename_to`). It "
        "holds `as_of_ms` and the signals defined at that moment, and "
        "nothing else: do not add fields of your own to it.\n"
        "\n"
        "**Value formatting.** `as_of_ms` is an integer. Signal values "
        "are written like `%s` (10 significant digits; lifetime counts "
        "and timestamps print as integers): decimal strings, parse them "
        "as doubles. They are for "
        "reading: the exact merge state is `trust:{<merchant_id>}:state` "
        "(below), from which trustd recomputes everything.\n"
        "\n",
        FMT_SIGNAL);
}

static void ref_layout(FILE *fp) {
    fprintf(
        fp,
        "## Redis layout\n"
        "\n"
        "Every per-merchant key carries the `{merchant_id}` hash tag, so a "
        "merchant's keys share one Redis Cluster slot.\n"
        "\n"
        "| key | type | content |\n"
        "|---|---|---|\n"
        "| `trust:{<merchant_id>}:signals` | hash | `as_of_ms` and one field "
        "per signal present (absent-field rules above) |\n"
        "| `trust:{<merchant_id>}:state` | string | the exact merge "
        "state, binary (version, catalog fingerprint, `as_of_ms`, presence "
        "mask, the base values as IEEE doubles; `processor/mstate.h`): "
        "trustd's, not for dashboards |\n"
        "| `trust:{<merchant_id>}:wm` | hash | per source partition "
        "(`orders/3`): the next offset already applied to this merchant "
        "(exactly-once bookkeeping, not for dashboards) |\n"
        "| `trust:{<merchant_id>}:signals:next` | hash | transient: the "
        "next signals hash, written just before an update and renamed "
        "into place by it (deleted if the update is refused) |\n"
        "| `trust:{<merchant_id>}:score` | hash | `score`, `tier`, "
        "`confidence`, `sub_<dimension>`, `reasons` (JSON array), "
        "`version`, `model_version`, `as_of_ms`, `updated_ms`; "
        "`pub_version`, `pub_score`, `pub_tier`, `pub_ms` of the last "
        "publication Kafka acknowledged (marked by the merchant's next "
        "update or the next flush: it can trail `version` for one flush). "
        "An update that carries a new score replaces the hash whole "
        "(`RESTORE`d over it) |\n"
        "| `trust:{<merchant_id>}:history` | string | the score history: "
        "one 16-byte record per score version, oldest first, little-endian "
        "(`u32` publication time in seconds = the hash's `updated_ms` / "
        "1000, `u16` score x 100, `u8` tier, `u8` confidence x 100, `u64` "
        "the score hash `version` it records; Python "
        "`struct.iter_unpack('<IHBBQ', v)`); the last 64 within 90 days of "
        "the newest, at most 1 KB (`processor/history.h`, `trustctl "
        "history`) |\n"
        "| `trust:scores` | sorted set | merchant_id by score |\n"
        "| `trust:part:{<topic>/<partition>}` | hash | `committed`, "
        "`intent`, `epoch`: where the partition resumes and who owns it |\n"
        "\n"
        "A merchant's signals, `:state` and `:wm` change together in one "
        "Redis function call per update (trustd merges in memory and "
        "sends the result, guarded by the state's version), so one "
        "`HGETALL` (or `HMGET`) of the signals hash sees all of one update "
        "or none of it. A score to publish is written to the score hash in "
        "the same call, and its history point, with the version the score "
        "hash gets, is appended in that call too: a replay after a crash "
        "or a rebalance never adds a point twice or leaves one out. "
        "`pub_*` after Kafka acknowledged it, with the "
        "merchant's next update or by the next flush.\n"
        "\n");
}

static void ref_buyers(FILE *fp) {
    fprintf(fp,
            "## Distinct and repeat buyers\n"
            "\n"
            "`buyers_total`, `first_orders_90d`, `repeat_buyers_90d` and "
            "`repeat_orders_30d` count paid orders by their `buyer_order_seq`, "
            "which the order service sets to the buyer's n-th order at this "
            "merchant: an order with seq 1 is a new buyer, seq 2 a buyer who "
            "came back, any seq of 2 or more a repeat order.\n"
            "\n"
            "- **Exact** when upstream sets `buyer_order_seq`: every buyer has "
            "one order with seq 1 and at most one with seq 2, so the counts "
            "are distinct buyers, not estimates, and they merge like every "
            "other count (in any order, across partitions).\n"
            "- **Zero Redis memory** beyond the four counters: no per-buyer "
            "state in Redis or in trustd.\n"
            "- Orders with **seq 0 (unknown)**, from producers on order schema "
            "v1 or an order service that does not know, are **not counted** "
            "in these four signals (they still count in `orders_paid_*` and "
            "GMV). While some producers send 0, the counts are lower bounds.\n"
            "- The counts read PAID events, so seq should number the buyer's "
            "paid orders. If the order service numbers every created order, a "
            "buyer whose first order was never paid is never counted as new, "
            "and their next paid order counts as a return.\n"
            "\n"
            "**Why not HyperLogLog.** A Redis HyperLogLog turns dense past "
            "`hll-sparse-max-bytes` (3000 bytes by default, a few thousand "
            "buyers) and a dense one takes 12 KB: three times the 4 KB budget "
            "of a merchant's whole signal hash, and one would be needed per "
            "window, since an HLL cannot decay or forget. It would also only "
            "estimate (0.81%% standard error). The order service already knows "
            "each buyer's history, so the sequence number moves the distinct "
            "count to where it is exact and free.\n"
            "\n");
}

static void ref_memory(FILE *fp) {
    fprintf(fp,
            "## Memory per merchant\n"
            "\n"
            "The signals hash holds at most %d fields (every signal and "
            "`as_of_ms`), under Redis' default `hash-max-listpack-entries` "
            "(128), and every name and value is shorter than "
            "`hash-max-listpack-value` (64 bytes), so Redis keeps it as a "
            "compact listpack. The budget is **4096 bytes of `MEMORY USAGE` "
            "per signals hash**. `tests/it_signals.c` (`make integration`) "
            "writes realistic merchants the way a flush does, checks the "
            "encoding and the budget, and prints the numbers. Measured on "
            "Redis 7.0 with jemalloc, when the catalog last changed:\n"
            "\n"
            "| merchant | signals present | `:signals` | `:state` | `:wm` |\n"
            "|---|---|---|---|---|\n"
            "| small shop: 60 orders in 25 days | 69 | 2648 B | 712 B | "
            "120 B |\n"
            "| big shop: 73,000 orders in a year | 95 | 3672 B | 712 B | "
            "136 B |\n"
            "| bad shop: every signal present | %d | 3672 B | 712 B | 136 B "
            "|\n"
            "| end to end through trustd (3 merchants) | 91-98 | 3656 B "
            "| 712 B | 120 B |\n"
            "\n"
            "So about 3.8 KB per merchant for its signals and watermarks, "
            "and 4.5 KB with the packed exact state (a fixed %d-byte string "
            "that lets trustd merge in memory and write each merchant with "
            "one cheap call; see README \"Performance\"). `:wm` grows by "
            "about 16 bytes per extra source partition the merchant's events "
            "came from. The `:score` hash and the merchant's entry in "
            "`trust:scores` come on top; their size depends on the score "
            "model (the test prints it too). So does the score history, "
            "at most 64 x 16 = 1024 bytes of value (a raw string: about "
            "1.1 KB of `MEMORY USAGE` when full), growing by 16 bytes per "
            "published score.\n"
            "\n"
            "The listpack of a merchant with every field falls in the "
            "allocator's 3584-byte size class; the next class is 4096 bytes "
            "(`MEMORY USAGE` about 4170). The six 90-day twins the score model "
            "reads for small merchants (`*_90d` next to their 30-day "
            "signals) and the counterfeit claims with their rate "
            "(`refunds_counterfeit_90d`, `counterfeit_claim_rate_90d`) still "
            "fit in the class; the catalog is near its "
            "budget: a new signal adds its name plus about 22 bytes, and "
            "more need room made first (shorter derived values: `%%.6g` "
            "saves about 140 bytes; or fewer derived fields).\n"
            "\n",
            TD_SIG__CNT + 1, TD_SIG__CNT, TD_MSTATE_BLOB);
}

static void ref_helpers(FILE *fp) {
    fprintf(
        fp,
        "## Condition helpers\n"
        "\n"
        "Conditions and values in the tables are written as in "
        "`signals.def`, with these helpers (defined in "
        "`processor/signals.c`) over the event's fields (`schemas/*.avsc`).\n"
        "\n"
        "| helper | meaning |\n"
        "|---|---|\n");
    for (size_t i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++) {
        fprintf(fp, "| `%s` | ", helpers[i].name);
        md_cell(fp, helpers[i].meaning);
        fprintf(fp, " |\n");
    }
    fprintf(fp, "\n");
}

/* The formula cell of one signal. */
static void ref_formula(FILE *fp, const td_signal_t *sg) {
    static const char *const verbs[] = {[TD_AGG_COUNT] = "count of",
                                        [TD_AGG_SUM] = "sum of",
                                        [TD_AGG_MAX] = "largest",
                                        [TD_AGG_MIN] = "smallest"};

    if (sg->source >= 0) {
        fprintf(fp, "%s ", verbs[sg->agg]);
        if (sg->agg != TD_AGG_COUNT) {
            fprintf(fp, "`");
            md_cell(fp, sg->value);
            fprintf(fp, "` of ");
        }
        if (!strcmp(sg->cond, "1")) {
            fprintf(fp, "all %s events", source_names[sg->source]);
            return;
        }
        fprintf(fp, "%s events with `", source_names[sg->source]);
        md_cell(fp, sg->cond);
        fprintf(fp, "`");
        return;
    }
    switch (sg->agg) {
    case TD_AGG_AGE:
        fprintf(fp, "(`as_of_ms` - `%s`) / %.17g", td_signals[sg->a].name,
                sg->k);
        break;
    case TD_AGG_TREND:
        fprintf(fp, "`%s` / `%s` * %.6g", td_signals[sg->a].name,
                td_signals[sg->b].name, sg->k);
        break;
    default:
        fprintf(fp, "`%s` / `%s`", td_signals[sg->a].name,
                td_signals[sg->b].name);
    }
}

static void ref_catalog(FILE *fp) {
    for (int c = 0; c < TD_CAT__CNT; c++) {
        int any = 0;
        for (int i = 0; i < TD_SIG__CNT; i++) {
            const td_signal_t *sg = &td_signals[i];
            if (sg->category != (td_category_t)c) continue;
            if (!any) {
                fprintf(fp,
                        "## %s\n\n"
                        "| signal | meaning | formula | aggregation | window "
                        "| unit | better |\n"
                        "|---|---|---|---|---|---|---|\n",
                        td_category_name((td_category_t)c));
                any = 1;
            }
            fprintf(fp, "| `%s` | ", sg->name);
            md_cell(fp, sg->meaning);
            fprintf(fp, " | ");
            ref_formula(fp, sg);
            fprintf(fp, " | %s | %s | %s | %s |\n", td_agg_name(sg->agg),
                    td_window_name(sg->window_ms), sg->unit,
                    sg->higher_better ? "higher" : "lower");
        }
        if (any) fprintf(fp, "\n");
    }
}

void td_signals_reference_md(FILE *fp) {
    ref_intro(fp);
    ref_reading(fp);
    ref_layout(fp);
    ref_buyers(fp);
    ref_memory(fp);
    ref_helpers(fp);
    ref_catalog(fp);
}
