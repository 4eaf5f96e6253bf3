/*
 * rdump.h - Redis DUMP payloads of small hashes, built by trustd so that
 * one RESTORE writes a merchant's readable signals hash, or its score hash
 * (TD.PUT; td_put in Lua RESTOREs the score hash itself and renames the
 * signals hash, RESTOREd as signals:next just before, into place; proto.h).
 *
 * Why: HSET of ~50 fields into a ~90-field listpack hash scans the
 * listpack once per field. A DUMP payload of the whole hash is one
 * argument, and RESTORE of a listpack hash is a checksum and a copy. The
 * hash Redis ends up with is the one HSET of the same fields in the same
 * order would build, byte for byte (tests/test_rdump.c checks it against
 * DUMP of such a hash): compact listpack encoding, integers stored as
 * Redis stores them.
 *
 * Payload layout (Redis 7.0+, RDB version 10): type byte 16 (hash,
 * listpack), the listpack as an RDB string (length, bytes), the RDB
 * version (2 bytes, little endian), CRC-64/Jones of all that (8 bytes,
 * little endian). Redis accepts any RDB version up to its own, so the
 * payload also restores on later Redis versions.
 *
 * Listpack layout: total bytes (u32 LE), element count (u16 LE), entries
 * (encoding + data + backlen), 0xFF. Field and value alternate.
 */
#ifndef TD_RDUMP_H
#define TD_RDUMP_H

#include <stddef.h>
#include <stdint.h>

#define TD_RDUMP_RDB_VERSION  10 /* Redis 7.0 */
#define TD_RDUMP_TYPE_HASH_LP 16
/* Reserved in front of the listpack for the type byte and its RDB length,
 * plus the trailer: what a buffer needs beyond the listpack itself. */
#define TD_RDUMP_OVERHEAD (1 + 5 + 2 + 8)
/* HSET keeps a hash in a listpack while values are at most 64 bytes
 * (hash-max-listpack-value); RESTORE does not check it, so a payload that
 * is to equal HSET's hash may not exceed it (td_rdump_begin_long() below
 * for one that may). */
#define TD_RDUMP_STR_MAX 64

/* A payload being built into a caller's buffer (not owned). */
typedef struct td_rdump_s {
    uint8_t *buf;
    size_t cap;
    size_t len;     /* bytes used, from buf[0] */
    uint32_t count; /* listpack elements */
    size_t str_max; /* longest string an add takes */
    int overflow;   /* an add did not fit: td_rdump_end() fails */
} td_rdump_t;

/* Starts a hash payload in buf (cap bytes). */
void td_rdump_begin(td_rdump_t *d, uint8_t *buf, size_t cap);
/* Strings up to this many bytes with td_rdump_begin_long(). */
#define TD_RDUMP_LONG_MAX 4095
/* Starts a payload whose strings may exceed hash-max-listpack-value, up to
 * TD_RDUMP_LONG_MAX: a listpack HSET would not build (it would convert the
 * hash to a hashtable), but one Redis keeps and serves as any listpack (it
 * converts only on a write of a long value, and on load only by entry
 * count). For a hash always written whole: the score hash, whose reasons
 * exceed 64 bytes, at about half the hashtable's memory and a fraction of
 * its RESTORE cost. */
void td_rdump_begin_long(td_rdump_t *d, uint8_t *buf, size_t cap);
/* Adds one field and its value (each at most TD_RDUMP_STR_MAX bytes, or
 * TD_RDUMP_LONG_MAX after td_rdump_begin_long(); the caller adds each
 * field once). A value that reads as a 64-bit integer
 * the way Redis parses one is stored as an integer, as Redis does. */
void td_rdump_add(td_rdump_t *d,
                  const char *field,
                  size_t flen,
                  const char *val,
                  size_t vlen);
/* Finishes the payload; returns where it starts inside buf and its length
 * in *len, or NULL when it did not fit or a string was too long. */
const uint8_t *td_rdump_end(td_rdump_t *d, size_t *len);

/* Redis' CRC-64 (Jones polynomial, reflected, as in Redis' crc64.c):
 * crc64(0, "123456789") == 0xe9c6d914c4b8d9ca. */
uint64_t td_rdump_crc64(uint64_t crc, const void *p, size_t len);

#endif
