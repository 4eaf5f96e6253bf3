/*
 * http.c - /metrics, /healthz and /readyz on libmicrohttpd's internal
 * polling thread. Handlers only read the worker's atomic metrics.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "http.h"

struct td_http_s {
    struct MHD_Daemon *d;
    td_metrics_t *metrics;
    int stall_timeout_ms;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *c,
                             unsigned status,
                             const char *type,
                             char *body,
                             size_t len,
                             enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    enum MHD_Result ret;
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls,
                               struct MHD_Connection *c,
                               const char *url,
                               const char *method,
                               const char *version,
                               const char *upload_data,
                               size_t *upload_data_size,
                               void **con_cls) {
    td_http_t *h = cls;
    char why[256];

    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(c, 405, "text/plain", "method not allowed\n", 19,
                     MHD_RESPMEM_PERSISTENT);
    if (!strcmp(url, "/metrics")) {
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        if (!fp) return MHD_NO;
        td_metrics_write(h->metrics, td_mono_ms(), h->stall_timeout_ms, fp);
        fclose(fp);
        return reply(c, 200, "text/plain; version=0.0.4", buf, len,
                     MHD_RESPMEM_MUST_FREE);
    }
    if (!strcmp(url, "/healthz"))
        return reply(c, 200, "text/plain", "ok\n", 3, MHD_RESPMEM_PERSISTENT);
    if (!strcmp(url, "/readyz")) {
        int ok = td_metrics_ready(h->metrics, td_mono_ms(), h->stall_timeout_ms,
                                  why, sizeof(why) - 1);
        size_t n = strlen(why);
        why[n++] = '\n';
        return reply(c, ok ? 200 : 503, "text/plain", why, n,
                     MHD_RESPMEM_MUST_COPY);
    }
    return reply(c, 404, "text/plain", "not found\n", 10,
                 MHD_RESPMEM_PERSISTENT);
}

td_http_t *td_http_start(const char *addr,
                         int port,
                         td_metrics_t *metrics,
                         int stall_timeout_ms,
                         char *errstr,
                         size_t errstr_size) {
    td_http_t *h = calloc(1, sizeof(*h));
    char why[256];

    if (!h) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    h->metrics = metrics;
    h->stall_timeout_ms = stall_timeout_ms;
    h->d = td_http_daemon(addr, port, handler, h, NULL, &h->port, why,
                          sizeof(why));
    if (!h->d) {
        snprintf(errstr, errstr_size, "http: %s", why);
        free(h);
        return NULL;
    }
    return h;
}

struct MHD_Daemon *td_http_daemon(const char *addr,
                                  int port,
                                  MHD_AccessHandlerCallback on_request,
                                  void *cls,
                                  td_http_unescape_t unescape,
                                  int *bound,
                                  char *errstr,
                                  size_t errstr_size) {
    struct sockaddr_in sin;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        snprintf(errstr, errstr_size, "'%s' is not an IPv4 address", addr);
        return NULL;
    }
    d = unescape
            ? MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port,
                               NULL, NULL, on_request, cls,
                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
                               MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
                               MHD_OPTION_END)
            : MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port,
                               NULL, NULL, on_request, cls,
                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
                               MHD_OPTION_END);
    if (!d) {
        snprintf(errstr, errstr_size, "cannot listen on %s:%d", addr, port);
        return NULL;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound = info ? info->port : port;
    return d;
}

int td_http_port(const td_http_t *h) {
    return h->port;
}

void td_http_stop(td_http_t *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
