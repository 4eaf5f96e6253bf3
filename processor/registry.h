/*
 * registry.h - writer schemas by Confluent schema id: a static map file and
 * a schema registry's REST API (GET /schemas/ids/{id}), cached.
 *
 * Lookups never block: an id neither cached nor mapped starts an HTTP
 * request (libcurl's multi interface) and answers TD_REG_WAIT; the caller
 * drives the requests with td_registry_poll() and asks again. A registry
 * that fails (no connection, timeout, an HTTP error, an answer that is not
 * the API's) is retried with exponential backoff for as long as it takes;
 * only its documented "schema not found" (404 with error_code 40403) makes
 * an id unknown, remembered for TD_REGISTRY_UNKNOWN_TTL_MS. Schemas are
 * kept for the life of the object: a registry's id never changes meaning.
 *
 * Not thread-safe: one per thread (trustd's main thread).
 */
#ifndef TD_REGISTRY_H
#define TD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

/* How long a "not found" answer stands before the registry is asked
 * again. */
#define TD_REGISTRY_UNKNOWN_TTL_MS 60000

typedef struct td_registry_s td_registry_t;

typedef struct td_registry_conf_s {
    const char *url;  /* base URL of the Confluent-compatible API; ""
                       * or NULL: no registry */
    const char *user; /* HTTP basic auth; "" or NULL: none */
    const char *password;
    const char *map_file; /* "ID PATH" lines; "" or NULL: none */
    int timeout_ms;       /* per request, connecting included */
    int retry_max_ms;     /* longest backoff between retries */
} td_registry_conf_t;

typedef enum {
    TD_REG_FOUND,   /* the schema text is there */
    TD_REG_UNKNOWN, /* neither the map nor the registry has the id */
    TD_REG_WAIT     /* a request runs, or the registry failed: ask later */
} td_reg_status_t;

typedef struct td_registry_stats_s {
    uint64_t requests; /* HTTP requests completed or failed */
    uint64_t errors;   /* of those, failures (retried) */
    int waiting;       /* ids waiting for an answer now */
} td_registry_stats_t;

/*
 * Reads the map file (every schema file it names is read now) and sets up
 * the HTTP client. NULL with errstr ("file:line: what is wrong" for the map)
 * on any error. The map wins over the registry for the ids it has.
 */
td_registry_t *td_registry_new(const td_registry_conf_t *conf,
                               char *errstr,
                               size_t errstr_size);

/* Frees everything, aborting requests in flight. NULL is a no-op. */
void td_registry_destroy(td_registry_t *r);

/*
 * Looks up id. TD_REG_FOUND sets *json and *len (NUL-terminated text owned
 * by r, valid until td_registry_destroy). TD_REG_WAIT starts a request if
 * none runs and no backoff is pending. Never blocks.
 */
td_reg_status_t
td_registry_get(td_registry_t *r, uint32_t id, const char **json, size_t *len);

/*
 * Moves requests on without blocking and starts the retries that are due.
 * Returns how many ids got an answer (found or unknown) in this call.
 */
int td_registry_poll(td_registry_t *r);

/* The last failure ("schema id 7: connection refused ..."), or "". */
const char *td_registry_error(const td_registry_t *r);

const td_registry_stats_t *td_registry_stats(const td_registry_t *r);

/* The ids of the map file, for checking them at start: the i-th one
 * (0 <= i < td_registry_map_cnt) into *id. */
size_t td_registry_map_cnt(const td_registry_t *r);
uint32_t td_registry_map_id(const td_registry_t *r, size_t i);

#endif
