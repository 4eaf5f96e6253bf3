/*
 * it_exactly_once.c - the signals in Redis equal one uninterrupted run,
 * whatever happens to the workers: kill -9 at random points, workers joining
 * and leaving, one merchant's events on two partitions read by two workers
 * at once, Redis stopped mid-stream, Kafka request errors and slow brokers.
 *
 * The reference is the events folded in memory with the catalog's own fold
 * and merge (td_sigdelta_add / td_sigstate_merge), which test_store proves
 * equal to the Redis merge and test_signals proves order- and
 * split-independent; every field of every merchant is compared to relative
 * 1e-9, presence included.
 *
 * Seeded: TD_SEED=<n> reproduces a run; TD_SOAK=1 runs more events and more
 * kills (make soak).
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

#include "harness.h"
#include "loadgen.h"
#include "signals.h"

typedef struct world_s {
    td_h_redis_t redis;
    td_h_kafka_t kafka;
    td_h_producer_t *prod;
    redisContext *rc;
    td_loadgen_t *gen;
    td_h_ref_t *ref;
    long produced;
} world_t;

static uint64_t seed;
static int soak;
static int gen_days_ago = 3; /* the generated events start this long ago */

static uint64_t rnd(void) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static void
world_start(world_t *w, const char *const *kafka_args, int merchants) {
    td_loadgen_conf_t lc;
    char errstr[256];

    memset(w, 0, sizeof(*w));
    assert_int_equal(td_h_redis_start(&w->redis, NULL), 0);
    assert_int_equal(td_h_kafka_start(&w->kafka, kafka_args), 0);
    w->prod = td_h_producer_new(w->kafka.bootstrap);
    w->rc = td_h_redis_connect(&w->redis);
    assert_non_null(w->rc);
    td_loadgen_conf_defaults(&lc);
    lc.seed = rnd();
    lc.merchants = merchants;
    lc.start_ms = td_now_ms() - gen_days_ago * 86400000LL;
    w->gen = td_loadgen_new(&lc, errstr, sizeof(errstr));
    assert_non_null(w->gen);
    w->ref = td_h_ref_new();
}

static void world_stop(world_t *w) {
    td_h_ref_destroy(w->ref);
    td_loadgen_destroy(w->gen);
    td_h_producer_destroy(w->prod);
    if (w->rc) redisFree(w->rc);
    td_h_kafka_stop(&w->kafka);
    td_h_redis_stop(&w->redis);
}

/* Returns the partition given as arg: -1 lets the partitioner choose. */
static int32_t fixed_part(const td_event_t *ev, void *arg) {
    (void)ev;
    return *(const int32_t *)arg;
}

/* Produces n generated events (partition chosen by key, or `part`). */
static void produce(world_t *w, int n, int32_t part) {
    assert_int_equal(
        td_h_produce_gen(w->prod, w->gen, w->ref, n, fixed_part, &part), 0);
    w->produced += n;
}

static char last_diff[512];

/* The signals equal the reference, and each merchant's score history has
 * one point per score version. */
static int all_equal(void *arg) {
    world_t *w = arg;
    return td_h_ref_equal(w->ref, w->rc, last_diff, sizeof(last_diff)) &&
           td_h_ref_history_ok(w->ref, NULL, w->rc, last_diff,
                               sizeof(last_diff));
}

/* Waits until Redis equals the reference; fails with the first difference
 * (and the workers' logs) otherwise. */
static void assert_exact(world_t *w, td_h_proc_t *procs, int nproc) {
    if (!td_h_poll(all_equal, w, 90000)) {
        for (int i = 0; i < nproc; i++)
            td_h_dump_log(&procs[i]);
        /* Keep every worker's log and Redis' AOF for the post-mortem. */
        setenv("TD_KEEP_TMP", "1", 1);
        fprintf(stderr, "logs and data kept in %s\n", td_h_tmpdir());
        fail_msg("signals or histories differ from an uninterrupted run: %s",
                 last_diff);
    }
}

static const char *const fast_flush[] = {"--flush-max-events", "300", NULL};

/* kill -9 at random points of the stream, restart, and end exactly right. */
static void test_kill9_at_random_points_ends_exact(void **state) {
    world_t *w = malloc(sizeof(*w));
    int kills = soak ? 20 : 4;
    int chunk = soak ? 6000 : 4000;
    td_h_proc_t p;
    (void)state;

    world_start(w, NULL, 300);
    produce(w, chunk, -1);
    assert_int_equal(td_h_trustd_start(&p, "trustd-crash", &w->kafka, &w->redis,
                                       "g-crash", fast_flush),
                     0);
    for (int k = 0; k < kills; k++) {
        /* Kill once a random share of what was produced is committed. */
        td_h_committed_reached(w->rc,
                               (long long)((double)w->produced *
                                           (0.1 + (double)(rnd() % 80) / 100)),
                               60000);
        if (k % 2 == 0) produce(w, chunk / 2, -1); /* more data while it runs */
        td_h_signal(&p, SIGKILL);
        td_h_wait(&p, 10000);
        assert_int_equal(td_h_trustd_start(&p, "trustd-crash", &w->kafka,
                                           &w->redis, "g-crash", fast_flush),
                         0);
    }
    produce(w, chunk, -1);
    /* A last kill with nothing produced afterwards: the replay of an
     * interrupted flush must complete without new traffic. */
    td_h_committed_reached(w->rc, (long long)w->produced - chunk / 2, 60000);
    td_h_signal(&p, SIGKILL);
    td_h_wait(&p, 10000);
    assert_int_equal(td_h_trustd_start(&p, "trustd-crash", &w->kafka, &w->redis,
                                       "g-crash", fast_flush),
                     0);
    assert_exact(w, &p, 1);
    td_h_stop_graceful(&p, 15000);
    world_stop(w);
    free(w);
}

/* A second SIGTERM exits at once; nothing is corrupted: a restart ends
 * exactly right. */
static void test_second_sigterm_exits_at_once_without_damage(void **state) {
    world_t *w = malloc(sizeof(*w));
    td_h_proc_t p;
    int status;
    (void)state;

    world_start(w, NULL, 100);
    produce(w, 3000, -1);
    assert_int_equal(td_h_trustd_start(&p, "trustd-term", &w->kafka, &w->redis,
                                       "g-term", fast_flush),
                     0);
    assert_true(td_h_committed_reached(w->rc, 500, 60000));
    produce(w, 2000, -1);
    td_h_signal(&p, SIGTERM);
    td_h_signal(&p, SIGTERM);
    status = td_h_wait(&p, 3000);
    assert_int_not_equal(status, -1);
    assert_true(WIFEXITED(status));
    assert_true(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 2);
    assert_int_equal(td_h_trustd_start(&p, "trustd-term", &w->kafka, &w->redis,
                                       "g-term", fast_flush),
                     0);
    assert_exact(w, &p, 1);
    td_h_stop_graceful(&p, 15000);
    world_stop(w);
    free(w);
}

/* Workers join and leave mid-stream (1 -> 3 -> 2, cooperative-sticky). */
static void test_scaling_1_3_2_workers_ends_exact(void **state) {
    world_t *w = malloc(sizeof(*w));
    td_h_proc_t p[3];
    (void)state;

    world_start(w, NULL, 200);
    produce(w, 3000, -1);
    assert_int_equal(td_h_trustd_start(&p[0], "trustd-scale", &w->kafka,
                                       &w->redis, "g-scale", fast_flush),
                     0);
    assert_true(td_h_committed_reached(w->rc, 1000, 60000));
    assert_int_equal(td_h_trustd_start(&p[1], "trustd-scale", &w->kafka,
                                       &w->redis, "g-scale", fast_flush),
                     0);
    assert_int_equal(td_h_trustd_start(&p[2], "trustd-scale", &w->kafka,
                                       &w->redis, "g-scale", fast_flush),
                     0);
    for (int i = 0; i < 5; i++)
        produce(w, 1000, -1);
    td_h_committed_reached(w->rc, (long long)w->produced - 2000, 60000);
    td_h_stop_graceful(&p[2], 15000); /* 3 -> 2 */
    produce(w, 3000, -1);
    assert_exact(w, p, 2);
    td_h_stop_graceful(&p[0], 15000);
    td_h_stop_graceful(&p[1], 15000);
    world_stop(w);
    free(w);
}

/* One merchant's events on two partitions, consumed by two workers at
 * once: the situation right after partitions were added. */
static void test_one_merchant_on_two_partitions_two_workers(void **state) {
    static const char *const kargs[] = {"--topic",   "orders=2", "--topic",
                                        "reviews=2", "--topic",  "refunds=2",
                                        NULL};
    world_t *w = malloc(sizeof(*w));
    td_h_proc_t p[2];
    (void)state;

    world_start(w, kargs, 5);
    for (int i = 0; i < 2; i++)
        assert_int_equal(td_h_trustd_start(&p[i], "trustd-split", &w->kafka,
                                           &w->redis, "g-split", fast_flush),
                         0);
    /* Every event goes to a random partition, whatever its key: each
     * merchant's events are spread over both. */
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 300; i++) {
            td_event_t ev;
            td_loadgen_next(w->gen, &ev);
            assert_int_equal(td_h_produce(w->prod, &ev, (int32_t)(rnd() % 2)),
                             0);
            td_h_ref_add(w->ref, &ev);
            w->produced++;
        }
        assert_int_equal(td_h_producer_flush(w->prod), 0);
    }
    assert_exact(w, p, 2);
    td_h_stop_graceful(&p[0], 15000);
    td_h_stop_graceful(&p[1], 15000);
    world_stop(w);
    free(w);
}

typedef struct grep_s {
    const td_h_proc_t *p;
    const char *re; /* basic regular expression, no single quote */
} grep_t;

/* td_h_poll predicate: the worker's log has a line matching g->re. */
static int log_matches(void *arg) {
    const grep_t *g = arg;
    char cmd[900];
    snprintf(cmd, sizeof(cmd), "grep -q -- '%s' '%s'", g->re, g->p->log);
    return system(cmd) == 0;
}

static int log_has_flush_failures(void *arg) {
    grep_t g = {arg, "flush failed"};
    return log_matches(&g);
}

static int time_passed(void *arg) {
    return td_mono_ms() >= *(const int64_t *)arg;
}

/* Redis stopped mid-stream and restarted with its AOF. */
static void test_redis_outage_mid_stream_ends_exact(void **state) {
    world_t *w = malloc(sizeof(*w));
    td_h_proc_t p;
    (void)state;

    world_start(w, NULL, 200);
    produce(w, 4000, -1);
    assert_int_equal(td_h_trustd_start(&p, "trustd-outage", &w->kafka,
                                       &w->redis, "g-outage", fast_flush),
                     0);
    assert_true(td_h_committed_reached(w->rc, 1500, 60000));
    td_h_redis_stop(&w->redis);
    redisFree(w->rc);
    produce(w, 3000, -1);
    /* trustd notices, retries with backoff; then Redis comes back. */
    assert_true(td_h_poll(log_has_flush_failures, &p, 30000));
    assert_int_equal(td_h_redis_restart(&w->redis), 0);
    w->rc = td_h_redis_connect(&w->redis);
    produce(w, 2000, -1);
    assert_exact(w, &p, 1);
    td_h_stop_graceful(&p, 15000);
    world_stop(w);
    free(w);
}

/* Redis away longer than max.poll.interval.ms while max_merchants fill:
 * trustd pauses its partitions and keeps polling, so it stays in the group
 * (nothing revoked or lost), and ends exact once Redis is back. */
static void test_long_redis_outage_keeps_the_group(void **state) {
    static const char *const args[] = {
        "--flush-max-events",        "300", "--max-merchants", "50", "-X",
        "max.poll.interval.ms=7000", NULL};
    world_t *w = malloc(sizeof(*w));
    td_h_proc_t p;
    int64_t until;
    (void)state;

    world_start(w, NULL, 300);
    produce(w, 2000, -1);
    assert_int_equal(td_h_trustd_start(&p, "trustd-hold", &w->kafka, &w->redis,
                                       "g-hold", args),
                     0);
    assert_true(td_h_committed_reached(w->rc, 1000, 60000));
    td_h_redis_stop(&w->redis);
    redisFree(w->rc);
    produce(w, 3000, -1); /* ~300 merchants: more than max_merchants */
    grep_t paused = {&p, "consumption paused"};
    if (!td_h_poll(log_matches, &paused, 30000)) {
        td_h_dump_log(&p);
        fail_msg("trustd did not pause with max_merchants in memory");
    }
    /* The outage itself: it has to outlast max.poll.interval.ms. */
    until = td_mono_ms() + 9000;
    td_h_poll(time_passed, &until, 20000);
    assert_int_equal(td_h_redis_restart(&w->redis), 0);
    w->rc = td_h_redis_connect(&w->redis);
    produce(w, 1000, -1);
    assert_exact(w, &p, 1);
    grep_t resumed = {&p, "consumption resumed"};
    grep_t left = {&p, "revoked \\|unflushed events dropped\\|poll interval"};
    assert_true(log_matches(&resumed));
    if (log_matches(&left)) {
        td_h_dump_log(&p);
        fail_msg("trustd left the group during the outage");
    }
    td_h_stop_graceful(&p, 15000);
    world_stop(w);
    free(w);
}

/* Kafka request errors, a slow broker and a broker down and up. */
static void test_kafka_faults_ride_through(void **state) {
    static const char *const kargs[] = {"--brokers-count", "3", NULL};
    world_t *w = malloc(sizeof(*w));
    td_h_proc_t p;
    (void)state;

    /* Request errors and rtt are the mock's; it_kafka kills real brokers. */
    if (td_h_kafka_apache()) {
        free(w);
        td_h_kafka_mock_only(&(td_h_kafka_t){.real = 1}, "request errors");
    }
    world_start(w, kargs, 200);
    produce(w, 3000, -1);
    assert_int_equal(td_h_trustd_start(&p, "trustd-kfault", &w->kafka,
                                       &w->redis, "g-kfault", fast_flush),
                     0);
    assert_true(td_h_committed_reached(w->rc, 1000, 60000));
    assert_int_equal(td_h_kafka_cmd(&w->kafka, "errors Fetch 5 "
                                               "NOT_LEADER_FOR_PARTITION"),
                     0);
    assert_int_equal(td_h_kafka_cmd(&w->kafka, "errors Produce 3 "
                                               "REQUEST_TIMED_OUT"),
                     0);
    assert_int_equal(td_h_kafka_cmd(&w->kafka, "rtt 2 300"), 0);
    produce(w, 2000, -1);
    assert_int_equal(td_h_kafka_cmd(&w->kafka, "down 3"), 0);
    assert_int_equal(td_h_kafka_cmd(&w->kafka, "up 3"), 0);
    assert_int_equal(td_h_kafka_cmd(&w->kafka, "rtt 2 0"), 0);
    produce(w, 2000, -1);
    assert_exact(w, &p, 1);
    td_h_stop_graceful(&p, 15000);
    world_stop(w);
    free(w);
}

/* How a scenario sends Redis back in time. */
typedef enum back_e {
    BACK_EMPTY,    /* killed, its disk lost, restarted empty */
    BACK_SNAPSHOT, /* killed, restarted from an older RDB copy */
    BACK_FLUSHALL  /* an operator's FLUSHALL while trustd runs */
} back_t;

static int sh(const char *fmt, const char *a, const char *b) {
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), fmt, a, b);
    return system(cmd);
}

/* Mid-stream, with nworkers workers, Redis loses what it acknowledged
 * (how); the workers detect it, say so, replay from Kafka and end exact. */
static void back_in_time_ends_exact(back_t how, int nworkers) {
    static const char *const no_aof[] = {"--appendonly", "no", NULL};
    world_t *w = malloc(sizeof(*w));
    td_h_proc_t p[2];
    char group[32];
    long long at;

    snprintf(group, sizeof(group), "g-back-%d-%d", (int)how, nworkers);
    world_start(w, NULL, 300);
    produce(w, 3000, -1);
    for (int i = 0; i < nworkers; i++)
        assert_int_equal(td_h_trustd_start(&p[i], "trustd-back", &w->kafka,
                                           &w->redis, group, fast_flush),
                         0);
    assert_true(td_h_committed_reached(w->rc, 1500, 60000));
    if (how == BACK_SNAPSHOT) {
        /* A consistent copy now, then more acknowledged writes after it. */
        redisReply *r = redisCommand(w->rc, "SAVE");
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
        assert_int_equal(
            sh("cp '%s/dump.rdb' '%s/older.rdb'", w->redis.dir, w->redis.dir),
            0);
        at = td_h_committed_sum(w->rc);
        produce(w, 2000, -1);
        assert_true(td_h_committed_reached(w->rc, at + 1500, 60000));
    }
    if (how == BACK_FLUSHALL) {
        redisReply *r = redisCommand(w->rc, "FLUSHALL");
        assert_non_null(r);
        freeReplyObject(r);
    } else {
        td_h_redis_kill(&w->redis);
        redisFree(w->rc);
        assert_int_equal(sh("rm -rf '%s/appendonlydir' '%s/dump.rdb'",
                            w->redis.dir, w->redis.dir),
                         0);
        if (how == BACK_SNAPSHOT) {
            assert_int_equal(sh("mv '%s/older.rdb' '%s/dump.rdb'", w->redis.dir,
                                w->redis.dir),
                             0);
            assert_int_equal(td_h_redis_restart_with(&w->redis, no_aof), 0);
        } else {
            assert_int_equal(td_h_redis_restart(&w->redis), 0);
        }
        w->rc = td_h_redis_connect(&w->redis);
        assert_non_null(w->rc);
    }
    produce(w, 2000, -1);
    assert_exact(w, p, nworkers);
    /* Loud: an error line naming it. Not from every worker: one that got
     * its partitions only after the loss found nothing to replay. */
    int said = 0;
    for (int i = 0; i < nworkers; i++) {
        grep_t g = {&p[i], "went back in time"};
        said += log_matches(&g);
    }
    if (!said) {
        td_h_dump_log(&p[0]);
        fail_msg("no worker reported the rollback");
    }
    for (int i = 0; i < nworkers; i++)
        td_h_stop_graceful(&p[i], 15000);
    world_stop(w);
    free(w);
}

static void test_redis_restarted_empty_ends_exact(void **state) {
    back_in_time_ends_exact(BACK_EMPTY, 1);
}

static void test_redis_restarted_empty_two_workers_ends_exact(void **state) {
    back_in_time_ends_exact(BACK_EMPTY, 2);
}

static void test_redis_restored_older_snapshot_ends_exact(void **state) {
    back_in_time_ends_exact(BACK_SNAPSHOT, 1);
}

static void
test_redis_restored_older_snapshot_two_workers_ends_exact(void **state) {
    back_in_time_ends_exact(BACK_SNAPSHOT, 2);
}

static void test_flushall_mid_stream_ends_exact(void **state) {
    back_in_time_ends_exact(BACK_FLUSHALL, 1);
}

static void test_flushall_mid_stream_two_workers_ends_exact(void **state) {
    back_in_time_ends_exact(BACK_FLUSHALL, 2);
}

/* A rollback whose range Kafka no longer holds: the documented behaviour
 * is to say so and rebuild from what is retained. The embedded Kafka keeps
 * ~5 MB per partition, so 6 MB of (dead-lettered) junk on orders/0 ages
 * out the first orders; Redis then loses everything (FLUSHALL). */
static void
test_rollback_beyond_retention_rebuilds_what_is_retained(void **state) {
    static const char *const kargs[] = {"--topic",   "orders=1", "--topic",
                                        "reviews=1", "--topic",  "refunds=1",
                                        NULL};
    static char junk[100 * 1024];
    world_t *w;
    td_h_proc_t p;
    long long at;
    (void)state;

    /* A real broker keeps what its retention says: ages nothing out here */
    if (td_h_kafka_apache())
        td_h_kafka_mock_only(&(td_h_kafka_t){.real = 1}, "a 5 MB log");
    w = malloc(sizeof(*w));
    world_start(w, kargs, 100);
    /* First events: their orders will age out of Kafka, the reviews and
     * refunds stay; only what stays is in the reference. */
    for (int i = 0; i < 1000; i++) {
        td_event_t ev;
        td_loadgen_next(w->gen, &ev);
        assert_int_equal(td_h_produce(w->prod, &ev, -1), 0);
        if (ev.kind != TD_EV_ORDER) td_h_ref_add(w->ref, &ev);
        w->produced++;
    }
    assert_int_equal(td_h_producer_flush(w->prod), 0);
    assert_int_equal(td_h_trustd_start(&p, "trustd-retention", &w->kafka,
                                       &w->redis, "g-retention", fast_flush),
                     0);
    assert_true(td_h_committed_reached(w->rc, 900, 60000));
    /* Random: the producer compresses (lz4). */
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)rnd();
    at = td_h_committed_sum(w->rc);
    for (int i = 0; i < 60; i++)
        assert_int_equal(td_h_produce_raw(w->prod, "orders", 0, "junk", 4, junk,
                                          sizeof(junk)),
                         0);
    assert_int_equal(td_h_producer_flush(w->prod), 0);
    assert_true(td_h_committed_reached(w->rc, at + 60, 60000));
    redisReply *r = redisCommand(w->rc, "FLUSHALL");
    assert_non_null(r);
    freeReplyObject(r);
    produce(w, 1000, -1);
    assert_exact(w, &p, 1);
    grep_t said = {&p, "kafka no longer retains them"};
    if (!log_matches(&said)) {
        td_h_dump_log(&p);
        fail_msg("the lost range was not reported");
    }
    td_h_stop_graceful(&p, 15000);
    world_stop(w);
    free(w);
}

/* RUNBOOK "Re-read from offset X": with the workers stopped, an operator
 * moves every orders record's `committed` back to half of it (epoch + 1,
 * intent left). Merchants updated since then have watermarks inside the
 * replayed range: the worker says so, reads the range again checking each
 * event against its merchant's watermark, and ends exact. */
static void test_operator_rewind_ends_exact(void **state) {
    world_t *w = malloc(sizeof(*w));
    td_h_proc_t p;
    redisReply *keys;
    (void)state;

    world_start(w, NULL, 300);
    assert_int_equal(td_h_trustd_start(&p, "trustd-rewind", &w->kafka,
                                       &w->redis, "g-rewind", fast_flush),
                     0);
    /* In steps, so that merchants' watermarks are many flush points. */
    for (int i = 1; i <= 8; i++) {
        produce(w, 500, -1);
        assert_true(td_h_committed_reached(w->rc, 500 * i, 60000));
    }
    td_h_stop_graceful(&p, 15000);
    keys = redisCommand(w->rc, "KEYS trust:part:{orders/*");
    assert_non_null(keys);
    assert_true(keys->elements > 0);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        redisReply *c = redisCommand(w->rc, "HGET %s committed", k);
        assert_non_null(c);
        if (c->type == REDIS_REPLY_STRING) {
            freeReplyObject(redisCommand(w->rc, "HSET %s committed %lld", k,
                                         atoll(c->str) / 2));
            freeReplyObject(redisCommand(w->rc, "HINCRBY %s epoch 1", k));
        }
        freeReplyObject(c);
    }
    freeReplyObject(keys);
    assert_int_equal(td_h_trustd_start(&p, "trustd-rewind", &w->kafka,
                                       &w->redis, "g-rewind", fast_flush),
                     0);
    produce(w, 1000, -1);
    assert_exact(w, &p, 1);
    grep_t said = {&p, "inside delta"};
    if (!log_matches(&said)) {
        td_h_dump_log(&p);
        fail_msg("the rewind was not rebuilt event by event");
    }
    td_h_stop_graceful(&p, 15000);
    world_stop(w);
    free(w);
}

typedef struct swept_s {
    world_t *w;
    int64_t since; /* wall clock when trustd started */
    int quiet;     /* merchants whose score is still as of their events */
    int old;       /* re-scored merchants whose last event is months old */
} swept_t;

/* td_h_poll predicate: every merchant's score was re-scored as of now
 * (score as_of_ms at or after s->since) while its signals stay as of its
 * last event, months ago. */
static int all_swept(void *arg) {
    swept_t *s = arg;
    s->quiet = 0;
    s->old = 0;
    for (int i = 0; i < td_h_ref_count(s->w->ref); i++) {
        const char *m = td_h_ref_id(s->w->ref, i);
        redisReply *sc =
            redisCommand(s->w->rc, "HGET trust:{%s}:score as_of_ms", m);
        redisReply *sg =
            redisCommand(s->w->rc, "HGET trust:{%s}:signals as_of_ms", m);
        if (!sc || !sg || sc->type != REDIS_REPLY_STRING ||
            sg->type != REDIS_REPLY_STRING || atoll(sc->str) < s->since)
            s->quiet++;
        else if (atoll(sg->str) < s->since - 30 * 86400000LL)
            s->old++;
        if (sc) freeReplyObject(sc);
        if (sg) freeReplyObject(sg);
    }
    return s->quiet == 0 && s->old > 0;
}

/* Issue 21: merchants whose last events are months old are re-scored
 * without new events (their signals aged to now) by the sweep, through
 * the guarded put: signals stay exact, each re-score is one history point
 * with the next version. */
static void test_sweep_rescores_quiet_merchants_exactly_once(void **state) {
    /* Every re-score published (min step 0), so every merchant shows one. */
    static const char *const sweep[] = {"--flush-max-events",
                                        "300",
                                        "--sweep-quiet-ms",
                                        "0",
                                        "--sweep-merchants-per-s",
                                        "1000",
                                        "--publish-min-step",
                                        "0",
                                        NULL};
    world_t *w = malloc(sizeof(*w));
    swept_t s;
    td_h_proc_t p;
    (void)state;

    gen_days_ago = 120;
    world_start(w, NULL, 100);
    gen_days_ago = 3;
    produce(w, 2000, -1);
    s.w = w;
    s.since = td_now_ms();
    assert_int_equal(td_h_trustd_start(&p, "trustd-sweep", &w->kafka, &w->redis,
                                       "g-sweep", sweep),
                     0);
    assert_exact(w, &p, 1);
    if (!td_h_poll(all_swept, &s, 60000)) {
        td_h_dump_log(&p);
        fail_msg("%d merchants were not re-scored as of now, %d were", s.quiet,
                 s.old);
    }
    /* Sweeping on: still exact, histories consistent. */
    produce(w, 500, -1);
    assert_exact(w, &p, 1);
    td_h_stop_graceful(&p, 15000);
    world_stop(w);
    free(w);
}

int main(void) {
    const char *s = getenv("TD_SEED");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_at_random_points_ends_exact),
        cmocka_unit_test(test_second_sigterm_exits_at_once_without_damage),
        cmocka_unit_test(test_scaling_1_3_2_workers_ends_exact),
        cmocka_unit_test(test_one_merchant_on_two_partitions_two_workers),
        cmocka_unit_test(test_redis_outage_mid_stream_ends_exact),
        cmocka_unit_test(test_long_redis_outage_keeps_the_group),
        cmocka_unit_test(test_kafka_faults_ride_through),
        cmocka_unit_test(test_redis_restarted_empty_ends_exact),
        cmocka_unit_test(test_redis_restarted_empty_two_workers_ends_exact),
        cmocka_unit_test(test_redis_restored_older_snapshot_ends_exact),
        cmocka_unit_test(
            test_redis_restored_older_snapshot_two_workers_ends_exact),
        cmocka_unit_test(test_flushall_mid_stream_ends_exact),
        cmocka_unit_test(test_operator_rewind_ends_exact),
        cmocka_unit_test(test_sweep_rescores_quiet_merchants_exactly_once),
        cmocka_unit_test(test_flushall_mid_stream_two_workers_ends_exact),
        cmocka_unit_test(
            test_rollback_beyond_retention_rebuilds_what_is_retained),
    };
    seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)td_now_ms();
    if (!seed) seed = 1;
    soak = getenv("TD_SOAK") && *getenv("TD_SOAK") == '1';
    printf("it_exactly_once: TD_SEED=%llu%s\n", (unsigned long long)seed,
           soak ? " (soak)" : "");
    if (getenv("TD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("TD_TEST_FILTER"));
    return cmocka_run_group_tests_name("it_exactly_once", tests, NULL, NULL);
}
