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
 * A cached entry is a hint: a put refuses (STALE) when the stored version
 * is not the one the entry was built on, or a watermark is past a delta's
 * start; the worker then drops the entry, reloads and merges the deltas
 * again, skipping the ones the watermarks show applied (proto.h).
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
 * base signals is not read as this one's (td_mstate_unpack). */
uint64_t td_mstate_catalog(void);

void td_mstate_to_sigstate(const td_mstate_t *e, td_sigstate_t *s);
void td_mstate_from_sigstate(td_mstate_t *e, const td_sigstate_t *s);
/* Writes TD_MSTATE_BLOB bytes. */
void td_mstate_pack(const td_mstate_t *e, uint8_t *buf);
/* The 8 version bytes td_put compares: "" (len 0) for version 0. */
size_t td_mstate_version_bytes(uint64_t version, uint8_t *buf);

/* Unpacks a stored blob (p NULL: none) into e: its version always (0
 * without one); the base values only from a whole blob of this catalog,
 * then TD_OK, else TD_ERR with the values untouched. */
int td_mstate_unpack(td_mstate_t *e, const uint8_t *p, size_t len);
/* No values: a merchant before its first event. */
void td_mstate_reset(td_mstate_t *e);
/* Base values from the readable hash, an array of as_of_ms and the base
 * signals in catalog order (nil or "" when absent): a state written before
 * the blob existed, or by a build with another catalog. TD_ERR if hm is
 * not of that shape. */
int td_mstate_read_fields(td_mstate_t *e, const redisReply *hm);

#endif
