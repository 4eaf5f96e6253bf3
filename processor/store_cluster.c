/*
 * store_cluster.c - the store on a Redis Cluster: routes a command batch to
 * the masters of its keys' slots (cluster.c's map), one connection and one
 * pipeline per node, follows redirections and waits for replicas.
 *
 * No cluster client exists for hiredis 0.14 (hiredis-cluster
 * and hiredis-vip need hiredis >= 1.0 or are not packaged in Debian 12), so
 * routing is done here on top of cluster.c's slot map, with one blocking
 * hiredis context per node (struct snode). A batch is streamed like one
 * Redis's (store_stream.c): chunk after chunk, each chunk's replies read
 * once the next chunk is out, so every node holds at most a chunk of ours
 * and they all work in parallel:
 *
 *   1. send: every command's key -> slot -> master (a keyless SCAN goes to
 *      the master its cursor names); connect and load the library on a
 *      node the batch had not used yet; append each command to its node's
 *      pipeline and write every node's out;
 *   2. read: each node's replies to the chunk before, in order; hand them
 *      to the callbacks in batch order, up to the first redirection or
 *      transient cluster error, which is held (with every reply after it)
 *      for the end;
 *   3. end: WAIT once on every node the batch used that has unconfirmed
 *      writes, behind its last chunk; read the rest;
 *   4. settle the held replies in order: MOVED (patch the slot, mark the
 *      map stale, resend there), ASK (ASKING + the command, once, on the
 *      named node), TRYAGAIN, LOADING and CLUSTERDOWN (back off, refresh
 *      the map, resend) until a real reply or the batch's retry budget is
 *      spent; then WAIT again on nodes that took resent writes.
 *
 * Held commands are resent one at a time, in batch order (commands of a
 * slot that moved all get MOVED from its old master, so their order holds
 * there too; the map is refreshed by the next batch). Any failure fails the
 * batch: the replies still owed are read (or the connection dropped) so
 * that the next batch starts clean, and the caller retries it whole.
 *
 * A connection error marks the map stale; the next batch reads CLUSTER
 * SLOTS from any node that answers (connected ones first, then every node
 * ever seen, seeds included).
 *
 * WAIT. Replication is asynchronous, so a master can fail over to a replica
 * that lacks its last writes. Exactly-once needs every merchant write and
 * partition record that a flush relies on to survive that, so no batch
 * succeeds until WAIT 1 says a replica has this connection's writes
 * (callbacks may run before: a batch that then fails is retried). WAIT
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
        td_store_conn_err(st->sn[i].c, node_host(st, i), node_port(st, i),
                          errstr, errstr_size);
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
 * REDIRECT_MAX and the batch's *budget_ms (backoff time) allow. A plain
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
                st->map_ok = 0; /* others moved too: refresh next batch */
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
        td_store_conn_err(c, node_host(st, node), node_port(st, node), errstr,
                          errstr_size);
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

/* Whether r is a redirection or a transient cluster error, to be settled
 * once every reply of the batch is read. */
static int needs_settle(const redisReply *r) {
    char host[TD_CLUSTER_HOST_MAX];
    int slot, port;

    return r->type == REDIS_REPLY_ERROR &&
           td_cluster_classify(r->str, r->len, &slot, host, sizeof(host),
                               &port) != TD_CLUSTER_REPLY_OK;
}

/* Hands out the replies of commands [b->done, to) in order: the
 * collector's array, or the callbacks. Stops at a reply to be settled. */
static int cl_deliver(td_store_t *st,
                      td_rbatch_t *b,
                      size_t to,
                      char *errstr,
                      size_t errstr_size) {
    while (b->done < to) {
        cstate_t *cs = &st->cs[b->done];
        redisReply *r = cs->r;
        int node = cs->node;
        if (!r || needs_settle(r)) return TD_OK;
        cs->r = NULL;
        if (cs->scan_ord >= 0) scan_cursor(st, cs, r);
        if (st->cout) {
            st->cout[b->done++ - st->cfrom] = r;
            continue;
        }
        if (td_store_deliver(st, b, b->done++, r, &st->sn[node].lib_loaded,
                             node_host(st, node), node_port(st, node), errstr,
                             errstr_size) != TD_OK)
            return TD_ERR;
    }
    return TD_OK;
}

/* Writes out every used node's pipeline; a node that fails is dropped
 * (the first failure goes to errstr), the others are still written, so
 * that every node left connected has all its commands sent. */
static int cl_flush(td_store_t *st, char *errstr, size_t errstr_size) {
    int rc = TD_OK;

    for (int u = 0; u < st->nused; u++) {
        int i = st->used[u];
        redisContext *c = st->sn[i].c;
        if (!c || td_store_flush_out(c) == REDIS_OK) continue;
        if (rc == TD_OK)
            td_store_conn_err(c, node_host(st, i), node_port(st, i), errstr,
                              errstr_size);
        node_drop(st, i);
        rc = TD_ERR;
    }
    return rc;
}

/* Link send: routes commands [b->sent, to), connects (and loads the
 * library on) nodes this batch had not used yet, appends each command to
 * its node's pipeline and writes them all out. */
static int cl_send(td_store_t *st,
                   td_rbatch_t *b,
                   size_t to,
                   char *errstr,
                   size_t errstr_size) {
    size_t cap = st->cscap;

    /* Zeroed, so that cl_end() can find every reply held. */
    td_grow((void **)&st->cs, &st->cscap, to, sizeof(*st->cs));
    memset(st->cs + cap, 0, (st->cscap - cap) * sizeof(*st->cs));
    for (size_t k = b->sent; k < to; k++) {
        cstate_t *cs = &st->cs[k];
        snode_t *sn;
        cs->r = NULL;
        cs->next = -1;
        if (cl_route(st, b, k, cs, errstr, errstr_size) != TD_OK) return TD_ERR;
        sn = &st->sn[cs->node];
        if (sn->used) continue;
        if (node_ready(st, cs->node, errstr, errstr_size) != TD_OK)
            return TD_ERR;
        sn->used = 1;
        sn->wait_sent = sn->resent = 0;
        sn->head = sn->tail = -1;
        st->used[st->nused++] = cs->node;
    }
    for (size_t k = b->sent; k < to; k++) {
        cstate_t *cs = &st->cs[k];
        snode_t *sn = &st->sn[cs->node];
        if (cl_append(b, k, cs, sn->c) != REDIS_OK) {
            /* Half-appended pipelines: only new connections are safe. */
            snprintf(errstr, errstr_size, "redis: out of memory");
            for (int u = 0; u < st->nused; u++)
                node_drop(st, st->used[u]);
            return TD_ERR;
        }
        if (sn->tail >= 0)
            st->cs[sn->tail].next = (int)k;
        else
            sn->head = (int)k;
        sn->tail = (int)k;
        if (cs->write) sn->dirty = 1;
    }
    b->sent = to;
    return cl_flush(st, errstr, errstr_size);
}

/* Link finish: WAIT after the batch's commands on every node it used that
 * has unconfirmed writes. */
static int cl_finish(td_store_t *st, char *errstr, size_t errstr_size) {
    for (int u = 0; u < st->nused; u++) {
        snode_t *sn = &st->sn[st->used[u]];
        if (st->readonly || !sn->dirty || !sn->c) continue;
        if (redisAppendCommand(sn->c, "WAIT %d %d", WAIT_REPLICAS,
                               st->wait_ms) != REDIS_OK) {
            snprintf(errstr, errstr_size, "redis: out of memory");
            for (int v = 0; v < st->nused; v++)
                node_drop(st, st->used[v]);
            return TD_ERR;
        }
        sn->wait_sent = 1;
    }
    return cl_flush(st, errstr, errstr_size);
}

/* Link recv: reads every node's replies to the commands before to (and
 * its WAIT's once they are all read), then delivers them in order. */
static int cl_recv(td_store_t *st,
                   td_rbatch_t *b,
                   size_t to,
                   char *errstr,
                   size_t errstr_size) {
    for (int u = 0; u < st->nused; u++) {
        int i = st->used[u];
        snode_t *sn = &st->sn[i];
        int got = 0;
        if (!sn->c) continue;
        while (sn->head >= 0 && (size_t)sn->head < to) {
            cstate_t *cs = &st->cs[sn->head];
            if (redisGetReply(sn->c, (void **)&cs->r) != REDIS_OK || !cs->r) {
                cs->r = NULL;
                goto io;
            }
            st->stats.commands++;
            sn->head = cs->next;
            got = 1;
        }
        if (sn->head < 0) sn->tail = -1;
        if (sn->head < 0 && sn->wait_sent) {
            redisReply *w = NULL;
            int rc;
            if (redisGetReply(sn->c, (void **)&w) != REDIS_OK || !w) goto io;
            sn->wait_sent = 0;
            rc = wait_ok(st, i, w, errstr, errstr_size);
            freeReplyObject(w);
            if (rc != TD_OK) return TD_ERR;
            got = 1;
        }
        st->stats.roundtrips += got;
        continue;
    io:
        td_store_conn_err(sn->c, node_host(st, i), node_port(st, i), errstr,
                          errstr_size);
        node_drop(st, i);
        return TD_ERR;
    }
    return cl_deliver(st, b, to, errstr, errstr_size);
}

static const td_store_link_t cl_link = {cl_send, cl_recv, cl_finish};

/* Ends the batch: after a failure, reads (and drops) what the used nodes
 * still owe so their connections stay usable, and frees the replies not
 * handed out. */
static void cl_end(td_store_t *st, int failed) {
    for (int u = 0; u < st->nused; u++) {
        int i = st->used[u];
        snode_t *sn = &st->sn[i];
        int owed = sn->wait_sent;
        sn->used = 0;
        sn->wait_sent = 0;
        if (!sn->c) continue;
        for (int k = sn->head; k >= 0; k = st->cs[k].next)
            owed++;
        for (; owed > 0; owed--) {
            redisReply *r = NULL;
            if (redisGetReply(sn->c, (void **)&r) != REDIS_OK || !r) {
                node_drop(st, i);
                break;
            }
            freeReplyObject(r);
        }
    }
    st->nused = 0;
    if (!failed) return;
    for (size_t k = 0; k < st->cscap; k++) {
        if (st->cs[k].r) freeReplyObject(st->cs[k].r);
        st->cs[k].r = NULL;
    }
    st->healthy = 0;
}

/*
 * The end of a streamed batch: every reply is read and the WAITs are in.
 * Settles the replies held back (see the top of this file), delivering
 * each as soon as it and those before it are real replies, then WAITs on
 * the nodes that took resent writes.
 */
static int cl_settle_all(td_store_t *st,
                         td_rbatch_t *b,
                         char *errstr,
                         size_t errstr_size) {
    int budget = TRANSIENT_MAX_MS;
    int rc = TD_OK;

    while (rc == TD_OK && b->done < b->sent) {
        rc = cl_settle(st, b, b->done, &st->cs[b->done], &budget, errstr,
                       errstr_size);
        if (rc == TD_OK) rc = cl_deliver(st, b, b->sent, errstr, errstr_size);
    }
    for (int i = 0; i < st->sncap; i++) {
        if (st->sn[i].resent && rc == TD_OK && !st->readonly && st->sn[i].dirty)
            rc = wait_sync(st, i, errstr, errstr_size);
        st->sn[i].resent = 0;
    }
    return rc;
}

/* A new batch: owes nothing, the map is fresh. */
static int cl_begin(td_store_t *st, char *errstr, size_t errstr_size) {
    /* A batch the caller gave up on in parts leaves replies owed. */
    if (st->nused) cl_end(st, 1);
    if (!st->map_ok && cl_refresh(st, errstr, errstr_size) != TD_OK)
        return TD_ERR;
    return TD_OK;
}

/* Streams b from b->sent on: its next chunks, or (final) all of it, then
 * settles it. */
static int cl_run(td_store_t *st,
                  td_rbatch_t *b,
                  int final,
                  char *errstr,
                  size_t errstr_size) {
    int rc = td_store_stream(st, b, final, &cl_link, errstr, errstr_size);
    if (rc == TD_OK && final) rc = cl_settle_all(st, b, errstr, errstr_size);
    if (rc != TD_OK || final) cl_end(st, rc != TD_OK);
    if (rc == TD_OK && final) st->healthy = 1;
    return rc;
}

int td_store_cluster_collect(td_store_t *st,
                             td_rbatch_t *b,
                             size_t start,
                             redisReply **out,
                             char *errstr,
                             size_t errstr_size) {
    int rc;

    if (cl_begin(st, errstr, errstr_size) != TD_OK) return TD_ERR;
    b->sent = b->done = start;
    st->cout = out;
    st->cfrom = start;
    rc = cl_run(st, b, 1, errstr, errstr_size);
    if (rc != TD_OK) {
        for (size_t k = start; k < b->done; k++) {
            freeReplyObject(out[k - start]);
            out[k - start] = NULL;
        }
    }
    st->cout = NULL;
    return rc;
}

int td_store_cluster_exec(td_store_t *st,
                          td_rbatch_t *b,
                          int final,
                          char *errstr,
                          size_t errstr_size) {
    if (b->sent == 0 && cl_begin(st, errstr, errstr_size) != TD_OK)
        return TD_ERR;
    return cl_run(st, b, final, errstr, errstr_size);
}
