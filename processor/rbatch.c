/*
 * rbatch.c - batches of Redis commands (td_rbatch_t) and their encoding in
 * the Redis protocol. A batch keeps every argument in one growing buffer
 * and each command as a range of arguments plus its reply callback; the
 * store sends it (store_node.c on one Redis, store_cluster.c by node).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "numfmt.h"
#include "rbatch_int.h"

td_rbatch_t *td_rbatch_new(void) {
    return calloc(1, sizeof(td_rbatch_t));
}

void td_rbatch_destroy(td_rbatch_t *b) {
    if (!b) return;
    free(b->buf);
    free(b->args);
    free(b->cmds);
    free(b->argv);
    free(b->argvlen);
    free(b->resp);
    free(b);
}

void td_rbatch_reset(td_rbatch_t *b) {
    b->len = 0;
    b->acnt = 0;
    b->ccnt = 0;
    b->sent = 0;
    b->done = 0;
}

size_t td_rbatch_cnt(const td_rbatch_t *b) {
    return b->ccnt;
}

void td_rbatch_begin(td_rbatch_t *b) {
    b->cur_first = b->acnt;
}

void td_rbatch_arg(td_rbatch_t *b, const void *p, size_t len) {
    td_grow((void **)&b->buf, &b->cap, b->len + len + 1, 1);
    td_grow((void **)&b->args, &b->acap, b->acnt + 1, sizeof(*b->args));
    memcpy(b->buf + b->len, p, len);
    b->args[b->acnt].off = b->len;
    b->args[b->acnt].len = len;
    b->len += len;
    b->acnt++;
}

void td_rbatch_str(td_rbatch_t *b, const char *s) {
    td_rbatch_arg(b, s, strlen(s));
}

void td_rbatch_i64(td_rbatch_t *b, int64_t v) {
    char tmp[TD_FMT_I64_MAX];
    td_rbatch_arg(b, tmp, td_fmt_i64(tmp, v));
}

void td_rbatch_dbl(td_rbatch_t *b, double v) {
    char tmp[TD_FMT_G17_MAX];
    td_rbatch_arg(b, tmp, td_fmt_g17(tmp, v));
}

void td_rbatch_fmt(td_rbatch_t *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof(tmp)) n = sizeof(tmp) - 1;
    td_rbatch_arg(b, tmp, (size_t)n);
}

void td_rbatch_end(td_rbatch_t *b, td_rbatch_cb_t cb, void *opaque) {
    td_grow((void **)&b->cmds, &b->ccap, b->ccnt + 1, sizeof(*b->cmds));
    b->cmds[b->ccnt].first = b->cur_first;
    b->cmds[b->ccnt].argc = b->acnt - b->cur_first;
    b->cmds[b->ccnt].cb = cb;
    b->cmds[b->ccnt].opaque = opaque;
    b->ccnt++;
}

/* Writes "<c><n>\r\n" at p; returns the end. */
static char *resp_len(char *p, char c, size_t n) {
    *p++ = c;
    p += td_fmt_i64(p, (int64_t)n);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Appends commands [from, to) of b to c in the Redis protocol, as
 * redisAppendCommandArgv would, in one piece: hiredis formats each
 * argument's header with sdscatfmt, which cost trustd more than building
 * the commands. */
int td_rbatch_resp(td_rbatch_t *b, size_t from, size_t to, redisContext *c) {
    size_t need = 0;
    char *p;

    if (from == to) return REDIS_OK;
    for (size_t i = from; i < to; i++) {
        const struct rcmd *cmd = &b->cmds[i];
        need += 2 * TD_FMT_I64_MAX;
        for (size_t j = 0; j < cmd->argc; j++)
            need += b->args[cmd->first + j].len + 2 * TD_FMT_I64_MAX;
    }
    td_grow((void **)&b->resp, &b->resp_cap, need, 1);
    p = b->resp;
    for (size_t i = from; i < to; i++) {
        const struct rcmd *cmd = &b->cmds[i];
        p = resp_len(p, '*', cmd->argc);
        for (size_t j = 0; j < cmd->argc; j++) {
            const struct rarg *a = &b->args[cmd->first + j];
            p = resp_len(p, '$', a->len);
            memcpy(p, b->buf + a->off, a->len);
            p += a->len;
            *p++ = '\r';
            *p++ = '\n';
        }
    }
    return redisAppendFormattedCommand(c, b->resp, (size_t)(p - b->resp));
}

/* Adds the arguments of a hiredis-formatted command ("*N\r\n$L\r\n...") to
 * b as one command. */
int td_rbatch_add_formatted(td_rbatch_t *b, const char *cmd, size_t len) {
    const char *p = cmd, *end = cmd + len;
    long n;
    char *e;

    if (len < 4 || *p != '*') return TD_ERR;
    n = strtol(p + 1, &e, 10);
    if (n <= 0 || e + 2 > end || e[0] != '\r') return TD_ERR;
    p = e + 2;
    td_rbatch_begin(b);
    for (long i = 0; i < n; i++) {
        long alen;
        if (p >= end || *p != '$') return TD_ERR;
        alen = strtol(p + 1, &e, 10);
        if (alen < 0 || e + 2 > end ||
            (size_t)(end - (e + 2)) < (size_t)alen + 2)
            return TD_ERR;
        p = e + 2;
        td_rbatch_arg(b, p, (size_t)alen);
        p += alen + 2;
    }
    td_rbatch_end(b, NULL, NULL);
    return TD_OK;
}

/* Fills b's argv scratch with command i; returns its argc. */
int td_rbatch_argv(td_rbatch_t *b, size_t i) {
    struct rcmd *c = &b->cmds[i];
    td_grow((void **)&b->argv, &b->argv_cap, c->argc, sizeof(char *));
    td_grow((void **)&b->argvlen, &b->argvlen_cap, c->argc, sizeof(size_t));
    for (size_t j = 0; j < c->argc; j++) {
        b->argv[j] = b->buf + b->args[c->first + j].off;
        b->argvlen[j] = b->args[c->first + j].len;
    }
    return (int)c->argc;
}
