/*
 * fuzz_ids.c - Confluent schema ids for the decoder fuzzer (fuzz_ids.h).
 */
#include <string.h>

#include "common.h"
#include "fuzz_ids.h"
#include "schemas_gen.h"

static const char *const files[] = {
    "order_event.avsc",  "order_event.v1.avsc",  "review_event.avsc",
    "refund_event.avsc", "refund_event.v1.avsc",
};

/* A producer's own ReviewEvent, and one whose rating is a string. */
static const char *const extra[] = {
    "{\"type\":\"record\",\"name\":\"trustindex.ReviewEvent\",\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"event_time\",\"type\":\"long\"},"
    "{\"name\":\"merchant_id\",\"type\":\"string\"},"
    "{\"name\":\"order_id\",\"type\":\"string\"},"
    "{\"name\":\"buyer_id\",\"type\":\"string\"},"
    "{\"name\":\"rating\",\"type\":\"int\"},"
    "{\"name\":\"value_rating\",\"type\":[\"int\",\"null\"]},"
    "{\"name\":\"flagged\",\"type\":\"boolean\"}]}",
    "{\"type\":\"record\",\"name\":\"trustindex.ReviewEvent\",\"fields\":["
    "{\"name\":\"rating\",\"type\":\"string\"}]}",
};

uint32_t td_fuzz_id_of(const char *file) {
    for (size_t i = 0; i < TD_ARRAY_LEN(files); i++) {
        if (strcmp(files[i], file) == 0) return (uint32_t)i + 1;
    }
    return 0;
}

int td_fuzz_add_ids(td_codec_t *c, char *errstr, size_t errstr_size) {
    uint32_t id = 1;

    for (size_t i = 0; i < TD_ARRAY_LEN(files); i++, id++) {
        for (size_t j = 0; j < td_schema_src_cnt; j++) {
            const char *json = td_schema_srcs[j].json;

            if (strcmp(td_schema_srcs[j].file, files[i]) == 0 &&
                td_codec_add_id(c, id, json, strlen(json), errstr,
                                errstr_size) != TD_OK)
                return TD_ERR;
        }
    }
    if (td_codec_add_id(c, id++, extra[0], strlen(extra[0]), errstr,
                        errstr_size) != TD_OK)
        return TD_ERR;
    /* Refused, and remembered as such: decoding it is a dead letter. */
    td_codec_add_id(c, id, extra[1], strlen(extra[1]), errstr, errstr_size);
    return TD_OK;
}
