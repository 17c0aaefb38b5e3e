/* keyhash.h - virtual keys: minting, hashing and comparing.
 *
 * Only the SHA-256 hex of a key is ever stored or logged. A raw key is
 * "sk-" + URL-safe base64 of 24 random bytes (192 bits).
 */
#ifndef TG_KEYHASH_H
#define TG_KEYHASH_H

#include <stdbool.h>
#include <stddef.h>

#define KEYHASH_HEX_LEN 64
#define KEYHASH_RAW_MAX 64

/* SHA-256 of s as 64 lower-case hex digits + NUL. -1 if libcrypto fails. */
int keyhash_sha256_hex(const char *s, size_t len, char out[KEYHASH_HEX_LEN + 1]);

/* HMAC-SHA256 of s under key (a NUL-terminated secret), as 64 hex digits. */
int keyhash_hmac_hex(const char *key, const char *s, size_t len, char out[KEYHASH_HEX_LEN + 1]);

/* A new random key into out. -1 if the random generator fails. */
int keyhash_generate(char out[KEYHASH_RAW_MAX]);

/* Is s already a hash (64 hex digits) rather than a raw key? */
bool keyhash_is_hash(const char *s);

/* The key's hash: s itself when it is a hash, else SHA-256 hex of s. */
int keyhash_normalize(const char *s, char out[KEYHASH_HEX_LEN + 1]);

/* Constant-time equality of two hashes (64 hex digits each), for the master
 * key: comparing digests, neither its content nor its length leaks by
 * timing. */
bool keyhash_token_equal(const char *a, const char *b);

/* "sk-...abcd": the display name of a raw key (last 4 characters). */
void keyhash_display_name(const char *raw, char out[16]);

#endif
