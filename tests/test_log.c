/*
 * test_log.c - unit tests for processor/log.c: line formats, JSON escaping,
 * level filtering, truncation, whole lines under concurrent writers and the
 * error rate limiter (driven with fake times through td_log_rl_at()).
 *
 * Each test points the logger at its own temporary file with td_log_set_fd()
 * and reads back what was written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "log.h"

typedef struct fixture_s {
    int fd;
    char path[64];
    char *out; /* last read_output() result */
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->path, sizeof(f->path), "/tmp/test_log_XXXXXX");
    f->fd = mkstemp(f->path);
    assert_true(f->fd >= 0);
    td_log_set_fd(f->fd);
    td_log_set_ident("trustd");
    td_log_init(TD_LOG_DEBUG, 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;

    td_log_set_fd(2);
    td_log_init(TD_LOG_NOTICE, 0);
    close(f->fd);
    unlink(f->path);
    free(f->out);
    free(f);
    return 0;
}

/* Everything logged so far, NUL-terminated; owned by the fixture. */
static const char *read_output(fixture_t *f) {
    off_t size = lseek(f->fd, 0, SEEK_END);
    ssize_t n;

    assert_true(size >= 0);
    free(f->out);
    f->out = malloc((size_t)size + 1);
    assert_non_null(f->out);
    n = pread(f->fd, f->out, (size_t)size, 0);
    assert_int_equal(n, size);
    f->out[n] = '\0';
    return f->out;
}

static int count_lines(const char *s) {
    int n = 0;

    for (; *s; s++) {
        if (*s == '\n') n++;
    }
    return n;
}

static void assert_matches(const char *s, const char *pattern) {
    regex_t re;

    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    if (regexec(&re, s, 0, NULL, 0) != 0) {
        fail_msg("'%s' does not match /%s/", s, pattern);
    }
    regfree(&re);
}

/* The "msg" value of a JSON line, as raw text between its quotes. */
static const char *json_msg(const char *line) {
    const char *m = strstr(line, ",\"msg\":\"");

    assert_non_null(m);
    return m + 8;
}


static void test_log_text_line_has_time_level_ident_and_pid(void **state) {
    fixture_t *f = *state;
    char pattern[256];

    td_log(TD_LOG_NOTICE, "hello %d", 42);
    snprintf(pattern, sizeof(pattern),
             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
             "\\.[0-9]{3}Z notice trustd\\[%ld\\]: hello 42\n$",
             (long)getpid());
    assert_matches(read_output(f), pattern);
}

static void test_log_ident_names_the_program(void **state) {
    fixture_t *f = *state;

    td_log_set_ident("trustctl");
    td_log(TD_LOG_WARNING, "x");
    assert_non_null(strstr(read_output(f), " warning trustctl["));
}

static void test_log_json_line_has_all_fields(void **state) {
    fixture_t *f = *state;
    char pattern[256];

    td_log_init(TD_LOG_DEBUG, 1);
    td_log(TD_LOG_VERBOSE, "started %s", "ok");
    snprintf(pattern, sizeof(pattern),
             "^\\{\"ts\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
             "[0-9]{2}\\.[0-9]{3}Z\",\"level\":\"verbose\",\"pid\":%ld,"
             "\"msg\":\"started ok\"\\}\n$",
             (long)getpid());
    assert_matches(read_output(f), pattern);
}

static void
test_log_json_escapes_quotes_backslashes_and_controls(void **state) {
    fixture_t *f = *state;

    td_log_init(TD_LOG_DEBUG, 1);
    td_log(TD_LOG_NOTICE, "q\" b\\ n\n r\r t\t c\x01\x1f e\xc3\xa9 "
                          "s\xf0\x9f\x98\x80\n");
    assert_string_equal(json_msg(read_output(f)),
                        "q\\\" b\\\\ n\\n r\\r t\\t c\\u0001\\u001f "
                        "e\xc3\xa9 s\xf0\x9f\x98\x80\"}\n");
}

static void test_log_json_replaces_invalid_utf8(void **state) {
    fixture_t *f = *state;

    td_log_init(TD_LOG_DEBUG, 1);
    /* Stray byte, overlong '/', surrogate, above U+10FFFF, cut sequence. */
    td_log(TD_LOG_NOTICE, "a\xff b\xc0\xaf c\xed\xa0\x80 d\xf4\x90\x80\x80 "
                          "e\xe2\x82");
    assert_string_equal(json_msg(read_output(f)),
                        "a\\ufffd b\\ufffd\\ufffd "
                        "c\\ufffd\\ufffd\\ufffd "
                        "d\\ufffd\\ufffd\\ufffd\\ufffd "
                        "e\\ufffd\\ufffd\"}\n");
}

static void test_log_text_keeps_one_line_per_call(void **state) {
    fixture_t *f = *state;
    const char *out;

    td_log(TD_LOG_NOTICE, "a\nb\r\nc\x1b[0m\n\n");
    out = read_output(f);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, ": a b  c [0m\n"));
}

static void test_log_skips_lower_levels_without_evaluating_args(void **state) {
    fixture_t *f = *state;
    int calls = 0;

    td_log_init(TD_LOG_NOTICE, 0);
    td_log(TD_LOG_DEBUG, "%d", ++calls);
    td_log(TD_LOG_VERBOSE, "%d", ++calls);
    td_log_write(TD_LOG_DEBUG, "direct calls are filtered too");
    assert_int_equal(calls, 0);
    assert_string_equal(read_output(f), "");

    td_log(TD_LOG_NOTICE, "n%d", ++calls);
    td_log(TD_LOG_WARNING, "w%d", ++calls);
    assert_int_equal(calls, 2);
    assert_int_equal(count_lines(read_output(f)), 2);
    assert_non_null(strstr(f->out, " notice trustd["));
    assert_non_null(strstr(f->out, " warning trustd["));
}

static void test_log_init_clamps_level(void **state) {
    (void)state;
    td_log_init(99, 0);
    assert_false(td_log_enabled(TD_LOG_NOTICE));
    assert_true(td_log_enabled(TD_LOG_WARNING));
    td_log_init(-5, 0);
    assert_true(td_log_enabled(TD_LOG_DEBUG));
}

static void test_log_cuts_long_messages_to_max_len(void **state) {
    fixture_t *f = *state;
    char big[TD_LOG_MAX_LEN * 3];
    const char *out, *msg;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    td_log(TD_LOG_NOTICE, "%s", big);
    out = read_output(f);
    assert_int_equal(count_lines(out), 1);
    msg = strstr(out, "]: ") + 3;
    assert_int_equal(strlen(msg), TD_LOG_MAX_LEN - 1 + 1);

    /* Worst case for JSON: every byte becomes six. */
    assert_int_equal(ftruncate(f->fd, 0), 0);
    assert_int_equal(lseek(f->fd, 0, SEEK_SET), 0);
    td_log_init(TD_LOG_DEBUG, 1);
    memset(big, '\x01', sizeof(big) - 1);
    td_log(TD_LOG_NOTICE, "%s", big);
    out = read_output(f);
    assert_int_equal(count_lines(out), 1);
    assert_int_equal(strlen(json_msg(out)), (TD_LOG_MAX_LEN - 1) * 6 + 3);
    assert_string_equal(out + strlen(out) - 9, "\\u0001\"}\n");
}

static void test_log_level_names_round_trip(void **state) {
    (void)state;
    for (int l = TD_LOG_DEBUG; l <= TD_LOG_WARNING; l++) {
        assert_int_equal(td_log_level_from_name(td_log_level_name(l)), l);
    }
    assert_int_equal(td_log_level_from_name("Warning"), TD_LOG_WARNING);
    assert_int_equal(td_log_level_from_name("info"), -1);
    assert_int_equal(td_log_level_from_name(""), -1);
    assert_int_equal(td_log_level_from_name(NULL), -1);
    assert_string_equal(td_log_level_name(4), "?");
    assert_string_equal(td_log_level_name(-1), "?");
}

static void test_log_maps_syslog_levels(void **state) {
    (void)state;
    assert_int_equal(td_log_level_from_syslog(0), TD_LOG_WARNING);
    assert_int_equal(td_log_level_from_syslog(3), TD_LOG_WARNING);
    assert_int_equal(td_log_level_from_syslog(4), TD_LOG_WARNING);
    assert_int_equal(td_log_level_from_syslog(5), TD_LOG_NOTICE);
    assert_int_equal(td_log_level_from_syslog(6), TD_LOG_VERBOSE);
    assert_int_equal(td_log_level_from_syslog(7), TD_LOG_DEBUG);
}

#define WRITERS          8
#define LINES_PER_WRITER 2000

static void *writer(void *arg) {
    int id = (int)(intptr_t)arg;

    for (int i = 0; i < LINES_PER_WRITER; i++) {
        td_log(TD_LOG_NOTICE,
               "writer %d line %d "
               "................................................"
               "................................................",
               id, i);
    }
    return NULL;
}

static void test_log_concurrent_writers_never_interleave_lines(void **state) {
    fixture_t *f = *state;
    pthread_t th[WRITERS];
    int seen[WRITERS] = {0};
    regex_t re;
    char *line, *save = NULL, *out;

    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(
            pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }

    assert_int_equal(regcomp(&re,
                             "^[0-9T:.Z-]+ notice trustd\\[[0-9]+\\]: writer "
                             "[0-9]+ line [0-9]+ \\.{96}$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    out = (char *)read_output(f);
    assert_int_equal(count_lines(out), WRITERS * LINES_PER_WRITER);
    for (line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        int id = -1;
        if (regexec(&re, line, 0, NULL, 0) != 0) {
            fail_msg("torn line: %s", line);
        }
        assert_int_equal(sscanf(strstr(line, "writer "), "writer %d", &id), 1);
        assert_true(id >= 0 && id < WRITERS);
        seen[id]++;
    }
    regfree(&re);
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(seen[i], LINES_PER_WRITER);
    }
}

static void
test_log_rl_logs_first_then_suppresses_within_interval(void **state) {
    fixture_t *f = *state;
    td_log_ratelimit_t rl;

    td_log_rl_init(&rl, 10000);
    assert_int_equal(
        td_log_rl_at(&rl, 1000, 3, TD_LOG_WARNING, "redis: %s", "down"), 1);
    assert_int_equal(td_log_rl_at(&rl, 1001, 3, TD_LOG_WARNING, "redis: x"), 0);
    assert_int_equal(td_log_rl_at(&rl, 10999, 3, TD_LOG_WARNING, "redis: x"),
                     0);
    assert_int_equal(count_lines(read_output(f)), 1);
    assert_non_null(strstr(f->out, ": redis: down\n"));
}

static void test_log_rl_reports_suppressed_count_after_interval(void **state) {
    fixture_t *f = *state;
    td_log_ratelimit_t rl;
    const char *out;

    td_log_rl_init(&rl, 10000);
    td_log_rl_at(&rl, 0, 3, TD_LOG_WARNING, "redis: down");
    for (int i = 1; i <= 5; i++) {
        td_log_rl_at(&rl, i * 100, 3, TD_LOG_WARNING, "redis: down");
    }
    assert_int_equal(
        td_log_rl_at(&rl, 10000, 3, TD_LOG_WARNING, "redis: still down\n"), 1);
    /* The count restarts; an interval without repeats has no suffix. */
    assert_int_equal(td_log_rl_at(&rl, 25000, 3, TD_LOG_WARNING, "redis: up"),
                     1);
    out = read_output(f);
    assert_int_equal(count_lines(out), 3);
    assert_non_null(
        strstr(out, ": redis: still down (5 identical suppressed)\n"));
    assert_non_null(strstr(out, ": redis: up\n"));
}

static void test_log_rl_codes_are_independent(void **state) {
    fixture_t *f = *state;
    td_log_ratelimit_t rl;

    td_log_rl_init(&rl, 10000);
    assert_int_equal(td_log_rl_at(&rl, 0, 1, TD_LOG_WARNING, "a"), 1);
    assert_int_equal(td_log_rl_at(&rl, 1, 2, TD_LOG_WARNING, "b"), 1);
    assert_int_equal(td_log_rl_at(&rl, 2, 1, TD_LOG_WARNING, "a"), 0);
    assert_int_equal(
        td_log_rl_at(&rl, 3, TD_LOG_RL_CODES - 1, TD_LOG_WARNING, "c"), 1);
    assert_int_equal(count_lines(read_output(f)), 3);
}

static void test_log_rl_zero_interval_never_suppresses(void **state) {
    fixture_t *f = *state;
    td_log_ratelimit_t rl;

    td_log_rl_init(&rl, -1);
    assert_true(rl.interval_ms == 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(td_log_rl_at(&rl, 5, 0, TD_LOG_WARNING, "e"), 1);
    }
    assert_int_equal(count_lines(read_output(f)), 4);
}

static void test_log_rl_out_of_range_code_is_logged_unlimited(void **state) {
    fixture_t *f = *state;
    td_log_ratelimit_t rl;

    td_log_rl_init(&rl, 10000);
    assert_int_equal(td_log_rl_at(&rl, 0, -1, TD_LOG_WARNING, "neg"), 1);
    assert_int_equal(td_log_rl_at(&rl, 1, -1, TD_LOG_WARNING, "neg"), 1);
    assert_int_equal(
        td_log_rl_at(&rl, 2, TD_LOG_RL_CODES, TD_LOG_WARNING, "big"), 1);
    assert_int_equal(count_lines(read_output(f)), 3);
}

static void test_log_rl_below_level_neither_logs_nor_counts(void **state) {
    fixture_t *f = *state;
    td_log_ratelimit_t rl;

    td_log_init(TD_LOG_NOTICE, 0);
    td_log_rl_init(&rl, 10000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(td_log_rl_at(&rl, i, 7, TD_LOG_DEBUG, "d"), 0);
    }
    assert_int_equal(td_log_rl_at(&rl, 5, 7, TD_LOG_WARNING, "w"), 1);
    assert_string_equal(strstr(read_output(f), "]: "), "]: w\n");
}

static void test_log_rl_suffix_survives_long_messages(void **state) {
    fixture_t *f = *state;
    td_log_ratelimit_t rl;
    char big[TD_LOG_MAX_LEN * 2];
    const char *out;

    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    td_log_rl_init(&rl, 10);
    td_log_rl_at(&rl, 0, 0, TD_LOG_WARNING, "%s", big);
    td_log_rl_at(&rl, 1, 0, TD_LOG_WARNING, "%s", big);
    td_log_rl_at(&rl, 10, 0, TD_LOG_WARNING, "%s", big);
    out = read_output(f);
    assert_int_equal(count_lines(out), 2);
    assert_string_equal(out + strlen(out) - 25, "(1 identical suppressed)\n");
}

static void test_log_rl_uses_the_monotonic_clock(void **state) {
    fixture_t *f = *state;
    td_log_ratelimit_t rl;

    td_log_rl_init(&rl, 3600 * 1000);
    assert_int_equal(td_log_rl(&rl, 9, TD_LOG_WARNING, "once %d", 1), 1);
    assert_int_equal(td_log_rl(&rl, 9, TD_LOG_WARNING, "once %d", 2), 0);
    assert_int_equal(rl.slot[9].suppressed, 1);
    assert_int_equal(count_lines(read_output(f)), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_log_text_line_has_time_level_ident_and_pid),
        T(test_log_ident_names_the_program),
        T(test_log_json_line_has_all_fields),
        T(test_log_json_escapes_quotes_backslashes_and_controls),
        T(test_log_json_replaces_invalid_utf8),
        T(test_log_text_keeps_one_line_per_call),
        T(test_log_skips_lower_levels_without_evaluating_args),
        T(test_log_init_clamps_level),
        T(test_log_cuts_long_messages_to_max_len),
        T(test_log_level_names_round_trip),
        T(test_log_maps_syslog_levels),
        T(test_log_concurrent_writers_never_interleave_lines),
        T(test_log_rl_logs_first_then_suppresses_within_interval),
        T(test_log_rl_reports_suppressed_count_after_interval),
        T(test_log_rl_codes_are_independent),
        T(test_log_rl_zero_interval_never_suppresses),
        T(test_log_rl_out_of_range_code_is_logged_unlimited),
        T(test_log_rl_below_level_neither_logs_nor_counts),
        T(test_log_rl_suffix_survives_long_messages),
        T(test_log_rl_uses_the_monotonic_clock),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
