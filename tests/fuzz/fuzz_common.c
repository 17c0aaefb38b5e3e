/* fuzz_common.c - helpers of the fuzz targets (see fuzz_common.h). */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"

static const char FUZZ_CONFIG[] =
    "model_list:\n"
    "  - model_name: gpt\n"
    "    litellm_params: {model: openai/gpt-4o-mini, api_base: \"http://127.0.0.1:9/v1\","
    " api_key: sk-x}\n"
    "  - model_name: azure\n"
    "    litellm_params: {model: azure/gpt-4o, api_base: \"http://127.0.0.1:9\","
    " api_version: \"2024-06-01\", api_key: k}\n"
    "  - model_name: claude\n"
    "    litellm_params: {model: anthropic/claude-3-5-haiku-20241022,"
    " api_base: \"http://127.0.0.1:9\", api_key: k}\n"
    "general_settings:\n"
    "  master_key: sk-1234\n"
    "  database_url: mysql://u:p@127.0.0.1:3306/d\n"
    "tollgate:\n"
    "  proxyd: { listen: \"127.0.0.1:4000\", spool_dir: /nonexistent/spool }\n"
    "  curve: off\n";

char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        if ((fd = memfd_create("fuzz-input", MFD_CLOEXEC)) < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
        abort();
    return path;
}

const struct config *fuzz_config(void)
{
    static struct config *cfg;
    char err[512];
    if (cfg == NULL &&
        (cfg = config_load(fuzz_file((const uint8_t *)FUZZ_CONFIG, sizeof(FUZZ_CONFIG) - 1), err,
                           sizeof(err))) == NULL) {
        fprintf(stderr, "fuzz config: %s\n", err);
        abort();
    }
    return cfg;
}

void fuzz_next_piece(const uint8_t **data, size_t *size, const uint8_t **piece,
                     size_t *piece_len)
{
    const uint8_t *sep = memmem(*data, *size, "\n--\n", 4);
    *piece = *data;
    *piece_len = sep != NULL ? (size_t)(sep - *data) : *size;
    size_t used = sep != NULL ? *piece_len + 4 : *size;
    *data += used;
    *size -= used;
}

/* Answers go nowhere: a request made with evhttp_request_new has no
 * connection, and libevent's own evhttp_send_reply would free it under the
 * caller. These replace libevent's for the fuzz programs only (the
 * executable's definition wins); the headers set are dropped. */
void evhttp_send_reply(struct evhttp_request *req, int code, const char *reason,
                       struct evbuffer *databuf)
{
    (void)code;
    (void)reason;
    (void)databuf;
    evhttp_clear_headers(evhttp_request_get_output_headers(req));
}

void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
    evhttp_send_reply(req, error, reason, NULL);
}
