/*
 * metrics.c - counters and their Prometheus text exposition (metrics.h).
 */
#include <string.h>

#include "metrics.h"

static const double batch_bounds[TD_HIST_BUCKETS] = {
    1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 500000};
static const double flush_bounds[TD_HIST_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Labels of trustd_flush_step_seconds_total, by td_fstep_t. */
static const char *const fstep_names[TD_FSTEP__CNT] = {
    [TD_FSTEP_RECORDS] = "records",
    [TD_FSTEP_MERCHANTS] = "merchants",
    [TD_FSTEP_DELIVER] = "deliver",
    [TD_FSTEP_INDEX] = "index",
};

/* Labels of trustd_kafka_events_total, by td_kev_t. */
static const char *const kev_names[TD_KEV__CNT] = {
    [TD_KEV_BROKERS_DOWN] = "brokers_down",
    [TD_KEV_UNKNOWN_TOPIC] = "unknown_topic",
    [TD_KEV_PARTITIONS_ADDED] = "partitions_added",
};

void td_metrics_init(td_metrics_t *m, const char *const topics[TD_EV__CNT]) {
    memset(m, 0, sizeof(*m));
    for (int k = 0; k < TD_EV__CNT; k++) {
        m->topics[k] = topics[k];
        for (int p = 0; p < TD_METRICS_MAX_PARTS; p++) {
            m->stored_offset[k][p] = -1;
            m->high_watermark[k][p] = -1;
            m->position[k][p] = -1;
        }
    }
    m->batch_events.bounds = batch_bounds;
    m->flush_seconds.bounds = flush_bounds;
}

void td_hist_observe(td_hist_t *h, double v) {
    int i = 0;
    while (i < TD_HIST_BUCKETS && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)(v * 1e6 + 0.5),
                              memory_order_relaxed);
}

int64_t td_metrics_lag(const td_metrics_t *m) {
    int64_t lag = 0;
    for (int k = 0; k < TD_EV__CNT; k++) {
        for (int p = 0; p < TD_METRICS_MAX_PARTS; p++) {
            int64_t hi = LD(m->high_watermark[k][p]);
            int64_t pos = LD(m->position[k][p]);
            if (hi >= 0 && pos >= 0 && hi > pos) lag += hi - pos;
        }
    }
    return lag;
}

int td_metrics_ready(const td_metrics_t *m,
                     int64_t now_mono_ms,
                     int64_t stall_ms,
                     char *why,
                     size_t why_size) {
    int64_t progress = LD(m->last_progress_ms);

    if (!LD(m->redis_ok)) {
        snprintf(why, why_size, "redis unreachable");
        return 0;
    }
    if (LD(m->assigned_partitions) <= 0) {
        snprintf(why, why_size, "no partitions assigned");
        return 0;
    }
    if (LD(m->replaying)) {
        uint64_t lost = LD(m->replay_lost);
        if (lost)
            snprintf(why, why_size,
                     "replaying after redis went back in time (%llu offsets "
                     "beyond kafka's retention lost)",
                     (unsigned long long)lost);
        else
            snprintf(why, why_size, "replaying after redis went back in time");
        return 0;
    }
    if (stall_ms > 0 && td_metrics_lag(m) > 0 &&
        now_mono_ms - progress > stall_ms) {
        snprintf(why, why_size, "stalled: lag but no flush for %lld ms",
                 (long long)(now_mono_ms - progress));
        return 0;
    }
    snprintf(why, why_size, "ready");
    return 1;
}

static void
hist_write(FILE *fp, const char *name, const char *help, const td_hist_t *h) {
    uint64_t cum = 0;
    fprintf(fp, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < TD_HIST_BUCKETS; i++) {
        cum += LD(h->buckets[i]);
        fprintf(fp, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
                (unsigned long long)cum);
    }
    cum += LD(h->buckets[TD_HIST_BUCKETS]);
    fprintf(fp, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    fprintf(fp, "%s_sum %.6f\n%s_count %llu\n", name,
            (double)LD(h->sum_micro) / 1e6, name,
            (unsigned long long)LD(h->count));
}

static void
counter_head(FILE *fp, const char *name, const char *type, const char *help) {
    fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void td_metrics_write(const td_metrics_t *m,
                      int64_t now_mono_ms,
                      int64_t stall_ms,
                      FILE *fp) {
    char why[128];
    int k, p, r;

    counter_head(fp, "trustd_ready", "gauge",
                 "1 when assigned, Redis reachable and not stalled.");
    fprintf(fp, "trustd_ready %d\n",
            td_metrics_ready(m, now_mono_ms, stall_ms, why, sizeof(why)));

    counter_head(fp, "trustd_events_consumed_total", "counter",
                 "Messages consumed per input topic.");
    for (k = 0; k < TD_EV__CNT; k++)
        fprintf(fp, "trustd_events_consumed_total{topic=\"%s\"} %llu\n",
                m->topics[k], (unsigned long long)LD(m->consumed[k]));
    counter_head(fp, "trustd_events_applied_total", "counter",
                 "Events folded into merchant signals per input topic.");
    for (k = 0; k < TD_EV__CNT; k++)
        fprintf(fp, "trustd_events_applied_total{topic=\"%s\"} %llu\n",
                m->topics[k], (unsigned long long)LD(m->applied[k]));
    counter_head(fp, "trustd_events_dead_lettered_total", "counter",
                 "Messages sent to the dead-letter topic, by reason.");
    for (k = 0; k < TD_EV__CNT; k++) {
        for (r = 1; r < TD_DLQ__CNT; r++) {
            uint64_t v = LD(m->dead_lettered[k][r]);
            if (!v) continue;
            fprintf(fp,
                    "trustd_events_dead_lettered_total{topic=\"%s\","
                    "reason=\"%s\"} %llu\n",
                    m->topics[k], td_dlq_reason_name((td_dlq_reason_t)r),
                    (unsigned long long)v);
        }
    }
    counter_head(fp, "trustd_consumer_lag", "gauge",
                 "High watermark minus position, per assigned partition.");
    for (k = 0; k < TD_EV__CNT; k++) {
        for (p = 0; p < TD_METRICS_MAX_PARTS; p++) {
            int64_t hi = LD(m->high_watermark[k][p]);
            int64_t pos = LD(m->position[k][p]);
            if (hi < 0 || pos < 0) continue;
            fprintf(fp,
                    "trustd_consumer_lag{topic=\"%s\",partition=\"%d\"} "
                    "%lld\n",
                    m->topics[k], p, (long long)(hi > pos ? hi - pos : 0));
        }
    }
    counter_head(fp, "trustd_stored_offset", "gauge",
                 "Offset stored in Redis with the state it produced.");
    for (k = 0; k < TD_EV__CNT; k++) {
        for (p = 0; p < TD_METRICS_MAX_PARTS; p++) {
            int64_t so = LD(m->stored_offset[k][p]);
            if (so < 0) continue;
            fprintf(fp,
                    "trustd_stored_offset{topic=\"%s\",partition=\"%d\"} "
                    "%lld\n",
                    m->topics[k], p, (long long)so);
        }
    }
    hist_write(fp, "trustd_batch_events", "Events per flush.",
               &m->batch_events);
    hist_write(fp, "trustd_flush_duration_seconds",
               "Time to write one flush to Redis and Kafka.",
               &m->flush_seconds);
    counter_head(fp, "trustd_redis_roundtrips_total", "counter",
                 "Pipelines sent to Redis and fully answered.");
    fprintf(fp, "trustd_redis_roundtrips_total %llu\n",
            (unsigned long long)LD(m->redis_roundtrips));
    counter_head(fp, "trustd_redis_errors_total", "counter",
                 "Redis connection failures and error replies.");
    fprintf(fp, "trustd_redis_errors_total %llu\n",
            (unsigned long long)LD(m->redis_errors));
    counter_head(fp, "trustd_rebalances_total", "counter",
                 "Rebalance callbacks (assign and revoke).");
    fprintf(fp, "trustd_rebalances_total %llu\n",
            (unsigned long long)LD(m->rebalances));
    counter_head(fp, "trustd_kafka_events_total", "counter",
                 "Kafka conditions trustd logged: all brokers down, an input "
                 "topic missing, an input topic grown.");
    for (r = 0; r < TD_KEV__CNT; r++)
        fprintf(fp, "trustd_kafka_events_total{event=\"%s\"} %llu\n",
                kev_names[r], (unsigned long long)LD(m->kafka_events[r]));
    counter_head(fp, "trustd_topic_partitions", "gauge",
                 "Partitions of each input topic as the broker last listed "
                 "them (-1: the topic does not exist).");
    for (k = 0; k < TD_EV__CNT; k++)
        fprintf(fp, "trustd_topic_partitions{topic=\"%s\"} %lld\n",
                m->topics[k], (long long)LD(m->topic_partitions[k]));
    counter_head(fp, "trustd_assigned_partitions", "gauge",
                 "Input partitions assigned to this worker.");
    fprintf(fp, "trustd_assigned_partitions %lld\n",
            (long long)LD(m->assigned_partitions));
    counter_head(fp, "trustd_scores_published_total", "counter",
                 "TrustScore records delivered to the scores topic.");
    fprintf(fp, "trustd_scores_published_total %llu\n",
            (unsigned long long)LD(m->scores_published));
    counter_head(fp, "trustd_merchants_cached", "gauge",
                 "Merchants with unflushed deltas in memory.");
    fprintf(fp, "trustd_merchants_cached %lld\n",
            (long long)LD(m->merchants_cached));
    counter_head(fp, "trustd_merchant_states_cached", "gauge",
                 "Exact merchant states kept between flushes (capped by "
                 "max_merchants).");
    fprintf(fp, "trustd_merchant_states_cached %lld\n",
            (long long)LD(m->states_cached));
    counter_head(fp, "trustd_state_reloads_total", "counter",
                 "Merchant writes refused because another writer moved the "
                 "state; reloaded and merged again.");
    fprintf(fp, "trustd_state_reloads_total %llu\n",
            (unsigned long long)LD(m->state_reloads));
    counter_head(fp, "trustd_sweep_scores_total", "counter",
                 "Scores of quiet merchants the sweep re-scored (signals "
                 "aged to now) and published because they moved.");
    fprintf(fp, "trustd_sweep_scores_total %llu\n",
            (unsigned long long)LD(m->swept));
    counter_head(fp, "trustd_store_rollbacks_total", "counter",
                 "Times Redis was found behind what this worker wrote "
                 "(restarted empty or from an older copy, FLUSHALL): every "
                 "assigned partition replayed from its stored offsets.");
    fprintf(fp, "trustd_store_rollbacks_total %llu\n",
            (unsigned long long)LD(m->store_rollbacks));
    counter_head(fp, "trustd_replaying", "gauge",
                 "1 while replaying what Redis lost (/readyz says 503).");
    fprintf(fp, "trustd_replaying %d\n", LD(m->replaying));
    counter_head(fp, "trustd_replay_lost_offsets_total", "counter",
                 "Offsets a replay after a rollback needed that Kafka no "
                 "longer retained: events lost for good.");
    fprintf(fp, "trustd_replay_lost_offsets_total %llu\n",
            (unsigned long long)LD(m->replay_lost));
    counter_head(fp, "trustd_flush_step_seconds_total", "counter",
                 "Time spent in each step of a flush (attempts that failed "
                 "included).");
    for (k = 0; k < TD_FSTEP__CNT; k++)
        fprintf(fp, "trustd_flush_step_seconds_total{step=\"%s\"} %.6f\n",
                fstep_names[k], (double)LD(m->flush_step_us[k]) / 1e6);
    counter_head(fp, "trustd_merchant_writes_total", "counter",
                 "Merchant states written to Redis (td_put calls that "
                 "applied).");
    fprintf(fp, "trustd_merchant_writes_total %llu\n",
            (unsigned long long)LD(m->merchant_writes));
    counter_head(fp, "trustd_consumption_paused", "gauge",
                 "1 while max_merchants are in memory and a flush still runs "
                 "(a slow or absent Redis): partitions paused, polls go on.");
    fprintf(fp, "trustd_consumption_paused %d\n", LD(m->paused));
    counter_head(fp, "trustd_registry_paused_partitions", "gauge",
                 "Partitions paused until the schema registry gives the "
                 "writer schema of a Confluent-framed message.");
    fprintf(fp, "trustd_registry_paused_partitions %d\n",
            LD(m->registry_waiting));
    counter_head(fp, "trustd_registry_requests_total", "counter",
                 "Schema registry requests (GET /schemas/ids/{id}) finished.");
    fprintf(fp, "trustd_registry_requests_total %llu\n",
            (unsigned long long)LD(m->registry_requests));
    counter_head(fp, "trustd_registry_errors_total", "counter",
                 "Schema registry requests that failed and are retried.");
    fprintf(fp, "trustd_registry_errors_total %llu\n",
            (unsigned long long)LD(m->registry_errors));
    counter_head(fp, "trustd_flushes_total", "counter", "Flushes completed.");
    fprintf(fp, "trustd_flushes_total %llu\n",
            (unsigned long long)LD(m->flushes));
    counter_head(fp, "trustd_flush_failures_total", "counter",
                 "Flush attempts that failed and were retried.");
    fprintf(fp, "trustd_flush_failures_total %llu\n",
            (unsigned long long)LD(m->flush_failures));
}
