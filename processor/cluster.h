/*
 * cluster.h - Redis Cluster routing for hiredis 0.14, which has no cluster
 * client: hash slots (CRC16 XMODEM of the key or its hash tag, mod 16384,
 * exactly as Redis' keyHashSlot), where a command's key is, the slot -> node
 * map read from CLUSTER SLOTS, and MOVED/ASK/TRYAGAIN/CLUSTERDOWN replies.
 *
 * No I/O here: store_cluster.c owns one hiredis connection per node,
 * indexed like this map's nodes, and asks the map where each command goes.
 * Node indexes are stable for the life of the map (nodes are added, never
 * removed), so the store's per-node state can be a plain array.
 */
#ifndef TD_CLUSTER_H
#define TD_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define TD_CLUSTER_SLOTS    16384
#define TD_CLUSTER_HOST_MAX 256

/* CRC16-CCITT (XMODEM): poly 0x1021, init 0, no reflection, as Redis'
 * crc16.c. */
uint16_t td_cluster_crc16(const void *buf, size_t len);

/* The hash slot of a key (0..16383): if the key holds '{' followed later by
 * '}' with at least one byte between them, only those bytes are hashed. */
int td_cluster_keyslot(const void *key, size_t len);

/* A short key tag ("n<k>", the smallest k) whose keys live in slot: writes
 * it NUL-terminated into tag (at least 8 bytes). */
void td_cluster_slot_tag(int slot, char *tag, size_t size);

/*
 * Which argument of a command is its routing key: the index into argv, or
 * -1 for a command without a key (SCAN, PING, WAIT, FUNCTION ...). *write
 * is set to 1 when the command may write (unknown commands count as writes
 * and take argv[1] as their key). FCALL/EVAL-style commands route by their
 * first key, or have none when numkeys is 0.
 */
int td_cluster_cmd_key(int argc,
                       const char *const *argv,
                       const size_t *argvlen,
                       int *write);

typedef struct td_cluster_node_s {
    char host[TD_CLUSTER_HOST_MAX];
    int port;
    int master; /* owns at least one slot in the current map */
} td_cluster_node_t;

typedef struct td_cluster_s td_cluster_t;

td_cluster_t *td_cluster_new(void);
void td_cluster_destroy(td_cluster_t *cl);

/* Index of the node host:port, added when unknown. -1 only when out of
 * memory or the host does not fit. */
int td_cluster_node(td_cluster_t *cl,
                    const char *host,
                    size_t hostlen,
                    int port);
int td_cluster_node_cnt(const td_cluster_t *cl);
/* Node i (0 <= i < td_cluster_node_cnt()); valid until the next add. */
const td_cluster_node_t *td_cluster_node_get(const td_cluster_t *cl, int i);

/* Node index serving slot, or -1 when the map has no owner for it. */
int td_cluster_slot_node(const td_cluster_t *cl, int slot);
/* Points one slot at a node (after MOVED) and marks that node a master. */
void td_cluster_set_slot(td_cluster_t *cl, int slot, int node);
/* Number of slots with an owner. */
int td_cluster_covered(const td_cluster_t *cl);
/* The masters ordered by the lowest slot they own, into out (up to max);
 * returns how many there are. */
int td_cluster_masters(const td_cluster_t *cl, int *out, int max);

/*
 * Replaces the slot map with a CLUSTER SLOTS reply. from_host is the host
 * the reply came from: a node announced with an unknown endpoint (nil or
 * empty) lives there, one announced as "?" (hostname preferred but not set)
 * at the "ip" of its metadata. Replicas are ignored. TD_OK, or TD_ERR with
 * errstr and the map unchanged when the reply is malformed or covers no
 * slot (a cluster not formed yet).
 */
int td_cluster_load_slots(td_cluster_t *cl,
                          const redisReply *r,
                          const char *from_host,
                          char *errstr,
                          size_t errstr_size);

typedef enum {
    TD_CLUSTER_REPLY_OK = 0, /* not a cluster error */
    TD_CLUSTER_MOVED,        /* "MOVED <slot> <host>:<port>" */
    TD_CLUSTER_ASK,          /* "ASK <slot> <host>:<port>" */
    TD_CLUSTER_TRYAGAIN,     /* keys of a migrating slot are split */
    TD_CLUSTER_CLUSTERDOWN,  /* slot unserved, failover in progress */
    TD_CLUSTER_LOADING,      /* node loading its data set */
    TD_CLUSTER_BAD_REDIRECT, /* MOVED/ASK we cannot parse */
} td_cluster_reply_t;

/*
 * Classifies an error reply's text. For MOVED and ASK, fills *slot, host
 * (empty when Redis sent ":port", meaning the host of the node that
 * answered) and *port. Never reads past len.
 */
td_cluster_reply_t td_cluster_classify(const char *err,
                                       size_t len,
                                       int *slot,
                                       char *host,
                                       size_t hostsize,
                                       int *port);

#endif
