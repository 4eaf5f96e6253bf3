/*
 * store.h - trustd's Redis store: connections, the function library, and
 * pipelined batches of per-merchant commands, on one Redis or on a Redis
 * Cluster.
 *
 * The key layout and the requests themselves are the merchant protocol's
 * (proto.h); this module only carries them.
 *
 * Native commands: with conf->module not "lua", each (re)connection asks
 * the server whether it has the trustd module's commands (COMMAND INFO
 * td.put); td_store_native() says whether every connection so far did,
 * and proto.c sends TD.* commands then, the function library otherwise.
 *
 * Every script touches the keys of one merchant (or one partition record)
 * only. Commands are queued into a td_rbatch_t (rbatch.h) and sent with
 * td_store_exec(), which pipelines them, reloads the function library when
 * Redis lost it, and reports connection failures so the caller can retry the
 * whole batch: every command trustd sends is safe to repeat.
 *
 * Cluster mode (conf->cluster, or found by CLUSTER INFO on a single
 * address): each command goes to the master of its key's slot (cluster.c
 * knows where the key is), one connection and one pipeline per master;
 * MOVED, ASK, TRYAGAIN and CLUSTERDOWN are followed or retried inside the
 * call. Before td_store_exec() returns TD_OK, every master it wrote to has
 * confirmed with WAIT that at least one replica received those writes: a
 * batch the caller saw succeed survives a failover. A master without a
 * replica therefore fails every batch that writes to it.
 */
#ifndef TD_STORE_H
#define TD_STORE_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "conf.h"
#include "mstate.h"
#include "rbatch.h"
#include "signals.h"

#define TD_STORE_ARGV_MAX 512

typedef struct td_store_s td_store_t;

typedef struct td_store_conf_s {
    const char *addrs; /* "host:port[,host:port...]" or a unix socket path */
    const char *user;  /* ACL user or "" */
    const char *password;
    int connect_timeout_ms;
    int command_timeout_ms;
    int cluster;  /* 1: Redis Cluster, addrs are seeds; 0: one Redis, unless
                   * CLUSTER INFO on it says it is a cluster node */
    int readonly; /* tools: never FUNCTION LOAD, never WAIT */
    int module;   /* TD_REDIS_MODULE_* */
} td_store_conf_t;


/* The Redis settings of a trustd/trustctl configuration (readonly 0). */
void td_store_conf_from(td_store_conf_t *sc, const td_conf_t *conf);

typedef struct td_store_stats_s {
    uint64_t roundtrips; /* pipelines sent and fully read */
    uint64_t commands;
    uint64_t errors; /* connection failures and error replies */
} td_store_stats_t;

/* Connects lazily: returns NULL only on bad configuration. */
td_store_t *
td_store_new(const td_store_conf_t *conf, char *errstr, size_t errstr_size);
void td_store_destroy(td_store_t *st);

/* (Re)connects if needed and makes sure the function library is loaded
 * (cluster: reads the slot map and does that on every master). TD_OK when
 * Redis answers. */
int td_store_connect(td_store_t *st, char *errstr, size_t errstr_size);
/* 1 if the last attempt to talk to Redis succeeded. */
int td_store_healthy(const td_store_t *st);
/* 1 when speaking the cluster protocol (configured or detected). */
int td_store_is_cluster(const td_store_t *st);
/* On a cluster, the lowest slot of each master, as of the last slot map,
 * into slots (up to max); returns how many masters there are. 0 on one
 * Redis, or before the map is known. */
int td_store_master_slots(const td_store_t *st, int *slots, int max);
/* 1 when the trustd module's native commands are to be used (see above). */
int td_store_native(const td_store_t *st);
const td_store_stats_t *td_store_stats(const td_store_t *st);
/* Name of a function of the loaded library, e.g. "put" ->
 * "td_put_<hash>". Static storage. */
const char *td_store_fn(const td_store_t *st, const char *base);

/*
 * Sends every command of the batch pipelined and calls each callback with its
 * reply in order. On a connection error the context is dropped and TD_ERR is
 * returned (callbacks may have run for a prefix); the caller retries the whole
 * batch later. An error reply is passed to the callback like any other.
 *
 * Cluster: commands are grouped by node (the key is found from the command:
 * FCALL's first key, argv[1] of key commands), streamed to every node at
 * once, and callbacks still run in batch order. Each node written gets one
 * WAIT at the end of the batch (and one more if it took resent writes).
 * Redirections and transient cluster errors never reach a callback; when
 * they persist (about a second), or a WAIT finds no replica, the batch
 * fails as on a connection error.
 */
int td_store_exec(td_store_t *st,
                  td_rbatch_t *b,
                  char *errstr,
                  size_t errstr_size);

/*
 * td_store_exec() in parts, for a batch still being built: each call with
 * final 0 sends the complete chunks queued since the last call (keeping a
 * chunk queued at Redis, at every node of a cluster, while reading the
 * replies of the one before, so Redis works while the caller builds the
 * next commands) and returns; final 1 sends the rest and reads every reply
 * (cluster: then the WAITs, and resends redirected commands). Callbacks run
 * in order, possibly while the caller is still adding commands (they must
 * not touch the batch). After TD_ERR, td_store_exec() retries the whole
 * batch.
 */
int td_store_exec_part(td_store_t *st,
                       td_rbatch_t *b,
                       int final,
                       char *errstr,
                       size_t errstr_size);

/* One blocking command with printf-like argv formatting (hiredis' format).
 * Returns the reply (caller frees with freeReplyObject) or NULL + errstr.
 * Cluster: routed by its key like td_store_exec(), and a write is followed
 * by WAIT; replies queued with td_store_append() and not read yet are
 * discarded first. */
redisReply *td_store_cmd(td_store_t *st,
                         char *errstr,
                         size_t errstr_size,
                         const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));

redisReply *td_store_vcmd(td_store_t *st,
                          char *errstr,
                          size_t errstr_size,
                          const char *fmt,
                          va_list ap);

/*
 * Pipelined single commands for tools: td_store_append() queues a command
 * (hiredis format), td_store_reply() returns the replies in the order the
 * commands were queued; the first td_store_reply() after appends sends all
 * of them in one round trip per node. TD_ERR from append only for a bad
 * format. td_store_reply() returns the reply (caller frees) or NULL + errstr
 * (connection failure: the rest of that round fails the same way; or nothing
 * queued).
 *
 * Cluster: SCAN walks every master in turn. Its cursor is
 * "<master>-<cursor>" and "0" after the last master, so a plain SCAN loop
 * from "0" until "0" covers the cluster.
 */
int td_store_append(td_store_t *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int td_store_vappend(td_store_t *st, const char *fmt, va_list ap);
redisReply *td_store_reply(td_store_t *st, char *errstr, size_t errstr_size);

/* Functions of the library; td_store_fn() names them. */
#define TD_STORE_FNS 5

#endif
