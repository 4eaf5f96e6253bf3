/*
 * numfmt.c - fast "%.10g" (see numfmt.h).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "numfmt.h"

/* 10^0 .. 10^13: exact in a double. */
static const double pow10_tab[] = {1e0, 1e1, 1e2, 1e3,  1e4,  1e5,  1e6,
                                   1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13};

static size_t slow(char *buf, double x) {
    int n = snprintf(buf, TD_FMT_G10_MAX, "%.10g", x);
    return n < 0 ? 0 : (size_t)n;
}

size_t td_fmt_g10(char *buf, double x) {
    char digits[10];
    double ax = fabs(x);
    uint64_t m;
    int e, nd, i;
    size_t len = 0;

    if (x == 0) return slow(buf, x); /* "0" or "-0" */
    /* %.10g switches to exponent form outside 1e-4 <= |x| < 1e10. */
    if (!(ax >= 1e-4 && ax < 1e10)) return slow(buf, x);
    for (e = 9; e > -4 && ax < pow10_tab[e + 4] / 1e4; e--)
        ;
    /* 10^e <= ax < 10^(e+1): 10 significant digits are ax * 10^(9-e). */
    m = (uint64_t)llround(ax * pow10_tab[9 - e]);
    if (m >= 10000000000ULL) { /* rounded up to the next power of ten */
        m /= 10;
        if (++e > 9) return slow(buf, x);
    }
    if (m < 1000000000ULL) return slow(buf, x); /* cannot happen */
    for (i = 9; i >= 0; i--) {
        digits[i] = (char)('0' + m % 10);
        m /= 10;
    }
    /* Trailing zeros go, as %g drops them. */
    for (nd = 10; nd > 1 && digits[nd - 1] == '0'; nd--)
        ;
    if (x < 0) buf[len++] = '-';
    if (e >= 0) {
        for (i = 0; i <= e; i++)
            buf[len++] = i < nd ? digits[i] : '0';
        if (nd > e + 1) {
            buf[len++] = '.';
            for (; i < nd; i++)
                buf[len++] = digits[i];
        }
    } else {
        buf[len++] = '0';
        buf[len++] = '.';
        for (i = -1; i > e; i--)
            buf[len++] = '0';
        for (i = 0; i < nd; i++)
            buf[len++] = digits[i];
    }
    buf[len] = '\0';
    return len;
}
