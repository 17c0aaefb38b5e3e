/* fuzz_config.c - the YAML config loader (config_load and the config_*.c
 * sections it validates), on a config file of any bytes: every daemon reads
 * the operator's file at start and on each reload. The input is written to
 * an in-memory file, since config_load reads a path. Not fully hermetic:
 * os.environ/NAME reads the environment, and key durations compare against
 * the clock (config_keys.c), which changes no path taken by the parser. */
#include "config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    struct config *cfg = config_load(fuzz_file(data, size), err, sizeof(err));
    config_free(cfg);
    return 0;
}
