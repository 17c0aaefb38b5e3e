/* money.c - exact decimal money: parsing, formatting, multiplication.
 *
 * See money.h for the representation. Parsing accepts what price maps and
 * configs write (plain decimals and exponent forms) and refuses anything that
 * would need rounding, so a price is either exact or an error.
 */
#include "money.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIGITS_MAX 38 /* significant digits that fit in money_t */

/* DECIMAL(38,20) holds at most 38 digits: the largest amount we accept. */
/* 10^38 - 1, the largest money_t of DIGITS_MAX digits; a constant the
 * compiler folds (money_add runs several times per event). */
static money_t money_limit(void)
{
    const money_t e19 = (money_t)10000000000000000000ULL;
    return e19 * e19 - 1;
}

/* Collect the digits of a decimal mantissa and the position of its point. */
static int parse_mantissa(const char **p, char digits[DIGITS_MAX + 1],
                          int *ndigits, int *frac_digits)
{
    bool seen_point = false, any = false;
    *ndigits = 0;
    *frac_digits = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c == '.' && !seen_point) {
            seen_point = true;
            continue;
        }
        if (!isdigit((unsigned char)c))
            break;
        any = true;
        if (*ndigits == 0 && c == '0') { /* leading zeros carry no value */
            if (seen_point)
                (*frac_digits)++;
            continue;
        }
        if (*ndigits >= DIGITS_MAX)
            return -1;
        digits[(*ndigits)++] = c;
        if (seen_point)
            (*frac_digits)++;
    }
    return any ? 0 : -1;
}

static int parse_exponent(const char **p, int *exp10)
{
    if (**p != 'e' && **p != 'E') {
        *exp10 = 0;
        return 0;
    }
    (*p)++;
    int sign = 1, v = 0;
    if (**p == '+' || **p == '-')
        sign = (*(*p)++ == '-') ? -1 : 1;
    if (!isdigit((unsigned char)**p))
        return -1;
    for (; isdigit((unsigned char)**p); (*p)++) {
        v = v * 10 + (**p - '0');
        if (v > 1000)
            return -1;
    }
    *exp10 = sign * v;
    return 0;
}

int money_parse(const char *s, money_t *out)
{
    char digits[DIGITS_MAX + 1];
    int ndigits, frac, exp10;
    bool neg = false;

    if (s == NULL)
        return -1;
    if (*s == '-' || *s == '+')
        neg = (*s++ == '-');
    if (parse_mantissa(&s, digits, &ndigits, &frac) < 0 ||
        parse_exponent(&s, &exp10) < 0 || *s != '\0')
        return -1;

    /* value = digits * 10^(exp10 - frac); we want units of 1e-20. */
    int shift = exp10 - frac + MONEY_SCALE_DIGITS;
    if (ndigits == 0) {
        *out = 0;
        return 0;
    }
    /* Dropping trailing zeros is exact; dropping other digits is not. */
    while (shift < 0 && ndigits > 0 && digits[ndigits - 1] == '0') {
        ndigits--;
        shift++;
    }
    if (shift < 0 || ndigits + shift > DIGITS_MAX)
        return -1;
    money_t v = 0;
    for (int i = 0; i < ndigits; i++)
        v = v * 10 + (digits[i] - '0');
    for (int i = 0; i < shift; i++)
        v *= 10;
    *out = neg ? -v : v;
    return 0;
}

void money_format(money_t m, char out[MONEY_STR_MAX])
{
    char rev[MONEY_STR_MAX];
    unsigned __int128 v = m < 0 ? (unsigned __int128)(-(m + 1)) + 1 : (unsigned __int128)m;
    int n = 0;

    /* Digits least significant first; at least scale+1 so "0.x" has its 0. */
    do {
        rev[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v != 0 || n <= MONEY_SCALE_DIGITS);

    int first_kept = 0; /* trailing fractional zeros to trim */
    while (first_kept < MONEY_SCALE_DIGITS && rev[first_kept] == '0')
        first_kept++;

    char *o = out;
    if (m < 0)
        *o++ = '-';
    for (int i = n - 1; i >= MONEY_SCALE_DIGITS; i--)
        *o++ = rev[i];
    if (first_kept < MONEY_SCALE_DIGITS) {
        *o++ = '.';
        for (int i = MONEY_SCALE_DIGITS - 1; i >= first_kept; i--)
            *o++ = rev[i];
    }
    *o = '\0';
}

int money_mul_int(money_t amount, int64_t count, money_t *out)
{
    money_t r;
    if (__builtin_mul_overflow(amount, (money_t)count, &r))
        return -1;
    if (r > money_limit() || r < -money_limit())
        return -1;
    *out = r;
    return 0;
}

int money_add(money_t a, money_t b, money_t *out)
{
    money_t r = a + b; /* both within the limit: cannot overflow int128 */
    if (r > money_limit() || r < -money_limit())
        return -1;
    *out = r;
    return 0;
}

double money_to_double(money_t m)
{
    char buf[MONEY_STR_MAX];
    money_format(m, buf);
    return strtod(buf, NULL);
}

int money_from_double(double d, money_t *out)
{
    char buf[64];
    if (!isfinite(d))
        return -1;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return money_parse(buf, out) == 0 && *out <= money_limit() && *out >= -money_limit() ? 0 : -1;
}

money_t money_round(money_t m, int decimals)
{
    money_t step = 1;
    for (int i = decimals; i < MONEY_SCALE_DIGITS; i++)
        step *= 10;
    money_t q = m / step, r = m % step;
    if (r * 2 >= step)
        q++;
    else if (r * 2 <= -step)
        q--;
    return q * step;
}
