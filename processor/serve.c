/*
 * serve.c - trustctl serve: routes, access checks, and the JSON the page
 * reads, built with jansson from one pipelined round of Redis reads per
 * request. libmicrohttpd runs every handler on its one internal thread, so
 * the single td_store connection is never shared between threads.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "history.h"
#include "http.h"
#include "log.h"
#include "proto.h"
#include "reply.h"
#include "serve.h"
#include "signals.h"
#include "signals_zh.h"
#include "store.h"
#include "page_gen.h"

#define TIER_CNT   5
#define TIER_CHUNK 256 /* merchants per pipelined round of /api/tiers */
#define RANK_DEF   10

struct td_serve_s {
    struct MHD_Daemon *d;
    td_store_t *st;
    const td_conf_t *conf;
    const td_model_t *model;
    int port;
};

/* One answer under construction: a status and a body owned by it. */
typedef struct answer_s {
    unsigned status;
    const char *type;
    char *body; /* malloc'ed */
    size_t len;
} answer_t;

/* Length of the well-formed UTF-8 character at p (n bytes left), or 0. */
static size_t utf8_char(const unsigned char *p, size_t n) {
    size_t len;
    uint32_t c;

    if (p[0] < 0x80) return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
        c = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        c = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        c = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    /* Overlong forms, surrogates and beyond U+10FFFF. */
    if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
        (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
        return 0;
    return len;
}

static int utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0, n; i < len; i += n) {
        if (!(n = utf8_char(p + i, len - i))) return 0;
    }
    return 1;
}

/* s as a JSON string; bytes that are not UTF-8 (a member of trust:scores
 * written by someone else) become U+FFFD rather than failing the answer. */
static json_t *jstrn(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    char *buf;
    size_t o = 0;
    json_t *j;

    if (utf8_valid(s, len)) return json_stringn(s, len);
    if (!(buf = malloc(3 * len + 1))) abort();
    for (size_t i = 0, n; i < len; i += n) {
        if ((n = utf8_char(p + i, len - i))) {
            memcpy(buf + o, s + i, n);
            o += n;
        } else {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3;
            n = 1;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j;
}

int td_serve_id_valid(const char *id, size_t len) {
    return len > 0 && len <= TD_MERCHANT_ID_MAX && !memchr(id, '\0', len);
}

/*
 * URL unescaping: %HH as usual, except %00, which stays as written, so
 * that "a%00b" is not read as merchant "a" (the handler gets a C string).
 */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
    char *w = s;

    for (const char *r = s; *r; r++) {
        unsigned hi, lo;
        if (r[0] == '%' && sscanf(r + 1, "%1x%1x", &hi, &lo) == 2 &&
            (hi | lo) != 0) {
            *w++ = (char)(hi << 4 | lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

int td_serve_check_listen(const td_conf_t *conf,
                          char *addr,
                          size_t addr_size,
                          int *port,
                          char *errstr,
                          size_t errstr_size) {
    const char *colon = strrchr(conf->listen, ':');
    struct in_addr in;
    char *end;
    long p;

    if (!colon || (size_t)(colon - conf->listen) >= addr_size) {
        snprintf(errstr, errstr_size, "listen: '%s' is not IPV4ADDRESS:PORT",
                 conf->listen);
        return TD_ERR;
    }
    memcpy(addr, conf->listen, (size_t)(colon - conf->listen));
    addr[colon - conf->listen] = '\0';
    p = strtol(colon + 1, &end, 10);
    if (inet_pton(AF_INET, addr, &in) != 1 || end == colon + 1 || *end ||
        p < 0 || p > 65535) {
        snprintf(errstr, errstr_size, "listen: '%s' is not IPV4ADDRESS:PORT",
                 conf->listen);
        return TD_ERR;
    }
    *port = (int)p;
    /* Merchants' data is not public: 127.0.0.0/8 only, unless every
     * request must show the token. */
    if ((ntohl(in.s_addr) >> 24) != 127 && !*conf->serve_token) {
        snprintf(errstr, errstr_size,
                 "listen: %s is not a loopback address; set serve_token "
                 "(config file or TRUST_SERVE_TOKEN) to serve it",
                 addr);
        return TD_ERR;
    }
    return TD_OK;
}

/* ---- answers ---- */

static void answer_json(answer_t *a, unsigned status, json_t *doc) {
    static const char oops[] = "{\"error\":\"cannot encode the answer\","
                               "\"status\":500}";
    a->status = status;
    a->type = "application/json; charset=utf-8";
    a->body =
        doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(doc);
    if (!a->body) {
        /* Only out of memory or our own bug: say so rather than hang up. */
        a->status = 500;
        if (!(a->body = strdup(oops))) abort();
    }
    a->len = strlen(a->body);
}

static void answer_error(answer_t *a, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void answer_error(answer_t *a, unsigned status, const char *fmt, ...) {
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    answer_json(a, status,
                json_pack("{s:s, s:i}", "error", msg, "status", (int)status));
}

/* ---- Redis ---- */

/* Reads the next pipelined reply; NULL after filling a 503 (Redis away)
 * or 502 (error reply) answer. */
static redisReply *rget(td_serve_t *s, answer_t *a) {
    char errstr[512];
    redisReply *r = td_store_reply(s->st, errstr, sizeof(errstr));

    if (!r) {
        answer_error(a, 503, "Redis at %s is unavailable: %s", s->conf->redis,
                     errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        answer_error(a, 503, "Redis at %s answered: %s", s->conf->redis,
                     r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Reads n replies into rs (all or none; on failure the rest are drained). */
static int rget_n(td_serve_t *s, answer_t *a, redisReply **rs, size_t n) {
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        answer_t junk = {0};
        rs[i] = rget(s, ok ? a : &junk);
        free(junk.body);
        if (!rs[i]) ok = 0;
    }
    if (ok) return 1;
    for (size_t i = 0; i < n; i++) {
        if (rs[i]) freeReplyObject(rs[i]);
        rs[i] = NULL;
    }
    return 0;
}


/* A number Redis holds as text, as a JSON number (null when absent or not
 * a number): integers stay integers, the rest round-trip as doubles. */
static json_t *jnum(const char *v) {
    char *end;
    long long i;
    double d;

    if (!v || !*v) return json_null();
    i = strtoll(v, &end, 10);
    if (!*end) return json_integer(i);
    d = strtod(v, &end);
    if (*end || d != d) return json_null();
    return json_real(d);
}

static json_t *jstr_or_null(const char *v) {
    return v ? json_string(v) : json_null();
}

/* ---- /api/merchants/{id} ---- */

static json_t *signals_json(td_serve_t *s, const redisReply *sg) {
    json_t *arr = json_array();

    for (int i = 0; i < TD_SIG__CNT; i++) {
        const td_signal_t *d = &td_signals[i];
        const char *dim = NULL;
        double prior;
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:o, s:s, s:s, s:b, s:s, s:s}", "name", d->name,
            "category", td_category_name(d->category), "category_zh",
            td_category_name_zh(d->category), "value",
            jnum(td_reply_hfield(sg, d->name)), "unit", d->unit, "window",
            td_window_name(d->window_ms), "higher_is_better", d->higher_better,
            "meaning", d->meaning, "meaning_zh", td_signal_meaning_zh(i));
        if (td_model_signal_prior(s->model, i, &prior, &dim)) {
            json_object_set_new(o, "prior", json_real(prior));
            json_object_set_new(o, "dimension", json_string(dim));
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

static void api_merchant(td_serve_t *s, answer_t *a, const char *m) {
    char key[TD_KEY_MAX];
    redisReply *rs[2] = {0};
    json_t *doc, *subs, *reasons = NULL;
    const char *rv;

    td_key_score(key, sizeof(key), m, strlen(m));
    td_store_append(s->st, "HGETALL %s", key);
    td_key_signals(key, sizeof(key), m, strlen(m));
    td_store_append(s->st, "HGETALL %s", key);
    if (!rget_n(s, a, rs, 2)) return;
    if (rs[0]->elements == 0 && rs[1]->elements == 0) {
        answer_error(a, 404, "unknown merchant '%s'", m);
        goto out;
    }
    doc = json_pack("{s:s}", "merchant_id", m);
    static const char *const nums[] = {"score",   "tier",     "confidence",
                                       "version", "as_of_ms", "updated_ms"};
    for (size_t i = 0; i < TD_ARRAY_LEN(nums); i++)
        json_object_set_new(doc, nums[i],
                            jnum(td_reply_hfield(rs[0], nums[i])));
    json_object_set_new(doc, "model_version",
                        jstr_or_null(td_reply_hfield(rs[0], "model_version")));
    json_object_set_new(doc, "model_source",
                        jstr_or_null(td_reply_hfield(rs[0], "model_source")));
    /* trustd stores the reasons as a JSON array of strings. */
    if ((rv = td_reply_hfield(rs[0], "reasons"))) {
        reasons = json_loads(rv, 0, NULL);
        if (!json_is_array(reasons)) {
            json_decref(reasons);
            reasons = json_pack("[s]", rv);
        }
    }
    if (!reasons) reasons = json_array();
    json_object_set_new(doc, "reasons", reasons);
    /* A rule's words in Chinese, from the model file (null for the
     * indicator reasons, which the page words from the catalog). */
    json_t *zh = json_array();
    for (size_t i = 0; i < json_array_size(reasons); i++) {
        const char *r = json_string_value(json_array_get(reasons, i));
        const char *z = r ? td_model_reason_zh(s->model, r) : NULL;
        json_array_append_new(zh, z ? json_string(z) : json_null());
    }
    json_object_set_new(doc, "reasons_zh", zh);
    subs = json_object();
    for (size_t i = 0; i + 1 < rs[0]->elements; i += 2) {
        const char *f = rs[0]->element[i]->str;
        if (!strncmp(f, "sub_", 4))
            json_object_set_new(subs, f + 4, jnum(rs[0]->element[i + 1]->str));
    }
    json_object_set_new(doc, "sub_scores", subs);
    json_object_set_new(doc, "prior_score",
                        json_real(td_model_prior_score(s->model)));
    json_object_set_new(doc, "signals_as_of_ms",
                        jnum(td_reply_hfield(rs[1], "as_of_ms")));
    json_object_set_new(doc, "signals", signals_json(s, rs[1]));
    answer_json(a, 200, doc);
out:
    for (int i = 0; i < 2; i++)
        freeReplyObject(rs[i]);
}

static void api_history(td_serve_t *s, answer_t *a, const char *m) {
    char key[TD_KEY_MAX];
    redisReply *rs[2] = {0};
    td_history_point_t pts[TD_HISTORY_MAX];
    json_t *arr;
    int n = 0;

    td_key_score(key, sizeof(key), m, strlen(m));
    td_store_append(s->st, "EXISTS %s", key);
    td_key_history(key, sizeof(key), m, strlen(m));
    td_store_append(s->st, "GET %s", key);
    if (!rget_n(s, a, rs, 2)) return;
    if (rs[0]->integer == 0 && rs[1]->type != REDIS_REPLY_STRING) {
        answer_error(a, 404, "unknown merchant '%s'", m);
        goto out;
    }
    if (rs[1]->type == REDIS_REPLY_STRING)
        n = td_history_decode((const unsigned char *)rs[1]->str, rs[1]->len,
                              pts, TD_HISTORY_MAX);
    arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:I, s:f, s:i, s:f, s:I}", "ms",
                           (json_int_t)pts[i].ms, "score", pts[i].score, "tier",
                           pts[i].tier, "confidence", pts[i].confidence,
                           "version", (json_int_t)pts[i].version));
    answer_json(a, 200,
                json_pack("{s:s, s:o}", "merchant_id", m, "points", arr));
out:
    for (int i = 0; i < 2; i++)
        freeReplyObject(rs[i]);
}

/* ---- rankings and tiers ---- */

static void
api_rank(td_serve_t *s, answer_t *a, struct MHD_Connection *c, int best) {
    const char *nv = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "n");
    long n = RANK_DEF;
    redisReply *z = NULL, **rs = NULL;
    size_t cnt;
    json_t *arr;

    if (nv) {
        char *end;
        n = strtol(nv, &end, 10);
        if (end == nv || *end || n < 1 || n > TD_SERVE_RANK_MAX) {
            answer_error(a, 400, "n must be 1..%d", TD_SERVE_RANK_MAX);
            return;
        }
    }
    td_store_append(s->st,
                    best ? "ZREVRANGE %s 0 %ld WITHSCORES"
                         : "ZRANGE %s 0 %ld WITHSCORES",
                    TD_KEY_SCORES, n - 1);
    if (!rget_n(s, a, &z, 1)) return;
    cnt = z->elements / 2;
    rs = calloc(cnt ? cnt : 1, sizeof(*rs));
    if (!rs) abort(); /* as every allocation here: no memory, no server */
    for (size_t i = 0; i < cnt; i++) {
        char key[TD_KEY_MAX];
        td_key_score(key, sizeof(key), z->element[2 * i]->str,
                     z->element[2 * i]->len);
        td_store_append(s->st, "HMGET %s tier confidence", key);
    }
    if (!rget_n(s, a, rs, cnt)) goto out;
    arr = json_array();
    for (size_t i = 0; i < cnt; i++) {
        const redisReply *h = rs[i];
        const char *t = td_reply_hmval(h, 0), *cf = td_reply_hmval(h, 1);
        json_array_append_new(
            arr,
            json_pack("{s:I, s:o, s:o, s:o, s:o}", "rank", (json_int_t)(i + 1),
                      "merchant_id",
                      jstrn(z->element[2 * i]->str, z->element[2 * i]->len),
                      "score", jnum(z->element[2 * i + 1]->str), "tier",
                      jnum(t), "confidence", jnum(cf)));
    }
    answer_json(a, 200, json_pack("{s:o}", "merchants", arr));
out:
    for (size_t i = 0; i < cnt; i++) {
        if (rs[i]) freeReplyObject(rs[i]);
    }
    free(rs);
    freeReplyObject(z);
}

/* Counts every ranked merchant's tier, TIER_CHUNK merchants per round. */
static void api_tiers(td_serve_t *s, answer_t *a) {
    long long counts[TIER_CNT + 1] = {0}; /* [0]: no or odd tier */
    redisReply *rs[TIER_CHUNK];
    long long total = 0;
    json_t *tiers;

    for (long from = 0;; from += TIER_CHUNK) {
        redisReply *z;
        td_store_append(s->st, "ZRANGE %s %ld %ld", TD_KEY_SCORES, from,
                        from + TIER_CHUNK - 1);
        if (!rget_n(s, a, &z, 1)) return;
        for (size_t i = 0; i < z->elements; i++) {
            char key[TD_KEY_MAX];
            td_key_score(key, sizeof(key), z->element[i]->str,
                         z->element[i]->len);
            td_store_append(s->st, "HGET %s tier", key);
        }
        if (!rget_n(s, a, rs, z->elements)) {
            freeReplyObject(z);
            return;
        }
        for (size_t i = 0; i < z->elements; i++) {
            long t = rs[i]->type == REDIS_REPLY_STRING
                         ? strtol(rs[i]->str, NULL, 10)
                         : 0;
            counts[t >= 1 && t <= TIER_CNT ? t : 0]++;
            freeReplyObject(rs[i]);
        }
        total += (long long)z->elements;
        int last = z->elements < TIER_CHUNK;
        freeReplyObject(z);
        if (last) break;
    }
    tiers = json_object();
    for (int t = 1; t <= TIER_CNT; t++) {
        char k[16];
        snprintf(k, sizeof(k), "%d", t);
        json_object_set_new(tiers, k, json_integer(counts[t]));
    }
    answer_json(a, 200,
                json_pack("{s:o, s:I, s:I}", "tiers", tiers, "unknown",
                          (json_int_t)counts[0], "total", (json_int_t)total));
}

/* ---- routing ---- */

/* Constant-time comparison of the Authorization header with the token. */
static int authorized(td_serve_t *s, struct MHD_Connection *c) {
    const char *tok = s->conf->serve_token;
    const char *h =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    size_t tl = strlen(tok), hl;
    unsigned char diff = 0;

    if (!*tok) return 1;
    if (!h || strncmp(h, "Bearer ", 7)) return 0;
    h += 7;
    hl = strlen(h);
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned char)(tok[i] ^ (i < hl ? h[i] : 0));
    return diff == 0 && hl == tl;
}

static const td_page_file_t *page_file(const char *name) {
    for (size_t i = 0; i < td_page_file_cnt; i++) {
        if (!strcmp(td_page_files[i].name, name)) return &td_page_files[i];
    }
    return NULL;
}

/* /api/merchants/{id}[/history]: the id and which one, or a 400. */
static void api_merchants(td_serve_t *s, answer_t *a, const char *rest) {
    const char *slash = strchr(rest, '/');
    size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
    char m[TD_MERCHANT_ID_MAX + 1];

    if (slash && strcmp(slash, "/history")) {
        answer_error(a, 404, "no such route");
        return;
    }
    if (!td_serve_id_valid(rest, len)) {
        answer_error(a, 400, "malformed merchant id: 1..%d bytes",
                     TD_MERCHANT_ID_MAX);
        return;
    }
    /* Avro strings, and so trustd's ids, are UTF-8; JSON needs it too. */
    if (!utf8_valid(rest, len)) {
        answer_error(a, 400, "malformed merchant id: not UTF-8");
        return;
    }
    memcpy(m, rest, len);
    m[len] = '\0';
    if (slash) {
        api_history(s, a, m);
    } else {
        api_merchant(s, a, m);
    }
}

static void
route(td_serve_t *s, answer_t *a, struct MHD_Connection *c, const char *url) {
    if (!strncmp(url, "/api/", 5)) {
        if (!authorized(s, c)) {
            answer_error(a, 401, "missing or wrong bearer token");
            return;
        }
        if (!strncmp(url, "/api/merchants/", 15)) {
            api_merchants(s, a, url + 15);
        } else if (!strcmp(url, "/api/top")) {
            api_rank(s, a, c, 1);
        } else if (!strcmp(url, "/api/bottom")) {
            api_rank(s, a, c, 0);
        } else if (!strcmp(url, "/api/tiers")) {
            api_tiers(s, a);
        } else {
            answer_error(a, 404, "no such route");
        }
        return;
    }
    /* The page: one document for / and every merchant's own address; the
     * script reads the id from the location. */
    const char *name = NULL;
    if (!strcmp(url, "/") || !strncmp(url, "/merchants/", 11)) {
        name = "index.html";
    } else if (url[0] == '/' && !strchr(url + 1, '/')) {
        name = url + 1;
    }
    const td_page_file_t *f = name ? page_file(name) : NULL;
    if (!f) {
        answer_error(a, 404, "no such page");
        return;
    }
    a->status = 200;
    a->type = f->type;
    a->body = malloc(f->len ? f->len : 1);
    if (!a->body) abort();
    memcpy(a->body, f->data, f->len);
    a->len = f->len;
}

static enum MHD_Result handler(void *cls,
                               struct MHD_Connection *c,
                               const char *url,
                               const char *method,
                               const char *version,
                               const char *upload_data,
                               size_t *upload_data_size,
                               void **con_cls) {
    td_serve_t *s = cls;
    answer_t a = {0};
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        answer_error(&a, 405, "read-only: GET only");
    } else if (strlen(url) > TD_SERVE_PATH_MAX) {
        answer_error(&a, 414, "path longer than %d bytes", TD_SERVE_PATH_MAX);
    } else {
        route(s, &a, c, url);
    }
    if (!a.body) return MHD_NO; /* out of memory in jansson */
    r = MHD_create_response_from_buffer(a.len, a.body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(a.body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", a.type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:");
    if (a.status == 405) MHD_add_response_header(r, "Allow", "GET, HEAD");
    if (a.status == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    ret = MHD_queue_response(c, a.status, r);
    MHD_destroy_response(r);
    return ret;
}

td_serve_t *td_serve_start(const td_conf_t *conf,
                           const td_model_t *model,
                           char *errstr,
                           size_t errstr_size) {
    td_serve_t *s;
    td_store_conf_t sc;
    char addr[64], err2[512];
    int port;

    if (td_serve_check_listen(conf, addr, sizeof(addr), &port, errstr,
                              errstr_size) != TD_OK)
        return NULL;
    if (!(s = calloc(1, sizeof(*s)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->conf = conf;
    s->model = model;
    td_store_conf_from(&sc, conf);
    sc.readonly = 1;
    if (!(s->st = td_store_new(&sc, errstr, errstr_size))) goto err;
    /* Redis may come later: requests answer 503 until then. */
    if (td_store_connect(s->st, err2, sizeof(err2)) != TD_OK)
        td_log(TD_LOG_WARNING, "serve: Redis at %s not reachable yet: %s",
               conf->redis, err2);
    s->d = td_http_daemon(addr, port, handler, s, unescape, &s->port, err2,
                          sizeof(err2));
    if (!s->d) {
        snprintf(errstr, errstr_size, "serve: %s", err2);
        goto err;
    }
    return s;
err:
    td_store_destroy(s->st);
    free(s);
    return NULL;
}

int td_serve_port(const td_serve_t *s) {
    return s->port;
}

void td_serve_stop(td_serve_t *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    td_store_destroy(s->st);
    free(s);
}
