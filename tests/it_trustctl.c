/*
 * it_trustctl.c - trustctl end to end: the real trustd fills a real
 * redis-server from the embedded Kafka, then every trustctl command runs as
 * a process against them and its output is checked against Redis and Kafka
 * read directly: get, signals, history, top/bottom, offsets, scores (with
 * --follow),
 * dlq list and dlq replay, the exit statuses for an unknown merchant (2) and
 * an unreachable Redis (3). Every --json output must parse with Debian's
 * /usr/bin/python3 -m json.tool; fields are read back with a one-line
 * Python expression.
 */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "common.h"
#include "harness.h"
#include "history.h"
#include "signals.h"

#define HOUR    3600000LL
#define PY      "/usr/bin/python3"
#define NMERCH  6
#define GARBAGE "garbage, not Avro"
#define BAD_KEY "m-bad"

static td_h_redis_t redis;
static td_h_kafka_t kafka;
static td_h_proc_t trustd;
static redisContext *rc;
static int produced[TD_EV__CNT];    /* messages per input topic */
static int64_t garbage_offset = -1; /* of the garbage on orders/1 */

static const char *const merchants[NMERCH] = {"m-01", "m-02", "m-03",
                                              "m-04", "m-05", "m-06"};

/* ---- running programs ---- */

typedef struct run_s {
    int status; /* exit status, -1 if it did not exit in time */
    char out[512];
    char err[512];
} run_t;

/* Runs argv with stdout and stderr in files of the temp dir; waits up to
 * 60 s. Returns the exit status. */
static int run(run_t *r, char *const argv[]) {
    static int seq;
    td_h_proc_t p = {0};
    int st;

    snprintf(r->out, sizeof(r->out), "%s/run%d.out", td_h_tmpdir(), seq);
    snprintf(r->err, sizeof(r->err), "%s/run%d.err", td_h_tmpdir(), seq++);
    fflush(stdout);
    fflush(stderr);
    p.pid = fork();
    if (p.pid < 0) return -1;
    if (p.pid == 0) {
        int o = open(r->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(r->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) {
            _exit(126);
        }
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    st = td_h_wait(&p, 60000);
    if (st == -1) {
        kill(p.pid, SIGKILL);
        td_h_wait(&p, 5000);
        r->status = -1;
    } else {
        r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return r->status;
}

/* Runs trustctl against the fixtures with the NULL-terminated args. */
static int ctl(run_t *r, ...) {
    char *argv[32];
    int n = 0;
    va_list ap;
    const char *a;

    argv[n++] = (char *)td_h_bin("trustctl");
    argv[n++] = "--redis";
    argv[n++] = redis.addr;
    argv[n++] = "--brokers";
    argv[n++] = kafka.bootstrap;
    va_start(ap, r);
    while ((a = va_arg(ap, const char *)) && n < 31) {
        argv[n++] = (char *)a;
    }
    va_end(ap);
    argv[n] = NULL;
    return run(r, argv);
}

/* Whole file as a string (caller frees); "" if unreadable. */
static char *slurp(const char *path) {
    FILE *fp = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;

    while (fp && (n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
        fwrite(chunk, 1, n, mem);
    }
    if (fp) {
        fclose(fp);
    }
    fclose(mem);
    return buf;
}

static void show(const run_t *r) {
    char *o = slurp(r->out), *e = slurp(r->err);
    fprintf(stderr, "exit %d\n--- stdout\n%s--- stderr\n%s", r->status, o, e);
    free(o);
    free(e);
}

static void expect_exit(const run_t *r, int want) {
    if (r->status != want) {
        show(r);
        fail_msg("trustctl exited %d, expected %d", r->status, want);
    }
}

static int file_contains(const char *path, const char *needle) {
    char *s = slurp(path);
    int found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

/* Asserts that the file is one valid JSON document. */
static void expect_json(const char *path) {
    char *argv[] = {PY, "-m", "json.tool", (char *)path, "/dev/null", NULL};
    run_t r;
    if (run(&r, argv) != 0) {
        char *s = slurp(path);
        show(&r);
        fail_msg("not valid JSON: %s", s);
    }
}

/* Evaluates a Python expression over d = the JSON in path; the printed
 * result goes to out without its newline. */
static void py(const char *path, const char *expr, char *out, size_t size) {
    char *argv[] = {PY,
                    "-c",
                    "import json, sys\n"
                    "d = json.load(open(sys.argv[1]))\n"
                    "print(eval(sys.argv[2]))\n",
                    (char *)path,
                    (char *)expr,
                    NULL};
    run_t r;
    char *s;

    if (run(&r, argv) != 0) {
        show(&r);
        fail_msg("python failed on %s", expr);
    }
    s = slurp(r.out);
    s[strcspn(s, "\n")] = '\0';
    snprintf(out, size, "%s", s);
    free(s);
}

static double py_num(const char *path, const char *expr) {
    char buf[256];
    py(path, expr, buf, sizeof(buf));
    return strtod(buf, NULL);
}

static double hget(const char *key, const char *field) {
    double v = NAN;
    td_h_hget_double(rc, key, field, &v);
    return v;
}

/* ---- fixtures ---- */

static void produce_event(td_h_producer_t *p,
                          td_event_kind_t kind,
                          const char *m,
                          int64_t t,
                          int status,
                          int rating,
                          int64_t amount) {
    assert_int_equal(td_h_produce_event(p, kind, m, t, status, rating, amount),
                     0);
    produced[kind]++;
}

/* Merchant i gets fewer orders, more refunds and worse reviews than i - 1,
 * so their scores differ. */
static void produce_events(void) {
    td_h_producer_t *p = td_h_producer_new(kafka.bootstrap);
    int64_t t0 = td_now_ms() - 40 * HOUR;

    for (int i = 0; i < NMERCH; i++) {
        const char *m = merchants[i];
        for (int k = 0; k < 24 - 3 * i; k++) {
            produce_event(p, TD_EV_ORDER, m, t0 + k * HOUR, TD_ORDER_PAID, 0,
                          1000 + 100 * k);
        }
        for (int k = 0; k < 4; k++) {
            produce_event(p, TD_EV_REVIEW, m, t0 + (k + 1) * HOUR, 0,
                          5 - (i + k) % 5, 0);
        }
        for (int k = 0; k < i; k++) {
            produce_event(p, TD_EV_REFUND, m, t0 + (k + 2) * HOUR,
                          TD_REFUND_REQUESTED, 0, 500);
        }
    }
    /* trustd dead-letters this one (bad_magic). */
    assert_int_equal(td_h_produce_raw(p, "orders", 1, BAD_KEY, strlen(BAD_KEY),
                                      GARBAGE, strlen(GARBAGE)),
                     0);
    produced[TD_EV_ORDER]++;
    assert_int_equal(td_h_producer_flush(p), 0);
    td_h_producer_destroy(p);
}

/* Every merchant's last delivered score is marked: pub_version equals
 * version (the mark comes with the flush after the delivery). */
static int all_published(void *arg) {
    for (int i = 0; i < NMERCH; i++) {
        char key[64];
        double pubv;
        snprintf(key, sizeof(key), "trust:{%s}:score", merchants[i]);
        pubv = hget(key, "pub_version");
        if (isnan(pubv) || pubv != hget(key, "version")) return 0;
    }
    return 1;
}

typedef struct copies_s {
    int n;
    int64_t offset[8];
} copies_t;

/* Counts the messages on orders that carry the garbage, byte for byte. */
static void on_order(const rd_kafka_message_t *m, void *arg) {
    copies_t *c = arg;
    if (m->key_len == strlen(BAD_KEY) && !memcmp(m->key, BAD_KEY, m->key_len) &&
        m->len == strlen(GARBAGE) && !memcmp(m->payload, GARBAGE, m->len)) {
        if (c->n < 8) {
            c->offset[c->n] = m->offset;
        }
        c->n++;
    }
}

static int garbage_copies(void) {
    copies_t c = {0};
    assert_true(td_h_consume_all(kafka.bootstrap, "orders", on_order, &c) > 0);
    return c.n;
}

static void count_dlq(const rd_kafka_message_t *m, void *arg) {
    (*(int *)arg)++;
}

static int dead_lettered(void *arg) {
    int n = 0;
    td_h_consume_all(kafka.bootstrap, "trust-dlq", count_dlq, &n);
    return n >= *(int *)arg;
}

static int setup(void **state) {
    static const char *kargs[] = {"--partitions", "2", NULL};
    copies_t c = {0};
    int one = 1;

    if (td_h_redis_start(&redis, NULL) || td_h_kafka_start(&kafka, kargs))
        return -1;
    if (!(rc = td_h_redis_connect(&redis))) return -1;
    produce_events();
    if (td_h_consume_all(kafka.bootstrap, "orders", on_order, &c) < 0 ||
        c.n != 1)
        return -1;
    garbage_offset = c.offset[0];
    if (td_h_trustd_start(&trustd, "trustd", &kafka, &redis, "it-trustctl",
                          NULL))
        return -1;
    if (!td_h_poll(all_published, NULL, 60000) ||
        !td_h_poll(dead_lettered, &one, 30000)) {
        td_h_dump_log(&trustd);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    if (trustd.pid > 0) {
        td_h_signal(&trustd, SIGKILL);
        td_h_wait(&trustd, 5000);
    }
    if (rc) {
        redisFree(rc);
    }
    td_h_kafka_stop(&kafka);
    td_h_redis_stop(&redis);
    return 0;
}

/* ---- get, signals ---- */

static void test_get_prints_score_as_text_and_json(void **state) {
    run_t r;
    char want[64], got[256];
    double score = NAN;

    /* trustd may still publish a newer score (another flush, the
     * republish interval): use a round in which the score did not change
     * while trustctl ran. */
    int text_ok = 0, stable = 0;
    double pubv = NAN;
    for (int attempt = 0; attempt < 20 && !stable; attempt++) {
        score = hget("trust:{m-01}:score", "score");
        pubv = hget("trust:{m-01}:score", "pub_version");
        assert_false(isnan(score));
        ctl(&r, "get", "m-01", NULL);
        expect_exit(&r, 0);
        snprintf(want, sizeof(want), "score         %.2f\n", score);
        text_ok = file_contains(r.out, "merchant      m-01\n") &&
                  file_contains(r.out, want) &&
                  file_contains(r.out, "orders_paid_30d") &&
                  file_contains(r.out, " from built-in, published ");
        ctl(&r, "--json", "get", "m-01", NULL);
        expect_exit(&r, 0);
        stable = hget("trust:{m-01}:score", "score") == score &&
                 hget("trust:{m-01}:score", "pub_version") == pubv;
    }
    assert_true(stable);
    assert_true(text_ok);
    expect_json(r.out);
    py(r.out, "d['merchant_id']", got, sizeof(got));
    assert_string_equal(got, "m-01");
    assert_true(py_num(r.out, "d['score']") == score);
    assert_true(py_num(r.out, "d['tier']") ==
                hget("trust:{m-01}:score", "tier"));
    assert_true(py_num(r.out, "d['version']") >= 1);
    assert_true(py_num(r.out, "d['published']['version']") == pubv);
    py(r.out, "type(d['reasons']).__name__", got, sizeof(got));
    assert_string_equal(got, "list");
    /* trustd runs without --model-file: the model built into it. */
    py(r.out, "d['model_source']", got, sizeof(got));
    assert_string_equal(got, "built-in");
    assert_true(py_num(r.out, "d['key_signals']['orders_paid_30d']") ==
                hget("trust:{m-01}:signals", "orders_paid_30d"));
}

static void test_signals_lists_every_signal(void **state) {
    run_t r;

    ctl(&r, "signals", "m-03", NULL);
    expect_exit(&r, 0);
    assert_true(file_contains(r.out, "refund_rate_30d"));
    ctl(&r, "--json", "signals", "m-03", NULL);
    expect_exit(&r, 0);
    expect_json(r.out);
    assert_true(py_num(r.out, "len(d['signals'])") == TD_SIG__CNT);
    assert_true(py_num(r.out, "[s['value'] for s in d['signals'] if "
                              "s['name'] == 'orders_paid_total'][0]") ==
                hget("trust:{m-03}:signals", "orders_paid_total"));
    assert_true(py_num(r.out, "d['as_of_ms']") ==
                hget("trust:{m-03}:signals", "as_of_ms"));
}

/* ---- history ---- */

/* A history written by hand, exactly as printed. */
static void test_history_prints_each_point_oldest_first(void **state) {
    unsigned char h[3 * TD_HISTORY_POINT];
    size_t len = 0;
    run_t r;
    char got[256];
    static const struct {
        int64_t ms;
        double score;
        int tier;
        double conf;
    } pts[3] = {{1700000000999LL, 55.5, 3, 0.5},
                {1700086400000LL, 61.25, 4, 0.75},
                {1700172800000LL, 100, 5, 1}};
    (void)state;

    for (int i = 0; i < 3; i++) {
        unsigned char head[TD_HISTORY_HEAD];
        td_history_head(head, pts[i].ms, pts[i].score, pts[i].tier,
                        pts[i].conf);
        len = td_history_append(h, h, len, head, (uint64_t)(7 + i));
    }
    freeReplyObject(redisCommand(rc, "SET trust:{m-hist}:history %b", h, len));
    ctl(&r, "history", "m-hist", NULL);
    expect_exit(&r, 0);
    char *out = slurp(r.out);
    assert_string_equal(out,
                        "time                   score tier confidence  "
                        "version\n"
                        "2023-11-14T22:13:20Z   55.50    3       0.50        "
                        "7\n"
                        "2023-11-15T22:13:20Z   61.25    4       0.75        "
                        "8\n"
                        "2023-11-16T22:13:20Z  100.00    5       1.00        "
                        "9\n");
    free(out);
    ctl(&r, "--json", "history", "m-hist", NULL);
    expect_exit(&r, 0);
    expect_json(r.out);
    py(r.out, "d['merchant_id']", got, sizeof(got));
    assert_string_equal(got, "m-hist");
    assert_true(py_num(r.out, "len(d['points'])") == 3);
    py(r.out, "d['points'][0]['time']", got, sizeof(got));
    assert_string_equal(got, "2023-11-14T22:13:20Z");
    assert_true(py_num(r.out, "d['points'][0]['ms']") == 1700000000000.0);
    assert_true(py_num(r.out, "d['points'][1]['score']") == 61.25);
    assert_true(py_num(r.out, "d['points'][1]['tier']") == 4);
    assert_true(py_num(r.out, "d['points'][1]['confidence']") == 0.75);
    assert_true(py_num(r.out, "d['points'][2]['version']") == 9);

    /* a merchant with signals but no score yet: no points, exit 0 */
    freeReplyObject(
        redisCommand(rc, "HSET trust:{m-unscored}:signals as_of_ms 1"));
    ctl(&r, "--json", "history", "m-unscored", NULL);
    expect_exit(&r, 0);
    assert_true(py_num(r.out, "len(d['points'])") == 0);
    ctl(&r, "history", "m-unscored", NULL);
    expect_exit(&r, 0);
    assert_true(file_contains(r.out, "no score published"));
}

/* trustd's own history of m-01: one point per score version, the last
 * the score hash's. */
static void test_history_shows_what_trustd_published(void **state) {
    run_t r;
    int stable = 0;
    double v = NAN, score = NAN;
    redisReply *h = NULL;
    (void)state;

    for (int attempt = 0; attempt < 20 && !stable; attempt++) {
        if (h) freeReplyObject(h);
        v = hget("trust:{m-01}:score", "version");
        score = hget("trust:{m-01}:score", "score");
        h = redisCommand(rc, "GET trust:{m-01}:history");
        ctl(&r, "--json", "history", "m-01", NULL);
        expect_exit(&r, 0);
        stable = hget("trust:{m-01}:score", "version") == v;
    }
    assert_true(stable);
    assert_non_null(h);
    assert_int_equal(h->type, REDIS_REPLY_STRING);
    expect_json(r.out);
    int n = (int)(h->len / TD_HISTORY_POINT);
    assert_true(n >= 1);
    assert_true(py_num(r.out, "len(d['points'])") == n);
    assert_true(py_num(r.out, "d['points'][-1]['version']") == v);
    assert_true(fabs(py_num(r.out, "d['points'][-1]['score']") - score) <=
                0.0051);
    assert_true(py_num(r.out, "d['points'][-1]['tier']") ==
                hget("trust:{m-01}:score", "tier"));
    /* oldest first, by version */
    char got[64];
    py(r.out,
       "all(d['points'][i]['version'] + 1 == d['points'][i+1]['version'] "
       "for i in range(len(d['points'])-1))",
       got, sizeof(got));
    assert_string_equal(got, "True");
    freeReplyObject(h);
    ctl(&r, "history", "m-01", NULL);
    expect_exit(&r, 0);
    assert_true(file_contains(r.out, "time "));

    ctl(&r, "history", "m-nobody", NULL);
    expect_exit(&r, 2);
    assert_true(file_contains(r.err, "unknown merchant 'm-nobody'"));
}

/* ---- top, bottom ---- */

static void check_rank(const char *cmd, const char *zcmd) {
    redisReply *z = redisCommand(rc, "%s trust:scores 0 2 WITHSCORES", zcmd);
    run_t r;
    char expr[128], got[256];

    assert_non_null(z);
    assert_int_equal(z->elements, 6);
    ctl(&r, "--json", cmd, "3", NULL);
    expect_exit(&r, 0);
    expect_json(r.out);
    assert_true(py_num(r.out, "len(d)") == 3);
    for (int i = 0; i < 3; i++) {
        snprintf(expr, sizeof(expr), "d[%d]['merchant_id']", i);
        py(r.out, expr, got, sizeof(got));
        assert_string_equal(got, z->element[2 * i]->str);
        snprintf(expr, sizeof(expr), "d[%d]['score']", i);
        assert_true(py_num(r.out, expr) ==
                    strtod(z->element[2 * i + 1]->str, NULL));
        snprintf(expr, sizeof(expr), "d[%d]['rank']", i);
        assert_true(py_num(r.out, expr) == i + 1);
    }
    /* ordered by score: descending for top, ascending for bottom */
    py(r.out,
       strcmp(cmd, "top") ? "all(d[i]['score'] <= d[i+1]['score'] for i in "
                            "range(len(d)-1))"
                          : "all(d[i]['score'] >= d[i+1]['score'] for i in "
                            "range(len(d)-1))",
       got, sizeof(got));
    assert_string_equal(got, "True");

    ctl(&r, cmd, "3", NULL);
    expect_exit(&r, 0);
    for (int i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof(line), "\n%-5d %-24s", i + 1,
                 z->element[2 * i]->str);
        assert_true(file_contains(r.out, line));
    }
    freeReplyObject(z);
}

static void test_top_and_bottom_follow_the_scores(void **state) {
    check_rank("top", "ZREVRANGE");
    check_rank("bottom", "ZRANGE");
}

/* ---- errors ---- */

static void test_unknown_merchant_exits_2(void **state) {
    run_t r;

    ctl(&r, "get", "m-nobody", NULL);
    expect_exit(&r, 2);
    assert_true(file_contains(r.err, "unknown merchant 'm-nobody'"));
    ctl(&r, "--json", "signals", "m-nobody", NULL);
    expect_exit(&r, 2);
    assert_true(file_contains(r.err, "unknown merchant 'm-nobody'"));
}

static void test_unreachable_redis_exits_3(void **state) {
    char addr[64];
    run_t r;

    /* A port nothing listens on; later flags override earlier ones. */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", td_h_free_port());
    ctl(&r, "--redis", addr, "get", "m-01", NULL);
    expect_exit(&r, 3);
    assert_true(file_contains(r.err, "cannot reach Redis"));
    ctl(&r, "--redis", addr, "--json", "top", "3", NULL);
    expect_exit(&r, 3);
}

static void test_bad_usage_exits_1(void **state) {
    run_t r;

    ctl(&r, "frobnicate", NULL);
    expect_exit(&r, 1);
    ctl(&r, "top", "zero", NULL);
    expect_exit(&r, 1);
    ctl(&r, "dlq", "replay", "not-a-spec", NULL);
    expect_exit(&r, 1);
    ctl(&r, "get", "m-01", "--follow", NULL);
    expect_exit(&r, 1);
}

/* ---- offsets ---- */

static int offsets_caught_up(void *arg) {
    run_t *r = arg;
    char got[16];
    ctl(r, "--json", "offsets", NULL);
    if (r->status != 0) return 0;
    py(r->out,
       "len(d) == 6 and all(p['stored'] == p['high_watermark'] and "
       "p['lag'] == 0 for p in d)",
       got, sizeof(got));
    return !strcmp(got, "True");
}

static void test_offsets_show_what_trustd_consumed(void **state) {
    static const char *topics[] = {"orders", "reviews", "refunds"};
    run_t r;

    if (!td_h_poll(offsets_caught_up, &r, 30000)) {
        show(&r);
        fail_msg("stored offsets never reached the high watermarks");
    }
    expect_json(r.out);
    for (int k = 0; k < TD_EV__CNT; k++) {
        char expr[160];
        /* Every message produced was consumed and its offset stored. */
        snprintf(expr, sizeof(expr),
                 "sum(p['stored'] for p in d if p['topic'] == '%s')",
                 topics[k]);
        assert_int_equal((int)py_num(r.out, expr), produced[k]);
        for (int p = 0; p < 2; p++) {
            char key[64];
            snprintf(key, sizeof(key), "trust:part:{%s/%d}", topics[k], p);
            snprintf(expr, sizeof(expr),
                     "[p['stored'] for p in d if p['topic'] == '%s' and "
                     "p['partition'] == %d][0]",
                     topics[k], p);
            assert_true(py_num(r.out, expr) == hget(key, "committed"));
        }
    }
    ctl(&r, "offsets", NULL);
    expect_exit(&r, 0);
    assert_true(file_contains(r.out, "orders/1"));
    assert_true(file_contains(r.out, "total lag 0\n"));
}

/* ---- scores ---- */

static void produce_score(const char *m, int64_t version, double score) {
    td_h_producer_t *p = td_h_producer_new(kafka.bootstrap);
    char errstr[256], buf[2048];
    td_codec_t *codec = td_codec_new(errstr, sizeof(errstr));
    td_score_rec_t rec;
    size_t len;

    assert_non_null(codec);
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.merchant_id, sizeof(rec.merchant_id), "%s", m);
    rec.score = score;
    rec.tier = 3;
    rec.confidence = 0.5;
    rec.version = version;
    rec.model_version = "it-test";
    rec.as_of_ms = td_now_ms() - HOUR;
    assert_int_equal(td_codec_encode_score(codec, &rec, buf, sizeof(buf), &len,
                                           errstr, sizeof(errstr)),
                     TD_OK);
    assert_int_equal(
        td_h_produce_raw(p, "trust-scores", -1, m, strlen(m), buf, len), 0);
    assert_int_equal(td_h_producer_flush(p), 0);
    td_h_producer_destroy(p);
    td_codec_destroy(codec);
}

static void test_scores_keep_the_highest_version(void **state) {
    char expr[160], got[64];
    run_t r;

    /* A stale version after trustd's, and for another merchant a newer
     * version followed by an older one and a duplicate. */
    produce_score("m-01", 0, 1.0);
    produce_score("m-zz", 5, 50.0);
    produce_score("m-zz", 3, 30.0);
    produce_score("m-zz", 5, 55.0);

    ctl(&r, "--json", "scores", NULL);
    expect_exit(&r, 0);
    expect_json(r.out);
    assert_true(py_num(r.out, "len(d)") == NMERCH + 1);
    for (int i = 0; i < NMERCH; i++) {
        char key[64];
        snprintf(key, sizeof(key), "trust:{%s}:score", merchants[i]);
        snprintf(expr, sizeof(expr),
                 "[s['version'] for s in d if s['merchant_id'] == '%s'][0]",
                 merchants[i]);
        assert_true(py_num(r.out, expr) == hget(key, "pub_version"));
        snprintf(expr, sizeof(expr),
                 "[s['score'] for s in d if s['merchant_id'] == '%s'][0]",
                 merchants[i]);
        assert_true(py_num(r.out, expr) == hget(key, "pub_score"));
    }
    py(r.out,
       "[(s['version'], float(s['score'])) for s in d if "
       "s['merchant_id'] == "
       "'m-zz'][0]",
       got, sizeof(got));
    assert_string_equal(got, "(5, 50.0)");
    py(r.out,
       "[s['merchant_id'] for s in d] == sorted(s['merchant_id'] for s "
       "in d)",
       got, sizeof(got));
    assert_string_equal(got, "True");

    ctl(&r, "scores", NULL);
    expect_exit(&r, 0);
    assert_true(file_contains(r.out, "m-zz"));
    assert_true(file_contains(r.out, "3 duplicate or stale records dropped"));
}

typedef struct follow_s {
    const char *path;
    const char *needle;
    int lines;
} follow_t;

static int follow_has(void *arg) {
    follow_t *f = arg;
    char *s = slurp(f->path);
    int n = 0, ok;
    for (char *p = s; (p = strchr(p, '\n')); p++) {
        n++;
    }
    ok = n >= f->lines && (!f->needle || strstr(s, f->needle));
    free(s);
    return ok;
}

static void test_scores_follow_prints_newer_versions(void **state) {
    td_h_proc_t p;
    char *argv[] = {(char *)td_h_bin("trustctl"),
                    "--brokers",
                    kafka.bootstrap,
                    "--json",
                    "scores",
                    "--follow",
                    NULL};
    follow_t f = {NULL, NULL, NMERCH + 1};
    char *s;
    int st;

    assert_int_equal(td_h_spawn(&p, "follow", argv), 0);
    f.path = p.log;
    if (!td_h_poll(follow_has, &f, 30000)) {
        td_h_dump_log(&p);
        fail_msg("no snapshot from scores --follow");
    }
    produce_score("m-zz", 7, 70.0);
    produce_score("m-zz", 6, 60.0); /* stale: never printed */
    produce_score("m-zz", 8, 80.0);
    f.needle = "\"version\":8";
    f.lines = NMERCH + 3;
    if (!td_h_poll(follow_has, &f, 30000)) {
        td_h_dump_log(&p);
        fail_msg("scores --follow did not print version 8");
    }
    td_h_signal(&p, SIGTERM);
    st = td_h_wait(&p, 10000);
    assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    s = slurp(p.log);
    assert_non_null(strstr(s, "\"version\":7"));
    assert_null(strstr(s, "\"version\":6"));
    free(s);
}

/* ---- dead letters ---- */

static void test_dlq_list_shows_the_dead_letter(void **state) {
    char expr[256], got[256];
    run_t r;

    ctl(&r, "--json", "dlq", "list", NULL);
    expect_exit(&r, 0);
    expect_json(r.out);
    snprintf(expr, sizeof(expr),
             "[(x['source_topic'], x['source_partition'], "
             "x['source_offset'], x['error_code'], x['value_bytes']) for x in "
             "d if x['key'] == '%s']",
             BAD_KEY);
    py(r.out, expr, got, sizeof(got));
    snprintf(expr, sizeof(expr), "[('orders', 1, %lld, 'bad_magic', %zu)]",
             (long long)garbage_offset, strlen(GARBAGE));
    assert_string_equal(got, expr);
    py(r.out, "d[0]['reason'] != '' and d[0]['time_ms'] > 0", got, sizeof(got));
    assert_string_equal(got, "True");

    ctl(&r, "dlq", "list", "5", NULL);
    expect_exit(&r, 0);
    assert_true(file_contains(r.out, "bad_magic"));
    assert_true(file_contains(r.out, BAD_KEY));
    snprintf(expr, sizeof(expr), "orders/1@%lld", (long long)garbage_offset);
    assert_true(file_contains(r.out, expr));
}

static void test_dlq_replay_puts_the_same_bytes_back(void **state) {
    char pos[64], src[64], expr[256];
    int two = 2;
    run_t r;

    ctl(&r, "--json", "dlq", "list", NULL);
    expect_exit(&r, 0);
    snprintf(expr, sizeof(expr),
             "[f\"{x['dlq_partition']}@{x['dlq_offset']}\" for x in d if "
             "x['key'] == '%s'][0]",
             BAD_KEY);
    py(r.out, expr, pos, sizeof(pos));
    assert_int_equal(garbage_copies(), 1);

    /* By its place in the dead-letter topic. */
    ctl(&r, "dlq", "replay", pos, NULL);
    expect_exit(&r, 0);
    assert_true(file_contains(r.out, "replayed"));
    assert_int_equal(garbage_copies(), 2);

    /* By its source position; trustd dead-letters the first copy meanwhile,
     * under another source offset, so only the original matches. */
    assert_true(td_h_poll(dead_lettered, &two, 30000));
    snprintf(src, sizeof(src), "orders/1@%lld", (long long)garbage_offset);
    ctl(&r, "--json", "dlq", "replay", "--source", src, NULL);
    expect_exit(&r, 0);
    expect_json(r.out);
    assert_true(py_num(r.out, "len(d)") == 1);
    py(r.out, "(d[0]['topic'], d[0]['partition'], d[0]['error_code'])", expr,
       sizeof(expr));
    assert_string_equal(expr, "('orders', 1, 'bad_magic')");
    assert_int_equal(garbage_copies(), 3);

    /* One spec not found: nothing at all is replayed. */
    ctl(&r, "dlq", "replay", pos, "0@999999", NULL);
    expect_exit(&r, 2);
    assert_true(file_contains(r.err, "no dead letter at 0@999999"));
    ctl(&r, "dlq", "replay", "--source", "orders/0@999999", NULL);
    expect_exit(&r, 2);
    assert_int_equal(garbage_copies(), 3);
}

static void test_reference_prints_the_signal_page(void **state) {
    run_t r;

    ctl(&r, "reference", NULL);
    expect_exit(&r, 0);
    assert_true(file_contains(r.out, "refund_rate_30d"));
    assert_true(file_contains(r.out, "|"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_prints_score_as_text_and_json),
        cmocka_unit_test(test_signals_lists_every_signal),
        cmocka_unit_test(test_history_prints_each_point_oldest_first),
        cmocka_unit_test(test_history_shows_what_trustd_published),
        cmocka_unit_test(test_top_and_bottom_follow_the_scores),
        cmocka_unit_test(test_unknown_merchant_exits_2),
        cmocka_unit_test(test_unreachable_redis_exits_3),
        cmocka_unit_test(test_bad_usage_exits_1),
        cmocka_unit_test(test_offsets_show_what_trustd_consumed),
        cmocka_unit_test(test_scores_keep_the_highest_version),
        cmocka_unit_test(test_scores_follow_prints_newer_versions),
        cmocka_unit_test(test_dlq_list_shows_the_dead_letter),
        cmocka_unit_test(test_dlq_replay_puts_the_same_bytes_back),
        cmocka_unit_test(test_reference_prints_the_signal_page),
    };
    return cmocka_run_group_tests_name("it_trustctl", tests, setup, teardown);
}
