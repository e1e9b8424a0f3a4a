// Bad requests: each gets OpenAI's error JSON with the right status, before
// any generation starts. Also authentication, CORS, and the busy queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { client, http, metrics, assertError, MODEL, BASE, SMALL, KEY, waitFor } from './lib.mjs';

const chat = (extra) => ({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, ...extra });

test('malformed JSON and non-object bodies are 400', async () => {
  assertError(await http('/v1/chat/completions', { body: '{"messages": [' }), 400, null);
  assertError(await http('/v1/chat/completions', { body: '[1, 2]' }), 400, null);
  assertError(await http('/v1/completions', { body: '' }), 400, null);
  assertError(await http('/v1/completions', { body: '{"prompt": "\\ud800"}' }), 400, null); // lone surrogate
  assertError(await http('/v1/completions', { body: '['.repeat(30000) + ']'.repeat(30000) }), 400, null); // deep nesting
});

test('wrong types and out-of-range values are 400 naming the field', async () => {
  const cases = [
    [{ temperature: 'hot' }, 'temperature'], [{ max_tokens: '10' }, 'max_tokens'], [{ top_p: 2 }, 'top_p'],
    [{ stream: 'yes' }, 'stream'], [{ stop: 42 }, 'stop'], [{ n: 0 }, 'n'], [{ seed: 'x' }, 'seed'],
    [{ messages: 'hi' }, 'messages'], [{ messages: [] }, 'messages'],
    [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user', content: 7 }] }, 'messages[0].content'],
  ];
  for (const [extra, param] of cases) {
    const e = assertError(await http('/v1/chat/completions', { body: chat(extra) }), 400, param);
    assert.equal(e.type, 'invalid_request_error');
  }
  assertError(await http('/v1/completions', { body: { model: MODEL } }), 400, 'prompt');
  assertError(await http('/v1/completions', { body: { prompt: [1, 99999] } }), 400, 'prompt');
  assertError(await http('/detokenize', { body: { tokens: [1, -3] } }), 400, 'tokens');
  assertError(await http('/tokenize', { body: { content: 3 } }), 400, 'content');
});

test('the SDK surfaces a 400 as BadRequestError', async () => {
  await assert.rejects(client().chat.completions.create(chat({ temperature: 'hot' })), (err) => {
    assert.ok(err instanceof OpenAI.BadRequestError);
    assert.equal(err.status, 400);
    assert.equal(err.param, 'temperature');
    return true;
  });
});

test('a prompt longer than the context is 400 context_length_exceeded', async () => {
  const long = 'Once upon a time there was a dog. '.repeat(400); // far beyond --ctx 256
  const e = assertError(await http('/v1/completions', { body: { model: MODEL, prompt: long } }), 400, 'prompt');
  assert.equal(e.code, 'context_length_exceeded');
  const e2 = assertError(await http('/v1/chat/completions', { body: chat({ messages: [{ role: 'user', content: long }] }) }), 400, 'messages');
  assert.equal(e2.code, 'context_length_exceeded');
});

test('an oversized body is 413', async () => {
  const r = await http('/v1/completions', { body: JSON.stringify({ prompt: 'x'.repeat(200000) }) });
  assertError(r, 413);
  assert.equal((await http('/health', { method: 'GET' })).status, 200, 'the server is still fine');
});

test('unknown model is 404 model_not_found; unknown route 404; wrong method 405', async () => {
  const e = assertError(await http('/v1/chat/completions', { body: chat({ model: 'gpt-4o' }) }), 404, 'model');
  assert.equal(e.code, 'model_not_found');
  assertError(await http('/v1/nothing-here', { method: 'GET' }), 404);
  assertError(await http('/v1/nothing-here', { body: {} }), 404);
  const m = await http('/v1/chat/completions', { method: 'GET' });
  assertError(m, 405);
  assert.match(m.headers.get('allow'), /POST/);
  assertError(await http('/v1/embeddings', { body: { input: 'x' } }), 501);
});

test('API key: Bearer or X-Api-Key; /health and /v1/models are open', { skip: !KEY && 'no --api-key' }, async () => {
  assertError(await http('/v1/chat/completions', { body: chat(), key: '' }), 401);
  assertError(await http('/v1/chat/completions', { body: chat(), key: KEY + 'x' }), 401);
  assertError(await http('/metrics', { method: 'GET', key: '' }), 401);
  const e = assertError(await http('/v1/completions', { body: { prompt: 'x' }, headers: { Authorization: 'Bearer nope' }, key: '' }), 401);
  assert.equal(e.type, 'authentication_error');
  assert.equal((await http('/v1/chat/completions', { body: chat(), key: '', headers: { 'X-Api-Key': KEY } })).status, 200);
  assert.equal((await http('/v1/chat/completions', { body: chat() })).status, 200);
  assert.equal((await http('/health', { method: 'GET', key: '' })).status, 200);
  assert.equal((await http('/v1/models', { method: 'GET', key: '' })).status, 200);
  await assert.rejects(client({ apiKey: 'wrong' }).completions.create({ model: MODEL, prompt: 'x', max_tokens: 1 }),
    (err) => err instanceof OpenAI.AuthenticationError && err.status === 401);
});

test('CORS: preflight answered without a key; Origin echoed on replies', async () => {
  const res = await fetch(`${BASE}/v1/chat/completions`, {
    method: 'OPTIONS',
    headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'authorization, content-type' },
  });
  assert.ok(res.status === 204 || res.status === 200, `status ${res.status}`);
  assert.equal(res.headers.get('access-control-allow-origin'), 'http://localhost:3000');
  assert.match(res.headers.get('access-control-allow-methods'), /POST/);
  assert.match(res.headers.get('access-control-allow-headers'), /authorization/i);
  const r = await http('/v1/models', { method: 'GET', headers: { Origin: 'http://example.test' } });
  assert.equal(r.headers.get('access-control-allow-origin'), 'http://example.test');
  const plain = await http('/v1/models', { method: 'GET' });
  assert.equal(plain.headers.get('access-control-allow-origin'), '*');
});

test('a full queue answers 503 and the server recovers', { skip: !SMALL && 'no small server' }, async () => {
  // SMALL serves random weights at the tiny shape (about a millisecond a token)
  // with --slots 1 --queue 1: with one 4000-token stream generating and one
  // waiting, the next request must be refused. A stream that ends before the
  // window is checked (a very fast machine) is retried.
  const long = JSON.stringify({ prompt: [1, 2, 3], max_tokens: 4000, temperature: 0, ignore_eos: true, stream: true });
  const state = async () => metrics(SMALL, '');
  const stream = (ctl) => fetch(`${SMALL}/v1/completions`, {
    method: 'POST', body: long, signal: ctl.signal, headers: { 'Content-Type': 'application/json' } });
  let refused = null;
  for (let attempt = 0; attempt < 5 && !refused; attempt++) {
    const ctls = [new AbortController(), new AbortController()];
    try {
      if ((await stream(ctls[0])).status !== 200) continue;
      const s0 = await state();
      if (s0.onebit_slots_busy !== 1 || s0.onebit_queue_depth !== 0) continue; // first stream already done
      stream(ctls[1]).catch((e) => e);                                         // the second waits in the queue
      let s1;
      await waitFor(async () => { s1 = await state(); return s1.onebit_queue_depth === 1 || s1.onebit_slots_busy === 0; },
        10000, 'the second stream to queue');
      if (s1.onebit_queue_depth !== 1) continue;                               // the first ended meanwhile
      const r = await http('/v1/completions', { base: SMALL, key: '', body: { prompt: [5, 6], max_tokens: 2 } });
      if (r.status !== 200) refused = r;
    } finally {
      for (const ctl of ctls) ctl.abort();
      await waitFor(async () => { const x = await state(); return x.onebit_slots_busy === 0 && x.onebit_queue_depth === 0; },
        10000, 'the small server to go idle');
    }
  }
  assert.ok(refused, 'no 503 in five tries');
  assert.equal(assertError(refused, 503).code, 'server_busy');
  const ok = await http('/v1/completions', { base: SMALL, key: '', body: { prompt: [5, 6], max_tokens: 2 } });
  assert.equal(ok.status, 200, 'the server accepts again');
});
