/* test_price.c - golden pricing cases (tests/data/cost_cases.jsonl) against
 * the built-in price map, plus name resolution, unpriced models, and the
 * price-field families the library leaves unpriced (tests/data/price_fields.tsv).
 *
 * Usage: test_price CASES.jsonl [PRICE_FIELDS.tsv]
 */
#include <jansson.h>
#include <stdlib.h>

#include "check.h"
#include "price.h"
#include "usage.h"

static void run_case(const struct price_table *t, json_t *c)
{
    const char *name = json_string_value(json_object_get(c, "case"));
    const char *model = json_string_value(json_object_get(c, "model"));
    const char *expected = json_string_value(json_object_get(c, "expected"));
    struct price_custom custom = {
        .base_model = json_string_value(json_object_get(c, "base_model"))};
    const char *in = json_string_value(json_object_get(c, "input_cost_per_token"));
    const char *out = json_string_value(json_object_get(c, "output_cost_per_token"));
    struct usage u;
    money_t cost;
    char err[256], text[MONEY_STR_MAX];
    custom.has_input = in != NULL && money_parse(in, &custom.input_per_token) == 0;
    custom.has_output = out != NULL && money_parse(out, &custom.output_per_token) == 0;
    json_t *usage = json_object_get(c, "usage");
    const char *call = json_string_value(json_object_get(c, "call"));
    bool image = call != NULL && strcmp(call, "image") == 0;
    if (usage == NULL && image)
        u = (struct usage){0};
    else
        CHECK(usage_from_json(usage, &u) == 0, "case '%s': usage", name);
    /* The request: its extra fields, and an image call's size, quality and n
     * as the case spells them. */
    json_t *request = json_deep_copy(json_object_get(c, "request"));
    if (request == NULL)
        request = json_object();
    static const char *const image_fields[] = {"size", "quality", "n"};
    for (size_t i = 0; image && i < 3; i++) {
        json_t *v = json_object_get(c, image_fields[i]);
        if (v != NULL)
            json_object_set(request, image_fields[i], v);
    }
    CHECK(usage_note_request(request, image, &u) == 0, "case '%s': request", name);
    json_decref(request);
    usage_note_answer(json_object_get(c, "response"), &u);
    json_t *duration = json_object_get(c, "duration_us");
    if (json_is_integer(duration))
        u.duration_us = json_integer_value(duration);
    enum price_status st = price_cost(t, model, &custom, &u, &cost, err, sizeof(err));
    CHECK(st == PRICE_OK, "case '%s': %s", name, err);
    money_format(cost, text);
    CHECK(expected != NULL && strcmp(text, expected) == 0, "case '%s': cost %s, want %s", name,
          text, expected ? expected : "?");
}

static void unpriced_and_errors(const struct price_table *t)
{
    struct usage u = {.prompt_tokens = 10, .completion_tokens = 5, .total_tokens = 15};
    struct price_custom none = {0};
    money_t cost = 1;
    char err[256];
    CHECK(price_cost(t, "openai/no-such-model-x", &none, &u, &cost, err, sizeof(err)) ==
              PRICE_UNPRICED && cost == 0, "unknown model is unpriced with cost 0");
    CHECK(!price_known(t, "openai/no-such-model-x", &none), "price_known false");
    CHECK(price_known(t, "groq/llama-3.1-8b-instant", &none), "price_known true");
    struct usage bad = {.prompt_tokens = 10, .cache_read_tokens = 11};
    CHECK(price_cost(t, "gpt-4o", &none, &bad, &cost, err, sizeof(err)) == PRICE_ERROR,
          "cached > prompt is an error");
    struct usage neg = {.prompt_tokens = -1};
    CHECK(price_cost(t, "gpt-4o", &none, &neg, &cost, err, sizeof(err)) == PRICE_ERROR,
          "negative tokens are an error");
}

/* The families the library leaves unpriced are exactly the "not priced" rows
 * of tests/data/price_fields.tsv, the reviewed list of every field family of
 * the map: a family added to either without the other fails here. */
static void unpriced_families_match(const char *tsv)
{
    FILE *f = fopen(tsv, "r");
    char line[2048];
    int listed = 0, library = 0;
    CHECK(f != NULL, "open %s", tsv);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        char *pattern = strtok(line, "\t"), *count = strtok(NULL, "\t");
        char *status = strtok(NULL, "\t");
        if (pattern == NULL || pattern[0] == '#' || count == NULL || status == NULL ||
            strcmp(status, "not priced") != 0)
            continue;
        listed++;
        bool found = false;
        for (size_t i = 0; price_unpriced_families[i] != NULL; i++) {
            size_t n = strcspn(price_unpriced_families[i], "\t");
            found |= strlen(pattern) == n && strncmp(price_unpriced_families[i], pattern, n) == 0;
        }
        CHECK(found, "%s is 'not priced' in %s but the library does not list it", pattern, tsv);
    }
    if (f != NULL)
        fclose(f);
    for (size_t i = 0; price_unpriced_families[i] != NULL; i++)
        library++;
    CHECK(listed == library, "%d families 'not priced' in %s, %d in the library", listed, tsv,
          library);
}

static void bad_price_files(void)
{
    char err[256];
    static const char *const files[] = {
        "{", "[]", "{\"models\": []}",
        "{\"models\": {\"m\": {\"input_cost_per_token\": 0.1}}}",  /* a float, not text */
        "{\"models\": {\"m\": {\"input_cost_per_token\": \"x\"}}}",
        /* a price the library neither prices nor knows to leave unpriced */
        "{\"models\": {\"m\": {\"input_cost_per_token\": \"1\", \"input_cost_per_hug\": \"1\"}}}",
        /* a service tier of a prompt-size tier: no map has it, so no rule */
        "{\"models\": {\"m\": {\"input_cost_per_token_above_200k_tokens_priority\": \"1\"}}}",
        "{\"models\": {\"m\": {\"input_cost_per_token\": \"-1\"}}}",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct price_table *t = price_table_parse(files[i], strlen(files[i]), err, sizeof(err));
        CHECK(t == NULL, "price file '%s' should be refused", files[i]);
        price_table_free(t);
    }
}

int main(int argc, char **argv)
{
    char err[256];
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: test_price CASES.jsonl [PRICE_FIELDS.tsv]\n");
        return 2;
    }
    struct price_table *t = price_table_open(NULL, err, sizeof(err));
    CHECK(t != NULL && price_table_count(t) > 1000, "built-in price map loads: %s", err);
    FILE *f = fopen(argv[1], "r");
    CHECK(f != NULL, "open %s", argv[1]);
    char line[8192];
    int cases = 0;
    while (t != NULL && f != NULL && fgets(line, sizeof(line), f) != NULL) {
        json_error_t jerr;
        json_t *c = json_loads(line, 0, &jerr);
        CHECK(c != NULL, "bad case line: %s", jerr.text);
        if (c != NULL)
            run_case(t, c);
        json_decref(c);
        cases++;
    }
    CHECK(cases >= 60, "ran %d golden cases", cases);
    if (f != NULL)
        fclose(f);
    if (t != NULL)
        unpriced_and_errors(t);
    bad_price_files();
    if (argc == 3)
        unpriced_families_match(argv[2]);
    price_table_free(t);
    return check_summary("test_price");
}
