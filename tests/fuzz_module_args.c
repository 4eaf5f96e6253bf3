/*
 * fuzz_module_args.c - libFuzzer target over the Redis module's argument
 * parsing (processor/module/args.c), which runs on every TD.* command
 * before it touches a key. Built and run by tests/fuzz.sh.
 *
 * Input layout: arguments separated by 0x00 bytes (argv[0] included); each
 * is copied into a buffer of exactly its size, so ASan sees any read past
 * one. Every parser runs on the vector, TD.PUT's as its flat vector and as
 * its wire form (unpacked, then parsed), and on each argument the number
 * and payload checks; the whole input is also TD.PUT's <meta> in a wire
 * vector of 9 and of 10 arguments, so that packed lengths with zero bytes
 * are reached. Besides "no crash, no leak, no UB" it checks:
 *   - a rejected vector has an errstr starting "ERR ";
 *   - an accepted TD.PUT vector's indexes lie inside argv and add up to
 *     argc (sources, mark, payloads, history head), its numbers parse;
 *   - an unpacked wire vector's elements are its arguments or lie inside
 *     its <meta>;
 *   - a number td_marg_i64 accepts prints back to the same bytes.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module/args.h"

#define ARGS_MAX 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(int rc, const char *errstr) {
    if (rc != 0 && strncmp(errstr, "ERR ", 4) != 0) abort();
}

static void check_put(const td_marg_t *av, int argc) {
    char errstr[256] = "";
    td_put_args_t a;
    int rc = td_put_args_parse(av, argc, &a, errstr, sizeof(errstr));
    int end;

    check_err(rc, errstr);
    if (rc != 0) return;
    if (a.nsrc < 0 || a.src != TD_PUT_NSRC + 1) abort();
    end = a.src + 3 * a.nsrc;
    if (a.mark >= 0 && a.mark != end) abort();
    end += a.mark >= 0 ? 4 : 1;
    if (a.signals != end) abort();
    if (a.score >= 0 &&
        (a.score_ver != end + 1 || a.score != end + 2 || a.head != end + 3 ||
         a.head != argc - 1 || av[a.head].len != 8))
        abort();
    if (a.score < 0 && a.signals != argc - 1) abort();
    if (av[TD_PUT_STATE].len < TD_PUT_VERSION_LEN) abort();
    for (int i = 0; i < a.nsrc; i++) {
        int64_t v;
        if (td_marg_i64(av[a.src + 3 * i + 1].p, av[a.src + 3 * i + 1].len,
                        &v) != 0)
            abort();
    }
}

static void check_wire(const td_marg_t *av, int argc) {
    static td_marg_t v[ARGS_MAX];
    static int from[ARGS_MAX];
    char errstr[256] = "";
    const char *meta;
    int n = -1;
    int rc = td_put_args_unpack(av, argc, v, from, ARGS_MAX, &n, errstr,
                                sizeof(errstr));

    check_err(rc, errstr);
    if (rc != 0) return;
    if (n < 1 || n > ARGS_MAX) abort();
    meta = av[TD_PUT_WIRE_META].p;
    for (int i = 0; i < n; i++) {
        if (from[i] >= argc) abort();
        if (from[i] >= 0 &&
            (v[i].p != av[from[i]].p || v[i].len != av[from[i]].len))
            abort();
        if (from[i] < 0 &&
            (v[i].p < meta ||
             v[i].p + v[i].len > meta + av[TD_PUT_WIRE_META].len))
            abort();
    }
    check_put(v, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    td_marg_t av[ARGS_MAX];
    char *copies[ARGS_MAX];
    char errstr[256];
    int argc = 0;
    size_t start = 0;

    for (size_t i = 0; i <= size && argc < ARGS_MAX; i++) {
        if (i < size && data[i] != 0) continue;
        size_t len = i - start;
        copies[argc] = malloc(len ? len : 1);
        if (len) memcpy(copies[argc], data + start, len);
        av[argc].p = copies[argc];
        av[argc].len = len;
        argc++;
        start = i + 1;
    }

    check_put(av, argc);
    check_wire(av, argc);
    {
        td_marg_t w[10] = {
            {"TD.PUT", 6}, {"P", 1},        {"s", 1},
            {"w", 1},      {"g", 1},        {"c", 1},
            {"h", 1},      {"VVVVVVVV", 8}, {(const char *)data, size},
            {"S", 1}};
        check_wire(w, 9);
        check_wire(w, 10);
    }
    {
        td_part_args_t a;
        errstr[0] = '\0';
        check_err(td_part_args_parse(av, argc, &a, errstr, sizeof(errstr)),
                  errstr);
    }
    if (argc >= 4) {
        td_mark_args_t m;
        errstr[0] = '\0';
        check_err(td_mark_args_parse(av, &m, errstr, sizeof(errstr)), errstr);
    }
    errstr[0] = '\0';
    check_err(td_score_args_check(av, argc, errstr, sizeof(errstr)), errstr);
    for (int i = 0; i < argc; i++) {
        int64_t v;
        char back[32];
        if (td_marg_i64(av[i].p, av[i].len, &v) == 0) {
            int n = snprintf(back, sizeof(back), "%" PRId64, v);
            if ((size_t)n != av[i].len || memcmp(back, av[i].p, av[i].len))
                abort();
        }
        errstr[0] = '\0';
        check_err(
            td_payload_check("arg", av[i].p, av[i].len, errstr, sizeof(errstr)),
            errstr);
    }
    for (int i = 0; i < argc; i++)
        free(copies[i]);
    return 0;
}
