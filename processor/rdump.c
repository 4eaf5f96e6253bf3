/*
 * rdump.c - Redis DUMP payloads of small hashes (see rdump.h).
 */
#include <pthread.h>
#include <string.h>

#include "rdump.h"

#define PREFIX           6 /* type byte + the longest RDB length (0x80 + u32) */
#define LP_HDR           6
#define LP_EOF           0xFF
#define LP_COUNT_UNKNOWN 0xFFFF

/* ---- CRC-64/Jones, slice-by-8 ---- */

#define CRC64_POLY_REFLECTED 0x95ac9329ac4bc9b5ULL

static uint64_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (int n = 0; n < 256; n++) {
        uint64_t c = (uint64_t)n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC64_POLY_REFLECTED : c >> 1;
        crc_tab[0][n] = c;
    }
    for (int n = 0; n < 256; n++) {
        uint64_t c = crc_tab[0][n];
        for (int k = 1; k < 8; k++) {
            c = crc_tab[0][c & 0xff] ^ (c >> 8);
            crc_tab[k][n] = c;
        }
    }
}

uint64_t td_rdump_crc64(uint64_t crc, const void *p, size_t len) {
    const uint8_t *s = p;

    pthread_once(&crc_once, crc_init);
    while (len >= 8) {
        uint64_t v = (uint64_t)s[0] | (uint64_t)s[1] << 8 |
                     (uint64_t)s[2] << 16 | (uint64_t)s[3] << 24 |
                     (uint64_t)s[4] << 32 | (uint64_t)s[5] << 40 |
                     (uint64_t)s[6] << 48 | (uint64_t)s[7] << 56;
        crc ^= v;
        crc = crc_tab[7][crc & 0xff] ^ crc_tab[6][(crc >> 8) & 0xff] ^
              crc_tab[5][(crc >> 16) & 0xff] ^ crc_tab[4][(crc >> 24) & 0xff] ^
              crc_tab[3][(crc >> 32) & 0xff] ^ crc_tab[2][(crc >> 40) & 0xff] ^
              crc_tab[1][(crc >> 48) & 0xff] ^ crc_tab[0][crc >> 56];
        s += 8;
        len -= 8;
    }
    while (len--)
        crc = crc_tab[0][(crc ^ *s++) & 0xff] ^ (crc >> 8);
    return crc;
}

/* ---- listpack entries ---- */

/* Redis' rule (listpack.c lpStringToInt64): an optional '-', then "0"
 * alone or a digit 1-9 and more digits, fewer than 21 bytes, within
 * int64. Anything else ("-0", "007", "1e3", "+1") stays a string. */
static int lp_int(const char *s, size_t len, int64_t *out) {
    size_t i = 0;
    int neg = 0;
    uint64_t v;

    if (len == 0 || len >= 21) return 0;
    if (len == 1 && s[0] == '0') {
        *out = 0;
        return 1;
    }
    if (s[0] == '-') {
        neg = 1;
        if (++i == len) return 0;
    }
    if (s[i] < '1' || s[i] > '9') return 0;
    v = (uint64_t)(s[i++] - '0');
    for (; i < len; i++) {
        unsigned dgt = (unsigned)(s[i] - '0');
        if (dgt > 9) return 0;
        if (v > UINT64_MAX / 10 || v * 10 > UINT64_MAX - dgt) return 0;
        v = v * 10 + dgt;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return 0;
        *out = (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)v;
    }
    return 1;
}

/* Writes the encoding and data of one element; returns their length. */
static size_t lp_encode(uint8_t *p, const char *s, size_t len) {
    int64_t v;

    if (lp_int(s, len, &v)) {
        uint64_t u = (uint64_t)v;
        size_t n;
        if (v >= 0 && v <= 127) {
            p[0] = (uint8_t)v;
            return 1;
        }
        if (v >= -4096 && v <= 4095) {
            u &= 0x1fff;
            p[0] = (uint8_t)(0xC0 | (u >> 8));
            p[1] = (uint8_t)u;
            return 2;
        }
        if (v >= -32768 && v <= 32767) {
            p[0] = 0xF1;
            n = 2;
        } else if (v >= -8388608 && v <= 8388607) {
            p[0] = 0xF2;
            n = 3;
        } else if (v >= INT32_MIN && v <= INT32_MAX) {
            p[0] = 0xF3;
            n = 4;
        } else {
            p[0] = 0xF4;
            n = 8;
        }
        for (size_t i = 0; i < n; i++)
            p[1 + i] = (uint8_t)(u >> (8 * i));
        return 1 + n;
    }
    /* 64 bytes and up (to TD_RDUMP_LONG_MAX) take the 12-bit form. */
    if (len < 64) {
        p[0] = (uint8_t)(0x80 | len);
        memcpy(p + 1, s, len);
        return 1 + len;
    }
    p[0] = (uint8_t)(0xE0 | (len >> 8));
    p[1] = (uint8_t)len;
    memcpy(p + 2, s, len);
    return 2 + len;
}

/* The entry's length written backwards after it, so a listpack can be
 * walked from its end; entries here are below 16383 bytes. */
static size_t lp_backlen(uint8_t *p, size_t l) {
    if (l <= 127) {
        p[0] = (uint8_t)l;
        return 1;
    }
    p[0] = (uint8_t)(l >> 7);
    p[1] = (uint8_t)((l & 127) | 128);
    return 2;
}

static void lp_add(td_rdump_t *d, const char *s, size_t len) {
    /* encoding (<= 9) + data + backlen (<= 2) */
    size_t room = 2 + len + 9 + 2;
    size_t n;

    if (d->overflow) return;
    if (len > d->str_max || d->len + room + 1 + 10 > d->cap) {
        d->overflow = 1;
        return;
    }
    n = lp_encode(d->buf + d->len, s, len);
    d->len += n;
    d->len += lp_backlen(d->buf + d->len, n);
    d->count++;
}

void td_rdump_begin(td_rdump_t *d, uint8_t *buf, size_t cap) {
    d->buf = buf;
    d->cap = cap;
    d->str_max = TD_RDUMP_STR_MAX;
    d->len = PREFIX + LP_HDR;
    d->count = 0;
    d->overflow = cap < TD_RDUMP_OVERHEAD + LP_HDR + 1;
}

void td_rdump_begin_long(td_rdump_t *d, uint8_t *buf, size_t cap) {
    td_rdump_begin(d, buf, cap);
    d->str_max = TD_RDUMP_LONG_MAX;
}

void td_rdump_add(td_rdump_t *d,
                  const char *field,
                  size_t flen,
                  const char *val,
                  size_t vlen) {
    lp_add(d, field, flen);
    lp_add(d, val, vlen);
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

const uint8_t *td_rdump_end(td_rdump_t *d, size_t *len) {
    uint8_t *lp = d->buf + PREFIX;
    size_t lplen, start;
    uint64_t crc;

    if (d->overflow) return NULL;
    d->buf[d->len++] = LP_EOF;
    lplen = d->len - PREFIX;
    put_le(lp, lplen, 4);
    put_le(lp + 4, d->count < LP_COUNT_UNKNOWN ? d->count : LP_COUNT_UNKNOWN,
           2);

    /* RDB string length, big endian: 6-bit, 14-bit or 0x80 + 32-bit. */
    if (lplen < 64) {
        start = PREFIX - 2;
        d->buf[start + 1] = (uint8_t)lplen;
    } else if (lplen < 16384) {
        start = PREFIX - 3;
        d->buf[start + 1] = (uint8_t)(0x40 | (lplen >> 8));
        d->buf[start + 2] = (uint8_t)lplen;
    } else {
        start = 0;
        d->buf[1] = 0x80;
        for (int i = 0; i < 4; i++)
            d->buf[2 + i] = (uint8_t)(lplen >> (8 * (3 - i)));
    }
    d->buf[start] = TD_RDUMP_TYPE_HASH_LP;

    put_le(d->buf + d->len, TD_RDUMP_RDB_VERSION, 2);
    d->len += 2;
    crc = td_rdump_crc64(0, d->buf + start, d->len - start);
    put_le(d->buf + d->len, crc, 8);
    d->len += 8;
    *len = d->len - start;
    return d->buf + start;
}
