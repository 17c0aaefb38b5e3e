/* config_keys.c - litellm_settings' defaults and caps of the key and user
 * management routes, which reportd applies (reportd/manage_key_caps.c):
 *
 *   default_key_generate_params      fields /key/generate takes when the
 *                                    request leaves them out
 *   upperbound_key_generate_params   caps of /key/generate and /key/update
 *   default_internal_user_params     fields /user/new takes when left out
 *   max_internal_user_budget, default_max_internal_user_budget,
 *   internal_user_budget_duration    an internal user's budget when /user/new
 *                                    gives none
 *
 * Each value is checked as the route checks the same request field (types,
 * ranges, durations), so a default cannot make a request fail that would
 * not fail when sent by hand; a field LiteLLM reads but Tollgate's route
 * does not take is a load error rather than a silent no-op. Defaults are
 * kept as JSON object text: reportd puts them into the request body.
 * A YAML null (`duration:` left blank, as LiteLLM's docs show) means "none".
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget_period.h"
#include "config.h"
#include "config_yaml.h"

#define ID_MAX 255                /* ids, as the routes take them (INPUT_ID_MAX) */
#define DURATION_MAX 16           /* the longest duration text the routes take */
#define LIMIT_MAX 1000000000000LL /* tpm/rpm/parallel: the routes' bound */
#define JSON_DEPTH_MAX 32         /* metadata nesting */

/* One field of a section: its name and the route field type it must have. */
enum field_type { F_MONEY, F_LIMIT, F_DURATION, F_ID, F_MODELS, F_OBJECT, F_ROLE, F_TEAMS };
struct field {
    const char *name;
    enum field_type type;
};

/* LiteLLM's _common_key_generation_helper fills exactly these. */
static const struct field KEY_DEFAULTS[] = {
    {"max_budget", F_MONEY}, {"user_id", F_ID}, {"team_id", F_ID},
    {"max_parallel_requests", F_LIMIT}, {"tpm_limit", F_LIMIT}, {"rpm_limit", F_LIMIT},
    {"budget_duration", F_DURATION}, {"duration", F_DURATION}, {"models", F_MODELS},
    {"metadata", F_OBJECT}, {NULL, 0}};

/* The fields of LiteLLM_UpperboundKeyGenerateParams. */
static const struct field KEY_CAPS[] = {
    {"max_budget", F_MONEY}, {"budget_duration", F_DURATION}, {"duration", F_DURATION},
    {"max_parallel_requests", F_LIMIT}, {"tpm_limit", F_LIMIT}, {"rpm_limit", F_LIMIT},
    {NULL, 0}};

/* The /user/new fields Tollgate takes that default_internal_user_params may set. */
static const struct field USER_DEFAULTS[] = {
    {"user_role", F_ROLE}, {"max_budget", F_MONEY}, {"budget_duration", F_DURATION},
    {"models", F_MODELS}, {"metadata", F_OBJECT}, {"teams", F_TEAMS}, {NULL, 0}};

static const char *const ROLES[] = {"proxy_admin", "proxy_admin_viewer", "internal_user",
                                    "internal_user_viewer", NULL};

/* YAML null: a plain ~, null or nothing (PyYAML's reading). */
static bool is_null(const yaml_node_t *n)
{
    const char *v = cy_scalar(n);
    return v != NULL && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
            strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0);
}

/* A scalar's text with os.environ/NAME resolved; NULL (error set) otherwise. */
static const char *scalar_text(struct loader *ld, yaml_node_t *n, const char *key, char *buf,
                               size_t len)
{
    const char *v = cy_scalar(n);
    if (v == NULL) {
        cy_fail(ld, n, key, "must be a single value");
        return NULL;
    }
    if (strncmp(v, "os.environ/", 11) != 0)
        return v;
    const char *env = cy_env(ld, v + 11);
    if (env == NULL) {
        cy_fail(ld, n, key, "environment variable %s is not set", v + 11);
        return NULL;
    }
    snprintf(buf, len, "%s", env);
    return buf;
}

static json_t *money_value(struct loader *ld, yaml_node_t *n, const char *key, money_t *out)
{
    char buf[128];
    const char *v = scalar_text(ld, n, key, buf, sizeof(buf));
    if (v == NULL)
        return NULL;
    money_t back;
    /* it travels to the route as a JSON number: it must come back unchanged */
    if (money_parse(v, out) < 0 || *out < 0 ||
        money_from_double(money_to_double(*out), &back) < 0 || back != *out) {
        cy_fail(ld, n, key, "must be a non-negative number of at most 15 significant digits, "
                "as a route's max_budget");
        return NULL;
    }
    return json_real(money_to_double(*out));
}

static json_t *limit_value(struct loader *ld, yaml_node_t *n, const char *key, int64_t *out)
{
    char buf[128], *end;
    const char *v = scalar_text(ld, n, key, buf, sizeof(buf));
    if (v == NULL)
        return NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || x < 0 || x > LIMIT_MAX) {
        cy_fail(ld, n, key, "must be an integer from 0 to %lld, as the route takes it",
                LIMIT_MAX);
        return NULL;
    }
    *out = x;
    return json_integer(x);
}

static json_t *duration_value(struct loader *ld, yaml_node_t *n, const char *key)
{
    char buf[128];
    struct period p;
    const char *v = scalar_text(ld, n, key, buf, sizeof(buf));
    if (v == NULL)
        return NULL;
    if (strlen(v) > DURATION_MAX || period_parse(v, &p) < 0) {
        cy_fail(ld, n, key, "must be a duration: Ns, Nm, Nh, Nd, Nw or Nmo (N >= 1)");
        return NULL;
    }
    return json_string(v);
}

static json_t *id_value(struct loader *ld, yaml_node_t *n, const char *key)
{
    char buf[ID_MAX + 2];
    const char *v = scalar_text(ld, n, key, buf, sizeof(buf));
    if (v == NULL)
        return NULL;
    if (*v == '\0' || strlen(v) > ID_MAX) {
        cy_fail(ld, n, key, "must be a string of 1 to %d characters", ID_MAX);
        return NULL;
    }
    return json_string(v);
}

static json_t *role_value(struct loader *ld, yaml_node_t *n, const char *key)
{
    const char *v = cy_scalar(n);
    for (size_t i = 0; v != NULL && ROLES[i] != NULL; i++)
        if (strcmp(v, ROLES[i]) == 0)
            return json_string(v);
    cy_fail(ld, n, key, "must be one of proxy_admin, proxy_admin_viewer, internal_user, "
            "internal_user_viewer");
    return NULL;
}

/* models (any strings, as the route takes them) or teams (ids of teams;
 * LiteLLM's {team_id, max_budget_in_team, user_role} form sets a member
 * budget and role Tollgate's /user/new does not, so it is refused). */
static json_t *list_value(struct loader *ld, yaml_node_t *n, const char *key, bool ids)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        cy_fail(ld, n, key, ids ? "must be a list of team ids" : "must be a list of strings");
        return NULL;
    }
    json_t *a = json_array();
    for (yaml_node_item_t *it = n->data.sequence.items.start; a != NULL &&
         it < n->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(&ld->doc, *it);
        const char *v = cy_scalar(item);
        if (v == NULL || strlen(v) > ID_MAX || (ids && *v == '\0')) {
            cy_fail(ld, item, key, ids ? "must be a list of team ids (LiteLLM's "
                    "{team_id, max_budget_in_team, user_role} form is not applied by "
                    "Tollgate's /user/new)" : "must be a list of strings of at most %d "
                    "characters", ID_MAX);
            json_decref(a);
            return NULL;
        }
        if (json_array_append_new(a, json_string(v)) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    if (a == NULL)
        cy_fail(ld, n, key, "out of memory");
    return a;
}

/* A plain scalar as PyYAML types it (int, float, bool, null), else a string. */
static json_t *scalar_json(const yaml_node_t *n)
{
    static const char *const T[] = {"true", "True", "TRUE", "yes", "Yes", "on", "On", NULL};
    static const char *const F[] = {"false", "False", "FALSE", "no", "No", "off", "Off", NULL};
    const char *v = cy_scalar(n);
    char *end;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_string(v);
    if (is_null(n))
        return json_null();
    for (size_t i = 0; T[i] != NULL; i++)
        if (strcmp(v, T[i]) == 0 || strcmp(v, F[i]) == 0)
            return json_boolean(strcmp(v, T[i]) == 0);
    errno = 0;
    long long i = strtoll(v, &end, 10);
    if (*end == '\0' && errno == 0)
        return json_integer(i);
    double d = strtod(v, &end);
    if (*end == '\0' && errno == 0 && isfinite(d))
        return json_real(d);
    return json_string(v);
}

/* A YAML mapping, sequence or scalar as JSON (metadata). */
static json_t *node_json(struct loader *ld, yaml_node_t *n, int depth)
{
    if (n == NULL || depth > JSON_DEPTH_MAX)
        return NULL;
    if (n->type == YAML_SCALAR_NODE)
        return scalar_json(n);
    json_t *out = n->type == YAML_MAPPING_NODE ? json_object() : json_array();
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             out != NULL && it < n->data.sequence.items.top; it++)
            if (json_array_append_new(out, node_json(ld, yaml_document_get_node(&ld->doc, *it),
                                                     depth + 1)) < 0) {
                json_decref(out);
                out = NULL;
            }
        return out;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         out != NULL && p < n->data.mapping.pairs.top; p++) {
        const char *k = cy_scalar(yaml_document_get_node(&ld->doc, p->key));
        json_t *v = node_json(ld, yaml_document_get_node(&ld->doc, p->value), depth + 1);
        if (k == NULL || v == NULL || json_object_set_new(out, k, v) < 0) {
            json_decref(v);
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

static json_t *object_value(struct loader *ld, yaml_node_t *n, const char *key)
{
    json_t *o = n->type == YAML_MAPPING_NODE ? node_json(ld, n, 0) : NULL;
    if (o == NULL)
        cy_fail(ld, n, key, "must be a mapping (an object, as the route's metadata), with "
                "string keys, nested at most %d deep", JSON_DEPTH_MAX);
    return o;
}

/* The route-typed JSON value of one field; caps (may be NULL) gets the
 * numbers of an upperbound. */
static json_t *field_value(struct loader *ld, yaml_node_t *n, const struct field *f,
                           const char *key, struct key_caps *caps)
{
    money_t m = 0;
    int64_t x = 0;
    json_t *v = NULL;
    switch (f->type) {
    case F_MONEY: v = money_value(ld, n, key, &m); break;
    case F_LIMIT: v = limit_value(ld, n, key, &x); break;
    case F_DURATION: v = duration_value(ld, n, key); break;
    case F_ID: v = id_value(ld, n, key); break;
    case F_ROLE: v = role_value(ld, n, key); break;
    case F_MODELS: v = list_value(ld, n, key, false); break;
    case F_TEAMS: v = list_value(ld, n, key, true); break;
    case F_OBJECT: v = object_value(ld, n, key); break;
    }
    if (v == NULL || caps == NULL)
        return v;
    if (f->type == F_MONEY) {
        caps->has_max_budget = true;
        caps->max_budget = m;
    } else if (f->type == F_LIMIT) {
        bool tpm = strcmp(f->name, "tpm_limit") == 0, rpm = strcmp(f->name, "rpm_limit") == 0;
        *(tpm ? &caps->has_tpm : rpm ? &caps->has_rpm : &caps->has_parallel) = true;
        *(tpm ? &caps->tpm : rpm ? &caps->rpm : &caps->parallel) = x;
    }
    return v;
}

static const struct field *field_find(const struct field *fields, const char *name)
{
    for (size_t i = 0; name != NULL && fields[i].name != NULL; i++)
        if (strcmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

/* The names of fields, comma-separated, for an error. */
static void field_names(const struct field *fields, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; fields[i].name != NULL && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s", i ? ", " : "", fields[i].name);
}

/* Reads section `name` of litellm_settings into *out (a JSON object of the
 * fields set; NULL when the section is absent). skip: a key LiteLLM reads
 * but that has nothing to act on in Tollgate (may be NULL). */
static int parse_params(struct loader *ld, yaml_node_t *ls, const char *name,
                        const struct field *fields, const char *skip, json_t **out,
                        struct key_caps *caps)
{
    char key[160], names[256];
    yaml_node_t *sec = cy_map_get(ld, ls, name);
    *out = NULL;
    snprintf(key, sizeof(key), "litellm_settings.%s", name);
    if (sec == NULL || is_null(sec))
        return 0;
    if (cy_want_map(ld, sec, key) < 0)
        return -1;
    if ((*out = json_object()) == NULL)
        return cy_fail(ld, sec, key, "out of memory");
    field_names(fields, names, sizeof(names));
    for (yaml_node_pair_t *p = sec->data.mapping.pairs.start; p < sec->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(&ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(&ld->doc, p->value);
        const char *k = cy_scalar(kn);
        const struct field *f = field_find(fields, k);
        snprintf(key, sizeof(key), "litellm_settings.%s.%s", name, k != NULL ? k : "?");
        if (skip != NULL && k != NULL && strcmp(k, skip) == 0)
            continue;
        if (f == NULL)
            return cy_fail(ld, kn, key, "not applied by Tollgate, and a default or cap of "
                           "keys or users is never ignored; it takes: %s", names);
        if (is_null(vn))
            continue;
        json_t *v = field_value(ld, vn, f, key, caps);
        if (v == NULL || json_object_set_new(*out, f->name, v) < 0)
            return v == NULL ? -1 : cy_fail(ld, vn, key, "out of memory");
    }
    return 0;
}

long long config_duration_s(const char *text, long long now_s)
{
    time_t now = (time_t)now_s;
    static const long unit_s[] = {[PERIOD_SECOND] = 1, [PERIOD_MINUTE] = 60,
                                  [PERIOD_HOUR] = 3600, [PERIOD_DAY] = 86400,
                                  [PERIOD_WEEK] = 7 * 86400};
    struct period p;
    struct tm tm;
    if (period_parse(text, &p) < 0)
        return -1;
    if (p.unit != PERIOD_MONTH)
        return (long long)p.n * unit_s[p.unit];
    if (gmtime_r(&now, &tm) == NULL)
        return -1;
    int mday = tm.tm_mday;
    tm.tm_mon += (int)p.n;
    tm.tm_mday = 1;
    time_t first = timegm(&tm); /* the 1st of the target month, normalized */
    if (first == (time_t)-1 || gmtime_r(&first, &tm) == NULL)
        return -1;
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = tm.tm_year + 1900, last = days[tm.tm_mon] +
        (tm.tm_mon == 1 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    return (long long)(first - now) + (long long)((mday < last ? mday : last) - 1) * 86400;
}

/* A default above its cap would make every /key/generate that leaves the
 * field out fail (LiteLLM fills the default first, then checks the cap). */
static int default_over_cap(struct loader *ld, yaml_node_t *ls, json_t *defaults, json_t *caps)
{
    const char *name;
    json_t *cap;
    long long now = (long long)time(NULL);
    json_object_foreach(caps, name, cap) {
        json_t *def = json_object_get(defaults, name);
        bool over = def != NULL && (json_is_string(cap)
                                        ? config_duration_s(json_string_value(def), now) >
                                              config_duration_s(json_string_value(cap), now)
                                        : json_number_value(def) > json_number_value(cap));
        if (over)
            return cy_fail(ld, cy_map_get(ld, cy_map_get(ld, ls, "default_key_generate_params"),
                                          name),
                           "litellm_settings.default_key_generate_params", "%s is over "
                           "upperbound_key_generate_params.%s: every /key/generate that leaves "
                           "it out would be refused", name, name);
    }
    return 0;
}

/* json -> text for the config (NULL stays NULL). */
static int keep_text(struct loader *ld, yaml_node_t *at, json_t *o, char **out)
{
    *out = NULL;
    if (o == NULL)
        return 0;
    *out = json_dumps(o, JSON_COMPACT);
    return *out != NULL ? 0 : cy_fail(ld, at, "litellm_settings", "out of memory");
}

static int parse_caps_text(struct loader *ld, yaml_node_t *at, json_t *caps, struct key_caps *c)
{
    const char *b = json_string_value(json_object_get(caps, "budget_duration"));
    const char *d = json_string_value(json_object_get(caps, "duration"));
    if ((b != NULL && (c->budget_duration = strdup(b)) == NULL) ||
        (d != NULL && (c->duration = strdup(d)) == NULL))
        return cy_fail(ld, at, "litellm_settings.upperbound_key_generate_params", "out of memory");
    return 0;
}

/* max_internal_user_budget, else default_max_internal_user_budget (LiteLLM's
 * proxy_server.py takes the latter only when the former is unset);
 * internal_user_budget_duration. */
static int parse_user_budget(struct loader *ld, yaml_node_t *ls, struct key_settings *k)
{
    static const char *const names[] = {"default_max_internal_user_budget",
                                        "max_internal_user_budget", NULL};
    char key[96];
    for (size_t i = 0; names[i] != NULL; i++) {
        yaml_node_t *n = cy_map_get(ld, ls, names[i]);
        money_t m = 0;
        snprintf(key, sizeof(key), "litellm_settings.%s", names[i]);
        if (n == NULL || is_null(n))
            continue;
        json_t *v = money_value(ld, n, key, &m);
        if (v == NULL)
            return -1;
        json_decref(v);
        k->has_user_budget = true; /* the second name overrides the first */
        k->user_budget = m;
    }
    yaml_node_t *dn = cy_map_get(ld, ls, "internal_user_budget_duration");
    if (dn == NULL || is_null(dn))
        return 0;
    json_t *d = duration_value(ld, dn, "litellm_settings.internal_user_budget_duration");
    if (d == NULL)
        return -1;
    k->user_budget_duration = strdup(json_string_value(d));
    json_decref(d);
    return k->user_budget_duration != NULL ? 0 : cy_fail(ld, dn, "litellm_settings", "out of memory");
}

int config_parse_keys(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    struct key_settings *k = &cfg->keys;
    yaml_node_t *ls = cy_map_get(ld, root, "litellm_settings");
    json_t *kd = NULL, *kc = NULL, *ud = NULL;
    int rc = -1;
    if (ls == NULL || ls->type != YAML_MAPPING_NODE)
        return 0;
    if (parse_params(ld, ls, "default_key_generate_params", KEY_DEFAULTS, NULL, &kd, NULL) < 0 ||
        parse_params(ld, ls, "upperbound_key_generate_params", KEY_CAPS, NULL, &kc,
                     &k->caps) < 0 ||
        parse_params(ld, ls, "default_internal_user_params", USER_DEFAULTS,
                     "available_teams", &ud, NULL) < 0 ||
        (kd != NULL && kc != NULL && default_over_cap(ld, ls, kd, kc) < 0) ||
        (kc != NULL && parse_caps_text(ld, ls, kc, &k->caps) < 0) ||
        keep_text(ld, ls, kd, &k->key_defaults) < 0 ||
        keep_text(ld, ls, ud, &k->user_defaults) < 0 || parse_user_budget(ld, ls, k) < 0)
        goto out;
    rc = 0;
out:
    json_decref(kd);
    json_decref(kc);
    json_decref(ud);
    return rc;
}

void config_keys_free(struct key_settings *k)
{
    free(k->key_defaults);
    free(k->user_defaults);
    free(k->user_budget_duration);
    free(k->caps.budget_duration);
    free(k->caps.duration);
    memset(k, 0, sizeof(*k));
}
