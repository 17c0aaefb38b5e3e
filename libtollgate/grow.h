/* grow.h - doubling growth for arrays that are appended to. */
#ifndef TG_GROW_H
#define TG_GROW_H

#include <stddef.h>

/* Makes room for `need` elements of `elem` bytes in arr (capacity *cap),
 * doubling from `first`. Returns the array (arr itself when it was big
 * enough) and updates *cap; NULL on ENOMEM, when arr and *cap are unchanged. */
void *grow_array(void *arr, size_t *cap, size_t need, size_t elem, size_t first);

#endif
