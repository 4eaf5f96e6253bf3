/*
 * it_serve.c - trustctl serve end to end: the real trustd fills a real
 * redis-server from the embedded Kafka, the fixture adds score history
 * points with td_history_append (trustd's own points stay in front of
 * them), then trustctl serve runs as a process, as a Redis user that may
 * only read, and every API field is checked against Redis read directly.
 * The same keys copied to a 3-master Redis Cluster give the same answers.
 * Then the error answers (400, 404, 405, 414, 503), the access rules
 * (loopback by default, no non-loopback address without a token, 401
 * without or with a wrong token, the token never a flag) and, with
 * TD_BROWSER=1 (make test-browser), the page in headless Chromium
 * (tests/browser/page_test.js).
 */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "conf.h"
#include "harness.h"
#include "history.h"
#include "model.h"
#include "schemas_gen.h"
#include "serve.h"
#include "signals.h"
#include "signals_zh.h"

#define HOUR    3600000LL
#define DAY     (24 * HOUR)
#define NMERCH  5
#define NHIST   7 /* fixture points per merchant */
#define TOKEN   "s3cret-token"
#define RO_USER "page"
#define RO_PASS "page-pw"

static td_h_redis_t redis;
static td_h_kafka_t kafka;
static td_h_proc_t trustd, serve;
static redisContext *rc;
static td_model_t *model;
static int port;           /* of the read-only serve */
static long long produced; /* events, all topics */

static const char *const merchants[NMERCH] = {"pg-01", "pg-02", "pg-03",
                                              "pg-04", "pg-05"};

/* ---- HTTP ---- */

static int http(int p,
                const char *method,
                const char *path,
                const char *header,
                char **body) {
    return td_h_http(p, method, path, header, body);
}

/* GET path from the read-only server, expecting status want; returns the
 * parsed JSON body (caller decrefs). */
static json_t *get_json(int p, const char *path, int want) {
    char *body = NULL;
    int st = http(p, "GET", path, NULL, &body);
    json_error_t err;
    json_t *doc;

    if (st != want)
        fail_msg("GET %s: %d, expected %d: %s", path, st, want,
                 body ? body : "");
    doc = json_loads(body, 0, &err);
    if (!doc) fail_msg("GET %s: not JSON (%s): %s", path, err.text, body);
    free(body);
    return doc;
}

static int serving(void *arg) {
    char *body = NULL;
    int st = http(*(int *)arg, "GET", "/", NULL, &body);
    free(body);
    return st == 200;
}

/* Starts trustctl serve on 127.0.0.1:p (or listen) with extra args. */
static int serve_start(td_h_proc_t *proc,
                       const char *listen,
                       int p,
                       const char *redis_addr,
                       const char *const *extra) {
    char lbuf[64];
    char *argv[32];
    int n = 0;

    snprintf(lbuf, sizeof(lbuf), "%s:%d", listen, p);
    argv[n++] = (char *)td_h_bin("trustctl");
    argv[n++] = "--redis";
    argv[n++] = (char *)redis_addr;
    argv[n++] = "--listen";
    argv[n++] = lbuf;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = (char *)extra[i];
    argv[n++] = "serve";
    argv[n] = NULL;
    if (td_h_spawn(proc, "serve", argv)) return -1;
    if (!td_h_poll(serving, &p, 15000)) {
        td_h_dump_log(proc);
        return -1;
    }
    return 0;
}

static void serve_stop(td_h_proc_t *proc) {
    if (proc->pid > 0) td_h_stop_graceful(proc, 10000);
}

/* Runs trustctl with args to its exit; returns the exit status, the
 * output in *out (caller frees). */
static int run_ctl(char **out, const char *const *args) {
    td_h_proc_t p = {0};
    char *argv[32];
    int n = 0, st;
    FILE *fp;
    size_t len = 0;

    argv[n++] = (char *)td_h_bin("trustctl");
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    if (td_h_spawn(&p, "ctl", argv)) return -1;
    st = td_h_wait(&p, 15000);
    *out = NULL;
    fp = fopen(p.log, "r");
    if (fp) {
        *out = calloc(1, 8192);
        len = fread(*out, 1, 8191, fp);
        (*out)[len] = '\0';
        fclose(fp);
    }
    if (st == -1) {
        td_h_signal(&p, SIGKILL);
        td_h_wait(&p, 5000);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- fixtures ---- */

static void produce(td_h_producer_t *p,
                    td_event_kind_t kind,
                    const char *m,
                    int64_t t,
                    int status,
                    int rating) {
    int64_t amount = kind == TD_EV_ORDER ? 2500 : 900;

    assert_int_equal(td_h_produce_event(p, kind, m, t, status, rating, amount),
                     0);
    produced++;
}

/* Merchant i gets fewer orders, more refunds and worse reviews than
 * i - 1, so scores, tiers and reasons differ. */
static void produce_events(void) {
    td_h_producer_t *p = td_h_producer_new(kafka.bootstrap);
    int64_t t0 = td_now_ms() - 40 * HOUR;

    for (int i = 0; i < NMERCH; i++) {
        for (int k = 0; k < 30 - 5 * i; k++)
            produce(p, TD_EV_ORDER, merchants[i], t0 + k * HOUR, TD_ORDER_PAID,
                    0);
        for (int k = 0; k < 6; k++)
            produce(p, TD_EV_REVIEW, merchants[i], t0 + (k + 1) * HOUR, 0,
                    5 - (i + k) % 5 - (i > 2));
        for (int k = 0; k < 3 * i; k++)
            produce(p, TD_EV_REFUND, merchants[i], t0 + (k + 2) * HOUR,
                    TD_REFUND_REQUESTED, 0);
    }
    assert_int_equal(td_h_producer_flush(p), 0);
    td_h_producer_destroy(p);
}

static int all_published(void *arg) {
    for (int i = 0; i < NMERCH; i++) {
        char key[64];
        double pubv = NAN, v = NAN;
        snprintf(key, sizeof(key), "trust:{%s}:score", merchants[i]);
        td_h_hget_double(rc, key, "pub_version", &pubv);
        td_h_hget_double(rc, key, "version", &v);
        if (isnan(pubv) || pubv != v) return 0;
    }
    return 1;
}

/* Appends NHIST points a day apart, ending an hour ago, to each
 * merchant's history as trustd would (td_history_append). */
static void add_history(void) {
    int64_t now = td_now_ms();
    for (int i = 0; i < NMERCH; i++) {
        unsigned char buf[TD_HISTORY_BYTES], out[TD_HISTORY_BYTES], head[8];
        size_t len = 0;
        char key[128];
        redisReply *r;

        snprintf(key, sizeof(key), "trust:{%s}:history", merchants[i]);
        r = redisCommand(rc, "GET %s", key);
        assert_non_null(r);
        if (r->type == REDIS_REPLY_STRING && r->len <= sizeof(buf)) {
            memcpy(buf, r->str, r->len);
            len = r->len;
        }
        freeReplyObject(r);
        for (int k = 0; k < NHIST; k++) {
            td_history_head(head, now - (NHIST - k) * DAY - HOUR,
                            60 + 4 * k - 3 * i + 0.37, 1 + (k + i) % 5,
                            0.4 + 0.05 * k);
            len = td_history_append(out, buf, len, head, 100 + (uint64_t)k);
            memcpy(buf, out, len);
        }
        r = redisCommand(rc, "SET %s %b", key, buf, len);
        assert_non_null(r);
        freeReplyObject(r);
    }
}

static int setup(void **state) {
    static const char *kargs[] = {"--partitions", "2", NULL};
    static const char *ro[] = {"--redis-user", RO_USER, "--redis-password",
                               RO_PASS, NULL};
    char errstr[512];
    redisReply *r;

    if (!(model = td_model_load_string("model.conf", td_model_conf, errstr,
                                       sizeof(errstr))))
        return -1;
    if (td_h_redis_start(&redis, NULL) || td_h_kafka_start(&kafka, kargs))
        return -1;
    if (!(rc = td_h_redis_connect(&redis))) return -1;
    produce_events();
    if (td_h_trustd_start(&trustd, "trustd", &kafka, &redis, "it-serve", NULL))
        return -1;
    /* Every event applied (committed), then every score published. */
    if (!td_h_committed_reached(rc, produced, 60000) ||
        !td_h_poll(all_published, NULL, 60000)) {
        td_h_dump_log(&trustd);
        return -1;
    }
    /* trustd is done: what it holds stays put while the tests compare. */
    td_h_signal(&trustd, SIGTERM);
    td_h_wait(&trustd, 15000);
    add_history();
    /* The server may read and nothing else: any write it tried would fail
     * and show as a 503. */
    r = redisCommand(rc,
                     "ACL SETUSER %s on >%s ~* &* -@all +@read "
                     "+@connection +info +cluster|info",
                     RO_USER, RO_PASS);
    if (!r || r->type == REDIS_REPLY_ERROR) return -1;
    freeReplyObject(r);
    port = td_h_free_port();
    return serve_start(&serve, "127.0.0.1", port, redis.addr, ro);
}

static int teardown(void **state) {
    td_h_signal(&serve, SIGKILL);
    td_h_wait(&serve, 5000);
    td_h_signal(&trustd, SIGKILL);
    td_h_wait(&trustd, 5000);
    if (rc) redisFree(rc);
    td_h_kafka_stop(&kafka);
    td_h_redis_stop(&redis);
    td_model_destroy(model);
    return 0;
}

/* ---- comparing with Redis ---- */

static redisReply *hgetall(const char *fmt, const char *m) {
    char key[128];
    redisReply *r;
    snprintf(key, sizeof(key), fmt, m);
    r = redisCommand(rc, "HGETALL %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    return r;
}

static const char *hfield(const redisReply *r, const char *f) {
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (!strcmp(r->element[i]->str, f)) return r->element[i + 1]->str;
    return NULL;
}

/* A JSON number (or null) equals what Redis holds as text (or absence). */
static void expect_num(json_t *doc, const char *key, const char *redis_text) {
    json_t *v = json_object_get(doc, key);
    assert_non_null(v);
    if (!redis_text) {
        if (!json_is_null(v))
            fail_msg("%s: %s absent from Redis, not null", key,
                     json_dumps(v, JSON_ENCODE_ANY));
        return;
    }
    if (!json_is_number(v)) fail_msg("%s is not a number", key);
    if (json_number_value(v) != strtod(redis_text, NULL))
        fail_msg("%s: API %.17g, Redis %s", key, json_number_value(v),
                 redis_text);
}

static void test_merchant_api_equals_redis(void **state) {
    static const char *const nums[] = {"score",   "tier",     "confidence",
                                       "version", "as_of_ms", "updated_ms"};
    for (int i = 0; i < NMERCH; i++) {
        const char *m = merchants[i];
        char path[128];
        redisReply *sc = hgetall("trust:{%s}:score", m);
        redisReply *sg = hgetall("trust:{%s}:signals", m);
        json_t *doc, *reasons, *want, *subs, *sigs;
        size_t nsub = 0;

        snprintf(path, sizeof(path), "/api/merchants/%s", m);
        doc = get_json(port, path, 200);
        assert_string_equal(
            json_string_value(json_object_get(doc, "merchant_id")), m);
        for (size_t k = 0; k < TD_ARRAY_LEN(nums); k++)
            expect_num(doc, nums[k], hfield(sc, nums[k]));
        assert_non_null(hfield(sc, "score"));
        assert_string_equal(
            json_string_value(json_object_get(doc, "model_version")),
            hfield(sc, "model_version"));
        /* Reasons: the hash's JSON array, element by element. */
        reasons = json_object_get(doc, "reasons");
        want = json_loads(hfield(sc, "reasons"), 0, NULL);
        assert_non_null(want);
        assert_true(json_equal(reasons, want));
        json_decref(want);
        /* Their Chinese words: a rule's reason_zh from the model, else
         * null. */
        json_t *zh = json_object_get(doc, "reasons_zh");
        assert_int_equal(json_array_size(zh), json_array_size(reasons));
        for (size_t k = 0; k < json_array_size(reasons); k++) {
            const char *z = td_model_reason_zh(
                model, json_string_value(json_array_get(reasons, k)));
            json_t *got = json_array_get(zh, k);
            if (z) {
                assert_string_equal(json_string_value(got), z);
            } else {
                assert_true(json_is_null(got));
            }
        }
        /* Sub-scores: every sub_* field and nothing else. */
        subs = json_object_get(doc, "sub_scores");
        for (size_t k = 0; k + 1 < sc->elements; k += 2) {
            const char *f = sc->element[k]->str;
            if (strncmp(f, "sub_", 4)) continue;
            expect_num(subs, f + 4, sc->element[k + 1]->str);
            nsub++;
        }
        assert_true(nsub > 0);
        assert_int_equal(json_object_size(subs), nsub);
        expect_num(doc, "signals_as_of_ms", hfield(sg, "as_of_ms"));
        /* Signals: every catalog line, value as in Redis, the catalog's
         * words and the model's prior. */
        sigs = json_object_get(doc, "signals");
        assert_int_equal(json_array_size(sigs), TD_SIG__CNT);
        for (int k = 0; k < TD_SIG__CNT; k++) {
            const td_signal_t *d = &td_signals[k];
            json_t *s = json_array_get(sigs, (size_t)k);
            double prior;
            assert_string_equal(json_string_value(json_object_get(s, "name")),
                                d->name);
            expect_num(s, "value", hfield(sg, d->name));
            assert_string_equal(
                json_string_value(json_object_get(s, "meaning")), d->meaning);
            assert_string_equal(
                json_string_value(json_object_get(s, "meaning_zh")),
                td_signal_meaning_zh(k));
            assert_string_equal(json_string_value(json_object_get(s, "unit")),
                                d->unit);
            assert_string_equal(json_string_value(json_object_get(s, "window")),
                                td_window_name(d->window_ms));
            assert_string_equal(
                json_string_value(json_object_get(s, "category")),
                td_category_name(d->category));
            assert_int_equal(
                json_is_true(json_object_get(s, "higher_is_better")),
                d->higher_better);
            if (td_model_signal_prior(model, k, &prior, NULL)) {
                assert_true(json_number_value(json_object_get(s, "prior")) ==
                            prior);
            } else {
                assert_null(json_object_get(s, "prior"));
            }
        }
        json_decref(doc);
        freeReplyObject(sc);
        freeReplyObject(sg);
    }
}

static void test_history_api_equals_redis(void **state) {
    for (int i = 0; i < NMERCH; i++) {
        td_history_point_t pts[TD_HISTORY_MAX];
        char path[128];
        redisReply *r =
            redisCommand(rc, "GET trust:{%s}:history", merchants[i]);
        json_t *doc, *arr;
        int n;

        assert_int_equal(r->type, REDIS_REPLY_STRING);
        n = td_history_decode((const unsigned char *)r->str, r->len, pts,
                              TD_HISTORY_MAX);
        assert_true(n >= NHIST);
        snprintf(path, sizeof(path), "/api/merchants/%s/history", merchants[i]);
        doc = get_json(port, path, 200);
        arr = json_object_get(doc, "points");
        assert_int_equal(json_array_size(arr), n);
        for (int k = 0; k < n; k++) {
            json_t *p = json_array_get(arr, (size_t)k);
            assert_int_equal(json_integer_value(json_object_get(p, "ms")),
                             pts[k].ms);
            assert_true(json_number_value(json_object_get(p, "score")) ==
                        pts[k].score);
            assert_int_equal(json_integer_value(json_object_get(p, "tier")),
                             pts[k].tier);
            assert_true(json_number_value(json_object_get(p, "confidence")) ==
                        pts[k].confidence);
            assert_int_equal(json_integer_value(json_object_get(p, "version")),
                             pts[k].version);
        }
        json_decref(doc);
        freeReplyObject(r);
    }
}

static void expect_rank(const char *path, const char *cmd, int n) {
    redisReply *z =
        redisCommand(rc, "%s trust:scores 0 %d WITHSCORES", cmd, n - 1);
    json_t *doc = get_json(port, path, 200);
    json_t *arr = json_object_get(doc, "merchants");

    assert_int_equal(json_array_size(arr), z->elements / 2);
    for (size_t i = 0; i < z->elements / 2; i++) {
        json_t *e = json_array_get(arr, i);
        const char *m = z->element[2 * i]->str;
        redisReply *h = redisCommand(rc,
                                     "HMGET trust:{%s}:score tier "
                                     "confidence",
                                     m);
        assert_int_equal(json_integer_value(json_object_get(e, "rank")), i + 1);
        assert_string_equal(
            json_string_value(json_object_get(e, "merchant_id")), m);
        expect_num(e, "score", z->element[2 * i + 1]->str);
        expect_num(e, "tier", h->element[0]->str);
        expect_num(e, "confidence", h->element[1]->str);
        freeReplyObject(h);
    }
    json_decref(doc);
    freeReplyObject(z);
}

static void test_top_and_bottom_follow_trust_scores(void **state) {
    expect_rank("/api/top", "ZREVRANGE", 10);
    expect_rank("/api/top?n=2", "ZREVRANGE", 2);
    expect_rank("/api/bottom?n=3", "ZRANGE", 3);
    expect_rank("/api/bottom?n=100", "ZRANGE", 100);
}

static void test_tiers_count_every_ranked_merchant(void **state) {
    redisReply *z = redisCommand(rc, "ZRANGE trust:scores 0 -1");
    long long want[6] = {0};
    json_t *doc = get_json(port, "/api/tiers", 200), *tiers;

    for (size_t i = 0; i < z->elements; i++) {
        redisReply *t =
            redisCommand(rc, "HGET trust:{%s}:score tier", z->element[i]->str);
        want[atoi(t->str)]++;
        freeReplyObject(t);
    }
    tiers = json_object_get(doc, "tiers");
    for (int k = 1; k <= 5; k++) {
        char key[16];
        snprintf(key, sizeof(key), "%d", k);
        assert_int_equal(json_integer_value(json_object_get(tiers, key)),
                         want[k]);
    }
    assert_int_equal(json_integer_value(json_object_get(doc, "total")),
                     z->elements);
    assert_int_equal(z->elements, NMERCH);
    json_decref(doc);
    freeReplyObject(z);
}

/* ---- errors ---- */

static void expect_status(const char *method, const char *path, int want) {
    char *body = NULL;
    int st = http(port, method, path, NULL, &body);
    if (st != want)
        fail_msg("%s %.80s: %d, expected %d: %s", method, path, st, want,
                 body ? body : "");
    /* Every error says why, as JSON. */
    if (want >= 400 && want != 405) {
        json_t *doc = json_loads(body, 0, NULL);
        assert_non_null(doc);
        assert_non_null(json_string_value(json_object_get(doc, "error")));
        json_decref(doc);
    }
    free(body);
}

static void test_unknown_merchant_is_404(void **state) {
    expect_status("GET", "/api/merchants/no-such-merchant", 404);
    expect_status("GET", "/api/merchants/no-such-merchant/history", 404);
}

static void test_malformed_requests_are_4xx(void **state) {
    char path[TD_SERVE_PATH_MAX + 64];
    int n;

    /* 65 bytes: longer than trustd accepts. */
    n = snprintf(path, sizeof(path), "/api/merchants/");
    memset(path + n, 'x', TD_MERCHANT_ID_MAX + 1);
    path[n + TD_MERCHANT_ID_MAX + 1] = '\0';
    expect_status("GET", path, 400);
    path[n + TD_MERCHANT_ID_MAX] = '\0'; /* 64 bytes: well formed */
    expect_status("GET", path, 404);
    expect_status("GET", "/api/merchants/", 400);
    expect_status("GET", "/api/merchants/%FF%FE", 400); /* not UTF-8 */
    expect_status("GET", "/api/merchants/%E5%95%86%E5%AE%B6", 404);
    /* Not merchant "pg-01": %00 is not decoded into a C string's end. */
    expect_status("GET", "/api/merchants/pg-01%00x", 404);
    expect_status("GET", "/api/merchants/pg%2D01", 200);
    expect_status("GET", "/api/merchants/pg-01/nothing", 404);
    expect_status("GET", "/api/nothing", 404);
    expect_status("GET", "/nothing/here", 404);
    expect_status("GET", "/api/top?n=0", 400);
    expect_status("GET", "/api/top?n=abc", 400);
    expect_status("GET", "/api/bottom?n=101", 400);
    expect_status("POST", "/api/top", 405);
    expect_status("DELETE", "/api/merchants/pg-01", 405);
    expect_status("PUT", "/", 405);
    expect_status("HEAD", "/api/top", 200);
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    expect_status("GET", path, 414);
    /* The page itself is there, at / and at every merchant's address. */
    expect_status("GET", "/", 200);
    expect_status("GET", "/merchants/pg-01", 200);
    expect_status("GET", "/page.js", 200);
}

static void test_redis_away_is_503_with_reason(void **state) {
    td_h_proc_t p = {0};
    char addr[64], *body = NULL;
    int pp = td_h_free_port(), dead = td_h_free_port();

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", dead);
    assert_int_equal(serve_start(&p, "127.0.0.1", pp, addr, NULL), 0);
    assert_int_equal(http(pp, "GET", "/api/merchants/pg-01", NULL, &body), 503);
    assert_non_null(strstr(body, "unavailable"));
    free(body);
    assert_int_equal(http(pp, "GET", "/api/tiers", NULL, &body), 503);
    free(body);
    serve_stop(&p);
}

/* ---- access ---- */

static void test_listens_on_loopback_by_default(void **state) {
    td_conf_t conf;
    char addr[64], errstr[256], *out = NULL;
    int p;
    static const char *args[] = {"--print-config", NULL};

    td_conf_init(&conf);
    assert_string_equal(conf.listen, "127.0.0.1:8080");
    assert_string_equal(conf.serve_token, "");
    assert_int_equal(td_serve_check_listen(&conf, addr, sizeof(addr), &p,
                                           errstr, sizeof(errstr)),
                     TD_OK);
    assert_string_equal(addr, "127.0.0.1");
    td_conf_term(&conf);
    assert_int_equal(run_ctl(&out, args), 0);
    assert_non_null(strstr(out, "127.0.0.1:8080"));
    free(out);
}

static void test_refuses_other_address_without_token(void **state) {
    char lbuf[64], *out = NULL;
    const char *args[] = {"--redis", redis.addr, "--listen",
                          lbuf,      "serve",    NULL};

    snprintf(lbuf, sizeof(lbuf), "0.0.0.0:%d", td_h_free_port());
    assert_int_equal(run_ctl(&out, args), 1);
    assert_non_null(strstr(out, "not a loopback address"));
    free(out);
    snprintf(lbuf, sizeof(lbuf), "localhost:%d", td_h_free_port());
    assert_int_equal(run_ctl(&out, args), 1);
    assert_non_null(strstr(out, "IPV4ADDRESS:PORT"));
    free(out);
}

static void test_token_is_never_a_flag(void **state) {
    char *out = NULL;
    static const char *args[] = {"--serve-token", TOKEN, "serve", NULL};
    assert_int_equal(run_ctl(&out, args), 1);
    assert_non_null(strstr(out, "cannot be a flag"));
    free(out);
}

static void expect_auth(int p, const char *header, int want) {
    char *body = NULL;
    int st = http(p, "GET", "/api/merchants/pg-01", header, &body);
    if (st != want)
        fail_msg("with '%s': %d, expected %d: %s", header ? header : "", st,
                 want, body ? body : "");
    free(body);
}

/* Bound to every address with a token from the environment or the config
 * file, each API request needs it. */
static void test_token_is_required_from_env_and_file(void **state) {
    td_h_proc_t p = {0};
    int pp = td_h_free_port();
    char cfg[512];
    FILE *fp;

    setenv("TRUST_SERVE_TOKEN", TOKEN, 1);
    assert_int_equal(serve_start(&p, "0.0.0.0", pp, redis.addr, NULL), 0);
    unsetenv("TRUST_SERVE_TOKEN");
    expect_auth(pp, NULL, 401);
    expect_auth(pp, "Authorization: Bearer wrong", 401);
    expect_auth(pp, "Authorization: Bearer " TOKEN "x", 401);
    expect_auth(pp, "Authorization: Basic " TOKEN, 401);
    expect_auth(pp, "Authorization: Bearer " TOKEN, 200);
    serve_stop(&p);

    snprintf(cfg, sizeof(cfg), "%s/serve.conf", td_h_tmpdir());
    fp = fopen(cfg, "w");
    assert_non_null(fp);
    fprintf(fp, "serve_token = %s\n", TOKEN);
    fclose(fp);
    pp = td_h_free_port();
    const char *extra[] = {"--config", cfg, NULL};
    assert_int_equal(serve_start(&p, "127.0.0.1", pp, redis.addr, extra), 0);
    expect_auth(pp, NULL, 401);
    expect_auth(pp, "Authorization: Bearer " TOKEN, 200);
    serve_stop(&p);
}

/* ---- Redis Cluster ---- */

/* RESTOREs key (payload from DUMP) into the cluster, following MOVED. */
static void
cluster_restore(td_h_cluster_t *cl, const char *key, const redisReply *dump) {
    int node = 0;

    for (int hops = 0; hops < 4; hops++) {
        redisContext *c = td_h_redis_connect(&cl->node[node]);
        redisReply *r;
        int to = 0;

        assert_non_null(c);
        r = redisCommand(c, "RESTORE %s 0 %b", key, dump->str, dump->len);
        assert_non_null(r);
        if (r->type == REDIS_REPLY_ERROR &&
            sscanf(r->str, "MOVED %*d 127.0.0.1:%d", &to) == 1) {
            for (int i = 0; i < cl->n; i++) {
                if (cl->node[i].port == to) node = i;
            }
            freeReplyObject(r);
            redisFree(c);
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR)
            fail_msg("RESTORE %s: %s", key, r->str);
        freeReplyObject(r);
        redisFree(c);
        return;
    }
    fail_msg("RESTORE %s: too many redirects", key);
}

/* Copies what trustd wrote into the single Redis, key by key. */
static void copy_to_cluster(td_h_cluster_t *cl) {
    static const char *const kinds[] = {"score", "signals", "history"};
    redisReply *d;

    for (int i = 0; i < NMERCH; i++) {
        for (size_t k = 0; k < TD_ARRAY_LEN(kinds); k++) {
            char key[128];
            snprintf(key, sizeof(key), "trust:{%s}:%s", merchants[i], kinds[k]);
            d = redisCommand(rc, "DUMP %s", key);
            assert_int_equal(d->type, REDIS_REPLY_STRING);
            cluster_restore(cl, key, d);
            freeReplyObject(d);
        }
    }
    d = redisCommand(rc, "DUMP trust:scores");
    assert_int_equal(d->type, REDIS_REPLY_STRING);
    cluster_restore(cl, "trust:scores", d);
    freeReplyObject(d);
}

static void expect_same(int a, int b, const char *path) {
    json_t *x = get_json(a, path, 200), *y = get_json(b, path, 200);
    if (!json_equal(x, y))
        fail_msg("%s differs on the cluster:\n%s\n%s", path,
                 json_dumps(x, JSON_COMPACT), json_dumps(y, JSON_COMPACT));
    json_decref(x);
    json_decref(y);
}

/* The same data on a 3-master Redis Cluster gives the same answers. */
static void test_serves_a_redis_cluster(void **state) {
    static td_h_cluster_t cl;
    td_h_proc_t p = {0};
    int pp = td_h_free_port();
    static const char *const extra[] = {"--redis-cluster", NULL};

    assert_int_equal(td_h_cluster_start(&cl, 3, 0, 2000), 0);
    copy_to_cluster(&cl);
    assert_int_equal(serve_start(&p, "127.0.0.1", pp, cl.seeds, extra), 0);
    for (int i = 0; i < NMERCH; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/api/merchants/%s", merchants[i]);
        expect_same(port, pp, path);
        snprintf(path, sizeof(path), "/api/merchants/%s/history", merchants[i]);
        expect_same(port, pp, path);
    }
    expect_same(port, pp, "/api/top?n=100");
    expect_same(port, pp, "/api/bottom?n=3");
    expect_same(port, pp, "/api/tiers");
    serve_stop(&p);
    td_h_cluster_stop(&cl);
}

/* ---- the page in Chromium ---- */

/* Writes what the page must show for merchant m, from Redis, as JSON for
 * tests/browser/page_test.js. */
static void write_expect(const char *path, const char *m) {
    redisReply *sc = hgetall("trust:{%s}:score", m);
    redisReply *h = redisCommand(rc, "GET trust:{%s}:history", m);
    json_t *reasons = json_loads(hfield(sc, "reasons"), 0, NULL);
    json_t *zh = json_array();
    for (size_t k = 0; k < json_array_size(reasons); k++) {
        const char *z = td_model_reason_zh(
            model, json_string_value(json_array_get(reasons, k)));
        json_array_append_new(zh, z ? json_string(z) : json_null());
    }
    json_decref(reasons);
    json_t *doc =
        json_pack("{s:o, s:s, s:f, s:i, s:o, s:I}", "reasons_zh", zh,
                  "merchant", m, "score", strtod(hfield(sc, "score"), NULL),
                  "tier", atoi(hfield(sc, "tier")), "reasons",
                  json_loads(hfield(sc, "reasons"), 0, NULL), "history_points",
                  (json_int_t)(h->len / TD_HISTORY_POINT));
    assert_non_null(doc);
    assert_int_equal(json_dump_file(doc, path, 0), 0);
    json_decref(doc);
    freeReplyObject(h);
    freeReplyObject(sc);
}

static void test_page_in_headless_chromium(void **state) {
    const char *root = getenv("TD_BROWSER_ROOT");
    char expect[512], url[128], turl[128], shots[512], *argv[8];
    td_h_proc_t p = {0}, tok = {0};
    int st, tp;

    if (!getenv("TD_BROWSER")) {
        skip(); /* make test-browser */
        return;
    }
    /* The worst merchant: it has reasons to show. */
    redisReply *z = redisCommand(rc, "ZRANGE trust:scores 0 0");
    assert_int_equal(z->elements, 1);
    snprintf(expect, sizeof(expect), "%s/page_expect.json", td_h_tmpdir());
    write_expect(expect, z->element[0]->str);
    freeReplyObject(z);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    snprintf(shots, sizeof(shots), "%s",
             getenv("TD_BROWSER_SHOTS") ? getenv("TD_BROWSER_SHOTS")
                                        : "build/screenshots");
    /* A second server that wants a token: the page must ask for it. */
    tp = td_h_free_port();
    setenv("TRUST_SERVE_TOKEN", TOKEN, 1);
    assert_int_equal(serve_start(&tok, "127.0.0.1", tp, redis.addr, NULL), 0);
    unsetenv("TRUST_SERVE_TOKEN");
    snprintf(turl, sizeof(turl), "http://127.0.0.1:%d", tp);
    argv[0] = "node";
    argv[1] = "tests/browser/page_test.js";
    argv[2] = url;
    argv[3] = expect;
    argv[4] = shots;
    argv[5] = turl;
    argv[6] = TOKEN;
    argv[7] = NULL;
    if (root) setenv("NODE_PATH", root, 1);
    assert_int_equal(td_h_spawn(&p, "browser", argv), 0);
    st = td_h_wait(&p, 90000);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        td_h_signal(&p, SIGKILL);
        td_h_wait(&p, 5000);
        td_h_dump_log(&p);
        serve_stop(&tok);
        fail_msg("page test failed (status %d)", st);
    }
    td_h_dump_log(&p); /* what it checked */
    serve_stop(&tok);
}

/* Last: after every request above, SIGTERM ends the server with status 0
 * (under ASan: nothing leaked). */
static void test_stops_cleanly_on_sigterm(void **state) {
    serve_stop(&serve);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merchant_api_equals_redis),
        cmocka_unit_test(test_history_api_equals_redis),
        cmocka_unit_test(test_top_and_bottom_follow_trust_scores),
        cmocka_unit_test(test_tiers_count_every_ranked_merchant),
        cmocka_unit_test(test_unknown_merchant_is_404),
        cmocka_unit_test(test_malformed_requests_are_4xx),
        cmocka_unit_test(test_redis_away_is_503_with_reason),
        cmocka_unit_test(test_serves_a_redis_cluster),
        cmocka_unit_test(test_listens_on_loopback_by_default),
        cmocka_unit_test(test_refuses_other_address_without_token),
        cmocka_unit_test(test_token_is_never_a_flag),
        cmocka_unit_test(test_token_is_required_from_env_and_file),
        cmocka_unit_test(test_page_in_headless_chromium),
        cmocka_unit_test(test_stops_cleanly_on_sigterm),
    };
    return cmocka_run_group_tests_name("it_serve", tests, setup, teardown);
}
