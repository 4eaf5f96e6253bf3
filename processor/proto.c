/*
 * proto.c - the merchant write protocol (proto.h): keys, requests in their
 * native and Lua forms, and reply parsing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "numfmt.h"
#include "pack.h"
#include "proto.h"
#include "rdump.h"

/* ---- keys ---- */

static size_t
mkey(char *buf, size_t size, const char *m, size_t mlen, const char *suffix) {
    size_t slen = strlen(suffix);
    int n;

    /* memcpy: a flush formats several keys per merchant. */
    if (sizeof("trust:{") - 1 + mlen + 2 + slen < size) {
        char *p = buf;
        memcpy(p, "trust:{", 7);
        memcpy(p += 7, m, mlen);
        memcpy(p += mlen, "}:", 2);
        memcpy(p += 2, suffix, slen + 1);
        return 7 + mlen + 2 + slen;
    }
    n = snprintf(buf, size, "trust:{%.*s}:%s", (int)mlen, m, suffix);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

size_t td_key_signals(char *buf, size_t size, const char *m, size_t mlen) {
    return mkey(buf, size, m, mlen, "signals");
}

size_t td_key_signals_next(char *buf, size_t size, const char *m, size_t mlen) {
    return mkey(buf, size, m, mlen, "signals:next");
}

size_t td_key_state(char *buf, size_t size, const char *m, size_t mlen) {
    return mkey(buf, size, m, mlen, "state");
}

size_t td_key_wm(char *buf, size_t size, const char *m, size_t mlen) {
    return mkey(buf, size, m, mlen, "wm");
}

size_t td_key_score(char *buf, size_t size, const char *m, size_t mlen) {
    return mkey(buf, size, m, mlen, "score");
}

size_t td_key_history(char *buf, size_t size, const char *m, size_t mlen) {
    return mkey(buf, size, m, mlen, "history");
}

size_t td_key_part(char *buf, size_t size, const char *topic, int32_t part) {
    int n = snprintf(buf, size, "trust:part:{%s/%d}", topic, (int)part);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

size_t td_key_node(char *buf, size_t size, const char *tag) {
    int n = snprintf(buf, size, "trust:node:{%s}", tag);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* A merchant's four keys (state, wm, signals, score), as TD.* commands
 * and the functions take them. */
static void merchant_keys(td_rbatch_t *b, const char *m, size_t mlen) {
    char key[TD_KEY_MAX];
    td_rbatch_arg(b, key, td_key_state(key, sizeof(key), m, mlen));
    td_rbatch_arg(b, key, td_key_wm(key, sizeof(key), m, mlen));
    td_rbatch_arg(b, key, td_key_signals(key, sizeof(key), m, mlen));
    td_rbatch_arg(b, key, td_key_score(key, sizeof(key), m, mlen));
}

/* Begins "TD.<NAME> <key>" or "FCALL td_<fn> <nkeys>" (the caller adds
 * the keys of a function call). */
static void
begin_call(const td_store_t *st, td_rbatch_t *b, const char *fn, int nkeys) {
    char cmd[32];

    td_rbatch_begin(b);
    if (td_store_native(st)) {
        int n = snprintf(cmd, sizeof(cmd), "TD.%s", fn);
        for (int i = 3; i < n; i++)
            cmd[i] =
                (char)(cmd[i] >= 'a' && cmd[i] <= 'z' ? cmd[i] - 32 : cmd[i]);
        td_rbatch_str(b, cmd);
        return;
    }
    td_rbatch_str(b, "FCALL");
    td_rbatch_str(b, td_store_fn(st, fn));
    td_rbatch_i64(b, nkeys);
}

/* ---- load ---- */

static const char *const meta_fields[] = {"pub_score",     "pub_tier",
                                          "pub_ms",        "version",
                                          "model_version", "pub_version"};

/* One key command of a MULTI block: its reply is +QUEUED, the value
 * comes with EXEC. */
static void load_cmd(td_rbatch_t *b,
                     const char *cmd,
                     const char *key,
                     size_t klen,
                     const char *const *rest,
                     int nrest) {
    td_rbatch_begin(b);
    td_rbatch_str(b, cmd);
    td_rbatch_arg(b, key, klen);
    for (int i = 0; i < nrest; i++)
        td_rbatch_str(b, rest[i]);
    td_rbatch_end(b, NULL, NULL);
}

void td_proto_load(const td_store_t *st,
                   td_rbatch_t *b,
                   const char *m,
                   size_t mlen,
                   int fields,
                   td_rbatch_cb_t cb,
                   void *opaque) {
    char key[TD_KEY_MAX];
    uint8_t cat[8];
    uint64_t h = td_mstate_catalog();

    for (int i = 0; i < 8; i++)
        cat[i] = (uint8_t)(h >> (8 * i));
    if (!fields && td_store_native(st)) {
        td_rbatch_begin(b);
        td_rbatch_str(b, "TD.LOAD");
        merchant_keys(b, m, mlen);
        td_rbatch_arg(b, cat, sizeof(cat));
        td_rbatch_end(b, cb, opaque);
        return;
    }
    if (!fields && !td_store_is_cluster(st)) {
        /* Plain reads in one transaction: a fraction of a function call's
         * cost. */
        td_rbatch_begin(b);
        td_rbatch_str(b, "MULTI");
        td_rbatch_end(b, NULL, NULL);
        load_cmd(b, "GET", key, td_key_state(key, sizeof(key), m, mlen), NULL,
                 0);
        load_cmd(b, "HGETALL", key, td_key_wm(key, sizeof(key), m, mlen), NULL,
                 0);
        load_cmd(b, "HMGET", key, td_key_score(key, sizeof(key), m, mlen),
                 meta_fields, 6);
        load_cmd(b, "EXISTS", key, td_key_signals(key, sizeof(key), m, mlen),
                 NULL, 0);
        td_rbatch_begin(b);
        td_rbatch_str(b, "EXEC");
        td_rbatch_end(b, cb, opaque);
        return;
    }
    td_rbatch_begin(b);
    td_rbatch_str(b, "FCALL");
    td_rbatch_str(b, td_store_fn(st, "load"));
    td_rbatch_str(b, "4");
    merchant_keys(b, m, mlen);
    td_rbatch_arg(b, cat, sizeof(cat));
    td_rbatch_end(b, cb, opaque);
}

static int str_is(const redisReply *r) {
    return r->type == REDIS_REPLY_STRING && r->len > 0;
}

/* The last publication from the load's meta fields (pub_score, pub_tier,
 * pub_ms, version, model_version, pub_version; "" or nil when unset). */
static void read_pub(td_mstate_t *e,
                     const redisReply *const *meta,
                     const char *model_version) {
    memset(&e->pub, 0, sizeof(e->pub));
    if (!str_is(meta[2])) return;
    e->pub.score = strtod(meta[0]->str, NULL);
    e->pub.tier = (int32_t)strtol(meta[1]->str, NULL, 10);
    e->pub.ms = strtoll(meta[2]->str, NULL, 10);
    e->pub.model_ok = str_is(meta[4]) && !strcmp(meta[4]->str, model_version);
    if (str_is(meta[5])) e->pub.version = strtoll(meta[5]->str, NULL, 10);
}

int td_proto_load_parse(td_mstate_t *e,
                        const redisReply *r,
                        const char *model_version,
                        td_proto_loaded_t *out,
                        char *errstr,
                        size_t errstr_size) {
    const redisReply *meta;
    int rc;

    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "loading %s: %s", e->id, r->str);
        return TD_ERR;
    }
    /* TD.LOAD and MULTI/EXEC: {state or nil, wm, meta, signals hash
     * exists}; td_load: {state or "", wm, meta[, fields]}. */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        (r->element[0]->type != REDIS_REPLY_STRING &&
         r->element[0]->type != REDIS_REPLY_NIL) ||
        r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[2]->type != REDIS_REPLY_ARRAY ||
        r->element[2]->elements != 6)
        goto bad;
    out->wm = r->element[1];
    meta = r->element[2];
    rc = td_mstate_unpack(e,
                          r->element[0]->type == REDIS_REPLY_STRING
                              ? (const uint8_t *)r->element[0]->str
                              : NULL,
                          r->element[0]->len);
    e->sversion =
        str_is(meta->element[3]) ? strtoll(meta->element[3]->str, NULL, 10) : 0;
    read_pub(e, (const redisReply *const *)meta->element, model_version);
    if (rc == TD_OK) return TD_OK;
    if (r->elements == 4 && r->element[3]->type == REDIS_REPLY_INTEGER) {
        if (r->element[3]->integer) return TD_PROTO_FIELDS;
        td_mstate_reset(e); /* a new merchant */
        return TD_OK;
    }
    if (r->elements == 4 && r->element[3]->type == REDIS_REPLY_ARRAY &&
        td_mstate_read_fields(e, r->element[3]) == TD_OK)
        return TD_OK;
bad:
    snprintf(errstr, errstr_size, "loading %s: malformed load reply", e->id);
    return TD_ERR;
}

int64_t td_proto_wm(const td_proto_loaded_t *l, const char *src) {
    const redisReply *wm = l->wm;
    size_t len = strlen(src);
    for (size_t i = 0; i + 1 < wm->elements; i += 2) {
        const redisReply *f = wm->element[i];
        if (f->type == REDIS_REPLY_STRING && (size_t)f->len == len &&
            !memcmp(f->str, src, len))
            return strtoll(wm->element[i + 1]->str, NULL, 10);
    }
    return -1;
}

void td_proto_wm_get(td_rbatch_t *b,
                     const char *m,
                     size_t mlen,
                     const char *src,
                     td_rbatch_cb_t cb,
                     void *opaque) {
    char key[TD_KEY_MAX];

    td_rbatch_begin(b);
    td_rbatch_str(b, "HGET");
    td_rbatch_arg(b, key, td_key_wm(key, sizeof(key), m, mlen));
    td_rbatch_str(b, src);
    td_rbatch_end(b, cb, opaque);
}

void td_proto_forget(td_rbatch_t *b,
                     const char *m,
                     size_t mlen,
                     td_rbatch_cb_t cb,
                     void *opaque) {
    char key[TD_KEY_MAX];

    td_rbatch_begin(b);
    td_rbatch_str(b, "DEL");
    td_rbatch_arg(b, key, td_key_state(key, sizeof(key), m, mlen));
    td_rbatch_arg(b, key, td_key_wm(key, sizeof(key), m, mlen));
    td_rbatch_arg(b, key, td_key_signals(key, sizeof(key), m, mlen));
    td_rbatch_end(b, cb, opaque);
}

/* ---- put ---- */

/* The readable signals hash as a DUMP payload (rdump.h): `as_of_ms` and
 * every present signal with 10 significant digits. */
static const uint8_t *signals_payload(const td_sigstate_t *s,
                                      uint8_t *buf,
                                      size_t size,
                                      size_t *len) {
    char num[TD_FMT_G10_MAX];
    td_rdump_t d;
    const uint8_t *p;
    size_t n;

    td_rdump_begin(&d, buf, size);
    n = td_fmt_i64(num, s->as_of);
    td_rdump_add(&d, "as_of_ms", 8, num, n);
    for (int i = 0; i < TD_SIG__CNT; i++) {
        if (!s->present[i]) continue;
        n = td_fmt_g10(num, s->v[i]);
        td_rdump_add(&d, td_signals[i].name, td_signals[i].name_len, num, n);
    }
    p = td_rdump_end(&d, len);
    if (!p) {
        /* The catalog's names and %.10g values always fit. */
        td_log(TD_LOG_WARNING, "signals hash does not fit a DUMP payload");
        abort();
    }
    return p;
}

static const uint8_t *score_payload(const td_proto_put_t *req,
                                    uint8_t *buf,
                                    size_t size,
                                    size_t *len) {
    td_rdump_t d;
    const uint8_t *p;

    td_rdump_begin_long(&d, buf, size);
    for (int i = 0; i < req->npairs; i++)
        td_rdump_add(&d, req->fv[2 * i], req->fvlen[2 * i], req->fv[2 * i + 1],
                     req->fvlen[2 * i + 1]);
    p = td_rdump_end(&d, len);
    if (!p) {
        /* The model's fields and reasons always fit. */
        td_log(TD_LOG_WARNING, "score hash does not fit a DUMP payload");
        abort();
    }
    return p;
}

static int restore_cb(void *opaque,
                      const redisReply *r,
                      char *errstr,
                      size_t errstr_size) {
    (void)opaque;
    if (r->type != REDIS_REPLY_ERROR) return TD_OK;
    snprintf(errstr, errstr_size, "RESTORE of a merchant's next hash: %s",
             r->str);
    return TD_ERR;
}

/* Lua form: RESTOREs the signals payload as signals:next, without an
 * expiry: td_put renames it into place or, refusing, deletes it; no
 * PERSIST per put. */
static void queue_restore(td_rbatch_t *b,
                          const char *key,
                          size_t klen,
                          const uint8_t *p,
                          size_t len) {
    td_rbatch_begin(b);
    td_rbatch_str(b, "RESTORE");
    td_rbatch_arg(b, key, klen);
    td_rbatch_str(b, "0");
    td_rbatch_arg(b, p, len);
    td_rbatch_str(b, "REPLACE");
    td_rbatch_end(b, restore_cb, NULL);
}

static void pub_args(td_rbatch_t *b, const td_mpub_t *pub) {
    td_rbatch_i64(b, pub->version);
    td_rbatch_dbl(b, pub->score);
    td_rbatch_i64(b, pub->tier);
    td_rbatch_i64(b, pub->ms);
}

static void score_version_arg(td_rbatch_t *b, int64_t version) {
    if (version > 0)
        td_rbatch_i64(b, version);
    else
        td_rbatch_str(b, "");
}

static void pack_i64(td_pack_t *pk, int64_t v) {
    char num[TD_FMT_I64_MAX];
    td_pack_add(pk, num, td_fmt_i64(num, v));
}

/* TD.PUT's <meta> (module/args.h): the expected version, the sources, the
 * mark or "", and with a score its expected version and history head. */
static void put_meta(td_rbatch_t *b, const td_proto_put_t *req) {
    /* Each element at its longest, with its length (4 bytes at most). */
    size_t size = 4 * (8 + 4) + 4 * (TD_FMT_G17_MAX + 4) +
                  2 * (TD_FMT_I64_MAX + 4) + TD_HISTORY_HEAD;
    uint8_t stack[1024], *buf;
    uint8_t ver[8];
    char num[TD_FMT_G17_MAX];
    td_pack_t pk;

    for (int i = 0; i < req->nsrc; i++)
        size += 4 + strlen(req->srcs[i].id) + 2 * (TD_FMT_I64_MAX + 4);
    buf = size <= sizeof(stack) ? stack : td_xcalloc(1, size);
    td_pack_init(&pk, buf, size);
    td_pack_add(&pk, ver, td_mstate_version_bytes(req->expected, ver));
    pack_i64(&pk, req->nsrc);
    for (int i = 0; i < req->nsrc; i++) {
        td_pack_str(&pk, req->srcs[i].id);
        pack_i64(&pk, req->srcs[i].lo);
        pack_i64(&pk, req->srcs[i].next);
    }
    if (req->mark) {
        pack_i64(&pk, req->mark->version);
        td_pack_add(&pk, num, td_fmt_g17(num, req->mark->score));
        pack_i64(&pk, req->mark->tier);
        pack_i64(&pk, req->mark->ms);
    } else {
        td_pack_add(&pk, "", 0);
    }
    if (req->npairs > 0) {
        if (req->score_version > 0)
            pack_i64(&pk, req->score_version);
        else
            td_pack_add(&pk, "", 0);
        td_pack_add(&pk, req->head, TD_HISTORY_HEAD);
    }
    if (pk.overflow) {
        td_log(TD_LOG_WARNING, "TD.PUT meta over %zu bytes", size);
        abort();
    }
    td_rbatch_arg(b, buf, pk.len);
    if (buf != stack) free(buf);
}

/*
 * Lua form (store_lib.lua's td_put): the signals payload RESTOREd as
 * signals:next before the call; KEYS state, wm, signals, signals:next, then
 * the score hash with a mark or a score and the history with a score; ARGV
 * expected version, state, the mark if any, the score (version, payload,
 * head) if any and the sources last. Every element costs the function a
 * hashed Lua string, so only those it uses are sent and no counts: td_put
 * tells the parts apart by the number of keys and arguments.
 */
static void put_lua(const td_store_t *st,
                    td_rbatch_t *b,
                    const td_proto_put_t *req,
                    const uint8_t *sp,
                    size_t slen,
                    const uint8_t *cp,
                    size_t clen,
                    td_rbatch_cb_t cb,
                    void *opaque) {
    const td_mstate_t *e = req->e;
    int nkeys = cp ? 6 : req->mark ? 5 : 4;
    char key[TD_KEY_MAX];
    uint8_t blob[TD_MSTATE_BLOB];

    queue_restore(b, key,
                  td_key_signals_next(key, sizeof(key), e->id, e->idlen), sp,
                  slen);
    begin_call(st, b, "put", nkeys);
    td_rbatch_arg(b, key, td_key_state(key, sizeof(key), e->id, e->idlen));
    td_rbatch_arg(b, key, td_key_wm(key, sizeof(key), e->id, e->idlen));
    td_rbatch_arg(b, key, td_key_signals(key, sizeof(key), e->id, e->idlen));
    td_rbatch_arg(b, key,
                  td_key_signals_next(key, sizeof(key), e->id, e->idlen));
    if (nkeys > 4)
        td_rbatch_arg(b, key, td_key_score(key, sizeof(key), e->id, e->idlen));
    if (nkeys > 5)
        td_rbatch_arg(b, key,
                      td_key_history(key, sizeof(key), e->id, e->idlen));
    td_rbatch_arg(b, blob, td_mstate_version_bytes(req->expected, blob));
    td_mstate_pack(e, blob);
    td_rbatch_arg(b, blob, sizeof(blob));
    if (req->mark) pub_args(b, req->mark);
    if (cp) {
        score_version_arg(b, req->score_version);
        td_rbatch_arg(b, cp, clen);
        td_rbatch_arg(b, req->head, TD_HISTORY_HEAD);
    }
    for (int i = 0; i < req->nsrc; i++) {
        td_rbatch_str(b, req->srcs[i].id);
        td_rbatch_i64(b, req->srcs[i].lo);
        td_rbatch_i64(b, req->srcs[i].next);
    }
    td_rbatch_end(b, cb, opaque);
}

void td_proto_put(const td_store_t *st,
                  td_rbatch_t *b,
                  const td_proto_put_t *req,
                  td_rbatch_cb_t cb,
                  void *opaque) {
    const td_mstate_t *e = req->e;
    char key[TD_KEY_MAX];
    /* Every field at its longest, plus the payload's framing. */
    uint8_t sbuf[(TD_SIG__CNT + 1) * 2 * (TD_RDUMP_STR_MAX + 4) +
                 TD_RDUMP_OVERHEAD + 8];
    uint8_t cbuf[TD_PROTO_SCORE_MAX];
    uint8_t blob[TD_MSTATE_BLOB];
    const uint8_t *sp, *cp = NULL;
    size_t slen, clen = 0;

    sp = signals_payload(req->signals, sbuf, sizeof(sbuf), &slen);
    if (req->npairs > 0) cp = score_payload(req, cbuf, sizeof(cbuf), &clen);
    if (!td_store_native(st)) {
        put_lua(st, b, req, sp, slen, cp, clen, cb, opaque);
        return;
    }
    /* module/args.h: the payload, the merchant's four keys and its
     * history, the blob, <meta>, the score payload. */
    begin_call(st, b, "put", 5);
    td_rbatch_arg(b, sp, slen);
    merchant_keys(b, e->id, e->idlen);
    td_rbatch_arg(b, key, td_key_history(key, sizeof(key), e->id, e->idlen));
    td_mstate_pack(e, blob);
    td_rbatch_arg(b, blob, sizeof(blob));
    put_meta(b, req);
    if (cp) td_rbatch_arg(b, cp, clen);
    td_rbatch_end(b, cb, opaque);
}

int td_proto_put_parse(const redisReply *r,
                       int with_score,
                       td_proto_put_reply_t *out,
                       char *errstr,
                       size_t errstr_size) {
    out->stale = 0;
    out->version = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "%s", r->str);
        return TD_ERR;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        goto bad;
    if (!strcmp(r->element[0]->str, "STALE")) {
        out->stale = 1;
        return TD_OK;
    }
    if (strcmp(r->element[0]->str, "OK") ||
        r->elements != (with_score ? 2u : 1u))
        goto bad;
    if (with_score) {
        if (r->element[1]->type != REDIS_REPLY_INTEGER) goto bad;
        out->version = r->element[1]->integer;
    }
    return TD_OK;
bad:
    snprintf(errstr, errstr_size, "bad put reply");
    return TD_ERR;
}

/* ---- partition records ---- */

void td_proto_node_get(td_rbatch_t *b,
                       const char *tag,
                       td_rbatch_cb_t cb,
                       void *opaque) {
    char key[TD_KEY_MAX];

    td_rbatch_begin(b);
    td_rbatch_str(b, "GET");
    td_rbatch_arg(b, key, td_key_node(key, sizeof(key), tag));
    td_rbatch_end(b, cb, opaque);
}

void td_proto_node_set(td_rbatch_t *b,
                       const char *tag,
                       const char *token,
                       int nx,
                       td_rbatch_cb_t cb,
                       void *opaque) {
    char key[TD_KEY_MAX];

    td_rbatch_begin(b);
    td_rbatch_str(b, "SET");
    td_rbatch_arg(b, key, td_key_node(key, sizeof(key), tag));
    td_rbatch_str(b, token);
    if (nx) td_rbatch_str(b, "NX");
    td_rbatch_end(b, cb, opaque);
}

void td_proto_claim(const td_store_t *st,
                    td_rbatch_t *b,
                    const char *key,
                    int64_t min_epoch,
                    td_rbatch_cb_t cb,
                    void *opaque) {
    int native = td_store_native(st);

    begin_call(st, b, "part", 1);
    td_rbatch_str(b, key);
    td_rbatch_str(b, native ? "CLAIM" : "claim");
    td_rbatch_i64(b, min_epoch);
    td_rbatch_end(b, cb, opaque);
}

/* An offset of a record reply: "" is none (-1). */
static int64_t offset_of(const redisReply *r) {
    return str_is(r) ? strtoll(r->str, NULL, 10) : -1;
}

int td_proto_claim_parse(const redisReply *r,
                         td_proto_claimed_t *out,
                         char *errstr,
                         size_t errstr_size) {
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "%s", r->str);
        return TD_ERR;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        !str_is(r->element[0])) {
        snprintf(errstr, errstr_size, "bad claim reply");
        return TD_ERR;
    }
    out->epoch = strtoll(r->element[0]->str, NULL, 10);
    out->committed = offset_of(r->element[1]);
    out->intent = offset_of(r->element[2]);
    return TD_OK;
}

void td_proto_part_set(const td_store_t *st,
                       td_rbatch_t *b,
                       const char *key,
                       int64_t epoch,
                       int64_t committed,
                       int64_t intent,
                       int64_t ack_committed,
                       int64_t ack_intent,
                       td_rbatch_cb_t cb,
                       void *opaque) {
    begin_call(st, b, "part", 1);
    td_rbatch_str(b, key);
    td_rbatch_str(b, td_store_native(st) ? "SET" : "set");
    td_rbatch_i64(b, epoch);
    td_rbatch_i64(b, committed);
    td_rbatch_i64(b, intent);
    td_rbatch_i64(b, ack_committed);
    td_rbatch_i64(b, ack_intent);
    td_rbatch_end(b, cb, opaque);
}

int td_proto_part_parse(const redisReply *r,
                        td_proto_part_t *out,
                        char *errstr,
                        size_t errstr_size) {
    *out = TD_PROTO_PART_OK;
    if (r->type != REDIS_REPLY_ERROR) return TD_OK;
    snprintf(errstr, errstr_size, "%s", r->str);
    if (!strncmp(r->str, "TDFENCED", 8)) {
        *out = TD_PROTO_PART_FENCED;
        return TD_OK;
    }
    if (!strncmp(r->str, "TDLOST", 6)) {
        *out = TD_PROTO_PART_LOST;
        return TD_OK;
    }
    return TD_ERR;
}

/* ---- scores ---- */

void td_proto_score(const td_store_t *st,
                    td_rbatch_t *b,
                    const char *m,
                    const unsigned char head[TD_HISTORY_HEAD],
                    int npairs,
                    const char *const *fv,
                    const size_t *fvlen,
                    td_rbatch_cb_t cb,
                    void *opaque) {
    char key[TD_KEY_MAX];
    size_t mlen = strlen(m);

    begin_call(st, b, "score", 2);
    td_rbatch_arg(b, key, td_key_score(key, sizeof(key), m, mlen));
    td_rbatch_arg(b, key, td_key_history(key, sizeof(key), m, mlen));
    td_rbatch_arg(b, head, TD_HISTORY_HEAD);
    for (int i = 0; i < 2 * npairs; i++)
        td_rbatch_arg(b, fv[i], fvlen[i]);
    td_rbatch_end(b, cb, opaque);
}

void td_proto_published(const td_store_t *st,
                        td_rbatch_t *b,
                        const char *m,
                        const td_mpub_t *pub,
                        td_rbatch_cb_t cb,
                        void *opaque) {
    char key[TD_KEY_MAX];

    begin_call(st, b, "published", 1);
    td_rbatch_arg(b, key, td_key_score(key, sizeof(key), m, strlen(m)));
    pub_args(b, pub);
    td_rbatch_end(b, cb, opaque);
}
