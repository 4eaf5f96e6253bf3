/*
 * model.h - the trust score model: dimensions, weights, priors, anchors,
 * tier thresholds and hard rules loaded from a commented text file
 * (schemas/model.conf), and the function that turns a merchant's signals
 * into a TrustScore record.
 *
 * How a score is made (model.c has the details, model.conf the numbers):
 *
 *   1. Every indicator is a ratio or average signal of the catalog,
 *      recomputed from its numerator k and denominator n (for a small
 *      merchant, its 90-day counts where the model names them: the window
 *      adapts to volume) and smoothed toward the platform prior p with
 *      strength w: x = (k + p*w) / (n + w) (a Beta(p*w, (1-p)*w) prior
 *      for rates, a Bayesian average for ratings and hours).
 *   2. x maps linearly to a sub-score: 100 at the `good` anchor, 0 at the
 *      `bad` anchor, clamped to 0..100; with a `deep` line a lower-is-
 *      better rate confirmed by a second event goes on below 0.
 *   3. Dimension sub-score = weighted mean of its indicators, at least 0;
 *      score = weighted mean of the dimensions (weights sum to 1 at both
 *      levels).
 *   4. Hard rules whose conditions all hold cap the score (mapping it onto
 *      the cap tier's floor..cap_score, so capped merchants keep their
 *      order) and the tier; a condition may read a signal or an
 *      indicator's k or k / n.
 *   5. The tier comes from the score and the tier thresholds, and is never
 *      better than any applied rule's cap.
 *
 * The loader enforces that every indicator and rule points the right way
 * (see model.conf), so more bad events never raise the score.
 */
#ifndef TD_MODEL_H
#define TD_MODEL_H

#include <stddef.h>

#include "event.h"
#include "signals.h"

/* Capacity of one model; a file that needs more is rejected. */
#define TD_MODEL_MAX_SIGNALS 32 /* indicator ("signal") lines */
#define TD_MODEL_MAX_RULES   16
#define TD_MODEL_MAX_CONDS   4  /* conditions per rule */
#define TD_MODEL_NAME_MAX    32 /* dimension and rule names, with NUL */
#define TD_MODEL_VERSION_MAX 64 /* version string, with NUL */

typedef struct td_model_s td_model_t;

/*
 * Loads and validates a model file. Returns a new model (free it with
 * td_model_destroy), or NULL with errstr "path:line: what is wrong" for
 * any error: unreadable file, unknown keyword or key, bad number, unknown
 * or unsuitable signal, unknown or duplicate dimension, duplicate signal or
 * rule, weight or anchor out of range, weights not summing to 1, rule
 * inconsistent with the tiers, missing version, tiers or confidence.
 * Thread: any; the model is immutable once loaded.
 */
td_model_t *td_model_load(const char *path, char *errstr, size_t errstr_size);

/*
 * Same as td_model_load, for model text in memory. `name` stands for the
 * file name in error messages. The caller keeps text.
 */
td_model_t *td_model_load_string(const char *name,
                                 const char *text,
                                 char *errstr,
                                 size_t errstr_size);

/* Frees a model. NULL is a no-op. */
void td_model_destroy(td_model_t *m);

/* The model's version string (goes into every published score); lives as
 * long as the model. */
const char *td_model_version(const td_model_t *m);

/*
 * The platform prior of the indicator that reads signal sig: 1 with *prior
 * (and *dim, its dimension's name, living as long as the model; dim may be
 * NULL), or 0 when the model scores nothing on sig.
 */
int td_model_signal_prior(const td_model_t *m,
                          int sig,
                          double *prior,
                          const char **dim);

/* The Simplified Chinese text (a rule's reason_zh) of a rule's reason as
 * published, or NULL when no rule gives that reason or it has no reason_zh.
 * Lives as long as the model. */
const char *td_model_reason_zh(const td_model_t *m, const char *reason);

/* The score of a merchant without any events: every indicator at its
 * prior, no rule applied. */
double td_model_prior_score(const td_model_t *m);

/*
 * Scores one merchant from its signal state. Fills score, tier, confidence,
 * dim_cnt/dim_names/dims, reason_cnt/reasons, model_version and as_of_ms
 * (= s->as_of) of out; leaves merchant_id and version alone. dim_names and
 * model_version point into m. Pure (same input, same output), allocation
 * free, safe to call from many threads on one model.
 */
void td_model_score(const td_model_t *m,
                    const td_sigstate_t *s,
                    td_score_rec_t *out);

#endif
