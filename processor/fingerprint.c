/*
 * fingerprint.c - CRC-64-AVRO and Parsing Canonical Form (see fingerprint.h).
 *
 * The PCF is produced by one recursive walk over a parsed avro_schema_t that
 * writes into a pcf_out_t: a bounded buffer (possibly absent) plus a running
 * CRC, so td_fp_canonical() and td_fp_schema() share the walk and the
 * fingerprint never needs a buffer. The spec's transformations map onto
 * avro-c's parsed form as follows:
 *
 *   PRIMITIVES  avro-c keeps no attributes on primitives, so a primitive is
 *               always written as its bare name ("long", even for a
 *               timestamp-millis logical type).
 *   FULLNAMES   named types are written with namespace + "." + name; avro-c
 *               has already resolved inherited and dotted namespaces.
 *   STRIP/ORDER only name, type, fields, symbols, items, values, size are
 *               written, in that order; doc, aliases, defaults, order and
 *               logicalType are not kept by avro-c or are skipped here.
 *   references  a named type used again is an AVRO_LINK in avro-c and is
 *               written as its quoted full name, as the spec requires.
 *   STRINGS     names and symbols are JSON-escaped (quote, backslash and
 *               control characters); other bytes are copied as UTF-8.
 *   WHITESPACE  none is written.
 *
 * Other libraries' form (td_fp_*_objprim): Apache Avro for Python 1.11,
 * goavro and the Rust crate before its fix write a primitive that carries
 * attributes (a logicalType, any other property) as {"type":"long"}
 * instead of "long". avro-c has dropped those attributes by then, so the
 * walk reads the schema's JSON alongside: a primitive whose JSON is an
 * object with more than its "type" is written as that object.
 *
 * The CRC table is the spec's: T[i] = i shifted right 8 times, xoring in
 * EMPTY whenever a 1 falls off. tests/test_fingerprint.c recomputes it.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common.h"
#include "fingerprint.h"

/* Records nested deeper than this are refused rather than recursed into. */
#define PCF_MAX_DEPTH 64

/* clang-format off */
static const uint64_t crc64_tab[256] = {
    0x0000000000000000, 0x2cf1cba6b75351fa, 0x59e3974d6ea6a3f4,
    0x75125cebd9f5f20e, 0xb3c72e9add4d47e8, 0x9f36e53c6a1e1612,
    0xea24b9d7b3ebe41c, 0xc6d5727104b8b5e6, 0xe5341f40f335c0fb,
    0xc9c5d4e644669101, 0xbcd7880d9d93630f, 0x902643ab2ac032f5,
    0x56f331da2e788713, 0x7a02fa7c992bd6e9, 0x0f10a69740de24e7,
    0x23e16d31f78d751d, 0x48d27cf4afc4cedd, 0x6423b75218979f27,
    0x1131ebb9c1626d29, 0x3dc0201f76313cd3, 0xfb15526e72898935,
    0xd7e499c8c5dad8cf, 0xa2f6c5231c2f2ac1, 0x8e070e85ab7c7b3b,
    0xade663b45cf10e26, 0x8117a812eba25fdc, 0xf405f4f93257add2,
    0xd8f43f5f8504fc28, 0x1e214d2e81bc49ce, 0x32d0868836ef1834,
    0x47c2da63ef1aea3a, 0x6b3311c55849bbc0, 0x91a4f9e95f899dba,
    0xbd55324fe8dacc40, 0xc8476ea4312f3e4e, 0xe4b6a502867c6fb4,
    0x2263d77382c4da52, 0x0e921cd535978ba8, 0x7b80403eec6279a6,
    0x57718b985b31285c, 0x7490e6a9acbc5d41, 0x58612d0f1bef0cbb,
    0x2d7371e4c21afeb5, 0x0182ba427549af4f, 0xc757c83371f11aa9,
    0xeba60395c6a24b53, 0x9eb45f7e1f57b95d, 0xb24594d8a804e8a7,
    0xd976851df04d5367, 0xf5874ebb471e029d, 0x809512509eebf093,
    0xac64d9f629b8a169, 0x6ab1ab872d00148f, 0x464060219a534575,
    0x33523cca43a6b77b, 0x1fa3f76cf4f5e681, 0x3c429a5d0378939c,
    0x10b351fbb42bc266, 0x65a10d106dde3068, 0x4950c6b6da8d6192,
    0x8f85b4c7de35d474, 0xa3747f616966858e, 0xd666238ab0937780,
    0xfa97e82c07c0267a, 0xa1f3b1a7f6bc745f, 0x8d027a0141ef25a5,
    0xf81026ea981ad7ab, 0xd4e1ed4c2f498651, 0x12349f3d2bf133b7,
    0x3ec5549b9ca2624d, 0x4bd7087045579043, 0x6726c3d6f204c1b9,
    0x44c7aee70589b4a4, 0x68366541b2dae55e, 0x1d2439aa6b2f1750,
    0x31d5f20cdc7c46aa, 0xf700807dd8c4f34c, 0xdbf14bdb6f97a2b6,
    0xaee31730b66250b8, 0x8212dc9601310142, 0xe921cd535978ba82,
    0xc5d006f5ee2beb78, 0xb0c25a1e37de1976, 0x9c3391b8808d488c,
    0x5ae6e3c98435fd6a, 0x7617286f3366ac90, 0x03057484ea935e9e,
    0x2ff4bf225dc00f64, 0x0c15d213aa4d7a79, 0x20e419b51d1e2b83,
    0x55f6455ec4ebd98d, 0x79078ef873b88877, 0xbfd2fc8977003d91,
    0x9323372fc0536c6b, 0xe6316bc419a69e65, 0xcac0a062aef5cf9f,
    0x3057484ea935e9e5, 0x1ca683e81e66b81f, 0x69b4df03c7934a11,
    0x454514a570c01beb, 0x839066d47478ae0d, 0xaf61ad72c32bfff7,
    0xda73f1991ade0df9, 0xf6823a3fad8d5c03, 0xd563570e5a00291e,
    0xf9929ca8ed5378e4, 0x8c80c04334a68aea, 0xa0710be583f5db10,
    0x66a47994874d6ef6, 0x4a55b232301e3f0c, 0x3f47eed9e9ebcd02,
    0x13b6257f5eb89cf8, 0x788534ba06f12738, 0x5474ff1cb1a276c2,
    0x2166a3f7685784cc, 0x0d976851df04d536, 0xcb421a20dbbc60d0,
    0xe7b3d1866cef312a, 0x92a18d6db51ac324, 0xbe5046cb024992de,
    0x9db12bfaf5c4e7c3, 0xb140e05c4297b639, 0xc452bcb79b624437,
    0xe8a377112c3115cd, 0x2e7605602889a02b, 0x0287cec69fdaf1d1,
    0x7795922d462f03df, 0x5b64598bf17c5225, 0xc15d213aa4d7a795,
    0xedacea9c1384f66f, 0x98beb677ca710461, 0xb44f7dd17d22559b,
    0x729a0fa0799ae07d, 0x5e6bc406cec9b187, 0x2b7998ed173c4389,
    0x0788534ba06f1273, 0x24693e7a57e2676e, 0x0898f5dce0b13694,
    0x7d8aa9373944c49a, 0x517b62918e179560, 0x97ae10e08aaf2086,
    0xbb5fdb463dfc717c, 0xce4d87ade4098372, 0xe2bc4c0b535ad288,
    0x898f5dce0b136948, 0xa57e9668bc4038b2, 0xd06cca8365b5cabc,
    0xfc9d0125d2e69b46, 0x3a487354d65e2ea0, 0x16b9b8f2610d7f5a,
    0x63abe419b8f88d54, 0x4f5a2fbf0fabdcae, 0x6cbb428ef826a9b3,
    0x404a89284f75f849, 0x3558d5c396800a47, 0x19a91e6521d35bbd,
    0xdf7c6c14256bee5b, 0xf38da7b29238bfa1, 0x869ffb594bcd4daf,
    0xaa6e30fffc9e1c55, 0x50f9d8d3fb5e3a2f, 0x7c0813754c0d6bd5,
    0x091a4f9e95f899db, 0x25eb843822abc821, 0xe33ef64926137dc7,
    0xcfcf3def91402c3d, 0xbadd610448b5de33, 0x962caaa2ffe68fc9,
    0xb5cdc793086bfad4, 0x993c0c35bf38ab2e, 0xec2e50de66cd5920,
    0xc0df9b78d19e08da, 0x060ae909d526bd3c, 0x2afb22af6275ecc6,
    0x5fe97e44bb801ec8, 0x7318b5e20cd34f32, 0x182ba427549af4f2,
    0x34da6f81e3c9a508, 0x41c8336a3a3c5706, 0x6d39f8cc8d6f06fc,
    0xabec8abd89d7b31a, 0x871d411b3e84e2e0, 0xf20f1df0e77110ee,
    0xdefed65650224114, 0xfd1fbb67a7af3409, 0xd1ee70c110fc65f3,
    0xa4fc2c2ac90997fd, 0x880de78c7e5ac607, 0x4ed895fd7ae273e1,
    0x62295e5bcdb1221b, 0x173b02b01444d015, 0x3bcac916a31781ef,
    0x60ae909d526bd3ca, 0x4c5f5b3be5388230, 0x394d07d03ccd703e,
    0x15bccc768b9e21c4, 0xd369be078f269422, 0xff9875a13875c5d8,
    0x8a8a294ae18037d6, 0xa67be2ec56d3662c, 0x859a8fdda15e1331,
    0xa96b447b160d42cb, 0xdc791890cff8b0c5, 0xf088d33678abe13f,
    0x365da1477c1354d9, 0x1aac6ae1cb400523, 0x6fbe360a12b5f72d,
    0x434ffdaca5e6a6d7, 0x287cec69fdaf1d17, 0x048d27cf4afc4ced,
    0x719f7b249309bee3, 0x5d6eb082245aef19, 0x9bbbc2f320e25aff,
    0xb74a095597b10b05, 0xc25855be4e44f90b, 0xeea99e18f917a8f1,
    0xcd48f3290e9addec, 0xe1b9388fb9c98c16, 0x94ab6464603c7e18,
    0xb85aafc2d76f2fe2, 0x7e8fddb3d3d79a04, 0x527e16156484cbfe,
    0x276c4afebd7139f0, 0x0b9d81580a22680a, 0xf10a69740de24e70,
    0xddfba2d2bab11f8a, 0xa8e9fe396344ed84, 0x8418359fd417bc7e,
    0x42cd47eed0af0998, 0x6e3c8c4867fc5862, 0x1b2ed0a3be09aa6c,
    0x37df1b05095afb96, 0x143e7634fed78e8b, 0x38cfbd924984df71,
    0x4ddde17990712d7f, 0x612c2adf27227c85, 0xa7f958ae239ac963,
    0x8b08930894c99899, 0xfe1acfe34d3c6a97, 0xd2eb0445fa6f3b6d,
    0xb9d81580a22680ad, 0x9529de261575d157, 0xe03b82cdcc802359,
    0xccca496b7bd372a3, 0x0a1f3b1a7f6bc745, 0x26eef0bcc83896bf,
    0x53fcac5711cd64b1, 0x7f0d67f1a69e354b, 0x5cec0ac051134056,
    0x701dc166e64011ac, 0x050f9d8d3fb5e3a2, 0x29fe562b88e6b258,
    0xef2b245a8c5e07be, 0xc3daeffc3b0d5644, 0xb6c8b317e2f8a44a,
    0x9a3978b155abf5b0,
};
/* clang-format on */

/* Where the walk writes: bytes past size are counted but dropped. */
typedef struct pcf_out_s {
    char *buf;
    size_t size;
    size_t len;
    uint64_t crc;
    int objprim; /* other libraries' form: see the top of the file */
} pcf_out_t;

uint64_t td_fp_crc64_update(uint64_t fp, const void *buf, size_t len) {
    const unsigned char *p = buf;

    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ crc64_tab[(fp ^ p[i]) & 0xff];
    return fp;
}

uint64_t td_fp_crc64(const void *buf, size_t len) {
    return td_fp_crc64_update(TD_FP_EMPTY, buf, len);
}

static void out_mem(pcf_out_t *o, const char *s, size_t n) {
    if (o->len < o->size) {
        size_t room = o->size - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
    o->crc = td_fp_crc64_update(o->crc, s, n);
}

static void out_str(pcf_out_t *o, const char *s) {
    out_mem(o, s, strlen(s));
}

/* Writes s as the inside of a JSON string literal. Runs of plain bytes are
 * written at once so the common case is one out_mem() per name. */
static void out_escaped(pcf_out_t *o, const char *s) {
    static const char hex[] = "0123456789abcdef";
    const char *run = s;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6];
        size_t n = 0;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            n = 6;
        } else {
            continue;
        }
        out_mem(o, run, (size_t)(s - run));
        out_mem(o, esc, n);
        run = s + 1;
    }
    out_mem(o, run, (size_t)(s - run));
}

/* Writes "namespace.name" (or "name" without a namespace), quoted. */
static void out_fullname(pcf_out_t *o, avro_schema_t s) {
    const char *ns = avro_schema_namespace(s);

    out_mem(o, "\"", 1);
    if (ns != NULL && *ns != '\0') {
        out_escaped(o, ns);
        out_mem(o, ".", 1);
    }
    out_escaped(o, avro_schema_name(s));
    out_mem(o, "\"", 1);
}

/* A primitive: "long", or {"type":"long"} in the other libraries' form when
 * its JSON j carried attributes. */
static void out_primitive(pcf_out_t *o, const char *name, const json_t *j) {
    int obj = o->objprim && json_is_object(j) && json_object_size(j) > 1;

    out_str(o, obj ? "{\"type\":\"" : "\"");
    out_str(o, name);
    out_str(o, obj ? "\"}" : "\"");
}

/* The JSON of field i of record JSON j, or NULL. */
static json_t *json_field_type(const json_t *j, size_t i) {
    return json_object_get(json_array_get(json_object_get(j, "fields"), i),
                           "type");
}

/* Writes the PCF of s; j is s's JSON (jansson), read only for the other
 * libraries' form and NULL-safe. */
static int pcf_walk(pcf_out_t *o,
                    avro_schema_t s,
                    const json_t *j,
                    int depth,
                    char *errstr,
                    size_t errstr_size) {
    if (depth > PCF_MAX_DEPTH) {
        snprintf(errstr, errstr_size, "schema nested deeper than %d",
                 PCF_MAX_DEPTH);
        return TD_ERR;
    }

    switch (avro_typeof(s)) {
    case AVRO_STRING:
    case AVRO_BYTES:
    case AVRO_INT32:
    case AVRO_INT64:
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
    case AVRO_BOOLEAN:
    case AVRO_NULL:
        out_primitive(o, avro_schema_type_name(s), j);
        return TD_OK;
    case AVRO_LINK:
        out_fullname(o, avro_schema_link_target(s));
        return TD_OK;
    case AVRO_RECORD: {
        size_t n = avro_schema_record_size(s);

        out_str(o, "{\"name\":");
        out_fullname(o, s);
        out_str(o, ",\"type\":\"record\",\"fields\":[");
        for (size_t i = 0; i < n; i++) {
            if (i > 0) out_mem(o, ",", 1);
            out_str(o, "{\"name\":\"");
            out_escaped(o, avro_schema_record_field_name(s, (int)i));
            out_str(o, "\",\"type\":");
            if (pcf_walk(o, avro_schema_record_field_get_by_index(s, (int)i),
                         json_field_type(j, i), depth + 1, errstr,
                         errstr_size) != TD_OK)
                return TD_ERR;
            out_mem(o, "}", 1);
        }
        out_str(o, "]}");
        return TD_OK;
    }
    case AVRO_ENUM: {
        int n = avro_schema_enum_number_of_symbols(s);

        out_str(o, "{\"name\":");
        out_fullname(o, s);
        out_str(o, ",\"type\":\"enum\",\"symbols\":[");
        for (int i = 0; i < n; i++) {
            if (i > 0) out_mem(o, ",", 1);
            out_mem(o, "\"", 1);
            out_escaped(o, avro_schema_enum_get(s, i));
            out_mem(o, "\"", 1);
        }
        out_str(o, "]}");
        return TD_OK;
    }
    case AVRO_FIXED: {
        char num[24];

        snprintf(num, sizeof(num), "%lld",
                 (long long)avro_schema_fixed_size(s));
        out_str(o, "{\"name\":");
        out_fullname(o, s);
        out_str(o, ",\"type\":\"fixed\",\"size\":");
        out_str(o, num);
        out_mem(o, "}", 1);
        return TD_OK;
    }
    case AVRO_ARRAY:
        out_str(o, "{\"type\":\"array\",\"items\":");
        if (pcf_walk(o, avro_schema_array_items(s), json_object_get(j, "items"),
                     depth + 1, errstr, errstr_size) != TD_OK)
            return TD_ERR;
        out_mem(o, "}", 1);
        return TD_OK;
    case AVRO_MAP:
        out_str(o, "{\"type\":\"map\",\"values\":");
        if (pcf_walk(o, avro_schema_map_values(s), json_object_get(j, "values"),
                     depth + 1, errstr, errstr_size) != TD_OK)
            return TD_ERR;
        out_mem(o, "}", 1);
        return TD_OK;
    case AVRO_UNION: {
        size_t n = avro_schema_union_size(s);

        out_mem(o, "[", 1);
        for (size_t i = 0; i < n; i++) {
            if (i > 0) out_mem(o, ",", 1);
            if (pcf_walk(o, avro_schema_union_branch(s, (int)i),
                         json_array_get(j, i), depth + 1, errstr,
                         errstr_size) != TD_OK)
                return TD_ERR;
        }
        out_mem(o, "]", 1);
        return TD_OK;
    }
    }
    snprintf(errstr, errstr_size, "unknown avro-c schema type %d",
             (int)avro_typeof(s));
    return TD_ERR;
}

/* The walk for every public function: the spec's form, or with o->objprim
 * the other libraries' form read alongside json. */
static int canonical(avro_schema_t s,
                     const char *json,
                     pcf_out_t *o,
                     char *errstr,
                     size_t errstr_size) {
    json_t *j = NULL;
    int rc;

    if (s == NULL || (o->objprim && json == NULL)) {
        snprintf(errstr, errstr_size, "no schema%s", s ? " JSON" : "");
        return TD_ERR;
    }
    if (o->objprim) {
        json_error_t jerr;

        j = json_loads(json, JSON_DECODE_ANY, &jerr);
        if (j == NULL) {
            snprintf(errstr, errstr_size, "schema JSON: %s", jerr.text);
            return TD_ERR;
        }
    }
    rc = pcf_walk(o, s, j, 0, errstr, errstr_size);
    json_decref(j);
    return rc;
}

static int to_buf(avro_schema_t s,
                  const char *json,
                  int objprim,
                  char *buf,
                  size_t size,
                  size_t *lenp,
                  char *errstr,
                  size_t errstr_size) {
    pcf_out_t o = {buf, size, 0, TD_FP_EMPTY, objprim};

    if (canonical(s, json, &o, errstr, errstr_size) != TD_OK) return TD_ERR;
    if (lenp != NULL) *lenp = o.len;
    if (o.len >= size) {
        if (size > 0) buf[size - 1] = '\0';
        snprintf(errstr, errstr_size,
                 "canonical form needs %zu bytes, buffer has %zu", o.len + 1,
                 size);
        return TD_ERR;
    }
    buf[o.len] = '\0';
    return TD_OK;
}

static int to_fp(avro_schema_t s,
                 const char *json,
                 int objprim,
                 uint64_t *fp,
                 char *errstr,
                 size_t errstr_size) {
    pcf_out_t o = {NULL, 0, 0, TD_FP_EMPTY, objprim};

    if (canonical(s, json, &o, errstr, errstr_size) != TD_OK) return TD_ERR;
    *fp = o.crc;
    return TD_OK;
}

int td_fp_canonical(avro_schema_t s,
                    char *buf,
                    size_t size,
                    size_t *lenp,
                    char *errstr,
                    size_t errstr_size) {
    return to_buf(s, NULL, 0, buf, size, lenp, errstr, errstr_size);
}

int td_fp_schema(avro_schema_t s,
                 uint64_t *fp,
                 char *errstr,
                 size_t errstr_size) {
    return to_fp(s, NULL, 0, fp, errstr, errstr_size);
}

int td_fp_canonical_objprim(avro_schema_t s,
                            const char *json,
                            char *buf,
                            size_t size,
                            size_t *lenp,
                            char *errstr,
                            size_t errstr_size) {
    return to_buf(s, json, 1, buf, size, lenp, errstr, errstr_size);
}

int td_fp_schema_objprim(avro_schema_t s,
                         const char *json,
                         uint64_t *fp,
                         char *errstr,
                         size_t errstr_size) {
    return to_fp(s, json, 1, fp, errstr, errstr_size);
}
