/*
 * pack.c - a vector of short byte strings in one argument (pack.h).
 */
#include <string.h>

#include "pack.h"

void td_pack_init(td_pack_t *pk, uint8_t *buf, size_t size) {
    pk->buf = buf;
    pk->len = 0;
    pk->size = size;
    pk->overflow = 0;
}

void td_pack_add(td_pack_t *pk, const void *p, size_t len) {
    uint8_t hdr[4];
    size_t n = 0, v = len;

    if (len > TD_PACK_ELEM_MAX) {
        pk->overflow = 1;
        return;
    }
    do {
        hdr[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    if (pk->overflow || pk->size - pk->len < n + len) {
        pk->overflow = 1;
        return;
    }
    memcpy(pk->buf + pk->len, hdr, n);
    if (len) memcpy(pk->buf + pk->len + n, p, len);
    pk->len += n + len;
}

void td_pack_str(td_pack_t *pk, const char *s) {
    td_pack_add(pk, s, strlen(s));
}

int td_pack_next(const uint8_t **p,
                 const uint8_t *end,
                 const uint8_t **elem,
                 size_t *len) {
    const uint8_t *s = *p;
    size_t v = 0;
    int shift = 0;

    if (s >= end) return 0;
    for (;;) {
        if (s >= end || shift == 28) return -1;
        v |= (size_t)(*s & 0x7f) << shift;
        shift += 7;
        if (!(*s++ & 0x80)) break;
    }
    if ((size_t)(end - s) < v) return -1;
    *elem = s;
    *len = v;
    *p = s + v;
    return 1;
}

int td_pack_count(const void *p, size_t len) {
    const uint8_t *s = p, *end = s + len, *e;
    size_t elen;
    int n = 0, rc;

    while ((rc = td_pack_next(&s, end, &e, &elen)) == 1)
        n++;
    return rc < 0 ? -1 : n;
}
