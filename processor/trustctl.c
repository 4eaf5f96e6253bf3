/*
 * trustctl.c - command-line tool for dashboards, support staff and SREs:
 * reads the merchant state trustd keeps in Redis and, where needed, the
 * Kafka topics around it.
 *
 *   trustctl [OPTIONS] COMMAND [ARGS]
 *
 *   get MERCHANT        score, tier, confidence, sub-scores, reasons and key
 *                       signals of one merchant
 *   signals MERCHANT    every signal with its value, unit, window, meaning
 *   history MERCHANT    the merchant's published scores (time, score, tier,
 *                       confidence, version), oldest first
 *   top [N]             best / worst N merchants by score (default 10)
 *   bottom [N]
 *   offsets             offsets stored in Redis per input partition, against
 *                       Kafka's high watermarks (lag)
 *   dlq list [N]        the last N dead letters (default 20)
 *   dlq replay SPEC...  produce chosen dead letters back to their source
 *                       partition, key and value bytes unchanged; SPEC is
 *                       DLQPARTITION@OFFSET (its place in the dead-letter
 *                       topic) or [--source] TOPIC/PARTITION@OFFSET (where it
 *                       was consumed from)
 *   scores [--follow]   read the scores topic the way the allocator does:
 *                       per merchant only the highest version counts
 *   reference           the signal reference page (Markdown)
 *   serve               the merchant trust page and its JSON API over HTTP
 *                       (serve.c), on `listen` (loopback unless serve_token)
 *
 * The commands are one table, ctl_cmds[]; --help is written from it. Text
 * output by default; --json prints one JSON document (scores --follow: one
 * JSON object per line). Exit status: 0 ok, 1 usage or configuration error,
 * 2 not found (merchant, dead letter, topic), 3 Redis or Kafka unreachable
 * or failing.
 *
 * trustctl only reads Redis, through a read-only store (td_store_conf_t
 * readonly: no FUNCTION LOAD, no WAIT, so a read-only account will do),
 * which also routes each command to its Redis Cluster node and walks every
 * master for SCAN. Kafka is read with assign() under a throwaway group id
 * that is never joined or committed, so reading leaves no trace in the
 * cluster. Every failure returns an exit status up to main(); nothing exits
 * from the middle.
 */
#include <ctype.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <search.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "common.h"
#include "conf.h"
#include "history.h"
#include "log.h"
#include "signals.h"
#include "model.h"
#include "proto.h"
#include "reply.h"
#include "schemas_gen.h"
#include "serve.h"
#include "store.h"

extern char **environ;

#define EXIT_USAGE       1
#define EXIT_NOTFOUND    2
#define EXIT_UNREACHABLE 3

#define RANK_DEFAULT  10
#define RANK_MAX      100000
#define RANK_CHUNK    256 /* merchants per pipelined round trip */
#define DLQ_DEFAULT   20
#define DLQ_MAX       100000
#define SPEC_MAX      256   /* dlq replay specs per call */
#define KAFKA_WAIT_MS 10000 /* metadata, watermarks, silence while reading */
#define DELIVER_MS    30000 /* replay: wait for acknowledgements */
#define KEY_MAX       (TD_MERCHANT_ID_MAX + 32)

/* The only global: scores --follow stops on SIGINT/SIGTERM. */
static volatile sig_atomic_t stop_flag;

typedef struct ctl_s {
    const td_conf_t *conf;
    td_store_t *st; /* connected on first use */
    int json;
    int follow;                    /* scores --follow */
    const char *sources[SPEC_MAX]; /* dlq replay --source SPEC */
    int nsources;
} ctl_t;

typedef int (*ctl_fn_t)(ctl_t *c, int argc, char **argv);

typedef struct ctl_cmd_s {
    const char *name;
    const char *sub; /* second word ("dlq list") or NULL */
    int min_args;    /* arguments after the command words */
    int max_args;
    int redis; /* needs the Redis connection */
    ctl_fn_t fn;
    const char *args; /* for --help */
    const char *help;
} ctl_cmd_t;

/* Options that belong to one command, taken out of argv before the
 * configuration sees it. */
typedef struct ctl_flag_s {
    const char *name; /* without "--" */
    int takes_value;
    const char *cmd; /* "name" or "name sub" */
} ctl_flag_t;

static const ctl_flag_t ctl_flags[] = {
    {"follow", 0, "scores"},
    {"source", 1, "dlq replay"},
    {NULL, 0, NULL},
};

/* Key signals shown by `get`, and the three shown by top/bottom. */
static const td_signal_id_t key_signals[] = {
    TD_SIG_orders_paid_30d, TD_SIG_gmv_cents_30d,  TD_SIG_late_ship_rate_30d,
    TD_SIG_refund_rate_30d, TD_SIG_rating_avg_30d,
};
static const td_signal_id_t rank_signals[] = {
    TD_SIG_refund_rate_30d,
    TD_SIG_late_ship_rate_30d,
    TD_SIG_rating_avg_30d,
};

static void on_stop(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "trustctl: out of memory\n");
        abort();
    }
    return p;
}

/* ---- output helpers ---- */

/* Length of the valid UTF-8 sequence at p[0..n), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need;

    if (p[0] < 0x80) return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        need = 1;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        need = 2;
        lo = p[0] == 0xE0 ? 0xA0 : 0x80; /* overlong */
        hi = p[0] == 0xED ? 0x9F : 0xBF; /* surrogates */
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        need = 3;
        lo = p[0] == 0xF0 ? 0x90 : 0x80;
        hi = p[0] == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n <= need || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i <= need; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
    }
    return need + 1;
}

/* Writes s[0..len) as a JSON string. Bytes that are not UTF-8 (a Kafka key
 * can hold anything) become U+FFFD so the document stays valid. */
static void json_str(FILE *fp, const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;

    fputc('"', fp);
    while (i < len) {
        if (p[i] == '"' || p[i] == '\\') {
            fprintf(fp, "\\%c", p[i++]);
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            fprintf(fp, "\\u%04x", p[i++]);
        } else if ((n = utf8_len(p + i, len - i)) == 0) {
            fputs("\\ufffd", fp);
            i++;
        } else {
            fwrite(p + i, 1, n, fp);
            i += n;
        }
    }
    fputc('"', fp);
}

static void json_cstr(FILE *fp, const char *s) {
    if (!s) {
        fputs("null", fp);
        return;
    }
    json_str(fp, s, strlen(s));
}

/* 1 if s is a JSON number (RFC 8259). Redis returns numbers as text and may
 * hold "inf" or "nan", which JSON cannot spell. */
static int is_json_num(const char *s) {
    if (*s == '-') {
        s++;
    }
    if (*s == '0') {
        s++;
    } else if (isdigit((unsigned char)*s)) {
        while (isdigit((unsigned char)*s)) {
            s++;
        }
    } else {
        return 0;
    }
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s)) return 0;
        while (isdigit((unsigned char)*s)) {
            s++;
        }
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') {
            s++;
        }
        if (!isdigit((unsigned char)*s)) return 0;
        while (isdigit((unsigned char)*s)) {
            s++;
        }
    }
    return *s == '\0';
}

/* A number from Redis as JSON: null when absent or not finite. */
static void json_num(FILE *fp, const char *v) {
    fputs(v && is_json_num(v) ? v : "null", fp);
}

/* A double as JSON: null when not finite. */
static void json_dbl(FILE *fp, double v) {
    if (!isfinite(v)) {
        fputs("null", fp);
        return;
    }
    fprintf(fp, "%.17g", v);
}

static void json_i64(FILE *fp, int64_t v) {
    if (v < 0) {
        fputs("null", fp);
        return;
    }
    fprintf(fp, "%lld", (long long)v);
}

/* 1 if s is a JSON array of strings, the form trustd stores reasons in. */
static int is_json_strarray(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + strlen(s);
    size_t n;

    while (isspace(*p)) {
        p++;
    }
    if (*p++ != '[') return 0;
    while (isspace(*p)) {
        p++;
    }
    while (*p != ']') {
        if (*p++ != '"') return 0;
        while (*p != '"') {
            if (*p < 0x20) return 0; /* also the end of s */
            if (*p == '\\') {
                p++;
                if (*p == 'u') {
                    for (int i = 1; i <= 4; i++) {
                        if (!isxdigit(p[i])) return 0;
                    }
                    p += 5;
                } else if (*p && strchr("\"\\/bfnrt", *p)) {
                    p++;
                } else {
                    return 0;
                }
            } else if ((n = utf8_len(p, (size_t)(end - p))) == 0) {
                return 0;
            } else {
                p += n;
            }
        }
        p++;
        while (isspace(*p)) {
            p++;
        }
        if (*p == ',') {
            p++;
            while (isspace(*p)) {
                p++;
            }
            if (*p == ']') return 0;
        } else if (*p != ']') {
            return 0;
        }
    }
    p++;
    while (isspace(*p)) {
        p++;
    }
    return *p == '\0';
}

/* Prints the reasons array one per line for people; anything else as is. */
static void text_reasons(const char *v) {
    const char *p = v;
    int first = 1;

    if (!v || !is_json_strarray(v)) {
        printf("reasons       %s\n", v ? v : "-");
        return;
    }
    while ((p = strchr(p, '"'))) {
        fputs(first ? "reasons       - " : "              - ", stdout);
        first = 0;
        /* Only \" and \\ occur in what trustd writes; others print as is. */
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1]) {
                p++;
            }
            putchar(*p);
        }
        putchar('\n');
        if (*p) {
            p++;
        }
    }
    if (first) {
        printf("reasons       -\n");
    }
}

/* "2026-11-23T22:30:01.123Z", or "-" for a negative time. */
static const char *iso_ms(int64_t ms, char *buf, size_t size) {
    struct tm tm;
    time_t t = (time_t)(ms / 1000);

    if (ms < 0 || !gmtime_r(&t, &tm)) return "-";
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(ms % 1000));
    return buf;
}

static const char *or_dash(const char *v) {
    return v && *v ? v : "-";
}

/* A number from Redis for people, or "-". */
static const char *
fmt_num(const char *v, const char *fmt, char *buf, size_t size) {
    char *end;
    double d;

    if (!v || !*v) return "-";
    d = strtod(v, &end);
    if (*end) return v;
    snprintf(buf, size, fmt, d);
    return buf;
}

/* A key for people: printable ASCII as is, other bytes as \xNN, cut to
 * fit buf. */
static const char *
text_bytes(const char *s, size_t len, char *buf, size_t size) {
    size_t n = 0;

    if (!s) return "(null)";
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        if (n + 8 >= size) {
            snprintf(buf + n, size - n, "...");
            return buf;
        }
        if (b >= 0x20 && b < 0x7f && b != '\\') {
            buf[n++] = (char)b;
        } else {
            n += (size_t)snprintf(buf + n, size - n, "\\x%02x", b);
        }
    }
    buf[n] = '\0';
    return buf;
}

/* ---- Redis ---- */

/*
 * Connects to conf->redis (one Redis, or Redis Cluster seeds: with
 * redis_cluster, or when the node says it is one) and authenticates. 0, or
 * an exit status after saying why.
 */
static int redis_open(ctl_t *c) {
    const td_conf_t *conf = c->conf;
    td_store_conf_t sc;
    char errstr[512];

    if (c->st) return 0;
    td_store_conf_from(&sc, conf);
    sc.readonly = 1;
    if (!(c->st = td_store_new(&sc, errstr, sizeof(errstr)))) {
        fprintf(stderr, "trustctl: %s\n", errstr);
        return EXIT_USAGE;
    }
    if (td_store_connect(c->st, errstr, sizeof(errstr)) != TD_OK) {
        fprintf(stderr, "trustctl: cannot reach Redis at %s: %s\n", conf->redis,
                errstr);
        return EXIT_UNREACHABLE;
    }
    return 0;
}

/* Reads the next pipelined reply into *out. 0, or EXIT_UNREACHABLE after
 * saying why (connection lost, timeout, error reply). */
static int rget(ctl_t *c, redisReply **out) {
    redisReply *r;
    char errstr[512];

    *out = NULL;
    if (!(r = td_store_reply(c->st, errstr, sizeof(errstr)))) {
        fprintf(stderr, "trustctl: Redis at %s: %s\n", c->conf->redis, errstr);
        return EXIT_UNREACHABLE;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* Redirects are followed in cluster mode; this node hid that it is
         * a cluster node (CLUSTER INFO refused). */
        int moved = !strncmp(r->str, "MOVED", 5) || !strncmp(r->str, "ASK", 3);
        fprintf(stderr, "trustctl: Redis at %s answered: %s%s\n",
                c->conf->redis, r->str,
                moved ? " (a Redis Cluster: add --redis-cluster)" : "");
        freeReplyObject(r);
        return EXIT_UNREACHABLE;
    }
    *out = r;
    return 0;
}

/* Queues one command (hiredis format) for rget(). */
static void rappend(ctl_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    /* Fails only on a bad format; rget() then reports it. */
    td_store_vappend(c->st, fmt, ap);
    va_end(ap);
}

/* Value of field in an HGETALL reply, or NULL (reply.h: shared with
 * trustctl serve). */
static const char *hfield(const redisReply *r, const char *field) {
    return td_reply_hfield(r, field);
}

/* Element i of an HMGET reply as a string, or NULL when nil. */
static const char *hmval(const redisReply *r, size_t i) {
    return td_reply_hmval(r, i);
}

/* 0 if m can be a merchant id; else EXIT_NOTFOUND after saying why. */
static int check_merchant(const char *m) {
    size_t len = strlen(m);
    if (len > 0 && len <= TD_MERCHANT_ID_MAX) return 0;
    fprintf(stderr, "trustctl: unknown merchant '%s' (ids are 1..%d bytes)\n",
            m, TD_MERCHANT_ID_MAX);
    return EXIT_NOTFOUND;
}

/* ---- get, signals ---- */

static int cmd_get(ctl_t *c, int argc, char **argv) {
    const char *m = argv[0], *v;
    redisReply *sc = NULL, *sg = NULL;
    char key[KEY_MAX], b1[64], b2[64];
    int rc, first;

    if ((rc = check_merchant(m))) return rc;
    td_key_score(key, sizeof(key), m, strlen(m));
    rappend(c, "HGETALL %s", key);
    td_key_signals(key, sizeof(key), m, strlen(m));
    rappend(c, "HGETALL %s", key);
    if ((rc = rget(c, &sc)) || (rc = rget(c, &sg))) goto out;
    if (sc->elements == 0 && sg->elements == 0) {
        fprintf(stderr, "trustctl: unknown merchant '%s'\n", m);
        rc = EXIT_NOTFOUND;
        goto out;
    }
    if (c->json) {
        static const char *const nums[] = {"score",   "tier",     "confidence",
                                           "version", "as_of_ms", "updated_ms"};
        printf("{\"merchant_id\":");
        json_cstr(stdout, m);
        for (size_t i = 0; i < TD_ARRAY_LEN(nums); i++) {
            printf(",\"%s\":", nums[i]);
            json_num(stdout, hfield(sc, nums[i]));
        }
        printf(",\"model_version\":");
        json_cstr(stdout, hfield(sc, "model_version"));
        printf(",\"model_source\":");
        json_cstr(stdout, hfield(sc, "model_source"));
        printf(",\"reasons\":");
        v = hfield(sc, "reasons");
        if (v && is_json_strarray(v)) {
            fputs(v, stdout);
        } else {
            json_cstr(stdout, v);
        }
        printf(",\"sub_scores\":{");
        first = 1;
        for (size_t i = 0; i + 1 < sc->elements; i += 2) {
            const char *f = sc->element[i]->str;
            if (strncmp(f, "sub_", 4)) continue;
            printf("%s", first ? "" : ",");
            json_cstr(stdout, f + 4);
            putchar(':');
            json_num(stdout, sc->element[i + 1]->str);
            first = 0;
        }
        printf("},\"published\":{\"version\":");
        json_num(stdout, hfield(sc, "pub_version"));
        printf(",\"score\":");
        json_num(stdout, hfield(sc, "pub_score"));
        printf(",\"tier\":");
        json_num(stdout, hfield(sc, "pub_tier"));
        printf(",\"ms\":");
        json_num(stdout, hfield(sc, "pub_ms"));
        printf("},\"signals_as_of_ms\":");
        json_num(stdout, hfield(sg, "as_of_ms"));
        printf(",\"key_signals\":{");
        for (size_t k = 0; k < TD_ARRAY_LEN(key_signals); k++) {
            const char *name = td_signals[key_signals[k]].name;
            printf("%s\"%s\":", k ? "," : "", name);
            json_num(stdout, hfield(sg, name));
        }
        printf("}}\n");
        goto out;
    }
    printf("merchant      %s\n", m);
    printf("score         %s%s\n",
           fmt_num(hfield(sc, "score"), "%.2f", b1, sizeof(b1)),
           sc->elements == 0 ? " (not scored yet)" : "");
    printf("tier          %s\n", or_dash(hfield(sc, "tier")));
    printf("confidence    %s\n",
           fmt_num(hfield(sc, "confidence"), "%.3f", b1, sizeof(b1)));
    for (size_t i = 0; i + 1 < sc->elements; i += 2) {
        const char *f = sc->element[i]->str;
        if (!strncmp(f, "sub_", 4)) {
            printf("  %-20s %s\n", f + 4,
                   fmt_num(sc->element[i + 1]->str, "%.1f", b1, sizeof(b1)));
        }
    }
    text_reasons(hfield(sc, "reasons"));
    printf("version       %s (model %s from %s, published %s)\n",
           or_dash(hfield(sc, "version")), or_dash(hfield(sc, "model_version")),
           or_dash(hfield(sc, "model_source")),
           or_dash(hfield(sc, "pub_version")));
    v = hfield(sg, "as_of_ms");
    printf("as_of         %s\n",
           iso_ms(v ? strtoll(v, NULL, 10) : -1, b2, sizeof(b2)));
    for (size_t k = 0; k < TD_ARRAY_LEN(key_signals); k++) {
        const td_signal_t *s = &td_signals[key_signals[k]];
        printf("  %-28s %-14s %s\n", s->name,
               fmt_num(hfield(sg, s->name), "%.6g", b1, sizeof(b1)), s->unit);
    }
out:
    if (sc) {
        freeReplyObject(sc);
    }
    if (sg) {
        freeReplyObject(sg);
    }
    return rc;
}

/* ---- history ---- */

/* The score history (history.h), oldest first. Unknown: no history, no
 * score and no signals hash. */
static int cmd_history(ctl_t *c, int argc, char **argv) {
    const char *m = argv[0];
    td_history_point_t pts[TD_HISTORY_MAX];
    redisReply *h = NULL, *sc = NULL, *sg = NULL;
    char key[KEY_MAX], t[32];
    int rc, n = 0;

    if ((rc = check_merchant(m))) return rc;
    td_key_history(key, sizeof(key), m, strlen(m));
    rappend(c, "GET %s", key);
    td_key_score(key, sizeof(key), m, strlen(m));
    rappend(c, "EXISTS %s", key);
    td_key_signals(key, sizeof(key), m, strlen(m));
    rappend(c, "EXISTS %s", key);
    if ((rc = rget(c, &h)) || (rc = rget(c, &sc)) || (rc = rget(c, &sg)))
        goto out;
    if (h->type == REDIS_REPLY_STRING)
        n = td_history_decode((const unsigned char *)h->str, h->len, pts,
                              TD_HISTORY_MAX);
    if (n == 0 && !sc->integer && !sg->integer) {
        fprintf(stderr, "trustctl: unknown merchant '%s'\n", m);
        rc = EXIT_NOTFOUND;
        goto out;
    }
    if (c->json) {
        printf("{\"merchant_id\":");
        json_cstr(stdout, m);
        printf(",\"points\":[");
    } else if (n == 0) {
        printf("(no score published for %s yet)\n", m);
    } else {
        printf("%-21s %6s %4s %10s %8s\n", "time", "score", "tier",
               "confidence", "version");
    }
    for (int i = 0; i < n; i++) {
        const td_history_point_t *p = &pts[i];
        struct tm tm;
        time_t secs = (time_t)(p->ms / 1000);

        if (!gmtime_r(&secs, &tm) ||
            !strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm))
            snprintf(t, sizeof(t), "-");
        if (c->json) {
            printf("%s{\"time\":\"%s\",\"ms\":%lld,\"score\":%.2f,"
                   "\"tier\":%d,\"confidence\":%.2f,\"version\":%llu}",
                   i ? "," : "", t, (long long)p->ms, p->score, p->tier,
                   p->confidence, (unsigned long long)p->version);
        } else {
            printf("%-21s %6.2f %4d %10.2f %8llu\n", t, p->score, p->tier,
                   p->confidence, (unsigned long long)p->version);
        }
    }
    if (c->json) printf("]}\n");
out:
    if (h) freeReplyObject(h);
    if (sc) freeReplyObject(sc);
    if (sg) freeReplyObject(sg);
    return rc;
}

static int cmd_signals(ctl_t *c, int argc, char **argv) {
    const char *m = argv[0];
    redisReply *sg = NULL;
    char key[KEY_MAX], buf[64];
    int rc;

    if ((rc = check_merchant(m))) return rc;
    td_key_signals(key, sizeof(key), m, strlen(m));
    rappend(c, "HGETALL %s", key);
    if ((rc = rget(c, &sg))) return rc;
    if (sg->elements == 0) {
        fprintf(stderr, "trustctl: unknown merchant '%s'\n", m);
        freeReplyObject(sg);
        return EXIT_NOTFOUND;
    }
    if (c->json) {
        printf("{\"merchant_id\":");
        json_cstr(stdout, m);
        printf(",\"as_of_ms\":");
        json_num(stdout, hfield(sg, "as_of_ms"));
        printf(",\"signals\":[");
    } else {
        printf("%-34s %-14s %-9s %-8s %s\n", "signal", "value", "unit",
               "window", "meaning");
    }
    for (int i = 0; i < TD_SIG__CNT; i++) {
        const td_signal_t *s = &td_signals[i];
        const char *v = hfield(sg, s->name);
        if (!c->json) {
            printf("%-34s %-14s %-9s %-8s %s\n", s->name,
                   fmt_num(v, "%.6g", buf, sizeof(buf)), s->unit,
                   td_window_name(s->window_ms), s->meaning);
            continue;
        }
        printf("%s{\"name\":\"%s\",\"value\":", i ? "," : "", s->name);
        json_num(stdout, v);
        printf(",\"unit\":");
        json_cstr(stdout, s->unit);
        printf(",\"window\":\"%s\",\"category\":\"%s\","
               "\"higher_is_better\":%s,\"meaning\":",
               td_window_name(s->window_ms), td_category_name(s->category),
               s->higher_better ? "true" : "false");
        json_cstr(stdout, s->meaning);
        putchar('}');
    }
    if (c->json) {
        printf("]}\n");
    }
    freeReplyObject(sg);
    return 0;
}

/* ---- top, bottom ---- */

/* Parses a count argument in 1..max; 0 or EXIT_USAGE. */
static int parse_count(const char *s, long max, long *out) {
    char *end;
    long n = strtol(s, &end, 10);

    if (end == s || *end || n <= 0 || n > max) {
        fprintf(stderr, "trustctl: N must be 1..%ld, not '%s'\n", max, s);
        return EXIT_USAGE;
    }
    *out = n;
    return 0;
}

/* One chunk of ranked merchants: pipelines their score and signal fields
 * (one round trip) and prints them. */
static int rank_chunk(ctl_t *c, const redisReply *z, size_t from, size_t to) {
    redisReply **rs = xcalloc(2 * (to - from), sizeof(*rs));
    char key[KEY_MAX], b[3][64];
    int rc = 0;

    for (size_t i = from; i < to; i++) {
        const redisReply *m = z->element[2 * i];
        td_key_score(key, sizeof(key), m->str, m->len);
        rappend(c, "HMGET %s tier confidence", key);
        td_key_signals(key, sizeof(key), m->str, m->len);
        rappend(c, "HMGET %s %s %s %s", key, td_signals[rank_signals[0]].name,
                td_signals[rank_signals[1]].name,
                td_signals[rank_signals[2]].name);
    }
    for (size_t i = 0; i < 2 * (to - from); i++) {
        if ((rc = rget(c, &rs[i]))) goto out;
    }
    for (size_t i = from; i < to; i++) {
        const redisReply *m = z->element[2 * i];
        const char *score = z->element[2 * i + 1]->str;
        const redisReply *sc = rs[2 * (i - from)], *sg = rs[2 * (i - from) + 1];
        if (c->json) {
            printf("%s{\"rank\":%zu,\"merchant_id\":", i ? "," : "", i + 1);
            json_str(stdout, m->str, m->len);
            printf(",\"score\":");
            json_num(stdout, score);
            printf(",\"tier\":");
            json_num(stdout, hmval(sc, 0));
            printf(",\"confidence\":");
            json_num(stdout, hmval(sc, 1));
            for (size_t k = 0; k < TD_ARRAY_LEN(rank_signals); k++) {
                printf(",\"%s\":", td_signals[rank_signals[k]].name);
                json_num(stdout, hmval(sg, k));
            }
            putchar('}');
            continue;
        }
        printf("%-5zu %-24s %8s %4s %10s", i + 1, m->str,
               fmt_num(score, "%.2f", b[0], sizeof(b[0])),
               or_dash(hmval(sc, 0)),
               fmt_num(hmval(sc, 1), "%.3f", b[1], sizeof(b[1])));
        for (size_t k = 0; k < TD_ARRAY_LEN(rank_signals); k++) {
            printf(" %18s", fmt_num(hmval(sg, k), "%.4f", b[2], sizeof(b[2])));
        }
        putchar('\n');
    }
out:
    for (size_t i = 0; i < 2 * (to - from); i++) {
        if (rs[i]) {
            freeReplyObject(rs[i]);
        }
    }
    free(rs);
    return rc;
}

static int rank(ctl_t *c, int argc, char **argv, int best) {
    redisReply *z = NULL;
    long n = RANK_DEFAULT;
    int rc;

    if (argc > 0 && (rc = parse_count(argv[0], RANK_MAX, &n))) return rc;
    /* Equal scores come in member order (reversed for top), as Redis
     * sorts them. */
    rappend(c,
            best ? "ZREVRANGE %s 0 %ld WITHSCORES"
                 : "ZRANGE %s 0 %ld WITHSCORES",
            TD_KEY_SCORES, n - 1);
    if ((rc = rget(c, &z))) return rc;
    if (c->json) {
        putchar('[');
    } else {
        printf("%-5s %-24s %8s %4s %10s", "rank", "merchant", "score", "tier",
               "confidence");
        for (size_t k = 0; k < TD_ARRAY_LEN(rank_signals); k++) {
            printf(" %18s", td_signals[rank_signals[k]].name);
        }
        putchar('\n');
    }
    for (size_t i = 0; i < z->elements / 2 && !rc; i += RANK_CHUNK) {
        size_t to =
            i + RANK_CHUNK < z->elements / 2 ? i + RANK_CHUNK : z->elements / 2;
        rc = rank_chunk(c, z, i, to);
    }
    if (c->json && !rc) {
        printf("]\n");
    }
    freeReplyObject(z);
    return rc;
}

static int cmd_top(ctl_t *c, int argc, char **argv) {
    return rank(c, argc, argv, 1);
}

static int cmd_bottom(ctl_t *c, int argc, char **argv) {
    return rank(c, argc, argv, 0);
}

/* ---- Kafka ---- */

static void
kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const ctl_t *c = rd_kafka_opaque(rk);
    /* librdkafka retries on its own; its chatter only helps debugging. */
    if (c->conf->log_level <= TD_LOG_VERBOSE) {
        fprintf(stderr, "trustctl: kafka %s: %s\n", fac, buf);
    }
}

typedef struct delivery_s {
    int done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
} delivery_t;

static void
kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    delivery_t *d = m->_private;
    d->done = 1;
    d->err = m->err;
    d->partition = m->partition;
    d->offset = m->offset;
}

/*
 * A consumer for assign()-only reading, or an idempotent producer. The group
 * id only satisfies librdkafka's consumer API: it is never joined and no
 * offset is committed. NULL after saying why.
 */
static rd_kafka_t *kafka_new(ctl_t *c, rd_kafka_type_t type) {
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char errstr[512], group[64];
    rd_kafka_t *rk;
    const char *props[][2] = {
        {"bootstrap.servers", c->conf->brokers},
        {type == RD_KAFKA_CONSUMER ? "group.id" : "enable.idempotence",
         type == RD_KAFKA_CONSUMER ? group : "true"},
        {type == RD_KAFKA_CONSUMER ? "enable.auto.commit" : "linger.ms",
         type == RD_KAFKA_CONSUMER ? "false" : "0"},
        {type == RD_KAFKA_CONSUMER ? "enable.partition.eof"
                                   : "message.timeout.ms",
         type == RD_KAFKA_CONSUMER ? "true" : "20000"},
    };

    snprintf(group, sizeof(group), "trustctl-%ld-%lld", (long)getpid(),
             (long long)td_now_ms());
    for (size_t i = 0; i < TD_ARRAY_LEN(props); i++) {
        if (rd_kafka_conf_set(kc, props[i][0], props[i][1], errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK)
            goto err;
    }
    /* Security and client settings pass through (-X, kafka.* in files). */
    for (size_t i = 0; i < c->conf->kafka_prop_cnt; i++) {
        const td_kafka_prop_t *p = &c->conf->kafka_props[i];
        if (rd_kafka_conf_set(kc, p->name, p->value, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK)
            goto err;
    }
    rd_kafka_conf_set_log_cb(kc, kafka_log);
    rd_kafka_conf_set_opaque(kc, c);
    if (type == RD_KAFKA_PRODUCER) {
        rd_kafka_conf_set_dr_msg_cb(kc, kafka_dr);
    }
    rk = rd_kafka_new(type, kc, errstr, sizeof(errstr));
    if (rk) return rk;
err:
    fprintf(stderr, "trustctl: kafka: %s\n", errstr);
    rd_kafka_conf_destroy(kc);
    return NULL;
}

/* Number of partitions of topic into *cnt. 0, EXIT_NOTFOUND or
 * EXIT_UNREACHABLE after saying why. */
static int
kafka_partitions(ctl_t *c, rd_kafka_t *rk, const char *topic, int *cnt) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t err;
    int rc = 0;

    err = rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_WAIT_MS);
    if (err) {
        fprintf(stderr, "trustctl: cannot reach Kafka at %s: %s\n",
                c->conf->brokers, rd_kafka_err2str(err));
        rc = EXIT_UNREACHABLE;
    } else if (md->topic_cnt != 1 || md->topics[0].err ||
               md->topics[0].partition_cnt <= 0) {
        fprintf(stderr, "trustctl: Kafka topic '%s' not found%s%s\n", topic,
                md->topic_cnt == 1 && md->topics[0].err ? ": " : "",
                md->topic_cnt == 1 && md->topics[0].err
                    ? rd_kafka_err2str(md->topics[0].err)
                    : "");
        rc = EXIT_NOTFOUND;
    } else {
        *cnt = md->topics[0].partition_cnt;
    }
    if (md) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* Called for every message read; the message stays the reader's. */
typedef void (*read_cb_t)(void *arg, const rd_kafka_message_t *m);

/*
 * Reads topic up to the high watermarks it has when reading starts: from
 * the beginning (last_n < 0) or the last last_n messages of each partition.
 * caught_up (may be NULL) is called once every partition was read to there;
 * with follow, reading then goes on until SIGINT/SIGTERM. 0, or an exit
 * status after saying why (Kafka unreachable or silent for KAFKA_WAIT_MS
 * before catching up).
 */
static int read_topic(ctl_t *c,
                      rd_kafka_t *rk,
                      const char *topic,
                      int64_t last_n,
                      int follow,
                      read_cb_t cb,
                      void (*caught_up)(void *arg),
                      void *arg) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t *end = NULL, deadline;
    int nparts = 0, remaining = 0, rc;
    char lasterr[256] = "no answer";

    if ((rc = kafka_partitions(c, rk, topic, &nparts))) return rc;
    end = xcalloc((size_t)nparts, sizeof(*end));
    parts = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++) {
        int64_t lo, hi, start;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            rk, topic, p, &lo, &hi, KAFKA_WAIT_MS);
        if (err) {
            fprintf(stderr, "trustctl: Kafka: watermarks of %s/%d: %s\n", topic,
                    p, rd_kafka_err2str(err));
            rc = EXIT_UNREACHABLE;
            goto out;
        }
        start = last_n >= 0 && hi - last_n > lo ? hi - last_n : lo;
        end[p] = hi > start ? hi : -1; /* -1: nothing to read up to */
        remaining += hi > start;
        /* Empty partitions are assigned too, for --follow. */
        if (hi > start || follow) {
            rd_kafka_topic_partition_list_add(parts, topic, p)->offset = start;
        }
    }
    if (parts->cnt > 0 && rd_kafka_assign(rk, parts)) {
        fprintf(stderr, "trustctl: Kafka: cannot assign %s\n", topic);
        rc = EXIT_UNREACHABLE;
        goto out;
    }
    if (remaining == 0 && caught_up) {
        caught_up(arg);
    }
    deadline = td_mono_ms() + KAFKA_WAIT_MS;
    while ((remaining > 0 || follow) && !stop_flag) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        int p;
        if (!m) {
            if (remaining > 0 && td_mono_ms() > deadline) break;
            continue;
        }
        p = m->partition;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* Transient errors repeat until the deadline says otherwise. */
            snprintf(lasterr, sizeof(lasterr), "%s",
                     rd_kafka_message_errstr(m));
            if (c->conf->log_level <= TD_LOG_VERBOSE) {
                fprintf(stderr, "trustctl: Kafka: %s\n",
                        rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        deadline = td_mono_ms() + KAFKA_WAIT_MS;
        if (!m->err) {
            cb(arg, m);
        }
        if (p >= 0 && p < nparts && end[p] >= 0 &&
            (m->err ? m->offset >= end[p] : m->offset + 1 >= end[p])) {
            end[p] = -1; /* read to where it ended when we started */
            if (--remaining == 0 && caught_up) {
                caught_up(arg);
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (remaining > 0 && !stop_flag) {
        fprintf(stderr,
                "trustctl: Kafka at %s: %d partitions of %s not read to the "
                "end within %d s: %s\n",
                c->conf->brokers, remaining, topic, KAFKA_WAIT_MS / 1000,
                lasterr);
        rc = EXIT_UNREACHABLE;
    }
out:
    rd_kafka_topic_partition_list_destroy(parts);
    free(end);
    return rc;
}

/* ---- offsets ---- */

typedef struct part_row_s {
    char topic[256];
    int32_t partition;
    int64_t committed, intent, epoch; /* -1 when absent */
    int64_t lo, hi;                   /* -1 when unknown */
} part_row_t;

typedef struct rows_s {
    part_row_t *v;
    size_t n, cap;
} rows_t;

static part_row_t *row_add(rows_t *rows, const char *topic, int32_t part) {
    part_row_t *r;
    for (size_t i = 0; i < rows->n; i++) {
        if (rows->v[i].partition == part && !strcmp(rows->v[i].topic, topic))
            return &rows->v[i];
    }
    if (rows->n == rows->cap) {
        rows->cap = rows->cap ? rows->cap * 2 : 64;
        rows->v = realloc(rows->v, rows->cap * sizeof(*rows->v));
        if (!rows->v) {
            fprintf(stderr, "trustctl: out of memory\n");
            abort();
        }
    }
    r = &rows->v[rows->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    r->partition = part;
    r->committed = r->intent = r->epoch = r->lo = r->hi = -1;
    return r;
}

static int row_cmp(const void *a, const void *b) {
    const part_row_t *x = a, *y = b;
    int d = strcmp(x->topic, y->topic);
    return d ? d
             : (x->partition > y->partition) - (x->partition < y->partition);
}

/* v for people, "-" when negative (absent or unknown). */
static const char *i64_text(int64_t v, char *buf, size_t size) {
    if (v < 0) return "-";
    snprintf(buf, size, "%lld", (long long)v);
    return buf;
}

static int64_t opt_i64(const char *v) {
    return v && *v ? strtoll(v, NULL, 10) : -1;
}

/* Finds every partition record with SCAN (never KEYS: it blocks Redis for
 * the whole keyspace) and reads committed, intent and epoch. */
static int offsets_redis(ctl_t *c, rows_t *rows) {
    char cursor[32] = "0";
    size_t first = rows->n;
    int rc;

    do {
        redisReply *r = NULL;
        rappend(c, "SCAN %s MATCH trust:part:{*} COUNT 1000", cursor);
        if ((rc = rget(c, &r))) return rc;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            fprintf(stderr, "trustctl: Redis: unexpected SCAN reply\n");
            freeReplyObject(r);
            return EXIT_UNREACHABLE;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *k = r->element[1]->element[i]->str;
            const char *open = strchr(k, '{'), *slash = strrchr(k, '/');
            char topic[256], *end;
            long part;
            if (!open || !slash || slash < open) continue;
            part = strtol(slash + 1, &end, 10);
            if (strcmp(end, "}") || part < 0 || part > INT32_MAX) continue;
            snprintf(topic, sizeof(topic), "%.*s", (int)(slash - open - 1),
                     open + 1);
            row_add(rows, topic, (int32_t)part);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0"));

    for (size_t i = first; i < rows->n; i++) {
        char key[300];
        td_key_part(key, sizeof(key), rows->v[i].topic, rows->v[i].partition);
        rappend(c, "HMGET %s committed intent epoch", key);
    }
    for (size_t i = first; i < rows->n; i++) {
        redisReply *r = NULL;
        if ((rc = rget(c, &r))) return rc;
        rows->v[i].committed = opt_i64(hmval(r, 0));
        rows->v[i].intent = opt_i64(hmval(r, 1));
        rows->v[i].epoch = opt_i64(hmval(r, 2));
        freeReplyObject(r);
    }
    return 0;
}

/* Adds the input partitions nobody has claimed yet and every watermark.
 * 0 or EXIT_UNREACHABLE (rows keep hi = -1). */
static int offsets_kafka(ctl_t *c, rows_t *rows) {
    const char *inputs[] = {c->conf->topic_orders, c->conf->topic_reviews,
                            c->conf->topic_refunds};
    rd_kafka_t *rk = kafka_new(c, RD_KAFKA_CONSUMER);
    int rc = 0;

    if (!rk) return EXIT_USAGE;
    for (size_t t = 0; t < TD_ARRAY_LEN(inputs) && !rc; t++) {
        int cnt = 0;
        rc = kafka_partitions(c, rk, inputs[t], &cnt);
        if (rc == EXIT_NOTFOUND) {
            rc = 0; /* only Redis rows for it */
        }
        for (int p = 0; p < cnt; p++) {
            row_add(rows, inputs[t], p);
        }
    }
    for (size_t i = 0; i < rows->n && !rc; i++) {
        part_row_t *r = &rows->v[i];
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            rk, r->topic, r->partition, &r->lo, &r->hi, KAFKA_WAIT_MS);
        if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            r->lo = r->hi = -1; /* a record for a topic that is gone */
        } else if (err) {
            fprintf(stderr, "trustctl: Kafka: watermarks of %s/%d: %s\n",
                    r->topic, (int)r->partition, rd_kafka_err2str(err));
            r->lo = r->hi = -1;
            rc = EXIT_UNREACHABLE;
        }
    }
    rd_kafka_destroy(rk);
    return rc;
}

static int cmd_offsets(ctl_t *c, int argc, char **argv) {
    rows_t rows = {0};
    int64_t total = 0;
    int rc, krc;

    if ((rc = offsets_redis(c, &rows))) goto out;
    /* Without Kafka the stored offsets are still worth showing. */
    krc = offsets_kafka(c, &rows);
    if (rows.n > 0) {
        qsort(rows.v, rows.n, sizeof(*rows.v), row_cmp);
    }
    if (c->json) {
        putchar('[');
    } else {
        printf("%-24s %12s %12s %12s %10s %6s\n", "partition", "stored",
               "intent", "high_wm", "lag", "epoch");
    }
    for (size_t i = 0; i < rows.n; i++) {
        const part_row_t *r = &rows.v[i];
        /* Nothing stored yet: everything from the log start is lag. */
        int64_t from = r->committed >= 0 ? r->committed : r->lo;
        int64_t lag = r->hi >= 0 && from >= 0 ? r->hi - from : -1;
        char name[300], b[5][32];
        if (lag > 0) {
            total += lag;
        }
        if (c->json) {
            printf("%s{\"topic\":", i ? "," : "");
            json_cstr(stdout, r->topic);
            printf(",\"partition\":%d,\"stored\":", (int)r->partition);
            json_i64(stdout, r->committed);
            printf(",\"intent\":");
            json_i64(stdout, r->intent);
            printf(",\"epoch\":");
            json_i64(stdout, r->epoch);
            printf(",\"low_watermark\":");
            json_i64(stdout, r->lo);
            printf(",\"high_watermark\":");
            json_i64(stdout, r->hi);
            printf(",\"lag\":");
            json_i64(stdout, lag);
            putchar('}');
            continue;
        }
        snprintf(name, sizeof(name), "%s/%d", r->topic, (int)r->partition);
        printf("%-24s %12s %12s %12s %10s %6s\n", name,
               i64_text(r->committed, b[0], sizeof(b[0])),
               i64_text(r->intent, b[1], sizeof(b[1])),
               i64_text(r->hi, b[2], sizeof(b[2])),
               i64_text(lag, b[3], sizeof(b[3])),
               i64_text(r->epoch, b[4], sizeof(b[4])));
    }
    if (c->json) {
        printf("]\n");
    } else {
        printf("total lag %lld%s\n", (long long)total,
               krc ? " (Kafka unreachable: incomplete)" : "");
    }
    rc = krc;
out:
    free(rows.v);
    return rc;
}

/* ---- dead letters ---- */

/* One dead letter, copied out of its Kafka message. */
typedef struct dl_s {
    int32_t partition; /* in the dead-letter topic */
    int64_t offset;
    char *key; /* NULL: no key */
    size_t key_len;
    char *value; /* NULL: not copied or null */
    size_t value_len;
    char *code, *reason, *src_topic; /* headers; NULL when absent */
    int32_t src_partition;           /* -1 when absent or not a number */
    int64_t src_offset;              /* -1 likewise */
    int64_t time_ms; /* dlq.time, else the message timestamp, else -1 */
} dl_t;

static char *dup_bytes(const void *p, size_t len) {
    char *s;
    if (!p) return NULL;
    s = xcalloc(len + 1, 1);
    memcpy(s, p, len);
    return s;
}

/* Header name of m as a new string, or NULL. */
static char *header_dup(const rd_kafka_message_t *m, const char *name) {
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t len = 0;

    if (rd_kafka_message_headers(m, &hdrs) || !hdrs) return NULL;
    if (rd_kafka_header_get_last(hdrs, name, &v, &len) || !v) return NULL;
    return dup_bytes(v, len);
}

static int64_t parse_i64(const char *s, int64_t max) {
    char *end;
    long long v;
    if (!s || !*s) return -1;
    v = strtoll(s, &end, 10);
    return *end || v < 0 || v > max ? -1 : (int64_t)v;
}

/* Fills d from m; the value bytes only with with_value (replay). */
static void dl_from_msg(dl_t *d, const rd_kafka_message_t *m, int with_value) {
    char *t;
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);

    memset(d, 0, sizeof(*d));
    d->partition = m->partition;
    d->offset = m->offset;
    d->key = dup_bytes(m->key, m->key_len);
    d->key_len = m->key_len;
    d->value_len = m->len;
    if (with_value) {
        d->value = dup_bytes(m->payload, m->len);
    }
    d->code = header_dup(m, "dlq.error.code");
    d->reason = header_dup(m, "dlq.error.reason");
    d->src_topic = header_dup(m, "dlq.source.topic");
    t = header_dup(m, "dlq.source.partition");
    d->src_partition = (int32_t)parse_i64(t, INT32_MAX);
    free(t);
    t = header_dup(m, "dlq.source.offset");
    d->src_offset = parse_i64(t, INT64_MAX);
    free(t);
    t = header_dup(m, "dlq.time");
    d->time_ms = parse_i64(t, INT64_MAX);
    free(t);
    if (d->time_ms < 0) {
        d->time_ms = ts;
    }
}

static void dl_term(dl_t *d) {
    free(d->key);
    free(d->value);
    free(d->code);
    free(d->reason);
    free(d->src_topic);
}

typedef struct dls_s {
    dl_t *v;
    size_t n, cap;
} dls_t;

static dl_t *dls_push(dls_t *l) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        if (!l->v) {
            fprintf(stderr, "trustctl: out of memory\n");
            abort();
        }
    }
    return &l->v[l->n++];
}

static void dls_free(dls_t *l) {
    for (size_t i = 0; i < l->n; i++) {
        dl_term(&l->v[i]);
    }
    free(l->v);
}

static void on_dead_letter(void *arg, const rd_kafka_message_t *m) {
    dl_from_msg(dls_push(arg), m, 0);
}

/* Oldest first: by time, then position. */
static int dl_cmp(const void *a, const void *b) {
    const dl_t *x = a, *y = b;
    if (x->time_ms != y->time_ms) return x->time_ms < y->time_ms ? -1 : 1;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static void dl_print_json(const dl_t *d, int first) {
    printf("%s{\"dlq_partition\":%d,\"dlq_offset\":%lld,\"time_ms\":",
           first ? "" : ",", (int)d->partition, (long long)d->offset);
    json_i64(stdout, d->time_ms);
    printf(",\"source_topic\":");
    json_cstr(stdout, d->src_topic);
    printf(",\"source_partition\":");
    json_i64(stdout, d->src_partition);
    printf(",\"source_offset\":");
    json_i64(stdout, d->src_offset);
    printf(",\"error_code\":");
    json_cstr(stdout, d->code);
    printf(",\"reason\":");
    json_cstr(stdout, d->reason);
    printf(",\"key\":");
    if (d->key) {
        json_str(stdout, d->key, d->key_len);
    } else {
        fputs("null", stdout);
    }
    printf(",\"value_bytes\":%zu}", d->value_len);
}

static int cmd_dlq_list(ctl_t *c, int argc, char **argv) {
    const char *topic = c->conf->topic_dlq;
    dls_t l = {0};
    rd_kafka_t *rk;
    long n = DLQ_DEFAULT;
    size_t from;
    int rc;

    if (argc > 0 && (rc = parse_count(argv[0], DLQ_MAX, &n))) return rc;
    if (!(rk = kafka_new(c, RD_KAFKA_CONSUMER))) return EXIT_USAGE;
    /* The last n of each partition hold the last n overall. */
    rc = read_topic(c, rk, topic, n, 0, on_dead_letter, NULL, &l);
    rd_kafka_destroy(rk);
    if (rc) goto out;
    if (l.n > 0) {
        qsort(l.v, l.n, sizeof(*l.v), dl_cmp);
    }
    from = l.n > (size_t)n ? l.n - (size_t)n : 0;
    if (c->json) {
        putchar('[');
        for (size_t i = from; i < l.n; i++) {
            dl_print_json(&l.v[i], i == from);
        }
        printf("]\n");
        goto out;
    }
    printf("%-12s %-24s %-22s %-20s %-16s %s\n", "dlq", "time", "source",
           "code", "key", "reason");
    for (size_t i = from; i < l.n; i++) {
        const dl_t *d = &l.v[i];
        char pos[32], src[300], t[64], key[64];
        snprintf(pos, sizeof(pos), "%d@%lld", (int)d->partition,
                 (long long)d->offset);
        snprintf(src, sizeof(src), "%s/%d@%lld",
                 d->src_topic ? d->src_topic : "?", (int)d->src_partition,
                 (long long)d->src_offset);
        printf("%-12s %-24s %-22s %-20s %-16s %s\n", pos,
               iso_ms(d->time_ms, t, sizeof(t)), src, d->code ? d->code : "-",
               text_bytes(d->key, d->key_len, key, sizeof(key)),
               d->reason ? d->reason : "-");
    }
    if (l.n == 0) {
        printf("(no dead letters in %s)\n", topic);
    }
out:
    dls_free(&l);
    return rc;
}

/* A replay spec: a place in the dead-letter topic or a source position. */
typedef struct spec_s {
    const char *text;
    int by_source;
    char topic[256]; /* by_source */
    int32_t partition;
    int64_t offset;
    int found; /* index + 1 in the resolved list */
} spec_t;

/* Parses "P@O" or (by_source) "TOPIC/P@O". 0 or EXIT_USAGE. */
static int spec_parse(spec_t *s, const char *text, int by_source) {
    const char *at = strrchr(text, '@');
    const char *slash = strrchr(text, '/');
    const char *pstart;
    char num[32];
    int64_t p;

    memset(s, 0, sizeof(*s));
    s->text = text;
    s->by_source = by_source || slash != NULL;
    if (!at || (s->by_source && (!slash || slash > at || slash == text)))
        goto bad;
    pstart = s->by_source ? slash + 1 : text;
    if (at - pstart <= 0 || at - pstart >= (long)sizeof(num)) goto bad;
    snprintf(num, sizeof(num), "%.*s", (int)(at - pstart), pstart);
    p = parse_i64(num, INT32_MAX);
    s->offset = parse_i64(at + 1, INT64_MAX);
    if (p < 0 || s->offset < 0) goto bad;
    s->partition = (int32_t)p;
    if (s->by_source) {
        if (slash - text >= (long)sizeof(s->topic)) goto bad;
        snprintf(s->topic, sizeof(s->topic), "%.*s", (int)(slash - text), text);
    }
    return 0;
bad:
    fprintf(stderr,
            "trustctl: bad spec '%s': expected DLQPARTITION@OFFSET or "
            "[--source] TOPIC/PARTITION@OFFSET\n",
            text);
    return EXIT_USAGE;
}

typedef struct replay_s {
    spec_t *specs;
    int nspecs;
    dls_t found;
} replay_t;

/* Keeps a dead letter once however many specs select it. */
static int replay_keep(replay_t *r, const rd_kafka_message_t *m) {
    for (size_t i = 0; i < r->found.n; i++) {
        if (r->found.v[i].partition == m->partition &&
            r->found.v[i].offset == m->offset)
            return (int)i + 1;
    }
    dl_from_msg(dls_push(&r->found), m, 1);
    return (int)r->found.n;
}

/* read_topic() callback: matches dead letters against the source specs. */
static void on_replay_scan(void *arg, const rd_kafka_message_t *m) {
    replay_t *r = arg;
    dl_t d;

    dl_from_msg(&d, m, 0);
    for (int i = 0; i < r->nspecs; i++) {
        spec_t *s = &r->specs[i];
        if (s->by_source && !s->found && d.src_topic &&
            !strcmp(d.src_topic, s->topic) && d.src_partition == s->partition &&
            d.src_offset == s->offset) {
            s->found = replay_keep(r, m);
        }
    }
    dl_term(&d);
}

/* Reads the one dead letter at s->partition@s->offset. 0, or an exit
 * status for Kafka failures; a missing one leaves s->found 0. */
static int
replay_fetch(ctl_t *c, rd_kafka_t *rk, replay_t *r, spec_t *s, int nparts) {
    const char *topic = c->conf->topic_dlq;
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_resp_err_t err;
    int64_t lo, hi, deadline;
    int rc = 0;

    if (s->partition >= nparts) return 0;
    err = rd_kafka_query_watermark_offsets(rk, topic, s->partition, &lo, &hi,
                                           KAFKA_WAIT_MS);
    if (err) {
        fprintf(stderr, "trustctl: Kafka: watermarks of %s/%d: %s\n", topic,
                (int)s->partition, rd_kafka_err2str(err));
        return EXIT_UNREACHABLE;
    }
    if (s->offset < lo || s->offset >= hi) return 0;
    parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, s->partition)->offset =
        s->offset;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    deadline = td_mono_ms() + KAFKA_WAIT_MS;
    while (!s->found && td_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        /* A message from an earlier assignment may still arrive. */
        if (m->partition == s->partition && m->offset >= s->offset) {
            if (!m->err && m->offset == s->offset) {
                s->found = replay_keep(r, m);
            } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
                       (!m->err && m->offset > s->offset)) {
                deadline = 0; /* deleted or compacted away */
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (!s->found && deadline) {
        fprintf(stderr, "trustctl: Kafka at %s went silent reading %s\n",
                c->conf->brokers, topic);
        rc = EXIT_UNREACHABLE;
    }
    rd_kafka_assign(rk, NULL);
    return rc;
}

/* 1 if topic is one of trustd's input topics. */
static int is_input_topic(const td_conf_t *conf, const char *topic) {
    return !strcmp(topic, conf->topic_orders) ||
           !strcmp(topic, conf->topic_reviews) ||
           !strcmp(topic, conf->topic_refunds);
}

/* Produces the resolved dead letters with the idempotent producer and
 * prints each one's new place. 0 or EXIT_UNREACHABLE. */
static int replay_produce(ctl_t *c, replay_t *r) {
    delivery_t *dr = xcalloc(r->found.n, sizeof(*dr));
    rd_kafka_t *rk = kafka_new(c, RD_KAFKA_PRODUCER);
    int rc = 0, first = 1;

    if (!rk) {
        free(dr);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < r->found.n; i++) {
        const dl_t *d = &r->found.v[i];
        /* Same partition: the replay stays in order with the merchant's
         * other events there, whatever partitioner wrote them. */
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(d->src_topic),
            RD_KAFKA_V_PARTITION(d->src_partition),
            RD_KAFKA_V_KEY(d->key, d->key_len),
            RD_KAFKA_V_VALUE(d->value, d->value ? d->value_len : 0),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&dr[i]),
            RD_KAFKA_V_END);
        if (err) {
            dr[i].done = 1;
            dr[i].err = err;
        }
    }
    rd_kafka_flush(rk, DELIVER_MS);
    if (c->json) {
        putchar('[');
    }
    for (size_t i = 0; i < r->found.n; i++) {
        const dl_t *d = &r->found.v[i];
        if (!dr[i].done || dr[i].err) {
            fprintf(stderr,
                    "trustctl: replaying %s %d@%lld to %s/%d failed: %s\n",
                    c->conf->topic_dlq, (int)d->partition, (long long)d->offset,
                    d->src_topic, (int)d->src_partition,
                    dr[i].done ? rd_kafka_err2str(dr[i].err)
                               : "not acknowledged in time (it may still "
                                 "arrive)");
            rc = EXIT_UNREACHABLE;
            continue;
        }
        if (c->json) {
            printf("%s{\"dlq_partition\":%d,\"dlq_offset\":%lld,\"topic\":",
                   first ? "" : ",", (int)d->partition, (long long)d->offset);
            first = 0;
            json_cstr(stdout, d->src_topic);
            printf(",\"partition\":%d,\"offset\":%lld,\"source_offset\":%lld,"
                   "\"error_code\":",
                   (int)dr[i].partition, (long long)dr[i].offset,
                   (long long)d->src_offset);
            json_cstr(stdout, d->code);
            putchar('}');
        } else {
            printf("replayed %s %d@%lld (%s, from %s/%d@%lld) -> %s/%d@%lld\n",
                   c->conf->topic_dlq, (int)d->partition, (long long)d->offset,
                   d->code ? d->code : "-", d->src_topic, (int)d->src_partition,
                   (long long)d->src_offset, d->src_topic, (int)dr[i].partition,
                   (long long)dr[i].offset);
        }
    }
    if (c->json) {
        printf("]\n");
    }
    rd_kafka_destroy(rk);
    free(dr);
    return rc;
}

/*
 * dlq replay: resolves every spec first and produces nothing unless all of
 * them were found and can go back (headers name an input topic), so a typo
 * never leaves a half-done replay that a retry would duplicate.
 */
static int cmd_dlq_replay(ctl_t *c, int argc, char **argv) {
    replay_t r = {0};
    rd_kafka_t *rk = NULL;
    int nparts = 0, scan = 0, rc = 0;

    if (argc + c->nsources == 0) {
        fprintf(stderr, "trustctl: dlq replay needs at least one SPEC\n");
        return EXIT_USAGE;
    }
    if (argc + c->nsources > SPEC_MAX) {
        fprintf(stderr, "trustctl: at most %d specs per replay\n", SPEC_MAX);
        return EXIT_USAGE;
    }
    r.specs = xcalloc((size_t)(argc + c->nsources), sizeof(*r.specs));
    for (int i = 0; i < argc + c->nsources && !rc; i++) {
        rc = i < argc ? spec_parse(&r.specs[i], argv[i], 0)
                      : spec_parse(&r.specs[i], c->sources[i - argc], 1);
        scan |= r.specs[i].by_source;
        r.nspecs++;
    }
    if (rc) goto out;
    if (!(rk = kafka_new(c, RD_KAFKA_CONSUMER))) {
        rc = EXIT_USAGE;
        goto out;
    }
    if ((rc = kafka_partitions(c, rk, c->conf->topic_dlq, &nparts))) goto out;
    for (int i = 0; i < r.nspecs && !rc; i++) {
        if (!r.specs[i].by_source) {
            rc = replay_fetch(c, rk, &r, &r.specs[i], nparts);
        }
    }
    /* Source positions are only in the headers: one pass over the topic. */
    if (!rc && scan) {
        rc = read_topic(c, rk, c->conf->topic_dlq, -1, 0, on_replay_scan, NULL,
                        &r);
    }
    if (rc) goto out;
    for (int i = 0; i < r.nspecs; i++) {
        const spec_t *s = &r.specs[i];
        const dl_t *d = s->found ? &r.found.v[s->found - 1] : NULL;
        if (!d) {
            fprintf(stderr, "trustctl: no dead letter %s %s\n",
                    s->by_source ? "from source" : "at", s->text);
            rc = EXIT_NOTFOUND;
        } else if (!d->src_topic || d->src_partition < 0) {
            fprintf(stderr,
                    "trustctl: dead letter %d@%lld has no dlq.source.topic "
                    "and dlq.source.partition headers\n",
                    (int)d->partition, (long long)d->offset);
            rc = EXIT_NOTFOUND;
        } else if (!is_input_topic(c->conf, d->src_topic)) {
            fprintf(stderr,
                    "trustctl: dead letter %d@%lld came from '%s', not an "
                    "input topic of trustd\n",
                    (int)d->partition, (long long)d->offset, d->src_topic);
            rc = EXIT_NOTFOUND;
        }
    }
    if (rc) {
        fprintf(stderr, "trustctl: nothing replayed\n");
        goto out;
    }
    rc = replay_produce(c, &r);
out:
    if (rk) {
        rd_kafka_destroy(rk);
    }
    dls_free(&r.found);
    free(r.specs);
    return rc;
}

/* ---- scores: the allocator-side reader ---- */

/*
 * How to read trust scores (copy this). The scores topic is keyed by
 * merchant_id; every TrustScore carries a version that rises with each
 * publication for its merchant. The topic can hold older versions,
 * duplicates (a retried delivery) and a lower version written after a
 * higher one (two workers briefly scoring one merchant during a
 * rebalance). So a reader:
 *
 *   1. reads every partition from the beginning (assign(), no commits: the
 *      table is rebuilt from the topic on every start);
 *   2. keeps per merchant only the record with the highest version and
 *      drops any record whose version is not higher than the one it has;
 *   3. once caught up, keeps applying records as they arrive (--follow).
 */
typedef struct latest_s {
    char merchant_id[TD_MERCHANT_ID_MAX + 1];
    double score;
    int tier;
    double confidence;
    int64_t version;
    char model_version[64];
    int64_t as_of_ms;
} latest_t;

typedef struct scores_s {
    ctl_t *c;
    td_codec_t *codec;
    void *root;     /* tsearch() tree of latest_t by merchant_id */
    latest_t **all; /* the same records, for printing and freeing */
    size_t n, cap;
    int caught_up;
    uint64_t dropped, bad;
} scores_t;

static int latest_cmp(const void *a, const void *b) {
    return strcmp(((const latest_t *)a)->merchant_id,
                  ((const latest_t *)b)->merchant_id);
}

static int latest_pcmp(const void *a, const void *b) {
    return latest_cmp(*(const latest_t *const *)a, *(const latest_t *const *)b);
}

static void latest_print(const scores_t *s, const latest_t *l, int first) {
    char t[64];
    if (s->c->json) {
        /* Follow mode writes JSON lines; the snapshot is one array. */
        printf("%s{\"merchant_id\":", s->c->follow ? "" : first ? "" : ",");
        json_cstr(stdout, l->merchant_id);
        printf(",\"score\":");
        json_dbl(stdout, l->score);
        printf(",\"tier\":%d,\"confidence\":", l->tier);
        json_dbl(stdout, l->confidence);
        printf(",\"version\":%lld,\"model_version\":", (long long)l->version);
        json_cstr(stdout, l->model_version);
        printf(",\"as_of_ms\":%lld}%s", (long long)l->as_of_ms,
               s->c->follow ? "\n" : "");
    } else {
        printf("%-24s %8.2f %4d %10.3f %8lld %-16s %s\n", l->merchant_id,
               l->score, l->tier, l->confidence, (long long)l->version,
               l->model_version, iso_ms(l->as_of_ms, t, sizeof(t)));
    }
    if (s->c->follow) {
        fflush(stdout);
    }
}

static void on_score(void *arg, const rd_kafka_message_t *m) {
    scores_t *s = arg;
    td_score_rec_t rec;
    latest_t probe, *l;
    void *node;
    char errstr[256];

    if (td_codec_decode_score(s->codec, m->payload, m->len, &rec, errstr,
                              sizeof(errstr)) != TD_OK) {
        /* Not a TrustScore we understand: skip it, never stop reading. */
        if (s->bad++ == 0) {
            fprintf(stderr,
                    "trustctl: skipping undecodable score at %d@%lld: "
                    "%s\n",
                    (int)m->partition, (long long)m->offset, errstr);
        }
        return;
    }
    snprintf(probe.merchant_id, sizeof(probe.merchant_id), "%s",
             rec.merchant_id);
    node = tfind(&probe, &s->root, latest_cmp);
    l = node ? *(latest_t **)node : NULL;
    if (l && rec.version <= l->version) {
        s->dropped++; /* a duplicate or a stale version */
        return;
    }
    if (!l) {
        l = xcalloc(1, sizeof(*l));
        memcpy(l->merchant_id, probe.merchant_id, sizeof(l->merchant_id));
        if (!tsearch(l, &s->root, latest_cmp)) {
            fprintf(stderr, "trustctl: out of memory\n");
            abort();
        }
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 256;
            s->all = realloc(s->all, s->cap * sizeof(*s->all));
            if (!s->all) {
                fprintf(stderr, "trustctl: out of memory\n");
                abort();
            }
        }
        s->all[s->n++] = l;
    }
    l->score = rec.score;
    l->tier = rec.tier;
    l->confidence = rec.confidence;
    l->version = rec.version;
    /* model_version is the codec's until the next decode: copy it. */
    snprintf(l->model_version, sizeof(l->model_version), "%s",
             rec.model_version ? rec.model_version : "");
    l->as_of_ms = rec.as_of_ms;
    if (s->caught_up) {
        latest_print(s, l, 0);
    }
}

/* Prints the table once the topic was read to its end. */
static void on_scores_caught_up(void *arg) {
    scores_t *s = arg;
    if (s->n > 0) {
        qsort(s->all, s->n, sizeof(*s->all), latest_pcmp);
    }
    if (!s->c->json) {
        printf("%-24s %8s %4s %10s %8s %-16s %s\n", "merchant", "score", "tier",
               "confidence", "version", "model", "as_of");
    } else if (!s->c->follow) {
        putchar('[');
    }
    for (size_t i = 0; i < s->n; i++) {
        latest_print(s, s->all[i], i == 0);
    }
    if (s->c->json && !s->c->follow) {
        printf("]\n");
    }
    s->caught_up = 1;
}

static void no_free(void *p) {
    (void)p; /* the records are freed through s->all */
}

static int cmd_scores(ctl_t *c, int argc, char **argv) {
    char errstr[512];
    scores_t s = {.c = c};
    rd_kafka_t *rk;
    int rc;

    if (!(s.codec = td_codec_new(errstr, sizeof(errstr)))) {
        fprintf(stderr, "trustctl: %s\n", errstr);
        return EXIT_USAGE;
    }
    if (!(rk = kafka_new(c, RD_KAFKA_CONSUMER))) {
        td_codec_destroy(s.codec);
        return EXIT_USAGE;
    }
    rc = read_topic(c, rk, c->conf->topic_scores, -1, c->follow, on_score,
                    on_scores_caught_up, &s);
    if (!rc && !c->json && !c->follow) {
        printf("(%zu merchants; %llu duplicate or stale records dropped)\n",
               s.n, (unsigned long long)s.dropped);
    }
    rd_kafka_destroy(rk);
    tdestroy(s.root, no_free);
    for (size_t i = 0; i < s.n; i++) {
        free(s.all[i]);
    }
    free(s.all);
    td_codec_destroy(s.codec);
    return rc;
}

static int cmd_reference(ctl_t *c, int argc, char **argv) {
    td_signals_reference_md(stdout);
    return 0;
}

/* ---- commands ---- */

/* ---- serve ---- */

/* Serves the page until SIGINT or SIGTERM (serve.h). */
static int cmd_serve(ctl_t *c, int argc, char **argv) {
    const char *file = c->conf->model_file;
    td_model_t *model;
    td_serve_t *s;
    sigset_t block, old;
    char errstr[512];

    model = *file ? td_model_load(file, errstr, sizeof(errstr))
                  : td_model_load_string("built-in model.conf", td_model_conf,
                                         errstr, sizeof(errstr));
    if (!model) {
        fprintf(stderr, "trustctl: %s\n", errstr);
        return EXIT_USAGE;
    }
    /* Blocked until sigsuspend(), so a signal between the check of
     * stop_flag and the wait is not lost. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    if (!(s = td_serve_start(c->conf, model, errstr, sizeof(errstr)))) {
        fprintf(stderr, "trustctl: %s\n", errstr);
        sigprocmask(SIG_SETMASK, &old, NULL);
        td_model_destroy(model);
        return EXIT_USAGE;
    }
    /* The address, for scripts (make demo, the tests) to read. */
    printf("serving http://%.*s:%d/\n",
           (int)(strrchr(c->conf->listen, ':') - c->conf->listen),
           c->conf->listen, td_serve_port(s));
    fflush(stdout);
    while (!stop_flag) {
        sigsuspend(&old);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    td_serve_stop(s);
    td_model_destroy(model);
    return 0;
}

/* clang-format off */
static const ctl_cmd_t ctl_cmds[] = {
    {"get",       NULL,     1, 1,        1, cmd_get,        "MERCHANT",   "score, tier, confidence, sub-scores, reasons and key signals"},
    {"signals",   NULL,     1, 1,        1, cmd_signals,    "MERCHANT",   "every signal with its value, unit, window and meaning"},
    {"history",   NULL,     1, 1,        1, cmd_history,    "MERCHANT",   "published scores, oldest first: time, score, tier, confidence, version"},
    {"top",       NULL,     0, 1,        1, cmd_top,        "[N]",        "the N best merchants by score (default 10)"},
    {"bottom",    NULL,     0, 1,        1, cmd_bottom,     "[N]",        "the N worst merchants by score (default 10)"},
    {"offsets",   NULL,     0, 0,        1, cmd_offsets,    "",           "stored offsets per input partition, high watermarks and lag"},
    {"dlq",       "list",   0, 1,        0, cmd_dlq_list,   "[N]",        "the last N dead letters (default 20): source, code, reason, key"},
    {"dlq",       "replay", 0, SPEC_MAX, 0, cmd_dlq_replay, "SPEC...",    "produce dead letters back to their source partition, unchanged; SPEC is DLQPARTITION@OFFSET or [--source] TOPIC/PARTITION@OFFSET"},
    {"scores",    NULL,     0, 0,        0, cmd_scores,     "[--follow]", "the latest score per merchant from the scores topic; --follow keeps reading"},
    {"reference", NULL,     0, 0,        0, cmd_reference,  "",           "the signal reference page (Markdown)"},
    {"serve",     NULL,     0, 0,        0, cmd_serve,      "",           "the merchant trust page and its read-only JSON API over HTTP on `listen` (default 127.0.0.1:8080); a non-loopback address needs serve_token"},
    {NULL,        NULL,     0, 0,        0, NULL,           NULL,         NULL},
};
/* clang-format on */

/* The command list; with full, the options too (--help). */
static void usage(FILE *fp, int full) {
    fprintf(fp, "usage: trustctl [OPTIONS] COMMAND [ARGS]\n\ncommands:\n");
    for (const ctl_cmd_t *k = ctl_cmds; k->name; k++) {
        const char *h = k->help;
        fprintf(fp, "  %s%s%s%s%s\n", k->name, k->sub ? " " : "",
                k->sub ? k->sub : "", *k->args ? " " : "", k->args);
        /* Help text wrapped at 80 columns, indented by 8. */
        while (*h) {
            int len = (int)strlen(h);
            if (len > 72) {
                len = 72;
                while (len > 0 && h[len] != ' ') {
                    len--;
                }
                if (len == 0) {
                    len = 72; /* one very long word */
                }
            }
            fprintf(fp, "        %.*s\n", len, h);
            h += len;
            while (*h == ' ') {
                h++;
            }
        }
    }
    fprintf(fp, "\nExit status: 0 ok, 1 usage or configuration error, 2 not "
                "found, 3 Redis or\nKafka unreachable or failing.\n");
    if (!full) {
        fprintf(fp, "Options: trustctl --help.\n");
        return;
    }
    fputc('\n', fp);
    td_conf_usage(fp, TD_CONF_TRUSTCTL, "trustctl");
}

static const char *cmd_label(const ctl_cmd_t *k, char *buf, size_t size) {
    snprintf(buf, size, "%s%s%s", k->name, k->sub ? " " : "",
             k->sub ? k->sub : "");
    return buf;
}

/*
 * Takes the command-local flags (ctl_flags[]) out of argv, so that
 * td_conf_load() sees only settings. Returns the new argc, or -1 after
 * saying why.
 */
static int
take_local_flags(ctl_t *c, int argc, char **argv, const char **used_by) {
    int out = 1;

    for (int i = 1; i < argc; i++) {
        const ctl_flag_t *f = NULL;
        const char *a = argv[i], *eq;
        size_t len;
        if (!strcmp(a, "--")) {
            while (i < argc) {
                argv[out++] = argv[i++];
            }
            break;
        }
        eq = strchr(a, '=');
        len = eq ? (size_t)(eq - a) : strlen(a);
        for (const ctl_flag_t *g = ctl_flags;
             g->name && a[0] == '-' && a[1] == '-'; g++) {
            if (len == strlen(g->name) + 2 &&
                !strncmp(a + 2, g->name, len - 2)) {
                f = g;
            }
        }
        if (!f) {
            argv[out++] = argv[i];
            continue;
        }
        *used_by = f->cmd;
        if (!f->takes_value) {
            if (eq) {
                fprintf(stderr, "trustctl: --%s takes no value\n", f->name);
                return -1;
            }
            c->follow = 1; /* the only flag without a value */
            continue;
        }
        if (!eq && i + 1 >= argc) {
            fprintf(stderr, "trustctl: --%s needs a value\n", f->name);
            return -1;
        }
        if (c->nsources == SPEC_MAX) {
            fprintf(stderr, "trustctl: at most %d --%s\n", SPEC_MAX, f->name);
            return -1;
        }
        c->sources[c->nsources++] = eq ? eq + 1 : argv[++i];
    }
    argv[out] = NULL;
    return out;
}

int main(int argc, char **argv) {
    td_conf_t conf;
    char errstr[512], label[64];
    int want_help = 0, want_print = 0, rest_cnt = 0, rc = EXIT_USAGE;
    char **rest = NULL;
    const char *local_cmd = NULL;
    const ctl_cmd_t *k;
    ctl_t c = {.conf = &conf};
    struct sigaction sa;

    td_conf_init(&conf);
    if ((argc = take_local_flags(&c, argc, argv, &local_cmd)) < 0) goto out;
    if (td_conf_load(&conf, TD_CONF_TRUSTCTL, argc, argv, environ, &want_help,
                     &want_print, &rest, &rest_cnt, errstr,
                     sizeof(errstr)) != TD_OK) {
        fprintf(stderr, "trustctl: %s\n", errstr);
        goto out;
    }
    c.json = conf.json;
    if (want_help) {
        usage(stdout, 1);
        rc = 0;
        goto out;
    }
    if (want_print) {
        td_conf_print(&conf, stdout);
        rc = 0;
        goto out;
    }
    for (k = ctl_cmds; k->name; k++) {
        int words = k->sub ? 2 : 1;
        if (rest_cnt >= words && !strcmp(rest[0], k->name) &&
            (!k->sub || !strcmp(rest[1], k->sub)))
            break;
    }
    if (!k->name) {
        if (rest_cnt > 0) {
            /* "dlq" alone or with a wrong second word names both. */
            int two = rest_cnt > 1 && !strcmp(rest[0], "dlq");
            fprintf(stderr, "trustctl: unknown command '%s%s%s'\n\n", rest[0],
                    two ? " " : "", two ? rest[1] : "");
        }
        usage(stderr, 0);
        goto out;
    }
    cmd_label(k, label, sizeof(label));
    if (local_cmd && strcmp(local_cmd, label)) {
        fprintf(stderr, "trustctl: that option belongs to '%s', not '%s'\n",
                local_cmd, label);
        goto out;
    }
    rest_cnt -= k->sub ? 2 : 1;
    rest += k->sub ? 2 : 1;
    if (rest_cnt < k->min_args || rest_cnt > k->max_args) {
        fprintf(stderr, "usage: trustctl [OPTIONS] %s %s\n", label, k->args);
        goto out;
    }
    if (k->redis && (rc = redis_open(&c))) goto out;
    if (c.follow || !strcmp(k->name, "serve")) {
        /* Following ends on a signal, cleanly and with exit status 0. */
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    rc = k->fn(&c, rest_cnt, rest);
    if (fflush(stdout) != 0 && !rc) {
        rc = EXIT_USAGE;
    }
out:
    td_store_destroy(c.st);
    td_conf_term(&conf);
    return rc;
}
