/*
 * mstate.h - the exact per-merchant state trustd merges in memory.
 *
 * Redis keeps each merchant's exact base values in `trust:{m}:state`, a
 * binary string (td_mstate_pack), next to the readable signals hash that
 * dashboards read. trustd caches the state of the merchants it writes, so
 * a flush merges deltas in C and sends one td_put per merchant: a
 * compare-and-set on the state's version that also checks and moves the
 * merchant's source watermarks, writes the state and the readable hash.
 * Merges happen in trustd, formatting too; Redis runs no arithmetic.
 *
 * A cached entry is a hint: td_put refuses (STALE) when the stored version
 * is not the one the entry was built on, or a watermark is past a delta's
 * start; the worker then drops the entry, reloads (td_load) and merges the
 * deltas again, skipping the ones the watermarks show applied.
 *
 * The cache (td_mscache_t) maps merchant ids to entries; it owns them.
 */
#ifndef TD_MSTATE_H
#define TD_MSTATE_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "signals.h"

_Static_assert(TD_SIG_BASE_CNT <= 64, "presence is a 64-bit mask");

/* Packed layout, little-endian: version u64 (bytes 1-8, compared by
 * td_put), catalog hash u64, as_of i64, presence u64, then the base values
 * as doubles in catalog order. */
#define TD_MSTATE_HDR  32
#define TD_MSTATE_BLOB (TD_MSTATE_HDR + 8 * TD_SIG_BASE_CNT)

/* The merchant's last delivered score, as td_load read it or this worker
 * delivered it since: what a new score is compared with before it is
 * published. */
typedef struct td_mpub_s {
    double score;
    int64_t ms;      /* 0: never published */
    int64_t version; /* of the score hash; 0 unknown */
    int32_t tier;
    uint8_t model_ok; /* published by this build's model version */
    uint8_t unmarked; /* delivered, not yet marked in the score hash */
} td_mpub_t;

typedef struct td_mstate_s {
    struct td_mstate_s *hnext;
    td_mpub_t pub;
    uint64_t version; /* of the stored state this entry matches; 0 none */
    int64_t sversion; /* of its score hash, as read or written; 0 none */
    int64_t as_of;    /* TD_NULL_TS before the first event */
    uint64_t present; /* bit i: base signal i has a value */
    uint32_t hash;
    uint32_t gen; /* flush that last used the entry */
    double v[TD_SIG_BASE_CNT];
    uint8_t idlen;
    char id[]; /* idlen bytes + NUL */
} td_mstate_t;

typedef struct td_mscache_s td_mscache_t;

td_mscache_t *td_mscache_new(void);
void td_mscache_destroy(td_mscache_t *c);
td_mstate_t *td_mscache_get(td_mscache_t *c, const char *id, size_t len);
/* Returns the entry for id, adding an empty one (version 0) if needed. */
td_mstate_t *td_mscache_add(td_mscache_t *c, const char *id, size_t len);
void td_mscache_del(td_mscache_t *c, td_mstate_t *e);
void td_mscache_clear(td_mscache_t *c);
size_t td_mscache_count(const td_mscache_t *c);
size_t td_mscache_bytes(const td_mscache_t *c);
/* Drops entries not used by flush `gen` until at most cap remain (then any
 * entries, if the current flush alone holds more). */
void td_mscache_trim(td_mscache_t *c, size_t cap, uint32_t gen);

/* Catalog fingerprint stored in every blob: a blob from a build with other
 * base signals is not read as this one's (see td_mstate_load_cb). */
uint64_t td_mstate_catalog(void);

void td_mstate_to_sigstate(const td_mstate_t *e, td_sigstate_t *s);
void td_mstate_from_sigstate(td_mstate_t *e, const td_sigstate_t *s);
/* Writes TD_MSTATE_BLOB bytes. */
void td_mstate_pack(const td_mstate_t *e, uint8_t *buf);
/* The 8 version bytes td_put compares: "" (len 0) for version 0. */
size_t td_mstate_version_bytes(uint64_t version, uint8_t *buf);

/*
 * Reads a td_store_load() reply into e (version, score hash version,
 * values) and returns,
 * pointing into r, the stored watermarks (an array of field, value)
 * through *wm and the last publication (pub_score, pub_tier, pub_ms,
 * version, model_version, pub_version; "" or nil when unset) through
 * *meta. TD_ERR with
 * errstr for a malformed reply; TD_MSTATE_FIELDS when the state is missing
 * or of another catalog but a readable hash exists: load again with
 * fields.
 */
#define TD_MSTATE_FIELDS 1
int td_mstate_read_load(td_mstate_t *e,
                        const redisReply *r,
                        const redisReply **wm,
                        const redisReply **meta,
                        char *errstr,
                        size_t errstr_size);
/* The watermark of source src in a td_load watermark reply; -1 if none. */
int64_t td_mstate_wm(const redisReply *wm, const char *src);

#endif
