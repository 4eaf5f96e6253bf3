/*
 * store.c - the store's settings and connections, the trustd function
 * library, and the dispatch of command batches to one Redis (store_node.c)
 * or a Redis Cluster (store_cluster.c, whose header says how it routes and
 * WAITs); the batches themselves are rbatch.c's.
 *
 * The function library is built once per process from the signal catalog
 * (td_signals_lua) plus the fixed functions (store_lib.lua), and named after a
 * hash of its text: "trustd_<hash>" with functions "td_put_<hash>" and so on.
 * Two builds with different catalogs therefore load side by side instead of
 * replacing each other during a rolling upgrade. Functions are persisted by
 * Redis (RDB/AOF) and replicated; if Redis comes back without them (no AOF),
 * FCALL fails with "Function not found", the batch fails, and the next
 * td_store_connect() loads the library again before the retry. The library
 * is loaded on every new connection with FUNCTION LOAD REPLACE (same name,
 * same text), which makes the load itself a replicated write: see WAIT in
 * store_cluster.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cluster.h"
#include "history.h"
#include "log.h"
#include "signals.h"
#include "store.h"
#include "store_int.h"

#define LIB_MAX (64 * 1024)

/* The fixed functions of the library, processor/store_lib.lua compiled in
 * as lib_fixed (build/gen/store_lib.h, made by the Makefile); BN (base
 * names) comes from the catalog. history() there spells these numbers. */
_Static_assert(TD_HISTORY_POINT == 16 && TD_HISTORY_MAX == 64 &&
                   TD_HISTORY_DAYS * 86400 == 7776000,
               "history() in store_lib.lua");
#include "store_lib.h"

static const char *fn_bases[TD_STORE_FNS] = {"load", "put", "part", "score",
                                             "published"};

static uint64_t fnv1a(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int build_library(td_store_t *st, char *errstr, size_t errstr_size) {
    char *body = malloc(LIB_MAX);
    int n;
    size_t len;

    if (!body) goto oom;
    n = td_signals_lua(body, LIB_MAX);
    if (n < 0 || (size_t)n + sizeof(lib_fixed) >= LIB_MAX) {
        snprintf(errstr, errstr_size, "function library exceeds %d bytes",
                 LIB_MAX);
        free(body);
        return TD_ERR;
    }
    memcpy(body + n, lib_fixed, sizeof(lib_fixed));
    len = (size_t)n + sizeof(lib_fixed) - 1;
    snprintf(st->hash, sizeof(st->hash), "%016llx",
             (unsigned long long)fnv1a(body, len));
    for (int i = 0; i < TD_STORE_FNS; i++)
        snprintf(st->fn[i], sizeof(st->fn[i]), "td_%s_%.12s", fn_bases[i],
                 st->hash);

    st->lib = malloc(len + 512);
    if (!st->lib) {
        free(body);
        goto oom;
    }
    n = snprintf(st->lib, 64, "#!lua name=trustd_%.12s\n", st->hash);
    memcpy(st->lib + n, body, len);
    len += (size_t)n;
    for (int i = 0; i < TD_STORE_FNS; i++) {
        len += (size_t)sprintf(st->lib + len,
                               "redis.register_function('%s', td_%s)\n",
                               st->fn[i], fn_bases[i]);
    }
    free(body);
    return TD_OK;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return TD_ERR;
}

/* Parses one "host:port" (port after the last ':', brackets around an IPv6
 * host allowed) or "/unix/path" into *sd. */
static int parse_addr(
    const char *a, size_t alen, seed_t *sd, char *errstr, size_t errstr_size) {
    const char *colon = NULL;
    const char *h = a;
    size_t hlen;
    char *end;
    long port;

    if (alen == 0) {
        snprintf(errstr, errstr_size, "redis: empty address");
        return TD_ERR;
    }
    if (a[0] == '/') {
        sd->host = strndup(a, alen);
        sd->port = -1;
        return sd->host ? TD_OK : TD_ERR;
    }
    for (size_t i = 0; i < alen; i++) {
        if (a[i] == ':') colon = a + i;
    }
    if (!colon) {
        snprintf(errstr, errstr_size,
                 "redis: '%.*s' is not host:port or a socket path", (int)alen,
                 a);
        return TD_ERR;
    }
    port = strtol(colon + 1, &end, 10);
    if (end != a + alen || port <= 0 || port > 65535) {
        snprintf(errstr, errstr_size, "redis: bad port in '%.*s'", (int)alen,
                 a);
        return TD_ERR;
    }
    hlen = (size_t)(colon - a);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= TD_CLUSTER_HOST_MAX) {
        snprintf(errstr, errstr_size, "redis: bad host in '%.*s'", (int)alen,
                 a);
        return TD_ERR;
    }
    sd->host = strndup(h, hlen);
    sd->port = (int)port;
    return sd->host ? TD_OK : TD_ERR;
}

void td_store_conf_from(td_store_conf_t *sc, const td_conf_t *conf) {
    memset(sc, 0, sizeof(*sc));
    sc->addrs = conf->redis;
    sc->user = conf->redis_user;
    sc->password = conf->redis_password;
    sc->connect_timeout_ms = conf->redis_connect_timeout_ms;
    sc->command_timeout_ms = conf->redis_command_timeout_ms;
    sc->cluster = conf->redis_cluster;
    sc->module = conf->redis_module;
}

td_store_t *
td_store_new(const td_store_conf_t *conf, char *errstr, size_t errstr_size) {
    td_store_t *st = calloc(1, sizeof(*st));
    const char *a = conf->addrs ? conf->addrs : "";

    if (!st) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    /* Every seed is checked; the first is the node of single-node mode. */
    for (;;) {
        size_t alen = strcspn(a, ",");
        td_grow((void **)&st->seeds, &st->seedcap, (size_t)st->nseeds + 1,
                sizeof(*st->seeds));
        if (parse_addr(a, alen, &st->seeds[st->nseeds], errstr, errstr_size) !=
            TD_OK)
            goto err;
        st->nseeds++;
        if (!a[alen]) break;
        a += alen + 1;
    }
    st->host = strdup(st->seeds[0].host);
    st->port = st->seeds[0].port;
    st->user = strdup(conf->user ? conf->user : "");
    st->password = strdup(conf->password ? conf->password : "");
    st->connect_timeout_ms = conf->connect_timeout_ms;
    st->command_timeout_ms = conf->command_timeout_ms;
    st->readonly = conf->readonly;
    st->module = conf->module;
    st->wait_ms = conf->command_timeout_ms / 2;
    if (st->wait_ms > WAIT_MAX_MS) st->wait_ms = WAIT_MAX_MS;
    if (st->wait_ms < 1) st->wait_ms = 1; /* WAIT 1 0 would block forever */
    st->detect = !conf->cluster;
    if (!st->host || !st->user || !st->password) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (conf->cluster) {
        for (int i = 0; i < st->nseeds; i++) {
            if (st->seeds[i].port < 0) {
                snprintf(errstr, errstr_size,
                         "redis: cluster seeds must be host:port, not '%s'",
                         st->seeds[i].host);
                goto err;
            }
        }
        st->cluster = 1;
    }
    if (build_library(st, errstr, errstr_size) != TD_OK) goto err;
    return st;
err:
    td_store_destroy(st);
    return NULL;
}

static void queue_clear(td_store_t *st);

void td_store_destroy(td_store_t *st) {
    if (!st) return;
    if (st->c) redisFree(st->c);
    for (int i = 0; i < st->sncap; i++) {
        if (st->sn[i].c) redisFree(st->sn[i].c);
    }
    queue_clear(st);
    td_rbatch_destroy(st->qb);
    free(st->qr);
    free(st->sn);
    free(st->masters);
    free(st->used);
    free(st->cs);
    td_cluster_destroy(st->map);
    for (int i = 0; i < st->nseeds; i++)
        free(st->seeds[i].host);
    free(st->seeds);
    free(st->host);
    free(st->user);
    free(st->password);
    free(st->lib);
    free(st);
}

static struct timeval ms_tv(int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

void td_store_drop(td_store_t *st) {
    if (st->c) redisFree(st->c);
    st->c = NULL;
    st->healthy = 0;
    st->stats.errors++;
}

/* Connects to host:port (or the unix socket host when port < 0), sets the
 * command timeout and authenticates. NULL + errstr on failure. */
redisContext *td_store_open_conn(td_store_t *st,
                                 const char *host,
                                 int port,
                                 char *errstr,
                                 size_t errstr_size) {
    redisContext *c;
    redisReply *r;

    if (port < 0)
        c = redisConnectUnixWithTimeout(host, ms_tv(st->connect_timeout_ms));
    else
        c = redisConnectWithTimeout(host, port, ms_tv(st->connect_timeout_ms));
    if (!c || c->err) {
        snprintf(errstr, errstr_size, "redis %s:%d: %s", host, port,
                 c ? c->errstr : "out of memory");
        goto err;
    }
    redisSetTimeout(c, ms_tv(st->command_timeout_ms));
    if (port >= 0) /* TCP only: it fails on unix sockets */
        redisEnableKeepAlive(c);
    if (st->password[0]) {
        if (st->user[0])
            r = redisCommand(c, "AUTH %s %s", st->user, st->password);
        else
            r = redisCommand(c, "AUTH %s", st->password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(errstr, errstr_size, "redis AUTH: %s",
                     r ? r->str : c->errstr);
            if (r) freeReplyObject(r);
            goto err;
        }
        freeReplyObject(r);
    }
    return c;
err:
    if (c) redisFree(c);
    return NULL;
}

/* FUNCTION LOAD REPLACE: idempotent (same name, same text) and, unlike a
 * load answered "already exists", always a replicated write (see WAIT). */
int td_store_load_library(td_store_t *st,
                          redisContext *c,
                          char *errstr,
                          size_t errstr_size) {
    redisReply *r = redisCommand(c, "FUNCTION LOAD REPLACE %s", st->lib);

    if (!r) {
        snprintf(errstr, errstr_size, "redis: FUNCTION LOAD: %s", c->errstr);
        return TD_ERR;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis: FUNCTION LOAD: %s", r->str);
        freeReplyObject(r);
        return TD_ERR;
    }
    freeReplyObject(r);
    return TD_OK;
}

int td_store_module_current(const redisReply *r) {
    const redisReply *cmd;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1) return 0;
    cmd = r->element[0];
    /* Module version 3's TD.PUT has its keys at 2..6 (the reply's fourth
     * and fifth elements). */
    return cmd->type == REDIS_REPLY_ARRAY && cmd->elements >= 5 &&
           cmd->element[3]->type == REDIS_REPLY_INTEGER &&
           cmd->element[3]->integer == 2 &&
           cmd->element[4]->type == REDIS_REPLY_INTEGER &&
           cmd->element[4]->integer == 6;
}

/* Asks the server on c whether it has the trustd module's commands
 * (store.h). TD_ERR when they are required and missing, or on an I/O
 * error. An error reply (an ACL without COMMAND) counts as missing. */
int td_store_probe_module(td_store_t *st,
                          redisContext *c,
                          char *errstr,
                          size_t errstr_size) {
    redisReply *r;
    int has;

    if (st->module == TD_REDIS_MODULE_LUA) return TD_OK;
    r = redisCommand(c, "COMMAND INFO td.put");
    if (!r) {
        snprintf(errstr, errstr_size, "redis: COMMAND INFO: %s", c->errstr);
        return TD_ERR;
    }
    has = td_store_module_current(r);
    freeReplyObject(r);
    if (!has && st->module == TD_REDIS_MODULE_REQUIRE) {
        snprintf(errstr, errstr_size,
                 "redis: the trustd module is not loaded (no TD.PUT), or "
                 "is older than version 3, and redis_module=module "
                 "requires it");
        return TD_ERR;
    }
    if (has != st->native)
        td_log(TD_LOG_NOTICE, "redis %s the trustd module: %s",
               has ? "has" : "lacks",
               has ? "native commands" : "the Lua function library");
    st->native = has;
    return TD_OK;
}

/* One Redis: asks whether it is a cluster node. 1 yes, 0 no, -1 I/O error
 * (errstr filled). An error reply ("cluster support disabled", or an ACL
 * that forbids CLUSTER) means no. */
static int is_cluster_node(td_store_t *st, char *errstr, size_t errstr_size) {
    redisReply *r = redisCommand(st->c, "CLUSTER INFO");
    int yes;

    if (!r) {
        snprintf(errstr, errstr_size, "redis %s:%d: %s", st->host, st->port,
                 st->c->errstr);
        return -1;
    }
    yes = r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return yes;
}

int td_store_connect(td_store_t *st, char *errstr, size_t errstr_size) {
    if (st->cluster) return td_store_cluster_connect(st, errstr, errstr_size);
    if (st->c && !st->c->err && st->lib_loaded) return TD_OK;
    if (!st->c || st->c->err) {
        if (st->c) redisFree(st->c);
        st->lib_loaded = 0;
        st->c = td_store_open_conn(st, st->host, st->port, errstr, errstr_size);
        if (!st->c) {
            td_store_drop(st);
            return TD_ERR;
        }
        if (st->detect) {
            int yes = is_cluster_node(st, errstr, errstr_size);
            if (yes < 0) {
                td_store_drop(st);
                return TD_ERR;
            }
            st->detect = 0;
            if (yes && st->port < 0) {
                snprintf(errstr, errstr_size,
                         "redis %s is a Redis Cluster node: give host:port "
                         "seeds in `redis`",
                         st->host);
                st->detect = 1;
                td_store_drop(st);
                return TD_ERR;
            }
            if (yes) {
                td_log(TD_LOG_NOTICE,
                       "redis %s:%d is a Redis Cluster node: "
                       "switching to cluster mode",
                       st->host, st->port);
                redisFree(st->c);
                st->c = NULL;
                st->cluster = 1;
                return td_store_cluster_connect(st, errstr, errstr_size);
            }
        }
    }
    if (!st->readonly &&
        (td_store_load_library(st, st->c, errstr, errstr_size) != TD_OK ||
         td_store_probe_module(st, st->c, errstr, errstr_size) != TD_OK)) {
        td_store_drop(st);
        return TD_ERR;
    }
    st->lib_loaded = 1;
    st->healthy = 1;
    return TD_OK;
}

int td_store_healthy(const td_store_t *st) {
    return st->healthy;
}

int td_store_is_cluster(const td_store_t *st) {
    return st->cluster;
}

int td_store_master_slots(const td_store_t *st, int *slots, int max) {
    int m = 0;

    if (!st->cluster || !st->map) return 0;
    for (int slot = 0; slot < TD_CLUSTER_SLOTS && m < st->nmasters; slot++) {
        if (td_cluster_slot_node(st->map, slot) != st->masters[m]) continue;
        if (m < max) slots[m] = slot;
        m++;
    }
    return st->nmasters;
}

int td_store_native(const td_store_t *st) {
    return st->native;
}

const td_store_stats_t *td_store_stats(const td_store_t *st) {
    return &st->stats;
}

const char *td_store_fn(const td_store_t *st, const char *base) {
    for (int i = 0; i < TD_STORE_FNS; i++) {
        if (!strcmp(fn_bases[i], base)) return st->fn[i];
    }
    return "td_unknown";
}

int td_store_missing_function(const redisReply *r) {
    return r->type == REDIS_REPLY_ERROR &&
           (strstr(r->str, "Function not found") || strstr(r->str, "NOSCRIPT"));
}

int td_store_exec_part(td_store_t *st,
                       td_rbatch_t *b,
                       int final,
                       char *errstr,
                       size_t errstr_size) {
    if (b->sent == 0) {
        /* The connect may find out that Redis is a cluster node. */
        if (!st->cluster && td_store_connect(st, errstr, errstr_size) != TD_OK)
            return TD_ERR;
    }
    if (st->cluster)
        return td_store_cluster_exec(st, b, final, errstr, errstr_size);
    return td_store_node_exec(st, b, final, errstr, errstr_size);
}

int td_store_exec(td_store_t *st,
                  td_rbatch_t *b,
                  char *errstr,
                  size_t errstr_size) {
    b->sent = b->done = 0; /* the whole batch, also when retried */
    return td_store_exec_part(st, b, 1, errstr, errstr_size);
}

/* ---- td_store_append() queue ---- */

/* Frees replies handed out by no td_store_reply() yet and empties the
 * queue. */
static void queue_clear(td_store_t *st) {
    for (size_t i = st->qhead; st->qb && i < st->qsent; i++) {
        if (st->qr[i]) freeReplyObject(st->qr[i]);
        st->qr[i] = NULL;
    }
    if (st->qb) td_rbatch_reset(st->qb);
    st->qsent = st->qhead = 0;
}

int td_store_vappend(td_store_t *st, const char *fmt, va_list ap) {
    char *cmd = NULL;
    int len, rc;

    if (!st->qb && !(st->qb = td_rbatch_new())) return TD_ERR;
    if (st->qhead > 0 && st->qhead == td_rbatch_cnt(st->qb)) queue_clear(st);
    len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0) return TD_ERR;
    rc = td_rbatch_add_formatted(st->qb, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

int td_store_append(td_store_t *st, const char *fmt, ...) {
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = td_store_vappend(st, fmt, ap);
    va_end(ap);
    return rc;
}

redisReply *td_store_reply(td_store_t *st, char *errstr, size_t errstr_size) {
    td_rbatch_t *q = st->qb;
    size_t cnt = q ? td_rbatch_cnt(q) : 0;
    redisReply *r;

    if (st->qhead >= cnt) {
        snprintf(errstr, errstr_size, "redis: no command queued");
        return NULL;
    }
    if (st->qhead >= st->qsent) {
        td_grow((void **)&st->qr, &st->qrcap, cnt, sizeof(*st->qr));
        memset(st->qr + st->qsent, 0, (cnt - st->qsent) * sizeof(*st->qr));
        if (st->cluster) {
            /* Streamed to every node at once (store_cluster.c). */
            td_store_cluster_collect(st, q, st->qsent, st->qr + st->qsent,
                                     st->qerr, sizeof(st->qerr));
        } else {
            int rc = td_store_connect(st, st->qerr, sizeof(st->qerr));
            for (size_t s = st->qsent; s < cnt && rc == TD_OK;
                 s += PIPELINE_CHUNK) {
                size_t e = s + PIPELINE_CHUNK < cnt ? s + PIPELINE_CHUNK : cnt;
                rc = td_store_node_collect(st, q, s, e, st->qr + s, st->qerr,
                                           sizeof(st->qerr));
            }
        }
        st->qsent = cnt;
    }
    r = st->qr[st->qhead];
    st->qr[st->qhead++] = NULL;
    if (!r) snprintf(errstr, errstr_size, "%s", st->qerr);
    if (st->qhead == cnt) queue_clear(st);
    return r;
}

redisReply *td_store_vcmd(td_store_t *st,
                          char *errstr,
                          size_t errstr_size,
                          const char *fmt,
                          va_list ap) {
    redisReply *r;

    if (!st->cluster && td_store_connect(st, errstr, errstr_size) != TD_OK)
        return NULL;
    if (st->cluster) {
        queue_clear(st);
        if (td_store_vappend(st, fmt, ap) != TD_OK) {
            snprintf(errstr, errstr_size, "redis: bad command format");
            return NULL;
        }
        return td_store_reply(st, errstr, errstr_size);
    }
    r = redisvCommand(st->c, fmt, ap);
    if (!r) {
        snprintf(errstr, errstr_size, "redis %s:%d: %s", st->host, st->port,
                 st->c->errstr);
        td_store_drop(st);
        return NULL;
    }
    st->stats.roundtrips++;
    st->stats.commands++;
    return r;
}

redisReply *td_store_cmd(
    td_store_t *st, char *errstr, size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = td_store_vcmd(st, errstr, errstr_size, fmt, ap);
    va_end(ap);
    return r;
}
