/*
 * it_tools.c - the test tools together: td-kafka (embedded Kafka and its
 * fault-injection commands), td-loadgen and td-consume.
 *
 * One td-kafka is shared by the group. td-loadgen produces a known number
 * of events (some deliberately broken) and td-consume must read exactly
 * that many back; every message on the topics must either decode with the
 * real codec or be one of the broken kinds td-loadgen reported. Processes
 * are waited for with deadlines, never with fixed sleeps.
 */
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

#define EVENTS 20000

static td_h_kafka_t kafka;

static int group_setup(void **state) {
    const char *const args[] = {"--partitions", "4", NULL};
    if (td_h_kafka_start(&kafka, args) != 0) {
        print_error("td-kafka did not start\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    td_h_kafka_stop(&kafka);
    return 0;
}

/* Runs a tool to completion (bounded) and returns its exit code, or -1. */
static int run_tool(td_h_proc_t *p, const char *tag, char *const argv[]) {
    if (td_h_spawn(p, tag, argv) != 0) return -1;
    int status = td_h_wait(p, 120000);
    if (status == -1) {
        td_h_signal(p, SIGKILL);
        td_h_wait(p, 5000);
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        td_h_dump_log(p);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Finds "name=<number>" in a tool's log; -1 if absent. */
static long long log_value(const td_h_proc_t *p, const char *name) {
    FILE *fp = fopen(p->log, "r");
    char line[1024];
    long long v = -1;
    size_t n = strlen(name);

    if (!fp) return -1;
    while (fgets(line, sizeof(line), fp)) {
        for (char *s = strstr(line, name); s; s = strstr(s + 1, name)) {
            if ((s == line || s[-1] == ' ' || s[-1] == '(') && s[n] == '=') {
                v = strtoll(s + n + 1, NULL, 10);
            }
        }
    }
    fclose(fp);
    return v;
}

static void test_kafka_answers_ok_to_valid_commands(void **state) {
    static const char *const ok[] = {
        "rtt 1 0",
        "rtt -1 0",
        "errors Fetch 2 REQUEST_TIMED_OUT",
        "errors heartbeat 1 coordinator_not_available",
        "errors 3 1 7",
        "clear Fetch",
        "clear Heartbeat",
        "clear 3",
        "create it-extra 3",
        "leader it-extra 0 1",
        "coordinator group it-g 1",
        "down -1",
        "up -1",
        "help",
    };
    for (size_t i = 0; i < TD_ARRAY_LEN(ok); i++) {
        if (td_h_kafka_cmd(&kafka, ok[i]) != 0) {
            fail_msg("command \"%s\" was not ok", ok[i]);
        }
    }
}

static void test_kafka_answers_error_to_bad_commands(void **state) {
    static const char *const bad[] = {
        "bogus",
        "down",
        "down 7",
        "down x",
        "up 0",
        "rtt 1 -5",
        "errors Nope 1 REQUEST_TIMED_OUT",
        "errors Fetch 0 REQUEST_TIMED_OUT",
        "errors Fetch 1 NOT_AN_ERROR_NAME",
        "create orders 3",
        "create it-bad 0",
        "leader orders x 1",
        "coordinator nope k 1",
    };
    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++) {
        if (td_h_kafka_cmd(&kafka, bad[i]) == 0) {
            fail_msg("command \"%s\" was accepted", bad[i]);
        }
    }
    /* Still answering after errors. */
    assert_int_equal(td_h_kafka_cmd(&kafka, "rtt 1 0"), 0);
}

typedef struct decode_tally_s {
    td_codec_t *codec;
    td_event_kind_t kind;
    long ok;
    long bad;
} decode_tally_t;

static void tally_cb(const rd_kafka_message_t *m, void *arg) {
    decode_tally_t *t = arg;
    char errstr[256];
    td_event_t ev;
    td_dlq_reason_t r =
        td_codec_decode(t->codec, t->kind, m->key, m->key_len, m->payload,
                        m->len, td_now_ms(), NULL, &ev, errstr, sizeof(errstr));
    if (r == TD_DLQ_OK) {
        t->ok++;
    } else {
        t->bad++;
    }
}

static void test_loadgen_events_are_all_consumed(void **state) {
    static const char *const topics[TD_EV__CNT] = {"it-orders", "it-reviews",
                                                   "it-refunds"};
    char cmd[128];
    for (int k = 0; k < TD_EV__CNT; k++) {
        snprintf(cmd, sizeof(cmd), "create %s 4", topics[k]);
        assert_int_equal(td_h_kafka_cmd(&kafka, cmd), 0);
    }

    td_h_proc_t gen = {0}, con = {0};
    char events[32];
    snprintf(events, sizeof(events), "%d", EVENTS);
    char *const gen_argv[] = {(char *)td_h_bin("td-loadgen"),
                              "--brokers",
                              kafka.bootstrap,
                              "--events",
                              events,
                              "--merchants",
                              "500",
                              "--invalid-share",
                              "0.02",
                              "--topic-orders",
                              (char *)topics[0],
                              "--topic-reviews",
                              (char *)topics[1],
                              "--topic-refunds",
                              (char *)topics[2],
                              NULL};
    assert_int_equal(run_tool(&gen, "td-loadgen", gen_argv), 0);
    assert_int_equal(log_value(&gen, "delivered"), EVENTS);
    long long invalid = log_value(&gen, "invalid");
    assert_true(invalid > 0 && invalid < EVENTS / 10);

    char *const con_argv[] = {(char *)td_h_bin("td-consume"),
                              "--brokers",
                              kafka.bootstrap,
                              "--group",
                              "it-consume",
                              "--topics",
                              "it-orders,it-reviews,it-refunds",
                              "--expect",
                              events,
                              NULL};
    assert_int_equal(run_tool(&con, "td-consume", con_argv), 0);
    assert_int_equal(log_value(&con, "consumed"), EVENTS);

    /* Every message decodes, except exactly the broken ones. */
    char errstr[256];
    decode_tally_t t = {.codec = td_codec_new(errstr, sizeof(errstr))};
    assert_non_null(t.codec);
    long total = 0;
    for (int k = 0; k < TD_EV__CNT; k++) {
        t.kind = (td_event_kind_t)k;
        int n = td_h_consume_all(kafka.bootstrap, topics[k], tally_cb, &t);
        assert_true(n > 0);
        total += n;
    }
    td_codec_destroy(t.codec);
    assert_int_equal(total, EVENTS);
    assert_int_equal(t.bad, invalid);
    assert_int_equal(t.ok, EVENTS - invalid);
}

static int metadata_ok(const char *bootstrap) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                      sizeof(errstr));
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return 0;
    }
    int ok = rd_kafka_metadata(rk, 1, NULL, &md, 5000) == 0;
    if (md) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
    return ok;
}

static void
test_kafka_survives_stdin_eof_and_exits_zero_on_sigterm(void **state) {
    td_h_kafka_t k;
    const char *const args[] = {"--brokers-count", "3", "--topic", "x=2", NULL};
    assert_int_equal(td_h_kafka_start(&k, args), 0);
    /* Three brokers, three bootstrap addresses. */
    assert_non_null(strchr(strchr(k.bootstrap, ',') + 1, ','));
    assert_int_equal(td_h_kafka_cmd(&k, "down 3"), 0);
    assert_int_equal(td_h_kafka_cmd(&k, "up 3"), 0);

    close(k.in_fd);
    k.in_fd = -1;
    /* Still serving after EOF on its command input. */
    assert_true(metadata_ok(k.bootstrap));

    td_h_proc_t p = {.pid = k.pid};
    td_h_signal(&p, SIGTERM);
    int status = td_h_wait(&p, 10000);
    assert_true(status != -1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    fclose(k.out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kafka_answers_ok_to_valid_commands),
        cmocka_unit_test(test_kafka_answers_error_to_bad_commands),
        cmocka_unit_test(test_loadgen_events_are_all_consumed),
        cmocka_unit_test(
            test_kafka_survives_stdin_eof_and_exits_zero_on_sigterm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
