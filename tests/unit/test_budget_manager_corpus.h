/* test_budget_manager_corpus.h - part of test_budget_manager.c (included
 * there, so the CHECK counters are shared): the BudgetManager prices the
 * golden cases (tests/data/cost_cases.jsonl) as the gateway does.
 *
 * update_cost_response sees only the answer (its model, usage and
 * service_tier), so the cases it can price are those of a map model without
 * deployment prices, image size or request fields (a request's service_tier
 * is one when the answer names its own, which wins); get_model_cost must
 * then give the nearest double to the case's exact expected cost. */

/* Does the request add nothing the answer does not say? */
static bool request_moot(const json_t *c)
{
    const json_t *req = json_object_get(c, "request");
    const json_t *tier = json_object_get(json_object_get(c, "response"), "service_tier");
    return req == NULL || (json_object_size(req) == 1 &&
                           json_object_get(req, "service_tier") != NULL && tier != NULL);
}

/* Can the BudgetManager price this case from an answer alone? */
static bool answer_only(const json_t *c)
{
    const char *call = json_string_value(json_object_get(c, "call"));
    return json_is_object(json_object_get(c, "usage")) &&
           (call == NULL || strcmp(call, "chat") == 0) && request_moot(c) &&
           json_object_get(c, "base_model") == NULL &&
           json_object_get(c, "input_cost_per_token") == NULL &&
           json_object_get(c, "duration_us") == NULL;
}

struct one_cost {
    double cost;
    int n;
};

static void take_cost(const char *model, double cost, void *arg)
{
    struct one_cost *o = arg;
    (void)model;
    o->cost = cost;
    o->n++;
}

static void price_one_case(struct tg_bm *m, const json_t *c, int k)
{
    const char *name = json_string_value(json_object_get(c, "case"));
    const char *expected = json_string_value(json_object_get(c, "expected"));
    json_t *resp = json_deep_copy(json_object_get(c, "response"));
    char user[32];
    snprintf(user, sizeof(user), "case%d", k);
    if (resp == NULL)
        resp = json_object();
    json_object_set(resp, "model", json_object_get(c, "model"));
    json_object_set(resp, "usage", json_object_get(c, "usage"));
    char *text = json_dumps(resp, JSON_COMPACT);
    struct one_cost o = {0, 0};
    CHECK(text != NULL && tg_bm_create_budget(m, 1000, user, TG_BM_NONE, 0) == TG_BM_OK &&
          tg_bm_update_cost_response(m, user, text) == TG_BM_OK, "case '%s': %s", name,
          tg_bm_error(m));
    CHECK(tg_bm_get_model_cost(m, user, take_cost, &o) == TG_BM_OK && o.n == 1 &&
          expected != NULL && o.cost == strtod(expected, NULL),
          "case '%s': model cost %.17g, want %s", name, o.cost, expected ? expected : "?");
    free(text);
    json_decref(resp);
}

static void corpus_costs(const char *path)
{
    struct tg_bm *m = open_local("corpus.json", NULL);
    FILE *f = fopen(path, "r");
    char line[8192];
    int priced = 0, k = 0;
    CHECK(f != NULL, "open %s", path);
    while (m != NULL && f != NULL && fgets(line, sizeof(line), f) != NULL) {
        json_t *c = json_loads(line, 0, NULL);
        if (c != NULL && answer_only(c)) {
            price_one_case(m, c, k);
            priced++;
        }
        json_decref(c);
        k++;
    }
    CHECK(priced >= 60, "the BudgetManager priced %d golden cases", priced);
    if (f != NULL)
        fclose(f);
    tg_bm_close(m);
}
