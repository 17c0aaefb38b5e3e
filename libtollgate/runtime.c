/* runtime.c - library-wide initialisation of the daemons (see runtime.h). */
#include "runtime.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <mysql.h>
#include <pthread.h>
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

int runtime_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    int rc = pthread_sigmask(SIG_BLOCK, &all, &old);
    if (rc != 0)
        return rc;
    rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

void runtime_end(void)
{
    tokenizer_cleanup();
    mysql_library_end();
    curl_global_cleanup();
    libevent_global_shutdown();
}
