/*
 * fuzz_ids.h - the Confluent schema ids the decoder fuzzer's codec knows,
 * shared by fuzz_decode.c (which gives them to its codec) and fuzz_seeds.c
 * (which writes Confluent-framed seeds with them).
 */
#ifndef TD_FUZZ_IDS_H
#define TD_FUZZ_IDS_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/* Gives c ids 1.. for the embedded event schemas, one for a producer's own
 * ReviewEvent (compiled, not embedded) and one for a schema that cannot be
 * resolved. TD_OK, or TD_ERR with errstr. */
int td_fuzz_add_ids(td_codec_t *c, char *errstr, size_t errstr_size);

/* The id td_fuzz_add_ids() gave embedded schema file, or 0. */
uint32_t td_fuzz_id_of(const char *file);

#endif
