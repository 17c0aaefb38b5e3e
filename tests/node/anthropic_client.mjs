// anthropic_client.mjs - the official Anthropic TypeScript SDK (npm
// `@anthropic-ai/sdk`, pinned in package-lock.json) talking to proxyd's
// Messages API as an application would: messages.countTokens, then
// messages.create once per planned call (cached prompts, the >200k tier) and
// messages.stream. Prints
// one JSON line with what it saw, each call's x-litellm-call-id and
// x-litellm-response-cost included, for tests/e2e/test_sdk_messages_responses.py
// to check against the ledger and the price map.
//
// Usage: node anthropic_client.mjs BASE_URL API_KEY PLAN_JSON
//   BASE_URL   proxyd without "/v1" (the SDK adds "/v1/messages")
//   PLAN_JSON  {"creates": [{...}, ...], "stream": {...}}: body members to
//              send with each create and with the stream (fake-upstream's
//              mock_* fields; "model" to override "claude"). The SDK sends a params
//              object's members as the body as they are, so extra keys such as
//              mock_usage_raw need no option (in TypeScript they would need a
//              cast); the SDK itself adds the x-api-key and anthropic-version
//              headers.
import Anthropic from "@anthropic-ai/sdk";

const [baseURL, apiKey, planJson] = process.argv.slice(2);
const plan = JSON.parse(planJson);
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0 });

// The gateway's headers of one raw response.
function gateway(response) {
  return {
    callId: response.headers.get("x-litellm-call-id"),
    cost: response.headers.get("x-litellm-response-cost"),
  };
}

// One messages.create, answered with the SDK's parsed message and its headers.
async function create(mocks, content) {
  const { data, response } = await client.messages
    .create({
      model: "claude",
      max_tokens: 64,
      messages: [{ role: "user", content }],
      ...mocks,
    })
    .withResponse();
  return {
    ...gateway(response),
    type: data.type,
    id: data.id,
    text: data.content.filter((b) => b.type === "text").map((b) => b.text).join(""),
    usage: data.usage,
  };
}

// countTokens comes first: once the later calls' ledger rows are in, a row of
// its own would be too.
const { data: counted, response: countResponse } = await client.messages
  .countTokens({ model: "claude", messages: [{ role: "user", content: "Count me" }] })
  .withResponse();

const creates = [];
for (const mocks of plan.creates) creates.push(await create(mocks, "Hello from the Anthropic SDK"));

// messages.stream: the headers come with the connection, the text as deltas,
// the usage with the final message.
const stream = client.messages.stream({
  model: "claude",
  max_tokens: 64,
  messages: [{ role: "user", content: "Stream please" }],
  ...plan.stream,
});
const { response: streamResponse } = await stream.withResponse();
const deltas = [];
const events = [];
for await (const event of stream) {
  events.push(event.type);
  if (event.type === "content_block_delta" && event.delta.type === "text_delta")
    deltas.push(event.delta.text);
}
const final = await stream.finalMessage();

console.log(
  JSON.stringify({
    countTokens: { ...gateway(countResponse), answer: counted },
    creates,
    stream: {
      ...gateway(streamResponse),
      deltas,
      events,
      finalText: final.content.filter((b) => b.type === "text").map((b) => b.text).join(""),
      stopReason: final.stop_reason,
      usage: final.usage,
    },
  }),
);
