/*
 * td_consume.c - td-consume: the consume-only baseline of the benchmark.
 *
 *   td-consume --brokers LIST --group G [--topics orders,reviews,refunds]
 *              [--expect N] [--idle-ms 3000] [--start-timeout-ms 60000]
 *              [-X prop=val]...
 *
 * A high-level consumer configured like trustd's (earliest reset, no auto
 * commit, cooperative-sticky assignment, 6 s session timeout, librdkafka's
 * default fetch settings) that reads every message, touches every payload
 * byte so the work cannot be optimised away, and does nothing else. It
 * stops when --expect messages were read, or when nothing new arrived for
 * --idle-ms after the first message (or --start-timeout-ms before it), and
 * prints one line on stdout:
 *
 *   consumed=N seconds=S eps=R
 *
 * S runs from the first message to the last one, so the group join (about
 * 3 s on the mock cluster) is left out; it is reported on stderr instead.
 * Exit status: 0, or 1 if fewer than --expect messages arrived, 2 on bad
 * usage.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "common.h"

#define TC_MAX_TOPICS 32
#define TC_MAX_PROPS  64

/* Consumer errors are reported at most this often. */
#define TC_ERR_LOG_INTERVAL_MS 5000

static volatile sig_atomic_t run = 1;

typedef struct tc_opts_s {
    const char *brokers;
    const char *group;
    char *topics;
    long long expect;
    long idle_ms;
    long start_timeout_ms;
    const char *props[TC_MAX_PROPS];
    int prop_cnt;
} tc_opts_t;

/* clang-format off */
/* What trustd's consumer sets; -X can override any of them. */
static const char *const tc_base_conf[][2] = {
    {"auto.offset.reset",             "earliest"},
    {"enable.auto.commit",            "false"},
    {"partition.assignment.strategy", "cooperative-sticky"},
    {"session.timeout.ms",            "6000"},
    {"enable.partition.eof",          "false"},
};
/* clang-format on */

static void tc_stop(int sig) {
    (void)sig;
    run = 0;
}

static void tc_usage(FILE *fp) {
    fprintf(fp, "usage: td-consume --brokers LIST --group G "
                "[--topics orders,reviews,refunds]\n"
                "                  [--expect N] [--idle-ms 3000] "
                "[--start-timeout-ms 60000] [-X prop=val]...\n"
                "Reads every message and prints \"consumed=N seconds=S eps=R\" "
                "(S = first to last message).\n");
}

static int tc_parse_ll(const char *s, long long min, long long *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < min) return TD_ERR;
    *out = v;
    return TD_OK;
}

static int tc_parse_args(int argc, char **argv, tc_opts_t *o) {
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            tc_usage(stdout);
            exit(0);
        }
        if (!val) {
            fprintf(stderr, "td-consume: unknown or incomplete option %s\n", a);
            return TD_ERR;
        }
        i++;
        if (!strcmp(a, "--brokers")) {
            o->brokers = val;
        } else if (!strcmp(a, "--group")) {
            o->group = val;
        } else if (!strcmp(a, "--topics")) {
            o->topics = argv[i];
        } else if (!strcmp(a, "--expect") && !tc_parse_ll(val, 0, &v)) {
            o->expect = v;
        } else if (!strcmp(a, "--idle-ms") && !tc_parse_ll(val, 1, &v) &&
                   v <= 86400000) {
            o->idle_ms = (long)v;
        } else if (!strcmp(a, "--start-timeout-ms") &&
                   !tc_parse_ll(val, 1, &v) && v <= 86400000) {
            o->start_timeout_ms = (long)v;
        } else if (!strcmp(a, "-X") && strchr(val, '=') &&
                   o->prop_cnt < TC_MAX_PROPS) {
            o->props[o->prop_cnt++] = val;
        } else {
            fprintf(stderr, "td-consume: bad option %s %s\n", a, val);
            return TD_ERR;
        }
    }
    if (!o->brokers || !o->group) {
        fprintf(stderr, "td-consume: --brokers and --group are required\n");
        return TD_ERR;
    }
    return TD_OK;
}

/* Sets name=value pairs, -X ones last so that they win. */
static rd_kafka_conf_t *
tc_conf_new(const tc_opts_t *o, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char prop[512];

    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, errstr,
                          errstr_size) ||
        rd_kafka_conf_set(conf, "group.id", o->group, errstr, errstr_size))
        goto err;
    for (size_t i = 0; i < TD_ARRAY_LEN(tc_base_conf); i++) {
        if (rd_kafka_conf_set(conf, tc_base_conf[i][0], tc_base_conf[i][1],
                              errstr, errstr_size))
            goto err;
    }
    for (int i = 0; i < o->prop_cnt; i++) {
        snprintf(prop, sizeof(prop), "%s", o->props[i]);
        char *eq = strchr(prop, '=');
        *eq = '\0';
        if (rd_kafka_conf_set(conf, prop, eq + 1, errstr, errstr_size))
            goto err;
    }
    return conf;

err:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int main(int argc, char **argv) {
    char default_topics[] = "orders,reviews,refunds";
    tc_opts_t o = {
        .topics = default_topics, .idle_ms = 3000, .start_timeout_ms = 60000};
    char errstr[512];
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *subs = NULL;
    int rc = 1;

    if (tc_parse_args(argc, argv, &o) != TD_OK) {
        tc_usage(stderr);
        return 2;
    }
    signal(SIGINT, tc_stop);
    signal(SIGTERM, tc_stop);

    rd_kafka_conf_t *conf = tc_conf_new(&o, errstr, sizeof(errstr));
    if (!conf) {
        fprintf(stderr, "td-consume: %s\n", errstr);
        return 2;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "td-consume: %s\n", errstr);
        return 1;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(rk);

    subs = rd_kafka_topic_partition_list_new(TC_MAX_TOPICS);
    char *save = NULL;
    for (char *t = strtok_r(o.topics, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        rd_kafka_topic_partition_list_add(subs, t, RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, subs);
    if (err) {
        fprintf(stderr, "td-consume: subscribe: %s\n", rd_kafka_err2str(err));
        goto done;
    }

    long long consumed = 0;
    uint64_t bytes = 0, sum = 0;
    int64_t t_start = td_mono_ms(), t_first = 0, t_last = 0;
    int64_t t_errlog = 0;
    long err_cnt = 0;
    while (run && (o.expect == 0 || consumed < o.expect)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        int64_t now = td_mono_ms();
        if (!m) {
            int64_t since = consumed ? now - t_last : now - t_start;
            if (since >= (consumed ? o.idle_ms : o.start_timeout_ms)) break;
            continue;
        }
        if (m->err) {
            /* Rate-limited: a down broker reports the same error often. */
            err_cnt++;
            if (now - t_errlog >= TC_ERR_LOG_INTERVAL_MS) {
                fprintf(stderr, "td-consume: %s (%ld errors so far)\n",
                        rd_kafka_message_errstr(m), err_cnt);
                t_errlog = now;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        const unsigned char *p = m->payload;
        for (size_t i = 0; i < m->len; i++) {
            sum += p[i];
        }
        bytes += m->len;
        if (consumed++ == 0) {
            t_first = now;
        }
        t_last = now;
        rd_kafka_message_destroy(m);
    }

    double seconds = consumed > 1 ? (double)(t_last - t_first) / 1000.0 : 0;
    printf("consumed=%lld seconds=%.3f eps=%.0f\n", consumed, seconds,
           seconds > 0 ? (double)consumed / seconds : 0.0);
    fflush(stdout);
    fprintf(stderr,
            "td-consume: first message after %.3f s, %" PRIu64
            " payload bytes (checksum %" PRIu64 ")\n",
            consumed ? (double)(t_first - t_start) / 1000.0 : 0.0, bytes, sum);
    rc = o.expect && consumed < o.expect ? 1 : 0;

done:
    rd_kafka_topic_partition_list_destroy(subs);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}
