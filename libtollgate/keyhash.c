/* keyhash.c - virtual key minting and hashing with OpenSSL's libcrypto. */
#include "keyhash.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"

#define KEY_RANDOM_BYTES 24

int keyhash_sha256_hex(const char *s, size_t len, char out[KEYHASH_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return -1;
    ids_hex(md, mdlen, out);
    return 0;
}

int keyhash_hmac_hex(const char *key, const char *s, size_t len, char out[KEYHASH_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)s, len, md, &mdlen) ==
            NULL || mdlen != 32)
        return -1;
    ids_hex(md, mdlen, out);
    return 0;
}

int keyhash_generate(char out[KEYHASH_RAW_MAX])
{
    unsigned char rnd[KEY_RANDOM_BYTES];
    unsigned char b64[KEY_RANDOM_BYTES * 4 / 3 + 4];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -1;
    int n = EVP_EncodeBlock(b64, rnd, sizeof(rnd)); /* 24 bytes: no '=' padding */
    if (n <= 0)
        return -1;
    for (int i = 0; i < n; i++) { /* standard -> URL-safe alphabet */
        if (b64[i] == '+')
            b64[i] = '-';
        else if (b64[i] == '/')
            b64[i] = '_';
    }
    snprintf(out, KEYHASH_RAW_MAX, "sk-%.*s", n, (const char *)b64);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return 0;
}

bool keyhash_is_hash(const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0'; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return false;
    }
    return i == KEYHASH_HEX_LEN;
}

int keyhash_normalize(const char *s, char out[KEYHASH_HEX_LEN + 1])
{
    if (keyhash_is_hash(s)) {
        memcpy(out, s, KEYHASH_HEX_LEN + 1);
        return 0;
    }
    return keyhash_sha256_hex(s, strlen(s), out);
}

bool keyhash_token_equal(const char *a, const char *b)
{
    return CRYPTO_memcmp(a, b, KEYHASH_HEX_LEN) == 0;
}

void keyhash_display_name(const char *raw, char out[16])
{
    size_t n = strlen(raw);
    snprintf(out, 16, "sk-...%s", n >= 4 ? raw + n - 4 : raw);
}
