/*
 * dlq.h - the dead-letter path: a bad message goes to the DLQ topic with its
 * original key and value bytes untouched and headers saying why.
 *
 * Headers: dlq.error.code (reason name, e.g. "bad_magic"), dlq.error.reason
 * (human-readable detail), dlq.source.topic, dlq.source.partition,
 * dlq.source.offset, dlq.time (ms since epoch, decimal).
 *
 * A dead letter whose delivery fails is kept (copied) and produced again by
 * td_dlq_retry(); the worker does not store the source offset until
 * td_dlq_pending() is 0 after a producer flush, so nothing is dropped.
 */
#ifndef TD_DLQ_H
#define TD_DLQ_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "dlq_reason.h"

#define TD_DLQ_OPAQUE ((void *)0x444c51) /* msg_opaque of dead letters */

typedef struct td_dlq_s td_dlq_t;

/* rk is the producer (borrowed); topic is copied. */
td_dlq_t *td_dlq_new(rd_kafka_t *rk, const char *topic);
void td_dlq_destroy(td_dlq_t *d);

/* Produces a dead letter for msg (consumed from a source topic). TD_OK, or
 * TD_ERR + errstr when the producer refused it (queue full: poll and retry).
 */
int td_dlq_produce(td_dlq_t *d,
                   const rd_kafka_message_t *msg,
                   td_dlq_reason_t reason,
                   const char *detail,
                   int64_t now_ms,
                   char *errstr,
                   size_t errstr_size);

/* From the producer's delivery report callback: keeps a copy of a dead
 * letter whose delivery failed. Returns 1 if msg was a dead letter. */
int td_dlq_delivery(td_dlq_t *d, const rd_kafka_message_t *msg);

/* Dead letters whose delivery failed and are not yet produced again. */
size_t td_dlq_failed(const td_dlq_t *d);
/* Produces the failed ones again. TD_OK if all were accepted. */
int td_dlq_retry(td_dlq_t *d, char *errstr, size_t errstr_size);
/* Dead letters produced and not yet acknowledged (or failed). */
size_t td_dlq_inflight(const td_dlq_t *d);

#endif
