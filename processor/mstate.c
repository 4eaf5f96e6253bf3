/*
 * mstate.c - exact per-merchant state: cache, packing, td_load replies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mstate.h"

struct td_mscache_s {
    td_mstate_t **tab;
    size_t size; /* power of two */
    size_t cnt;
    size_t bytes;
};

static size_t entry_size(size_t idlen) {
    return sizeof(td_mstate_t) + idlen + 1;
}

td_mscache_t *td_mscache_new(void) {
    td_mscache_t *c = td_xcalloc(1, sizeof(*c));
    c->size = 1024;
    c->tab = td_xcalloc(c->size, sizeof(*c->tab));
    return c;
}

void td_mscache_clear(td_mscache_t *c) {
    for (size_t i = 0; i < c->size; i++) {
        td_mstate_t *e = c->tab[i], *n;
        for (; e; e = n) {
            n = e->hnext;
            free(e);
        }
        c->tab[i] = NULL;
    }
    c->cnt = 0;
    c->bytes = 0;
}

void td_mscache_destroy(td_mscache_t *c) {
    if (!c) return;
    td_mscache_clear(c);
    free(c->tab);
    free(c);
}

td_mstate_t *td_mscache_get(td_mscache_t *c, const char *id, size_t len) {
    uint32_t h = td_hash_id(id, len);
    for (td_mstate_t *e = c->tab[h & (c->size - 1)]; e; e = e->hnext)
        if (e->hash == h && e->idlen == len && !memcmp(e->id, id, len))
            return e;
    return NULL;
}

static void rehash(td_mscache_t *c) {
    size_t nsize = c->size * 2;
    td_mstate_t **nt = td_xcalloc(nsize, sizeof(*nt));
    for (size_t i = 0; i < c->size; i++) {
        td_mstate_t *e = c->tab[i], *n;
        for (; e; e = n) {
            n = e->hnext;
            e->hnext = nt[e->hash & (nsize - 1)];
            nt[e->hash & (nsize - 1)] = e;
        }
    }
    free(c->tab);
    c->tab = nt;
    c->size = nsize;
}

td_mstate_t *td_mscache_add(td_mscache_t *c, const char *id, size_t len) {
    td_mstate_t *e = td_mscache_get(c, id, len);
    if (e) return e;
    if (len > TD_MERCHANT_ID_MAX) len = TD_MERCHANT_ID_MAX;
    if (c->cnt >= c->size) rehash(c);
    e = td_xcalloc(1, entry_size(len));
    e->hash = td_hash_id(id, len);
    e->as_of = TD_NULL_TS;
    e->idlen = (uint8_t)len;
    memcpy(e->id, id, len);
    e->hnext = c->tab[e->hash & (c->size - 1)];
    c->tab[e->hash & (c->size - 1)] = e;
    c->cnt++;
    c->bytes += entry_size(len);
    return e;
}

void td_mscache_del(td_mscache_t *c, td_mstate_t *e) {
    td_mstate_t **pp = &c->tab[e->hash & (c->size - 1)];
    for (; *pp; pp = &(*pp)->hnext) {
        if (*pp != e) continue;
        *pp = e->hnext;
        c->cnt--;
        c->bytes -= entry_size(e->idlen);
        free(e);
        return;
    }
}

size_t td_mscache_count(const td_mscache_t *c) {
    return c->cnt;
}

size_t td_mscache_bytes(const td_mscache_t *c) {
    return c->bytes + c->size * sizeof(*c->tab);
}

void td_mscache_trim(td_mscache_t *c, size_t cap, uint32_t gen) {
    for (int pass = 0; pass < 2 && c->cnt > cap; pass++) {
        for (size_t i = 0; i < c->size && c->cnt > cap; i++) {
            td_mstate_t **pp = &c->tab[i];
            while (*pp && c->cnt > cap) {
                td_mstate_t *e = *pp;
                if (pass == 0 && e->gen == gen) {
                    pp = &e->hnext;
                    continue;
                }
                *pp = e->hnext;
                c->cnt--;
                c->bytes -= entry_size(e->idlen);
                free(e);
            }
        }
    }
}

uint64_t td_mstate_catalog(void) {
    static uint64_t h;
    if (!h) {
        h = 0xcbf29ce484222325ULL;
        for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
            for (const char *p = td_signals[i].name; *p; p++) {
                h ^= (unsigned char)*p;
                h *= 0x100000001b3ULL;
            }
            h ^= (uint64_t)td_signals[i].agg << 8 | 0x2c;
            h *= 0x100000001b3ULL;
        }
    }
    return h;
}

void td_mstate_to_sigstate(const td_mstate_t *e, td_sigstate_t *s) {
    td_sigstate_init(s);
    s->as_of = e->as_of;
    for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
        if (!(e->present >> i & 1)) continue;
        s->v[i] = e->v[i];
        s->present[i] = 1;
    }
    td_sigstate_derive(s);
}

void td_mstate_from_sigstate(td_mstate_t *e, const td_sigstate_t *s) {
    e->as_of = s->as_of;
    e->present = 0;
    for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
        e->v[i] = s->present[i] ? s->v[i] : 0;
        if (s->present[i]) e->present |= 1ULL << i;
    }
}

/* Little-endian 64-bit words: one move each on little-endian hosts. */
static void put_u64(uint8_t *p, uint64_t v) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
#endif
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&v, p, 8);
#else
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
#endif
    return v;
}

void td_mstate_pack(const td_mstate_t *e, uint8_t *buf) {
    put_u64(buf, e->version);
    put_u64(buf + 8, td_mstate_catalog());
    put_u64(buf + 16, (uint64_t)e->as_of);
    put_u64(buf + 24, e->present);
    for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
        uint64_t bits;
        memcpy(&bits, &e->v[i], 8);
        put_u64(buf + TD_MSTATE_HDR + 8 * i, bits);
    }
}

size_t td_mstate_version_bytes(uint64_t version, uint8_t *buf) {
    if (version == 0) return 0;
    put_u64(buf, version);
    return 8;
}

int td_mstate_unpack(td_mstate_t *e, const uint8_t *p, size_t len) {
    e->version = p && len >= 8 ? get_u64(p) : 0;
    if (!p || len != TD_MSTATE_BLOB || get_u64(p + 8) != td_mstate_catalog())
        return TD_ERR;
    e->as_of = (int64_t)get_u64(p + 16);
    e->present = get_u64(p + 24);
    for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
        uint64_t bits = get_u64(p + TD_MSTATE_HDR + 8 * i);
        memcpy(&e->v[i], &bits, 8);
    }
    return TD_OK;
}

void td_mstate_reset(td_mstate_t *e) {
    e->as_of = TD_NULL_TS;
    e->present = 0;
    memset(e->v, 0, sizeof(e->v));
}

int td_mstate_read_fields(td_mstate_t *e, const redisReply *hm) {
    if (hm->type != REDIS_REPLY_ARRAY || hm->elements != 1 + TD_SIG_BASE_CNT)
        return TD_ERR;
    td_mstate_reset(e);
    if (hm->element[0]->type == REDIS_REPLY_STRING)
        e->as_of = strtoll(hm->element[0]->str, NULL, 10);
    for (int i = 0; i < TD_SIG_BASE_CNT; i++) {
        const redisReply *f = hm->element[1 + i];
        if (f->type != REDIS_REPLY_STRING || f->len == 0) continue;
        e->v[i] = strtod(f->str, NULL);
        e->present |= 1ULL << i;
    }
    return TD_OK;
}
