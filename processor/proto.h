/*
 * proto.h - the merchant write protocol: trustd's key layout in Redis, every
 * request the worker sends about a merchant or a partition record, and the
 * parsing of their replies. A request is one struct (or a few values) in,
 * a reply one parsed struct out.
 *
 * Each request has two forms with the same guards and the same resulting
 * keys, byte for byte: the native commands of the trustd Redis module
 * (TD.LOAD, TD.PUT, TD.PART, TD.SCORE, TD.PUBLISHED; processor/module/),
 * used when the server has them (td_store_native()), and the Lua function
 * library (store.c) otherwise. The Lua form of a put RESTOREs its signals
 * payload as signals:next, which the function renames into place (3 KB that
 * would cost Lua more than the RESTORE), and carries the score payload, as
 * the native TD.PUT carries both.
 *
 * Key layout (every per-merchant key carries the {merchant_id} hash tag, so
 * a merchant's keys share one Redis Cluster slot):
 *   trust:{<m>}:signals       hash    signal values + as_of_ms
 *   trust:{<m>}:signals:next  hash    Lua form only: the next signals hash
 *   trust:{<m>}:state         string  exact merge state (mstate.h)
 *   trust:{<m>}:wm            hash    source ("<topic>/<partition>") -> next
 *                                     offset applied for the merchant
 *   trust:{<m>}:score         hash    score, tier, confidence, sub-scores,
 *                                     reasons, version, model_version,
 *                                     updated_ms, pub_*
 *   trust:{<m>}:history       string  one 16-byte point per score version
 *                                     (history.h), appended by the write
 *                                     that makes the version
 *   trust:scores              zset    merchant_id by score
 *   trust:part:{<topic>/<p>}  hash    epoch, committed, intent
 *   trust:node:{<tag>}        string  Redis Cluster only: a token written
 *                                     at first contact into the lowest slot
 *                                     of each master; gone or replaced means
 *                                     that node lost its data
 */
#ifndef TD_PROTO_H
#define TD_PROTO_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "mstate.h"
#include "signals.h"
#include "store.h"

#define TD_KEY_SCORES "trust:scores"
#define TD_KEY_MAX    (TD_MERCHANT_ID_MAX + 32)

/* Key builders: write the key into buf, return its length. */
size_t td_key_signals(char *buf, size_t size, const char *m, size_t mlen);
size_t td_key_signals_next(char *buf, size_t size, const char *m, size_t mlen);
size_t td_key_state(char *buf, size_t size, const char *m, size_t mlen);
size_t td_key_wm(char *buf, size_t size, const char *m, size_t mlen);
size_t td_key_score(char *buf, size_t size, const char *m, size_t mlen);
size_t td_key_history(char *buf, size_t size, const char *m, size_t mlen);
size_t td_key_part(char *buf, size_t size, const char *topic, int32_t part);
size_t td_key_node(char *buf, size_t size, const char *tag);

/* ---- load ---- */

/*
 * Queues a read of merchant m's exact state, watermarks and last
 * publication, ending with cb. Native: TD.LOAD. Lua form: one MULTI/EXEC of
 * plain reads on one Redis, the td_load function on a cluster (the router
 * places commands by key, and MULTI has none). With fields 1 (after
 * td_proto_load_parse() said TD_PROTO_FIELDS): the td_load function, which
 * adds the readable hash's base values.
 */
void td_proto_load(const td_store_t *st,
                   td_rbatch_t *b,
                   const char *m,
                   size_t mlen,
                   int fields,
                   td_rbatch_cb_t cb,
                   void *opaque);

/* What a load found besides the state: the watermarks (points into the
 * reply, valid during the callback). */
typedef struct td_proto_loaded_s {
    const redisReply *wm; /* (field, value) pairs */
} td_proto_loaded_t;

/*
 * Reads a load reply into e: version, values, score hash version and the
 * last publication (e->pub; model_ok when it was made by model_version).
 * TD_OK; TD_PROTO_FIELDS when the state is missing or of another catalog
 * but a readable hash exists (load again with fields); TD_ERR with errstr
 * for an error reply or a malformed one.
 */
#define TD_PROTO_FIELDS 1
int td_proto_load_parse(td_mstate_t *e,
                        const redisReply *r,
                        const char *model_version,
                        td_proto_loaded_t *out,
                        char *errstr,
                        size_t errstr_size);

/* The watermark of source src in a load's watermarks; -1 if none. */
int64_t td_proto_wm(const td_proto_loaded_t *l, const char *src);

/* Queues a read of m's watermark for source src (HGET; the reply is nil
 * or the offset). */
void td_proto_wm_get(td_rbatch_t *b,
                     const char *m,
                     size_t mlen,
                     const char *src,
                     td_rbatch_cb_t cb,
                     void *opaque);

/* Queues the deletion of m's state, watermarks and readable hash (its
 * score hash and history stay, so that versions keep rising): what a
 * rollback does to a state it created on a store that may have lost the
 * merchant's older state (worker.c). */
void td_proto_forget(td_rbatch_t *b,
                     const char *m,
                     size_t mlen,
                     td_rbatch_cb_t cb,
                     void *opaque);

/* ---- put ---- */

/* A delta of source id applied by a put: offsets lo..next-1. */
typedef struct td_proto_src_s {
    const char *id;
    int64_t lo;
    int64_t next;
} td_proto_src_t;

/* A merchant's guarded write. */
typedef struct td_proto_put_s {
    const td_mstate_t *e;         /* merged, at its new version */
    uint64_t expected;            /* the state version it was merged from */
    const td_sigstate_t *signals; /* the readable hash, written whole */
    const td_proto_src_t *srcs;   /* the deltas it applies */
    int nsrc;
    const td_mpub_t *mark; /* a delivered publication to mark, or NULL */
    /* A score to publish: the whole new score hash (npairs field/value
     * pairs, its version field the next one), written if the stored score
     * hash is still at score_version (0: none). npairs 0: no score. */
    int npairs;
    const char *const *fv;
    const size_t *fvlen;
    int64_t score_version;
    /* With a score: its history point's head (td_history_head()); the
     * server appends it with the score's new version. */
    unsigned char head[TD_HISTORY_HEAD];
} td_proto_put_t;

/* Queues the put; cb gets its last command's reply (parse it with
 * td_proto_put_parse()). */
void td_proto_put(const td_store_t *st,
                  td_rbatch_t *b,
                  const td_proto_put_t *req,
                  td_rbatch_cb_t cb,
                  void *opaque);

typedef struct td_proto_put_reply_s {
    int stale;       /* refused: another writer, or a retried flush */
    int64_t version; /* accepted with a score: its version */
} td_proto_put_reply_t;

/* TD_OK, or TD_ERR with errstr for an error or malformed reply. */
int td_proto_put_parse(const redisReply *r,
                       int with_score,
                       td_proto_put_reply_t *out,
                       char *errstr,
                       size_t errstr_size);

/* ---- partition records ---- */

/* Claims record key: its epoch becomes the stored one + 1, and at least
 * min_epoch. Reply: td_proto_claim_parse(). */
void td_proto_claim(const td_store_t *st,
                    td_rbatch_t *b,
                    const char *key,
                    int64_t min_epoch,
                    td_rbatch_cb_t cb,
                    void *opaque);

typedef struct td_proto_claimed_s {
    int64_t epoch;
    int64_t committed; /* -1 none */
    int64_t intent;    /* -1 none */
} td_proto_claimed_t;

int td_proto_claim_parse(const redisReply *r,
                         td_proto_claimed_t *out,
                         char *errstr,
                         size_t errstr_size);

/* Writes committed and intent for the owner at epoch, checked against
 * ack_committed/ack_intent, the offsets it last saw stored (-1 none). */
void td_proto_part_set(const td_store_t *st,
                       td_rbatch_t *b,
                       const char *key,
                       int64_t epoch,
                       int64_t committed,
                       int64_t intent,
                       int64_t ack_committed,
                       int64_t ack_intent,
                       td_rbatch_cb_t cb,
                       void *opaque);

/* A part_set reply: written, fenced by a newer owner, or the store went
 * back in time (the record missing, at an older epoch or behind the ack);
 * TD_ERR with errstr for anything else. For FENCED and LOST, errstr holds
 * Redis' message. */
typedef enum {
    TD_PROTO_PART_OK,
    TD_PROTO_PART_FENCED,
    TD_PROTO_PART_LOST
} td_proto_part_t;

int td_proto_part_parse(const redisReply *r,
                        td_proto_part_t *out,
                        char *errstr,
                        size_t errstr_size);

/* ---- node markers (Redis Cluster) ---- */

/* Queues a read of the marker of the node serving tag's slot (GET). */
void td_proto_node_get(td_rbatch_t *b,
                       const char *tag,
                       td_rbatch_cb_t cb,
                       void *opaque);

/* Queues writing token as that marker: only if there is none when nx. */
void td_proto_node_set(td_rbatch_t *b,
                       const char *tag,
                       const char *token,
                       int nx,
                       td_rbatch_cb_t cb,
                       void *opaque);

/* ---- scores ---- */

/* A new score no put carried (a retried flush): the next version of m's
 * score hash with npairs field/value pairs, and its history point (head
 * plus that version). Reply: the version (integer). */
void td_proto_score(const td_store_t *st,
                    td_rbatch_t *b,
                    const char *m,
                    const unsigned char head[TD_HISTORY_HEAD],
                    int npairs,
                    const char *const *fv,
                    const size_t *fvlen,
                    td_rbatch_cb_t cb,
                    void *opaque);

/* Marks pub as delivered in m's score hash (never backwards). */
void td_proto_published(const td_store_t *st,
                        td_rbatch_t *b,
                        const char *m,
                        const td_mpub_t *pub,
                        td_rbatch_cb_t cb,
                        void *opaque);

/* Bytes a score hash payload may take: the model's fields with reasons. */
#define TD_PROTO_SCORE_MAX 8192

#endif
