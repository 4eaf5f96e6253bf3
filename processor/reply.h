/*
 * reply.h - reading fields out of hiredis replies, shared by the tools that
 * read trustd's hashes (trustctl's commands, trustctl serve).
 */
#ifndef TD_REPLY_H
#define TD_REPLY_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* Value of field in an HGETALL reply, or NULL when absent. The string lives
 * as long as the reply. */
const char *td_reply_hfield(const redisReply *r, const char *field);

/* Element i of an HMGET reply as a string, or NULL when nil or past the
 * end. The string lives as long as the reply. */
const char *td_reply_hmval(const redisReply *r, size_t i);

#endif
