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
    int drop_params;      /* litellm_params.drop_params: 1, 0, or -1 (not set: the global) */
    int line;             /* where the entry starts in the file */
};

/* router_settings.fallbacks / litellm_settings.fallbacks: {group: [groups]} */
struct fallback {
    char *group;
    char **to;
    size_t n;
};

/* How proxyd spreads a group's traffic and what it does when a deployment fails. */
struct router_config {
    int num_retries;    /* more attempts within the group after a failure */
    int timeout_ms;     /* per attempt, unless the deployment sets its own */
    int allowed_fails;  /* failures within a minute before a deployment cools down */
    int cooldown_ms;
    struct fallback *fallbacks;
    size_t n_fallbacks;
};

struct listen_addr {
    char host[256];
    int port;
};

struct db_config {
    char *host, *user, *password, *database;
    unsigned port;
};

#define CONFIG_MAX_ACCOUNTD 16 /* accountd instances one config can name */

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
    char *log_format; /* tollgate.log_format: "logfmt" or "json" */
    char *log_level;  /* tollgate.log_level: debug, info, warn or error */
    struct router_config router;

    struct {
        struct listen_addr listen;
        char *spool_dir;
        size_t max_body_bytes;
        int upstream_timeout_ms;
        int key_cache_ttl_ms;
        int event_resend_ms;
        char *reportd_url;      /* where control-plane paths are forwarded */
        int readiness_grace_ms; /* readiness fails after accountd/MariaDB are gone this long */
        int spool_fsync_ms;     /* group fsync period; 0 = sync every event */
        int shutdown_grace_ms;  /* on SIGTERM: how long requests in flight may finish */
        uint64_t spool_max_bytes, spool_segment_bytes;
    } proxyd;
    struct {
        struct listen_addr listen;
        int workers;
        int shutdown_grace_ms;  /* on SIGTERM: how long answers in flight may finish */
        /* tollgate.reportd.read_database_url: a replica the spend reports read
         * from (host NULL: none; everything uses general_settings.database_url) */
        struct db_config read_db;
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

/* Reads and validates path. NULL on error, with "FILE:LINE: key: problem" in err. */
struct config *config_load(const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);

/* Do two settings differ (for a reload's "takes effect after a restart")?
 * Strings may be NULL. */
bool config_str_differs(const char *a, const char *b);
bool config_db_differs(const struct db_config *a, const struct db_config *b);
bool config_addr_differs(const struct listen_addr *a, const struct listen_addr *b);

/* "host:port" -> addr; -1 when malformed. */
int config_parse_listen(const char *s, struct listen_addr *addr);

#endif
