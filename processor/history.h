/*
 * history.h - a merchant's score history: one point per published score
 * version, kept in Redis as trust:{<m>}:history, a plain string of fixed
 * 16-byte records, oldest first, little-endian:
 *
 *   offset 0  u32  publication time, seconds since the Unix epoch
 *          4  u16  score x 100 (0..10000)
 *          6  u8   tier (1..5)
 *          7  u8   confidence x 100 (0..100)
 *          8  u64  the score hash version the point records
 *
 * A write appends its point, drops points older than TD_HISTORY_DAYS
 * before it and keeps the last TD_HISTORY_MAX: at most 1 KB. trustd sends
 * the first 8 bytes (the head); the server appends the version it gave the
 * score hash in the same atomic step (TD.PUT / TD.SCORE, or td_put /
 * td_score in Lua), so a point exists exactly for each score version.
 * Any client reads the key with GET and one unpack("<IHBBQ") per record.
 */
#ifndef TD_HISTORY_H
#define TD_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#define TD_HISTORY_POINT 16 /* bytes per record */
#define TD_HISTORY_HEAD  8  /* bytes trustd sends: time, score, tier, conf */
#define TD_HISTORY_MAX   64 /* records kept */
#define TD_HISTORY_DAYS  90 /* days kept before the newest point */
#define TD_HISTORY_BYTES (TD_HISTORY_POINT * TD_HISTORY_MAX)

typedef struct td_history_point_s {
    int64_t ms; /* publication time, whole seconds (ms % 1000 == 0) */
    double score;
    int tier;
    double confidence;
    uint64_t version;
} td_history_point_t;

/* Writes the head of a point published at ms into head. Out-of-range
 * values are clamped (score to 0..100, confidence to 0..1, tier 0..255). */
void td_history_head(unsigned char head[TD_HISTORY_HEAD],
                     int64_t ms,
                     double score,
                     int tier,
                     double confidence);

/* The publication time, in seconds, of a head or a record. */
uint32_t td_history_secs(const unsigned char *rec);

/*
 * The history after one write: old (oldlen bytes, whole records; a trailing
 * partial record is ignored) with head + version appended, then trimmed.
 * Writes into out (TD_HISTORY_BYTES bytes) and returns the length.
 */
size_t td_history_append(unsigned char *out,
                         const unsigned char *old,
                         size_t oldlen,
                         const unsigned char head[TD_HISTORY_HEAD],
                         uint64_t version);

/* Decodes up to max points of s (len bytes) into pts; returns how many. */
int td_history_decode(const unsigned char *s,
                      size_t len,
                      td_history_point_t *pts,
                      int max);

#endif
