/*
 * test_store.c - the Redis store against a real redis-server: the generated
 * merge function equals the C merge, watermark guards make a replayed
 * delta a no-op and refuse a straddling one, partition records fence
 * earlier owners, and the library comes back after Redis lost it.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "signals.h"
#include "proto.h"
#include "store.h"

#define DAY 86400000LL
#define T0  1700000000000LL

static td_h_redis_t redis;
static td_store_t *st;
static td_rbatch_t *batch;
static redisContext *rc;

static int setup(void **state) {
    td_store_conf_t sc = {0};
    char errstr[512];
    (void)state;
    if (td_h_redis_start(&redis, NULL)) return -1;
    sc.addrs = redis.addr;
    sc.user = "";
    sc.password = "";
    sc.connect_timeout_ms = 2000;
    sc.command_timeout_ms = 5000;
    st = td_store_new(&sc, errstr, sizeof(errstr));
    batch = td_rbatch_new();
    rc = td_h_redis_connect(&redis);
    return st && rc ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    td_rbatch_destroy(batch);
    td_store_destroy(st);
    if (rc) redisFree(rc);
    td_h_redis_stop(&redis);
    return 0;
}

typedef struct reply_s {
    int type;
    char flags[64];
    char err[256];
} reply_t;

/* One merchant write with a single delta from source src, as a flush
 * does it (td_h_merge): flags "1" applied, "0" skipped. */
static reply_t apply(const char *m,
                     const char *src,
                     int64_t lo,
                     int64_t nx,
                     const td_sigdelta_t *d) {
    reply_t out = {0};
    int res = td_h_merge(st, m, src, lo, nx, d, out.err, sizeof(out.err));

    out.type = res < 0 ? REDIS_REPLY_ERROR : REDIS_REPLY_ARRAY;
    snprintf(out.flags, sizeof(out.flags), "%d", res);
    return out;
}

static int
grab(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    reply_t *out = opaque;
    (void)errstr;
    (void)errstr_size;
    out->type = r->type;
    if (r->type == REDIS_REPLY_ERROR)
        snprintf(out->err, sizeof(out->err), "%s", r->str);
    else if (r->type == REDIS_REPLY_ARRAY && r->elements > 0)
        snprintf(out->flags, sizeof(out->flags), "%s", r->element[0]->str);
    return TD_OK;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next_rand(void) {
    return td_h_xorshift(&rng);
}

static void random_delta(td_sigdelta_t *d, int kind, int events) {
    td_sigdelta_init(d, (td_event_kind_t)kind);
    for (int i = 0; i < events; i++) {
        td_event_t e;
        memset(&e, 0, sizeof(e));
        e.kind = (td_event_kind_t)kind;
        e.event_time = T0 + (int64_t)(next_rand() % (60 * DAY));
        e.u.order.status = (int)(next_rand() % TD_ORDER__CNT);
        e.u.order.amount_cents = (int64_t)(next_rand() % 10000);
        e.u.order.cancelled_by = TD_CANCEL_MERCHANT;
        e.u.order.promised_ship_by = e.event_time - 1000;
        if (kind == TD_EV_REVIEW) {
            memset(&e.u, 0, sizeof(e.u));
            e.u.review.rating = 1 + (int)(next_rand() % 5);
        } else if (kind == TD_EV_REFUND) {
            memset(&e.u, 0, sizeof(e.u));
            e.u.refund.status = (int)(next_rand() % TD_REFUND__CNT);
        }
        td_sigdelta_add(d, &e);
    }
}

static void test_readable_hash_matches_the_c_merge(void **state) {
    td_sigstate_t want;
    char src[32];
    (void)state;

    td_sigstate_init(&want);
    for (int i = 0; i < 60; i++) {
        td_sigdelta_t d;
        int kind = (int)(next_rand() % TD_EV__CNT);
        random_delta(&d, kind, 1 + (int)(next_rand() % 20));
        snprintf(src, sizeof(src), "t%d/0", kind);
        reply_t r = apply("parity", src, i * 100, i * 100 + 50, &d);
        assert_int_equal(r.type, REDIS_REPLY_ARRAY);
        assert_string_equal(r.flags, "1");
        td_sigstate_merge(&want, &d);
    }
    for (int k = 0; k < TD_SIG__CNT; k++) {
        double got;
        int present = td_h_hget_double(rc, "trust:{parity}:signals",
                                       td_signals[k].name, &got) == 0;
        if (present != want.present[k])
            fail_msg("%s: present %d vs %d", td_signals[k].name, present,
                     want.present[k]);
        if (present && fabs(got - want.v[k]) > 1e-9 * fmax(1, fabs(want.v[k])))
            fail_msg("%s: redis %.17g, C %.17g", td_signals[k].name, got,
                     want.v[k]);
    }
}

static int load_rc;     /* what td_proto_load_parse said last */
static int load_passes; /* loads the last load_state() needed */

static int
load_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    td_proto_loaded_t l;
    load_rc = td_proto_load_parse(opaque, r, "", &l, errstr, errstr_size);
    return load_rc == TD_ERR ? TD_ERR : TD_OK;
}

/* Reads merchant m's exact state as a flush does: plain reads, then the
 * td_load function when only the readable hash has it. */
static td_mstate_t *load_state(td_mscache_t *c, const char *m) {
    char errstr[512];
    td_mstate_t *e = td_mscache_add(c, m, strlen(m));
    load_passes = 0;
    for (int fields = 0; fields < 2; fields++) {
        td_rbatch_reset(batch);
        td_proto_load(st, batch, m, strlen(m), fields, load_cb, e);
        assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)),
                         TD_OK);
        load_passes++;
        if (load_rc == TD_OK) break;
        assert_int_equal(load_rc, TD_PROTO_FIELDS);
    }
    assert_int_equal(load_rc, TD_OK);
    return e;
}

static void test_stored_state_is_the_exact_c_merge(void **state) {
    td_mscache_t *c = td_mscache_new();
    td_sigstate_t want;
    (void)state;

    td_sigstate_init(&want);
    for (int i = 0; i < 20; i++) {
        td_sigdelta_t d;
        int kind = (int)(next_rand() % TD_EV__CNT);
        random_delta(&d, kind, 1 + (int)(next_rand() % 20));
        assert_string_equal(
            apply("exact", "t/0", i * 10, i * 10 + 10, &d).flags, "1");
        td_sigstate_merge(&want, &d);
    }
    td_mstate_t *e = load_state(c, "exact");
    assert_int_equal(e->version, 20);
    assert_true(e->as_of == want.as_of);
    for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
        assert_int_equal((int)(e->present >> i & 1), want.present[i]);
        if (want.present[i] && memcmp(&e->v[i], &want.v[i], 8))
            fail_msg("%s: stored %.17g, C %.17g", td_signals[i].name, e->v[i],
                     want.v[i]);
    }
    td_mscache_destroy(c);
}

/* Merges d into entry e and queues its put from "orders/0" at
 * lo..lo+10, as a flush does, into the reset batch, ending with cb.
 * With score >= 0 the put carries a score hash (score, tier 2, the next
 * version and publication mark when given); else it carries mark, if
 * any, on its own. */
static void queue_merged_put(td_mstate_t *e,
                             const td_sigdelta_t *d,
                             int64_t lo,
                             const td_mpub_t *mark,
                             int score,
                             td_rbatch_cb_t cb,
                             void *opaque) {
    char num[4][32];
    td_proto_src_t src = {"orders/0", lo, lo + 10};
    td_proto_put_t req = {.e = e, .signals = NULL, .srcs = &src, .nsrc = 1};
    const char *fv[] = {"score", num[0],      "tier", "2",           "version",
                        num[1],  "pub_score", num[2], "pub_version", num[3]};
    size_t fvlen[10];
    td_sigstate_t s;

    td_mstate_to_sigstate(e, &s);
    td_sigstate_merge(&s, d);
    td_mstate_from_sigstate(e, &s);
    e->version++;
    td_rbatch_reset(batch);
    req.expected = e->version - 1;
    req.signals = &s;
    if (score >= 0) {
        snprintf(num[0], sizeof(num[0]), "%d", score);
        snprintf(num[1], sizeof(num[1]), "%lld", (long long)e->sversion + 1);
        if (mark) {
            snprintf(num[2], sizeof(num[2]), "%.17g", mark->score);
            snprintf(num[3], sizeof(num[3]), "%lld", (long long)mark->version);
        }
        for (int i = 0; i < 10; i++)
            fvlen[i] = strlen(fv[i]);
        req.npairs = mark ? 5 : 3;
        req.fv = fv;
        req.fvlen = fvlen;
        req.score_version = e->sversion;
    } else {
        req.mark = mark;
    }
    td_proto_put(st, batch, &req, cb, opaque);
}

static void test_put_from_an_old_version_is_refused(void **state) {
    td_mscache_t *c = td_mscache_new();
    td_sigdelta_t d;
    char errstr[512];
    reply_t out = {0};
    double after;
    redisReply *before, *r;
    (void)state;

    random_delta(&d, TD_EV_ORDER, 4);
    assert_string_equal(apply("cas", "orders/0", 0, 10, &d).flags, "1");
    td_mstate_t *e = load_state(c, "cas");
    /* Another writer moves the state on... */
    assert_string_equal(apply("cas", "orders/9", 0, 10, &d).flags, "1");
    /* ...so a merge from the version read before is refused whole. */
    before = redisCommand(rc, "DUMP trust:{cas}:signals");
    assert_int_equal(before->type, REDIS_REPLY_STRING);
    queue_merged_put(e, &d, 10, NULL, -1, grab, &out);
    assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)), TD_OK);
    assert_int_equal(out.type, REDIS_REPLY_ARRAY);
    assert_string_equal(out.flags, "STALE");
    assert_int_equal(load_state(c, "cas")->version, 2); /* untouched */
    td_h_hget_double(rc, "trust:{cas}:wm", "orders/0", &after);
    assert_true(after == 10);
    /* The readable hash too; the refused one is dropped. */
    r = redisCommand(rc, "DUMP trust:{cas}:signals");
    assert_true(r->type == REDIS_REPLY_STRING && r->len == before->len &&
                !memcmp(r->str, before->str, r->len));
    freeReplyObject(r);
    freeReplyObject(before);
    r = redisCommand(rc, "EXISTS trust:{cas}:signals:next");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* A put that succeeds renames its own into place, without an expiry. */
    assert_string_equal(apply("cas", "orders/0", 10, 20, &d).flags, "1");
    r = redisCommand(rc, "EXISTS trust:{cas}:signals:next");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(rc, "PTTL trust:{cas}:signals");
    assert_int_equal(r->integer, -1);
    freeReplyObject(r);
    td_mscache_destroy(c);
}

static int
grab_put(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    long long *version = opaque; /* -1: {"OK"}, else the reserved version */
    (void)errstr;
    (void)errstr_size;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "OK");
    *version = r->elements == 2 ? r->element[1]->integer : -1;
    return TD_OK;
}

/* One put to merchant m of a delta from "orders/0" at lo..lo+10,
 * carrying mark, with the score fields "score" <score> when score >= 0;
 * returns what put replied. */
static long long put_with_score(td_mscache_t *c,
                                const char *m,
                                int64_t lo,
                                int score,
                                const td_mpub_t *mark) {
    td_mstate_t *e = load_state(c, m);
    td_sigdelta_t d;
    char errstr[512];
    long long version = -2;

    random_delta(&d, TD_EV_ORDER, 2);
    queue_merged_put(e, &d, lo, mark, score, grab_put, &version);
    assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)), TD_OK);
    td_mscache_del(c, e);
    return version;
}

/* A put that carries a score reserves the next version and writes the
 * score fields with the state; one without leaves the score hash alone. */
static void test_put_carrying_a_score_reserves_its_version(void **state) {
    td_mscache_t *c = td_mscache_new();
    double v, score;
    (void)state;

    assert_true(put_with_score(c, "scored", 0, 40, NULL) == 1);
    assert_true(put_with_score(c, "scored", 10, -1, NULL) == -1);
    td_h_hget_double(rc, "trust:{scored}:score", "version", &v);
    td_h_hget_double(rc, "trust:{scored}:score", "score", &score);
    assert_true(v == 1 && score == 40);
    assert_true(put_with_score(c, "scored", 20, 55, NULL) == 2);
    td_h_hget_double(rc, "trust:{scored}:score", "version", &v);
    td_h_hget_double(rc, "trust:{scored}:score", "score", &score);
    assert_true(v == 2 && score == 55);
    td_mscache_destroy(c);
}

static int
grab_int(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    (void)errstr;
    (void)errstr_size;
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    *(long long *)opaque = r->integer;
    return TD_OK;
}

/* A score put follows the score hash's version it read: after another
 * writer moved it (td_score), the put is refused before any write. */
static void test_score_put_behind_the_stored_score_is_refused(void **state) {
    td_mscache_t *c = td_mscache_new();
    td_sigdelta_t d;
    char errstr[512];
    reply_t out = {0};
    double v;
    redisReply *r;
    (void)state;

    assert_true(put_with_score(c, "behind", 0, 40, NULL) == 1);
    td_mstate_t *e = load_state(c, "behind");
    assert_int_equal(e->sversion, 1);
    r = redisCommand(rc, "HINCRBY trust:{behind}:score version 1");
    freeReplyObject(r);
    random_delta(&d, TD_EV_ORDER, 2);
    queue_merged_put(e, &d, 10, NULL, 70, grab, &out);
    assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)), TD_OK);
    assert_string_equal(out.flags, "STALE");
    td_h_hget_double(rc, "trust:{behind}:score", "score", &v);
    assert_true(v == 40);
    td_h_hget_double(rc, "trust:{behind}:wm", "orders/0", &v);
    assert_true(v == 10); /* the state did not move either */
    r = redisCommand(rc, "EXISTS trust:{behind}:signals:next");
    assert_int_equal(r->integer, 0); /* dropped with the refusal */
    freeReplyObject(r);
    td_mscache_destroy(c);
}

/* The publication mark: pub_version and friends of the score hash. */
static void assert_mark(const char *m, double version, double score) {
    char key[64];
    double v = NAN, s = NAN;
    snprintf(key, sizeof(key), "trust:{%s}:score", m);
    td_h_hget_double(rc, key, "pub_version", &v);
    td_h_hget_double(rc, key, "pub_score", &s);
    assert_true(v == version && s == score);
}

/* A delivered publication is marked by the merchant's next put, in the
 * same step as the put's own new score, or by td_published; a mark never
 * moves backwards. */
static void test_publication_mark_rides_with_a_put(void **state) {
    td_mscache_t *c = td_mscache_new();
    td_mpub_t mark = {.score = 40, .ms = 1000, .version = 1, .tier = 2};
    char errstr[512];
    long long marked = -1;
    double v;
    (void)state;

    assert_true(put_with_score(c, "marked", 0, 40, NULL) == 1);
    assert_true(put_with_score(c, "marked", 10, 55, &mark) == 2);
    assert_mark("marked", 1, 40);
    td_h_hget_double(rc, "trust:{marked}:score", "score", &v);
    assert_true(v == 55);
    /* An older mark, by put or by td_published, is ignored. */
    mark.version = 0;
    mark.score = 7;
    assert_true(put_with_score(c, "marked", 20, -1, &mark) == -1);
    assert_mark("marked", 1, 40);
    td_rbatch_reset(batch);
    mark.version = 2;
    mark.score = 55;
    td_proto_published(st, batch, "marked", &mark, grab_int, &marked);
    assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)), TD_OK);
    assert_true(marked == 1);
    assert_mark("marked", 2, 55);
    td_mscache_destroy(c);
}

typedef struct echo_s {
    int next; /* the reply expected next */
    int fail; /* a callback that fails on this one */
} echo_t;

static int
echo_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    echo_t *e = opaque;
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(atoi(r->str), e->next);
    if (e->next++ == e->fail) {
        snprintf(errstr, errstr_size, "failing at %d", e->fail);
        return TD_ERR;
    }
    return TD_OK;
}

static void queue_echo(int i, echo_t *e) {
    td_rbatch_begin(batch);
    td_rbatch_str(batch, "ECHO");
    td_rbatch_i64(batch, i);
    td_rbatch_end(batch, echo_cb, e);
}

/* A batch sent while it is built: replies come back in order, the early
 * ones before the batch is complete; a failing callback fails the batch
 * and leaves the connection usable. */
static void test_batch_sent_while_built(void **state) {
    char errstr[512];
    echo_t e = {0, -1};
    int early = -1;
    (void)state;

    td_rbatch_reset(batch);
    for (int i = 0; i < 10000; i++) {
        queue_echo(i, &e);
        assert_int_equal(
            td_store_exec_part(st, batch, 0, errstr, sizeof(errstr)), TD_OK);
    }
    early = e.next;
    assert_int_equal(td_store_exec_part(st, batch, 1, errstr, sizeof(errstr)),
                     TD_OK);
    assert_true(early > 0 && early < 10000);
    assert_int_equal(e.next, 10000);

    e.next = 0;
    e.fail = 3000;
    td_rbatch_reset(batch);
    for (int i = 0; i < 10000; i++) {
        queue_echo(i, &e);
        if (td_store_exec_part(st, batch, 0, errstr, sizeof(errstr)) != TD_OK)
            break;
    }
    assert_int_equal(e.next, 3001);
    assert_string_equal(errstr, "failing at 3000");

    e.next = 0;
    e.fail = -1;
    td_rbatch_reset(batch);
    td_rbatch_begin(batch);
    td_rbatch_str(batch, "ECHO");
    td_rbatch_str(batch, "0");
    td_rbatch_end(batch, echo_cb, &e);
    assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)), TD_OK);
    assert_int_equal(e.next, 1);
}

/* A merchant written before the packed state existed (signals hash with
 * exact %.17g base values, watermarks, no :state) is merged from the hash;
 * so is one whose state has another catalog's fingerprint. */
static void test_state_missing_or_foreign_is_read_from_the_hash(void **state) {
    td_sigdelta_t d1, d2;
    td_sigstate_t want;
    (void)state;

    for (int foreign = 0; foreign < 2; foreign++) {
        const char *m = foreign ? "foreign" : "legacy";
        char key[128], cmd[64];
        td_mscache_t *c = td_mscache_new();

        random_delta(&d1, TD_EV_ORDER, 6);
        random_delta(&d2, TD_EV_ORDER, 4);
        assert_string_equal(apply(m, "orders/0", 0, 10, &d1).flags, "1");
        td_key_state(key, sizeof(key), m, strlen(m));
        if (foreign) { /* same version, other fingerprint */
            redisReply *r = redisCommand(rc, "SETRANGE %s 8 %b", key,
                                         "\xff\xff\xff\xff", (size_t)4);
            freeReplyObject(r);
        } else { /* what the old td_apply left: exact text, no state */
            redisReply *r = redisCommand(rc, "DEL %s", key);
            freeReplyObject(r);
            td_sigstate_init(&want);
            td_sigstate_merge(&want, &d1);
            td_key_signals(key, sizeof(key), m, strlen(m));
            for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
                if (!want.present[i]) continue;
                snprintf(cmd, sizeof(cmd), "%.17g", want.v[i]);
                r = redisCommand(rc, "HSET %s %s %s", key, td_signals[i].name,
                                 cmd);
                freeReplyObject(r);
            }
        }
        /* Plain reads find no usable state: the function reads the hash. */
        td_mscache_del(c, load_state(c, m));
        assert_int_equal(load_passes, 2);
        /* The next delta merges onto the hash's values... */
        assert_string_equal(apply(m, "orders/0", 10, 20, &d2).flags, "1");
        /* ...the replayed first one is still skipped by its watermark. */
        assert_string_equal(apply(m, "orders/0", 0, 10, &d1).flags, "0");
        td_sigstate_init(&want);
        td_sigstate_merge(&want, &d1);
        td_sigstate_merge(&want, &d2);
        td_mstate_t *e = load_state(c, m);
        assert_int_equal(e->version, foreign ? 2 : 1);
        assert_int_equal(load_passes, 1);
        for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
            double tol = (foreign ? 1e-9 : 1e-15) * fmax(1, fabs(want.v[i]));
            assert_int_equal((int)(e->present >> i & 1), want.present[i]);
            if (want.present[i] && fabs(e->v[i] - want.v[i]) > tol)
                fail_msg("%s %s: stored %.17g, C %.17g", m, td_signals[i].name,
                         e->v[i], want.v[i]);
        }
        td_mscache_destroy(c);
    }
    /* A merchant Redis never saw: one plain read, an empty state. */
    td_mscache_t *c = td_mscache_new();
    td_mstate_t *e = load_state(c, "never-seen");
    assert_int_equal(load_passes, 1);
    assert_int_equal(e->version, 0);
    assert_true(e->as_of == TD_NULL_TS && e->present == 0);
    td_mscache_destroy(c);
}

static void test_state_cache_trims_to_its_cap(void **state) {
    td_mscache_t *c = td_mscache_new();
    char id[32];
    (void)state;

    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "m-%d", i);
        td_mstate_t *e = td_mscache_add(c, id, strlen(id));
        e->gen = i < 100 ? 7 : 6;
        assert_ptr_equal(td_mscache_add(c, id, strlen(id)), e);
    }
    assert_int_equal(td_mscache_count(c), 5000);
    assert_non_null(td_mscache_get(c, "m-4999", 6));
    td_mscache_del(c, td_mscache_get(c, "m-4999", 6));
    assert_null(td_mscache_get(c, "m-4999", 6));
    /* Entries of the current flush (gen 7) go last. */
    td_mscache_trim(c, 150, 7);
    assert_int_equal(td_mscache_count(c), 150);
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "m-%d", i);
        assert_non_null(td_mscache_get(c, id, strlen(id)));
    }
    td_mscache_trim(c, 10, 7);
    assert_int_equal(td_mscache_count(c), 10);
    td_mscache_clear(c);
    assert_int_equal(td_mscache_count(c), 0);
    td_mscache_destroy(c);
}

static void test_replayed_delta_is_a_noop(void **state) {
    td_sigdelta_t d;
    double before, after;
    (void)state;

    random_delta(&d, TD_EV_ORDER, 5);
    assert_string_equal(apply("replay", "orders/3", 10, 20, &d).flags, "1");
    assert_int_equal(
        td_h_hget_double(rc, "trust:{replay}:signals", "as_of_ms", &before), 0);
    assert_string_equal(apply("replay", "orders/3", 10, 20, &d).flags, "0");
    assert_string_equal(apply("replay", "orders/3", 12, 20, &d).flags, "0");
    assert_int_equal(
        td_h_hget_double(rc, "trust:{replay}:signals", "as_of_ms", &after), 0);
    assert_true(before == after);
    /* another source of the same merchant is independent */
    assert_string_equal(apply("replay", "orders/7", 10, 20, &d).flags, "1");
    /* the next range of the first source applies */
    assert_string_equal(apply("replay", "orders/3", 20, 30, &d).flags, "1");
}

static void test_straddling_delta_is_refused_before_any_write(void **state) {
    td_sigdelta_t d;
    double before, after;
    (void)state;

    random_delta(&d, TD_EV_ORDER, 3);
    assert_string_equal(apply("straddle", "orders/1", 0, 100, &d).flags, "1");
    td_h_hget_double(rc, "trust:{straddle}:signals", "as_of_ms", &before);
    reply_t r = apply("straddle", "orders/1", 50, 150, &d);
    assert_int_equal(r.type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r.err, "TDOVERLAP"));
    td_h_hget_double(rc, "trust:{straddle}:signals", "as_of_ms", &after);
    assert_true(before == after);
}

/* td_put checks the watermarks itself, also with no stored state to
 * guard by (a merchant written before the packed state existed). */
static void test_put_without_state_checks_the_watermarks(void **state) {
    td_mscache_t *c = td_mscache_new();
    td_sigdelta_t d;
    char errstr[512];
    reply_t out = {0};
    redisReply *r;
    (void)state;

    random_delta(&d, TD_EV_ORDER, 3);
    assert_string_equal(apply("nostate", "orders/0", 0, 100, &d).flags, "1");
    r = redisCommand(rc, "DEL trust:{nostate}:state");
    freeReplyObject(r);
    td_mstate_t *e = td_mscache_add(c, "nostate", 7);
    queue_merged_put(e, &d, 50, NULL, -1, grab,
                     &out); /* orders/0 at 50..60: applied */
    assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)), TD_OK);
    assert_string_equal(out.flags, "STALE");
    r = redisCommand(rc, "EXISTS trust:{nostate}:state");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    td_mscache_destroy(c);
}

/* A state read once and kept (cached) carries watermarks another worker
 * wrote: a later replay of that source below them is refused although
 * the state's version still matches (the replay after a dead flush). */
static void
test_cached_state_replaying_below_a_watermark_is_refused(void **state) {
    td_mscache_t *c = td_mscache_new();
    td_sigdelta_t d;
    char errstr[512];
    reply_t out = {0};
    double wm;
    (void)state;

    random_delta(&d, TD_EV_ORDER, 3);
    assert_string_equal(apply("cached", "orders/0", 0, 100, &d).flags, "1");
    td_mstate_t *e = load_state(c, "cached");
    queue_merged_put(e, &d, 50, NULL, -1, grab, &out); /* orders/0 at 50..60 */
    assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)), TD_OK);
    assert_string_equal(out.flags, "STALE");
    td_h_hget_double(rc, "trust:{cached}:wm", "orders/0", &wm);
    assert_true(wm == 100);
    td_mscache_destroy(c);
}

/* A put from several sources checks the watermark of each (the second
 * one's past its delta refuses the whole put, and drops the :next hash it
 * brought); the next put moves both. */
static void test_put_checks_every_source_watermark(void **state) {
    td_mscache_t *c = td_mscache_new();
    td_sigdelta_t d;
    td_sigstate_t s;
    char errstr[512];
    double a, b;
    redisReply *r;
    (void)state;

    random_delta(&d, TD_EV_REVIEW, 3);
    assert_string_equal(apply("multi", "orders/0", 0, 100, &d).flags, "1");
    assert_string_equal(apply("multi", "reviews/0", 0, 100, &d).flags, "1");
    for (int64_t lo = 50; lo <= 100; lo += 50) {
        reply_t out = {0};
        td_mstate_t *e = load_state(c, "multi");
        td_mstate_to_sigstate(e, &s);
        td_sigstate_merge(&s, &d);
        td_mstate_from_sigstate(e, &s);
        e->version++;
        td_proto_src_t srcs[2] = {{"orders/0", 100, 110},
                                  {"reviews/0", lo, lo + 10}};
        td_proto_put_t req = {.e = e,
                              .expected = e->version - 1,
                              .signals = &s,
                              .srcs = srcs,
                              .nsrc = 2};
        td_rbatch_reset(batch);
        td_proto_put(st, batch, &req, grab, &out);
        assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)),
                         TD_OK);
        assert_string_equal(out.flags, lo == 50 ? "STALE" : "OK");
        td_h_hget_double(rc, "trust:{multi}:wm", "orders/0", &a);
        td_h_hget_double(rc, "trust:{multi}:wm", "reviews/0", &b);
        assert_true(a == (lo == 50 ? 100 : 110) && b == a);
        r = redisCommand(rc, "EXISTS trust:{multi}:signals:next");
        assert_int_equal(r->integer, 0);
        freeReplyObject(r);
    }
    td_mscache_destroy(c);
}

static redisReply *
part(const char *op, const char *epoch, const char *c, const char *i) {
    char errstr[256];
    if (!strcmp(op, "claim"))
        return td_store_cmd(st, errstr, sizeof(errstr), "FCALL %s 1 %s claim",
                            td_store_fn(st, "part"), "trust:part:{t/1}");
    return td_store_cmd(st, errstr, sizeof(errstr),
                        "FCALL %s 1 %s set %s %s %s", td_store_fn(st, "part"),
                        "trust:part:{t/1}", epoch, c, i);
}

static void test_partition_claim_fences_the_previous_owner(void **state) {
    redisReply *r;
    (void)state;

    r = part("claim", 0, 0, 0);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "1");
    assert_string_equal(r->element[1]->str, "");
    freeReplyObject(r);
    r = part("set", "1", "10", "20");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
    /* a second worker claims: epoch 2, sees committed 10 and intent 20 */
    r = part("claim", 0, 0, 0);
    assert_string_equal(r->element[0]->str, "2");
    assert_string_equal(r->element[1]->str, "10");
    assert_string_equal(r->element[2]->str, "20");
    freeReplyObject(r);
    /* the first one can no longer move the offsets */
    r = part("set", "1", "20", "30");
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "TDFENCED"));
    freeReplyObject(r);
}

/* td_part set with the last offsets its owner saw stored. */
static redisReply *part_acked(const char *epoch,
                              const char *c,
                              const char *i,
                              const char *ack_c,
                              const char *ack_i) {
    char errstr[256];
    return td_store_cmd(
        st, errstr, sizeof(errstr), "FCALL %s 1 %s set %s %s %s %s %s",
        td_store_fn(st, "part"), "trust:part:{t/2}", epoch, c, i, ack_c, ack_i);
}

static void assert_error(redisReply *r, const char *prefix) {
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_true(!strncmp(r->str, prefix, strlen(prefix)));
    freeReplyObject(r);
}

static void assert_ok(redisReply *r) {
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
}

/* A record behind what its owner saw stored is TDLOST, not TDFENCED: the
 * store went back in time (issue 18). */
static void test_partition_record_behind_its_owner_is_lost(void **state) {
    char errstr[256];
    redisReply *r;
    (void)state;

    /* missing altogether (Redis restarted empty, FLUSHALL) */
    assert_error(part_acked("3", "10", "20", "-1", "-1"), "TDLOST");
    r = td_store_cmd(st, errstr, sizeof(errstr), "FCALL %s 1 %s claim 3",
                     td_store_fn(st, "part"), "trust:part:{t/2}");
    /* the claimer's floor: epoch 3, not 1 */
    assert_string_equal(r->element[0]->str, "3");
    freeReplyObject(r);
    assert_ok(part_acked("3", "10", "20", "-1", "-1"));
    /* a retry of the same write, and the flush's completion */
    assert_ok(part_acked("3", "10", "20", "10", "20"));
    assert_ok(part_acked("3", "20", "20", "10", "20"));
    /* the store lost the completion: behind what the owner saw */
    r = redisCommand(rc, "HSET trust:part:{t/2} committed 10");
    freeReplyObject(r);
    assert_error(part_acked("3", "20", "30", "20", "20"), "TDLOST");
    /* an older epoch than the owner's is a loss too... */
    r = redisCommand(rc, "HSET trust:part:{t/2} epoch 2 committed 20");
    freeReplyObject(r);
    assert_error(part_acked("3", "20", "30", "20", "20"), "TDLOST");
    /* ...a newer one a new owner */
    r = redisCommand(rc, "HSET trust:part:{t/2} epoch 4");
    freeReplyObject(r);
    assert_error(part_acked("3", "20", "30", "20", "20"), "TDFENCED");
    /* a claim below the stored epoch just bumps it */
    r = td_store_cmd(st, errstr, sizeof(errstr), "FCALL %s 1 %s claim 1",
                     td_store_fn(st, "part"), "trust:part:{t/2}");
    assert_string_equal(r->element[0]->str, "5");
    assert_string_equal(r->element[1]->str, "20");
    freeReplyObject(r);
}

static void test_library_is_reloaded_after_redis_lost_it(void **state) {
    td_sigdelta_t d;
    char errstr[256];
    redisReply *r = redisCommand(rc, "FUNCTION FLUSH");
    reply_t out = {0};
    (void)state;
    freeReplyObject(r);

    random_delta(&d, TD_EV_REVIEW, 2);
    /* the first attempt fails and marks the library missing... */
    td_rbatch_reset(batch);
    td_rbatch_begin(batch);
    td_rbatch_str(batch, "FCALL");
    td_rbatch_str(batch, td_store_fn(st, "part"));
    td_rbatch_str(batch, "1");
    td_rbatch_str(batch, "trust:part:{x/0}");
    td_rbatch_str(batch, "claim");
    td_rbatch_end(batch, grab, &out);
    assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)), TD_ERR);
    assert_non_null(strstr(errstr, "lost the trustd functions"));
    /* ...and the retry loads it again */
    assert_int_equal(td_store_exec(st, batch, errstr, sizeof(errstr)), TD_OK);
    assert_int_equal(out.type, REDIS_REPLY_ARRAY);
}

static void test_unreachable_redis_is_an_error_not_a_crash(void **state) {
    td_store_conf_t sc = {0};
    char errstr[512];
    td_store_t *bad;
    (void)state;
    sc.addrs = "127.0.0.1:1";
    sc.connect_timeout_ms = 500;
    sc.command_timeout_ms = 500;
    bad = td_store_new(&sc, errstr, sizeof(errstr));
    assert_non_null(bad);
    assert_int_equal(td_store_connect(bad, errstr, sizeof(errstr)), TD_ERR);
    assert_false(td_store_healthy(bad));
    td_store_destroy(bad);
    sc.addrs = "localhost";
    assert_null(td_store_new(&sc, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "host:port"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readable_hash_matches_the_c_merge),
        cmocka_unit_test(test_stored_state_is_the_exact_c_merge),
        cmocka_unit_test(test_put_from_an_old_version_is_refused),
        cmocka_unit_test(test_put_carrying_a_score_reserves_its_version),
        cmocka_unit_test(test_publication_mark_rides_with_a_put),
        cmocka_unit_test(test_score_put_behind_the_stored_score_is_refused),
        cmocka_unit_test(test_batch_sent_while_built),
        cmocka_unit_test(test_state_missing_or_foreign_is_read_from_the_hash),
        cmocka_unit_test(test_state_cache_trims_to_its_cap),
        cmocka_unit_test(test_replayed_delta_is_a_noop),
        cmocka_unit_test(test_straddling_delta_is_refused_before_any_write),
        cmocka_unit_test(test_put_without_state_checks_the_watermarks),
        cmocka_unit_test(
            test_cached_state_replaying_below_a_watermark_is_refused),
        cmocka_unit_test(test_put_checks_every_source_watermark),
        cmocka_unit_test(test_partition_claim_fences_the_previous_owner),
        cmocka_unit_test(test_partition_record_behind_its_owner_is_lost),
        cmocka_unit_test(test_library_is_reloaded_after_redis_lost_it),
        cmocka_unit_test(test_unreachable_redis_is_an_error_not_a_crash),
    };
    return cmocka_run_group_tests_name("store", tests, setup, teardown);
}
