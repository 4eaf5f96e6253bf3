/*
 * store_cluster.c - the store on a Redis Cluster: routes a command batch to
 * the masters of its keys' slots (cluster.c's map), one connection and one
 * pipeline per node, follows redirections and waits for replicas.
 *
 * No cluster client exists for hiredis 0.14 (hiredis-cluster
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cluster.h"
#include "log.h"
#include "store_int.h"

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Makes the per-node arrays as long as the map's node table. */
static void cl_nodes_grow(td_store_t *st) {
    int n = td_cluster_node_cnt(st->map);
    if (n <= st->sncap) return;
    size_t cap = (size_t)st->sncap, ucap = (size_t)st->sncap;
    size_t mcap = (size_t)st->sncap;
    td_grow((void **)&st->sn, &cap, (size_t)n, sizeof(*st->sn));
    td_grow((void **)&st->used, &ucap, (size_t)n, sizeof(*st->used));
    td_grow((void **)&st->masters, &mcap, (size_t)n, sizeof(*st->masters));
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
    sn->c = td_store_open_conn(st, node_host(st, i), node_port(st, i), errstr,
                               errstr_size);
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
    if (td_store_load_library(st, sn->c, errstr, errstr_size) != TD_OK ||
        td_store_probe_module(st, sn->c, errstr, errstr_size) != TD_OK) {
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

int td_store_cluster_connect(td_store_t *st, char *errstr, size_t errstr_size) {
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
    int argc = td_rbatch_argv(b, idx);
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

    if (cs->scan_ord < 0) return td_rbatch_resp(b, idx, idx + 1, c);
    argc = td_rbatch_argv(b, idx);
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
    td_grow((void **)&st->cs, &st->cscap, n, sizeof(*st->cs));
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

int td_store_cluster_collect(td_store_t *st,
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

int td_store_cluster_exec(td_store_t *st,
                          td_rbatch_t *b,
                          char *errstr,
                          size_t errstr_size) {
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
            if (rc == TD_OK && td_store_missing_function(r)) {
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
