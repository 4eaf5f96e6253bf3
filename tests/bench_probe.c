/*
 * bench_probe.c - measures trustd's event-to-Redis latency for `make bench`
 * (tests/bench.sh) with probe events.
 *
 *   bench_probe --brokers LIST --redis HOST:PORT|SOCKET [--topic orders]
 *               [--rate 20] [--duration-s 20] [--merchants 16]
 *               [--poll-ms 2] [--timeout-s 30]
 *
 * While other traffic runs, it produces --rate orders per second for its
 * own merchants "bench-probe-00".."bench-probe-NN" (round robin), each a
 * valid OrderEvent (CREATED) whose event_time is the wall clock at the
 * moment it is produced, with linger.ms=0 so the producer sends it at
 * once. Every --poll-ms it reads as_of_ms of the merchants that have
 * probes in flight (one pipelined HGET each). as_of_ms is the largest
 * event_time applied for the merchant, and a merchant's probes are applied
 * in offset order, so a probe is visible in Redis as soon as as_of_ms >= its
 * event_time; its latency is the time from just before the produce call to
 * the poll that saw it (monotonic clock; the poll interval bounds the error
 * from above). It stops sending after --duration-s and waits up to
 * --timeout-s for the rest, then prints one line on stdout:
 *
 *   probes=N seen=M lost=L p50_ms=X p90_ms=X p99_ms=X max_ms=X
 *
 * (nearest-rank percentiles over the probes seen). Probe merchants are not
 * the load generator's ("m%06d"), so other traffic never moves their
 * as_of_ms.
 *
 * Exit status: 0 when at least one probe was seen and none failed to be
 * delivered; 1 otherwise; 2 on bad usage.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "codec.h"
#include "common.h"
#include "proto.h"
#include "store.h"

#define BP_MAX_MERCHANTS 256
#define BP_BUF_SIZE      1024
#define BP_ID_MAX        32
#define BP_HOUR_MS       3600000LL

static volatile sig_atomic_t run = 1;

typedef struct bp_opts_s {
    const char *brokers;
    const char *redis;
    const char *topic;
    double rate;
    double duration_s;
    int merchants;
    int poll_ms;
    double timeout_s;
} bp_opts_t;

/* One probe: which merchant, its event_time, when it was sent. */
typedef struct bp_probe_s {
    int merchant;
    int64_t event_time;
    double sent_ms;    /* monotonic */
    double latency_ms; /* -1 until seen */
} bp_probe_t;

typedef struct bp_state_s {
    bp_probe_t *probes;
    size_t cnt, cap;
    size_t first_open; /* probes below are all seen */
    long delivery_failed;
    int inflight[BP_MAX_MERCHANTS]; /* probes in flight per merchant */
} bp_state_t;

static void bp_stop(int sig) {
    (void)sig;
    run = 0;
}

static double bp_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void bp_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void bp_usage(FILE *fp) {
    fprintf(fp, "usage: bench_probe --brokers LIST --redis HOST:PORT|SOCKET "
                "[--topic orders]\n"
                "                   [--rate 20] [--duration-s 20] "
                "[--merchants 16] [--poll-ms 2]\n"
                "                   [--timeout-s 30]\n"
                "Produces probe orders and prints their event-to-Redis "
                "latency percentiles.\n");
}

static int bp_num(const char *s, double min, double max, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= min && v <= max)) return TD_ERR;
    *out = v;
    return TD_OK;
}

static int bp_parse_args(int argc, char **argv, bp_opts_t *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        double v = 0;
        int ok = 1;

        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bp_usage(stdout);
            exit(0);
        }
        if (!val) {
            fprintf(stderr, "bench_probe: incomplete option %s\n", a);
            return TD_ERR;
        }
        i++;
        if (!strcmp(a, "--brokers")) {
            o->brokers = val;
        } else if (!strcmp(a, "--redis")) {
            o->redis = val;
        } else if (!strcmp(a, "--topic")) {
            o->topic = val;
        } else if (!strcmp(a, "--rate")) {
            ok = !bp_num(val, 0.1, 1000, &o->rate);
        } else if (!strcmp(a, "--duration-s")) {
            ok = !bp_num(val, 0.1, 86400, &o->duration_s);
        } else if (!strcmp(a, "--merchants")) {
            ok = !bp_num(val, 1, BP_MAX_MERCHANTS, &v);
            o->merchants = (int)v;
        } else if (!strcmp(a, "--poll-ms")) {
            ok = !bp_num(val, 1, 1000, &v);
            o->poll_ms = (int)v;
        } else if (!strcmp(a, "--timeout-s")) {
            ok = !bp_num(val, 0.1, 86400, &o->timeout_s);
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "bench_probe: bad option %s %s\n", a, val);
            return TD_ERR;
        }
    }
    if (!o->brokers || !o->redis) {
        fprintf(stderr, "bench_probe: --brokers and --redis are required\n");
        return TD_ERR;
    }
    return TD_OK;
}

static void bp_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *op) {
    bp_state_t *st = op;
    (void)rk;
    if (m->err && st->delivery_failed++ < 5) {
        fprintf(stderr, "bench_probe: delivery failed: %s\n",
                rd_kafka_err2str(m->err));
    }
}

static rd_kafka_t *bp_producer_new(const bp_opts_t *o, bp_state_t *st) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];

    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, errstr,
                          sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof(errstr))) {
        fprintf(stderr, "bench_probe: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, bp_dr_cb);
    rd_kafka_conf_set_opaque(conf, st);
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "bench_probe: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static redisContext *bp_redis_connect(const char *addr) {
    struct timeval tv = {5, 0};
    redisContext *c;

    if (addr[0] == '/') {
        c = redisConnectUnixWithTimeout(addr, tv);
    } else {
        char host[256];
        const char *colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
            fprintf(stderr, "bench_probe: --redis wants HOST:PORT, not %s\n",
                    addr);
            return NULL;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
        c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
    }
    if (!c || c->err) {
        fprintf(stderr, "bench_probe: redis %s: %s\n", addr,
                c ? c->errstr : "out of memory");
        if (c) {
            redisFree(c);
        }
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* Fills a valid CREATED order of merchant id at event time t. */
static void bp_event(td_event_t *ev,
                     const char *id,
                     char *event_id,
                     size_t event_id_size,
                     long seq,
                     int64_t t) {
    int n = snprintf(event_id, event_id_size, "bench-probe-%ld", seq);

    memset(ev, 0, sizeof(*ev));
    ev->kind = TD_EV_ORDER;
    ev->event_id = (td_str_t){event_id, (size_t)n};
    ev->merchant_id = (td_str_t){id, strlen(id)};
    ev->order_id = ev->event_id;
    ev->buyer_id = (td_str_t){"bench-probe-buyer", 17};
    ev->event_time = t;
    ev->u.order.status = TD_ORDER_CREATED;
    ev->u.order.amount_cents = 1999;
    ev->u.order.channel = TD_CHANNEL_LIVE;
    ev->u.order.cancelled_by = TD_NULL_ENUM;
    ev->u.order.promised_ship_by = t + 48 * BP_HOUR_MS;
    ev->u.order.promised_delivery_by = t + 96 * BP_HOUR_MS;
    ev->u.order.tracking_valid = TD_NULL_BOOL;
    ev->u.order.paid_at = TD_NULL_TS;
    ev->u.order.shipped_at = TD_NULL_TS;
    ev->u.order.buyer_order_seq = 1;
}

/* Encodes and produces one probe. TD_OK or TD_ERR (message printed). */
static int bp_send(td_codec_t *codec,
                   rd_kafka_t *rk,
                   const bp_opts_t *o,
                   bp_state_t *st,
                   char ids[][BP_ID_MAX],
                   long seq) {
    unsigned char buf[BP_BUF_SIZE];
    char event_id[64], errstr[512];
    int k = (int)(seq % o->merchants);
    size_t len;
    td_event_t ev;

    if (st->cnt == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 1024;
        bp_probe_t *np = realloc(st->probes, nc * sizeof(*np));
        if (!np) {
            fprintf(stderr, "bench_probe: out of memory\n");
            return TD_ERR;
        }
        st->probes = np;
        st->cap = nc;
    }
    double sent = bp_mono_ms();
    int64_t t = td_now_ms();
    bp_event(&ev, ids[k], event_id, sizeof(event_id), seq, t);
    if (td_codec_encode(codec, &ev, buf, sizeof(buf), &len, errstr,
                        sizeof(errstr)) != TD_OK) {
        fprintf(stderr, "bench_probe: encode: %s\n", errstr);
        return TD_ERR;
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_KEY(ids[k], strlen(ids[k])),
        RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    if (err) {
        fprintf(stderr, "bench_probe: produce: %s\n", rd_kafka_err2str(err));
        return TD_ERR;
    }
    st->probes[st->cnt++] = (bp_probe_t){
        .merchant = k, .event_time = t, .sent_ms = sent, .latency_ms = -1};
    st->inflight[k]++;
    return TD_OK;
}

/* One pipelined HGET per merchant with probes in flight; marks the probes
 * whose event_time as_of_ms reached. TD_OK, or TD_ERR on a Redis error. */
static int bp_poll(redisContext *rc,
                   const bp_opts_t *o,
                   bp_state_t *st,
                   char ids[][BP_ID_MAX]) {
    int asked[BP_MAX_MERCHANTS], n = 0;
    int64_t as_of[BP_MAX_MERCHANTS];
    char key[128];

    for (int k = 0; k < o->merchants; k++) {
        as_of[k] = INT64_MIN;
        if (!st->inflight[k]) continue;
        td_key_signals(key, sizeof(key), ids[k], strlen(ids[k]));
        redisAppendCommand(rc, "HGET %s as_of_ms", key);
        asked[n++] = k;
    }
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r) {
            fprintf(stderr, "bench_probe: redis: %s\n", rc->errstr);
            return TD_ERR;
        }
        if (r->type == REDIS_REPLY_STRING) {
            as_of[asked[i]] = strtoll(r->str, NULL, 10);
        }
        freeReplyObject(r);
    }
    double now = bp_mono_ms();
    for (size_t i = st->first_open; i < st->cnt; i++) {
        bp_probe_t *p = &st->probes[i];
        if (p->latency_ms < 0 && as_of[p->merchant] >= p->event_time) {
            p->latency_ms = now - p->sent_ms;
            st->inflight[p->merchant]--;
        }
    }
    while (st->first_open < st->cnt &&
           st->probes[st->first_open].latency_ms >= 0) {
        st->first_open++;
    }
    return TD_OK;
}

static int bp_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static double bp_pct(const double *v, size_t n, double p) {
    size_t rank = (size_t)ceil(p * (double)n);
    return v[rank > 0 ? rank - 1 : 0];
}

int main(int argc, char **argv) {
    bp_opts_t o = {.topic = "orders",
                   .rate = 20,
                   .duration_s = 20,
                   .merchants = 16,
                   .poll_ms = 2,
                   .timeout_s = 30};
    bp_state_t st = {0};
    char ids[BP_MAX_MERCHANTS][BP_ID_MAX];
    char errstr[512];
    td_codec_t *codec = NULL;
    rd_kafka_t *rk = NULL;
    redisContext *rc = NULL;
    double *lat = NULL;
    int ret = 1;

    if (bp_parse_args(argc, argv, &o) != TD_OK) {
        bp_usage(stderr);
        return 2;
    }
    signal(SIGINT, bp_stop);
    signal(SIGTERM, bp_stop);
    for (int k = 0; k < o.merchants; k++) {
        snprintf(ids[k], sizeof(ids[k]), "bench-probe-%02d", k);
    }

    if (!(codec = td_codec_new(errstr, sizeof(errstr)))) {
        fprintf(stderr, "bench_probe: codec: %s\n", errstr);
        goto done;
    }
    if (!(rc = bp_redis_connect(o.redis))) goto done;
    if (!(rk = bp_producer_new(&o, &st))) goto done;

    double t0 = bp_mono_ms(), stop_send = t0 + o.duration_s * 1000.0;
    double deadline = stop_send + o.timeout_s * 1000.0;
    long seq = 0;
    while (run) {
        double now = bp_mono_ms();
        if (now >= deadline) break;
        if (now >= stop_send && st.first_open == st.cnt) break;
        /* Send what is due by now at the fixed rate. */
        while (now < stop_send && t0 + (double)seq * 1000.0 / o.rate <= now) {
            if (bp_send(codec, rk, &o, &st, ids, seq++) != TD_OK) goto done;
        }
        rd_kafka_poll(rk, 0);
        if (bp_poll(rc, &o, &st, ids) != TD_OK) goto done;
        bp_sleep_ms(o.poll_ms);
    }
    rd_kafka_flush(rk, 5000);

    lat = malloc((st.cnt ? st.cnt : 1) * sizeof(*lat));
    size_t seen = 0;
    for (size_t i = 0; lat && i < st.cnt; i++) {
        if (st.probes[i].latency_ms >= 0) {
            lat[seen++] = st.probes[i].latency_ms;
        }
    }
    if (seen > 0) {
        qsort(lat, seen, sizeof(*lat), bp_cmp);
    }
    printf("probes=%zu seen=%zu lost=%zu p50_ms=%.1f p90_ms=%.1f "
           "p99_ms=%.1f max_ms=%.1f\n",
           st.cnt, seen, st.cnt - seen, seen ? bp_pct(lat, seen, 0.50) : -1,
           seen ? bp_pct(lat, seen, 0.90) : -1,
           seen ? bp_pct(lat, seen, 0.99) : -1, seen ? lat[seen - 1] : -1.0);
    fflush(stdout);
    ret = seen > 0 && st.delivery_failed == 0 ? 0 : 1;

done:
    free(lat);
    free(st.probes);
    if (rk) {
        rd_kafka_destroy(rk);
    }
    if (rc) {
        redisFree(rc);
    }
    td_codec_destroy(codec);
    return ret;
}
