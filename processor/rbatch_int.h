/*
 * rbatch_int.h - the layout of a command batch, for the store's senders
 * (store_node.c, store_cluster.c) and rbatch.c. Internal.
 */
#ifndef TD_RBATCH_INT_H
#define TD_RBATCH_INT_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "rbatch.h"

struct td_rbatch_s {
    char *buf;
    size_t len, cap;
    struct rarg {
        size_t off, len;
    } * args;
    size_t acnt, acap;
    struct rcmd {
        size_t first, argc;
        td_rbatch_cb_t cb;
        void *opaque;
    } * cmds;
    size_t ccnt, ccap;
    size_t cur_first;  /* first arg of the command being built */
    size_t sent, done; /* td_store_exec_part(): commands sent, answered */
    const char **argv; /* scratch for one command */
    size_t *argvlen;
    size_t argv_cap, argvlen_cap;
    char *resp; /* scratch: commands in the Redis protocol (resp_cmds) */
    size_t resp_cap;
};

/* Appends commands [from, to) of b to c in the Redis protocol, as
 * redisAppendCommandArgv would, in one piece. REDIS_OK or REDIS_ERR. */
int td_rbatch_resp(td_rbatch_t *b, size_t from, size_t to, redisContext *c);
/* Fills b's argv scratch (b->argv, b->argvlen) with command i; returns its
 * argc. Valid until the next call. */
int td_rbatch_argv(td_rbatch_t *b, size_t i);
/* Adds the arguments of a hiredis-formatted command ("*N\r\n$L\r\n...")
 * to b as one command without a callback. TD_ERR if it is malformed. */
int td_rbatch_add_formatted(td_rbatch_t *b, const char *cmd, size_t len);

#endif
