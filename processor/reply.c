/*
 * reply.c - field readers over HGETALL and HMGET replies (reply.h).
 */
#include "reply.h"

#include <string.h>

const char *td_reply_hfield(const redisReply *r, const char *field) {
    if (r->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING &&
            !strcmp(r->element[i]->str, field))
            return r->element[i + 1]->str;
    }
    return NULL;
}

const char *td_reply_hmval(const redisReply *r, size_t i) {
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
        r->element[i]->type != REDIS_REPLY_STRING)
        return NULL;
    return r->element[i]->str;
}
