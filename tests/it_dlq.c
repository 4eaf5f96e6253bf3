/*
 * it_dlq.c - end to end: every message trustd consumes is either applied to
 * Redis or in the dead-letter topic, with its key and value bytes untouched
 * and headers naming the reason, the source and the time (issue 7).
 *
 * One real trustd, one redis-server and one td-kafka serve every test in
 * order. The test produces with its own producer (message.max.bytes raised
 * for the 1 MB case) and learns each message's offset from its delivery
 * report, so every dead letter is checked by its source offset. A tally of
 * what was produced (good per topic, bad per topic and reason) is compared
 * with trustd's /metrics after each test: applied + dead-lettered =
 * consumed, per topic and per reason.
 *
 *   orders/0, reviews/0, refunds/0   the bad-message cases, the interleaved
 *                                    stream, the log flood, the 1 MB message
 *   orders/1                         the dead-letter outage (trust-dlq made
 *                                    leaderless, then healed)
 *   reviews/1                        the schema registry outage
 *
 * Confluent-framed events (issue 20) take their writer schemas from a real
 * Apicurio Registry the harness starts (td_h_registry_start) and from a
 * schema map file; trustd is started in the temporary directory, so it
 * scores with its built-in model, not a file relative to the repository.
 *
 * trustd runs with message.timeout.ms=2000 so a dead letter that cannot be
 * delivered fails within the test's time, and log_error_interval_ms=1000
 * so the "(N identical suppressed)" line shows up quickly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <limits.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "common.h"
#include "harness.h"

#define HOUR      3600000LL
#define P_MAIN    0 /* partition of the cases, the mix, the flood */
#define P_HOLD    1 /* orders partition of the outage test */
#define DLQ_PARTS 4 /* td-kafka's trust-dlq partitions */
#define BIG_LEN   (1024 * 1024)
#define LARGE_LEN 70000 /* over trustd's 64 KiB max_message_bytes */
#define FLOOD     200
#define MIX_PAIRS 40

static const char *const topics[TD_EV__CNT] = {"orders", "reviews", "refunds"};

static td_h_redis_t redis;
static td_h_kafka_t kafka;
static td_h_proc_t trustd;
static td_h_registry_t registry;
static redisContext *rc;
static rd_kafka_t *prod;
static td_codec_t *codec;
static int http_port;
static int64_t t_base; /* event times are t_base minus a little */

/* What was produced: every message must end in exactly one of these. */
static uint64_t sent_good[TD_EV__CNT];
static uint64_t sent_bad[TD_EV__CNT][TD_DLQ__CNT];

/* ---- producing with known offsets ---- */

typedef struct sent_s {
    int done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
    int64_t at_ms; /* wall clock when produced */
} sent_t;

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    sent_t *s = m->_private;
    (void)rk;
    (void)opaque;
    if (!s) return;
    s->done = 1;
    s->err = m->err;
    s->partition = m->partition;
    s->offset = m->offset;
}

static rd_kafka_t *producer_new(const char *bootstrap) {
    static const char *props[][2] = {
        {"enable.idempotence", "true"},
        {"linger.ms", "5"},
        /* The 1 MB case: the producer must accept it. */
        {"message.max.bytes", "4000000"},
        {"batch.size", "4000000"},
    };
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;

    if (rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK)
        goto err;
    for (size_t i = 0; i < TD_ARRAY_LEN(props); i++) {
        if (rd_kafka_conf_set(kc, props[i][0], props[i][1], errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK)
            goto err;
    }
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    if (rk) return rk;
err:
    fprintf(stderr, "it_dlq producer: %s\n", errstr);
    rd_kafka_conf_destroy(kc);
    return NULL;
}

/* Produces one message (key and value may be NULL); s gets its offset once
 * flush_produced() returned. */
static void produce(td_event_kind_t kind,
                    int32_t partition,
                    const void *key,
                    size_t key_len,
                    const void *value,
                    size_t value_len,
                    sent_t *s) {
    rd_kafka_resp_err_t err;

    memset(s, 0, sizeof(*s));
    s->at_ms = td_now_ms();
    do {
        err = rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topics[kind]),
                                RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_KEY((void *)key, key ? key_len : 0),
                                RD_KAFKA_V_VALUE((void *)value, value_len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE(s), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(prod, 50);
    } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    if (err)
        fail_msg("producing to %s: %s", topics[kind], rd_kafka_err2str(err));
}

/* Every bad message produced, by source (filled in by flush_produced()),
 * for the check after shutdown that none was skipped. */
typedef struct badrec_s {
    td_event_kind_t kind;
    int32_t partition;
    int64_t offset;
} badrec_t;

#define MAX_BAD 2048
static badrec_t bads[MAX_BAD];
static size_t nbads;
static const sent_t *pend[MAX_BAD];
static td_event_kind_t pend_kind[MAX_BAD];
static size_t npend;

/* produce() for a message trustd must dead-letter for reason. */
static void produce_bad(td_event_kind_t kind,
                        td_dlq_reason_t reason,
                        int32_t partition,
                        const void *key,
                        size_t key_len,
                        const void *value,
                        size_t value_len,
                        sent_t *s) {
    produce(kind, partition, key, key_len, value, value_len, s);
    sent_bad[kind][reason]++;
    assert_true(npend < MAX_BAD);
    pend[npend] = s;
    pend_kind[npend++] = kind;
}

/* Waits for every delivery report and records the bad messages' offsets
 * (the sent_t of produce_bad() must live until here). */
static void flush_produced(void) {
    assert_int_equal(rd_kafka_flush(prod, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    for (size_t i = 0; i < npend; i++) {
        if (!pend[i]->done || pend[i]->err) continue;
        assert_true(nbads < MAX_BAD);
        bads[nbads++] =
            (badrec_t){pend_kind[i], pend[i]->partition, pend[i]->offset};
    }
    npend = 0;
}

static void assert_delivered(const sent_t *s, const char *what) {
    if (!s->done || s->err)
        fail_msg("%s: not delivered to Kafka: %s", what,
                 s->done ? rd_kafka_err2str(s->err) : "no report");
}

/* ---- events ---- */

static void make_event(td_event_t *ev,
                       td_event_kind_t kind,
                       const char *merchant,
                       int64_t t) {
    td_h_event(ev, kind, merchant, t);
    if (kind == TD_EV_REVIEW)
        ev->u.review.rating = 4;
    else if (kind == TD_EV_REFUND)
        ev->u.refund.amount_cents = 500;
}

/* Encodes ev into a new heap buffer of exactly *lenp bytes (+ slack). */
static uint8_t *encode_new(const td_event_t *ev, size_t *lenp) {
    uint8_t *buf = malloc(4096);
    char errstr[256];

    assert_non_null(buf);
    if (td_codec_encode(codec, ev, buf, 4096, lenp, errstr, sizeof(errstr)) !=
        TD_OK)
        fail_msg("encode: %s", errstr);
    return buf;
}

/* An order in the current schema with a raw status enum index. */
static void
w_order(td_h_wbuf_t *w, const char *merchant, int64_t t, int64_t status) {
    uint64_t fp = td_codec_fingerprint(codec, "order_event.avsc");

    assert_true(fp != 0);
    w->n = 0;
    td_h_wbyte(w, 0xc3);
    td_h_wbyte(w, 0x01);
    for (int i = 0; i < 8; i++)
        td_h_wbyte(w, (uint8_t)(fp >> (8 * i)));
    td_h_wstr(w, "e-raw");
    td_h_wlong(w, t);
    td_h_wstr(w, merchant);
    td_h_wstr(w, "o-1");
    td_h_wstr(w, "b-1");
    td_h_wlong(w, status);
    td_h_wlong(w, 100); /* amount_cents */
    td_h_wlong(w, 0);   /* channel LIVE */
    for (int i = 0; i < 6; i++)
        td_h_wlong(w, 0); /* cancelled_by .. shipped_at: null branch */
    td_h_wlong(w, 0);     /* buyer_order_seq */
}

/* ---- the bad-message cases ---- */

typedef struct dcase_s {
    const char *name;
    td_dlq_reason_t reason;
    td_event_kind_t kind; /* topic it is produced to */
    char merchant[48];
    char keybuf[128];
    const void *key; /* NULL: no key */
    size_t key_len;
    uint8_t *value; /* NULL: null value (tombstone) */
    size_t value_len;
    int64_t good_time; /* event_time of the good event that follows */
    sent_t bad, good;
} dcase_t;

typedef void (*build_fn)(dcase_t *c);

static void set_event(dcase_t *c, const td_event_t *ev) {
    c->value = encode_new(ev, &c->value_len);
}

static void order_with(dcase_t *c, td_event_t *ev) {
    make_event(ev, TD_EV_ORDER, c->merchant, c->good_time - 500);
}

static void b_bad_magic(dcase_t *c) {
    static const char json[] = "{\"merchant_id\":\"m\",\"rating\":5}";
    c->value = malloc(sizeof(json));
    assert_non_null(c->value);
    memcpy(c->value, json, sizeof(json) - 1);
    c->value_len = sizeof(json) - 1;
}

static void b_unknown_schema(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    set_event(c, &ev);
    for (int i = 2; i < TD_CODEC_HDR_LEN; i++)
        c->value[i] ^= 0x5a;
}

static void b_truncated(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    set_event(c, &ev);
    c->value_len = TD_CODEC_HDR_LEN + (c->value_len - TD_CODEC_HDR_LEN) / 2;
}

static void b_trailing(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    set_event(c, &ev);
    c->value[c->value_len++] = 0x00;
}

static void b_wrong_type(dcase_t *c) {
    td_event_t ev;
    make_event(&ev, TD_EV_REVIEW, c->merchant, c->good_time - 500);
    set_event(c, &ev);
}

static void b_merchant_empty(dcase_t *c) {
    td_event_t ev;
    make_event(&ev, TD_EV_REVIEW, "", c->good_time - 500);
    set_event(c, &ev);
}

static void b_merchant_long(dcase_t *c) {
    char id[TD_MERCHANT_ID_MAX + 2];
    td_event_t ev;
    snprintf(id, sizeof(id), "%s%0*d", c->merchant,
             (int)(TD_MERCHANT_ID_MAX + 1 - strlen(c->merchant)), 0);
    assert_int_equal(strlen(id), TD_MERCHANT_ID_MAX + 1);
    make_event(&ev, TD_EV_REVIEW, id, c->good_time - 500);
    set_event(c, &ev);
}

static void b_key_other(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    set_event(c, &ev);
    snprintf(c->keybuf, sizeof(c->keybuf), "%s-other", c->merchant);
    c->key_len = strlen(c->keybuf);
}

static void b_key_null(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    set_event(c, &ev);
    c->key = NULL;
    c->key_len = 0;
}

static void b_negative_amount(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    ev.u.order.amount_cents = -1;
    set_event(c, &ev);
}

static void b_negative_refund(dcase_t *c) {
    td_event_t ev;
    make_event(&ev, TD_EV_REFUND, c->merchant, c->good_time - 500);
    ev.u.refund.amount_cents = -250;
    set_event(c, &ev);
}

static void b_rating_7(dcase_t *c) {
    td_event_t ev;
    make_event(&ev, TD_EV_REVIEW, c->merchant, c->good_time - 500);
    ev.u.review.rating = 7;
    set_event(c, &ev);
}

static void b_rating_0(dcase_t *c) {
    td_event_t ev;
    make_event(&ev, TD_EV_REVIEW, c->merchant, c->good_time - 500);
    ev.u.review.rating = 0;
    set_event(c, &ev);
}

static void b_bad_enum(dcase_t *c) {
    td_h_wbuf_t w;
    w_order(&w, c->merchant, c->good_time - 500, 9); /* 6 symbols */
    c->value = malloc(w.n);
    assert_non_null(c->value);
    memcpy(c->value, w.b, w.n);
    c->value_len = w.n;
}

static void b_too_old(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    ev.event_time = 1420070400000LL - 1; /* 2014-12-31T23:59:59.999Z */
    set_event(c, &ev);
}

static void b_future(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    ev.event_time = td_now_ms() + HOUR;
    set_event(c, &ev);
}

static void b_cancelled_no_by(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    ev.u.order.status = TD_ORDER_CANCELLED;
    ev.u.order.cancelled_by = TD_NULL_ENUM;
    set_event(c, &ev);
}

static void b_arbitrated_no_resp(dcase_t *c) {
    td_event_t ev;
    make_event(&ev, TD_EV_REFUND, c->merchant, c->good_time - 500);
    ev.u.refund.status = TD_REFUND_ARBITRATED;
    ev.u.refund.responsible = TD_NULL_ENUM;
    set_event(c, &ev);
}

static void b_tombstone(dcase_t *c) {
    c->value = NULL;
    c->value_len = 0;
}

static void b_empty_value(dcase_t *c) {
    c->value = malloc(1); /* non-null, zero bytes: an empty value */
    assert_non_null(c->value);
    c->value_len = 0;
}

/* A valid-looking header and datum start, then filler. */
static void fill_big(dcase_t *c, size_t len) {
    td_event_t ev;
    size_t n;
    uint8_t *head;
    uint32_t x = 2463534242u;

    order_with(c, &ev);
    head = encode_new(&ev, &n);
    c->value = malloc(len);
    assert_non_null(c->value);
    memcpy(c->value, head, n);
    free(head);
    for (size_t i = n; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c->value[i] = (uint8_t)x;
    }
    c->value_len = len;
}

static void b_too_large(dcase_t *c) {
    fill_big(c, LARGE_LEN);
}

static void b_one_mb(dcase_t *c) {
    fill_big(c, BIG_LEN);
}

typedef struct case_def_s {
    const char *name;
    td_dlq_reason_t reason;
    td_event_kind_t kind;
    build_fn build;
} case_def_t;

/* clang-format off */
static const case_def_t case_defs[] = {
    {"not single-object encoded",      TD_DLQ_BAD_MAGIC,            TD_EV_ORDER,  b_bad_magic},
    {"unknown schema fingerprint",     TD_DLQ_UNKNOWN_SCHEMA,       TD_EV_ORDER,  b_unknown_schema},
    {"truncated datum",                TD_DLQ_TRUNCATED,            TD_EV_ORDER,  b_truncated},
    {"trailing byte after the datum",  TD_DLQ_TRAILING_BYTES,       TD_EV_ORDER,  b_trailing},
    {"review on the orders topic",     TD_DLQ_WRONG_TYPE,           TD_EV_ORDER,  b_wrong_type},
    {"empty merchant_id",              TD_DLQ_MERCHANT_ID_EMPTY,    TD_EV_REVIEW, b_merchant_empty},
    {"65-byte merchant_id",            TD_DLQ_MERCHANT_ID_TOO_LONG, TD_EV_REVIEW, b_merchant_long},
    {"key other than merchant_id",     TD_DLQ_KEY_MISMATCH,         TD_EV_ORDER,  b_key_other},
    {"no key",                         TD_DLQ_KEY_MISMATCH,         TD_EV_ORDER,  b_key_null},
    {"negative order amount",          TD_DLQ_NEGATIVE_AMOUNT,      TD_EV_ORDER,  b_negative_amount},
    {"negative refund amount",         TD_DLQ_NEGATIVE_AMOUNT,      TD_EV_REFUND, b_negative_refund},
    {"rating 7",                       TD_DLQ_RATING_RANGE,         TD_EV_REVIEW, b_rating_7},
    {"rating 0",                       TD_DLQ_RATING_RANGE,         TD_EV_REVIEW, b_rating_0},
    {"status enum index 9 of 6",       TD_DLQ_BAD_ENUM,             TD_EV_ORDER,  b_bad_enum},
    {"event_time in 2014",             TD_DLQ_EVENT_TIME_TOO_OLD,   TD_EV_ORDER,  b_too_old},
    {"event_time an hour ahead",       TD_DLQ_EVENT_TIME_FUTURE,    TD_EV_ORDER,  b_future},
    {"CANCELLED without cancelled_by", TD_DLQ_MISSING_FIELD,        TD_EV_ORDER,  b_cancelled_no_by},
    {"ARBITRATED without responsible", TD_DLQ_MISSING_FIELD,        TD_EV_REFUND, b_arbitrated_no_resp},
    {"null value (tombstone)",         TD_DLQ_TOMBSTONE,            TD_EV_ORDER,  b_tombstone},
    {"empty value",                    TD_DLQ_TOMBSTONE,            TD_EV_ORDER,  b_empty_value},
    {"70000-byte message",             TD_DLQ_TOO_LARGE,            TD_EV_ORDER,  b_too_large},
};
/* clang-format on */
#define NCASES TD_ARRAY_LEN(case_defs)

static const case_def_t one_mb_def = {"1 MiB message", TD_DLQ_TOO_LARGE,
                                      TD_EV_ORDER, b_one_mb};

/* ---- Confluent framing (issue 20) ---- */

#define MAP_ID      900001u /* order_event.v1.avsc in the schema map file */
#define UNKNOWN_ID  999999u /* in neither */
#define PY_FP_ORDER 0x79f8faa18bc5d14dULL /* Python's fingerprint */

static const char payment_json[] =
    "{\"type\":\"record\",\"name\":\"Payment\",\"namespace\":\"acme\","
    "\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}";

/* What was registered, by subject. */
#define MAX_REG 16
static struct {
    const char *subject;
    int64_t id;
} regs[MAX_REG];
static int nregs;

/* Registers json (once per subject) and gives the local codec the id too,
 * so case_build() can check the cases. */
static uint32_t reg_id(const char *subject, const char *json) {
    char errstr[512];
    int64_t id;

    for (int i = 0; i < nregs; i++) {
        if (!strcmp(regs[i].subject, subject)) return (uint32_t)regs[i].id;
    }
    id = td_h_registry_register(&registry, subject, json);
    if (id < 0) fail_msg("cannot register %s", subject);
    assert_true(nregs < MAX_REG);
    regs[nregs].subject = subject;
    regs[nregs++].id = id;
    td_codec_add_id(codec, (uint32_t)id, json, strlen(json), errstr,
                    sizeof(errstr));
    return (uint32_t)id;
}

/* Replaces a single-object header (10 bytes) by Confluent's (5). */
static void to_confluent(uint8_t **v, size_t *len, uint32_t id) {
    uint8_t *p = *v;

    memmove(p + 5, p + TD_CODEC_HDR_LEN, *len - TD_CODEC_HDR_LEN);
    p[0] = 0;
    p[1] = (uint8_t)(id >> 24);
    p[2] = (uint8_t)(id >> 16);
    p[3] = (uint8_t)(id >> 8);
    p[4] = (uint8_t)id;
    *len = *len - TD_CODEC_HDR_LEN + 5;
}

/* A review in review_json, Confluent-framed with id. */
static uint8_t *
cf_review(uint32_t id, const char *merchant, int64_t t, size_t *lenp) {
    td_h_wbuf_t w = {0};
    uint8_t *v;

    td_h_wbyte(&w, 0);
    for (int i = 3; i >= 0; i--)
        td_h_wbyte(&w, (uint8_t)(id >> (8 * i)));
    td_h_wstr(&w, "e-cf");
    td_h_wlong(&w, t);
    td_h_wstr(&w, merchant);
    td_h_wstr(&w, "o-1");
    td_h_wstr(&w, "b-1");
    td_h_wlong(&w, 4);
    td_h_wbyte(&w, 0);
    v = malloc(w.n);
    assert_non_null(v);
    memcpy(v, w.b, w.n);
    *lenp = w.n;
    return v;
}

static void b_cf_unknown_id(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    set_event(c, &ev);
    to_confluent(&c->value, &c->value_len, UNKNOWN_ID);
}

static void b_cf_payment(dcase_t *c) {
    td_event_t ev;
    order_with(c, &ev);
    set_event(c, &ev);
    to_confluent(&c->value, &c->value_len,
                 reg_id("payments-value", payment_json));
}

static void b_cf_incompatible(dcase_t *c) {
    c->value = cf_review(reg_id("reviews-bad-value", td_h_bad_review_json),
                         c->merchant, c->good_time - 500, &c->value_len);
}

/* clang-format off */
static const case_def_t cf_case_defs[] = {
    {"Confluent id unknown",            TD_DLQ_UNKNOWN_SCHEMA_ID,   TD_EV_ORDER,  b_cf_unknown_id},
    {"Confluent id of another record",  TD_DLQ_WRONG_TYPE,          TD_EV_ORDER,  b_cf_payment},
    {"Confluent id of a bad schema",    TD_DLQ_INCOMPATIBLE_SCHEMA, TD_EV_REVIEW, b_cf_incompatible},
};
/* clang-format on */
#define NCF TD_ARRAY_LEN(cf_case_defs)

static int mseq; /* makes every case merchant unique */

/* The bad values built so far: freed by values_free() at the end of each
 * test and, after a failed one, in teardown. */
#define MAX_VALUES 256
static uint8_t *values[MAX_VALUES];
static size_t nvalues;

static void values_free(void) {
    for (size_t i = 0; i < nvalues; i++)
        free(values[i]);
    nvalues = 0;
}

/* Builds the bad message of def for a fresh merchant and checks with a local
 * codec that it really is bad for the expected reason (so a failure later
 * is trustd's, not the test's). */
static void case_build(dcase_t *c, const case_def_t *def, const char *prefix) {
    td_event_t ev;
    char errstr[512];
    td_dlq_reason_t r;

    memset(c, 0, sizeof(*c));
    c->name = def->name;
    c->reason = def->reason;
    c->kind = def->kind;
    snprintf(c->merchant, sizeof(c->merchant), "%s-%d", prefix, mseq++);
    snprintf(c->keybuf, sizeof(c->keybuf), "%s", c->merchant);
    c->key = c->keybuf;
    c->key_len = strlen(c->keybuf);
    c->good_time = t_base - mseq * 1000LL;
    def->build(c);
    assert_true(nvalues < MAX_VALUES);
    values[nvalues++] = c->value;
    r = td_codec_decode(codec, c->kind, c->key, c->key_len, c->value,
                        c->value_len, td_now_ms(), NULL, &ev, errstr,
                        sizeof(errstr));
    if (r != c->reason)
        fail_msg("test bug: case \"%s\" decodes locally as %s (%s), not %s",
                 c->name, td_dlq_reason_name(r), errstr,
                 td_dlq_reason_name(c->reason));
}

/* Produces the bad message, then a valid event of the same merchant. */
static void case_produce(dcase_t *c, int32_t partition) {
    td_event_t ev;
    uint8_t buf[1024];
    size_t len;
    char errstr[256];

    produce_bad(c->kind, c->reason, partition, c->key, c->key_len, c->value,
                c->value_len, &c->bad);
    make_event(&ev, c->kind, c->merchant, c->good_time);
    if (td_codec_encode(codec, &ev, buf, sizeof(buf), &len, errstr,
                        sizeof(errstr)) != TD_OK)
        fail_msg("encode: %s", errstr);
    produce(c->kind, partition, c->merchant, strlen(c->merchant), buf, len,
            &c->good);
    sent_good[c->kind]++;
}

/* ---- Redis ---- */

/* The merchant's good events (cnt of them, the latest at t) are applied:
 * as_of_ms is t and the kind's lifetime-or-fresh count is cnt. */
static int merchant_applied(const char *merchant,
                            td_event_kind_t kind,
                            int64_t t,
                            double cnt) {
    static const char *const count_field[TD_EV__CNT] = {
        "orders_paid_total", "reviews_all_30d", "refunds_requested_30d"};
    char key[128];
    double asof, v;

    snprintf(key, sizeof(key), "trust:{%s}:signals", merchant);
    if (td_h_hget_double(rc, key, "as_of_ms", &asof) != 0 || (int64_t)asof != t)
        return 0;
    if (td_h_hget_double(rc, key, count_field[kind], &v) != 0) return 0;
    return v > cnt - 1e-9 && v < cnt + 1e-9;
}

static int64_t part_committed(const char *topic, int32_t partition) {
    char key[128];
    double v;
    snprintf(key, sizeof(key), "trust:part:{%s/%d}", topic, (int)partition);
    if (td_h_hget_double(rc, key, "committed", &v) != 0) return -1;
    return (int64_t)v;
}

/* ---- the dead-letter topic ---- */

typedef struct dl_s {
    char src_topic[64];
    int32_t src_part;
    int64_t src_off;
    char code[64];
    char reason[512];
    int64_t time;
    int headers; /* how many of the six were present */
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
} dl_t;

typedef struct dls_s {
    dl_t *v;
    size_t n, cap;
} dls_t;

static dls_t dlq;

static void dls_clear(dls_t *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].key);
        free(d->v[i].value);
    }
    d->n = 0;
}

static uint8_t *dup_or_null(const void *p, size_t len) {
    uint8_t *c;
    if (!p) return NULL;
    c = malloc(len ? len : 1);
    assert_non_null(c);
    memcpy(c, p, len);
    return c;
}

/* Copies header name as a string into buf; returns 1 if present. */
static int
header_str(rd_kafka_headers_t *h, const char *name, char *buf, size_t size) {
    const void *val;
    size_t len;
    if (!h || rd_kafka_header_get_last(h, name, &val, &len) !=
                  RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    if (len >= size) len = size - 1;
    memcpy(buf, val ? val : "", val ? len : 0);
    buf[val ? len : 0] = '\0';
    return 1;
}

static void on_dead_letter(const rd_kafka_message_t *m, void *arg) {
    dls_t *d = arg;
    rd_kafka_headers_t *h = NULL;
    char num[64];
    dl_t *x;

    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->v = realloc(d->v, d->cap * sizeof(*d->v));
        assert_non_null(d->v);
    }
    x = &d->v[d->n++];
    memset(x, 0, sizeof(*x));
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) h = NULL;
    x->headers +=
        header_str(h, "dlq.source.topic", x->src_topic, sizeof(x->src_topic));
    x->src_part = -1;
    if (header_str(h, "dlq.source.partition", num, sizeof(num))) {
        x->headers++;
        x->src_part = (int32_t)strtol(num, NULL, 10);
    }
    x->src_off = -1;
    if (header_str(h, "dlq.source.offset", num, sizeof(num))) {
        x->headers++;
        x->src_off = strtoll(num, NULL, 10);
    }
    if (header_str(h, "dlq.time", num, sizeof(num))) {
        x->headers++;
        x->time = strtoll(num, NULL, 10);
    }
    x->headers += header_str(h, "dlq.error.code", x->code, sizeof(x->code));
    x->headers +=
        header_str(h, "dlq.error.reason", x->reason, sizeof(x->reason));
    x->key = dup_or_null(m->key, m->key_len);
    x->key_len = m->key_len;
    x->value = dup_or_null(m->payload, m->len);
    x->value_len = m->len;
}

static int dlq_reload(void) {
    dls_clear(&dlq);
    return td_h_consume_all(kafka.bootstrap, "trust-dlq", on_dead_letter, &dlq);
}

/* The dead letters of source topic/partition@offset: the first, and how
 * many there are in *cnt. */
static const dl_t *
dl_find(const char *topic, int32_t partition, int64_t offset, int *cnt) {
    const dl_t *first = NULL;
    *cnt = 0;
    for (size_t i = 0; i < dlq.n; i++) {
        const dl_t *x = &dlq.v[i];
        if (x->src_off == offset && x->src_part == partition &&
            !strcmp(x->src_topic, topic)) {
            if (!first) first = x;
            (*cnt)++;
        }
    }
    return first;
}

/* The dead-letter cases a test waits for. */
typedef struct want_s {
    dcase_t *cases;
    size_t n;
} want_t;

/* Poll condition: every case's bad message has a dead letter. */
static int dlq_has_all(void *arg) {
    want_t *w = arg;
    int cnt;
    if (dlq_reload() < 0) return 0;
    for (size_t i = 0; i < w->n; i++) {
        dl_find(topics[w->cases[i].kind], w->cases[i].bad.partition,
                w->cases[i].bad.offset, &cnt);
        if (cnt == 0) return 0;
    }
    return 1;
}

static int
bytes_equal(const uint8_t *a, size_t alen, const void *b, size_t blen) {
    if (!a || !b) return !a && !b;
    return alen == blen && (alen == 0 || !memcmp(a, b, alen));
}

/* The dead letter of c's bad message is exact, and its good one has none. */
static void check_dead_letter(const dcase_t *c) {
    const char *topic = topics[c->kind];
    int cnt;
    const dl_t *d = dl_find(topic, c->bad.partition, c->bad.offset, &cnt);
    int64_t now = td_now_ms();

    if (!d)
        fail_msg("%s: no dead letter for %s/%d@%lld", c->name, topic,
                 (int)c->bad.partition, (long long)c->bad.offset);
    if (d->headers != 6)
        fail_msg("%s: %d of the 6 dlq.* headers", c->name, d->headers);
    if (strcmp(d->code, td_dlq_reason_name(c->reason)))
        fail_msg("%s: dlq.error.code \"%s\", expected \"%s\" (reason: %s)",
                 c->name, d->code, td_dlq_reason_name(c->reason), d->reason);
    if (strlen(d->reason) < 5)
        fail_msg("%s: dlq.error.reason \"%s\" says nothing", c->name,
                 d->reason);
    if (d->time < c->bad.at_ms - 1000 || d->time > now + 1000)
        fail_msg("%s: dlq.time %lld outside %lld..%lld", c->name,
                 (long long)d->time, (long long)c->bad.at_ms, (long long)now);
    if (!bytes_equal(d->key, d->key_len, c->key, c->key_len))
        fail_msg("%s: key changed (%s %zu bytes, sent %s %zu bytes)", c->name,
                 d->key ? "got" : "got null", d->key_len, c->key ? "" : "null",
                 c->key_len);
    if (!bytes_equal(d->value, d->value_len, c->value, c->value_len))
        fail_msg("%s: value changed (%s %zu bytes, sent %s %zu bytes)", c->name,
                 d->value ? "got" : "got null", d->value_len,
                 c->value ? "" : "null", c->value_len);
    dl_find(topic, c->good.partition, c->good.offset, &cnt);
    if (cnt) fail_msg("%s: the good event after it was dead-lettered", c->name);
}

/* ---- /metrics ---- */

/* GET path from trustd's HTTP port; returns the body (malloc'd) of a 200
 * answer, or NULL. */
static char *http_get(const char *path) {
    struct sockaddr_in sin;
    struct timeval tv = {5, 0};
    char req[256], *buf = NULL, *body;
    size_t len = 0, cap = 0;
    int fd, n, status = 0;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)http_port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                 path);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        write(fd, req, (size_t)n) != n)
        goto err;
    for (;;) {
        ssize_t r;
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 16384;
            buf = realloc(buf, cap);
            if (!buf) goto err;
        }
        r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    fd = -1;
    if (!buf) return NULL;
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/%*s %d", &status) != 1 || status != 200 ||
        !(body = strstr(buf, "\r\n\r\n")))
        goto err;
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
err:
    if (fd >= 0) close(fd);
    free(buf);
    return NULL;
}

/* Value of the sample whose name and labels start the line exactly as
 * "prefix"; 0 if absent. */
static uint64_t sample(const char *text, const char *prefix) {
    size_t plen = strlen(prefix);
    const char *p = text;

    while (p && *p) {
        if (!strncmp(p, prefix, plen) && p[plen] == ' ')
            return strtoull(p + plen + 1, NULL, 10);
        p = strchr(p, '\n');
        if (p) p++;
    }
    return 0;
}

typedef struct counts_s {
    uint64_t consumed, applied, dl[TD_DLQ__CNT], dl_sum;
} counts_t;

static void counts_of(const char *text, td_event_kind_t k, counts_t *c) {
    char name[256];

    memset(c, 0, sizeof(*c));
    snprintf(name, sizeof(name), "trustd_events_consumed_total{topic=\"%s\"}",
             topics[k]);
    c->consumed = sample(text, name);
    snprintf(name, sizeof(name), "trustd_events_applied_total{topic=\"%s\"}",
             topics[k]);
    c->applied = sample(text, name);
    for (int r = 1; r < TD_DLQ__CNT; r++) {
        snprintf(name, sizeof(name),
                 "trustd_events_dead_lettered_total{topic=\"%s\","
                 "reason=\"%s\"}",
                 topics[k], td_dlq_reason_name((td_dlq_reason_t)r));
        c->dl[r] = sample(text, name);
        c->dl_sum += c->dl[r];
    }
}

/* Poll condition: /metrics shows exactly the tally, for every topic. */
static int metrics_match_tally(void *arg) {
    char *text = http_get("/metrics");
    int ok = text != NULL;
    (void)arg;

    for (int k = 0; ok && k < TD_EV__CNT; k++) {
        counts_t c;
        uint64_t bad = 0;
        counts_of(text, (td_event_kind_t)k, &c);
        for (int r = 1; r < TD_DLQ__CNT; r++) {
            bad += sent_bad[k][r];
            ok = ok && c.dl[r] == sent_bad[k][r];
        }
        ok = ok && c.applied == sent_good[k] &&
             c.consumed == sent_good[k] + bad &&
             c.applied + c.dl_sum == c.consumed;
    }
    free(text);
    return ok;
}

/* Every message produced so far is consumed, and each is either applied or
 * dead-lettered for the reason it was sent with. */
static void assert_metrics_match_tally(void) {
    char *text;

    if (td_h_poll(metrics_match_tally, NULL, 30000)) return;
    text = http_get("/metrics");
    for (int k = 0; k < TD_EV__CNT; k++) {
        counts_t c;
        uint64_t bad = 0;
        if (!text) break;
        counts_of(text, (td_event_kind_t)k, &c);
        for (int r = 1; r < TD_DLQ__CNT; r++) {
            bad += sent_bad[k][r];
            if (c.dl[r] != sent_bad[k][r])
                print_error("%s %s: %llu dead-lettered, %llu sent\n", topics[k],
                            td_dlq_reason_name((td_dlq_reason_t)r),
                            (unsigned long long)c.dl[r],
                            (unsigned long long)sent_bad[k][r]);
        }
        print_error("%s: consumed %llu applied %llu dead-lettered %llu; "
                    "sent %llu good %llu bad\n",
                    topics[k], (unsigned long long)c.consumed,
                    (unsigned long long)c.applied, (unsigned long long)c.dl_sum,
                    (unsigned long long)sent_good[k], (unsigned long long)bad);
    }
    free(text);
    td_h_dump_log(&trustd);
    fail_msg("/metrics does not add up to what was produced");
}

/* ---- trustd's log ---- */

/* Lines of the log from line `from` on that contain every non-NULL needle;
 * *total (if not NULL) gets the log's line count. */
static int log_count(int from, const char *n1, const char *n2, int *total) {
    FILE *fp = fopen(trustd.log, "r");
    char *line = NULL;
    size_t cap = 0;
    int i = 0, hits = 0;

    if (!fp) {
        if (total) *total = 0;
        return 0;
    }
    while (getline(&line, &cap, fp) >= 0) {
        if (i++ >= from && (!n1 || strstr(line, n1)) &&
            (!n2 || strstr(line, n2)))
            hits++;
    }
    free(line);
    fclose(fp);
    if (total) *total = i;
    return hits;
}

/* Sum of N over the "(N identical suppressed)" of the lines from `from` on
 * that contain needle. */
static unsigned long log_suppressed(int from, const char *needle) {
    FILE *fp = fopen(trustd.log, "r");
    char *line = NULL;
    size_t cap = 0;
    int i = 0;
    unsigned long sum = 0;

    if (!fp) return 0;
    while (getline(&line, &cap, fp) >= 0) {
        const char *p;
        unsigned long n;
        if (i++ < from || !strstr(line, needle) ||
            !(p = strstr(line, " identical suppressed)")))
            continue;
        while (p > line && p[-1] >= '0' && p[-1] <= '9')
            p--;
        if (p > line && p[-1] == '(' && sscanf(p, "%lu", &n) == 1) sum += n;
    }
    free(line);
    fclose(fp);
    return sum;
}

static int trustd_alive(void) {
    int status;
    if (trustd.pid <= 0) return 0;
    if (waitpid(trustd.pid, &status, WNOHANG) == trustd.pid) {
        trustd.pid = 0;
        return 0;
    }
    return 1;
}

static void assert_trustd_alive(void) {
    if (!trustd_alive()) {
        td_h_dump_log(&trustd);
        fail_msg("trustd is not running");
    }
}

/* ---- fixtures ---- */

static int all_assigned(void *arg) {
    char *text = http_get("/metrics");
    int ok = text && sample(text, "trustd_assigned_partitions") ==
                         (uint64_t)(uintptr_t)arg;
    free(text);
    return ok;
}

/* The schema map file in the temporary directory: MAP_ID is
 * order_event.v1.avsc, by a path relative to the map file. */
static int write_schema_map(char *path, size_t size) {
    char avsc[512];
    const char *json = td_h_schema_json("order_event.v1.avsc");
    FILE *fp;

    snprintf(avsc, sizeof(avsc), "%s/order_v1.avsc", td_h_tmpdir());
    snprintf(path, size, "%s/schemas.map", td_h_tmpdir());
    if (!json || !(fp = fopen(avsc, "w"))) return -1;
    fputs(json, fp);
    fclose(fp);
    if (!(fp = fopen(path, "w"))) return -1;
    fprintf(fp, "# id  schema file\n%u order_v1.avsc\n", MAP_ID);
    fclose(fp);
    return 0;
}

/* Starts trustd in the temporary directory, where no schemas/model.conf
 * is: the built-in model must serve. */
static int trustd_start_elsewhere(const char *const *extra) {
    char cwd[PATH_MAX], bin[PATH_MAX];
    const char *dir = getenv("TD_BIN");
    int ret;

    if (!getcwd(cwd, sizeof(cwd)) ||
        !realpath(dir && *dir ? dir : "build", bin))
        return -1;
    setenv("TD_BIN", bin, 1);
    if (chdir(td_h_tmpdir()) != 0) return -1;
    ret = td_h_trustd_start(&trustd, "trustd", &kafka, &redis, "it-dlq", extra);
    if (chdir(cwd) != 0) return -1;
    return ret;
}

static int setup(void **state) {
    /* A real broker takes the 1 MiB order only into a topic configured
     * for it (the mock has no limit). */
    static const char *kargs[] = {"--partitions", "2", "--config",
                                  "orders:max.message.bytes=2097152", NULL};
    char port[16], errstr[512], map[512];
    const char *extra[] = {"--http-port",
                           port,
                           "--log-error-interval-ms",
                           "1000",
                           "-X",
                           "message.timeout.ms=2000",
                           "--schema-registry-url",
                           registry.url,
                           "--schema-map-file",
                           map,
                           "--schema-registry-timeout-ms",
                           "500",
                           "--schema-registry-retry-max-ms",
                           "1000",
                           NULL};
    (void)state;

    t_base = td_now_ms() - HOUR;
    if (!(codec = td_codec_new(errstr, sizeof(errstr)))) {
        print_error("codec: %s\n", errstr);
        return -1;
    }
    if (td_h_redis_start(&redis, NULL) || td_h_kafka_start(&kafka, kargs))
        return -1;
    if (!(rc = td_h_redis_connect(&redis))) return -1;
    if (!(prod = producer_new(kafka.bootstrap))) return -1;
    if (td_h_registry_start(&registry) != 0) {
        print_error("it_dlq: no schema registry: the Confluent tests need "
                    "Apicurio Registry (see above)\n");
        return -1;
    }
    if (write_schema_map(map, sizeof(map)) != 0) return -1;
    td_codec_add_id(codec, MAP_ID, td_h_schema_json("order_event.v1.avsc"),
                    strlen(td_h_schema_json("order_event.v1.avsc")), errstr,
                    sizeof(errstr));
    http_port = td_h_free_port();
    snprintf(port, sizeof(port), "%d", http_port);
    if (trustd_start_elsewhere(extra) != 0) return -1;
    /* orders, reviews and refunds with 2 partitions each */
    if (!td_h_poll(all_assigned, (void *)(uintptr_t)6, 30000)) {
        td_h_dump_log(&trustd);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (registry.proc.pid > 0) td_h_signal(&registry.proc, SIGCONT);
    if (trustd.pid > 0) {
        td_h_signal(&trustd, SIGKILL);
        td_h_wait(&trustd, 5000);
    }
    if (prod) {
        rd_kafka_flush(prod, 5000);
        rd_kafka_destroy(prod);
    }
    if (rc) redisFree(rc);
    td_h_kafka_stop(&kafka);
    td_h_redis_stop(&redis);
    td_h_registry_stop(&registry);
    dls_clear(&dlq);
    free(dlq.v);
    values_free();
    td_codec_destroy(codec);
    return 0;
}

/* ---- tests ---- */

static int cases_applied(void *arg) {
    want_t *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        if (!merchant_applied(a->cases[i].merchant, a->cases[i].kind,
                              a->cases[i].good_time, 1))
            return 0;
    }
    return 1;
}

static void
test_each_bad_message_is_dead_lettered_with_its_reason(void **state) {
    static dcase_t cases[NCASES];
    want_t want = {cases, NCASES};
    (void)state;

    for (size_t i = 0; i < NCASES; i++)
        case_build(&cases[i], &case_defs[i], "m-case");
    for (size_t i = 0; i < NCASES; i++)
        case_produce(&cases[i], P_MAIN);
    flush_produced();
    for (size_t i = 0; i < NCASES; i++) {
        assert_delivered(&cases[i].bad, cases[i].name);
        assert_delivered(&cases[i].good, cases[i].name);
    }

    /* The good event after each bad one is applied. */
    if (!td_h_poll(cases_applied, &want, 30000)) {
        for (size_t i = 0; i < NCASES; i++) {
            if (!merchant_applied(cases[i].merchant, cases[i].kind,
                                  cases[i].good_time, 1))
                print_error("not applied: the good event after \"%s\"\n",
                            cases[i].name);
        }
        td_h_dump_log(&trustd);
        fail_msg("good events after bad ones were not applied");
    }
    if (!td_h_poll(dlq_has_all, &want, 30000)) {
        for (size_t i = 0; i < NCASES; i++) {
            int cnt;
            dl_find(topics[cases[i].kind], cases[i].bad.partition,
                    cases[i].bad.offset, &cnt);
            if (!cnt)
                print_error("no dead letter: \"%s\" (%s/%d@%lld)\n",
                            cases[i].name, topics[cases[i].kind],
                            (int)cases[i].bad.partition,
                            (long long)cases[i].bad.offset);
        }
        td_h_dump_log(&trustd);
        fail_msg("dead letters missing");
    }
    for (size_t i = 0; i < NCASES; i++)
        check_dead_letter(&cases[i]);
    assert_metrics_match_tally();
    assert_trustd_alive();
    values_free();
}

typedef struct mix_s {
    const char *merchant;
    int64_t t;
    int good;
} mix_t;

static int mix_applied(void *arg) {
    mix_t *m = arg;
    return merchant_applied(m->merchant, TD_EV_ORDER, m->t, m->good);
}

static void test_poison_messages_never_stall_the_worker(void **state) {
    static dcase_t bad[MIX_PAIRS];
    static sent_t good[MIX_PAIRS];
    const case_def_t *defs[NCASES];
    size_t ndefs = 0;
    want_t want = {bad, MIX_PAIRS};
    mix_t mix = {"m-mix", 0, MIX_PAIRS};
    (void)state;

    /* Every orders-topic case, round robin, each followed by a good order
     * of one merchant. */
    for (size_t i = 0; i < NCASES; i++) {
        if (case_defs[i].kind == TD_EV_ORDER) defs[ndefs++] = &case_defs[i];
    }
    for (int i = 0; i < MIX_PAIRS; i++) {
        td_event_t ev;
        uint8_t buf[1024];
        size_t len;
        char errstr[256];

        case_build(&bad[i], defs[(size_t)i % ndefs], "m-mix-bad");
        produce_bad(TD_EV_ORDER, bad[i].reason, P_MAIN, bad[i].key,
                    bad[i].key_len, bad[i].value, bad[i].value_len,
                    &bad[i].bad);
        mix.t = t_base - 10 * HOUR + i * 1000LL;
        make_event(&ev, TD_EV_ORDER, mix.merchant, mix.t);
        assert_int_equal(td_codec_encode(codec, &ev, buf, sizeof(buf), &len,
                                         errstr, sizeof(errstr)),
                         TD_OK);
        produce(TD_EV_ORDER, P_MAIN, mix.merchant, strlen(mix.merchant), buf,
                len, &good[i]);
        sent_good[TD_EV_ORDER]++;
    }
    flush_produced();

    if (!td_h_poll(mix_applied, &mix, 30000)) {
        td_h_dump_log(&trustd);
        fail_msg("not all %d good orders interleaved with bad messages were "
                 "applied",
                 MIX_PAIRS);
    }
    assert_trustd_alive();
    if (!td_h_poll(dlq_has_all, &want, 30000)) {
        td_h_dump_log(&trustd);
        fail_msg("dead letters of the interleaved bad messages missing");
    }
    for (int i = 0; i < MIX_PAIRS; i++) {
        int cnt;
        bad[i].good = good[i]; /* its successor must not be dead-lettered */
        check_dead_letter(&bad[i]);
        dl_find("orders", good[i].partition, good[i].offset, &cnt);
        assert_int_equal(cnt, 0);
    }
    assert_metrics_match_tally();
    assert_trustd_alive();
    values_free();
}

typedef struct hold_s {
    int64_t limit; /* committed must not pass it */
    int64_t want;  /* or must reach it */
    int from;      /* log line where the outage starts */
    int passed;    /* committed was seen past limit */
} hold_t;

static int committed_past(void *arg) {
    hold_t *h = arg;
    return part_committed("orders", P_HOLD) > h->limit;
}

static int committed_reached(void *arg) {
    hold_t *h = arg;
    return part_committed("orders", P_HOLD) >= h->want;
}

/* Poll condition: trustd logged a failed dead-letter delivery, or (what
 * this test is after) stored an offset past the limit. */
static int dlq_delivery_failed(void *arg) {
    hold_t *h = arg;
    if (committed_past(h)) h->passed = 1;
    return h->passed ||
           log_count(h->from, "dead-letter deliveries failed", NULL, NULL) > 0;
}

/* Moves every trust-dlq partition to broker (-1: leaderless). Returns 0, or
 * -1 after printing the command td-kafka refused. */
static int dlq_leaders(int broker) {
    char cmd[64];
    for (int p = 0; p < DLQ_PARTS; p++) {
        snprintf(cmd, sizeof(cmd), "leader trust-dlq %d %d", p, broker);
        if (td_h_kafka_cmd(&kafka, cmd) != 0) {
            print_error("td-kafka refused \"%s\"\n", cmd);
            return -1;
        }
    }
    return 0;
}

/* Teardown of the outage test: the next tests need trust-dlq back even if
 * it failed half way. */
static int dlq_heal(void **state) {
    (void)state;
    return kafka.real ? 0 : dlq_leaders(1);
}

static void
test_failed_dead_letter_write_holds_the_source_offset(void **state) {
    /* static: the producer's delivery reports write into them */
    static dcase_t c;
    static sent_t first;
    const char *m = "m-hold";
    td_event_t ev;
    uint8_t buf[1024];
    size_t len;
    char errstr[256];
    hold_t h = {0};
    want_t want = {&c, 1};
    (void)state;

    /* Leaderless trust-dlq partitions: the mock's "leader ... -1". */
    td_h_kafka_mock_only(&kafka, "dead-letter topic without leaders");

    /* A good order, committed. */
    make_event(&ev, TD_EV_ORDER, m, t_base - 20 * HOUR);
    assert_int_equal(td_codec_encode(codec, &ev, buf, sizeof(buf), &len, errstr,
                                     sizeof(errstr)),
                     TD_OK);
    produce(TD_EV_ORDER, P_HOLD, m, strlen(m), buf, len, &first);
    sent_good[TD_EV_ORDER]++;
    flush_produced();
    assert_delivered(&first, "first order");
    h.want = first.offset + 1;
    if (!td_h_poll(committed_reached, &h, 30000))
        fail_msg("orders/%d committed %lld, expected %lld", P_HOLD,
                 (long long)part_committed("orders", P_HOLD),
                 (long long)h.want);

    /* The dead-letter topic goes away; a bad and a good message follow. */
    assert_int_equal(dlq_leaders(-1), 0);
    log_count(0, NULL, NULL, &h.from);
    case_build(&c, &case_defs[0], "m-hold-bad");
    snprintf(c.merchant, sizeof(c.merchant), "%s", m);
    snprintf(c.keybuf, sizeof(c.keybuf), "%s", m);
    c.key_len = strlen(m);
    c.good_time = t_base - 19 * HOUR;
    case_produce(&c, P_HOLD);
    flush_produced();
    assert_delivered(&c.bad, c.name);
    assert_int_equal(c.bad.offset, first.offset + 1);

    /* trustd sees the dead letter fail and keeps the offset before it. */
    h.limit = c.bad.offset;
    if (!td_h_poll(dlq_delivery_failed, &h, 20000) && !h.passed) {
        td_h_dump_log(&trustd);
        fail_msg("trustd never reported a failed dead-letter delivery");
    }
    if (h.passed || td_h_poll(committed_past, &h, 3000))
        fail_msg("orders/%d committed moved to %lld, past the undelivered "
                 "dead letter at %lld",
                 P_HOLD, (long long)part_committed("orders", P_HOLD),
                 (long long)c.bad.offset);
    assert_trustd_alive();

    /* Healed: the dead letter arrives and the offset moves past both. */
    assert_int_equal(dlq_leaders(1), 0);
    h.want = c.good.offset + 1;
    if (!td_h_poll(committed_reached, &h, 40000)) {
        td_h_dump_log(&trustd);
        fail_msg("orders/%d committed %lld after the DLQ came back, "
                 "expected %lld",
                 P_HOLD, (long long)part_committed("orders", P_HOLD),
                 (long long)h.want);
    }
    if (!td_h_poll(dlq_has_all, &want, 30000))
        fail_msg("the held dead letter never arrived");
    check_dead_letter(&c);
    assert_true(merchant_applied(m, TD_EV_ORDER, c.good_time, 2));
    assert_metrics_match_tally();
    values_free();
}

typedef struct flood_s {
    int from;  /* log line where the flood starts */
    int lines; /* bad_magic lines once the flood was consumed */
    int sent;  /* bad_magic messages sent since `from` */
} flood_t;

/* Poll condition: a bad_magic line was written after the flood. The count
 * of suppressed repeats is written with the first occurrence after the
 * interval, so until then one more bad message goes out per round, and is
 * consumed before the log is read again. */
static int flood_reported(void *arg) {
    static const uint8_t junk[] = "junk";
    flood_t *f = arg;
    static sent_t s; /* the producer's delivery report writes into it */

    if (log_count(f->from, "bad_magic", NULL, NULL) > f->lines) return 1;
    produce_bad(TD_EV_ORDER, TD_DLQ_BAD_MAGIC, P_MAIN, "m-flood", 7, junk,
                sizeof(junk) - 1, &s);
    flush_produced();
    f->sent++;
    assert_metrics_match_tally();
    return log_count(f->from, "bad_magic", NULL, NULL) > f->lines;
}

static void test_repeated_errors_are_logged_once_per_interval(void **state) {
    static const uint8_t junk[] = "junk";
    static sent_t s[FLOOD];
    flood_t f = {0, 0, FLOOD};
    int total, lines, after;
    unsigned long suppressed;
    (void)state;

    log_count(0, NULL, NULL, &f.from);
    for (int i = 0; i < FLOOD; i++) {
        produce_bad(TD_EV_ORDER, TD_DLQ_BAD_MAGIC, P_MAIN, "m-flood", 7, junk,
                    sizeof(junk) - 1, &s[i]);
    }
    flush_produced();
    /* Consumed; trustd logs before it counts, so its lines are written. */
    assert_metrics_match_tally();
    f.lines = log_count(f.from, "bad_magic", NULL, NULL);
    if (!td_h_poll(flood_reported, &f, 15000)) {
        td_h_dump_log(&trustd);
        fail_msg("no bad_magic line after the flood");
    }

    lines = log_count(f.from, "bad_magic", NULL, &total);
    suppressed = log_suppressed(f.from, "bad_magic");
    after = total - f.from;
    print_message("%d bad_magic messages: %d log lines mention it, with "
                  "%lu more counted as suppressed; %d log lines in all\n",
                  f.sent, lines, suppressed, after);
    /* About one line per second of flood, not one per message. */
    if (lines > 10 || after > 60) {
        td_h_dump_log(&trustd);
        fail_msg("%d lines mention bad_magic and %d lines were logged for "
                 "%d bad messages",
                 lines, after, f.sent);
    }
    /* Each one is either a line or in a line's count (which may also
     * include repeats from before the flood). */
    if ((unsigned long)lines + suppressed < (unsigned long)f.sent) {
        td_h_dump_log(&trustd);
        fail_msg("%d bad_magic messages, but the log accounts for %d lines "
                 "and %lu suppressed",
                 f.sent, lines, suppressed);
    }
}

static int one_applied(void *arg) {
    dcase_t *c = arg;
    return merchant_applied(c->merchant, c->kind, c->good_time, 1);
}

static void test_one_mib_message_is_dead_lettered_whole(void **state) {
    static dcase_t c; /* the producer's delivery reports write into it */
    want_t want = {&c, 1};
    (void)state;

    case_build(&c, &one_mb_def, "m-big");
    case_produce(&c, P_MAIN);
    flush_produced();
    assert_delivered(&c.bad, c.name);
    if (!td_h_poll(one_applied, &c, 20000)) {
        td_h_dump_log(&trustd);
        fail_msg("the order after a %d-byte message was not applied: the "
                 "worker is stuck on it (%d log lines say the dead-letter "
                 "produce was refused)",
                 BIG_LEN, log_count(0, "dead-letter produce to", NULL, NULL));
    }
    if (!td_h_poll(dlq_has_all, &want, 30000))
        fail_msg("no dead letter for the %d-byte message", BIG_LEN);
    check_dead_letter(&c);
    assert_metrics_match_tally();
    assert_trustd_alive();
    values_free();
}

/* After a clean shutdown, every bad message below a stored offset has its
 * dead letter: nothing was skipped on the way out. */
static void test_sigterm_exits_zero_and_skips_no_bad_message(void **state) {
    int status, missing = 0;
    (void)state;

    assert_trustd_alive();
    td_h_signal(&trustd, SIGTERM);
    status = td_h_wait(&trustd, 15000);
    if (status == -1) td_h_dump_log(&trustd);
    assert_int_not_equal(status, -1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    assert_true(dlq_reload() >= 0);
    for (size_t i = 0; i < nbads; i++) {
        const badrec_t *b = &bads[i];
        int64_t committed = part_committed(topics[b->kind], b->partition);
        int cnt;
        if (b->offset >= committed)
            continue; /* not stored: the next owner reads it again */
        dl_find(topics[b->kind], b->partition, b->offset, &cnt);
        if (!cnt) {
            print_error("%s/%d@%lld: below the stored offset %lld but no "
                        "dead letter\n",
                        topics[b->kind], (int)b->partition,
                        (long long)b->offset, (long long)committed);
            missing++;
        }
    }
    if (missing) {
        td_h_dump_log(&trustd);
        fail_msg("%d bad messages were skipped without a dead letter", missing);
    }
}

/* ---- Confluent framing and the schema registry ---- */

typedef struct cfgood_s {
    const char *merchant;
    td_event_kind_t kind;
    int64_t t;
    sent_t sent;
} cfgood_t;

static int cfgood_applied(void *arg) {
    cfgood_t *g = arg;
    for (; g->merchant; g++) {
        if (!merchant_applied(g->merchant, g->kind, g->t, 1)) return 0;
    }
    return 1;
}

static void
cfgood_produce(cfgood_t *g, int32_t partition, uint8_t *v, size_t len) {
    produce(g->kind, partition, g->merchant, strlen(g->merchant), v, len,
            &g->sent);
    sent_good[g->kind]++;
    free(v);
}

static void test_confluent_events_are_applied_or_dead_lettered(void **state) {
    static dcase_t cases[NCF];
    static cfgood_t good[] = {
        {"cf-registry-order", TD_EV_ORDER, 0, {0}},
        {"cf-map-order", TD_EV_ORDER, 0, {0}},
        {"cf-registry-review", TD_EV_REVIEW, 0, {0}},
        {"cf-python-fingerprint", TD_EV_ORDER, 0, {0}},
        {NULL, 0, 0, {0}},
    };
    want_t want = {cases, NCF};
    uint32_t order_id =
        reg_id("orders-value", td_h_schema_json("order_event.avsc"));
    uint32_t review_id = reg_id("reviews-value", td_h_own_review_json);
    char errstr[256];
    td_event_t ev;
    uint8_t *v;
    size_t len;
    (void)state;

    for (int i = 0; good[i].merchant; i++)
        good[i].t = t_base - 100000 - i * 1000LL;
    /* The registry's copy of order_event.avsc, by id. */
    make_event(&ev, TD_EV_ORDER, good[0].merchant, good[0].t);
    v = encode_new(&ev, &len);
    to_confluent(&v, &len, order_id);
    cfgood_produce(&good[0], P_MAIN, v, len);
    /* order_event.v1.avsc through the schema map file. */
    make_event(&ev, TD_EV_ORDER, good[1].merchant, good[1].t);
    v = malloc(4096);
    assert_non_null(v);
    if (td_codec_encode_with(codec, "order_event.v1.avsc", &ev, v, 4096, &len,
                             errstr, sizeof(errstr)) != TD_OK)
        fail_msg("encode v1: %s", errstr);
    to_confluent(&v, &len, MAP_ID);
    cfgood_produce(&good[1], P_MAIN, v, len);
    /* A producer's own review schema, known only to the registry. */
    v = cf_review(review_id, good[2].merchant, good[2].t, &len);
    cfgood_produce(&good[2], P_MAIN, v, len);
    /* Single-object with the fingerprint Python's avro computes. */
    make_event(&ev, TD_EV_ORDER, good[3].merchant, good[3].t);
    v = encode_new(&ev, &len);
    for (int i = 0; i < 8; i++)
        v[2 + i] = (uint8_t)(PY_FP_ORDER >> (8 * i));
    cfgood_produce(&good[3], P_MAIN, v, len);

    for (size_t i = 0; i < NCF; i++)
        case_build(&cases[i], &cf_case_defs[i], "m-cf");
    for (size_t i = 0; i < NCF; i++)
        case_produce(&cases[i], P_MAIN);
    flush_produced();

    if (!td_h_poll(cfgood_applied, good, 30000)) {
        for (int i = 0; good[i].merchant; i++) {
            if (!merchant_applied(good[i].merchant, good[i].kind, good[i].t, 1))
                print_error("not applied: %s\n", good[i].merchant);
        }
        td_h_dump_log(&trustd);
        fail_msg("Confluent-framed events were not applied");
    }
    if (!td_h_poll(cases_applied, &want, 30000) ||
        !td_h_poll(dlq_has_all, &want, 30000)) {
        td_h_dump_log(&trustd);
        fail_msg("Confluent dead letters missing");
    }
    for (size_t i = 0; i < NCF; i++)
        check_dead_letter(&cases[i]);
    assert_metrics_match_tally();
    assert_trustd_alive();
    values_free();
}

typedef struct gauge_s {
    const char *name;
    uint64_t lo;
} gauge_t;

/* Poll condition: /metrics shows sample name >= lo (lo 0: == 0). */
static int gauge_reached(void *arg) {
    gauge_t *g = arg;
    char *text = http_get("/metrics");
    uint64_t v = text ? sample(text, g->name) : 0;
    int ok = text && (g->lo ? v >= g->lo : v == 0);

    free(text);
    return ok;
}

static void
test_registry_outage_pauses_the_partition_without_dead_letters(void **st) {
    static cfgood_t ev[] = {
        {"cf-outage-first", TD_EV_REVIEW, 0, {0}},
        {"cf-outage-after", TD_EV_REVIEW, 0, {0}},
        {NULL, 0, 0, {0}},
    };
    static const char outage_json[] =
        "{\"type\":\"record\",\"name\":\"ReviewEvent\",\"namespace\":"
        "\"trustindex\",\"doc\":\"registered just before the outage\","
        "\"fields\":[{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"event_time\",\"type\":\"long\"},"
        "{\"name\":\"merchant_id\",\"type\":\"string\"},"
        "{\"name\":\"order_id\",\"type\":\"string\"},"
        "{\"name\":\"buyer_id\",\"type\":\"string\"},"
        "{\"name\":\"rating\",\"type\":\"int\"},"
        "{\"name\":\"has_media\",\"type\":\"boolean\",\"default\":false}]}";
    gauge_t paused = {"trustd_registry_paused_partitions", 1};
    gauge_t errors = {"trustd_registry_errors_total", 1};
    gauge_t resumed = {"trustd_registry_paused_partitions", 0};
    uint32_t id = reg_id("reviews-outage-value", outage_json);
    int from, cnt;
    uint8_t *v;
    size_t len;
    td_event_t e;
    (void)st;

    for (int i = 0; ev[i].merchant; i++)
        ev[i].t = t_base - 200000 - i * 1000LL;
    log_count(0, NULL, NULL, &from);
    /* Frozen, not killed: its storage is in memory, and a restarted one
     * would answer "not found" before the test could register again.
     * Requests to it time out (schema_registry_timeout_ms, 500 here). */
    td_h_signal(&registry.proc, SIGSTOP);
    /* The first sight of id is now, with the registry down; a plain
     * event follows on the same partition. */
    v = cf_review(id, ev[0].merchant, ev[0].t, &len);
    cfgood_produce(&ev[0], P_HOLD, v, len);
    make_event(&e, TD_EV_REVIEW, ev[1].merchant, ev[1].t);
    v = encode_new(&e, &len);
    cfgood_produce(&ev[1], P_HOLD, v, len);
    flush_produced();
    assert_delivered(&ev[0].sent, "review with the new id");

    if (!td_h_poll(gauge_reached, &paused, 20000) ||
        !td_h_poll(gauge_reached, &errors, 20000)) {
        td_h_dump_log(&trustd);
        fail_msg("reviews/1 was not paused for the registry");
    }
    assert_true(log_count(from, "schema registry:", "paused", NULL) > 0);
    /* Paused: neither event applied, neither dead-lettered. */
    assert_false(merchant_applied(ev[1].merchant, TD_EV_REVIEW, ev[1].t, 1));
    assert_true(dlq_reload() >= 0);
    for (int i = 0; ev[i].merchant; i++) {
        dl_find("reviews", P_HOLD, ev[i].sent.offset, &cnt);
        assert_int_equal(cnt, 0);
    }

    /* Back: it answers the requests it held, and the retries. */
    td_h_signal(&registry.proc, SIGCONT);
    if (!td_h_poll(cfgood_applied, ev, 30000) ||
        !td_h_poll(gauge_reached, &resumed, 10000)) {
        td_h_dump_log(&trustd);
        fail_msg("reviews/1 did not resume when the registry came back");
    }
    assert_metrics_match_tally();
    assert_true(dlq_reload() >= 0);
    for (int i = 0; ev[i].merchant; i++) {
        dl_find("reviews", P_HOLD, ev[i].sent.offset, &cnt);
        assert_int_equal(cnt, 0);
    }
    assert_trustd_alive();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_each_bad_message_is_dead_lettered_with_its_reason),
        cmocka_unit_test(test_poison_messages_never_stall_the_worker),
        cmocka_unit_test_teardown(
            test_failed_dead_letter_write_holds_the_source_offset, dlq_heal),
        cmocka_unit_test(test_repeated_errors_are_logged_once_per_interval),
        cmocka_unit_test(test_one_mib_message_is_dead_lettered_whole),
        cmocka_unit_test(test_confluent_events_are_applied_or_dead_lettered),
        cmocka_unit_test(
            test_registry_outage_pauses_the_partition_without_dead_letters),
        cmocka_unit_test(test_sigterm_exits_zero_and_skips_no_bad_message),
    };
    return cmocka_run_group_tests_name("it_dlq", tests, setup, teardown);
}
