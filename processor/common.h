/*
 * common.h - small helpers shared by every trustd module: status codes,
 * clocks and array length. Nothing here allocates or keeps state.
 */
#ifndef TD_COMMON_H
#define TD_COMMON_H

#include <stddef.h>
#include <stdint.h>
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

#endif
