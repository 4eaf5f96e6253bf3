/*
 * registry.c - writer schemas by Confluent schema id (see registry.h).
 *
 * One entry per id ever asked for or mapped, in an array searched linearly:
 * the codec remembers every id it was given, so this is asked once per id
 * (and per unknown message), never per event. An entry is FOUND (text
 * kept), UNKNOWN (until a time), FETCHING (an easy handle in the multi
 * handle) or FAILED (next try at a time, backoff doubling up to
 * retry_max_ms). The body of an answer is collected up to MAX_BODY bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common.h"
#include "registry.h"

#define MAX_BODY     (1024 * 1024) /* a schema, with room to spare */
#define BACKOFF_MIN  200           /* ms before the first retry */
#define MAX_PARALLEL 4             /* requests at once */
#define MAP_LINE_MAX 4096

typedef enum { E_FOUND, E_UNKNOWN, E_FETCHING, E_FAILED } estate_t;

typedef struct entry_s {
    uint32_t id;
    estate_t state;
    char *json; /* E_FOUND */
    size_t len;
    int64_t until_ms; /* E_UNKNOWN: asked again after; E_FAILED: retry at */
    int backoff_ms;   /* next backoff after a failure */
    CURL *easy;       /* E_FETCHING */
    char *body;       /* the answer so far */
    size_t body_len;
    int body_over; /* the answer exceeded MAX_BODY */
} entry_t;

struct td_registry_s {
    char *url; /* without a trailing slash; NULL: none */
    char *user;
    char *password;
    int timeout_ms;
    int retry_max_ms;
    CURLM *multi;
    entry_t **e;
    size_t cnt, cap;
    uint32_t *map_ids;
    size_t map_cnt;
    td_registry_stats_t stats;
    char error[512];
};

static char *dup_or_null(const char *s) {
    return s != NULL && *s != '\0' ? strdup(s) : NULL;
}

static entry_t *find(const td_registry_t *r, uint32_t id) {
    for (size_t i = 0; i < r->cnt; i++) {
        if (r->e[i]->id == id) return r->e[i];
    }
    return NULL;
}

static entry_t *add(td_registry_t *r, uint32_t id) {
    entry_t *e;

    if (r->cnt == r->cap) {
        size_t n = r->cap ? r->cap * 2 : 16;
        entry_t **p = realloc(r->e, n * sizeof(*p));

        if (p == NULL) return NULL;
        r->e = p;
        r->cap = n;
    }
    if ((e = calloc(1, sizeof(*e))) == NULL) return NULL;
    e->id = id;
    e->state = E_FAILED; /* due now: the first request */
    e->backoff_ms = BACKOFF_MIN;
    r->e[r->cnt++] = e;
    return e;
}

/*
 * The map file
 */

/* Reads a whole schema file into a NUL-terminated buffer. */
static char *read_file(const char *path, size_t *lenp, char *why, size_t n) {
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, got;

    if (fp == NULL) {
        snprintf(why, n, "cannot open %.256s: %s", path, strerror(errno));
        return NULL;
    }
    do {
        if (len + 4096 + 1 > cap) {
            char *p;

            cap = cap ? cap * 2 : 8192;
            if (cap > MAX_BODY + 1 || (p = realloc(buf, cap)) == NULL) {
                snprintf(why, n, "%.256s is larger than %d bytes", path,
                         MAX_BODY);
                free(buf);
                fclose(fp);
                return NULL;
            }
            buf = p;
        }
        got = fread(buf + len, 1, cap - len - 1, fp);
        len += got;
    } while (got > 0);
    fclose(fp);
    buf[len] = '\0';
    *lenp = len;
    return buf;
}

/* One "ID PATH" line; PATH relative to the map file's directory. */
static int map_line(td_registry_t *r,
                    const char *file,
                    int lineno,
                    char *line,
                    char *errstr,
                    size_t errstr_size) {
    char *id_s, *path, *end, full[4096], why[512];
    const char *slash = strrchr(file, '/');
    unsigned long long id;
    entry_t *e;

    id_s = strtok(line, " \t\r\n");
    if (id_s == NULL || *id_s == '#') return TD_OK;
    path = strtok(NULL, " \t\r\n");
    errno = 0;
    id = strtoull(id_s, &end, 10);
    if (*end != '\0' || errno != 0 || id > UINT32_MAX || *id_s == '-') {
        snprintf(errstr, errstr_size, "%s:%d: bad schema id '%s'", file, lineno,
                 id_s);
        return TD_ERR;
    }
    if (path == NULL || strtok(NULL, " \t\r\n") != NULL) {
        snprintf(errstr, errstr_size, "%s:%d: expected 'ID PATH'", file,
                 lineno);
        return TD_ERR;
    }
    if (find(r, (uint32_t)id) != NULL) {
        snprintf(errstr, errstr_size, "%s:%d: schema id %llu twice", file,
                 lineno, id);
        return TD_ERR;
    }
    if (*path == '/' || slash == NULL)
        snprintf(full, sizeof(full), "%s", path);
    else
        snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - file), file,
                 path);
    if ((e = add(r, (uint32_t)id)) == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return TD_ERR;
    }
    e->state = E_FOUND;
    e->json = read_file(full, &e->len, why, sizeof(why));
    if (e->json == NULL) {
        snprintf(errstr, errstr_size, "%s:%d: %s", file, lineno, why);
        return TD_ERR;
    }
    return TD_OK;
}

static int
load_map(td_registry_t *r, const char *file, char *errstr, size_t errstr_size) {
    FILE *fp = fopen(file, "r");
    char line[MAP_LINE_MAX];
    int lineno = 0, rc = TD_OK;

    if (fp == NULL) {
        snprintf(errstr, errstr_size, "cannot open schema map %s: %s", file,
                 strerror(errno));
        return TD_ERR;
    }
    while (rc == TD_OK && fgets(line, sizeof(line), fp) != NULL) {
        lineno++;
        rc = map_line(r, file, lineno, line, errstr, errstr_size);
    }
    fclose(fp);
    if (rc != TD_OK) return TD_ERR;
    r->map_ids = calloc(r->cnt ? r->cnt : 1, sizeof(*r->map_ids));
    if (r->map_ids == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return TD_ERR;
    }
    for (size_t i = 0; i < r->cnt; i++)
        r->map_ids[i] = r->e[i]->id;
    r->map_cnt = r->cnt;
    return TD_OK;
}

/*
 * HTTP
 */

static size_t on_body(char *p, size_t size, size_t n, void *opaque) {
    entry_t *e = opaque;
    size_t len = size * n;
    char *b;

    if (e->body_over || e->body_len + len > MAX_BODY) {
        e->body_over = 1;
        return len; /* keep reading; judged when done */
    }
    if ((b = realloc(e->body, e->body_len + len + 1)) == NULL) {
        e->body_over = 1;
        return len;
    }
    memcpy(b + e->body_len, p, len);
    e->body = b;
    e->body_len += len;
    e->body[e->body_len] = '\0';
    return len;
}

static void end_request(td_registry_t *r, entry_t *e) {
    if (e->easy != NULL) {
        curl_multi_remove_handle(r->multi, e->easy);
        curl_easy_cleanup(e->easy);
        e->easy = NULL;
    }
    free(e->body);
    e->body = NULL;
    e->body_len = 0;
    e->body_over = 0;
}

static void start_request(td_registry_t *r, entry_t *e) {
    char url[2048];

    snprintf(url, sizeof(url), "%s/schemas/ids/%u", r->url, e->id);
    e->easy = curl_easy_init();
    if (e->easy == NULL) goto fail;
    curl_easy_setopt(e->easy, CURLOPT_URL, url);
    curl_easy_setopt(e->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e->easy, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(e->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(e->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e->easy, CURLOPT_WRITEDATA, e);
    curl_easy_setopt(e->easy, CURLOPT_PRIVATE, e);
    if (r->user != NULL) {
        curl_easy_setopt(e->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e->easy, CURLOPT_USERNAME, r->user);
        curl_easy_setopt(e->easy, CURLOPT_PASSWORD,
                         r->password ? r->password : "");
    }
    if (curl_multi_add_handle(r->multi, e->easy) != CURLM_OK) goto fail;
    e->state = E_FETCHING;
    r->stats.waiting++;
    return;
fail:
    if (e->easy != NULL) curl_easy_cleanup(e->easy);
    e->easy = NULL;
    e->state = E_FAILED;
    e->until_ms = td_mono_ms() + e->backoff_ms;
    snprintf(r->error, sizeof(r->error), "schema id %u: cannot start a request",
             e->id);
}

/* The schema text of a 200 answer, or NULL with why. */
static char *parse_found(entry_t *e, size_t *lenp, char *why, size_t n) {
    json_error_t jerr;
    json_t *doc = json_loadb(e->body, e->body_len, 0, &jerr);
    json_t *schema = json_object_get(doc, "schema");
    char *text = NULL;

    if (doc == NULL) {
        snprintf(why, n, "answer is not JSON: %s", jerr.text);
    } else if (!json_is_string(schema)) {
        snprintf(why, n, "answer has no \"schema\" string");
    } else {
        *lenp = json_string_length(schema);
        text = malloc(*lenp + 1);
        if (text == NULL) {
            snprintf(why, n, "out of memory");
        } else {
            memcpy(text, json_string_value(schema), *lenp);
            text[*lenp] = '\0';
        }
    }
    json_decref(doc);
    return text;
}

/* A 404 is "unknown" only with the API's error_code: a wrong URL (another
 * server's 404) must not dead-letter every message. */
static int is_not_found(const entry_t *e) {
    json_t *doc = json_loadb(e->body ? e->body : "", e->body_len, 0, NULL);
    int yes = json_integer_value(json_object_get(doc, "error_code")) == 40403;

    json_decref(doc);
    return yes;
}

/* Judges a finished request. Returns 1 if the id got an answer. */
static int finish(td_registry_t *r, entry_t *e, CURLcode cc) {
    long status = 0;
    char why[256] = "";

    curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &status);
    r->stats.requests++;
    r->stats.waiting--;
    if (cc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", curl_easy_strerror(cc));
    } else if (e->body_over) {
        snprintf(why, sizeof(why), "answer larger than %d bytes", MAX_BODY);
    } else if (status == 200) {
        e->json = parse_found(e, &e->len, why, sizeof(why));
    } else if (status == 404 && is_not_found(e)) {
        end_request(r, e);
        e->state = E_UNKNOWN;
        e->until_ms = td_mono_ms() + TD_REGISTRY_UNKNOWN_TTL_MS;
        e->backoff_ms = BACKOFF_MIN;
        return 1;
    } else {
        snprintf(why, sizeof(why), "HTTP status %ld%s", status,
                 status == 404 ? " without error_code 40403 (is "
                                 "schema_registry_url the API's base?)"
                               : "");
    }
    end_request(r, e);
    if (e->json != NULL) {
        e->state = E_FOUND;
        return 1;
    }
    r->stats.errors++;
    snprintf(r->error, sizeof(r->error), "schema id %u from %s: %s", e->id,
             r->url, why);
    e->state = E_FAILED;
    e->until_ms = td_mono_ms() + e->backoff_ms;
    e->backoff_ms = e->backoff_ms * 2 > r->retry_max_ms ? r->retry_max_ms
                                                        : e->backoff_ms * 2;
    return 0;
}

/*
 * Public
 */

td_registry_t *td_registry_new(const td_registry_conf_t *conf,
                               char *errstr,
                               size_t errstr_size) {
    td_registry_t *r = calloc(1, sizeof(*r));
    size_t n;

    if (r == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 2000;
    r->retry_max_ms =
        conf->retry_max_ms >= BACKOFF_MIN ? conf->retry_max_ms : BACKOFF_MIN;
    if (conf->map_file != NULL && *conf->map_file != '\0' &&
        load_map(r, conf->map_file, errstr, errstr_size) != TD_OK)
        goto err;
    if (conf->url != NULL && *conf->url != '\0') {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
            (r->multi = curl_multi_init()) == NULL) {
            snprintf(errstr, errstr_size, "cannot initialise libcurl");
            goto err;
        }
        curl_multi_setopt(r->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                          (long)MAX_PARALLEL);
        r->url = strdup(conf->url);
        r->user = dup_or_null(conf->user);
        r->password = dup_or_null(conf->password);
        if (r->url == NULL) {
            snprintf(errstr, errstr_size, "out of memory");
            goto err;
        }
        n = strlen(r->url);
        while (n > 0 && r->url[n - 1] == '/')
            r->url[--n] = '\0';
    }
    return r;
err:
    td_registry_destroy(r);
    return NULL;
}

void td_registry_destroy(td_registry_t *r) {
    if (r == NULL) return;
    for (size_t i = 0; i < r->cnt; i++) {
        end_request(r, r->e[i]);
        free(r->e[i]->json);
        free(r->e[i]);
    }
    if (r->multi != NULL) {
        curl_multi_cleanup(r->multi);
        curl_global_cleanup();
    }
    free(r->e);
    free(r->map_ids);
    free(r->url);
    free(r->user);
    free(r->password);
    free(r);
}

td_reg_status_t
td_registry_get(td_registry_t *r, uint32_t id, const char **json, size_t *len) {
    entry_t *e = find(r, id);

    if (e == NULL) {
        if (r->url == NULL) return TD_REG_UNKNOWN;
        if ((e = add(r, id)) == NULL) {
            snprintf(r->error, sizeof(r->error), "out of memory");
            return TD_REG_WAIT;
        }
    }
    switch (e->state) {
    case E_FOUND:
        *json = e->json;
        *len = e->len;
        return TD_REG_FOUND;
    case E_UNKNOWN:
        if (td_mono_ms() < e->until_ms) return TD_REG_UNKNOWN;
        start_request(r, e);
        return TD_REG_WAIT;
    case E_FAILED:
        if (td_mono_ms() >= e->until_ms) start_request(r, e);
        return TD_REG_WAIT;
    case E_FETCHING:
        break;
    }
    return TD_REG_WAIT;
}

int td_registry_poll(td_registry_t *r) {
    int running = 0, left = 0, answered = 0;
    int64_t now = td_mono_ms();
    CURLMsg *m;

    if (r->multi == NULL) return 0;
    for (size_t i = 0; i < r->cnt; i++) {
        entry_t *e = r->e[i];

        if (e->state == E_FAILED && now >= e->until_ms) start_request(r, e);
    }
    if (r->stats.waiting == 0) return 0;
    curl_multi_perform(r->multi, &running);
    while ((m = curl_multi_info_read(r->multi, &left)) != NULL) {
        entry_t *e = NULL;

        if (m->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&e);
        if (e != NULL) answered += finish(r, e, m->data.result);
    }
    return answered;
}

const char *td_registry_error(const td_registry_t *r) {
    return r->error;
}

const td_registry_stats_t *td_registry_stats(const td_registry_t *r) {
    return &r->stats;
}

size_t td_registry_map_cnt(const td_registry_t *r) {
    return r->map_cnt;
}

uint32_t td_registry_map_id(const td_registry_t *r, size_t i) {
    return i < r->map_cnt ? r->map_ids[i] : 0;
}
