/*
 * signals.h - the per-merchant signal catalog (signals.def) and its math.
 *
 * Time semantics. A windowed signal with window W is
 *     V = sum_i w_i * exp(-(T - t_i) / W)
 * with t_i the event_time of each contributing event and T the merchant's
 * as_of (the largest event_time applied for it). For a steady rate this is
 * the plain count over the last W; it does not depend on the order events
 * arrive in. Lifetime signals are plain sums; MAX and MIN are extremes.
 *
 * A value is carried with the time it is expressed at, (T, V), and two such
 * pairs merge as
 *     (T1, V1) + (T2, V2) = (max, V1 e^-(max-T1)/W + V2 e^-(max-T2)/W)
 * which is commutative and associative, so coalesced deltas from any split
 * of the events, merged in any order, give the same state (to rounding).
 * trustd folds events into a td_sigdelta_t per (merchant, source partition)
 * and merges the deltas of a flush into the merchant's exact state
 * (mstate.h) with td_sigstate_merge().
 */
#ifndef TD_SIGNALS_H
#define TD_SIGNALS_H

#include <stdint.h>
#include <stdio.h>

#include "event.h"

/* Every signal, base and derived, in catalog order. */
typedef enum {
#define TD_SIG_ORDER(name, ...)   TD_SIG_##name,
#define TD_SIG_REVIEW(name, ...)  TD_SIG_##name,
#define TD_SIG_REFUND(name, ...)  TD_SIG_##name,
#define TD_SIG_DERIVED(name, ...) TD_SIG_##name,
#include "signals.def"
    TD_SIG__CNT
} td_signal_id_t;

/* Per-source slot enums: a delta for an order source holds only order
 * signals, and so on. */
typedef enum {
#define TD_SIG_ORDER(name, ...) TD_SLOT_O_##name,
#include "signals.def"
    TD_SLOT_O__CNT
} td_slot_order_t;
typedef enum {
#define TD_SIG_REVIEW(name, ...) TD_SLOT_V_##name,
#include "signals.def"
    TD_SLOT_V__CNT
} td_slot_review_t;
typedef enum {
#define TD_SIG_REFUND(name, ...) TD_SLOT_R_##name,
#include "signals.def"
    TD_SLOT_R__CNT
} td_slot_refund_t;

#define TD_SIG_BASE_CNT (TD_SLOT_O__CNT + TD_SLOT_V__CNT + TD_SLOT_R__CNT)
#define TD_MAX_(a, b)   ((int)(a) > (int)(b) ? (int)(a) : (int)(b))
#define TD_SLOT_MAX                                                            \
    TD_MAX_(TD_MAX_(TD_SLOT_O__CNT, TD_SLOT_V__CNT), TD_SLOT_R__CNT)

typedef enum {
    TD_AGG_COUNT = 0, /* base: sum of 1 per matching event */
    TD_AGG_SUM,       /* base: sum of a value */
    TD_AGG_MAX,       /* base: largest value */
    TD_AGG_MIN,       /* base: smallest value */
    TD_AGG_RATIO,     /* derived: a / b */
    TD_AGG_AVG,       /* derived: a / b */
    TD_AGG_TREND,     /* derived: (a / b) * k */
    TD_AGG_AGE,       /* derived: (as_of - a) / k */
    TD_AGG__CNT
} td_agg_t;

typedef enum {
    TD_CAT_FULFILLMENT = 0,
    TD_CAT_LOGISTICS,
    TD_CAT_QUALITY,
    TD_CAT_SERVICE,
    TD_CAT_DISPUTES,
    TD_CAT_LOYALTY,
    TD_CAT_VOLUME,
    TD_CAT_CHANNEL,
    TD_CAT_RISK,
    TD_CAT__CNT
} td_category_t;

#define TD_WIN_LIFE 0
#define TD_WIN_D1   (86400000LL)
#define TD_WIN_D7   (7 * TD_WIN_D1)
#define TD_WIN_D30  (30 * TD_WIN_D1)
#define TD_WIN_D90  (90 * TD_WIN_D1)

typedef struct td_signal_s {
    const char *name;
    size_t name_len;
    td_category_t category;
    td_agg_t agg;
    int64_t window_ms; /* TD_WIN_LIFE (0) for lifetime and extremes */
    int source;        /* td_event_kind_t, or -1 for derived */
    int slot;          /* index in the source's delta; -1 for derived */
    const char *cond;  /* the condition as written in signals.def */
    const char *value; /* the folded value as written */
    td_signal_id_t a;  /* derived inputs (base signals) */
    td_signal_id_t b;
    double k;
    const char *unit;
    int higher_better; /* 1 if a larger value is better for buyers */
    const char *meaning;
} td_signal_t;

extern const td_signal_t td_signals[TD_SIG__CNT];

const char *td_category_name(td_category_t c);
const char *td_agg_name(td_agg_t a);
/* "1d", "7d", "30d", "90d" or "lifetime". */
const char *td_window_name(int64_t window_ms);
/* Signal id by name, or -1. */
int td_signal_by_name(const char *name);
/* Number of slots a delta of that source kind holds. */
int td_signals_slot_cnt(td_event_kind_t kind);
/* Global signal id of slot `slot` of source `kind`. */
td_signal_id_t td_signals_slot_sig(td_event_kind_t kind, int slot);

/*
 * A coalesced delta: the signals of one source kind folded from some events,
 * expressed at time as_of (the largest event_time folded). MAX/MIN slots hold
 * -inf/+inf until set. Embedded in trustd's merchant cache entries.
 */
typedef struct td_sigdelta_s {
    int64_t as_of;
    int kind;   /* td_event_kind_t */
    int events; /* events folded */
    double v[TD_SLOT_MAX];
} td_sigdelta_t;

void td_sigdelta_init(td_sigdelta_t *d, td_event_kind_t kind);
/* Folds one event of d->kind into d. The event must be validated. */
void td_sigdelta_add(td_sigdelta_t *d, const td_event_t *e);
/* 1 if slot holds something to merge (non-zero sum, extreme set). */
int td_sigdelta_slot_set(const td_sigdelta_t *d, int slot);

/*
 * A merchant's full signal state, the same content as its Redis hash.
 * present[i] is 0 for an absent field.
 */
typedef struct td_sigstate_s {
    int64_t as_of; /* TD_NULL_TS before the first event */
    double v[TD_SIG__CNT];
    unsigned char present[TD_SIG__CNT];
} td_sigstate_t;

void td_sigstate_init(td_sigstate_t *s);
/* Merges a delta into s, then derives. */
void td_sigstate_merge(td_sigstate_t *s, const td_sigdelta_t *d);
/* Recomputes every derived signal from the base signals. */
void td_sigstate_derive(td_sigstate_t *s);

/*
 * The state "as of now" without new events: windowed counts and sums decay
 * to `now` (each times exp(-(now - as_of) / W)), lifetime signals and
 * extremes stay, as_of becomes now and the derived signals follow (ages
 * grow; decayed ratios keep their value, their evidence shrinks). Exactly
 * what folding an event at `now` that matches no condition would do. A
 * state without events, or a `now` not after as_of, is left as it is.
 * Pure, allocation free. For scoring quiet merchants (td-model-eval; a
 * periodic re-evaluation sweep).
 */
void td_sigstate_age(td_sigstate_t *s, int64_t now);

/*
 * Lua source of `local BN = {...}`: the base signal names in catalog order,
 * for the Redis function library (store.c). Writes NUL-terminated source
 * into buf; returns its length, or -1 if buf is too small.
 */
int td_signals_lua(char *buf, size_t size);

/* Writes schemas/signals.md (markdown) from the catalog. */
void td_signals_reference_md(FILE *fp);

#endif
