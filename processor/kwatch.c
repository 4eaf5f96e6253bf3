/*
 * kwatch.c - Kafka conditions trustd reports (see kwatch.h).
 */
#include <string.h>

#include "event.h"
#include "kwatch.h"

/* Rate-limiter codes. */
enum { KW_DOWN, KW_TOPIC, KW_OTHER };

#define KW_METADATA_TIMEOUT_MS 2000

/* td_log_rl() on the shared rate limiter, under its lock. */
#define KW_LOG_RL(kw, ...)                                                     \
    do {                                                                       \
        pthread_mutex_lock(&(kw)->lock);                                       \
        td_log_rl(&(kw)->rl, __VA_ARGS__);                                     \
        pthread_mutex_unlock(&(kw)->lock);                                     \
    } while (0)

static void count(td_kwatch_t *kw, td_kev_t e) {
    atomic_fetch_add_explicit(&kw->m->kafka_events[e], 1, memory_order_relaxed);
}

void td_kwatch_init(td_kwatch_t *kw,
                    td_metrics_t *m,
                    const char *const *topics,
                    const char *brokers,
                    int64_t log_interval_ms) {
    memset(kw, 0, sizeof(*kw));
    kw->m = m;
    kw->topics = topics;
    kw->brokers = brokers;
    pthread_mutex_init(&kw->lock, NULL);
    td_log_rl_init(&kw->rl, log_interval_ms);
}

void td_kwatch_destroy(td_kwatch_t *kw) {
    pthread_mutex_destroy(&kw->lock);
}

void td_kwatch_error(td_kwatch_t *kw,
                     rd_kafka_t *rk,
                     rd_kafka_resp_err_t err,
                     const char *reason) {
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        count(kw, TD_KEV_BROKERS_DOWN);
        KW_LOG_RL(kw, KW_DOWN, TD_LOG_WARNING,
                  "kafka: no broker of %s answers (%s): consumption, "
                  "publication and dead-lettering wait and retry; nothing is "
                  "read, skipped or lost meanwhile",
                  kw->brokers, reason);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        td_log(TD_LOG_WARNING, "kafka fatal error: %s (%s)", why, reason);
        return;
    }
    /* One rate-limiter slot per error code (codes are -200..~120): one
     * error's repeats never hide another's first line. */
    KW_LOG_RL(kw,
              KW_OTHER +
                  (int)((unsigned)(err + 200) % (TD_LOG_RL_CODES - KW_OTHER)),
              TD_LOG_WARNING, "kafka %s: %s", rd_kafka_err2name(err), reason);
}

static int kind_of(const td_kwatch_t *kw, const char *topic) {
    for (int k = 0; k < TD_EV__CNT; k++) {
        if (!strcmp(kw->topics[k], topic)) return k;
    }
    return -1;
}

int td_kwatch_consumer_error(td_kwatch_t *kw, const rd_kafka_message_t *msg) {
    const char *topic;
    int k;

    if (msg->err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
        msg->err != RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        return 0;
    topic = msg->rkt ? rd_kafka_topic_name(msg->rkt) : "?";
    if ((k = kind_of(kw, topic)) >= 0)
        atomic_store_explicit(&kw->m->topic_partitions[k], -1,
                              memory_order_relaxed);
    count(kw, TD_KEV_UNKNOWN_TOPIC);
    KW_LOG_RL(kw, KW_TOPIC, TD_LOG_WARNING,
              "kafka: input topic %s cannot be read (%s): its events wait in "
              "Kafka until it is created (or readable), the other topics are "
              "read meanwhile",
              topic, rd_kafka_err2str(msg->err));
    return 1;
}

void td_kwatch_assigned(td_kwatch_t *kw, rd_kafka_t *consumer) {
    const rd_kafka_metadata_t *md;

    if (rd_kafka_metadata(consumer, 0, NULL, &md, KW_METADATA_TIMEOUT_MS))
        return; /* the next assignment asks again */
    for (int t = 0; t < md->topic_cnt; t++) {
        const rd_kafka_metadata_topic_t *mt = &md->topics[t];
        int k = kind_of(kw, mt->topic);
        int64_t was;
        if (k < 0 || mt->err) continue;
        was = atomic_exchange_explicit(&kw->m->topic_partitions[k],
                                       mt->partition_cnt, memory_order_relaxed);
        if (was > 0 && mt->partition_cnt > was) {
            count(kw, TD_KEV_PARTITIONS_ADDED);
            td_log(TD_LOG_NOTICE,
                   "kafka: input topic %s grew from %lld to %d partitions: "
                   "the new ones are read from their first offset",
                   mt->topic, (long long)was, mt->partition_cnt);
        }
    }
    rd_kafka_metadata_destroy(md);
}
