/* fuzz_bm_local.c - the BudgetManager's project file (bm_local.c reading
 * it, bm_dict.c checking and changing it, budget_manager.c answering from
 * it) on a user_cost.json of any bytes: the file is the application's, and
 * LiteLLM or a person may have written it. Every call an application makes
 * runs on it, changes included (each saves the file again).
 *
 * Input: the file's bytes, optionally followed by "\n--\n" and an OpenAI
 * completion response for tg_bm_update_cost_response. */
#include <fcntl.h>

#include "fuzz_bm.h"

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size) || close(fd) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_bm *m = fuzz_bm();
    const uint8_t *file;
    size_t file_len;
    fuzz_next_piece(&data, &size, &file, &file_len);
    char *response = size > 0 ? fuzz_text(data, size) : NULL;
    write_file(fuzz_bm_path, file, file_len);
    fuzz_bm_calls(m, response);
    free(response);
    return 0;
}
