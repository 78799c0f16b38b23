// fake_openai_server.js: a stand-in OpenAI-compatible server for
// tests/cli_bench_serve.sh. It streams completions as SSE with delays and
// splits its writes at awkward places; the first part of the URL path picks a
// behaviour, so one process serves them all:
//   /good/...     (or any other name) every request streams max_tokens
//                 tokens, usage at the end
//   /slow/...     the same, slower
//   /nousage/...  no usage chunk (the client must count by itself)
//   /plain/...    a 200 answer that is plain JSON, not an event stream
//   /mixed/...    request k (per mode, from 0) by k % 7: 0-2 good, 3 HTTP 500,
//                 4 connection dropped mid-stream, 5 broken JSON in the
//                 stream, 6 stalls after one token (client timeout)
// GET .../v1/models names "fake-model"; POST .../tokenize counts words.
// Prints "listening on http://127.0.0.1:PORT" once ready (port 0: any free one)
// and "done MODE K" after each complete stream.
'use strict';
const http = require('http');

const port = Number(process.argv[2] || 0);
const counters = {};
const sockets = new Set();

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Writes s in pieces split at pseudo-random points, so the client sees
// events, lines and even \r\n pairs cut anywhere.
let splitState = 12345;
async function writeSplit(res, s) {
  let i = 0;
  while (i < s.length) {
    splitState = (splitState * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (splitState % 23);
    res.write(s.slice(i, i + n));
    i += n;
    if (splitState % 3 === 0) await sleep(1);
  }
}

function chunk(chat, text, finish) {
  const choice = chat
    ? { index: 0, delta: text === null ? {} : { content: text }, finish_reason: finish }
    : { index: 0, text: text === null ? '' : text, finish_reason: finish };
  return { id: 'cmpl-1', object: chat ? 'chat.completion.chunk' : 'text_completion', choices: [choice] };
}

async function stream(req, res, body, mode, k) {
  const chat = req.url.includes('/chat/completions');
  const maxTokens = body.max_tokens;
  const usageWanted = body.stream_options && body.stream_options.include_usage;
  let kind = 'good';
  if (mode === 'mixed') kind = ['good', 'good', 'good', 'http500', 'drop', 'badjson', 'stall'][k % 7];
  if (mode === 'plain') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ choices: [{ text: 'not streamed' }] }));
    return;
  }
  if (kind === 'http500') {
    res.writeHead(500, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'fake overload', type: 'server_error' } }));
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  const delay = mode === 'slow' ? 12 : 3;
  await sleep(delay * 3);
  for (let t = 0; t < maxTokens; t++) {
    if (kind === 'drop' && t === 2) {
      req.socket.destroy();
      return;
    }
    if (kind === 'badjson' && t === 2) {
      await writeSplit(res, 'data: {"choices": [{"text": "oops"\n\n');
      await sleep(delay);
      continue;
    }
    if (kind === 'stall' && t === 1) {
      await sleep(60000);
      return;
    }
    const eol = t % 2 ? '\r\n' : '\n';
    // a comment line now and then, which the client must skip
    const comment = t % 5 === 4 ? ': keep-alive' + eol : '';
    await writeSplit(res, comment + 'data: ' + JSON.stringify(chunk(chat, ' tok' + t, null)) + eol + eol);
    await sleep(delay);
  }
  await writeSplit(res, 'data: ' + JSON.stringify(chunk(chat, null, 'length')) + '\n\n');
  if (usageWanted && mode !== 'nousage') {
    const words = JSON.stringify(chat ? body.messages : body.prompt).split(' ').length;
    const u = { id: 'cmpl-1', choices: [], usage: { prompt_tokens: words, completion_tokens: maxTokens, total_tokens: words + maxTokens } };
    await writeSplit(res, 'data: ' + JSON.stringify(u) + '\n\n');
  }
  await writeSplit(res, 'data: [DONE]\n\n');
  res.end();
  console.log('done ' + mode + ' ' + k); // lets a test wait for progress
}

function bad(res, code, msg) {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { message: msg } }));
}

const server = http.createServer((req, res) => {
  const parts = req.url.split('/');
  const mode = parts[1];
  let data = '';
  req.on('data', (d) => {
    data += d;
  });
  req.on('end', () => {
    if (req.method === 'GET' && req.url.endsWith('/v1/models')) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake-model', object: 'model' }] }));
      return;
    }
    let body;
    try {
      body = JSON.parse(data);
    } catch (e) {
      bad(res, 400, 'body is not JSON');
      return;
    }
    if (req.url.endsWith('/tokenize')) {
      const n = String(body.content || '').split(' ').filter((w) => w).length;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ tokens: new Array(n).fill(7) }));
      return;
    }
    if (!req.url.endsWith('/v1/completions') && !req.url.endsWith('/v1/chat/completions')) {
      bad(res, 404, 'no such endpoint');
      return;
    }
    const chat = req.url.endsWith('/chat/completions');
    if (body.stream !== true || body.ignore_eos !== true || !Number.isInteger(body.max_tokens) ||
        body.max_tokens < 1 || !body.stream_options || body.stream_options.include_usage !== true ||
        body.model !== 'fake-model' || (chat ? !Array.isArray(body.messages) : typeof body.prompt !== 'string')) {
      bad(res, 400, 'unexpected request: ' + data.slice(0, 200));
      return;
    }
    const k = counters[mode] || 0;
    counters[mode] = k + 1;
    stream(req, res, body, mode, k).catch(() => {});
  });
});

server.on('connection', (s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});
server.listen(port, '127.0.0.1', () => {
  console.log('listening on http://127.0.0.1:' + server.address().port);
});
// Never outlive the test that started us.
setTimeout(() => {
  for (const s of sockets) s.destroy();
  server.close();
  process.exit(0);
}, Number(process.env.FAKE_SERVER_LIFETIME_MS || 120000)).unref();
process.on('SIGTERM', () => process.exit(0));
