/*
 * dlq_reason.h - coded reasons for sending a message to the dead-letter
 * queue, generated from dlq_reason.def.
 *
 * td_codec_decode() returns one of these for every message; TD_DLQ_OK (0)
 * means the event is valid. Names are stable lower_snake_case labels for DLQ
 * headers and metrics; descriptions are one human sentence.
 */
#ifndef TD_DLQ_REASON_H
#define TD_DLQ_REASON_H

typedef enum {
#define TD_DLQ_REASON(id, name, desc) TD_DLQ_##id,
#include "dlq_reason.def"
#undef TD_DLQ_REASON
    TD_DLQ__CNT
} td_dlq_reason_t;

/* The reason's stable name, e.g. "bad_magic"; "unknown" if r is out of
 * range. Static string; any thread. */
const char *td_dlq_reason_name(td_dlq_reason_t r);

/* One-sentence description of r; "unknown reason" if out of range.
 * Static string; any thread. */
const char *td_dlq_reason_desc(td_dlq_reason_t r);

#endif
