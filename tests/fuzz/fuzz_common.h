/* fuzz_common.h - what the fuzz targets share: the libFuzzer entry point,
 * the input as a file or a C string, and one fixed config to run under.
 * Everything here is deterministic: no clock, no network, no database. */
#ifndef TG_FUZZ_COMMON_H
#define TG_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

struct config;

/* Each fuzz_<name>.c defines it; libFuzzer or replay_main.c calls it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a NUL-terminated string (malloc'd; aborts when out of memory). */
char *fuzz_text(const uint8_t *data, size_t size);

/* Writes data into an in-memory file (one per process, rewritten each
 * call) and returns its path, "/proc/self/fd/N"; aborts on failure. */
const char *fuzz_file(const uint8_t *data, size_t size);

/* The config the proxyd targets run under: an OpenAI, an Azure and an
 * Anthropic deployment (groups "gpt", "azure", "claude"), loaded once. */
const struct config *fuzz_config(void);

/* Cuts the next piece off *data: up to the next "\n--\n" separator (or the
 * end). Lets one input carry several documents. */
void fuzz_next_piece(const uint8_t **data, size_t *size, const uint8_t **piece,
                     size_t *piece_len);

#endif
