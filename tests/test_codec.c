/*
 * test_codec.c - tests of the Avro codec (processor/codec.c) and the DLQ
 * reason table (processor/dlq_reason.c).
 *
 * One codec is shared by the whole group (td_codec_new is the expensive
 * part). Valid messages are made with td_codec_encode*; invalid ones either
 * by patching a valid message or with the small Avro writer below
 * (td_h_wbuf_t), which builds datums byte by byte. Messages written by Debian's
 * python3-avro 1.11.1 (an independent Avro implementation) check wire
 * compatibility. Every td_dlq_reason_t is produced by at least one test;
 * test_every_dlq_reason_is_exercised, which runs last, enforces that.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <avro.h>

#include "codec.h"
#include "harness.h"
#include "common.h"
#include "dlq_reason.h"
#include "schemas_gen.h"

#define NOW_MS   1700000000000LL /* 2023-11-14T22:13:20Z */
#define EV_TIME  1699999990000LL
#define MERCHANT "m-1"

#define STR(s) ((td_str_t){(s), sizeof(s) - 1})

/* Reasons some test has seen td_codec_decode return. */
static int seen[TD_DLQ__CNT];

/* Messages encoded by python3-avro 1.11.1 (see the file comment). */
static const char py_order_v2[] =
    "\xc3\x01\x01\x71\xfe\xb7\x43\x68\xf3\xc4\x10\x65\x76\x74\x2d\x70"
    "\x79\x2d\x31\xe0\x83\xaa\xfe\xf9\x62\x06\x6d\x2d\x31\x06\x6f\x2d"
    "\x37\x06\x62\x2d\x39\x0a\xd8\xed\x0f\x02\x02\x02\x02\x80\x90\xde"
    "\xd0\xfa\x62\x00\x02\x00\x02\x80\xc6\xe6\xf4\xf9\x62\x00\x08";
static const char py_order_v1[] =
    "\xc3\x01\x94\x29\x96\x4a\xb6\x7b\x5f\x99\x10\x65\x76\x74\x2d\x70"
    "\x79\x2d\x31\xe0\x83\xaa\xfe\xf9\x62\x06\x6d\x2d\x31\x06\x6f\x2d"
    "\x37\x06\x62\x2d\x39\x04\x00\x00\x00\x00\x02\x80\xa8\x89\xbd\xfb"
    "\x62\x02\x01";
static const char py_review[] =
    "\xc3\x01\x47\x2d\x99\x1f\xe4\x2c\xa5\x8e\x10\x65\x76\x74\x2d\x70"
    "\x79\x2d\x31\xe0\x83\xaa\xfe\xf9\x62\x06\x6d\x2d\x31\x06\x6f\x2d"
    "\x37\x06\x62\x2d\x39\x04\x02\x02\x00\x02\x0a\x00\x01\x00\x01";
static const char py_refund_v2[] =
    "\xc3\x01\x48\x46\x79\xd4\x3c\xbf\xc3\x7f\x10\x65\x76\x74\x2d\x70"
    "\x79\x2d\x31\xe0\x83\xaa\xfe\xf9\x62\x06\x6d\x2d\x31\x06\x6f\x2d"
    "\x37\x06\x62\x2d\x39\x06\x72\x2d\x33\x0a\x02\x06\x90\x4e\x02\x06"
    "\x02\x80\x9c\xfc\x9e\xf9\x62\x01";
static const char py_refund_v1[] =
    "\xc3\x01\x5e\xa3\xd6\x70\x1f\xaf\xe0\x57\x10\x65\x76\x74\x2d\x70"
    "\x79\x2d\x31\xe0\x83\xaa\xfe\xf9\x62\x06\x6d\x2d\x31\x06\x6f\x2d"
    "\x37\x06\x62\x2d\x39\x06\x72\x2d\x34\x00\x00\x0e\x02\x00";
static const char py_score[] =
    "\xc3\x01\x40\x65\xc9\xf4\x29\x29\x45\xaa\x06\x6d\x2d\x31\x00\x00"
    "\x00\x00\x00\xe0\x55\x40\x04\x00\x00\x00\x00\x00\x00\xe8\x3f\x02"
    "\x14\x66\x75\x6c\x66\x69\x6c\x6d\x65\x6e\x74\x00\x00\x00\x00\x00"
    "\x80\x56\x40\x00\x04\x20\x6c\x61\x74\x65\x20\x73\x68\x69\x70\x70"
    "\x69\x6e\x67\x20\x33\x25\x16\x72\x65\x66\x75\x6e\x64\x73\x20\x6c"
    "\x6f\x77\x00\x54\x08\x76\x30\x2e\x31\xe0\x83\xaa\xfe\xf9\x62";

/*
 * Fixtures and helpers
 */

static int group_setup(void **state) {
    char errstr[512];
    td_codec_t *c = td_codec_new(errstr, sizeof(errstr));

    if (c == NULL) {
        print_error("td_codec_new: %s\n", errstr);
        return -1;
    }
    *state = c;
    return 0;
}

static int group_teardown(void **state) {
    td_codec_destroy(*state);
    return 0;
}

static void make_common(td_event_t *ev, td_event_kind_t kind) {
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->event_id = STR("evt-1");
    ev->merchant_id = STR(MERCHANT);
    ev->order_id = STR("o-1");
    ev->buyer_id = STR("b-1");
    ev->event_time = EV_TIME;
}

static void make_order(td_event_t *ev) {
    td_order_t *o = &ev->u.order;

    make_common(ev, TD_EV_ORDER);
    o->status = TD_ORDER_SHIPPED;
    o->amount_cents = 4999;
    o->channel = TD_CHANNEL_LIVE;
    o->cancelled_by = TD_NULL_ENUM;
    o->promised_ship_by = EV_TIME + 86400000;
    o->promised_delivery_by = TD_NULL_TS;
    o->tracking_valid = 1;
    o->paid_at = EV_TIME - 3600000;
    o->shipped_at = TD_NULL_TS;
    o->buyer_order_seq = 2;
}

static void make_review(td_event_t *ev) {
    td_review_t *r = &ev->u.review;

    make_common(ev, TD_EV_REVIEW);
    r->rating = 4;
    r->quality_rating = 5;
    r->service_rating = TD_NULL_INT;
    r->logistics_rating = 3;
    r->value_rating = TD_NULL_INT;
    r->has_media = 1;
    r->is_followup = 0;
    r->flagged = 1;
}

static void make_refund(td_event_t *ev) {
    td_refund_t *r = &ev->u.refund;

    make_common(ev, TD_EV_REFUND);
    r->refund_id = STR("r-1");
    r->status = TD_REFUND_ESCALATED;
    r->kind = TD_KIND_RETURN_AND_REFUND;
    r->reason = TD_REASON_DAMAGED;
    r->amount_cents = 1500;
    r->responsible = TD_NULL_ENUM;
    r->requested_at = EV_TIME - 60000;
    r->was_rejected = 1;
}

static void make_score(td_score_rec_t *s) {
    memset(s, 0, sizeof(*s));
    snprintf(s->merchant_id, sizeof(s->merchant_id), "%s", MERCHANT);
    s->score = 73.25;
    s->tier = 3;
    s->confidence = 0.5;
    s->dim_cnt = 2;
    s->dim_names[0] = "fulfilment";
    s->dims[0] = 80.0;
    s->dim_names[1] = "after_sales";
    s->dims[1] = 61.5;
    s->reason_cnt = 2;
    snprintf(s->reasons[0], sizeof(s->reasons[0]), "refund rate 4.1%%");
    snprintf(s->reasons[1], sizeof(s->reasons[1]), "late shipping");
    s->version = 17;
    s->model_version = "tm-1";
    s->as_of_ms = EV_TIME;
}

static size_t encode_with(td_codec_t *c,
                          const char *file,
                          const td_event_t *ev,
                          uint8_t *buf,
                          size_t size) {
    char errstr[512];
    size_t len = 0;
    int rc =
        file ? td_codec_encode_with(c, file, ev, buf, size, &len, errstr,
                                    sizeof(errstr))
             : td_codec_encode(c, ev, buf, size, &len, errstr, sizeof(errstr));

    if (rc != TD_OK) fail_msg("encode: %s", errstr);
    return len;
}

static size_t
encode(td_codec_t *c, const td_event_t *ev, uint8_t *buf, size_t size) {
    return encode_with(c, NULL, ev, buf, size);
}

/* Decodes with key MERCHANT, NOW_MS and v (NULL: defaults). */
static td_dlq_reason_t decode_v(td_codec_t *c,
                                td_event_kind_t kind,
                                const void *buf,
                                size_t len,
                                const td_validate_t *v,
                                td_event_t *out,
                                char *errstr,
                                size_t errstr_size) {
    td_dlq_reason_t r =
        td_codec_decode(c, kind, MERCHANT, strlen(MERCHANT), buf, len, NOW_MS,
                        v, out, errstr, errstr_size);

    assert_true((unsigned)r < TD_DLQ__CNT);
    seen[r] = 1;
    return r;
}

static td_dlq_reason_t decode(td_codec_t *c,
                              td_event_kind_t kind,
                              const void *buf,
                              size_t len,
                              td_event_t *out,
                              char *errstr,
                              size_t errstr_size) {
    return decode_v(c, kind, buf, len, NULL, out, errstr, errstr_size);
}

/* Encodes ev, decodes it and expects reason want with errstr containing
 * needle (NULL: anything). */
static void expect_reason(td_codec_t *c,
                          const td_event_t *ev,
                          td_dlq_reason_t want,
                          const char *needle) {
    uint8_t buf[1024];
    size_t len = encode(c, ev, buf, sizeof(buf));
    char errstr[512];
    td_event_t out;
    td_dlq_reason_t r =
        decode(c, ev->kind, buf, len, &out, errstr, sizeof(errstr));

    if (r != want || (needle != NULL && strstr(errstr, needle) == NULL)) {
        fail_msg("got %s (%s), want %s with \"%s\"", td_dlq_reason_name(r),
                 errstr, td_dlq_reason_name(want), needle ? needle : "");
    }
}

static int str_eq(td_str_t a, td_str_t b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void assert_common_equal(const td_event_t *a, const td_event_t *b) {
    assert_int_equal(a->kind, b->kind);
    assert_true(str_eq(a->event_id, b->event_id));
    assert_true(str_eq(a->merchant_id, b->merchant_id));
    assert_true(str_eq(a->order_id, b->order_id));
    assert_true(str_eq(a->buyer_id, b->buyer_id));
    assert_true(a->event_time == b->event_time);
}

static void w_header(td_h_wbuf_t *w, td_codec_t *c, const char *file) {
    uint64_t fp = td_codec_fingerprint(c, file);

    assert_true(fp != 0);
    w->n = 0;
    td_h_wbyte(w, 0xc3);
    td_h_wbyte(w, 0x01);
    for (int i = 0; i < 8; i++)
        td_h_wbyte(w, (uint8_t)(fp >> (8 * i)));
}

/* Header and the five common fields of an event. */
static void w_common(td_h_wbuf_t *w, td_codec_t *c, const char *file) {
    w_header(w, c, file);
    td_h_wstr(w, "evt-1");
    td_h_wlong(w, EV_TIME);
    td_h_wstr(w, MERCHANT);
    td_h_wstr(w, "o-1");
    td_h_wstr(w, "b-1");
}

/* A review: rating as a raw long, then the rest valid. */
static void w_review(td_h_wbuf_t *w, td_codec_t *c, int64_t rating) {
    w_common(w, c, "review_event.avsc");
    td_h_wlong(w, rating);
    for (int i = 0; i < 4; i++)
        td_h_wlong(w, 0); /* null dimension ratings */
    td_h_wbyte(w, 0);
    td_h_wbyte(w, 0);
    td_h_wbyte(w, 0);
}

/* A v1 order with the given status index; other fields valid. */
static void w_order_v1(td_h_wbuf_t *w, td_codec_t *c, int64_t status) {
    w_common(w, c, "order_event.v1.avsc");
    td_h_wlong(w, status);
    td_h_wlong(w, 100); /* amount_cents */
    td_h_wlong(w, 0);   /* channel LIVE */
    td_h_wlong(w, 1);   /* cancelled_by: branch 1 */
    td_h_wlong(w, 0);   /* BUYER */
    td_h_wlong(w, 0);   /* promised_ship_by null */
    td_h_wlong(w, 0);   /* promised_delivery_by null */
    td_h_wlong(w, 0);   /* tracking_valid null */
}

static td_dlq_reason_t decode_w(td_codec_t *c,
                                td_event_kind_t kind,
                                const td_h_wbuf_t *w,
                                char *errstr,
                                size_t errstr_size) {
    td_event_t out;

    return decode(c, kind, w->b, w->n, &out, errstr, errstr_size);
}

/*
 * Round trips and schema resolution
 */

static void test_codec_fingerprints_match_golden_values(void **state) {
    td_codec_t *c = *state;

    /* Same values as test_fingerprint.c's golden[]. */
    assert_true(td_codec_fingerprint(c, "order_event.avsc") ==
                0xc4f36843b7fe7101ULL);
    assert_true(td_codec_fingerprint(c, "order_event.v1.avsc") ==
                0x995f7bb64a962994ULL);
    assert_true(td_codec_fingerprint(c, "trust_score.avsc") ==
                0xaa452929f4c96540ULL);
    assert_true(td_codec_fingerprint(c, "no_such.avsc") == 0);
}

static void test_decode_roundtrips_order(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_order(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    assert_int_equal(buf[0], 0xc3);
    assert_int_equal(buf[1], 0x01);
    assert_int_equal(
        decode(c, TD_EV_ORDER, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    assert_string_equal(errstr, "");
    assert_common_equal(&ev, &out);
    assert_memory_equal(&ev.u.order, &out.u.order, sizeof(td_order_t));
}

static void test_decode_roundtrips_review(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_review(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    assert_int_equal(
        decode(c, TD_EV_REVIEW, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    assert_common_equal(&ev, &out);
    assert_memory_equal(&ev.u.review, &out.u.review, sizeof(td_review_t));
}

static void test_decode_roundtrips_refund(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_refund(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    assert_int_equal(
        decode(c, TD_EV_REFUND, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    assert_common_equal(&ev, &out);
    assert_true(str_eq(ev.u.refund.refund_id, out.u.refund.refund_id));
    assert_int_equal(out.u.refund.status, ev.u.refund.status);
    assert_int_equal(out.u.refund.kind, ev.u.refund.kind);
    assert_int_equal(out.u.refund.reason, ev.u.refund.reason);
    assert_true(out.u.refund.amount_cents == ev.u.refund.amount_cents);
    assert_int_equal(out.u.refund.responsible, TD_NULL_ENUM);
    assert_true(out.u.refund.requested_at == ev.u.refund.requested_at);
    assert_int_equal(out.u.refund.was_rejected, 1);
}

static void test_decode_roundtrips_every_enum_symbol(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    for (int s = 0; s < TD_ORDER__CNT; s++) {
        for (int ch = 0; ch < TD_CHANNEL__CNT; ch++) {
            make_order(&ev);
            ev.u.order.status = s;
            ev.u.order.channel = ch;
            ev.u.order.cancelled_by = (s + ch) % TD_CANCEL__CNT;
            len = encode(c, &ev, buf, sizeof(buf));
            assert_int_equal(
                decode(c, TD_EV_ORDER, buf, len, &out, errstr, sizeof(errstr)),
                TD_DLQ_OK);
            assert_int_equal(out.u.order.status, s);
            assert_int_equal(out.u.order.channel, ch);
            assert_int_equal(out.u.order.cancelled_by, (s + ch) % 3);
        }
    }
    for (int s = 0; s < TD_REFUND__CNT; s++) {
        make_refund(&ev);
        ev.u.refund.status = s;
        ev.u.refund.kind = s % TD_KIND__CNT;
        ev.u.refund.reason = (s + 2) % TD_REASON__CNT;
        ev.u.refund.responsible = s % TD_RESP__CNT;
        len = encode(c, &ev, buf, sizeof(buf));
        assert_int_equal(
            decode(c, TD_EV_REFUND, buf, len, &out, errstr, sizeof(errstr)),
            TD_DLQ_OK);
        assert_int_equal(out.u.refund.status, s);
        assert_int_equal(out.u.refund.kind, s % TD_KIND__CNT);
        assert_int_equal(out.u.refund.reason, (s + 2) % TD_REASON__CNT);
        assert_int_equal(out.u.refund.responsible, s % TD_RESP__CNT);
    }
}

/* The enums in event.h must list the reader schemas' symbols in order. */
static void test_reader_enum_symbols_match_event_h(void **state) {
    static const struct {
        const char *file, *field;
        const char *symbols[9];
    } want[] = {
        {"order_event.avsc",
         "status",
         {"CREATED", "PAID", "SHIPPED", "DELIVERED", "COMPLETED", "CANCELLED"}},
        {"order_event.avsc", "channel", {"LIVE", "SHORT_VIDEO", "SHELF"}},
        {"order_event.avsc", "cancelled_by", {"BUYER", "MERCHANT", "PLATFORM"}},
        {"refund_event.avsc",
         "status",
         {"REQUESTED", "APPROVED", "REJECTED", "COMPLETED", "ESCALATED",
          "ARBITRATED"}},
        {"refund_event.avsc", "kind", {"REFUND_ONLY", "RETURN_AND_REFUND"}},
        {"refund_event.avsc",
         "reason",
         {"NO_REASON_7D", "QUALITY", "NOT_AS_DESCRIBED", "COUNTERFEIT",
          "NOT_RECEIVED", "DAMAGED", "LATE_DELIVERY", "OTHER"}},
        {"refund_event.avsc",
         "responsible",
         {"MERCHANT", "BUYER", "PLATFORM", "LOGISTICS"}},
    };
    const int cnt[] = {TD_ORDER__CNT,  TD_CHANNEL__CNT, TD_CANCEL__CNT,
                       TD_REFUND__CNT, TD_KIND__CNT,    TD_REASON__CNT,
                       TD_RESP__CNT};

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(want); i++) {
        const char *json = NULL;
        avro_schema_t s, f;

        for (size_t j = 0; j < td_schema_src_cnt; j++) {
            if (strcmp(td_schema_srcs[j].file, want[i].file) == 0)
                json = td_schema_srcs[j].json;
        }
        assert_non_null(json);
        assert_int_equal(avro_schema_from_json_length(json, strlen(json), &s),
                         0);
        f = avro_schema_record_field_get(s, want[i].field);
        if (is_avro_union(f)) f = avro_schema_union_branch(f, 1);
        assert_true(is_avro_enum(f));
        assert_int_equal(avro_schema_enum_number_of_symbols(f), cnt[i]);
        for (int k = 0; k < cnt[i]; k++)
            assert_string_equal(avro_schema_enum_get(f, k), want[i].symbols[k]);
        avro_schema_decref(s);
    }
}

static void test_decode_resolves_order_v1_with_defaults(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len, len2;

    make_order(&ev);
    len = encode_with(c, "order_event.v1.avsc", &ev, buf, sizeof(buf));
    len2 = encode(c, &ev, buf + 256, 256);
    assert_true(len < len2); /* v1 lacks three fields */
    assert_memory_not_equal(buf + 2, buf + 256 + 2, 8);
    assert_int_equal(
        decode(c, TD_EV_ORDER, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    assert_common_equal(&ev, &out);
    assert_int_equal(out.u.order.status, ev.u.order.status);
    assert_true(out.u.order.promised_ship_by == ev.u.order.promised_ship_by);
    assert_int_equal(out.u.order.tracking_valid, 1);
    /* Fields v1 does not have take the v2 defaults. */
    assert_true(out.u.order.paid_at == TD_NULL_TS);
    assert_true(out.u.order.shipped_at == TD_NULL_TS);
    assert_int_equal(out.u.order.buyer_order_seq, 0);
}

static void test_decode_resolves_refund_v1_with_defaults(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_refund(&ev);
    len = encode_with(c, "refund_event.v1.avsc", &ev, buf, sizeof(buf));
    assert_int_equal(
        decode(c, TD_EV_REFUND, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    assert_int_equal(out.u.refund.reason, TD_REASON_DAMAGED);
    assert_true(out.u.refund.requested_at == TD_NULL_TS);
    assert_int_equal(out.u.refund.was_rejected, 0);
}

static void test_decode_accepts_python_avro_messages(void **state) {
    td_codec_t *c = *state;
    td_event_t out;
    char errstr[256];

    assert_int_equal(decode(c, TD_EV_ORDER, py_order_v2,
                            sizeof(py_order_v2) - 1, &out, errstr,
                            sizeof(errstr)),
                     TD_DLQ_OK);
    assert_true(str_eq(out.event_id, STR("evt-py-1")));
    assert_true(out.event_time == EV_TIME);
    assert_int_equal(out.u.order.status, TD_ORDER_CANCELLED);
    assert_true(out.u.order.amount_cents == 129900);
    assert_int_equal(out.u.order.channel, TD_CHANNEL_SHORT_VIDEO);
    assert_int_equal(out.u.order.cancelled_by, TD_CANCEL_MERCHANT);
    assert_true(out.u.order.promised_ship_by == 1700086400000LL);
    assert_true(out.u.order.promised_delivery_by == TD_NULL_TS);
    assert_int_equal(out.u.order.tracking_valid, 0);
    assert_true(out.u.order.paid_at == 1699990000000LL);
    assert_true(out.u.order.shipped_at == TD_NULL_TS);
    assert_int_equal(out.u.order.buyer_order_seq, 4);

    assert_int_equal(decode(c, TD_EV_ORDER, py_order_v1,
                            sizeof(py_order_v1) - 1, &out, errstr,
                            sizeof(errstr)),
                     TD_DLQ_OK);
    assert_int_equal(out.u.order.status, TD_ORDER_SHIPPED);
    assert_true(out.u.order.promised_delivery_by == 1700200000000LL);
    assert_int_equal(out.u.order.tracking_valid, 1);
    assert_int_equal(out.u.order.buyer_order_seq, 0);

    assert_int_equal(decode(c, TD_EV_REVIEW, py_review, sizeof(py_review) - 1,
                            &out, errstr, sizeof(errstr)),
                     TD_DLQ_OK);
    assert_int_equal(out.u.review.rating, 2);
    assert_int_equal(out.u.review.quality_rating, 1);
    assert_int_equal(out.u.review.service_rating, TD_NULL_INT);
    assert_int_equal(out.u.review.logistics_rating, 5);
    assert_int_equal(out.u.review.has_media, 1);
    assert_int_equal(out.u.review.is_followup, 0);
    assert_int_equal(out.u.review.flagged, 1);

    assert_int_equal(decode(c, TD_EV_REFUND, py_refund_v2,
                            sizeof(py_refund_v2) - 1, &out, errstr,
                            sizeof(errstr)),
                     TD_DLQ_OK);
    assert_true(str_eq(out.u.refund.refund_id, STR("r-3")));
    assert_int_equal(out.u.refund.status, TD_REFUND_ARBITRATED);
    assert_int_equal(out.u.refund.kind, TD_KIND_RETURN_AND_REFUND);
    assert_int_equal(out.u.refund.reason, TD_REASON_COUNTERFEIT);
    assert_int_equal(out.u.refund.responsible, TD_RESP_LOGISTICS);
    assert_true(out.u.refund.requested_at == 1699900000000LL);
    assert_int_equal(out.u.refund.was_rejected, 1);

    assert_int_equal(decode(c, TD_EV_REFUND, py_refund_v1,
                            sizeof(py_refund_v1) - 1, &out, errstr,
                            sizeof(errstr)),
                     TD_DLQ_OK);
    assert_int_equal(out.u.refund.reason, TD_REASON_OTHER);
    assert_int_equal(out.u.refund.responsible, TD_NULL_ENUM);
}

static void test_encode_matches_python_avro_bytes(void **state) {
    td_codec_t *c = *state;
    td_event_t out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    /* Re-encoding what Python wrote must give Python's bytes back. */
    assert_int_equal(decode(c, TD_EV_ORDER, py_order_v2,
                            sizeof(py_order_v2) - 1, &out, errstr,
                            sizeof(errstr)),
                     TD_DLQ_OK);
    len = encode(c, &out, buf, sizeof(buf));
    assert_int_equal(len, sizeof(py_order_v2) - 1);
    assert_memory_equal(buf, py_order_v2, len);

    assert_int_equal(decode(c, TD_EV_REFUND, py_refund_v1,
                            sizeof(py_refund_v1) - 1, &out, errstr,
                            sizeof(errstr)),
                     TD_DLQ_OK);
    len = encode_with(c, "refund_event.v1.avsc", &out, buf, sizeof(buf));
    assert_int_equal(len, sizeof(py_refund_v1) - 1);
    assert_memory_equal(buf, py_refund_v1, len);
}

static void test_decode_strings_stay_valid_until_next_decode(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, a, b;
    uint8_t buf1[512], buf2[512];
    char errstr[256];
    size_t len1, len2;

    make_order(&ev);
    ev.order_id = STR("order-aaaa");
    len1 = encode(c, &ev, buf1, sizeof(buf1));
    make_review(&ev);
    len2 = encode(c, &ev, buf2, sizeof(buf2));
    assert_int_equal(
        decode(c, TD_EV_ORDER, buf1, len1, &a, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    /* Encoding does not touch decoded strings. */
    encode(c, &ev, buf2, sizeof(buf2));
    assert_true(str_eq(a.order_id, STR("order-aaaa")));
    assert_int_equal(
        decode(c, TD_EV_REVIEW, buf2, len2, &b, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    assert_true(str_eq(b.order_id, STR("o-1")));
}

/*
 * One test (at least) per DLQ reason
 */

static void test_decode_rejects_null_or_empty_value_as_tombstone(void **state) {
    td_codec_t *c = *state;
    td_event_t out;
    char errstr[256];

    assert_int_equal(
        decode(c, TD_EV_ORDER, NULL, 0, &out, errstr, sizeof(errstr)),
        TD_DLQ_TOMBSTONE);
    assert_int_equal(
        decode(c, TD_EV_ORDER, "x", 0, &out, errstr, sizeof(errstr)),
        TD_DLQ_TOMBSTONE);
}

static void test_decode_rejects_value_over_max_message_bytes(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    td_validate_t v;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_order(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    td_validate_defaults(&v);
    v.max_message_bytes = len;
    assert_int_equal(
        decode_v(c, TD_EV_ORDER, buf, len, &v, &out, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    v.max_message_bytes = len - 1;
    assert_int_equal(
        decode_v(c, TD_EV_ORDER, buf, len, &v, &out, errstr, sizeof(errstr)),
        TD_DLQ_TOO_LARGE);
    assert_non_null(strstr(errstr, "exceeds"));
}

static void test_decode_rejects_bad_magic(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_order(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    buf[1] = 0x02;
    assert_int_equal(
        decode(c, TD_EV_ORDER, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_BAD_MAGIC);
    assert_int_equal(
        decode(c, TD_EV_ORDER, "\xc3", 1, &out, errstr, sizeof(errstr)),
        TD_DLQ_BAD_MAGIC);
    assert_int_equal(decode(c, TD_EV_ORDER, "{\"json\":1}", 10, &out, errstr,
                            sizeof(errstr)),
                     TD_DLQ_BAD_MAGIC);
}


/*
 * Other libraries' fingerprints and the Confluent framing
 */

/* Python's (and goavro's) fingerprint of order_event.avsc and .v1.avsc:
 * python_golden[] in test_fingerprint.c. */
#define PY_FP_ORDER    0x79f8faa18bc5d14dULL
#define PY_FP_ORDER_V1 0x81d9979915d650bdULL

static void set_fp(uint8_t *buf, uint64_t fp) {
    for (int i = 0; i < 8; i++)
        buf[2 + i] = (uint8_t)(fp >> (8 * i));
}

static void test_decode_accepts_other_libraries_fingerprints(void **state) {
    td_codec_t *c = *state;
    uint8_t buf[sizeof(py_order_v2)];
    td_event_t out;
    char errstr[256];

    memcpy(buf, py_order_v2, sizeof(buf));
    set_fp(buf, PY_FP_ORDER);
    assert_int_equal(decode(c, TD_EV_ORDER, buf, sizeof(buf) - 1, &out, errstr,
                            sizeof(errstr)),
                     TD_DLQ_OK);
    assert_int_equal(out.u.order.buyer_order_seq, 4);
    memcpy(buf, py_order_v1, sizeof(py_order_v1));
    set_fp(buf, PY_FP_ORDER_V1);
    assert_int_equal(decode(c, TD_EV_ORDER, buf, sizeof(py_order_v1) - 1, &out,
                            errstr, sizeof(errstr)),
                     TD_DLQ_OK);
    assert_int_equal(out.u.order.status, TD_ORDER_SHIPPED);
}

/* A Confluent-framed copy of single-object message so with schema id. */
static size_t
to_confluent(uint8_t *dst, const void *so, size_t len, uint32_t id) {
    dst[0] = 0;
    dst[1] = (uint8_t)(id >> 24);
    dst[2] = (uint8_t)(id >> 16);
    dst[3] = (uint8_t)(id >> 8);
    dst[4] = (uint8_t)id;
    memcpy(dst + 5, (const uint8_t *)so + TD_CODEC_HDR_LEN,
           len - TD_CODEC_HDR_LEN);
    return len - TD_CODEC_HDR_LEN + 5;
}

/* The id a Confluent test gives a schema: fresh per test, since the
 * codec is shared and remembers ids. */
static uint32_t next_id = 1000;

static void test_schema_id_reads_only_whole_confluent_headers(void **state) {
    uint32_t id = 0;

    (void)state;
    assert_int_equal(td_codec_schema_id("\x00\x01\x02\x03\x04", 5, &id), 1);
    assert_true(id == 0x01020304u);
    assert_int_equal(td_codec_schema_id("\x00\xff\xff\xff\xff\x02", 6, &id), 1);
    assert_true(id == 0xffffffffu);
    assert_int_equal(td_codec_schema_id("\x00\x01\x02\x03", 4, &id), 0);
    assert_int_equal(td_codec_schema_id("\xc3\x01\x02\x03\x04", 5, &id), 0);
    assert_int_equal(td_codec_schema_id(NULL, 0, &id), 0);
}

static void test_decode_confluent_with_embedded_schema_text(void **state) {
    td_codec_t *c = *state;
    uint8_t so[512], cf[512];
    td_event_t ev, out;
    char errstr[256];
    uint32_t id = next_id++;
    const char *json = td_h_schema_json("order_event.v1.avsc");
    size_t len;

    make_order(&ev);
    ev.u.order.paid_at = TD_NULL_TS;
    ev.u.order.shipped_at = TD_NULL_TS;
    ev.u.order.buyer_order_seq = 0;
    assert_int_equal(td_codec_encode_with(c, "order_event.v1.avsc", &ev, so,
                                          sizeof(so), &len, errstr,
                                          sizeof(errstr)),
                     TD_OK);
    len = to_confluent(cf, so, len, id);
    assert_int_equal(td_codec_has_id(c, id), 0);
    assert_int_equal(
        decode(c, TD_EV_ORDER, cf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_UNKNOWN_SCHEMA_ID);
    assert_non_null(strstr(errstr, "schema id"));
    assert_int_equal(
        td_codec_add_id(c, id, json, strlen(json), errstr, sizeof(errstr)),
        TD_OK);
    assert_int_equal(td_codec_has_id(c, id), 1);
    assert_int_equal(
        decode(c, TD_EV_ORDER, cf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    assert_int_equal(out.u.order.status, TD_ORDER_SHIPPED);
    assert_true(out.u.order.amount_cents == 4999);
    /* Confluent framing on the wrong topic is still the wrong type. */
    assert_int_equal(
        decode(c, TD_EV_REVIEW, cf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_WRONG_TYPE);
    /* Truncated after the header, and a header cut short. */
    assert_int_equal(
        decode(c, TD_EV_ORDER, cf, len - 3, &out, errstr, sizeof(errstr)),
        TD_DLQ_TRUNCATED);
    assert_int_equal(
        decode(c, TD_EV_ORDER, cf, 4, &out, errstr, sizeof(errstr)),
        TD_DLQ_TRUNCATED);
}

/* A producer's own ReviewEvent, not one of the embedded schemas (fewer
 * fields, no logical type): compiled and resolved against the reader. */
static void test_decode_confluent_with_registry_only_schema(void **state) {
    td_codec_t *c = *state;
    const char *json = td_h_own_review_json;
    td_h_wbuf_t w = {0};
    td_event_t out;
    char errstr[256];
    uint32_t id = next_id++;

    assert_int_equal(
        td_codec_add_id(c, id, json, strlen(json), errstr, sizeof(errstr)),
        TD_OK);
    td_h_wbyte(&w, 0);
    for (int i = 3; i >= 0; i--)
        td_h_wbyte(&w, (uint8_t)(id >> (8 * i)));
    td_h_wstr(&w, "evt-1");
    td_h_wlong(&w, EV_TIME);
    td_h_wstr(&w, MERCHANT);
    td_h_wstr(&w, "o-1");
    td_h_wstr(&w, "b-1");
    td_h_wlong(&w, 4);
    td_h_wbyte(&w, 1);
    assert_int_equal(
        decode(c, TD_EV_REVIEW, w.b, w.n, &out, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    assert_int_equal(out.u.review.rating, 4);
    assert_int_equal(out.u.review.has_media, 1);
    assert_int_equal(out.u.review.flagged, 0);
    /* Trailing bytes are still caught after a Confluent header. */
    td_h_wbyte(&w, 0);
    assert_int_equal(decode_w(c, TD_EV_REVIEW, &w, errstr, sizeof(errstr)),
                     TD_DLQ_TRAILING_BYTES);
}

static void test_add_id_remembers_unusable_schemas(void **state) {
    td_codec_t *c = *state;
    static const struct {
        const char *json;
        td_dlq_reason_t why;
    } bad[] = {
        {"{\"type\":", TD_DLQ_INCOMPATIBLE_SCHEMA},
        {"\"long\"", TD_DLQ_INCOMPATIBLE_SCHEMA},
        {"{\"type\":\"record\",\"name\":\"Payment\",\"namespace\":\"acme\","
         "\"fields\":[{\"name\":\"a\",\"type\":\"long\"}]}",
         TD_DLQ_WRONG_TYPE},
        {td_h_bad_review_json, TD_DLQ_INCOMPATIBLE_SCHEMA},
        /* a required field missing */
        {"{\"type\":\"record\",\"name\":\"trustindex.ReviewEvent\",\"fields\":["
         "{\"name\":\"event_id\",\"type\":\"string\"}]}",
         TD_DLQ_INCOMPATIBLE_SCHEMA},
    };
    uint8_t msg[] = {0, 0, 0, 0, 0, 2, 'x'};
    td_event_t out;
    char errstr[256];

    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++) {
        uint32_t id = next_id++;

        assert_int_equal(td_codec_add_id(c, id, bad[i].json,
                                         strlen(bad[i].json), errstr,
                                         sizeof(errstr)),
                         TD_ERR);
        assert_non_null(strstr(errstr, "schema id"));
        assert_int_equal(td_codec_has_id(c, id), 1);
        msg[3] = (uint8_t)(id >> 8);
        msg[4] = (uint8_t)id;
        assert_int_equal(decode(c, TD_EV_REVIEW, msg, sizeof(msg), &out, errstr,
                                sizeof(errstr)),
                         bad[i].why);
    }
}

static void test_decode_rejects_unknown_fingerprint(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_order(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    buf[5] ^= 0x40;
    assert_int_equal(
        decode(c, TD_EV_ORDER, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_UNKNOWN_SCHEMA);
    assert_non_null(strstr(errstr, "fingerprint"));
}

static void test_decode_rejects_truncated_header(void **state) {
    td_codec_t *c = *state;
    td_event_t out;
    char errstr[256];

    assert_int_equal(decode(c, TD_EV_ORDER, "\xc3\x01\x01\x71\xfe", 5, &out,
                            errstr, sizeof(errstr)),
                     TD_DLQ_TRUNCATED);
}

static void test_decode_rejects_truncated_datum(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_order(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    /* Every proper prefix, from the bare header on. */
    for (size_t n = TD_CODEC_HDR_LEN; n < len; n++) {
        td_dlq_reason_t r =
            decode(c, TD_EV_ORDER, buf, n, &out, errstr, sizeof(errstr));

        if (r != TD_DLQ_TRUNCATED)
            fail_msg("prefix %zu: %s (%s)", n, td_dlq_reason_name(r), errstr);
    }
}

static void test_decode_rejects_huge_string_length(void **state) {
    td_codec_t *c = *state;
    char errstr[256];
    td_h_wbuf_t w;

    /* avro-c would malloc the length before checking it: the scan must
     * refuse it first. Try 1 GiB and INT64_MAX. */
    w_header(&w, c, "review_event.avsc");
    td_h_wlong(&w, 1LL << 30);
    td_h_wstr(&w, "tail");
    assert_int_equal(decode_w(c, TD_EV_REVIEW, &w, errstr, sizeof(errstr)),
                     TD_DLQ_TRUNCATED);
    assert_non_null(strstr(errstr, "event_id: length 1073741824"));

    w_header(&w, c, "review_event.avsc");
    td_h_wlong(&w, INT64_MAX);
    assert_int_equal(decode_w(c, TD_EV_REVIEW, &w, errstr, sizeof(errstr)),
                     TD_DLQ_TRUNCATED);
}

static void test_decode_rejects_trailing_bytes(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_review(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    buf[len] = 0;
    assert_int_equal(
        decode(c, TD_EV_REVIEW, buf, len + 1, &out, errstr, sizeof(errstr)),
        TD_DLQ_TRAILING_BYTES);
    assert_non_null(strstr(errstr, "1 bytes after"));
    /* A v1 order read as if it were longer: the v1 datum ends early. */
    make_order(&ev);
    len = encode_with(c, "order_event.v1.avsc", &ev, buf, sizeof(buf));
    memcpy(buf + len, "\x00\x00\x00", 3);
    assert_int_equal(
        decode(c, TD_EV_ORDER, buf, len + 3, &out, errstr, sizeof(errstr)),
        TD_DLQ_TRAILING_BYTES);
}

static void test_decode_rejects_negative_string_length(void **state) {
    td_codec_t *c = *state;
    char errstr[256];
    td_h_wbuf_t w;

    /* Length -1 would make avro-c write before its buffer. */
    w_header(&w, c, "review_event.avsc");
    td_h_wlong(&w, -1);
    td_h_wstr(&w, "padding-padding");
    assert_int_equal(decode_w(c, TD_EV_REVIEW, &w, errstr, sizeof(errstr)),
                     TD_DLQ_MALFORMED);
    assert_non_null(strstr(errstr, "negative length"));
}

static void test_decode_rejects_overlong_varint(void **state) {
    td_codec_t *c = *state;
    char errstr[256];
    td_h_wbuf_t w;

    w_header(&w, c, "review_event.avsc");
    td_h_wstr(&w, "evt-1");
    for (int i = 0; i < 10; i++)
        td_h_wbyte(&w, 0xff);
    td_h_wbyte(&w, 0x01);
    assert_int_equal(decode_w(c, TD_EV_REVIEW, &w, errstr, sizeof(errstr)),
                     TD_DLQ_MALFORMED);
    assert_non_null(strstr(errstr, "event_time: varint"));
}

static void test_decode_rejects_bad_union_branch(void **state) {
    td_codec_t *c = *state;
    char errstr[256];
    td_h_wbuf_t w;

    w_common(&w, c, "review_event.avsc");
    td_h_wlong(&w, 5);
    td_h_wlong(&w, 2); /* quality_rating: branch 2 of ["null", "int"] */
    td_h_wlong(&w, 5);
    assert_int_equal(decode_w(c, TD_EV_REVIEW, &w, errstr, sizeof(errstr)),
                     TD_DLQ_MALFORMED);
    assert_non_null(strstr(errstr, "quality_rating: union branch 2"));
}

static void test_decode_rejects_boolean_not_0_or_1(void **state) {
    td_codec_t *c = *state;
    char errstr[256];
    td_h_wbuf_t w;

    w_review(&w, c, 5);
    w.b[w.n - 2] = 7; /* is_followup */
    assert_int_equal(decode_w(c, TD_EV_REVIEW, &w, errstr, sizeof(errstr)),
                     TD_DLQ_MALFORMED);
    assert_non_null(strstr(errstr, "is_followup: boolean byte 7"));
}

static void test_decode_rejects_int_out_of_32_bit_range(void **state) {
    td_codec_t *c = *state;
    char errstr[256];
    td_h_wbuf_t w;

    w_review(&w, c, 1LL << 33);
    assert_int_equal(decode_w(c, TD_EV_REVIEW, &w, errstr, sizeof(errstr)),
                     TD_DLQ_MALFORMED);
    assert_non_null(strstr(errstr, "rating: int"));
}

static void test_decode_rejects_record_of_another_topic(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    td_score_rec_t s;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_review(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    assert_int_equal(
        decode(c, TD_EV_ORDER, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_WRONG_TYPE);
    assert_non_null(strstr(errstr, "ReviewEvent"));
    make_score(&s);
    assert_int_equal(td_codec_encode_score(c, &s, buf, sizeof(buf), &len,
                                           errstr, sizeof(errstr)),
                     TD_OK);
    assert_int_equal(
        decode(c, TD_EV_REFUND, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_WRONG_TYPE);
    assert_int_equal(
        decode(c, (td_event_kind_t)7, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_WRONG_TYPE);
}

static void test_decode_rejects_empty_merchant_id(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;

    make_review(&ev);
    ev.merchant_id = STR("");
    expect_reason(c, &ev, TD_DLQ_MERCHANT_ID_EMPTY, "merchant_id is empty");
}

static void test_decode_rejects_merchant_id_over_64_bytes(void **state) {
    td_codec_t *c = *state;
    char id[65];
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    memset(id, 'm', sizeof(id));
    make_review(&ev);
    ev.merchant_id.ptr = id;
    ev.merchant_id.len = 65;
    expect_reason(c, &ev, TD_DLQ_MERCHANT_ID_TOO_LONG,
                  "merchant_id is 65 bytes, more than 64");
    /* 64 bytes is fine when the key matches. */
    ev.merchant_id.len = 64;
    len = encode(c, &ev, buf, sizeof(buf));
    assert_int_equal(td_codec_decode(c, TD_EV_REVIEW, id, 64, buf, len, NOW_MS,
                                     NULL, &out, errstr, sizeof(errstr)),
                     TD_DLQ_OK);
    assert_int_equal(out.merchant_id.len, 64);
}

static void test_decode_rejects_key_other_than_merchant_id(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_order(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    assert_int_equal(td_codec_decode(c, TD_EV_ORDER, NULL, 0, buf, len, NOW_MS,
                                     NULL, &out, errstr, sizeof(errstr)),
                     TD_DLQ_KEY_MISMATCH);
    seen[TD_DLQ_KEY_MISMATCH] = 1;
    assert_int_equal(td_codec_decode(c, TD_EV_ORDER, "m-2", 3, buf, len, NOW_MS,
                                     NULL, &out, errstr, sizeof(errstr)),
                     TD_DLQ_KEY_MISMATCH);
    assert_non_null(strstr(errstr, "key m-2 differs from merchant_id m-1"));
    assert_int_equal(td_codec_decode(c, TD_EV_ORDER, "m-1x", 3 + 1, buf, len,
                                     NOW_MS, NULL, &out, errstr,
                                     sizeof(errstr)),
                     TD_DLQ_KEY_MISMATCH);
    assert_int_equal(td_codec_decode(c, TD_EV_ORDER, "m-", 2, buf, len, NOW_MS,
                                     NULL, &out, errstr, sizeof(errstr)),
                     TD_DLQ_KEY_MISMATCH);
}

static void test_decode_rejects_negative_amount(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;

    make_order(&ev);
    ev.u.order.amount_cents = -1;
    expect_reason(c, &ev, TD_DLQ_NEGATIVE_AMOUNT, "amount_cents -1 is below 0");
    make_refund(&ev);
    ev.u.refund.amount_cents = INT64_MIN;
    expect_reason(c, &ev, TD_DLQ_NEGATIVE_AMOUNT, "amount_cents");
    ev.u.refund.amount_cents = 0;
    expect_reason(c, &ev, TD_DLQ_OK, NULL);
}

static void test_decode_rejects_rating_outside_1_to_5(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;

    make_review(&ev);
    ev.u.review.rating = 7;
    expect_reason(c, &ev, TD_DLQ_RATING_RANGE, "rating 7 outside 1..5");
    ev.u.review.rating = 0;
    expect_reason(c, &ev, TD_DLQ_RATING_RANGE, "rating 0 outside 1..5");
    ev.u.review.rating = 1;
    ev.u.review.value_rating = 6;
    expect_reason(c, &ev, TD_DLQ_RATING_RANGE, "value_rating 6 outside 1..5");
    ev.u.review.value_rating = -3;
    expect_reason(c, &ev, TD_DLQ_RATING_RANGE, "value_rating -3");
    ev.u.review.value_rating = 5;
    expect_reason(c, &ev, TD_DLQ_OK, NULL);
}

static void test_decode_rejects_non_null_dimension_rating_0(void **state) {
    td_codec_t *c = *state;
    char errstr[256];
    td_h_wbuf_t w;

    /* 0 is TD_NULL_INT in C, but on the wire a non-null 0 is out of range. */
    w_common(&w, c, "review_event.avsc");
    td_h_wlong(&w, 5);
    td_h_wlong(&w, 1); /* quality_rating: int branch */
    td_h_wlong(&w, 0);
    for (int i = 0; i < 3; i++)
        td_h_wlong(&w, 0);
    for (int i = 0; i < 3; i++)
        td_h_wbyte(&w, 0);
    assert_int_equal(decode_w(c, TD_EV_REVIEW, &w, errstr, sizeof(errstr)),
                     TD_DLQ_RATING_RANGE);
    assert_non_null(strstr(errstr, "quality_rating 0 outside 1..5"));
}

static void test_decode_rejects_enum_index_outside_symbols(void **state) {
    td_codec_t *c = *state;
    char errstr[256];
    td_h_wbuf_t w;

    w_order_v1(&w, c, 5);
    assert_int_equal(decode_w(c, TD_EV_ORDER, &w, errstr, sizeof(errstr)),
                     TD_DLQ_OK);
    /* avro-c 1.11.1 would store index 6 without complaint. */
    w_order_v1(&w, c, 6);
    assert_int_equal(decode_w(c, TD_EV_ORDER, &w, errstr, sizeof(errstr)),
                     TD_DLQ_BAD_ENUM);
    assert_non_null(strstr(errstr, "status: enum index 6 outside 0..5"));
    w_order_v1(&w, c, -1);
    assert_int_equal(decode_w(c, TD_EV_ORDER, &w, errstr, sizeof(errstr)),
                     TD_DLQ_BAD_ENUM);
}

static void test_encode_rejects_enum_outside_symbols(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_order(&ev);
    ev.u.order.channel = TD_CHANNEL__CNT;
    assert_int_equal(
        td_codec_encode(c, &ev, buf, sizeof(buf), &len, errstr, sizeof(errstr)),
        TD_ERR);
    assert_non_null(strstr(errstr, "channel 3 has no symbol"));
}

static void test_decode_rejects_event_time_before_minimum(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    td_validate_t v;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_review(&ev);
    ev.event_time = 1420070399999LL; /* 2014-12-31T23:59:59.999Z */
    expect_reason(c, &ev, TD_DLQ_EVENT_TIME_TOO_OLD, "before 1420070400000");
    ev.event_time = INT64_MIN;
    expect_reason(c, &ev, TD_DLQ_EVENT_TIME_TOO_OLD, NULL);
    ev.event_time = 1420070400000LL;
    expect_reason(c, &ev, TD_DLQ_OK, NULL);

    td_validate_defaults(&v);
    v.min_event_time_ms = EV_TIME + 1;
    make_review(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    assert_int_equal(
        decode_v(c, TD_EV_REVIEW, buf, len, &v, &out, errstr, sizeof(errstr)),
        TD_DLQ_EVENT_TIME_TOO_OLD);
}

static void test_decode_rejects_event_time_in_the_future(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;

    make_review(&ev);
    ev.event_time = NOW_MS + 300000;
    expect_reason(c, &ev, TD_DLQ_OK, NULL);
    ev.event_time = NOW_MS + 300001;
    expect_reason(c, &ev, TD_DLQ_EVENT_TIME_FUTURE, "300001 ms after now");
    ev.event_time = INT64_MAX;
    expect_reason(c, &ev, TD_DLQ_EVENT_TIME_FUTURE, NULL);
}

static void test_decode_rejects_empty_ids(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;

    make_order(&ev);
    ev.event_id = STR("");
    expect_reason(c, &ev, TD_DLQ_MISSING_FIELD, "event_id is empty");
    make_order(&ev);
    ev.order_id = STR("");
    expect_reason(c, &ev, TD_DLQ_MISSING_FIELD, "order_id is empty");
    make_review(&ev);
    ev.buyer_id = STR("");
    expect_reason(c, &ev, TD_DLQ_MISSING_FIELD, "buyer_id is empty");
    make_refund(&ev);
    ev.u.refund.refund_id = STR("");
    expect_reason(c, &ev, TD_DLQ_MISSING_FIELD, "refund_id is empty");
}

static void
test_decode_rejects_cancelled_order_without_cancelled_by(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;

    make_order(&ev);
    ev.u.order.status = TD_ORDER_CANCELLED;
    expect_reason(c, &ev, TD_DLQ_MISSING_FIELD,
                  "cancelled_by is null on a CANCELLED order");
    ev.u.order.cancelled_by = TD_CANCEL_PLATFORM;
    expect_reason(c, &ev, TD_DLQ_OK, NULL);
}

static void
test_decode_rejects_arbitrated_refund_without_responsible(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;

    make_refund(&ev);
    ev.u.refund.status = TD_REFUND_ARBITRATED;
    expect_reason(c, &ev, TD_DLQ_MISSING_FIELD,
                  "responsible is null on an ARBITRATED refund");
    ev.u.refund.responsible = TD_RESP_MERCHANT;
    expect_reason(c, &ev, TD_DLQ_OK, NULL);
}

static void test_decode_rejects_negative_buyer_order_seq(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;

    make_order(&ev);
    ev.u.order.buyer_order_seq = -1;
    expect_reason(c, &ev, TD_DLQ_BAD_VALUE,
                  "buyer_order_seq -1 outside 0..2147483647");
}

static void
test_decode_rejects_non_null_timestamp_equal_to_null_sentinel(void **state) {
    td_codec_t *c = *state;
    char errstr[256];
    td_h_wbuf_t w;

    w_common(&w, c, "order_event.v1.avsc");
    td_h_wlong(&w, 0);         /* CREATED */
    td_h_wlong(&w, 1);         /* amount_cents */
    td_h_wlong(&w, 0);         /* LIVE */
    td_h_wlong(&w, 0);         /* cancelled_by null */
    td_h_wlong(&w, 1);         /* promised_ship_by: long branch */
    td_h_wlong(&w, INT64_MIN); /* == TD_NULL_TS */
    td_h_wlong(&w, 0);
    td_h_wlong(&w, 0);
    assert_int_equal(decode_w(c, TD_EV_ORDER, &w, errstr, sizeof(errstr)),
                     TD_DLQ_BAD_VALUE);
    assert_non_null(strstr(errstr, "promised_ship_by"));
}

/*
 * Encoding
 */

static void test_encode_fails_when_buffer_too_small(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;
    uint8_t buf[512];
    char errstr[256];
    size_t len, n;

    make_order(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    for (n = 0; n < len; n++) {
        if (td_codec_encode(c, &ev, buf, n, &len, errstr, sizeof(errstr)) !=
            TD_ERR)
            fail_msg("encode into %zu bytes succeeded", n);
        assert_non_null(strstr(errstr, "too small"));
    }
    assert_int_equal(
        td_codec_encode(c, &ev, buf, n, &len, errstr, sizeof(errstr)), TD_OK);
    assert_int_equal(len, n);
}

static void test_encode_with_rejects_unknown_or_foreign_schema(void **state) {
    td_codec_t *c = *state;
    td_event_t ev;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_order(&ev);
    assert_int_equal(td_codec_encode_with(c, "nope.avsc", &ev, buf, sizeof(buf),
                                          &len, errstr, sizeof(errstr)),
                     TD_ERR);
    assert_int_equal(td_codec_encode_with(c, "review_event.avsc", &ev, buf,
                                          sizeof(buf), &len, errstr,
                                          sizeof(errstr)),
                     TD_ERR);
    ev.kind = TD_EV__CNT;
    assert_int_equal(
        td_codec_encode(c, &ev, buf, sizeof(buf), &len, errstr, sizeof(errstr)),
        TD_ERR);
}

static void test_encode_with_v1_drops_fields_v1_lacks(void **state) {
    td_codec_t *c = *state;
    td_event_t ev, out;
    uint8_t buf[512];
    char errstr[256];
    size_t len;

    make_order(&ev);
    ev.u.order.shipped_at = EV_TIME;
    ev.u.order.buyer_order_seq = 9;
    len = encode_with(c, "order_event.v1.avsc", &ev, buf, sizeof(buf));
    assert_int_equal(
        decode(c, TD_EV_ORDER, buf, len, &out, errstr, sizeof(errstr)),
        TD_DLQ_OK);
    assert_true(out.u.order.shipped_at == TD_NULL_TS);
    assert_int_equal(out.u.order.buyer_order_seq, 0);
}

/*
 * TrustScore
 */

static void test_score_roundtrips(void **state) {
    td_codec_t *c = *state;
    td_score_rec_t s, out;
    uint8_t buf[1024];
    char errstr[256];
    size_t len;

    make_score(&s);
    assert_int_equal(td_codec_encode_score(c, &s, buf, sizeof(buf), &len,
                                           errstr, sizeof(errstr)),
                     TD_OK);
    assert_int_equal(
        td_codec_decode_score(c, buf, len, &out, errstr, sizeof(errstr)),
        TD_OK);
    assert_string_equal(out.merchant_id, s.merchant_id);
    assert_true(out.score == s.score);
    assert_int_equal(out.tier, s.tier);
    assert_true(out.confidence == s.confidence);
    assert_int_equal(out.dim_cnt, 2);
    for (int i = 0; i < 2; i++) {
        int j = strcmp(out.dim_names[0], s.dim_names[i]) == 0 ? 0 : 1;

        assert_string_equal(out.dim_names[j], s.dim_names[i]);
        assert_true(out.dims[j] == s.dims[i]);
    }
    assert_int_equal(out.reason_cnt, 2);
    assert_string_equal(out.reasons[0], s.reasons[0]);
    assert_string_equal(out.reasons[1], s.reasons[1]);
    assert_true(out.version == 17);
    assert_string_equal(out.model_version, "tm-1");
    assert_true(out.as_of_ms == EV_TIME);
}

/* The encoder keeps the sub_scores map's keys from one record to the
 * next: a sequence of records (same dimensions, fewer reasons, other
 * dimensions, a refused one) encodes each exactly as a fresh codec does. */
static void test_score_sequence_encodes_like_fresh_codecs(void **state) {
    td_codec_t *c = *state;
    td_score_rec_t s[4];
    char errstr[256];

    for (int i = 0; i < 4; i++)
        make_score(&s[i]);
    s[1].dims[0] = 12.5;
    s[1].reason_cnt = 1;
    s[2].dim_names[1] = "quality";
    s[2].reason_cnt = 0;
    s[3].dim_cnt = 1;
    s[3].dims[0] = 99;
    for (int i = 0; i < 4; i++) {
        uint8_t a[1024], b[1024];
        size_t alen, blen;
        td_codec_t *fresh = td_codec_new(errstr, sizeof(errstr));
        td_score_rec_t dup = s[i];

        assert_non_null(fresh);
        if (i == 3) { /* a refused record between two good ones */
            dup.dim_cnt = 2;
            dup.dim_names[1] = dup.dim_names[0];
            assert_int_equal(td_codec_encode_score(c, &dup, a, sizeof(a), &alen,
                                                   errstr, sizeof(errstr)),
                             TD_ERR);
        }
        assert_int_equal(td_codec_encode_score(c, &s[i], a, sizeof(a), &alen,
                                               errstr, sizeof(errstr)),
                         TD_OK);
        assert_int_equal(td_codec_encode_score(fresh, &s[i], b, sizeof(b),
                                               &blen, errstr, sizeof(errstr)),
                         TD_OK);
        assert_int_equal(alen, blen);
        assert_memory_equal(a, b, alen);
        td_codec_destroy(fresh);
    }
}

static void test_decode_score_accepts_python_avro_message(void **state) {
    td_codec_t *c = *state;
    td_score_rec_t out;
    char errstr[256];

    assert_int_equal(td_codec_decode_score(c, py_score, sizeof(py_score) - 1,
                                           &out, errstr, sizeof(errstr)),
                     TD_OK);
    assert_string_equal(out.merchant_id, "m-1");
    assert_true(out.score == 87.5);
    assert_int_equal(out.tier, 2);
    assert_int_equal(out.dim_cnt, 1);
    assert_string_equal(out.dim_names[0], "fulfilment");
    assert_true(out.dims[0] == 90.0);
    assert_int_equal(out.reason_cnt, 2);
    assert_string_equal(out.reasons[1], "refunds low");
    assert_true(out.version == 42);
    assert_string_equal(out.model_version, "v0.1");
}

static void test_decode_score_rejects_malformed_messages(void **state) {
    td_codec_t *c = *state;
    td_score_rec_t s, out;
    td_event_t ev;
    uint8_t buf[1024];
    char errstr[256];
    size_t len;

    make_score(&s);
    assert_int_equal(td_codec_encode_score(c, &s, buf, sizeof(buf), &len,
                                           errstr, sizeof(errstr)),
                     TD_OK);
    for (size_t n = 0; n < len; n++) {
        if (td_codec_decode_score(c, buf, n, &out, errstr, sizeof(errstr)) !=
            TD_ERR)
            fail_msg("prefix %zu decoded", n);
    }
    assert_int_equal(
        td_codec_decode_score(c, NULL, 0, &out, errstr, sizeof(errstr)),
        TD_ERR);
    assert_non_null(strstr(errstr, "tombstone"));
    make_order(&ev);
    len = encode(c, &ev, buf, sizeof(buf));
    assert_int_equal(
        td_codec_decode_score(c, buf, len, &out, errstr, sizeof(errstr)),
        TD_ERR);
    assert_non_null(strstr(errstr, "not a TrustScore"));
}

static void test_decode_score_rejects_more_dims_than_fit(void **state) {
    td_codec_t *c = *state;
    td_score_rec_t out;
    char errstr[256], key[16];
    td_h_wbuf_t w;

    w_header(&w, c, "trust_score.avsc");
    td_h_wstr(&w, "m-1");
    td_h_wdouble(&w, 50.0);
    td_h_wlong(&w, 3);
    td_h_wdouble(&w, 0.5);
    td_h_wlong(&w, TD_SCORE_MAX_DIMS + 1);
    for (int i = 0; i <= TD_SCORE_MAX_DIMS; i++) {
        snprintf(key, sizeof(key), "d%d", i);
        td_h_wstr(&w, key);
        td_h_wdouble(&w, i);
    }
    td_h_wlong(&w, 0); /* end of map */
    td_h_wlong(&w, 0); /* no reasons */
    td_h_wlong(&w, 1);
    td_h_wstr(&w, "tm");
    td_h_wlong(&w, EV_TIME);
    assert_int_equal(
        td_codec_decode_score(c, w.b, w.n, &out, errstr, sizeof(errstr)),
        TD_ERR);
    assert_non_null(strstr(errstr, "9 sub_scores"));
}

static void test_decode_score_rejects_huge_map_count(void **state) {
    td_codec_t *c = *state;
    td_score_rec_t out;
    char errstr[256];
    td_h_wbuf_t w;

    w_header(&w, c, "trust_score.avsc");
    td_h_wstr(&w, "m-1");
    td_h_wdouble(&w, 50.0);
    td_h_wlong(&w, 3);
    td_h_wdouble(&w, 0.5);
    td_h_wlong(&w, 1LL << 40);
    assert_int_equal(
        td_codec_decode_score(c, w.b, w.n, &out, errstr, sizeof(errstr)),
        TD_ERR);
    assert_non_null(strstr(errstr, "truncated"));
    /* A negative count with a block size that lies. */
    w_header(&w, c, "trust_score.avsc");
    td_h_wstr(&w, "m-1");
    td_h_wdouble(&w, 50.0);
    td_h_wlong(&w, 3);
    td_h_wdouble(&w, 0.5);
    td_h_wlong(&w, -1);
    td_h_wlong(&w, 3); /* block size; the entry takes 11 bytes */
    td_h_wstr(&w, "ab");
    td_h_wdouble(&w, 1.0);
    td_h_wlong(&w, 0);
    td_h_wlong(&w, 0);
    td_h_wlong(&w, 1);
    td_h_wstr(&w, "tm");
    td_h_wlong(&w, EV_TIME);
    assert_int_equal(
        td_codec_decode_score(c, w.b, w.n, &out, errstr, sizeof(errstr)),
        TD_ERR);
    assert_non_null(strstr(errstr, "malformed"));
}

static void test_encode_score_rejects_bad_counts_and_duplicates(void **state) {
    td_codec_t *c = *state;
    td_score_rec_t s;
    uint8_t buf[1024];
    char errstr[256];
    size_t len;

    make_score(&s);
    s.dim_cnt = TD_SCORE_MAX_DIMS + 1;
    assert_int_equal(td_codec_encode_score(c, &s, buf, sizeof(buf), &len,
                                           errstr, sizeof(errstr)),
                     TD_ERR);
    make_score(&s);
    s.reason_cnt = -1;
    assert_int_equal(td_codec_encode_score(c, &s, buf, sizeof(buf), &len,
                                           errstr, sizeof(errstr)),
                     TD_ERR);
    make_score(&s);
    s.dim_names[1] = s.dim_names[0];
    assert_int_equal(td_codec_encode_score(c, &s, buf, sizeof(buf), &len,
                                           errstr, sizeof(errstr)),
                     TD_ERR);
    assert_non_null(strstr(errstr, "twice"));
    make_score(&s);
    assert_int_equal(
        td_codec_encode_score(c, &s, buf, 20, &len, errstr, sizeof(errstr)),
        TD_ERR);
}

/*
 * DLQ reasons
 */

static void test_dlq_reason_names_are_unique_lower_snake_case(void **state) {
    (void)state;
    assert_string_equal(td_dlq_reason_name(TD_DLQ_OK), "ok");
    assert_string_equal(td_dlq_reason_name(TD_DLQ_BAD_MAGIC), "bad_magic");
    for (int r = 0; r < TD_DLQ__CNT; r++) {
        const char *n = td_dlq_reason_name((td_dlq_reason_t)r);

        assert_non_null(n);
        assert_true(strlen(n) > 0);
        assert_int_equal(strspn(n, "abcdefghijklmnopqrstuvwxyz_"), strlen(n));
        assert_true(strlen(td_dlq_reason_desc((td_dlq_reason_t)r)) > 0);
        for (int q = 0; q < r; q++)
            assert_string_not_equal(n, td_dlq_reason_name((td_dlq_reason_t)q));
    }
}

static void test_dlq_reason_out_of_range_is_unknown(void **state) {
    (void)state;
    assert_string_equal(td_dlq_reason_name(TD_DLQ__CNT), "unknown");
    assert_string_equal(td_dlq_reason_name((td_dlq_reason_t)-1), "unknown");
    assert_string_equal(td_dlq_reason_desc(TD_DLQ__CNT), "unknown reason");
}

/* Runs last: every reason must have come out of some test above. */
static void test_every_dlq_reason_is_exercised(void **state) {
    (void)state;
    for (int r = 0; r < TD_DLQ__CNT; r++) {
        if (!seen[r])
            fail_msg("no test produces %s",
                     td_dlq_reason_name((td_dlq_reason_t)r));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_fingerprints_match_golden_values),
        cmocka_unit_test(test_decode_roundtrips_order),
        cmocka_unit_test(test_decode_roundtrips_review),
        cmocka_unit_test(test_decode_roundtrips_refund),
        cmocka_unit_test(test_decode_roundtrips_every_enum_symbol),
        cmocka_unit_test(test_reader_enum_symbols_match_event_h),
        cmocka_unit_test(test_decode_resolves_order_v1_with_defaults),
        cmocka_unit_test(test_decode_resolves_refund_v1_with_defaults),
        cmocka_unit_test(test_decode_accepts_python_avro_messages),
        cmocka_unit_test(test_encode_matches_python_avro_bytes),
        cmocka_unit_test(test_decode_strings_stay_valid_until_next_decode),
        cmocka_unit_test(test_decode_rejects_null_or_empty_value_as_tombstone),
        cmocka_unit_test(test_decode_rejects_value_over_max_message_bytes),
        cmocka_unit_test(test_decode_rejects_bad_magic),
        cmocka_unit_test(test_decode_accepts_other_libraries_fingerprints),
        cmocka_unit_test(test_schema_id_reads_only_whole_confluent_headers),
        cmocka_unit_test(test_decode_confluent_with_embedded_schema_text),
        cmocka_unit_test(test_decode_confluent_with_registry_only_schema),
        cmocka_unit_test(test_add_id_remembers_unusable_schemas),
        cmocka_unit_test(test_decode_rejects_unknown_fingerprint),
        cmocka_unit_test(test_decode_rejects_truncated_header),
        cmocka_unit_test(test_decode_rejects_truncated_datum),
        cmocka_unit_test(test_decode_rejects_huge_string_length),
        cmocka_unit_test(test_decode_rejects_trailing_bytes),
        cmocka_unit_test(test_decode_rejects_negative_string_length),
        cmocka_unit_test(test_decode_rejects_overlong_varint),
        cmocka_unit_test(test_decode_rejects_bad_union_branch),
        cmocka_unit_test(test_decode_rejects_boolean_not_0_or_1),
        cmocka_unit_test(test_decode_rejects_int_out_of_32_bit_range),
        cmocka_unit_test(test_decode_rejects_record_of_another_topic),
        cmocka_unit_test(test_decode_rejects_empty_merchant_id),
        cmocka_unit_test(test_decode_rejects_merchant_id_over_64_bytes),
        cmocka_unit_test(test_decode_rejects_key_other_than_merchant_id),
        cmocka_unit_test(test_decode_rejects_negative_amount),
        cmocka_unit_test(test_decode_rejects_rating_outside_1_to_5),
        cmocka_unit_test(test_decode_rejects_non_null_dimension_rating_0),
        cmocka_unit_test(test_decode_rejects_enum_index_outside_symbols),
        cmocka_unit_test(test_encode_rejects_enum_outside_symbols),
        cmocka_unit_test(test_decode_rejects_event_time_before_minimum),
        cmocka_unit_test(test_decode_rejects_event_time_in_the_future),
        cmocka_unit_test(test_decode_rejects_empty_ids),
        cmocka_unit_test(
            test_decode_rejects_cancelled_order_without_cancelled_by),
        cmocka_unit_test(
            test_decode_rejects_arbitrated_refund_without_responsible),
        cmocka_unit_test(test_decode_rejects_negative_buyer_order_seq),
        cmocka_unit_test(
            test_decode_rejects_non_null_timestamp_equal_to_null_sentinel),
        cmocka_unit_test(test_encode_fails_when_buffer_too_small),
        cmocka_unit_test(test_encode_with_rejects_unknown_or_foreign_schema),
        cmocka_unit_test(test_encode_with_v1_drops_fields_v1_lacks),
        cmocka_unit_test(test_score_roundtrips),
        cmocka_unit_test(test_decode_score_accepts_python_avro_message),
        cmocka_unit_test(test_decode_score_rejects_malformed_messages),
        cmocka_unit_test(test_decode_score_rejects_more_dims_than_fit),
        cmocka_unit_test(test_decode_score_rejects_huge_map_count),
        cmocka_unit_test(test_encode_score_rejects_bad_counts_and_duplicates),
        cmocka_unit_test(test_score_sequence_encodes_like_fresh_codecs),
        cmocka_unit_test(test_dlq_reason_names_are_unique_lower_snake_case),
        cmocka_unit_test(test_dlq_reason_out_of_range_is_unknown),
        cmocka_unit_test(test_every_dlq_reason_is_exercised),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
