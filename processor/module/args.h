/*
 * args.h - the argument vectors of the module's TD.* commands, parsed and
 * checked without Redis (module.c runs them on Redis' argv; the fuzzer in
 * tests/fuzz_module_args.c on random ones). See deploy/RUNBOOK.md and
 * module.c for the commands.
 *
 * Every number is checked here, before a command reads or writes a key,
 * so that bad arguments are an error reply with nothing written.
 */
#ifndef TD_MODULE_ARGS_H
#define TD_MODULE_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* One argument: bytes and length (not NUL-terminated). */
typedef struct td_marg_s {
    const char *p;
    size_t len;
} td_marg_t;

/*
 * TD.PUT on the wire:
 *
 *   TD.PUT <signals-payload> <state> <wm> <signals> <score> <history>
 *          <state-blob> <meta> [<score-payload>]
 *
 * The payload leads so that Redis' AOF buffer grows to the command's size
 * in one step. <meta> packs the small arguments (pack.h), in this order:
 * <expected> <nsrc> [<src> <first> <next>]*nsrc <mark-version|"">
 * [<mark-score> <mark-tier> <mark-ms>], and with a score payload
 * <score-expected-version|""> <history-head>.
 *
 * td_put_args_unpack() spreads it into the flat vector td_put_args_parse()
 * reads, whose indexes td_put_args_t holds (v[0] is the command name):
 *
 *   <state> <wm> <signals> <score> <history> <expected> <state-blob>
 *   <nsrc> [<src> <first> <next>]*nsrc <mark-version|"">
 *   [<mark-score> <mark-tier> <mark-ms>] <signals-payload>
 *   [<score-expected-version|""> <score-payload> <history-head>]
 *
 * -1: absent.
 */
typedef struct td_put_args_s {
    int nsrc;
    int src;  /* argv[src + 3i]: source i, then first, next */
    int mark; /* mark version, score, tier, ms; -1: none */
    int64_t mark_version;
    int signals;   /* the signals payload */
    int score;     /* the score payload; -1: the put carries no score */
    int score_ver; /* the score hash's expected version ("" allowed) */
    int64_t sv;    /* its value, 0 for "" */
    int head;      /* the history point's head (history.h), with a score */
} td_put_args_t;

#define TD_PUT_WIRE_SIGNALS 1 /* wire argv: the signals payload */
#define TD_PUT_WIRE_KEY     2 /* the first of the five keys */
#define TD_PUT_WIRE_BLOB    7
#define TD_PUT_WIRE_META    8
#define TD_PUT_WIRE_SCORE   9 /* the score payload, when argc is 10 */

#define TD_PUT_KEYS    5
#define TD_PUT_HISTORY 5 /* argv index of the history key */
#define TD_PUT_EXPECT  6
#define TD_PUT_STATE   7 /* argv index of the state blob */
#define TD_PUT_NSRC    8
/* The stored state's bytes td_put compares (GETRANGE 0 7). */
#define TD_PUT_VERSION_LEN 8

/* TD.PART <record> CLAIM [<min-epoch>]
 * TD.PART <record> SET <epoch> <committed> <intent>
 *                      [<ack-committed> <ack-intent>] */
typedef struct td_part_args_s {
    int claim;         /* 1: CLAIM, 0: SET */
    int64_t min_epoch; /* CLAIM; 0 when not given */
    int64_t epoch, committed, intent;
    int ack; /* SET: the ack pair was given */
    int64_t ack_committed, ack_intent;
} td_part_args_t;

/* TD.PUBLISHED <score> <version> <score> <tier> <ms> (from argv[2]); also
 * the mark of TD.PUT. */
typedef struct td_mark_args_s {
    int64_t version;
} td_mark_args_t;

/* A 64-bit signed decimal integer as Redis' string2ll reads one ("-"
 * allowed, no "+", no spaces, no leading zeros): TD_OK (0) or -1. */
int td_marg_i64(const char *p, size_t len, int64_t *out);

/* Each returns 0, or -1 with errstr filled ("ERR ..."). */
/* The wire argv into the flat vector v (at most cap elements, *vargc set);
 * from[i] is the wire index v[i] came from, -1 for one of <meta>. Only the
 * layout is checked here; td_put_args_parse() checks v. */
int td_put_args_unpack(const td_marg_t *argv,
                       int argc,
                       td_marg_t *v,
                       int *from,
                       int cap,
                       int *vargc,
                       char *errstr,
                       size_t errstr_size);
int td_put_args_parse(const td_marg_t *argv,
                      int argc,
                      td_put_args_t *a,
                      char *errstr,
                      size_t errstr_size);
int td_part_args_parse(const td_marg_t *argv,
                       int argc,
                       td_part_args_t *a,
                       char *errstr,
                       size_t errstr_size);
/* The 4 mark arguments at argv[0..3]: version, score, tier, ms. */
int td_mark_args_parse(const td_marg_t *argv,
                       td_mark_args_t *a,
                       char *errstr,
                       size_t errstr_size);
/* TD.SCORE <score> <history> <history-head> <field> <value> ...: at
 * least one pair, a head of TD_HISTORY_HEAD bytes. */
int td_score_args_check(const td_marg_t *argv,
                        int argc,
                        char *errstr,
                        size_t errstr_size);

/* Checks a DUMP payload's footer as RESTORE does: at least the 10 footer
 * bytes, an RDB version Redis 7.0 reads (<= TD_PAYLOAD_RDB_MAX), and the
 * CRC-64 of the rest. 0, or -1 with errstr filled. */
#define TD_PAYLOAD_RDB_MAX 10
int td_payload_check(const char *what,
                     const void *p,
                     size_t len,
                     char *errstr,
                     size_t errstr_size);

#endif
