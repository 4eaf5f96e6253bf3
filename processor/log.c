/*
 * log.c - the trustd logger (see log.h for the line formats).
 *
 * How it works: td_log_vwrite() formats the caller's message into a
 * TD_LOG_MAX_LEN stack buffer (Redis _serverLog() in server.c does the same),
 * then td_log_emit() builds the whole line - timestamp, level, pid, message -
 * in a second stack buffer and hands it to write(2) once. A single write per
 * line is what makes the logger safe to call from librdkafka's threads without
 * a lock: the kernel never interleaves two writes to the same pipe (for lines
 * up to PIPE_BUF) or, on Linux, to the same file.
 *
 * The settings (level, format, fd) are atomics so td_log_init() may run while
 * other threads log. The ident is written once at startup.
 *
 * In JSON mode the message is escaped per RFC 8259 and any byte sequence that
 * is not valid UTF-8 (a cut multi-byte character, bytes from a broker) becomes
 * U+FFFD, so every line is a valid JSON document.
 */
#include "log.h"
#include "common.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/*
 * Worst-case line: every message byte escaped to six ("\u001f" or "\ufffd"),
 * plus the fixed fields and the rate limiter's suffix.
 */
#define TD_LOG_LINE_MAX (TD_LOG_MAX_LEN * 6 + 256)

/* Room kept free at the end of a rate-limited message for its suffix. */
#define TD_LOG_RL_SUFFIX_MAX 48

_Atomic int td_log_min_level = TD_LOG_NOTICE;
static _Atomic int td_log_json = 0;
static _Atomic int td_log_fd = 2;
static char td_log_ident[32] = "trustd";

/* Indexed by level; td_log_level_from_name() walks it. */
static const char *const td_log_level_names[] = {
    [TD_LOG_DEBUG] = "debug",
    [TD_LOG_VERBOSE] = "verbose",
    [TD_LOG_NOTICE] = "notice",
    [TD_LOG_WARNING] = "warning",
};
static_assert(TD_ARRAY_LEN(td_log_level_names) == TD_LOG_WARNING + 1,
              "one name per level");


void td_log_init(int level, int json) {
    if (level < TD_LOG_DEBUG) {
        level = TD_LOG_DEBUG;
    } else if (level > TD_LOG_WARNING) {
        level = TD_LOG_WARNING;
    }
    atomic_store(&td_log_min_level, level);
    atomic_store(&td_log_json, json ? 1 : 0);
}

void td_log_set_fd(int fd) {
    atomic_store(&td_log_fd, fd);
}

void td_log_set_ident(const char *ident) {
    snprintf(td_log_ident, sizeof(td_log_ident), "%s", ident ? ident : "");
}

int td_log_level_from_name(const char *name) {
    if (!name) return -1;
    for (size_t i = 0; i < TD_ARRAY_LEN(td_log_level_names); i++) {
        if (!strcasecmp(name, td_log_level_names[i])) return (int)i;
    }
    return -1;
}

const char *td_log_level_name(int level) {
    if (level < TD_LOG_DEBUG || level > TD_LOG_WARNING) return "?";
    return td_log_level_names[level];
}

int td_log_level_from_syslog(int syslog_level) {
    if (syslog_level <= 4) return TD_LOG_WARNING;
    if (syslog_level == 5) return TD_LOG_NOTICE;
    if (syslog_level == 6) return TD_LOG_VERBOSE;
    return TD_LOG_DEBUG;
}

/*
 * Length of the valid UTF-8 sequence at s (at most n bytes available), or 0
 * if it is not one: a stray continuation byte, an overlong form, a surrogate,
 * a code point above U+10FFFF or a sequence cut short.
 */
static size_t td_log_utf8_len(const unsigned char *s, size_t n) {
    size_t len;
    unsigned cp;

    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) return 0;
    return len;
}

/*
 * Appends msg (len bytes) to buf at *pos as the inside of a JSON string.
 * The caller sized buf for six output bytes per input byte.
 */
static void td_log_json_escape(
    char *buf, size_t size, size_t *pos, const char *msg, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)msg;
    size_t p = *pos;

    for (size_t i = 0; i < len && p + 7 < size;) {
        unsigned char c = s[i];
        size_t n;

        if (c == '"' || c == '\\') {
            buf[p++] = '\\';
            buf[p++] = (char)c;
            i++;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            buf[p++] = '\\';
            buf[p++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            i++;
        } else if (c < 0x20) {
            memcpy(buf + p, "\\u00", 4);
            p += 4;
            buf[p++] = hex[c >> 4];
            buf[p++] = hex[c & 0xf];
            i++;
        } else if ((n = td_log_utf8_len(s + i, len - i)) > 0) {
            memcpy(buf + p, s + i, n);
            p += n;
            i += n;
        } else {
            /* Not UTF-8: one replacement character per bad byte. */
            memcpy(buf + p, "\\ufffd", 6);
            p += 6;
            i++;
        }
    }
    *pos = p;
}

/* Writes all of buf, retrying on EINTR and short writes. */
static void td_log_write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return; /* Nowhere left to report a failing log fd. */
        }
        buf += n;
        len -= (size_t)n;
    }
}

/*
 * Drops trailing newlines, returning the new length: a trailing newline is a
 * habit of printf-style callers, not content.
 */
static size_t td_log_chomp(char *msg) {
    size_t len = strlen(msg);

    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r')) {
        msg[--len] = '\0';
    }
    return len;
}

/* Builds one line for an already formatted message and writes it. */
static void td_log_emit(int level, char *msg) {
    char line[TD_LOG_LINE_MAX];
    char ts[32];
    struct timespec now;
    struct tm tm;
    size_t len = td_log_chomp(msg);
    size_t pos;
    int n;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = (int)strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - (size_t)n, ".%03ldZ",
             (long)(now.tv_nsec / 1000000));

    if (atomic_load(&td_log_json)) {
        n = snprintf(line, sizeof(line),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%ld,\"msg\":\"",
                     ts, td_log_level_name(level), (long)getpid());
        pos = (size_t)n;
        td_log_json_escape(line, sizeof(line) - 3, &pos, msg, len);
        memcpy(line + pos, "\"}\n", 3);
        pos += 3;
    } else {
        /* Other control characters would break the one-line promise. */
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)msg[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                msg[i] = ' ';
            }
        }
        n = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s\n", ts,
                     td_log_level_name(level), td_log_ident, (long)getpid(),
                     msg);
        pos = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    }
    td_log_write_all(atomic_load(&td_log_fd), line, pos);
}

void td_log_vwrite(int level, const char *fmt, va_list ap) {
    char msg[TD_LOG_MAX_LEN];

    if (!td_log_enabled(level)) return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    td_log_emit(level, msg);
}

void td_log_write(int level, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    td_log_vwrite(level, fmt, ap);
    va_end(ap);
}

void td_log_rl_init(td_log_ratelimit_t *rl, int64_t interval_ms) {
    memset(rl, 0, sizeof(*rl));
    rl->interval_ms = interval_ms > 0 ? interval_ms : 0;
}

static int td_log_rl_vat(td_log_ratelimit_t *rl,
                         int64_t now_ms,
                         int code,
                         int level,
                         const char *fmt,
                         va_list ap) {
    char msg[TD_LOG_MAX_LEN];
    td_log_rl_slot_t *slot = NULL;
    uint64_t suppressed = 0;
    size_t len;

    if (!td_log_enabled(level)) return 0;
    if (code >= 0 && code < TD_LOG_RL_CODES) {
        slot = &rl->slot[code];
    }

    if (slot) {
        if (slot->seen && now_ms - slot->last_ms < rl->interval_ms) {
            slot->suppressed++;
            return 0;
        }
        suppressed = slot->suppressed;
        slot->seen = 1;
        slot->last_ms = now_ms;
        slot->suppressed = 0;
    }

    /* Keep room for the suffix so a long message cannot push it out. */
    vsnprintf(msg, sizeof(msg) - TD_LOG_RL_SUFFIX_MAX, fmt, ap);
    if (suppressed > 0) {
        len = td_log_chomp(msg);
        snprintf(msg + len, sizeof(msg) - len, " (%llu identical suppressed)",
                 (unsigned long long)suppressed);
    }
    td_log_emit(level, msg);
    return 1;
}

int td_log_rl_at(td_log_ratelimit_t *rl,
                 int64_t now_ms,
                 int code,
                 int level,
                 const char *fmt,
                 ...) {
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = td_log_rl_vat(rl, now_ms, code, level, fmt, ap);
    va_end(ap);
    return r;
}

int td_log_rl(
    td_log_ratelimit_t *rl, int code, int level, const char *fmt, ...) {
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = td_log_rl_vat(rl, td_mono_ms(), code, level, fmt, ap);
    va_end(ap);
    return r;
}
