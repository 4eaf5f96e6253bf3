/*
 * trustctl.c - command-line tool for dashboards, support staff and SREs.
 *
 *   trustctl [--redis HOST:PORT] [--brokers LIST] [--json] COMMAND [ARGS]
 *
 *   get MERCHANT        score, tier, confidence, sub-scores, reasons and key
 *                       signals of one merchant
 *   signals MERCHANT    every signal with meaning, unit and value
 *   top N | bottom N    best / worst merchants by score
 *   offsets             stored offsets per partition against Kafka's high
 *                       watermarks (lag)
 *   dlq list [N]        the last N dead letters with their reasons
 *   dlq replay TOPIC/PARTITION@OFFSET...
 *                       produce chosen dead letters back to their source
 *   scores [N]          read the trust-scores topic like the allocator does:
 *                       newest version per merchant wins
 *   reference           the signal reference page (schemas/signals.md)
 *
 * Text output by default, --json for scripts. Exit status: 0 ok, 1 usage or
 * configuration error, 2 not found, 3 Redis or Kafka unreachable.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "conf.h"
#include "signals.h"
#include "store.h"

extern char **environ;

#define EXIT_USAGE       1
#define EXIT_NOTFOUND    2
#define EXIT_UNREACHABLE 3

typedef struct ctl_s {
    td_conf_t *conf;
    td_store_t *store;
} ctl_t;

/* Key signals shown by `get`. */
static const td_signal_id_t key_signals[] = {
    TD_SIG_orders_paid_30d,  TD_SIG_gmv_cents_30d, TD_SIG_late_ship_rate_30d,
    TD_SIG_refund_rate_30d,  TD_SIG_rating_avg_30d,
};

static void json_str(FILE *fp, const char *s, size_t len) {
    fputc('"', fp);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c < 0x20)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

static redisReply *cmd(ctl_t *c, const char *fmt, ...) {
    char errstr[512];
    va_list ap;
    redisReply *r;

    if (td_store_connect(c->store, errstr, sizeof(errstr)) != TD_OK) {
        fprintf(stderr, "trustctl: cannot reach Redis at %s: %s\n",
                c->conf->redis, errstr);
        exit(EXIT_UNREACHABLE);
    }
    va_start(ap, fmt);
    r = td_store_vcmd(c->store, errstr, sizeof(errstr), fmt, ap);
    va_end(ap);
    if (!r) {
        fprintf(stderr, "trustctl: Redis at %s: %s\n", c->conf->redis,
                errstr);
        exit(EXIT_UNREACHABLE);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "trustctl: Redis error: %s\n", r->str);
        freeReplyObject(r);
        exit(EXIT_UNREACHABLE);
    }
    return r;
}

/* Value of field in an HGETALL reply, or NULL. */
static const char *hfield(const redisReply *r, const char *field) {
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (!strcmp(r->element[i]->str, field))
            return r->element[i + 1]->str;
    }
    return NULL;
}

static redisReply *merchant_hash(ctl_t *c, const char *m, const char *what) {
    char key[128];
    size_t mlen = strlen(m);
    if (!strcmp(what, "signals"))
        td_key_signals(key, sizeof(key), m, mlen);
    else
        td_key_score(key, sizeof(key), m, mlen);
    return cmd(c, "HGETALL %s", key);
}

static int cmd_get(ctl_t *c, const char *m) {
    redisReply *sc = merchant_hash(c, m, "score");
    redisReply *sg = merchant_hash(c, m, "signals");
    int json = c->conf->json;

    if (sc->elements == 0 && sg->elements == 0) {
        fprintf(stderr, "trustctl: unknown merchant '%s'\n", m);
        freeReplyObject(sc);
        freeReplyObject(sg);
        return EXIT_NOTFOUND;
    }
    if (json) {
        printf("{\"merchant_id\":");
        json_str(stdout, m, strlen(m));
        printf(",\"score\":{");
        for (size_t i = 0; i + 1 < sc->elements; i += 2) {
            const char *f = sc->element[i]->str, *v = sc->element[i + 1]->str;
            printf("%s", i ? "," : "");
            json_str(stdout, f, strlen(f));
            putchar(':');
            if (!strcmp(f, "reasons") || !strcmp(f, "model_version"))
                !strcmp(f, "reasons") ? (void)fputs(v, stdout)
                                      : json_str(stdout, v, strlen(v));
            else
                fputs(v, stdout);
        }
        printf("},\"signals\":{");
        for (size_t k = 0; k < TD_ARRAY_LEN(key_signals); k++) {
            const char *v = hfield(sg, td_signals[key_signals[k]].name);
            printf("%s\"%s\":%s", k ? "," : "",
                   td_signals[key_signals[k]].name, v ? v : "null");
        }
        printf("}}\n");
    } else {
        const char *v;
        printf("merchant      %s\n", m);
        printf("score         %s\n", (v = hfield(sc, "score")) ? v : "-");
        printf("tier          %s\n", (v = hfield(sc, "tier")) ? v : "-");
        printf("confidence    %s\n", (v = hfield(sc, "confidence")) ? v : "-");
        for (size_t i = 0; i + 1 < sc->elements; i += 2) {
            const char *f = sc->element[i]->str;
            if (!strncmp(f, "sub_", 4))
                printf("  %-12s %s\n", f + 4, sc->element[i + 1]->str);
        }
        printf("reasons       %s\n", (v = hfield(sc, "reasons")) ? v : "[]");
        printf("version       %s (model %s)\n",
               (v = hfield(sc, "version")) ? v : "-",
               hfield(sc, "model_version") ? hfield(sc, "model_version")
                                           : "-");
        printf("as_of_ms      %s\n", (v = hfield(sg, "as_of_ms")) ? v : "-");
        for (size_t k = 0; k < TD_ARRAY_LEN(key_signals); k++) {
            const td_signal_t *s = &td_signals[key_signals[k]];
            v = hfield(sg, s->name);
            printf("%-30s %-14s %s\n", s->name, v ? v : "-", s->unit);
        }
    }
    freeReplyObject(sc);
    freeReplyObject(sg);
    return 0;
}

static int cmd_signals(ctl_t *c, const char *m) {
    redisReply *sg = merchant_hash(c, m, "signals");
    int json = c->conf->json;

    if (sg->elements == 0) {
        fprintf(stderr, "trustctl: unknown merchant '%s'\n", m);
        freeReplyObject(sg);
        return EXIT_NOTFOUND;
    }
    if (json)
        printf("{\"merchant_id\":\"%s\",\"as_of_ms\":%s,\"signals\":[", m,
               hfield(sg, "as_of_ms") ? hfield(sg, "as_of_ms") : "null");
    else
        printf("%-34s %-18s %-9s %-8s %s\n", "signal", "value", "unit",
               "window", "meaning");
    for (int i = 0; i < TD_SIG__CNT; i++) {
        const td_signal_t *s = &td_signals[i];
        const char *v = hfield(sg, s->name);
        if (json) {
            printf("%s{\"name\":\"%s\",\"value\":%s,\"unit\":\"%s\","
                   "\"window\":\"%s\",\"category\":\"%s\","
                   "\"higher_is_better\":%s,\"meaning\":",
                   i ? "," : "", s->name, v ? v : "null", s->unit,
                   td_window_name(s->window_ms), td_category_name(s->category),
                   s->higher_better ? "true" : "false");
            json_str(stdout, s->meaning, strlen(s->meaning));
            putchar('}');
        } else {
            printf("%-34s %-18s %-9s %-8s %s\n", s->name, v ? v : "-",
                   s->unit, td_window_name(s->window_ms), s->meaning);
        }
    }
    if (json)
        printf("]}\n");
    freeReplyObject(sg);
    return 0;
}

static int cmd_rank(ctl_t *c, const char *n_str, int best) {
    char *end;
    long n = strtol(n_str, &end, 10);
    redisReply *r;
    int json = c->conf->json;

    if (*end || n <= 0 || n > 100000) {
        fprintf(stderr, "trustctl: N must be 1..100000, not '%s'\n", n_str);
        return EXIT_USAGE;
    }
    r = cmd(c, best ? "ZREVRANGE %s 0 %ld WITHSCORES"
                    : "ZRANGE %s 0 %ld WITHSCORES",
            TD_KEY_SCORES, n - 1);
    if (json)
        printf("[");
    else
        printf("%-4s %-24s %-10s %-4s %s\n", "rank", "merchant", "score",
               "tier", "refund_rate_30d late_ship_rate_30d rating_avg_30d");
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *m = r->element[i]->str;
        redisReply *sc = merchant_hash(c, m, "score");
        redisReply *sg = merchant_hash(c, m, "signals");
        const char *tier = hfield(sc, "tier");
        const char *rr = hfield(sg, "refund_rate_30d");
        const char *ls = hfield(sg, "late_ship_rate_30d");
        const char *ra = hfield(sg, "rating_avg_30d");
        if (json) {
            printf("%s{\"rank\":%zu,\"merchant_id\":", i ? "," : "",
                   i / 2 + 1);
            json_str(stdout, m, strlen(m));
            printf(",\"score\":%s,\"tier\":%s}", r->element[i + 1]->str,
                   tier ? tier : "null");
        } else {
            printf("%-4zu %-24s %-10.2f %-4s %-15.4f %-18.4f %.2f\n",
                   i / 2 + 1, m, strtod(r->element[i + 1]->str, NULL),
                   tier ? tier : "-", rr ? strtod(rr, NULL) : 0.0,
                   ls ? strtod(ls, NULL) : 0.0, ra ? strtod(ra, NULL) : 0.0);
        }
        freeReplyObject(sc);
        freeReplyObject(sg);
    }
    if (json)
        printf("]\n");
    freeReplyObject(r);
    return 0;
}

static rd_kafka_t *kafka_consumer(ctl_t *c) {
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;

    if (rd_kafka_conf_set(kc, "bootstrap.servers", c->conf->brokers, errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(kc, "group.id", "trustctl", errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "trustctl: %s\n", errstr);
        rd_kafka_conf_destroy(kc);
        exit(EXIT_USAGE);
    }
    for (size_t i = 0; i < c->conf->kafka_prop_cnt; i++)
        rd_kafka_conf_set(kc, c->conf->kafka_props[i].name,
                          c->conf->kafka_props[i].value, errstr,
                          sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "trustctl: %s\n", errstr);
        exit(EXIT_USAGE);
    }
    return rk;
}

static int cmd_offsets(ctl_t *c) {
    redisReply *keys = cmd(c, "KEYS trust:part:{*}");
    rd_kafka_t *rk = keys->elements ? kafka_consumer(c) : NULL;
    int json = c->conf->json;
    int64_t total = 0;

    if (json)
        printf("[");
    else
        printf("%-24s %-12s %-12s %-12s %-10s %s\n", "partition", "stored",
               "intent", "high_wm", "lag", "epoch");
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        const char *open = strchr(k, '{'), *slash = strrchr(k, '/');
        char topic[256];
        int part;
        int64_t lo = -1, hi = -1, stored;
        redisReply *h;
        if (!open || !slash || slash < open)
            continue;
        snprintf(topic, sizeof(topic), "%.*s", (int)(slash - open - 1),
                 open + 1);
        part = atoi(slash + 1);
        h = cmd(c, "HGETALL %s", k);
        stored = hfield(h, "committed") ? atoll(hfield(h, "committed")) : -1;
        if (rd_kafka_query_watermark_offsets(rk, topic, part, &lo, &hi,
                                             5000) != 0)
            hi = -1;
        int64_t lag = hi >= 0 ? hi - (stored < 0 ? lo : stored) : -1;
        if (lag > 0)
            total += lag;
        if (json)
            printf("%s{\"topic\":\"%s\",\"partition\":%d,\"stored\":%lld,"
                   "\"intent\":%s,\"high_watermark\":%lld,\"lag\":%lld,"
                   "\"epoch\":%s}",
                   i ? "," : "", topic, part, (long long)stored,
                   hfield(h, "intent") ? hfield(h, "intent") : "null",
                   (long long)hi, (long long)lag,
                   hfield(h, "epoch") ? hfield(h, "epoch") : "null");
        else
            printf("%-24s %-12lld %-12s %-12lld %-10lld %s\n", k + 11,
                   (long long)stored,
                   hfield(h, "intent") ? hfield(h, "intent") : "-",
                   (long long)hi, (long long)lag,
                   hfield(h, "epoch") ? hfield(h, "epoch") : "-");
        freeReplyObject(h);
    }
    if (json)
        printf("]\n");
    else
        printf("total lag %lld\n", (long long)total);
    freeReplyObject(keys);
    if (rk)
        rd_kafka_destroy(rk);
    return 0;
}

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: trustctl [options] COMMAND [ARGS]\n\n"
            "commands:\n"
            "  get MERCHANT       score, tier, reasons and key signals\n"
            "  signals MERCHANT   every signal with meaning and unit\n"
            "  top N | bottom N   best / worst merchants by score\n"
            "  offsets            stored offsets and lag per partition\n"
            "  reference          the signal reference (markdown)\n\n"
            "options (also TRUST_* environment and --config FILE):\n");
    td_conf_usage(fp, TD_CONF_TRUSTCTL, "trustctl");
}

int main(int argc, char **argv) {
    td_conf_t conf;
    char errstr[512];
    int want_help = 0, want_print = 0, rest_cnt = 0, rc = EXIT_USAGE;
    char **rest = NULL;
    ctl_t c = {&conf, NULL};
    td_store_conf_t sc;

    td_conf_init(&conf);
    if (td_conf_load(&conf, TD_CONF_TRUSTCTL, argc, argv, environ, &want_help,
                     &want_print, &rest, &rest_cnt, errstr,
                     sizeof(errstr)) != 0) {
        fprintf(stderr, "trustctl: %s\n", errstr);
        td_conf_term(&conf);
        return EXIT_USAGE;
    }
    if (want_help || rest_cnt == 0) {
        usage(want_help ? stdout : stderr);
        td_conf_term(&conf);
        return want_help ? 0 : EXIT_USAGE;
    }
    if (!strcmp(rest[0], "reference")) {
        td_signals_reference_md(stdout);
        td_conf_term(&conf);
        return 0;
    }
    sc.addrs = conf.redis;
    sc.user = conf.redis_user;
    sc.password = conf.redis_password;
    sc.connect_timeout_ms = conf.redis_connect_timeout_ms;
    sc.command_timeout_ms = conf.redis_command_timeout_ms;
    if (!(c.store = td_store_new(&sc, errstr, sizeof(errstr)))) {
        fprintf(stderr, "trustctl: %s\n", errstr);
        td_conf_term(&conf);
        return EXIT_USAGE;
    }
    if (!strcmp(rest[0], "get") && rest_cnt == 2)
        rc = cmd_get(&c, rest[1]);
    else if (!strcmp(rest[0], "signals") && rest_cnt == 2)
        rc = cmd_signals(&c, rest[1]);
    else if (!strcmp(rest[0], "top") && rest_cnt <= 2)
        rc = cmd_rank(&c, rest_cnt == 2 ? rest[1] : "10", 1);
    else if (!strcmp(rest[0], "bottom") && rest_cnt <= 2)
        rc = cmd_rank(&c, rest_cnt == 2 ? rest[1] : "10", 0);
    else if (!strcmp(rest[0], "offsets") && rest_cnt == 1)
        rc = cmd_offsets(&c);
    else
        usage(stderr);
    td_store_destroy(c.store);
    td_conf_term(&conf);
    return rc;
}
