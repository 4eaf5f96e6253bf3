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

static uint64_t target(int64_t lag, uint64_t flushed, uint64_t read) {
    int behind = -1;
    uint64_t t = td_worker_batch_target(&conf, lag, flushed, read, &behind);
    assert_int_equal(behind, lag > 100000);
    return t;
}

static void test_caught_up_batches_are_flush_max_events(void **state) {
    (void)state;
    assert_int_equal(target(0, 0, 0), 20000);
    assert_int_equal(target(100000, 500000, 300000), 20000);
}

/* Writing is the slower side: everything read while the flush ran goes
 * into the next one at once. */
static void
test_behind_the_next_batch_is_what_was_read_meanwhile(void **state) {
    (void)state;
    assert_int_equal(target(200000, 20000, 64000), 64000);
}

/* Just fallen behind: a quarter of the lag, not all of it, so the flusher
 * waits for a quarter of the time it takes to read the backlog. */
static void test_behind_the_next_batch_is_a_quarter_of_the_lag(void **state) {
    (void)state;
    assert_int_equal(target(1980000, 20000, 40000), 495000);
}

/* Reading is the slower side: batches do not shrink. */
static void test_behind_batches_do_not_shrink(void **state) {
    (void)state;
    assert_int_equal(target(900000, 300000, 120000), 300000);
}

static void test_behind_batches_stop_at_the_lag_and_the_cap(void **state) {
    (void)state;
    assert_int_equal(target(150000, 300000, 400000), 150000);
    assert_int_equal(target(5000000, 900000, 1600000), 1000000);
}

/* A 2,000,000-event backlog read twice as fast as it is written: one
 * small flush, a quarter of the backlog, then what was read meanwhile, up
 * to the cap, and the rest. */
static void test_a_backlog_drains_in_a_few_large_batches(void **state) {
    static const uint64_t want[] = {20000, 495000, 990000, 495000};
    uint64_t batch = 20000, seen[8];
    int64_t lag = 2000000;
    int n = 0;
    (void)state;

    while (lag > 0 && n < 8) {
        uint64_t read = 2 * batch; /* while this batch was written */
        seen[n++] = batch;
        lag -= (int64_t)batch;
        if (lag <= 100000) break;
        batch = target(lag, batch, read);
    }
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++)
        assert_int_equal(seen[i], want[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caught_up_batches_are_flush_max_events),
        cmocka_unit_test(test_behind_the_next_batch_is_what_was_read_meanwhile),
        cmocka_unit_test(test_behind_the_next_batch_is_a_quarter_of_the_lag),
        cmocka_unit_test(test_behind_batches_do_not_shrink),
        cmocka_unit_test(test_behind_batches_stop_at_the_lag_and_the_cap),
        cmocka_unit_test(test_a_backlog_drains_in_a_few_large_batches),
    };
    return cmocka_run_group_tests_name("test_batches", tests, setup, teardown);
}
