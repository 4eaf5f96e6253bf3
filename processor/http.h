/*
 * http.h - trustd's operations endpoint (libmicrohttpd, its own thread):
 * GET /metrics (Prometheus text), /healthz (process alive), /readyz
 * (assigned, Redis reachable, not stalled: 200 or 503 with the reason).
 */
#ifndef TD_HTTP_H
#define TD_HTTP_H

#include <microhttpd.h>
#include <stddef.h>

#include "metrics.h"

typedef struct td_http_s td_http_t;

/* Starts serving on addr:port (port 0 lets the system pick; trustd's
 * http_port 0 means no endpoint and does not call this). metrics is
 * borrowed and must outlive the server. NULL + errstr on failure. */
td_http_t *td_http_start(const char *addr,
                         int port,
                         td_metrics_t *metrics,
                         int stall_timeout_ms,
                         char *errstr,
                         size_t errstr_size);
/* The libmicrohttpd daemon both HTTP servers run (this endpoint and
 * trustctl serve, serve.c): its own polling thread, 10 s connection
 * timeout, on IPv4 addr:port (port 0: any; *bound gets the port);
 * unescape decodes paths (NULL: libmicrohttpd's own). NULL + errstr on
 * failure. */
typedef size_t (*td_http_unescape_t)(void *cls,
                                     struct MHD_Connection *c,
                                     char *s);
struct MHD_Daemon *td_http_daemon(const char *addr,
                                  int port,
                                  MHD_AccessHandlerCallback handler,
                                  void *cls,
                                  td_http_unescape_t unescape,
                                  int *bound,
                                  char *errstr,
                                  size_t errstr_size);
/* The port actually bound. */
int td_http_port(const td_http_t *h);
void td_http_stop(td_http_t *h); /* NULL ok */

#endif
