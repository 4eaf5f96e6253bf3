/*
 * cluster.c - Redis Cluster routing: hash slots, key positions, the slot map
 * and redirection replies (see cluster.h). Pure functions over memory; the
 * connections are store_cluster.c's.
 *
 * The map is an array of 16384 node indexes plus the node table. It is
 * replaced as a whole from CLUSTER SLOTS and patched one slot at a time
 * after MOVED, as Redis' own cluster clients do (redis-cli's
 * clusterManager, hiredis-cluster): MOVED is authoritative for its slot,
 * and the next full refresh fixes the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster.h"
#include "common.h"

struct td_cluster_s {
    td_cluster_node_t *nodes;
    int n, cap;
    int16_t slot[TD_CLUSTER_SLOTS]; /* node index, -1 unowned */
};

uint16_t td_cluster_crc16(const void *buf, size_t len) {
    const unsigned char *p = buf;
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021)
                               : (uint16_t)(crc << 1);
    }
    return crc;
}

int td_cluster_keyslot(const void *key, size_t len) {
    const char *k = key;
    const char *open = memchr(k, '{', len);

    if (open) {
        size_t s = (size_t)(open - k) + 1;
        const char *close = memchr(k + s, '}', len - s);
        /* "{}" hashes the whole key, as in Redis. */
        if (close && close > k + s)
            return td_cluster_crc16(k + s, (size_t)(close - (k + s))) &
                   (TD_CLUSTER_SLOTS - 1);
    }
    return td_cluster_crc16(k, len) & (TD_CLUSTER_SLOTS - 1);
}

/* ---- key positions ---- */

#define KEY_NONE    -1 /* no key */
#define KEY_NUMKEYS -2 /* argv[2] is numkeys, keys from argv[3] */

/* Commands trustd and trustctl send, and common neighbours. Anything else
 * is routed by argv[1] and treated as a write. */
/* clang-format off */
void td_cluster_slot_tag(int slot, char *tag, size_t size) {
    for (int k = 0;; k++) {
        int n = snprintf(tag, size, "n%d", k);
        if (td_cluster_keyslot(tag, (size_t)n) == slot) return;
    }
}

static const struct cmd_key {
    const char *name;
    int key;
    int write;
} cmd_keys[] = {
    {"FCALL",       KEY_NUMKEYS, 1}, {"FCALL_RO",    KEY_NUMKEYS, 0},
    {"EVAL",        KEY_NUMKEYS, 1}, {"EVALSHA",     KEY_NUMKEYS, 1},
    {"EVAL_RO",     KEY_NUMKEYS, 0}, {"EVALSHA_RO",  KEY_NUMKEYS, 0},
    {"GET",         1, 0}, {"EXISTS",      1, 0}, {"TYPE",        1, 0},
    {"TTL",         1, 0}, {"PTTL",        1, 0}, {"STRLEN",      1, 0},
    {"HGET",        1, 0}, {"HMGET",       1, 0}, {"HGETALL",     1, 0},
    {"HLEN",        1, 0}, {"HEXISTS",     1, 0}, {"HKEYS",       1, 0},
    {"HVALS",       1, 0}, {"HSCAN",       1, 0},
    {"ZRANGE",      1, 0}, {"ZREVRANGE",   1, 0}, {"ZRANGEBYSCORE", 1, 0},
    {"ZREVRANGEBYSCORE", 1, 0}, {"ZSCORE",  1, 0}, {"ZCARD",       1, 0},
    {"ZRANK",       1, 0}, {"ZREVRANK",    1, 0}, {"ZCOUNT",      1, 0},
    {"ZSCAN",       1, 0}, {"PFCOUNT",     1, 0}, {"MEMORY",      2, 0},
    {"OBJECT",      2, 0}, {"DUMP",        1, 0},
    {"TD.LOAD",     1, 0}, /* the trustd module's; it only reads */
    {"TD.PUT",      2, 1}, /* its payload leads (module/args.h) */
    {"SCAN",        KEY_NONE, 0}, {"PING",    KEY_NONE, 0},
    {"ECHO",        KEY_NONE, 0}, {"INFO",    KEY_NONE, 0},
    {"WAIT",        KEY_NONE, 0}, {"ASKING",  KEY_NONE, 0},
    {"CLUSTER",     KEY_NONE, 0}, {"AUTH",    KEY_NONE, 0},
    {"HELLO",       KEY_NONE, 0}, {"DBSIZE",  KEY_NONE, 0},
    {"TIME",        KEY_NONE, 0}, {"ROLE",    KEY_NONE, 0},
    {"CONFIG",      KEY_NONE, 0}, {"FUNCTION", KEY_NONE, 1},
    {"SCRIPT",      KEY_NONE, 1}, {"FLUSHALL", KEY_NONE, 1},
    {"FLUSHDB",     KEY_NONE, 1},
    {NULL, 0, 0},
};
/* clang-format on */

int td_cluster_cmd_key(int argc,
                       const char *const *argv,
                       const size_t *argvlen,
                       int *write) {
    const struct cmd_key *k;
    int key = 1;

    *write = 1;
    if (argc < 1) return -1;
    for (k = cmd_keys; k->name; k++) {
        if (strlen(k->name) == argvlen[0] &&
            !strncasecmp(k->name, argv[0], argvlen[0]))
            break;
    }
    if (k->name) {
        *write = k->write;
        key = k->key;
    }
    if (key == KEY_NUMKEYS) {
        char num[24];
        long n;
        if (argc < 4 || argvlen[2] == 0 || argvlen[2] >= sizeof(num)) return -1;
        memcpy(num, argv[2], argvlen[2]);
        num[argvlen[2]] = '\0';
        n = strtol(num, NULL, 10);
        return n > 0 ? 3 : -1;
    }
    return key >= 0 && key < argc ? key : -1;
}

/* ---- the map ---- */

td_cluster_t *td_cluster_new(void) {
    td_cluster_t *cl = calloc(1, sizeof(*cl));
    if (!cl) return NULL;
    for (int i = 0; i < TD_CLUSTER_SLOTS; i++)
        cl->slot[i] = -1;
    return cl;
}

void td_cluster_destroy(td_cluster_t *cl) {
    if (!cl) return;
    free(cl->nodes);
    free(cl);
}

int td_cluster_node(td_cluster_t *cl,
                    const char *host,
                    size_t hostlen,
                    int port) {
    td_cluster_node_t *n;

    if (hostlen >= TD_CLUSTER_HOST_MAX) return -1;
    for (int i = 0; i < cl->n; i++) {
        if (cl->nodes[i].port == port && strlen(cl->nodes[i].host) == hostlen &&
            !memcmp(cl->nodes[i].host, host, hostlen))
            return i;
    }
    /* Slot entries are int16_t. A real cluster has at most ~1000 nodes. */
    if (cl->n >= INT16_MAX) return -1;
    if (cl->n == cl->cap) {
        int nc = cl->cap ? cl->cap * 2 : 8;
        td_cluster_node_t *nn = realloc(cl->nodes, (size_t)nc * sizeof(*nn));
        if (!nn) return -1;
        cl->nodes = nn;
        cl->cap = nc;
    }
    n = &cl->nodes[cl->n];
    memset(n, 0, sizeof(*n));
    memcpy(n->host, host, hostlen);
    n->port = port;
    return cl->n++;
}

int td_cluster_node_cnt(const td_cluster_t *cl) {
    return cl->n;
}

const td_cluster_node_t *td_cluster_node_get(const td_cluster_t *cl, int i) {
    return &cl->nodes[i];
}

int td_cluster_slot_node(const td_cluster_t *cl, int slot) {
    if (slot < 0 || slot >= TD_CLUSTER_SLOTS) return -1;
    return cl->slot[slot];
}

void td_cluster_set_slot(td_cluster_t *cl, int slot, int node) {
    if (slot < 0 || slot >= TD_CLUSTER_SLOTS || node < 0 || node >= cl->n)
        return;
    cl->slot[slot] = (int16_t)node;
    cl->nodes[node].master = 1;
}

int td_cluster_covered(const td_cluster_t *cl) {
    int n = 0;
    for (int i = 0; i < TD_CLUSTER_SLOTS; i++)
        n += cl->slot[i] >= 0;
    return n;
}

int td_cluster_masters(const td_cluster_t *cl, int *out, int max) {
    unsigned char seen[(INT16_MAX + 8) / 8] = {0};
    int cnt = 0;

    for (int s = 0; s < TD_CLUSTER_SLOTS; s++) {
        int node = cl->slot[s];
        if (node < 0 || seen[node / 8] & (1 << (node % 8))) continue;
        seen[node / 8] |= (unsigned char)(1 << (node % 8));
        if (cnt < max) out[cnt] = node;
        cnt++;
    }
    return cnt;
}

static int is_int(const redisReply *r) {
    return r && r->type == REDIS_REPLY_INTEGER;
}

/* Host of a CLUSTER SLOTS node entry (see td_cluster_load_slots). */
static void entry_host(const redisReply *e,
                       const char *from_host,
                       const char **host,
                       size_t *len) {
    const redisReply *h = e->element[0];

    *host = from_host;
    *len = strlen(from_host);
    if (h->type != REDIS_REPLY_STRING || h->len == 0) return;
    if (h->len == 1 && h->str[0] == '?') {
        /* Metadata is a flat name/value array in RESP2. */
        const redisReply *md = e->elements >= 4 ? e->element[3] : NULL;
        for (size_t i = 0;
             md && md->type == REDIS_REPLY_ARRAY && i + 1 < md->elements;
             i += 2) {
            const redisReply *k = md->element[i], *v = md->element[i + 1];
            if (k->type == REDIS_REPLY_STRING && !strcmp(k->str, "ip") &&
                v->type == REDIS_REPLY_STRING && v->len > 0) {
                *host = v->str;
                *len = v->len;
            }
        }
        return;
    }
    *host = h->str;
    *len = h->len;
}

int td_cluster_load_slots(td_cluster_t *cl,
                          const redisReply *r,
                          const char *from_host,
                          char *errstr,
                          size_t errstr_size) {
    int16_t *slot = NULL;
    int covered = 0;

    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(errstr, errstr_size, "CLUSTER SLOTS: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
        return TD_ERR;
    }
    slot = malloc(sizeof(cl->slot));
    if (!slot) {
        snprintf(errstr, errstr_size, "out of memory");
        return TD_ERR;
    }
    for (int i = 0; i < TD_CLUSTER_SLOTS; i++)
        slot[i] = -1;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *m;
        const char *host;
        size_t hlen;
        long long lo, hi;
        int node;

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            !is_int(e->element[0]) || !is_int(e->element[1]))
            goto bad;
        lo = e->element[0]->integer;
        hi = e->element[1]->integer;
        m = e->element[2];
        if (lo < 0 || hi >= TD_CLUSTER_SLOTS || lo > hi ||
            m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
            !is_int(m->element[1]) || m->element[1]->integer <= 0 ||
            m->element[1]->integer > 65535 ||
            (m->element[0]->type != REDIS_REPLY_STRING &&
             m->element[0]->type != REDIS_REPLY_NIL))
            goto bad;
        entry_host(m, from_host, &host, &hlen);
        node = td_cluster_node(cl, host, hlen, (int)m->element[1]->integer);
        if (node < 0) {
            snprintf(errstr, errstr_size,
                     "CLUSTER SLOTS: node '%.*s' "
                     "cannot be added",
                     (int)hlen, host);
            free(slot);
            return TD_ERR;
        }
        for (long long s = lo; s <= hi; s++) {
            covered += slot[s] < 0;
            slot[s] = (int16_t)node;
        }
    }
    if (covered == 0) {
        snprintf(errstr, errstr_size,
                 "CLUSTER SLOTS: no slot is assigned (cluster not formed?)");
        free(slot);
        return TD_ERR;
    }
    memcpy(cl->slot, slot, sizeof(cl->slot));
    free(slot);
    for (int i = 0; i < cl->n; i++)
        cl->nodes[i].master = 0;
    for (int s = 0; s < TD_CLUSTER_SLOTS; s++) {
        if (cl->slot[s] >= 0) cl->nodes[cl->slot[s]].master = 1;
    }
    return TD_OK;
bad:
    snprintf(errstr, errstr_size, "CLUSTER SLOTS: malformed reply");
    free(slot);
    return TD_ERR;
}

/* ---- replies ---- */

static int has_prefix(const char *s, size_t len, const char *p) {
    size_t n = strlen(p);
    return len >= n && !memcmp(s, p, n);
}

/* "<slot> <host>:<port>" of a MOVED/ASK error; 0 on success. The port is
 * after the last ':', so IPv6 hosts (no brackets) parse too. */
static int parse_target(const char *s,
                        size_t len,
                        int *slot,
                        char *host,
                        size_t hostsize,
                        int *port) {
    const char *end = s + len, *sp, *colon = NULL;
    long v = 0;
    size_t hlen;

    if (s == end || *s < '0' || *s > '9') return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (*s - '0');
        if (v >= TD_CLUSTER_SLOTS) return -1;
    }
    if (s == end || *s != ' ') return -1;
    *slot = (int)v;
    sp = ++s;
    for (const char *p = sp; p < end; p++) {
        if (*p == ':')
            colon = p;
        else if (*p == ' ' || *p == '\r' || *p == '\n')
            return -1;
    }
    if (!colon || colon + 1 == end) return -1;
    v = 0;
    for (const char *p = colon + 1; p < end; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
        if (v > 65535) return -1;
    }
    if (v == 0) return -1;
    hlen = (size_t)(colon - sp);
    if (hlen >= hostsize) return -1;
    memcpy(host, sp, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return 0;
}

td_cluster_reply_t td_cluster_classify(const char *err,
                                       size_t len,
                                       int *slot,
                                       char *host,
                                       size_t hostsize,
                                       int *port) {
    if (has_prefix(err, len, "MOVED "))
        return parse_target(err + 6, len - 6, slot, host, hostsize, port)
                   ? TD_CLUSTER_BAD_REDIRECT
                   : TD_CLUSTER_MOVED;
    if (has_prefix(err, len, "ASK "))
        return parse_target(err + 4, len - 4, slot, host, hostsize, port)
                   ? TD_CLUSTER_BAD_REDIRECT
                   : TD_CLUSTER_ASK;
    if (has_prefix(err, len, "TRYAGAIN")) return TD_CLUSTER_TRYAGAIN;
    if (has_prefix(err, len, "CLUSTERDOWN")) return TD_CLUSTER_CLUSTERDOWN;
    if (has_prefix(err, len, "LOADING")) return TD_CLUSTER_LOADING;
    return TD_CLUSTER_REPLY_OK;
}
