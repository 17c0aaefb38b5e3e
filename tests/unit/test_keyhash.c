/* test_keyhash.c - key minting, hashing and the helpers around it. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "grow.h"
#include "ids.h"
#include "keyhash.h"
#include "strmap.h"

static void keys(void)
{
    char hex[KEYHASH_HEX_LEN + 1], a[KEYHASH_RAW_MAX], b[KEYHASH_RAW_MAX], name[16];
    CHECK(keyhash_sha256_hex("abc", 3, hex) == 0, "sha256");
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(keyhash_generate(a) == 0 && keyhash_generate(b) == 0, "generate");
    CHECK(strncmp(a, "sk-", 3) == 0 && strlen(a) == 3 + 32, "key format %s", a);
    CHECK(strcmp(a, b) != 0, "two keys differ");
    CHECK(strcspn(a + 3, "+/=") == strlen(a + 3), "URL-safe alphabet: %s", a);
    CHECK(!keyhash_is_hash(a), "a raw key is not a hash");
    CHECK(keyhash_is_hash(hex), "a hash is a hash");
    char norm[KEYHASH_HEX_LEN + 1], direct[KEYHASH_HEX_LEN + 1];
    keyhash_normalize(a, norm);
    keyhash_sha256_hex(a, strlen(a), direct);
    CHECK_STR(norm, direct);
    keyhash_normalize(hex, norm);
    CHECK_STR(norm, hex);
    char h1[KEYHASH_HEX_LEN + 1], h2[KEYHASH_HEX_LEN + 1], h3[KEYHASH_HEX_LEN + 1];
    keyhash_sha256_hex("sk-1234", 7, h1);
    keyhash_sha256_hex("sk-1234", 7, h2);
    keyhash_sha256_hex("sk-1235", 7, h3);
    CHECK(keyhash_token_equal(h1, h2) && !keyhash_token_equal(h1, h3), "token equal");
    keyhash_display_name("sk-abcdefgh", name);
    CHECK_STR(name, "sk-...efgh");
    char id[IDS_UUID_LEN + 1];
    CHECK(ids_uuid4(id) == 0 && strlen(id) == 36 && id[14] == '4', "uuid4 %s", id);
    bool shape = strchr("89ab", id[19]) != NULL;
    for (int i = 0; i < 36; i++)
        shape = shape && (i == 8 || i == 13 || i == 18 || i == 23 ? id[i] == '-'
                                                                  : strchr("0123456789abcdef", id[i]) != NULL);
    CHECK(shape, "uuid4 8-4-4-4-12 lower-case hex with the RFC 4122 variant: %s", id);
    char a7[IDS_UUID_LEN + 1], b7[IDS_UUID_LEN + 1];
    CHECK(ids_uuid7(a7) == 0 && strlen(a7) == 36 && a7[14] == '7' && strchr("89ab", a7[19]),
          "uuid7 %s", a7);
    struct timespec pause = {0, 2000000};
    nanosleep(&pause, NULL);
    CHECK(ids_uuid7(b7) == 0 && strcmp(a7, b7) < 0, "uuid7 sorts by time: %s < %s", a7, b7);
    char stamp[13]; /* the first 48 bits: 8 hex digits, a dash, 4 more */
    memcpy(stamp, a7, 8);
    memcpy(stamp + 8, a7 + 9, 4);
    stamp[12] = '\0';
    long long secs = (long long)(strtoull(stamp, NULL, 16) / 1000);
    CHECK(llabs(secs - (long long)time(NULL)) <= 2, "uuid7 carries the time: %s", a7);
}

static void map(void)
{
    struct strmap *m = strmap_new();
    char key[32];
    int err;
    for (long i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%ld", i);
        strmap_put(m, key, (void *)(i + 1), &err);
    }
    CHECK(strmap_count(m) == 5000, "count");
    for (long i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof(key), "k%ld", i);
        CHECK(strmap_del(m, key) == (void *)(i + 1), "del %s", key);
    }
    long found = 0;
    for (long i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%ld", i);
        void *v = strmap_get(m, key);
        found += v != NULL;
        CHECK((i % 2 == 0) == (v == NULL), "get %s after deletes", key);
    }
    CHECK(found == 2500 && strmap_count(m) == 2500, "half left");
    strmap_free(m, NULL);
}

static void grow(void)
{
    size_t cap = 0;
    int *a = grow_array(NULL, &cap, 5, sizeof(int), 4);
    CHECK(a != NULL && cap == 8, "from empty: doubled from the first size (cap %zu)", cap);
    for (int i = 0; i < 5; i++)
        a[i] = i;
    CHECK(grow_array(a, &cap, 8, sizeof(int), 4) == a && cap == 8, "room enough: unchanged");
    int *b = grow_array(a, &cap, 100, sizeof(int), 4);
    CHECK(b != NULL && cap == 128 && b[4] == 4, "grown keeps the contents (cap %zu)", cap);
    size_t huge = cap;
    CHECK(grow_array(b, &huge, (size_t)-1 / 2, sizeof(int), 4) == NULL && huge == cap,
          "an impossible size fails and changes nothing");
    free(b);
}

int main(void)
{
    keys();
    map();
    grow();
    return check_summary("test_keyhash");
}
