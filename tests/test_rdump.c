/*
 * test_rdump.c - DUMP payloads built by rdump.c against a real
 * redis-server: RESTORE takes them (the harness' Redis sanitizes every
 * payload deeply), and they equal, byte for byte, what DUMP returns for
 * the same hash built by HSET.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdump.h"

static td_h_redis_t redis;
static redisContext *rc;

static int setup(void **state) {
    redisReply *r;
    (void)state;
    if (td_h_redis_start(&redis, NULL)) return -1;
    rc = td_h_redis_connect(&redis);
    if (!rc) return -1;
    /* DUMP writes the listpack as it is, so payloads compare bytewise. */
    r = redisCommand(rc, "CONFIG SET rdbcompression no");
    if (!r || r->type != REDIS_REPLY_STATUS) return -1;
    freeReplyObject(r);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (rc) redisFree(rc);
    td_h_redis_stop(&redis);
    return 0;
}

static redisReply *cmdv(int argc, const char **argv, const size_t *lens) {
    redisReply *r = redisCommandArgv(rc, argc, argv, lens);
    assert_non_null(r);
    return r;
}

static void expect_status(redisReply *r) {
    if (r->type == REDIS_REPLY_ERROR) fail_msg("redis: %s", r->str);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

/* RESTOREs pairs (f0, v0, f1, v1, ...) as `key` through rdump (with
 * long 1, strings past hash-max-listpack-value), HSETs them into `key`:ref
 * (with long 1 under a raised hash-max-listpack-value, so that Redis
 * builds a listpack too), and compares the two hashes and, when Redis
 * keeps the reference as a listpack, the two DUMPs. */
static void
check_pairs_as(const char *key, int npairs, const char **kv, int long_ok) {
    static uint8_t buf[256 * 1024];
    const char *argv[1024];
    size_t lens[1024];
    char ref[128];
    td_rdump_t d;
    const uint8_t *p;
    size_t plen;
    redisReply *r, *mine, *theirs;

    assert_true(2 + 2 * npairs <= 1024);
    if (long_ok)
        td_rdump_begin_long(&d, buf, sizeof(buf));
    else
        td_rdump_begin(&d, buf, sizeof(buf));
    for (int i = 0; i < npairs; i++)
        td_rdump_add(&d, kv[2 * i], strlen(kv[2 * i]), kv[2 * i + 1],
                     strlen(kv[2 * i + 1]));
    p = td_rdump_end(&d, &plen);
    assert_non_null(p);

    argv[0] = "RESTORE", lens[0] = 7;
    argv[1] = key, lens[1] = strlen(key);
    argv[2] = "0", lens[2] = 1;
    argv[3] = (const char *)p, lens[3] = plen;
    argv[4] = "REPLACE", lens[4] = 7;
    expect_status(cmdv(5, argv, lens));

    snprintf(ref, sizeof(ref), "%s:ref", key);
    freeReplyObject(redisCommand(rc, "DEL %s", ref));
    if (long_ok)
        expect_status(redisCommand(rc, "CONFIG SET hash-max-listpack-value %d",
                                   TD_RDUMP_LONG_MAX));
    argv[0] = "HSET", lens[0] = 4;
    argv[1] = ref, lens[1] = strlen(ref);
    for (int i = 0; i < 2 * npairs; i++)
        argv[2 + i] = kv[i], lens[2 + i] = strlen(kv[i]);
    r = cmdv(2 + 2 * npairs, argv, lens);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    if (long_ok)
        expect_status(
            redisCommand(rc, "CONFIG SET hash-max-listpack-value 64"));

    /* Same contents, in the same order. */
    mine = redisCommand(rc, "HGETALL %s", key);
    theirs = redisCommand(rc, "HGETALL %s", ref);
    assert_int_equal(mine->elements, 2 * (size_t)npairs);
    assert_int_equal(theirs->elements, mine->elements);
    for (size_t i = 0; i < mine->elements; i++)
        assert_string_equal(mine->element[i]->str, theirs->element[i]->str);
    freeReplyObject(mine);
    freeReplyObject(theirs);

    mine = redisCommand(rc, "OBJECT ENCODING %s", key);
    theirs = redisCommand(rc, "OBJECT ENCODING %s", ref);
    assert_string_equal(mine->str, theirs->str);
    if (!strcmp(theirs->str, "listpack")) {
        freeReplyObject(mine);
        mine = redisCommand(rc, "DUMP %s", ref);
        assert_int_equal(mine->type, REDIS_REPLY_STRING);
        assert_int_equal(mine->len, plen);
        assert_memory_equal(mine->str, p, plen);
    }
    freeReplyObject(mine);
    freeReplyObject(theirs);
}

static void check_pairs(const char *key, int npairs, const char **kv) {
    check_pairs_as(key, npairs, kv, 0);
}

static void test_rdump_crc64_check_value(void **state) {
    (void)state;
    assert_true(td_rdump_crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9caULL);
    /* Any split gives the same CRC (the 8-byte loop and the tail). */
    assert_true(td_rdump_crc64(td_rdump_crc64(0, "1234", 4), "56789", 5) ==
                0xe9c6d914c4b8d9caULL);
}

static void test_rdump_smallest_hash_by_hand(void **state) {
    static const uint8_t want[] = {
        0x10, 0x0c,                         /* hash listpack, 12 bytes */
        0x0c, 0x00, 0x00, 0x00, 0x02, 0x00, /* total, 2 elements */
        0x81, 'a',  0x02,                   /* "a", backlen 2 */
        0x01, 0x01,                         /* 1 (7-bit uint), backlen 1 */
        0xff,                               /* end */
        0x0a, 0x00,                         /* RDB version 10 */
    };
    uint8_t buf[64];
    td_rdump_t d;
    size_t len;
    const uint8_t *p;
    uint64_t crc = 0;
    (void)state;

    td_rdump_begin(&d, buf, sizeof(buf));
    td_rdump_add(&d, "a", 1, "1", 1);
    p = td_rdump_end(&d, &len);
    assert_non_null(p);
    assert_int_equal(len, sizeof(want) + 8);
    assert_memory_equal(p, want, sizeof(want));
    for (int i = 0; i < 8; i++)
        crc |= (uint64_t)p[sizeof(want) + i] << (8 * i);
    assert_true(crc == td_rdump_crc64(0, want, sizeof(want)));
}

/* Every listpack encoding: each integer width at its edges, strings that
 * look almost like integers, both string length forms. */
static void test_rdump_every_encoding_equals_redis(void **state) {
    static const char *vals[] = {
        "0",
        "1",
        "127",
        "128",
        "-1",
        "4095",
        "-4096",
        "4096",
        "-4097",
        "32767",
        "-32768",
        "32768",
        "-32769",
        "8388607",
        "-8388608",
        "8388608",
        "-8388609",
        "2147483647",
        "-2147483648",
        "2147483648",
        "-2147483649",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "-0",
        "007",
        "00",
        "1e3",
        "+1",
        "-",
        "",
        "0.5",
        "-0.0042",
        "1.732e+12",
        " 1",
        "1 ",
        "12345678901234567890",
        "123456789012345678901",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"};
    enum { N = sizeof(vals) / sizeof(vals[0]) };
    const char *kv[2 * N];
    char names[N][16];
    (void)state;

    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "f%d", i);
        kv[2 * i] = names[i];
        kv[2 * i + 1] = vals[i];
    }
    assert_int_equal(strlen(vals[N - 2]), 63);
    assert_int_equal(strlen(vals[N - 1]), TD_RDUMP_STR_MAX);
    check_pairs("enc", N, kv);
}

/* A merchant-sized hash (listpack over 64 bytes: the RDB 14-bit length),
 * and one too large for a listpack (RDB 32-bit length; Redis converts it
 * to a hashtable on RESTORE, as HSET does). */
static void test_rdump_sizes_equal_redis(void **state) {
    static char names[300][24], vals[300][TD_RDUMP_STR_MAX + 1];
    const char *kv[600];
    (void)state;

    for (int i = 0; i < 300; i++) {
        snprintf(names[i], sizeof(names[i]), "signal_%03d_30d", i);
        if (i % 3 == 0)
            snprintf(vals[i], sizeof(vals[i]), "%d", i * 977);
        else if (i % 3 == 1 && i < 92)
            snprintf(vals[i], sizeof(vals[i]), "%.10g", i / 7.0);
        else
            memset(vals[i], 'x', TD_RDUMP_STR_MAX);
        kv[2 * i] = names[i];
        kv[2 * i + 1] = vals[i];
    }
    check_pairs("merchant", 92, kv);
    check_pairs("big", 300, kv);
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next_rand(void) {
    return td_h_xorshift(&rng);
}

/* Random hashes of random sizes: integers of every width and sign, and
 * strings of every length up to the limit, equal Redis' own. */
static void test_rdump_random_hashes_equal_redis(void **state) {
    static char bufs[128][TD_RDUMP_STR_MAX + 1];
    const char *kv[128];
    (void)state;

    for (int round = 0; round < 200; round++) {
        int npairs = 1 + (int)(next_rand() % 64);
        for (int i = 0; i < 2 * npairs; i++) {
            char *b = bufs[i];
            uint64_t r = next_rand();
            if (i % 2 == 0) {
                snprintf(b, sizeof(bufs[i]), "f%d_%llx", i,
                         (unsigned long long)(r & 0xffff));
            } else if (r % 3 == 0) {
                int64_t v = (int64_t)next_rand() >> (next_rand() % 64);
                snprintf(b, sizeof(bufs[i]), "%lld", (long long)v);
            } else if (r % 3 == 1) {
                snprintf(b, sizeof(bufs[i]), "%.10g",
                         (double)(int64_t)next_rand() / (double)(1 + r % 1000));
            } else {
                size_t len = (size_t)(next_rand() % (TD_RDUMP_STR_MAX + 1));
                for (size_t k = 0; k < len; k++)
                    b[k] = (char)('a' + next_rand() % 26);
                b[len] = 0;
            }
            kv[i] = b;
        }
        check_pairs("random", npairs, kv);
    }
}

/* Long strings (td_rdump_begin_long): every length up to
 * TD_RDUMP_LONG_MAX, both backlen sizes; the listpack equals the one Redis
 * builds when hash-max-listpack-value allows such strings, and Redis keeps
 * it a listpack under the default limit. */
static void test_rdump_long_strings_equal_redis(void **state) {
    static char bufs[64][TD_RDUMP_LONG_MAX + 1];
    const char *kv[64];
    static const size_t lens[] = {0,   1,   63,  64,   65,   126,
                                  127, 128, 300, 1000, 4094, TD_RDUMP_LONG_MAX};
    redisReply *r;
    (void)state;

    for (int round = 0; round < 100; round++) {
        int npairs = 1 + (int)(next_rand() % 32);
        for (int i = 0; i < 2 * npairs; i++) {
            size_t len =
                next_rand() % 4 ? next_rand() % 80 : lens[next_rand() % 12];
            char *b = bufs[i];
            if (i % 2 == 0) {
                snprintf(b, 16, "f%d_", i);
                len = len > 16 ? len : 16;
                for (size_t k = strlen(b); k < len; k++)
                    b[k] = 'k';
            } else if (next_rand() % 3 == 0) {
                snprintf(
                    b, sizeof(bufs[i]), "%lld",
                    (long long)((int64_t)next_rand() >> (next_rand() % 64)));
                kv[i] = b;
                continue;
            } else {
                for (size_t k = 0; k < len; k++)
                    b[k] = (char)('a' + next_rand() % 26);
            }
            b[len] = 0;
            kv[i] = b;
        }
        check_pairs_as("long", npairs, kv, 1);
    }
    /* One value past the default limit: still a listpack. */
    memset(bufs[1], 'r', 300);
    bufs[1][300] = 0;
    kv[0] = "reasons";
    kv[1] = bufs[1];
    check_pairs_as("long", 1, kv, 1);
    r = redisCommand(rc, "OBJECT ENCODING long");
    assert_string_equal(r->str, "listpack");
    freeReplyObject(r);
}

static void test_rdump_refuses_what_does_not_fit(void **state) {
    uint8_t buf[256];
    char longv[TD_RDUMP_STR_MAX + 2];
    td_rdump_t d;
    size_t len;
    (void)state;

    memset(longv, 'v', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = 0;
    td_rdump_begin(&d, buf, sizeof(buf));
    td_rdump_add(&d, "f", 1, longv, strlen(longv));
    assert_null(td_rdump_end(&d, &len));

    td_rdump_begin(&d, buf, sizeof(buf));
    for (int i = 0; i < 100; i++)
        td_rdump_add(&d, "field", 5, "value", 5);
    assert_true(d.overflow);
    assert_null(td_rdump_end(&d, &len));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rdump_crc64_check_value),
        cmocka_unit_test(test_rdump_smallest_hash_by_hand),
        cmocka_unit_test(test_rdump_every_encoding_equals_redis),
        cmocka_unit_test(test_rdump_sizes_equal_redis),
        cmocka_unit_test(test_rdump_random_hashes_equal_redis),
        cmocka_unit_test(test_rdump_long_strings_equal_redis),
        cmocka_unit_test(test_rdump_refuses_what_does_not_fit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
