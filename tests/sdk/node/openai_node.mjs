// Drives the bridge with the official `openai` Node SDK.
// Usage: node openai_node.mjs BASE_URL SCENARIO MODEL; prints one JSON object.
import OpenAI from "openai";

const [baseURL, scenario, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 20_000 });
const messages = [{ role: "user", content: "hi" }];

async function streamText() {
  const stream = await client.chat.completions.create({ model, messages, stream: true });
  let text = "";
  let finish = null;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      text += choice.delta.content ?? "";
      finish = choice.finish_reason ?? finish;
    }
  }
  return { text, finish_reason: finish };
}

async function streamTools() {
  const tools = [{
    type: "function",
    function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
  }];
  const runner = client.chat.completions.stream({ model, messages, tools });
  const final = await runner.finalChatCompletion();
  const choice = final.choices[0];
  const call = choice.message.tool_calls[0];
  return {
    finish_reason: choice.finish_reason,
    id: call.id,
    name: call.function.name,
    arguments: JSON.parse(call.function.arguments),
  };
}

const scenarios = { stream_text: streamText, stream_tools: streamTools };
console.log(JSON.stringify(await scenarios[scenario]()));
