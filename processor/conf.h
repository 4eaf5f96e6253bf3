/*
 * conf.h - configuration of trustd and trustctl.
 *
 * td_conf_t holds every setting as a plain C field named like the setting.
 * The settings themselves (type, range, default, help) are one table in
 * conf.c, td_conf_properties[], in the manner of librdkafka's
 * rd_kafka_properties[] and Redis' static_configs[]: the generic setter, the
 * --help text, td_conf_print() and the README reference all walk it.
 *
 * Sources, strongest first: command-line flags, the environment
 * (TRUST_<NAME>), the config file (--config FILE or TRUST_CONFIG), defaults.
 * librdkafka properties pass through as an ordered list of name/value pairs:
 * "-X prop=value", "kafka.prop=value" in the file, TRUST_KAFKA_PROP in the
 * environment ('_' becomes '.').
 *
 * Threads: nothing here locks. Load the configuration at startup on one
 * thread; afterwards a td_conf_t may be read from any thread.
 */
#ifndef TD_CONF_H
#define TD_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Property flags; TD_CONF_TRUSTD and TD_CONF_TRUSTCTL double as `prog`. */
#define TD_CONF_TRUSTD   0x1 /* used by trustd */
#define TD_CONF_TRUSTCTL 0x2 /* used by trustctl */
#define TD_CONF_SECRET   0x4 /* printed as "****" */
#define TD_CONF_NOFLAG   0x8 /* file or environment only: not seen in ps */

/* log_level values are the TD_LOG_* levels of log.h. */

/* One librdkafka property, passed to rd_kafka_conf_set() as is. */
typedef struct td_kafka_prop_s {
    char *name;
    char *value;
} td_kafka_prop_t;

/*
 * Effective configuration. Strings are owned by the struct (never NULL after
 * td_conf_init(), possibly ""); bools are 0/1; enums are indexes.
 */
/* redis_module: whether merchant writes use the trustd Redis module's
 * native commands (store.h). */
#define TD_REDIS_MODULE_AUTO 0 /* when the server has them */
#define TD_REDIS_MODULE_LUA  1 /* never: the function library */
#define TD_REDIS_MODULE_REQUIRE                                                \
    2 /* always: a server without them is an                                   \
       * error at connect */

typedef struct td_conf_s {
    /* Kafka */
    char *brokers;
    char *group;
    char *topic_orders;
    char *topic_reviews;
    char *topic_refunds;
    char *topic_scores;
    char *topic_dlq;
    /* Redis */
    char *redis;
    int redis_cluster;
    int redis_module; /* TD_REDIS_MODULE_* */
    char *redis_user;
    char *redis_password;
    int redis_connect_timeout_ms;
    int redis_command_timeout_ms;
    int redis_retry_max_ms;
    /* Processing */
    int flush_interval_ms;
    int flush_max_events;
    int64_t flush_behind_lag;
    int flush_max_events_behind;
    int flush_interval_behind_ms;
    int max_merchants;
    double publish_min_step;
    int publish_max_interval_ms;
    int sweep_merchants_per_s;
    int64_t sweep_quiet_ms;
    char *model_file;
    int64_t min_event_time_ms;
    int64_t max_future_skew_ms;
    int max_message_bytes;
    /* Confluent-framed events */
    char *schema_registry_url;
    char *schema_registry_user;
    char *schema_registry_password;
    int schema_registry_timeout_ms;
    int schema_registry_retry_max_ms;
    char *schema_map_file;
    /* Operations */
    char *http_addr;
    int http_port;
    int stall_timeout_ms;
    int log_level; /* TD_LOG_DEBUG .. TD_LOG_WARNING */
    int log_json;
    int log_error_interval_ms;
    int shutdown_timeout_ms;
    /* trustctl */
    int json;
    char *listen;      /* trustctl serve: host:port of the page */
    char *serve_token; /* trustctl serve: bearer token ("" none) */
    /* librdkafka passthrough, in first-set order; later sets replace. */
    td_kafka_prop_t *kafka_props;
    size_t kafka_prop_cnt;
    /* The config file that was loaded, or NULL. */
    char *config_file;
} td_conf_t;

/*
 * Sets every field to its default. Aborts only if memory runs out (like Redis
 * zmalloc); a default that fails to parse is our bug and asserts.
 */
void td_conf_init(td_conf_t *conf);

/* Frees what conf owns and zeroes it; td_conf_init() may follow. */
void td_conf_term(td_conf_t *conf);

/*
 * Parses value for setting name ('-' and '_' are the same in names;
 * "kafka.PROP" goes to td_conf_set_kafka()), checks type and range and stores
 * it. The caller keeps name and value. On error returns TD_ERR, leaves conf
 * unchanged and writes e.g. "flush_interval_ms: 0 is below the minimum 1" or
 * "unknown setting 'fush_interval_ms' (did you mean 'flush_interval_ms'?)"
 * to errstr. Returns TD_OK otherwise.
 */
int td_conf_set(td_conf_t *conf,
                const char *name,
                const char *value,
                char *errstr,
                size_t errstr_size);

/*
 * Adds or replaces the librdkafka property name (kept in its first position).
 * Property names are not checked against librdkafka here; rd_kafka_conf_set()
 * does that. Returns TD_ERR only for an empty name or one containing '=' or
 * whitespace.
 */
int td_conf_set_kafka(td_conf_t *conf,
                      const char *name,
                      const char *value,
                      char *errstr,
                      size_t errstr_size);

/*
 * Applies a config file: "name = value" lines (spaces around either are
 * trimmed), "kafka.PROP = value" lines, blank lines and lines starting with
 * '#'. A '#' after a value is part of the value. Stops at the first bad line;
 * errors read "PATH:LINE: message". Records path in conf->config_file.
 */
int td_conf_load_file(td_conf_t *conf,
                      const char *path,
                      char *errstr,
                      size_t errstr_size);

/*
 * Applies the whole precedence chain on an initialized conf: config file
 * (--config FILE, else TRUST_CONFIG), then TRUST_* variables from envp (may
 * be NULL), then flags from argv (argv[0] is skipped).
 *
 * Flags: --name VALUE, --name=VALUE, with '-' or '_' in the name; a bool may
 * be bare (--redis-cluster) or followed by true/false. -X PROP=VALUE (or
 * -XPROP=VALUE) sets a librdkafka property. --config FILE. "--" ends options.
 * A flag for a setting the program `prog` (TD_CONF_TRUSTD or
 * TD_CONF_TRUSTCTL) does not use is an error; the file and environment may
 * hold settings for either program.
 *
 * -h/--help sets *want_help and returns TD_OK at once, without reading the
 * file or applying anything (flags before it must still be well-formed).
 * --print-config sets *want_print. Non-option arguments are allowed anywhere
 * (GNU style); argv is permuted so they come last, in their order, and *rest
 * points at them inside argv (NULL-terminated, *rest_cnt of them). When rest
 * is NULL they are an error; when want_help/want_print is NULL that flag is
 * unknown.
 *
 * Returns TD_OK, or TD_ERR with the reason in errstr (conf may then be partly
 * updated; argv is untouched).
 */
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
                 size_t errstr_size);

/* Writes the --help text for prog (a mask of TD_CONF_TRUSTD/TRUSTCTL). */
void td_conf_usage(FILE *fp, unsigned prog, const char *progname);

/*
 * Writes the effective configuration as a config file (name=value, then
 * kafka.PROP=value), secrets as "****" (empty secrets stay empty).
 */
void td_conf_print(const td_conf_t *conf, FILE *fp);

/* Writes the settings reference as a Markdown section for the README. */
void td_conf_reference_md(FILE *fp);

#endif
