/*
 * kwatch.h - what the Kafka cluster itself does that an operator must
 * hear of: every broker unreachable, an input topic missing, an input topic
 * grown by CreatePartitions. Each gets one clear log line (rate-limited)
 * and a count in trustd_kafka_events_total{event}; none of them stops
 * trustd or loses an event: it waits for the brokers, reads a missing topic
 * once it exists, and reads new partitions from their first offset.
 *
 * librdkafka's callbacks run from its polls: the consumer's on the worker
 * thread, the producer's there and on the flusher thread; one lock guards
 * the rate limiter (the counters are atomic).
 */
#ifndef TD_KWATCH_H
#define TD_KWATCH_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>

#include "log.h"
#include "metrics.h"

typedef struct td_kwatch_s {
    td_metrics_t *m;
    const char *const *topics; /* the input topics, by td_event_kind_t */
    const char *brokers;
    pthread_mutex_t lock; /* guards rl */
    td_log_ratelimit_t rl;
} td_kwatch_t;

void td_kwatch_init(td_kwatch_t *kw,
                    td_metrics_t *m,
                    const char *const *topics,
                    const char *brokers,
                    int64_t log_interval_ms);

void td_kwatch_destroy(td_kwatch_t *kw);

/* An error_cb error of either client: logs it; all brokers down also
 * counts. */
void td_kwatch_error(td_kwatch_t *kw,
                     rd_kafka_t *rk,
                     rd_kafka_resp_err_t err,
                     const char *reason);

/* A consumer error message: returns 1 when it was one of the conditions
 * above (logged and counted), 0 to let the caller log it. */
int td_kwatch_consumer_error(td_kwatch_t *kw, const rd_kafka_message_t *msg);

/* After an assignment: asks the broker how many partitions each input
 * topic has and reports a topic that grew. */
void td_kwatch_assigned(td_kwatch_t *kw, rd_kafka_t *consumer);

#endif
