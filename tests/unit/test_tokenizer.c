/* test_tokenizer.c - the BPE tokenizer against tiktoken-compatible vectors.
 *
 * Usage: test_tokenizer VECTORS.jsonl DATA_DIR
 *
 * Every line of the JSONL file is {"text", "o200k_base": [ids],
 * "cl100k_base": [ids]}; both encodings must give exactly those ids, the
 * count must agree and decoding must give the text back. Then, without
 * vectors: invalid UTF-8 round trips, megabyte-long pieces, model names,
 * load errors, concurrent encoding, and a throughput printout (MB/s of
 * English prose; informational, never asserted).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "tokenizer.h"

static const enum tokenizer_encoding encodings[] = {TOKENIZER_O200K, TOKENIZER_CL100K};
#define N_ENC 2

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Encodes, checks count and decode agree; returns the ids (caller frees) or
 * NULL after recording a failure. */
static uint32_t *encode_checked(enum tokenizer_encoding enc, const char *text, size_t len,
                                size_t *n, const char *what)
{
    char err[256] = "";
    uint32_t *ids = NULL;
    if (tokenizer_encode(enc, text, len, &ids, n, err, sizeof(err)) < 0) {
        CHECK(0, "%s %s: encode failed: %s", tokenizer_encoding_name(enc), what, err);
        return NULL;
    }
    int64_t count = tokenizer_count(enc, text, len, err, sizeof(err));
    CHECK(count == (int64_t)*n, "%s %s: count %lld, encode %zu", tokenizer_encoding_name(enc),
          what, (long long)count, *n);
    char *back = NULL;
    size_t backlen = 0;
    int rc = tokenizer_decode_bytes(enc, ids, *n, &back, &backlen, err, sizeof(err));
    CHECK(rc == 0 && backlen == len && memcmp(back, text, len) == 0,
          "%s %s: decoding does not give the input back (%s)", tokenizer_encoding_name(enc), what,
          rc == 0 ? "bytes differ" : err);
    free(back);
    return ids;
}

static void check_vector(enum tokenizer_encoding enc, const char *text, size_t len, json_t *want,
                         size_t lineno)
{
    char what[64];
    snprintf(what, sizeof(what), "vector line %zu", lineno);
    size_t n = 0;
    uint32_t *ids = encode_checked(enc, text, len, &n, what);
    if (ids == NULL)
        return;
    size_t wn = json_array_size(want), i = 0;
    while (i < n && i < wn && (json_int_t)ids[i] == json_integer_value(json_array_get(want, i)))
        i++;
    CHECK(i == n && i == wn, "%s %s (\"%.60s\"): %zu ids, want %zu; first difference at %zu "
          "(got %ld, want %ld)", tokenizer_encoding_name(enc), what, text, n, wn, i,
          i < n ? (long)ids[i] : -1L,
          i < wn ? (long)json_integer_value(json_array_get(want, i)) : -1L);
    free(ids);
}

static size_t run_vectors(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (f == NULL)
        return 0;
    char *line = NULL;
    size_t cap = 0, lineno = 0, vectors = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (got == 1 && line[0] == '\n')
            continue;
        json_error_t jerr;
        json_t *v = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &jerr);
        json_t *text = json_object_get(v, "text");
        CHECK(json_is_string(text), "%s:%zu: not a vector: %s", path, lineno, jerr.text);
        if (json_is_string(text)) {
            vectors++;
            for (int e = 0; e < N_ENC; e++) {
                json_t *want = json_object_get(v, tokenizer_encoding_name(encodings[e]));
                CHECK(json_is_array(want), "%s:%zu: no %s ids", path, lineno,
                      tokenizer_encoding_name(encodings[e]));
                if (json_is_array(want))
                    check_vector(encodings[e], json_string_value(text), json_string_length(text),
                                 want, lineno);
            }
        }
        json_decref(v);
    }
    free(line);
    fclose(f);
    return vectors;
}

static void test_invalid_utf8(void)
{
    static const struct {
        const char *s;
        size_t len;
    } cases[] = {
#define C(lit) {lit, sizeof(lit) - 1}
        C("\xff\xfe abc \xc3"),
        C("\xff"),
        C("\x80\x80\x80"),
        C("h\xc3\xa9llo\x80w\xc3\xb6rld"),
        C("\xc0\xaf overlong"),
        C("surrogate \xed\xa0\x80 half"),
        C("cut emoji \xf0\x9f\x98"),
        C("\xf4\x90\x80\x80 beyond U+10FFFF"),
        C("nul\0inside\0\0"),
        C("   \xfe   \xff\n\n\xc3"),
        C("I'\xffm DON'\x80T 123\xe2\x82 456"),
        C("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe6\x97"), /* Japanese, last char cut */
#undef C
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int e = 0; e < N_ENC; e++) {
            char what[32];
            snprintf(what, sizeof(what), "invalid UTF-8 #%zu", i);
            size_t n = 0;
            uint32_t *ids = encode_checked(encodings[e], cases[i].s, cases[i].len, &n, what);
            CHECK(ids != NULL && n > 0, "%s", what);
            free(ids);
        }
    }
    /* A lone invalid byte is exactly its single-byte token. */
    size_t n = 0;
    uint32_t *ids = encode_checked(TOKENIZER_O200K, "\xff", 1, &n, "0xff");
    CHECK(ids != NULL && n == 1, "0xff: %zu ids", n);
    free(ids);
}

static uint32_t *append_ids(uint32_t *acc, size_t *n, enum tokenizer_encoding enc, const char *s)
{
    size_t k = 0;
    uint32_t *ids = encode_checked(enc, s, strlen(s), &k, s);
    uint32_t *grown = realloc(acc, (*n + k + 1) * sizeof(*acc));
    if (ids != NULL && grown != NULL) {
        memcpy(grown + *n, ids, k * sizeof(*ids));
        *n += k;
    }
    free(ids);
    return grown;
}

/* U+0085 (NEL) is whitespace for tiktoken's regex engine (Unicode
 * White_Space), not for PCRE2's \s nor JavaScript's: "a NEL NEL b" splits
 * as "a" | NEL | NEL "b", like "a\t\tb" does. */
static void test_nel_is_whitespace(void)
{
    for (int e = 0; e < N_ENC; e++) {
        size_t n = 0, wn = 0;
        uint32_t *ids = encode_checked(encodings[e], "a\xc2\x85\xc2\x85" "b", 6, &n, "NEL");
        uint32_t *want = NULL;
        want = append_ids(want, &wn, encodings[e], "a");
        want = append_ids(want, &wn, encodings[e], "\xc2\x85");
        want = append_ids(want, &wn, encodings[e], "\xc2\x85" "b");
        CHECK(ids != NULL && want != NULL && n == wn && memcmp(ids, want, n * sizeof(*ids)) == 0,
              "%s: NEL split (%zu ids, want %zu)", tokenizer_encoding_name(encodings[e]), n, wn);
        free(ids);
        free(want);
    }
}

/* Megabyte-long single pieces: must finish fast and round-trip. */
static void test_long_pieces(void)
{
    static const struct {
        const char *unit, *name;
    } kinds[] = {
        {"a", "letters"},      {"ab", "letter pairs"},   {"Zq", "mixed case"},
        {" ", "spaces"},       {"7", "digits"},          {"!", "punctuation"},
        {"\xe8\xaa\x9e", "CJK"}, {"\xf0\x9f\x8e\x89", "emoji"}, {"\n", "newlines"},
        {"\xff", "invalid bytes"},
    };
    const size_t size = 1u << 20;
    char *buf = malloc(size + 8);
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        size_t ul = strlen(kinds[k].unit), len = 0;
        while (len + ul <= size) {
            memcpy(buf + len, kinds[k].unit, ul);
            len += ul;
        }
        for (int e = 0; e < N_ENC; e++) {
            size_t n = 0;
            char what[64];
            snprintf(what, sizeof(what), "1 MB of %s", kinds[k].name);
            double t0 = now();
            uint32_t *ids = encode_checked(encodings[e], buf, len, &n, what);
            double dt = now() - t0;
            CHECK(ids != NULL && n > 0, "%s", what);
            printf("  %-11s %-22s %8zu tokens  %.3f s (encode + count + decode)\n",
                   tokenizer_encoding_name(encodings[e]), what, n, dt);
            free(ids);
        }
    }
    free(buf);
}

static void test_models(void)
{
    static const struct {
        const char *model;
        enum tokenizer_encoding enc;
        bool estimate;
    } cases[] = {
        {"gpt-4o", TOKENIZER_O200K, false},
        {"gpt-4o-mini-2024-07-18", TOKENIZER_O200K, false},
        {"openai/gpt-4o", TOKENIZER_O200K, false},
        {"azure/gpt-4.1-nano", TOKENIZER_O200K, false},
        {"gpt-4.5-preview", TOKENIZER_O200K, false},
        {"o1", TOKENIZER_O200K, false},
        {"o1-mini", TOKENIZER_O200K, false},
        {"openai/o3-mini", TOKENIZER_O200K, false},
        {"o4-mini", TOKENIZER_O200K, false},
        {"gpt-5", TOKENIZER_O200K, false},
        {"gpt-5.1-codex", TOKENIZER_O200K, false},
        {"chatgpt-4o-latest", TOKENIZER_O200K, false},
        {"ft:gpt-4o-mini:acme::abc123", TOKENIZER_O200K, false},
        {"GPT-4O", TOKENIZER_O200K, false},
        {"gpt-4", TOKENIZER_CL100K, false},
        {"gpt-4-turbo", TOKENIZER_CL100K, false},
        {"gpt-4-0613", TOKENIZER_CL100K, false},
        {"azure/gpt-35-turbo", TOKENIZER_CL100K, false},
        {"gpt-3.5-turbo-0125", TOKENIZER_CL100K, false},
        {"text-embedding-ada-002", TOKENIZER_CL100K, false},
        {"openai/text-embedding-3-small", TOKENIZER_CL100K, false},
        {"text-embedding-3-large", TOKENIZER_CL100K, false},
        {"claude-3-5-sonnet", TOKENIZER_CL100K, true},
        {"groq/llama-3.1-8b-instant", TOKENIZER_CL100K, true},
        {"", TOKENIZER_CL100K, true},
        {NULL, TOKENIZER_CL100K, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool est = !cases[i].estimate;
        enum tokenizer_encoding got = tokenizer_for_model(cases[i].model, &est);
        CHECK(got == cases[i].enc && est == cases[i].estimate, "model %s: %s%s",
              cases[i].model ? cases[i].model : "(null)", tokenizer_encoding_name(got),
              est ? " (estimate)" : "");
    }
    CHECK(tokenizer_for_model("gpt-4o", NULL) == TOKENIZER_O200K, "NULL estimate pointer");
}

static void write_gz(const char *path, const char *content, size_t len)
{
    gzFile gz = gzopen(path, "wb");
    if (gz != NULL) {
        gzwrite(gz, content, (unsigned)len);
        gzclose(gz);
    }
}

/* Broken data directories fail with a message, and a good one works again. */
static void test_load_errors(const char *data_dir)
{
    char dir[] = "/tmp/test_tokenizer.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], err[256];
    tokenizer_cleanup();

    tokenizer_set_data_dir("/nonexistent/tokenizers");
    err[0] = '\0';
    CHECK(tokenizer_count(TOKENIZER_O200K, "hi", 2, err, sizeof(err)) == -1 &&
              strstr(err, "o200k_base.tiktoken.gz") != NULL,
          "missing file: %s", err);

    tokenizer_set_data_dir(dir);
    snprintf(path, sizeof(path), "%s/o200k_base.tiktoken.gz", dir);
    write_gz(path, "IQ== 0\nIg== 1\n", 14); /* well formed, far too short */
    err[0] = '\0';
    CHECK(tokenizer_count(TOKENIZER_O200K, "hi", 2, err, sizeof(err)) == -1 &&
              strstr(err, "expected more than 100000") != NULL,
          "short file: %s", err);

    write_gz(path, "IQ== 0\nnot base64!\n", 19);
    err[0] = '\0';
    CHECK(tokenizer_count(TOKENIZER_O200K, "hi", 2, err, sizeof(err)) == -1 &&
              strstr(err, ":2:") != NULL,
          "malformed line: %s", err);

    /* A truncated copy of the real file: the gzip stream ends early. */
    char real[512];
    snprintf(real, sizeof(real), "%s/cl100k_base.tiktoken.gz", data_dir);
    FILE *in = fopen(real, "rb");
    snprintf(path, sizeof(path), "%s/cl100k_base.tiktoken.gz", dir);
    FILE *out = fopen(path, "wb");
    if (in != NULL && out != NULL) {
        char chunk[4096];
        for (int i = 0; i < 100; i++) { /* 400 KB of ~760 KB */
            size_t got = fread(chunk, 1, sizeof(chunk), in);
            fwrite(chunk, 1, got, out);
        }
    }
    if (in != NULL)
        fclose(in);
    if (out != NULL)
        fclose(out);
    err[0] = '\0';
    CHECK(tokenizer_count(TOKENIZER_CL100K, "hi", 2, err, sizeof(err)) == -1 && err[0] != '\0',
          "truncated file: %s", err);
    printf("  load errors: %s\n", err);

    unlink(path);
    snprintf(path, sizeof(path), "%s/o200k_base.tiktoken.gz", dir);
    unlink(path);
    rmdir(dir);
    tokenizer_set_data_dir(data_dir);
    CHECK(tokenizer_count(TOKENIZER_O200K, "hello world", 11, err, sizeof(err)) == 2,
          "after reset: %s", err);
}

static char *english_sample(size_t *len)
{
    static const char *const paragraphs[] = {
        "The committee met on Tuesday afternoon to review the budget for the coming year. "
        "Several members raised concerns about the rising cost of cloud services, which had "
        "grown by nearly forty percent since the previous review. After a long discussion, "
        "they agreed to set a monthly limit for each team and to publish a report of the "
        "spending every week.\n\n",
        "It was late in the evening when the train finally pulled into the station. The "
        "platform was almost empty, except for an old man who sat on a bench reading a "
        "newspaper, and a young woman who kept looking at her watch as if she were waiting "
        "for someone who had promised to come but never would.\n\n",
        "Good software is written for people first and computers second. A clear name, a "
        "short function and an honest comment will save more time than any clever trick. "
        "When you are not sure what a piece of code does, don't guess: read it, test it, and "
        "write down what you learned so the next person doesn't have to.\n\n",
        "Spring arrived early that year. The cherry trees along the river bloomed in March, "
        "and by April the fields were green and full of small yellow flowers. Children played "
        "outside until dark, and in the village square the market opened again, selling "
        "bread, cheese, honey and fresh vegetables from the farms nearby.\n\n",
    };
    size_t cap = (1u << 20) + 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t i = 0; n < (1u << 20); i++) {
        const char *p = paragraphs[i % 4];
        size_t pl = strlen(p);
        memcpy(buf + n, p, pl);
        n += pl;
    }
    *len = n;
    return buf;
}

struct thread_job {
    enum tokenizer_encoding enc;
    const char *text;
    size_t len;
    uint32_t *ids;
    size_t n;
    int rc;
};

static void *thread_main(void *arg)
{
    struct thread_job *j = arg;
    char err[256];
    j->rc = tokenizer_encode(j->enc, j->text, j->len, &j->ids, &j->n, err, sizeof(err));
    return NULL;
}

/* Threads encoding at once, starting with nothing loaded, agree with one
 * encoding done alone. */
static void test_threads(const char *text, size_t len)
{
    enum { NT = 6 };
    tokenizer_cleanup();
    pthread_t th[NT];
    struct thread_job jobs[NT];
    for (int i = 0; i < NT; i++) {
        jobs[i] = (struct thread_job){encodings[i % N_ENC], text, len, NULL, 0, -1};
        pthread_create(&th[i], NULL, thread_main, &jobs[i]);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    for (int e = 0; e < N_ENC; e++) {
        size_t n = 0;
        uint32_t *ids = encode_checked(encodings[e], text, len, &n, "prose");
        for (int i = e; i < NT; i += N_ENC)
            CHECK(jobs[i].rc == 0 && ids != NULL && jobs[i].n == n &&
                      memcmp(jobs[i].ids, ids, n * sizeof(*ids)) == 0,
                  "thread %d disagrees", i);
        free(ids);
    }
    for (int i = 0; i < NT; i++)
        free(jobs[i].ids);
}

static void measure_speed(const char *text, size_t len)
{
    for (int e = 0; e < N_ENC; e++) {
        char err[256];
        tokenizer_count(encodings[e], "warm up", 7, err, sizeof(err));
        double best = 1e9;
        int64_t n = 0;
        for (int round = 0; round < 3; round++) {
            double t0 = now();
            n = tokenizer_count(encodings[e], text, len, err, sizeof(err));
            double dt = now() - t0;
            if (dt < best)
                best = dt;
        }
        CHECK(n > 0, "prose count: %s", err);
        printf("speed: %s: %.1f MB/s (%zu bytes of English prose, %lld tokens, best of 3)\n",
               tokenizer_encoding_name(encodings[e]), (double)len / best / 1e6, len,
               (long long)n);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s VECTORS.jsonl DATA_DIR\n", argv[0]);
        return 2;
    }
    tokenizer_set_data_dir(argv[2]);

    double t0 = now();
    size_t vectors = run_vectors(argv[1]);
    printf("vectors: %zu texts x %d encodings checked (%.2f s, includes loading)\n", vectors,
           N_ENC, now() - t0);
    CHECK(vectors > 0, "no vectors in %s", argv[1]);

    test_invalid_utf8();
    test_nel_is_whitespace();
    test_long_pieces();
    test_models();
    test_load_errors(argv[2]);

    size_t len = 0;
    char *prose = english_sample(&len);
    test_threads(prose, len);
    measure_speed(prose, len);
    free(prose);

    tokenizer_cleanup();
    return check_summary("test_tokenizer");
}
