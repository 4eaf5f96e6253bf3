/*
 * pack.h - a vector of short byte strings in one Redis argument: each
 * element its length as a LEB128 varint (at most 4 bytes) and its bytes.
 *
 * TD.PUT carries its small arguments so (proto.c builds them, the module's
 * args.c reads them): Redis parses, logs to the AOF and replicates every
 * argument at a cost of ~1,000 instructions whatever its size, and a put
 * has a dozen small ones.
 */
#ifndef TD_PACK_H
#define TD_PACK_H

#include <stddef.h>
#include <stdint.h>

#define TD_PACK_ELEM_MAX ((1u << 28) - 1) /* 4 varint bytes */

typedef struct td_pack_s {
    uint8_t *buf;
    size_t len, size;
    int overflow; /* an element did not fit: the vector is unusable */
} td_pack_t;

void td_pack_init(td_pack_t *pk, uint8_t *buf, size_t size);
void td_pack_add(td_pack_t *pk, const void *p, size_t len);
void td_pack_str(td_pack_t *pk, const char *s);

/* Reads the element at *p (before end): 1 and *elem, *len set, *p moved
 * past it; 0 at end; -1 malformed (a length past end or over 4 bytes). */
int td_pack_next(const uint8_t **p,
                 const uint8_t *end,
                 const uint8_t **elem,
                 size_t *len);

/* The number of elements in p[0..len), -1 if malformed. */
int td_pack_count(const void *p, size_t len);

#endif
