/*
 * dlq_reason.c - name and description tables for td_dlq_reason_t, expanded
 * from dlq_reason.def with designated indexes (as librdkafka's
 * rd_kafka_err_descs[]), so a table entry can never drift from its code.
 */
#include <assert.h>

#include "dlq_reason.h"

static_assert(TD_DLQ_OK == 0, "TD_DLQ_OK must be the first reason");

static const char *const dlq_names[TD_DLQ__CNT] = {
#define TD_DLQ_REASON(id, name, desc) [TD_DLQ_##id] = name,
#include "dlq_reason.def"
#undef TD_DLQ_REASON
};

static const char *const dlq_descs[TD_DLQ__CNT] = {
#define TD_DLQ_REASON(id, name, desc) [TD_DLQ_##id] = desc,
#include "dlq_reason.def"
#undef TD_DLQ_REASON
};

const char *td_dlq_reason_name(td_dlq_reason_t r) {
    if ((unsigned)r >= TD_DLQ__CNT) return "unknown";
    return dlq_names[r];
}

const char *td_dlq_reason_desc(td_dlq_reason_t r) {
    if ((unsigned)r >= TD_DLQ__CNT) return "unknown reason";
    return dlq_descs[r];
}
