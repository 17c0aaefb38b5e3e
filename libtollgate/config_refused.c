/* config_refused.c - the keys of LiteLLM's config that decide access, limits or
 * money and that Tollgate does not apply (yet): a config that sets one does not
 * load, and the error names the key and what it would have done. Ignoring such
 * a key with a warning would let through what it refuses, or bill what it
 * would not (issue 26). Sections: "" is the top level; litellm_params and
 * model_info are a deployment's (a price refused in litellm_params is refused
 * in model_info too); environment_variables are names its section sets; the
 * others are the top-level sections of the same name. Sorted by section and
 * key (config_refused_why searches it). */
#include "config_refused.h"

#include <stdlib.h>
#include <string.h>

struct refused {
    const char *section, *key, *affects, *what;
};

static const struct refused REFUSED[] = {
    {"", "guardrails", "access",
     "guardrails that block or rewrite requests and answers (content filters, PII masking ...)"},
    {"environment_variables", "DISABLE_ADMIN_UI", "access", "turn the admin UI off"},
    {"environment_variables", "DYNAMIC_RATE_LIMIT_ERROR_THRESHOLD_PER_MINUTE", "limits",
     "errors a minute before the dynamic rate limiter steps in"},
    {"environment_variables", "LEGACY_MULTI_INSTANCE_RATE_LIMITING", "limits",
     "the old per-instance rate limiter"},
    {"environment_variables", "LITELLM_KEY_ROTATION_CHECK_INTERVAL_SECONDS", "access",
     "how often keys due for rotation are rotated"},
    {"environment_variables", "LITELLM_KEY_ROTATION_ENABLED", "access",
     "rotate virtual keys automatically"},
    {"environment_variables", "LITELLM_KEY_ROTATION_GRACE_PERIOD", "access",
     "how long a rotated key still works"},
    {"environment_variables", "LITELLM_MAX_STREAMING_DURATION_SECONDS", "limits",
     "longest a stream may last"},
    {"environment_variables", "LITELLM_MODEL_COST_MAP_URL", "money",
     "where the price map is downloaded from (Tollgate's is built in or tollgate.price_file)"},
    {"environment_variables", "LITELLM_RATE_LIMIT_WINDOW_SIZE", "limits",
     "the rate limiter's window"},
    {"environment_variables", "MODEL_COST_MAP_MAX_SHRINK_RATIO", "money",
     "how much smaller a downloaded price map may be"},
    {"environment_variables", "MODEL_COST_MAP_MIN_MODEL_COUNT", "money",
     "fewest models a downloaded price map must have"},
    {"general_settings", "allow_client_side_credentials", "access",
     "clients may pass api_key/api_base per request"},
    {"general_settings", "allow_requests_on_db_unavailable", "access",
     "serve requests whose key cannot be verified while the DB is down"},
    {"general_settings", "allow_user_auth", "access", "deprecated user auth"},
    {"general_settings", "allowed_ips", "access", "IP allowlist of the proxy"},
    {"general_settings", "custom_auth", "access", "Python function replacing key auth"},
    {"general_settings", "custom_key_generate", "access", "Python function deciding /key/generate"},
    {"general_settings", "custom_sso", "access", "Python SSO handler"},
    {"general_settings", "default_team_disabled", "access",
     "non-admins cannot create keys without a team"},
    {"general_settings", "disable_reset_budget", "money", "turn off the budget reset job"},
    {"general_settings", "disable_retry_on_max_parallel_request_limit_error", "limits",
     "no retries when a parallel-request limit is hit"},
    {"general_settings", "disable_spend_updates", "money",
     "turn off all spend updates (key/user/team spend)"},
    {"general_settings", "enable_jwt_auth", "access",
     "accept JWTs (admin via litellm_proxy_admin claim)"},
    {"general_settings", "enable_oauth2_auth", "access", "OAuth2 token auth (enterprise)"},
    {"general_settings", "enable_oauth2_proxy_auth", "access",
     "OAuth2-proxy header auth (enterprise)"},
    {"general_settings", "enforce_user_param", "access", "reject OpenAI requests without 'user'"},
    {"general_settings", "enforced_params", "access",
     "params every request must carry (enterprise)"},
    {"general_settings", "key_management_settings", "access",
     "secret-manager options: store_virtual_keys, hosted_keys, access_mode, prefixes (no key "
     "lifetimes: those are default_key_generate_params.duration and "
     "upperbound_key_generate_params.duration)"},
    {"general_settings", "key_management_system", "access",
     "secret manager that decrypts or reads the config's secrets (KMS, Vault, ...)"},
    {"general_settings", "litellm_jwtauth", "access", "JWT auth settings"},
    {"general_settings", "litellm_key_header_name", "access", "custom header carrying the key"},
    {"general_settings", "max_parallel_requests", "limits",
     "max parallel requests (per deployment, per the table)"},
    {"general_settings", "max_request_size_mb", "limits", "reject requests larger than this"},
    {"general_settings", "max_response_size_mb", "limits",
     "do not send LLM answers larger than this"},
    {"general_settings", "oauth2_config_mappings", "access", "OAuth2 claim mappings"},
    {"general_settings", "pass_through_endpoints", "access",
     "extra routes forwarded to arbitrary targets (optional auth)"},
    {"general_settings", "proxy_batch_polling_interval", "money",
     "seconds between polls of batch jobs for cost"},
    {"general_settings", "reject_clientside_metadata_tags", "money",
     "reject requests that carry metadata.tags (tags only from the key)"},
    {"general_settings", "service_account_settings", "access",
     "settings applied to service-account keys only (e.g. enforced_params)"},
    {"general_settings", "ui_access_mode", "access", "admin_only: only admins may use the UI"},
    {"general_settings", "use_azure_key_vault", "access", "read secrets from Azure Key Vault"},
    {"general_settings", "use_client_credentials_pass_through_routes", "access",
     "pass-through routes use client credentials and skip virtual-key auth"},
    {"general_settings", "use_google_kms", "access", "decrypt secrets with Google KMS"},
    {"general_settings", "use_x_forwarded_for", "access",
     "take the client IP from X-Forwarded-For (for allowed_ips)"},
    {"general_settings", "user_api_key_cache_ttl", "access",
     "seconds key rows are cached in memory"},
    {"general_settings", "user_mcp_management_mode", "access",
     "which MCP servers non-admins see in the UI"},
    {"litellm_params", "cache_creation_input_audio_token_cost", "money",
     "cache-write price for audio tokens"},
    {"litellm_params", "cache_creation_input_token_cost", "money",
     "price per cache-write token (5-minute)"},
    {"litellm_params", "cache_creation_input_token_cost_above_1hr", "money",
     "price per 1-hour cache-write token"},
    {"litellm_params", "cache_creation_input_token_cost_above_200k_tokens", "money",
     "cache-write price when the prompt exceeds 200k tokens"},
    {"litellm_params", "cache_read_input_audio_token_cost", "money",
     "cache-read price for audio tokens"},
    {"litellm_params", "cache_read_input_token_cost", "money", "price per cache-read token"},
    {"litellm_params", "cache_read_input_token_cost_above_200k_tokens", "money",
     "cache-read price above 200k prompt tokens"},
    {"litellm_params", "cache_read_input_token_cost_flex", "money",
     "cache-read price at the flex tier"},
    {"litellm_params", "cache_read_input_token_cost_priority", "money",
     "cache-read price at the priority tier"},
    {"litellm_params", "citation_cost_per_token", "money", "Perplexity citation-token price"},
    {"litellm_params", "configurable_clientside_auth_params", "access",
     "lets clients send their own api_key/api_base for this deployment"},
    {"litellm_params", "default_api_key_rpm_limit", "limits",
     "rpm limit for keys using this deployment without a model-specific limit"},
    {"litellm_params", "default_api_key_tpm_limit", "limits",
     "tpm limit for keys using this deployment without a model-specific limit"},
    {"litellm_params", "input_cost_per_audio_per_second", "money",
     "price per second of input audio"},
    {"litellm_params", "input_cost_per_audio_per_second_above_128k_tokens", "money",
     "audio-second price above 128k"},
    {"litellm_params", "input_cost_per_audio_token", "money", "price per input audio token"},
    {"litellm_params", "input_cost_per_character", "money", "Vertex price per input character"},
    {"litellm_params", "input_cost_per_character_above_128k_tokens", "money",
     "Vertex character price above 128k"},
    {"litellm_params", "input_cost_per_image", "money", "price per input image"},
    {"litellm_params", "input_cost_per_image_above_128k_tokens", "money",
     "Gemini per-image price above 128k"},
    {"litellm_params", "input_cost_per_pixel", "money", "custom price per input pixel"},
    {"litellm_params", "input_cost_per_query", "money", "price per rerank query"},
    {"litellm_params", "input_cost_per_second", "money",
     "custom price per second of input (audio/speech)"},
    {"litellm_params", "input_cost_per_token_above_128k_tokens", "money",
     "input price above 128k prompt tokens"},
    {"litellm_params", "input_cost_per_token_above_200k_tokens", "money",
     "input price above 200k prompt tokens"},
    {"litellm_params", "input_cost_per_token_batches", "money", "input price in the Batch API"},
    {"litellm_params", "input_cost_per_token_cache_hit", "money",
     "DeepSeek-style cache-hit input price"},
    {"litellm_params", "input_cost_per_token_flex", "money",
     "input token price at OpenAI's flex tier"},
    {"litellm_params", "input_cost_per_token_priority", "money",
     "input token price at OpenAI's priority tier"},
    {"litellm_params", "input_cost_per_video_per_second", "money",
     "price per second of input video"},
    {"litellm_params", "input_cost_per_video_per_second_above_128k_tokens", "money",
     "video-second price above 128k"},
    {"litellm_params", "input_cost_per_video_per_second_above_15s_interval", "money",
     "video-second price, clips over 15 s"},
    {"litellm_params", "input_cost_per_video_per_second_above_8s_interval", "money",
     "video-second price, clips over 8 s"},
    {"litellm_params", "itpm", "limits", "deployment input-tokens/minute limit"},
    {"litellm_params", "max_file_size_mb", "limits",
     "max upload size for file endpoints of this deployment"},
    {"litellm_params", "mock_response", "money",
     "canned answer returned without calling the upstream"},
    {"litellm_params", "otpm", "limits", "deployment output-tokens/minute limit"},
    {"litellm_params", "output_cost_per_audio_per_second", "money",
     "price per second of generated audio"},
    {"litellm_params", "output_cost_per_audio_token", "money", "price per output audio token"},
    {"litellm_params", "output_cost_per_character", "money", "Vertex price per output character"},
    {"litellm_params", "output_cost_per_character_above_128k_tokens", "money",
     "Vertex output character price above 128k"},
    {"litellm_params", "output_cost_per_image", "money", "price per generated image"},
    {"litellm_params", "output_cost_per_image_token", "money", "price per output image token"},
    {"litellm_params", "output_cost_per_pixel", "money", "custom price per output pixel (images)"},
    {"litellm_params", "output_cost_per_reasoning_token", "money", "price per reasoning token"},
    {"litellm_params", "output_cost_per_second", "money", "custom price per second of output"},
    {"litellm_params", "output_cost_per_second_1080p", "money", "video price per second at 1080p"},
    {"litellm_params", "output_cost_per_second_2k", "money", "video price per second at 2k"},
    {"litellm_params", "output_cost_per_second_480p", "money", "video price per second at 480p"},
    {"litellm_params", "output_cost_per_second_4k", "money", "video price per second at 4k"},
    {"litellm_params", "output_cost_per_second_720p", "money", "video price per second at 720p"},
    {"litellm_params", "output_cost_per_second_768p", "money", "video price per second at 768p"},
    {"litellm_params", "output_cost_per_token_above_128k_tokens", "money",
     "output price above 128k prompt tokens"},
    {"litellm_params", "output_cost_per_token_above_200k_tokens", "money",
     "output price above 200k prompt tokens"},
    {"litellm_params", "output_cost_per_token_batches", "money", "output price in the Batch API"},
    {"litellm_params", "output_cost_per_token_flex", "money",
     "output token price at the flex tier"},
    {"litellm_params", "output_cost_per_token_priority", "money",
     "output token price at the priority tier"},
    {"litellm_params", "output_cost_per_video_per_second", "money",
     "price per second of generated video"},
    {"litellm_params", "region_name", "access",
     "deployment region for region filtering (keys' allowed_model_region, EU residency)"},
    {"litellm_params", "search_context_cost_per_query", "money",
     "web-search price per query by context size (low/medium/high)"},
    {"litellm_params", "tag_regex", "access",
     "regexes on request headers that select this deployment in tag routing"},
    {"litellm_params", "tiered_pricing", "money", "Dashscope-style tiers by prompt size"},
    {"litellm_settings", "cache", "money",
     "turn on response caching (a hit is answered without an upstream call, at no cost)"},
    {"litellm_settings", "cache_params", "money",
     "the response cache's backend and options (redis, s3, semantic, local, ttl ...)"},
    {"litellm_settings", "disable_end_user_cost_tracking", "money",
     "stop recording end-user spend (spend logs + prometheus)"},
    {"litellm_settings", "key_generation_settings", "access",
     "who may generate team/personal keys, required params"},
    {"litellm_settings", "max_end_user_budget_id", "money",
     "shared budget_id applied to end users without one"},
    {"litellm_settings", "max_ui_session_budget", "money", "budget of UI chat-session keys"},
    {"litellm_settings", "priority_reservation", "limits",
     "share of capacity reserved per request priority"},
    {"litellm_settings", "tag_budget_config", "money", "budgets per request tag from the config"},
    {"model_info", "access_groups", "access",
     "model access groups; keys/teams granted a group may call its models"},
    {"model_info", "access_windows", "access", "time windows per team when the model may be used"},
    {"model_info", "allow_fail_open", "access",
     "tag routing falls back to default-tagged deployments"},
    {"model_info", "blocked", "access", "admin pause flag of the model"},
    {"model_info", "cost_per_ptu_per_hour", "money", "provisioned-throughput price per hour"},
    {"model_info", "ptu_count", "money", "provisioned throughput units billed per hour"},
    {"model_info", "ptu_effective_from", "money", "when the provisioned-throughput price starts"},
    {"model_info", "ptu_effective_to", "money", "when the provisioned-throughput price ends"},
    {"model_info", "supported_environments", "access",
     "environments (production, staging, ...) where the model is exposed"},
    {"model_info", "team_id", "access", "team that owns this (team-only) model"},
    {"model_info", "team_public_model_name", "access",
     "name the owning team calls the team model by"},
    {"model_info", "tier", "access", "free / paid tier used to route keys by their tier"},
    {"router_settings", "cache_responses", "money",
     "cache LLM responses (hits cost nothing upstream)"},
    {"router_settings", "caching_groups", "money", "groups sharing cached responses"},
    {"router_settings", "guardrail_list", "access", "guardrail deployments for load balancing"},
    {"router_settings", "optional_pre_call_checks", "limits",
     "extra checks: router budget limits, model rate limits, prompt caching, affinity ..."},
};

static int cmp(const void *k, const void *e)
{
    const struct refused *a = k, *b = e;
    int c = strcmp(a->section, b->section);
    return c != 0 ? c : strcmp(a->key, b->key);
}

static const struct refused *find(const char *section, const char *key)
{
    struct refused k = {section, key, NULL, NULL};
    return bsearch(&k, REFUSED, sizeof(REFUSED) / sizeof(REFUSED[0]), sizeof(REFUSED[0]), cmp);
}

const char *config_refused_why(const char *section, const char *key, const char **affects)
{
    const struct refused *r = find(section, key);
    /* a price LiteLLM also takes from model_info (Deployment mirrors litellm_params' prices
     * there): refused in either place */
    if (r == NULL && strcmp(section, "model_info") == 0 &&
        (r = find("litellm_params", key)) != NULL && strcmp(r->affects, "money") != 0)
        r = NULL;
    if (r != NULL && affects != NULL)
        *affects = r->affects;
    return r != NULL ? r->what : NULL;
}

/* LiteLLM callbacks that enforce rather than log (its proxy hooks and
 * guardrails): in callbacks / success_callback / failure_callback they
 * decide access or limits. */
static const struct {
    const char *name, *what;
} ENFORCING[] = {
    {"aporia", "guardrail"},
    {"azure_content_safety", "content filter"},
    {"batch_redis_requests", "request batching through Redis"},
    {"bedrock_guardrails", "guardrail"},
    {"detect_prompt_injection", "prompt-injection blocker"},
    {"dynamic_rate_limiter", "rate limiter"},
    {"dynamic_rate_limiter_v3", "rate limiter"},
    {"google_text_moderation", "content filter"},
    {"guardrails_ai", "guardrail"},
    {"hide_secrets", "secret masking"},
    {"lakera_prompt_injection", "prompt-injection blocker"},
    {"llamaguard_moderations", "content filter"},
    {"llmguard_moderations", "content filter"},
    {"max_budget_limiter", "budget limiter"},
    {"max_parallel_requests", "parallel-request limiter"},
    {"openai_moderations", "content filter"},
    {"parallel_request_limiter", "parallel-request limiter"},
    {"presidio", "PII masking"},
};

const char *config_refused_callback(const char *name)
{
    for (size_t i = 0; i < sizeof(ENFORCING) / sizeof(ENFORCING[0]); i++)
        if (strcmp(ENFORCING[i].name, name) == 0)
            return ENFORCING[i].what;
    return NULL;
}

size_t config_refused_count(void)
{
    return sizeof(REFUSED) / sizeof(REFUSED[0]);
}

int config_refused_at(size_t i, const char **section, const char **key)
{
    if (i >= config_refused_count())
        return -1;
    *section = REFUSED[i].section;
    *key = REFUSED[i].key;
    return 0;
}
