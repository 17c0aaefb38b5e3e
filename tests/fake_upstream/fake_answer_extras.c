/*
 * fake_answer_extras.c - mock_usage_raw and mock_answer_fields for
 * fake-upstream (see fake_answer_extras.h).
 *
 * The request body's objects are kept by reference (jansson values may have
 * several owners), so a stream keeps its extras after the body is freed and
 * every chunk shares them; nothing here modifies them.  A member that would
 * replace what makes an answer an answer (its id, object, choices, usage,
 * model, created or data) is refused, so a test cannot break the shape the
 * gateway parses by accident: usage has its own field.
 */
#include "fake_answer_extras.h"

#include <stdio.h>
#include <string.h>

static const char *const reserved_members[] = {"id",    "object",  "choices", "usage",
                                               "model", "created", "data"};

/* The reserved member `obj` has, or NULL if none. */
static const char *reserved_member(const json_t *obj)
{
    size_t i;

    for (i = 0; i < sizeof reserved_members / sizeof reserved_members[0]; i++)
        if (json_object_get(obj, reserved_members[i]))
            return reserved_members[i];
    return NULL;
}

/* Check mock_usage_raw; -1 (with `msg`) if it is not usable. */
static int check_usage_raw(const json_t *body, const json_t *raw, char *msg, size_t size)
{
    if (!raw)
        return 0;
    if (!json_is_object(raw)) {
        snprintf(msg, size, "mock_usage_raw must be a JSON object (the answer's usage)");
        return -1;
    }
    if (json_object_get(body, "mock_usage")) {
        snprintf(msg, size, "mock_usage_raw and mock_usage cannot be used together");
        return -1;
    }
    return 0;
}

/* Check mock_answer_fields; -1 (with `msg`) if it is not usable. */
static int check_fields(const json_t *fields, char *msg, size_t size)
{
    const char *name;

    if (!fields)
        return 0;
    if (!json_is_object(fields)) {
        snprintf(msg, size, "mock_answer_fields must be a JSON object (members to add)");
        return -1;
    }
    name = reserved_member(fields);
    if (name) {
        snprintf(msg, size, "mock_answer_fields cannot set \"%s\"%s", name,
                 strcmp(name, "usage") == 0 ? " (use mock_usage_raw)" : "");
        return -1;
    }
    return 0;
}

int answer_extras_read(const json_t *body, struct answer_extras *x, char *msg, size_t size)
{
    json_t *raw = json_object_get(body, "mock_usage_raw");
    json_t *fields = json_object_get(body, "mock_answer_fields");

    x->usage_raw = NULL;
    x->fields = NULL;
    if (check_usage_raw(body, raw, msg, size) != 0 || check_fields(fields, msg, size) != 0)
        return -1;
    x->usage_raw = json_incref(raw);
    x->fields = json_incref(fields);
    return 0;
}

void answer_extras_clear(struct answer_extras *x)
{
    json_decref(x->usage_raw);
    json_decref(x->fields);
    x->usage_raw = NULL;
    x->fields = NULL;
}

void answer_extras_copy(struct answer_extras *dst, const struct answer_extras *src)
{
    dst->usage_raw = json_incref(src->usage_raw);
    dst->fields = json_incref(src->fields);
}

json_t *answer_extras_usage(const struct answer_extras *x, json_t *computed)
{
    if (!x->usage_raw)
        return computed;
    json_decref(computed);
    return json_incref(x->usage_raw);
}

json_t *answer_extras_add_fields(const struct answer_extras *x, json_t *obj)
{
    const char *name;
    json_t *value;

    if (!obj || !x->fields)
        return obj;
    json_object_foreach(x->fields, name, value) {
        if (json_object_set(obj, name, value) != 0) {
            fprintf(stderr, "fake-upstream: cannot set the answer member \"%s\"\n", name);
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

json_t *answer_extras_dress(const struct answer_extras *x, json_t *answer)
{
    if (answer && x->usage_raw && json_object_set(answer, "usage", x->usage_raw) != 0) {
        fprintf(stderr, "fake-upstream: cannot set the answer's usage\n");
        json_decref(answer);
        return NULL;
    }
    return answer_extras_add_fields(x, answer);
}
