/*
 * store_int.h - the store's state, shared by its parts: store.c (settings,
 * connections, the function library, the tools' queue), store_stream.c (a
 * batch streamed on connections), store_node.c (one Redis) and
 * store_cluster.c (the Redis Cluster router). Internal.
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
 * time one batch may spend backing off TRYAGAIN/CLUSTERDOWN/LOADING, and the
 * longest WAIT (also bounded by half the command timeout). */
#define WAIT_REPLICAS    1
#define REDIRECT_MAX     16
#define TRANSIENT_MAX_MS 1000
#define WAIT_MAX_MS      1000

/* One cluster node's connection and its part of the current batch. */
typedef struct snode_s {
    redisContext *c;
    int lib_loaded;
    int dirty;      /* writes on c that no WAIT confirmed yet */
    int used;       /* in this batch */
    int wait_sent;  /* a WAIT follows the batch's commands, not read yet */
    int resent;     /* took a resent write while settling */
    int head, tail; /* commands sent, reply not read, chained by cstate.next */
} snode_t;

/* One command of a cluster batch. */
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
    int *used; /* nodes of this batch */
    int nused;
    cstate_t *cs; /* commands of this batch, by index */
    size_t cscap;
    redisReply **cout; /* td_store_cluster_collect(): replies go here, */
    size_t cfrom;      /* out[i - cfrom] for command i */
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
/* 1 if r, a COMMAND INFO td.put reply, shows the module version trustd
 * speaks (3: TD.PUT's keys at 2..6); with an older module, or none,
 * trustd writes with the Lua library until the module is upgraded. */
int td_store_module_current(const redisReply *r);
/* 1 if r says the server lost the function library. */
int td_store_missing_function(const redisReply *r);
/* One Redis: drops the connection after an error. */
void td_store_drop(td_store_t *st);

/* store_stream.c */

/* How a batch goes out on one Redis or a cluster. send: sends commands
 * [b->sent, to), b->sent = to. recv: reads the replies of the commands
 * before to and hands them to td_store_deliver() in order from b->done
 * (the cluster may stop short at a redirection, settled at the end).
 * finish: NULL, or what follows the last command (the cluster's WAITs). */
typedef struct td_store_link_s {
    int (*send)(td_store_t *st,
                td_rbatch_t *b,
                size_t to,
                char *errstr,
                size_t errstr_size);
    int (*recv)(td_store_t *st,
                td_rbatch_t *b,
                size_t to,
                char *errstr,
                size_t errstr_size);
    int (*finish)(td_store_t *st, char *errstr, size_t errstr_size);
} td_store_link_t;

/* td_store_exec_part() over a link: sends the complete chunks queued since
 * the last call, one chunk ahead of the replies it reads; final: the rest,
 * finish, and every reply. TD_ERR + errstr as soon as send, recv or finish
 * fails; replies the connections still owe are the link's to read (or to
 * drop the connection). */
int td_store_stream(td_store_t *st,
                    td_rbatch_t *b,
                    int final,
                    const td_store_link_t *l,
                    char *errstr,
                    size_t errstr_size);
/* Writes c's output buffer out completely. REDIS_OK or REDIS_ERR. */
int td_store_flush_out(redisContext *c);
/* errstr = "redis host:port: " and c's error ("connection lost" if none). */
void td_store_conn_err(const redisContext *c,
                       const char *host,
                       int port,
                       char *errstr,
                       size_t errstr_size);
/* Hands r, the reply of b's command i, to its callback and frees it. A
 * reply saying the server lost the function library clears *lib_loaded
 * and fails (host: the node's, or NULL on one Redis). TD_OK, or TD_ERR
 * with errstr from the callback or about the library. */
int td_store_deliver(td_store_t *st,
                     td_rbatch_t *b,
                     size_t i,
                     redisReply *r,
                     int *lib_loaded,
                     const char *host,
                     int port,
                     char *errstr,
                     size_t errstr_size);

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
/* td_store_exec_part() on a cluster. */
int td_store_cluster_exec(td_store_t *st,
                          td_rbatch_t *b,
                          int final,
                          char *errstr,
                          size_t errstr_size);
/* Sends b's commands from start to its end, routed, and stores their
 * replies in out, in command order (the caller frees them); TD_ERR holds
 * none. */
int td_store_cluster_collect(td_store_t *st,
                             td_rbatch_t *b,
                             size_t start,
                             redisReply **out,
                             char *errstr,
                             size_t errstr_size);

#endif
