/*
 * worker_int.h - the worker's state, shared by its two halves: worker.c
 * (the consumer loop, assignment, offsets: the main thread) and flush.c
 * (the flush protocol, on the flusher thread). Internal to them.
 */
#ifndef TD_WORKER_INT_H
#define TD_WORKER_INT_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "codec.h"
#include "dlq.h"
#include "kwatch.h"
#include "log.h"
#include "mcache.h"
#include "metrics.h"
#include "model.h"
#include "mstate.h"
#include "proto.h"
#include "registry.h"
#include "store.h"
#include "sweep.h"
#include "worker.h"

#define SCORE_MAX 4096

/* The events of the next batch, decided when a flush ends: from the
 * consumer lag left, the events of the flush that ended and the events
 * read while it ran (worker.c). *behind: draining a backlog. */
uint64_t td_worker_batch_target(const td_conf_t *conf,
                                int64_t lag,
                                uint64_t flushed,
                                uint64_t read,
                                int *behind);


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
    /* Rebuilding (rollback(), deep): below this offset an event is skipped
     * when the merchant's stored watermark shows it applied; -1 none. */
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
    int swept;      /* its put carries a quiet merchant's re-score */
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
    /* The flusher thread (flush.c): started with the worker, it writes
     * each flush handed to it (the in-flight cache) while the main thread
     * consumes into the active one. flock guards fhanded, fquit, fdone and
     * frc; the handoff through it orders everything else either side
     * wrote before. */
    pthread_t fthread;
    int fthread_ok; /* fthread runs (td_flush_start succeeded) */
    pthread_mutex_t flock;
    pthread_cond_t fwork;  /* to the flusher: a flush is handed, or quit */
    pthread_cond_t fended; /* to the main thread: the flush is done */
    int fhanded;           /* flock: a flush waits for the flusher */
    int fquit;             /* flock: the flusher is to exit */
    int fdone;             /* flock: the handed flush ended, frc says how */
    int frc;
    int fbusy;              /* main thread: a flush was handed, not ended */
    int held;               /* main thread: assigned partitions paused (hold) */
    int64_t fstart_us;      /* when it was handed (monotonic) */
    uint64_t fevents;       /* events it writes */
    td_codec_t *fcodec;     /* the flusher's, for encoding scores */
    int64_t fnow;           /* wall clock when step 2 of the flush began */
    td_log_ratelimit_t frl; /* the flusher's */
    int healthy;
    int ever_assigned; /* an ASSIGN rebalance callback ran */
    /* The flusher found Redis behind what this worker wrote (see
     * rollback()); why, for the log; fdeep: how deep (TD_DEEP_*). */
    int frollback;
    int fdeep;
    char frollback_why[384];
    td_log_ratelimit_t rl;
    td_kwatch_t kw; /* brokers down, topics missing or grown */
    /* Redis Cluster: each master's marker (sync_nodes), and the main
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
    /* Merchants whose state this worker created (none was stored) since
     * Redis was last seen intact (record_complete, sync_nodes): if Redis
     * lost data before those puts, such a state holds only what came
     * after; rollback() deletes them for the replay to rebuild. Written by
     * the flusher during a flush, else by the main thread. */
    char (*created)[TD_MERCHANT_ID_MAX + 1];
    size_t ncreated, createdcap;
    td_sweep_t sweep; /* quiet merchants to re-score (sweep.h) */
    uint64_t nsweep;  /* of them in the active cache */
    td_metrics_t metrics;
    char scorebuf[SCORE_MAX];
};

/* How a rollback replays (worker.c rollback()). */
enum {
    TD_DEEP_NO,             /* from committed; merchant watermarks skip */
    TD_DEEP_FROM_COMMITTED, /* from committed, checking every event */
    TD_DEEP_FROM_OLDEST     /* from the oldest retained, checking every event */
};

/* Helpers both threads use (worker.c). */

/* Sleeps up to ms, waking early when asked to stop. */
void td_worker_nap(td_worker_t *w, int ms);
/* The next exponential backoff between Redis retries, capped. */
int td_worker_next_backoff(const td_worker_t *w, int backoff);
/* 1 once we are stopping and the shutdown deadline passed. */
int td_worker_give_up(td_worker_t *w);
void td_worker_set_healthy(td_worker_t *w, int ok);
/* Copies the store's round-trip and error counts into the metrics. */
void td_worker_sync_store_stats(td_worker_t *w);

#endif
