/* providers.c - the table of LiteLLM's provider prefixes (see providers.h).
 *
 * Sources, read for behaviour: LiteLLM's LlmProviders enum (litellm/types/utils.py),
 * openai_compatible_providers / openai_compatible_endpoints (litellm/constants.py),
 * get_llm_provider_logic.py's _get_openai_compatible_provider_info, each provider's
 * litellm/llms/<provider>/<route>/transformation.py (its default api_base), and the
 * JSON-configured providers (litellm/llms/openai_like/providers.json). The price
 * map's litellm_provider values map onto these prefixes ("vertex_ai-language-models"
 * is vertex_ai/, "bedrock_converse" is bedrock/); tests/unit/test_config.c checks
 * that every chat, completion, embedding and image provider of the shipped map is here.
 *
 * Where Tollgate's rule differs from LiteLLM's: api_base is the URL that
 * /chat/completions, /completions, /embeddings or /images/generations is appended
 * to, for every OpenAI-compatible provider (anthropic/'s is the host that
 * /v1/messages is appended to, as LiteLLM's). Servers that run on the user's own machine (vLLM,
 * llamafile, Ollama's kin) have no public default: LiteLLM falls back to
 * localhost, Tollgate asks for the URL. gemini/ goes to Google's OpenAI-compatible
 * endpoint (LiteLLM speaks Gemini's native API there).
 *
 * The table is sorted by prefix (provider_table's promise; the unit test checks it).
 */
#include "providers.h"

#include <stdlib.h>
#include <string.h>

#define OPENAI(p, base) {p, PROVIDER_OPENAI, base, NULL}
#define OPENAI_GIVE(p, what) {p, PROVIDER_OPENAI, NULL, what}
#define NATIVE(p, why) {p, PROVIDER_NATIVE, NULL, why}

#define SELF_HOSTED(what, litellm_default) \
    "give the URL of " what " (LiteLLM assumes " litellm_default " on its own machine)"
#define AWS_SIGV4 "needs AWS's own API with SigV4-signed requests, which Tollgate does not speak yet"
#define VERTEX "needs Google Vertex AI's API with service-account OAuth, which Tollgate does not " \
    "speak yet; Gemini models also work through gemini/ with an API key"
#define OLLAMA "needs Ollama's own API, which Tollgate does not speak; Ollama's OpenAI-compatible " \
    "API works: openai/<model> with api_base http://HOST:11434/v1"
#define COHERE "needs Cohere's own chat and embed APIs, which Tollgate does not speak yet; Cohere's " \
    "OpenAI-compatible API works: openai/<model> with api_base https://api.cohere.ai/compatibility/v1"
#define WATSONX "needs IBM watsonx.ai's API with an IAM token, which Tollgate does not speak yet"
#define AUDIO_ONLY "serves speech only; Tollgate relays chat, completions, embeddings and images"
#define NOT_UPSTREAM "is not a model upstream (a LiteLLM add-on); route with model groups instead"
#define AZURE_URL "give the resource's URL, e.g. https://RESOURCE.openai.azure.com"

static const struct provider PROVIDERS[] = {
    OPENAI("abliteration", "https://api.abliteration.ai/v1"),
    OPENAI("ai21", "https://api.ai21.com/studio/v1"),
    OPENAI("ai21_chat", "https://api.ai21.com/studio/v1"),
    OPENAI("aiml", "https://api.aimlapi.com/v1"),
    OPENAI_GIVE("aiohttp_openai", "give the OpenAI-compatible server's base URL, e.g. "
                "https://api.openai.com/v1"),
    NATIVE("aleph_alpha", "needs Aleph Alpha's own completion API, which Tollgate does not speak"),
    OPENAI("amazon_nova", "https://api.nova.amazon.com/v1"),
    {"anthropic", PROVIDER_ANTHROPIC, "https://api.anthropic.com", NULL},
    NATIVE("anthropic_text", "needs Anthropic's Text Completions API, which Tollgate does not "
           "speak; use an OpenAI-compatible endpoint instead, e.g. openrouter/"),
    OPENAI("anyscale", "https://api.endpoints.anyscale.com/v1"),
    OPENAI("apertis", "https://api.stima.tech/v1"),
    OPENAI("assemblyai", "https://llm-gateway.assemblyai.com/v1"),
    NATIVE("auto_router", NOT_UPSTREAM),
    NATIVE("aws_polly", AUDIO_ONLY),
    {"azure", PROVIDER_AZURE, NULL, AZURE_URL},
    NATIVE("azure_ai", "needs Azure AI Foundry's api-key header and api-version, which Tollgate "
           "sends only to azure/ (Azure OpenAI) deployments"),
    {"azure_text", PROVIDER_AZURE, NULL, AZURE_URL},
    OPENAI("baseten", "https://inference.baseten.co/v1"),
    NATIVE("bedrock", AWS_SIGV4),
    NATIVE("black_forest_labs", "needs Black Forest Labs' asynchronous image API, which Tollgate "
           "does not speak"),
    NATIVE("bytez", "needs Bytez's own model API, which Tollgate does not speak"),
    OPENAI("cerebras", "https://api.cerebras.ai/v1"),
    NATIVE("chatgpt", "needs a ChatGPT subscription's OAuth login, which Tollgate does not do"),
    OPENAI("chutes", "https://llm.chutes.ai/v1"),
    OPENAI("clarifai", "https://api.clarifai.com/v2/ext/openai/v1"),
    OPENAI_GIVE("cloudflare", "give Workers AI's OpenAI-compatible URL, "
                "https://api.cloudflare.com/client/v4/accounts/ACCOUNT_ID/ai/v1"),
    OPENAI("codestral", "https://codestral.mistral.ai/v1"),
    NATIVE("cohere", COHERE),
    NATIVE("cohere_chat", COHERE),
    OPENAI("cometapi", "https://api.cometapi.com/v1"),
    OPENAI("compactifai", "https://api.compactif.ai/v1"),
    NATIVE("custom", "is a Python CustomLLM handler inside LiteLLM; Tollgate has none"),
    OPENAI_GIVE("custom_openai", "give the OpenAI-compatible server's base URL"),
    OPENAI("dashscope", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
    OPENAI_GIVE("databricks", "give the workspace's serving endpoints, e.g. "
                "https://WORKSPACE.cloud.databricks.com/serving-endpoints"),
    OPENAI("datarobot", "https://app.datarobot.com/api/v2/genai/llmgw"),
    NATIVE("deepgram", AUDIO_ONLY),
    OPENAI("deepinfra", "https://api.deepinfra.com/v1/openai"),
    OPENAI("deepseek", "https://api.deepseek.com/beta"),
    OPENAI_GIVE("docker_model_runner", SELF_HOSTED("Docker Model Runner",
                "http://localhost:12434/engines/v1")),
    NATIVE("dotprompt", NOT_UPSTREAM),
    NATIVE("elevenlabs", AUDIO_ONLY),
    OPENAI("empower", "https://app.empower.dev/api/v1"),
    NATIVE("fal_ai", "needs fal.ai's queue API for images, which Tollgate does not speak"),
    OPENAI("featherless_ai", "https://api.featherless.ai/v1"),
    OPENAI("fireworks_ai", "https://api.fireworks.ai/inference/v1"),
    OPENAI("friendliai", "https://api.friendli.ai/serverless/v1"),
    OPENAI("galadriel", "https://api.galadriel.com/v1"),
    OPENAI("gemini", "https://generativelanguage.googleapis.com/v1beta/openai"),
    NATIVE("gigachat", "needs GigaChat's OAuth token exchange, which Tollgate does not do"),
    OPENAI("github", "https://models.inference.ai.azure.com"),
    NATIVE("github_copilot", "needs GitHub Copilot's OAuth device login, which Tollgate does not do"),
    OPENAI("gmi", "https://api.gmi-serving.com/v1"),
    OPENAI("gradient_ai", "https://inference.do-ai.run/v1"),
    OPENAI("groq", "https://api.groq.com/openai/v1"),
    OPENAI("helicone", "https://ai-gateway.helicone.ai"),
    OPENAI_GIVE("heroku", "give the add-on's INFERENCE_URL followed by /v1, e.g. "
                "https://us.inference.heroku.com/v1"),
    OPENAI_GIVE("hosted_vllm", "give the vLLM server's base URL, e.g. http://HOST:8000/v1"),
    NATIVE("huggingface", "needs Hugging Face's inference routing, which Tollgate does not speak; "
           "its OpenAI-compatible router works: openai/<model> with api_base "
           "https://router.huggingface.co/v1"),
    NATIVE("humanloop", NOT_UPSTREAM),
    OPENAI("hyperbolic", "https://api.hyperbolic.xyz/v1"),
    OPENAI_GIVE("infinity", "give the Infinity server's base URL"),
    OPENAI("jina_ai", "https://api.jina.ai/v1"),
    OPENAI("lambda_ai", "https://api.lambda.ai/v1"),
    NATIVE("langfuse", NOT_UPSTREAM),
    OPENAI_GIVE("lemonade", SELF_HOSTED("the Lemonade server", "http://localhost:8000/api/v1")),
    OPENAI_GIVE("litellm_proxy", "give the LiteLLM proxy's base URL"),
    OPENAI_GIVE("llamafile", SELF_HOSTED("the llamafile server", "http://127.0.0.1:8080/v1")),
    OPENAI("llamagate", "https://api.llamagate.dev/v1"),
    OPENAI_GIVE("lm_studio", "give LM Studio's server URL, e.g. http://localhost:1234/v1"),
    NATIVE("maritalk", "needs Maritaca AI's own API, which Tollgate does not speak"),
    OPENAI("meta_llama", "https://api.llama.com/compat/v1"),
    NATIVE("milvus", NOT_UPSTREAM),
    OPENAI("mistral", "https://api.mistral.ai/v1"),
    OPENAI("moonshot", "https://api.moonshot.ai/v1"),
    OPENAI("morph", "https://api.morphllm.com/v1"),
    OPENAI("nano-gpt", "https://nano-gpt.com/api/v1"),
    OPENAI("nebius", "https://api.studio.nebius.ai/v1"),
    NATIVE("nlp_cloud", "needs NLP Cloud's own API, which Tollgate does not speak"),
    OPENAI("novita", "https://api.novita.ai/v3/openai"),
    OPENAI("nscale", "https://inference.api.nscale.com/v1"),
    OPENAI("nvidia_nim", "https://integrate.api.nvidia.com/v1"),
    NATIVE("oci", "needs Oracle Cloud's signed requests, which Tollgate does not speak yet"),
    NATIVE("ollama", OLLAMA),
    NATIVE("ollama_chat", OLLAMA),
    NATIVE("oobabooga", "needs text-generation-webui's own API, which Tollgate does not speak"),
    OPENAI("openai", "https://api.openai.com/v1"),
    OPENAI_GIVE("openai_like", "give the OpenAI-compatible server's base URL"),
    OPENAI("openrouter", "https://openrouter.ai/api/v1"),
    OPENAI("ovhcloud", "https://oai.endpoints.kepler.ai.cloud.ovh.net/v1"),
    NATIVE("palm", "needs Google's retired PaLM API; use gemini/"),
    OPENAI("perplexity", "https://api.perplexity.ai"),
    NATIVE("petals", "runs Petals inside LiteLLM's Python process; Tollgate has no such client"),
    NATIVE("pg_vector", NOT_UPSTREAM),
    OPENAI("poe", "https://api.poe.com/v1"),
    NATIVE("predibase", "needs Predibase's own API, which Tollgate does not speak"),
    OPENAI("publicai", "https://api.publicai.co/v1"),
    OPENAI("recraft", "https://external.api.recraft.ai/v1"),
    NATIVE("replicate", "needs Replicate's predictions API, which Tollgate does not speak"),
    NATIVE("runwayml", "needs Runway's asynchronous task API, which Tollgate does not speak"),
    NATIVE("sagemaker", AWS_SIGV4),
    NATIVE("sagemaker_chat", AWS_SIGV4),
    NATIVE("sagemaker_nova", AWS_SIGV4),
    OPENAI("sambanova", "https://api.sambanova.ai/v1"),
    OPENAI("scaleway", "https://api.scaleway.ai/v1"),
    NATIVE("snowflake", "needs Snowflake Cortex's REST API with a JWT, which Tollgate does not "
           "speak yet"),
    OPENAI("synthetic", "https://api.synthetic.new/openai/v1"),
    NATIVE("text-completion-codestral", "needs Mistral's fill-in-the-middle API "
           "(/v1/fim/completions), which answers in its own shape; use codestral/ for chat"),
    OPENAI("text-completion-openai", "https://api.openai.com/v1"),
    OPENAI("together_ai", "https://api.together.xyz/v1"),
    NATIVE("topaz", "needs Topaz's image-enhancement API, which Tollgate does not speak"),
    NATIVE("triton", "needs Triton Inference Server's own API, which Tollgate does not speak"),
    OPENAI("v0", "https://api.v0.dev/v1"),
    OPENAI("veniceai", "https://api.venice.ai/api/v1"),
    OPENAI("vercel_ai_gateway", "https://ai-gateway.vercel.sh/v1"),
    NATIVE("vertex_ai", VERTEX),
    NATIVE("vertex_ai_beta", VERTEX),
    NATIVE("vllm", "runs vLLM inside LiteLLM's Python process; use hosted_vllm/ with the vLLM "
           "server's api_base"),
    OPENAI("volcengine", "https://ark.cn-beijing.volces.com/api/v3"),
    NATIVE("voyage", "needs Voyage AI's embeddings API, whose usage has no prompt_tokens, which "
           "Tollgate does not translate yet"),
    OPENAI("wandb", "https://api.inference.wandb.ai/v1"),
    NATIVE("watsonx", WATSONX),
    NATIVE("watsonx_text", WATSONX),
    OPENAI("xai", "https://api.x.ai/v1"),
    OPENAI("xiaomi_mimo", "https://api.xiaomimimo.com/v1"),
    OPENAI_GIVE("xinference", SELF_HOSTED("the Xinference server", "http://127.0.0.1:9997/v1")),
    OPENAI("zai", "https://api.z.ai/api/paas/v4"),
};

#define N_PROVIDERS (sizeof(PROVIDERS) / sizeof(PROVIDERS[0]))

static int by_prefix(const void *key, const void *entry)
{
    return strcmp(key, ((const struct provider *)entry)->prefix);
}

const struct provider *provider_find(const char *prefix)
{
    return bsearch(prefix, PROVIDERS, N_PROVIDERS, sizeof(PROVIDERS[0]), by_prefix);
}

const struct provider *provider_table(size_t *n)
{
    *n = N_PROVIDERS;
    return PROVIDERS;
}
