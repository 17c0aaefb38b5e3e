// openai_client.mjs - the official OpenAI Node client (npm `openai` 4.x)
// talking to proxyd as an application would: a chat call, a streamed chat
// call and an embeddings call. Prints one JSON line with what it saw, for
// tests/e2e/test_openai_node.py to check against the ledger.
//
// Usage: node openai_client.mjs BASE_URL API_KEY
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

const chat = await client.chat.completions
  .create({
    model: "llama3",
    messages: [{ role: "user", content: "Hello from the Node client" }],
    user: "node-customer",
    metadata: { tags: ["client:node"] },
  })
  .withResponse();

const { data: stream, response: streamResponse } = await client.chat.completions
  .create({
    model: "llama3",
    messages: [{ role: "user", content: "Stream please" }],
    stream: true,
    stream_options: { include_usage: true },
  })
  .withResponse();
let text = "";
let streamUsage = null;
let streamId = null;
for await (const chunk of stream) {
  streamId = chunk.id;
  for (const choice of chunk.choices) text += choice.delta?.content ?? "";
  if (chunk.usage) streamUsage = chunk.usage;
}

const emb = await client.embeddings.create({ model: "llama3", input: "embed this" }).withResponse();

console.log(
  JSON.stringify({
    chat: {
      callId: chat.response.headers.get("x-litellm-call-id"),
      cost: chat.response.headers.get("x-litellm-response-cost"),
      content: chat.data.choices[0].message.content,
      usage: chat.data.usage,
    },
    stream: { text, usage: streamUsage, id: streamId,
              callId: streamResponse.headers.get("x-litellm-call-id") },
    embedding: {
      callId: emb.response.headers.get("x-litellm-call-id"),
      cost: emb.response.headers.get("x-litellm-response-cost"),
      dims: emb.data.data[0].embedding.length,
    },
  }),
);
