/* config_refused.h - LiteLLM config keys that decide access, limits or money
 * and that Tollgate does not apply: a config that sets one is refused
 * (config_refused.c has the list, with what each key does). */
#ifndef TG_CONFIG_REFUSED_H
#define TG_CONFIG_REFUSED_H

#include <stddef.h>

/* What key of section ("litellm_params", "model_info", "litellm_settings",
 * "general_settings", "router_settings") would do, when it is refused; NULL
 * otherwise. *affects (may be NULL): "access", "limits" or "money". */
const char *config_refused_why(const char *section, const char *key, const char **affects);

/* What callback `name` of litellm_settings' callback lists enforces (a
 * guardrail, a rate limiter ...), when Tollgate refuses it; NULL for the
 * others (logging integrations, warned about as not applicable). */
const char *config_refused_callback(const char *name);

/* How many keys are refused. */
size_t config_refused_count(void);

/* The section and key of refused row i (0 .. count - 1), for the docs'
 * check (tests/unit/test_config_doc.c); -1 past the end. */
int config_refused_at(size_t i, const char **section, const char **key);

#endif
