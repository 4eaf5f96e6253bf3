/*
 * td_kafka.c - td-kafka: an embedded Kafka for tests, the demo and the
 * benchmark, built on librdkafka's mock cluster.
 *
 *   td-kafka [--brokers-count N] [--partitions N] [--topic NAME=PARTITIONS]...
 *
 * It creates a mock cluster of N brokers (ids 1..N) listening on random
 * 127.0.0.1 ports, creates the trustd topics, prints the bootstrap address
 * as the first line of stdout and then serves until SIGTERM or SIGINT, when
 * it exits 0. All data lives in this process: when it exits, topics,
 * messages and committed offsets are gone.
 *
 * Fault injection: stdin takes one command per line and every line gets one
 * answer line on stdout, "ok" or "error: <why>" (see td_kafka_cmds[] or send
 * "help"). EOF on stdin only stops the command reader; the cluster keeps
 * running until a signal.
 *
 * Mock limits worth knowing (librdkafka 2.0.2): no CreateTopics or
 * CreatePartitions API, no topic configs (so no compaction, no retention
 * settings), per-partition logs are trimmed past 5 MiB or 100000 batches,
 * and a broker that is set down does not move partition leadership (use
 * "leader" for that).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "common.h"
#include "kreal.h"

#define TK_MAX_TOPICS     64
#define TK_MAX_ARGS       8
#define TK_LINE_MAX       1024
#define TK_MAX_ERROR_PUSH 100000

static volatile sig_atomic_t run = 1;

typedef struct tk_topic_s {
    char name[250];
    int partitions;
} tk_topic_t;

typedef struct tk_ctx_s {
    rd_kafka_mock_cluster_t *mcluster;
    td_kreal_t *real; /* --apache: real brokers instead of the mock */
    const struct tk_cmd_s *cmds;
    int broker_cnt;
    char answer[64]; /* appended to "ok" */
} tk_ctx_t;

typedef int(tk_cmd_fn_t)(tk_ctx_t *ctx,
                         char **argv,
                         char *errstr,
                         size_t errstr_size);

typedef struct tk_cmd_s {
    const char *name;
    int argc; /* arguments after the command name */
    tk_cmd_fn_t *fn;
    const char *usage;
} tk_cmd_t;

typedef struct tk_apikey_s {
    const char *name;
    int16_t key;
} tk_apikey_t;

/* clang-format off */
/* Kafka protocol ApiKeys the mock implements (rdkafka_mock_handlers.c). */
static const tk_apikey_t tk_apikeys[] = {
    {"Produce", 0},         {"Fetch", 1},           {"ListOffsets", 2},
    {"Metadata", 3},        {"OffsetCommit", 8},    {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},     {"Heartbeat", 12},
    {"LeaveGroup", 13},     {"SyncGroup", 14},      {"ApiVersion", 18},
    {"InitProducerId", 22}, {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25}, {"EndTxn", 26},        {"TxnOffsetCommit", 28},
    {NULL, 0}
};

/* The topics trustd reads and writes, with their default partition counts;
 * the first three are the input topics --partitions applies to. */
static const tk_topic_t tk_default_topics[] = {
    {"orders", 8}, {"reviews", 8}, {"refunds", 8},
    {"trust-scores", 8}, {"trust-dlq", 4},
};
/* clang-format on */
#define TK_INPUT_TOPICS 3

static void tk_stop(int sig) {
    (void)sig;
    run = 0;
}

/* Parses a whole decimal integer within [min, max]. */
static int tk_parse_int(const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return TD_ERR;
    *out = v;
    return TD_OK;
}

/* ApiKey from a name in tk_apikeys[] (any case) or a number. */
static int tk_parse_apikey(const char *s, int16_t *out) {
    long v;
    for (const tk_apikey_t *a = tk_apikeys; a->name; a++) {
        if (!strcasecmp(a->name, s)) {
            *out = a->key;
            return TD_OK;
        }
    }
    if (tk_parse_int(s, 0, INT16_MAX, &v) != TD_OK) return TD_ERR;
    *out = (int16_t)v;
    return TD_OK;
}

/* Error code from librdkafka's error name table ("REQUEST_TIMED_OUT",
 * "_TRANSPORT", optionally prefixed "RD_KAFKA_RESP_ERR_", any case) or a
 * number. */
static int tk_parse_err(const char *s, rd_kafka_resp_err_t *out) {
    const struct rd_kafka_err_desc *descs;
    size_t cnt;
    long v;

    if (!strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18)) {
        s += 18;
    }
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (descs[i].name && !strcasecmp(descs[i].name, s)) {
            *out = descs[i].code;
            return TD_OK;
        }
    }
    if (tk_parse_int(s, -200, 1000, &v) != TD_OK) return TD_ERR;
    *out = (rd_kafka_resp_err_t)v;
    return TD_OK;
}

/* Broker id 1..N, or -1 for all brokers when all_ok. */
static int tk_parse_broker(tk_ctx_t *ctx,
                           const char *s,
                           int all_ok,
                           int32_t *out,
                           char *errstr,
                           size_t errstr_size) {
    long v;
    if (tk_parse_int(s, -1, ctx->broker_cnt, &v) != TD_OK || v == 0 ||
        (v == -1 && !all_ok)) {
        snprintf(errstr, errstr_size, "broker must be 1..%d%s, not \"%s\"",
                 ctx->broker_cnt, all_ok ? " or -1" : "", s);
        return TD_ERR;
    }
    *out = (int32_t)v;
    return TD_OK;
}

static int tk_check(rd_kafka_resp_err_t err, char *errstr, size_t errstr_size) {
    if (!err) return TD_OK;
    snprintf(errstr, errstr_size, "%s", rd_kafka_err2str(err));
    return TD_ERR;
}

static int
tk_cmd_down(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size) {
    int32_t id;
    if (tk_parse_broker(ctx, argv[1], 1, &id, errstr, errstr_size)) {
        return TD_ERR;
    }
    return tk_check(rd_kafka_mock_broker_set_down(ctx->mcluster, id), errstr,
                    errstr_size);
}

static int
tk_cmd_up(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size) {
    int32_t id;
    if (tk_parse_broker(ctx, argv[1], 1, &id, errstr, errstr_size)) {
        return TD_ERR;
    }
    return tk_check(rd_kafka_mock_broker_set_up(ctx->mcluster, id), errstr,
                    errstr_size);
}

static int
tk_cmd_rtt(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size) {
    int32_t id;
    long ms;
    if (tk_parse_broker(ctx, argv[1], 1, &id, errstr, errstr_size)) {
        return TD_ERR;
    }
    if (tk_parse_int(argv[2], 0, 3600000, &ms) != TD_OK) {
        snprintf(errstr, errstr_size, "rtt must be 0..3600000 ms, not \"%s\"",
                 argv[2]);
        return TD_ERR;
    }
    return tk_check(rd_kafka_mock_broker_set_rtt(ctx->mcluster, id, (int)ms),
                    errstr, errstr_size);
}

static int
tk_cmd_errors(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size) {
    int16_t apikey;
    long cnt;
    rd_kafka_resp_err_t err;

    if (tk_parse_apikey(argv[1], &apikey) != TD_OK) {
        snprintf(errstr, errstr_size, "unknown api \"%s\"", argv[1]);
        return TD_ERR;
    }
    if (tk_parse_int(argv[2], 1, TK_MAX_ERROR_PUSH, &cnt) != TD_OK) {
        snprintf(errstr, errstr_size, "count must be 1..%d, not \"%s\"",
                 TK_MAX_ERROR_PUSH, argv[2]);
        return TD_ERR;
    }
    if (tk_parse_err(argv[3], &err) != TD_OK) {
        snprintf(errstr, errstr_size, "unknown error \"%s\"", argv[3]);
        return TD_ERR;
    }
    rd_kafka_resp_err_t *errs = malloc((size_t)cnt * sizeof(*errs));
    if (!errs) {
        snprintf(errstr, errstr_size, "out of memory");
        return TD_ERR;
    }
    for (long i = 0; i < cnt; i++) {
        errs[i] = err;
    }
    rd_kafka_mock_push_request_errors_array(ctx->mcluster, apikey, (size_t)cnt,
                                            errs);
    free(errs);
    return TD_OK;
}

static int
tk_cmd_clear(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size) {
    int16_t apikey;
    if (tk_parse_apikey(argv[1], &apikey) != TD_OK) {
        snprintf(errstr, errstr_size, "unknown api \"%s\"", argv[1]);
        return TD_ERR;
    }
    rd_kafka_mock_clear_request_errors(ctx->mcluster, apikey);
    return TD_OK;
}

/* --config TOPIC:KEY=VALUE arguments (--apache; the mock has no topic
 * configs), after the defaults of deploy/compose/common.yml: trust-scores
 * compacted, trust-dlq taking a dead letter of a 1 MB input message. */
static const char *tk_configs[2 * TK_MAX_TOPICS] = {
    "trust-scores:cleanup.policy=compact",
    "trust-dlq:max.message.bytes=2097152"};
static int tk_config_cnt = 2;

static int tk_topic_create(tk_ctx_t *ctx,
                           const char *name,
                           long partitions,
                           char *errstr,
                           size_t errstr_size) {
    if (ctx->real) {
        const char *cfg[2 * TK_MAX_TOPICS + 1];
        size_t len = strlen(name);
        int n = 0;
        for (int i = 0; i < tk_config_cnt; i++) {
            if (!strncmp(tk_configs[i], name, len) && tk_configs[i][len] == ':')
                cfg[n++] = tk_configs[i] + len + 1;
        }
        cfg[n] = NULL;
        return td_kreal_topic_create(ctx->real, name, (int)partitions, cfg,
                                     errstr, errstr_size);
    }
    int rf = ctx->broker_cnt < 3 ? ctx->broker_cnt : 3;
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(ctx->mcluster, name, (int)partitions, rf);
    if (!err) return TD_OK;
    snprintf(errstr, errstr_size, "topic %.249s: %s", name,
             rd_kafka_err2str(err));
    return TD_ERR;
}

static int
tk_cmd_create(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size) {
    long partitions;
    if (tk_parse_int(argv[2], 1, 10000, &partitions) != TD_OK) {
        snprintf(errstr, errstr_size, "partitions must be 1..10000, not \"%s\"",
                 argv[2]);
        return TD_ERR;
    }
    return tk_topic_create(ctx, argv[1], partitions, errstr, errstr_size);
}

static int
tk_cmd_leader(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size) {
    long partition;
    int32_t id;
    if (tk_parse_int(argv[2], 0, 9999, &partition) != TD_OK) {
        snprintf(errstr, errstr_size, "bad partition \"%s\"", argv[2]);
        return TD_ERR;
    }
    /* -1 makes the partition leaderless. */
    if (tk_parse_broker(ctx, argv[3], 1, &id, errstr, errstr_size)) {
        return TD_ERR;
    }
    return tk_check(rd_kafka_mock_partition_set_leader(ctx->mcluster, argv[1],
                                                       (int32_t)partition, id),
                    errstr, errstr_size);
}

static int tk_cmd_coordinator(tk_ctx_t *ctx,
                              char **argv,
                              char *errstr,
                              size_t errstr_size) {
    int32_t id;
    if (strcmp(argv[1], "group") && strcmp(argv[1], "transaction")) {
        snprintf(errstr, errstr_size,
                 "type must be group or transaction, not \"%s\"", argv[1]);
        return TD_ERR;
    }
    if (tk_parse_broker(ctx, argv[3], 0, &id, errstr, errstr_size)) {
        return TD_ERR;
    }
    return tk_check(
        rd_kafka_mock_coordinator_set(ctx->mcluster, argv[1], argv[2], id),
        errstr, errstr_size);
}

/* ---- --apache: commands on real brokers ---- */

static int tk_parse_node(
    tk_ctx_t *ctx, const char *s, int *out, char *errstr, size_t errstr_size) {
    long v;
    if (tk_parse_int(s, 1, ctx->broker_cnt, &v) != TD_OK) {
        snprintf(errstr, errstr_size, "node must be 1..%d, not \"%s\"",
                 ctx->broker_cnt, s);
        return TD_ERR;
    }
    *out = (int)v;
    return TD_OK;
}

/* kill, stop or start NODE: the command's name picks the call. */
static int
tk_cmd_node(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size) {
    static const struct {
        const char *name;
        int (*fn)(td_kreal_t *k, int id, char *errstr, size_t errstr_size);
    } ops[] = {
        {"kill", td_kreal_kill},
        {"stop", td_kreal_stop},
        {"start", td_kreal_restart},
    };
    int id;

    if (tk_parse_node(ctx, argv[1], &id, errstr, errstr_size)) return TD_ERR;
    for (size_t i = 0; i < TD_ARRAY_LEN(ops); i++) {
        if (!strcasecmp(ops[i].name, argv[0]))
            return ops[i].fn(ctx->real, id, errstr, errstr_size);
    }
    snprintf(errstr, errstr_size, "unknown command \"%s\"", argv[0]);
    return TD_ERR;
}

static int
tk_cmd_grow(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size) {
    long total;
    if (tk_parse_int(argv[2], 1, 10000, &total) != TD_OK) {
        snprintf(errstr, errstr_size, "partitions must be 1..10000, not \"%s\"",
                 argv[2]);
        return TD_ERR;
    }
    return td_kreal_topic_grow(ctx->real, argv[1], (int)total, errstr,
                               errstr_size);
}

static int tk_cmd_real_leader(tk_ctx_t *ctx,
                              char **argv,
                              char *errstr,
                              size_t errstr_size) {
    long partition;
    if (tk_parse_int(argv[2], 0, 9999, &partition) != TD_OK) {
        snprintf(errstr, errstr_size, "bad partition \"%s\"", argv[2]);
        return TD_ERR;
    }
    snprintf(ctx->answer, sizeof(ctx->answer), "%d",
             td_kreal_leader(ctx->real, argv[1], (int32_t)partition));
    return TD_OK;
}

static int
tk_cmd_help(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size);

/* clang-format off */
static const tk_cmd_t td_kafka_cmds[] = {
    {"down",   1, tk_cmd_down,   "down BROKER|-1"},
    {"up",     1, tk_cmd_up,     "up BROKER|-1"},
    {"rtt",    2, tk_cmd_rtt,    "rtt BROKER|-1 MS"},
    {"errors", 3, tk_cmd_errors, "errors APIKEY CNT ERRCODE"},
    {"clear",  1, tk_cmd_clear,  "clear APIKEY"},
    {"create", 2, tk_cmd_create, "create TOPIC PARTITIONS"},
    {"leader", 3, tk_cmd_leader, "leader TOPIC PARTITION BROKER|-1"},
    {"coordinator", 3, tk_cmd_coordinator,
     "coordinator group|transaction KEY BROKER"},
    {"help",   0, tk_cmd_help,   "help"},
    {NULL, 0, NULL, NULL}
};

/* With --apache: node ids are 1..N; "leader" answers "ok <node id>" (-1
 * without a leader). */
static const tk_cmd_t td_kafka_real_cmds[] = {
    {"kill",   1, tk_cmd_node,   "kill NODE (SIGKILL)"},
    {"stop",   1, tk_cmd_node,   "stop NODE (SIGTERM, clean shutdown)"},
    {"start",  1, tk_cmd_node,  "start NODE (after kill or stop)"},
    {"create", 2, tk_cmd_create, "create TOPIC PARTITIONS"},
    {"grow",   2, tk_cmd_grow,   "grow TOPIC PARTITIONS (CreatePartitions)"},
    {"leader", 2, tk_cmd_real_leader, "leader TOPIC PARTITION"},
    {"help",   0, tk_cmd_help,   "help"},
    {NULL, 0, NULL, NULL}
};
/* clang-format on */

static int
tk_cmd_help(tk_ctx_t *ctx, char **argv, char *errstr, size_t errstr_size) {
    (void)argv;
    (void)errstr;
    (void)errstr_size;
    /* stdout carries exactly one answer line per command, so the listing
     * goes to stderr. */
    for (const tk_cmd_t *c = ctx->cmds; c->name; c++) {
        fprintf(stderr, "  %s\n", c->usage);
    }
    return TD_OK;
}

/* Runs one command line and prints its one-line answer. */
static void tk_exec(tk_ctx_t *ctx, char *line) {
    char *argv[TK_MAX_ARGS + 1];
    char errstr[512];
    int argc = 0;
    char *save = NULL;

    for (char *tok = strtok_r(line, " \t\r\n", &save); tok;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
        if (argc == TK_MAX_ARGS) {
            printf("error: too many arguments\n");
            fflush(stdout);
            return;
        }
        argv[argc++] = tok;
    }
    argv[argc] = NULL;
    if (argc == 0) return;

    const tk_cmd_t *c;
    ctx->answer[0] = '\0';
    for (c = ctx->cmds; c->name; c++) {
        if (!strcasecmp(c->name, argv[0])) break;
    }
    if (!c->name) {
        printf("error: unknown command \"%s\" (try help)\n", argv[0]);
    } else if (argc - 1 != c->argc) {
        printf("error: usage: %s\n", c->usage);
    } else if (c->fn(ctx, argv, errstr, sizeof(errstr)) != TD_OK) {
        printf("error: %s\n", errstr);
    } else {
        printf("ok%s%s\n", ctx->answer[0] ? " " : "", ctx->answer);
    }
    fflush(stdout);
}

/* Reads what stdin has and runs every complete line. Returns -1 at EOF or
 * on a read error, after running a last unterminated line. */
static int tk_read_commands(tk_ctx_t *ctx, char *buf, size_t *lenp) {
    ssize_t n = read(STDIN_FILENO, buf + *lenp, TK_LINE_MAX - 1 - *lenp);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
    if (n <= 0) {
        if (*lenp > 0) {
            buf[*lenp] = '\0';
            tk_exec(ctx, buf);
            *lenp = 0;
        }
        return -1;
    }
    *lenp += (size_t)n;
    char *nl;
    while ((nl = memchr(buf, '\n', *lenp))) {
        *nl = '\0';
        size_t used = (size_t)(nl - buf) + 1;
        tk_exec(ctx, buf);
        memmove(buf, buf + used, *lenp - used);
        *lenp -= used;
    }
    if (*lenp == TK_LINE_MAX - 1) {
        printf("error: line longer than %d bytes\n", TK_LINE_MAX - 2);
        fflush(stdout);
        *lenp = 0;
    }
    return 0;
}

static void tk_usage(FILE *fp) {
    fprintf(fp, "usage: td-kafka [--brokers-count N] [--partitions N] "
                "[--topic NAME=PARTITIONS]...\n"
                "                [--apache [--jars DIR] [--dir DIR] "
                "[--config TOPIC:KEY=VALUE]...]\n"
                "  --brokers-count N      mock brokers, ids 1..N (default 1); "
                "with --apache 1 or 3\n"
                "  --partitions N         partitions of orders, reviews and "
                "refunds (default 8)\n"
                "  --topic NAME=P         create or resize topic NAME with P "
                "partitions (repeatable)\n"
                "  --apache               real Apache Kafka (KRaft) instead "
                "of the mock\n"
                "  --jars DIR             its jars (default $TD_KAFKA_JARS or "
                "build/kafka/lib)\n"
                "  --dir DIR              its data and logs (default a new "
                "/tmp/td-kafka.XXXXXX)\n"
                "  --config T:K=V         topic config at creation "
                "(repeatable; trust-scores is compacted)\n"
                "Prints the bootstrap address as the first stdout line, then "
                "reads commands on stdin\n"
                "(one per line, \"help\" lists them) and runs until SIGTERM or "
                "SIGINT.\n");
}

/* Adds or overrides topic name=partitions in the list. */
static int tk_topic_arg(tk_topic_t *topics,
                        int *cntp,
                        const char *arg,
                        char *errstr,
                        size_t errstr_size) {
    const char *eq = strrchr(arg, '=');
    long partitions;
    size_t len = eq ? (size_t)(eq - arg) : 0;

    if (!eq || len == 0 || len >= sizeof(topics[0].name) ||
        tk_parse_int(eq + 1, 1, 10000, &partitions) != TD_OK) {
        snprintf(errstr, errstr_size,
                 "--topic wants NAME=PARTITIONS (1..10000), not \"%s\"", arg);
        return TD_ERR;
    }
    int i;
    for (i = 0; i < *cntp; i++) {
        if (strlen(topics[i].name) == len && !memcmp(topics[i].name, arg, len))
            break;
    }
    if (i == *cntp) {
        if (*cntp == TK_MAX_TOPICS) {
            snprintf(errstr, errstr_size, "more than %d topics", TK_MAX_TOPICS);
            return TD_ERR;
        }
        memcpy(topics[i].name, arg, len);
        topics[i].name[len] = '\0';
        (*cntp)++;
    }
    topics[i].partitions = (int)partitions;
    return TD_OK;
}

int main(int argc, char **argv) {
    tk_topic_t topics[TK_MAX_TOPICS];
    int topic_cnt = 0;
    long broker_cnt = 1;
    char errstr[512];
    tk_ctx_t ctx = {0};
    rd_kafka_t *rk = NULL;
    int rc = 1, apache = 0;
    const char *jars = getenv("TD_KAFKA_JARS");
    char dir[256] = "";
    int own_dir = 0;

    for (size_t i = 0; i < TD_ARRAY_LEN(tk_default_topics); i++) {
        topics[topic_cnt++] = tk_default_topics[i];
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            tk_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--brokers-count") && v) {
            if (tk_parse_int(v, 1, 64, &broker_cnt) != TD_OK) {
                fprintf(stderr, "td-kafka: --brokers-count must be 1..64\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--partitions") && v) {
            if (tk_parse_int(v, 1, 10000, &n) != TD_OK) {
                fprintf(stderr, "td-kafka: --partitions must be 1..10000\n");
                return 2;
            }
            for (int t = 0; t < TK_INPUT_TOPICS; t++) {
                topics[t].partitions = (int)n;
            }
            i++;
        } else if (!strcmp(a, "--apache")) {
            apache = 1;
        } else if (!strcmp(a, "--jars") && v) {
            jars = argv[++i];
        } else if (!strcmp(a, "--dir") && v) {
            snprintf(dir, sizeof(dir), "%s", argv[++i]);
        } else if (!strcmp(a, "--config") && v) {
            if (!strchr(v, ':') || !strchr(v, '=') ||
                tk_config_cnt == 2 * TK_MAX_TOPICS) {
                fprintf(stderr,
                        "td-kafka: --config wants TOPIC:KEY=VALUE, "
                        "not \"%s\"\n",
                        v);
                return 2;
            }
            tk_configs[tk_config_cnt++] = argv[++i];
        } else if (!strcmp(a, "--topic") && v) {
            if (tk_topic_arg(topics, &topic_cnt, v, errstr, sizeof(errstr))) {
                fprintf(stderr, "td-kafka: %s\n", errstr);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "td-kafka: unknown or incomplete option \"%s\"\n",
                    a);
            tk_usage(stderr);
            return 2;
        }
    }

    /* No SA_RESTART: a signal must interrupt poll() so that we exit. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = tk_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (apache) {
        if (broker_cnt != 1 && broker_cnt != 3) {
            fprintf(stderr, "td-kafka: --apache runs 1 or 3 brokers\n");
            return 2;
        }
        if (!dir[0]) {
            snprintf(dir, sizeof(dir), "/tmp/td-kafka.XXXXXX");
            if (!mkdtemp(dir)) {
                fprintf(stderr, "td-kafka: mkdtemp: %s\n", strerror(errno));
                return 1;
            }
            own_dir = 1;
        }
        ctx.broker_cnt = (int)broker_cnt;
        ctx.cmds = td_kafka_real_cmds;
        ctx.real =
            td_kreal_start(jars && *jars ? jars : "build/kafka/lib", dir,
                           ctx.broker_cnt, 180000, errstr, sizeof(errstr));
        if (!ctx.real) {
            fprintf(stderr, "td-kafka: Apache Kafka: %s\n", errstr);
            goto err;
        }
        for (int t = 0; t < topic_cnt; t++) {
            if (tk_topic_create(&ctx, topics[t].name, topics[t].partitions,
                                errstr, sizeof(errstr)) != TD_OK) {
                fprintf(stderr, "td-kafka: %s\n", errstr);
                goto err;
            }
        }
        printf("%s\n", td_kreal_bootstrap(ctx.real));
        fflush(stdout);
        fprintf(stderr,
                "td-kafka: Apache Kafka %s, %d node(s), data and "
                "logs in %s\n",
                td_kreal_version(ctx.real), ctx.broker_cnt, dir);
        goto serve;
    }

    /* The mock cluster needs a handle for bookkeeping only; a producer
     * without bootstrap servers never connects anywhere. Notice level
     * would only say so ("No bootstrap.servers configured"). */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr))) {
        fprintf(stderr, "td-kafka: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "td-kafka: %s\n", errstr);
        return 1;
    }
    conf = NULL;

    ctx.broker_cnt = (int)broker_cnt;
    ctx.cmds = td_kafka_cmds;
    ctx.mcluster = rd_kafka_mock_cluster_new(rk, ctx.broker_cnt);
    if (!ctx.mcluster) {
        fprintf(stderr, "td-kafka: failed to create the mock cluster\n");
        goto err;
    }
    for (int t = 0; t < topic_cnt; t++) {
        if (tk_topic_create(&ctx, topics[t].name, topics[t].partitions, errstr,
                            sizeof(errstr)) != TD_OK) {
            fprintf(stderr, "td-kafka: %s\n", errstr);
            goto err;
        }
    }

    printf("%s\n", rd_kafka_mock_cluster_bootstraps(ctx.mcluster));
    fflush(stdout);
    fprintf(stderr,
            "td-kafka: note: the mock cluster has no topic configs, so "
            "trust-scores is not compacted and retention is 5 MiB or 100000 "
            "batches per partition\n");

serve:;
    char line[TK_LINE_MAX];
    size_t len = 0;
    int stdin_open = 1;
    while (run) {
        int st, id = ctx.real ? td_kreal_reap(ctx.real, &st) : 0;
        if (id)
            fprintf(stderr, "td-kafka: node %d exited on its own (status %d)\n",
                    id, st);
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        /* After EOF only a signal ends the wait; poll() with no fds is an
         * interruptible sleep. */
        int n = poll(&pfd, stdin_open ? 1 : 0, 1000);
        if (n > 0 && stdin_open && tk_read_commands(&ctx, line, &len) < 0) {
            stdin_open = 0;
        }
    }
    rc = 0;

err:
    /* The cluster must go before the handle it was created on. */
    if (ctx.mcluster) {
        rd_kafka_mock_cluster_destroy(ctx.mcluster);
    }
    if (rk) rd_kafka_destroy(rk);
    td_kreal_destroy(ctx.real);
    if (own_dir) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "td-kafka: could not remove %s\n", dir);
    }
    return rc;
}
