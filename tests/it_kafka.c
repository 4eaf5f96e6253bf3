/*
 * it_kafka.c - what only a real Apache Kafka can show (td-kafka --apache;
 * this suite always asks for one, whatever TD_KAFKA says):
 *
 *   - input topics grown 4 -> 8 partitions (CreatePartitions) mid-stream
 *     under two workers, some merchants moved to the new partitions: every
 *     signal equals the reference fold, and the new partitions are read
 *     within the metadata refresh interval;
 *   - on three brokers (replication factor 3, min.insync.replicas 2) the
 *     leader of busy partitions killed (SIGKILL) mid-stream and restarted:
 *     signals exact, publication and dead-lettering go on;
 *   - trust-scores compacted with small segments: after the cleaner ran,
 *     every merchant's last record is still there and `trustctl scores`
 *     agrees with Redis;
 *   - faults: all brokers down at start, an input topic that does not exist:
 *     a clear log line and a metric each, no crash, no event lost.
 *
 * kill -9 and 1 -> 3 -> 2 scaling on the real coordinator's timings are
 * it_exactly_once run with TD_KAFKA=apache (make test-kafka).
 *
 * The jars come from `make kafka-jars`; without them every test fails
 * saying so. Seeded: TD_SEED=<n> reproduces a run.
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "codec.h"
#include "common.h"
#include "harness.h"
#include "loadgen.h"

#define REFRESH_MS 3000 /* topic.metadata.refresh.interval.ms in tests */
/* A grown topic's new partitions are assigned after the next metadata
 * refresh plus one cooperative rebalance; then one flush writes them. */
#define REBALANCE_SLACK_MS 5000

typedef struct world_s {
    td_h_redis_t redis;
    td_h_kafka_t kafka;
    td_h_producer_t *prod;
    redisContext *rc;
    td_loadgen_t *gen;
    td_h_ref_t *ref;
    td_h_proc_t w[2]; /* trustd workers */
    int http[2];      /* their /metrics ports */
    int nw;
    long produced;
} world_t;

static uint64_t seed;
static char last_diff[512];

static uint64_t rnd(void) {
    return td_h_xorshift(&seed);
}

static void world_start(world_t *w, const char *const *kafka_args) {
    td_loadgen_conf_t lc;
    char errstr[256];

    memset(w, 0, sizeof(*w));
    assert_int_equal(td_h_redis_start(&w->redis, NULL), 0);
    if (td_h_kafka_start(&w->kafka, kafka_args) != 0)
        fail_msg("no real Apache Kafka (see td-kafka's log above; `make "
                 "kafka-jars` fetches it from Maven Central)");
    w->prod = td_h_producer_new(w->kafka.bootstrap);
    w->rc = td_h_redis_connect(&w->redis);
    assert_non_null(w->rc);
    td_loadgen_conf_defaults(&lc);
    lc.seed = rnd();
    lc.merchants = 200;
    lc.start_ms = td_now_ms() - 3 * 86400000LL;
    w->gen = td_loadgen_new(&lc, errstr, sizeof(errstr));
    assert_non_null(w->gen);
    w->ref = td_h_ref_new();
}

static void world_stop(world_t *w) {
    for (int i = 0; i < w->nw; i++)
        td_h_stop_graceful(&w->w[i], 20000);
    td_h_ref_destroy(w->ref);
    td_loadgen_destroy(w->gen);
    td_h_producer_destroy(w->prod);
    if (w->rc) redisFree(w->rc);
    td_h_kafka_stop(&w->kafka);
    td_h_redis_stop(&w->redis);
    free(w);
}

/* Starts worker i with its own /metrics port and extra args. */
static void worker_start(world_t *w, const char *const *extra) {
    const char *args[24];
    char port[16];
    int i = w->nw++, n = 0;

    w->http[i] = td_h_free_port();
    snprintf(port, sizeof(port), "%d", w->http[i]);
    args[n++] = "--flush-max-events";
    args[n++] = "300";
    args[n++] = "--http-port";
    args[n++] = port;
    for (int k = 0; extra && extra[k] && n < 22; k++)
        args[n++] = extra[k];
    args[n] = NULL;
    assert_int_equal(td_h_trustd_start(&w->w[i], "trustd", &w->kafka, &w->redis,
                                       "g-kafka", args),
                     0);
}

/* Sum of one series over the workers' /metrics (absent counts 0). */
static double metric_sum(world_t *w, const char *series) {
    double sum = 0;
    for (int i = 0; i < w->nw; i++) {
        double v = td_h_metric(w->http[i], series);
        if (!isnan(v)) sum += v;
    }
    return sum;
}

/* Produces n generated events: to partition route(ev) when route is set
 * and answers >= 0, else by key. */
static void
produce(world_t *w, int n, int32_t (*route)(const td_event_t *, void *)) {
    assert_int_equal(td_h_produce_gen(w->prod, w->gen, w->ref, n, route, NULL),
                     0);
    w->produced += n;
}

static void wait_committed(world_t *w, long long target) {
    if (!td_h_committed_reached(w->rc, target, 90000)) {
        for (int i = 0; i < w->nw; i++)
            td_h_dump_log(&w->w[i]);
        fail_msg("trustd committed %lld of %lld offsets in 90 s",
                 td_h_committed_sum(w->rc), target);
    }
}

static int all_equal(void *arg) {
    world_t *w = arg;
    return td_h_ref_equal(w->ref, w->rc, last_diff, sizeof(last_diff));
}

/* Waits until Redis equals the reference fold of everything produced. */
static void assert_exact(world_t *w) {
    if (!td_h_poll(all_equal, w, 120000)) {
        for (int i = 0; i < w->nw; i++)
            td_h_dump_log(&w->w[i]);
        setenv("TD_KEEP_TMP", "1", 1);
        fprintf(stderr, "logs and data kept in %s\n", td_h_tmpdir());
        fail_msg("signals differ from the reference fold: %s", last_diff);
    }
}

static void assert_alive(world_t *w) {
    for (int i = 0; i < w->nw; i++) {
        if (td_h_wait(&w->w[i], 0) != -1) {
            td_h_dump_log(&w->w[i]);
            fail_msg("trustd worker %d exited", i);
        }
    }
}

typedef struct grep_s {
    world_t *w;
    const char *re; /* basic regular expression, no single quote */
} grep_t;

/* td_h_poll predicate: some worker's log has a line matching re. */
static int logged(void *arg) {
    const grep_t *g = arg;
    char cmd[900];
    for (int i = 0; i < g->w->nw; i++) {
        snprintf(cmd, sizeof(cmd), "grep -q -- '%s' '%s'", g->re,
                 g->w->w[i].log);
        if (system(cmd) == 0) return 1;
    }
    return 0;
}

static void assert_logged(world_t *w, const char *re, int timeout_ms) {
    grep_t g = {w, re};
    if (!td_h_poll(logged, &g, timeout_ms)) {
        for (int i = 0; i < w->nw; i++)
            td_h_dump_log(&w->w[i]);
        fail_msg("no worker logged /%s/", re);
    }
}

/* ---- partitions added mid-stream ---- */

/* Half of the merchants (by id hash) move to the new partitions 4..7. */
static int32_t to_new_partitions(const td_event_t *ev, void *arg) {
    (void)arg;
    uint32_t h = td_hash_id(ev->merchant_id.ptr, ev->merchant_id.len);
    return h % 2 ? (int32_t)(4 + (h / 2) % 4) : -1;
}

typedef struct newparts_s {
    world_t *w;
    const char *topic;
} newparts_t;

/* Every new partition of orders has a committed offset. */
static int new_partitions_read(void *arg) {
    newparts_t *np = arg;
    for (int p = 4; p < 8; p++) {
        redisReply *r = redisCommand(
            np->w->rc, "HGET trust:part:{%s/%d} committed", np->topic, p);
        int ok = r && r->type == REDIS_REPLY_STRING && atoll(r->str) > 0;
        if (r) freeReplyObject(r);
        if (!ok) return 0;
    }
    return 1;
}

static void test_partitions_added_mid_stream_two_workers(void **state) {
    static const char *const kargs[] = {"--partitions", "4", NULL};
    static const char *const fast_refresh[] = {
        "-X", "topic.metadata.refresh.interval.ms=3000", NULL};
    static const char *const topics[] = {"orders", "reviews", "refunds"};
    world_t *w = malloc(sizeof(*w));
    newparts_t np = {w, "orders"};
    int64_t t_grow, took;
    char cmd[64];
    (void)state;

    world_start(w, kargs);
    produce(w, 3000, NULL);
    worker_start(w, fast_refresh);
    worker_start(w, fast_refresh);
    wait_committed(w, 1000);
    produce(w, 1000, NULL); /* in flight while the topics grow */
    for (int k = 0; k < 3; k++) {
        snprintf(cmd, sizeof(cmd), "grow %s 8", topics[k]);
        assert_int_equal(td_h_kafka_cmd(&w->kafka, cmd), 0);
    }
    t_grow = td_mono_ms();
    /* A producer that knows the new partitions (a running one would learn
     * them at its own metadata refresh). */
    td_h_producer_destroy(w->prod);
    w->prod = td_h_producer_new(w->kafka.bootstrap);
    produce(w, 3000, to_new_partitions);
    if (!td_h_poll(new_partitions_read, &np,
                   REFRESH_MS + REBALANCE_SLACK_MS + 30000)) {
        td_h_dump_log(&w->w[0]);
        td_h_dump_log(&w->w[1]);
        fail_msg("orders partitions 4..7 not read");
    }
    took = td_mono_ms() - t_grow;
    print_message("[  FIGURE  ] new partitions read %lld ms after "
                  "CreatePartitions (refresh interval %d ms)\n",
                  (long long)took, REFRESH_MS);
    assert_true(took <= REFRESH_MS + REBALANCE_SLACK_MS);
    produce(w, 1000, to_new_partitions);
    assert_exact(w);
    assert_logged(w, "input topic orders grew from 4 to 8 partitions", 1000);
    assert_true(metric_sum(w, "trustd_kafka_events_total{event="
                              "\"partitions_added\"}") >= 1);
    assert_alive(w);
    world_stop(w);
}

/* ---- a broker killed ---- */

typedef struct scan_s {
    long records;
    long long span; /* sum over partitions of last offset + 1 */
    int64_t last[64];
} scan_t;

static void scan_cb(const rd_kafka_message_t *m, void *arg) {
    scan_t *s = arg;
    s->records++;
    if (m->partition < 64 && m->offset + 1 > s->last[m->partition])
        s->last[m->partition] = m->offset + 1;
}

static scan_t scan(world_t *w, const char *topic) {
    scan_t s;
    memset(&s, 0, sizeof(s));
    td_h_consume_all(w->kafka.bootstrap, topic, scan_cb, &s);
    for (int p = 0; p < 64; p++)
        s.span += s.last[p];
    return s;
}

static void produce_garbage(world_t *w, int n) {
    for (int i = 0; i < n; i++)
        assert_int_equal(
            td_h_produce_raw(w->prod, "orders", -1, "m-bad", 5, "not avro", 8),
            0);
    assert_int_equal(td_h_producer_flush(w->prod), 0);
}

typedef struct grows_s {
    world_t *w;
    const char *topic;
    long more_than;
} grows_t;

static int topic_grew(void *arg) {
    grows_t *g = arg;
    return scan(g->w, g->topic).records > g->more_than;
}

static void test_leader_killed_on_three_brokers(void **state) {
    static const char *const kargs[] = {"--brokers-count", "3", "--partitions",
                                        "4", NULL};
    world_t *w = malloc(sizeof(*w));
    char leader[16], cmd[32];
    long scores_before, dlq_before;
    (void)state;

    world_start(w, kargs);
    produce(w, 3000, NULL);
    produce_garbage(w, 5);
    worker_start(w, NULL);
    worker_start(w, NULL);
    wait_committed(w, 1500);
    assert_int_equal(
        td_h_kafka_query(&w->kafka, "leader orders 0", leader, sizeof(leader)),
        0);
    assert_true(atoi(leader) >= 1);
    /* The garbage follows the 3000 events: wait for its dead letters,
     * not just for some committed offsets. */
    grows_t dlq0 = {w, "trust-dlq", 4};
    assert_true(td_h_poll(topic_grew, &dlq0, 60000));
    scores_before = scan(w, "trust-scores").records;
    dlq_before = scan(w, "trust-dlq").records;
    assert_true(dlq_before >= 5);
    produce(w, 1000, NULL);
    snprintf(cmd, sizeof(cmd), "kill %s", leader);
    assert_int_equal(td_h_kafka_cmd(&w->kafka, cmd), 0);
    /* Two of three replicas left: min.insync.replicas is met, so producing,
     * publishing and dead-lettering go on without the dead broker. */
    produce(w, 2000, NULL);
    produce_garbage(w, 5);
    grows_t scores = {w, "trust-scores", scores_before};
    grows_t dlq = {w, "trust-dlq", dlq_before + 4};
    assert_true(td_h_poll(topic_grew, &scores, 60000));
    assert_true(td_h_poll(topic_grew, &dlq, 60000));
    snprintf(cmd, sizeof(cmd), "start %s", leader);
    assert_int_equal(td_h_kafka_cmd(&w->kafka, cmd), 0);
    produce(w, 1000, NULL);
    assert_exact(w);
    assert_alive(w);
    world_stop(w);
}

/* ---- compaction of trust-scores ---- */

static int time_passed(void *arg) {
    return td_mono_ms() >= *(const int64_t *)arg;
}

static int compacted(void *arg) {
    world_t *w = arg;
    scan_t s = scan(w, "trust-scores");
    return s.records > 0 && s.records < s.span;
}

typedef struct ctl_score_s {
    char m[32];
    double score;
    long long version;
} ctl_score_t;

/* Runs `trustctl scores` and parses its lines into out (at most max). */
static int trustctl_scores(world_t *w, ctl_score_t *out, int max) {
    char *argv[] = {(char *)td_h_bin("trustctl"),
                    "--brokers",
                    w->kafka.bootstrap,
                    "--redis",
                    w->redis.addr,
                    "scores",
                    NULL};
    char line[512];
    td_h_proc_t p;
    FILE *fp;
    int n = 0, st;

    assert_int_equal(td_h_spawn(&p, "trustctl-scores", argv), 0);
    st = td_h_wait(&p, 60000);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        td_h_dump_log(&p);
        fail_msg("trustctl scores failed (status %d)", st);
    }
    assert_non_null(fp = fopen(p.log, "r"));
    while (n < max && fgets(line, sizeof(line), fp)) {
        int tier;
        double conf;
        if (sscanf(line, "%31s %lf %d %lf %lld", out[n].m, &out[n].score, &tier,
                   &conf, &out[n].version) == 5 &&
            out[n].m[0] == 'm')
            n++;
    }
    fclose(fp);
    return n;
}

static void test_trust_scores_compacted_keeps_every_last_record(void **state) {
    static const char *const kargs[] = {
        "--partitions",
        "2",
        "--topic",
        "trust-scores=2",
        "--config",
        "trust-scores:segment.ms=500",
        "--config",
        "trust-scores:min.cleanable.dirty.ratio=0.01",
        "--config",
        "trust-scores:delete.retention.ms=100",
        NULL};
    /* Every flush republishes every merchant it touched: many records per
     * key for the cleaner to remove. */
    static const char *const every[] = {"--publish-min-step", "0", NULL};
    world_t *w = malloc(sizeof(*w));
    ctl_score_t got[256];
    int n;
    (void)state;

    world_start(w, kargs);
    worker_start(w, every);
    for (int round = 0; round < 6; round++) {
        /* Segments roll on the first record after segment.ms: rounds
         * apart by more than that make one closed segment each. */
        int64_t until = td_mono_ms() + 600;
        produce(w, 400, NULL);
        wait_committed(w, w->produced);
        td_h_poll(time_passed, &until, 2000);
    }
    if (!td_h_poll(compacted, w, 90000)) {
        scan_t s = scan(w, "trust-scores");
        fail_msg("the cleaner never compacted trust-scores (%ld records over "
                 "%lld offsets)",
                 s.records, s.span);
    }
    scan_t after = scan(w, "trust-scores");
    n = trustctl_scores(w, got, 256);
    print_message("[  FIGURE  ] trust-scores compacted: %ld records left of "
                  "%lld published, %d merchants\n",
                  after.records, after.span, n);
    assert_int_equal(n, td_h_ref_count(w->ref));
    for (int i = 0; i < n; i++) {
        redisReply *r = redisCommand(w->rc,
                                     "HMGET trust:{%s}:score "
                                     "pub_score pub_version",
                                     got[i].m);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->element[1]->type, REDIS_REPLY_STRING);
        if (atoll(r->element[1]->str) != got[i].version ||
            fabs(strtod(r->element[0]->str, NULL) - got[i].score) > 0.006)
            fail_msg("%s: trust-scores says %.2f version %lld, Redis %s "
                     "version %s",
                     got[i].m, got[i].score, got[i].version, r->element[0]->str,
                     r->element[1]->str);
        freeReplyObject(r);
    }
    assert_exact(w);
    world_stop(w);
}

/* ---- faults ---- */

static void test_brokers_down_at_start_nothing_lost(void **state) {
    world_t *w = malloc(sizeof(*w));
    (void)state;

    world_start(w, NULL);
    produce(w, 2000, NULL);
    assert_int_equal(td_h_kafka_cmd(&w->kafka, "kill 1"), 0);
    worker_start(w, NULL);
    assert_logged(w, "kafka: no broker of .* answers", 30000);
    assert_true(metric_sum(w, "trustd_kafka_events_total{event="
                              "\"brokers_down\"}") >= 1);
    assert_alive(w);
    assert_int_equal(td_h_kafka_cmd(&w->kafka, "start 1"), 0);
    produce(w, 1000, NULL);
    assert_exact(w);
    world_stop(w);
}

static int missing_topic_gauge(void *arg) {
    world_t *w = arg;
    return td_h_metric(w->http[0], "trustd_topic_partitions{topic="
                                   "\"refunds-later\"}") == -1;
}

/* Produces n generated events; refunds go to refunds (skipped if NULL). */
static void
produce_refunds_to(world_t *w, td_codec_t *codec, int n, const char *refunds) {
    char errstr[256], buf[4096];
    size_t len;

    for (int i = 0; i < n; i++) {
        td_event_t ev;
        td_loadgen_next(w->gen, &ev);
        if (ev.kind != TD_EV_REFUND) {
            assert_int_equal(td_h_produce(w->prod, &ev, -1), 0);
        } else if (refunds) {
            assert_int_equal(td_codec_encode(codec, &ev, buf, sizeof(buf), &len,
                                             errstr, sizeof(errstr)),
                             TD_OK);
            assert_int_equal(td_h_produce_raw(w->prod, refunds, -1,
                                              ev.merchant_id.ptr,
                                              ev.merchant_id.len, buf, len),
                             0);
        } else {
            continue;
        }
        td_h_ref_add(w->ref, &ev);
    }
    assert_int_equal(td_h_producer_flush(w->prod), 0);
}

static void test_missing_input_topic_is_read_once_created(void **state) {
    static const char *const later[] = {
        "--topic-refunds", "refunds-later", "-X",
        "topic.metadata.refresh.interval.ms=3000", NULL};
    world_t *w = malloc(sizeof(*w));
    td_codec_t *codec;
    char errstr[256];
    (void)state;

    world_start(w, NULL);
    assert_non_null(codec = td_codec_new(errstr, sizeof(errstr)));
    worker_start(w, later);
    produce_refunds_to(w, codec, 1500, NULL);
    assert_logged(w, "input topic refunds-later cannot be read", 30000);
    assert_true(metric_sum(w, "trustd_kafka_events_total{event="
                              "\"unknown_topic\"}") >= 1);
    assert_true(td_h_poll(missing_topic_gauge, w, 10000));
    /* The other topics are read meanwhile. */
    assert_exact(w);
    assert_int_equal(td_h_kafka_cmd(&w->kafka, "create refunds-later 2"), 0);
    produce_refunds_to(w, codec, 1500, "refunds-later");
    assert_exact(w);
    td_codec_destroy(codec);
    assert_alive(w);
    world_stop(w);
}

int main(void) {
    const char *s = getenv("TD_SEED");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partitions_added_mid_stream_two_workers),
        cmocka_unit_test(test_leader_killed_on_three_brokers),
        cmocka_unit_test(test_trust_scores_compacted_keeps_every_last_record),
        cmocka_unit_test(test_brokers_down_at_start_nothing_lost),
        cmocka_unit_test(test_missing_input_topic_is_read_once_created),
    };
    /* Real brokers only: that is what this suite is about. */
    setenv("TD_KAFKA", "apache", 1);
    seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)td_now_ms();
    if (!seed) seed = 1;
    printf("it_kafka: TD_SEED=%llu\n", (unsigned long long)seed);
    if (getenv("TD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("TD_TEST_FILTER"));
    return cmocka_run_group_tests_name("it_kafka", tests, NULL, NULL);
}
