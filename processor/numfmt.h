/*
 * numfmt.h - fast decimal text for doubles.
 *
 * The signals hash is written as decimal strings on every flush, about 90
 * per merchant: glibc's snprintf("%.10g") costs ~400 ns a number, which
 * made formatting trustd's largest per-merchant cost. td_fmt_g10 writes
 * the same text as "%.10g" in ~30 ns for the range signals live in, and
 * falls back to snprintf elsewhere. The last digit may differ from glibc's
 * in rare halfway cases (the scaling multiply rounds once): the value read
 * back is always within 5.0000001e-10 relative of x.
 */
#ifndef TD_NUMFMT_H
#define TD_NUMFMT_H

#include <stddef.h>

#define TD_FMT_G10_MAX 32 /* buffer size td_fmt_g10 needs */

/* Writes x as "%.10g" would into buf (TD_FMT_G10_MAX bytes, NUL-terminated);
 * returns the length. */
size_t td_fmt_g10(char *buf, double x);

#endif
