/*
 * sweep.c - which quiet merchants a worker re-scores, and when (sweep.h).
 */
#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "proto.h"

#define SWEEP_PAGE_MS 1000

void td_sweep_init(td_sweep_t *sw, int per_s) {
    memset(sw, 0, sizeof(*sw));
    sw->per_s = per_s;
    strcpy(sw->cursor, "0");
}

void td_sweep_term(td_sweep_t *sw) {
    free(sw->ids);
    sw->ids = NULL;
    sw->nids = sw->cap = 0;
}

int td_sweep_due(const td_sweep_t *sw, int64_t now) {
    return sw->per_s > 0 && now >= sw->due_ms;
}

int td_sweep_partition(const char *m, size_t mlen, int nparts) {
    if (nparts <= 0) return -1;
    return td_cluster_keyslot(m, mlen) % nparts;
}

void td_sweep_queue(td_sweep_t *sw,
                    td_rbatch_t *b,
                    int64_t now,
                    td_rbatch_cb_t cb,
                    void *opaque) {
    sw->due_ms = now + SWEEP_PAGE_MS;
    td_rbatch_begin(b);
    td_rbatch_str(b, "ZSCAN");
    td_rbatch_str(b, TD_KEY_SCORES);
    td_rbatch_str(b, sw->cursor);
    td_rbatch_str(b, "COUNT");
    td_rbatch_i64(b, sw->per_s);
    td_rbatch_end(b, cb, opaque);
}

int td_sweep_page(td_sweep_t *sw,
                  const redisReply *r,
                  int (*mine)(void *opaque, const char *id, size_t len),
                  void *opaque,
                  char *errstr,
                  size_t errstr_size) {
    const redisReply *items;

    sw->nids = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "sweep: %s", r->str);
        return TD_ERR;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= sizeof(sw->cursor) ||
        r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[1]->elements % 2) {
        snprintf(errstr, errstr_size, "sweep: malformed ZSCAN reply");
        return TD_ERR;
    }
    items = r->element[1];
    for (size_t i = 0; i < items->elements; i += 2) {
        const redisReply *id = items->element[i];
        if (id->type != REDIS_REPLY_STRING || id->len == 0 ||
            id->len > TD_MERCHANT_ID_MAX || !mine(opaque, id->str, id->len))
            continue;
        if (sw->nids == sw->cap) {
            sw->cap = sw->cap ? sw->cap * 2 : 64;
            sw->ids = td_xrealloc(sw->ids, (size_t)sw->cap * sizeof(*sw->ids));
        }
        memcpy(sw->ids[sw->nids], id->str, id->len);
        sw->ids[sw->nids][id->len] = '\0';
        sw->nids++;
    }
    memcpy(sw->cursor, r->element[0]->str, r->element[0]->len);
    sw->cursor[r->element[0]->len] = '\0';
    if (!strcmp(sw->cursor, "0")) sw->rounds++;
    return TD_OK;
}
