/* response_id.c - the Responses API ids the client sees (see response_id.h). */
#include "response_id.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "keyhash.h"

#define TAG_LEN 8
#define OWNER_HEX 12
#define UUID_HEX 32
#define MAC_HEX 16

static const char HEX[] = "0123456789abcdef";
static const char ID_CHARS[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";

/* The first n hex digits of SHA-256(a "\n" b). -1 when it cannot be hashed. */
static int tag_of(const char *a, const char *b, char *out, size_t n)
{
    char buf[4096], hex[KEYHASH_HEX_LEN + 1];
    int len = snprintf(buf, sizeof(buf), "%s\n%s", a, b);
    if (len < 0 || (size_t)len >= sizeof(buf) || keyhash_sha256_hex(buf, (size_t)len, hex) < 0)
        return -1;
    memcpy(out, hex, n);
    out[n] = '\0';
    return 0;
}

/* A deployment: its model, URL and key (deployments of one model and URL
 * often differ only by key: an organisation or project each). */
static int deployment_tag(const struct deployment *d, char tag[TAG_LEN + 1])
{
    char where[4096];
    int n = snprintf(where, sizeof(where), "%s\n%s", d->api_base,
                     d->api_key != NULL ? d->api_key : "");
    return n < 0 || (size_t)n >= sizeof(where) ? -1 : tag_of(d->model, where, tag, TAG_LEN);
}

void response_id_owner(const char *user_id, const char *team_id,
                       char out[RESPONSE_OWNER_LEN + 1])
{
    const char *who = user_id != NULL && user_id[0] != '\0' ? user_id : team_id;
    out[0] = '\0';
    if (who == NULL || who[0] == '\0')
        return;
    out[0] = who == user_id ? 'u' : 't';
    if (tag_of(who == user_id ? "user" : "team", who, out + 1, OWNER_HEX) < 0)
        out[0] = '\0';
}

/* "m" + the signature of an id's parts (head: up to the signature; tail:
 * the upstream's id). -1 when it cannot be computed. */
static int sign(const struct config *cfg, const char *head, size_t head_len, const char *tail,
                char out[MAC_HEX + 2])
{
    char buf[4096], hex[KEYHASH_HEX_LEN + 1];
    int n = snprintf(buf, sizeof(buf), "%.*s_%s", (int)head_len, head, tail);
    if (n < 0 || (size_t)n >= sizeof(buf) || keyhash_hmac_hex(cfg->id_secret, buf, (size_t)n,
                                                             hex) < 0)
        return -1;
    out[0] = 'm';
    memcpy(out + 1, hex, MAC_HEX);
    out[MAC_HEX + 1] = '\0';
    return 0;
}

json_t *response_id_make(const struct config *cfg, const struct deployment *d,
                         const json_t *upstream_id, const char *owner, const char *creator)
{
    char tag[TAG_LEN + 1], bg[UUID_HEX + 2] = "", head[128], mac[MAC_HEX + 2];
    if (!json_is_string(upstream_id) || deployment_tag(d, tag) < 0)
        return NULL;
    if (creator != NULL && creator[0] != '\0') { /* the uuid without its dashes */
        size_t n = 0;
        bg[n++] = 'b';
        for (const char *p = creator; *p != '\0' && n <= UUID_HEX; p++)
            if (*p != '-')
                bg[n++] = *p;
        bg[n] = '\0';
    }
    int n = snprintf(head, sizeof(head), RESPONSE_ID_PREFIX "%s%s%s", tag, owner != NULL ? owner : "",
                     bg);
    if (n < 0 || (size_t)n >= sizeof(head) ||
        sign(cfg, head, (size_t)n, json_string_value(upstream_id), mac) < 0)
        return NULL;
    return json_sprintf("%s%s_%s", head, mac, json_string_value(upstream_id));
}

/* A part of the id: the letter, then exactly n lowercase hex digits. */
static bool part(const char *s, char letter, size_t n)
{
    return s[0] == letter && strspn(s + 1, HEX) >= n;
}

/* "b" + 32 hex digits -> the creating request's uuid. */
static void read_creator(const char *s, char creator[IDS_UUID_LEN + 1])
{
    static const int GROUPS[] = {8, 4, 4, 4, 12};
    size_t n = 0, in = 1;
    for (size_t g = 0; g < 5; g++) {
        if (g > 0)
            creator[n++] = '-';
        memcpy(creator + n, s + in, (size_t)GROUPS[g]);
        n += (size_t)GROUPS[g];
        in += (size_t)GROUPS[g];
    }
    creator[n] = '\0';
}

bool response_id_owned(const struct response_ref *ref, const char *owner)
{
    return ref->owner[0] == '\0' || strcmp(ref->owner, owner) == 0;
}

bool response_id_parse(const struct config *cfg, const char *client_id, struct response_ref *ref)
{
    char tag[TAG_LEN + 1];
    size_t at = strlen(RESPONSE_ID_PREFIX);
    *ref = (struct response_ref){0};
    if (strncmp(client_id, RESPONSE_ID_PREFIX, at) != 0 || strspn(client_id + at, HEX) < TAG_LEN)
        return false;
    const char *dtag = client_id + at;
    at += TAG_LEN;
    if (part(client_id + at, 'u', OWNER_HEX) || part(client_id + at, 't', OWNER_HEX)) {
        memcpy(ref->owner, client_id + at, RESPONSE_OWNER_LEN);
        ref->owner[RESPONSE_OWNER_LEN] = '\0';
        at += RESPONSE_OWNER_LEN;
    }
    if (part(client_id + at, 'b', UUID_HEX)) {
        read_creator(client_id + at, ref->creator);
        at += 1 + UUID_HEX;
    }
    char mac[MAC_HEX + 2];
    size_t head_len = at;
    if (!part(client_id + at, 'm', MAC_HEX))
        return false;
    at += 1 + MAC_HEX;
    /* the upstream's id goes into a URL path: letters, digits, '_' and '-' only */
    if (client_id[at] != '_' || client_id[at + 1] == '\0' ||
        client_id[at + 1 + strspn(client_id + at + 1, ID_CHARS)] != '\0')
        return false;
    if (sign(cfg, client_id, head_len, client_id + at + 1, mac) < 0 ||
        CRYPTO_memcmp(mac, client_id + head_len, MAC_HEX + 1) != 0)
        return false;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        const struct deployment *d = &cfg->deployments[i];
        if (d->kind != UPSTREAM_ANTHROPIC && deployment_tag(d, tag) == 0 &&
            memcmp(tag, dtag, TAG_LEN) == 0) {
            ref->d = d;
            ref->upstream_id = client_id + at + 1;
            return true;
        }
    }
    return false;
}
