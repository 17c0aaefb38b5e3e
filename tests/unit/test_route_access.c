/* test_route_access.c - general_settings' route controls: the matcher, the
 * route groups, what public_routes may list, and the lists read from a config.
 *
 * Usage: test_route_access CONFIG CASES. CASES (tests/data/route_access.tsv)
 * holds one case a line; the allowed/admin_only ones ask CONFIG's lists.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "route_access.h"

/* One line of CASES: "kind<TAB>a<TAB>[b<TAB>]want". */
static void run_case(const struct config *cfg, char *line, int lineno)
{
    char *f[4];
    int n = 0;
    for (char *tok = strtok(line, "\t\n"); tok != NULL && n < 4; tok = strtok(NULL, "\t\n"))
        f[n++] = tok;
    bool got, want = n > 0 && strcmp(f[n - 1], "1") == 0;
    if (n == 4 && strcmp(f[0], "match") == 0) {
        got = route_pattern_match(f[1], f[2]);
    } else if (n == 4 && strcmp(f[0], "group") == 0) {
        const struct route_group *g = route_group_find(f[1]);
        CHECK(g != NULL, "line %d: no group %s", lineno, f[1]);
        got = g != NULL && route_group_has(g, f[2]);
    } else if (n == 3 && strcmp(f[0], "allowed") == 0) {
        got = route_access_allows(&cfg->access, f[1]);
    } else if (n == 3 && strcmp(f[0], "admin_only") == 0) {
        got = route_access_admin_only(&cfg->access, f[1]);
    } else if (n == 3 && strcmp(f[0], "public") == 0) {
        got = route_access_public(&cfg->access, f[1]);
    } else if (n == 3 && strcmp(f[0], "may_be_public") == 0) {
        got = route_access_may_be_public(f[1]);
    } else {
        CHECK(0, "line %d: malformed case", lineno);
        return;
    }
    CHECK(got == want, "line %d: %s %s %s: got %d", lineno, f[0], f[1], n == 4 ? f[2] : "",
          got);
}

/* No lists: every route allowed, none admin-only; an empty allowed_routes
 * (set, but listing nothing) lets nothing through, as in LiteLLM. */
static void check_unset_and_empty(void)
{
    struct route_access ra = {0};
    CHECK(route_access_allows(&ra, "/chat/completions"), "unset allowed_routes allows all");
    CHECK(!route_access_admin_only(&ra, "/key/generate"), "unset admin_only_routes: none");
    ra.allowed.set = true;
    CHECK(!route_access_allows(&ra, "/chat/completions"), "empty allowed_routes allows none");
    CHECK(route_list_add(&ra.admin_only, "/key/*", NULL) == 0 &&
              route_list_add(&ra.admin_only, NULL, route_group_find("info_routes")) == 0,
          "rules added");
    CHECK(route_access_admin_only(&ra, "/key/x") && route_access_admin_only(&ra, "/v1/models"),
          "route and group rules both hold");
    route_access_free(&ra);
    CHECK(ra.admin_only.n == 0 && ra.admin_only.rules == NULL, "freed lists are empty");
    CHECK(route_group_find("ui_routes") == NULL, "groups Tollgate does not know are unknown");
    CHECK_STR(route_group_name(route_group_find("llm_api_routes")), "llm_api_routes");
}

int main(int argc, char **argv)
{
    char err[1024], line[1024];
    if (argc != 3) {
        fprintf(stderr, "usage: test_route_access CONFIG CASES\n");
        return 2;
    }
    struct config *cfg = config_load(argv[1], err, sizeof(err));
    CHECK(cfg != NULL, "%s should load: %s", argv[1], err);
    FILE *f = fopen(argv[2], "r");
    CHECK(f != NULL, "open %s", argv[2]);
    int lineno = 0, cases = 0;
    while (cfg != NULL && f != NULL && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        run_case(cfg, line, lineno);
        cases++;
    }
    if (f != NULL)
        fclose(f);
    CHECK(cases >= 50, "%d cases run", cases);
    CHECK(cfg == NULL || (cfg->access.allowed.n == 4 && cfg->access.admin_only.n == 3 &&
                          cfg->access.public_routes.n == 2),
          "lists read in full");
    config_free(cfg);
    check_unset_and_empty();
    return check_summary("test_route_access");
}
