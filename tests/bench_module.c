/*
 * bench_module.c - the load tests/bench_module.sh measures: merchant writes
 * (or loads) of one path, native (TD.PUT, TD.LOAD) or Lua (RESTORE of the
 * :next keys + FCALL td_put; the MULTI/EXEC load), pipelined as a flush
 * sends them, into a redis-server with the module.
 *
 *   bench_module --port P --mode native|lua --what put|load
 *                --merchants M --from R0 --rounds N
 *
 * Round r writes every merchant once: write r of merchant m is fully
 * determined by (m, r), so a later run continues where an earlier one
 * stopped (the state version, the watermarks of two sources, the score
 * version every third round, a publication mark every fourth) and every
 * put is accepted; a refused one fails the run. The signals hash has
 * every signal of the catalog with 10 significant digits, as trustd
 * writes it; the score hash has its reasons.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "mstate.h"
#include "numfmt.h"
#include "rdump.h"
#include "signals.h"
#include "pack.h"
#include "proto.h"
#include "store.h"

#define BATCH 128

typedef struct args_s {
    int n;
    const char *v[64];
    size_t l[64];
    char buf[32768];
    size_t used;
} args_t;

static void add(args_t *a, const void *p, size_t len) {
    if (a->n >= 64 || a->used + len > sizeof(a->buf)) {
        fprintf(stderr, "bench_module: command too large\n");
        exit(1);
    }
    memcpy(a->buf + a->used, p, len);
    a->v[a->n] = a->buf + a->used;
    a->l[a->n++] = len;
    a->used += len;
}

static void adds(args_t *a, const char *s) {
    add(a, s, strlen(s));
}

static void addi(args_t *a, long long v) {
    char b[24];
    add(a, b, (size_t)snprintf(b, sizeof(b), "%lld", v));
}

static void version_bytes(uint64_t v, uint8_t *b) {
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static size_t signals_payload(uint8_t *buf, size_t cap, int m, int r) {
    char num[TD_FMT_G10_MAX];
    td_rdump_t d;
    const uint8_t *p;
    size_t len;

    td_rdump_begin(&d, buf, cap);
    len = td_fmt_i64(num, 1700000000000LL + 60000LL * r);
    td_rdump_add(&d, "as_of_ms", 8, num, len);
    for (int i = 0; i < TD_SIG__CNT; i++) {
        len = td_fmt_g10(num, (double)(m * 7919 + r * 104729 + i * 31) /
                                  (double)(3 + i));
        td_rdump_add(&d, td_signals[i].name, td_signals[i].name_len, num, len);
    }
    p = td_rdump_end(&d, &len);
    if (!p) exit(1);
    memmove(buf, p, len);
    return len;
}

static size_t score_payload(uint8_t *buf, size_t cap, int m, long long v) {
    char vals[11][128];
    static const char *names[11] = {"score",    "tier",          "confidence",
                                    "version",  "model_version", "updated_ms",
                                    "reasons",  "pub_version",   "pub_score",
                                    "pub_tier", "pub_ms"};
    td_rdump_t d;
    const uint8_t *p;
    size_t len;

    snprintf(vals[0], sizeof(vals[0]), "%.17g", 0.5 + m % 100 / 250.0);
    snprintf(vals[1], sizeof(vals[1]), "%d", m % 5);
    snprintf(vals[2], sizeof(vals[2]), "%.17g", 0.875);
    snprintf(vals[3], sizeof(vals[3]), "%lld", v);
    snprintf(vals[4], sizeof(vals[4]), "model-2026-11");
    snprintf(vals[5], sizeof(vals[5]), "%lld", 1700000000000LL + v);
    snprintf(vals[6], sizeof(vals[6]),
             "late_shipment_rate_30d above peers; refund_rate_30d rising; "
             "review_mean_90d falling");
    snprintf(vals[7], sizeof(vals[7]), "%lld", v - 1);
    snprintf(vals[8], sizeof(vals[8]), "%.17g", 0.5);
    snprintf(vals[9], sizeof(vals[9]), "%d", 2);
    snprintf(vals[10], sizeof(vals[10]), "%lld", 1700000000000LL);
    td_rdump_begin_long(&d, buf, cap);
    for (int i = 0; i < (v > 1 ? 11 : 7); i++)
        td_rdump_add(&d, names[i], strlen(names[i]), vals[i], strlen(vals[i]));
    p = td_rdump_end(&d, &len);
    if (!p) exit(1);
    memmove(buf, p, len);
    return len;
}

static void key(args_t *a,
                size_t (*fn)(char *, size_t, const char *, size_t),
                const char *m) {
    char k[128];
    add(a, k, fn(k, sizeof(k), m, strlen(m)));
}

static int lua;
static const char *put_fn;
static int pending;

static void send(redisContext *c, args_t *a) {
    redisAppendCommandArgv(c, a->n, a->v, a->l);
    pending++;
    a->n = 0;
    a->used = 0;
}

/* Reads every pending reply; a refused put or an error ends the run. */
static void drain(redisContext *c) {
    for (; pending > 0; pending--) {
        redisReply *r;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            fprintf(stderr, "bench_module: %s\n", c->errstr);
            exit(1);
        }
        if (r->type == REDIS_REPLY_ERROR ||
            (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
             r->element[0]->type == REDIS_REPLY_STRING &&
             !strcmp(r->element[0]->str, "STALE"))) {
            fprintf(stderr, "bench_module: %s\n",
                    r->type == REDIS_REPLY_ERROR ? r->str : "STALE");
            exit(1);
        }
        freeReplyObject(r);
    }
}

/* The Lua path's RESTORE of a payload as a :next key. */
static void restore_next(redisContext *c,
                         args_t *a,
                         size_t (*fn)(char *, size_t, const char *, size_t),
                         const char *m,
                         const uint8_t *p,
                         size_t len) {
    adds(a, "RESTORE");
    key(a, fn, m);
    adds(a, "0");
    add(a, p, len);
    adds(a, "REPLACE");
    send(c, a);
}

/* Write r of merchant mi: the same for both forms. */
typedef struct put_s {
    char m[32];
    uint8_t exp[8];
    size_t explen;
    int nsrc;
    long long first, next;
    int mark;
    long long mark_v, mark_ms;
    int with_score;
    long long sv; /* score writes before round r */
    size_t slen, clen;
    unsigned char head[TD_HISTORY_HEAD];
} put_t;

static uint8_t sig[16384], score[TD_PROTO_SCORE_MAX], blob[TD_MSTATE_BLOB];

static void put_of(put_t *p, int mi, int r) {
    snprintf(p->m, sizeof(p->m), "%s%d", lua ? "l" : "n", mi);
    version_bytes((uint64_t)r, p->exp);
    p->explen = r ? 8 : 0;
    memset(blob, 'a' + r % 26, sizeof(blob));
    version_bytes((uint64_t)r + 1, blob);
    p->nsrc = 1 + (mi + r) % 2;
    p->first = 10LL * r;
    p->next = 10LL * r + 10;
    p->with_score = r % 3 == 0;
    p->sv = r / 3;
    p->mark = r % 4 == 2;
    p->mark_v = p->sv + r; /* newer than any mark before */
    p->mark_ms = 1700000000000LL + r;
    p->slen = signals_payload(sig, sizeof(sig), mi, r);
    p->clen = 0;
    if (p->with_score) {
        p->clen = score_payload(score, sizeof(score), mi, p->sv + 1);
        td_history_head(p->head, 1700000000000LL + 60000LL * r, 50 + mi % 50, 3,
                        0.8);
    }
}

static void put_sources(args_t *a, const put_t *p) {
    for (int i = 0; i < p->nsrc; i++) {
        adds(a, i ? "reviews/3" : "orders/3");
        addi(a, p->first);
        addi(a, p->next);
    }
}

static void put_mark(args_t *a, const put_t *p) {
    if (!p->mark) {
        if (!lua) adds(a, "");
        return;
    }
    addi(a, p->mark_v);
    adds(a, "0.60999999999999999");
    adds(a, "2");
    addi(a, p->mark_ms);
}

static void put_sv(args_t *a, const put_t *p) {
    if (p->sv > 0)
        addi(a, p->sv);
    else
        adds(a, "");
}

static void put_score(args_t *a, const put_t *p) {
    put_sv(a, p);
    add(a, score, p->clen);
    add(a, p->head, sizeof(p->head));
}

/* TD.PUT (module/args.h's wire form): the small arguments, gathered in
 * m, go packed in <meta>. */
static void put_native(redisContext *c, args_t *a, const put_t *p) {
    static args_t m;
    static uint8_t meta[4096];
    td_pack_t pk;

    m.n = 0;
    m.used = 0;
    add(&m, p->exp, p->explen);
    addi(&m, p->nsrc);
    put_sources(&m, p);
    put_mark(&m, p);
    if (p->with_score) {
        put_sv(&m, p);
        add(&m, p->head, sizeof(p->head));
    }
    td_pack_init(&pk, meta, sizeof(meta));
    for (int i = 0; i < m.n; i++)
        td_pack_add(&pk, m.v[i], m.l[i]);
    adds(a, "TD.PUT");
    add(a, sig, p->slen);
    key(a, td_key_state, p->m);
    key(a, td_key_wm, p->m);
    key(a, td_key_signals, p->m);
    key(a, td_key_score, p->m);
    key(a, td_key_history, p->m);
    add(a, blob, sizeof(blob));
    add(a, meta, pk.len);
    if (p->with_score) add(a, score, p->clen);
    send(c, a);
}

/* RESTORE of signals:next + FCALL td_put (store_lib.lua's layout). */
static void put_lua(redisContext *c, args_t *a, const put_t *p) {
    int nkeys = p->with_score ? 6 : p->mark ? 5 : 4;

    restore_next(c, a, td_key_signals_next, p->m, sig, p->slen);
    adds(a, "FCALL");
    adds(a, put_fn);
    addi(a, nkeys);
    key(a, td_key_state, p->m);
    key(a, td_key_wm, p->m);
    key(a, td_key_signals, p->m);
    key(a, td_key_signals_next, p->m);
    if (nkeys > 4) key(a, td_key_score, p->m);
    if (nkeys > 5) key(a, td_key_history, p->m);
    add(a, p->exp, p->explen);
    add(a, blob, sizeof(blob));
    put_mark(a, p);
    if (p->with_score) put_score(a, p);
    put_sources(a, p);
    send(c, a);
}

static void put(redisContext *c, args_t *a, int mi, int r) {
    put_t p;

    put_of(&p, mi, r);
    if (lua)
        put_lua(c, a, &p);
    else
        put_native(c, a, &p);
}

static void load(redisContext *c, args_t *a, int mi) {
    char m[32];

    snprintf(m, sizeof(m), "%s%d", lua ? "l" : "n", mi);
    if (!lua) {
        adds(a, "TD.LOAD");
        key(a, td_key_state, m);
        key(a, td_key_wm, m);
        key(a, td_key_signals, m);
        key(a, td_key_score, m);
        adds(a, "fingerprint");
        send(c, a);
        return;
    }
    adds(a, "MULTI");
    send(c, a);
    adds(a, "GET");
    key(a, td_key_state, m);
    send(c, a);
    adds(a, "HGETALL");
    key(a, td_key_wm, m);
    send(c, a);
    adds(a, "HMGET");
    key(a, td_key_score, m);
    adds(a, "pub_score");
    adds(a, "pub_tier");
    adds(a, "pub_ms");
    adds(a, "version");
    adds(a, "model_version");
    adds(a, "pub_version");
    send(c, a);
    adds(a, "EXISTS");
    key(a, td_key_signals, m);
    send(c, a);
    adds(a, "EXEC");
    send(c, a);
}

int main(int argc, char **argv) {
    static args_t a;
    int port = 0, merchants = 500, from = 0, rounds = 1, loads = 0;
    char addr[64], errstr[512];
    td_store_conf_t sc = {0};
    td_store_t *st = NULL;
    redisContext *c;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--mode")) lua = !strcmp(argv[i + 1], "lua");
        if (!strcmp(argv[i], "--what")) loads = !strcmp(argv[i + 1], "load");
        if (!strcmp(argv[i], "--merchants")) merchants = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--from")) from = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
    }
    if (port <= 0 || merchants <= 0 || rounds <= 0) {
        fprintf(stderr, "usage: bench_module --port P --mode native|lua "
                        "--what put|load --merchants M --from R0 "
                        "--rounds N\n");
        return 2;
    }
    if (lua) {
        /* The library as trustd loads it, and its function names. */
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        sc.addrs = addr;
        sc.user = "";
        sc.password = "";
        sc.connect_timeout_ms = 5000;
        sc.command_timeout_ms = 60000;
        st = td_store_new(&sc, errstr, sizeof(errstr));
        if (!st || td_store_connect(st, errstr, sizeof(errstr)) != TD_OK) {
            fprintf(stderr, "bench_module: %s\n", errstr);
            return 1;
        }
        put_fn = td_store_fn(st, "put");
    }
    c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        fprintf(stderr, "bench_module: cannot connect\n");
        return 1;
    }
    for (int r = from; r < from + rounds; r++) {
        for (int m = 0; m < merchants; m++) {
            if (loads)
                load(c, &a, m);
            else
                put(c, &a, m, r);
            if (pending >= BATCH) drain(c);
        }
    }
    drain(c);
    printf("%d %s %ss, %d signals per hash\n", merchants * rounds,
           lua ? "lua" : "native", loads ? "load" : "put", TD_SIG__CNT);
    redisFree(c);
    td_store_destroy(st);
    return 0;
}
