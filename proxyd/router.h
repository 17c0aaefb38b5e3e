/* router.h - from a requested model group to the deployment that serves it:
 * the routing strategy (router_pick.h), retries, fallbacks and cooldowns
 * (LiteLLM's router). */
#ifndef PROXYD_ROUTER_H
#define PROXYD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "router_pick.h"

#define ROUTER_MAX_ATTEMPTS 64

struct router;

/* LiteLLM's fallback lists, by what sends a request to them. */
enum route_fallback {
    ROUTE_FALLBACK_ANY,            /* fallbacks, else default_fallbacks: a retryable failure */
    ROUTE_FALLBACK_CONTEXT_WINDOW, /* context_window_fallbacks: the prompt is too long */
    ROUTE_FALLBACK_CONTENT_POLICY, /* content_policy_fallbacks: the content was refused */
};

/* May the caller (arg) use model group or alias name? Fallback groups it
 * may not are skipped (route_filter_may_use). */
typedef bool (*route_may_use_fn)(const void *arg, const char *name);

/* Which members of the group being tried tag routing lets a request reach. */
enum route_tags { ROUTE_TAGS_ALL, ROUTE_TAGS_MATCHED, ROUTE_TAGS_DEFAULT, ROUTE_TAGS_NONE };

/* Where one request stands in its attempts. */
struct route_state {
    const char *group;         /* the group being tried (the request's, then fallbacks) */
    size_t fallback_next;      /* next fallback of the request's group to try */
    int attempts_in_group;
    const struct deployment *tried[ROUTER_MAX_ATTEMPTS];
    size_t n_tried;
    struct route_request req; /* what the strategy weighs (router_pick.h) */
    bool full;                /* a deployment was passed over at its limits */
    /* what route_filter.h looks at, and which fallback list is walked */
    const char *asked;         /* the name the request gave: a group or an alias */
    const char *const *tags;   /* its tags (borrowed; router_start) */
    size_t n_tags;
    enum route_tags tag_mode;  /* for the group being tried */
    bool match_any;            /* one common tag is enough (tag_filtering_match_any) */
    bool fit_check;            /* skip deployments whose max_input_tokens req's prompt exceeds */
    bool tags_refused;         /* the asked group's tags matched none of its deployments */
    bool probe;                /* router_first: every group the request could reach */
    bool in_fallback;          /* group is a fallback, not the asked one */
    enum route_fallback kind;  /* the list walked: kind's fallbacks ... */
    const char *list_of;       /* ... of this name */
    route_may_use_fn may_use;  /* the caller's model access (route_match); NULL: any */
    const void *may_use_arg;
};

/* What tag routing weighs of a request (router_start). */
struct route_match {
    const char *const *tags;   /* metadata.tags and its key's; borrowed */
    size_t n_tags;
    route_may_use_fn may_use;  /* its key's models (call.c); NULL: every group */
    const void *may_use_arg;   /* borrowed; outlives the request's route_state */
};

/* Why router_start found no deployment (unless st->full). */
enum route_refusal { ROUTE_UNKNOWN_MODEL = 1, ROUTE_NO_TAG_MATCH };

struct router *router_new(const struct config *cfg, char *err, size_t errlen);
void router_free(struct router *r);

/* Shares usage-based routing's counts through the config's Redis, on base's
 * loop (pick_share_usage). 0, or -1 (err) when out of memory. */
int router_share_usage(struct router *r, struct event_base *base, char *err, size_t errlen);

/* Is name a model group of the config, or an alias of one (model_group_alias)? */
bool router_has_group(const struct router *r, const char *name);

/* The group name serves: an alias's group, else name itself. */
const char *router_resolve(const struct router *r, const char *name);

/* Every deployment a request to group could reach, for a reservation's
 * worst case: router_first and router_next on this state walk the group, its
 * fallbacks, its context-window and content-policy fallbacks, without tag
 * routing and whatever their limits (NULL: no such group). */
const struct deployment *router_first(struct router *r, const char *group,
                                      struct route_state *st);
/* The first deployment for a request to name (a group or an alias) the
 * strategy may weigh (rq: copied; NULL: unknown): tag routing applies (m:
 * the request's tags; NULL: none), a group matching none hands over to its
 * fallbacks; a prompt larger than each deployment's max_input_tokens goes to
 * the context_window_fallbacks without trying the group. NULL: st->full, or
 * *why (no such name, or tags matching nothing). */
const struct deployment *router_start(struct router *r, const char *name,
                                      const struct route_request *rq,
                                      const struct route_match *m, struct route_state *st,
                                      enum route_refusal *why);
/* Does the strategy weigh route_request.prompt_tokens (worth counting)? */
bool router_counts_prompt(const struct router *r);
/* The same, or does router_start weigh them for name (context_window_fallbacks
 * and a deployment with max_input_tokens)? */
bool router_counts_prompt_for(const struct router *r, const char *name);

/* After a retryable failure: the next deployment (the group's others while
 * num_retries allows, then the fallback groups), or NULL when none is left. */
const struct deployment *router_next(struct router *r, struct route_state *st);

/* May st's request reach d, as tag routing sees d's group (a deployment
 * chosen otherwise: the Responses API's previous_response_id)? */
bool router_admits(const struct router *r, const struct route_state *st,
                   const struct deployment *d);

/* After an upstream error of a kind with fallbacks of its own (context
 * window, content policy: upstream_error.h): a deployment of the failed
 * group's fallbacks for that kind; NULL when it has none (the error stands)
 * or none is left. */
const struct deployment *router_switch(struct router *r, struct route_state *st,
                                       enum route_fallback kind);

/* The deployment last drawn was passed over before it was tried (its
 * budget is spent, as LiteLLM's budget filter): it stays out of this
 * request's choice but does not count as one of num_retries. */
void router_pass_over(struct route_state *st);

/* Records how an attempt went; failures put a deployment in cooldown. */
void router_report(struct router *r, const struct deployment *d, bool ok);

/* An attempt's life, for the strategies and limits (router_pick.h): it
 * starts (a probe of router_first/next is no attempt), it ends however it
 * went (each start has one end), and a success's measures. */
void router_attempt_start(struct router *r, const struct deployment *d);
void router_attempt_end(struct router *r, const struct deployment *d, bool timed_out);
void router_attempt_sample(struct router *r, const struct deployment *d,
                           const struct route_sample *s);

/* The model groups in config order: count and i-th name. */
size_t router_group_count(const struct router *r);
const char *router_group_name(const struct router *r, size_t i);

/* "a, b, c": the model groups, for the unknown-model error. */
const char *router_group_names(const struct router *r);

#endif
