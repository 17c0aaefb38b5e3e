/* bm_hosted.c - the BudgetManager's hosted client: LiteLLM's /get_budget and
 * /set_budget (the whole user dict), and Tollgate's per-user atomic
 * endpoints (/budget_manager/create_budget, update_cost, reset_cost).
 *
 * Which server it is comes from the /get_budget answer at open: reportd
 * sends "x-tollgate-budget-manager: 1"; a LiteLLM server does not. On
 * Tollgate every change is one request whose answer (the user's stored
 * entry) replaces the loaded one; on LiteLLM changes apply to the loaded
 * dict and save_data sends it. Requests are synchronous (libcurl's easy
 * interface): a manager call returns when the server has answered.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bm_internal.h"

#define REPLY_MAX ((size_t)256 << 20)
#define DEFAULT_TIMEOUT_MS 30000L
#define TOLLGATE_HEADER "x-tollgate-budget-manager:"

struct reply {
    char *body;
    size_t len;
    bool too_big, tollgate;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t add = size * n;
    if (r->len + add > REPLY_MAX) {
        r->too_big = true;
        return 0;
    }
    char *b = realloc(r->body, r->len + add + 1);
    if (b == NULL)
        return 0;
    memcpy(b + r->len, data, add);
    r->body = b;
    r->len += add;
    b[r->len] = '\0';
    return add;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = size * n, hl = strlen(TOLLGATE_HEADER);
    if (len > hl && strncasecmp(data, TOLLGATE_HEADER, hl) == 0) {
        const char *v = data + hl;
        while (*v == ' ' || *v == '\t')
            v++;
        r->tollgate = v < data + len && *v == '1';
    }
    return len;
}

int bm_hosted_open(struct tg_bm *m, const struct tg_bm_options *opt)
{
    if (opt->api_base == NULL || strncmp(opt->api_base, "http", 4) != 0)
        return bm_fail(m, TG_BM_EINVAL, "hosted mode needs options.api_base (http:// or "
                       "https://)");
    size_t n = strlen(opt->api_base);
    while (n > 0 && opt->api_base[n - 1] == '/')
        n--;
    m->api_base = strndup(opt->api_base, n);
    m->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : DEFAULT_TIMEOUT_MS;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    m->headers = h;
    for (size_t i = 0; h != NULL && opt->headers != NULL && opt->headers[i] != NULL; i++) {
        if (strpbrk(opt->headers[i], "\r\n") != NULL || strchr(opt->headers[i], ':') == NULL)
            return bm_fail(m, TG_BM_EINVAL, "options.headers[%zu] is not one \"Name: value\" "
                           "line", i);
        if ((h = curl_slist_append(m->headers, opt->headers[i])) != NULL)
            m->headers = h;
    }
    if (m->api_base == NULL || h == NULL)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    return bm_hosted_load(m);
}

void bm_hosted_close(struct tg_bm *m)
{
    free(m->api_base);
    m->api_base = NULL;
    curl_slist_free_all(m->headers);
    m->headers = NULL;
    json_decref(m->users);
    m->users = NULL;
}

/* The error text of an answer: OpenAI's error.message, FastAPI's detail, or
 * the start of the body. */
static void answer_error(const json_t *doc, const struct reply *r, char *out, size_t outlen)
{
    const json_t *e = json_object_get(doc, "error");
    const json_t *msg = json_is_object(e) ? json_object_get(e, "message")
                      : json_is_string(e) ? e : json_object_get(doc, "detail");
    if (json_is_string(msg))
        snprintf(out, outlen, "%.300s", json_string_value(msg));
    else
        snprintf(out, outlen, "%.200s", r->body != NULL ? r->body : "");
}

/* POSTs body to route; *doc is the JSON answer of a 2xx (caller frees).
 * 404 naming param "user" is ENOUSER, as Tollgate answers an unknown user. */
static int post(struct tg_bm *m, const char *route, const json_t *body, json_t **doc,
                bool *tollgate)
{
    char url[4200], why[400], curl_err[CURL_ERROR_SIZE] = "";
    struct reply r = {0};
    long status = 0;
    *doc = NULL;
    snprintf(url, sizeof(url), "%s%s", m->api_base, route);
    char *text = bm_json_text(body);
    CURL *c = curl_easy_init();
    if (text == NULL || c == NULL) {
        free(text);
        if (c != NULL)
            curl_easy_cleanup(c);
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, m->headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, m->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    free(text);
    if (cc != CURLE_OK) {
        free(r.body);
        return bm_fail(m, TG_BM_EHTTP, "POST %s: %s", url, r.too_big ? "answer larger than "
                       "256 MiB" : curl_err[0] ? curl_err : curl_easy_strerror(cc));
    }
    json_t *answer = r.body != NULL ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    if (status < 200 || status > 299) {
        answer_error(answer, &r, why, sizeof(why));
        const json_t *param = json_object_get(json_object_get(answer, "error"), "param");
        bool nouser = status == 404 && json_is_string(param) &&
                      strcmp(json_string_value(param), "user") == 0;
        json_decref(answer);
        free(r.body);
        return bm_fail(m, nouser ? TG_BM_ENOUSER : TG_BM_EHTTP, "POST %s: HTTP %ld: %s", url,
                       status, why);
    }
    free(r.body);
    if (!json_is_object(answer)) {
        json_decref(answer);
        return bm_fail(m, TG_BM_EHTTP, "POST %s: the answer is not a JSON object", url);
    }
    if (tollgate != NULL)
        *tollgate = r.tollgate;
    *doc = answer;
    return TG_BM_OK;
}

int bm_hosted_load(struct tg_bm *m)
{
    json_t *body = json_pack("{s:s}", "project_name", m->project), *doc = NULL;
    char why[300];
    if (body == NULL)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    int rc = post(m, "/get_budget", body, &doc, &m->tollgate);
    json_decref(body);
    if (rc != TG_BM_OK)
        return rc;
    const json_t *status = json_object_get(doc, "status");
    json_t *data = json_object_get(doc, "data");
    if (json_is_string(status) && strcmp(json_string_value(status), "error") == 0) {
        data = NULL; /* LiteLLM's client reads an error as a project with no users */
    } else if (bm_dict_check(data, why, sizeof(why)) < 0) {
        json_decref(doc);
        return bm_fail(m, TG_BM_EHTTP, "/get_budget answered no user dict: %s", why);
    }
    json_t *users = data != NULL ? json_incref(data) : json_object();
    json_decref(doc);
    if (users == NULL)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    json_decref(m->users);
    m->users = users;
    return TG_BM_OK;
}

int bm_hosted_save(struct tg_bm *m)
{
    json_t *body = json_pack("{s:s,s:O}", "project_name", m->project, "user_dict", m->users);
    json_t *doc = NULL;
    if (body == NULL)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    int rc = post(m, "/set_budget", body, &doc, NULL);
    json_decref(body);
    const json_t *status = json_object_get(doc, "status");
    if (rc == TG_BM_OK && json_is_string(status) &&
        strcmp(json_string_value(status), "error") == 0) {
        char why[400];
        answer_error(doc, &(struct reply){0}, why, sizeof(why));
        rc = bm_fail(m, TG_BM_EHTTP, "/set_budget answered an error: %s", why);
    }
    json_decref(doc);
    return rc;
}

/* The request body of a change on Tollgate. */
static json_t *change_body(const struct tg_bm *m, const struct bm_change *c, const char **route)
{
    json_t *b = json_pack("{s:s,s:s}", "project_name", m->project, "user", c->user);
    int rc = b == NULL ? -1 : 0;
    switch (c->op) {
    case BM_OP_CREATE: {
        const char *d = bm_duration_name(c->duration);
        *route = "/budget_manager/create_budget";
        rc |= json_object_set_new(b, "total_budget", json_real(money_to_double(c->amount)));
        rc |= json_object_set_new(b, "duration", d != NULL ? json_string(d) : json_null());
        if (c->created_at > 0)
            rc |= json_object_set_new(b, "created_at", json_real(c->created_at));
        break;
    }
    case BM_OP_ADD_COST:
        *route = "/budget_manager/update_cost";
        rc |= json_object_set_new(b, "model", json_string(c->model));
        rc |= json_object_set_new(b, "cost", json_real(money_to_double(c->amount)));
        break;
    default:
        *route = "/budget_manager/reset_cost";
        if (c->has_if_last)
            rc |= json_object_set_new(b, "if_last_updated_at", json_real(c->if_last));
        break;
    }
    if (rc != 0) {
        json_decref(b);
        return NULL;
    }
    return b;
}

int bm_hosted_change(struct tg_bm *m, struct bm_change *c)
{
    const char *route = NULL;
    char why[300];
    json_t *body = change_body(m, c, &route), *doc = NULL;
    if (body == NULL)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    int rc = post(m, route, body, &doc, NULL);
    json_decref(body);
    if (rc != TG_BM_OK)
        return rc;
    json_t *entry = json_object_get(doc, "data");
    if (bm_entry_check(c->user, entry, why, sizeof(why)) < 0) {
        json_decref(doc);
        return bm_fail(m, TG_BM_EHTTP, "%s answered no user entry: %s", route, why);
    }
    c->did = c->op != BM_OP_CREATE && c->op != BM_OP_ADD_COST &&
             !json_is_false(json_object_get(doc, "reset"));
    rc = json_object_set(m->users, c->user, entry);
    json_decref(doc);
    return rc == 0 ? TG_BM_OK : bm_fail(m, TG_BM_ENOMEM, "out of memory");
}
