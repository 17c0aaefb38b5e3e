/* manage_key_caps.h - the config's defaults and caps of the key and user
 * routes (litellm_settings: default_key_generate_params,
 * upperbound_key_generate_params, default_internal_user_params,
 * max_internal_user_budget, internal_user_budget_duration), applied to a
 * request body before the route reads it. */
#ifndef REPORTD_MANAGE_KEY_CAPS_H
#define REPORTD_MANAGE_KEY_CAPS_H

#include <event2/http.h>
#include <jansson.h>

#include "config.h"

/* /key/generate: the defaults, then the caps, fill what body leaves out;
 * a value over a cap is answered 400 as LiteLLM words it. -1 answered. */
int key_caps_generate_and_reply(struct evhttp_request *req, const struct config *cfg,
                                json_t *body);

/* /key/update and /key/regenerate: a value body gives over a cap is
 * answered 400 (-1); nothing is filled. */
int key_caps_check_and_reply(struct evhttp_request *req, const struct config *cfg, json_t *body);

/* /user/new: default_internal_user_params, then an internal user's budget
 * and budget_duration, fill what body leaves out. -1 answered (500). */
int user_defaults_fill_or_reply(struct evhttp_request *req, const struct config *cfg,
                                json_t *body);

#endif
