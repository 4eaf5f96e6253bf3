/*
 * rmapi.h - the part of the Redis module API trustd's module uses, declared
 * from Redis' "Modules API reference" (Debian ships no redismodule.h).
 *
 * A module is a shared object exporting RedisModule_OnLoad(). Redis calls it
 * with a context whose first field is a lookup function; every API function
 * is resolved by its name ("RedisModule_OpenKey") through it. TD_RM_API
 * below lists each function once, as the type of its pointer: module.c
 * expands it into a struct of pointers and the table of names that fills
 * it (td_rm_init()).
 */
#ifndef TD_RMAPI_H
#define TD_RMAPI_H

#include <stddef.h>

#define REDISMODULE_OK       0
#define REDISMODULE_ERR      1
#define REDISMODULE_APIVER_1 1

/* RedisModule_OpenKey() modes */
#define REDISMODULE_READ  (1 << 0)
#define REDISMODULE_WRITE (1 << 1)

/* RedisModule_KeyType() */
#define REDISMODULE_KEYTYPE_EMPTY  0
#define REDISMODULE_KEYTYPE_STRING 1
#define REDISMODULE_KEYTYPE_HASH   3

/* RedisModule_CallReplyType() */
#define REDISMODULE_REPLY_ERROR 1

/* RedisModule_HashGet()/HashSet() flags */
#define REDISMODULE_HASH_NONE 0

#define REDISMODULE_ERRORMSG_WRONGTYPE                                         \
    "WRONGTYPE Operation against a key holding the wrong kind of value"

typedef struct RedisModuleCtx RedisModuleCtx;
typedef struct RedisModuleKey RedisModuleKey;
typedef struct RedisModuleString RedisModuleString;
typedef struct RedisModuleCallReply RedisModuleCallReply;

typedef int (*RedisModuleCmdFunc)(RedisModuleCtx *ctx,
                                  RedisModuleString **argv,
                                  int argc);

/* The lookup function, the first field of the context OnLoad gets. */
typedef int (*td_rm_getapi_t)(const char *name, void *fnptr);

/* X(return type, name without "RedisModule_", parameter list) */
/* clang-format off */
#define TD_RM_API(X)                                                           \
    X(void *, Alloc, (size_t bytes))                                           \
    X(void, Free, (void *ptr))                                                 \
    X(int, IsModuleNameBusy, (const char *name))                               \
    X(void, SetModuleAttribs, (RedisModuleCtx *ctx, const char *name, int ver, int apiver)) \
    X(int, CreateCommand, (RedisModuleCtx *ctx, const char *name, RedisModuleCmdFunc fn, const char *flags, int firstkey, int lastkey, int keystep)) \
    X(int, WrongArity, (RedisModuleCtx *ctx))                                  \
    X(int, ReplyWithError, (RedisModuleCtx *ctx, const char *err))             \
    X(int, ReplyWithSimpleString, (RedisModuleCtx *ctx, const char *msg))      \
    X(int, ReplyWithStringBuffer, (RedisModuleCtx *ctx, const char *buf, size_t len)) \
    X(int, ReplyWithString, (RedisModuleCtx *ctx, RedisModuleString *str))     \
    X(int, ReplyWithLongLong, (RedisModuleCtx *ctx, long long ll))             \
    X(int, ReplyWithArray, (RedisModuleCtx *ctx, long len))                    \
    X(int, ReplyWithNull, (RedisModuleCtx *ctx))                               \
    X(int, ReplyWithCallReply, (RedisModuleCtx *ctx, RedisModuleCallReply *reply)) \
    X(RedisModuleKey *, OpenKey, (RedisModuleCtx *ctx, RedisModuleString *name, int mode)) \
    X(void, CloseKey, (RedisModuleKey *key))                                   \
    X(int, KeyType, (RedisModuleKey *key))                                     \
    X(char *, StringDMA, (RedisModuleKey *key, size_t *len, int mode))         \
    X(int, StringSet, (RedisModuleKey *key, RedisModuleString *str))           \
    X(int, HashGet, (RedisModuleKey *key, int flags, ...))                     \
    X(int, HashSet, (RedisModuleKey *key, int flags, ...))                     \
    X(const char *, StringPtrLen, (const RedisModuleString *str, size_t *len)) \
    X(RedisModuleString *, CreateString, (RedisModuleCtx *ctx, const char *ptr, size_t len)) \
    X(RedisModuleString *, CreateStringFromLongLong, (RedisModuleCtx *ctx, long long ll)) \
    X(void, FreeString, (RedisModuleCtx *ctx, RedisModuleString *str))         \
    X(RedisModuleCallReply *, Call, (RedisModuleCtx *ctx, const char *cmd, const char *fmt, ...)) \
    X(int, CallReplyType, (RedisModuleCallReply *reply))                       \
    X(const char *, CallReplyStringPtr, (RedisModuleCallReply *reply, size_t *len)) \
    X(void, FreeCallReply, (RedisModuleCallReply *reply))                      \
    X(int, ReplicateVerbatim, (RedisModuleCtx *ctx))
/* clang-format on */

#endif
