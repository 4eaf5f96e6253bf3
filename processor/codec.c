/*
 * codec.c - Avro single-object decoding, validation and encoding (codec.h).
 *
 * The event contract is data: one field_t table per record (order_fields[],
 * review_fields[], refund_fields[], score_fields[]) names every field, its
 * C type and place in td_event_t, its default, its allowed range and the DLQ
 * reason for leaving that range. Start-up, decoding, validation and encoding
 * all walk these tables.
 *
 * Start-up (td_codec_new) parses every embedded schema with avro-c,
 * fingerprints it, checks the current (reader) schema of each record
 * against its table and resolves every writer schema of that record against
 * the reader once: for each table field it caches the writer's field index
 * (or "absent, use the default"), the null branch of its union and a
 * symbol-by-name map for enums. That is Avro schema resolution done here
 * instead of by avro_resolved_writer_new(), because avro-c 1.11.1 refuses
 * any reader field the writer lacks ("Reader field paid_at doesn't appear
 * in writer": default values are not implemented), which rules out reading
 * v1 data with v2. Each schema is also compiled into a scan program
 * (scan_node_t[]) and gets one generic value to encode from.
 *
 * Decoding an event:
 *   1. header: C3 01 + fingerprint, looked up among the embedded schemas;
 *      the value is copied into the codec's buffer, which the event's
 *      strings then borrow;
 *   2. scan: walk the datum with the writer schema's scan program, checking
 *      every varint, length, count, enum index, union branch and boolean
 *      against the bytes that are really there, and capture each top-level
 *      field (union branch, number, or string position) into caps[]. The
 *      scan's end position gives TD_DLQ_TRAILING_BYTES;
 *   3. extract: walk the contract table, take each field from caps[] by its
 *      cached writer index (defaults for absent or null fields, enum indexes
 *      mapped to the reader's) and range-check it;
 *   4. the rules that span fields: key, event_time, CANCELLED needs
 *      cancelled_by, ARBITRATED needs responsible.
 * No avro-c value is involved and nothing is allocated: about 2,500
 * instructions for an order event. Reading events through avro-c generic
 * values cost 8,500-11,000 (two mallocs per string, a function call per
 * byte), and avro-c is unsafe on hostile input anyway: it mallocs a string's
 * length before checking it, writes before its buffer for length -1,
 * accepts any enum index or boolean byte, and its memory reader does not
 * say how many bytes it consumed.
 *
 * TrustScores (not on the hot path; they have a map and an array) are
 * scanned the same way and then read with avro_value_read() into a reused
 * generic value. Encoding of both goes through avro-c generic values and
 * avro_value_write() into a memory writer on the caller's buffer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "codec.h"
#include "common.h"
#include "fingerprint.h"
#include "schemas_gen.h"

#define SO_MAGIC0 0xc3
#define SO_MAGIC1 0x01
#define CF_MAGIC  0x00 /* Confluent framing: 00 + 4-byte big-endian id */

#define MAX_SCHEMAS 16    /* embedded schema files */
#define MAX_FIELDS  16    /* contract fields of one record */
#define MAX_SYMBOLS 32    /* symbols of one enum */
#define MAX_NODES   128   /* scan nodes of one schema */
#define MAX_DEPTH   16    /* schema nesting; deeper (or recursive) refused */
#define MAX_ITEMS   65536 /* array and map items in one datum */
#define MAX_IDS     65536 /* Confluent schema ids remembered */
#define KIND_SCORE  TD_EV__CNT /* schema kind of TrustScore */
#define KIND_CNT    (TD_EV__CNT + 1)

/* How a contract field looks in C; the Avro type follows from it. */
typedef enum {
    FT_STR,    /* string -> td_str_t */
    FT_LONG,   /* long (an int writer is promoted) -> int64_t */
    FT_INT,    /* int -> int */
    FT_BOOL,   /* boolean -> int 0/1 */
    FT_ENUM,   /* enum -> int, the reader schema's symbol index */
    FT_DOUBLE, /* double (TrustScore only) */
    FT_MAP,    /* map<double> (TrustScore only) */
    FT_ARRAY   /* array<string> (TrustScore only) */
} ftype_t;

#define F_OPT 1 /* reader type is ["null", T]; null stores def */
#define F_DEF 2 /* has a default: a writer may lack it (then def) */

typedef struct field_s {
    const char *name;
    ftype_t type;
    int flags;           /* F_OPT, F_DEF */
    size_t off;          /* offset in td_event_t */
    int64_t def;         /* value when null or absent */
    int64_t lo;          /* allowed range of a present, non-null value */
    int64_t hi;          /* (for strings: of its length in bytes) */
    td_dlq_reason_t rlo; /* reason when below lo */
    td_dlq_reason_t rhi; /* reason when above hi */
} field_t;

typedef struct kind_s {
    const char *record; /* full name of the Avro record */
    const field_t *fields;
    int field_cnt;
} kind_t;

/* One contract field as a particular writer schema has it. */
typedef struct wfield_s {
    int idx;                  /* field index in the writer record, -1 absent */
    int null_branch;          /* union branch holding null, -1 not a union */
    int val_branch;           /* union branch holding the value */
    avro_type_t vtype;        /* writer's value type (INT32 may feed FT_LONG) */
    int nsym;                 /* FT_ENUM: writer symbols */
    int8_t emap[MAX_SYMBOLS]; /* writer enum index -> reader's, -1 none */
    int8_t rmap[MAX_SYMBOLS]; /* reader enum index -> writer's, -1 none */
} wfield_t;

/* The datum scanner's compiled form of a schema: one node per type. */
typedef struct scan_node_s {
    avro_type_t type;
    int n;            /* record fields, union branches, enum symbols */
    int kid;          /* record, union: first slot in kids[];
                       * array, map: node of the items or values */
    int64_t size;     /* fixed: size */
    int min0;         /* can be encoded in zero bytes */
    const char *name; /* field name when a record field, for errors */
} scan_node_t;

typedef struct schema_s {
    const char *file;
    avro_schema_t schema;
    uint64_t fp;
    uint64_t fp_objprim; /* as Python, goavro, older Rust compute it */
    int kind;            /* td_event_kind_t or KIND_SCORE */
    avro_value_iface_t *iface;
    avro_value_t dec; /* TrustScore only: decoded into, reused */
    avro_value_t enc; /* encoded from, reused */
    wfield_t wf[MAX_FIELDS];
    scan_node_t nodes[MAX_NODES];
    int node_cnt;
    int kids[MAX_NODES];
    int kid_cnt;
} schema_t;

/* A top-level field's value as the scan found it in the datum. */
typedef struct cap_s {
    int64_t branch;     /* union branch, if the field is a union */
    int64_t num;        /* long, int, enum index or boolean */
    const uint8_t *ptr; /* string or bytes */
    size_t len;
} cap_t;

/* A Confluent schema id and its writer schema: an embedded one with the
 * same fingerprint, one compiled from the registry's text (own), or none
 * when that text is unusable (why, err say what decoding answers). */
typedef struct idmap_s {
    uint32_t id;
    schema_t *sc;
    int own;
    td_dlq_reason_t why;
    char *err;
} idmap_t;

struct td_codec_s {
    schema_t sc[MAX_SCHEMAS];
    int sc_cnt;
    idmap_t *ids; /* sorted by id */
    size_t id_cnt, id_cap;
    schema_t *current[KIND_CNT]; /* reader schema per kind */
    cap_t caps[MAX_FIELDS];      /* top-level fields of the last event */
    uint8_t *msg; /* copy of the last event, which its strings borrow */
    size_t msg_size;
    avro_reader_t reader; /* TrustScore decoding */
    avro_writer_t writer;
    char *scratch; /* NUL-terminated copies of td_str_t for encoding */
    size_t scratch_size;
};

/* State of one datum scan. */
typedef struct scan_s {
    const uint8_t *p;
    const uint8_t *end;
    const char *field; /* innermost record field being scanned */
    int64_t items;     /* array and map items so far */
    cap_t *caps;       /* where to capture top-level fields, or NULL */
    char *errstr;
    size_t errstr_size;
} scan_t;

/*
 * The contract. Ranges apply to present, non-null values; a null or absent
 * value stores def without a check. Non-null timestamps must not equal
 * TD_NULL_TS, and ratings use 0 as null, so their ranges exclude the
 * sentinels.
 */
#define EV(m) offsetof(td_event_t, m)

/* clang-format off */
#define FIELD(n, t, fl, m, d, l, h, rl, rh) \
    {.name = n, .type = t, .flags = fl, .off = EV(m), .def = d, \
     .lo = l, .hi = h, .rlo = TD_DLQ_##rl, .rhi = TD_DLQ_##rh}

#define COMMON_FIELDS \
    FIELD("event_id",    FT_STR,  0, event_id,    0, 1, INT64_MAX, MISSING_FIELD, OK), \
    FIELD("event_time",  FT_LONG, 0, event_time,  0, INT64_MIN, INT64_MAX, OK, OK), \
    FIELD("merchant_id", FT_STR,  0, merchant_id, 0, 1, TD_MERCHANT_ID_MAX, MERCHANT_ID_EMPTY, MERCHANT_ID_TOO_LONG), \
    FIELD("order_id",    FT_STR,  0, order_id,    0, 1, INT64_MAX, MISSING_FIELD, OK), \
    FIELD("buyer_id",    FT_STR,  0, buyer_id,    0, 1, INT64_MAX, MISSING_FIELD, OK)

#define TS_OPT(n, m) \
    FIELD(n, FT_LONG, F_OPT | F_DEF, m, TD_NULL_TS, INT64_MIN + 1, INT64_MAX, BAD_VALUE, OK)
#define RATING_OPT(n, m) \
    FIELD(n, FT_INT, F_OPT | F_DEF, m, TD_NULL_INT, 1, 5, RATING_RANGE, RATING_RANGE)
#define BOOL_DEF(n, m) \
    FIELD(n, FT_BOOL, F_DEF, m, 0, 0, 1, BAD_VALUE, BAD_VALUE)

static const field_t order_fields[] = {
    COMMON_FIELDS,
    FIELD("status",          FT_ENUM, 0, u.order.status, 0, 0, TD_ORDER__CNT - 1, BAD_ENUM, BAD_ENUM),
    FIELD("amount_cents",    FT_LONG, 0, u.order.amount_cents, 0, 0, INT64_MAX, NEGATIVE_AMOUNT, OK),
    FIELD("channel",         FT_ENUM, 0, u.order.channel, 0, 0, TD_CHANNEL__CNT - 1, BAD_ENUM, BAD_ENUM),
    FIELD("cancelled_by",    FT_ENUM, F_OPT | F_DEF, u.order.cancelled_by, TD_NULL_ENUM, 0, TD_CANCEL__CNT - 1, BAD_ENUM, BAD_ENUM),
    TS_OPT("promised_ship_by",     u.order.promised_ship_by),
    TS_OPT("promised_delivery_by", u.order.promised_delivery_by),
    FIELD("tracking_valid",  FT_BOOL, F_OPT | F_DEF, u.order.tracking_valid, TD_NULL_BOOL, 0, 1, BAD_VALUE, BAD_VALUE),
    TS_OPT("paid_at",              u.order.paid_at),
    TS_OPT("shipped_at",           u.order.shipped_at),
    FIELD("buyer_order_seq", FT_INT,  F_DEF, u.order.buyer_order_seq, 0, 0, INT32_MAX, BAD_VALUE, OK),
};

static const field_t review_fields[] = {
    COMMON_FIELDS,
    FIELD("rating", FT_INT, 0, u.review.rating, 0, 1, 5, RATING_RANGE, RATING_RANGE),
    RATING_OPT("quality_rating",   u.review.quality_rating),
    RATING_OPT("service_rating",   u.review.service_rating),
    RATING_OPT("logistics_rating", u.review.logistics_rating),
    RATING_OPT("value_rating",     u.review.value_rating),
    BOOL_DEF("has_media",   u.review.has_media),
    BOOL_DEF("is_followup", u.review.is_followup),
    BOOL_DEF("flagged",     u.review.flagged),
};

static const field_t refund_fields[] = {
    COMMON_FIELDS,
    FIELD("refund_id",    FT_STR,  0, u.refund.refund_id, 0, 1, INT64_MAX, MISSING_FIELD, OK),
    FIELD("status",       FT_ENUM, 0, u.refund.status, 0, 0, TD_REFUND__CNT - 1, BAD_ENUM, BAD_ENUM),
    FIELD("kind",         FT_ENUM, 0, u.refund.kind, 0, 0, TD_KIND__CNT - 1, BAD_ENUM, BAD_ENUM),
    FIELD("reason",       FT_ENUM, 0, u.refund.reason, 0, 0, TD_REASON__CNT - 1, BAD_ENUM, BAD_ENUM),
    FIELD("amount_cents", FT_LONG, 0, u.refund.amount_cents, 0, 0, INT64_MAX, NEGATIVE_AMOUNT, OK),
    FIELD("responsible",  FT_ENUM, F_OPT | F_DEF, u.refund.responsible, TD_NULL_ENUM, 0, TD_RESP__CNT - 1, BAD_ENUM, BAD_ENUM),
    TS_OPT("requested_at", u.refund.requested_at),
    BOOL_DEF("was_rejected", u.refund.was_rejected),
};

/* TrustScore is decoded by hand (score_extract); the table gives the shape
 * its schema must have and the SF_* indexes into schema_t.wf[]. */
enum {
    SF_MERCHANT_ID, SF_SCORE, SF_TIER, SF_CONFIDENCE, SF_SUB_SCORES,
    SF_REASONS, SF_VERSION, SF_MODEL_VERSION, SF_AS_OF, SF__CNT
};

static const field_t score_fields[SF__CNT] = {
    [SF_MERCHANT_ID]   = {.name = "merchant_id",   .type = FT_STR},
    [SF_SCORE]         = {.name = "score",         .type = FT_DOUBLE},
    [SF_TIER]          = {.name = "tier",          .type = FT_INT},
    [SF_CONFIDENCE]    = {.name = "confidence",    .type = FT_DOUBLE},
    [SF_SUB_SCORES]    = {.name = "sub_scores",    .type = FT_MAP},
    [SF_REASONS]       = {.name = "reasons",       .type = FT_ARRAY},
    [SF_VERSION]       = {.name = "version",       .type = FT_LONG},
    [SF_MODEL_VERSION] = {.name = "model_version", .type = FT_STR},
    [SF_AS_OF]         = {.name = "as_of",         .type = FT_LONG},
};

static const kind_t kinds[KIND_CNT] = {
    [TD_EV_ORDER]  = {"trustindex.OrderEvent",  order_fields,  (int)TD_ARRAY_LEN(order_fields)},
    [TD_EV_REVIEW] = {"trustindex.ReviewEvent", review_fields, (int)TD_ARRAY_LEN(review_fields)},
    [TD_EV_REFUND] = {"trustindex.RefundEvent", refund_fields, (int)TD_ARRAY_LEN(refund_fields)},
    [KIND_SCORE]   = {"trustindex.TrustScore",  score_fields,  (int)TD_ARRAY_LEN(score_fields)},
};
/* clang-format on */

static void seterr(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errstr, size_t errstr_size, const char *fmt, ...) {
    va_list ap;

    if (errstr == NULL || errstr_size == 0) return;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}

void td_validate_defaults(td_validate_t *v) {
    v->min_event_time_ms = 1420070400000LL; /* 2015-01-01T00:00:00Z */
    v->max_future_skew_ms = 300000;
    v->max_message_bytes = 65536;
}

/*
 * Schema helpers
 */

static avro_schema_t deref(avro_schema_t s) {
    return is_avro_link(s) ? avro_schema_link_target(s) : s;
}

static void fullname(avro_schema_t s, char *buf, size_t size) {
    const char *ns = avro_schema_namespace(s);

    if (ns != NULL && *ns != '\0')
        snprintf(buf, size, "%s.%s", ns, avro_schema_name(s));
    else
        snprintf(buf, size, "%s", avro_schema_name(s));
}

/* "order_event.v1.avsc" is an older version; "order_event.avsc" is not. */
static int is_versioned(const char *file) {
    size_t n = strlen(file);
    size_t i;

    if (n < 5 || strcmp(file + n - 5, ".avsc") != 0) return 0;
    i = n - 5;
    while (i > 0 && file[i - 1] >= '0' && file[i - 1] <= '9')
        i--;
    return i < n - 5 && i >= 2 && file[i - 1] == 'v' && file[i - 2] == '.';
}

/* Splits a field's schema into its value schema and, for ["null", T] or
 * [T, "null"], the two branch indexes. TD_ERR for any other union. */
static int field_shape(avro_schema_t fs,
                       avro_schema_t *vs,
                       int *null_branch,
                       int *val_branch) {
    fs = deref(fs);
    *null_branch = -1;
    *val_branch = -1;
    *vs = fs;
    if (!is_avro_union(fs)) return TD_OK;
    if (avro_schema_union_size(fs) != 2) return TD_ERR;
    for (int b = 0; b < 2; b++) {
        avro_schema_t bs = deref(avro_schema_union_branch(fs, b));

        if (is_avro_null(bs)) {
            *null_branch = b;
        } else {
            *val_branch = b;
            *vs = bs;
        }
    }
    return *null_branch >= 0 && *val_branch >= 0 ? TD_OK : TD_ERR;
}

/* Whether value schema vs can hold a field of C type t; a writer's int may
 * feed a long (Avro type promotion). */
static int type_ok(ftype_t t, avro_schema_t vs, int writer) {
    switch (t) {
    case FT_STR:
        return is_avro_string(vs);
    case FT_LONG:
        return is_avro_int64(vs) || (writer && is_avro_int32(vs));
    case FT_INT:
        return is_avro_int32(vs);
    case FT_BOOL:
        return is_avro_boolean(vs);
    case FT_ENUM:
        return is_avro_enum(vs);
    case FT_DOUBLE:
        return is_avro_double(vs);
    case FT_MAP:
        return is_avro_map(vs) && is_avro_double(avro_schema_map_values(vs));
    case FT_ARRAY:
        return is_avro_array(vs) && is_avro_string(avro_schema_array_items(vs));
    }
    return 0;
}

/* Builds the symbol maps between a writer and the reader enum by name. */
static int resolve_enum(const schema_t *sc,
                        const field_t *f,
                        wfield_t *w,
                        avro_schema_t we,
                        avro_schema_t re,
                        char *errstr,
                        size_t errstr_size) {
    char wname[128], rname[128];
    int rn = avro_schema_enum_number_of_symbols(re);

    fullname(we, wname, sizeof(wname));
    fullname(re, rname, sizeof(rname));
    if (strcmp(wname, rname) != 0) {
        seterr(errstr, errstr_size, "%s: enum %s of %s is not reader's %s",
               sc->file, wname, f->name, rname);
        return TD_ERR;
    }
    w->nsym = avro_schema_enum_number_of_symbols(we);
    if (w->nsym > MAX_SYMBOLS || rn > MAX_SYMBOLS) {
        seterr(errstr, errstr_size, "%s: enum %s has more than %d symbols",
               sc->file, wname, MAX_SYMBOLS);
        return TD_ERR;
    }
    for (int i = 0; i < w->nsym; i++) {
        w->emap[i] = (int8_t)avro_schema_enum_get_by_name(
            re, avro_schema_enum_get(we, i));
    }
    for (int i = 0; i < rn; i++) {
        w->rmap[i] = (int8_t)avro_schema_enum_get_by_name(
            we, avro_schema_enum_get(re, i));
    }
    return TD_OK;
}

/* Checks that the reader schema rd has field f exactly as the contract
 * says (type, nullability, enum size). */
static int check_reader_field(const schema_t *rd,
                              const field_t *f,
                              avro_schema_t *rvs,
                              char *errstr,
                              size_t errstr_size) {
    int ri = avro_schema_record_field_get_index(rd->schema, f->name);
    int nb, vb;

    if (ri < 0) {
        seterr(errstr, errstr_size, "%s: lacks contract field %s", rd->file,
               f->name);
        return TD_ERR;
    }
    if (field_shape(avro_schema_record_field_get_by_index(rd->schema, ri), rvs,
                    &nb, &vb) != TD_OK ||
        (nb >= 0) != ((f->flags & F_OPT) != 0) || !type_ok(f->type, *rvs, 0)) {
        seterr(errstr, errstr_size,
               "%s: field %s does not have the contract's type", rd->file,
               f->name);
        return TD_ERR;
    }
    if (f->type == FT_ENUM &&
        avro_schema_enum_number_of_symbols(*rvs) != f->hi + 1) {
        seterr(errstr, errstr_size,
               "%s: enum of %s has %d symbols, event.h has %lld", rd->file,
               f->name, avro_schema_enum_number_of_symbols(*rvs),
               (long long)(f->hi + 1));
        return TD_ERR;
    }
    return TD_OK;
}

/* Resolves writer schema sc against the reader schema of its kind: fills
 * sc->wf[] so that decoding and encoding need no lookups by name. */
static int
resolve_schema(td_codec_t *c, schema_t *sc, char *errstr, size_t errstr_size) {
    const kind_t *k = &kinds[sc->kind];
    const schema_t *rd = c->current[sc->kind];
    size_t wn = avro_schema_record_size(sc->schema);

    /* The scan captures each top-level field into td_codec_s.caps[]. */
    if (wn > MAX_FIELDS) {
        seterr(errstr, errstr_size, "%s: more than %d fields", sc->file,
               MAX_FIELDS);
        return TD_ERR;
    }

    for (int i = 0; i < k->field_cnt; i++) {
        const field_t *f = &k->fields[i];
        wfield_t *w = &sc->wf[i];
        avro_schema_t rvs, wvs;
        int wi;

        if (check_reader_field(rd, f, &rvs, errstr, errstr_size) != TD_OK)
            return TD_ERR;
        wi = avro_schema_record_field_get_index(sc->schema, f->name);
        w->idx = wi;
        if (wi < 0) {
            if (f->flags & F_DEF) continue;
            seterr(errstr, errstr_size, "%s: lacks required field %s", sc->file,
                   f->name);
            return TD_ERR;
        }
        if (field_shape(avro_schema_record_field_get_by_index(sc->schema, wi),
                        &wvs, &w->null_branch, &w->val_branch) != TD_OK ||
            (w->null_branch >= 0 && !(f->flags & F_OPT)) ||
            !type_ok(f->type, wvs, 1)) {
            seterr(errstr, errstr_size,
                   "%s: field %s cannot be resolved to the reader's type",
                   sc->file, f->name);
            return TD_ERR;
        }
        w->vtype = avro_typeof(wvs);
        if (f->type == FT_ENUM &&
            resolve_enum(sc, f, w, wvs, rvs, errstr, errstr_size) != TD_OK)
            return TD_ERR;
    }

    /* A field outside the contract would be decoded and dropped silently,
     * and could not be encoded: refuse the schema instead. */
    for (size_t j = 0; j < wn; j++) {
        const char *name = avro_schema_record_field_name(sc->schema, (int)j);
        int found = 0;

        for (int i = 0; i < k->field_cnt && !found; i++)
            found = strcmp(k->fields[i].name, name) == 0;
        if (!found) {
            seterr(errstr, errstr_size, "%s: field %s is not in the contract",
                   sc->file, name);
            return TD_ERR;
        }
    }
    return TD_OK;
}

/* Compiles schema s into sc->nodes[]; returns the node index or -1. */
static int scan_compile(schema_t *sc,
                        avro_schema_t s,
                        const char *name,
                        int depth,
                        char *errstr,
                        size_t errstr_size) {
    scan_node_t *nd;
    int ni;

    if (depth > MAX_DEPTH || sc->node_cnt >= MAX_NODES) {
        seterr(errstr, errstr_size,
               "%s: schema deeper than %d or larger than %d nodes "
               "(recursive?)",
               sc->file, MAX_DEPTH, MAX_NODES);
        return -1;
    }
    s = deref(s);
    ni = sc->node_cnt++;
    nd = &sc->nodes[ni];
    memset(nd, 0, sizeof(*nd));
    nd->type = avro_typeof(s);
    nd->name = name;

    switch (nd->type) {
    case AVRO_RECORD:
    case AVRO_UNION: {
        int is_rec = nd->type == AVRO_RECORD;
        int n = is_rec ? (int)avro_schema_record_size(s)
                       : (int)avro_schema_union_size(s);

        if (sc->kid_cnt + n > MAX_NODES) {
            seterr(errstr, errstr_size, "%s: schema too large", sc->file);
            return -1;
        }
        nd->n = n;
        nd->kid = sc->kid_cnt;
        sc->kid_cnt += n;
        nd->min0 = is_rec;
        for (int i = 0; i < n; i++) {
            avro_schema_t cs = is_rec
                                   ? avro_schema_record_field_get_by_index(s, i)
                                   : avro_schema_union_branch(s, i);
            const char *cn =
                is_rec ? avro_schema_record_field_name(s, i) : NULL;
            int kn = scan_compile(sc, cs, cn, depth + 1, errstr, errstr_size);

            if (kn < 0) return -1;
            sc->kids[nd->kid + i] = kn;
            if (!sc->nodes[kn].min0) sc->nodes[ni].min0 = 0;
        }
        return ni;
    }
    case AVRO_ARRAY:
    case AVRO_MAP: {
        avro_schema_t is = nd->type == AVRO_ARRAY ? avro_schema_array_items(s)
                                                  : avro_schema_map_values(s);
        int kn = scan_compile(sc, is, NULL, depth + 1, errstr, errstr_size);

        if (kn < 0) return -1;
        sc->nodes[ni].kid = kn;
        return ni;
    }
    case AVRO_ENUM:
        nd->n = avro_schema_enum_number_of_symbols(s);
        return ni;
    case AVRO_FIXED:
        nd->size = avro_schema_fixed_size(s);
        nd->min0 = nd->size == 0;
        return ni;
    case AVRO_NULL:
        nd->min0 = 1;
        return ni;
    default:
        return ni;
    }
}

/*
 * The datum scanner
 */

static td_dlq_reason_t
scan_fail(scan_t *st, td_dlq_reason_t r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static td_dlq_reason_t
scan_fail(scan_t *st, td_dlq_reason_t r, const char *fmt, ...) {
    va_list ap;
    int n;

    if (st->errstr == NULL || st->errstr_size == 0) return r;
    n = snprintf(st->errstr, st->errstr_size,
                 "%s: ", st->field != NULL ? st->field : "datum");
    if (n >= 0 && (size_t)n < st->errstr_size) {
        va_start(ap, fmt);
        vsnprintf(st->errstr + n, st->errstr_size - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return r;
}

static size_t scan_left(const scan_t *st) {
    return (size_t)(st->end - st->p);
}

/* Reads a zig-zag varint as Avro does, but refuses more than 64 bits. Most
 * varints in our events are one byte: that case is the fast path. */
static inline td_dlq_reason_t scan_varint(scan_t *st, int64_t *out) {
    uint64_t v = 0;

    *out = 0;
    if (st->p < st->end && !(*st->p & 0x80)) {
        v = *st->p++;
        *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
        return TD_DLQ_OK;
    }
    for (int i = 0; i < 10; i++) {
        uint8_t b;

        if (st->p == st->end)
            return scan_fail(st, TD_DLQ_TRUNCATED, "varint runs past the end");
        b = *st->p++;
        if (i == 9 && b > 1)
            return scan_fail(st, TD_DLQ_MALFORMED,
                             "varint longer than 64 bits");
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
            return TD_DLQ_OK;
        }
    }
    return scan_fail(st, TD_DLQ_MALFORMED, "varint longer than 10 bytes");
}

static td_dlq_reason_t scan_skip(scan_t *st, int64_t n, const char *what) {
    if (n < 0 || (uint64_t)n > scan_left(st)) {
        return scan_fail(st, TD_DLQ_TRUNCATED, "%s needs %lld bytes, %zu left",
                         what, (long long)n, scan_left(st));
    }
    st->p += n;
    return TD_DLQ_OK;
}

/* A string or bytes: a length, checked before anything trusts it. The
 * bytes are captured into cap unless it is NULL. */
static td_dlq_reason_t scan_bytes(scan_t *st, cap_t *cap) {
    int64_t len;
    td_dlq_reason_t r = scan_varint(st, &len);

    if (r != TD_DLQ_OK) return r;
    if (len < 0)
        return scan_fail(st, TD_DLQ_MALFORMED, "negative length %lld",
                         (long long)len);
    if ((uint64_t)len > scan_left(st)) {
        return scan_fail(st, TD_DLQ_TRUNCATED,
                         "length %lld exceeds the %zu bytes left",
                         (long long)len, scan_left(st));
    }
    if (cap != NULL) {
        cap->ptr = st->p;
        cap->len = (size_t)len;
    }
    st->p += len;
    return TD_DLQ_OK;
}

static td_dlq_reason_t
scan_node(scan_t *st, const schema_t *sc, int ni, cap_t *cap);

/* Array and map blocks: count (negative: then a byte size), items, and a
 * zero count at the end. Counts are bounded before the loop runs. */
static td_dlq_reason_t
scan_blocks(scan_t *st, const schema_t *sc, const scan_node_t *nd) {
    int is_map = nd->type == AVRO_MAP;
    int item_min0 = !is_map && sc->nodes[nd->kid].min0;

    for (;;) {
        int64_t count, bsize = -1;
        const uint8_t *start;
        td_dlq_reason_t r = scan_varint(st, &count);

        if (r != TD_DLQ_OK) return r;
        if (count == 0) return TD_DLQ_OK;
        if (count < 0) {
            if (count == INT64_MIN)
                return scan_fail(st, TD_DLQ_MALFORMED, "bad block count");
            count = -count;
            r = scan_varint(st, &bsize);
            if (r != TD_DLQ_OK) return r;
            if (bsize < 0)
                return scan_fail(st, TD_DLQ_MALFORMED, "negative block size");
            if ((uint64_t)bsize > scan_left(st)) {
                return scan_fail(st, TD_DLQ_TRUNCATED,
                                 "block size %lld exceeds the %zu bytes left",
                                 (long long)bsize, scan_left(st));
            }
        }
        if (!item_min0 && (uint64_t)count > scan_left(st)) {
            return scan_fail(st, TD_DLQ_TRUNCATED,
                             "%lld items cannot fit in the %zu bytes left",
                             (long long)count, scan_left(st));
        }
        if (count > MAX_ITEMS - st->items) {
            return scan_fail(st, TD_DLQ_MALFORMED,
                             "more than %d array or map items", MAX_ITEMS);
        }
        st->items += count;
        start = st->p;
        for (int64_t i = 0; i < count; i++) {
            if (is_map && (r = scan_bytes(st, NULL)) != TD_DLQ_OK) return r;
            if ((r = scan_node(st, sc, nd->kid, NULL)) != TD_DLQ_OK) return r;
        }
        if (bsize >= 0 && st->p - start != bsize) {
            return scan_fail(st, TD_DLQ_MALFORMED,
                             "block size %lld but items took %lld bytes",
                             (long long)bsize, (long long)(st->p - start));
        }
    }
}

/* Scans the value of node ni. A primitive's value, and a union's branch, go
 * into cap unless it is NULL; the root record (node 0) captures each of its
 * fields into st->caps when that is set. */
static td_dlq_reason_t
scan_node(scan_t *st, const schema_t *sc, int ni, cap_t *cap) {
    const scan_node_t *nd = &sc->nodes[ni];
    td_dlq_reason_t r;
    int64_t v;

    if (nd->name != NULL) st->field = nd->name;

    switch (nd->type) {
    case AVRO_NULL:
        return TD_DLQ_OK;
    case AVRO_BOOLEAN:
        if (st->p == st->end)
            return scan_fail(st, TD_DLQ_TRUNCATED, "boolean past the end");
        if (*st->p > 1) {
            return scan_fail(st, TD_DLQ_MALFORMED,
                             "boolean byte %u is not 0 or 1", *st->p);
        }
        v = *st->p++;
        break;
    case AVRO_INT32:
        if ((r = scan_varint(st, &v)) != TD_DLQ_OK) return r;
        if (v < INT32_MIN || v > INT32_MAX) {
            return scan_fail(st, TD_DLQ_MALFORMED,
                             "int %lld out of 32-bit range", (long long)v);
        }
        break;
    case AVRO_INT64:
        if ((r = scan_varint(st, &v)) != TD_DLQ_OK) return r;
        break;
    case AVRO_FLOAT:
        return scan_skip(st, 4, "float");
    case AVRO_DOUBLE:
        return scan_skip(st, 8, "double");
    case AVRO_FIXED:
        return scan_skip(st, nd->size, "fixed");
    case AVRO_STRING:
    case AVRO_BYTES:
        return scan_bytes(st, cap);
    case AVRO_ENUM:
        if ((r = scan_varint(st, &v)) != TD_DLQ_OK) return r;
        if (v < 0 || v >= nd->n) {
            return scan_fail(st, TD_DLQ_BAD_ENUM,
                             "enum index %lld outside 0..%d", (long long)v,
                             nd->n - 1);
        }
        break;
    case AVRO_UNION:
        if ((r = scan_varint(st, &v)) != TD_DLQ_OK) return r;
        if (v < 0 || v >= nd->n) {
            return scan_fail(st, TD_DLQ_MALFORMED,
                             "union branch %lld outside 0..%d", (long long)v,
                             nd->n - 1);
        }
        if (cap != NULL) cap->branch = v;
        return scan_node(st, sc, sc->kids[nd->kid + v], cap);
    case AVRO_RECORD: {
        cap_t *caps = ni == 0 ? st->caps : NULL;

        for (int i = 0; i < nd->n; i++) {
            r = scan_node(st, sc, sc->kids[nd->kid + i],
                          caps != NULL ? &caps[i] : NULL);
            if (r != TD_DLQ_OK) return r;
        }
        return TD_DLQ_OK;
    }
    case AVRO_ARRAY:
    case AVRO_MAP:
        return scan_blocks(st, sc, nd);
    default:
        return scan_fail(st, TD_DLQ_MALFORMED, "unsupported schema type");
    }
    if (cap != NULL) cap->num = v;
    return TD_DLQ_OK;
}

/*
 * Codec life cycle
 */

/* By either fingerprint: the spec's, or the one other libraries compute
 * (fingerprint.h), for single-object headers written by them. */
static schema_t *find_by_fp(td_codec_t *c, uint64_t fp) {
    for (int i = 0; i < c->sc_cnt; i++) {
        if (c->sc[i].fp == fp || c->sc[i].fp_objprim == fp) return &c->sc[i];
    }
    return NULL;
}

static schema_t *find_by_file(const td_codec_t *c, const char *file) {
    for (int i = 0; i < c->sc_cnt; i++) {
        if (strcmp(c->sc[i].file, file) == 0) return (schema_t *)&c->sc[i];
    }
    return NULL;
}

/* Parses, fingerprints and classifies one embedded schema. */
static int load_schema(td_codec_t *c,
                       const td_schema_src_t *src,
                       char *errstr,
                       size_t errstr_size) {
    schema_t *sc = &c->sc[c->sc_cnt];
    char name[128];
    schema_t *dup;

    sc->file = src->file;
    sc->kind = -1;
    if (avro_schema_from_json_length(src->json, strlen(src->json),
                                     &sc->schema) != 0) {
        sc->schema = NULL;
        seterr(errstr, errstr_size, "%s: %s", src->file, avro_strerror());
        return TD_ERR;
    }
    c->sc_cnt++;
    if (!is_avro_record(sc->schema)) {
        seterr(errstr, errstr_size, "%s: top level is not a record", src->file);
        return TD_ERR;
    }
    if (td_fp_schema(sc->schema, &sc->fp, errstr, errstr_size) != TD_OK ||
        td_fp_schema_objprim(sc->schema, src->json, &sc->fp_objprim, errstr,
                             errstr_size) != TD_OK)
        return TD_ERR;
    dup = find_by_fp(c, sc->fp);
    if (dup == sc) dup = find_by_fp(c, sc->fp_objprim);
    if (dup != sc) {
        seterr(errstr, errstr_size, "%s and %s have the same fingerprint",
               dup->file, sc->file);
        return TD_ERR;
    }
    fullname(sc->schema, name, sizeof(name));
    for (int k = 0; k < KIND_CNT; k++) {
        if (strcmp(kinds[k].record, name) == 0) sc->kind = k;
    }
    if (sc->kind < 0) {
        seterr(errstr, errstr_size, "%s: record %s is not one trustd knows",
               src->file, name);
        return TD_ERR;
    }
    if (!is_versioned(sc->file)) {
        if (c->current[sc->kind] != NULL) {
            seterr(errstr, errstr_size, "%s and %s are both current %s",
                   c->current[sc->kind]->file, sc->file, name);
            return TD_ERR;
        }
        c->current[sc->kind] = sc;
    }
    return TD_OK;
}

/* Resolves, compiles and allocates the values of a loaded schema. */
static int
prepare_schema(td_codec_t *c, schema_t *sc, char *errstr, size_t errstr_size) {
    if (sc->kind == KIND_SCORE && sc != c->current[KIND_SCORE]) {
        seterr(errstr, errstr_size,
               "%s: older TrustScore versions are not "
               "supported",
               sc->file);
        return TD_ERR;
    }
    if (kinds[sc->kind].field_cnt > MAX_FIELDS) {
        seterr(errstr, errstr_size, "%s: more than %d contract fields",
               sc->file, MAX_FIELDS);
        return TD_ERR;
    }
    if (resolve_schema(c, sc, errstr, errstr_size) != TD_OK) return TD_ERR;
    if (scan_compile(sc, sc->schema, NULL, 0, errstr, errstr_size) < 0)
        return TD_ERR;
    sc->iface = avro_generic_class_from_schema(sc->schema);
    if (sc->iface == NULL ||
        (sc->kind == KIND_SCORE &&
         avro_generic_value_new(sc->iface, &sc->dec) != 0) ||
        avro_generic_value_new(sc->iface, &sc->enc) != 0) {
        seterr(errstr, errstr_size, "%s: %s", sc->file, avro_strerror());
        return TD_ERR;
    }
    return TD_OK;
}

td_codec_t *td_codec_new(char *errstr, size_t errstr_size) {
    td_codec_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        seterr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (td_schema_src_cnt > MAX_SCHEMAS) {
        seterr(errstr, errstr_size, "%zu schemas embedded, at most %d",
               td_schema_src_cnt, MAX_SCHEMAS);
        goto err;
    }
    for (size_t i = 0; i < td_schema_src_cnt; i++) {
        if (load_schema(c, &td_schema_srcs[i], errstr, errstr_size) != TD_OK)
            goto err;
    }
    for (int k = 0; k < KIND_CNT; k++) {
        if (c->current[k] == NULL) {
            seterr(errstr, errstr_size, "no current schema for %s",
                   kinds[k].record);
            goto err;
        }
    }
    for (int i = 0; i < c->sc_cnt; i++) {
        if (prepare_schema(c, &c->sc[i], errstr, errstr_size) != TD_OK)
            goto err;
    }
    c->reader = avro_reader_memory(NULL, 0);
    c->writer = avro_writer_memory(NULL, 0);
    if (c->reader == NULL || c->writer == NULL) {
        seterr(errstr, errstr_size, "cannot create avro reader or writer");
        goto err;
    }
    /* Room for a default-sized message, so decoding never allocates unless
     * max_message_bytes is raised above it. */
    c->msg_size = 65536;
    c->msg = malloc(c->msg_size);
    if (c->msg == NULL) {
        seterr(errstr, errstr_size, "out of memory");
        goto err;
    }
    return c;

err:
    td_codec_destroy(c);
    return NULL;
}

void td_codec_destroy(td_codec_t *c) {
    if (c == NULL) return;
    for (int i = 0; i < c->sc_cnt; i++) {
        schema_t *sc = &c->sc[i];

        if (sc->dec.iface != NULL) avro_value_decref(&sc->dec);
        if (sc->enc.iface != NULL) avro_value_decref(&sc->enc);
        if (sc->iface != NULL) avro_value_iface_decref(sc->iface);
        if (sc->schema != NULL) avro_schema_decref(sc->schema);
    }
    for (size_t i = 0; i < c->id_cnt; i++) {
        idmap_t *im = &c->ids[i];

        if (im->own) {
            avro_schema_decref(im->sc->schema);
            free(im->sc);
        }
        free(im->err);
    }
    free(c->ids);
    if (c->reader != NULL) avro_reader_free(c->reader);
    if (c->writer != NULL) avro_writer_free(c->writer);
    free(c->msg);
    free(c->scratch);
    free(c);
}

uint64_t td_codec_fingerprint(const td_codec_t *c, const char *schema_file) {
    const schema_t *sc = find_by_file(c, schema_file);

    return sc != NULL ? sc->fp : 0;
}

/*
 * Confluent schema ids
 */

/* The writer schema of Confluent id in c, or NULL. */
static idmap_t *find_id(const td_codec_t *c, uint32_t id) {
    size_t lo = 0, hi = c->id_cnt;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (c->ids[mid].id == id) return &c->ids[mid];
        if (c->ids[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int td_codec_schema_id(const void *value, size_t len, uint32_t *id) {
    const uint8_t *p = value;

    if (p == NULL || len < TD_CODEC_CF_HDR_LEN || p[0] != CF_MAGIC) return 0;
    *id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 |
          (uint32_t)p[4];
    return 1;
}

int td_codec_has_id(const td_codec_t *c, uint32_t id) {
    return find_id(c, id) != NULL;
}

/* Makes the writer schema of a registry text: parsed, of a record trustd
 * reads, resolved against its reader schema and compiled. NULL with *why
 * and errstr when it cannot be used. */
static schema_t *compile_id(td_codec_t *c,
                            const char *json,
                            size_t len,
                            int *own,
                            td_dlq_reason_t *why,
                            char *errstr,
                            size_t errstr_size) {
    avro_schema_t s = NULL;
    schema_t *sc, *known;
    char name[128];
    uint64_t fp;

    *why = TD_DLQ_INCOMPATIBLE_SCHEMA;
    *own = 0;
    if (avro_schema_from_json_length(json, len, &s) != 0) {
        seterr(errstr, errstr_size, "%s", avro_strerror());
        return NULL;
    }
    if (!is_avro_record(s) || td_fp_schema(s, &fp, errstr, errstr_size)) {
        if (!is_avro_record(s))
            seterr(errstr, errstr_size, "top level is not a record");
        avro_schema_decref(s);
        return NULL;
    }
    /* The same schema as an embedded one: share it (and its checks). */
    known = find_by_fp(c, fp);
    for (size_t i = 0; known == NULL && i < c->id_cnt; i++) {
        if (c->ids[i].own && c->ids[i].sc->fp == fp) known = c->ids[i].sc;
    }
    if (known != NULL) {
        avro_schema_decref(s);
        return known;
    }
    sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        avro_schema_decref(s);
        seterr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    sc->schema = s;
    sc->fp = fp;
    sc->file = "registry schema";
    sc->kind = -1;
    fullname(s, name, sizeof(name));
    for (int k = 0; k < TD_EV__CNT; k++) {
        if (strcmp(kinds[k].record, name) == 0) sc->kind = k;
    }
    if (sc->kind < 0) {
        *why = TD_DLQ_WRONG_TYPE;
        seterr(errstr, errstr_size, "record %s is not an event trustd reads",
               name);
    } else if (resolve_schema(c, sc, errstr, errstr_size) == TD_OK &&
               scan_compile(sc, sc->schema, NULL, 0, errstr, errstr_size) >=
                   0) {
        *own = 1;
        return sc;
    }
    avro_schema_decref(s);
    free(sc);
    return NULL;
}

int td_codec_add_id(td_codec_t *c,
                    uint32_t id,
                    const char *json,
                    size_t len,
                    char *errstr,
                    size_t errstr_size) {
    idmap_t im = {.id = id};
    char why[256] = "";
    size_t at = 0;

    if (find_id(c, id) != NULL) return TD_OK;
    if (c->id_cnt >= MAX_IDS) {
        seterr(errstr, errstr_size, "more than %d schema ids", MAX_IDS);
        return TD_ERR;
    }
    if (c->id_cnt == c->id_cap) {
        size_t n = c->id_cap ? c->id_cap * 2 : 16;
        idmap_t *p = realloc(c->ids, n * sizeof(*p));

        if (p == NULL) {
            seterr(errstr, errstr_size, "out of memory");
            return TD_ERR;
        }
        c->ids = p;
        c->id_cap = n;
    }
    im.sc = compile_id(c, json, len, &im.own, &im.why, why, sizeof(why));
    if (im.sc == NULL && (im.err = strdup(why)) == NULL) {
        seterr(errstr, errstr_size, "out of memory");
        return TD_ERR;
    }
    while (at < c->id_cnt && c->ids[at].id < id)
        at++;
    memmove(&c->ids[at + 1], &c->ids[at], (c->id_cnt - at) * sizeof(im));
    c->ids[at] = im;
    c->id_cnt++;
    if (im.sc == NULL) {
        seterr(errstr, errstr_size, "schema id %u: %s", id, why);
        return TD_ERR;
    }
    return TD_OK;
}

/*
 * Decoding
 */

/* Step 1 for either framing: finds the writer schema and the header
 * length. */
static td_dlq_reason_t parse_header(td_codec_t *c,
                                    const uint8_t *p,
                                    size_t len,
                                    schema_t **scp,
                                    size_t *hdrp,
                                    char *errstr,
                                    size_t errstr_size) {
    uint64_t fp = 0;
    uint32_t id;
    const idmap_t *im;

    if (td_codec_schema_id(p, len, &id)) {
        im = find_id(c, id);
        if (im == NULL) {
            seterr(errstr, errstr_size,
                   "schema id %u unknown to the registry and the schema map",
                   id);
            return TD_DLQ_UNKNOWN_SCHEMA_ID;
        }
        if (im->sc == NULL) {
            seterr(errstr, errstr_size, "schema id %u: %s", id, im->err);
            return im->why;
        }
        *scp = im->sc;
        *hdrp = TD_CODEC_CF_HDR_LEN;
        return TD_DLQ_OK;
    }
    if (p[0] == CF_MAGIC) {
        seterr(errstr, errstr_size,
               "value of %zu bytes is shorter than the %d-byte Confluent "
               "header",
               len, TD_CODEC_CF_HDR_LEN);
        return TD_DLQ_TRUNCATED;
    }
    if (p[0] != SO_MAGIC0 || len < 2 || p[1] != SO_MAGIC1) {
        seterr(errstr, errstr_size,
               "value starts with %02x %02x, not c3 01 or 00", p[0],
               len > 1 ? p[1] : 0);
        return TD_DLQ_BAD_MAGIC;
    }
    if (len < TD_CODEC_HDR_LEN) {
        seterr(errstr, errstr_size,
               "value of %zu bytes is shorter than the %d-byte header", len,
               TD_CODEC_HDR_LEN);
        return TD_DLQ_TRUNCATED;
    }
    for (int i = 7; i >= 0; i--)
        fp = (fp << 8) | p[2 + i];
    *scp = find_by_fp(c, fp);
    if (*scp == NULL) {
        seterr(errstr, errstr_size, "writer schema fingerprint %016llx unknown",
               (unsigned long long)fp);
        return TD_DLQ_UNKNOWN_SCHEMA;
    }
    *hdrp = TD_CODEC_HDR_LEN;
    return TD_DLQ_OK;
}

/* Steps 1-2: header checks, writer schema lookup and the scan of the datum
 * in p[0..len); caps (or NULL) receives the top-level fields, *hdrp the
 * header length. */
static td_dlq_reason_t parse_msg(td_codec_t *c,
                                 const uint8_t *p,
                                 size_t len,
                                 size_t max_len,
                                 cap_t *caps,
                                 schema_t **scp,
                                 size_t *hdrp,
                                 char *errstr,
                                 size_t errstr_size) {
    scan_t st;
    schema_t *sc = NULL;
    size_t hdr = 0;
    td_dlq_reason_t r;

    if (p == NULL || len == 0) {
        seterr(errstr, errstr_size, "null value (tombstone)");
        return TD_DLQ_TOMBSTONE;
    }
    if (len > max_len) {
        seterr(errstr, errstr_size, "value of %zu bytes exceeds %zu", len,
               max_len);
        return TD_DLQ_TOO_LARGE;
    }
    r = parse_header(c, p, len, &sc, &hdr, errstr, errstr_size);
    if (r != TD_DLQ_OK) return r;
    *scp = sc;
    *hdrp = hdr;

    st.p = p + hdr;
    st.end = p + len;
    st.field = NULL;
    st.items = 0;
    st.caps = caps;
    st.errstr = errstr;
    st.errstr_size = errstr_size;
    r = scan_node(&st, sc, 0, NULL);
    if (r != TD_DLQ_OK) return r;
    if (st.p != st.end) {
        seterr(errstr, errstr_size, "%zu bytes after the %s datum",
               scan_left(&st), sc->file);
        return TD_DLQ_TRAILING_BYTES;
    }
    return TD_DLQ_OK;
}

/* Stores a number, or for a string field its default: empty. */
static void store_num(const field_t *f, td_event_t *ev, int64_t num) {
    char *dst = (char *)ev + f->off;

    if (f->type == FT_STR) {
        ((td_str_t *)dst)->ptr = "";
        ((td_str_t *)dst)->len = 0;
    } else if (f->type == FT_LONG) {
        *(int64_t *)dst = num;
    } else {
        *(int *)dst = (int)num;
    }
}

static td_dlq_reason_t
range_fail(const field_t *f, int64_t num, char *errstr, size_t errstr_size) {
    td_dlq_reason_t r = num < f->lo ? f->rlo : f->rhi;

    if (f->type == FT_STR && num == 0)
        seterr(errstr, errstr_size, "%s is empty", f->name);
    else if (f->type == FT_STR)
        seterr(errstr, errstr_size, "%s is %lld bytes, more than %lld", f->name,
               (long long)num, (long long)f->hi);
    else if (f->hi == INT64_MAX)
        seterr(errstr, errstr_size, "%s %lld is below %lld", f->name,
               (long long)num, (long long)f->lo);
    else
        seterr(errstr, errstr_size, "%s %lld outside %lld..%lld", f->name,
               (long long)num, (long long)f->lo, (long long)f->hi);
    return r;
}

/* Step 3: walk the contract table over the captured writer fields. */
static td_dlq_reason_t extract(const td_codec_t *c,
                               const schema_t *sc,
                               td_event_t *ev,
                               char *errstr,
                               size_t errstr_size) {
    const kind_t *k = &kinds[sc->kind];

    for (int i = 0; i < k->field_cnt; i++) {
        const field_t *f = &k->fields[i];
        const wfield_t *w = &sc->wf[i];
        const cap_t *cap;
        int64_t num;

        if (w->idx < 0) {
            store_num(f, ev, f->def);
            continue;
        }
        cap = &c->caps[w->idx];
        if (w->null_branch >= 0 && cap->branch == w->null_branch) {
            store_num(f, ev, f->def);
            continue;
        }
        if (f->type == FT_STR) {
            td_str_t *s = (td_str_t *)((char *)ev + f->off);

            s->ptr = (const char *)cap->ptr;
            s->len = cap->len;
            num = (int64_t)cap->len;
        } else {
            num = cap->num;
            if (f->type == FT_ENUM) {
                /* The scan checked num against the writer's symbols. */
                if (w->emap[num] < 0) {
                    seterr(errstr, errstr_size,
                           "%s symbol %lld of %s unknown to the reader",
                           f->name, (long long)num, sc->file);
                    return TD_DLQ_BAD_ENUM;
                }
                num = w->emap[num];
            }
            store_num(f, ev, num);
        }
        if (num < f->lo || num > f->hi)
            return range_fail(f, num, errstr, errstr_size);
    }
    return TD_DLQ_OK;
}

/* Step 4: the rules that span fields or depend on the message. */
static td_dlq_reason_t check_rules(const td_event_t *ev,
                                   const void *key,
                                   size_t key_len,
                                   int64_t now_ms,
                                   const td_validate_t *v,
                                   char *errstr,
                                   size_t errstr_size) {
    const td_str_t *m = &ev->merchant_id;

    if (key == NULL) {
        seterr(errstr, errstr_size, "message has no key, merchant_id %.*s",
               (int)m->len, m->ptr);
        return TD_DLQ_KEY_MISMATCH;
    }
    if (key_len != m->len || memcmp(key, m->ptr, m->len) != 0) {
        seterr(errstr, errstr_size, "key %.*s differs from merchant_id %.*s",
               (int)(key_len < 80 ? key_len : 80), (const char *)key,
               (int)m->len, m->ptr);
        return TD_DLQ_KEY_MISMATCH;
    }
    if (ev->event_time < v->min_event_time_ms) {
        seterr(errstr, errstr_size, "event_time %lld before %lld",
               (long long)ev->event_time, (long long)v->min_event_time_ms);
        return TD_DLQ_EVENT_TIME_TOO_OLD;
    }
    /* Unsigned difference: event_time and now_ms may be far apart. */
    if (ev->event_time > now_ms && (uint64_t)ev->event_time - (uint64_t)now_ms >
                                       (uint64_t)v->max_future_skew_ms) {
        seterr(errstr, errstr_size, "event_time %lld is %lld ms after now",
               (long long)ev->event_time,
               (long long)((uint64_t)ev->event_time - (uint64_t)now_ms));
        return TD_DLQ_EVENT_TIME_FUTURE;
    }
    if (ev->kind == TD_EV_ORDER && ev->u.order.status == TD_ORDER_CANCELLED &&
        ev->u.order.cancelled_by == TD_NULL_ENUM) {
        seterr(errstr, errstr_size,
               "cancelled_by is null on a CANCELLED "
               "order");
        return TD_DLQ_MISSING_FIELD;
    }
    if (ev->kind == TD_EV_REFUND &&
        ev->u.refund.status == TD_REFUND_ARBITRATED &&
        ev->u.refund.responsible == TD_NULL_ENUM) {
        seterr(errstr, errstr_size,
               "responsible is null on an ARBITRATED "
               "refund");
        return TD_DLQ_MISSING_FIELD;
    }
    return TD_DLQ_OK;
}

td_dlq_reason_t td_codec_decode(td_codec_t *c,
                                td_event_kind_t expect,
                                const void *key,
                                size_t key_len,
                                const void *value,
                                size_t value_len,
                                int64_t now_ms,
                                const td_validate_t *v,
                                td_event_t *ev,
                                char *errstr,
                                size_t errstr_size) {
    td_validate_t defaults;
    schema_t *sc = NULL;
    size_t hdr;
    td_dlq_reason_t r;

    if (v == NULL) {
        td_validate_defaults(&defaults);
        v = &defaults;
    }
    memset(ev, 0, sizeof(*ev));
    if (errstr != NULL && errstr_size > 0) errstr[0] = '\0';
    if ((unsigned)expect >= TD_EV__CNT) {
        seterr(errstr, errstr_size, "invalid topic kind %d", (int)expect);
        return TD_DLQ_WRONG_TYPE;
    }

    /* The event borrows its strings from the codec's copy of the message,
     * not from the caller's buffer. The copy is made only once the size is
     * known to be acceptable; the buffer grows only past 64 KiB. */
    if (value != NULL && value_len > 0 && value_len <= v->max_message_bytes) {
        if (value_len > c->msg_size) {
            uint8_t *m = realloc(c->msg, value_len);

            if (m == NULL) {
                seterr(errstr, errstr_size, "out of memory");
                return TD_DLQ_TOO_LARGE;
            }
            c->msg = m;
            c->msg_size = value_len;
        }
        memcpy(c->msg, value, value_len);
        value = c->msg;
    }
    r = parse_msg(c, value, value_len, v->max_message_bytes, c->caps, &sc, &hdr,
                  errstr, errstr_size);
    if (r != TD_DLQ_OK) return r;
    if (sc->kind != (int)expect) {
        seterr(errstr, errstr_size, "%s record on a %s topic",
               kinds[sc->kind].record, kinds[expect].record);
        return TD_DLQ_WRONG_TYPE;
    }
    ev->kind = expect;
    r = extract(c, sc, ev, errstr, errstr_size);
    if (r != TD_DLQ_OK) return r;
    return check_rules(ev, key, key_len, now_ms, v, errstr, errstr_size);
}

/*
 * Encoding
 */

/* Sets string field v to s, through a NUL-terminated copy because avro-c
 * wants one and td_str_t is not. The scratch buffer only ever grows. */
static int set_str(td_codec_t *c,
                   avro_value_t *v,
                   const char *s,
                   size_t len,
                   char *errstr,
                   size_t errstr_size) {
    if (s == NULL && len > 0) {
        seterr(errstr, errstr_size, "string with NULL pointer");
        return TD_ERR;
    }
    if (len + 1 > c->scratch_size) {
        size_t n = c->scratch_size ? c->scratch_size : 64;
        char *p;

        while (n < len + 1)
            n *= 2;
        p = realloc(c->scratch, n);
        if (p == NULL) {
            seterr(errstr, errstr_size, "out of memory");
            return TD_ERR;
        }
        c->scratch = p;
        c->scratch_size = n;
    }
    if (len > 0) memcpy(c->scratch, s, len);
    c->scratch[len] = '\0';
    if (avro_value_set_string_len(v, c->scratch, len + 1) != 0) {
        seterr(errstr, errstr_size, "avro-c: %s", avro_strerror());
        return TD_ERR;
    }
    return TD_OK;
}

/* Writes the header and sc->enc into buf. */
static int write_msg(td_codec_t *c,
                     schema_t *sc,
                     void *buf,
                     size_t size,
                     size_t *lenp,
                     char *errstr,
                     size_t errstr_size) {
    uint8_t *p = buf;
    int rc;

    if (size < TD_CODEC_HDR_LEN) {
        seterr(errstr, errstr_size, "buffer of %zu bytes is too small", size);
        return TD_ERR;
    }
    p[0] = SO_MAGIC0;
    p[1] = SO_MAGIC1;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (uint8_t)(sc->fp >> (8 * i));
    avro_writer_memory_set_dest(c->writer, (const char *)p + TD_CODEC_HDR_LEN,
                                (int64_t)(size - TD_CODEC_HDR_LEN));
    rc = avro_value_write(c->writer, &sc->enc);
    if (rc != 0) {
        if (rc == ENOSPC)
            seterr(errstr, errstr_size, "buffer of %zu bytes is too small",
                   size);
        else
            seterr(errstr, errstr_size, "avro-c: %s", avro_strerror());
        return TD_ERR;
    }
    *lenp = TD_CODEC_HDR_LEN + (size_t)avro_writer_tell(c->writer);
    return TD_OK;
}

/* Sets one contract field of the record being encoded. */
static int encode_field(td_codec_t *c,
                        const schema_t *sc,
                        const field_t *f,
                        const wfield_t *w,
                        const td_event_t *ev,
                        avro_value_t *fv,
                        char *errstr,
                        size_t errstr_size) {
    const char *src = (const char *)ev + f->off;
    avro_value_t bv;
    int64_t num = 0;

    if (f->type == FT_STR) {
        const td_str_t *s = (const td_str_t *)src;

        return set_str(c, fv, s->ptr, s->len, errstr, errstr_size);
    }
    num = f->type == FT_LONG ? *(const int64_t *)src : *(const int *)src;
    if ((f->flags & F_OPT) && num == f->def) {
        if (w->null_branch < 0) {
            seterr(errstr, errstr_size, "%s is null but %s needs a value",
                   f->name, sc->file);
            return TD_ERR;
        }
        if (avro_value_set_branch(fv, w->null_branch, &bv) != 0 ||
            avro_value_set_null(&bv) != 0)
            goto avro_err;
        return TD_OK;
    }
    if (w->null_branch >= 0) {
        if (avro_value_set_branch(fv, w->val_branch, &bv) != 0) goto avro_err;
        fv = &bv;
    }
    if (f->type == FT_LONG && w->vtype == AVRO_INT64) {
        if (avro_value_set_long(fv, num) != 0) goto avro_err;
        return TD_OK;
    }
    switch (f->type) {
    case FT_LONG: /* the writer has it as an int */
    case FT_INT:
        if (num < INT32_MIN || num > INT32_MAX) {
            seterr(errstr, errstr_size, "%s %lld does not fit an int", f->name,
                   (long long)num);
            return TD_ERR;
        }
        if (avro_value_set_int(fv, (int32_t)num) != 0) goto avro_err;
        return TD_OK;
    case FT_BOOL:
        if (avro_value_set_boolean(fv, num != 0) != 0) goto avro_err;
        return TD_OK;
    case FT_ENUM:
        if (num < 0 || num > f->hi || w->rmap[num] < 0) {
            seterr(errstr, errstr_size, "%s %lld has no symbol in %s", f->name,
                   (long long)num, sc->file);
            return TD_ERR;
        }
        if (avro_value_set_enum(fv, w->rmap[num]) != 0) goto avro_err;
        return TD_OK;
    default:
        break;
    }

avro_err:
    seterr(errstr, errstr_size, "%s: avro-c: %s", f->name, avro_strerror());
    return TD_ERR;
}

static int encode_event(td_codec_t *c,
                        schema_t *sc,
                        const td_event_t *ev,
                        void *buf,
                        size_t size,
                        size_t *lenp,
                        char *errstr,
                        size_t errstr_size) {
    const kind_t *k = &kinds[sc->kind];

    if (avro_value_reset(&sc->enc) != 0) {
        seterr(errstr, errstr_size, "avro-c: %s", avro_strerror());
        return TD_ERR;
    }
    for (int i = 0; i < k->field_cnt; i++) {
        const wfield_t *w = &sc->wf[i];
        avro_value_t fv;

        if (w->idx < 0) continue;
        if (avro_value_get_by_index(&sc->enc, (size_t)w->idx, &fv, NULL) != 0) {
            seterr(errstr, errstr_size, "avro-c: %s", avro_strerror());
            return TD_ERR;
        }
        if (encode_field(c, sc, &k->fields[i], w, ev, &fv, errstr,
                         errstr_size) != TD_OK)
            return TD_ERR;
    }
    return write_msg(c, sc, buf, size, lenp, errstr, errstr_size);
}

int td_codec_encode(td_codec_t *c,
                    const td_event_t *ev,
                    void *buf,
                    size_t size,
                    size_t *lenp,
                    char *errstr,
                    size_t errstr_size) {
    if ((unsigned)ev->kind >= TD_EV__CNT) {
        seterr(errstr, errstr_size, "invalid event kind %d", (int)ev->kind);
        return TD_ERR;
    }
    return encode_event(c, c->current[ev->kind], ev, buf, size, lenp, errstr,
                        errstr_size);
}

int td_codec_encode_with(td_codec_t *c,
                         const char *schema_file,
                         const td_event_t *ev,
                         void *buf,
                         size_t size,
                         size_t *lenp,
                         char *errstr,
                         size_t errstr_size) {
    schema_t *sc = find_by_file(c, schema_file);

    if (sc == NULL) {
        seterr(errstr, errstr_size, "no schema file %s", schema_file);
        return TD_ERR;
    }
    if (sc->kind != (int)ev->kind) {
        seterr(errstr, errstr_size, "%s does not hold event kind %d",
               schema_file, (int)ev->kind);
        return TD_ERR;
    }
    return encode_event(c, sc, ev, buf, size, lenp, errstr, errstr_size);
}

/*
 * TrustScore
 */

/* The writer field SF_x of the score record being encoded or decoded. */
static int
score_field(schema_t *sc, avro_value_t *rec, int sf, avro_value_t *fv) {
    return avro_value_get_by_index(rec, (size_t)sc->wf[sf].idx, fv, NULL);
}

/* Whether the sub_scores map being encoded holds rec's dimensions, in
 * order: the model's dimensions are the same for every score, so the map
 * keeps its keys from record to record and only its values are set. */
static int dims_kept(avro_value_t *map, const td_score_rec_t *rec) {
    size_t n;

    if (avro_value_get_size(map, &n) != 0 || n != (size_t)rec->dim_cnt)
        return 0;
    for (int i = 0; i < rec->dim_cnt; i++) {
        avro_value_t child;
        const char *name = NULL;
        if (avro_value_get_by_index(map, (size_t)i, &child, &name) != 0 ||
            !name || strcmp(name, rec->dim_names[i]) != 0)
            return 0;
    }
    return 1;
}

static int set_score_fields(schema_t *sc,
                            const td_score_rec_t *rec,
                            char *errstr,
                            size_t errstr_size) {
    avro_value_t *r = &sc->enc;
    avro_value_t fv, child;
    size_t len = strnlen(rec->merchant_id, sizeof(rec->merchant_id));
    const char *mv = rec->model_version ? rec->model_version : "";
    int rc = 0;

    if (len == sizeof(rec->merchant_id)) {
        seterr(errstr, errstr_size, "merchant_id is not NUL-terminated");
        return TD_ERR;
    }
    if (rec->dim_cnt < 0 || rec->dim_cnt > TD_SCORE_MAX_DIMS ||
        rec->reason_cnt < 0 || rec->reason_cnt > TD_SCORE_MAX_REASONS) {
        seterr(errstr, errstr_size, "dim_cnt %d or reason_cnt %d out of range",
               rec->dim_cnt, rec->reason_cnt);
        return TD_ERR;
    }
    rc |= score_field(sc, r, SF_MERCHANT_ID, &fv) ||
          avro_value_set_string_len(&fv, rec->merchant_id, len + 1);
    rc |= score_field(sc, r, SF_SCORE, &fv) ||
          avro_value_set_double(&fv, rec->score);
    rc |=
        score_field(sc, r, SF_TIER, &fv) || avro_value_set_int(&fv, rec->tier);
    rc |= score_field(sc, r, SF_CONFIDENCE, &fv) ||
          avro_value_set_double(&fv, rec->confidence);
    rc |= score_field(sc, r, SF_VERSION, &fv) ||
          avro_value_set_long(&fv, rec->version);
    rc |= score_field(sc, r, SF_MODEL_VERSION, &fv) ||
          avro_value_set_string(&fv, mv);
    rc |= score_field(sc, r, SF_AS_OF, &fv) ||
          avro_value_set_long(&fv, rec->as_of_ms);
    if (rc != 0 || score_field(sc, r, SF_SUB_SCORES, &fv) != 0) goto avro_err;
    for (int i = 0; i < rec->dim_cnt; i++) {
        if (rec->dim_names[i] == NULL) {
            seterr(errstr, errstr_size, "dim_names[%d] is NULL", i);
            return TD_ERR;
        }
    }
    if (dims_kept(&fv, rec)) {
        /* The model's dimensions, as in the last record: values only. */
        for (int i = 0; i < rec->dim_cnt; i++) {
            if (avro_value_get_by_index(&fv, (size_t)i, &child, NULL) ||
                avro_value_set_double(&child, rec->dims[i]))
                goto avro_err;
        }
    } else {
        if (avro_value_reset(&fv) != 0) goto avro_err;
        for (int i = 0; i < rec->dim_cnt; i++) {
            int is_new = 0;

            if (avro_value_add(&fv, rec->dim_names[i], &child, NULL, &is_new) ||
                avro_value_set_double(&child, rec->dims[i]))
                goto avro_err;
            if (!is_new) {
                seterr(errstr, errstr_size, "dimension %s twice",
                       rec->dim_names[i]);
                return TD_ERR;
            }
        }
    }
    if (score_field(sc, r, SF_REASONS, &fv) != 0 || avro_value_reset(&fv) != 0)
        goto avro_err;
    for (int i = 0; i < rec->reason_cnt; i++) {
        size_t rl = strnlen(rec->reasons[i], TD_SCORE_REASON_MAX);

        if (rl == TD_SCORE_REASON_MAX) {
            seterr(errstr, errstr_size, "reasons[%d] is not NUL-terminated", i);
            return TD_ERR;
        }
        if (avro_value_append(&fv, &child, NULL) ||
            avro_value_set_string_len(&child, rec->reasons[i], rl + 1))
            goto avro_err;
    }
    return TD_OK;

avro_err:
    seterr(errstr, errstr_size, "avro-c: %s", avro_strerror());
    return TD_ERR;
}

int td_codec_encode_score(td_codec_t *c,
                          const td_score_rec_t *rec,
                          void *buf,
                          size_t size,
                          size_t *lenp,
                          char *errstr,
                          size_t errstr_size) {
    schema_t *sc = c->current[KIND_SCORE];

    /* Every field is set below; the map keeps its keys (dims_kept). */
    if (set_score_fields(sc, rec, errstr, errstr_size) != TD_OK) return TD_ERR;
    return write_msg(c, sc, buf, size, lenp, errstr, errstr_size);
}

/* Borrows string field sf of the decoded score and its length. */
static int get_score_str(schema_t *sc, int sf, const char **sp, size_t *lenp) {
    avro_value_t fv;
    size_t size = 0;

    if (score_field(sc, &sc->dec, sf, &fv) != 0 ||
        avro_value_get_string(&fv, sp, &size) != 0)
        return TD_ERR;
    *lenp = size > 0 ? size - 1 : 0;
    return TD_OK;
}

static int score_extract(schema_t *sc,
                         td_score_rec_t *rec,
                         char *errstr,
                         size_t errstr_size) {
    avro_value_t fv, child;
    const char *s;
    size_t len, n;
    int rc = 0;
    int32_t tier = 0;

    if (get_score_str(sc, SF_MERCHANT_ID, &s, &len) != TD_OK) goto avro_err;
    if (len > TD_MERCHANT_ID_MAX) {
        seterr(errstr, errstr_size, "merchant_id is %zu bytes, more than %d",
               len, TD_MERCHANT_ID_MAX);
        return TD_ERR;
    }
    memcpy(rec->merchant_id, s, len);
    rec->merchant_id[len] = '\0';
    if (get_score_str(sc, SF_MODEL_VERSION, &rec->model_version, &len) != TD_OK)
        goto avro_err;

    rc |= score_field(sc, &sc->dec, SF_SCORE, &fv) ||
          avro_value_get_double(&fv, &rec->score);
    rc |= score_field(sc, &sc->dec, SF_TIER, &fv) ||
          avro_value_get_int(&fv, &tier);
    rc |= score_field(sc, &sc->dec, SF_CONFIDENCE, &fv) ||
          avro_value_get_double(&fv, &rec->confidence);
    rc |= score_field(sc, &sc->dec, SF_VERSION, &fv) ||
          avro_value_get_long(&fv, &rec->version);
    rc |= score_field(sc, &sc->dec, SF_AS_OF, &fv) ||
          avro_value_get_long(&fv, &rec->as_of_ms);
    if (rc != 0) goto avro_err;
    rec->tier = tier;

    if (score_field(sc, &sc->dec, SF_SUB_SCORES, &fv) != 0 ||
        avro_value_get_size(&fv, &n) != 0)
        goto avro_err;
    if (n > TD_SCORE_MAX_DIMS) {
        seterr(errstr, errstr_size, "%zu sub_scores, at most %d", n,
               TD_SCORE_MAX_DIMS);
        return TD_ERR;
    }
    rec->dim_cnt = (int)n;
    for (size_t i = 0; i < n; i++) {
        if (avro_value_get_by_index(&fv, i, &child, &rec->dim_names[i]) ||
            avro_value_get_double(&child, &rec->dims[i]))
            goto avro_err;
    }

    if (score_field(sc, &sc->dec, SF_REASONS, &fv) != 0 ||
        avro_value_get_size(&fv, &n) != 0)
        goto avro_err;
    if (n > TD_SCORE_MAX_REASONS) {
        seterr(errstr, errstr_size, "%zu reasons, at most %d", n,
               TD_SCORE_MAX_REASONS);
        return TD_ERR;
    }
    rec->reason_cnt = (int)n;
    for (size_t i = 0; i < n; i++) {
        size_t size = 0;

        if (avro_value_get_by_index(&fv, i, &child, NULL) ||
            avro_value_get_string(&child, &s, &size))
            goto avro_err;
        len = size > 0 ? size - 1 : 0;
        if (len >= TD_SCORE_REASON_MAX) {
            seterr(errstr, errstr_size, "reason %zu is %zu bytes, at most %d",
                   i, len, TD_SCORE_REASON_MAX - 1);
            return TD_ERR;
        }
        memcpy(rec->reasons[i], s, len);
        rec->reasons[i][len] = '\0';
    }
    return TD_OK;

avro_err:
    seterr(errstr, errstr_size, "cannot read decoded TrustScore");
    return TD_ERR;
}

int td_codec_decode_score(td_codec_t *c,
                          const void *value,
                          size_t len,
                          td_score_rec_t *rec,
                          char *errstr,
                          size_t errstr_size) {
    td_validate_t v;
    schema_t *sc = NULL;
    size_t hdr = 0;
    char why[256];
    td_dlq_reason_t r;

    td_validate_defaults(&v);
    memset(rec, 0, sizeof(*rec));
    r = parse_msg(c, value, len, v.max_message_bytes, NULL, &sc, &hdr, why,
                  sizeof(why));
    if (r != TD_DLQ_OK) {
        seterr(errstr, errstr_size, "%s: %s", td_dlq_reason_name(r), why);
        return TD_ERR;
    }
    if (sc->kind != KIND_SCORE) {
        seterr(errstr, errstr_size, "%s is not a TrustScore",
               kinds[sc->kind].record);
        return TD_ERR;
    }
    /* The scan has checked every length and count, so avro-c may read. */
    avro_reader_memory_set_source(c->reader, (const char *)value + hdr,
                                  (int64_t)(len - hdr));
    if (avro_value_read(c->reader, &sc->dec) != 0) {
        seterr(errstr, errstr_size, "avro-c: %s", avro_strerror());
        return TD_ERR;
    }
    return score_extract(sc, rec, errstr, errstr_size);
}
