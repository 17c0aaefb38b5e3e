/* numtext.h - an integer written in decimal without snprintf: on the
 * request path (x-ratelimit-* headers, Redis arguments) snprintf's format
 * parsing costs more than the rest of the work.
 */
#ifndef TG_NUMTEXT_H
#define TG_NUMTEXT_H

#include <stddef.h>
#include <stdint.h>

#define NUMTEXT_MAX 21 /* "-9223372036854775808" and its NUL */

/* Writes v and a NUL at out (NUMTEXT_MAX bytes at least); returns its length. */
static inline size_t numtext_i64(char *out, int64_t v)
{
    char tmp[20];
    size_t k = 0, n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (v < 0)
        out[n++] = '-';
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    while (k > 0)
        out[n++] = tmp[--k];
    out[n] = '\0';
    return n;
}

#endif
