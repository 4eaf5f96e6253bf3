/*
 * dlq.c - producing dead letters and keeping the ones whose delivery failed
 * (see dlq.h). Dead letters are rare, so copying them on failure is fine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dlq.h"

typedef struct failed_s {
    struct failed_s *next;
    void *key, *value;
    size_t key_len, value_len;
    rd_kafka_headers_t *hdrs;
} failed_t;

struct td_dlq_s {
    rd_kafka_t *rk;
    char *topic;
    failed_t *failed;
    size_t failed_cnt;
    size_t inflight;
};

td_dlq_t *td_dlq_new(rd_kafka_t *rk, const char *topic) {
    td_dlq_t *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->rk = rk;
    d->topic = strdup(topic);
    if (!d->topic) {
        free(d);
        return NULL;
    }
    return d;
}

static void failed_free(failed_t *f) {
    free(f->key);
    free(f->value);
    if (f->hdrs) rd_kafka_headers_destroy(f->hdrs);
    free(f);
}

void td_dlq_destroy(td_dlq_t *d) {
    if (!d) return;
    while (d->failed) {
        failed_t *n = d->failed->next;
        failed_free(d->failed);
        d->failed = n;
    }
    free(d->topic);
    free(d);
}

static int produce(td_dlq_t *d,
                   const void *key,
                   size_t key_len,
                   const void *value,
                   size_t value_len,
                   rd_kafka_headers_t *hdrs,
                   char *errstr,
                   size_t errstr_size) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        d->rk, RD_KAFKA_V_TOPIC(d->topic), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE(TD_DLQ_OPAQUE), RD_KAFKA_V_END);
    if (err) {
        /* On failure the headers stay ours. */
        rd_kafka_headers_destroy(hdrs);
        snprintf(errstr, errstr_size, "dead-letter produce to %s: %s", d->topic,
                 rd_kafka_err2str(err));
        return TD_ERR;
    }
    d->inflight++;
    return TD_OK;
}

int td_dlq_produce(td_dlq_t *d,
                   const rd_kafka_message_t *msg,
                   td_dlq_reason_t reason,
                   const char *detail,
                   int64_t now_ms,
                   char *errstr,
                   size_t errstr_size) {
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(6);
    char num[32];
    const char *name = td_dlq_reason_name(reason);

    rd_kafka_header_add(hdrs, "dlq.error.code", -1, name, -1);
    rd_kafka_header_add(hdrs, "dlq.error.reason", -1, detail, -1);
    rd_kafka_header_add(hdrs, "dlq.source.topic", -1,
                        rd_kafka_topic_name(msg->rkt), -1);
    snprintf(num, sizeof(num), "%d", (int)msg->partition);
    rd_kafka_header_add(hdrs, "dlq.source.partition", -1, num, -1);
    snprintf(num, sizeof(num), "%lld", (long long)msg->offset);
    rd_kafka_header_add(hdrs, "dlq.source.offset", -1, num, -1);
    snprintf(num, sizeof(num), "%lld", (long long)now_ms);
    rd_kafka_header_add(hdrs, "dlq.time", -1, num, -1);
    return produce(d, msg->key, msg->key_len, msg->payload, msg->len, hdrs,
                   errstr, errstr_size);
}

static void *dup_bytes(const void *p, size_t len) {
    void *c;
    if (!p) return NULL;
    c = malloc(len ? len : 1);
    if (c) memcpy(c, p, len);
    return c;
}

int td_dlq_delivery(td_dlq_t *d, const rd_kafka_message_t *msg) {
    rd_kafka_headers_t *hdrs = NULL;
    failed_t *f;

    if (msg->_private != TD_DLQ_OPAQUE) return 0;
    if (d->inflight) d->inflight--;
    if (!msg->err) return 1;
    f = calloc(1, sizeof(*f));
    if (!f) {
        fprintf(stderr, "trustd: out of memory keeping a dead letter\n");
        abort();
    }
    f->key = dup_bytes(msg->key, msg->key_len);
    f->key_len = msg->key_len;
    f->value = dup_bytes(msg->payload, msg->len);
    f->value_len = msg->len;
    if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
        f->hdrs = rd_kafka_headers_copy(hdrs);
    f->next = d->failed;
    d->failed = f;
    d->failed_cnt++;
    return 1;
}

size_t td_dlq_failed(const td_dlq_t *d) {
    return d->failed_cnt;
}

size_t td_dlq_inflight(const td_dlq_t *d) {
    return d->inflight;
}

int td_dlq_retry(td_dlq_t *d, char *errstr, size_t errstr_size) {
    while (d->failed) {
        failed_t *f = d->failed;
        /* produce() takes the headers on success only: hand it a copy so a
         * refused retry keeps the original. */
        rd_kafka_headers_t *hdrs =
            f->hdrs ? rd_kafka_headers_copy(f->hdrs) : rd_kafka_headers_new(0);
        if (produce(d, f->key, f->key_len, f->value, f->value_len, hdrs, errstr,
                    errstr_size) != TD_OK)
            return TD_ERR;
        d->failed = f->next;
        d->failed_cnt--;
        failed_free(f);
    }
    return TD_OK;
}
