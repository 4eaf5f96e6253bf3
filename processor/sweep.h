/*
 * sweep.h - re-scoring quiet merchants. A score is computed when a
 * merchant's events arrive; a merchant without events would keep one whose
 * windows and caps no longer hold. So each worker walks trust:scores a page
 * a second (ZSCAN, about per_s merchants) and hands the merchants it sweeps
 * (td_sweep_partition(): those of the orders partitions it is assigned) to
 * its next flush, which scores them with their signals aged to now and
 * publishes what moved (worker.c). A round over all merchants takes
 * merchants / per_s seconds, then starts again.
 */
#ifndef TD_SWEEP_H
#define TD_SWEEP_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "store.h"

typedef struct td_sweep_s {
    int per_s;                           /* merchants a second; 0: no sweep */
    char cursor[24];                     /* of the ZSCAN; "0" starts a round */
    int64_t due_ms;                      /* monotonic time of the next page */
    uint64_t rounds;                     /* rounds completed */
    char (*ids)[TD_MERCHANT_ID_MAX + 1]; /* the last page's merchants */
    int nids, cap;
} td_sweep_t;

void td_sweep_init(td_sweep_t *sw, int per_s);
void td_sweep_term(td_sweep_t *sw);

/* 1 when the next page is due at now (monotonic ms). */
int td_sweep_due(const td_sweep_t *sw, int64_t now);

/* The orders partition, of nparts, whose owner sweeps merchant m: the hash
 * slot of m modulo nparts. Not the producers' partitioner, which trustd
 * does not know: any map the workers share makes each merchant one
 * worker's. */
int td_sweep_partition(const char *m, size_t mlen, int nparts);

/* Queues the next page (ZSCAN trust:scores <cursor> COUNT <per_s>) into b;
 * the next is due a second after now. Parse its reply with
 * td_sweep_page(). */
void td_sweep_queue(td_sweep_t *sw,
                    td_rbatch_t *b,
                    int64_t now,
                    td_rbatch_cb_t cb,
                    void *opaque);

/* Reads a page: the cursor moves on, and sw->ids holds the page's
 * merchants for which mine(opaque, id, len) is 1. TD_OK, or TD_ERR with
 * errstr for an error or malformed reply (the cursor then stays). */
int td_sweep_page(td_sweep_t *sw,
                  const redisReply *r,
                  int (*mine)(void *opaque, const char *id, size_t len),
                  void *opaque,
                  char *errstr,
                  size_t errstr_size);

#endif
