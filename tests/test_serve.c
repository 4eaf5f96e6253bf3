/*
 * test_serve.c - trustctl serve's checks that need no server: which
 * addresses it may listen on with and without a token, and which merchant
 * ids it accepts. tests/it_serve.c tests the server itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "conf.h"
#include "serve.h"

typedef struct listen_case_s {
    const char *listen;
    const char *token;
    int ok;
    const char *addr; /* ok: the address; else a part of errstr */
    int port;
} listen_case_t;

/* clang-format off */
static const listen_case_t listen_cases[] = {
    {"127.0.0.1:8080",  "",    1, "127.0.0.1",  8080},
    {"127.0.0.1:0",     "",    1, "127.0.0.1",  0},
    {"127.8.9.10:65535","",    1, "127.8.9.10", 65535},
    {"0.0.0.0:8080",    "",    0, "not a loopback address", 0},
    {"10.1.2.3:8080",   "",    0, "set serve_token", 0},
    {"0.0.0.0:8080",    "tok", 1, "0.0.0.0",    8080},
    {"10.1.2.3:1",      "tok", 1, "10.1.2.3",   1},
    {"localhost:8080",  "",    0, "IPV4ADDRESS:PORT", 0},
    {"127.0.0.1",       "",    0, "IPV4ADDRESS:PORT", 0},
    {"127.0.0.1:",      "",    0, "IPV4ADDRESS:PORT", 0},
    {"127.0.0.1:65536", "",    0, "IPV4ADDRESS:PORT", 0},
    {"127.0.0.1:-1",    "",    0, "IPV4ADDRESS:PORT", 0},
    {"127.0.0.1:80x",   "",    0, "IPV4ADDRESS:PORT", 0},
    {"[::1]:8080",      "",    0, "IPV4ADDRESS:PORT", 0},
    {"",                "",    0, "IPV4ADDRESS:PORT", 0},
};
/* clang-format on */

static void test_listen_is_loopback_unless_a_token_is_set(void **state) {
    for (size_t i = 0; i < TD_ARRAY_LEN(listen_cases); i++) {
        const listen_case_t *c = &listen_cases[i];
        td_conf_t conf;
        char addr[64] = "", errstr[256] = "";
        int port = -1, rc;

        td_conf_init(&conf);
        assert_int_equal(
            td_conf_set(&conf, "listen", c->listen, errstr, sizeof(errstr)),
            TD_OK);
        assert_int_equal(
            td_conf_set(&conf, "serve_token", c->token, errstr, sizeof(errstr)),
            TD_OK);
        rc = td_serve_check_listen(&conf, addr, sizeof(addr), &port, errstr,
                                   sizeof(errstr));
        if (c->ok) {
            if (rc != TD_OK) fail_msg("%s: %s", c->listen, errstr);
            assert_string_equal(addr, c->addr);
            assert_int_equal(port, c->port);
        } else {
            if (rc != TD_ERR) fail_msg("%s accepted", c->listen);
            if (!strstr(errstr, c->addr))
                fail_msg("%s: '%s' lacks '%s'", c->listen, errstr, c->addr);
        }
        td_conf_term(&conf);
    }
}

static void test_merchant_ids_follow_trustds_rule(void **state) {
    char id[TD_MERCHANT_ID_MAX + 2];

    memset(id, 'm', sizeof(id));
    assert_true(td_serve_id_valid("m-1", 3));
    assert_true(td_serve_id_valid(id, TD_MERCHANT_ID_MAX));
    assert_false(td_serve_id_valid(id, TD_MERCHANT_ID_MAX + 1));
    assert_false(td_serve_id_valid("", 0));
    assert_false(td_serve_id_valid("a\0b", 3));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_is_loopback_unless_a_token_is_set),
        cmocka_unit_test(test_merchant_ids_follow_trustds_rule),
    };
    return cmocka_run_group_tests_name("test_serve", tests, NULL, NULL);
}
