/* price_image.c - image generation prices: per pixel or per image, found
 * under "<quality>/<W>-x-<H>/<model>" names.
 *
 * The names tried, in order, are LiteLLM's (default_image_cost_calculator,
 * whose get_model_info also tries the provider's own spelling first, as in
 * "azure/standard/1024-x-1024/dall-e-3"): with and without the quality,
 * "medium" (gpt-image-1's default), with and without the provider prefix.
 * Only entries with an image price count. Without a quality Tollgate also
 * tries "medium/<size>/<name>" and, last, "standard/<size>/<name>" (dall-e-3's
 * default), which LiteLLM does not, so such a request is never unpriced.
 * A missing size is OpenAI's default, 1024x1024; n defaults to 1.
 */
#include "price_image.h"

#include <stdio.h>
#include <string.h>

#define NAME_MAX_LEN 512

bool price_image_priced(const struct price_model *pm)
{
    return unit_has(pm, UNIT_PIXEL_IN) || unit_has(pm, UNIT_IMAGE_OUT) ||
           unit_has(pm, UNIT_IMAGE_IN);
}

/* The entry named a/b/c (NULL parts left out), or NULL. */
static const struct price_model *try_name(const struct price_table *t, const char *a,
                                          const char *b, const char *c)
{
    char name[NAME_MAX_LEN];
    const char *parts[] = {a, b, c};
    size_t len = 0;
    for (size_t i = 0; i < 3; i++) {
        if (parts[i] == NULL)
            continue;
        int n = snprintf(name + len, sizeof(name) - len, "%s%s", len > 0 ? "/" : "", parts[i]);
        if (n < 0 || (size_t)n >= sizeof(name) - len)
            return NULL;
        len += (size_t)n;
    }
    const struct price_model *pm = price_exact(t, name);
    return pm != NULL && price_image_priced(pm) ? pm : NULL;
}

static const struct price_model *lookup(const struct price_table *t, const char *model,
                                        const char *size, const char *quality)
{
    const char *slash = strchr(model, '/');
    const char *last = strrchr(model, '/');
    last = last != NULL ? last + 1 : model;
    const char *rest = slash != NULL ? slash + 1 : model;
    const char *q = quality[0] != '\0' ? quality : NULL;
    char base[NAME_MAX_LEN];
    int n = slash != NULL ? snprintf(base, sizeof(base), "%.*s/%s/%s", (int)(slash - model),
                                     model, size, rest)
                          : snprintf(base, sizeof(base), "%s/%s", size, model);
    if (n < 0 || (size_t)n >= sizeof(base))
        return NULL;
    char own[NAME_MAX_LEN]; /* "<provider>/<quality>" */
    const struct price_model *pm = NULL;
    if (slash != NULL && q != NULL &&
        snprintf(own, sizeof(own), "%.*s/%s", (int)(slash - model), model, q) < (int)sizeof(own))
        pm = try_name(t, own, size, rest);
    if (pm == NULL && q != NULL)
        pm = try_name(t, q, base, NULL);
    if (pm == NULL)
        pm = try_name(t, base, NULL, NULL);
    if (pm == NULL)
        pm = try_name(t, "medium", base, NULL);
    if (pm == NULL && q != NULL)
        pm = try_name(t, q, size, last);
    if (pm == NULL)
        pm = try_name(t, size, last, NULL);
    if (pm == NULL)
        pm = try_name(t, model, NULL, NULL);
    if (pm == NULL && slash != NULL)
        pm = try_name(t, rest, NULL, NULL);
    if (pm == NULL && q == NULL)
        pm = try_name(t, "medium", size, last);
    if (pm == NULL && q == NULL)
        pm = try_name(t, "standard", size, last);
    return pm;
}

static const char *priced_name(const char *model, const struct price_custom *custom)
{
    if (custom != NULL && custom->base_model != NULL && custom->base_model[0] != '\0')
        return custom->base_model;
    return model;
}

static int64_t side(int64_t v)
{
    return v > 0 ? v : 1024;
}

const struct price_model *price_image_entry(const struct price_table *t, const char *model,
                                            const struct price_custom *custom,
                                            const struct usage *u)
{
    char size[64];
    snprintf(size, sizeof(size), "%lld-x-%lld", (long long)side(u->image_width),
             (long long)side(u->image_height));
    return lookup(t, priced_name(model, custom), size, u->image_quality);
}

bool price_image_known(const struct price_table *t, const char *model,
                       const struct price_custom *custom)
{
    const struct price_model *pm = lookup(t, priced_name(model, custom), "1024-x-1024", "");
    return pm != NULL && price_image_priced(pm);
}

int price_image_cost(const struct price_model *pm, const struct usage *u, money_t *sum)
{
    int64_t n = u->images > 0 ? u->images : 1, pixels;
    if (__builtin_mul_overflow(side(u->image_width), side(u->image_height), &pixels) ||
        __builtin_mul_overflow(pixels, n, &pixels))
        return -1;
    money_t part;
    if (unit_has(pm, UNIT_PIXEL_IN)) {
        money_t rate = pm->unit[UNIT_PIXEL_IN] +
                       (unit_has(pm, UNIT_PIXEL_OUT) ? pm->unit[UNIT_PIXEL_OUT] : 0);
        if (money_mul_int(rate, pixels, &part) < 0)
            return -1;
    } else {
        money_t each = unit_has(pm, UNIT_IMAGE_OUT) ? pm->unit[UNIT_IMAGE_OUT]
                                                    : pm->unit[UNIT_IMAGE_IN];
        if (money_mul_int(each, n, &part) < 0)
            return -1;
    }
    return money_add(*sum, part, sum);
}
