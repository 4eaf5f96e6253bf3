/*
 * mcache.h - the merchants touched since the last flush, each with one
 * coalesced signal delta per source partition.
 *
 * A delta is keyed by (merchant, source) because each source partition has
 * its own watermark in Redis: a delta must cover events of one source only,
 * so that Redis can decide for each one whether it was applied already.
 * Entries come from free lists and go back to them on td_mcache_clear(), so
 * the hot path allocates only while the cache grows past its largest size.
 */
#ifndef TD_MCACHE_H
#define TD_MCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "signals.h"

#define TD_MDELTA_FLOOR_UNKNOWN INT64_MIN

typedef struct td_mdelta_s {
    struct td_mdelta_s *next; /* the merchant's next delta */
    int src;                  /* worker source index */
    int64_t lo;               /* offset of the first event folded */
    int skip; /* flush: 1 the merchant's watermark shows it applied */
    /* Rebuilding after a lost node (worker.c): the merchant's stored
     * watermark of src, TD_MDELTA_FLOOR_UNKNOWN until read. */
    int64_t floor;
    td_sigdelta_t d;
} td_mdelta_t;

typedef struct td_merchant_s {
    struct td_merchant_s *hnext; /* hash chain */
    struct td_merchant_s *lnext; /* list of all merchants, insertion order */
    td_mdelta_t *deltas;
    uint32_t hash;
    uint8_t idlen;
    uint8_t sweep; /* to be re-scored without new events (sweep.h) */
    char id[TD_MERCHANT_ID_MAX + 1];
} td_merchant_t;

typedef struct td_mcache_s td_mcache_t;

td_mcache_t *td_mcache_new(void);
void td_mcache_destroy(td_mcache_t *c);

/* The entry of merchant id (1..TD_MERCHANT_ID_MAX bytes), created with no
 * deltas if missing. Never NULL. */
td_merchant_t *td_mcache_merchant(td_mcache_t *c, const char *id, size_t idlen);

/* The delta of (merchant, src), created empty (first offset `offset`) if
 * missing. id must be 1..TD_MERCHANT_ID_MAX bytes. Never NULL (aborts on
 * out-of-memory, like Redis' zmalloc). */
td_mdelta_t *td_mcache_delta(td_mcache_t *c,
                             const char *id,
                             size_t idlen,
                             int src,
                             td_event_kind_t kind,
                             int64_t offset);

size_t td_mcache_merchants(const td_mcache_t *c);
size_t td_mcache_deltas(const td_mcache_t *c);
/* First merchant in insertion order; continue with ->lnext. */
td_merchant_t *td_mcache_first(const td_mcache_t *c);
/* Removes every delta of source src (merchants left empty stay listed with
 * no deltas). Returns the number of deltas removed. */
size_t td_mcache_drop_source(td_mcache_t *c, int src);
/* Empties the cache, keeping memory for reuse. */
void td_mcache_clear(td_mcache_t *c);
/* Bytes held per cached merchant, for the memory metric. */
size_t td_mcache_bytes(const td_mcache_t *c);

#endif
