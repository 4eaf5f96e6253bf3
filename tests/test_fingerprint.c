/*
 * test_fingerprint.c - tests of CRC-64-AVRO and Parsing Canonical Form
 * (processor/fingerprint.c).
 *
 * Golden values come from outside this code base:
 *   - spec_vectors[]: share/test/data/schema-tests.txt of apache/avro, the
 *     cross-language PCF and fingerprint vectors that Java's reference
 *     implementation checks (fingerprints converted from signed decimal).
 *   - golden[]: the PCF of each embedded schema as printed by Debian's
 *     python3-avro 1.11.1 (avro.schema.parse(...).canonical_form), with one
 *     correction: Python prints a primitive that carries a logicalType as
 *     {"type":"long"}, while the spec's [PRIMITIVES] rule, Java and this
 *     code write "long". The fingerprints were computed from those strings
 *     by an independent Python implementation of the spec's CRC.
 *   - python_golden[]: the same, uncorrected: the form Python (and goavro,
 *     and older Rust) really fingerprint, which td_fp_*_objprim() computes.
 *     Generated once with /usr/bin/python3 and python3-avro 1.11.1:
 *     canonical_form of avro.schema.parse(text), and its CRC-64-AVRO by
 *     the bitwise definition in Python; "extra" covers attributes other
 *     than logicalType and primitives under arrays, maps and unions.
 * The CRC table itself is checked against a bitwise implementation here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "fingerprint.h"
#include "harness.h"
#include "schemas_gen.h"

typedef struct spec_vector_s {
    const char *input;     /* schema JSON as in schema-tests.txt */
    const char *canonical; /* expected PCF */
    uint64_t fp;           /* expected CRC-64-AVRO of the PCF */
    int parses;            /* avro-c 1.11.1 accepts the input */
} spec_vector_t;

/* clang-format off */
static const spec_vector_t spec_vectors[] = {
    {"\"null\"",
     "\"null\"",
     0x63dd24e7cc258f8aULL, 1},
    {"\"boolean\"",
     "\"boolean\"",
     0x9f42fc78a4d4f764ULL, 1},
    {"\"int\"",
     "\"int\"",
     0x7275d51a3f395c8fULL, 1},
    {"\"long\"",
     "\"long\"",
     0xd054e14493f41db7ULL, 1},
    {"\"float\"",
     "\"float\"",
     0x4d7c02cb3ea8d790ULL, 1},
    {"\"double\"",
     "\"double\"",
     0x8e7535c032ab957eULL, 1},
    {"\"bytes\"",
     "\"bytes\"",
     0x4fc016dac3201965ULL, 1},
    {"\"string\"",
     "\"string\"",
     0x8f014872634503c7ULL, 1},
    {"[  ]",
     "[]",
     0xeec6e173d23fb9d1ULL, 0},
    {"[ \"int\"  ]",
     "[\"int\"]",
     0xb763638a48b2fb03ULL, 1},
    {"[ \"int\" , {\"type\":\"boolean\"} ]",
     "[\"int\",\"boolean\"]",
     0x4ad63578080c1602ULL, 1},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}",
     0xbd0c50c84319be7eULL, 1},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}",
     0x521d1a6b830ec4abULL, 1},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}",
     0xbfefe5be5021e2b2ULL, 1},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"Useful info\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}",
     0xbd0c50c84319be7eULL, 1},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}",
     0xbd0c50c84319be7eULL, 1},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}",
     0xbd0c50c84319be7eULL, 1},
    {"{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], \"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]}",
     0x6cd8eaf1c968a33bULL, 1},
    {"{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", \"default\":true}, {\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}], \"type\":\"record\", \"name\":\"foo\" }",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},{\"name\":\"f2\",\"type\":\"int\"}]}",
     0xbc8d05bd57f4934aULL, 1},
    {"{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}",
     "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}",
     0xa7fc039e15aa3169ULL, 1},
    {"{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", \"symbols\":[\"A1\", \"A2\"]}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}",
     0xc2433ae5f4999d8bULL, 1},
    {"{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
     "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
     0x18602ec3ed31a504ULL, 1},
    {"{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", \"size\":32}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}",
     0xd579d47693a6171eULL, 1},
    {"{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}",
     "{\"type\":\"array\",\"items\":\"null\"}",
     0xf7d13f2f68170a6dULL, 1},
    {"{ \"values\":\"string\", \"type\":\"map\"}",
     "{\"type\":\"map\",\"values\":\"string\"}",
     0x86ce965d92864572ULL, 1},
    {"{\"name\":\"PigValue\",\"type\":\"record\", \"fields\":[{\"name\":\"value\", \"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
     "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":[\"null\",\"int\",\"long\",\"PigValue\"]}]}",
     0xe795dc6656b7e95bULL, 1},
};
/* clang-format on */

typedef struct golden_s {
    const char *file;
    uint64_t fp;
    const char *canonical;
} golden_t;

static const golden_t golden[] = {
    {"order_event.avsc", 0xc4f36843b7fe7101ULL,
     "{\"name\":\"trustindex.OrderEvent\",\"type\":\"record\",\"fields\":[{"
     "\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"event_time\",\""
     "type\":\"long\"},{\"name\":\"merchant_id\",\"type\":\"string\"},{\"nam"
     "e\":\"order_id\",\"type\":\"string\"},{\"name\":\"buyer_id\",\"type\":"
     "\"string\"},{\"name\":\"status\",\"type\":{\"name\":\"trustindex.Order"
     "Status\",\"type\":\"enum\",\"symbols\":[\"CREATED\",\"PAID\",\"SHIPPED"
     "\",\"DELIVERED\",\"COMPLETED\",\"CANCELLED\"]}},{\"name\":\"amount_cen"
     "ts\",\"type\":\"long\"},{\"name\":\"channel\",\"type\":{\"name\":\"tru"
     "stindex.Channel\",\"type\":\"enum\",\"symbols\":[\"LIVE\",\"SHORT_VIDE"
     "O\",\"SHELF\"]}},{\"name\":\"cancelled_by\",\"type\":[\"null\",{\"name"
     "\":\"trustindex.CancelledBy\",\"type\":\"enum\",\"symbols\":[\"BUYER\""
     ",\"MERCHANT\",\"PLATFORM\"]}]},{\"name\":\"promised_ship_by\",\"type\""
     ":[\"null\",\"long\"]},{\"name\":\"promised_delivery_by\",\"type\":[\"n"
     "ull\",\"long\"]},{\"name\":\"tracking_valid\",\"type\":[\"null\",\"boo"
     "lean\"]},{\"name\":\"paid_at\",\"type\":[\"null\",\"long\"]},{\"name\""
     ":\"shipped_at\",\"type\":[\"null\",\"long\"]},{\"name\":\"buyer_order_"
     "seq\",\"type\":\"int\"}]}"},
    {"order_event.v1.avsc", 0x995f7bb64a962994ULL,
     "{\"name\":\"trustindex.OrderEvent\",\"type\":\"record\",\"fields\":[{"
     "\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"event_time\",\""
     "type\":\"long\"},{\"name\":\"merchant_id\",\"type\":\"string\"},{\"nam"
     "e\":\"order_id\",\"type\":\"string\"},{\"name\":\"buyer_id\",\"type\":"
     "\"string\"},{\"name\":\"status\",\"type\":{\"name\":\"trustindex.Order"
     "Status\",\"type\":\"enum\",\"symbols\":[\"CREATED\",\"PAID\",\"SHIPPED"
     "\",\"DELIVERED\",\"COMPLETED\",\"CANCELLED\"]}},{\"name\":\"amount_cen"
     "ts\",\"type\":\"long\"},{\"name\":\"channel\",\"type\":{\"name\":\"tru"
     "stindex.Channel\",\"type\":\"enum\",\"symbols\":[\"LIVE\",\"SHORT_VIDE"
     "O\",\"SHELF\"]}},{\"name\":\"cancelled_by\",\"type\":[\"null\",{\"name"
     "\":\"trustindex.CancelledBy\",\"type\":\"enum\",\"symbols\":[\"BUYER\""
     ",\"MERCHANT\",\"PLATFORM\"]}]},{\"name\":\"promised_ship_by\",\"type\""
     ":[\"null\",\"long\"]},{\"name\":\"promised_delivery_by\",\"type\":[\"n"
     "ull\",\"long\"]},{\"name\":\"tracking_valid\",\"type\":[\"null\",\"boo"
     "lean\"]}]}"},
    {"refund_event.avsc", 0x7fc3bf3cd4794648ULL,
     "{\"name\":\"trustindex.RefundEvent\",\"type\":\"record\",\"fields\":[{"
     "\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"event_time\",\""
     "type\":\"long\"},{\"name\":\"merchant_id\",\"type\":\"string\"},{\"nam"
     "e\":\"order_id\",\"type\":\"string\"},{\"name\":\"buyer_id\",\"type\":"
     "\"string\"},{\"name\":\"refund_id\",\"type\":\"string\"},{\"name\":\"s"
     "tatus\",\"type\":{\"name\":\"trustindex.RefundStatus\",\"type\":\"enum"
     "\",\"symbols\":[\"REQUESTED\",\"APPROVED\",\"REJECTED\",\"COMPLETED\","
     "\"ESCALATED\",\"ARBITRATED\"]}},{\"name\":\"kind\",\"type\":{\"name\":"
     "\"trustindex.RefundKind\",\"type\":\"enum\",\"symbols\":[\"REFUND_ONLY"
     "\",\"RETURN_AND_REFUND\"]}},{\"name\":\"reason\",\"type\":{\"name\":\""
     "trustindex.RefundReason\",\"type\":\"enum\",\"symbols\":[\"NO_REASON_7"
     "D\",\"QUALITY\",\"NOT_AS_DESCRIBED\",\"COUNTERFEIT\",\"NOT_RECEIVED\","
     "\"DAMAGED\",\"LATE_DELIVERY\",\"OTHER\"]}},{\"name\":\"amount_cents\","
     "\"type\":\"long\"},{\"name\":\"responsible\",\"type\":[\"null\",{\"nam"
     "e\":\"trustindex.Responsible\",\"type\":\"enum\",\"symbols\":[\"MERCHA"
     "NT\",\"BUYER\",\"PLATFORM\",\"LOGISTICS\"]}]},{\"name\":\"requested_at"
     "\",\"type\":[\"null\",\"long\"]},{\"name\":\"was_rejected\",\"type\":"
     "\"boolean\"}]}"},
    {"refund_event.v1.avsc", 0x57e0af1f70d6a35eULL,
     "{\"name\":\"trustindex.RefundEvent\",\"type\":\"record\",\"fields\":[{"
     "\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"event_time\",\""
     "type\":\"long\"},{\"name\":\"merchant_id\",\"type\":\"string\"},{\"nam"
     "e\":\"order_id\",\"type\":\"string\"},{\"name\":\"buyer_id\",\"type\":"
     "\"string\"},{\"name\":\"refund_id\",\"type\":\"string\"},{\"name\":\"s"
     "tatus\",\"type\":{\"name\":\"trustindex.RefundStatus\",\"type\":\"enum"
     "\",\"symbols\":[\"REQUESTED\",\"APPROVED\",\"REJECTED\",\"COMPLETED\","
     "\"ESCALATED\",\"ARBITRATED\"]}},{\"name\":\"kind\",\"type\":{\"name\":"
     "\"trustindex.RefundKind\",\"type\":\"enum\",\"symbols\":[\"REFUND_ONLY"
     "\",\"RETURN_AND_REFUND\"]}},{\"name\":\"reason\",\"type\":{\"name\":\""
     "trustindex.RefundReason\",\"type\":\"enum\",\"symbols\":[\"NO_REASON_7"
     "D\",\"QUALITY\",\"NOT_AS_DESCRIBED\",\"COUNTERFEIT\",\"NOT_RECEIVED\","
     "\"DAMAGED\",\"LATE_DELIVERY\",\"OTHER\"]}},{\"name\":\"amount_cents\","
     "\"type\":\"long\"},{\"name\":\"responsible\",\"type\":[\"null\",{\"nam"
     "e\":\"trustindex.Responsible\",\"type\":\"enum\",\"symbols\":[\"MERCHA"
     "NT\",\"BUYER\",\"PLATFORM\",\"LOGISTICS\"]}]}]}"},
    {"review_event.avsc", 0x8ea52ce41f992d47ULL,
     "{\"name\":\"trustindex.ReviewEvent\",\"type\":\"record\",\"fields\":[{"
     "\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"event_time\",\""
     "type\":\"long\"},{\"name\":\"merchant_id\",\"type\":\"string\"},{\"nam"
     "e\":\"order_id\",\"type\":\"string\"},{\"name\":\"buyer_id\",\"type\":"
     "\"string\"},{\"name\":\"rating\",\"type\":\"int\"},{\"name\":\"quality"
     "_rating\",\"type\":[\"null\",\"int\"]},{\"name\":\"service_rating\",\""
     "type\":[\"null\",\"int\"]},{\"name\":\"logistics_rating\",\"type\":[\""
     "null\",\"int\"]},{\"name\":\"value_rating\",\"type\":[\"null\",\"int\""
     "]},{\"name\":\"has_media\",\"type\":\"boolean\"},{\"name\":\"is_follow"
     "up\",\"type\":\"boolean\"},{\"name\":\"flagged\",\"type\":\"boolean\"}"
     "]}"},
    {"trust_score.avsc", 0xaa452929f4c96540ULL,
     "{\"name\":\"trustindex.TrustScore\",\"type\":\"record\",\"fields\":[{"
     "\"name\":\"merchant_id\",\"type\":\"string\"},{\"name\":\"score\",\"ty"
     "pe\":\"double\"},{\"name\":\"tier\",\"type\":\"int\"},{\"name\":\"conf"
     "idence\",\"type\":\"double\"},{\"name\":\"sub_scores\",\"type\":{\"typ"
     "e\":\"map\",\"values\":\"double\"}},{\"name\":\"reasons\",\"type\":{\""
     "type\":\"array\",\"items\":\"string\"}},{\"name\":\"version\",\"type\""
     ":\"long\"},{\"name\":\"model_version\",\"type\":\"string\"},{\"name\":"
     "\"as_of\",\"type\":\"long\"}]}"},
};

/* Apache Avro for Python 1.11.1's canonical_form and its fingerprint. */
static const golden_t python_golden[] = {
    {"order_event.avsc", 0x79f8faa18bc5d14dULL,
     "{\"name\":\"trustindex.OrderEvent\",\"type\":\"record\",\"fields\""
     ":[{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"event_ti"
     "me\",\"type\":{\"type\":\"long\"}},{\"name\":\"merchant_id\",\"typ"
     "e\":\"string\"},{\"name\":\"order_id\",\"type\":\"string\"},{\"nam"
     "e\":\"buyer_id\",\"type\":\"string\"},{\"name\":\"status\",\"type"
     "\":{\"name\":\"trustindex.OrderStatus\",\"type\":\"enum\",\"symbol"
     "s\":[\"CREATED\",\"PAID\",\"SHIPPED\",\"DELIVERED\",\"COMPLETED\","
     "\"CANCELLED\"]}},{\"name\":\"amount_cents\",\"type\":\"long\"},{\""
     "name\":\"channel\",\"type\":{\"name\":\"trustindex.Channel\",\"typ"
     "e\":\"enum\",\"symbols\":[\"LIVE\",\"SHORT_VIDEO\",\"SHELF\"]}},{"
     "\"name\":\"cancelled_by\",\"type\":[\"null\",{\"name\":\"trustinde"
     "x.CancelledBy\",\"type\":\"enum\",\"symbols\":[\"BUYER\",\"MERCHAN"
     "T\",\"PLATFORM\"]}]},{\"name\":\"promised_ship_by\",\"type\":[\"nu"
     "ll\",{\"type\":\"long\"}]},{\"name\":\"promised_delivery_by\",\"ty"
     "pe\":[\"null\",{\"type\":\"long\"}]},{\"name\":\"tracking_valid\","
     "\"type\":[\"null\",\"boolean\"]},{\"name\":\"paid_at\",\"type\":["
     "\"null\",{\"type\":\"long\"}]},{\"name\":\"shipped_at\",\"type\":["
     "\"null\",{\"type\":\"long\"}]},{\"name\":\"buyer_order_seq\",\"typ"
     "e\":\"int\"}]}"},
    {"order_event.v1.avsc", 0x81d9979915d650bdULL,
     "{\"name\":\"trustindex.OrderEvent\",\"type\":\"record\",\"fields\""
     ":[{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"event_ti"
     "me\",\"type\":{\"type\":\"long\"}},{\"name\":\"merchant_id\",\"typ"
     "e\":\"string\"},{\"name\":\"order_id\",\"type\":\"string\"},{\"nam"
     "e\":\"buyer_id\",\"type\":\"string\"},{\"name\":\"status\",\"type"
     "\":{\"name\":\"trustindex.OrderStatus\",\"type\":\"enum\",\"symbol"
     "s\":[\"CREATED\",\"PAID\",\"SHIPPED\",\"DELIVERED\",\"COMPLETED\","
     "\"CANCELLED\"]}},{\"name\":\"amount_cents\",\"type\":\"long\"},{\""
     "name\":\"channel\",\"type\":{\"name\":\"trustindex.Channel\",\"typ"
     "e\":\"enum\",\"symbols\":[\"LIVE\",\"SHORT_VIDEO\",\"SHELF\"]}},{"
     "\"name\":\"cancelled_by\",\"type\":[\"null\",{\"name\":\"trustinde"
     "x.CancelledBy\",\"type\":\"enum\",\"symbols\":[\"BUYER\",\"MERCHAN"
     "T\",\"PLATFORM\"]}]},{\"name\":\"promised_ship_by\",\"type\":[\"nu"
     "ll\",{\"type\":\"long\"}]},{\"name\":\"promised_delivery_by\",\"ty"
     "pe\":[\"null\",{\"type\":\"long\"}]},{\"name\":\"tracking_valid\","
     "\"type\":[\"null\",\"boolean\"]}]}"},
    {"refund_event.avsc", 0x6d07066d5e8a132bULL,
     "{\"name\":\"trustindex.RefundEvent\",\"type\":\"record\",\"fields"
     "\":[{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"event_"
     "time\",\"type\":{\"type\":\"long\"}},{\"name\":\"merchant_id\",\"t"
     "ype\":\"string\"},{\"name\":\"order_id\",\"type\":\"string\"},{\"n"
     "ame\":\"buyer_id\",\"type\":\"string\"},{\"name\":\"refund_id\",\""
     "type\":\"string\"},{\"name\":\"status\",\"type\":{\"name\":\"trust"
     "index.RefundStatus\",\"type\":\"enum\",\"symbols\":[\"REQUESTED\","
     "\"APPROVED\",\"REJECTED\",\"COMPLETED\",\"ESCALATED\",\"ARBITRATED"
     "\"]}},{\"name\":\"kind\",\"type\":{\"name\":\"trustindex.RefundKin"
     "d\",\"type\":\"enum\",\"symbols\":[\"REFUND_ONLY\",\"RETURN_AND_RE"
     "FUND\"]}},{\"name\":\"reason\",\"type\":{\"name\":\"trustindex.Ref"
     "undReason\",\"type\":\"enum\",\"symbols\":[\"NO_REASON_7D\",\"QUAL"
     "ITY\",\"NOT_AS_DESCRIBED\",\"COUNTERFEIT\",\"NOT_RECEIVED\",\"DAMA"
     "GED\",\"LATE_DELIVERY\",\"OTHER\"]}},{\"name\":\"amount_cents\",\""
     "type\":\"long\"},{\"name\":\"responsible\",\"type\":[\"null\",{\"n"
     "ame\":\"trustindex.Responsible\",\"type\":\"enum\",\"symbols\":[\""
     "MERCHANT\",\"BUYER\",\"PLATFORM\",\"LOGISTICS\"]}]},{\"name\":\"re"
     "quested_at\",\"type\":[\"null\",{\"type\":\"long\"}]},{\"name\":\""
     "was_rejected\",\"type\":\"boolean\"}]}"},
    {"refund_event.v1.avsc", 0xa1625fa7551ea5c2ULL,
     "{\"name\":\"trustindex.RefundEvent\",\"type\":\"record\",\"fields"
     "\":[{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"event_"
     "time\",\"type\":{\"type\":\"long\"}},{\"name\":\"merchant_id\",\"t"
     "ype\":\"string\"},{\"name\":\"order_id\",\"type\":\"string\"},{\"n"
     "ame\":\"buyer_id\",\"type\":\"string\"},{\"name\":\"refund_id\",\""
     "type\":\"string\"},{\"name\":\"status\",\"type\":{\"name\":\"trust"
     "index.RefundStatus\",\"type\":\"enum\",\"symbols\":[\"REQUESTED\","
     "\"APPROVED\",\"REJECTED\",\"COMPLETED\",\"ESCALATED\",\"ARBITRATED"
     "\"]}},{\"name\":\"kind\",\"type\":{\"name\":\"trustindex.RefundKin"
     "d\",\"type\":\"enum\",\"symbols\":[\"REFUND_ONLY\",\"RETURN_AND_RE"
     "FUND\"]}},{\"name\":\"reason\",\"type\":{\"name\":\"trustindex.Ref"
     "undReason\",\"type\":\"enum\",\"symbols\":[\"NO_REASON_7D\",\"QUAL"
     "ITY\",\"NOT_AS_DESCRIBED\",\"COUNTERFEIT\",\"NOT_RECEIVED\",\"DAMA"
     "GED\",\"LATE_DELIVERY\",\"OTHER\"]}},{\"name\":\"amount_cents\",\""
     "type\":\"long\"},{\"name\":\"responsible\",\"type\":[\"null\",{\"n"
     "ame\":\"trustindex.Responsible\",\"type\":\"enum\",\"symbols\":[\""
     "MERCHANT\",\"BUYER\",\"PLATFORM\",\"LOGISTICS\"]}]}]}"},
    {"review_event.avsc", 0xfc1ace34fafe6c08ULL,
     "{\"name\":\"trustindex.ReviewEvent\",\"type\":\"record\",\"fields"
     "\":[{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"event_"
     "time\",\"type\":{\"type\":\"long\"}},{\"name\":\"merchant_id\",\"t"
     "ype\":\"string\"},{\"name\":\"order_id\",\"type\":\"string\"},{\"n"
     "ame\":\"buyer_id\",\"type\":\"string\"},{\"name\":\"rating\",\"typ"
     "e\":\"int\"},{\"name\":\"quality_rating\",\"type\":[\"null\",\"int"
     "\"]},{\"name\":\"service_rating\",\"type\":[\"null\",\"int\"]},{\""
     "name\":\"logistics_rating\",\"type\":[\"null\",\"int\"]},{\"name\""
     ":\"value_rating\",\"type\":[\"null\",\"int\"]},{\"name\":\"has_med"
     "ia\",\"type\":\"boolean\"},{\"name\":\"is_followup\",\"type\":\"bo"
     "olean\"},{\"name\":\"flagged\",\"type\":\"boolean\"}]}"},
    {"trust_score.avsc", 0x75c2dacbb771085fULL,
     "{\"name\":\"trustindex.TrustScore\",\"type\":\"record\",\"fields\""
     ":[{\"name\":\"merchant_id\",\"type\":\"string\"},{\"name\":\"score"
     "\",\"type\":\"double\"},{\"name\":\"tier\",\"type\":\"int\"},{\"na"
     "me\":\"confidence\",\"type\":\"double\"},{\"name\":\"sub_scores\","
     "\"type\":{\"type\":\"map\",\"values\":\"double\"}},{\"name\":\"rea"
     "sons\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},{\"name"
     "\":\"version\",\"type\":\"long\"},{\"name\":\"model_version\",\"ty"
     "pe\":\"string\"},{\"name\":\"as_of\",\"type\":{\"type\":\"long\"}}"
     "]}"},
    {"extra", 0x3946b2ef5e41b5a1ULL,
     "{\"name\":\"n.r\",\"type\":\"record\",\"fields\":[{\"name\":\"a\","
     "\"type\":{\"type\":\"long\"}},{\"name\":\"b\",\"type\":{\"type\":"
     "\"array\",\"items\":{\"type\":\"string\"}}},{\"name\":\"c\",\"type"
     "\":{\"type\":\"map\",\"values\":{\"type\":\"bytes\"}}},{\"name\":"
     "\"d\",\"type\":[\"null\",{\"type\":\"int\"}]},{\"name\":\"e\",\"ty"
     "pe\":\"long\"}]}"},
};

/* The schema behind python_golden's "extra". */
static const char extra_json[] =
    "{\"type\":\"record\",\"name\":\"r\",\"namespace\":\"n\",\"fields\":["
    "{\"name\":\"a\",\"type\":{\"type\":\"long\",\"foo\":\"x\"}},"
    "{\"name\":\"b\",\"type\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"string\",\"logicalType\":\"uuid\"}}},"
    "{\"name\":\"c\",\"type\":{\"type\":\"map\",\"values\":"
    "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":4,"
    "\"scale\":2}}},"
    "{\"name\":\"d\",\"type\":[\"null\",{\"type\":\"int\","
    "\"logicalType\":\"date\"}]},"
    "{\"name\":\"e\",\"type\":{\"type\":\"long\"}}]}";

/* CRC-64-AVRO one bit at a time, straight from the polynomial. */
static uint64_t crc64_bitwise(const void *buf, size_t len) {
    const unsigned char *p = buf;
    uint64_t fp = TD_FP_EMPTY;

    for (size_t i = 0; i < len; i++) {
        fp ^= p[i];
        for (int b = 0; b < 8; b++)
            fp = (fp >> 1) ^ (TD_FP_EMPTY & (0 - (fp & 1)));
    }
    return fp;
}

static avro_schema_t parse(const char *json) {
    avro_schema_t s = NULL;

    assert_int_equal(avro_schema_from_json_length(json, strlen(json), &s), 0);
    return s;
}

static const char *embedded(const char *file) {
    const char *json = td_h_schema_json(file);

    if (json == NULL) fail_msg("no embedded schema %s", file);
    return json;
}

static void test_crc64_of_nothing_is_empty(void **state) {
    (void)state;
    assert_true(td_fp_crc64(NULL, 0) == TD_FP_EMPTY);
    assert_true(td_fp_crc64("", 0) == 0xc15d213aa4d7a795ULL);
}

static void test_crc64_table_matches_bitwise_definition(void **state) {
    unsigned char buf[512];

    (void)state;
    /* Every byte value at every CRC state the table lookup can see. */
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 7 + (i >> 8));
    for (size_t n = 0; n <= sizeof(buf); n += 37)
        assert_true(td_fp_crc64(buf, n) == crc64_bitwise(buf, n));
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;

        assert_true(td_fp_crc64(&c, 1) == crc64_bitwise(&c, 1));
    }
}

static void test_crc64_matches_spec_vectors(void **state) {
    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(spec_vectors); i++) {
        const spec_vector_t *v = &spec_vectors[i];

        assert_true(td_fp_crc64(v->canonical, strlen(v->canonical)) == v->fp);
    }
}

static void test_crc64_update_continues_a_crc(void **state) {
    const char *s = "{\"type\":\"map\",\"values\":\"string\"}";
    size_t n = strlen(s);

    (void)state;
    for (size_t cut = 0; cut <= n; cut++) {
        uint64_t fp = td_fp_crc64_update(TD_FP_EMPTY, s, cut);

        fp = td_fp_crc64_update(fp, s + cut, n - cut);
        assert_true(fp == td_fp_crc64(s, n));
    }
}

static void test_canonical_matches_spec_vectors(void **state) {
    char buf[1024], errstr[256];

    (void)state;
    for (size_t i = 0; i < TD_ARRAY_LEN(spec_vectors); i++) {
        const spec_vector_t *v = &spec_vectors[i];
        avro_schema_t s;
        size_t len = 0;
        uint64_t fp = 0;

        if (!v->parses) continue;
        s = parse(v->input);
        assert_int_equal(
            td_fp_canonical(s, buf, sizeof(buf), &len, errstr, sizeof(errstr)),
            TD_OK);
        assert_string_equal(buf, v->canonical);
        assert_int_equal(len, strlen(v->canonical));
        assert_int_equal(td_fp_schema(s, &fp, errstr, sizeof(errstr)), TD_OK);
        assert_true(fp == v->fp);
        avro_schema_decref(s);
    }
}

static void test_canonical_matches_golden_for_embedded_schemas(void **state) {
    char buf[4096], errstr[256];

    (void)state;
    assert_int_equal(td_schema_src_cnt, TD_ARRAY_LEN(golden));
    for (size_t i = 0; i < TD_ARRAY_LEN(golden); i++) {
        avro_schema_t s = parse(embedded(golden[i].file));
        size_t len = 0;
        uint64_t fp = 0;

        assert_int_equal(
            td_fp_canonical(s, buf, sizeof(buf), &len, errstr, sizeof(errstr)),
            TD_OK);
        assert_string_equal(buf, golden[i].canonical);
        assert_int_equal(td_fp_schema(s, &fp, errstr, sizeof(errstr)), TD_OK);
        assert_true(fp == golden[i].fp);
        assert_true(fp == td_fp_crc64(buf, len));
        avro_schema_decref(s);
    }
}

static void test_canonical_drops_logical_types_and_attributes(void **state) {
    avro_schema_t s =
        parse("{\"type\":\"record\",\"name\":\"r\",\"namespace\":\"n\","
              "\"doc\":\"d\",\"aliases\":[\"x\"],\"fields\":["
              "{\"name\":\"t\",\"doc\":\"d\",\"default\":0,\"type\":"
              "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
              "{\"name\":\"u\",\"type\":{\"type\":\"string\","
              "\"logicalType\":\"uuid\"}}]}");
    char buf[256], errstr[256];

    (void)state;
    assert_int_equal(
        td_fp_canonical(s, buf, sizeof(buf), NULL, errstr, sizeof(errstr)),
        TD_OK);
    assert_string_equal(buf, "{\"name\":\"n.r\",\"type\":\"record\",\"fields\":"
                             "[{\"name\":\"t\",\"type\":\"long\"},"
                             "{\"name\":\"u\",\"type\":\"string\"}]}");
    avro_schema_decref(s);
}

static void test_canonical_writes_named_type_once_then_by_name(void **state) {
    avro_schema_t s = parse(
        "{\"type\":\"record\",\"name\":\"r\",\"namespace\":\"n\",\"fields\":["
        "{\"name\":\"a\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
        "\"symbols\":[\"X\"]}},{\"name\":\"b\",\"type\":\"E\"}]}");
    char buf[256], errstr[256];

    (void)state;
    assert_int_equal(
        td_fp_canonical(s, buf, sizeof(buf), NULL, errstr, sizeof(errstr)),
        TD_OK);
    assert_string_equal(buf, "{\"name\":\"n.r\",\"type\":\"record\",\"fields\":"
                             "[{\"name\":\"a\",\"type\":{\"name\":\"n.E\","
                             "\"type\":\"enum\",\"symbols\":[\"X\"]}},"
                             "{\"name\":\"b\",\"type\":\"n.E\"}]}");
    avro_schema_decref(s);
}

static void test_canonical_escapes_json_strings(void **state) {
    avro_schema_t s =
        parse("{\"type\":\"enum\",\"name\":\"e\","
              "\"symbols\":[\"a\\\"b\",\"c\\\\d\",\"e\\u0001\"]}");
    char buf[256], errstr[256];

    (void)state;
    assert_int_equal(
        td_fp_canonical(s, buf, sizeof(buf), NULL, errstr, sizeof(errstr)),
        TD_OK);
    assert_string_equal(buf, "{\"name\":\"e\",\"type\":\"enum\",\"symbols\":"
                             "[\"a\\\"b\",\"c\\\\d\",\"e\\u0001\"]}");
    avro_schema_decref(s);
}

static void test_canonical_reports_needed_size_when_buffer_small(void **state) {
    avro_schema_t s = parse("{\"type\":\"map\",\"values\":\"string\"}");
    const char *want = "{\"type\":\"map\",\"values\":\"string\"}";
    char buf[64], errstr[256];
    size_t len = 0;

    (void)state;
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(td_fp_canonical(s, buf, 10, &len, errstr, sizeof(errstr)),
                     TD_ERR);
    assert_int_equal(len, strlen(want));
    assert_int_equal(buf[9], '\0');
    assert_int_equal(buf[10], 'x');
    assert_non_null(strstr(errstr, "needs"));
    /* Exactly the length is one byte short: the NUL needs room too. */
    assert_int_equal(td_fp_canonical(s, buf, len, &len, errstr, sizeof(errstr)),
                     TD_ERR);
    assert_int_equal(
        td_fp_canonical(s, buf, len + 1, &len, errstr, sizeof(errstr)), TD_OK);
    assert_string_equal(buf, want);
    assert_int_equal(td_fp_canonical(s, NULL, 0, &len, errstr, sizeof(errstr)),
                     TD_ERR);
    assert_int_equal(len, strlen(want));
    avro_schema_decref(s);
}

static void test_canonical_rejects_null_schema(void **state) {
    char buf[16], errstr[256];
    uint64_t fp;

    (void)state;
    assert_int_equal(
        td_fp_canonical(NULL, buf, sizeof(buf), NULL, errstr, sizeof(errstr)),
        TD_ERR);
    assert_int_equal(td_fp_schema(NULL, &fp, errstr, sizeof(errstr)), TD_ERR);
}

static void test_objprim_matches_python_for_every_schema(void **state) {
    char buf[4096], errstr[256];

    (void)state;
    assert_int_equal(td_schema_src_cnt + 1, TD_ARRAY_LEN(python_golden));
    for (size_t i = 0; i < TD_ARRAY_LEN(python_golden); i++) {
        const golden_t *g = &python_golden[i];
        const char *json =
            strcmp(g->file, "extra") == 0 ? extra_json : embedded(g->file);
        avro_schema_t s = parse(json);
        size_t len = 0;
        uint64_t fp = 0, spec = 0;

        assert_int_equal(td_fp_canonical_objprim(s, json, buf, sizeof(buf),
                                                 &len, errstr, sizeof(errstr)),
                         TD_OK);
        assert_string_equal(buf, g->canonical);
        assert_int_equal(
            td_fp_schema_objprim(s, json, &fp, errstr, sizeof(errstr)), TD_OK);
        assert_true(fp == g->fp);
        /* Every schema here has a logical type: the two forms differ. */
        assert_int_equal(td_fp_schema(s, &spec, errstr, sizeof(errstr)), TD_OK);
        assert_true(spec != fp);
        avro_schema_decref(s);
    }
}

static void test_objprim_equals_spec_without_attributes(void **state) {
    const char *json = "{\"type\":\"record\",\"name\":\"r\",\"fields\":["
                       "{\"name\":\"a\",\"type\":{\"type\":\"long\"}},"
                       "{\"name\":\"b\",\"type\":[\"null\",\"int\"]}]}";
    avro_schema_t s = parse(json);
    char errstr[256];
    uint64_t fp = 0, spec = 1;

    (void)state;
    assert_int_equal(td_fp_schema_objprim(s, json, &fp, errstr, sizeof(errstr)),
                     TD_OK);
    assert_int_equal(td_fp_schema(s, &spec, errstr, sizeof(errstr)), TD_OK);
    assert_true(fp == spec);
    avro_schema_decref(s);
}

static void test_objprim_rejects_missing_or_bad_json(void **state) {
    avro_schema_t s = parse("\"long\"");
    char errstr[256];
    uint64_t fp;

    (void)state;
    assert_int_equal(td_fp_schema_objprim(s, NULL, &fp, errstr, sizeof(errstr)),
                     TD_ERR);
    assert_int_equal(
        td_fp_schema_objprim(s, "{\"type\":", &fp, errstr, sizeof(errstr)),
        TD_ERR);
    assert_non_null(strstr(errstr, "JSON"));
    avro_schema_decref(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc64_of_nothing_is_empty),
        cmocka_unit_test(test_crc64_table_matches_bitwise_definition),
        cmocka_unit_test(test_crc64_matches_spec_vectors),
        cmocka_unit_test(test_crc64_update_continues_a_crc),
        cmocka_unit_test(test_canonical_matches_spec_vectors),
        cmocka_unit_test(test_canonical_matches_golden_for_embedded_schemas),
        cmocka_unit_test(test_canonical_drops_logical_types_and_attributes),
        cmocka_unit_test(test_canonical_writes_named_type_once_then_by_name),
        cmocka_unit_test(test_canonical_escapes_json_strings),
        cmocka_unit_test(test_canonical_reports_needed_size_when_buffer_small),
        cmocka_unit_test(test_canonical_rejects_null_schema),
        cmocka_unit_test(test_objprim_matches_python_for_every_schema),
        cmocka_unit_test(test_objprim_equals_spec_without_attributes),
        cmocka_unit_test(test_objprim_rejects_missing_or_bad_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
