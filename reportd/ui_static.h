/* ui_static.h - the Usage page's files built into reportd (the generated
 * ui_embedded.c, see reportd/CMakeLists.txt) and served by ui_static.c. */
#ifndef REPORTD_UI_STATIC_H
#define REPORTD_UI_STATIC_H

#include <stddef.h>

/* One route's file: its bytes are [data, end). */
struct ui_file {
    const char *path;          /* "/ui/app.js" */
    const char *content_type;  /* with its charset */
    const char *cache_control;
    const char *data, *end;
};

/* Every route's file, ended by an entry with path NULL. */
extern const struct ui_file ui_files[];

#endif
