/*
 * model.h - the trust score model: weights, priors, thresholds and hard rules
 * loaded from a commented text file (schemas/model.conf), and the function
 * that turns a merchant's signals into a TrustScore record.
 */
#ifndef TD_MODEL_H
#define TD_MODEL_H

#include <stddef.h>

#include "event.h"
#include "signals.h"

typedef struct td_model_s td_model_t;

/* Loads and validates a model file. NULL + errstr naming file:line on any
 * error. */
td_model_t *td_model_load(const char *path, char *errstr, size_t errstr_size);
void td_model_destroy(td_model_t *m);
/* The model's version string (goes into every published score). */
const char *td_model_version(const td_model_t *m);

/*
 * Scores one merchant from its signal state. Fills score, tier, confidence,
 * sub-scores, reasons, model_version and as_of_ms of out; leaves merchant_id
 * and version alone. Pure: same input, same output.
 */
void td_model_score(const td_model_t *m, const td_sigstate_t *s,
                    td_score_rec_t *out);

#endif
