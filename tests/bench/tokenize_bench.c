/* tokenize_bench.c - Tollgate's tokenizer speed on one core, for
 * tokenizer_bench.py.
 *
 * Usage: tokenize-bench ENCODING SECONDS FILE...
 * For each file: encodes it whole, over and over, for at least SECONDS of
 * one thread's CPU time (after one untimed pass that also loads the ranks),
 * and prints one JSON line: {"file", "encoding", "bytes", "tokens",
 * "passes", "cpu_s", "mb_per_s", "tokens_per_s"}. tokens is the count of one
 * pass, so the driver can compare it with another tokenizer's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)size + 1)) == NULL ||
        fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        free(buf);
        buf = NULL;
    } else {
        *len = (size_t)size;
    }
    if (f != NULL)
        fclose(f);
    return buf;
}

static int bench(enum tokenizer_encoding enc, double seconds, const char *path)
{
    size_t len = 0;
    char err[256], *text = slurp(path, &len);
    if (text == NULL)
        return -1;
    int64_t tokens = tokenizer_count(enc, text, len, err, sizeof(err)); /* untimed */
    if (tokens < 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        free(text);
        return -1;
    }
    long passes = 0;
    double t0 = cpu_now(), t = t0;
    while (t - t0 < seconds) {
        if (tokenizer_count(enc, text, len, err, sizeof(err)) != tokens) {
            fprintf(stderr, "%s: count changed between passes\n", path);
            free(text);
            return -1;
        }
        passes++;
        t = cpu_now();
    }
    double cpu = t - t0;
    printf("{\"file\": \"%s\", \"encoding\": \"%s\", \"bytes\": %zu, \"tokens\": %lld, "
           "\"passes\": %ld, \"cpu_s\": %.4f, \"mb_per_s\": %.3f, \"tokens_per_s\": %.0f}\n",
           path, tokenizer_encoding_name(enc), len, (long long)tokens, passes, cpu,
           (double)len * (double)passes / cpu / 1e6, (double)tokens * (double)passes / cpu);
    free(text);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s o200k_base|cl100k_base SECONDS FILE...\n", argv[0]);
        return 2;
    }
    enum tokenizer_encoding enc;
    if (strcmp(argv[1], "o200k_base") == 0)
        enc = TOKENIZER_O200K;
    else if (strcmp(argv[1], "cl100k_base") == 0)
        enc = TOKENIZER_CL100K;
    else {
        fprintf(stderr, "unknown encoding %s\n", argv[1]);
        return 2;
    }
    double seconds = strtod(argv[2], NULL);
    int rc = 0;
    for (int i = 3; i < argc && rc == 0; i++)
        rc = bench(enc, seconds > 0 ? seconds : 1.0, argv[i]);
    tokenizer_cleanup();
    return rc == 0 ? 0 : 1;
}
