/*
 * numfmt.c - fast "%.10g", "%.17g" and "%lld" (see numfmt.h).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "numfmt.h"

/* 10^0 .. 10^22: exact in a double. */
static const double pow10_tab[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* "00" .. "99" */
static const char pairs[] =
    "00010203040506070809101112131415161718192021222324"
    "25262728293031323334353637383940414243444546474849"
    "50515253545556575859606162636465666768697071727374"
    "75767778798081828384858687888990919293949596979899";

/* floor(log10(ax)) or one less, for a normal ax > 0: from the binary
 * exponent E, as 2^E <= ax < 2^(E+1) (78913 / 2^18 is log10(2) rounded
 * down, close enough for every double's exponent). */
static int exp10_est(double ax) {
    uint64_t bits;
    memcpy(&bits, &ax, sizeof(bits));
    int E = (int)((bits >> 52) & 0x7ff) - 1023;
    return (int)(((int64_t)E * 78913) >> 18);
}

static size_t slow(char *buf, double x) {
    int n = snprintf(buf, TD_FMT_G10_MAX, "%.10g", x);
    return n < 0 ? 0 : (size_t)n;
}

/* ax * 10^(9-e) rounded to an integer: ax's 10 significant digits when
 * 10^e <= ax < 10^(e+1), which *trunc (the product truncated) tells. One
 * rounding (exact power, correctly rounded multiply or divide) for
 * -13 <= e <= 31, two for -35 <= e < -13. */
static uint64_t digits10(double ax, int e, uint64_t *trunc) {
    int k = 9 - e;
    double y;
    if (k < 0)
        y = ax / pow10_tab[-k];
    else if (k <= 22)
        y = ax * pow10_tab[k];
    else
        y = ax * pow10_tab[22] * pow10_tab[k - 22];
    *trunc = (uint64_t)y;
    return (uint64_t)(y + 0.5); /* llround: y + 0.5 is exact below 2^52 */
}

static size_t slow17(char *buf, double x) {
    int n = snprintf(buf, TD_FMT_G17_MAX, "%.17g", x);
    return n < 0 ? 0 : (size_t)n;
}

/* "0" or "-0" */
static size_t zero(char *buf, double x) {
    size_t len = 0;
    if (signbit(x)) buf[len++] = '-';
    buf[len++] = '0';
    buf[len] = '\0';
    return len;
}

/* Writes %g's text for the P significant digits m (10^(P-1) <= m < 10^P)
 * and decimal exponent e: fixed notation for -4 <= e < P, else d.ddde+XX;
 * trailing zeros dropped. */
static size_t put_g(char *buf, int neg, uint64_t m, int P, int e) {
    char digits[20];
    int nd, i;
    size_t len = 0;

    for (i = P; i >= 2; i -= 2) {
        memcpy(digits + i - 2, pairs + 2 * (m % 100), 2);
        m /= 100;
    }
    if (i) digits[0] = (char)('0' + m);
    for (nd = P; nd > 1 && digits[nd - 1] == '0'; nd--)
        ;
    if (neg) buf[len++] = '-';
    if (e < -4 || e >= P) {
        buf[len++] = digits[0];
        if (nd > 1) {
            buf[len++] = '.';
            for (i = 1; i < nd; i++)
                buf[len++] = digits[i];
        }
        buf[len++] = 'e';
        buf[len++] = e < 0 ? '-' : '+';
        if (e < 0) e = -e;
        if (e >= 100) buf[len++] = (char)('0' + e / 100);
        buf[len++] = (char)('0' + e / 10 % 10);
        buf[len++] = (char)('0' + e % 10);
    } else if (e >= 0) {
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

size_t td_fmt_g10(char *buf, double x) {
    double ax = fabs(x);
    uint64_t m, t;
    int e;

    if (x == 0) return zero(buf, x);
    /* Whole numbers of up to 10 digits print whole (counts). */
    if (ax < 1e10 && ax == (double)(uint64_t)ax) {
        size_t len = 0;
        if (x < 0) buf[len++] = '-';
        return len + td_fmt_i64(buf + len, (int64_t)ax);
    }
    /* NaN, infinities, and magnitudes whose scaling could lose more. */
    if (!(ax >= 1e-34 && ax < 1e31)) return slow(buf, x);
    /* The decimal exponent, or one less: corrected below. */
    e = exp10_est(ax);
    m = digits10(ax, e, &t);
    if (t < 1000000000ULL) m = digits10(ax, --e, &t);
    if (t >= 10000000000ULL) m = digits10(ax, ++e, &t);
    if (t < 1000000000ULL || t >= 10000000000ULL) return slow(buf, x);
    if (m == 10000000000ULL) { /* rounded up to the next power of ten */
        m /= 10;
        e++;
    }
    return put_g(buf, x < 0, m, 10, e);
}

/* The exact value of the finite double ax (> 0) is M * 2^E; its 17
 * significant digits for decimal exponent e are M * 10^(16-e) / 2^-E,
 * rounded half to even as glibc does: exact in 128-bit integers when
 * 10^(16-e) <= 10^22. Sets *trunc to the quotient before rounding (it
 * tells whether e is right); returns the rounded one, or 0 out of range. */
static uint64_t digits17(double ax, int e, uint64_t *trunc) {
    uint64_t bits;
    memcpy(&bits, &ax, sizeof(bits));
    /* ax = M / 2^s: ax is normal here (>= 1e-6) */
    uint64_t M = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
    int s = 1075 - (int)((bits >> 52) & 0x7ff);
    int k = 16 - e;
    unsigned __int128 n, q, r, half;

    if (k < 0 || k > 22 || s < 1 || s > 120) return 0;
    n = (unsigned __int128)M * (uint64_t)pow10_tab[k > 19 ? 19 : k];
    for (int i = 19; i < k; i++)
        n *= 10;
    q = n >> s;
    *trunc = (uint64_t)q;
    r = n & (((unsigned __int128)1 << s) - 1);
    half = (unsigned __int128)1 << (s - 1);
    if (r > half || (r == half && (q & 1))) q++;
    return (uint64_t)q;
}

size_t td_fmt_g17(char *buf, double x) {
    double ax = fabs(x);
    uint64_t m = 0, t = 0;
    int e;

    if (x == 0) return zero(buf, x);
    /* Integers below 2^53 print whole ("%.17g" shows all their digits). */
    if (ax < 9007199254740992.0 && ax == floor(ax)) {
        size_t len = 0;
        if (x < 0) buf[len++] = '-';
        return len + td_fmt_i64(buf + len, (int64_t)ax);
    }
    if (!(ax >= 1e-6 && ax < 9007199254740992.0)) return slow17(buf, x);
    /* e is right when the truncated digits are 17: 10^e <= ax < 10^(e+1).
     * The estimate may be one less. */
    e = exp10_est(ax);
    for (int tries = 0; tries < 3; tries++) {
        m = digits17(ax, e, &t);
        if (m == 0) return slow17(buf, x);
        if (t < 10000000000000000ULL)
            e--;
        else if (t >= 100000000000000000ULL)
            e++;
        else
            break;
    }
    if (t < 10000000000000000ULL || t >= 100000000000000000ULL)
        return slow17(buf, x);
    if (m == 100000000000000000ULL) { /* rounded up to a power of ten */
        m /= 10;
        e++;
    }
    if (m < 10000000000000000ULL || m >= 100000000000000000ULL)
        return slow17(buf, x);
    return put_g(buf, x < 0, m, 17, e);
}

size_t td_fmt_i64(char *buf, int64_t v) {
    char tmp[20];
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    size_t n = sizeof(tmp), len = 0;

    /* Two digits at a time, from the right. */
    while (u >= 100) {
        n -= 2;
        memcpy(tmp + n, pairs + 2 * (u % 100), 2);
        u /= 100;
    }
    if (u >= 10) {
        n -= 2;
        memcpy(tmp + n, pairs + 2 * u, 2);
    } else {
        tmp[--n] = (char)('0' + u);
    }
    if (v < 0) buf[len++] = '-';
    memcpy(buf + len, tmp + n, sizeof(tmp) - n);
    len += sizeof(tmp) - n;
    buf[len] = '\0';
    return len;
}
