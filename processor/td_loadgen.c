/*
 * td_loadgen.c - td-loadgen: produces realistic trustd input to Kafka.
 *
 *   td-loadgen --brokers LIST [--events N] [--rate EPS] [--duration-s S]
 *              [--merchants N] [--seed S] [--bad-share F] [--zipf-s F]
 *              [--invalid-share F] [--eps-sim F] [--max-open N]
 *              [--start-ms MS] [--topic-orders T] [--topic-reviews T]
 *              [--topic-refunds T] [-X prop=val]...
 *
 * Events come from the loadgen module (loadgen.h), are encoded as Avro
 * single-object messages by the codec (codec.h) and produced keyed by
 * merchant_id to the orders, reviews or refunds topic by an idempotent,
 * lz4-compressing producer. A full local queue is handled by serving
 * delivery reports until there is room. At the end (event count reached,
 * duration over, SIGINT or SIGTERM) everything is flushed and a summary goes
 * to stderr.
 *
 * Event time. trustd's codec rejects events more than a few minutes ahead
 * of the wall clock, and the simulation cannot advance slower than about a
 * day per 150000 events (see loadgen.h). So unless --start-ms is given and
 * the number of events is known (--events, or --rate times --duration-s),
 * a dry run of the same generator measures how much event time the run
 * spans and the simulation starts that long before now; the last events
 * are then about a minute old. With an unknown count it starts a day ago.
 *
 * --invalid-share F replaces that share of events by broken messages, for
 * the dead-letter path: random bytes, truncated Avro, a key that is not the
 * merchant_id (or no key), a contract violation (negative amount, rating
 * out of range) and empty values (tombstones).
 *
 * Hot keys. With the default Zipf exponent 1.1 over 10000 merchants the
 * busiest merchant makes about 15% of all events, so its partition gets
 * about a fifth of them. td-kafka's mock keeps at most 5 MiB (about 90000
 * of these messages) per partition and drops the oldest beyond that, so a
 * backlog of more than about 400000 events produced before anyone reads it
 * loses messages on that partition; use --zipf-s 0.9 or lower for such
 * runs, or consume while producing.
 *
 * Exit status: 0 when every message was delivered, 1 when some were not,
 * 2 on bad usage.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "codec.h"
#include "common.h"
#include "loadgen.h"

#define TL_MAX_PROPS   64
#define TL_BUF_SIZE    4096
#define TL_DRY_RUN_MAX 2000000LL
#define TL_START_SLACK (60 * 1000LL)
#define TL_FUTURE_MS   (5 * 60 * 1000LL) /* the codec's max_future_skew_ms */

static volatile sig_atomic_t run = 1;

/* Kinds of broken messages --invalid-share mixes in. */
typedef enum {
    TL_BAD_GARBAGE = 0,
    TL_BAD_TRUNCATED,
    TL_BAD_WRONG_KEY,
    TL_BAD_CONTRACT,
    TL_BAD_TOMBSTONE,
    TL_BAD__CNT
} tl_bad_t;

/* clang-format off */
static const char *const tl_bad_names[TL_BAD__CNT] = {
    [TL_BAD_GARBAGE]   = "garbage",
    [TL_BAD_TRUNCATED] = "truncated",
    [TL_BAD_WRONG_KEY] = "wrong_key",
    [TL_BAD_CONTRACT]  = "contract",
    [TL_BAD_TOMBSTONE] = "tombstone",
};

/* Producer settings; -X can override any of them. */
static const char *const tl_base_conf[][2] = {
    {"compression.codec",            "lz4"},
    {"linger.ms",                    "20"},
    {"enable.idempotence",           "true"},
    {"batch.num.messages",           "100000"},
    {"queue.buffering.max.messages", "1000000"},
};
/* clang-format on */

typedef struct tl_opts_s {
    const char *brokers;
    long long events;
    double rate;
    double duration_s;
    double invalid_share;
    int start_given;
    const char *topics[TD_EV__CNT];
    const char *props[TL_MAX_PROPS];
    int prop_cnt;
    td_loadgen_conf_t gen;
} tl_opts_t;

typedef struct tl_stats_s {
    long long per_topic[TD_EV__CNT];
    long long bad[TL_BAD__CNT];
    long long delivered;
    long long failed;
    long long encode_failed;
    long long queue_full;
    int64_t min_time;
    int64_t max_time;
} tl_stats_t;

static void tl_stop(int sig) {
    (void)sig;
    run = 0;
}

/* Delivery report: counts, and names the first few failures. */
static void tl_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *op) {
    tl_stats_t *st = op;
    (void)rk;
    if (!m->err) {
        st->delivered++;
        return;
    }
    if (st->failed++ < 5) {
        fprintf(stderr, "td-loadgen: delivery failed: %s\n",
                rd_kafka_err2str(m->err));
    }
}

static void tl_usage(FILE *fp) {
    fprintf(
        fp,
        "usage: td-loadgen --brokers LIST [options]\n"
        "  --events N          events to produce (default 100000; 0 = until "
        "--duration-s or a signal)\n"
        "  --rate EPS          events per second, 0 = as fast as possible "
        "(default 0)\n"
        "  --duration-s S      stop after S seconds (default: no limit)\n"
        "  --merchants N       merchants (default 10000)\n"
        "  --seed S            generator seed (default 42)\n"
        "  --bad-share F       share of bad merchants (default 0.08)\n"
        "  --zipf-s F          Zipf exponent of merchant popularity "
        "(default 1.1)\n"
        "  --invalid-share F   share of broken messages (default 0)\n"
        "  --eps-sim F         simulated events per second of event time "
        "(default 2)\n"
        "  --max-open N        cap on open orders (default 100000)\n"
        "  --start-ms MS       event time of the first events (default: "
        "so that the run ends now)\n"
        "  --topic-orders T, --topic-reviews T, --topic-refunds T\n"
        "  -X prop=val         librdkafka producer property\n");
}

static int tl_parse_num(const char *s, double min, double max, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= min && v <= max)) return TD_ERR;
    *out = v;
    return TD_OK;
}

static int tl_parse_args(int argc, char **argv, tl_opts_t *o) {
    double v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            tl_usage(stdout);
            exit(0);
        }
        if (!val) {
            fprintf(stderr, "td-loadgen: unknown or incomplete option %s\n", a);
            return TD_ERR;
        }
        i++;
        int ok = 1;
        if (!strcmp(a, "--brokers")) {
            o->brokers = val;
        } else if (!strcmp(a, "--events")) {
            ok = !tl_parse_num(val, 0, 1e15, &v);
            o->events = (long long)v;
        } else if (!strcmp(a, "--rate")) {
            ok = !tl_parse_num(val, 0, 1e9, &o->rate);
        } else if (!strcmp(a, "--duration-s")) {
            ok = !tl_parse_num(val, 0, 1e9, &o->duration_s);
        } else if (!strcmp(a, "--merchants")) {
            ok = !tl_parse_num(val, 1, 1e6, &v);
            o->gen.merchants = (int)v;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            o->gen.seed = strtoull(val, &end, 0);
            ok = end != val && !*end;
        } else if (!strcmp(a, "--bad-share")) {
            ok = !tl_parse_num(val, 0, 1, &o->gen.bad_share);
        } else if (!strcmp(a, "--zipf-s")) {
            ok = !tl_parse_num(val, 0, 5, &o->gen.zipf_s);
        } else if (!strcmp(a, "--invalid-share")) {
            ok = !tl_parse_num(val, 0, 1, &o->invalid_share);
        } else if (!strcmp(a, "--eps-sim")) {
            ok = !tl_parse_num(val, 1e-6, 1e7, &o->gen.events_per_sec_sim);
        } else if (!strcmp(a, "--max-open")) {
            ok = !tl_parse_num(val, 1, 1e7, &v);
            o->gen.max_open = (int)v;
        } else if (!strcmp(a, "--start-ms")) {
            ok = !tl_parse_num(val, 1e9, 1e14, &v);
            o->gen.start_ms = (int64_t)v;
            o->start_given = 1;
        } else if (!strcmp(a, "--topic-orders")) {
            o->topics[TD_EV_ORDER] = val;
        } else if (!strcmp(a, "--topic-reviews")) {
            o->topics[TD_EV_REVIEW] = val;
        } else if (!strcmp(a, "--topic-refunds")) {
            o->topics[TD_EV_REFUND] = val;
        } else if (!strcmp(a, "-X") && strchr(val, '=') &&
                   o->prop_cnt < TL_MAX_PROPS) {
            o->props[o->prop_cnt++] = val;
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "td-loadgen: bad option %s %s\n", a, val);
            return TD_ERR;
        }
    }
    if (!o->brokers) {
        fprintf(stderr, "td-loadgen: --brokers is required\n");
        return TD_ERR;
    }
    return TD_OK;
}

static rd_kafka_conf_t *tl_conf_new(const tl_opts_t *o,
                                    tl_stats_t *st,
                                    char *errstr,
                                    size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char prop[512];

    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, errstr,
                          errstr_size))
        goto err;
    for (size_t i = 0; i < TD_ARRAY_LEN(tl_base_conf); i++) {
        if (rd_kafka_conf_set(conf, tl_base_conf[i][0], tl_base_conf[i][1],
                              errstr, errstr_size))
            goto err;
    }
    for (int i = 0; i < o->prop_cnt; i++) {
        snprintf(prop, sizeof(prop), "%s", o->props[i]);
        char *eq = strchr(prop, '=');
        *eq = '\0';
        if (rd_kafka_conf_set(conf, prop, eq + 1, errstr, errstr_size))
            goto err;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, tl_dr_cb);
    rd_kafka_conf_set_opaque(conf, st);
    return conf;

err:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* Runs the generator n events with start_ms = 0 offset and returns how much
 * event time they span (ms), extrapolating past TL_DRY_RUN_MAX events. */
static int64_t tl_dry_run_span(const td_loadgen_conf_t *c,
                               long long n,
                               char *errstr,
                               size_t errstr_size) {
    td_loadgen_t *g = td_loadgen_new(c, errstr, errstr_size);
    td_event_t ev;
    long long run_n = n < TL_DRY_RUN_MAX ? n : TL_DRY_RUN_MAX;
    int64_t max_time = c->start_ms;

    if (!g) return -1;
    for (long long i = 0; i < run_n; i++) {
        td_loadgen_next(g, &ev);
        if (ev.event_time > max_time) {
            max_time = ev.event_time;
        }
    }
    td_loadgen_destroy(g);
    double span = (double)(max_time - c->start_ms);
    return (int64_t)(span * ((double)n / (double)(run_n ? run_n : 1)));
}

/* Small PRNG for the invalid-message choices, apart from the generator's
 * so that --invalid-share does not change the event sequence. */
static uint64_t tl_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double tl_unif(uint64_t *s) {
    return (double)(tl_rand(s) >> 11) * 0x1.0p-53;
}

/* Turns the event into a broken message of a random kind. On return
 * valp, lenp, keyp and keylenp describe what to produce. Returns the kind.
 * ev may be modified. */
static tl_bad_t tl_break(td_codec_t *codec,
                         uint64_t *rs,
                         td_event_t *ev,
                         unsigned char *buf,
                         char *keybuf,
                         size_t keybuf_size,
                         const void **valp,
                         size_t *lenp,
                         const void **keyp,
                         size_t *keylenp) {
    char errstr[256];
    tl_bad_t kind = (tl_bad_t)(tl_rand(rs) % TL_BAD__CNT);

    if (kind == TL_BAD_CONTRACT) {
        if (ev->kind == TD_EV_ORDER) {
            ev->u.order.amount_cents = -1 - ev->u.order.amount_cents;
        } else if (ev->kind == TD_EV_REVIEW) {
            ev->u.review.rating = 6 + (int)(tl_rand(rs) % 4);
        } else {
            ev->u.refund.amount_cents = -1;
        }
    }
    if (td_codec_encode(codec, ev, buf, TL_BUF_SIZE, lenp, errstr,
                        sizeof(errstr)) != TD_OK) {
        kind = TL_BAD_GARBAGE;
    }
    *valp = buf;
    switch (kind) {
    case TL_BAD_GARBAGE:
        *lenp = 1 + tl_rand(rs) % 64;
        for (size_t i = 0; i < *lenp; i++) {
            buf[i] = (unsigned char)tl_rand(rs);
        }
        break;
    case TL_BAD_TRUNCATED:
        if (*lenp > 1) {
            *lenp = 1 + tl_rand(rs) % (*lenp - 1);
        }
        break;
    case TL_BAD_WRONG_KEY:
        if (tl_rand(rs) % 4 == 0) {
            *keyp = NULL;
            *keylenp = 0;
        } else {
            int n = snprintf(keybuf, keybuf_size, "%.*sX",
                             (int)ev->merchant_id.len, ev->merchant_id.ptr);
            *keyp = keybuf;
            *keylenp = (size_t)n;
        }
        break;
    case TL_BAD_TOMBSTONE:
        *valp = NULL;
        *lenp = 0;
        break;
    default:
        break;
    }
    return kind;
}

int main(int argc, char **argv) {
    tl_opts_t o = {.events = 100000};
    tl_stats_t st = {.min_time = INT64_MAX, .max_time = INT64_MIN};
    char errstr[512];
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt[TD_EV__CNT] = {NULL};
    td_codec_t *codec = NULL;
    td_loadgen_t *gen = NULL;
    int rc = 1;

    td_loadgen_conf_defaults(&o.gen);
    o.topics[TD_EV_ORDER] = "orders";
    o.topics[TD_EV_REVIEW] = "reviews";
    o.topics[TD_EV_REFUND] = "refunds";
    if (tl_parse_args(argc, argv, &o) != TD_OK) {
        tl_usage(stderr);
        return 2;
    }
    signal(SIGINT, tl_stop);
    signal(SIGTERM, tl_stop);

    /* How many events this run makes, if that is known up front. */
    long long expected = o.events;
    if (o.rate > 0 && o.duration_s > 0) {
        long long by_time = (long long)(o.rate * o.duration_s);
        if (expected == 0 || by_time < expected) {
            expected = by_time;
        }
    }
    if (!o.start_given && expected > 0) {
        int64_t span =
            tl_dry_run_span(&o.gen, expected, errstr, sizeof(errstr));
        if (span < 0) {
            fprintf(stderr, "td-loadgen: %s\n", errstr);
            return 2;
        }
        o.gen.start_ms = td_now_ms() - span - TL_START_SLACK;
    }

    gen = td_loadgen_new(&o.gen, errstr, sizeof(errstr));
    if (!gen) {
        fprintf(stderr, "td-loadgen: %s\n", errstr);
        return 2;
    }
    codec = td_codec_new(errstr, sizeof(errstr));
    if (!codec) {
        fprintf(stderr, "td-loadgen: codec: %s\n", errstr);
        goto done;
    }
    rd_kafka_conf_t *conf = tl_conf_new(&o, &st, errstr, sizeof(errstr));
    if (!conf) {
        fprintf(stderr, "td-loadgen: %s\n", errstr);
        rc = 2;
        goto done;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "td-loadgen: %s\n", errstr);
        goto done;
    }
    conf = NULL;
    for (int k = 0; k < TD_EV__CNT; k++) {
        rkt[k] = rd_kafka_topic_new(rk, o.topics[k], NULL);
        if (!rkt[k]) {
            fprintf(stderr, "td-loadgen: topic %s: %s\n", o.topics[k],
                    rd_kafka_err2str(rd_kafka_last_error()));
            goto done;
        }
    }

    unsigned char buf[TL_BUF_SIZE];
    char keybuf[TD_MERCHANT_ID_MAX + 2];
    uint64_t rs = o.gen.seed ^ 0xa5a5a5a5a5a5a5a5ULL;
    long long sent = 0;
    int warned_future = 0;
    int64_t t0 = td_mono_ms();
    int64_t deadline =
        o.duration_s > 0 ? t0 + (int64_t)(o.duration_s * 1000) : INT64_MAX;
    while (run && (o.events == 0 || sent < o.events)) {
        int64_t now = td_mono_ms();
        if (now >= deadline) break;
        if (o.rate > 0) {
            int64_t due = t0 + (int64_t)((double)sent * 1000.0 / o.rate);
            if (now < due) {
                /* Ahead of schedule: serve delivery reports meanwhile. */
                int64_t wait = due - now;
                rd_kafka_poll(rk, wait < 100 ? (int)wait : 100);
                continue;
            }
        }

        td_event_t ev;
        td_loadgen_next(gen, &ev);
        const void *val = buf, *key = ev.merchant_id.ptr;
        size_t len = 0, keylen = ev.merchant_id.len;
        if (o.invalid_share > 0 && tl_unif(&rs) < o.invalid_share) {
            tl_bad_t bad = tl_break(codec, &rs, &ev, buf, keybuf,
                                    sizeof(keybuf), &val, &len, &key, &keylen);
            st.bad[bad]++;
        } else if (td_codec_encode(codec, &ev, buf, sizeof(buf), &len, errstr,
                                   sizeof(errstr)) != TD_OK) {
            if (st.encode_failed++ < 5) {
                fprintf(stderr, "td-loadgen: encode: %s\n", errstr);
            }
            continue;
        }
        if (ev.event_time < st.min_time) {
            st.min_time = ev.event_time;
        }
        if (ev.event_time > st.max_time) {
            st.max_time = ev.event_time;
        }

        while (rd_kafka_produce(rkt[ev.kind], RD_KAFKA_PARTITION_UA,
                                RD_KAFKA_MSG_F_COPY, (void *)val, len, key,
                                keylen, NULL) == -1) {
            rd_kafka_resp_err_t err = rd_kafka_last_error();
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "td-loadgen: produce: %s\n",
                        rd_kafka_err2str(err));
                goto flush;
            }
            st.queue_full++;
            rd_kafka_poll(rk, 10);
        }
        st.per_topic[ev.kind]++;
        if (++sent % 1024 == 0) {
            rd_kafka_poll(rk, 0);
            if (!warned_future && st.max_time > td_now_ms() + TL_FUTURE_MS) {
                fprintf(stderr,
                        "td-loadgen: warning: event time passed the wall "
                        "clock; trustd rejects such events as "
                        "event_time_future (give --events or --start-ms)\n");
                warned_future = 1;
            }
        }
    }

flush:;
    int64_t t_produced = td_mono_ms();
    rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, 120000);
    int64_t t_flushed = td_mono_ms();
    double secs = (double)(t_flushed - t0) / 1000.0;
    long long bad_total = 0;
    for (int b = 0; b < TL_BAD__CNT; b++) {
        bad_total += st.bad[b];
    }

    fprintf(stderr,
            "td-loadgen: %lld events in %.3f s (%.0f ev/s; %.3f s to "
            "enqueue, %.3f s to flush)\n",
            sent, secs, secs > 0 ? (double)sent / secs : 0.0,
            (double)(t_produced - t0) / 1000.0,
            (double)(t_flushed - t_produced) / 1000.0);
    fprintf(stderr, "td-loadgen: %s=%lld %s=%lld %s=%lld\n",
            o.topics[TD_EV_ORDER], st.per_topic[TD_EV_ORDER],
            o.topics[TD_EV_REVIEW], st.per_topic[TD_EV_REVIEW],
            o.topics[TD_EV_REFUND], st.per_topic[TD_EV_REFUND]);
    fprintf(stderr, "td-loadgen: invalid=%lld (", bad_total);
    for (int b = 0; b < TL_BAD__CNT; b++) {
        fprintf(stderr, "%s%s=%lld", b ? " " : "", tl_bad_names[b], st.bad[b]);
    }
    fprintf(stderr, ") delivered=%lld failed=%lld queue_full_waits=%lld\n",
            st.delivered, st.failed, st.queue_full);
    if (sent > 0) {
        fprintf(stderr,
                "td-loadgen: event_time %" PRId64 " .. %" PRId64
                " (%.1f h; newest is %.0f s before now)\n",
                st.min_time, st.max_time,
                (double)(st.max_time - st.min_time) / 3.6e6,
                (double)(td_now_ms() - st.max_time) / 1000.0);
    }
    if (ferr || st.failed > 0) {
        fprintf(stderr, "td-loadgen: %d messages not delivered\n",
                rd_kafka_outq_len(rk));
    } else {
        rc = 0;
    }

done:
    for (int k = 0; k < TD_EV__CNT; k++) {
        if (rkt[k]) {
            rd_kafka_topic_destroy(rkt[k]);
        }
    }
    if (rk) {
        rd_kafka_destroy(rk);
    }
    td_codec_destroy(codec);
    td_loadgen_destroy(gen);
    return rc;
}
