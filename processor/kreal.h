/*
 * kreal.h - a real Apache Kafka cluster on loopback, run from the jars
 * `make kafka-jars` fetches from Maven Central (tests/kafka/pom.xml): one
 * combined broker+controller node (KRaft), or three (replication factor 3,
 * min.insync.replicas 2). td-kafka --apache drives it for the tests, the
 * demo and the benchmark.
 *
 * Every node is a JVM child of this process that dies with it
 * (PR_SET_PDEATHSIG), with its properties, data and log under one
 * directory, listening on free 127.0.0.1 ports only.
 */
#ifndef TD_KREAL_H
#define TD_KREAL_H

#include <stddef.h>
#include <stdint.h>

#define TD_KREAL_MAX_NODES 3

typedef struct td_kreal_s td_kreal_t;

/*
 * Formats KRaft storage for nodes (1 or 3) under dir (created if missing)
 * and starts them with a heap and thread counts that fit a 2-core machine;
 * waits until every node answers metadata (timeout_ms). jars is a directory
 * holding kafka_2.13-*.jar and its dependencies. NULL + errstr on failure
 * (every node started is stopped).
 */
td_kreal_t *td_kreal_start(const char *jars,
                           const char *dir,
                           int nodes,
                           int timeout_ms,
                           char *errstr,
                           size_t errstr_size);

/* "127.0.0.1:P1,127.0.0.1:P2,..." */
const char *td_kreal_bootstrap(const td_kreal_t *k);
/* The Kafka release the jars carry ("4.1.1"). */
const char *td_kreal_version(const td_kreal_t *k);

/*
 * Creates topic name with partitions (replication factor = nodes) and the
 * NULL-terminated "key=value" topic configs (may be NULL), and waits until
 * every partition has a leader.
 */
int td_kreal_topic_create(td_kreal_t *k,
                          const char *name,
                          int partitions,
                          const char *const *configs,
                          char *errstr,
                          size_t errstr_size);
/* CreatePartitions: grows topic name to total partitions, waits for
 * their leaders. */
int td_kreal_topic_grow(td_kreal_t *k,
                        const char *name,
                        int total,
                        char *errstr,
                        size_t errstr_size);
/* Node id (1..n) leading topic/partition, or -1. */
int td_kreal_leader(td_kreal_t *k, const char *topic, int32_t partition);

/* SIGKILL node id; SIGTERM and wait for a clean exit; start it again (same
 * ports and data) and wait until the cluster lists it. */
int td_kreal_kill(td_kreal_t *k, int id, char *errstr, size_t errstr_size);
int td_kreal_stop(td_kreal_t *k, int id, char *errstr, size_t errstr_size);
int td_kreal_restart(td_kreal_t *k, int id, char *errstr, size_t errstr_size);

/* Reaps nodes that exited on their own; returns the id of one, or 0.
 * *status gets its waitpid status. */
int td_kreal_reap(td_kreal_t *k, int *status);

/* Stops every node (SIGTERM, then SIGKILL after a grace period). */
void td_kreal_destroy(td_kreal_t *k);

#endif
