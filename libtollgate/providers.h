/* providers.h - the provider prefixes of LiteLLM's model names ("groq/llama-3.1-8b-instant")
 * and how Tollgate reaches each one.
 *
 * One table (providers.c) holds every prefix LiteLLM accepts, with the protocol
 * Tollgate speaks to it, the api_base LiteLLM uses when a deployment gives none,
 * and, for a provider Tollgate cannot serve yet, what is missing. config.c
 * reads it; nothing else does. Entries are constant and live for the program.
 */
#ifndef TG_PROVIDERS_H
#define TG_PROVIDERS_H

#include <stddef.h>

enum provider_protocol {
    PROVIDER_OPENAI, /* OpenAI's API: {api_base}/chat/completions, Bearer key */
    PROVIDER_AZURE,  /* Azure OpenAI: {api_base}/openai/deployments/..., api-key header */
    PROVIDER_ANTHROPIC, /* Anthropic's Messages API: {api_base}/v1/messages, x-api-key header */
    PROVIDER_NATIVE, /* a protocol of its own that Tollgate does not speak yet */
};

struct provider {
    const char *prefix;               /* "groq" (model "groq/<name>") */
    enum provider_protocol protocol;
    const char *api_base;             /* LiteLLM's default, no trailing slash; NULL: none */
    /* NATIVE: what is missing, a clause after "<prefix>/ " ("needs AWS's SigV4 ...").
     * Otherwise, when api_base is NULL: what to give instead (a clause after
     * "<prefix>/ has no public default URL; "). NULL otherwise. */
    const char *note;
};

/* The entry of prefix (without the slash), or NULL when LiteLLM has no such provider. */
const struct provider *provider_find(const char *prefix);

/* The whole table, in prefix order: *n entries. */
const struct provider *provider_table(size_t *n);

#endif
