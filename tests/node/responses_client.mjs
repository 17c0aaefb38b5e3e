// responses_client.mjs - the official OpenAI Node client (npm `openai`, the
// version tests/node's lockfile pins) talking to proxyd's Responses API as an
// application would: responses.create plain and streamed, then
// responses.retrieve of each created id. Prints one JSON line with what it
// saw, each call's x-litellm-call-id and x-litellm-response-cost included,
// for tests/e2e/test_sdk_messages_responses.py to check against the ledger
// and the price map.
//
// Usage: node responses_client.mjs BASE_URL API_KEY PLAN_JSON
//   BASE_URL   proxyd with "/v1"
//   PLAN_JSON  {"plain": {...}, "stream": {...}}: body members to send with
//              each create (the model, fake-upstream's mock_* fields). The
//              client sends a body's members as they are, so extra keys need
//              no option (in TypeScript they would need a cast).
import OpenAI from "openai";

const [baseURL, apiKey, planJson] = process.argv.slice(2);
const plan = JSON.parse(planJson);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

// The gateway's headers of one raw response.
function gateway(response) {
  return {
    callId: response.headers.get("x-litellm-call-id"),
    cost: response.headers.get("x-litellm-response-cost"),
  };
}

// What the test checks of one Response object.
function summary(r) {
  return { id: r.id, status: r.status, model: r.model, text: r.output_text, usage: r.usage };
}

// responses.retrieve of one id, with its headers.
async function retrieve(id) {
  const { data, response } = await client.responses.retrieve(id).withResponse();
  return { ...gateway(response), ...summary(data) };
}

const plain = await client.responses
  .create({ model: "gpt", input: "Hello from the OpenAI SDK", ...plan.plain })
  .withResponse();

const { data: stream, response: streamResponse } = await client.responses
  .create({ model: "gpt", input: "Stream please", stream: true, ...plan.stream })
  .withResponse();
const events = [];
const deltas = [];
let completed = null;
for await (const event of stream) {
  events.push(event.type);
  if (event.type === "response.output_text.delta") deltas.push(event.delta);
  if (event.type === "response.completed") completed = event.response;
}

console.log(
  JSON.stringify({
    plain: { ...gateway(plain.response), ...summary(plain.data) },
    stream: {
      ...gateway(streamResponse),
      events,
      deltas,
      completed: completed && summary(completed),
    },
    retrievePlain: await retrieve(plain.data.id),
    retrieveStream: completed ? await retrieve(completed.id) : null,
  }),
);
