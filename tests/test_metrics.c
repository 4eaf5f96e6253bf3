/*
 * test_metrics.c - readiness and the exposition of the rollback metrics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static const char *const topics[TD_EV__CNT] = {"orders", "reviews", "refunds"};

static td_metrics_t *ready_metrics(void) {
    td_metrics_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    td_metrics_init(m, topics);
    m->redis_ok = 1;
    m->assigned_partitions = 6;
    return m;
}

static void test_ready_when_assigned_and_redis_answers(void **state) {
    td_metrics_t *m = ready_metrics();
    char why[128];
    (void)state;
    assert_int_equal(td_metrics_ready(m, 1000, 60000, why, sizeof(why)), 1);
    assert_string_equal(why, "ready");
    m->redis_ok = 0;
    assert_int_equal(td_metrics_ready(m, 1000, 60000, why, sizeof(why)), 0);
    assert_string_equal(why, "redis unreachable");
    free(m);
}

static void test_not_ready_while_replaying_a_rollback(void **state) {
    td_metrics_t *m = ready_metrics();
    char why[128];
    (void)state;
    m->replaying = 1;
    assert_int_equal(td_metrics_ready(m, 1000, 60000, why, sizeof(why)), 0);
    assert_string_equal(why, "replaying after redis went back in time");
    /* What Kafka no longer held is named while replaying */
    m->replay_lost = 42;
    assert_int_equal(td_metrics_ready(m, 1000, 60000, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "42 offsets beyond kafka's retention lost"));
    m->replaying = 0;
    assert_int_equal(td_metrics_ready(m, 1000, 60000, why, sizeof(why)), 1);
    free(m);
}

static void test_rollback_metrics_are_exposed(void **state) {
    td_metrics_t *m = ready_metrics();
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    (void)state;
    m->store_rollbacks = 2;
    m->replaying = 1;
    m->replay_lost = 7;
    td_metrics_write(m, 1000, 60000, fp);
    fclose(fp);
    assert_non_null(strstr(buf, "\ntrustd_store_rollbacks_total 2\n"));
    assert_non_null(strstr(buf, "\ntrustd_replaying 1\n"));
    assert_non_null(strstr(buf, "\ntrustd_replay_lost_offsets_total 7\n"));
    assert_non_null(strstr(buf, "\ntrustd_ready 0\n"));
    free(buf);
    free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_when_assigned_and_redis_answers),
        cmocka_unit_test(test_not_ready_while_replaying_a_rollback),
        cmocka_unit_test(test_rollback_metrics_are_exposed),
    };
    return cmocka_run_group_tests_name("test_metrics", tests, NULL, NULL);
}
