/*
 * fingerprint.h - Avro schema fingerprints: CRC-64-AVRO and Parsing
 * Canonical Form (PCF).
 *
 * Single-object encoding (codec.c) prefixes every datum with the 64-bit
 * CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, as
 * the Avro specification defines both ("Schema Fingerprints", "Parsing
 * Canonical Form for Schemas"). avro-c 1.11.1 has neither, so this module
 * builds the PCF by walking a parsed avro_schema_t and hashes it, either into
 * a caller buffer or streaming without one.
 *
 * Everything here is pure: no allocation (but the *_objprim pair), no global
 * mutable state, safe to call from any thread on schemas that are not being
 * modified.
 */
#ifndef TD_FINGERPRINT_H
#define TD_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

/* The CRC-64-AVRO of zero bytes (and its polynomial), from the spec. */
#define TD_FP_EMPTY 0xc15d213aa4d7a795ULL

/* Continues a CRC-64-AVRO: returns the fingerprint of the bytes hashed into
 * fp so far followed by buf[0..len). Start with fp = TD_FP_EMPTY. */
uint64_t td_fp_crc64_update(uint64_t fp, const void *buf, size_t len);

/* CRC-64-AVRO of buf[0..len). td_fp_crc64(NULL, 0) == TD_FP_EMPTY. */
uint64_t td_fp_crc64(const void *buf, size_t len);

/* Writes the Parsing Canonical Form of s into buf (NUL-terminated) and its
 * length without the NUL into *lenp (lenp may be NULL).
 * Returns TD_OK, or TD_ERR with errstr filled if buf is too small (then
 * *lenp is the length needed, so the caller can retry with lenp + 1 bytes)
 * or s holds something PCF cannot express. buf may be NULL when size is 0. */
int td_fp_canonical(avro_schema_t s,
                    char *buf,
                    size_t size,
                    size_t *lenp,
                    char *errstr,
                    size_t errstr_size);

/* Computes the CRC-64-AVRO fingerprint of s's Parsing Canonical Form into
 * *fp without materialising the PCF. Returns TD_OK, or TD_ERR with errstr
 * filled (same failures as td_fp_canonical, except buffer size). */
int td_fp_schema(avro_schema_t s,
                 uint64_t *fp,
                 char *errstr,
                 size_t errstr_size);

/*
 * The same two for the form Apache Avro for Python 1.11 (Debian 12's
 * python3-avro), goavro and older Rust releases compute: a primitive with
 * attributes (a logicalType) is written {"type":"long"} where the spec
 * writes "long". avro-c forgets those attributes, so json must be the text
 * s was parsed from. Same results and failures as above, plus TD_ERR if
 * json is NULL or does not parse. Allocates (jansson) while it runs.
 */
int td_fp_canonical_objprim(avro_schema_t s,
                            const char *json,
                            char *buf,
                            size_t size,
                            size_t *lenp,
                            char *errstr,
                            size_t errstr_size);

int td_fp_schema_objprim(avro_schema_t s,
                         const char *json,
                         uint64_t *fp,
                         char *errstr,
                         size_t errstr_size);

#endif
