/* price_image.h - the price of an image generation (internal to the price
 * library; see price_image.c). */
#ifndef TG_PRICE_IMAGE_H
#define TG_PRICE_IMAGE_H

#include <stdbool.h>

#include "price.h"
#include "price_model.h"

/* Does the entry price images (per pixel or per image)? */
bool price_image_priced(const struct price_model *pm);

/* The entry for the image call u describes (size, quality), or NULL. */
const struct price_model *price_image_entry(const struct price_table *t, const char *model,
                                            const struct price_custom *custom,
                                            const struct usage *u);

/* Is the deployment's model priced as an image model at the default size? */
bool price_image_known(const struct price_table *t, const char *model,
                       const struct price_custom *custom);

/* Adds the images' cost to *sum; -1 on overflow. */
int price_image_cost(const struct price_model *pm, const struct usage *u, money_t *sum);

#endif
