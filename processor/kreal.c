/*
 * kreal.c - a real Apache Kafka cluster on loopback (see kreal.h).
 *
 * Each node is `java -cp <jars>/(all) kafka.Kafka node<N>.properties` in KRaft
 * combined mode (broker and controller in one process, static voters),
 * formatted first with kafka.tools.StorageTool. Metadata and admin calls go
 * through one librdkafka producer handle, the same client trustd uses.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "common.h"
#include "kreal.h"
#include "proc.h"

#define KR_ADMIN_TIMEOUT_MS 30000
#define KR_NODE_UP_MS       90000

typedef struct kr_node_s {
    int id; /* 1..n */
    pid_t pid;
    int port, cport; /* PLAINTEXT and CONTROLLER listeners */
    char props[512];
    char log[512];
} kr_node_t;

struct td_kreal_s {
    int n;
    kr_node_t node[TD_KREAL_MAX_NODES];
    char dir[256];
    char cp[512]; /* the class path: every jar of the jar directory */
    char version[32];
    char bootstrap[256];
    rd_kafka_t *rk; /* metadata and admin calls */
};

/* The JVM's logging: warnings and errors to stdout, which is the node's
 * log file. */
static const char kr_log4j2[] =
    "status = warn\n"
    "appender.out.type = Console\n"
    "appender.out.name = out\n"
    "appender.out.layout.type = PatternLayout\n"
    "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
    "rootLogger.level = warn\n"
    "rootLogger.appenderRef.out.ref = out\n"
    "logger.started.name = kafka.server.KafkaRaftServer\n"
    "logger.started.level = info\n";

/* ---- small helpers ---- */

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}


/* The release from the broker jar's name (kafka_2.13-<version>.jar). */
static int find_version(const char *jars, char *out, size_t out_size) {
    DIR *d = opendir(jars);
    struct dirent *e;
    int found = 0;

    if (!d) return TD_ERR;
    while (!found && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (!strncmp(e->d_name, "kafka_2.13-", 11) && len > 15 &&
            !strcmp(e->d_name + len - 4, ".jar")) {
            snprintf(out, out_size, "%.*s", (int)(len - 15), e->d_name + 11);
            found = 1;
        }
    }
    closedir(d);
    return found ? TD_OK : TD_ERR;
}

/* A KRaft cluster id: 16 random bytes, base64url without padding. */
static void cluster_id(char out[23]) {
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[18] = {0};
    uint64_t x = (uint64_t)td_now_ms() ^ ((uint64_t)getpid() << 32);

    if (getrandom(r, 16, 0) != 16) {
        for (int i = 0; i < 16; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            r[i] = (uint8_t)x;
        }
    }
    for (int i = 0, o = 0; i < 18; i += 3) {
        uint32_t v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 | r[i + 2];
        for (int j = 0; j < 4 && o < 22; j++)
            out[o++] = b64[(v >> (18 - 6 * j)) & 63];
    }
    out[22] = '\0';
    /* Like Kafka's Uuid.randomUuid(): an id starting with '-' would be
     * taken for an option on StorageTool's command line. */
    if (out[0] == '-') out[0] = 'A';
}

static int write_file(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    int ok;
    if (!fp) return TD_ERR;
    ok = fputs(text, fp) >= 0;
    return fclose(fp) == 0 && ok ? TD_OK : TD_ERR;
}

/* ---- nodes ---- */

static int write_props(td_kreal_t *k, kr_node_t *nd) {
    char voters[256] = "", text[4096];
    int rf = k->n, isr = k->n >= 3 ? 2 : 1;
    size_t off = 0;

    for (int i = 0; i < k->n; i++)
        off += (size_t)snprintf(voters + off, sizeof(voters) - off,
                                "%s%d@127.0.0.1:%d", i ? "," : "",
                                k->node[i].id, k->node[i].cport);
    snprintf(text, sizeof(text),
             "process.roles=broker,controller\n"
             "node.id=%d\n"
             "controller.quorum.voters=%s\n"
             "listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d\n"
             "advertised.listeners=PLAINTEXT://127.0.0.1:%d\n"
             "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,"
             "CONTROLLER:PLAINTEXT\n"
             "controller.listener.names=CONTROLLER\n"
             "inter.broker.listener.name=PLAINTEXT\n"
             "log.dirs=%s/data%d\n"
             /* Production-like: topics are created, never implied. */
             "auto.create.topics.enable=false\n"
             "default.replication.factor=%d\n"
             "min.insync.replicas=%d\n"
             "offsets.topic.replication.factor=%d\n"
             "offsets.topic.num.partitions=4\n"
             "transaction.state.log.replication.factor=%d\n"
             "transaction.state.log.min.isr=%d\n"
             "transaction.state.log.num.partitions=4\n"
             "share.coordinator.state.topic.replication.factor=%d\n"
             "share.coordinator.state.topic.min.isr=%d\n"
             "group.initial.rebalance.delay.ms=0\n"
             /* A dead node leaves the ISR within seconds, not 30 s. */
             "broker.session.timeout.ms=6000\n"
             "replica.lag.time.max.ms=10000\n"
             /* 2 cores: few threads, a small cleaner buffer, a cleaner that
              * looks for work every second. */
             "num.network.threads=2\n"
             "num.io.threads=2\n"
             "background.threads=2\n"
             "num.replica.fetchers=1\n"
             "num.recovery.threads.per.data.dir=1\n"
             "log.cleaner.threads=1\n"
             "log.cleaner.dedupe.buffer.size=8388608\n"
             "log.cleaner.backoff.ms=1000\n",
             nd->id, voters, nd->port, nd->cport, nd->port, k->dir, nd->id, rf,
             isr, rf, rf, isr, rf, isr);
    return write_file(nd->props, text);
}

static int node_spawn(td_kreal_t *k, kr_node_t *nd) {
    char log4j[320];
    char *argv[] = {"java",
                    k->n > 1 ? "-Xmx384m" : "-Xmx512m",
                    "-Xms128m",
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    "-XX:ActiveProcessorCount=2",
                    "-Djava.awt.headless=true",
                    log4j,
                    "-cp",
                    k->cp,
                    "kafka.Kafka",
                    nd->props,
                    NULL};
    snprintf(log4j, sizeof(log4j),
             "-Dlog4j2.configurationFile=%s/log4j2.properties", k->dir);
    nd->pid = td_proc_spawn(argv, nd->log);
    return nd->pid > 0 ? TD_OK : TD_ERR;
}

/* The last non-empty line of the file path (a failed tool's reason). */
static void last_line(const char *path, char *out, size_t size) {
    char line[256];
    FILE *fp = fopen(path, "r");

    snprintf(out, size, "no output");
    while (fp && fgets(line, sizeof(line), fp)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0]) snprintf(out, size, "%s", line);
    }
    if (fp) fclose(fp);
}

/* kafka.tools.StorageTool format, every node at once. */
static int format_all(td_kreal_t *k, char *errstr, size_t errstr_size) {
    char id[23], log[300];
    pid_t pids[TD_KREAL_MAX_NODES];
    int rc = TD_OK;

    cluster_id(id);
    snprintf(log, sizeof(log), "%s/format.log", k->dir);
    for (int i = 0; i < k->n; i++) {
        char *argv[] = {"java",
                        "-Xmx256m",
                        "-XX:+UseSerialGC",
                        "-XX:TieredStopAtLevel=1",
                        "-cp",
                        k->cp,
                        "kafka.tools.StorageTool",
                        "format",
                        "-t",
                        id,
                        "-c",
                        k->node[i].props,
                        NULL};
        pids[i] = td_proc_spawn(argv, log);
    }
    for (int i = 0; i < k->n; i++) {
        int st = pids[i] > 0 ? td_proc_wait(pids[i], 120000) : -1;
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (st == -1 && pids[i] > 0) kill(pids[i], SIGKILL);
            char last[256];
            last_line(log, last, sizeof(last));
            snprintf(errstr, errstr_size, "formatting node %d failed: %s (%s)",
                     i + 1, last, log);
            rc = TD_ERR;
        }
    }
    return rc;
}

/* ---- metadata ---- */

static const rd_kafka_metadata_t *metadata(td_kreal_t *k, const char *topic) {
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt =
        topic ? rd_kafka_topic_new(k->rk, topic, NULL) : NULL;
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(k->rk, topic ? 0 : 1, rkt, &md, 3000);
    if (rkt) rd_kafka_topic_destroy(rkt);
    return err ? NULL : md;
}

/* 1 when the cluster lists node id (0: every node). */
static int listed(td_kreal_t *k, int id) {
    const rd_kafka_metadata_t *md = metadata(k, NULL);
    int ok = 0;
    if (!md) return 0;
    if (id == 0) {
        ok = md->broker_cnt == k->n;
    } else {
        for (int i = 0; i < md->broker_cnt; i++)
            ok |= md->brokers[i].id == id;
    }
    rd_kafka_metadata_destroy(md);
    return ok;
}

/* 1 when topic has partitions partitions, each with a leader. */
static int topic_ready(td_kreal_t *k, const char *topic, int partitions) {
    const rd_kafka_metadata_t *md = metadata(k, topic);
    int ok = 0;
    if (!md) return 0;
    if (md->topic_cnt == 1 && !md->topics[0].err &&
        md->topics[0].partition_cnt == partitions) {
        ok = 1;
        for (int p = 0; p < partitions; p++)
            ok &= md->topics[0].partitions[p].leader >= 0;
    }
    rd_kafka_metadata_destroy(md);
    return ok;
}

/* Waits for node id (0: all) to be listed; errstr says which node died. */
static int wait_listed(
    td_kreal_t *k, int id, int timeout_ms, char *errstr, size_t errstr_size) {
    int64_t deadline = td_mono_ms() + timeout_ms;
    while (!listed(k, id)) {
        int st, dead = td_kreal_reap(k, &st);
        if (dead) {
            snprintf(errstr, errstr_size, "node %d exited (status %d): see %s",
                     dead, st, k->node[dead - 1].log);
            return TD_ERR;
        }
        if (td_mono_ms() >= deadline) {
            snprintf(errstr, errstr_size,
                     "no metadata from %s within %d ms: see %s/node*.log",
                     k->bootstrap, timeout_ms, k->dir);
            return TD_ERR;
        }
        nap_ms(200);
    }
    return TD_OK;
}

static int wait_topic(td_kreal_t *k,
                      const char *topic,
                      int partitions,
                      char *errstr,
                      size_t errstr_size) {
    int64_t deadline = td_mono_ms() + KR_ADMIN_TIMEOUT_MS;
    while (!topic_ready(k, topic, partitions)) {
        if (td_mono_ms() >= deadline) {
            snprintf(
                errstr, errstr_size,
                "topic %s: %d partitions with leaders not seen within %d ms",
                topic, partitions, KR_ADMIN_TIMEOUT_MS);
            return TD_ERR;
        }
        nap_ms(100);
    }
    return TD_OK;
}

/* ---- public ---- */

td_kreal_t *td_kreal_start(const char *jars,
                           const char *dir,
                           int nodes,
                           int timeout_ms,
                           char *errstr,
                           size_t errstr_size) {
    td_kreal_t *k;
    rd_kafka_conf_t *kc;
    char path[320];
    size_t off = 0;

    if (nodes != 1 && nodes != 3) {
        snprintf(errstr, errstr_size, "nodes must be 1 or 3, not %d", nodes);
        return NULL;
    }
    k = td_xcalloc(1, sizeof(*k));
    k->n = nodes;
    snprintf(k->dir, sizeof(k->dir), "%s", dir);
    snprintf(k->cp, sizeof(k->cp), "%s/*", jars);
    if (find_version(jars, k->version, sizeof(k->version)) != TD_OK) {
        snprintf(errstr, errstr_size,
                 "no Apache Kafka jars in %s (kafka_2.13-*.jar): `make "
                 "kafka-jars` fetches them from Maven Central",
                 jars);
        free(k);
        return NULL;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(errstr, errstr_size, "mkdir %s: %s", dir, strerror(errno));
        free(k);
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/log4j2.properties", dir);
    if (write_file(path, kr_log4j2) != TD_OK) {
        snprintf(errstr, errstr_size, "writing %s: %s", path, strerror(errno));
        free(k);
        return NULL;
    }
    for (int i = 0; i < nodes; i++) {
        kr_node_t *nd = &k->node[i];
        nd->id = i + 1;
        nd->port = td_proc_free_port();
        nd->cport = td_proc_free_port();
        snprintf(nd->props, sizeof(nd->props), "%s/node%d.properties", dir,
                 nd->id);
        snprintf(nd->log, sizeof(nd->log), "%s/node%d.log", dir, nd->id);
        off += (size_t)snprintf(k->bootstrap + off, sizeof(k->bootstrap) - off,
                                "%s127.0.0.1:%d", i ? "," : "", nd->port);
    }
    for (int i = 0; i < nodes; i++) {
        if (write_props(k, &k->node[i]) != TD_OK) {
            snprintf(errstr, errstr_size, "writing %s: %s", k->node[i].props,
                     strerror(errno));
            free(k);
            return NULL;
        }
    }
    if (format_all(k, errstr, errstr_size) != TD_OK) {
        free(k);
        return NULL;
    }
    kc = rd_kafka_conf_new();
    if (rd_kafka_conf_set(kc, "bootstrap.servers", k->bootstrap, errstr,
                          errstr_size) ||
        /* Refused connections while the JVMs start are expected. */
        rd_kafka_conf_set(kc, "log_level", "0", errstr, errstr_size) ||
        !(k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, errstr_size))) {
        rd_kafka_conf_destroy(kc);
        free(k);
        return NULL;
    }
    for (int i = 0; i < nodes; i++) {
        if (node_spawn(k, &k->node[i]) != TD_OK) {
            snprintf(errstr, errstr_size, "fork: %s", strerror(errno));
            td_kreal_destroy(k);
            return NULL;
        }
    }
    if (wait_listed(k, 0, timeout_ms, errstr, errstr_size) != TD_OK) {
        td_kreal_destroy(k);
        return NULL;
    }
    return k;
}

const char *td_kreal_bootstrap(const td_kreal_t *k) {
    return k->bootstrap;
}

const char *td_kreal_version(const td_kreal_t *k) {
    return k->version;
}

/* Runs one admin request already sent on q; 0 when the one topic result
 * carries no error. */
static int
admin_result(rd_kafka_queue_t *q,
             const rd_kafka_topic_result_t **(*topics)(const rd_kafka_event_t *,
                                                       size_t *),
             char *errstr,
             size_t errstr_size) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, KR_ADMIN_TIMEOUT_MS + 5000);
    const rd_kafka_topic_result_t **res;
    size_t cnt = 0;
    int rc = TD_ERR;

    if (!ev) {
        snprintf(errstr, errstr_size, "no answer from the cluster");
        return TD_ERR;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "%s", rd_kafka_event_error_string(ev));
    } else if ((res = topics(ev, &cnt)) && cnt == 1 &&
               rd_kafka_topic_result_error(res[0])) {
        snprintf(errstr, errstr_size, "%s",
                 rd_kafka_topic_result_error_string(res[0])
                     ? rd_kafka_topic_result_error_string(res[0])
                     : rd_kafka_err2str(rd_kafka_topic_result_error(res[0])));
    } else {
        rc = TD_OK;
    }
    rd_kafka_event_destroy(ev);
    return rc;
}

static const rd_kafka_topic_result_t **
create_topics_result(const rd_kafka_event_t *ev, size_t *cnt) {
    return (const rd_kafka_topic_result_t **)
        rd_kafka_CreateTopics_result_topics(
            rd_kafka_event_CreateTopics_result((rd_kafka_event_t *)ev), cnt);
}

static const rd_kafka_topic_result_t **
create_partitions_result(const rd_kafka_event_t *ev, size_t *cnt) {
    return (const rd_kafka_topic_result_t **)
        rd_kafka_CreatePartitions_result_topics(
            rd_kafka_event_CreatePartitions_result((rd_kafka_event_t *)ev),
            cnt);
}

int td_kreal_topic_create(td_kreal_t *k,
                          const char *name,
                          int partitions,
                          const char *const *configs,
                          char *errstr,
                          size_t errstr_size) {
    char e2[256];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(name, partitions, k->n, e2, sizeof(e2));
    rd_kafka_queue_t *q;
    int rc;

    if (!nt) {
        snprintf(errstr, errstr_size, "topic %s: %s", name, e2);
        return TD_ERR;
    }
    for (int i = 0; configs && configs[i]; i++) {
        char kv[256], *eq;
        snprintf(kv, sizeof(kv), "%s", configs[i]);
        if (!(eq = strchr(kv, '='))) {
            snprintf(errstr, errstr_size,
                     "topic %s: config \"%s\" is not "
                     "key=value",
                     name, configs[i]);
            rd_kafka_NewTopic_destroy(nt);
            return TD_ERR;
        }
        *eq = '\0';
        rd_kafka_NewTopic_set_config(nt, kv, eq + 1);
    }
    q = rd_kafka_queue_new(k->rk);
    rd_kafka_CreateTopics(k->rk, &nt, 1, NULL, q);
    rc = admin_result(q, create_topics_result, e2, sizeof(e2));
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    if (rc != TD_OK) {
        snprintf(errstr, errstr_size, "creating topic %s: %s", name, e2);
        return TD_ERR;
    }
    return wait_topic(k, name, partitions, errstr, errstr_size);
}

int td_kreal_topic_grow(td_kreal_t *k,
                        const char *name,
                        int total,
                        char *errstr,
                        size_t errstr_size) {
    char e2[256];
    rd_kafka_NewPartitions_t *np =
        rd_kafka_NewPartitions_new(name, (size_t)total, e2, sizeof(e2));
    rd_kafka_queue_t *q;
    int rc;

    if (!np) {
        snprintf(errstr, errstr_size, "topic %s: %s", name, e2);
        return TD_ERR;
    }
    q = rd_kafka_queue_new(k->rk);
    rd_kafka_CreatePartitions(k->rk, &np, 1, NULL, q);
    rc = admin_result(q, create_partitions_result, e2, sizeof(e2));
    rd_kafka_queue_destroy(q);
    rd_kafka_NewPartitions_destroy(np);
    if (rc != TD_OK) {
        snprintf(errstr, errstr_size, "growing topic %s to %d partitions: %s",
                 name, total, e2);
        return TD_ERR;
    }
    return wait_topic(k, name, total, errstr, errstr_size);
}

int td_kreal_leader(td_kreal_t *k, const char *topic, int32_t partition) {
    const rd_kafka_metadata_t *md = metadata(k, topic);
    int leader = -1;
    if (!md) return -1;
    if (md->topic_cnt == 1 && partition >= 0 &&
        partition < md->topics[0].partition_cnt)
        leader = md->topics[0].partitions[partition].leader;
    rd_kafka_metadata_destroy(md);
    return leader;
}

static kr_node_t *
node_of(td_kreal_t *k, int id, char *errstr, size_t errstr_size) {
    if (id < 1 || id > k->n) {
        snprintf(errstr, errstr_size, "node must be 1..%d, not %d", k->n, id);
        return NULL;
    }
    return &k->node[id - 1];
}

int td_kreal_kill(td_kreal_t *k, int id, char *errstr, size_t errstr_size) {
    kr_node_t *nd = node_of(k, id, errstr, errstr_size);
    if (!nd) return TD_ERR;
    if (nd->pid > 0) {
        kill(nd->pid, SIGKILL);
        td_proc_wait(nd->pid, 10000);
        nd->pid = 0;
    }
    return TD_OK;
}

int td_kreal_stop(td_kreal_t *k, int id, char *errstr, size_t errstr_size) {
    kr_node_t *nd = node_of(k, id, errstr, errstr_size);
    if (!nd) return TD_ERR;
    if (nd->pid > 0) {
        kill(nd->pid, SIGTERM);
        if (td_proc_wait(nd->pid, 30000) == -1) {
            kill(nd->pid, SIGKILL);
            td_proc_wait(nd->pid, 10000);
            nd->pid = 0;
            snprintf(errstr, errstr_size,
                     "node %d did not stop within 30 s (killed)", id);
            return TD_ERR;
        }
        nd->pid = 0;
    }
    return TD_OK;
}

int td_kreal_restart(td_kreal_t *k, int id, char *errstr, size_t errstr_size) {
    kr_node_t *nd = node_of(k, id, errstr, errstr_size);
    if (!nd) return TD_ERR;
    if (nd->pid > 0) {
        snprintf(errstr, errstr_size, "node %d is running", id);
        return TD_ERR;
    }
    if (node_spawn(k, nd) != TD_OK) {
        snprintf(errstr, errstr_size, "fork: %s", strerror(errno));
        return TD_ERR;
    }
    return wait_listed(k, id, KR_NODE_UP_MS, errstr, errstr_size);
}

int td_kreal_reap(td_kreal_t *k, int *status) {
    for (int i = 0; i < k->n; i++) {
        kr_node_t *nd = &k->node[i];
        if (nd->pid > 0 && waitpid(nd->pid, status, WNOHANG) == nd->pid) {
            nd->pid = 0;
            return nd->id;
        }
    }
    return 0;
}

void td_kreal_destroy(td_kreal_t *k) {
    if (!k) return;
    /* The data is thrown away with the directory: no clean shutdown is
     * needed, and three nodes stopping at once would wait for each other's
     * controlled shutdown. */
    for (int i = 0; i < k->n; i++) {
        if (k->node[i].pid > 0) kill(k->node[i].pid, SIGKILL);
    }
    for (int i = 0; i < k->n; i++) {
        if (k->node[i].pid > 0) td_proc_wait(k->node[i].pid, 10000);
    }
    if (k->rk) rd_kafka_destroy(k->rk);
    free(k);
}
