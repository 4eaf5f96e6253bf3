/*
 * fuzz_seeds.c - writes the starting corpus and dictionary for
 * tests/fuzz_decode.c.
 *
 * Usage: fuzz_seeds CORPUS_DIR [DICT_FILE]
 *
 * Every seed is one valid message in fuzz_decode's input layout (selector,
 * key length, key, value): orders, reviews and refunds encoded with every
 * embedded schema version, with optional fields both null and set, plus
 * TrustScores; each event also Confluent-framed with its fuzz_ids.h id. The
 * dictionary
 * holds the single-object headers of all schemas and the Confluent headers
 * of the fuzzer's ids, so mutations keep hitting known schemas.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "fuzz_ids.h"
#include "schemas_gen.h"

#define EV_TIME 1699999990000LL
#define STR(s)  ((td_str_t){(s), sizeof(s) - 1})

static int seed_cnt;

static int write_seed(const char *dir,
                      int sel,
                      const char *key,
                      const uint8_t *value,
                      size_t len) {
    char path[4096];
    FILE *f;
    uint8_t hdr[2];
    size_t klen = key ? strlen(key) : 0;

    snprintf(path, sizeof(path), "%s/seed-%03d", dir, seed_cnt++);
    f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    hdr[0] = (uint8_t)sel;
    hdr[1] = key ? (uint8_t)klen : 255;
    if (fwrite(hdr, 1, 2, f) != 2 ||
        fwrite(key ? key : "", 1, klen, f) != klen ||
        fwrite(value, 1, len, f) != len) {
        perror(path);
        fclose(f);
        return -1;
    }
    return fclose(f);
}

/* The single-object message so[0..len) again, Confluent-framed with id. */
static int write_confluent(
    const char *dir, int sel, uint32_t id, const uint8_t *so, size_t len) {
    uint8_t buf[4096];

    buf[0] = 0;
    for (int i = 0; i < 4; i++)
        buf[1 + i] = (uint8_t)(id >> (8 * (3 - i)));
    memcpy(buf + 5, so + TD_CODEC_HDR_LEN, len - TD_CODEC_HDR_LEN);
    return write_seed(dir, sel, "m-42", buf, len - TD_CODEC_HDR_LEN + 5);
}

static void fill_common(td_event_t *ev, td_event_kind_t kind, int i) {
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->event_id = i % 2 ? STR("evt-0001") : STR("e");
    ev->merchant_id = STR("m-42");
    ev->order_id = STR("ord-77");
    ev->buyer_id = i % 2 ? STR("buyer-9") : STR("b");
    ev->event_time = EV_TIME - i * 1000;
}

/* Variant i of an event of the given kind: i odd sets the optionals. */
static void fill_event(td_event_t *ev, td_event_kind_t kind, int i) {
    int set = i % 2;

    fill_common(ev, kind, i);
    switch (kind) {
    case TD_EV_ORDER:
        ev->u.order.status = i % TD_ORDER__CNT;
        ev->u.order.amount_cents = i * 1999;
        ev->u.order.channel = i % TD_CHANNEL__CNT;
        ev->u.order.cancelled_by = ev->u.order.status == TD_ORDER_CANCELLED
                                       ? i % TD_CANCEL__CNT
                                       : TD_NULL_ENUM;
        ev->u.order.promised_ship_by = set ? EV_TIME + 86400000 : TD_NULL_TS;
        ev->u.order.promised_delivery_by =
            set ? EV_TIME + 3 * 86400000LL : TD_NULL_TS;
        ev->u.order.tracking_valid = set ? i % 3 == 0 : TD_NULL_BOOL;
        ev->u.order.paid_at = set ? EV_TIME - 5000 : TD_NULL_TS;
        ev->u.order.shipped_at = set ? EV_TIME - 1000 : TD_NULL_TS;
        ev->u.order.buyer_order_seq = i;
        break;
    case TD_EV_REVIEW:
        ev->u.review.rating = 1 + i % 5;
        ev->u.review.quality_rating = set ? 1 + (i + 1) % 5 : TD_NULL_INT;
        ev->u.review.service_rating = set ? 5 : TD_NULL_INT;
        ev->u.review.logistics_rating = set ? 2 : TD_NULL_INT;
        ev->u.review.value_rating = set ? 3 : TD_NULL_INT;
        ev->u.review.has_media = set;
        ev->u.review.is_followup = !set;
        ev->u.review.flagged = i % 3 == 0;
        break;
    default:
        ev->u.refund.refund_id = STR("rf-5");
        ev->u.refund.status = i % TD_REFUND__CNT;
        ev->u.refund.kind = i % TD_KIND__CNT;
        ev->u.refund.reason = i % TD_REASON__CNT;
        ev->u.refund.amount_cents = i * 250;
        ev->u.refund.responsible =
            set || ev->u.refund.status == TD_REFUND_ARBITRATED
                ? i % TD_RESP__CNT
                : TD_NULL_ENUM;
        ev->u.refund.requested_at = set ? EV_TIME - 9000 : TD_NULL_TS;
        ev->u.refund.was_rejected = set;
        break;
    }
}

static int write_dict(td_codec_t *c, const char *path) {
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        perror(path);
        return -1;
    }
    for (size_t i = 0; i < td_schema_src_cnt; i++) {
        uint64_t fp = td_codec_fingerprint(c, td_schema_srcs[i].file);

        fprintf(f, "hdr_%zu=\"\\xc3\\x01", i);
        for (int b = 0; b < 8; b++)
            fprintf(f, "\\x%02x", (unsigned)(fp >> (8 * b)) & 0xff);
        fprintf(f, "\"\n");
    }
    for (unsigned id = 1; id <= 8; id++)
        fprintf(f, "cf_%u=\"\\x00\\x00\\x00\\x00\\x%02x\"\n", id, id);
    return fclose(f);
}

int main(int argc, char **argv) {
    static const char *files[][2] = {
        {"order_event.avsc", "order_event.v1.avsc"},
        {"review_event.avsc", NULL},
        {"refund_event.avsc", "refund_event.v1.avsc"},
    };
    uint8_t buf[4096];
    char errstr[512];
    td_codec_t *c;
    size_t len;

    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR [DICT_FILE]\n");
        return 2;
    }
    c = td_codec_new(errstr, sizeof(errstr));
    if (c == NULL) {
        fprintf(stderr, "fuzz_seeds: %s\n", errstr);
        return 1;
    }
    for (int k = 0; k < TD_EV__CNT; k++) {
        for (int v = 0; v < 2; v++) {
            if (files[k][v] == NULL) continue;
            for (int i = 0; i < 6; i++) {
                td_event_t ev;

                fill_event(&ev, (td_event_kind_t)k, i);
                uint32_t id = td_fuzz_id_of(files[k][v]);

                if (td_codec_encode_with(c, files[k][v], &ev, buf, sizeof(buf),
                                         &len, errstr, sizeof(errstr)) != 0 ||
                    write_seed(argv[1], k, "m-42", buf, len) != 0 ||
                    write_confluent(argv[1], k, id, buf, len) != 0) {
                    fprintf(stderr, "fuzz_seeds: %s: %s\n", files[k][v],
                            errstr);
                    td_codec_destroy(c);
                    return 1;
                }
            }
        }
    }
    for (int i = 0; i < 3; i++) {
        td_score_rec_t s;

        memset(&s, 0, sizeof(s));
        snprintf(s.merchant_id, sizeof(s.merchant_id), "m-42");
        s.score = 55.5 + i;
        s.tier = 1 + i;
        s.confidence = 0.25 * i;
        s.dim_cnt = i;
        s.dim_names[0] = "fulfilment";
        s.dim_names[1] = "reviews";
        s.dims[0] = 70;
        s.dims[1] = 40;
        s.reason_cnt = i;
        snprintf(s.reasons[0], sizeof(s.reasons[0]), "late shipping");
        snprintf(s.reasons[1], sizeof(s.reasons[1]), "refunds 4%%");
        s.version = i;
        s.model_version = "tm-1";
        s.as_of_ms = EV_TIME;
        if (td_codec_encode_score(c, &s, buf, sizeof(buf), &len, errstr,
                                  sizeof(errstr)) != 0 ||
            write_seed(argv[1], 3, NULL, buf, len) != 0) {
            fprintf(stderr, "fuzz_seeds: score: %s\n", errstr);
            td_codec_destroy(c);
            return 1;
        }
    }
    if (argc > 2 && write_dict(c, argv[2]) != 0) {
        td_codec_destroy(c);
        return 1;
    }
    td_codec_destroy(c);
    printf("fuzz_seeds: %d seeds in %s\n", seed_cnt, argv[1]);
    return 0;
}
