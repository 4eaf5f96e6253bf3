/*
 * args.c - the module's argument vectors, checked without Redis (args.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "args.h"
#include "history.h"
#include "pack.h"
#include "rdump.h"

int td_marg_i64(const char *p, size_t len, int64_t *out) {
    uint64_t v = 0, lim = (uint64_t)INT64_MAX;
    size_t i = 0;
    int neg = 0;

    if (len == 0 || len > 20) return -1;
    if (len == 1 && p[0] == '0') {
        *out = 0;
        return 0;
    }
    if (p[0] == '-') {
        neg = 1;
        lim += 1; /* |INT64_MIN| */
        i = 1;
    }
    if (i == len || p[i] < '1' || p[i] > '9') return -1;
    for (; i < len; i++) {
        unsigned d = (unsigned char)p[i] - '0';
        if (d > 9) return -1;
        if (v > (lim - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* A finite decimal double, as %.17g writes one. */
static int marg_dbl(const char *p, size_t len) {
    char buf[64], *end;
    double d;

    if (len == 0 || len >= sizeof(buf)) return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (buf[0] == ' ' || buf[0] == '\t' || buf[0] == '+') return -1;
    d = strtod(buf, &end);
    return end == buf + len && isfinite(d) ? 0 : -1;
}

static int bad(char *errstr, size_t errstr_size, const char *what, int i) {
    snprintf(errstr, errstr_size, "ERR %s (argument %d)", what, i);
    return -1;
}

int td_mark_args_parse(const td_marg_t *argv,
                       td_mark_args_t *a,
                       char *errstr,
                       size_t errstr_size) {
    int64_t v;

    if (td_marg_i64(argv[0].p, argv[0].len, &a->version) != 0)
        return bad(errstr, errstr_size, "mark version is not an integer", 0);
    if (marg_dbl(argv[1].p, argv[1].len) != 0)
        return bad(errstr, errstr_size, "mark score is not a number", 1);
    if (td_marg_i64(argv[2].p, argv[2].len, &v) != 0)
        return bad(errstr, errstr_size, "mark tier is not an integer", 2);
    if (td_marg_i64(argv[3].p, argv[3].len, &v) != 0)
        return bad(errstr, errstr_size, "mark ms is not an integer", 3);
    return 0;
}

/* Appends one element to the flat vector. */
static int vadd(td_marg_t *v,
                int *from,
                int cap,
                int *n,
                const void *p,
                size_t len,
                int src) {
    if (*n >= cap) return -1;
    v[*n].p = p;
    v[*n].len = len;
    from[*n] = src;
    (*n)++;
    return 0;
}

int td_put_args_unpack(const td_marg_t *argv,
                       int argc,
                       td_marg_t *v,
                       int *from,
                       int cap,
                       int *vargc,
                       char *errstr,
                       size_t errstr_size) {
    const uint8_t *p, *end, *e;
    size_t len = 0;
    int64_t nsrc;
    int n = 0, want;

/* The next element of <meta> onto v. */
#define META_NEXT()                                                            \
    do {                                                                       \
        if (td_pack_next(&p, end, &e, &len) != 1) goto bad;                    \
        if (vadd(v, from, cap, &n, e, len, -1) != 0) goto many;                \
    } while (0)
/* Wire argument i onto v. */
#define WIRE(i)                                                                \
    do {                                                                       \
        if (vadd(v, from, cap, &n, argv[i].p, argv[i].len, i) != 0) goto many; \
    } while (0)

    if (argc != 9 && argc != 10) goto arity;
    p = (const uint8_t *)argv[TD_PUT_WIRE_META].p;
    end = p + argv[TD_PUT_WIRE_META].len;
    WIRE(0);
    for (int i = 0; i < TD_PUT_KEYS; i++)
        WIRE(TD_PUT_WIRE_KEY + i);
    META_NEXT(); /* expected */
    WIRE(TD_PUT_WIRE_BLOB);
    META_NEXT(); /* nsrc */
    if (td_marg_i64((const char *)e, len, &nsrc) != 0 || nsrc < 0 || nsrc > cap)
        return bad(errstr, errstr_size, "bad source count in meta",
                   TD_PUT_WIRE_META);
    for (int i = 0; i < 3 * (int)nsrc + 1; i++)
        META_NEXT(); /* the sources, the mark version or "" */
    if (len > 0) {
        for (int i = 0; i < 3; i++)
            META_NEXT(); /* the mark's score, tier, ms */
    }
    WIRE(TD_PUT_WIRE_SIGNALS);
    want = argc == 10;
    if (want) {
        META_NEXT(); /* the score's expected version */
        WIRE(TD_PUT_WIRE_SCORE);
        META_NEXT(); /* the history head */
    }
    if (td_pack_next(&p, end, &e, &len) != 0) goto bad;
    *vargc = n;
    return 0;
#undef META_NEXT
#undef WIRE
bad:
    return bad(errstr, errstr_size,
               "meta does not hold the elements the put needs",
               TD_PUT_WIRE_META);
many:
    return bad(errstr, errstr_size, "too many sources", TD_PUT_WIRE_META);
arity:
    snprintf(errstr, errstr_size,
             "ERR wrong number of arguments for 'td.put' command");
    return -1;
}

int td_put_args_parse(const td_marg_t *argv,
                      int argc,
                      td_put_args_t *a,
                      char *errstr,
                      size_t errstr_size) {
    int64_t n, v;
    int i, rest;

    memset(a, 0, sizeof(*a));
    a->mark = a->score = a->score_ver = a->head = -1;
    /* name, 5 keys, expected, state, nsrc, mark, signals */
    if (argc < 11) goto arity;
    if (argv[TD_PUT_EXPECT].len > TD_PUT_VERSION_LEN)
        return bad(errstr, errstr_size, "expected version is over 8 bytes",
                   TD_PUT_EXPECT);
    if (argv[TD_PUT_STATE].len < TD_PUT_VERSION_LEN)
        return bad(errstr, errstr_size, "state blob is under 8 bytes",
                   TD_PUT_STATE);
    if (td_marg_i64(argv[TD_PUT_NSRC].p, argv[TD_PUT_NSRC].len, &n) != 0 ||
        n < 0 || n > (argc - 11) / 3)
        return bad(errstr, errstr_size, "bad source count", TD_PUT_NSRC);
    a->nsrc = (int)n;
    a->src = TD_PUT_NSRC + 1;
    for (i = 0; i < a->nsrc; i++) {
        int p = a->src + 3 * i;
        if (td_marg_i64(argv[p + 1].p, argv[p + 1].len, &v) != 0)
            return bad(errstr, errstr_size, "first offset is not an integer",
                       p + 1);
        if (td_marg_i64(argv[p + 2].p, argv[p + 2].len, &v) != 0)
            return bad(errstr, errstr_size, "next offset is not an integer",
                       p + 2);
    }
    i = a->src + 3 * a->nsrc;
    if (argv[i].len > 0) {
        td_mark_args_t m;
        if (argc - i < 5) goto arity;
        if (td_mark_args_parse(argv + i, &m, errstr, errstr_size) != 0)
            return -1;
        a->mark = i;
        a->mark_version = m.version;
        i += 4;
    } else {
        i += 1;
    }
    rest = argc - i;
    if (rest != 1 && rest != 4) goto arity;
    a->signals = i;
    if (rest == 4) {
        a->score_ver = i + 1;
        a->score = i + 2;
        a->head = i + 3;
        if (argv[a->head].len != TD_HISTORY_HEAD)
            return bad(errstr, errstr_size, "history head is not 8 bytes",
                       a->head);
        if (argv[i + 1].len > 0 &&
            (td_marg_i64(argv[i + 1].p, argv[i + 1].len, &a->sv) != 0 ||
             a->sv < 0 || a->sv == INT64_MAX))
            return bad(errstr, errstr_size,
                       "score version is not an integer >= 0", i + 1);
    }
    return 0;
arity:
    snprintf(errstr, errstr_size,
             "ERR wrong number of arguments for 'td.put' command");
    return -1;
}

int td_part_args_parse(const td_marg_t *argv,
                       int argc,
                       td_part_args_t *a,
                       char *errstr,
                       size_t errstr_size) {
    memset(a, 0, sizeof(*a));
    if (argc < 3) goto arity;
    if (argv[2].len == 5 && !strncasecmp(argv[2].p, "claim", 5)) {
        a->claim = 1;
        if (argc > 4) goto arity;
        if (argc == 4 && td_marg_i64(argv[3].p, argv[3].len, &a->min_epoch))
            return bad(errstr, errstr_size, "min epoch is not an integer", 3);
        return 0;
    }
    if (argv[2].len != 3 || strncasecmp(argv[2].p, "set", 3))
        return bad(errstr, errstr_size, "expected CLAIM or SET", 2);
    if (argc != 6 && argc != 8) goto arity;
    if (td_marg_i64(argv[3].p, argv[3].len, &a->epoch) != 0)
        return bad(errstr, errstr_size, "epoch is not an integer", 3);
    if (td_marg_i64(argv[4].p, argv[4].len, &a->committed) != 0)
        return bad(errstr, errstr_size, "committed is not an integer", 4);
    if (td_marg_i64(argv[5].p, argv[5].len, &a->intent) != 0)
        return bad(errstr, errstr_size, "intent is not an integer", 5);
    if (argc == 8) {
        a->ack = 1;
        if (td_marg_i64(argv[6].p, argv[6].len, &a->ack_committed) != 0)
            return bad(errstr, errstr_size, "ack committed is not an integer",
                       6);
        if (td_marg_i64(argv[7].p, argv[7].len, &a->ack_intent) != 0)
            return bad(errstr, errstr_size, "ack intent is not an integer", 7);
    }
    return 0;
arity:
    snprintf(errstr, errstr_size,
             "ERR wrong number of arguments for 'td.part' command");
    return -1;
}

int td_score_args_check(const td_marg_t *argv,
                        int argc,
                        char *errstr,
                        size_t errstr_size) {
    if (argc < 6 || argc % 2 != 0) {
        snprintf(errstr, errstr_size,
                 "ERR wrong number of arguments for 'td.score' command");
        return -1;
    }
    if (argv[3].len != TD_HISTORY_HEAD)
        return bad(errstr, errstr_size, "history head is not 8 bytes", 3);
    return 0;
}

int td_payload_check(const char *what,
                     const void *p,
                     size_t len,
                     char *errstr,
                     size_t errstr_size) {
    const unsigned char *b = p;
    uint64_t crc = 0;
    unsigned ver;

    if (len < 10) {
        snprintf(errstr, errstr_size, "ERR %s payload is too short", what);
        return -1;
    }
    ver = (unsigned)b[len - 10] | (unsigned)b[len - 9] << 8;
    if (ver > TD_PAYLOAD_RDB_MAX) {
        snprintf(errstr, errstr_size,
                 "ERR %s payload has RDB version %u, over %d", what, ver,
                 TD_PAYLOAD_RDB_MAX);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        crc |= (uint64_t)b[len - 8 + i] << (8 * i);
    if (td_rdump_crc64(0, b, len - 8) != crc) {
        snprintf(errstr, errstr_size, "ERR %s payload fails its CRC-64", what);
        return -1;
    }
    return 0;
}
