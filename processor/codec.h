/*
 * codec.h - Avro single-object decoding, validation and encoding of trustd's
 * events and scores.
 *
 * Wire formats, told apart by the first byte:
 *   - Avro single-object encoding: C3 01, the 8-byte little-endian
 *     CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form
 *     (fingerprint.h; also the form Python, goavro and older Rust compute),
 *     then the Avro binary datum. Every schema in schemas/ is compiled in
 *     (schemas_gen.h); a file without a ".vN" suffix is the current
 *     (reader) schema of its record, the others are older writer schemas
 *     that still decode.
 *   - Confluent: 00, a 4-byte big-endian schema id, then the datum. The
 *     codec knows an id once td_codec_add_id() gave it the writer schema
 *     (registry.h fetches them); until then the id is unknown.
 * Fields a writer lacks take the reader schema's default.
 *
 * td_codec_decode() never trusts the wire: it decodes with a bounds-checking
 * scan of the datum driven by the writer schema, so hostile lengths, counts,
 * enum indexes, union branches and trailing bytes become td_dlq_reason_t
 * codes. Decoding an event allocates nothing (unless max_message_bytes is
 * raised above 64 KiB, then once per new largest message).
 *
 * A codec is not thread-safe: use one per thread. td_codec_new() allocates
 * what the codec needs; encoding reuses avro-c generic values, whose string
 * buffers grow to the longest value seen.
 */
#ifndef TD_CODEC_H
#define TD_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "dlq_reason.h"
#include "event.h"

/* Bytes of the single-object header: C3 01 + 8-byte fingerprint. */
#define TD_CODEC_HDR_LEN 10
/* Bytes of the Confluent header: 00 + 4-byte big-endian schema id. */
#define TD_CODEC_CF_HDR_LEN 5

typedef struct td_codec_s td_codec_t;

/* Validation limits; td_validate_defaults() gives the values below. */
typedef struct td_validate_s {
    int64_t min_event_time_ms;  /* default 1420070400000 (2015-01-01) */
    int64_t max_future_skew_ms; /* default 300000 */
    size_t max_message_bytes;   /* default 65536; larger -> TD_DLQ_TOO_LARGE */
} td_validate_t;

/* Fills *v with the defaults. */
void td_validate_defaults(td_validate_t *v);

/* Parses every embedded schema (td_schema_srcs), indexes them by
 * fingerprint, checks each against the event contract in codec.c, picks for
 * each record the current reader schema and resolves every older writer
 * schema against it once, and preallocates the reusable values, reader and
 * writer. Returns NULL and fills errstr if a schema is broken or does not
 * match the contract. The codec is not thread-safe: one per thread. */
td_codec_t *td_codec_new(char *errstr, size_t errstr_size);

/* Frees the codec and everything it decoded. NULL is a no-op. */
void td_codec_destroy(td_codec_t *codec);

/* Decodes and validates one message from a topic carrying `expect` events.
 * key may be NULL (then TD_DLQ_KEY_MISMATCH); v may be NULL for defaults.
 * Returns TD_DLQ_OK and fills *ev, whose strings are borrowed from the codec
 * and stay valid until the next decode on it; or another reason with errstr
 * naming the field and value (e.g. "rating 7 outside 1..5") and *ev zeroed
 * or partly filled. Never aborts on any input. */
td_dlq_reason_t td_codec_decode(td_codec_t *codec,
                                td_event_kind_t expect,
                                const void *key,
                                size_t key_len,
                                const void *value,
                                size_t value_len,
                                int64_t now_ms,
                                const td_validate_t *v,
                                td_event_t *ev,
                                char *errstr,
                                size_t errstr_size);

/* If value is Confluent-framed (00 and a 4-byte id, at least
 * TD_CODEC_CF_HDR_LEN bytes), sets *id and returns 1; else returns 0. */
int td_codec_schema_id(const void *value, size_t len, uint32_t *id);

/* 1 if td_codec_add_id() was given id (usable or not), else 0. */
int td_codec_has_id(const td_codec_t *codec, uint32_t id);

/* Gives the codec the writer schema of Confluent id: json[0..len), the
 * schema text from a registry or the schema map. The same schema as an
 * embedded (or an earlier) one shares it; any other is resolved against
 * the reader schema of its record and compiled. Text that cannot be used
 * (does not parse, a record trustd does not read, fields the reader cannot
 * resolve) is remembered too: messages with that id then decode to
 * TD_DLQ_WRONG_TYPE or TD_DLQ_INCOMPATIBLE_SCHEMA, and this returns TD_ERR
 * with errstr saying why. TD_OK otherwise, or if id is known already. The
 * caller keeps json. */
int td_codec_add_id(td_codec_t *codec,
                    uint32_t id,
                    const char *json,
                    size_t len,
                    char *errstr,
                    size_t errstr_size);

/* Encodes ev with the current schema of ev->kind as a single-object message
 * into buf[0..size) and sets *lenp. Returns TD_OK, or TD_ERR with errstr
 * (buffer too small, enum or optional value the schema cannot hold). */
int td_codec_encode(td_codec_t *codec,
                    const td_event_t *ev,
                    void *buf,
                    size_t size,
                    size_t *lenp,
                    char *errstr,
                    size_t errstr_size);

/* As td_codec_encode() with the named writer schema file, e.g.
 * "order_event.v1.avsc" (for tests of schema resolution). Fields the schema
 * lacks are dropped. TD_ERR if the file is unknown or of another record. */
int td_codec_encode_with(td_codec_t *codec,
                         const char *schema_file,
                         const td_event_t *ev,
                         void *buf,
                         size_t size,
                         size_t *lenp,
                         char *errstr,
                         size_t errstr_size);

/* Encodes a TrustScore (schemas/trust_score.avsc) into buf[0..size), sets
 * *lenp. TD_OK or TD_ERR with errstr (counts out of range, no NUL in a
 * reason, buffer too small). */
int td_codec_encode_score(td_codec_t *codec,
                          const td_score_rec_t *rec,
                          void *buf,
                          size_t size,
                          size_t *lenp,
                          char *errstr,
                          size_t errstr_size);

/* Decodes a TrustScore message into *rec. merchant_id and reasons are
 * copied; dim_names and model_version are borrowed from the codec until its
 * next decode. TD_OK, or TD_ERR with errstr for anything malformed, more
 * than TD_SCORE_MAX_DIMS dims or TD_SCORE_MAX_REASONS reasons, or a
 * merchant_id or reason too long for *rec. */
int td_codec_decode_score(td_codec_t *codec,
                          const void *value,
                          size_t len,
                          td_score_rec_t *rec,
                          char *errstr,
                          size_t errstr_size);

/* Fingerprint of the embedded schema file (e.g. "order_event.avsc"), or 0
 * if there is none by that name. */
uint64_t td_codec_fingerprint(const td_codec_t *codec, const char *schema_file);

#endif
