/*
 * log.h - the trustd logger: four levels, one line per call, text or JSON.
 *
 * Modelled on Redis serverLog()/_serverLog() (server.h, server.c): the
 * td_log() macro compares the level with the configured minimum before any
 * argument is evaluated or formatted, and the line is built in a fixed stack
 * buffer. Each line goes out in one write(2), so lines from different threads
 * (librdkafka calls us from its internal threads through
 * rd_kafka_conf_set_log_cb()) never interleave.
 *
 * Text:  2026-11-23T22:30:01.123Z notice trustd[4242]: message
 * JSON:  {"ts":"2026-11-23T22:30:01.123Z","level":"notice","pid":4242,
 *         "msg":"message"}            (one line)
 *
 * Repeated errors go through a td_log_ratelimit_t, which logs the first
 * occurrence of an error code, counts the rest for an interval and then logs
 * the next one with "(N identical suppressed)", like
 * rd_kafka_broker_set_error() in librdkafka's rdkafka_broker.c.
 */
#ifndef TD_LOG_H
#define TD_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#if defined(__GNUC__)
#define TD_LOG_PRINTF(fmt_idx, arg_idx)                                        \
    __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define TD_LOG_PRINTF(fmt_idx, arg_idx)
#endif

/* Levels, lowest first; a line is written when level >= the minimum. */
#define TD_LOG_DEBUG   0
#define TD_LOG_VERBOSE 1
#define TD_LOG_NOTICE  2
#define TD_LOG_WARNING 3

/* Longest message in bytes, like Redis LOG_MAX_LEN; longer ones are cut. */
#define TD_LOG_MAX_LEN 1024

/* Error codes a td_log_ratelimit_t tracks separately: 0..TD_LOG_RL_CODES-1. */
#define TD_LOG_RL_CODES 64

/*
 * The minimum level. Global because every td_log() on every thread reads it,
 * as Redis reads server.verbosity; atomic so td_log_init() may change it while
 * other threads log. Set it only through td_log_init().
 */
extern _Atomic int td_log_min_level;

/*
 * Sets the minimum level (clamped to TD_LOG_DEBUG..TD_LOG_WARNING) and the
 * format (json != 0: one JSON object per line). Callable at any time from any
 * thread.
 */
void td_log_init(int level, int json);

/*
 * Sends lines to fd instead of stderr (2). The caller keeps the fd open while
 * it is in use; tests point it at a temporary file.
 */
void td_log_set_fd(int fd);

/*
 * Sets the program name shown in text lines ("trustd" by default); it is
 * copied and cut to 31 bytes. Call before other threads log.
 */
void td_log_set_ident(const char *ident);

/*
 * Level for "debug", "verbose", "notice" or "warning" (any case); -1 for
 * anything else, including NULL.
 */
int td_log_level_from_name(const char *name);

/* Name of a level; "?" when out of range. The string is static. */
const char *td_log_level_name(int level);

/*
 * Maps a syslog level (0 emerg .. 7 debug), as librdkafka's log callback
 * receives it, to ours: 0..4 warning, 5 notice, 6 verbose, 7 debug.
 */
int td_log_level_from_syslog(int syslog_level);

/* Non-zero when a line at level would be written. Any thread. */
static inline int td_log_enabled(int level) {
    return level >=
           atomic_load_explicit(&td_log_min_level, memory_order_relaxed);
}

/*
 * Formats and writes one line if level is enabled. Messages longer than
 * TD_LOG_MAX_LEN - 1 bytes are cut; trailing newlines are dropped and other
 * control characters become spaces (text) or are escaped (JSON), so a call is
 * always exactly one line. Any thread; never allocates.
 */
void td_log_write(int level, const char *fmt, ...) TD_LOG_PRINTF(2, 3);
void td_log_vwrite(int level, const char *fmt, va_list ap);

/* Logs at level; arguments are not evaluated when the level is disabled. */
#define td_log(level, ...)                                                     \
    do {                                                                       \
        if (td_log_enabled(level)) td_log_write((level), __VA_ARGS__);         \
    } while (0)


/* One error code's history in a rate limiter. */
typedef struct td_log_rl_slot_s {
    int64_t last_ms;     /* when this code was last logged */
    uint64_t suppressed; /* occurrences since then that were not logged */
    int seen;            /* logged at least once */
} td_log_rl_slot_t;

/*
 * Rate limiter for repeated errors, embedded in its owner (e.g. the worker).
 * Not locked: use one per thread, or serialize calls.
 */
typedef struct td_log_ratelimit_s {
    int64_t interval_ms; /* 0: never suppress */
    td_log_rl_slot_t slot[TD_LOG_RL_CODES];
} td_log_ratelimit_t;

/* Clears all history and sets the interval (negative counts as 0). */
void td_log_rl_init(td_log_ratelimit_t *rl, int64_t interval_ms);

/*
 * Logs at level unless the same code was logged less than interval_ms ago, in
 * which case it only counts. The first line after a suppressed period ends in
 * " (N identical suppressed)". Lines below the minimum level are neither
 * logged nor counted. A code outside 0..TD_LOG_RL_CODES-1 is a caller bug; it
 * is logged without limiting rather than lost.
 *
 * td_log_rl() reads the monotonic clock; td_log_rl_at() takes it as now_ms so
 * tests (and callers that already have the time) can drive it.
 *
 * Returns 1 if a line was written, 0 if not.
 */
int td_log_rl(td_log_ratelimit_t *rl, int code, int level, const char *fmt, ...)
    TD_LOG_PRINTF(4, 5);
int td_log_rl_at(td_log_ratelimit_t *rl,
                 int64_t now_ms,
                 int code,
                 int level,
                 const char *fmt,
                 ...) TD_LOG_PRINTF(5, 6);

#endif
