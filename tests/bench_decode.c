/*
 * bench_decode.c - the per-event CPU cost of trustd's hot path on a fixed
 * sample, for `make bench` (tests/bench.sh).
 *
 *   bench_decode [--events N] [--reps R] [--merchants M] [--zipf-s S]
 *                [--seed S] [--flush-events F]
 *
 * It generates N events with the load generator (loadgen.h, fixed seed and
 * fixed start time, so every run sees the same bytes), encodes them with the
 * codec as the producer does, and then runs the worker's per-message path
 * R times over them, exactly as worker.c's handle() does it:
 *
 *   td_codec_decode()    decode and validate one message (key + value)
 *   td_mcache_delta()    find or create the (merchant, source) delta
 *   td_sigdelta_add()    fold the event into it
 *
 * and empties the merchant cache every F events, as a flush does. Nothing
 * else runs inside the loop, so under callgrind
 *
 *   valgrind --tool=callgrind --collect-atstart=no \
 *       --toggle-collect=td_codec_decode build/tests/bench_decode
 *   valgrind --tool=callgrind --collect-atstart=no \
 *       --toggle-collect=td_mcache_delta --toggle-collect=td_sigdelta_add \
 *       build/tests/bench_decode
 *
 * the collected instruction totals divided by N * R are the instructions
 * per event of decode and of the signal update; they are the same from run
 * to run because the input and the code path are. Run natively, it also
 * times the loop (ns per event, noisy on a shared machine).
 *
 * It prints one line on stdout:
 *
 *   events=N reps=R decoded=D ns_per_event=T peak_merchants=P
 *   cache_bytes=B bytes_per_merchant=B/P merchant_struct=S delta_struct=S
 *   state_bytes_per_merchant=S
 *
 * cache_bytes is td_mcache_bytes() at the end: what the cache allocated for
 * its largest flush (hash buckets, merchant entries, deltas), so
 * bytes_per_merchant is the memory one merchant's deltas cost trustd; it has
 * two caches (active and in flight) of that size at most.
 * state_bytes_per_merchant is what its exact state (mstate.h), kept between
 * flushes, costs on top.
 *
 * Exit status: 0; 1 if a sample message does not decode (the harness is
 * broken, not slow); 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Optional: with valgrind's header, instrumentation starts only after the
 * sample is made (run with --instr-atstart=no), which keeps the
 * callgrind runs short; without it the macro does nothing. */
#if defined(__has_include) && __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#ifndef CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_START_INSTRUMENTATION
#endif

#include "codec.h"
#include "common.h"
#include "loadgen.h"
#include "mcache.h"
#include "mstate.h"
#include "signals.h"

#define BD_BUF_SIZE 4096

/* A fixed event-time origin (2023-11-14), so the sample never depends on
 * the wall clock; decode only checks that events are not in the future. */
#define BD_START_MS 1700000000000LL

typedef struct bd_opts_s {
    long events;
    long reps;
    long flush_events;
    td_loadgen_conf_t gen;
} bd_opts_t;

/* One encoded message: its key and value live in the sample's arena. */
typedef struct bd_msg_s {
    td_event_kind_t kind;
    size_t key_off, key_len;
    size_t val_off, val_len;
} bd_msg_t;

typedef struct bd_sample_s {
    bd_msg_t *msgs;
    size_t cnt;
    unsigned char *arena;
    size_t len, cap;
} bd_sample_t;

static void bd_usage(FILE *fp) {
    fprintf(fp, "usage: bench_decode [--events N] [--reps R] [--merchants M] "
                "[--zipf-s S] [--seed S]\n"
                "                    [--flush-events F]\n"
                "Decodes and folds N fixed load-generator events R times "
                "(defaults: 20000, 5,\n"
                "100000 merchants, Zipf 0.8, seed 42, cache emptied every "
                "20000 events).\n");
}

static int bd_num(const char *s, double min, double max, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= min && v <= max)) return TD_ERR;
    *out = v;
    return TD_OK;
}

static int bd_parse_args(int argc, char **argv, bd_opts_t *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        double v = 0;
        int ok;

        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bd_usage(stdout);
            exit(0);
        }
        if (!val) {
            fprintf(stderr, "bench_decode: incomplete option %s\n", a);
            return TD_ERR;
        }
        i++;
        if (!strcmp(a, "--events")) {
            ok = !bd_num(val, 1, 1e8, &v);
            o->events = (long)v;
        } else if (!strcmp(a, "--reps")) {
            ok = !bd_num(val, 1, 1e6, &v);
            o->reps = (long)v;
        } else if (!strcmp(a, "--merchants")) {
            ok = !bd_num(val, 1, 1e6, &v);
            o->gen.merchants = (int)v;
        } else if (!strcmp(a, "--zipf-s")) {
            ok = !bd_num(val, 0, 5, &o->gen.zipf_s);
        } else if (!strcmp(a, "--seed")) {
            ok = !bd_num(val, 0, 1e15, &v);
            o->gen.seed = (uint64_t)v;
        } else if (!strcmp(a, "--flush-events")) {
            ok = !bd_num(val, 1, 1e8, &v);
            o->flush_events = (long)v;
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "bench_decode: bad option %s %s\n", a, val);
            return TD_ERR;
        }
    }
    return TD_OK;
}

/* Reserves n bytes at the end of the arena and returns their offset. */
static size_t bd_reserve(bd_sample_t *s, size_t n) {
    if (s->len + n > s->cap) {
        size_t nc = s->cap ? s->cap : 1 << 20;
        while (nc < s->len + n) {
            nc *= 2;
        }
        unsigned char *na = realloc(s->arena, nc);
        if (!na) {
            fprintf(stderr, "bench_decode: out of memory (%zu bytes)\n", nc);
            exit(1);
        }
        s->arena = na;
        s->cap = nc;
    }
    size_t off = s->len;
    s->len += n;
    return off;
}

/* Generates and encodes the sample. TD_OK, or TD_ERR with errstr. */
static int bd_sample_make(bd_sample_t *s,
                          const bd_opts_t *o,
                          td_codec_t *codec,
                          char *errstr,
                          size_t errstr_size) {
    td_loadgen_t *g = td_loadgen_new(&o->gen, errstr, errstr_size);
    unsigned char buf[BD_BUF_SIZE];

    if (!g) return TD_ERR;
    s->msgs = calloc((size_t)o->events, sizeof(*s->msgs));
    if (!s->msgs) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    for (long i = 0; i < o->events; i++) {
        td_event_t ev;
        size_t len;
        bd_msg_t *m = &s->msgs[s->cnt];

        td_loadgen_next(g, &ev);
        if (td_codec_encode(codec, &ev, buf, sizeof(buf), &len, errstr,
                            errstr_size) != TD_OK)
            goto err;
        m->kind = ev.kind;
        m->key_len = ev.merchant_id.len;
        m->key_off = bd_reserve(s, m->key_len);
        memcpy(s->arena + m->key_off, ev.merchant_id.ptr, m->key_len);
        m->val_len = len;
        m->val_off = bd_reserve(s, len);
        memcpy(s->arena + m->val_off, buf, len);
        s->cnt++;
    }
    td_loadgen_destroy(g);
    return TD_OK;
err:
    td_loadgen_destroy(g);
    return TD_ERR;
}

static void bd_sample_term(bd_sample_t *s) {
    free(s->msgs);
    free(s->arena);
}

static double bd_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    bd_opts_t o = {.events = 20000, .reps = 5, .flush_events = 20000};
    bd_sample_t sample = {0};
    td_codec_t *codec = NULL;
    td_mcache_t *cache = NULL;
    td_mscache_t *states = NULL; /* the exact states, one per merchant */
    td_validate_t validate;
    char errstr[512];
    int rc = 1;

    td_loadgen_conf_defaults(&o.gen);
    o.gen.merchants = 100000;
    o.gen.zipf_s = 0.8;
    o.gen.start_ms = BD_START_MS;
    if (bd_parse_args(argc, argv, &o) != TD_OK) {
        bd_usage(stderr);
        return 2;
    }
    td_validate_defaults(&validate);

    codec = td_codec_new(errstr, sizeof(errstr));
    if (!codec) {
        fprintf(stderr, "bench_decode: codec: %s\n", errstr);
        goto done;
    }
    if (bd_sample_make(&sample, &o, codec, errstr, sizeof(errstr)) != TD_OK) {
        fprintf(stderr, "bench_decode: sample: %s\n", errstr);
        goto done;
    }
    cache = td_mcache_new();
    states = td_mscache_new();
    CALLGRIND_START_INSTRUMENTATION;

    /* The measured loop: what worker.c's handle() does per message. */
    int64_t now_ms = td_now_ms();
    long decoded = 0, since_flush = 0;
    size_t peak = 0;
    double t0 = bd_mono_ns();
    for (long r = 0; r < o.reps; r++) {
        for (size_t i = 0; i < sample.cnt; i++) {
            const bd_msg_t *m = &sample.msgs[i];
            td_event_t ev;
            td_dlq_reason_t reason = td_codec_decode(
                codec, m->kind, sample.arena + m->key_off, m->key_len,
                sample.arena + m->val_off, m->val_len, now_ms, &validate, &ev,
                errstr, sizeof(errstr));
            if (reason != TD_DLQ_OK) {
                fprintf(stderr, "bench_decode: message %zu: %s: %s\n", i,
                        td_dlq_reason_name(reason), errstr);
                goto done;
            }
            /* One source per topic: a merchant's events of one kind all
             * come from one partition, as with keyed production. */
            td_mdelta_t *d =
                td_mcache_delta(cache, ev.merchant_id.ptr, ev.merchant_id.len,
                                (int)m->kind, m->kind, (int64_t)i);
            td_sigdelta_add(&d->d, &ev);
            decoded++;
            if (++since_flush == o.flush_events) {
                if (td_mcache_merchants(cache) > peak) {
                    peak = td_mcache_merchants(cache);
                }
                for (td_merchant_t *cm = td_mcache_first(cache); cm;
                     cm = cm->lnext)
                    td_mscache_add(states, cm->id, cm->idlen);
                td_mcache_clear(cache);
                since_flush = 0;
            }
        }
    }
    double t1 = bd_mono_ns();
    if (td_mcache_merchants(cache) > peak) {
        peak = td_mcache_merchants(cache);
    }

    size_t bytes = td_mcache_bytes(cache);
    for (td_merchant_t *cm = td_mcache_first(cache); cm; cm = cm->lnext)
        td_mscache_add(states, cm->id, cm->idlen);
    size_t nstates = td_mscache_count(states);
    double state_bytes =
        nstates ? (double)td_mscache_bytes(states) / (double)nstates : 0.0;
    printf("events=%zu reps=%ld decoded=%ld ns_per_event=%.1f "
           "peak_merchants=%zu cache_bytes=%zu bytes_per_merchant=%.0f "
           "merchant_struct=%zu delta_struct=%zu state_bytes_per_merchant=%.0f"
           "\n",
           sample.cnt, o.reps, decoded,
           decoded ? (t1 - t0) / (double)decoded : 0.0, peak, bytes,
           peak ? (double)bytes / (double)peak : 0.0, sizeof(td_merchant_t),
           sizeof(td_mdelta_t), state_bytes);
    rc = 0;

done:
    td_mcache_destroy(cache);
    td_mscache_destroy(states);
    bd_sample_term(&sample);
    td_codec_destroy(codec);
    return rc;
}
