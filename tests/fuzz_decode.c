/*
 * fuzz_decode.c - libFuzzer target over the whole decode-and-validate path
 * of the codec (processor/codec.c). Built and run by tests/fuzz.sh.
 *
 * Input layout: selector, key length, key, value.
 *   selector % 4: 0 orders, 1 reviews, 2 refunds (td_codec_decode with that
 *                 kind), 3 td_codec_decode_score;
 *   key length:   255 means "no key" (NULL), otherwise that many bytes
 *                 (clipped to what is left) form the Kafka key.
 * Key and value are copied into buffers of exactly their size, so ASan sees
 * any read past either. Besides "no crash, no leak, no UB" it checks:
 *   - a rejected message has a non-empty errstr;
 *   - an accepted event honours the contract (merchant_id 1..64 bytes and
 *     equal to the key, ids non-empty, ratings and enums in range);
 *   - encode(decode(x)) is a fixed point: re-encoding the re-decoded event
 *     gives the same bytes again (the same for scores).
 * The codec knows the Confluent schema ids of fuzz_ids.h, so values in both
 * framings (single-object, and 00 + 4-byte id) reach the datum scan.
 * fuzz_seeds.c writes valid messages of every schema in this layout, in
 * both framings, as the starting corpus.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz_ids.h"

#define NOW_MS 1700000000000LL

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer calls the target in one thread, so one codec for the run,
 * created before the first input (so its allocations are not counted
 * against that input by the leak check) and destroyed at exit (so the
 * final leak check sees every avro-c allocation freed). */
static td_codec_t *codec;

static void destroy_codec(void) {
    td_codec_destroy(codec);
    codec = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char errstr[512];

    (void)argc;
    (void)argv;
    codec = td_codec_new(errstr, sizeof(errstr));
    if (codec == NULL || td_fuzz_add_ids(codec, errstr, sizeof(errstr))) {
        fprintf(stderr, "fuzz_decode: %s\n", errstr);
        abort();
    }
    atexit(destroy_codec);
    return 0;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_decode: invariant failed: %s\n", what);
        abort();
    }
}

/* Touches every byte so ASan checks the borrowed string. */
static unsigned str_sum(td_str_t s) {
    unsigned sum = 0;

    check(s.len == 0 || s.ptr != NULL, "string without pointer");
    for (size_t i = 0; i < s.len; i++)
        sum += (unsigned char)s.ptr[i];
    return sum;
}

static void check_event(const td_event_t *ev, const void *key, size_t klen) {
    volatile unsigned sum = 0;

    sum += str_sum(ev->event_id) + str_sum(ev->order_id);
    sum += str_sum(ev->buyer_id) + str_sum(ev->merchant_id);
    (void)sum;
    check(ev->merchant_id.len >= 1 && ev->merchant_id.len <= 64,
          "merchant_id length");
    check(key != NULL && klen == ev->merchant_id.len &&
              memcmp(key, ev->merchant_id.ptr, klen) == 0,
          "key equals merchant_id");
    check(ev->event_id.len > 0 && ev->order_id.len > 0 && ev->buyer_id.len > 0,
          "ids non-empty");
    switch (ev->kind) {
    case TD_EV_ORDER:
        check(ev->u.order.status >= 0 && ev->u.order.status < TD_ORDER__CNT,
              "order status");
        check(ev->u.order.amount_cents >= 0, "order amount");
        check(ev->u.order.status != TD_ORDER_CANCELLED ||
                  ev->u.order.cancelled_by != TD_NULL_ENUM,
              "cancelled_by");
        break;
    case TD_EV_REVIEW:
        check(ev->u.review.rating >= 1 && ev->u.review.rating <= 5, "rating");
        check(ev->u.review.quality_rating >= 0 &&
                  ev->u.review.quality_rating <= 5,
              "quality_rating");
        break;
    case TD_EV_REFUND:
        check(str_sum(ev->u.refund.refund_id) + 1 > 0 &&
                  ev->u.refund.refund_id.len > 0,
              "refund_id");
        check(ev->u.refund.reason >= 0 && ev->u.refund.reason < TD_REASON__CNT,
              "refund reason");
        check(ev->u.refund.status != TD_REFUND_ARBITRATED ||
                  ev->u.refund.responsible != TD_NULL_ENUM,
              "responsible");
        break;
    default:
        check(0, "event kind");
    }
}

static void fuzz_event(td_event_kind_t kind,
                       const void *key,
                       size_t klen,
                       const void *value,
                       size_t len) {
    static uint8_t enc1[70000], enc2[70000];
    char errstr[512];
    td_event_t ev;
    size_t n1, n2;
    td_dlq_reason_t r;

    r = td_codec_decode(codec, kind, key, klen, value, len, NOW_MS, NULL, &ev,
                        errstr, sizeof(errstr));
    check(r < TD_DLQ__CNT, "reason in range");
    if (r != TD_DLQ_OK) {
        check(errstr[0] != '\0', "errstr set on rejection");
        return;
    }
    check_event(&ev, key, klen);
    check(td_codec_encode(codec, &ev, enc1, sizeof(enc1), &n1, errstr,
                          sizeof(errstr)) == TD_OK,
          "re-encode of a valid event");
    r = td_codec_decode(codec, kind, key, klen, enc1, n1, NOW_MS, NULL, &ev,
                        errstr, sizeof(errstr));
    check(r == TD_DLQ_OK, "decode of re-encoded event");
    check(td_codec_encode(codec, &ev, enc2, sizeof(enc2), &n2, errstr,
                          sizeof(errstr)) == TD_OK,
          "second re-encode");
    check(n1 == n2 && memcmp(enc1, enc2, n1) == 0, "encoding fixed point");
}

static void fuzz_score(const void *value, size_t len) {
    static uint8_t enc1[70000], enc2[70000];
    char errstr[512];
    td_score_rec_t rec;
    size_t n1, n2;

    if (td_codec_decode_score(codec, value, len, &rec, errstr,
                              sizeof(errstr)) != TD_OK) {
        check(errstr[0] != '\0', "errstr set on rejection");
        return;
    }
    check(strlen(rec.merchant_id) <= 64, "score merchant_id");
    check(rec.dim_cnt >= 0 && rec.dim_cnt <= TD_SCORE_MAX_DIMS, "dim_cnt");
    check(rec.reason_cnt >= 0 && rec.reason_cnt <= TD_SCORE_MAX_REASONS,
          "reason_cnt");
    /* A decoded score may hold a merchant_id with a NUL inside; the encoder
     * then writes the shorter string, so only demand a fixed point after
     * one round. */
    if (td_codec_encode_score(codec, &rec, enc1, sizeof(enc1), &n1, errstr,
                              sizeof(errstr)) != TD_OK)
        return;
    check(td_codec_decode_score(codec, enc1, n1, &rec, errstr,
                                sizeof(errstr)) == TD_OK,
          "decode of re-encoded score");
    check(td_codec_encode_score(codec, &rec, enc2, sizeof(enc2), &n2, errstr,
                                sizeof(errstr)) == TD_OK,
          "second score re-encode");
    check(n1 == n2 && memcmp(enc1, enc2, n1) == 0, "score fixed point");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t klen, vlen;
    uint8_t *key = NULL, *value;
    int sel;

    if (size < 2) return 0;
    sel = data[0] % 4;
    klen = data[1];
    data += 2;
    size -= 2;
    if (klen != 255) {
        if (klen > size) klen = size;
        key = malloc(klen ? klen : 1);
        check(key != NULL, "malloc");
        memcpy(key, data, klen);
        data += klen;
        size -= klen;
    } else {
        klen = 0;
    }
    vlen = size;
    value = malloc(vlen ? vlen : 1);
    check(value != NULL, "malloc");
    if (vlen > 0) memcpy(value, data, vlen);

    if (sel < 3)
        fuzz_event((td_event_kind_t)sel, key, klen, vlen ? value : NULL, vlen);
    else
        fuzz_score(vlen ? value : NULL, vlen);

    free(key);
    free(value);
    return 0;
}
