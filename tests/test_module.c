/*
 * test_module.c - trustd's Redis module (processor/module/) loaded into a
 * real redis-server: the native commands give the Lua library's replies
 * and leave its keys byte for byte (DUMP), over random merchant writes;
 * the score history each score write appends to, also over 64 points and
 * 90 days; TD.PART's replies; a replica and the AOF get one TD.PUT per accepted
 * write, and the AOF replays to the same keys; bad arguments are an error
 * with nothing written.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "history.h"
#include "numfmt.h"
#include "pack.h"
#include "rdump.h"
#include "signals.h"
#include "proto.h"
#include "store.h"
#include "store_int.h"

static td_h_redis_t redis;
static redisContext *rc;
static td_store_t *st;
static char modpath[PATH_MAX + 32];
static uint64_t rng = 0x2545F4914F6CDD1DULL;

static uint64_t rnd(uint64_t n) {
    return td_h_xorshift(&rng) % n;
}

/* The module next to this test binary: <build>/tests/.. */
static const char *module_path(void) {
    char exe[PATH_MAX], *slash;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n <= 0) return NULL;
    exe[n] = '\0';
    for (int i = 0; i < 2; i++) {
        slash = strrchr(exe, '/');
        if (!slash) return NULL;
        *slash = '\0';
    }
    snprintf(modpath, sizeof(modpath), "%s/trustd_module.so", exe);
    return access(modpath, R_OK) == 0 ? modpath : NULL;
}

static int setup(void **state) {
    const char *extra[] = {"--loadmodule", NULL, NULL};
    td_store_conf_t sc = {0};
    char errstr[512];
    (void)state;

    extra[1] = module_path();
    if (!extra[1]) {
        fprintf(stderr, "trustd_module.so not found next to the tests\n");
        return -1;
    }
    if (td_h_redis_start(&redis, extra)) return -1;
    rc = td_h_redis_connect(&redis);
    sc.addrs = redis.addr;
    sc.user = "";
    sc.password = "";
    sc.connect_timeout_ms = 2000;
    sc.command_timeout_ms = 5000;
    st = td_store_new(&sc, errstr, sizeof(errstr));
    if (!rc || !st || td_store_connect(st, errstr, sizeof(errstr)) != TD_OK) {
        fprintf(stderr, "setup: %s\n", errstr);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    td_store_destroy(st);
    if (rc) redisFree(rc);
    td_h_redis_stop(&redis);
    return 0;
}

/* ---- argument vectors ---- */

#define VEC_MAX 256

typedef struct vec_s {
    int n;
    const char *v[VEC_MAX];
    size_t l[VEC_MAX];
    char buf[1 << 16];
    size_t used;
} vec_t;

static void vec_add(vec_t *a, const void *p, size_t len) {
    assert_true(a->n < VEC_MAX && a->used + len + 1 <= sizeof(a->buf));
    memcpy(a->buf + a->used, p, len);
    a->buf[a->used + len] = '\0';
    a->v[a->n] = a->buf + a->used;
    a->l[a->n++] = len;
    a->used += len + 1;
}

static void vec_str(vec_t *a, const char *s) {
    vec_add(a, s, strlen(s));
}

static void vec_fmt(vec_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void vec_fmt(vec_t *a, const char *fmt, ...) {
    char b[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof(b), fmt, ap);
    va_end(ap);
    vec_str(a, b);
}

static redisReply *run(const vec_t *a) {
    redisReply *r = redisCommandArgv(rc, a->n, (const char **)a->v, a->l);
    assert_non_null(r);
    return r;
}

static redisReply *cmd(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static void ok(redisReply *r) {
    if (r->type == REDIS_REPLY_ERROR) fail_msg("redis: %s", r->str);
    freeReplyObject(r);
}

static int same_reply(const redisReply *a, const redisReply *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case REDIS_REPLY_INTEGER:
        return a->integer == b->integer;
    case REDIS_REPLY_NIL:
        return 1;
    case REDIS_REPLY_ARRAY:
        if (a->elements != b->elements) return 0;
        for (size_t i = 0; i < a->elements; i++) {
            if (!same_reply(a->element[i], b->element[i])) return 0;
        }
        return 1;
    default:
        return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    }
}

static void print_reply(const char *tag, const redisReply *r) {
    if (r->type == REDIS_REPLY_ARRAY) {
        printf("%s: array of %zu\n", tag, r->elements);
        for (size_t i = 0; i < r->elements; i++)
            print_reply(tag, r->element[i]);
    } else if (r->type == REDIS_REPLY_INTEGER) {
        printf("%s: %lld\n", tag, r->integer);
    } else {
        printf("%s: type %d '%.*s'\n", tag, r->type, (int)r->len,
               r->str ? r->str : "");
    }
}

/* ---- merchants ---- */

enum { K_STATE, K_WM, K_SIGNALS, K_SCORE, K_SIGNALS_NEXT, K_HISTORY, K__N };

typedef struct keys_s {
    char k[K__N][TD_MERCHANT_ID_MAX + 32];
    size_t l[K__N];
} keys_t;

static void keys_of(keys_t *k, const char *m) {
    size_t n = strlen(m);
    k->l[K_STATE] = td_key_state(k->k[K_STATE], sizeof(k->k[0]), m, n);
    k->l[K_WM] = td_key_wm(k->k[K_WM], sizeof(k->k[0]), m, n);
    k->l[K_SIGNALS] = td_key_signals(k->k[K_SIGNALS], sizeof(k->k[0]), m, n);
    k->l[K_SCORE] = td_key_score(k->k[K_SCORE], sizeof(k->k[0]), m, n);
    k->l[K_SIGNALS_NEXT] =
        td_key_signals_next(k->k[K_SIGNALS_NEXT], sizeof(k->k[0]), m, n);
    k->l[K_HISTORY] = td_key_history(k->k[K_HISTORY], sizeof(k->k[0]), m, n);
}

/* The keys a merchant write leaves (TD.PUT's five, in its order). */
#define NDUMP 5
static const int dump_keys[NDUMP] = {K_STATE, K_WM, K_SIGNALS, K_SCORE,
                                     K_HISTORY};

/* The DUMPs of a merchant's five keys (nil for a missing one). */
typedef struct dumps_s {
    redisReply *d[NDUMP];
} dumps_t;

static void dumps_take(redisContext *c, const keys_t *k, dumps_t *d) {
    for (int i = 0; i < NDUMP; i++)
        d->d[i] = cmd(c, "DUMP %b", k->k[dump_keys[i]], k->l[dump_keys[i]]);
}

static void dumps_free(dumps_t *d) {
    for (int i = 0; i < NDUMP; i++)
        freeReplyObject(d->d[i]);
}

static void dumps_equal(const dumps_t *a, const dumps_t *b, const char *tag) {
    static const char *names[] = {"state", "wm", "signals", "score", "history"};
    for (int i = 0; i < NDUMP; i++) {
        if (!same_reply(a->d[i], b->d[i]))
            fail_msg("%s: DUMP of %s differs", tag, names[i]);
    }
}

static uint64_t rnd_in(uint64_t *r, uint64_t n) {
    return td_h_xorshift(r) % n;
}

/* A readable signals hash as trustd writes it: as_of_ms and most of the
 * catalog's signals with 10 significant digits. */
static size_t signals_payload(uint8_t *buf, size_t cap) {
    char num[TD_FMT_G10_MAX];
    td_rdump_t d;
    const uint8_t *p;
    size_t len;
    /* Its own stream, seeded from the cases' one: the cases that follow
     * do not change when the catalog gains a signal. */
    uint64_t r = td_h_xorshift(&rng) | 1;

    td_rdump_begin(&d, buf, cap);
    len = td_fmt_i64(num, 1700000000000LL + (int64_t)rnd_in(&r, 1000000000));
    td_rdump_add(&d, "as_of_ms", 8, num, len);
    for (int i = 0; i < TD_SIG__CNT; i++) {
        if (rnd_in(&r, 10) == 0) continue;
        double v =
            (double)rnd_in(&r, 100000000) / (double)(1 + rnd_in(&r, 1000));
        len = td_fmt_g10(num, rnd_in(&r, 4) ? v : (double)rnd_in(&r, 100));
        td_rdump_add(&d, td_signals[i].name, td_signals[i].name_len, num, len);
    }
    p = td_rdump_end(&d, &len);
    assert_non_null(p);
    memmove(buf, p, len);
    return len;
}

/* A score hash at version v (with reasons past 64 bytes), with a
 * delivered publication pv when pv > 0. */
static size_t score_payload(uint8_t *buf, size_t cap, int64_t v, int64_t pv) {
    char vals[12][128];
    const char *names[12] = {"score",    "tier",          "confidence",
                             "version",  "model_version", "updated_ms",
                             "reasons",  "pub_version",   "pub_score",
                             "pub_tier", "pub_ms"};
    td_rdump_t d;
    const uint8_t *p;
    size_t len;
    int n = pv > 0 ? 11 : 7;

    snprintf(vals[0], sizeof(vals[0]), "0.%llu",
             (unsigned long long)rnd(1000000));
    snprintf(vals[1], sizeof(vals[1]), "%llu", (unsigned long long)rnd(5));
    snprintf(vals[2], sizeof(vals[2]), "0.%llu", (unsigned long long)rnd(99));
    snprintf(vals[3], sizeof(vals[3]), "%lld", (long long)v);
    snprintf(vals[4], sizeof(vals[4]), "m-%llu", (unsigned long long)rnd(3));
    snprintf(vals[5], sizeof(vals[5]), "%llu",
             (unsigned long long)(1700000000000ULL + rnd(1000000)));
    snprintf(vals[6], sizeof(vals[6]),
             "late_shipment_rate above its peers by %llu %%; "
             "refund_rate_30d rising for %llu days; review mean falling",
             (unsigned long long)rnd(100), (unsigned long long)rnd(30));
    snprintf(vals[7], sizeof(vals[7]), "%lld", (long long)pv);
    snprintf(vals[8], sizeof(vals[8]), "0.%llu", (unsigned long long)rnd(1000));
    snprintf(vals[9], sizeof(vals[9]), "%llu", (unsigned long long)rnd(5));
    snprintf(vals[10], sizeof(vals[10]), "%llu",
             (unsigned long long)(1700000000000ULL + rnd(1000)));
    td_rdump_begin_long(&d, buf, cap);
    for (int i = 0; i < n; i++)
        td_rdump_add(&d, names[i], strlen(names[i]), vals[i], strlen(vals[i]));
    p = td_rdump_end(&d, &len);
    assert_non_null(p);
    memmove(buf, p, len);
    return len;
}

static void restore(redisContext *c,
                    const char *key,
                    size_t klen,
                    const uint8_t *p,
                    size_t len) {
    ok(cmd(c, "RESTORE %b 0 %b REPLACE", key, klen, p, len));
}

/*
 * One random merchant write: the stored keys before it (the same for every
 * merchant given to case_setup) and the put, in both forms.
 */
typedef struct pcase_s {
    /* stored */
    int has_state;
    uint8_t ver[8];
    int wm_n;
    char wm_src[4][96];
    int64_t wm_at[4];
    int has_score;
    int64_t score_v, pub_v;
    uint8_t score_p[TD_PROTO_SCORE_MAX];
    size_t score_len;
    int has_signals;
    uint8_t sig_p[8192];
    size_t sig_len;
    uint8_t hist[TD_HISTORY_BYTES + 2 * TD_HISTORY_POINT];
    size_t hist_len; /* 0: no history key */
    /* the put */
    uint8_t expected[8];
    size_t expected_len;
    uint8_t blob[200];
    int nsrc;
    char src[3][96];
    int64_t first[3], next[3];
    int mark;
    char mark_v[24], mark_score[24], mark_tier[8], mark_ms[24];
    uint8_t new_sig[8192];
    size_t new_sig_len;
    int with_score;
    char sv[24];
    uint8_t new_score[TD_PROTO_SCORE_MAX];
    size_t new_score_len;
    unsigned char head[TD_HISTORY_HEAD];
} pcase_t;

static void rnd_bytes(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd(256);
}

#define T0 1700000000u /* seconds */

/* A head published at secs with random score, tier and confidence. */
static void rnd_head(unsigned char *head, uint32_t secs) {
    td_history_head(head, (int64_t)secs * 1000, (double)rnd(10001) / 100,
                    1 + (int)rnd(5), (double)rnd(101) / 100);
}

/* A stored history: up to 70 records (past the cap) spread over 200
 * days before T0 + 100 days, sometimes with a partial record after them.
 * Random bytes but for the times: the put's trim reads those. */
static size_t rnd_history(uint8_t *h, size_t cap) {
    size_t n = rnd(71), len = 0;
    uint32_t t = T0 - 100 * 86400;

    for (size_t i = 0; i < n && len + TD_HISTORY_POINT <= cap; i++) {
        t += (uint32_t)rnd(6 * 86400);
        rnd_bytes(h + len, TD_HISTORY_POINT);
        for (int j = 0; j < 4; j++)
            h[len + j] = (uint8_t)(t >> (8 * j));
        len += TD_HISTORY_POINT;
    }
    if (rnd(5) == 0 && len + TD_HISTORY_POINT <= cap) {
        size_t part = 1 + rnd(TD_HISTORY_POINT - 1);
        rnd_bytes(h + len, part);
        len += part;
    }
    return len;
}

static void case_new(pcase_t *c) {
    memset(c, 0, sizeof(*c));
    c->has_state = rnd(5) != 0;
    rnd_bytes(c->ver, 8);
    c->wm_n = (int)rnd(4);
    for (int i = 0; i < c->wm_n; i++) {
        snprintf(c->wm_src[i], sizeof(c->wm_src[i]), "orders/%d", i);
        c->wm_at[i] = 100 + (int64_t)rnd(100);
    }
    c->has_score = rnd(10) < 7;
    c->score_v = 1 + (int64_t)rnd(50);
    c->pub_v = rnd(3) ? (int64_t)rnd((uint64_t)c->score_v + 1) : 0;
    if (c->has_score)
        c->score_len =
            score_payload(c->score_p, sizeof(c->score_p), c->score_v, c->pub_v);
    c->has_signals = rnd(10) < 7;
    if (c->has_signals)
        c->sig_len = signals_payload(c->sig_p, sizeof(c->sig_p));
    c->hist_len = rnd(3) ? rnd_history(c->hist, sizeof(c->hist)) : 0;

    /* the put */
    if (rnd(100) < 85) {
        c->expected_len = c->has_state ? 8 : 0;
        memcpy(c->expected, c->ver, 8);
    } else {
        c->expected_len = c->has_state && rnd(2) ? 0 : 8;
        rnd_bytes(c->expected, 8);
    }
    rnd_bytes(c->blob, sizeof(c->blob));
    c->nsrc = (int)rnd(4);
    for (int i = 0; i < c->nsrc; i++) {
        int s = (int)rnd(4);
        /* source 3: a name past hash-max-listpack-value (64 bytes), so
         * HSET turns the watermarks into a hashtable */
        if (s == 3)
            snprintf(c->src[i], sizeof(c->src[i]), "%s/3",
                     "merchant-order-events-from-the-legacy-checkout-"
                     "platform-eu-west-1");
        else
            snprintf(c->src[i], sizeof(c->src[i]), "orders/%d", s);
        /* mostly at or past the stored watermark; sometimes behind */
        int64_t at = s < c->wm_n ? c->wm_at[s] : 100;
        c->first[i] =
            at + (rnd(10) < 8 ? (int64_t)rnd(5) : -1 - (int64_t)rnd(3));
        c->next[i] = c->first[i] + 1 + (int64_t)rnd(100);
    }
    c->mark = (int)rnd(2);
    snprintf(c->mark_v, sizeof(c->mark_v), "%lld",
             (long long)(c->pub_v - 2 + (int64_t)rnd(5)));
    snprintf(c->mark_score, sizeof(c->mark_score), "0.%llu",
             (unsigned long long)rnd(100000));
    snprintf(c->mark_tier, sizeof(c->mark_tier), "%llu",
             (unsigned long long)rnd(5));
    snprintf(c->mark_ms, sizeof(c->mark_ms), "%llu",
             (unsigned long long)(1700000000000ULL + rnd(100000)));
    c->new_sig_len = signals_payload(c->new_sig, sizeof(c->new_sig));
    c->with_score = (int)rnd(2);
    if (rnd(100) < 85) {
        if (c->has_score)
            snprintf(c->sv, sizeof(c->sv), "%lld", (long long)c->score_v);
    } else if (c->has_score && rnd(2)) {
        snprintf(c->sv, sizeof(c->sv), "%lld",
                 (long long)(c->score_v + (rnd(2) ? 1 : -1)));
    } else if (!c->has_score) {
        snprintf(c->sv, sizeof(c->sv), "%llu",
                 (unsigned long long)(1 + rnd(3)));
    }
    int64_t pv = rnd(2) ? c->pub_v + (int64_t)rnd(3) : 0;
    c->new_score_len =
        score_payload(c->new_score, sizeof(c->new_score),
                      (c->sv[0] ? strtoll(c->sv, NULL, 10) : 0) + 1, pv);
    rnd_head(c->head, T0 + (uint32_t)rnd(100 * 86400));
}

/* Writes the case's stored keys for merchant k (after deleting them). */
static void case_setup(redisContext *r, const pcase_t *c, const keys_t *k) {
    for (int i = 0; i < K__N; i++)
        ok(cmd(r, "DEL %b", k->k[i], k->l[i]));
    if (c->has_state) {
        uint8_t s[100];
        memcpy(s, c->ver, 8);
        memset(s + 8, 'x', sizeof(s) - 8);
        ok(cmd(r, "SET %b %b", k->k[K_STATE], k->l[K_STATE], s, sizeof(s)));
    }
    for (int i = 0; i < c->wm_n; i++)
        ok(cmd(r, "HSET %b %s %lld", k->k[K_WM], k->l[K_WM], c->wm_src[i],
               (long long)c->wm_at[i]));
    if (c->has_score)
        restore(r, k->k[K_SCORE], k->l[K_SCORE], c->score_p, c->score_len);
    if (c->has_signals)
        restore(r, k->k[K_SIGNALS], k->l[K_SIGNALS], c->sig_p, c->sig_len);
    if (c->hist_len)
        ok(cmd(r, "SET %b %b", k->k[K_HISTORY], k->l[K_HISTORY], c->hist,
               c->hist_len));
}

static void put_common(vec_t *a, const pcase_t *c) {
    vec_add(a, c->expected, c->expected_len);
    vec_add(a, c->blob, sizeof(c->blob));
    vec_fmt(a, "%d", c->nsrc);
    for (int i = 0; i < c->nsrc; i++) {
        vec_str(a, c->src[i]);
        vec_fmt(a, "%lld", (long long)c->first[i]);
        vec_fmt(a, "%lld", (long long)c->next[i]);
    }
    if (c->mark) {
        vec_str(a, c->mark_v);
        vec_str(a, c->mark_score);
        vec_str(a, c->mark_tier);
        vec_str(a, c->mark_ms);
    } else {
        vec_str(a, "");
    }
}

/* The flat vector (module/args.h) of a put. */
static void case_flat(vec_t *a, const pcase_t *c, const keys_t *k) {
    a->n = 0;
    a->used = 0;
    vec_str(a, "TD.PUT");
    for (int i = 0; i < NDUMP; i++)
        vec_add(a, k->k[dump_keys[i]], k->l[dump_keys[i]]);
    put_common(a, c);
    vec_add(a, c->new_sig, c->new_sig_len);
    if (c->with_score) {
        vec_str(a, c->sv);
        vec_add(a, c->new_score, c->new_score_len);
        vec_add(a, c->head, TD_HISTORY_HEAD);
    }
}

/* Flat indexes of a case's signals and score payloads (-1: none). */
static int case_sig(const pcase_t *c) {
    return 9 + 3 * c->nsrc + (c->mark ? 4 : 1);
}

static int case_score(const pcase_t *c) {
    return c->with_score ? case_sig(c) + 2 : -1;
}

/* The wire form (module/args.h) of flat vector f, whose signals payload
 * is at sig and score payload at score (-1: none): the payload, the
 * keys, the blob, <meta> (every other element), the score payload. An
 * index at or past f's end leaves that argument out. */
static void vec_wire(vec_t *a, const vec_t *f, int sig, int score) {
    static uint8_t meta[1 << 15];
    td_pack_t pk;

    a->n = 0;
    a->used = 0;
    vec_add(a, f->v[0], f->l[0]);
    if (sig < f->n) vec_add(a, f->v[sig], f->l[sig]);
    for (int i = 1; i <= 5 && i < f->n; i++)
        vec_add(a, f->v[i], f->l[i]);
    if (f->n > 7) vec_add(a, f->v[7], f->l[7]);
    td_pack_init(&pk, meta, sizeof(meta));
    for (int i = 6; i < f->n; i++) {
        if (i != 7 && i != sig && i != score)
            td_pack_add(&pk, f->v[i], f->l[i]);
    }
    assert_false(pk.overflow);
    if (f->n > 6) vec_add(a, meta, pk.len);
    if (score >= 0 && score < f->n) vec_add(a, f->v[score], f->l[score]);
}

/* TD.PUT as trustd sends it. */
static void case_native(vec_t *a, const pcase_t *c, const keys_t *k) {
    static vec_t f;
    case_flat(&f, c, k);
    vec_wire(a, &f, case_sig(c), case_score(c));
}

/* The Lua path, as trustd sends it (proto.c): RESTORE of signals:next,
 * FCALL with only the keys and arguments the put uses, sources last. */
static redisReply *case_lua(vec_t *a, const pcase_t *c, const keys_t *k) {
    int nkeys = c->with_score ? 6 : c->mark ? 5 : 4;
    static const int order[6] = {K_STATE,        K_WM,    K_SIGNALS,
                                 K_SIGNALS_NEXT, K_SCORE, K_HISTORY};

    restore(rc, k->k[K_SIGNALS_NEXT], k->l[K_SIGNALS_NEXT], c->new_sig,
            c->new_sig_len);
    a->n = 0;
    a->used = 0;
    vec_str(a, "FCALL");
    vec_str(a, td_store_fn(st, "put"));
    vec_fmt(a, "%d", nkeys);
    for (int i = 0; i < nkeys; i++)
        vec_add(a, k->k[order[i]], k->l[order[i]]);
    vec_add(a, c->expected, c->expected_len);
    vec_add(a, c->blob, sizeof(c->blob));
    if (c->mark) {
        vec_str(a, c->mark_v);
        vec_str(a, c->mark_score);
        vec_str(a, c->mark_tier);
        vec_str(a, c->mark_ms);
    }
    if (c->with_score) {
        vec_str(a, c->sv);
        vec_add(a, c->new_score, c->new_score_len);
        vec_add(a, c->head, TD_HISTORY_HEAD);
    }
    for (int i = 0; i < c->nsrc; i++) {
        vec_str(a, c->src[i]);
        vec_fmt(a, "%lld", (long long)c->first[i]);
        vec_fmt(a, "%lld", (long long)c->next[i]);
    }
    return run(a);
}

/* TD.LOAD's reply equals store.c's MULTI/EXEC load. */
static void load_equals_multi(const keys_t *k) {
    redisReply *n, *m, *q;

    n = cmd(rc, "TD.LOAD %b %b %b %b fp", k->k[K_STATE], k->l[K_STATE],
            k->k[K_WM], k->l[K_WM], k->k[K_SIGNALS], k->l[K_SIGNALS],
            k->k[K_SCORE], k->l[K_SCORE]);
    redisAppendCommand(rc, "MULTI");
    redisAppendCommand(rc, "GET %b", k->k[K_STATE], k->l[K_STATE]);
    redisAppendCommand(rc, "HGETALL %b", k->k[K_WM], k->l[K_WM]);
    redisAppendCommand(rc,
                       "HMGET %b pub_score pub_tier pub_ms version "
                       "model_version pub_version",
                       k->k[K_SCORE], k->l[K_SCORE]);
    redisAppendCommand(rc, "EXISTS %b", k->k[K_SIGNALS], k->l[K_SIGNALS]);
    redisAppendCommand(rc, "EXEC");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(redisGetReply(rc, (void **)&q), REDIS_OK);
        freeReplyObject(q);
    }
    assert_int_equal(redisGetReply(rc, (void **)&m), REDIS_OK);
    if (!same_reply(n, m)) {
        print_reply("TD.LOAD", n);
        print_reply("EXEC", m);
        fail_msg("TD.LOAD differs from the MULTI/EXEC load");
    }
    freeReplyObject(n);
    freeReplyObject(m);
}

/* m's history ends with head and version v, within the cap; returns how
 * many points it holds. */
static int
last_point_is(const keys_t *k, const unsigned char *head, long long v) {
    redisReply *r = cmd(rc, "GET %b", k->k[K_HISTORY], k->l[K_HISTORY]);
    td_history_point_t p[TD_HISTORY_MAX + 1];
    int n;

    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len % TD_HISTORY_POINT, 0);
    assert_true(r->len <= TD_HISTORY_BYTES);
    n = td_history_decode((const unsigned char *)r->str, r->len, p,
                          TD_HISTORY_MAX + 1);
    assert_true(n >= 1);
    assert_memory_equal(r->str + r->len - TD_HISTORY_POINT, head,
                        TD_HISTORY_HEAD);
    assert_int_equal(p[n - 1].version, v);
    freeReplyObject(r);
    return n;
}

static int is_stale(const redisReply *r) {
    return r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
           !strcmp(r->element[0]->str, "STALE");
}

static void test_put_equals_the_lua_path(void **state) {
    static pcase_t c;
    static vec_t a;
    keys_t kn, kl;
    int accepted = 0, stale = 0, scored = 0, marked = 0;
    (void)state;

    keys_of(&kn, "native");
    keys_of(&kl, "lua");
    for (int i = 0; i < 400; i++) {
        dumps_t before, dn, dl;
        redisReply *rn, *rl;

        case_new(&c);
        case_setup(rc, &c, &kn);
        case_setup(rc, &c, &kl);
        dumps_take(rc, &kn, &before);
        case_native(&a, &c, &kn);
        rn = run(&a);
        rl = case_lua(&a, &c, &kl);
        if (!same_reply(rn, rl)) {
            print_reply("native", rn);
            print_reply("lua", rl);
            fail_msg("case %d: replies differ", i);
        }
        assert_int_equal(rn->type, REDIS_REPLY_ARRAY);
        dumps_take(rc, &kn, &dn);
        dumps_take(rc, &kl, &dl);
        dumps_equal(&dn, &dl, "native vs lua");
        if (is_stale(rn)) {
            stale++;
            dumps_equal(&before, &dn, "refused put");
        } else {
            accepted++;
            scored += c.with_score;
            marked += c.mark;
            if (c.with_score)
                last_point_is(&kn, c.head, rn->element[1]->integer);
        }
        load_equals_multi(&kn);
        dumps_free(&before);
        dumps_free(&dn);
        dumps_free(&dl);
        freeReplyObject(rn);
        freeReplyObject(rl);
    }
    printf("# %d accepted (%d with a score, %d with a mark), %d refused\n",
           accepted, scored, marked, stale);
    assert_true(accepted > 100 && stale > 50 && scored > 30 && marked > 30);
}

/* Each guard alone refuses, and the refusal writes nothing. */
static void test_each_guard_refuses_without_writing(void **state) {
    static pcase_t c;
    static vec_t a;
    keys_t k;
    (void)state;

    keys_of(&k, "guards");
    for (int g = 0; g < 4; g++) {
        dumps_t before, after;
        redisReply *r;

        do {
            case_new(&c);
        } while (!c.has_state || c.wm_n < 2 || !c.has_score);
        memcpy(c.expected, c.ver, 8);
        c.expected_len = 8;
        c.nsrc = 2;
        for (int i = 0; i < 2; i++) {
            memcpy(c.src[i], c.wm_src[i], sizeof(c.src[i]));
            c.first[i] = c.wm_at[i];
            c.next[i] = c.wm_at[i] + 10;
        }
        c.with_score = 1;
        snprintf(c.sv, sizeof(c.sv), "%lld", (long long)c.score_v);
        if (g == 0) c.expected[7] ^= 1;          /* state version */
        if (g == 1) c.first[0] = c.wm_at[0] - 1; /* first source */
        if (g == 2) c.first[1] = c.wm_at[1] - 1; /* second source */
        if (g == 3)
            snprintf(c.sv, sizeof(c.sv), "%lld", /* score version */
                     (long long)c.score_v + 1);
        case_setup(rc, &c, &k);
        dumps_take(rc, &k, &before);
        case_native(&a, &c, &k);
        r = run(&a);
        assert_true(is_stale(r));
        freeReplyObject(r);
        dumps_take(rc, &k, &after);
        dumps_equal(&before, &after, "refused");
        dumps_free(&before);
        dumps_free(&after);
    }
}

/* A put whose sources include a name past hash-max-listpack-value: HSET
 * turns the watermarks into a hashtable before its first pair, and the
 * module must too (the table's size, and so DUMP's order, depend on it),
 * for any number of stored sources. */
static void test_long_source_name_converts_the_watermarks_as_hset(void **s) {
    static pcase_t c;
    static vec_t a;
    keys_t kn, kl;
    (void)s;

    keys_of(&kn, "long-native");
    keys_of(&kl, "long-lua");
    for (int n = 0; n < 10; n++) {
        dumps_t dn, dl;
        do {
            case_new(&c);
        } while (!c.has_state);
        memcpy(c.expected, c.ver, 8);
        c.expected_len = 8;
        c.wm_n = 0;
        c.with_score = 0;
        c.nsrc = 2;
        snprintf(c.src[0], sizeof(c.src[0]), "new/0");
        snprintf(c.src[1], sizeof(c.src[1]), "%s/1",
                 "merchant-order-events-from-the-legacy-checkout-"
                 "platform-eu-west-1");
        for (int i = 0; i < 2; i++) {
            c.first[i] = 10;
            c.next[i] = 20;
        }
        case_setup(rc, &c, &kn);
        case_setup(rc, &c, &kl);
        for (int i = 0; i < n; i++) {
            ok(cmd(rc, "HSET %b old/%d 5", kn.k[K_WM], kn.l[K_WM], i));
            ok(cmd(rc, "HSET %b old/%d 5", kl.k[K_WM], kl.l[K_WM], i));
        }
        case_native(&a, &c, &kn);
        freeReplyObject(run(&a));
        freeReplyObject(case_lua(&a, &c, &kl));
        dumps_take(rc, &kn, &dn);
        dumps_take(rc, &kl, &dl);
        dumps_equal(&dn, &dl, "long source");
        dumps_free(&dn);
        dumps_free(&dl);
    }
}

/* TD.SCORE and TD.PUBLISHED against td_score and td_published. */
static void test_score_and_published_equal_the_lua_path(void **state) {
    static pcase_t c;
    keys_t kn, kl;
    (void)state;

    keys_of(&kn, "snative");
    keys_of(&kl, "slua");
    for (int i = 0; i < 100; i++) {
        redisReply *rn, *rl;
        dumps_t dn, dl;
        char v[24];

        case_new(&c);
        case_setup(rc, &c, &kn);
        case_setup(rc, &c, &kl);
        if (rnd(2)) {
            /* reasons past 64 bytes turn a listpack into a hashtable */
            static const char *reasons[] = {
                "short",
                "late_shipment_rate above its peers; refund_rate_30d rising "
                "for 9 days"};
            int s = (int)rnd(1000), t = (int)rnd(5);
            const char *why = reasons[rnd(2)];
            rn = cmd(rc, "TD.SCORE %b %b %b score 0.%d tier %d reasons %s",
                     kn.k[K_SCORE], kn.l[K_SCORE], kn.k[K_HISTORY],
                     kn.l[K_HISTORY], c.head, (size_t)TD_HISTORY_HEAD, s, t,
                     why);
            rl = cmd(rc, "FCALL %s 2 %b %b %b score 0.%d tier %d reasons %s",
                     td_store_fn(st, "score"), kl.k[K_SCORE], kl.l[K_SCORE],
                     kl.k[K_HISTORY], kl.l[K_HISTORY], c.head,
                     (size_t)TD_HISTORY_HEAD, s, t, why);
            if (rn->type == REDIS_REPLY_INTEGER)
                last_point_is(&kn, c.head, rn->integer);
        } else {
            snprintf(v, sizeof(v), "%lld",
                     (long long)(c.pub_v - 1 + (int64_t)rnd(3)));
            rn = cmd(rc, "TD.PUBLISHED %b %s 0.25 2 1700000000123",
                     kn.k[K_SCORE], kn.l[K_SCORE], v);
            rl = cmd(rc, "FCALL %s 1 %b %s 0.25 2 1700000000123",
                     td_store_fn(st, "published"), kl.k[K_SCORE], kl.l[K_SCORE],
                     v);
        }
        if (!same_reply(rn, rl)) {
            print_reply("native", rn);
            print_reply("lua", rl);
            fail_msg("case %d: replies differ", i);
        }
        dumps_take(rc, &kn, &dn);
        dumps_take(rc, &kl, &dl);
        dumps_equal(&dn, &dl, "score/published");
        dumps_free(&dn);
        dumps_free(&dl);
        freeReplyObject(rn);
        freeReplyObject(rl);
    }
}

/* A merchant's history over many score writes, puts and TD.SCOREs mixed,
 * through the 64-point cap and gaps past 90 days: the same bytes on both
 * paths, one point per version, the last the hash's. */
static void test_history_over_many_scores_equals_the_lua_path(void **state) {
    static pcase_t c;
    static vec_t a;
    keys_t kn, kl;
    uint32_t t = T0;
    long long v = 0;
    int puts = 0, scores = 0, gaps = 0, since = 0;
    (void)state;

    keys_of(&kn, "hnative");
    keys_of(&kl, "hlua");
    for (int i = 0; i < K__N; i++) {
        ok(cmd(rc, "DEL %b", kn.k[i], kn.l[i]));
        ok(cmd(rc, "DEL %b", kl.k[i], kl.l[i]));
    }
    for (int i = 0; i < 200; i++) {
        redisReply *rn, *rl, *h;
        dumps_t dn, dl;
        unsigned char head[TD_HISTORY_HEAD];

        /* within an hour (64 points span under 90 days), or a gap that
         * leaves every earlier point behind the horizon */
        if (rnd(40) == 0) {
            t += (TD_HISTORY_DAYS + 1 + (uint32_t)rnd(30)) * 86400;
            gaps++;
            since = 0;
        } else {
            t += (uint32_t)rnd(3600);
        }
        since++;
        rnd_head(head, t);
        if (i > 0 && rnd(2)) {
            /* an accepted put with a score, over the stored history */
            do {
                case_new(&c);
            } while (!c.has_state);
            memcpy(c.expected, c.ver, 8);
            c.expected_len = 8;
            c.nsrc = 0;
            c.has_score = 1;
            c.score_v = v;
            c.score_len = score_payload(c.score_p, sizeof(c.score_p), v, 0);
            c.with_score = 1;
            snprintf(c.sv, sizeof(c.sv), "%lld", v);
            c.new_score_len =
                score_payload(c.new_score, sizeof(c.new_score), v + 1, 0);
            memcpy(c.head, head, sizeof(head));
            h = cmd(rc, "GET %b", kn.k[K_HISTORY], kn.l[K_HISTORY]);
            c.hist_len = h->len;
            memcpy(c.hist, h->str, h->len);
            freeReplyObject(h);
            case_setup(rc, &c, &kn);
            case_setup(rc, &c, &kl);
            case_native(&a, &c, &kn);
            rn = run(&a);
            rl = case_lua(&a, &c, &kl);
            assert_int_equal(rn->type, REDIS_REPLY_ARRAY);
            assert_int_equal(rn->elements, 2);
            v = rn->element[1]->integer;
            puts++;
        } else {
            rn = cmd(rc, "TD.SCORE %b %b %b score 0.5", kn.k[K_SCORE],
                     kn.l[K_SCORE], kn.k[K_HISTORY], kn.l[K_HISTORY], head,
                     sizeof(head));
            rl = cmd(rc, "FCALL %s 2 %b %b %b score 0.5",
                     td_store_fn(st, "score"), kl.k[K_SCORE], kl.l[K_SCORE],
                     kl.k[K_HISTORY], kl.l[K_HISTORY], head, sizeof(head));
            assert_int_equal(rn->type, REDIS_REPLY_INTEGER);
            v = rn->integer;
            scores++;
        }
        if (!same_reply(rn, rl)) {
            print_reply("native", rn);
            print_reply("lua", rl);
            fail_msg("write %d: replies differ", i);
        }
        assert_int_equal(v, i + 1);
        int n = last_point_is(&kn, head, v);
        /* the points' versions run consecutively up to v */
        {
            td_history_point_t p[TD_HISTORY_MAX];
            redisReply *r = cmd(rc, "GET %b", kn.k[K_HISTORY], kn.l[K_HISTORY]);
            assert_int_equal(td_history_decode((const unsigned char *)r->str,
                                               r->len, p, TD_HISTORY_MAX),
                             n);
            for (int j = 0; j < n; j++) {
                assert_int_equal(p[j].version, v - n + 1 + j);
                assert_true(p[j].ms / 1000 + TD_HISTORY_DAYS * 86400 >= t);
            }
            freeReplyObject(r);
        }
        assert_int_equal(n, since < TD_HISTORY_MAX ? since : TD_HISTORY_MAX);
        dumps_take(rc, &kn, &dn);
        dumps_take(rc, &kl, &dl);
        dumps_equal(&dn, &dl, "history");
        dumps_free(&dn);
        dumps_free(&dl);
        freeReplyObject(rn);
        freeReplyObject(rl);
    }
    printf("# %d puts, %d TD.SCOREs, %d gaps past %d days\n", puts, scores,
           gaps, TD_HISTORY_DAYS);
    assert_true(puts > 50 && scores > 50 && gaps > 0);
    assert_true(since > TD_HISTORY_MAX || gaps > 2); /* the cap was hit */
}

/* ---- TD.PART ---- */

static void expect_err(redisReply *r, const char *want) {
    if (r->type != REDIS_REPLY_ERROR || strcmp(r->str, want) != 0)
        fail_msg("want error '%s', got type %d '%s'", want, r->type,
                 r->str ? r->str : "");
    freeReplyObject(r);
}

static void
expect_claim(redisReply *r, const char *e, const char *c, const char *in) {
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, e);
    assert_string_equal(r->element[1]->str, c);
    assert_string_equal(r->element[2]->str, in);
    freeReplyObject(r);
}

static void test_part_claim_and_set_follow_the_spec(void **state) {
    const char *k = "trust:part:{orders/7}";
    redisReply *r;
    (void)state;

    ok(cmd(rc, "DEL %s", k));
    expect_claim(cmd(rc, "TD.PART %s CLAIM", k), "1", "", "");
    expect_claim(cmd(rc, "TD.PART %s CLAIM", k), "2", "", "");
    /* min-epoch lifts the epoch past a lost record's, never lowers it */
    expect_claim(cmd(rc, "TD.PART %s CLAIM 10", k), "10", "", "");
    expect_claim(cmd(rc, "TD.PART %s claim 3", k), "11", "", "");

    r = cmd(rc, "TD.PART %s SET 11 100 120", k);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
    expect_claim(cmd(rc, "TD.PART %s CLAIM", k), "12", "100", "120");

    expect_err(cmd(rc, "TD.PART %s SET 11 130 140", k),
               "TDFENCED trust:part:{orders/7} is owned by epoch 12, not 11");
    expect_err(cmd(rc, "TD.PART %s SET 13 130 140", k),
               "TDLOST trust:part:{orders/7} is at epoch 12, behind 13");
    expect_err(cmd(rc, "TD.PART %s SET 12 130 140 101 120", k),
               "TDLOST trust:part:{orders/7} is at committed 100 intent "
               "120, behind 101/120");
    expect_err(cmd(rc, "TD.PART %s SET 12 130 140 100 121", k),
               "TDLOST trust:part:{orders/7} is at committed 100 intent "
               "120, behind 100/121");
    r = cmd(rc, "TD.PART %s SET 12 130 140 100 120", k);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = cmd(rc, "HMGET %s epoch committed intent", k);
    assert_string_equal(r->element[0]->str, "12");
    assert_string_equal(r->element[1]->str, "130");
    assert_string_equal(r->element[2]->str, "140");
    freeReplyObject(r);

    /* the record is gone (Redis restarted empty): no write, TDLOST */
    ok(cmd(rc, "DEL %s", k));
    expect_err(cmd(rc, "TD.PART %s SET 12 150 160", k),
               "TDLOST trust:part:{orders/7} is missing");
    r = cmd(rc, "EXISTS %s", k);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* an ack against a record without offsets: -1 each */
    expect_claim(cmd(rc, "TD.PART %s CLAIM", k), "1", "", "");
    expect_err(cmd(rc, "TD.PART %s SET 1 5 5 0 -1", k),
               "TDLOST trust:part:{orders/7} is at committed -1 intent -1, "
               "behind 0/-1");
}

/* A claim leaves the record td_part's claim leaves. */
static void test_part_claim_equals_the_lua_path(void **state) {
    redisReply *a, *b;
    (void)state;

    ok(cmd(rc, "DEL p:{n} p:{l}"));
    for (int i = 0; i < 3; i++) {
        ok(cmd(rc, "TD.PART p:{n} CLAIM"));
        ok(cmd(rc, "FCALL %s 1 p:{l} claim", td_store_fn(st, "part")));
        ok(cmd(rc, "TD.PART p:{n} SET %d 10%d 11%d", i + 1, i, i));
        ok(cmd(rc, "FCALL %s 1 p:{l} set %d 10%d 11%d", td_store_fn(st, "part"),
               i + 1, i, i));
    }
    a = cmd(rc, "DUMP p:{n}");
    b = cmd(rc, "DUMP p:{l}");
    assert_true(same_reply(a, b));
    freeReplyObject(a);
    freeReplyObject(b);
}

/* ---- replication and AOF ---- */

static int link_up(void *arg) {
    redisContext *c = arg;
    redisReply *r = redisCommand(c, "INFO replication");
    int up = r && r->type == REDIS_REPLY_STRING &&
             strstr(r->str, "master_link_status:up") != NULL;
    if (r) freeReplyObject(r);
    return up;
}

/* Occurrences of needle in the AOF files of dir (appendonlydir). */
static long aof_count(const char *dir, const char *needle) {
    char path[PATH_MAX];
    long n = 0;
    size_t nl = strlen(needle);
    DIR *d;
    struct dirent *e;

    snprintf(path, sizeof(path), "%s/appendonlydir", dir);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d))) {
        char f[PATH_MAX * 2];
        FILE *fp;
        static char buf[1 << 20];
        size_t len;

        if (!strstr(e->d_name, ".aof")) continue;
        snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
        fp = fopen(f, "rb");
        if (!fp) continue;
        while ((len = fread(buf, 1, sizeof(buf), fp)) > 0) {
            /* commands are far smaller than the buffer: a split match
             * at the edge only undercounts, which the test would see */
            for (size_t i = 0; i + nl <= len; i++) {
                if (!memcmp(buf + i, needle, nl)) n++;
            }
        }
        fclose(fp);
    }
    closedir(d);
    return n;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* HGETALL as sorted "field=value" lines. */
static void hash_lines(
    redisContext *c, const char *key, size_t klen, char *out, size_t size) {
    redisReply *r = cmd(c, "HGETALL %b", key, klen);
    const char *pairs[512];
    char buf[512][160];
    size_t n = r->elements / 2, used = 0;

    assert_true(n <= 512);
    for (size_t i = 0; i < n; i++) {
        snprintf(buf[i], sizeof(buf[i]), "%s=%s", r->element[2 * i]->str,
                 r->element[2 * i + 1]->str);
        pairs[i] = buf[i];
    }
    qsort(pairs, n, sizeof(pairs[0]), cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(out + used, size - used, "%s\n", pairs[i]);
    freeReplyObject(r);
}

/* The key is the same on two servers: the same DUMP, or, for a hash
 * turned hashtable (whose DUMP follows the server's own hash seed), the
 * same fields and values. */
static void
same_on_both(redisContext *a, redisContext *b, const char *key, size_t klen) {
    static char ha[1 << 16], hb[1 << 16];
    redisReply *da = cmd(a, "DUMP %b", key, klen);
    redisReply *db = cmd(b, "DUMP %b", key, klen);

    if (!same_reply(da, db)) {
        redisReply *ea = cmd(a, "OBJECT ENCODING %b", key, klen);
        redisReply *eb = cmd(b, "OBJECT ENCODING %b", key, klen);
        if (ea->type != REDIS_REPLY_STRING || eb->type != REDIS_REPLY_STRING ||
            strcmp(ea->str, "hashtable") || strcmp(eb->str, "hashtable"))
            fail_msg("%s differs on the replica", key);
        hash_lines(a, key, klen, ha, sizeof(ha));
        hash_lines(b, key, klen, hb, sizeof(hb));
        assert_string_equal(ha, hb);
        freeReplyObject(ea);
        freeReplyObject(eb);
    }
    freeReplyObject(da);
    freeReplyObject(db);
}

/* A key's value in a form that survives a restart: its DUMP, or for a
 * hash turned hashtable its sorted fields (its DUMP follows the hash
 * seed). Returns the length written into out. */
static size_t canonical(
    redisContext *c, const char *key, size_t klen, char *out, size_t size) {
    redisReply *e = cmd(c, "OBJECT ENCODING %b", key, klen);
    size_t n;

    if (e->type == REDIS_REPLY_STRING && !strcmp(e->str, "hashtable")) {
        hash_lines(c, key, klen, out, size);
        n = strlen(out);
    } else {
        redisReply *d = cmd(c, "DUMP %b", key, klen);
        n = d->type == REDIS_REPLY_STRING ? d->len : 0;
        assert_true(n <= size);
        if (n) memcpy(out, d->str, n); /* nil: a missing key */
        freeReplyObject(d);
    }
    freeReplyObject(e);
    return n;
}

static void test_replica_and_aof_get_one_command_per_write(void **state) {
    static pcase_t c;
    static vec_t a;
    char port[16];
    const char *extra[] = {"--loadmodule", modpath, "--replicaof",
                           "127.0.0.1",    port,    NULL};
    td_h_redis_t rep;
    redisContext *rr;
    long puts0, restores0;
    int accepted = 0;
    (void)state;

    snprintf(port, sizeof(port), "%d", redis.port);
    assert_int_equal(td_h_redis_start(&rep, extra), 0);
    rr = td_h_redis_connect(&rep);
    assert_non_null(rr);
    assert_true(td_h_poll(link_up, rr, 15000));

    puts0 = aof_count(redis.dir, "\r\nTD.PUT\r\n");
    restores0 = aof_count(redis.dir, "\r\nRESTORE\r\n");
    for (int i = 0; i < 60; i++) {
        keys_t k;
        char m[32];
        redisReply *r;

        snprintf(m, sizeof(m), "rep%d", i % 20);
        keys_of(&k, m);
        case_new(&c);
        if (i < 20) {
            case_setup(rc, &c, &k);
            restores0 += c.has_score + c.has_signals;
        }
        case_native(&a, &c, &k);
        r = run(&a);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        accepted += !is_stale(r);
        freeReplyObject(r);
    }
    ok(cmd(rc, "WAIT 1 5000"));
    for (int i = 0; i < 20; i++) {
        keys_t k;
        char m[32];

        snprintf(m, sizeof(m), "rep%d", i);
        keys_of(&k, m);
        for (int j = 0; j < NDUMP; j++)
            same_on_both(rc, rr, k.k[dump_keys[j]], k.l[dump_keys[j]]);
    }
    /* one TD.PUT per accepted write, none for refused ones, and not the
     * RESTOREs it ran: only the setup's own */
    printf("# %d of 60 puts accepted\n", accepted);
    assert_true(accepted > 10 && accepted < 60);
    assert_int_equal(aof_count(redis.dir, "\r\nTD.PUT\r\n") - puts0, accepted);
    assert_int_equal(aof_count(redis.dir, "\r\nRESTORE\r\n"), restores0);

    redisFree(rr);
    td_h_redis_stop(&rep);

    /* The AOF, TD.PUTs and all, replays to the same keys. */
    static char *before[20][NDUMP];
    static size_t blen[20][NDUMP];
    const char *mod[] = {"--loadmodule", modpath, NULL};
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 20; i++) {
            keys_t k;
            char m[32];

            snprintf(m, sizeof(m), "rep%d", i);
            keys_of(&k, m);
            for (int j = 0; j < NDUMP; j++) {
                static char now[1 << 16];
                size_t n = canonical(rc, k.k[dump_keys[j]], k.l[dump_keys[j]],
                                     now, sizeof(now));
                if (pass == 0) {
                    before[i][j] = malloc(n);
                    assert_non_null(before[i][j]);
                    memcpy(before[i][j], now, n);
                    blen[i][j] = n;
                } else {
                    if (n != blen[i][j] || memcmp(now, before[i][j], n))
                        fail_msg("%s differs after the AOF replay",
                                 k.k[dump_keys[j]]);
                    free(before[i][j]);
                }
            }
        }
        if (pass == 0) {
            redisFree(rc);
            td_h_redis_stop(&redis);
            assert_int_equal(td_h_redis_restart_with(&redis, mod), 0);
            rc = td_h_redis_connect(&redis);
            assert_non_null(rc);
        }
    }
}

/* ---- bad arguments ---- */

static void expect_refused(const vec_t *a, const keys_t *k) {
    dumps_t before, after;
    redisReply *r;

    dumps_take(rc, k, &before);
    r = run(a);
    if (r->type != REDIS_REPLY_ERROR) {
        print_reply("reply", r);
        fail_msg("%s with %d arguments: not an error", a->v[0], a->n);
    }
    freeReplyObject(r);
    dumps_take(rc, k, &after);
    dumps_equal(&before, &after, "bad arguments");
    dumps_free(&before);
    dumps_free(&after);
    r = cmd(rc, "PING");
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
}

/* A valid put on k, on the wire, with one element of its flat vector
 * replaced (index i, or -1: none), then the flat vector cut to n elements
 * (-1: not cut) and nextra "extra" elements added. */
static void bad_put_n(vec_t *a,
                      const pcase_t *c,
                      const keys_t *k,
                      int i,
                      const void *p,
                      size_t len,
                      int n,
                      int nextra) {
    static vec_t good, f;
    case_flat(&good, c, k);
    f.n = 0;
    f.used = 0;
    for (int j = 0; j < good.n && (n < 0 || j < n); j++) {
        if (j == i)
            vec_add(&f, p, len);
        else
            vec_add(&f, good.v[j], good.l[j]);
    }
    for (int j = 0; j < nextra; j++)
        vec_str(&f, "extra");
    vec_wire(a, &f, case_sig(c), case_score(c));
}

static void bad_put(vec_t *a,
                    const pcase_t *c,
                    const keys_t *k,
                    int i,
                    const void *p,
                    size_t len) {
    bad_put_n(a, c, k, i, p, len, -1, 0);
}

/* td_put carries the score payload: one Redis refuses (a bit flipped, so
 * its CRC fails) is an error after the guards and before any write. */
static void test_lua_put_with_a_bad_score_payload_writes_nothing(void **state) {
    static pcase_t c;
    static vec_t a;
    dumps_t before, after;
    redisReply *r;
    keys_t k;
    (void)state;

    keys_of(&k, "badlua");
    do {
        case_new(&c);
    } while (!c.has_state || !c.has_score || !c.has_signals);
    memcpy(c.expected, c.ver, 8);
    c.expected_len = 8;
    c.nsrc = 0;
    c.with_score = 1;
    snprintf(c.sv, sizeof(c.sv), "%lld", (long long)c.score_v);
    c.new_score[c.new_score_len / 2] ^= 0x40;
    case_setup(rc, &c, &k);
    dumps_take(rc, &k, &before);
    r = case_lua(&a, &c, &k);
    if (r->type != REDIS_REPLY_ERROR) {
        print_reply("reply", r);
        fail_msg("td_put with a bad score payload: not an error");
    }
    freeReplyObject(r);
    dumps_take(rc, &k, &after);
    dumps_equal(&before, &after, "bad score payload");
    dumps_free(&before);
    dumps_free(&after);
}

static void test_bad_arguments_are_errors_that_write_nothing(void **state) {
    static pcase_t c;
    static vec_t a;
    static uint8_t corrupt[8192];
    keys_t k;
    (void)state;

    keys_of(&k, "bad");
    do {
        case_new(&c);
    } while (!c.has_state || c.wm_n < 1 || !c.has_score || !c.has_signals);
    memcpy(c.expected, c.ver, 8);
    c.expected_len = 8;
    c.nsrc = 1;
    memcpy(c.src[0], c.wm_src[0], sizeof(c.src[0]));
    c.first[0] = c.wm_at[0];
    c.next[0] = c.wm_at[0] + 5;
    c.mark = 1;
    c.with_score = 1;
    snprintf(c.sv, sizeof(c.sv), "%lld", (long long)c.score_v);
    case_setup(rc, &c, &k);
    /* flat layout: 0 TD.PUT, 1-5 keys, 6 expected, 7 blob, 8 nsrc, 9-11
     * source, 12-15 mark, 16 signals, 17 score version, 18 score, 19
     * history head */
    struct {
        int i;
        const char *v;
    } garbage[] = {
        {7, "short"},      {8, "x"},    {8, "-1"},        {8, "9"},
        {8, ""},           {10, "1.5"}, {10, ""},         {11, "1e3"},
        {11, " 1"},        {12, "v"},   {13, "abc"},      {13, "nan"},
        {14, "1.5"},       {15, "x"},   {17, "abc"},      {17, "-1"},
        {16, "x"},         {18, ""},    {6, "123456789"}, {19, "short"},
        {19, "9bytes!!!"}, {19, ""},
    };
    for (size_t g = 0; g < sizeof(garbage) / sizeof(garbage[0]); g++) {
        bad_put(&a, &c, &k, garbage[g].i, garbage[g].v, strlen(garbage[g].v));
        expect_refused(&a, &k);
    }
    /* wrong counts: the score without its history head, the score
     * version without its payload, extras, a mark cut short, the bare
     * command, keys only */
    static const int cut[][2] = {{19, 0}, {18, 0}, {20, 1}, {20, 3},
                                 {17, 3}, {14, 0}, {1, 0},  {6, 0}};
    for (size_t g = 0; g < sizeof(cut) / sizeof(cut[0]); g++) {
        bad_put_n(&a, &c, &k, -1, NULL, 0, cut[g][0], cut[g][1]);
        expect_refused(&a, &k);
    }
    /* on the wire: <meta> cut inside a length or an element, or empty, a
     * length that never ends, an extra argument */
    {
        static vec_t w;
        bad_put(&w, &c, &k, -1, NULL, 0);
        assert_int_equal(w.n, 10);
        for (size_t cutat = 0; cutat < 3; cutat++) {
            bad_put(&a, &c, &k, -1, NULL, 0);
            a.l[8] = cutat == 0 ? 1 : cutat == 1 ? w.l[8] - 1 : 0;
            expect_refused(&a, &k);
        }
        bad_put(&a, &c, &k, -1, NULL, 0);
        a.v[8] = "\xff\xff\xff\xff\xff";
        a.l[8] = 5;
        expect_refused(&a, &k);
        bad_put(&a, &c, &k, -1, NULL, 0);
        vec_str(&a, "extra");
        expect_refused(&a, &k);
    }
    /* corrupted payloads: a flipped byte (CRC), a newer RDB version */
    memcpy(corrupt, c.new_sig, c.new_sig_len);
    corrupt[c.new_sig_len / 2] ^= 0x40;
    bad_put(&a, &c, &k, 16, corrupt, c.new_sig_len);
    expect_refused(&a, &k);
    memcpy(corrupt, c.new_score, c.new_score_len);
    corrupt[3] ^= 1;
    bad_put(&a, &c, &k, 18, corrupt, c.new_score_len);
    expect_refused(&a, &k);
    memcpy(corrupt, c.new_score, c.new_score_len);
    corrupt[c.new_score_len - 10] = 11;
    bad_put(&a, &c, &k, 18, corrupt, c.new_score_len);
    expect_refused(&a, &k);
    /* a key of another type */
    ok(cmd(rc, "SET %b x", k.k[K_WM], k.l[K_WM]));
    bad_put(&a, &c, &k, -1, NULL, 0);
    expect_refused(&a, &k);
    ok(cmd(rc, "DEL %b", k.k[K_WM], k.l[K_WM]));
    /* a history of another type: refused before the first write */
    ok(cmd(rc, "DEL %b", k.k[K_HISTORY], k.l[K_HISTORY]));
    ok(cmd(rc, "HSET %b x 1", k.k[K_HISTORY], k.l[K_HISTORY]));
    bad_put(&a, &c, &k, -1, NULL, 0);
    expect_refused(&a, &k);

    /* the other commands */
    static const char *const other[][8] = {
        {"TD.PART", NULL},
        {"TD.PART", "trust:{bad}:score", NULL},
        {"TD.PART", "trust:{bad}:score", "FOO", NULL},
        {"TD.PART", "trust:{bad}:score", "CLAIM", "x", NULL},
        {"TD.PART", "trust:{bad}:score", "CLAIM", "1", "2", NULL},
        {"TD.PART", "trust:{bad}:score", "SET", "1", "2", NULL},
        {"TD.PART", "trust:{bad}:score", "SET", "a", "2", "3", NULL},
        {"TD.PART", "trust:{bad}:score", "SET", "1", "2", "3", "4", NULL},
        {"TD.SCORE", "trust:{bad}:score", NULL},
        {"TD.SCORE", "trust:{bad}:score", "f", NULL},
        {"TD.SCORE", "trust:{bad}:score", "f", "v", NULL},
        {"TD.SCORE", "trust:{bad}:score", "trust:{bad}:history", "8bytes!", "f",
         "v", NULL},
        {"TD.SCORE", "trust:{bad}:score", "trust:{bad}:history", "8bytes!!",
         "f", NULL},
        {"TD.SCORE", "trust:{bad}:state", "trust:{bad}:history", "8bytes!!",
         "f", "v", NULL},
        /* the history key a hash (set above) */
        {"TD.SCORE", "trust:{bad}:score", "trust:{bad}:history", "8bytes!!",
         "f", "v", NULL},
        {"TD.PUBLISHED", "trust:{bad}:score", "1", "2", "3", NULL},
        {"TD.PUBLISHED", "trust:{bad}:score", "x", "0.5", "1", "2", NULL},
        {"TD.PUBLISHED", "trust:{bad}:score", "99", "0.5", "1.5", "2", NULL},
        {"TD.PUBLISHED", "trust:{bad}:state", "99", "0.5", "1", "2", NULL},
        {"TD.LOAD", "trust:{bad}:state", NULL},
    };
    for (size_t o = 0; o < sizeof(other) / sizeof(other[0]); o++) {
        a.n = 0;
        a.used = 0;
        for (int j = 0; other[o][j]; j++)
            vec_str(&a, other[o][j]);
        expect_refused(&a, &k);
    }
}

/* Random argument vectors never crash the server nor leave a key of a
 * type trustd does not write. */
static void test_random_garbage_arguments_keep_redis_alive(void **state) {
    static const char *const cmds[] = {"TD.PUT", "TD.PART", "TD.SCORE",
                                       "TD.PUBLISHED", "TD.LOAD"};
    static const char *const words[] = {
        "",    "0",     "1",   "-1",       "CLAIM",
        "SET", "99999", "abc", "12345678", "9223372036854775807"};
    static pcase_t c;
    static vec_t a;
    int errors = 0;
    (void)state;

    case_new(&c);
    for (int i = 0; i < 3000; i++) {
        int argc = 1 + (int)rnd(24);
        redisReply *r;

        a.n = 0;
        a.used = 0;
        vec_str(&a, cmds[rnd(5)]);
        for (int j = 1; j < argc; j++) {
            switch (rnd(6)) {
            case 0:
            case 1:
                vec_str(&a, words[rnd(10)]);
                break;
            case 2:
                vec_fmt(&a, "trust:{g%d}:%s", (int)rnd(3),
                        rnd(2) ? "wm" : "score");
                break;
            case 3: {
                uint8_t b[40];
                size_t n = rnd(sizeof(b));
                rnd_bytes(b, n);
                vec_add(&a, b, n);
                break;
            }
            case 4:
                vec_add(&a, c.new_sig, c.new_sig_len);
                break;
            default: {
                uint8_t b[8192];
                memcpy(b, c.new_score, c.new_score_len);
                b[rnd(c.new_score_len)] ^= (uint8_t)(1 + rnd(255));
                vec_add(&a, b, c.new_score_len);
            }
            }
        }
        r = run(&a);
        errors += r->type == REDIS_REPLY_ERROR;
        freeReplyObject(r);
    }
    redisReply *r = cmd(rc, "PING");
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    printf("# %d of 3000 random vectors were errors\n", errors);
    assert_true(errors > 2000);
}

/* trustd sends TD.* only to the module version it speaks: this one's
 * COMMAND INFO td.put says so; version 2's (keys at 1..5) and a server
 * without the module send it to the Lua library. */
static void test_store_uses_only_this_module_version(void **state) {
    redisReply *r = cmd(rc, "COMMAND INFO td.put");
    (void)state;

    assert_int_equal(td_store_module_current(r), 1);
    assert_true(r->elements == 1 && r->element[0]->elements >= 5);
    r->element[0]->element[3]->integer = 1; /* version 2: keys 1..5 */
    r->element[0]->element[4]->integer = 5;
    assert_int_equal(td_store_module_current(r), 0);
    r->element[0]->element[3]->integer = 2;
    assert_int_equal(td_store_module_current(r), 0);
    freeReplyObject(r);
    r = cmd(rc, "COMMAND INFO td.nosuch");
    assert_int_equal(td_store_module_current(r), 0);
    freeReplyObject(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_equals_the_lua_path),
        cmocka_unit_test(test_each_guard_refuses_without_writing),
        cmocka_unit_test(test_long_source_name_converts_the_watermarks_as_hset),
        cmocka_unit_test(test_score_and_published_equal_the_lua_path),
        cmocka_unit_test(test_history_over_many_scores_equals_the_lua_path),
        cmocka_unit_test(test_part_claim_and_set_follow_the_spec),
        cmocka_unit_test(test_part_claim_equals_the_lua_path),
        cmocka_unit_test(test_replica_and_aof_get_one_command_per_write),
        cmocka_unit_test(test_lua_put_with_a_bad_score_payload_writes_nothing),
        cmocka_unit_test(test_bad_arguments_are_errors_that_write_nothing),
        cmocka_unit_test(test_random_garbage_arguments_keep_redis_alive),
        cmocka_unit_test(test_store_uses_only_this_module_version),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
