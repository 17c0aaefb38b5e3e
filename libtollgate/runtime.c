/* runtime.c - library-wide initialisation of the daemons (see runtime.h). */
#include "runtime.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <mysql.h>
#include <signal.h>

#include "log.h"
#include "tokenizer.h"

int runtime_init(void)
{
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || evthread_use_pthreads() != 0 ||
        curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || mysql_library_init(0, NULL, NULL) != 0) {
        log_error("library initialisation failed");
        return -1;
    }
    return 0;
}

void runtime_end(void)
{
    tokenizer_cleanup();
    mysql_library_end();
    curl_global_cleanup();
    libevent_global_shutdown();
}
