/*
 * history.c - the score history's records (history.h): encoding, trimming
 * and decoding. Shared by trustd, trustctl and the Redis module; the Lua
 * library does the same trim in td_put and td_score.
 */
#include "history.h"

#include <math.h>
#include <string.h>

static void put_le(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static unsigned long scaled(double x, double scale, unsigned long max) {
    double v;

    if (!(x > 0)) return 0; /* also NaN */
    v = floor(x * scale + 0.5);
    return v >= (double)max ? max : (unsigned long)v;
}

void td_history_head(unsigned char head[TD_HISTORY_HEAD],
                     int64_t ms,
                     double score,
                     int tier,
                     double confidence) {
    int64_t s = ms / 1000;

    if (s < 0) s = 0;
    if (s > (int64_t)UINT32_MAX) s = UINT32_MAX;
    put_le(head, (uint64_t)s, 4);
    put_le(head + 4, scaled(score, 100, 10000), 2);
    head[6] = (unsigned char)(tier < 0 ? 0 : tier > 255 ? 255 : tier);
    head[7] = (unsigned char)scaled(confidence, 100, 100);
}

uint32_t td_history_secs(const unsigned char *rec) {
    return (uint32_t)get_le(rec, 4);
}

size_t td_history_append(unsigned char *out,
                         const unsigned char *old,
                         size_t oldlen,
                         const unsigned char head[TD_HISTORY_HEAD],
                         uint64_t version) {
    uint32_t now = td_history_secs(head);
    uint32_t horizon =
        now > TD_HISTORY_DAYS * 86400u ? now - TD_HISTORY_DAYS * 86400u : 0;
    size_t n = oldlen / TD_HISTORY_POINT, first = 0, len;

    while (first < n &&
           td_history_secs(old + first * TD_HISTORY_POINT) < horizon)
        first++;
    if (n - first > TD_HISTORY_MAX - 1) first = n - (TD_HISTORY_MAX - 1);
    len = (n - first) * TD_HISTORY_POINT;
    if (len) memmove(out, old + first * TD_HISTORY_POINT, len);
    memcpy(out + len, head, TD_HISTORY_HEAD);
    put_le(out + len + TD_HISTORY_HEAD, version, 8);
    return len + TD_HISTORY_POINT;
}

int td_history_decode(const unsigned char *s,
                      size_t len,
                      td_history_point_t *pts,
                      int max) {
    int n = 0;

    for (size_t off = 0; off + TD_HISTORY_POINT <= len && n < max;
         off += TD_HISTORY_POINT, n++) {
        const unsigned char *r = s + off;
        pts[n].ms = (int64_t)td_history_secs(r) * 1000;
        pts[n].score = (double)get_le(r + 4, 2) / 100;
        pts[n].tier = r[6];
        pts[n].confidence = (double)r[7] / 100;
        pts[n].version = get_le(r + 8, 8);
    }
    return n;
}
