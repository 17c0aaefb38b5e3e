/* config.h - the one config file of all three daemons.
 *
 * LiteLLM's format (model_list, general_settings) plus Tollgate's own
 * `tollgate:` section, in which every key has a default. Loading either
 * yields a complete, validated struct config or one error naming the file,
 * the line and the key; unknown keys are warned about on stderr.
 */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "price.h"
#include "route_access.h"

enum upstream_kind { UPSTREAM_OPENAI, UPSTREAM_AZURE, UPSTREAM_ANTHROPIC };

#define ANTHROPIC_VERSION_DEFAULT "2023-06-01" /* the anthropic-version header */

/* One model_list entry: a deployment of the model group model_name. */
struct deployment {
    char *model_name;     /* the model group clients ask for */
    char *model;          /* litellm_params.model as written, e.g. groq/llama-3.1-8b-instant */
    char *provider;       /* the prefix ("groq"), "openai" when there is none */
    char *upstream_model; /* what the upstream is sent: model without the prefix */
    enum upstream_kind kind;
    char *api_base;       /* without a trailing slash */
    char *api_key;        /* may be NULL */
    char *api_version;    /* Azure's api-version; anthropic/'s anthropic-version header */
    char *base_model;     /* model_info.base_model or litellm_params.base_model */
    struct price_custom price; /* custom per-token prices; base_model points above */
    double weight;        /* share of the group's traffic (weight, else rpm, else tpm, else 1) */
    int timeout_ms;       /* litellm_params.timeout; 0 = the router's / proxyd's */
    int stream_timeout_ms; /* streams: longest silence from the upstream; 0 = timeout_ms */
    int drop_params;      /* litellm_params.drop_params: 1, 0, or -1 (not set); 1 or the global drops */
    struct deployment_shape *shape; /* defaults, drops, headers per request (config_params.h); NULL: none */
    double rpm, tpm;      /* litellm_params.rpm / tpm: requests and tokens a minute (0: none) */
    int max_parallel;     /* litellm_params.max_parallel_requests (0: not set) */
    char *model_id;       /* model_info.id, else a hash of what the deployment is (spend_logs.model_id) */
    int provider_budget;  /* index in cfg->budgets of its provider's budget; -1: none */
    int deployment_budget; /* index in cfg->budgets of its own max_budget; -1: none */
    char **tags;          /* litellm_params.tags (tag routing, config_groups.c) */
    size_t n_tags;
    int tag_filtering;    /* model_info.enable_tag_filtering: 1, 0, or -1 (not set) */
    long max_input_tokens; /* model_info.max_input_tokens; 0: not known */
    int line;             /* where the entry starts in the file */
};

/* router_settings.fallbacks / litellm_settings.fallbacks: {group: [groups]} */
struct fallback {
    char *group;
    char **to;
    size_t n;
};

/* router_settings.model_group_alias: alias: group, or alias: {model: group, hidden: true}. */
struct group_alias {
    char *alias;
    char *group;
    bool hidden; /* not listed by GET /v1/models, still served */
};

/* What besides a request's model name decides which group and deployment
 * serve it (config_groups.c reads it, proxyd/router.c applies it). */
struct group_config {
    struct group_alias *aliases;
    size_t n_aliases;
    bool tag_filtering;  /* router_settings.enable_tag_filtering */
    bool tag_match_any;  /* tag_filtering_match_any: one common tag is enough (default) */
    struct fallback *context_window; /* context_window_fallbacks */
    size_t n_context_window;
    struct fallback *content_policy; /* content_policy_fallbacks */
    size_t n_content_policy;
    char **default_fallbacks;        /* for every group without fallbacks of its own */
    size_t n_default_fallbacks;
};

/* router_settings.routing_strategy: LiteLLM's strategies (config_strategy.c
 * names them, proxyd/router_pick.c applies them). */
enum route_strategy {
    ROUTE_SIMPLE_SHUFFLE, ROUTE_LEAST_BUSY, ROUTE_USAGE_BASED, ROUTE_LATENCY_BASED,
    ROUTE_COST_BASED
};

/* router_settings.redis_host, redis_port, redis_password, redis_db or
 * redis_url: the Redis through which usage-based routing shares each
 * deployment's requests and tokens of the minute among proxyd (config_redis.c
 * reads it, proxyd/usage_share.c uses it). host "": not shared. */
struct redis_config {
    char host[256];
    char user[128];      /* redis_url's user (Redis 6 ACL); "": AUTH with the password alone */
    char password[512];  /* "": no AUTH */
    int port, db;
};

/* How proxyd spreads a group's traffic and what it does when a deployment fails. */
struct router_config {
    enum route_strategy strategy;
    int strategy_ttl_ms;      /* routing_strategy_args.ttl: how long latencies (1 h) or a
                               * minute's usage counts (60 s) are kept */
    double latency_buffer;    /* routing_strategy_args.lowest_latency_buffer */
    int latency_list_size;    /* routing_strategy_args.max_latency_list_size */
    int default_max_parallel; /* router_settings.default_max_parallel_requests (0: none) */
    struct redis_config redis; /* usage-based routing's shared counts */
    int num_retries;    /* more attempts within the group after a failure */
    int timeout_ms;     /* per attempt, unless the deployment sets its own */
    int allowed_fails;  /* failures within a minute before a deployment cools down */
    int cooldown_ms;
    struct fallback *fallbacks;
    size_t n_fallbacks;
};

/* A budget the config sets: litellm_settings.max_budget ("proxy"),
 * router_settings.provider_budget_config ("provider:<name>") or a
 * deployment's max_budget ("deployment:<model id>"). key names its row in
 * the config_budgets table, where accountd keeps its period spend. */
struct config_budget {
    char *key;
    char *owner;    /* "p:" + key: its name among proxyd's budget owners (owners.h) */
    money_t max;
    char *duration; /* budget_duration / time_period; NULL: never reset */
    int line;
};

/* upperbound_key_generate_params: caps of /key/generate and /key/update. */
struct key_caps {
    bool has_max_budget, has_parallel, has_tpm, has_rpm;
    money_t max_budget;
    int64_t parallel, tpm, rpm;
    char *budget_duration, *duration; /* as written; NULL: no cap */
};

/* litellm_settings' defaults and caps of the key and user routes
 * (config_keys.c reads them, reportd/manage_key_caps.c applies them). */
struct key_settings {
    char *key_defaults;  /* default_key_generate_params: a JSON object; NULL: none */
    struct key_caps caps;
    char *user_defaults; /* default_internal_user_params: a JSON object; NULL: none */
    /* max_internal_user_budget (else default_max_internal_user_budget) and
     * internal_user_budget_duration: an internal user's when /user/new gives none */
    bool has_user_budget;
    money_t user_budget;
    char *user_budget_duration;
};

/* Seconds from now that a duration ("30d", "1mo") lasts, months on the UTC
 * calendar as LiteLLM's duration_in_seconds; -1 when text is not one. */
long long config_duration_s(const char *text, long long now);

struct listen_addr {
    char host[256];
    int port;
};

/* An HTTP server's limits against hostile clients (http_limits.h):
 * tollgate.proxyd.* and tollgate.reportd.* (max_header_bytes, ...). */
struct config_http_limits {
    size_t max_header_bytes; /* request line and headers, line ends included */
    int max_headers;
    int max_connections;     /* reportd: shared evenly among its workers */
    int header_timeout_ms;   /* from a request's first byte to its headers' end */
    int idle_timeout_ms;     /* a keep-alive connection waiting for its next request */
    int body_timeout_ms;     /* from a request's headers' end to its body's */
};

/* TLS to MariaDB: the database URL's ssl, sslmode, sslrootcert, sslcert
 * and sslkey (config_db_tls.c; db.c applies them). */
enum db_tls_mode { DB_TLS_OFF, DB_TLS_REQUIRE, DB_TLS_VERIFY_CA, DB_TLS_VERIFY_FULL };
struct db_tls {
    enum db_tls_mode mode;
    char *ca, *cert, *key; /* file paths; NULL: none */
};
/* sslmode's word for m ("disable", "require", "verify-ca", "verify-full"). */
const char *config_db_tls_mode_name(enum db_tls_mode m);

struct db_config {
    char *host, *user, *password, *database;
    unsigned port;
    struct db_tls tls;
};

#define CONFIG_MAX_ACCOUNTD 16 /* accountd instances one config can name */
#define CONFIG_MAX_CURVE_CLIENTS 256 /* proxyd public keys one config can allow */

/* How proxyd and accountd authenticate each other on ZeroMQ (CURVE, with
 * accountd's ZAP handler checking client keys; config_curve.c reads it,
 * libtollgate/curve.c and accountd/zap.c apply it). Keys are Z85 text (40
 * characters); secret keys only ever come from files. */
struct curve_config {
    bool off; /* tollgate.curve: off (plain ZeroMQ, loopback endpoints only) */
    /* tollgate.accountd.curve_secret_key_file: one file for every instance, or one each */
    char *server_secret_files[CONFIG_MAX_ACCOUNTD];
    size_t n_server_secret_files;
    /* tollgate.accountd.curve_client_public_keys: the proxyd (and tools) accountd serves */
    char *client_public_keys[CONFIG_MAX_CURVE_CLIENTS];
    size_t n_client_public_keys;
    char *client_secret_file; /* tollgate.proxyd.curve_secret_key_file */
    /* tollgate.proxyd.curve_server_public_keys: accountd's, one for all or one each */
    char *server_public_keys[CONFIG_MAX_ACCOUNTD];
    size_t n_server_public_keys;
};

struct config {
    char *path;
    struct deployment *deployments;
    size_t n_deployments;
    char *master_key; /* may be NULL: then only virtual keys work */
    char master_token[65]; /* its SHA-256 hex, hashed once at load; "" without one */
    /* What proxyd signs the ids it makes up with (Responses API ids): from the
     * master key, else from the database's credentials, so every proxyd of
     * one config signs alike. */
    char id_secret[65];
    struct db_config db;
    char *price_file; /* NULL: the price map built into the binary */
    char *timezone;   /* litellm_settings.timezone: budget periods' calendar (IANA name) */
    /* Upstream TLS (litellm_settings.ssl_verify, as LiteLLM): certificates are checked
     * unless ssl_verify is false; against ssl_ca_file when set (ssl_verify as a path,
     * else $SSL_CERT_FILE), else the system's CA bundle. */
    bool ssl_verify;
    char *ssl_ca_file;
    /* litellm_settings.drop_params: parameters an upstream's API has no
     * equivalent for are dropped instead of refused with a 400 */
    bool drop_params;
    /* general_settings.disable_responses_id_security: any key allowed the
     * model group may use any response id, not only its user's or team's */
    bool responses_id_security_off;
    long log_retention_s; /* maximum_spend_logs_retention_period; 0 = keep every log row */
    struct route_access access; /* general_settings' route controls (route_access.h) */
    char *log_format; /* tollgate.log_format: "logfmt" or "json" */
    char *log_level;  /* tollgate.log_level: debug, info, warn or error */
    struct router_config router;
    struct group_config groups; /* aliases, tag routing, special fallbacks (config_groups.c) */
    struct key_settings keys;      /* config_keys.c */
    struct config_budget *budgets; /* config_budgets.c */
    size_t n_budgets;
    int proxy_budget;              /* index of "proxy" in budgets; -1: none */
    long global_max_parallel;      /* general_settings.global_max_parallel_requests; 0: none */
    struct {                       /* rate limits' settings (config_ratelimit.c) */
        enum token_count { TOKENS_TOTAL, TOKENS_INPUT, TOKENS_OUTPUT } count;
        long output_tokens; /* answer tokens assumed for a request without max_tokens */
        bool fail_open;     /* Redis unreachable: admit all (else limit / instances here) */
        long instances;     /* proxyd sharing the limits, for that fallback */
        long slot_ttl_ms;   /* a parallel slot in Redis expires after this */
    } ratelimit;
    money_t max_end_user_budget;   /* litellm_settings.max_end_user_budget: end users
                                    * without a budget of their own; 0: none */

    struct curve_config curve;

    struct {
        struct listen_addr listen;
        char *spool_dir;
        size_t max_body_bytes;
        int upstream_timeout_ms;
        int key_cache_ttl_ms;
        size_t key_cache_max_entries;    /* key rows kept (least recently used go) */
        size_t owner_cache_max_entries;  /* end-user, tag and config-budget rows kept */
        int key_negative_ttl_ms;         /* an unknown key is refused without a lookup so long */
        size_t key_negative_max_entries; /* unknown keys remembered */
        int key_lookups_max;             /* lookups of never-seen keys or owners in flight */
        int event_resend_ms;
        char *reportd_url;      /* where control-plane paths are forwarded */
        int readiness_grace_ms; /* readiness fails after accountd/MariaDB are gone this long */
        int spool_fsync_ms;     /* group fsync period; 0 = sync every event */
        int shutdown_grace_ms;  /* on SIGTERM: how long requests in flight may finish */
        uint64_t spool_max_bytes, spool_segment_bytes;
        struct config_http_limits http;
        size_t max_metadata_bytes; /* a request's metadata (without tags) as compact JSON */
    } proxyd;
    struct {
        struct listen_addr listen;
        int workers;
        int shutdown_grace_ms;  /* on SIGTERM: how long answers in flight may finish */
        /* tollgate.reportd.read_database_url: a replica the spend reports read
         * from (host NULL: none; everything uses general_settings.database_url) */
        struct db_config read_db;
        struct config_http_limits http;
    } reportd;
    struct {
        /* One pair of ZeroMQ endpoints per accountd instance: instance i binds
         * events[i] (ROUTER) and updates[i] (PUB, committed spend); proxyd
         * connects to all of them and shares its events among them. */
        char *events[CONFIG_MAX_ACCOUNTD];
        char *updates[CONFIG_MAX_ACCOUNTD];
        /* HOST:PORT of each instance's GET /metrics (Prometheus text); none
         * when the config names none (n_metrics 0, else n_accountd). */
        struct listen_addr metrics[CONFIG_MAX_ACCOUNTD];
        size_t n_metrics;
        size_t n_accountd;
        int batch_max_events;
        int batch_wait_ms;
        int writers; /* writer threads, each committing a batch on its own connection */
        int shutdown_grace_ms; /* on SIGTERM: how long the batches in hand may take to commit */
    } accountd;
};

/* Does config budget `key` count a request served by a deployment of
 * `provider` with `model_id` (NULL: none)? "proxy" counts every request,
 * "provider:P" those of P, "deployment:ID" those of ID: the rule accountd
 * counts by and its resets recount by (config_budgets.c). */
bool config_budget_covers(const char *key, const char *provider, const char *model_id);

/* Reads and validates path. NULL on error, with "FILE:LINE: key: problem" in err. */
struct config *config_load(const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);

/* Do two settings differ (for a reload's "takes effect after a restart")?
 * Strings may be NULL. */
bool config_str_differs(const char *a, const char *b);
bool config_db_differs(const struct db_config *a, const struct db_config *b);
bool config_addr_differs(const struct listen_addr *a, const struct listen_addr *b);
bool config_curve_differs(const struct curve_config *a, const struct curve_config *b);
bool config_http_limits_differ(const struct config_http_limits *a,
                               const struct config_http_limits *b);

/* "host:port" -> addr; -1 when malformed. */
int config_parse_listen(const char *s, struct listen_addr *addr);

#endif
