"""stream_cases.py - the proxy benchmark's three kinds of stream: an OpenAI chat
completion, an Anthropic Messages call and an OpenAI Responses call, each as sent
straight to fake-upstream and as sent through proxyd (body, path, headers, the event
that ends a complete stream, the ledger's call_type); the model_list entries the
Messages and Responses cases need; and the ledger check per case (every stream
proxyd answered is one row of its case's virtual key and call type)."""

CHAT_MESSAGES = [{"role": "user", "content": "hello"}]
ANTHROPIC_VERSION = "2023-06-01"
# a short stream: three one-word content events, no delay between events
STREAM_MOCK = {"stream": True, "mock_content": "token", "mock_chunks": 3}


class StreamCase:
    def __init__(self, name, title, path, marker, call_type, models, fields, anthropic=False):
        self.name, self.title, self.path = name, title, path
        self.marker = marker          # in every complete stream, near its end
        self.call_type = call_type    # spend_logs.call_type of its rows
        self.direct_model, self.proxy_model = models
        self.fields = fields
        self.anthropic = anthropic    # x-api-key and anthropic-version, not a Bearer key
        self.key_alias = "bench-stream-" + name  # its own virtual key: its rows are countable

    def body(self, direct):
        return dict(self.fields, model=self.direct_model if direct else self.proxy_model,
                    **STREAM_MOCK)

    def headers(self, key):
        if self.anthropic:
            return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
        return {"Authorization": "Bearer " + key}


def stream_cases(upstream_model):
    """The cases, in the order they are measured and printed; upstream_model is what
    proxyd sends upstream for model group llama3."""
    return [
        StreamCase("chat", "chat completions", "/v1/chat/completions", "[DONE]",
                   "chat_completion", (upstream_model, "llama3"), {"messages": CHAT_MESSAGES}),
        StreamCase("messages", "Anthropic Messages", "/v1/messages", "event: message_stop",
                   "anthropic_messages", ("claude-sonnet-4-20250514", "claude"),
                   {"max_tokens": 64, "messages": CHAT_MESSAGES}, anthropic=True),
        StreamCase("responses", "OpenAI Responses", "/v1/responses", "event: response.completed",
                   "responses", ("gpt-4o", "gpt"), {"input": "hello"}),
    ]


def extra_models(stack):
    """model_list entries for the Messages and Responses cases: the e2e tests' own."""
    import harness  # tests/e2e, on the path proxy_bench.py sets
    return harness.protocol_models(stack)


def ledger_by_case(stack, cases, answered):
    """Each case's ledger rows (its virtual key) against the streams proxyd answered
    with that key: {name: {answered, rows, rows_2xx, other_call_types, ok}}."""
    rows = stack.sql(
        "SELECT key_alias, call_type, COUNT(*), COALESCE(SUM(http_status BETWEEN 200 AND 299), 0)"
        " FROM spend_logs WHERE key_alias LIKE 'bench-stream-%' GROUP BY key_alias, call_type")
    out = {}
    for c in cases:
        mine = [r for r in rows if r[0] == c.key_alias]
        n = sum(int(r[2]) for r in mine if r[1] == c.call_type)
        ok2xx = sum(int(r[3]) for r in mine if r[1] == c.call_type)
        other = {r[1]: int(r[2]) for r in mine if r[1] != c.call_type}
        out[c.name] = {"answered": answered[c.name], "rows": n, "rows_2xx": ok2xx,
                       "other_call_types": other,
                       "ok": n == ok2xx == answered[c.name] and not other}
    return out
