/*
 * conf.c - configuration of trustd and trustctl.
 *
 * Every setting is one line of td_conf_properties[] below: name, type, the
 * offset of its field in td_conf_t, bounds, default (as text), flags and a
 * one-line description, like librdkafka's rd_kafka_properties[]
 * (rdkafka_conf.c) and Redis' static_configs[] (config.c). Nothing else in
 * this file knows about individual settings:
 *
 *   td_conf_init()          parses each default with the generic setter;
 *   td_conf_prop_set()      the generic setter: type check, range check,
 *                           error text naming the setting;
 *   td_conf_load_file()     config file lines  -> td_conf_set();
 *   td_conf_apply_env()     TRUST_* variables  -> td_conf_set();
 *   td_conf_load()          argv flags         -> td_conf_prop_set(), after
 *                           the file and the environment, so flags win;
 *   td_conf_usage(), td_conf_print(), td_conf_reference_md()
 *                           walk the table to write --help, the effective
 *                           configuration and the README reference.
 *
 * The TD_CONF_* table macros check at compile time, with _Generic, that the
 * field has the C type the setting's type needs, so a table line cannot write
 * an int64_t through an int.
 *
 * librdkafka properties are not in the table: they are kept verbatim, in the
 * order first seen, for rd_kafka_conf_set() to judge.
 */
#include "conf.h"
#include "common.h"
#include "log.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest setting name (librdkafka property names may be longer). */
#define TD_CONF_NAME_MAX 64
/* Longest librdkafka property name accepted from a flag or variable. */
#define TD_CONF_KAFKA_NAME_MAX 256

#define TD_CONF_BOTH (TD_CONF_TRUSTD | TD_CONF_TRUSTCTL)

typedef enum {
    TD_CONF_T_STR,
    TD_CONF_T_INT,
    TD_CONF_T_INT64,
    TD_CONF_T_DOUBLE,
    TD_CONF_T_BOOL,
    TD_CONF_T_ENUM,
} td_conf_type_t;

typedef struct td_conf_prop_s {
    const char *name;
    td_conf_type_t type;
    size_t offset;            /* of the field in td_conf_t */
    int64_t vmin;             /* INT, INT64 */
    int64_t vmax;             /* INT, INT64 */
    double dmin;              /* DOUBLE */
    double dmax;              /* DOUBLE */
    const char *const *enums; /* ENUM: allowed values, NULL-terminated */
    const char *sdef;         /* default, parsed like any other value */
    unsigned flags;           /* TD_CONF_TRUSTD | TD_CONF_TRUSTCTL | SECRET */
    const char *desc;         /* one line, no final period */
} td_conf_prop_t;

/* offsetof(td_conf_t, f), failing to compile unless the field has type T. */
#define TD_CONF_OFF(f, T)                                                      \
    _Generic(((td_conf_t *)0)->f, T : offsetof(td_conf_t, f))

#define TD_CONF_STR(f, fl, def, help)                                          \
    {                                                                          \
        .name = #f, .type = TD_CONF_T_STR, .offset = TD_CONF_OFF(f, char *),   \
        .sdef = (def), .flags = (fl), .desc = (help)                           \
    }
#define TD_CONF_INT(f, fl, min, max, def, help)                                \
    {                                                                          \
        .name = #f, .type = TD_CONF_T_INT, .offset = TD_CONF_OFF(f, int),      \
        .vmin = (min), .vmax = (max), .sdef = (def), .flags = (fl),            \
        .desc = (help)                                                         \
    }
#define TD_CONF_INT64(f, fl, min, max, def, help)                              \
    {                                                                          \
        .name = #f, .type = TD_CONF_T_INT64,                                   \
        .offset = TD_CONF_OFF(f, int64_t), .vmin = (min), .vmax = (max),       \
        .sdef = (def), .flags = (fl), .desc = (help)                           \
    }
#define TD_CONF_DOUBLE(f, fl, min, max, def, help)                             \
    {                                                                          \
        .name = #f, .type = TD_CONF_T_DOUBLE,                                  \
        .offset = TD_CONF_OFF(f, double), .dmin = (min), .dmax = (max),        \
        .sdef = (def), .flags = (fl), .desc = (help)                           \
    }
#define TD_CONF_BOOL(f, fl, def, help)                                         \
    {                                                                          \
        .name = #f, .type = TD_CONF_T_BOOL, .offset = TD_CONF_OFF(f, int),     \
        .sdef = (def), .flags = (fl), .desc = (help)                           \
    }
#define TD_CONF_ENUM(f, fl, values, def, help)                                 \
    {                                                                          \
        .name = #f, .type = TD_CONF_T_ENUM, .offset = TD_CONF_OFF(f, int),     \
        .enums = (values), .sdef = (def), .flags = (fl), .desc = (help)        \
    }

/* Indexed by TD_LOG_* level: the enum index is the level. */
static const char *const td_conf_log_levels[] = {
    "debug", "verbose", "notice", "warning", NULL,
};
static_assert(TD_LOG_DEBUG == 0 && TD_LOG_VERBOSE == 1 && TD_LOG_NOTICE == 2 &&
                  TD_LOG_WARNING == 3 &&
                  TD_ARRAY_LEN(td_conf_log_levels) == TD_LOG_WARNING + 2,
              "log_level values are the TD_LOG_* levels");

/* Indexed by TD_REDIS_MODULE_*. */
static const char *const td_conf_redis_modules[] = {
    "auto",
    "lua",
    "module",
    NULL,
};
static_assert(TD_REDIS_MODULE_AUTO == 0 && TD_REDIS_MODULE_LUA == 1 &&
                  TD_REDIS_MODULE_REQUIRE == 2 &&
                  TD_ARRAY_LEN(td_conf_redis_modules) == 4,
              "redis_module values are the TD_REDIS_MODULE_* modes");

/* clang-format off */
static const td_conf_prop_t td_conf_properties[] = {
    /* Kafka */
    TD_CONF_STR(brokers, TD_CONF_BOTH, "127.0.0.1:9092", "Kafka bootstrap servers, host:port[,host:port...]"),
    TD_CONF_STR(group, TD_CONF_BOTH, "trustd", "Kafka consumer group id"),
    TD_CONF_STR(topic_orders, TD_CONF_BOTH, "orders", "Topic with order events"),
    TD_CONF_STR(topic_reviews, TD_CONF_BOTH, "reviews", "Topic with review events"),
    TD_CONF_STR(topic_refunds, TD_CONF_BOTH, "refunds", "Topic with refund events"),
    TD_CONF_STR(topic_scores, TD_CONF_BOTH, "trust-scores", "Topic trust scores are published to"),
    TD_CONF_STR(topic_dlq, TD_CONF_BOTH, "trust-dlq", "Dead-letter topic for messages that cannot be processed"),
    /* Redis */
    TD_CONF_STR(redis, TD_CONF_BOTH, "127.0.0.1:6379", "Redis seed nodes, host:port[,host:port...], or a unix socket path starting with /"),
    TD_CONF_BOOL(redis_cluster, TD_CONF_BOTH, "false", "Speak the Redis Cluster protocol to the seed nodes"),
    TD_CONF_ENUM(redis_module, TD_CONF_BOTH, td_conf_redis_modules, "auto", "Merchant writes: the trustd Redis module's native commands when the server has them (auto), always the Lua function library (lua), or require the module (module)"),
    TD_CONF_STR(redis_user, TD_CONF_BOTH, "", "Redis ACL user (empty: the default user)"),
    TD_CONF_STR(redis_password, TD_CONF_BOTH | TD_CONF_SECRET, "", "Redis password (empty: no AUTH)"),
    TD_CONF_INT(redis_connect_timeout_ms, TD_CONF_BOTH, 1, 600000, "2000", "Redis connect timeout in milliseconds"),
    TD_CONF_INT(redis_command_timeout_ms, TD_CONF_BOTH, 1, 600000, "5000", "Redis command timeout in milliseconds"),
    TD_CONF_INT(redis_retry_max_ms, TD_CONF_BOTH, 10, 600000, "5000", "Longest backoff between Redis retries in milliseconds"),
    /* Processing */
    TD_CONF_INT(flush_interval_ms, TD_CONF_TRUSTD, 1, 600000, "250", "Flush cached merchant state to Redis at least this often (milliseconds)"),
    TD_CONF_INT(flush_max_events, TD_CONF_TRUSTD, 1, 10000000, "20000", "Flush early once this many events were applied since the last flush"),
    TD_CONF_INT64(flush_behind_lag, TD_CONF_TRUSTD, 1, INT64_MAX, "100000", "Consumer lag (events) after a flush above which the worker drains a backlog with the *_behind settings"),
    TD_CONF_INT(flush_max_events_behind, TD_CONF_TRUSTD, 1, 100000000, "1000000", "Draining a backlog, the next flush holds at most this many events (a quarter of the lag, or more when reading outpaces writing)"),
    TD_CONF_INT(flush_interval_behind_ms, TD_CONF_TRUSTD, 1, 600000, "5000", "Draining a backlog: flush at least this often (milliseconds)"),
    TD_CONF_INT(max_merchants, TD_CONF_TRUSTD, 1, 100000000, "200000", "Flush early once this many merchants are cached; also the most exact merchant states kept between flushes"),
    TD_CONF_DOUBLE(publish_min_step, TD_CONF_TRUSTD, 0, 100, "0.5", "Publish a score when it moved at least this many points"),
    TD_CONF_INT(publish_max_interval_ms, TD_CONF_TRUSTD, 0, 86400000, "300000", "Republish a score after this many milliseconds even if it moved less"),
    TD_CONF_INT(sweep_merchants_per_s, TD_CONF_TRUSTD, 0, 1000000, "100", "Re-score up to this many quiet merchants a second, their signals aged to now, so that windows and caps expire without new events (0: never)"),
    TD_CONF_INT64(sweep_quiet_ms, TD_CONF_TRUSTD, 0, INT64_MAX, "3600000", "A merchant is quiet, and re-scored by the sweep, once its score was last published this many milliseconds ago"),
    TD_CONF_STR(model_file, TD_CONF_BOTH, "", "Scoring model file (empty: the model built into the binary, schemas/model.conf at build time)"),
    TD_CONF_INT64(min_event_time_ms, TD_CONF_TRUSTD, 0, INT64_MAX, "1420070400000", "Events with an earlier event_time (epoch milliseconds) go to the DLQ"),
    TD_CONF_INT64(max_future_skew_ms, TD_CONF_TRUSTD, 0, INT64_MAX, "300000", "Events more than this many milliseconds in the future go to the DLQ"),
    TD_CONF_INT(max_message_bytes, TD_CONF_TRUSTD, 16, 104857600, "65536", "Larger Kafka messages go to the DLQ"),
    /* Confluent-framed events: writer schemas by id */
    TD_CONF_STR(schema_registry_url, TD_CONF_TRUSTD, "", "Base URL of a Confluent-compatible schema registry API, e.g. http://registry:8081 (empty: none)"),
    TD_CONF_STR(schema_registry_user, TD_CONF_TRUSTD, "", "Schema registry HTTP basic auth user (empty: none)"),
    TD_CONF_STR(schema_registry_password, TD_CONF_TRUSTD | TD_CONF_SECRET, "", "Schema registry HTTP basic auth password"),
    TD_CONF_INT(schema_registry_timeout_ms, TD_CONF_TRUSTD, 10, 60000, "2000", "Longest schema registry request, connecting included (milliseconds)"),
    TD_CONF_INT(schema_registry_retry_max_ms, TD_CONF_TRUSTD, 200, 600000, "30000", "Longest backoff between schema registry retries (milliseconds)"),
    TD_CONF_STR(schema_map_file, TD_CONF_TRUSTD, "", "File of 'ID PATH' lines giving Confluent schema ids their .avsc without a registry (empty: none)"),
    /* Operations */
    TD_CONF_STR(http_addr, TD_CONF_TRUSTD, "127.0.0.1", "Address of the metrics and health HTTP endpoint"),
    TD_CONF_INT(http_port, TD_CONF_TRUSTD, 0, 65535, "9464", "Port of the metrics and health HTTP endpoint (0: disabled)"),
    TD_CONF_INT(stall_timeout_ms, TD_CONF_TRUSTD, 1, 86400000, "60000", "/readyz fails when assigned partitions have lag and nothing was applied for this many milliseconds"),
    TD_CONF_ENUM(log_level, TD_CONF_BOTH, td_conf_log_levels, "notice", "Lowest level that is logged"),
    TD_CONF_BOOL(log_json, TD_CONF_BOTH, "false", "Log one JSON object per line instead of text"),
    TD_CONF_INT(log_error_interval_ms, TD_CONF_TRUSTD, 0, 86400000, "10000", "Log a repeated error at most once per this many milliseconds (0: every time)"),
    TD_CONF_INT(shutdown_timeout_ms, TD_CONF_TRUSTD, 0, 3600000, "8000", "Longest graceful shutdown (final flush and commit) in milliseconds"),
    /* trustctl */
    TD_CONF_BOOL(json, TD_CONF_TRUSTCTL, "false", "Print command output as JSON"),
    TD_CONF_STR(listen, TD_CONF_TRUSTCTL, "127.0.0.1:8080", "trustctl serve: IPv4 address and port of the merchant page and its API (port 0: any free port)"),
    TD_CONF_STR(serve_token, TD_CONF_TRUSTCTL | TD_CONF_SECRET | TD_CONF_NOFLAG, "", "trustctl serve: bearer token every /api request must carry; required unless listen is a loopback address"),
    {.name = NULL},
};
/* clang-format on */

/* Substrings that make a librdkafka property secret (case-insensitive). */
static const char *const td_conf_kafka_secrets[] = {
    "password", "secret", "sasl.oauthbearer.config", "ssl.key", NULL,
};

static const char *const td_conf_true_words[] = {
    "true", "yes", "on", "1", NULL,
};
static const char *const td_conf_false_words[] = {
    "false", "no", "off", "0", NULL,
};


static int td_conf_err(char *errstr, size_t errstr_size, const char *fmt, ...)
    TD_LOG_PRINTF(3, 4);

/* Formats into errstr (if there is one) and returns TD_ERR. */
static int td_conf_err(char *errstr, size_t errstr_size, const char *fmt, ...) {
    va_list ap;

    if (errstr && errstr_size > 0) {
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return TD_ERR;
}

/*
 * strdup() that aborts when memory runs out, as Redis' zmalloc does: there is
 * nothing sensible to do without memory for a few configuration strings.
 */
static char *td_conf_strdup(const char *s) {
    char *d = strdup(s);

    if (!d) abort();
    return d;
}

static const char *td_conf_prog_name(unsigned prog) {
    return prog == TD_CONF_TRUSTCTL ? "trustctl" : "trustd";
}

/* Setting names compare with '-' and '_' as the same character. */
static int td_conf_name_char(int c) {
    return c == '-' ? '_' : c;
}

static int td_conf_name_eq(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        if (td_conf_name_char(*a) != td_conf_name_char(*b)) return 0;
    }
    return *a == *b;
}

static const td_conf_prop_t *td_conf_find(const char *name) {
    for (const td_conf_prop_t *p = td_conf_properties; p->name; p++) {
        if (td_conf_name_eq(p->name, name)) return p;
    }
    return NULL;
}

/* Levenshtein distance, or SIZE_MAX for names too long to bother. */
static size_t td_conf_distance(const char *a, const char *b) {
    size_t row[TD_CONF_NAME_MAX + 1];
    size_t la = strlen(a), lb = strlen(b);

    if (la > TD_CONF_NAME_MAX || lb > TD_CONF_NAME_MAX) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (td_conf_name_char(a[i - 1]) !=
                                  td_conf_name_char(b[j - 1]));
            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest setting name, if it is close enough to be a typo. */
static const td_conf_prop_t *td_conf_suggest(const char *name) {
    const td_conf_prop_t *best = NULL;
    size_t best_d = SIZE_MAX;
    /* Allow about one edit per six characters, and never more than three. */
    size_t limit = 1 + strlen(name) / 6;

    if (limit > 3) {
        limit = 3;
    }
    for (const td_conf_prop_t *p = td_conf_properties; p->name; p++) {
        size_t d = td_conf_distance(name, p->name);
        if (d < best_d) {
            best_d = d;
            best = p;
        }
    }
    return best_d <= limit ? best : NULL;
}

static int
td_conf_err_unknown(const char *name, char *errstr, size_t errstr_size) {
    const td_conf_prop_t *s = td_conf_suggest(name);

    if (s) {
        return td_conf_err(errstr, errstr_size,
                           "unknown setting '%s' (did you mean '%s'?)", name,
                           s->name);
    }
    return td_conf_err(errstr, errstr_size, "unknown setting '%s'", name);
}

static int td_conf_word_in(const char *s, const char *const *words) {
    for (; *words; words++) {
        if (!strcasecmp(s, *words)) return 1;
    }
    return 0;
}

/*
 * Parses a whole decimal integer. Returns 0 and sets *v, or -1 if s is not
 * one. On overflow returns 0 with *v clamped to INT64_MIN/INT64_MAX and
 * *overflow set, so the range check reports it.
 */
static int td_conf_parse_int64(const char *s, int64_t *v, int *overflow) {
    char *end;
    long long ll;

    /* strtoll() would skip leading spaces; we don't. */
    if (!isdigit((unsigned char)s[0]) && s[0] != '-' && s[0] != '+') return -1;
    errno = 0;
    ll = strtoll(s, &end, 10);
    if (end == s || *end != '\0') return -1;
    *overflow = errno == ERANGE;
    *v = (int64_t)ll;
    return 0;
}

static int td_conf_parse_double(const char *s, double *v) {
    char *end;

    if (!isdigit((unsigned char)s[0]) && s[0] != '-' && s[0] != '+' &&
        s[0] != '.') {
        return -1;
    }
    errno = 0;
    *v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(*v)) return -1;
    return 0;
}

/* Shortest form that reads back as the same double; "100", not "1e+02". */
static void td_conf_fmt_double(double d, char *buf, size_t size) {
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(buf, size, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) return;
    }
}

/*
 * The generic setter: parses value as prop's type, checks the range and
 * stores it. conf is unchanged on error. Secret values never appear in
 * errors.
 */
static int td_conf_prop_set(td_conf_t *conf,
                            const td_conf_prop_t *prop,
                            const char *value,
                            char *errstr,
                            size_t errstr_size) {
    char *field = (char *)conf + prop->offset;
    const char *shown = prop->flags & TD_CONF_SECRET ? "****" : value;
    int64_t v = 0;
    double d = 0;
    int overflow = 0;

    if (!value) {
        return td_conf_err(errstr, errstr_size, "%s: missing value",
                           prop->name);
    }

    switch (prop->type) {
    case TD_CONF_T_STR: {
        char **dst = (char **)field;
        char *s = td_conf_strdup(value);
        free(*dst);
        *dst = s;
        return TD_OK;
    }
    case TD_CONF_T_INT:
    case TD_CONF_T_INT64:
        if (td_conf_parse_int64(value, &v, &overflow) == -1) {
            return td_conf_err(errstr, errstr_size,
                               "%s: '%s' is not an integer", prop->name, shown);
        }
        if (v < prop->vmin || (overflow && v == INT64_MIN)) {
            return td_conf_err(errstr, errstr_size,
                               "%s: %s is below the minimum %" PRId64,
                               prop->name, shown, prop->vmin);
        }
        if (v > prop->vmax || (overflow && v == INT64_MAX)) {
            return td_conf_err(errstr, errstr_size,
                               "%s: %s is above the maximum %" PRId64,
                               prop->name, shown, prop->vmax);
        }
        if (prop->type == TD_CONF_T_INT) {
            *(int *)field = (int)v;
        } else {
            *(int64_t *)field = v;
        }
        return TD_OK;
    case TD_CONF_T_DOUBLE: {
        char lim[32];
        if (td_conf_parse_double(value, &d) == -1) {
            return td_conf_err(errstr, errstr_size, "%s: '%s' is not a number",
                               prop->name, shown);
        }
        if (d < prop->dmin) {
            td_conf_fmt_double(prop->dmin, lim, sizeof(lim));
            return td_conf_err(errstr, errstr_size,
                               "%s: %s is below the minimum %s", prop->name,
                               shown, lim);
        }
        if (d > prop->dmax) {
            td_conf_fmt_double(prop->dmax, lim, sizeof(lim));
            return td_conf_err(errstr, errstr_size,
                               "%s: %s is above the maximum %s", prop->name,
                               shown, lim);
        }
        *(double *)field = d;
        return TD_OK;
    }
    case TD_CONF_T_BOOL:
        if (td_conf_word_in(value, td_conf_true_words)) {
            *(int *)field = 1;
        } else if (td_conf_word_in(value, td_conf_false_words)) {
            *(int *)field = 0;
        } else {
            return td_conf_err(errstr, errstr_size,
                               "%s: '%s' is not a boolean (use true or false)",
                               prop->name, shown);
        }
        return TD_OK;
    case TD_CONF_T_ENUM: {
        char list[256];
        size_t len = 0;
        for (int i = 0; prop->enums[i]; i++) {
            if (!strcasecmp(value, prop->enums[i])) {
                *(int *)field = i;
                return TD_OK;
            }
        }
        list[0] = '\0';
        for (int i = 0; prop->enums[i] && len < sizeof(list); i++) {
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
                                    i ? ", " : "", prop->enums[i]);
        }
        return td_conf_err(errstr, errstr_size, "%s: '%s' is not one of %s",
                           prop->name, shown, list);
    }
    }
    assert(!"unhandled td_conf_type_t");
    return TD_ERR;
}

/*
 * The value of prop in conf as text: a pointer to the string field itself,
 * or to buf for other types.
 */
static const char *td_conf_prop_str(const td_conf_t *conf,
                                    const td_conf_prop_t *prop,
                                    char *buf,
                                    size_t size) {
    const char *field = (const char *)conf + prop->offset;

    switch (prop->type) {
    case TD_CONF_T_STR:
        return *(char *const *)field ? *(char *const *)field : "";
    case TD_CONF_T_INT:
        snprintf(buf, size, "%d", *(const int *)field);
        return buf;
    case TD_CONF_T_INT64:
        snprintf(buf, size, "%" PRId64, *(const int64_t *)field);
        return buf;
    case TD_CONF_T_DOUBLE:
        td_conf_fmt_double(*(const double *)field, buf, size);
        return buf;
    case TD_CONF_T_BOOL:
        return *(const int *)field ? "true" : "false";
    case TD_CONF_T_ENUM: {
        int i = *(const int *)field;
        for (int k = 0; prop->enums[k]; k++) {
            if (k == i) return prop->enums[k];
        }
        return "?";
    }
    }
    return "?";
}

void td_conf_init(td_conf_t *conf) {
    char errstr[256];

    memset(conf, 0, sizeof(*conf));
    for (const td_conf_prop_t *p = td_conf_properties; p->name; p++) {
        int r = td_conf_prop_set(conf, p, p->sdef, errstr, sizeof(errstr));
        assert(r == TD_OK && "bad default in td_conf_properties[]");
        (void)r;
    }
}

void td_conf_term(td_conf_t *conf) {
    for (const td_conf_prop_t *p = td_conf_properties; p->name; p++) {
        if (p->type == TD_CONF_T_STR) {
            free(*(char **)((char *)conf + p->offset));
        }
    }
    for (size_t i = 0; i < conf->kafka_prop_cnt; i++) {
        free(conf->kafka_props[i].name);
        free(conf->kafka_props[i].value);
    }
    free(conf->kafka_props);
    free(conf->config_file);
    memset(conf, 0, sizeof(*conf));
}

int td_conf_set(td_conf_t *conf,
                const char *name,
                const char *value,
                char *errstr,
                size_t errstr_size) {
    const td_conf_prop_t *prop;

    if (!strncmp(name, "kafka.", 6)) {
        return td_conf_set_kafka(conf, name + 6, value, errstr, errstr_size);
    }
    prop = td_conf_find(name);
    if (!prop) return td_conf_err_unknown(name, errstr, errstr_size);
    return td_conf_prop_set(conf, prop, value, errstr, errstr_size);
}

int td_conf_set_kafka(td_conf_t *conf,
                      const char *name,
                      const char *value,
                      char *errstr,
                      size_t errstr_size) {
    td_kafka_prop_t *props;
    char *v;

    if (!*name) {
        return td_conf_err(errstr, errstr_size, "kafka property name is empty");
    }
    for (const char *c = name; *c; c++) {
        if (*c == '=' || isspace((unsigned char)*c)) {
            return td_conf_err(errstr, errstr_size,
                               "kafka property '%s': bad name", name);
        }
    }
    if (!value) {
        return td_conf_err(errstr, errstr_size,
                           "kafka property '%s': missing value", name);
    }

    v = td_conf_strdup(value);
    for (size_t i = 0; i < conf->kafka_prop_cnt; i++) {
        if (!strcmp(conf->kafka_props[i].name, name)) {
            free(conf->kafka_props[i].value);
            conf->kafka_props[i].value = v;
            return TD_OK;
        }
    }
    props =
        realloc(conf->kafka_props, (conf->kafka_prop_cnt + 1) * sizeof(*props));
    if (!props) abort(); /* See td_conf_strdup(). */
    conf->kafka_props = props;
    props[conf->kafka_prop_cnt].name = td_conf_strdup(name);
    props[conf->kafka_prop_cnt].value = v;
    conf->kafka_prop_cnt++;
    return TD_OK;
}

/* Trims spaces at both ends in place; returns the new start. */
static char *td_conf_trim(char *s) {
    size_t len;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1])) {
        s[--len] = '\0';
    }
    return s;
}

int td_conf_load_file(td_conf_t *conf,
                      const char *path,
                      char *errstr,
                      size_t errstr_size) {
    char msg[512];
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    int r = TD_ERR;
    FILE *fp = fopen(path, "r");

    if (!fp) {
        return td_conf_err(errstr, errstr_size, "%s: %s", path,
                           strerror(errno));
    }
    free(conf->config_file);
    conf->config_file = td_conf_strdup(path);

    while (getline(&line, &cap, fp) != -1) {
        char *key = line, *val, *eq;

        lineno++;
        /* Editors on some systems start UTF-8 files with a BOM. */
        if (lineno == 1 && !strncmp(key, "\xef\xbb\xbf", 3)) {
            key += 3;
        }
        key = td_conf_trim(key);
        if (*key == '\0' || *key == '#') continue;
        /* The line is not echoed: it may hold a password. */
        if (!(eq = strchr(key, '='))) {
            td_conf_err(errstr, errstr_size, "%s:%d: expected name=value", path,
                        lineno);
            goto err;
        }
        *eq = '\0';
        key = td_conf_trim(key);
        val = td_conf_trim(eq + 1);
        if (*key == '\0') {
            td_conf_err(errstr, errstr_size, "%s:%d: missing name before '='",
                        path, lineno);
            goto err;
        }
        if (td_conf_set(conf, key, val, msg, sizeof(msg)) != TD_OK) {
            td_conf_err(errstr, errstr_size, "%s:%d: %s", path, lineno, msg);
            goto err;
        }
    }
    if (ferror(fp)) {
        td_conf_err(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto err;
    }
    r = TD_OK;
err:
    free(line);
    fclose(fp);
    return r;
}

/* The value of variable name in envp, or NULL. */
static const char *td_conf_getenv(char **envp, const char *name) {
    size_t len = strlen(name);

    for (char **e = envp; e && *e; e++) {
        if (!strncmp(*e, name, len) && (*e)[len] == '=') return *e + len + 1;
    }
    return NULL;
}

/*
 * Applies TRUST_<NAME>=value and TRUST_KAFKA_<PROP>=value from envp, in
 * envp order. TRUST_CONFIG is the config file, read by the caller. Unknown
 * TRUST_* names are skipped (see below); a bad value of a known one is an
 * error naming it.
 */
static int td_conf_apply_env(td_conf_t *conf,
                             char **envp,
                             char *errstr,
                             size_t errstr_size) {
    char name[TD_CONF_KAFKA_NAME_MAX];
    char msg[512];

    for (char **e = envp; e && *e; e++) {
        const char *key = *e + 6, *eq;
        size_t len;
        int kafka, r;

        if (strncmp(*e, "TRUST_", 6) || !(eq = strchr(key, '='))) continue;
        len = (size_t)(eq - key);
        if (len == 6 && !strncmp(key, "CONFIG", 6)) continue;
        kafka = len > 6 && !strncmp(key, "KAFKA_", 6);
        if (kafka) {
            key += 6;
            len -= 6;
        }
        if (len >= sizeof(name)) {
            return td_conf_err(errstr, errstr_size,
                               "environment %.*s: name too long",
                               (int)(eq - *e), *e);
        }
        for (size_t i = 0; i < len; i++) {
            char c = (char)tolower((unsigned char)key[i]);
            name[i] = kafka && c == '_' ? '.' : c;
        }
        name[len] = '\0';

        if (kafka) {
            r = td_conf_set_kafka(conf, name, eq + 1, msg, sizeof(msg));
        } else if (strchr(name, '.') || !td_conf_find(name)) {
            /* Not ours: orchestrators inject variables such as
             * TRUST_REDIS_SERVICE_HOST for a service named trust-redis, so
             * an unknown TRUST_* name is ignored rather than fatal. */
            continue;
        } else {
            r = td_conf_set(conf, name, eq + 1, msg, sizeof(msg));
        }
        if (r != TD_OK) {
            return td_conf_err(errstr, errstr_size, "environment %.*s: %s",
                               (int)(eq - *e), *e, msg);
        }
    }
    return TD_OK;
}

typedef enum {
    TD_CONF_ARG_SET,    /* --name [VALUE] */
    TD_CONF_ARG_KAFKA,  /* -X PROP=VALUE */
    TD_CONF_ARG_CONFIG, /* --config FILE */
    TD_CONF_ARG_HELP,   /* -h, --help */
    TD_CONF_ARG_PRINT,  /* --print-config */
    TD_CONF_ARG_REST,   /* not an option */
    TD_CONF_ARG_ENDOPT, /* -- */
} td_conf_argkind_t;

/* One command-line option (or non-option) and the argv entries it used. */
typedef struct td_conf_arg_s {
    td_conf_argkind_t kind;
    int used;                          /* argv entries consumed, 1 or 2 */
    const td_conf_prop_t *prop;        /* SET */
    char name[TD_CONF_KAFKA_NAME_MAX]; /* KAFKA: property name */
    const char *value;                 /* SET, KAFKA, CONFIG, REST */
} td_conf_arg_t;

/* Parses the option at argv[i] (i < argc) into *arg. */
static int td_conf_arg_parse(int argc,
                             char **argv,
                             int i,
                             unsigned prog,
                             td_conf_arg_t *arg,
                             char *errstr,
                             size_t errstr_size) {
    const char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    char name[TD_CONF_NAME_MAX];
    const char *body, *eq;
    size_t len;

    arg->used = 1;
    arg->prop = NULL;
    arg->name[0] = '\0';
    arg->value = NULL;

    if (a[0] != '-' || a[1] == '\0') {
        arg->kind = TD_CONF_ARG_REST;
        arg->value = a;
        return TD_OK;
    }
    if (!strcmp(a, "--")) {
        arg->kind = TD_CONF_ARG_ENDOPT;
        return TD_OK;
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        arg->kind = TD_CONF_ARG_HELP;
        return TD_OK;
    }

    if (a[1] == 'X') {
        const char *kv = a + 2;
        if (*kv == '\0') {
            if (!next) {
                return td_conf_err(errstr, errstr_size,
                                   "-X: missing PROP=VALUE");
            }
            kv = next;
            arg->used = 2;
        }
        eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            return td_conf_err(errstr, errstr_size, "-X: expected PROP=VALUE");
        }
        len = (size_t)(eq - kv);
        if (len >= sizeof(arg->name)) {
            return td_conf_err(errstr, errstr_size,
                               "-X: property name too long");
        }
        memcpy(arg->name, kv, len);
        arg->name[len] = '\0';
        arg->value = eq + 1;
        arg->kind = TD_CONF_ARG_KAFKA;
        return TD_OK;
    }
    if (a[1] != '-') {
        return td_conf_err(errstr, errstr_size, "unknown option '%s'", a);
    }

    body = a + 2;
    eq = strchr(body, '=');
    len = eq ? (size_t)(eq - body) : strlen(body);
    if (len >= sizeof(name)) {
        return td_conf_err(errstr, errstr_size, "unknown option '%.*s'",
                           (int)(len + 2), a);
    }
    for (size_t k = 0; k < len; k++) {
        name[k] = (char)td_conf_name_char(body[k]);
    }
    name[len] = '\0';

    if (!strcmp(name, "print_config")) {
        if (eq) {
            return td_conf_err(errstr, errstr_size,
                               "--print-config takes no value");
        }
        arg->kind = TD_CONF_ARG_PRINT;
        return TD_OK;
    }

    if (!strcmp(name, "config")) {
        arg->kind = TD_CONF_ARG_CONFIG;
    } else {
        arg->kind = TD_CONF_ARG_SET;
        arg->prop = td_conf_find(name);
        if (!arg->prop) return td_conf_err_unknown(name, errstr, errstr_size);
        if (!(arg->prop->flags & prog)) {
            return td_conf_err(errstr, errstr_size,
                               "setting '%s' is not used by %s", name,
                               td_conf_prog_name(prog));
        }
        if (arg->prop->flags & TD_CONF_NOFLAG) {
            /* A flag's value shows in ps to every user of the host. */
            return td_conf_err(errstr, errstr_size,
                               "setting '%s' cannot be a flag: set it in the "
                               "config file or the environment",
                               name);
        }
    }

    if (eq) {
        arg->value = eq + 1;
    } else if (arg->prop && arg->prop->type == TD_CONF_T_BOOL) {
        /* Bare means true; only an explicit boolean word is taken along. */
        if (next && (td_conf_word_in(next, td_conf_true_words) ||
                     td_conf_word_in(next, td_conf_false_words))) {
            arg->value = next;
            arg->used = 2;
        } else {
            arg->value = "true";
        }
    } else if (next) {
        arg->value = next;
        arg->used = 2;
    } else {
        return td_conf_err(errstr, errstr_size, "%s: missing value", a);
    }
    return TD_OK;
}

int td_conf_load(td_conf_t *conf,
                 unsigned prog,
                 int argc,
                 char **argv,
                 char **envp,
                 int *want_help,
                 int *want_print,
                 char ***rest,
                 int *rest_cnt,
                 char *errstr,
                 size_t errstr_size) {
    td_conf_arg_t arg;
    char **opts = NULL, **nonopts = NULL;
    const char *config = NULL;
    int nopt = 0, nrest = 0, endopt = 0;
    int r = TD_ERR;

    if (want_help) {
        *want_help = 0;
    }
    if (want_print) {
        *want_print = 0;
    }
    if (rest) {
        *rest = argv ? argv + (argc > 0 ? argc : 0) : NULL;
    }
    if (rest_cnt) {
        *rest_cnt = 0;
    }

    opts = malloc(sizeof(*opts) * (size_t)(argc > 0 ? argc : 1));
    nonopts = malloc(sizeof(*nonopts) * (size_t)(argc > 0 ? argc : 1));
    if (!opts || !nonopts) abort(); /* See td_conf_strdup(). */

    /*
     * Pass 1: check the command line's shape and find --config, --help and
     * the non-options. Values are applied in pass 2, after the file and the
     * environment, which flags override.
     */
    for (int i = 1; i < argc; i += arg.used) {
        if (endopt) {
            arg.kind = TD_CONF_ARG_REST;
            arg.used = 1;
        } else if (td_conf_arg_parse(argc, argv, i, prog, &arg, errstr,
                                     errstr_size) != TD_OK) {
            goto err;
        }
        switch (arg.kind) {
        case TD_CONF_ARG_HELP:
            if (!want_help) {
                td_conf_err(errstr, errstr_size, "unknown option '%s'",
                            argv[i]);
                goto err;
            }
            /* Help must work even when the rest would not. */
            *want_help = 1;
            r = TD_OK;
            goto err;
        case TD_CONF_ARG_PRINT:
            if (!want_print) {
                td_conf_err(errstr, errstr_size, "unknown option '%s'",
                            argv[i]);
                goto err;
            }
            *want_print = 1;
            break;
        case TD_CONF_ARG_CONFIG:
            config = arg.value;
            break;
        case TD_CONF_ARG_ENDOPT:
            endopt = 1;
            break;
        case TD_CONF_ARG_REST:
            if (!rest) {
                td_conf_err(errstr, errstr_size, "unexpected argument '%s'",
                            argv[i]);
                goto err;
            }
            nonopts[nrest++] = argv[i];
            continue;
        case TD_CONF_ARG_SET:
        case TD_CONF_ARG_KAFKA:
            break;
        }
        for (int k = 0; k < arg.used; k++) {
            opts[nopt++] = argv[i + k];
        }
    }

    if (!config) {
        config = td_conf_getenv(envp, "TRUST_CONFIG");
    }
    if (config && *config &&
        td_conf_load_file(conf, config, errstr, errstr_size) != TD_OK) {
        goto err;
    }
    if (td_conf_apply_env(conf, envp, errstr, errstr_size) != TD_OK) goto err;

    /* Pass 2: the flags themselves. Pass 1 vouched for their shape. */
    for (int i = 1; i < argc; i += arg.used) {
        if (td_conf_arg_parse(argc, argv, i, prog, &arg, errstr, errstr_size) !=
            TD_OK) {
            goto err;
        }
        if (arg.kind == TD_CONF_ARG_SET &&
            td_conf_prop_set(conf, arg.prop, arg.value, errstr, errstr_size) !=
                TD_OK) {
            goto err;
        }
        if (arg.kind == TD_CONF_ARG_KAFKA &&
            td_conf_set_kafka(conf, arg.name, arg.value, errstr, errstr_size) !=
                TD_OK) {
            goto err;
        }
        if (arg.kind == TD_CONF_ARG_ENDOPT) break;
    }

    /* Options first, then the non-options in order, as GNU getopt does. */
    if (nopt > 0) {
        memcpy(argv + 1, opts, sizeof(*argv) * (size_t)nopt);
    }
    if (nrest > 0) {
        memcpy(argv + 1 + nopt, nonopts, sizeof(*argv) * (size_t)nrest);
    }
    if (rest && argc > 0) {
        *rest = argv + 1 + nopt;
    }
    if (rest_cnt) {
        *rest_cnt = nrest;
    }
    r = TD_OK;
err:
    free(opts);
    free(nonopts);
    return r;
}

/* Writes text word-wrapped to 80 columns, every line indented by indent. */
static void td_conf_wrap(FILE *fp, int indent, const char *text) {
    int col = 0;

    while (*text) {
        const char *w = text;
        int wlen;

        while (*text && *text != ' ') {
            text++;
        }
        wlen = (int)(text - w);
        if (col > indent && col + 1 + wlen > 80) {
            fputc('\n', fp);
            col = 0;
        }
        if (col == 0) {
            col = fprintf(fp, "%*s%.*s", indent, "", wlen, w);
        } else {
            col += fprintf(fp, " %.*s", wlen, w);
        }
        while (*text == ' ') {
            text++;
        }
    }
    if (col > 0) {
        fputc('\n', fp);
    }
}

static const char *td_conf_type_name(td_conf_type_t type) {
    switch (type) {
    case TD_CONF_T_STR:
        return "string";
    case TD_CONF_T_INT:
        return "int";
    case TD_CONF_T_INT64:
        return "int64";
    case TD_CONF_T_DOUBLE:
        return "double";
    case TD_CONF_T_BOOL:
        return "bool";
    case TD_CONF_T_ENUM:
        return "enum";
    }
    return "?";
}

/* "1..600000", ">= 0", the allowed enum values, or "" when unbounded. */
static const char *td_conf_range_str(const td_conf_prop_t *prop,
                                     const char *sep,
                                     char *buf,
                                     size_t size) {
    char lo[32], hi[32];
    size_t len = 0;

    buf[0] = '\0';
    switch (prop->type) {
    case TD_CONF_T_INT:
    case TD_CONF_T_INT64:
        if (prop->vmax == INT64_MAX && prop->vmin > INT64_MIN) {
            snprintf(buf, size, ">= %" PRId64, prop->vmin);
        } else if (prop->vmax != INT64_MAX || prop->vmin != INT64_MIN) {
            snprintf(buf, size, "%" PRId64 "..%" PRId64, prop->vmin,
                     prop->vmax);
        }
        break;
    case TD_CONF_T_DOUBLE:
        td_conf_fmt_double(prop->dmin, lo, sizeof(lo));
        td_conf_fmt_double(prop->dmax, hi, sizeof(hi));
        snprintf(buf, size, "%s..%s", lo, hi);
        break;
    case TD_CONF_T_ENUM:
        for (int i = 0; prop->enums[i] && len < size; i++) {
            len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? sep : "",
                                    prop->enums[i]);
        }
        break;
    case TD_CONF_T_STR:
    case TD_CONF_T_BOOL:
        break;
    }
    return buf;
}

void td_conf_usage(FILE *fp, unsigned prog, const char *progname) {
    char flag[TD_CONF_NAME_MAX + 16];
    char env[TD_CONF_NAME_MAX + 16];
    char range[256];
    char text[1024];

    fprintf(fp, "Usage: %s [OPTIONS]%s\n\n", progname,
            prog & TD_CONF_TRUSTCTL ? " [ARGS...]" : "");
    td_conf_wrap(fp, 0,
                 "Every setting below can also be set as environment variable "
                 "TRUST_<NAME> (upper case, underscores) or as name=value in "
                 "the config file. Flags override the environment, which "
                 "overrides the file, which overrides the defaults. Flag "
                 "names take dashes or underscores.");
    fputs("\n"
          "  -h, --help\n"
          "        Print this help and exit.\n"
          "  --print-config\n"
          "        Print the effective configuration and exit.\n"
          "  --config FILE\n"
          "        Config file to read (default: $TRUST_CONFIG, else none).\n"
          "  -X PROP=VALUE\n",
          fp);
    td_conf_wrap(fp, 8,
                 "Set a librdkafka property. In the config file: "
                 "kafka.PROP=VALUE; in the environment: TRUST_KAFKA_PROP with "
                 "'_' for '.'.");
    fputc('\n', fp);

    for (const td_conf_prop_t *p = td_conf_properties; p->name; p++) {
        const char *meta = "";
        size_t len = 0;

        if (!(p->flags & prog)) continue;
        for (size_t k = 0; p->name[k] && len + 1 < sizeof(flag); k++) {
            flag[len] = p->name[k] == '_' ? '-' : p->name[k];
            env[len] = (char)toupper((unsigned char)p->name[k]);
            len++;
        }
        flag[len] = '\0';
        env[len] = '\0';
        td_conf_range_str(p, "|", range, sizeof(range));

        switch (p->type) {
        case TD_CONF_T_STR:
            meta = " STRING";
            break;
        case TD_CONF_T_INT:
        case TD_CONF_T_INT64:
            meta = " N";
            break;
        case TD_CONF_T_DOUBLE:
            meta = " NUM";
            break;
        case TD_CONF_T_BOOL:
            meta = "[=BOOL]";
            break;
        case TD_CONF_T_ENUM:
            meta = " ";
            break;
        }
        if (p->flags & TD_CONF_NOFLAG) {
            /* No flag to show: the variable and the file key. */
            fprintf(fp, "  TRUST_%s=%s (environment or config file only)\n",
                    env, meta + 1);
        } else {
            fprintf(fp, "  --%s%s%s\n", flag, meta,
                    p->type == TD_CONF_T_ENUM ? range : "");
        }
        len = (size_t)snprintf(
            text, sizeof(text), "%s.%s%s%s Default: %s.", p->desc,
            p->type != TD_CONF_T_ENUM && *range ? " Range " : "",
            p->type != TD_CONF_T_ENUM ? range : "",
            p->type != TD_CONF_T_ENUM && *range ? "." : "",
            *p->sdef ? p->sdef : "(empty)");
        if ((p->flags & TD_CONF_SECRET) && !(p->flags & TD_CONF_NOFLAG) &&
            len < sizeof(text)) {
            /* Other users can read a process' flags with ps. */
            snprintf(text + len, sizeof(text) - len,
                     " Secret: prefer TRUST_%s or the config file.", env);
        }
        td_conf_wrap(fp, 8, text);
    }
}

static int td_conf_kafka_is_secret(const char *name) {
    char lower[TD_CONF_KAFKA_NAME_MAX];
    size_t k;

    for (k = 0; name[k] && k + 1 < sizeof(lower); k++) {
        lower[k] = (char)tolower((unsigned char)name[k]);
    }
    lower[k] = '\0';
    for (const char *const *s = td_conf_kafka_secrets; *s; s++) {
        if (strstr(lower, *s)) return 1;
    }
    /* A name too long to lowercase whole is masked rather than guessed. */
    return name[k] != '\0';
}

void td_conf_print(const td_conf_t *conf, FILE *fp) {
    char buf[64];

    fprintf(fp, "# effective configuration; config file: %s\n",
            conf->config_file ? conf->config_file : "(none)");
    for (const td_conf_prop_t *p = td_conf_properties; p->name; p++) {
        const char *v = td_conf_prop_str(conf, p, buf, sizeof(buf));
        if ((p->flags & TD_CONF_SECRET) && *v) {
            v = "****";
        }
        fprintf(fp, "%s=%s\n", p->name, v);
    }
    for (size_t i = 0; i < conf->kafka_prop_cnt; i++) {
        const td_kafka_prop_t *kp = &conf->kafka_props[i];
        const char *v = kp->value;
        if (*v && td_conf_kafka_is_secret(kp->name)) {
            v = "****";
        }
        fprintf(fp, "kafka.%s=%s\n", kp->name, v);
    }
}

/* Writes s for a Markdown table cell: '|' escaped. */
static void td_conf_md_cell(FILE *fp, const char *s) {
    for (; *s; s++) {
        if (*s == '|') {
            fputc('\\', fp);
        }
        fputc(*s, fp);
    }
}

void td_conf_reference_md(FILE *fp) {
    char range[256];

    fputs("## Configuration reference\n"
          "\n"
          "<!-- Generated from td_conf_properties[] in processor/conf.c by "
          "td_conf_reference_md(); do not edit by hand. -->\n"
          "\n"
          "Each setting `name` can be given as the flag `--name VALUE` "
          "(dashes or underscores), as the environment variable "
          "`TRUST_NAME`, or as `name=value` in the config file "
          "(`--config FILE` or `TRUST_CONFIG`). Flags override the "
          "environment, which overrides the file. librdkafka properties "
          "pass through as `-X prop=value`, `kafka.prop=value` in the file "
          "or `TRUST_KAFKA_PROP` (`_` becomes `.`).\n"
          "\n"
          "| Setting | Type | Default | Range | Used by | Description |\n"
          "|---|---|---|---|---|---|\n",
          fp);
    for (const td_conf_prop_t *p = td_conf_properties; p->name; p++) {
        fprintf(fp, "| `%s` | %s | ", p->name, td_conf_type_name(p->type));
        if (*p->sdef) {
            fputc('`', fp);
            td_conf_md_cell(fp, p->sdef);
            fputc('`', fp);
        }
        fputs(" | ", fp);
        td_conf_md_cell(fp, td_conf_range_str(p, ", ", range, sizeof(range)));
        fprintf(fp, " | %s%s%s | ", p->flags & TD_CONF_TRUSTD ? "trustd" : "",
                (p->flags & TD_CONF_BOTH) == TD_CONF_BOTH ? ", " : "",
                p->flags & TD_CONF_TRUSTCTL ? "trustctl" : "");
        td_conf_md_cell(fp, p->desc);
        fputs(p->flags & TD_CONF_SECRET ? " (secret: masked when printed)" : "",
              fp);
        fputs(" |\n", fp);
    }
}
