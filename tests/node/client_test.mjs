// client_test.mjs: the official `openai` client against `pagoda serve`:
// completions and chat, plain and streamed, stop sequences, usage, n with
// seeds, logprobs, and error cases surfacing as the client's APIError with
// the right status. Usage: node client_test.mjs BASE_URL API_KEY MODEL
import OpenAI from 'openai';

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
let passed = 0;
let failed = 0;

function check(cond, what) {
  if (cond) {
    passed++;
  } else {
    failed++;
    console.error(`FAIL: ${what}`);
  }
}

async function test(name, fn) {
  try {
    await fn();
  } catch (e) {
    failed++;
    console.error(`FAIL: ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

const story = 'Once upon a time';

await test('models', async () => {
  const list = await client.models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  check(ids.length === 1 && ids[0] === model, `models: ${JSON.stringify(ids)}`);
});

let plainText = '';
await test('completion', async () => {
  const r = await client.completions.create({ model, prompt: story, max_tokens: 20, temperature: 0 });
  plainText = r.choices[0].text;
  check(r.object === 'text_completion', `object ${r.object}`);
  check(plainText.startsWith(', there was a little girl named Lily.'), `text: ${JSON.stringify(plainText)}`);
  check(r.choices[0].finish_reason === 'length', `finish ${r.choices[0].finish_reason}`);
  check(r.usage.prompt_tokens === 5 && r.usage.completion_tokens === 20 && r.usage.total_tokens === 25,
        `usage ${JSON.stringify(r.usage)}`);
});

await test('completion stream', async () => {
  const s = await client.completions.create({
    model, prompt: story, max_tokens: 20, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of s) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text || '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  check(text === plainText, `streamed ${JSON.stringify(text)} vs ${JSON.stringify(plainText)}`);
  check(finish === 'length', `stream finish ${finish}`);
  check(usage && usage.completion_tokens === 20 && usage.prompt_tokens === 5, `stream usage ${JSON.stringify(usage)}`);
});

await test('stop sequences', async () => {
  const r = await client.completions.create({
    model, prompt: story, max_tokens: 60, temperature: 0, stop: ['Lily', 'never'],
  });
  check(r.choices[0].text === ', there was a little girl named ', `stop text ${JSON.stringify(r.choices[0].text)}`);
  check(r.choices[0].finish_reason === 'stop', `stop finish ${r.choices[0].finish_reason}`);
  const s = await client.completions.create({
    model, prompt: story, max_tokens: 60, temperature: 0, stop: 'Lily', stream: true,
  });
  let text = '';
  let finish = null;
  for await (const chunk of s) {
    for (const c of chunk.choices) {
      text += c.text || '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  check(text === ', there was a little girl named ' && finish === 'stop', `streamed stop ${JSON.stringify(text)} ${finish}`);
});

let chatText = '';
const messages = [
  { role: 'system', content: 'You tell short stories.' },
  { role: 'user', content: 'Tell me about a cat.' },
];
await test('chat', async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
  chatText = r.choices[0].message.content;
  check(r.object === 'chat.completion', `chat object ${r.object}`);
  check(r.choices[0].message.role === 'assistant', 'chat role');
  check(typeof chatText === 'string' && chatText.length > 0, 'chat content');
  check(['stop', 'length'].includes(r.choices[0].finish_reason), `chat finish ${r.choices[0].finish_reason}`);
  check(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 16 &&
        r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, `chat usage ${JSON.stringify(r.usage)}`);
});

await test('chat stream', async () => {
  const s = await client.chat.completions.create({
    model, messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let role = null;
  let finish = null;
  let usage = null;
  for await (const chunk of s) {
    check(chunk.object === 'chat.completion.chunk', `chunk object ${chunk.object}`);
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      text += c.delta.content || '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  check(role === 'assistant', 'stream role');
  check(text === chatText, `chat stream ${JSON.stringify(text)} vs ${JSON.stringify(chatText)}`);
  check(finish !== null, 'chat stream finish');
  check(usage && usage.completion_tokens > 0, 'chat stream usage');
});

await test('chat stream helper', async () => {
  const runner = client.chat.completions.stream({ model, messages, max_tokens: 16, temperature: 0 });
  const final = await runner.finalChatCompletion();
  check(final.choices[0].message.content === chatText, `stream helper ${JSON.stringify(final.choices[0].message.content)}`);
});

await test('n and seeds, logprobs', async () => {
  const r = await client.completions.create({ model, prompt: 'Once', max_tokens: 12, temperature: 1, seed: 9, n: 2 });
  const one = await client.completions.create({ model, prompt: 'Once', max_tokens: 12, temperature: 1, seed: 10 });
  check(r.choices.length === 2 && r.choices[1].index === 1, 'two choices');
  check(r.choices[1].text === one.choices[0].text, 'choice 1 is seed + 1');
  const c = await client.chat.completions.create({
    model, messages, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 2,
  });
  const lp = c.choices[0].logprobs.content;
  check(lp.length === c.usage.completion_tokens && lp.every((t) => t.logprob <= 0 && t.top_logprobs.length === 2),
        `chat logprobs ${JSON.stringify(lp).slice(0, 200)}`);
});

async function expectError(what, status, fn) {
  try {
    await fn();
    check(false, `${what}: no error`);
  } catch (e) {
    check(e instanceof OpenAI.APIError, `${what}: not an APIError: ${e}`);
    check(e.status === status, `${what}: status ${e.status}, want ${status}`);
    check(typeof e.message === 'string' && e.message.length > 0, `${what}: message`);
  }
}

await test('errors', async () => {
  await expectError('unknown model', 404, () =>
    client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 2 }));
  await expectError('bad temperature', 400, () =>
    client.chat.completions.create({ model, messages, temperature: 5 }));
  await expectError('empty messages', 400, () => client.chat.completions.create({ model, messages: [] }));
  const bad = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
  await expectError('wrong key', 401, () => bad.completions.create({ model, prompt: 'x', max_tokens: 2 }));
  try {
    await client.completions.create({ model: 'no-such-model', prompt: 'x' });
  } catch (e) {
    check(e.code === 'model_not_found' && e.param === 'model', `error code ${e.code} param ${e.param}`);
  }
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
