/* ids.c - random identifiers from OpenSSL's CSPRNG, and hex digits (by
 * table: these run on every request, where snprintf's cost shows). */
#include "ids.h"

#include <openssl/rand.h>
#include <stdint.h>
#include <time.h>

void ids_hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

/* 16 bytes as 8-4-4-4-12 hex digits. */
static void uuid_text(const unsigned char b[16], char out[IDS_UUID_LEN + 1])
{
    ids_hex(b, 4, out);
    out[8] = '-';
    ids_hex(b + 4, 2, out + 9);
    out[13] = '-';
    ids_hex(b + 6, 2, out + 14);
    out[18] = '-';
    ids_hex(b + 8, 2, out + 19);
    out[23] = '-';
    ids_hex(b + 10, 6, out + 24);
}

int ids_uuid4(char out[IDS_UUID_LEN + 1])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    uuid_text(b, out);
    return 0;
}

int ids_uuid7(char out[IDS_UUID_LEN + 1])
{
    unsigned char b[16];
    struct timespec ts;
    if (RAND_bytes(b, sizeof(b)) != 1 || clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return -1;
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70); /* version 7 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 9562 variant */
    uuid_text(b, out);
    return 0;
}
