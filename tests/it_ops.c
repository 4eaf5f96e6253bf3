/*
 * it_ops.c - trustd's operations endpoint end to end: the real trustd runs
 * with --http-port on a free port, events flow through the embedded Kafka
 * into a real redis-server, and the test scrapes /metrics, /healthz and
 * /readyz with a minimal HTTP/1.0 client over a loopback socket.
 *
 * Counters must follow the events produced; /readyz must turn 503 (and
 * trustd_ready 0) when redis-server stops under a running trustd, and 200
 * again once it is back and a new event has been applied. SIGTERM ends
 * trustd with exit status 0. Every wait is a bounded poll.
 */
#include <arpa/inet.h>
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

#include "codec.h"
#include "common.h"
#include "harness.h"

#define HOUR 3600000LL

static td_h_redis_t redis;
static td_h_kafka_t kafka;
static td_h_proc_t trustd;
static td_h_producer_t *producer;
static int http_port;
static int produced[TD_EV__CNT]; /* valid events per input topic */
static int garbage[TD_EV__CNT];  /* messages trustd must dead-letter */
static const char *const topics[TD_EV__CNT] = {"orders", "reviews", "refunds"};

/* ---- a minimal HTTP client ---- */

typedef struct http_s {
    int status; /* -1: no answer */
    char *body; /* NUL-terminated; owned */
} http_t;

/* GET path from trustd over HTTP/1.0 (the server closes when done). */
static void http_get(const char *path, http_t *h) {
    h->status = td_h_http_get(http_port, path, &h->body);
}

static int http_status(const char *path) {
    http_t h;
    http_get(path, &h);
    free(h.body);
    return h.status;
}

/* Scrapes /metrics once; NAN if it failed or the series is absent. */
static double metric(const char *series) {
    http_t h;
    double v = NAN;
    http_get("/metrics", &h);
    if (h.status == 200) {
        v = td_h_sample(h.body, series);
    }
    free(h.body);
    return v;
}

static double per_topic(const char *name, int kind) {
    char series[128];
    snprintf(series, sizeof(series), "%s{topic=\"%s\"}", name, topics[kind]);
    return metric(series);
}

/* ---- events ---- */

static void produce(td_event_kind_t kind, const char *m) {
    td_event_t ev;

    td_h_event(&ev, kind, m, td_now_ms() - 2 * HOUR);
    if (kind == TD_EV_ORDER) {
        ev.u.order.amount_cents = 1500;
        ev.u.order.channel = TD_CHANNEL_SHELF;
    } else if (kind == TD_EV_REVIEW) {
        ev.u.review.rating = 4;
    } else {
        ev.u.refund.reason = TD_REASON_DAMAGED;
        ev.u.refund.amount_cents = 700;
    }
    assert_int_equal(td_h_produce(producer, &ev, -1), 0);
    assert_int_equal(td_h_producer_flush(producer), 0);
    produced[kind]++;
}

/* ---- conditions ---- */

static int status_is(void *arg) {
    const int *want = arg; /* {status, path index} */
    static const char *const paths[] = {"/healthz", "/readyz"};
    return http_status(paths[want[1]]) == want[0];
}

static int wait_status(const char *path, int status, int timeout_ms) {
    int arg[2] = {status, !strcmp(path, "/readyz")};
    return td_h_poll(status_is, arg, timeout_ms);
}

/* Every message produced consumed, every valid event applied. */
static int counters_caught_up(void *arg) {
    for (int k = 0; k < TD_EV__CNT; k++) {
        if (per_topic("trustd_events_consumed_total", k) !=
                produced[k] + garbage[k] ||
            per_topic("trustd_events_applied_total", k) != produced[k])
            return 0;
    }
    return 1;
}

/* arg is "series value": the sample reached at least value. */
static int metric_reached(void *arg) {
    const char *series = arg;
    const char *sp = strrchr(series, ' ');
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)(sp - series), series);
    return metric(name) >= strtod(sp + 1, NULL);
}

static int redis_has_orders(void *arg) {
    const double *want = arg;
    redisContext *c = td_h_redis_connect(&redis);
    double v = NAN;
    if (!c) return 0;
    td_h_hget_double(c, "trust:{m-ops-1}:signals", "orders_paid_total", &v);
    redisFree(c);
    return v == *want;
}

static void fail_with_log(const char *what) {
    http_t h;
    http_get("/metrics", &h);
    fprintf(stderr, "---- /metrics (%d) ----\n%s", h.status,
            h.body ? h.body : "");
    free(h.body);
    td_h_dump_log(&trustd);
    fail_msg("%s", what);
}

/* ---- fixtures ---- */

static int setup(void **state) {
    static const char *kargs[] = {"--partitions", "2", NULL};
    static char port[16];
    const char *extra[] = {"--http-port", port, NULL};

    if (td_h_redis_start(&redis, NULL) || td_h_kafka_start(&kafka, kargs))
        return -1;
    producer = td_h_producer_new(kafka.bootstrap);
    http_port = td_h_free_port();
    snprintf(port, sizeof(port), "%d", http_port);
    /* Later flags override td_h_trustd_start's --http-port 0. */
    return td_h_trustd_start(&trustd, "trustd", &kafka, &redis, "it-ops",
                             extra);
}

static int teardown(void **state) {
    if (trustd.pid > 0) {
        td_h_signal(&trustd, SIGKILL);
        td_h_wait(&trustd, 5000);
    }
    td_h_producer_destroy(producer);
    td_h_kafka_stop(&kafka);
    td_h_redis_stop(&redis);
    return 0;
}

/* ---- tests ---- */

static void test_healthz_ok_and_readyz_ok_once_assigned(void **state) {
    if (!wait_status("/healthz", 200, 15000)) {
        fail_with_log("/healthz never answered 200");
    }
    if (!wait_status("/readyz", 200, 30000)) {
        fail_with_log("/readyz never answered 200");
    }
    /* 3 input topics x 2 partitions, one worker. Ready means some
     * partitions are assigned: the cooperative assignor may hand out a
     * topic whose metadata arrived late in a later increment, so wait for
     * all six. */
    if (!td_h_poll(metric_reached, "trustd_assigned_partitions 6", 30000)) {
        fail_with_log("not all 6 partitions were assigned");
    }
    assert_true(metric("trustd_assigned_partitions") == 6);
    assert_true(metric("trustd_ready") == 1);
    assert_int_equal(http_status("/nope"), 404);
}

static void test_counters_follow_the_events(void **state) {
    static const char junk[] = "not an event";
    char series[160];

    for (int i = 0; i < 5; i++) {
        produce(TD_EV_ORDER, i % 2 ? "m-ops-1" : "m-ops-2");
    }
    for (int i = 0; i < 3; i++) {
        produce(TD_EV_REVIEW, "m-ops-1");
    }
    for (int i = 0; i < 2; i++) {
        produce(TD_EV_REFUND, "m-ops-2");
    }
    if (!td_h_poll(counters_caught_up, NULL, 30000)) {
        fail_with_log("consumed/applied counters did not reach the produced "
                      "counts");
    }

    /* A message that cannot be decoded is consumed, not applied, and
     * counted by reason. */
    assert_int_equal(td_h_produce_raw(producer, "orders", 0, "m-ops-1", 7, junk,
                                      sizeof(junk) - 1),
                     0);
    assert_int_equal(td_h_producer_flush(producer), 0);
    garbage[TD_EV_ORDER]++;
    snprintf(series, sizeof(series),
             "trustd_events_dead_lettered_total{topic=\"orders\","
             "reason=\"bad_magic\"} 1");
    if (!td_h_poll(metric_reached, series, 30000) ||
        !td_h_poll(counters_caught_up, NULL, 30000)) {
        fail_with_log("dead letter not counted");
    }
    assert_true(metric("trustd_events_dead_lettered_total{topic=\"orders\","
                       "reason=\"bad_magic\"}") == 1);

    assert_true(metric("trustd_redis_roundtrips_total") > 0);
    assert_true(metric("trustd_assigned_partitions") > 0);
    assert_true(metric("trustd_flushes_total") > 0);
    assert_true(metric("trustd_scores_published_total") > 0);
    assert_true(metric("trustd_redis_errors_total") == 0);
    /* Histograms: the +Inf bucket equals the count; the events of every
     * flush add up to all messages (observed after the flush, so poll). */
    if (!td_h_poll(metric_reached, "trustd_batch_events_sum 11", 30000)) {
        fail_with_log("trustd_batch_events_sum did not reach 11");
    }
    assert_true(metric("trustd_batch_events_count") > 0);
    assert_true(metric("trustd_batch_events_bucket{le=\"+Inf\"}") ==
                metric("trustd_batch_events_count"));
    assert_true(metric("trustd_flush_duration_seconds_count") > 0);
    assert_false(isnan(metric("trustd_flush_duration_seconds_sum")));
    assert_false(isnan(metric("trustd_flush_duration_seconds_bucket{le=\"0."
                              "001\"}")));
    assert_true(metric("trustd_flush_duration_seconds_bucket{le=\"+Inf\"}") ==
                metric("trustd_flush_duration_seconds_count"));
    /* Where the flushes' time went (one scrape, so no flush ends between
     * the numbers): every step reported, together within their duration;
     * both merchants written. */
    static const char *const steps[] = {"records", "merchants", "deliver",
                                        "index"};
    double in_steps = 0;
    http_t h;
    http_get("/metrics", &h);
    assert_int_equal(h.status, 200);
    for (size_t i = 0; i < TD_ARRAY_LEN(steps); i++) {
        snprintf(series, sizeof(series),
                 "trustd_flush_step_seconds_total{step=\"%s\"}", steps[i]);
        assert_false(isnan(td_h_sample(h.body, series)));
        in_steps += td_h_sample(h.body, series);
    }
    assert_true(
        td_h_sample(h.body,
                    "trustd_flush_step_seconds_total{step=\"merchants\"}") > 0);
    assert_true(in_steps <=
                td_h_sample(h.body, "trustd_flush_duration_seconds_sum") +
                    1e-6);
    assert_true(td_h_sample(h.body, "trustd_merchant_writes_total") >= 2);
    free(h.body);
}

static void test_readyz_503_while_redis_is_down(void **state) {
    http_t h;

    td_h_redis_stop(&redis);
    /* An event makes trustd talk to Redis (see the report on idle
     * detection: without traffic nothing notices the outage). */
    produce(TD_EV_ORDER, "m-ops-1");
    if (!wait_status("/readyz", 503, 30000)) {
        fail_with_log("/readyz did not turn 503 with Redis down");
    }
    http_get("/readyz", &h);
    assert_int_equal(h.status, 503);
    assert_non_null(strstr(h.body, "redis"));
    free(h.body);
    assert_true(metric("trustd_ready") == 0);
    assert_true(metric("trustd_redis_errors_total") > 0);
    /* The idle check may have seen the outage first; the flush of the
     * event fails on the flusher thread soon after. */
    if (!td_h_poll(metric_reached, "trustd_flush_failures_total 1", 30000))
        fail_with_log("trustd_flush_failures_total stayed 0");
    /* The process is alive and says so. */
    assert_int_equal(http_status("/healthz"), 200);
}

static void test_readyz_200_again_when_redis_returns(void **state) {
    double orders;

    assert_int_equal(td_h_redis_restart(&redis), 0);
    if (!wait_status("/readyz", 200, 30000)) {
        fail_with_log("/readyz did not return to 200 after Redis came back");
    }
    assert_true(metric("trustd_ready") == 1);
    /* The event held during the outage and a new one are both applied. */
    produce(TD_EV_ORDER, "m-ops-1");
    if (!td_h_poll(counters_caught_up, NULL, 30000)) {
        fail_with_log("events after the outage were not applied");
    }
    orders = 4; /* m-ops-1: 2 before the outage, 1 during, 1 after */
    if (!td_h_poll(redis_has_orders, &orders, 30000)) {
        fail_with_log("Redis does not hold the events after the outage");
    }
}

static void test_sigterm_exits_zero(void **state) {
    int status;

    td_h_signal(&trustd, SIGTERM);
    status = td_h_wait(&trustd, 15000);
    if (status == -1) {
        td_h_dump_log(&trustd);
    }
    assert_int_not_equal(status, -1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The endpoint went away with the process. */
    assert_int_equal(http_status("/healthz"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz_ok_and_readyz_ok_once_assigned),
        cmocka_unit_test(test_counters_follow_the_events),
        cmocka_unit_test(test_readyz_503_while_redis_is_down),
        cmocka_unit_test(test_readyz_200_again_when_redis_returns),
        cmocka_unit_test(test_sigterm_exits_zero),
    };
    return cmocka_run_group_tests_name("it_ops", tests, setup, teardown);
}
