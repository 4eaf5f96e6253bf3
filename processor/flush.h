/*
 * flush.h - the worker's exactly-once flush protocol and its flusher
 * thread (flush.c). Internal to the worker: worker.c hands flushes over
 * and ends them on the main thread.
 */
#ifndef TD_FLUSH_H
#define TD_FLUSH_H

#include <stddef.h>
#include <stdint.h>

#include "worker_int.h"

/*
 * Starts the flusher thread, which then waits for flushes. TD_OK, or
 * TD_ERR with errstr (a startup error: trustd does not run without it).
 * Main thread, once, while constructing the worker.
 */
int td_flush_start(td_worker_t *w, char *errstr, size_t errstr_size);

/*
 * Stops and joins the flusher thread; a no-op if it never started. No
 * flush may be running (td_flush_wait() said it ended). Main thread.
 */
void td_flush_stop(td_worker_t *w);

/*
 * Hands the flusher the flush the main thread prepared (the in-flight
 * cache, the sources' flush points): it runs steps 1-3, retrying while
 * Redis fails, and then signals it ended. Main thread, no flush running;
 * until it ended, the main thread keeps to what flush.c says it owns.
 */
void td_flush_hand(td_worker_t *w);

/*
 * 1 once the handed flush ended (w->frc is its result: TD_OK, or TD_ERR
 * when it found Redis behind or gave up at shutdown), else 0 after
 * waiting up to timeout_ms (0: just look). The flusher's step 3 waits for
 * score delivery reports that only the main thread's producer poll
 * serves: poll between calls. Main thread.
 */
int td_flush_wait(td_worker_t *w, int timeout_ms);

/*
 * Queues td_part's write of s's record (committed c, intent i) into the
 * worker's batch, checked against the owner epoch and against what this
 * worker last wrote: a fenced record sets s->fenced, one Redis lost sets
 * w->frollback. Whoever owns the batch (the flusher during a flush, the
 * main thread otherwise).
 */
void td_flush_queue_part(td_worker_t *w, src_t *s, int64_t c, int64_t i);

#endif
