/*
 * numfmt.h - fast decimal text for doubles and integers.
 *
 * The signals hash is written as decimal strings on every flush, about 90
 * per merchant: glibc's snprintf("%.10g") costs ~400 ns a number, which
 * made formatting trustd's largest per-merchant cost. td_fmt_g10 writes
 * the same text as "%.10g" in ~30 ns for the range signals live in, and
 * falls back to snprintf elsewhere. The last digit may differ from glibc's
 * in rare halfway cases (the scaling multiply rounds once): the value read
 * back is always within 5.0000001e-10 relative of x.
 *
 * Scores are written with 17 digits (the exact double, as on the topic):
 * td_fmt_g17 computes them exactly in 128-bit integers for 1e-6 <= |x| <
 * 2^53 and integers, so its text is glibc's "%.17g" byte for byte, about
 * ten times faster; other values go to snprintf.
 */
#ifndef TD_NUMFMT_H
#define TD_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

#define TD_FMT_G10_MAX 32 /* buffer size td_fmt_g10 needs */
#define TD_FMT_G17_MAX 32 /* buffer size td_fmt_g17 needs */
#define TD_FMT_I64_MAX 24 /* buffer size td_fmt_i64 needs */

/* Writes x as "%.10g" would into buf (TD_FMT_G10_MAX bytes, NUL-terminated);
 * returns the length. */
size_t td_fmt_g10(char *buf, double x);

/* Writes x exactly as "%.17g" would into buf (TD_FMT_G17_MAX bytes,
 * NUL-terminated); returns the length. */
size_t td_fmt_g17(char *buf, double x);

/* Writes v as "%lld" would into buf (TD_FMT_I64_MAX bytes, NUL-terminated);
 * returns the length. */
size_t td_fmt_i64(char *buf, int64_t v);

#endif
