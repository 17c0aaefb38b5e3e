/* response_id.c - the Responses API ids the client sees (see response_id.h). */
#include "response_id.h"

#include <stdio.h>
#include <string.h>

#include "keyhash.h"

#define ID_PREFIX "resp_tg"
#define TAG_LEN 8
#define OWNER_HEX 12
#define UUID_HEX 32

static const char HEX[] = "0123456789abcdef";

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

json_t *response_id_make(const struct deployment *d, const json_t *upstream_id,
                         const char *owner, const char *creator)
{
    char tag[TAG_LEN + 1], bg[UUID_HEX + 2] = "";
    if (!json_is_string(upstream_id) || tag_of(d->model, d->api_base, tag, TAG_LEN) < 0)
        return NULL;
    if (creator != NULL && creator[0] != '\0') { /* the uuid without its dashes */
        size_t n = 0;
        bg[n++] = 'b';
        for (const char *p = creator; *p != '\0' && n <= UUID_HEX; p++)
            if (*p != '-')
                bg[n++] = *p;
        bg[n] = '\0';
    }
    return json_sprintf(ID_PREFIX "%s%s%s_%s", tag, owner != NULL ? owner : "", bg,
                        json_string_value(upstream_id));
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

bool response_id_parse(const struct config *cfg, const char *client_id, struct response_ref *ref)
{
    char tag[TAG_LEN + 1];
    size_t at = strlen(ID_PREFIX);
    *ref = (struct response_ref){0};
    if (strncmp(client_id, ID_PREFIX, at) != 0 || strspn(client_id + at, HEX) < TAG_LEN)
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
    if (client_id[at] != '_' || client_id[at + 1] == '\0')
        return false;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        const struct deployment *d = &cfg->deployments[i];
        if (d->kind != UPSTREAM_ANTHROPIC && tag_of(d->model, d->api_base, tag, TAG_LEN) == 0 &&
            memcmp(tag, dtag, TAG_LEN) == 0) {
            ref->d = d;
            ref->upstream_id = client_id + at + 1;
            return true;
        }
    }
    return false;
}
