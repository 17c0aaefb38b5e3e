/* test_config_doc.c - keeps docs/litellm-config-keys.md true to the loader.
 *
 * The page has one table per config section; a `## ` heading names the
 * section by its first `backticked` word (none: the top level), and each row
 * starts `| `key`, `key2` | status |`. Checked, per section and key:
 *
 *   - a key the page calls refused is refused by config_refused_why, and every
 *     row of config_refused.c's table is on the page as refused;
 *   - a key the page calls anything else is not refused;
 *   - a key the page calls honoured is in the loader's known list of its
 *     section (config.c, config_router.c; for model_info and
 *     environment_variables, which have none, it is named as a "string" in a
 *     libtollgate/config*.c file), and every key of those lists is on the page
 *     as honoured, as is every model_info key read as `info, "KEY"` and every
 *     variable read as `cy_env(ld, "NAME")`;
 *   - a key is on the page once per section, with one of the four statuses.
 *
 * Backticked words that are not plain names (`supports_*`, `*_flex`) are
 * families and only described. Usage: test_config_doc PAGE LIBTOLLGATE_DIR
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config_refused.h"

#define MAX_ROWS 4096
#define MAX_LIST 128

/* The sections of the page, with the loader's known list where there is one. */
static const struct {
    const char *section, *file, *array; /* file NULL: no list (a "string" anywhere) */
} SECTIONS[] = {
    {"", "config.c", "top_keys"},
    {"model_list", "config.c", "entry_keys"},
    {"litellm_params", "config.c", "param_keys"},
    {"model_info", NULL, NULL},
    {"litellm_settings", "config_router.c", "litellm_keys"},
    {"router_settings", "config_router.c", "router_keys"},
    {"general_settings", "config.c", "known"},
    {"environment_variables", NULL, NULL},
};
#define N_SECTIONS (sizeof(SECTIONS) / sizeof(SECTIONS[0]))

static const char *const STATUSES[] = {"honoured", "refused", "not applicable", "not supported",
                                       NULL};

struct row {
    char section[64], key[128], status[64];
    int line;
};

static struct row rows[MAX_ROWS];
static size_t n_rows;
static char *sources;    /* every libtollgate/config*.c, concatenated */
static size_t rows_in[N_SECTIONS];

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)len + 1)) != NULL) {
        if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        } else {
            buf[len] = '\0';
        }
    }
    fclose(f);
    return buf;
}

static int section_index(const char *section)
{
    for (size_t i = 0; i < N_SECTIONS; i++)
        if (strcmp(SECTIONS[i].section, section) == 0)
            return (int)i;
    return -1;
}

static bool plain_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

/* The first `word` of s (up to end) into out; the position after it, or NULL. */
static const char *next_ticked(const char *s, const char *end, char *out, size_t len)
{
    const char *a = memchr(s, '`', (size_t)(end - s));
    const char *b = a != NULL ? memchr(a + 1, '`', (size_t)(end - a - 1)) : NULL;
    if (b == NULL)
        return NULL;
    snprintf(out, len, "%.*s", (int)(b - a - 1), a + 1);
    return b + 1;
}

/* The end of the cell starting at s: its unescaped '|', or NULL. */
static const char *cell_end(const char *s)
{
    for (; *s != '\0' && *s != '\n'; s++) {
        if (*s == '\\' && s[1] != '\0')
            s++;
        else if (*s == '|')
            return s;
    }
    return NULL;
}

static void add_row(const char *section, const char *key, const char *status, int line)
{
    if (n_rows == MAX_ROWS) {
        CHECK(false, "more than %d keys", MAX_ROWS);
        return;
    }
    struct row *r = &rows[n_rows++];
    snprintf(r->section, sizeof(r->section), "%s", section);
    snprintf(r->key, sizeof(r->key), "%s", key);
    snprintf(r->status, sizeof(r->status), "%s", status);
    r->line = line;
}

/* One table row "| keys | status | ... |" of section. */
static void parse_row(const char *line, int lineno, const char *section)
{
    const char *k0 = line + 1, *k1 = cell_end(k0);
    const char *s1 = k1 != NULL ? cell_end(k1 + 1) : NULL;
    char status[64], word[128];
    if (s1 == NULL) {
        CHECK(false, "line %d: a row needs a key and a status cell", lineno);
        return;
    }
    const char *s0 = k1 + 1;
    while (*s0 == ' ')
        s0++;
    size_t slen = (size_t)(s1 - s0);
    while (slen > 0 && s0[slen - 1] == ' ')
        slen--;
    snprintf(status, sizeof(status), "%.*s", (int)slen, s0);
    bool known = false;
    for (size_t i = 0; STATUSES[i] != NULL; i++)
        known |= strcmp(status, STATUSES[i]) == 0;
    CHECK(known, "line %d: status '%s' is not one of honoured, refused, not applicable, "
          "not supported", lineno, status);
    int names = 0;
    for (const char *p = k0; (p = next_ticked(p, k1, word, sizeof(word))) != NULL;) {
        if (!plain_name(word))
            continue; /* a family such as supports_* */
        add_row(section, word, status, lineno);
        names++;
    }
    CHECK(names > 0 || strchr(status, ' ') != NULL, "line %d: an %s row names no key", lineno,
          status);
}

/* Reads the page's tables into rows[]. */
static int parse_page(const char *path)
{
    char *text = slurp(path), section[64] = "";
    if (text == NULL) {
        CHECK(false, "cannot read %s", path);
        return -1;
    }
    int lineno = 1;
    for (char *line = text; *line != '\0'; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strncmp(line, "## ", 3) == 0) {
            char *end = line + strlen(line);
            if (next_ticked(line, end, section, sizeof(section)) == NULL)
                section[0] = '\0';
        } else if (strncmp(line, "| ", 2) == 0 && strncmp(line, "| key |", 7) != 0) {
            int si = section_index(section);
            CHECK(si >= 0, "line %d: a table under '## %s', which is no config section", lineno,
                  section);
            if (si >= 0) {
                rows_in[si]++;
                parse_row(line, lineno, section);
            }
        }
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    free(text);
    return 0;
}

static const struct row *find_row(const char *section, const char *key)
{
    for (size_t i = 0; i < n_rows; i++)
        if (strcmp(rows[i].section, section) == 0 && strcmp(rows[i].key, key) == 0)
            return &rows[i];
    return NULL;
}

/* The "string" literals of `array[] = {` in file, up to its NULL, into out. */
static size_t read_list(const char *dir, const char *file, const char *array, char **out)
{
    char path[1024], head[96];
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    snprintf(head, sizeof(head), " %s[] = {", array);
    char *text = slurp(path);
    char *p = text != NULL ? strstr(text, head) : NULL;
    char *end = p != NULL ? strstr(p, "NULL") : NULL;
    CHECK(end != NULL, "%s has no list %s[] = {..., NULL}", path, array);
    while (end != NULL && (p = strchr(p, '"')) != NULL && p < end && n < MAX_LIST) {
        char *q = strchr(p + 1, '"');
        if (q == NULL)
            break;
        if ((out[n] = strndup(p + 1, (size_t)(q - p - 1))) == NULL)
            break;
        n++;
        p = q + 1;
    }
    free(text);
    return n;
}

/* Every libtollgate/config*.c into sources. */
static void read_sources(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t len = 0;
    CHECK(d != NULL, "cannot open %s", dir);
    while (d != NULL && (e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        char path[1024];
        if (strncmp(e->d_name, "config", 6) != 0 || nl < 3 || strcmp(e->d_name + nl - 2, ".c") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *text = slurp(path);
        size_t tl = text != NULL ? strlen(text) : 0;
        char *more = text != NULL ? realloc(sources, len + tl + 1) : NULL;
        CHECK(more != NULL, "cannot read %s", path);
        if (more != NULL) {
            sources = more;
            memcpy(sources + len, text, tl + 1);
            len += tl;
        }
        free(text);
    }
    if (d != NULL)
        closedir(d);
}

/* Each key on the page against config_refused.h; honoured ones against the lists. */
static void check_page_keys(char *const lists[][MAX_LIST], const size_t *n_lists)
{
    for (size_t i = 0; i < n_rows; i++) {
        const struct row *r = &rows[i];
        const char *why = config_refused_why(r->section, r->key, NULL);
        bool refused = strcmp(r->status, "refused") == 0;
        CHECK(find_row(r->section, r->key) == r, "line %d: %s.%s is on the page twice",
              r->line, r->section, r->key);
        CHECK(refused == (why != NULL), "line %d: the page says %s.%s is %s, the loader %s it",
              r->line, r->section, r->key, r->status, why != NULL ? "refuses" : "does not refuse");
        if (strcmp(r->status, "honoured") != 0)
            continue;
        int si = section_index(r->section);
        bool read = false;
        char quoted[sizeof(r->key) + 2];
        snprintf(quoted, sizeof(quoted), "\"%s\"", r->key);
        if (SECTIONS[si].file == NULL)
            read = sources != NULL && strstr(sources, quoted) != NULL;
        for (size_t k = 0; SECTIONS[si].file != NULL && k < n_lists[si]; k++)
            read |= strcmp(lists[si][k], r->key) == 0;
        CHECK(read, "line %d: the page says %s.%s is honoured, the loader does not read it",
              r->line, r->section, r->key);
    }
}

/* Sections without a list: each "NAME" the sources read after call (a
 * model_info getter's `info, "`, `cy_env(ld, "`) is on the page as honoured. */
static void check_read_calls(const char *call, const char *section)
{
    char name[128];
    for (const char *p = sources; p != NULL && (p = strstr(p, call)) != NULL;) {
        p += strlen(call);
        size_t len = strcspn(p, "\"");
        snprintf(name, sizeof(name), "%.*s", (int)len, p);
        const struct row *r = find_row(section, name);
        CHECK(r != NULL && strcmp(r->status, "honoured") == 0,
              "the loader reads %s.%s; the page %s", section, name,
              r == NULL ? "does not list it" : r->status);
    }
}

/* The converse: every refused row and every known key is on the page as such. */
static void check_code_keys(char *const lists[][MAX_LIST], const size_t *n_lists)
{
    const char *section, *key;
    for (size_t i = 0; config_refused_at(i, &section, &key) == 0; i++) {
        const struct row *r = find_row(section, key);
        CHECK(r != NULL && strcmp(r->status, "refused") == 0,
              "config_refused.c refuses %s.%s; the page %s", section, key,
              r == NULL ? "does not list it" : r->status);
    }
    for (size_t si = 0; si < N_SECTIONS; si++) {
        for (size_t k = 0; k < n_lists[si]; k++) {
            const struct row *r = find_row(SECTIONS[si].section, lists[si][k]);
            CHECK(r != NULL && strcmp(r->status, "honoured") == 0,
                  "%s's %s reads %s.%s; the page %s", SECTIONS[si].file, SECTIONS[si].array,
                  SECTIONS[si].section, lists[si][k], r == NULL ? "does not list it" : r->status);
        }
        CHECK(rows_in[si] > 0, "no table for section '%s'", SECTIONS[si].section);
    }
    check_read_calls("info, \"", "model_info");
    check_read_calls("cy_env(ld, \"", "environment_variables");
}

int main(int argc, char **argv)
{
    static char *lists[N_SECTIONS][MAX_LIST];
    size_t n_lists[N_SECTIONS] = {0};
    if (argc != 3) {
        fprintf(stderr, "usage: %s PAGE LIBTOLLGATE_DIR\n", argv[0]);
        return 2;
    }
    if (parse_page(argv[1]) == 0) {
        for (size_t si = 0; si < N_SECTIONS; si++)
            if (SECTIONS[si].file != NULL)
                n_lists[si] = read_list(argv[2], SECTIONS[si].file, SECTIONS[si].array,
                                        lists[si]);
        read_sources(argv[2]);
        check_page_keys(lists, n_lists);
        check_code_keys(lists, n_lists);
    }
    for (size_t si = 0; si < N_SECTIONS; si++)
        for (size_t k = 0; k < n_lists[si]; k++)
            free(lists[si][k]);
    free(sources);
    printf("%zu keys on the page, %zu refused by the loader\n", n_rows, config_refused_count());
    return check_summary("config_doc");
}
