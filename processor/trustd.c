/*
 * trustd.c - the Trust Index stream processor daemon.
 *
 *   trustd --brokers LIST --redis HOST:PORT [--group ID] [--config FILE]
 *          [-X librdkafka.property=value ...]
 *
 * Reads configuration (flags > TRUST_* environment > config file >
 * defaults), validates all of it before connecting anywhere, serves
 * /metrics, /healthz and /readyz, and runs one consumer-group worker until
 * SIGTERM or SIGINT. The first signal finishes the batch in hand, flushes
 * state and offsets and leaves the group; a second one exits at once (safe:
 * every Redis write is atomic and idempotent, offsets are stored only after
 * the state they cover).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "http.h"
#include "log.h"
#include "worker.h"

extern char **environ;

static volatile sig_atomic_t stop_flag = 0;

static void on_signal(int sig) {
    (void)sig;
    if (stop_flag) _exit(2); /* second signal: exit now */
    stop_flag = 1;
}

int main(int argc, char **argv) {
    td_conf_t conf;
    char errstr[512];
    int want_help = 0, want_print = 0, rest_cnt = 0, rc;
    char **rest = NULL;
    td_worker_t *w;
    td_http_t *http = NULL;
    struct sigaction sa;

    td_conf_init(&conf);
    if (td_conf_load(&conf, TD_CONF_TRUSTD, argc, argv, environ, &want_help,
                     &want_print, &rest, &rest_cnt, errstr,
                     sizeof(errstr)) != 0) {
        fprintf(stderr, "trustd: %s\n", errstr);
        td_conf_term(&conf);
        return 1;
    }
    if (want_help) {
        td_conf_usage(stdout, TD_CONF_TRUSTD, "trustd");
        td_conf_term(&conf);
        return 0;
    }
    if (want_print) {
        td_conf_print(&conf, stdout);
        td_conf_term(&conf);
        return 0;
    }
    if (rest_cnt > 0) {
        fprintf(stderr, "trustd: unexpected argument '%s' (see --help)\n",
                rest[0]);
        td_conf_term(&conf);
        return 1;
    }
    td_log_init(conf.log_level, conf.log_json);
    td_log_set_ident("trustd");

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!(w = td_worker_new(&conf, &stop_flag, errstr, sizeof(errstr)))) {
        fprintf(stderr, "trustd: %s\n", errstr);
        td_conf_term(&conf);
        return 1;
    }
    if (conf.http_port > 0 &&
        !(http = td_http_start(conf.http_addr, conf.http_port,
                               td_worker_metrics(w), conf.stall_timeout_ms,
                               errstr, sizeof(errstr)))) {
        fprintf(stderr, "trustd: %s\n", errstr);
        td_worker_destroy(w);
        td_conf_term(&conf);
        return 1;
    }
    td_log(TD_LOG_NOTICE,
           "trustd starting: brokers=%s redis=%s group=%s http=%s:%d",
           conf.brokers, conf.redis, conf.group, conf.http_addr,
           http ? td_http_port(http) : 0);
    rc = td_worker_run(w);
    td_http_stop(http);
    td_worker_destroy(w);
    td_conf_term(&conf);
    return rc;
}
