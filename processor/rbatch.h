/*
 * rbatch.h - a batch of Redis commands built argument by argument, each
 * with the callback its reply goes to; the store (store.h) sends it
 * pipelined.
 */
#ifndef TD_RBATCH_H
#define TD_RBATCH_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

typedef struct td_rbatch_s td_rbatch_t;

/*
 * Reply callback: reply is borrowed (valid during the call). Return TD_OK, or
 * TD_ERR with errstr filled to fail the batch.
 */
typedef int (*td_rbatch_cb_t)(void *opaque,
                              const redisReply *reply,
                              char *errstr,
                              size_t errstr_size);

td_rbatch_t *td_rbatch_new(void);
void td_rbatch_destroy(td_rbatch_t *b);
/* Empties the batch, keeping its memory. */
void td_rbatch_reset(td_rbatch_t *b);
size_t td_rbatch_cnt(const td_rbatch_t *b);

/* Building one command: begin, add arguments, end with its callback. In
 * cluster mode the command's key picks the node (see td_store_exec() in
 * store.h). */
void td_rbatch_begin(td_rbatch_t *b);
void td_rbatch_arg(td_rbatch_t *b, const void *p, size_t len);
void td_rbatch_str(td_rbatch_t *b, const char *s);
void td_rbatch_i64(td_rbatch_t *b, int64_t v);
void td_rbatch_dbl(td_rbatch_t *b, double v); /* %.17g */
/* Formats an argument in place. */
void td_rbatch_fmt(td_rbatch_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void td_rbatch_end(td_rbatch_t *b, td_rbatch_cb_t cb, void *opaque);

#endif
