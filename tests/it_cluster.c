/*
 * it_cluster.c - trustd on a real Redis Cluster: six redis-servers on
 * loopback (3 masters + 3 replicas, AOF with fsync always,
 * cluster-node-timeout 2000 ms) joined by `redis-cli --cluster create`.
 *
 * The store: batches are routed per node and called back in order, SCAN
 * walks every master, a batch is streamed while it is built and WAITs
 * once per master, a single address is recognised as a cluster node,
 * MOVED, ASK and TRYAGAIN are handled during a hand-made slot migration,
 * and a write is not called done while its master has no replica.
 *
 * trustd: the signals of every merchant equal the reference fold
 * (td_sigdelta_add / td_sigstate_merge per event, as in it_exactly_once.c)
 * in steady state, while `redis-cli --cluster reshard` moves 2000 slots
 * under traffic, and when a master is SIGKILLed mid-stream and its replica
 * takes over. trustctl reads the cluster (get, signals, history, top, bottom,
 * offsets).
 *
 * Seeded: TD_SEED=<n> reproduces a run.
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

#include "cluster.h"
#include "harness.h"
#include "loadgen.h"
#include "signals.h"
#include "store.h"


typedef struct world_s {
    td_h_kafka_t kafka;
    td_h_producer_t *prod;
    td_loadgen_t *gen;
    td_store_t *st; /* read-only cluster client for the checks */
    td_h_ref_t *ref;
    long produced;
} world_t;

static td_h_cluster_t cl;
static uint64_t seed;

static uint64_t rnd(void) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static td_store_t *store_new(const char *addrs,
                             int cluster,
                             int readonly,
                             int command_timeout_ms) {
    td_store_conf_t sc = {0};
    char errstr[512];
    td_store_t *st;

    sc.addrs = addrs;
    sc.user = "";
    sc.password = "";
    sc.connect_timeout_ms = 2000;
    sc.command_timeout_ms = command_timeout_ms;
    sc.cluster = cluster;
    sc.readonly = readonly;
    st = td_store_new(&sc, errstr, sizeof(errstr));
    if (!st) fail_msg("td_store_new: %s", errstr);
    return st;
}

/* A command on node i; the reply is checked for not being an error. */
static void node_cmd(int i, const char *fmt, ...) {
    redisContext *rc = td_h_redis_connect(&cl.node[i]);
    redisReply *r;
    va_list ap;

    assert_non_null(rc);
    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    if (!r || r->type == REDIS_REPLY_ERROR)
        fail_msg("node %d: %s", i, r ? r->str : rc->errstr);
    freeReplyObject(r);
    redisFree(rc);
}

/* Empties every master (replicas follow), keeping the functions. */
static void flush_cluster(void) {
    for (int i = 0; i < cl.n; i++) {
        if (!strcmp(td_h_cluster_role(&cl, i), "master"))
            node_cmd(i, "FLUSHALL");
    }
}

/* ---- the store ---- */

typedef struct order_s {
    int next; /* index the next callback must have */
    int bad;
} order_t;

typedef struct ordcb_s {
    order_t *o;
    int i;
} ordcb_t;

static int
in_order(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    ordcb_t *c = opaque;
    if (c->i != c->o->next++ || r->type == REDIS_REPLY_ERROR) c->o->bad++;
    return TD_OK;
}

/* Queues HSET trust:{<tag>-<i>}:score v <i>, its reply checked by cb. */
static void
queue_hset(td_rbatch_t *b, const char *tag, int i, ordcb_t *cb, order_t *o) {
    td_rbatch_begin(b);
    td_rbatch_str(b, "HSET");
    td_rbatch_fmt(b, "trust:{%s-%d}:score", tag, i);
    td_rbatch_str(b, "v");
    td_rbatch_i64(b, i);
    cb->o = o;
    cb->i = i;
    td_rbatch_end(b, in_order, cb);
}

static void test_store_routes_batches_and_scans_every_master(void **state) {
    enum { N = 600 };
    td_store_t *st = store_new(cl.seeds, 1, 0, 5000);
    td_rbatch_t *b = td_rbatch_new();
    static ordcb_t cbs[N];
    order_t o = {0};
    char errstr[512], key[64], cursor[64] = "0";
    int found = 0, keys_on[TD_H_CLUSTER_MAX] = {0}, masters_with_keys = 0;
    (void)state;

    flush_cluster();
    for (int i = 0; i < N; i++)
        queue_hset(b, "it", i, &cbs[i], &o);
    td_rbatch_begin(b);
    td_rbatch_str(b, "FCALL");
    td_rbatch_str(b, td_store_fn(st, "part"));
    td_rbatch_str(b, "1");
    td_rbatch_str(b, "trust:part:{orders/7}");
    td_rbatch_str(b, "claim");
    td_rbatch_end(b, NULL, NULL);
    if (td_store_exec(st, b, errstr, sizeof(errstr)) != TD_OK)
        fail_msg("exec: %s", errstr);
    assert_true(td_store_is_cluster(st));
    assert_int_equal(o.next, N);
    assert_int_equal(o.bad, 0);

    /* Every master holds a share: the batch really was split. */
    for (int i = 0; i < cl.n; i++) {
        redisContext *rc;
        redisReply *r;
        if (strcmp(td_h_cluster_role(&cl, i), "master")) continue;
        rc = td_h_redis_connect(&cl.node[i]);
        r = redisCommand(rc, "DBSIZE");
        keys_on[i] = r ? (int)r->integer : 0;
        masters_with_keys += keys_on[i] > 0;
        freeReplyObject(r);
        redisFree(rc);
    }
    assert_int_equal(masters_with_keys, 3);

    /* Queued single commands come back in order, from every node. */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "trust:{it-%d}:score", i);
        assert_int_equal(td_store_append(st, "HGET %s v", key), TD_OK);
    }
    for (int i = 0; i < N; i++) {
        redisReply *r = td_store_reply(st, errstr, sizeof(errstr));
        if (!r) fail_msg("reply %d: %s", i, errstr);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_int_equal(atoi(r->str), i);
        freeReplyObject(r);
    }
    assert_null(td_store_reply(st, errstr, sizeof(errstr)));

    /* A plain SCAN loop covers the cluster. */
    do {
        redisReply *r = td_store_cmd(st, errstr, sizeof(errstr),
                                     "SCAN %s MATCH trust:{it-*}:score "
                                     "COUNT 100",
                                     cursor);
        if (!r) fail_msg("SCAN: %s", errstr);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        found += (int)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0"));
    assert_int_equal(found, N);
    /* A cursor this store did not hand out is refused, not guessed. */
    assert_null(td_store_cmd(st, errstr, sizeof(errstr), "SCAN 9-0"));

    td_rbatch_destroy(b);
    td_store_destroy(st);
}

/* calls of WAIT on node i since CONFIG RESETSTAT (INFO commandstats). */
static long wait_calls(int i) {
    redisContext *rc = td_h_redis_connect(&cl.node[i]);
    redisReply *r;
    const char *p;
    long calls = 0;

    assert_non_null(rc);
    r = redisCommand(rc, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    p = strstr(r->str, "cmdstat_wait:calls=");
    if (p) calls = atol(p + strlen("cmdstat_wait:calls="));
    freeReplyObject(r);
    redisFree(rc);
    return calls;
}

typedef struct failat_s {
    int next, fail;
} failat_t;

static int
fail_at(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    failat_t *f = opaque;
    (void)r;
    if (f->next++ == f->fail) {
        snprintf(errstr, errstr_size, "failing at %d", f->fail);
        return TD_ERR;
    }
    return TD_OK;
}

static void test_store_streams_a_batch_with_one_wait_per_master(void **state) {
    /* More than two chunks (store_stream.c), on every master. */
    enum { N = 3 * 2048 + 100 };
    td_store_t *st = store_new(cl.seeds, 1, 0, 5000);
    td_rbatch_t *b = td_rbatch_new();
    static ordcb_t cbs[N];
    order_t o = {0};
    char errstr[512];
    int early, masters = 0;
    (void)state;

    flush_cluster();
    for (int i = 0; i < cl.n; i++) {
        if (!strcmp(td_h_cluster_role(&cl, i), "master"))
            node_cmd(i, "CONFIG RESETSTAT");
    }
    for (int i = 0; i < N; i++) {
        queue_hset(b, "wait", i, &cbs[i], &o);
        if (td_store_exec_part(st, b, 0, errstr, sizeof(errstr)) != TD_OK)
            fail_msg("exec_part: %s", errstr);
    }
    /* Replies came back while the batch was built. */
    early = o.next;
    if (td_store_exec_part(st, b, 1, errstr, sizeof(errstr)) != TD_OK)
        fail_msg("exec: %s", errstr);
    /* One WAIT per master for the whole batch, not one per chunk. */
    for (int i = 0; i < cl.n; i++) {
        if (strcmp(td_h_cluster_role(&cl, i), "master")) continue;
        masters++;
        assert_int_equal(wait_calls(i), 1);
    }
    assert_int_equal(masters, 3);
    assert_true(early > 0 && early < N);
    assert_int_equal(o.next, N);
    assert_int_equal(o.bad, 0);

    /* A failing callback fails the batch mid-stream; what the nodes still
     * owed is read, so the next batch gets its own replies. */
    failat_t f = {0, 3000};
    td_rbatch_reset(b);
    for (int i = 0; i < N; i++) {
        td_rbatch_begin(b);
        td_rbatch_str(b, "HGET");
        td_rbatch_fmt(b, "trust:{wait-%d}:score", i);
        td_rbatch_str(b, "v");
        td_rbatch_end(b, fail_at, &f);
    }
    assert_int_equal(td_store_exec(st, b, errstr, sizeof(errstr)), TD_ERR);
    assert_string_equal(errstr, "failing at 3000");
    assert_int_equal(f.next, 3001);
    o.next = 0;
    td_rbatch_reset(b);
    for (int i = 0; i < N; i++)
        queue_hset(b, "wait", i, &cbs[i], &o);
    if (td_store_exec(st, b, errstr, sizeof(errstr)) != TD_OK)
        fail_msg("exec after a failed one: %s", errstr);
    assert_int_equal(o.next, N);
    assert_int_equal(o.bad, 0);
    td_rbatch_destroy(b);
    td_store_destroy(st);
}

static void test_store_detects_a_cluster_node_by_itself(void **state) {
    /* One address, cluster not configured: CLUSTER INFO tells. */
    td_store_t *st = store_new(cl.node[0].addr, 0, 0, 5000);
    char errstr[512];
    int hits = 0;
    (void)state;

    if (td_store_connect(st, errstr, sizeof(errstr)) != TD_OK)
        fail_msg("connect: %s", errstr);
    assert_true(td_store_is_cluster(st));
    for (int i = 0; i < 50; i++) {
        redisReply *r =
            td_store_cmd(st, errstr, sizeof(errstr), "SET it:detect:{%d} x", i);
        if (!r) fail_msg("SET: %s", errstr);
        hits += r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
    }
    assert_int_equal(hits, 50);
    td_store_destroy(st);
}

/* Every node agrees on the slots and none is open: what `redis-cli
 * --cluster reshard` insists on. */
static int cluster_consistent(void *arg) {
    char cmd[300];
    (void)arg;
    if (!td_h_cluster_ready(&cl)) return 0;
    snprintf(cmd, sizeof(cmd), "redis-cli --cluster check %s >/dev/null 2>&1",
             cl.node[0].proc.pid > 0 ? cl.node[0].addr : cl.node[1].addr);
    return system(cmd) == 0;
}

static int other_master(int not ) {
    for (int i = 0; i < cl.n; i++) {
        if (i != not &&!strcmp(td_h_cluster_role(&cl, i), "master")) return i;
    }
    return -1;
}

static redisReply *must(td_store_t *st, redisReply *r, const char *errstr) {
    (void)st;
    if (!r) fail_msg("%s", errstr);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("error reply: %s", r->str);
    return r;
}

static void test_store_follows_moved_ask_and_tryagain(void **state) {
    td_store_t *st = store_new(cl.seeds, 1, 0, 5000);
    char errstr[512], tag[32], k1[64], k2[64], k3[64], ida[41], idb[41];
    static const char eval2[] = "return redis.call('HGET', KEYS[1], 'f') .. "
                                "redis.call('HGET', KEYS[2], 'f')";
    int slot = 1234, a, b;
    redisReply *r;
    (void)state;

    td_cluster_slot_tag(slot, tag, sizeof(tag));
    snprintf(k1, sizeof(k1), "trust:{%s}:signals", tag);
    snprintf(k2, sizeof(k2), "trust:{%s}:wm", tag);
    snprintf(k3, sizeof(k3), "trust:{%s}:score", tag);
    a = td_h_cluster_master_of(&cl, slot);
    b = other_master(a);
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(td_h_cluster_id(&cl, a, ida), 0);
    assert_int_equal(td_h_cluster_id(&cl, b, idb), 0);
    freeReplyObject(
        must(st, td_store_cmd(st, errstr, sizeof(errstr), "HSET %s f 1", k1),
             errstr));
    freeReplyObject(
        must(st, td_store_cmd(st, errstr, sizeof(errstr), "HSET %s f 2", k2),
             errstr));

    /* Migration opened by hand, as redis-cli --cluster reshard does. */
    node_cmd(b, "CLUSTER SETSLOT %d IMPORTING %s", slot, ida);
    node_cmd(a, "CLUSTER SETSLOT %d MIGRATING %s", slot, idb);
    /* A key that is not on the source yet: ASK, created on the target. */
    freeReplyObject(
        must(st, td_store_cmd(st, errstr, sizeof(errstr), "HSET %s f 3", k3),
             errstr));
    /* Half of the merchant moved: TRYAGAIN until the budget is spent. */
    node_cmd(a, "MIGRATE 127.0.0.1 %d %s 0 5000 KEYS %s", cl.node[b].port, "",
             k1);
    r = td_store_cmd(st, errstr, sizeof(errstr), "EVAL %s 2 %s %s", eval2, k1,
                     k2);
    assert_null(r);
    assert_non_null(strstr(errstr, "TRYAGAIN"));
    /* All of it moved: ASK to the target, which has both keys. */
    node_cmd(a, "MIGRATE 127.0.0.1 %d %s 0 5000 KEYS %s", cl.node[b].port, "",
             k2);
    r = must(st,
             td_store_cmd(st, errstr, sizeof(errstr), "EVAL %s 2 %s %s", eval2,
                          k1, k2),
             errstr);
    assert_string_equal(r->str, "12");
    freeReplyObject(r);
    /* Migration done (target first, then source, then the others): the
     * store's map is stale, MOVED puts it right. */
    node_cmd(b, "CLUSTER SETSLOT %d NODE %s", slot, idb);
    node_cmd(a, "CLUSTER SETSLOT %d NODE %s", slot, idb);
    for (int i = 0; i < cl.n; i++) {
        if (i != a && i != b && !strcmp(td_h_cluster_role(&cl, i), "master"))
            node_cmd(i, "CLUSTER SETSLOT %d NODE %s", slot, idb);
    }
    r = must(st, td_store_cmd(st, errstr, sizeof(errstr), "HGET %s f", k3),
             errstr);
    assert_string_equal(r->str, "3");
    freeReplyObject(r);
    assert_int_equal(td_h_cluster_master_of(&cl, slot), b);
    td_store_destroy(st);
    assert_true(td_h_poll(cluster_consistent, NULL, 30000));
}

/* Node index of the replica of master m, or -1. */
static int replica_of(int m) {
    for (int i = 0; i < cl.n; i++) {
        redisContext *rc;
        redisReply *r;
        int port = -1;
        if (cl.node[i].proc.pid <= 0 || !(rc = td_h_redis_connect(&cl.node[i])))
            continue;
        r = redisCommand(rc, "ROLE");
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
            !strcmp(r->element[0]->str, "slave"))
            port = (int)r->element[2]->integer;
        if (r) freeReplyObject(r);
        redisFree(rc);
        if (port == cl.node[m].port) return i;
    }
    return -1;
}

static int
hset_batch(td_store_t *st, const char *key, char *errstr, size_t errstr_size) {
    td_rbatch_t *b = td_rbatch_new();
    int rc;
    td_rbatch_begin(b);
    td_rbatch_str(b, "HSET");
    td_rbatch_str(b, key);
    td_rbatch_str(b, "f");
    td_rbatch_str(b, "1");
    td_rbatch_end(b, NULL, NULL);
    rc = td_store_exec(st, b, errstr, errstr_size);
    td_rbatch_destroy(b);
    return rc;
}

typedef struct hset_try_s {
    td_store_t *st;
    const char *key;
    char errstr[512];
} hset_try_t;

/* td_h_poll predicate: the write went through (WAIT included). */
static int hset_ok(void *arg) {
    hset_try_t *t = arg;
    return hset_batch(t->st, t->key, t->errstr, sizeof(t->errstr)) == TD_OK;
}

/* Queues SET trust:{<tag>}:k<i> <i>, its reply checked by cb. */
static void
queue_set(td_rbatch_t *b, const char *tag, int i, ordcb_t *cb, order_t *o) {
    td_rbatch_begin(b);
    td_rbatch_str(b, "SET");
    td_rbatch_fmt(b, "trust:{%s}:k%d", tag, i);
    td_rbatch_i64(b, i);
    cb->o = o;
    cb->i = i;
    td_rbatch_end(b, in_order, cb);
}

/* DBSIZE of node i. */
static long long dbsize(int i) {
    redisContext *rc = td_h_redis_connect(&cl.node[i]);
    redisReply *r;
    long long n;

    assert_non_null(rc);
    r = redisCommand(rc, "DBSIZE");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    n = r->integer;
    freeReplyObject(r);
    redisFree(rc);
    return n;
}

/* A slot moves after the store read the map: a batch's writes to it come
 * back MOVED and are resent to the new master, and the batch succeeds
 * only after a WAIT there too, so that master's replica holds them when
 * the batch returns. */
static void test_store_waits_again_after_moved_writes(void **state) {
    enum { N = 50 };
    td_store_t *st = store_new(cl.seeds, 1, 0, 5000);
    td_rbatch_t *b = td_rbatch_new();
    static ordcb_t cbs[N];
    order_t o = {0};
    char errstr[512], tag[32], key[64], idb[41];
    int slot = 4321, a, m, rep;
    long waits;
    redisReply *r;
    (void)state;

    flush_cluster();
    td_cluster_slot_tag(slot, tag, sizeof(tag));
    a = td_h_cluster_master_of(&cl, slot);
    m = other_master(a);
    rep = replica_of(m);
    assert_true(a >= 0 && m >= 0 && rep >= 0);
    assert_int_equal(td_h_cluster_id(&cl, m, idb), 0);
    /* The store reads the map (a read: nothing to wait for). */
    snprintf(key, sizeof(key), "trust:{%s}:k0", tag);
    r = must(st, td_store_cmd(st, errstr, sizeof(errstr), "GET %s", key),
             errstr);
    freeReplyObject(r);
    /* The empty slot moves to m behind its back. */
    node_cmd(m, "CLUSTER SETSLOT %d NODE %s", slot, idb);
    for (int i = 0; i < cl.n; i++) {
        if (i != m && !strcmp(td_h_cluster_role(&cl, i), "master"))
            node_cmd(i, "CLUSTER SETSLOT %d NODE %s", slot, idb);
    }
    waits = wait_calls(m);
    for (int i = 0; i < N; i++)
        queue_set(b, tag, i, &cbs[i], &o);
    if (td_store_exec(st, b, errstr, sizeof(errstr)) != TD_OK)
        fail_msg("exec: %s", errstr);
    assert_int_equal(o.next, N);
    assert_int_equal(o.bad, 0);
    assert_int_equal(dbsize(m), N);
    /* The batch never named m: its WAIT there is the one after the
     * resent writes, and the replica already has every key. */
    assert_int_equal(wait_calls(m) - waits, 1);
    assert_int_equal(dbsize(rep), N);
    td_rbatch_destroy(b);
    td_store_destroy(st);
    assert_true(td_h_poll(cluster_consistent, NULL, 30000));
}

static void test_store_write_is_not_done_without_a_replica(void **state) {
    /* 400 ms command timeout: WAIT gives up after 200 ms. */
    td_store_t *st = store_new(cl.seeds, 1, 0, 400);
    const char *key = "trust:{wr}:signals";
    int m = td_h_cluster_master_of(&cl, td_cluster_keyslot("wr", 2));
    int rep = replica_of(m);
    char errstr[512];
    (void)state;

    assert_true(rep >= 0);
    if (hset_batch(st, key, errstr, sizeof(errstr)) != TD_OK)
        fail_msg("with a replica: %s", errstr);
    td_h_redis_stop(&cl.node[rep]);
    assert_int_equal(hset_batch(st, key, errstr, sizeof(errstr)), TD_ERR);
    assert_non_null(strstr(errstr, "WAIT"));
    assert_false(td_store_healthy(st));
    assert_int_equal(td_h_cluster_restart(&cl, rep), 0);
    assert_true(td_h_poll(td_h_cluster_ready, &cl, 30000));
    /* The cluster is up before the restarted replica has synced: WAIT
     * succeeds once it has. */
    hset_try_t t = {.st = st, .key = key};
    if (!td_h_poll(hset_ok, &t, 30000)) fail_msg("replica back: %s", t.errstr);
    assert_true(td_store_healthy(st));
    td_store_destroy(st);
}

/* ---- trustd ---- */

static world_t *world_start(int merchants) {
    world_t *w = calloc(1, sizeof(*w));
    td_loadgen_conf_t lc;
    char errstr[256];

    assert_non_null(w);
    flush_cluster();
    assert_int_equal(td_h_kafka_start(&w->kafka, NULL), 0);
    w->prod = td_h_producer_new(w->kafka.bootstrap);
    w->st = store_new(cl.seeds, 1, 1, 5000);
    td_loadgen_conf_defaults(&lc);
    lc.seed = rnd();
    lc.merchants = merchants;
    lc.start_ms = td_now_ms() - 3 * 86400000LL;
    w->gen = td_loadgen_new(&lc, errstr, sizeof(errstr));
    assert_non_null(w->gen);
    w->ref = td_h_ref_new();
    return w;
}

static void world_stop(world_t *w) {
    td_h_ref_destroy(w->ref);
    td_loadgen_destroy(w->gen);
    td_h_producer_destroy(w->prod);
    td_store_destroy(w->st);
    td_h_kafka_stop(&w->kafka);
    free(w);
}

static void produce(world_t *w, int n) {
    for (int i = 0; i < n; i++) {
        td_event_t ev;
        td_loadgen_next(w->gen, &ev);
        assert_int_equal(td_h_produce(w->prod, &ev, -1), 0);
        td_h_ref_add(w->ref, &ev);
        w->produced++;
    }
    assert_int_equal(td_h_producer_flush(w->prod), 0);
}

/* Sum of the `committed` offsets of every partition record, found with a
 * cluster-wide SCAN; -1 when Redis does not answer. */
static long long committed_sum(world_t *w) {
    char errstr[512], cursor[64] = "0";
    long long sum = 0;
    int nkeys = 0;

    do {
        redisReply *r =
            td_store_cmd(w->st, errstr, sizeof(errstr),
                         "SCAN %s MATCH trust:part:* COUNT 1000", cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (r) freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            td_store_append(w->st, "HGET %s committed",
                            r->element[1]->element[i]->str);
            nkeys++;
        }
        freeReplyObject(r);
        for (; nkeys > 0; nkeys--) {
            redisReply *h = td_store_reply(w->st, errstr, sizeof(errstr));
            if (h && h->type == REDIS_REPLY_STRING && atoll(h->str) > 0)
                sum += atoll(h->str);
            if (h) freeReplyObject(h);
        }
    } while (strcmp(cursor, "0"));
    return sum;
}

typedef struct progress_s {
    world_t *w;
    long long target;
} progress_t;

static int reached(void *arg) {
    progress_t *p = arg;
    return committed_sum(p->w) >= p->target;
}

static char last_diff[512];

static int all_equal(void *arg) {
    world_t *w = arg;
    char errstr[512];
    int bad = 0;

    for (int i = 0; i < td_h_ref_count(w->ref); i++)
        td_store_append(w->st, "HGETALL trust:{%s}:signals",
                        td_h_ref_id(w->ref, i));
    for (int i = 0; i < td_h_ref_count(w->ref); i++) {
        redisReply *h = td_store_reply(w->st, errstr, sizeof(errstr));
        if (!bad &&
            td_h_ref_compare(w->ref, i, h, last_diff, sizeof(last_diff)) != 0)
            bad = 1;
        if (!h && !bad) snprintf(last_diff, sizeof(last_diff), "%s", errstr);
        if (h) freeReplyObject(h);
    }
    return !bad && td_h_ref_history_ok(w->ref, w->st, NULL, last_diff,
                                       sizeof(last_diff));
}

static void assert_exact(world_t *w, td_h_proc_t *p) {
    if (!td_h_poll(all_equal, w, 90000)) {
        td_h_dump_log(p);
        fail_msg("signals or histories differ from an uninterrupted run: %s",
                 last_diff);
    }
}

/* trustd against the cluster, in group tag; cluster = 0 leaves it to
 * detection, with one seed. */
static void trustd_start_in(world_t *w,
                            td_h_proc_t *p,
                            const char *tag,
                            const char *group,
                            int cluster) {
    static const char *const with[] = {"--redis-cluster", "--flush-max-events",
                                       "300", NULL};
    static const char *const detect[] = {"--flush-max-events", "300", NULL};
    td_h_redis_t seeds;

    memset(&seeds, 0, sizeof(seeds));
    snprintf(seeds.addr, sizeof(seeds.addr), "%.63s",
             cluster ? cl.seeds : cl.node[0].addr);
    assert_int_equal(td_h_trustd_start(p, tag, &w->kafka, &seeds, group,
                                       cluster ? with : detect),
                     0);
}

static void
trustd_start(world_t *w, td_h_proc_t *p, const char *tag, int cluster) {
    trustd_start_in(w, p, tag, tag, cluster);
}

/* Runs trustctl against the cluster; returns its exit status and its
 * output in out. */
static int
trustctl(world_t *w, char *out, size_t size, const char *a1, const char *a2) {
    char cmd[1024];
    FILE *fp;
    size_t n;
    int status;

    snprintf(cmd, sizeof(cmd),
             "'%s' --redis '%s' --redis-cluster --brokers '%s' --json %s %s "
             "2>&1",
             td_h_bin("trustctl"), cl.seeds, w->kafka.bootstrap, a1,
             a2 ? a2 : "");
    fp = popen(cmd, "r");
    assert_non_null(fp);
    n = fread(out, 1, size - 1, fp);
    out[n] = '\0';
    status = pclose(fp);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_trustd_on_cluster_ends_exact_and_trustctl_reads_it(void **state) {
    world_t *w = world_start(300);
    static char out[1 << 16];
    td_h_proc_t p;
    (void)state;

    produce(w, 3000);
    trustd_start(w, &p, "trustd-cluster", 1);
    produce(w, 3000);
    assert_exact(w, &p);

    assert_int_equal(
        trustctl(w, out, sizeof(out), "get", td_h_ref_id(w->ref, 0)), 0);
    assert_non_null(strstr(out, td_h_ref_id(w->ref, 0)));
    assert_int_equal(
        trustctl(w, out, sizeof(out), "signals", td_h_ref_id(w->ref, 1)), 0);
    assert_non_null(strstr(out, "\"signals\""));
    assert_int_equal(
        trustctl(w, out, sizeof(out), "history", td_h_ref_id(w->ref, 0)), 0);
    assert_non_null(strstr(out, "\"points\":["));
    assert_int_equal(trustctl(w, out, sizeof(out), "top", "5"), 0);
    assert_non_null(strstr(out, "\"rank\":5"));
    assert_int_equal(trustctl(w, out, sizeof(out), "bottom", "3"), 0);
    assert_non_null(strstr(out, "\"rank\":3"));
    if (trustctl(w, out, sizeof(out), "offsets", NULL) != 0)
        fail_msg("trustctl offsets: %s", out);
    assert_non_null(strstr(out, "orders"));
    td_h_stop_graceful(&p, 20000);
    world_stop(w);
}

static void test_trustd_rides_through_resharding(void **state) {
    world_t *w = world_start(300);
    char from[41], to[41], slots[] = "2000";
    char *argv[16];
    td_h_proc_t p, cli;
    int a = td_h_cluster_master_of(&cl, 0), b = other_master(a), n = 0;
    int status, rounds = 0;
    (void)state;

    assert_int_equal(td_h_cluster_id(&cl, a, from), 0);
    assert_int_equal(td_h_cluster_id(&cl, b, to), 0);
    produce(w, 3000);
    trustd_start(w, &p, "trustd-reshard", 0); /* cluster found by itself */
    progress_t pr = {w, 1000};
    assert_true(td_h_poll(reached, &pr, 60000));

    argv[n++] = "redis-cli";
    argv[n++] = "--cluster";
    argv[n++] = "reshard";
    argv[n++] = cl.node[a].addr;
    argv[n++] = "--cluster-from";
    argv[n++] = from;
    argv[n++] = "--cluster-to";
    argv[n++] = to;
    argv[n++] = "--cluster-slots";
    argv[n++] = slots;
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    assert_int_equal(td_h_spawn(&cli, "reshard", argv), 0);
    /* Traffic while the slots move. */
    while ((status = td_h_wait(&cli, 0)) == -1 && rounds++ < 200)
        produce(w, 100);
    if (status == -1) status = td_h_wait(&cli, 60000);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        td_h_dump_log(&cli);
        fail_msg("redis-cli --cluster reshard failed (status %d)", status);
    }
    print_message("resharding: %d rounds of 100 events while slots moved\n",
                  rounds);
    produce(w, 2000);
    assert_exact(w, &p);
    td_h_stop_graceful(&p, 20000);
    world_stop(w);
}

typedef struct promo_s {
    int replica;
} promo_t;

static int promoted(void *arg) {
    const promo_t *pm = arg;
    redisContext *rc;
    redisReply *r;
    int ok;

    if (strcmp(td_h_cluster_role(&cl, pm->replica), "master")) return 0;
    rc = td_h_redis_connect(&cl.node[pm->replica]);
    if (!rc) return 0;
    r = redisCommand(rc, "CLUSTER INFO");
    ok = r && r->type == REDIS_REPLY_STRING &&
         strstr(r->str, "cluster_state:ok");
    if (r) freeReplyObject(r);
    redisFree(rc);
    return ok;
}

static int log_has(const td_h_proc_t *p, const char *what) {
    char cmd[800];
    snprintf(cmd, sizeof(cmd), "grep -q '%s' '%s'", what, p->log);
    return system(cmd) == 0;
}

/* Waits until 20-60 % of the stream is committed, then names a shard to
 * break: the master of the first merchant's slot (as good as any) and its
 * replica. */
static void midway_shard(world_t *w, int *m, int *rep) {
    progress_t pr = {
        w, (long long)(w->produced * (0.2 + (double)(rnd() % 40) / 100))};
    assert_true(td_h_poll(reached, &pr, 60000));
    *m = td_h_cluster_master_of(
        &cl, td_cluster_keyslot(td_h_ref_id(w->ref, 0),
                                strlen(td_h_ref_id(w->ref, 0))));
    *rep = replica_of(*m);
    assert_true(*m >= 0 && *rep >= 0);
}

static void test_trustd_rides_through_master_failover(void **state) {
    world_t *w = world_start(300);
    td_h_proc_t p;
    int m, rep;
    promo_t pm;
    (void)state;

    produce(w, 4000);
    trustd_start(w, &p, "trustd-failover", 1);
    midway_shard(w, &m, &rep);
    td_h_redis_kill(&cl.node[m]);
    produce(w, 2000);
    pm.replica = rep;
    if (!td_h_poll(promoted, &pm, 30000))
        fail_msg("replica %d was not promoted", rep);
    /* Until the old master is back as a replica, its shard has none: WAIT
     * fails there and trustd holds its offsets. */
    assert_int_equal(td_h_cluster_restart(&cl, m), 0);
    assert_true(td_h_poll(td_h_cluster_ready, &cl, 60000));
    assert_string_equal(td_h_cluster_role(&cl, m), "slave");
    produce(w, 2000);
    assert_exact(w, &p);
    assert_true(log_has(&p, "flush failed"));
    td_h_stop_graceful(&p, 20000);
    world_stop(w);
}

static int sh2(const char *fmt, const char *a, const char *b) {
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), fmt, a, b);
    return system(cmd);
}

/* Issue 18: a master and its replica are both lost mid-stream and come
 * back empty. The workers notice (the node's marker is gone), rebuild
 * from the oldest retained offsets, skipping what the merchants on the
 * other masters hold, and end exact. */
static void lost_shard_ends_exact(int nworkers) {
    world_t *w = world_start(300);
    td_h_proc_t p[2];
    char group[32];
    int m, rep;

    snprintf(group, sizeof(group), "g-lost-shard-%d", nworkers);
    produce(w, 4000);
    for (int i = 0; i < nworkers; i++)
        trustd_start_in(w, &p[i], "trustd-lost-shard", group, 1);
    midway_shard(w, &m, &rep);
    /* The replica first, so that nothing is promoted. */
    td_h_redis_kill(&cl.node[rep]);
    td_h_redis_kill(&cl.node[m]);
    for (int i = 0; i < 2; i++) {
        const char *dir = cl.node[i ? rep : m].dir;
        assert_int_equal(
            sh2("rm -rf '%s/appendonlydir' '%s/dump.rdb'", dir, dir), 0);
    }
    produce(w, 1000);
    assert_int_equal(td_h_cluster_restart(&cl, m), 0);
    assert_int_equal(td_h_cluster_restart(&cl, rep), 0);
    assert_true(td_h_poll(cluster_consistent, NULL, 60000));
    produce(w, 2000);
    for (int i = 0; i < nworkers; i++)
        assert_exact(w, &p[i]);
    /* Loud: the workers said what happened. */
    int said = 0;
    for (int i = 0; i < nworkers; i++)
        said += log_has(&p[i], "went back in time");
    if (!said) {
        td_h_dump_log(&p[0]);
        fail_msg("no worker reported the lost node");
    }
    for (int i = 0; i < nworkers; i++)
        td_h_stop_graceful(&p[i], 20000);
    world_stop(w);
}

static void test_trustd_rebuilds_a_lost_shard(void **state) {
    (void)state;
    lost_shard_ends_exact(1);
}

static void test_trustd_rebuilds_a_lost_shard_two_workers(void **state) {
    (void)state;
    lost_shard_ends_exact(2);
}

static int group_setup(void **state) {
    (void)state;
    return td_h_cluster_start(&cl, 3, 1, 2000) == 0 ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    td_h_cluster_stop(&cl);
    return 0;
}

int main(void) {
    const char *s = getenv("TD_SEED");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_routes_batches_and_scans_every_master),
        cmocka_unit_test(test_store_streams_a_batch_with_one_wait_per_master),
        cmocka_unit_test(test_store_detects_a_cluster_node_by_itself),
        cmocka_unit_test(test_store_follows_moved_ask_and_tryagain),
        cmocka_unit_test(test_store_waits_again_after_moved_writes),
        cmocka_unit_test(test_store_write_is_not_done_without_a_replica),
        cmocka_unit_test(
            test_trustd_on_cluster_ends_exact_and_trustctl_reads_it),
        cmocka_unit_test(test_trustd_rides_through_resharding),
        cmocka_unit_test(test_trustd_rides_through_master_failover),
        cmocka_unit_test(test_trustd_rebuilds_a_lost_shard),
        cmocka_unit_test(test_trustd_rebuilds_a_lost_shard_two_workers),
    };
    seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)td_now_ms();
    if (!seed) seed = 1;
    printf("it_cluster: TD_SEED=%llu\n", (unsigned long long)seed);
    if (getenv("TD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("TD_TEST_FILTER"));
    return cmocka_run_group_tests_name("it_cluster", tests, group_setup,
                                       group_teardown);
}
