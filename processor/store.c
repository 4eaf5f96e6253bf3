/*
 * store.c - Redis connections, the trustd function library and pipelined
 * command batches (see store.h for the key layout), on one Redis or on a
 * Redis Cluster.
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
 * same text), which makes the load itself a replicated write: see WAIT below.
 *
 * Cluster mode. No cluster client exists for hiredis 0.14 (hiredis-cluster
 * and hiredis-vip need hiredis >= 1.0 or are not packaged in Debian 12), so
 * routing is done here on top of cluster.c's slot map, with one blocking
 * hiredis context per node (struct snode). A round sends a chunk of a batch:
 *
 *   1. route: every command's key -> slot -> master (a keyless SCAN goes to
 *      the master its cursor names); connect and load the library where
 *      needed;
 *   2. append each command to its node's context, then WAIT on every node
 *      this connection has unconfirmed writes on; flush every node's output
 *      before reading any, so the nodes work in parallel;
 *   3. read each node's replies in order into the command's slot;
 *   4. settle: MOVED (patch the slot, mark the map stale, resend there), ASK
 *      (ASKING + the command, once, on the named node), TRYAGAIN, LOADING
 *      and CLUSTERDOWN (back off, refresh the map, resend) until a real reply
 *      or the round's retry budget is spent; then WAIT again on nodes that
 *      took resent writes.
 *
 * A connection error marks the map stale; the next round reads CLUSTER SLOTS
 * from any node that answers (connected ones first, then every node ever
 * seen, seeds included).
 *
 * WAIT. Replication is asynchronous, so a master can fail over to a replica
 * that lacks its last writes. Exactly-once needs every merchant write and
 * partition record that a flush relies on to survive that, so no round
 * succeeds until WAIT 1 says a replica has this connection's writes. WAIT
 * covers the writes of its own connection only; a write sent on a
 * connection that then broke is covered because a new connection starts
 * with FUNCTION LOAD REPLACE, a write that follows it in the master's
 * replication stream, so the first WAIT on the new connection covers both.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "cluster.h"
#include "history.h"
#include "log.h"
#include "numfmt.h"
#include "rdump.h"
#include "signals.h"
#include "store.h"

#define LIB_MAX        (64 * 1024)
#define PIPELINE_CHUNK 2048
/* Cluster: replicas a write must reach, redirections one command may take,
 * time one round may spend backing off TRYAGAIN/CLUSTERDOWN/LOADING, and the
 * longest WAIT (also bounded by half the command timeout). */
#define WAIT_REPLICAS    1
#define REDIRECT_MAX     16
#define TRANSIENT_MAX_MS 1000
#define WAIT_MAX_MS      1000

/* One cluster node's connection and its part of the current round. */
typedef struct snode_s {
    redisContext *c;
    int lib_loaded;
    int dirty;      /* writes on c that no WAIT confirmed yet */
    int used;       /* in this round */
    int failed;     /* this round's I/O on it failed */
    int wait_sent;  /* a WAIT follows this round's commands */
    int resent;     /* took a resent write while settling */
    int head, tail; /* this round's commands, chained by cstate.next */
} snode_t;

/* One command of a cluster round. */
typedef struct cstate_s {
    int node;
    int slot; /* -1: keyless */
    int write;
    int scan_ord; /* SCAN: index of the master it walks, else -1 */
    int next;
    redisReply *r;
} cstate_t;

typedef struct seed_s {
    char *host; /* or a unix socket path when port < 0 */
    int port;
} seed_t;

struct td_store_s {
    char *host; /* or unix socket path when port < 0 */
    int port;
    char *user;
    char *password;
    int connect_timeout_ms;
    int command_timeout_ms;
    int readonly;
    int module; /* TD_REDIS_MODULE_* */
    int native; /* the last connection had the module's commands */
    redisContext *c;
    int healthy;
    int lib_loaded;
    char *lib;                 /* library source */
    char hash[17];             /* hex of the library hash */
    char fn[TD_STORE_FNS][48]; /* function names */
    td_store_stats_t stats;

    /* cluster */
    int cluster; /* speaking the cluster protocol */
    int detect;  /* one Redis: ask CLUSTER INFO on the next connect */
    seed_t *seeds;
    int nseeds;
    size_t seedcap;
    td_cluster_t *map;
    int map_ok;  /* loaded and not known to be stale */
    snode_t *sn; /* per map node */
    int sncap;
    int *masters; /* by lowest slot, as td_cluster_masters() */
    int nmasters;
    int *used; /* nodes of this round */
    int nused;
    cstate_t *cs; /* commands of this round */
    size_t cscap;
    int wait_ms;

    /* td_store_append() queue: commands, then their replies */
    td_rbatch_t *qb;
    redisReply **qr;
    size_t qrcap;
    size_t qsent; /* commands before this were sent */
    size_t qhead; /* next reply to hand out */
    char qerr[512];
};

struct td_rbatch_s {
    char *buf;
    size_t len, cap;
    struct rarg {
        size_t off, len;
    } * args;
    size_t acnt, acap;
    struct rcmd {
        size_t first, argc;
        td_rbatch_cb_t cb;
        void *opaque;
    } * cmds;
    size_t ccnt, ccap;
    size_t cur_first;  /* first arg of the command being built */
    size_t sent, done; /* td_store_exec_part(): commands sent, answered */
    const char **argv; /* scratch for one command */
    size_t *argvlen;
    size_t argv_cap, argvlen_cap;
    char *resp; /* scratch: commands in the Redis protocol (resp_cmds) */
    size_t resp_cap;
};

static int cl_connect(td_store_t *st, char *errstr, size_t errstr_size);
static int
cl_exec(td_store_t *st, td_rbatch_t *b, char *errstr, size_t errstr_size);
static void grow(void **p, size_t *cap, size_t n, size_t sz);

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
        grow((void **)&st->seeds, &st->seedcap, (size_t)st->nseeds + 1,
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

static void drop(td_store_t *st) {
    if (st->c) redisFree(st->c);
    st->c = NULL;
    st->healthy = 0;
    st->stats.errors++;
}

/* Connects to host:port (or the unix socket host when port < 0), sets the
 * command timeout and authenticates. NULL + errstr on failure. */
static redisContext *open_conn(td_store_t *st,
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
static int load_library(td_store_t *st,
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

/* Asks the server on c whether it has the trustd module's commands
 * (store.h). TD_ERR when they are required and missing, or on an I/O
 * error. An error reply (an ACL without COMMAND) counts as missing. */
static int probe_module(td_store_t *st,
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
    has = r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
          r->element[0]->type == REDIS_REPLY_ARRAY;
    /* A module before the score history takes 4 keys (its last key, the
     * reply's fifth element): trustd writes with the Lua library there
     * until the module is upgraded. */
    if (has && (r->element[0]->elements < 5 ||
                r->element[0]->element[4]->type != REDIS_REPLY_INTEGER ||
                r->element[0]->element[4]->integer < 5))
        has = 0;
    freeReplyObject(r);
    if (!has && st->module == TD_REDIS_MODULE_REQUIRE) {
        snprintf(errstr, errstr_size,
                 "redis: the trustd module is not loaded (no TD.PUT), or "
                 "predates the score history, and redis_module=module "
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
    if (st->cluster) return cl_connect(st, errstr, errstr_size);
    if (st->c && !st->c->err && st->lib_loaded) return TD_OK;
    if (!st->c || st->c->err) {
        if (st->c) redisFree(st->c);
        st->lib_loaded = 0;
        st->c = open_conn(st, st->host, st->port, errstr, errstr_size);
        if (!st->c) {
            drop(st);
            return TD_ERR;
        }
        if (st->detect) {
            int yes = is_cluster_node(st, errstr, errstr_size);
            if (yes < 0) {
                drop(st);
                return TD_ERR;
            }
            st->detect = 0;
            if (yes && st->port < 0) {
                snprintf(errstr, errstr_size,
                         "redis %s is a Redis Cluster node: give host:port "
                         "seeds in `redis`",
                         st->host);
                st->detect = 1;
                drop(st);
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
                return cl_connect(st, errstr, errstr_size);
            }
        }
    }
    if (!st->readonly &&
        (load_library(st, st->c, errstr, errstr_size) != TD_OK ||
         probe_module(st, st->c, errstr, errstr_size) != TD_OK)) {
        drop(st);
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

td_rbatch_t *td_rbatch_new(void) {
    return calloc(1, sizeof(td_rbatch_t));
}

void td_rbatch_destroy(td_rbatch_t *b) {
    if (!b) return;
    free(b->buf);
    free(b->args);
    free(b->cmds);
    free(b->argv);
    free(b->argvlen);
    free(b->resp);
    free(b);
}

void td_rbatch_reset(td_rbatch_t *b) {
    b->len = 0;
    b->acnt = 0;
    b->ccnt = 0;
    b->sent = 0;
    b->done = 0;
}

size_t td_rbatch_cnt(const td_rbatch_t *b) {
    return b->ccnt;
}

/* Grows *p (elements of size sz) to hold at least n; aborts on OOM like
 * Redis' zmalloc: a worker that cannot allocate cannot make progress. */
static void grow(void **p, size_t *cap, size_t n, size_t sz) {
    if (n <= *cap) return;
    size_t nc = *cap ? *cap : 64;
    while (nc < n)
        nc *= 2;
    void *np = realloc(*p, nc * sz);
    if (!np) {
        fprintf(stderr, "trustd: out of memory (%zu bytes)\n", nc * sz);
        abort();
    }
    *p = np;
    *cap = nc;
}

void td_rbatch_begin(td_rbatch_t *b) {
    b->cur_first = b->acnt;
}

void td_rbatch_arg(td_rbatch_t *b, const void *p, size_t len) {
    grow((void **)&b->buf, &b->cap, b->len + len + 1, 1);
    grow((void **)&b->args, &b->acap, b->acnt + 1, sizeof(*b->args));
    memcpy(b->buf + b->len, p, len);
    b->args[b->acnt].off = b->len;
    b->args[b->acnt].len = len;
    b->len += len;
    b->acnt++;
}

void td_rbatch_str(td_rbatch_t *b, const char *s) {
    td_rbatch_arg(b, s, strlen(s));
}

void td_rbatch_i64(td_rbatch_t *b, int64_t v) {
    char tmp[TD_FMT_I64_MAX];
    td_rbatch_arg(b, tmp, td_fmt_i64(tmp, v));
}

void td_rbatch_dbl(td_rbatch_t *b, double v) {
    char tmp[TD_FMT_G17_MAX];
    td_rbatch_arg(b, tmp, td_fmt_g17(tmp, v));
}

void td_rbatch_fmt(td_rbatch_t *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof(tmp)) n = sizeof(tmp) - 1;
    td_rbatch_arg(b, tmp, (size_t)n);
}

void td_rbatch_end(td_rbatch_t *b, td_rbatch_cb_t cb, void *opaque) {
    grow((void **)&b->cmds, &b->ccap, b->ccnt + 1, sizeof(*b->cmds));
    b->cmds[b->ccnt].first = b->cur_first;
    b->cmds[b->ccnt].argc = b->acnt - b->cur_first;
    b->cmds[b->ccnt].cb = cb;
    b->cmds[b->ccnt].opaque = opaque;
    b->ccnt++;
}

static int is_missing_function(const redisReply *r) {
    return r->type == REDIS_REPLY_ERROR &&
           (strstr(r->str, "Function not found") || strstr(r->str, "NOSCRIPT"));
}

/* One Redis: the connection failed; errstr says how. */
static int conn_failed(td_store_t *st, char *errstr, size_t errstr_size) {
    snprintf(errstr, errstr_size, "redis %s:%d: %s", st->host, st->port,
             st->c->errstr[0] ? st->c->errstr : "connection lost");
    drop(st);
    return TD_ERR;
}

/* Writes "<c><n>\r\n" at p; returns the end. */
static char *resp_len(char *p, char c, size_t n) {
    *p++ = c;
    p += td_fmt_i64(p, (int64_t)n);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Appends commands [from, to) of b to c in the Redis protocol, as
 * redisAppendCommandArgv would, in one piece: hiredis formats each
 * argument's header with sdscatfmt, which cost trustd more than building
 * the commands. */
static int resp_cmds(td_rbatch_t *b, size_t from, size_t to, redisContext *c) {
    size_t need = 0;
    char *p;

    if (from == to) return REDIS_OK;
    for (size_t i = from; i < to; i++) {
        const struct rcmd *cmd = &b->cmds[i];
        need += 2 * TD_FMT_I64_MAX;
        for (size_t j = 0; j < cmd->argc; j++)
            need += b->args[cmd->first + j].len + 2 * TD_FMT_I64_MAX;
    }
    grow((void **)&b->resp, &b->resp_cap, need, 1);
    p = b->resp;
    for (size_t i = from; i < to; i++) {
        const struct rcmd *cmd = &b->cmds[i];
        p = resp_len(p, '*', cmd->argc);
        for (size_t j = 0; j < cmd->argc; j++) {
            const struct rarg *a = &b->args[cmd->first + j];
            p = resp_len(p, '$', a->len);
            memcpy(p, b->buf + a->off, a->len);
            p += a->len;
            *p++ = '\r';
            *p++ = '\n';
        }
    }
    return redisAppendFormattedCommand(c, b->resp, (size_t)(p - b->resp));
}

/* One Redis: appends commands [b->sent, to) and writes them out, without
 * reading replies (Redis buffers its replies, so it never waits for us). */
static int send_cmds(td_store_t *st,
                     td_rbatch_t *b,
                     size_t to,
                     char *errstr,
                     size_t errstr_size) {
    int done = 0;

    if (resp_cmds(b, b->sent, to, st->c) != REDIS_OK)
        return conn_failed(st, errstr, errstr_size);
    b->sent = to;
    while (!done) {
        if (redisBufferWrite(st->c, &done) != REDIS_OK)
            return conn_failed(st, errstr, errstr_size);
    }
    return TD_OK;
}

/* One Redis: reads the replies of commands [b->done, to) and runs their
 * callbacks. On an error the replies of every sent command are drained so
 * the connection stays usable. */
static int recv_replies(td_store_t *st,
                        td_rbatch_t *b,
                        size_t to,
                        char *errstr,
                        size_t errstr_size) {
    for (; b->done < to; b->done++) {
        redisReply *r = NULL;
        struct rcmd *c = &b->cmds[b->done];
        int rc = TD_OK;
        if (redisGetReply(st->c, (void **)&r) != REDIS_OK || !r)
            return conn_failed(st, errstr, errstr_size);
        st->stats.commands++;
        if (is_missing_function(r)) {
            snprintf(errstr, errstr_size,
                     "redis lost the trustd functions (restarted without "
                     "AOF?): %s",
                     r->str);
            st->lib_loaded = 0;
            st->stats.errors++;
            rc = TD_ERR;
        } else {
            if (r->type == REDIS_REPLY_ERROR) st->stats.errors++;
            if (c->cb) rc = c->cb(c->opaque, r, errstr, errstr_size);
        }
        freeReplyObject(r);
        if (rc != TD_OK) {
            for (b->done++; b->done < b->sent; b->done++) {
                if (redisGetReply(st->c, (void **)&r) != REDIS_OK) {
                    drop(st);
                    break;
                }
                freeReplyObject(r);
            }
            return TD_ERR;
        }
    }
    return TD_OK;
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
    if (st->cluster) {
        if (!final) return TD_OK;
        return cl_exec(st, b, errstr, errstr_size);
    }
    if (!final && b->ccnt - b->sent < PIPELINE_CHUNK) return TD_OK;
    /* Keep one chunk queued at Redis while reading the one before it, so
     * Redis works while trustd reads replies and builds commands. */
    while (b->sent < b->ccnt) {
        size_t prev = b->sent, before = b->done;
        size_t to = b->sent + PIPELINE_CHUNK;
        if (to > b->ccnt) to = b->ccnt;
        if (send_cmds(st, b, to, errstr, errstr_size) != TD_OK ||
            recv_replies(st, b, prev, errstr, errstr_size) != TD_OK)
            return TD_ERR;
        st->stats.roundtrips += b->done > before;
        if (!final && b->ccnt - b->sent < PIPELINE_CHUNK) return TD_OK;
    }
    if (final) {
        size_t before = b->done;
        if (recv_replies(st, b, b->sent, errstr, errstr_size) != TD_OK)
            return TD_ERR;
        st->stats.roundtrips += b->done > before;
        st->healthy = 1;
    }
    return TD_OK;
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

/* Adds the arguments of a hiredis-formatted command ("*N\r\n$L\r\n...") to
 * b as one command. */
static int add_formatted(td_rbatch_t *b, const char *cmd, size_t len) {
    const char *p = cmd, *end = cmd + len;
    long n;
    char *e;

    if (len < 4 || *p != '*') return TD_ERR;
    n = strtol(p + 1, &e, 10);
    if (n <= 0 || e + 2 > end || e[0] != '\r') return TD_ERR;
    p = e + 2;
    td_rbatch_begin(b);
    for (long i = 0; i < n; i++) {
        long alen;
        if (p >= end || *p != '$') return TD_ERR;
        alen = strtol(p + 1, &e, 10);
        if (alen < 0 || e + 2 > end ||
            (size_t)(end - (e + 2)) < (size_t)alen + 2)
            return TD_ERR;
        p = e + 2;
        td_rbatch_arg(b, p, (size_t)alen);
        p += alen + 2;
    }
    td_rbatch_end(b, NULL, NULL);
    return TD_OK;
}

int td_store_vappend(td_store_t *st, const char *fmt, va_list ap) {
    char *cmd = NULL;
    int len, rc;

    if (!st->qb && !(st->qb = td_rbatch_new())) return TD_ERR;
    if (st->qhead > 0 && st->qhead == td_rbatch_cnt(st->qb)) queue_clear(st);
    len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0) return TD_ERR;
    rc = add_formatted(st->qb, cmd, (size_t)len);
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

static int cl_collect(td_store_t *st,
                      td_rbatch_t *b,
                      size_t start,
                      size_t end,
                      redisReply **out,
                      char *errstr,
                      size_t errstr_size);

/* One Redis: sends b's commands [start, end) pipelined and stores their
 * replies in out. */
static int sn_collect(td_store_t *st,
                      td_rbatch_t *b,
                      size_t start,
                      size_t end,
                      redisReply **out,
                      char *errstr,
                      size_t errstr_size) {
    if (resp_cmds(b, start, end, st->c) != REDIS_OK) {
        snprintf(errstr, errstr_size, "redis: %s", st->c->errstr);
        drop(st);
        return TD_ERR;
    }
    for (size_t i = start; i < end; i++) {
        if (redisGetReply(st->c, (void **)&out[i - start]) != REDIS_OK ||
            !out[i - start]) {
            snprintf(errstr, errstr_size, "redis %s:%d: %s", st->host, st->port,
                     st->c->errstr[0] ? st->c->errstr : "connection lost");
            for (size_t k = start; k < i; k++) {
                freeReplyObject(out[k - start]);
                out[k - start] = NULL;
            }
            drop(st);
            return TD_ERR;
        }
        st->stats.commands++;
    }
    st->stats.roundtrips++;
    st->healthy = 1;
    return TD_OK;
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
        int rc = TD_OK;
        grow((void **)&st->qr, &st->qrcap, cnt, sizeof(*st->qr));
        memset(st->qr + st->qsent, 0, (cnt - st->qsent) * sizeof(*st->qr));
        if (!st->cluster) rc = td_store_connect(st, st->qerr, sizeof(st->qerr));
        for (size_t s = st->qsent; s < cnt && rc == TD_OK;
             s += PIPELINE_CHUNK) {
            size_t e = s + PIPELINE_CHUNK < cnt ? s + PIPELINE_CHUNK : cnt;
            rc = st->cluster ? cl_collect(st, q, s, e, st->qr + s, st->qerr,
                                          sizeof(st->qerr))
                             : sn_collect(st, q, s, e, st->qr + s, st->qerr,
                                          sizeof(st->qerr));
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
        drop(st);
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

/* ---- cluster ---- */

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Fills b's argv scratch with command i; returns its argc. */
static int cmd_argv(td_rbatch_t *b, size_t i) {
    struct rcmd *c = &b->cmds[i];
    grow((void **)&b->argv, &b->argv_cap, c->argc, sizeof(char *));
    grow((void **)&b->argvlen, &b->argvlen_cap, c->argc, sizeof(size_t));
    for (size_t j = 0; j < c->argc; j++) {
        b->argv[j] = b->buf + b->args[c->first + j].off;
        b->argvlen[j] = b->args[c->first + j].len;
    }
    return (int)c->argc;
}

/* Makes the per-node arrays as long as the map's node table. */
static void cl_nodes_grow(td_store_t *st) {
    int n = td_cluster_node_cnt(st->map);
    if (n <= st->sncap) return;
    size_t cap = (size_t)st->sncap, ucap = (size_t)st->sncap;
    size_t mcap = (size_t)st->sncap;
    grow((void **)&st->sn, &cap, (size_t)n, sizeof(*st->sn));
    grow((void **)&st->used, &ucap, (size_t)n, sizeof(*st->used));
    grow((void **)&st->masters, &mcap, (size_t)n, sizeof(*st->masters));
    memset(st->sn + st->sncap, 0, (cap - (size_t)st->sncap) * sizeof(*st->sn));
    st->sncap = (int)cap;
}

/* After every change of the map. */
static void cl_masters_update(td_store_t *st) {
    cl_nodes_grow(st);
    st->nmasters = td_cluster_masters(st->map, st->masters, st->sncap);
}

static const char *node_host(const td_store_t *st, int i) {
    return td_cluster_node_get(st->map, i)->host;
}

static int node_port(const td_store_t *st, int i) {
    return td_cluster_node_get(st->map, i)->port;
}

/* Drops node i's connection after an I/O error: the map may be stale. */
static void node_drop(td_store_t *st, int i) {
    snode_t *sn = &st->sn[i];
    if (sn->c) redisFree(sn->c);
    sn->c = NULL;
    sn->lib_loaded = 0;
    /* Writes on the dead connection: the next connection's library load
     * comes after them in the node's stream, so its WAIT covers them. */
    sn->dirty = 0;
    st->map_ok = 0;
    st->healthy = 0;
    st->stats.errors++;
}

/* A connection to node i (no library: it may be a replica). */
static int node_conn(td_store_t *st, int i, char *errstr, size_t errstr_size) {
    snode_t *sn = &st->sn[i];
    if (sn->c && sn->c->err) node_drop(st, i);
    if (sn->c) return TD_OK;
    sn->c =
        open_conn(st, node_host(st, i), node_port(st, i), errstr, errstr_size);
    if (!sn->c) {
        node_drop(st, i);
        return TD_ERR;
    }
    sn->lib_loaded = 0;
    return TD_OK;
}

/* Node i ready to take trustd's commands: connected, library loaded. */
static int node_ready(td_store_t *st, int i, char *errstr, size_t errstr_size) {
    snode_t *sn = &st->sn[i];
    if (node_conn(st, i, errstr, errstr_size) != TD_OK) return TD_ERR;
    if (st->readonly || sn->lib_loaded) return TD_OK;
    if (load_library(st, sn->c, errstr, errstr_size) != TD_OK ||
        probe_module(st, sn->c, errstr, errstr_size) != TD_OK) {
        /* Also what a node that stopped being a master says (READONLY). */
        node_drop(st, i);
        return TD_ERR;
    }
    sn->lib_loaded = 1;
    sn->dirty = 1; /* the load is a write: the next round WAITs for it */
    return TD_OK;
}

/* Creates the map with the seeds as its first nodes. */
static int cl_init(td_store_t *st, char *errstr, size_t errstr_size) {
    if (st->map) return TD_OK;
    if (!(st->map = td_cluster_new())) goto oom;
    for (int i = 0; i < st->nseeds; i++) {
        if (st->seeds[i].port < 0) continue;
        if (td_cluster_node(st->map, st->seeds[i].host,
                            strlen(st->seeds[i].host), st->seeds[i].port) < 0)
            goto oom;
    }
    if (td_cluster_node_cnt(st->map) == 0) {
        snprintf(errstr, errstr_size, "redis: no host:port seed");
        return TD_ERR;
    }
    cl_nodes_grow(st);
    return TD_OK;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return TD_ERR;
}

/* Reads CLUSTER SLOTS from the first node that answers: connected nodes
 * first, then every node ever seen (seeds included). */
static int cl_refresh(td_store_t *st, char *errstr, size_t errstr_size) {
    char last[512] = "no node to ask";

    if (cl_init(st, errstr, errstr_size) != TD_OK) return TD_ERR;
    for (int pass = 0; pass < 2; pass++) {
        int n = td_cluster_node_cnt(st->map);
        for (int i = 0; i < n; i++) {
            redisReply *r;
            char *was;
            int rc;
            if ((pass == 0) != (st->sn[i].c != NULL)) continue;
            if (node_conn(st, i, last, sizeof(last)) != TD_OK) continue;
            r = redisCommand(st->sn[i].c, "CLUSTER SLOTS");
            if (!r) {
                snprintf(last, sizeof(last), "redis %s:%d: %s",
                         node_host(st, i), node_port(st, i),
                         st->sn[i].c->errstr);
                node_drop(st, i);
                continue;
            }
            /* A node that becomes a master loads the library again. */
            was = malloc((size_t)n);
            if (!was) {
                freeReplyObject(r);
                snprintf(errstr, errstr_size, "out of memory");
                return TD_ERR;
            }
            for (int j = 0; j < n; j++)
                was[j] = (char)td_cluster_node_get(st->map, j)->master;
            rc = td_cluster_load_slots(st->map, r, node_host(st, i), last,
                                       sizeof(last));
            freeReplyObject(r);
            if (rc == TD_OK) {
                cl_masters_update(st);
                for (int j = 0; j < n; j++) {
                    if (!was[j] && td_cluster_node_get(st->map, j)->master)
                        st->sn[j].lib_loaded = 0;
                }
                free(was);
                st->map_ok = 1;
                return TD_OK;
            }
            free(was);
        }
    }
    snprintf(errstr, errstr_size,
             "redis cluster: no node gave a slot map "
             "(%s)",
             last);
    st->healthy = 0;
    return TD_ERR;
}

static int cl_connect(td_store_t *st, char *errstr, size_t errstr_size) {
    int rc = TD_OK;

    if (!st->map_ok && cl_refresh(st, errstr, errstr_size) != TD_OK)
        return TD_ERR;
    for (int i = 0; i < st->nmasters; i++) {
        if (node_ready(st, st->masters[i], errstr, errstr_size) != TD_OK)
            rc = TD_ERR;
    }
    st->healthy = rc == TD_OK;
    return rc;
}

/* Where command idx goes: fills cs (node, slot, write, scan_ord). */
static int cl_route(td_store_t *st,
                    td_rbatch_t *b,
                    size_t idx,
                    cstate_t *cs,
                    char *errstr,
                    size_t errstr_size) {
    int argc = cmd_argv(b, idx);
    int key = td_cluster_cmd_key(argc, b->argv, b->argvlen, &cs->write);
    int n = st->nmasters;

    if (st->readonly) cs->write = 0;
    cs->scan_ord = -1;
    cs->slot = -1;
    if (key >= 0) {
        cs->slot = td_cluster_keyslot(b->argv[key], b->argvlen[key]);
        cs->node = td_cluster_slot_node(st->map, cs->slot);
        if (cs->node < 0) {
            snprintf(errstr, errstr_size,
                     "redis cluster: slot %d has no master", cs->slot);
            st->map_ok = 0;
            return TD_ERR;
        }
        return TD_OK;
    }
    if (n == 0) {
        snprintf(errstr, errstr_size, "redis cluster: no master");
        st->map_ok = 0;
        return TD_ERR;
    }
    cs->node = st->masters[0];
    if (argc >= 2 && b->argvlen[0] == 4 &&
        !strncasecmp(b->argv[0], "SCAN", 4)) {
        /* "<master>-<cursor>", or "0" to start at the first master. */
        char cur[64], *e;
        long ord = 0;
        size_t len = b->argvlen[1] < sizeof(cur) ? b->argvlen[1] : 0;
        memcpy(cur, b->argv[1], len);
        cur[len] = '\0';
        if (strcmp(cur, "0")) {
            ord = strtol(cur, &e, 10);
            if (e == cur || *e != '-' || ord < 0 || ord >= n) {
                snprintf(errstr, errstr_size,
                         "redis cluster: SCAN cursor '%s' is not one this "
                         "store returned, or the masters changed: scan "
                         "again",
                         cur);
                return TD_ERR;
            }
        }
        cs->scan_ord = (int)ord;
        cs->node = st->masters[ord];
    }
    return TD_OK;
}

/* Appends command idx to c (a cluster SCAN with its node's own cursor). */
static int
cl_append(td_rbatch_t *b, size_t idx, const cstate_t *cs, redisContext *c) {
    int argc;
    const char *dash;

    if (cs->scan_ord < 0) return resp_cmds(b, idx, idx + 1, c);
    argc = cmd_argv(b, idx);
    dash = memchr(b->argv[1], '-', b->argvlen[1]);
    if (dash) {
        b->argvlen[1] -= (size_t)(dash + 1 - b->argv[1]);
        b->argv[1] = dash + 1;
    }
    return redisAppendCommandArgv(c, argc, b->argv, b->argvlen);
}

/* Writes c's output buffer out completely. */
static int flush_out(redisContext *c) {
    int done = 0;
    do {
        if (redisBufferWrite(c, &done) != REDIS_OK) return REDIS_ERR;
    } while (!done);
    return REDIS_OK;
}

/* Checks a WAIT reply from node i; clears its dirty flag when enough
 * replicas acknowledged. */
static int wait_ok(td_store_t *st,
                   int i,
                   const redisReply *r,
                   char *errstr,
                   size_t errstr_size) {
    if (r->type == REDIS_REPLY_INTEGER && r->integer >= WAIT_REPLICAS) {
        st->sn[i].dirty = 0;
        return TD_OK;
    }
    if (r->type == REDIS_REPLY_INTEGER)
        snprintf(errstr, errstr_size,
                 "redis %s:%d: WAIT: %lld of %d replicas acknowledged the "
                 "writes within %d ms (a master needs a replica)",
                 node_host(st, i), node_port(st, i), r->integer, WAIT_REPLICAS,
                 st->wait_ms);
    else
        snprintf(errstr, errstr_size, "redis %s:%d: WAIT: %s", node_host(st, i),
                 node_port(st, i),
                 r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
    st->stats.errors++;
    return TD_ERR;
}

/* WAIT on node i alone (after resent writes). */
static int wait_sync(td_store_t *st, int i, char *errstr, size_t errstr_size) {
    redisReply *r =
        redisCommand(st->sn[i].c, "WAIT %d %d", WAIT_REPLICAS, st->wait_ms);
    int rc;
    if (!r) {
        snprintf(errstr, errstr_size, "redis %s:%d: %s", node_host(st, i),
                 node_port(st, i), st->sn[i].c->errstr);
        node_drop(st, i);
        return TD_ERR;
    }
    rc = wait_ok(st, i, r, errstr, errstr_size);
    freeReplyObject(r);
    return rc;
}

/*
 * Turns a redirection or transient cluster error in cs->r into the
 * command's real reply by resending it where the cluster says, as often as
 * REDIRECT_MAX and the round's *budget_ms (backoff time) allow. A plain
 * error reply is left for the caller.
 */
static int cl_settle(td_store_t *st,
                     td_rbatch_t *b,
                     size_t idx,
                     cstate_t *cs,
                     int *budget_ms,
                     char *errstr,
                     size_t errstr_size) {
    int backoff = 10;

    for (int attempt = 0;; attempt++) {
        redisReply *r = cs->r;
        char host[TD_CLUSTER_HOST_MAX];
        int slot = -1, port = 0, node = cs->node, asking = 0;
        redisContext *c;
        td_cluster_reply_t kind;

        if (r->type != REDIS_REPLY_ERROR) return TD_OK;
        kind = td_cluster_classify(r->str, r->len, &slot, host, sizeof(host),
                                   &port);
        if (kind == TD_CLUSTER_REPLY_OK) return TD_OK;
        st->stats.errors++;
        if (kind == TD_CLUSTER_BAD_REDIRECT || attempt >= REDIRECT_MAX) {
            snprintf(errstr, errstr_size, "redis %s:%d: %s%s",
                     node_host(st, cs->node), node_port(st, cs->node), r->str,
                     attempt >= REDIRECT_MAX ? " (too many redirections)" : "");
            st->map_ok = 0;
            return TD_ERR;
        }
        if (kind == TD_CLUSTER_MOVED || kind == TD_CLUSTER_ASK) {
            /* ":port" means the host of the node that answered. */
            const char *h = host[0] ? host : node_host(st, cs->node);
            node = td_cluster_node(st->map, h, strlen(h), port);
            if (node < 0) {
                snprintf(errstr, errstr_size, "redis cluster: %s", r->str);
                return TD_ERR;
            }
            cl_nodes_grow(st);
            if (kind == TD_CLUSTER_MOVED) {
                td_cluster_set_slot(st->map, slot, node);
                cl_masters_update(st);
                st->map_ok = 0; /* others moved too: refresh next round */
            } else {
                asking = 1;
            }
        } else {
            if (*budget_ms <= 0) {
                snprintf(errstr, errstr_size, "redis %s:%d: %s",
                         node_host(st, cs->node), node_port(st, cs->node),
                         r->str);
                st->map_ok = 0;
                return TD_ERR;
            }
            if (backoff > *budget_ms) backoff = *budget_ms;
            nap_ms(backoff);
            *budget_ms -= backoff;
            backoff *= 2;
            if (kind == TD_CLUSTER_CLUSTERDOWN &&
                cl_refresh(st, errstr, errstr_size) != TD_OK)
                return TD_ERR;
            if (cs->slot >= 0) node = td_cluster_slot_node(st->map, cs->slot);
            if (node < 0) {
                snprintf(errstr, errstr_size, "redis cluster: %s", r->str);
                return TD_ERR;
            }
        }
        freeReplyObject(r);
        cs->r = NULL;
        if (node_ready(st, node, errstr, errstr_size) != TD_OK) return TD_ERR;
        c = st->sn[node].c;
        if ((asking && redisAppendCommand(c, "ASKING") != REDIS_OK) ||
            cl_append(b, idx, cs, c) != REDIS_OK)
            goto io;
        if (asking) {
            redisReply *ok = NULL;
            if (redisGetReply(c, (void **)&ok) != REDIS_OK || !ok) goto io;
            freeReplyObject(ok);
        }
        if (redisGetReply(c, (void **)&cs->r) != REDIS_OK || !cs->r) goto io;
        st->stats.roundtrips++;
        cs->node = node;
        if (cs->write) {
            st->sn[node].dirty = 1;
            st->sn[node].resent = 1;
        }
        continue;
    io:
        cs->r = NULL;
        snprintf(errstr, errstr_size, "redis %s:%d: %s", node_host(st, node),
                 node_port(st, node),
                 c->errstr[0] ? c->errstr : "connection lost");
        node_drop(st, node);
        return TD_ERR;
    }
}

/* A SCAN reply's cursor for the caller: "<master>-<cursor>", the next
 * master's "<master+1>-0", or "0" after the last one. */
static void scan_cursor(td_store_t *st, const cstate_t *cs, redisReply *r) {
    redisReply *cur;
    char buf[64], *s;
    int n;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    cur = r->element[0];
    n = st->nmasters;
    if (cur->len == 1 && cur->str[0] == '0') {
        if (cs->scan_ord + 1 < n)
            snprintf(buf, sizeof(buf), "%d-0", cs->scan_ord + 1);
        else
            snprintf(buf, sizeof(buf), "0");
    } else {
        snprintf(buf, sizeof(buf), "%d-%.*s", cs->scan_ord,
                 (int)(cur->len < 40 ? cur->len : 40), cur->str);
    }
    /* hiredis frees reply strings with free(). */
    if (!(s = strdup(buf))) return;
    free(cur->str);
    cur->str = s;
    cur->len = strlen(s);
}

/*
 * One cluster round over b's commands [start, end) (see the top of this
 * file). On TD_OK every st->cs[k].r holds command start+k's reply; on TD_ERR
 * none is held and errstr says why.
 */
static int cl_round(td_store_t *st,
                    td_rbatch_t *b,
                    size_t start,
                    size_t end,
                    char *errstr,
                    size_t errstr_size) {
    size_t n = end - start;
    int budget = TRANSIENT_MAX_MS;
    int rc = TD_OK;
    char e2[512];

    if (!st->map_ok && cl_refresh(st, errstr, errstr_size) != TD_OK)
        return TD_ERR;
    grow((void **)&st->cs, &st->cscap, n, sizeof(*st->cs));
    for (size_t k = 0; k < n; k++)
        st->cs[k].r = NULL;
    st->nused = 0;
    for (size_t k = 0; k < n; k++) {
        cstate_t *cs = &st->cs[k];
        snode_t *sn;
        cs->next = -1;
        if (cl_route(st, b, start + k, cs, errstr, errstr_size) != TD_OK) {
            rc = TD_ERR;
            goto out;
        }
        sn = &st->sn[cs->node];
        if (!sn->used) {
            if (node_ready(st, cs->node, errstr, errstr_size) != TD_OK) {
                rc = TD_ERR;
                goto out;
            }
            sn->used = 1;
            sn->failed = sn->wait_sent = 0;
            sn->head = sn->tail = -1;
            st->used[st->nused++] = cs->node;
        }
        if (sn->tail >= 0)
            st->cs[sn->tail].next = (int)k;
        else
            sn->head = (int)k;
        sn->tail = (int)k;
    }
    for (size_t k = 0; k < n; k++) {
        cstate_t *cs = &st->cs[k];
        if (cl_append(b, start + k, cs, st->sn[cs->node].c) != REDIS_OK) {
            snprintf(errstr, errstr_size, "redis: out of memory");
            rc = TD_ERR;
        }
        if (cs->write) st->sn[cs->node].dirty = 1;
    }
    if (rc != TD_OK) {
        for (int u = 0; u < st->nused; u++)
            node_drop(st, st->used[u]); /* half-written pipelines */
        goto out;
    }
    for (int u = 0; u < st->nused; u++) {
        snode_t *sn = &st->sn[st->used[u]];
        if (st->readonly || !sn->dirty) continue;
        if (redisAppendCommand(sn->c, "WAIT %d %d", WAIT_REPLICAS,
                               st->wait_ms) != REDIS_OK) {
            snprintf(errstr, errstr_size, "redis: out of memory");
            for (int v = 0; v < st->nused; v++)
                node_drop(st, st->used[v]);
            rc = TD_ERR;
            goto out;
        }
        sn->wait_sent = 1;
    }
    /* Every node gets its pipeline before we block reading any. */
    for (int u = 0; u < st->nused; u++) {
        int i = st->used[u];
        if (flush_out(st->sn[i].c) != REDIS_OK) {
            if (rc == TD_OK)
                snprintf(errstr, errstr_size, "redis %s:%d: %s",
                         node_host(st, i), node_port(st, i),
                         st->sn[i].c->errstr);
            st->sn[i].failed = 1;
            rc = TD_ERR;
        }
    }
    for (int u = 0; u < st->nused; u++) {
        int i = st->used[u];
        snode_t *sn = &st->sn[i];
        redisReply *w = NULL;
        if (sn->failed) continue;
        for (int k = sn->head; k >= 0; k = st->cs[k].next) {
            if (redisGetReply(sn->c, (void **)&st->cs[k].r) != REDIS_OK ||
                !st->cs[k].r) {
                st->cs[k].r = NULL;
                sn->failed = 1;
                break;
            }
            st->stats.commands++;
        }
        if (!sn->failed && sn->wait_sent) {
            if (redisGetReply(sn->c, (void **)&w) != REDIS_OK || !w) {
                sn->failed = 1;
            } else {
                if (wait_ok(st, i, w, e2, sizeof(e2)) != TD_OK && rc == TD_OK) {
                    snprintf(errstr, errstr_size, "%s", e2);
                    rc = TD_ERR;
                }
                freeReplyObject(w);
            }
        }
        if (sn->failed) {
            if (rc == TD_OK)
                snprintf(errstr, errstr_size, "redis %s:%d: %s",
                         node_host(st, i), node_port(st, i),
                         sn->c->errstr[0] ? sn->c->errstr : "connection lost");
            rc = TD_ERR;
        } else {
            st->stats.roundtrips++;
        }
    }
    for (int u = 0; u < st->nused; u++) {
        if (st->sn[st->used[u]].failed) node_drop(st, st->used[u]);
    }
    if (rc != TD_OK) goto out;

    for (size_t k = 0; k < n && rc == TD_OK; k++)
        rc = cl_settle(st, b, start + k, &st->cs[k], &budget, errstr,
                       errstr_size);
    for (int i = 0; i < st->sncap; i++) {
        if (st->sn[i].resent && rc == TD_OK && !st->readonly && st->sn[i].dirty)
            rc = wait_sync(st, i, errstr, errstr_size);
        st->sn[i].resent = 0;
    }
    for (size_t k = 0; k < n && rc == TD_OK; k++) {
        if (st->cs[k].scan_ord >= 0) scan_cursor(st, &st->cs[k], st->cs[k].r);
    }
out:
    for (int u = 0; u < st->nused; u++)
        st->sn[st->used[u]].used = 0;
    st->nused = 0;
    if (rc != TD_OK) {
        for (size_t k = 0; k < n; k++) {
            if (st->cs[k].r) freeReplyObject(st->cs[k].r);
            st->cs[k].r = NULL;
        }
        st->healthy = 0;
    }
    return rc;
}

static int cl_collect(td_store_t *st,
                      td_rbatch_t *b,
                      size_t start,
                      size_t end,
                      redisReply **out,
                      char *errstr,
                      size_t errstr_size) {
    if (cl_round(st, b, start, end, errstr, errstr_size) != TD_OK)
        return TD_ERR;
    for (size_t k = 0; k < end - start; k++) {
        out[k] = st->cs[k].r;
        st->cs[k].r = NULL;
    }
    st->healthy = 1;
    return TD_OK;
}

static int
cl_exec(td_store_t *st, td_rbatch_t *b, char *errstr, size_t errstr_size) {
    for (size_t start = 0; start < b->ccnt; start += PIPELINE_CHUNK) {
        size_t end =
            start + PIPELINE_CHUNK < b->ccnt ? start + PIPELINE_CHUNK : b->ccnt;
        int rc = TD_OK;
        if (cl_round(st, b, start, end, errstr, errstr_size) != TD_OK)
            return TD_ERR;
        for (size_t k = 0; k < end - start; k++) {
            redisReply *r = st->cs[k].r;
            struct rcmd *c = &b->cmds[start + k];
            st->cs[k].r = NULL;
            if (rc == TD_OK && is_missing_function(r)) {
                snprintf(errstr, errstr_size,
                         "redis %s:%d lost the trustd functions: %s",
                         node_host(st, st->cs[k].node),
                         node_port(st, st->cs[k].node), r->str);
                st->sn[st->cs[k].node].lib_loaded = 0;
                st->stats.errors++;
                rc = TD_ERR;
            } else if (rc == TD_OK) {
                if (r->type == REDIS_REPLY_ERROR) st->stats.errors++;
                rc = c->cb ? c->cb(c->opaque, r, errstr, errstr_size) : TD_OK;
            }
            freeReplyObject(r);
        }
        if (rc != TD_OK) return TD_ERR;
    }
    st->healthy = 1;
    return TD_OK;
}
