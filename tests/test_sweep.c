/* test_sweep.c - the sweep's paging and merchant ownership (sweep.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "sweep.h"

static redisReply *str(const char *s) {
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *arr(size_t n) {
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof(*r->element));
    return r;
}

/* A ZSCAN reply: cursor, then member/score pairs of ids. */
static redisReply *page(const char *cursor, const char *const *ids, int n) {
    redisReply *r = arr(2), *items = arr((size_t)n * 2);
    r->element[0] = str(cursor);
    for (int i = 0; i < n; i++) {
        items->element[2 * i] = str(ids[i]);
        items->element[2 * i + 1] = str("75.5");
    }
    r->element[1] = items;
    return r;
}

static int all(void *opaque, const char *id, size_t len) {
    (void)opaque, (void)id, (void)len;
    return 1;
}

/* Owns the merchants of orders partition *(int *)opaque of 4. */
static int part_of_4(void *opaque, const char *id, size_t len) {
    return td_sweep_partition(id, len, 4) == *(int *)opaque;
}

static void test_pages_move_the_cursor_and_count_rounds(void **state) {
    static const char *const ids[] = {"m1", "m2", "m3"};
    td_sweep_t sw;
    char err[128];
    redisReply *r;
    (void)state;

    td_sweep_init(&sw, 100);
    assert_true(td_sweep_due(&sw, 0));
    r = page("17", ids, 3);
    assert_int_equal(td_sweep_page(&sw, r, all, NULL, err, sizeof(err)), TD_OK);
    freeReplyObject(r);
    assert_string_equal(sw.cursor, "17");
    assert_int_equal(sw.nids, 3);
    assert_string_equal(sw.ids[2], "m3");
    assert_int_equal(sw.rounds, 0);
    r = page("0", ids, 1);
    assert_int_equal(td_sweep_page(&sw, r, all, NULL, err, sizeof(err)), TD_OK);
    freeReplyObject(r);
    assert_int_equal(sw.nids, 1);
    assert_int_equal(sw.rounds, 1);
    td_sweep_term(&sw);
}

static void test_each_merchant_is_one_partitions(void **state) {
    static const char *const ids[] = {"m000001", "m000002", "m000003",
                                      "m000004", "m000005", "m000006",
                                      "m000007", "m000008"};
    char err[128];
    int total = 0;
    (void)state;

    for (int p = 0; p < 4; p++) {
        td_sweep_t sw;
        redisReply *r = page("0", ids, 8);
        td_sweep_init(&sw, 10);
        assert_int_equal(td_sweep_page(&sw, r, part_of_4, &p, err, sizeof(err)),
                         TD_OK);
        for (int i = 0; i < sw.nids; i++)
            assert_int_equal(
                td_sweep_partition(sw.ids[i], strlen(sw.ids[i]), 4), p);
        total += sw.nids;
        freeReplyObject(r);
        td_sweep_term(&sw);
    }
    assert_int_equal(total, 8);
    assert_int_equal(td_sweep_partition("m1", 2, 0), -1);
}

static void test_due_once_a_second_and_never_when_off(void **state) {
    td_sweep_t sw;
    td_rbatch_t *b = td_rbatch_new();
    (void)state;

    td_sweep_init(&sw, 50);
    td_sweep_queue(&sw, b, 5000, NULL, NULL);
    assert_int_equal(td_rbatch_cnt(b), 1);
    assert_false(td_sweep_due(&sw, 5999));
    assert_true(td_sweep_due(&sw, 6000));
    td_sweep_term(&sw);
    td_sweep_init(&sw, 0);
    assert_false(td_sweep_due(&sw, 1 << 30));
    td_sweep_term(&sw);
    td_rbatch_destroy(b);
}

static void test_malformed_pages_are_errors(void **state) {
    static const char *const ids[] = {"m1"};
    td_sweep_t sw;
    char err[128];
    redisReply *r = arr(1), *e = calloc(1, sizeof(*e));
    (void)state;

    td_sweep_init(&sw, 10);
    r->element[0] = str("5");
    assert_int_equal(td_sweep_page(&sw, r, all, NULL, err, sizeof(err)),
                     TD_ERR);
    assert_non_null(strstr(err, "malformed"));
    freeReplyObject(r);
    e->type = REDIS_REPLY_ERROR;
    e->str = strdup("WRONGTYPE Operation against a key");
    e->len = strlen(e->str);
    assert_int_equal(td_sweep_page(&sw, e, all, NULL, err, sizeof(err)),
                     TD_ERR);
    assert_non_null(strstr(err, "WRONGTYPE"));
    freeReplyObject(e);
    assert_string_equal(sw.cursor, "0");
    /* An over-long id is skipped, not copied. */
    char longid[TD_MERCHANT_ID_MAX + 2];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    const char *const bad[] = {longid, ids[0]};
    r = page("0", bad, 2);
    assert_int_equal(td_sweep_page(&sw, r, all, NULL, err, sizeof(err)), TD_OK);
    assert_int_equal(sw.nids, 1);
    freeReplyObject(r);
    td_sweep_term(&sw);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages_move_the_cursor_and_count_rounds),
        cmocka_unit_test(test_each_merchant_is_one_partitions),
        cmocka_unit_test(test_due_once_a_second_and_never_when_off),
        cmocka_unit_test(test_malformed_pages_are_errors),
    };
    return cmocka_run_group_tests_name("sweep", tests, NULL, NULL);
}
