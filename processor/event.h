/*
 * event.h - the event contract as C types.
 *
 * td_event_t is the decoded, validated form of one Kafka message from the
 * orders, reviews or refunds topic (schemas/, one .avsc per record). The codec
 * fills it; the signal catalog reads it. Strings are borrowed views (pointer +
 * length, not NUL-terminated) into the codec's reusable buffers: they stay
 * valid until the next decode on the same codec. Optional ("null|...") fields
 * use the TD_NULL_* sentinels below.
 *
 * td_score_rec_t is the published TrustScore record.
 */
#ifndef TD_EVENT_H
#define TD_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define TD_NULL_TS   INT64_MIN /* null timestamp-millis */
#define TD_NULL_ENUM (-1)      /* null enum */
#define TD_NULL_BOOL (-1)      /* null boolean */
#define TD_NULL_INT  0         /* null rating (ratings are 1..5) */

typedef struct td_str_s {
    const char *ptr;
    size_t len;
} td_str_t;

/* Which record (and so which topic) an event is. */
typedef enum {
    TD_EV_ORDER = 0,
    TD_EV_REVIEW,
    TD_EV_REFUND,
    TD_EV__CNT
} td_event_kind_t;

/* Enum symbol order is the Avro schema's symbol order: keep them equal. */
typedef enum {
    TD_ORDER_CREATED = 0,
    TD_ORDER_PAID,
    TD_ORDER_SHIPPED,
    TD_ORDER_DELIVERED,
    TD_ORDER_COMPLETED,
    TD_ORDER_CANCELLED,
    TD_ORDER__CNT
} td_order_status_t;

typedef enum {
    TD_CHANNEL_LIVE = 0,
    TD_CHANNEL_SHORT_VIDEO,
    TD_CHANNEL_SHELF,
    TD_CHANNEL__CNT
} td_channel_t;

typedef enum {
    TD_CANCEL_BUYER = 0,
    TD_CANCEL_MERCHANT,
    TD_CANCEL_PLATFORM,
    TD_CANCEL__CNT
} td_cancelled_by_t;

typedef enum {
    TD_REFUND_REQUESTED = 0,
    TD_REFUND_APPROVED,
    TD_REFUND_REJECTED,
    TD_REFUND_COMPLETED,
    TD_REFUND_ESCALATED,
    TD_REFUND_ARBITRATED,
    TD_REFUND__CNT
} td_refund_status_t;

typedef enum {
    TD_KIND_REFUND_ONLY = 0,
    TD_KIND_RETURN_AND_REFUND,
    TD_KIND__CNT
} td_refund_kind_t;

typedef enum {
    TD_REASON_NO_REASON_7D = 0,
    TD_REASON_QUALITY,
    TD_REASON_NOT_AS_DESCRIBED,
    TD_REASON_COUNTERFEIT,
    TD_REASON_NOT_RECEIVED,
    TD_REASON_DAMAGED,
    TD_REASON_LATE_DELIVERY,
    TD_REASON_OTHER,
    TD_REASON__CNT
} td_refund_reason_t;

typedef enum {
    TD_RESP_MERCHANT = 0,
    TD_RESP_BUYER,
    TD_RESP_PLATFORM,
    TD_RESP_LOGISTICS,
    TD_RESP__CNT
} td_responsible_t;

typedef struct td_order_s {
    int status;                   /* td_order_status_t */
    int64_t amount_cents;         /* >= 0 */
    int channel;                  /* td_channel_t */
    int cancelled_by;             /* td_cancelled_by_t or TD_NULL_ENUM */
    int64_t promised_ship_by;     /* or TD_NULL_TS */
    int64_t promised_delivery_by; /* or TD_NULL_TS */
    int tracking_valid;           /* 0/1 or TD_NULL_BOOL */
    /* Added in order schema v2 (defaulted, so v1 writers still decode). */
    int64_t paid_at;     /* when the order was paid, or TD_NULL_TS */
    int64_t shipped_at;  /* when it was shipped, or TD_NULL_TS */
    int buyer_order_seq; /* buyer's n-th order at this merchant, 0 unknown */
} td_order_t;

typedef struct td_review_s {
    int rating;           /* 1..5 */
    int quality_rating;   /* 1..5 or TD_NULL_INT */
    int service_rating;   /* 1..5 or TD_NULL_INT */
    int logistics_rating; /* 1..5 or TD_NULL_INT */
    int value_rating;     /* 1..5 or TD_NULL_INT */
    int has_media;        /* 0/1 */
    int is_followup;      /* 0/1 */
    int flagged;          /* 0/1: suspected fake, kept out of averages */
} td_review_t;

typedef struct td_refund_s {
    td_str_t refund_id;
    int status;           /* td_refund_status_t */
    int kind;             /* td_refund_kind_t */
    int reason;           /* td_refund_reason_t */
    int64_t amount_cents; /* >= 0 */
    int responsible;      /* td_responsible_t or TD_NULL_ENUM */
    /* Added in refund schema v2 (defaulted). */
    int64_t requested_at; /* when the refund was requested, or TD_NULL_TS */
    int was_rejected;     /* 0/1: the merchant rejected it earlier */
} td_refund_t;

typedef struct td_event_s {
    td_event_kind_t kind;
    td_str_t event_id;
    td_str_t merchant_id; /* 1..TD_MERCHANT_ID_MAX bytes */
    td_str_t order_id;
    td_str_t buyer_id;
    int64_t event_time; /* timestamp-millis, UTC */
    union {
        td_order_t order;
        td_review_t review;
        td_refund_t refund;
    } u;
} td_event_t;

/* The published TrustScore record (schemas/trust_score.avsc). */
#define TD_SCORE_MAX_DIMS    8
#define TD_SCORE_MAX_REASONS 5
#define TD_SCORE_REASON_MAX  128

typedef struct td_score_rec_s {
    char merchant_id[TD_MERCHANT_ID_MAX + 1];
    double score;      /* 0..100 */
    int tier;          /* 1 (best) .. 5 (worst) */
    double confidence; /* 0..1 */
    int dim_cnt;
    const char *dim_names[TD_SCORE_MAX_DIMS]; /* static strings */
    double dims[TD_SCORE_MAX_DIMS];           /* sub-scores 0..100 */
    int reason_cnt;
    char reasons[TD_SCORE_MAX_REASONS][TD_SCORE_REASON_MAX];
    int64_t version;           /* rises with every publication */
    const char *model_version; /* static string */
    int64_t as_of_ms;          /* the merchant's as_of (largest event_time) */
} td_score_rec_t;

#endif
