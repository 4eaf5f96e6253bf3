/*
 * mcache.c - open hash of merchants with per-source deltas (see mcache.h).
 *
 * Chained hash table that doubles when the load passes 1; merchant and delta
 * structs are recycled through free lists, so a steady worker allocates
 * nothing per event once warmed up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcache.h"

struct td_mcache_s {
    td_merchant_t **buckets;
    size_t nbuckets; /* power of two */
    size_t merchants;
    size_t deltas;
    td_merchant_t *head, *tail;
    td_merchant_t *free_merchants;
    td_mdelta_t *free_deltas;
    size_t allocated_bytes;
};

td_mcache_t *td_mcache_new(void) {
    td_mcache_t *c = td_xcalloc(1, sizeof(*c));
    c->nbuckets = 1024;
    c->buckets = td_xcalloc(c->nbuckets, sizeof(*c->buckets));
    c->allocated_bytes = c->nbuckets * sizeof(*c->buckets);
    return c;
}

static void free_list_merchants(td_merchant_t *m) {
    while (m) {
        td_merchant_t *n = m->hnext;
        free(m);
        m = n;
    }
}

static void free_list_deltas(td_mdelta_t *d) {
    while (d) {
        td_mdelta_t *n = d->next;
        free(d);
        d = n;
    }
}

void td_mcache_destroy(td_mcache_t *c) {
    if (!c) return;
    td_mcache_clear(c);
    free_list_merchants(c->free_merchants);
    free_list_deltas(c->free_deltas);
    free(c->buckets);
    free(c);
}

static void rehash(td_mcache_t *c) {
    size_t nb = c->nbuckets * 2;
    td_merchant_t **b = td_xcalloc(nb, sizeof(*b));

    for (td_merchant_t *m = c->head; m; m = m->lnext) {
        size_t i = m->hash & (nb - 1);
        m->hnext = b[i];
        b[i] = m;
    }
    free(c->buckets);
    c->allocated_bytes += (nb - c->nbuckets) * sizeof(*b);
    c->buckets = b;
    c->nbuckets = nb;
}

td_merchant_t *
td_mcache_merchant(td_mcache_t *c, const char *id, size_t idlen) {
    uint32_t h = td_hash_id(id, idlen);
    size_t i = h & (c->nbuckets - 1);
    td_merchant_t *m;

    for (m = c->buckets[i]; m; m = m->hnext) {
        if (m->hash == h && m->idlen == idlen && !memcmp(m->id, id, idlen))
            return m;
    }
    if (c->merchants >= c->nbuckets) {
        rehash(c);
        i = h & (c->nbuckets - 1);
    }
    if (c->free_merchants) {
        m = c->free_merchants;
        c->free_merchants = m->hnext;
    } else {
        m = td_xcalloc(1, sizeof(*m));
        c->allocated_bytes += sizeof(*m);
    }
    m->hash = h;
    m->idlen = (uint8_t)idlen;
    memcpy(m->id, id, idlen);
    m->id[idlen] = '\0';
    m->deltas = NULL;
    m->sweep = 0;
    m->lnext = NULL;
    m->hnext = c->buckets[i];
    c->buckets[i] = m;
    if (c->tail)
        c->tail->lnext = m;
    else
        c->head = m;
    c->tail = m;
    c->merchants++;
    return m;
}

td_mdelta_t *td_mcache_delta(td_mcache_t *c,
                             const char *id,
                             size_t idlen,
                             int src,
                             td_event_kind_t kind,
                             int64_t offset) {
    td_merchant_t *m = td_mcache_merchant(c, id, idlen);
    td_mdelta_t *d;

    for (d = m->deltas; d; d = d->next) {
        if (d->src == src) return d;
    }
    if (c->free_deltas) {
        d = c->free_deltas;
        c->free_deltas = d->next;
    } else {
        d = td_xcalloc(1, sizeof(*d));
        c->allocated_bytes += sizeof(*d);
    }
    d->src = src;
    d->lo = offset;
    d->floor = TD_MDELTA_FLOOR_UNKNOWN;
    td_sigdelta_init(&d->d, kind);
    d->next = m->deltas;
    m->deltas = d;
    c->deltas++;
    return d;
}

size_t td_mcache_merchants(const td_mcache_t *c) {
    return c->merchants;
}

size_t td_mcache_deltas(const td_mcache_t *c) {
    return c->deltas;
}

td_merchant_t *td_mcache_first(const td_mcache_t *c) {
    return c->head;
}

size_t td_mcache_drop_source(td_mcache_t *c, int src) {
    size_t n = 0;
    for (td_merchant_t *m = c->head; m; m = m->lnext) {
        td_mdelta_t **pp = &m->deltas;
        while (*pp) {
            td_mdelta_t *d = *pp;
            if (d->src == src) {
                *pp = d->next;
                d->next = c->free_deltas;
                c->free_deltas = d;
                c->deltas--;
                n++;
            } else {
                pp = &d->next;
            }
        }
    }
    return n;
}

void td_mcache_clear(td_mcache_t *c) {
    td_merchant_t *m = c->head;
    while (m) {
        td_merchant_t *next = m->lnext;
        td_mdelta_t *d = m->deltas;
        while (d) {
            td_mdelta_t *dn = d->next;
            d->next = c->free_deltas;
            c->free_deltas = d;
            d = dn;
        }
        m->hnext = c->free_merchants;
        c->free_merchants = m;
        m = next;
    }
    if (c->merchants) memset(c->buckets, 0, c->nbuckets * sizeof(*c->buckets));
    c->head = c->tail = NULL;
    c->merchants = 0;
    c->deltas = 0;
}

size_t td_mcache_bytes(const td_mcache_t *c) {
    return c->allocated_bytes;
}
