/*
 * store_stream.c - a command batch streamed on Redis connections, shared
 * by one Redis (store_node.c) and the cluster router (store_cluster.c).
 *
 * The batch goes out in chunks of PIPELINE_CHUNK commands. After each
 * chunk is sent, the replies of the chunk before it are read, so one chunk
 * is always queued at Redis while trustd reads replies and builds the next
 * commands: output is bounded by a chunk per connection, Redis buffers the
 * replies and never waits for us. Each reply goes to its command's
 * callback in batch order (td_store_deliver()).
 */
#include <stdio.h>

#include "store_int.h"

int td_store_stream(td_store_t *st,
                    td_rbatch_t *b,
                    int final,
                    const td_store_link_t *l,
                    char *errstr,
                    size_t errstr_size) {
    if (!final && b->ccnt - b->sent < PIPELINE_CHUNK) return TD_OK;
    while (b->sent < b->ccnt) {
        size_t prev = b->sent;
        size_t to = b->sent + PIPELINE_CHUNK;
        if (to > b->ccnt) to = b->ccnt;
        if (l->send(st, b, to, errstr, errstr_size) != TD_OK ||
            l->recv(st, b, prev, errstr, errstr_size) != TD_OK)
            return TD_ERR;
        if (!final && b->ccnt - b->sent < PIPELINE_CHUNK) return TD_OK;
    }
    if (l->finish && l->finish(st, errstr, errstr_size) != TD_OK) return TD_ERR;
    return l->recv(st, b, b->sent, errstr, errstr_size);
}

int td_store_flush_out(redisContext *c) {
    int done = 0;
    do {
        if (redisBufferWrite(c, &done) != REDIS_OK) return REDIS_ERR;
    } while (!done);
    return REDIS_OK;
}

void td_store_conn_err(const redisContext *c,
                       const char *host,
                       int port,
                       char *errstr,
                       size_t errstr_size) {
    snprintf(errstr, errstr_size, "redis %s:%d: %s", host, port,
             c->errstr[0] ? c->errstr : "connection lost");
}

int td_store_deliver(td_store_t *st,
                     td_rbatch_t *b,
                     size_t i,
                     redisReply *r,
                     int *lib_loaded,
                     const char *host,
                     int port,
                     char *errstr,
                     size_t errstr_size) {
    struct rcmd *c = &b->cmds[i];
    int rc = TD_OK;

    if (td_store_missing_function(r)) {
        char where[320] = "redis";
        if (host) snprintf(where, sizeof(where), "redis %s:%d", host, port);
        snprintf(errstr, errstr_size,
                 "%s lost the trustd functions (restarted without AOF?): %s",
                 where, r->str);
        *lib_loaded = 0;
        st->stats.errors++;
        rc = TD_ERR;
    } else {
        if (r->type == REDIS_REPLY_ERROR) st->stats.errors++;
        if (c->cb) rc = c->cb(c->opaque, r, errstr, errstr_size);
    }
    freeReplyObject(r);
    return rc;
}
