/*
 * test_registry.c - tests of the schema registry client and the schema map
 * file (processor/registry.c).
 *
 * The registry here is a stand-in served by libmicrohttpd on a loopback
 * port, answering GET /schemas/ids/{id} the ways a registry and the things
 * in front of it can: 1 found, 2 Confluent's "not found" (404, error_code
 * 40403), 3 a 404 of another server, 4 a 200 that is not the API's, 5 a
 * 500. The real Apicurio Registry is exercised end to end by it_dlq.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "common.h"
#include "harness.h"
#include "registry.h"

#define SCHEMA "{\"type\":\"record\",\"name\":\"r\",\"fields\":[]}"

static struct MHD_Daemon *daemon_;
static int port;
static int hits; /* requests the stand-in answered */

static enum MHD_Result answer(void *cls,
                              struct MHD_Connection *c,
                              const char *url,
                              const char *method,
                              const char *version,
                              const char *data,
                              size_t *data_len,
                              void **con_cls) {
    static const struct {
        const char *url;
        unsigned status;
        const char *body;
    } routes[] = {
        {"/api/schemas/ids/1", 200,
         "{\"schema\":\""
         "{\\\"type\\\":\\\"record\\\",\\\"name\\\":\\\"r\\\","
         "\\\"fields\\\":[]}"
         "\",\"references\":[]}"},
        {"/api/schemas/ids/2", 404,
         "{\"error_code\":40403,\"message\":\"Schema not found\"}"},
        {"/api/schemas/ids/3", 404, "<html>Not Found</html>"},
        {"/api/schemas/ids/4", 200, "<html>login</html>"},
        {"/api/schemas/ids/5", 500, "{\"error_code\":50001}"},
    };
    struct MHD_Response *r;
    enum MHD_Result ret;
    unsigned status = 404;
    const char *body = "";

    (void)cls;
    (void)method;
    (void)version;
    (void)data;
    (void)data_len;
    (void)con_cls;
    hits++;
    for (size_t i = 0; i < TD_ARRAY_LEN(routes); i++) {
        if (strcmp(routes[i].url, url) == 0) {
            status = routes[i].status;
            body = routes[i].body;
        }
    }
    r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                        MHD_RESPMEM_PERSISTENT);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static int group_setup(void **state) {
    (void)state;
    port = td_h_free_port();
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port,
                               NULL, NULL, answer, NULL, MHD_OPTION_END);
    return daemon_ ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    MHD_stop_daemon(daemon_);
    return 0;
}

static td_registry_t *new_registry(const char *url, const char *map) {
    td_registry_conf_t rc = {
        .url = url, .map_file = map, .timeout_ms = 1000, .retry_max_ms = 200};
    char errstr[512];
    td_registry_t *r = td_registry_new(&rc, errstr, sizeof(errstr));

    if (r == NULL) fail_msg("td_registry_new: %s", errstr);
    return r;
}

static td_registry_t *stand_in(void) {
    char url[128];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/", port);
    return new_registry(url, NULL);
}

typedef struct ask_s {
    td_registry_t *r;
    uint32_t id;
    uint64_t errors;
    td_reg_status_t st;
    const char *json;
    size_t len;
} ask_t;

/* Poll condition: the registry answered ask->id. */
static int answered(void *arg) {
    ask_t *a = arg;

    td_registry_poll(a->r);
    a->st = td_registry_get(a->r, a->id, &a->json, &a->len);
    return a->st != TD_REG_WAIT;
}

/* Poll condition: the registry counted ask->errors failures. */
static int failed(void *arg) {
    ask_t *a = arg;

    td_registry_poll(a->r);
    return td_registry_stats(a->r)->errors >= a->errors;
}

/* Asks for id until the answer is not TD_REG_WAIT (bounded). */
static td_reg_status_t
settle(td_registry_t *r, uint32_t id, const char **json, size_t *len) {
    ask_t a = {.r = r, .id = id};

    td_h_poll(answered, &a, 5000);
    *json = a.json;
    *len = a.len;
    return a.st;
}

static void wait_errors(td_registry_t *r, uint64_t errors) {
    ask_t a = {.r = r, .errors = errors};

    assert_true(td_h_poll(failed, &a, 5000));
}

static void write_file(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_registry_found_is_fetched_once_and_cached(void **state) {
    td_registry_t *r = stand_in();
    const char *json = NULL;
    size_t len = 0;
    int before;

    (void)state;
    /* The first answer never comes from the call that asks: no blocking. */
    assert_int_equal(td_registry_get(r, 1, &json, &len), TD_REG_WAIT);
    assert_int_equal(settle(r, 1, &json, &len), TD_REG_FOUND);
    assert_string_equal(json, SCHEMA);
    assert_int_equal(len, strlen(SCHEMA));
    before = hits;
    assert_int_equal(td_registry_get(r, 1, &json, &len), TD_REG_FOUND);
    assert_int_equal(hits, before);
    assert_true(td_registry_stats(r)->requests == 1);
    assert_true(td_registry_stats(r)->errors == 0);
    td_registry_destroy(r);
}

static void test_registry_not_found_needs_error_code_40403(void **state) {
    td_registry_t *r = stand_in();
    const char *json = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(settle(r, 2, &json, &len), TD_REG_UNKNOWN);
    assert_true(td_registry_stats(r)->errors == 0);
    /* Another server's 404: an outage (retried), never "unknown". */
    assert_int_equal(td_registry_get(r, 3, &json, &len), TD_REG_WAIT);
    wait_errors(r, 2);
    assert_int_equal(td_registry_get(r, 3, &json, &len), TD_REG_WAIT);
    assert_non_null(strstr(td_registry_error(r), "40403"));
    td_registry_destroy(r);
}

static void test_registry_bad_answers_and_5xx_are_retried(void **state) {
    td_registry_t *r = stand_in();
    const char *json = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(td_registry_get(r, 4, &json, &len), TD_REG_WAIT);
    wait_errors(r, 2); /* retried after the backoff */
    assert_non_null(strstr(td_registry_error(r), "schema id 4"));
    assert_non_null(strstr(td_registry_error(r), "not JSON"));
    assert_int_equal(td_registry_get(r, 5, &json, &len), TD_REG_WAIT);
    wait_errors(r, 4);
    assert_int_equal(td_registry_get(r, 5, &json, &len), TD_REG_WAIT);
    td_registry_destroy(r);
}

static void test_registry_unreachable_waits_without_blocking(void **state) {
    char url[128];
    td_registry_t *r;
    const char *json = NULL;
    size_t len = 0;
    int64_t t0;

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", td_h_free_port());
    r = new_registry(url, NULL);
    t0 = td_mono_ms();
    assert_int_equal(td_registry_get(r, 7, &json, &len), TD_REG_WAIT);
    td_registry_poll(r);
    assert_true(td_mono_ms() - t0 < 500);
    wait_errors(r, 1);
    assert_int_equal(td_registry_get(r, 7, &json, &len), TD_REG_WAIT);
    assert_non_null(strstr(td_registry_error(r), "schema id 7"));
    td_registry_destroy(r);
}

static void test_registry_without_url_knows_only_the_map(void **state) {
    char dir[512], map[600], avsc[600];
    td_registry_t *r;
    const char *json = NULL;
    size_t len = 0;

    (void)state;
    snprintf(dir, sizeof(dir), "%s", td_h_tmpdir());
    snprintf(map, sizeof(map), "%s/ok.map", dir);
    snprintf(avsc, sizeof(avsc), "%s/s.avsc", dir);
    write_file(avsc, SCHEMA);
    write_file(map, "# comment\n\n12 s.avsc\n4294967295\t"
                    "s.avsc\n");
    r = new_registry(NULL, map);
    assert_int_equal(td_registry_map_cnt(r), 2);
    assert_true(td_registry_map_id(r, 0) == 12);
    assert_true(td_registry_map_id(r, 1) == 4294967295u);
    assert_int_equal(td_registry_get(r, 12, &json, &len), TD_REG_FOUND);
    assert_string_equal(json, SCHEMA);
    assert_int_equal(td_registry_get(r, 13, &json, &len), TD_REG_UNKNOWN);
    td_registry_destroy(r);
}

static void test_registry_map_errors_name_file_and_line(void **state) {
    static const struct {
        const char *text;
        const char *want;
    } bad[] = {
        {"x s.avsc\n", ":1: bad schema id 'x'"},
        {"\n-1 s.avsc\n", ":2: bad schema id '-1'"},
        {"4294967296 s.avsc\n", ":1: bad schema id"},
        {"7\n", ":1: expected 'ID PATH'"},
        {"7 s.avsc extra\n", ":1: expected 'ID PATH'"},
        {"7 s.avsc\n7 s.avsc\n", ":2: schema id 7 twice"},
        {"7 missing.avsc\n", ":1: cannot open"},
    };
    char map[600], errstr[512];
    td_registry_conf_t rc = {.map_file = map};

    (void)state;
    snprintf(map, sizeof(map), "%s/s.avsc", td_h_tmpdir());
    write_file(map, SCHEMA);
    snprintf(map, sizeof(map), "%s/bad.map", td_h_tmpdir());
    for (size_t i = 0; i < TD_ARRAY_LEN(bad); i++) {
        write_file(map, bad[i].text);
        errstr[0] = '\0';
        assert_null(td_registry_new(&rc, errstr, sizeof(errstr)));
        if (!strstr(errstr, bad[i].want) || !strstr(errstr, "bad.map"))
            fail_msg("map \"%s\": got \"%s\", want \"%s\"", bad[i].text, errstr,
                     bad[i].want);
    }
    snprintf(map, sizeof(map), "%s/none.map", td_h_tmpdir());
    assert_null(td_registry_new(&rc, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "cannot open schema map"));
    td_registry_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_found_is_fetched_once_and_cached),
        cmocka_unit_test(test_registry_not_found_needs_error_code_40403),
        cmocka_unit_test(test_registry_bad_answers_and_5xx_are_retried),
        cmocka_unit_test(test_registry_unreachable_waits_without_blocking),
        cmocka_unit_test(test_registry_without_url_knows_only_the_map),
        cmocka_unit_test(test_registry_map_errors_name_file_and_line),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
