/* test_batches.c - how many events make the next batch (worker.c's
 * td_worker_batch_target), caught up and draining a backlog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "worker_int.h"

static td_conf_t conf;

static int setup(void **state) {
    (void)state;
    td_conf_init(&conf); /* 20000, lag 100000, 1000000 behind */
    return 0;
}

static int teardown(void **state) {
    (void)state;
    td_conf_term(&conf);
    return 0;
}

static void test_caught_up_batches_are_flush_max_events(void **state) {
    int behind = -1;
    (void)state;
    assert_int_equal(td_worker_batch_target(&conf, 0, 0, 0, &behind), 20000);
    assert_int_equal(behind, 0);
    assert_int_equal(
        td_worker_batch_target(&conf, 100000, 500000, 300000, &behind), 20000);
    assert_int_equal(behind, 0);
}

/* The flusher is the slower side: everything read while it ran goes into
 * the next flush at once. */
static void
test_behind_the_next_batch_is_what_was_read_meanwhile(void **state) {
    int behind = 0;
    (void)state;
    assert_int_equal(
        td_worker_batch_target(&conf, 1900000, 20000, 64000, &behind), 64000);
    assert_int_equal(behind, 1);
}

/* The consumer is the slower side: batches do not shrink, and never go
 * below flush_max_events. */
static void test_behind_batches_do_not_shrink(void **state) {
    int behind = 0;
    (void)state;
    assert_int_equal(
        td_worker_batch_target(&conf, 900000, 300000, 120000, &behind), 300000);
    assert_int_equal(td_worker_batch_target(&conf, 900000, 0, 0, &behind),
                     20000);
}

static void test_behind_batches_stop_at_the_lag_and_the_cap(void **state) {
    int behind = 0;
    (void)state;
    assert_int_equal(
        td_worker_batch_target(&conf, 150000, 300000, 400000, &behind), 150000);
    assert_int_equal(
        td_worker_batch_target(&conf, 5000000, 900000, 1600000, &behind),
        1000000);
}

/* A backlog read twice as fast as it is written: from flush_max_events
 * the batches double until the cap, so Redis starts within one small
 * batch and is never idle while there is a backlog. */
static void test_a_backlog_drains_in_doubling_batches(void **state) {
    uint64_t batch = 20000, seen[8];
    int64_t lag = 2000000;
    int behind = 0, n = 0;
    (void)state;

    while (lag > 0 && n < 8) {
        uint64_t read = 2 * batch; /* while this batch was written */
        seen[n++] = batch;
        lag -= (int64_t)batch;
        batch = td_worker_batch_target(&conf, lag, batch, read, &behind);
        if (!behind) break;
    }
    /* the last one is what is left of the lag */
    static const uint64_t want[] = {20000,  40000,  80000, 160000,
                                    320000, 640000, 740000};
    assert_int_equal(n, 7);
    for (int i = 0; i < n; i++)
        assert_int_equal(seen[i], want[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caught_up_batches_are_flush_max_events),
        cmocka_unit_test(test_behind_the_next_batch_is_what_was_read_meanwhile),
        cmocka_unit_test(test_behind_batches_do_not_shrink),
        cmocka_unit_test(test_behind_batches_stop_at_the_lag_and_the_cap),
        cmocka_unit_test(test_a_backlog_drains_in_doubling_batches),
    };
    return cmocka_run_group_tests_name("test_batches", tests, setup, teardown);
}
