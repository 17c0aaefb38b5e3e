/* money.h - exact decimal money for prices and costs.
 *
 * An amount is a signed 128-bit count of 1e-20 USD. Every price in the
 * price map has at most 20 decimals, so price x integer count is exact, and
 * sums of costs are exact: no binary float ever touches money. The database
 * columns are DECIMAL(38,20), the same scale, so a value round-trips to the
 * last digit.
 */
#ifndef TG_MONEY_H
#define TG_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

__extension__ typedef __int128 money_t;

#define MONEY_SCALE_DIGITS 20
/* Longest text money_format writes: sign, 18 integer digits, '.', 20 decimals. */
#define MONEY_STR_MAX 48

/* Parse a plain or exponent decimal ("0.0000025", "2.5e-06", "12").
 * Fails (-1) on junk, more than 20 decimals after scaling, or overflow. */
int money_parse(const char *s, money_t *out);

/* Write the exact decimal with trailing zeros trimmed ("0.00009", "0"). */
void money_format(money_t m, char out[MONEY_STR_MAX]);

/* m rounded half away from zero to `decimals` (0..20) decimals. */
money_t money_round(money_t m, int decimals);

/* amount * count; returns -1 on overflow. */
int money_mul_int(money_t amount, int64_t count, money_t *out);

/* a + b (both valid amounts); returns -1 beyond DECIMAL(38,20). */
int money_add(money_t a, money_t b, money_t *out);

/* A JSON number (a double) to money, through its shortest round-trip
 * decimal text, so 0.1 becomes exactly 0.1. -1 for NaN, infinities, values
 * beyond DECIMAL(38,20) or needing more than 20 decimals. */
int money_from_double(double d, money_t *out);

/* Nearest double, for JSON output only (never for arithmetic). */
double money_to_double(money_t m);

#endif
