/*
 * store_node.c - a command batch on one Redis: streamed on the store's
 * single connection (store_stream.c), each reply handed to its command's
 * callback in order.
 */
#include <stdio.h>
#include <string.h>

#include "store_int.h"

/* One Redis: the connection failed; errstr says how. */
static int conn_failed(td_store_t *st, char *errstr, size_t errstr_size) {
    td_store_conn_err(st->c, st->host, st->port, errstr, errstr_size);
    td_store_drop(st);
    return TD_ERR;
}

/* One Redis: appends commands [b->sent, to) and writes them out, without
 * reading replies. */
static int send_cmds(td_store_t *st,
                     td_rbatch_t *b,
                     size_t to,
                     char *errstr,
                     size_t errstr_size) {
    if (td_rbatch_resp(b, b->sent, to, st->c) != REDIS_OK)
        return conn_failed(st, errstr, errstr_size);
    b->sent = to;
    if (td_store_flush_out(st->c) != REDIS_OK)
        return conn_failed(st, errstr, errstr_size);
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
    size_t before = b->done;

    while (b->done < to) {
        redisReply *r = NULL;
        if (redisGetReply(st->c, (void **)&r) != REDIS_OK || !r)
            return conn_failed(st, errstr, errstr_size);
        st->stats.commands++;
        if (td_store_deliver(st, b, b->done++, r, &st->lib_loaded, NULL, 0,
                             errstr, errstr_size) != TD_OK) {
            for (; b->done < b->sent; b->done++) {
                if (redisGetReply(st->c, (void **)&r) != REDIS_OK) {
                    td_store_drop(st);
                    break;
                }
                freeReplyObject(r);
            }
            return TD_ERR;
        }
    }
    st->stats.roundtrips += b->done > before;
    return TD_OK;
}

int td_store_node_exec(td_store_t *st,
                       td_rbatch_t *b,
                       int final,
                       char *errstr,
                       size_t errstr_size) {
    static const td_store_link_t link = {send_cmds, recv_replies, NULL};

    if (td_store_stream(st, b, final, &link, errstr, errstr_size) != TD_OK)
        return TD_ERR;
    if (final) st->healthy = 1;
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
            td_store_conn_err(st->c, st->host, st->port, errstr, errstr_size);
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
