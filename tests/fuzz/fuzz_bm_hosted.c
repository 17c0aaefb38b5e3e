/* fuzz_bm_hosted.c - the BudgetManager's hosted answers (bm_hosted.c): a
 * /get_budget answer checked as bm_hosted_load checks it (bm_dict_check)
 * and, when accepted, every call an application makes on the users it
 * holds (LiteLLM's server: changes apply to them in memory); then a
 * Tollgate change answer's entry checked as bm_hosted_change checks it
 * (bm_entry_check) and stored the same way.
 *
 * The transport (libcurl to a server) is not run: it would need a server
 * and the network. The checks after it are the library's own functions;
 * the few lines choosing what to check are bm_hosted.c's, repeated below.
 *
 * Input: the /get_budget answer's JSON, optionally followed by "\n--\n" and
 * a change answer's JSON. */
#include "fuzz_bm.h"

/* bm_hosted_load after post(): LiteLLM's "status": "error" is no users. */
static json_t *load_answer(const uint8_t *text, size_t len)
{
    char why[300];
    json_t *doc = json_loadb((const char *)text, len, 0, NULL), *users = NULL;
    if (!json_is_object(doc)) { /* post() refuses it */
        json_decref(doc);
        return NULL;
    }
    const json_t *status = json_object_get(doc, "status");
    json_t *data = json_object_get(doc, "data");
    if (json_is_string(status) && strcmp(json_string_value(status), "error") == 0)
        users = json_object();
    else if (bm_dict_check(data, why, sizeof(why)) == 0)
        users = json_incref(data);
    json_decref(doc);
    return users;
}

/* bm_hosted_change after post(): the answer's "data" replaces the entry. */
static void change_answer(struct tg_bm *m, const uint8_t *text, size_t len)
{
    char why[300];
    json_t *doc = json_loadb((const char *)text, len, 0, NULL);
    json_t *entry = json_object_get(doc, "data");
    if (json_is_object(doc) && bm_entry_check("fuzz-user", entry, why, sizeof(why)) == 0 &&
        json_object_set(m->users, "fuzz-user", entry) == 0)
        fuzz_bm_calls(m, NULL);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_bm *m = fuzz_bm();
    const uint8_t *piece;
    size_t len;
    fuzz_next_piece(&data, &size, &piece, &len);
    json_t *users = load_answer(piece, len);
    if (users == NULL)
        return 0;
    m->client = TG_BM_HOSTED; /* reads and changes use m->users, as after /get_budget */
    m->tollgate = false;
    m->users = users;
    fuzz_bm_calls(m, "{\"model\":\"gpt-4o\",\"usage\":{\"prompt_tokens\":10,"
                     "\"completion_tokens\":5,\"total_tokens\":15}}");
    if (size > 0)
        change_answer(m, data, size);
    m->client = TG_BM_LOCAL;
    json_decref(m->users);
    m->users = NULL;
    return 0;
}
