/*
 * store.c - Redis connections, the trustd function library and pipelined
 * command batches (see store.h for the key layout).
 *
 * The function library is built once per process from the signal catalog
 * (td_signals_lua) plus the fixed functions below, and named after a hash of
 * its text: "trustd_<hash>" with functions "td_apply_<hash>" and so on. Two
 * builds with different catalogs therefore load side by side instead of
 * replacing each other during a rolling upgrade. Functions are persisted by
 * Redis (RDB/AOF) and replicated; if Redis comes back without them (no AOF),
 * FCALL fails with "Function not found", the batch fails, and the next
 * td_store_connect() loads the library again before the retry.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "signals.h"
#include "store.h"

#define LIB_MAX        (64 * 1024)
#define PIPELINE_CHUNK 2048

struct td_store_s {
    char *host; /* or unix socket path when port < 0 */
    int port;
    char *user;
    char *password;
    int connect_timeout_ms;
    int command_timeout_ms;
    redisContext *c;
    int healthy;
    int lib_loaded;
    char *lib;      /* library source */
    char hash[17];  /* hex of the library hash */
    char fn[4][48]; /* function names */
    td_store_stats_t stats;
};

struct td_rbatch_s {
    char *buf;
    size_t len, cap;
    struct rarg {
        size_t off, len;
    } *args;
    size_t acnt, acap;
    struct rcmd {
        size_t first, argc;
        td_rbatch_cb_t cb;
        void *opaque;
    } *cmds;
    size_t ccnt, ccap;
    size_t cur_first; /* first arg of the command being built */
    const char **argv; /* scratch for one command */
    size_t *argvlen;
    size_t argv_cap, argvlen_cap;
};

/* Fixed functions of the library; td_apply comes from the catalog. */
static const char lib_fixed[] =
    /* Partition records: claim bumps the owner epoch (fencing earlier
     * owners) and returns the stored offsets; set writes them only for the
     * current epoch. */
    "local function td_part(keys, args)\n"
    "  if args[1] == 'claim' then\n"
    "    local e = redis.call('HINCRBY', keys[1], 'epoch', 1)\n"
    "    local r = redis.call('HMGET', keys[1], 'committed', 'intent')\n"
    "    return {tostring(e), r[1] or '', r[2] or ''}\n"
    "  end\n"
    "  local e = redis.call('HGET', keys[1], 'epoch')\n"
    "  if e ~= args[2] then\n"
    "    return redis.error_reply('TDFENCED ' .. keys[1] .. ' is owned by '\n"
    "      .. 'epoch ' .. tostring(e) .. ', not ' .. args[2])\n"
    "  end\n"
    "  redis.call('HSET', keys[1], 'committed', args[3], 'intent', args[4])\n"
    "  return 'OK'\n"
    "end\n"
    /* A new score: reserve the next version and write the fields. */
    "local function td_score(keys, args)\n"
    "  local v = redis.call('HINCRBY', keys[1], 'version', 1)\n"
    "  redis.call('HSET', keys[1], unpack(args))\n"
    "  return v\n"
    "end\n"
    /* Marks a version as delivered to Kafka (never moves backwards). */
    "local function td_published(keys, args)\n"
    "  local pv = tonumber(redis.call('HGET', keys[1], 'pub_version') or "
    "'0')\n"
    "  if tonumber(args[1]) <= pv then return 0 end\n"
    "  redis.call('HSET', keys[1], 'pub_version', args[1], 'pub_score',\n"
    "    args[2], 'pub_tier', args[3], 'pub_ms', args[4])\n"
    "  return 1\n"
    "end\n";

static const char *fn_bases[4] = {"apply", "part", "score", "published"};

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

    if (!body)
        goto oom;
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
    for (int i = 0; i < 4; i++)
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
    for (int i = 0; i < 4; i++) {
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

td_store_t *td_store_new(const td_store_conf_t *conf, char *errstr,
                         size_t errstr_size) {
    td_store_t *st = calloc(1, sizeof(*st));
    const char *a = conf->addrs;
    const char *comma, *colon;

    if (!st) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    /* The first seed is the node; cluster routing uses the rest. */
    comma = strchr(a, ',');
    size_t alen = comma ? (size_t)(comma - a) : strlen(a);
    if (alen == 0) {
        snprintf(errstr, errstr_size, "redis: empty address");
        goto err;
    }
    if (a[0] == '/') {
        st->host = strndup(a, alen);
        st->port = -1;
    } else {
        colon = memchr(a, ':', alen);
        char *end;
        long port;
        if (!colon) {
            snprintf(errstr, errstr_size,
                     "redis: '%.*s' is not host:port or a socket path",
                     (int)alen, a);
            goto err;
        }
        port = strtol(colon + 1, &end, 10);
        if (end != a + alen || port <= 0 || port > 65535) {
            snprintf(errstr, errstr_size, "redis: bad port in '%.*s'",
                     (int)alen, a);
            goto err;
        }
        st->host = strndup(a, (size_t)(colon - a));
        st->port = (int)port;
    }
    st->user = strdup(conf->user ? conf->user : "");
    st->password = strdup(conf->password ? conf->password : "");
    st->connect_timeout_ms = conf->connect_timeout_ms;
    st->command_timeout_ms = conf->command_timeout_ms;
    if (build_library(st, errstr, errstr_size) != TD_OK)
        goto err;
    return st;
err:
    td_store_destroy(st);
    return NULL;
}

void td_store_destroy(td_store_t *st) {
    if (!st)
        return;
    if (st->c)
        redisFree(st->c);
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
    if (st->c)
        redisFree(st->c);
    st->c = NULL;
    st->healthy = 0;
    st->stats.errors++;
}

static int load_library(td_store_t *st, char *errstr, size_t errstr_size) {
    redisReply *r = redisCommand(st->c, "FUNCTION LOAD %s", st->lib);

    if (!r) {
        snprintf(errstr, errstr_size, "redis: FUNCTION LOAD: %s",
                 st->c->errstr);
        return TD_ERR;
    }
    if (r->type == REDIS_REPLY_ERROR && !strstr(r->str, "already exists")) {
        snprintf(errstr, errstr_size, "redis: FUNCTION LOAD: %s", r->str);
        freeReplyObject(r);
        return TD_ERR;
    }
    freeReplyObject(r);
    st->lib_loaded = 1;
    return TD_OK;
}

int td_store_connect(td_store_t *st, char *errstr, size_t errstr_size) {
    redisReply *r;

    if (st->c && !st->c->err && st->lib_loaded)
        return TD_OK;
    if (!st->c || st->c->err) {
        if (st->c)
            redisFree(st->c);
        st->lib_loaded = 0;
        if (st->port < 0)
            st->c = redisConnectUnixWithTimeout(
                st->host, ms_tv(st->connect_timeout_ms));
        else
            st->c = redisConnectWithTimeout(st->host, st->port,
                                            ms_tv(st->connect_timeout_ms));
        if (!st->c || st->c->err) {
            snprintf(errstr, errstr_size, "redis %s:%d: %s", st->host,
                     st->port, st->c ? st->c->errstr : "out of memory");
            drop(st);
            return TD_ERR;
        }
        redisSetTimeout(st->c, ms_tv(st->command_timeout_ms));
        if (st->port >= 0) /* TCP only: it fails on unix sockets */
            redisEnableKeepAlive(st->c);
        if (st->password[0]) {
            if (st->user[0])
                r = redisCommand(st->c, "AUTH %s %s", st->user, st->password);
            else
                r = redisCommand(st->c, "AUTH %s", st->password);
            if (!r || r->type == REDIS_REPLY_ERROR) {
                snprintf(errstr, errstr_size, "redis AUTH: %s",
                         r ? r->str : st->c->errstr);
                if (r)
                    freeReplyObject(r);
                drop(st);
                return TD_ERR;
            }
            freeReplyObject(r);
        }
    }
    if (load_library(st, errstr, errstr_size) != TD_OK) {
        drop(st);
        return TD_ERR;
    }
    st->healthy = 1;
    return TD_OK;
}

int td_store_healthy(const td_store_t *st) {
    return st->healthy;
}

const td_store_stats_t *td_store_stats(const td_store_t *st) {
    return &st->stats;
}

const char *td_store_fn(const td_store_t *st, const char *base) {
    for (int i = 0; i < 4; i++) {
        if (!strcmp(fn_bases[i], base))
            return st->fn[i];
    }
    return "td_unknown";
}

td_rbatch_t *td_rbatch_new(void) {
    return calloc(1, sizeof(td_rbatch_t));
}

void td_rbatch_destroy(td_rbatch_t *b) {
    if (!b)
        return;
    free(b->buf);
    free(b->args);
    free(b->cmds);
    free(b->argv);
    free(b->argvlen);
    free(b);
}

void td_rbatch_reset(td_rbatch_t *b) {
    b->len = 0;
    b->acnt = 0;
    b->ccnt = 0;
}

size_t td_rbatch_cnt(const td_rbatch_t *b) {
    return b->ccnt;
}

/* Grows *p (elements of size sz) to hold at least n; aborts on OOM like
 * Redis' zmalloc: a worker that cannot allocate cannot make progress. */
static void grow(void **p, size_t *cap, size_t n, size_t sz) {
    if (n <= *cap)
        return;
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
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    td_rbatch_arg(b, tmp, (size_t)n);
}

void td_rbatch_dbl(td_rbatch_t *b, double v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    td_rbatch_arg(b, tmp, (size_t)n);
}

void td_rbatch_fmt(td_rbatch_t *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(tmp))
        n = sizeof(tmp) - 1;
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
           (strstr(r->str, "Function not found") ||
            strstr(r->str, "NOSCRIPT"));
}

int td_store_exec(td_store_t *st, td_rbatch_t *b, char *errstr,
                  size_t errstr_size) {
    size_t i, j;

    if (td_store_connect(st, errstr, errstr_size) != TD_OK)
        return TD_ERR;
    for (size_t start = 0; start < b->ccnt; start += PIPELINE_CHUNK) {
        size_t end = start + PIPELINE_CHUNK;
        if (end > b->ccnt)
            end = b->ccnt;
        for (i = start; i < end; i++) {
            struct rcmd *c = &b->cmds[i];
            grow((void **)&b->argv, &b->argv_cap, c->argc, sizeof(char *));
            grow((void **)&b->argvlen, &b->argvlen_cap, c->argc,
                 sizeof(size_t));
            for (j = 0; j < c->argc; j++) {
                b->argv[j] = b->buf + b->args[c->first + j].off;
                b->argvlen[j] = b->args[c->first + j].len;
            }
            if (redisAppendCommandArgv(st->c, (int)c->argc, b->argv,
                                       b->argvlen) != REDIS_OK) {
                snprintf(errstr, errstr_size, "redis: %s", st->c->errstr);
                drop(st);
                return TD_ERR;
            }
        }
        for (i = start; i < end; i++) {
            redisReply *r = NULL;
            int rc;
            if (redisGetReply(st->c, (void **)&r) != REDIS_OK || !r) {
                snprintf(errstr, errstr_size, "redis %s:%d: %s", st->host,
                         st->port, st->c->errstr[0] ? st->c->errstr
                                                    : "connection lost");
                drop(st);
                return TD_ERR;
            }
            st->stats.commands++;
            if (is_missing_function(r)) {
                snprintf(errstr, errstr_size,
                         "redis lost the trustd functions (restarted "
                         "without AOF?): %s",
                         r->str);
                freeReplyObject(r);
                st->lib_loaded = 0;
                st->stats.errors++;
                /* Drain the rest of the chunk so the context stays usable. */
                for (i = i + 1; i < end; i++) {
                    if (redisGetReply(st->c, (void **)&r) != REDIS_OK) {
                        drop(st);
                        break;
                    }
                    freeReplyObject(r);
                }
                return TD_ERR;
            }
            if (r->type == REDIS_REPLY_ERROR)
                st->stats.errors++;
            rc = b->cmds[i].cb
                     ? b->cmds[i].cb(b->cmds[i].opaque, r, errstr, errstr_size)
                     : TD_OK;
            freeReplyObject(r);
            if (rc != TD_OK) {
                for (i = i + 1; i < end; i++) {
                    if (redisGetReply(st->c, (void **)&r) != REDIS_OK) {
                        drop(st);
                        break;
                    }
                    freeReplyObject(r);
                }
                return TD_ERR;
            }
        }
        st->stats.roundtrips++;
    }
    st->healthy = 1;
    return TD_OK;
}

redisReply *td_store_vcmd(td_store_t *st, char *errstr, size_t errstr_size,
                          const char *fmt, va_list ap) {
    redisReply *r;

    if (td_store_connect(st, errstr, errstr_size) != TD_OK)
        return NULL;
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

redisReply *td_store_cmd(td_store_t *st, char *errstr, size_t errstr_size,
                         const char *fmt, ...) {
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = td_store_vcmd(st, errstr, errstr_size, fmt, ap);
    va_end(ap);
    return r;
}

static size_t mkey(char *buf, size_t size, const char *m, size_t mlen,
                   const char *suffix) {
    int n = snprintf(buf, size, "trust:{%.*s}:%s", (int)mlen, m, suffix);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

size_t td_key_signals(char *buf, size_t size, const char *m, size_t mlen) {
    return mkey(buf, size, m, mlen, "signals");
}

size_t td_key_wm(char *buf, size_t size, const char *m, size_t mlen) {
    return mkey(buf, size, m, mlen, "wm");
}

size_t td_key_score(char *buf, size_t size, const char *m, size_t mlen) {
    return mkey(buf, size, m, mlen, "score");
}

size_t td_key_part(char *buf, size_t size, const char *topic, int32_t part) {
    int n = snprintf(buf, size, "trust:part:{%s/%d}", topic, (int)part);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}
