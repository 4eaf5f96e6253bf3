/*
 * flush.c - the worker's exactly-once flush protocol, on its flusher thread.
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
 *      Kafka, then ZADD places them in trust:scores (256 a command) and
 *      the cached state remembers each as delivered. Its mark in the score
 *      hash (pub_version and friends) rides with the merchant's next
 *      td_put, or, for the
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
 * Steps 1-3 run on the flusher thread, one for the worker's lifetime,
 * while the main thread consumes into the active cache: worker.c's
 * flush_start chooses what to flush and hands it over (td_flush_hand),
 * polls Kafka meanwhile (serving the delivery reports step 3 waits for),
 * and once the flusher says it ended (td_flush_wait) flush_end confirms
 * the dead letters, moves the offsets and records the flush complete on
 * the main thread. Who touches what meanwhile: see flusher_main(). One
 * flush runs at a time. If Redis fails, the flush is retried with backoff;
 * the main thread consumes on until the active cache holds max_merchants
 * merchants, then waits. Offsets move only after every step succeeded.
 *
 * On a Redis Cluster each step's batch succeeds only after WAIT 1 on every
 * master it wrote to (store_cluster.c): step 1 is on a replica before
 * step 2 moves a watermark to F, and step 2 before step 3 publishes and
 * before the next flush's step 1 (or the revoke/shutdown one) records F as
 * `committed`. A failover to a replica can thus only lose writes of an
 * unfinished flush, which the next owner replays as after a crash.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "flush.h"
#include "numfmt.h"

/* ---- steps 1-3 ---- */

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
void td_flush_queue_part(td_worker_t *w, src_t *s, int64_t c, int64_t i) {
    td_rbatch_t *b = w->batch;

    s->pend_c = c;
    s->pend_i = i;
    td_proto_part_set(w->store, b, s->key, s->epoch, c, i, s->ack_c, s->ack_i,
                      part_cb, s);
}

static int want_publish(const td_worker_t *w,
                        const td_score_rec_t *rec,
                        const td_mpub_t *last,
                        int64_t now,
                        int swept) {
    if (last->ms == 0) return 1; /* never published */
    if (fabs(rec->score - last->score) >= w->conf->publish_min_step) return 1;
    if (rec->tier != last->tier) return 1;
    /* A new model: republish rather than wait for the score to drift. */
    if (!last->model_ok) return 1;
    /* A re-score without new events publishes only what moved. */
    return !swept && w->conf->publish_max_interval_ms > 0 &&
           now - last->ms >= w->conf->publish_max_interval_ms;
}

/* Scores the merchant's state st (its entry's, merged; or aged to now when
 * swept); returns the index of a new pubs entry if the score moved enough
 * since the last publication, else -1. */
static long consider_score(td_worker_t *w,
                           td_mstate_t *e,
                           const td_sigstate_t *st,
                           int reserve,
                           int swept) {
    pub_t *pub;

    if (st->as_of == TD_NULL_TS) return -1;
    if (w->npubs == w->pubcap) {
        w->pubcap = w->pubcap ? w->pubcap * 2 : 256;
        w->pubs = td_xrealloc(w->pubs, w->pubcap * sizeof(*w->pubs));
    }
    pub = &w->pubs[w->npubs];
    memset(&pub->rec, 0, sizeof(pub->rec));
    memcpy(pub->rec.merchant_id, e->id, e->idlen); /* idlen: id max */
    pub->rec.merchant_id[e->idlen] = '\0';
    td_model_score(w->model, st, &pub->rec);
    if (!want_publish(w, &pub->rec, &e->pub, w->fnow, swept)) return -1;
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
             * node lost, or a worker that died rebuilding after it), or an
             * operator moved a record back. Rebuild event by event. While
             * rebuilding it cannot happen: say so, keep the stream going. */
            if (d->floor == TD_MDELTA_FLOOR_UNKNOWN) {
                snprintf(errstr, errstr_size,
                         "merchant %s: source %s watermark %lld inside "
                         "delta %lld..%lld",
                         ax->m->id, s->id, (long long)at, (long long)d->lo,
                         (long long)s->fpoint);
                if (!w->fdeep) w->fdeep = TD_DEEP_FROM_COMMITTED;
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
     * unpublished. A merchant to sweep goes on to its put (queue_put). */
    if (!apply && !ax->m->sweep) {
        td_sigstate_t st;
        ax->todo = 0;
        td_mstate_to_sigstate(e, &st);
        consider_score(w, e, &st, 1, 0);
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
    if (ax->swept) atomic_fetch_add(&w->metrics.swept, 1);
    if (ax->e->version == 1) { /* created: see worker_int.h */
        td_grow((void **)&w->created, &w->createdcap, w->ncreated + 1,
                sizeof(*w->created));
        memcpy(w->created[w->ncreated], ax->m->id, ax->m->idlen + 1u);
        w->ncreated++;
    }
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

/* Writes the reasons as a JSON array of strings into buf (size bytes,
 * NUL-terminated); reasons that do not fit whole are left out. */
static void reasons_json(const td_score_rec_t *rec, char *buf, size_t size) {
    size_t len = 0;

    buf[len++] = '[';
    for (int i = 0; i < rec->reason_cnt; i++) {
        const char *p = rec->reasons[i];
        /* a comma, quotes, every byte escaped, "]" and the NUL */
        if (len + 2 * strlen(p) + 5 > size) break;
        if (i) buf[len++] = ',';
        buf[len++] = '"';
        for (; *p; p++) {
            if (*p == '"' || *p == '\\') buf[len++] = '\\';
            buf[len++] = *p;
        }
        buf[len++] = '"';
    }
    buf[len++] = ']';
    buf[len] = '\0';
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
    /* The fields every put and mark reads or writes come first: Redis
     * finds a listpack hash's fields by scanning from its head. */
    if (e) {
        SP_LIT(sp, "version");
        sp_i64(sp, e->sversion + 1);
    }
    if (e && e->pub.version != 0) {
        SP_LIT(sp, "pub_version");
        sp_i64(sp, e->pub.version);
        SP_LIT(sp, "pub_score");
        sp_dbl(sp, e->pub.score);
        SP_LIT(sp, "pub_tier");
        sp_i64(sp, e->pub.tier);
        SP_LIT(sp, "pub_ms");
        sp_i64(sp, e->pub.ms);
    }
    SP_LIT(sp, "model_version");
    sp_ref(sp, rec->model_version, strlen(rec->model_version));
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
    SP_LIT(sp, "model_source");
    sp_ref(sp, sp->model_source, strlen(sp->model_source));
    SP_LIT(sp, "as_of_ms");
    sp_i64(sp, rec->as_of_ms);
    SP_LIT(sp, "updated_ms");
    sp_i64(sp, now);
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
    ax->swept = 0;
    if (nsrc > 0) {
        td_mstate_from_sigstate(e, &st);
        ax->pub = consider_score(w, e, &st, 0, 0);
    } else if (ax->m->sweep && w->fnow - e->pub.ms >= w->conf->sweep_quiet_ms) {
        /* A quiet merchant (sweep.h): scored with its signals aged to
         * now, so that windows and caps expire; published if that moved
         * it. Its state and readable hash stay as of its last event: the
         * put writes them unchanged, for the state version's guard. */
        td_sigstate_t aged = st;
        td_sigstate_age(&aged, w->fnow);
        ax->pub = consider_score(w, e, &aged, 0, 1);
        ax->swept = ax->pub >= 0;
    } else {
        ax->pub = -1; /* all applied before (a replay after a crash) */
    }
    if (nsrc == 0 && !ax->swept) {
        ax->todo = 0;
        return;
    }
    e->version = expected + 1;
    if ((size_t)nsrc > w->psrccap) {
        w->psrccap = (size_t)nsrc;
        w->psrc = td_xrealloc(w->psrc, w->psrccap * sizeof(*w->psrc));
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
        w->actx = td_xrealloc(w->actx, w->actxcap * sizeof(*w->actx));
    }
    for (td_merchant_t *m = td_mcache_first(w->inflight); m; m = m->lnext) {
        applyctx_t *ax = &w->actx[n];
        if (!m->deltas && !m->sweep) continue;
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

/* Step 3 for a delivered score: the cached state remembers it as the last
 * publication, to be marked in the score hash by the merchant's next put
 * or the next flush's sweep. */
static void delivered(td_worker_t *w, pub_t *pub, int64_t now) {
    const td_score_rec_t *rec = &pub->rec;
    mark_t *mk;

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

/* Members per ZADD: one command places many scores in trust:scores (one
 * key, so one slot on a cluster too). */
#define ZADD_MEMBERS 256

/* Step 3: the delivered scores' places in trust:scores. */
static void queue_zadds(td_worker_t *w) {
    td_rbatch_t *b = w->batch;

    for (size_t i = 0; i < w->npubs; i++) {
        const td_score_rec_t *rec = &w->pubs[i].rec;
        if (i % ZADD_MEMBERS == 0) {
            td_rbatch_begin(b);
            td_rbatch_str(b, "ZADD");
            td_rbatch_str(b, TD_KEY_SCORES);
        }
        td_rbatch_dbl(b, rec->score);
        td_rbatch_str(b, rec->merchant_id);
        if (i % ZADD_MEMBERS == ZADD_MEMBERS - 1 || i + 1 == w->npubs)
            td_rbatch_end(b, ok_cb, (void *)"ZADD " TD_KEY_SCORES);
    }
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
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) td_worker_nap(w, 10);
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
        td_flush_queue_part(w, s, s->flushed,
                            s->in_flush ? s->fpoint : s->flushed);
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
        w->fresh = td_xrealloc(w->fresh, w->markcap * sizeof(*w->fresh));
        w->marks = td_xrealloc(w->marks, w->markcap * sizeof(*w->marks));
    }
    w->nfresh = 0;
    for (size_t i = 0; i < w->npubs; i++)
        delivered(w, &w->pubs[i], now);
    queue_zadds(w);
    sweep_marks(w); /* after: a newer delivery makes a mark moot */
    rc = exec_any(w, errstr, errstr_size);
    step_done(w, TD_FSTEP_INDEX, &t);
    if (rc != TD_OK) return TD_ERR;
    marks_done(w);
    return TD_OK;
}

/* ---- the flusher thread ---- */

/* One handed flush: steps 1-3, retried with backoff while they fail, until
 * they succeed, Redis is found behind (flush_end() replays instead) or the
 * shutdown deadline passed. */
static int flush_run(td_worker_t *w) {
    char errstr[512];
    int backoff = 50;
    int rc = TD_OK;

    while (flush_attempt(w, errstr, sizeof(errstr)) != TD_OK) {
        td_worker_sync_store_stats(w);
        td_mscache_clear(w->states); /* may hold merges Redis never took */
        if (w->frollback) {
            rc = TD_ERR; /* flush_end() replays instead */
            break;
        }
        atomic_fetch_add(&w->metrics.flush_failures, 1);
        td_worker_set_healthy(w, 0);
        td_log_rl(&w->frl, RL_FLUSH, TD_LOG_WARNING,
                  "flush failed: %s; retrying in %d ms", errstr, backoff);
        if (td_worker_give_up(w)) {
            td_log(TD_LOG_WARNING,
                   "giving up the flush at shutdown: "
                   "offsets were not stored, the next owner replays");
            rc = TD_ERR;
            break;
        }
        td_worker_nap(w, backoff);
        backoff = td_worker_next_backoff(w, backoff);
    }
    if (rc == TD_OK) {
        if (!w->healthy)
            td_log(TD_LOG_NOTICE, "flush succeeded again; resuming");
        td_worker_set_healthy(w, 1);
    }
    td_worker_sync_store_stats(w);
    return rc;
}

/*
 * The flusher thread: waits for a handed flush, runs it, says it ended,
 * until told to quit. While a flush runs the flusher owns the in-flight
 * cache, the merchant states, the Redis store and batch, the score
 * records and marks, fcodec and frl, and writes only `stored` and
 * `fenced` of the sources; the main thread owns everything else and does
 * not change a source's assignment, nor talk to Redis, until flush_end()
 * saw it end. Rebalances, the replay horizon and shutdown use flush(),
 * which waits. The handoff through flock orders what each side wrote
 * before it.
 */
static void *flusher_main(void *arg) {
    td_worker_t *w = arg;

    pthread_mutex_lock(&w->flock);
    for (;;) {
        int rc;
        while (!w->fhanded && !w->fquit)
            pthread_cond_wait(&w->fwork, &w->flock);
        if (w->fquit) break;
        w->fhanded = 0;
        pthread_mutex_unlock(&w->flock);
        rc = flush_run(w);
        pthread_mutex_lock(&w->flock);
        w->frc = rc;
        w->fdone = 1;
        pthread_cond_signal(&w->fended);
    }
    pthread_mutex_unlock(&w->flock);
    return NULL;
}

int td_flush_start(td_worker_t *w, char *errstr, size_t errstr_size) {
    pthread_condattr_t ca;
    int err;

    pthread_mutex_init(&w->flock, NULL);
    pthread_cond_init(&w->fwork, NULL);
    /* td_flush_wait() times out on the monotonic clock. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->fended, &ca);
    pthread_condattr_destroy(&ca);
    w->fhanded = w->fquit = w->fdone = 0;
    err = pthread_create(&w->fthread, NULL, flusher_main, w);
    if (err) {
        snprintf(errstr, errstr_size, "starting the flusher thread: %s",
                 strerror(err));
        pthread_cond_destroy(&w->fended);
        pthread_cond_destroy(&w->fwork);
        pthread_mutex_destroy(&w->flock);
        return TD_ERR;
    }
    w->fthread_ok = 1;
    return TD_OK;
}

void td_flush_stop(td_worker_t *w) {
    if (!w->fthread_ok) return;
    pthread_mutex_lock(&w->flock);
    w->fquit = 1;
    pthread_cond_signal(&w->fwork);
    pthread_mutex_unlock(&w->flock);
    pthread_join(w->fthread, NULL);
    pthread_cond_destroy(&w->fended);
    pthread_cond_destroy(&w->fwork);
    pthread_mutex_destroy(&w->flock);
    w->fthread_ok = 0;
}

void td_flush_hand(td_worker_t *w) {
    pthread_mutex_lock(&w->flock);
    w->fdone = 0;
    w->fhanded = 1;
    pthread_cond_signal(&w->fwork);
    pthread_mutex_unlock(&w->flock);
}

int td_flush_wait(td_worker_t *w, int timeout_ms) {
    int done;

    pthread_mutex_lock(&w->flock);
    if (!w->fdone && timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)timeout_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        while (!w->fdone) {
            if (pthread_cond_timedwait(&w->fended, &w->flock, &ts) == ETIMEDOUT)
                break;
        }
    }
    done = w->fdone;
    pthread_mutex_unlock(&w->flock);
    return done;
}
