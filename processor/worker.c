/*
 * worker.c - the trustd consumer loop and its exactly-once flush protocol.
 *
 * Events are decoded and folded into per-(merchant, source partition)
 * deltas in the active cache. A flush swaps the caches and writes the
 * in-flight one to Redis in steps, each a pipelined round trip:
 *
 *   1. partition records: for every source in the flush, td_part writes
 *      committed = the last completed flush point and intent = this flush
 *      point F, fenced by the owner epoch taken at assignment;
 *   2. merchants: the deltas are merged in memory into each merchant's
 *      exact state (mstate.h: cached between flushes, loaded with td_load
 *      when missing), then one td_put per merchant writes it, guarded by the
 *      state version it was merged from and the merchant's watermark for
 *      each source, and sets those watermarks to F in the same atomic step.
 *      A refused put (STALE: another writer, or a retried flush) drops the
 *      cached state; it is reloaded with the watermarks, deltas they show
 *      applied are skipped, the rest merged again;
 *   3. scores: a merchant's score that moved enough since its last
 *      publication got its version in the merchant's td_put (td_score
 *      reserves one when a retried flush finds nothing left to write);
 *      the TrustScore is produced, dead letters and scores flushed to
 *      Kafka, then ZADD places each in trust:scores and the cached state
 *      remembers it as delivered. Its mark in the score hash (pub_version
 *      and friends) rides with the merchant's next td_put, or, for the
 *      merchants the next flush does not write, that flush's td_published
 *      (sweep_marks): at most one function call per merchant and flush.
 *      A crash before the mark can only cause an extra publication.
 *      In the same pipeline td_part records the flush complete
 *      (committed = intent = F).
 *
 * So for every merchant m and source s, the events of s applied to m are
 * exactly those below wm[m][s], and wm[m][s] is always the committed point
 * or the intent of the partition record. After a crash or a rebalance the
 * new owner claims the record (bumping the epoch), seeks to `committed`,
 * and if `intent` > `committed` holds that source's deltas until it has
 * read up to `intent`, so its first flush of that source ends exactly at
 * `intent`: merchants the dead flush reached skip it (wm == intent),
 * the others apply it. Merges commute, so two workers writing one merchant
 * from two sources (after partitions were added) never lose an update.
 *
 * Every td_part write carries the record's offsets as this worker last saw
 * them stored; Redis found behind them, or a record gone or at an older
 * epoch, or a merchant state older than one this worker wrote, means Redis
 * lost acknowledged writes (restarted empty or from an older copy,
 * FLUSHALL), not that another owner took over: rollback() replays.
 *
 * Steps 1-3 run on a flusher thread while the main thread consumes into
 * the active cache (flush_start / flush_end: who touches what is written
 * there); dead letters are confirmed and offsets moved on the main thread
 * once the flusher is done. One flush runs at a time. If Redis fails, the
 * flush is retried with backoff; the main thread consumes on until the
 * active cache holds max_merchants merchants, then waits. Offsets move only
 * after every step succeeded.
 *
 * On a Redis Cluster each step's batch succeeds only after WAIT 1 on every
 * master it wrote to (store.c): step 1 is on a replica before step 2 moves
 * a watermark to F, and step 2 before step 3 publishes and before the next
 * flush's step 1 (or the revoke/shutdown one) records F as `committed`. A
 * failover to a replica can thus only lose writes of an unfinished flush,
 * which the next owner replays as after a crash.
 */
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <pthread.h>
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
#include "kwatch.h"
#include "log.h"
#include "mcache.h"
#include "model.h"
#include "mstate.h"
#include "numfmt.h"
#include "proto.h"
#include "registry.h"
#include "schemas_gen.h"
#include "store.h"
#include "worker.h"

#define KEY_MAX   (TD_MERCHANT_ID_MAX + 32)
#define SCORE_MAX 4096

enum {
    RL_DECODE = 0,
    RL_FLUSH = TD_DLQ__CNT,
    RL_KAFKA,
    RL_DLQ,
    RL_HOLD, /* a Redis-bound worker may pause and resume every flush */
    RL_RESUME,
    RL_REGISTRY
};

typedef struct src_s {
    td_worker_t *w;
    td_event_kind_t kind;
    int32_t partition;
    char id[192];  /* "<topic>/<partition>": watermark field name */
    char key[224]; /* partition record key */
    int assigned;
    int64_t epoch;
    int64_t next;    /* next offset to read; -1 until known */
    int64_t flushed; /* events below are applied; -1 none */
    int64_t stored;  /* `committed` as stored in Redis */
    int64_t horizon; /* intent of a dead flush to align to; -1 none */
    int64_t fpoint;  /* flush point of the in-flight flush */
    int in_flush;
    int fenced; /* the flusher found it claimed by another worker */
    /* The record's committed and intent as this worker last wrote or read
     * them (-1 none): the store may never be behind them (td_part). */
    int64_t ack_c, ack_i;
    int64_t pend_c, pend_i; /* the write in flight */
    int64_t replay_to;      /* rolled back: replaying up to here; -1 none */
    /* Rebuilding from the oldest retained offset (rollback(), deep): below
     * this offset an event is skipped when the merchant's stored
     * watermark shows it applied; -1 none. */
    int64_t deep_to;
    uint64_t pending; /* events folded since the last flush */
    int64_t wait_id;  /* paused for this Confluent schema id; -1 none */
    int64_t wait_off; /* the offset to read again then */
} src_t;

/* A score to publish in this flush. */
typedef struct pub_s {
    td_score_rec_t rec;
    td_mstate_t *e; /* the merchant's cached state: its pub once delivered */
    int reserve;    /* no put carried it: step 3 reserves its version */
    int dropped;    /* its put was refused: the merchant is merged again */
} pub_t;

/* A publication delivered by the previous flush, to be marked in its
 * score hash: by the merchant's next put, or else by this flush's step 3
 * (sweep_marks). By value: its cached state may be dropped meanwhile. */
typedef struct mark_s {
    td_mpub_t pub;
    char id[TD_MERCHANT_ID_MAX + 1];
} mark_t;

/* A score hash as field/value strings (fv[2i], fv[2i + 1]), numbers
 * formatted as td_rbatch_dbl() and td_rbatch_i64() format them: what a
 * put RESTOREs whole and td_score writes (score_pairs). */
#define SP_PAIRS (14 + TD_SCORE_MAX_DIMS)
typedef struct spairs_s {
    const char *fv[2 * SP_PAIRS];
    size_t len[2 * SP_PAIRS];
    int cnt; /* strings */
    size_t used;
    const char *model_source; /* "built-in" or the model file's path */
    /* numbers (< 32 bytes each), sub_<dimension> names (< 4 +
     * TD_MODEL_NAME_MAX), reasons (< 1024); other names are literals */
    char arena[2 * SP_PAIRS * 32 + 1024];
} spairs_t;

/* One merchant of a flush's step 2. */
typedef struct applyctx_s {
    td_worker_t *w;
    td_merchant_t *m;
    td_mstate_t *e; /* its cached state; NULL until (re)loaded */
    int todo;       /* not yet written */
    long pub;       /* the score its put carries (index in pubs); -1 none */
    int fields;     /* load it with its readable hash (td_store_load) */
    int mark;       /* its put carries the entry's unmarked publication */
    uint64_t seen;  /* state version it was refused at: never less now */
} applyctx_t;

struct td_worker_s {
    const td_conf_t *conf;
    volatile sig_atomic_t *stop;
    const char *topics[TD_EV__CNT];
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    td_dlq_t *dlq;
    td_codec_t *codec;
    td_registry_t *registry; /* writer schemas of Confluent-framed events */
    int nwait;               /* sources paused for a schema id */
    td_validate_t validate;
    td_store_t *store;
    td_rbatch_t *batch;
    td_model_t *model;
    td_mcache_t *active;
    td_mcache_t *inflight;
    td_mscache_t *states; /* exact merchant states (mstate.h) */
    uint32_t gen;         /* flushes started: marks states in use */
    src_t *srcs;
    int nsrc, srccap;
    /* The source of the last message: consecutive messages mostly come
     * from one partition (librdkafka hands them out per fetch batch). */
    const rd_kafka_topic_t *hot_rkt;
    int32_t hot_part;
    int hot_idx; /* -1 none */
    uint64_t events_since_flush;
    int64_t last_flush_ms;
    int64_t last_ping_ms;
    int behind;            /* draining a backlog: see size_batches() */
    uint64_t batch_target; /* events that make a batch */
    int64_t stop_deadline; /* monotonic ms; 0 until stopping */
    pub_t *pubs;
    size_t npubs, pubcap;
    spairs_t sp; /* the flusher's scratch for one score hash */
    /* Delivered by the last flush, not yet marked (nmarks), and this
     * flush's deliveries (nfresh): the flusher's, like pubs. */
    mark_t *marks, *fresh;
    size_t nmarks, nfresh, markcap;
    applyctx_t *actx;
    size_t actxcap;
    td_proto_src_t *psrc; /* the flusher's scratch: one put's sources */
    size_t psrccap;
    /* Scores in flight and failed: the flusher produces, dr_cb (on the
     * main thread, which alone polls the producer) acknowledges. */
    _Atomic int64_t scores_inflight;
    _Atomic uint64_t score_failures;
    /* The flusher thread: one per flush, writing the in-flight cache while
     * the main thread consumes into the active one (see flush_start). */
    pthread_t fthread;
    int fbusy;         /* main thread: a flusher was started, not joined */
    int held;          /* main thread: assigned partitions paused (hold) */
    int fjoin;         /* fthread runs it (else it ran inline) */
    int64_t fstart_us; /* when it started (monotonic) */
    uint64_t fevents;  /* events it writes */
    _Atomic int fdone; /* flusher: finished, frc is its result */
    int frc;
    td_codec_t *fcodec;     /* the flusher's, for encoding scores */
    int64_t fnow;           /* wall clock when step 2 of the flush began */
    td_log_ratelimit_t frl; /* the flusher's */
    int healthy;
    int ever_assigned; /* an ASSIGN rebalance callback ran */
    /* The flusher found Redis behind what this worker wrote (see
     * rollback()); why, for the log; fdeep: how deep (DEEP_*). */
    int frollback;
    int fdeep;
    char frollback_why[384];
    td_log_ratelimit_t rl;
    td_kwatch_t kw; /* brokers down, topics missing or grown */
    /* Redis Cluster: each master's marker (check_nodes), and the main
     * thread's own connection for watermark reads while rebuilding. */
    struct node_mark {
        int slot; /* the master's lowest slot, where its marker is */
        char tag[16];
        char token[40]; /* "" until read */
    } * marks_seen;
    int nmarks_seen;
    int64_t last_nodes_ms;
    td_store_t *dstore;
    td_rbatch_t *dbatch;
    td_metrics_t metrics;
    char scorebuf[SCORE_MAX];
};

/* How a rollback replays (rollback()). */
enum {
    DEEP_NO,             /* from committed, merchant watermarks skip */
    DEEP_FROM_COMMITTED, /* from committed, checking every event */
    DEEP_FROM_OLDEST     /* from the oldest retained, checking every event */
};

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

static void *xrealloc(void *p, size_t n) {
    void *np = realloc(p, n);
    if (!np) {
        fprintf(stderr, "trustd: out of memory (%zu bytes)\n", n);
        abort();
    }
    return np;
}

/* Sleeps up to ms, waking early when asked to stop. */
static void nap(td_worker_t *w, int ms) {
    while (ms > 0 && !*w->stop) {
        int step = ms < 50 ? ms : 50;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* Exponential backoff between Redis retries, capped. */
static int next_backoff(const td_worker_t *w, int backoff) {
    return backoff * 2 > w->conf->redis_retry_max_ms
               ? w->conf->redis_retry_max_ms
               : backoff * 2;
}

/* 1 once we are stopping and the shutdown deadline passed. */
static int give_up(td_worker_t *w) {
    if (!*w->stop) return 0;
    if (!w->stop_deadline)
        w->stop_deadline = td_mono_ms() + w->conf->shutdown_timeout_ms;
    return td_mono_ms() >= w->stop_deadline;
}

static void set_healthy(td_worker_t *w, int ok) {
    w->healthy = ok;
    atomic_store(&w->metrics.redis_ok, ok);
}

static void sync_store_stats(td_worker_t *w) {
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
        w->srcs = xrealloc(w->srcs, (size_t)w->srccap * sizeof(*w->srcs));
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

    while (!give_up(w)) {
        td_rbatch_reset(w->batch);
        td_proto_claim(w->store, w->batch, s->key, s->epoch + 1, claim_cb, &c);
        if (td_store_exec(w->store, w->batch, errstr, sizeof(errstr)) ==
            TD_OK) {
            s->epoch = c.epoch;
            s->stored = s->flushed = s->next = c.committed;
            s->horizon = c.intent > c.committed ? c.intent : -1;
            s->ack_c = c.committed;
            s->ack_i = c.intent;
            set_healthy(w, 1);
            return TD_OK;
        }
        set_healthy(w, 0);
        td_log_rl(&w->rl, RL_FLUSH, TD_LOG_WARNING,
                  "claiming %s: %s; retrying in %d ms", s->id, errstr, backoff);
        nap(w, backoff);
        backoff = next_backoff(w, backoff);
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

/* ---- flush ---- */

/* The flusher found Redis behind what this worker wrote or read: the
 * flush stops and flush_end() replays (rollback()). */
static void rolled_back(td_worker_t *w, const char *why) {
    if (!w->frollback)
        snprintf(w->frollback_why, sizeof(w->frollback_why), "%.*s",
                 (int)sizeof(w->frollback_why) - 1, why);
    w->frollback = 1;
}

/* After a step: 1 (errstr filled) when it found Redis behind. */
static int rollback_found(td_worker_t *w, char *errstr, size_t errstr_size) {
    if (!w->frollback) return 0;
    snprintf(errstr, errstr_size, "%s", w->frollback_why);
    return 1;
}

static int
part_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    src_t *s = opaque;
    td_proto_part_t rc;
    char why[256];

    if (td_proto_part_parse(r, &rc, why, sizeof(why)) != TD_OK) {
        snprintf(errstr, errstr_size, "%s: %s", s->id, why);
        return TD_ERR;
    }
    if (rc == TD_PROTO_PART_FENCED) {
        /* Another worker claimed it: this flush must not touch it. */
        s->fenced = 1;
        return TD_OK;
    }
    if (rc == TD_PROTO_PART_LOST) {
        /* Not an owner's doing: Redis lost acknowledged writes. */
        rolled_back(s->w, why);
        return TD_OK;
    }
    s->ack_c = s->pend_c;
    s->ack_i = s->pend_i;
    return TD_OK;
}

/* Queues td_part's write of s's record (committed c, intent i), checked
 * against the epoch and against what this worker last wrote (part_cb). */
static void queue_part(td_worker_t *w, src_t *s, int64_t c, int64_t i) {
    td_rbatch_t *b = w->batch;

    s->pend_c = c;
    s->pend_i = i;
    td_proto_part_set(w->store, b, s->key, s->epoch, c, i, s->ack_c, s->ack_i,
                      part_cb, s);
}

static int want_publish(const td_worker_t *w,
                        const td_score_rec_t *rec,
                        const td_mpub_t *last,
                        int64_t now) {
    if (last->ms == 0) return 1; /* never published */
    if (fabs(rec->score - last->score) >= w->conf->publish_min_step) return 1;
    if (rec->tier != last->tier) return 1;
    /* A new model: republish rather than wait for the score to drift. */
    if (!last->model_ok) return 1;
    return w->conf->publish_max_interval_ms > 0 &&
           now - last->ms >= w->conf->publish_max_interval_ms;
}

/* Scores the merchant's state st (its entry's, merged); returns the index
 * of a new pubs entry if the score moved enough since the last
 * publication, else -1. */
static long consider_score(td_worker_t *w,
                           td_mstate_t *e,
                           const td_sigstate_t *st,
                           int reserve) {
    pub_t *pub;

    if (st->as_of == TD_NULL_TS) return -1;
    if (w->npubs == w->pubcap) {
        w->pubcap = w->pubcap ? w->pubcap * 2 : 256;
        w->pubs = xrealloc(w->pubs, w->pubcap * sizeof(*w->pubs));
    }
    pub = &w->pubs[w->npubs];
    memset(&pub->rec, 0, sizeof(pub->rec));
    snprintf(pub->rec.merchant_id, sizeof(pub->rec.merchant_id), "%.*s",
             (int)e->idlen, e->id);
    td_model_score(w->model, st, &pub->rec);
    if (!want_publish(w, &pub->rec, &e->pub, w->fnow)) return -1;
    pub->e = e;
    pub->reserve = reserve;
    pub->dropped = 0;
    return (long)w->npubs++;
}

/* Step 2, a td_load reply: the merchant's state, and which deltas its
 * watermarks show applied already. */
static int
load_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    applyctx_t *ax = opaque;
    td_worker_t *w = ax->w;
    td_proto_loaded_t l;
    td_mstate_t *e = td_mscache_add(w->states, ax->m->id, ax->m->idlen);
    int apply = 0;
    int rc = td_proto_load_parse(e, r, td_model_version(w->model), &l, errstr,
                                 errstr_size);

    if (rc != TD_OK) {
        td_mscache_del(w->states, e);
        if (rc != TD_PROTO_FIELDS) return TD_ERR;
        ax->fields = 1; /* read again, with the readable hash */
        return TD_OK;
    }
    if (e->version < ax->seen) {
        /* Versions only grow: Redis lost a write it acknowledged. */
        snprintf(errstr, errstr_size,
                 "merchant %s: state version %llu is behind %llu, which "
                 "this worker wrote or read",
                 ax->m->id, (unsigned long long)e->version,
                 (unsigned long long)ax->seen);
        rolled_back(w, errstr);
        return TD_ERR;
    }
    ax->e = e;
    for (td_mdelta_t *d = ax->m->deltas; d; d = d->next) {
        const src_t *s = &w->srcs[d->src];
        int64_t at = td_proto_wm(&l, s->id);
        d->skip = at >= s->fpoint || d->lo >= s->fpoint;
        if (!d->skip && at > d->lo) {
            /* The delta holds events the merchant has applied and events
             * it has not: Redis kept this merchant but lost the record's
             * offsets that would have aligned the replay (a Redis Cluster
             * node lost, or a worker that died rebuilding after it).
             * Rebuild event by event. While rebuilding it cannot happen:
             * say so, keep the stream going. */
            if (d->floor == TD_MDELTA_FLOOR_UNKNOWN) {
                snprintf(errstr, errstr_size,
                         "merchant %s: source %s watermark %lld inside "
                         "delta %lld..%lld",
                         ax->m->id, s->id, (long long)at, (long long)d->lo,
                         (long long)s->fpoint);
                if (!w->fdeep) w->fdeep = DEEP_FROM_COMMITTED;
                rolled_back(w, errstr);
                return TD_ERR;
            }
            td_log(TD_LOG_WARNING,
                   "merchant %s: TDOVERLAP source %s watermark %lld inside "
                   "delta %lld..%lld (delta skipped)",
                   ax->m->id, s->id, (long long)at, (long long)d->lo,
                   (long long)s->fpoint);
            d->skip = 1;
        }
        apply += !d->skip;
    }
    /* Nothing left to write (a retried flush): the score may still be
     * unpublished. */
    if (!apply) {
        td_sigstate_t st;
        ax->todo = 0;
        td_mstate_to_sigstate(e, &st);
        consider_score(w, e, &st, 1);
    }
    return TD_OK;
}

/* Step 2, a td_put reply: on OK the cached entry is the stored state and
 * the score it carried has its version; STALE drops the entry (and that
 * score) for a reload. */
static int
put_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    applyctx_t *ax = opaque;
    td_worker_t *w = ax->w;
    pub_t *pub = ax->pub >= 0 ? &w->pubs[ax->pub] : NULL;
    td_proto_put_reply_t pr;
    char why[256];

    if (td_proto_put_parse(r, pub != NULL, &pr, why, sizeof(why)) != TD_OK) {
        snprintf(errstr, errstr_size, "merchant %s: %s", ax->m->id, why);
        return TD_ERR;
    }
    if (pr.stale) {
        ax->seen = ax->e->version - 1; /* what the put was merged from */
        td_mscache_del(w->states, ax->e);
        ax->e = NULL;
        if (pub) pub->dropped = 1;
        atomic_fetch_add(&w->metrics.state_reloads, 1);
        return TD_OK;
    }
    if (pub) {
        pub->rec.version = pr.version;
        ax->e->sversion = pr.version;
    }
    if (ax->mark) ax->e->pub.unmarked = 0;
    ax->todo = 0;
    atomic_fetch_add(&w->metrics.merchant_writes, 1);
    return TD_OK;
}

static int
score_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    pub_t *pub = opaque;
    if (r->type != REDIS_REPLY_INTEGER) {
        snprintf(errstr, errstr_size, "score of %s: %s", pub->rec.merchant_id,
                 r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        return TD_ERR;
    }
    pub->rec.version = r->integer;
    pub->e->sversion = r->integer;
    return TD_OK;
}

static int
ok_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "%s: %s", (const char *)opaque, r->str);
        return TD_ERR;
    }
    return TD_OK;
}

/* Appends the reasons as a JSON array of strings. */
static void reasons_json(const td_score_rec_t *rec, char *buf, size_t size) {
    size_t len = 0;
    len += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rec->reason_cnt && len < size; i++) {
        len += (size_t)snprintf(buf + len, size - len, "%s\"", i ? "," : "");
        for (const char *p = rec->reasons[i]; *p && len + 3 < size; p++) {
            if (*p == '"' || *p == '\\') buf[len++] = '\\';
            buf[len++] = *p;
        }
        if (len < size) len += (size_t)snprintf(buf + len, size - len, "\"");
    }
    if (len < size) snprintf(buf + len, size - len, "]");
}

/* Adds a string to sp: referenced, not copied (it outlives the put). */
static void sp_ref(spairs_t *sp, const char *s, size_t len) {
    sp->fv[sp->cnt] = s;
    sp->len[sp->cnt++] = len;
}

#define SP_LIT(sp, s) sp_ref((sp), (s), sizeof(s) - 1)

/* Adds len bytes at the arena's end, written there by the caller. */
static void sp_commit(spairs_t *sp, size_t len) {
    sp_ref(sp, sp->arena + sp->used, len);
    sp->used += len + 1;
}

static void sp_i64(spairs_t *sp, int64_t v) {
    sp_commit(sp, td_fmt_i64(sp->arena + sp->used, v));
}

/* 17 digits: the exact double, as the record on the topic has it. */
static void sp_dbl(spairs_t *sp, double v) {
    sp_commit(sp, td_fmt_g17(sp->arena + sp->used, v));
}

static void sp_sub(spairs_t *sp, const char *dim) {
    size_t n = strlen(dim); /* < TD_MODEL_NAME_MAX */
    memcpy(sp->arena + sp->used, "sub_", 4);
    memcpy(sp->arena + sp->used + 4, dim, n);
    sp_commit(sp, n + 4);
}

/* The score hash's fields of rec as of now; with e, the whole hash a put
 * writes: also its next version and e's last delivered publication. */
static void score_pairs(spairs_t *sp,
                        const td_score_rec_t *rec,
                        const td_mstate_t *e,
                        int64_t now) {
    sp->cnt = 0;
    sp->used = 0;
    SP_LIT(sp, "score");
    sp_dbl(sp, rec->score);
    SP_LIT(sp, "tier");
    sp_i64(sp, rec->tier);
    SP_LIT(sp, "confidence");
    sp_dbl(sp, rec->confidence);
    for (int i = 0; i < rec->dim_cnt; i++) {
        sp_sub(sp, rec->dim_names[i]);
        sp_dbl(sp, rec->dims[i]);
    }
    reasons_json(rec, sp->arena + sp->used, 1024);
    SP_LIT(sp, "reasons");
    sp_commit(sp, strlen(sp->arena + sp->used));
    SP_LIT(sp, "model_version");
    sp_ref(sp, rec->model_version, strlen(rec->model_version));
    SP_LIT(sp, "model_source");
    sp_ref(sp, sp->model_source, strlen(sp->model_source));
    SP_LIT(sp, "as_of_ms");
    sp_i64(sp, rec->as_of_ms);
    SP_LIT(sp, "updated_ms");
    sp_i64(sp, now);
    if (!e) return;
    SP_LIT(sp, "version");
    sp_i64(sp, e->sversion + 1);
    if (e->pub.version == 0) return;
    SP_LIT(sp, "pub_version");
    sp_i64(sp, e->pub.version);
    SP_LIT(sp, "pub_score");
    sp_dbl(sp, e->pub.score);
    SP_LIT(sp, "pub_tier");
    sp_i64(sp, e->pub.tier);
    SP_LIT(sp, "pub_ms");
    sp_i64(sp, e->pub.ms);
}

/* Merges the merchant's deltas into its cached state and queues the
 * write, guarded by the version it was merged from, with the new score
 * when it is to be published. The entry holds the merged state from here
 * on: if the write fails, the flush drops every entry (flush_attempt) and
 * the retry reloads. */
static void queue_put(td_worker_t *w, applyctx_t *ax) {
    td_mstate_t *e = ax->e;
    td_sigstate_t st;
    td_proto_put_t req;
    uint64_t expected = e->version;
    int nsrc = 0;

    e->gen = w->gen;
    td_mstate_to_sigstate(e, &st);
    for (td_mdelta_t *d = ax->m->deltas; d; d = d->next) {
        if (d->skip) continue;
        td_sigstate_merge(&st, &d->d);
        nsrc++;
    }
    if (nsrc == 0) { /* all applied before (a replay after a crash) */
        ax->todo = 0;
        return;
    }
    td_mstate_from_sigstate(e, &st);
    e->version = expected + 1;
    ax->pub = consider_score(w, e, &st, 0);
    if ((size_t)nsrc > w->psrccap) {
        w->psrccap = (size_t)nsrc;
        w->psrc = xrealloc(w->psrc, w->psrccap * sizeof(*w->psrc));
    }
    memset(&req, 0, sizeof(req));
    req.e = e;
    req.expected = expected;
    req.signals = &st;
    req.srcs = w->psrc;
    for (td_mdelta_t *d = ax->m->deltas; d; d = d->next) {
        td_proto_src_t *ps = &w->psrc[req.nsrc];
        if (d->skip) continue;
        ps->id = w->srcs[d->src].id;
        ps->lo = d->lo;
        ps->next = w->srcs[d->src].fpoint;
        req.nsrc++;
    }
    /* A score carries the publication mark in its hash. */
    ax->mark = e->pub.unmarked;
    if (ax->mark && ax->pub < 0) req.mark = &e->pub;
    if (ax->pub >= 0) {
        const td_score_rec_t *rec = &w->pubs[ax->pub].rec;
        score_pairs(&w->sp, rec, e, w->fnow);
        /* Its history point, published when the hash says (updated_ms). */
        td_history_head(req.head, w->fnow, rec->score, rec->tier,
                        rec->confidence);
        req.npairs = w->sp.cnt / 2;
        req.fv = w->sp.fv;
        req.fvlen = w->sp.len;
        req.score_version = e->sversion;
    }
    td_proto_put(w->store, w->batch, &req, put_cb, ax);
}

/* Sends the flush's batch, if it holds any command. */
static int exec_any(td_worker_t *w, char *errstr, size_t errstr_size) {
    if (!td_rbatch_cnt(w->batch)) return TD_OK;
    return td_store_exec(w->store, w->batch, errstr, errstr_size);
}

/* Step 2: every merchant of the flush written once, merged from its cached
 * state; entries another writer moved (STALE) are reloaded and merged
 * again, a few rounds at most. */
static int write_merchants(td_worker_t *w, char *errstr, size_t errstr_size) {
    td_rbatch_t *b = w->batch;
    size_t n = 0;

    w->gen++;
    if (td_mcache_merchants(w->inflight) > w->actxcap) {
        w->actxcap = td_mcache_merchants(w->inflight);
        w->actx = xrealloc(w->actx, w->actxcap * sizeof(*w->actx));
    }
    for (td_merchant_t *m = td_mcache_first(w->inflight); m; m = m->lnext) {
        applyctx_t *ax = &w->actx[n];
        if (!m->deltas) continue;
        ax->w = w;
        ax->m = m;
        ax->e = td_mscache_get(w->states, m->id, m->idlen);
        ax->todo = 1;
        ax->pub = -1;
        ax->fields = 0;
        ax->mark = 0;
        ax->seen = 0;
        /* A cached entry's watermarks are checked by td_put: besides its
         * own, it carries those an earlier owner wrote for sources this
         * worker may be replaying now (a dead flush's intent). A delta
         * starting at the flush point holds no event (every one was below
         * the merchant's watermark while rebuilding): writing it would
         * move the watermark back. */
        for (td_mdelta_t *d = m->deltas; d; d = d->next)
            d->skip = d->lo >= w->srcs[d->src].fpoint;
        n++;
    }
    for (int round = 0;; round++) {
        size_t left = 0;
        /* Loads; a second pass for states found only in readable form. */
        for (int pass = 0; pass < 2; pass++) {
            td_rbatch_reset(b);
            for (size_t i = 0; i < n; i++) {
                applyctx_t *ax = &w->actx[i];
                if (!ax->todo || ax->e || (pass && !ax->fields)) continue;
                td_proto_load(w->store, b, ax->m->id, ax->m->idlen, ax->fields,
                              load_cb, ax);
            }
            if (exec_any(w, errstr, errstr_size) != TD_OK) return TD_ERR;
        }
        /* Sent while being built: Redis writes the first merchants while
         * the next are merged and encoded. */
        td_rbatch_reset(b);
        for (size_t i = 0; i < n; i++) {
            if (!w->actx[i].todo) continue;
            queue_put(w, &w->actx[i]);
            if (td_store_exec_part(w->store, b, 0, errstr, errstr_size) !=
                TD_OK)
                return TD_ERR;
        }
        if (td_rbatch_cnt(b) &&
            td_store_exec_part(w->store, b, 1, errstr, errstr_size) != TD_OK)
            return TD_ERR;
        for (size_t i = 0; i < n; i++)
            left += w->actx[i].todo;
        if (!left) return TD_OK;
        if (round == 8) {
            snprintf(errstr, errstr_size,
                     "%zu merchants changed under this worker 8 times in a "
                     "row",
                     left);
            return TD_ERR;
        }
    }
}

/* Step 3 for a score no put carried (a retried flush found the merchant
 * written already): td_score reserves its version. */
static void queue_score(td_worker_t *w, pub_t *pub, int64_t now) {
    unsigned char head[TD_HISTORY_HEAD];

    score_pairs(&w->sp, &pub->rec, NULL, now);
    td_history_head(head, now, pub->rec.score, pub->rec.tier,
                    pub->rec.confidence);
    td_proto_score(w->store, w->batch, pub->rec.merchant_id, head,
                   w->sp.cnt / 2, w->sp.fv, w->sp.len, score_cb, pub);
}

/* Step 3 for a delivered score: its place in trust:scores; the cached
 * state remembers it as the last publication, and it is to be marked in
 * the score hash by the merchant's next put or the next flush's sweep. */
static void queue_zadd(td_worker_t *w, pub_t *pub, int64_t now) {
    td_rbatch_t *b = w->batch;
    const td_score_rec_t *rec = &pub->rec;
    mark_t *mk;

    td_rbatch_begin(b);
    td_rbatch_str(b, "ZADD");
    td_rbatch_str(b, TD_KEY_SCORES);
    td_rbatch_dbl(b, rec->score);
    td_rbatch_str(b, rec->merchant_id);
    td_rbatch_end(b, ok_cb, (void *)"ZADD " TD_KEY_SCORES);

    pub->e->pub.score = rec->score;
    pub->e->pub.tier = rec->tier;
    pub->e->pub.ms = now;
    pub->e->pub.version = rec->version;
    pub->e->pub.model_ok = 1;
    pub->e->pub.unmarked = 1;
    mk = &w->fresh[w->nfresh++];
    mk->pub = pub->e->pub;
    memcpy(mk->id, rec->merchant_id, sizeof(mk->id));
}

/* Whether a publication of the last flush still needs td_published: not
 * if the merchant's put carried it, or a newer one was delivered since. */
static int mark_pending(td_worker_t *w, const mark_t *mk) {
    const td_mstate_t *e = td_mscache_get(w->states, mk->id, strlen(mk->id));
    if (!e) return 1; /* dropped: whether a put carried it is unknown */
    if (e->pub.version != mk->pub.version)
        return e->pub.version < mk->pub.version;
    return e->pub.unmarked;
}

/* Step 3: td_published for the last flush's publications no put carried
 * (cold merchants; all of them after a refused or failed put). */
static void sweep_marks(td_worker_t *w) {
    for (size_t i = 0; i < w->nmarks; i++) {
        const mark_t *mk = &w->marks[i];
        if (!mark_pending(w, mk)) continue;
        td_proto_published(w->store, w->batch, mk->id, &mk->pub, ok_cb,
                           (void *)"td_published");
    }
}

/* The sweep succeeded: the cached states know their marks are written;
 * this flush's deliveries are the next flush's to mark. */
static void marks_done(td_worker_t *w) {
    mark_t *t;
    for (size_t i = 0; i < w->nmarks; i++) {
        const mark_t *mk = &w->marks[i];
        td_mstate_t *e = td_mscache_get(w->states, mk->id, strlen(mk->id));
        if (e && e->pub.version == mk->pub.version) e->pub.unmarked = 0;
    }
    t = w->marks;
    w->marks = w->fresh;
    w->fresh = t;
    w->nmarks = w->nfresh;
    w->nfresh = 0;
}

/* Produces the reserved scores and waits until Kafka acknowledged them
 * (the main thread serves the delivery reports). Dead letters are the main
 * thread's (confirm_dead_letters). */
static int deliver(td_worker_t *w, char *errstr, size_t errstr_size) {
    int64_t deadline = td_mono_ms() + 30000;

    atomic_store(&w->score_failures, 0);
    for (size_t i = 0; i < w->npubs; i++) {
        td_score_rec_t *rec = &w->pubs[i].rec;
        size_t len;
        rd_kafka_resp_err_t err;
        if (td_codec_encode_score(w->fcodec, rec, w->scorebuf,
                                  sizeof(w->scorebuf), &len, errstr,
                                  errstr_size) != TD_OK)
            return TD_ERR;
        atomic_fetch_add(&w->scores_inflight, 1);
        do {
            err = rd_kafka_producev(
                w->producer, RD_KAFKA_V_TOPIC(w->conf->topic_scores),
                RD_KAFKA_V_KEY(rec->merchant_id, strlen(rec->merchant_id)),
                RD_KAFKA_V_VALUE(w->scorebuf, len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) nap(w, 10);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
                 td_mono_ms() < deadline);
        if (err) {
            atomic_fetch_sub(&w->scores_inflight, 1);
            snprintf(errstr, errstr_size, "producing score: %s",
                     rd_kafka_err2str(err));
            return TD_ERR;
        }
    }
    while (atomic_load(&w->scores_inflight) > 0 && td_mono_ms() < deadline) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&w->scores_inflight) > 0) {
        snprintf(errstr, errstr_size,
                 "Kafka did not acknowledge %lld scores in time",
                 (long long)atomic_load(&w->scores_inflight));
        return TD_ERR;
    }
    if (atomic_load(&w->score_failures)) {
        snprintf(errstr, errstr_size, "%llu score deliveries failed",
                 (unsigned long long)atomic_load(&w->score_failures));
        return TD_ERR;
    }
    atomic_fetch_add(&w->metrics.scores_published, w->npubs);
    return TD_OK;
}

/* Forgets the scores of puts that were refused (their merchants were
 * merged again and scored anew). */
static void drop_refused_scores(td_worker_t *w) {
    size_t n = 0;
    for (size_t i = 0; i < w->npubs; i++) {
        if (w->pubs[i].dropped) continue;
        if (n != i) w->pubs[n] = w->pubs[i];
        n++;
    }
    w->npubs = n;
}

/* Adds the time since *t to step s and moves *t to now. */
static void step_done(td_worker_t *w, td_fstep_t s, int64_t *t) {
    int64_t now = td_mono_us();
    atomic_fetch_add(&w->metrics.flush_step_us[s], (uint64_t)(now - *t));
    *t = now;
}

static int flush_attempt(td_worker_t *w, char *errstr, size_t errstr_size) {
    td_rbatch_t *b = w->batch;
    int64_t now, t = td_mono_us();
    int rc;

    /* 1. partition records */
    td_rbatch_reset(b);
    for (int i = 0; i < w->nsrc; i++) {
        src_t *s = &w->srcs[i];
        if (s->assigned != 1 || s->fenced ||
            (!s->in_flush && s->flushed <= s->stored))
            continue;
        queue_part(w, s, s->flushed, s->in_flush ? s->fpoint : s->flushed);
    }
    rc = exec_any(w, errstr, errstr_size);
    step_done(w, TD_FSTEP_RECORDS, &t);
    if (rc != TD_OK || rollback_found(w, errstr, errstr_size)) return TD_ERR;
    for (int i = 0; i < w->nsrc; i++) {
        src_t *s = &w->srcs[i];
        if (s->fenced) {
            /* Not ours to write; flush_end unassigns it. */
            td_mcache_drop_source(w->inflight, i);
        } else if (s->assigned == 1) {
            s->stored = s->flushed; /* metrics: flush_end */
        }
    }

    /* 2. merchants */
    w->npubs = 0;
    w->fnow = td_now_ms();
    rc = write_merchants(w, errstr, errstr_size);
    step_done(w, TD_FSTEP_MERCHANTS, &t);
    if (rc != TD_OK) {
        /* Entries may hold merges Redis never took: reload them all. */
        td_mscache_clear(w->states);
        return TD_ERR;
    }

    /* 3. scores, dead letters */
    drop_refused_scores(w);
    now = td_now_ms();
    td_rbatch_reset(b);
    for (size_t i = 0; i < w->npubs; i++)
        if (w->pubs[i].reserve) queue_score(w, &w->pubs[i], now);
    rc = exec_any(w, errstr, errstr_size);
    step_done(w, TD_FSTEP_INDEX, &t);
    if (rc != TD_OK) return TD_ERR;
    rc = deliver(w, errstr, errstr_size);
    step_done(w, TD_FSTEP_DELIVER, &t);
    if (rc != TD_OK) return TD_ERR;
    td_rbatch_reset(b);
    if (w->npubs > w->markcap) {
        w->markcap = w->npubs;
        w->fresh = xrealloc(w->fresh, w->markcap * sizeof(*w->fresh));
        w->marks = xrealloc(w->marks, w->markcap * sizeof(*w->marks));
    }
    w->nfresh = 0;
    for (size_t i = 0; i < w->npubs; i++)
        queue_zadd(w, &w->pubs[i], now);
    sweep_marks(w); /* after: a newer delivery makes a mark moot */
    rc = exec_any(w, errstr, errstr_size);
    step_done(w, TD_FSTEP_INDEX, &t);
    if (rc != TD_OK) return TD_ERR;
    marks_done(w);
    return TD_OK;
}

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

/*
 * A flush runs on its own thread (flush_work) while the main thread goes
 * on consuming into the active cache. What each side touches while it
 * runs: the flusher owns the in-flight cache, the merchant states, the
 * Redis store and batch, the score records, fcodec and frl, and writes
 * only `stored` and `fenced` of the sources; the main thread owns
 * everything else and does not change a source's assignment, nor talk to
 * Redis, until flush_end() joined the flusher. Rebalances, the replay
 * horizon and shutdown use flush(), which waits.
 */
static void *flush_work(void *arg) {
    td_worker_t *w = arg;
    char errstr[512];
    int backoff = 50;

    w->frc = TD_OK;
    while (flush_attempt(w, errstr, sizeof(errstr)) != TD_OK) {
        sync_store_stats(w);
        td_mscache_clear(w->states); /* may hold merges Redis never took */
        if (w->frollback) {
            w->frc = TD_ERR; /* flush_end() replays instead */
            break;
        }
        atomic_fetch_add(&w->metrics.flush_failures, 1);
        set_healthy(w, 0);
        td_log_rl(&w->frl, RL_FLUSH, TD_LOG_WARNING,
                  "flush failed: %s; retrying in %d ms", errstr, backoff);
        if (give_up(w)) {
            td_log(TD_LOG_WARNING,
                   "giving up the flush at shutdown: "
                   "offsets were not stored, the next owner replays");
            w->frc = TD_ERR;
            break;
        }
        nap(w, backoff);
        backoff = next_backoff(w, backoff);
    }
    if (w->frc == TD_OK) {
        if (!w->healthy)
            td_log(TD_LOG_NOTICE, "flush succeeded again; resuming");
        set_healthy(w, 1);
    }
    sync_store_stats(w);
    atomic_store(&w->fdone, 1);
    return NULL;
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
        set_healthy(w, 0);
        td_log_rl(&w->rl, RL_FLUSH, TD_LOG_WARNING,
                  "flush failed: %s; retrying in %d ms", errstr, backoff);
        if (give_up(w)) return TD_ERR;
        nap(w, backoff);
        backoff = next_backoff(w, backoff);
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
               : td_store_is_cluster(w->store) ? DEEP_FROM_OLDEST
                                               : DEEP_NO;

    w->frollback = w->fdeep = 0;
    atomic_fetch_add(&w->metrics.store_rollbacks, 1);
    atomic_store(&w->metrics.replaying, 1);
    td_log(TD_LOG_WARNING,
           "error: redis went back in time (%s): dropping unflushed events "
           "and cached states, replaying every assigned partition from %s",
           w->frollback_why,
           deep == DEEP_FROM_OLDEST
               ? "its oldest retained offset, each event checked against "
                 "its merchant's watermark"
           : deep ? "its stored offsets, each event checked against its "
                    "merchant's watermark"
                  : "its stored offsets");
    td_mcache_clear(w->active);
    td_mcache_clear(w->inflight);
    td_mscache_clear(w->states);
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
            if (deep == DEEP_FROM_OLDEST) s->next = s->flushed = s->stored = -1;
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
    for (int i = 0; i < w->nsrc; i++) {
        src_t *s = &w->srcs[i];
        if (s->assigned == 1 && s->ack_c == s->flushed) s->stored = s->flushed;
        src_metrics(w, s);
    }
    drop_fenced(w);
    if (w->frollback) rollback(w);
}

/* Waits for the running flush, if any (serving the producer's delivery
 * reports meanwhile), and completes it: the flush points become the
 * sources' offsets. TD_ERR if it was given up (its cache stays in flight
 * for the next flush to retry). */
static int flush_end(td_worker_t *w) {
    int64_t t0 = w->fstart_us;

    if (!w->fbusy) return TD_OK;
    while (!atomic_load(&w->fdone))
        rd_kafka_poll(w->producer, 2);
    if (w->fjoin) pthread_join(w->fthread, NULL);
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
        if (s->assigned == 1) queue_part(w, s, s->flushed, s->flushed);
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

/* Starts a flush of everything flushable on the flusher thread; TD_OK if
 * started or nothing to do. The previous flush must have ended. */
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
        if (!need && w->nmarks == 0 && td_dlq_inflight(w->dlq) == 0 &&
            td_dlq_failed(w->dlq) == 0)
            return TD_OK;
        take_flushable(w);
        w->events_since_flush = 0;
        atomic_store(&w->metrics.merchants_cached,
                     (int64_t)td_mcache_merchants(w->active));
    } /* else a flush given up earlier (shutdown): retry it as it was */
    w->fevents = events;
    w->fstart_us = td_mono_us();
    atomic_store(&w->fdone, 0);
    w->fbusy = 1;
    w->fjoin = pthread_create(&w->fthread, NULL, flush_work, w) == 0;
    if (!w->fjoin) flush_work(w); /* no thread to be had: flush here */
    return TD_OK;
}

/* Flushes everything flushable and waits: TD_OK when the in-flight cache
 * was written and offsets moved. */
static int flush(td_worker_t *w) {
    flush_end(w); /* if it failed, its cache is retried below */
    if (flush_start(w) != TD_OK) return TD_ERR;
    return flush_end(w);
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
    w->marks_seen = xrealloc(w->marks_seen, (size_t)(w->nmarks_seen + 1) *
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
    if (lost < 0 || !detect) return;
    snprintf(errstr, sizeof(errstr),
             "the Redis Cluster node serving slot %d lost its data: marker "
             "trust:node:{%s} %s",
             slots[lost], nm[lost]->tag,
             got[lost].got == 1 ? "replaced" : "missing");
    w->fdeep = DEEP_FROM_OLDEST;
    rolled_back(w, errstr);
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
        set_healthy(w, 1);
    } else {
        if (w->healthy)
            td_log(TD_LOG_WARNING, "redis unreachable while idle: %s",
                   r ? r->str : errstr);
        set_healthy(w, 0);
    }
    if (r) freeReplyObject(r);
    sync_store_stats(w);
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
            if (give_up(w))
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
        if (give_up(w)) {
            flush_end(w); /* the flusher must not hold s's deltas */
            unassign_src(w, s, 1);
            return -1;
        }
        nap(w, backoff);
        backoff = next_backoff(w, backoff);
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
 * Sizes the next batch by the lag left after a flush (librdkafka's cached
 * high watermarks): caught up, flush_max_events or flush_interval_ms keep
 * latency low; behind by more than flush_behind_lag (a backlog after an
 * outage, a deploy, a peak: more than what arrives during one flush), the
 * next batch is as large as the lag, up to flush_max_events_behind, so a
 * merchant is written once per many of its events and the backlog drains
 * in a few large flushes.
 */
static void size_batches(td_worker_t *w) {
    int64_t lag;

    update_watermarks(w);
    lag = td_metrics_lag(&w->metrics);
    w->behind = lag > w->conf->flush_behind_lag;
    w->batch_target = (uint64_t)w->conf->flush_max_events;
    if (w->behind)
        w->batch_target = (uint64_t)(lag < w->conf->flush_max_events_behind
                                         ? lag
                                         : w->conf->flush_max_events_behind);
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
        if (w->fbusy && atomic_load(&w->fdone)) {
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
    give_up(w); /* starts the shutdown deadline */
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
        while (!atomic_load(&w->fdone))
            rd_kafka_poll(w->producer, 2);
        if (w->fjoin) pthread_join(w->fthread, NULL);
    }
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
