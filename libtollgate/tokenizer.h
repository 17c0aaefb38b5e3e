/* tokenizer.h - token counting with OpenAI's byte-pair encodings (tiktoken
 * compatible): o200k_base and cl100k_base.
 *
 * Design: text is split into pieces by the encoding's published regular
 * expression (PCRE2, JIT when available, Unicode properties, invalid UTF-8
 * tolerated); each piece is looked up whole in the rank table and otherwise
 * merged byte pair by byte pair, lowest rank first, exactly as tiktoken does
 * (a heap drives the merges of long pieces, so any input is O(n log n)).
 * Bytes that no regex match covers (invalid UTF-8) become their single-byte
 * tokens, so every input encodes and decoding the ids restores it exactly.
 * Special tokens such as <|endoftext|> are never produced: they are text.
 *
 * The rank tables are read from <data dir>/<name>.tiktoken.gz on first use
 * and kept, immutable, until tokenizer_cleanup(); the one-time load is
 * guarded by a mutex, so every function may be called from any thread.
 * Encoding itself shares nothing mutable between calls.
 */
#ifndef TG_TOKENIZER_H
#define TG_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tokenizer_encoding { TOKENIZER_O200K, TOKENIZER_CL100K };

/* "o200k_base" / "cl100k_base" ("?" for an unknown value). */
const char *tokenizer_encoding_name(enum tokenizer_encoding enc);

/* Directory holding the *.tiktoken.gz files; the build passes the source dir
 * as default (TOKENIZER_DATA_DIR macro), the daemons may override it. Call it
 * before the first encode: an encoding already loaded is not reloaded. NULL
 * restores the default. */
void tokenizer_set_data_dir(const char *dir);
/* The built-in default directory (the build's source tree). */
const char *tokenizer_default_data_dir(void);

/* Encodes text (len bytes, any bytes: invalid UTF-8 is encoded byte by byte
 * with the single-byte tokens) into ids. *ids is malloc'd (caller frees; not
 * NULL on success, even for empty text). Special tokens like <|endoftext|>
 * are plain text. 0, or -1 with err set (rank file missing or damaged, out
 * of memory). */
int tokenizer_encode(enum tokenizer_encoding enc, const char *text, size_t len,
                     uint32_t **ids, size_t *n, char *err, size_t errlen);

/* Counts tokens without keeping ids. -1 on error (err set). */
int64_t tokenizer_count(enum tokenizer_encoding enc, const char *text, size_t len,
                        char *err, size_t errlen);

/* Concatenates the byte strings of ids into *out (malloc'd, NUL-terminated
 * for convenience; *outlen excludes the NUL). -1 if an id is not a token. */
int tokenizer_decode_bytes(enum tokenizer_encoding enc, const uint32_t *ids, size_t n,
                           char **out, size_t *outlen, char *err, size_t errlen);

/* Which encoding a model name uses: o200k for gpt-4o*, gpt-4.1*, gpt-4.5*,
 * o1*, o3*, o4*, gpt-5*, chatgpt-4o*; cl100k for gpt-4*, gpt-3.5*, gpt-35*
 * (Azure's spelling), text-embedding-ada-002, text-embedding-3-*. Provider
 * prefixes ("openai/", "azure/", ...) and a fine-tune "ft:" prefix are
 * ignored, case too. Anything else: cl100k with *estimate = true (estimate
 * may be NULL). */
enum tokenizer_encoding tokenizer_for_model(const char *model, bool *estimate);

/* Frees the loaded encodings. Call it at exit, when no thread is encoding;
 * a later call loads them again. */
void tokenizer_cleanup(void);

#endif
