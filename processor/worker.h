/*
 * worker.h - one trustd consumer-group worker: consume, decode, fold into
 * per-merchant deltas, flush them to Redis with the offsets they cover,
 * publish scores, dead-letter bad input.
 */
#ifndef TD_WORKER_H
#define TD_WORKER_H

#include <signal.h>
#include <stddef.h>

#include "conf.h"
#include "metrics.h"

typedef struct td_worker_s td_worker_t;

/*
 * Creates the Kafka clients, codec, store and model from conf (borrowed:
 * must outlive the worker). stop is polled: non-zero asks the worker to
 * finish. NULL + errstr on any configuration error; nothing has connected
 * to Redis yet.
 */
td_worker_t *td_worker_new(const td_conf_t *conf,
                           volatile sig_atomic_t *stop,
                           char *errstr,
                           size_t errstr_size);
/* Runs until *stop: returns 0 after a clean shutdown (state flushed,
 * offsets stored, group left), 1 if it had to give up flushing. */
int td_worker_run(td_worker_t *w);
void td_worker_destroy(td_worker_t *w);
/* The worker's metrics, for the HTTP endpoint (lives as long as w). */
td_metrics_t *td_worker_metrics(td_worker_t *w);

#endif
