/*
 * serve.h - `trustctl serve`: the merchant trust page and its read-only JSON
 * API over HTTP (libmicrohttpd, one internal polling thread):
 *
 *   GET /, /merchants/{id}          the page (HTML, CSS, JS built in)
 *   GET /api/merchants/{id}         score hash + signals with the catalog
 *   GET /api/merchants/{id}/history the score history (history.h)
 *   GET /api/top?n=, /api/bottom?n= best / worst merchants (trust:scores)
 *   GET /api/tiers                  merchants per tier
 *
 * Access: listen must be a loopback address unless a serve_token is set;
 * with a token every /api request needs "Authorization: Bearer <token>"
 * (the page's own files hold no merchant data and are served to anyone).
 * The server only reads Redis (a readonly td_store).
 */
#ifndef TD_SERVE_H
#define TD_SERVE_H

#include <stddef.h>

#include "conf.h"
#include "model.h"

#define TD_SERVE_PATH_MAX 512 /* longer request paths get 414 */
#define TD_SERVE_RANK_MAX 100 /* largest n of /api/top and /api/bottom */

typedef struct td_serve_s td_serve_t;

/*
 * Checks conf->listen ("a.b.c.d:port") against conf->serve_token: fills
 * *addr (at least 16 bytes) and *port. TD_OK, or TD_ERR + errstr for a
 * malformed address, or a non-loopback address without a token.
 */
int td_serve_check_listen(const td_conf_t *conf,
                          char *addr,
                          size_t addr_size,
                          int *port,
                          char *errstr,
                          size_t errstr_size);

/*
 * Starts serving conf->listen with conf's Redis settings. conf and model
 * are borrowed and must outlive the server. Redis need not be up: requests
 * answer 503 until it is. NULL + errstr when the address is refused (see
 * td_serve_check_listen) or cannot be bound.
 */
td_serve_t *td_serve_start(const td_conf_t *conf,
                           const td_model_t *model,
                           char *errstr,
                           size_t errstr_size);
/* The port actually bound (listen port 0 picks a free one). */
int td_serve_port(const td_serve_t *s);
void td_serve_stop(td_serve_t *s); /* NULL ok */

/* 1 if id (len bytes) is a merchant id trustd accepts: 1..TD_MERCHANT_ID_MAX
 * bytes, no NUL (codec.c's merchant_id rule). */
int td_serve_id_valid(const char *id, size_t len);

#endif
