/*
 * worker.c - the trustd consumer loop: consumes, decodes and folds events
 * into per-(merchant, source partition) deltas in the active cache, owns
 * the partition assignment, and does the main thread's part of a flush:
 * choosing what to flush (flush_start), then, once the flusher thread
 * ended it, confirming the dead letters, moving the offsets and recording
 * the flush complete (flush_end), or replaying after Redis lost writes
 * (rollback; on a Redis Cluster the node markers, sync_nodes), and
 * handing quiet merchants to the next flush for a re-score (sweep_page).
 * The flush protocol itself, and why the whole is exactly once, is in
 * flush.c.
 */
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "codec.h"
#include "common.h"
#include "dlq.h"
#include "flush.h"
#include "kwatch.h"
#include "log.h"
#include "mcache.h"
#include "model.h"
#include "mstate.h"
#include "proto.h"
#include "registry.h"
#include "schemas_gen.h"
#include "store.h"
#include "worker.h"
#include "worker_int.h"

static int flush(td_worker_t *w);
static int flush_end(td_worker_t *w);
static void replay_progress(td_worker_t *w);
static void sync_nodes(td_worker_t *w, int detect);
static int deep_floor(td_worker_t *w,
                      src_t *s,
                      td_mdelta_t *d,
                      const char *m,
                      size_t mlen,
                      int64_t off);

void td_worker_nap(td_worker_t *w, int ms) {
    while (ms > 0 && !*w->stop) {
        int step = ms < 50 ? ms : 50;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

int td_worker_next_backoff(const td_worker_t *w, int backoff) {
    return backoff * 2 > w->conf->redis_retry_max_ms
               ? w->conf->redis_retry_max_ms
               : backoff * 2;
}

int td_worker_give_up(td_worker_t *w) {
    if (!*w->stop) return 0;
    if (!w->stop_deadline)
        w->stop_deadline = td_mono_ms() + w->conf->shutdown_timeout_ms;
    return td_mono_ms() >= w->stop_deadline;
}

void td_worker_set_healthy(td_worker_t *w, int ok) {
    w->healthy = ok;
    atomic_store(&w->metrics.redis_ok, ok);
}

void td_worker_sync_store_stats(td_worker_t *w) {
    const td_store_stats_t *st = td_store_stats(w->store);
    atomic_store(&w->metrics.redis_roundtrips, st->roundtrips);
    atomic_store(&w->metrics.redis_errors, st->errors);
}

/* ---- sources ---- */

static int kind_of_topic(const td_worker_t *w, const char *topic) {
    for (int k = 0; k < TD_EV__CNT; k++) {
        if (!strcmp(w->topics[k], topic)) return k;
    }
    return -1;
}

static src_t *src_find(td_worker_t *w, int kind, int32_t partition) {
    for (int i = 0; i < w->nsrc; i++) {
        if ((int)w->srcs[i].kind == kind && w->srcs[i].partition == partition)
            return &w->srcs[i];
    }
    return NULL;
}

static src_t *src_get(td_worker_t *w, int kind, int32_t partition) {
    src_t *s = src_find(w, kind, partition);
    if (s) return s;
    if (w->nsrc == w->srccap) {
        w->srccap = w->srccap ? w->srccap * 2 : 16;
        w->srcs = td_xrealloc(w->srcs, (size_t)w->srccap * sizeof(*w->srcs));
    }
    w->hot_idx = -1;
    s = &w->srcs[w->nsrc++];
    memset(s, 0, sizeof(*s));
    s->w = w;
    s->kind = (td_event_kind_t)kind;
    s->partition = partition;
    snprintf(s->id, sizeof(s->id), "%s/%d", w->topics[kind], (int)partition);
    td_key_part(s->key, sizeof(s->key), w->topics[kind], partition);
    s->next = s->flushed = s->stored = s->horizon = -1;
    s->ack_c = s->ack_i = s->replay_to = s->deep_to = -1;
    s->wait_id = -1;
    return s;
}

static void src_metrics(td_worker_t *w, const src_t *s) {
    if (s->partition < 0 || s->partition >= TD_METRICS_MAX_PARTS) return;
    atomic_store(&w->metrics.stored_offset[s->kind][s->partition],
                 s->assigned ? s->stored : -1);
    atomic_store(&w->metrics.position[s->kind][s->partition],
                 s->assigned ? s->next : -1);
    if (!s->assigned)
        atomic_store(&w->metrics.high_watermark[s->kind][s->partition], -1);
}

/* ---- Kafka callbacks ---- */

static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    /* librdkafka uses syslog levels; runs on its threads. A -X property
     * is given to both clients, so the other client's CONFWARN about it
     * is expected: keep it out of the warnings. */
    int lvl = level <= 4 && strcmp(fac, "CONFWARN") ? TD_LOG_WARNING
              : level <= 6                          ? TD_LOG_VERBOSE
                                                    : TD_LOG_DEBUG;
    td_log(lvl, "kafka %s: %s", fac, buf);
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    td_worker_t *w = opaque;
    td_kwatch_error(&w->kw, rk, (rd_kafka_resp_err_t)err, reason);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    td_worker_t *w = opaque;
    if (td_dlq_delivery(w->dlq, msg)) return;
    if (msg->err) {
        atomic_fetch_add(&w->score_failures, 1);
        td_log_rl(&w->rl, RL_KAFKA, TD_LOG_WARNING,
                  "score delivery to %s failed: %s",
                  rd_kafka_topic_name(msg->rkt), rd_kafka_err2str(msg->err));
    }
    atomic_fetch_sub(&w->scores_inflight, 1);
}

/* ---- assignment ---- */

static int
claim_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    return td_proto_claim_parse(r, opaque, errstr, errstr_size);
}

/* Claims a partition record: bumps its epoch past any this worker held
 * (a record that went back in time may hold an older one) and reads its
 * offsets. Retries while Redis is unreachable. TD_OK, or TD_ERR when
 * giving up. Main thread, with no flush running (it uses the batch). */
static int claim(td_worker_t *w, src_t *s) {
    char errstr[512];
    int backoff = 50;
    td_proto_claimed_t c;

    while (!td_worker_give_up(w)) {
        td_rbatch_reset(w->batch);
        td_proto_claim(w->store, w->batch, s->key, s->epoch + 1, claim_cb, &c);
        if (td_store_exec(w->store, w->batch, errstr, sizeof(errstr)) ==
            TD_OK) {
            s->epoch = c.epoch;
            s->stored = s->flushed = s->next = c.committed;
            s->horizon = c.intent > c.committed ? c.intent : -1;
            s->ack_c = c.committed;
            s->ack_i = c.intent;
            td_worker_set_healthy(w, 1);
            return TD_OK;
        }
        td_worker_set_healthy(w, 0);
        td_log_rl(&w->rl, RL_FLUSH, TD_LOG_WARNING,
                  "claiming %s: %s; retrying in %d ms", s->id, errstr, backoff);
        td_worker_nap(w, backoff);
        backoff = td_worker_next_backoff(w, backoff);
    }
    return TD_ERR;
}

static void on_assign(td_worker_t *w, rd_kafka_topic_partition_list_t *parts) {
    rd_kafka_error_t *error;

    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        int kind = kind_of_topic(w, p->topic);
        src_t *s;
        if (kind < 0) continue;
        s = src_get(w, kind, p->partition);
        if (s->assigned == 1) {
            /* Already ours: keep its position and unflushed deltas. */
            td_log(TD_LOG_WARNING, "assigned %s again; keeping its state",
                   s->id);
            p->offset = s->next >= 0 ? s->next : RD_KAFKA_OFFSET_INVALID;
            continue;
        }
        if (claim(w, s) != TD_OK) {
            /* Stopping: let it start from Kafka's position; nothing will be
             * consumed anyway. */
            p->offset = RD_KAFKA_OFFSET_INVALID;
            continue;
        }
        s->assigned = 1;
        s->pending = 0;
        s->in_flush = 0;
        p->offset = s->stored >= 0 ? s->stored : RD_KAFKA_OFFSET_BEGINNING;
        atomic_fetch_add(&w->metrics.assigned_partitions, 1);
        src_metrics(w, s);
        if (s->horizon >= 0)
            td_log(TD_LOG_NOTICE,
                   "assigned %s: resuming at %lld, replaying up to %lld "
                   "(a flush there may have been cut short)",
                   s->id, (long long)s->stored, (long long)s->horizon);
        else
            td_log(TD_LOG_NOTICE,
                   "assigned %s: resuming at %lld (epoch "
                   "%lld)",
                   s->id, (long long)s->stored, (long long)s->epoch);
    }
    if (!strcmp(rd_kafka_rebalance_protocol(w->consumer), "COOPERATIVE")) {
        error = rd_kafka_incremental_assign(w->consumer, parts);
        if (error) {
            td_log(TD_LOG_WARNING, "incremental assign: %s",
                   rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
    } else {
        rd_kafka_assign(w->consumer, parts);
    }
    /* A partition paused by hold() before a revoke may come back paused. */
    if (!w->held) rd_kafka_resume_partitions(w->consumer, parts);
}

static void unassign_src(td_worker_t *w, src_t *s, int drop) {
    if (drop) {
        td_mcache_drop_source(w->active, (int)(s - w->srcs));
        td_mcache_drop_source(w->inflight, (int)(s - w->srcs));
    }
    if (s->assigned) atomic_fetch_sub(&w->metrics.assigned_partitions, 1);
    if (s->wait_id >= 0) w->nwait--; /* its next owner reads it again */
    s->wait_id = -1;
    atomic_store(&w->metrics.registry_waiting, w->nwait);
    s->assigned = 0;
    s->in_flush = 0;
    s->pending = 0;
    s->horizon = -1;
    s->replay_to = -1;
    s->deep_to = -1;
    src_metrics(w, s);
}

static void on_revoke(td_worker_t *w, rd_kafka_topic_partition_list_t *parts) {
    int lost = rd_kafka_assignment_lost(w->consumer);
    rd_kafka_error_t *error;
    int i;

    for (i = 0; i < parts->cnt; i++) {
        int kind = kind_of_topic(w, parts->elems[i].topic);
        src_t *s =
            kind < 0 ? NULL : src_find(w, kind, parts->elems[i].partition);
        if (!s || !s->assigned) continue;
        if (lost || s->horizon >= 0) {
            /* Lost: someone else owns it already. Mid-replay: the record
             * still says where to resume; applying half of the in-doubt
             * range would break the alignment for the next owner. */
            unassign_src(w, s, 1);
            td_log(TD_LOG_NOTICE, "%s %s: unflushed events dropped",
                   lost ? "lost" : "revoked mid-replay", s->id);
        }
    }
    /* The first writes the events and records them complete, so the
     * next owner starts there; the second marks the first's publications
     * (or retries the complete record, if that write failed). */
    if (!lost && (flush(w) != TD_OK || flush(w) != TD_OK))
        td_log(TD_LOG_WARNING, "flush before revoke failed: the next owner "
                               "replays from the stored offsets");
    for (i = 0; i < parts->cnt; i++) {
        int kind = kind_of_topic(w, parts->elems[i].topic);
        src_t *s =
            kind < 0 ? NULL : src_find(w, kind, parts->elems[i].partition);
        if (!s || !s->assigned) continue;
        td_log(TD_LOG_NOTICE, "revoked %s at %lld", s->id,
               (long long)s->stored);
        unassign_src(w, s, 1);
    }
    if (!strcmp(rd_kafka_rebalance_protocol(w->consumer), "COOPERATIVE")) {
        error = rd_kafka_incremental_unassign(w->consumer, parts);
        if (error) {
            td_log(TD_LOG_WARNING, "incremental unassign: %s",
                   rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
    } else {
        rd_kafka_assign(w->consumer, NULL);
    }
    if (atomic_load(&w->metrics.replaying)) replay_progress(w);
}

static void rebalance_cb(rd_kafka_t *rk,
                         rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    td_worker_t *w = opaque;

    /* Assignments change only with no flush running: a failed one is
     * retried by the next flush(). */
    flush_end(w);
    atomic_fetch_add(&w->metrics.rebalances, 1);
    w->hot_idx = -1;
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        w->ever_assigned = 1;
        on_assign(w, parts);
        td_kwatch_assigned(&w->kw, rk);
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        on_revoke(w, parts);
        break;
    default:
        td_log(TD_LOG_WARNING, "rebalance error: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- flush (the main thread's part; the protocol is flush.c's) ---- */

/* Sources held for replay alignment (replaying up to their horizon) that
 * have unflushed deltas. */
static int sources_held(const td_worker_t *w) {
    int held = 0;
    for (int i = 0; i < w->nsrc; i++)
        held += w->srcs[i].assigned == 1 && w->srcs[i].horizon >= 0 &&
                w->srcs[i].pending > 0;
    return held;
}

/* Moves the deltas of sources that are not held for replay alignment from
 * the active cache to the (empty) in-flight one. */
static void take_flushable(td_worker_t *w) {
    if (!sources_held(w)) {
        td_mcache_t *t = w->inflight;
        w->inflight = w->active;
        w->active = t;
        return;
    }
    for (td_merchant_t *m = td_mcache_first(w->active); m; m = m->lnext) {
        for (td_mdelta_t *d = m->deltas; d; d = d->next) {
            if (w->srcs[d->src].horizon >= 0) continue;
            td_mdelta_t *nd =
                td_mcache_delta(w->inflight, m->id, m->idlen, d->src,
                                (td_event_kind_t)d->d.kind, d->lo);
            nd->d = d->d;
        }
    }
    for (int i = 0; i < w->nsrc; i++) {
        if (w->srcs[i].horizon < 0) td_mcache_drop_source(w->active, i);
    }
}

/* Dead letters produced so far are acknowledged before offsets move past
 * their messages; a refused one is retried, never skipped. */
static int confirm_dead_letters(td_worker_t *w) {
    char errstr[512];
    int backoff = 50;

    for (;;) {
        int64_t deadline = td_mono_ms() + 30000;
        if (td_dlq_retry(w->dlq, errstr, sizeof(errstr)) == TD_OK) {
            while (td_dlq_inflight(w->dlq) > 0 && td_mono_ms() < deadline)
                rd_kafka_poll(w->producer, 10);
            if (td_dlq_inflight(w->dlq) == 0 && td_dlq_failed(w->dlq) == 0)
                return TD_OK;
            snprintf(errstr, sizeof(errstr),
                     "%zu dead-letter deliveries failed, %zu unacknowledged",
                     td_dlq_failed(w->dlq), td_dlq_inflight(w->dlq));
        }
        atomic_fetch_add(&w->metrics.flush_failures, 1);
        td_worker_set_healthy(w, 0);
        td_log_rl(&w->rl, RL_FLUSH, TD_LOG_WARNING,
                  "flush failed: %s; retrying in %d ms", errstr, backoff);
        if (td_worker_give_up(w)) return TD_ERR;
        td_worker_nap(w, backoff);
        backoff = td_worker_next_backoff(w, backoff);
    }
}

/* Clears replay_to of sources that read up to it; the gauge says whether
 * any still replays after a rollback. */
static void replay_progress(td_worker_t *w) {
    int left = 0;
    for (int i = 0; i < w->nsrc; i++) {
        src_t *s = &w->srcs[i];
        if (s->replay_to < 0) continue;
        if (s->assigned == 1 && s->next < s->replay_to) {
            left++;
            continue;
        }
        s->replay_to = -1;
    }
    if (!left && atomic_load(&w->metrics.replaying)) {
        td_log(TD_LOG_NOTICE, "replay after the store rollback complete");
        atomic_store(&w->metrics.replaying, 0);
    }
}

static int
first_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    uint8_t want[8];
    size_t n = td_mstate_version_bytes(1, want);
    (void)errstr, (void)errstr_size;
    /* Still the state this worker created: nobody wrote it since. */
    *(int *)opaque = r->type == REDIS_REPLY_STRING && r->len == n &&
                     !memcmp(r->str, want, n);
    return TD_OK;
}

/* Deletes the states this worker created since Redis was last seen intact
 * (worker_int.h) and nobody wrote since (a merchant another worker wrote
 * on top keeps its state: a known limit, README), for the replay to
 * rebuild them from its start. */
static void forget_created(td_worker_t *w) {
    char errstr[512], key[TD_KEY_MAX];
    int backoff = 50, *first;

    if (w->ncreated == 0) return;
    first = td_xcalloc(w->ncreated, sizeof(*first));
    while (!td_worker_give_up(w)) {
        size_t n = 0;
        td_rbatch_reset(w->batch);
        for (size_t i = 0; i < w->ncreated; i++) {
            const char *m = w->created[i];
            td_rbatch_begin(w->batch);
            td_rbatch_str(w->batch, "GETRANGE");
            td_rbatch_arg(w->batch, key,
                          td_key_state(key, sizeof(key), m, strlen(m)));
            td_rbatch_str(w->batch, "0");
            td_rbatch_str(w->batch, "7");
            td_rbatch_end(w->batch, first_cb, &first[i]);
        }
        if (td_store_exec(w->store, w->batch, errstr, sizeof(errstr)) ==
            TD_OK) {
            td_rbatch_reset(w->batch);
            for (size_t i = 0; i < w->ncreated; i++) {
                if (!first[i]) continue;
                td_proto_forget(w->batch, w->created[i], strlen(w->created[i]),
                                NULL, NULL);
                n++;
            }
            if (!n || td_store_exec(w->store, w->batch, errstr,
                                    sizeof(errstr)) == TD_OK) {
                td_log(TD_LOG_NOTICE,
                       "dropped %zu merchant states created since redis was "
                       "last seen intact: the replay rebuilds them",
                       n);
                break;
            }
        }
        td_log_rl(&w->rl, RL_FLUSH, TD_LOG_WARNING,
                  "dropping created merchant states: %s; retrying in %d ms",
                  errstr, backoff);
        td_worker_nap(w, backoff);
        backoff = td_worker_next_backoff(w, backoff);
    }
    free(first);
    w->ncreated = 0;
}

/* The oldest offset Kafka holds of s and the next one it will write, as
 * the last fetch reported (after any earlier owner's flushes), else asked
 * (a round trip); -1 where it cannot say. */
static void
kafka_range(td_worker_t *w, const src_t *s, int64_t *lo, int64_t *hi) {
    *lo = *hi = -1;
    if (rd_kafka_get_watermark_offsets(w->consumer, w->topics[s->kind],
                                       s->partition, lo,
                                       hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        *lo >= 0 && *hi >= 0)
        return;
    if (rd_kafka_query_watermark_offsets(w->consumer, w->topics[s->kind],
                                         s->partition, lo, hi,
                                         2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        *lo = *hi = -1;
}

/*
 * Redis went back in time: a partition record or a merchant state was
 * found behind what this worker wrote or read (Redis restarted empty or
 * from an older copy, a failover to a lagging replica, FLUSHALL). Nothing
 * derived from the lost writes may be written on top of them: the
 * unflushed deltas (their events are read again), the cached states and
 * the pending publication marks are dropped, and every assigned partition
 * is claimed anew and read again from its record's `committed`, or from
 * the oldest retained offset if the record is gone. What Redis kept is
 * consistent (a snapshot or an AOF is a prefix of the writes), so the
 * watermarks of the merchants that survived skip what they hold, and the
 * replay ends exact.
 *
 * On a Redis Cluster what a node kept is not consistent with what the
 * others kept: a node may lose merchants whose partition records live on
 * another node, and keep merchants whose records it lost. So there the
 * rollback is deep: every assigned partition is read again from its
 * oldest retained offset, and up to the offset Kafka had reached (deep_to)
 * each event is checked against its merchant's stored watermark
 * (deep_floor()), which keeps the merchants that survived exact whatever
 * the flush points. A merchant watermark found inside a delta (load_cb:
 * a worker died rebuilding, or an operator moved a record's `committed`
 * back past a completed flush) is rebuilt the same way from `committed`.
 *
 * If Kafka no longer holds part of the range, that part is lost: said in
 * the log, trustd_replay_lost_offsets_total and /readyz.
 */
static void rollback(td_worker_t *w) {
    rd_kafka_topic_partition_list_t *seek =
        rd_kafka_topic_partition_list_new(w->nsrc > 0 ? w->nsrc : 1);
    rd_kafka_error_t *error;
    int deep = w->fdeep                        ? w->fdeep
               : td_store_is_cluster(w->store) ? TD_DEEP_FROM_OLDEST
                                               : TD_DEEP_NO;

    w->frollback = w->fdeep = 0;
    atomic_fetch_add(&w->metrics.store_rollbacks, 1);
    atomic_store(&w->metrics.replaying, 1);
    td_log(TD_LOG_WARNING,
           "error: redis went back in time (%s): dropping unflushed events "
           "and cached states, replaying every assigned partition from %s",
           w->frollback_why,
           deep == TD_DEEP_FROM_OLDEST
               ? "its oldest retained offset, each event checked against "
                 "its merchant's watermark"
           : deep ? "its stored offsets, each event checked against its "
                    "merchant's watermark"
                  : "its stored offsets");
    td_mcache_clear(w->active);
    td_mcache_clear(w->inflight);
    td_mscache_clear(w->states);
    if (deep != TD_DEEP_FROM_COMMITTED)
        forget_created(w); /* a store that lost data */
    w->ncreated = 0;
    w->nmarks = w->nfresh = 0;
    w->events_since_flush = 0;
    w->hot_idx = -1;
    for (int i = 0; i < w->nsrc; i++) {
        src_t *s = &w->srcs[i];
        int64_t reached = s->next, lo, hi;
        if (s->assigned != 1) continue;
        s->in_flush = 0;
        s->pending = 0;
        if (claim(w, s) != TD_OK) continue; /* stopping */
        kafka_range(w, s, &lo, &hi);
        if (deep) {
            /* A worker that takes over before the rebuild is done finds
             * merchants ahead of the record's offsets, their watermarks
             * inside its deltas (load_cb), and rebuilds deeply too. */
            s->deep_to = hi > reached ? hi : reached;
            s->horizon = -1;
            if (deep == TD_DEEP_FROM_OLDEST)
                s->next = s->flushed = s->stored = -1;
        }
        s->replay_to = reached > s->next ? reached : -1;
        if (lo > 0 && s->stored < lo) {
            int64_t lost = lo - (s->stored > 0 ? s->stored : 0);
            atomic_fetch_add(&w->metrics.replay_lost, (uint64_t)lost);
            td_log(TD_LOG_WARNING,
                   "error: %s: offsets %lld..%lld are needed to rebuild "
                   "what redis lost but kafka no longer retains them; "
                   "rebuilding from %lld",
                   s->id, (long long)(s->stored > 0 ? s->stored : 0),
                   (long long)lo - 1, (long long)lo);
        }
        if (s->stored >= 0)
            td_log(TD_LOG_NOTICE, "%s: replaying from %lld (epoch %lld)", s->id,
                   (long long)s->stored, (long long)s->epoch);
        else
            td_log(TD_LOG_NOTICE,
                   "%s: record lost: replaying from the oldest retained "
                   "offset (epoch %lld)",
                   s->id, (long long)s->epoch);
        rd_kafka_topic_partition_list_add(seek, w->topics[s->kind],
                                          s->partition)
            ->offset = s->stored >= 0 ? s->stored : RD_KAFKA_OFFSET_BEGINNING;
        src_metrics(w, s);
    }
    if (seek->cnt > 0) {
        error = rd_kafka_seek_partitions(w->consumer, seek, 10000);
        if (error) {
            td_log(TD_LOG_WARNING, "seeking back after the rollback: %s",
                   rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
        for (int i = 0; i < seek->cnt; i++) {
            if (seek->elems[i].err)
                td_log(TD_LOG_WARNING, "seeking %s/%d back: %s",
                       seek->elems[i].topic, (int)seek->elems[i].partition,
                       rd_kafka_err2str(seek->elems[i].err));
        }
    }
    rd_kafka_topic_partition_list_destroy(seek);
    /* What made this rollback may have made a node's marker go too. */
    if (deep) sync_nodes(w, 0);
    replay_progress(w);
}

/* Gives up the sources a flush found claimed by another worker. */
static void drop_fenced(td_worker_t *w) {
    for (int i = 0; i < w->nsrc; i++) {
        src_t *s = &w->srcs[i];
        if (!s->fenced) continue;
        td_log(TD_LOG_WARNING,
               "%s was claimed by another worker: its "
               "unflushed events are left to it",
               s->id);
        s->fenced = 0;
        unassign_src(w, s, 1);
    }
}

/*
 * A completed flush's records say so (committed = intent = its point, as
 * queued by flush_end): a store that loses anything written before this
 * is found behind them by the next flush's step 1, and a new owner
 * replays nothing. Written after the dead letters were confirmed, on the
 * main thread with no flush running. One attempt: if it fails, the next
 * flush's step 1 records the same offsets.
 */
static void record_complete(td_worker_t *w) {
    char errstr[512];

    if (td_rbatch_cnt(w->batch) &&
        td_store_exec(w->store, w->batch, errstr, sizeof(errstr)) != TD_OK)
        td_log(TD_LOG_VERBOSE, "recording the flush complete: %s", errstr);
    else if (!w->frollback && !td_store_is_cluster(w->store))
        w->ncreated = 0; /* the records were there: nothing was lost */
    for (int i = 0; i < w->nsrc; i++) {
        src_t *s = &w->srcs[i];
        if (s->assigned == 1 && s->ack_c == s->flushed) s->stored = s->flushed;
        src_metrics(w, s);
    }
    drop_fenced(w);
    if (w->frollback) rollback(w);
}

/* Waits for the flush handed to the flusher, if any (serving the
 * producer's delivery reports its step 3 waits for), and completes it:
 * the flush points become the sources' offsets. TD_ERR if it was given up
 * (its cache stays in flight for the next flush to retry). */
static int flush_end(td_worker_t *w) {
    int64_t t0 = w->fstart_us;

    if (!w->fbusy) return TD_OK;
    while (!td_flush_wait(w, 1))
        rd_kafka_poll(w->producer, 1);
    w->fbusy = 0;
    for (int i = 0; i < w->nsrc; i++) {
        if (w->srcs[i].assigned == 1) src_metrics(w, &w->srcs[i]);
    }
    drop_fenced(w);
    if (w->frollback) {
        /* Abandoned on purpose: its events are read again. */
        rollback(w);
        return TD_OK;
    }
    if (w->frc != TD_OK || confirm_dead_letters(w) != TD_OK) return TD_ERR;

    /* Every step succeeded and the dead letters are in Kafka: the flush
     * points are the new stored offsets, recorded complete (committed =
     * intent) right away, and a hint for Kafka-side lag tooling. */
    rd_kafka_topic_partition_list_t *offs =
        rd_kafka_topic_partition_list_new(w->nsrc > 0 ? w->nsrc : 1);
    td_rbatch_reset(w->batch);
    for (int i = 0; i < w->nsrc; i++) {
        src_t *s = &w->srcs[i];
        if (!s->in_flush) continue;
        s->flushed = s->fpoint;
        s->in_flush = 0;
        if (s->assigned == 1) td_flush_queue_part(w, s, s->flushed, s->flushed);
        rd_kafka_topic_partition_list_add(offs, w->topics[s->kind],
                                          s->partition)
            ->offset = s->flushed;
    }
    if (offs->cnt > 0) rd_kafka_commit(w->consumer, offs, 1);
    rd_kafka_topic_partition_list_destroy(offs);
    record_complete(w);
    td_mcache_clear(w->inflight);
    td_mscache_trim(w->states, (size_t)w->conf->max_merchants, w->gen);
    atomic_store(&w->metrics.states_cached,
                 (int64_t)td_mscache_count(w->states));

    double secs = (double)(td_mono_us() - t0) / 1e6;
    td_hist_observe(&w->metrics.flush_seconds, secs);
    if (w->fevents > 0) /* not the follow-up that only stores offsets */
        td_hist_observe(&w->metrics.batch_events, (double)w->fevents);
    atomic_fetch_add(&w->metrics.flushes, 1);
    atomic_store(&w->metrics.last_progress_ms, td_mono_ms());
    if (atomic_load(&w->metrics.replaying)) replay_progress(w);
    return TD_OK;
}

/* Hands a flush of everything flushable to the flusher thread; TD_OK if
 * handed or nothing to do. The previous flush must have ended. */
static int flush_start(td_worker_t *w) {
    uint64_t events = 0;
    int need = 0;

    if (w->fbusy) return TD_ERR;
    if (td_mcache_merchants(w->inflight) == 0) {
        for (int i = 0; i < w->nsrc; i++) {
            src_t *s = &w->srcs[i];
            if (s->assigned != 1) continue;
            if (s->pending > 0 && s->horizon < 0) {
                s->in_flush = 1;
                s->fpoint = s->next;
                events += s->pending;
                s->pending = 0;
                need = 1;
            } else if (s->flushed > s->stored) {
                need = 1;
            }
        }
        /* Publications of the last flush are marked by the next one at the
         * latest, so idle workers flush once more. */
        if (w->nsweep > 0) need = 1;
        if (!need && w->nmarks == 0 && td_dlq_inflight(w->dlq) == 0 &&
            td_dlq_failed(w->dlq) == 0)
            return TD_OK;
        take_flushable(w);
        w->events_since_flush = 0;
        w->nsweep = 0;
        atomic_store(&w->metrics.merchants_cached,
                     (int64_t)td_mcache_merchants(w->active));
    } /* else a flush given up earlier (shutdown): retry it as it was */
    w->fevents = events;
    w->fstart_us = td_mono_us();
    w->fbusy = 1;
    td_flush_hand(w);
    return TD_OK;
}

/* Flushes everything flushable and waits: TD_OK when the in-flight cache
 * was written and offsets moved. */
static int flush(td_worker_t *w) {
    flush_end(w); /* if it failed, its cache is retried below */
    if (flush_start(w) != TD_OK) return TD_ERR;
    return flush_end(w);
}

/* ---- re-scoring quiet merchants (sweep.h) ---- */

static int
sweep_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size);

/* A merchant is this worker's to sweep when it is assigned the orders
 * partition td_sweep_partition() names. */
static int sweep_mine(void *opaque, const char *id, size_t len) {
    td_worker_t *w = opaque;
    int64_t nparts = atomic_load(&w->metrics.topic_partitions[TD_EV_ORDER]);
    const src_t *s =
        src_find(w, TD_EV_ORDER, td_sweep_partition(id, len, (int)nparts));
    return s && s->assigned == 1;
}

static int
sweep_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    td_worker_t *w = opaque;
    return td_sweep_page(&w->sweep, r, sweep_mine, w, errstr, errstr_size);
}

/* Reads the next page of merchants and marks this worker's in the active
 * cache for the next flush, which re-scores the quiet ones. Main thread,
 * no flush running. */
static void sweep_page(td_worker_t *w, int64_t now) {
    char errstr[256];

    if (atomic_load(&w->metrics.topic_partitions[TD_EV_ORDER]) <= 0) return;
    td_rbatch_reset(w->batch);
    td_sweep_queue(&w->sweep, w->batch, now, sweep_cb, w);
    if (td_store_exec(w->store, w->batch, errstr, sizeof(errstr)) != TD_OK) {
        td_log_rl(&w->rl, RL_FLUSH, TD_LOG_VERBOSE, "sweep: %s", errstr);
        return;
    }
    for (int i = 0; i < w->sweep.nids; i++) {
        td_merchant_t *m = td_mcache_merchant(w->active, w->sweep.ids[i],
                                              strlen(w->sweep.ids[i]));
        m->sweep = 1;
        w->nsweep++;
    }
}

/* ---- node markers (Redis Cluster) ---- */

#define NODES_MAX 64

typedef struct node_get_s {
    int got; /* 1 a value, 0 none, -1 no answer */
    char val[40];
} node_get_t;

static int
node_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    node_get_t *g = opaque;
    if (r->type == REDIS_REPLY_NIL) {
        g->got = 0;
        return TD_OK;
    }
    if (r->type != REDIS_REPLY_STRING) {
        snprintf(errstr, errstr_size, "node marker: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        return TD_ERR;
    }
    snprintf(g->val, sizeof(g->val), "%.*s", (int)r->len, r->str);
    g->got = 1;
    return TD_OK;
}

/* The marker of the master whose lowest slot is slot: its tag, and the
 * token this worker last saw there ("" none yet). */
static struct node_mark *node_mark(td_worker_t *w, int slot) {
    struct node_mark *nm;
    for (int i = 0; i < w->nmarks_seen; i++) {
        if (w->marks_seen[i].slot == slot) return &w->marks_seen[i];
    }
    w->marks_seen = td_xrealloc(w->marks_seen, (size_t)(w->nmarks_seen + 1) *
                                                   sizeof(*w->marks_seen));
    nm = &w->marks_seen[w->nmarks_seen++];
    nm->slot = slot;
    td_cluster_slot_tag(slot, nm->tag, sizeof(nm->tag));
    nm->token[0] = '\0';
    return nm;
}

/*
 * Redis Cluster: every master holds a marker (trust:node:{<tag>}, in its
 * lowest slot) that the first worker to meet it writes with a token of
 * its own. A node that comes back without its data (it and its replicas
 * lost, restarted empty) has no marker, or, once another worker noticed,
 * a new one: either is a rollback, and a deep one (rollback()), when
 * detect is set; else the markers are only learnt (after a rollback).
 * Checked about once a second from the main thread with no flush running.
 * A node that loses its data while no worker runs is met as new: its
 * records and merchant versions are then the only checks.
 */
static void sync_nodes(td_worker_t *w, int detect) {
    int slots[NODES_MAX], n, lost = -1, fresh = 0;
    char errstr[512], token[40];
    node_get_t got[NODES_MAX];
    struct node_mark *nm[NODES_MAX];

    n = td_store_master_slots(w->store, slots, NODES_MAX);
    if (n > NODES_MAX) n = NODES_MAX;
    if (n == 0) return;
    for (int i = 0; i < n; i++) /* first: node_mark() may move them */
        node_mark(w, slots[i]);
    td_rbatch_reset(w->batch);
    for (int i = 0; i < n; i++) {
        nm[i] = node_mark(w, slots[i]);
        got[i].got = -1;
        td_proto_node_get(w->batch, nm[i]->tag, node_cb, &got[i]);
    }
    /* Unreachable: the flushes and the ping say so. */
    if (td_store_exec(w->store, w->batch, errstr, sizeof(errstr)) != TD_OK)
        return;
    td_rbatch_reset(w->batch);
    for (int i = 0; i < n; i++) {
        int known = nm[i]->token[0] != '\0';
        if (got[i].got == 1) {
            if (known && strcmp(nm[i]->token, got[i].val)) lost = i;
            continue;
        }
        if (known) lost = i;
        snprintf(token, sizeof(token), "%llx-%llx-%x",
                 (unsigned long long)td_now_ms(),
                 (unsigned long long)td_mono_us(), (unsigned)getpid());
        td_proto_node_set(w->batch, nm[i]->tag, token, 1, NULL, NULL);
        td_proto_node_get(w->batch, nm[i]->tag, node_cb, &got[i]);
        fresh = 1;
    }
    if (fresh &&
        td_store_exec(w->store, w->batch, errstr, sizeof(errstr)) != TD_OK)
        return; /* the next check finds the same */
    for (int i = 0; i < n; i++) {
        if (got[i].got == 1)
            snprintf(nm[i]->token, sizeof(nm[i]->token), "%s", got[i].val);
    }
    if (lost < 0 && detect) w->ncreated = 0; /* every node kept its data */
    if (lost < 0 || !detect) return;
    snprintf(errstr, sizeof(errstr),
             "the Redis Cluster node serving slot %d lost its data: marker "
             "trust:node:{%s} %s",
             slots[lost], nm[lost]->tag,
             got[lost].got == 1 ? "replaced" : "missing");
    w->fdeep = TD_DEEP_FROM_OLDEST;
    snprintf(w->frollback_why, sizeof(w->frollback_why), "%.*s",
             (int)sizeof(w->frollback_why) - 1, errstr);
    rollback(w);
}

/* While idle nothing else talks to Redis: check it once a second so
 * /readyz tells the truth. */
static void ping(td_worker_t *w, int64_t now) {
    char errstr[256];
    redisReply *r = td_store_cmd(w->store, errstr, sizeof(errstr), "PING");

    w->last_ping_ms = now;
    if (r && r->type != REDIS_REPLY_ERROR) {
        if (!w->healthy) td_log(TD_LOG_NOTICE, "redis reachable again");
        td_worker_set_healthy(w, 1);
    } else {
        if (w->healthy)
            td_log(TD_LOG_WARNING, "redis unreachable while idle: %s",
                   r ? r->str : errstr);
        td_worker_set_healthy(w, 0);
    }
    if (r) freeReplyObject(r);
    td_worker_sync_store_stats(w);
}

/* ---- consuming ---- */

/* Pauses source s (on) at offset off while the registry is asked for
 * schema id, or resumes it there (off) once it answered: librdkafka
 * resumes at the position after the message handed out last, so the seek
 * that follows the resume brings it back to off, and the seek's new
 * version drops whatever was fetched in between. While every partition is
 * held for Redis (hold), the resume waits for hold to end. */
static void
wait_schema(td_worker_t *w, src_t *s, int on, int64_t id, int64_t off) {
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(1);
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t err;

    rd_kafka_topic_partition_list_add(parts, w->topics[s->kind], s->partition)
        ->offset = on ? off : s->wait_off;
    if (on) {
        err = rd_kafka_pause_partitions(w->consumer, parts);
    } else {
        err = rd_kafka_resume_partitions(w->consumer, parts);
        if (!err) error = rd_kafka_seek_partitions(w->consumer, parts, 0);
    }
    if (error) {
        err = rd_kafka_error_code(error);
        rd_kafka_error_destroy(error);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        /* Not paused: its messages are dropped until the schema is there,
         * and read again from off. Not resumed: tried again next poll. */
        td_log_rl(&w->rl, RL_REGISTRY, TD_LOG_WARNING,
                  "%s %s for schema id %lld: %s", on ? "pausing" : "resuming",
                  s->id, (long long)(on ? id : s->wait_id),
                  rd_kafka_err2str(err));
        if (!on) return;
    }
    if (on) {
        td_log(TD_LOG_VERBOSE, "%s waits at %lld for schema id %lld", s->id,
               (long long)off, (long long)id);
        s->wait_id = id;
        s->wait_off = off;
        w->nwait++;
    } else {
        td_log(TD_LOG_NOTICE, "%s resumes at %lld: schema id %lld answered",
               s->id, (long long)s->wait_off, (long long)s->wait_id);
        s->wait_id = -1;
        w->nwait--;
    }
    atomic_store(&w->metrics.registry_waiting, w->nwait);
}

/* A Confluent-framed message whose writer schema the codec lacks: gives
 * it the map's or the registry's text. Returns 1 if the registry has not
 * answered yet: then the source is paused and the message read again
 * later, so nothing is dead-lettered for an absent registry. */
static int await_schema(td_worker_t *w, src_t *s, const rd_kafka_message_t *m) {
    const char *json = NULL;
    size_t len = 0;
    uint32_t id;
    char errstr[512];

    if (!td_codec_schema_id(m->payload, m->len, &id) ||
        td_codec_has_id(w->codec, id))
        return 0;
    switch (td_registry_get(w->registry, id, &json, &len)) {
    case TD_REG_FOUND:
        if (td_codec_add_id(w->codec, id, json, len, errstr, sizeof(errstr)) !=
            TD_OK)
            td_log(TD_LOG_WARNING, "%s", errstr); /* once per id */
        return 0;
    case TD_REG_UNKNOWN:
        return 0; /* the codec dead-letters it: unknown_schema_id */
    case TD_REG_WAIT:
        break;
    }
    wait_schema(w, s, 1, id, m->offset);
    return 1;
}

/* Drives the registry's requests while sources wait; resumes those whose
 * schema id got an answer, and says when the registry fails. */
static void poll_registry(td_worker_t *w) {
    const td_registry_stats_t *st = td_registry_stats(w->registry);
    uint64_t errors = st->errors;

    td_registry_poll(w->registry);
    atomic_store(&w->metrics.registry_requests, st->requests);
    atomic_store(&w->metrics.registry_errors, st->errors);
    if (st->errors > errors)
        td_log_rl(&w->rl, RL_REGISTRY, TD_LOG_WARNING,
                  "schema registry: %s; %d partition(s) paused until it "
                  "answers",
                  td_registry_error(w->registry), w->nwait);
    for (int i = 0; i < w->nsrc && !w->held; i++) {
        src_t *s = &w->srcs[i];
        const char *json;
        size_t len;

        if (s->wait_id >= 0 &&
            td_registry_get(w->registry, (uint32_t)s->wait_id, &json, &len) !=
                TD_REG_WAIT)
            wait_schema(w, s, 0, s->wait_id, s->wait_off);
    }
}

static void handle(td_worker_t *w, rd_kafka_message_t *msg) {
    char errstr[512];
    td_event_t ev;
    td_dlq_reason_t reason;
    int kind;
    src_t *s;

    if (msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
            !td_kwatch_consumer_error(&w->kw, msg))
            td_log_rl(&w->rl, RL_KAFKA, TD_LOG_WARNING, "consumer: %s",
                      rd_kafka_message_errstr(msg));
        return;
    }
    if (w->hot_idx >= 0 && msg->rkt == w->hot_rkt &&
        msg->partition == w->hot_part) {
        s = &w->srcs[w->hot_idx];
        kind = (int)s->kind;
    } else {
        kind = kind_of_topic(w, rd_kafka_topic_name(msg->rkt));
        s = kind < 0 ? NULL : src_find(w, kind, msg->partition);
        if (s) {
            w->hot_rkt = msg->rkt;
            w->hot_part = msg->partition;
            w->hot_idx = (int)(s - w->srcs);
        }
    }
    if (!s || s->assigned != 1)
        return; /* left over from a revoked assignment */
    /* Paused for a schema id: read again from there once it is known. */
    if (s->wait_id >= 0) return;
    if (s->next >= 0 && msg->offset < s->next) return; /* already seen */
    if (s->horizon >= 0 && msg->offset >= s->horizon) {
        /* Every offset below the horizon has been read (or is a gap):
         * flush this source's replay so it ends exactly there. */
        uint64_t rollbacks = atomic_load(&w->metrics.store_rollbacks);
        s->next = s->horizon;
        s->horizon = -1;
        flush(w);
        /* Sought back by a rollback (it comes again), or given up (its
         * next owner reads it). */
        if (atomic_load(&w->metrics.store_rollbacks) != rollbacks ||
            s->assigned != 1)
            return;
    }
    if (await_schema(w, s, msg)) return;
    reason = td_codec_decode(w->codec, (td_event_kind_t)kind, msg->key,
                             msg->key_len, msg->payload, msg->len, td_now_ms(),
                             &w->validate, &ev, errstr, sizeof(errstr));
    if (reason != TD_DLQ_OK) {
        char perr[256];
        td_log_rl(&w->rl, RL_DECODE + (int)reason, TD_LOG_WARNING,
                  "dead-lettering %s [%d] offset %lld: %s: %s", w->topics[kind],
                  (int)msg->partition, (long long)msg->offset,
                  td_dlq_reason_name(reason), errstr);
        while (td_dlq_produce(w->dlq, msg, reason, errstr, td_now_ms(), perr,
                              sizeof(perr)) != TD_OK) {
            /* Refused locally (queue full, or a dead-letter topic that
             * takes smaller messages than the input): serve delivery
             * reports and retry, loudly. The message must not be lost. */
            td_log_rl(&w->rl, RL_DLQ, TD_LOG_WARNING, "%s", perr);
            rd_kafka_poll(w->producer, 100);
            if (td_worker_give_up(w))
                return; /* not dead-lettered: its offset stays unstored */
        }
        atomic_fetch_add_explicit(&w->metrics.dead_lettered[kind][reason], 1,
                                  memory_order_relaxed);
    } else {
        td_mdelta_t *d = td_mcache_delta(w->active, ev.merchant_id.ptr,
                                         ev.merchant_id.len, (int)(s - w->srcs),
                                         (td_event_kind_t)kind, msg->offset);
        if (msg->offset < s->deep_to || d->floor != TD_MDELTA_FLOOR_UNKNOWN) {
            int below = deep_floor(w, s, d, ev.merchant_id.ptr,
                                   ev.merchant_id.len, msg->offset);
            if (below < 0) return; /* stopping: s is given up */
            if (below) goto counted;
        }
        td_sigdelta_add(&d->d, &ev);
        atomic_fetch_add_explicit(&w->metrics.applied[kind], 1,
                                  memory_order_relaxed);
    }
counted:
    /* Counted once accounted for: applied + dead-lettered + skipped while
     * rebuilding = consumed. */
    atomic_fetch_add_explicit(&w->metrics.consumed[kind], 1,
                              memory_order_relaxed);
    s->next = msg->offset + 1;
    if (s->deep_to >= 0 && s->next >= s->deep_to) s->deep_to = -1;
    s->pending++;
    w->events_since_flush++;
    if (s->horizon >= 0 && s->next >= s->horizon) {
        /* The replay reached the interrupted flush's end: flush now, even
         * if nothing follows on this partition. */
        s->horizon = -1;
        flush(w);
    }
}

static int
floor_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    int64_t *floor = opaque;
    if (r->type == REDIS_REPLY_NIL) {
        *floor = -1;
        return TD_OK;
    }
    if (r->type != REDIS_REPLY_STRING) {
        snprintf(errstr, errstr_size, "watermark: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        return TD_ERR;
    }
    *floor = strtoll(r->str, NULL, 10);
    return TD_OK;
}

/*
 * Rebuilding (s->deep_to): 1 if the event at off of the merchant of delta
 * d is below the merchant's stored watermark of s (applied before Redis
 * lost what it lost), 0 if it is to be applied. The watermark is read once
 * per delta, on the main thread's own connection (a flush may be running),
 * and the delta then starts at or past it, so its put never overlaps what
 * the merchant holds. -1 if stopping before Redis answered: s is given up
 * with its unflushed events, for its next owner to read again.
 */
static int deep_floor(td_worker_t *w,
                      src_t *s,
                      td_mdelta_t *d,
                      const char *m,
                      size_t mlen,
                      int64_t off) {
    char errstr[512];
    int backoff = 50;

    while (d->floor == TD_MDELTA_FLOOR_UNKNOWN) {
        td_store_conf_t sc;
        if (!w->dstore) {
            td_store_conf_from(&sc, w->conf);
            w->dstore = td_store_new(&sc, errstr, sizeof(errstr));
        }
        if (w->dstore) {
            td_rbatch_reset(w->dbatch);
            td_proto_wm_get(w->dbatch, m, mlen, s->id, floor_cb, &d->floor);
            if (td_store_exec(w->dstore, w->dbatch, errstr, sizeof(errstr)) ==
                TD_OK) {
                if (d->floor > d->lo) d->lo = d->floor;
                break;
            }
        }
        d->floor = TD_MDELTA_FLOOR_UNKNOWN;
        td_log_rl(&w->rl, RL_FLUSH, TD_LOG_WARNING,
                  "rebuilding %s: reading a watermark: %s; retrying in %d ms",
                  s->id, errstr, backoff);
        if (td_worker_give_up(w)) {
            flush_end(w); /* the flusher must not hold s's deltas */
            unassign_src(w, s, 1);
            return -1;
        }
        td_worker_nap(w, backoff);
        backoff = td_worker_next_backoff(w, backoff);
    }
    return off < d->floor;
}

static void update_watermarks(td_worker_t *w) {
    for (int i = 0; i < w->nsrc; i++) {
        src_t *s = &w->srcs[i];
        int64_t lo, hi;
        if (s->assigned != 1 || s->partition >= TD_METRICS_MAX_PARTS) continue;
        if (rd_kafka_get_watermark_offsets(w->consumer, w->topics[s->kind],
                                           s->partition, &lo,
                                           &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            hi >= 0)
            atomic_store(&w->metrics.high_watermark[s->kind][s->partition], hi);
        atomic_store(&w->metrics.position[s->kind][s->partition], s->next);
    }
}

/*
 * Sizes the next batch when a flush ends, by the lag left (librdkafka's
 * cached high watermarks): caught up, flush_max_events or
 * flush_interval_ms keep latency low. Behind by more than flush_behind_lag
 * (a backlog after an outage, a deploy, a peak), batches are large so that
 * a merchant is written once per many of its events: the next one holds a
 * quarter of the lag, or as many events as the flush that ended or as the
 * consumer read while it ran if that is more, up to the lag and
 * flush_max_events_behind. While writing is the slower side the next flush
 * so starts as soon as the last ends, with everything read meanwhile; and
 * a quarter of the lag, not all of it, is what Redis and the flusher wait
 * for at the start (a batch as large as the lag left them idle for the
 * seconds it took to read it, and a caught-up worker that fell behind
 * waited seconds for its next write).
 */
uint64_t td_worker_batch_target(const td_conf_t *conf,
                                int64_t lag,
                                uint64_t flushed,
                                uint64_t read,
                                int *behind) {
    uint64_t target = (uint64_t)conf->flush_max_events, cap;

    *behind = lag > conf->flush_behind_lag;
    if (!*behind) return target;
    cap = (uint64_t)(lag < conf->flush_max_events_behind
                         ? lag
                         : conf->flush_max_events_behind);
    if (flushed > target) target = flushed;
    if (read > target) target = read;
    if ((uint64_t)lag / 4 > target) target = (uint64_t)lag / 4;
    return target < cap ? target : cap;
}

static void size_batches(td_worker_t *w) {
    update_watermarks(w);
    w->batch_target =
        td_worker_batch_target(w->conf, td_metrics_lag(&w->metrics), w->fevents,
                               w->events_since_flush, &w->behind);
}

/* Pauses (on) or resumes every assigned partition. Paused while the
 * active cache is full and a flush runs, the main thread keeps polling:
 * the group membership needs a poll within max.poll.interval.ms, however
 * long the flush retries an absent Redis. librdkafka drops what it had
 * prefetched and resumes at the next offset not yet consumed. */
static void hold(td_worker_t *w, int on) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err;

    if (w->held == on) return;
    err = rd_kafka_assignment(w->consumer, &parts);
    if (!err)
        err = on ? rd_kafka_pause_partitions(w->consumer, parts)
                 : rd_kafka_resume_partitions(w->consumer, parts);
    if (parts) rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        td_log(TD_LOG_WARNING, "%s partitions: %s", on ? "pausing" : "resuming",
               rd_kafka_err2str(err));
        return;
    }
    w->held = on;
    atomic_store(&w->metrics.paused, on);
    if (on)
        td_log_rl(&w->rl, RL_HOLD, TD_LOG_WARNING,
                  "max_merchants (%d) in memory while a flush is still "
                  "running: consumption paused until it ends",
                  w->conf->max_merchants);
    else
        td_log_rl(&w->rl, RL_RESUME, TD_LOG_NOTICE, "consumption resumed");
}

/* Draining a backlog, the consumer found nothing to read: if the lag is
 * gone too, the batch has nothing more to coalesce. */
static int drained(td_worker_t *w) {
    update_watermarks(w);
    return td_metrics_lag(&w->metrics) <= w->conf->flush_behind_lag;
}

int td_worker_run(td_worker_t *w) {
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new(TD_EV__CNT);
    rd_kafka_resp_err_t err;
    int rc = 0;

    for (int k = 0; k < TD_EV__CNT; k++)
        rd_kafka_topic_partition_list_add(topics, w->topics[k],
                                          RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(w->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        td_log(TD_LOG_WARNING, "subscribe: %s", rd_kafka_err2str(err));
        return 1;
    }
    w->last_flush_ms = td_mono_ms();
    w->batch_target = (uint64_t)w->conf->flush_max_events;
    td_log(TD_LOG_NOTICE, "consuming %s, %s, %s as group %s", w->topics[0],
           w->topics[1], w->topics[2], w->conf->group);

    while (!*w->stop) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(w->consumer, 20);
        int got = msg != NULL;
        int64_t now;
        if (msg) {
            handle(w, msg);
            rd_kafka_message_destroy(msg);
        }
        now = td_mono_ms();
        if (w->fbusy && td_flush_wait(w, 0)) {
            if (flush_end(w) != TD_OK) rc = 1;
            size_batches(w);
        }
        if (w->events_since_flush >= w->batch_target ||
            (w->behind && !got && w->events_since_flush > 0 && drained(w)) ||
            td_mcache_merchants(w->active) >= (size_t)w->conf->max_merchants ||
            now - w->last_flush_ms >= (w->behind
                                           ? w->conf->flush_interval_behind_ms
                                           : w->conf->flush_interval_ms)) {
            /* Due while the last one still runs: keep consuming into the
             * active cache until it is full, then hold until the flush
             * ends. Not while sources replaying to their horizon fill it
             * (only more of their events make it flushable): wait for the
             * flush, then flush again and read on. */
            if (w->fbusy && td_mcache_merchants(w->active) >=
                                (size_t)w->conf->max_merchants) {
                if (!sources_held(w)) {
                    hold(w, 1);
                } else {
                    if (flush_end(w) != TD_OK) rc = 1;
                    size_batches(w);
                }
            }
            if (!w->fbusy) {
                update_watermarks(w);
                if (td_store_is_cluster(w->store) &&
                    now - w->last_nodes_ms >= 1000) {
                    w->last_nodes_ms = now;
                    sync_nodes(w, 1);
                }
                if (td_sweep_due(&w->sweep, now)) sweep_page(w, now);
                if (flush_start(w) != TD_OK) rc = 1;
                w->last_flush_ms = now;
            }
        }
        if (w->held &&
            (!w->fbusy ||
             td_mcache_merchants(w->active) < (size_t)w->conf->max_merchants ||
             sources_held(w)))
            hold(w, 0);
        if (!w->fbusy && now - w->last_flush_ms < w->conf->flush_interval_ms &&
            now - w->last_ping_ms >= 1000 && w->events_since_flush == 0)
            ping(w, now);
        if (w->nwait > 0) poll_registry(w);
        atomic_store_explicit(&w->metrics.merchants_cached,
                              (int64_t)td_mcache_merchants(w->active),
                              memory_order_relaxed);
        rd_kafka_poll(w->producer, 0);
    }

    td_log(TD_LOG_NOTICE, "stopping: flushing and leaving the group");
    td_worker_give_up(w); /* starts the shutdown deadline */
    if (flush(w) != TD_OK) rc = 1;
    /* Revokes the assignment through rebalance_cb (nothing left to write
     * but publication marks) and leaves the group. */
    rd_kafka_consumer_close(w->consumer);
    if (flush(w) != TD_OK) rc = 1;
    rd_kafka_flush(w->producer, 2000);
    td_log(TD_LOG_NOTICE, "stopped%s", rc ? " (with unflushed events)" : "");
    return rc;
}

/* ---- construction ---- */

static int kconf_set(rd_kafka_conf_t *kc,
                     const char *name,
                     const char *value,
                     char *errstr,
                     size_t errstr_size) {
    if (rd_kafka_conf_set(kc, name, value, errstr, errstr_size) !=
        RD_KAFKA_CONF_OK)
        return TD_ERR;
    return TD_OK;
}

static rd_kafka_conf_t *
kconf_new(td_worker_t *w, int consumer, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    static const char *consumer_props[][2] = {
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.partition.eof", "false"},
        /* Partitions added to an input topic are assigned and read within
         * seconds, not after librdkafka's default 5 minutes. */
        {"topic.metadata.refresh.interval.ms", "10000"},
    };
    static const char *producer_props[][2] = {
        {"enable.idempotence", "true"},
        {"compression.codec", "lz4"},
        {"linger.ms", "5"},
        {"message.timeout.ms", "30000"},
        /* A dead letter is as large as the message it carries: let the
         * broker's (topic's) max.message.bytes be the limit. */
        {"message.max.bytes", "100000000"},
    };

    if (kconf_set(kc, "bootstrap.servers", w->conf->brokers, errstr,
                  errstr_size) != TD_OK)
        goto err;
    if (consumer) {
        if (kconf_set(kc, "group.id", w->conf->group, errstr, errstr_size))
            goto err;
        for (size_t i = 0; i < TD_ARRAY_LEN(consumer_props); i++) {
            if (kconf_set(kc, consumer_props[i][0], consumer_props[i][1],
                          errstr, errstr_size) != TD_OK)
                goto err;
        }
    } else {
        for (size_t i = 0; i < TD_ARRAY_LEN(producer_props); i++) {
            if (kconf_set(kc, producer_props[i][0], producer_props[i][1],
                          errstr, errstr_size) != TD_OK)
                goto err;
        }
    }
    for (size_t i = 0; i < w->conf->kafka_prop_cnt; i++) {
        const td_kafka_prop_t *p = &w->conf->kafka_props[i];
        char e2[256];
        if (kconf_set(kc, p->name, p->value, e2, sizeof(e2)) != TD_OK) {
            snprintf(errstr, errstr_size, "kafka.%s: %s", p->name, e2);
            goto err;
        }
    }
    rd_kafka_conf_set_log_cb(kc, log_cb);
    rd_kafka_conf_set_error_cb(kc, error_cb);
    rd_kafka_conf_set_opaque(kc, w);
    if (consumer)
        rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
    else
        rd_kafka_conf_set_dr_msg_cb(kc, dr_cb);
    return kc;
err:
    rd_kafka_conf_destroy(kc);
    return NULL;
}

/* The model file, or the one built in (schemas/model.conf at build time):
 * the score hash says which (model_source). */
static td_model_t *load_model(td_worker_t *w, char *errstr, size_t size) {
    const char *file = w->conf->model_file;

    w->sp.model_source = *file ? file : "built-in";
    td_log(TD_LOG_NOTICE, "model: %s", w->sp.model_source);
    return *file ? td_model_load(file, errstr, size)
                 : td_model_load_string("built-in model.conf", td_model_conf,
                                        errstr, size);
}

/* The schema registry client; every schema the map file names must be
 * one the codec can read, or trustd does not start. */
static td_registry_t *
registry_new(td_worker_t *w, char *errstr, size_t errstr_size) {
    const td_conf_t *c = w->conf;
    td_registry_conf_t rc = {
        .url = c->schema_registry_url,
        .user = c->schema_registry_user,
        .password = c->schema_registry_password,
        .map_file = c->schema_map_file,
        .timeout_ms = c->schema_registry_timeout_ms,
        .retry_max_ms = c->schema_registry_retry_max_ms,
    };
    td_registry_t *r = td_registry_new(&rc, errstr, errstr_size);

    for (size_t i = 0; r && i < td_registry_map_cnt(r); i++) {
        uint32_t id = td_registry_map_id(r, i);
        const char *json = NULL;
        size_t len = 0;
        char why[512];

        td_registry_get(r, id, &json, &len);
        if (td_codec_add_id(w->codec, id, json, len, why, sizeof(why)) !=
            TD_OK) {
            snprintf(errstr, errstr_size, "%s: %s", c->schema_map_file, why);
            td_registry_destroy(r);
            return NULL;
        }
    }
    return r;
}

td_worker_t *td_worker_new(const td_conf_t *conf,
                           volatile sig_atomic_t *stop,
                           char *errstr,
                           size_t errstr_size) {
    td_worker_t *w = calloc(1, sizeof(*w));
    rd_kafka_conf_t *kc;
    td_store_conf_t sc;

    if (!w) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    w->conf = conf;
    w->stop = stop;
    w->hot_idx = -1;
    w->topics[TD_EV_ORDER] = conf->topic_orders;
    w->topics[TD_EV_REVIEW] = conf->topic_reviews;
    w->topics[TD_EV_REFUND] = conf->topic_refunds;
    td_metrics_init(&w->metrics, w->topics);
    atomic_store(&w->metrics.started_ms, td_mono_ms());
    atomic_store(&w->metrics.last_progress_ms, td_mono_ms());
    td_log_rl_init(&w->rl, conf->log_error_interval_ms);
    td_log_rl_init(&w->frl, conf->log_error_interval_ms);
    td_kwatch_init(&w->kw, &w->metrics, w->topics, conf->brokers,
                   conf->log_error_interval_ms);
    td_validate_defaults(&w->validate);
    w->validate.min_event_time_ms = conf->min_event_time_ms;
    w->validate.max_future_skew_ms = conf->max_future_skew_ms;
    w->validate.max_message_bytes = (size_t)conf->max_message_bytes;

    if (!(w->model = load_model(w, errstr, errstr_size))) goto err;
    if (!(w->codec = td_codec_new(errstr, errstr_size))) goto err;
    if (!(w->registry = registry_new(w, errstr, errstr_size))) goto err;
    if (!(w->fcodec = td_codec_new(errstr, errstr_size))) goto err;
    td_store_conf_from(&sc, conf);
    if (!(w->store = td_store_new(&sc, errstr, errstr_size))) goto err;
    w->batch = td_rbatch_new();
    w->dbatch = td_rbatch_new();
    td_sweep_init(&w->sweep, conf->sweep_merchants_per_s);
    w->active = td_mcache_new();
    w->inflight = td_mcache_new();
    w->states = td_mscache_new();

    if (!(kc = kconf_new(w, 0, errstr, errstr_size))) goto err;
    if (!(w->producer =
              rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, errstr_size))) {
        rd_kafka_conf_destroy(kc);
        goto err;
    }
    if (!(w->dlq = td_dlq_new(w->producer, conf->topic_dlq))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (!(kc = kconf_new(w, 1, errstr, errstr_size))) goto err;
    if (!(w->consumer =
              rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, errstr_size))) {
        rd_kafka_conf_destroy(kc);
        goto err;
    }
    rd_kafka_poll_set_consumer(w->consumer);
    /* Last: nothing else can fail once the flusher runs. */
    if (td_flush_start(w, errstr, errstr_size) != TD_OK) goto err;
    return w;
err:
    td_worker_destroy(w);
    return NULL;
}

/* Kept reachable on purpose, see td_worker_destroy(). */
static rd_kafka_t *unassigned_consumer;

void td_worker_destroy(td_worker_t *w) {
    if (!w) return;
    if (w->fbusy) {
        while (!td_flush_wait(w, 1))
            rd_kafka_poll(w->producer, 1);
    }
    td_flush_stop(w);
    if (w->consumer) {
        /* librdkafka before 2.3 asserts when a cooperative-sticky consumer
         * that never received an assignment is destroyed (librdkafka#4312,
         * fixed by #4381). The group was left by rd_kafka_consumer_close()
         * already and the process is exiting: leave the handle alone. */
        if (w->ever_assigned || rd_kafka_version() >= 0x020300ff)
            rd_kafka_destroy(w->consumer);
        else
            unassigned_consumer = w->consumer;
    }
    td_dlq_destroy(w->dlq);
    if (w->producer) rd_kafka_destroy(w->producer);
    td_mcache_destroy(w->active);
    td_mcache_destroy(w->inflight);
    td_mscache_destroy(w->states);
    td_rbatch_destroy(w->batch);
    td_store_destroy(w->store);
    td_rbatch_destroy(w->dbatch);
    td_store_destroy(w->dstore);
    free(w->marks_seen);
    free(w->created);
    td_sweep_term(&w->sweep);
    td_codec_destroy(w->codec);
    td_codec_destroy(w->fcodec);
    td_registry_destroy(w->registry);
    td_model_destroy(w->model);
    free(w->srcs);
    free(w->pubs);
    free(w->marks);
    free(w->fresh);
    free(w->actx);
    free(w->psrc);
    td_kwatch_destroy(&w->kw);
    free(w);
}

td_metrics_t *td_worker_metrics(td_worker_t *w) {
    return &w->metrics;
}
