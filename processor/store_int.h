/*
 * store_int.h - the store's state, shared by its parts: store.c (settings,
 * connections, the function library, the tools' queue), store_node.c (one
 * Redis) and store_cluster.c (the Redis Cluster router). Internal.
 */
#ifndef TD_STORE_INT_H
#define TD_STORE_INT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <sys/time.h>

#include "cluster.h"
#include "rbatch_int.h"
#include "store.h"

#define PIPELINE_CHUNK 2048
/* Cluster: replicas a write must reach, redirections one command may take,
 * time one round may spend backing off TRYAGAIN/CLUSTERDOWN/LOADING, and the
 * longest WAIT (also bounded by half the command timeout). */
#define WAIT_REPLICAS    1
#define REDIRECT_MAX     16
#define TRANSIENT_MAX_MS 1000
#define WAIT_MAX_MS      1000

/* One cluster node's connection and its part of the current round. */
typedef struct snode_s {
    redisContext *c;
    int lib_loaded;
    int dirty;      /* writes on c that no WAIT confirmed yet */
    int used;       /* in this round */
    int failed;     /* this round's I/O on it failed */
    int wait_sent;  /* a WAIT follows this round's commands */
    int resent;     /* took a resent write while settling */
    int head, tail; /* this round's commands, chained by cstate.next */
} snode_t;

/* One command of a cluster round. */
typedef struct cstate_s {
    int node;
    int slot; /* -1: keyless */
    int write;
    int scan_ord; /* SCAN: index of the master it walks, else -1 */
    int next;
    redisReply *r;
} cstate_t;

typedef struct seed_s {
    char *host; /* or a unix socket path when port < 0 */
    int port;
} seed_t;

struct td_store_s {
    char *host; /* or unix socket path when port < 0 */
    int port;
    char *user;
    char *password;
    int connect_timeout_ms;
    int command_timeout_ms;
    int readonly;
    int module; /* TD_REDIS_MODULE_* */
    int native; /* the last connection had the module's commands */
    redisContext *c;
    int healthy;
    int lib_loaded;
    char *lib;                 /* library source */
    char hash[17];             /* hex of the library hash */
    char fn[TD_STORE_FNS][48]; /* function names */
    td_store_stats_t stats;

    /* cluster */
    int cluster; /* speaking the cluster protocol */
    int detect;  /* one Redis: ask CLUSTER INFO on the next connect */
    seed_t *seeds;
    int nseeds;
    size_t seedcap;
    td_cluster_t *map;
    int map_ok;  /* loaded and not known to be stale */
    snode_t *sn; /* per map node */
    int sncap;
    int *masters; /* by lowest slot, as td_cluster_masters() */
    int nmasters;
    int *used; /* nodes of this round */
    int nused;
    cstate_t *cs; /* commands of this round */
    size_t cscap;
    int wait_ms;

    /* td_store_append() queue: commands, then their replies */
    td_rbatch_t *qb;
    redisReply **qr;
    size_t qrcap;
    size_t qsent; /* commands before this were sent */
    size_t qhead; /* next reply to hand out */
    char qerr[512];
};

/* store.c */

/* Connects to host:port (or the unix socket host when port < 0), sets the
 * command timeout and authenticates. NULL + errstr on failure. */
redisContext *td_store_open_conn(td_store_t *st,
                                 const char *host,
                                 int port,
                                 char *errstr,
                                 size_t errstr_size);
/* FUNCTION LOAD REPLACE of the library on c. */
int td_store_load_library(td_store_t *st,
                          redisContext *c,
                          char *errstr,
                          size_t errstr_size);
/* Whether the server on c has the trustd module's commands (st->native). */
int td_store_probe_module(td_store_t *st,
                          redisContext *c,
                          char *errstr,
                          size_t errstr_size);
/* 1 if r says the server lost the function library. */
int td_store_missing_function(const redisReply *r);
/* One Redis: drops the connection after an error. */
void td_store_drop(td_store_t *st);

/* store_node.c: one Redis, on st->c (connected by the caller). */

/* td_store_exec_part() on one Redis. */
int td_store_node_exec(td_store_t *st,
                       td_rbatch_t *b,
                       int final,
                       char *errstr,
                       size_t errstr_size);
/* Sends b's commands [start, end) pipelined and stores their replies in
 * out (the caller frees them). */
int td_store_node_collect(td_store_t *st,
                          td_rbatch_t *b,
                          size_t start,
                          size_t end,
                          redisReply **out,
                          char *errstr,
                          size_t errstr_size);

/* store_cluster.c */

/* td_store_connect() on a cluster: the slot map, the library on every
 * master. */
int td_store_cluster_connect(td_store_t *st, char *errstr, size_t errstr_size);
/* td_store_exec() on a cluster. */
int td_store_cluster_exec(td_store_t *st,
                          td_rbatch_t *b,
                          char *errstr,
                          size_t errstr_size);
/* td_store_node_collect() on a cluster: replies in command order. */
int td_store_cluster_collect(td_store_t *st,
                             td_rbatch_t *b,
                             size_t start,
                             size_t end,
                             redisReply **out,
                             char *errstr,
                             size_t errstr_size);

#endif
