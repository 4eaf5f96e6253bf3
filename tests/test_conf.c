/*
 * test_conf.c - unit tests for processor/conf.c: defaults, the precedence
 * chain (flag > environment > file > default), parse and range errors for
 * every type, config file errors, librdkafka passthrough, secret masking and
 * the generated --help and reference.
 *
 * Every test builds its own argv and envp arrays, so the real environment
 * never leaks in; config files are temporary files removed in teardown.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "conf.h"
#include "log.h"

typedef struct fixture_s {
    td_conf_t conf;
    char path[64]; /* temporary config file, "" if none */
    char errstr[512];
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    td_conf_init(&f->conf);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;

    td_conf_term(&f->conf);
    if (f->path[0]) unlink(f->path);
    free(f);
    return 0;
}

/* Writes content to the fixture's temporary config file. */
static const char *write_file(fixture_t *f, const char *content) {
    int fd;

    if (!f->path[0]) {
        snprintf(f->path, sizeof(f->path), "/tmp/test_conf_XXXXXX");
        fd = mkstemp(f->path);
    } else {
        fd = open(f->path, O_WRONLY | O_TRUNC);
    }
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)),
                     (ssize_t)strlen(content));
    close(fd);
    return f->path;
}

static int argv_len(char **argv) {
    int n = 0;

    while (argv[n]) {
        n++;
    }
    return n;
}

/* td_conf_load() for trustd with the fixture's conf and errstr. */
static int load(fixture_t *f, char **argv, char **envp) {
    int help = 0, print = 0, rest_cnt = 0;
    char **rest = NULL;

    return td_conf_load(&f->conf, TD_CONF_TRUSTD, argv_len(argv), argv, envp,
                        &help, &print, &rest, &rest_cnt, f->errstr,
                        sizeof(f->errstr));
}

static void reset(fixture_t *f) {
    td_conf_term(&f->conf);
    td_conf_init(&f->conf);
    f->errstr[0] = '\0';
}

/* td_conf_print() output as a string (caller frees). */
static char *capture_print(const td_conf_t *conf) {
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    assert_non_null(fp);
    td_conf_print(conf, fp);
    fclose(fp);
    return buf;
}

static char *capture_usage(unsigned prog, const char *progname) {
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    assert_non_null(fp);
    td_conf_usage(fp, prog, progname);
    fclose(fp);
    return buf;
}

static char *capture_reference(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    assert_non_null(fp);
    td_conf_reference_md(fp);
    fclose(fp);
    return buf;
}

/* Calls td_conf_set() expecting failure with exactly want as errstr. */
static void expect_set_error(fixture_t *f,
                             const char *name,
                             const char *value,
                             const char *want) {
    assert_int_equal(
        td_conf_set(&f->conf, name, value, f->errstr, sizeof(f->errstr)),
        TD_ERR);
    assert_string_equal(f->errstr, want);
}

static void expect_set_ok(fixture_t *f, const char *name, const char *value) {
    int r = td_conf_set(&f->conf, name, value, f->errstr, sizeof(f->errstr));

    if (r != TD_OK) fail_msg("%s=%s: %s", name, value, f->errstr);
}


static void test_conf_init_sets_documented_defaults(void **state) {
    fixture_t *f = *state;
    td_conf_t *c = &f->conf;

    assert_string_equal(c->brokers, "127.0.0.1:9092");
    assert_string_equal(c->group, "trustd");
    assert_string_equal(c->topic_orders, "orders");
    assert_string_equal(c->topic_reviews, "reviews");
    assert_string_equal(c->topic_refunds, "refunds");
    assert_string_equal(c->topic_scores, "trust-scores");
    assert_string_equal(c->topic_dlq, "trust-dlq");
    assert_string_equal(c->redis, "127.0.0.1:6379");
    assert_int_equal(c->redis_cluster, 0);
    assert_string_equal(c->redis_user, "");
    assert_string_equal(c->redis_password, "");
    assert_int_equal(c->redis_connect_timeout_ms, 2000);
    assert_int_equal(c->redis_command_timeout_ms, 5000);
    assert_int_equal(c->redis_retry_max_ms, 5000);
    assert_int_equal(c->flush_interval_ms, 250);
    assert_int_equal(c->flush_max_events, 20000);
    assert_int_equal(c->max_merchants, 200000);
    assert_true(c->publish_min_step == 0.5);
    assert_int_equal(c->publish_max_interval_ms, 300000);
    assert_string_equal(c->model_file, ""); /* the built-in model */
    assert_true(c->min_event_time_ms == INT64_C(1420070400000));
    assert_true(c->max_future_skew_ms == 300000);
    assert_int_equal(c->max_message_bytes, 65536);
    assert_string_equal(c->http_addr, "127.0.0.1");
    assert_int_equal(c->http_port, 9464);
    assert_int_equal(c->stall_timeout_ms, 60000);
    assert_int_equal(c->log_level, TD_LOG_NOTICE);
    assert_int_equal(c->log_json, 0);
    assert_int_equal(c->log_error_interval_ms, 10000);
    assert_int_equal(c->shutdown_timeout_ms, 8000);
    assert_int_equal(c->json, 0);
    assert_null(c->kafka_props);
    assert_int_equal(c->kafka_prop_cnt, 0);
    assert_null(c->config_file);
}

static void test_conf_flag_beats_env_beats_file_beats_default(void **state) {
    fixture_t *f = *state;
    char cfg[128];
    const char *path = write_file(f, "flush_interval_ms = 300\n");
    char *argv_flag[] = {"trustd", "--flush-interval-ms", "500", NULL};
    char *argv_none[] = {"trustd", NULL};
    char *env_all[] = {cfg, "TRUST_FLUSH_INTERVAL_MS=400", NULL};
    char *env_file[] = {cfg, NULL};
    char *env_none[] = {"HOME=/nonexistent", NULL};

    snprintf(cfg, sizeof(cfg), "TRUST_CONFIG=%s", path);

    assert_int_equal(load(f, argv_flag, env_all), TD_OK);
    assert_int_equal(f->conf.flush_interval_ms, 500);
    assert_string_equal(f->conf.config_file, path);

    reset(f);
    assert_int_equal(load(f, argv_none, env_all), TD_OK);
    assert_int_equal(f->conf.flush_interval_ms, 400);

    reset(f);
    assert_int_equal(load(f, argv_none, env_file), TD_OK);
    assert_int_equal(f->conf.flush_interval_ms, 300);

    reset(f);
    assert_int_equal(load(f, argv_none, env_none), TD_OK);
    assert_int_equal(f->conf.flush_interval_ms, 250);
    assert_null(f->conf.config_file);
}

static void test_conf_config_flag_beats_trust_config(void **state) {
    fixture_t *f = *state;
    const char *path = write_file(f, "group=from-flag-file\n");
    char *argv[] = {"trustd", "--config", (char *)path, NULL};
    char *envp[] = {"TRUST_CONFIG=/nonexistent/trust.conf", NULL};

    assert_int_equal(load(f, argv, envp), TD_OK);
    assert_string_equal(f->conf.group, "from-flag-file");
}

static void test_conf_missing_config_file_names_path(void **state) {
    fixture_t *f = *state;
    char *argv[] = {"trustd", NULL};
    char *envp[] = {"TRUST_CONFIG=/nonexistent/trust.conf", NULL};

    assert_int_equal(load(f, argv, envp), TD_ERR);
    assert_string_equal(f->errstr,
                        "/nonexistent/trust.conf: No such file or directory");
}

static void test_conf_int_rejects_non_integers(void **state) {
    fixture_t *f = *state;

    expect_set_error(f, "redis_command_timeout_ms", "abc",
                     "redis_command_timeout_ms: 'abc' is not an integer");
    expect_set_error(f, "redis_command_timeout_ms", "12ms",
                     "redis_command_timeout_ms: '12ms' is not an integer");
    expect_set_error(f, "redis_command_timeout_ms", "",
                     "redis_command_timeout_ms: '' is not an integer");
    expect_set_error(f, "redis_command_timeout_ms", " 12",
                     "redis_command_timeout_ms: ' 12' is not an integer");
    expect_set_error(f, "redis_command_timeout_ms", "1.5",
                     "redis_command_timeout_ms: '1.5' is not an integer");
    assert_int_equal(f->conf.redis_command_timeout_ms, 5000);
}

static void test_conf_int_rejects_values_out_of_range(void **state) {
    fixture_t *f = *state;

    expect_set_error(f, "flush_interval_ms", "0",
                     "flush_interval_ms: 0 is below the minimum 1");
    expect_set_error(f, "http_port", "65536",
                     "http_port: 65536 is above the maximum 65535");
    expect_set_error(f, "redis_retry_max_ms", "-5",
                     "redis_retry_max_ms: -5 is below the minimum 10");
    /* Beyond int64: must not wrap or clamp into range. */
    expect_set_error(f, "flush_max_events", "99999999999999999999",
                     "flush_max_events: 99999999999999999999 is above the "
                     "maximum 10000000");
    assert_int_equal(f->conf.flush_interval_ms, 250);
    assert_int_equal(f->conf.http_port, 9464);

    expect_set_ok(f, "flush_interval_ms", "1");
    expect_set_ok(f, "http_port", "0");
    assert_int_equal(f->conf.flush_interval_ms, 1);
    assert_int_equal(f->conf.http_port, 0);
}

static void
test_conf_int64_parses_full_range_and_rejects_overflow(void **state) {
    fixture_t *f = *state;

    expect_set_ok(f, "min_event_time_ms", "9223372036854775807");
    assert_true(f->conf.min_event_time_ms == INT64_MAX);
    expect_set_error(f, "max_future_skew_ms", "9223372036854775808",
                     "max_future_skew_ms: 9223372036854775808 is above the "
                     "maximum 9223372036854775807");
    expect_set_error(f, "max_future_skew_ms", "-1",
                     "max_future_skew_ms: -1 is below the minimum 0");
    expect_set_error(f, "min_event_time_ms", "yesterday",
                     "min_event_time_ms: 'yesterday' is not an integer");
    assert_true(f->conf.max_future_skew_ms == 300000);
}

static void test_conf_double_rejects_non_numbers_and_range(void **state) {
    fixture_t *f = *state;

    expect_set_error(f, "publish_min_step", "fast",
                     "publish_min_step: 'fast' is not a number");
    expect_set_error(f, "publish_min_step", "nan",
                     "publish_min_step: 'nan' is not a number");
    expect_set_error(f, "publish_min_step", "1e999",
                     "publish_min_step: '1e999' is not a number");
    expect_set_error(f, "publish_min_step", "100.5",
                     "publish_min_step: 100.5 is above the maximum 100");
    expect_set_error(f, "publish_min_step", "-0.1",
                     "publish_min_step: -0.1 is below the minimum 0");
    assert_true(f->conf.publish_min_step == 0.5);
    expect_set_ok(f, "publish_min_step", "2.25");
    assert_true(f->conf.publish_min_step == 2.25);
}

static void test_conf_bool_accepts_words_and_rejects_others(void **state) {
    fixture_t *f = *state;

    expect_set_ok(f, "redis_cluster", "yes");
    assert_int_equal(f->conf.redis_cluster, 1);
    expect_set_ok(f, "redis_cluster", "OFF");
    assert_int_equal(f->conf.redis_cluster, 0);
    expect_set_ok(f, "redis_cluster", "1");
    assert_int_equal(f->conf.redis_cluster, 1);
    expect_set_error(f, "redis_cluster", "maybe",
                     "redis_cluster: 'maybe' is not a boolean (use true or "
                     "false)");
    assert_int_equal(f->conf.redis_cluster, 1);
}

static void test_conf_enum_maps_names_to_log_levels(void **state) {
    fixture_t *f = *state;

    expect_set_ok(f, "log_level", "debug");
    assert_int_equal(f->conf.log_level, TD_LOG_DEBUG);
    expect_set_ok(f, "log_level", "WARNING");
    assert_int_equal(f->conf.log_level, TD_LOG_WARNING);
    expect_set_ok(f, "log_level", "verbose");
    assert_int_equal(f->conf.log_level, TD_LOG_VERBOSE);
    expect_set_error(f, "log_level", "loud",
                     "log_level: 'loud' is not one of debug, verbose, "
                     "notice, warning");
    assert_int_equal(f->conf.log_level, TD_LOG_VERBOSE);
}

static void test_conf_string_accepts_anything_including_empty(void **state) {
    fixture_t *f = *state;

    expect_set_ok(f, "redis", "/run/redis.sock");
    assert_string_equal(f->conf.redis, "/run/redis.sock");
    expect_set_ok(f, "group", "");
    assert_string_equal(f->conf.group, "");
}

static void test_conf_unknown_setting_suggests_closest(void **state) {
    fixture_t *f = *state;

    expect_set_error(f, "fush_interval_ms", "1",
                     "unknown setting 'fush_interval_ms' (did you mean "
                     "'flush_interval_ms'?)");
    expect_set_error(f, "zzz", "1", "unknown setting 'zzz'");
}

static void test_conf_unknown_flag_is_error_unknown_env_ignored(void **state) {
    fixture_t *f = *state;
    char *argv_bad[] = {"trustd", "--fush-interval-ms=5", NULL};
    char *argv_short[] = {"trustd", "-q", NULL};
    char *argv_none[] = {"trustd", NULL};
    char *env_foreign[] = {"TRUST_REDIS_SERVICE_HOST=10.0.0.1",
                           "TRUST_FLUSH_INTERVAL_MS=7", NULL};

    assert_int_equal(load(f, argv_bad, NULL), TD_ERR);
    assert_string_equal(f->errstr,
                        "unknown setting 'fush_interval_ms' (did you mean "
                        "'flush_interval_ms'?)");
    assert_int_equal(load(f, argv_short, NULL), TD_ERR);
    assert_string_equal(f->errstr, "unknown option '-q'");
    /* Orchestrators inject TRUST_<SERVICE>_* variables: not fatal. */
    assert_int_equal(load(f, argv_none, env_foreign), TD_OK);
    assert_int_equal(f->conf.flush_interval_ms, 7);
}

static void test_conf_flag_errors_name_the_setting(void **state) {
    fixture_t *f = *state;
    char *argv_val[] = {"trustd", "--flush-interval-ms", "0", NULL};
    char *argv_miss[] = {"trustd", "--brokers", NULL};
    char *env_val[] = {"TRUST_LOG_LEVEL=loud", NULL};
    char *argv_none[] = {"trustd", NULL};

    assert_int_equal(load(f, argv_val, NULL), TD_ERR);
    assert_string_equal(f->errstr,
                        "flush_interval_ms: 0 is below the minimum 1");
    assert_int_equal(load(f, argv_miss, NULL), TD_ERR);
    assert_string_equal(f->errstr, "--brokers: missing value");
    assert_int_equal(load(f, argv_none, env_val), TD_ERR);
    assert_string_equal(f->errstr,
                        "environment TRUST_LOG_LEVEL: log_level: 'loud' is "
                        "not one of debug, verbose, notice, warning");
}

static void test_conf_file_skips_comments_blanks_and_trims(void **state) {
    fixture_t *f = *state;
    const char *path = write_file(f, "\xef\xbb\xbf# a comment\n"
                                     "\n"
                                     "   \t\n"
                                     "  brokers   =  k1:9092,k2:9092  \n"
                                     "redis_password = pa#ss word\r\n"
                                     "  # indented comment\n"
                                     "redis-cluster=true\n"
                                     "kafka.client.id = trustd-1\n"
                                     "redis_user=");

    assert_int_equal(
        td_conf_load_file(&f->conf, path, f->errstr, sizeof(f->errstr)), TD_OK);
    assert_string_equal(f->conf.brokers, "k1:9092,k2:9092");
    assert_string_equal(f->conf.redis_password, "pa#ss word");
    assert_int_equal(f->conf.redis_cluster, 1);
    assert_string_equal(f->conf.redis_user, "");
    assert_int_equal(f->conf.kafka_prop_cnt, 1);
    assert_string_equal(f->conf.kafka_props[0].name, "client.id");
    assert_string_equal(f->conf.kafka_props[0].value, "trustd-1");
    assert_string_equal(f->conf.config_file, path);
}

static void test_conf_file_errors_name_path_and_line(void **state) {
    fixture_t *f = *state;
    char want[256];
    const char *path;

    path = write_file(f, "# settings\n"
                         "\n"
                         "brokers = k1:9092\n"
                         "flush_interval_ms = abc\n");
    assert_int_equal(
        td_conf_load_file(&f->conf, path, f->errstr, sizeof(f->errstr)),
        TD_ERR);
    snprintf(want, sizeof(want),
             "%s:4: flush_interval_ms: 'abc' is not an integer", path);
    assert_string_equal(f->errstr, want);

    path = write_file(f, "brokers = k1:9092\nredis_password hunter2\n");
    assert_int_equal(
        td_conf_load_file(&f->conf, path, f->errstr, sizeof(f->errstr)),
        TD_ERR);
    snprintf(want, sizeof(want), "%s:2: expected name=value", path);
    assert_string_equal(f->errstr, want);
    assert_null(strstr(f->errstr, "hunter2"));

    path = write_file(f, "fush_interval_ms=5\n");
    assert_int_equal(
        td_conf_load_file(&f->conf, path, f->errstr, sizeof(f->errstr)),
        TD_ERR);
    snprintf(want, sizeof(want),
             "%s:1: unknown setting 'fush_interval_ms' (did you mean "
             "'flush_interval_ms'?)",
             path);
    assert_string_equal(f->errstr, want);

    path = write_file(f, "\n = 5\n");
    assert_int_equal(
        td_conf_load_file(&f->conf, path, f->errstr, sizeof(f->errstr)),
        TD_ERR);
    snprintf(want, sizeof(want), "%s:2: missing name before '='", path);
    assert_string_equal(f->errstr, want);

    path = write_file(f, "kafka. = 5\n");
    assert_int_equal(
        td_conf_load_file(&f->conf, path, f->errstr, sizeof(f->errstr)),
        TD_ERR);
    snprintf(want, sizeof(want), "%s:1: kafka property name is empty", path);
    assert_string_equal(f->errstr, want);
}

static void
test_conf_file_may_hold_settings_of_the_other_program(void **state) {
    fixture_t *f = *state;
    char cfg[128];
    const char *path = write_file(f, "json=true\nflush_interval_ms=9\n");
    char *argv[] = {"trustd", NULL};
    char *envp[] = {cfg, "TRUST_JSON=1", NULL};

    snprintf(cfg, sizeof(cfg), "TRUST_CONFIG=%s", path);
    assert_int_equal(load(f, argv, envp), TD_OK);
    assert_int_equal(f->conf.flush_interval_ms, 9);
}

static void test_conf_flag_of_the_other_program_is_an_error(void **state) {
    fixture_t *f = *state;
    char *argv_d[] = {"trustd", "--json", NULL};
    char *argv_ctl[] = {"trustctl", "--flush-interval-ms=5", NULL};

    assert_int_equal(load(f, argv_d, NULL), TD_ERR);
    assert_string_equal(f->errstr, "setting 'json' is not used by trustd");
    assert_int_equal(td_conf_load(&f->conf, TD_CONF_TRUSTCTL, 2, argv_ctl, NULL,
                                  NULL, NULL, NULL, NULL, f->errstr,
                                  sizeof(f->errstr)),
                     TD_ERR);
    assert_string_equal(f->errstr,
                        "setting 'flush_interval_ms' is not used by trustctl");
}

/* serve_token would show in ps as a flag: environment or file only. */
static void test_conf_secret_token_is_never_a_flag(void **state) {
    fixture_t *f = *state;
    char *argv_flag[] = {"trustctl", "--serve-token", "t0k", NULL};
    char *argv_eq[] = {"trustctl", "--serve_token=t0k", NULL};
    char *argv_none[] = {"trustctl", NULL};
    char *envp[] = {"TRUST_SERVE_TOKEN=t0k", NULL};

    assert_int_equal(td_conf_load(&f->conf, TD_CONF_TRUSTCTL, 3, argv_flag,
                                  NULL, NULL, NULL, NULL, NULL, f->errstr,
                                  sizeof(f->errstr)),
                     TD_ERR);
    assert_string_equal(f->errstr,
                        "setting 'serve_token' cannot be a flag: set it in the "
                        "config file or the environment");
    assert_int_equal(td_conf_load(&f->conf, TD_CONF_TRUSTCTL, 2, argv_eq, NULL,
                                  NULL, NULL, NULL, NULL, f->errstr,
                                  sizeof(f->errstr)),
                     TD_ERR);
    assert_string_equal(f->conf.serve_token, "");
    assert_int_equal(td_conf_load(&f->conf, TD_CONF_TRUSTCTL, 1, argv_none,
                                  envp, NULL, NULL, NULL, NULL, f->errstr,
                                  sizeof(f->errstr)),
                     TD_OK);
    assert_string_equal(f->conf.serve_token, "t0k");
    assert_int_equal(td_conf_set(&f->conf, "serve_token", "f1le", f->errstr,
                                 sizeof(f->errstr)),
                     TD_OK);
    assert_string_equal(f->conf.serve_token, "f1le");
}

static void test_conf_flags_accept_dashes_and_underscores(void **state) {
    fixture_t *f = *state;
    char *argv_dash[] = {"trustd",
                         "--flush-interval-ms",
                         "100",
                         "--log-level=debug",
                         "--redis-cluster",
                         NULL};
    char *argv_under[] = {"trustd", "--flush_interval_ms=100", "--log_level",
                          "debug",  "--redis_cluster=true",    NULL};

    assert_int_equal(load(f, argv_dash, NULL), TD_OK);
    assert_int_equal(f->conf.flush_interval_ms, 100);
    assert_int_equal(f->conf.log_level, TD_LOG_DEBUG);
    assert_int_equal(f->conf.redis_cluster, 1);

    reset(f);
    assert_int_equal(load(f, argv_under, NULL), TD_OK);
    assert_int_equal(f->conf.flush_interval_ms, 100);
    assert_int_equal(f->conf.log_level, TD_LOG_DEBUG);
    assert_int_equal(f->conf.redis_cluster, 1);

    /* td_conf_set() and the file take either spelling too. */
    expect_set_ok(f, "flush-interval-ms", "7");
    assert_int_equal(f->conf.flush_interval_ms, 7);
}

static void test_conf_bool_flag_takes_only_a_boolean_word_along(void **state) {
    fixture_t *f = *state;
    char *argv_false[] = {"trustd",          "--log-json", "false",
                          "--redis-cluster", "off",        NULL};
    char *argv_ctl[] = {"trustctl", "--json", "score", "m1", NULL};
    char **rest = NULL;
    int rest_cnt = -1;

    f->conf.log_json = 1;
    assert_int_equal(load(f, argv_false, NULL), TD_OK);
    assert_int_equal(f->conf.log_json, 0);
    assert_int_equal(f->conf.redis_cluster, 0);

    assert_int_equal(td_conf_load(&f->conf, TD_CONF_TRUSTCTL, 4, argv_ctl, NULL,
                                  NULL, NULL, &rest, &rest_cnt, f->errstr,
                                  sizeof(f->errstr)),
                     TD_OK);
    assert_int_equal(f->conf.json, 1);
    assert_int_equal(rest_cnt, 2);
    assert_string_equal(rest[0], "score");
    assert_string_equal(rest[1], "m1");
    assert_null(rest[2]);
}

static void test_conf_non_options_are_returned_in_order(void **state) {
    fixture_t *f = *state;
    char *argv[] = {"trustctl", "score",  "--redis", "r:1", "m1",
                    "--",       "--json", "-X",      NULL};
    char **rest = NULL;
    int rest_cnt = 0;

    assert_int_equal(td_conf_load(&f->conf, TD_CONF_TRUSTCTL, 8, argv, NULL,
                                  NULL, NULL, &rest, &rest_cnt, f->errstr,
                                  sizeof(f->errstr)),
                     TD_OK);
    assert_string_equal(f->conf.redis, "r:1");
    assert_int_equal(f->conf.json, 0);
    assert_int_equal(rest_cnt, 4);
    assert_string_equal(rest[0], "score");
    assert_string_equal(rest[1], "m1");
    assert_string_equal(rest[2], "--json");
    assert_string_equal(rest[3], "-X");
    assert_null(rest[4]);
    /* Options were moved in front, in order. */
    assert_string_equal(argv[1], "--redis");
    assert_string_equal(argv[2], "r:1");
    assert_string_equal(argv[3], "--");
}

static void test_conf_non_option_without_rest_is_an_error(void **state) {
    fixture_t *f = *state;
    char *argv[] = {"trustd", "stray", NULL};

    assert_int_equal(td_conf_load(&f->conf, TD_CONF_TRUSTD, 2, argv, NULL, NULL,
                                  NULL, NULL, NULL, f->errstr,
                                  sizeof(f->errstr)),
                     TD_ERR);
    assert_string_equal(f->errstr, "unexpected argument 'stray'");
    assert_string_equal(argv[1], "stray");
}

static void test_conf_help_and_print_config_are_reported(void **state) {
    fixture_t *f = *state;
    char *argv_help[] = {"trustd", "--flush-interval-ms=5", "-h", NULL};
    char *argv_long[] = {"trustd", "--help", NULL};
    char *argv_print[] = {"trustd", "--print-config", NULL};
    char *env_broken[] = {"TRUST_CONFIG=/nonexistent/trust.conf", NULL};
    int help = 0, print = 0;

    /* Help works even when the config file would not load. */
    assert_int_equal(td_conf_load(&f->conf, TD_CONF_TRUSTD, 3, argv_help,
                                  env_broken, &help, &print, NULL, NULL,
                                  f->errstr, sizeof(f->errstr)),
                     TD_OK);
    assert_int_equal(help, 1);
    assert_int_equal(print, 0);

    assert_int_equal(td_conf_load(&f->conf, TD_CONF_TRUSTD, 2, argv_long, NULL,
                                  &help, &print, NULL, NULL, f->errstr,
                                  sizeof(f->errstr)),
                     TD_OK);
    assert_int_equal(help, 1);

    assert_int_equal(td_conf_load(&f->conf, TD_CONF_TRUSTD, 2, argv_print, NULL,
                                  &help, &print, NULL, NULL, f->errstr,
                                  sizeof(f->errstr)),
                     TD_OK);
    assert_int_equal(help, 0);
    assert_int_equal(print, 1);
}

static void
test_conf_kafka_props_keep_order_and_later_sources_win(void **state) {
    fixture_t *f = *state;
    char cfg[128];
    const char *path = write_file(f, "kafka.security.protocol = PLAINTEXT\n"
                                     "kafka.client.id = file\n");
    char *argv[] = {"trustd", "-X", "client.id=flag",
                    "-Xstatistics.interval.ms=5", NULL};
    char *envp[] = {cfg, "TRUST_KAFKA_SECURITY_PROTOCOL=SSL",
                    "TRUST_KAFKA_SOCKET_TIMEOUT_MS=1000", NULL};
    const td_kafka_prop_t *kp;

    snprintf(cfg, sizeof(cfg), "TRUST_CONFIG=%s", path);
    assert_int_equal(load(f, argv, envp), TD_OK);
    assert_int_equal(f->conf.kafka_prop_cnt, 4);
    kp = f->conf.kafka_props;
    assert_string_equal(kp[0].name, "security.protocol");
    assert_string_equal(kp[0].value, "SSL");
    assert_string_equal(kp[1].name, "client.id");
    assert_string_equal(kp[1].value, "flag");
    assert_string_equal(kp[2].name, "socket.timeout.ms");
    assert_string_equal(kp[2].value, "1000");
    assert_string_equal(kp[3].name, "statistics.interval.ms");
    assert_string_equal(kp[3].value, "5");
}

static void test_conf_kafka_flag_needs_prop_equals_value(void **state) {
    fixture_t *f = *state;
    char *argv_noeq[] = {"trustd", "-X", "client.id", NULL};
    char *argv_noarg[] = {"trustd", "-X", NULL};
    char *argv_noname[] = {"trustd", "-X=v", NULL};

    assert_int_equal(load(f, argv_noeq, NULL), TD_ERR);
    assert_string_equal(f->errstr, "-X: expected PROP=VALUE");
    assert_int_equal(load(f, argv_noarg, NULL), TD_ERR);
    assert_string_equal(f->errstr, "-X: missing PROP=VALUE");
    assert_int_equal(load(f, argv_noname, NULL), TD_ERR);
    assert_string_equal(f->errstr, "-X: expected PROP=VALUE");
    assert_int_equal(f->conf.kafka_prop_cnt, 0);
}

static void test_conf_print_masks_secrets(void **state) {
    fixture_t *f = *state;
    static const char *const secret_props[] = {
        "sasl.password",
        "ssl.key.password",
        "sasl.oauthbearer.config",
        "ssl.key.pem",
        "sasl.oauthbearer.client.secret",
        NULL,
    };
    char *out;

    expect_set_ok(f, "redis_password", "hunter2");
    for (int i = 0; secret_props[i]; i++) {
        assert_int_equal(td_conf_set_kafka(&f->conf, secret_props[i],
                                           "topsecret", f->errstr,
                                           sizeof(f->errstr)),
                         TD_OK);
    }
    assert_int_equal(td_conf_set_kafka(&f->conf, "client.id", "visible",
                                       f->errstr, sizeof(f->errstr)),
                     TD_OK);

    out = capture_print(&f->conf);
    assert_null(strstr(out, "hunter2"));
    assert_null(strstr(out, "topsecret"));
    assert_non_null(strstr(out, "\nredis_password=****\n"));
    assert_non_null(strstr(out, "\nkafka.sasl.password=****\n"));
    assert_non_null(strstr(out, "\nkafka.ssl.key.pem=****\n"));
    assert_non_null(strstr(out, "\nkafka.client.id=visible\n"));
    assert_non_null(strstr(out, "\nredis_user=\n"));
    free(out);
}

static void test_conf_print_output_loads_back_unchanged(void **state) {
    fixture_t *f = *state;
    char *first, *second;

    expect_set_ok(f, "publish_min_step", "0.1");
    expect_set_ok(f, "log_level", "warning");
    expect_set_ok(f, "min_event_time_ms", "0");
    expect_set_ok(f, "kafka.client.id", "a=b");
    first = capture_print(&f->conf);

    reset(f);
    assert_int_equal(td_conf_load_file(&f->conf, write_file(f, first),
                                       f->errstr, sizeof(f->errstr)),
                     TD_OK);
    second = capture_print(&f->conf);
    /* Only the header naming the config file differs. */
    assert_string_equal(strchr(first, '\n'), strchr(second, '\n'));
    assert_true(f->conf.publish_min_step == 0.1);
    free(first);
    free(second);
}

static void test_conf_help_lists_every_setting(void **state) {
    fixture_t *f = *state;
    char *printed = capture_print(&f->conf);
    char *both = capture_usage(TD_CONF_TRUSTD | TD_CONF_TRUSTCTL, "trust");
    char *ref = capture_reference();
    int settings = 0;

    for (char *line = printed; line && *line;) {
        char *nl = strchr(line, '\n');
        char *eq = strchr(line, '=');
        char flag[96], flag_bool[96], row[96], env[96];
        size_t len;

        if (*line != '#' && eq && eq < nl) {
            len = (size_t)(eq - line);
            snprintf(flag, sizeof(flag), "  --%.*s ", (int)len, line);
            for (char *c = flag; *c; c++) {
                if (*c == '_') *c = '-';
            }
            /* Bools read "--name[=BOOL]". */
            snprintf(flag_bool, sizeof(flag_bool), "%.*s[", (int)(len + 4),
                     flag);
            /* A setting that is never a flag shows as its variable. */
            snprintf(env, sizeof(env), "  TRUST_%.*s=", (int)len, line);
            for (char *c = env + 8; *c; c++) {
                *c = (char)toupper((unsigned char)*c);
            }
            if (!strstr(both, flag) && !strstr(both, flag_bool) &&
                !strstr(both, env)) {
                fail_msg("--help lacks %s", flag);
            }
            snprintf(row, sizeof(row), "| `%.*s` |", (int)len, line);
            if (!strstr(ref, row)) fail_msg("reference lacks %s", row);
            settings++;
        }
        line = nl ? nl + 1 : NULL;
    }
    assert_true(settings >= 31);
    free(printed);
    free(both);
    free(ref);
}

static void test_conf_help_shows_each_program_its_settings(void **state) {
    char *d = capture_usage(TD_CONF_TRUSTD, "trustd");
    char *ctl = capture_usage(TD_CONF_TRUSTCTL, "trustctl");

    (void)state;
    assert_non_null(strstr(d, "Usage: trustd [OPTIONS]\n"));
    assert_non_null(strstr(d, "  --flush-interval-ms N\n"));
    assert_non_null(strstr(d, "  --log-level debug|verbose|notice|warning\n"));
    assert_non_null(strstr(d, "  --redis-cluster[=BOOL]\n"));
    assert_null(strstr(d, "  --json"));
    assert_non_null(strstr(ctl, "  --json[=BOOL]\n"));
    assert_non_null(strstr(ctl, "  --redis STRING\n"));
    assert_null(strstr(ctl, "  --flush-interval-ms"));

    /* Generated text still fits 80 columns. */
    for (char *line = d; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        if (nl - line > 80) {
            fail_msg("line over 80 columns: %.*s", (int)(nl - line), line);
        }
        line = nl + 1;
    }
    free(d);
    free(ctl);
}

static void test_conf_reference_marks_secrets_and_ranges(void **state) {
    char *ref = capture_reference();

    (void)state;
    assert_non_null(strstr(ref, "| Setting | Type | Default | Range |"));
    assert_non_null(strstr(ref, "| `flush_interval_ms` | int | `250` | "
                                "1..600000 | trustd |"));
    assert_non_null(strstr(ref, "| `log_level` | enum | `notice` | debug, "
                                "verbose, notice, warning | trustd, "
                                "trustctl |"));
    assert_non_null(strstr(ref, "| `max_future_skew_ms` | int64 | `300000` "
                                "| >= 0 |"));
    assert_non_null(strstr(ref, "(secret: masked when printed) |"));
    free(ref);
}

static void test_conf_term_releases_everything_and_allows_init(void **state) {
    fixture_t *f = *state;

    expect_set_ok(f, "brokers", "x:1");
    expect_set_ok(f, "kafka.a", "1");
    td_conf_term(&f->conf);
    assert_null(f->conf.brokers);
    assert_null(f->conf.kafka_props);
    assert_int_equal(f->conf.kafka_prop_cnt, 0);
    td_conf_init(&f->conf);
    assert_string_equal(f->conf.brokers, "127.0.0.1:9092");
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_conf_init_sets_documented_defaults),
        T(test_conf_flag_beats_env_beats_file_beats_default),
        T(test_conf_config_flag_beats_trust_config),
        T(test_conf_missing_config_file_names_path),
        T(test_conf_int_rejects_non_integers),
        T(test_conf_int_rejects_values_out_of_range),
        T(test_conf_int64_parses_full_range_and_rejects_overflow),
        T(test_conf_double_rejects_non_numbers_and_range),
        T(test_conf_bool_accepts_words_and_rejects_others),
        T(test_conf_enum_maps_names_to_log_levels),
        T(test_conf_string_accepts_anything_including_empty),
        T(test_conf_unknown_setting_suggests_closest),
        T(test_conf_unknown_flag_is_error_unknown_env_ignored),
        T(test_conf_flag_errors_name_the_setting),
        T(test_conf_file_skips_comments_blanks_and_trims),
        T(test_conf_file_errors_name_path_and_line),
        T(test_conf_file_may_hold_settings_of_the_other_program),
        T(test_conf_flag_of_the_other_program_is_an_error),
        T(test_conf_flags_accept_dashes_and_underscores),
        T(test_conf_bool_flag_takes_only_a_boolean_word_along),
        T(test_conf_non_options_are_returned_in_order),
        T(test_conf_non_option_without_rest_is_an_error),
        T(test_conf_help_and_print_config_are_reported),
        T(test_conf_kafka_props_keep_order_and_later_sources_win),
        T(test_conf_kafka_flag_needs_prop_equals_value),
        T(test_conf_print_masks_secrets),
        T(test_conf_print_output_loads_back_unchanged),
        T(test_conf_help_lists_every_setting),
        T(test_conf_help_shows_each_program_its_settings),
        T(test_conf_reference_marks_secrets_and_ranges),
        T(test_conf_term_releases_everything_and_allows_init),
        T(test_conf_secret_token_is_never_a_flag),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
