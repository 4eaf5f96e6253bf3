/*
 * store_node.c - a command batch on one Redis: pipelined on the store's
 * single connection, in chunks of PIPELINE_CHUNK commands, each reply
 * handed to its command's callback in order.
 */
#include <stdio.h>
#include <string.h>

#include "store_int.h"

/* One Redis: the connection failed; errstr says how. */
static int conn_failed(td_store_t *st, char *errstr, size_t errstr_size) {
    snprintf(errstr, errstr_size, "redis %s:%d: %s", st->host, st->port,
             st->c->errstr[0] ? st->c->errstr : "connection lost");
    td_store_drop(st);
    return TD_ERR;
}

/* One Redis: appends commands [b->sent, to) and writes them out, without
 * reading replies (Redis buffers its replies, so it never waits for us). */
static int send_cmds(td_store_t *st,
                     td_rbatch_t *b,
                     size_t to,
                     char *errstr,
                     size_t errstr_size) {
    int done = 0;

    if (td_rbatch_resp(b, b->sent, to, st->c) != REDIS_OK)
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
        if (td_store_missing_function(r)) {
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
                    td_store_drop(st);
                    break;
                }
                freeReplyObject(r);
            }
            return TD_ERR;
        }
    }
    return TD_OK;
}

int td_store_node_exec(td_store_t *st,
                       td_rbatch_t *b,
                       int final,
                       char *errstr,
                       size_t errstr_size) {
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

/* One Redis: sends b's commands [start, end) pipelined and stores their
 * replies in out. */
int td_store_node_collect(td_store_t *st,
                          td_rbatch_t *b,
                          size_t start,
                          size_t end,
                          redisReply **out,
                          char *errstr,
                          size_t errstr_size) {
    if (td_rbatch_resp(b, start, end, st->c) != REDIS_OK) {
        snprintf(errstr, errstr_size, "redis: %s", st->c->errstr);
        td_store_drop(st);
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
            td_store_drop(st);
            return TD_ERR;
        }
        st->stats.commands++;
    }
    st->stats.roundtrips++;
    st->healthy = 1;
    return TD_OK;
}
