/*
 * metrics.h - the worker's counters, gauges and histograms.
 *
 * The worker thread updates them; the HTTP thread reads them for /metrics
 * and /readyz. Every field is a relaxed atomic: values are independent
 * counters, so no lock is needed and a scrape never blocks the worker.
 */
#ifndef TD_METRICS_H
#define TD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "dlq_reason.h"
#include "event.h"

#define TD_METRICS_MAX_PARTS 1024 /* per-partition gauges kept per topic */
#define TD_HIST_BUCKETS      12

typedef struct td_hist_s {
    const double *bounds; /* TD_HIST_BUCKETS upper bounds */
    _Atomic uint64_t buckets[TD_HIST_BUCKETS + 1];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_micro; /* sum of observations * 1e6 */
} td_hist_t;

/* The steps of a flush (flush.c), timed for
 * trustd_flush_step_seconds_total: where a slow flush spends its time. */
typedef enum {
    TD_FSTEP_RECORDS,   /* 1. partition records (intents) */
    TD_FSTEP_MERCHANTS, /* 2. loads and merchant writes */
    TD_FSTEP_DELIVER,   /* 3. scores produced and acknowledged by Kafka */
    TD_FSTEP_INDEX,     /* 3. score versions, trust:scores, marks */
    TD_FSTEP__CNT
} td_fstep_t;

/* What Kafka itself did that an operator must know of (kwatch.c), for
 * trustd_kafka_events_total{event}. */
typedef enum {
    TD_KEV_BROKERS_DOWN,     /* no broker answers (down, or wrong address) */
    TD_KEV_UNKNOWN_TOPIC,    /* an input topic does not exist */
    TD_KEV_PARTITIONS_ADDED, /* an input topic grew (CreatePartitions) */
    TD_KEV__CNT
} td_kev_t;

typedef struct td_metrics_s {
    const char *topics[TD_EV__CNT]; /* topic names (borrowed from conf) */
    _Atomic uint64_t consumed[TD_EV__CNT];
    _Atomic uint64_t applied[TD_EV__CNT];
    _Atomic uint64_t dead_lettered[TD_EV__CNT][TD_DLQ__CNT];
    /* per partition: stored offset (applied and committed) and high
     * watermark; -1 when not assigned */
    _Atomic int64_t stored_offset[TD_EV__CNT][TD_METRICS_MAX_PARTS];
    _Atomic int64_t high_watermark[TD_EV__CNT][TD_METRICS_MAX_PARTS];
    _Atomic int64_t position[TD_EV__CNT][TD_METRICS_MAX_PARTS];
    td_hist_t batch_events;  /* events per flush */
    td_hist_t flush_seconds; /* flush duration */
    _Atomic uint64_t redis_roundtrips;
    _Atomic uint64_t redis_errors;
    _Atomic uint64_t rebalances;
    _Atomic uint64_t kafka_events[TD_KEV__CNT];
    /* partitions of each input topic, as the broker last listed them; 0
     * before the first assignment, -1 when the topic does not exist */
    _Atomic int64_t topic_partitions[TD_EV__CNT];
    _Atomic int64_t assigned_partitions;
    _Atomic uint64_t scores_published;
    _Atomic int64_t merchants_cached;
    _Atomic int64_t states_cached;  /* exact merchant states in memory */
    _Atomic uint64_t state_reloads; /* td_put refused as STALE */
    _Atomic uint64_t swept;         /* quiet merchants' re-scores written */
    /* Redis found behind what this worker wrote (worker.c rollback()),
     * replaying since, and offsets the replays needed that Kafka no
     * longer retained. */
    _Atomic uint64_t store_rollbacks;
    _Atomic int replaying;
    _Atomic uint64_t replay_lost;
    _Atomic uint64_t flushes;
    _Atomic uint64_t flush_failures;
    _Atomic uint64_t flush_step_us[TD_FSTEP__CNT];
    _Atomic uint64_t merchant_writes; /* td_put calls that wrote */
    _Atomic int paused;   /* partitions paused: memory full, flush running */
    _Atomic int redis_ok; /* last Redis call succeeded */
    _Atomic int64_t last_progress_ms; /* monotonic ms of last applied flush */
    _Atomic int64_t started_ms;

    /* Partitions paused until the registry gives a schema id, and its
     * requests (registry.h). */
    _Atomic int registry_waiting;
    _Atomic uint64_t registry_requests;
    _Atomic uint64_t registry_errors;
} td_metrics_t;

void td_metrics_init(td_metrics_t *m, const char *const topics[TD_EV__CNT]);
void td_hist_observe(td_hist_t *h, double v);

/* Total consumer lag over assigned partitions (high watermark - position). */
int64_t td_metrics_lag(const td_metrics_t *m);

/*
 * Readiness: assigned at least one partition, Redis reachable, not
 * replaying what Redis lost, and not stalled (some lag but no flush
 * completed for stall_ms). Returns 1 if
 * ready, else 0 with why filled.
 */
int td_metrics_ready(const td_metrics_t *m,
                     int64_t now_mono_ms,
                     int64_t stall_ms,
                     char *why,
                     size_t why_size);

/* Prometheus text exposition of everything above, plus trustd_ready as
 * judged by td_metrics_ready() with stall_ms. */
void td_metrics_write(const td_metrics_t *m,
                      int64_t now_mono_ms,
                      int64_t stall_ms,
                      FILE *fp);

#endif
