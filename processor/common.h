/*
 * common.h - small helpers shared by every trustd module: status codes,
 * clocks, array length, the merchant id hash and the allocator that aborts
 * on OOM. Nothing here keeps state.
 */
#ifndef TD_COMMON_H
#define TD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TD_OK  0
#define TD_ERR -1

#define TD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Longest merchant_id the contract allows (bytes, no NUL). */
#define TD_MERCHANT_ID_MAX 64

/* Wall clock in milliseconds since the Unix epoch. */
static inline int64_t td_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic clock in milliseconds: use for timeouts and intervals. */
static inline int64_t td_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic clock in microseconds: for timings summed over many short
 * intervals. */
static inline int64_t td_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* FNV-1a of a merchant id: short keys, good enough spread, cheap. */
static inline uint32_t td_hash_id(const char *id, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 16777619u;
    }
    return h;
}

/* calloc that aborts like Redis' zmalloc: a worker that cannot allocate
 * cannot make progress. */
static inline void *td_xcalloc(size_t n, size_t sz) {
    void *p = calloc(n, sz);
    if (!p) {
        fprintf(stderr, "trustd: out of memory (%zu bytes)\n", n * sz);
        abort();
    }
    return p;
}

/* realloc that aborts the same way; returns the new pointer (the old one
 * is dead). */
static inline void *td_xrealloc(void *p, size_t n) {
    void *np = realloc(p, n ? n : 1);
    if (!np) {
        fprintf(stderr, "trustd: out of memory (%zu bytes)\n", n);
        abort();
    }
    return np;
}

/* Grows *p (an array of elements of size sz, *cap of them) to hold at least
 * n, doubling from 64; aborts on OOM like td_xrealloc(). */
static inline void td_grow(void **p, size_t *cap, size_t n, size_t sz) {
    size_t nc;
    if (n <= *cap) return;
    nc = *cap ? *cap : 64;
    while (nc < n)
        nc *= 2;
    *p = td_xrealloc(*p, nc * sz);
    *cap = nc;
}

#endif
