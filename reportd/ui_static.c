/* ui_static.c - GET /ui, /ui/, /ui/app.js, /ui/app.css and /ui/chart.umd.js:
 * the Usage page's files, built into the binary (ui_static.h), so reportd
 * needs no files on disk and the page no CDN.
 *
 * The routes are OPEN: the files hold no data (the page signs in with a key
 * and calls the JSON routes under /ui/api/). Every answer carries a strict
 * Content-Security-Policy (scripts, styles and connections to this origin
 * only, no inline script, no framing) and nosniff. The page itself is revalidated on every load
 * (no-cache); the scripts and the style may be cached for an hour. A query
 * string is ignored (a cache buster is harmless).
 */
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <string.h>

#include "httpjson.h"
#include "reportd.h"
#include "ui_api.h"
#include "ui_static.h"

#define UI_CSP "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';" \
               " connect-src 'self'; frame-ancestors 'none'"

static const struct ui_file *ui_file_of(const char *path)
{
    for (const struct ui_file *f = ui_files; path != NULL && f->path != NULL; f++)
        if (strcmp(f->path, path) == 0)
            return f;
    return NULL;
}

void ui_static(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    (void)w;
    (void)who;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const struct ui_file *f = ui_file_of(uri != NULL ? evhttp_uri_get_path(uri) : NULL);
    if (f == NULL) { /* api.c routes only the paths of ui_files here */
        httpjson_error(req, 404, "not_found_error", NULL, "Route not found");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    /* the bytes are static: referenced, not copied */
    if (b == NULL || evbuffer_add_reference(b, f->data, (size_t)(f->end - f->data), NULL,
                                            NULL) != 0 ||
        evhttp_add_header(h, "Content-Type", f->content_type) != 0 ||
        evhttp_add_header(h, "Cache-Control", f->cache_control) != 0 ||
        evhttp_add_header(h, "Content-Security-Policy", UI_CSP) != 0 ||
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff") != 0 ||
        evhttp_add_header(h, "Referrer-Policy", "no-referrer") != 0) {
        if (b != NULL)
            evbuffer_free(b);
        evhttp_remove_header(h, "Content-Type");
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return;
    }
    evhttp_send_reply(req, 200, NULL, b);
    evbuffer_free(b);
}
