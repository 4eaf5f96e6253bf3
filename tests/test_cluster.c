/*
 * test_cluster.c - Redis Cluster routing without a server: CRC16 and hash
 * slots against values redis-server 7.0.15 gave for CLUSTER KEYSLOT, hash
 * tag rules, where each command's key is, CLUSTER SLOTS replies (parsed
 * from RESP text by hiredis' own reader, so they are exactly what the wire
 * gives) and MOVED/ASK/TRYAGAIN/CLUSTERDOWN replies, malformed ones
 * included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "common.h"

/* A reply parsed from RESP text; caller frees. */
static redisReply *resp(const char *text) {
    redisReader *rd = redisReaderCreate();
    void *r = NULL;

    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

static void test_crc16_matches_xmodem_check_value(void **state) {
    (void)state;
    /* The CRC catalogue's check value for CRC-16/XMODEM. */
    assert_int_equal(td_cluster_crc16("123456789", 9), 0x31C3);
    assert_int_equal(td_cluster_crc16("", 0), 0);
}

static void test_keyslot_equals_redis_cluster_keyslot(void **state) {
    /* clang-format off */
    static const struct { const char *key; int slot; } v[] = {
        {"foo", 12182}, {"bar", 5061}, {"123456789", 12739}, {"", 0},
        {"trust:scores", 8580}, {"trust:{m-42}:signals", 15235},
        {"trust:part:{orders/0}", 7428}, {"a{b}c", 3300},
    };
    /* clang-format on */
    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(v); i++)
        assert_int_equal(td_cluster_keyslot(v[i].key, strlen(v[i].key)),
                         v[i].slot);
}

static void test_keyslot_hash_tag_rules(void **state) {
    /* clang-format off */
    static const struct { const char *key; int slot; } v[] = {
        {"{user1000}.following", 3443}, {"{user1000}.followers", 3443},
        {"foo{}{bar}", 8363},    /* empty tag: the whole key */
        {"foo{{bar}}zap", 4015}, /* tag is "{bar" */
        {"{bar", 4015},          /* no closing brace: the whole key */
        {"foo{bar}{zap}", 5061}, /* first tag only: "bar" */
        {"bar}", 6624}, {"{}", 15257},
    };
    /* clang-format on */
    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(v); i++)
        assert_int_equal(td_cluster_keyslot(v[i].key, strlen(v[i].key)),
                         v[i].slot);
    /* A merchant's three keys share a slot whatever the id holds. */
    assert_int_equal(td_cluster_keyslot("trust:{a:b}:wm", 14),
                     td_cluster_keyslot("trust:{a:b}:score", 17));
    /* Bytes after a NUL count: the length rules, not strlen. */
    assert_int_not_equal(td_cluster_keyslot("a\0b", 3),
                         td_cluster_keyslot("a", 1));
}

static int key_of(int argc, const char *const *argv, int *write) {
    size_t len[16];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    return td_cluster_cmd_key(argc, argv, len, write);
}

/* Node markers need a tag in any given slot: every slot has one, short. */
static void test_slot_tag_lands_in_its_slot(void **state) {
    char tag[16], key[40];
    (void)state;
    for (int slot = 0; slot < TD_CLUSTER_SLOTS; slot += 97) {
        td_cluster_slot_tag(slot, tag, sizeof(tag));
        assert_true(strlen(tag) < 8);
        assert_int_equal(td_cluster_keyslot(tag, strlen(tag)), slot);
        snprintf(key, sizeof(key), "trust:node:{%s}", tag);
        assert_int_equal(td_cluster_keyslot(key, strlen(key)), slot);
    }
    td_cluster_slot_tag(TD_CLUSTER_SLOTS - 1, tag, sizeof(tag));
    assert_int_equal(td_cluster_keyslot(tag, strlen(tag)),
                     TD_CLUSTER_SLOTS - 1);
}

static void test_cmd_key_finds_fcall_first_key(void **state) {
    const char *fcall[] = {
        "FCALL",        "td_apply_x",      "3", "trust:{m}:signals",
        "trust:{m}:wm", "trust:{m}:score", "1"};
    const char *fcall0[] = {"fcall", "f", "0", "arg"};
    const char *fcall_bad[] = {"FCALL", "f", "x", "k"};
    const char *ro[] = {"FCALL_RO", "f", "1", "k"};
    int w = -1;
    (void)state;
    assert_int_equal(key_of(7, fcall, &w), 3);
    assert_int_equal(w, 1);
    assert_int_equal(key_of(4, fcall0, &w), -1);
    assert_int_equal(key_of(4, fcall_bad, &w), -1);
    assert_int_equal(key_of(3, fcall, &w), -1); /* no key argument */
    assert_int_equal(key_of(4, ro, &w), 3);
    assert_int_equal(w, 0);
}

static void test_cmd_key_for_key_and_keyless_commands(void **state) {
    const char *zadd[] = {"ZADD", "trust:scores", "1.5", "m"};
    const char *hgetall[] = {"hgetall", "trust:{m}:score"};
    const char *scan[] = {"SCAN", "0", "MATCH", "trust:part:{*}"};
    const char *wait[] = {"WAIT", "1", "100"};
    const char *unknown[] = {"XADD", "s", "*", "f", "v"};
    const char *mem[] = {"MEMORY", "USAGE", "k"};
    const char *alone[] = {"HGETALL"};
    int w = -1;
    (void)state;
    assert_int_equal(key_of(4, zadd, &w), 1);
    assert_int_equal(w, 1);
    assert_int_equal(key_of(2, hgetall, &w), 1);
    assert_int_equal(w, 0);
    assert_int_equal(key_of(4, scan, &w), -1);
    assert_int_equal(w, 0);
    assert_int_equal(key_of(3, wait, &w), -1);
    assert_int_equal(key_of(5, unknown, &w), 1);
    assert_int_equal(w, 1); /* unknown: treated as a write */
    assert_int_equal(key_of(3, mem, &w), 2);
    assert_int_equal(key_of(1, alone, &w), -1);
    assert_int_equal(key_of(0, alone, &w), -1);
}

/* The trustd module's TD.LOAD only reads (registered "readonly"): no WAIT
 * follows a round of loads. Its other commands write. */
static void test_cmd_key_module_load_is_a_read(void **state) {
    const char *load[] = {"TD.LOAD",         "trust:{m}:state",
                          "trust:{m}:wm",    "trust:{m}:signals",
                          "trust:{m}:score", "12345678"};
    const char *put[] = {"TD.PUT", "payload", "trust:{m}:state", "x"};
    int w = -1;
    (void)state;
    assert_int_equal(key_of(6, load, &w), 1);
    assert_int_equal(w, 0);
    /* TD.PUT's first key follows its payload */
    assert_int_equal(key_of(4, put, &w), 2);
    assert_int_equal(w, 1);
}

/* Three masters with one replica each, as CLUSTER SLOTS on 7.0 sends it:
 * the master's slots in two ranges for the first node. */
static const char slots3[] =
    "*4\r\n"
    "*4\r\n:0\r\n:5460\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$3\r\nid1\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7004\r\n$3\r\nid4\r\n*0\r\n"
    "*4\r\n:5461\r\n:10922\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7002\r\n$3\r\nid2\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7005\r\n$3\r\nid5\r\n*0\r\n"
    "*3\r\n:10923\r\n:16000\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$3\r\nid3\r\n*0\r\n"
    "*3\r\n:16001\r\n:16383\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$3\r\nid1\r\n*0\r\n";

static const td_cluster_node_t *node_of_slot(td_cluster_t *cl, int slot) {
    int n = td_cluster_slot_node(cl, slot);
    assert_true(n >= 0);
    return td_cluster_node_get(cl, n);
}

static void test_load_slots_maps_every_slot_to_its_master(void **state) {
    td_cluster_t *cl = td_cluster_new();
    redisReply *r = resp(slots3);
    char errstr[256];
    int m[8];
    (void)state;

    assert_int_equal(
        td_cluster_load_slots(cl, r, "10.0.0.1", errstr, sizeof(errstr)),
        TD_OK);
    assert_int_equal(td_cluster_covered(cl), TD_CLUSTER_SLOTS);
    assert_int_equal(node_of_slot(cl, 0)->port, 7001);
    assert_int_equal(node_of_slot(cl, 5460)->port, 7001);
    assert_int_equal(node_of_slot(cl, 5461)->port, 7002);
    assert_int_equal(node_of_slot(cl, 12000)->port, 7003);
    assert_int_equal(node_of_slot(cl, 16383)->port, 7001);
    assert_string_equal(node_of_slot(cl, 16383)->host, "127.0.0.1");
    /* Replicas are not routed to. */
    assert_int_equal(td_cluster_node_cnt(cl), 3);
    assert_int_equal(td_cluster_masters(cl, m, 8), 3);
    assert_int_equal(td_cluster_node_get(cl, m[0])->port, 7001);
    assert_int_equal(td_cluster_node_get(cl, m[2])->port, 7003);
    assert_int_equal(td_cluster_masters(cl, m, 1), 3); /* count, 1 filled */
    freeReplyObject(r);
    td_cluster_destroy(cl);
}

static void test_load_slots_after_failover_moves_slots(void **state) {
    static const char after[] =
        "*1\r\n*3\r\n:0\r\n:16383\r\n"
        "*4\r\n$9\r\n127.0.0.1\r\n:7004\r\n$3\r\nid4\r\n*0\r\n";
    td_cluster_t *cl = td_cluster_new();
    redisReply *r = resp(slots3), *r2 = resp(after);
    char errstr[256];
    int old;
    (void)state;

    assert_int_equal(td_cluster_load_slots(cl, r, "h", errstr, sizeof(errstr)),
                     TD_OK);
    old = td_cluster_slot_node(cl, 0);
    assert_int_equal(td_cluster_load_slots(cl, r2, "h", errstr, sizeof(errstr)),
                     TD_OK);
    assert_int_equal(node_of_slot(cl, 0)->port, 7004);
    assert_int_equal(node_of_slot(cl, 9000)->port, 7004);
    /* Node indexes stay; the old master is no longer one. */
    assert_int_equal(td_cluster_node_get(cl, old)->port, 7001);
    assert_false(td_cluster_node_get(cl, old)->master);
    assert_true(node_of_slot(cl, 0)->master);
    freeReplyObject(r);
    freeReplyObject(r2);
    td_cluster_destroy(cl);
}

static void test_load_slots_endpoint_variants(void **state) {
    /* nil endpoint: the host we asked; "?": the metadata ip; a hostname as
     * cluster-preferred-endpoint-type hostname announces it. */
    static const char text[] =
        "*3\r\n"
        "*3\r\n:0\r\n:99\r\n*4\r\n$-1\r\n:7001\r\n$1\r\na\r\n*0\r\n"
        "*3\r\n:100\r\n:199\r\n*4\r\n$1\r\n?\r\n:7002\r\n$1\r\nb\r\n"
        "*2\r\n$2\r\nip\r\n$8\r\n10.1.2.3\r\n"
        "*3\r\n:200\r\n:16383\r\n*4\r\n$14\r\nredis-node-3.x\r\n:6379\r\n"
        "$1\r\nc\r\n*2\r\n$2\r\nip\r\n$8\r\n10.9.9.9\r\n";
    td_cluster_t *cl = td_cluster_new();
    redisReply *r = resp(text);
    char errstr[256];
    (void)state;

    assert_int_equal(
        td_cluster_load_slots(cl, r, "seed.example", errstr, sizeof(errstr)),
        TD_OK);
    assert_string_equal(node_of_slot(cl, 50)->host, "seed.example");
    assert_string_equal(node_of_slot(cl, 150)->host, "10.1.2.3");
    assert_string_equal(node_of_slot(cl, 300)->host, "redis-node-3.x");
    assert_int_equal(node_of_slot(cl, 300)->port, 6379);
    freeReplyObject(r);
    td_cluster_destroy(cl);
}

static void test_load_slots_rejects_malformed_and_keeps_map(void **state) {
    static const char *const bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        ":1\r\n",
        "*0\r\n",                                           /* not formed */
        "*1\r\n*2\r\n:0\r\n:10\r\n",                        /* no master */
        "*1\r\n*3\r\n:10\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* lo > hi */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:0\r\n", /* port 0 */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:7\r\n:1\r\n",      /* int host */
        "*1\r\n*3\r\n$1\r\n0\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",
    };
    td_cluster_t *cl = td_cluster_new();
    redisReply *good = resp(slots3);
    char errstr[256];
    (void)state;

    assert_int_equal(
        td_cluster_load_slots(cl, good, "h", errstr, sizeof(errstr)), TD_OK);
    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++) {
        redisReply *r = resp(bad[i]);
        errstr[0] = '\0';
        assert_int_equal(
            td_cluster_load_slots(cl, r, "h", errstr, sizeof(errstr)), TD_ERR);
        assert_true(strlen(errstr) > 0);
        assert_int_equal(td_cluster_covered(cl), TD_CLUSTER_SLOTS);
        assert_int_equal(node_of_slot(cl, 12000)->port, 7003);
        freeReplyObject(r);
    }
    assert_int_equal(
        td_cluster_load_slots(cl, NULL, "h", errstr, sizeof(errstr)), TD_ERR);
    freeReplyObject(good);
    td_cluster_destroy(cl);
}

static void test_set_slot_after_moved(void **state) {
    td_cluster_t *cl = td_cluster_new();
    int a = td_cluster_node(cl, "h1", 2, 1), b;
    (void)state;

    assert_int_equal(td_cluster_slot_node(cl, 7), -1);
    td_cluster_set_slot(cl, 7, a);
    assert_int_equal(td_cluster_slot_node(cl, 7), a);
    b = td_cluster_node(cl, "h2", 2, 1);
    assert_int_equal(td_cluster_node(cl, "h1", 2, 1), a); /* found again */
    td_cluster_set_slot(cl, 7, b);
    assert_int_equal(td_cluster_slot_node(cl, 7), b);
    assert_int_equal(td_cluster_covered(cl), 1);
    /* Out of range: ignored. */
    td_cluster_set_slot(cl, TD_CLUSTER_SLOTS, a);
    td_cluster_set_slot(cl, 8, 99);
    assert_int_equal(td_cluster_slot_node(cl, TD_CLUSTER_SLOTS), -1);
    assert_int_equal(td_cluster_slot_node(cl, 8), -1);
    td_cluster_destroy(cl);
}

static td_cluster_reply_t
classify(const char *s, int *slot, char *host, int *port) {
    return td_cluster_classify(s, strlen(s), slot, host, TD_CLUSTER_HOST_MAX,
                               port);
}

static void test_classify_moved_and_ask(void **state) {
    char host[TD_CLUSTER_HOST_MAX];
    int slot = -1, port = -1;
    (void)state;

    assert_int_equal(classify("MOVED 3999 127.0.0.1:6381", &slot, host, &port),
                     TD_CLUSTER_MOVED);
    assert_int_equal(slot, 3999);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6381);
    assert_int_equal(classify("ASK 0 redis-node-2:6379", &slot, host, &port),
                     TD_CLUSTER_ASK);
    assert_int_equal(slot, 0);
    assert_string_equal(host, "redis-node-2");
    assert_int_equal(port, 6379);
    /* Unknown endpoint: empty host. */
    assert_int_equal(classify("MOVED 16383 :7000", &slot, host, &port),
                     TD_CLUSTER_MOVED);
    assert_int_equal(slot, 16383);
    assert_string_equal(host, "");
    /* IPv6: the port is after the last colon. */
    assert_int_equal(classify("MOVED 12 ::1:7000", &slot, host, &port),
                     TD_CLUSTER_MOVED);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7000);
}

static void test_classify_rejects_malformed_redirects(void **state) {
    static const char *const bad[] = {
        "MOVED ",
        "MOVED x 127.0.0.1:1",
        "MOVED 16384 h:1",
        "MOVED 1 h",
        "MOVED 1 h:",
        "MOVED 1 h:0",
        "MOVED 1 h:65536",
        "MOVED 1 h:12x",
        "MOVED 1h:1",
        "ASK 1 h 2:3",
        "MOVED 99999999999999999999 h:1",
    };
    char host[TD_CLUSTER_HOST_MAX], longer[400];
    int slot, port;
    (void)state;

    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++)
        assert_int_equal(classify(bad[i], &slot, host, &port),
                         TD_CLUSTER_BAD_REDIRECT);
    /* A host that does not fit. */
    snprintf(longer, sizeof(longer), "MOVED 1 %0300d:1", 0);
    assert_int_equal(classify(longer, &slot, host, &port),
                     TD_CLUSTER_BAD_REDIRECT);
    /* Length-bounded: no read past len. */
    assert_int_equal(td_cluster_classify("MOVED 12 h:1", 9, &slot, host,
                                         sizeof(host), &port),
                     TD_CLUSTER_BAD_REDIRECT);
}

static void test_classify_transient_and_plain_errors(void **state) {
    char host[TD_CLUSTER_HOST_MAX];
    int slot, port;
    (void)state;

    assert_int_equal(classify("TRYAGAIN Multiple keys request during "
                              "rehashing of slot",
                              &slot, host, &port),
                     TD_CLUSTER_TRYAGAIN);
    assert_int_equal(
        classify("CLUSTERDOWN The cluster is down", &slot, host, &port),
        TD_CLUSTER_CLUSTERDOWN);
    assert_int_equal(
        classify("CLUSTERDOWN Hash slot not served", &slot, host, &port),
        TD_CLUSTER_CLUSTERDOWN);
    assert_int_equal(classify("LOADING Redis is loading the dataset in memory",
                              &slot, host, &port),
                     TD_CLUSTER_LOADING);
    assert_int_equal(
        classify("TDFENCED trust:part:{orders/0} is owned", &slot, host, &port),
        TD_CLUSTER_REPLY_OK);
    assert_int_equal(classify("ERR unknown command", &slot, host, &port),
                     TD_CLUSTER_REPLY_OK);
    assert_int_equal(classify("", &slot, host, &port), TD_CLUSTER_REPLY_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_matches_xmodem_check_value),
        cmocka_unit_test(test_keyslot_equals_redis_cluster_keyslot),
        cmocka_unit_test(test_keyslot_hash_tag_rules),
        cmocka_unit_test(test_slot_tag_lands_in_its_slot),
        cmocka_unit_test(test_cmd_key_finds_fcall_first_key),
        cmocka_unit_test(test_cmd_key_for_key_and_keyless_commands),
        cmocka_unit_test(test_cmd_key_module_load_is_a_read),
        cmocka_unit_test(test_load_slots_maps_every_slot_to_its_master),
        cmocka_unit_test(test_load_slots_after_failover_moves_slots),
        cmocka_unit_test(test_load_slots_endpoint_variants),
        cmocka_unit_test(test_load_slots_rejects_malformed_and_keeps_map),
        cmocka_unit_test(test_set_slot_after_moved),
        cmocka_unit_test(test_classify_moved_and_ask),
        cmocka_unit_test(test_classify_rejects_malformed_redirects),
        cmocka_unit_test(test_classify_transient_and_plain_errors),
    };
    return cmocka_run_group_tests_name("test_cluster", tests, NULL, NULL);
}
