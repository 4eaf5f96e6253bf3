/*
 * harness.h - integration-test fixtures: a private redis-server, the embedded
 * Kafka (td-kafka), real trustd processes, a producer of contract events and
 * bounded polling. Everything listens on 127.0.0.1 only and lives in a
 * temporary directory removed at the end.
 *
 * Binaries are taken from $TD_BIN (the Makefile sets it), default "build".
 */
#ifndef TD_HARNESS_H
#define TD_HARNESS_H

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <sys/types.h>

#include "event.h"
#include "signals.h"

typedef struct td_h_proc_s {
    pid_t pid;
    char log[512]; /* stdout+stderr of the process */
} td_h_proc_t;

typedef struct td_h_redis_s {
    td_h_proc_t proc;
    int port;
    char dir[256];
    char addr[64]; /* "127.0.0.1:port" */
} td_h_redis_t;

typedef struct td_h_kafka_s {
    pid_t pid;
    int in_fd; /* commands to td-kafka */
    FILE *out; /* its stdout */
    char bootstrap[256];
    int real;      /* a real Apache Kafka (td-kafka --apache) */
    char log[512]; /* td-kafka's stderr; the brokers' logs are beside it */
} td_h_kafka_t;

/* A temp dir for the test run ("/tmp/td-test.XXXXXX"), created once. */
const char *td_h_tmpdir(void);
/* Path of a project binary, e.g. td_h_bin("trustd"). Static buffer. */
const char *td_h_bin(const char *name);
/* A free TCP port on 127.0.0.1. */
int td_h_free_port(void);

/* The trustd Redis module built next to the tests (<build>/
 * trustd_module.so), or NULL. */
const char *td_h_module(void);
/* 1 when TD_REDIS_PATH=lua: test Redis servers run without the module,
 * so trustd uses its Lua function library (the managed-Redis path). */
int td_h_lua_path(void);

/* Starts redis-server with AOF (appendfsync always) in its own dir, with
 * the trustd module unless td_h_lua_path() or extra loads it itself, and
 * waits until it answers PING. extra may be NULL. Returns 0 on success. */
int td_h_redis_start(td_h_redis_t *r, const char *const *extra);
/* Restarts it on the same port and dir (AOF is replayed). */
int td_h_redis_restart(td_h_redis_t *r);
void td_h_redis_stop(td_h_redis_t *r);
void td_h_redis_kill(td_h_redis_t *r); /* SIGKILL, no shutdown save */
redisContext *td_h_redis_connect(const td_h_redis_t *r);

/*
 * Starts td-kafka with extra args (NULL-terminated, may be NULL) and reads
 * its bootstrap address: "a Kafka with these topics". It is the embedded
 * mock, or with TD_KAFKA=apache in the environment a real Apache Kafka
 * (KRaft, from build/kafka/lib) with the same topics, --brokers-count 1 or
 * 3 nodes, in the test's temp dir. On failure td-kafka's log is printed
 * (e.g. the jars were never fetched).
 */
int td_h_kafka_start(td_h_kafka_t *k, const char *const *args);
/* 1 when TD_KAFKA=apache. */
int td_h_kafka_apache(void);
/* Sends one command (mock: fault injection; real: kill/stop/start NODE,
 * grow TOPIC N, leader TOPIC P); returns 0 if td-kafka answered ok. */
int td_h_kafka_cmd(td_h_kafka_t *k, const char *cmd);
/* The same, with what follows "ok " copied to out. */
int td_h_kafka_query(td_h_kafka_t *k, const char *cmd, char *out, size_t size);
/* Skips the calling test, saying so, on a real broker: for tests of the
 * mock's fault injection (request errors, rtt), which a real broker has
 * no equivalent of; it_kafka covers real faults. */
void td_h_kafka_mock_only(const td_h_kafka_t *k, const char *why);
void td_h_kafka_stop(td_h_kafka_t *k);

/* Spawns a program with args (argv[0] is the path), output to a log file
 * named after tag. Returns 0 on success. */
int td_h_spawn(td_h_proc_t *p, const char *tag, char *const argv[]);
/* Waits up to timeout_ms for exit; returns the exit status as waitpid's
 * status, or -1 on timeout. */
int td_h_wait(td_h_proc_t *p, int timeout_ms);
void td_h_signal(td_h_proc_t *p, int sig);
/* Prints the last lines of a process log (for failing tests). */
void td_h_dump_log(const td_h_proc_t *p);
/* SIGTERM, then fails the test (with the log) unless the process exits 0
 * within timeout_ms. */
void td_h_stop_graceful(td_h_proc_t *p, int timeout_ms);

/* A real schema registry: Apicurio Registry 2.6.13.Final (in-memory), its
 * Confluent-compatible API at `url`. The jar is fetched into
 * $TD_BIN/registry by Maven (tests/registry/pom.xml) the first time; if
 * that fails, start fails with a message saying so. */
typedef struct td_h_registry_s {
    td_h_proc_t proc;
    int port;
    char url[128]; /* http://127.0.0.1:port/apis/ccompat/v7 */
} td_h_registry_t;

int td_h_registry_start(td_h_registry_t *r);
void td_h_registry_stop(td_h_registry_t *r);
/* Registers schema json under subject; returns its id, or -1. */
int64_t td_h_registry_register(const td_h_registry_t *r,
                               const char *subject,
                               const char *json);

/* The text of embedded schema file (schemas_gen.h), or NULL. */
const char *td_h_schema_json(const char *file);

/* Writer schemas of the Confluent tests: a producer's own ReviewEvent (the
 * common fields, rating and has_media; no logical type), and one whose
 * rating is a string, which the reader cannot resolve. */
extern const char td_h_own_review_json[];
extern const char td_h_bad_review_json[];

/* 1 if a line of the process' log contains needle. */
int td_h_log_has(const td_h_proc_t *p, const char *needle);

/* Starts trustd against the fixtures with test-friendly settings (short
 * flush interval, session.timeout.ms 6000), plus extra args, and waits
 * until it has logged its first line (or exited). */
int td_h_trustd_start(td_h_proc_t *p,
                      const char *tag,
                      const td_h_kafka_t *k,
                      const td_h_redis_t *r,
                      const char *group,
                      const char *const *extra);

/* An idempotent lz4 producer of contract events (encoded with the codec). */
typedef struct td_h_producer_s td_h_producer_t;
td_h_producer_t *td_h_producer_new(const char *bootstrap);
/* Produces ev to its topic (orders/reviews/refunds by kind) with key =
 * merchant_id; partition -1 lets the partitioner choose. */
int td_h_produce(td_h_producer_t *p, const td_event_t *ev, int32_t partition);
/* Produces raw bytes (for bad-input tests). */
int td_h_produce_raw(td_h_producer_t *p,
                     const char *topic,
                     int32_t partition,
                     const void *key,
                     size_t key_len,
                     const void *value,
                     size_t len);
/*
 * Fills ev with a valid event of kind for merchant m at time t: a unique
 * event_id, order "o-1", buyer "b-1", and per kind a PAID order of 1000
 * cents (LIVE, promised_ship_by t + 48 h, other options null), a 5-star
 * review, or a REQUESTED refund-only QUALITY refund of 1000 cents. Callers
 * change what their test is about. Strings stay valid until the 64th next
 * call (m is borrowed).
 */
void td_h_event(td_event_t *ev, td_event_kind_t kind, const char *m, int64_t t);
/* Produces td_h_event()'s event with what fixtures vary: an order's status
 * and amount, a review's rating, a refund's status and amount. 0 or -1. */
int td_h_produce_event(td_h_producer_t *p,
                       td_event_kind_t kind,
                       const char *m,
                       int64_t t,
                       int status,
                       int rating,
                       int64_t amount);

/* Waits until everything produced was acknowledged. */
int td_h_producer_flush(td_h_producer_t *p);
void td_h_producer_destroy(td_h_producer_t *p);

/* GET path from 127.0.0.1:port over HTTP/1.0: the status (-1: no
 * answer); *body gets the body (malloc'd, NULL without an answer). */
int td_h_http_get(int port, const char *path, char **body);
/* One request on a fresh connection: method, path and an optional extra
 * header line; returns the status (-1 on failure), *body the body (caller
 * frees). */
int td_h_http(int port,
              const char *method,
              const char *path,
              const char *header,
              char **body);
/* Value of one sample in a Prometheus text exposition: series is the name
 * with its labels exactly as trustd writes them, e.g.
 * trustd_events_consumed_total{topic="orders"}. NAN if absent. */
double td_h_sample(const char *body, const char *series);
/* Scrapes http://127.0.0.1:port/metrics once: td_h_sample() of it, NAN if
 * the scrape failed. */
double td_h_metric(int port, const char *series);

/* Polls cond(arg) every 50 ms until it returns non-zero or timeout_ms
 * passes; returns the last result. */
int td_h_poll(int (*cond)(void *arg), void *arg, int timeout_ms);

/*
 * Writes one delta of source src (offsets lo..nx-1) for merchant m the way
 * a flush does: td_load, the watermark decision, td_sigstate_merge, td_put.
 * Returns 1 if applied, 0 if the watermark shows it applied already, -1
 * with err filled ("TDOVERLAP ..." for a delta straddling the watermark,
 * "STALE" if the state moved between the two calls).
 */
struct td_store_s;
int td_h_merge(struct td_store_s *st,
               const char *m,
               const char *src,
               int64_t lo,
               int64_t nx,
               const td_sigdelta_t *d,
               char *err,
               size_t err_size);

/* Sum of the `committed` offsets of every partition record
 * (trust:part:*): how far trustd got, over all partitions. */
long long td_h_committed_sum(redisContext *rc);

/* Polls until td_h_committed_sum() reaches target or timeout_ms passes;
 * returns 1 if it did. */
int td_h_committed_reached(redisContext *rc, long long target, int timeout_ms);

/* The tests' pseudo-random numbers: xorshift64 over *state (non-zero),
 * so a seed makes a run repeatable. */
uint64_t td_h_xorshift(uint64_t *state);

/* A minimal Avro binary writer for hand-made datums (what
 * td_codec_encode refuses to make); a full buffer fails the test. */
typedef struct td_h_wbuf_s {
    uint8_t b[2048];
    size_t n;
} td_h_wbuf_t;
void td_h_wbyte(td_h_wbuf_t *w, uint8_t v);
/* A raw varint of u, without zig-zag (for overlong or odd encodings). */
void td_h_wuvarint(td_h_wbuf_t *w, uint64_t u);
void td_h_wlong(td_h_wbuf_t *w, int64_t v); /* zig-zag varint */
void td_h_wstr(td_h_wbuf_t *w, const char *s);
void td_h_wdouble(td_h_wbuf_t *w, double d);

/* HGET key field as a double; returns 0 if present, -1 if absent. */
int td_h_hget_double(redisContext *c,
                     const char *key,
                     const char *field,
                     double *out);

/* Consumes every message of a topic from the beginning (partitions read
 * until their high watermark at call time). cb gets each message. Returns
 * the number of messages read, or -1 on error. */
int td_h_consume_all(const char *bootstrap,
                     const char *topic,
                     void (*cb)(const rd_kafka_message_t *m, void *arg),
                     void *arg);

/* ---- Redis Cluster ---- */

#define TD_H_CLUSTER_MAX 12

/* A Redis Cluster on loopback: every node a td_h_redis_t (AOF, fsync
 * always) started with cluster-enabled in its own dir. */
typedef struct td_h_cluster_s {
    td_h_redis_t node[TD_H_CLUSTER_MAX];
    int n;
    int masters;
    char node_timeout[16];
    char seeds[136]; /* "127.0.0.1:P1,127.0.0.1:P2" (the first two nodes) */
} td_h_cluster_t;

/* Starts masters * (1 + replicas) nodes, joins them with `redis-cli
 * --cluster create ... --cluster-replicas R --cluster-yes` and waits until
 * td_h_cluster_ready(). node_timeout_ms is cluster-node-timeout. Returns 0
 * on success. */
int td_h_cluster_start(td_h_cluster_t *c,
                       int masters,
                       int replicas,
                       int node_timeout_ms);
/* 1 when every running node says cluster_state:ok with all slots ok and
 * every master has as many online replicas as it was created with. */
int td_h_cluster_ready(void *c);
/* Restarts node i on its port and dir (AOF and nodes.conf kept). */
int td_h_cluster_restart(td_h_cluster_t *c, int i);
/* "master", "slave", or "" when node i does not answer. Static buffer. */
const char *td_h_cluster_role(td_h_cluster_t *c, int i);
/* Index of the node serving slot as master, or -1. */
int td_h_cluster_master_of(td_h_cluster_t *c, int slot);
/* Node i's id (CLUSTER MYID) into id (41 bytes). 0 on success. */
int td_h_cluster_id(td_h_cluster_t *c, int i, char *id);
void td_h_cluster_stop(td_h_cluster_t *c);
/* Restarts a stopped single node with extra server arguments. */
int td_h_redis_restart_with(td_h_redis_t *r, const char *const *extra);

/*
 * A reference fold: every event of a scenario folded in memory with the
 * catalog's own fold and merge (td_sigdelta_add / td_sigstate_merge), one
 * state per merchant, to compare trustd's Redis hashes with.
 */
typedef struct td_h_ref_s td_h_ref_t;
td_h_ref_t *td_h_ref_new(void);
void td_h_ref_destroy(td_h_ref_t *r);
void td_h_ref_add(td_h_ref_t *r, const td_event_t *ev);
int td_h_ref_count(const td_h_ref_t *r);
const char *td_h_ref_id(const td_h_ref_t *r, int i);
/* Compares merchant i with an HGETALL reply of its signals hash (NULL or
 * not an array counts as a difference): every signal present in both or
 * absent in both, values equal to relative 1e-9, as_of_ms equal. Returns 0
 * when equal, else -1 with why filled. */
int td_h_ref_compare(const td_h_ref_t *r,
                     int i,
                     const redisReply *h,
                     char *why,
                     size_t why_size);
/* Produces n events of the load generator gen, each to partition
 * part(ev, arg) (-1 or part NULL: by key), folds each into ref, then
 * flushes. 0 on success. */
struct td_loadgen_s;
int td_h_produce_gen(td_h_producer_t *p,
                     struct td_loadgen_s *gen,
                     td_h_ref_t *ref,
                     int n,
                     int32_t (*part)(const td_event_t *ev, void *arg),
                     void *arg);

/* 1 when every merchant of the reference equals its signals hash in
 * Redis; else 0 with the first difference in why. */
int td_h_ref_equal(const td_h_ref_t *r,
                   redisContext *rc,
                   char *why,
                   size_t why_size);

/*
 * The score history's exactly-once check for merchant m (history.h):
 * hist is GET trust:{m}:history, score HMGET trust:{m}:score version
 * score tier confidence. Both missing (never scored) passes. Otherwise
 * the points' versions are consecutive and end at the hash's version;
 * none was left out: the first is version 1, or the 64-point cap or the
 * 90-day horizon dropped the earlier ones; the last point's score, tier
 * and confidence are the hash's. 0, or -1 with why filled.
 */
int td_h_history_check(const char *m,
                       const redisReply *hist,
                       const redisReply *score,
                       char *why,
                       size_t why_size);

/* td_h_history_check() for every merchant of the reference, read through
 * st (one Redis or a cluster) or, with st NULL, rc. 1 when all pass and at
 * least one merchant has a history, else 0 with the first failure in why. */
struct td_store_s;
int td_h_ref_history_ok(const td_h_ref_t *r,
                        struct td_store_s *st,
                        redisContext *rc,
                        char *why,
                        size_t why_size);

#endif
