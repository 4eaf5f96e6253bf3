/*
 * module.c - trustd's Redis module: the merchant load, the guarded merchant
 * write and the partition records as native commands, with the guards and
 * effects of the Lua library in store.c (module "trustd"; the contract is
 * deploy/RUNBOOK.md's "The Redis module").
 *
 *   TD.LOAD <state> <wm> <signals> <score> <fingerprint>
 *   TD.PUT <signals-payload> <state> <wm> <signals> <score> <history>
 *          <state-blob> <meta> [<score-payload>]   (meta: args.h)
 *   TD.PART <record> CLAIM [<min-epoch>]
 *   TD.PART <record> SET <epoch> <committed> <intent>
 *                        [<ack-committed> <ack-intent>]
 *   TD.SCORE <score> <history> <history-head> <field> <value> ...
 *   TD.PUBLISHED <score> <version> <score> <tier> <ms>
 *
 * Keys stay plain strings and hashes, byte for byte what the Lua path
 * leaves (tests/test_module.c compares DUMPs): strings and hash fields are
 * written with the key API, which goes through the same hashTypeSet() as
 * HSET; the two payloads are RESTOREd through RedisModule_Call, the only
 * command called. Every argument, every guard and the score payload's
 * footer are checked before the first write, which is the RESTORE of the
 * signals payload (RESTORE checks its footer before writing), so a refused
 * or bad command writes nothing. A command that wrote replicates itself,
 * verbatim: one compact command per write in the AOF and to replicas,
 * which run it again. That holds for the score history too (history.h):
 * the point's time comes with the command, its version from the score
 * hash the replica holds, so a replica appends the same 16 bytes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "history.h"
#include "pack.h"
#include "rdump.h"
#include "rmapi.h"

#define EXPORT __attribute__((visibility("default")))

/* The API, resolved by name at load (TD_RM_API in rmapi.h). */
#define TD_RM_FIELD(ret, name, params) ret(*name) params;
static struct { TD_RM_API(TD_RM_FIELD) } rm;

#define TD_RM_NAME(ret, name, params) {"RedisModule_" #name, (void **)&rm.name},
static const struct {
    const char *name;
    void **fn;
} rm_names[] = {TD_RM_API(TD_RM_NAME){NULL, NULL}};

/* Field names, created once at load. */
enum {
    F_VERSION,
    F_PUB_VERSION,
    F_PUB_SCORE,
    F_PUB_TIER,
    F_PUB_MS,
    F_MODEL_VERSION,
    F_EPOCH,
    F_COMMITTED,
    F_INTENT,
    F__CNT
};
static const char *const field_names[F__CNT] = {
    "version",       "pub_version", "pub_score", "pub_tier", "pub_ms",
    "model_version", "epoch",       "committed", "intent"};
static RedisModuleString *fields[F__CNT];

/* The fields of TD.LOAD's score read, in the order of store.c's HMGET. */
static const int load_meta[] = {F_PUB_SCORE, F_PUB_TIER,      F_PUB_MS,
                                F_VERSION,   F_MODEL_VERSION, F_PUB_VERSION};

/* argv as td_marg_t: on the stack up to this many arguments. */
#define ARGS_STACK 64

typedef struct margs_s {
    td_marg_t stack[ARGS_STACK];
    td_marg_t *v;
} margs_t;

static const td_marg_t *
margs_init(margs_t *m, RedisModuleString **argv, int argc) {
    m->v = argc <= ARGS_STACK ? m->stack : rm.Alloc(sizeof(*m->v) * argc);
    for (int i = 0; i < argc; i++)
        m->v[i].p = rm.StringPtrLen(argv[i], &m->v[i].len);
    return m->v;
}

static void margs_term(margs_t *m) {
    if (m->v != m->stack) rm.Free(m->v);
}

static int reply_errf(RedisModuleCtx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int reply_errf(RedisModuleCtx *ctx, const char *fmt, ...) {
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return rm.ReplyWithError(ctx, buf);
}

/* Opens name for writing; NULL (and *wrong set) when it holds another type
 * than want. */
static RedisModuleKey *
open_w(RedisModuleCtx *ctx, RedisModuleString *name, int want, int *wrong) {
    RedisModuleKey *k =
        rm.OpenKey(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE);
    int t = rm.KeyType(k);

    if (t != REDISMODULE_KEYTYPE_EMPTY && t != want) {
        rm.CloseKey(k);
        *wrong = 1;
        return NULL;
    }
    return k;
}

/* HGET of an integer field: 1 present (in *v), 0 absent, -1 not an
 * integer. */
static int hget_i64(RedisModuleKey *k, int f, int64_t *v) {
    RedisModuleString *s = NULL;
    const char *p;
    size_t len;
    int rc;

    rm.HashGet(k, REDISMODULE_HASH_NONE, fields[f], &s, NULL);
    if (!s) return 0;
    p = rm.StringPtrLen(s, &len);
    rc = td_marg_i64(p, len, v) == 0 ? 1 : -1;
    rm.FreeString(NULL, s);
    return rc;
}

/*
 * HSET name f1 v1 f2 v2 ...: what HSET leaves, byte for byte. HSET turns
 * a listpack hash into a hashtable before its first pair when any argument
 * exceeds hash-max-listpack-value; RedisModule_HashSet() checks pair by
 * pair. With every argument within the default 64 bytes (all trustd
 * writes) the two are the same and the key API is used; otherwise HSET
 * itself. *kp is name opened for writing and may be closed here (NULL).
 */
static int hset(RedisModuleCtx *ctx,
                RedisModuleKey **kp,
                RedisModuleString *name,
                RedisModuleString **fv,
                int npairs) {
    size_t len;
    int longarg = 0;

    for (int i = 0; i < 2 * npairs; i++) {
        rm.StringPtrLen(fv[i], &len);
        if (len > TD_RDUMP_STR_MAX) longarg = 1;
    }
    if (!longarg) {
        for (int i = 0; i < npairs; i++)
            rm.HashSet(*kp, REDISMODULE_HASH_NONE, fv[2 * i], fv[2 * i + 1],
                       NULL);
        return 0;
    }
    rm.CloseKey(*kp);
    *kp = NULL;
    RedisModuleCallReply *r =
        rm.Call(ctx, "HSET", "sv", name, fv, (size_t)(2 * npairs));
    int rc = r && rm.CallReplyType(r) != REDISMODULE_REPLY_ERROR ? 0 : -1;
    if (r) rm.FreeCallReply(r);
    return rc;
}

/* RESTORE name 0 payload REPLACE: 0, or -1 with Redis' error in errstr. */
static int restore(RedisModuleCtx *ctx,
                   RedisModuleString *name,
                   RedisModuleString *payload,
                   char *errstr,
                   size_t errstr_size) {
    RedisModuleCallReply *r =
        rm.Call(ctx, "RESTORE", "scsc", name, "0", payload, "REPLACE");
    int rc = 0;

    if (!r || rm.CallReplyType(r) == REDISMODULE_REPLY_ERROR) {
        size_t len = 0;
        const char *e = r ? rm.CallReplyStringPtr(r, &len) : "no reply";
        if (!r) len = strlen(e);
        snprintf(errstr, errstr_size, "ERR RESTORE: %.*s", (int)len, e);
        rc = -1;
    }
    if (r) rm.FreeCallReply(r);
    return rc;
}

/* Appends a point (head + version) to the history key k, opened for
 * writing and empty or a string, and trims it (td_history_append()). */
static void
history_append(RedisModuleKey *k, const td_marg_t *head, int64_t version) {
    unsigned char out[TD_HISTORY_BYTES];
    const char *old = NULL;
    size_t oldlen = 0, len;
    RedisModuleString *v;

    if (rm.KeyType(k) == REDISMODULE_KEYTYPE_STRING)
        old = rm.StringDMA(k, &oldlen, REDISMODULE_READ);
    /* head: TD_HISTORY_HEAD bytes (args.c) */
    len = td_history_append(out, (const unsigned char *)old, oldlen,
                            (const unsigned char *)head->p, (uint64_t)version);
    v = rm.CreateString(NULL, (const char *)out, len);
    rm.StringSet(k, v);
    rm.FreeString(NULL, v);
}

/* ---- TD.LOAD ---- */

/* The 4 replies of store.c's MULTI GET, HGETALL, HMGET, EXISTS, EXEC (a
 * key of another type is that element's WRONGTYPE error, as in EXEC). */
static int load_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    RedisModuleKey *k;
    size_t len;

    if (argc != 6) return rm.WrongArity(ctx);
    rm.ReplyWithArray(ctx, 4);

    k = rm.OpenKey(ctx, argv[1], REDISMODULE_READ);
    if (!k) {
        rm.ReplyWithNull(ctx);
    } else if (rm.KeyType(k) != REDISMODULE_KEYTYPE_STRING) {
        rm.ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    } else {
        const char *p = rm.StringDMA(k, &len, REDISMODULE_READ);
        rm.ReplyWithStringBuffer(ctx, p, len);
    }
    rm.CloseKey(k);

    /* HGETALL itself: a hash turned hashtable is read in its dict order,
     * which no key API call gives. No watermarks yet (a new merchant):
     * HGETALL's empty reply, without the call. */
    k = rm.OpenKey(ctx, argv[2], REDISMODULE_READ);
    int none = k == NULL;
    rm.CloseKey(k);
    RedisModuleCallReply *r =
        none ? NULL : rm.Call(ctx, "HGETALL", "s0", argv[2]);
    if (none) {
        rm.ReplyWithArray(ctx, 0);
    } else if (r) {
        rm.ReplyWithCallReply(ctx, r);
        rm.FreeCallReply(r);
    } else {
        rm.ReplyWithError(ctx, "ERR HGETALL of the watermarks failed");
    }

    k = rm.OpenKey(ctx, argv[4], REDISMODULE_READ);
    if (k && rm.KeyType(k) != REDISMODULE_KEYTYPE_HASH) {
        rm.ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    } else {
        int n = (int)(sizeof(load_meta) / sizeof(load_meta[0]));
        rm.ReplyWithArray(ctx, n);
        for (int i = 0; i < n; i++) {
            RedisModuleString *v = NULL;
            if (k)
                rm.HashGet(k, REDISMODULE_HASH_NONE, fields[load_meta[i]], &v,
                           NULL);
            if (v) {
                rm.ReplyWithString(ctx, v);
                rm.FreeString(NULL, v);
            } else {
                rm.ReplyWithNull(ctx);
            }
        }
    }
    rm.CloseKey(k);

    k = rm.OpenKey(ctx, argv[3], REDISMODULE_READ);
    rm.ReplyWithLongLong(ctx, k ? 1 : 0);
    rm.CloseKey(k);
    return REDISMODULE_OK;
}

/* ---- the publication mark ---- */

/* The mark rule of store.c's mark(): version v is newer than the hash's
 * pub_version (absent: 0). 1 newer, 0 not, -1 pub_version is not an
 * integer. */
static int mark_due(RedisModuleKey *score, int64_t v) {
    int64_t pv = 0;
    int rc = hget_i64(score, F_PUB_VERSION, &pv);

    if (rc < 0) return -1;
    return v > pv;
}

/* HSET score pub_version v pub_score s pub_tier t pub_ms ms; mark points
 * at the four arguments. args.c keeps each under 64 bytes, so one
 * RedisModule_HashSet() leaves what HSET would (see hset()). */
static void mark_write(RedisModuleKey *score, RedisModuleString **mark) {
    rm.HashSet(score, REDISMODULE_HASH_NONE, fields[F_PUB_VERSION], mark[0],
               fields[F_PUB_SCORE], mark[1], fields[F_PUB_TIER], mark[2],
               fields[F_PUB_MS], mark[3], NULL);
}

/* ---- TD.PUT ---- */

static int reply_stale(RedisModuleCtx *ctx) {
    rm.ReplyWithArray(ctx, 1);
    return rm.ReplyWithStringBuffer(ctx, "STALE", 5);
}

/* The flat vector on the stack up to this many elements (8 sources). */
#define PUT_VSTACK 41

typedef struct put_s {
    RedisModuleKey *state, *wm, *score, *history;
    td_marg_t *v; /* the flat vector (args.h) */
    int *from;    /* its wire indexes, -1: from <meta> */
    /* v as strings: the wire argument, or made from <meta> when first
     * needed (vstr) */
    RedisModuleString **vs;
    int vargc, vcap;
    td_marg_t vstack[PUT_VSTACK];
    int fromstack[PUT_VSTACK];
    RedisModuleString *vsstack[PUT_VSTACK];
    RedisModuleString **wmfv; /* source, next pairs */
    RedisModuleString *wmstack[32];
} put_t;

/* Room for the flat vector of a wire argv whose <meta> holds n elements. */
static void put_alloc(put_t *w, int n) {
    w->state = w->wm = w->score = w->history = NULL;
    w->wmfv = NULL;
    w->vargc = 0;
    w->vcap = 9 + n;
    if (w->vcap <= PUT_VSTACK) {
        w->v = w->vstack;
        w->from = w->fromstack;
        w->vs = w->vsstack;
        return;
    }
    w->v = rm.Alloc(sizeof(*w->v) * (size_t)w->vcap);
    w->from = rm.Alloc(sizeof(*w->from) * (size_t)w->vcap);
    w->vs = rm.Alloc(sizeof(*w->vs) * (size_t)w->vcap);
}

static void put_init(put_t *w, RedisModuleString **argv) {
    for (int i = 0; i < w->vargc; i++)
        w->vs[i] = w->from[i] >= 0 ? argv[w->from[i]] : NULL;
}

static RedisModuleString *vstr(put_t *w, int i) {
    if (!w->vs[i]) w->vs[i] = rm.CreateString(NULL, w->v[i].p, w->v[i].len);
    return w->vs[i];
}

static void put_term(put_t *w) {
    rm.CloseKey(w->state);
    rm.CloseKey(w->wm);
    rm.CloseKey(w->score);
    rm.CloseKey(w->history);
    if (w->wmfv && w->wmfv != w->wmstack) rm.Free(w->wmfv);
    for (int i = 0; i < w->vargc; i++)
        if (w->from[i] < 0 && w->vs[i]) rm.FreeString(NULL, w->vs[i]);
    if (w->v != w->vstack) {
        rm.Free(w->v);
        rm.Free(w->from);
        rm.Free(w->vs);
    }
}

/* Every guard of td_put, before any write: 1 pass, 0 refused (STALE), -1
 * error (errstr). *mark_now: a mark to write that does not depend on the
 * put's own score hash. */
static int put_guards(RedisModuleCtx *ctx,
                      const td_put_args_t *a,
                      put_t *w,
                      int *mark_now,
                      char *errstr,
                      size_t errstr_size) {
    const td_marg_t *av = w->v;
    int wrong = 0;
    size_t slen = 0;
    const char *sp;

    w->state = open_w(ctx, w->vs[1], REDISMODULE_KEYTYPE_STRING, &wrong);
    if (!w->state) goto wrongtype;
    sp = rm.StringDMA(w->state, &slen, REDISMODULE_READ);
    if (slen > TD_PUT_VERSION_LEN) slen = TD_PUT_VERSION_LEN;
    if (slen != av[TD_PUT_EXPECT].len ||
        memcmp(sp, av[TD_PUT_EXPECT].p, slen) != 0)
        return 0;

    /* The watermarks, only when the put has sources (as td_put). */
    if (a->nsrc > 0) {
        w->wm = open_w(ctx, w->vs[2], REDISMODULE_KEYTYPE_HASH, &wrong);
        if (!w->wm) goto wrongtype;
    }
    for (int i = 0; i < a->nsrc; i++) {
        int p = a->src + 3 * i;
        RedisModuleString *s = NULL;
        int64_t at, first;
        size_t len;
        const char *vp;

        rm.HashGet(w->wm, REDISMODULE_HASH_NONE, vstr(w, p), &s, NULL);
        if (!s) continue;
        vp = rm.StringPtrLen(s, &len);
        int ok = td_marg_i64(vp, len, &at) == 0;
        rm.FreeString(NULL, s);
        if (!ok) {
            snprintf(errstr, errstr_size,
                     "ERR watermark of %.*s is not an integer", (int)av[p].len,
                     av[p].p);
            return -1;
        }
        td_marg_i64(av[p + 1].p, av[p + 1].len, &first);
        if (at > first) return 0;
    }

    if (a->score < 0 && a->mark < 0) return 1;
    w->score = open_w(ctx, w->vs[4], REDISMODULE_KEYTYPE_HASH, &wrong);
    if (!w->score) goto wrongtype;
    if (a->score >= 0) {
        RedisModuleString *s = NULL;
        size_t len = 0;
        const char *vp = "";
        rm.HashGet(w->score, REDISMODULE_HASH_NONE, fields[F_VERSION], &s,
                   NULL);
        if (s) vp = rm.StringPtrLen(s, &len);
        int same = len == av[a->score_ver].len &&
                   memcmp(vp, av[a->score_ver].p, len) == 0;
        if (s) rm.FreeString(NULL, s);
        if (!same) return 0;
        w->history = open_w(ctx, w->vs[TD_PUT_HISTORY],
                            REDISMODULE_KEYTYPE_STRING, &wrong);
        if (!w->history) goto wrongtype;
        return 1;
    }
    /* A mark on the stored score hash, decided now. */
    int due = mark_due(w->score, a->mark_version);
    if (due < 0) {
        snprintf(errstr, errstr_size, "ERR pub_version is not an integer");
        return -1;
    }
    *mark_now = due;
    return 1;
wrongtype:
    snprintf(errstr, errstr_size, "%s", REDISMODULE_ERRORMSG_WRONGTYPE);
    return -1;
}

static int put_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    char errstr[512];
    margs_t m;
    const td_marg_t *av = margs_init(&m, argv, argc);
    td_put_args_t a;
    put_t w;
    int mark_now = 0, rc;
    int wrote = 0;

    /* The score payload's footer is checked here, the signals payload's
     * by its own RESTORE: the first write, so a bad one still leaves
     * nothing written, at one CRC pass over its 3 KB instead of two. */
    rc = argc > TD_PUT_WIRE_META
             ? td_pack_count(av[TD_PUT_WIRE_META].p, av[TD_PUT_WIRE_META].len)
             : 0;
    put_alloc(&w, rc < 0 ? 0 : rc);
    if (rc < 0) {
        snprintf(errstr, sizeof(errstr),
                 "ERR meta is not a packed vector (argument %d)",
                 TD_PUT_WIRE_META);
    } else {
        rc = td_put_args_unpack(av, argc, w.v, w.from, w.vcap, &w.vargc, errstr,
                                sizeof(errstr));
    }
    margs_term(&m);
    if (rc == 0) {
        put_init(&w, argv);
        rc = td_put_args_parse(w.v, w.vargc, &a, errstr, sizeof(errstr));
    }
    if (rc == 0 && a.score >= 0)
        rc = td_payload_check("score", w.v[a.score].p, w.v[a.score].len, errstr,
                              sizeof(errstr));
    if (rc != 0) {
        put_term(&w);
        return rm.ReplyWithError(ctx, errstr);
    }
    rc = put_guards(ctx, &a, &w, &mark_now, errstr, sizeof(errstr));
    if (rc <= 0) goto done;

    /* The first write: a payload RESTORE refuses leaves nothing written. */
    if (restore(ctx, w.vs[3], w.vs[a.signals], errstr, sizeof(errstr)) != 0) {
        rc = -1;
        goto done;
    }
    wrote = 1;
    if (a.score >= 0) {
        /* RESTORE replaces the hash the open handle points to. */
        rm.CloseKey(w.score);
        w.score = NULL;
        if (restore(ctx, w.vs[4], w.vs[a.score], errstr, sizeof(errstr)) != 0) {
            rc = -1;
            goto done;
        }
        /* The score's history point, with the version the hash now has. */
        history_append(w.history, &w.v[a.head], a.sv + 1);
    }
    rm.StringSet(w.state, w.vs[TD_PUT_STATE]);
    if (a.nsrc > 0) {
        w.wmfv = 2 * a.nsrc <= 32 ? w.wmstack
                                  : rm.Alloc(sizeof(*w.wmfv) * 2 * a.nsrc);
        for (int i = 0; i < a.nsrc; i++) {
            w.wmfv[2 * i] = vstr(&w, a.src + 3 * i);
            w.wmfv[2 * i + 1] = vstr(&w, a.src + 3 * i + 2);
        }
        if (hset(ctx, &w.wm, w.vs[2], w.wmfv, a.nsrc) != 0) {
            snprintf(errstr, sizeof(errstr), "ERR HSET of the watermarks");
            rc = -1;
            goto done;
        }
    }
    if (a.mark >= 0 && a.score >= 0) {
        /* The mark applies to the score hash just restored. */
        int wrong = 0;
        w.score = open_w(ctx, w.vs[4], REDISMODULE_KEYTYPE_HASH, &wrong);
        mark_now = w.score ? mark_due(w.score, a.mark_version) : -1;
        if (mark_now < 0) {
            snprintf(errstr, sizeof(errstr),
                     "ERR the score payload's pub_version is not an integer");
            rc = -1;
            goto done;
        }
    }
    if (mark_now) {
        RedisModuleString *mk[4];
        for (int i = 0; i < 4; i++)
            mk[i] = vstr(&w, a.mark + i);
        mark_write(w.score, mk);
    }
done:
    put_term(&w);
    if (wrote) rm.ReplicateVerbatim(ctx);
    if (rc < 0) return rm.ReplyWithError(ctx, errstr);
    if (rc == 0) return reply_stale(ctx);
    if (a.score < 0) {
        rm.ReplyWithArray(ctx, 1);
        return rm.ReplyWithStringBuffer(ctx, "OK", 2);
    }
    rm.ReplyWithArray(ctx, 2);
    rm.ReplyWithStringBuffer(ctx, "OK", 2);
    return rm.ReplyWithLongLong(ctx, a.sv + 1);
}

/* ---- TD.PART ---- */

static int
part_claim(RedisModuleCtx *ctx, RedisModuleKey *k, const td_part_args_t *a) {
    RedisModuleString *c = NULL, *in = NULL, *fv[2];
    int64_t e = 0;

    if (hget_i64(k, F_EPOCH, &e) < 0) {
        rm.CloseKey(k);
        return rm.ReplyWithError(ctx, "ERR hash value is not an integer");
    }
    if (a->min_epoch > 0 && a->min_epoch - 1 > e) e = a->min_epoch - 1;
    if (e == INT64_MAX) {
        rm.CloseKey(k);
        return rm.ReplyWithError(ctx,
                                 "ERR increment or decrement would overflow");
    }
    e++;
    fv[0] = fields[F_EPOCH];
    fv[1] = rm.CreateStringFromLongLong(NULL, e);
    rm.HashSet(k, REDISMODULE_HASH_NONE, fv[0], fv[1], NULL);
    rm.FreeString(NULL, fv[1]);
    rm.HashGet(k, REDISMODULE_HASH_NONE, fields[F_COMMITTED], &c,
               fields[F_INTENT], &in, NULL);
    rm.CloseKey(k);
    rm.ReplicateVerbatim(ctx);

    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)e);
    rm.ReplyWithArray(ctx, 3);
    rm.ReplyWithStringBuffer(ctx, num, (size_t)n);
    if (c) {
        rm.ReplyWithString(ctx, c);
        rm.FreeString(NULL, c);
    } else {
        rm.ReplyWithStringBuffer(ctx, "", 0);
    }
    if (in) {
        rm.ReplyWithString(ctx, in);
        rm.FreeString(NULL, in);
    } else {
        rm.ReplyWithStringBuffer(ctx, "", 0);
    }
    return REDISMODULE_OK;
}

static int part_set(RedisModuleCtx *ctx,
                    RedisModuleString **argv,
                    const td_marg_t *av,
                    RedisModuleKey *k,
                    const td_part_args_t *a) {
    const char *rec = av[1].p;
    int rl = (int)av[1].len;
    int64_t e, c = -1, in = -1;
    int has = hget_i64(k, F_EPOCH, &e);

    if (has < 0) {
        rm.CloseKey(k);
        return reply_errf(ctx, "ERR %.*s has a non-integer epoch", rl, rec);
    }
    if (has == 0) {
        rm.CloseKey(k);
        return reply_errf(ctx, "TDLOST %.*s is missing", rl, rec);
    }
    if (e > a->epoch) {
        rm.CloseKey(k);
        return reply_errf(ctx, "TDFENCED %.*s is owned by epoch %lld, not %lld",
                          rl, rec, (long long)e, (long long)a->epoch);
    }
    if (e < a->epoch) {
        rm.CloseKey(k);
        return reply_errf(ctx, "TDLOST %.*s is at epoch %lld, behind %lld", rl,
                          rec, (long long)e, (long long)a->epoch);
    }
    if (a->ack) {
        if (hget_i64(k, F_COMMITTED, &c) < 0 ||
            hget_i64(k, F_INTENT, &in) < 0) {
            rm.CloseKey(k);
            return reply_errf(ctx, "ERR %.*s has non-integer offsets", rl, rec);
        }
        if (c < a->ack_committed || in < a->ack_intent) {
            rm.CloseKey(k);
            return reply_errf(ctx,
                              "TDLOST %.*s is at committed %lld intent %lld, "
                              "behind %lld/%lld",
                              rl, rec, (long long)c, (long long)in,
                              (long long)a->ack_committed,
                              (long long)a->ack_intent);
        }
    }
    RedisModuleString *fv[4] = {fields[F_COMMITTED], argv[4], fields[F_INTENT],
                                argv[5]};
    hset(ctx, &k, argv[1], fv, 2);
    rm.CloseKey(k);
    rm.ReplicateVerbatim(ctx);
    return rm.ReplyWithSimpleString(ctx, "OK");
}

static int part_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    char errstr[256];
    margs_t m;
    const td_marg_t *av = margs_init(&m, argv, argc);
    td_part_args_t a;
    RedisModuleKey *k;
    int wrong = 0, rc;

    if (td_part_args_parse(av, argc, &a, errstr, sizeof(errstr)) != 0) {
        margs_term(&m);
        return rm.ReplyWithError(ctx, errstr);
    }
    k = open_w(ctx, argv[1], REDISMODULE_KEYTYPE_HASH, &wrong);
    if (!k) {
        rc = rm.ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    } else if (a.claim) {
        rc = part_claim(ctx, k, &a);
    } else {
        rc = part_set(ctx, argv, av, k, &a);
    }
    margs_term(&m);
    return rc;
}

/* ---- TD.SCORE, TD.PUBLISHED ---- */

/* HINCRBY score version 1, then HSET of the pairs and the history point
 * of that version; replies the version. */
static int score_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    char errstr[128];
    margs_t m;
    RedisModuleKey *k, *h;
    RedisModuleString *nv;
    td_marg_t head;
    int64_t v = 0;
    int wrong = 0, rc;

    rc = td_score_args_check(margs_init(&m, argv, argc), argc, errstr,
                             sizeof(errstr));
    margs_term(&m);
    if (rc != 0) return rm.ReplyWithError(ctx, errstr);
    k = open_w(ctx, argv[1], REDISMODULE_KEYTYPE_HASH, &wrong);
    if (!k) return rm.ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    h = open_w(ctx, argv[2], REDISMODULE_KEYTYPE_STRING, &wrong);
    if (!h) {
        rm.CloseKey(k);
        return rm.ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    }
    if (hget_i64(k, F_VERSION, &v) < 0) {
        rm.CloseKey(k);
        rm.CloseKey(h);
        return rm.ReplyWithError(ctx, "ERR hash value is not an integer");
    }
    if (v == INT64_MAX) {
        rm.CloseKey(k);
        rm.CloseKey(h);
        return rm.ReplyWithError(ctx,
                                 "ERR increment or decrement would overflow");
    }
    v++;
    nv = rm.CreateStringFromLongLong(NULL, v);
    rm.HashSet(k, REDISMODULE_HASH_NONE, fields[F_VERSION], nv, NULL);
    rm.FreeString(NULL, nv);
    hset(ctx, &k, argv[1], argv + 4, (argc - 4) / 2);
    rm.CloseKey(k);
    head.p = rm.StringPtrLen(argv[3], &head.len);
    history_append(h, &head, v);
    rm.CloseKey(h);
    rm.ReplicateVerbatim(ctx);
    return rm.ReplyWithLongLong(ctx, v);
}

static int
published_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    char errstr[256];
    margs_t m;
    const td_marg_t *av;
    td_mark_args_t a;
    RedisModuleKey *k;
    int wrong = 0, due;

    if (argc != 6) return rm.WrongArity(ctx);
    av = margs_init(&m, argv, argc);
    due = td_mark_args_parse(av + 2, &a, errstr, sizeof(errstr));
    margs_term(&m);
    if (due != 0) return rm.ReplyWithError(ctx, errstr);
    k = open_w(ctx, argv[1], REDISMODULE_KEYTYPE_HASH, &wrong);
    if (!k) return rm.ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    due = mark_due(k, a.version);
    if (due < 0) {
        rm.CloseKey(k);
        return rm.ReplyWithError(ctx, "ERR pub_version is not an integer");
    }
    if (due) {
        mark_write(k, argv + 2);
        rm.ReplicateVerbatim(ctx);
    }
    rm.CloseKey(k);
    return rm.ReplyWithLongLong(ctx, due);
}

/* ---- loading ---- */

/* clang-format off */
static const struct {
    const char *name;
    RedisModuleCmdFunc fn;
    const char *flags;
    int first, last;
} commands[] = {
    {"td.load",      load_cmd,      "readonly",       1, 4},
    {"td.put",       put_cmd,       "write deny-oom", 2, 6},
    {"td.part",      part_cmd,      "write deny-oom", 1, 1},
    {"td.score",     score_cmd,     "write deny-oom", 1, 2},
    {"td.published", published_cmd, "write deny-oom", 1, 1},
};
/* clang-format on */

static int rm_init(RedisModuleCtx *ctx, const char *name) {
    td_rm_getapi_t getapi = (td_rm_getapi_t)((void **)ctx)[0];

    for (int i = 0; rm_names[i].name; i++) {
        if (getapi(rm_names[i].name, rm_names[i].fn) != REDISMODULE_OK)
            return REDISMODULE_ERR;
    }
    if (rm.IsModuleNameBusy(name)) return REDISMODULE_ERR;
    /* 2: TD.PUT and TD.SCORE write the score history (key 5, key 2);
     * 3: TD.PUT's payload leads and <meta> packs its small arguments. */
    rm.SetModuleAttribs(ctx, name, 3, REDISMODULE_APIVER_1);
    return REDISMODULE_OK;
}

EXPORT int
RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    if (rm_init(ctx, "trustd") != REDISMODULE_OK) return REDISMODULE_ERR;
    for (int i = 0; i < F__CNT; i++) {
        fields[i] =
            rm.CreateString(NULL, field_names[i], strlen(field_names[i]));
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (rm.CreateCommand(ctx, commands[i].name, commands[i].fn,
                             commands[i].flags, commands[i].first,
                             commands[i].last, 1) != REDISMODULE_OK)
            return REDISMODULE_ERR;
    }
    return REDISMODULE_OK;
}
